/* Built against the installed library with pkg-config only: the version must match. */
#include <arkenstone/version.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    if (ark_version_number() != ARKENSTONE_VERSION_NUMBER) {
        fprintf(stderr, "header %d, library %d\n", ARKENSTONE_VERSION_NUMBER, ark_version_number());
        return 1;
    }
    printf("arkenstone %s\n", ark_version_string());
    return 0;
}
