/*
 * Jobs from co-routines: the simple form, the phased form with deadlines, running classic
 * asynch events, gates fanning out several jobs, try_ forms refusing on a full backlog,
 * cos resuming on their own thread, teardown while jobs are outstanding, misuse.
 */
#include "eventer_aco_test_util.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

struct job_record {
    int work_thread_is_loop; /* eventer_is_loop() of the WORK thread */
    int in_job;              /* eventer_jobq_inflight() was set during WORK */
    int phases[4];
    int phase_count;
    int complete_loop;
    int value;
};

static void simple_work(void *closure)
{
    struct job_record *r = closure;
    r->work_thread_is_loop = test_loop_index();
    r->in_job = eventer_jobq_inflight() != NULL;
    r->value = 42;
}

struct co_result {
    int home;
    int after;
    int ok;
    int done;
};

static void simple_job_co(void)
{
    struct co_result *result = eventer_aco_arg();
    struct job_record *r = calloc(1, sizeof(*r));
    result->home = test_loop_index();
    errno = EPROTO;
    eventer_aco_simple_asynch(simple_work, r);
    result->after = test_loop_index();
    result->ok = r->value == 42 && r->work_thread_is_loop == -1 && r->in_job && errno == EPROTO;
    free(r);
    test_increment(&result->done);
    aco_exit();
}

ARK_TEST(simple_asynch_runs_on_a_job_thread_and_resumes_on_the_co_thread)
{
    test_eventer_start(3);
    static struct co_result results[6];
    for (int i = 0; i < 6; i++)
        eventer_aco_start_on(eventer_choose_owner(i), simple_job_co, &results[i], 0, 0);
    for (int i = 0; i < 6; i++) {
        test_wait_for_count(&results[i].done, 1, "simple job");
        ARK_ASSERT_EQ(results[i].ok, 1);
        ARK_ASSERT_EQ(results[i].after, results[i].home);
        ARK_ASSERT_EQ(results[i].home, eventer_is_loop(eventer_choose_owner(i)));
    }
    test_eventer_stop();
}

static void phased_work(eventer_asynch_op_t op, void *closure)
{
    struct job_record *r = closure;
    if (r->phase_count < 4)
        r->phases[r->phase_count++] = op;
    if (op == EVENTER_ASYNCH_WORK)
        r->work_thread_is_loop = test_loop_index();
    if (op == EVENTER_ASYNCH_COMPLETE)
        r->complete_loop = test_loop_index();
}

struct phased_probe {
    struct timeval *deadline;
    struct job_record record;
    int home;
    int done;
};

static void phased_job_co(void)
{
    struct phased_probe *p = eventer_aco_arg();
    p->home = test_loop_index();
    eventer_aco_asynch_queue_subqueue_deadline(phased_work, &p->record, NULL, 7, p->deadline);
    test_increment(&p->done);
    aco_exit();
}

ARK_TEST(asynch_calls_each_phase_once_complete_on_the_co_thread)
{
    test_eventer_start(2);
    static struct phased_probe p;
    eventer_aco_start_on(eventer_choose_owner(1), phased_job_co, &p, 0, 0);
    test_wait_for_count(&p.done, 1, "phased job");
    ARK_ASSERT_EQ(p.record.phase_count, 3);
    ARK_ASSERT_EQ(p.record.phases[0], EVENTER_ASYNCH_WORK);
    ARK_ASSERT_EQ(p.record.phases[1], EVENTER_ASYNCH_CLEANUP);
    ARK_ASSERT_EQ(p.record.phases[2], EVENTER_ASYNCH_COMPLETE);
    ARK_ASSERT_EQ(p.record.work_thread_is_loop, -1);
    ARK_ASSERT_EQ(p.record.complete_loop, p.home);
    test_eventer_stop();
}

