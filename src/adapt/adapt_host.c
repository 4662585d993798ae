/*
 * The adaptation host: the host object adapters see, module loading, the service registry
 * and life cycle, per-loop notice queues, and the polling protocol on the eventer's wait
 * hooks.
 *
 * Polling, per loop thread, each iteration:
 *   pre-wait:  deliver queued notices; then for each async service with live transactions
 *              owned by this thread: suspend(&timeout) under the service's poll lock; the
 *              loop waits no longer than the lowest value asked (or not at all when notices
 *              remain).
 *   post-wait: for the same services: resume() under the poll lock, with the thread marked
 *              "inside service resume" (host calls other than resume are refused); then
 *              deliver the notices those resume() calls queued (the adapter transactions'
 *              resume() among them).
 * The registry is append-only (services are retired, never removed) so the hooks walk it
 * without a lock.
 */
#include "adapt/adapt_internal.h"

#include "eventer/eventer_internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

mtev_log_stream_t adapt_error;
mtev_log_stream_t adapt_debug;

#define MAX_SERVICES 256

struct adapt_module {
    char *path;
    char *name;
    void *handle;
    struct adapt_module *next;
};

static pthread_mutex_t host_lock = PTHREAD_MUTEX_INITIALIZER;
static ecap_service_t *services[MAX_SERVICES];
static int service_count; /* atomic */
static struct adapt_module *modules;
static struct adapt_loop *loops;
static int loop_count;
static int hook_handle = -1;
static int exit_hook_handle = -1;
/* Wakes in progress, plus WAKE_GATE_CLOSED once the loops began to stop (atomic). */
static int wake_gate;
#define WAKE_GATE_CLOSED 0x40000000
static __thread struct adapt_loop *this_loop;
/* The module whose register_services() runs on this thread. */
static __thread struct adapt_module *registering_module;
static __thread ecap_service_t *resuming_service;
static __thread char last_error[ECAP_ERROR_CAPACITY + 128];

void adapt_host_lock(void)
{
    pthread_mutex_lock(&host_lock);
}

void adapt_host_unlock(void)
{
    pthread_mutex_unlock(&host_lock);
}

static void ensure_streams(void)
{
    if (!__atomic_load_n(&adapt_error, __ATOMIC_ACQUIRE)) {
        mtev_log_stream_t debug = mtev_log_stream_find("debug/ecap");
        __atomic_store_n(&adapt_debug, debug, __ATOMIC_RELEASE);
        __atomic_store_n(&adapt_error, mtev_log_stream_find("error/ecap"), __ATOMIC_RELEASE);
    }
}

int adapt_fail(int status, const char *format, ...)
{
    ensure_streams();
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(last_error, sizeof(last_error), format, arguments);
    va_end(arguments);
    mtevL(adapt_error, "ecap: %s (%s)\n", last_error, ecap_strerror(status));
    return status;
}

const char *ecap_host_last_error(void)
{
    return last_error;
}

ecap_service_t *adapt_in_service_resume(void)
{
    return resuming_service;
}

void adapt_count(uint64_t *counter)
{
    __atomic_add_fetch(counter, 1, __ATOMIC_RELAXED);
}

int adapt_service_count(void)
{
    return __atomic_load_n(&service_count, __ATOMIC_ACQUIRE);
}

ecap_service_t *adapt_service_at(int index)
{
    return services[index];
}

/* ---- the host object ---- */

static const char *host_uri(ecap_host_t *host)
{
    return "ecap://arkenstone.invalid/host";
}

