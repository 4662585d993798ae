/*
 * Modifying adapter: ecap://arkenstone/adapters/modifying replaces every occurrence of a
 * configured string ("victim") in message bodies with another ("replacement"), also where
 * an occurrence straddles two chunks of the body.
 *
 * Options: victim (required, non-empty), replacement (default ""), buffer_limit (bytes,
 * default 1048576): a body announced with a Content-Length up to that size is read whole
 * before deciding, so the adapted message carries the exact new Content-Length; longer
 * bodies (or bodies without a length) stream, and the adapted message then carries no
 * Content-Length (the host frames it) unless victim and replacement have the same length.
 * high_water (bytes, default 262144): adapted bytes buffered before the adapter stops reading
 * the virgin body until the host consumed some (back-pressure).
 *
 * Meta-information: option "X-Ecap-Replacements" = number of replacements so far.
 */
#include <ecap/adapter.h>

#include <errno.h>
#include <limits.h>
#include <strings.h>

#define MODIFYING_URI "ecap://arkenstone/adapters/modifying"

struct modifying_service {
    char *victim;
    size_t victim_length;
    char *replacement;
    size_t replacement_length;
    size_t buffer_limit;
    size_t high_water;
};

struct bytes {
    char *data;
    size_t start, end, capacity;
};

struct modifying {
    struct modifying_service *service;
    ecap_host_xaction_t *hostx;
    int buffering; /* reading the whole body before deciding */
    int decided;
    int vb_reading;         /* vb_make succeeded and the virgin side is open */
    int vb_end_seen;        /* note_vb_content_done arrived (bytes may still be unread) */
    int vb_done, vb_at_end; /* ... and everything was read and transformed */
    int ab_made, ab_done_sent, ab_stopped;
    struct bytes carry; /* tail that may start an occurrence */
    struct bytes out;   /* adapted bytes not yet consumed by the host */
    unsigned long replacements;
    char replacements_text[24];
};

static int bytes_reserve(struct bytes *b, size_t more)
{
    if (b->capacity - b->end >= more)
        return 0;
    if (b->start) {
        memmove(b->data, b->data + b->start, b->end - b->start);
        b->end -= b->start;
        b->start = 0;
        if (b->capacity - b->end >= more)
            return 0;
    }
    size_t capacity = b->capacity ? b->capacity : 4096;
    while (capacity - b->end < more)
        capacity *= 2;
    char *grown = realloc(b->data, capacity);
    if (!grown)
        return -1;
    b->data = grown;
    b->capacity = capacity;
    return 0;
}

static int bytes_append(struct bytes *b, const char *data, size_t length)
{
    if (length == 0)
        return 0;
    if (bytes_reserve(b, length) < 0)
        return -1;
    memcpy(b->data + b->end, data, length);
    b->end += length;
    return 0;
}

static size_t bytes_size(const struct bytes *b)
{
    return b->end - b->start;
}

/* ---- configuration ---- */

static const char *modifying_uri(void *service)
{
    return MODIFYING_URI;
}

static int parse_size(const char *text, size_t *value)
{
    char *end = NULL;
    errno = 0;
    unsigned long long parsed = strtoull(text, &end, 10);
    if (end == text || *end != '\0' || errno != 0 || text[0] == '-')
        return -1;
    *value = (size_t)parsed;
    return 0;
}

