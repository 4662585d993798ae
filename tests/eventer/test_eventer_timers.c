/* Timers: order, scale, removal from any thread, repeats, next opportunity. */
#include "eventer_test_util.h"

#include "eventer/eventer_internal.h"

#include <stdlib.h>

/* Under sanitizers every operation is several times slower: scale the big test down. */
#if defined(ARK_ASAN) || defined(ARK_TSAN)
#define MANY_TIMERS 100000
#else
#define MANY_TIMERS 1000000
#endif

struct order_check {
    uint64_t last_us;
    int fired;
    int out_of_order;
    int early;
    int target;
    int wrong_thread;
};

static uint64_t whence_of(eventer_t e)
{
    struct timeval whence = eventer_get_whence(e);
    return (uint64_t)whence.tv_sec * 1000000u + (uint64_t)whence.tv_usec;
}

static int ordered_timer(eventer_t e, int mask, void *closure, struct timeval *now)
{
    struct order_check *check = closure;
    uint64_t at = whence_of(e);
    uint64_t now_us = (uint64_t)now->tv_sec * 1000000u + (uint64_t)now->tv_usec;
    if (at < check->last_us)
        check->out_of_order++;
    if (at > now_us)
        check->early++;
    if (mask != EVENTER_TIMER || !eventer_thread_check(e))
        check->wrong_thread++;
    check->last_us = at;
    test_increment(&check->fired);
    return 0;
}

struct scheduling {
    struct order_check *check;
    int count;
    int spread_us;
    int done;
};

/* Adds `count` timers at random deadlines from the owner thread itself. */
static int schedule_many(eventer_t e, int mask, void *closure, struct timeval *now)
{
    struct scheduling *plan = closure;
    unsigned seed = 12345;
    struct timeval base = *now;
    for (int i = 0; i < plan->count; i++) {
        long offset = (long)(rand_r(&seed) % (unsigned)plan->spread_us);
        struct timeval whence = {base.tv_sec + (offset + base.tv_usec) / 1000000,
                                 (base.tv_usec + offset) % 1000000};
        eventer_t timer = eventer_alloc_timer(ordered_timer, plan->check, &whence);
        eventer_add(timer);
    }
    test_increment(&plan->done);
    return 0;
}

ARK_TEST_TIMEOUT(million_timers_fire_in_order, 300)
{
    test_eventer_start(2);
    static struct order_check check;
    static struct scheduling plan;
    plan.check = &check;
    plan.count = MANY_TIMERS;
    plan.spread_us = 500000;
    eventer_add_timer_next_opportunity(schedule_many, &plan, eventer_choose_owner(1));
    test_wait_for_count(&plan.done, 1, "scheduling");
    test_wait_for_count(&check.fired, MANY_TIMERS, "timers");
    ARK_ASSERT_EQ(check.out_of_order, 0);
    ARK_ASSERT_EQ(check.early, 0);
    ARK_ASSERT_EQ(check.wrong_thread, 0);
    test_eventer_stop();
}

/* Timers added from a non-loop thread (through the command queue) keep their order too. */
ARK_TEST(timers_from_another_thread_fire_in_order)
{
    test_eventer_start(2);
    static struct order_check check;
    struct timeval now;
    gettimeofday(&now, NULL);
    unsigned seed = 7;
    pthread_t owner = eventer_choose_owner(1);
    for (int i = 0; i < 5000; i++) {
        /* Far enough out that all are added before the first is due (sanitizers are slow). */
        long offset = 500000 + (long)(rand_r(&seed) % 100000u);
        struct timeval whence = {now.tv_sec + (now.tv_usec + offset) / 1000000,
                                 (now.tv_usec + offset) % 1000000};
        eventer_t e = eventer_alloc_timer(ordered_timer, &check, &whence);
        eventer_set_owner(e, owner);
        eventer_add(e);
    }
    test_wait_for_count(&check.fired, 5000, "timers");
    ARK_ASSERT_EQ(check.out_of_order, 0);
    ARK_ASSERT_EQ(check.early, 0);
    ARK_ASSERT_EQ(check.wrong_thread, 0);
    test_eventer_stop();
}

/* Equal deadlines fire in the order they were added. */
static int equal_order[10];
static int equal_next; /* owner thread only */
static int equal_fired;

static int record_equal(eventer_t e, int mask, void *closure, struct timeval *now)
{
    equal_order[equal_next++] = (int)(intptr_t)closure;
    test_increment(&equal_fired);
    return 0;
}

