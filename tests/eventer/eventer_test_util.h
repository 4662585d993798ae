/* Helpers shared by the eventer tests: start/stop with leak checks, waiting for conditions. */
#ifndef EVENTER_TEST_UTIL_H
#define EVENTER_TEST_UTIL_H

#include "ark_test.h"

#include "eventer/eventer_internal.h"

#include <eventer/eventer.h>
#include <sys/time.h>

/* Starts the eventer with `loops` loop threads (0 = default). */
void test_eventer_start(int loops);
/* Stops it, frees everything, and asserts that no event is left allocated. */
void test_eventer_stop(void);
/* Waits up to 20 s (scaled) for `*counter` (read atomically) to reach `target`. */
void test_wait_for_count(const int *counter, int target, const char *what);
/* Stores in `*deadline` the wall-clock time `ms` milliseconds from now (job deadlines). */
void test_deadline_in_ms(struct timeval *deadline, int ms);
/* Sleeps `ms` milliseconds. */
void test_sleep_ms(int ms);
/* Atomic helpers. */
static inline int test_load(const int *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
static inline int test_increment(int *p)
{
    return __atomic_add_fetch(p, 1, __ATOMIC_ACQ_REL);
}
/* The loop index of the calling thread (-1 when not a loop thread). */
static inline int test_loop_index(void)
{
    return eventer_is_loop(pthread_self());
}

/* Fault injection (eventer_internal.h): the next `count` checks of `site` fail. */
void test_inject(enum eventer_fault_site site, int count);
/* How many injected failures of `site` are still to come. */
int test_injections_left(enum eventer_fault_site site);
/* Runs `child` (which ends with exit(0)) in a child process and asserts that its log
 * contains `expected`. */
void test_run_expecting_log(void (*child)(void *), const char *expected);

#endif
