/*
 * ACO: Arkenstone co-routines, the co-routine core (libaco-shaped API).
 *
 * A co-routine ("co") is a function that can stop in the middle (aco_yield) and continue later
 * (aco_resume). Each thread has one *main co*: the thread's own stack and registers. Every
 * other co runs on a *share stack* that many cos may use in turn: when a co leaves a share
 * stack that another co needs, the live part of its stack is copied to the co's own *save
 * stack* (a small heap buffer, sized to what was used, in 16-byte steps) and copied back, to
 * the same addresses, before it continues. A co alone on its share stack is never copied.
 * Switching is asymmetric: only the main co resumes cos, and a co yields back to the main co.
 *
 * Typical use (libaco style):
 *
 *     static void worker(void) {
 *         int *counter = aco_get_arg();
 *         for (int i = 0; i < 3; i++) { (*counter)++; aco_yield(); }
 *         aco_exit();                          // never return from a co's function
 *     }
 *     ...
 *     aco_thread_init(NULL);
 *     aco_t *main_co = aco_create(NULL, NULL, 0, NULL, NULL);
 *     aco_share_stack_t *stack = aco_share_stack_new(0);
 *     aco_t *co = aco_create(main_co, stack, 0, worker, &counter);
 *     while (!co->is_end) aco_resume(co);
 *     aco_destroy(co); aco_share_stack_destroy(stack); aco_destroy(main_co);
 *
 * Rules (a broken rule is reported as "aco: ..." on stderr, then abort(), where checkable):
 * - Thread-bound. A main co, a share stack and the cos on it belong to the thread that
 *   created them; use them only from that thread. Different threads use different stacks.
 * - Never keep a pointer to a local variable of a co that runs on a share stack and use it
 *   from another co (or from the main co) while that co is switched out: another co may be
 *   occupying those addresses. A co may use pointers to its own locals freely. Put anything
 *   shared between cos on the heap.
 * - A co's function must end with aco_exit(). If it returns, the thread's last-word function
 *   runs inside the co (see aco_thread_init), and then the process aborts.
 * - Only the main co may call aco_resume; only a non-main co may call aco_yield / aco_exit.
 * - Destroy every co before the share stack it runs on, and every co of a thread before the
 *   thread's main co. Do not destroy the co that is running.
 * - Copying costs time proportional to the stack depth at the yield point: keep big buffers
 *   off the stack in cos that share a stack (heap or static), and keep recursion shallow.
 *   `-Wstack-usage=1024` helps find large frames.
 * - Each share stack has a large inaccessible guard region (ACO_SHARE_STACK_GUARD_SIZE)
 *   below it: running off the bottom of a share stack faults (SIGSEGV) instead of silently
 *   overwriting other memory, unless a single frame is larger than the guard.
 * - Each co has its own floating-point control state (x87 control word and MXCSR on x86_64,
 *   FPCR on aarch64): a co that changes the rounding mode does not change its caller's.
 *   The sticky exception flags (x87 status word, MXCSR bits 0-5, FPSR) belong to the thread,
 *   not to a co: fetestexcept() after a resume also sees flags the co raised.
 *   A new co starts with the thread's state as it was at aco_thread_init (or at the thread's
 *   first aco call if aco_thread_init was not called).
 * - `errno` is not switched: it belongs to the thread. Save it yourself if a co must keep
 *   it across a yield.
 *
 * Sanitizers: built with ASan or TSan, switches are announced to the sanitizer (fibers) and
 * stack copies are done by uninstrumented code, so co-routines do not cause reports. Under
 * valgrind, share stacks are registered as stacks when <valgrind/valgrind.h> was available.
 */
#ifndef ACO_ACO_H
#define ACO_ACO_H

#include <stddef.h>
#include <stdint.h>

#include <arkenstone/version.h>

ARK_BEGIN_DECLS

/* A co's function: takes nothing (read the argument with aco_get_arg), must not return. */
typedef void (*aco_cofuncp_t)(void);

