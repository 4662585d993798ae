/*
 * Response serialization. Every writer first checks its input, then reserves room for the
 * whole piece and writes it, so a failure never leaves half a header in the buffer.
 */
#include "http/http_response_writer.h"
#include "http/http_parser.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ark_http_buffer_free(struct ark_http_buffer *buffer)
{
    free(buffer->data);
    *buffer = (struct ark_http_buffer){0};
}

int ark_http_buffer_reserve(struct ark_http_buffer *buffer, size_t extra)
{
    if (extra > SIZE_MAX - buffer->length)
        return -ENOMEM;
    size_t needed = buffer->length + extra;
    if (needed <= buffer->capacity)
        return 0;
    size_t capacity = buffer->capacity ? buffer->capacity : 256;
    while (capacity < needed)
        capacity = capacity > SIZE_MAX / 2 ? needed : capacity * 2;
    char *data = realloc(buffer->data, capacity);
    if (data == NULL)
        return -ENOMEM;
    buffer->data = data;
    buffer->capacity = capacity;
    return 0;
}

int ark_http_buffer_append(struct ark_http_buffer *buffer, const void *bytes, size_t length)
{
    if (length == 0)
        return 0;
    int rc = ark_http_buffer_reserve(buffer, length);
    if (rc < 0)
        return rc;
    memcpy(buffer->data + buffer->length, bytes, length);
    buffer->length += length;
    return 0;
}

void ark_http_buffer_consume(struct ark_http_buffer *buffer, size_t count)
{
    if (count >= buffer->length) {
        buffer->length = 0;
        return;
    }
    memmove(buffer->data, buffer->data + count, buffer->length - count);
    buffer->length -= count;
}

const char *ark_http_status_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

/* Reason phrases and field values: HTAB, SP, VCHAR and obs-text; never CR, LF or NUL. */
static bool is_safe_text(const char *text)
{
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            return false;
    }
    return true;
}

int ark_http_write_status_line(struct ark_http_buffer *buffer, int version_minor, int status,
                               const char *reason)
{
    if (status < 100 || status > 999 || version_minor < 0 || version_minor > 9)
        return -EINVAL;
    if (reason == NULL)
        reason = ark_http_status_reason(status);
    if (!is_safe_text(reason))
        return -EINVAL;
    size_t reason_length = strlen(reason);
    int rc = ark_http_buffer_reserve(buffer, 15 + reason_length);
    if (rc < 0)
        return rc;
    char *out = buffer->data + buffer->length;
    /* By hand: this runs for every response, and printf's machinery shows in profiles. */
    memcpy(out, "HTTP/1.", 7);
    out[7] = (char)('0' + version_minor);
    out[8] = ' ';
    out[9] = (char)('0' + status / 100);
    out[10] = (char)('0' + status / 10 % 10);
    out[11] = (char)('0' + status % 10);
    out[12] = ' ';
    int written = 13;
    memcpy(out + written, reason, reason_length);
    memcpy(out + written + reason_length, "\r\n", 2);
    buffer->length += (size_t)written + reason_length + 2;
    return 0;
}

int ark_http_write_header(struct ark_http_buffer *buffer, const char *name, const char *value)
{
    size_t name_length = strlen(name), value_length = strlen(value);
    if (name_length == 0)
        return -EINVAL;
    for (size_t i = 0; i < name_length; i++) {
        if (!ark_http_is_token_char((unsigned char)name[i]))
            return -EINVAL;
    }
    if (!is_safe_text(value))
        return -EINVAL;
    int rc = ark_http_buffer_reserve(buffer, name_length + value_length + 4);
    if (rc < 0)
        return rc;
    char *out = buffer->data + buffer->length;
    memcpy(out, name, name_length);
    memcpy(out + name_length, ": ", 2);
    memcpy(out + name_length + 2, value, value_length);
    memcpy(out + name_length + 2 + value_length, "\r\n", 2);
    buffer->length += name_length + value_length + 4;
    return 0;
}

int ark_http_write_content_length(struct ark_http_buffer *buffer, uint64_t length)
{
    char line[48];
    memcpy(line, "Content-Length: ", 16);
    char digits[20];
    int count = 0;
    do {
        digits[count++] = (char)('0' + length % 10);
        length /= 10;
    } while (length);
    int written = 16;
    while (count)
        line[written++] = digits[--count];
    line[written++] = '\r';
    line[written++] = '\n';
    return ark_http_buffer_append(buffer, line, (size_t)written);
}

int ark_http_write_head_end(struct ark_http_buffer *buffer)
{
    return ark_http_buffer_append(buffer, "\r\n", 2);
}

size_t ark_http_chunk_prefix(char prefix[ARK_HTTP_CHUNK_PREFIX_MAX], uint64_t length)
{
    static const char digits[] = "0123456789abcdef";
    char reversed[16];
    size_t count = 0;
    do {
        reversed[count++] = digits[length & 0xf];
        length >>= 4;
    } while (length != 0);
    for (size_t i = 0; i < count; i++)
        prefix[i] = reversed[count - 1 - i];
    prefix[count] = '\r';
    prefix[count + 1] = '\n';
    return count + 2;
}

int ark_http_write_chunk(struct ark_http_buffer *buffer, const void *bytes, size_t length)
{
    if (length == 0)
        return 0;
    char prefix[ARK_HTTP_CHUNK_PREFIX_MAX];
    size_t prefix_length = ark_http_chunk_prefix(prefix, length);
    if (length > SIZE_MAX - prefix_length - 2)
        return -ENOMEM;
    int rc = ark_http_buffer_reserve(buffer, prefix_length + length + 2);
    if (rc < 0)
        return rc;
    char *out = buffer->data + buffer->length;
    memcpy(out, prefix, prefix_length);
    memcpy(out + prefix_length, bytes, length);
    memcpy(out + prefix_length + length, "\r\n", 2);
    buffer->length += prefix_length + length + 2;
    return 0;
}

int ark_http_write_last_chunk(struct ark_http_buffer *buffer)
{
    return ark_http_buffer_append(buffer, "0\r\n\r\n", 5);
}

int ark_http_write_simple_response(struct ark_http_buffer *buffer, int version_minor, int status,
                                   const char *text, bool close, const char *extra_name,
                                   const char *extra_value)
{
    size_t before = buffer->length;
    if (text == NULL)
        text = ark_http_status_reason(status);
    size_t text_length = strlen(text);
    int rc = ark_http_write_status_line(buffer, version_minor, status, NULL);
    if (rc == 0)
        rc = ark_http_write_header(buffer, "Content-Type", "text/plain");
    if (rc == 0)
        rc = ark_http_write_content_length(buffer, text_length + 1);
    if (rc == 0 && close)
        rc = ark_http_write_header(buffer, "Connection", "close");
    if (rc == 0 && extra_name != NULL)
        rc = ark_http_write_header(buffer, extra_name, extra_value ? extra_value : "");
    if (rc == 0)
        rc = ark_http_write_head_end(buffer);
    if (rc == 0)
        rc = ark_http_buffer_append(buffer, text, text_length);
    if (rc == 0)
        rc = ark_http_buffer_append(buffer, "\n", 1);
    if (rc < 0)
        buffer->length = before;
    return rc;
}
