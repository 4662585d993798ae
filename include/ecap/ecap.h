/*
 * The adaptation API, common part: status codes, buffers ("areas") with explicit ownership,
 * name/value options, error reports, and HTTP messages.
 *
 * The adaptation API is eCAP 1.0's model in C. Two parties meet through it:
 *   - the HOST (an Arkenstone program, or a bridge into another eCAP host) owns the messages
 *     and drives transactions; it implements the tables in this header and the host tables
 *     in <ecap/adapter.h>;
 *   - the ADAPTER (a shared object loaded with dlopen) inspects and rewrites messages; it
 *     implements the service and transaction tables in <ecap/adapter.h>.
 * Every object one party hands the other is an opaque handle whose first member points at a
 * versioned table of function pointers (SQLite's sqlite3_file/sqlite3_io_methods shape), so
 * an adapter never links against the host and never sees a host structure's layout. The
 * static inline wrappers below (ecap_message_*, ecap_header_*) call through those tables.
 *
 * Versioning. Each table starts with `unsigned version`. Members are only ever appended;
 * a table of version N has every member marked "version N" or lower. A caller checks the
 * version before using a newer member. ECAP_API_MAJOR changes break compatibility (a module
 * built for another major is refused); ECAP_API_MINOR grows when members are appended.
 *
 * Status codes. Functions that can fail return ECAP_OK (0) or a negative ECAP_E_* code;
 * ecap_strerror() names it. The detailed reason of a misuse is also logged by the host.
 *
 * Threads. Unless a function says otherwise it must be called on the loop thread that owns
 * the transaction (or message) it is given. Areas, options and errors are plain values.
 */
#ifndef ECAP_ECAP_H
#define ECAP_ECAP_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The API version this header describes. */
#define ECAP_API_MAJOR 1
#define ECAP_API_MINOR 0

/* ---- status codes ---- */

#define ECAP_OK 0
/* An argument is NULL or out of range. */
#define ECAP_E_INVALID (-1)
/* Memory is exhausted. */
#define ECAP_E_NOMEM (-2)
/* The transaction was stopped by the host; nothing may be asked of it any more. */
#define ECAP_E_STOPPED (-3)
/* The adaptation decision (use_virgin, use_adapted, block_virgin, aborted) was made already. */
#define ECAP_E_DECIDED (-4)
/* A virgin-body call came before vb_make() (or after vb_stop_making()/vb_discard()). */
#define ECAP_E_VB_NOT_MADE (-5)
/* The virgin-body call is not legal in the body's current state (see the call's contract). */
#define ECAP_E_VB_STATE (-6)
/* The adapted-body call is not legal in the body's current state. */
#define ECAP_E_AB_STATE (-7)
/* The call was made from a thread that does not own the transaction (a worker thread). */
#define ECAP_E_WRONG_THREAD (-8)
/* Inside a service's resume() only the host transaction's resume() may be called. */
#define ECAP_E_IN_SERVICE_RESUME (-9)
/* The message has no body. */
#define ECAP_E_NO_BODY (-10)
/* A configuration option is unknown or its value is bad. */
#define ECAP_E_BAD_OPTION (-11)
/* A module or table was built for an incompatible API version. */
#define ECAP_E_VERSION (-12)
/* No such service, module symbol, header field or option. */
#define ECAP_E_NOT_FOUND (-13)
/* A module could not be loaded or registered. */
#define ECAP_E_MODULE (-14)
/* The service is not in a state that allows the call (not started, retired...). */
#define ECAP_E_SERVICE_STATE (-15)
/* The call is not implemented by the other party (an optional table member is NULL). */
#define ECAP_E_UNSUPPORTED (-16)
/* Nothing can be done now; try again after the corresponding notification. */
#define ECAP_E_AGAIN (-17)
/* The service already exists (two registrations of one URI). */
#define ECAP_E_EXISTS (-18)
/* The time allowed for the call ran out. */
#define ECAP_E_TIMEOUT (-19)
/* More bytes than the caller allowed (e.g. a final body over ecap_chain_run_aco's limit). */
#define ECAP_E_TOO_LARGE (-20)

