/*
 * The rules of the host: misuse returns a clear error and changes nothing; the polling
 * protocol (each rule its own case); the wake call; strong and weak references.
 *
 * A "probe" service defined here records every call the host makes and lets each case
 * script what the adapter does.
 */
#include "adapt_test_util.h"

#include "adapt/adapt_internal.h"
#include "eventer/eventer_internal.h"

#include <string.h>

struct probe_service;

struct probe_xaction {
    struct probe_service *service;
    ecap_host_xaction_t *hostx; /* strong reference, dropped in stop */
    pthread_t owner;
    int ready;   /* waiting in the ready list */
    int stopped; /* atomic */
    int resumes; /* atomic */
    int starts;
    struct probe_xaction *next;
};

struct probe_service {
    char uri[96];
    int async;
    long suspend_us; /* what suspend lowers the timeout to (-1: leave it) */
    /* Scripts (any may be NULL). */
    void (*on_start)(struct probe_xaction *x);
    void (*on_resume)(struct probe_xaction *x);
    void (*on_service_resume)(struct probe_service *s, struct probe_xaction *x);
    /* Records. */
    pthread_mutex_t lock;
    struct probe_xaction *ready;      /* under lock */
    int suspends, resumes;            /* atomic */
    int stops;                        /* atomic */
    int calls_after_stop;             /* atomic */
    struct probe_xaction *last;       /* the last transaction made (loop threads only) */
    int in_service_resume;            /* atomic */
    int resume_inside_service_resume; /* atomic: adapter resume ran inside service resume */
    int resume_on_wrong_thread;       /* atomic */
};

static const char *probe_uri(void *service)
{
    return ((struct probe_service *)service)->uri;
}

static int probe_async(void *service)
{
    return ((struct probe_service *)service)->async;
}

static void probe_suspend(void *data, struct timeval *timeout)
{
    struct probe_service *s = data;
    test_increment(&s->suspends);
    if (s->suspend_us >= 0) {
        uint64_t current = (uint64_t)timeout->tv_sec * 1000000 + (uint64_t)timeout->tv_usec;
        if ((uint64_t)s->suspend_us < current) {
            timeout->tv_sec = s->suspend_us / 1000000;
            timeout->tv_usec = s->suspend_us % 1000000;
        }
    }
}

static void probe_service_resume(void *data)
{
    struct probe_service *s = data;
    test_increment(&s->resumes);
    __atomic_store_n(&s->in_service_resume, 1, __ATOMIC_RELEASE);
    pthread_mutex_lock(&s->lock);
    struct probe_xaction *ready = s->ready;
    s->ready = NULL;
    pthread_mutex_unlock(&s->lock);
    for (struct probe_xaction *x = ready, *next; x; x = next) {
        next = x->next;
        x->ready = 0;
        if (!__atomic_load_n(&x->stopped, __ATOMIC_ACQUIRE)) {
            if (s->on_service_resume)
                s->on_service_resume(s, x);
            else
                ARK_ASSERT_EQ(ecap_host_xaction_resume(x->hostx), ECAP_OK);
        }
    }
    __atomic_store_n(&s->in_service_resume, 0, __ATOMIC_RELEASE);
}

static void probe_mark_ready(struct probe_xaction *x)
{
    pthread_mutex_lock(&x->service->lock);
    x->ready = 1;
    x->next = x->service->ready;
    x->service->ready = x;
    pthread_mutex_unlock(&x->service->lock);
}

static void check_live(struct probe_xaction *x)
{
    if (__atomic_load_n(&x->stopped, __ATOMIC_ACQUIRE))
        test_increment(&x->service->calls_after_stop);
}

static void probe_start(void *xaction)
{
    struct probe_xaction *x = xaction;
    check_live(x);
    x->owner = pthread_self();
    x->starts++;
    if (x->service->on_start)
        x->service->on_start(x);
}

static void probe_resume(void *xaction)
{
    struct probe_xaction *x = xaction;
    check_live(x);
    test_increment(&x->resumes);
    if (__atomic_load_n(&x->service->in_service_resume, __ATOMIC_ACQUIRE) &&
        adapt_in_service_resume())
        test_increment(&x->service->resume_inside_service_resume);
    if (!pthread_equal(pthread_self(), x->owner))
        test_increment(&x->service->resume_on_wrong_thread);
    if (x->service->on_resume)
        x->service->on_resume(x);
}

