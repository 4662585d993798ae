/*
 * Event memory: events are carved from 64 KB chunks, one chunk at a time per thread.
 *
 * Why not malloc: a loop that arms a million timers allocates a million small blocks and
 * frees them as they fire; glibc keeps freed small blocks in fast bins and later walks all of
 * them at once (malloc_consolidate) on the next large request, and each fresh page is faulted
 * in one at a time. Chunks are mapped populated, and an event freed on the thread that owns
 * its chunk is a push on a plain list.
 *
 * A chunk belongs to one thread (its `owner`) while that thread allocates from it. The owner
 * hands out slots from its local free list, then from the never-used tail. Frees on the owner
 * thread go to the local list; frees elsewhere push onto the chunk's atomic `remote_free`
 * list, which the owner takes over whole when its local list runs dry.
 *
 * Returning chunks: while a chunk has an owner, `outstanding` is OWNED_BIAS plus the slots
 * live when the tenure began, minus the frees other threads made. When the owner gives it up
 * (every slot in use, no remote frees pending) it subtracts OWNED_BIAS minus what it handed out
 * net of its own frees, leaving exactly the live count. From then on every free decrements it;
 * the free that brings it to zero releases the chunk, and the one that brings it to half the
 * capacity puts it on the list of chunks to adopt (adding LISTED_BIAS in the same
 * compare-and-swap, so it cannot reach zero while listed): long-lived events do not pin mostly
 * empty chunks. A thread that exits lists its chunk at once. Adopting swaps LISTED_BIAS for
 * OWNED_BIAS.
 *
 * Under AddressSanitizer events come from calloc/free, so use after free is still caught.
 */
#include "eventer/eventer_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/*
 * Counts for eventer_allocations_current/total: per thread, so allocating and freeing does
 * not bounce one shared cache line between every loop thread. Each thread's counts are
 * written by it alone (relaxed atomics: readers may sum them at any time); a thread that
 * exits folds its counts into `departed`.
 */
struct thread_counts {
    int64_t current, total; /* atomic: written by the owning thread, read by summing */
    struct thread_counts *next, *previous;
    int registered;
};

static pthread_mutex_t counts_lock = PTHREAD_MUTEX_INITIALIZER;
static struct thread_counts *counted_threads;
static int64_t departed_current, departed_total; /* under counts_lock */
static __thread struct thread_counts thread_counts __attribute__((tls_model("initial-exec")));
static pthread_key_t thread_exit_key;
static pthread_once_t thread_exit_once = PTHREAD_ONCE_INIT;

static void thread_exit(void *unused);

static void create_exit_key(void)
{
    pthread_key_create(&thread_exit_key, thread_exit);
}

static void register_thread(void)
{
    pthread_once(&thread_exit_once, create_exit_key);
    pthread_mutex_lock(&counts_lock);
    thread_counts.previous = NULL;
    thread_counts.next = counted_threads;
    if (counted_threads)
        counted_threads->previous = &thread_counts;
    counted_threads = &thread_counts;
    thread_counts.registered = 1;
    pthread_mutex_unlock(&counts_lock);
    /* Any non-NULL value: it makes the destructor run. */
    pthread_setspecific(thread_exit_key, &thread_counts);
}

static void unregister_thread(void)
{
    if (!thread_counts.registered)
        return;
    pthread_mutex_lock(&counts_lock);
    departed_current += __atomic_load_n(&thread_counts.current, __ATOMIC_RELAXED);
    departed_total += __atomic_load_n(&thread_counts.total, __ATOMIC_RELAXED);
    if (thread_counts.previous)
        thread_counts.previous->next = thread_counts.next;
    else
        counted_threads = thread_counts.next;
    if (thread_counts.next)
        thread_counts.next->previous = thread_counts.previous;
    thread_counts.registered = 0;
    thread_counts.current = thread_counts.total = 0;
    pthread_mutex_unlock(&counts_lock);
}

