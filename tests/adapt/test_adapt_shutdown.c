/*
 * Shutdown with transactions in flight: when the eventer stops, every live adapter
 * transaction gets stop() exactly once on its owner loop thread, the program gets on_done
 * with outcome ABORTED, co-routines parked on a lookup are abandoned through the adapter,
 * and nothing leaks (ASan). Wakes from worker threads racing with the teardown are refused
 * with ECAP_E_STOPPED and never touch freed state (ASan, TSan).
 */
#include "adapt_test_util.h"

#include "adapt/adapt_internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ASYNC_URI "ecap://arkenstone/adapters/async"
#define ACO_URI   "ecap://arkenstone/adapters/aco"
#define CHAINS    24

/* ---- a spy around a sample service: counts each transaction's stop() and its thread ---- */

struct spy {
    const struct ecap_xaction_methods *inner;
    void *data;
    int stops;     /* atomic */
    int off_loop;  /* atomic: stop() came from a thread that is not a loop thread */
    int abandoned; /* atomic */
};

static ecap_service_t *spied;
static struct spy spies[CHAINS];
static int spy_count; /* atomic */
/* Transactions of both loops are made and abandoned concurrently: guards `spies`. */
static pthread_mutex_t spies_lock = PTHREAD_MUTEX_INITIALIZER;

static void spy_start(void *xaction)
{
    struct spy *x = xaction;
    x->inner->start(x->data);
}

static void spy_stop(void *xaction)
{
    struct spy *x = xaction;
    if (eventer_is_loop(pthread_self()) < 0)
        test_increment(&x->off_loop);
    test_increment(&x->stops);
    x->inner->stop(x->data);
}

static void spy_resume(void *xaction)
{
    struct spy *x = xaction;
    if (x->inner->resume)
        x->inner->resume(x->data);
}

static ecap_area_t spy_option(void *xaction, const char *name)
{
    struct spy *x = xaction;
    return x->inner->option ? x->inner->option(x->data, name) : ecap_area_borrow(NULL, 0);
}

static int spy_visit_options(void *xaction, ecap_visitor_fn visitor, void *visitor_data)
{
    struct spy *x = xaction;
    return x->inner->visit_options ? x->inner->visit_options(x->data, visitor, visitor_data) : 0;
}

static int abandoned_unknown; /* atomic: co_abandoned with an argument no spy knows */

static void spy_co_abandoned(void *argument)
{
    struct spy *found = NULL;
    pthread_mutex_lock(&spies_lock);
    for (int i = 0; i < test_load(&spy_count) && i < CHAINS; i++)
        if (spies[i].data == argument)
            found = &spies[i];
    pthread_mutex_unlock(&spies_lock);
    if (found) {
        test_increment(&found->abandoned);
        found->inner->co_abandoned(argument);
    } else {
        test_increment(&abandoned_unknown);
    }
}

static const struct ecap_xaction_methods spy_methods = {
    .version = 2,
    .start = spy_start,
    .stop = spy_stop,
    .resume = spy_resume,
    .option = spy_option,
    .visit_options = spy_visit_options,
    .co_abandoned = spy_co_abandoned,
};

static const char *spy_uri(void *service)
{
    return "ecap://test/shutdown-spy";
}

static int spy_make(void *service, ecap_host_xaction_t *hostx,
                    const struct ecap_xaction_methods **methods, void **xaction)
{
    pthread_mutex_lock(&spies_lock);
    int index = test_increment(&spy_count) - 1;
    if (index >= CHAINS) {
        pthread_mutex_unlock(&spies_lock);
        return ECAP_E_NOMEM;
    }
    struct spy *x = &spies[index];
    int status = spied->methods->make_xaction(spied->data, hostx, &x->inner, &x->data);
    pthread_mutex_unlock(&spies_lock);
    if (status != ECAP_OK)
        return status;
    *methods = &spy_methods;
    *xaction = x;
    return ECAP_OK;
}

static int spy_async(void *service)
{
    return ecap_service_is_async(spied);
}

static void spy_suspend(void *service, struct timeval *timeout)
{
    spied->methods->suspend(spied->data, timeout);
}

static void spy_service_resume(void *service)
{
    spied->methods->resume(spied->data);
}

