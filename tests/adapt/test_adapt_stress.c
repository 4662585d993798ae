/*
 * Stress: 10k transactions with random stops over two loop threads through the async sample
 * adapter, seen through a "spy" service that wraps it and checks that the host never calls a
 * transaction after stop() (resume included) and calls each on one thread only.
 */
#include "adapt_test_util.h"

#include "adapt/adapt_internal.h"
#include "eventer/eventer_internal.h"

#include <string.h>

#define ASYNC_URI "ecap://arkenstone/adapters/async"

struct spy_xaction {
    const struct ecap_xaction_methods *inner;
    void *inner_data;
    pthread_t owner;
    int stopped;
};

static ecap_service_t *wrapped;
static int violations;  /* atomic */
static int spy_stops;   /* atomic */
static int spy_resumes; /* atomic */

static void spy_check(struct spy_xaction *x)
{
    if (x->stopped || !pthread_equal(x->owner, pthread_self()))
        test_increment(&violations);
}

static void spy_start(void *xaction)
{
    struct spy_xaction *x = xaction;
    spy_check(x);
    x->inner->start(x->inner_data);
}

static void spy_stop(void *xaction)
{
    struct spy_xaction *x = xaction;
    spy_check(x);
    x->stopped = 1;
    test_increment(&spy_stops);
    x->inner->stop(x->inner_data);
    free(x);
}

static void spy_resume(void *xaction)
{
    struct spy_xaction *x = xaction;
    spy_check(x);
    test_increment(&spy_resumes);
    x->inner->resume(x->inner_data);
}

static ecap_area_t spy_option(void *xaction, const char *name)
{
    struct spy_xaction *x = xaction;
    spy_check(x);
    return x->inner->option ? x->inner->option(x->inner_data, name) : ecap_area_borrow(NULL, 0);
}

static const struct ecap_xaction_methods spy_xaction_methods = {
    .version = 1,
    .start = spy_start,
    .stop = spy_stop,
    .resume = spy_resume,
    .option = spy_option,
};

static const char *spy_uri(void *service)
{
    return "ecap://test/spy";
}

static int spy_make(void *service, ecap_host_xaction_t *hostx,
                    const struct ecap_xaction_methods **methods, void **xaction)
{
    struct spy_xaction *x = calloc(1, sizeof(*x));
    ARK_ASSERT(x != NULL);
    x->owner = pthread_self();
    int status = wrapped->methods->make_xaction(wrapped->data, hostx, &x->inner, &x->inner_data);
    if (status != ECAP_OK) {
        free(x);
        return status;
    }
    *methods = &spy_xaction_methods;
    *xaction = x;
    return ECAP_OK;
}

static int spy_async(void *service)
{
    return ecap_service_is_async(wrapped);
}

static void spy_suspend(void *service, struct timeval *timeout)
{
    wrapped->methods->suspend(wrapped->data, timeout);
}

static void spy_service_resume(void *service)
{
    wrapped->methods->resume(wrapped->data);
}

static const struct ecap_service_methods spy_methods = {
    .version = 1,
    .uri = spy_uri,
    .make_xaction = spy_make,
    .makes_async_xactions = spy_async,
    .suspend = spy_suspend,
    .resume = spy_service_resume,
};

struct stress_run {
    struct adapt_run run;
    int cancel_delay_us; /* -1: let it finish */
};

static int cancel_timer(eventer_t e, int mask, void *closure, struct timeval *now)
{
    struct adapt_run *run = closure;
    if (run->chain)
        ecap_chain_cancel(run->chain);
    return 0;
}

struct stress_batch {
    struct stress_run *runs;
    int first, count;
    int loop;
};

/* On the run's loop: start the chain, and arm its cancel timer there too. */
static void start_with_cancel(void *argument)
{
    struct stress_run *s = argument;
    adapt_run_start(&s->run);
    if (s->cancel_delay_us >= 0) {
        eventer_t timer =
            eventer_in_s_us(cancel_timer, &s->run, 0, (unsigned long)s->cancel_delay_us);
        eventer_set_owner(timer, eventer_impl_loops[s->run.loop].thread);
        eventer_add(timer);
    }
}

/*
 * Runs 10k GET requests (`uri`) through the spy around `inner`, over two loops, a quarter
 * cancelled right after start and a quarter by a timer within 3 ms. Returns the runs' count
 * of outcomes that were not VIRGIN/CANCELLED in `others`.
 */
