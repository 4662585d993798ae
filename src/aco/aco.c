/*
 * ACO co-routine core: the per-thread state, share stacks with their guard regions, cos and
 * their save stacks, resume/yield/exit, misuse reports and sanitizer/valgrind announcements.
 * The register switch itself is in aco_switch_<cpu>.S behind aco_switch.h.
 *
 * Ownership of a share stack is tracked lazily: a co's bytes stay on the stack until another
 * co needs it, so a co alone on its stack is never copied, and a co that is resumed again
 * before anyone else used its stack is not copied either.
 */
#include "aco/aco_internal.h"
#include "aco/aco_switch.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#ifndef __has_include
#define __has_include(x) 0
#endif

#if defined(ARK_ASAN) || defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#define ACO_ASAN 1
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(ARK_TSAN) || defined(__SANITIZE_THREAD__) || __has_feature(thread_sanitizer)
#define ACO_TSAN 1
#include <sanitizer/tsan_interface.h>
#endif
#if __has_include(<valgrind/valgrind.h>) && __has_include(<valgrind/memcheck.h>)
#define ACO_VALGRIND 1
#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>
#endif

#define ACO_LIKELY(x)   __builtin_expect(!!(x), 1)
#define ACO_UNLIKELY(x) __builtin_expect(!!(x), 0)
/* Code that must not be instrumented: it reads stack bytes of cos that are switched out. */
#define ACO_UNINSTRUMENTED __attribute__((no_sanitize_address, no_sanitize_thread, noinline))

#define ACO_MIN_STACK_SIZE ((size_t)16 << 10)
/* Save stacks bigger than this shrink when a save needs less than a quarter of them. */
#define ACO_SHRINK_THRESHOLD 4096

/*
 * Sanitizer builds keep a little per-co state after the public struct (the struct's layout
 * does not depend on the build).
 */
struct aco_sanitizer_state {
    void *asan_fake_stack;
    void *tsan_fiber;
};
#if defined(ACO_ASAN) || defined(ACO_TSAN)
#define ACO_EXTRA_BYTES         sizeof(struct aco_sanitizer_state)
#define ACO_SANITIZER_STATE(co) ((struct aco_sanitizer_state *)((co) + 1))
#else
#define ACO_EXTRA_BYTES 0
#endif

/*
 * initial-exec: resume and yield reach it with one %fs-relative access instead of a call to
 * __tls_get_addr. The state is small enough for glibc's static TLS reserve even when the
 * library is loaded with dlopen.
 */
static __thread struct aco_thread_state aco_thread __attribute__((tls_model("initial-exec")));

static pthread_key_t aco_thread_exit_key;
static pthread_once_t aco_thread_exit_once = PTHREAD_ONCE_INIT;

struct aco_thread_state *aco_internal_thread_state(void)
{
    return &aco_thread;
}

/* ---- Reports ---- */

/* Writes "co 0x... (function name in object)" for messages. */
static void aco_describe(const aco_t *co, char *text, size_t capacity)
{
    if (co == NULL) {
        snprintf(text, capacity, "co (null)");
        return;
    }
    if (co->share_stack == NULL) {
        snprintf(text, capacity, "main co %p", (const void *)co);
        return;
    }
    Dl_info info;
    memset(&info, 0, sizeof(info));
    const char *name = NULL, *object = NULL;
    if (dladdr((void *)co->fp, &info) != 0) {
        if (info.dli_sname && info.dli_saddr == (void *)co->fp)
            name = info.dli_sname;
        object = info.dli_fname;
    }
    snprintf(text, capacity, "co %p (function %p%s%s%s%s)", (const void *)co, (void *)co->fp,
             name ? " " : "", name ? name : "", object ? " in " : "", object ? object : "");
}

