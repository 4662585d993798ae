/*
 * bench_adapt: the adaptation host against its peers, side by side in one run.
 *
 * 1. Resume latency: a worker thread finishes an async transaction's work (time t0); the
 *    adapter transaction's resume() runs on the loop thread (time t1). Three ways:
 *      polling   - eCAP's protocol only: the service lowers the loop's timeout to poll_ms;
 *      wake      - the same plus ecap_host_xaction_wake() from the worker;
 *      eventfd   - the peer: the same worker writes an eventfd that the same loop thread
 *                  waits on (registered with the eventer), with nothing else on the path.
 *    The worker waits 200 us before "finishing" so the loop is asleep, as on an idle host.
 *    Reports p50 and p99 and the wake/eventfd ratio of medians.
 * 2. Throughput: a body of 1 KB .. 100 MB written into a chain through passthru (or
 *    modifying) and read back out into a destination buffer, against memcpy() of the same
 *    bytes from the same source to the same destination. Reports MB/s and ratios.
 *
 * Usage: bench_adapt [samples]   (figures only; it never passes or fails)
 */
#include <ecap/host.h>
#include <eventer/eventer.h>

#include "eventer/eventer_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void pause_us(long us)
{
    struct timespec t = {0, us * 1000};
    nanosleep(&t, NULL);
}

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t percentile(uint64_t *values, int count, double p)
{
    qsort(values, (size_t)count, sizeof(*values), compare_u64);
    int index = (int)(p * (count - 1) + 0.5);
    return values[index];
}

/* ---- a one-worker async service that timestamps its transactions ---- */

struct bench_xaction {
    ecap_host_xaction_t *hostx;
    uint64_t done_ns;
    struct bench_xaction *next;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t work;
    struct bench_xaction *todo, *ready;
    int pending, quit, wake;
    long poll_us;
    pthread_t worker;
    /* results */
    uint64_t *latencies;
    int wanted, measured; /* measured: loop thread only */
    int finished;         /* atomic */
} svc = {.lock = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER};

static void *bench_worker(void *argument)
{
    pthread_mutex_lock(&svc.lock);
    for (;;) {
        while (!svc.quit && !svc.todo)
            pthread_cond_wait(&svc.work, &svc.lock);
        if (svc.quit)
            break;
        struct bench_xaction *x = svc.todo;
        svc.todo = x->next;
        pthread_mutex_unlock(&svc.lock);
        pause_us(200); /* the work; the loop goes to sleep meanwhile */
        pthread_mutex_lock(&svc.lock);
        x->done_ns = now_ns();
        x->next = svc.ready;
        svc.ready = x;
        int wake = svc.wake;
        pthread_mutex_unlock(&svc.lock);
        if (wake)
            ecap_host_xaction_wake(x->hostx);
        pthread_mutex_lock(&svc.lock);
    }
    pthread_mutex_unlock(&svc.lock);
    return NULL;
}

static const char *bench_uri(void *service)
{
    return "ecap://arkenstone/bench/async";
}

static void bench_start(void *xaction)
{
    struct bench_xaction *x = xaction;
    pthread_mutex_lock(&svc.lock);
    x->next = svc.todo;
    svc.todo = x;
    svc.pending++;
    pthread_cond_signal(&svc.work);
    pthread_mutex_unlock(&svc.lock);
}

static void bench_resume(void *xaction)
{
    struct bench_xaction *x = xaction;
    uint64_t now = now_ns();
    if (svc.measured < svc.wanted)
        svc.latencies[svc.measured++] = now - x->done_ns;
    ecap_host_xaction_use_virgin(x->hostx);
}

static void bench_stop(void *xaction)
{
    struct bench_xaction *x = xaction;
    ecap_host_xaction_unref(x->hostx);
    free(x);
}

static const struct ecap_xaction_methods bench_xaction_methods = {
    .version = 1, .start = bench_start, .stop = bench_stop, .resume = bench_resume};

