/*
 * TLS on accepted connections (OpenSSL): an fd opset whose read and write drive the server
 * handshake as they go, so a connection callback sees EAGAIN with the mask TLS needs.
 */
#include "listener/listener_internal.h"

#include "eventer/eventer_internal.h"

#include <mtev_log.h>

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void log_openssl_errors(const char *where, const char *what)
{
    unsigned long code;
    char text[256];
    int logged = 0;
    while ((code = ERR_get_error()) != 0) {
        ERR_error_string_n(code, text, sizeof(text));
        mtevL(mtev_error, "%s: listener TLS: %s: %s\n", where, what, text);
        logged = 1;
    }
    if (!logged)
        mtevL(mtev_error, "%s: listener TLS: %s\n", where, what);
}

/*
 * At the end of a handshake, the verified client certificate's subject CN becomes the
 * connection's remote CN (for mtev_acceptor_closure_remote_cn() and the REST ACL). Runs
 * inside SSL_read/SSL_write, on the connection's thread.
 */
static void note_client_cn(const SSL *ssl, int where, int ret)
{
    if (!(where & SSL_CB_HANDSHAKE_DONE))
        return;
    mtev_acceptor_closure_t *ac = SSL_get_app_data(ssl);
    if (!ac || ac->remote_cn || SSL_get_verify_result(ssl) != X509_V_OK)
        return;
    X509 *peer = SSL_get1_peer_certificate(ssl);
    if (!peer)
        return;
    char cn[256];
    int length =
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, (int)sizeof(cn));
    /* A CN with an embedded NUL, or cut short, is no name an ACL could mean. */
    if (length > 0 && (size_t)length < sizeof(cn) - 1 && strlen(cn) == (size_t)length)
        ac->remote_cn = strdup(cn);
    X509_free(peer);
}

