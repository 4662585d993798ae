/*
 * HTTP messages for the adaptation API: the host's implementation of ecap_message_methods,
 * plus parsing and serialising a message head (for arken-adapt and tests).
 *
 * A message is the first line and an ordered array of fields, each part a separate malloc'd
 * NUL-terminated copy, so getters hand out borrowed areas into them.
 */
#include "adapt/adapt_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct field {
    char *name;
    char *value;
    size_t value_length;
};

struct message {
    struct ecap_message handle;
    enum ecap_message_kind kind;
    char *method, *uri, *reason;
    int status_code;
    int http_major, http_minor;
    int has_body;
    struct field *fields;
    size_t field_count, field_capacity;
};

static struct message *from_handle(const ecap_message_t *handle)
{
    return (struct message *)handle;
}

static char *copy_text(const char *text, size_t length)
{
    char *copy = malloc(length + 1);
    if (copy) {
        memcpy(copy, text, length);
        copy[length] = '\0';
    }
    return copy;
}

/* Header values and first-line parts may not carry line breaks or NULs. */
static int clean_text(const char *text, size_t length)
{
    for (size_t i = 0; i < length; i++)
        if (text[i] == '\r' || text[i] == '\n' || text[i] == '\0')
            return 0;
    return 1;
}

static int token_text(const char *text)
{
    if (!text || !*text)
        return 0;
    for (const char *p = text; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == ':' || (unsigned char)*p >= 127)
            return 0;
    return 1;
}

static int replace_text(char **slot, const char *text)
{
    if (!text || !clean_text(text, strlen(text)))
        return ECAP_E_INVALID;
    char *copy = copy_text(text, strlen(text));
    if (!copy)
        return ECAP_E_NOMEM;
    free(*slot);
    *slot = copy;
    return ECAP_OK;
}

static enum ecap_message_kind message_kind(const ecap_message_t *handle)
{
    return from_handle(handle)->kind;
}

static ecap_area_t message_method(const ecap_message_t *handle)
{
    return ecap_area_from_string(from_handle(handle)->method);
}

static ecap_area_t message_uri(const ecap_message_t *handle)
{
    return ecap_area_from_string(from_handle(handle)->uri);
}

static int message_set_method(ecap_message_t *handle, const char *method)
{
    struct message *m = from_handle(handle);
    if (m->kind != ECAP_MESSAGE_REQUEST || !token_text(method))
        return ECAP_E_INVALID;
    return replace_text(&m->method, method);
}

static int message_set_uri(ecap_message_t *handle, const char *uri)
{
    struct message *m = from_handle(handle);
    if (m->kind != ECAP_MESSAGE_REQUEST || !uri || !*uri || strchr(uri, ' '))
        return ECAP_E_INVALID;
    return replace_text(&m->uri, uri);
}

static int message_status_code(const ecap_message_t *handle)
{
    return from_handle(handle)->status_code;
}

static ecap_area_t message_reason(const ecap_message_t *handle)
{
    return ecap_area_from_string(from_handle(handle)->reason);
}

static int message_set_status(ecap_message_t *handle, int status_code, const char *reason)
{
    struct message *m = from_handle(handle);
    if (m->kind != ECAP_MESSAGE_RESPONSE || status_code < 100 || status_code > 999)
        return ECAP_E_INVALID;
    int status = replace_text(&m->reason, reason ? reason : "");
    if (status == ECAP_OK)
        m->status_code = status_code;
    return status;
}

static void message_version(const ecap_message_t *handle, int *http_major, int *http_minor)
{
    const struct message *m = from_handle(handle);
    if (http_major)
        *http_major = m->http_major;
    if (http_minor)
        *http_minor = m->http_minor;
}

static int message_set_version(ecap_message_t *handle, int http_major, int http_minor)
{
    if (http_major < 0 || http_major > 9 || http_minor < 0 || http_minor > 9)
        return ECAP_E_INVALID;
    struct message *m = from_handle(handle);
    m->http_major = http_major;
    m->http_minor = http_minor;
    return ECAP_OK;
}

