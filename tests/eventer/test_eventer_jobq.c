/*
 * Job queues: phases exactly once each, COMPLETE on the owner, deadlines, cancellation,
 * backlog refusal, FIFO/LIFO, subqueue round robin, dependent jobs.
 */
#include "eventer_test_util.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* WORK (0x10) and CLEANUP (0x20) share bits with COMPLETE (0x30): compare all of them. */
#define IS_COMPLETE(mask) (((mask)&EVENTER_ASYNCH_COMPLETE) == EVENTER_ASYNCH_COMPLETE)

struct job_record {
    int work, cleanup, complete;
    int complete_wrong_thread;
    int complete_mask;
    int work_finished;
    int order_index;
    int owner_loop;
    int sleep_ms;
};

static int completed_jobs;

static int record_phases(eventer_t e, int mask, void *closure, struct timeval *now)
{
    struct job_record *record = closure;
    if (mask == EVENTER_ASYNCH_WORK) {
        test_increment(&record->work);
        if (eventer_jobq_inflight() != e || eventer_in_loop())
            test_increment(&record->complete_wrong_thread);
        if (record->sleep_ms)
            test_sleep_ms(record->sleep_ms);
        test_increment(&record->work_finished);
    } else if (mask == EVENTER_ASYNCH_CLEANUP) {
        test_increment(&record->cleanup);
    } else if (IS_COMPLETE(mask)) {
        __atomic_store_n(&record->complete_mask, mask, __ATOMIC_RELEASE);
        if (test_loop_index() != record->owner_loop || !eventer_thread_check(e))
            test_increment(&record->complete_wrong_thread);
        test_increment(&record->complete);
        test_increment(&completed_jobs);
    }
    return 0;
}

#define PHASE_JOBS 300

ARK_TEST(phases_run_exactly_once_complete_on_owner)
{
    test_eventer_start(3);
    eventer_jobq_t *queue = eventer_jobq_create("phases");
    eventer_jobq_set_concurrency(queue, 4);
    static struct job_record records[PHASE_JOBS];
    for (int i = 0; i < PHASE_JOBS; i++) {
        records[i].owner_loop = i % 3;
        eventer_t e = eventer_alloc_asynch(record_phases, &records[i]);
        for (int n = 0; n < 8; n++)
            if (eventer_is_loop(eventer_choose_owner(n)) == records[i].owner_loop) {
                eventer_set_owner(e, eventer_choose_owner(n));
                break;
            }
        if (i % 2)
            eventer_add_asynch(queue, e);
        else
            eventer_add(e); /* the default queue */
    }
    test_wait_for_count(&completed_jobs, PHASE_JOBS, "completions");
    for (int i = 0; i < PHASE_JOBS; i++) {
        ARK_ASSERT_EQ(records[i].work, 1);
        ARK_ASSERT_EQ(records[i].cleanup, 1);
        ARK_ASSERT_EQ(records[i].complete, 1);
        ARK_ASSERT_EQ(records[i].complete_wrong_thread, 0);
        ARK_ASSERT_EQ(records[i].complete_mask, EVENTER_ASYNCH_COMPLETE);
    }
    ARK_ASSERT(eventer_jobq_get_concurrency(queue) == 4);
    ARK_ASSERT(eventer_default_backq(NULL) != NULL);
    test_eventer_stop();
}

ARK_TEST(late_jobs_skip_work_but_cleanup_and_complete)
{
    test_eventer_start(2);
    static struct job_record late, on_time;
    struct timeval past;
    gettimeofday(&past, NULL);
    past.tv_sec -= 1;
    eventer_t e = eventer_alloc_asynch_timeout(record_phases, &late, &past);
    eventer_add_asynch(NULL, e);
    struct timeval future;
    gettimeofday(&future, NULL);
    future.tv_sec += 60;
    eventer_add_asynch(NULL, eventer_alloc_asynch_timeout(record_phases, &on_time, &future));
    test_wait_for_count(&completed_jobs, 2, "completions");
    ARK_ASSERT_EQ(late.work, 0);
    ARK_ASSERT_EQ(late.cleanup, 1);
    ARK_ASSERT_EQ(late.complete, 1);
    ARK_ASSERT_EQ(on_time.work, 1);
    ARK_ASSERT_EQ(on_time.cleanup, 1);
    ARK_ASSERT_EQ(on_time.complete, 1);
    test_eventer_stop();
}

/* libmtev only honours a deadline whose seconds and microseconds are both non-zero; a
 * deadline on a whole second is still a deadline here. */