static void probe_stop(void *xaction)
{
    struct probe_xaction *x = xaction;
    check_live(x);
    struct probe_service *s = x->service;
    __atomic_store_n(&x->stopped, 1, __ATOMIC_RELEASE);
    test_increment(&s->stops);
    pthread_mutex_lock(&s->lock);
    int listed = x->ready;
    if (listed) {
        struct probe_xaction **link = &s->ready;
        while (*link != x)
            link = &(*link)->next;
        *link = x->next;
    }
    pthread_mutex_unlock(&s->lock);
    /* The probe keeps the record (cases inspect it); the host reference goes. */
}

static void probe_note_vb_available(void *xaction)
{
    check_live(xaction);
}

static void probe_note_vb_done(void *xaction, int at_end)
{
    check_live(xaction);
}

static const struct ecap_xaction_methods probe_xaction_methods = {
    .version = 1,
    .start = probe_start,
    .stop = probe_stop,
    .resume = probe_resume,
    .note_vb_content_available = probe_note_vb_available,
    .note_vb_content_done = probe_note_vb_done,
};

/* Every transaction of a case, freed at the end of the case. */
static struct probe_xaction *all_xactions[20000];
static int all_count; /* atomic */

static int probe_make(void *data, ecap_host_xaction_t *hostx,
                      const struct ecap_xaction_methods **methods, void **xaction)
{
    struct probe_xaction *x = calloc(1, sizeof(*x));
    ARK_ASSERT(x != NULL);
    x->service = data;
    ecap_host_xaction_ref(hostx);
    x->hostx = hostx;
    __atomic_store_n(&x->service->last, x, __ATOMIC_RELEASE);
    all_xactions[test_increment(&all_count) - 1] = x;
    *methods = &probe_xaction_methods;
    *xaction = x;
    return ECAP_OK;
}

static const struct ecap_service_methods probe_methods = {
    .version = 1,
    .uri = probe_uri,
    .make_xaction = probe_make,
    .makes_async_xactions = probe_async,
    .suspend = probe_suspend,
    .resume = probe_service_resume,
};

static struct probe_service probes[3];

static ecap_service_t *probe_register(int index, int async, long suspend_us)
{
    struct probe_service *s = &probes[index];
    memset(s, 0, sizeof(*s));
    snprintf(s->uri, sizeof(s->uri), "ecap://test/probe/%d", index);
    s->async = async;
    s->suspend_us = suspend_us;
    pthread_mutex_init(&s->lock, NULL);
    ARK_ASSERT_EQ(ecap_host_register_service(ecap_host(), &probe_methods, s), ECAP_OK);
    ecap_service_t *service = ecap_service_find(s->uri);
    ARK_ASSERT(service != NULL);
    ARK_ASSERT_EQ(ecap_service_start(service), ECAP_OK);
    ARK_ASSERT_EQ(ecap_service_is_async(service), async);
    return service;
}

/* Stops the eventer first (no loop touches a probe any more), then frees the records. */
static void probe_finish(void)
{
    adapt_test_stop();
    int count = test_load(&all_count);
    for (int i = 0; i < count; i++) {
        if (!all_xactions[i]->stopped)
            ark_test_fail(__FILE__, __LINE__, "transaction %d never stopped", i);
        ecap_host_xaction_unref(all_xactions[i]->hostx);
        free(all_xactions[i]);
    }
    all_count = 0;
    for (int i = 0; i < 3; i++)
        if (probes[i].uri[0])
            pthread_mutex_destroy(&probes[i].lock);
}

static uint64_t misuses(ecap_service_t *service)
{
    struct ecap_service_stats stats;
    ecap_service_get_stats(service, &stats);
    return stats.misuses;
}

/* ---- misuse ---- */

static int statuses[16];

static void start_two_decisions(struct probe_xaction *x)
{
    statuses[0] = ecap_host_xaction_use_virgin(x->hostx);
    statuses[1] = ecap_host_xaction_use_virgin(x->hostx);
    statuses[2] = ecap_host_xaction_block_virgin(x->hostx);
    statuses[3] = ecap_host_xaction_use_adapted(x->hostx, NULL);
}

ARK_TEST(misuse_two_decisions_are_refused)
{
    adapt_test_start(2);
    ecap_service_t *service = probe_register(0, 0, -1);
    probes[0].on_start = start_two_decisions;
    struct adapt_run run = {.services = {service},
                            .service_count = 1,
                            .head = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
                            .body = "abc",
                            .body_size = 3};
    adapt_run(&run);
    ARK_ASSERT_EQ(statuses[0], ECAP_OK);
    ARK_ASSERT_EQ(statuses[1], ECAP_E_DECIDED);
    ARK_ASSERT_EQ(statuses[2], ECAP_E_DECIDED);
    ARK_ASSERT_EQ(statuses[3], ECAP_E_DECIDED);
    /* The first decision stands: the virgin message and body arrive intact. */
    ARK_ASSERT_EQ(run.outcome, ECAP_OUTCOME_VIRGIN);
    ARK_ASSERT_STR_EQ(run.output, "abc");
    ARK_ASSERT_EQ(misuses(service), 3);
    adapt_run_release(&run);
    probe_finish();
}

