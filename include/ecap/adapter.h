/*
 * The adaptation API, adapter side: what an adapter module implements (a module entry point,
 * services, transactions) and the host objects it calls (the host, host transactions, weak
 * references). Include this in adapter modules; it needs no library at link time.
 *
 * ---- Module ----
 * A module is a shared object exporting `const struct ecap_module_entry ecap_module` (the
 * symbol ECAP_MODULE_SYMBOL). The host dlopen()s it, checks `api_major`/`api_minor`
 * (a different major, or a minor newer than the host's, is refused with an error naming the
 * module), then calls `register_services(host, error)` once, which calls
 * ecap_host_register_service() for each service the module offers.
 *
 * ---- Service life cycle (host -> adapter, all on one thread at a time) ----
 *   register -> configure* -> start -> [transactions] -> stop -> (configure/start again)...
 *   -> retire (last call: the adapter frees the service).
 * makes_async_xactions() is asked once after each start(); only services answering true are
 * ever polled with suspend()/resume().
 *
 * ---- Transaction life cycle ----
 * For each message the host calls make_xaction(service, hostx, ...) and later start(). The
 * adapter then makes exactly ONE decision through the host transaction, in start() or later
 * (from resume(), a body notification, or a co-routine running on the owner loop):
 *   use_virgin()       forward the message unchanged (the virgin body must be unconsumed);
 *   use_adapted(msg)   forward `msg` instead; if it has a body the host calls ab_make() and
 *                      pulls the adapted body with ab_content()/ab_content_shift();
 *   block_virgin()     deny the message;
 *   adaptation_aborted() the adapter failed.
 * Independently the adapter may read the virgin body: vb_make(), then for each
 * note_vb_content_available() read with vb_content() and consume with vb_content_shift(),
 * until note_vb_content_done(at_end). It closes its side with vb_stop_making() (or never
 * opens it: vb_discard()); once note_vb_content_done() was delivered and every byte consumed
 * the side also closes by itself (vb_content() then yields an empty area and vb_stop_making()
 * is a no-op), so forgetting vb_stop_making() never leaves a transaction hanging (a known
 * eCAP trap). The adapted body ends with note_ab_content_done(at_end).
 * The host stops the transaction (stop(), the last call it makes to it) once the decision is
 * made and both body sides are closed, or earlier when it gives up (client gone, shutdown).
 *
 * ---- Threads ----
 * Every call the host makes into a service or transaction happens on a loop thread; every
 * call into a given transaction happens on the loop thread that owns it. Service methods may
 * be called from several loop threads (each owns some transactions), but suspend() and
 * resume() of one service are never called concurrently. An adapter must call the host only
 * from the loop thread owning the transaction, except for the calls marked "Thread: any"
 * (references, weak references, wake, log). A host call from another thread returns
 * ECAP_E_WRONG_THREAD and is logged; it changes nothing.
 *
 * ---- Re-entrancy ----
 * A host call never calls back into the adapter synchronously, except to pull bytes
 * (vb_content of a chained stage pulls the previous stage's ab_content). Notifications a call
 * causes (ab_make, note_vb_content_*, resume, stop) are delivered after the adapter's code
 * returns to the host.
 *
 * ---- Asynchronous services (eCAP 1.0's polling protocol, plus a wake call) ----
 * Before a loop thread waits for I/O the host calls suspend(&timeout) on each async service
 * that has transactions on that thread; the service may only LOWER the timeout (to ask to be
 * polled sooner). After the wait it calls resume(). The two are not paired and come in any
 * order and number. Inside resume() the adapter may call only ecap_host_xaction_resume() on
 * transactions whose work is finished (any other host call fails with
 * ECAP_E_IN_SERVICE_RESUME); the host then calls that transaction's resume() later, on its
 * owner thread, unless the transaction was stopped meanwhile (a stopped transaction is never
 * resumed). Beyond eCAP, a worker may call ecap_host_xaction_wake() (thread-safe) when it
 * finishes, so the owner loop wakes and polls the service at once instead of at the next
 * timeout.
 */
