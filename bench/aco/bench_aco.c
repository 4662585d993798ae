/*
 * bench_aco: what ACO costs, next to its peers, in one process.
 *
 * 1. Resume+yield round trip (main -> co -> main) of a co alone on its stack, against Boost
 *    Context's jump_fcontext and glibc's swapcontext, measured in interleaved rounds.
 * 2. Shared-stack copy cost: two cos alternating on one stack, each parked with a given
 *    number of live bytes, from 0 B to 64 KiB; next to libaco's figures measured earlier on
 *    this machine (research/coroutines.md, section 5), which cannot run in this process.
 * 3. Memory per parked co: resident memory added by a million cos parked on one stack.
 *
 * Usage: bench_aco [roundtrip] [copy] [memory]   (no argument: all three, about 10-20 s)
 * It prints figures and ratios; it never decides pass or fail.
 */
#include <aco/aco.h>
#include <alloca.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define ESCAPE(pointer) __asm__ volatile("" : : "r"(pointer) : "memory")
#define ROUNDS          11

double bench_fcontext_round_trip_ns(long round_trips);

static double now_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec * 1e9 + now.tv_nsec;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *values, int count)
{
    qsort(values, (size_t)count, sizeof(*values), compare_doubles);
    return values[count / 2];
}

static double minimum(const double *values, int count)
{
    double best = values[0];
    for (int i = 1; i < count; i++)
        if (values[i] < best)
            best = values[i];
    return best;
}

/* ---- 1. Round trip ---- */

static void ping_co_function(void)
{
    for (;;)
        aco_yield();
}

static double aco_round_trip_ns(long round_trips)
{
    aco_share_stack_t *stack = aco_share_stack_new(64 << 10);
    aco_t *co = aco_create(aco_thread_main_co(), stack, 0, ping_co_function, NULL);
    for (int i = 0; i < 1000; i++)
        aco_resume(co);
    double start = now_ns();
    for (long i = 0; i < round_trips; i++)
        aco_resume(co);
    double elapsed = now_ns() - start;
    aco_destroy(co);
    aco_share_stack_destroy(stack);
    return elapsed / round_trips;
}

static ucontext_t swap_main_context, swap_co_context;

static void swap_co_function(void)
{
    for (;;)
        swapcontext(&swap_co_context, &swap_main_context);
}

static double swapcontext_round_trip_ns(long round_trips)
{
    size_t stack_size = 64 << 10;
    char *stack = malloc(stack_size);
    getcontext(&swap_co_context);
    swap_co_context.uc_stack.ss_sp = stack;
    swap_co_context.uc_stack.ss_size = stack_size;
    swap_co_context.uc_link = NULL;
    makecontext(&swap_co_context, swap_co_function, 0);
    for (int i = 0; i < 100; i++)
        swapcontext(&swap_main_context, &swap_co_context);
    double start = now_ns();
    for (long i = 0; i < round_trips; i++)
        swapcontext(&swap_main_context, &swap_co_context);
    double elapsed = now_ns() - start;
    free(stack); /* the context stays parked for good */
    return elapsed / round_trips;
}

static void bench_round_trip(void)
{
    double ours[ROUNDS], boost[ROUNDS], swap[ROUNDS], paired[ROUNDS];
    const long round_trips = 3000000, swap_round_trips = 60000;
    for (int round = 0; round < ROUNDS; round++) {
        /* Alternate who goes first, so drift in machine load hits both sides alike. */
        if (round % 2) {
            boost[round] = bench_fcontext_round_trip_ns(round_trips);
            ours[round] = aco_round_trip_ns(round_trips);
        } else {
            ours[round] = aco_round_trip_ns(round_trips);
            boost[round] = bench_fcontext_round_trip_ns(round_trips);
        }
        paired[round] = ours[round] / boost[round];
        swap[round] = swapcontext_round_trip_ns(swap_round_trips);
    }
    double ours_min = minimum(ours, ROUNDS), boost_min = minimum(boost, ROUNDS);
    double swap_min = minimum(swap, ROUNDS);
    double ours_median = median(ours, ROUNDS), boost_median = median(boost, ROUNDS);
    double swap_median = median(swap, ROUNDS);
    printf("1. Resume+yield round trip (main -> co -> main, co alone on its stack)\n");
    printf("   %d interleaved rounds of %ld round trips (swapcontext: %ld)\n", ROUNDS, round_trips,
           swap_round_trips);
    printf("   %-34s %10s %10s\n", "", "median ns", "min ns");
    printf("   %-34s %10.2f %10.2f\n", "ACO aco_resume + aco_yield", ours_median, ours_min);
    printf("   %-34s %10.2f %10.2f\n", "Boost.Context jump_fcontext x2", boost_median, boost_min);
    printf("   %-34s %10.2f %10.2f\n", "glibc swapcontext x2", swap_median, swap_min);
    printf("   ratio ACO / Boost.Context:   of medians %.2f, of minima %.2f, median of\n"
           "   back-to-back pairs %.2f   (goal <= 1.00)\n",
           ours_median / boost_median, ours_min / boost_min, median(paired, ROUNDS));
    printf("   ratio ACO / swapcontext:     median %.3f, min %.3f\n", ours_median / swap_median,
           ours_min / swap_min);
    printf("   (libaco measured earlier on this machine: 21.5-27 ns; Boost 12.6-15 ns)\n\n");
}

