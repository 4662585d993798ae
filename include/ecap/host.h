/*
 * The adaptation API, Arkenstone's host: what an Arkenstone program uses to load adapter
 * modules, configure their services and run HTTP messages through chains of services, on
 * the eventer's loop threads. (Adapters include <ecap/adapter.h> only.)
 *
 * Life of a program:
 *
 *     eventer_init();
 *     ecap_host_init();                          // hooks the polling into every loop thread
 *     ecap_module_load("adapters/passthru.so");  // or ecap_host_configure(section)
 *     ecap_service_t *s = ecap_service_find("ecap://arkenstone/adapters/passthru");
 *     ecap_service_configure(s, options, count); ecap_service_start(s);
 *     // on a loop thread, per message:
 *     ecap_chain_t *c = ecap_chain_create(&s, 1, virgin, NULL, &callbacks, closure);
 *     ecap_chain_start(c); ... ecap_chain_vb_write(c, ...) ... on_decision ... on_body ...
 *     ... on_done: ecap_chain_free(c);
 *     // at the end, once no chain is live:
 *     ecap_host_cleanup();                       // stops, retires, unloads
 *
 * Chains. A chain runs one message through services 1..N: the adapted message and body of
 * stage i are the virgin message and body of stage i+1 (bytes are pulled through without
 * copies where adapters allow). The program writes the virgin body into the chain (bounded:
 * back-pressure), learns the outcome in on_decision, and reads the final body.
 *
 * Polling. ecap_host_init() registers eventer wait hooks: before a loop thread waits, each
 * started async service with live transactions owned by that thread gets suspend(&timeout)
 * and the thread waits no longer than the lowest timeout; after the wait each gets resume().
 * Services whose makes_async_xactions() is false are never polled.
 *
 * Errors. Functions return ECAP_OK or a negative ECAP_E_* status, or NULL; the reason is
 * logged on "error/ecap" and kept, per thread, for ecap_host_last_error().
 */
#ifndef ECAP_HOST_H
#define ECAP_HOST_H

#include <ecap/adapter.h>

#include <mtev_conf.h>
#include <mtev_defines.h>

#include <sys/types.h>

ARK_BEGIN_DECLS

/* ---- the host ---- */

/*
 * Starts the adaptation host: registers the polling hooks on every loop thread. Call after
 * eventer_init(). Returns ECAP_OK (also when already started) or ECAP_E_INVALID (eventer not
 * running, or no free wait-hook slot). Thread: any non-loop thread.
 */
ARK_EXTERN int ecap_host_init(void);
/*
 * Stops every started service, retires every service, unloads modules and unregisters the
 * hooks. Call once no chain is live (e.g. after eventer_loop() returned). Thread: not a loop
 * thread.
 */
ARK_EXTERN void ecap_host_cleanup(void);
/* The host object adapters see (for ecap_host_register_service of built-in services). */
ARK_EXTERN ecap_host_t *ecap_host(void);
/* The text of the last failure reported on the calling thread ("" if none). */
ARK_EXTERN const char *ecap_host_last_error(void);

/*
 * Loads the module at `path` with dlopen and calls its entry point, which registers its
 * services. Errors (each naming the module): ECAP_E_MODULE (cannot be opened, or its
 * register function failed), ECAP_E_NOT_FOUND (no `ecap_module` symbol), ECAP_E_VERSION
 * (built for another API version). Loading the same path twice returns ECAP_E_EXISTS.
 * Thread: any, not concurrently with chains using services of that module being created.
 */
ARK_EXTERN int ecap_module_load(const char *path);

/*
 * Reads an adaptation section of the configuration:
 *     <adaptation>
 *       <module path="/usr/lib/arkenstone/adapters/modifying.so"/>
 *       <service uri="ecap://arkenstone/adapters/modifying">
 *         <option name="victim" value="foo"/> <option name="replacement" value="bar"/>
 *       </service>
 *     </adaptation>
 * loads each module, then configures and starts each listed service. Returns ECAP_OK or the
 * first failure (later entries are not applied).
 */