static int host_register_service(ecap_host_t *host, const struct ecap_service_methods *methods,
                                 void *data)
{
    const char *module = registering_module ? registering_module->name : "(program)";
    if (!methods || methods->version < 1 || !methods->uri || !methods->make_xaction)
        return adapt_fail(ECAP_E_VERSION,
                          "module %s: service table lacks version, uri or make_xaction", module);
    const char *uri = methods->uri(data);
    if (!uri || !*uri)
        return adapt_fail(ECAP_E_INVALID, "module %s: service has an empty URI", module);
    adapt_host_lock();
    int count = service_count;
    for (int i = 0; i < count; i++) {
        if (strcmp(services[i]->uri, uri) == 0 &&
            __atomic_load_n(&services[i]->state, __ATOMIC_ACQUIRE) != SERVICE_RETIRED) {
            adapt_host_unlock();
            return adapt_fail(ECAP_E_EXISTS, "module %s: service %s is already registered", module,
                              uri);
        }
    }
    if (count == MAX_SERVICES) {
        adapt_host_unlock();
        return adapt_fail(ECAP_E_NOMEM, "module %s: too many services (%d)", module, MAX_SERVICES);
    }
    ecap_service_t *service = calloc(1, sizeof(*service));
    char *uri_copy = strdup(uri);
    if (!service || !uri_copy) {
        adapt_host_unlock();
        free(service);
        free(uri_copy);
        return adapt_fail(ECAP_E_NOMEM, "module %s: out of memory", module);
    }
    service->methods = methods;
    service->data = data;
    service->uri = uri_copy;
    service->module = registering_module;
    pthread_mutex_init(&service->poll_lock, NULL);
    services[count] = service;
    __atomic_store_n(&service_count, count + 1, __ATOMIC_RELEASE);
    adapt_host_unlock();
    ensure_streams();
    mtevL(adapt_debug, "ecap: registered service %s (module %s)\n", uri, module);
    return ECAP_OK;
}

static void host_log(ecap_host_t *host, enum ecap_log_level level, const char *line)
{
    ensure_streams();
    mtev_log_stream_t stream = level == ECAP_LOG_ERROR    ? adapt_error
                               : level == ECAP_LOG_NOTICE ? mtev_notice
                                                          : adapt_debug;
    size_t length = strlen(line);
    mtevL(stream, "%s%s", line, length && line[length - 1] == '\n' ? "" : "\n");
}

static ecap_message_t *host_new_request(ecap_host_t *host)
{
    return ecap_message_new_request();
}

static ecap_message_t *host_new_response(ecap_host_t *host)
{
    return ecap_message_new_response();
}

static const struct ecap_host_methods host_methods = {
    .version = 1,
    .uri = host_uri,
    .register_service = host_register_service,
    .log = host_log,
    .new_request = host_new_request,
    .new_response = host_new_response,
};

static struct ecap_host the_host = {&host_methods};

ecap_host_t *ecap_host(void)
{
    return &the_host;
}

/* ---- modules ---- */

int ecap_module_load(const char *path)
{
    if (!path || !*path)
        return adapt_fail(ECAP_E_INVALID, "ecap_module_load: no path");
    adapt_host_lock();
    for (struct adapt_module *m = modules; m; m = m->next) {
        if (strcmp(m->path, path) == 0) {
            adapt_host_unlock();
            return adapt_fail(ECAP_E_EXISTS, "module %s: already loaded", path);
        }
    }
    adapt_host_unlock();
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle)
        return adapt_fail(ECAP_E_MODULE, "module %s: cannot be loaded: %s", path, dlerror());
    const struct ecap_module_entry *entry = dlsym(handle, ECAP_MODULE_SYMBOL);
    if (!entry) {
        dlclose(handle);
        return adapt_fail(ECAP_E_NOT_FOUND, "module %s: missing symbol %s (not an ecap module)",
                          path, ECAP_MODULE_SYMBOL);
    }
    if (entry->api_major != ECAP_API_MAJOR || entry->api_minor > ECAP_API_MINOR) {
        int status = adapt_fail(ECAP_E_VERSION,
                                "module %s (%s): built for ecap API %u.%u, host provides %d.%d",
                                path, entry->name ? entry->name : "?", entry->api_major,
                                entry->api_minor, ECAP_API_MAJOR, ECAP_API_MINOR);
        dlclose(handle);
        return status;
    }
    if (!entry->register_services) {
        dlclose(handle);
        return adapt_fail(ECAP_E_MODULE, "module %s: entry point has no register_services", path);
    }
    struct adapt_module *module = calloc(1, sizeof(*module));
    if (module) {
        module->path = strdup(path);
        module->name = strdup(entry->name ? entry->name : path);
    }
    if (!module || !module->path || !module->name) {
        if (module) {
            free(module->path);
            free(module->name);
        }
        free(module);
        dlclose(handle);
        return adapt_fail(ECAP_E_NOMEM, "module %s: out of memory", path);
    }
    module->handle = handle;
    struct ecap_error error = {""};
    /* Registration goes through the host object, which needs to know the module. */
    registering_module = module;
    int before = adapt_service_count();
    int status = entry->register_services(&the_host, &error);
    registering_module = NULL;
    if (status != ECAP_OK) {
        /* Services it registered before failing stay retired-on-cleanup; keep the code. */
        int registered = adapt_service_count() - before;
        status = adapt_fail(ECAP_E_MODULE, "module %s (%s): registration failed: %s (%s)", path,
                            module->name, error.message[0] ? error.message : "no reason given",
                            ecap_strerror(status));
        if (registered == 0) {
            free(module->path);
            free(module->name);
            free(module);
            dlclose(handle);
            return status;
        }
    }
    adapt_host_lock();
    module->next = modules;
    modules = module;
    adapt_host_unlock();
    return status;
}