/* ---- 2. Copy cost ---- */

__attribute__((noinline)) static void park_with_area(size_t bytes)
{
    char *area = bytes ? alloca(bytes) : NULL;
    if (bytes)
        memset(area, 0x33, bytes);
    for (;;) {
        ESCAPE(area);
        aco_yield();
        ESCAPE(area);
    }
}

static void parked_area_co_function(void)
{
    park_with_area(*(size_t *)aco_get_arg());
}

struct copy_result {
    double median_ns, min_ns;
    size_t saved_bytes;
};

/* Two cos alternate on one stack (`alone`: one co, so nothing is copied). Each measured
 * operation is one aco_resume: save the other co, restore this one, switch there and back. */
static struct copy_result measure_copy(size_t area, int alone)
{
    aco_share_stack_t *stack = aco_share_stack_new(0);
    aco_t *main_co = aco_thread_main_co();
    aco_t *a = aco_create(main_co, stack, 0, parked_area_co_function, &area);
    aco_t *b = alone ? a : aco_create(main_co, stack, 0, parked_area_co_function, &area);
    long operations = 4000000 / (long)(1 + area / 128);
    if (operations < 4000)
        operations = 4000;
    for (int i = 0; i < 200; i++) {
        aco_resume(a);
        aco_resume(b);
    }
    double times[5];
    for (int round = 0; round < 5; round++) {
        double start = now_ns();
        for (long i = 0; i < operations; i += 2) {
            aco_resume(a);
            aco_resume(b);
        }
        times[round] = (now_ns() - start) / operations;
    }
    struct copy_result result = {median(times, 5), minimum(times, 5), a->saved_bytes_last};
    aco_destroy(a);
    if (!alone)
        aco_destroy(b);
    aco_share_stack_destroy(stack);
    return result;
}

static void bench_copy(void)
{
    /* libaco, 2 cos on one stack, same machine (research section 5): copy, min, median. */
    static const struct {
        size_t copied;
        double min_ns, median_ns;
    } libaco[] = {{24, 25.28, 38.45},
                  {552, 43.20, 57.14},
                  {2088, 76.29, 95.27},
                  {4136, 161.06, 217.34},
                  {8232, 270.93, 358.45}};
    printf("2. Shared-stack copy cost: one aco_resume = save the other co + restore this one\n");
    printf("   + round trip (two cos alternating on one stack)\n");
    printf("   libaco: figures measured earlier on this machine (research/coroutines.md, 5);\n"
           "   it cannot run in this process\n");
    printf("   %-24s %10s %10s   %-28s\n", "saved bytes", "median ns", "min ns",
           "libaco (min / median)");
    struct copy_result alone = measure_copy(0, 1);
    printf("   %-24s %10.2f %10.2f   %s\n", "0 (alone: no copy)", alone.median_ns, alone.min_ns,
           "");
    /* The smallest frame a parked co has; areas are sized to land on libaco's rows. */
    struct copy_result base = measure_copy(0, 0);
    size_t frame = base.saved_bytes;
    size_t targets[] = {0, 552, 2088, 4136, 8232, 16384, 32768, 65536};
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        size_t area = targets[i] > frame ? (targets[i] - frame + 15) & ~(size_t)15 : 0;
        struct copy_result r = i == 0 ? base : measure_copy(area, 0);
        char reference[64] = "";
        for (size_t j = 0; j < sizeof(libaco) / sizeof(libaco[0]); j++) {
            size_t want = i == 0 ? 24 : targets[i];
            if (libaco[j].copied == want)
                snprintf(reference, sizeof(reference), "%zu B: %.0f / %.0f -> ratio %.2f / %.2f",
                         libaco[j].copied, libaco[j].min_ns, libaco[j].median_ns,
                         r.min_ns / libaco[j].min_ns, r.median_ns / libaco[j].median_ns);
        }
        char label[32];
        snprintf(label, sizeof(label), "%zu", r.saved_bytes);
        printf("   %-24s %10.2f %10.2f   %s\n", label, r.median_ns, r.min_ns, reference);
    }
    printf("   (goal: at or below libaco, about 76 ns at 2 KB; ratios are ACO / libaco)\n\n");
}