ARK_EXTERN int ecap_host_configure(mtev_conf_section_t adaptation_section);

/* ---- services ---- */

typedef struct ecap_service ecap_service_t;

/* The registered service with this URI, or NULL. Thread: any. */
ARK_EXTERN ecap_service_t *ecap_service_find(const char *uri);
/* The service's URI. */
ARK_EXTERN const char *ecap_service_uri(ecap_service_t *service);
/*
 * Calls the service's configure(). A bad option returns ECAP_E_BAD_OPTION with the
 * adapter's explanation in ecap_host_last_error(), e.g.
 * `service ecap://.../async: option delay_ms="soon": not a number of milliseconds`.
 */
ARK_EXTERN int ecap_service_configure(ecap_service_t *service, const struct ecap_option *options,
                                      size_t count);
/* Calls start() then makes_async_xactions(). ECAP_E_SERVICE_STATE once retired. */
ARK_EXTERN int ecap_service_start(ecap_service_t *service);
/* Calls stop(): chains can no longer be created with it until the next start. */
ARK_EXTERN int ecap_service_stop(ecap_service_t *service);
/* True once started and async (the host polls it). */
ARK_EXTERN int ecap_service_is_async(ecap_service_t *service);
/* The service's wants_url() answer (true when it has none). */
ARK_EXTERN int ecap_service_wants_url(ecap_service_t *service, const char *url);

/* Counters, for tests and diagnostics (read while the service may be in use: approximate). */
struct ecap_service_stats {
    uint64_t suspends;        /* suspend() calls */
    uint64_t resumes;         /* resume() calls */
    uint64_t xactions;        /* transactions made */
    uint64_t live_xactions;   /* made and not yet stopped */
    uint64_t xaction_resumes; /* adapter transaction resume() calls */
    uint64_t skipped_resumes; /* resume requests dropped because the transaction stopped */
    uint64_t misuses;         /* host calls refused with an error */
    uint64_t wakes;           /* ecap_host_xaction_wake() calls */
};
ARK_EXTERN void ecap_service_get_stats(ecap_service_t *service, struct ecap_service_stats *stats);

/* ---- messages (host side) ---- */

/* New empty messages the caller owns (free with ecap_message_free). NULL if out of memory. */
ARK_EXTERN ecap_message_t *ecap_message_new_request(void);
ARK_EXTERN ecap_message_t *ecap_message_new_response(void);
/*
 * Parses an HTTP/1.x message head (request or status line, header fields, empty line; lines
 * end in CRLF or LF) from `data`. Returns a new message and stores the head length in
 * `*head_length`; the body (if Content-Length > 0 or Transfer-Encoding is present, or for a
 * response without either: to the end) follows. Returns NULL when the head is malformed or
 * incomplete (reason in ecap_host_last_error()).
 */
ARK_EXTERN ecap_message_t *ecap_message_parse(const char *data, size_t length, size_t *head_length);
/*
 * Writes the message head (first line, fields, empty line; CRLF line ends) into a malloc'd
 * buffer stored in `*text` (NUL-terminated; the caller frees it) and its length in
 * `*length`. Returns ECAP_OK or ECAP_E_NOMEM.
 */
ARK_EXTERN int ecap_message_serialize(const ecap_message_t *message, char **text, size_t *length);

/* ---- chains ---- */

typedef struct ecap_chain ecap_chain_t;

/* How a chain ended its decision. */
enum ecap_outcome {
    ECAP_OUTCOME_PENDING = 0,   /* not decided yet */
    ECAP_OUTCOME_VIRGIN = 1,    /* every stage used the virgin message */
    ECAP_OUTCOME_ADAPTED = 2,   /* the final message differs from the virgin one */
    ECAP_OUTCOME_BLOCKED = 3,   /* a stage blocked the message */
    ECAP_OUTCOME_ABORTED = 4,   /* a stage failed */
    ECAP_OUTCOME_CANCELLED = 5, /* the program cancelled the chain */
};

