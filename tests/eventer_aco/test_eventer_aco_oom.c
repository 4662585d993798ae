/*
 * Out of memory in a loop's command queue under the ACO layer: what the layer hands to a loop
 * (a ready list's drain, a start from another thread, a gate's releases from another thread)
 * still arrives, through the node the object carries, and the failure is logged naming the
 * call. The queue fails on request through the fault-injection hook (eventer_impl_faults), so
 * these cases run under the sanitizers too. Each case runs in a child whose stderr (the error
 * log) it then reads.
 */
#include "eventer_aco_test_util.h"

#include <pthread.h>

/* ---- a co made ready from inside another co ---- */

struct resume_probe {
    eventer_aco_gate_t gate;
    int waiter_home, releaser_home, later_home;
    int resumed; /* the waiter returned from its wait */
    int later_ran;
    int done;
};

static struct resume_probe resume_probe;

static void later_co(void)
{
    resume_probe.later_home = test_loop_index();
    test_increment(&resume_probe.later_ran);
    aco_exit();
}

static void releaser_co(void)
{
    resume_probe.releaser_home = test_loop_index();
    /* Same loop, inside a co: the waiter goes on the ready list, whose drain the queue
     * cannot take. */
    test_inject(EVENTER_FAULT_COMMAND_QUEUE, 1);
    eventer_aco_gate_release(resume_probe.gate);
    aco_exit();
}

static void waiter_co(void)
{
    resume_probe.waiter_home = test_loop_index();
    eventer_aco_gate_t gate = eventer_aco_gate();
    eventer_aco_gate_hold(gate);
    resume_probe.gate = gate;
    eventer_aco_start(releaser_co, NULL); /* on this loop, after this co yields */
    eventer_aco_gate_wait(gate);
    test_increment(&resume_probe.resumed);
    /* The ready list works again once memory is back. */
    eventer_aco_start(later_co, NULL);
    test_increment(&resume_probe.done);
    aco_exit();
}

static void resume_child(void *unused)
{
    test_eventer_start(2);
    eventer_aco_start_on(eventer_choose_owner(1), waiter_co, NULL, 0, 0);
    test_wait_for_count(&resume_probe.resumed, 1, "co resumed without queue memory");
    test_wait_for_count(&resume_probe.later_ran, 1, "co started once memory was back");
    ARK_ASSERT_EQ(test_injections_left(EVENTER_FAULT_COMMAND_QUEUE), 0);
    ARK_ASSERT_EQ(resume_probe.waiter_home, 1);
    ARK_ASSERT_EQ(resume_probe.releaser_home, 1);
    ARK_ASSERT_EQ(resume_probe.later_home, 1);
    test_eventer_stop();
    exit(0);
}

ARK_TEST(aco_resume_without_queue_memory_still_resumes)
{
    test_run_expecting_log(resume_child, "eventer_aco: resuming a co: out of memory queueing to");
}

/* ---- a start from a thread that is not the target loop ---- */

static int started_home = -2;
static int started;

static void started_co(void)
{
    __atomic_store_n(&started_home, test_loop_index(), __ATOMIC_RELEASE);
    test_increment(&started);
    aco_exit();
}

static void start_child(void *unused)
{
    test_eventer_start(2);
    test_inject(EVENTER_FAULT_COMMAND_QUEUE, 1);
    eventer_aco_start_on(eventer_choose_owner(1), started_co, NULL, 0, 0); /* from no loop */
    ARK_ASSERT_EQ(test_injections_left(EVENTER_FAULT_COMMAND_QUEUE), 0);
    test_wait_for_count(&started, 1, "co started without queue memory");
    ARK_ASSERT_EQ(__atomic_load_n(&started_home, __ATOMIC_ACQUIRE), 1);
    /* Starts queue normally again. */
    eventer_aco_start_on(eventer_choose_owner(1), started_co, NULL, 0, 0);
    test_wait_for_count(&started, 2, "co started once memory was back");
    test_eventer_stop(); /* asserts no event is left; ASan checks the start records */
    exit(0);
}

ARK_TEST(aco_start_without_queue_memory_still_starts)
{
    test_run_expecting_log(start_child, "eventer_aco_start: out of memory queueing to");
}

