/*
 * The co-routine core: cos sharing stacks keep their frames across swaps, save stacks are
 * right-sized, each co has its own floating-point control state, overflow hits the guard,
 * misuse is reported by name, and many cos (a million, or many threads) work.
 */
#include "ark_test.h"

#include "aco/aco_internal.h"
#include "aco/aco_switch.h"

#include <aco/aco.h>
#include <alloca.h>
#include <execinfo.h>
#include <fenv.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(ARK_ASAN) || defined(ARK_TSAN)
#define SANITIZED_BUILD 1
#endif

/* Makes the compiler assume `pointer`'s memory is read and written here. */
#define ESCAPE(pointer) __asm__ volatile("" : : "r"(pointer) : "memory")

/* Co functions are global so the misuse messages can name them (the binary exports them). */
void interleaved_co_function(void);
void deep_recursion_co_function(void);
void rounding_co_function(void);
void parked_co_function(void);
void yield_forever_co_function(void);
void sized_co_function(void);
void identity_co_function(void);
void returning_co_function(void);
void exit_once_co_function(void);
void destroy_self_co_function(void);
void nested_resume_co_function(void);
void overflow_co_function(void);
void thread_co_function(void);
void fp_exceptions_co_function(void);
void depth_co_function(void);
void custom_last_word(void);

static uint64_t pattern_word(uint64_t seed, size_t index)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + index * 0xBF58476D1CE4E5B9ull + 1;
    x ^= x >> 31;
    return x;
}

static void fill_words(uint64_t *words, size_t count, uint64_t seed)
{
    for (size_t i = 0; i < count; i++)
        words[i] = pattern_word(seed, i);
    ESCAPE(words);
}

static unsigned count_mismatches(const uint64_t *words, size_t count, uint64_t seed)
{
    ESCAPE(words);
    unsigned wrong = 0;
    for (size_t i = 0; i < count; i++)
        wrong += words[i] != pattern_word(seed, i);
    return wrong;
}

static uint64_t random_state = 88172645463325252ull;

static uint64_t next_random(void)
{
    random_state ^= random_state << 13;
    random_state ^= random_state >> 7;
    random_state ^= random_state << 17;
    return random_state;
}

/* ---- Many cos with large locals on one shared stack ---- */

#define INTERLEAVED_COS    64
#define INTERLEAVED_ROUNDS 40
#define BIG_WORDS          160 /* 1280 bytes */
#define INNER_WORDS        80  /* 640 bytes */

struct interleaved {
    uint64_t id;
    unsigned rounds_done;
    unsigned mismatches;
};

__attribute__((noinline)) static void yield_inside_nested_frame(struct interleaved *state,
                                                                uint64_t seed)
{
    uint64_t inner[INNER_WORDS];
    fill_words(inner, INNER_WORDS, seed ^ 0x5555);
    aco_yield();
    state->mismatches += count_mismatches(inner, INNER_WORDS, seed ^ 0x5555);
}

void interleaved_co_function(void)
{
    struct interleaved *state = aco_get_arg();
    uint64_t big[BIG_WORDS];
    uint64_t *self_pointer = big; /* a pointer to its own local stays valid across swaps */
    for (unsigned round = 0; round < INTERLEAVED_ROUNDS; round++) {
        uint64_t seed = state->id * 1000003 + round;
        fill_words(big, BIG_WORDS, seed);
        if (round % 2)
            yield_inside_nested_frame(state, seed);
        else
            aco_yield();
        state->mismatches += count_mismatches(self_pointer, BIG_WORDS, seed);
        state->rounds_done++;
    }
    aco_exit();
}

ARK_TEST(interleaved_cos_with_large_locals_keep_their_contents)
{
    aco_thread_init(NULL);
    aco_t *main_co = aco_create(NULL, NULL, 0, NULL, NULL);
    aco_share_stack_t *stack = aco_share_stack_new(0);
    struct interleaved states[INTERLEAVED_COS];
    aco_t *cos[INTERLEAVED_COS];
    unsigned resumes[INTERLEAVED_COS];
    for (int i = 0; i < INTERLEAVED_COS; i++) {
        states[i] = (struct interleaved){.id = (uint64_t)i + 1};
        resumes[i] = 0;
        cos[i] = aco_create(main_co, stack, 0, interleaved_co_function, &states[i]);
    }
    int alive = INTERLEAVED_COS;
    while (alive) {
        int i = (int)(next_random() % INTERLEAVED_COS);
        if (cos[i]->is_end)
            continue;
        aco_resume(cos[i]);
        resumes[i]++;
        ARK_ASSERT_EQ(states[i].mismatches, 0);
        if (cos[i]->is_end) {
            ARK_ASSERT_EQ(states[i].rounds_done, INTERLEAVED_ROUNDS);
            alive--;
        } else {
            ARK_ASSERT_EQ(states[i].rounds_done, resumes[i] - 1);
        }
    }
    for (int i = 0; i < INTERLEAVED_COS; i++) {
        ARK_ASSERT_EQ(resumes[i], INTERLEAVED_ROUNDS + 1);
        /* Their frames really were swapped out and in, with the large arrays inside. */
        ARK_ASSERT_GT(cos[i]->copy_count, 0);
        ARK_ASSERT_GE(cos[i]->saved_bytes_max, BIG_WORDS * 8 + INNER_WORDS * 8);
        aco_destroy(cos[i]);
    }
    aco_share_stack_destroy(stack);
    aco_destroy(main_co);
}

