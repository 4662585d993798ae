/*
 * Eventer core: start and stop, owners, misuse messages, settings and configuration, wait
 * hooks, running on a loop, recurrent events, callback names, cross-thread load.
 */
#include "eventer_test_util.h"

#include "eventer/eventer_internal.h"

#include <mtev_conf.h>

#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>
#include <sys/wait.h>

static int stop_from_timer(eventer_t e, int mask, void *closure, struct timeval *now)
{
    int *fired = closure;
    test_increment(fired);
    eventer_shutdown();
    return 0;
}

ARK_TEST(init_then_loop_returns_after_shutdown)
{
    ARK_ASSERT_EQ(eventer_init(), 0);
    /* Defaults: one loop thread per core plus one (at least two), a default job queue. */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    ARK_ASSERT_EQ(eventer_loop_concurrency(), cores + 1 < 2 ? 2 : cores + 1);
    ARK_ASSERT(eventer_default_jobq() != NULL);
    ARK_ASSERT(eventer_jobq_retrieve("default_queue") == eventer_default_jobq());
    ARK_ASSERT_EQ(eventer_jobq_get_concurrency(eventer_default_jobq()), 10);
    ARK_ASSERT(!eventer_in_loop());
    static int fired;
    ARK_ASSERT(eventer_add_in_s_us(stop_from_timer, &fired, 0, 10000) != NULL);
    eventer_loop(); /* returns once the timer called eventer_shutdown() */
    ARK_ASSERT_EQ(test_load(&fired), 1);
    ARK_ASSERT_EQ(eventer_allocations_current(), 0);
    /* And it can start again. */
    ARK_ASSERT_EQ(eventer_init(), 0);
    test_eventer_stop();
}

static int nothing_recurrent(eventer_t e, int mask, void *closure, struct timeval *now)
{
    return mask & (EVENTER_READ | EVENTER_RECURRENT);
}

ARK_TEST(shutdown_frees_pending_events)
{
    test_eventer_start(3);
    /* A far timer, a recurrent event, an fd event: all still registered at shutdown. */
    eventer_add_in_s_us(stop_from_timer, NULL, 3600, 0);
    eventer_t recurrent = eventer_alloc_recurrent(nothing_recurrent, NULL);
    ARK_ASSERT(eventer_remove(recurrent) == NULL); /* not registered yet */
    eventer_add(recurrent);
    int fds[2];
    ARK_ASSERT_EQ(pipe(fds), 0);
    eventer_add(eventer_alloc_fd(nothing_recurrent, NULL, fds[0], EVENTER_READ));
    ARK_ASSERT_EQ(eventer_allocations_current(), 3);
    test_eventer_stop();
    close(fds[0]);
    close(fds[1]);
}

static void *stop_from_thread(void *argument)
{
    test_sleep_ms(20);
    eventer_shutdown();
    return argument;
}

ARK_TEST(shutdown_from_another_thread_and_signal_handler)
{
    test_eventer_start(2);
    pthread_t stopper;
    ARK_ASSERT_EQ(pthread_create(&stopper, NULL, stop_from_thread, NULL), 0);
    eventer_loop();
    pthread_join(stopper, NULL);
    ARK_ASSERT_EQ(eventer_allocations_current(), 0);

    test_eventer_start(2);
    struct sigaction action = {.sa_handler = (void (*)(int))eventer_shutdown};
    sigaction(SIGUSR1, &action, NULL);
    raise(SIGUSR1);
    eventer_loop();
    ARK_ASSERT_EQ(eventer_allocations_current(), 0);
}

ARK_TEST(choose_owner_spreads_over_threads_but_zero)
{
    test_eventer_start(4);
    ARK_ASSERT_EQ(eventer_loop_concurrency(), 4);
    ARK_ASSERT_EQ(eventer_is_loop(eventer_choose_owner(0)), 0);
    int seen[4] = {0};
    for (int n = 1; n <= 30; n++)
        seen[eventer_is_loop(eventer_choose_owner(n))]++;
    ARK_ASSERT_EQ(seen[0], 0);
    ARK_ASSERT_EQ(seen[1], 10);
    ARK_ASSERT_EQ(seen[2], 10);
    ARK_ASSERT_EQ(seen[3], 10);
    ARK_ASSERT_EQ(eventer_is_loop(pthread_self()), -1);
    /* Allocation off-loop picks thread 0. */
    eventer_t e = eventer_alloc();
    ARK_ASSERT_EQ(eventer_is_loop(eventer_get_owner(e)), 0);
    eventer_free(e);
    struct timeval start;
    ARK_ASSERT_EQ(eventer_get_epoch(&start), 0);
    test_eventer_stop();
    ARK_ASSERT_EQ(eventer_get_epoch(&start), -1);
}

