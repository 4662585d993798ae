/*
 * libFuzzer target for the HTTP/1.x request parser and chunked decoder.
 *
 * The input is a byte stream as a client would send it. The first byte picks a split point and
 * small or default limits; the rest is parsed as pipelined requests. Besides crashes and
 * sanitizer reports, the target aborts when parsing in two pieces disagrees with parsing
 * whole, when a reported range leaves the buffer, or when a chunked body decodes differently
 * byte by byte than in one go, or when a range's end (where the session writes a NUL in its copy
 * of the head) falls inside another range: those are the properties the session relies on.
 */
#include "http/http_parser.h"
#include "http/http_response_writer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(condition)                                                                     \
    do {                                                                                     \
        if (!(condition)) {                                                                  \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #condition); \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

enum { MAX_FIELDS = 24 };

static void check_range(struct ark_http_range range, size_t length)
{
    CHECK((size_t)range.offset + range.length <= length);
}

/*
 * The session copies the head and writes a NUL right after each range it hands out (method,
 * path, query, field names and values). That is safe only if no such terminator lands inside
 * another of those ranges, and every terminator stays inside the head.
 */
static void check_terminators(const struct ark_http_range *ranges, size_t count, size_t head)
{
    for (size_t i = 0; i < count; i++) {
        size_t end = (size_t)ranges[i].offset + ranges[i].length;
        CHECK(end < head);
        for (size_t j = 0; j < count; j++) {
            if (i == j || ranges[j].length == 0)
                continue;
            CHECK(end < ranges[j].offset || end >= (size_t)ranges[j].offset + ranges[j].length);
        }
    }
}

/* Decodes a chunked body whole and byte by byte; returns bytes consumed or 0 on error/short. */
static size_t fuzz_chunked(const char *body, size_t length, const struct ark_http_limits *limits)
{
    struct ark_http_chunked_decoder whole, bytewise;
    size_t position = 0, used, piece_length, total = 0;
    const char *piece;
    int rc = 0;

    ark_http_chunked_decoder_init(&whole, limits);
    while (rc == 0 && position < length) {
        rc = ark_http_chunked_decode(&whole, body + position, length - position, &used, &piece,
                                     &piece_length);
        CHECK(used <= length - position);
        CHECK(piece_length == 0 ||
              (piece >= body + position && piece + piece_length <= body + length));
        CHECK(rc != 0 || used > 0);
        total += piece_length;
        position += used;
    }

    ark_http_chunked_decoder_init(&bytewise, limits);
    size_t position2 = 0, total2 = 0;
    int rc2 = 0;
    while (rc2 == 0 && position2 < length) {
        rc2 = ark_http_chunked_decode(&bytewise, body + position2, 1, &used, &piece, &piece_length);
        CHECK(used <= 1 && (rc2 != 0 || used == 1));
        total2 += piece_length;
        position2 += used;
    }
    CHECK(rc == rc2);
    CHECK(total == total2);
    CHECK(whole.body_bytes == total);
    if (rc == ARK_HTTP_CHUNKED_DONE) {
        CHECK(position == position2);
        return position;
    }
    if (rc == ARK_HTTP_ERROR)
        CHECK(whole.status == bytewise.status && whole.reason == bytewise.reason);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t control = data[0];
    const char *stream = (const char *)data + 1;
    size_t length = size - 1;

    struct ark_http_limits limits;
    ark_http_limits_default(&limits);
    if (control & 0x80) {
        limits.max_method_length = 8;
        limits.max_target_length = 32;
        limits.max_head_bytes = 128;
        limits.max_header_count = 4;
        limits.max_body_bytes = 64;
        limits.max_chunk_line = 16;
    }

    struct ark_http_header headers[MAX_FIELDS], headers2[MAX_FIELDS];
    struct ark_http_request_parser parser, split_parser;
    ark_http_request_parser_init(&parser, &limits, headers, MAX_FIELDS);

    size_t position = 0;
    for (int requests = 0; requests < 16 && position < length; requests++) {
        const char *request = stream + position;
        size_t available = length - position;
        ssize_t head = ark_http_request_parse(&parser, request, available);

        /* The same bytes in two pieces must give the same verdict. */
        size_t split = available ? (size_t)(control & 0x7f) * 7919 % (available + 1) : 0;
        ark_http_request_parser_init(&split_parser, &limits, headers2, MAX_FIELDS);
        ssize_t first = ark_http_request_parse(&split_parser, request, split);
        ssize_t second = first == ARK_HTTP_INCOMPLETE
                             ? ark_http_request_parse(&split_parser, request, available)
                             : first;
        CHECK(second == head);
        if (head == ARK_HTTP_ERROR) {
            CHECK(split_parser.status == parser.status && split_parser.reason == parser.reason);
            CHECK(parser.status >= 400 && parser.status <= 505 && parser.reason != NULL);
            break;
        }
        if (head == ARK_HTTP_INCOMPLETE)
            break;

        CHECK(head > 0 && (size_t)head <= available);
        const struct ark_http_request_head *h = &parser.head;
        CHECK(h->method.length > 0 && h->target.length > 0);
        check_range(h->method, (size_t)head);
        check_range(h->target, (size_t)head);
        check_range(h->path, (size_t)head);
        check_range(h->query, (size_t)head);
        check_range(h->host, (size_t)head);
        CHECK(h->header_count <= limits.max_header_count);
        CHECK(h->header_count == split_parser.head.header_count);
        for (size_t i = 0; i < h->header_count; i++) {
            check_range(headers[i].name, (size_t)head);
            check_range(headers[i].value, (size_t)head);
            CHECK(headers[i].name.offset == headers2[i].name.offset &&
                  headers[i].value.length == headers2[i].value.length);
            (void)ark_http_accepts_gzip(request + headers[i].value.offset, headers[i].value.length);
        }
        struct ark_http_range used[3 + 2 * MAX_FIELDS];
        size_t used_count = 0;
        used[used_count++] = h->method;
        if (h->path.length)
            used[used_count++] = h->path;
        if (h->query.length)
            used[used_count++] = h->query;
        for (size_t i = 0; i < h->header_count; i++) {
            used[used_count++] = headers[i].name;
            used[used_count++] = headers[i].value;
        }
        check_terminators(used, used_count, (size_t)head);
        /* Decoding never grows, and query pairs stay inside the query. */
        char decoded[256];
        if (h->path.length <= sizeof(decoded)) {
            ssize_t n =
                ark_http_percent_decode(request + h->path.offset, h->path.length, decoded, false);
            CHECK(n == -1 || (n >= 0 && (size_t)n <= h->path.length));
        }
        const char *query = request + h->query.offset, *query_end = query + h->query.length;
        const char *cursor = query, *name, *value;
        size_t name_length, value_length;
        while (ark_http_query_next(&cursor, query_end, &name, &name_length, &value, &value_length))
            CHECK(name >= query && name + name_length <= query_end && value >= query &&
                  value + value_length <= query_end);
        position += (size_t)head;

        if (h->body_framing == ARK_HTTP_BODY_LENGTH) {
            CHECK(h->content_length > 0 && h->content_length <= limits.max_body_bytes);
            if (h->content_length > length - position)
                break;
            position += h->content_length;
        } else if (h->body_framing == ARK_HTTP_BODY_CHUNKED) {
            size_t body = fuzz_chunked(stream + position, length - position, &limits);
            if (body == 0)
                break;
            position += body;
        }
        if (!h->keep_alive)
            break;
        ark_http_request_parser_reset(&parser);
    }

    /* What the writer frames as a chunk, the decoder gives back unchanged. */
    if (length > 0 && length <= 4096 && (control & 1)) {
        struct ark_http_buffer buffer = {0};
        if (ark_http_write_chunk(&buffer, stream, length) == 0 &&
            ark_http_write_last_chunk(&buffer) == 0) {
            struct ark_http_chunked_decoder decoder;
            size_t used, piece_length, offset = 0, total = 0;
            const char *piece;
            int rc = 0;
            ark_http_chunked_decoder_init(&decoder, NULL);
            while (rc == 0) {
                rc = ark_http_chunked_decode(&decoder, buffer.data + offset, buffer.length - offset,
                                             &used, &piece, &piece_length);
                CHECK(rc >= 0);
                CHECK(piece_length == 0 || memcmp(piece, stream + total, piece_length) == 0);
                total += piece_length;
                offset += used;
            }
            CHECK(total == length && offset == buffer.length);
        }
        ark_http_buffer_free(&buffer);
    }
    return 0;
}
