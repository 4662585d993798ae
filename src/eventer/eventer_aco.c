/*
 * The eventer <-> ACO glue: co-routines pinned to loop threads, converted fd events, blocking
 * style I/O, sleeps, jobs and gates, teardown, statistics.
 *
 * Everything about a co happens on its loop thread: it is created there, resumed there (by
 * an fd callback, a timer callback, a job's COMPLETE phase, or the thread's ready list), and
 * destroyed there. The only state touched by other threads is the list of starts queued from
 * off the loop (start_lock), the statistics (atomics), a job record's function and
 * closure (read by a job thread after the queue's lock published them), and a gate's count of
 * releases by other threads (atomic).
 *
 * Out of memory in a loop's command queue loses nothing: what is handed to a loop (a ready
 * list's drain, a start, a gate's releases) carries its own node for
 * eventer_impl_run_on_loop_or_spill(), and at most one hand-over per object is pending.
 *
 * Wake-ups: a co that waits sets what it waits for (an fd event, its timer, a job, a gate)
 * and yields; a waker that finds the co waiting for it sets a `woke` bit and resumes it.
 * Every wait loops until its own bit is set, so a stray resume is harmless. A waker that runs
 * inside a co (say a co's eventer_trigger() runs another aco event's callback) cannot resume
 * a co from there; it puts the co on the thread's ready list, drained at the loop's next
 * iteration.
 *
 * Registration of a converted descriptor: the first wait registers it (the eventer then holds
 * a reference, as for any registered fd event); later waits change the interest mask only if
 * it differs. It stays registered between calls, so an echo costs the same system calls as a
 * classic callback; if it turns ready while nobody waits, the callback returns 0 and the
 * eventer takes it out. Inside that event's own callback, a registration that is dropped is
 * left for the callback's return value (0) to undo, as eventer_remove_fde() in a classic
 * callback is.
 */
#include "eventer/eventer_internal.h"
#include "aco/aco_internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The kinds of aco_context an event may carry (the first member of each). */
enum { CONTEXT_FD = 1, CONTEXT_JOB = 2 };

/* What a co waits for / what woke it. */
#define WOKE_FD    0x1
#define WOKE_TIMER 0x2
#define WOKE_JOB   0x4

#define NO_TIMEOUT UINT64_MAX

enum { OP_ACCEPT = 0, OP_READ = 1, OP_WRITE = 2 };

struct aco_co;
struct aco_thread;

/* e->aco_context of a converted fd event. */
struct aco_event {
    int kind;
    uint8_t registered;   /* the eventer holds the descriptor (and a reference) */
    uint8_t dispatching;  /* the event's callback is running */
    uint8_t dropped;      /* registration dropped during the callback: it returns 0 */
    uint8_t reverted;     /* reverted during the callback: the callback frees this */
    uint8_t read_drained; /* the last read got less than asked: the socket is likely empty */
    int wanted_mask;      /* the interest of the registration */
    eventer_t event;
    eventer_func_t original_callback;
    eventer_fd_opset_t original_opset;
    struct aco_co *bound;
    struct aco_event *bound_next, *bound_prev;
    uint64_t default_timeout_us[3]; /* by OP_*; NO_TIMEOUT = none */
};

/* A shared stack of a loop thread, and the co whose frames were last on it. */
struct aco_stack {
    aco_share_stack_t *stack;
    size_t size;
    struct aco_co *last;
    int created_here; /* 0: the thread's default stack (aco_thread_share_stack) */
};

#define STACKS_PER_THREAD 4

/* Per loop thread. */
struct aco_thread {
    struct eventer_loop *loop;
    aco_t *main_co;
    struct aco_stack stacks[STACKS_PER_THREAD];
    int stack_count;
    struct aco_co *live;
    struct aco_co *ready_head, *ready_tail;
    int ready_drain_queued;
    /* The drain, when the queue is out of memory. */
    struct eventer_spilled_command ready_drain_spill;
    struct _event_aco_gate *gates;
    uint64_t unflushed_resumes;
};

struct aco_co {
    aco_t *co;
    void (*function)(void);
    void *closure;
    struct aco_thread *home;
    struct aco_stack *stack;
    int flags;
    int saved_errno;
    eventer_t this_event;
    uint8_t woke;
    uint8_t timer_armed;
    uint8_t in_ready;
    eventer_t wait_event;    /* fd event it waits on */
    void *wait_job;          /* job record it waits on */
    eventer_t timer;         /* reused for sleeps and timeouts; the co holds a reference */
    struct aco_event *bound; /* events bound to it */
    uint32_t gate_count;     /* gates it created and has not waited on */
    uint32_t accounted_save_bytes;
    struct aco_co *next, *prev;
    struct aco_co *ready_next;
};

struct _event_aco_gate {
    uint32_t count; /* the creator's count plus one per job not completed */
    uint8_t waiting;
    uint8_t waited; /* its co entered eventer_aco_gate_wait(): the creator's count is gone */
    uint8_t orphan; /* its co ended without waiting: freed by the last completion */
    struct aco_co *owner;
    struct aco_thread *home;
    struct eventer_loop *loop;
    struct _event_aco_gate *next, *prev;
    /* Releases by other threads not yet applied (atomic), plus GATE_ABANDONED once the loop
     * stopped; the release that raises it from 0 hands them to the loop (through
     * `release_spill` when the queue is out of memory). */
    uint32_t remote_releases;
    /* Memory, not counting (atomic): one for the loop's side until the gate is waited on,
     * orphaned and done, or abandoned; one per hold until its release returns. A hold can
     * outlive the loop, so the last of them frees the gate. */
    uint32_t references;
    struct eventer_spilled_command release_spill;
};

#define GATE_ABANDONED 0x80000000u

enum { JOB_SIMPLE, JOB_PHASES, JOB_RUN };

/* e->aco_context (and closure) of a job queued by a co. */
struct aco_job {
    int kind;
    int type;
    eventer_asynch_simple_func_t simple;
    eventer_asynch_func_t phases;
    eventer_t wrapped;
    void *closure;
    struct aco_co *waiter;
    struct _event_aco_gate *gate;
};

/* A start requested from off the loop, waiting for its loop to run it. */
struct pending_start {
    void (*function)(void);
    void *closure;
    size_t stack_size;
    int flags;
    struct pending_start *next, *prev;
    struct eventer_spilled_command spill; /* its run, when the queue is out of memory */
};

__thread void *eventer_impl_aco_running __attribute__((tls_model("initial-exec")));
static __thread struct aco_thread *this_thread __attribute__((tls_model("initial-exec")));

static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pending_start *pending_starts;

static mtev_log_stream_t aco_debug; /* atomic */
static mtev_log_stream_t aco_error; /* atomic */
#define DEBUG_STREAM __atomic_load_n(&aco_debug, __ATOMIC_RELAXED)
#define ERROR_STREAM __atomic_load_n(&aco_error, __ATOMIC_RELAXED)

static uint64_t stat_live, stat_started, stat_save_bytes, stat_resumes; /* atomic */

static void co_main(void);
static void resume(struct aco_co *ctx);

/* ---- reports ---- */

