/*
 * Private character classes of HTTP (RFC 9110, 9112) and URIs (RFC 3986) as one table of bits,
 * so each scanning loop tests a byte with a single load.
 */
#ifndef ARK_HTTP_CHARS_H
#define ARK_HTTP_CHARS_H

#include <stdbool.h>

enum ark_http_char_class {
    ARK_HTTP_CHAR_TOKEN = 1,  /* tchar: the characters of a token (methods, field names) */
    ARK_HTTP_CHAR_VALUE = 2,  /* field-vchar, SP, HTAB, obs-text: a field value's bytes */
    ARK_HTTP_CHAR_TARGET = 4, /* visible ASCII: what a request-target may hold */
    ARK_HTTP_CHAR_HOST = 8,   /* reg-name, IP-literal brackets and ':' port: a Host value */
};

extern const unsigned char ark_http_char_classes[256];

/* True when byte `c` belongs to one of the classes in `classes`. */
static inline bool ark_http_char_is(unsigned char c, unsigned classes)
{
    return (ark_http_char_classes[c] & classes) != 0;
}

/* The value of hex digit `c`, or -1. */
static inline int ark_http_hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

#endif
