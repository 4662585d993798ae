/*
 * The machine-specific part of ACO, behind a small interface: the context switch and the
 * entry trampoline (in aco_switch_<cpu>.S), and how a new co's context and stack top are laid
 * out. Everything else in src/aco is portable C.
 *
 * A context is the array aco_t.machine_context. Word 0 is always the stack pointer as saved
 * by aco_switch; the bytes a co uses on its share stack are [saved sp, copy top).
 */
#ifndef ACO_SWITCH_H
#define ACO_SWITCH_H

#include <stdint.h>

#include <aco/aco.h>

#define ACO_HIDDEN __attribute__((visibility("hidden")))

/*
 * Saves the callee-saved registers, the stack pointer and the floating-point control state of
 * the caller into `from`, loads those of `to` and continues where `to` was saved (by an
 * indirect jump, not a return). Returns when something switches back to `from`.
 */
ACO_HIDDEN void aco_switch(void **from, void **to);

/*
 * Where a new co starts: calls aco_internal_co_started(), then the co's function, then
 * aco_internal_co_returned(fp) if the function returns. Its unwind info ends backtraces.
 */
ACO_HIDDEN void aco_switch_entry(void);

/* Called by aco_switch_entry (defined in aco.c). */
ACO_HIDDEN void aco_internal_co_started(void);
ACO_HIDDEN void aco_internal_co_returned(aco_cofuncp_t fp) __attribute__((noreturn));

#if defined(__x86_64__)

/*
 * x86_64 context words: 0 rsp (pointing at the return address), 1 rbx, 2 rbp, 3 r12, 4 r13,
 * 5 r14, 6 r15, 7 MXCSR (low 32 bits) and x87 control word (bits 32-47). The return address
 * stays on the stack, so a new co's stack holds the entry address at its copy top; the 16
 * bytes above the copy top are the trampoline's frame, never used after it starts.
 */
#define ACO_SWITCH_TOP_RESERVE 16

static inline uint64_t aco_switch_read_fp_control(void)
{
    uint32_t mxcsr;
    uint16_t x87_control;
    __asm__ volatile("stmxcsr %0\n\tfnstcw %1" : "=m"(mxcsr), "=m"(x87_control));
    return (uint64_t)mxcsr | ((uint64_t)x87_control << 32);
}

/* Lays out a new co's context: it starts at aco_switch_entry with r12 = fp. */
static inline void aco_switch_prepare(void **context, char *copy_top, aco_cofuncp_t fp,
                                      uint64_t fp_control)
{
    context[0] = copy_top;
    context[2] = 0; /* rbp: ends frame-pointer walks */
    context[3] = (void *)fp;
    context[7] = (void *)(uintptr_t)fp_control;
}

/* Called each time a co that has never run is placed on its stack. */
static inline void aco_switch_place_new(char *copy_top)
{
    *(void **)copy_top = (void *)aco_switch_entry;
}

#elif defined(__aarch64__)

/*
 * aarch64 context words: 0 sp, 1-10 x19-x28, 11 x29, 12 x30 (where to continue), 13-20
 * d8-d15, 21 FPCR. Nothing of a new co lives on its stack before it starts.
 */
#define ACO_SWITCH_TOP_RESERVE 0

static inline uint64_t aco_switch_read_fp_control(void)
{
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    return fpcr;
}

static inline void aco_switch_prepare(void **context, char *copy_top, aco_cofuncp_t fp,
                                      uint64_t fp_control)
{
    context[0] = copy_top;
    context[1] = (void *)fp; /* x19 */
    context[11] = 0;         /* x29: ends frame-pointer walks */
    context[12] = (void *)aco_switch_entry;
    context[21] = (void *)(uintptr_t)fp_control;
}

static inline void aco_switch_place_new(char *copy_top)
{
    (void)copy_top;
}

#endif

#endif
