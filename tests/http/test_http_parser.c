/*
 * Request-head parser tests. Every case of the tables is parsed whole, then split at every byte
 * boundary (a prefix first, then the whole), then fed one byte at a time, and every way must
 * give the same result: that is what makes the parser safe to drive from partial reads.
 */
#include "ark_test.h"
#include "http/http_parser.h"

#include <stdbool.h>

enum { MAX_FIELDS = 16 };

/* The outcome of one parse, comparable between the whole and the split runs. */
struct outcome {
    ssize_t result;
    int status;
    const char *reason;
    struct ark_http_request_head head;
    struct ark_http_header headers[MAX_FIELDS];
};

static void capture(struct outcome *out, const struct ark_http_request_parser *parser,
                    ssize_t result)
{
    memset(out, 0, sizeof(*out));
    out->result = result;
    if (result == ARK_HTTP_ERROR) {
        out->status = parser->status;
        out->reason = parser->reason;
    } else if (result > 0) {
        out->head = parser->head;
        memcpy(out->headers, ark_http_request_headers(parser),
               parser->head.header_count * sizeof(struct ark_http_header));
    }
}

static bool same_range(struct ark_http_range a, struct ark_http_range b)
{
    return a.offset == b.offset && a.length == b.length;
}

static bool same_outcome(const struct outcome *a, const struct outcome *b)
{
    const struct ark_http_request_head *x = &a->head, *y = &b->head;
    if (a->result != b->result || a->status != b->status || a->reason != b->reason)
        return false;
    if (!same_range(x->method, y->method) || !same_range(x->target, y->target) ||
        !same_range(x->path, y->path) || !same_range(x->query, y->query) ||
        !same_range(x->host, y->host) || x->version_minor != y->version_minor ||
        x->header_count != y->header_count || x->body_framing != y->body_framing ||
        x->content_length != y->content_length || x->keep_alive != y->keep_alive ||
        x->expect_continue != y->expect_continue)
        return false;
    for (size_t i = 0; i < x->header_count; i++) {
        if (!same_range(a->headers[i].name, b->headers[i].name) ||
            !same_range(a->headers[i].value, b->headers[i].value))
            return false;
    }
    return true;
}

static void parse_with_splits(const char *input, size_t length,
                              const struct ark_http_limits *limits, struct outcome *out)
{
    struct ark_http_header headers[MAX_FIELDS];
    struct ark_http_request_parser parser;

    ark_http_request_parser_init(&parser, limits, headers, MAX_FIELDS);
    capture(out, &parser, ark_http_request_parse(&parser, input, length));

    for (size_t split = 0; split <= length; split++) {
        struct outcome again;
        ark_http_request_parser_init(&parser, limits, headers, MAX_FIELDS);
        ssize_t first = ark_http_request_parse(&parser, input, split);
        ssize_t result =
            first == ARK_HTTP_INCOMPLETE ? ark_http_request_parse(&parser, input, length) : first;
        capture(&again, &parser, result);
        ARK_ASSERT_MSG(same_outcome(&again, out),
                       "split at %zu of \"%s\": %zd/%d (%s) vs whole %zd/%d (%s)", split, input,
                       again.result, again.status, again.reason ? again.reason : "-", out->result,
                       out->status, out->reason ? out->reason : "-");
    }

    ark_http_request_parser_init(&parser, limits, headers, MAX_FIELDS);
    ssize_t result = ARK_HTTP_INCOMPLETE;
    for (size_t fed = 0; fed <= length && result == ARK_HTTP_INCOMPLETE; fed++)
        result = ark_http_request_parse(&parser, input, fed);
    struct outcome bytewise;
    capture(&bytewise, &parser, result);
    ARK_ASSERT_MSG(same_outcome(&bytewise, out), "byte-at-a-time differs for \"%s\"", input);
}

static bool range_is(const char *input, struct ark_http_range range, const char *text)
{
    return range.length == strlen(text) && memcmp(input + range.offset, text, range.length) == 0;
}

