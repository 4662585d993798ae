/*
 * Timers: one 4-ary min-heap per loop thread, ordered by (deadline in microseconds,
 * insertion sequence) so timers with equal deadlines fire in the order they were added.
 *
 * Nodes are 16 bytes (key, event) and the array is laid out so the four children of a node
 * fill exactly one 64-byte cache line: element i lives at storage slot i + 3 of a
 * 64-byte-aligned block, so children 4i+1..4i+4 sit at slots 4(i+1)..4(i+1)+3. The key packs
 * the deadline, in microseconds after the loop's `timer_base_us` (44 bits: 203 days; the base
 * moves forward when the loop's clock gets near that), above a 20-bit insertion sequence, so
 * one integer comparison orders by deadline and then by insertion (exactly, unless 2^20
 * insertions separate two timers with the same deadline). Each event remembers its heap
 * position (`heap_index`, 1-based) so removal and re-keying are O(log n).
 * Owner thread only; other threads go through the loop's command queue.
 */
#include "eventer/eventer_internal.h"

#include <stdlib.h>
#include <string.h>

#define HEAP_OFFSET 3

#define SEQUENCE_BITS   20
#define SEQUENCE_MASK   ((UINT64_C(1) << SEQUENCE_BITS) - 1)
#define MAX_RELATIVE_US ((UINT64_C(1) << (64 - SEQUENCE_BITS)) - 1)
#define REBASE_AFTER_US (MAX_RELATIVE_US / 2)

static inline int node_before(const struct eventer_timer_node *a,
                              const struct eventer_timer_node *b)
{
    return a->key < b->key;
}

static uint64_t whence_us(eventer_t e)
{
    if (e->whence.tv_sec <= 0 && e->whence.tv_usec <= 0)
        return 0;
    return (uint64_t)e->whence.tv_sec * 1000000u + (uint64_t)e->whence.tv_usec;
}

static uint64_t relative_us(struct eventer_loop *loop, uint64_t at_us)
{
    if (at_us <= loop->timer_base_us)
        return 0;
    uint64_t relative = at_us - loop->timer_base_us;
    return relative > MAX_RELATIVE_US ? MAX_RELATIVE_US : relative;
}

static uint64_t make_key(struct eventer_loop *loop, eventer_t e)
{
    uint64_t sequence = loop->timer_sequence++ & SEQUENCE_MASK;
    return relative_us(loop, whence_us(e)) << SEQUENCE_BITS | sequence;
}

static inline void place(struct eventer_timer_node *heap, uint32_t position,
                         struct eventer_timer_node node)
{
    heap[position] = node;
    node.event->heap_index = position + 1;
}

static void sift_up(struct eventer_loop *loop, uint32_t position)
{
    struct eventer_timer_node *heap = loop->heap;
    struct eventer_timer_node node = heap[position];
    while (position > 0) {
        uint32_t parent = (position - 1) / 4;
        if (!node_before(&node, &heap[parent]))
            break;
        place(heap, position, heap[parent]);
        position = parent;
    }
    place(heap, position, node);
}

static void sift_down(struct eventer_loop *loop, uint32_t position)
{
    struct eventer_timer_node *heap = loop->heap;
    struct eventer_timer_node node = heap[position];
    uint32_t count = loop->heap_count;
    for (;;) {
        uint32_t first = position * 4 + 1;
        if (first >= count)
            break;
        uint32_t best = first;
        if (first + 4 <= count) {
            /* The common case: four children, one cache line. */
            if (node_before(&heap[first + 1], &heap[best]))
                best = first + 1;
            if (node_before(&heap[first + 2], &heap[best]))
                best = first + 2;
            if (node_before(&heap[first + 3], &heap[best]))
                best = first + 3;
        } else {
            for (uint32_t child = first + 1; child < count; child++)
                if (node_before(&heap[child], &heap[best]))
                    best = child;
        }
        if (!node_before(&heap[best], &node))
            break;
        place(heap, position, heap[best]);
        position = best;
    }
    place(heap, position, node);
}

static void grow(struct eventer_loop *loop)
{
    uint32_t capacity = loop->heap_capacity ? loop->heap_capacity * 2 : 1024;
    size_t bytes = ((size_t)capacity + HEAP_OFFSET) * sizeof(struct eventer_timer_node);
    void *block = NULL;
    if (posix_memalign(&block, 64, bytes) != 0)
        mtevFatal(mtev_error, "eventer_add_timed: out of memory for %u timers\n", capacity);
    struct eventer_timer_node *heap = (struct eventer_timer_node *)block + HEAP_OFFSET;
    if (loop->heap_count)
        memcpy(heap, loop->heap, loop->heap_count * sizeof(*heap));
    free(loop->heap_allocation);
    loop->heap_allocation = block;
    loop->heap = heap;
    loop->heap_capacity = capacity;
}

