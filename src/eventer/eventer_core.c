/*
 * The eventer's core: event allocation and accessors, the loop threads and their iteration,
 * fd registration and dispatch, cross-thread commands, start-up, shutdown and teardown,
 * settings, and the hooks other layers use (see eventer_internal.h).
 *
 * One iteration of a loop thread: take the time, fire due timers, run the commands other
 * threads queued, run recurrent events, call the pre-wait hooks, wait in the poller (woken
 * early through an eventfd), call the post-wait hooks, take the time, dispatch ready
 * descriptors. The first three steps (and their reading of the clock) are skipped when there
 * is nothing for them: no timer held, no recurrent event, no wake-up since the last drain. So
 * an iteration that only serves descriptors costs one clock read, one poller wait and the
 * callbacks, and takes no lock.
 */
#include "eventer/eventer_internal.h"

#include <mtev_conf.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

int eventer_impl_loop_count;
struct eventer_loop *eventer_impl_loops;
mtev_log_stream_t eventer_impl_error;
mtev_log_stream_t eventer_impl_debug;

static eventer_t *fd_table; /* entries accessed atomically */
static int fd_table_size;
static int running;  /* atomic */
static int stopping; /* atomic */
static int shutdown_fd = -1;
static struct timeval epoch;
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;

/* Settings (eventer_propset). */
static int configured_concurrency;
static uint64_t rlimit_target = 1048576;
static uint64_t max_sleep_us = 1000000;


/* initial-exec: libarkenstone.so is linked at start-up, and these are read on every
 * dispatch; the default model for a shared library calls __tls_get_addr for each read. */
__thread struct eventer_loop *eventer_impl_this_loop __attribute__((tls_model("initial-exec")));
static __thread eventer_t this_event __attribute__((tls_model("initial-exec")));

int eventer_impl_faults[EVENTER_FAULT_SITES];

static void ensure_log_streams(void)
{
    if (!__atomic_load_n(&eventer_impl_error, __ATOMIC_ACQUIRE)) {
        __atomic_store_n(&eventer_impl_debug, mtev_log_stream_find("debug/eventer"),
                         __ATOMIC_RELEASE);
        __atomic_store_n(&eventer_impl_error, mtev_log_stream_find("error/eventer"),
                         __ATOMIC_RELEASE);
    }
}

int eventer_impl_running(void)
{
    return __atomic_load_n(&running, __ATOMIC_ACQUIRE);
}

int eventer_impl_stopping(void)
{
    return __atomic_load_n(&stopping, __ATOMIC_ACQUIRE);
}

uint64_t eventer_impl_now_us(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
}

static void update_now(struct eventer_loop *loop)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    /* From the parts, not from now_us: a 64-bit division and remainder per read is a tenth of
     * what a loop iteration that serves one descriptor does in user space. */
    suseconds_t microseconds = (suseconds_t)(now.tv_nsec / 1000);
    loop->now.tv_sec = now.tv_sec;
    loop->now.tv_usec = microseconds;
    loop->now_us = (uint64_t)now.tv_sec * 1000000u + (uint64_t)microseconds;
}

static struct eventer_loop *loop_for_thread(pthread_t thread)
{
    for (int i = 0; i < eventer_impl_loop_count; i++)
        if (pthread_equal(eventer_impl_loops[i].thread, thread))
            return &eventer_impl_loops[i];
    return NULL;
}

struct eventer_loop *eventer_impl_loop_of_event(eventer_t e)
{
    if (e->owner_loop)
        return e->owner_loop;
    /* Allocated before eventer_init(), or owned by a thread that is not a loop. */
    struct eventer_loop *loop = eventer_impl_loops ? loop_for_thread(e->thr_owner) : NULL;
    return loop ? loop : eventer_impl_loops;
}

int eventer_impl_loop_index_of_event(eventer_t e)
{
    struct eventer_loop *loop = eventer_impl_loop_of_event(e);
    return loop ? loop->index : -1;
}

eventer_t eventer_impl_set_this_event(eventer_t e)
{
    eventer_t previous = this_event;
    this_event = e;
    return previous;
}

static struct eventer_loop *registered_loop_of(eventer_t e);

static void require_running(const char *call)
{
    if (!eventer_impl_running())
        mtevFatal(mtev_error, "%s: the eventer is not running (call eventer_init() first)\n", call);
}

/* ---- allocation ---- */

eventer_t eventer_alloc(void)
{
    eventer_t e = eventer_impl_event_get();
    if (!e) {
        ensure_log_streams();
        mtevL(eventer_impl_error, "eventer_alloc: out of memory\n");
        return NULL;
    }
    e->fd = -1;
    e->refcnt = 1;
    e->opset = eventer_POSIX_fd_opset;
    if (eventer_impl_this_loop) {
        e->owner_loop = eventer_impl_this_loop;
        e->thr_owner = eventer_impl_this_loop->thread;
    } else if (eventer_impl_running()) {
        e->owner_loop = &eventer_impl_loops[0];
        e->thr_owner = eventer_impl_loops[0].thread;
    } else {
        e->thr_owner = pthread_self();
    }
    return e;
}

eventer_t eventer_alloc_fd(eventer_func_t callback, void *closure, int fd, int mask)
{
    eventer_t e = eventer_alloc();
    if (e) {
        e->callback = callback;
        e->closure = closure;
        e->fd = fd;
        e->mask = mask;
    }
    return e;
}

eventer_t eventer_alloc_timer(eventer_func_t callback, void *closure, struct timeval *whence)
{
    eventer_t e = eventer_alloc();
    if (e) {
        e->callback = callback;
        e->closure = closure;
        e->mask = EVENTER_TIMER;
        if (whence)
            e->whence = *whence;
    }
    return e;
}

eventer_t eventer_alloc_recurrent(eventer_func_t callback, void *closure)
{
    eventer_t e = eventer_alloc();
    if (e) {
        e->callback = callback;
        e->closure = closure;
        e->mask = EVENTER_RECURRENT;
    }
    return e;
}

eventer_t eventer_alloc_asynch(eventer_func_t callback, void *closure)
{
    eventer_t e = eventer_alloc();
    if (e) {
        e->callback = callback;
        e->closure = closure;
        e->mask = EVENTER_ASYNCH;
    }
    return e;
}

eventer_t eventer_alloc_asynch_timeout(eventer_func_t callback, void *closure,
                                       struct timeval *deadline)
{
    eventer_t e = eventer_alloc_asynch(callback, closure);
    if (e && deadline)
        e->whence = *deadline;
    return e;
}

eventer_t eventer_alloc_copy(eventer_t source)
{
    eventer_t e = eventer_alloc();
    if (!e)
        return NULL;
    e->callback = source->callback;
    e->whence = source->whence;
    e->fd = source->fd;
    e->mask = source->mask;
    e->opset = source->opset;
    e->opset_ctx = source->opset_ctx;
    e->closure = source->closure;
    e->thr_owner = source->thr_owner;
    e->owner_loop = source->owner_loop;
    if (source->flags & EVENT_FLAG_ACO)
        eventer_impl_aco_copy(source, e);
    return e;
}

void eventer_ref(eventer_t e)
{
    __atomic_add_fetch(&e->refcnt, 1, __ATOMIC_RELAXED);
}

mtev_boolean eventer_deref(eventer_t e)
{
    if (!e)
        return mtev_false;
    uint32_t left = __atomic_sub_fetch(&e->refcnt, 1, __ATOMIC_ACQ_REL);
    if (left != 0) {
        if (mtev_unlikely(left == UINT32_MAX))
            mtevFatal(mtev_error, "eventer_free: event %p freed more often than referenced\n",
                      (void *)e);
        return mtev_false;
    }
    if (e->aco_context)
        eventer_impl_aco_release(e);
    if (e->job)
        free(e->job);
    eventer_impl_event_put(e);
    return mtev_true;
}

mtev_boolean eventer_free(eventer_t e)
{
    return eventer_deref(e);
}


/* ---- accessors ---- */

int eventer_get_fd(eventer_t e)
{
    return e->fd;
}