#ifndef ECAP_ADAPTER_H
#define ECAP_ADAPTER_H

#include <ecap/ecap.h>

#include <sys/time.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ecap_host ecap_host_t;
typedef struct ecap_host_xaction ecap_host_xaction_t;
typedef struct ecap_weak ecap_weak_t;
struct ecap_service_methods;
struct ecap_xaction_methods;

/* ---- the host ---- */

/* Log levels for ecap_host_log(). */
enum ecap_log_level {
    ECAP_LOG_ERROR = 0,
    ECAP_LOG_NOTICE = 1,
    ECAP_LOG_DEBUG = 2,
};

/* The host's operations (implemented by the host). */
struct ecap_host_methods {
    unsigned version; /* 1 */
    /* version 1 */
    /* The host's URI, e.g. "ecap://arkenstone/host". Thread: any. */
    const char *(*uri)(ecap_host_t *host);
    /*
     * Registers a service. `methods` must stay valid until the service is retired;
     * `service` is the adapter's own pointer, passed back to every service method. Returns
     * ECAP_OK, ECAP_E_VERSION (table version 0 or a required member NULL), ECAP_E_EXISTS
     * (URI taken), ECAP_E_NOMEM. On error the host never calls the service (not even retire).
     */
    int (*register_service)(ecap_host_t *host, const struct ecap_service_methods *methods,
                            void *service);
    /* Writes one log line (no trailing newline needed). Thread: any. */
    void (*log)(ecap_host_t *host, enum ecap_log_level level, const char *line);
    /* New empty messages the caller owns (NULL when memory is exhausted). */
    ecap_message_t *(*new_request)(ecap_host_t *host);
    ecap_message_t *(*new_response)(ecap_host_t *host);
};

struct ecap_host {
    const struct ecap_host_methods *methods;
};

static inline int ecap_host_register_service(ecap_host_t *host,
                                             const struct ecap_service_methods *methods,
                                             void *service)
{
    return host->methods->register_service(host, methods, service);
}

/* printf-style ecap_host_methods.log. Thread: any. */
static inline void ecap_host_log(ecap_host_t *host, enum ecap_log_level level, const char *format,
                                 ...) __attribute__((format(printf, 3, 4)));
static inline void ecap_host_log(ecap_host_t *host, enum ecap_log_level level, const char *format,
                                 ...)
{
    char line[512];
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(line, sizeof(line), format, arguments);
    va_end(arguments);
    host->methods->log(host, level, line);
}

/* ---- the host transaction (what an adapter transaction calls) ---- */

/*
 * Implemented by the host. Unless marked otherwise: Thread: the owner loop thread only;
 * returns ECAP_OK or a status; any call after the host stopped the transaction returns
 * ECAP_E_STOPPED; a call other than resume() inside a service's resume() returns
 * ECAP_E_IN_SERVICE_RESUME. Misuse is logged and changes nothing.
 *
 * Lifetime: the handle given to make_xaction() is valid until stop() returns. To keep it
 * longer (a worker still holds it), take a reference with ref() (strong: the handle stays
 * valid, calls return ECAP_E_STOPPED once stopped) or weak() (does not keep the handle;
 * lock() reports whether the transaction is still live).
 */
struct ecap_host_xaction_methods {
    unsigned version; /* 1 */
    /* version 1 */
    /* The message being adapted (owned by the host). NULL after stop or on misuse. */
    ecap_message_t *(*virgin)(ecap_host_xaction_t *hostx);
    /* For a response: the request that caused it (owned by the host); NULL if none. */
    ecap_message_t *(*cause)(ecap_host_xaction_t *hostx);
    /* The message given to use_adapted(); NULL before. */
    ecap_message_t *(*adapted)(ecap_host_xaction_t *hostx);