static int bench_make(void *service, ecap_host_xaction_t *hostx,
                      const struct ecap_xaction_methods **methods, void **xaction)
{
    struct bench_xaction *x = calloc(1, sizeof(*x));
    if (!x)
        return ECAP_E_NOMEM;
    ecap_host_xaction_ref(hostx);
    x->hostx = hostx;
    *methods = &bench_xaction_methods;
    *xaction = x;
    return ECAP_OK;
}

static int bench_async(void *service)
{
    return 1;
}

static void bench_suspend(void *service, struct timeval *timeout)
{
    pthread_mutex_lock(&svc.lock);
    long cap = svc.ready ? 0 : svc.pending ? svc.poll_us : -1;
    pthread_mutex_unlock(&svc.lock);
    if (cap >= 0 &&
        (uint64_t)timeout->tv_sec * 1000000 + (uint64_t)timeout->tv_usec > (uint64_t)cap) {
        timeout->tv_sec = cap / 1000000;
        timeout->tv_usec = cap % 1000000;
    }
}

static void bench_service_resume(void *service)
{
    pthread_mutex_lock(&svc.lock);
    struct bench_xaction *ready = svc.ready;
    svc.ready = NULL;
    for (struct bench_xaction *x = ready; x; x = x->next) {
        svc.pending--;
        ecap_host_xaction_resume(x->hostx);
    }
    pthread_mutex_unlock(&svc.lock);
}

static const struct ecap_service_methods bench_service_methods = {
    .version = 1,
    .uri = bench_uri,
    .make_xaction = bench_make,
    .makes_async_xactions = bench_async,
    .suspend = bench_suspend,
    .resume = bench_service_resume,
};

static ecap_service_t *bench_service;

static void next_transaction(void);

static void on_done(ecap_chain_t *chain, void *closure)
{
    ecap_chain_free(chain);
    if (svc.measured < svc.wanted)
        next_transaction();
    else
        __atomic_store_n(&svc.finished, 1, __ATOMIC_RELEASE);
}

static const struct ecap_chain_callbacks latency_callbacks = {.on_done = on_done};

static void next_transaction(void)
{
    size_t head_length;
    const char *head = "GET / HTTP/1.1\r\nHost: bench\r\n\r\n";
    ecap_message_t *virgin = ecap_message_parse(head, strlen(head), &head_length);
    ecap_chain_t *chain =
        ecap_chain_create(&bench_service, 1, virgin, NULL, &latency_callbacks, NULL);
    ecap_chain_start(chain);
}

static void start_on_loop(void *argument)
{
    next_transaction();
}

static void wait_flag(int *flag)
{
    while (!__atomic_load_n(flag, __ATOMIC_ACQUIRE))
        pause_us(1000);
    __atomic_store_n(flag, 0, __ATOMIC_RELEASE);
}

static void measure_resume(const char *name, int wake, long poll_us, int samples, uint64_t *p50,
                           uint64_t *p99)
{
    svc.wake = wake;
    svc.poll_us = poll_us;
    svc.wanted = samples;
    svc.measured = 0;
    svc.latencies = calloc((size_t)samples, sizeof(uint64_t));
    eventer_impl_run_on_loop(1, start_on_loop, NULL);
    wait_flag(&svc.finished);
    *p50 = percentile(svc.latencies, samples, 0.50);
    *p99 = percentile(svc.latencies, samples, 0.99);
    printf("  %-34s p50 %9.1f us   p99 %9.1f us   (%d samples)\n", name, *p50 / 1000.0,
           *p99 / 1000.0, samples);
    free(svc.latencies);
}

/* ---- the eventfd peer: the same two kinds of thread, nothing else on the path ---- */

static struct {
    int fd;
    uint64_t sent_ns;
    uint64_t *latencies;
    int wanted, measured;
    int acknowledged; /* atomic */
    int finished;     /* atomic */
} peer;

static int peer_readable(eventer_t e, int mask, void *closure, struct timeval *now)
{
    uint64_t value;
    if (read(peer.fd, &value, sizeof(value)) == sizeof(value)) {
        uint64_t t = now_ns();
        peer.latencies[peer.measured++] = t - __atomic_load_n(&peer.sent_ns, __ATOMIC_ACQUIRE);
        __atomic_store_n(&peer.acknowledged, 1, __ATOMIC_RELEASE);
        if (peer.measured == peer.wanted)
            __atomic_store_n(&peer.finished, 1, __ATOMIC_RELEASE);
    }
    return EVENTER_READ | EVENTER_EXCEPTION;
}