/* ---- Deep recursion across swaps ---- */

#define RECURSION_COS   6
#define RECURSION_DEPTH 300

struct recursion {
    uint64_t id;
    int yielding;
    uint64_t result;
    unsigned mismatches;
};

__attribute__((noinline)) static uint64_t recurse(struct recursion *state, int depth, uint64_t acc)
{
    uint64_t frame[8];
    fill_words(frame, 8, state->id * 7919 + (uint64_t)depth);
    if (state->yielding)
        aco_yield();
    uint64_t below = depth == 0 ? acc : recurse(state, depth - 1, acc * 31 + (uint64_t)depth);
    state->mismatches += count_mismatches(frame, 8, state->id * 7919 + (uint64_t)depth);
    if (state->yielding)
        aco_yield();
    return below + frame[depth % 8];
}

void deep_recursion_co_function(void)
{
    struct recursion *state = aco_get_arg();
    state->result = recurse(state, RECURSION_DEPTH, state->id);
    aco_exit();
}

ARK_TEST(deep_recursion_survives_swaps)
{
    aco_t *main_co = aco_create(NULL, NULL, 0, NULL, NULL);
    aco_share_stack_t *stack = aco_share_stack_new(0);
    struct recursion states[RECURSION_COS];
    aco_t *cos[RECURSION_COS];
    for (int i = 0; i < RECURSION_COS; i++) {
        states[i] = (struct recursion){.id = (uint64_t)i + 3, .yielding = 1};
        cos[i] = aco_create(main_co, stack, 0, deep_recursion_co_function, &states[i]);
    }
    for (int alive = RECURSION_COS; alive;) {
        alive = 0;
        for (int i = 0; i < RECURSION_COS; i++) {
            if (cos[i]->is_end)
                continue;
            aco_resume(cos[i]);
            ARK_ASSERT_EQ(states[i].mismatches, 0);
            alive += !cos[i]->is_end;
        }
    }
    for (int i = 0; i < RECURSION_COS; i++) {
        struct recursion plain = {.id = states[i].id, .yielding = 0};
        ARK_ASSERT_EQ(states[i].result, recurse(&plain, RECURSION_DEPTH, plain.id));
        ARK_ASSERT_GT(cos[i]->saved_bytes_max, RECURSION_DEPTH * 64);
        aco_destroy(cos[i]);
    }
    aco_share_stack_destroy(stack);
    aco_destroy(main_co);
}

/* ---- Floating-point control state ---- */

static double divide(double a, double b)
{
    volatile double x = a, y = b;
    return x / y;
}

#if defined(__x86_64__)
static unsigned mxcsr_rounding(void)
{
    uint32_t mxcsr;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    return (mxcsr >> 13) & 3;
}

static unsigned x87_rounding(void)
{
    uint16_t control;
    __asm__ volatile("fnstcw %0" : "=m"(control));
    return (control >> 10) & 3;
}
#endif

struct rounding {
    int seen_after_yield;
    int up_quotient_differs;
    unsigned mxcsr_mode, x87_mode;
};

void rounding_co_function(void)
{
    struct rounding *state = aco_get_arg();
    fesetround(FE_UPWARD);
    aco_yield();
    state->seen_after_yield = fegetround();
    /* Upward rounding: 1/3 rounds up, so it is bigger than the nearest value. */
    state->up_quotient_differs = divide(1.0, 3.0) > 1.0 / 3.0;
#if defined(__x86_64__)
    state->mxcsr_mode = mxcsr_rounding();
    state->x87_mode = x87_rounding();
#endif
    aco_exit();
}

ARK_TEST(rounding_mode_is_per_co)
{
    ARK_ASSERT_EQ(fegetround(), FE_TONEAREST);
    aco_thread_init(NULL);
    aco_t *main_co = aco_create(NULL, NULL, 0, NULL, NULL);
    aco_share_stack_t *stack = aco_share_stack_new(0);
    struct rounding state = {0};
    aco_t *co = aco_create(main_co, stack, 0, rounding_co_function, &state);
    aco_resume(co);
    /* The co switched itself to upward rounding; its caller is unaffected. */
    ARK_ASSERT_EQ(fegetround(), FE_TONEAREST);
    double nearest = divide(1.0, 3.0);
    fesetround(FE_DOWNWARD);
    aco_resume(co);
    ARK_ASSERT_EQ(fegetround(), FE_DOWNWARD);
    fesetround(FE_TONEAREST);
    ARK_ASSERT_EQ(divide(1.0, 3.0), nearest);
    ARK_ASSERT_EQ(state.seen_after_yield, FE_UPWARD);
    ARK_ASSERT_EQ(state.up_quotient_differs, 1);
#if defined(__x86_64__)
    ARK_ASSERT_EQ(state.mxcsr_mode, 2); /* round up, in both units */
    ARK_ASSERT_EQ(state.x87_mode, 2);
#endif
    ARK_ASSERT(co->is_end);

    /* A new co starts with the state recorded at aco_thread_init, not the creator's now. */
    fesetround(FE_TOWARDZERO);
    struct rounding second = {0};
    aco_t *co2 = aco_create(main_co, stack, 0, rounding_co_function, &second);
    aco_resume(co2);
    ARK_ASSERT_EQ(fegetround(), FE_TOWARDZERO);
    fesetround(FE_TONEAREST);
    aco_resume(co2);
    ARK_ASSERT_EQ(second.seen_after_yield, FE_UPWARD);
    aco_destroy(co);
    aco_destroy(co2);
    aco_share_stack_destroy(stack);
    aco_destroy(main_co);
}