    /*
     * Decision: forward the virgin message. ECAP_E_DECIDED if already decided,
     * ECAP_E_VB_STATE if the adapter consumed virgin-body bytes (vb_content_shift) already.
     * The adapter's virgin-body side is closed by it.
     */
    int (*use_virgin)(ecap_host_xaction_t *hostx);
    /*
     * Decision: forward `adapted` instead. On ECAP_OK the host owns `adapted`; on error the
     * caller still does. If `adapted` has a body the host calls ab_make() next (after this
     * returns). ECAP_E_DECIDED if already decided.
     */
    int (*use_adapted)(ecap_host_xaction_t *hostx, ecap_message_t *adapted);
    /* Decision: deny the message (the host answers with an error, e.g. 403). */
    int (*block_virgin)(ecap_host_xaction_t *hostx);
    /* Progress report while the decision takes long: a state text and progress in [0,1]. */
    int (*adaptation_delayed)(ecap_host_xaction_t *hostx, const char *state, double progress);
    /* Decision (or, after use_adapted, the end of the adapted body): the adapter failed. */
    int (*adaptation_aborted)(ecap_host_xaction_t *hostx, const char *reason);
    /*
     * Asks the host to call this transaction's resume() later on its owner thread (after
     * the current call returns; requests before that are merged into one). Allowed on the
     * owner thread and inside any service's resume() on any loop thread. If the transaction
     * is stopped before the host gets to it, resume() is not called.
     */
    int (*resume)(ecap_host_xaction_t *hostx);

    /* The adapter will never read the virgin body. ECAP_E_VB_STATE after vb_make(). */
    int (*vb_discard)(ecap_host_xaction_t *hostx);
    /*
     * The adapter will read the virgin body: note_vb_content_available() and
     * note_vb_content_done() follow. ECAP_E_NO_BODY if the virgin message has none,
     * ECAP_E_VB_STATE if called twice or after vb_discard().
     */
    int (*vb_make)(ecap_host_xaction_t *hostx);
    /* The adapter is done with the virgin body; the rest is discarded by the host. */
    int (*vb_stop_making)(ecap_host_xaction_t *hostx);
    /*
     * The adapter needs more virgin body to make progress (the host asks its producer).
     * ECAP_E_VB_NOT_MADE before vb_make().
     */
    int (*vb_make_more)(ecap_host_xaction_t *hostx);
    /*
     * Stores in `*content` up to `size` (ECAP_NSIZE: all) bytes of buffered virgin body
     * starting `offset` bytes past what was consumed so far; an empty area when nothing is
     * buffered there. The area is borrowed: valid until this transaction's next
     * vb_content_shift() or until the adapter returns to the host. ECAP_E_VB_NOT_MADE before
     * vb_make().
     */
    int (*vb_content)(ecap_host_xaction_t *hostx, size_t offset, size_t size, ecap_area_t *content);
    /* Consumes `size` bytes (at most what is buffered). ECAP_E_VB_NOT_MADE before vb_make. */
    int (*vb_content_shift)(ecap_host_xaction_t *hostx, size_t size);
    /* More adapted body can be read with ab_content(). ECAP_E_AB_STATE before ab_make(). */
    int (*note_ab_content_available)(ecap_host_xaction_t *hostx);
    /* The adapted body is complete (at_end) or truncated (!at_end). ECAP_E_AB_STATE twice. */
    int (*note_ab_content_done)(ecap_host_xaction_t *hostx, int at_end);

    /* Host meta-information (e.g. "X-Client-IP"); empty borrowed area if unknown. */
    ecap_area_t (*option)(ecap_host_xaction_t *hostx, const char *name);
    /* Visits each host meta-information pair; returns 0 or the visitor's non-zero value. */
    int (*visit_options)(ecap_host_xaction_t *hostx, ecap_visitor_fn visitor, void *visitor_data);