static void ensure_streams(void)
{
    if (!__atomic_load_n(&aco_error, __ATOMIC_ACQUIRE)) {
        __atomic_store_n(&aco_debug, mtev_log_stream_find("debug/eventer/aco"), __ATOMIC_RELEASE);
        __atomic_store_n(&aco_error, mtev_log_stream_find("error/eventer"), __ATOMIC_RELEASE);
    }
}

static const char *function_name(void (*function)(void))
{
    Dl_info info;
    memset(&info, 0, sizeof(info));
    if (dladdr((void *)function, &info) && info.dli_sname && info.dli_saddr == (void *)function)
        return info.dli_sname;
    return "?";
}

void eventer_impl_aco_classic_misuse(const char *call, eventer_t e)
{
    mtevFatal(mtev_error,
              "%s: called from inside a co-routine on classic event %p (fd %d), which cannot "
              "wait there; convert it with eventer_set_eventer_aco() and use eventer_aco_* "
              "calls\n",
              call, (void *)e, e ? e->fd : -1);
}

static inline struct aco_co *running(void)
{
    return eventer_impl_aco_running;
}

static struct aco_co *require_co(const char *call)
{
    struct aco_co *ctx = running();
    if (mtev_unlikely(!ctx))
        mtevFatal(mtev_error,
                  "%s: must be called inside a co-routine started by eventer_aco_start()\n", call);
    return ctx;
}

/* ---- statistics ---- */

static void account(struct aco_co *ctx)
{
    aco_t *co = ctx->co;
    uint32_t bytes = co->save_stack ? co->save_stack_capacity : 0;
    if (bytes != ctx->accounted_save_bytes) {
        __atomic_add_fetch(&stat_save_bytes, (uint64_t)bytes - ctx->accounted_save_bytes,
                           __ATOMIC_RELAXED);
        ctx->accounted_save_bytes = bytes;
    }
}

void eventer_aco_get_stats(eventer_aco_stats_t *stats)
{
    if (!stats)
        return;
    stats->live = __atomic_load_n(&stat_live, __ATOMIC_RELAXED);
    stats->started = __atomic_load_n(&stat_started, __ATOMIC_RELAXED);
    stats->save_stack_bytes = __atomic_load_n(&stat_save_bytes, __ATOMIC_RELAXED);
    stats->resumes = __atomic_load_n(&stat_resumes, __ATOMIC_RELAXED);
}

/* ---- threads and stacks ---- */

static struct aco_thread *thread_state(void)
{
    if (mtev_likely(this_thread != NULL))
        return this_thread;
    struct eventer_loop *loop = eventer_impl_current_loop();
    if (!loop)
        mtevFatal(mtev_error, "eventer_aco: co-routines live on loop threads only\n");
    ensure_streams();
    struct aco_thread *ts = calloc(1, sizeof(*ts));
    if (!ts)
        mtevFatal(mtev_error, "eventer_aco: out of memory\n");
    ts->loop = loop;
    ts->main_co = aco_thread_main_co();
    this_thread = ts;
    return ts;
}

static struct aco_stack *pick_stack(struct aco_thread *ts, size_t wanted)
{
    if (wanted <= ACO_SHARE_STACK_DEFAULT_SIZE)
        wanted = 0;
    struct aco_stack *largest = NULL;
    for (int i = 0; i < ts->stack_count; i++) {
        struct aco_stack *s = &ts->stacks[i];
        if (wanted == 0 ? s->size == ACO_SHARE_STACK_DEFAULT_SIZE : s->size >= wanted)
            return s;
        if (!largest || s->size > largest->size)
            largest = s;
    }
    if (ts->stack_count == STACKS_PER_THREAD) {
        mtevL(ERROR_STREAM,
              "eventer_aco_start_stack: %d shared stacks in use; a co asking for %zu "
              "bytes gets %zu\n",
              STACKS_PER_THREAD, wanted, largest->size);
        return largest;
    }
    struct aco_stack *s = &ts->stacks[ts->stack_count++];
    s->created_here = wanted != 0;
    s->stack = wanted == 0 ? aco_thread_share_stack() : aco_share_stack_new(wanted);
    s->size = wanted == 0 ? ACO_SHARE_STACK_DEFAULT_SIZE : aco_share_stack_size(s->stack);
    return s;
}

/* ---- creating, resuming, ending cos ---- */

static struct aco_co *co_create(struct aco_thread *ts, void (*function)(void), void *closure,
                                size_t stack_size, int flags)
{
    struct aco_co *ctx = calloc(1, sizeof(*ctx));
    if (!ctx)
        mtevFatal(mtev_error, "eventer_aco_start: out of memory\n");
    ctx->function = function;
    ctx->closure = closure;
    ctx->home = ts;
    ctx->flags = flags;
    ctx->stack = pick_stack(ts, stack_size);
    size_t hint = stack_size > ctx->stack->size ? 0 : stack_size;
    ctx->co = aco_create(ts->main_co, ctx->stack->stack, hint, co_main, ctx);
    ctx->next = ts->live;
    if (ts->live)
        ts->live->prev = ctx;
    ts->live = ctx;
    __atomic_add_fetch(&stat_live, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&stat_started, 1, __ATOMIC_RELAXED);
    return ctx;
}

/* Resumes the cos that were made ready; those made ready meanwhile wait for the next run. */
static void drain_ready(void *argument)
{
    struct aco_thread *ts = argument;
    struct aco_co *list = ts->ready_head;
    ts->ready_head = ts->ready_tail = NULL;
    ts->ready_drain_queued = 0;
    while (list) {
        struct aco_co *ctx = list;
        list = ctx->ready_next;
        ctx->ready_next = NULL;
        ctx->in_ready = 0;
        resume(ctx);
    }
}

/* Only at teardown (no drain runs then): the co is on the thread's list. */
static void ready_remove(struct aco_co *ctx)
{
    struct aco_thread *ts = ctx->home;
    struct aco_co *previous = NULL;
    for (struct aco_co *c = ts->ready_head; c; previous = c, c = c->ready_next) {
        if (c != ctx)
            continue;
        if (previous)
            previous->ready_next = c->ready_next;
        else
            ts->ready_head = c->ready_next;
        if (ts->ready_tail == c)
            ts->ready_tail = previous;
        break;
    }
    ctx->in_ready = 0;
    ctx->ready_next = NULL;
}

/* Resumes `ctx` at the next loop iteration (the caller is inside a co). */
static void make_ready(struct aco_co *ctx)
{
    struct aco_thread *ts = ctx->home;
    if (ctx->in_ready)
        return;
    ctx->in_ready = 1;
    ctx->ready_next = NULL;
    if (ts->ready_tail)
        ts->ready_tail->ready_next = ctx;
    else
        ts->ready_head = ctx;
    ts->ready_tail = ctx;
    if (!ts->ready_drain_queued) {
        ts->ready_drain_queued = 1;
        eventer_impl_run_on_loop_or_spill(ts->loop->index, drain_ready, ts, &ts->ready_drain_spill,
                                          "eventer_aco: resuming a co");
    }
}

static void release_bound_events(struct aco_co *ctx, int ended_normally);
static void disarm_timer(struct aco_co *ctx);
static void orphan_gates(struct aco_co *ctx);

