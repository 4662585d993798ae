/*
 * HTTP/1.x server sessions: the per-connection state machine (read head, dispatch, write
 * response, drain the unread body, next request), the request view and the response API.
 */
#include "http/http_session.h"

#include "eventer/eventer_internal.h"
#include "http/http_gzip.h"
#include "http/http_parser.h"
#include "http/http_response_writer.h"
#include "listener/listener_internal.h"

#include <mtev_log.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <unistd.h>

#define READ_CHUNK 16384
/* Input buffers start small (1000s of idle keep-alive connections) and double as needed. */
#define INPUT_MIN_ROOM  1024
#define INPUT_INITIAL   2048
#define HEADER_CAPACITY 128
/* Unflushed response body beyond this is refused (a runaway handler). */
#define MAX_PENDING_BODY (1u << 30)

enum session_state {
    STATE_HEAD,     /* reading and parsing a request head */
    STATE_HANDLER,  /* the dispatcher runs (or waits for body bytes) */
    STATE_RESPONSE, /* writing the response; waiting for the handler to end it */
    STATE_DRAIN,    /* discarding the body the handler did not read */
    STATE_CLOSED,
};

enum deadline_kind { DEADLINE_NONE, DEADLINE_IDLE, DEADLINE_REQUEST, DEADLINE_WRITE };

enum response_framing { FRAMING_LENGTH, FRAMING_CHUNKED, FRAMING_CLOSE, FRAMING_NONE };

struct query_param {
    char *name;
    char *value;
};

struct field {
    const char *name;
    const char *value;
};

struct mtev_http_request {
    struct ark_http_buffer head; /* copy of the head, NUL-terminated pieces */
    const char *method;
    const char *uri;
    size_t uri_length;
    const char *query;
    struct field *fields;
    int field_count, field_capacity;
    struct query_param *params;
    int param_count;
    char *param_storage;
    int params_parsed;
    enum ark_http_body_framing framing;
    uint64_t content_length;
    uint64_t body_read;
    int body_done;
    int body_error; /* HTTP status of a bad body, else 0 */
    struct ark_http_chunked_decoder chunked;
    int expect_continue, continue_sent;
    int keep_alive;
    int version_minor;
    int is_head;
    int counted; /* counted in inflight_requests */
    struct timeval start;
    struct ark_http_buffer upload;
};

struct mtev_http_response {
    int status;
    char reason[64];
    struct ark_http_buffer headers; /* serialized fields */
    uint32_t options;
    struct ark_http_buffer body; /* appended, not yet framed */
    int head_sent;
    int flush_requested;
    int end_requested;
    int final_framed; /* the end of the body is in the output */
    int complete;     /* ended and written */
    int peer_gone;
    enum response_framing framing;
    int gzip_active;
    struct ark_http_gzip gzip;
    size_t bytes_written;
};

struct mtev_http_connection {
    eventer_t e;
};

struct mtev_http_session_ctx {
    struct mtev_http_connection connection;
    mtev_acceptor_closure_t *ac;
    pthread_t owner;
    pthread_mutex_t lock; /* the response, `floated` */
    enum session_state state;
    int floated;     /* out of the eventer until the response progresses */
    int close_after; /* close once the current response is written */
    int aco;         /* the session runs in a co-routine */
    int in_dispatch; /* the owner thread is inside the dispatcher (handler) */
    int moved;       /* the dispatcher moved the session into a co-routine (classic side) */
    int timed_out;   /* co-routine session: a deadline shut the socket down (interrupt_co) */
    eventer_aco_gate_t progress_gate; /* co session waiting for a flush or end (under lock) */

    struct ark_http_limits limits;
    struct ark_http_header headers[HEADER_CAPACITY];
    struct ark_http_request_parser parser;
    struct ark_http_buffer in;  /* received, not yet consumed */
    struct ark_http_buffer out; /* framed output not yet written (loop thread) */
    mtev_http_request req;
    mtev_http_response res;

    eventer_t timer;
    uint64_t timer_whence_us;
    uint64_t deadline_us;
    enum deadline_kind deadline_kind;
    long idle_ms, request_ms, write_ms;

    void *dispatch_state;
};

static struct ark_http_dispatcher dispatcher;
static int64_t inflight_requests; /* atomic */
static int draining;              /* atomic */
static mtev_log_stream_t http_error, http_debug, http_access;

static pthread_once_t streams_once = PTHREAD_ONCE_INIT;

static void find_streams(void)
{
    http_error = mtev_log_stream_find("error/http");
    http_debug = mtev_log_stream_find("debug/http");
    http_access = mtev_log_stream_find("debug/http/access");
}

static void ensure_streams(void)
{
    pthread_once(&streams_once, find_streams);
}

void ark_http_session_set_dispatcher(const struct ark_http_dispatcher *d)
{
    dispatcher = *d;
}

int64_t mtev_http_inflight_requests(void)
{
    return __atomic_load_n(&inflight_requests, __ATOMIC_ACQUIRE);
}

void mtev_http_begin_drain(void)
{
    __atomic_store_n(&draining, 1, __ATOMIC_RELEASE);
}

static const char *remote_text(mtev_http_session_ctx *ctx, char *buffer, size_t capacity)
{
    struct sockaddr *remote = mtev_acceptor_closure_remote(ctx->ac);
    buffer[0] = '\0';
    if (remote->sa_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)remote)->sin_addr, buffer, (socklen_t)capacity);
    else if (remote->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)remote)->sin6_addr, buffer,
                  (socklen_t)capacity);
    else
        snprintf(buffer, capacity, "unix");
    return buffer;
}

/* ---- I/O: classic (non-blocking, EAGAIN + mask) or inside the session's co-routine ---- */

static int io_read(mtev_http_session_ctx *ctx, void *buffer, size_t length, int *mask);
static int io_write(mtev_http_session_ctx *ctx, const void *buffer, size_t length, int *mask);

/* ---- deadlines: one timer per connection, moved lazily ---- */

static void set_deadline(mtev_http_session_ctx *ctx, enum deadline_kind kind, long ms)
{
    if (ctx->deadline_kind == kind && kind != DEADLINE_NONE)
        return;
    ctx->deadline_kind = kind;
    if (kind == DEADLINE_NONE) {
        ctx->deadline_us = 0;
        return;
    }
    ctx->deadline_us = eventer_callback_us() + (uint64_t)ms * 1000;
    if (ctx->timer && ctx->deadline_us < ctx->timer_whence_us) {
        struct timeval whence = {(time_t)(ctx->deadline_us / 1000000),
                                 (suseconds_t)(ctx->deadline_us % 1000000)};
        ctx->timer_whence_us = ctx->deadline_us;
        eventer_update_whence(ctx->timer, whence);
    }
}