/* ---- Valid requests ---- */

struct valid_case {
    const char *input;
    size_t trailing; /* bytes after the head (body or pipelined data) */
    const char *method, *target, *path, *query;
    int minor;
    bool keep_alive, expect_continue;
    enum ark_http_body_framing framing;
    uint64_t content_length;
    size_t fields;
};

#define CRLF "\r\n"
static const struct valid_case valid_cases[] = {
    {"GET / HTTP/1.1" CRLF "Host: a" CRLF CRLF, 0, "GET", "/", "/", "", 1, true, false,
     ARK_HTTP_BODY_NONE, 0, 1},
    {"GET /hello?x=1&y HTTP/1.1" CRLF "Host: a" CRLF CRLF, 0, "GET", "/hello?x=1&y", "/hello",
     "x=1&y", 1, true, false, ARK_HTTP_BODY_NONE, 0, 1},
    {"GET / HTTP/1.0" CRLF CRLF, 0, "GET", "/", "/", "", 0, false, false, ARK_HTTP_BODY_NONE, 0, 0},
    {"GET / HTTP/1.0" CRLF "Connection: Keep-Alive" CRLF CRLF, 0, "GET", "/", "/", "", 0, true,
     false, ARK_HTTP_BODY_NONE, 0, 1},
    {"GET / HTTP/1.1" CRLF "Host: a" CRLF "Connection: foo, close" CRLF CRLF, 0, "GET", "/", "/",
     "", 1, false, false, ARK_HTTP_BODY_NONE, 0, 2},
    {"POST /up HTTP/1.1" CRLF "Host: a" CRLF "Content-Length: 5" CRLF CRLF "hello", 5, "POST",
     "/up", "/up", "", 1, true, false, ARK_HTTP_BODY_LENGTH, 5, 2},
    {"POST /up HTTP/1.1" CRLF "Host: a" CRLF "Content-Length: 0" CRLF CRLF, 0, "POST", "/up", "/up",
     "", 1, true, false, ARK_HTTP_BODY_NONE, 0, 2},
    /* identical repeated Content-Length values are one value (RFC 9112 6.3) */
    {"PUT /x HTTP/1.1" CRLF "Host: a" CRLF "Content-Length: 3, 3" CRLF "content-length: 3" CRLF CRLF
     "abc",
     3, "PUT", "/x", "/x", "", 1, true, false, ARK_HTTP_BODY_LENGTH, 3, 3},
    {"POST /c HTTP/1.1" CRLF "Host: a" CRLF "Transfer-Encoding: chunked" CRLF CRLF "0" CRLF CRLF, 5,
     "POST", "/c", "/c", "", 1, true, false, ARK_HTTP_BODY_CHUNKED, 0, 2},
    {"POST /c HTTP/1.1" CRLF "Host: a" CRLF "Transfer-Encoding: CHUNKED" CRLF
     "Expect: 100-continue" CRLF CRLF,
     0, "POST", "/c", "/c", "", 1, true, true, ARK_HTTP_BODY_CHUNKED, 0, 3},
    /* HTTP/1.0 ignores 100-continue */
    {"POST /c HTTP/1.0" CRLF "Expect: 100-continue" CRLF "Content-Length: 1" CRLF CRLF "x", 1,
     "POST", "/c", "/c", "", 0, false, false, ARK_HTTP_BODY_LENGTH, 1, 2},
    /* leading empty lines are skipped; OWS around values is not part of them */
    {CRLF CRLF "DELETE /a/b HTTP/1.1" CRLF "Host:\t a \t" CRLF "X-Empty:" CRLF CRLF, 0, "DELETE",
     "/a/b", "/a/b", "", 1, true, false, ARK_HTTP_BODY_NONE, 0, 2},
    /* absolute-form: the path is what follows the authority */
    {"GET http://example.com:80/p/q?z HTTP/1.1" CRLF "Host: example.com" CRLF CRLF, 0, "GET",
     "http://example.com:80/p/q?z", "/p/q", "z", 1, true, false, ARK_HTTP_BODY_NONE, 0, 1},
    {"GET / HTTP/1.1" CRLF "Host: [::1]:8888" CRLF CRLF, 0, "GET", "/", "/", "", 1, true, false,
     ARK_HTTP_BODY_NONE, 0, 1},
    {"GET / HTTP/1.1" CRLF "Host:" CRLF CRLF, 0, "GET", "/", "/", "", 1, true, false,
     ARK_HTTP_BODY_NONE, 0, 1},
    {"OPTIONS * HTTP/1.1" CRLF "Host: a" CRLF CRLF, 0, "OPTIONS", "*", "*", "", 1, true, false,
     ARK_HTTP_BODY_NONE, 0, 1},
    /* HTTP/1.2 would be served as 1.1 */
    {"GET / HTTP/1.2" CRLF "Host: a" CRLF CRLF, 0, "GET", "/", "/", "", 2, true, false,
     ARK_HTTP_BODY_NONE, 0, 1},
    /* obs-text is allowed in values; extension methods are tokens */
    {"PROPFIND /d HTTP/1.1" CRLF "Host: a" CRLF "X-T: caf\xc3\xa9" CRLF CRLF "GET", 3, "PROPFIND",
     "/d", "/d", "", 1, true, false, ARK_HTTP_BODY_NONE, 0, 2},
};