__attribute__((noreturn, cold, format(printf, 1, 2))) static void aco_fail(const char *format, ...)
{
    va_list arguments;
    fputs("aco: ", stderr);
    va_start(arguments, format);
    vfprintf(stderr, format, arguments);
    va_end(arguments);
    fputc('\n', stderr);
    fflush(stderr);
    abort();
}

__attribute__((noreturn, cold)) static void aco_fail_about(const aco_t *co, const char *what)
{
    char name[512];
    aco_describe(co, name, sizeof(name));
    aco_fail("%s: %s", name, what);
}

static void *aco_allocate(size_t bytes)
{
    void *memory = malloc(bytes);
    if (ACO_UNLIKELY(memory == NULL))
        aco_fail("out of memory allocating %zu bytes", bytes);
    return memory;
}

/* ---- Threads ---- */

static void aco_thread_exit(void *unused)
{
    (void)unused;
    struct aco_thread_state *t = &aco_thread;
    /* Cos still alive (or a thread ending inside a co) keep the thread's stack and main co
     * alive: they leak rather than dangle. */
    if (t->live_cos != 0 || t->current != t->main_co)
        return;
    aco_thread_cleanup();
}

static void aco_thread_exit_key_create(void)
{
    if (pthread_key_create(&aco_thread_exit_key, aco_thread_exit) != 0)
        aco_fail("pthread_key_create failed");
}

static struct aco_thread_state *aco_thread_prepare(void)
{
    struct aco_thread_state *t = &aco_thread;
    if (ACO_LIKELY(t->initialized))
        return t;
    t->initialized = 1;
    t->initial_fp_control = aco_switch_read_fp_control();
    pthread_once(&aco_thread_exit_once, aco_thread_exit_key_create);
    /* Any non-NULL value makes the destructor run at thread exit. */
    pthread_setspecific(aco_thread_exit_key, t);
    return t;
}

void aco_thread_init(aco_cofuncp_t last_word_co_fp)
{
    struct aco_thread_state *t = aco_thread_prepare();
    t->initial_fp_control = aco_switch_read_fp_control();
    t->last_word = last_word_co_fp;
}

/* ---- Share stacks ---- */