static int add_equal(eventer_t e, int mask, void *closure, struct timeval *now)
{
    struct timeval whence = {now->tv_sec, now->tv_usec + 1000 < 1000000 ? now->tv_usec + 1000 : 0};
    if (whence.tv_usec == 0)
        whence.tv_sec++;
    for (int i = 0; i < 10; i++)
        eventer_add_at(record_equal, (void *)(intptr_t)i, whence);
    return 0;
}

ARK_TEST(equal_deadlines_fire_in_insertion_order)
{
    test_eventer_start(2);
    eventer_add_timer_next_opportunity(add_equal, NULL, eventer_choose_owner(1));
    test_wait_for_count(&equal_fired, 10, "equal timers");
    for (int i = 0; i < 10; i++)
        ARK_ASSERT_EQ(equal_order[i], i);
    test_eventer_stop();
}

static int should_not_fire;

static int forbidden(eventer_t e, int mask, void *closure, struct timeval *now)
{
    test_increment(&should_not_fire);
    return 0;
}

static int removed_on_owner;

static int remove_on_owner(eventer_t e, int mask, void *closure, struct timeval *now)
{
    eventer_t victim = closure;
    if (eventer_remove(victim) == victim && eventer_remove(victim) == NULL) {
        eventer_free(victim);
        test_increment(&removed_on_owner);
    }
    return 0;
}

ARK_TEST(timer_removal_from_any_thread)
{
    test_eventer_start(3);
    /* From this (non-loop) thread. */
    eventer_t e = eventer_add_in_s_us(forbidden, NULL, 0, 50000);
    eventer_t removed = eventer_remove(e);
    ARK_ASSERT(removed == e);
    ARK_ASSERT(eventer_remove_timed(e) == NULL);
    eventer_free(removed);
    /* On the owner thread, by another callback. */
    eventer_t victim = eventer_in_s_us(forbidden, NULL, 0, 50000);
    eventer_set_owner(victim, eventer_choose_owner(1));
    eventer_add(victim);
    eventer_add_timer_next_opportunity(remove_on_owner, victim, eventer_choose_owner(1));
    test_wait_for_count(&removed_on_owner, 1, "owner removal");
    test_sleep_ms(100);
    ARK_ASSERT_EQ(test_load(&should_not_fire), 0);
    test_eventer_stop();
}

/* A timer that returns non-zero after moving its whence repeats. */
static int repeats;

static int repeating(eventer_t e, int mask, void *closure, struct timeval *now)
{
    if (test_increment(&repeats) >= 3)
        return 0;
    struct timeval next = {now->tv_sec, now->tv_usec + 1000};
    if (next.tv_usec >= 1000000) {
        next.tv_sec++;
        next.tv_usec -= 1000000;
    }
    eventer_update_whence(e, next);
    return EVENTER_TIMER;
}

ARK_TEST(timer_returning_mask_repeats)
{
    test_eventer_start(2);
    eventer_add_in_s_us(repeating, NULL, 0, 1000);
    test_wait_for_count(&repeats, 3, "repeats");
    test_sleep_ms(20);
    ARK_ASSERT_EQ(test_load(&repeats), 3);
    test_eventer_stop();
}

/* eventer_update re-sorts a pending timer moved earlier. */
static int moved_fired;

static int moved_timer(eventer_t e, int mask, void *closure, struct timeval *now)
{
    test_increment(&moved_fired);
    return 0;
}

ARK_TEST(update_resorts_pending_timer)
{
    test_eventer_start(2);
    eventer_t e = eventer_in_s_us(moved_timer, NULL, 3600, 0);
    eventer_set_owner(e, eventer_choose_owner(1));
    eventer_add(e);
    struct timeval soon;
    gettimeofday(&soon, NULL);
    eventer_update_whence(e, soon);
    test_wait_for_count(&moved_fired, 1, "moved timer");
    test_eventer_stop();
}

static int next_opportunity_index = -1;
static int next_opportunity_done;

static int on_next_opportunity(eventer_t e, int mask, void *closure, struct timeval *now)
{
    __atomic_store_n(&next_opportunity_index, test_loop_index(), __ATOMIC_RELEASE);
    test_increment(&next_opportunity_done);
    return 0;
}