static int modifying_configure(void *data, const struct ecap_option *options, size_t count,
                               struct ecap_error *error)
{
    struct modifying_service *service = data;
    const char *victim = NULL, *replacement = NULL;
    size_t buffer_limit = service->buffer_limit, high_water = service->high_water;
    for (size_t i = 0; i < count; i++) {
        const char *name = options[i].name, *value = options[i].value;
        if (strcmp(name, "victim") == 0) {
            if (!*value)
                return ecap_error_set(error, ECAP_E_BAD_OPTION, "option victim: must not be empty");
            victim = value;
        } else if (strcmp(name, "replacement") == 0) {
            replacement = value;
        } else if (strcmp(name, "buffer_limit") == 0) {
            if (parse_size(value, &buffer_limit) < 0)
                return ecap_error_set(error, ECAP_E_BAD_OPTION,
                                      "option buffer_limit=\"%s\": not a number of bytes", value);
        } else if (strcmp(name, "high_water") == 0) {
            if (parse_size(value, &high_water) < 0 || high_water == 0)
                return ecap_error_set(error, ECAP_E_BAD_OPTION,
                                      "option high_water=\"%s\": not a positive number of bytes",
                                      value);
        } else {
            return ecap_error_set(error, ECAP_E_BAD_OPTION, "unknown option %s", name);
        }
    }
    if (!victim && !service->victim)
        return ecap_error_set(error, ECAP_E_BAD_OPTION, "option victim is required");
    char *victim_copy = victim ? strdup(victim) : NULL;
    char *replacement_copy = replacement ? strdup(replacement) : NULL;
    if ((victim && !victim_copy) || (replacement && !replacement_copy)) {
        free(victim_copy);
        free(replacement_copy);
        return ecap_error_set(error, ECAP_E_NOMEM, "out of memory");
    }
    if (victim_copy) {
        free(service->victim);
        service->victim = victim_copy;
        service->victim_length = strlen(victim_copy);
    }
    if (replacement_copy) {
        free(service->replacement);
        service->replacement = replacement_copy;
        service->replacement_length = strlen(replacement_copy);
    }
    service->buffer_limit = buffer_limit;
    service->high_water = high_water;
    return ECAP_OK;
}

static int modifying_start_service(void *data, struct ecap_error *error)
{
    struct modifying_service *service = data;
    if (!service->victim)
        return ecap_error_set(error, ECAP_E_BAD_OPTION,
                              "not configured: option victim is required");
    return ECAP_OK;
}

static void modifying_retire(void *data)
{
    struct modifying_service *service = data;
    free(service->victim);
    free(service->replacement);
    free(service);
}

/* ---- the transformation ---- */

/*
 * The first occurrence of `needle` in `text`: memchr for its first byte, then memcmp. (Not
 * memmem: sanitizers check memmem's whole haystack on every call, which makes scanning a
 * chunk with many occurrences quadratic under them.)
 */
static const char *find(const char *text, size_t size, const char *needle, size_t needle_size)
{
    const char *end = text + size;
    while ((size_t)(end - text) >= needle_size) {
        const char *at = memchr(text, needle[0], (size_t)(end - text) - needle_size + 1);
        if (!at)
            return NULL;
        if (memcmp(at, needle, needle_size) == 0)
            return at;
        text = at + 1;
    }
    return NULL;
}

/*
 * Moves `data` through the search: everything that cannot be the start of an occurrence goes
 * to `out` (occurrences replaced); up to victim_length - 1 trailing bytes stay in `carry`.
 * At the end (`final`) the carry is flushed.
 */
static int transform(struct modifying *m, const char *data, size_t length, int final)
{
    const struct modifying_service *svc = m->service;
    if (bytes_append(&m->carry, data, length) < 0)
        return -1;
    const char *text = m->carry.data + m->carry.start;
    size_t size = bytes_size(&m->carry), position = 0;
    while (position + svc->victim_length <= size) {
        const char *hit = find(text + position, size - position, svc->victim, svc->victim_length);
        if (!hit)
            break;
        size_t before = (size_t)(hit - (text + position));
        if (bytes_append(&m->out, text + position, before) < 0 ||
            bytes_append(&m->out, svc->replacement, svc->replacement_length) < 0)
            return -1;
        m->replacements++;
        position += before + svc->victim_length;
    }
    size_t keep = final ? 0 : svc->victim_length - 1;
    if (size - position > keep) {
        size_t emit = size - position - keep;
        if (bytes_append(&m->out, text + position, emit) < 0)
            return -1;
        position += emit;
    }
    m->carry.start += position;
    if (m->carry.start == m->carry.end)
        m->carry.start = m->carry.end = 0;
    return 0;
}

