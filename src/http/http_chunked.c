/*
 * The chunked transfer coding decoder (RFC 9112 7.1): a byte-at-a-time state machine for the
 * framing (size lines, extensions, CRLFs, trailer fields) and whole runs for the data, which
 * is handed back as a piece of the caller's input rather than copied. Extensions are only
 * checked for control characters and trailer fields for their shape (token, colon, value);
 * both are then dropped, as nothing in the server acts on them.
 */
#include "http/http_parser.h"
#include "http/http_chars.h"

enum chunked_state {
    CHUNK_SIZE_FIRST, /* at least one hex digit needed */
    CHUNK_SIZE,       /* more hex digits, or what ends the size */
    CHUNK_SIZE_SPACE, /* BWS after the size: only ';' may follow */
    CHUNK_EXTENSION,  /* chunk-ext up to CR */
    CHUNK_SIZE_LF,    /* CR of the size line seen */
    CHUNK_DATA,
    CHUNK_DATA_CR, /* CRLF after the data */
    CHUNK_DATA_LF,
    CHUNK_TRAILER_START, /* after the last chunk: a trailer field or the final CRLF */
    CHUNK_TRAILER_NAME,
    CHUNK_TRAILER_VALUE,
    CHUNK_TRAILER_LF,
    CHUNK_END_LF, /* CR of the final empty line seen */
    CHUNK_DONE,
    CHUNK_FAILED,
};

void ark_http_chunked_decoder_init(struct ark_http_chunked_decoder *decoder,
                                   const struct ark_http_limits *limits)
{
    *decoder = (struct ark_http_chunked_decoder){0};
    decoder->_limits = ark_http_limits_or_default(limits);
}

static int fail(struct ark_http_chunked_decoder *decoder, int status, const char *reason)
{
    decoder->_state = CHUNK_FAILED;
    decoder->status = status;
    decoder->reason = reason;
    return ARK_HTTP_ERROR;
}

static bool is_field_value_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

int ark_http_chunked_decode(struct ark_http_chunked_decoder *decoder, const char *input,
                            size_t length, size_t *consumed, const char **data, size_t *data_length)
{
    const struct ark_http_limits *limits = ark_http_limits_or_default(decoder->_limits);
    size_t i = 0;

    *data = NULL;
    *data_length = 0;
    *consumed = 0;
    if (decoder->_state == CHUNK_DONE)
        return ARK_HTTP_CHUNKED_DONE;
    if (decoder->_state == CHUNK_FAILED)
        return ARK_HTTP_ERROR;

    while (i < length) {
        unsigned char c = (unsigned char)input[i];
        int state = decoder->_state;

        if (state == CHUNK_DATA) {
            size_t available = length - i;
            size_t take = decoder->_chunk_remaining < available ? (size_t)decoder->_chunk_remaining
                                                                : available;
            *data = input + i;
            *data_length = take;
            decoder->_chunk_remaining -= take;
            decoder->body_bytes += take;
            if (decoder->_chunk_remaining == 0)
                decoder->_state = CHUNK_DATA_CR;
            *consumed = i + take;
            return 0;
        }

        i++;
        if (state <= CHUNK_SIZE_LF && ++decoder->_line_bytes > limits->max_chunk_line)
            return fail(decoder, 400, "chunk-size line too long");
        if (state >= CHUNK_TRAILER_START && state <= CHUNK_END_LF &&
            ++decoder->_trailer_bytes > limits->max_head_bytes)
            return fail(decoder, 431, "trailer section too large");

        switch (state) {
        case CHUNK_SIZE_FIRST:
        case CHUNK_SIZE: {
            int digit = ark_http_hex_value((unsigned char)c);
            if (digit >= 0) {
                if (decoder->_chunk_remaining > (UINT64_MAX >> 4))
                    return fail(decoder, 400, "chunk size out of range");
                decoder->_chunk_remaining = (decoder->_chunk_remaining << 4) | (uint64_t)digit;
                decoder->_state = CHUNK_SIZE;
            } else if (state == CHUNK_SIZE_FIRST) {
                return fail(decoder, 400, "invalid chunk size");
            } else if (c == '\r') {
                decoder->_state = CHUNK_SIZE_LF;
            } else if (c == ';') {
                decoder->_state = CHUNK_EXTENSION;
            } else if (c == ' ' || c == '\t') {
                decoder->_state = CHUNK_SIZE_SPACE;
            } else {
                return fail(decoder, 400, "invalid chunk size");
            }
            break;
        }
        case CHUNK_SIZE_SPACE:
            if (c == ';')
                decoder->_state = CHUNK_EXTENSION;
            else if (c != ' ' && c != '\t')
                return fail(decoder, 400, "invalid chunk size");
            break;
        case CHUNK_EXTENSION:
            if (c == '\r')
                decoder->_state = CHUNK_SIZE_LF;
            else if (!is_field_value_char(c))
                return fail(decoder, 400, "control character in a chunk extension");
            break;
        case CHUNK_SIZE_LF:
            if (c != '\n')
                return fail(decoder, 400, "bare CR in a chunk-size line");
            decoder->_line_bytes = 0;
            if (decoder->_chunk_remaining == 0) {
                decoder->_state = CHUNK_TRAILER_START;
            } else if (decoder->_chunk_remaining > limits->max_body_bytes - decoder->body_bytes) {
                return fail(decoder, 413, "chunked body larger than the body limit");
            } else {
                decoder->_state = CHUNK_DATA;
            }
            break;
        case CHUNK_DATA_CR:
            if (c != '\r')
                return fail(decoder, 400, "chunk data longer than its size");
            decoder->_state = CHUNK_DATA_LF;
            break;
        case CHUNK_DATA_LF:
            if (c != '\n')
                return fail(decoder, 400, "bare CR after chunk data");
            decoder->_state = CHUNK_SIZE_FIRST;
            break;
        case CHUNK_TRAILER_START:
            if (c == '\r')
                decoder->_state = CHUNK_END_LF;
            else if (c == ' ' || c == '\t')
                return fail(decoder, 400, "obs-fold in the trailer section");
            else if (ark_http_is_token_char(c))
                decoder->_state = CHUNK_TRAILER_NAME;
            else
                return fail(decoder, 400, "invalid character in a trailer field name");
            break;
        case CHUNK_TRAILER_NAME:
            if (c == ':')
                decoder->_state = CHUNK_TRAILER_VALUE;
            else if (c == ' ' || c == '\t')
                return fail(decoder, 400, "whitespace between field name and colon");
            else if (!ark_http_is_token_char(c))
                return fail(decoder, 400, "invalid character in a trailer field name");
            break;
        case CHUNK_TRAILER_VALUE:
            if (c == '\r')
                decoder->_state = CHUNK_TRAILER_LF;
            else if (!is_field_value_char(c))
                return fail(decoder, 400, "control character in a trailer field value");
            break;
        case CHUNK_TRAILER_LF:
            if (c != '\n')
                return fail(decoder, 400, "bare CR in the trailer section");
            decoder->_state = CHUNK_TRAILER_START;
            break;
        case CHUNK_END_LF:
            if (c != '\n')
                return fail(decoder, 400, "bare CR ending the chunked body");
            decoder->_state = CHUNK_DONE;
            *consumed = i;
            return ARK_HTTP_CHUNKED_DONE;
        default:
            return fail(decoder, 500, "decoder state corrupted");
        }
    }
    *consumed = i;
    return 0;
}
