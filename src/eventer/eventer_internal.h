/*
 * Private to the eventer and the layers built inside the library on top of it (the ACO glue,
 * the adaptation host, the TLS opset): the event layout, the loop-thread structure, and the
 * hooks those layers use. Not installed; may change with the library.
 *
 * Invariants:
 *  - An event's callback, and its registration state (`mask` of a registered fd event, heap
 *    position, recurrent slot), are touched only by its owner loop thread once it is added.
 *    Other threads reach the owner through its command queue.
 *  - `fd_table[fd]` (atomic) is the registered event for fd; it is stored only by whoever
 *    registers or removes the fd, with release/acquire ordering, so a loop thread that reads
 *    it sees the event's fields.
 *  - `state` (atomic) says whether the eventer holds the event as a timer or a recurrent event;
 *    removal claims it with a compare-and-swap, so exactly one of "fires" and "is removed"
 *    happens.
 *
 * Hooks for other layers (all in this header):
 *  - eventer_impl_current_loop() / eventer_impl_loop_index_of_event(): which loop thread.
 *  - eventer_impl_run_on_loop(): run a function on a given loop thread;
 *    eventer_impl_run_on_loop_or_spill(): the same, without losing it for want of memory.
 *  - eventer_impl_register_wait_hooks(): before a loop thread waits (may lower the timeout)
 *    and after it wakes.
 *  - `aco_context` and EVENT_FLAG_ACO: the ACO layer converts an fd event by saving and
 *    replacing its callback and opset (the eventer then calls the replacement, which resumes
 *    the co-routine), storing its state in `aco_context` and setting EVENT_FLAG_ACO (which
 *    makes eventer_set_owner() a no-op). eventer_impl_set_this_event() lets it swap the
 *    "current event" when it switches co-routines.
 *  - eventer_impl_dispatch_fd(): run an fd callback as the loop would (fold the mask).
 */
#ifndef ARK_EVENTER_INTERNAL_H
#define ARK_EVENTER_INTERNAL_H

#include <eventer/eventer.h>

#include <pthread.h>
#include <stdint.h>

#include "eventer/poller.h"

struct eventer_loop;
struct eventer_job;

/* The event is converted to an ACO event (see above). */
#define EVENT_FLAG_ACO 0x1
/* Registration of this fd failed once already; a second failure drops the event. */
#define EVENT_FLAG_REGISTER_FAILED 0x2

/*
 * A command that could not be queued for want of memory, in a node its owner embeds: a job's
 * COMPLETE or CANCELLED (eventer_impl_spill_command) or a COMMAND_RUN
 * (eventer_impl_run_on_loop_or_spill).
 */
struct eventer_spilled_command {
    struct eventer_spilled_command *next;
    int kind;
    eventer_t event;                  /* COMMAND_COMPLETE, COMMAND_CANCELLED */
    void (*function)(void *argument); /* COMMAND_RUN */
    void *argument;
};

/* Values of `state`. */
enum { EVENT_STATE_IDLE = 0, EVENT_STATE_TIMER = 1, EVENT_STATE_RECURRENT = 2 };

struct _event {
    /* The libmtev fields, in libmtev's order. */
    eventer_func_t callback;
    struct timeval whence;
    int fd;
    int mask;
    eventer_fd_opset_t opset;
    void *opset_ctx;
    void *closure;
    pthread_t thr_owner;
    uint32_t refcnt; /* atomic */

    /* Private. */
    uint32_t state;                       /* atomic, EVENT_STATE_* */
    uint8_t flags;                        /* EVENT_FLAG_*, owner thread only */
    uint8_t descriptor_kind;              /* atomic; whether fd is a socket (eventer_fd.c) */
    uint16_t timer_place;                 /* which timer structure holds it (eventer_timers.c) */
    uint32_t heap_index;                  /* position there + 1 (timers, recurrent); 0 = not held */
    struct eventer_loop *owner_loop;      /* loop of thr_owner, NULL if not a loop thread */
    struct eventer_loop *registered_loop; /* whose poller holds the fd, owner thread only */
    struct eventer_job *job;              /* asynch events: the job record */
    void *aco_context;                    /* owned by the ACO layer */
    /* A timer/recurrent add or remove that could not be queued for want of memory: the event
     * itself goes on `reconcile_loop`'s `reconcile` stack (atomic; NULL: it is on none). */
    struct _event *reconcile_next;
    struct eventer_loop *reconcile_loop;
};