ARK_TEST(asynch_past_its_deadline_skips_work_only)
{
    test_eventer_start(2);
    static struct phased_probe p;
    static struct timeval past;
    gettimeofday(&past, NULL);
    past.tv_sec -= 10;
    p.deadline = &past;
    eventer_aco_start(phased_job_co, &p);
    test_wait_for_count(&p.done, 1, "late job");
    ARK_ASSERT_EQ(p.record.phase_count, 2);
    ARK_ASSERT_EQ(p.record.phases[0], EVENTER_ASYNCH_CLEANUP);
    ARK_ASSERT_EQ(p.record.phases[1], EVENTER_ASYNCH_COMPLETE);
    test_eventer_stop();
}

/* A classic asynch event run from a co. */
struct classic_counts {
    int work, cleanup, complete;
    int complete_loop;
};

static int classic_job(eventer_t e, int mask, void *closure, struct timeval *now)
{
    struct classic_counts *c = closure;
    if (mask == EVENTER_ASYNCH_WORK)
        test_increment(&c->work);
    else if (mask == EVENTER_ASYNCH_CLEANUP)
        test_increment(&c->cleanup);
    else if ((mask & EVENTER_ASYNCH_COMPLETE) == EVENTER_ASYNCH_COMPLETE) {
        test_increment(&c->complete);
        c->complete_loop = test_loop_index();
    }
    return 0;
}

struct run_probe {
    struct classic_counts *counts;
    int home;
    int done;
};

static void run_classic_co(void)
{
    struct run_probe *p = eventer_aco_arg();
    p->home = test_loop_index();
    eventer_t e = eventer_alloc_asynch(classic_job, p->counts);
    eventer_aco_run_asynch(e);
    /* Nothing ran it as a job: it is still ours, untouched. */
    ARK_ASSERT_EQ(eventer_get_mask(e), EVENTER_ASYNCH);
    eventer_free(e);
    test_increment(&p->done);
    aco_exit();
}

ARK_TEST(run_asynch_calls_a_classic_event_for_every_phase)
{
    test_eventer_start(2);
    static struct classic_counts counts;
    static struct run_probe p = {&counts, 0, 0};
    eventer_aco_start_on(eventer_choose_owner(1), run_classic_co, &p, 0, 0);
    test_wait_for_count(&p.done, 1, "run_asynch");
    ARK_ASSERT_EQ(counts.work, 1);
    ARK_ASSERT_EQ(counts.cleanup, 1);
    ARK_ASSERT_EQ(counts.complete, 1);
    ARK_ASSERT_EQ(counts.complete_loop, p.home);
    test_eventer_stop();
}

/* ---- gates ---- */

static int gate_jobs_done;

static void count_job(void *closure)
{
    test_sleep_ms(1 + (int)(intptr_t)closure % 3);
    test_increment(&gate_jobs_done);
}

static void count_phased(eventer_asynch_op_t op, void *closure)
{
    if (op == EVENTER_ASYNCH_WORK)
        count_job(closure);
}

struct gate_probe {
    int seen_at_wait_end;
    int empty_gate_ok;
    int done;
};

static void fan_out_co(void)
{
    struct gate_probe *p = eventer_aco_arg();
    eventer_jobq_t *queue = eventer_jobq_create("aco_fan_out");
    eventer_jobq_set_concurrency(queue, 4);
    eventer_aco_gate_t gate = eventer_aco_gate();
    static struct classic_counts counts;
    eventer_t classic = eventer_alloc_asynch(classic_job, &counts);
    for (intptr_t i = 0; i < 12; i++)
        eventer_aco_simple_asynch_queue_gated(gate, count_job, (void *)i, queue);
    for (intptr_t i = 0; i < 4; i++)
        eventer_aco_asynch_queue_gated(gate, count_phased, (void *)i, queue);
    eventer_aco_run_asynch_queue_gated(gate, queue, classic);
    /* Gated calls never wait: most jobs are still queued or running here. */
    eventer_aco_gate_wait(gate);
    p->seen_at_wait_end = test_load(&gate_jobs_done) + test_load(&counts.complete) * 100;
    eventer_free(classic);
    eventer_aco_gate_t empty = eventer_aco_gate();
    eventer_aco_gate_wait(empty);
    p->empty_gate_ok = 1;
    test_increment(&p->done);
    aco_exit();
}