/* Frees an ended (or, at teardown, parked) co. On its loop thread, outside any co. */
static void co_destroy(struct aco_co *ctx, int ended_normally)
{
    struct aco_thread *ts = ctx->home;
    release_bound_events(ctx, ended_normally);
    disarm_timer(ctx);
    if (ctx->timer)
        eventer_deref(ctx->timer);
    if (ctx->gate_count)
        orphan_gates(ctx);
    if (ctx->in_ready)
        ready_remove(ctx);
    if (ctx->prev)
        ctx->prev->next = ctx->next;
    else
        ts->live = ctx->next;
    if (ctx->next)
        ctx->next->prev = ctx->prev;
    if (ctx->stack->last == ctx)
        ctx->stack->last = NULL;
    __atomic_sub_fetch(&stat_save_bytes, (uint64_t)ctx->accounted_save_bytes, __ATOMIC_RELAXED);
    __atomic_sub_fetch(&stat_live, 1, __ATOMIC_RELAXED);
    aco_destroy(ctx->co);
    free(ctx);
}

static void __attribute__((noinline)) log_resume(struct aco_co *ctx)
{
    aco_t *co = ctx->co;
    mtevL(DEBUG_STREAM,
          "co %p (%s) resumed on %s: %u bytes of stack to restore, save stack %u bytes\n",
          (void *)co, function_name(ctx->function), ctx->home->loop->name,
          co->share_stack && ((struct aco_share_stack *)co->share_stack)->owner == co
              ? 0u
              : co->saved_bytes_last,
          co->save_stack ? co->save_stack_capacity : 0u);
}

static void resume(struct aco_co *ctx)
{
    if (mtev_unlikely(running() != NULL)) {
        make_ready(ctx);
        return;
    }
    struct aco_thread *ts = ctx->home;
    if (mtev_unlikely(mtev_log_stream_is_enabled(DEBUG_STREAM)))
        log_resume(ctx);
    int outer_errno = errno;
    errno = ctx->saved_errno;
    eventer_t outer_event = eventer_impl_set_this_event(ctx->this_event);
    eventer_impl_aco_running = ctx;
    aco_resume(ctx->co);
    eventer_impl_aco_running = NULL;
    ctx->this_event = eventer_impl_set_this_event(outer_event);
    ctx->saved_errno = errno;
    errno = outer_errno;
    if (mtev_unlikely(++ts->unflushed_resumes >= 1024)) {
        __atomic_add_fetch(&stat_resumes, ts->unflushed_resumes, __ATOMIC_RELAXED);
        ts->unflushed_resumes = 0;
    }
    /* Taking the stack saved the co that had it before: both may have resized. */
    struct aco_stack *stack = ctx->stack;
    if (stack->last != ctx) {
        if (stack->last)
            account(stack->last);
        stack->last = ctx;
    }
    account(ctx);
    if (ctx->co->is_end)
        co_destroy(ctx, 1);
}

static void __attribute__((noreturn, noinline)) returned_without_exit(struct aco_co *ctx)
{
    mtevFatal(mtev_error,
              "eventer_aco: co-routine function %p (%s) returned without calling aco_exit(); "
              "end it with aco_exit() (only co-routines started with EVENTER_ACO_MAY_RETURN may "
              "return)\n",
              (void *)ctx->function, function_name(ctx->function));
}

static void co_main(void)
{
    struct aco_co *ctx = aco_get_arg();
    ctx->function();
    if (!(ctx->flags & EVENTER_ACO_MAY_RETURN))
        returned_without_exit(ctx);
    aco_exit();
}

static void start_here(void (*function)(void), void *closure, size_t stack_size, int flags)
{
    struct aco_co *ctx = co_create(thread_state(), function, closure, stack_size, flags);
    if (running())
        make_ready(ctx);
    else
        resume(ctx);
}

static void run_pending_start(void *argument)
{
    struct pending_start *p = argument;
    pthread_mutex_lock(&start_lock);
    if (p->prev)
        p->prev->next = p->next;
    else
        pending_starts = p->next;
    if (p->next)
        p->next->prev = p->prev;
    pthread_mutex_unlock(&start_lock);
    void (*function)(void) = p->function;
    void *closure = p->closure;
    size_t stack_size = p->stack_size;
    int flags = p->flags;
    free(p);
    start_here(function, closure, stack_size, flags);
}

void eventer_aco_start_on(pthread_t owner, void (*func)(void), void *closure, size_t stack_size,
                          int flags)
{
    if (!func)
        mtevFatal(mtev_error, "eventer_aco_start: NULL function\n");
    if (!eventer_impl_running())
        mtevFatal(mtev_error, "eventer_aco_start: the eventer is not running (call eventer_init() "
                              "first)\n");
    ensure_streams();
    int target = eventer_is_loop(owner);
    struct eventer_loop *here = eventer_impl_current_loop();
    if (target < 0)
        target = here ? here->index : 0;
    if (here && here->index == target) {
        start_here(func, closure, stack_size, flags);
        return;
    }
    struct pending_start *p = calloc(1, sizeof(*p));
    if (!p)
        mtevFatal(mtev_error, "eventer_aco_start: out of memory\n");
    p->function = func;
    p->closure = closure;
    p->stack_size = stack_size;
    p->flags = flags;
    pthread_mutex_lock(&start_lock);
    p->next = pending_starts;
    if (pending_starts)
        pending_starts->prev = p;
    pending_starts = p;
    pthread_mutex_unlock(&start_lock);
    /* Queued even during shutdown: eventer_impl_aco_cleanup() frees what never ran. */
    eventer_impl_run_on_loop_or_spill(target, run_pending_start, p, &p->spill, "eventer_aco_start");
}

void eventer_aco_start(void (*func)(void), void *closure)
{
    eventer_aco_start_on(pthread_self(), func, closure, 0, 0);
}

void eventer_aco_start_stack(void (*func)(void), void *closure, size_t stack_size)
{
    eventer_aco_start_on(pthread_self(), func, closure, stack_size, 0);
}

void *eventer_aco_arg(void)
{
    return require_co("eventer_aco_arg")->closure;
}

mtev_boolean eventer_is_aco(eventer_t e)
{
    if (e)
        return (e->flags & EVENT_FLAG_ACO) ? mtev_true : mtev_false;
    return running() ? mtev_true : mtev_false;
}

/* ---- timers ---- */

static int timer_fired(eventer_t timer, int mask, void *closure, struct timeval *now)
{
    struct aco_co *ctx = closure;
    (void)timer;
    (void)mask;
    (void)now;
    ctx->timer_armed = 0;
    ctx->woke |= WOKE_TIMER;
    resume(ctx);
    return 0; /* the eventer drops the reference it held while the timer was pending */
}

static void arm_timer(struct aco_co *ctx, uint64_t after_us)
{
    if (!ctx->timer) {
        struct timeval zero = {0, 0};
        ctx->timer = eventer_alloc_timer(timer_fired, ctx, &zero);
        if (!ctx->timer)
            mtevFatal(mtev_error, "eventer_aco: out of memory for a timer\n");
    }
    uint64_t at = eventer_impl_now_us() + after_us;
    ctx->timer->whence.tv_sec = (time_t)(at / 1000000u);
    ctx->timer->whence.tv_usec = (suseconds_t)(at % 1000000u);
    ctx->timer->mask = EVENTER_TIMER;
    ctx->timer_armed = 1;
    eventer_ref(ctx->timer); /* the eventer's, while pending */
    eventer_add_timed(ctx->timer);
}

