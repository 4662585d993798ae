/* Event memory (eventer_event_pool.c): chunks come back when their events are freed, on any
 * thread; long-lived events do not pin mostly empty chunks; a thread's chunk outlives it. */
#include "eventer_test_util.h"

#include "eventer/eventer_internal.h"

#include <stdlib.h>

/* Under AddressSanitizer events come from calloc (so use after free is caught): no chunks. */
#ifndef ARK_ASAN

#define POOL_EVENTS 30000 /* about 50 chunks */

/* Spares the pool keeps mapped, plus the chunk a thread still owns (eventer_event_pool.c). */
#define POOL_SLACK 10

struct allocation_job {
    eventer_t *events;
    int count;
};

static void *allocate_events(void *argument)
{
    struct allocation_job *job = argument;
    for (int i = 0; i < job->count; i++)
        job->events[i] = eventer_alloc();
    return NULL;
}

/* Allocates on a short-lived thread that exits before the events are freed. */
static void allocate_on_thread(eventer_t *events, int count)
{
    struct allocation_job job = {events, count};
    pthread_t thread;
    ARK_ASSERT_EQ(pthread_create(&thread, NULL, allocate_events, &job), 0);
    ARK_ASSERT_EQ(pthread_join(thread, NULL), 0);
    for (int i = 0; i < count; i++)
        ARK_ASSERT(events[i] != NULL);
}

ARK_TEST(event_chunks_return_when_freed_on_another_thread)
{
    uint64_t before = eventer_impl_event_chunks_mapped();
    eventer_t *events = calloc(POOL_EVENTS, sizeof(*events));
    ARK_ASSERT(events != NULL);
    allocate_on_thread(events, POOL_EVENTS);
    uint64_t during = eventer_impl_event_chunks_mapped();
    ARK_ASSERT_MSG(during >= before + POOL_EVENTS / 600, "%llu chunks for %d events",
                   (unsigned long long)(during - before), POOL_EVENTS);
    /* Every event is distinct and usable. */
    for (int i = 0; i < POOL_EVENTS; i++)
        events[i]->fd = i;
    for (int i = 0; i < POOL_EVENTS; i++)
        ARK_ASSERT_EQ(events[i]->fd, i);
    for (int i = 0; i < POOL_EVENTS; i++)
        eventer_free(events[i]);
    uint64_t after = eventer_impl_event_chunks_mapped();
    ARK_ASSERT_MSG(after <= before + POOL_SLACK, "%llu chunks still mapped (%llu before)",
                   (unsigned long long)after, (unsigned long long)before);
    ARK_ASSERT_EQ(eventer_allocations_current(), 0);
    free(events);
}

ARK_TEST(long_lived_events_do_not_pin_chunks)
{
    eventer_t *events = calloc(POOL_EVENTS, sizeof(*events));
    ARK_ASSERT(events != NULL);
    allocate_on_thread(events, POOL_EVENTS);
    /* Keep one in 20: every chunk keeps a few live events. */
    for (int i = 0; i < POOL_EVENTS; i++)
        if (i % 20 != 0)
            eventer_free(events[i]);
    uint64_t pinned = eventer_impl_event_chunks_mapped();
    /* As many again: they fit in the room the freed ones left. */
    eventer_t *more = calloc(POOL_EVENTS / 2, sizeof(*more));
    ARK_ASSERT(more != NULL);
    allocate_on_thread(more, POOL_EVENTS / 2);
    uint64_t reused = eventer_impl_event_chunks_mapped();
    ARK_ASSERT_MSG(reused <= pinned + POOL_SLACK, "%llu chunks grew to %llu",
                   (unsigned long long)pinned, (unsigned long long)reused);
    for (int i = 0; i < POOL_EVENTS / 2; i++)
        eventer_free(more[i]);
    for (int i = 0; i < POOL_EVENTS; i += 20)
        eventer_free(events[i]);
    ARK_ASSERT_EQ(eventer_allocations_current(), 0);
    free(more);
    free(events);
}

/* Many threads allocating and freeing each other's events at once (TSan checks the lists). */
#define CHURN_THREADS 4
#define CHURN_ROUNDS  200
#define CHURN_BATCH   256

static eventer_t churn_handoff[CHURN_THREADS][CHURN_BATCH];
static int churn_ready[CHURN_THREADS];

