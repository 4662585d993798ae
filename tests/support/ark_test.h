/*
 * The project's test harness: one binary per component, cases registered with ARK_TEST.
 *
 * Running a test binary with no argument runs every case, each in its own forked child with a
 * time limit, and prints TAP ("ok N - name"). `--list` prints the case names. Naming one or
 * more cases runs just those, in-process (handy under gdb or valgrind). The exit status is 0
 * only if every case that ran passed.
 *
 * Assertions print the file, line and values, then abort the case. A case passes when its
 * function returns; anything else (assertion, signal, leak report, time limit) fails it.
 */
#ifndef ARK_TEST_H
#define ARK_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*ark_test_function_t)(void);

struct ark_test_case {
    const char *name;
    ark_test_function_t function;
    unsigned timeout_seconds;
    struct ark_test_case *next;
};

void ark_test_register(struct ark_test_case *test_case);
/* Prints the failure, flushes and aborts the current case. */
void ark_test_fail(const char *file, int line, const char *format, ...)
    __attribute__((noreturn, format(printf, 3, 4)));

/* Declares a case with the default time limit (60 s, scaled by ARK_TEST_TIMEOUT_SCALE). */
#define ARK_TEST(name) ARK_TEST_TIMEOUT(name, 60)
/* Declares a case with its own time limit in seconds. */
#define ARK_TEST_TIMEOUT(name, seconds)                                                       \
    static void ark_test_body_##name(void);                                                   \
    static struct ark_test_case ark_test_case_##name = {#name, ark_test_body_##name, seconds, \
                                                        NULL};                                \
    __attribute__((constructor)) static void ark_test_register_##name(void)                   \
    {                                                                                         \
        ark_test_register(&ark_test_case_##name);                                             \
    }                                                                                         \
    static void ark_test_body_##name(void)

#define ARK_ASSERT(condition)                                                      \
    do {                                                                           \
        if (!(condition))                                                          \
            ark_test_fail(__FILE__, __LINE__, "assertion failed: %s", #condition); \
    } while (0)

#define ARK_ASSERT_MSG(condition, ...)                      \
    do {                                                    \
        if (!(condition))                                   \
            ark_test_fail(__FILE__, __LINE__, __VA_ARGS__); \
    } while (0)

#define ARK_ASSERT_CMP_INT(a, op, b)                                                              \
    do {                                                                                          \
        intmax_t ark_a_ = (intmax_t)(a), ark_b_ = (intmax_t)(b);                                  \
        if (!(ark_a_ op ark_b_))                                                                  \
            ark_test_fail(__FILE__, __LINE__, "%s %s %s: %" PRIdMAX " vs %" PRIdMAX, #a, #op, #b, \
                          ark_a_, ark_b_);                                                        \
    } while (0)

#define ARK_ASSERT_EQ(a, b) ARK_ASSERT_CMP_INT(a, ==, b)
#define ARK_ASSERT_NE(a, b) ARK_ASSERT_CMP_INT(a, !=, b)
#define ARK_ASSERT_LT(a, b) ARK_ASSERT_CMP_INT(a, <, b)
#define ARK_ASSERT_LE(a, b) ARK_ASSERT_CMP_INT(a, <=, b)
#define ARK_ASSERT_GT(a, b) ARK_ASSERT_CMP_INT(a, >, b)
#define ARK_ASSERT_GE(a, b) ARK_ASSERT_CMP_INT(a, >=, b)

#define ARK_ASSERT_STR_EQ(a, b)                                                        \
    do {                                                                               \
        const char *ark_sa_ = (a), *ark_sb_ = (b);                                     \
        if (ark_sa_ == NULL || ark_sb_ == NULL || strcmp(ark_sa_, ark_sb_) != 0)       \
            ark_test_fail(__FILE__, __LINE__, "%s == %s: \"%s\" vs \"%s\"", #a, #b,    \
                          ark_sa_ ? ark_sa_ : "(null)", ark_sb_ ? ark_sb_ : "(null)"); \
    } while (0)

/*
 * Runs `function(argument)` in a forked child and reports how it ended, for tests that expect
 * a deliberate crash or abort. The child's stderr is captured into `stderr_text` (up to
 * `stderr_capacity - 1` bytes, NUL-terminated). Returns the raw wait status.
 */
int ark_test_run_in_child(void (*function)(void *), void *argument, char *stderr_text,
                          size_t stderr_capacity);

#ifdef __cplusplus
}
#endif

#endif