aco_share_stack_t *aco_share_stack_new(size_t sz)
{
    struct aco_thread_state *t = aco_thread_prepare();
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t size = sz ? sz : ACO_SHARE_STACK_DEFAULT_SIZE;
    if (size < ACO_MIN_STACK_SIZE)
        size = ACO_MIN_STACK_SIZE;
    /* Save stack sizes are kept in 32 bits. */
    if (size > ((size_t)1 << 31))
        aco_fail("aco_share_stack_new: size %zu is too large (at most 2 GiB)", sz);
    size = (size + page - 1) & ~(page - 1);
    size_t guard = (ACO_SHARE_STACK_GUARD_SIZE + page - 1) & ~(page - 1);
    size_t mapping_size = size + guard;
    /* Reserve everything inaccessible, then open the usable part: the guard stays PROT_NONE
     * so that reads and writes into it both fault. */
    void *mapping =
        mmap(NULL, mapping_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (mapping == MAP_FAILED)
        aco_fail("aco_share_stack_new: cannot map %zu bytes", mapping_size);
    char *bottom = (char *)mapping + guard;
    if (mprotect(bottom, size, PROT_READ | PROT_WRITE) != 0)
        aco_fail("aco_share_stack_new: cannot open %zu bytes of stack", size);

    aco_share_stack_t *s = aco_allocate(sizeof(*s));
    memset(s, 0, sizeof(*s));
    s->bottom = bottom;
    s->size = size;
    s->copy_top = bottom + size - ACO_SWITCH_TOP_RESERVE;
    s->thread = t;
    s->mapping = mapping;
    s->mapping_size = mapping_size;
#ifdef ACO_VALGRIND
    s->valgrind_stack_id = VALGRIND_STACK_REGISTER(bottom, bottom + size);
#endif
    return s;
}

void aco_share_stack_destroy(aco_share_stack_t *sstk)
{
    if (sstk == NULL)
        return;
    if (sstk->users != 0)
        aco_fail("aco_share_stack_destroy: share stack %p is still used by %zu co(s); destroy "
                 "them first",
                 (void *)sstk, sstk->users);
    if (sstk->thread != &aco_thread)
        aco_fail("aco_share_stack_destroy: share stack %p belongs to another thread", (void *)sstk);
#ifdef ACO_VALGRIND
    VALGRIND_STACK_DEREGISTER(sstk->valgrind_stack_id);
#endif
#ifdef ACO_ASAN
    /* Frames left by cos that never returned may still be poisoned. */
    ASAN_UNPOISON_MEMORY_REGION(sstk->bottom, sstk->size);
#endif
    munmap(sstk->mapping, sstk->mapping_size);
    free(sstk);
}

int aco_share_stack_is_owned_by_current_thread(const aco_share_stack_t *sstk)
{
    return sstk && sstk->thread == &aco_thread;
}

size_t aco_share_stack_size(const aco_share_stack_t *sstk)
{
    return sstk ? sstk->size : 0;
}

/* ---- Stack copies ---- */

typedef uint8_t aco_block16 __attribute__((vector_size(16), aligned(1), may_alias));
typedef uint64_t aco_word __attribute__((aligned(1), may_alias));

/*
 * Copies `bytes` (a multiple of 8) between a share stack and a save stack. Not libc memcpy:
 * sanitizers intercept that and would check the (deliberately stale) stack shadow.
 */
ACO_UNINSTRUMENTED static void aco_copy_stack_bytes(char *target, const char *source, size_t bytes)
{
    while (bytes >= 64) {
        aco_block16 a = *(const aco_block16 *)source;
        aco_block16 b = *(const aco_block16 *)(source + 16);
        aco_block16 c = *(const aco_block16 *)(source + 32);
        aco_block16 d = *(const aco_block16 *)(source + 48);
        *(aco_block16 *)target = a;
        *(aco_block16 *)(target + 16) = b;
        *(aco_block16 *)(target + 32) = c;
        *(aco_block16 *)(target + 48) = d;
        source += 64;
        target += 64;
        bytes -= 64;
        /* Keeps the compiler from turning this loop back into a memcpy call. */
        __asm__("" : "+r"(source), "+r"(target));
    }
    while (bytes >= 16) {
        *(aco_block16 *)target = *(const aco_block16 *)source;
        source += 16;
        target += 16;
        bytes -= 16;
    }
    if (bytes >= 8)
        *(aco_word *)target = *(const aco_word *)source;
}

#if defined(__x86_64__)
typedef uint8_t aco_block32 __attribute__((vector_size(32), aligned(1), may_alias));

/* The same with 32-byte moves for the bulk, for CPUs with AVX2 (on the Zen 3 measured, a resume
 * that copies 2 KiB each way went from about 82 to 52 ns). */
__attribute__((target("avx2"))) ACO_UNINSTRUMENTED static void
aco_copy_stack_bytes_avx2(char *target, const char *source, size_t bytes)
{
    while (bytes >= 128) {
        aco_block32 a = *(const aco_block32 *)source;
        aco_block32 b = *(const aco_block32 *)(source + 32);
        aco_block32 c = *(const aco_block32 *)(source + 64);
        aco_block32 d = *(const aco_block32 *)(source + 96);
        *(aco_block32 *)target = a;
        *(aco_block32 *)(target + 32) = b;
        *(aco_block32 *)(target + 64) = c;
        *(aco_block32 *)(target + 96) = d;
        source += 128;
        target += 128;
        bytes -= 128;
        __asm__("" : "+r"(source), "+r"(target));
    }
    /* Clean upper halves before SSE code runs (the compiler omits it before a tail call). */
    __builtin_ia32_vzeroupper();
    aco_copy_stack_bytes(target, source, bytes);
}

static int aco_cpu_has_avx2;

__attribute__((constructor)) static void aco_detect_cpu(void)
{
    __builtin_cpu_init();
    aco_cpu_has_avx2 = __builtin_cpu_supports("avx2");
}

static void aco_copy_stack(char *target, const char *source, size_t bytes)
{
    if (bytes >= 256 && aco_cpu_has_avx2)
        aco_copy_stack_bytes_avx2(target, source, bytes);
    else
        aco_copy_stack_bytes(target, source, bytes);
}
#else
#define aco_copy_stack aco_copy_stack_bytes
#endif

/* Save stack size for `bytes`: 16-byte steps, chosen to fill a malloc chunk exactly. */
static size_t aco_save_stack_fit(size_t bytes)
{
    size_t fit = ((bytes + 8 + 15) & ~(size_t)15) - 8;
    return fit < 24 ? 24 : fit;
}

/* Copies the owner's live bytes off the share stack into its save stack. */
static void aco_save(aco_share_stack_t *s, aco_t *co)
{
    char *sp = co->machine_context[0];
    size_t bytes = (size_t)(s->copy_top - sp);
    if (ACO_UNLIKELY(sp < s->bottom || sp > s->copy_top))
        aco_fail_about(co, "stack pointer outside its share stack (stack overflow?)");
    size_t capacity = co->save_stack_capacity;
    if (co->save_stack == NULL) {
        size_t hint = aco_save_stack_fit(capacity);
        capacity = aco_save_stack_fit(bytes);
        if (hint > capacity)
            capacity = hint;
        co->save_stack = aco_allocate(capacity);
        co->save_stack_capacity = (uint32_t)capacity;
    } else if (bytes > capacity || (capacity > ACO_SHRINK_THRESHOLD && bytes < capacity / 4)) {
        free(co->save_stack);
        capacity = aco_save_stack_fit(bytes);
        co->save_stack = aco_allocate(capacity);
        co->save_stack_capacity = (uint32_t)capacity;
    }
    aco_copy_stack(co->save_stack, sp, bytes);
#ifdef ACO_ASAN
    /* The co's frames leave these addresses: drop their redzones so the next co's frames
     * are not judged by them. */
    ASAN_UNPOISON_MEMORY_REGION(sp, bytes);
#endif
    co->saved_bytes_last = (uint32_t)bytes;
    if (bytes > co->saved_bytes_max)
        co->saved_bytes_max = (uint32_t)bytes;
    co->copy_count++;
}

/* Makes `co` the owner of its share stack: saves the previous owner, restores co. */
__attribute__((noinline)) static void aco_take_stack(aco_share_stack_t *s, aco_t *co)
{
    if (s->owner)
        aco_save(s, s->owner);
    size_t bytes = co->saved_bytes_last;
    if (bytes) {
#ifdef ACO_VALGRIND
        /* Memcheck marked what lies below the previous owner's stack pointer inaccessible. */
        VALGRIND_MAKE_MEM_UNDEFINED(s->copy_top - bytes, bytes);
#endif
        aco_copy_stack(s->copy_top - bytes, co->save_stack, bytes);
    } else
        aco_switch_place_new(s->copy_top);
    s->owner = co;
}

/* ---- Cos ---- */

static aco_t *aco_new_object(void)
{
    aco_t *co = aco_allocate(sizeof(aco_t) + ACO_EXTRA_BYTES);
    memset(co, 0, sizeof(aco_t) + ACO_EXTRA_BYTES);
    return co;
}

static aco_t *aco_reference_main_co(struct aco_thread_state *t)
{
    if (t->main_co == NULL) {
        aco_t *main_co = aco_new_object();
#ifdef ACO_TSAN
        ACO_SANITIZER_STATE(main_co)->tsan_fiber = __tsan_get_current_fiber();
#endif
        t->main_co = main_co;
        t->current = main_co;
    }
    t->main_co_references++;
    return t->main_co;
}

aco_t *aco_create(aco_t *main_co, aco_share_stack_t *sstk, size_t save_stack_sz, aco_cofuncp_t fp,
                  void *arg)
{
    struct aco_thread_state *t = aco_thread_prepare();
    if (main_co == NULL) {
        if (sstk || fp)
            aco_fail("aco_create: a main co (main_co NULL) takes no share stack and no function");
        return aco_reference_main_co(t);
    }
    if (main_co != t->main_co)
        aco_fail("aco_create: main_co %p is not the calling thread's main co (%p)", (void *)main_co,
                 (void *)t->main_co);
    if (sstk == NULL || fp == NULL)
        aco_fail("aco_create: a co needs a share stack and a function");
    if (sstk->thread != t)
        aco_fail("aco_create: share stack %p belongs to another thread", (void *)sstk);
    if (save_stack_sz > sstk->size)
        save_stack_sz = sstk->size;

    aco_t *co = aco_new_object();
    aco_switch_prepare(co->machine_context, sstk->copy_top, fp, t->initial_fp_control);
    co->share_stack = sstk;
    co->arg = arg;
    co->fp = fp;
    co->save_stack_capacity = (uint32_t)save_stack_sz; /* a hint until the first save */
#ifdef ACO_TSAN
    ACO_SANITIZER_STATE(co)->tsan_fiber = __tsan_create_fiber(0);
#endif
    sstk->main_co = main_co;
    sstk->users++;
    t->live_cos++;
    return co;
}

__attribute__((noreturn, cold, noinline)) static void aco_resume_misuse(aco_t *co)
{
    struct aco_thread_state *t = &aco_thread;
    if (co == NULL)
        aco_fail("aco_resume: co is NULL");
    if (co->share_stack == NULL)
        aco_fail_about(co, "aco_resume of a main co (only non-main cos can be resumed)");
    if (co->share_stack->thread != t)
        aco_fail_about(co, "aco_resume on a thread that does not own the co's share stack "
                           "(cos are bound to their thread)");
    if (co->is_end)
        aco_fail_about(co, "aco_resume of a co that has already ended (aco_exit was called)");
    if (t->current == co)
        aco_fail_about(co, "aco_resume of the co that is running");
    char running[512];
    aco_describe(t->current, running, sizeof(running));
    aco_fail("aco_resume called from inside %s; only the main co may resume cos (no nesting)",
             running);
}

/* Switches from the main co into `co`, which owns its stack now. */
__attribute__((always_inline)) static inline void aco_enter(struct aco_thread_state *t,
                                                            aco_share_stack_t *s, aco_t *co)
{
    aco_t *main_co = s->main_co;
    t->current = co;
#ifdef ACO_TSAN
    __tsan_switch_to_fiber(ACO_SANITIZER_STATE(co)->tsan_fiber, 0);
#endif
#ifdef ACO_ASAN
    __sanitizer_start_switch_fiber(&ACO_SANITIZER_STATE(main_co)->asan_fake_stack, s->bottom,
                                   s->size);
    aco_switch(main_co->machine_context, co->machine_context);
    __sanitizer_finish_switch_fiber(ACO_SANITIZER_STATE(main_co)->asan_fake_stack, NULL, NULL);
    if (co->is_end) {
        char *sp = co->machine_context[0];
        ASAN_UNPOISON_MEMORY_REGION(sp, (size_t)(s->copy_top - sp));
    }
#else
    (void)s;
    /*
     * A tail call: the co comes back straight to aco_resume's caller, and the side leaving a
     * co sets `current` back to the main co. Nothing runs here after the switch, so no `ret`
     * follows a switch and the CPU's return predictor stays in step.
     */
    aco_switch(main_co->machine_context, co->machine_context);
#endif
}

/* The resume that copies stacks, out of line so the common path needs no stack frame. */
__attribute__((noinline)) static void aco_resume_with_copy(struct aco_thread_state *t,
                                                           aco_share_stack_t *s, aco_t *co)
{
    aco_take_stack(s, co);
    aco_enter(t, s, co);
}

void aco_resume(aco_t *co)
{
    struct aco_thread_state *t = &aco_thread;
    aco_share_stack_t *s;
    /*
     * s->main_co is the main co of the stack's thread (set by aco_create, alive while any co
     * of the stack is). Only on that thread, and only outside cos, is it the current co: one
     * comparison checks both the thread and "called from the main co".
     */
    if (ACO_UNLIKELY(co == NULL || (s = co->share_stack) == NULL || co->is_end ||
                     s->main_co != t->current))
        aco_resume_misuse(co);
    if (ACO_UNLIKELY(s->owner != co)) {
        aco_resume_with_copy(t, s, co);
        return;
    }
    aco_enter(t, s, co);
}

__attribute__((noreturn, cold, noinline)) static void aco_outside_co(const char *call)
{
    aco_fail("%s called outside a co-routine (from the main co or before any co exists)", call);
}

void aco_yield(void)
{
    struct aco_thread_state *t = &aco_thread;
    aco_t *co = t->current;
    aco_t *main_co = t->main_co;
    if (ACO_UNLIKELY(co == main_co))
        aco_outside_co("aco_yield");
    t->current = main_co;
#ifdef ACO_TSAN
    __tsan_switch_to_fiber(ACO_SANITIZER_STATE(main_co)->tsan_fiber, 0);
#endif
#ifdef ACO_ASAN
    __sanitizer_start_switch_fiber(&ACO_SANITIZER_STATE(co)->asan_fake_stack, t->main_stack_bottom,
                                   t->main_stack_size);
#endif
    aco_switch(co->machine_context, main_co->machine_context);
#ifdef ACO_ASAN
    __sanitizer_finish_switch_fiber(ACO_SANITIZER_STATE(co)->asan_fake_stack, &t->main_stack_bottom,
                                    &t->main_stack_size);
#endif
}

void aco_exit(void)
{
    struct aco_thread_state *t = &aco_thread;
    aco_t *co = t->current;
    aco_t *main_co = t->main_co;
    if (ACO_UNLIKELY(co == main_co))
        aco_outside_co("aco_exit");
    t->current = main_co;
    co->is_end = 1;
    /* Nobody needs these frames again: never copy them out. */
    co->share_stack->owner = NULL;
#ifdef ACO_TSAN
    __tsan_switch_to_fiber(ACO_SANITIZER_STATE(main_co)->tsan_fiber, 0);
#endif
#ifdef ACO_ASAN
    __sanitizer_start_switch_fiber(NULL, t->main_stack_bottom, t->main_stack_size);
#endif
    aco_switch(co->machine_context, main_co->machine_context);
    aco_fail_about(co, "resumed after aco_exit");
}

void aco_internal_co_started(void)
{
#ifdef ACO_ASAN
    struct aco_thread_state *t = &aco_thread;
    __sanitizer_finish_switch_fiber(NULL, &t->main_stack_bottom, &t->main_stack_size);
#endif
}

void aco_internal_co_returned(aco_cofuncp_t fp)
{
    struct aco_thread_state *t = &aco_thread;
    (void)fp;
    if (t->last_word) {
        t->last_word();
        aco_fail_about(t->current, "returned instead of calling aco_exit(); the last-word "
                                   "function returned, aborting");
    }
    aco_fail_about(t->current, "returned instead of calling aco_exit()");
}

static void aco_release_main_co(struct aco_thread_state *t)
{
    if (t->main_co_references == 0)
        aco_fail("aco_destroy: main co %p destroyed more times than created", (void *)t->main_co);
    if (--t->main_co_references != 0)
        return;
    if (t->live_cos != 0)
        aco_fail("aco_destroy: main co %p destroyed while %zu co(s) of its thread still exist",
                 (void *)t->main_co, t->live_cos);
    free(t->main_co);
    t->main_co = NULL;
    t->current = NULL;
}

void aco_destroy(aco_t *co)
{
    if (co == NULL)
        return;
    struct aco_thread_state *t = &aco_thread;
    aco_share_stack_t *s = co->share_stack;
    if (s == NULL) {
        if (co != t->main_co)
            aco_fail("aco_destroy: main co %p does not belong to the calling thread", (void *)co);
        if (t->current != co)
            aco_fail("aco_destroy: main co %p destroyed from inside a co", (void *)co);
        aco_release_main_co(t);
        return;
    }
    if (co == t->current)
        aco_fail_about(co, "aco_destroy of the running co");
    if (s->thread != t)
        aco_fail_about(co, "aco_destroy on a thread that does not own the co's share stack");
    if (s->owner == co) {
#ifdef ACO_ASAN
        char *sp = co->machine_context[0];
        ASAN_UNPOISON_MEMORY_REGION(sp, (size_t)(s->copy_top - sp));
#endif
        s->owner = NULL;
    }
#ifdef ACO_TSAN
    __tsan_destroy_fiber(ACO_SANITIZER_STATE(co)->tsan_fiber);
#endif
    s->users--;
    t->live_cos--;
    free(co->save_stack);
    free(co);
}

aco_t *aco_get_co(void)
{
    return aco_thread.current;
}

void *aco_get_arg(void)
{
    aco_t *co = aco_thread.current;
    return co ? co->arg : NULL;
}

int aco_is_in_co(void)
{
    return aco_thread.current != aco_thread.main_co;
}

aco_t *aco_thread_main_co(void)
{
    struct aco_thread_state *t = aco_thread_prepare();
    if (!t->main_co_held_by_thread) {
        aco_reference_main_co(t);
        t->main_co_held_by_thread = 1;
    }
    return t->main_co;
}

aco_share_stack_t *aco_thread_share_stack(void)
{
    struct aco_thread_state *t = aco_thread_prepare();
    if (t->default_stack == NULL)
        t->default_stack = aco_share_stack_new(0);
    return t->default_stack;
}

aco_t *aco_create_on_thread(aco_cofuncp_t fp, void *arg)
{
    return aco_create(aco_thread_main_co(), aco_thread_share_stack(), 0, fp, arg);
}

void aco_thread_cleanup(void)
{
    struct aco_thread_state *t = &aco_thread;
    if (t->current != t->main_co)
        aco_fail("aco_thread_cleanup called from inside a co");
    if (t->default_stack) {
        aco_share_stack_destroy(t->default_stack);
        t->default_stack = NULL;
    }
    if (t->main_co_held_by_thread) {
        t->main_co_held_by_thread = 0;
        aco_release_main_co(t);
    }
}

void aco_get_stats(const aco_t *co, aco_stats_t *stats)
{
    memset(stats, 0, sizeof(*stats));
    if (co == NULL)
        return;
    stats->saved_bytes_last = co->saved_bytes_last;
    stats->saved_bytes_max = co->saved_bytes_max;
    stats->save_stack_capacity = co->save_stack ? co->save_stack_capacity : 0;
    stats->copy_count = co->copy_count;
}

size_t aco_get_save_stack_size(void)
{
    aco_t *co = aco_thread.current;
    return co && co->share_stack && co->save_stack ? co->save_stack_capacity : 0;
}

size_t aco_get_stack_depth(void)
{
    aco_t *co = aco_thread.current;
    if (co == NULL || co->share_stack == NULL)
        return 0;
    /* The frame address, not a local's: under ASan's use-after-return mode locals live on a
     * separate "fake" stack. */
    char *here = __builtin_frame_address(0);
    char *top = co->share_stack->copy_top;
    return top > here ? (size_t)(top - here) : 0;
}