static const struct ecap_service_methods spy_service_methods = {
    .version = 1,
    .uri = spy_uri,
    .make_xaction = spy_make,
    .makes_async_xactions = spy_async,
    .suspend = spy_suspend,
    .resume = spy_service_resume,
};

static ecap_service_t *spy_on(ecap_service_t *inner)
{
    spied = inner;
    memset(spies, 0, sizeof(spies));
    __atomic_store_n(&spy_count, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&abandoned_unknown, 0, __ATOMIC_RELEASE);
    ARK_ASSERT_EQ(ecap_host_register_service(ecap_host(), &spy_service_methods, NULL), ECAP_OK);
    ecap_service_t *spy = ecap_service_find("ecap://test/shutdown-spy");
    ARK_ASSERT(spy != NULL);
    ARK_ASSERT_EQ(ecap_service_start(spy), ECAP_OK);
    return spy;
}

static struct adapt_run runs[CHAINS];

static void start_chains(ecap_service_t *service, const char *head)
{
    memset(runs, 0, sizeof(runs));
    for (int i = 0; i < CHAINS; i++) {
        runs[i].services[0] = service;
        runs[i].service_count = 1;
        runs[i].head = head;
        runs[i].loop = i % 2;
        adapt_run_start(&runs[i]);
    }
}

static void wait_live(ecap_service_t *service, uint64_t count)
{
    for (int waited = 0; waited < 20000; waited++) {
        struct ecap_service_stats stats;
        ecap_service_get_stats(service, &stats);
        if (stats.live_xactions == count)
            return;
        test_sleep_ms(1);
    }
    ark_test_fail(__FILE__, __LINE__, "transactions did not all start");
}

/* Stops the eventer with the chains in flight and checks what each party saw. */
static void shut_down_and_check(ecap_service_t *spy, ecap_service_t *inner)
{
    eventer_shutdown();
    eventer_cleanup();
    for (int i = 0; i < CHAINS; i++) {
        ARK_ASSERT_MSG(test_load(&runs[i].done) == 1, "chain %d: on_done not delivered", i);
        ARK_ASSERT_EQ(runs[i].outcome, ECAP_OUTCOME_ABORTED);
        ARK_ASSERT_EQ(runs[i].decisions, 0);
        ARK_ASSERT_MSG(test_load(&spies[i].stops) == 1, "transaction %d: %d stops", i,
                       test_load(&spies[i].stops));
        ARK_ASSERT_EQ(test_load(&spies[i].off_loop), 0);
        adapt_run_release(&runs[i]);
    }
    struct ecap_service_stats stats;
    ecap_service_get_stats(spy, &stats);
    ARK_ASSERT_EQ(stats.xactions, CHAINS);
    ARK_ASSERT_EQ(stats.live_xactions, 0);
    ARK_ASSERT_EQ(stats.xaction_resumes, 0);
    (void)inner;
    ecap_host_cleanup();
    ARK_ASSERT_EQ(eventer_allocations_current(), 0);
}

ARK_TEST(shutdown_stops_async_transactions_in_flight_once_on_their_loop)
{
    adapt_test_start(2);
    struct ecap_option options[] = {{"delay_ms", "20000"}, {"workers", "2"}};
    ecap_service_t *async = adapt_test_service("async", ASYNC_URI, options, 2);
    ecap_service_t *spy = spy_on(async);
    start_chains(spy, "GET http://shutdown.test/ HTTP/1.1\r\nHost: shutdown.test\r\n\r\n");
    /* Every transaction is queued to or analysed by a worker (20 s: none finishes). */
    wait_live(spy, CHAINS);
    shut_down_and_check(spy, async);
}

