/*
 * Out of memory inside the eventer: a loop's command queue, its recurrent list, its timer
 * structures, a job queue's thread list, job records and subqueue records fail on request
 * through the fault-injection hook (eventer_impl_faults), so these cases run under the
 * sanitizers too. Each failure is logged naming the call; nothing leaks, is freed twice, or is
 * lost without a log line. Each case runs in a child whose stderr (the error log) it then reads.
 */
#include "eventer_test_util.h"

#include <string.h>
#include <unistd.h>

#define IS_COMPLETE(mask) (((mask)&EVENTER_ASYNCH_COMPLETE) == EVENTER_ASYNCH_COMPLETE)

static int count_call(eventer_t e, int mask, void *closure, struct timeval *now)
{
    test_increment(closure);
    return 0;
}

static int count_recurrent(eventer_t e, int mask, void *closure, struct timeval *now)
{
    test_increment(closure);
    return EVENTER_RECURRENT;
}

static int loop_0_passes;

static void count_pass(void *unused)
{
    test_increment(&loop_0_passes);
}

/* Returns once loop 0 has applied every command queued to it before the call. */
static void sync_loop_0(void)
{
    int target = test_load(&loop_0_passes) + 1;
    ARK_ASSERT_EQ(eventer_impl_run_on_loop(0, count_pass, NULL), 0);
    test_wait_for_count(&loop_0_passes, target, "a pass of loop 0");
}

/* ---- timers and recurrent events added and removed from another thread ---- */

static int timer_fired;

static void timer_add_child(void *unused)
{
    test_eventer_start(2);
    test_inject(EVENTER_FAULT_COMMAND_QUEUE, 1);
    eventer_add_in_s_us(count_call, &timer_fired, 0, 1000); /* from a non-loop thread */
    ARK_ASSERT_EQ(test_injections_left(EVENTER_FAULT_COMMAND_QUEUE), 0);
    test_wait_for_count(&timer_fired, 1, "timer added without queue memory");
    test_eventer_stop();
    exit(0);
}

ARK_TEST(cross_thread_timer_add_without_queue_memory_still_fires)
{
    test_run_expecting_log(timer_add_child, "eventer_add_timed: out of memory queueing event");
}

static int recurrent_runs;

static void remove_child(void *argument)
{
    const char *which = argument;
    test_eventer_start(2);
    int64_t baseline = eventer_allocations_current();
    eventer_t e;
    if (!strcmp(which, "timer")) {
        e = eventer_add_in_s_us(count_call, &timer_fired, 60, 0);
    } else {
        e = eventer_alloc_recurrent(count_recurrent, &recurrent_runs);
        eventer_add(e);
        test_wait_for_count(&recurrent_runs, 1, "recurrent run");
    }
    sync_loop_0(); /* the add is applied: the loop holds the event */
    test_inject(EVENTER_FAULT_COMMAND_QUEUE, 1);
    ARK_ASSERT(eventer_remove(e) == e);
    ARK_ASSERT_EQ(test_injections_left(EVENTER_FAULT_COMMAND_QUEUE), 0);
    eventer_free(e); /* the caller's reference; the loop's guard keeps it until it lets go */
    sync_loop_0();
    /* The loop dropped the event from its structures and freed it: not kept until exit. */
    ARK_ASSERT_EQ(eventer_allocations_current(), baseline);
    int runs = test_load(&recurrent_runs);
    sync_loop_0();
    ARK_ASSERT_EQ(test_load(&recurrent_runs), runs);
    ARK_ASSERT_EQ(test_load(&timer_fired), 0);
    test_eventer_stop();
    exit(0);
}

static void timer_remove_child(void *unused)
{
    remove_child("timer");
}

static void recurrent_remove_child(void *unused)
{
    remove_child("recurrent");
}

ARK_TEST(cross_thread_timer_remove_without_queue_memory_frees_once)
{
    test_run_expecting_log(timer_remove_child,
                           "eventer_remove_timed: out of memory queueing event");
}

ARK_TEST(cross_thread_recurrent_remove_without_queue_memory_frees_once)
{
    test_run_expecting_log(recurrent_remove_child,
                           "eventer_remove_recurrent: out of memory queueing event");
}

/* ---- a recurrent list that cannot grow ---- */

static eventer_t recurrent_event;
static int same_thread_removed = -1;

