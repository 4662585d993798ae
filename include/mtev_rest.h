/*
 * REST routing on HTTP sessions (libmtev's mtev_rest.h).
 *
 *     eventer_init();
 *     mtev_http_rest_init();          // names the listener type "http_rest_api"
 *     mtev_http_rest_new_rule("GET", "/", "^hello$", hello_handler);
 *     mtev_listener_init("myapp");    // <listener type="http_rest_api" .../>
 *     eventer_loop();
 *
 * Routing (per request): the path (URI without the query) is matched against the rules as
 * libmtev does: the longest registered base that is a prefix of the path wins and only its
 * rules are tried, in registration order; a rule's PCRE2 expression runs on the rest of the
 * path after the base (unanchored unless it anchors itself) and its capture groups become
 * `pats`. No base or no expression matching: 404. An expression matching only for other
 * methods: 405 with an Allow field. A rule's authorizer refusing: 403.
 *
 * Access control. By default a rule is authorized by the <rest><acl> section of the loaded
 * configuration, if there is one; without such a section every rule is allowed.
 *
 *     <rest><acl>
 *       <rule type="allow" ip="127.0.0.0/8" url="^/admin/"/>   (all given attributes must match)
 *       <rule type="deny" url="^/admin/"/>
 *     </acl></rest>
 *
 * Rule attributes: type (allow|deny, required), url (PCRE2 on the path), method, ip (an
 * address or CIDR, IPv4 or IPv6), cn (the verified TLS client certificate's CN, see
 * <sslconfig><ca_chain> in mtev_listener.h; a connection without one matches no cn rule). The
 * first rule that matches decides; when an ACL exists and no rule matches, the request is
 * denied.
 *
 * Handlers run on the connection's loop thread (or, for aco mountpoints, in a co-routine on
 * it). A handler returns 0 when it is done with the request: its response may still be in
 * progress (ended later, from any thread, with mtev_http_response_end()). A non-zero return
 * is an eventer mask: call me again when more input arrives (to read a body incrementally).
 */
#ifndef MTEV_REST_H
#define MTEV_REST_H

#include <mtev_defines.h>
#include <mtev_http.h>
#include <mtev_listener.h>

ARK_BEGIN_DECLS

typedef struct mtev_http_rest_closure mtev_http_rest_closure_t;
typedef struct mtev_rest_mountpoint mtev_rest_mountpoint_t;

/* A handler: see above for the return value. `pats` are the capture groups (npats of them). */
typedef int (*rest_request_handler)(mtev_http_rest_closure_t *restc, int npats, char **pats);
/* Decides whether a matched request may run its handler. */
typedef mtev_boolean (*rest_authorize_func_t)(mtev_http_rest_closure_t *restc, int npats,
                                              char **pats);

/* Per-connection REST state, reset between requests. */
struct mtev_http_rest_closure {
    mtev_http_session_ctx *http_ctx;
    mtev_acceptor_closure_t *ac;
    char *remote_cn;               /* the TLS client CN, or NULL */
    rest_request_handler fastpath; /* the handler to call again (it returned a mask) */
    int nparams;
    char **params;
    int wants_shutdown;
    /* Per-request state of the handler: freed with call_closure_free when the request ends. */
    void *call_closure;
    void (*call_closure_free)(void *call_closure);
    void *closure; /* the rule's closure (mtev_rest_mountpoint_set_closure) */
    mtev_boolean aco_enabled;
};

/*
 * Names the listener type "http_rest_api" and loads the <rest><acl> section of the loaded
 * configuration (a bad ACL rule is logged with its file and line, and ignored). Call after
 * eventer_init() and before mtev_listener_init(). Idempotent. Thread: any.
 */
ARK_EXTERN void mtev_http_rest_init(void);

/*
 * Adds a rule. `base` must start and end with '/'; `expr` must compile with PCRE2. Returns
 * the mountpoint (owned by the REST layer, valid until exit), or NULL after logging the
 * reason on mtev_error. May be called before or after mtev_http_rest_init(). Thread: any.
 */
ARK_EXTERN mtev_rest_mountpoint_t *mtev_http_rest_new_rule(const char *method, const char *base,
                                                           const char *expr,
                                                           rest_request_handler handler);
/* The same with an authorizer (NULL: the ACL, see above) and a rule closure. */
ARK_EXTERN mtev_rest_mountpoint_t *
mtev_http_rest_new_rule_auth_closure(const char *method, const char *base, const char *expr,
                                     rest_request_handler handler, rest_authorize_func_t auth,
                                     void *closure);
/* 0 / -1 wrappers around mtev_http_rest_new_rule(...). */
ARK_EXTERN int mtev_http_rest_register(const char *method, const char *base, const char *expr,
                                       rest_request_handler handler);
ARK_EXTERN int mtev_http_rest_register_auth(const char *method, const char *base, const char *expr,
                                            rest_request_handler handler,
                                            rest_authorize_func_t auth);

/* Mountpoint settings; set them before requests can reach the rule. */
ARK_EXTERN void mtev_rest_mountpoint_set_handler(mtev_rest_mountpoint_t *mp,
                                                 rest_request_handler handler);
ARK_EXTERN void mtev_rest_mountpoint_set_auth(mtev_rest_mountpoint_t *mp,
                                              rest_authorize_func_t auth);
ARK_EXTERN void mtev_rest_mountpoint_set_closure(mtev_rest_mountpoint_t *mp, void *closure);
/*
 * With `enabled`, the handler runs inside a co-routine on the connection's loop thread: its
 * reads (mtev_http_session_req_consume, mtev_rest_complete_upload) and writes (flushes) wait
 * cooperatively, and it may wait for jobs with eventer_aco_simple_asynch() and friends. The
 * connection stays in that co-routine for its following requests (any rule's handler then
 * runs there). Same handler signature and return contract.
 */
ARK_EXTERN void mtev_rest_mountpoint_set_aco(mtev_rest_mountpoint_t *mp, mtev_boolean enabled);

/* The default authorizer: the <rest><acl> section (allowed when there is none). */
ARK_EXTERN mtev_boolean mtev_http_rest_client_cert_auth(mtev_http_rest_closure_t *restc, int npats,
                                                        char **pats);

/*
 * Reads the whole request body into the request's upload buffer (see
 * mtev_http_request_get_upload()). Returns true once complete; false with `*mask` set when
 * more input is needed (return the mask from the handler), or false with `*mask` 0 when the
 * body was bad or too large (the error response was sent: return 0).
 */
ARK_EXTERN mtev_boolean mtev_rest_complete_upload(mtev_http_rest_closure_t *restc, int *mask);

ARK_END_DECLS

#endif
