/*
 * REST rule matcher tests: longest base wins, registration order within a base, captures as
 * pats, 404 versus 405 (with Allow), refused registrations, and concurrent matching.
 */
#include "ark_test.h"
#include "rest/rest_router.h"

#include <errno.h>
#include <pthread.h>

static void handler_a(void)
{
}
static void handler_b(void)
{
}
static void handler_c(void)
{
}

static int route(struct ark_rest_router *router, const char *method, const char *path,
                 struct ark_rest_match *match)
{
    return ark_rest_router_match(router, method, strlen(method), path, strlen(path), match);
}

ARK_TEST(longest_base_wins_and_shorter_bases_are_no_fallback)
{
    struct ark_rest_router *router = ark_rest_router_new();
    ARK_ASSERT(router != NULL);
    struct ark_rest_rule *root =
        ark_rest_router_add(router, "GET", "/", "^hello$", handler_a, NULL);
    struct ark_rest_rule *any = ark_rest_router_add(router, "GET", "/", ".*", handler_c, NULL);
    struct ark_rest_rule *api =
        ark_rest_router_add(router, "GET", "/api/", "^v1/(\\w+)$", handler_b, NULL);
    ARK_ASSERT(root && any && api);
    ARK_ASSERT_STR_EQ(api->base, "/api/");
    ARK_ASSERT(api->handler == handler_b);

    struct ark_rest_match match;
    ARK_ASSERT_EQ(route(router, "GET", "/hello", &match), 200);
    ARK_ASSERT(match.rule == root);
    ARK_ASSERT_EQ(match.npats, 0);
    ARK_ASSERT(match.pats != NULL && match.pats[0] == NULL);
    ark_rest_match_release(&match);

    /* registration order within a base: "^hello$" fails, ".*" catches the rest */
    ARK_ASSERT_EQ(route(router, "GET", "/other", &match), 200);
    ARK_ASSERT(match.rule == any);
    ark_rest_match_release(&match);

    ARK_ASSERT_EQ(route(router, "GET", "/api/v1/users", &match), 200);
    ARK_ASSERT(match.rule == api);
    ark_rest_match_release(&match);

    /* "/api/" is the longest base: "/"'s catch-all is not tried */
    ARK_ASSERT_EQ(route(router, "GET", "/api/v2/users", &match), 404);
    ARK_ASSERT(match.rule == NULL);
    ark_rest_match_release(&match);

    /* "/apix" is not under "/api/": the "/" base takes it */
    ARK_ASSERT_EQ(route(router, "GET", "/apix", &match), 200);
    ARK_ASSERT(match.rule == any);
    ark_rest_match_release(&match);
    ark_rest_router_free(router);
}

ARK_TEST(no_base_prefix_is_404)
{
    struct ark_rest_router *router = ark_rest_router_new();
    ARK_ASSERT(ark_rest_router_add(router, "GET", "/only/", "", handler_a, NULL) != NULL);
    struct ark_rest_match match;
    ARK_ASSERT_EQ(route(router, "GET", "/", &match), 404);
    ark_rest_match_release(&match);
    ARK_ASSERT_EQ(route(router, "GET", "/only", &match), 404);
    ark_rest_match_release(&match);
    /* the expression runs on what follows the base, unanchored: "" matches anything */
    ARK_ASSERT_EQ(route(router, "GET", "/only/", &match), 200);
    ark_rest_match_release(&match);
    ARK_ASSERT_EQ(route(router, "GET", "/only/x/y", &match), 200);
    ark_rest_match_release(&match);
    ark_rest_router_free(router);

    router = ark_rest_router_new();
    ARK_ASSERT_EQ(route(router, "GET", "/", &match), 404);
    ark_rest_match_release(&match);
    ark_rest_router_free(router);
}

ARK_TEST(path_match_with_other_method_is_405_with_allow)
{
    struct ark_rest_router *router = ark_rest_router_new();
    ARK_ASSERT(ark_rest_router_add(router, "GET", "/r/", "^item/(\\d+)$", handler_a, NULL));
    ARK_ASSERT(ark_rest_router_add(router, "PUT", "/r/", "^item/(\\d+)$", handler_b, NULL));
    ARK_ASSERT(ark_rest_router_add(router, "GET", "/r/", "^item/\\d+$", handler_c, NULL));
    ARK_ASSERT(ark_rest_router_add(router, "POST", "/r/", "^new$", handler_c, NULL));

    struct ark_rest_match match;
    ARK_ASSERT_EQ(route(router, "DELETE", "/r/item/7", &match), 405);
    ARK_ASSERT(match.rule == NULL && match.pats == NULL);
    ARK_ASSERT_STR_EQ(match.allow, "GET, PUT");
    ark_rest_match_release(&match);
    ARK_ASSERT(match.allow == NULL);

    /* methods are compared exactly, case included */
    ARK_ASSERT_EQ(route(router, "get", "/r/item/7", &match), 405);
    ark_rest_match_release(&match);
    ARK_ASSERT_EQ(route(router, "GE", "/r/item/7", &match), 405);
    ark_rest_match_release(&match);

    ARK_ASSERT_EQ(route(router, "PUT", "/r/item/7", &match), 200);
    ARK_ASSERT(match.rule->handler == handler_b);
    ark_rest_match_release(&match);

    ARK_ASSERT_EQ(route(router, "DELETE", "/r/item/x", &match), 404);
    ARK_ASSERT(match.allow == NULL);
    ark_rest_match_release(&match);
    ark_rest_router_free(router);
}