static void add_recurrent_on_loop(void *unused)
{
    test_inject(EVENTER_FAULT_RECURRENT_LIST, 1);
    eventer_add_recurrent(recurrent_event);
    __atomic_store_n(&same_thread_removed, eventer_remove_recurrent(recurrent_event) != NULL,
                     __ATOMIC_RELEASE);
}

static void recurrent_list_child(void *unused)
{
    test_eventer_start(2);
    recurrent_event = eventer_alloc_recurrent(count_recurrent, &recurrent_runs);
    eventer_set_owner(recurrent_event, eventer_choose_owner(0));
    /* From another thread: the add reaches the loop, which has no room for it. */
    test_inject(EVENTER_FAULT_RECURRENT_LIST, 1);
    eventer_add(recurrent_event);
    sync_loop_0();
    ARK_ASSERT_EQ(test_injections_left(EVENTER_FAULT_RECURRENT_LIST), 0);
    ARK_ASSERT(eventer_remove_recurrent(recurrent_event) == NULL); /* left unregistered */
    /* On the loop itself. */
    ARK_ASSERT_EQ(eventer_impl_run_on_loop(0, add_recurrent_on_loop, NULL), 0);
    sync_loop_0();
    ARK_ASSERT_EQ(test_load(&same_thread_removed), 0);
    ARK_ASSERT_EQ(test_load(&recurrent_runs), 0);
    /* Still the caller's, and still usable once memory is back. */
    eventer_add(recurrent_event);
    test_wait_for_count(&recurrent_runs, 1, "recurrent run after memory came back");
    ARK_ASSERT(eventer_remove_recurrent(recurrent_event) == recurrent_event);
    /* eventer_remove_recurrent() does not wait for the loop: free it there. */
    sync_loop_0();
    eventer_free(recurrent_event);
    test_eventer_stop();
    exit(0);
}

ARK_TEST(recurrent_add_without_list_memory_leaves_the_event_unregistered)
{
    test_run_expecting_log(recurrent_list_child,
                           "eventer_add_recurrent: out of memory growing the recurrent list of");
}

/* ---- timers added on their loop without room in the timer structures ---- */

static int dropped_timer_fired, later_timer_fired;

static void add_timers_without_storage(void *unused)
{
    test_inject(EVENTER_FAULT_TIMER_STORAGE, 1);
    eventer_add_in_s_us(count_call, &dropped_timer_fired, 0, 1000);
    eventer_add_in_s_us(count_call, &later_timer_fired, 0, 1000);
}

static void timer_storage_child(void *unused)
{
    test_eventer_start(2);
    ARK_ASSERT_EQ(eventer_impl_run_on_loop(0, add_timers_without_storage, NULL), 0);
    test_wait_for_count(&later_timer_fired, 1, "timer added once memory was back");
    ARK_ASSERT_EQ(test_injections_left(EVENTER_FAULT_TIMER_STORAGE), 0);
    test_sleep_ms(20);
    ARK_ASSERT_EQ(test_load(&dropped_timer_fired), 0);
    test_eventer_stop(); /* and the dropped timer was freed */
    exit(0);
}

ARK_TEST(timer_without_storage_memory_is_dropped_and_reported)
{
    test_run_expecting_log(timer_storage_child, "eventer_add_timed: out of memory; timer");
}

/* ---- jobs ---- */

struct job_record {
    int work, cleanup, complete, complete_off_owner;
    int sleep_ms;
};

static int record_job(eventer_t e, int mask, void *closure, struct timeval *now)
{
    struct job_record *record = closure;
    if (mask == EVENTER_ASYNCH_WORK) {
        test_increment(&record->work);
        if (record->sleep_ms)
            test_sleep_ms(record->sleep_ms);
    } else if (mask == EVENTER_ASYNCH_CLEANUP) {
        test_increment(&record->cleanup);
    } else if (IS_COMPLETE(mask)) {
        if (!eventer_thread_check(e))
            test_increment(&record->complete_off_owner);
        test_increment(&record->complete);
    }
    return 0;
}