static void start_body_before_vb_make(struct probe_xaction *x)
{
    ecap_area_t area = ecap_area_from_string("junk");
    statuses[0] = ecap_host_xaction_vb_content(x->hostx, 0, ECAP_NSIZE, &area);
    ARK_ASSERT_EQ(area.size, 0);
    statuses[1] = ecap_host_xaction_vb_content_shift(x->hostx, 1);
    statuses[2] = ecap_host_xaction_vb_make_more(x->hostx);
    statuses[3] = ecap_host_xaction_vb_stop_making(x->hostx);
    statuses[4] = ecap_host_xaction_note_ab_content_available(x->hostx);
    statuses[5] = ecap_host_xaction_note_ab_content_done(x->hostx, 1);
    statuses[6] = ecap_host_xaction_use_virgin(x->hostx); /* still allowed: nothing consumed */
}

ARK_TEST(misuse_body_call_before_vb_make_is_refused)
{
    adapt_test_start(2);
    ecap_service_t *service = probe_register(0, 0, -1);
    probes[0].on_start = start_body_before_vb_make;
    struct adapt_run run = {.services = {service},
                            .service_count = 1,
                            .head = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                            .body = "hello",
                            .body_size = 5};
    adapt_run(&run);
    for (int i = 0; i < 4; i++)
        ARK_ASSERT_EQ(statuses[i], ECAP_E_VB_NOT_MADE);
    ARK_ASSERT_EQ(statuses[4], ECAP_E_AB_STATE);
    ARK_ASSERT_EQ(statuses[5], ECAP_E_AB_STATE);
    ARK_ASSERT_EQ(statuses[6], ECAP_OK);
    ARK_ASSERT_EQ(run.outcome, ECAP_OUTCOME_VIRGIN);
    ARK_ASSERT_STR_EQ(run.output, "hello");
    ARK_ASSERT_EQ(misuses(service), 6);
    adapt_run_release(&run);
    probe_finish();
}

static void start_consume_then_use_virgin(struct probe_xaction *x)
{
    statuses[0] = ecap_host_xaction_vb_make(x->hostx);
    statuses[1] = ecap_host_xaction_vb_make(x->hostx);
}

static void consume_and_use_virgin(void *argument)
{
    struct probe_xaction *x = argument;
    ecap_area_t area;
    statuses[2] = ecap_host_xaction_vb_content(x->hostx, 0, 2, &area);
    ARK_ASSERT_EQ(area.size, 2);
    ARK_ASSERT(memcmp(area.data, "he", 2) == 0);
    statuses[3] = ecap_host_xaction_vb_content_shift(x->hostx, 2);
    statuses[4] = ecap_host_xaction_use_virgin(x->hostx); /* consumed: refused */
    statuses[5] = ecap_host_xaction_vb_stop_making(x->hostx);
    statuses[6] = ecap_host_xaction_block_virgin(x->hostx);
}

ARK_TEST(misuse_use_virgin_after_consuming_is_refused)
{
    adapt_test_start(2);
    ecap_service_t *service = probe_register(0, 0, -1);
    probes[0].on_start = start_consume_then_use_virgin;
    struct adapt_run run = {.services = {service},
                            .service_count = 1,
                            .head = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                            .body = "hello",
                            .body_size = 5};
    adapt_run_start(&run);
    while (!__atomic_load_n(&probes[0].last, __ATOMIC_ACQUIRE))
        test_sleep_ms(1);
    test_sleep_ms(20);
    adapt_test_on_loop(0, consume_and_use_virgin, probes[0].last);
    test_wait_for_count(&run.done, 1, "the blocked chain");
    ARK_ASSERT_EQ(statuses[0], ECAP_OK);
    ARK_ASSERT_EQ(statuses[1], ECAP_E_VB_STATE);
    ARK_ASSERT_EQ(statuses[2], ECAP_OK);
    ARK_ASSERT_EQ(statuses[3], ECAP_OK);
    ARK_ASSERT_EQ(statuses[4], ECAP_E_VB_STATE);
    ARK_ASSERT_EQ(statuses[5], ECAP_OK);
    ARK_ASSERT_EQ(statuses[6], ECAP_OK);
    ARK_ASSERT_EQ(run.outcome, ECAP_OUTCOME_BLOCKED);
    ARK_ASSERT_EQ(misuses(service), 2);
    adapt_run_release(&run);
    probe_finish();
}

