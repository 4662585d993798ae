/*
 * Timers: one 4-ary min-heap per loop thread, ordered by (deadline in microseconds, insertion
 * sequence) so timers with equal deadlines fire in the order they were added. Each event
 * remembers its heap position (`heap_index`, 1-based) so removal and re-keying are
 * O(log n). The nodes carry the key, so sifting never touches the events themselves.
 * Owner thread only; other threads go through the loop's command queue.
 */
#include "eventer/eventer_internal.h"

#include <stdlib.h>

static int node_before(const struct eventer_timer_node *a, const struct eventer_timer_node *b)
{
    return a->at_us < b->at_us || (a->at_us == b->at_us && a->sequence < b->sequence);
}

static uint64_t whence_us(eventer_t e)
{
    if (e->whence.tv_sec <= 0 && e->whence.tv_usec <= 0)
        return 0;
    return (uint64_t)e->whence.tv_sec * 1000000u + (uint64_t)e->whence.tv_usec;
}

static void place(struct eventer_loop *loop, uint32_t position,
                  const struct eventer_timer_node *node)
{
    loop->heap[position] = *node;
    node->event->heap_index = position + 1;
}

static void sift_up(struct eventer_loop *loop, uint32_t position)
{
    struct eventer_timer_node node = loop->heap[position];
    while (position > 0) {
        uint32_t parent = (position - 1) / 4;
        if (!node_before(&node, &loop->heap[parent]))
            break;
        place(loop, position, &loop->heap[parent]);
        position = parent;
    }
    place(loop, position, &node);
}

static void sift_down(struct eventer_loop *loop, uint32_t position)
{
    struct eventer_timer_node node = loop->heap[position];
    uint32_t count = loop->heap_count;
    for (;;) {
        uint32_t first = position * 4 + 1;
        if (first >= count)
            break;
        uint32_t best = first;
        uint32_t last = first + 4 < count ? first + 4 : count;
        for (uint32_t child = first + 1; child < last; child++)
            if (node_before(&loop->heap[child], &loop->heap[best]))
                best = child;
        if (!node_before(&loop->heap[best], &node))
            break;
        place(loop, position, &loop->heap[best]);
        position = best;
    }
    place(loop, position, &node);
}

void eventer_impl_timer_insert(struct eventer_loop *loop, eventer_t e)
{
    if (loop->heap_count == loop->heap_capacity) {
        uint32_t capacity = loop->heap_capacity ? loop->heap_capacity * 2 : 256;
        struct eventer_timer_node *grown = realloc(loop->heap, capacity * sizeof(*grown));
        if (!grown)
            mtevFatal(mtev_error, "eventer_add_timed: out of memory for %u timers\n", capacity);
        loop->heap = grown;
        loop->heap_capacity = capacity;
    }
    struct eventer_timer_node node = {whence_us(e), loop->timer_sequence++, e};
    uint32_t position = loop->heap_count++;
    loop->heap[position] = node;
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
    struct eventer_timer_node moved = loop->heap[last];
    place(loop, position, &moved);
    if (position > 0 && node_before(&moved, &loop->heap[(position - 1) / 4]))
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
    loop->heap[position].at_us = whence_us(e);
    loop->heap[position].sequence = loop->timer_sequence++;
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
        place(loop, 0, &loop->heap[last]);
        sift_down(loop, 0);
    }
}

int eventer_impl_timers_fire(struct eventer_loop *loop)
{
    /* Only timers queued when the pass starts: a callback that keeps re-adding a due timer
     * cannot hold the loop here. */
    uint32_t budget = loop->heap_count;
    int fired = 0;
    while (budget-- > 0 && loop->heap_count > 0 && loop->heap[0].at_us <= loop->now_us) {
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
    uint64_t at = loop->heap[0].at_us;
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
    free(loop->heap);
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
