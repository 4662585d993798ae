/* Helpers shared by the adaptation tests. */
#include "adapt_test_util.h"

#include "eventer/eventer_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void adapt_test_start(int loops)
{
    test_eventer_start(loops);
    ARK_ASSERT_EQ(ecap_host_init(), ECAP_OK);
}

void adapt_test_stop(void)
{
    eventer_shutdown();
    eventer_cleanup();
    ecap_host_cleanup();
    ARK_ASSERT_EQ(eventer_allocations_current(), 0);
}

struct on_loop {
    void (*function)(void *);
    void *argument;
    int done;
};

static void run_on_loop(void *argument)
{
    struct on_loop *call = argument;
    call->function(call->argument);
    test_increment(&call->done);
}

void adapt_test_on_loop(int loop, void (*function)(void *), void *argument)
{
    struct on_loop call = {function, argument, 0};
    ARK_ASSERT_EQ(eventer_impl_run_on_loop(loop, run_on_loop, &call), 0);
    test_wait_for_count(&call.done, 1, "a call on a loop thread");
}

const char *adapt_test_module(const char *name)
{
    static char path[4][512];
    static int next;
    char *slot = path[next++ % 4];
    snprintf(slot, sizeof(path[0]), "%s/%s/%s.so", ARK_ADAPTERS_DIR, name, name);
    return slot;
}

ecap_service_t *adapt_test_service(const char *module, const char *uri,
                                   const struct ecap_option *options, size_t count)
{
    if (!ecap_service_find(uri))
        ARK_ASSERT_MSG(ecap_module_load(adapt_test_module(module)) == ECAP_OK, "%s",
                       ecap_host_last_error());
    ecap_service_t *service = ecap_service_find(uri);
    ARK_ASSERT(service != NULL);
    ARK_ASSERT_MSG(ecap_service_configure(service, options, count) == ECAP_OK, "%s",
                   ecap_host_last_error());
    ARK_ASSERT_MSG(ecap_service_start(service) == ECAP_OK, "%s", ecap_host_last_error());
    return service;
}

/* ---- chain runs ---- */

static void run_write(struct adapt_run *run)
{
    static const char pattern[] = "0123456789abcdefghijklmnopqrstuvwxyz\n";
    enum { PERIOD = sizeof(pattern) - 1, SPAN = PERIOD * 440 };
    static char repeated[2 * SPAN];
    if (!repeated[0])
        for (size_t i = 0; i < sizeof(repeated); i++)
            repeated[i] = pattern[i % PERIOD];
    uint64_t total = run->generated_size ? run->generated_size : run->body_size;
    while (!run->ended && run->written < total) {
        size_t n = (size_t)(total - run->written);
        size_t limit = run->write_size ? run->write_size : (run->generated_size ? SPAN : n);
        if (n > limit)
            n = limit;
        const char *data;
        if (run->generated_size) {
            if (n > SPAN)
                n = SPAN;
            data = repeated + run->written % PERIOD;
        } else {
            data = run->body + run->written;
        }
        ssize_t accepted = ecap_chain_vb_write(run->chain, data, n);
        if (accepted < 0) {
            run->ended = 1;
            return;
        }
        run->written += (uint64_t)accepted;
        if ((size_t)accepted < n)
            return; /* wait for on_vb_room */
    }
    if (!run->ended && run->written == total) {
        run->ended = 1;
        ecap_chain_vb_end(run->chain, 1);
    }
}

static void run_read(struct adapt_run *run)
{
    for (;;) {
        ecap_area_t area;
        if (ecap_chain_body_peek(run->chain, &area) != ECAP_OK || area.size == 0)
            break;
        if (!run->discard_output || run->output_size < 65536) {
            if (run->output_size + area.size + 1 > run->output_capacity) {
                size_t capacity = run->output_capacity ? run->output_capacity : 4096;
                while (capacity < run->output_size + area.size + 1)
                    capacity *= 2;
                run->output = realloc(run->output, capacity);
                run->output_capacity = capacity;
            }
            memcpy(run->output + run->output_size, area.data, area.size);
            run->output_size += area.size;
            run->output[run->output_size] = '\0';
        }
        run->output_count += area.size;
        ecap_chain_body_shift(run->chain, area.size);
    }
    run->body_state = ecap_chain_body_state(run->chain);
}

static void on_decision(ecap_chain_t *chain, void *closure, enum ecap_outcome outcome)
{
    struct adapt_run *run = closure;
    run->decisions++;
    run->outcome = outcome;
    ecap_message_t *message = ecap_chain_message(chain);
    if (message) {
        size_t length;
        ARK_ASSERT_EQ(ecap_message_serialize(message, &run->output_head, &length), ECAP_OK);
    }
    run_read(run);
}

static void on_body(ecap_chain_t *chain, void *closure)
{
    run_read(closure);
}

static void on_vb_room(ecap_chain_t *chain, void *closure)
{
    run_write(closure);
}

static void on_done(ecap_chain_t *chain, void *closure)
{
    struct adapt_run *run = closure;
    if (run->meta_name) {
        ecap_area_t value = ecap_chain_adapter_option(chain, run->meta_name);
        snprintf(run->meta_value, sizeof(run->meta_value), "%.*s", (int)value.size,
                 value.data ? value.data : "");
        ecap_area_release(&value);
    }
    if (run->outcome == ECAP_OUTCOME_PENDING)
        run->outcome = ecap_chain_outcome(chain);
    run->body_state = ecap_chain_body_state(chain);
    ecap_chain_free(chain);
    run->chain = NULL;
    test_increment(&run->done);
}

static const struct ecap_chain_callbacks run_callbacks = {
    .on_decision = on_decision,
    .on_body = on_body,
    .on_vb_room = on_vb_room,
    .on_done = on_done,
};

static void run_begin(void *argument)
{
    struct adapt_run *run = argument;
    size_t head_length = 0;
    ecap_message_t *virgin = ecap_message_parse(run->head, strlen(run->head), &head_length);
    ARK_ASSERT_MSG(virgin != NULL, "%s", ecap_host_last_error());
    run->chain =
        ecap_chain_create(run->services, run->service_count, virgin, NULL, &run_callbacks, run);
    ARK_ASSERT_MSG(run->chain != NULL, "%s", ecap_host_last_error());
    if (run->vb_capacity)
        ARK_ASSERT_EQ(ecap_chain_set_vb_capacity(run->chain, run->vb_capacity), ECAP_OK);
    if (run->host_option[0])
        ARK_ASSERT_EQ(ecap_chain_set_option(run->chain, run->host_option[0], run->host_option[1]),
                      ECAP_OK);
    ARK_ASSERT_EQ(ecap_chain_start(run->chain), ECAP_OK);
    if (ecap_message_has_body(virgin))
        run_write(run);
    if (run->cancel_after_start)
        ecap_chain_cancel(run->chain);
}

void adapt_run_start(struct adapt_run *run)
{
    ARK_ASSERT_EQ(eventer_impl_run_on_loop(run->loop, run_begin, run), 0);
}

void adapt_run(struct adapt_run *run)
{
    adapt_run_start(run);
    test_wait_for_count(&run->done, 1, "the chain to finish");
}

void adapt_run_release(struct adapt_run *run)
{
    free(run->output_head);
    free(run->output);
    run->output_head = NULL;
    run->output = NULL;
}
