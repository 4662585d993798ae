/*
 * Chains for co-routines: ecap_chain_run_aco() drives a callback chain from inside a co and
 * parks the co on an eventfd between steps. The chain's callbacks (delivered by the loop
 * while the co is parked) write the eventfd; the co wakes, writes what the chain accepts,
 * reads what it offers, and parks again until the chain is done or the time is up.
 */
#include "adapt/adapt_internal.h"

#include <eventer/eventer.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct aco_run {
    int fd;
    eventer_aco_t event;
    int signalled;
    int done;
    struct ecap_chain_result *result;
    size_t capacity;
    size_t limit;
    int failed;
};

static void wake(struct aco_run *run)
{
    if (run->signalled)
        return;
    run->signalled = 1;
    uint64_t one = 1;
    if (write(run->fd, &one, sizeof(one)) < 0)
        run->failed = 1;
}

static void on_decision(ecap_chain_t *chain, void *closure, enum ecap_outcome outcome)
{
    wake(closure);
}

static void on_body(ecap_chain_t *chain, void *closure)
{
    wake(closure);
}

static void on_vb_room(ecap_chain_t *chain, void *closure)
{
    wake(closure);
}

static void on_done(ecap_chain_t *chain, void *closure)
{
    struct aco_run *run = closure;
    run->done = 1;
    wake(run);
}

/* The eventfd is only ever waited on by the co; the eventer never calls this. */
static int never_called(eventer_t e, int mask, void *closure, struct timeval *now)
{
    return 0;
}

static const struct ecap_chain_callbacks aco_callbacks = {
    .on_decision = on_decision,
    .on_body = on_body,
    .on_vb_room = on_vb_room,
    .on_done = on_done,
};

static int collect(struct aco_run *run, ecap_chain_t *chain)
{
    struct ecap_chain_result *result = run->result;
    ecap_area_t area;
    while (ecap_chain_body_peek(chain, &area) == ECAP_OK && area.size) {
        if (area.size > run->limit - result->body_size) {
            snprintf(result->reason, sizeof(result->reason),
                     "the final body exceeds the limit of %zu bytes", run->limit);
            return adapt_fail(ECAP_E_TOO_LARGE, "ecap_chain_run_aco: %s", result->reason);
        }
        if (result->body_size + area.size + 1 > run->capacity) {
            size_t capacity = run->capacity ? run->capacity : 4096;
            while (capacity < result->body_size + area.size + 1)
                capacity *= 2;
            char *grown = realloc(result->body, capacity);
            if (!grown)
                return ECAP_E_NOMEM;
            result->body = grown;
            run->capacity = capacity;
        }
        memcpy(result->body + result->body_size, area.data, area.size);
        result->body_size += area.size;
        result->body[result->body_size] = '\0';
        ecap_chain_body_shift(chain, area.size);
    }
    return ECAP_OK;
}

static uint64_t monotonic_us(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000 + (uint64_t)now.tv_nsec / 1000;
}

/* Parks the co until a callback fired or `deadline_us` (0: none) passed; 0 or ECAP_E_TIMEOUT. */
static int park(struct aco_run *run, uint64_t deadline_us)
{
    struct timeval remaining, *timeout = NULL;
    if (deadline_us) {
        uint64_t now = monotonic_us();
        if (now >= deadline_us)
            return ECAP_E_TIMEOUT;
        uint64_t left = deadline_us - now;
        remaining.tv_sec = (time_t)(left / 1000000);
        remaining.tv_usec = (suseconds_t)(left % 1000000);
        timeout = &remaining;
    }
    uint64_t value;
    int n = eventer_aco_read(run->event, &value, sizeof(value), timeout);
    if (n < 0 && errno == ETIME)
        return ECAP_E_TIMEOUT;
    run->signalled = 0;
    return ECAP_OK;
}

int ecap_chain_run_aco(ecap_service_t *const *services, size_t count, ecap_message_t *virgin,
                       const ecap_message_t *cause, const void *body, size_t body_size,
                       const struct timeval *timeout, struct ecap_chain_result *result)
{
    return ecap_chain_run_aco_limited(services, count, virgin, cause, body, body_size, timeout,
                                      ECAP_CHAIN_RUN_BODY_LIMIT, result);
}

