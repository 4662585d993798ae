/*
 * The HTTP/1.x server session: one per connection of an `http_rest_api` listener (see
 * mtev_rest.h), serving HTTP/1.0 and 1.1 with keep-alive, pipelining, Content-Length and
 * chunked bodies both ways, Expect: 100-continue and gzip when the client accepts it.
 * libmtev's names (mtev_http.h).
 *
 * A session holds the current request (read-only for handlers) and its response. Requests on
 * one connection are handled one at a time, in order (pipelined requests wait their turn).
 *
 * Threads. A session lives on its connection's loop thread. The request getters and
 * mtev_http_session_req_consume() are for that thread (or the session's co-routine). The
 * response functions may be called from any thread (a job-queue worker, say): each takes the
 * session's lock. Output is written by the loop thread; a flush or end requested elsewhere
 * wakes it. A handler may return before its response is complete (mtev_http_response_end()
 * not called yet): the connection then waits, without reading further requests, until the
 * response is ended, from whichever thread.
 *
 * Limits (per listener, <config> keys in parentheses; defaults in brackets), each answered
 * with its status, "Connection: close", and a line on "error/http":
 *   malformed request 400, method token too long 501, unsupported version 505,
 *   URI too long 414 (max_uri_length [8000]), header section too large or too many fields
 *   431 (max_header_bytes [65536]), body too large 413 (max_body_bytes [16777216]),
 *   request not complete in time 408 (request_timeout ms [30000]); an idle keep-alive
 *   connection is closed quietly (idle_timeout ms [60000]); a client that stops reading a
 *   response is dropped (write_timeout ms [30000]). One misbehaving client only ever affects
 *   its own connection.
 */
#ifndef MTEV_HTTP_H
#define MTEV_HTTP_H

#include <eventer/eventer.h>
#include <mtev_defines.h>

#include <stdarg.h>
#include <stdint.h>
#include <sys/time.h>

ARK_BEGIN_DECLS

typedef struct mtev_http_session_ctx mtev_http_session_ctx;
typedef struct mtev_http_request mtev_http_request;
typedef struct mtev_http_response mtev_http_response;
typedef struct mtev_http_connection mtev_http_connection;

/* Response options (mtev_http_response_option_set). */
#define MTEV_HTTP_CLOSE   0x02 /* close the connection after this response */
#define MTEV_HTTP_CHUNKED 0x01 /* may stream: chunked on HTTP/1.1 if flushed before the end */
#define MTEV_HTTP_GZIP    0x10 /* gzip the body if the request's Accept-Encoding admits it */
#define MTEV_HTTP_DEFLATE 0x20 /* accepted for libmtev code; treated as MTEV_HTTP_GZIP */

/* ---- session ---- */

/* The current request and response. Never NULL for a live session. */
ARK_EXTERN mtev_http_request *mtev_http_session_request(mtev_http_session_ctx *ctx);
ARK_EXTERN mtev_http_response *mtev_http_session_response(mtev_http_session_ctx *ctx);
/* The connection, and its event (owned by the session: do not free or close it). */
ARK_EXTERN mtev_http_connection *mtev_http_session_connection(mtev_http_session_ctx *ctx);
ARK_EXTERN eventer_t mtev_http_connection_event(mtev_http_connection *connection);
/* True when the current request is being handled inside a co-routine (aco mountpoint). */
ARK_EXTERN mtev_boolean mtev_http_session_is_aco(mtev_http_session_ctx *ctx);

/*
 * Reads up to min(len, blen) bytes of the request body (de-chunked) into `buf`. Returns the
 * number of bytes (> 0), 0 at the end of the body, or -1: errno EAGAIN with `*mask` set
 * (return that mask from the handler to be called again when more arrives; inside a
 * co-routine it waits instead and never returns EAGAIN), or another errno when the client
 * sent a bad body or went away (the session then answers or closes by itself). The first
 * call sends "100 Continue" if the client asked for it. Thread: the connection's.
 */
ARK_EXTERN int mtev_http_session_req_consume(mtev_http_session_ctx *ctx, void *buf, size_t len,
                                             size_t blen, int *mask);

/* ---- request (valid until the response is ended; owner thread) ---- */

/* The method as sent ("GET"), NUL-terminated. */
ARK_EXTERN const char *mtev_http_request_method_str(mtev_http_request *req);
/* The path of the request target without the query ("/a/b"), not percent-decoded. */
ARK_EXTERN const char *mtev_http_request_uri_str(mtev_http_request *req);
/* "HTTP/1.1" or "HTTP/1.0". */
ARK_EXTERN const char *mtev_http_request_protocol_str(mtev_http_request *req);
/* The query string after '?' as sent ("" when none). */
ARK_EXTERN const char *mtev_http_request_orig_querystring(mtev_http_request *req);
/*
 * The percent-decoded value of query parameter `name` (first occurrence; "" for "?name"),
 * or NULL when absent or malformed.
 */
ARK_EXTERN const char *mtev_http_request_querystring(mtev_http_request *req, const char *name);
/* The number of query parameters, and parameter `index` (decoded). Returns 0, or -1. */
ARK_EXTERN int mtev_http_request_querystring_count(mtev_http_request *req);
ARK_EXTERN int mtev_http_request_querystring_at(mtev_http_request *req, int index,
                                                const char **name, const char **value);