static void *peer_worker(void *argument)
{
    for (int i = 0; i < peer.wanted; i++) {
        pause_us(200);
        __atomic_store_n(&peer.sent_ns, now_ns(), __ATOMIC_RELEASE);
        uint64_t one = 1;
        if (write(peer.fd, &one, sizeof(one)) != sizeof(one))
            break;
        while (!__atomic_exchange_n(&peer.acknowledged, 0, __ATOMIC_ACQ_REL))
            pause_us(20);
    }
    return NULL;
}

static void add_peer_event(void *argument)
{
    eventer_t e = eventer_alloc_fd(peer_readable, NULL, peer.fd, EVENTER_READ | EVENTER_EXCEPTION);
    eventer_add(e);
    __atomic_store_n(&peer.acknowledged, 1, __ATOMIC_RELEASE);
}

static void measure_eventfd(int samples, uint64_t *p50, uint64_t *p99)
{
    peer.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    peer.wanted = samples;
    peer.latencies = calloc((size_t)samples, sizeof(uint64_t));
    eventer_impl_run_on_loop(1, add_peer_event, NULL);
    wait_flag(&peer.acknowledged);
    pthread_t worker;
    pthread_create(&worker, NULL, peer_worker, NULL);
    wait_flag(&peer.finished);
    pthread_join(worker, NULL);
    *p50 = percentile(peer.latencies, samples, 0.50);
    *p99 = percentile(peer.latencies, samples, 0.99);
    printf("  %-34s p50 %9.1f us   p99 %9.1f us   (%d samples)\n",
           "eventfd peer (worker -> loop 1)", *p50 / 1000.0, *p99 / 1000.0, samples);
    free(peer.latencies);
}

/* The barest peer: two plain threads, one blocked in read(2) on an eventfd. */
static struct {
    int fd;
    uint64_t sent_ns;
    uint64_t *latencies;
    int wanted;
    int acknowledged; /* atomic */
} bare;

static void *bare_reader(void *argument)
{
    for (int i = 0; i < bare.wanted; i++) {
        uint64_t value;
        if (read(bare.fd, &value, sizeof(value)) != sizeof(value))
            break;
        bare.latencies[i] = now_ns() - __atomic_load_n(&bare.sent_ns, __ATOMIC_ACQUIRE);
        __atomic_store_n(&bare.acknowledged, 1, __ATOMIC_RELEASE);
    }
    return NULL;
}

static void measure_bare(int samples, uint64_t *p50, uint64_t *p99)
{
    bare.fd = eventfd(0, EFD_CLOEXEC);
    bare.wanted = samples;
    bare.latencies = calloc((size_t)samples, sizeof(uint64_t));
    pthread_t reader;
    pthread_create(&reader, NULL, bare_reader, NULL);
    for (int i = 0; i < samples; i++) {
        pause_us(200);
        __atomic_store_n(&bare.sent_ns, now_ns(), __ATOMIC_RELEASE);
        uint64_t one = 1;
        if (write(bare.fd, &one, sizeof(one)) != sizeof(one))
            break;
        while (!__atomic_exchange_n(&bare.acknowledged, 0, __ATOMIC_ACQ_REL))
            pause_us(20);
    }
    pthread_join(reader, NULL);
    close(bare.fd);
    *p50 = percentile(bare.latencies, samples, 0.50);
    *p99 = percentile(bare.latencies, samples, 0.99);
    printf("  %-34s p50 %9.1f us   p99 %9.1f us   (%d samples)\n",
           "bare eventfd, two plain threads", *p50 / 1000.0, *p99 / 1000.0, samples);
    free(bare.latencies);
}

/* ---- throughput ---- */

struct pump {
    ecap_service_t *service;
    const char *source;
    char *destination;
    size_t size, written, read;
    int ended;
    int rounds;   /* still to run, loop thread only */
    int finished; /* atomic */
};

