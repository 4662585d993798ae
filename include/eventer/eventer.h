/*
 * The eventer: several event-loop threads, each owning the events given to it (file
 * descriptors, timers, recurrent events), plus job queues whose threads run asynchronous
 * events and hand them back to their owner loop. libmtev's API under libmtev's names.
 *
 * Life of a program:
 *
 *     eventer_init();            // loop threads and the default job queue start here
 *     eventer_add(...);          // from any thread, before or after eventer_loop()
 *     eventer_loop();            // blocks until eventer_shutdown(), then frees everything
 *
 * Events. An eventer_t is a reference-counted object (refcount 1 from eventer_alloc*()).
 * Handing an event to eventer_add*() hands over that reference: the eventer drops it when the
 * event is done (callback returned 0, or the event was removed and returned to the caller,
 * who then owns it again). Take eventer_ref() before passing an event to another thread.
 *
 * Owners. Every event has an owner: one of the loop threads, chosen at allocation (the
 * calling loop thread, else eventer_choose_owner(0)) or later with eventer_set_owner() while
 * the event is not registered (or from inside its own callback, which moves an fd event to
 * the new thread when the callback returns a mask). Callbacks of fd, timer and recurrent
 * events, and the COMPLETE phase of asynchronous events, always run on the owner thread.
 *
 * Threads. eventer_add, eventer_remove*, eventer_update, eventer_trigger and eventer_wakeup
 * are safe from any thread; work for another thread's event is queued to that thread, which
 * is woken. Accessors touch the event directly: use them on the owner thread, or before the
 * event is added.
 *
 * Callback contract (eventer_func_t): `mask` says what happened; the return value is what
 * the event wants next.
 *   fd event:    returns the new interest mask (READ/WRITE/EXCEPTION); 0 = done: the event
 *                is unregistered (if the callback did not already eventer_remove_fde() it)
 *                and the eventer drops its reference.
 *   timer:       0 = done (freed); non-zero re-adds it as a timer at its (updated) whence.
 *   recurrent:   called once per loop iteration while registered; the return value is
 *                ignored (EVENTER_RECURRENT = "did work", 0 = "idle", as in libmtev).
 *   asynch:      WORK then CLEANUP on a job-queue thread (return ignored), then COMPLETE on
 *                the owner loop: 0 = done (freed), non-zero = the event is given that mask
 *                and eventer_add()ed again.
 * `now` is the time the loop took before dispatching (cheap to read, see
 * eventer_gettimeofcallback()).
 *
 * Misuse (adding an event with no mask, removing an asynch event, adding before
 * eventer_init()...) is reported with a message naming the call and aborts the process.
 * Run-time failures (an fd the poller refuses, a job thread that cannot start) are logged on
 * "error/eventer" and survived.
 *
 * This header is the umbrella: it also brings in <aco/aco.h> (aco_exit()), <errno.h>,
 * <sys/time.h>, the job queues (<eventer/eventer_jobq.h>) and the co-routine layer
 * (<eventer/eventer_aco.h>).
 */
#ifndef EVENTER_EVENTER_H
#define EVENTER_EVENTER_H

#include <mtev_defines.h>
#include <mtev_log.h>

#include <aco/aco.h>

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>

/* Some platforms lack ETIME; the eventer's timeouts use ETIMEDOUT there. */
#ifndef ETIME
#define ETIME ETIMEDOUT
#endif

ARK_BEGIN_DECLS

