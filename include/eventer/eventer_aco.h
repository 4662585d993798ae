/*
 * Eventer ACO: co-routines that run on the eventer's loop threads and wait for I/O, timers and
 * jobs in a blocking style. Included by <eventer/eventer.h>; libmtev's names and meanings.
 *
 * Model. eventer_aco_start() creates a co-routine ("co") pinned for its whole life to one loop
 * thread: the calling loop thread, or loop thread 0 when called from elsewhere. The cos of a
 * thread take turns on that thread's shared stack; a co that is switched out keeps the live
 * part of its stack in a right-sized "save stack". Inside a co, the eventer_aco_* calls that
 * would have to wait (read, write, accept, connect, sleep, jobs) register what they wait for
 * with the eventer, yield to the loop, and return when it happened, on the same thread. Keep
 * a co's stack small where it waits: what is live there is copied on every switch (set the
 * debug stream "debug/eventer/aco" on to see each co's stack size as it is resumed).
 *
 * A co's function takes no argument (read it with eventer_aco_arg()) and must end with
 * aco_exit(). One that returns instead is reported ("... returned without calling
 * aco_exit()") and the process aborts, except for cos started with EVENTER_ACO_MAY_RETURN
 * (the listener's aco dispatch does that: there the function may simply return).
 *
 * errno. Each co has its own errno: the value an eventer_aco_* call sets is the one the co
 * reads after it, whatever other cos did while it waited.
 *
 * Events. eventer_set_eventer_aco() converts a classic fd event (unregistered, e.g. an
 * eventer_alloc_copy() of the event whose callback runs) into an eventer_aco_t bound to the
 * calling co; the co then owns the caller's reference. Only that co may wait on it. Between
 * calls the descriptor may stay registered with the eventer (it is taken out again the first
 * time it turns ready while nobody waits); eventer_aco_close() and eventer_aco_free() take it
 * out. When a co ends, events still bound to it are released as eventer_aco_free() would
 * (their descriptors are not closed). A classic eventer_read/write/accept/close called on an
 * eventer_aco_t (cast to eventer_t) acts as the eventer_aco_* counterpart with no timeout
 * (the event's default timeout still applies); a classic fd call on a classic event from
 * inside a co is misuse (it cannot wait) and is reported.
 *
 * Timeouts are relative (`struct timeval *`, NULL = none, or the event's default set by
 * eventer_aco_set_*_timeout()). One timer covers a whole call, however many times it waits.
 * On expiry the call returns -1 with errno == ETIME.
 *
 * Misuse (an eventer_aco_* call outside a co, on an event that is not an aco event or is
 * bound to another co, converting an event that is still registered...) is reported with a
 * message naming the call and the process aborts, as the eventer does for its own misuse.
 *
 * Shutdown. When the eventer stops, cos that are still waiting are destroyed where they wait:
 * their code does not run again (memory only they point to is lost), their timers and jobs
 * are dropped and the events bound to them are released.
 *
 * Threads. Everything here is for the co's own loop thread unless said otherwise. From
 * another thread (a job thread, say), eventer_aco_read/write/accept make a single
 * non-blocking attempt and may return -1 with errno EAGAIN.
 */
#ifndef EVENTER_EVENTER_ACO_H
#define EVENTER_EVENTER_ACO_H

#include <eventer/eventer.h>

#include <aco/aco.h>

ARK_BEGIN_DECLS

/*
 * An fd event converted for a co. The struct is never defined: the type exists so the
 * compiler keeps aco events and classic events apart. Casting to eventer_t is allowed and
 * gives the classic view of the same event (see the classic-call rule above).
 */
typedef struct _event_aco *eventer_aco_t;
/* A gate: lets a co start several jobs and wait for all of them (eventer_aco_gate_wait()). */
typedef struct _event_aco_gate *eventer_aco_gate_t;

/* The fd opset of converted events (it wraps the event's previous opset). */
ARK_EXTERN extern eventer_fd_opset_t eventer_aco_fd_opset;

