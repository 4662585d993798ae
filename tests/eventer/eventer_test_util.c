/* Helpers shared by the eventer tests. */
#include "eventer_test_util.h"

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

void test_eventer_start(int loops)
{
    if (loops > 0) {
        char text[16];
        snprintf(text, sizeof(text), "%d", loops);
        ARK_ASSERT_EQ(eventer_propset("concurrency", text), 0);
    }
    ARK_ASSERT_EQ(eventer_init(), 0);
}

void test_eventer_stop(void)
{
    eventer_shutdown();
    eventer_cleanup();
    ARK_ASSERT_EQ(eventer_allocations_current(), 0);
}

void test_sleep_ms(int ms)
{
    struct timespec pause = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&pause, &pause) != 0)
        ;
}

void test_wait_for_count(const int *counter, int target, const char *what)
{
    const char *scale_text = getenv("ARK_TEST_TIMEOUT_SCALE");
    int scale = scale_text ? atoi(scale_text) : 1;
    if (scale < 1)
        scale = 1;
    for (int waited = 0; waited < 20000 * scale; waited++) {
        if (test_load(counter) >= target)
            return;
        test_sleep_ms(1);
    }
    ark_test_fail(__FILE__, __LINE__, "timed out waiting for %s: %d of %d", what,
                  test_load(counter), target);
}

void test_deadline_in_ms(struct timeval *deadline, int ms)
{
    gettimeofday(deadline, NULL);
    long microseconds = deadline->tv_usec + (long)ms * 1000;
    deadline->tv_sec += microseconds / 1000000;
    deadline->tv_usec = microseconds % 1000000;
}

void test_inject(enum eventer_fault_site site, int count)
{
    __atomic_store_n(&eventer_impl_faults[site], count, __ATOMIC_RELEASE);
}

int test_injections_left(enum eventer_fault_site site)
{
    return __atomic_load_n(&eventer_impl_faults[site], __ATOMIC_ACQUIRE);
}

void test_run_expecting_log(void (*child)(void *), const char *expected)
{
    static char text[16384];
    int status = ark_test_run_in_child(child, NULL, text, sizeof(text));
    ARK_ASSERT_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d: %s", status, text);
    ARK_ASSERT_MSG(strstr(text, expected) != NULL, "no \"%s\" in: %s", expected, text);
}