/* A command queued to a loop thread by another thread. */
enum eventer_command_kind {
    COMMAND_ADD,       /* timer or recurrent event; holds a guard reference */
    COMMAND_REMOVE,    /* drop a claimed timer/recurrent from the structures; guard ref */
    COMMAND_UPDATE,    /* eventer_update(e, mask); guard reference */
    COMMAND_TRIGGER,   /* eventer_trigger(e, mask); the eventer's reference */
    COMMAND_COMPLETE,  /* an asynch job's COMPLETE phase */
    COMMAND_RUN,       /* call function(argument) */
    COMMAND_CANCELLED, /* an asynch job whose thread was cancelled: finish it */
};

/*
 * A command that could not be queued because the queue could not grow (out of memory): a
 * job's COMPLETE or CANCELLED (the node lives in the job record) or a COMMAND_RUN (see
 * eventer_impl_run_on_loop_or_spill). The node is pushed, without allocating, on one of the
 * loop's spill stacks, which the loop drains with its commands, and the loop is woken. (A
 * timer or recurrent add/remove goes the same way on the `reconcile` stack, through the
 * event's own link.) Thread: any.
 */
void eventer_impl_spill_command(struct eventer_loop *loop, struct eventer_spilled_command *spilled);

struct eventer_command {
    int kind;
    int mask;
    eventer_t event;
    struct timeval whence; /* COMMAND_UPDATE with has_whence */
    int has_whence;
    void (*function)(void *argument);
    void *argument;
};

/* 16 bytes: four siblings share one cache line (see eventer_timers.c). */
struct eventer_timer_node {
    uint64_t key; /* (deadline - timer_base_us) << 20 | insertion sequence (20 bits) */
    eventer_t event;
};

/* A 4-ary min-heap of nodes on `key`. */
struct eventer_timer_heap {
    struct eventer_timer_node *nodes;
    void *allocation; /* what `nodes` points into (aligned storage) */
    uint32_t count, capacity;
};

/* One slot of the timing wheel: an unsorted array (in a heap's storage, so that a drained
 * slot's array can become the due heap). */
struct eventer_timer_slot {
    struct eventer_timer_heap timers;
    uint64_t min_key; /* at most the smallest key held (may be stale low after a removal) */
};

/* The largest wheel eventer_impl_timer_wheel_configure() accepts. */
#define EVENTER_TIMER_WHEEL_MAX_SLOTS 16384

struct eventer_loop {
    int index;
    pthread_t thread;
    char name[32];
    struct eventer_poller poller;
    int wakeup_fd;

    /* Owner-thread state. */
    /* Timers (eventer_timers.c): due heap, wheel, far heap. */
    struct eventer_timer_heap due, far;
    struct eventer_timer_slot *wheel; /* wheel_slot_count slots, NULL until the first timer */
    uint64_t *wheel_occupied;         /* one bit per non-empty slot */
    uint64_t wheel_start_us;          /* the wheel covers [start, start + slots << shift) */
    uint32_t wheel_slot_count;
    unsigned wheel_shift;      /* a slot spans 2^wheel_shift microseconds */
    uint32_t timer_count;      /* timers held in all three */
    int timer_trim_pending;    /* empty arrays above the kept size wait to be freed */
    uint64_t timer_trimmed_us; /* when they last were */
    uint64_t timer_sequence;
    uint64_t timer_base_us; /* deadlines are stored relative to this */
    eventer_t *recurrent;
    uint32_t recurrent_count, recurrent_capacity;
    int recurrent_holes; /* removed slots (NULL) awaiting compaction */
    struct timeval now;
    uint64_t now_us;

