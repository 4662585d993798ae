/*
 * Asynchronous adapter: ecap://arkenstone/adapters/async "analyses" each message on a pool
 * of worker threads (the analysis is a configurable delay), then the host resumes the
 * transaction, which forwards the message unchanged or blocks it.
 *
 * Options: workers (threads, 1..64, default 2), delay_ms (analysis time, default 10),
 * poll_ms (how soon to be polled while analyses run, default 300, as eCAP's sample asks),
 * wake (1: a worker wakes the host as soon as an analysis finished, default 1; 0: pure
 * eCAP polling), block (a substring: messages whose URI contains it are blocked; default
 * none).
 *
 * Threads. Workers never call the host except ecap_host_xaction_wake() (thread-safe). A
 * finished transaction goes on the service's ready list; the host's suspend() sees it and
 * asks not to sleep, resume() calls ecap_host_xaction_resume() for each ready transaction
 * that was not stopped. stop() marks the transaction stopped and wakes its worker, which
 * drops it (honouring stop: no resume request after stop). One mutex guards the queues and
 * the per-transaction flags; a transaction is freed when both the host (after stop) and the
 * worker (after it is done with it) released it.
 */
#include <ecap/adapter.h>

#include <errno.h>
#include <pthread.h>
#include <strings.h>
#include <time.h>

#define ASYNC_URI   "ecap://arkenstone/adapters/async"
#define MAX_WORKERS 64

struct async_xaction {
    struct async_service *service;
    ecap_host_xaction_t *hostx; /* strong reference while a worker may use it */
    int references;             /* under the service lock: host + queue/worker */
    int stopped;                /* under the service lock */
    int resumed;
    struct timespec due;
    struct async_xaction *next;
};

struct async_service {
    pthread_mutex_t lock;
    pthread_cond_t work;
    pthread_t threads[MAX_WORKERS];
    int running;  /* workers started */
    int quitting; /* workers must exit */
    unsigned workers, delay_ms, poll_ms;
    int wake;
    char *block;
    struct async_xaction *todo_head, *todo_tail;
    struct async_xaction *ready;
    unsigned analysing; /* queued or being analysed */
};

static const char *async_uri(void *service)
{
    return ASYNC_URI;
}

/* Drops a reference; the caller holds the service lock. Returns what to free, or NULL. */
static struct async_xaction *release_locked(struct async_xaction *x)
{
    return --x->references == 0 ? x : NULL;
}

static void free_xaction(struct async_xaction *x)
{
    if (!x)
        return;
    ecap_host_xaction_unref(x->hostx);
    free(x);
}