ARK_TEST(next_opportunity_runs_on_chosen_thread)
{
    test_eventer_start(4);
    eventer_add_timer_next_opportunity(on_next_opportunity, NULL, eventer_choose_owner(2));
    test_wait_for_count(&next_opportunity_done, 1, "next opportunity");
    ARK_ASSERT_EQ(test_load(&next_opportunity_index), eventer_is_loop(eventer_choose_owner(2)));
    ARK_ASSERT_NE(eventer_is_loop(eventer_choose_owner(2)), 0);
    test_eventer_stop();
}

/* The helpers all add timers that fire once, on time and never early. */
static struct order_check helper_check;

ARK_TEST(timer_helpers_fire_once_and_never_early)
{
    test_eventer_start(2);
    struct timeval now;
    gettimeofday(&now, NULL);
    struct timeval at = {now.tv_sec, now.tv_usec + 3000};
    if (at.tv_usec >= 1000000) {
        at.tv_sec++;
        at.tv_usec -= 1000000;
    }
    ARK_ASSERT(eventer_add_at(ordered_timer, &helper_check, at) != NULL);
    ARK_ASSERT(eventer_add_in(ordered_timer, &helper_check, (struct timeval){0, 2000}) != NULL);
    ARK_ASSERT(eventer_add_in_s_us(ordered_timer, &helper_check, 0, 4000) != NULL);
    eventer_t later = eventer_in(ordered_timer, &helper_check, (struct timeval){0, 5000});
    eventer_t latest = eventer_in_s_us(ordered_timer, &helper_check, 0, 6000);
    eventer_t exact = eventer_at(ordered_timer, &helper_check, at);
    ARK_ASSERT(later && latest && exact);
    ARK_ASSERT_EQ(eventer_get_mask(later), EVENTER_TIMER);
    ARK_ASSERT(whence_of(exact) == (uint64_t)at.tv_sec * 1000000u + (uint64_t)at.tv_usec);
    eventer_add(later);
    eventer_add(latest);
    eventer_add(exact);
    test_wait_for_count(&helper_check.fired, 6, "helper timers");
    test_sleep_ms(20);
    ARK_ASSERT_EQ(test_load(&helper_check.fired), 6);
    ARK_ASSERT_EQ(helper_check.early, 0);
    ARK_ASSERT_EQ(helper_check.out_of_order, 0);
    ARK_ASSERT_EQ(helper_check.wrong_thread, 0);
    test_eventer_stop();
}

/*
 * The timer structures (eventer_timers.c): a due heap, a wheel for the next few seconds and a
 * far heap. A small wheel (64 slots of 1.024 ms: 65 ms) makes timers cross all three.
 */
static void use_small_wheel(void)
{
    ARK_ASSERT_EQ(eventer_impl_timer_wheel_configure(10, 64), 0);
}

ARK_TEST(timer_wheel_geometry_is_checked)
{
    ARK_ASSERT_EQ(eventer_impl_timer_wheel_configure(10, 100), -1); /* not a power of two */
    ARK_ASSERT_EQ(eventer_impl_timer_wheel_configure(10, 32), -1);  /* fewer than 64 */
    ARK_ASSERT_EQ(eventer_impl_timer_wheel_configure(25, 64), -1);  /* slots over 16 s */
    ARK_ASSERT_EQ(eventer_impl_timer_wheel_configure(10, EVENTER_TIMER_WHEEL_MAX_SLOTS * 2), -1);
    ARK_ASSERT_EQ(eventer_impl_timer_wheel_configure(10, 4096), 0);
}

ARK_TEST_TIMEOUT(timers_beyond_the_wheel_fire_in_order, 120)
{
    use_small_wheel();
    test_eventer_start(2);
    static struct order_check check;
    static struct scheduling plan;
    plan.check = &check;
    plan.count = 20000;
    plan.spread_us = 400000; /* six wheel spans: most start in the far heap */
    eventer_add_timer_next_opportunity(schedule_many, &plan, eventer_choose_owner(1));
    test_wait_for_count(&plan.done, 1, "scheduling");
    test_wait_for_count(&check.fired, plan.count, "timers");
    ARK_ASSERT_EQ(check.out_of_order, 0);
    ARK_ASSERT_EQ(check.early, 0);
    ARK_ASSERT_EQ(check.wrong_thread, 0);
    test_eventer_stop();
}

/* Three timers with one deadline, added while it was far, in the wheel and due: they fire in
 * the order they were added. */
static int same_deadline_order[3];
static int same_deadline_next; /* owner thread only */
static int same_deadline_fired;
static struct timeval same_deadline;