/* What ecap_chain_body_state() reports about the final body. */
enum ecap_body_state {
    ECAP_BODY_NONE = 0,      /* the final message has no body (or the outcome is not a message) */
    ECAP_BODY_MORE = 1,      /* bytes may still come */
    ECAP_BODY_END = 2,       /* complete: everything was read */
    ECAP_BODY_TRUNCATED = 3, /* ended early: everything that came was read */
};

/*
 * The program's callbacks, all called on the chain's loop thread, never from inside a chain
 * function the program called (they are delivered after it returns). Any may be NULL.
 */
struct ecap_chain_callbacks {
    /* The outcome is known: ecap_chain_message() is the message to forward (for VIRGIN and
     * ADAPTED). Called once (not after a cancel). */
    void (*on_decision)(ecap_chain_t *chain, void *closure, enum ecap_outcome outcome);
    /* More final body can be read, or it ended (see ecap_chain_body_state()). */
    void (*on_body)(ecap_chain_t *chain, void *closure);
    /* There is room for more virgin body (after ecap_chain_vb_write() accepted less). */
    void (*on_vb_room)(ecap_chain_t *chain, void *closure);
    /* Every stage stopped and the final body was read (or cancelled): free the chain now. */
    void (*on_done)(ecap_chain_t *chain, void *closure);
};

/*
 * Creates a chain through `count` (>= 1) started services. Takes ownership of `virgin`
 * (freed with the chain); `cause` (may be NULL) is borrowed until on_done. The chain belongs
 * to the calling loop thread: every chain call must come from it. NULL (with a reason) off a
 * loop thread, for a stopped service, or out of memory; `virgin` is then still the caller's.
 */
ARK_EXTERN ecap_chain_t *ecap_chain_create(ecap_service_t *const *services, size_t count,
                                           ecap_message_t *virgin, const ecap_message_t *cause,
                                           const struct ecap_chain_callbacks *callbacks,
                                           void *closure);
/* Sets a host meta-information option every stage sees (copied). Before start. */
ARK_EXTERN int ecap_chain_set_option(ecap_chain_t *chain, const char *name, const char *value);
/* Bytes of virgin body the chain buffers (default 64 KiB, at least 1). Before start. */
ARK_EXTERN int ecap_chain_set_vb_capacity(ecap_chain_t *chain, size_t capacity);
/* Makes the first stage's transaction and starts it. */
ARK_EXTERN int ecap_chain_start(ecap_chain_t *chain);
/*
 * Offers virgin body bytes; returns how many were accepted (copied), possibly 0 when the
 * buffer is full (wait for on_vb_room), or a negative status (ECAP_E_NO_BODY, ECAP_E_VB_STATE
 * after vb_end). Bytes offered after every stage stopped wanting the body are accepted and
 * dropped.
 */
ARK_EXTERN ssize_t ecap_chain_vb_write(ecap_chain_t *chain, const void *data, size_t length);
/* The virgin body ended (at_end) or was cut short (!at_end). */
ARK_EXTERN int ecap_chain_vb_end(ecap_chain_t *chain, int at_end);
/*
 * Zero-copy read of the final body: stores the next buffered bytes in `*content` (borrowed,
 * valid until the next call on the chain) or an empty area when none is buffered now.
 * Returns ECAP_OK, or ECAP_E_NO_BODY when the outcome has no body / is not known.
 */
ARK_EXTERN int ecap_chain_body_peek(ecap_chain_t *chain, ecap_area_t *content);
/* Consumes `size` bytes of what ecap_chain_body_peek() showed. */
ARK_EXTERN int ecap_chain_body_shift(ecap_chain_t *chain, size_t size);
/* Copies up to `capacity` final-body bytes into `buffer`; returns the count (0: none now). */
ARK_EXTERN ssize_t ecap_chain_body_read(ecap_chain_t *chain, void *buffer, size_t capacity);
/* The final body's state. */
ARK_EXTERN enum ecap_body_state ecap_chain_body_state(ecap_chain_t *chain);
/* The outcome so far. */
ARK_EXTERN enum ecap_outcome ecap_chain_outcome(ecap_chain_t *chain);
/* The message to forward (VIRGIN or ADAPTED; owned by the chain), else NULL. */
ARK_EXTERN ecap_message_t *ecap_chain_message(ecap_chain_t *chain);
/* The reason given by the stage that blocked or aborted, "" otherwise (owned by the chain). */
ARK_EXTERN const char *ecap_chain_reason(ecap_chain_t *chain);
/*
 * The meta-information value `name` reported by the last stage that has it (e.g. an
 * "X-Virus-ID"), copied into an owning area the caller releases; empty if none. A live stage
 * is asked (option()); for a stopped one the host answers from the pairs the adapter's
 * visit_options() gave just before stop(), so this works from on_done too.
 */
