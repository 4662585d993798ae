/* The harness itself: child runs report crashes and capture stderr; versions agree. */
#include "ark_test.h"

#include <arkenstone/version.h>
#include <signal.h>
#include <sys/wait.h>

static void print_and_abort(void *argument)
{
    fprintf(stderr, "%s", (const char *)argument);
    abort();
}

static void print_and_return(void *argument)
{
    fprintf(stderr, "%s", (const char *)argument);
}

ARK_TEST(child_abort_is_reported_with_its_message)
{
    char text[256];
    int status = ark_test_run_in_child(print_and_abort, "dying now", text, sizeof(text));
    ARK_ASSERT(WIFSIGNALED(status));
    ARK_ASSERT_EQ(WTERMSIG(status), SIGABRT);
    /* qemu-user appends its own report of the signal, so compare the start only. */
    ARK_ASSERT_MSG(strncmp(text, "dying now", 9) == 0, "captured: \"%s\"", text);
}

ARK_TEST(child_success_is_exit_zero)
{
    char text[16];
    int status =
        ark_test_run_in_child(print_and_return, "a long message truncated", text, sizeof(text));
    ARK_ASSERT(WIFEXITED(status));
    ARK_ASSERT_EQ(WEXITSTATUS(status), 0);
    ARK_ASSERT_EQ(strlen(text), sizeof(text) - 1);
}

ARK_TEST(version_string_matches_number)
{
    char expected[32];
    snprintf(expected, sizeof(expected), "%d.%d.%d", ARKENSTONE_VERSION_MAJOR,
             ARKENSTONE_VERSION_MINOR, ARKENSTONE_VERSION_PATCH);
    ARK_ASSERT_STR_EQ(ark_version_string(), expected);
    ARK_ASSERT_EQ(ark_version_number(), ARKENSTONE_VERSION_NUMBER);
}