static void pump_start(void *argument);

static void pump_write(struct pump *p, ecap_chain_t *chain)
{
    while (p->written < p->size) {
        size_t n = p->size - p->written;
        if (n > 65536)
            n = 65536;
        ssize_t accepted = ecap_chain_vb_write(chain, p->source + p->written, n);
        if (accepted <= 0)
            return;
        p->written += (size_t)accepted;
    }
    if (!p->ended) {
        p->ended = 1;
        ecap_chain_vb_end(chain, 1);
    }
}

static void pump_read(struct pump *p, ecap_chain_t *chain)
{
    ecap_area_t area;
    while (ecap_chain_body_peek(chain, &area) == ECAP_OK && area.size) {
        size_t n = area.size;
        if (p->read + n > p->size)
            n = p->size - p->read;
        memcpy(p->destination + p->read, area.data, n);
        p->read += n;
        ecap_chain_body_shift(chain, area.size);
    }
}

static void pump_decision(ecap_chain_t *chain, void *closure, enum ecap_outcome outcome)
{
    pump_read(closure, chain);
}

static void pump_body(ecap_chain_t *chain, void *closure)
{
    pump_read(closure, chain);
}

static void pump_room(ecap_chain_t *chain, void *closure)
{
    pump_write(closure, chain);
}

static void pump_done(ecap_chain_t *chain, void *closure)
{
    struct pump *p = closure;
    ecap_chain_free(chain);
    if (p->read != p->size) {
        fprintf(stderr, "bench_adapt: %zu of %zu bytes came out\n", p->read, p->size);
        exit(1);
    }
    if (--p->rounds > 0)
        pump_start(p); /* the next message, from the loop thread itself */
    else
        __atomic_store_n(&p->finished, 1, __ATOMIC_RELEASE);
}

static const struct ecap_chain_callbacks pump_callbacks = {.on_decision = pump_decision,
                                                           .on_body = pump_body,
                                                           .on_vb_room = pump_room,
                                                           .on_done = pump_done};

static void pump_start(void *argument)
{
    struct pump *p = argument;
    p->written = p->read = 0;
    p->ended = 0;
    char head[128];
    snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", p->size);
    size_t head_length;
    ecap_message_t *virgin = ecap_message_parse(head, strlen(head), &head_length);
    ecap_chain_t *chain = ecap_chain_create(&p->service, 1, virgin, NULL, &pump_callbacks, p);
    ecap_chain_start(chain);
    pump_write(p, chain);
}

static double chain_seconds(ecap_service_t *service, const char *source, char *destination,
                            size_t size, int rounds)
{
    struct pump p = {service, source, destination, size, 0, 0, 0, rounds, 0};
    uint64_t start = now_ns();
    eventer_impl_run_on_loop(1, pump_start, &p);
    while (!__atomic_load_n(&p.finished, __ATOMIC_ACQUIRE))
        pause_us(200);
    return (now_ns() - start) / 1e9;
}

static double memcpy_seconds(const char *source, char *destination, size_t size, int rounds)
{
    uint64_t start = now_ns();
    for (int i = 0; i < rounds; i++) {
        memcpy(destination, source, size);
        __asm__ volatile("" : : "r"(destination) : "memory");
    }
    return (now_ns() - start) / 1e9;
}

static ecap_service_t *load_service(const char *module, const char *uri,
                                    const struct ecap_option *options, size_t count)
{
    if (ecap_module_load(module) != ECAP_OK) {
        fprintf(stderr, "bench_adapt: %s\n", ecap_host_last_error());
        exit(1);
    }
    ecap_service_t *service = ecap_service_find(uri);
    if (!service || ecap_service_configure(service, options, count) != ECAP_OK ||
        ecap_service_start(service) != ECAP_OK) {
        fprintf(stderr, "bench_adapt: %s\n", ecap_host_last_error());
        exit(1);
    }
    return service;
}

