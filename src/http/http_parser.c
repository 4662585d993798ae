/*
 * The request-head parser: request line byte by byte (so garbage is refused on its first bad
 * byte), header lines found with memchr and checked once each when their LF arrives, and the
 * framing and connection semantics of RFC 9112 decided from the fields as they complete.
 * Positions are kept as offsets, never pointers, because the caller's buffer may move.
 */
#include "http/http_parser.h"
#include "http/http_chars.h"

#include <string.h>

enum request_state {
    STATE_START,    /* before the request line; empty lines are skipped (RFC 9112 2.2) */
    STATE_START_LF, /* CR of an empty line seen, LF expected */
    STATE_METHOD,
    STATE_TARGET,
    STATE_VERSION,
    STATE_REQUEST_LF, /* CR ending the request line seen */
    STATE_FIELD_LINE, /* at the start of a field line or of the empty line */
    STATE_DONE,
    STATE_FAILED,
};

static const struct ark_http_limits default_limits = {
    .max_method_length = 32,
    .max_target_length = 8000,
    .max_head_bytes = 64 * 1024,
    .max_header_count = 100,
    .max_body_bytes = 16 * 1024 * 1024,
    .max_chunk_line = 4096,
};

void ark_http_limits_default(struct ark_http_limits *limits)
{
    *limits = default_limits;
}

const struct ark_http_limits *ark_http_limits_or_default(const struct ark_http_limits *limits)
{
    return limits ? limits : &default_limits;
}

void ark_http_request_parser_init(struct ark_http_request_parser *parser,
                                  const struct ark_http_limits *limits,
                                  struct ark_http_header *headers, size_t header_capacity)
{
    memset(parser, 0, sizeof(*parser));
    parser->_limits = ark_http_limits_or_default(limits);
    parser->_headers = headers;
    parser->_header_capacity = header_capacity;
    if (parser->_header_capacity > parser->_limits->max_header_count)
        parser->_header_capacity = parser->_limits->max_header_count;
}

void ark_http_request_parser_reset(struct ark_http_request_parser *parser)
{
    ark_http_request_parser_init(parser, parser->_limits, parser->_headers,
                                 parser->_header_capacity);
}

static ssize_t reject(struct ark_http_request_parser *parser, int status, const char *reason)
{
    parser->_state = STATE_FAILED;
    parser->status = status;
    parser->reason = reason;
    return ARK_HTTP_ERROR;
}

static struct ark_http_range make_range(size_t offset, size_t length)
{
    struct ark_http_range range = {(uint32_t)offset, (uint32_t)length};
    return range;
}

static bool is_scheme_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '-' || c == '.';
}

/* Splits the target into path and query; absolute-form targets keep only their path. */
static void split_target(struct ark_http_request_head *head, const char *buffer)
{
    const char *target = buffer + head->target.offset;
    size_t length = head->target.length, start = 0, scheme = 0;

    if (target[0] != '/') {
        while (scheme < length && is_scheme_char(target[scheme]))
            scheme++;
        if (scheme > 0 && scheme + 3 <= length && memcmp(target + scheme, "://", 3) == 0) {
            start = scheme + 3;
            while (start < length && target[start] != '/' && target[start] != '?')
                start++;
        }
    }
    const char *question = memchr(target + start, '?', length - start);
    size_t path_end = question ? (size_t)(question - target) : length;
    head->path = make_range(head->target.offset + start, path_end - start);
    if (question)
        head->query = make_range(head->target.offset + path_end + 1, length - path_end - 1);
}

static ssize_t finish_request_line(struct ark_http_request_parser *parser, const char *buffer)
{
    const char *version = parser->_version;

    if (parser->_version_length != 8 || memcmp(version, "HTTP/", 5) != 0 || version[5] < '0' ||
        version[5] > '9' || version[6] != '.' || version[7] < '0' || version[7] > '9')
        return reject(parser, 400, "malformed HTTP version");
    if (version[5] != '1')
        return reject(parser, 505, "HTTP version not supported");
    parser->head.version_minor = version[7] - '0';
    split_target(&parser->head, buffer);
    return 0;
}

