/*
 * The smallest adapter: one service, ecap://arkenstone/adapters/minimal, whose transactions
 * forward every message unchanged (use_virgin in start). No options, no body handling.
 */
#include <ecap/adapter.h>

static const char *minimal_uri(void *service)
{
    return "ecap://arkenstone/adapters/minimal";
}

static void minimal_start(void *xaction)
{
    ecap_host_xaction_use_virgin(xaction);
}

static void minimal_stop(void *xaction)
{
}

static const struct ecap_xaction_methods minimal_xaction = {
    .version = 1,
    .start = minimal_start,
    .stop = minimal_stop,
};

/* The transaction needs no state of its own: its pointer is the host transaction. */
static int minimal_make_xaction(void *service, ecap_host_xaction_t *hostx,
                                const struct ecap_xaction_methods **methods, void **xaction)
{
    *methods = &minimal_xaction;
    *xaction = hostx;
    return ECAP_OK;
}

static const struct ecap_service_methods minimal_service = {
    .version = 1,
    .uri = minimal_uri,
    .make_xaction = minimal_make_xaction,
};

static int minimal_register(ecap_host_t *host, struct ecap_error *error)
{
    return ecap_host_register_service(host, &minimal_service, NULL);
}

ECAP_MODULE("minimal", minimal_register);
