/*
 * bench_timers: a million timers at random deadlines (uniform whole milliseconds in
 * [1, 1000]), added and then fired, on Arkenstone's eventer, libuv and libev, in one run,
 * in interleaved rounds.
 *
 * Phases, each timed with CLOCK_MONOTONIC and reported per timer:
 *   init  peers only: uv_timer_init / ev_timer_init over a zeroed array (our timers are
 *         allocated by eventer_alloc_timer(), which is part of our "add");
 *   add   start every timer (ours: eventer_alloc_timer + eventer_add on the loop thread);
 *   fire  once every deadline has passed, run the loop until all have fired (ours: each
 *         event is freed as its callback returns 0, which is part of our "fire").
 * The ratio the goal reads is ours(add+fire) / peer(add+fire); the ratio against
 * peer(init+add+fire) is printed too, since our add includes the allocation.
 *
 *   bench_timers [--timers N] [--rounds R] [--cpu C] [--only NAME]
 * (defaults: 1000000 timers, 3 rounds, cpu 1, every library; --only runs one, for profiling)
 * Each run first waits (at most 30 s) for the rest of the machine to go quiet.
 * It prints figures and ratios; it never decides pass or fail.
 */
#include "bench_support.h"

#include <eventer/eventer.h>

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#define SPAN_MS    1000
#define MAX_ROUNDS 32

struct phases {
    double init_ns, add_ns, fire_ns; /* per timer */
};

static uint64_t random_state;

static void random_reset(void)
{
    random_state = 0x9e3779b97f4a7c15ull;
}

static uint32_t random_next(void)
{
    uint64_t x = random_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    random_state = x;
    return (uint32_t)(x >> 32);
}

static unsigned random_delay_ms(void)
{
    return 1 + random_next() % SPAN_MS;
}

static void sleep_past_deadlines(void)
{
    struct timespec pause = {SPAN_MS / 1000, (SPAN_MS % 1000) * 1000000L + 20000000L};
    while (nanosleep(&pause, &pause) != 0)
        ;
}

/* ---- ours ---- */

static struct {
    long count;
    long fired;
    long out_of_order;
    uint64_t last_fired_us;
    uint64_t add_start, add_end, fire_start, fire_end;
} ours;

static int our_timer_fired(eventer_t e, int mask, void *closure, struct timeval *now)
{
    (void)e;
    (void)mask;
    (void)now;
    uint64_t deadline = (uint64_t)(uintptr_t)closure;
    if (deadline < ours.last_fired_us)
        ours.out_of_order++;
    ours.last_fired_us = deadline;
    if (++ours.fired == ours.count) {
        ours.fire_end = bench_now_ns();
        eventer_shutdown();
    }
    return 0;
}

/* Runs on the loop thread: adds every timer, then holds the loop until all are due. */
static int our_add_phase(eventer_t e, int mask, void *closure, struct timeval *now)
{
    (void)e;
    (void)mask;
    (void)closure;
    struct timeval base = *now;
    uint64_t base_us = (uint64_t)base.tv_sec * 1000000u + (uint64_t)base.tv_usec;
    ours.add_start = bench_now_ns();
    for (long i = 0; i < ours.count; i++) {
        uint64_t at_us = base_us + (uint64_t)random_delay_ms() * 1000u;
        struct timeval whence = {(time_t)(at_us / 1000000u), (suseconds_t)(at_us % 1000000u)};
        eventer_t timer = eventer_alloc_timer(our_timer_fired, (void *)(uintptr_t)at_us, &whence);
        if (!timer) {
            fprintf(stderr, "bench_timers: out of memory\n");
            exit(1);
        }
        eventer_add(timer);
    }
    ours.add_end = bench_now_ns();
    sleep_past_deadlines();
    ours.fire_start = bench_now_ns();
    return 0;
}

static int run_ours(long count, struct phases *result)
{
    memset(&ours, 0, sizeof(ours));
    ours.count = count;
    random_reset();
    if (eventer_propset("concurrency", "1") < 0 || eventer_init() < 0)
        return -1;
    eventer_add_timer_next_opportunity(our_add_phase, NULL, eventer_choose_owner(0));
    eventer_loop(); /* returns after the last timer called eventer_shutdown() */
    if (ours.fired != count || ours.out_of_order) {
        fprintf(stderr, "bench_timers: ours fired %ld of %ld, %ld out of order\n", ours.fired,
                count, ours.out_of_order);
        return -1;
    }
    result->init_ns = 0;
    result->add_ns = (double)(ours.add_end - ours.add_start) / (double)count;
    result->fire_ns = (double)(ours.fire_end - ours.fire_start) / (double)count;
    return 0;
}

/* ---- libuv ---- */

static long libuv_fired;

static void libuv_timer_fired(uv_timer_t *timer)
{
    (void)timer;
    libuv_fired++;
}

static int run_libuv(long count, struct phases *result)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_timer_t *timers = calloc((size_t)count, sizeof(*timers));
    if (!timers)
        return -1;
    random_reset();
    libuv_fired = 0;
    uint64_t a = bench_now_ns();
    for (long i = 0; i < count; i++)
        uv_timer_init(&loop, &timers[i]);
    uint64_t b = bench_now_ns();
    uv_update_time(&loop);
    for (long i = 0; i < count; i++)
        uv_timer_start(&timers[i], libuv_timer_fired, random_delay_ms(), 0);
    uint64_t c = bench_now_ns();
    sleep_past_deadlines();
    uint64_t d = bench_now_ns();
    uv_run(&loop, UV_RUN_DEFAULT);
    uint64_t e = bench_now_ns();
    for (long i = 0; i < count; i++)
        uv_close((uv_handle_t *)&timers[i], NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    free(timers);
    if (libuv_fired != count)
        return -1;
    result->init_ns = (double)(b - a) / (double)count;
    result->add_ns = (double)(c - b) / (double)count;
    result->fire_ns = (double)(e - d) / (double)count;
    return 0;
}