/* A share stack: opaque, created by aco_share_stack_new. */
typedef struct aco_share_stack aco_share_stack_t;

/* Words of machine state kept while a co is switched out (private). */
#if defined(__x86_64__)
#define ACO_MACHINE_CONTEXT_WORDS 8
#elif defined(__aarch64__)
#define ACO_MACHINE_CONTEXT_WORDS 22
#else
#error "ACO supports x86_64 and aarch64 only"
#endif

/* The default share stack size (aco_share_stack_new(0)) and the guard below every stack. */
#define ACO_SHARE_STACK_DEFAULT_SIZE ((size_t)2 << 20)
#define ACO_SHARE_STACK_GUARD_SIZE   ((size_t)256 << 10)

/*
 * A co-routine. Users may read the fields documented as readable; the others are private.
 * Objects are created by aco_create and freed by aco_destroy only.
 */
typedef struct aco {
    void *machine_context[ACO_MACHINE_CONTEXT_WORDS]; /* private: saved registers */
    aco_share_stack_t *share_stack; /* readable: the stack it runs on, NULL for a main co */
    void *arg;                      /* readable: the argument given to aco_create */
    aco_cofuncp_t fp;               /* readable: the co's function, NULL for a main co */
    void *save_stack;               /* private: heap copy of the stack while switched out */
    uint32_t save_stack_capacity;   /* readable: bytes allocated for the save stack */
    uint32_t saved_bytes_last;      /* readable: bytes copied out at the last save */
    uint32_t saved_bytes_max;       /* readable: most bytes ever copied out at one save */
    uint8_t is_end;                 /* readable: 1 once the co has called aco_exit() */
    uint8_t reserved[3];            /* private */
    uint64_t copy_count;            /* readable: times the stack was copied out (saved) */
} aco_t;

/* A snapshot of a co's copy statistics (see aco_get_stats). */
typedef struct aco_stats {
    size_t saved_bytes_last;    /* bytes copied out when the co last left its share stack */
    size_t saved_bytes_max;     /* largest such copy */
    size_t save_stack_capacity; /* bytes currently allocated for the save stack */
    uint64_t copy_count;        /* how many times the co's stack was copied out */
} aco_stats_t;

/*
 * Prepares the calling thread for co-routines and sets its last-word function: the function
 * that runs (inside the co, aco_get_co() naming it) when a co's function returns instead of
 * calling aco_exit(). The process aborts after it, even if it returns. NULL selects the
 * default, which prints the co's address and function name to stderr. It also records the
 * thread's floating-point control state, which new cos start with. Calling it is optional
 * (the first aco call of a thread does the same with the default last word) and it may be
 * called again to change the last-word function. Thread: the thread being prepared.
 */
ARK_EXTERN void aco_thread_init(aco_cofuncp_t last_word_co_fp);

/*
 * Creates a share stack of at least `sz` usable bytes (0: ACO_SHARE_STACK_DEFAULT_SIZE;
 * rounded up to whole pages, at least 16 KiB, at most 2 GiB), with an inaccessible guard region of
 * ACO_SHARE_STACK_GUARD_SIZE below it. It belongs to the calling thread. Memory is reserved,
 * pages are used only when touched. Aborts with a message if the mapping fails.
 */
ARK_EXTERN aco_share_stack_t *aco_share_stack_new(size_t sz);

/*
 * Frees a share stack. Every co created on it must have been destroyed first (aborts with a
 * message otherwise). NULL is ignored. Thread: the owner thread.
 */
ARK_EXTERN void aco_share_stack_destroy(aco_share_stack_t *sstk);

/*
 * Creates a co-routine.
 * - main_co NULL: returns the calling thread's main co (sstk and fp must be NULL). The first
 *   call creates it; later calls return the same object and count a reference; each call
 *   is matched by one aco_destroy.
 * - otherwise: a new co that will run fp() on `sstk` when first resumed, with aco_get_arg()
 *   returning `arg`. main_co must be the calling thread's main co and sstk a share stack of
 *   the calling thread. `save_stack_sz` is a hint for the save stack's first allocation
 *   (0: exactly what the first save needs); the save stack is allocated at the first save
 *   and grows (or shrinks after a large drop) as needed.
 * The co does not run until aco_resume. Aborts with a message on misuse or out of memory.
 */
