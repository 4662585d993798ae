/* A module whose registration fails with a reason. */
#include <ecap/adapter.h>

static int refuse(ecap_host_t *host, struct ecap_error *error)
{
    return ecap_error_set(error, ECAP_E_BAD_OPTION, "licence file missing");
}

ECAP_MODULE("failing", refuse);