/* ---- a gate released by a plain thread ---- */

struct release_probe {
    eventer_aco_gate_t gate;
    int holding;
    int released; /* releases the thread made */
    int seen_after_wait;
    int done;
};

static struct release_probe release_probe;

static void *release_thread(void *argument)
{
    struct release_probe *p = argument;
    test_wait_for_count(&p->holding, 1, "holds taken");
    /* The first hand-over fails to queue and goes through the gate's node; the next release
     * joins it (one hand-over pending at a time). */
    test_inject(EVENTER_FAULT_COMMAND_QUEUE, 1);
    test_increment(&p->released);
    eventer_aco_gate_release(p->gate);
    test_increment(&p->released);
    eventer_aco_gate_release(p->gate);
    ARK_ASSERT_EQ(test_injections_left(EVENTER_FAULT_COMMAND_QUEUE), 0);
    /* Once the loop took those, the node serves again. */
    test_sleep_ms(50);
    test_inject(EVENTER_FAULT_COMMAND_QUEUE, 1);
    test_increment(&p->released);
    eventer_aco_gate_release(p->gate);
    ARK_ASSERT_EQ(test_injections_left(EVENTER_FAULT_COMMAND_QUEUE), 0);
    test_sleep_ms(50);
    /* And the last goes through the queue. */
    test_increment(&p->released);
    eventer_aco_gate_release(p->gate);
    return NULL;
}

static void held_gate_co(void)
{
    struct release_probe *p = eventer_aco_arg();
    eventer_aco_gate_t gate = eventer_aco_gate();
    for (int i = 0; i < 4; i++)
        eventer_aco_gate_hold(gate);
    p->gate = gate;
    test_increment(&p->holding);
    eventer_aco_gate_wait(gate);
    p->seen_after_wait = test_load(&p->released);
    test_increment(&p->done);
    aco_exit();
}

static void release_child(void *unused)
{
    test_eventer_start(2);
    pthread_t thread;
    ARK_ASSERT_EQ(pthread_create(&thread, NULL, release_thread, &release_probe), 0);
    eventer_aco_start_on(eventer_choose_owner(0), held_gate_co, &release_probe, 0, 0);
    test_wait_for_count(&release_probe.done, 1, "co woken by releases without queue memory");
    ARK_ASSERT_EQ(release_probe.seen_after_wait, 4);
    pthread_join(thread, NULL);
    test_eventer_stop();
    exit(0);
}

ARK_TEST(aco_gate_release_without_queue_memory_still_releases)
{
    test_run_expecting_log(release_child, "eventer_aco_gate_release: out of memory queueing to");
}

/* ---- a hand-over still pending when the loops stop ---- */

static int spilled_before_stop;
static int never_resumed;

static void never_resumed_co(void)
{
    test_increment(&never_resumed);
    aco_exit();
}

static void spill_then_hold_the_loop(void)
{
    /* The new co waits on the ready list, whose drain goes through the thread's node. */
    test_inject(EVENTER_FAULT_COMMAND_QUEUE, 1);
    eventer_aco_start(never_resumed_co, NULL);
    test_increment(&spilled_before_stop);
    /* Hold the loop until it is told to stop: it then stops without draining the node. */
    while (!eventer_impl_stopping())
        test_sleep_ms(1);
    aco_exit();
}

static void teardown_child(void *unused)
{
    test_eventer_start(2);
    eventer_aco_start_on(eventer_choose_owner(1), spill_then_hold_the_loop, NULL, 0, 0);
    test_wait_for_count(&spilled_before_stop, 1, "hand-over spilled");
    /* The loop frees its thread state, and the node in it, before eventer_cleanup() walks
     * what was spilled: the node must be gone from the stack by then (ASan checks). */
    test_eventer_stop();
    ARK_ASSERT_EQ(test_load(&never_resumed), 0);
    exit(0);
}

ARK_TEST(aco_hand_over_pending_at_teardown_is_dropped_unrun)
{
    test_run_expecting_log(teardown_child, "eventer_aco: resuming a co: out of memory queueing to");
}
