/*
 * Chunked decoder, field helper and response writer tests. Chunked bodies are decoded whole,
 * split at every byte boundary and byte by byte; all must give the same data, the same end
 * position (so pipelined bytes are left alone) and the same verdict.
 */
#include "ark_test.h"
#include "http/http_parser.h"
#include "http/http_gzip.h"
#include "http/http_response_writer.h"

#include <errno.h>
#include <stdbool.h>

struct decoded {
    int result; /* ARK_HTTP_CHUNKED_DONE, 0 (needs more) or ARK_HTTP_ERROR */
    int status;
    size_t consumed;
    char data[256];
    size_t data_length;
};

/* Feeds `input` in pieces ending at each of `cuts` (increasing), then the rest. */
static void decode_pieces(const char *input, size_t length, const size_t *cuts, size_t cut_count,
                          const struct ark_http_limits *limits, struct decoded *out)
{
    struct ark_http_chunked_decoder decoder;
    ark_http_chunked_decoder_init(&decoder, limits);
    memset(out, 0, sizeof(*out));
    size_t position = 0;
    for (size_t cut = 0; cut <= cut_count; cut++) {
        size_t piece_end = cut < cut_count && cuts[cut] < length ? cuts[cut] : length;
        while (true) {
            size_t used, piece_length;
            const char *piece;
            int rc = ark_http_chunked_decode(&decoder, input + position, piece_end - position,
                                             &used, &piece, &piece_length);
            ARK_ASSERT(used <= piece_end - position);
            if (piece_length > 0) {
                ARK_ASSERT(piece >= input + position && piece + piece_length <= input + piece_end);
                ARK_ASSERT(out->data_length + piece_length <= sizeof(out->data));
                memcpy(out->data + out->data_length, piece, piece_length);
                out->data_length += piece_length;
            }
            position += used;
            if (rc != 0) {
                out->result = rc;
                out->status = rc == ARK_HTTP_ERROR ? decoder.status : 0;
                /* after an error the position means nothing: the connection is closed */
                out->consumed = rc == ARK_HTTP_ERROR ? 0 : position;
                ARK_ASSERT(rc != ARK_HTTP_ERROR || decoder.reason != NULL);
                return;
            }
            if (position == piece_end)
                break;
            ARK_ASSERT(used > 0);
        }
    }
    out->consumed = position;
    ARK_ASSERT_EQ(decoder.body_bytes, out->data_length);
}

static void decode_all_ways(const char *input, const struct ark_http_limits *limits,
                            struct decoded *whole)
{
    size_t length = strlen(input);
    decode_pieces(input, length, NULL, 0, limits, whole);
    for (size_t split = 0; split <= length; split++) {
        struct decoded again;
        decode_pieces(input, length, &split, 1, limits, &again);
        ARK_ASSERT_MSG(again.result == whole->result && again.status == whole->status &&
                           again.consumed == whole->consumed &&
                           again.data_length == whole->data_length &&
                           memcmp(again.data, whole->data, again.data_length) == 0,
                       "split at %zu of \"%s\" differs: %d/%d/%zu/%zu vs %d/%d/%zu/%zu", split,
                       input, again.result, again.status, again.consumed, again.data_length,
                       whole->result, whole->status, whole->consumed, whole->data_length);
    }
    size_t cuts[256];
    ARK_ASSERT(length <= 256);
    for (size_t i = 0; i < length; i++)
        cuts[i] = i + 1;
    struct decoded bytewise;
    decode_pieces(input, length, cuts, length, limits, &bytewise);
    ARK_ASSERT(bytewise.result == whole->result && bytewise.consumed == whole->consumed &&
               bytewise.data_length == whole->data_length &&
               memcmp(bytewise.data, whole->data, bytewise.data_length) == 0);
}

struct chunked_case {
    const char *input;
    int result;
    int status;
    const char *data;
    size_t left_over; /* bytes after the body, not consumed */
};