/* The value of header `name` (case-insensitive; the first one), or NULL. */
ARK_EXTERN const char *mtev_http_request_header(mtev_http_request *req, const char *name);
/* The number of header fields, and field `index` as received. Returns 0, or -1. */
ARK_EXTERN int mtev_http_request_header_count(mtev_http_request *req);
ARK_EXTERN int mtev_http_request_header_at(mtev_http_request *req, int index, const char **name,
                                           const char **value);
/* Content-Length (-1 when the body is chunked, 0 when there is none). */
ARK_EXTERN int64_t mtev_http_request_content_length(mtev_http_request *req);
/* Body bytes consumed so far. */
ARK_EXTERN int64_t mtev_http_request_content_length_read(mtev_http_request *req);
ARK_EXTERN mtev_boolean mtev_http_request_payload_chunked(mtev_http_request *req);
ARK_EXTERN mtev_boolean mtev_http_request_has_payload(mtev_http_request *req);
/* True once the whole body was consumed (or there is none). */
ARK_EXTERN mtev_boolean mtev_http_request_payload_complete(mtev_http_request *req);
/* The body buffered by mtev_rest_complete_upload() (NUL-terminated), size in `*size`. */
ARK_EXTERN const void *mtev_http_request_get_upload(mtev_http_request *req, int64_t *size);
/* When the request head was complete. */
ARK_EXTERN void mtev_http_request_start_time(mtev_http_request *req, struct timeval *when);

/* ---- response (any thread) ---- */

/*
 * Sets the status (100..999) and reason (NULL: the standard phrase). False once output
 * started or for a bad code.
 */
ARK_EXTERN mtev_boolean mtev_http_response_status_set(mtev_http_session_ctx *ctx, int code,
                                                      const char *reason);
/*
 * Adds a header field (name a token, value without CR/LF). False once output started, or
 * for a bad name or value. Content-Length, Transfer-Encoding and Connection are managed by
 * the session and refused here.
 */
ARK_EXTERN mtev_boolean mtev_http_response_header_set(mtev_http_session_ctx *ctx, const char *name,
                                                      const char *value);
/* ORs in MTEV_HTTP_* options; false once output started. */
ARK_EXTERN mtev_boolean mtev_http_response_option_set(mtev_http_session_ctx *ctx, uint32_t opts);
/*
 * Appends body bytes (copied). False once the response was ended, the client went away, or
 * the body exceeds 1 GiB of unflushed data.
 */
ARK_EXTERN mtev_boolean mtev_http_response_append(mtev_http_session_ctx *ctx, const void *buf,
                                                  size_t len);
ARK_EXTERN mtev_boolean mtev_http_response_append_str(mtev_http_session_ctx *ctx, const char *s);
ARK_EXTERN mtev_boolean mtev_http_response_appendf(mtev_http_session_ctx *ctx, const char *format,
                                                   ...) __attribute__((format(printf, 2, 3)));
ARK_EXTERN mtev_boolean mtev_http_response_vappend(mtev_http_session_ctx *ctx, const char *format,
                                                   va_list arguments)
    __attribute__((format(printf, 2, 0)));
/*
 * Sends what was appended so far. With `final` the response ends (as mtev_http_response_end).
 * A first non-final flush sends the head: the body is then chunked on HTTP/1.1, or
 * delimited by closing the connection on HTTP/1.0. A response ended before any flush is
 * sent with Content-Length. False once ended.
 */
ARK_EXTERN mtev_boolean mtev_http_response_flush(mtev_http_session_ctx *ctx, mtev_boolean final);
/* Ends the response: the connection goes on with the next request when it is written. */
ARK_EXTERN mtev_boolean mtev_http_response_end(mtev_http_session_ctx *ctx);

/* Status + Content-Type + options CHUNKED and GZIP (if accepted). Statement macros. */
#define mtev_http_response_standard(ctx, code, reason, ctype)                     \
    do {                                                                          \
        mtev_http_response_status_set((ctx), (code), (reason));                   \
        mtev_http_response_header_set((ctx), "Content-Type", (ctype));            \
        mtev_http_response_option_set((ctx), MTEV_HTTP_CHUNKED | MTEV_HTTP_GZIP); \
    } while (0)
#define mtev_http_response_ok(ctx, ctype) mtev_http_response_standard(ctx, 200, "OK", ctype)
#define mtev_http_response_not_found(ctx, ctype) \
    mtev_http_response_standard(ctx, 404, "NOT FOUND", ctype)
#define mtev_http_response_denied(ctx, ctype) mtev_http_response_standard(ctx, 403, "DENIED", ctype)
#define mtev_http_response_server_error(ctx, ctype) \
    mtev_http_response_standard(ctx, 500, "ERROR", ctype)

/* Body bytes appended and not yet written. */
ARK_EXTERN size_t mtev_http_response_buffered(mtev_http_response *res);
/* True when the response was ended. */
ARK_EXTERN mtev_boolean mtev_http_response_closed(mtev_http_response *res);
/* True when the response was ended and entirely written. */
ARK_EXTERN mtev_boolean mtev_http_response_complete(mtev_http_response *res);
/* The status set (200 by default). */
ARK_EXTERN int mtev_http_response_status(mtev_http_response *res);
/* Bytes written to the connection for this response (head included). */
ARK_EXTERN size_t mtev_http_response_bytes_written(mtev_http_response *res);

/* Requests whose handling started and whose response is not completely written yet. */
ARK_EXTERN int64_t mtev_http_inflight_requests(void);
/*
 * Asks every session to close its connection after the response in progress (keep-alive
 * ends), for an orderly stop. Thread: any.
 */
ARK_EXTERN void mtev_http_begin_drain(void);

ARK_END_DECLS

#endif