struct fp_flags {
    int round_after_yield;
    int inexact_after_yield;
};

static void fp_flags_co_function(void)
{
    struct fp_flags *state = aco_get_arg();
    fesetround(FE_UPWARD);
    feclearexcept(FE_ALL_EXCEPT);
    volatile double quotient = divide(1.0, 3.0); /* raises FE_INEXACT */
    (void)quotient;
    aco_yield();
    state->round_after_yield = fegetround();
    state->inexact_after_yield = fetestexcept(FE_INEXACT) != 0;
    aco_exit();
}

ARK_TEST(exception_flags_belong_to_the_thread_control_to_the_co)
{
    aco_thread_init(NULL);
    aco_t *main_co = aco_create(NULL, NULL, 0, NULL, NULL);
    aco_share_stack_t *stack = aco_share_stack_new(0);
    struct fp_flags state = {0};
    aco_t *co = aco_create(main_co, stack, 0, fp_flags_co_function, &state);
    fesetround(FE_TONEAREST);
    feclearexcept(FE_ALL_EXCEPT);
    aco_resume(co);
    /* The flag the co raised is the thread's; its rounding mode stayed with it. */
    ARK_ASSERT(fetestexcept(FE_INEXACT) != 0);
    ARK_ASSERT_EQ(fegetround(), FE_TONEAREST);
    feclearexcept(FE_ALL_EXCEPT);
    aco_resume(co);
    ARK_ASSERT_EQ(state.round_after_yield, FE_UPWARD);
    ARK_ASSERT_EQ(state.inexact_after_yield, 0); /* cleared by the caller meanwhile */
    ARK_ASSERT_EQ(fegetround(), FE_TONEAREST);
    ARK_ASSERT(co->is_end);
    aco_destroy(co);
    aco_share_stack_destroy(stack);
    aco_destroy(main_co);
}

struct fp_exceptions {
    int enabled_traps;
    double quotient;
};

void fp_exceptions_co_function(void)
{
    struct fp_exceptions *state = aco_get_arg();
    state->enabled_traps = fegetexcept();
    state->quotient = divide(1.0, 3.0); /* inexact: would trap with unmasked exceptions */
    aco_exit();
}

static void *thread_without_init(void *argument)
{
    struct fp_exceptions *state = argument;
    aco_t *main_co = aco_create(NULL, NULL, 0, NULL, NULL);
    aco_share_stack_t *stack = aco_share_stack_new(0);
    aco_t *co = aco_create(main_co, stack, 0, fp_exceptions_co_function, state);
    aco_resume(co);
    aco_destroy(co);
    aco_share_stack_destroy(stack);
    aco_destroy(main_co);
    return NULL;
}

ARK_TEST(thread_without_init_gives_cos_sane_fp_state)
{
    /* libaco without aco_thread_init gave cos all exceptions unmasked (SIGFPE). */
    struct fp_exceptions state = {.enabled_traps = -1};
    pthread_t thread;
    ARK_ASSERT_EQ(pthread_create(&thread, NULL, thread_without_init, &state), 0);
    ARK_ASSERT_EQ(pthread_join(thread, NULL), 0);
    ARK_ASSERT_EQ(state.enabled_traps, 0);
    ARK_ASSERT(state.quotient > 0.333 && state.quotient < 0.334);
}

/* ---- A million parked cos ---- */

/* Sanitizers multiply per-co memory and time; they run a smaller count of the same test.
 * TSan also counts each co as a thread (a fiber), and it allows at most 8128 at once. */
#if defined(ARK_TSAN)
#define PARKED_COS 6000
#elif defined(SANITIZED_BUILD)
#define PARKED_COS 100000
#else
#define PARKED_COS 1000000
#endif

static size_t parked_finished;
static size_t parked_wrong_arg;

void parked_co_function(void)
{
    void *argument = aco_get_arg();
    aco_yield();
    if (aco_get_arg() != argument || aco_get_co()->arg != argument)
        parked_wrong_arg++;
    parked_finished++;
    aco_exit();
}