static void session_close(mtev_http_session_ctx *ctx, int in_callback);
static int session_drive(mtev_http_session_ctx *ctx);

/*
 * Co session: waits until the response is flushed or ended (by any thread). The gate's hold
 * is released by whoever flushes or ends, so the co sleeps until then with no polling.
 */
static void wait_for_progress(mtev_http_session_ctx *ctx)
{
    eventer_aco_gate_t gate = eventer_aco_gate();
    eventer_aco_gate_hold(gate);
    pthread_mutex_lock(&ctx->lock);
    int progressed = ctx->res.flush_requested || ctx->res.end_requested;
    if (!progressed)
        ctx->progress_gate = gate;
    pthread_mutex_unlock(&ctx->lock);
    if (progressed)
        eventer_aco_gate_release(gate);
    eventer_aco_gate_wait(gate);
}

/*
 * A deadline passed in a co-routine session: the co may be waiting in a read or write. Shut
 * the socket down under it (the read side for a request or idle deadline, so a 408 can still
 * be written; both for a write deadline): the wait ends and the driver, seeing `timed_out`,
 * takes the call as timed out. Cheaper than a timer armed for every read.
 */
static void interrupt_co(mtev_http_session_ctx *ctx)
{
    if (ctx->timed_out)
        return;
    ctx->timed_out = 1;
    int fd = eventer_get_fd(ctx->connection.e);
    if (fd >= 0)
        shutdown(fd, ctx->deadline_kind == DEADLINE_WRITE ? SHUT_RDWR : SHUT_RD);
}

static int session_timer(eventer_t e, int mask, void *closure, struct timeval *now)
{
    mtev_http_session_ctx *ctx = closure;
    uint64_t now_us = (uint64_t)now->tv_sec * 1000000 + (uint64_t)now->tv_usec;
    if (ctx->deadline_us && now_us >= ctx->deadline_us && ctx->aco) {
        interrupt_co(ctx);
    } else if (ctx->deadline_us && now_us >= ctx->deadline_us) {
        char who[64];
        remote_text(ctx, who, sizeof(who));
        switch (ctx->deadline_kind) {
        case DEADLINE_IDLE:
            mtevL(http_debug, "http: %s idle for %ld ms; closing\n", who, ctx->idle_ms);
            break;
        case DEADLINE_REQUEST:
            mtevL(http_error, "http: %s: 408 request not complete within %ld ms; closing\n", who,
                  ctx->request_ms);
            if (!ctx->res.head_sent && ctx->out.length == 0) {
                struct ark_http_buffer answer = {0};
                if (ark_http_write_simple_response(&answer, 1, 408, NULL, true, NULL, NULL) == 0) {
                    int ignored;
                    io_write(ctx, answer.data, answer.length, &ignored);
                }
                ark_http_buffer_free(&answer);
            }
            break;
        default:
            mtevL(http_error, "http: %s stopped reading its response for %ld ms; closing\n", who,
                  ctx->write_ms);
            break;
        }
        session_close(ctx, 0);
        return 0;
    }
    uint64_t next =
        ctx->deadline_us > now_us ? ctx->deadline_us : now_us + (uint64_t)ctx->idle_ms * 1000;
    ctx->timer_whence_us = next;
    struct timeval whence = {(time_t)(next / 1000000), (suseconds_t)(next % 1000000)};
    eventer_update_whence(e, whence);
    return EVENTER_TIMER;
}

/* ---- the request view ---- */

static void request_clear(mtev_http_request *req)
{
    struct ark_http_buffer head = req->head, upload = req->upload;
    struct field *fields = req->fields;
    int field_capacity = req->field_capacity;
    free(req->params);
    free(req->param_storage);
    memset(req, 0, sizeof(*req));
    head.length = 0;
    upload.length = 0;
    req->head = head;
    req->upload = upload;
    req->fields = fields;
    req->field_capacity = field_capacity;
}

static void request_free(mtev_http_request *req)
{
    request_clear(req);
    ark_http_buffer_free(&req->head);
    ark_http_buffer_free(&req->upload);
    free(req->fields);
}

static const char *terminate(char *copy, struct ark_http_range range)
{
    copy[range.offset + range.length] = '\0';
    return copy + range.offset;
}

/* Copies the head out of the input buffer so that pointers into it survive body reads. */
static __attribute__((noinline)) int request_start(mtev_http_session_ctx *ctx, size_t head_length)
{
    mtev_http_request *req = &ctx->req;
    const struct ark_http_request_head *head = &ctx->parser.head;
    request_clear(req);
    if (ark_http_buffer_reserve(&req->head, head_length + 1) < 0)
        return -1;
    memcpy(req->head.data, ctx->in.data, head_length);
    req->head.data[head_length] = '\0';
    req->head.length = head_length;
    ark_http_buffer_consume(&ctx->in, head_length);
    char *copy = req->head.data;
    if ((int)head->header_count > req->field_capacity) {
        struct field *grown = realloc(req->fields, sizeof(*grown) * head->header_count);
        if (!grown)
            return -1;
        req->fields = grown;
        req->field_capacity = (int)head->header_count;
    }
    const struct ark_http_header *headers = ark_http_request_headers(&ctx->parser);
    for (size_t i = 0; i < head->header_count; i++) {
        req->fields[i].name = terminate(copy, headers[i].name);
        req->fields[i].value = terminate(copy, headers[i].value);
    }
    req->field_count = (int)head->header_count;
    req->query = head->query.length ? terminate(copy, head->query) : "";
    req->method = terminate(copy, head->method);
    if (head->path.length) {
        req->uri = terminate(copy, head->path);
        req->uri_length = head->path.length;
    } else {
        req->uri = "/";
        req->uri_length = 1;
    }
    req->framing = head->body_framing;
    req->content_length = head->body_framing == ARK_HTTP_BODY_LENGTH ? head->content_length : 0;
    if (req->framing == ARK_HTTP_BODY_CHUNKED)
        ark_http_chunked_decoder_init(&req->chunked, &ctx->limits);
    if (req->framing == ARK_HTTP_BODY_NONE)
        req->body_done = 1;
    req->expect_continue = head->expect_continue;
    req->keep_alive = head->keep_alive;
    req->version_minor = head->version_minor > 1 ? 1 : head->version_minor;
    req->is_head = strcmp(req->method, "HEAD") == 0;
    eventer_gettimeofcallback(NULL, &req->start, NULL);
    return 0;
}

const char *mtev_http_request_method_str(mtev_http_request *req)
{
    return req->method ? req->method : "";
}