    /* Filled by other threads under command_lock, swapped out by the owner. */
    pthread_mutex_t command_lock;
    struct eventer_command *commands;
    uint32_t command_count, command_capacity;
    struct eventer_command *draining;
    uint32_t draining_capacity;
    /* Atomic stacks, see eventer_impl_spill_command(): job commands, and COMMAND_RUNs (kept
     * apart: a loop drops its runs when it exits, the job commands wait for the cleanup). */
    struct eventer_spilled_command *spilled, *spilled_runs;
    struct _event *reconcile; /* atomic stack of events, linked by `reconcile_next` */

    /* The completion "back queue" jobq object for introspection. */
    struct _eventer_jobq *backq;
};

/* ---- shared between the eventer's files ---- */

extern int eventer_impl_loop_count;
extern struct eventer_loop *eventer_impl_loops;
extern mtev_log_stream_t eventer_impl_error;
extern mtev_log_stream_t eventer_impl_debug;

/* The loop thread running the caller, or NULL (set by each loop thread for itself). */
extern __thread struct eventer_loop *eventer_impl_this_loop
    __attribute__((tls_model("initial-exec")));
static inline struct eventer_loop *eventer_impl_current_loop(void)
{
    return eventer_impl_this_loop;
}
/* Index of e's owner loop (the loop an event falls back to when its owner is not one). */
int eventer_impl_loop_index_of_event(eventer_t e);
/* The loop that will run e's callbacks (never NULL once initialised). */
struct eventer_loop *eventer_impl_loop_of_event(eventer_t e);
/*
 * Queues a command to `loop` and wakes it if needed. Returns 0, or -1 when the queue cannot
 * grow (out of memory): nothing is queued and the caller still holds what the command
 * carried; it reports the failure, naming its call. Any thread.
 */
int eventer_impl_queue_command(struct eventer_loop *loop, const struct eventer_command *command);
/* Wakes `loop` (writes its eventfd). Any thread. */
void eventer_impl_wake(struct eventer_loop *loop);
/* The current time in microseconds since the epoch (CLOCK_REALTIME). */
uint64_t eventer_impl_now_us(void);
/* True once eventer_init() succeeded and until eventer_cleanup(). */
int eventer_impl_running(void);
/* True after eventer_shutdown(). */
int eventer_impl_stopping(void);

/* Event memory (eventer_event_pool.c). Any thread. */
/* A zeroed event, or NULL when out of memory. */
eventer_t eventer_impl_event_get(void);
/* Gives back an event from eventer_impl_event_get(), on any thread. */
void eventer_impl_event_put(eventer_t e);
/* 64 KB chunks the pool holds mapped now (in use, or kept as spares). */
uint64_t eventer_impl_event_chunks_mapped(void);

/* Timers (eventer_timers.c), owner thread. */
void eventer_impl_timer_insert(struct eventer_loop *loop, eventer_t e);
void eventer_impl_timer_delete(struct eventer_loop *loop, eventer_t e);
void eventer_impl_timer_rekey(struct eventer_loop *loop, eventer_t e);
/* Fires due timers; returns the number fired. */
int eventer_impl_timers_fire(struct eventer_loop *loop);
/* Microseconds until the next timer (UINT64_MAX if none). */
uint64_t eventer_impl_timers_next_wait(struct eventer_loop *loop);
void eventer_impl_timers_release(struct eventer_loop *loop);
/*
 * Wheel geometry for loops whose first timer comes after the call: slots of
 * 2^granularity_shift microseconds (at most 24), `slot_count` of them (a power of two from
 * 64 to EVENTER_TIMER_WHEEL_MAX_SLOTS). Default 10 and 4096 (about 4.2 s). Returns 0, or -1
 * for a geometry out of range. For tests: a small wheel makes timers cross all three
 * structures quickly. Call before eventer_init().
 */