/* ---- services ---- */

ecap_service_t *ecap_service_find(const char *uri)
{
    if (!uri)
        return NULL;
    int count = adapt_service_count();
    for (int i = count - 1; i >= 0; i--)
        if (strcmp(services[i]->uri, uri) == 0 &&
            __atomic_load_n(&services[i]->state, __ATOMIC_ACQUIRE) != SERVICE_RETIRED)
            return services[i];
    return NULL;
}

const char *ecap_service_uri(ecap_service_t *service)
{
    return service ? service->uri : NULL;
}

int ecap_service_configure(ecap_service_t *service, const struct ecap_option *options, size_t count)
{
    if (!service || (count && !options))
        return adapt_fail(ECAP_E_INVALID, "ecap_service_configure: NULL argument");
    if (__atomic_load_n(&service->state, __ATOMIC_ACQUIRE) == SERVICE_RETIRED)
        return adapt_fail(ECAP_E_SERVICE_STATE, "service %s: configure after retire", service->uri);
    for (size_t i = 0; i < count; i++)
        if (!options[i].name || !options[i].value)
            return adapt_fail(ECAP_E_INVALID, "service %s: option %zu has no name or value",
                              service->uri, i);
    if (!service->methods->configure) {
        if (count == 0)
            return ECAP_OK;
        return adapt_fail(ECAP_E_BAD_OPTION, "service %s: option %s: the service takes no options",
                          service->uri, options[0].name);
    }
    struct ecap_error error = {""};
    int status = service->methods->configure(service->data, options, count, &error);
    if (status != ECAP_OK)
        return adapt_fail(status, "service %s: %s", service->uri,
                          error.message[0] ? error.message : "configuration refused");
    return ECAP_OK;
}

int ecap_service_start(ecap_service_t *service)
{
    if (!service)
        return adapt_fail(ECAP_E_INVALID, "ecap_service_start: NULL service");
    if (__atomic_load_n(&service->state, __ATOMIC_ACQUIRE) == SERVICE_RETIRED)
        return adapt_fail(ECAP_E_SERVICE_STATE, "service %s: start after retire", service->uri);
    if (__atomic_load_n(&service->state, __ATOMIC_ACQUIRE) == SERVICE_STARTED)
        return ECAP_OK;
    struct ecap_error error = {""};
    if (service->methods->start) {
        int status = service->methods->start(service->data, &error);
        if (status != ECAP_OK)
            return adapt_fail(status, "service %s: start failed: %s", service->uri,
                              error.message[0] ? error.message : "no reason given");
    }
    int async = service->methods->makes_async_xactions &&
                service->methods->makes_async_xactions(service->data);
    if (async && (!service->methods->suspend || !service->methods->resume)) {
        if (service->methods->stop)
            service->methods->stop(service->data);
        return adapt_fail(ECAP_E_UNSUPPORTED,
                          "service %s: makes async transactions but lacks suspend or resume",
                          service->uri);
    }
    __atomic_store_n(&service->async, async, __ATOMIC_RELEASE);
    __atomic_store_n(&service->state, SERVICE_STARTED, __ATOMIC_RELEASE);
    return ECAP_OK;
}