const char *mtev_http_request_uri_str(mtev_http_request *req)
{
    return req->uri ? req->uri : "/";
}

size_t ark_http_request_uri_length(mtev_http_request *req)
{
    return req->uri ? req->uri_length : 1;
}

const char *mtev_http_request_protocol_str(mtev_http_request *req)
{
    return req->version_minor == 0 ? "HTTP/1.0" : "HTTP/1.1";
}

const char *mtev_http_request_orig_querystring(mtev_http_request *req)
{
    return req->query ? req->query : "";
}

/* Decodes the query string on first use: most handlers never ask for a parameter. */
static void ensure_params(mtev_http_request *req)
{
    if (req->params_parsed)
        return;
    req->params_parsed = 1;
    const char *query = mtev_http_request_orig_querystring(req);
    size_t length = strlen(query);
    if (length == 0)
        return;
    req->param_storage = malloc(length * 2 + 2);
    int capacity = 1;
    for (size_t i = 0; i < length; i++)
        capacity += query[i] == '&';
    req->params = calloc((size_t)capacity, sizeof(*req->params));
    if (!req->param_storage || !req->params)
        return;
    char *cursor_out = req->param_storage;
    const char *cursor = query, *end = query + length, *name, *value;
    size_t name_length, value_length;
    while (req->param_count < capacity &&
           ark_http_query_next(&cursor, end, &name, &name_length, &value, &value_length)) {
        ssize_t decoded_name = ark_http_percent_decode(name, name_length, cursor_out, true);
        if (decoded_name < 0)
            continue;
        char *name_out = cursor_out;
        name_out[decoded_name] = '\0';
        char *value_out = name_out + decoded_name + 1;
        ssize_t decoded_value = ark_http_percent_decode(value, value_length, value_out, true);
        if (decoded_value < 0)
            continue;
        value_out[decoded_value] = '\0';
        cursor_out = value_out + decoded_value + 1;
        req->params[req->param_count].name = name_out;
        req->params[req->param_count].value = value_out;
        req->param_count++;
    }
}

const char *mtev_http_request_querystring(mtev_http_request *req, const char *name)
{
    ensure_params(req);
    for (int i = 0; i < req->param_count; i++)
        if (strcmp(req->params[i].name, name) == 0)
            return req->params[i].value;
    return NULL;
}

int mtev_http_request_querystring_count(mtev_http_request *req)
{
    ensure_params(req);
    return req->param_count;
}

int mtev_http_request_querystring_at(mtev_http_request *req, int index, const char **name,
                                     const char **value)
{
    ensure_params(req);
    if (index < 0 || index >= req->param_count)
        return -1;
    *name = req->params[index].name;
    *value = req->params[index].value;
    return 0;
}

const char *mtev_http_request_header(mtev_http_request *req, const char *name)
{
    for (int i = 0; i < req->field_count; i++)
        if (strcasecmp(req->fields[i].name, name) == 0)
            return req->fields[i].value;
    return NULL;
}

int mtev_http_request_header_count(mtev_http_request *req)
{
    return req->field_count;
}

int mtev_http_request_header_at(mtev_http_request *req, int index, const char **name,
                                const char **value)
{
    if (index < 0 || index >= req->field_count)
        return -1;
    *name = req->fields[index].name;
    *value = req->fields[index].value;
    return 0;
}

int64_t mtev_http_request_content_length(mtev_http_request *req)
{
    if (req->framing == ARK_HTTP_BODY_CHUNKED)
        return -1;
    return (int64_t)req->content_length;
}

int64_t mtev_http_request_content_length_read(mtev_http_request *req)
{
    return (int64_t)req->body_read;
}

mtev_boolean mtev_http_request_payload_chunked(mtev_http_request *req)
{
    return req->framing == ARK_HTTP_BODY_CHUNKED ? mtev_true : mtev_false;
}

mtev_boolean mtev_http_request_has_payload(mtev_http_request *req)
{
    return req->framing != ARK_HTTP_BODY_NONE ? mtev_true : mtev_false;
}

mtev_boolean mtev_http_request_payload_complete(mtev_http_request *req)
{
    return req->body_done ? mtev_true : mtev_false;
}

const void *mtev_http_request_get_upload(mtev_http_request *req, int64_t *size)
{
    if (size)
        *size = (int64_t)req->upload.length;
    if (ark_http_buffer_reserve(&req->upload, 1) < 0)
        return NULL;
    req->upload.data[req->upload.length] = '\0';
    return req->upload.data;
}

void mtev_http_request_start_time(mtev_http_request *req, struct timeval *when)
{
    *when = req->start;
}

/* ---- session accessors ---- */

mtev_http_request *mtev_http_session_request(mtev_http_session_ctx *ctx)
{
    return &ctx->req;
}

mtev_http_response *mtev_http_session_response(mtev_http_session_ctx *ctx)
{
    return &ctx->res;
}

mtev_http_connection *mtev_http_session_connection(mtev_http_session_ctx *ctx)
{
    return &ctx->connection;
}

eventer_t mtev_http_connection_event(mtev_http_connection *connection)
{
    return connection ? connection->e : NULL;
}

mtev_boolean mtev_http_session_is_aco(mtev_http_session_ctx *ctx)
{
    return ctx->aco ? mtev_true : mtev_false;
}

mtev_acceptor_closure_t *ark_http_session_acceptor(mtev_http_session_ctx *ctx)
{
    return ctx->ac;
}

/* ---- output ---- */