static ssize_t parse_content_length(struct ark_http_request_parser *parser, const char *value,
                                    size_t length)
{
    const char *cursor = value, *element;
    size_t element_length;
    bool any = false;

    while (ark_http_list_next(&cursor, value + length, &element, &element_length)) {
        uint64_t number = 0;
        for (size_t i = 0; i < element_length; i++) {
            if (element[i] < '0' || element[i] > '9')
                return reject(parser, 400, "invalid Content-Length");
            if (number > (UINT64_MAX - 9) / 10)
                return reject(parser, 400, "Content-Length out of range");
            number = number * 10 + (uint64_t)(element[i] - '0');
        }
        if (parser->_has_content_length && number != parser->head.content_length)
            return reject(parser, 400, "differing Content-Length values");
        parser->_has_content_length = true;
        parser->head.content_length = number;
        any = true;
    }
    if (!any)
        return reject(parser, 400, "empty Content-Length");
    return 0;
}

static void parse_transfer_encoding(struct ark_http_request_parser *parser, const char *value,
                                    size_t length)
{
    const char *cursor = value, *element;
    size_t element_length;

    parser->_has_transfer_encoding = true;
    while (ark_http_list_next(&cursor, value + length, &element, &element_length)) {
        if (ark_http_token_equals(element, element_length, "chunked")) {
            parser->_te_chunked_count++;
            parser->_te_chunked_last = true;
        } else {
            parser->_te_other_coding = true;
            parser->_te_chunked_last = false;
        }
    }
}

static void parse_connection(struct ark_http_request_parser *parser, const char *value,
                             size_t length)
{
    const char *cursor = value, *element;
    size_t element_length;

    while (ark_http_list_next(&cursor, value + length, &element, &element_length)) {
        if (ark_http_token_equals(element, element_length, "close"))
            parser->_connection_close = true;
        else if (ark_http_token_equals(element, element_length, "keep-alive"))
            parser->_connection_keep_alive = true;
    }
}

static ssize_t parse_expect(struct ark_http_request_parser *parser, const char *value,
                            size_t length)
{
    const char *cursor = value, *element;
    size_t element_length;

    /* RFC 9110 10.1.1: a server ignores 100-continue in an HTTP/1.0 request. */
    if (parser->head.version_minor == 0)
        return 0;
    while (ark_http_list_next(&cursor, value + length, &element, &element_length)) {
        if (ark_http_token_equals(element, element_length, "100-continue"))
            parser->head.expect_continue = true;
        else
            return reject(parser, 417, "unsupported expectation");
    }
    return 0;
}

/* RFC 9112 3.2: Host = uri-host [ ":" port ], possibly empty. uri-host is a reg-name
 * (unreserved, pct-encoded, sub-delims) or an IP literal in brackets; this checks the
 * characters, which is what keeps a bad value from reaching logs or a proxy. */
static bool is_valid_host(const char *value, size_t length)
{
    for (size_t i = 0; i < length; i++) {
        if (!ark_http_char_is((unsigned char)value[i], ARK_HTTP_CHAR_HOST))
            return false;
    }
    return true;
}

/* One field line, [start, end) without its CRLF. */
static ssize_t parse_field_line(struct ark_http_request_parser *parser, const char *buffer,
                                size_t start, size_t end)
{
    size_t colon = start;

    if (buffer[start] == ' ' || buffer[start] == '\t')
        return reject(parser, 400, "obs-fold or whitespace before a field line");
    while (colon < end && ark_http_char_is((unsigned char)buffer[colon], ARK_HTTP_CHAR_TOKEN))
        colon++;
    if (colon < end && buffer[colon] != ':') {
        unsigned char c = (unsigned char)buffer[colon];
        if (c == ' ' || c == '\t')
            return reject(parser, 400, "whitespace between field name and colon");
        if (c == '\r')
            return reject(parser, 400, "bare CR in a field name");
        return reject(parser, 400, "invalid character in field name");
    }
    if (colon == end)
        return reject(parser, 400, "field line without a colon");
    if (colon == start)
        return reject(parser, 400, "empty field name");

    size_t value_start = colon + 1, value_end = end;
    while (value_start < end && (buffer[value_start] == ' ' || buffer[value_start] == '\t'))
        value_start++;
    while (value_end > value_start &&
           (buffer[value_end - 1] == ' ' || buffer[value_end - 1] == '\t'))
        value_end--;
    for (size_t i = value_start; i < value_end; i++) {
        unsigned char c = (unsigned char)buffer[i];
        if (!ark_http_char_is(c, ARK_HTTP_CHAR_VALUE))
            return reject(parser, 400,
                          c == '\r' ? "bare CR in a field value"
                                    : "control character in a field value");
    }

    if (parser->head.header_count >= parser->_header_capacity)
        return reject(parser, 431, "too many header fields");
    struct ark_http_header *header = &parser->_headers[parser->head.header_count++];
    header->name = make_range(start, colon - start);
    header->value = make_range(value_start, value_end - value_start);

    const char *name = buffer + start, *value = buffer + value_start;
    size_t name_length = colon - start, value_length = value_end - value_start;
    switch (name_length) {
    case 4:
        if (ark_http_token_equals(name, name_length, "host")) {
            if (!is_valid_host(value, value_length))
                return reject(parser, 400, "invalid Host");
            parser->_host_count++;
            parser->head.host = header->value;
        }
        break;
    case 6:
        if (ark_http_token_equals(name, name_length, "expect"))
            return parse_expect(parser, value, value_length);
        break;
    case 10:
        if (ark_http_token_equals(name, name_length, "connection"))
            parse_connection(parser, value, value_length);
        break;
    case 14:
        if (ark_http_token_equals(name, name_length, "content-length"))
            return parse_content_length(parser, value, value_length);
        break;
    case 17:
        if (ark_http_token_equals(name, name_length, "transfer-encoding"))
            parse_transfer_encoding(parser, value, value_length);
        break;
    default:
        break;
    }
    return 0;
}