static int record_same_deadline(eventer_t e, int mask, void *closure, struct timeval *now)
{
    same_deadline_order[same_deadline_next++] = (int)(intptr_t)closure;
    test_increment(&same_deadline_fired);
    return 0;
}

static int add_same_deadline(eventer_t e, int mask, void *closure, struct timeval *now)
{
    eventer_add_at(record_same_deadline, closure, same_deadline);
    return 0;
}

static struct timeval offset_from(struct timeval base, long us)
{
    long total = base.tv_usec + us;
    return (struct timeval){base.tv_sec + total / 1000000, total % 1000000};
}

static int plan_same_deadline(eventer_t e, int mask, void *closure, struct timeval *now)
{
    same_deadline = offset_from(*now, 200000);
    eventer_add_at(record_same_deadline, (void *)(intptr_t)0, same_deadline);          /* far */
    eventer_add_at(add_same_deadline, (void *)(intptr_t)1, offset_from(*now, 160000)); /* wheel */
    /* Due (or nearly) when added; a small sleep in the test makes it late, too. */
    eventer_add_at(add_same_deadline, (void *)(intptr_t)2, offset_from(*now, 199900));
    return 0;
}

ARK_TEST(equal_deadlines_keep_insertion_order_across_structures)
{
    use_small_wheel();
    test_eventer_start(2);
    eventer_add_timer_next_opportunity(plan_same_deadline, NULL, eventer_choose_owner(1));
    test_wait_for_count(&same_deadline_fired, 3, "same-deadline timers");
    for (int i = 0; i < 3; i++)
        ARK_ASSERT_EQ(same_deadline_order[i], i);
    test_eventer_stop();
}

/* Removing timers held in each structure: the removed never fire, the others all do. */
#define REMOVAL_TIMERS 3000
static eventer_t removal_timers[REMOVAL_TIMERS];
static struct order_check removal_check;
static int removal_done;

static int add_then_remove(eventer_t e, int mask, void *closure, struct timeval *now)
{
    unsigned seed = 99;
    for (int i = 0; i < REMOVAL_TIMERS; i++) {
        /* Due now, in the wheel, far. */
        long offset = i % 3 == 0 ? 0 : i % 3 == 1 ? 20000 : 150000;
        offset += (long)(rand_r(&seed) % 20000u);
        struct timeval whence = offset_from(*now, offset);
        removal_timers[i] =
            eventer_alloc_timer(i % 2 ? forbidden : ordered_timer, &removal_check, &whence);
        eventer_add(removal_timers[i]);
    }
    /* Odd ones go, in an order unrelated to where they sit. */
    for (int i = REMOVAL_TIMERS - 1; i >= 0; i--) {
        if (i % 2 == 0)
            continue;
        ARK_ASSERT(eventer_remove(removal_timers[i]) == removal_timers[i]);
        eventer_free(removal_timers[i]);
    }
    test_increment(&removal_done);
    return 0;
}

ARK_TEST(timers_removed_from_every_structure_never_fire)
{
    use_small_wheel();
    test_eventer_start(2);
    eventer_add_timer_next_opportunity(add_then_remove, NULL, eventer_choose_owner(1));
    test_wait_for_count(&removal_done, 1, "adding and removing");
    test_wait_for_count(&removal_check.fired, REMOVAL_TIMERS / 2, "kept timers");
    test_sleep_ms(50);
    ARK_ASSERT_EQ(test_load(&removal_check.fired), REMOVAL_TIMERS / 2);
    ARK_ASSERT_EQ(test_load(&should_not_fire), 0);
    ARK_ASSERT_EQ(removal_check.out_of_order, 0);
    ARK_ASSERT_EQ(removal_check.early, 0);
    test_eventer_stop();
}

/* Moving a pending timer between structures with eventer_update_whence(). */
static int moves_fired[4];
static struct timeval moves_added;

static int record_move(eventer_t e, int mask, void *closure, struct timeval *now)
{
    int which = (int)(intptr_t)closure;
    struct timeval whence = eventer_get_whence(e);
    if (timercmp(now, &whence, <))
        which = 3; /* early: counted apart */
    test_increment(&moves_fired[which]);
    return 0;
}

