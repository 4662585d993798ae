/*
 * Logging on named, hierarchical streams, under libmtev's names.
 *
 * A stream is named by a path such as "debug/eventer"; its parent is the name without the
 * last component ("debug"). Streams are created on first mention by mtev_log_stream_find()
 * and live until the process exits (a stream pointer never dangles, so it can be cached in a
 * static variable).
 *
 * Built-in streams: `mtev_stderr` (writes to fd 2), `mtev_error` (to stderr), `mtev_notice`
 * (to error), `mtev_debug` (to stderr, off by default). A new stream takes its parent's
 * output and its parent's on/off state unless it was set explicitly. Every stream under
 * "debug" is off until enabled, by mtev_log_stream_enable(), by a configuration file's
 * `<logs><log name="debug/eventer" disabled="false"/></logs>` (see mtev_conf_log_init()) or
 * by the environment variable MTEV_DEBUG, read once at start-up: a comma-separated list of
 * stream names to switch on ("debug/eventer,debug/listener"), where "all" switches on every
 * stream and a leading '-' switches one off.
 *
 * mtevL() tests the stream's on/off flag before evaluating its arguments, so a disabled
 * stream costs one load and a branch. Every call writes one complete line with one write(2),
 * so lines from different threads never interleave. All functions are safe from any thread.
 */
#ifndef MTEV_LOG_H
#define MTEV_LOG_H

#include <mtev_defines.h>

#include <stdarg.h>
#include <stdlib.h>
#include <stddef.h>
#include <sys/time.h>

ARK_BEGIN_DECLS

/* A log stream (opaque except for the flag mtevL() reads). */
typedef struct mtev_log_stream *mtev_log_stream_t;

/*
 * The first member of every stream: non-zero when the stream currently writes. Read it
 * through mtev_log_stream_is_enabled(); it is laid out here only so the test is inline.
 */
struct mtev_log_stream_head {
    int enabled;
};

/* Writes lines to file descriptor 2. Always on unless disabled explicitly. */
ARK_EXTERN extern mtev_log_stream_t mtev_stderr;
/* Errors: on, written to stderr. */
ARK_EXTERN extern mtev_log_stream_t mtev_error;
/* Notices: on, written where mtev_error writes. */
ARK_EXTERN extern mtev_log_stream_t mtev_notice;
/* Debugging: off unless enabled, written to stderr. */
ARK_EXTERN extern mtev_log_stream_t mtev_debug;

/*
 * Receives each formatted line of a stream whose output is a writer (see
 * mtev_log_stream_set_writer()). `line` is not NUL-terminated, `length` bytes long and ends
 * with '\n'. Called on the logging thread, possibly from several threads at once.
 */
typedef void (*mtev_log_writer_t)(void *closure, mtev_log_stream_t stream, const char *line,
                                  size_t length);

/*
 * Returns the stream called `name`, creating it (and its missing parents) on first use.
 * Never returns NULL for a non-empty name; NULL for NULL or "". Thread: any.
 */
ARK_EXTERN mtev_log_stream_t mtev_log_stream_find(const char *name);

/* Returns the stream's name (owned by the stream). */
ARK_EXTERN const char *mtev_log_stream_get_name(mtev_log_stream_t stream);

/* Returns true when `stream` is non-NULL and on. Cheap: one relaxed load. */
static inline mtev_boolean mtev_log_stream_is_enabled(mtev_log_stream_t stream)
{
    return (stream &&
            __atomic_load_n(&((const struct mtev_log_stream_head *)(const void *)stream)->enabled,
                            __ATOMIC_RELAXED))
               ? mtev_true
               : mtev_false;
}

/*
 * Switches `stream` on or off explicitly. Descendants that were not set explicitly follow it.
 */
ARK_EXTERN void mtev_log_stream_enable(mtev_log_stream_t stream, mtev_boolean on);

/* Forgets an explicit on/off setting: `stream` follows its parent again. */
ARK_EXTERN void mtev_log_stream_inherit(mtev_log_stream_t stream);