/* Interest in (or readiness for) reading. */
#define EVENTER_READ 0x01
/* Interest in (or readiness for) writing. */
#define EVENTER_WRITE 0x02
/* Error or hang-up on the descriptor; always reported to fd events. */
#define EVENTER_EXCEPTION 0x04
/* A one-shot timer that fires at `whence`. */
#define EVENTER_TIMER 0x08
/* Asynchronous job phase 1 (job-queue thread); mask bit form of EVENTER_ASYNCH_WORK. */
#define EVENTER_ASYNCH_WORK_D 0x10
/* Asynchronous job phase 2 (job-queue thread). */
#define EVENTER_ASYNCH_CLEANUP_D 0x20
/* Asynchronous job phase 3 (owner loop thread); also the mask of an asynch event. */
#define EVENTER_ASYNCH_COMPLETE_D 0x30
/* The mask asynchronous events are allocated with (libmtev's older spelling). */
#define EVENTER_ASYNCH 0x30
/* Called once per loop iteration. */
#define EVENTER_RECURRENT 0x80
/* Job deadline enforced by cancelling the job thread asynchronously (see eventer_jobq.h). */
#define EVENTER_EVIL_BRUTAL 0x100
/* Same as EVENTER_EVIL_BRUTAL (libmtev's alias). */
#define EVENTER_DEFAULT_ASYNCH_ABORT EVENTER_EVIL_BRUTAL
/* Job deadline enforced by deferred pthread cancellation (at the next cancellation point). */
#define EVENTER_CANCEL_DEFERRED 0x200
/* Job deadline enforced by asynchronous pthread cancellation (anywhere: use with care). */
#define EVENTER_CANCEL_ASYNCH 0x400
/* Either kind of cancellation. */
#define EVENTER_CANCEL (EVENTER_CANCEL_DEFERRED | EVENTER_CANCEL_ASYNCH)
/* Bits the eventer keeps for itself. */
#define EVENTER_RESERVED 0xfff00000
/* Internal: marks a trigger queued from another thread. */
#define EVENTER_CROSS_THREAD_TRIGGER 0x80000000

/* The phase an asynchronous callback is called for (its `mask`). */
typedef enum {
    EVENTER_ASYNCH_WORK = EVENTER_ASYNCH_WORK_D,
    EVENTER_ASYNCH_CLEANUP = EVENTER_ASYNCH_CLEANUP_D,
    EVENTER_ASYNCH_COMPLETE = EVENTER_ASYNCH_COMPLETE_D
} eventer_asynch_op_t;

/* An event (opaque). */
typedef struct _event *eventer_t;

/* An event callback; see the contract above. */
typedef int (*eventer_func_t)(eventer_t e, int mask, void *closure, struct timeval *now);
/* A job body without phases (used by the ACO helpers). */
typedef void (*eventer_asynch_simple_func_t)(void *closure);
/* A job body told its phase. */
typedef void (*eventer_asynch_func_t)(eventer_asynch_op_t op, void *closure);

/*
 * fd operations. Each returns what the system call would (bytes, new fd, 0) or -1 with
 * errno; on -1/EAGAIN `*mask` holds the interest that lets the operation progress (a TLS
 * read may need WRITE). `closure` is the event.
 */
typedef int (*eventer_fd_accept_t)(int fd, struct sockaddr *address, socklen_t *length, int *mask,
                                   void *closure);
typedef int (*eventer_fd_read_t)(int fd, void *buffer, size_t length, int *mask, void *closure);
typedef int (*eventer_fd_write_t)(int fd, const void *buffer, size_t length, int *mask,
                                  void *closure);
typedef int (*eventer_fd_close_t)(int fd, int *mask, void *closure);

struct _fd_opset;
/* A table of fd operations: the POSIX one, and later TLS and ACO ones. */
typedef struct _fd_opset *eventer_fd_opset_t;
/* Switches the event (`closure`) to another opset; returns 0. */
typedef int (*eventer_fd_set_opset_t)(void *closure, eventer_fd_opset_t opset);
/* Returns the opset's per-event context (e.g. the TLS session). */
typedef void *(*eventer_fd_get_opset_ctx_t)(void *closure);
/* Stores the opset's per-event context. */
typedef void (*eventer_fd_set_opset_ctx_t)(void *closure, void *context);