/* Returns a static, human-readable name for an ECAP_* status. Thread: any. */
static inline const char *ecap_strerror(int status)
{
    switch (status) {
    case ECAP_OK:
        return "success";
    case ECAP_E_INVALID:
        return "invalid argument";
    case ECAP_E_NOMEM:
        return "out of memory";
    case ECAP_E_STOPPED:
        return "transaction stopped";
    case ECAP_E_DECIDED:
        return "adaptation decision already made";
    case ECAP_E_VB_NOT_MADE:
        return "virgin body not being made (vb_make not called)";
    case ECAP_E_VB_STATE:
        return "virgin body call not allowed in this state";
    case ECAP_E_AB_STATE:
        return "adapted body call not allowed in this state";
    case ECAP_E_WRONG_THREAD:
        return "called from a thread that does not own the transaction";
    case ECAP_E_IN_SERVICE_RESUME:
        return "only the host transaction's resume may be called inside a service resume";
    case ECAP_E_NO_BODY:
        return "message has no body";
    case ECAP_E_BAD_OPTION:
        return "bad configuration option";
    case ECAP_E_VERSION:
        return "incompatible API version";
    case ECAP_E_NOT_FOUND:
        return "not found";
    case ECAP_E_MODULE:
        return "module cannot be loaded";
    case ECAP_E_SERVICE_STATE:
        return "service not in a state that allows the call";
    case ECAP_E_UNSUPPORTED:
        return "not supported";
    case ECAP_E_AGAIN:
        return "try again later";
    case ECAP_E_EXISTS:
        return "already exists";
    case ECAP_E_TIMEOUT:
        return "timed out";
    case ECAP_E_TOO_LARGE:
        return "larger than allowed";
    default:
        return "unknown status";
    }
}

/* ---- areas: byte ranges with explicit ownership ---- */

/* "Up to the end": a size argument meaning everything available from the offset. */
#define ECAP_NSIZE SIZE_MAX

/* Releases an area's bytes: called once by whoever holds an owning area, when done with it. */
typedef void (*ecap_area_release_fn)(void *release_data, const char *data, size_t size);

/*
 * A byte range and who frees it. Bytes are not NUL-terminated.
 *   borrowed (release == NULL): the creator keeps the bytes alive; how long the receiver may
 *     use them is stated by the call that produced the area (typically: until the
 *     receiver's next call on the same transaction, or until it returns to the host);
 *   owning (release != NULL): the receiver now owns the bytes and must call
 *     ecap_area_release() exactly once when done (it may keep them as long as it likes).
 * ecap_area_copy() makes an owning copy of borrowed bytes.
 * An empty area has size 0 (data may be NULL).
 */
typedef struct ecap_area {
    const char *data;
    size_t size;
    ecap_area_release_fn release; /* NULL: borrowed */
    void *release_data;
} ecap_area_t;

/* A borrowed view of `size` bytes at `data`. */
static inline ecap_area_t ecap_area_borrow(const void *data, size_t size)
{
    ecap_area_t area = {(const char *)data, size, NULL, NULL};
    return area;
}

/* A borrowed view of a NUL-terminated string (without the NUL). */
static inline ecap_area_t ecap_area_from_string(const char *text)
{
    return ecap_area_borrow(text, text ? strlen(text) : 0);
}

/* An owning area wrapping bytes that `release(release_data, data, size)` frees later. */
static inline ecap_area_t ecap_area_give(const void *data, size_t size,
                                         ecap_area_release_fn release, void *release_data)
{
    ecap_area_t area = {(const char *)data, size, release, release_data};
    return area;
}

static inline void ecap_area_free_copy(void *release_data, const char *data, size_t size)
{
    (void)data;
    (void)size;
    free(release_data);
}

/*
 * An owning copy of `size` bytes (malloc'd, with a NUL after the last byte for convenience).
 * On allocation failure returns an empty area with data == NULL and size 0.
 */
