/*
 * Private REST rule matcher: the routing core under mtev_http_rest_new_rule().
 *
 * A rule is (method, base, PCRE2 expression) -> handler. Matching a request path works as
 * libmtev's REST layer does:
 *   1. the longest registered base that is a prefix of the path is chosen, and only the rules
 *      of that base are tried (a shorter base is never a fallback);
 *   2. those rules are tried in registration order; the expression is run on the rest of the
 *      path after the base, unanchored unless the expression anchors itself;
 *   3. the first rule whose expression matches and whose method equals the request's method
 *      (exactly, case-sensitive) wins; its capture groups 1..n become `pats`;
 *   4. no base prefix or no matching expression: 404; an expression matched but only for other
 *      methods: 405, with the methods that would have matched for the Allow field.
 * The path is matched as given (the caller decides about the query and percent-decoding).
 *
 * Threads: rules may be added from any thread at any time (typically from the main thread
 * before the loop starts); matching takes a read lock, so loop threads match concurrently.
 * Rules live as long as their router.
 */
#ifndef ARK_REST_ROUTER_H
#define ARK_REST_ROUTER_H

#include <stddef.h>

struct ark_rest_router;

/* A handler of any signature; the REST layer knows the real type and casts back. */
typedef void (*ark_rest_handler_t)(void);

/* A registered rule. The REST layer may use `user` to hang its per-rule settings. */
struct ark_rest_rule {
    const char *method;     /* owned copy, e.g. "GET" */
    const char *base;       /* owned copy, starts and ends with '/' */
    const char *expression; /* owned copy of the PCRE2 pattern */
    ark_rest_handler_t handler;
    void *user; /* the caller's, initially NULL; not freed by the router */
};

/* Room for an error message from ark_rest_router_add (PCRE2 messages fit). */
#define ARK_REST_ERROR_MAX 256

/* Creates an empty router; NULL with errno ENOMEM when out of memory. */
struct ark_rest_router *ark_rest_router_new(void);

/* Frees the router and every rule in it. No match may be running. NULL is ignored. */
void ark_rest_router_free(struct ark_rest_router *router);

/*
 * Adds a rule. `method` must be a non-empty token, `base` must start and end with '/',
 * `expression` must compile with PCRE2 and `handler` must not be NULL. The strings are copied.
 * Returns the rule (owned by the router), or NULL with errno EINVAL (and, when `error` is not
 * NULL, a message such as "bad expression \"(\" at offset 1: missing closing parenthesis") or
 * errno ENOMEM.
 */
struct ark_rest_rule *ark_rest_router_add(struct ark_rest_router *router, const char *method,
                                          const char *base, const char *expression,
                                          ark_rest_handler_t handler,
                                          char error[ARK_REST_ERROR_MAX]);

/*
 * ark_rest_router_add() with the rule's `user` set before the rule becomes visible to
 * concurrent matches (loop threads may be matching while rules are added).
 */
struct ark_rest_rule *ark_rest_router_add_with_user(struct ark_rest_router *router,
                                                    const char *method, const char *base,
                                                    const char *expression,
                                                    ark_rest_handler_t handler, void *user,
                                                    char error[ARK_REST_ERROR_MAX]);

/* The outcome of ark_rest_router_match(). Release it with ark_rest_match_release(). */
struct ark_rest_match {
    struct ark_rest_rule *rule; /* the winning rule (status 200 only) */
    /* Capture groups 1..npats of the winning expression as NUL-terminated copies (a group that
     * did not participate is ""); pats[npats] is NULL. One allocation owned by the match. */
    int npats;
    char **pats;
    /* With status 405: the methods whose rules matched the path, as "GET, POST"; else NULL. */
    char *allow;
};

/*
 * Routes `method` and `path` (lengths given, no NUL needed). Returns 200 and fills `match`
 * when a rule wins, 404 or 405 as described at the top, or -ENOMEM. `match` must be released
 * with ark_rest_match_release() whatever the result. Thread: any (read lock).
 */
int ark_rest_router_match(struct ark_rest_router *router, const char *method, size_t method_length,
                          const char *path, size_t path_length, struct ark_rest_match *match);

/* Frees what a match holds (pats, allow) and clears it; safe on a cleared match. */
void ark_rest_match_release(struct ark_rest_match *match);

#endif