int eventer_impl_timer_wheel_configure(unsigned granularity_shift, unsigned slot_count);

/* Job queues (eventer_jobq.c). */
int eventer_impl_jobq_init(void);
void eventer_impl_jobq_complete(eventer_t e); /* owner loop: COMPLETE phase */
void eventer_impl_jobq_discard(eventer_t e);  /* teardown: free a job without calling it */
/* Finishes a job whose thread was cancelled (CLEANUP runs here). Owner loop, or teardown. */
void eventer_impl_jobq_finish_cancelled(eventer_t e, int tearing_down);
/* Teardown, in two steps: stop and join job threads; later free the queues. */
void eventer_impl_jobq_stop(void);
void eventer_impl_jobq_free(void);
int eventer_impl_jobq_propset(const char *name, const char *value);
struct _eventer_jobq *eventer_impl_backq_create(struct eventer_loop *loop);
void eventer_impl_backq_destroy(struct _eventer_jobq *backq);

/* Runs e's callback as the loop does and folds the returned mask. Owner thread only. */
void eventer_impl_dispatch_fd(struct eventer_loop *loop, eventer_t e, int mask);
/* Runs a timer or recurrent callback with bookkeeping (current event). */
int eventer_impl_run_callback(eventer_t e, int mask, struct timeval *now);

/*
 * Fault injection for tests: while eventer_impl_faults[site] is positive, each allocation at
 * that site fails as if memory were exhausted (a growth behaves as if the array were full
 * and could not grow), and the count goes down by one. Atomic; zero unless a test sets it.
 */
