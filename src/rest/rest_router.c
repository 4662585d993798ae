/*
 * The REST rule table. Rules are grouped by base; the groups are kept sorted by base length,
 * longest first, so the first group whose base prefixes the path is the longest match. Rules
 * are allocated one by one so the pointers handed out stay valid while the group arrays grow.
 * Expressions are compiled once (and JIT-compiled when PCRE2 can) at registration.
 */
#include "rest/rest_router.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_parser.h"

struct router_rule {
    struct ark_rest_rule rule; /* first, so a public rule pointer is a router_rule pointer */
    pcre2_code *code;
    uint32_t capture_count;
};

struct base_group {
    char *base;
    size_t base_length;
    struct router_rule **rules;
    size_t count;
    size_t capacity;
    uint32_t max_capture_count;
};

struct ark_rest_router {
    pthread_rwlock_t lock;
    struct base_group *groups;
    size_t count;
    size_t capacity;
};

struct ark_rest_router *ark_rest_router_new(void)
{
    struct ark_rest_router *router = calloc(1, sizeof(*router));
    if (router == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    int rc = pthread_rwlock_init(&router->lock, NULL);
    if (rc != 0) {
        free(router);
        errno = rc;
        return NULL;
    }
    return router;
}

static void free_rule(struct router_rule *rule)
{
    if (rule == NULL)
        return;
    pcre2_code_free(rule->code);
    free((char *)rule->rule.method);
    free((char *)rule->rule.base);
    free((char *)rule->rule.expression);
    free(rule);
}

void ark_rest_router_free(struct ark_rest_router *router)
{
    if (router == NULL)
        return;
    for (size_t g = 0; g < router->count; g++) {
        struct base_group *group = &router->groups[g];
        for (size_t r = 0; r < group->count; r++)
            free_rule(group->rules[r]);
        free(group->rules);
        free(group->base);
    }
    free(router->groups);
    pthread_rwlock_destroy(&router->lock);
    free(router);
}

static struct ark_rest_rule *refuse(char *error, int code, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static struct ark_rest_rule *refuse(char *error, int code, const char *format, ...)
{
    if (error != NULL) {
        va_list arguments;
        va_start(arguments, format);
        vsnprintf(error, ARK_REST_ERROR_MAX, format, arguments);
        va_end(arguments);
    }
    errno = code;
    return NULL;
}

static bool is_token(const char *text)
{
    if (*text == '\0')
        return false;
    for (; *text; text++) {
        if (!ark_http_is_token_char((unsigned char)*text))
            return false;
    }
    return true;
}

static struct router_rule *make_rule(const char *method, const char *base, const char *expression,
                                     ark_rest_handler_t handler, char *error)
{
    int error_code;
    PCRE2_SIZE error_offset;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)expression, PCRE2_ZERO_TERMINATED, 0, &error_code,
                                     &error_offset, NULL);
    if (code == NULL) {
        PCRE2_UCHAR message[160];
        if (pcre2_get_error_message(error_code, message, sizeof(message)) < 0)
            snprintf((char *)message, sizeof(message), "PCRE2 error %d", error_code);
        refuse(error, EINVAL, "bad expression \"%s\" at offset %zu: %s", expression,
               (size_t)error_offset, (const char *)message);
        return NULL;
    }
    /* Without JIT support the interpreter runs the same pattern: nothing to report. */
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);

    struct router_rule *rule = calloc(1, sizeof(*rule));
    if (rule == NULL) {
        pcre2_code_free(code);
        refuse(error, ENOMEM, "out of memory");
        return NULL;
    }
    rule->code = code;
    pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &rule->capture_count);
    rule->rule.method = strdup(method);
    rule->rule.base = strdup(base);
    rule->rule.expression = strdup(expression);
    rule->rule.handler = handler;
    if (!rule->rule.method || !rule->rule.base || !rule->rule.expression) {
        free_rule(rule);
        refuse(error, ENOMEM, "out of memory");
        return NULL;
    }
    return rule;
}