static inline ecap_area_t ecap_area_copy(const void *data, size_t size)
{
    ecap_area_t area = {NULL, 0, NULL, NULL};
    char *copy = (char *)malloc(size + 1);
    if (!copy)
        return area;
    if (size)
        memcpy(copy, data, size);
    copy[size] = '\0';
    return ecap_area_give(copy, size, ecap_area_free_copy, copy);
}

/* Releases an owning area (no-op for a borrowed one) and empties `*area`. */
static inline void ecap_area_release(ecap_area_t *area)
{
    if (area->release)
        area->release(area->release_data, area->data, area->size);
    area->data = NULL;
    area->size = 0;
    area->release = NULL;
    area->release_data = NULL;
}

/* True when the area holds exactly the NUL-terminated `text`. */
static inline int ecap_area_equals(ecap_area_t area, const char *text)
{
    size_t length = strlen(text);
    return area.size == length && (length == 0 || memcmp(area.data, text, length) == 0);
}

/* ---- options and errors ---- */

/* One configuration option: NUL-terminated name and value, borrowed for the call. */
struct ecap_option {
    const char *name;
    const char *value;
};

/*
 * Visits one name/value pair (meta-information, header fields). `value` is borrowed for the
 * duration of the call. Return 0 to continue, non-zero to stop the visit (the visiting call
 * then returns that value).
 */
typedef int (*ecap_visitor_fn)(void *visitor_data, ecap_area_t name, ecap_area_t value);

/* Capacity of an error message, including the NUL. */
#define ECAP_ERROR_CAPACITY 256

/* Where a failing call explains itself (configure, start, module registration). */
struct ecap_error {
    char message[ECAP_ERROR_CAPACITY];
};