static const struct chunked_case chunked_cases[] = {
    {"0\r\n\r\n", ARK_HTTP_CHUNKED_DONE, 0, "", 0},
    {"5\r\nhello\r\n0\r\n\r\n", ARK_HTTP_CHUNKED_DONE, 0, "hello", 0},
    {"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET / HTTP/1.1\r\n", ARK_HTTP_CHUNKED_DONE, 0,
     "hello world", 16},
    {"A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n", ARK_HTTP_CHUNKED_DONE, 0,
     "0123456789abcdefghij", 0},
    {"0005\r\nhello\r\n000\r\n\r\n", ARK_HTTP_CHUNKED_DONE, 0, "hello", 0},
    {"5;name=value;flag\r\nhello\r\n0;last\r\n\r\n", ARK_HTTP_CHUNKED_DONE, 0, "hello", 0},
    {"5 ;q=\"a b\"\r\nhello\r\n0\r\n\r\n", ARK_HTTP_CHUNKED_DONE, 0, "hello", 0},
    {"3\r\n\r\n\n\r\n0\r\nExpires: never\r\nX-Sum: 12\r\n\r\nrest", ARK_HTTP_CHUNKED_DONE, 0,
     "\r\n\n", 4},
    {"5\r\nhel", 0, 0, "hel", 0},
    {"", 0, 0, "", 0},
    {"x\r\n", ARK_HTTP_ERROR, 400, "", 0},
    {"\r\n", ARK_HTTP_ERROR, 400, "", 0},
    {"-5\r\nhello\r\n0\r\n\r\n", ARK_HTTP_ERROR, 400, "", 0},
    {"5 \r\nhello\r\n0\r\n\r\n", ARK_HTTP_ERROR, 400, "", 0},
    {"5\nhello\r\n0\r\n\r\n", ARK_HTTP_ERROR, 400, "", 0},
    {"5\r\nhelloX\r\n0\r\n\r\n", ARK_HTTP_ERROR, 400, "hello", 0},
    {"5\r\nhello\n0\r\n\r\n", ARK_HTTP_ERROR, 400, "hello", 0},
    {"5\rXhello", ARK_HTTP_ERROR, 400, "", 0},
    {"5;a\x01\r\nhello\r\n0\r\n\r\n", ARK_HTTP_ERROR, 400, "", 0},
    {"10000000000000000\r\n", ARK_HTTP_ERROR, 400, "", 0},
    {"0\r\n Folded: x\r\n\r\n", ARK_HTTP_ERROR, 400, "", 0},
    {"0\r\nBad Name: x\r\n\r\n", ARK_HTTP_ERROR, 400, "", 0},
    {"0\r\nName: x\ry\r\n\r\n", ARK_HTTP_ERROR, 400, "", 0},
    {"0\r\n\rX", ARK_HTTP_ERROR, 400, "", 0},
    {"5\r\nhello\r\r", ARK_HTTP_ERROR, 400, "hello", 0},
    {"0\r\n@x: y\r\n\r\n", ARK_HTTP_ERROR, 400, "", 0},
    {"0\r\nA@: y\r\n\r\n", ARK_HTTP_ERROR, 400, "", 0},
    {"0\r\nA: \x01\r\n\r\n", ARK_HTTP_ERROR, 400, "", 0},
    {"0\r\nA: v\rX\r\n", ARK_HTTP_ERROR, 400, "", 0},
};

ARK_TEST(chunked_bodies_decode_the_same_however_split)
{
    for (size_t n = 0; n < sizeof(chunked_cases) / sizeof(chunked_cases[0]); n++) {
        const struct chunked_case *c = &chunked_cases[n];
        struct decoded out;
        decode_all_ways(c->input, NULL, &out);
        ARK_ASSERT_MSG(out.result == c->result && out.status == c->status,
                       "case %zu: result %d status %d, expected %d %d", n, out.result, out.status,
                       c->result, c->status);
        ARK_ASSERT_MSG(out.data_length == strlen(c->data) &&
                           memcmp(out.data, c->data, out.data_length) == 0,
                       "case %zu: data differs", n);
        if (c->result != ARK_HTTP_ERROR)
            ARK_ASSERT_EQ(out.consumed, strlen(c->input) - c->left_over);
    }
}

