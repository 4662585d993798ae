/*
 * Timers: per loop thread, a timing wheel for the next few seconds between two 4-ary heaps.
 *
 *   due heap    deadlines before `wheel_start_us`: everything that is due now or within the
 *               current wheel slot. Small (one slot's worth), so it stays in cache.
 *   wheel       `slot_count` slots of 2^granularity_shift microseconds covering
 *               [wheel_start_us, wheel_start_us + span); a slot is an unsorted array.
 *   far heap    deadlines at or after the wheel's end.
 *
 * Adding a timer within the span is an append to its slot. Whenever the due heap runs empty,
 * the first slot the loop's clock has reached moves into it (bulk-heapified: one slot at a
 * time, so the heap stays a slot's size even when the loop is many slots late), the wheel's
 * start moves past it, and far timers that now fall inside the span move into the wheel.
 * Firing pops the due heap. A million timers thus cost an append, a move and a pop in a heap
 * of a slot's size each, instead of a push and a pop in a heap of a million whose every level
 * is a cache miss. Timers further out than the span pay what a plain heap costs, plus an
 * append and a move.
 *
 * Order: a key packs the deadline, in microseconds after the loop's `timer_base_us` (44 bits:
 * 203 days; the base moves forward when the clock gets near that), above a 20-bit insertion
 * sequence, so one integer comparison orders by deadline and then by insertion (exactly,
 * unless 2^20 insertions separate two timers with the same deadline). Timers with the same
 * deadline always meet in the same structure before they fire, so the due heap orders them.
 *
 * Heap nodes are 16 bytes (key, event); element i lives at storage slot i + 3 of a 64-byte
 * aligned block, so the four children 4i+1..4i+4 share one cache line. Each event records where
 * its node is (`timer_place`: due heap, far heap or wheel slot) and at which position
 * (`heap_index`, 1-based; 0 = not held) for O(1) removal from a slot and O(log n) from a heap.
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

/* Values of an event's `timer_place` below the wheel's; slot s is TIMER_PLACE_SLOT + s. */
enum { TIMER_PLACE_DUE = 0, TIMER_PLACE_FAR = 1, TIMER_PLACE_SLOT = 2 };

/* An empty slot keeps its array up to this capacity (512 bytes); larger ones are freed when
 * the loop sleeps (at most once every TRIM_INTERVAL_US), so memory taken by a burst goes back. */
#define SLOT_KEPT_CAPACITY 32
/* The same for the two heaps. */
#define HEAP_KEPT_CAPACITY 4096
#define TRIM_INTERVAL_US   1000000

/* Geometry for loops created from now on (see eventer_impl_timer_wheel_configure). */
static unsigned configured_shift = 10;   /* 1.024 ms per slot */
static unsigned configured_slots = 4096; /* about 4.2 s in all */