ARK_TEST(gates_wait_for_every_gated_job)
{
    test_eventer_start(2);
    static struct gate_probe p;
    eventer_aco_start(fan_out_co, &p);
    test_wait_for_count(&p.done, 1, "gate");
    ARK_ASSERT_EQ(p.seen_at_wait_end, 16 + 100);
    ARK_ASSERT_EQ(p.empty_gate_ok, 1);
    test_eventer_stop();
}

/* ---- holds released by other threads ---- */

struct hold_probe {
    eventer_aco_gate_t gate;
    int holding;         /* the co has its holds and waits */
    int thread_released; /* the plain thread set this just before its release */
    int seen_after_wait; /* thread_released as the co saw it when the wait returned */
    int done;
};

static void *release_from_thread(void *argument)
{
    struct hold_probe *p = argument;
    test_wait_for_count(&p->holding, 1, "holds taken");
    test_sleep_ms(50); /* the co is parked in eventer_aco_gate_wait() by now, most likely */
    test_increment(&p->thread_released);
    eventer_aco_gate_release(p->gate);
    return NULL;
}

static void hold_co(void)
{
    struct hold_probe *p = eventer_aco_arg();
    eventer_aco_gate_t gate = eventer_aco_gate();
    eventer_aco_gate_hold(gate);
    eventer_aco_gate_hold(gate);
    p->gate = gate;
    /* Released on the gate's own loop: counts down at once, no wake-up needed. */
    eventer_aco_gate_release(gate);
    test_increment(&p->holding);
    eventer_aco_gate_wait(gate);
    p->seen_after_wait = test_load(&p->thread_released);
    test_increment(&p->done);
    aco_exit();
}

ARK_TEST(gate_hold_released_by_a_plain_thread_wakes_the_waiting_co)
{
    test_eventer_start(2);
    static struct hold_probe p;
    pthread_t thread;
    ARK_ASSERT_EQ(pthread_create(&thread, NULL, release_from_thread, &p), 0);
    eventer_aco_start(hold_co, &p);
    test_wait_for_count(&p.done, 1, "co woken by the release");
    ARK_ASSERT_EQ(p.seen_after_wait, 1);
    pthread_join(thread, NULL);
    test_eventer_stop();
}

/* A hold can outlive its co and its loop: the gate lives until the last release. */
struct abandoned_gate_probe {
    eventer_aco_gate_t gate;
    int holding;
};

static void hold_twice_and_wait_co(void)
{
    struct abandoned_gate_probe *p = eventer_aco_arg();
    eventer_aco_gate_t gate = eventer_aco_gate();
    eventer_aco_gate_hold(gate);
    eventer_aco_gate_hold(gate);
    p->gate = gate;
    test_increment(&p->holding);
    eventer_aco_gate_wait(gate); /* never returns: the loop stops first */
    aco_exit();
}

ARK_TEST(gate_holds_released_after_the_eventer_stopped_free_the_gate)
{
    test_eventer_start(1);
    static struct abandoned_gate_probe p;
    eventer_aco_start(hold_twice_and_wait_co, &p);
    test_wait_for_count(&p.holding, 1, "holds taken");
    test_sleep_ms(20); /* parked in its wait by now, most likely; either way must work */
    test_eventer_stop();
    /* The co and its loop are gone; under ASan a touch of freed memory or a gate left behind
     * by the last release fails this case. */
    eventer_aco_gate_release(p.gate);
    eventer_aco_gate_release(p.gate);
}

#define RELEASE_RACERS 8

struct release_racer {
    eventer_aco_gate_t gate; /* atomic */
    int index;
    int *holding, *go, *released;
};

static void hold_once_and_wait_co(void)
{
    struct release_racer *r = eventer_aco_arg();
    eventer_aco_gate_t gate = eventer_aco_gate();
    eventer_aco_gate_hold(gate);
    __atomic_store_n(&r->gate, gate, __ATOMIC_RELEASE);
    test_increment(r->holding);
    eventer_aco_gate_wait(gate);
    aco_exit();
}