ARK_TEST(valid_requests_parse_the_same_however_split)
{
    for (size_t n = 0; n < sizeof(valid_cases) / sizeof(valid_cases[0]); n++) {
        const struct valid_case *c = &valid_cases[n];
        size_t length = strlen(c->input);
        struct outcome out;
        parse_with_splits(c->input, length, NULL, &out);
        ARK_ASSERT_MSG(out.result == (ssize_t)(length - c->trailing),
                       "case %zu: result %zd (%s), expected %zu", n, out.result,
                       out.reason ? out.reason : "-", length - c->trailing);
        ARK_ASSERT(range_is(c->input, out.head.method, c->method));
        ARK_ASSERT(range_is(c->input, out.head.target, c->target));
        ARK_ASSERT_MSG(range_is(c->input, out.head.path, c->path), "case %zu path", n);
        ARK_ASSERT_MSG(range_is(c->input, out.head.query, c->query), "case %zu query", n);
        ARK_ASSERT_EQ(out.head.version_minor, c->minor);
        ARK_ASSERT_MSG(out.head.keep_alive == c->keep_alive, "case %zu keep-alive", n);
        ARK_ASSERT_MSG(out.head.expect_continue == c->expect_continue, "case %zu expect", n);
        ARK_ASSERT_EQ(out.head.body_framing, c->framing);
        ARK_ASSERT_EQ(out.head.content_length, c->content_length);
        ARK_ASSERT_EQ(out.head.header_count, c->fields);
    }
}

ARK_TEST(header_fields_are_ranges_of_the_input)
{
    const char *input =
        "GET / HTTP/1.1" CRLF "Host: example" CRLF "X-A:  one two  " CRLF "x-a: 2" CRLF CRLF;
    struct outcome out;
    parse_with_splits(input, strlen(input), NULL, &out);
    ARK_ASSERT_GT(out.result, 0);
    ARK_ASSERT_EQ(out.head.header_count, 3);
    ARK_ASSERT(range_is(input, out.headers[1].name, "X-A"));
    ARK_ASSERT(range_is(input, out.headers[1].value, "one two"));
    ARK_ASSERT(range_is(input, out.head.host, "example"));

    struct ark_http_header headers[4];
    struct ark_http_request_parser parser;
    ark_http_request_parser_init(&parser, NULL, headers, 4);
    ARK_ASSERT_GT(ark_http_request_parse(&parser, input, strlen(input)), 0);
    ssize_t first = ark_http_request_find_header(&parser, input, "x-a", 0);
    ARK_ASSERT_EQ(first, 1);
    ARK_ASSERT_EQ(ark_http_request_find_header(&parser, input, "x-a", (size_t)first + 1), 2);
    ARK_ASSERT_EQ(ark_http_request_find_header(&parser, input, "x-b", 0), -1);
    /* a complete head keeps its answer: calling again returns the same length */
    ssize_t again = ark_http_request_parse(&parser, input, strlen(input));
    ARK_ASSERT_EQ(again, (ssize_t)strlen(input));
}