ARK_TEST_TIMEOUT(million_parked_cos, 300)
{
    aco_t *main_co = aco_create(NULL, NULL, 0, NULL, NULL);
    aco_share_stack_t *stack = aco_share_stack_new(0);
    aco_t **cos = malloc(PARKED_COS * sizeof(*cos));
    ARK_ASSERT(cos != NULL);
    for (size_t i = 0; i < PARKED_COS; i++) {
        cos[i] = aco_create(main_co, stack, 0, parked_co_function, (void *)(i + 1));
        aco_resume(cos[i]); /* parks in aco_yield; the next resume saves it */
    }
    size_t most_saved = 0, most_capacity = 0;
    for (size_t i = 0; i < PARKED_COS; i++) {
        aco_resume(cos[i]);
        ARK_ASSERT(cos[i]->is_end);
        if (cos[i]->saved_bytes_max > most_saved)
            most_saved = cos[i]->saved_bytes_max;
        if (cos[i]->save_stack_capacity > most_capacity)
            most_capacity = cos[i]->save_stack_capacity;
        aco_destroy(cos[i]);
    }
    free(cos);
    ARK_ASSERT_EQ(parked_finished, PARKED_COS);
    ARK_ASSERT_EQ(parked_wrong_arg, 0);
    /* A small co parks in a small save stack (the point of sharing a stack). */
#if !defined(SANITIZED_BUILD)
    ARK_ASSERT_LE(most_saved, 128);
#endif
    ARK_ASSERT_LT(most_capacity, most_saved + 16);
    aco_share_stack_destroy(stack);
    aco_destroy(main_co);
}

/* ---- Copies only when needed; right-sized save stacks ---- */

void yield_forever_co_function(void)
{
    for (;;)
        aco_yield();
}

ARK_TEST(standalone_co_is_never_copied)
{
    aco_t *main_co = aco_create(NULL, NULL, 0, NULL, NULL);
    aco_share_stack_t *stack = aco_share_stack_new(0);
    aco_t *co = aco_create(main_co, stack, 0, yield_forever_co_function, NULL);
    for (int i = 0; i < 1000; i++)
        aco_resume(co);
    aco_stats_t stats;
    aco_get_stats(co, &stats);
    ARK_ASSERT_EQ(stats.copy_count, 0);
    ARK_ASSERT_EQ(stats.save_stack_capacity, 0);
    ARK_ASSERT_EQ(stats.saved_bytes_max, 0);

    /* Once another co uses the stack, it is copied out exactly once per eviction. */
    aco_t *other = aco_create(main_co, stack, 0, yield_forever_co_function, NULL);
    aco_resume(other);
    aco_resume(other);
    aco_get_stats(co, &stats);
    ARK_ASSERT_EQ(stats.copy_count, 1);
    ARK_ASSERT_GT(stats.saved_bytes_last, 0);
    aco_resume(co);
    aco_resume(co);
    aco_get_stats(other, &stats);
    ARK_ASSERT_EQ(stats.copy_count, 1);
    aco_destroy(co);
    aco_destroy(other);
    aco_share_stack_destroy(stack);
    aco_destroy(main_co);
}

struct sized {
    size_t depth;
    int stop;
};

__attribute__((noinline)) static void yield_at_depth(size_t bytes)
{
    char *area = alloca(bytes);
    memset(area, 0x5a, bytes);
    ESCAPE(area);
    aco_yield();
    ESCAPE(area);
}

void sized_co_function(void)
{
    struct sized *state = aco_get_arg();
    while (!state->stop)
        yield_at_depth(state->depth);
    aco_exit();
}

/* Checks the save stack holds the last save; `tight`: it fits it in a 16-byte step. */
static void assert_right_sized(const aco_t *co, size_t depth, int tight)
{
    aco_stats_t stats;
    aco_get_stats(co, &stats);
    ARK_ASSERT_GE(stats.saved_bytes_last, depth);
    ARK_ASSERT_LT(stats.saved_bytes_last, depth + 1024); /* frames around the area */
    ARK_ASSERT_GE(stats.save_stack_capacity, stats.saved_bytes_last);
    if (tight)
        ARK_ASSERT_LT(stats.save_stack_capacity, stats.saved_bytes_last + 16);
    ARK_ASSERT_EQ(stats.save_stack_capacity % 16, 8); /* fills a malloc chunk exactly */
}

ARK_TEST(save_stack_is_right_sized_and_follows_depth)
{
    aco_t *main_co = aco_create(NULL, NULL, 0, NULL, NULL);
    aco_share_stack_t *stack = aco_share_stack_new(0);
    struct sized state = {.depth = 100};
    aco_t *co = aco_create(main_co, stack, 0, sized_co_function, &state);
    aco_t *other = aco_create(main_co, stack, 0, yield_forever_co_function, NULL);
    /* Grows exactly on demand; shrinks only after a large drop (a quarter of a save stack
     * over 4 KiB), so a small dip keeps the buffer. */
    static const struct {
        size_t depth;
        int tight;
    } steps[] = {{100, 1},   {1000, 1}, {1000, 1}, {3000, 1},
                 {20000, 1}, {200, 1},  {64, 0},   {5000, 1}};
    uint64_t expected_copies = 0;
    size_t deepest = 0, previous_capacity = 0;
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        state.depth = steps[i].depth;
        aco_resume(co);    /* yields at the new depth */
        aco_resume(other); /* evicts co: one copy */
        expected_copies++;
        assert_right_sized(co, steps[i].depth, steps[i].tight);
        if (!steps[i].tight)
            ARK_ASSERT_EQ(co->save_stack_capacity, previous_capacity);
        previous_capacity = co->save_stack_capacity;
        if (steps[i].depth > deepest)
            deepest = steps[i].depth;
        ARK_ASSERT_GE(co->saved_bytes_max, deepest);
        ARK_ASSERT_EQ(co->copy_count, expected_copies);
    }
    state.stop = 1;
    aco_resume(co);
    ARK_ASSERT(co->is_end);
    aco_destroy(co);
    aco_destroy(other);
    aco_share_stack_destroy(stack);
    aco_destroy(main_co);
}

