/*
 * The REST layer: mountpoints over the rule matcher, the per-request dispatcher the HTTP
 * session calls, and the optional ACL.
 */
#include <mtev_conf.h>
#include <mtev_log.h>
#include <mtev_rest.h>

#include "http/http_session.h"
#include "listener/listener_internal.h"
#include "rest/rest_router.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mtev_rest_mountpoint {
    struct ark_rest_rule *rule;
    rest_request_handler handler;
    rest_authorize_func_t auth;
    void *closure;
    mtev_boolean aco;
    struct mtev_rest_mountpoint *next_allocated;
};

/* Per-connection state: the public closure plus the current match. */
struct rest_state {
    mtev_http_rest_closure_t restc;
    struct ark_rest_match match;
    struct mtev_rest_mountpoint *mountpoint;
    int resume_in_aco; /* routed and authorized; the handler runs once the co starts */
};

struct acl_rule {
    int allow;
    char *method;
    char *cn;
    pcre2_code *url;
    int family; /* 0: no ip condition */
    unsigned char network[16];
    int prefix_bits;
};

static pthread_once_t router_once = PTHREAD_ONCE_INIT;
static struct ark_rest_router *router;
static pthread_mutex_t mountpoints_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mtev_rest_mountpoint *mountpoints;
static struct acl_rule *acl;
static int acl_count;
static int acl_present;
static int initialised;
static mtev_log_stream_t rest_error, rest_debug;

static void free_everything(void)
{
    ark_rest_router_free(router);
    router = NULL;
    while (mountpoints) {
        struct mtev_rest_mountpoint *next = mountpoints->next_allocated;
        free(mountpoints);
        mountpoints = next;
    }
    for (int i = 0; i < acl_count; i++) {
        free(acl[i].method);
        free(acl[i].cn);
        pcre2_code_free(acl[i].url);
    }
    free(acl);
    acl = NULL;
    acl_count = 0;
}

static void create_router(void)
{
    rest_error = mtev_log_stream_find("error/rest");
    rest_debug = mtev_log_stream_find("debug/rest");
    router = ark_rest_router_new();
    atexit(free_everything);
}

/* ---- mountpoints ---- */

mtev_rest_mountpoint_t *mtev_http_rest_new_rule_auth_closure(const char *method, const char *base,
                                                             const char *expr,
                                                             rest_request_handler handler,
                                                             rest_authorize_func_t auth,
                                                             void *closure)
{
    pthread_once(&router_once, create_router);
    if (!router) {
        mtevL(mtev_error, "mtev_http_rest_new_rule: out of memory\n");
        return NULL;
    }
    struct mtev_rest_mountpoint *mp = calloc(1, sizeof(*mp));
    if (!mp)
        return NULL;
    char error[ARK_REST_ERROR_MAX] = "";
    /* Loop threads may be matching already: the mountpoint is complete before it is published. */
    mp->handler = handler;
    mp->auth = auth;
    mp->closure = closure;
    mp->rule = ark_rest_router_add_with_user(router, method, base, expr,
                                             (ark_rest_handler_t)(void *)handler, mp, error);
    if (!mp->rule) {
        mtevL(mtev_error, "mtev_http_rest_new_rule(%s, %s, %s): %s\n", method ? method : "(null)",
              base ? base : "(null)", expr ? expr : "(null)", error);
        free(mp);
        return NULL;
    }
    pthread_mutex_lock(&mountpoints_lock);
    mp->next_allocated = mountpoints;
    mountpoints = mp;
    pthread_mutex_unlock(&mountpoints_lock);
    return mp;
}

mtev_rest_mountpoint_t *mtev_http_rest_new_rule(const char *method, const char *base,
                                                const char *expr, rest_request_handler handler)
{
    return mtev_http_rest_new_rule_auth_closure(method, base, expr, handler, NULL, NULL);
}

int mtev_http_rest_register(const char *method, const char *base, const char *expr,
                            rest_request_handler handler)
{
    return mtev_http_rest_new_rule(method, base, expr, handler) ? 0 : -1;
}

int mtev_http_rest_register_auth(const char *method, const char *base, const char *expr,
                                 rest_request_handler handler, rest_authorize_func_t auth)
{
    return mtev_http_rest_new_rule_auth_closure(method, base, expr, handler, auth, NULL) ? 0 : -1;
}