static void disarm_timer(struct aco_co *ctx)
{
    if (!ctx->timer_armed)
        return;
    ctx->timer_armed = 0;
    if (eventer_remove_timed(ctx->timer))
        eventer_deref(ctx->timer);
}

static uint64_t timeval_us(const struct timeval *tv)
{
    if (tv->tv_sec < 0 || (tv->tv_sec == 0 && tv->tv_usec <= 0))
        return 0;
    return (uint64_t)tv->tv_sec * 1000000u + (uint64_t)(tv->tv_usec > 0 ? tv->tv_usec : 0);
}

void eventer_aco_sleep(struct timeval *duration)
{
    struct aco_co *ctx = require_co("eventer_aco_sleep");
    int saved = errno;
    arm_timer(ctx, duration ? timeval_us(duration) : 0);
    ctx->woke = 0;
    do
        aco_yield();
    while (!(ctx->woke & WOKE_TIMER));
    ctx->woke = 0;
    errno = saved;
}

void mtev_aco_sleep(struct timeval *duration)
{
    eventer_aco_sleep(duration);
}

/* ---- converted events ---- */

static struct aco_event *aco_event_of(const char *call, eventer_t e)
{
    if (mtev_unlikely(!e))
        mtevFatal(mtev_error, "%s: NULL event\n", call);
    if (mtev_unlikely(!(e->flags & EVENT_FLAG_ACO)))
        mtevFatal(mtev_error,
                  "%s: event %p (fd %d) is not an aco event; convert it with "
                  "eventer_set_eventer_aco() inside its co-routine\n",
                  call, (void *)e, e->fd);
    return e->aco_context;
}

static void require_owner_thread(const char *call, eventer_t e)
{
    if (mtev_unlikely(eventer_impl_current_loop() != e->owner_loop))
        mtevFatal(mtev_error, "%s: aco event %p (fd %d) belongs to %s; call it there\n", call,
                  (void *)e, e->fd, e->owner_loop ? e->owner_loop->name : "no loop");
}

static void bind_event(struct aco_event *st, struct aco_co *ctx)
{
    st->bound = ctx;
    st->bound_prev = NULL;
    st->bound_next = ctx->bound;
    if (ctx->bound)
        ctx->bound->bound_prev = st;
    ctx->bound = st;
}

static void unbind_event(struct aco_event *st)
{
    struct aco_co *ctx = st->bound;
    if (!ctx)
        return;
    if (st->bound_prev)
        st->bound_prev->bound_next = st->bound_next;
    else
        ctx->bound = st->bound_next;
    if (st->bound_next)
        st->bound_next->bound_prev = st->bound_prev;
    st->bound = NULL;
    st->bound_next = st->bound_prev = NULL;
}

/* Takes the descriptor out of the eventer (see the file comment for the callback case). */
static void unregister_event(eventer_t e, struct aco_event *st)
{
    if (!st->registered)
        return;
    st->registered = 0;
    /* Another event registered on this descriptor since replaced ours (and the eventer
     * dropped our registration's reference then): leave its registration alone. */
    if (eventer_find_fd(e->fd) != e)
        return;
    eventer_t removed = eventer_remove_fd(e->fd);
    if (st->dispatching) {
        st->dropped = 1;
        return;
    }
    if (removed == e)
        eventer_deref(e);
}

static void release_bound_events(struct aco_co *ctx, int ended_normally)
{
    while (ctx->bound) {
        struct aco_event *st = ctx->bound;
        eventer_t e = st->event;
        if (ended_normally)
            mtevL(DEBUG_STREAM, "co %p ended holding aco event %p (fd %d); releasing it\n",
                  (void *)ctx->co, (void *)e, e->fd);
        unbind_event(st);
        unregister_event(e, st);
        eventer_deref(e); /* the co's reference */
    }
}

/* The eventer calls this when a converted descriptor is ready. */
static int aco_fd_callback(eventer_t e, int mask, void *closure, struct timeval *now)
{
    struct aco_event *st = e->aco_context;
    (void)mask;
    (void)closure;
    (void)now;
    struct aco_co *ctx = st->bound;
    if (!ctx || ctx->wait_event != e) {
        /* Ready while nobody waits: let the eventer take it out until the next wait. */
        st->registered = 0;
        return 0;
    }
    ctx->woke |= WOKE_FD;
    st->dispatching = 1;
    resume(ctx);
    st->dispatching = 0;
    if (st->reverted) {
        free(st);
        /* Re-added as a classic event by the co: that add holds the registration now, so
         * keep it and drop the reference this callback's registration had. */
        if (e->fd >= 0 && eventer_find_fd(e->fd) == e) {
            eventer_deref(e);
            return e->mask;
        }
        return 0;
    }
    if (st->dropped) {
        st->dropped = 0;
        return 0;
    }
    return st->wanted_mask;
}

static void revert_event(eventer_t e)
{
    struct aco_event *st = aco_event_of("eventer_set_eventer_aco_co", e);
    require_owner_thread("eventer_set_eventer_aco_co", e);
    unregister_event(e, st);
    unbind_event(st);
    e->callback = st->original_callback;
    e->opset = st->original_opset;
    e->flags &= ~(uint32_t)EVENT_FLAG_ACO;
    e->aco_context = NULL;
    if (st->dispatching)
        st->reverted = 1;
    else
        free(st);
}

static eventer_aco_t convert_event(const char *call, eventer_t e, struct aco_co *ctx)
{
    if (!e)
        mtevFatal(mtev_error, "%s: NULL event\n", call);
    if (e->flags & EVENT_FLAG_ACO)
        mtevFatal(mtev_error,
                  "%s: event %p (fd %d) is already an aco event; convert a fresh event or an "
                  "eventer_alloc_copy() of it\n",
                  call, (void *)e, e->fd);
    if (e->mask & (EVENTER_TIMER | EVENTER_RECURRENT | EVENTER_ASYNCH))
        mtevFatal(mtev_error, "%s: event %p (mask 0x%x) is not an fd event\n", call, (void *)e,
                  e->mask);
    if (e->fd < 0)
        mtevFatal(mtev_error, "%s: event %p has no descriptor (fd %d)\n", call, (void *)e, e->fd);
    eventer_t registered = eventer_find_fd(e->fd);
    if (registered == e)
        mtevFatal(mtev_error,
                  "%s: event %p (fd %d) is still registered with the eventer; call "
                  "eventer_remove_fde() first, or convert an eventer_alloc_copy() of it\n",
                  call, (void *)e, e->fd);
    /* The seed's pattern with the eventer_remove_fde() forgotten: the copy's first wait would
     * replace the original's registration and free it under its own callback. */
    if (registered && !(registered->flags & EVENT_FLAG_ACO))
        mtevFatal(mtev_error,
                  "%s: fd %d is still registered with the eventer by classic event %p; call "
                  "eventer_remove_fde() on it before converting a copy\n",
                  call, e->fd, (void *)registered);
    struct aco_event *st = calloc(1, sizeof(*st));
    if (!st)
        mtevFatal(mtev_error, "%s: out of memory\n", call);
    st->kind = CONTEXT_FD;
    st->event = e;
    st->original_callback = e->callback;
    st->original_opset = e->opset;
    for (int i = 0; i < 3; i++)
        st->default_timeout_us[i] = NO_TIMEOUT;
    bind_event(st, ctx);
    struct eventer_loop *loop = ctx->home->loop;
    e->owner_loop = loop;
    e->thr_owner = loop->thread;
    e->callback = aco_fd_callback;
    e->opset = eventer_aco_fd_opset;
    e->aco_context = st;
    e->flags |= EVENT_FLAG_ACO;
    return (eventer_aco_t)e;
}