/* ---- libev ---- */

static long libev_fired;

static void libev_timer_fired(struct ev_loop *loop, ev_timer *timer, int events)
{
    (void)loop;
    (void)timer;
    (void)events;
    libev_fired++;
}

static int run_libev(long count, struct phases *result)
{
    struct ev_loop *loop = ev_loop_new(EVBACKEND_EPOLL);
    ev_timer *timers = calloc((size_t)count, sizeof(*timers));
    if (!loop || !timers)
        return -1;
    random_reset();
    libev_fired = 0;
    uint64_t a = bench_now_ns();
    for (long i = 0; i < count; i++)
        ev_timer_init(&timers[i], libev_timer_fired, 1.0, 0.0);
    uint64_t b = bench_now_ns();
    ev_now_update(loop);
    for (long i = 0; i < count; i++) {
        ev_timer_set(&timers[i], random_delay_ms() / 1000.0, 0.0);
        ev_timer_start(loop, &timers[i]);
    }
    uint64_t c = bench_now_ns();
    sleep_past_deadlines();
    uint64_t d = bench_now_ns();
    ev_run(loop, 0);
    uint64_t e = bench_now_ns();
    ev_loop_destroy(loop);
    free(timers);
    if (libev_fired != count)
        return -1;
    result->init_ns = (double)(b - a) / (double)count;
    result->add_ns = (double)(c - b) / (double)count;
    result->fire_ns = (double)(e - d) / (double)count;
    return 0;
}

/* ---- driver ---- */

struct contender {
    const char *name;
    int (*run)(long count, struct phases *result);
    double init[MAX_ROUNDS], add[MAX_ROUNDS], fire[MAX_ROUNDS], total[MAX_ROUNDS],
        with_init[MAX_ROUNDS];
    int runs;
};

int main(int argc, char **argv)
{
    long count = 1000000;
    int rounds = 3;
    int cpu = bench_cpu_count() > 1 ? 1 : 0;
    const char *only = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--timers"))
            count = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--rounds"))
            rounds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--cpu"))
            cpu = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--only"))
            only = argv[i + 1];
        else
            argc = 0;
    }
    if (argc % 2 == 0 || count < 1 || rounds < 1 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "usage: bench_timers [--timers N] [--rounds R] [--cpu C] [--only NAME]\n");
        return 2;
    }
    bench_pin_process(cpu);
    struct contender contenders[] = {
        {.name = "arkenstone", .run = run_ours},
        {.name = "libuv", .run = run_libuv},
        {.name = "libev", .run = run_libev},
    };
    int contender_count = (int)(sizeof(contenders) / sizeof(contenders[0]));
    printf("bench_timers: %ld timers, deadlines uniform in [1, %d] ms, %d round(s), pinned to "
           "cpu %d; ours = one eventer loop thread, timers added on it\n",
           count, SPAN_MS, rounds, cpu);
    printf("%5s %-12s %10s %10s %10s %12s %17s\n", "round", "library", "init ns", "add ns",
           "fire ns", "add+fire ns", "init+add+fire ns");
    for (int round = 0; round < rounds; round++) {
        for (int k = 0; k < contender_count; k++) {
            struct contender *contender = &contenders[k];
            struct phases phases;
            if (only && strcmp(only, contender->name))
                continue;
            /* The machine is shared: start each run on a quiet machine (waits at most 30 s). */
            bench_wait_for_quiet(0.10, 30);
            if (contender->run(count, &phases) < 0) {
                fprintf(stderr, "bench_timers: %s failed\n", contender->name);
                continue;
            }
            int n = contender->runs++;
            contender->init[n] = phases.init_ns;
            contender->add[n] = phases.add_ns;
            contender->fire[n] = phases.fire_ns;
            contender->total[n] = phases.add_ns + phases.fire_ns;
            contender->with_init[n] = phases.init_ns + phases.add_ns + phases.fire_ns;
            printf("%5d %-12s %10.1f %10.1f %10.1f %12.1f %17.1f\n", round + 1, contender->name,
                   phases.init_ns, phases.add_ns, phases.fire_ns, contender->total[n],
                   contender->with_init[n]);
            fflush(stdout);
        }
    }
    printf("\nmedian per timer over rounds\n%-12s %10s %10s %10s %12s %17s\n", "library", "init ns",
           "add ns", "fire ns", "add+fire ns", "init+add+fire ns");
    double total[8], with_init[8];
    for (int k = 0; k < contender_count; k++) {
        struct contender *contender = &contenders[k];
        int n = contender->runs;
        total[k] = bench_median(contender->total, n);
        with_init[k] = bench_median(contender->with_init, n);
        printf("%-12s %10.1f %10.1f %10.1f %12.1f %17.1f\n", contender->name,
               bench_median(contender->init, n), bench_median(contender->add, n),
               bench_median(contender->fire, n), total[k], with_init[k]);
    }
    printf("\nratios (lower is better for arkenstone)\n");
    for (int k = 1; k < contender_count; k++) {
        if (!contenders[0].runs || !contenders[k].runs)
            continue;
        printf("arkenstone/%-6s add+fire %.3f   vs %s init+add+fire %.3f   (ours %.3f us, %s "
               "%.3f us per timer)\n",
               contenders[k].name, total[0] / total[k], contenders[k].name, total[0] / with_init[k],
               total[0] / 1000, contenders[k].name, total[k] / 1000);
    }
    printf("(goal of issue 3: ours add+fire at or below libev's)\n");
    return 0;
}