void mtev_rest_mountpoint_set_handler(mtev_rest_mountpoint_t *mp, rest_request_handler handler)
{
    if (mp)
        __atomic_store_n(&mp->handler, handler, __ATOMIC_RELEASE);
}

void mtev_rest_mountpoint_set_auth(mtev_rest_mountpoint_t *mp, rest_authorize_func_t auth)
{
    if (mp)
        __atomic_store_n(&mp->auth, auth, __ATOMIC_RELEASE);
}

void mtev_rest_mountpoint_set_closure(mtev_rest_mountpoint_t *mp, void *closure)
{
    if (mp)
        __atomic_store_n(&mp->closure, closure, __ATOMIC_RELEASE);
}

void mtev_rest_mountpoint_set_aco(mtev_rest_mountpoint_t *mp, mtev_boolean enabled)
{
    /* Settings may change while loop threads serve the mountpoint (the seed sets aco after
     * creating the rule, with the loops running): atomic stores, atomic loads in dispatch. */
    if (mp)
        __atomic_store_n(&mp->aco, enabled ? mtev_true : mtev_false, __ATOMIC_RELEASE);
}

/* ---- ACL ---- */

static int parse_cidr(const char *text, struct acl_rule *rule)
{
    char address[INET6_ADDRSTRLEN + 8];
    snprintf(address, sizeof(address), "%s", text);
    char *slash = strchr(address, '/');
    int bits = -1;
    if (slash) {
        *slash = '\0';
        char *end;
        long value = strtol(slash + 1, &end, 10);
        if (end == slash + 1 || *end)
            return -1;
        bits = (int)value;
    }
    if (inet_pton(AF_INET, address, rule->network) == 1) {
        rule->family = AF_INET;
        if (bits < 0)
            bits = 32;
        if (bits > 32)
            return -1;
    } else if (inet_pton(AF_INET6, address, rule->network) == 1) {
        rule->family = AF_INET6;
        if (bits < 0)
            bits = 128;
        if (bits > 128)
            return -1;
    } else {
        return -1;
    }
    rule->prefix_bits = bits;
    return 0;
}

static int prefix_matches(const unsigned char *a, const unsigned char *b, int bits)
{
    int bytes = bits / 8, rest = bits % 8;
    if (memcmp(a, b, (size_t)bytes) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[bytes] & mask) == (b[bytes] & mask);
}

static int ip_matches(const struct acl_rule *rule, const struct sockaddr *remote)
{
    if (remote->sa_family == AF_INET && rule->family == AF_INET)
        return prefix_matches(
            (const unsigned char *)&((const struct sockaddr_in *)remote)->sin_addr, rule->network,
            rule->prefix_bits);
    if (remote->sa_family == AF_INET6) {
        const unsigned char *bytes =
            (const unsigned char *)&((const struct sockaddr_in6 *)remote)->sin6_addr;
        if (rule->family == AF_INET6)
            return prefix_matches(bytes, rule->network, rule->prefix_bits);
        /* An IPv4-mapped peer against an IPv4 rule. */
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (rule->family == AF_INET && memcmp(bytes, mapped, 12) == 0)
            return prefix_matches(bytes + 12, rule->network, rule->prefix_bits);
    }
    return 0;
}