ARK_EXTERN aco_t *aco_create(aco_t *main_co, aco_share_stack_t *sstk, size_t save_stack_sz,
                             aco_cofuncp_t fp, void *arg);

/*
 * Runs `co` until it yields or exits, then returns. Only the thread's main co may resume
 * (not from inside a co), on the thread that owns co's stack; co must not have ended.
 * Misuse is reported then aborts.
 */
ARK_EXTERN void aco_resume(aco_t *co);

/* From inside a co: switches back to the main co; returns when the co is resumed again. */
ARK_EXTERN void aco_yield(void);

/* From inside a co: marks it ended (is_end = 1) and switches to the main co for good. */
ARK_EXTERN void aco_exit(void) __attribute__((noreturn));

/*
 * Frees a co (its save stack and the object). A co may be destroyed whether it has ended or
 * is parked in aco_yield (its frames are then abandoned, nothing on them runs). Destroying
 * the running co is misuse. Destroying a main co drops one reference (see aco_create); the
 * last one frees it, and then no other co of the thread may still exist. NULL is ignored.
 */
ARK_EXTERN void aco_destroy(aco_t *co);

/* The running co: the current non-main co, or the thread's main co when not inside a co
 * (NULL if the thread has none). */
ARK_EXTERN aco_t *aco_get_co(void);

/* The argument of the running co (NULL in the main co). */
ARK_EXTERN void *aco_get_arg(void);

/* ---- Beyond libaco: what an event loop built on cos needs ---- */

/* 1 when called from inside a non-main co, else 0. Thread: any. */
ARK_EXTERN int aco_is_in_co(void);

/*
 * The calling thread's main co, created if needed. The thread holds this reference itself:
 * do not aco_destroy it; aco_thread_cleanup (or thread exit) releases it.
 */
ARK_EXTERN aco_t *aco_thread_main_co(void);

/*
 * The calling thread's default share stack (default size), created on first use and owned
 * by the thread (released by aco_thread_cleanup or at thread exit). Do not destroy it.
 */
ARK_EXTERN aco_share_stack_t *aco_thread_share_stack(void);

/*
 * Creates a co on the calling thread's default share stack, resumed by the thread's main co:
 * the safe way to start a co on a stack the calling thread owns. Like aco_create otherwise.
 */
ARK_EXTERN aco_t *aco_create_on_thread(aco_cofuncp_t fp, void *arg);

/*
 * Releases the thread's default share stack and the thread's own reference to its main co.
 * Every co created on the default stack must have been destroyed (aborts with a message
 * otherwise). Runs by itself when a thread that used ACO exits (not for the process' main
 * thread at exit, where the memory is simply reclaimed).
 */
ARK_EXTERN void aco_thread_cleanup(void);

/* 1 if `sstk` belongs to the calling thread, else 0. */
ARK_EXTERN int aco_share_stack_is_owned_by_current_thread(const aco_share_stack_t *sstk);

/* Usable bytes of a share stack (not counting the guard). */
ARK_EXTERN size_t aco_share_stack_size(const aco_share_stack_t *sstk);

/* Fills *stats with co's copy statistics. */
ARK_EXTERN void aco_get_stats(const aco_t *co, aco_stats_t *stats);

/* The running co's save stack capacity in bytes (0 in the main co). */
ARK_EXTERN size_t aco_get_save_stack_size(void);

/*
 * How many bytes of its share stack the running co uses at this point (what would be copied
 * if it yielded here, give or take one frame). 0 in the main co.
 */
ARK_EXTERN size_t aco_get_stack_depth(void);

ARK_END_DECLS

#endif