eventer_aco_t eventer_set_eventer_aco(eventer_t e)
{
    return convert_event("eventer_set_eventer_aco", e, require_co("eventer_set_eventer_aco"));
}

eventer_aco_t eventer_set_eventer_aco_co(eventer_t e, aco_t *co)
{
    if (!co) {
        revert_event(e);
        return NULL;
    }
    struct aco_co *ctx = co->arg;
    if (co->fp != co_main || !ctx || ctx->co != co || ctx->home != this_thread)
        mtevFatal(mtev_error,
                  "eventer_set_eventer_aco_co: co %p is not a co-routine started by "
                  "eventer_aco_start() on this loop thread\n",
                  (void *)co);
    return convert_event("eventer_set_eventer_aco_co", e, ctx);
}

void eventer_impl_aco_release(eventer_t e)
{
    int kind = *(int *)e->aco_context;
    if (kind == CONTEXT_FD) {
        struct aco_event *st = e->aco_context;
        unbind_event(st);
        free(st);
    } else {
        free(e->aco_context);
    }
    e->aco_context = NULL;
}

void eventer_impl_aco_copy(eventer_t source, eventer_t copy)
{
    struct aco_event *st = source->aco_context;
    copy->callback = st->original_callback;
    copy->opset = st->original_opset;
}

/* ---- blocking I/O ---- */

/*
 * Waits until e's descriptor may be ready for `mask`; -1 if the co's timer expired. Inlined
 * (as is aco_io) so that a parked co keeps one frame less on its stack: every switch copies
 * those bytes.
 */
static inline __attribute__((always_inline)) int wait_fd(struct aco_co *ctx, eventer_t e,
                                                         struct aco_event *st, int mask)
{
    if (!st->registered) {
        st->registered = 1;
        st->wanted_mask = mask;
        e->mask = mask;
        eventer_ref(e); /* the eventer's, while registered */
        eventer_add(e);
    } else if (st->wanted_mask != mask) {
        st->wanted_mask = mask;
        if (!st->dispatching)
            eventer_update(e, mask);
    }
    ctx->wait_event = e;
    ctx->woke = 0;
    do
        aco_yield();
    while (!(ctx->woke & (WOKE_FD | WOKE_TIMER)));
    ctx->wait_event = NULL;
    int expired = (ctx->woke & WOKE_TIMER) != 0;
    ctx->woke = 0;
    return expired ? -1 : 0;
}

static int attempt(struct aco_event *st, eventer_t e, int op, void *buffer, size_t length,
                   struct sockaddr *address, socklen_t *address_length, int *mask)
{
    eventer_fd_opset_t opset = st->original_opset;
    switch (op) {
    case OP_READ:
        return opset->read(e->fd, buffer, length, mask, e);
    case OP_WRITE:
        return opset->write(e->fd, buffer, length, mask, e);
    default:
        return opset->accept(e->fd, address, address_length, mask, e);
    }
}

static int would_block(int error)
{
    return error == EAGAIN || error == EWOULDBLOCK || error == EINPROGRESS;
}

static inline __attribute__((always_inline)) int
aco_io(const char *call, eventer_t e, int op, void *buffer, size_t length, struct sockaddr *address,
       socklen_t *address_length, const struct timeval *timeout, int *classic_mask)
{
    struct aco_event *st = aco_event_of(call, e);
    struct aco_co *ctx = running();
    /* Inside a co the thread is the co's loop: no need to ask the eventer. */
    struct eventer_loop *here = ctx ? ctx->home->loop : eventer_impl_current_loop();
    if (mtev_unlikely(here != e->owner_loop)) {
        /* Another thread (a job, say): one attempt, as the wrapped opset would do. */
        int mask = 0;
        int result = attempt(st, e, op, buffer, length, address, address_length, &mask);
        if (classic_mask)
            *classic_mask = mask;
        return result;
    }
    if (mtev_unlikely(!ctx || st->bound != ctx))
        mtevFatal(mtev_error,
                  "%s: aco event %p (fd %d) %s; only the co-routine it is bound to may wait "
                  "on it\n",
                  call, (void *)e, e->fd,
                  !st->bound ? "is bound to no co-routine"
                  : !ctx     ? "was used outside a co-routine"
                             : "is bound to another co-routine");
    uint64_t timeout_us = timeout ? timeval_us(timeout) : st->default_timeout_us[op];
    int armed = 0, expired = 0, result;
    /*
     * A read after one that drained a plain socket waits for readiness first instead of
     * trying: with level-triggered polling that is always correct (data already there is
     * reported at once) and spares the read that would fail with EAGAIN, so a co-routine
     * echo makes the same system calls as a classic callback. Not for other opsets (TLS
     * keeps data the poller cannot see).
     */
    int wait_first =
        op == OP_READ && st->read_drained && st->original_opset == eventer_POSIX_fd_opset;
    for (;;) {
        int mask = 0;
        if (wait_first) {
            wait_first = 0;
            result = -1;
            errno = EAGAIN;
        } else {
            result = attempt(st, e, op, buffer, length, address, address_length, &mask);
        }
        if (result >= 0 || !would_block(errno))
            break;
        if (expired) {
            errno = ETIME;
            break;
        }
        if (!armed && timeout_us != NO_TIMEOUT) {
            arm_timer(ctx, timeout_us);
            armed = 1;
        }
        if (!mask)
            mask = (op == OP_WRITE ? EVENTER_WRITE : EVENTER_READ) | EVENTER_EXCEPTION;
        if (wait_fd(ctx, e, st, mask) < 0)
            expired = 1;
    }
    if (op == OP_READ)
        st->read_drained = result > 0 && (size_t)result < length;
    if (armed) {
        int saved = errno;
        disarm_timer(ctx);
        errno = saved;
    }
    return result;
}

int eventer_aco_read(eventer_aco_t e, void *buffer, size_t length, struct timeval *timeout)
{
    return aco_io("eventer_aco_read", (eventer_t)e, OP_READ, buffer, length, NULL, NULL, timeout,
                  NULL);
}

int eventer_aco_write(eventer_aco_t e, const void *buffer, size_t length, struct timeval *timeout)
{
    return aco_io("eventer_aco_write", (eventer_t)e, OP_WRITE, (void *)buffer, length, NULL, NULL,
                  timeout, NULL);
}