/* Finds the group of `base`, creating it in length order; NULL when out of memory. */
static struct base_group *group_for(struct ark_rest_router *router, const char *base)
{
    size_t length = strlen(base), position = 0;
    for (; position < router->count; position++) {
        struct base_group *group = &router->groups[position];
        if (group->base_length == length && strcmp(group->base, base) == 0)
            return group;
        if (group->base_length < length)
            break;
    }
    if (router->count == router->capacity) {
        size_t capacity = router->capacity ? router->capacity * 2 : 8;
        struct base_group *groups = realloc(router->groups, capacity * sizeof(*groups));
        if (groups == NULL)
            return NULL;
        router->groups = groups;
        router->capacity = capacity;
    }
    char *copy = strdup(base);
    if (copy == NULL)
        return NULL;
    memmove(&router->groups[position + 1], &router->groups[position],
            (router->count - position) * sizeof(router->groups[0]));
    router->groups[position] = (struct base_group){.base = copy, .base_length = length};
    router->count++;
    return &router->groups[position];
}

struct ark_rest_rule *ark_rest_router_add(struct ark_rest_router *router, const char *method,
                                          const char *base, const char *expression,
                                          ark_rest_handler_t handler,
                                          char error[ARK_REST_ERROR_MAX])
{
    return ark_rest_router_add_with_user(router, method, base, expression, handler, NULL, error);
}

struct ark_rest_rule *ark_rest_router_add_with_user(struct ark_rest_router *router,
                                                    const char *method, const char *base,
                                                    const char *expression,
                                                    ark_rest_handler_t handler, void *user,
                                                    char error[ARK_REST_ERROR_MAX])
{
    if (router == NULL || method == NULL || base == NULL || expression == NULL || handler == NULL)
        return refuse(error, EINVAL, "router, method, base, expression and handler are needed");
    if (!is_token(method))
        return refuse(error, EINVAL, "method \"%s\" is not a token", method);
    size_t base_length = strlen(base);
    if (base_length == 0 || base[0] != '/' || base[base_length - 1] != '/')
        return refuse(error, EINVAL, "base \"%s\" must start and end with '/'", base);

    struct router_rule *rule = make_rule(method, base, expression, handler, error);
    if (rule == NULL)
        return NULL;
    rule->rule.user = user;

    pthread_rwlock_wrlock(&router->lock);
    struct base_group *group = group_for(router, base);
    if (group != NULL && group->count == group->capacity) {
        size_t capacity = group->capacity ? group->capacity * 2 : 4;
        struct router_rule **rules = realloc(group->rules, capacity * sizeof(*rules));
        if (rules != NULL) {
            group->rules = rules;
            group->capacity = capacity;
        } else {
            group = NULL;
        }
    }
    if (group == NULL) {
        pthread_rwlock_unlock(&router->lock);
        free_rule(rule);
        return refuse(error, ENOMEM, "out of memory");
    }
    group->rules[group->count++] = rule;
    if (rule->capture_count > group->max_capture_count)
        group->max_capture_count = rule->capture_count;
    pthread_rwlock_unlock(&router->lock);
    return &rule->rule;
}

/* Copies capture groups 1..n into one block: the pointer array, then the strings. */
static int copy_captures(const struct router_rule *rule, pcre2_match_data *data, int match_result,
                         const char *subject, struct ark_rest_match *match)
{
    PCRE2_SIZE *ovector = pcre2_get_ovector_pointer(data);
    uint32_t count = rule->capture_count;
    size_t bytes = (count + 1) * sizeof(char *);

    for (uint32_t i = 1; i <= count; i++) {
        if ((int)i < match_result && ovector[2 * i] != PCRE2_UNSET)
            bytes += ovector[2 * i + 1] - ovector[2 * i];
        bytes += 1;
    }
    char **pats = malloc(bytes);
    if (pats == NULL)
        return -ENOMEM;
    char *text = (char *)(pats + count + 1);
    for (uint32_t i = 1; i <= count; i++) {
        size_t length = 0;
        if ((int)i < match_result && ovector[2 * i] != PCRE2_UNSET) {
            length = ovector[2 * i + 1] - ovector[2 * i];
            memcpy(text, subject + ovector[2 * i], length);
        }
        text[length] = '\0';
        pats[i - 1] = text;
        text += length + 1;
    }
    pats[count] = NULL;
    match->pats = pats;
    match->npats = (int)count;
    return 0;
}