static void *release_around_shutdown(void *argument)
{
    struct release_racer *r = argument;
    /* Spun on, not polled: the loops stop within a millisecond of the go. */
    while (!test_load(r->go))
        sched_yield();
    for (volatile int spin = 0; spin < r->index * 3000; spin++)
        ;
    eventer_aco_gate_release(__atomic_load_n(&r->gate, __ATOMIC_ACQUIRE));
    test_increment(r->released);
    return NULL;
}

ARK_TEST(gate_releases_racing_with_loop_exit_are_safe)
{
    /* Releases land before, during and after the loops stop (not during eventer_cleanup(),
     * which the contract forbids): each gate is freed exactly once, by whichever is last. */
    for (int round = 0; round < 20; round++) {
        test_eventer_start(2);
        static struct release_racer racers[RELEASE_RACERS];
        static int holding, go, released;
        __atomic_store_n(&holding, 0, __ATOMIC_RELEASE);
        __atomic_store_n(&go, 0, __ATOMIC_RELEASE);
        __atomic_store_n(&released, 0, __ATOMIC_RELEASE);
        pthread_t threads[RELEASE_RACERS];
        for (int i = 0; i < RELEASE_RACERS; i++) {
            racers[i] = (struct release_racer){
                .index = i, .holding = &holding, .go = &go, .released = &released};
            eventer_aco_start(hold_once_and_wait_co, &racers[i]);
        }
        test_wait_for_count(&holding, RELEASE_RACERS, "holds taken");
        for (int i = 0; i < RELEASE_RACERS; i++)
            ARK_ASSERT_EQ(pthread_create(&threads[i], NULL, release_around_shutdown, &racers[i]),
                          0);
        __atomic_store_n(&go, 1, __ATOMIC_RELEASE);
        eventer_shutdown();
        test_wait_for_count(&released, RELEASE_RACERS, "releases");
        for (int i = 0; i < RELEASE_RACERS; i++)
            pthread_join(threads[i], NULL);
        eventer_cleanup();
        ARK_ASSERT_EQ(eventer_allocations_current(), 0);
    }
}

/* ---- backlog refusal ---- */

static int release_blocker;

static void blocking_job(void *closure)
{
    for (int i = 0; i < 20000 && !test_load(&release_blocker); i++)
        test_sleep_ms(1);
}

struct backlog_probe {
    int simple_refused;
    int phased_refused;
    int run_refused;
    int run_gated_refused;
    int accepted_after;
    int done;
};

static void noop_job(void *closure)
{
}

static void noop_phased(eventer_asynch_op_t op, void *closure)
{
}

static void backlog_co(void)
{
    struct backlog_probe *p = eventer_aco_arg();
    eventer_jobq_t *queue = eventer_jobq_create("aco_backlog");
    eventer_jobq_set_concurrency(queue, 1);
    eventer_jobq_set_max_backlog(queue, 1);
    eventer_aco_gate_t gate = eventer_aco_gate();
    /* One job occupies the only thread, another fills the backlog (gated adds always queue). */
    eventer_aco_simple_asynch_queue_gated(gate, blocking_job, NULL, queue);
    eventer_aco_simple_asynch_queue_gated(gate, noop_job, NULL, queue);
    static struct classic_counts counts;
    eventer_t classic = eventer_alloc_asynch(classic_job, &counts);
    p->simple_refused = !eventer_aco_try_simple_asynch_queue(noop_job, NULL, queue);
    p->phased_refused = !eventer_aco_try_asynch_queue(noop_phased, NULL, queue);
    p->run_refused = !eventer_aco_try_run_asynch_queue(queue, classic);
    p->run_gated_refused =
        !eventer_aco_try_run_asynch_queue_subqueue_gated(gate, queue, classic, 0);
    __atomic_store_n(&release_blocker, 1, __ATOMIC_RELEASE);
    eventer_aco_gate_wait(gate);
    /* The queue drained: the backlog takes jobs again. */
    p->accepted_after = eventer_aco_try_run_asynch_queue(queue, classic) && counts.complete == 1;
    eventer_free(classic);
    test_increment(&p->done);
    aco_exit();
}

