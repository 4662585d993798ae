/*
 * The project's echo load client: one thread, one epoll set, N connections each sending a
 * small message and waiting for all of it to come back before sending the next (closed
 * loop). After a warm-up it counts round trips over a fixed window and reports latency
 * percentiles and its own CPU time. Pin the calling thread before calling it.
 */
#ifndef ARK_BENCH_ECHO_LOAD_H
#define ARK_BENCH_ECHO_LOAD_H

#include <netinet/in.h>
#include <stdint.h>

struct echo_load_options {
    struct sockaddr_in server;
    int connections;
    int message_bytes; /* 1..4096 */
    double warmup_seconds;
    double measure_seconds;
    /* Called at the start (edge 0) and the end (edge 1) of the measured window; may be NULL. */
    void (*on_window)(void *closure, int edge);
    void *closure;
};

struct echo_load_result {
    uint64_t round_trips; /* completed inside the window */
    double window_seconds;
    double round_trips_per_second;
    double p50_us, p99_us;
    double client_cpu_fraction; /* of one core, over the window */
};

/* Runs the load; returns 0, or -1 after printing why (connect failure, server closed). */
int echo_load_run(const struct echo_load_options *options, struct echo_load_result *result);

#endif