static void start_and_decide(struct probe_xaction *x)
{
    ecap_host_xaction_use_virgin(x->hostx);
}

static void calls_after_stop(void *argument)
{
    struct probe_xaction *x = argument;
    statuses[0] = ecap_host_xaction_use_virgin(x->hostx);
    statuses[1] = ecap_host_xaction_vb_make(x->hostx);
    statuses[2] = ecap_host_xaction_resume(x->hostx);
    statuses[3] = ecap_host_xaction_virgin(x->hostx) == NULL ? ECAP_E_STOPPED : ECAP_OK;
    statuses[4] = ecap_host_xaction_wake(x->hostx);
    statuses[5] = ecap_host_xaction_note_ab_content_done(x->hostx, 1);
}

ARK_TEST(misuse_any_call_after_stop_is_refused)
{
    adapt_test_start(2);
    ecap_service_t *service = probe_register(0, 0, -1);
    probes[0].on_start = start_and_decide;
    struct adapt_run run = {
        .services = {service}, .service_count = 1, .head = "GET / HTTP/1.1\r\nHost: h\r\n\r\n"};
    adapt_run(&run);
    ARK_ASSERT_EQ(run.outcome, ECAP_OUTCOME_VIRGIN);
    ARK_ASSERT_EQ(test_load(&probes[0].stops), 1);
    /* The probe's strong reference keeps the handle valid; every call says "stopped". */
    adapt_test_on_loop(0, calls_after_stop, probes[0].last);
    for (int i = 0; i < 6; i++)
        ARK_ASSERT_MSG(statuses[i] == ECAP_E_STOPPED, "call %d returned %d", i, statuses[i]);
    ARK_ASSERT_EQ(test_load(&probes[0].calls_after_stop), 0);
    adapt_run_release(&run);
    probe_finish();
}

static void *worker_calls(void *argument)
{
    struct probe_xaction *x = argument;
    statuses[0] = ecap_host_xaction_use_virgin(x->hostx);
    statuses[1] = ecap_host_xaction_vb_make(x->hostx);
    statuses[2] = ecap_host_xaction_resume(x->hostx);
    statuses[3] = ecap_host_xaction_virgin(x->hostx) == NULL ? ECAP_E_WRONG_THREAD : ECAP_OK;
    /* The thread-safe calls work from here. */
    ecap_host_xaction_ref(x->hostx);
    ecap_weak_t *weak = ecap_host_xaction_weak(x->hostx);
    ecap_host_xaction_t *locked = ecap_weak_lock(weak);
    statuses[4] = locked == x->hostx ? ECAP_OK : ECAP_E_INVALID;
    ecap_host_xaction_unref(locked);
    ecap_weak_release(weak);
    statuses[5] = ecap_host_xaction_wake(x->hostx);
    ecap_host_xaction_unref(x->hostx);
    return NULL;
}

static void start_with_worker(struct probe_xaction *x)
{
    pthread_t worker;
    ARK_ASSERT_EQ(pthread_create(&worker, NULL, worker_calls, x), 0);
    pthread_join(worker, NULL);
    statuses[6] = ecap_host_xaction_use_virgin(x->hostx);
}

ARK_TEST(misuse_host_call_from_worker_thread_is_refused)
{
    adapt_test_start(2);
    ecap_service_t *service = probe_register(0, 0, -1);
    probes[0].on_start = start_with_worker;
    struct adapt_run run = {.services = {service},
                            .service_count = 1,
                            .head = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n",
                            .body = "ok",
                            .body_size = 2};
    adapt_run(&run);
    for (int i = 0; i < 4; i++)
        ARK_ASSERT_MSG(statuses[i] == ECAP_E_WRONG_THREAD, "call %d returned %d", i, statuses[i]);
    ARK_ASSERT_EQ(statuses[4], ECAP_OK);
    ARK_ASSERT_EQ(statuses[5], ECAP_OK);
    ARK_ASSERT_EQ(statuses[6], ECAP_OK);
    ARK_ASSERT_EQ(run.outcome, ECAP_OUTCOME_VIRGIN);
    ARK_ASSERT_STR_EQ(run.output, "ok");
    ARK_ASSERT_EQ(misuses(service), 4);
    adapt_run_release(&run);
    probe_finish();
}

static void start_park(struct probe_xaction *x)
{
    probe_mark_ready(x);
}