ARK_TEST(chunked_limits_answer_413_and_431)
{
    struct ark_http_limits limits;
    ark_http_limits_default(&limits);
    limits.max_body_bytes = 10;
    limits.max_head_bytes = 20;
    limits.max_chunk_line = 8;
    struct decoded out;

    decode_all_ways("5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", &limits, &out);
    ARK_ASSERT_EQ(out.result, ARK_HTTP_CHUNKED_DONE);
    decode_all_ways("5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n", &limits, &out);
    ARK_ASSERT_EQ(out.result, ARK_HTTP_ERROR);
    ARK_ASSERT_EQ(out.status, 413);
    ARK_ASSERT_EQ(out.data_length, 5);
    decode_all_ways("5;abcdefgh\r\nhello\r\n0\r\n\r\n", &limits, &out);
    ARK_ASSERT_EQ(out.status, 400);
    decode_all_ways("0\r\nA: 123456789012345678\r\n\r\n", &limits, &out);
    ARK_ASSERT_EQ(out.status, 431);
}

ARK_TEST(chunked_decoder_returns_data_without_copying)
{
    static const char body[] = "4\r\nwiki\r\n5\r\npedia\r\n0\r\n\r\n";
    struct ark_http_chunked_decoder decoder;
    ark_http_chunked_decoder_init(&decoder, NULL);
    size_t used, piece_length;
    const char *piece;
    ARK_ASSERT_EQ(
        ark_http_chunked_decode(&decoder, body, sizeof(body) - 1, &used, &piece, &piece_length), 0);
    ARK_ASSERT(piece == body + 3);
    ARK_ASSERT_EQ(piece_length, 4);
    ARK_ASSERT_EQ(used, 7);
    ARK_ASSERT_EQ(
        ark_http_chunked_decode(&decoder, body + 7, sizeof(body) - 8, &used, &piece, &piece_length),
        0);
    ARK_ASSERT(piece == body + 12);
    ARK_ASSERT_EQ(piece_length, 5);
    ARK_ASSERT_EQ(ark_http_chunked_decode(&decoder, body + 17, sizeof(body) - 18, &used, &piece,
                                          &piece_length),
                  ARK_HTTP_CHUNKED_DONE);
    ARK_ASSERT_EQ(17 + used, sizeof(body) - 1);
    ARK_ASSERT_EQ(decoder.body_bytes, 9);
    /* a finished decoder stays finished and consumes nothing more */
    ARK_ASSERT_EQ(ark_http_chunked_decode(&decoder, "5\r\n", 3, &used, &piece, &piece_length),
                  ARK_HTTP_CHUNKED_DONE);
    ARK_ASSERT_EQ(used, 0);
    ark_http_chunked_decoder_init(&decoder, NULL);
    ARK_ASSERT_EQ(ark_http_chunked_decode(&decoder, "z", 1, &used, &piece, &piece_length),
                  ARK_HTTP_ERROR);
    ARK_ASSERT_EQ(ark_http_chunked_decode(&decoder, "0\r\n\r\n", 5, &used, &piece, &piece_length),
                  ARK_HTTP_ERROR);
}

/* ---- Field helpers ---- */

ARK_TEST(list_elements_skip_empty_and_respect_quotes)
{
    const char *value = " ,a , \"b,c\" ,,d\t";
    const char *escaped = "\"x\\\",y\", z", *escaped_cursor = escaped, *first;
    size_t first_length;
    ARK_ASSERT(
        ark_http_list_next(&escaped_cursor, escaped + strlen(escaped), &first, &first_length));
    ARK_ASSERT_EQ(first_length, 7); /* "x\",y" with its quotes: the comma is quoted */
    const char *cursor = value, *element;
    size_t length;
    const char *expected[] = {"a", "\"b,c\"", "d"};
    size_t count = 0;
    while (ark_http_list_next(&cursor, value + strlen(value), &element, &length)) {
        ARK_ASSERT(count < 3);
        ARK_ASSERT_EQ(length, strlen(expected[count]));
        ARK_ASSERT(memcmp(element, expected[count], length) == 0);
        count++;
    }
    ARK_ASSERT_EQ(count, 3);
    ARK_ASSERT(ark_http_token_equals("Keep-Alive", 10, "keep-alive"));
    ARK_ASSERT(!ark_http_token_equals("Keep-Alive", 4, "keep-alive"));
    ARK_ASSERT(!ark_http_token_equals("closed", 6, "close"));
}