static int message_header_add(ecap_message_t *handle, const char *name, const char *value,
                              size_t value_length)
{
    struct message *m = from_handle(handle);
    if (!token_text(name) || (!value && value_length) || !clean_text(value, value_length))
        return ECAP_E_INVALID;
    if (m->field_count == m->field_capacity) {
        size_t capacity = m->field_capacity ? m->field_capacity * 2 : 8;
        struct field *grown = realloc(m->fields, capacity * sizeof(*grown));
        if (!grown)
            return ECAP_E_NOMEM;
        m->fields = grown;
        m->field_capacity = capacity;
    }
    struct field field = {copy_text(name, strlen(name)),
                          copy_text(value ? value : "", value_length), value_length};
    if (!field.name || !field.value) {
        free(field.name);
        free(field.value);
        return ECAP_E_NOMEM;
    }
    m->fields[m->field_count++] = field;
    return ECAP_OK;
}

static int message_header_remove(ecap_message_t *handle, const char *name)
{
    struct message *m = from_handle(handle);
    if (!name)
        return ECAP_E_INVALID;
    size_t kept = 0;
    int removed = 0;
    for (size_t i = 0; i < m->field_count; i++) {
        if (strcasecmp(m->fields[i].name, name) == 0) {
            free(m->fields[i].name);
            free(m->fields[i].value);
            removed++;
        } else {
            m->fields[kept++] = m->fields[i];
        }
    }
    m->field_count = kept;
    return removed;
}

static int message_header_find(const ecap_message_t *handle, const char *name, size_t index,
                               ecap_area_t *value)
{
    const struct message *m = from_handle(handle);
    if (!name || !value)
        return ECAP_E_INVALID;
    for (size_t i = 0; i < m->field_count; i++) {
        if (strcasecmp(m->fields[i].name, name) == 0 && index-- == 0) {
            *value = ecap_area_borrow(m->fields[i].value, m->fields[i].value_length);
            return ECAP_OK;
        }
    }
    *value = ecap_area_borrow(NULL, 0);
    return ECAP_E_NOT_FOUND;
}

static int message_header_visit(const ecap_message_t *handle, ecap_visitor_fn visitor,
                                void *visitor_data)
{
    const struct message *m = from_handle(handle);
    if (!visitor)
        return ECAP_E_INVALID;
    for (size_t i = 0; i < m->field_count; i++) {
        int result = visitor(visitor_data, ecap_area_from_string(m->fields[i].name),
                             ecap_area_borrow(m->fields[i].value, m->fields[i].value_length));
        if (result)
            return result;
    }
    return 0;
}

static int message_has_body(const ecap_message_t *handle)
{
    return from_handle(handle)->has_body;
}

static int message_set_has_body(ecap_message_t *handle, int has_body)
{
    from_handle(handle)->has_body = has_body != 0;
    return ECAP_OK;
}

static void message_free(ecap_message_t *handle)
{
    struct message *m = from_handle(handle);
    if (!m)
        return;
    for (size_t i = 0; i < m->field_count; i++) {
        free(m->fields[i].name);
        free(m->fields[i].value);
    }
    free(m->fields);
    free(m->method);
    free(m->uri);
    free(m->reason);
    free(m);
}

static ecap_message_t *message_clone(const ecap_message_t *handle);

static const struct ecap_message_methods message_methods = {
    .version = 1,
    .kind = message_kind,
    .method = message_method,
    .uri = message_uri,
    .set_method = message_set_method,
    .set_uri = message_set_uri,
    .status_code = message_status_code,
    .reason = message_reason,
    .set_status = message_set_status,
    .http_version = message_version,
    .set_http_version = message_set_version,
    .header_add = message_header_add,
    .header_remove = message_header_remove,
    .header_find = message_header_find,
    .header_visit = message_header_visit,
    .has_body = message_has_body,
    .set_has_body = message_set_has_body,
    .clone = message_clone,
    .free = message_free,
};

static struct message *message_new(enum ecap_message_kind kind)
{
    struct message *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->handle.methods = &message_methods;
    m->kind = kind;
    m->http_major = 1;
    m->http_minor = 1;
    if (kind == ECAP_MESSAGE_REQUEST) {
        m->method = copy_text("GET", 3);
        m->uri = copy_text("/", 1);
    } else {
        m->status_code = 200;
        m->reason = copy_text("OK", 2);
    }
    if ((kind == ECAP_MESSAGE_REQUEST && (!m->method || !m->uri)) ||
        (kind == ECAP_MESSAGE_RESPONSE && !m->reason)) {
        message_free(&m->handle);
        return NULL;
    }
    return m;
}