struct _fd_opset {
    eventer_fd_accept_t accept;
    eventer_fd_read_t read;
    eventer_fd_write_t write;
    eventer_fd_close_t close;
    eventer_fd_set_opset_t set_opset;
    eventer_fd_get_opset_ctx_t get_opset_ctx;
    eventer_fd_set_opset_ctx_t set_opset_ctx;
    const char *name;
};

/*
 * Plain system calls on non-blocking descriptors. read/accept set `*mask` to
 * READ|EXCEPTION and write to WRITE|EXCEPTION. close unregisters the descriptor from the
 * eventer if this event still owns it, closes it, and sets the event's fd to -1.
 * read and write use recv()/send() on sockets and read()/write() on anything else, with the
 * same results; the first ENOTSOCK is remembered in the event (`closure`, which may be NULL:
 * then read()/write() are used), so call them with the event the descriptor belongs to.
 */
ARK_EXTERN extern eventer_fd_opset_t eventer_POSIX_fd_opset;

/* ---- allocation and reference counting ---- */

/*
 * Returns a zeroed event with refcount 1, fd -1, the POSIX opset and an owner (the calling
 * loop thread, else eventer_choose_owner(0) once the eventer is initialised, else the
 * calling thread). Returns NULL only when memory is exhausted (logged). Thread: any.
 */
ARK_EXTERN eventer_t eventer_alloc(void);
/* An fd event on `fd` with interest `mask`, calling `callback(e, mask, closure, now)`. */
ARK_EXTERN eventer_t eventer_alloc_fd(eventer_func_t callback, void *closure, int fd, int mask);
/* A timer firing at the absolute time `*whence` (copied). */
ARK_EXTERN eventer_t eventer_alloc_timer(eventer_func_t callback, void *closure,
                                         struct timeval *whence);
/* A recurrent event. */
ARK_EXTERN eventer_t eventer_alloc_recurrent(eventer_func_t callback, void *closure);
/* An asynchronous event (mask EVENTER_ASYNCH) for eventer_add_asynch(). */
ARK_EXTERN eventer_t eventer_alloc_asynch(eventer_func_t callback, void *closure);
/*
 * An asynchronous event with an absolute deadline `*deadline` (NULL = none): a job still
 * queued at its deadline skips WORK. Add EVENTER_CANCEL_DEFERRED (or _ASYNCH) to its mask
 * to also cancel the WORK phase of a job that is running at the deadline.
 */
ARK_EXTERN eventer_t eventer_alloc_asynch_timeout(eventer_func_t callback, void *closure,
                                                  struct timeval *deadline);
/*
 * Returns a new event with the same callback, closure, fd, mask, whence, opset, opset
 * context and owner as `source`, refcount 1, registered nowhere.
 */
ARK_EXTERN eventer_t eventer_alloc_copy(eventer_t source);
/* Adds a reference. Thread: any. */
ARK_EXTERN void eventer_ref(eventer_t e);
/* Drops a reference; frees the event at zero and returns true then. Thread: any. */
ARK_EXTERN mtev_boolean eventer_deref(eventer_t e);
/* The same as eventer_deref(). */
ARK_EXTERN mtev_boolean eventer_free(eventer_t e);
/* Events currently allocated, and allocated since start. */
ARK_EXTERN int64_t eventer_allocations_current(void);
ARK_EXTERN int64_t eventer_allocations_total(void);

/* ---- accessors (owner thread, or before the event is added) ---- */

ARK_EXTERN int eventer_get_fd(eventer_t e);
/* The event's mask (interest for fd events, kind bits otherwise). */
ARK_EXTERN int eventer_get_mask(eventer_t e);
/* Sets the mask without touching any registration. */
ARK_EXTERN void eventer_set_mask(eventer_t e, int mask);
ARK_EXTERN struct timeval eventer_get_whence(eventer_t e);
/*
 * Sets `whence`: a registered timer is re-sorted (eventer_update semantics); an asynch event
 * gets a new deadline (before it is added).
 */