int eventer_aco_accept(eventer_aco_t e, struct sockaddr *address, socklen_t *length,
                       struct timeval *timeout)
{
    return aco_io("eventer_aco_accept", (eventer_t)e, OP_ACCEPT, NULL, 0, address, length, timeout,
                  NULL);
}

/* 1 connected, 0 still in progress, -1 failed (errno set). */
static int connect_outcome(int fd)
{
    int error = 0;
    socklen_t length = sizeof(error);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) < 0)
        return -1;
    if (error) {
        errno = error;
        return -1;
    }
    struct sockaddr_storage peer;
    socklen_t peer_length = sizeof(peer);
    if (getpeername(fd, (struct sockaddr *)&peer, &peer_length) == 0)
        return 1;
    return errno == ENOTCONN ? 0 : -1;
}

int eventer_aco_connect(eventer_aco_t ae, const struct sockaddr *address, socklen_t length,
                        struct timeval *timeout)
{
    eventer_t e = (eventer_t)ae;
    struct aco_event *st = aco_event_of("eventer_aco_connect", e);
    require_owner_thread("eventer_aco_connect", e);
    struct aco_co *ctx = running();
    if (!ctx || st->bound != ctx)
        mtevFatal(mtev_error,
                  "eventer_aco_connect: aco event %p (fd %d) may be used only by the co-routine "
                  "it is bound to\n",
                  (void *)e, e->fd);
    if (connect(e->fd, address, length) == 0)
        return 0;
    if (errno != EINPROGRESS)
        return -1;
    uint64_t timeout_us = timeout ? timeval_us(timeout) : st->default_timeout_us[OP_WRITE];
    int armed = 0, expired = 0, result;
    for (;;) {
        if (!armed && timeout_us != NO_TIMEOUT) {
            arm_timer(ctx, timeout_us);
            armed = 1;
        }
        if (wait_fd(ctx, e, st, EVENTER_WRITE | EVENTER_EXCEPTION) < 0)
            expired = 1;
        int outcome = connect_outcome(e->fd);
        if (outcome != 0) {
            result = outcome > 0 ? 0 : -1;
            break;
        }
        if (expired) {
            errno = ETIME;
            result = -1;
            break;
        }
    }
    if (armed) {
        int saved = errno;
        disarm_timer(ctx);
        errno = saved;
    }
    return result;
}

int eventer_aco_close(eventer_aco_t ae)
{
    eventer_t e = (eventer_t)ae;
    struct aco_event *st = aco_event_of("eventer_aco_close", e);
    require_owner_thread("eventer_aco_close", e);
    unregister_event(e, st);
    int mask = 0;
    return st->original_opset->close(e->fd, &mask, e);
}

void eventer_aco_free(eventer_aco_t ae)
{
    eventer_t e = (eventer_t)ae;
    struct aco_event *st = aco_event_of("eventer_aco_free", e);
    require_owner_thread("eventer_aco_free", e);
    unbind_event(st);
    unregister_event(e, st);
    eventer_deref(e);
}

static void set_default_timeout(const char *call, eventer_aco_t ae, int op, struct timeval *timeout)
{
    struct aco_event *st = aco_event_of(call, (eventer_t)ae);
    st->default_timeout_us[op] = timeout ? timeval_us(timeout) : NO_TIMEOUT;
}

void eventer_aco_set_accept_timeout(eventer_aco_t e, struct timeval *timeout)
{
    set_default_timeout("eventer_aco_set_accept_timeout", e, OP_ACCEPT, timeout);
}

void eventer_aco_set_read_timeout(eventer_aco_t e, struct timeval *timeout)
{
    set_default_timeout("eventer_aco_set_read_timeout", e, OP_READ, timeout);
}

void eventer_aco_set_write_timeout(eventer_aco_t e, struct timeval *timeout)
{
    set_default_timeout("eventer_aco_set_write_timeout", e, OP_WRITE, timeout);
}

void *eventer_aco_get_closure(eventer_aco_t e)
{
    return ((eventer_t)e)->closure;
}

void eventer_aco_set_closure(eventer_aco_t e, void *closure)
{
    ((eventer_t)e)->closure = closure;
}

int eventer_aco_get_fd(eventer_aco_t e)
{
    return ((eventer_t)e)->fd;
}

/* ---- the opset: classic calls on aco events ---- */

static int opset_accept(int fd, struct sockaddr *address, socklen_t *length, int *mask,
                        void *closure)
{
    (void)fd;
    return aco_io("eventer_accept", closure, OP_ACCEPT, NULL, 0, address, length, NULL, mask);
}

static int opset_read(int fd, void *buffer, size_t length, int *mask, void *closure)
{
    (void)fd;
    return aco_io("eventer_read", closure, OP_READ, buffer, length, NULL, NULL, NULL, mask);
}

static int opset_write(int fd, const void *buffer, size_t length, int *mask, void *closure)
{
    (void)fd;
    return aco_io("eventer_write", closure, OP_WRITE, (void *)buffer, length, NULL, NULL, NULL,
                  mask);
}

static int opset_close(int fd, int *mask, void *closure)
{
    (void)fd;
    *mask = 0;
    return eventer_aco_close(closure);
}

static int opset_set_opset(void *closure, eventer_fd_opset_t opset)
{
    struct aco_event *st = aco_event_of("eventer set_opset", closure);
    st->original_opset = opset;
    return 0;
}

static struct _fd_opset aco_opset = {
    .accept = opset_accept,
    .read = opset_read,
    .write = opset_write,
    .close = opset_close,
    .set_opset = opset_set_opset,
    .get_opset_ctx = eventer_impl_get_opset_ctx,
    .set_opset_ctx = eventer_impl_set_opset_ctx,
    .name = "aco",
};

eventer_fd_opset_t eventer_aco_fd_opset = &aco_opset;

/* ---- jobs and gates ---- */

static void check_closure(const char *call, struct aco_co *ctx, const void *closure)
{
    const struct aco_share_stack *s = ctx->co->share_stack;
    const char *p = closure;
    if (p && p >= s->bottom && p < s->bottom + s->size)
        mtevFatal(mtev_error,
                  "%s: closure %p points into the co-routine's shared stack; a job thread would "
                  "touch it while other co-routines use that stack. Pass heap memory\n",
                  call, closure);
}

static void gate_unreference(struct _event_aco_gate *gate)
{
    if (__atomic_sub_fetch(&gate->references, 1, __ATOMIC_ACQ_REL) == 0)
        free(gate);
}

/* The loop's side is done with the gate: unlinked, and freed unless holds are outstanding. */
static void gate_free(struct _event_aco_gate *gate)
{
    struct aco_thread *ts = gate->home;
    if (gate->prev)
        gate->prev->next = gate->next;
    else
        ts->gates = gate->next;
    if (gate->next)
        gate->next->prev = gate->prev;
    gate_unreference(gate);
}

static void gate_job_done(struct _event_aco_gate *gate)
{
    if (--gate->count != 0)
        return;
    if (gate->orphan) {
        gate_free(gate);
    } else if (gate->waiting) {
        struct aco_co *owner = gate->owner;
        gate->waiting = 0;
        owner->woke |= WOKE_JOB;
        resume(owner);
    }
}