static void *churn(void *argument)
{
    int index = (int)(intptr_t)argument;
    int neighbour = (index + 1) % CHURN_THREADS;
    for (int round = 0; round < CHURN_ROUNDS; round++) {
        /* Fill our hand-off slot, then free what the neighbour left in its own. */
        while (__atomic_load_n(&churn_ready[index], __ATOMIC_ACQUIRE))
            sched_yield();
        for (int i = 0; i < CHURN_BATCH; i++) {
            churn_handoff[index][i] = eventer_alloc();
            if (!churn_handoff[index][i])
                abort();
            churn_handoff[index][i]->fd = index;
        }
        __atomic_store_n(&churn_ready[index], 1, __ATOMIC_RELEASE);
        while (!__atomic_load_n(&churn_ready[neighbour], __ATOMIC_ACQUIRE))
            sched_yield();
        for (int i = 0; i < CHURN_BATCH; i++) {
            if (churn_handoff[neighbour][i]->fd != neighbour)
                abort();
            eventer_free(churn_handoff[neighbour][i]);
        }
        __atomic_store_n(&churn_ready[neighbour], 0, __ATOMIC_RELEASE);
    }
    return NULL;
}

ARK_TEST(events_freed_across_threads_under_churn)
{
    uint64_t before = eventer_impl_event_chunks_mapped();
    pthread_t threads[CHURN_THREADS];
    for (int i = 0; i < CHURN_THREADS; i++)
        ARK_ASSERT_EQ(pthread_create(&threads[i], NULL, churn, (void *)(intptr_t)i), 0);
    for (int i = 0; i < CHURN_THREADS; i++)
        ARK_ASSERT_EQ(pthread_join(threads[i], NULL), 0);
    ARK_ASSERT_EQ(eventer_allocations_current(), 0);
    uint64_t after = eventer_impl_event_chunks_mapped();
    ARK_ASSERT_MSG(after <= before + POOL_SLACK + CHURN_THREADS, "%llu chunks left (%llu before)",
                   (unsigned long long)after, (unsigned long long)before);
}

/* Threads that exit leaving live events behind, freed later by threads of the next wave while
 * other threads adopt the chunks the exited ones listed. */
#define WAVES           40
#define WAVE_THREADS    4
#define EVENTS_PER_WAVE 700 /* more than a chunk per thread */

static eventer_t wave_events[2][WAVE_THREADS][EVENTS_PER_WAVE];

struct wave_job {
    int wave, index;
};

static void *wave_thread(void *argument)
{
    struct wave_job *job = argument;
    eventer_t *mine = wave_events[job->wave % 2][job->index];
    eventer_t *previous = wave_events[(job->wave + 1) % 2][(job->index + 1) % WAVE_THREADS];
    for (int i = 0; i < EVENTS_PER_WAVE; i++) {
        mine[i] = eventer_alloc();
        if (!mine[i])
            abort();
        mine[i]->fd = job->wave;
        /* Free the previous wave's as we go, so frees and adoption overlap allocation. */
        if (job->wave > 0) {
            if (previous[i]->fd != job->wave - 1)
                abort();
            eventer_free(previous[i]);
        }
    }
    return NULL;
}

ARK_TEST(events_outlive_the_threads_that_allocated_them)
{
    uint64_t before = eventer_impl_event_chunks_mapped();
    for (int wave = 0; wave < WAVES; wave++) {
        pthread_t threads[WAVE_THREADS];
        struct wave_job jobs[WAVE_THREADS];
        for (int i = 0; i < WAVE_THREADS; i++) {
            jobs[i] = (struct wave_job){wave, i};
            ARK_ASSERT_EQ(pthread_create(&threads[i], NULL, wave_thread, &jobs[i]), 0);
        }
        for (int i = 0; i < WAVE_THREADS; i++)
            ARK_ASSERT_EQ(pthread_join(threads[i], NULL), 0);
    }
    ARK_ASSERT_EQ(eventer_allocations_current(), WAVE_THREADS * EVENTS_PER_WAVE);
    for (int i = 0; i < WAVE_THREADS; i++)
        for (int j = 0; j < EVENTS_PER_WAVE; j++)
            eventer_free(wave_events[(WAVES - 1) % 2][i][j]);
    ARK_ASSERT_EQ(eventer_allocations_current(), 0);
    ARK_ASSERT_EQ(eventer_allocations_total(), WAVES * WAVE_THREADS * EVENTS_PER_WAVE);
    uint64_t after = eventer_impl_event_chunks_mapped();
    ARK_ASSERT_MSG(after <= before + POOL_SLACK, "%llu chunks left (%llu before)",
                   (unsigned long long)after, (unsigned long long)before);
}

#endif