ARK_EXTERN void eventer_update_whence(eventer_t e, struct timeval whence);
ARK_EXTERN pthread_t eventer_get_owner(eventer_t e);
/*
 * Sets the owner thread. `owner` should be a loop thread (see eventer_choose_owner()); any
 * other thread makes the event fall back to loop thread 0 when added.
 */
ARK_EXTERN void eventer_set_owner(eventer_t e, pthread_t owner);
ARK_EXTERN eventer_func_t eventer_get_callback(eventer_t e);
ARK_EXTERN void eventer_set_callback(eventer_t e, eventer_func_t callback);
ARK_EXTERN void *eventer_get_closure(eventer_t e);
ARK_EXTERN void eventer_set_closure(eventer_t e, void *closure);
ARK_EXTERN eventer_fd_opset_t eventer_get_fd_opset(eventer_t e);
ARK_EXTERN eventer_fd_accept_t eventer_fd_opset_get_accept(eventer_fd_opset_t opset);
ARK_EXTERN eventer_fd_read_t eventer_fd_opset_get_read(eventer_fd_opset_t opset);
ARK_EXTERN eventer_fd_write_t eventer_fd_opset_get_write(eventer_fd_opset_t opset);
ARK_EXTERN eventer_fd_close_t eventer_fd_opset_get_close(eventer_fd_opset_t opset);
/* The event whose callback is running on this thread (loop or job thread), or NULL. */
ARK_EXTERN eventer_t eventer_get_this_event(void);
/* True when the calling thread owns `e`. */
ARK_EXTERN mtev_boolean eventer_thread_check(eventer_t e);

/* ---- registration (any thread) ---- */

/*
 * Hands `e` to the eventer according to its mask: asynch -> the default job queue;
 * recurrent -> the owner's recurrent list; timer -> the owner's timers; otherwise an fd
 * event registered with the owner's poller (mask must be non-zero, fd >= 0). Fatal on an
 * event with no mask or before eventer_init().
 *
 * Out of memory inside the eventer (logged on error/eventer, naming the call):
 *  - a timer or recurrent add, remove or re-add from another thread is still delivered to
 *    the owner (through a node the event carries), so it is not lost (unless the event
 *    changed owner while such a node was pending: then an add is dropped and the event left
 *    unregistered);
 *  - a recurrent event the owner's list has no room for is not added: it is left
 *    unregistered (eventer_remove() returns NULL) and the reference stays with the caller;
 *  - a cross-thread eventer_update()/eventer_update_whence() is dropped (the event keeps
 *    its mask or time); a cross-thread eventer_trigger() is dropped, and with it the
 *    event if it was not registered for its descriptor (its reference went with the
 *    trigger);
 *  - a job's COMPLETE is still delivered; a job with no memory for its record is refused by
 *    the eventer_try_add_asynch*() calls and dropped unrun (freed) by the others.
 */
ARK_EXTERN void eventer_add(eventer_t e);
/*
 * Unregisters an fd, timer or recurrent event. Returns `e` if it was registered (the caller
 * owns the eventer's reference again), else NULL. Fatal on an asynch event.
 */
ARK_EXTERN eventer_t eventer_remove(eventer_t e);
/*
 * Unregisters the event owning `fd`; returns it (caller owns it) or NULL (none or fd < 0).
 * Thread: any, but from a thread that does not own the event the removal does not wait for
 * the owner: the owner loop may be running the event's callback at that moment (or be about
 * to finish one it started), and it still reads the event until that callback returns. Such
 * a caller must not eventer_free() the event (or close its fd, or free its closure) until
 * the owner is done with it; the simple safe way is to remove and free it on the owner
 * thread, e.g. from a callback added with eventer_add_timer_next_opportunity(...,
 * eventer_get_owner(e)). On the owner thread, outside that event's own callback, the
 * eventer no longer touches the event once this returns.
 */