int ecap_service_stop(ecap_service_t *service)
{
    if (!service)
        return adapt_fail(ECAP_E_INVALID, "ecap_service_stop: NULL service");
    if (__atomic_load_n(&service->state, __ATOMIC_ACQUIRE) != SERVICE_STARTED)
        return adapt_fail(ECAP_E_SERVICE_STATE, "service %s: stop when not started", service->uri);
    __atomic_store_n(&service->state, SERVICE_STOPPED, __ATOMIC_RELEASE);
    __atomic_store_n(&service->async, 0, __ATOMIC_RELEASE);
    if (service->methods->stop)
        service->methods->stop(service->data);
    return ECAP_OK;
}

int ecap_service_is_async(ecap_service_t *service)
{
    return service && __atomic_load_n(&service->async, __ATOMIC_ACQUIRE);
}

int ecap_service_wants_url(ecap_service_t *service, const char *url)
{
    if (!service || !url)
        return 0;
    return service->methods->wants_url ? service->methods->wants_url(service->data, url) != 0 : 1;
}

void ecap_service_get_stats(ecap_service_t *service, struct ecap_service_stats *stats)
{
    memset(stats, 0, sizeof(*stats));
    if (!service)
        return;
    stats->suspends = __atomic_load_n(&service->suspends, __ATOMIC_RELAXED);
    stats->resumes = __atomic_load_n(&service->resumes, __ATOMIC_RELAXED);
    stats->xactions = __atomic_load_n(&service->xactions, __ATOMIC_RELAXED);
    stats->live_xactions = __atomic_load_n(&service->live_total, __ATOMIC_RELAXED);
    stats->xaction_resumes = __atomic_load_n(&service->xaction_resumes, __ATOMIC_RELAXED);
    stats->skipped_resumes = __atomic_load_n(&service->skipped_resumes, __ATOMIC_RELAXED);
    stats->misuses = __atomic_load_n(&service->misuses, __ATOMIC_RELAXED);
    stats->wakes = __atomic_load_n(&service->wakes, __ATOMIC_RELAXED);
}

/* ---- notices ---- */

struct adapt_loop *adapt_current_loop(void)
{
    return this_loop;
}

struct adapt_loop *adapt_loop_at(int index)
{
    return index >= 0 && index < loop_count ? &loops[index] : NULL;
}

void adapt_notice_queue(struct adapt_loop *loop, struct adapt_notice *notice)
{
    if (notice->queued)
        return;
    notice->queued = 1;
    notice->next = NULL;
    if (loop->tail)
        loop->tail->next = notice;
    else
        loop->head = notice;
    loop->tail = notice;
}

int adapt_notices_deliver(struct adapt_loop *loop)
{
    if (loop->delivering)
        return loop->head != NULL;
    loop->delivering = 1;
    for (int delivered = 0; loop->head && delivered < ADAPT_NOTICE_BUDGET; delivered++) {
        struct adapt_notice *notice = loop->head;
        loop->head = notice->next;
        if (!loop->head)
            loop->tail = NULL;
        notice->queued = 0;
        notice->next = NULL;
        notice->run(notice);
    }
    loop->delivering = 0;
    return loop->head != NULL;
}

/* ---- waking loops from other threads ---- */

int adapt_loop_wake(int index, uint64_t *counter)
{
    if (__atomic_add_fetch(&wake_gate, 1, __ATOMIC_SEQ_CST) & WAKE_GATE_CLOSED) {
        __atomic_sub_fetch(&wake_gate, 1, __ATOMIC_RELEASE);
        return -1;
    }
    /* Inside the gate the eventer's loops cannot be freed: the first loop to stop closes the
     * gate and waits for the wakes inside it before the eventer tears anything down. */
    int status = -1;
    if (eventer_impl_running() && !eventer_impl_stopping() && index >= 0 &&
        index < eventer_impl_loop_count) {
        if (counter)
            adapt_count(counter);
        eventer_impl_wake(&eventer_impl_loops[index]);
        status = 0;
    }
    __atomic_sub_fetch(&wake_gate, 1, __ATOMIC_RELEASE);
    return status;
}