    /* Adds a strong reference (keeps the handle valid). Thread: any. */
    void (*ref)(ecap_host_xaction_t *hostx);
    /* Drops a strong reference. Thread: any. */
    void (*unref)(ecap_host_xaction_t *hostx);
    /* A new weak reference (release it with ecap_weak_release); NULL if out of memory. */
    ecap_weak_t *(*weak)(ecap_host_xaction_t *hostx);
    /*
     * Beyond eCAP: wakes the owner loop so it polls this transaction's service (suspend/
     * resume) now. Call it from a worker after the transaction's work is ready. Thread: any;
     * lock-free, async-signal-unsafe. Returns ECAP_OK or ECAP_E_STOPPED.
     */
    int (*wake)(ecap_host_xaction_t *hostx);
    /* The host this transaction belongs to. Thread: any. */
    ecap_host_t *(*host)(ecap_host_xaction_t *hostx);
    /*
     * Beyond eCAP: runs `function(hostx, argument)` as a co-routine on the owner loop
     * thread, started after the current call returns. Inside it the adapter may call this
     * transaction's host methods and wait in blocking style with the host's co-routine I/O
     * (Arkenstone: eventer_aco_read/write/connect/sleep with timeouts) instead of running
     * threads. The host keeps the handle valid until `function` returns. If the host stops
     * the transaction meanwhile, stop() is delivered while the co-routine waits: when it
     * resumes, host calls return ECAP_E_STOPPED, so the adapter must keep (reference-count)
     * the state the co-routine uses. ECAP_E_UNSUPPORTED on hosts without co-routines.
     */
    int (*run_co)(ecap_host_xaction_t *hostx,
                  void (*function)(ecap_host_xaction_t *hostx, void *argument), void *argument);
};

struct ecap_host_xaction {
    const struct ecap_host_xaction_methods *methods;
};

/*
 * Weak references: safe to take (ecap_host_xaction_weak), test (ecap_weak_lock) and drop
 * (ecap_weak_release) from any thread. lock() returns a strong reference (release it with
 * ecap_host_xaction_unref) while the transaction is live, and NULL ("gone") once the host
 * stopped it, even if other strong references keep the handle allocated.
 */
struct ecap_weak_methods {
    unsigned version; /* 1 */
    ecap_host_xaction_t *(*lock)(ecap_weak_t *weak);
    void (*release)(ecap_weak_t *weak);
};

struct ecap_weak {
    const struct ecap_weak_methods *methods;
};

