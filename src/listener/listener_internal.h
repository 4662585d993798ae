/*
 * Private to the listener component and the layers that dispatch connections (HTTP, the aco
 * dispatcher): the acceptor closure layout and the TLS opset.
 */
#ifndef ARK_LISTENER_INTERNAL_H
#define ARK_LISTENER_INTERNAL_H

#include <mtev_conf.h>
#include <mtev_listener.h>

#include <sys/socket.h>

struct ark_listener_config_pair {
    char *key;
    char *value;
};

/* Immutable once the listener is open; shared by its connections (reference counted). */
struct ark_listener_config {
    int refcount; /* atomic */
    char *type;
    struct ark_listener_config_pair *pairs;
    int pair_count;
    void *tls_context; /* SSL_CTX *, or NULL */
    eventer_func_t callback;
    void (*aco_function)(void);
};

struct mtev_acceptor_closure {
    struct sockaddr_storage remote;
    socklen_t remote_length;
    struct ark_listener_config *config;
    char *remote_cn;
    void *ctx;
    void (*ctx_free)(void *ctx);
    /* Live-closure registry (freed at exit when the eventer dropped the connection). */
    struct mtev_acceptor_closure *previous, *next;
};

/* Looks a key up in a listener's configuration. */
const char *ark_listener_config_get(const struct ark_listener_config *config, const char *key);
/*
 * Writes "file:line" of a configuration section into `buffer` ("?:0" when unknown), the
 * prefix of the error lines about it.
 */
void ark_listener_describe_location(mtev_conf_section_t section, char *buffer, size_t capacity);

/* TLS (listener_tls.c). Returns an SSL_CTX * from <sslconfig>, or NULL after logging. */
void *ark_tls_context_from_config(mtev_conf_section_t listener, const char *where);
void ark_tls_context_free(void *context);
/*
 * Puts a fresh server TLS session on accepted event `e`, whose handshake sets ac->remote_cn
 * from a verified client certificate (`ac` must outlive the session). Returns 0, or -1.
 */
int ark_tls_attach(eventer_t e, void *context, mtev_acceptor_closure_t *ac);
/* The TLS opset (read/write drive the handshake as needed). */
extern eventer_fd_opset_t ark_tls_fd_opset;

/* Milliseconds from a config value ("1500"), or `fallback` when absent or malformed. */
long ark_listener_config_ms(mtev_acceptor_closure_t *ac, const char *key, long fallback);

#endif