/* ---- 3. Memory per parked co ---- */

static long resident_bytes(void)
{
    FILE *statm = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;
    if (statm) {
        if (fscanf(statm, "%ld %ld", &size, &resident) != 2)
            resident = 0;
        fclose(statm);
    }
    return resident * sysconf(_SC_PAGESIZE);
}

static void parked_small_co_function(void)
{
    while (!*(int *)aco_get_arg())
        aco_yield();
    aco_exit();
}

static void bench_memory(void)
{
    const size_t count = 1000000;
    aco_t **cos = malloc(count * sizeof(*cos));
    memset(cos, 0, count * sizeof(*cos)); /* resident before the baseline */
    aco_share_stack_t *stack = aco_share_stack_new(0);
    aco_t *main_co = aco_thread_main_co();
    int stop = 0;
    long before = resident_bytes();
    double start = now_ns();
    for (size_t i = 0; i < count; i++) {
        cos[i] = aco_create(main_co, stack, 0, parked_small_co_function, &stop);
        aco_resume(cos[i]); /* parks; the next co's first resume saves its stack */
    }
    double create_ns = (now_ns() - start) / count;
    long after = resident_bytes();
    double per_co = (double)(after - before) / count;
    printf("3. Memory per parked co: %zu cos parked on one share stack\n", count);
    printf("   resident growth %.1f MB = %.1f bytes per co (plus %zu bytes for the caller's\n"
           "   pointer to it); goal <= 200, libaco here 256 (+8)\n",
           (after - before) / 1e6, per_co, sizeof(aco_t *));
    printf("   sizeof(aco_t) %zu, save stack %u bytes for %u bytes saved; create + first resume"
           " %.0f ns per co\n",
           sizeof(aco_t), cos[0]->save_stack_capacity, cos[0]->saved_bytes_last, create_ns);
    /* Every resume here copies one small co out and another in, over 1M save stacks. */
    const int rounds = 3;
    start = now_ns();
    for (int round = 0; round < rounds; round++)
        for (size_t i = 0; i < count; i++)
            aco_resume(cos[i]);
    double resume_ns = (now_ns() - start) / ((double)count * rounds);
    printf("   resuming them round-robin: %.1f ns per resume (each copies %u bytes out and in;\n"
           "   libaco here: 27-51 ns per resume with 2M cos copying 8-56 B)\n",
           resume_ns, cos[0]->saved_bytes_last);
    stop = 1;
    for (size_t i = 0; i < count; i++) {
        aco_resume(cos[i]);
        aco_destroy(cos[i]);
    }
    free(cos);
    aco_share_stack_destroy(stack);
    printf("\n");
}

static void pin_to_one_cpu(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    int cpu = sched_getcpu();
    CPU_SET(cpu < 0 ? 0 : cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) == 0)
        printf("pinned to CPU %d\n\n", cpu < 0 ? 0 : cpu);
    else
        printf("not pinned (sched_setaffinity failed)\n\n");
}

int main(int argc, char **argv)
{
    int round_trip = argc < 2, copy = argc < 2, memory = argc < 2;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "roundtrip") == 0)
            round_trip = 1;
        else if (strcmp(argv[i], "copy") == 0)
            copy = 1;
        else if (strcmp(argv[i], "memory") == 0)
            memory = 1;
        else {
            fprintf(stderr, "usage: %s [roundtrip] [copy] [memory]\n", argv[0]);
            return 2;
        }
    }
    printf("ACO co-routine benchmark (the same process runs ACO and its peers)\n");
    pin_to_one_cpu();
    aco_thread_init(NULL);
    if (round_trip)
        bench_round_trip();
    if (copy)
        bench_copy();
    if (memory)
        bench_memory();
    aco_thread_cleanup();
    return 0;
}