static void service_resume_misbehaves(struct probe_service *s, struct probe_xaction *x)
{
    statuses[0] = ecap_host_xaction_use_virgin(x->hostx);
    statuses[1] = ecap_host_xaction_vb_make(x->hostx);
    statuses[2] = ecap_host_xaction_virgin(x->hostx) == NULL ? ECAP_E_IN_SERVICE_RESUME : ECAP_OK;
    statuses[3] = ecap_host_xaction_resume(x->hostx);
}

static void resume_decides(struct probe_xaction *x)
{
    statuses[4] = ecap_host_xaction_use_virgin(x->hostx);
}

ARK_TEST(misuse_host_call_inside_service_resume_is_refused)
{
    adapt_test_start(2);
    ecap_service_t *service = probe_register(0, 1, 0);
    probes[0].on_start = start_park;
    probes[0].on_service_resume = service_resume_misbehaves;
    probes[0].on_resume = resume_decides;
    struct adapt_run run = {.services = {service},
                            .service_count = 1,
                            .head = "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
                            .loop = 1};
    adapt_run(&run);
    for (int i = 0; i < 3; i++)
        ARK_ASSERT_MSG(statuses[i] == ECAP_E_IN_SERVICE_RESUME, "call %d returned %d", i,
                       statuses[i]);
    ARK_ASSERT_EQ(statuses[3], ECAP_OK);
    ARK_ASSERT_EQ(statuses[4], ECAP_OK);
    ARK_ASSERT_EQ(run.outcome, ECAP_OUTCOME_VIRGIN);
    ARK_ASSERT_EQ(misuses(service), 3);
    adapt_run_release(&run);
    probe_finish();
}

/* ---- polling ---- */

/* Test hooks registered after the host's: they see the timeout the host settled on. */
struct poll_watch {
    int loop;
    int iterations;           /* pre-wait calls seen while watching */
    uint64_t largest_timeout; /* while both probes had live transactions */
    int suspends_before[2];
    int suspend_missing; /* a wait without a suspend of each live service before it */
    int resume_missing;  /* a post-wait without a resume of each live service */
    int resumes_before[2];
    int armed; /* atomic */
};

static struct poll_watch watch;

static int both_live(void)
{
    return __atomic_load_n(&probes[0].last, __ATOMIC_ACQUIRE) &&
           __atomic_load_n(&probes[1].last, __ATOMIC_ACQUIRE) &&
           !__atomic_load_n(&probes[0].last->stopped, __ATOMIC_ACQUIRE) &&
           !__atomic_load_n(&probes[1].last->stopped, __ATOMIC_ACQUIRE);
}

static void watch_before(void *closure, int loop_index, uint64_t *timeout_us)
{
    if (!test_load(&watch.armed) || !both_live())
        return;
    for (int i = 0; i < 2; i++) {
        int now = test_load(&probes[i].suspends);
        if (watch.iterations > 0 && now != watch.suspends_before[i] + 1)
            watch.suspend_missing++;
        watch.suspends_before[i] = now;
        watch.resumes_before[i] = test_load(&probes[i].resumes);
    }
    if (*timeout_us > watch.largest_timeout)
        watch.largest_timeout = *timeout_us;
    test_increment(&watch.iterations);
}

static void watch_after(void *closure, int loop_index, int ready)
{
    if (!test_load(&watch.armed) || !both_live() || watch.iterations == 0)
        return;
    for (int i = 0; i < 2; i++)
        if (test_load(&probes[i].resumes) != watch.resumes_before[i] + 1)
            watch.resume_missing++;
}

static void decide_now(void *argument)
{
    struct probe_xaction *x = argument;
    ARK_ASSERT_EQ(ecap_host_xaction_use_virgin(x->hostx), ECAP_OK);
}

/* Two async services, each with an undecided transaction on loop 1, watched for a while. */
static void run_two_pending(void)
{
    adapt_test_start(2);
    ecap_service_t *slow = probe_register(0, 1, 300000);
    ecap_service_t *fast = probe_register(1, 1, 20000);
    memset(&watch, 0, sizeof(watch));
    int handle = eventer_impl_register_wait_hooks(1, watch_before, watch_after, NULL);
    ARK_ASSERT(handle >= 0);
    struct adapt_run a = {.services = {slow},
                          .service_count = 1,
                          .head = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n",
                          .loop = 1};
    struct adapt_run b = {.services = {fast},
                          .service_count = 1,
                          .head = "GET /b HTTP/1.1\r\nHost: h\r\n\r\n",
                          .loop = 1};
    adapt_run_start(&a);
    adapt_run_start(&b);
    __atomic_store_n(&watch.armed, 1, __ATOMIC_RELEASE);
    test_wait_for_count(&watch.iterations, 10, "ten loop iterations with both services pending");
    __atomic_store_n(&watch.armed, 0, __ATOMIC_RELEASE);
    adapt_test_on_loop(1, decide_now, probes[0].last);
    adapt_test_on_loop(1, decide_now, probes[1].last);
    test_wait_for_count(&a.done, 1, "chain a");
    test_wait_for_count(&b.done, 1, "chain b");
    eventer_impl_unregister_wait_hooks(handle);
    adapt_run_release(&a);
    adapt_run_release(&b);
}