static ecap_message_t *message_clone(const ecap_message_t *handle)
{
    const struct message *source = from_handle(handle);
    struct message *m = message_new(source->kind);
    if (!m)
        return NULL;
    int status = ECAP_OK;
    if (source->kind == ECAP_MESSAGE_REQUEST) {
        status = replace_text(&m->method, source->method);
        if (status == ECAP_OK)
            status = replace_text(&m->uri, source->uri);
    } else {
        status = replace_text(&m->reason, source->reason);
        m->status_code = source->status_code;
    }
    m->http_major = source->http_major;
    m->http_minor = source->http_minor;
    m->has_body = source->has_body;
    for (size_t i = 0; status == ECAP_OK && i < source->field_count; i++)
        status = message_header_add(&m->handle, source->fields[i].name, source->fields[i].value,
                                    source->fields[i].value_length);
    if (status != ECAP_OK) {
        message_free(&m->handle);
        return NULL;
    }
    return &m->handle;
}

ecap_message_t *ecap_message_new_request(void)
{
    struct message *m = message_new(ECAP_MESSAGE_REQUEST);
    return m ? &m->handle : NULL;
}

ecap_message_t *ecap_message_new_response(void)
{
    struct message *m = message_new(ECAP_MESSAGE_RESPONSE);
    return m ? &m->handle : NULL;
}

/* ---- parsing and serialising ---- */

/* The next line of `data[*offset..length)` without its LF or CRLF; -1 when none is complete. */
static int next_line(const char *data, size_t length, size_t *offset, const char **line,
                     size_t *line_length)
{
    const char *start = data + *offset;
    const char *lf = memchr(start, '\n', length - *offset);
    if (!lf)
        return -1;
    size_t n = (size_t)(lf - start);
    *offset += n + 1;
    if (n > 0 && start[n - 1] == '\r')
        n--;
    *line = start;
    *line_length = n;
    return 0;
}

static int parse_version(const char *text, size_t length, int *http_major, int *http_minor)
{
    if (length != 8 || memcmp(text, "HTTP/", 5) != 0 || !isdigit((unsigned char)text[5]) ||
        text[6] != '.' || !isdigit((unsigned char)text[7]))
        return -1;
    *http_major = text[5] - '0';
    *http_minor = text[7] - '0';
    return 0;
}

static int parse_first_line(struct message *m, const char *line, size_t length)
{
    const char *space1 = memchr(line, ' ', length);
    if (!space1)
        return adapt_fail(ECAP_E_INVALID, "message head: first line has no space");
    size_t first = (size_t)(space1 - line);
    const char *rest = space1 + 1;
    size_t rest_length = length - first - 1;
    if (first >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        m->kind = ECAP_MESSAGE_RESPONSE;
        if (parse_version(line, first, &m->http_major, &m->http_minor) < 0 || rest_length < 3 ||
            !isdigit((unsigned char)rest[0]) || !isdigit((unsigned char)rest[1]) ||
            !isdigit((unsigned char)rest[2]) || (rest_length > 3 && rest[3] != ' '))
            return adapt_fail(ECAP_E_INVALID, "message head: bad status line");
        m->status_code = (rest[0] - '0') * 100 + (rest[1] - '0') * 10 + (rest[2] - '0');
        free(m->reason);
        m->reason = rest_length > 4 ? copy_text(rest + 4, rest_length - 4) : copy_text("", 0);
        return m->reason ? ECAP_OK : ECAP_E_NOMEM;
    }
    const char *space2 = memchr(rest, ' ', rest_length);
    if (!space2)
        return adapt_fail(ECAP_E_INVALID, "message head: request line needs method, URI, version");
    size_t uri_length = (size_t)(space2 - rest);
    m->kind = ECAP_MESSAGE_REQUEST;
    if (first == 0 || uri_length == 0 ||
        parse_version(space2 + 1, rest_length - uri_length - 1, &m->http_major, &m->http_minor) < 0)
        return adapt_fail(ECAP_E_INVALID, "message head: bad request line");
    free(m->method);
    free(m->uri);
    m->method = copy_text(line, first);
    m->uri = copy_text(rest, uri_length);
    return m->method && m->uri ? ECAP_OK : ECAP_E_NOMEM;
}