ARK_TEST(captures_are_passed_as_pats)
{
    struct ark_rest_router *router = ark_rest_router_new();
    struct ark_rest_rule *rule = ark_rest_router_add(
        router, "GET", "/files/", "^([^/]+)/(?:(v\\d+)/)?(.*)$", handler_a, NULL);
    ARK_ASSERT(rule != NULL);

    struct ark_rest_match match;
    ARK_ASSERT_EQ(route(router, "GET", "/files/docs/v2/a/b.txt", &match), 200);
    ARK_ASSERT_EQ(match.npats, 3);
    ARK_ASSERT_STR_EQ(match.pats[0], "docs");
    ARK_ASSERT_STR_EQ(match.pats[1], "v2");
    ARK_ASSERT_STR_EQ(match.pats[2], "a/b.txt");
    ARK_ASSERT(match.pats[3] == NULL);
    ark_rest_match_release(&match);

    /* a group that did not take part is "" */
    ARK_ASSERT_EQ(route(router, "GET", "/files/docs/readme", &match), 200);
    ARK_ASSERT_EQ(match.npats, 3);
    ARK_ASSERT_STR_EQ(match.pats[1], "");
    ARK_ASSERT_STR_EQ(match.pats[2], "readme");
    ark_rest_match_release(&match);

    /* the path needs no NUL: only path_length bytes are looked at */
    const char *buffer = "/files/x/yTRAILING";
    ARK_ASSERT_EQ(ark_rest_router_match(router, "GETX", 3, buffer, 10, &match), 200);
    ARK_ASSERT_STR_EQ(match.pats[2], "y");
    ark_rest_match_release(&match);
    ark_rest_router_free(router);
}

ARK_TEST(bad_rules_are_refused_with_a_message)
{
    struct ark_rest_router *router = ark_rest_router_new();
    char error[ARK_REST_ERROR_MAX] = "";

    errno = 0;
    ARK_ASSERT(ark_rest_router_add(router, "GET", "/", "^(unclosed$", handler_a, error) == NULL);
    ARK_ASSERT_EQ(errno, EINVAL);
    ARK_ASSERT_MSG(strstr(error, "^(unclosed$") != NULL && strstr(error, "offset") != NULL,
                   "message: %s", error);

    errno = 0;
    ARK_ASSERT(ark_rest_router_add(router, "GET", "/api", "x", handler_a, error) == NULL);
    ARK_ASSERT_EQ(errno, EINVAL);
    ARK_ASSERT(strstr(error, "must start and end with '/'") != NULL);
    ARK_ASSERT(ark_rest_router_add(router, "GET", "api/", "x", handler_a, NULL) == NULL);
    ARK_ASSERT(ark_rest_router_add(router, "GE T", "/", "x", handler_a, error) == NULL);
    ARK_ASSERT(strstr(error, "not a token") != NULL);
    ARK_ASSERT(ark_rest_router_add(router, "", "/", "x", handler_a, NULL) == NULL);
    ARK_ASSERT(ark_rest_router_add(router, "GET", "/", "x", NULL, NULL) == NULL);
    ARK_ASSERT(ark_rest_router_add(router, "GET", "/", NULL, handler_a, NULL) == NULL);

    /* nothing half-registered: the router still routes nothing */
    struct ark_rest_match match;
    ARK_ASSERT_EQ(route(router, "GET", "/anything", &match), 404);
    ark_rest_match_release(&match);
    ark_rest_router_free(router);
    ark_rest_router_free(NULL);
}

struct matcher_arg {
    struct ark_rest_router *router;
    int failures;
};

static void *match_many(void *argument)
{
    struct matcher_arg *arg = argument;
    for (int i = 0; i < 2000; i++) {
        struct ark_rest_match match;
        char path[64];
        snprintf(path, sizeof(path), "/t/%d", i);
        if (route(arg->router, "GET", path, &match) != 200 || match.npats != 1 ||
            atoi(match.pats[0]) != i)
            arg->failures++;
        ark_rest_match_release(&match);
    }
    return NULL;
}

ARK_TEST(loop_threads_match_while_rules_are_added)
{
    struct ark_rest_router *router = ark_rest_router_new();
    ARK_ASSERT(ark_rest_router_add(router, "GET", "/t/", "^(\\d+)$", handler_a, NULL));
    struct matcher_arg args[2] = {{router, 0}, {router, 0}};
    pthread_t threads[2];
    for (int t = 0; t < 2; t++)
        ARK_ASSERT_EQ(pthread_create(&threads[t], NULL, match_many, &args[t]), 0);
    for (int i = 0; i < 50; i++) {
        char base[32];
        snprintf(base, sizeof(base), "/b%d/", i);
        ARK_ASSERT(ark_rest_router_add(router, "GET", base, "x", handler_b, NULL) != NULL);
    }
    for (int t = 0; t < 2; t++) {
        pthread_join(threads[t], NULL);
        ARK_ASSERT_EQ(args[t].failures, 0);
    }
    ark_rest_router_free(router);
}