static void wake_gate_close(void)
{
    __atomic_or_fetch(&wake_gate, WAKE_GATE_CLOSED, __ATOMIC_SEQ_CST);
    while ((__atomic_load_n(&wake_gate, __ATOMIC_ACQUIRE) & ~WAKE_GATE_CLOSED) != 0)
        sched_yield();
}

int adapt_loop_post(struct adapt_loop *loop, void (*run)(void *), void (*discard)(void *),
                    void *argument)
{
    struct adapt_request *request = malloc(sizeof(*request));
    if (!request)
        return -1;
    request->run = run;
    request->discard = discard;
    request->argument = argument;
    pthread_mutex_lock(&loop->inbox_lock);
    if (loop->inbox_closed) {
        pthread_mutex_unlock(&loop->inbox_lock);
        free(request);
        return -1;
    }
    request->next = loop->inbox;
    __atomic_store_n(&loop->inbox, request, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&loop->inbox_lock);
    adapt_loop_wake(loop->index, NULL);
    return 0;
}

/* Runs (or, once the loop stopped, discards) what other threads queued, oldest first. */
static void inbox_take(struct adapt_loop *loop, int close)
{
    if (!close && !__atomic_load_n(&loop->inbox, __ATOMIC_ACQUIRE))
        return;
    pthread_mutex_lock(&loop->inbox_lock);
    struct adapt_request *list = loop->inbox;
    __atomic_store_n(&loop->inbox, NULL, __ATOMIC_RELAXED);
    if (close)
        loop->inbox_closed = 1;
    pthread_mutex_unlock(&loop->inbox_lock);
    struct adapt_request *oldest = NULL;
    while (list) {
        struct adapt_request *next = list->next;
        list->next = oldest;
        oldest = list;
        list = next;
    }
    while (oldest) {
        struct adapt_request *next = oldest->next;
        if (close)
            oldest->discard(oldest->argument);
        else
            oldest->run(oldest->argument);
        free(oldest);
        oldest = next;
    }
}

/*
 * The loop thread stops (eventer shutdown): nothing more comes through its inbox, every live
 * chain is ended here on its owner thread (see ecap_host_cleanup in host.h), and wakes from
 * other threads are refused from now on, before the eventer frees its loops.
 */
static void loop_exit(void *closure, int loop_index)
{
    struct adapt_loop *loop = adapt_loop_at(loop_index);
    if (!loop)
        return;
    this_loop = loop;
    inbox_take(loop, 1);
    adapt_chains_loop_exit(loop);
    wake_gate_close();
    this_loop = NULL;
}

/* ---- polling ---- */

static uint64_t timeval_to_us(const struct timeval *tv)
{
    if (tv->tv_sec < 0 || tv->tv_usec < 0)
        return 0;
    if ((uint64_t)tv->tv_sec > UINT64_MAX / 1000000 - 1)
        return UINT64_MAX;
    return (uint64_t)tv->tv_sec * 1000000 + (uint64_t)tv->tv_usec;
}

/* Whether the loop must suspend/resume the service around its wait: an asynchronous service
 * with live transactions on that loop. */
static int polls_here(ecap_service_t *service, int loop_index)
{
    return __atomic_load_n(&service->async, __ATOMIC_ACQUIRE) &&
           __atomic_load_n(&service->live[loop_index % ADAPT_MAX_LOOPS], __ATOMIC_ACQUIRE) > 0;
}

void adapt_poll_suspend(ecap_service_t *service, struct timeval *timeout)
{
    pthread_mutex_lock(&service->poll_lock);
    adapt_count(&service->suspends);
    service->methods->suspend(service->data, timeout);
    pthread_mutex_unlock(&service->poll_lock);
}

void adapt_poll_resume(ecap_service_t *service)
{
    pthread_mutex_lock(&service->poll_lock);
    adapt_count(&service->resumes);
    ecap_service_t *outer = resuming_service;
    resuming_service = service;
    service->methods->resume(service->data);
    resuming_service = outer;
    pthread_mutex_unlock(&service->poll_lock);
}