ecap_message_t *ecap_message_parse(const char *data, size_t length, size_t *head_length)
{
    if (!data || !head_length) {
        adapt_fail(ECAP_E_INVALID, "ecap_message_parse: NULL argument");
        return NULL;
    }
    struct message *m = message_new(ECAP_MESSAGE_REQUEST);
    if (!m) {
        adapt_fail(ECAP_E_NOMEM, "ecap_message_parse: out of memory");
        return NULL;
    }
    size_t offset = 0;
    const char *line;
    size_t line_length;
    int status = ECAP_E_INVALID;
    if (next_line(data, length, &offset, &line, &line_length) < 0) {
        adapt_fail(ECAP_E_INVALID, "message head: incomplete first line");
        goto failed;
    }
    status = parse_first_line(m, line, line_length);
    if (status != ECAP_OK)
        goto failed;
    int framed = 0, chunked = 0;
    for (;;) {
        if (next_line(data, length, &offset, &line, &line_length) < 0) {
            status = adapt_fail(ECAP_E_INVALID, "message head: no empty line after the fields");
            goto failed;
        }
        if (line_length == 0)
            break;
        const char *colon = memchr(line, ':', line_length);
        if (!colon || colon == line) {
            status = adapt_fail(ECAP_E_INVALID, "message head: field line without a name: %.*s",
                                (int)(line_length > 60 ? 60 : line_length), line);
            goto failed;
        }
        size_t name_length = (size_t)(colon - line);
        char *name = copy_text(line, name_length);
        const char *value = colon + 1;
        size_t value_length = line_length - name_length - 1;
        while (value_length && (*value == ' ' || *value == '\t')) {
            value++;
            value_length--;
        }
        while (value_length && (value[value_length - 1] == ' ' || value[value_length - 1] == '\t'))
            value_length--;
        status = name ? message_header_add(&m->handle, name, value, value_length) : ECAP_E_NOMEM;
        if (status == ECAP_OK && strcasecmp(name, "Content-Length") == 0)
            framed = strtoull(value, NULL, 10) > 0 ? 1 : -1;
        if (status == ECAP_OK && strcasecmp(name, "Transfer-Encoding") == 0)
            chunked = 1;
        free(name);
        if (status != ECAP_OK) {
            adapt_fail(status, "message head: bad field");
            goto failed;
        }
    }
    if (m->kind == ECAP_MESSAGE_REQUEST)
        m->has_body = framed > 0 || chunked;
    else
        m->has_body = framed > 0 || chunked ||
                      (framed == 0 && m->status_code >= 200 && m->status_code != 204 &&
                       m->status_code != 304);
    *head_length = offset;
    return &m->handle;
failed:
    message_free(&m->handle);
    return NULL;
}

struct text_buffer {
    char *data;
    size_t length, capacity;
    int failed;
};

static void append(struct text_buffer *t, const char *data, size_t length)
{
    if (t->failed)
        return;
    if (t->length + length + 1 > t->capacity) {
        size_t capacity = t->capacity ? t->capacity : 256;
        while (capacity < t->length + length + 1)
            capacity *= 2;
        char *grown = realloc(t->data, capacity);
        if (!grown) {
            t->failed = 1;
            return;
        }
        t->data = grown;
        t->capacity = capacity;
    }
    memcpy(t->data + t->length, data, length);
    t->length += length;
    t->data[t->length] = '\0';
}

static void append_string(struct text_buffer *t, const char *text)
{
    append(t, text, strlen(text));
}

int ecap_message_serialize(const ecap_message_t *handle, char **text, size_t *length)
{
    if (!handle || !text || !length)
        return ECAP_E_INVALID;
    const struct message *m = from_handle(handle);
    struct text_buffer t = {0};
    char version[16];
    snprintf(version, sizeof(version), "HTTP/%d.%d", m->http_major, m->http_minor);
    if (m->kind == ECAP_MESSAGE_REQUEST) {
        append_string(&t, m->method);
        append_string(&t, " ");
        append_string(&t, m->uri);
        append_string(&t, " ");
        append_string(&t, version);
    } else {
        char code[8];
        snprintf(code, sizeof(code), " %03d ", m->status_code);
        append_string(&t, version);
        append_string(&t, code);
        append_string(&t, m->reason);
    }
    append_string(&t, "\r\n");
    for (size_t i = 0; i < m->field_count; i++) {
        append_string(&t, m->fields[i].name);
        append_string(&t, ": ");
        append(&t, m->fields[i].value, m->fields[i].value_length);
        append_string(&t, "\r\n");
    }
    append_string(&t, "\r\n");
    if (t.failed) {
        free(t.data);
        return ECAP_E_NOMEM;
    }
    *text = t.data;
    *length = t.length;
    return ECAP_OK;
}