/* ---- misuse is fatal with a message naming the call ---- */

static int nothing(eventer_t e, int mask, void *closure, struct timeval *now)
{
    return 0;
}

static void add_without_mask(void *argument)
{
    eventer_init();
    eventer_t e = eventer_alloc();
    eventer_set_callback(e, nothing);
    eventer_add(e);
}

static void add_before_init(void *argument)
{
    eventer_add(eventer_alloc_timer(nothing, NULL, &(struct timeval){0, 0}));
}

static void remove_asynch(void *argument)
{
    eventer_init();
    eventer_remove(eventer_alloc_asynch(nothing, NULL));
}

static void dep_outside_work(void *argument)
{
    eventer_init();
    eventer_add_asynch_dep(NULL, eventer_alloc_asynch(nothing, NULL));
}

static void asynch_with_timer_mask(void *argument)
{
    eventer_init();
    eventer_add_asynch(NULL, eventer_alloc_timer(nothing, NULL, &(struct timeval){0, 0}));
}


/* What a misrouted completion would do: run an asynch event's COMPLETE off its loop. */
static void complete_on_wrong_thread(void *argument)
{
    eventer_init();
    eventer_impl_jobq_complete(eventer_alloc_asynch(nothing, NULL));
}

static void expect_fatal(void (*function)(void *), const char *needle)
{
    char text[4096];
    int status = ark_test_run_in_child(function, NULL, text, sizeof(text));
    ARK_ASSERT_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
                   "expected abort for \"%s\", status %d, stderr: %s", needle, status, text);
    ARK_ASSERT_MSG(strstr(text, needle) != NULL, "expected \"%s\" in: %s", needle, text);
}

ARK_TEST(misuse_is_fatal_and_names_the_call)
{
    expect_fatal(add_without_mask, "eventer_add: event");
    expect_fatal(add_without_mask, "has no mask");
    expect_fatal(add_before_init, "eventer_add: the eventer is not running");
    expect_fatal(remove_asynch, "eventer_remove: event");
    expect_fatal(dep_outside_work, "eventer_add_asynch_dep: must be called from inside");
    expect_fatal(asynch_with_timer_mask, "eventer_add_asynch: event");
    expect_fatal(complete_on_wrong_thread, "COMPLETE phase of");
    expect_fatal(complete_on_wrong_thread, "on the wrong thread");
}


/* ---- settings and configuration ---- */

ARK_TEST(propset_rejects_unknown_and_bad_values)
{
    ARK_ASSERT_EQ(eventer_propset("no_such_key", "1"), -1);
    ARK_ASSERT_EQ(eventer_propset("concurrency", "many"), -1);
    ARK_ASSERT_EQ(eventer_propset("rlim_nofiles", "12"), -1);
    ARK_ASSERT_EQ(eventer_propset("jobq_bad", "x"), -1);
    ARK_ASSERT_EQ(eventer_propset("jobq_bad2", "1,1,2,weird"), -1);
    ARK_ASSERT_EQ(eventer_propset("default_jobq_ordering", "sideways"), -1);
    ARK_ASSERT_EQ(eventer_propset("rlim_nofiles", "4096"), 0);
    ARK_ASSERT_EQ(eventer_propset("default_queue_threads", "3"), 0);
    test_eventer_start(2);
    ARK_ASSERT_EQ(eventer_jobq_get_concurrency(eventer_default_jobq()), 3);
    test_eventer_stop();
}