ARK_TEST(shutdown_abandons_aco_transactions_parked_on_a_lookup)
{
    /* A lookup service that accepts connections (the kernel's backlog) and never answers. */
    int server = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ARK_ASSERT(server >= 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = 0};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ARK_ASSERT_EQ(bind(server, (struct sockaddr *)&address, sizeof(address)), 0);
    ARK_ASSERT_EQ(listen(server, 64), 0);
    socklen_t length = sizeof(address);
    ARK_ASSERT_EQ(getsockname(server, (struct sockaddr *)&address, &length), 0);
    char lookup[64];
    snprintf(lookup, sizeof(lookup), "127.0.0.1:%d", ntohs(address.sin_port));

    adapt_test_start(2);
    struct ecap_option options[] = {{"lookup", lookup}, {"timeout_ms", "60000"}};
    ecap_service_t *aco = adapt_test_service("aco", ACO_URI, options, 2);
    ecap_service_t *spy = spy_on(aco);
    start_chains(spy, "GET http://shutdown.test/ HTTP/1.1\r\nHost: shutdown.test\r\n\r\n");
    wait_live(spy, CHAINS);
    /* Each lookup co-routine runs until it waits (connect or read) as soon as it starts. */
    for (int waited = 0; waited < 20000; waited++) {
        eventer_aco_stats_t stats;
        eventer_aco_get_stats(&stats);
        if (stats.live >= CHAINS)
            break;
        test_sleep_ms(1);
    }
    shut_down_and_check(spy, aco);
    for (int i = 0; i < CHAINS; i++)
        ARK_ASSERT_MSG(test_load(&spies[i].abandoned) == 1, "co of transaction %d: %d", i,
                       test_load(&spies[i].abandoned));
    ARK_ASSERT_EQ(test_load(&abandoned_unknown), 0);
    close(server);
}

/* ---- a program co-routine waiting in ecap_chain_run_aco() ---- */

static int run_aco_returned; /* atomic */

static void run_aco_co(void)
{
    ecap_service_t *service = eventer_aco_arg();
    const char *head = "GET http://shutdown.test/ HTTP/1.1\r\nHost: shutdown.test\r\n\r\n";
    size_t head_length;
    ecap_message_t *virgin = ecap_message_parse(head, strlen(head), &head_length);
    struct ecap_chain_result result;
    ecap_chain_run_aco(&service, 1, virgin, NULL, NULL, 0, NULL, &result);
    ecap_chain_result_release(&result);
    test_increment(&run_aco_returned);
}

static void start_run_aco(void *service)
{
    eventer_aco_start_on(pthread_self(), run_aco_co, service, 0, EVENTER_ACO_MAY_RETURN);
}

ARK_TEST(shutdown_frees_chains_of_coroutines_waiting_in_chain_run_aco)
{
    adapt_test_start(2);
    struct ecap_option options[] = {{"delay_ms", "20000"}};
    ecap_service_t *async = adapt_test_service("async", ASYNC_URI, options, 1);
    __atomic_store_n(&run_aco_returned, 0, __ATOMIC_RELEASE);
    for (int i = 0; i < 4; i++)
        adapt_test_on_loop(i % 2, start_run_aco, async);
    wait_live(async, 4);
    eventer_shutdown();
    eventer_cleanup();
    /* The co-routines never resume; the host freed their chains (ASan: no leak). */
    ARK_ASSERT_EQ(test_load(&run_aco_returned), 0);
    struct ecap_service_stats stats;
    ecap_service_get_stats(async, &stats);
    ARK_ASSERT_EQ(stats.xactions, 4);
    ARK_ASSERT_EQ(stats.live_xactions, 0);
    ecap_host_cleanup();
    ARK_ASSERT_EQ(eventer_allocations_current(), 0);
}

/* ---- wakes racing with the teardown ---- */

/* An async service whose transactions never decide: only the host's shutdown ends them. */
static ecap_host_xaction_t *held[CHAINS];
static int held_count; /* atomic: held[0..held_count) are published */
static pthread_mutex_t held_lock = PTHREAD_MUTEX_INITIALIZER;

static void idle_start(void *xaction)
{
}

static void idle_stop(void *xaction)
{
}

static const struct ecap_xaction_methods idle_methods = {
    .version = 1,
    .start = idle_start,
    .stop = idle_stop,
};

static const char *idle_uri(void *service)
{
    return "ecap://test/idle-async";
}

