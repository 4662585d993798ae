/*
 * Listeners: sockets opened from the configuration, whose accepted connections are handed to
 * a named callback (libmtev's mtev_listener.h).
 *
 * Configuration, under the application's root element:
 *
 *     <myapp>
 *       <listeners>
 *         <config><idle_timeout>60000</idle_timeout></config>    (inherited by each listener)
 *         <listener type="http_rest_api" address="127.0.0.1" port="8888" backlog="1024">
 *           <config><document_root>/srv</document_root></config>
 *           <sslconfig><certificate_file>c.pem</certificate_file><key_file>k.pem</key_file>
 *           </sslconfig>                                       (only with ssl="on")
 *         </listener>
 *       </listeners>
 *     </myapp>
 *
 * Attributes (each may also be given as a child element, and is inherited from ancestors):
 *   type     required: a callback named with eventer_name_callback(), or an aco function
 *            registered with mtev_listener_register_aco_function();
 *   address  an IPv4 or IPv6 literal ("::1", "[::1]"), "*" or "inet:*" (every IPv4 address),
 *            "inet6:*" (every IPv6 address), or an absolute path (a unix socket; a stale
 *            socket file is replaced). Default "*";
 *   port     0..65535, required unless the address is a path; 0 picks a free port (see
 *            mtev_listener_get_address());
 *   backlog  listen(2) backlog, default 1024;
 *   ssl      "on" to speak TLS (OpenSSL) with the <sslconfig> certificate_file (or
 *            certificate) and key_file (or key); optional ciphers. With ca_chain (or
 *            ca_file), a PEM file of CA certificates, clients must present a certificate
 *            signed by one of them (the handshake fails otherwise), unless optional_no_ca
 *            is "true" (then a client without one is let in, with no remote CN); the
 *            certificate's CN is mtev_acceptor_closure_remote_cn().
 * <config> children of the listener and of its ancestors become the connection's
 * configuration (nearest definition wins), read with mtev_acceptor_closure_config().
 *
 * Accepting. Each listening socket is watched by loop thread 0; every accepted connection is
 * non-blocking, has TCP_NODELAY, and becomes an fd event owned by one of the loop threads
 * (round-robin over eventer_choose_owner(1, 2, ...), so loop 0 keeps accepting) with mask
 * READ|WRITE|EXCEPTION, whose closure is a fresh mtev_acceptor_closure_t. When the process is
 * out of descriptors (EMFILE/ENFILE) the listener accepts the pending connection into a
 * reserved descriptor and closes it at once, logging on "error/listener", so it neither spins
 * nor stalls.
 *
 * A classic callback owns its acceptor closure: it frees it with mtev_acceptor_closure_free()
 * when it is done with the connection (after closing it). An aco function does not: the
 * dispatcher frees it after the function returns.
 *
 * Closures still alive when the process exits after eventer_loop() returned (connections the
 * eventer dropped at shutdown) are freed then, with their context.
 */
#ifndef MTEV_LISTENER_H
#define MTEV_LISTENER_H

#include <eventer/eventer.h>
#include <mtev_defines.h>

#include <sys/socket.h>

ARK_BEGIN_DECLS

/* What a listener hands to the callback of each accepted connection. Opaque. */
typedef struct mtev_acceptor_closure mtev_acceptor_closure_t;

/*
 * Opens every <listener> of the loaded configuration under /<toplevel>/listeners (toplevel
 * NULL: under any root). Call after eventer_init() and after registering aco functions.
 * SIGPIPE is ignored from then on (writes to closed peers fail with EPIPE instead).
 * Returns the number of listeners opened, or -1 when at least one could not be opened (each
 * failure is logged on mtev_error as "file:line: listener ...: what is wrong"; the others
 * stay open). Thread: any, once the eventer runs.
 */
ARK_EXTERN int mtev_listener_init(const char *toplevel);

/*
 * Registers `function` under `name` as an aco listener type. A connection accepted by such a
 * listener runs `function` in a new co-routine on its loop thread; there, eventer_aco_arg()
 * is the connection (an eventer_aco_t) and eventer_aco_get_closure() of it the acceptor
 * closure. The function may simply return (the dispatcher exits the co-routine). Register
 * before mtev_listener_init(). Thread: any.
 */
ARK_EXTERN void mtev_listener_register_aco_function(const char *name, void (*function)(void));

/* Stops accepting: closes every listening socket (connections stay). Thread: any. */
ARK_EXTERN void mtev_listener_shutdown(void);

/* The number of listeners currently open. */
ARK_EXTERN int mtev_listener_count(void);
/*
 * Copies the local address of open listener `index` (0-based, in configuration order) into
 * `*address` / `*length` (in: capacity). Returns 0, or -1 with errno EINVAL for a bad index.
 */
ARK_EXTERN int mtev_listener_get_address(int index, struct sockaddr *address, socklen_t *length);
/* The bound port of listener `index` (0 for unix sockets), or -1 for a bad index. */
ARK_EXTERN int mtev_listener_get_port(int index);
/* The type of listener `index` (owned by the listener), or NULL. */
ARK_EXTERN const char *mtev_listener_get_type(int index);

/* ---- the acceptor closure (owner thread of the connection) ---- */

/* The peer's address (a struct sockaddr_storage in disguise). */
ARK_EXTERN struct sockaddr *mtev_acceptor_closure_remote(mtev_acceptor_closure_t *ac);
/* The listener's type name. */
ARK_EXTERN const char *mtev_acceptor_closure_type(mtev_acceptor_closure_t *ac);
/* The value of <config> key `key` for this connection's listener, or NULL. */
ARK_EXTERN const char *mtev_acceptor_closure_config(mtev_acceptor_closure_t *ac, const char *key);
/*
 * The subject CN of the connection's verified TLS client certificate, or NULL (no TLS, no CA
 * configured, no certificate, or the handshake not finished yet: it is set once the first
 * read or write completes the handshake). Owned by the closure. Connection's thread.
 */
ARK_EXTERN const char *mtev_acceptor_closure_remote_cn(mtev_acceptor_closure_t *ac);
/* The per-connection context set by the callback, or NULL. */
ARK_EXTERN void *mtev_acceptor_closure_ctx(mtev_acceptor_closure_t *ac);
/*
 * Sets the per-connection context and the function that frees it (called by
 * mtev_acceptor_closure_free(), and at exit for closures still alive; may be NULL).
 */
ARK_EXTERN void mtev_acceptor_closure_set_ctx(mtev_acceptor_closure_t *ac, void *ctx,
                                              void (*ctx_free)(void *ctx));
/* Frees the context now (with its free function) and clears it. */
ARK_EXTERN void mtev_acceptor_closure_ctx_free(mtev_acceptor_closure_t *ac);
/* Frees the closure and its context. NULL is ignored. Thread: any. */
ARK_EXTERN void mtev_acceptor_closure_free(mtev_acceptor_closure_t *ac);

ARK_END_DECLS

#endif