static void *worker_main(void *argument)
{
    struct async_service *s = argument;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->quitting && !s->todo_head)
            pthread_cond_wait(&s->work, &s->lock);
        if (s->quitting)
            break;
        struct async_xaction *x = s->todo_head;
        s->todo_head = x->next;
        if (!s->todo_head)
            s->todo_tail = NULL;
        x->next = NULL;
        /* The analysis: wait until due, unless the host stopped the transaction meanwhile. */
        while (!x->stopped && !s->quitting) {
            int status = pthread_cond_timedwait(&s->work, &s->lock, &x->due);
            if (status == ETIMEDOUT)
                break;
        }
        if (x->stopped || s->quitting) {
            s->analysing--;
            struct async_xaction *dead = release_locked(x);
            if (dead) {
                pthread_mutex_unlock(&s->lock);
                free_xaction(dead);
                pthread_mutex_lock(&s->lock);
            }
            continue;
        }
        x->next = s->ready;
        s->ready = x;
        s->analysing--;
        ecap_host_xaction_t *hostx = x->hostx;
        int wake = s->wake;
        if (wake) {
            /* The ready list holds x (and its strong reference) until resume() takes it. */
            ecap_host_xaction_ref(hostx);
            pthread_mutex_unlock(&s->lock);
            ecap_host_xaction_wake(hostx);
            ecap_host_xaction_unref(hostx);
            pthread_mutex_lock(&s->lock);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static int parse_unsigned(const char *text, unsigned minimum, unsigned maximum, unsigned *value)
{
    char *end = NULL;
    errno = 0;
    unsigned long parsed = strtoul(text, &end, 10);
    if (end == text || *end != '\0' || errno != 0 || text[0] == '-' || parsed < minimum ||
        parsed > maximum)
        return -1;
    *value = (unsigned)parsed;
    return 0;
}

static int async_configure(void *data, const struct ecap_option *options, size_t count,
                           struct ecap_error *error)
{
    struct async_service *s = data;
    unsigned workers = s->workers, delay_ms = s->delay_ms, poll_ms = s->poll_ms, wake = s->wake;
    const char *block = NULL;
    for (size_t i = 0; i < count; i++) {
        const char *name = options[i].name, *value = options[i].value;
        if (strcmp(name, "workers") == 0) {
            if (parse_unsigned(value, 1, MAX_WORKERS, &workers) < 0)
                return ecap_error_set(error, ECAP_E_BAD_OPTION,
                                      "option workers=\"%s\": not a number from 1 to %d", value,
                                      MAX_WORKERS);
        } else if (strcmp(name, "delay_ms") == 0) {
            if (parse_unsigned(value, 0, 3600000, &delay_ms) < 0)
                return ecap_error_set(error, ECAP_E_BAD_OPTION,
                                      "option delay_ms=\"%s\": not a number of milliseconds",
                                      value);
        } else if (strcmp(name, "poll_ms") == 0) {
            if (parse_unsigned(value, 0, 3600000, &poll_ms) < 0)
                return ecap_error_set(error, ECAP_E_BAD_OPTION,
                                      "option poll_ms=\"%s\": not a number of milliseconds", value);
        } else if (strcmp(name, "wake") == 0) {
            if (parse_unsigned(value, 0, 1, &wake) < 0)
                return ecap_error_set(error, ECAP_E_BAD_OPTION, "option wake=\"%s\": not 0 or 1",
                                      value);
        } else if (strcmp(name, "block") == 0) {
            block = value;
        } else {
            return ecap_error_set(error, ECAP_E_BAD_OPTION, "unknown option %s", name);
        }
    }
    char *block_copy = block && *block ? strdup(block) : NULL;
    if (block && *block && !block_copy)
        return ecap_error_set(error, ECAP_E_NOMEM, "out of memory");
    pthread_mutex_lock(&s->lock);
    if (s->running && workers != s->workers) {
        pthread_mutex_unlock(&s->lock);
        free(block_copy);
        return ecap_error_set(error, ECAP_E_BAD_OPTION,
                              "option workers: cannot change while started");
    }
    s->workers = workers;
    s->delay_ms = delay_ms;
    s->poll_ms = poll_ms;
    s->wake = (int)wake;
    if (block) {
        free(s->block);
        s->block = block_copy;
    }
    pthread_mutex_unlock(&s->lock);
    return ECAP_OK;
}

static void stop_workers(struct async_service *s)
{
    pthread_mutex_lock(&s->lock);
    unsigned running = s->running ? s->workers : 0;
    s->quitting = 1;
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->lock);
    for (unsigned i = 0; i < running; i++)
        pthread_join(s->threads[i], NULL);
    pthread_mutex_lock(&s->lock);
    s->running = 0;
    s->quitting = 0;
    pthread_mutex_unlock(&s->lock);
}

static int async_start(void *data, struct ecap_error *error)
{
    struct async_service *s = data;
    pthread_mutex_lock(&s->lock);
    if (s->running) {
        pthread_mutex_unlock(&s->lock);
        return ECAP_OK;
    }
    unsigned started = 0;
    for (; started < s->workers; started++)
        if (pthread_create(&s->threads[started], NULL, worker_main, s) != 0)
            break;
    s->running = started > 0;
    unsigned wanted = s->workers;
    s->workers = started;
    pthread_mutex_unlock(&s->lock);
    if (started < wanted) {
        stop_workers(s);
        pthread_mutex_lock(&s->lock);
        s->workers = wanted;
        pthread_mutex_unlock(&s->lock);
        return ecap_error_set(error, ECAP_E_NOMEM, "cannot start worker thread %u of %u",
                              started + 1, wanted);
    }
    return ECAP_OK;
}

static void async_stop_service(void *data)
{
    stop_workers(data);
}

static void async_retire(void *data)
{
    struct async_service *s = data;
    stop_workers(s);
    /* Transactions still listed belong to a host that is going away: drop them. */
    struct async_xaction *lists[2] = {s->todo_head, s->ready};
    for (int i = 0; i < 2; i++) {
        for (struct async_xaction *x = lists[i], *next; x; x = next) {
            next = x->next;
            free_xaction(release_locked(x));
        }
    }
    free(s->block);
    pthread_cond_destroy(&s->work);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static int async_makes_async_xactions(void *service)
{
    return 1;
}

static void async_suspend(void *data, struct timeval *timeout)
{
    struct async_service *s = data;
    pthread_mutex_lock(&s->lock);
    long cap_us = -1;
    if (s->ready)
        cap_us = 0;
    else if (s->analysing)
        cap_us = (long)s->poll_ms * 1000;
    pthread_mutex_unlock(&s->lock);
    if (cap_us >= 0 &&
        (timeout->tv_sec > cap_us / 1000000 ||
         (timeout->tv_sec == cap_us / 1000000 && timeout->tv_usec > cap_us % 1000000))) {
        timeout->tv_sec = cap_us / 1000000;
        timeout->tv_usec = cap_us % 1000000;
    }
}

static void async_resume(void *data)
{
    struct async_service *s = data;
    pthread_mutex_lock(&s->lock);
    struct async_xaction *ready = s->ready;
    s->ready = NULL;
    /* Ask the host about every live one; the host owns what happens next. */
    for (struct async_xaction *x = ready; x; x = x->next)
        if (!x->stopped)
            ecap_host_xaction_resume(x->hostx);
    struct async_xaction *dead = NULL;
    for (struct async_xaction *x = ready, *next; x; x = next) {
        next = x->next;
        if (release_locked(x)) {
            x->next = dead;
            dead = x;
        }
    }
    pthread_mutex_unlock(&s->lock);
    for (struct async_xaction *x = dead, *next; x; x = next) {
        next = x->next;
        free_xaction(x);
    }
}

static void async_xaction_start(void *xaction)
{
    struct async_xaction *x = xaction;
    struct async_service *s = x->service;
    clock_gettime(CLOCK_REALTIME, &x->due);
    pthread_mutex_lock(&s->lock);
    x->due.tv_sec += s->delay_ms / 1000;
    x->due.tv_nsec += (long)(s->delay_ms % 1000) * 1000000;
    if (x->due.tv_nsec >= 1000000000) {
        x->due.tv_sec++;
        x->due.tv_nsec -= 1000000000;
    }
    x->references++; /* the queue's */
    if (s->todo_tail)
        s->todo_tail->next = x;
    else
        s->todo_head = x;
    s->todo_tail = x;
    s->analysing++;
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->lock);
}

