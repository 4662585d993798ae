/*
 * Private streaming gzip encoder for response bodies (RFC 9110 8.4.1.3, zlib's gzip wrapper),
 * used when the request's Accept-Encoding admits gzip (ark_http_accepts_gzip). Each call
 * appends whatever compressed bytes zlib produced to an ark_http_buffer, which the session
 * then frames (usually as one chunk).
 *
 * Every function returns 0, -ENOMEM (the buffer or zlib could not allocate) or -EINVAL (used
 * after finish, or a bad level). After an error the encoder can only be ended.
 * Thread: an encoder belongs to one response; callers serialise access to it.
 */
#ifndef ARK_HTTP_GZIP_H
#define ARK_HTTP_GZIP_H

#include <stdbool.h>
#include <stddef.h>
#include <zlib.h>

#include "http/http_response_writer.h"

struct ark_http_gzip {
    z_stream _stream;
    bool _started;
    bool _finished;
};

/* Starts an encoder; `level` is zlib's 1 (fast) .. 9 (small), or -1 for zlib's default. */
int ark_http_gzip_init(struct ark_http_gzip *gzip, int level);
/* Compresses `length` bytes, appending output (possibly none yet) to `out`. */
int ark_http_gzip_compress(struct ark_http_gzip *gzip, const void *bytes, size_t length,
                           struct ark_http_buffer *out);
/* Pushes out everything compressed so far (a sync flush), for a response flushed mid-way. */
int ark_http_gzip_flush(struct ark_http_gzip *gzip, struct ark_http_buffer *out);
/* Ends the gzip stream (appends the remaining bytes and the gzip trailer). */
int ark_http_gzip_finish(struct ark_http_gzip *gzip, struct ark_http_buffer *out);
/* Releases zlib's state; safe after any result, and on a zero-filled encoder. */
void ark_http_gzip_end(struct ark_http_gzip *gzip);

#endif