void eventer_impl_timer_insert(struct eventer_loop *loop, eventer_t e)
{
    if (loop->heap_count == loop->heap_capacity)
        grow(loop);
    uint32_t position = loop->heap_count++;
    loop->heap[position] = (struct eventer_timer_node){make_key(loop, e), e};
    sift_up(loop, position);
}

void eventer_impl_timer_delete(struct eventer_loop *loop, eventer_t e)
{
    uint32_t index = e->heap_index;
    if (index == 0)
        return;
    uint32_t position = index - 1;
    e->heap_index = 0;
    uint32_t last = --loop->heap_count;
    if (position == last)
        return;
    place(loop->heap, position, loop->heap[last]);
    if (position > 0 && node_before(&loop->heap[position], &loop->heap[(position - 1) / 4]))
        sift_up(loop, position);
    else
        sift_down(loop, position);
}

void eventer_impl_timer_rekey(struct eventer_loop *loop, eventer_t e)
{
    uint32_t index = e->heap_index;
    if (index == 0)
        return;
    uint32_t position = index - 1;
    loop->heap[position].key = make_key(loop, e);
    if (position > 0 && node_before(&loop->heap[position], &loop->heap[(position - 1) / 4]))
        sift_up(loop, position);
    else
        sift_down(loop, position);
}

static void pop_top(struct eventer_loop *loop)
{
    loop->heap[0].event->heap_index = 0;
    uint32_t last = --loop->heap_count;
    if (last > 0) {
        loop->heap[0] = loop->heap[last];
        sift_down(loop, 0);
    }
}

/* Moves the base up to now: every key is recomputed and the heap rebuilt. Rare (months). */
static void rebase(struct eventer_loop *loop)
{
    loop->timer_base_us = loop->now_us;
    for (uint32_t i = 0; i < loop->heap_count; i++)
        loop->heap[i].key = make_key(loop, loop->heap[i].event);
    for (uint32_t i = loop->heap_count; i-- > 0;)
        sift_down(loop, i);
}

int eventer_impl_timers_fire(struct eventer_loop *loop)
{
    if (loop->now_us - loop->timer_base_us > REBASE_AFTER_US)
        rebase(loop);
    /* Due: a deadline at or before now, whatever the sequence bits. */
    uint64_t due_below = (relative_us(loop, loop->now_us) + 1) << SEQUENCE_BITS;
    /* Only timers queued when the pass starts: a callback that keeps re-adding a due timer
     * cannot hold the loop here. */
    uint32_t budget = loop->heap_count;
    int fired = 0;
    while (budget-- > 0 && loop->heap_count > 0 && loop->heap[0].key < due_below) {
        eventer_t e = loop->heap[0].event;
        pop_top(loop);
        uint32_t expected = EVENT_STATE_TIMER;
        /* Lost to a concurrent eventer_remove_timed(): the remover owns it now. */
        if (!__atomic_compare_exchange_n(&e->state, &expected, EVENT_STATE_IDLE, 0,
                                         __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
            continue;
        fired++;
        int again = eventer_impl_run_callback(e, EVENTER_TIMER, &loop->now);
        if (again) {
            e->mask |= EVENTER_TIMER;
            eventer_add_timed(e);
        } else {
            eventer_deref(e);
        }
    }
    return fired;
}

uint64_t eventer_impl_timers_next_wait(struct eventer_loop *loop)
{
    if (loop->heap_count == 0)
        return UINT64_MAX;
    uint64_t at = (loop->heap[0].key >> SEQUENCE_BITS) + loop->timer_base_us;
    uint64_t now = eventer_impl_now_us();
    return at <= now ? 0 : at - now;
}

void eventer_impl_timers_release(struct eventer_loop *loop)
{
    for (uint32_t i = 0; i < loop->heap_count; i++) {
        eventer_t e = loop->heap[i].event;
        e->heap_index = 0;
        uint32_t expected = EVENT_STATE_TIMER;
        if (__atomic_compare_exchange_n(&e->state, &expected, EVENT_STATE_IDLE, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED))
            eventer_deref(e);
    }
    free(loop->heap_allocation);
    loop->heap_allocation = NULL;
    loop->heap = NULL;
    loop->heap_count = loop->heap_capacity = 0;
}

void eventer_foreach_timedevent(void (*visit)(eventer_t e, void *closure), void *closure)
{
    struct eventer_loop *loop = eventer_impl_current_loop();
    if (!loop)
        return;
    for (uint32_t i = 0; i < loop->heap_count; i++)
        visit(loop->heap[i].event, closure);
}