/* Decides framing and persistence once the whole head is known (RFC 9112 6.1, 6.3, 9.3). */
static ssize_t finish_head(struct ark_http_request_parser *parser)
{
    struct ark_http_request_head *head = &parser->head;

    if (head->version_minor >= 1 && parser->_host_count == 0)
        return reject(parser, 400, "HTTP/1.1 request without Host");
    if (parser->_host_count > 1)
        return reject(parser, 400, "more than one Host field");
    if (parser->_has_transfer_encoding) {
        if (parser->_has_content_length)
            return reject(parser, 400, "both Content-Length and Transfer-Encoding");
        if (head->version_minor == 0)
            return reject(parser, 400, "Transfer-Encoding in an HTTP/1.0 request");
        if (parser->_te_chunked_count > 1)
            return reject(parser, 400, "chunked applied more than once");
        if (!parser->_te_chunked_last)
            return reject(parser, 400, "Transfer-Encoding does not end in chunked");
        if (parser->_te_other_coding)
            return reject(parser, 501, "unsupported transfer coding");
        head->body_framing = ARK_HTTP_BODY_CHUNKED;
    } else if (parser->_has_content_length) {
        if (head->content_length > parser->_limits->max_body_bytes)
            return reject(parser, 413, "Content-Length larger than the body limit");
        if (head->content_length > 0)
            head->body_framing = ARK_HTTP_BODY_LENGTH;
    }
    if (head->version_minor >= 1)
        head->keep_alive = !parser->_connection_close;
    else
        head->keep_alive = parser->_connection_keep_alive && !parser->_connection_close;
    return 0;
}

/*
 * Advances from `i` over bytes of `classes`, stopping at the first other byte, at `scan_end`,
 * or once the word begun at `mark` is `max_length` long. Returns where it stopped.
 */
static size_t scan_word(const char *buffer, size_t i, size_t mark, size_t max_length,
                        size_t scan_end, unsigned classes)
{
    size_t stop = scan_end;
    if (max_length < scan_end - mark)
        stop = mark + max_length;
    while (i < stop && ark_http_char_is((unsigned char)buffer[i], classes))
        i++;
    return i;
}