static void before_wait(void *closure, int loop_index, uint64_t *timeout_us)
{
    struct adapt_loop *loop = adapt_loop_at(loop_index);
    if (!loop)
        return;
    this_loop = loop;
    inbox_take(loop, 0);
    if (adapt_notices_deliver(loop))
        *timeout_us = 0;
    /* What the notices ran may have added timers (a co-routine's sleep, say) after the loop
     * computed its wait: wait no longer than the earliest of them. */
    uint64_t next_timer = eventer_impl_timers_next_wait(&eventer_impl_loops[loop_index]);
    if (next_timer < *timeout_us)
        *timeout_us = next_timer;
    int count = adapt_service_count();
    for (int i = 0; i < count; i++) {
        ecap_service_t *service = services[i];
        if (!polls_here(service, loop_index))
            continue;
        /* The largest timeval the adapter can handle, when the loop would wait "forever". */
        struct timeval timeout = {INT_MAX, 0};
        if (*timeout_us != UINT64_MAX) {
            timeout.tv_sec = (time_t)(*timeout_us / 1000000);
            timeout.tv_usec = (suseconds_t)(*timeout_us % 1000000);
        }
        adapt_poll_suspend(service, &timeout);
        uint64_t asked = timeval_to_us(&timeout);
        if (asked < *timeout_us)
            *timeout_us = asked;
    }
}

static void after_wait(void *closure, int loop_index, int ready)
{
    struct adapt_loop *loop = adapt_loop_at(loop_index);
    if (!loop)
        return;
    this_loop = loop;
    int count = adapt_service_count();
    for (int i = 0; i < count; i++) {
        ecap_service_t *service = services[i];
        if (!polls_here(service, loop_index))
            continue;
        adapt_poll_resume(service);
    }
    inbox_take(loop, 0);
    adapt_notices_deliver(loop);
}

int ecap_host_init(void)
{
    ensure_streams();
    adapt_host_lock();
    if (hook_handle >= 0) {
        adapt_host_unlock();
        return ECAP_OK;
    }
    if (!eventer_impl_running()) {
        adapt_host_unlock();
        return adapt_fail(ECAP_E_INVALID, "ecap_host_init: the eventer is not running");
    }
    int count = eventer_loop_concurrency();
    loops = calloc((size_t)count, sizeof(*loops));
    if (!loops) {
        adapt_host_unlock();
        return adapt_fail(ECAP_E_NOMEM, "ecap_host_init: out of memory");
    }
    for (int i = 0; i < count; i++) {
        loops[i].index = i;
        pthread_mutex_init(&loops[i].inbox_lock, NULL);
    }
    loop_count = count;
    __atomic_store_n(&wake_gate, 0, __ATOMIC_RELEASE);
    hook_handle = eventer_impl_register_wait_hooks(-1, before_wait, after_wait, NULL);
    exit_hook_handle = hook_handle < 0 ? -1 : eventer_impl_register_loop_exit_hook(loop_exit, NULL);
    if (hook_handle < 0 || exit_hook_handle < 0) {
        if (hook_handle >= 0)
            eventer_impl_unregister_wait_hooks(hook_handle);
        hook_handle = -1;
        for (int i = 0; i < count; i++)
            pthread_mutex_destroy(&loops[i].inbox_lock);
        free(loops);
        loops = NULL;
        loop_count = 0;
        adapt_host_unlock();
        return adapt_fail(ECAP_E_INVALID, "ecap_host_init: no free eventer wait or exit hook slot");
    }
    adapt_host_unlock();
    return ECAP_OK;
}