static void orphan_gates(struct aco_co *ctx)
{
    struct _event_aco_gate *gate = ctx->home->gates;
    while (gate && ctx->gate_count) {
        struct _event_aco_gate *next = gate->next;
        if (gate->owner == ctx && !gate->orphan) {
            /* A co torn down inside eventer_aco_gate_wait() has dropped its own count
             * already and did nothing wrong. */
            ctx->gate_count--;
            if (!gate->waited) {
                mtevL(ERROR_STREAM,
                      "eventer_aco: co %p ended without eventer_aco_gate_wait() on gate %p (%u "
                      "job(s) outstanding)\n",
                      (void *)ctx->co, (void *)gate, gate->count - 1);
                gate->count--;
            }
            gate->owner = NULL;
            gate->orphan = 1;
            gate->waiting = 0;
            if (gate->count == 0)
                gate_free(gate);
        }
        gate = next;
    }
}

eventer_aco_gate_t eventer_aco_gate(void)
{
    struct aco_co *ctx = require_co("eventer_aco_gate");
    struct _event_aco_gate *gate = calloc(1, sizeof(*gate));
    if (!gate)
        mtevFatal(mtev_error, "eventer_aco_gate: out of memory\n");
    gate->count = 1;
    gate->references = 1;
    gate->owner = ctx;
    gate->home = ctx->home;
    gate->loop = ctx->home->loop;
    gate->next = ctx->home->gates;
    if (gate->next)
        gate->next->prev = gate;
    ctx->home->gates = gate;
    ctx->gate_count++;
    return gate;
}

void eventer_aco_gate_wait(eventer_aco_gate_t gate)
{
    struct aco_co *ctx = require_co("eventer_aco_gate_wait");
    if (!gate || gate->owner != ctx)
        mtevFatal(mtev_error, "eventer_aco_gate_wait: gate %p does not belong to this co-routine\n",
                  (void *)gate);
    gate->waited = 1;
    if (--gate->count > 0) {
        int saved = errno;
        gate->waiting = 1;
        ctx->woke = 0;
        do
            aco_yield();
        while (!(ctx->woke & WOKE_JOB));
        ctx->woke = 0;
        errno = saved;
    }
    ctx->gate_count--;
    gate_free(gate);
}

void eventer_aco_gate_hold(eventer_aco_gate_t gate)
{
    struct aco_co *ctx = require_co("eventer_aco_gate_hold");
    if (!gate || gate->owner != ctx)
        mtevFatal(mtev_error, "eventer_aco_gate_hold: gate %p does not belong to this co-routine\n",
                  (void *)gate);
    gate->count++;
    __atomic_add_fetch(&gate->references, 1, __ATOMIC_RELAXED);
}

/* The releases other threads made since the last call (one call pending at a time). */
static void release_on_loop(void *argument)
{
    struct _event_aco_gate *gate = argument;
    uint32_t releases = __atomic_exchange_n(&gate->remote_releases, 0, __ATOMIC_ACQ_REL);
    /* The count holds one per release: the gate outlives every call but maybe the last. */
    while (releases-- > 0)
        gate_job_done(gate);
}

void eventer_aco_gate_release(eventer_aco_gate_t gate)
{
    if (!gate)
        mtevFatal(mtev_error, "eventer_aco_gate_release: NULL gate\n");
    /* The count belongs to the gate's loop thread: another thread hands the release over,
     * unless the loop stopped (and abandoned the gate: nothing waits for the count then). */
    if (eventer_impl_current_loop() == gate->loop)
        gate_job_done(gate);
    else if (__atomic_fetch_add(&gate->remote_releases, 1, __ATOMIC_ACQ_REL) == 0)
        eventer_impl_run_on_loop_or_spill(gate->loop->index, release_on_loop, gate,
                                          &gate->release_spill, "eventer_aco_gate_release");
    gate_unreference(gate);
}

static int job_callback(eventer_t e, int mask, void *closure, struct timeval *now)
{
    struct aco_job *job = closure;
    int phase = mask & EVENTER_ASYNCH_COMPLETE_D;
    if (phase != EVENTER_ASYNCH_COMPLETE_D) {
        if (job->type == JOB_SIMPLE) {
            if (phase == EVENTER_ASYNCH_WORK_D)
                job->simple(job->closure);
        } else if (job->type == JOB_PHASES) {
            job->phases((eventer_asynch_op_t)phase, job->closure);
        } else {
            job->wrapped->callback(job->wrapped, phase, job->wrapped->closure, now);
        }
        return 0;
    }
    if (job->type == JOB_PHASES)
        job->phases(EVENTER_ASYNCH_COMPLETE, job->closure);
    else if (job->type == JOB_RUN)
        job->wrapped->callback(job->wrapped, e->mask, job->wrapped->closure, now);
    if (job->gate) {
        gate_job_done(job->gate);
    } else if (job->waiter && job->waiter->wait_job == job) {
        struct aco_co *waiter = job->waiter;
        waiter->wait_job = NULL;
        waiter->woke |= WOKE_JOB;
        resume(waiter);
    }
    return 0; /* the eventer frees the event, and with it the job record */
}

/*
 * Queues one job for the calling co (waiting for it unless gated). Returns false only when
 * `try` and the queue refused it.
 */
static mtev_boolean submit_job(const char *call, struct aco_job *job, eventer_jobq_t *queue,
                               uint64_t id, const struct timeval *deadline, int extra_mask, int try)
{
    struct aco_co *ctx = running();
    struct _event_aco_gate *gate = job->gate;
    if (gate) {
        if (gate->home != this_thread || gate->orphan)
            mtevFatal(mtev_error, "%s: gate %p belongs to another loop thread or was released\n",
                      call, (void *)gate);
    } else if (!ctx) {
        free(job);
        require_co(call);
    }
    struct timeval whence = deadline ? *deadline : (struct timeval){0, 0};
    eventer_t e = eventer_alloc_asynch_timeout(job_callback, job, &whence);
    if (!e)
        mtevFatal(mtev_error, "%s: out of memory\n", call);
    e->mask |= extra_mask;
    e->aco_context = job;
    if (gate)
        gate->count++;
    else
        job->waiter = ctx;
    if (try) {
        if (!eventer_try_add_asynch_subqueue(queue, e, id)) {
            if (gate)
                gate->count--;
            eventer_deref(e);
            return mtev_false;
        }
    } else {
        eventer_add_asynch_subqueue(queue, e, id);
    }
    if (gate)
        return mtev_true;
    int saved = errno;
    ctx->wait_job = job;
    ctx->woke = 0;
    do
        aco_yield();
    while (!(ctx->woke & WOKE_JOB));
    ctx->woke = 0;
    errno = saved;
    return mtev_true;
}

static struct aco_job *job_new(const char *call, int type, void *closure,
                               struct _event_aco_gate *gate)
{
    struct aco_co *ctx = running();
    if (ctx)
        check_closure(call, ctx, closure);
    struct aco_job *job = calloc(1, sizeof(*job));
    if (!job)
        mtevFatal(mtev_error, "%s: out of memory\n", call);
    job->kind = CONTEXT_JOB;
    job->type = type;
    job->closure = closure;
    job->gate = gate;
    return job;
}