/* Writes as much of `out` as the socket takes. 1 = all written, 0 = EAGAIN, -1 = error. */
static int write_out(mtev_http_session_ctx *ctx, int *mask)
{
    while (ctx->out.length) {
        int wrote = io_write(ctx, ctx->out.data, ctx->out.length, mask);
        if (wrote > 0) {
            ark_http_buffer_consume(&ctx->out, (size_t)wrote);
            ctx->res.bytes_written += (size_t)wrote;
            continue;
        }
        if (wrote < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (wrote < 0 && errno == EINTR)
            continue;
        return -1;
    }
    return 1;
}

static int response_has_body(mtev_http_session_ctx *ctx)
{
    int status = ctx->res.status;
    return !ctx->req.is_head && status >= 200 && status != 204 && status != 304;
}

static int request_accepts_gzip(mtev_http_request *req)
{
    const char *value = mtev_http_request_header(req, "Accept-Encoding");
    return value && ark_http_accepts_gzip(value, strlen(value));
}

/* Under the lock, on the loop thread: the status line and fields. */
static int write_head(mtev_http_session_ctx *ctx, int final)
{
    mtev_http_response *res = &ctx->res;
    mtev_http_request *req = &ctx->req;
    int rc = ark_http_write_status_line(&ctx->out, req->version_minor, res->status,
                                        res->reason[0] ? res->reason : NULL);
    if (rc == 0 && res->headers.length)
        rc = ark_http_buffer_append(&ctx->out, res->headers.data, res->headers.length);
    if (rc < 0)
        return rc;
    if (!req->keep_alive || (res->options & MTEV_HTTP_CLOSE) ||
        __atomic_load_n(&draining, __ATOMIC_ACQUIRE) || req->body_error)
        ctx->close_after = 1;
    if (response_has_body(ctx) && (res->options & (MTEV_HTTP_GZIP | MTEV_HTTP_DEFLATE)) &&
        request_accepts_gzip(req) && ark_http_gzip_init(&res->gzip, 6) == 0) {
        res->gzip_active = 1;
        rc = ark_http_write_header(&ctx->out, "Content-Encoding", "gzip");
        if (rc == 0)
            rc = ark_http_write_header(&ctx->out, "Vary", "Accept-Encoding");
    }
    if (res->status < 200 || res->status == 204 || res->status == 304) {
        res->framing = FRAMING_NONE;
    } else if (final) {
        res->framing = FRAMING_LENGTH;
        uint64_t length = res->body.length;
        if (res->gzip_active) {
            struct ark_http_buffer compressed = {0};
            rc = ark_http_gzip_compress(&res->gzip, res->body.data, res->body.length, &compressed);
            if (rc == 0)
                rc = ark_http_gzip_finish(&res->gzip, &compressed);
            ark_http_buffer_free(&res->body);
            res->body = compressed;
            length = compressed.length;
            ark_http_gzip_end(&res->gzip);
            res->gzip_active = 0;
        }
        if (rc == 0)
            rc = ark_http_write_content_length(&ctx->out, length);
    } else if (req->version_minor >= 1) {
        res->framing = FRAMING_CHUNKED;
        rc = ark_http_write_header(&ctx->out, "Transfer-Encoding", "chunked");
    } else {
        res->framing = FRAMING_CLOSE;
        ctx->close_after = 1;
    }
    if (rc == 0 && ctx->close_after)
        rc = ark_http_write_header(&ctx->out, "Connection", "close");
    else if (rc == 0 && req->version_minor == 0)
        rc = ark_http_write_header(&ctx->out, "Connection", "keep-alive");
    if (rc == 0)
        rc = ark_http_write_head_end(&ctx->out);
    res->head_sent = 1;
    return rc;
}

/* Under the lock: frames what was appended (and the end) into `out`. */
static __attribute__((noinline)) int prepare_output(mtev_http_session_ctx *ctx)
{
    mtev_http_response *res = &ctx->res;
    if (res->final_framed || !(res->flush_requested || res->end_requested))
        return 0;
    int final = res->end_requested;
    int rc = 0;
    if (!res->head_sent)
        rc = write_head(ctx, final);
    int body = response_has_body(ctx);
    if (rc == 0 && res->gzip_active) {
        struct ark_http_buffer compressed = {0};
        rc = ark_http_gzip_compress(&res->gzip, res->body.data, res->body.length, &compressed);
        if (rc == 0)
            rc = final ? ark_http_gzip_finish(&res->gzip, &compressed)
                       : ark_http_gzip_flush(&res->gzip, &compressed);
        ark_http_buffer_free(&res->body);
        res->body = compressed;
    }
    if (rc == 0 && body && res->body.length) {
        if (res->framing == FRAMING_CHUNKED)
            rc = ark_http_write_chunk(&ctx->out, res->body.data, res->body.length);
        else if (res->framing != FRAMING_NONE)
            rc = ark_http_buffer_append(&ctx->out, res->body.data, res->body.length);
    }
    res->body.length = 0;
    if (rc == 0 && final && body && res->framing == FRAMING_CHUNKED)
        rc = ark_http_write_last_chunk(&ctx->out);
    res->flush_requested = 0;
    if (final) {
        res->final_framed = 1;
        if (res->gzip_active) {
            ark_http_gzip_end(&res->gzip);
            res->gzip_active = 0;
        }
    }
    return rc;
}

/* ---- the response API ---- */

/* Resumes a floated session after a flush or end (any thread). */
static void resume_after_unlock(mtev_http_session_ctx *ctx, int resume,
                                eventer_aco_gate_t progress_gate)
{
    if (progress_gate)
        eventer_aco_gate_release(progress_gate);
    if (!resume)
        return;
    eventer_t e = ctx->connection.e;
    eventer_ref(e); /* becomes the eventer's registration reference */
    eventer_trigger(e, EVENTER_WRITE);
}

mtev_boolean mtev_http_response_status_set(mtev_http_session_ctx *ctx, int code, const char *reason)
{
    if (code < 100 || code > 999)
        return mtev_false;
    if (reason && (strlen(reason) >= sizeof(ctx->res.reason) || strpbrk(reason, "\r\n")))
        return mtev_false;
    pthread_mutex_lock(&ctx->lock);
    mtev_boolean ok = !ctx->res.head_sent && !ctx->res.end_requested;
    if (ok) {
        ctx->res.status = code;
        snprintf(ctx->res.reason, sizeof(ctx->res.reason), "%s", reason ? reason : "");
    }
    pthread_mutex_unlock(&ctx->lock);
    return ok;
}

mtev_boolean mtev_http_response_header_set(mtev_http_session_ctx *ctx, const char *name,
                                           const char *value)
{
    if (!name || !value || !strcasecmp(name, "Content-Length") ||
        !strcasecmp(name, "Transfer-Encoding") || !strcasecmp(name, "Connection"))
        return mtev_false;
    pthread_mutex_lock(&ctx->lock);
    mtev_boolean ok = !ctx->res.head_sent && !ctx->res.end_requested &&
                      ark_http_write_header(&ctx->res.headers, name, value) == 0;
    pthread_mutex_unlock(&ctx->lock);
    return ok;
}

mtev_boolean mtev_http_response_option_set(mtev_http_session_ctx *ctx, uint32_t opts)
{
    pthread_mutex_lock(&ctx->lock);
    mtev_boolean ok = !ctx->res.head_sent && !ctx->res.end_requested;
    if (ok)
        ctx->res.options |= opts;
    pthread_mutex_unlock(&ctx->lock);
    return ok;
}

mtev_boolean mtev_http_response_append(mtev_http_session_ctx *ctx, const void *buf, size_t len)
{
    pthread_mutex_lock(&ctx->lock);
    mtev_boolean ok = !ctx->res.end_requested && !ctx->res.peer_gone &&
                      ctx->res.body.length + len <= MAX_PENDING_BODY &&
                      ark_http_buffer_append(&ctx->res.body, buf, len) == 0;
    pthread_mutex_unlock(&ctx->lock);
    return ok;
}

mtev_boolean mtev_http_response_append_str(mtev_http_session_ctx *ctx, const char *s)
{
    return s ? mtev_http_response_append(ctx, s, strlen(s)) : mtev_false;
}

mtev_boolean mtev_http_response_vappend(mtev_http_session_ctx *ctx, const char *format,
                                        va_list arguments)
{
    char small[512];
    va_list copy;
    va_copy(copy, arguments);
    int length = vsnprintf(small, sizeof(small), format, copy);
    va_end(copy);
    if (length < 0)
        return mtev_false;
    if ((size_t)length < sizeof(small))
        return mtev_http_response_append(ctx, small, (size_t)length);
    char *large = malloc((size_t)length + 1);
    if (!large)
        return mtev_false;
    vsnprintf(large, (size_t)length + 1, format, arguments);
    mtev_boolean ok = mtev_http_response_append(ctx, large, (size_t)length);
    free(large);
    return ok;
}

mtev_boolean mtev_http_response_appendf(mtev_http_session_ctx *ctx, const char *format, ...)
{
    va_list arguments;
    va_start(arguments, format);
    mtev_boolean ok = mtev_http_response_vappend(ctx, format, arguments);
    va_end(arguments);
    return ok;
}

mtev_boolean mtev_http_response_flush(mtev_http_session_ctx *ctx, mtev_boolean final)
{
    pthread_mutex_lock(&ctx->lock);
    mtev_boolean ok = !ctx->res.end_requested;
    int resume = 0, write_now = 0;
    eventer_aco_gate_t progress_gate = NULL;
    if (ok) {
        ctx->res.flush_requested = 1;
        if (final)
            ctx->res.end_requested = 1;
        if (ctx->floated) {
            ctx->floated = 0;
            resume = 1;
        }
        progress_gate = ctx->progress_gate;
        ctx->progress_gate = NULL;
        /* A handler streaming from its own callback: send this piece now. The end is left
         * to the driver, which writes it after the handler returns. */
        write_now = !final && pthread_equal(ctx->owner, pthread_self()) && ctx->in_dispatch;
        if (write_now && prepare_output(ctx) < 0)
            write_now = 0;
    }
    pthread_mutex_unlock(&ctx->lock);
    if (write_now) {
        int ignored;
        if (write_out(ctx, &ignored) < 0) {
            pthread_mutex_lock(&ctx->lock);
            ctx->res.peer_gone = 1;
            pthread_mutex_unlock(&ctx->lock);
            ctx->out.length = 0;
            ctx->close_after = 1;
        }
    }
    resume_after_unlock(ctx, resume, progress_gate);
    return ok;
}

mtev_boolean mtev_http_response_end(mtev_http_session_ctx *ctx)
{
    return mtev_http_response_flush(ctx, mtev_true);
}

size_t mtev_http_response_buffered(mtev_http_response *res)
{
    return res->body.length;
}

mtev_boolean mtev_http_response_closed(mtev_http_response *res)
{
    return res->end_requested ? mtev_true : mtev_false;
}

mtev_boolean mtev_http_response_complete(mtev_http_response *res)
{
    return res->complete ? mtev_true : mtev_false;
}

int mtev_http_response_status(mtev_http_response *res)
{
    return res->status;
}

size_t mtev_http_response_bytes_written(mtev_http_response *res)
{
    return res->bytes_written;
}

static void response_reset(mtev_http_response *res)
{
    struct ark_http_buffer headers = res->headers, body = res->body;
    if (res->gzip_active)
        ark_http_gzip_end(&res->gzip);
    memset(res, 0, sizeof(*res));
    headers.length = 0;
    body.length = 0;
    res->headers = headers;
    res->body = body;
    res->status = 200;
}

/* ---- the body ---- */

/* Reads more input into `in`. Returns bytes (> 0), 0 at EOF, -1 with errno (and mask). */
static int read_into_input(mtev_http_session_ctx *ctx, int *mask)
{
    size_t room = ctx->in.capacity - ctx->in.length;
    size_t want = ctx->in.capacity < INPUT_INITIAL ? INPUT_INITIAL : ctx->in.capacity;
    if (room < INPUT_MIN_ROOM && ark_http_buffer_reserve(&ctx->in, want) < 0) {
        errno = ENOMEM;
        return -1;
    }
    int got = io_read(ctx, ctx->in.data + ctx->in.length, ctx->in.capacity - ctx->in.length, mask);
    if (got > 0)
        ctx->in.length += (size_t)got;
    return got;
}

static int body_error(mtev_http_session_ctx *ctx, int status, const char *reason)
{
    char who[64];
    mtevL(http_error, "http: %s: %d %s\n", remote_text(ctx, who, sizeof(who)), status, reason);
    ctx->req.body_error = status;
    ctx->close_after = 1;
    errno = EINVAL;
    return -1;
}

int mtev_http_session_req_consume(mtev_http_session_ctx *ctx, void *buf, size_t len, size_t blen,
                                  int *mask)
{
    mtev_http_request *req = &ctx->req;
    int ignored;
    if (!mask)
        mask = &ignored;
    if (blen < len)
        len = blen;
    if (req->body_error) {
        errno = EINVAL;
        return -1;
    }
    if (req->body_done)
        return 0;
    if (req->expect_continue && !req->continue_sent) {
        req->continue_sent = 1;
        if (!ctx->res.head_sent)
            ark_http_buffer_append(&ctx->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    }
    if (ctx->out.length) {
        int written = write_out(ctx, mask);
        if (written < 0) {
            ctx->close_after = 1;
            errno = EPIPE;
            return -1;
        }
        if (written == 0) {
            errno = EAGAIN;
            return -1;
        }
    }
    if (len == 0) {
        errno = EINVAL;
        return -1;
    }
    if (ctx->aco)
        set_deadline(ctx, DEADLINE_REQUEST, ctx->request_ms);
    if (req->framing == ARK_HTTP_BODY_LENGTH) {
        uint64_t remaining = req->content_length - req->body_read;
        size_t want = remaining < len ? (size_t)remaining : len;
        int got;
        if (ctx->in.length) {
            got = (int)(ctx->in.length < want ? ctx->in.length : want);
            memcpy(buf, ctx->in.data, (size_t)got);
            ark_http_buffer_consume(&ctx->in, (size_t)got);
        } else {
            got = io_read(ctx, buf, want, mask);
            if (got == 0)
                return body_error(ctx, 400, "connection closed inside the request body");
            if (got < 0) {
                if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                    int saved = errno;
                    ctx->close_after = 1;
                    errno = saved;
                }
                return -1;
            }
        }
        req->body_read += (uint64_t)got;
        if (req->body_read == req->content_length)
            req->body_done = 1;
        return got;
    }
    for (;;) {
        if (ctx->in.length == 0) {
            int got = read_into_input(ctx, mask);
            if (got == 0)
                return body_error(ctx, 400, "connection closed inside the chunked body");
            if (got < 0)
                return -1;
        }
        size_t offer = ctx->in.length < len ? ctx->in.length : len;
        size_t consumed = 0, data_length = 0;
        const char *data = NULL;
        int rc = ark_http_chunked_decode(&req->chunked, ctx->in.data, offer, &consumed, &data,
                                         &data_length);
        if (rc == ARK_HTTP_ERROR)
            return body_error(ctx, req->chunked.status, req->chunked.reason);
        if (data_length)
            memcpy(buf, data, data_length);
        ark_http_buffer_consume(&ctx->in, consumed);
        req->body_read += data_length;
        if (rc == ARK_HTTP_CHUNKED_DONE) {
            req->body_done = 1;
            return (int)data_length;
        }
        if (data_length)
            return (int)data_length;
    }
}

int ark_http_session_read_upload(mtev_http_session_ctx *ctx, int *mask, int *status)
{
    mtev_http_request *req = &ctx->req;
    for (;;) {
        if (req->body_done)
            return 1;
        if (ark_http_buffer_reserve(&req->upload, READ_CHUNK + 1) < 0) {
            *status = 500;
            return -1;
        }
        int got =
            mtev_http_session_req_consume(ctx, req->upload.data + req->upload.length,
                                          req->upload.capacity - req->upload.length - 1,
                                          req->upload.capacity - req->upload.length - 1, mask);
        if (got > 0) {
            req->upload.length += (size_t)got;
            continue;
        }
        if (got == 0)
            return 1;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        *status = req->body_error ? req->body_error : 400;
        return -1;
    }
}

/* ---- the state machine ---- */

static __attribute__((noinline)) void reject(mtev_http_session_ctx *ctx, int status,
                                             const char *reason)
{
    char who[64];
    mtevL(http_error, "http: %s: %d %s\n", remote_text(ctx, who, sizeof(who)), status,
          reason ? reason : ark_http_status_reason(status));
    ctx->out.length = 0;
    ark_http_write_simple_response(&ctx->out, 1, status, NULL, true, NULL, NULL);
    ctx->close_after = 1;
    pthread_mutex_lock(&ctx->lock);
    ctx->res.status = status;
    ctx->res.head_sent = 1;
    ctx->res.end_requested = 1;
    ctx->res.final_framed = 1;
    pthread_mutex_unlock(&ctx->lock);
    ctx->state = STATE_RESPONSE;
}

static __attribute__((noinline)) void request_finished(mtev_http_session_ctx *ctx)
{
    if (ctx->req.counted) {
        ctx->req.counted = 0;
        __atomic_sub_fetch(&inflight_requests, 1, __ATOMIC_ACQ_REL);
    }
    if (ctx->req.method && mtev_log_stream_is_enabled(http_access)) {
        char who[64];
        mtevL(http_access, "%s \"%s %s %s\" %d %zu\n", remote_text(ctx, who, sizeof(who)),
              mtev_http_request_method_str(&ctx->req), mtev_http_request_uri_str(&ctx->req),
              mtev_http_request_protocol_str(&ctx->req), ctx->res.status, ctx->res.bytes_written);
    }
    if (dispatcher.request_done)
        dispatcher.request_done(ctx, ctx->dispatch_state);
}

static __attribute__((noinline)) int next_request(mtev_http_session_ctx *ctx)
{
    pthread_mutex_lock(&ctx->lock);
    response_reset(&ctx->res);
    pthread_mutex_unlock(&ctx->lock);
    request_clear(&ctx->req);
    ark_http_request_parser_reset(&ctx->parser);
    ctx->state = STATE_HEAD;
    return 0;
}

/*
 * Discards the body the handler left unread. 1 = done, 0 = wait (`*mask`), -1 = close.
 * Out of line: its buffer must not sit in session_drive()'s frame, which a co-routine's
 * every switch copies.
 */
static __attribute__((noinline)) int drain_body(mtev_http_session_ctx *ctx, int *mask)
{
    mtev_http_request *req = &ctx->req;
    if (!req->body_done && req->expect_continue && !req->continue_sent)
        return -1; /* the client waits for 100 before sending the body: it cannot be drained */
    while (!req->body_done) {
        char discard[4096];
        int got =
            mtev_http_session_req_consume(ctx, discard, sizeof(discard), sizeof(discard), mask);
        if (got > 0)
            continue;
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_deadline(ctx, DEADLINE_REQUEST, ctx->request_ms);
            return 0;
        }
        if (got < 0 && (errno == ETIME || errno == ETIMEDOUT)) {
            char who[64];
            mtevL(http_error, "http: %s: unread request body not sent in time; closing\n",
                  remote_text(ctx, who, sizeof(who)));
        }
        if (got < 0)
            return -1;
    }
    return 1;
}