ARK_TEST(whole_second_deadline_is_honoured)
{
    test_eventer_start(2);
    static struct job_record late;
    struct timeval past;
    gettimeofday(&past, NULL);
    past.tv_sec -= 1;
    past.tv_usec = 0;
    eventer_add_asynch(NULL, eventer_alloc_asynch_timeout(record_phases, &late, &past));
    test_wait_for_count(&completed_jobs, 1, "completion");
    ARK_ASSERT_EQ(late.work, 0);
    ARK_ASSERT_EQ(late.cleanup, 1);
    ARK_ASSERT_EQ(late.complete, 1);
    test_eventer_stop();
}

ARK_TEST(deadline_cancels_running_work)
{
    test_eventer_start(2);
    eventer_jobq_t *queue = eventer_jobq_create("cancelling");
    static struct job_record slow, fast;
    slow.sleep_ms = 20000;
    struct timeval deadline;
    test_deadline_in_ms(&deadline, 100);
    eventer_t e = eventer_alloc_asynch_timeout(record_phases, &slow, &deadline);
    eventer_set_mask(e, eventer_get_mask(e) | EVENTER_CANCEL_DEFERRED);
    eventer_add_asynch(queue, e);
    test_wait_for_count(&completed_jobs, 1, "cancelled completion");
    ARK_ASSERT_EQ(slow.work, 1);
    ARK_ASSERT_EQ(slow.work_finished, 0);
    ARK_ASSERT_EQ(slow.cleanup, 1);
    ARK_ASSERT_EQ(slow.complete, 1);
    ARK_ASSERT_EQ(slow.complete_mask, EVENTER_ASYNCH_COMPLETE | EVENTER_CANCEL_DEFERRED);
    /* The queue still works (a new thread replaced the cancelled one). */
    eventer_add_asynch(queue, eventer_alloc_asynch(record_phases, &fast));
    test_wait_for_count(&completed_jobs, 2, "next completion");
    ARK_ASSERT_EQ(fast.work, 1);
    /* A cancellable job that finishes before its deadline is not disturbed. */
    static struct job_record quick;
    gettimeofday(&deadline, NULL);
    deadline.tv_sec += 30;
    e = eventer_alloc_asynch_timeout(record_phases, &quick, &deadline);
    eventer_set_mask(e, eventer_get_mask(e) | EVENTER_CANCEL_DEFERRED);
    eventer_add_asynch(queue, e);
    test_wait_for_count(&completed_jobs, 3, "quick completion");
    ARK_ASSERT_EQ(quick.work_finished, 1);
    test_eventer_stop();
}

/* A job whose WORK blocks in eventer_read() on a pipe nobody writes to. */
static int pipe_read_returned;

static int unused_fd_callback(eventer_t e, int mask, void *closure, struct timeval *now)
{
    return 0;
}

static int read_blocking_pipe(eventer_t e, int mask, void *closure, struct timeval *now)
{
    if (mask == EVENTER_ASYNCH_WORK) {
        char byte;
        eventer_read((eventer_t)closure, &byte, 1, NULL);
        test_increment(&pipe_read_returned);
    }
    if (IS_COMPLETE(mask))
        test_increment(&completed_jobs);
    return 0;
}

/* eventer.h: off the loop threads eventer_read() is a cancellation point, as read() is. */
ARK_TEST(deferred_cancel_stops_work_blocked_in_eventer_read)
{
    test_eventer_start(1);
    int fds[2];
    ARK_ASSERT_EQ(pipe(fds), 0);
    eventer_t reader = eventer_alloc_fd(unused_fd_callback, NULL, fds[0], EVENTER_READ);
    struct timeval deadline;
    test_deadline_in_ms(&deadline, 100);
    eventer_t e = eventer_alloc_asynch_timeout(read_blocking_pipe, reader, &deadline);
    eventer_set_mask(e, eventer_get_mask(e) | EVENTER_CANCEL_DEFERRED);
    eventer_add_asynch(eventer_jobq_create("blocked-reader"), e);
    test_wait_for_count(&completed_jobs, 1, "cancelled reader's completion");
    ARK_ASSERT_EQ(test_load(&pipe_read_returned), 0);
    eventer_free(reader);
    test_eventer_stop();
    close(fds[0]);
    close(fds[1]);
}

/* A job that blocks its queue until released. */
static int gate_open;
static int gate_entered;