/* ---- starting co-routines ---- */

/* The co's function may return; the eventer calls aco_exit() for it. */
#define EVENTER_ACO_MAY_RETURN 0x1

/*
 * Starts `func` as a co with eventer_aco_arg() == `closure`. On a loop thread (outside a co)
 * the co is created there and runs at once until it first waits or ends, then this returns.
 * From inside a co, it is created on the same loop thread and first runs at the next loop
 * iteration. From any other thread (once eventer_init() ran, before eventer_loop() too) it
 * is queued to loop thread 0 and runs there. Fatal before eventer_init(). The closure stays
 * the caller's (the eventer never frees it).
 */
ARK_EXTERN void eventer_aco_start(void (*func)(void), void *closure);
/*
 * eventer_aco_start() with a save-stack size hint: `stack_size` bytes are allocated for the
 * co's save stack at its first switch (it grows and shrinks as needed). A size above the
 * default shared stack (ACO_SHARE_STACK_DEFAULT_SIZE) selects a shared stack of at least
 * that size, kept by the loop thread for all cos that ask for it.
 */
ARK_EXTERN void eventer_aco_start_stack(void (*func)(void), void *closure, size_t stack_size);
/*
 * The general form: `owner` is the loop thread to run on (a value that is not a loop thread
 * means "as eventer_aco_start() chooses"); `flags` is 0 or EVENTER_ACO_MAY_RETURN.
 */
ARK_EXTERN void eventer_aco_start_on(pthread_t owner, void (*func)(void), void *closure,
                                     size_t stack_size, int flags);
/* The closure of the running co. Fatal outside a co started by eventer_aco_start*(). */
ARK_EXTERN void *eventer_aco_arg(void);
/*
 * e non-NULL: true if e is converted to an aco event. e NULL: true if the caller runs inside
 * a co started by eventer_aco_start*().
 */
ARK_EXTERN mtev_boolean eventer_is_aco(eventer_t e);

/*
 * Sleeps `duration` (NULL or {0,0}: yield until the next loop iteration), letting the loop
 * and other cos run. Inside a co only.
 */
ARK_EXTERN void eventer_aco_sleep(struct timeval *duration);
/* The seed's spelling of eventer_aco_sleep(). */
ARK_EXTERN void mtev_aco_sleep(struct timeval *duration);

/* ---- converting events ---- */

/*
 * Converts fd event `e` for the calling co and returns it as an eventer_aco_t (the same
 * object). `e` must be an fd event with a descriptor, not registered with the eventer (call
 * eventer_remove_fde() first), not already converted (convert a fresh event, or an
 * eventer_alloc_copy(), which is always classic). The event moves to the co's loop thread;
 * its closure (eventer_aco_get_closure()) and opset context are kept. The caller's reference
 * passes to the co. Inside a co only.
 */
ARK_EXTERN eventer_aco_t eventer_set_eventer_aco(eventer_t e);
/*
 * With `co` a co started by eventer_aco_start*() on the calling loop thread: converts `e`
 * for that co (the same rules). With `co` NULL: reverts an aco event to the classic event it
 * was (callback, opset, opset context restored; unregistered), returns NULL; the reference
 * the co held passes back to the caller, who may eventer_add() it again as a classic event
 * (also right after an eventer_aco_* call on it returned). Owner loop thread only.
 */
ARK_EXTERN eventer_aco_t eventer_set_eventer_aco_co(eventer_t e, aco_t *co);

/* ---- I/O on aco events (inside the event's co) ---- */

/*
 * Reads up to `length` bytes, waiting until some are available. Returns the byte count, 0
 * at end of stream, or -1 with errno (ETIME on timeout).
 */
ARK_EXTERN int eventer_aco_read(eventer_aco_t e, void *buffer, size_t length,
                                struct timeval *timeout);
/*
 * Writes up to `length` bytes, waiting until the descriptor takes some. Returns the byte
 * count (possibly short, as write(2)), or -1 with errno (ETIME on timeout).
 */
