/*
 * Private to the adaptation host (src/adapt): services, host transactions ("stages"),
 * bodies, chains, and the per-loop notice queues that deliver host -> adapter and
 * host -> program notifications.
 *
 * Invariants:
 *  - A stage (host transaction) and its chain belong to one loop thread (`owner_loop`);
 *    every field except the atomics (`strong`, `weak`, `stopped`) is touched only there.
 *  - Notifications are never delivered from inside the call that caused them: they are
 *    queued on the owner loop's notice queue and delivered from the eventer's wait hooks
 *    (before the wait, and after the services' resume() calls), at most
 *    ADAPT_NOTICE_BUDGET per pass so a long body cannot starve the loop.
 *  - A queued notice keeps its object alive: a stage notice holds a strong reference to the
 *    stage, a chain notice a reference to the chain.
 *  - Once `stopped` is set the host never calls the adapter transaction again, and every
 *    host-transaction method returns ECAP_E_STOPPED.
 */
#ifndef ARK_ADAPT_INTERNAL_H
#define ARK_ADAPT_INTERNAL_H

#include <ecap/host.h>

#include <mtev_log.h>

#include <pthread.h>
#include <stdint.h>

/* Loop slots a service counts live transactions in (loop index modulo this). */
#define ADAPT_MAX_LOOPS 64
/* Notices delivered per wait-hook pass before the loop is asked not to sleep. */
#define ADAPT_NOTICE_BUDGET 4096

extern mtev_log_stream_t adapt_error;
extern mtev_log_stream_t adapt_debug;

/* ---- services ---- */

enum service_state {
    SERVICE_REGISTERED = 0,
    SERVICE_STARTED = 1,
    SERVICE_STOPPED = 2,
    SERVICE_RETIRED = 3,
};

struct adapt_module;

struct ecap_service {
    const struct ecap_service_methods *methods;
    void *data;
    char *uri;
    struct adapt_module *module;    /* NULL for services registered by the program */
    int state;                      /* enum service_state; lifecycle calls only */
    int async;                      /* atomic: started and makes_async_xactions() */
    pthread_mutex_t poll_lock;      /* serialises suspend()/resume() */
    uint32_t live[ADAPT_MAX_LOOPS]; /* atomic: live transactions per loop slot */
    uint64_t suspends, resumes, xactions, live_total, xaction_resumes, skipped_resumes, misuses,
        wakes; /* atomic counters */
};

/* Registered services (in registration order). */
int adapt_service_count(void);
ecap_service_t *adapt_service_at(int index);
void adapt_count(uint64_t *counter);

/* ---- notices ---- */

struct adapt_notice {
    struct adapt_notice *next;
    int queued;
    void (*run)(struct adapt_notice *notice);
};

/* A function another thread asks the loop to run (the loop's inbox). */
struct adapt_request {
    struct adapt_request *next;
    void (*run)(void *argument);
    void (*discard)(void *argument); /* instead of run, when the loop stopped */
    void *argument;
};

struct ecap_chain;
struct adapt_co;

struct adapt_loop {
    int index;
    struct adapt_notice *head, *tail;
    int delivering;
    struct ecap_chain *chains; /* every chain made on this loop (owner thread) */
    struct adapt_co *cos;      /* co-routines of run_co that have not returned (owner thread) */
    pthread_mutex_t inbox_lock;
    struct adapt_request *inbox; /* atomic pointer, written under inbox_lock */
    int inbox_closed;            /* under inbox_lock: the loop stopped */
};

/*
 * Queues `run(argument)` to `loop`'s owner thread and wakes it. Thread: any. Returns 0, or
 * -1 once the loop stopped (nothing queued) or out of memory.
 */
int adapt_loop_post(struct adapt_loop *loop, void (*run)(void *), void (*discard)(void *),
                    void *argument);
/*
 * Wakes loop `index` unless the loops began to stop; then also counts in `*counter` (may be
 * NULL), inside the gate that keeps the host's state alive. Returns 0 or -1. Thread: any.
 */
int adapt_loop_wake(int index, uint64_t *counter);
/*
 * Marks a chain the host frees itself when its loop stops (its program co never resumes),
 * with `release_closure(closure)` (the eventfd the co waited on is not closed: the eventer
 * still holds it then).
 */
void adapt_chain_free_at_shutdown(ecap_chain_t *chain, void (*release_closure)(void *closure));
/* The loop thread stops: every live chain is ended and delivered (adapt_xaction.c). */
void adapt_chains_loop_exit(struct adapt_loop *loop);

/* The adaptation state of the calling loop thread, or NULL off the loops. */
struct adapt_loop *adapt_current_loop(void);
/* The adaptation state of loop `index`. */
struct adapt_loop *adapt_loop_at(int index);
/* Queues `notice` (no-op when already queued). Owner loop thread only. */
void adapt_notice_queue(struct adapt_loop *loop, struct adapt_notice *notice);
/* Delivers queued notices (up to the budget); returns true when some remain. */
int adapt_notices_deliver(struct adapt_loop *loop);

/* Records a failure for ecap_host_last_error() and logs it. Returns `status`. */
int adapt_fail(int status, const char *format, ...) __attribute__((format(printf, 2, 3)));
/*
 * Polls `service` as the wait hooks do: suspend (`timeout` may be lowered) or resume (with
 * the calling thread marked "inside service resume"), under the service's poll lock. Loop
 * threads only.
 */
void adapt_poll_suspend(ecap_service_t *service, struct timeval *timeout);
void adapt_poll_resume(ecap_service_t *service);
/* The service whose resume() runs on this thread, or NULL. */
ecap_service_t *adapt_in_service_resume(void);

/* ---- stages (host transactions) ---- */

struct ecap_chain;
struct adapt_stage;

enum body_kind { BODY_BUFFER = 1, BODY_STAGE = 2 };
enum body_consumer {
    CONSUMER_NONE = 0,
    CONSUMER_STAGE = 1,
    CONSUMER_PROGRAM = 2,
    CONSUMER_GONE = 3
};

/* A body as its consumer sees it: the program's virgin buffer, or a stage's adapted body. */
struct adapt_body {
    int kind;
    int consumer;               /* enum body_consumer */
    struct adapt_stage *reader; /* with CONSUMER_STAGE */
    struct ecap_chain *chain;
    int ended;        /* the producer finished */
    int drained;      /* ended and everything was consumed */
    int noted;        /* the producer said content is available (at least once) */
    int at_end;       /* ... completely */
    ecap_area_t held; /* an owning area handed out, released on the next call */
    /* BODY_BUFFER */
    char *buffer;
    size_t capacity, start, end;
    int room_wanted; /* a write was refused or make_more was asked */
    /* BODY_STAGE */
    struct adapt_stage *producer;
};

/* Content of a body for its consumer: borrowed until the next call on the body. */
int adapt_body_content(struct adapt_body *body, size_t offset, size_t size, ecap_area_t *content);
void adapt_body_shift(struct adapt_body *body, size_t size);
/* True once the body ended and everything buffered was consumed. */
int adapt_body_finished(struct adapt_body *body);

void adapt_host_lock(void);
void adapt_host_unlock(void);

#endif