ARK_EXTERN eventer_t eventer_remove_fd(int fd);
/* Unregisters e's descriptor: eventer_remove_fd(eventer_get_fd(e)). */
#define eventer_remove_fde(e) eventer_remove_fd(eventer_get_fd(e))
/* The event registered for `fd`, or NULL. */
ARK_EXTERN eventer_t eventer_find_fd(int fd);
/* fd event: new interest mask. Timer: re-sort after its whence changed (mask ignored). */
ARK_EXTERN void eventer_update(eventer_t e, int mask);
/*
 * Runs an unregistered fd event's callback with `mask` on its owner thread (now, if called
 * there outside that event's own callback; else queued) and registers it with the mask the
 * callback returns (0 = done). The way to resume a connection that was taken out of the loop.
 */
ARK_EXTERN void eventer_trigger(eventer_t e, int mask);
/* Wakes e's owner loop (NULL: the calling loop thread, else loop 0). Thread: any. */
ARK_EXTERN void eventer_wakeup(eventer_t e);
/* Adds a timer (mask must include EVENTER_TIMER). */
ARK_EXTERN void eventer_add_timed(eventer_t e);
/* Removes a timer; returns it if it was pending (caller owns it), else NULL. */
ARK_EXTERN eventer_t eventer_remove_timed(eventer_t e);
/* Adds a recurrent event. */
ARK_EXTERN void eventer_add_recurrent(eventer_t e);
/* Removes a recurrent event; returns it if it was registered, else NULL. */
ARK_EXTERN eventer_t eventer_remove_recurrent(eventer_t e);
/*
 * Calls `visit(e, closure)` for each registered fd event (a snapshot; events may change
 * while it runs, so use it for diagnostics only).
 */
ARK_EXTERN void eventer_foreach_fdevent(void (*visit)(eventer_t e, void *closure), void *closure);
/* Calls `visit(e, closure)` for each pending timer of the calling loop thread. */
ARK_EXTERN void eventer_foreach_timedevent(void (*visit)(eventer_t e, void *closure),
                                           void *closure);

/* ---- timers (helpers) ---- */

/* A timer at absolute `whence`, not yet added. */
static inline eventer_t eventer_at(eventer_func_t callback, void *closure, struct timeval whence)
{
    return eventer_alloc_timer(callback, closure, &whence);
}
/* A timer at absolute `whence`, added; returns it (the eventer owns the reference). */
static inline eventer_t eventer_add_at(eventer_func_t callback, void *closure,
                                       struct timeval whence)
{
    eventer_t e = eventer_at(callback, closure, whence);
    if (e)
        eventer_add(e);
    return e;
}
/* A timer `diff` from now, not yet added. */
static inline eventer_t eventer_in(eventer_func_t callback, void *closure, struct timeval diff)
{
    struct timeval now;
    gettimeofday(&now, NULL);
    struct timeval whence = {now.tv_sec + diff.tv_sec, now.tv_usec + diff.tv_usec};
    while (whence.tv_usec >= 1000000) {
        whence.tv_sec++;
        whence.tv_usec -= 1000000;
    }
    return eventer_alloc_timer(callback, closure, &whence);
}
/* A timer `diff` from now, added. */
static inline eventer_t eventer_add_in(eventer_func_t callback, void *closure, struct timeval diff)
{
    eventer_t e = eventer_in(callback, closure, diff);
    if (e)
        eventer_add(e);
    return e;
}
/* A timer `seconds` + `microseconds` from now, not yet added. */
static inline eventer_t eventer_in_s_us(eventer_func_t callback, void *closure,
                                        unsigned long seconds, unsigned long microseconds)
{
    struct timeval diff = {(time_t)(seconds + microseconds / 1000000),
                           (suseconds_t)(microseconds % 1000000)};
    return eventer_in(callback, closure, diff);
}
/* A timer `seconds` + `microseconds` from now, added. */
static inline eventer_t eventer_add_in_s_us(eventer_func_t callback, void *closure,
                                            unsigned long seconds, unsigned long microseconds)
{
    eventer_t e = eventer_in_s_us(callback, closure, seconds, microseconds);
    if (e)
        eventer_add(e);
    return e;
}
/* A timer that runs at the next loop iteration of loop thread `owner`, not yet added. */
static inline eventer_t eventer_alloc_timer_next_opportunity(eventer_func_t callback, void *closure,
                                                             pthread_t owner)
{
    struct timeval zero = {0, 0};
    eventer_t e = eventer_alloc_timer(callback, closure, &zero);
    if (e)
        eventer_set_owner(e, owner);
    return e;
}
/* The same, added. */
static inline eventer_t eventer_add_timer_next_opportunity(eventer_func_t callback, void *closure,
                                                           pthread_t owner)
{
    eventer_t e = eventer_alloc_timer_next_opportunity(callback, closure, owner);
    if (e)
        eventer_add(e);
    return e;
}