ARK_EXTERN int eventer_aco_write(eventer_aco_t e, const void *buffer, size_t length,
                                 struct timeval *timeout);
/*
 * Accepts a connection on listening event `e`, waiting for one. Returns the new descriptor
 * (close-on-exec, in blocking mode: call eventer_set_fd_nonblocking() before making an event
 * of it), or -1 with errno (ETIME on timeout).
 */
ARK_EXTERN int eventer_aco_accept(eventer_aco_t e, struct sockaddr *address, socklen_t *length,
                                  struct timeval *timeout);
/*
 * Connects e's (non-blocking) socket to `address` and waits for the outcome. Returns 0, or
 * -1 with errno (the connection's error, or ETIME on timeout). The write default timeout
 * applies when `timeout` is NULL.
 */
ARK_EXTERN int eventer_aco_connect(eventer_aco_t e, const struct sockaddr *address,
                                   socklen_t length, struct timeval *timeout);
/*
 * Closes e's descriptor through its opset (no waiting); the event stays allocated and bound.
 * Returns 0, or -1 with errno (EBADF when already closed). Owner loop thread only.
 */
ARK_EXTERN int eventer_aco_close(eventer_aco_t e);
/*
 * Drops the co's reference to `e` (freeing it unless someone else holds one) and unbinds it
 * from the co; the descriptor is taken out of the eventer, not closed. Owner loop thread.
 */
ARK_EXTERN void eventer_aco_free(eventer_aco_t e);
/* Sets (copying `*timeout`) or clears (NULL) the default timeout of each kind of call. */
ARK_EXTERN void eventer_aco_set_accept_timeout(eventer_aco_t e, struct timeval *timeout);
ARK_EXTERN void eventer_aco_set_read_timeout(eventer_aco_t e, struct timeval *timeout);
ARK_EXTERN void eventer_aco_set_write_timeout(eventer_aco_t e, struct timeval *timeout);
/* The event's closure (as given when the classic event was made) and its descriptor. */
ARK_EXTERN void *eventer_aco_get_closure(eventer_aco_t e);
ARK_EXTERN void eventer_aco_set_closure(eventer_aco_t e, void *closure);
ARK_EXTERN int eventer_aco_get_fd(eventer_aco_t e);

/* ---- jobs from co-routines (inside a co) ---- */

/*
 * Runs `func(closure)` in the WORK phase of a job on `queue` (NULL = the default job queue),
 * subqueue `id`, and waits for the job's COMPLETE phase; the co resumes on its own thread.
 * `closure` must not point into the co's stack (a job thread would touch the shared stack
 * while other cos use it): that is reported as misuse.
 */
ARK_EXTERN void eventer_aco_simple_asynch_queue_subqueue(eventer_asynch_simple_func_t func,
                                                         void *closure, eventer_jobq_t *queue,
                                                         uint64_t id);
/* The same, but returns false at once (nothing queued) when the queue's backlog is full. */
ARK_EXTERN mtev_boolean eventer_aco_try_simple_asynch_queue_subqueue(
    eventer_asynch_simple_func_t func, void *closure, eventer_jobq_t *queue, uint64_t id);
/*
 * Queues the job under `gate` and returns at once; eventer_aco_gate_wait(gate) waits for it.
 * Returns nothing; the gate must belong to the calling loop thread.
 */
ARK_EXTERN void eventer_aco_simple_asynch_queue_subqueue_gated(eventer_aco_gate_t gate,
                                                               eventer_asynch_simple_func_t func,
                                                               void *closure, eventer_jobq_t *queue,
                                                               uint64_t id);
#define eventer_aco_simple_asynch(func, closure) \
    eventer_aco_simple_asynch_queue_subqueue(func, closure, NULL, 0)
#define eventer_aco_simple_asynch_queue(func, closure, queue) \
    eventer_aco_simple_asynch_queue_subqueue(func, closure, queue, 0)
