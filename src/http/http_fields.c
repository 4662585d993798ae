/*
 * Small helpers over field values shared by the parser and, later, the session: token
 * characters, case-insensitive comparison, list iteration, Accept-Encoding negotiation, and
 * query strings with their percent-decoding.
 */
#include "http/http_parser.h"
#include "http/http_chars.h"

#include <string.h>

/* Bits of enum ark_http_char_class per byte: 1 tchar (RFC 9110 5.6.2), 2 field value byte
 * (5.5), 4 visible ASCII, 8 Host character (RFC 3986 reg-name, brackets, ':'). */
const unsigned char ark_http_char_classes[256] = {
    0,  0,  0,  0,  0,  0,  0,  0,  0,  2,  0,  0,  0,  0,  0,  0,  /* 0x00 */
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0x10 */
    2,  15, 6,  7,  15, 15, 15, 15, 14, 14, 15, 15, 14, 15, 15, 6,  /* 0x20 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14, 14, 6,  14, 6,  6,  /* 0x30 */
    6,  15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, /* 0x40 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14, 6,  14, 7,  15, /* 0x50 */
    7,  15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, /* 0x60 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 6,  7,  6,  15, 0,  /* 0x70 */
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* 0x80 */
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* 0x90 */
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* 0xa0 */
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* 0xb0 */
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* 0xc0 */
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* 0xd0 */
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* 0xe0 */
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* 0xf0 */
};

bool ark_http_is_token_char(unsigned char c)
{
    return ark_http_char_is(c, ARK_HTTP_CHAR_TOKEN);
}

static char lower_ascii(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
}

bool ark_http_token_equals(const char *a, size_t length, const char *lower)
{
    size_t i = 0;
    for (; i < length; i++) {
        if (lower[i] == '\0' || lower_ascii(a[i]) != lower[i])
            return false;
    }
    return lower[i] == '\0';
}

static bool is_whitespace(char c)
{
    return c == ' ' || c == '\t';
}

bool ark_http_list_next(const char **cursor, const char *end, const char **element,
                        size_t *element_length)
{
    const char *p = *cursor;

    while (p < end && (*p == ',' || is_whitespace(*p)))
        p++;
    if (p == end) {
        *cursor = p;
        return false;
    }
    const char *start = p;
    bool quoted = false;
    for (; p < end; p++) {
        if (quoted) {
            if (*p == '\\' && p + 1 < end)
                p++;
            else if (*p == '"')
                quoted = false;
        } else if (*p == '"') {
            quoted = true;
        } else if (*p == ',') {
            break;
        }
    }
    const char *stop = p;
    while (stop > start && is_whitespace(stop[-1]))
        stop--;
    *element = start;
    *element_length = (size_t)(stop - start);
    *cursor = p;
    return true;
}

/* Returns 0 when the element's q parameter is zero, 1 otherwise (absent q means 1). */
static int element_weight(const char *parameters, const char *end)
{
    const char *p = parameters;

    while (p < end) {
        while (p < end && (*p == ';' || is_whitespace(*p)))
            p++;
        const char *name = p;
        while (p < end && *p != '=' && *p != ';' && !is_whitespace(*p))
            p++;
        bool is_q = ark_http_token_equals(name, (size_t)(p - name), "q");
        while (p < end && is_whitespace(*p))
            p++;
        if (p < end && *p == '=') {
            p++;
            while (p < end && is_whitespace(*p))
                p++;
            const char *value = p;
            while (p < end && *p != ';' && !is_whitespace(*p))
                p++;
            if (is_q) {
                /* qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ) */
                for (const char *v = value; v < p; v++) {
                    if (*v >= '1' && *v <= '9')
                        return 1;
                }
                return 0;
            }
        }
    }
    return 1;
}

bool ark_http_accepts_gzip(const char *value, size_t length)
{
    const char *cursor = value, *element;
    size_t element_length;
    int gzip = -1, any = -1;

    while (ark_http_list_next(&cursor, value + length, &element, &element_length)) {
        const char *end = element + element_length;
        const char *semicolon = memchr(element, ';', element_length);
        const char *coding_end = semicolon ? semicolon : end;
        while (coding_end > element && is_whitespace(coding_end[-1]))
            coding_end--;
        size_t coding_length = (size_t)(coding_end - element);
        int weight = semicolon ? element_weight(semicolon, end) : 1;
        if (ark_http_token_equals(element, coding_length, "gzip") ||
            ark_http_token_equals(element, coding_length, "x-gzip"))
            gzip = gzip == 1 ? 1 : weight;
        else if (coding_length == 1 && element[0] == '*')
            any = weight;
    }
    if (gzip >= 0)
        return gzip == 1;
    return any == 1;
}

ssize_t ark_http_percent_decode(const char *input, size_t length, char *output, bool plus_is_space)
{
    size_t written = 0;
    for (size_t i = 0; i < length; i++) {
        char c = input[i];
        if (c == '%') {
            int high = i + 2 < length ? ark_http_hex_value((unsigned char)input[i + 1]) : -1;
            int low = high >= 0 ? ark_http_hex_value((unsigned char)input[i + 2]) : -1;
            if (low < 0 || (high == 0 && low == 0))
                return -1;
            c = (char)(high * 16 + low);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        output[written++] = c;
    }
    return (ssize_t)written;
}

bool ark_http_query_next(const char **cursor, const char *end, const char **name,
                         size_t *name_length, const char **value, size_t *value_length)
{
    const char *p = *cursor;
    while (p < end && *p == '&')
        p++;
    if (p == end) {
        *cursor = p;
        return false;
    }
    const char *pair_end = memchr(p, '&', (size_t)(end - p));
    if (pair_end == NULL)
        pair_end = end;
    const char *equals = memchr(p, '=', (size_t)(pair_end - p));
    *name = p;
    if (equals != NULL) {
        *name_length = (size_t)(equals - p);
        *value = equals + 1;
        *value_length = (size_t)(pair_end - equals - 1);
    } else {
        *name_length = (size_t)(pair_end - p);
        *value = pair_end;
        *value_length = 0;
    }
    *cursor = pair_end;
    return true;
}