ARK_TEST(polling_suspend_before_wait_timeout_never_larger_than_asked)
{
    run_two_pending();
    ARK_ASSERT_EQ(watch.suspend_missing, 0);
    ARK_ASSERT_MSG(watch.largest_timeout <= 20000,
                   "the loop planned to wait %llu us; a service asked for 20000",
                   (unsigned long long)watch.largest_timeout);
    probe_finish();
}

ARK_TEST(polling_resume_called_after_each_wait)
{
    run_two_pending();
    ARK_ASSERT_EQ(watch.resume_missing, 0);
    ARK_ASSERT(test_load(&probes[0].resumes) >= 10);
    ARK_ASSERT(test_load(&probes[1].resumes) >= 10);
    probe_finish();
}

ARK_TEST(polling_non_async_services_never_polled)
{
    adapt_test_start(2);
    ecap_service_t *sync = probe_register(0, 0, 0);
    ecap_service_t *async = probe_register(1, 1, 1000);
    struct adapt_run a = {.services = {sync},
                          .service_count = 1,
                          .head = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n",
                          .loop = 1};
    struct adapt_run b = {.services = {async},
                          .service_count = 1,
                          .head = "GET /b HTTP/1.1\r\nHost: h\r\n\r\n",
                          .loop = 1};
    adapt_run_start(&a);
    adapt_run_start(&b);
    /* The async one is polled every millisecond meanwhile; the other never. */
    while (test_load(&probes[1].resumes) < 20)
        test_sleep_ms(1);
    ARK_ASSERT_EQ(test_load(&probes[0].suspends), 0);
    ARK_ASSERT_EQ(test_load(&probes[0].resumes), 0);
    adapt_test_on_loop(1, decide_now, probes[0].last);
    adapt_test_on_loop(1, decide_now, probes[1].last);
    test_wait_for_count(&a.done, 1, "chain a");
    test_wait_for_count(&b.done, 1, "chain b");
    ARK_ASSERT_EQ(test_load(&probes[0].suspends), 0);
    ARK_ASSERT_EQ(test_load(&probes[0].resumes), 0);
    /* Nothing live: the async service is left alone too. */
    int suspends = test_load(&probes[1].suspends);
    test_sleep_ms(30);
    ARK_ASSERT_EQ(test_load(&probes[1].suspends), suspends);
    adapt_run_release(&a);
    adapt_run_release(&b);
    probe_finish();
}

static void resume_use_virgin(struct probe_xaction *x)
{
    ARK_ASSERT_EQ(ecap_host_xaction_use_virgin(x->hostx), ECAP_OK);
}

ARK_TEST(polling_host_resume_schedules_adapter_resume_later_on_its_own_thread)
{
    adapt_test_start(3);
    ecap_service_t *service = probe_register(0, 1, 0);
    probes[0].on_start = start_park;
    probes[0].on_resume = resume_use_virgin;
    enum { RUNS = 40 };
    static struct adapt_run runs[RUNS];
    memset(runs, 0, sizeof(runs));
    for (int i = 0; i < RUNS; i++) {
        runs[i] = (struct adapt_run){.services = {service},
                                     .service_count = 1,
                                     .head = "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
                                     .loop = i % 3};
        adapt_run_start(&runs[i]);
    }
    for (int i = 0; i < RUNS; i++) {
        test_wait_for_count(&runs[i].done, 1, "a chain");
        ARK_ASSERT_EQ(runs[i].outcome, ECAP_OUTCOME_VIRGIN);
        adapt_run_release(&runs[i]);
    }
    /* Each resumed exactly once, never inside the service's resume, always on its owner. */
    for (int i = 0; i < test_load(&all_count); i++)
        ARK_ASSERT_EQ(test_load(&all_xactions[i]->resumes), 1);
    ARK_ASSERT_EQ(test_load(&probes[0].resume_inside_service_resume), 0);
    ARK_ASSERT_EQ(test_load(&probes[0].resume_on_wrong_thread), 0);
    struct ecap_service_stats stats;
    ecap_service_get_stats(service, &stats);
    ARK_ASSERT_EQ(stats.xaction_resumes, RUNS);
    ARK_ASSERT_EQ(stats.misuses, 0);
    probe_finish();
}

