/*
 * aarch64 context switch and co entry for ACO (AAPCS64). See aco_switch.h for the context
 * layout. Only callee-saved state is kept: x19-x29, sp, the low halves of v8-v15 (d8-d15),
 * the continuation address and FPCR.
 */
    .text

/* void aco_switch(void **from, void **to) */
    .globl aco_switch
    .hidden aco_switch
    .type aco_switch, %function
    .p2align 4
aco_switch:
    .cfi_startproc
    mov     x9, sp
    str     x9, [x0, #0]
    stp     x19, x20, [x0, #8]
    stp     x21, x22, [x0, #24]
    stp     x23, x24, [x0, #40]
    stp     x25, x26, [x0, #56]
    stp     x27, x28, [x0, #72]
    stp     x29, x30, [x0, #88]
    stp     d8, d9, [x0, #104]
    stp     d10, d11, [x0, #120]
    stp     d12, d13, [x0, #136]
    stp     d14, d15, [x0, #152]
    mrs     x10, fpcr
    str     x10, [x0, #168]

    ldr     x9, [x1, #0]
    ldp     x19, x20, [x1, #8]
    ldp     x21, x22, [x1, #24]
    ldp     x23, x24, [x1, #40]
    ldp     x25, x26, [x1, #56]
    ldp     x27, x28, [x1, #72]
    ldp     x29, x30, [x1, #88]
    ldp     d8, d9, [x1, #104]
    ldp     d10, d11, [x1, #120]
    ldp     d12, d13, [x1, #136]
    ldp     d14, d15, [x1, #152]
    /* Writing FPCR may synchronise the pipeline: skip it when both contexts agree. */
    ldr     x11, [x1, #168]
    cmp     x10, x11
    b.eq    1f
    msr     fpcr, x11
1:
    mov     sp, x9
    /* An indirect branch, not `ret`: the return predictor cannot know the other context. */
    br      x30
    .cfi_endproc
    .size aco_switch, .-aco_switch

/*
 * A new co starts here with sp = its copy top and x19 = its function. The return address is
 * marked undefined so debuggers end the backtrace here.
 */
    .globl aco_switch_entry
    .hidden aco_switch_entry
    .type aco_switch_entry, %function
    .p2align 4
aco_switch_entry:
    .cfi_startproc
    .cfi_undefined x30
    bl      aco_internal_co_started
    blr     x19
    mov     x0, x19
    bl      aco_internal_co_returned
    brk     #0x3e8
    .cfi_endproc
    .size aco_switch_entry, .-aco_switch_entry

    .section .note.GNU-stack, "", %progbits