static mtev_boolean simple_job(const char *call, struct _event_aco_gate *gate,
                               eventer_asynch_simple_func_t func, void *closure,
                               eventer_jobq_t *queue, uint64_t id, int try)
{
    if (!func)
        mtevFatal(mtev_error, "%s: NULL function\n", call);
    struct aco_job *job = job_new(call, JOB_SIMPLE, closure, gate);
    job->simple = func;
    return submit_job(call, job, queue, id, NULL, 0, try);
}

void eventer_aco_simple_asynch_queue_subqueue(eventer_asynch_simple_func_t func, void *closure,
                                              eventer_jobq_t *queue, uint64_t id)
{
    simple_job("eventer_aco_simple_asynch", NULL, func, closure, queue, id, 0);
}

mtev_boolean eventer_aco_try_simple_asynch_queue_subqueue(eventer_asynch_simple_func_t func,
                                                          void *closure, eventer_jobq_t *queue,
                                                          uint64_t id)
{
    return simple_job("eventer_aco_try_simple_asynch", NULL, func, closure, queue, id, 1);
}

void eventer_aco_simple_asynch_queue_subqueue_gated(eventer_aco_gate_t gate,
                                                    eventer_asynch_simple_func_t func,
                                                    void *closure, eventer_jobq_t *queue,
                                                    uint64_t id)
{
    if (!gate)
        mtevFatal(mtev_error, "eventer_aco_simple_asynch_gated: NULL gate\n");
    simple_job("eventer_aco_simple_asynch_gated", gate, func, closure, queue, id, 0);
}

static mtev_boolean phases_job(const char *call, struct _event_aco_gate *gate,
                               eventer_asynch_func_t func, void *closure, eventer_jobq_t *queue,
                               uint64_t id, struct timeval *deadline, int try)
{
    if (!func)
        mtevFatal(mtev_error, "%s: NULL function\n", call);
    struct aco_job *job = job_new(call, JOB_PHASES, closure, gate);
    job->phases = func;
    return submit_job(call, job, queue, id, deadline, 0, try);
}

void eventer_aco_asynch_queue_subqueue_deadline(eventer_asynch_func_t func, void *closure,
                                                eventer_jobq_t *queue, uint64_t id,
                                                struct timeval *deadline)
{
    phases_job("eventer_aco_asynch", NULL, func, closure, queue, id, deadline, 0);
}

void eventer_aco_asynch_queue_subqueue_deadline_gated(eventer_aco_gate_t gate,
                                                      eventer_asynch_func_t func, void *closure,
                                                      eventer_jobq_t *queue, uint64_t id,
                                                      struct timeval *deadline)
{
    if (!gate)
        mtevFatal(mtev_error, "eventer_aco_asynch_gated: NULL gate\n");
    phases_job("eventer_aco_asynch_gated", gate, func, closure, queue, id, deadline, 0);
}

mtev_boolean eventer_aco_try_asynch_queue_subqueue_deadline(eventer_asynch_func_t func,
                                                            void *closure, eventer_jobq_t *queue,
                                                            uint64_t id, struct timeval *deadline)
{
    return phases_job("eventer_aco_try_asynch", NULL, func, closure, queue, id, deadline, 1);
}

static mtev_boolean run_job(const char *call, struct _event_aco_gate *gate, eventer_jobq_t *queue,
                            eventer_t e, uint64_t id, int try)
{
    if (!e || (e->mask & EVENTER_ASYNCH) != EVENTER_ASYNCH)
        mtevFatal(mtev_error, "%s: event %p is not an asynchronous event (eventer_alloc_asynch)\n",
                  call, (void *)e);
    struct aco_job *job = job_new(call, JOB_RUN, e->closure, gate);
    job->wrapped = e;
    int has_deadline = e->whence.tv_sec > 0 || e->whence.tv_usec > 0;
    return submit_job(call, job, queue, id, has_deadline ? &e->whence : NULL,
                      e->mask & (EVENTER_CANCEL | EVENTER_EVIL_BRUTAL), try);
}

void eventer_aco_run_asynch_queue_subqueue(eventer_jobq_t *queue, eventer_t e, uint64_t id)
{
    run_job("eventer_aco_run_asynch", NULL, queue, e, id, 0);
}

void eventer_aco_run_asynch_queue_subqueue_gated(eventer_aco_gate_t gate, eventer_jobq_t *queue,
                                                 eventer_t e, uint64_t id)
{
    if (!gate)
        mtevFatal(mtev_error, "eventer_aco_run_asynch_gated: NULL gate\n");
    run_job("eventer_aco_run_asynch_gated", gate, queue, e, id, 0);
}

mtev_boolean eventer_aco_try_run_asynch_queue_subqueue(eventer_jobq_t *queue, eventer_t e,
                                                       uint64_t id)
{
    return run_job("eventer_aco_try_run_asynch", NULL, queue, e, id, 1);
}

mtev_boolean eventer_aco_try_run_asynch_queue_subqueue_gated(eventer_aco_gate_t gate,
                                                             eventer_jobq_t *queue, eventer_t e,
                                                             uint64_t id)
{
    if (!gate)
        mtevFatal(mtev_error, "eventer_aco_try_run_asynch_gated: NULL gate\n");
    return run_job("eventer_aco_try_run_asynch_gated", gate, queue, e, id, 1);
}

/* ---- teardown ---- */

void eventer_impl_aco_loop_exit(struct eventer_loop *loop)
{
    (void)loop;
    struct aco_thread *ts = this_thread;
    if (!ts)
        return;
    while (ts->live)
        co_destroy(ts->live, 0);
    while (ts->gates) {
        struct _event_aco_gate *gate = ts->gates;
        /* Releases still to come see this and leave the loop alone; the last frees it. */
        __atomic_fetch_or(&gate->remote_releases, GATE_ABANDONED, __ATOMIC_ACQ_REL);
        gate_free(gate);
    }
    for (int i = 0; i < ts->stack_count; i++)
        if (ts->stacks[i].created_here)
            aco_share_stack_destroy(ts->stacks[i].stack);
    aco_thread_cleanup();
    __atomic_add_fetch(&stat_resumes, ts->unflushed_resumes, __ATOMIC_RELAXED);
    this_thread = NULL;
    free(ts);
}

void eventer_impl_aco_cleanup(void)
{
    pthread_mutex_lock(&start_lock);
    struct pending_start *p = pending_starts;
    pending_starts = NULL;
    pthread_mutex_unlock(&start_lock);
    while (p) {
        struct pending_start *next = p->next;
        free(p);
        p = next;
    }
}

/* ---- for layers inside the library ---- */

int eventer_impl_aco_wait_readable(eventer_aco_t ae)
{
    eventer_t e = (eventer_t)ae;
    struct aco_event *st = aco_event_of("eventer_impl_aco_wait_readable", e);
    struct aco_co *ctx = running();
    if (mtev_unlikely(!ctx || st->bound != ctx || eventer_impl_current_loop() != e->owner_loop))
        mtevFatal(mtev_error,
                  "eventer_impl_aco_wait_readable: aco event %p (fd %d) is not bound to the "
                  "running co-routine\n",
                  (void *)e, e->fd);
    return wait_fd(ctx, e, st, EVENTER_READ | EVENTER_EXCEPTION);
}