static inline ecap_message_t *ecap_host_xaction_virgin(ecap_host_xaction_t *x)
{
    return x->methods->virgin(x);
}
static inline ecap_message_t *ecap_host_xaction_cause(ecap_host_xaction_t *x)
{
    return x->methods->cause(x);
}
static inline ecap_message_t *ecap_host_xaction_adapted(ecap_host_xaction_t *x)
{
    return x->methods->adapted(x);
}
static inline int ecap_host_xaction_use_virgin(ecap_host_xaction_t *x)
{
    return x->methods->use_virgin(x);
}
static inline int ecap_host_xaction_use_adapted(ecap_host_xaction_t *x, ecap_message_t *m)
{
    return x->methods->use_adapted(x, m);
}
static inline int ecap_host_xaction_block_virgin(ecap_host_xaction_t *x)
{
    return x->methods->block_virgin(x);
}
static inline int ecap_host_xaction_adaptation_delayed(ecap_host_xaction_t *x, const char *state,
                                                       double progress)
{
    return x->methods->adaptation_delayed(x, state, progress);
}
static inline int ecap_host_xaction_adaptation_aborted(ecap_host_xaction_t *x, const char *reason)
{
    return x->methods->adaptation_aborted(x, reason);
}
static inline int ecap_host_xaction_resume(ecap_host_xaction_t *x)
{
    return x->methods->resume(x);
}
static inline int ecap_host_xaction_vb_discard(ecap_host_xaction_t *x)
{
    return x->methods->vb_discard(x);
}
static inline int ecap_host_xaction_vb_make(ecap_host_xaction_t *x)
{
    return x->methods->vb_make(x);
}
static inline int ecap_host_xaction_vb_stop_making(ecap_host_xaction_t *x)
{
    return x->methods->vb_stop_making(x);
}
static inline int ecap_host_xaction_vb_make_more(ecap_host_xaction_t *x)
{
    return x->methods->vb_make_more(x);
}
static inline int ecap_host_xaction_vb_content(ecap_host_xaction_t *x, size_t offset, size_t size,
                                               ecap_area_t *content)
{
    return x->methods->vb_content(x, offset, size, content);
}
static inline int ecap_host_xaction_vb_content_shift(ecap_host_xaction_t *x, size_t size)
{
    return x->methods->vb_content_shift(x, size);
}
static inline int ecap_host_xaction_note_ab_content_available(ecap_host_xaction_t *x)
{
    return x->methods->note_ab_content_available(x);
}
static inline int ecap_host_xaction_note_ab_content_done(ecap_host_xaction_t *x, int at_end)
{
    return x->methods->note_ab_content_done(x, at_end);
}
static inline ecap_area_t ecap_host_xaction_option(ecap_host_xaction_t *x, const char *name)
{
    return x->methods->option(x, name);
}
static inline void ecap_host_xaction_ref(ecap_host_xaction_t *x)
{
    x->methods->ref(x);
}
static inline void ecap_host_xaction_unref(ecap_host_xaction_t *x)
{
    x->methods->unref(x);
}
static inline ecap_weak_t *ecap_host_xaction_weak(ecap_host_xaction_t *x)
{
    return x->methods->weak(x);
}
static inline int ecap_host_xaction_wake(ecap_host_xaction_t *x)
{
    return x->methods->wake(x);
}
static inline ecap_host_t *ecap_host_xaction_host(ecap_host_xaction_t *x)
{
    return x->methods->host(x);
}
static inline int ecap_host_xaction_run_co(ecap_host_xaction_t *x,
                                           void (*function)(ecap_host_xaction_t *, void *),
                                           void *argument)
{
    return x->methods->run_co(x, function, argument);
}
static inline ecap_host_xaction_t *ecap_weak_lock(ecap_weak_t *weak)
{
    return weak->methods->lock(weak);
}
static inline void ecap_weak_release(ecap_weak_t *weak)
{
    if (weak)
        weak->methods->release(weak);
}

/* ---- what the adapter implements: transactions ---- */

/*
 * An adapter transaction's methods; `xaction` is the pointer make_xaction() returned. Every
 * call happens on the owner loop thread, never after stop(). Members marked optional may be
 * NULL; calling a host function that needs a NULL member fails with ECAP_E_UNSUPPORTED.
 */
struct ecap_xaction_methods {
    unsigned version; /* 1 */
    /* version 1 */
    /* Begin. The decision may be made here. Required. */
    void (*start)(void *xaction);
    /*
     * The host is done with the transaction: the last call it makes. The host-transaction
     * handle is valid until this returns (longer only with a reference). The adapter frees
     * its state here, or later if its own threads still use it. Required.
     */
    void (*stop)(void *xaction);
    /* Continue after ecap_host_xaction_resume() (async services). Optional. */
    void (*resume)(void *xaction);

    /* Adapted body (needed when use_adapted() is given a message with a body). */
    /* The host will read the adapted body. */
    void (*ab_make)(void *xaction);
    /* The host needs more adapted body (optional). */
    void (*ab_make_more)(void *xaction);
    /* The host will read no more adapted body (the adapter may stop its virgin body too). */
    void (*ab_stop_making)(void *xaction);
    /* The host will never read the adapted body (optional). */
    void (*ab_discard)(void *xaction);
    /*
     * Stores up to `size` (ECAP_NSIZE: all) buffered adapted-body bytes from `offset` in
     * `*content`: an owning area, or a borrowed one valid until the next call on this
     * transaction. Empty when nothing is buffered (also after the end). Returns ECAP_OK.
     */
    int (*ab_content)(void *xaction, size_t offset, size_t size, ecap_area_t *content);
    /* The host consumed the first `size` buffered bytes. */
    void (*ab_content_shift)(void *xaction, size_t size);