/* Formats the reason into `error` (may be NULL) and returns `status`, for `return` chains. */
static inline int ecap_error_set(struct ecap_error *error, int status, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
static inline int ecap_error_set(struct ecap_error *error, int status, const char *format, ...)
{
    if (error) {
        va_list arguments;
        va_start(arguments, format);
        vsnprintf(error->message, sizeof(error->message), format, arguments);
        va_end(arguments);
    }
    return status;
}

/* ---- HTTP messages ---- */

/* What a message's first line is. */
enum ecap_message_kind {
    ECAP_MESSAGE_REQUEST = 1,  /* method, URI, version */
    ECAP_MESSAGE_RESPONSE = 2, /* version, status code, reason phrase */
};

typedef struct ecap_message ecap_message_t;

/*
 * The operations on a message, implemented by the host. A message is the first line, the
 * header fields (an ordered list; names compare case-insensitively; repeated names allowed)
 * and whether a body follows. Body bytes never live in a message: they stream through the
 * transaction calls (vb_* / ab_*).
 *
 * Areas returned by getters are borrowed: valid until the message is modified or freed.
 * Setters copy their arguments. Thread: the loop thread owning the transaction the message
 * belongs to (a clone belongs to whoever holds it until it is handed to use_adapted()).
 */
struct ecap_message_methods {
    unsigned version; /* 1 */
    /* version 1 */
    enum ecap_message_kind (*kind)(const ecap_message_t *message);
    /* Request line parts (an empty area for a response). */
    ecap_area_t (*method)(const ecap_message_t *message);
    ecap_area_t (*uri)(const ecap_message_t *message);
    /* Return ECAP_OK, ECAP_E_INVALID (wrong kind, empty or CR/LF in the value), ECAP_E_NOMEM. */
    int (*set_method)(ecap_message_t *message, const char *method);
    int (*set_uri)(ecap_message_t *message, const char *uri);
    /* Status line parts (0 / empty for a request). */
    int (*status_code)(const ecap_message_t *message);
    ecap_area_t (*reason)(const ecap_message_t *message);
    /* status code in 100..999. */
    int (*set_status)(ecap_message_t *message, int status_code, const char *reason);
    /* HTTP version, e.g. 1 and 1 for HTTP/1.1. */
    void (*http_version)(const ecap_message_t *message, int *http_major, int *http_minor);
    int (*set_http_version)(ecap_message_t *message, int http_major, int http_minor);

    /* Appends a field. ECAP_E_INVALID for an empty name or CR/LF/NUL in either part. */
    int (*header_add)(ecap_message_t *message, const char *name, const char *value,
                      size_t value_length);
    /* Removes every field called `name`; returns how many were removed (>= 0). */
    int (*header_remove)(ecap_message_t *message, const char *name);
    /*
     * Finds the `index`-th (0 = first) field called `name`: stores its value in `*value`
     * (borrowed) and returns ECAP_OK, or returns ECAP_E_NOT_FOUND.
     */
    int (*header_find)(const ecap_message_t *message, const char *name, size_t index,
                       ecap_area_t *value);
    /* Calls `visitor` for each field in order; returns 0 or the visitor's non-zero value. */
    int (*header_visit)(const ecap_message_t *message, ecap_visitor_fn visitor, void *visitor_data);

    /* Whether a body follows the head. */
    int (*has_body)(const ecap_message_t *message);
    /* Says whether a body follows (the body's bytes still travel through the transaction). */
    int (*set_has_body)(ecap_message_t *message, int has_body);
    /*
     * Returns a new message with the same first line and fields and the same "has body"
     * flag, never any body bytes (the body-less clone). The caller owns it: hand it to
     * use_adapted() or free it. NULL when memory is exhausted.
     */
    ecap_message_t *(*clone)(const ecap_message_t *message);
    /* Frees a message the caller owns (a clone or a new message). NULL is a no-op. */
    void (*free)(ecap_message_t *message);
};

/* A message handle: the host's object begins with this. */
struct ecap_message {
    const struct ecap_message_methods *methods;
};

static inline enum ecap_message_kind ecap_message_kind(const ecap_message_t *message)
{
    return message->methods->kind(message);
}
static inline ecap_area_t ecap_message_method(const ecap_message_t *message)
{
    return message->methods->method(message);
}
static inline ecap_area_t ecap_message_uri(const ecap_message_t *message)
{
    return message->methods->uri(message);
}
static inline int ecap_message_set_method(ecap_message_t *message, const char *method)
{
    return message->methods->set_method(message, method);
}
static inline int ecap_message_set_uri(ecap_message_t *message, const char *uri)
{
    return message->methods->set_uri(message, uri);
}
static inline int ecap_message_status_code(const ecap_message_t *message)
{
    return message->methods->status_code(message);
}
static inline ecap_area_t ecap_message_reason(const ecap_message_t *message)
{
    return message->methods->reason(message);
}
static inline int ecap_message_set_status(ecap_message_t *message, int status_code,
                                          const char *reason)
{
    return message->methods->set_status(message, status_code, reason);
}
static inline void ecap_message_http_version(const ecap_message_t *message, int *http_major,
                                             int *http_minor)
{
    message->methods->http_version(message, http_major, http_minor);
}
static inline int ecap_message_has_body(const ecap_message_t *message)
{
    return message->methods->has_body(message);
}
static inline int ecap_message_set_has_body(ecap_message_t *message, int has_body)
{
    return message->methods->set_has_body(message, has_body);
}
static inline ecap_message_t *ecap_message_clone(const ecap_message_t *message)
{
    return message->methods->clone(message);
}
static inline void ecap_message_free(ecap_message_t *message)
{
    if (message)
        message->methods->free(message);
}
/* Appends the field `name: value` (value NUL-terminated). */
static inline int ecap_header_add(ecap_message_t *message, const char *name, const char *value)
{
    return message->methods->header_add(message, name, value, strlen(value));
}
static inline int ecap_header_remove(ecap_message_t *message, const char *name)
{
    return message->methods->header_remove(message, name);
}
/* The first field called `name`; see header_find. */
static inline int ecap_header_find(const ecap_message_t *message, const char *name,
                                   ecap_area_t *value)
{
    return message->methods->header_find(message, name, 0, value);
}
static inline int ecap_header_visit(const ecap_message_t *message, ecap_visitor_fn visitor,
                                    void *visitor_data)
{
    return message->methods->header_visit(message, visitor, visitor_data);
}

#ifdef __cplusplus
}
#endif

#endif