enum eventer_fault_site {
    EVENTER_FAULT_COMMAND_QUEUE,   /* eventer_impl_queue_command() */
    EVENTER_FAULT_RECURRENT_LIST,  /* a loop's recurrent list */
    EVENTER_FAULT_JOB_RECORD,      /* the record of an asynch job (eventer_add_asynch*()) */
    EVENTER_FAULT_JOBQ_THREADS,    /* a job queue's thread list */
    EVENTER_FAULT_TIMER_STORAGE,   /* a loop's timer heaps and wheel slots (growth) */
    EVENTER_FAULT_SUBQUEUE_RECORD, /* the record of a job subqueue (eventer_jobq.c) */
    EVENTER_FAULT_SITES
};
extern int eventer_impl_faults[EVENTER_FAULT_SITES];
/* True when this allocation at `site` must fail (consumes one count). */
static inline int eventer_impl_fault(enum eventer_fault_site site)
{
    int left = __atomic_load_n(&eventer_impl_faults[site], __ATOMIC_RELAXED);
    while (left > 0)
        if (__atomic_compare_exchange_n(&eventer_impl_faults[site], &left, left - 1, 0,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            return 1;
    return 0;
}

/* ---- hooks for the ACO layer and the adaptation host ---- */

/*
 * Runs `function(argument)` on loop thread `loop_index` at its next iteration (always
 * queued, never run synchronously). Returns 0, or -1 if the index is invalid or the eventer
 * is not running. Thread: any.
 */
int eventer_impl_run_on_loop(int loop_index, void (*function)(void *argument), void *argument);

/*
 * Like eventer_impl_run_on_loop(), but a full command queue that cannot grow (out of memory)
 * does not lose the call: `node`, owned by the caller (embedded in the object the function
 * works on), is filled in and pushed, without allocating, with eventer_impl_spill_command(); the
 * failure is logged naming `call`. The fast path is eventer_impl_run_on_loop()'s, and leaves `node`
 * untouched.
 *
 * The node must stay allocated, and must not be passed again, until `function` starts (the
 * loop reads what it needs from the node before calling it, so `function` may pass the node
 * again or free it). The caller keeps its own "pending" flag or counter to know whether a
 * call is outstanding. A node still pending when its loop stops is dropped unrun (as commands
 * queued then are) before the ACO layer frees that loop's objects; one pushed after that is
 * never run nor read again, so it may be freed at once.
 *
 * Returns 0 (queued or spilled), or -1 if the index is invalid or the eventer is not running
 * (nothing queued, node untouched). Thread: any.
 */
int eventer_impl_run_on_loop_or_spill(int loop_index, void (*function)(void *argument),
                                      void *argument, struct eventer_spilled_command *node,
                                      const char *call);

/*
 * Called on a loop thread just before it waits for I/O. `*timeout_us` is how long it plans
 * to wait (UINT64_MAX: until woken); the hook may lower it (never raise: raised values are
 * ignored). Keep it short: it runs every iteration.
 */
typedef void (*eventer_pre_wait_hook_t)(void *closure, int loop_index, uint64_t *timeout_us);
/* Called on a loop thread right after the wait returned `ready` descriptors. */
typedef void (*eventer_post_wait_hook_t)(void *closure, int loop_index, int ready);

/*
 * Registers hooks run by loop thread `loop_index` (-1: every loop thread); either may be
 * NULL. Returns a handle for eventer_impl_unregister_wait_hooks(), or -1 when the table
 * (16 entries) is full. Thread: any; takes effect from the loops' next iteration.
 */
int eventer_impl_register_wait_hooks(int loop_index, eventer_pre_wait_hook_t before,
                                     eventer_post_wait_hook_t after, void *closure);
/*
 * Removes hooks. After it returns, a loop may still be inside one call of them that had
 * started; callers that free `closure` should do so from the loop thread or after
 * eventer_cleanup().
 */
void eventer_impl_unregister_wait_hooks(int handle);

/*
 * Called on each loop thread as it stops, after its last iteration and before its cos are
 * destroyed (a co still waiting there never runs again). The loops' structures are still
 * allocated while any exit hook runs. Returns a handle, or -1 when the table (4 entries) is
 * full. Thread: any; unregister only once no loop runs.
 */
typedef void (*eventer_loop_exit_hook_t)(void *closure, int loop_index);
int eventer_impl_register_loop_exit_hook(eventer_loop_exit_hook_t hook, void *closure);
void eventer_impl_unregister_loop_exit_hook(int handle);

/*
 * get_opset_ctx/set_opset_ctx for any opset whose closure is the event: they read and store
 * the event's `opset_ctx`.
 */
void *eventer_impl_get_opset_ctx(void *closure);
void eventer_impl_set_opset_ctx(void *closure, void *context);

/* Sets the event eventer_get_this_event() reports on this thread; returns the previous. */
eventer_t eventer_impl_set_this_event(eventer_t e);

/* ---- the ACO layer (eventer_aco.c), called by the core ---- */

/* Non-NULL while a co started by eventer_aco_start*() runs on this thread. */
extern __thread void *eventer_impl_aco_running __attribute__((tls_model("initial-exec")));
/* eventer_read/write/accept/close on a classic event from inside a co: reports, aborts. */
ARK_NORETURN void eventer_impl_aco_classic_misuse(const char *call, eventer_t e);
/* eventer_deref() is freeing an event that carries an aco_context. */
void eventer_impl_aco_release(eventer_t e);
/* eventer_alloc_copy() of an aco event: the copy gets the classic callback and opset. */
void eventer_impl_aco_copy(eventer_t source, eventer_t copy);
/* On a loop thread as it stops: destroys its cos. */
void eventer_impl_aco_loop_exit(struct eventer_loop *loop);
/* eventer_cleanup(), once every loop stopped: frees starts that never ran. */
void eventer_impl_aco_cleanup(void);

/* ---- the ACO layer, for layers inside the library (HTTP sessions) ---- */

/*
 * Waits, inside the co `e` is bound to, until e's descriptor may be readable, without first
 * trying a read: for a server that just answered and expects the client's next request, the
 * read eventer_aco_read() would try first almost always fails with EAGAIN. Returns 0 (then
 * read: the descriptor may still turn out not ready) or -1 if the co's timer expired.
 */
int eventer_impl_aco_wait_readable(eventer_aco_t e);

#endif
