/*
 * gzip for response bodies: deflate with zlib's gzip header (window bits 15 + 16). Output is
 * appended straight into the response buffer, growing it ahead of each deflate call, so no
 * intermediate copy is made.
 */
#include "http/http_gzip.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

enum { GZIP_WINDOW_BITS = 15 + 16, GZIP_MEMORY_LEVEL = 8, OUTPUT_STEP = 4096 };

int ark_http_gzip_init(struct ark_http_gzip *gzip, int level)
{
    memset(gzip, 0, sizeof(*gzip));
    if (level < -1 || level > 9)
        return -EINVAL;
    int rc = deflateInit2(&gzip->_stream, level, Z_DEFLATED, GZIP_WINDOW_BITS, GZIP_MEMORY_LEVEL,
                          Z_DEFAULT_STRATEGY);
    if (rc != Z_OK)
        return rc == Z_MEM_ERROR ? -ENOMEM : -EINVAL;
    gzip->_started = true;
    return 0;
}

/* Runs deflate over the pending input with `flush` until zlib has nothing more to give. */
static int deflate_into(struct ark_http_gzip *gzip, int flush, struct ark_http_buffer *out)
{
    z_stream *stream = &gzip->_stream;
    if (!gzip->_started || gzip->_finished)
        return -EINVAL;
    while (true) {
        int reserved = ark_http_buffer_reserve(out, OUTPUT_STEP);
        if (reserved < 0)
            return reserved;
        size_t room = out->capacity - out->length;
        stream->next_out = (Bytef *)out->data + out->length;
        stream->avail_out = room > UINT_MAX ? UINT_MAX : (uInt)room;
        uInt offered = stream->avail_out;
        int rc = deflate(stream, flush);
        out->length += offered - stream->avail_out;
        if (rc == Z_STREAM_END) {
            gzip->_finished = true;
            return 0;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            return -EINVAL;
        /* Done when the input is used and deflate left output room unused. */
        if (stream->avail_in == 0 && stream->avail_out != 0 && flush != Z_FINISH)
            return 0;
    }
}

int ark_http_gzip_compress(struct ark_http_gzip *gzip, const void *bytes, size_t length,
                           struct ark_http_buffer *out)
{
    const Bytef *input = bytes;
    while (length > 0) {
        uInt step = length > UINT_MAX ? UINT_MAX : (uInt)length;
        gzip->_stream.next_in = (Bytef *)input;
        gzip->_stream.avail_in = step;
        int rc = deflate_into(gzip, Z_NO_FLUSH, out);
        if (rc < 0)
            return rc;
        input += step;
        length -= step;
    }
    return 0;
}

int ark_http_gzip_flush(struct ark_http_gzip *gzip, struct ark_http_buffer *out)
{
    gzip->_stream.avail_in = 0;
    return deflate_into(gzip, Z_SYNC_FLUSH, out);
}

int ark_http_gzip_finish(struct ark_http_gzip *gzip, struct ark_http_buffer *out)
{
    gzip->_stream.avail_in = 0;
    return deflate_into(gzip, Z_FINISH, out);
}

void ark_http_gzip_end(struct ark_http_gzip *gzip)
{
    if (gzip->_started)
        deflateEnd(&gzip->_stream);
    gzip->_started = false;
}