static void propset_child(void *argument)
{
    /* A low soft limit that rlim_nofiles must raise (the hard limit allows 1024 here). */
    struct rlimit limit;
    ARK_ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
    ARK_ASSERT(limit.rlim_max == RLIM_INFINITY || limit.rlim_max >= 1024);
    limit.rlim_cur = 300;
    ARK_ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &limit), 0);
    ARK_ASSERT_EQ(eventer_propset("rlim_nofiles", "1024"), 0);
    ARK_ASSERT_EQ(eventer_propset("concurrency", "3"), 0);
    ARK_ASSERT_EQ(eventer_propset("default_jobq_ordering", "lifo"), 0);
    ARK_ASSERT_EQ(eventer_propset("jobq_disk", "3,1,6,none,7,fifo"), 0);
    ARK_ASSERT_EQ(eventer_init(), 0);
    ARK_ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
    ARK_ASSERT_EQ(limit.rlim_cur, 1024);
    ARK_ASSERT_EQ(eventer_loop_concurrency(), 3);
    ARK_ASSERT(eventer_jobq_get_lifo(eventer_default_jobq()));
    eventer_jobq_t *disk = eventer_jobq_retrieve("disk");
    ARK_ASSERT(disk != NULL);
    ARK_ASSERT_EQ(eventer_jobq_get_concurrency(disk), 3);
    ARK_ASSERT_EQ(eventer_jobq_get_max_backlog(disk), 7);
    ARK_ASSERT(!eventer_jobq_get_lifo(disk));
    uint32_t min = 0, max = 0;
    eventer_jobq_get_min_max(disk, &min, &max);
    ARK_ASSERT_EQ(min, 1);
    ARK_ASSERT_EQ(max, 6);
    /* A queue setting given while running applies at once. */
    ARK_ASSERT_EQ(eventer_propset("jobq_disk", "5"), 0);
    ARK_ASSERT_EQ(eventer_jobq_get_concurrency(disk), 5);
    test_eventer_stop();
    exit(0);
}

ARK_TEST(propset_keys_take_effect)
{
    char text[4096];
    int status = ark_test_run_in_child(propset_child, NULL, text, sizeof(text));
    ARK_ASSERT_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d: %s", status, text);
}

/* ---- running out of memory is reported and survived ---- */

/* The sanitizers reserve far more address space than any limit this test could set. */
#if !defined(ARK_ASAN) && !defined(ARK_TSAN)
#define OOM_SLOTS 4000000

static long address_space_in_use(void)
{
    FILE *status = fopen("/proc/self/status", "r");
    char line[256];
    long kilobytes = -1;
    while (status && fgets(line, sizeof(line), status))
        if (sscanf(line, "VmSize: %ld kB", &kilobytes) == 1)
            break;
    if (status)
        fclose(status);
    return kilobytes * 1024;
}

static int after_oom_fired;

static void out_of_memory_child(void *argument)
{
    test_eventer_start(2);
    eventer_t *events = calloc(OOM_SLOTS, sizeof(eventer_t));
    ARK_ASSERT(events != NULL);
    memset(events, 0, OOM_SLOTS * sizeof(eventer_t)); /* mapped now, not under the limit */
    long in_use = address_space_in_use();
    ARK_ASSERT(in_use > 0);
    struct rlimit saved, limited;
    ARK_ASSERT_EQ(getrlimit(RLIMIT_AS, &saved), 0);
    limited = saved;
    limited.rlim_cur = (rlim_t)in_use + (32 << 20);
    ARK_ASSERT_EQ(setrlimit(RLIMIT_AS, &limited), 0);
    long made = 0;
    while (made < OOM_SLOTS && (events[made] = eventer_alloc()) != NULL)
        made++;
    ARK_ASSERT_EQ(setrlimit(RLIMIT_AS, &saved), 0);
    ARK_ASSERT_MSG(made < OOM_SLOTS, "never ran out of memory (%ld events)", made);
    ARK_ASSERT_EQ(eventer_allocations_current(), made);
    for (long i = 0; i < made; i++)
        eventer_free(events[i]);
    free(events);
    /* The loops are unharmed: a timer still fires. */
    eventer_add_in_s_us(stop_from_timer, &after_oom_fired, 0, 1000);
    test_wait_for_count(&after_oom_fired, 1, "timer after running out of memory");
    test_eventer_stop();
    exit(0);
}

ARK_TEST(out_of_memory_is_reported_and_survived)
{
    char text[4096];
    int status = ark_test_run_in_child(out_of_memory_child, NULL, text, sizeof(text));
    ARK_ASSERT_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d: %s", status, text);
    ARK_ASSERT_MSG(strstr(text, "eventer_alloc: out of memory") != NULL, "stderr: %s", text);
}
#endif