static void load_acl(void)
{
    int count = 0;
    mtev_conf_section_t *sections =
        mtev_conf_get_sections_read(MTEV_CONF_ROOT, "/*/rest/acl/rule", &count);
    int acl_sections = 0;
    mtev_conf_section_t *acls =
        mtev_conf_get_sections_read(MTEV_CONF_ROOT, "/*/rest/acl", &acl_sections);
    mtev_conf_release_sections_read(acls, acl_sections);
    acl_present = acl_sections > 0;
    if (count > 0)
        acl = calloc((size_t)count, sizeof(*acl));
    for (int i = 0; acl && i < count; i++) {
        char where[512];
        ark_listener_describe_location(sections[i], where, sizeof(where));
        struct acl_rule rule = {0};
        char *type = NULL, *url = NULL, *ip = NULL;
        int ok = 1;
        if (!mtev_conf_get_string(sections[i], "@type", &type) ||
            (strcmp(type, "allow") && strcmp(type, "deny"))) {
            mtevL(mtev_error, "%s: rest acl rule: type must be \"allow\" or \"deny\"\n", where);
            ok = 0;
        } else {
            rule.allow = !strcmp(type, "allow");
        }
        if (ok && mtev_conf_get_string(sections[i], "@url", &url)) {
            int code;
            PCRE2_SIZE offset;
            rule.url =
                pcre2_compile((PCRE2_SPTR)url, PCRE2_ZERO_TERMINATED, 0, &code, &offset, NULL);
            if (!rule.url) {
                PCRE2_UCHAR message[256];
                pcre2_get_error_message(code, message, sizeof(message));
                mtevL(mtev_error, "%s: rest acl rule: url \"%s\" at offset %zu: %s\n", where, url,
                      (size_t)offset, (char *)message);
                ok = 0;
            }
        }
        if (ok && mtev_conf_get_string(sections[i], "@ip", &ip) && parse_cidr(ip, &rule) < 0) {
            mtevL(mtev_error, "%s: rest acl rule: ip \"%s\" is not an address or CIDR\n", where,
                  ip);
            ok = 0;
        }
        if (ok) {
            mtev_conf_get_string(sections[i], "@method", &rule.method);
            mtev_conf_get_string(sections[i], "@cn", &rule.cn);
            acl[acl_count++] = rule;
        } else {
            pcre2_code_free(rule.url);
        }
        free(type);
        free(url);
        free(ip);
    }
    mtev_conf_release_sections_read(sections, count);
}

mtev_boolean mtev_http_rest_client_cert_auth(mtev_http_rest_closure_t *restc, int npats,
                                             char **pats)
{
    if (!acl_present)
        return mtev_true;
    mtev_http_request *req = mtev_http_session_request(restc->http_ctx);
    const char *path = mtev_http_request_uri_str(req);
    const char *method = mtev_http_request_method_str(req);
    const char *cn = mtev_acceptor_closure_remote_cn(restc->ac);
    struct sockaddr *remote = mtev_acceptor_closure_remote(restc->ac);
    pcre2_match_data *data = NULL;
    mtev_boolean decision = mtev_false;
    for (int i = 0; i < acl_count; i++) {
        const struct acl_rule *rule = &acl[i];
        if (rule->method && strcmp(rule->method, method))
            continue;
        if (rule->cn && (!cn || strcmp(rule->cn, cn)))
            continue;
        if (rule->family && !ip_matches(rule, remote))
            continue;
        if (rule->url) {
            if (!data)
                data = pcre2_match_data_create(1, NULL);
            if (!data ||
                pcre2_match(rule->url, (PCRE2_SPTR)path, strlen(path), 0, 0, data, NULL) < 0)
                continue;
        }
        decision = rule->allow ? mtev_true : mtev_false;
        break;
    }
    pcre2_match_data_free(data);
    return decision;
}

/* ---- dispatch ---- */

static void *state_new(mtev_http_session_ctx *ctx)
{
    struct rest_state *state = calloc(1, sizeof(*state));
    if (!state)
        return NULL;
    state->restc.http_ctx = ctx;
    state->restc.ac = ark_http_session_acceptor(ctx);
    return state;
}

static void request_done(mtev_http_session_ctx *ctx, void *closure)
{
    struct rest_state *state = closure;
    if (!state)
        return;
    mtev_http_rest_closure_t *restc = &state->restc;
    if (restc->call_closure_free && restc->call_closure)
        restc->call_closure_free(restc->call_closure);
    restc->call_closure = NULL;
    restc->call_closure_free = NULL;
    restc->fastpath = NULL;
    restc->nparams = 0;
    restc->params = NULL;
    restc->closure = NULL;
    ark_rest_match_release(&state->match);
    state->mountpoint = NULL;
    state->resume_in_aco = 0;
}

static void state_free(void *closure)
{
    struct rest_state *state = closure;
    request_done(state->restc.http_ctx, state);
    free(state);
}

static void simple_answer(mtev_http_session_ctx *ctx, int status, const char *reason,
                          const char *allow)
{
    mtev_http_response_status_set(ctx, status, reason);
    mtev_http_response_header_set(ctx, "Content-Type", "text/plain");
    if (allow)
        mtev_http_response_header_set(ctx, "Allow", allow);
    mtev_http_response_appendf(ctx, "%s\n", reason);
    mtev_http_response_end(ctx);
}

/*
 * Runs a mountpoint's handler. One that wants more (body bytes to come) is called again
 * directly on the next dispatch, without routing or authorizing the request a second time.
 */