    /* Virgin body (needed after vb_make()). */
    void (*note_vb_content_available)(void *xaction);
    /* The virgin body ended (at_end) or was truncated (!at_end). Called once. */
    void (*note_vb_content_done)(void *xaction, int at_end);

    /* Meta-information the adapter reports (optional): value of `name`, empty if none. */
    ecap_area_t (*option)(void *xaction, const char *name);
    /* Visits each meta-information pair (optional); returns 0 or the visitor's value. */
    int (*visit_options)(void *xaction, ecap_visitor_fn visitor, void *visitor_data);
};

/* ---- what the adapter implements: services ---- */

/*
 * A service's methods; `service` is the pointer given to ecap_host_register_service().
 * Thread: loop threads (configure/start/stop/retire also from the host's main thread),
 * never two lifecycle calls at once.
 */
struct ecap_service_methods {
    unsigned version; /* 1 */
    /* version 1 */
    /* The service's globally unique URI (static or service-owned string). Required. */
    const char *(*uri)(void *service);
    /* Changes whenever the configuration changes (optional; NULL = "1"). */
    const char *(*tag)(void *service);
    /*
     * Applies `count` options. An unknown option or a bad value returns ECAP_E_BAD_OPTION
     * with `error` naming the option and why (ecap_error_set()); the service is then left
     * as it was. Optional (NULL: options are refused unless count == 0).
     */
    int (*configure)(void *service, const struct ecap_option *options, size_t count,
                     struct ecap_error *error);
    /* Ready for transactions. May be called again after stop(). Optional. */
    int (*start)(void *service, struct ecap_error *error);
    /* No transactions until the next start(). Optional. */
    void (*stop)(void *service);
    /* The last call: no transactions ever; free the service. Optional. */
    void (*retire)(void *service);
    /* Cheap pre-filter: non-zero if the service wants messages for `url`. Optional (all). */
    int (*wants_url)(void *service, const char *url);
    /*
     * Creates a transaction for `hostx`: stores the adapter's transaction pointer in
     * `*xaction` and its methods in `*methods` (valid until stop() returns). The host calls
     * start() later. Returns ECAP_OK, or a status (the host then gives up on the message as
     * aborted and never calls the transaction). Required.
     */
    int (*make_xaction)(void *service, ecap_host_xaction_t *hostx,
                        const struct ecap_xaction_methods **methods, void **xaction);
    /* True if the service wants suspend()/resume() polling. Optional (false). */
    int (*makes_async_xactions)(void *service);
    /*
     * The loop thread is about to wait up to `*timeout`; lower it to be polled sooner
     * (raising it has no effect). Required when makes_async_xactions() is true.
     */
    void (*suspend)(void *service, struct timeval *timeout);
    /*
     * The wait is over: call ecap_host_xaction_resume() for the transactions that became
     * ready (and only that host call). Required when makes_async_xactions() is true.
     */
    void (*resume)(void *service);
};

/* ---- the module entry point ---- */

/* The name of the symbol a module exports. */
#define ECAP_MODULE_SYMBOL "ecap_module"

struct ecap_module_entry {
    unsigned api_major; /* ECAP_API_MAJOR the module was built with */
    unsigned api_minor; /* ECAP_API_MINOR the module was built with */
    const char *name;   /* the module's name, for messages */
    /* Registers the module's services; returns ECAP_OK or a status with `error` filled. */
    int (*register_services)(ecap_host_t *host, struct ecap_error *error);
};

#ifdef __cplusplus
#define ECAP_MODULE_LINKAGE extern "C"
#else
#define ECAP_MODULE_LINKAGE extern
#endif

/* Declares a module's entry point: ECAP_MODULE("name", register_function); */
#define ECAP_MODULE(module_name, register_function)                                            \
    ECAP_MODULE_LINKAGE __attribute__((visibility("default")))                                 \
    const struct ecap_module_entry ecap_module;                                                \
    const struct ecap_module_entry ecap_module = {ECAP_API_MAJOR, ECAP_API_MINOR, module_name, \
                                                  register_function}

#ifdef __cplusplus
}
#endif

#endif