int eventer_impl_timer_wheel_configure(unsigned granularity_shift, unsigned slot_count)
{
    if (granularity_shift > 24 || slot_count < 64 || slot_count > EVENTER_TIMER_WHEEL_MAX_SLOTS ||
        (slot_count & (slot_count - 1)) != 0)
        return -1;
    configured_shift = granularity_shift;
    configured_slots = slot_count;
    return 0;
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

/* The (clamped) absolute deadline a key stands for. */
static inline uint64_t deadline_of(const struct eventer_loop *loop, uint64_t key)
{
    return loop->timer_base_us + (key >> SEQUENCE_BITS);
}

/* ---- 4-ary heaps ---- */

static inline void heap_place(struct eventer_timer_heap *heap, uint32_t position,
                              struct eventer_timer_node node, uint16_t place)
{
    heap->nodes[position] = node;
    node.event->heap_index = position + 1;
    node.event->timer_place = place;
}

static void heap_sift_up(struct eventer_timer_heap *heap, uint32_t position, uint16_t place)
{
    struct eventer_timer_node *nodes = heap->nodes;
    struct eventer_timer_node node = nodes[position];
    while (position > 0) {
        uint32_t parent = (position - 1) / 4;
        if (node.key >= nodes[parent].key)
            break;
        heap_place(heap, position, nodes[parent], place);
        position = parent;
    }
    heap_place(heap, position, node, place);
}

/* `track`: record moved nodes' positions in their events (off while bulk-heapifying). */
static inline __attribute__((always_inline)) void
heap_sift_down_inline(struct eventer_timer_heap *heap, uint32_t position, uint16_t place, int track)
{
    struct eventer_timer_node *nodes = heap->nodes;
    struct eventer_timer_node node = nodes[position];
    uint32_t count = heap->count;
    for (;;) {
        uint32_t first = position * 4 + 1;
        if (first >= count)
            break;
        uint32_t best = first;
        if (first + 4 <= count) {
            /* The common case: four children, one cache line. */
            if (nodes[first + 1].key < nodes[best].key)
                best = first + 1;
            if (nodes[first + 2].key < nodes[best].key)
                best = first + 2;
            if (nodes[first + 3].key < nodes[best].key)
                best = first + 3;
        } else {
            for (uint32_t child = first + 1; child < count; child++)
                if (nodes[child].key < nodes[best].key)
                    best = child;
        }
        if (nodes[best].key >= node.key)
            break;
        if (track)
            heap_place(heap, position, nodes[best], place);
        else
            nodes[position] = nodes[best];
        position = best;
    }
    if (track)
        heap_place(heap, position, node, place);
    else
        nodes[position] = node;
}

static void heap_sift_down(struct eventer_timer_heap *heap, uint32_t position, uint16_t place)
{
    heap_sift_down_inline(heap, position, place, 1);
}

/* Grows storage to hold at least `needed` nodes. Returns 0, or -1 when out of memory. */
static int heap_reserve(struct eventer_timer_heap *heap, uint32_t needed)
{
    if (needed <= heap->capacity)
        return 0;
    if (eventer_impl_fault(EVENTER_FAULT_TIMER_STORAGE))
        return -1;
    uint32_t capacity = heap->capacity ? heap->capacity : 16;
    while (capacity < needed)
        capacity *= 2;
    size_t bytes = ((size_t)capacity + HEAP_OFFSET) * sizeof(struct eventer_timer_node);
    void *block = NULL;
    if (posix_memalign(&block, 64, bytes) != 0)
        return -1;
    struct eventer_timer_node *nodes = (struct eventer_timer_node *)block + HEAP_OFFSET;
    if (heap->count)
        memcpy(nodes, heap->nodes, heap->count * sizeof(*nodes));
    free(heap->allocation);
    heap->allocation = block;
    heap->nodes = nodes;
    heap->capacity = capacity;
    return 0;
}

static void heap_release(struct eventer_timer_heap *heap)
{
    free(heap->allocation);
    memset(heap, 0, sizeof(*heap));
}

static int heap_push(struct eventer_timer_heap *heap, struct eventer_timer_node node,
                     uint16_t place)
{
    if (heap_reserve(heap, heap->count + 1) < 0)
        return -1;
    uint32_t position = heap->count++;
    heap->nodes[position] = node;
    heap_sift_up(heap, position, place);
    return 0;
}

static void heap_remove_at(struct eventer_timer_heap *heap, uint32_t position, uint16_t place)
{
    uint32_t last = --heap->count;
    if (position == last)
        return;
    heap_place(heap, position, heap->nodes[last], place);
    if (position > 0 && heap->nodes[position].key < heap->nodes[(position - 1) / 4].key)
        heap_sift_up(heap, position, place);
    else
        heap_sift_down(heap, position, place);
}

/* Restores heap order over the whole array (after keys changed or nodes were appended). */
static void heap_rebuild(struct eventer_timer_heap *heap, uint16_t place)
{
    if (heap->count < 2) {
        if (heap->count)
            heap_place(heap, 0, heap->nodes[0], place);
        return;
    }
    for (uint32_t i = (heap->count - 2) / 4 + 1; i-- > 0;)
        heap_sift_down_inline(heap, i, place, 0);
    /* One pass of independent stores instead of a dependent miss per sift step. */
    for (uint32_t i = 0; i < heap->count; i++) {
        heap->nodes[i].event->heap_index = i + 1;
        heap->nodes[i].event->timer_place = place;
    }
}

/* ---- the wheel ---- */

static inline uint64_t wheel_span_us(const struct eventer_loop *loop)
{
    return (uint64_t)loop->wheel_slot_count << loop->wheel_shift;
}

static inline uint32_t slot_of(const struct eventer_loop *loop, uint64_t at_us)
{
    return (uint32_t)(at_us >> loop->wheel_shift) & (loop->wheel_slot_count - 1);
}

static int wheel_create(struct eventer_loop *loop)
{
    uint32_t slots = configured_slots;
    loop->wheel = calloc(slots, sizeof(*loop->wheel));
    loop->wheel_occupied = calloc(slots / 64, sizeof(uint64_t));
    if (!loop->wheel || !loop->wheel_occupied) {
        free(loop->wheel);
        free(loop->wheel_occupied);
        loop->wheel = NULL;
        loop->wheel_occupied = NULL;
        return -1;
    }
    loop->wheel_shift = configured_shift;
    loop->wheel_slot_count = slots;
    uint64_t now = eventer_impl_now_us();
    if (loop->now_us > now)
        now = loop->now_us;
    loop->wheel_start_us = ((now >> loop->wheel_shift) + 1) << loop->wheel_shift;
    return 0;
}

static int slot_append(struct eventer_loop *loop, uint32_t index, struct eventer_timer_node node)
{
    struct eventer_timer_slot *slot = &loop->wheel[index];
    struct eventer_timer_heap *timers = &slot->timers;
    if (timers->count == timers->capacity && heap_reserve(timers, timers->count + 1) < 0)
        return -1;
    if (timers->count == 0) {
        slot->min_key = node.key;
        loop->wheel_occupied[index / 64] |= UINT64_C(1) << (index % 64);
    } else if (node.key < slot->min_key) {
        slot->min_key = node.key;
    }
    uint32_t position = timers->count++;
    timers->nodes[position] = node;
    node.event->heap_index = position + 1;
    node.event->timer_place = (uint16_t)(TIMER_PLACE_SLOT + index);
    return 0;
}

static void slot_remove_at(struct eventer_loop *loop, uint32_t index, uint32_t position)
{
    struct eventer_timer_heap *timers = &loop->wheel[index].timers;
    uint32_t last = --timers->count;
    if (position != last) {
        struct eventer_timer_node moved = timers->nodes[last];
        timers->nodes[position] = moved;
        moved.event->heap_index = position + 1;
    }
    /* min_key may now be lower than any remaining key: it only makes the loop wake early. */
    if (timers->count == 0)
        loop->wheel_occupied[index / 64] &= ~(UINT64_C(1) << (index % 64));
}

/* Ring distance from slot `from` to the first occupied slot (slot_count if none). */
static uint32_t next_occupied_distance(const struct eventer_loop *loop, uint32_t from)
{
    uint32_t words = loop->wheel_slot_count / 64;
    uint32_t word = from / 64;
    uint64_t bits = loop->wheel_occupied[word] & (~UINT64_C(0) << (from % 64));
    for (uint32_t scanned = 0; scanned <= words; scanned++) {
        if (bits) {
            uint32_t index = word * 64 + (uint32_t)__builtin_ctzll(bits);
            return (index - from) & (loop->wheel_slot_count - 1);
        }
        word = (word + 1) % words;
        bits = loop->wheel_occupied[word];
        /* Back at the first word: only the bits below `from` are left to look at. */
        if (scanned + 1 == words)
            bits &= (from % 64) ? ~(~UINT64_C(0) << (from % 64)) : 0;
    }
    return loop->wheel_slot_count;
}

/* ---- placing a node by its deadline ---- */

static int place_node(struct eventer_loop *loop, struct eventer_timer_node node)
{
    uint64_t at = deadline_of(loop, node.key);
    if (at < loop->wheel_start_us)
        return heap_push(&loop->due, node, TIMER_PLACE_DUE);
    if (at - loop->wheel_start_us < wheel_span_us(loop))
        return slot_append(loop, slot_of(loop, at), node);
    return heap_push(&loop->far, node, TIMER_PLACE_FAR);
}

/* Moves a slot's nodes into the due heap. */
static void drain_slot(struct eventer_loop *loop, uint32_t index)
{
    struct eventer_timer_heap *timers = &loop->wheel[index].timers;
    struct eventer_timer_heap *due = &loop->due;
    if (due->count == 0) {
        /* The usual case: the slot's array becomes the heap, the heap's (empty) storage goes
         * to the slot. No copy, and no allocator call while timers fire. */
        struct eventer_timer_heap spare = *due;
        *due = *timers;
        *timers = spare;
        heap_rebuild(due, TIMER_PLACE_DUE);
    } else {
        if (heap_reserve(due, due->count + timers->count) < 0) {
            /* Left where it is, in order; tried again next iteration. */
            mtevL(eventer_impl_error, "eventer timers: out of memory moving %u due timers\n",
                  timers->count);
            return;
        }
        for (uint32_t i = 0; i < timers->count; i++) {
            due->nodes[due->count++] = timers->nodes[i];
            heap_sift_up(due, due->count - 1, TIMER_PLACE_DUE);
        }
        timers->count = 0;
    }
    loop->wheel_occupied[index / 64] &= ~(UINT64_C(1) << (index % 64));
    if (timers->capacity > SLOT_KEPT_CAPACITY)
        loop->timer_trim_pending = 1;
}

/* Frees empty arrays above the kept sizes: memory held after a burst goes back. Run when the
 * loop is about to sleep, not while timers fire (a free there makes glibc consolidate every
 * small block freed so far). */
static void trim_storage(struct eventer_loop *loop)
{
    loop->timer_trim_pending = 0;
    for (uint32_t s = 0; s < loop->wheel_slot_count; s++) {
        struct eventer_timer_heap *timers = &loop->wheel[s].timers;
        if (timers->count == 0 && timers->capacity > SLOT_KEPT_CAPACITY)
            heap_release(timers);
    }
    if (loop->due.count == 0 && loop->due.capacity > HEAP_KEPT_CAPACITY)
        heap_release(&loop->due);
    if (loop->far.count == 0 && loop->far.capacity > HEAP_KEPT_CAPACITY)
        heap_release(&loop->far);
}

/* Moves far timers that now fall inside the wheel's span into it. */
static void migrate_far(struct eventer_loop *loop)
{
    uint64_t wheel_end = loop->wheel_start_us + wheel_span_us(loop);
    struct eventer_timer_heap *far = &loop->far;
    while (far->count > 0 && deadline_of(loop, far->nodes[0].key) < wheel_end) {
        struct eventer_timer_node node = far->nodes[0];
        heap_remove_at(far, 0, TIMER_PLACE_FAR);
        if (place_node(loop, node) < 0) {
            mtevL(eventer_impl_error, "eventer timers: out of memory moving a timer\n");
            /* Back where it was (its room is still there); tried again next iteration. */
            heap_push(far, node, TIMER_PLACE_FAR);
            return;
        }
    }
    if (far->count == 0 && far->capacity > HEAP_KEPT_CAPACITY)
        loop->timer_trim_pending = 1;
}

/*
 * Called with the due heap empty: moves the wheel forward to `now`. The first occupied slot
 * that starts at or before now moves into the due heap (one slot at a time, so the due heap
 * stays a slot's size even when the loop is late by many slots); with none, the wheel's start
 * catches up with now. Returns whether the due heap has timers again.
 */
static int refill_due(struct eventer_loop *loop, uint64_t now)
{
    if (now < loop->wheel_start_us)
        return 0;
    uint32_t from = slot_of(loop, loop->wheel_start_us);
    uint32_t distance = next_occupied_distance(loop, from);
    if (distance < loop->wheel_slot_count &&
        loop->wheel_start_us + ((uint64_t)distance << loop->wheel_shift) <= now) {
        uint32_t index = (from + distance) & (loop->wheel_slot_count - 1);
        drain_slot(loop, index);
        if (loop->wheel[index].timers.count != 0)
            return loop->due.count > 0; /* out of memory: stays put, in order */
        loop->wheel_start_us += (uint64_t)(distance + 1) << loop->wheel_shift;
    } else {
        /* Every slot before now is empty: they pass at no cost. */
        loop->wheel_start_us = ((now >> loop->wheel_shift) + 1) << loop->wheel_shift;
    }
    migrate_far(loop);
    return loop->due.count > 0;
}

/* ---- the internal interface ---- */

static void report_dropped(eventer_t e)
{
    mtevL(eventer_impl_error, "eventer_add_timed: out of memory; timer %p dropped\n", (void *)e);
    e->heap_index = 0;
    uint32_t expected = EVENT_STATE_TIMER;
    if (__atomic_compare_exchange_n(&e->state, &expected, EVENT_STATE_IDLE, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_RELAXED))
        eventer_deref(e);
}

void eventer_impl_timer_insert(struct eventer_loop *loop, eventer_t e)
{
    if (!loop->wheel && wheel_create(loop) < 0) {
        report_dropped(e);
        return;
    }
    if (place_node(loop, (struct eventer_timer_node){make_key(loop, e), e}) < 0) {
        report_dropped(e);
        return;
    }
    loop->timer_count++;
}

static void unlink_node(struct eventer_loop *loop, eventer_t e)
{
    uint32_t position = e->heap_index - 1;
    uint16_t place = e->timer_place;
    e->heap_index = 0;
    if (place == TIMER_PLACE_DUE)
        heap_remove_at(&loop->due, position, place);
    else if (place == TIMER_PLACE_FAR)
        heap_remove_at(&loop->far, position, place);
    else
        slot_remove_at(loop, place - TIMER_PLACE_SLOT, position);
    loop->timer_count--;
}

void eventer_impl_timer_delete(struct eventer_loop *loop, eventer_t e)
{
    if (e->heap_index == 0)
        return;
    unlink_node(loop, e);
}

void eventer_impl_timer_rekey(struct eventer_loop *loop, eventer_t e)
{
    if (e->heap_index == 0)
        return;
    /* A new deadline may belong to another structure: take it out and place it again. */
    unlink_node(loop, e);
    eventer_impl_timer_insert(loop, e);
}

/* Moves the base up to now: every key is recomputed. Rare (months). */
static void rebase(struct eventer_loop *loop)
{
    loop->timer_base_us = loop->now_us;
    for (uint32_t i = 0; i < loop->due.count; i++)
        loop->due.nodes[i].key = make_key(loop, loop->due.nodes[i].event);
    heap_rebuild(&loop->due, TIMER_PLACE_DUE);
    for (uint32_t i = 0; i < loop->far.count; i++)
        loop->far.nodes[i].key = make_key(loop, loop->far.nodes[i].event);
    heap_rebuild(&loop->far, TIMER_PLACE_FAR);
    for (uint32_t s = 0; loop->wheel && s < loop->wheel_slot_count; s++) {
        struct eventer_timer_slot *slot = &loop->wheel[s];
        for (uint32_t i = 0; i < slot->timers.count; i++) {
            slot->timers.nodes[i].key = make_key(loop, slot->timers.nodes[i].event);
            if (i == 0 || slot->timers.nodes[i].key < slot->min_key)
                slot->min_key = slot->timers.nodes[i].key;
        }
    }
}

int eventer_impl_timers_fire(struct eventer_loop *loop)
{
    if (loop->timer_count == 0)
        return 0;
    if (loop->now_us - loop->timer_base_us > REBASE_AFTER_US)
        rebase(loop);
    struct eventer_timer_heap *due = &loop->due;
    /* Due: a deadline at or before now, whatever the sequence bits. */
    uint64_t due_below = (relative_us(loop, loop->now_us) + 1) << SEQUENCE_BITS;
    /* Only as many as were queued when the pass started: a callback that keeps re-adding a
     * due timer cannot hold the loop here. */
    uint32_t budget = loop->timer_count;
    int fired = 0;
    while (budget > 0) {
        if (due->count == 0 && !refill_due(loop, loop->now_us))
            break;
        if (due->nodes[0].key >= due_below)
            break;
        budget--;
        eventer_t e = due->nodes[0].event;
        e->heap_index = 0;
        heap_remove_at(due, 0, TIMER_PLACE_DUE);
        loop->timer_count--;
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

static uint64_t next_wait(struct eventer_loop *loop)
{
    if (loop->timer_count == 0)
        return UINT64_MAX;
    uint64_t key;
    if (loop->due.count > 0) {
        key = loop->due.nodes[0].key;
    } else {
        uint32_t from = slot_of(loop, loop->wheel_start_us);
        uint32_t distance = next_occupied_distance(loop, from);
        if (distance < loop->wheel_slot_count)
            key = loop->wheel[(from + distance) & (loop->wheel_slot_count - 1)].min_key;
        else if (loop->far.count > 0)
            key = loop->far.nodes[0].key;
        else
            return UINT64_MAX;
    }
    uint64_t at = deadline_of(loop, key);
    uint64_t now = eventer_impl_now_us();
    return at <= now ? 0 : at - now;
}

uint64_t eventer_impl_timers_next_wait(struct eventer_loop *loop)
{
    /* Every iteration of a loop without timers comes here: return before any other work. */
    if (loop->timer_count == 0 && !loop->timer_trim_pending)
        return UINT64_MAX;
    uint64_t wait = next_wait(loop);
    /* At most once a second: a busy loop whose slots each see more than SLOT_KEPT_CAPACITY
     * timers would otherwise free and regrow their arrays on every sleep. A loop going idle
     * wakes once more for it. */
    if (wait > 0 && loop->timer_trim_pending) {
        uint64_t since = loop->now_us - loop->timer_trimmed_us;
        if (since >= TRIM_INTERVAL_US) {
            loop->timer_trimmed_us = loop->now_us;
            trim_storage(loop);
        } else if (wait > TRIM_INTERVAL_US - since) {
            wait = TRIM_INTERVAL_US - since;
        }
    }
    return wait;
}

static void visit_all(struct eventer_loop *loop, void (*visit)(eventer_t e, void *closure),
                      void *closure)
{
    for (uint32_t i = 0; i < loop->due.count; i++)
        visit(loop->due.nodes[i].event, closure);
    for (uint32_t s = 0; loop->wheel && s < loop->wheel_slot_count; s++)
        for (uint32_t i = 0; i < loop->wheel[s].timers.count; i++)
            visit(loop->wheel[s].timers.nodes[i].event, closure);
    for (uint32_t i = 0; i < loop->far.count; i++)
        visit(loop->far.nodes[i].event, closure);
}

static void release_one(eventer_t e, void *closure)
{
    (void)closure;
    e->heap_index = 0;
    uint32_t expected = EVENT_STATE_TIMER;
    if (__atomic_compare_exchange_n(&e->state, &expected, EVENT_STATE_IDLE, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_RELAXED))
        eventer_deref(e);
}

void eventer_impl_timers_release(struct eventer_loop *loop)
{
    visit_all(loop, release_one, NULL);
    heap_release(&loop->due);
    heap_release(&loop->far);
    for (uint32_t s = 0; loop->wheel && s < loop->wheel_slot_count; s++)
        heap_release(&loop->wheel[s].timers);
    free(loop->wheel);
    free(loop->wheel_occupied);
    loop->wheel = NULL;
    loop->wheel_occupied = NULL;
    loop->timer_count = 0;
}

void eventer_foreach_timedevent(void (*visit)(eventer_t e, void *closure), void *closure)
{
    struct eventer_loop *loop = eventer_impl_current_loop();
    if (!loop)
        return;
    visit_all(loop, visit, closure);
}