static int blocking_job(eventer_t e, int mask, void *closure, struct timeval *now)
{
    if (mask == EVENTER_ASYNCH_WORK) {
        test_increment(&gate_entered);
        while (!test_load(&gate_open))
            test_sleep_ms(1);
    }
    if (IS_COMPLETE(mask))
        test_increment(&completed_jobs);
    return 0;
}

static int order_seen[32];
static int order_count;

static int ordered_job(eventer_t e, int mask, void *closure, struct timeval *now)
{
    if (mask == EVENTER_ASYNCH_WORK)
        order_seen[test_increment(&order_count) - 1] = (int)(intptr_t)closure;
    if (IS_COMPLETE(mask))
        test_increment(&completed_jobs);
    return 0;
}

ARK_TEST(backlog_limit_refuses_try_adds)
{
    test_eventer_start(2);
    eventer_jobq_t *queue = eventer_jobq_create("limited");
    eventer_jobq_set_concurrency(queue, 1);
    eventer_jobq_set_max_backlog(queue, 2);
    eventer_add_asynch(queue, eventer_alloc_asynch(blocking_job, NULL));
    test_wait_for_count(&gate_entered, 1, "blocking job");
    ARK_ASSERT(eventer_try_add_asynch(queue, eventer_alloc_asynch(ordered_job, (void *)1)));
    ARK_ASSERT(eventer_try_add_asynch(queue, eventer_alloc_asynch(ordered_job, (void *)2)));
    ARK_ASSERT_EQ(eventer_jobq_get_backlog(queue), 2);
    eventer_t refused = eventer_alloc_asynch(ordered_job, (void *)3);
    ARK_ASSERT(!eventer_try_add_asynch(queue, refused));
    eventer_free(refused); /* still ours */
    /* Plain adds ignore the limit. */
    eventer_add_asynch(queue, eventer_alloc_asynch(ordered_job, (void *)4));
    __atomic_store_n(&gate_open, 1, __ATOMIC_RELEASE);
    test_wait_for_count(&completed_jobs, 4, "completions");
    ARK_ASSERT_EQ(order_count, 3);
    test_eventer_stop();
}

/* A queue never runs more WORK phases at once than its concurrency. */
static int working_now, working_most, parallel_done;

