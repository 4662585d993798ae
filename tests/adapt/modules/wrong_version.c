/* A module built for a future, incompatible API major version. */
#include <ecap/adapter.h>

static int never_called(ecap_host_t *host, struct ecap_error *error)
{
    return ecap_error_set(error, ECAP_E_INVALID, "must not be called");
}

__attribute__((visibility("default"))) extern const struct ecap_module_entry ecap_module;
const struct ecap_module_entry ecap_module = {ECAP_API_MAJOR + 1, 0, "wrong_version", never_called};