/* ---- Identity and queries ---- */

struct identity {
    aco_t *seen_co;
    void *seen_arg;
    int in_co;
    size_t save_stack_size_second_run;
};

void identity_co_function(void)
{
    struct identity *state = aco_get_arg();
    state->seen_co = aco_get_co();
    state->seen_arg = aco_get_arg();
    state->in_co = aco_is_in_co();
    aco_yield();
    state->save_stack_size_second_run = aco_get_save_stack_size();
    aco_exit();
}

ARK_TEST(get_co_and_get_arg_name_the_running_co)
{
    ARK_ASSERT(aco_get_co() == NULL || !aco_is_in_co());
    aco_t *main_co = aco_create(NULL, NULL, 0, NULL, NULL);
    ARK_ASSERT(aco_create(NULL, NULL, 0, NULL, NULL) == main_co); /* one main co per thread */
    aco_destroy(main_co);
    aco_share_stack_t *stack = aco_share_stack_new(64 << 10);
    ARK_ASSERT_GE(aco_share_stack_size(stack), 64 << 10);
    ARK_ASSERT(aco_share_stack_is_owned_by_current_thread(stack));
    struct identity state = {0};
    aco_t *co = aco_create(main_co, stack, 0, identity_co_function, &state);
    aco_t *other = aco_create(main_co, stack, 0, yield_forever_co_function, NULL);
    ARK_ASSERT(co->fp == identity_co_function);
    ARK_ASSERT(co->share_stack == stack);
    aco_resume(co);
    ARK_ASSERT(state.seen_co == co);
    ARK_ASSERT(state.seen_arg == &state);
    ARK_ASSERT_EQ(state.in_co, 1);
    ARK_ASSERT(aco_get_co() == main_co);
    ARK_ASSERT(aco_get_arg() == NULL);
    ARK_ASSERT_EQ(aco_is_in_co(), 0);
    ARK_ASSERT_EQ(aco_get_save_stack_size(), 0);
    aco_resume(other);
    aco_resume(co);
    ARK_ASSERT_EQ(state.save_stack_size_second_run, co->save_stack_capacity);
    ARK_ASSERT_GT(state.save_stack_size_second_run, 0);
    aco_destroy(co);
    aco_destroy(other);
    aco_share_stack_destroy(stack);
    aco_destroy(main_co);
}

struct depth_probe {
    size_t shallow, deep;
};

__attribute__((noinline)) static size_t depth_under_big_frame(void)
{
    char area[2048];
    memset(area, 1, sizeof(area));
    ESCAPE(area);
    return aco_get_stack_depth();
}

void depth_co_function(void)
{
    struct depth_probe *probe = aco_get_arg();
    probe->shallow = aco_get_stack_depth();
    probe->deep = depth_under_big_frame();
    aco_exit();
}

ARK_TEST(stack_depth_query_follows_the_co)
{
    aco_t *main_co = aco_thread_main_co();
    ARK_ASSERT(main_co == aco_thread_main_co());
    ARK_ASSERT_EQ(aco_get_stack_depth(), 0);
    struct depth_probe probe = {0};
    aco_t *co = aco_create_on_thread(depth_co_function, &probe);
    ARK_ASSERT(co->share_stack == aco_thread_share_stack());
    aco_resume(co);
    ARK_ASSERT_GT(probe.shallow, 0);
    ARK_ASSERT_GE(probe.deep, probe.shallow + 2048);
    aco_destroy(co);
    aco_thread_cleanup();
    ARK_ASSERT(aco_get_co() == NULL);
}

/* ---- Unwinding ---- */

struct unwinding {
    int frames;
    void *outermost;
};

void backtrace_co_function(void);

__attribute__((noinline)) static void take_backtrace(struct unwinding *state)
{
    void *frames[64];
    state->frames = backtrace(frames, 64);
    state->outermost = state->frames > 0 ? frames[state->frames - 1] : NULL;
    ESCAPE(frames);
}

void backtrace_co_function(void)
{
    take_backtrace(aco_get_arg());
    aco_yield(); /* and once more after a swap */
    take_backtrace(aco_get_arg());
    aco_exit();
}

static void assert_ends_at_entry(const struct unwinding *state)
{
    /* take_backtrace, the co function, the entry trampoline: and nothing past it. */
    ARK_ASSERT_GE(state->frames, 3);
    ARK_ASSERT_LT(state->frames, 8);
    uintptr_t entry = (uintptr_t)aco_switch_entry, outermost = (uintptr_t)state->outermost;
    ARK_ASSERT_MSG(outermost > entry && outermost < entry + 64,
                   "outermost frame %p is not in the entry trampoline %p", state->outermost,
                   (void *)aco_switch_entry);
}