static __attribute__((noinline)) void log_head_ended(mtev_http_session_ctx *ctx, int got)
{
    char who[64];
    remote_text(ctx, who, sizeof(who));
    if (got < 0 && (errno == ETIME || errno == ETIMEDOUT))
        mtevL(http_debug, "http: %s idle; closing\n", who);
    else if (ctx->in.length)
        mtevL(http_debug, "http: %s closed inside a request head\n", who);
}

/*
 * Returns the interest mask, or 0 after closing (the session is freed then). Keep its frame
 * small: in a co-routine it is live at every wait (helpers with buffers are out of line).
 */
static int session_drive(mtev_http_session_ctx *ctx)
{
    int mask = EVENTER_READ | EVENTER_EXCEPTION;
    for (;;) {
        switch (ctx->state) {
        case STATE_HEAD: {
            ssize_t parsed =
                ctx->in.length ? ark_http_request_parse(&ctx->parser, ctx->in.data, ctx->in.length)
                               : ARK_HTTP_INCOMPLETE;
            if (parsed == ARK_HTTP_INCOMPLETE) {
                if (ctx->in.length)
                    set_deadline(ctx, DEADLINE_REQUEST, ctx->request_ms);
                else
                    set_deadline(ctx, DEADLINE_IDLE, ctx->idle_ms);
                int got = read_into_input(ctx, &mask);
                if (got > 0)
                    continue;
                if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                    return mask;
                if (got < 0 && errno == EINTR)
                    continue;
                if (got < 0 && (errno == ETIME || errno == ETIMEDOUT) && ctx->in.length) {
                    reject(ctx, 408, "request not complete in time");
                    continue;
                }
                log_head_ended(ctx, got);
                session_close(ctx, 1);
                return 0;
            }
            if (parsed == ARK_HTTP_ERROR) {
                reject(ctx, ctx->parser.status, ctx->parser.reason);
                continue;
            }
            if (request_start(ctx, (size_t)parsed) < 0) {
                reject(ctx, 500, "out of memory");
                continue;
            }
            ctx->req.counted = 1;
            __atomic_add_fetch(&inflight_requests, 1, __ATOMIC_ACQ_REL);
            ctx->state = STATE_HANDLER;
            set_deadline(ctx, DEADLINE_NONE, 0);
            __attribute__((fallthrough));
        }
        case STATE_HANDLER: {
            ctx->in_dispatch = 1;
            int wants = dispatcher.dispatch ? dispatcher.dispatch(ctx, ctx->dispatch_state) : 0;
            if (wants == ARK_HTTP_DISPATCH_MOVED)
                return 0; /* the co-routine owns the session now (it may even be freed) */
            ctx->in_dispatch = 0;
            if (wants) {
                if (ctx->req.body_error && !ctx->res.head_sent) {
                    reject(ctx, ctx->req.body_error, "bad request body");
                    continue;
                }
                set_deadline(ctx, ctx->out.length ? DEADLINE_WRITE : DEADLINE_REQUEST,
                             ctx->out.length ? ctx->write_ms : ctx->request_ms);
                if (ctx->aco)
                    continue; /* its reads wait here: call it again */
                return wants;
            }
            ctx->state = STATE_RESPONSE;
            continue;
        }
        case STATE_RESPONSE: {
            pthread_mutex_lock(&ctx->lock);
            int rc = prepare_output(ctx);
            int ended = ctx->res.final_framed;
            pthread_mutex_unlock(&ctx->lock);
            if (rc < 0) {
                session_close(ctx, 1);
                return 0;
            }
            if (ctx->aco && ctx->out.length)
                set_deadline(ctx, DEADLINE_WRITE, ctx->write_ms);
            int written = write_out(ctx, &mask);
            if (written < 0) {
                pthread_mutex_lock(&ctx->lock);
                ctx->res.peer_gone = 1;
                int still_running = !ctx->res.end_requested;
                pthread_mutex_unlock(&ctx->lock);
                if (!still_running) {
                    session_close(ctx, 1);
                    return 0;
                }
                /* The handler still appends: discard output until it ends the response. */
                ctx->out.length = 0;
                ctx->close_after = 1;
                written = 1;
            }
            if (written == 0) {
                set_deadline(ctx, DEADLINE_WRITE, ctx->write_ms);
                return mask;
            }
            if (!ended && ctx->aco) {
                /* Ended or flushed from another thread, later: that wakes the co. */
                set_deadline(ctx, DEADLINE_NONE, 0);
                wait_for_progress(ctx);
                continue;
            }
            if (!ended) {
                pthread_mutex_lock(&ctx->lock);
                int more = ctx->res.flush_requested || ctx->res.end_requested;
                if (!more)
                    ctx->floated = 1;
                pthread_mutex_unlock(&ctx->lock);
                if (more)
                    continue;
                set_deadline(ctx, DEADLINE_NONE, 0);
                return 0; /* floated: the session holds the event until a flush or end */
            }
            ctx->res.complete = 1;
            request_finished(ctx);
            if (ctx->close_after || ctx->res.framing == FRAMING_CLOSE) {
                session_close(ctx, 1);
                return 0;
            }
            ctx->state = STATE_DRAIN;
            continue;
        }
        case STATE_DRAIN: {
            int drained = drain_body(ctx, &mask);
            if (drained == 0)
                return mask;
            if (drained < 0) {
                session_close(ctx, 1);
                return 0;
            }
            next_request(ctx);
            if (ctx->in.length == 0 && ctx->aco) {
                /* As the classic path below: wait for the next request instead of trying a
                 * read that would almost always find nothing yet. */
                set_deadline(ctx, DEADLINE_IDLE, ctx->idle_ms);
                eventer_impl_aco_wait_readable((eventer_aco_t)ctx->connection.e);
                continue;
            }
            if (ctx->in.length == 0) {
                /* Nothing pipelined: wait for readiness rather than try a read now. */
                set_deadline(ctx, DEADLINE_IDLE, ctx->idle_ms);
                return EVENTER_READ | EVENTER_EXCEPTION;
            }
            continue;
        }
        case STATE_CLOSED:
        default:
            return 0;
        }
    }
}