ARK_TEST(accept_encoding_gzip_detection)
{
    static const struct {
        const char *value;
        bool gzip;
    } cases[] = {
        {"gzip", true},
        {"GZIP", true},
        {"deflate, gzip;q=0.5", true},
        {"x-gzip", true},
        {"gzip;q=0", false},
        {"gzip; q=0.000", false},
        {"gzip;q=0.001", true},
        {"*", true},
        {"*;q=0", false},
        {"*, gzip;q=0", false},
        {"identity", false},
        {"", false},
        {"br, deflate", false},
        {"gzipx", false},
        {"gzip;level=1;q=1.0", true},
        {"gzip ; q = 0", false},
        {"deflate;q=0.5, GZip ;Q=0.2", true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        ARK_ASSERT_MSG(ark_http_accepts_gzip(cases[i].value, strlen(cases[i].value)) ==
                           cases[i].gzip,
                       "\"%s\"", cases[i].value);
}

ARK_TEST(percent_decoding)
{
    static const struct {
        const char *input;
        bool plus_is_space;
        const char *output; /* NULL: refused */
    } cases[] = {
        {"/a%20b", false, "/a b"}, {"a+b%2Bc", true, "a b+c"}, {"a+b", false, "a+b"},
        {"%7e%7E", false, "~~"},   {"%", false, NULL},         {"%4", false, NULL},
        {"ab%4", false, NULL},     {"%zz", false, NULL},       {"%00", false, NULL},
        {"", false, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[32];
        size_t length = strlen(cases[i].input);
        ssize_t n = ark_http_percent_decode(cases[i].input, length, out, cases[i].plus_is_space);
        if (cases[i].output == NULL) {
            ARK_ASSERT_MSG(n == -1, "\"%s\" should be refused", cases[i].input);
        } else {
            ARK_ASSERT_MSG(n == (ssize_t)strlen(cases[i].output) &&
                               memcmp(out, cases[i].output, (size_t)n) == 0,
                           "\"%s\"", cases[i].input);
        }
    }
    /* in place */
    char text[] = "x%41y";
    ARK_ASSERT_EQ(ark_http_percent_decode(text, 5, text, false), 3);
    ARK_ASSERT(memcmp(text, "xAy", 3) == 0);
}

ARK_TEST(query_pairs)
{
    const char *query = "&a=1&&b&c=x%20y&=v&d=";
    const char *expected[][2] = {{"a", "1"}, {"b", ""}, {"c", "x%20y"}, {"", "v"}, {"d", ""}};
    const char *cursor = query, *end = query + strlen(query), *name, *value;
    size_t name_length, value_length, count = 0;
    while (ark_http_query_next(&cursor, end, &name, &name_length, &value, &value_length)) {
        ARK_ASSERT(count < 5);
        ARK_ASSERT_EQ(name_length, strlen(expected[count][0]));
        ARK_ASSERT(memcmp(name, expected[count][0], name_length) == 0);
        ARK_ASSERT_EQ(value_length, strlen(expected[count][1]));
        ARK_ASSERT(memcmp(value, expected[count][1], value_length) == 0);
        count++;
    }
    ARK_ASSERT_EQ(count, 5);
}

/* ---- Response writer ---- */

static bool buffer_is(const struct ark_http_buffer *buffer, const char *text)
{
    return buffer->length == strlen(text) && memcmp(buffer->data, text, buffer->length) == 0;
}

ARK_TEST(response_head_and_chunked_body_serialize)
{
    struct ark_http_buffer buffer = {0};
    ARK_ASSERT_EQ(ark_http_write_status_line(&buffer, 1, 200, NULL), 0);
    ARK_ASSERT_EQ(ark_http_write_header(&buffer, "Content-Type", "text/plain"), 0);
    ARK_ASSERT_EQ(ark_http_write_header(&buffer, "Transfer-Encoding", "chunked"), 0);
    ARK_ASSERT_EQ(ark_http_write_head_end(&buffer), 0);
    ARK_ASSERT_EQ(ark_http_write_chunk(&buffer, "hello", 5), 0);
    ARK_ASSERT_EQ(ark_http_write_chunk(&buffer, "", 0), 0);
    char big[300];
    memset(big, 'x', sizeof(big));
    ARK_ASSERT_EQ(ark_http_write_chunk(&buffer, big, sizeof(big)), 0);
    ARK_ASSERT_EQ(ark_http_write_last_chunk(&buffer), 0);

    const char *head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n12c\r\n";
    ARK_ASSERT(buffer.length == strlen(head) + 300 + 7);
    ARK_ASSERT(memcmp(buffer.data, head, strlen(head)) == 0);
    ARK_ASSERT(memcmp(buffer.data + buffer.length - 7, "\r\n0\r\n\r\n", 7) == 0);

    /* what we write, our decoder reads back */
    size_t body_start = strstr(head, "\r\n\r\n") - head + 4;
    struct ark_http_chunked_decoder decoder;
    ark_http_chunked_decoder_init(&decoder, NULL);
    size_t position = body_start, used, piece_length;
    const char *piece;
    int rc = 0;
    while (rc == 0) {
        rc = ark_http_chunked_decode(&decoder, buffer.data + position, buffer.length - position,
                                     &used, &piece, &piece_length);
        position += used;
    }
    ARK_ASSERT_EQ(rc, ARK_HTTP_CHUNKED_DONE);
    ARK_ASSERT_EQ(position, buffer.length);
    ARK_ASSERT_EQ(decoder.body_bytes, 305);

    ark_http_buffer_consume(&buffer, 9);
    ARK_ASSERT(memcmp(buffer.data, "200 OK\r\n", 8) == 0);
    ark_http_buffer_consume(&buffer, buffer.length + 1);
    ARK_ASSERT_EQ(buffer.length, 0);
    ark_http_buffer_free(&buffer);
    ARK_ASSERT(buffer.data == NULL && buffer.length == 0);
}

ARK_TEST(response_writer_refuses_injection)
{
    struct ark_http_buffer buffer = {0};
    ARK_ASSERT_EQ(ark_http_write_status_line(&buffer, 0, 404, "Gone\r\nX: y"), -EINVAL);
    ARK_ASSERT_EQ(ark_http_write_status_line(&buffer, 1, 99, NULL), -EINVAL);
    ARK_ASSERT_EQ(ark_http_write_status_line(&buffer, 1, 1000, NULL), -EINVAL);
    ARK_ASSERT_EQ(ark_http_write_header(&buffer, "X-A", "v\r\nSet-Cookie: x"), -EINVAL);
    ARK_ASSERT_EQ(ark_http_write_header(&buffer, "X A", "v"), -EINVAL);
    ARK_ASSERT_EQ(ark_http_write_header(&buffer, "", "v"), -EINVAL);
    ARK_ASSERT_EQ(buffer.length, 0);
    ARK_ASSERT_EQ(ark_http_write_status_line(&buffer, 0, 431, NULL), 0);
    ARK_ASSERT_EQ(ark_http_write_content_length(&buffer, 18446744073709551615ull), 0);
    ARK_ASSERT(buffer_is(&buffer, "HTTP/1.0 431 Request Header Fields Too Large\r\n"
                                  "Content-Length: 18446744073709551615\r\n"));
    ark_http_buffer_free(&buffer);
    ARK_ASSERT_STR_EQ(ark_http_status_reason(413), "Content Too Large");
    ARK_ASSERT_STR_EQ(ark_http_status_reason(799), "Unknown");

    char prefix[ARK_HTTP_CHUNK_PREFIX_MAX];
    size_t n = ark_http_chunk_prefix(prefix, UINT64_MAX);
    ARK_ASSERT_EQ(n, 18);
    ARK_ASSERT(memcmp(prefix, "ffffffffffffffff\r\n", 18) == 0);
}

ARK_TEST(simple_response_for_refused_requests)
{
    struct ark_http_buffer buffer = {0};
    ARK_ASSERT_EQ(ark_http_write_simple_response(&buffer, 1, 405, NULL, false, "Allow", "GET, PUT"),
                  0);
    ARK_ASSERT(buffer_is(&buffer, "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain\r\n"
                                  "Content-Length: 19\r\nAllow: GET, PUT\r\n\r\n"
                                  "Method Not Allowed\n"));
    ark_http_buffer_free(&buffer);
    ARK_ASSERT_EQ(ark_http_write_simple_response(&buffer, 0, 400, "bare CR in a field value", true,
                                                 NULL, NULL),
                  0);
    ARK_ASSERT(buffer_is(&buffer, "HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\n"
                                  "Content-Length: 25\r\nConnection: close\r\n\r\n"
                                  "bare CR in a field value\n"));
    /* an injected extra field leaves the buffer as it was */
    size_t before = buffer.length;
    ARK_ASSERT_EQ(ark_http_write_simple_response(&buffer, 1, 404, NULL, false, "X", "a\r\nb: c"),
                  -EINVAL);
    ARK_ASSERT_EQ(buffer.length, before);
    ark_http_buffer_free(&buffer);
}

/* Inflates a gzip stream (zlib's gzip mode) into `out`; returns the length or -1. */
static long gunzip(const char *input, size_t length, char *out, size_t capacity)
{
    z_stream stream = {0};
    if (inflateInit2(&stream, 15 + 16) != Z_OK)
        return -1;
    stream.next_in = (Bytef *)input;
    stream.avail_in = (uInt)length;
    stream.next_out = (Bytef *)out;
    stream.avail_out = (uInt)capacity;
    int rc = inflate(&stream, Z_FINISH);
    long produced = (long)(capacity - stream.avail_out);
    inflateEnd(&stream);
    return rc == Z_STREAM_END ? produced : -1;
}

ARK_TEST(gzip_stream_round_trips_through_zlib)
{
    enum { SIZE = 200000 };
    char *plain = malloc(SIZE), *back = malloc(SIZE + 16);
    ARK_ASSERT(plain && back);
    for (size_t i = 0; i < SIZE; i++)
        plain[i] = (char)("abcdefgh"[i % 8] + (i / 1000) % 3);

    struct ark_http_gzip gzip;
    struct ark_http_buffer out = {0};
    ARK_ASSERT_EQ(ark_http_gzip_init(&gzip, -1), 0);
    /* uneven pieces, a mid-stream flush, then finish */
    size_t position = 0, step = 1;
    while (position < SIZE) {
        size_t take = SIZE - position < step ? SIZE - position : step;
        ARK_ASSERT_EQ(ark_http_gzip_compress(&gzip, plain + position, take, &out), 0);
        position += take;
        step = step * 3 + 1;
        if (position > SIZE / 2 && position - take <= SIZE / 2) {
            ARK_ASSERT_EQ(ark_http_gzip_flush(&gzip, &out), 0);
            /* after a sync flush everything so far can be decoded by the client */
            ARK_ASSERT(out.length > 10);
        }
    }
    ARK_ASSERT_EQ(ark_http_gzip_finish(&gzip, &out), 0);
    ARK_ASSERT_EQ(ark_http_gzip_compress(&gzip, "x", 1, &out), -EINVAL);
    ark_http_gzip_end(&gzip);
    ARK_ASSERT_LT(out.length, SIZE / 10);
    ARK_ASSERT_EQ(gunzip(out.data, out.length, back, SIZE + 16), SIZE);
    ARK_ASSERT(memcmp(back, plain, SIZE) == 0);
    ark_http_buffer_free(&out);

    /* an empty body is still a valid gzip stream */
    ARK_ASSERT_EQ(ark_http_gzip_init(&gzip, 1), 0);
    ARK_ASSERT_EQ(ark_http_gzip_finish(&gzip, &out), 0);
    ark_http_gzip_end(&gzip);
    ARK_ASSERT_EQ(gunzip(out.data, out.length, back, 16), 0);
    ark_http_buffer_free(&out);

    ARK_ASSERT_EQ(ark_http_gzip_init(&gzip, 10), -EINVAL);
    ark_http_gzip_end(&gzip);
    free(plain);
    free(back);
}
