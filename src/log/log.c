/*
 * Log streams: the registry of named streams, their on/off state and outputs, and the
 * formatter.
 *
 * Streams are never freed, so callers may cache the pointers. Settings (explicit on/off,
 * outputs) change under one registry mutex; each change recomputes the effective flag and
 * output of every stream, so the logging path itself takes no lock: it reads the stream's
 * `enabled` flag and its `effective` output pointer atomically. Outputs are immutable once
 * published and are kept for the life of the process for the same reason.
 */
#include <mtev_log.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct log_output {
    int fd;
    mtev_log_writer_t writer;
    void *closure;
    struct log_output *next_allocated;
};

enum explicit_setting { SETTING_INHERIT = -1, SETTING_OFF = 0, SETTING_ON = 1 };

struct mtev_log_stream {
    struct mtev_log_stream_head head; /* must stay first: mtevL() reads it */
    char *name;
    struct mtev_log_stream *parent;
    int explicit_enabled;   /* enum explicit_setting */
    struct log_output *own; /* NULL = use the parent's */
    struct log_output *effective;
    struct mtev_log_stream *next_stream;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct log_output stderr_output = {.fd = 2};

static struct mtev_log_stream builtin_stderr = {.head = {1},
                                                .name = "stderr",
                                                .explicit_enabled = SETTING_INHERIT,
                                                .own = &stderr_output,
                                                .effective = &stderr_output};
static struct mtev_log_stream builtin_error = {.head = {1},
                                               .name = "error",
                                               .explicit_enabled = SETTING_INHERIT,
                                               .effective = &stderr_output,
                                               .own = NULL,
                                               .parent = &builtin_stderr,
                                               .next_stream = &builtin_stderr};
static struct mtev_log_stream builtin_notice = {.head = {1},
                                                .name = "notice",
                                                .explicit_enabled = SETTING_INHERIT,
                                                .effective = &stderr_output,
                                                .parent = &builtin_error,
                                                .next_stream = &builtin_error};
static struct mtev_log_stream builtin_debug = {.head = {0},
                                               .name = "debug",
                                               .explicit_enabled = SETTING_INHERIT,
                                               .effective = &stderr_output,
                                               .next_stream = &builtin_notice};

mtev_log_stream_t mtev_stderr = &builtin_stderr;
mtev_log_stream_t mtev_error = &builtin_error;
mtev_log_stream_t mtev_notice = &builtin_notice;
mtev_log_stream_t mtev_debug = &builtin_debug;

static struct mtev_log_stream *all_streams = &builtin_debug;
static struct log_output *allocated_outputs;
/* Set by "all" in a spec: streams without an explicit setting are on. */
static int everything_on;
static pthread_once_t environment_once = PTHREAD_ONCE_INIT;

/*
 * Called with registry_lock held. The nearest explicit setting wins; without one, streams
 * under "debug" are off (unless "all" was given) and every other stream is on.
 */
static int effective_enabled(const struct mtev_log_stream *stream)
{
    const struct mtev_log_stream *root = stream;
    for (const struct mtev_log_stream *s = stream; s; s = s->parent) {
        if (s->explicit_enabled != SETTING_INHERIT)
            return s->explicit_enabled;
        root = s;
    }
    return root == &builtin_debug ? everything_on : 1;
}

/* Called with registry_lock held. */
static void recompute_all(void)
{
    for (struct mtev_log_stream *s = all_streams; s; s = s->next_stream) {
        struct log_output *out = NULL;
        for (struct mtev_log_stream *a = s; a && !out; a = a->parent)
            out = a->own;
        __atomic_store_n(&s->effective, out ? out : &stderr_output, __ATOMIC_RELEASE);
        __atomic_store_n(&s->head.enabled, effective_enabled(s), __ATOMIC_RELAXED);
    }
}

/* Called with registry_lock held. */
static struct mtev_log_stream *find_locked(const char *name, size_t length, int create)
{
    for (struct mtev_log_stream *s = all_streams; s; s = s->next_stream)
        if (strlen(s->name) == length && memcmp(s->name, name, length) == 0)
            return s;
    if (!create)
        return NULL;
    struct mtev_log_stream *parent = NULL;
    const char *slash = memrchr(name, '/', length);
    if (slash && slash != name)
        parent = find_locked(name, (size_t)(slash - name), 1);
    if (!parent)
        parent = &builtin_stderr;
    struct mtev_log_stream *stream = calloc(1, sizeof(*stream));
    char *copy = strndup(name, length);
    if (!stream || !copy) {
        free(stream);
        free(copy);
        return parent; /* out of memory: log to the nearest existing ancestor */
    }
    stream->name = copy;
    stream->parent = parent;
    stream->explicit_enabled = SETTING_INHERIT;
    stream->next_stream = all_streams;
    all_streams = stream;
    recompute_all();
    return stream;
}

static void read_environment(void)
{
    const char *spec = getenv("MTEV_DEBUG");
    if (spec && *spec)
        mtev_log_enable_from_spec(spec);
}

mtev_log_stream_t mtev_log_stream_find(const char *name)
{
    if (!name || !*name)
        return NULL;
    pthread_once(&environment_once, read_environment);
    pthread_mutex_lock(&registry_lock);
    struct mtev_log_stream *stream = find_locked(name, strlen(name), 1);
    pthread_mutex_unlock(&registry_lock);
    return stream;
}

__attribute__((constructor)) static void log_environment_at_start(void)
{
    pthread_once(&environment_once, read_environment);
}

const char *mtev_log_stream_get_name(mtev_log_stream_t stream)
{
    return stream ? stream->name : NULL;
}

void mtev_log_stream_enable(mtev_log_stream_t stream, mtev_boolean on)
{
    if (!stream)
        return;
    pthread_mutex_lock(&registry_lock);
    stream->explicit_enabled = on ? SETTING_ON : SETTING_OFF;
    recompute_all();
    pthread_mutex_unlock(&registry_lock);
}

void mtev_log_stream_inherit(mtev_log_stream_t stream)
{
    if (!stream)
        return;
    pthread_mutex_lock(&registry_lock);
    stream->explicit_enabled = SETTING_INHERIT;
    recompute_all();
    pthread_mutex_unlock(&registry_lock);
}

void mtev_log_enable_from_spec(const char *spec)
{
    if (!spec)
        return;
    pthread_mutex_lock(&registry_lock);
    const char *cursor = spec;
    while (*cursor) {
        size_t length = strcspn(cursor, ", ");
        if (length > 0) {
            int on = 1;
            const char *name = cursor;
            size_t name_length = length;
            if (*name == '-') {
                on = 0;
                name++;
                name_length--;
            }
            if (name_length == 3 && memcmp(name, "all", 3) == 0) {
                everything_on = on;
            } else if (name_length == 1 && *name == '1') {
                everything_on = 1;
            } else if (name_length > 0) {
                struct mtev_log_stream *stream = find_locked(name, name_length, 1);
                stream->explicit_enabled = on ? SETTING_ON : SETTING_OFF;
            }
        }
        cursor += length;
        while (*cursor == ',' || *cursor == ' ')
            cursor++;
    }
    recompute_all();
    pthread_mutex_unlock(&registry_lock);
}

static void set_output(mtev_log_stream_t stream, int fd, mtev_log_writer_t writer, void *closure)
{
    if (!stream)
        return;
    struct log_output *output = NULL;
    if (fd >= 0 || writer) {
        output = calloc(1, sizeof(*output));
        if (!output)
            return;
        output->fd = writer ? -1 : fd;
        output->writer = writer;
        output->closure = closure;
    }
    pthread_mutex_lock(&registry_lock);
    if (output) {
        output->next_allocated = allocated_outputs;
        allocated_outputs = output;
    }
    stream->own = output;
    recompute_all();
    pthread_mutex_unlock(&registry_lock);
}

void mtev_log_stream_set_fd(mtev_log_stream_t stream, int fd)
{
    set_output(stream, fd, NULL, NULL);
}

void mtev_log_stream_set_writer(mtev_log_stream_t stream, mtev_log_writer_t writer, void *closure)
{
    set_output(stream, -1, writer, closure);
}

static void write_all(int fd, const char *data, size_t length)
{
    while (length > 0) {
        ssize_t written = write(fd, data, length);
        if (written < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        data += written;
        length -= (size_t)written;
    }
}

/* Formats the whole line into one buffer so a single write() carries it. */
static int emit(mtev_log_stream_t stream, struct log_output *output, const struct timeval *now,
                const char *format, va_list arguments)
{
    struct timeval stamp;
    if (now)
        stamp = *now;
    else
        gettimeofday(&stamp, NULL);
    struct tm broken_down;
    time_t seconds = stamp.tv_sec;
    gmtime_r(&seconds, &broken_down);

    char small[1024];
    char *buffer = small;
    size_t capacity = sizeof(small);
    int prefix = snprintf(small, capacity, "[%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ] [%s] ",
                          broken_down.tm_year + 1900, broken_down.tm_mon + 1, broken_down.tm_mday,
                          broken_down.tm_hour, broken_down.tm_min, broken_down.tm_sec,
                          (long)stamp.tv_usec, stream->name);
    if (prefix < 0 || (size_t)prefix >= capacity)
        prefix = 0;
    va_list copy;
    va_copy(copy, arguments);
    int body = vsnprintf(small + prefix, capacity - (size_t)prefix, format, copy);
    va_end(copy);
    if (body < 0)
        return 0;
    size_t needed = (size_t)prefix + (size_t)body + 2;
    if (needed > capacity) {
        buffer = malloc(needed);
        if (buffer) {
            memcpy(buffer, small, (size_t)prefix);
            vsnprintf(buffer + prefix, needed - (size_t)prefix, format, arguments);
            capacity = needed;
        } else {
            buffer = small; /* out of memory: write the truncated line */
            body = (int)(capacity - (size_t)prefix - 2);
        }
    }
    size_t length = (size_t)prefix + (size_t)body;
    if (length == 0 || buffer[length - 1] != '\n')
        buffer[length++] = '\n';
    if (output->writer)
        output->writer(output->closure, stream, buffer, length);
    else
        write_all(output->fd, buffer, length);
    if (buffer != small)
        free(buffer);
    return (int)length;
}

int mtev_vlog(mtev_log_stream_t stream, const struct timeval *now, const char *file, int line,
              const char *format, va_list arguments)
{
    (void)file;
    (void)line;
    if (!mtev_log_stream_is_enabled(stream))
        return 0;
    struct log_output *output = __atomic_load_n(&stream->effective, __ATOMIC_ACQUIRE);
    return emit(stream, output, now, format, arguments);
}

int mtev_log(mtev_log_stream_t stream, const struct timeval *now, const char *file, int line,
             const char *format, ...)
{
    va_list arguments;
    va_start(arguments, format);
    int written = mtev_vlog(stream, now, file, line, format, arguments);
    va_end(arguments);
    return written;
}

void mtev_log_fatal(mtev_log_stream_t stream, const char *file, int line, const char *format, ...)
{
    if (!mtev_log_stream_is_enabled(stream))
        stream = mtev_stderr;
    if (!mtev_log_stream_is_enabled(stream))
        stream = &builtin_stderr;
    struct log_output *output = __atomic_load_n(&stream->effective, __ATOMIC_ACQUIRE);
    va_list arguments;
    va_start(arguments, format);
    emit(stream, output, NULL, format, arguments);
    va_end(arguments);
    char where[512];
    int length = snprintf(where, sizeof(where), "fatal error at %s:%d\n", file, line);
    if (length > 0)
        write_all(2, where, (size_t)length < sizeof(where) ? (size_t)length : sizeof(where) - 1);
    abort();
}

void mtev_log_assert_failed(const char *expression, const char *file, int line,
                            const char *function)
{
    mtev_log_fatal(mtev_error, file, line, "assertion failed in %s(): %s", function, expression);
}