/* ---- logging: debug/eventer is off unless asked for ---- */

static int debug_lines;
static char debug_text[256];

static void count_debug_line(void *closure, mtev_log_stream_t stream, const char *line,
                             size_t length)
{
    if (test_increment(&debug_lines) == 1)
        snprintf(debug_text, sizeof(debug_text), "%.*s", (int)length, line);
}

ARK_TEST(debug_eventer_stream_is_off_unless_enabled)
{
    mtev_log_stream_t debug = mtev_log_stream_find("debug/eventer");
    ARK_ASSERT(debug != NULL);
    ARK_ASSERT(!mtev_log_stream_is_enabled(debug));
    mtev_log_stream_set_writer(debug, count_debug_line, NULL);
    /* eventer_init() has a debug line; off, it must not reach the output. */
    test_eventer_start(2);
    test_eventer_stop();
    ARK_ASSERT_EQ(test_load(&debug_lines), 0);
    mtev_log_stream_enable(debug, mtev_true);
    test_eventer_start(2);
    test_eventer_stop();
    ARK_ASSERT(test_load(&debug_lines) >= 1);
    ARK_ASSERT_MSG(strstr(debug_text, "eventer_init") != NULL, "debug line: %s", debug_text);
    mtev_log_stream_set_writer(debug, NULL, NULL);
    mtev_log_stream_inherit(debug);
}

ARK_TEST(eventer_config_section_takes_effect)
{
    const char *xml = "<app>\n"
                      "  <eventer>\n"
                      "    <config>\n"
                      "      <concurrency>3</concurrency>\n"
                      "      <default_queue_threads>2</default_queue_threads>\n"
                      "      <jobq_io>4,1,8,gc,5,lifo</jobq_io>\n"
                      "      <rlim_nofiles>2048</rlim_nofiles>\n"
                      "    </config>\n"
                      "  </eventer>\n"
                      "</app>\n";
    ARK_ASSERT_EQ(mtev_conf_load_string("test", xml), 0);
    ARK_ASSERT_EQ(eventer_init(), 0);
    ARK_ASSERT_EQ(eventer_loop_concurrency(), 3);
    ARK_ASSERT_EQ(eventer_jobq_get_concurrency(eventer_default_jobq()), 2);
    eventer_jobq_t *io = eventer_jobq_retrieve("io");
    ARK_ASSERT(io != NULL);
    ARK_ASSERT_EQ(eventer_jobq_get_concurrency(io), 4);
    ARK_ASSERT_EQ(eventer_jobq_get_max_backlog(io), 5);
    ARK_ASSERT(eventer_jobq_get_lifo(io));
    uint32_t min = 0, max = 0;
    eventer_jobq_get_min_max(io, &min, &max);
    ARK_ASSERT_EQ(min, 1);
    ARK_ASSERT_EQ(max, 8);
    ARK_ASSERT(eventer_jobq_create("io") == io);
    test_eventer_stop();
    mtev_conf_unload();
}

/* ---- hooks for other layers ---- */

static int pre_calls, post_calls, ran_on;

static void lower_timeout(void *closure, int loop_index, uint64_t *timeout_us)
{
    if (loop_index == 1) {
        test_increment(&pre_calls);
        *timeout_us = 1000; /* 1 ms: makes the loop spin around visibly */
    }
}

static void after_wait(void *closure, int loop_index, int ready)
{
    if (loop_index == 1)
        test_increment(&post_calls);
}

static void record_loop(void *closure)
{
    __atomic_store_n(&ran_on, test_loop_index() + 100, __ATOMIC_RELEASE);
}

ARK_TEST(wait_hooks_and_run_on_loop)
{
    test_eventer_start(2);
    int handle = eventer_impl_register_wait_hooks(1, lower_timeout, after_wait, NULL);
    ARK_ASSERT(handle >= 0);
    eventer_add_timer_next_opportunity(nothing, NULL, eventer_choose_owner(1));
    /* With a 1 ms timeout the loop iterates by itself, even with nothing to do. */
    test_wait_for_count(&pre_calls, 20, "pre-wait hook calls");
    test_wait_for_count(&post_calls, 20, "post-wait hook calls");
    eventer_impl_unregister_wait_hooks(handle);
    ARK_ASSERT_EQ(eventer_impl_run_on_loop(1, record_loop, NULL), 0);
    ARK_ASSERT_EQ(eventer_impl_run_on_loop(7, record_loop, NULL), -1);
    int target = 101;
    test_wait_for_count(&ran_on, target, "run_on_loop");
    ARK_ASSERT_EQ(test_load(&ran_on), 101);
    test_eventer_stop();
}