static struct adapt_run *cancel_target;

static void service_resume_then_cancel(struct probe_service *s, struct probe_xaction *x)
{
    ARK_ASSERT_EQ(ecap_host_xaction_resume(x->hostx), ECAP_OK);
    /* The program gives up on the message before the host got to the resume. */
    ecap_chain_cancel(cancel_target->chain);
}

ARK_TEST(polling_stopped_transaction_never_resumed)
{
    adapt_test_start(2);
    ecap_service_t *service = probe_register(0, 1, 0);
    probes[0].on_start = start_park;
    probes[0].on_service_resume = service_resume_then_cancel;
    struct adapt_run run = {.services = {service},
                            .service_count = 1,
                            .head = "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
                            .loop = 1};
    cancel_target = &run;
    adapt_run(&run);
    ARK_ASSERT_EQ(run.outcome, ECAP_OUTCOME_CANCELLED);
    ARK_ASSERT_EQ(run.decisions, 0);
    ARK_ASSERT_EQ(test_load(&probes[0].stops), 1);
    ARK_ASSERT_EQ(test_load(&probes[0].last->resumes), 0);
    ARK_ASSERT_EQ(test_load(&probes[0].calls_after_stop), 0);
    struct ecap_service_stats stats;
    ecap_service_get_stats(service, &stats);
    ARK_ASSERT_EQ(stats.xaction_resumes, 0);
    ARK_ASSERT_EQ(stats.skipped_resumes, 1);
    adapt_run_release(&run);
    probe_finish();
}

/* Random suspend/resume sequences, from every loop, while transactions come and go. */
struct random_poll {
    ecap_service_t *service;
    unsigned seed;
    int rounds;
};

static void poll_randomly(void *argument)
{
    struct random_poll *p = argument;
    for (int i = 0; i < p->rounds; i++) {
        p->seed = p->seed * 1103515245u + 12345u;
        int calls = 1 + (int)((p->seed >> 16) % 4);
        int resume = (p->seed >> 8) & 1;
        for (int j = 0; j < calls; j++) {
            if (resume) {
                adapt_poll_resume(p->service);
            } else {
                struct timeval timeout = {(p->seed >> 4) % 3, 0};
                adapt_poll_suspend(p->service, &timeout);
                ARK_ASSERT(timeout.tv_sec <= 2);
            }
        }
    }
}

ARK_TEST(polling_any_order_and_number_of_suspend_and_resume)
{
    adapt_test_start(2);
    struct ecap_option options[] = {
        {"delay_ms", "1"}, {"workers", "2"}, {"wake", "0"}, {"poll_ms", "2"}};
    ecap_service_t *service =
        adapt_test_service("async", "ecap://arkenstone/adapters/async", options, 4);
    enum { RUNS = 60 };
    static struct adapt_run runs[RUNS];
    memset(runs, 0, sizeof(runs));
    struct random_poll polls[2] = {{service, 1, 200}, {service, 2, 200}};
    for (int i = 0; i < RUNS; i++) {
        runs[i] = (struct adapt_run){.services = {service},
                                     .service_count = 1,
                                     .head = "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
                                     .loop = i % 2};
        adapt_run_start(&runs[i]);
        if (i % 10 == 0) {
            adapt_test_on_loop(0, poll_randomly, &polls[0]);
            adapt_test_on_loop(1, poll_randomly, &polls[1]);
        }
    }
    for (int i = 0; i < RUNS; i++) {
        test_wait_for_count(&runs[i].done, 1, "a chain");
        ARK_ASSERT_EQ(runs[i].outcome, ECAP_OUTCOME_VIRGIN);
        adapt_run_release(&runs[i]);
    }
    struct ecap_service_stats stats;
    ecap_service_get_stats(service, &stats);
    ARK_ASSERT_EQ(stats.xaction_resumes, RUNS);
    ARK_ASSERT_EQ(stats.misuses, 0);
    ARK_ASSERT_EQ(stats.live_xactions, 0);
    adapt_test_stop();
}