static int idle_make(void *service, ecap_host_xaction_t *hostx,
                     const struct ecap_xaction_methods **methods, void **xaction)
{
    pthread_mutex_lock(&held_lock);
    int index = test_load(&held_count);
    if (index >= CHAINS) {
        pthread_mutex_unlock(&held_lock);
        return ECAP_E_NOMEM;
    }
    /* The worker below uses the handle: it holds a strong reference. */
    ecap_host_xaction_ref(hostx);
    held[index] = hostx;
    __atomic_store_n(&held_count, index + 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&held_lock);
    *methods = &idle_methods;
    *xaction = NULL;
    return ECAP_OK;
}

static int idle_async(void *service)
{
    return 1;
}

static void idle_suspend(void *service, struct timeval *timeout)
{
}

static void idle_resume(void *service)
{
}

static const struct ecap_service_methods idle_service_methods = {
    .version = 1,
    .uri = idle_uri,
    .make_xaction = idle_make,
    .makes_async_xactions = idle_async,
    .suspend = idle_suspend,
    .resume = idle_resume,
};

struct hammer {
    int quit;          /* atomic */
    int torn_down;     /* atomic: eventer_cleanup() returned */
    int accepted;      /* atomic */
    int refused;       /* atomic */
    int late_accepted; /* wakes accepted after the teardown (must stay 0) */
    int other;         /* statuses other than OK and STOPPED */
};

static void *hammer_main(void *argument)
{
    struct hammer *h = argument;
    while (!test_load(&h->quit)) {
        int count = test_load(&held_count);
        for (int i = 0; i < count; i++) {
            int after = test_load(&h->torn_down);
            int status = ecap_host_xaction_wake(held[i]);
            if (status == ECAP_OK) {
                test_increment(&h->accepted);
                if (after)
                    h->late_accepted++;
            } else if (status == ECAP_E_STOPPED) {
                test_increment(&h->refused);
            } else {
                h->other++;
            }
        }
        sched_yield();
    }
    return NULL;
}

ARK_TEST(wake_from_a_worker_racing_with_shutdown_is_refused_safely)
{
    for (int round = 0; round < 5; round++) {
        adapt_test_start(2);
        __atomic_store_n(&held_count, 0, __ATOMIC_RELEASE);
        ARK_ASSERT_EQ(ecap_host_register_service(ecap_host(), &idle_service_methods, NULL),
                      ECAP_OK);
        ecap_service_t *idle = ecap_service_find("ecap://test/idle-async");
        ARK_ASSERT_EQ(ecap_service_start(idle), ECAP_OK);
        start_chains(idle, "GET / HTTP/1.1\r\nHost: wake.test\r\n\r\n");
        static struct hammer h;
        memset(&h, 0, sizeof(h));
        pthread_t thread;
        ARK_ASSERT_EQ(pthread_create(&thread, NULL, hammer_main, &h), 0);
        test_wait_for_count(&held_count, CHAINS, "the transactions");
        test_wait_for_count(&h.accepted, 100, "wakes of live transactions");
        /* The worker keeps waking while the loops stop and the eventer frees them. */
        eventer_shutdown();
        eventer_cleanup();
        __atomic_store_n(&h.torn_down, 1, __ATOMIC_RELEASE);
        int refused = test_load(&h.refused);
        test_wait_for_count(&h.refused, refused + 2 * CHAINS, "wakes after the teardown");
        __atomic_store_n(&h.quit, 1, __ATOMIC_RELEASE);
        pthread_join(thread, NULL);
        ARK_ASSERT_EQ(h.late_accepted, 0);
        ARK_ASSERT_EQ(h.other, 0);
        for (int i = 0; i < CHAINS; i++) {
            ARK_ASSERT_EQ(test_load(&runs[i].done), 1);
            ARK_ASSERT_EQ(runs[i].outcome, ECAP_OUTCOME_ABORTED);
            adapt_run_release(&runs[i]);
        }
        struct ecap_service_stats stats;
        ecap_service_get_stats(idle, &stats);
        ARK_ASSERT_EQ(stats.live_xactions, 0);
        ecap_host_cleanup();
        /* After the host is gone too, a wake still answers (the handle is referenced). */
        ARK_ASSERT_EQ(ecap_host_xaction_wake(held[0]), ECAP_E_STOPPED);
        for (int i = 0; i < CHAINS; i++)
            ecap_host_xaction_unref(held[i]);
        ARK_ASSERT_EQ(eventer_allocations_current(), 0);
    }
}