int main(int argc, char **argv)
{
    int samples = argc > 1 ? atoi(argv[1]) : 2000;
    if (samples < 10)
        samples = 10;
    eventer_propset("concurrency", "2");
    if (eventer_init() != 0 || ecap_host_init() != ECAP_OK)
        return 1;
    ecap_host_register_service(ecap_host(), &bench_service_methods, NULL);
    bench_service = ecap_service_find("ecap://arkenstone/bench/async");
    ecap_service_start(bench_service);
    pthread_create(&svc.worker, NULL, bench_worker, NULL);

    printf("resume latency: worker finished -> adapter transaction resume() on loop 1\n");
    uint64_t poll50, poll99, wake50, wake99, fd50, fd99;
    measure_resume("polling only (poll every 10 ms)", 0, 10000,
                   samples / 10 > 50 ? samples / 10 : 50, &poll50, &poll99);
    measure_resume("polling + ecap_host_xaction_wake", 1, 10000, samples, &wake50, &wake99);
    measure_eventfd(samples, &fd50, &fd99);
    uint64_t bare50, bare99;
    measure_bare(samples, &bare50, &bare99);
    printf("  ratio wake/eventfd-on-loop: p50 %.2fx  p99 %.2fx\n", (double)wake50 / fd50,
           (double)wake99 / fd99);
    printf("  ratio wake/bare-eventfd:    p50 %.2fx  p99 %.2fx   (goal: p50 within 1.5x)\n",
           (double)wake50 / bare50, (double)wake99 / bare99);
    printf("  ratio polling/wake: p50 %.0fx   (eCAP hosts poll only; its sample asks 300 ms)\n\n",
           (double)poll50 / wake50);

    ecap_service_t *passthru = load_service(ARK_ADAPTERS_DIR "/passthru/passthru.so",
                                            "ecap://arkenstone/adapters/passthru", NULL, 0);
    struct ecap_option options[] = {
        {"victim", "xyz"}, {"replacement", "XYZ"}, {"buffer_limit", "0"}};
    ecap_service_t *modifying = load_service(ARK_ADAPTERS_DIR "/modifying/modifying.so",
                                             "ecap://arkenstone/adapters/modifying", options, 3);
    size_t largest = 100 * 1000 * 1000;
    char *source = malloc(largest), *destination = malloc(largest);
    static const char pattern[] = "0123456789abcdefghijklmnopqrstuvwxyz\n";
    for (size_t i = 0; i < largest; i++)
        source[i] = pattern[i % (sizeof(pattern) - 1)];
    memset(destination, 0, largest);
    printf("throughput: body through a chain (64 KiB writes, copied out) vs memcpy, MB/s\n");
    printf("  %10s %10s %10s %7s %10s %7s\n", "size", "memcpy", "passthru", "ratio", "modifying",
           "ratio");
    size_t sizes[] = {1000, 64 * 1000, 1000 * 1000, 16 * 1000 * 1000, largest};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t size = sizes[i];
        int rounds = (int)(400 * 1000 * 1000 / size);
        if (rounds < 3)
            rounds = 3;
        if (rounds > 20000)
            rounds = 20000;
        double copy = memcpy_seconds(source, destination, size, rounds);
        double pass = chain_seconds(passthru, source, destination, size, rounds);
        if (memcmp(source, destination, size) != 0)
            fprintf(stderr, "bench_adapt: passthru changed the body\n");
        double modify = chain_seconds(modifying, source, destination, size, rounds);
        double bytes = (double)size * rounds / 1e6;
        printf("  %10zu %10.0f %10.0f %7.2f %10.0f %7.2f\n", size, bytes / copy, bytes / pass,
               copy / pass, bytes / modify, copy / modify);
    }
    printf("  (goal: passthru >= 0.5 of memcpy for large bodies)\n");
    free(source);
    free(destination);

    pthread_mutex_lock(&svc.lock);
    svc.quit = 1;
    pthread_cond_broadcast(&svc.work);
    pthread_mutex_unlock(&svc.lock);
    pthread_join(svc.worker, NULL);
    eventer_shutdown();
    eventer_cleanup();
    ecap_host_cleanup();
    close(peer.fd);
    return 0;
}
