/*
 * Arkenstone version and the export macro every public header uses.
 *
 * Only the headers under include/ are Arkenstone's public API: <aco/aco.h> (co-routines),
 * <eventer/eventer.h> (the event loop), the mtev_*.h headers (logging, configuration,
 * listeners, HTTP and REST, under libmtev's names) and the adaptation API. Anything not
 * declared there may change without notice.
 */
#ifndef ARKENSTONE_VERSION_H
#define ARKENSTONE_VERSION_H

#define ARKENSTONE_VERSION_MAJOR 0
#define ARKENSTONE_VERSION_MINOR 1
#define ARKENSTONE_VERSION_PATCH 0
/* MAJOR * 10000 + MINOR * 100 + PATCH, for compile-time checks. */
#define ARKENSTONE_VERSION_NUMBER \
    (ARKENSTONE_VERSION_MAJOR * 10000 + ARKENSTONE_VERSION_MINOR * 100 + ARKENSTONE_VERSION_PATCH)

/* Marks a symbol exported from libarkenstone.so (the library builds with hidden visibility). */
#define ARK_EXTERN __attribute__((visibility("default")))

#ifdef __cplusplus
#define ARK_BEGIN_DECLS extern "C" {
#define ARK_END_DECLS   }
#else
#define ARK_BEGIN_DECLS
#define ARK_END_DECLS
#endif

ARK_BEGIN_DECLS

/*
 * Returns the version of the library the program runs against, as "MAJOR.MINOR.PATCH"
 * (a static string). Compare with ARKENSTONE_VERSION_NUMBER to detect a header/library
 * mismatch. Thread: any.
 */
ARK_EXTERN const char *ark_version_string(void);
/* Returns ARKENSTONE_VERSION_NUMBER of the library the program runs against. Thread: any. */
ARK_EXTERN int ark_version_number(void);

ARK_END_DECLS

#endif