static void job_completion_child(void *unused)
{
    test_eventer_start(2);
    static struct job_record plain, cancelled;
    test_inject(EVENTER_FAULT_COMMAND_QUEUE, 1);
    eventer_add_asynch(NULL, eventer_alloc_asynch(record_job, &plain));
    test_wait_for_count(&plain.complete, 1, "COMPLETE without queue memory");
    ARK_ASSERT_EQ(test_injections_left(EVENTER_FAULT_COMMAND_QUEUE), 0);
    ARK_ASSERT_EQ(plain.work, 1);
    ARK_ASSERT_EQ(plain.cleanup, 1);
    ARK_ASSERT_EQ(plain.complete_off_owner, 0);
    /* A job cancelled at its deadline: the cancellation reaches the loop the same way. */
    cancelled.sleep_ms = 20000;
    struct timeval deadline;
    test_deadline_in_ms(&deadline, 100);
    eventer_t e = eventer_alloc_asynch_timeout(record_job, &cancelled, &deadline);
    eventer_set_mask(e, eventer_get_mask(e) | EVENTER_CANCEL_DEFERRED);
    eventer_add_asynch(NULL, e);
    test_wait_for_count(&cancelled.work, 1, "cancellable WORK");
    test_inject(EVENTER_FAULT_COMMAND_QUEUE, 1);
    test_wait_for_count(&cancelled.complete, 1, "COMPLETE of the cancelled job");
    ARK_ASSERT_EQ(cancelled.cleanup, 1);
    ARK_ASSERT_EQ(cancelled.complete_off_owner, 0);
    ARK_ASSERT_EQ(test_injections_left(EVENTER_FAULT_COMMAND_QUEUE), 0);
    test_eventer_stop();
    exit(0);
}

ARK_TEST(job_completion_without_queue_memory_still_completes)
{
    test_run_expecting_log(job_completion_child, "out of memory queueing COMPLETE of job");
}

ARK_TEST(job_cancellation_without_queue_memory_still_completes)
{
    test_run_expecting_log(job_completion_child, "out of memory queueing the cancellation of job");
}

static void job_record_child(void *unused)
{
    test_eventer_start(2);
    int64_t baseline = eventer_allocations_current();
    static struct job_record refused, dropped;
    test_inject(EVENTER_FAULT_JOB_RECORD, 1);
    eventer_t e = eventer_alloc_asynch(record_job, &refused);
    ARK_ASSERT(!eventer_try_add_asynch(NULL, e));
    eventer_free(e); /* refused: still ours */
    test_inject(EVENTER_FAULT_JOB_RECORD, 1);
    eventer_add_asynch(NULL, eventer_alloc_asynch(record_job, &dropped));
    ARK_ASSERT_EQ(eventer_allocations_current(), baseline); /* dropped and freed */
    /* The queue still works. */
    static struct job_record next;
    eventer_add_asynch(NULL, eventer_alloc_asynch(record_job, &next));
    test_wait_for_count(&next.complete, 1, "next job");
    ARK_ASSERT_EQ(refused.work + refused.cleanup + refused.complete, 0);
    ARK_ASSERT_EQ(dropped.work + dropped.cleanup + dropped.complete, 0);
    test_eventer_stop();
    exit(0);
}

ARK_TEST(job_record_without_memory_is_refused_or_dropped)
{
    test_run_expecting_log(job_record_child, "eventer_add_asynch: out of memory for a job; event");
    test_run_expecting_log(job_record_child,
                           "eventer_try_add_asynch: out of memory for a job; refused");
}

static void job_threads_child(void *unused)
{
    test_eventer_start(2);
    eventer_jobq_t *queue = eventer_jobq_create("thin");
    static struct job_record first, second;
    test_inject(EVENTER_FAULT_JOBQ_THREADS, 1);
    eventer_add_asynch(queue, eventer_alloc_asynch(record_job, &first));
    /* No thread could start: the job waits, queued. */
    ARK_ASSERT_EQ(eventer_jobq_get_thread_count(queue), 0);
    ARK_ASSERT_EQ(eventer_jobq_get_backlog(queue), 1);
    /* The next add starts one, which runs both. */
    eventer_add_asynch(queue, eventer_alloc_asynch(record_job, &second));
    test_wait_for_count(&first.complete, 1, "first job");
    test_wait_for_count(&second.complete, 1, "second job");
    test_eventer_stop();
    exit(0);
}

ARK_TEST(job_thread_list_without_memory_keeps_the_job_queued)
{
    test_run_expecting_log(job_threads_child, "jobq thin: out of memory starting a thread");
}

/* ---- fd triggers and updates, and functions run on a loop ---- */

static int fd_calls;

static void never_run(void *unused)
{
    test_increment(&fd_calls);
}