/* ---- initialisation, loop threads ---- */

/*
 * Applies a setting; call before eventer_init() for the thread counts. Keys (the
 * <eventer><config> children of a loaded configuration are applied the same way by
 * eventer_init()): concurrency (loop threads; 0 = default: cores + 1, at least 2),
 * default_queue_threads (default job queue concurrency, default 10),
 * default_jobq_ordering (fifo|lifo), rlim_nofiles (>= 256; default 1048576 capped by the
 * hard limit), jobq_<name> = concurrency[,min[,max[,memory_safety[,backlog[,lifo|fifo]]]]]
 * (creates or adjusts that queue), max_sleeptime_ms (longest wait of a loop thread that has
 * recurrent events, default 1000; a loop without any waits until it has work).
 * Returns 0, or -1 (logged) for an unknown key or bad value.
 */
ARK_EXTERN int eventer_propset(const char *key, const char *value);
/* libmtev's name for eventer_propset(). */
ARK_EXTERN int eventer_impl_propset(const char *key, const char *value);

/*
 * Starts the eventer: raises RLIMIT_NOFILE, applies the loaded configuration's
 * <eventer><config>, creates the default job queue and starts the loop threads. Events may
 * be added as soon as it returns. Returns 0, or -1 (logged) if threads or the poller could
 * not be created. Calling it again while running returns 0.
 */
ARK_EXTERN int eventer_init(void);
/*
 * Blocks the calling (non-loop) thread while the loops run, until eventer_shutdown(); then
 * stops and joins every loop and job thread, frees every event still registered or queued
 * (callbacks are not called) and returns. eventer_init() may be called again afterwards.
 */
ARK_EXTERN void eventer_loop(void);
/* libmtev's non-blocking variant: the loops already run; returns at once. */
ARK_EXTERN void eventer_loop_return(void);
/*
 * Asks the eventer to stop: loops finish their current iteration, eventer_loop() returns.
 * Safe from any thread, including loop and job threads and signal handlers. Idempotent.
 */
ARK_EXTERN void eventer_shutdown(void);
/*
 * Stops (if eventer_shutdown() was not called yet), joins and frees everything, as
 * eventer_loop() does when it returns. For programs that used eventer_loop_return(). Must
 * not be called from a loop or job thread.
 */
ARK_EXTERN void eventer_cleanup(void);
/* True when the calling thread is a loop thread. */
ARK_EXTERN mtev_boolean eventer_in_loop(void);
/* Returns the loop index of thread `thread`, or -1 if it is not a loop thread. */
ARK_EXTERN int eventer_is_loop(pthread_t thread);
/* The number of loop threads. */
ARK_EXTERN int eventer_loop_concurrency(void);
/*
 * Returns a loop thread: n == 0 -> thread 0 (kept for work that is not thread-safe);
 * otherwise thread 1 + n % (concurrency - 1) (thread 0 when there is only one).
 */