static void async_xaction_resume(void *xaction)
{
    struct async_xaction *x = xaction;
    struct async_service *s = x->service;
    x->resumed = 1;
    ecap_message_t *virgin = ecap_host_xaction_virgin(x->hostx);
    int blocked = 0;
    pthread_mutex_lock(&s->lock);
    if (s->block && virgin && ecap_message_kind(virgin) == ECAP_MESSAGE_REQUEST) {
        ecap_area_t uri = ecap_message_uri(virgin);
        blocked = memmem(uri.data, uri.size, s->block, strlen(s->block)) != NULL;
    }
    pthread_mutex_unlock(&s->lock);
    if (blocked)
        ecap_host_xaction_block_virgin(x->hostx);
    else
        ecap_host_xaction_use_virgin(x->hostx);
}

static void async_xaction_stop(void *xaction)
{
    struct async_xaction *x = xaction;
    struct async_service *s = x->service;
    pthread_mutex_lock(&s->lock);
    x->stopped = 1;
    pthread_cond_broadcast(&s->work);
    struct async_xaction *dead = release_locked(x);
    pthread_mutex_unlock(&s->lock);
    free_xaction(dead);
}

static ecap_area_t async_option(void *xaction, const char *name)
{
    struct async_xaction *x = xaction;
    if (strcasecmp(name, "X-Ecap-Async-Resumed") == 0)
        return ecap_area_from_string(x->resumed ? "1" : "0");
    return ecap_area_borrow(NULL, 0);
}

static int async_visit_options(void *xaction, ecap_visitor_fn visitor, void *visitor_data)
{
    ecap_area_t value = async_option(xaction, "X-Ecap-Async-Resumed");
    return value.size ? visitor(visitor_data, ecap_area_from_string("X-Ecap-Async-Resumed"), value)
                      : 0;
}

static const struct ecap_xaction_methods async_xaction = {
    .version = 1,
    .start = async_xaction_start,
    .stop = async_xaction_stop,
    .resume = async_xaction_resume,
    .option = async_option,
    .visit_options = async_visit_options,
};

static int async_make_xaction(void *data, ecap_host_xaction_t *hostx,
                              const struct ecap_xaction_methods **methods, void **xaction)
{
    struct async_xaction *x = calloc(1, sizeof(*x));
    if (!x)
        return ECAP_E_NOMEM;
    x->service = data;
    ecap_host_xaction_ref(hostx);
    x->hostx = hostx;
    x->references = 1; /* the host's, dropped in stop() */
    *methods = &async_xaction;
    *xaction = x;
    return ECAP_OK;
}

static const struct ecap_service_methods async_service = {
    .version = 1,
    .uri = async_uri,
    .configure = async_configure,
    .start = async_start,
    .stop = async_stop_service,
    .retire = async_retire,
    .make_xaction = async_make_xaction,
    .makes_async_xactions = async_makes_async_xactions,
    .suspend = async_suspend,
    .resume = async_resume,
};

static int async_register(ecap_host_t *host, struct ecap_error *error)
{
    struct async_service *s = calloc(1, sizeof(*s));
    if (!s)
        return ecap_error_set(error, ECAP_E_NOMEM, "out of memory");
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->work, NULL);
    s->workers = 2;
    s->delay_ms = 10;
    s->poll_ms = 300;
    s->wake = 1;
    int status = ecap_host_register_service(host, &async_service, s);
    if (status != ECAP_OK) {
        pthread_cond_destroy(&s->work);
        pthread_mutex_destroy(&s->lock);
        free(s);
    }
    return status;
}

ECAP_MODULE("async", async_register);