/* Joins the distinct methods of `methods` as "A, B". */
static char *join_methods(const char **methods, size_t count)
{
    size_t bytes = 1;
    for (size_t i = 0; i < count; i++)
        bytes += strlen(methods[i]) + 2;
    char *allow = malloc(bytes), *out = allow;
    if (allow == NULL)
        return NULL;
    for (size_t i = 0; i < count; i++) {
        size_t length = strlen(methods[i]);
        if (i > 0) {
            memcpy(out, ", ", 2);
            out += 2;
        }
        memcpy(out, methods[i], length);
        out += length;
    }
    *out = '\0';
    return allow;
}

static bool method_is(const char *rule_method, const char *method, size_t length)
{
    return strncmp(rule_method, method, length) == 0 && rule_method[length] == '\0';
}

/*
 * Match data is kept per thread and grown as needed: allocating it per request showed in
 * profiles. Freed when the thread exits.
 */
static pthread_key_t match_data_key;
static pthread_once_t match_data_once = PTHREAD_ONCE_INIT;
static __thread pcre2_match_data *cached_match_data;

static void free_thread_match_data(void *data)
{
    pcre2_match_data_free(data);
}

static void create_match_data_key(void)
{
    pthread_key_create(&match_data_key, free_thread_match_data);
}

static pcre2_match_data *thread_match_data(uint32_t pairs)
{
    if (cached_match_data && pcre2_get_ovector_count(cached_match_data) >= pairs)
        return cached_match_data;
    pthread_once(&match_data_once, create_match_data_key);
    pcre2_match_data *data = pcre2_match_data_create(pairs < 8 ? 8 : pairs, NULL);
    if (!data)
        return NULL;
    pcre2_match_data_free(cached_match_data);
    cached_match_data = data;
    pthread_setspecific(match_data_key, data);
    return data;
}

int ark_rest_router_match(struct ark_rest_router *router, const char *method, size_t method_length,
                          const char *path, size_t path_length, struct ark_rest_match *match)
{
    *match = (struct ark_rest_match){0};
    pthread_rwlock_rdlock(&router->lock);

    const struct base_group *group = NULL;
    for (size_t g = 0; g < router->count; g++) {
        const struct base_group *candidate = &router->groups[g];
        if (candidate->base_length <= path_length &&
            memcmp(candidate->base, path, candidate->base_length) == 0) {
            group = candidate;
            break;
        }
    }
    if (group == NULL) {
        pthread_rwlock_unlock(&router->lock);
        return 404;
    }

    pcre2_match_data *data = thread_match_data(group->max_capture_count + 1);
    const char *others_small[16];
    const char **others = group->count <= 16 ? others_small : calloc(group->count, sizeof(*others));
    if (data == NULL || others == NULL) {
        pthread_rwlock_unlock(&router->lock);
        return -ENOMEM;
    }
    const char *subject = path + group->base_length;
    size_t subject_length = path_length - group->base_length, other_count = 0;
    int status = 404;
    for (size_t r = 0; r < group->count; r++) {
        struct router_rule *rule = group->rules[r];
        int result = pcre2_match(rule->code, (PCRE2_SPTR)subject, subject_length, 0, 0, data, NULL);
        if (result == PCRE2_ERROR_NOMEMORY) {
            status = -ENOMEM;
            break;
        }
        if (result < 0)
            continue;
        if (method_is(rule->rule.method, method, method_length)) {
            status = copy_captures(rule, data, result, subject, match);
            if (status == 0) {
                match->rule = &rule->rule;
                status = 200;
            }
            break;
        }
        bool seen = false;
        for (size_t i = 0; i < other_count && !seen; i++)
            seen = strcmp(others[i], rule->rule.method) == 0;
        if (!seen)
            others[other_count++] = rule->rule.method;
        status = 405;
    }
    if (status == 405) {
        match->allow = join_methods(others, other_count);
        if (match->allow == NULL)
            status = -ENOMEM;
    }
    pthread_rwlock_unlock(&router->lock);
    if (others != others_small)
        free(others);
    return status;
}

void ark_rest_match_release(struct ark_rest_match *match)
{
    free(match->pats);
    free(match->allow);
    *match = (struct ark_rest_match){0};
}