/* ---- Rejections, each with the status a server must answer ---- */

struct rejected_case {
    const char *input;
    int status;
    const char *why;    /* what the case is about */
    const char *reason; /* the parser's reason: proves it failed for that cause */
};

static const struct rejected_case rejected_cases[] = {
    {"G@T / HTTP/1.1" CRLF "Host: a" CRLF CRLF, 400, "bad token in method",
     "invalid character in method"},
    {"\x16\x03\x01\x02\x00", 400, "TLS hello on a plain port fails on the first byte",
     "invalid character in method"},
    {" GET / HTTP/1.1" CRLF "Host: a" CRLF CRLF, 400, "leading space", "empty method"},
    {"GET  / HTTP/1.1" CRLF "Host: a" CRLF CRLF, 400, "two spaces: empty target",
     "empty request-target"},
    {"GET /a\x01 HTTP/1.1" CRLF "Host: a" CRLF CRLF, 400, "control char in target",
     "invalid character in request-target"},
    {"GET /a\x7f HTTP/1.1" CRLF "Host: a" CRLF CRLF, 400, "DEL in target",
     "invalid character in request-target"},
    {"GET /\xc3\xa9 HTTP/1.1" CRLF "Host: a" CRLF CRLF, 400, "raw non-ASCII in target",
     "invalid character in request-target"},
    {"GET /a\tb HTTP/1.1" CRLF "Host: a" CRLF CRLF, 400, "tab in target",
     "invalid character in request-target"},
    {"GET / HTTP/1.1 " CRLF "Host: a" CRLF CRLF, 400, "space after version",
     "malformed HTTP version"},
    {"GET / http/1.1" CRLF "Host: a" CRLF CRLF, 400, "lower-case HTTP-name",
     "malformed HTTP version"},
    {"GET / HTTP/1.10" CRLF "Host: a" CRLF CRLF, 400, "three-digit version",
     "malformed HTTP version"},
    {"GET / HTTP/1" CRLF "Host: a" CRLF CRLF, 400, "short version", "malformed HTTP version"},
    {"GET /" CRLF CRLF, 400, "HTTP/0.9 request line without version",
     "request line without HTTP version"},
    {"GET / HTTP/2.0" CRLF "Host: a" CRLF CRLF, 505, "HTTP/2.0", "HTTP version not supported"},
    {"GET / HTTP/0.9" CRLF CRLF, 505, "HTTP/0.9 with a version", "HTTP version not supported"},
    {"GET / HTTP/3.0" CRLF CRLF, 505, "HTTP/3", "HTTP version not supported"},
    {"GET / HTTP/1.1\n"
     "Host: a" CRLF CRLF,
     400, "bare LF after the request line", "bare LF ending the request line"},
    {"GET / HTTP/1.1\rX"
     "Host: a" CRLF CRLF,
     400, "bare CR in the request line", "bare CR in the request line"},
    {"GET / HTTP/1.1" CRLF "Host: a\n" CRLF, 400, "bare LF ending a field",
     "bare LF in the header section"},
    {"GET / HTTP/1.1" CRLF "Host: a\rb" CRLF CRLF, 400, "bare CR in a field value",
     "bare CR in a field value"},
    {"GET / HTTP/1.1" CRLF "Host: a" CRLF "X\r: b" CRLF CRLF, 400, "bare CR in a field name",
     "bare CR in a field name"},
    {"\rGET / HTTP/1.1" CRLF "Host: a" CRLF CRLF, 400, "bare CR before the request line",
     "bare CR before the request line"},
    {"\nGET / HTTP/1.1" CRLF "Host: a" CRLF CRLF, 400, "bare LF before the request line",
     "bare LF before the request line"},
    {"GET / HTTP/1.1" CRLF "Host : a" CRLF CRLF, 400, "space before the colon",
     "whitespace between field name and colon"},
    {"GET / HTTP/1.1" CRLF "Host\t: a" CRLF CRLF, 400, "tab before the colon",
     "whitespace between field name and colon"},
    {"GET / HTTP/1.1" CRLF "Host: a" CRLF "X-F: one" CRLF " two" CRLF CRLF, 400, "obs-fold",
     "obs-fold or whitespace before a field line"},
    {"GET / HTTP/1.1" CRLF " Host: a" CRLF CRLF, 400, "whitespace before the first field",
     "obs-fold or whitespace before a field line"},
    {"GET / HTTP/1.1" CRLF "Ho(st: a" CRLF CRLF, 400, "invalid field-name char",
     "invalid character in field name"},
    {"GET / HTTP/1.1" CRLF "Host: a" CRLF ": b" CRLF CRLF, 400, "empty field name",
     "empty field name"},
    {"GET / HTTP/1.1" CRLF "Host: a" CRLF "NoColon" CRLF CRLF, 400, "field without colon",
     "field line without a colon"},
    {"GET / HTTP/1.1" CRLF "Host: a" CRLF "X: a\x01" CRLF CRLF, 400, "control char in value",
     "control character in a field value"},
    {"GET / HTTP/1.1" CRLF "Host: a" CRLF "X: a\x7f" CRLF CRLF, 400, "DEL in value",
     "control character in a field value"},
    {"GET / HTTP/1.1" CRLF "X: a" CRLF CRLF, 400, "HTTP/1.1 without Host",
     "HTTP/1.1 request without Host"},
    {"GET / HTTP/1.1" CRLF "Host: a b" CRLF CRLF, 400, "space in Host", "invalid Host"},
    {"GET / HTTP/1.1" CRLF "Host: a/b" CRLF CRLF, 400, "slash in Host", "invalid Host"},
    {"GET / HTTP/1.1" CRLF "Host: a@b" CRLF CRLF, 400, "userinfo in Host", "invalid Host"},
    {"GET / HTTP/1.1" CRLF "Host: a" CRLF "Host: b" CRLF CRLF, 400, "two Host fields",
     "more than one Host field"},
    {"POST / HTTP/1.1" CRLF "Host: a" CRLF "Content-Length: 5" CRLF
     "Transfer-Encoding: chunked" CRLF CRLF,
     400, "Content-Length and Transfer-Encoding", "both Content-Length and Transfer-Encoding"},
    {"POST / HTTP/1.1" CRLF "Host: a" CRLF "Transfer-Encoding: chunked" CRLF
     "Content-Length: 5" CRLF CRLF,
     400, "Transfer-Encoding then Content-Length", "both Content-Length and Transfer-Encoding"},
    {"POST / HTTP/1.1" CRLF "Host: a" CRLF "Content-Length: 5" CRLF "Content-Length: 6" CRLF CRLF,
     400, "differing Content-Length fields", "differing Content-Length values"},
    {"POST / HTTP/1.1" CRLF "Host: a" CRLF "Content-Length: 5, 6" CRLF CRLF, 400,
     "differing Content-Length list", "differing Content-Length values"},
    {"POST / HTTP/1.1" CRLF "Host: a" CRLF "Content-Length: -1" CRLF CRLF, 400, "negative CL",
     "invalid Content-Length"},
    {"POST / HTTP/1.1" CRLF "Host: a" CRLF "Content-Length: 1e3" CRLF CRLF, 400, "CL not digits",
     "invalid Content-Length"},
    {"POST / HTTP/1.1" CRLF "Host: a" CRLF "Content-Length: +5" CRLF CRLF, 400, "CL with sign",
     "invalid Content-Length"},
    {"POST / HTTP/1.1" CRLF "Host: a" CRLF "Content-Length:" CRLF CRLF, 400, "empty CL",
     "empty Content-Length"},
    {"POST / HTTP/1.1" CRLF "Host: a" CRLF "Content-Length: 99999999999999999999999" CRLF CRLF, 400,
     "CL overflow", "Content-Length out of range"},
    {"POST / HTTP/1.1" CRLF "Host: a" CRLF "Transfer-Encoding: chunked, gzip" CRLF CRLF, 400,
     "chunked not final", "Transfer-Encoding does not end in chunked"},
    {"POST / HTTP/1.1" CRLF "Host: a" CRLF "Transfer-Encoding: gzip" CRLF CRLF, 400,
     "no chunked at all", "Transfer-Encoding does not end in chunked"},
    {"POST / HTTP/1.1" CRLF "Host: a" CRLF "Transfer-Encoding: chunked" CRLF
     "Transfer-Encoding: identity" CRLF CRLF,
     400, "second TE field makes chunked not final", "Transfer-Encoding does not end in chunked"},
    {"POST / HTTP/1.1" CRLF "Host: a" CRLF "Transfer-Encoding: chunked, chunked" CRLF CRLF, 400,
     "chunked twice", "chunked applied more than once"},
    {"POST / HTTP/1.1" CRLF "Host: a" CRLF "Transfer-Encoding:" CRLF CRLF, 400, "empty TE",
     "Transfer-Encoding does not end in chunked"},
    {"POST / HTTP/1.0" CRLF "Transfer-Encoding: chunked" CRLF CRLF, 400, "TE in HTTP/1.0",
     "Transfer-Encoding in an HTTP/1.0 request"},
    {"POST / HTTP/1.1" CRLF "Host: a" CRLF "Transfer-Encoding: gzip, chunked" CRLF CRLF, 501,
     "a coding we do not implement", "unsupported transfer coding"},
    {"POST / HTTP/1.1" CRLF "Host: a" CRLF "Expect: 200-ok" CRLF CRLF, 417, "unknown expectation",
     "unsupported expectation"},
    {"POST / HTTP/1.1" CRLF "Host: a" CRLF "Content-Length: 16777217" CRLF CRLF, 413,
     "body over the default 16 MiB limit", "Content-Length larger than the body limit"},
};