/* ---- lifetime ---- */

static void session_free(void *closure)
{
    mtev_http_session_ctx *ctx = closure;
    int running = eventer_impl_running();
    if (ctx->req.counted) {
        ctx->req.counted = 0;
        __atomic_sub_fetch(&inflight_requests, 1, __ATOMIC_ACQ_REL);
    }
    if (dispatcher.state_free && ctx->dispatch_state)
        dispatcher.state_free(ctx->dispatch_state);
    if (ctx->timer) {
        if (running) {
            eventer_t pending = eventer_remove_timed(ctx->timer);
            if (pending)
                eventer_deref(pending);
        }
        eventer_deref(ctx->timer);
    }
    eventer_t e = ctx->connection.e;
    if (e && ctx->aco) {
        /* In the co-routine: give its event back. At exit the co's teardown released it. */
        if (running && eventer_is_aco(NULL))
            eventer_aco_free((eventer_aco_t)e);
    } else if (e) {
        if (eventer_get_fd(e) >= 0) {
            /* Only at exit, for connections the eventer dropped at shutdown. */
            int ignored;
            eventer_close(e, &ignored);
        }
        eventer_deref(e);
    }
    request_free(&ctx->req);
    if (ctx->res.gzip_active)
        ark_http_gzip_end(&ctx->res.gzip);
    ark_http_buffer_free(&ctx->res.headers);
    ark_http_buffer_free(&ctx->res.body);
    ark_http_buffer_free(&ctx->in);
    ark_http_buffer_free(&ctx->out);
    pthread_mutex_destroy(&ctx->lock);
    free(ctx);
}