static int run_handler(mtev_http_rest_closure_t *restc, rest_request_handler handler)
{
    int wants = handler(restc, restc->nparams, restc->params);
    restc->fastpath = wants ? handler : NULL;
    return wants;
}

static int rest_dispatch(mtev_http_session_ctx *ctx, void *closure)
{
    struct rest_state *state = closure;
    if (!state) {
        simple_answer(ctx, 500, "out of memory", NULL);
        return 0;
    }
    mtev_http_rest_closure_t *restc = &state->restc;
    if (restc->fastpath)
        return run_handler(restc, restc->fastpath);
    if (state->resume_in_aco) {
        state->resume_in_aco = 0;
        restc->aco_enabled = mtev_true;
        return run_handler(restc, __atomic_load_n(&state->mountpoint->handler, __ATOMIC_ACQUIRE));
    }
    mtev_http_request *req = mtev_http_session_request(ctx);
    const char *method = mtev_http_request_method_str(req);
    const char *path = mtev_http_request_uri_str(req);
    int status = ark_rest_router_match(router, method, strlen(method), path,
                                       ark_http_request_uri_length(req), &state->match);
    if (status == 404) {
        mtevL(rest_debug, "rest: %s %s: no rule\n", method, path);
        simple_answer(ctx, 404, "NOT FOUND", NULL);
        return 0;
    }
    if (status == 405) {
        mtevL(rest_error, "rest: %s %s: 405 method not allowed (allowed: %s)\n", method, path,
              state->match.allow);
        simple_answer(ctx, 405, "METHOD NOT ALLOWED", state->match.allow);
        return 0;
    }
    if (status != 200) {
        simple_answer(ctx, 500, "ERROR", NULL);
        return 0;
    }
    struct mtev_rest_mountpoint *mp = state->match.rule->user;
    state->mountpoint = mp;
    rest_request_handler handler = __atomic_load_n(&mp->handler, __ATOMIC_ACQUIRE);
    rest_authorize_func_t auth = __atomic_load_n(&mp->auth, __ATOMIC_ACQUIRE);
    restc->closure = __atomic_load_n(&mp->closure, __ATOMIC_ACQUIRE);
    restc->nparams = state->match.npats;
    restc->params = state->match.pats;
    restc->remote_cn = (char *)mtev_acceptor_closure_remote_cn(restc->ac);
    if (!auth)
        auth = mtev_http_rest_client_cert_auth;
    if (!auth(restc, restc->nparams, restc->params)) {
        mtevL(rest_error, "rest: %s %s: 403 denied\n", method, path);
        simple_answer(ctx, 403, "DENIED", NULL);
        return 0;
    }
    restc->aco_enabled = mtev_http_session_is_aco(ctx);
    if (__atomic_load_n(&mp->aco, __ATOMIC_ACQUIRE) && !mtev_http_session_is_aco(ctx)) {
        state->resume_in_aco = 1;
        if (ark_http_session_switch_to_aco(ctx) == 0)
            return ARK_HTTP_DISPATCH_MOVED;
        state->resume_in_aco = 0;
        mtevL(rest_error, "rest: %s %s: cannot start a co-routine; running the handler here\n",
              method, path);
    }
    return run_handler(restc, handler);
}

mtev_boolean mtev_rest_complete_upload(mtev_http_rest_closure_t *restc, int *mask)
{
    int status = 0, ignored;
    if (!mask)
        mask = &ignored;
    int rc = ark_http_session_read_upload(restc->http_ctx, mask, &status);
    if (rc == 1)
        return mtev_true;
    if (rc == 0)
        return mtev_false;
    *mask = 0;
    simple_answer(restc->http_ctx, status, status == 413 ? "PAYLOAD TOO LARGE" : "BAD REQUEST",
                  NULL);
    return mtev_false;
}

void mtev_http_rest_init(void)
{
    pthread_once(&router_once, create_router);
    pthread_mutex_lock(&mountpoints_lock);
    int first = !initialised;
    initialised = 1;
    pthread_mutex_unlock(&mountpoints_lock);
    if (!first)
        return;
    static const struct ark_http_dispatcher rest_dispatcher = {
        .dispatch = rest_dispatch,
        .state_new = state_new,
        .state_free = state_free,
        .request_done = request_done,
    };
    ark_http_session_set_dispatcher(&rest_dispatcher);
    eventer_name_callback("http_rest_api", ark_http_session_listener_callback);
    load_acl();
}