ARK_TEST(rejections_carry_their_status_however_split)
{
    for (size_t n = 0; n < sizeof(rejected_cases) / sizeof(rejected_cases[0]); n++) {
        const struct rejected_case *c = &rejected_cases[n];
        struct outcome out;
        parse_with_splits(c->input, strlen(c->input), NULL, &out);
        ARK_ASSERT_MSG(out.result == ARK_HTTP_ERROR && out.status == c->status,
                       "case %zu (%s): result %zd status %d, expected %d", n, c->why, out.result,
                       out.status, c->status);
        ARK_ASSERT_MSG(out.reason != NULL && strcmp(out.reason, c->reason) == 0,
                       "case %zu (%s): reason \"%s\", expected \"%s\"", n, c->why,
                       out.reason ? out.reason : "(null)", c->reason);
    }
}

ARK_TEST(garbage_is_refused_before_the_head_is_complete)
{
    struct ark_http_header headers[4];
    struct ark_http_request_parser parser;
    ark_http_request_parser_init(&parser, NULL, headers, 4);
    ARK_ASSERT_EQ(ark_http_request_parse(&parser, "GET /a b", 8), ARK_HTTP_INCOMPLETE);
    ark_http_request_parser_init(&parser, NULL, headers, 4);
    ARK_ASSERT_EQ(ark_http_request_parse(&parser, "GE{", 3), ARK_HTTP_ERROR);
    ARK_ASSERT_EQ(parser.status, 400);
    /* once failed, it stays failed */
    ARK_ASSERT_EQ(ark_http_request_parse(&parser, "GET / HTTP/1.1\r\n\r\n", 18), ARK_HTTP_ERROR);
}