/*
 * Closes the connection and frees the session. `in_callback`: called from the connection's
 * own callback (which then returns 0, so the eventer drops its reference).
 */
static void session_close(mtev_http_session_ctx *ctx, int in_callback)
{
    eventer_t e = ctx->connection.e;
    /* A response still open in another thread's hands (a job appending to it): the session
     * must outlive it. Cut the connection, discard further output, and finish closing when
     * the response is ended. */
    pthread_mutex_lock(&ctx->lock);
    int still_held = ctx->state == STATE_RESPONSE && !ctx->res.end_requested;
    if (still_held) {
        ctx->res.peer_gone = 1;
        if (!ctx->aco)
            ctx->floated = 1;
    }
    pthread_mutex_unlock(&ctx->lock);
    if (still_held) {
        int fd = eventer_get_fd(e);
        if (fd >= 0)
            shutdown(fd, SHUT_RDWR);
        ctx->out.length = 0;
        ctx->close_after = 1;
        if (!ctx->aco) {
            if (!in_callback) {
                eventer_t registered = eventer_remove_fde(e);
                if (registered)
                    eventer_deref(registered);
            }
            return; /* the end triggers the driver, whose write fails and closes for real */
        }
        for (;;) {
            pthread_mutex_lock(&ctx->lock);
            int ended = ctx->res.end_requested;
            pthread_mutex_unlock(&ctx->lock);
            if (ended)
                break;
            wait_for_progress(ctx);
        }
    }
    ctx->state = STATE_CLOSED;
    if (ctx->aco) {
        eventer_aco_close((eventer_aco_t)e);
        mtev_acceptor_closure_free(ctx->ac);
        return;
    }
    if (!in_callback) {
        eventer_t registered = eventer_remove_fde(e);
        if (registered)
            eventer_deref(registered);
    }
    int ignored;
    eventer_close(e, &ignored);
    mtev_acceptor_closure_free(ctx->ac); /* frees the session through its ctx_free */
}