ARK_EXTERN pthread_t eventer_choose_owner(int n);
/* Chooses the loop thread for an fd event: eventer_choose_owner(fd + 1). */
#define EVENTER_CHOOSE_THREAD_FOR_EVENT_FD(e) eventer_choose_owner(eventer_get_fd(e) + 1)
/* Stores the time the eventer started in `*start`; returns 0, or -1 before eventer_init(). */
ARK_EXTERN int eventer_get_epoch(struct timeval *start);
/*
 * Stores the time the current loop iteration started (on a loop thread) or the current time
 * (elsewhere) in `*now`. The first and last arguments are ignored (libmtev's signature).
 */
ARK_EXTERN int eventer_gettimeofcallback(void *unused, struct timeval *now, void *unused2);
/* eventer_gettimeofcallback() in milliseconds / microseconds since the epoch. */
ARK_EXTERN uint64_t eventer_callback_ms(void);
ARK_EXTERN uint64_t eventer_callback_us(void);
/* The calling thread's name ("loop/N", "jobq/NAME", or NULL). */
ARK_EXTERN const char *eventer_get_thread_name(void);

/* Calls a callback directly, with no eventer bookkeeping. */
#define eventer_callback(e, mask, closure, now) ((eventer_get_callback(e))(e, mask, closure, now))

/* ---- fd I/O through the event's opset ---- */

/*
 * Reads up to `length` bytes; see the opset contract above. With the POSIX opset,
 * eventer_read() and eventer_write() behave as read() and write() on e's descriptor (errno,
 * SIGPIPE and all): on a socket they use recv() and send() with no flags, which do the same
 * with less work in the kernel; on other descriptors (pipes, files...) read() and write(),
 * after one failed try the first time. Called on a loop thread they make the system call
 * without glibc's cancellation-point marks (loop threads are never cancelled); on other
 * threads, job threads included, they are cancellation points as read() and write() are.
 */
ARK_EXTERN int eventer_read(eventer_t e, void *buffer, size_t length, int *mask);
/* Writes up to `length` bytes. */
ARK_EXTERN int eventer_write(eventer_t e, const void *buffer, size_t length, int *mask);
/* Accepts a connection; returns the new descriptor (blocking mode unchanged). */
ARK_EXTERN int eventer_accept(eventer_t e, struct sockaddr *address, socklen_t *length, int *mask);
/* Closes e's descriptor (see eventer_POSIX_fd_opset); `*mask` is set to 0. */
ARK_EXTERN int eventer_close(eventer_t e, int *mask);
/* Switches `fd` to non-blocking / blocking mode. Returns 0, or -1 and errno. */
ARK_EXTERN int eventer_set_fd_nonblocking(int fd);
ARK_EXTERN int eventer_set_fd_blocking(int fd);

/* ---- callback names ---- */

/* Names `callback` (listeners find callbacks by name). Returns 0. Thread: any. */
ARK_EXTERN int eventer_name_callback(const char *name, eventer_func_t callback);
/*
 * Names `callback`, with a function that describes an event using it (may be NULL).
 * Returns 0, or -1 if `name` already names another callback.
 */
ARK_EXTERN int eventer_name_callback_ext(const char *name, eventer_func_t callback,
                                         void (*describe)(char *buffer, int capacity, eventer_t e,
                                                          void *closure),
                                         void *closure);
/* Returns the callback named `name`, or NULL. */
ARK_EXTERN eventer_func_t eventer_callback_for_name(const char *name);
/* Returns the name of `callback` (static storage), or NULL if it was never named. */
ARK_EXTERN const char *eventer_name_for_callback(eventer_func_t callback);
/* Like eventer_name_for_callback(), using the describe function for `e` if one was given. */
ARK_EXTERN const char *eventer_name_for_callback_e(eventer_func_t callback, eventer_t e);

ARK_END_DECLS

#include <eventer/eventer_jobq.h>
#include <eventer/eventer_aco.h>

#endif
