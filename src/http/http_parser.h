/*
 * Private HTTP/1.x request parser: the request head (request line and header fields) and the
 * chunked transfer coding, as RFC 9112 defines them for a server.
 *
 * Nothing here allocates or copies. The caller owns one buffer that holds every byte received
 * since the start of the current request; fields are reported as ranges (offset, length) into
 * that buffer, so the caller may move or grow the buffer between calls as long as the bytes
 * keep their offsets from the request start.
 *
 * Head parsing is incremental: call ark_http_request_parse() each time more bytes arrive, with
 * the same parser and the whole buffer so far. The parser keeps how far it got and never looks
 * at a byte twice in the request line; a header line is checked once, when its LF arrives.
 * Results (same contract as picohttpparser):
 *   > 0                  the head is complete; the value is the number of head bytes (any
 *                        leading empty lines, request line, fields and the empty line). The
 *                        body, if any, starts right after; so does a pipelined next request.
 *   ARK_HTTP_INCOMPLETE  (-2) more bytes are needed;
 *   ARK_HTTP_ERROR       (-1) the request is rejected: parser->status is the status to answer
 *                        (400, 413, 414, 417, 431, 501, 505) and parser->reason a static string
 *                        for the log line. The connection should be closed after the answer.
 * A rejected request is rejected as early as the bytes allow (a bad method byte fails at once).
 *
 * Strictness, deliberately: lines end in CRLF (a bare LF or a bare CR is rejected), exactly one
 * SP separates the request-line parts, no whitespace between a field name and its colon, no
 * obs-fold, no control characters in the target or in field values, an HTTP/1.1 request needs
 * exactly one Host, and a request carrying both Content-Length and Transfer-Encoding is
 * rejected (the smuggling defence RFC 9112 section 6.3 allows a server).
 *
 * Thread: a parser belongs to one connection; calls on different parsers are independent.
 */
#ifndef ARK_HTTP_PARSER_H
#define ARK_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ARK_HTTP_ERROR      (-1)
#define ARK_HTTP_INCOMPLETE (-2)

/* Limits a server enforces on one request; ark_http_limits_default() gives sane values. */
struct ark_http_limits {
    size_t max_method_length; /* longer method token -> 501 (default 32) */
    size_t max_target_length; /* longer request-target -> 414 (default 8000, RFC 9112 3) */
    size_t max_head_bytes;    /* request line + fields + CRLFs beyond this -> 431 (64 KiB); under
                                 4 GiB, as ranges hold 32-bit offsets */
    size_t max_header_count;  /* more fields than this -> 431 (default 100) */
    uint64_t max_body_bytes;  /* Content-Length or chunked total beyond this -> 413 (16 MiB) */
    size_t max_chunk_line;    /* chunk-size line incl. extensions beyond this -> 400 (4 KiB) */
};

/* Fills `limits` with the defaults listed above. */
void ark_http_limits_default(struct ark_http_limits *limits);
/* `limits`, or the static defaults when it is NULL. */
const struct ark_http_limits *ark_http_limits_or_default(const struct ark_http_limits *limits);

/* A range of the caller's buffer, as an offset from the start of the request. */
struct ark_http_range {
    uint32_t offset;
    uint32_t length;
};

/* One header field: the name as sent (compare case-insensitively), the value without OWS. */
struct ark_http_header {
    struct ark_http_range name;
    struct ark_http_range value;
};

/* How the request body is framed, decided from the head (RFC 9112 section 6.3). */
enum ark_http_body_framing {
    ARK_HTTP_BODY_NONE = 0, /* no body: no Content-Length, no Transfer-Encoding (or CL 0) */
    ARK_HTTP_BODY_LENGTH,   /* exactly content_length bytes follow the head */
    ARK_HTTP_BODY_CHUNKED,  /* Transfer-Encoding: chunked; use struct ark_http_chunked_decoder */
};

/* What the parser learned about the request; valid once parsing returned > 0. */
struct ark_http_request_head {
    struct ark_http_range method; /* case-sensitive token, e.g. GET */
    struct ark_http_range target; /* request-target as sent */
    /* Path part of the target: up to '?' for origin-form; for absolute-form the part after
     * the authority (length 0 when the target has no path, which means "/"). */
    struct ark_http_range path;
    struct ark_http_range query; /* after '?', without it; length 0 when absent */
    int version_minor;           /* HTTP/1.x: x (0 or 1; 1.2+ is reported as is) */
    size_t header_count;         /* fields stored in the parser's header array */
    enum ark_http_body_framing body_framing;
    uint64_t content_length;    /* with ARK_HTTP_BODY_LENGTH */
    bool keep_alive;            /* 1.1 unless "Connection: close"; 1.0 only with keep-alive */
    bool expect_continue;       /* HTTP/1.1 "Expect: 100-continue": send 100 before reading */
    struct ark_http_range host; /* the Host value (length 0 when absent, HTTP/1.0 only) */
};

/*
 * The parser for one request head. Initialise with ark_http_request_parser_init(); after a
 * request is fully handled, ark_http_request_parser_reset() prepares it for the next one on the
 * same connection. Fields starting with '_' are private.
 */
struct ark_http_request_parser {
    struct ark_http_request_head head;
    int status;         /* on ARK_HTTP_ERROR: the HTTP status to answer with */
    const char *reason; /* on ARK_HTTP_ERROR: static text saying what was wrong */

    const struct ark_http_limits *_limits;
    struct ark_http_header *_headers;
    size_t _header_capacity;
    size_t _offset; /* bytes of the buffer examined so far */
    size_t _mark;   /* start of the element being scanned */
    int _state;
    int _host_count;
    bool _has_content_length;
    bool _has_transfer_encoding;
    bool _connection_close;
    bool _connection_keep_alive;
    bool _te_chunked_last;
    bool _te_other_coding;
    unsigned _te_chunked_count;
    char _version[8];
    unsigned _version_length;
};