static long config_limit(mtev_acceptor_closure_t *ac, const char *key, long fallback)
{
    return ark_listener_config_ms(ac, key, fallback);
}

static mtev_http_session_ctx *session_new(eventer_t e, mtev_acceptor_closure_t *ac)
{
    ensure_streams();
    mtev_http_session_ctx *ctx = calloc(1, sizeof(*ctx));
    if (!ctx)
        return NULL;
    pthread_mutex_init(&ctx->lock, NULL);
    ctx->ac = ac;
    ctx->owner = pthread_self();
    ctx->connection.e = e;
    eventer_ref(e); /* ours: the event survives while floated */
    ark_http_limits_default(&ctx->limits);
    ctx->limits.max_target_length =
        (size_t)config_limit(ac, "max_uri_length", (long)ctx->limits.max_target_length);
    ctx->limits.max_head_bytes =
        (size_t)config_limit(ac, "max_header_bytes", (long)ctx->limits.max_head_bytes);
    ctx->limits.max_body_bytes =
        (uint64_t)config_limit(ac, "max_body_bytes", (long)ctx->limits.max_body_bytes);
    ctx->limits.max_header_count = HEADER_CAPACITY;
    ctx->idle_ms = config_limit(ac, "idle_timeout", 60000);
    ctx->request_ms = config_limit(ac, "request_timeout", 30000);
    ctx->write_ms = config_limit(ac, "write_timeout", 30000);
    ark_http_request_parser_init(&ctx->parser, &ctx->limits, ctx->headers, HEADER_CAPACITY);
    ctx->res.status = 200;
    ctx->state = STATE_HEAD;
    mtev_acceptor_closure_set_ctx(ac, ctx, session_free);
    if (dispatcher.state_new)
        ctx->dispatch_state = dispatcher.state_new(ctx);

    uint64_t first = eventer_callback_us() + (uint64_t)ctx->idle_ms * 1000;
    struct timeval whence = {(time_t)(first / 1000000), (suseconds_t)(first % 1000000)};
    ctx->timer = eventer_alloc_timer(session_timer, ctx, &whence);
    if (ctx->timer) {
        ctx->timer_whence_us = first;
        eventer_set_owner(ctx->timer, eventer_get_owner(e));
        eventer_ref(ctx->timer);
        eventer_add(ctx->timer);
    }
    return ctx;
}

int ark_http_session_listener_callback(eventer_t e, int mask, void *closure, struct timeval *now)
{
    mtev_acceptor_closure_t *ac = closure;
    mtev_http_session_ctx *ctx = mtev_acceptor_closure_ctx(ac);
    if (!ctx) {
        ctx = session_new(e, ac);
        if (!ctx) {
            int ignored;
            eventer_close(e, &ignored);
            mtev_acceptor_closure_free(ac);
            return 0;
        }
    }
    return session_drive(ctx);
}

/* ---- I/O ---- */

/* In a co-routine the call waits; the session timer bounds it (interrupt_co). */
static int io_read(mtev_http_session_ctx *ctx, void *buffer, size_t length, int *mask)
{
    if (ctx->aco) {
        int got = eventer_aco_read((eventer_aco_t)ctx->connection.e, buffer, length, NULL);
        if (got <= 0 && ctx->timed_out) {
            errno = ETIME;
            return -1;
        }
        return got;
    }
    return eventer_read(ctx->connection.e, buffer, length, mask);
}

static int io_write(mtev_http_session_ctx *ctx, const void *buffer, size_t length, int *mask)
{
    if (ctx->aco) {
        int wrote = eventer_aco_write((eventer_aco_t)ctx->connection.e, buffer, length, NULL);
        if (wrote < 0 && ctx->timed_out && ctx->deadline_kind == DEADLINE_WRITE)
            errno = ETIME;
        return wrote;
    }
    return eventer_write(ctx->connection.e, buffer, length, mask);
}

/* The co-routine that runs a session from its first aco request on. */
static void session_co_main(void)
{
    mtev_http_session_ctx *ctx = eventer_aco_arg();
    eventer_set_eventer_aco(ctx->connection.e);
    /* session_drive() returns 0 once the session is closed (and freed); a mask only where a
     * classic session would wait, and here the next call waits instead. */
    while (session_drive(ctx) != 0)
        ;
}

int ark_http_session_switch_to_aco(mtev_http_session_ctx *ctx)
{
    eventer_t e = ctx->connection.e;
    /* The co needs its own event: this one is inside its callback, which will return 0 and
     * let the eventer drop it. */
    eventer_t copy = eventer_alloc_copy(e);
    if (!copy)
        return -1;
    eventer_remove_fde(e);
    ctx->connection.e = copy;
    eventer_deref(e); /* the session's reference to the classic event */
    ctx->aco = 1;
    ctx->moved = 1;
    eventer_aco_start_on(pthread_self(), session_co_main, ctx, 0, EVENTER_ACO_MAY_RETURN);
    return 0;
}