ARK_TEST(wake_resumes_without_waiting_for_the_poll_timeout)
{
    /* Loops would sleep an hour and the service asks to be polled once an hour: only the
     * worker's wake can finish these transactions within the test's time (adapt_run() gives up
     * after 20 s). The analysis takes 5 ms so that the loop is asleep when it ends. */
    ARK_ASSERT_EQ(eventer_propset("max_sleeptime_ms", "3600000"), 0);
    adapt_test_start(2);
    struct ecap_option options[] = {{"delay_ms", "5"}, {"poll_ms", "3600000"}, {"wake", "1"}};
    ecap_service_t *service =
        adapt_test_service("async", "ecap://arkenstone/adapters/async", options, 3);
    for (int i = 0; i < 20; i++) {
        struct adapt_run run = {.services = {service},
                                .service_count = 1,
                                .head = "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
                                .loop = i % 2};
        adapt_run(&run);
        ARK_ASSERT_EQ(run.outcome, ECAP_OUTCOME_VIRGIN);
        adapt_run_release(&run);
    }
    struct ecap_service_stats stats;
    ecap_service_get_stats(service, &stats);
    ARK_ASSERT_EQ(stats.xaction_resumes, 20);
    /* A wake is counted only while its transaction lives: a loop that was descheduled past the
     * analysis finds the result at its next poll and the late wake is refused, uncounted. */
    ARK_ASSERT(stats.wakes >= 1 && stats.wakes <= 20);
    adapt_test_stop();
    ARK_ASSERT_EQ(eventer_propset("max_sleeptime_ms", "1000"), 0);
}

/* ---- references ---- */

static ecap_weak_t *kept_weak;

static void start_keep_weak(struct probe_xaction *x)
{
    kept_weak = ecap_host_xaction_weak(x->hostx);
    ARK_ASSERT(kept_weak != NULL);
    ecap_host_xaction_use_virgin(x->hostx);
}

static void *lock_weak(void *argument)
{
    ecap_host_xaction_t *locked = ecap_weak_lock(kept_weak);
    *(int *)argument = locked != NULL;
    if (locked)
        ecap_host_xaction_unref(locked);
    return NULL;
}

ARK_TEST(weak_reference_reports_gone_after_stop)
{
    adapt_test_start(2);
    ecap_service_t *service = probe_register(0, 0, -1);
    probes[0].on_start = start_keep_weak;
    struct adapt_run run = {
        .services = {service}, .service_count = 1, .head = "GET / HTTP/1.1\r\nHost: h\r\n\r\n"};
    adapt_run(&run);
    ARK_ASSERT_EQ(test_load(&probes[0].stops), 1);
    /* From a worker thread: gone, although the probe's strong reference keeps the handle. */
    int live = -1;
    pthread_t worker;
    ARK_ASSERT_EQ(pthread_create(&worker, NULL, lock_weak, &live), 0);
    pthread_join(worker, NULL);
    ARK_ASSERT_EQ(live, 0);
    adapt_run_release(&run);
    probe_finish();
    /* The handle is freed by now; the weak reference still answers "gone". */
    ARK_ASSERT(ecap_weak_lock(kept_weak) == NULL);
    ecap_weak_release(kept_weak);
}

static void *hammer_references(void *argument)
{
    ecap_host_xaction_t *hostx = argument;
    for (int i = 0; i < 20000; i++) {
        ecap_weak_t *weak = ecap_host_xaction_weak(hostx);
        ecap_host_xaction_t *locked = ecap_weak_lock(weak);
        if (locked)
            ecap_host_xaction_unref(locked);
        ecap_host_xaction_ref(hostx);
        ecap_host_xaction_unref(hostx);
        ecap_weak_release(weak);
    }
    ecap_host_xaction_unref(hostx);
    return NULL;
}

static pthread_t hammers[3];

static void start_hammered(struct probe_xaction *x)
{
    for (int i = 0; i < 3; i++) {
        ecap_host_xaction_ref(x->hostx);
        ARK_ASSERT_EQ(pthread_create(&hammers[i], NULL, hammer_references, x->hostx), 0);
    }
    ecap_host_xaction_use_virgin(x->hostx);
}

ARK_TEST(references_taken_and_dropped_from_worker_threads_while_stopping)
{
    adapt_test_start(2);
    ecap_service_t *service = probe_register(0, 0, -1);
    probes[0].on_start = start_hammered;
    struct adapt_run run = {
        .services = {service}, .service_count = 1, .head = "GET / HTTP/1.1\r\nHost: h\r\n\r\n"};
    adapt_run(&run);
    for (int i = 0; i < 3; i++)
        pthread_join(hammers[i], NULL);
    ARK_ASSERT_EQ(test_load(&probes[0].stops), 1);
    adapt_run_release(&run);
    probe_finish(); /* ASan: no leak, no use after free */
}
