/*
 * x86_64 context switch and co entry for ACO (System V ABI). See aco_switch.h for the
 * context layout. Only callee-saved state is kept: the switch is an ordinary call, so the
 * caller has already given up everything else.
 */
    .text

/* void aco_switch(void **from, void **to) */
    .globl aco_switch
    .hidden aco_switch
    .type aco_switch, @function
    .p2align 4
aco_switch:
    .cfi_startproc
    stmxcsr 56(%rdi)
    fnstcw  60(%rdi)
    /* rsp points at our return address, which stays on the stack. */
    movq    %rsp, 0(%rdi)
    movq    %rbx, 8(%rdi)
    movq    %rbp, 16(%rdi)
    movq    %r12, 24(%rdi)
    movq    %r13, 32(%rdi)
    movq    %r14, 40(%rdi)
    movq    %r15, 48(%rdi)

    /* Fetch where to continue first, so the jump target is known early. */
    movq    0(%rsi), %rdx
    movq    (%rdx), %rax
    /*
     * MXCSR: only the control bits (6-15: DAZ, masks, rounding, FZ) belong to a context; the
     * sticky status flags (bits 0-5) stay with the thread, as the x87 status word does. A
     * ldmxcsr that changes the register is microcoded and costs ~150 ns here, and flags
     * differ after almost any arithmetic, so load only when the control bits differ, keeping
     * the current flags. The red zone below rsp is ours: this is a leaf on the old stack.
     */
    movl    56(%rdi), %ecx
    movl    56(%rsi), %r8d
    movl    %ecx, %r9d
    xorl    %r8d, %r9d
    testl   $0xffc0, %r9d
    jz      1f
    /* New value: the target's control bits with the current flags, i.e. current ^ (diff & control). */
    andl    $0xffc0, %r9d
    xorl    %ecx, %r9d
    movl    %r9d, -8(%rsp)
    ldmxcsr -8(%rsp)
1:
    fldcw   60(%rsi)
    movq    8(%rsi), %rbx
    movq    16(%rsi), %rbp
    movq    24(%rsi), %r12
    movq    32(%rsi), %r13
    movq    40(%rsi), %r14
    movq    48(%rsi), %r15
    leaq    8(%rdx), %rsp
    /* Leave by an indirect jump: a `ret` into another context would always mispredict. */
    jmpq    *%rax
    .cfi_endproc
    .size aco_switch, .-aco_switch

/*
 * A new co starts here with rsp = copy top + 8 (as if just called) and r12 = its function.
 * The return address is marked undefined so debuggers end the backtrace here.
 */
    .globl aco_switch_entry
    .hidden aco_switch_entry
    .type aco_switch_entry, @function
    .p2align 4
aco_switch_entry:
    .cfi_startproc
    .cfi_undefined rip
    subq    $8, %rsp
    .cfi_adjust_cfa_offset 8
    call    aco_internal_co_started
    call    *%r12
    movq    %r12, %rdi
    call    aco_internal_co_returned
    ud2
    .cfi_endproc
    .size aco_switch_entry, .-aco_switch_entry

    .section .note.GNU-stack, "", @progbits