static void fail(struct modifying *m, const char *reason)
{
    ecap_host_xaction_adaptation_aborted(m->hostx, reason);
}

static void decide(struct modifying *m, int exact_length)
{
    ecap_message_t *adapted = ecap_message_clone(ecap_host_xaction_virgin(m->hostx));
    if (!adapted) {
        fail(m, "modifying: out of memory");
        return;
    }
    const struct modifying_service *svc = m->service;
    if (exact_length) {
        char length[32];
        snprintf(length, sizeof(length), "%zu", bytes_size(&m->out));
        ecap_header_remove(adapted, "Content-Length");
        ecap_header_add(adapted, "Content-Length", length);
    } else if (svc->victim_length != svc->replacement_length) {
        ecap_header_remove(adapted, "Content-Length");
    }
    m->decided = 1;
    if (ecap_host_xaction_use_adapted(m->hostx, adapted) != ECAP_OK) {
        ecap_message_free(adapted);
        return;
    }
}

static void send_ab(struct modifying *m)
{
    if (!m->ab_made || m->ab_stopped)
        return;
    if (bytes_size(&m->out))
        ecap_host_xaction_note_ab_content_available(m->hostx);
    if (m->vb_done && !m->ab_done_sent) {
        m->ab_done_sent = 1;
        ecap_host_xaction_note_ab_content_done(m->hostx, m->vb_at_end);
    }
}

static void finish_virgin(struct modifying *m)
{
    m->vb_done = 1;
    if (transform(m, NULL, 0, 1) < 0) {
        fail(m, "modifying: out of memory");
        return;
    }
    m->vb_reading = 0;
    ecap_host_xaction_vb_stop_making(m->hostx);
    if (!m->decided)
        decide(m, 1);
}

/*
 * Reads virgin bytes while the adapted buffer is under the high-water mark (the whole body
 * when buffering); finishes once the body ended and every byte was read.
 */
static void pump(struct modifying *m)
{
    int empty = 0;
    while (m->vb_reading && !m->vb_done &&
           (m->buffering || bytes_size(&m->out) < m->service->high_water)) {
        ecap_area_t chunk;
        if (ecap_host_xaction_vb_content(m->hostx, 0, ECAP_NSIZE, &chunk) != ECAP_OK)
            return;
        if (chunk.size == 0) {
            empty = 1;
            break;
        }
        if (transform(m, chunk.data, chunk.size, 0) < 0) {
            fail(m, "modifying: out of memory");
            return;
        }
        ecap_host_xaction_vb_content_shift(m->hostx, chunk.size);
        if (m->buffering && bytes_size(&m->out) > m->service->buffer_limit) {
            m->buffering = 0; /* longer than announced: stream after all */
            decide(m, 0);
        }
    }
    if (empty && m->vb_end_seen && !m->vb_done)
        finish_virgin(m);
    if (m->decided)
        send_ab(m);
}

static void modifying_start(void *xaction)
{
    struct modifying *m = xaction;
    ecap_message_t *virgin = ecap_host_xaction_virgin(m->hostx);
    if (!virgin || !ecap_message_has_body(virgin)) {
        ecap_host_xaction_use_virgin(m->hostx);
        return;
    }
    if (ecap_host_xaction_vb_make(m->hostx) != ECAP_OK) {
        fail(m, "modifying: cannot read the body");
        return;
    }
    m->vb_reading = 1;
    ecap_area_t length;
    size_t announced = 0;
    if (ecap_header_find(virgin, "Content-Length", &length) == ECAP_OK && length.size < 20) {
        char text[24];
        memcpy(text, length.data, length.size);
        text[length.size] = '\0';
        if (parse_size(text, &announced) == 0 && announced <= m->service->buffer_limit)
            m->buffering = 1;
    }
    if (!m->buffering)
        decide(m, 0);
}

static void modifying_note_vb_content_available(void *xaction)
{
    pump(xaction);
}

static void modifying_note_vb_content_done(void *xaction, int at_end)
{
    struct modifying *m = xaction;
    m->vb_end_seen = 1;
    m->vb_at_end = at_end;
    pump(m);
}