/*
 * Applies a comma-separated list of stream names, as MTEV_DEBUG does: each named stream is
 * switched on, "-name" switches it off, "all" switches every existing and future stream on.
 */
ARK_EXTERN void mtev_log_enable_from_spec(const char *spec);

/*
 * Sends `stream` (and descendants without their own output) to file descriptor `fd`, which
 * the caller keeps open for as long as the stream may write. fd -1 returns to the parent's
 * output.
 */
ARK_EXTERN void mtev_log_stream_set_fd(mtev_log_stream_t stream, int fd);

/*
 * Sends `stream` (and descendants without their own output) to `writer(closure, ...)`; NULL
 * returns to the parent's output. The writer must stay callable until it is replaced.
 */
ARK_EXTERN void mtev_log_stream_set_writer(mtev_log_stream_t stream, mtev_log_writer_t writer,
                                           void *closure);

/*
 * Formats and writes one line to `stream` if it is on: "[time] [stream] message\n" (a
 * missing final newline is added). `now` is the time to print (NULL = now); `file`/`line`
 * name the caller. Returns the number of bytes written, 0 when the stream is off.
 */
ARK_EXTERN int mtev_log(mtev_log_stream_t stream, const struct timeval *now, const char *file,
                        int line, const char *format, ...) __attribute__((format(printf, 5, 6)));
/* mtev_log() with a va_list. */
ARK_EXTERN int mtev_vlog(mtev_log_stream_t stream, const struct timeval *now, const char *file,
                         int line, const char *format, va_list arguments)
    __attribute__((format(printf, 5, 0)));

/*
 * Writes the line to `stream` (or to stderr if `stream` is off or NULL) and aborts. Used
 * for misuse that leaves no safe way to continue.
 */
ARK_EXTERN ARK_NORETURN void mtev_log_fatal(mtev_log_stream_t stream, const char *file, int line,
                                            const char *format, ...)
    __attribute__((format(printf, 4, 5)));

/* Reports a failed mtevAssert() and aborts. */
ARK_EXTERN ARK_NORETURN void mtev_log_assert_failed(const char *expression, const char *file,
                                                    int line, const char *function);

/* Writes a printf-style line to `ls` when it is on; arguments are not evaluated otherwise. */
#define mtevL(ls, ...)                                                     \
    do {                                                                   \
        mtev_log_stream_t mtev_log_ls_ = (ls);                             \
        if (mtev_log_stream_is_enabled(mtev_log_ls_))                      \
            mtev_log(mtev_log_ls_, NULL, __FILE__, __LINE__, __VA_ARGS__); \
    } while (0)

/* mtevL() with an explicit time stamp (`const struct timeval *`). */
#define mtevLT(ls, now, ...)                                              \
    do {                                                                  \
        mtev_log_stream_t mtev_log_ls_ = (ls);                            \
        if (mtev_log_stream_is_enabled(mtev_log_ls_))                     \
            mtev_log(mtev_log_ls_, now, __FILE__, __LINE__, __VA_ARGS__); \
    } while (0)

/* Logs and aborts the process. */
#define mtevFatal(ls, ...) mtev_log_fatal((ls), __FILE__, __LINE__, __VA_ARGS__)

/* Logs and exits with status 2 (an orderly stop for unrecoverable configuration errors). */
#define mtevTerminate(ls, ...)                                 \
    do {                                                       \
        mtev_log((ls), NULL, __FILE__, __LINE__, __VA_ARGS__); \
        exit(2);                                               \
    } while (0)

/* Aborts with a message naming the expression when `condition` is false. Always compiled. */
#define mtevAssert(condition)                                                 \
    do {                                                                      \
        if (mtev_unlikely(!(condition)))                                      \
            mtev_log_assert_failed(#condition, __FILE__, __LINE__, __func__); \
    } while (0)

/* Same as mtevAssert(); the condition is always evaluated (kept for libmtev code). */
#define mtevEvalAssert(condition) mtevAssert(condition)

ARK_END_DECLS

#endif