int eventer_get_mask(eventer_t e)
{
    return e->mask;
}

void eventer_set_mask(eventer_t e, int mask)
{
    e->mask = mask;
}

struct timeval eventer_get_whence(eventer_t e)
{
    return e->whence;
}

void eventer_update_whence(eventer_t e, struct timeval whence)
{
    /* A pending timer belongs to its loop: another thread sends the new time there. */
    if ((e->mask & EVENTER_TIMER) &&
        __atomic_load_n(&e->state, __ATOMIC_ACQUIRE) == EVENT_STATE_TIMER) {
        struct eventer_loop *loop = registered_loop_of(e);
        if (loop && eventer_impl_this_loop != loop) {
            eventer_ref(e);
            struct eventer_command command = {
                .kind = COMMAND_UPDATE, .event = e, .whence = whence, .has_whence = 1};
            if (eventer_impl_queue_command(loop, &command) < 0) {
                mtevL(eventer_impl_error,
                      "eventer_update_whence: out of memory queueing to %s; event %p keeps its "
                      "time\n",
                      loop->name, (void *)e);
                eventer_deref(e);
            }
            return;
        }
        e->whence = whence;
        if (e->heap_index)
            eventer_impl_timer_rekey(loop, e);
        return;
    }
    e->whence = whence;
}

pthread_t eventer_get_owner(eventer_t e)
{
    return e->thr_owner;
}

void eventer_set_owner(eventer_t e, pthread_t owner)
{
    if (e->flags & EVENT_FLAG_ACO)
        return; /* co-routines cannot migrate */
    e->thr_owner = owner;
    e->owner_loop = eventer_impl_loops ? loop_for_thread(owner) : NULL;
}

eventer_func_t eventer_get_callback(eventer_t e)
{
    return e->callback;
}

void eventer_set_callback(eventer_t e, eventer_func_t callback)
{
    e->callback = callback;
}

void *eventer_get_closure(eventer_t e)
{
    return e->closure;
}

void eventer_set_closure(eventer_t e, void *closure)
{
    e->closure = closure;
}

eventer_fd_opset_t eventer_get_fd_opset(eventer_t e)
{
    return e->opset;
}

eventer_fd_accept_t eventer_fd_opset_get_accept(eventer_fd_opset_t opset)
{
    return opset->accept;
}

eventer_fd_read_t eventer_fd_opset_get_read(eventer_fd_opset_t opset)
{
    return opset->read;
}

eventer_fd_write_t eventer_fd_opset_get_write(eventer_fd_opset_t opset)
{
    return opset->write;
}

eventer_fd_close_t eventer_fd_opset_get_close(eventer_fd_opset_t opset)
{
    return opset->close;
}

eventer_t eventer_get_this_event(void)
{
    return this_event;
}

mtev_boolean eventer_thread_check(eventer_t e)
{
    return pthread_equal(e->thr_owner, pthread_self()) ? mtev_true : mtev_false;
}

/* ---- commands and wakeups ---- */

