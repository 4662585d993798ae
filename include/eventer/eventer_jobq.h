/*
 * Job queues: named pools of threads that run asynchronous events, under libmtev's names.
 * Included by <eventer/eventer.h>.
 *
 * An asynchronous event (eventer_alloc_asynch()) added to a queue goes through three phases,
 * each exactly once: WORK (on a queue thread; skipped if the job's deadline passed before it
 * started), CLEANUP (on a queue thread, always), COMPLETE (on the event's owner loop thread;
 * returning 0 frees the event). The callback's `mask` is the phase; at COMPLETE it is the
 * event's own mask (EVENTER_ASYNCH_COMPLETE plus any CANCEL bits).
 *
 * A queue has: a concurrency (threads it may run, started on demand when jobs wait and no
 * thread is idle), a floor and an idle period (see below), min/max bounds on the concurrency,
 * a backlog limit honoured by the eventer_try_add_asynch*() calls, FIFO or LIFO order, and
 * subqueues: jobs carry a 64-bit subqueue id and the queue takes one job from each non-empty
 * subqueue in turn, so one busy subqueue cannot starve the others.
 *
 * Threads: a queue starts with no thread. A thread that has found no job for the idle
 * period (default 5000 ms, as in libmtev) exits while the queue has more threads than its
 * floor; the floor's threads stay, idle, until the floor is lowered or eventer_cleanup().
 * The floor never starts threads: it keeps threads that work started. Changing the floor,
 * the concurrency or the idle period applies to threads already idle (their idle time
 * counts from when they last finished a job). A queue with floor 0 goes back to no thread.
 * When no memory is left to start a thread (logged), the job stays queued for the queue's
 * other threads or the next add.
 *
 * Deadlines: a job whose deadline (`whence`) passed before it started skips WORK. With
 * EVENTER_CANCEL_DEFERRED in its mask a job still in WORK at its deadline is cancelled with
 * pthread_cancel() at its next cancellation point (sleep, read, ...); with
 * EVENTER_CANCEL_ASYNCH or EVENTER_EVIL_BRUTAL anywhere (the WORK code must then be
 * async-cancel-safe). The job thread exits; CLEANUP and COMPLETE still run once each.
 *
 * The memory-safety setting (gc/cs/none) is accepted for compatibility and has no effect.
 * Queues live until eventer_cleanup() (eventer_loop() returning).
 * All functions are safe from any thread.
 */
#ifndef EVENTER_EVENTER_JOBQ_H
#define EVENTER_EVENTER_JOBQ_H

/* A job queue (opaque). Declared before eventer.h, whose ACO part uses it. */
typedef struct _eventer_jobq eventer_jobq_t;

#include <eventer/eventer.h>

ARK_BEGIN_DECLS

/* Accepted for libmtev compatibility; no effect. */
typedef enum {
    EVENTER_JOBQ_MS_NONE = 0,
    EVENTER_JOBQ_MS_CS = 1,
    EVENTER_JOBQ_MS_GC = 2
} eventer_jobq_memory_safety_t;

/*
 * Returns the queue called `name`, creating it (concurrency 1, floor 0, no backlog limit,
 * FIFO) if needed. Returns NULL before eventer_init() or when memory is exhausted.
 */
ARK_EXTERN eventer_jobq_t *eventer_jobq_create(const char *name);
/* eventer_jobq_create() with a memory-safety setting (no effect). */
ARK_EXTERN eventer_jobq_t *eventer_jobq_create_ms(const char *name,
                                                  eventer_jobq_memory_safety_t safety);
/* The queue called `name`, or NULL. */
ARK_EXTERN eventer_jobq_t *eventer_jobq_retrieve(const char *name);
/*
 * The queue that carries completions back to e's owner loop thread. It runs no threads;
 * it is returned for introspection (name, backlog) only.
 */
ARK_EXTERN eventer_jobq_t *eventer_default_backq(eventer_t e);
/* The default job queue ("default_queue"). */
ARK_EXTERN eventer_jobq_t *eventer_default_jobq(void);

ARK_EXTERN const char *eventer_jobq_get_queue_name(eventer_jobq_t *queue);
/* Sets a short name used for thread names (copied). */
ARK_EXTERN void eventer_jobq_set_shortname(eventer_jobq_t *queue, const char *name);
ARK_EXTERN void eventer_jobq_set_lifo(eventer_jobq_t *queue, mtev_boolean lifo);
ARK_EXTERN mtev_boolean eventer_jobq_get_lifo(eventer_jobq_t *queue);
/* Sets the number of threads the queue may run (clamped to min/max, at least 1). */
ARK_EXTERN void eventer_jobq_set_concurrency(eventer_jobq_t *queue, uint32_t concurrency);
ARK_EXTERN uint32_t eventer_jobq_get_concurrency(eventer_jobq_t *queue);
/*
 * Sets the number of idle threads kept (default 0). The floor in effect is at most the
 * concurrency: eventer_jobq_get_floor() returns min(floor, concurrency), and raising the
 * concurrency later raises a clamped floor back to the value set here.
 */
