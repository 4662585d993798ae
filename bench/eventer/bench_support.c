/* Helpers for the eventer benchmarks (see bench_support.h). */
#include "bench_support.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

uint64_t bench_now_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

static uint64_t clock_ns(clockid_t clock)
{
    struct timespec now;
    clock_gettime(clock, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

uint64_t bench_process_cpu_ns(void)
{
    return clock_ns(CLOCK_PROCESS_CPUTIME_ID);
}

uint64_t bench_thread_cpu_ns(void)
{
    return clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

int bench_pin_thread(int cpu)
{
    if (cpu < 0)
        return 0;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0 ? 0 : -1;
}

int bench_pin_process(int cpu)
{
    if (cpu < 0)
        return 0;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof(set), &set);
}

int bench_cpu_count(void)
{
    long count = sysconf(_SC_NPROCESSORS_ONLN);
    return count < 1 ? 1 : (int)count;
}

uint64_t bench_machine_busy_ns(void)
{
    FILE *file = fopen("/proc/stat", "r");
    unsigned long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0,
                       steal = 0;
    if (!file)
        return 0;
    int fields = fscanf(file, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &system,
                        &idle, &iowait, &irq, &softirq, &steal);
    fclose(file);
    if (fields < 8)
        return 0;
    unsigned long long busy = user + nice + system + irq + softirq + steal;
    return (uint64_t)(busy * (1000000000ull / (unsigned long long)sysconf(_SC_CLK_TCK)));
}

double bench_wait_for_quiet(double max_fraction, double max_wait_seconds)
{
    uint64_t start = bench_now_ns();
    int quiet_windows = 0;
    while (quiet_windows < 2) {
        uint64_t busy_before = bench_machine_busy_ns(), before = bench_now_ns();
        usleep(500000);
        double busy =
            (double)(bench_machine_busy_ns() - busy_before) / (double)(bench_now_ns() - before);
        quiet_windows = busy < max_fraction ? quiet_windows + 1 : 0;
        if ((double)(bench_now_ns() - start) / 1e9 > max_wait_seconds)
            return -1;
    }
    return (double)(bench_now_ns() - start) / 1e9 - 1.0;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_median(double *values, int count)
{
    if (count <= 0)
        return 0;
    qsort(values, (size_t)count, sizeof(*values), compare_doubles);
    if (count % 2)
        return values[count / 2];
    return (values[count / 2 - 1] + values[count / 2]) / 2;
}

int bench_parse_int_list(const char *text, int *out, int capacity)
{
    int count = 0;
    const char *cursor = text;
    while (*cursor) {
        char *end = NULL;
        long value = strtol(cursor, &end, 10);
        if (end == cursor || value < 0 || value > 1000000 || count == capacity)
            return -1;
        out[count++] = (int)value;
        cursor = end;
        if (*cursor == ',')
            cursor++;
        else if (*cursor)
            return -1;
    }
    return count;
}