ARK_EXTERN ecap_area_t ecap_chain_adapter_option(ecap_chain_t *chain, const char *name);
/* True once on_done was (or is about to be) delivered. */
ARK_EXTERN int ecap_chain_is_done(ecap_chain_t *chain);
/*
 * Gives up: every live stage is stopped (its adapter transaction gets stop()), no further
 * callback except on_done is delivered. Idempotent.
 */
ARK_EXTERN void ecap_chain_cancel(ecap_chain_t *chain);
/*
 * Frees the chain. Allowed before start, from or after on_done; a live chain is cancelled
 * first and freed when done. Never touches the chain afterwards.
 */
ARK_EXTERN void ecap_chain_free(ecap_chain_t *chain);

/* ---- chains from co-routines ---- */

/* What ecap_chain_run_aco() brings back. */
struct ecap_chain_result {
    enum ecap_outcome outcome;
    ecap_message_t *message; /* the message to forward (the caller's copy), NULL if none */
    char *body;              /* the final body (malloc'd, NUL after the last byte), or NULL */
    size_t body_size;
    enum ecap_body_state body_state;
    char reason[160]; /* why a stage blocked or aborted, "" otherwise */
};

/* The final-body limit ecap_chain_run_aco() applies (64 MiB). */
#define ECAP_CHAIN_RUN_BODY_LIMIT ((size_t)64 * 1024 * 1024)

/*
 * From inside a co-routine on a loop thread (eventer_aco_start*()): runs `virgin` (owned by
 * the call from then on, also on error) with its body `body[0..body_size)` (borrowed for the
 * call; ignored when the message has no body) through `count` services, waiting in blocking
 * style (other co-routines and the loop run meanwhile) until the outcome is known and the
 * final body was read completely, or until `timeout` (relative; NULL = none) expires. The
 * final body is collected in memory, at most `body_limit` bytes of it: for bodies that may
 * not fit, use the callback chain. Returns ECAP_OK with `*result` filled (release it with
 * ecap_chain_result_release()), ECAP_E_TIMEOUT (the chain was cancelled; `*result` holds
 * outcome CANCELLED or what was known), ECAP_E_TOO_LARGE (the final body grew past
 * `body_limit`: the chain was cancelled, logged on "error/ecap"; `*result` keeps the outcome
 * and the reason, no message, no body, body_state TRUNCATED), ECAP_E_WRONG_THREAD outside a
 * co-routine, or another status from the chain.
 */
ARK_EXTERN int ecap_chain_run_aco_limited(ecap_service_t *const *services, size_t count,
                                          ecap_message_t *virgin, const ecap_message_t *cause,
                                          const void *body, size_t body_size,
                                          const struct timeval *timeout, size_t body_limit,
                                          struct ecap_chain_result *result);
/* ecap_chain_run_aco_limited() with body_limit ECAP_CHAIN_RUN_BODY_LIMIT. */
ARK_EXTERN int ecap_chain_run_aco(ecap_service_t *const *services, size_t count,
                                  ecap_message_t *virgin, const ecap_message_t *cause,
                                  const void *body, size_t body_size, const struct timeval *timeout,
                                  struct ecap_chain_result *result);
/* Frees what a result holds and empties it. */
ARK_EXTERN void ecap_chain_result_release(struct ecap_chain_result *result);

ARK_END_DECLS

#endif