static uint64_t seen_timeout_us;
static int seen_waits;

static void record_timeout(void *closure, int loop_index, uint64_t *timeout_us)
{
    __atomic_store_n(&seen_timeout_us, *timeout_us, __ATOMIC_RELEASE);
    test_increment(&seen_waits);
}

static void wake_only(void *closure)
{
}

static int idle_recurrent(eventer_t e, int mask, void *closure, struct timeval *now)
{
    return 0;
}

/* The wait the loop plans after being woken (the hook sees it before the poller does). */
static uint64_t next_planned_wait(void)
{
    int before = test_load(&seen_waits);
    ARK_ASSERT_EQ(eventer_impl_run_on_loop(1, wake_only, NULL), 0);
    test_wait_for_count(&seen_waits, before + 1, "a wait of loop 1");
    return __atomic_load_n(&seen_timeout_us, __ATOMIC_ACQUIRE);
}

ARK_TEST(max_sleeptime_bounds_waits_of_loops_with_recurrent_events)
{
    ARK_ASSERT_EQ(eventer_propset("max_sleeptime_ms", "50"), 0);
    ARK_ASSERT_EQ(eventer_propset("max_sleeptime_ms", "0"), -1);
    test_eventer_start(2);
    int handle = eventer_impl_register_wait_hooks(1, record_timeout, NULL, NULL);
    ARK_ASSERT(handle >= 0);
    /* Nothing to do: the loop sleeps until something wakes it. */
    ARK_ASSERT(next_planned_wait() == UINT64_MAX);
    /* A recurrent event must run at least every max_sleeptime. */
    eventer_t e = eventer_alloc_recurrent(idle_recurrent, NULL);
    eventer_set_owner(e, eventer_choose_owner(1));
    eventer_add(e);
    uint64_t planned = next_planned_wait();
    ARK_ASSERT_MSG(planned <= 50000, "planned wait %llu us", (unsigned long long)planned);
    /* A timer bounds the wait by its deadline, recurrent events or not. */
    ARK_ASSERT(eventer_remove(e) == e);
    eventer_free(e);
    next_planned_wait(); /* the iteration that drops the removed event */
    eventer_t timer = eventer_alloc_timer_next_opportunity(nothing, NULL, eventer_choose_owner(1));
    struct timeval in_a_minute;
    gettimeofday(&in_a_minute, NULL);
    in_a_minute.tv_sec += 60;
    eventer_update_whence(timer, in_a_minute);
    eventer_add(timer);
    planned = next_planned_wait();
    ARK_ASSERT_MSG(planned > 50000 && planned <= 60000000, "planned wait %llu us",
                   (unsigned long long)planned);
    eventer_impl_unregister_wait_hooks(handle);
    test_eventer_stop();
}

/* ---- recurrent events ---- */

static int recurrent_calls, recurrent_wrong_thread;

static int count_recurrent(eventer_t e, int mask, void *closure, struct timeval *now)
{
    if (mask != EVENTER_RECURRENT || !eventer_thread_check(e))
        test_increment(&recurrent_wrong_thread);
    test_increment(&recurrent_calls);
    return 0;
}

ARK_TEST(recurrent_runs_each_iteration_until_removed)
{
    test_eventer_start(2);
    eventer_t e = eventer_alloc_recurrent(count_recurrent, NULL);
    eventer_set_owner(e, eventer_choose_owner(1));
    eventer_add(e);
    eventer_add_recurrent(e); /* duplicate: ignored */
    /* Recurrent events run when the loop iterates: make it iterate. */
    for (int i = 0; i < 50 && test_load(&recurrent_calls) < 5; i++) {
        eventer_wakeup(e);
        test_sleep_ms(2);
    }
    test_wait_for_count(&recurrent_calls, 5, "recurrent calls");
    ARK_ASSERT(eventer_remove(e) == e);
    ARK_ASSERT(eventer_remove(e) == NULL);
    test_sleep_ms(20);
    int after = test_load(&recurrent_calls);
    for (int i = 0; i < 5; i++) {
        eventer_wakeup(e);
        test_sleep_ms(2);
    }
    /* Removal takes effect at the loop's next iteration; at most one call may be in flight. */
    ARK_ASSERT_LE(test_load(&recurrent_calls), after + 1);
    ARK_ASSERT_EQ(test_load(&recurrent_wrong_thread), 0);
    eventer_free(e);
    test_eventer_stop();
}

