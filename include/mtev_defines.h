/*
 * Basic definitions shared by the libmtev-compatible headers: the boolean type and a few
 * attribute macros.
 *
 * Programs written against libmtev include <mtev_defines.h> for `mtev_boolean`; Arkenstone
 * keeps that name and its values (mtev_false == 0, mtev_true == 1) so such code compiles
 * unchanged.
 */
#ifndef MTEV_DEFINES_H
#define MTEV_DEFINES_H

#include <arkenstone/version.h>

#include <stddef.h>
#include <stdint.h>

ARK_BEGIN_DECLS

/* A boolean with libmtev's spelling; any non-zero value is true when tested. */
typedef enum { mtev_false = 0, mtev_true = 1 } mtev_boolean;

/* libmtev's export marker: `API_EXPORT(int) f(void);` declares an exported function. */
#ifndef API_EXPORT
#define API_EXPORT(type) ARK_EXTERN type
#endif

/* Hints for branches that are almost always (or never) taken. */
#ifndef mtev_likely
#define mtev_likely(x)   __builtin_expect(!!(x), 1)
#define mtev_unlikely(x) __builtin_expect(!!(x), 0)
#endif

/* Marks a function that never returns. */
#ifndef ARK_NORETURN
#define ARK_NORETURN __attribute__((noreturn))
#endif

ARK_END_DECLS

#endif