/* ---- Limits ---- */

static char *repeat(const char *prefix, char fill, size_t count, const char *suffix)
{
    size_t a = strlen(prefix), c = strlen(suffix);
    char *text = malloc(a + count + c + 1);
    ARK_ASSERT(text != NULL);
    memcpy(text, prefix, a);
    memset(text + a, fill, count);
    memcpy(text + a + count, suffix, c + 1);
    return text;
}

static int status_of(const char *input, const struct ark_http_limits *limits, bool split)
{
    struct outcome out;
    if (split) {
        parse_with_splits(input, strlen(input), limits, &out);
    } else {
        struct ark_http_header headers[MAX_FIELDS];
        struct ark_http_request_parser parser;
        ark_http_request_parser_init(&parser, limits, headers, MAX_FIELDS);
        capture(&out, &parser, ark_http_request_parse(&parser, input, strlen(input)));
    }
    return out.result == ARK_HTTP_ERROR ? out.status : out.result > 0 ? 200 : 0;
}

ARK_TEST(limits_answer_414_431_413_501)
{
    struct ark_http_limits limits;
    ark_http_limits_default(&limits);
    ARK_ASSERT_EQ(limits.max_target_length, 8000);
    limits.max_target_length = 40;
    limits.max_head_bytes = 200;
    limits.max_header_count = 3;
    limits.max_method_length = 8;
    limits.max_body_bytes = 100;

    char *text = repeat("GET /", 'a', 39, " HTTP/1.1\r\nHost: a\r\n\r\n");
    ARK_ASSERT_EQ(status_of(text, &limits, true), 200);
    free(text);
    text = repeat("GET /", 'a', 40, " HTTP/1.1\r\nHost: a\r\n\r\n");
    ARK_ASSERT_EQ(status_of(text, &limits, true), 414);
    free(text);
    /* the 414 comes as soon as the target outgrows the limit, without its end */
    text = repeat("GET /", 'a', 60, "");
    ARK_ASSERT_EQ(status_of(text, &limits, false), 414);
    free(text);

    text = repeat("GET / HTTP/1.1\r\nHost: a\r\nX: ", 'v', 190, "\r\n\r\n");
    ARK_ASSERT_EQ(status_of(text, &limits, true), 431);
    free(text);
    /* a field line that never ends is cut off at the head limit */
    text = repeat("GET / HTTP/1.1\r\nHost: a\r\nX: ", 'v', 300, "");
    ARK_ASSERT_EQ(status_of(text, &limits, false), 431);
    free(text);
    ARK_ASSERT_EQ(status_of("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n", &limits, true),
                  200);
    ARK_ASSERT_EQ(
        status_of("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", &limits, true), 431);

    ARK_ASSERT_EQ(status_of("PATCHABC / HTTP/1.1\r\nHost: a\r\n\r\n", &limits, true), 200);
    ARK_ASSERT_EQ(status_of("PATCHABCD / HTTP/1.1\r\nHost: a\r\n\r\n", &limits, true), 501);

    ARK_ASSERT_EQ(
        status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n", &limits, true), 200);
    ARK_ASSERT_EQ(
        status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n", &limits, true), 413);
}

ARK_TEST(endless_empty_lines_hit_the_head_limit)
{
    struct ark_http_limits limits;
    ark_http_limits_default(&limits);
    limits.max_head_bytes = 64;
    char text[200];
    for (size_t i = 0; i < sizeof(text); i += 2)
        memcpy(text + i, "\r\n", 2);
    struct ark_http_header headers[2];
    struct ark_http_request_parser parser;
    ark_http_request_parser_init(&parser, &limits, headers, 2);
    ARK_ASSERT_EQ(ark_http_request_parse(&parser, text, 60), ARK_HTTP_INCOMPLETE);
    ARK_ASSERT_EQ(ark_http_request_parse(&parser, text, sizeof(text)), ARK_HTTP_ERROR);
    ARK_ASSERT_EQ(parser.status, 431);
}

ARK_TEST(header_storage_smaller_than_the_limit_answers_431)
{
    const char *input = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
    struct ark_http_header headers[2];
    struct ark_http_request_parser parser;
    ark_http_request_parser_init(&parser, NULL, headers, 2);
    ARK_ASSERT_EQ(ark_http_request_parse(&parser, input, strlen(input)), ARK_HTTP_ERROR);
    ARK_ASSERT_EQ(parser.status, 431);
}

/* ---- Pipelining ---- */

ARK_TEST(pipelined_requests_follow_each_other)
{
    const char *stream = "GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
                         "POST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody"
                         "POST /three HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n"
                         "\r\nGET /four HTTP/1.0\r\n\r\n";
    const char *paths[] = {"/one", "/two", "/three", "/four"};
    const char *bodies[] = {"", "body", "abc", ""};
    size_t length = strlen(stream), position = 0, count = 0;
    struct ark_http_header headers[8];
    struct ark_http_request_parser parser;
    ark_http_request_parser_init(&parser, NULL, headers, 8);

    while (position < length) {
        const char *request = stream + position;
        ssize_t head = ark_http_request_parse(&parser, request, length - position);
        ARK_ASSERT_MSG(head > 0, "request %zu: %zd %s", count, head,
                       parser.reason ? parser.reason : "");
        ARK_ASSERT(count < 4);
        ARK_ASSERT(range_is(request, parser.head.path, paths[count]));
        position += (size_t)head;
        char body[16] = "";
        size_t body_length = 0;
        if (parser.head.body_framing == ARK_HTTP_BODY_LENGTH) {
            memcpy(body, stream + position, parser.head.content_length);
            body_length = parser.head.content_length;
            position += parser.head.content_length;
        } else if (parser.head.body_framing == ARK_HTTP_BODY_CHUNKED) {
            struct ark_http_chunked_decoder decoder;
            ark_http_chunked_decoder_init(&decoder, NULL);
            int rc = 0;
            while (rc == 0) {
                size_t used, piece_length;
                const char *piece;
                rc = ark_http_chunked_decode(&decoder, stream + position, length - position, &used,
                                             &piece, &piece_length);
                ARK_ASSERT(rc >= 0);
                ARK_ASSERT(body_length + piece_length <= sizeof(body));
                if (piece_length > 0)
                    memcpy(body + body_length, piece, piece_length);
                body_length += piece_length;
                position += used;
            }
        }
        ARK_ASSERT_EQ(body_length, strlen(bodies[count]));
        ARK_ASSERT(memcmp(body, bodies[count], body_length) == 0);
        ark_http_request_parser_reset(&parser);
        count++;
    }
    ARK_ASSERT_EQ(count, 4);
}

ARK_TEST(buffer_may_move_between_calls)
{
    /* The session grows its buffer with realloc: ranges are offsets, so they survive. */
    const char *input = "PUT /moved?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok";
    size_t length = strlen(input), split = 20;
    char *first = malloc(split), *second = malloc(length);
    ARK_ASSERT(first && second);
    memcpy(first, input, split);
    struct ark_http_header headers[4];
    struct ark_http_request_parser parser;
    ark_http_request_parser_init(&parser, NULL, headers, 4);
    ARK_ASSERT_EQ(ark_http_request_parse(&parser, first, split), ARK_HTTP_INCOMPLETE);
    memcpy(second, input, length);
    memset(first, 'X', split); /* the old bytes are gone */
    free(first);
    ssize_t head = ark_http_request_parse(&parser, second, length);
    ARK_ASSERT_EQ(head, (ssize_t)length - 2);
    ARK_ASSERT(range_is(second, parser.head.method, "PUT"));
    ARK_ASSERT(range_is(second, parser.head.path, "/moved"));
    ARK_ASSERT(range_is(second, parser.head.query, "x=1"));
    ARK_ASSERT(range_is(second, parser.head.host, "h"));
    ARK_ASSERT_EQ(parser.head.content_length, 2);
    free(second);
}