int ecap_chain_run_aco_limited(ecap_service_t *const *services, size_t count,
                               ecap_message_t *virgin, const ecap_message_t *cause,
                               const void *body, size_t body_size, const struct timeval *timeout,
                               size_t body_limit, struct ecap_chain_result *result)
{
    if (!result || !virgin) {
        ecap_message_free(virgin);
        return adapt_fail(ECAP_E_INVALID, "ecap_chain_run_aco: NULL message or result");
    }
    memset(result, 0, sizeof(*result));
    if (!eventer_is_aco(NULL)) {
        ecap_message_free(virgin);
        return adapt_fail(ECAP_E_WRONG_THREAD, "ecap_chain_run_aco: not inside a co-routine");
    }
    struct aco_run run = {.fd = -1, .result = result, .limit = body_limit};
    run.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (run.fd < 0) {
        ecap_message_free(virgin);
        return adapt_fail(ECAP_E_NOMEM, "ecap_chain_run_aco: eventfd: %s", strerror(errno));
    }
    eventer_t e = eventer_alloc_fd(never_called, NULL, run.fd, EVENTER_READ | EVENTER_EXCEPTION);
    run.event = e ? eventer_set_eventer_aco(e) : NULL;
    if (!run.event) {
        close(run.fd);
        ecap_message_free(virgin);
        return adapt_fail(ECAP_E_NOMEM, "ecap_chain_run_aco: out of memory");
    }
    int has_body = ecap_message_has_body(virgin);
    ecap_chain_t *chain = ecap_chain_create(services, count, virgin, cause, &aco_callbacks, &run);
    int status = chain ? ecap_chain_start(chain) : ECAP_E_INVALID;
    if (!chain)
        ecap_message_free(virgin);
    uint64_t deadline = 0;
    if (timeout)
        deadline =
            monotonic_us() + (uint64_t)timeout->tv_sec * 1000000 + (uint64_t)timeout->tv_usec;
    size_t written = 0;
    int ended = !has_body;
    while (chain && !run.done && status == ECAP_OK) {
        while (!ended && written < body_size) {
            ssize_t n =
                ecap_chain_vb_write(chain, (const char *)body + written, body_size - written);
            if (n <= 0) {
                if (n < 0)
                    ended = 1;
                break;
            }
            written += (size_t)n;
        }
        if (!ended && written == body_size) {
            ended = 1;
            ecap_chain_vb_end(chain, 1);
        }
        status = collect(&run, chain);
        if (status == ECAP_OK && !run.done)
            status = park(&run, deadline);
        if (run.failed)
            status = adapt_fail(ECAP_E_INVALID, "ecap_chain_run_aco: cannot signal the co-routine");
    }
    if (chain) {
        if (!run.done) {
            /* Time is up (or a failure): cancel, then wait for the stages to stop. */
            ecap_chain_cancel(chain);
            while (!run.done && park(&run, 0) == ECAP_OK)
                ;
        }
        result->outcome = ecap_chain_outcome(chain);
        result->body_state = ecap_chain_body_state(chain);
        if (status == ECAP_E_TOO_LARGE) {
            /* What was collected is not the body: do not hand out a part of it. */
            free(result->body);
            result->body = NULL;
            result->body_size = 0;
            result->body_state = ECAP_BODY_TRUNCATED;
        } else {
            snprintf(result->reason, sizeof(result->reason), "%s", ecap_chain_reason(chain));
        }
        ecap_message_t *message = ecap_chain_message(chain);
        if (message && status == ECAP_OK)
            result->message = ecap_message_clone(message);
        ecap_chain_free(chain);
    }
    eventer_aco_close(run.event);
    eventer_aco_free(run.event);
    return status;
}

void ecap_chain_result_release(struct ecap_chain_result *result)
{
    if (!result)
        return;
    ecap_message_free(result->message);
    free(result->body);
    memset(result, 0, sizeof(*result));
}
