/* Reports the library's own version, so programs can detect a header/library mismatch. */
#include <arkenstone/version.h>

#define ARK_STRINGIFY_(x) #x
#define ARK_STRINGIFY(x)  ARK_STRINGIFY_(x)

const char *ark_version_string(void)
{
    return ARK_STRINGIFY(ARKENSTONE_VERSION_MAJOR) "." ARK_STRINGIFY(
        ARKENSTONE_VERSION_MINOR) "." ARK_STRINGIFY(ARKENSTONE_VERSION_PATCH);
}

int ark_version_number(void)
{
    return ARKENSTONE_VERSION_NUMBER;
}