#define eventer_aco_try_simple_asynch(func, closure) \
    eventer_aco_try_simple_asynch_queue_subqueue(func, closure, NULL, 0)
#define eventer_aco_try_simple_asynch_queue(func, closure, queue) \
    eventer_aco_try_simple_asynch_queue_subqueue(func, closure, queue, 0)
#define eventer_aco_simple_asynch_gated(gate, func, closure) \
    eventer_aco_simple_asynch_queue_subqueue_gated(gate, func, closure, NULL, 0)
#define eventer_aco_simple_asynch_queue_gated(gate, func, closure, queue) \
    eventer_aco_simple_asynch_queue_subqueue_gated(gate, func, closure, queue, 0)

/*
 * Runs a job whose `func` is told its phase: WORK and CLEANUP on a job thread, COMPLETE on
 * the co's loop thread just before the co resumes. `deadline` (absolute, NULL = none): a job
 * still queued at its deadline skips WORK (CLEANUP and COMPLETE still run).
 */
ARK_EXTERN void eventer_aco_asynch_queue_subqueue_deadline(eventer_asynch_func_t func,
                                                           void *closure, eventer_jobq_t *queue,
                                                           uint64_t id, struct timeval *deadline);
/* The same, gated (no waiting here). */
ARK_EXTERN void eventer_aco_asynch_queue_subqueue_deadline_gated(eventer_aco_gate_t gate,
                                                                 eventer_asynch_func_t func,
                                                                 void *closure,
                                                                 eventer_jobq_t *queue, uint64_t id,
                                                                 struct timeval *deadline);
/* The same as the simple form's try: false when the backlog is full. */
ARK_EXTERN mtev_boolean eventer_aco_try_asynch_queue_subqueue_deadline(eventer_asynch_func_t func,
                                                                       void *closure,
                                                                       eventer_jobq_t *queue,
                                                                       uint64_t id,
                                                                       struct timeval *deadline);
#define eventer_aco_asynch(func, closure) \
    eventer_aco_asynch_queue_subqueue_deadline(func, closure, NULL, 0, NULL)
#define eventer_aco_asynch_queue(func, closure, queue) \
    eventer_aco_asynch_queue_subqueue_deadline(func, closure, queue, 0, NULL)
#define eventer_aco_asynch_queue_subqueue(func, closure, queue, id) \
    eventer_aco_asynch_queue_subqueue_deadline(func, closure, queue, id, NULL)
#define eventer_aco_try_asynch(func, closure) \
    eventer_aco_try_asynch_queue_subqueue_deadline(func, closure, NULL, 0, NULL)
#define eventer_aco_try_asynch_queue(func, closure, queue) \
    eventer_aco_try_asynch_queue_subqueue_deadline(func, closure, queue, 0, NULL)
#define eventer_aco_asynch_gated(gate, func, closure) \
    eventer_aco_asynch_queue_subqueue_deadline_gated(gate, func, closure, NULL, 0, NULL)
#define eventer_aco_asynch_queue_gated(gate, func, closure, queue) \
    eventer_aco_asynch_queue_subqueue_deadline_gated(gate, func, closure, queue, 0, NULL)
#define eventer_aco_asynch_queue_subqueue_gated(gate, func, closure, queue, id) \
    eventer_aco_asynch_queue_subqueue_deadline_gated(gate, func, closure, queue, id, NULL)

/*
 * Runs classic asynchronous event `e` (eventer_alloc_asynch*()): its callback is called for
 * WORK, CLEANUP and COMPLETE as a job would call it (return values ignored; e's deadline
 * and CANCEL bits apply), and the co waits until COMPLETE. `e` itself is never queued nor
 * freed: the caller keeps it.
 */
ARK_EXTERN void eventer_aco_run_asynch_queue_subqueue(eventer_jobq_t *queue, eventer_t e,
                                                      uint64_t id);