void adapt_stress_run(ecap_service_t *inner, const char *head, int *blocked)
{
    wrapped = inner;
    violations = spy_stops = spy_resumes = 0;
    ARK_ASSERT_EQ(ecap_host_register_service(ecap_host(), &spy_methods, NULL), ECAP_OK);
    ecap_service_t *spy = ecap_service_find("ecap://test/spy");
    ARK_ASSERT_EQ(ecap_service_start(spy), ECAP_OK);
    enum { TOTAL = 10000, BATCH = 500 };
    struct stress_run *runs = calloc(TOTAL, sizeof(*runs));
    ARK_ASSERT(runs != NULL);
    unsigned seed = 12345;
    int cancelled_early = 0, cancelled_later = 0;
    for (int first = 0; first < TOTAL; first += BATCH) {
        for (int i = first; i < first + BATCH; i++) {
            seed = seed * 1103515245u + 12345u;
            int choice = (int)((seed >> 16) % 4);
            runs[i].run = (struct adapt_run){.services = {spy},
                                             .service_count = 1,
                                             .head = head,
                                             .loop = i % 2,
                                             .cancel_after_start = choice == 0};
            runs[i].cancel_delay_us = choice == 1 ? (int)((seed >> 4) % 3000) : -1;
            cancelled_early += choice == 0;
            cancelled_later += choice == 1;
            ARK_ASSERT_EQ(eventer_impl_run_on_loop(i % 2, start_with_cancel, &runs[i]), 0);
        }
        for (int i = first; i < first + BATCH; i++) {
            test_wait_for_count(&runs[i].run.done, 1, "a stress chain");
            enum ecap_outcome outcome = runs[i].run.outcome;
            ARK_ASSERT(outcome == ECAP_OUTCOME_VIRGIN || outcome == ECAP_OUTCOME_CANCELLED ||
                       outcome == ECAP_OUTCOME_BLOCKED);
            *blocked += outcome == ECAP_OUTCOME_BLOCKED;
            if (runs[i].run.cancel_after_start)
                ARK_ASSERT_EQ(outcome, ECAP_OUTCOME_CANCELLED);
            adapt_run_release(&runs[i].run);
        }
    }
    /* Let the cancel timers of finished chains fire before the eventer goes. */
    test_sleep_ms(5);
    struct ecap_service_stats stats;
    ecap_service_get_stats(spy, &stats);
    ARK_ASSERT_EQ(stats.xactions, TOTAL);
    ARK_ASSERT_EQ(stats.live_xactions, 0);
    ARK_ASSERT_EQ(stats.misuses, 0);
    ARK_ASSERT_EQ(test_load(&spy_stops), TOTAL);
    ARK_ASSERT_EQ(test_load(&violations), 0);
    ARK_ASSERT_EQ((uint64_t)test_load(&spy_resumes), stats.xaction_resumes);
    int decided = 0;
    for (int i = 0; i < TOTAL; i++)
        decided += runs[i].run.outcome != ECAP_OUTCOME_CANCELLED;
    ARK_ASSERT(decided >= TOTAL - cancelled_early - cancelled_later);
    if (ecap_service_is_async(inner))
        ARK_ASSERT_EQ((uint64_t)decided, stats.xaction_resumes);
    mtevL(mtev_notice,
          "stress %s: %d transactions, %d cancelled at once, %d by timer, %llu resumed, "
          "%llu resume requests dropped after stop\n",
          ecap_service_uri(inner), TOTAL, cancelled_early, cancelled_later,
          (unsigned long long)stats.xaction_resumes, (unsigned long long)stats.skipped_resumes);
    /* Co-routines still finishing a lookup for a cancelled transaction end by themselves. */
    for (int waited = 0; waited < 20000; waited++) {
        eventer_aco_stats_t aco;
        eventer_aco_get_stats(&aco);
        if (aco.live == 0)
            break;
        test_sleep_ms(1);
    }
    adapt_test_stop();
    free(runs);
}

ARK_TEST_TIMEOUT(stress_10k_async_transactions_random_stops_two_loops, 300)
{
    adapt_test_start(2);
    struct ecap_option options[] = {{"delay_ms", "1"}, {"workers", "4"}, {"poll_ms", "5"}};
    int blocked = 0;
    adapt_stress_run(adapt_test_service("async", ASYNC_URI, options, 3),
                     "GET /stress HTTP/1.1\r\nHost: h\r\n\r\n", &blocked);
    ARK_ASSERT_EQ(blocked, 0);
}