void eventer_impl_wake(struct eventer_loop *loop)
{
    uint64_t one = 1;
    /* EAGAIN means the counter is saturated: the loop is woken anyway. */
    while (write(loop->wakeup_fd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
}

int eventer_impl_queue_command(struct eventer_loop *loop, const struct eventer_command *command)
{
    pthread_mutex_lock(&loop->command_lock);
    int injected = eventer_impl_fault(EVENTER_FAULT_COMMAND_QUEUE);
    if (injected || loop->command_count == loop->command_capacity) {
        uint32_t capacity = loop->command_capacity ? loop->command_capacity * 2 : 64;
        struct eventer_command *grown =
            injected ? NULL : realloc(loop->commands, capacity * sizeof(struct eventer_command));
        if (!grown) {
            pthread_mutex_unlock(&loop->command_lock);
            ensure_log_streams();
            return -1;
        }
        loop->commands = grown;
        loop->command_capacity = capacity;
    }
    loop->commands[loop->command_count++] = *command;
    /* Only the first command after a drain needs to wake the loop, and it must: loop_main()
     * drains only in an iteration that follows a wake-up. */
    int wake = loop->command_count == 1;
    pthread_mutex_unlock(&loop->command_lock);
    if (wake)
        eventer_impl_wake(loop);
    return 0;
}

void eventer_impl_spill_command(struct eventer_loop *loop, struct eventer_spilled_command *spilled)
{
    struct eventer_spilled_command **stack =
        spilled->kind == COMMAND_RUN ? &loop->spilled_runs : &loop->spilled;
    struct eventer_spilled_command *head = __atomic_load_n(stack, __ATOMIC_RELAXED);
    do {
        spilled->next = head;
    } while (
        !__atomic_compare_exchange_n(stack, &head, spilled, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
    eventer_impl_wake(loop);
}

/*
 * A cross-thread timer/recurrent add or remove whose command `loop`'s queue could not take,
 * with the guard reference the command would have held. The event itself goes on the loop's
 * reconcile stack instead (which holds the guard): the loop then makes its structures agree
 * with the event's state, which covers any number of adds and removes. `added_state` is the
 * state an add set (IDLE for a remove).
 */
static void registration_not_queued(struct eventer_loop *loop, eventer_t e, const char *call,
                                    uint32_t added_state)
{
    /* With the seq_cst pair in drain_spilled(): either that drain reads the state this thread
     * stored, or this thread finds the node free and pushes it again. (Read-modify-writes,
     * not fences, which ThreadSanitizer does not model.) */
    (void)__atomic_fetch_or(&e->state, 0, __ATOMIC_SEQ_CST);
    struct eventer_loop *pushed_on = NULL;
    if (__atomic_compare_exchange_n(&e->reconcile_loop, &pushed_on, loop, 0, __ATOMIC_SEQ_CST,
                                    __ATOMIC_SEQ_CST)) {
        eventer_t head = __atomic_load_n(&loop->reconcile, __ATOMIC_RELAXED);
        do {
            e->reconcile_next = head;
        } while (!__atomic_compare_exchange_n(&loop->reconcile, &head, e, 1, __ATOMIC_RELEASE,
                                              __ATOMIC_RELAXED));
        eventer_impl_wake(loop);
        mtevL(eventer_impl_error,
              "%s: out of memory queueing event %p to %s; passed on without allocating\n", call,
              (void *)e, loop->name);
        return;
    }
    if (pushed_on == loop) {
        /* The pending node reconciles this change too. */
        mtevL(eventer_impl_error,
              "%s: out of memory queueing event %p to %s; its pending reconcile covers it\n", call,
              (void *)e, loop->name);
        eventer_deref(e);
        return;
    }
    /* The node waits on another loop (the event changed owner): this change is lost. */
    if (added_state != EVENT_STATE_IDLE) {
        uint32_t expected = added_state;
        __atomic_compare_exchange_n(&e->state, &expected, EVENT_STATE_IDLE, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_RELAXED);
        mtevL(eventer_impl_error, "%s: out of memory queueing event %p to %s; it is not added\n",
              call, (void *)e, loop->name);
        eventer_deref(e);
    } else {
        /* The loop may still hold the event: keeping the guard keeps it allocated. */
        mtevL(eventer_impl_error,
              "%s: out of memory queueing the removal of event %p to %s; it stays allocated\n",
              call, (void *)e, loop->name);
    }
}

/*
 * Queues a trigger. Without memory the trigger is dropped; an event not registered for its
 * descriptor is then dropped too (its reference travelled with the trigger).
 */
static void queue_trigger(struct eventer_loop *loop, const struct eventer_command *command,
                          const char *call);

void eventer_wakeup(eventer_t e)
{
    struct eventer_loop *loop = NULL;
    if (e)
        loop = eventer_impl_loop_of_event(e);
    else
        loop = eventer_impl_this_loop ? eventer_impl_this_loop : eventer_impl_loops;
    if (loop && eventer_impl_running())
        eventer_impl_wake(loop);
}

int eventer_impl_run_on_loop(int loop_index, void (*function)(void *argument), void *argument)
{
    if (!eventer_impl_running() || loop_index < 0 || loop_index >= eventer_impl_loop_count ||
        !function)
        return -1;
    struct eventer_command command = {
        .kind = COMMAND_RUN, .function = function, .argument = argument};
    if (eventer_impl_queue_command(&eventer_impl_loops[loop_index], &command) < 0) {
        mtevL(eventer_impl_error, "eventer_impl_run_on_loop: out of memory queueing to %s\n",
              eventer_impl_loops[loop_index].name);
        return -1;
    }
    return 0;
}

int eventer_impl_run_on_loop_or_spill(int loop_index, void (*function)(void *argument),
                                      void *argument, struct eventer_spilled_command *node,
                                      const char *call)
{
    if (!eventer_impl_running() || loop_index < 0 || loop_index >= eventer_impl_loop_count ||
        !function || !node)
        return -1;
    struct eventer_loop *loop = &eventer_impl_loops[loop_index];
    struct eventer_command command = {
        .kind = COMMAND_RUN, .function = function, .argument = argument};
    if (mtev_likely(eventer_impl_queue_command(loop, &command) == 0))
        return 0;
    node->kind = COMMAND_RUN;
    node->function = function;
    node->argument = argument;
    eventer_impl_spill_command(loop, node);
    mtevL(eventer_impl_error, "%s: out of memory queueing to %s; passed on without allocating\n",
          call, loop->name);
    return 0;
}

/*
 * Drops, unrun and unread, the functions spilled to `loop` (it is stopping, or stopped): a
 * node pushed after its loop stopped may already be freed (an abandoned gate's release).
 */
static void drop_spilled_runs(struct eventer_loop *loop)
{
    (void)__atomic_exchange_n(&loop->spilled_runs, NULL, __ATOMIC_ACQUIRE);
}

/* ---- wait hooks ---- */

#define WAIT_HOOK_SLOTS 16

struct wait_hook {
    int active; /* atomic */
    int loop_index;
    eventer_pre_wait_hook_t before;
    eventer_post_wait_hook_t after;
    void *closure;
};

static struct wait_hook wait_hooks[WAIT_HOOK_SLOTS];
static int wait_hook_high_water; /* atomic */
static pthread_mutex_t wait_hook_lock = PTHREAD_MUTEX_INITIALIZER;

int eventer_impl_register_wait_hooks(int loop_index, eventer_pre_wait_hook_t before,
                                     eventer_post_wait_hook_t after, void *closure)
{
    pthread_mutex_lock(&wait_hook_lock);
    int handle = -1;
    for (int i = 0; i < WAIT_HOOK_SLOTS; i++) {
        if (!__atomic_load_n(&wait_hooks[i].active, __ATOMIC_RELAXED)) {
            handle = i;
            break;
        }
    }
    if (handle >= 0) {
        struct wait_hook *hook = &wait_hooks[handle];
        __atomic_store_n(&hook->loop_index, loop_index, __ATOMIC_RELAXED);
        __atomic_store_n(&hook->before, before, __ATOMIC_RELAXED);
        __atomic_store_n(&hook->after, after, __ATOMIC_RELAXED);
        __atomic_store_n(&hook->closure, closure, __ATOMIC_RELAXED);
        __atomic_store_n(&hook->active, 1, __ATOMIC_RELEASE);
        if (handle + 1 > __atomic_load_n(&wait_hook_high_water, __ATOMIC_RELAXED))
            __atomic_store_n(&wait_hook_high_water, handle + 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&wait_hook_lock);
    return handle;
}

void eventer_impl_unregister_wait_hooks(int handle)
{
    if (handle < 0 || handle >= WAIT_HOOK_SLOTS)
        return;
    pthread_mutex_lock(&wait_hook_lock);
    __atomic_store_n(&wait_hooks[handle].active, 0, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&wait_hook_lock);
}

static void run_pre_wait_hooks(struct eventer_loop *loop, uint64_t *timeout_us)
{
    int count = __atomic_load_n(&wait_hook_high_water, __ATOMIC_ACQUIRE);
    for (int i = 0; i < count; i++) {
        struct wait_hook *hook = &wait_hooks[i];
        if (!__atomic_load_n(&hook->active, __ATOMIC_ACQUIRE))
            continue;
        int index = __atomic_load_n(&hook->loop_index, __ATOMIC_RELAXED);
        eventer_pre_wait_hook_t before = __atomic_load_n(&hook->before, __ATOMIC_RELAXED);
        if (!before || (index >= 0 && index != loop->index))
            continue;
        uint64_t proposed = *timeout_us;
        before(__atomic_load_n(&hook->closure, __ATOMIC_RELAXED), loop->index, &proposed);
        if (proposed < *timeout_us)
            *timeout_us = proposed;
    }
}

static void run_post_wait_hooks(struct eventer_loop *loop, int ready)
{
    int count = __atomic_load_n(&wait_hook_high_water, __ATOMIC_ACQUIRE);
    for (int i = 0; i < count; i++) {
        struct wait_hook *hook = &wait_hooks[i];
        if (!__atomic_load_n(&hook->active, __ATOMIC_ACQUIRE))
            continue;
        int index = __atomic_load_n(&hook->loop_index, __ATOMIC_RELAXED);
        eventer_post_wait_hook_t after = __atomic_load_n(&hook->after, __ATOMIC_RELAXED);
        if (after && (index < 0 || index == loop->index))
            after(__atomic_load_n(&hook->closure, __ATOMIC_RELAXED), loop->index, ready);
    }
}

/* ---- loop exit hooks ---- */

#define EXIT_HOOK_SLOTS 4

struct exit_hook {
    eventer_loop_exit_hook_t hook; /* atomic; NULL: free slot */
    void *closure;                 /* atomic */
};

static struct exit_hook exit_hooks[EXIT_HOOK_SLOTS];

int eventer_impl_register_loop_exit_hook(eventer_loop_exit_hook_t hook, void *closure)
{
    if (!hook)
        return -1;
    pthread_mutex_lock(&wait_hook_lock);
    int handle = -1;
    for (int i = 0; i < EXIT_HOOK_SLOTS && handle < 0; i++) {
        if (!__atomic_load_n(&exit_hooks[i].hook, __ATOMIC_RELAXED)) {
            handle = i;
            __atomic_store_n(&exit_hooks[i].closure, closure, __ATOMIC_RELAXED);
            __atomic_store_n(&exit_hooks[i].hook, hook, __ATOMIC_RELEASE);
        }
    }
    pthread_mutex_unlock(&wait_hook_lock);
    return handle;
}

void eventer_impl_unregister_loop_exit_hook(int handle)
{
    if (handle < 0 || handle >= EXIT_HOOK_SLOTS)
        return;
    pthread_mutex_lock(&wait_hook_lock);
    __atomic_store_n(&exit_hooks[handle].hook, NULL, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&wait_hook_lock);
}

static void run_exit_hooks(struct eventer_loop *loop)
{
    for (int i = 0; i < EXIT_HOOK_SLOTS; i++) {
        eventer_loop_exit_hook_t hook = __atomic_load_n(&exit_hooks[i].hook, __ATOMIC_ACQUIRE);
        if (hook)
            hook(__atomic_load_n(&exit_hooks[i].closure, __ATOMIC_RELAXED), loop->index);
    }
}

/* ---- fd events ---- */

static eventer_t fd_table_load(int fd)
{
    return __atomic_load_n(&fd_table[fd], __ATOMIC_ACQUIRE);
}

static struct eventer_loop *registered_loop_of(eventer_t e)
{
    return __atomic_load_n(&e->registered_loop, __ATOMIC_ACQUIRE);
}

/* Reports a failed registration: once as an EXCEPTION to the callback, then by dropping. */
static void registration_failed(eventer_t e, struct eventer_loop *loop, const char *call, int error)
{
    ensure_log_streams();
    uint32_t previous = __atomic_fetch_or(&e->flags, EVENT_FLAG_REGISTER_FAILED, __ATOMIC_RELAXED);
    if (previous & EVENT_FLAG_REGISTER_FAILED) {
        mtevL(eventer_impl_error, "%s: cannot watch fd %d again (%s); dropping the event\n", call,
              e->fd, strerror(error));
        eventer_deref(e);
        return;
    }
    mtevL(eventer_impl_error, "%s: cannot watch fd %d (%s); reporting EXCEPTION\n", call, e->fd,
          strerror(error));
    struct eventer_command command = {
        .kind = COMMAND_TRIGGER, .event = e, .mask = EVENTER_EXCEPTION};
    queue_trigger(loop, &command, call);
}

/* Registers fd event `e` (mask already set) with `loop`'s poller. Any thread. */
static void register_fd(eventer_t e, struct eventer_loop *loop, const char *call)
{
    int fd = e->fd;
    if (fd < 0 || fd >= fd_table_size) {
        registration_failed(e, loop, call, fd < 0 ? EBADF : EMFILE);
        return;
    }
    __atomic_store_n(&e->registered_loop, loop, __ATOMIC_RELAXED);
    eventer_t previous = __atomic_exchange_n(&fd_table[fd], e, __ATOMIC_ACQ_REL);
    if (previous && previous != e) {
        /* The descriptor was closed behind the eventer's back and reused. */
        mtevL(eventer_impl_debug, "%s: fd %d replaces a stale event\n", call, fd);
        struct eventer_loop *old_loop = registered_loop_of(previous);
        if (old_loop && old_loop != loop)
            eventer_poller_remove(&old_loop->poller, fd);
        eventer_deref(previous);
    }
    if (eventer_poller_add(&loop->poller, fd, e->mask) < 0) {
        int error = errno;
        eventer_t expected = e;
        __atomic_compare_exchange_n(&fd_table[fd], &expected, NULL, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_RELAXED);
        registration_failed(e, loop, call, error);
    }
}

eventer_t eventer_remove_fd(int fd)
{
    if (fd < 0 || fd >= fd_table_size || !fd_table)
        return NULL;
    eventer_t e = fd_table_load(fd);
    if (!e)
        return NULL;
    if (!__atomic_compare_exchange_n(&fd_table[fd], &e, NULL, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_RELAXED))
        return NULL;
    struct eventer_loop *loop = registered_loop_of(e);
    /* The descriptor may already be closed (then the kernel dropped it already). */
    if (loop)
        eventer_poller_remove(&loop->poller, fd);
    return e;
}

eventer_t eventer_find_fd(int fd)
{
    if (fd < 0 || fd >= fd_table_size || !fd_table)
        return NULL;
    return fd_table_load(fd);
}

void eventer_foreach_fdevent(void (*visit)(eventer_t e, void *closure), void *closure)
{
    for (int fd = 0; fd < fd_table_size; fd++) {
        eventer_t e = fd_table_load(fd);
        if (e)
            visit(e, closure);
    }
}

/* Applies the mask an fd callback returned. Runs on the loop that dispatched it. */
static void fold_fd_mask(struct eventer_loop *loop, eventer_t e, int new_mask)
{
    int fd = e->fd;
    int registered = fd >= 0 && fd < fd_table_size && fd_table_load(fd) == e;
    if (new_mask == 0) {
        if (registered)
            eventer_remove_fd(fd);
        eventer_deref(e);
        return;
    }
    if (fd < 0) {
        mtevL(eventer_impl_error, "eventer: callback of a closed event returned mask 0x%x\n",
              new_mask);
        eventer_deref(e);
        return;
    }
    struct eventer_loop *target = eventer_impl_loop_of_event(e);
    if (!registered) {
        e->mask = new_mask;
        register_fd(e, target, "eventer callback");
        return;
    }
    struct eventer_loop *where = registered_loop_of(e);
    if (where != target) {
        /* Moving to another loop thread: out of this poller, into the other one. The table
         * store publishes the new mask and loop to the target thread. */
        eventer_poller_remove(&where->poller, fd);
        e->mask = new_mask;
        __atomic_store_n(&e->registered_loop, target, __ATOMIC_RELAXED);
        __atomic_store_n(&fd_table[fd], e, __ATOMIC_RELEASE);
        if (eventer_poller_add(&target->poller, fd, new_mask) < 0) {
            int error = errno;
            eventer_t expected = e;
            __atomic_compare_exchange_n(&fd_table[fd], &expected, NULL, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED);
            registration_failed(e, target, "eventer move", error);
        }
        return;
    }
    if (new_mask != e->mask) {
        e->mask = new_mask;
        if (eventer_poller_modify(&where->poller, fd, new_mask) < 0) {
            int error = errno;
            eventer_remove_fd(fd);
            registration_failed(e, target, "eventer_update", error);
        }
    }
}

/* Inlined into the loop's dispatch: the call and its register saves were a sixth of the
 * eventer's own instructions per echoed message. */
static inline __attribute__((always_inline)) void dispatch_fd(struct eventer_loop *loop,
                                                              eventer_t e, int mask)
{
    eventer_t previous = this_event;
    this_event = e;
    int new_mask = e->callback(e, mask, e->closure, &loop->now);
    this_event = previous;
    /* The usual answer: the same interest, still registered here and owned by this loop.
     * Nothing to change; fold_fd_mask() would find the same after more loads. */
    if (new_mask != 0 && new_mask == e->mask && e->owner_loop == loop &&
        registered_loop_of(e) == loop && e->fd >= 0 && e->fd < fd_table_size &&
        fd_table_load(e->fd) == e)
        return;
    fold_fd_mask(loop, e, new_mask);
}

void eventer_impl_dispatch_fd(struct eventer_loop *loop, eventer_t e, int mask)
{
    dispatch_fd(loop, e, mask);
}

int eventer_impl_run_callback(eventer_t e, int mask, struct timeval *now)
{
    eventer_t previous = this_event;
    this_event = e;
    int result = e->callback(e, mask, e->closure, now);
    this_event = previous;
    return result;
}

/* ---- recurrent events (owner thread) ---- */

/* Without memory to grow the list, the event goes back to idle, unregistered. */
static void recurrent_insert(struct eventer_loop *loop, eventer_t e)
{
    if (e->heap_index != 0)
        return;
    int injected = eventer_impl_fault(EVENTER_FAULT_RECURRENT_LIST);
    if (injected || loop->recurrent_count == loop->recurrent_capacity) {
        uint32_t capacity = loop->recurrent_capacity ? loop->recurrent_capacity * 2 : 16;
        eventer_t *grown = injected ? NULL : realloc(loop->recurrent, capacity * sizeof(eventer_t));
        if (!grown) {
            uint32_t expected = EVENT_STATE_RECURRENT;
            __atomic_compare_exchange_n(&e->state, &expected, EVENT_STATE_IDLE, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED);
            ensure_log_streams();
            mtevL(eventer_impl_error,
                  "eventer_add_recurrent: out of memory growing the recurrent list of %s; event "
                  "%p is not added\n",
                  loop->name, (void *)e);
            return;
        }
        loop->recurrent = grown;
        loop->recurrent_capacity = capacity;
    }
    loop->recurrent[loop->recurrent_count++] = e;
    e->heap_index = loop->recurrent_count;
}

static void recurrent_delete(struct eventer_loop *loop, eventer_t e)
{
    if (e->heap_index == 0)
        return;
    loop->recurrent[e->heap_index - 1] = NULL;
    e->heap_index = 0;
    loop->recurrent_holes++;
}

static void recurrent_compact(struct eventer_loop *loop)
{
    uint32_t kept = 0;
    for (uint32_t i = 0; i < loop->recurrent_count; i++) {
        eventer_t e = loop->recurrent[i];
        if (!e)
            continue;
        loop->recurrent[kept++] = e;
        e->heap_index = kept;
    }
    loop->recurrent_count = kept;
    loop->recurrent_holes = 0;
}

static void run_recurrent(struct eventer_loop *loop)
{
    /* Callbacks may add (appending) or remove (leaving holes) while this runs. */
    uint32_t count = loop->recurrent_count;
    for (uint32_t i = 0; i < count; i++) {
        eventer_t e = loop->recurrent[i];
        if (e && __atomic_load_n(&e->state, __ATOMIC_ACQUIRE) == EVENT_STATE_RECURRENT)
            eventer_impl_run_callback(e, EVENTER_RECURRENT, &loop->now);
    }
    if (loop->recurrent_holes)
        recurrent_compact(loop);
}

static void release_recurrent(struct eventer_loop *loop)
{
    for (uint32_t i = 0; i < loop->recurrent_count; i++) {
        eventer_t e = loop->recurrent[i];
        if (!e)
            continue;
        e->heap_index = 0;
        uint32_t expected = EVENT_STATE_RECURRENT;
        if (__atomic_compare_exchange_n(&e->state, &expected, EVENT_STATE_IDLE, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED))
            eventer_deref(e);
    }
    free(loop->recurrent);
    loop->recurrent = NULL;
    loop->recurrent_count = loop->recurrent_capacity = 0;
}

/* ---- registration API ---- */

void eventer_add_timed(eventer_t e)
{
    require_running("eventer_add_timed");
    if (!(e->mask & EVENTER_TIMER))
        mtevFatal(mtev_error, "eventer_add_timed: event %p has no EVENTER_TIMER in its mask\n",
                  (void *)e);
    struct eventer_loop *loop = eventer_impl_loop_of_event(e);
    __atomic_store_n(&e->registered_loop, loop, __ATOMIC_RELAXED);
    __atomic_store_n(&e->state, EVENT_STATE_TIMER, __ATOMIC_RELEASE);
    if (eventer_impl_this_loop == loop) {
        eventer_impl_timer_insert(loop, e);
        return;
    }
    eventer_ref(e); /* guard: the command's reference */
    struct eventer_command command = {.kind = COMMAND_ADD, .event = e};
    if (eventer_impl_queue_command(loop, &command) < 0)
        registration_not_queued(loop, e, "eventer_add_timed", EVENT_STATE_TIMER);
}

eventer_t eventer_remove_timed(eventer_t e)
{
    uint32_t expected = EVENT_STATE_TIMER;
    if (!__atomic_compare_exchange_n(&e->state, &expected, EVENT_STATE_IDLE, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_RELAXED))
        return NULL;
    struct eventer_loop *loop = registered_loop_of(e);
    if (eventer_impl_this_loop == loop) {
        eventer_impl_timer_delete(loop, e);
    } else if (loop) {
        eventer_ref(e);
        struct eventer_command command = {.kind = COMMAND_REMOVE, .event = e};
        if (eventer_impl_queue_command(loop, &command) < 0)
            registration_not_queued(loop, e, "eventer_remove_timed", EVENT_STATE_IDLE);
    }
    return e;
}

void eventer_add_recurrent(eventer_t e)
{
    require_running("eventer_add_recurrent");
    struct eventer_loop *loop = eventer_impl_loop_of_event(e);
    uint32_t expected = EVENT_STATE_IDLE;
    if (!__atomic_compare_exchange_n(&e->state, &expected, EVENT_STATE_RECURRENT, 0,
                                     __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
        /* Already registered: libmtev ignores the duplicate and so do we, but the caller
         * handed us a reference we already hold. */
        return;
    }
    __atomic_store_n(&e->registered_loop, loop, __ATOMIC_RELEASE);
    if (eventer_impl_this_loop == loop) {
        recurrent_insert(loop, e);
        return;
    }
    eventer_ref(e);
    struct eventer_command command = {.kind = COMMAND_ADD, .event = e};
    if (eventer_impl_queue_command(loop, &command) < 0)
        registration_not_queued(loop, e, "eventer_add_recurrent", EVENT_STATE_RECURRENT);
}

eventer_t eventer_remove_recurrent(eventer_t e)
{
    uint32_t expected = EVENT_STATE_RECURRENT;
    if (!__atomic_compare_exchange_n(&e->state, &expected, EVENT_STATE_IDLE, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_RELAXED))
        return NULL;
    struct eventer_loop *loop = registered_loop_of(e);
    if (eventer_impl_this_loop == loop) {
        recurrent_delete(loop, e);
    } else if (loop) {
        eventer_ref(e);
        struct eventer_command command = {.kind = COMMAND_REMOVE, .event = e};
        if (eventer_impl_queue_command(loop, &command) < 0)
            registration_not_queued(loop, e, "eventer_remove_recurrent", EVENT_STATE_IDLE);
    }
    return e;
}

void eventer_add(eventer_t e)
{
    if (!e)
        mtevFatal(mtev_error, "eventer_add: NULL event\n");
    require_running("eventer_add");
    int mask = e->mask;
    if (mask == 0)
        mtevFatal(mtev_error, "eventer_add: event %p has no mask (nothing to wait for)\n",
                  (void *)e);
    if (mask & EVENTER_ASYNCH) {
        eventer_add_asynch(NULL, e);
    } else if (mask & EVENTER_RECURRENT) {
        eventer_add_recurrent(e);
    } else if (mask & EVENTER_TIMER) {
        eventer_add_timed(e);
    } else {
        if (e->fd < 0)
            mtevFatal(mtev_error, "eventer_add: fd event %p has no descriptor (fd %d)\n", (void *)e,
                      e->fd);
        register_fd(e, eventer_impl_loop_of_event(e), "eventer_add");
    }
}

eventer_t eventer_remove(eventer_t e)
{
    if (!e)
        return NULL;
    if (e->mask & EVENTER_ASYNCH)
        mtevFatal(mtev_error, "eventer_remove: event %p is asynchronous; jobs cannot be removed\n",
                  (void *)e);
    if (e->mask & EVENTER_RECURRENT)
        return eventer_remove_recurrent(e);
    if (e->mask & EVENTER_TIMER)
        return eventer_remove_timed(e);
    if (e->fd >= 0 && e->fd < fd_table_size && fd_table_load(e->fd) == e)
        return eventer_remove_fd(e->fd);
    return NULL;
}

void eventer_update(eventer_t e, int mask)
{
    require_running("eventer_update");
    struct eventer_loop *loop = (e->mask & (EVENTER_TIMER | EVENTER_RECURRENT))
                                    ? registered_loop_of(e)
                                    : eventer_impl_loop_of_event(e);
    if (!loop)
        return;
    if (eventer_impl_this_loop == loop) {
        if (e->mask & EVENTER_TIMER) {
            if (e->heap_index)
                eventer_impl_timer_rekey(loop, e);
        } else if (!(e->mask & (EVENTER_RECURRENT | EVENTER_ASYNCH))) {
            if (e->fd >= 0 && e->fd < fd_table_size && fd_table_load(e->fd) == e &&
                mask != e->mask && mask != 0)
                fold_fd_mask(loop, e, mask);
            else if (mask != 0)
                e->mask = mask;
        }
        return;
    }
    eventer_ref(e);
    struct eventer_command command = {.kind = COMMAND_UPDATE, .event = e, .mask = mask};
    if (eventer_impl_queue_command(loop, &command) < 0) {
        mtevL(eventer_impl_error,
              "eventer_update: out of memory queueing to %s; update of event %p to mask 0x%x "
              "dropped\n",
              loop->name, (void *)e, mask);
        eventer_deref(e);
    }
}

void eventer_trigger(eventer_t e, int mask)
{
    require_running("eventer_trigger");
    struct eventer_loop *loop = eventer_impl_loop_of_event(e);
    if (eventer_impl_this_loop == loop && this_event != e) {
        eventer_impl_dispatch_fd(loop, e, mask);
        return;
    }
    struct eventer_command command = {
        .kind = COMMAND_TRIGGER, .event = e, .mask = mask | EVENTER_CROSS_THREAD_TRIGGER};
    queue_trigger(loop, &command, "eventer_trigger");
}

static void queue_trigger(struct eventer_loop *loop, const struct eventer_command *command,
                          const char *call)
{
    if (eventer_impl_queue_command(loop, command) == 0)
        return;
    eventer_t e = command->event;
    int registered = e->fd >= 0 && e->fd < fd_table_size && fd_table_load(e->fd) == e;
    mtevL(eventer_impl_error,
          "%s: out of memory queueing to %s; trigger of event %p (fd %d) dropped%s\n", call,
          loop->name, (void *)e, e->fd, registered ? "" : " with the event");
    if (!registered)
        eventer_deref(e);
}

/* ---- the loop ---- */

static void apply_command(struct eventer_loop *loop, struct eventer_command *command,
                          int tearing_down)
{
    eventer_t e = command->event;
    switch (command->kind) {
    case COMMAND_ADD:
        if (e->mask & EVENTER_TIMER) {
            if (__atomic_load_n(&e->state, __ATOMIC_ACQUIRE) == EVENT_STATE_TIMER) {
                if (e->heap_index == 0)
                    eventer_impl_timer_insert(loop, e);
                else
                    eventer_impl_timer_rekey(loop, e);
            }
        } else if (__atomic_load_n(&e->state, __ATOMIC_ACQUIRE) == EVENT_STATE_RECURRENT) {
            recurrent_insert(loop, e);
        }
        eventer_deref(e);
        break;
    case COMMAND_REMOVE:
        if (e->mask & EVENTER_TIMER) {
            if (e->heap_index && __atomic_load_n(&e->state, __ATOMIC_ACQUIRE) != EVENT_STATE_TIMER)
                eventer_impl_timer_delete(loop, e);
        } else if (e->heap_index &&
                   __atomic_load_n(&e->state, __ATOMIC_ACQUIRE) != EVENT_STATE_RECURRENT) {
            recurrent_delete(loop, e);
        }
        eventer_deref(e);
        break;
    case COMMAND_UPDATE:
        if (command->has_whence)
            e->whence = command->whence;
        if (e->mask & EVENTER_TIMER) {
            if (e->heap_index)
                eventer_impl_timer_rekey(loop, e);
        } else if (!(e->mask & (EVENTER_RECURRENT | EVENTER_ASYNCH)) && command->mask != 0) {
            if (e->fd >= 0 && e->fd < fd_table_size && fd_table_load(e->fd) == e && !tearing_down)
                fold_fd_mask(loop, e, command->mask);
            else
                e->mask = command->mask;
        }
        eventer_deref(e);
        break;
    case COMMAND_TRIGGER:
        if (tearing_down) {
            eventer_deref(e);
        } else if (eventer_impl_loop_of_event(e) != loop) {
            /* The event moved since the trigger was queued: follow it. */
            queue_trigger(eventer_impl_loop_of_event(e), command, "eventer_trigger");
        } else {
            eventer_impl_dispatch_fd(loop, e, command->mask & ~EVENTER_CROSS_THREAD_TRIGGER);
        }
        break;
    case COMMAND_COMPLETE:
        if (tearing_down)
            eventer_impl_jobq_discard(e);
        else
            eventer_impl_jobq_complete(e);
        break;
    case COMMAND_CANCELLED:
        eventer_impl_jobq_finish_cancelled(e, tearing_down);
        break;
    case COMMAND_RUN:
        if (!tearing_down)
            command->function(command->argument);
        break;
    default:
        break;
    }
}

/* Applies the commands spilled on one of `loop`'s stacks (eventer_impl_spill_command), oldest
 * first. Returns whether there were any. */
static int apply_spilled_commands(struct eventer_loop *loop, struct eventer_spilled_command **stack,
                                  int tearing_down)
{
    if (!__atomic_load_n(stack, __ATOMIC_RELAXED))
        return 0;
    struct eventer_spilled_command *newest = __atomic_exchange_n(stack, NULL, __ATOMIC_ACQUIRE);
    struct eventer_spilled_command *oldest = NULL;
    while (newest) {
        struct eventer_spilled_command *next = newest->next;
        newest->next = oldest;
        oldest = newest;
        newest = next;
    }
    while (oldest) {
        /* Read before the command runs: it may free the node (with its job) or pass it again. */
        struct eventer_spilled_command *next = oldest->next;
        struct eventer_command command = {.kind = oldest->kind,
                                          .event = oldest->event,
                                          .function = oldest->function,
                                          .argument = oldest->argument};
        apply_command(loop, &command, tearing_down);
        oldest = next;
    }
    return 1;
}

/*
 * Applies what could not be queued to this loop for want of memory: events whose timer or
 * recurrent registration it must reconcile with their state, then spilled commands. Returns
 * whether there was any.
 */
static int drain_spilled(struct eventer_loop *loop, int tearing_down)
{
    int found = 0;
    if (__atomic_load_n(&loop->reconcile, __ATOMIC_RELAXED)) {
        found = 1;
        eventer_t e = __atomic_exchange_n(&loop->reconcile, NULL, __ATOMIC_ACQUIRE);
        while (e) {
            /* Read before the event may be pushed again. */
            eventer_t next = e->reconcile_next;
            /* See registration_not_queued(). */
            (void)__atomic_exchange_n(&e->reconcile_loop, NULL, __ATOMIC_SEQ_CST);
            int idle = __atomic_fetch_or(&e->state, 0, __ATOMIC_SEQ_CST) == EVENT_STATE_IDLE;
            struct eventer_command command = {.kind = idle ? COMMAND_REMOVE : COMMAND_ADD,
                                              .event = e};
            apply_command(loop, &command, tearing_down); /* drops the guard */
            e = next;
        }
    }
    found |= apply_spilled_commands(loop, &loop->spilled, tearing_down);
    if (tearing_down)
        drop_spilled_runs(loop);
    else
        found |= apply_spilled_commands(loop, &loop->spilled_runs, 0);
    return found;
}

static void drain_commands(struct eventer_loop *loop, int tearing_down)
{
    for (;;) {
        int spilled = drain_spilled(loop, tearing_down);
        pthread_mutex_lock(&loop->command_lock);
        uint32_t count = loop->command_count;
        if (count == 0) {
            pthread_mutex_unlock(&loop->command_lock);
            if (spilled && tearing_down)
                continue; /* applying those may have spilled more */
            return;
        }
        struct eventer_command *batch = loop->commands;
        uint32_t batch_capacity = loop->command_capacity;
        loop->commands = loop->draining;
        loop->command_capacity = loop->draining_capacity;
        loop->command_count = 0;
        loop->draining = batch;
        loop->draining_capacity = batch_capacity;
        pthread_mutex_unlock(&loop->command_lock);
        for (uint32_t i = 0; i < count; i++)
            apply_command(loop, &batch[i], tearing_down);
        if (!tearing_down)
            return; /* new commands wait for the next iteration */
    }
}

static void drain_wakeup(struct eventer_loop *loop)
{
    uint64_t value;
    while (read(loop->wakeup_fd, &value, sizeof(value)) < 0 && errno == EINTR)
        ;
}

static void *loop_main(void *argument)
{
    struct eventer_loop *loop = argument;
    eventer_impl_this_loop = loop;
    /* Wait until eventer_init() has filled in every loop's thread id. */
    pthread_mutex_lock(&start_lock);
    pthread_mutex_unlock(&start_lock);
    pthread_setname_np(pthread_self(), loop->name);
    struct eventer_poller_ready ready[EVENTER_POLLER_BATCH];
    /* Commands can be queued before the thread starts; after that, every batch of commands
     * comes with a wake-up (eventer_impl_queue_command; a push on the spill or reconcile
     * stack wakes too), seen here as the eventfd's readiness. */
    int woken = 1;
    while (!eventer_impl_stopping()) {
        int drain = woken;
        woken = 0;
        /* Descriptor callbacks get the time read after the wait; timers, commands and
         * recurrent events need it now. */
        if (loop->timer_count > 0 || loop->recurrent_count > 0 || drain)
            update_now(loop);
        if (loop->timer_count > 0)
            eventer_impl_timers_fire(loop);
        if (drain)
            drain_commands(loop, 0);
        run_recurrent(loop);
        if (eventer_impl_stopping())
            break;
        uint64_t timeout = eventer_impl_timers_next_wait(loop);
        /* Recurrent events run once per iteration, so a loop that has any wakes at least
         * every max_sleeptime. One without them sleeps until a timer, a descriptor or another
         * thread wakes it: arming a timeout for every sleep costs about a microsecond per
         * wake-up here (a timer reprogramming in the VM), a tenth of a small request's work. */
        if (timeout > max_sleep_us && loop->recurrent_count > 0)
            timeout = max_sleep_us;
        run_pre_wait_hooks(loop, &timeout);
        int count = eventer_poller_wait(&loop->poller, ready, timeout);
        run_post_wait_hooks(loop, count);
        /* Also after a timeout: what the wait was for (a timer, the timers' storage trim)
         * is judged by the time, which the next iteration may not read again. */
        update_now(loop);
        if (count == 0)
            continue;
        for (int i = 0; i < count; i++) {
            int fd = ready[i].fd;
            if (fd == loop->wakeup_fd) {
                drain_wakeup(loop);
                woken = 1;
                continue;
            }
            if (fd < 0 || fd >= fd_table_size)
                continue;
            eventer_t e = fd_table_load(fd);
            /* Skip readiness left over from a descriptor that moved or was removed. */
            if (!e || registered_loop_of(e) != loop)
                continue;
            int fired = ready[i].mask & (e->mask | EVENTER_EXCEPTION);
            if (fired)
                dispatch_fd(loop, e, fired);
        }
    }
    run_exit_hooks(loop);
    /* Now, not in eventer_cleanup(): their nodes may live in what the ACO layer frees next. */
    drop_spilled_runs(loop);
    eventer_impl_aco_loop_exit(loop);
    eventer_impl_this_loop = NULL;
    return NULL;
}

/* ---- settings ---- */

static int parse_count(const char *key, const char *value, uint64_t minimum, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long parsed = value ? strtoull(value, &end, 10) : 0;
    if (!value || end == value || *end != '\0' || errno != 0 || parsed < minimum) {
        ensure_log_streams();
        mtevL(eventer_impl_error, "eventer_propset: %s=\"%s\" is not a number >= %llu\n", key,
              value ? value : "(null)", (unsigned long long)minimum);
        return -1;
    }
    *out = parsed;
    return 0;
}

int eventer_propset(const char *key, const char *value)
{
    ensure_log_streams();
    uint64_t number = 0;
    if (!key)
        return -1;
    if (!strcmp(key, "concurrency")) {
        if (parse_count(key, value, 0, &number) < 0)
            return -1;
        if (eventer_impl_running())
            mtevL(eventer_impl_error, "eventer_propset: concurrency applies at eventer_init()\n");
        configured_concurrency = (int)(number > 1024 ? 1024 : number);
        return 0;
    }
    if (!strcmp(key, "rlim_nofiles")) {
        if (parse_count(key, value, 256, &number) < 0)
            return -1;
        rlimit_target = number;
        return 0;
    }
    if (!strcmp(key, "max_sleeptime_ms")) {
        if (parse_count(key, value, 1, &number) < 0)
            return -1;
        max_sleep_us = number * 1000;
        return 0;
    }
    if (!strcmp(key, "default_queue_threads") || !strcmp(key, "default_jobq_ordering") ||
        !strncmp(key, "jobq_", 5))
        return eventer_impl_jobq_propset(key, value);
    /* libmtev keys that have no meaning here are accepted quietly. */
    if (!strcmp(key, "debugging") || !strncmp(key, "show_", 5) || !strncmp(key, "ssl_", 4) ||
        !strcmp(key, "default_ca_chain") || !strncmp(key, "loop_", 5))
        return 0;
    mtevL(eventer_impl_error, "eventer_propset: unknown key \"%s\"\n", key);
    return -1;
}

int eventer_impl_propset(const char *key, const char *value)
{
    return eventer_propset(key, value);
}

static void apply_config_pair(mtev_conf_section_t item)
{
    char key[128];
    char *value = NULL;
    if (!mtev_conf_section_name(item, key, sizeof(key)))
        return;
    if (!mtev_conf_get_string(item, ".", &value))
        return;
    eventer_propset(key, value);
    free(value);
}

static void apply_configuration(void)
{
    if (!mtev_conf_is_loaded())
        return;
    int count = 0;
    mtev_conf_section_t *items =
        mtev_conf_get_sections_read(MTEV_CONF_ROOT, "/*/eventer/config/*", &count);
    for (int i = 0; i < count; i++)
        apply_config_pair(items[i]);
    mtev_conf_release_sections_read(items, count);
}

static void raise_descriptor_limit(void)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
        fd_table_size = 1024;
        return;
    }
    rlim_t wanted = (rlim_t)rlimit_target;
    if (limit.rlim_max != RLIM_INFINITY && wanted > limit.rlim_max)
        wanted = limit.rlim_max;
    if (wanted > limit.rlim_cur) {
        struct rlimit raised = {wanted, limit.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            limit.rlim_cur = wanted;
        else
            mtevL(eventer_impl_error, "eventer_init: cannot raise RLIMIT_NOFILE to %llu: %s\n",
                  (unsigned long long)wanted, strerror(errno));
    }
    rlim_t size = limit.rlim_cur;
    if (size == RLIM_INFINITY || size > (rlim_t)1 << 24)
        size = (rlim_t)1 << 24;
    if (size < 256)
        size = 256;
    fd_table_size = (int)size;
}

static int default_concurrency(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1)
        cores = 1;
    return cores + 1 < 2 ? 2 : (int)cores + 1;
}

static void destroy_loops(int count)
{
    for (int i = 0; i < count; i++) {
        struct eventer_loop *loop = &eventer_impl_loops[i];
        eventer_poller_destroy(&loop->poller);
        if (loop->wakeup_fd >= 0)
            close(loop->wakeup_fd);
        pthread_mutex_destroy(&loop->command_lock);
        free(loop->commands);
        free(loop->draining);
        if (loop->backq)
            eventer_impl_backq_destroy(loop->backq);
    }
    free(eventer_impl_loops);
    eventer_impl_loops = NULL;
    eventer_impl_loop_count = 0;
}

static int create_loop(struct eventer_loop *loop, int index)
{
    loop->index = index;
    snprintf(loop->name, sizeof(loop->name), "loop/%d", index);
    loop->wakeup_fd = -1;
    loop->poller.kernel_fd = -1;
    loop->timer_base_us = eventer_impl_now_us();
    pthread_mutex_init(&loop->command_lock, NULL);
    if (eventer_poller_create(&loop->poller) < 0) {
        mtevL(eventer_impl_error, "eventer_init: cannot create a poller: %s\n", strerror(errno));
        return -1;
    }
    loop->wakeup_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->wakeup_fd < 0 ||
        eventer_poller_add(&loop->poller, loop->wakeup_fd, EVENTER_READ) < 0) {
        mtevL(eventer_impl_error, "eventer_init: cannot create a wakeup eventfd: %s\n",
              strerror(errno));
        return -1;
    }
    loop->backq = eventer_impl_backq_create(loop);
    return loop->backq ? 0 : -1;
}

int eventer_init(void)
{
    ensure_log_streams();
    if (eventer_impl_running())
        return 0;
    apply_configuration();
    raise_descriptor_limit();
    /* A peer that closes early must not kill the process on write(); libmtev does the same. */
    struct sigaction current;
    if (sigaction(SIGPIPE, NULL, &current) == 0 && current.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
    fd_table = calloc((size_t)fd_table_size, sizeof(eventer_t));
    int count = configured_concurrency > 0 ? configured_concurrency : default_concurrency();
    eventer_impl_loops = calloc((size_t)count, sizeof(struct eventer_loop));
    shutdown_fd = eventfd(0, EFD_CLOEXEC);
    if (!fd_table || !eventer_impl_loops || shutdown_fd < 0) {
        mtevL(eventer_impl_error, "eventer_init: out of resources: %s\n", strerror(errno));
        goto fail_early;
    }
    eventer_impl_loop_count = count;
    for (int i = 0; i < count; i++) {
        if (create_loop(&eventer_impl_loops[i], i) < 0) {
            destroy_loops(i + 1);
            goto fail_early;
        }
    }
    __atomic_store_n(&stopping, 0, __ATOMIC_RELEASE);
    if (eventer_impl_jobq_init() < 0) {
        destroy_loops(count);
        goto fail_early;
    }
    gettimeofday(&epoch, NULL);
    pthread_mutex_lock(&start_lock);
    int started = 0;
    for (; started < count; started++) {
        int error = pthread_create(&eventer_impl_loops[started].thread, NULL, loop_main,
                                   &eventer_impl_loops[started]);
        if (error) {
            mtevL(eventer_impl_error, "eventer_init: cannot start loop thread %d: %s\n", started,
                  strerror(error));
            break;
        }
    }
    if (started < count) {
        __atomic_store_n(&stopping, 1, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&start_lock);
        for (int i = 0; i < started; i++) {
            eventer_impl_wake(&eventer_impl_loops[i]);
            pthread_join(eventer_impl_loops[i].thread, NULL);
        }
        eventer_impl_jobq_stop();
        eventer_impl_jobq_free();
        destroy_loops(count);
        goto fail_early;
    }
    __atomic_store_n(&running, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&start_lock);
    mtevL(eventer_impl_debug, "eventer_init: %d loop threads, %d descriptors\n", count,
          fd_table_size);
    return 0;

fail_early:
    free(fd_table);
    fd_table = NULL;
    fd_table_size = 0;
    if (shutdown_fd >= 0)
        close(shutdown_fd);
    shutdown_fd = -1;
    free(eventer_impl_loops);
    eventer_impl_loops = NULL;
    eventer_impl_loop_count = 0;
    return -1;
}

void eventer_shutdown(void)
{
    if (!eventer_impl_running())
        return;
    /* Only async-signal-safe operations: a signal handler may call this. */
    __atomic_store_n(&stopping, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < eventer_impl_loop_count; i++)
        eventer_impl_wake(&eventer_impl_loops[i]);
    uint64_t one = 1;
    if (shutdown_fd >= 0)
        while (write(shutdown_fd, &one, sizeof(one)) < 0 && errno == EINTR)
            ;
}

void eventer_cleanup(void)
{
    if (!eventer_impl_running())
        return;
    if (eventer_impl_this_loop || eventer_jobq_inflight())
        mtevFatal(mtev_error, "eventer_cleanup: called from an eventer thread\n");
    eventer_shutdown();
    for (int i = 0; i < eventer_impl_loop_count; i++)
        pthread_join(eventer_impl_loops[i].thread, NULL);
    /* Job threads finish their current job and post completions, which are discarded. */
    eventer_impl_jobq_stop();
    for (int i = 0; i < eventer_impl_loop_count; i++) {
        struct eventer_loop *loop = &eventer_impl_loops[i];
        drain_commands(loop, 1);
        eventer_impl_timers_release(loop);
        release_recurrent(loop);
    }
    eventer_impl_jobq_free();
    eventer_impl_aco_cleanup();
    for (int fd = 0; fd < fd_table_size; fd++) {
        eventer_t e = __atomic_exchange_n(&fd_table[fd], NULL, __ATOMIC_ACQ_REL);
        if (e)
            eventer_deref(e);
    }
    __atomic_store_n(&running, 0, __ATOMIC_RELEASE);
    destroy_loops(eventer_impl_loop_count);
    free(fd_table);
    fd_table = NULL;
    fd_table_size = 0;
    close(shutdown_fd);
    shutdown_fd = -1;
    __atomic_store_n(&stopping, 0, __ATOMIC_RELEASE);
}

void eventer_loop(void)
{
    if (eventer_impl_this_loop)
        mtevFatal(mtev_error, "eventer_loop: called from a loop thread\n");
    if (!eventer_impl_running() && eventer_init() < 0)
        return;
    uint64_t value;
    while (!eventer_impl_stopping()) {
        if (read(shutdown_fd, &value, sizeof(value)) < 0 && errno != EINTR)
            break;
    }
    eventer_cleanup();
}

void eventer_loop_return(void)
{
    if (!eventer_impl_running())
        eventer_init();
}

mtev_boolean eventer_in_loop(void)
{
    return eventer_impl_this_loop ? mtev_true : mtev_false;
}

int eventer_is_loop(pthread_t thread)
{
    struct eventer_loop *loop = eventer_impl_loops ? loop_for_thread(thread) : NULL;
    return loop ? loop->index : -1;
}

int eventer_loop_concurrency(void)
{
    return eventer_impl_loop_count;
}

pthread_t eventer_choose_owner(int n)
{
    if (!eventer_impl_running())
        return pthread_self();
    int count = eventer_impl_loop_count;
    if (n == 0 || count == 1)
        return eventer_impl_loops[0].thread;
    unsigned index = 1 + (unsigned)n % (unsigned)(count - 1);
    return eventer_impl_loops[index].thread;
}

int eventer_get_epoch(struct timeval *start)
{
    if (!eventer_impl_running())
        return -1;
    *start = epoch;
    return 0;
}

int eventer_gettimeofcallback(void *unused, struct timeval *now, void *unused2)
{
    (void)unused;
    (void)unused2;
    if (eventer_impl_this_loop)
        *now = eventer_impl_this_loop->now;
    else
        gettimeofday(now, NULL);
    return 0;
}

uint64_t eventer_callback_us(void)
{
    return eventer_impl_this_loop ? eventer_impl_this_loop->now_us : eventer_impl_now_us();
}

uint64_t eventer_callback_ms(void)
{
    return eventer_callback_us() / 1000u;
}

const char *eventer_get_thread_name(void)
{
    return eventer_impl_this_loop ? eventer_impl_this_loop->name : NULL;
}

/* ---- callback names ---- */

struct callback_name {
    char *name;
    eventer_func_t callback;
    void (*describe)(char *buffer, int capacity, eventer_t e, void *closure);
    void *closure;
};

static pthread_rwlock_t names_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct callback_name *names;
static size_t names_count, names_capacity;

int eventer_name_callback_ext(const char *name, eventer_func_t callback,
                              void (*describe)(char *buffer, int capacity, eventer_t e,
                                               void *closure),
                              void *closure)
{
    if (!name || !callback)
        return -1;
    pthread_rwlock_wrlock(&names_lock);
    int result = 0;
    size_t i;
    for (i = 0; i < names_count; i++)
        if (!strcmp(names[i].name, name))
            break;
    if (i < names_count) {
        if (names[i].callback != callback)
            result = -1;
        else {
            names[i].describe = describe;
            names[i].closure = closure;
        }
    } else {
        if (names_count == names_capacity) {
            size_t capacity = names_capacity ? names_capacity * 2 : 32;
            struct callback_name *grown = realloc(names, capacity * sizeof(*names));
            if (!grown) {
                pthread_rwlock_unlock(&names_lock);
                return -1;
            }
            names = grown;
            names_capacity = capacity;
        }
        char *copy = strdup(name);
        if (!copy) {
            result = -1;
        } else {
            names[names_count++] = (struct callback_name){copy, callback, describe, closure};
        }
    }
    pthread_rwlock_unlock(&names_lock);
    return result;
}

int eventer_name_callback(const char *name, eventer_func_t callback)
{
    eventer_name_callback_ext(name, callback, NULL, NULL);
    return 0;
}

eventer_func_t eventer_callback_for_name(const char *name)
{
    eventer_func_t found = NULL;
    if (!name)
        return NULL;
    pthread_rwlock_rdlock(&names_lock);
    for (size_t i = 0; i < names_count; i++)
        if (!strcmp(names[i].name, name)) {
            found = names[i].callback;
            break;
        }
    pthread_rwlock_unlock(&names_lock);
    return found;
}

const char *eventer_name_for_callback_e(eventer_func_t callback, eventer_t e)
{
    static __thread char described[128];
    const char *found = NULL;
    pthread_rwlock_rdlock(&names_lock);
    /* The first name given to a callback is its name. */
    for (size_t i = 0; i < names_count; i++)
        if (names[i].callback == callback) {
            if (e && names[i].describe) {
                names[i].describe(described, (int)sizeof(described), e, names[i].closure);
                found = described;
            } else {
                found = names[i].name;
            }
            break;
        }
    pthread_rwlock_unlock(&names_lock);
    return found;
}

const char *eventer_name_for_callback(eventer_func_t callback)
{
    return eventer_name_for_callback_e(callback, NULL);
}
