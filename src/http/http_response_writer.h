/*
 * Private serializer for HTTP/1.x responses: status line, header fields, Content-Length and the
 * chunked coding of body pieces, appended to a growable byte buffer the session then writes.
 *
 * Every write function returns 0, -ENOMEM when the buffer could not grow (the buffer is left
 * as it was), or -EINVAL when its input would produce an invalid or injected message (a status
 * outside 100..999, a CR, LF or NUL in a reason or field value, a field name that is not a
 * token). Nothing is written on failure.
 *
 * Thread: a buffer belongs to one response; callers serialise access to it.
 */
#ifndef ARK_HTTP_RESPONSE_WRITER_H
#define ARK_HTTP_RESPONSE_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growable byte buffer; zero-initialised is empty. data is not NUL-terminated. */
struct ark_http_buffer {
    char *data;
    size_t length;
    size_t capacity;
};

/* Releases the storage; the buffer is empty again afterwards. */
void ark_http_buffer_free(struct ark_http_buffer *buffer);
/* Appends `length` bytes. */
int ark_http_buffer_append(struct ark_http_buffer *buffer, const void *bytes, size_t length);
/* Makes room for `extra` more bytes after `length` (capacity - length >= extra). */
int ark_http_buffer_reserve(struct ark_http_buffer *buffer, size_t extra);
/* Drops the first `count` bytes (already written to the socket). */
void ark_http_buffer_consume(struct ark_http_buffer *buffer, size_t count);

/* The standard reason phrase for `status`, or "Unknown" (a static string). */
const char *ark_http_status_reason(int status);

/* "HTTP/1.<minor> <status> <reason>\r\n"; `reason` NULL means the standard phrase. */
int ark_http_write_status_line(struct ark_http_buffer *buffer, int version_minor, int status,
                               const char *reason);
/* "<name>: <value>\r\n". */
int ark_http_write_header(struct ark_http_buffer *buffer, const char *name, const char *value);
/* "Content-Length: <length>\r\n". */
int ark_http_write_content_length(struct ark_http_buffer *buffer, uint64_t length);
/* The empty line ending the head. */
int ark_http_write_head_end(struct ark_http_buffer *buffer);

/*
 * A whole response for a request that is refused before any handler runs (a parse error, a
 * limit, 404/405 from routing): status line, "Content-Type: text/plain", Content-Length,
 * "Connection: close" when `close` is true, then `text` and a newline as the body (`text`
 * NULL: the reason phrase). `extra_name`/`extra_value` add one more field when not NULL
 * (e.g. Allow with a 405). Appends nothing on failure.
 */
int ark_http_write_simple_response(struct ark_http_buffer *buffer, int version_minor, int status,
                                   const char *text, bool close, const char *extra_name,
                                   const char *extra_value);

/* Room for the longest chunk prefix: 16 hex digits and CRLF. */
#define ARK_HTTP_CHUNK_PREFIX_MAX 18

/*
 * Writes the chunk-size line for a piece of `length` bytes (length > 0) into `prefix` and
 * returns its length, for callers that send the data itself with writev. The piece must be
 * followed by "\r\n".
 */
size_t ark_http_chunk_prefix(char prefix[ARK_HTTP_CHUNK_PREFIX_MAX], uint64_t length);
/* Appends one chunk holding `bytes`; a zero length writes nothing (it would end the body). */
int ark_http_write_chunk(struct ark_http_buffer *buffer, const void *bytes, size_t length);
/* Appends the last chunk and the empty trailer section: "0\r\n\r\n". */
int ark_http_write_last_chunk(struct ark_http_buffer *buffer);

#endif