/*
 * Prepares `parser` for a new connection. `limits` (NULL: the defaults) and `headers` (room for
 * `header_capacity` fields; the caller's storage, at most limits->max_header_count is used) must
 * outlive the parser. Never fails.
 */
void ark_http_request_parser_init(struct ark_http_request_parser *parser,
                                  const struct ark_http_limits *limits,
                                  struct ark_http_header *headers, size_t header_capacity);

/* Forgets the current request (keeps limits and header storage) to parse the next one. */
void ark_http_request_parser_reset(struct ark_http_request_parser *parser);

/*
 * Parses the request head in `buffer[0..length)`, all bytes received since the request start.
 * Call again with the same parser and a longer buffer after ARK_HTTP_INCOMPLETE. Returns the
 * head length, ARK_HTTP_INCOMPLETE or ARK_HTTP_ERROR as described at the top of this file.
 * After a result other than ARK_HTTP_INCOMPLETE further calls return the same result.
 */
ssize_t ark_http_request_parse(struct ark_http_request_parser *parser, const char *buffer,
                               size_t length);

/* The header fields of a complete head, in the order received (parser->head.header_count). */
const struct ark_http_header *ark_http_request_headers(const struct ark_http_request_parser *p);

/*
 * Finds the first field named `name` (case-insensitive, NUL-terminated) in a complete head.
 * Returns its index or -1. Start at `from` to find the next one.
 */
ssize_t ark_http_request_find_header(const struct ark_http_request_parser *parser,
                                     const char *buffer, const char *name, size_t from);

/* Pointer to the bytes of `range` in `buffer` (not NUL-terminated). */
static inline const char *ark_http_range_pointer(const char *buffer, struct ark_http_range range)
{
    return buffer + range.offset;
}

/*
 * Incremental decoder of the chunked transfer coding (RFC 9112 section 7.1), extensions and
 * trailer fields included; the data is not copied but reported as pieces of the input.
 * Zero-initialise it, or call ark_http_chunked_decoder_init(); the limits must outlive it.
 */
struct ark_http_chunked_decoder {
    uint64_t body_bytes; /* data bytes decoded so far */
    int status;          /* on error: HTTP status to answer (400, 413, 431) */
    const char *reason;  /* on error: static text for the log line */

    const struct ark_http_limits *_limits;
    uint64_t _chunk_remaining;
    size_t _line_bytes;
    size_t _trailer_bytes;
    int _state;
    unsigned _size_digits;
};

#define ARK_HTTP_CHUNKED_DONE 1 /* the last chunk and trailers were consumed */

/* Prepares `decoder` for one chunked body; `limits` NULL means the defaults. */
void ark_http_chunked_decoder_init(struct ark_http_chunked_decoder *decoder,
                                   const struct ark_http_limits *limits);

/*
 * Decodes from `input[0..length)`, the next bytes of the body not consumed before. Consumes
 * framing bytes up to and including at most one piece of data, which it reports in `*data`
 * (pointing into `input`) and `*data_length` (0 when the consumed bytes held no data).
 * `*consumed` is the number of input bytes used. Returns:
 *   0                     keep going: call again with the rest of the input, or with more input
 *                         once all of it was consumed;
 *   ARK_HTTP_CHUNKED_DONE the body ended; `*consumed` stops right after it (pipelined bytes
 *                         follow); `*data_length` is 0;
 *   ARK_HTTP_ERROR        invalid coding or a limit hit: see decoder->status and ->reason.
 */
int ark_http_chunked_decode(struct ark_http_chunked_decoder *decoder, const char *input,
                            size_t length, size_t *consumed, const char **data,
                            size_t *data_length);

/* ---- Field value helpers (RFC 9110 lists: comma-separated, OWS around, empty elements) ---- */

/* Returns true when `a[0..length)` equals the NUL-terminated `lower` ignoring ASCII case. */
bool ark_http_token_equals(const char *a, size_t length, const char *lower);

/*
 * Iterates the elements of a comma-separated list value. `*cursor` starts at the value and
 * advances; `end` is one past the value. Returns false when no element is left; otherwise sets
 * `*element`/`*element_length` to the element with surrounding whitespace removed (never
 * empty). Commas inside quoted strings are honoured.
 */
bool ark_http_list_next(const char **cursor, const char *end, const char **element,
                        size_t *element_length);

/*
 * Returns true when an Accept-Encoding value admits gzip: "gzip" or "x-gzip" with a non-zero
 * q-value, or "*" with a non-zero q-value and gzip not refused explicitly (RFC 9110 12.5.3).
 */
bool ark_http_accepts_gzip(const char *value, size_t length);

/*
 * Decodes %XX escapes of `input[0..length)` into `output` (room for `length` bytes; it may be
 * `input` itself, decoding in place). With `plus_is_space`, '+' becomes ' ' (query strings).
 * Returns the decoded length, or -1 for a malformed escape ("%4", "%zz") or an escaped NUL
 * ("%00"), which would cut a C string short.
 */
ssize_t ark_http_percent_decode(const char *input, size_t length, char *output, bool plus_is_space);

/*
 * Iterates the name=value pairs of a query string ("a=1&b&c=x%20y"), not decoded. `*cursor`
 * starts at the query and advances; `end` is one past it. Returns false when no pair is left;
 * empty pairs ("&&") are skipped. A pair without '=' has an empty value.
 */
bool ark_http_query_next(const char **cursor, const char *end, const char **name,
                         size_t *name_length, const char **value, size_t *value_length);

/* True for an RFC 9110 tchar (the characters of a token). */
bool ark_http_is_token_char(unsigned char c);

#endif
