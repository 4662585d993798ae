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

#ifdef ARK_ASAN

eventer_t eventer_impl_event_get(void)
{
    return calloc(1, sizeof(struct _event));
}

void eventer_impl_event_put(eventer_t e)
{
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
static pthread_key_t thread_exit_key;
static pthread_once_t thread_exit_once = PTHREAD_ONCE_INIT;

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
    /* Read before listing: an adopter starts its own count. Until the bias swap below the
     * chunk cannot reach LISTED_BIAS alone, so it cannot be released under us. */
    int64_t handed_out = chunk->handed_out;
    pthread_mutex_lock(&pool_lock);
    chunk->previous_listed = NULL;
    chunk->next_listed = adoptable;
    if (adoptable)
        adoptable->previous_listed = chunk;
    adoptable = chunk;
    chunk->listed = 1;
    pthread_mutex_unlock(&pool_lock);
    uint64_t left = __atomic_add_fetch(
        &chunk->outstanding, (uint64_t)((int64_t)LISTED_BIAS - (int64_t)OWNED_BIAS + handed_out),
        __ATOMIC_ACQ_REL);
    if (left == LISTED_BIAS)
        release_if_listed(chunk);
}

static void create_exit_key(void)
{
    pthread_key_create(&thread_exit_key, thread_exit);
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
    pthread_once(&thread_exit_once, create_exit_key);
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
    pthread_setspecific(thread_exit_key, chunk);
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
        /* Unowned, unlisted and now half empty: list it for adoption. */
        listing = updated == chunk->capacity / 2;
        if (listing)
            updated += LISTED_BIAS;
    } while (!__atomic_compare_exchange_n(&chunk->outstanding, &old, updated, 1, __ATOMIC_ACQ_REL,
                                          __ATOMIC_RELAXED));
    if (updated == 0)
        release_chunk(chunk);
    else if (listing)
        list_for_adoption(chunk); /* not a chunk already listed passing the same count */
    else if (updated == LISTED_BIAS)
        release_if_listed(chunk);
}

eventer_t eventer_impl_event_get(void)
{
    void *slot = take_slot();
    if (slot)
        memset(slot, 0, sizeof(struct _event));
    return slot;
}

void eventer_impl_event_put(eventer_t e)
{
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