ARK_EXTERN void eventer_aco_run_asynch_queue_subqueue_gated(eventer_aco_gate_t gate,
                                                            eventer_jobq_t *queue, eventer_t e,
                                                            uint64_t id);
/* Like the above; false (nothing queued, no waiting) when the queue's backlog is full. */
ARK_EXTERN mtev_boolean eventer_aco_try_run_asynch_queue_subqueue(eventer_jobq_t *queue,
                                                                  eventer_t e, uint64_t id);
ARK_EXTERN mtev_boolean eventer_aco_try_run_asynch_queue_subqueue_gated(eventer_aco_gate_t gate,
                                                                        eventer_jobq_t *queue,
                                                                        eventer_t e, uint64_t id);
#define eventer_aco_run_asynch(e)          eventer_aco_run_asynch_queue_subqueue(NULL, e, 0)
#define eventer_aco_run_asynch_queue(q, e) eventer_aco_run_asynch_queue_subqueue(q, e, 0)
#define eventer_aco_run_asynch_gated(g, e) \
    eventer_aco_run_asynch_queue_subqueue_gated(g, NULL, e, 0)
#define eventer_aco_run_asynch_queue_gated(g, q, e) \
    eventer_aco_run_asynch_queue_subqueue_gated(g, q, e, 0)
#define eventer_aco_try_run_asynch(e)          eventer_aco_try_run_asynch_queue_subqueue(NULL, e, 0)
#define eventer_aco_try_run_asynch_queue(q, e) eventer_aco_try_run_asynch_queue_subqueue(q, e, 0)
#define eventer_aco_try_run_asynch_gated(g, e) \
    eventer_aco_try_run_asynch_queue_subqueue_gated(g, NULL, e, 0)
#define eventer_aco_try_run_asynch_queue_gated(g, q, e) \
    eventer_aco_try_run_asynch_queue_subqueue_gated(g, q, e, 0)

/*
 * A new gate for the calling co (inside a co). Gated jobs count on it; eventer_aco_gate_wait()
 * waits until every one of them has completed, then frees the gate. A co that ends without
 * waiting on its gate is reported on "error/eventer" (its jobs still run).
 */
ARK_EXTERN eventer_aco_gate_t eventer_aco_gate(void);
/* Waits for all of the gate's jobs (none: returns at once) and frees it. Its co only. */
ARK_EXTERN void eventer_aco_gate_wait(eventer_aco_gate_t gate);
/*
 * Holds: a way for any thread to wake a co that waits for something other than a job. Each
 * eventer_aco_gate_hold() counts on the gate as one more outstanding job would, and
 * eventer_aco_gate_release() completes it: eventer_aco_gate_wait() returns once every job
 * and every hold is done, with no polling. Hold: the gate's co only, before it waits.
 * Release: exactly once per hold, from any thread; on the gate's loop thread the count drops
 * at once, from elsewhere the release is queued to that loop. The gate's memory lives until
 * every hold is released, even past its co and its loop: a release after the loop stopped
 * (eventer_shutdown(), or even after eventer_cleanup() returned) does nothing but drop the
 * hold, and the last one frees the gate. Like every cross-thread call, a release must not
 * race with eventer_cleanup() itself.
 */
ARK_EXTERN void eventer_aco_gate_hold(eventer_aco_gate_t gate);
ARK_EXTERN void eventer_aco_gate_release(eventer_aco_gate_t gate);

/* ---- introspection (any thread) ---- */

typedef struct eventer_aco_stats {
    uint64_t live;             /* cos started and not yet ended */
    uint64_t started;          /* cos started since the process began */
    uint64_t save_stack_bytes; /* bytes allocated for the save stacks of live cos */
    uint64_t resumes;          /* times a co was resumed (approximate while loops run) */
} eventer_aco_stats_t;

/* Fills `*stats` (counters are read without stopping the loops). */
ARK_EXTERN void eventer_aco_get_stats(eventer_aco_stats_t *stats);

ARK_END_DECLS

#endif