ARK_TEST(try_forms_refuse_on_a_full_backlog_without_waiting)
{
    test_eventer_start(2);
    static struct backlog_probe p;
    eventer_aco_start(backlog_co, &p);
    test_wait_for_count(&p.done, 1, "backlog");
    ARK_ASSERT_EQ(p.simple_refused, 1);
    ARK_ASSERT_EQ(p.phased_refused, 1);
    ARK_ASSERT_EQ(p.run_refused, 1);
    ARK_ASSERT_EQ(p.run_gated_refused, 1);
    ARK_ASSERT_EQ(p.accepted_after, 1);
    test_eventer_stop();
}

/* ---- many cos, teardown, misuse ---- */

struct many_probe {
    int wrong_thread;
    int done;
};

static void increment_job(void *closure)
{
    test_increment(closure);
}

static void many_jobs_co(void)
{
    struct many_probe *p = eventer_aco_arg();
    int home = test_loop_index();
    int *counter = calloc(1, sizeof(int));
    for (int i = 0; i < 20; i++) {
        eventer_aco_simple_asynch(increment_job, counter);
        if (test_loop_index() != home || test_load(counter) != i + 1)
            test_increment(&p->wrong_thread);
    }
    free(counter);
    test_increment(&p->done);
    aco_exit();
}

ARK_TEST(many_cos_waiting_on_jobs_resume_on_their_threads)
{
    test_eventer_start(3);
    static struct many_probe p;
    for (int i = 0; i < 40; i++)
        eventer_aco_start_on(eventer_choose_owner(i), many_jobs_co, &p, 0, 0);
    test_wait_for_count(&p.done, 40, "job cos");
    ARK_ASSERT_EQ(test_load(&p.wrong_thread), 0);
    test_eventer_stop();
}

static void slow_job(void *closure)
{
    test_sleep_ms(50);
}

static void wait_on_slow_job(void)
{
    int *parked = eventer_aco_arg();
    test_increment(parked);
    /* Heap memory a parked co holds is lost at teardown (its code never runs again). */
    static int closure;
    eventer_aco_simple_asynch(slow_job, &closure);
    aco_exit();
}

static void leave_gate_unwaited(void)
{
    int *parked = eventer_aco_arg();
    eventer_aco_gate_t gate = eventer_aco_gate();
    eventer_aco_simple_asynch_gated(gate, slow_job, NULL);
    test_increment(parked);
    aco_exit(); /* reported on error/eventer; the gate goes with its last job */
}

ARK_TEST(teardown_and_unwaited_gates_leave_nothing_behind)
{
    test_eventer_start(2);
    static int parked;
    eventer_aco_start(wait_on_slow_job, &parked);
    eventer_aco_start(leave_gate_unwaited, &parked);
    test_wait_for_count(&parked, 2, "cos with jobs");
    test_eventer_stop(); /* asserts no event is left; ASan checks the rest */
}

static void stack_closure_co(void)
{
    int on_stack = 0;
    eventer_aco_simple_asynch(increment_job, &on_stack);
    aco_exit();
}

static void child_gate_outside(void *unused)
{
    test_eventer_start(2);
    eventer_aco_gate();
}

static void child_simple_outside(void *unused)
{
    test_eventer_start(2);
    eventer_aco_simple_asynch(noop_job, NULL);
}

ARK_TEST(job_misuse_is_reported_clearly)
{
    test_expect_abort_in_co(stack_closure_co, "points into the co-routine's shared stack");
    test_expect_abort(child_gate_outside, "eventer_aco_gate: must be called inside a co-routine");
    test_expect_abort(child_simple_outside,
                      "eventer_aco_simple_asynch: must be called inside a co-routine");
}