static int plan_moves(eventer_t e, int mask, void *closure, struct timeval *now)
{
    moves_added = *now;
    /* Far to near, near to far, wheel to due. */
    eventer_t far_to_near =
        eventer_add_at(record_move, (void *)(intptr_t)0, offset_from(*now, 3000000));
    eventer_t near_to_far =
        eventer_add_at(record_move, (void *)(intptr_t)1, offset_from(*now, 10000));
    eventer_t wheel_to_due =
        eventer_add_at(record_move, (void *)(intptr_t)2, offset_from(*now, 30000));
    eventer_update_whence(far_to_near, offset_from(*now, 20000));
    eventer_update_whence(near_to_far, offset_from(*now, 1500000));
    eventer_update_whence(wheel_to_due, *now);
    return 0;
}

ARK_TEST(moved_timers_change_structure)
{
    use_small_wheel();
    test_eventer_start(2);
    eventer_add_timer_next_opportunity(plan_moves, NULL, eventer_choose_owner(1));
    test_wait_for_count(&moves_fired[0], 1, "far timer moved near");
    test_wait_for_count(&moves_fired[2], 1, "wheel timer moved to now");
    ARK_ASSERT_EQ(test_load(&moves_fired[1]), 0); /* moved out to 1.5 s */
    test_wait_for_count(&moves_fired[1], 1, "near timer moved far");
    ARK_ASSERT_EQ(test_load(&moves_fired[3]), 0);
    test_eventer_stop();
}

/* A loop held up for longer than the whole wheel still fires everything in order. */
static struct order_check late_check;

static int hold_the_loop(eventer_t e, int mask, void *closure, struct timeval *now)
{
    unsigned seed = 5;
    for (int i = 0; i < 2000; i++) {
        long offset = (long)(rand_r(&seed) % 300000u);
        eventer_add_at(ordered_timer, &late_check, offset_from(*now, offset));
    }
    test_sleep_ms(400); /* past every deadline: six wheel spans late */
    return 0;
}

ARK_TEST(a_late_loop_fires_everything_in_order)
{
    use_small_wheel();
    test_eventer_start(2);
    eventer_add_timer_next_opportunity(hold_the_loop, NULL, eventer_choose_owner(1));
    test_wait_for_count(&late_check.fired, 2000, "late timers");
    ARK_ASSERT_EQ(late_check.out_of_order, 0);
    ARK_ASSERT_EQ(late_check.early, 0);
    test_eventer_stop();
}

/* Storage a burst of timers took goes back once the loop is idle again. */
static struct order_check burst_check;
static uint64_t storage_during, storage_after;
static int storage_measured;

static uint64_t timer_storage_nodes(void)
{
    struct eventer_loop *loop = eventer_impl_current_loop();
    uint64_t nodes = loop->due.capacity + loop->far.capacity;
    for (uint32_t s = 0; loop->wheel && s < loop->wheel_slot_count; s++)
        nodes += loop->wheel[s].timers.capacity;
    return nodes;
}

static int measure_storage(eventer_t e, int mask, void *closure, struct timeval *now)
{
    *(uint64_t *)closure = timer_storage_nodes();
    test_increment(&storage_measured);
    return 0;
}

static int add_burst(eventer_t e, int mask, void *closure, struct timeval *now)
{
    unsigned seed = 3;
    for (int i = 0; i < 100000; i++)
        eventer_add_at(ordered_timer, &burst_check,
                       offset_from(*now, 20000 + (long)(rand_r(&seed) % 100000u)));
    storage_during = timer_storage_nodes();
    return 0;
}

ARK_TEST(timer_storage_is_freed_after_a_burst)
{
    test_eventer_start(2);
    pthread_t owner = eventer_choose_owner(1);
    eventer_add_timer_next_opportunity(add_burst, NULL, owner);
    test_wait_for_count(&burst_check.fired, 100000, "burst");
    /* The loop trims at most once a second, and wakes for it. */
    test_sleep_ms(1300);
    eventer_add_timer_next_opportunity(measure_storage, &storage_after, owner);
    test_wait_for_count(&storage_measured, 1, "measuring");
    ARK_ASSERT_MSG(storage_during >= 100000, "%llu nodes held for 100000 timers",
                   (unsigned long long)storage_during);
    /* Empty slots keep 32 nodes at most (their arrays are small); the heaps 4096. */
    ARK_ASSERT_MSG(storage_after <= 4096 * 32 + 2 * 4096, "%llu nodes still held",
                   (unsigned long long)storage_after);
    ARK_ASSERT_EQ(burst_check.out_of_order, 0);
    test_eventer_stop();
}
