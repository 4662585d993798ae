/*
 * Small helpers shared by the eventer benchmarks: clocks, CPU pinning, process CPU time,
 * medians. Benchmarks only: not part of the library.
 */
#ifndef ARK_BENCH_SUPPORT_H
#define ARK_BENCH_SUPPORT_H

#include <stdint.h>
#include <sys/types.h>

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);
/* User + system CPU time of the calling process (every thread), in nanoseconds. */
uint64_t bench_process_cpu_ns(void);
/* User + system CPU time of the calling thread, in nanoseconds. */
uint64_t bench_thread_cpu_ns(void);
/* Pins the calling thread to `cpu` (ignored when negative). Returns 0, or -1 and errno. */
int bench_pin_thread(int cpu);
/* Pins the whole calling process (every thread it starts later inherits it). */
int bench_pin_process(int cpu);
/* Number of online CPUs. */
int bench_cpu_count(void);
/* Busy time of the whole machine so far (every CPU, every state but idle and iowait), ns. */
uint64_t bench_machine_busy_ns(void);
/*
 * The machine is shared: waits until the whole machine was busy less than `max_fraction` of
 * one core during each of two consecutive 0.5 s windows (nothing of ours runs meanwhile), for
 * at most `max_wait_seconds`. Returns the seconds waited, or -1 if it never got quiet.
 */
double bench_wait_for_quiet(double max_fraction, double max_wait_seconds);
/* Sorts `values` and returns the median (0 for an empty array). */
double bench_median(double *values, int count);
/* Parses "1,10,100" into `out` (at most `capacity`); returns the count, or -1 on bad input. */
int bench_parse_int_list(const char *text, int *out, int capacity);

#endif
