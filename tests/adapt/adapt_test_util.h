/* Helpers shared by the adaptation tests: the eventer and host, running chains on a loop. */
#ifndef ADAPT_TEST_UTIL_H
#define ADAPT_TEST_UTIL_H

#include "ark_test.h"
/* The eventer tests' helpers: test_wait_for_count(), test_sleep_ms(), test_load(), ... */
#include "eventer_test_util.h"

#include <ecap/host.h>
#include <eventer/eventer.h>

#include <pthread.h>

/* Starts the eventer with `loops` loop threads and the adaptation host. */
void adapt_test_start(int loops);
/* Stops the eventer, cleans the host up, asserts that no event is left allocated. */
void adapt_test_stop(void);
/* Runs `function(argument)` on loop thread `loop` and waits until it returned. */
void adapt_test_on_loop(int loop, void (*function)(void *), void *argument);
/* Path of a sample adapter module (built next to the tests). */
const char *adapt_test_module(const char *name);
/* Loads a sample module, configures and starts its service `uri` with options. */
ecap_service_t *adapt_test_service(const char *module, const char *uri,
                                   const struct ecap_option *options, size_t count);

/*
 * One message through a chain, driven from a loop thread: writes `body` (in pieces of at
 * most `write_size`, honouring back-pressure) or a generated body of `generated_size` bytes,
 * reads the final body into `output` (unless `discard_output`), then frees the chain.
 */
struct adapt_run {
    /* in */
    ecap_service_t *services[4];
    size_t service_count;
    const char *head; /* the virgin message head */
    const char *body;
    size_t body_size;
    uint64_t generated_size; /* instead of body: bytes "0123456789..." repeated */
    size_t write_size;       /* 0: everything at once */
    size_t vb_capacity;      /* 0: default */
    int discard_output;      /* count output bytes only (and keep the first 64 KiB) */
    int cancel_after_start;  /* cancel right after starting */
    int loop;
    const char *host_option[2]; /* a host meta-information option set on the chain */
    const char *meta_name;      /* adapter meta-information read when done: */
    char meta_value[64];        /* its value ("" if none) */
    /* out */
    enum ecap_outcome outcome;
    char *output_head;
    char *output;
    size_t output_size, output_capacity;
    uint64_t output_count;
    enum ecap_body_state body_state;
    int decisions;
    int done; /* atomic */
    /* private */
    ecap_chain_t *chain;
    uint64_t written;
    int ended;
};

/* Starts `run` on its loop; wait for run->done then call adapt_run_release(). */
void adapt_run_start(struct adapt_run *run);
/* Starts and waits. */
void adapt_run(struct adapt_run *run);
void adapt_run_release(struct adapt_run *run);

/*
 * The stress run (test_adapt_stress.c): 10k transactions of `head` over two loop threads
 * through a spy wrapping `inner`, random stops; asserts that the host never calls a
 * transaction after stop or off its thread. Counts blocked outcomes in `*blocked`.
 */
void adapt_stress_run(ecap_service_t *inner, const char *head, int *blocked);

#endif