/* ---- callback names ---- */

static int named_one(eventer_t e, int mask, void *closure, struct timeval *now)
{
    return 0;
}

static void describe_named(char *buffer, int capacity, eventer_t e, void *closure)
{
    snprintf(buffer, (size_t)capacity, "described fd %d", eventer_get_fd(e));
}

ARK_TEST(callback_names)
{
    ARK_ASSERT_EQ(eventer_name_callback("named_one", named_one), 0);
    ARK_ASSERT(eventer_callback_for_name("named_one") == named_one);
    ARK_ASSERT(eventer_callback_for_name("missing") == NULL);
    ARK_ASSERT_STR_EQ(eventer_name_for_callback(named_one), "named_one");
    ARK_ASSERT(eventer_name_for_callback(nothing) == NULL);
    ARK_ASSERT_EQ(eventer_name_callback_ext("named_one", nothing, NULL, NULL), -1);
    ARK_ASSERT_EQ(eventer_name_callback_ext("named_one", named_one, describe_named, NULL), 0);
    eventer_t e = eventer_alloc_fd(named_one, NULL, 7, EVENTER_READ);
    ARK_ASSERT_STR_EQ(eventer_name_for_callback_e(named_one, e), "described fd 7");
    eventer_free(e);
}

/* ---- cross-thread load ---- */

#define LOAD_THREADS    4
#define LOAD_PER_THREAD 2000

static int load_fired, load_wrong_thread;

static int load_timer(eventer_t e, int mask, void *closure, struct timeval *now)
{
    if (!eventer_thread_check(e))
        test_increment(&load_wrong_thread);
    test_increment(&load_fired);
    return 0;
}

static int load_triggered(eventer_t e, int mask, void *closure, struct timeval *now)
{
    if (!eventer_thread_check(e))
        test_increment(&load_wrong_thread);
    test_increment(&load_fired);
    return 0;
}

static void *load_thread(void *argument)
{
    int index = (int)(intptr_t)argument;
    for (int i = 0; i < LOAD_PER_THREAD; i++) {
        pthread_t owner = eventer_choose_owner(index + i);
        if (i % 2 == 0) {
            eventer_t e = eventer_alloc_timer_next_opportunity(load_timer, NULL, owner);
            eventer_add(e);
        } else {
            /* An unregistered fd event triggered from here: runs on its owner, returns 0. */
            eventer_t e = eventer_alloc_fd(load_triggered, NULL, 0, EVENTER_READ);
            eventer_set_owner(e, owner);
            eventer_trigger(e, EVENTER_READ);
        }
        if (i % 3 == 0) {
            /* A far timer removed again from this thread. */
            eventer_t far = eventer_in_s_us(load_timer, NULL, 3600, 0);
            eventer_set_owner(far, owner);
            eventer_add(far);
            eventer_t removed = eventer_remove(far);
            if (removed)
                eventer_free(removed);
            else
                test_increment(&load_wrong_thread);
        }
    }
    return NULL;
}

ARK_TEST(cross_thread_add_trigger_remove_under_load)
{
    test_eventer_start(3);
    pthread_t threads[LOAD_THREADS];
    for (int i = 0; i < LOAD_THREADS; i++)
        ARK_ASSERT_EQ(pthread_create(&threads[i], NULL, load_thread, (void *)(intptr_t)i), 0);
    for (int i = 0; i < LOAD_THREADS; i++)
        pthread_join(threads[i], NULL);
    test_wait_for_count(&load_fired, LOAD_THREADS * LOAD_PER_THREAD, "cross-thread events");
    ARK_ASSERT_EQ(test_load(&load_fired), LOAD_THREADS * LOAD_PER_THREAD);
    ARK_ASSERT_EQ(test_load(&load_wrong_thread), 0);
    test_eventer_stop();
}