static void fd_child(void *argument)
{
    test_eventer_start(2);
    int64_t baseline = eventer_allocations_current();
    int fds[2];
    ARK_ASSERT_EQ(pipe(fds), 0);
    /* A trigger of an unregistered event carries its reference: dropped with it. */
    eventer_t e = eventer_alloc_fd(count_call, &fd_calls, fds[0], EVENTER_READ);
    eventer_set_owner(e, eventer_choose_owner(0));
    test_inject(EVENTER_FAULT_COMMAND_QUEUE, 1);
    eventer_trigger(e, EVENTER_READ);
    ARK_ASSERT_EQ(eventer_allocations_current(), baseline);
    /* An update of a registered event is dropped; the event stays as it was. */
    e = eventer_alloc_fd(count_call, &fd_calls, fds[0], EVENTER_READ);
    eventer_set_owner(e, eventer_choose_owner(0));
    eventer_add(e);
    test_inject(EVENTER_FAULT_COMMAND_QUEUE, 1);
    eventer_update(e, EVENTER_READ | EVENTER_WRITE);
    sync_loop_0();
    ARK_ASSERT_EQ(eventer_get_mask(e), EVENTER_READ);
    ARK_ASSERT(eventer_remove_fd(fds[0]) == e);
    sync_loop_0();
    eventer_free(e);
    /* A function that cannot be queued is refused. */
    test_inject(EVENTER_FAULT_COMMAND_QUEUE, 1);
    ARK_ASSERT_EQ(eventer_impl_run_on_loop(0, never_run, NULL), -1);
    sync_loop_0();
    ARK_ASSERT_EQ(test_load(&fd_calls), 0);
    close(fds[0]);
    close(fds[1]);
    test_eventer_stop();
    exit(0);
}

ARK_TEST(fd_trigger_and_update_without_queue_memory_are_dropped_and_reported)
{
    test_run_expecting_log(fd_child, "eventer_trigger: out of memory queueing to");
    test_run_expecting_log(fd_child, "eventer_update: out of memory queueing to");
    test_run_expecting_log(fd_child, "eventer_impl_run_on_loop: out of memory queueing to");
}

/* ---- a job subqueue whose record cannot be allocated ---- */

static void subqueue_child(void *unused)
{
    test_eventer_start(2);
    eventer_jobq_t *queue = eventer_jobq_create("subq");
    static struct job_record plain, tried, later;
    test_inject(EVENTER_FAULT_SUBQUEUE_RECORD, 1);
    eventer_add_asynch_subqueue(queue, eventer_alloc_asynch(record_job, &plain), 42);
    ARK_ASSERT_EQ(test_injections_left(EVENTER_FAULT_SUBQUEUE_RECORD), 0);
    test_wait_for_count(&plain.complete, 1, "job without its subqueue record");
    ARK_ASSERT_EQ(test_load(&plain.work), 1);
    ARK_ASSERT_EQ(test_load(&plain.cleanup), 1);
    test_inject(EVENTER_FAULT_SUBQUEUE_RECORD, 1);
    ARK_ASSERT(
        eventer_try_add_asynch_subqueue(queue, eventer_alloc_asynch(record_job, &tried), 43));
    ARK_ASSERT_EQ(test_injections_left(EVENTER_FAULT_SUBQUEUE_RECORD), 0);
    test_wait_for_count(&tried.complete, 1, "tried job without its subqueue record");
    ARK_ASSERT_EQ(test_load(&tried.work), 1);
    /* Subqueues are allocated again once memory is back. */
    eventer_add_asynch_subqueue(queue, eventer_alloc_asynch(record_job, &later), 42);
    test_wait_for_count(&later.complete, 1, "job in its own subqueue");
    ARK_ASSERT_EQ(test_load(&later.work), 1);
    ARK_ASSERT_EQ(eventer_jobq_get_backlog(queue), 0);
    test_eventer_stop(); /* ASan checks that the fallback subqueue is not freed */
    exit(0);
}

ARK_TEST(subqueue_record_without_memory_keeps_the_job)
{
    test_run_expecting_log(
        subqueue_child, "eventer_add_asynch_subqueue: out of memory for subqueue 42 of queue subq");
    test_run_expecting_log(subqueue_child, "eventer_try_add_asynch_subqueue: out of memory for "
                                           "subqueue 43 of queue subq");
}