ARK_EXTERN void eventer_jobq_set_floor(eventer_jobq_t *queue, uint32_t floor);
ARK_EXTERN uint32_t eventer_jobq_get_floor(eventer_jobq_t *queue);
/*
 * Sets how long a thread beyond the floor stays without a job before it exits (default
 * 5000 ms; 0 = as soon as it finds no job). Not in libmtev, whose period is fixed at 5 s.
 */
ARK_EXTERN void eventer_jobq_set_idle_timeout_ms(eventer_jobq_t *queue, uint32_t milliseconds);
ARK_EXTERN uint32_t eventer_jobq_get_idle_timeout_ms(eventer_jobq_t *queue);
/*
 * The queue's threads now: running a job or idle (0 for a back queue, which runs none).
 * Not in libmtev's API (its statistics call this "concurrency"; here that name is the
 * limit). A snapshot: threads start and exit concurrently.
 */
ARK_EXTERN uint32_t eventer_jobq_get_thread_count(eventer_jobq_t *queue);
/* Of those, the threads waiting for a job now. A snapshot. */
ARK_EXTERN uint32_t eventer_jobq_get_idle_thread_count(eventer_jobq_t *queue);
/* Sets bounds for the concurrency (0 = unbounded max). */
ARK_EXTERN void eventer_jobq_set_min_max(eventer_jobq_t *queue, uint32_t min, uint32_t max);
ARK_EXTERN void eventer_jobq_get_min_max(eventer_jobq_t *queue, uint32_t *min, uint32_t *max);
/* Sets the backlog limit for eventer_try_add_asynch*() (0 = none). */
ARK_EXTERN void eventer_jobq_set_max_backlog(eventer_jobq_t *queue, uint32_t max_backlog);
ARK_EXTERN uint32_t eventer_jobq_get_max_backlog(eventer_jobq_t *queue);
/* Jobs queued and not yet started. */
ARK_EXTERN uint32_t eventer_jobq_get_backlog(eventer_jobq_t *queue);
/* Jobs started and not yet past CLEANUP. */
ARK_EXTERN uint32_t eventer_jobq_get_inflight(eventer_jobq_t *queue);
ARK_EXTERN eventer_jobq_memory_safety_t eventer_jobq_get_memory_safety(eventer_jobq_t *queue);
/* The asynch event whose WORK or CLEANUP runs on the calling thread, or NULL. */
ARK_EXTERN eventer_t eventer_jobq_inflight(void);

/*
 * Calls `visit(queue, closure)` for every job queue created by name (the default queue, the
 * configured jobq_* queues and any made with eventer_jobq_create*(), not the per-loop
 * completion queues), oldest first, and returns how many it visited. The set is the one at
 * the time of the call: queues created meanwhile may be missed, none is visited twice. The
 * registry is not locked while `visit` runs, so it may call any eventer_jobq_* function
 * (the getters give name, concurrency, backlog, in-flight...). Thread: any, between
 * eventer_init() and eventer_cleanup(); returns 0 before, or when memory is exhausted.
 */
ARK_EXTERN int eventer_jobq_process_each(void (*visit)(eventer_jobq_t *queue, void *closure),
                                         void *closure);

/*
 * Queues asynchronous event `e` (mask must include EVENTER_ASYNCH; fatal otherwise) on
 * `queue` (NULL = default queue). The eventer owns the reference. If e's owner is not a loop
 * thread, COMPLETE runs on loop thread 0. Called from inside a job, the new job inherits the
 * current job's subqueue. Without memory for the job's record (logged, naming the call)
 * the event is dropped unrun: freed, with no phase called. Once queued, a job's COMPLETE
 * reaches its loop even when the loop's command queue cannot grow.
 */
ARK_EXTERN void eventer_add_asynch(eventer_jobq_t *queue, eventer_t e);
/* eventer_add_asynch() on subqueue `id`. */
ARK_EXTERN void eventer_add_asynch_subqueue(eventer_jobq_t *queue, eventer_t e, uint64_t id);
/*
 * From inside a WORK phase only (fatal elsewhere): queues `e` as a dependency of the
 * current job, which does not complete until `e` has passed its CLEANUP.
 */
ARK_EXTERN void eventer_add_asynch_dep(eventer_jobq_t *queue, eventer_t e);
ARK_EXTERN void eventer_add_asynch_dep_subqueue(eventer_jobq_t *queue, eventer_t e, uint64_t id);
/*
 * Like eventer_add_asynch*(), but refuses (returns false, and the caller still owns `e`)
 * when the queue's backlog is at its limit, the eventer is shutting down, or there is no
 * memory for the job's record (logged).
 */
ARK_EXTERN mtev_boolean eventer_try_add_asynch(eventer_jobq_t *queue, eventer_t e);
ARK_EXTERN mtev_boolean eventer_try_add_asynch_subqueue(eventer_jobq_t *queue, eventer_t e,
                                                        uint64_t id);
ARK_EXTERN mtev_boolean eventer_try_add_asynch_dep(eventer_jobq_t *queue, eventer_t e);
ARK_EXTERN mtev_boolean eventer_try_add_asynch_dep_subqueue(eventer_jobq_t *queue, eventer_t e,
                                                            uint64_t id);

ARK_END_DECLS

#endif
