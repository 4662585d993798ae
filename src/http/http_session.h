/*
 * Private: what the REST layer (and the aco glue) needs from HTTP sessions.
 *
 * The session layer owns the connection of an `http_rest_api` listener: it reads and parses
 * requests, calls the dispatcher once per request head, and writes responses. The REST layer
 * installs the dispatcher with ark_http_session_set_dispatcher() (once, before listeners
 * open).
 */
#ifndef ARK_HTTP_SESSION_H
#define ARK_HTTP_SESSION_H

#include <mtev_http.h>
#include <mtev_listener.h>

/*
 * Called on the connection's thread when a request head is complete, and again each time
 * input arrives while it returned a non-zero mask (the handler waits for body bytes).
 * Returns 0 when the request was handled (its response may still be in progress).
 */
typedef int (*ark_http_dispatch_t)(mtev_http_session_ctx *ctx, void *state);

/* What dispatch returns after ark_http_session_switch_to_aco() succeeded. */
#define ARK_HTTP_DISPATCH_MOVED (-1)

struct ark_http_dispatcher {
    ark_http_dispatch_t dispatch;
    /* Per-session state for the dispatcher, created with the session. */
    void *(*state_new)(mtev_http_session_ctx *ctx);
    void (*state_free)(void *state);
    /* Called when a request is done (response written), before the next one is read. */
    void (*request_done)(mtev_http_session_ctx *ctx, void *state);
};

void ark_http_session_set_dispatcher(const struct ark_http_dispatcher *dispatcher);

/* The listener callback of `http_rest_api` (named by mtev_http_rest_init()). */
int ark_http_session_listener_callback(eventer_t e, int mask, void *closure, struct timeval *now);

/* The connection's acceptor closure. */
mtev_acceptor_closure_t *ark_http_session_acceptor(mtev_http_session_ctx *ctx);
/* Percent-decoded-free path and method lengths of the current request (for routing). */
size_t ark_http_request_uri_length(mtev_http_request *req);
/*
 * Reads the whole body into the request's upload buffer. Returns 1 when complete, 0 when it
 * must wait (`*mask` set), -1 on a bad or too large body (status in `*status`).
 */
int ark_http_session_read_upload(mtev_http_session_ctx *ctx, int *mask, int *status);

/*
 * Moves the session into a co-routine on the same loop thread, for the rest of the
 * connection (aco mountpoints): the co re-runs the dispatcher for the current request, now
 * with mtev_http_session_is_aco() true, and its reads and writes wait cooperatively. Call
 * from the dispatcher only; on 0 the dispatcher must return ARK_HTTP_DISPATCH_MOVED at once
 * without touching the session again. Returns -1 (nothing changed) when out of memory.
 */
int ark_http_session_switch_to_aco(mtev_http_session_ctx *ctx);

#endif