static void modifying_ab_make(void *xaction)
{
    struct modifying *m = xaction;
    m->ab_made = 1;
    send_ab(m);
}

static void modifying_ab_make_more(void *xaction)
{
    pump(xaction);
}

static void modifying_ab_stop_making(void *xaction)
{
    struct modifying *m = xaction;
    m->ab_stopped = 1;
    if (m->vb_reading) {
        m->vb_reading = 0;
        ecap_host_xaction_vb_stop_making(m->hostx);
    }
}

static int modifying_ab_content(void *xaction, size_t offset, size_t size, ecap_area_t *content)
{
    struct modifying *m = xaction;
    size_t available = bytes_size(&m->out);
    *content = ecap_area_borrow(NULL, 0);
    if (offset < available) {
        size_t n = available - offset < size ? available - offset : size;
        *content = ecap_area_borrow(m->out.data + m->out.start + offset, n);
    }
    return ECAP_OK;
}

static void modifying_ab_content_shift(void *xaction, size_t size)
{
    struct modifying *m = xaction;
    size_t available = bytes_size(&m->out);
    m->out.start += size < available ? size : available;
    if (m->out.start == m->out.end)
        m->out.start = m->out.end = 0;
    if (!m->vb_done && m->decided)
        pump(m);
}

static ecap_area_t modifying_option(void *xaction, const char *name)
{
    struct modifying *m = xaction;
    if (strcasecmp(name, "X-Ecap-Replacements") != 0)
        return ecap_area_borrow(NULL, 0);
    snprintf(m->replacements_text, sizeof(m->replacements_text), "%lu", m->replacements);
    return ecap_area_from_string(m->replacements_text);
}

static int modifying_visit_options(void *xaction, ecap_visitor_fn visitor, void *visitor_data)
{
    ecap_area_t value = modifying_option(xaction, "X-Ecap-Replacements");
    return visitor(visitor_data, ecap_area_from_string("X-Ecap-Replacements"), value);
}

static void modifying_stop(void *xaction)
{
    struct modifying *m = xaction;
    free(m->carry.data);
    free(m->out.data);
    free(m);
}

static const struct ecap_xaction_methods modifying_xaction = {
    .version = 1,
    .start = modifying_start,
    .stop = modifying_stop,
    .ab_make = modifying_ab_make,
    .ab_make_more = modifying_ab_make_more,
    .ab_stop_making = modifying_ab_stop_making,
    .ab_content = modifying_ab_content,
    .ab_content_shift = modifying_ab_content_shift,
    .note_vb_content_available = modifying_note_vb_content_available,
    .note_vb_content_done = modifying_note_vb_content_done,
    .option = modifying_option,
    .visit_options = modifying_visit_options,
};

static int modifying_make_xaction(void *data, ecap_host_xaction_t *hostx,
                                  const struct ecap_xaction_methods **methods, void **xaction)
{
    struct modifying *m = calloc(1, sizeof(*m));
    if (!m)
        return ECAP_E_NOMEM;
    m->service = data;
    m->hostx = hostx;
    *methods = &modifying_xaction;
    *xaction = m;
    return ECAP_OK;
}

static const struct ecap_service_methods modifying_service = {
    .version = 1,
    .uri = modifying_uri,
    .configure = modifying_configure,
    .start = modifying_start_service,
    .retire = modifying_retire,
    .make_xaction = modifying_make_xaction,
};

static int modifying_register(ecap_host_t *host, struct ecap_error *error)
{
    struct modifying_service *service = calloc(1, sizeof(*service));
    if (!service)
        return ecap_error_set(error, ECAP_E_NOMEM, "out of memory");
    service->buffer_limit = 1024 * 1024;
    service->high_water = 256 * 1024;
    int status = ecap_host_register_service(host, &modifying_service, service);
    if (status != ECAP_OK)
        free(service);
    return status;
}

ECAP_MODULE("modifying", modifying_register);