/* <sslconfig><ca_chain> (or ca_file): request client certificates and verify them. */
static int configure_client_verification(SSL_CTX *context, mtev_conf_section_t listener,
                                         const char *where)
{
    char *ca = NULL, *optional = NULL;
    if (!mtev_conf_get_string(listener, "sslconfig/ca_chain", &ca) &&
        !mtev_conf_get_string(listener, "sslconfig/ca_file", &ca))
        return 0;
    int rc = -1;
    STACK_OF(X509_NAME) *names = NULL;
    if (SSL_CTX_load_verify_locations(context, ca, NULL) != 1 ||
        !(names = SSL_load_client_CA_file(ca))) {
        log_openssl_errors(where, ca);
        goto done;
    }
    SSL_CTX_set_client_CA_list(context, names);
    mtev_conf_get_string(listener, "sslconfig/optional_no_ca", &optional);
    int required = !(optional && (!strcmp(optional, "true") || !strcmp(optional, "on")));
    SSL_CTX_set_verify(context, SSL_VERIFY_PEER | (required ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                       NULL);
    /* Resumed sessions keep the verified identity; OpenSSL refuses them without this. */
    static const unsigned char session_context[] = "arkenstone-listener";
    SSL_CTX_set_session_id_context(context, session_context, sizeof(session_context) - 1);
    rc = 0;
done:
    free(ca);
    free(optional);
    return rc;
}

void *ark_tls_context_from_config(mtev_conf_section_t listener, const char *where)
{
    char *certificate = NULL, *key = NULL, *ciphers = NULL;
    SSL_CTX *context = NULL;
    if (!mtev_conf_get_string(listener, "sslconfig/certificate_file", &certificate) &&
        !mtev_conf_get_string(listener, "sslconfig/certificate", &certificate)) {
        mtevL(mtev_error, "%s: listener TLS: <sslconfig><certificate_file> is missing\n", where);
        goto done;
    }
    if (!mtev_conf_get_string(listener, "sslconfig/key_file", &key) &&
        !mtev_conf_get_string(listener, "sslconfig/key", &key)) {
        mtevL(mtev_error, "%s: listener TLS: <sslconfig><key_file> is missing\n", where);
        goto done;
    }
    context = SSL_CTX_new(TLS_server_method());
    if (!context) {
        log_openssl_errors(where, "cannot create a context");
        goto done;
    }
    SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
    SSL_CTX_set_mode(context, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_use_certificate_chain_file(context, certificate) != 1) {
        log_openssl_errors(where, certificate);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(context, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(context) != 1) {
        log_openssl_errors(where, key);
        goto fail;
    }
    if (mtev_conf_get_string(listener, "sslconfig/ciphers", &ciphers) &&
        SSL_CTX_set_cipher_list(context, ciphers) != 1) {
        log_openssl_errors(where, ciphers);
        goto fail;
    }
    if (configure_client_verification(context, listener, where) < 0)
        goto fail;
    SSL_CTX_set_info_callback(context, note_client_cn);
    goto done;
fail:
    SSL_CTX_free(context);
    context = NULL;
done:
    free(certificate);
    free(key);
    free(ciphers);
    return context;
}

void ark_tls_context_free(void *context)
{
    SSL_CTX_free(context);
}

int ark_tls_attach(eventer_t e, void *context, mtev_acceptor_closure_t *ac)
{
    SSL *ssl = SSL_new(context);
    if (!ssl || SSL_set_fd(ssl, e->fd) != 1) {
        SSL_free(ssl);
        mtevL(mtev_error, "listener TLS: cannot create a session\n");
        return -1;
    }
    SSL_set_app_data(ssl, ac);
    SSL_set_accept_state(ssl);
    e->opset = ark_tls_fd_opset;
    e->opset_ctx = ssl;
    return 0;
}

/* Maps an OpenSSL result to the opset contract (bytes, 0 at end, -1 + errno + mask). */
static int tls_result(SSL *ssl, int result, int *mask)
{
    if (result > 0)
        return result;
    switch (SSL_get_error(ssl, result)) {
    case SSL_ERROR_WANT_READ:
        *mask = EVENTER_READ | EVENTER_EXCEPTION;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        *mask = EVENTER_WRITE | EVENTER_EXCEPTION;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        if (errno == 0)
            return 0;
        return -1;
    default:
        ERR_clear_error();
        errno = EIO;
        return -1;
    }
}

static int tls_accept(int fd, struct sockaddr *address, socklen_t *length, int *mask, void *closure)
{
    errno = EINVAL;
    return -1;
}

static int tls_read(int fd, void *buffer, size_t length, int *mask, void *closure)
{
    eventer_t e = closure;
    SSL *ssl = e->opset_ctx;
    *mask = EVENTER_READ | EVENTER_EXCEPTION;
    errno = 0;
    int capped = length > (size_t)INT32_MAX ? INT32_MAX : (int)length;
    return tls_result(ssl, SSL_read(ssl, buffer, capped), mask);
}

static int tls_write(int fd, const void *buffer, size_t length, int *mask, void *closure)
{
    eventer_t e = closure;
    SSL *ssl = e->opset_ctx;
    *mask = EVENTER_WRITE | EVENTER_EXCEPTION;
    errno = 0;
    int capped = length > (size_t)INT32_MAX ? INT32_MAX : (int)length;
    return tls_result(ssl, SSL_write(ssl, buffer, capped), mask);
}

static int tls_close(int fd, int *mask, void *closure)
{
    eventer_t e = closure;
    *mask = 0;
    SSL *ssl = e->opset_ctx;
    if (ssl) {
        /* Best effort: a close_notify if the socket takes it now; we do not wait. */
        SSL_shutdown(ssl);
        ERR_clear_error();
        SSL_free(ssl);
        e->opset_ctx = NULL;
    }
    return eventer_POSIX_fd_opset->close(fd, mask, closure);
}

static struct _fd_opset tls_opset = {
    .accept = tls_accept,
    .read = tls_read,
    .write = tls_write,
    .close = tls_close,
    .name = "TLS",
};

eventer_fd_opset_t ark_tls_fd_opset = &tls_opset;

__attribute__((constructor)) static void fill_generic_operations(void)
{
    tls_opset.set_opset = eventer_POSIX_fd_opset->set_opset;
    tls_opset.get_opset_ctx = eventer_POSIX_fd_opset->get_opset_ctx;
    tls_opset.set_opset_ctx = eventer_POSIX_fd_opset->set_opset_ctx;
}