static int parallel_job(eventer_t e, int mask, void *closure, struct timeval *now)
{
    if (mask == EVENTER_ASYNCH_WORK) {
        int running = test_increment(&working_now);
        int most = test_load(&working_most);
        while (running > most && !__atomic_compare_exchange_n(&working_most, &most, running, 0,
                                                              __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            ;
        test_sleep_ms(20);
        __atomic_sub_fetch(&working_now, 1, __ATOMIC_ACQ_REL);
    } else if (IS_COMPLETE(mask)) {
        test_increment(&parallel_done);
    }
    return 0;
}

ARK_TEST(concurrency_bounds_parallel_work)
{
    test_eventer_start(2);
    eventer_jobq_t *queue = eventer_jobq_create("three_wide");
    eventer_jobq_set_concurrency(queue, 3);
    for (int i = 0; i < 15; i++)
        eventer_add_asynch(queue, eventer_alloc_asynch(parallel_job, NULL));
    test_wait_for_count(&parallel_done, 15, "completions");
    ARK_ASSERT_LE(test_load(&working_most), 3);
    /* Threads start on demand: with 15 jobs of 20 ms waiting, more than one runs. */
    ARK_ASSERT_GE(test_load(&working_most), 2);
    test_eventer_stop();
}

static void run_ordering(int lifo)
{
    test_eventer_start(2);
    eventer_jobq_t *queue = eventer_jobq_create(lifo ? "lifo" : "fifo");
    eventer_jobq_set_concurrency(queue, 1);
    eventer_jobq_set_lifo(queue, lifo ? mtev_true : mtev_false);
    eventer_add_asynch(queue, eventer_alloc_asynch(blocking_job, NULL));
    test_wait_for_count(&gate_entered, 1, "blocking job");
    for (int i = 1; i <= 5; i++)
        eventer_add_asynch(queue, eventer_alloc_asynch(ordered_job, (void *)(intptr_t)i));
    __atomic_store_n(&gate_open, 1, __ATOMIC_RELEASE);
    test_wait_for_count(&completed_jobs, 6, "completions");
    for (int i = 0; i < 5; i++)
        ARK_ASSERT_EQ(order_seen[i], lifo ? 5 - i : i + 1);
    test_eventer_stop();
}

ARK_TEST(fifo_order)
{
    run_ordering(0);
}

ARK_TEST(lifo_order)
{
    run_ordering(1);
}

ARK_TEST(subqueues_are_served_round_robin)
{
    test_eventer_start(2);
    eventer_jobq_t *queue = eventer_jobq_create("fair");
    eventer_jobq_set_concurrency(queue, 1);
    eventer_add_asynch(queue, eventer_alloc_asynch(blocking_job, NULL));
    test_wait_for_count(&gate_entered, 1, "blocking job");
    /* Subqueue 1 floods first; 2 and 3 arrive later and still get their turns. */
    for (int i = 0; i < 4; i++)
        eventer_add_asynch_subqueue(queue, eventer_alloc_asynch(ordered_job, (void *)10), 1);
    for (int i = 0; i < 2; i++)
        eventer_add_asynch_subqueue(queue, eventer_alloc_asynch(ordered_job, (void *)20), 2);
    for (int i = 0; i < 2; i++)
        eventer_add_asynch_subqueue(queue, eventer_alloc_asynch(ordered_job, (void *)30), 3);
    __atomic_store_n(&gate_open, 1, __ATOMIC_RELEASE);
    test_wait_for_count(&completed_jobs, 9, "completions");
    int expected[8] = {10, 20, 30, 10, 20, 30, 10, 10};
    for (int i = 0; i < 8; i++)
        ARK_ASSERT_EQ(order_seen[i], expected[i]);
    test_eventer_stop();
}

/* Dependent jobs: the parent completes only after its children's CLEANUP. */
static int children_cleaned;
static int parent_saw_children;
static int parent_completed;

static int child_job(eventer_t e, int mask, void *closure, struct timeval *now)
{
    if (mask == EVENTER_ASYNCH_WORK)
        test_sleep_ms(20);
    if (mask == EVENTER_ASYNCH_CLEANUP)
        test_increment(&children_cleaned);
    return 0;
}

static int parent_job(eventer_t e, int mask, void *closure, struct timeval *now)
{
    if (mask == EVENTER_ASYNCH_WORK) {
        eventer_jobq_t *queue = closure;
        for (int i = 0; i < 3; i++)
            eventer_add_asynch_dep(queue, eventer_alloc_asynch(child_job, NULL));
    }
    if (IS_COMPLETE(mask)) {
        __atomic_store_n(&parent_saw_children, test_load(&children_cleaned), __ATOMIC_RELEASE);
        test_increment(&parent_completed);
    }
    return 0;
}

ARK_TEST(dependent_jobs_hold_the_parent)
{
    test_eventer_start(2);
    eventer_jobq_t *parents = eventer_jobq_create("parents");
    eventer_jobq_t *children = eventer_jobq_create("children");
    eventer_jobq_set_concurrency(children, 3);
    eventer_add_asynch(parents, eventer_alloc_asynch(parent_job, children));
    test_wait_for_count(&parent_completed, 1, "parent completion");
    ARK_ASSERT_EQ(test_load(&parent_saw_children), 3);
    test_eventer_stop();
}

/* COMPLETE returning a mask re-adds the event: here as a new job, three times. */
static int rerun_count;

static int rerun_job(eventer_t e, int mask, void *closure, struct timeval *now)
{
    if (IS_COMPLETE(mask))
        return test_increment(&rerun_count) < 3 ? EVENTER_ASYNCH : 0;
    return 0;
}

ARK_TEST(complete_returning_mask_readds)
{
    test_eventer_start(2);
    eventer_add_asynch(NULL, eventer_alloc_asynch(rerun_job, NULL));
    test_wait_for_count(&rerun_count, 3, "reruns");
    test_sleep_ms(20);
    ARK_ASSERT_EQ(test_load(&rerun_count), 3);
    test_eventer_stop();
}

ARK_TEST(shutdown_with_queued_jobs_frees_them)
{
    test_eventer_start(2);
    eventer_jobq_t *queue = eventer_jobq_create("stuck");
    eventer_jobq_set_concurrency(queue, 1);
    eventer_add_asynch(queue, eventer_alloc_asynch(blocking_job, NULL));
    test_wait_for_count(&gate_entered, 1, "blocking job");
    for (int i = 0; i < 10; i++)
        eventer_add_asynch(queue, eventer_alloc_asynch(ordered_job, NULL));
    __atomic_store_n(&gate_open, 1, __ATOMIC_RELEASE);
    /* Stops while jobs are queued or running: everything is freed, nothing hangs. */
    test_eventer_stop();
}

/* eventer_jobq_process_each() visits every named queue once, oldest first, back queues not. */
struct queue_visit {
    char names[16][64];
    int count;
    int late_created;
};

static void record_queue(eventer_jobq_t *queue, void *closure)
{
    struct queue_visit *visit = closure;
    if (visit->count < 16)
        snprintf(visit->names[visit->count++], sizeof(visit->names[0]), "%s",
                 eventer_jobq_get_queue_name(queue));
    /* The registry is not locked here: creating a queue from the visitor is allowed. */
    if (!visit->late_created) {
        visit->late_created = 1;
        ARK_ASSERT(eventer_jobq_create("made_while_visiting"));
    }
}

static int visit_index(const struct queue_visit *visit, const char *name)
{
    for (int i = 0; i < visit->count; i++)
        if (!strcmp(visit->names[i], name))
            return i;
    return -1;
}

ARK_TEST(process_each_visits_every_queue_including_runtime_ones)
{
    test_eventer_start(2);
    eventer_jobq_t *first = eventer_jobq_create("runtime_first");
    eventer_jobq_set_concurrency(first, 3);
    ARK_ASSERT(eventer_jobq_create("runtime_second"));
    struct queue_visit visit = {.count = 0};
    int visited = eventer_jobq_process_each(record_queue, &visit);
    ARK_ASSERT_EQ(visited, visit.count);
    ARK_ASSERT_GE(visit_index(&visit, "default_queue"), 0);
    ARK_ASSERT_GT(visit_index(&visit, "runtime_first"), visit_index(&visit, "default_queue"));
    ARK_ASSERT_GT(visit_index(&visit, "runtime_second"), visit_index(&visit, "runtime_first"));
    ARK_ASSERT_EQ(visit_index(&visit, "made_while_visiting"), -1);
    for (int i = 0; i < visit.count; i++)
        ARK_ASSERT_MSG(strncmp(visit.names[i], "default_back_queue", 18), "visited %s",
                       visit.names[i]);
    struct queue_visit again = {.count = 0, .late_created = 1};
    ARK_ASSERT_EQ(eventer_jobq_process_each(record_queue, &again), visited + 1);
    ARK_ASSERT_GE(visit_index(&again, "made_while_visiting"), 0);
    ARK_ASSERT_EQ(eventer_jobq_process_each(NULL, NULL), 0);
    test_eventer_stop();
}

/* ---- threads: started on demand, beyond the floor they exit after the idle period ---- */

struct held_jobs {
    int entered, release, completed;
};

/* WORK holds its thread until `release`, so that each job occupies a thread of its own. */
static int held_job(eventer_t e, int mask, void *closure, struct timeval *now)
{
    struct held_jobs *held = closure;
    if (mask == EVENTER_ASYNCH_WORK) {
        test_increment(&held->entered);
        while (!test_load(&held->release))
            test_sleep_ms(1);
    } else if (IS_COMPLETE(mask)) {
        test_increment(&held->completed);
    }
    return 0;
}

/* Runs `count` held jobs at once on `queue` (concurrency >= count), then lets them finish. */
static void occupy_threads(eventer_jobq_t *queue, struct held_jobs *held, int count)
{
    int entered = test_load(&held->entered);
    int completed = test_load(&held->completed);
    __atomic_store_n(&held->release, 0, __ATOMIC_RELEASE);
    for (int i = 0; i < count; i++)
        eventer_add_asynch(queue, eventer_alloc_asynch(held_job, held));
    test_wait_for_count(&held->entered, entered + count, "held jobs running");
    ARK_ASSERT_EQ(eventer_jobq_get_thread_count(queue), count);
    ARK_ASSERT_EQ(eventer_jobq_get_idle_thread_count(queue), 0);
    ARK_ASSERT_EQ(eventer_jobq_get_inflight(queue), count);
    __atomic_store_n(&held->release, 1, __ATOMIC_RELEASE);
    test_wait_for_count(&held->completed, completed + count, "held jobs completed");
}

/* Waits (bounded, like test_wait_for_count) until `read(queue)` equals `target`. */
static void wait_for_queue_value(eventer_jobq_t *queue, uint32_t (*read)(eventer_jobq_t *),
                                 uint32_t target, const char *what)
{
    const char *scale_text = getenv("ARK_TEST_TIMEOUT_SCALE");
    int scale = scale_text && atoi(scale_text) > 1 ? atoi(scale_text) : 1;
    for (int waited = 0; waited < 20000 * scale; waited++) {
        if (read(queue) == target)
            return;
        test_sleep_ms(1);
    }
    ark_test_fail(__FILE__, __LINE__, "timed out waiting for %s: %u, not %u", what, read(queue),
                  target);
}

ARK_TEST(idle_threads_beyond_the_floor_exit_and_the_floor_stays)
{
    test_eventer_start(2);
    eventer_jobq_t *queue = eventer_jobq_create("floored");
    ARK_ASSERT_EQ(eventer_jobq_get_thread_count(queue), 0); /* threads start on demand */
    ARK_ASSERT_EQ(eventer_jobq_get_idle_timeout_ms(queue), 5000);
    eventer_jobq_set_concurrency(queue, 4);
    eventer_jobq_set_floor(queue, 2);
    ARK_ASSERT_EQ(eventer_jobq_get_floor(queue), 2);
    static struct held_jobs held;
    occupy_threads(queue, &held, 4);
    /* With the default 5 s idle period, all four are still there once idle. */
    wait_for_queue_value(queue, eventer_jobq_get_idle_thread_count, 4, "idle threads");
    ARK_ASSERT_EQ(eventer_jobq_get_thread_count(queue), 4);
    /* A shorter period applies to threads already idle: the two beyond the floor exit. */
    eventer_jobq_set_idle_timeout_ms(queue, 100);
    ARK_ASSERT_EQ(eventer_jobq_get_idle_timeout_ms(queue), 100);
    wait_for_queue_value(queue, eventer_jobq_get_thread_count, 2, "threads down to the floor");
    /* The floor's threads stay, idle, for many idle periods. */
    test_sleep_ms(500);
    ARK_ASSERT_EQ(eventer_jobq_get_thread_count(queue), 2);
    ARK_ASSERT_EQ(eventer_jobq_get_idle_thread_count(queue), 2);
    /* They still run jobs; more work than the floor starts threads again. */
    occupy_threads(queue, &held, 3);
    wait_for_queue_value(queue, eventer_jobq_get_thread_count, 2, "threads down to the floor");
    test_eventer_stop();
}

ARK_TEST(queue_with_floor_zero_goes_back_to_no_threads)
{
    test_eventer_start(2);
    eventer_jobq_t *queue = eventer_jobq_create("unfloored");
    eventer_jobq_set_concurrency(queue, 3);
    eventer_jobq_set_idle_timeout_ms(queue, 100);
    ARK_ASSERT_EQ(eventer_jobq_get_floor(queue), 0);
    static struct held_jobs held;
    occupy_threads(queue, &held, 3);
    wait_for_queue_value(queue, eventer_jobq_get_thread_count, 0, "no threads");
    ARK_ASSERT_EQ(eventer_jobq_get_idle_thread_count(queue), 0);
    /* Work again: threads start again, and go again. */
    occupy_threads(queue, &held, 3);
    wait_for_queue_value(queue, eventer_jobq_get_thread_count, 0, "no threads again");
    /* Idle period 0: a thread beyond the floor exits as soon as it finds no job. */
    eventer_jobq_set_idle_timeout_ms(queue, 0);
    occupy_threads(queue, &held, 2);
    wait_for_queue_value(queue, eventer_jobq_get_thread_count, 0, "no threads at period 0");
    test_eventer_stop();
}

ARK_TEST(floor_above_concurrency_is_clamped)
{
    test_eventer_start(2);
    eventer_jobq_t *queue = eventer_jobq_create("clamped");
    eventer_jobq_set_concurrency(queue, 2);
    eventer_jobq_set_floor(queue, 5);
    ARK_ASSERT_EQ(eventer_jobq_get_floor(queue), 2);
    eventer_jobq_set_idle_timeout_ms(queue, 100);
    static struct held_jobs held;
    occupy_threads(queue, &held, 2);
    /* Both threads are within the clamped floor: they stay. */
    wait_for_queue_value(queue, eventer_jobq_get_idle_thread_count, 2, "idle threads");
    test_sleep_ms(500);
    ARK_ASSERT_EQ(eventer_jobq_get_thread_count(queue), 2);
    /* The floor as set comes back when the concurrency allows it. */
    eventer_jobq_set_concurrency(queue, 6);
    ARK_ASSERT_EQ(eventer_jobq_get_floor(queue), 5);
    /* Lowering the floor releases threads already idle at it. */
    eventer_jobq_set_floor(queue, 0);
    wait_for_queue_value(queue, eventer_jobq_get_thread_count, 0, "no threads after floor 0");
    test_eventer_stop();
}