void ecap_host_cleanup(void)
{
    adapt_host_lock();
    if (hook_handle >= 0)
        eventer_impl_unregister_wait_hooks(hook_handle);
    hook_handle = -1;
    eventer_impl_unregister_loop_exit_hook(exit_hook_handle);
    exit_hook_handle = -1;
    /* No wake may reach the eventer any more (its loops may be gone). */
    wake_gate_close();
    /* Loops that never stopped (the eventer still runs: a misuse) keep their chains; what
     * other threads queued to them is dropped. */
    for (int i = 0; i < loop_count; i++)
        inbox_take(&loops[i], 1);
    int count = service_count;
    for (int i = 0; i < count; i++) {
        ecap_service_t *service = services[i];
        if (__atomic_load_n(&service->state, __ATOMIC_ACQUIRE) == SERVICE_STARTED &&
            service->methods->stop)
            service->methods->stop(service->data);
        if (service->methods->retire)
            service->methods->retire(service->data);
        pthread_mutex_destroy(&service->poll_lock);
        free(service->uri);
        free(service);
        services[i] = NULL;
    }
    __atomic_store_n(&service_count, 0, __ATOMIC_RELEASE);
    while (modules) {
        struct adapt_module *module = modules;
        modules = module->next;
        /* Under ASan keep the code mapped so leak reports can still symbolise it. */
#ifndef ARK_ASAN
        dlclose(module->handle);
#endif
        free(module->path);
        free(module->name);
        free(module);
    }
    for (int i = 0; i < loop_count; i++)
        pthread_mutex_destroy(&loops[i].inbox_lock);
    free(loops);
    loops = NULL;
    loop_count = 0;
    adapt_host_unlock();
}

/* ---- configuration ---- */

int ecap_host_configure(mtev_conf_section_t section)
{
    if (mtev_conf_section_is_empty(section))
        return adapt_fail(ECAP_E_INVALID, "ecap_host_configure: empty section");
    int count = 0;
    mtev_conf_section_t *entries = mtev_conf_get_sections_read(section, "module", &count);
    int status = ECAP_OK;
    for (int i = 0; i < count && status == ECAP_OK; i++) {
        char *path = NULL;
        if (!mtev_conf_get_string(entries[i], "@path", &path))
            status = adapt_fail(ECAP_E_INVALID, "configuration: <module> without path");
        else
            status = ecap_module_load(path);
        free(path);
    }
    mtev_conf_release_sections_read(entries, count);
    if (status != ECAP_OK)
        return status;
    entries = mtev_conf_get_sections_read(section, "service", &count);
    for (int i = 0; i < count && status == ECAP_OK; i++) {
        char *uri = NULL;
        if (!mtev_conf_get_string(entries[i], "@uri", &uri)) {
            status = adapt_fail(ECAP_E_INVALID, "configuration: <service> without uri");
            break;
        }
        ecap_service_t *service = ecap_service_find(uri);
        if (!service) {
            status =
                adapt_fail(ECAP_E_NOT_FOUND,
                           "configuration: service %s is not provided by any loaded module", uri);
            free(uri);
            break;
        }
        free(uri);
        int option_count = 0;
        mtev_conf_section_t *option_sections =
            mtev_conf_get_sections_read(entries[i], "option", &option_count);
        struct ecap_option *options =
            calloc(option_count ? (size_t)option_count : 1, sizeof(*options));
        char **texts = calloc(option_count ? (size_t)option_count * 2 : 1, sizeof(*texts));
        if (!options || !texts)
            status = adapt_fail(ECAP_E_NOMEM, "configuration: out of memory");
        for (int j = 0; j < option_count && status == ECAP_OK; j++) {
            if (!mtev_conf_get_string(option_sections[j], "@name", &texts[2 * j]) ||
                !mtev_conf_get_string(option_sections[j], "@value", &texts[2 * j + 1]))
                status = adapt_fail(ECAP_E_INVALID,
                                    "configuration: service %s: <option> needs name and value",
                                    service->uri);
            options[j].name = texts[2 * j];
            options[j].value = texts[2 * j + 1];
        }
        if (status == ECAP_OK)
            status = ecap_service_configure(service, options, (size_t)option_count);
        if (status == ECAP_OK)
            status = ecap_service_start(service);
        for (int j = 0; texts && j < option_count * 2; j++)
            free(texts[j]);
        free(texts);
        free(options);
        mtev_conf_release_sections_read(option_sections, option_count);
    }
    mtev_conf_release_sections_read(entries, count);
    return status;
}