static inline void count_allocation(void)
{
    if (mtev_unlikely(!thread_counts.registered))
        register_thread();
    __atomic_store_n(&thread_counts.current,
                     __atomic_load_n(&thread_counts.current, __ATOMIC_RELAXED) + 1,
                     __ATOMIC_RELAXED);
    __atomic_store_n(&thread_counts.total,
                     __atomic_load_n(&thread_counts.total, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
}

static inline void count_free(void)
{
    if (mtev_unlikely(!thread_counts.registered))
        register_thread();
    __atomic_store_n(&thread_counts.current,
                     __atomic_load_n(&thread_counts.current, __ATOMIC_RELAXED) - 1,
                     __ATOMIC_RELAXED);
}

static int64_t sum_counts(int total)
{
    pthread_mutex_lock(&counts_lock);
    int64_t sum = total ? departed_total : departed_current;
    for (struct thread_counts *counts = counted_threads; counts; counts = counts->next)
        sum += __atomic_load_n(total ? &counts->total : &counts->current, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&counts_lock);
    return sum;
}

int64_t eventer_allocations_current(void)
{
    return sum_counts(0);
}

int64_t eventer_allocations_total(void)
{
    return sum_counts(1);
}

#ifdef ARK_ASAN

static void thread_exit(void *unused)
{
    (void)unused;
    unregister_thread();
}

eventer_t eventer_impl_event_get(void)
{
    eventer_t e = calloc(1, sizeof(struct _event));
    if (e)
        count_allocation();
    return e;
}

void eventer_impl_event_put(eventer_t e)
{
    count_free();
    free(e);
}

uint64_t eventer_impl_event_chunks_mapped(void)
{
    return 0;
}

#else

#define CHUNK_BYTES       (64u * 1024u)
#define SLOT_BYTES        ((sizeof(struct _event) + 15u) & ~(size_t)15u)
/* Far above any slot count, so an owned or listed chunk never reaches zero. */
#define OWNED_BIAS        (UINT64_C(1) << 40)
#define LISTED_BIAS       (UINT64_C(1) << 41)
/* Empty chunks kept mapped for the next burst instead of unmapped (512 KB). */
#define SPARE_CHUNKS_KEPT 8

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

struct free_slot {
    struct free_slot *next;
};

struct chunk {
    void *owner; /* atomic: the owning thread's `thread_chunk` slot, NULL once given up */
    struct free_slot *local_free;  /* owner only */
    int64_t handed_out;            /* owner only: allocations minus owner frees, this tenure */
    uint32_t never_used;           /* owner only: index of the first slot never handed out */
    uint32_t capacity;             /* slots */
    struct free_slot *remote_free; /* atomic (push: any thread; take all: owner) */
    uint64_t outstanding;          /* atomic, see above */
    struct chunk *next_listed;     /* adoption / spare lists, under pool_lock */
    struct chunk *previous_listed; /* adoption list, under pool_lock */
    int listed;                    /* on the adoption list, under pool_lock */
};

#define HEADER_BYTES ((sizeof(struct chunk) + SLOT_BYTES - 1) / SLOT_BYTES * SLOT_BYTES)

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct chunk *adoptable; /* half-empty chunks nobody owns, each holding LISTED_BIAS */
static struct chunk *spares;    /* empty chunks kept mapped */
static unsigned spare_count;
static uint64_t chunks_mapped; /* atomic */

static __thread struct chunk *thread_chunk __attribute__((tls_model("initial-exec")));

static inline struct chunk *chunk_of(const void *slot)
{
    return (struct chunk *)((uintptr_t)slot & ~(uintptr_t)(CHUNK_BYTES - 1));
}

static inline void *slot_at(struct chunk *chunk, uint32_t index)
{
    return (char *)chunk + HEADER_BYTES + (size_t)index * SLOT_BYTES;
}

static struct chunk *map_chunk(void)
{
    /* Twice the size, then trim to an aligned chunk (chunk_of() masks addresses). */
    size_t span = 2 * (size_t)CHUNK_BYTES;
    char *base = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    char *aligned = (char *)(((uintptr_t)base + CHUNK_BYTES - 1) & ~(uintptr_t)(CHUNK_BYTES - 1));
    if (aligned > base)
        munmap(base, (size_t)(aligned - base));
    char *end = aligned + CHUNK_BYTES;
    if (end < base + span)
        munmap(end, (size_t)(base + span - end));
    /* Fault the pages in with one call rather than one trap per page (Linux 5.14; older
     * kernels refuse and the pages fault in as they are touched). */
    madvise(aligned, CHUNK_BYTES, MADV_POPULATE_WRITE);
    __atomic_add_fetch(&chunks_mapped, 1, __ATOMIC_RELAXED);
    return (struct chunk *)aligned;
}

/* Releases an empty chunk nobody owns: kept as a spare, or unmapped. */
static void release_chunk(struct chunk *chunk)
{
    pthread_mutex_lock(&pool_lock);
    if (spare_count < SPARE_CHUNKS_KEPT) {
        chunk->next_listed = spares;
        spares = chunk;
        spare_count++;
        chunk = NULL;
    }
    pthread_mutex_unlock(&pool_lock);
    if (chunk) {
        munmap(chunk, CHUNK_BYTES);
        __atomic_sub_fetch(&chunks_mapped, 1, __ATOMIC_RELAXED);
    }
}

/* The owner gives up a chunk whose every slot is in use (or freed by others since it last
 * looked); it may be released at once if every slot came back. */
static void give_up_full(struct chunk *chunk)
{
    __atomic_store_n(&chunk->owner, NULL, __ATOMIC_RELAXED);
    uint64_t left = __atomic_sub_fetch(
        &chunk->outstanding, (uint64_t)((int64_t)OWNED_BIAS - chunk->handed_out), __ATOMIC_ACQ_REL);
    if (left == 0)
        release_chunk(chunk);
}

static void unlink_listed(struct chunk *chunk)
{
    if (chunk->previous_listed)
        chunk->previous_listed->next_listed = chunk->next_listed;
    else
        adoptable = chunk->next_listed;
    if (chunk->next_listed)
        chunk->next_listed->previous_listed = chunk->previous_listed;
    chunk->listed = 0;
}

/* A listed chunk whose last event was freed: off the list and released, unless a thread
 * adopted it meanwhile. */
static void release_if_listed(struct chunk *chunk)
{
    pthread_mutex_lock(&pool_lock);
    int release = chunk->listed;
    if (release)
        unlink_listed(chunk);
    pthread_mutex_unlock(&pool_lock);
    if (release)
        release_chunk(chunk);
}

/* Lists a chunk that holds LISTED_BIAS. If its last event went while it was being listed (the
 * free saw it unlisted and left it), it is released here instead. */
static void list_for_adoption(struct chunk *chunk)
{
    pthread_mutex_lock(&pool_lock);
    chunk->previous_listed = NULL;
    chunk->next_listed = adoptable;
    if (adoptable)
        adoptable->previous_listed = chunk;
    adoptable = chunk;
    chunk->listed = 1;
    int empty = __atomic_load_n(&chunk->outstanding, __ATOMIC_ACQUIRE) == LISTED_BIAS;
    if (empty)
        unlink_listed(chunk);
    pthread_mutex_unlock(&pool_lock);
    if (empty)
        release_chunk(chunk);
}

/* A thread that exits gives up a chunk that may have room left: its local free list joins the
 * remote one and the chunk is listed at once, so another thread continues where it stopped. */
static void thread_exit(void *unused)
{
    (void)unused;
    unregister_thread();
    struct chunk *chunk = thread_chunk;
    if (!chunk)
        return;
    thread_chunk = NULL;
    __atomic_store_n(&chunk->owner, NULL, __ATOMIC_RELAXED);
    if (chunk->local_free) {
        struct free_slot *tail = chunk->local_free;
        while (tail->next)
            tail = tail->next;
        tail->next = __atomic_load_n(&chunk->remote_free, __ATOMIC_RELAXED);
        while (!__atomic_compare_exchange_n(&chunk->remote_free, &tail->next, chunk->local_free, 1,
                                            __ATOMIC_RELEASE, __ATOMIC_RELAXED))
            ;
        chunk->local_free = NULL;
    }
    /* The bias swap comes first: a listed chunk always holds LISTED_BIAS, which an adopter
     * swaps back. If every event went meanwhile, list_for_adoption() releases it instead. */
    __atomic_add_fetch(&chunk->outstanding,
                       (uint64_t)((int64_t)LISTED_BIAS - (int64_t)OWNED_BIAS + chunk->handed_out),
                       __ATOMIC_ACQ_REL);
    list_for_adoption(chunk);
}

/* Makes `chunk` this thread's, with its remote frees taken over. */
static void take_ownership(struct chunk *chunk, int fresh)
{
    if (fresh) {
        chunk->local_free = NULL;
        chunk->never_used = 0;
        chunk->capacity = (uint32_t)((CHUNK_BYTES - HEADER_BYTES) / SLOT_BYTES);
        chunk->remote_free = NULL;
        chunk->next_listed = chunk->previous_listed = NULL;
        chunk->listed = 0;
        __atomic_store_n(&chunk->outstanding, OWNED_BIAS, __ATOMIC_RELAXED);
    } else {
        /* Listed: swap the list's bias for the owner's. */
        __atomic_add_fetch(&chunk->outstanding, OWNED_BIAS - LISTED_BIAS, __ATOMIC_ACQ_REL);
        chunk->local_free = __atomic_exchange_n(&chunk->remote_free, NULL, __ATOMIC_ACQUIRE);
    }
    /* Slots already in use belong to former tenures; count this one's afresh. */
    chunk->handed_out = 0;
    __atomic_store_n(&chunk->owner, &thread_chunk, __ATOMIC_RELAXED);
    thread_chunk = chunk;
}

static struct chunk *next_chunk(void)
{
    struct chunk *chunk = NULL;
    int fresh = 1;
    pthread_mutex_lock(&pool_lock);
    if (adoptable) {
        chunk = adoptable;
        unlink_listed(chunk);
        fresh = 0;
    } else if (spares) {
        chunk = spares;
        spares = chunk->next_listed;
        spare_count--;
    }
    pthread_mutex_unlock(&pool_lock);
    if (!chunk && !(chunk = map_chunk()))
        return NULL;
    take_ownership(chunk, fresh);
    return chunk;
}

static void *take_slot(void)
{
    struct chunk *chunk = thread_chunk;
    for (;;) {
        if (chunk) {
            struct free_slot *slot = chunk->local_free;
            if (slot) {
                chunk->local_free = slot->next;
                chunk->handed_out++;
                return slot;
            }
            if (chunk->never_used < chunk->capacity) {
                chunk->handed_out++;
                return slot_at(chunk, chunk->never_used++);
            }
            chunk->local_free = __atomic_exchange_n(&chunk->remote_free, NULL, __ATOMIC_ACQUIRE);
            if (chunk->local_free) {
                /* Those frees were subtracted from `outstanding` by the threads that made
                 * them; handing them out again is this tenure's business. */
                continue;
            }
            thread_chunk = NULL;
            give_up_full(chunk);
        }
        if (!(chunk = next_chunk()))
            return NULL;
    }
}

static void put_remote(struct chunk *chunk, struct free_slot *slot)
{
    slot->next = __atomic_load_n(&chunk->remote_free, __ATOMIC_RELAXED);
    while (!__atomic_compare_exchange_n(&chunk->remote_free, &slot->next, slot, 1, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED))
        ;
    uint64_t old = __atomic_load_n(&chunk->outstanding, __ATOMIC_RELAXED);
    uint64_t updated;
    int listing;
    do {
        updated = old - 1;
        /* Unowned, unlisted and now half empty: this free lists it for adoption. */
        listing = updated == chunk->capacity / 2;
        if (listing)
            updated += LISTED_BIAS;
    } while (!__atomic_compare_exchange_n(&chunk->outstanding, &old, updated, 1, __ATOMIC_ACQ_REL,
                                          __ATOMIC_RELAXED));
    if (updated == 0)
        release_chunk(chunk);
    else if (listing)
        list_for_adoption(chunk);
    else if (updated == LISTED_BIAS)
        release_if_listed(chunk);
}

eventer_t eventer_impl_event_get(void)
{
    void *slot = take_slot();
    if (!slot)
        return NULL;
    memset(slot, 0, sizeof(struct _event));
    count_allocation();
    return slot;
}

void eventer_impl_event_put(eventer_t e)
{
    count_free();
    struct chunk *chunk = chunk_of(e);
    struct free_slot *slot = (struct free_slot *)(void *)e;
    if (__atomic_load_n(&chunk->owner, __ATOMIC_RELAXED) == &thread_chunk) {
        slot->next = chunk->local_free;
        chunk->local_free = slot;
        chunk->handed_out--;
        return;
    }
    put_remote(chunk, slot);
}

uint64_t eventer_impl_event_chunks_mapped(void)
{
    return __atomic_load_n(&chunks_mapped, __ATOMIC_RELAXED);
}

#endif