ssize_t ark_http_request_parse(struct ark_http_request_parser *parser, const char *buffer,
                               size_t length)
{
    const struct ark_http_limits *limits = parser->_limits;
    size_t i = parser->_offset;
    /* Before the field lines, scanning stops at the head limit (checked at the loop top). */
    size_t scan_end = length < limits->max_head_bytes ? length : limits->max_head_bytes;

    if (parser->_state == STATE_DONE)
        return (ssize_t)parser->_offset;
    if (parser->_state == STATE_FAILED)
        return ARK_HTTP_ERROR;

    while (i < length) {
        unsigned char c = (unsigned char)buffer[i];
        /* Field lines check the limit per line; before them, per byte. */
        if (parser->_state < STATE_FIELD_LINE && i >= limits->max_head_bytes)
            return reject(parser, 431, "request head too large");
        switch (parser->_state) {
        case STATE_START:
            if (c == '\r') {
                parser->_state = STATE_START_LF;
                i++;
            } else if (c == '\n') {
                return reject(parser, 400, "bare LF before the request line");
            } else {
                parser->_mark = i;
                parser->_state = STATE_METHOD;
            }
            break;
        case STATE_START_LF:
            if (c != '\n')
                return reject(parser, 400, "bare CR before the request line");
            parser->_state = STATE_START;
            i++;
            break;
        case STATE_METHOD: {
            i = scan_word(buffer, i, parser->_mark, limits->max_method_length, scan_end,
                          ARK_HTTP_CHAR_TOKEN);
            if (i == scan_end)
                break;
            c = (unsigned char)buffer[i];
            if (c == ' ') {
                if (i == parser->_mark)
                    return reject(parser, 400, "empty method");
                parser->head.method = make_range(parser->_mark, i - parser->_mark);
                parser->_mark = ++i;
                parser->_state = STATE_TARGET;
            } else if (!ark_http_char_is(c, ARK_HTTP_CHAR_TOKEN)) {
                return reject(parser, 400, "invalid character in method");
            } else {
                return reject(parser, 501, "method too long");
            }
            break;
        }
        case STATE_TARGET: {
            i = scan_word(buffer, i, parser->_mark, limits->max_target_length, scan_end,
                          ARK_HTTP_CHAR_TARGET);
            if (i == scan_end)
                break;
            c = (unsigned char)buffer[i];
            if (c == ' ') {
                if (i == parser->_mark)
                    return reject(parser, 400, "empty request-target");
                parser->head.target = make_range(parser->_mark, i - parser->_mark);
                parser->_state = STATE_VERSION;
                i++;
            } else if (c == '\r' || c == '\n') {
                return reject(parser, 400, "request line without HTTP version");
            } else if (!ark_http_char_is(c, ARK_HTTP_CHAR_TARGET)) {
                return reject(parser, 400, "invalid character in request-target");
            } else {
                return reject(parser, 414, "request-target too long");
            }
            break;
        }
        case STATE_VERSION:
            if (c == '\r') {
                parser->_state = STATE_REQUEST_LF;
            } else if (c == '\n') {
                return reject(parser, 400, "bare LF ending the request line");
            } else if (parser->_version_length == sizeof(parser->_version)) {
                return reject(parser, 400, "malformed HTTP version");
            } else {
                parser->_version[parser->_version_length++] = (char)c;
            }
            i++;
            break;
        case STATE_REQUEST_LF:
            if (c != '\n')
                return reject(parser, 400, "bare CR in the request line");
            i++;
            if (finish_request_line(parser, buffer) < 0)
                return ARK_HTTP_ERROR;
            parser->_mark = i;
            parser->_state = STATE_FIELD_LINE;
            break;
        case STATE_FIELD_LINE: {
            const char *newline = memchr(buffer + i, '\n', length - i);
            size_t end = newline ? (size_t)(newline - buffer) : length;
            if ((newline ? end + 1 : length) > limits->max_head_bytes)
                return reject(parser, 431, "request head too large");
            if (!newline) {
                i = length;
                break;
            }
            i = end + 1;
            if (end == parser->_mark || buffer[end - 1] != '\r')
                return reject(parser, 400, "bare LF in the header section");
            if (end - 1 == parser->_mark) {
                if (finish_head(parser) < 0)
                    return ARK_HTTP_ERROR;
                parser->_state = STATE_DONE;
                parser->_offset = i;
                return (ssize_t)i;
            }
            if (parse_field_line(parser, buffer, parser->_mark, end - 1) < 0)
                return ARK_HTTP_ERROR;
            parser->_mark = i;
            break;
        }
        default:
            return reject(parser, 500, "parser state corrupted");
        }
    }
    parser->_offset = i;
    return ARK_HTTP_INCOMPLETE;
}

const struct ark_http_header *ark_http_request_headers(const struct ark_http_request_parser *p)
{
    return p->_headers;
}

ssize_t ark_http_request_find_header(const struct ark_http_request_parser *parser,
                                     const char *buffer, const char *name, size_t from)
{
    for (size_t i = from; i < parser->head.header_count; i++) {
        const struct ark_http_header *header = &parser->_headers[i];
        if (ark_http_token_equals(buffer + header->name.offset, header->name.length, name))
            return (ssize_t)i;
    }
    return -1;
}
