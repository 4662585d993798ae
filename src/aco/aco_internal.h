/*
 * ACO internals shared by aco.c and the tests: the share stack object and the per-thread
 * state. Not installed.
 */
#ifndef ACO_INTERNAL_H
#define ACO_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <aco/aco.h>

struct aco_thread_state;

struct aco_share_stack {
    char *bottom;                    /* lowest usable byte (the guard region lies just below) */
    size_t size;                     /* usable bytes: [bottom, bottom + size) */
    char *copy_top;                  /* cos' live bytes are [their saved sp, copy_top) */
    aco_t *owner;                    /* the co whose frames are on the stack now, or NULL */
    struct aco_thread_state *thread; /* the owner thread */
    aco_t *main_co; /* the owner thread's main co, once a co was created on the stack */
    void *mapping;  /* the whole mapping, guard included */
    size_t mapping_size;
    size_t users; /* cos created on this stack and not yet destroyed */
    unsigned valgrind_stack_id;
};

/* Per-thread state (thread-local). */
struct aco_thread_state {
    aco_t *current; /* the running co: a non-main co, else main_co */
    aco_t *main_co;
    size_t main_co_references;
    int main_co_held_by_thread;       /* aco_thread_main_co took a reference */
    aco_share_stack_t *default_stack; /* aco_thread_share_stack */
    aco_cofuncp_t last_word;
    uint64_t initial_fp_control;
    size_t live_cos; /* non-main cos created on this thread, not yet destroyed */
    int initialized;
    /* ASan: the main co's stack, learnt at the first switch into a co. */
    const void *main_stack_bottom;
    size_t main_stack_size;
};

/* The calling thread's state (never NULL). */
struct aco_thread_state *aco_internal_thread_state(void);

#endif