ARK_TEST(backtraces_in_a_co_end_at_its_entry)
{
    aco_t *main_co = aco_create(NULL, NULL, 0, NULL, NULL);
    aco_share_stack_t *stack = aco_share_stack_new(0);
    struct unwinding state = {0};
    aco_t *co = aco_create(main_co, stack, 0, backtrace_co_function, &state);
    aco_t *other = aco_create(main_co, stack, 0, yield_forever_co_function, NULL);
#if defined(__x86_64__)
    /* Where an unwinder without the trampoline's unwind info would look for a return
     * address: make it plausible, so only that unwind info can stop the walk. */
    ((void **)stack->copy_top)[1] = (char *)(uintptr_t)take_backtrace + 4;
#endif
    aco_resume(co);
    assert_ends_at_entry(&state);
    aco_resume(other);
    memset(&state, 0, sizeof(state));
    aco_resume(co);
    assert_ends_at_entry(&state);
    aco_destroy(co);
    aco_destroy(other);
    aco_share_stack_destroy(stack);
    aco_destroy(main_co);
}

/* ---- Cos created by cos ---- */

struct spawner {
    aco_t *child;
    aco_t *main_seen;
    int child_ran;
};

void child_co_function(void);
void spawner_co_function(void);

void child_co_function(void)
{
    struct spawner *state = aco_get_arg();
    state->child_ran = 1;
    aco_exit();
}

void spawner_co_function(void)
{
    struct spawner *state = aco_get_arg();
    /* Creating is allowed inside a co; only resuming must come from the main co. */
    state->main_seen = aco_create(NULL, NULL, 0, NULL, NULL);
    state->child =
        aco_create(state->main_seen, aco_get_co()->share_stack, 0, child_co_function, state);
    aco_yield();
    aco_exit();
}

ARK_TEST(cos_can_create_cos_for_the_main_co_to_run)
{
    aco_t *main_co = aco_create(NULL, NULL, 0, NULL, NULL);
    aco_share_stack_t *stack = aco_share_stack_new(0);
    struct spawner state = {0};
    aco_t *spawner = aco_create(main_co, stack, 0, spawner_co_function, &state);
    aco_resume(spawner);
    ARK_ASSERT(state.main_seen == main_co);
    ARK_ASSERT(state.child != NULL);
    aco_resume(state.child);
    ARK_ASSERT_EQ(state.child_ran, 1);
    aco_resume(spawner);
    ARK_ASSERT(spawner->is_end && state.child->is_end);
    aco_destroy(state.child);
    aco_destroy(spawner);
    aco_share_stack_destroy(stack);
    aco_destroy(main_co); /* the reference taken inside the co */
    aco_destroy(main_co);
}

/* ---- Many threads, each with its own cos ---- */

#define THREADS       4
#define THREAD_COS    16
#define THREAD_ROUNDS 20
#define THREAD_WORDS  80

struct thread_co {
    uint64_t id;
    unsigned mismatches;
};

void thread_co_function(void)
{
    struct thread_co *state = aco_get_arg();
    uint64_t words[THREAD_WORDS];
    for (unsigned round = 0; round < THREAD_ROUNDS; round++) {
        fill_words(words, THREAD_WORDS, state->id + round);
        aco_yield();
        state->mismatches += count_mismatches(words, THREAD_WORDS, state->id + round);
    }
    aco_exit();
}

struct thread_result {
    int index;
    unsigned mismatches;
    unsigned finished;
};

static void *thread_running_cos(void *argument)
{
    struct thread_result *result = argument;
    aco_thread_init(NULL);
    struct thread_co states[THREAD_COS];
    aco_t *cos[THREAD_COS];
    for (int i = 0; i < THREAD_COS; i++) {
        states[i] = (struct thread_co){.id = (uint64_t)result->index * 1000 + (uint64_t)i};
        cos[i] = aco_create_on_thread(thread_co_function, &states[i]);
    }
    for (int round = 0; round <= THREAD_ROUNDS; round++)
        for (int i = THREAD_COS - 1; i >= 0; i--)
            aco_resume(cos[i]);
    for (int i = 0; i < THREAD_COS; i++) {
        result->mismatches += states[i].mismatches;
        result->finished += cos[i]->is_end;
        aco_destroy(cos[i]);
    }
    /* Odd threads clean up explicitly; even ones rely on the thread-exit cleanup. */
    if (result->index % 2)
        aco_thread_cleanup();
    return NULL;
}

ARK_TEST(threads_each_run_their_own_cos)
{
    pthread_t threads[THREADS];
    struct thread_result results[THREADS];
    for (int i = 0; i < THREADS; i++) {
        results[i] = (struct thread_result){.index = i};
        ARK_ASSERT_EQ(pthread_create(&threads[i], NULL, thread_running_cos, &results[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        ARK_ASSERT_EQ(pthread_join(threads[i], NULL), 0);
        ARK_ASSERT_EQ(results[i].mismatches, 0);
        ARK_ASSERT_EQ(results[i].finished, THREAD_COS);
    }
}

/* ---- The guard region ---- */

struct overflow_setup {
    size_t bytes_past_bottom;
    int read_only; /* only read the far end (the guard is not even readable) */
};

static aco_share_stack_t *overflow_neighbour;
static volatile size_t overflow_bytes_past_bottom;
static volatile int overflow_read_only;

#define NEIGHBOUR_CHECKED_BYTES (64 << 10)

static int neighbour_intact(void)
{
    const unsigned char *top = (const unsigned char *)overflow_neighbour->bottom +
                               overflow_neighbour->size - NEIGHBOUR_CHECKED_BYTES;
    for (size_t i = 0; i < NEIGHBOUR_CHECKED_BYTES; i++)
        if (top[i] != 0xA5)
            return 0;
    return 1;
}

static void on_guard_fault(int signal_number)
{
    static const char intact[] = "guard fault; neighbour stack intact\n";
    static const char broken[] = "guard fault; neighbour stack CORRUPTED\n";
    if (neighbour_intact())
        write(STDERR_FILENO, intact, sizeof(intact) - 1);
    else
        write(STDERR_FILENO, broken, sizeof(broken) - 1);
    /* Returning re-runs the faulting store, which now kills the process with SIGSEGV. */
    signal(signal_number, SIG_DFL);
}

void overflow_co_function(void)
{
    /* One frame reaching `bytes_past_bottom` below the stack's lowest byte, written only at
     * its far end: the pattern that jumped libaco's single guard page. */
    char here;
    aco_share_stack_t *stack = aco_get_co()->share_stack;
    size_t room = (size_t)(&here - stack->bottom);
    char *frame = alloca(room + overflow_bytes_past_bottom);
    ESCAPE(frame);
    if (overflow_read_only)
        fprintf(stderr, "read %d\n", *(volatile char *)frame);
    else
        frame[0] = 1;
    ESCAPE(frame);
    aco_exit();
}

static void overflow_in_child(void *argument)
{
    const struct overflow_setup *setup = argument;
    aco_share_stack_t *first = aco_share_stack_new(64 << 10);
    aco_share_stack_t *second = aco_share_stack_new(64 << 10);
    /* Overflow the higher stack: mappings are usually adjacent, so its guard is all that
     * separates it from the lower one. */
    aco_share_stack_t *victim = first->bottom > second->bottom ? first : second;
    overflow_neighbour = victim == first ? second : first;
    memset(overflow_neighbour->bottom + overflow_neighbour->size - NEIGHBOUR_CHECKED_BYTES, 0xA5,
           NEIGHBOUR_CHECKED_BYTES);
    overflow_bytes_past_bottom = setup->bytes_past_bottom;
    overflow_read_only = setup->read_only;

    static char alternate_stack[64 << 10];
    stack_t alternate = {.ss_sp = alternate_stack, .ss_size = sizeof(alternate_stack)};
    sigaltstack(&alternate, NULL);
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = on_guard_fault;
    action.sa_flags = SA_ONSTACK;
    sigaction(SIGSEGV, &action, NULL);

    aco_t *main_co = aco_create(NULL, NULL, 0, NULL, NULL);
    aco_t *co = aco_create(main_co, victim, 0, overflow_co_function, NULL);
    aco_resume(co);
    fprintf(stderr, "overflow was not caught\n");
}

static void assert_overflow_caught(size_t bytes_past_bottom, int read_only)
{
    char text[4096];
    struct overflow_setup setup = {bytes_past_bottom, read_only};
    int status = ark_test_run_in_child(overflow_in_child, &setup, text, sizeof(text));
    ARK_ASSERT_MSG(strstr(text, "not caught") == NULL, "%s", text);
    ARK_ASSERT_MSG(strstr(text, "CORRUPTED") == NULL, "%s", text);
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV) {
        ARK_ASSERT_MSG(strstr(text, "neighbour stack intact") != NULL, "%s", text);
        return;
    }
#if defined(SANITIZED_BUILD)
    /* A sanitizer may keep SIGSEGV for itself: it reports the fault and ends the process. */
    ARK_ASSERT_MSG(strstr(text, "SEGV") || strstr(text, "stack-overflow"), "%s", text);
#else
    ARK_ASSERT_MSG(0, "child did not die by SIGSEGV (status %d): %s", status, text);
#endif
}

ARK_TEST(overflow_by_one_kilobyte_hits_the_guard)
{
    assert_overflow_caught(1 << 10, 0);
}

ARK_TEST(overflow_by_a_large_frame_hits_the_guard)
{
    assert_overflow_caught(ACO_SHARE_STACK_GUARD_SIZE - 4096, 0);
}

ARK_TEST(reading_past_the_stack_hits_the_guard)
{
    assert_overflow_caught(8 << 10, 1);
}

/* ---- Misuse is reported by name ---- */

static void assert_dies_with(void (*scenario)(void *), const char *message, const char *name)
{
    char text[4096];
    int status = ark_test_run_in_child(scenario, NULL, text, sizeof(text));
    ARK_ASSERT_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "status %d, stderr: %s",
                   status, text);
    ARK_ASSERT_MSG(strncmp(text, "aco: ", 5) == 0, "stderr: %s", text);
    ARK_ASSERT_MSG(strstr(text, message) != NULL, "expected \"%s\" in: %s", message, text);
    if (name)
        ARK_ASSERT_MSG(strstr(text, name) != NULL, "expected \"%s\" in: %s", name, text);
}

void exit_once_co_function(void)
{
    aco_exit();
}

static void resume_ended(void *unused)
{
    aco_t *main_co = aco_create(NULL, NULL, 0, NULL, NULL);
    aco_t *co = aco_create(main_co, aco_share_stack_new(0), 0, exit_once_co_function, NULL);
    aco_resume(co);
    aco_resume(co);
}

ARK_TEST(resume_of_ended_co_is_reported)
{
    assert_dies_with(resume_ended, "already ended", "exit_once_co_function");
}

void destroy_self_co_function(void)
{
    aco_destroy(aco_get_co());
    aco_exit();
}

static void destroy_running(void *unused)
{
    aco_t *main_co = aco_create(NULL, NULL, 0, NULL, NULL);
    aco_resume(aco_create(main_co, aco_share_stack_new(0), 0, destroy_self_co_function, NULL));
}

ARK_TEST(destroy_of_running_co_is_reported)
{
    assert_dies_with(destroy_running, "aco_destroy of the running co", "destroy_self_co_function");
}

void nested_resume_co_function(void)
{
    aco_t *inner = aco_get_arg();
    aco_resume(inner);
    aco_exit();
}

static void resume_from_co(void *unused)
{
    aco_t *main_co = aco_create(NULL, NULL, 0, NULL, NULL);
    aco_share_stack_t *stack = aco_share_stack_new(0);
    aco_t *inner = aco_create(main_co, stack, 0, yield_forever_co_function, NULL);
    aco_resume(aco_create(main_co, stack, 0, nested_resume_co_function, inner));
}

ARK_TEST(resume_from_inside_a_co_is_reported)
{
    assert_dies_with(resume_from_co, "only the main co may resume", "nested_resume_co_function");
}

static void yield_outside(void *unused)
{
    aco_create(NULL, NULL, 0, NULL, NULL);
    aco_yield();
}

ARK_TEST(yield_outside_a_co_is_reported)
{
    assert_dies_with(yield_outside, "aco_yield called outside a co-routine", NULL);
}

static void yield_before_anything(void *unused)
{
    aco_yield();
}

ARK_TEST(yield_before_any_co_is_reported)
{
    assert_dies_with(yield_before_anything, "aco_yield called outside a co-routine", NULL);
}

static void exit_outside(void *unused)
{
    aco_create(NULL, NULL, 0, NULL, NULL);
    aco_exit();
}

ARK_TEST(exit_outside_a_co_is_reported)
{
    assert_dies_with(exit_outside, "aco_exit called outside a co-routine", NULL);
}

void returning_co_function(void)
{
}

static void return_from_co(void *unused)
{
    aco_thread_init(NULL);
    aco_t *main_co = aco_create(NULL, NULL, 0, NULL, NULL);
    aco_resume(aco_create(main_co, aco_share_stack_new(0), 0, returning_co_function, NULL));
}

ARK_TEST(returning_co_ends_in_the_default_last_word)
{
    assert_dies_with(return_from_co, "returned instead of calling aco_exit()",
                     "returning_co_function");
}

void custom_last_word(void)
{
    fprintf(stderr, "custom last word for %s co\n",
            aco_get_co()->fp == returning_co_function ? "the returning" : "another");
}

static void return_with_custom_last_word(void *unused)
{
    aco_thread_init(custom_last_word);
    aco_t *main_co = aco_create(NULL, NULL, 0, NULL, NULL);
    aco_resume(aco_create(main_co, aco_share_stack_new(0), 0, returning_co_function, NULL));
}

ARK_TEST(returning_co_runs_the_custom_last_word)
{
    char text[4096];
    int status = ark_test_run_in_child(return_with_custom_last_word, NULL, text, sizeof(text));
    ARK_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    ARK_ASSERT_MSG(strstr(text, "custom last word for the returning co") == text, "%s", text);
}

static void destroy_stack_in_use(void *unused)
{
    aco_t *main_co = aco_create(NULL, NULL, 0, NULL, NULL);
    aco_share_stack_t *stack = aco_share_stack_new(0);
    aco_create(main_co, stack, 0, yield_forever_co_function, NULL);
    aco_share_stack_destroy(stack);
}

ARK_TEST(destroying_a_stack_in_use_is_reported)
{
    assert_dies_with(destroy_stack_in_use, "still used by 1 co(s)", NULL);
}

static void destroy_main_with_cos(void *unused)
{
    aco_t *main_co = aco_create(NULL, NULL, 0, NULL, NULL);
    aco_create(main_co, aco_share_stack_new(0), 0, yield_forever_co_function, NULL);
    aco_destroy(main_co);
}

ARK_TEST(destroying_main_co_before_its_cos_is_reported)
{
    assert_dies_with(destroy_main_with_cos, "still exist", NULL);
}

static void *resume_from_thread(void *co)
{
    aco_resume(co);
    return NULL;
}

static void resume_on_other_thread(void *unused)
{
    aco_t *main_co = aco_create(NULL, NULL, 0, NULL, NULL);
    aco_t *co = aco_create(main_co, aco_share_stack_new(0), 0, yield_forever_co_function, NULL);
    pthread_t thread;
    pthread_create(&thread, NULL, resume_from_thread, co);
    pthread_join(thread, NULL);
}

ARK_TEST(resume_on_another_thread_is_reported)
{
    assert_dies_with(resume_on_other_thread, "does not own the co's share stack",
                     "yield_forever_co_function");
}
