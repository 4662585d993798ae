/*
 * The HTTP/1.1 server and REST routing over loopback: keep-alive, pipelining, bodies both ways,
 * 100-continue, gzip, the limits and their statuses, responses ended from job threads, ACLs.
 */
#include "ark_net.h"
#include "ark_test.h"

#include <eventer/eventer.h>
#include <mtev_conf.h>
#include <mtev_http.h>
#include <mtev_listener.h>
#include <mtev_log.h>
#include <mtev_rest.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/ssl.h>
#include <zlib.h>

static int port;

static int hello_handler(mtev_http_rest_closure_t *restc, int npats, char **pats)
{
    mtev_http_session_ctx *ctx = restc->http_ctx;
    mtev_http_response_ok(ctx, "text/plain");
    mtev_http_response_append_str(ctx, "Hello world.\n");
    mtev_http_response_end(ctx);
    return 0;
}

static int echo_handler(mtev_http_rest_closure_t *restc, int npats, char **pats)
{
    mtev_http_session_ctx *ctx = restc->http_ctx;
    mtev_http_request *req = mtev_http_session_request(ctx);
    const char *q = mtev_http_request_querystring(req, "q");
    const char *agent = mtev_http_request_header(req, "x-test");
    mtev_http_response_ok(ctx, "text/plain");
    mtev_http_response_appendf(ctx, "npats=%d pat0=%s q=%s x-test=%s uri=%s method=%s", npats,
                               npats > 0 ? pats[0] : "-", q ? q : "-", agent ? agent : "-",
                               mtev_http_request_uri_str(req), mtev_http_request_method_str(req));
    mtev_http_response_end(ctx);
    return 0;
}

static int upload_handler(mtev_http_rest_closure_t *restc, int npats, char **pats)
{
    int mask;
    if (!mtev_rest_complete_upload(restc, &mask))
        return mask;
    mtev_http_session_ctx *ctx = restc->http_ctx;
    int64_t size;
    const char *body = mtev_http_request_get_upload(mtev_http_session_request(ctx), &size);
    mtev_http_response_ok(ctx, "text/plain");
    mtev_http_response_appendf(ctx, "got %lld: %s", (long long)size, body);
    mtev_http_response_end(ctx);
    return 0;
}

/* Reads the body piece by piece as it arrives, counting the pieces. */
struct stream_count {
    long bytes;
    unsigned sum;
};
static void free_count(void *p)
{
    free(p);
}
static int stream_handler(mtev_http_rest_closure_t *restc, int npats, char **pats)
{
    mtev_http_session_ctx *ctx = restc->http_ctx;
    if (!restc->call_closure) {
        restc->call_closure = calloc(1, sizeof(struct stream_count));
        restc->call_closure_free = free_count;
    }
    struct stream_count *count = restc->call_closure;
    for (;;) {
        char piece[7];
        int mask;
        int got = mtev_http_session_req_consume(ctx, piece, sizeof(piece), sizeof(piece), &mask);
        if (got < 0 && errno == EAGAIN)
            return mask;
        if (got < 0)
            return 0;
        if (got == 0)
            break;
        count->bytes += got;
        for (int i = 0; i < got; i++)
            count->sum = count->sum * 31 + (unsigned char)piece[i];
    }
    mtev_http_response_ok(ctx, "text/plain");
    mtev_http_response_appendf(ctx, "bytes=%ld sum=%u", count->bytes, count->sum);
    mtev_http_response_end(ctx);
    return 0;
}

/* Streams three flushed pieces: chunked on HTTP/1.1. */
static int chunks_handler(mtev_http_rest_closure_t *restc, int npats, char **pats)
{
    mtev_http_session_ctx *ctx = restc->http_ctx;
    mtev_http_response_ok(ctx, "text/plain");
    for (int i = 0; i < 3; i++) {
        mtev_http_response_appendf(ctx, "piece%d;", i);
        mtev_http_response_flush(ctx, mtev_false);
    }
    mtev_http_response_end(ctx);
    return 0;
}

/* A response appended and ended by a job-queue thread. */
static int job_callback(eventer_t e, int mask, void *closure, struct timeval *now)
{
    mtev_http_session_ctx *ctx = closure;
    if (mask == EVENTER_ASYNCH_WORK) {
        usleep(20000);
        mtev_http_response_append_str(ctx, "from a job thread\n");
        mtev_http_response_end(ctx);
    }
    return 0;
}
static int async_handler(mtev_http_rest_closure_t *restc, int npats, char **pats)
{
    mtev_http_session_ctx *ctx = restc->http_ctx;
    mtev_http_response_ok(ctx, "text/plain");
    eventer_t job = eventer_alloc_asynch(job_callback, ctx);
    eventer_add_asynch(NULL, job);
    return 0;
}

static char big_text[20000];
static int big_handler(mtev_http_rest_closure_t *restc, int npats, char **pats)
{
    mtev_http_session_ctx *ctx = restc->http_ctx;
    mtev_http_response_ok(ctx, "text/plain");
    mtev_http_response_append(ctx, big_text, sizeof(big_text));
    mtev_http_response_end(ctx);
    return 0;
}

/* ---- aco mountpoints ---- */

/* The seed's "Using aco with REST" handler, with a shorter sleep. */
static void asynch_hello(void *closure)
{
    mtev_http_rest_closure_t *restc = closure;
    mtev_http_session_ctx *ctx = restc->http_ctx;
    usleep(50000);
    mtev_http_response_append_str(ctx, "Hello world.\n");
}

static int aco_hello_handler(mtev_http_rest_closure_t *restc, int npats, char **pats)
{
    mtev_http_session_ctx *ctx = restc->http_ctx;
    mtev_http_response_ok(ctx, "text/plain");
    eventer_aco_simple_asynch(asynch_hello, restc);
    mtev_http_response_appendf(ctx, "in a co: %s\n",
                               eventer_is_aco(NULL) && restc->aco_enabled ? "yes" : "no");
    mtev_http_response_end(ctx);
    return 0;
}

/* Reads the whole body in a co: the read waits instead of returning a mask. */
static int aco_upload_handler(mtev_http_rest_closure_t *restc, int npats, char **pats)
{
    int mask = 0;
    mtev_boolean complete = mtev_rest_complete_upload(restc, &mask);
    if (!complete)
        return 0; /* a bad body: the error was answered */
    mtev_http_session_ctx *ctx = restc->http_ctx;
    int64_t size;
    const char *body = mtev_http_request_get_upload(mtev_http_session_request(ctx), &size);
    mtev_http_response_ok(ctx, "text/plain");
    mtev_http_response_appendf(ctx, "aco got %lld: %s (mask %d)", (long long)size, body, mask);
    mtev_http_response_end(ctx);
    return 0;
}

/* Streams flushed pieces from a co, sleeping between them. */
static int aco_chunks_handler(mtev_http_rest_closure_t *restc, int npats, char **pats)
{
    mtev_http_session_ctx *ctx = restc->http_ctx;
    mtev_http_response_ok(ctx, "text/plain");
    for (int i = 0; i < 3; i++) {
        mtev_http_response_appendf(ctx, "piece%d;", i);
        mtev_http_response_flush(ctx, mtev_false);
        struct timeval pause = {0, 10000};
        eventer_aco_sleep(&pause);
    }
    mtev_http_response_end(ctx);
    return 0;
}

/* An aco handler that returns at once; a job thread flushes a piece, then ends, later. */
static int later_job(eventer_t e, int mask, void *closure, struct timeval *now)
{
    mtev_http_session_ctx *ctx = closure;
    if (mask == EVENTER_ASYNCH_WORK) {
        usleep(150000);
        mtev_http_response_append_str(ctx, "first;");
        mtev_http_response_flush(ctx, mtev_false);
        usleep(150000);
        mtev_http_response_append_str(ctx, "second");
        mtev_http_response_end(ctx);
    }
    return 0;
}
static int aco_later_handler(mtev_http_rest_closure_t *restc, int npats, char **pats)
{
    mtev_http_session_ctx *ctx = restc->http_ctx;
    mtev_http_response_ok(ctx, "text/plain");
    eventer_add_asynch(NULL, eventer_alloc_asynch(later_job, ctx));
    return 0;
}

/* The TLS client certificate's CN, as the REST closure has it. */
static int whoami_handler(mtev_http_rest_closure_t *restc, int npats, char **pats)
{
    mtev_http_session_ctx *ctx = restc->http_ctx;
    mtev_http_response_ok(ctx, "text/plain");
    mtev_http_response_appendf(ctx, "cn=%s;%s", restc->remote_cn ? restc->remote_cn : "(none)",
                               eventer_is_aco(NULL) ? "aco" : "classic");
    mtev_http_response_end(ctx);
    return 0;
}

static const char *listener_attributes = "";

static void start_server(const char *listener_config, const char *extra)
{
    char xml[4096];
    snprintf(xml, sizeof(xml),
             "<app><listeners><listener type=\"http_rest_api\" address=\"127.0.0.1\" port=\"0\" "
             "%s><config>%s</config></listener></listeners>%s</app>",
             listener_attributes, listener_config ? listener_config : "", extra ? extra : "");
    ARK_ASSERT_EQ(eventer_propset("concurrency", "3"), 0);
    mtev_conf_init("app");
    ARK_ASSERT_EQ(mtev_conf_load_string("rest.conf", xml), 0);
    ARK_ASSERT_EQ(eventer_init(), 0);
    mtev_http_rest_init();
    ARK_ASSERT(mtev_http_rest_new_rule("GET", "/", "^hello$", hello_handler));
    ARK_ASSERT(mtev_http_rest_new_rule("GET", "/echo/", "^(\\w+)$", echo_handler));
    ARK_ASSERT(mtev_http_rest_new_rule("HEAD", "/", "^hello$", hello_handler));
    ARK_ASSERT(mtev_http_rest_new_rule("POST", "/", "^upload$", upload_handler));
    ARK_ASSERT(mtev_http_rest_new_rule("POST", "/", "^stream$", stream_handler));
    ARK_ASSERT(mtev_http_rest_new_rule("GET", "/", "^chunks$", chunks_handler));
    ARK_ASSERT(mtev_http_rest_new_rule("GET", "/", "^async$", async_handler));
    ARK_ASSERT(mtev_http_rest_new_rule("GET", "/", "^big$", big_handler));
    mtev_rest_mountpoint_t *rule =
        mtev_http_rest_new_rule("GET", "/aco/", "^hello$", aco_hello_handler);
    ARK_ASSERT(rule);
    mtev_rest_mountpoint_set_aco(rule, mtev_true);
    rule = mtev_http_rest_new_rule("POST", "/aco/", "^upload$", aco_upload_handler);
    ARK_ASSERT(rule);
    mtev_rest_mountpoint_set_aco(rule, mtev_true);
    rule = mtev_http_rest_new_rule("GET", "/aco/", "^chunks$", aco_chunks_handler);
    ARK_ASSERT(rule);
    mtev_rest_mountpoint_set_aco(rule, mtev_true);
    ARK_ASSERT(mtev_http_rest_new_rule("GET", "/", "^whoami$", whoami_handler));
    rule = mtev_http_rest_new_rule("GET", "/aco/", "^whoami$", whoami_handler);
    ARK_ASSERT(rule);
    mtev_rest_mountpoint_set_aco(rule, mtev_true);
    rule = mtev_http_rest_new_rule("GET", "/aco/", "^later$", aco_later_handler);
    ARK_ASSERT(rule);
    mtev_rest_mountpoint_set_aco(rule, mtev_true);
    ARK_ASSERT_EQ(mtev_listener_init("app"), 1);
    port = mtev_listener_get_port(0);
}

static void stop_server(void)
{
    eventer_shutdown();
    eventer_cleanup();
    mtev_conf_unload();
}

static int connect_server(void)
{
    int fd = ark_net_connect("127.0.0.1", port);
    ARK_ASSERT_GE(fd, 0);
    return fd;
}

static int request(int fd, const char *text, char *response, size_t capacity)
{
    ARK_ASSERT_EQ(ark_net_send_str(fd, text), 0);
    int status = 0;
    ARK_ASSERT_GT(ark_net_read_http_response(fd, response, capacity, &status), 0);
    return status;
}

ARK_TEST(rest_hello_keep_alive_and_content_length)
{
    start_server(NULL, NULL);
    int fd = connect_server();
    char response[4096], value[64];
    for (int i = 0; i < 3; i++) {
        ARK_ASSERT_EQ(
            request(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", response, sizeof(response)), 200);
        ARK_ASSERT_STR_EQ(ark_net_http_body(response), "Hello world.\n");
        ARK_ASSERT_STR_EQ(ark_net_http_header(response, "Content-Length", value, sizeof(value)),
                          "13");
        ARK_ASSERT(!ark_net_http_header(response, "Connection", value, sizeof(value)));
    }
    close(fd);
    stop_server();
}

ARK_TEST(rest_pipelined_requests_answer_in_order)
{
    start_server(NULL, NULL);
    int fd = connect_server();
    ARK_ASSERT_EQ(ark_net_send_str(fd,
                                   "GET /echo/one HTTP/1.1\r\nHost: x\r\n\r\n"
                                   "GET /echo/two HTTP/1.1\r\nHost: x\r\n\r\n"
                                   "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
                  0);
    char response[4096];
    int status;
    ARK_ASSERT_GT(ark_net_read_http_response(fd, response, sizeof(response), &status), 0);
    ARK_ASSERT(strstr(ark_net_http_body(response), "pat0=one"));
    ARK_ASSERT_GT(ark_net_read_http_response(fd, response, sizeof(response), &status), 0);
    ARK_ASSERT(strstr(ark_net_http_body(response), "pat0=two"));
    ARK_ASSERT_GT(ark_net_read_http_response(fd, response, sizeof(response), &status), 0);
    ARK_ASSERT_STR_EQ(ark_net_http_body(response), "Hello world.\n");
    char value[64];
    ARK_ASSERT_STR_EQ(ark_net_http_header(response, "Connection", value, sizeof(value)), "close");
    ARK_ASSERT(ark_net_peer_closed(fd));
    close(fd);
    stop_server();
}

ARK_TEST(rest_captures_query_and_headers)
{
    start_server(NULL, NULL);
    int fd = connect_server();
    char response[4096];
    ARK_ASSERT_EQ(request(fd,
                          "GET /echo/abc?z=1&q=a%20b+c HTTP/1.1\r\nHost: x\r\nX-Test: yes\r\n\r\n",
                          response, sizeof(response)),
                  200);
    ARK_ASSERT_STR_EQ(ark_net_http_body(response),
                      "npats=1 pat0=abc q=a b c x-test=yes uri=/echo/abc method=GET");
    close(fd);
    stop_server();
}

ARK_TEST(rest_unknown_path_404_unknown_method_405)
{
    start_server(NULL, NULL);
    int fd = connect_server();
    char response[4096], value[64];
    ARK_ASSERT_EQ(
        request(fd, "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n", response, sizeof(response)), 404);
    ARK_ASSERT_EQ(
        request(fd, "DELETE /hello HTTP/1.1\r\nHost: x\r\n\r\n", response, sizeof(response)), 405);
    ARK_ASSERT(ark_net_http_header(response, "Allow", value, sizeof(value)));
    ARK_ASSERT(strstr(value, "GET"));
    /* Still usable afterwards. */
    ARK_ASSERT_EQ(request(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", response, sizeof(response)),
                  200);
    close(fd);
    stop_server();
}

ARK_TEST(rest_head_has_length_but_no_body)
{
    start_server(NULL, NULL);
    int fd = connect_server();
    char response[4096], value[64];
    ARK_ASSERT_EQ(ark_net_send_str(fd, "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                                       "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"),
                  0);
    ssize_t length = ark_net_read_until(fd, response, sizeof(response), "Hello world.\n");
    ARK_ASSERT_GT(length, 0);
    ARK_ASSERT(strncmp(response, "HTTP/1.1 200", 12) == 0);
    ARK_ASSERT_STR_EQ(ark_net_http_header(response, "Content-Length", value, sizeof(value)), "13");
    /* The second response starts right after the first head. */
    const char *second = ark_net_http_body(response);
    ARK_ASSERT(strncmp(second, "HTTP/1.1 200", 12) == 0);
    close(fd);
    stop_server();
}

ARK_TEST(rest_uploads_with_length_chunked_and_continue)
{
    start_server(NULL, NULL);
    int fd = connect_server();
    char response[4096];
    ARK_ASSERT_EQ(request(fd, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
                          response, sizeof(response)),
                  200);
    ARK_ASSERT_STR_EQ(ark_net_http_body(response), "got 5: hello");
    ARK_ASSERT_EQ(request(fd,
                          "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nTrailer: t\r\n\r\n",
                          response, sizeof(response)),
                  200);
    ARK_ASSERT_STR_EQ(ark_net_http_body(response), "got 7: abcdefg");
    /* Expect: 100-continue: the body is sent only after the interim response. */
    ARK_ASSERT_EQ(request(fd,
                          "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                          "Expect: 100-continue\r\n\r\n",
                          response, sizeof(response)),
                  100);
    ARK_ASSERT_EQ(request(fd, "xyz", response, sizeof(response)), 200);
    ARK_ASSERT_STR_EQ(ark_net_http_body(response), "got 3: xyz");
    close(fd);
    stop_server();
}

ARK_TEST(rest_streaming_body_reads_as_it_arrives)
{
    start_server(NULL, NULL);
    int fd = connect_server();
    ARK_ASSERT_EQ(ark_net_send_str(fd, "POST /stream HTTP/1.1\r\nHost: x\r\n"
                                       "Transfer-Encoding: chunked\r\n\r\n"),
                  0);
    unsigned sum = 0;
    long bytes = 0;
    for (int i = 0; i < 5; i++) {
        char chunk[64];
        int n = snprintf(chunk, sizeof(chunk), "a\r\n%010d\r\n", i);
        ARK_ASSERT_EQ(ark_net_send_all(fd, chunk, (size_t)n), 0);
        char digits[16];
        snprintf(digits, sizeof(digits), "%010d", i);
        for (int j = 0; j < 10; j++)
            sum = sum * 31 + (unsigned char)digits[j];
        bytes += 10;
        usleep(10000);
    }
    char response[4096], expected[64];
    int status;
    ARK_ASSERT_EQ(ark_net_send_str(fd, "0\r\n\r\n"), 0);
    ARK_ASSERT_GT(ark_net_read_http_response(fd, response, sizeof(response), &status), 0);
    ARK_ASSERT_EQ(status, 200);
    snprintf(expected, sizeof(expected), "bytes=%ld sum=%u", bytes, sum);
    ARK_ASSERT_STR_EQ(ark_net_http_body(response), expected);
    close(fd);
    stop_server();
}

ARK_TEST(rest_unread_body_is_drained_before_the_next_request)
{
    start_server(NULL, NULL);
    int fd = connect_server();
    char response[4096];
    ARK_ASSERT_EQ(request(fd,
                          "POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody"
                          "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
                          response, sizeof(response)),
                  405);
    int status;
    ARK_ASSERT_GT(ark_net_read_http_response(fd, response, sizeof(response), &status), 0);
    ARK_ASSERT_EQ(status, 200);
    close(fd);
    stop_server();
}

ARK_TEST(rest_flushed_response_is_chunked_and_http10_is_close_delimited)
{
    start_server(NULL, NULL);
    int fd = connect_server();
    char response[4096], value[64];
    ARK_ASSERT_EQ(
        request(fd, "GET /chunks HTTP/1.1\r\nHost: x\r\n\r\n", response, sizeof(response)), 200);
    ARK_ASSERT_STR_EQ(ark_net_http_header(response, "Transfer-Encoding", value, sizeof(value)),
                      "chunked");
    ARK_ASSERT_STR_EQ(ark_net_http_body(response),
                      "7\r\npiece0;\r\n7\r\npiece1;\r\n7\r\npiece2;\r\n0\r\n\r\n");
    close(fd);
    fd = connect_server();
    ARK_ASSERT_EQ(ark_net_send_str(fd, "GET /chunks HTTP/1.0\r\n\r\n"), 0);
    ark_net_read_all(fd, response, sizeof(response));
    ARK_ASSERT(strncmp(response, "HTTP/1.0 200", 12) == 0);
    ARK_ASSERT_STR_EQ(ark_net_http_body(response), "piece0;piece1;piece2;");
    close(fd);
    /* HTTP/1.0 with keep-alive keeps the connection when the length is known. */
    fd = connect_server();
    ARK_ASSERT_EQ(request(fd, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", response,
                          sizeof(response)),
                  200);
    ARK_ASSERT_STR_EQ(ark_net_http_header(response, "Connection", value, sizeof(value)),
                      "keep-alive");
    ARK_ASSERT_EQ(request(fd, "GET /hello HTTP/1.0\r\n\r\n", response, sizeof(response)), 200);
    ARK_ASSERT(ark_net_peer_closed(fd));
    close(fd);
    stop_server();
}

ARK_TEST(rest_gzip_when_accepted)
{
    for (size_t i = 0; i < sizeof(big_text); i++)
        big_text[i] = (char)('a' + i % 7);
    start_server(NULL, NULL);
    int fd = connect_server();
    static char response[65536];
    char value[64];
    ARK_ASSERT_EQ(request(fd, "GET /big HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n",
                          response, sizeof(response)),
                  200);
    ARK_ASSERT_STR_EQ(ark_net_http_header(response, "Content-Encoding", value, sizeof(value)),
                      "gzip");
    ARK_ASSERT(ark_net_http_header(response, "Content-Length", value, sizeof(value)));
    size_t compressed = strtoul(value, NULL, 10);
    ARK_ASSERT_LT(compressed, sizeof(big_text) / 4);
    static char plain[sizeof(big_text) + 16];
    z_stream z = {0};
    ARK_ASSERT_EQ(inflateInit2(&z, 16 + MAX_WBITS), Z_OK);
    z.next_in = (unsigned char *)ark_net_http_body(response);
    z.avail_in = (unsigned)compressed;
    z.next_out = (unsigned char *)plain;
    z.avail_out = sizeof(plain);
    ARK_ASSERT_EQ(inflate(&z, Z_FINISH), Z_STREAM_END);
    ARK_ASSERT_EQ(z.total_out, sizeof(big_text));
    ARK_ASSERT(memcmp(plain, big_text, sizeof(big_text)) == 0);
    inflateEnd(&z);
    /* Not accepted: plain. */
    ARK_ASSERT_EQ(request(fd, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n", response, sizeof(response)),
                  200);
    ARK_ASSERT(!ark_net_http_header(response, "Content-Encoding", value, sizeof(value)));
    ARK_ASSERT(memcmp(ark_net_http_body(response), big_text, sizeof(big_text)) == 0);
    close(fd);
    stop_server();
}

ARK_TEST(rest_response_ended_from_a_job_thread)
{
    start_server(NULL, NULL);
    int fd = connect_server();
    char response[4096];
    for (int i = 0; i < 3; i++) {
        ARK_ASSERT_EQ(
            request(fd, "GET /async HTTP/1.1\r\nHost: x\r\n\r\n", response, sizeof(response)), 200);
        ARK_ASSERT_STR_EQ(ark_net_http_body(response), "from a job thread\n");
    }
    close(fd);
    stop_server();
}

/* Captures error/http lines. */
static char captured[8192];
static pthread_mutex_t captured_lock = PTHREAD_MUTEX_INITIALIZER;
static void capture(void *closure, mtev_log_stream_t stream, const char *line, size_t length)
{
    pthread_mutex_lock(&captured_lock);
    size_t room = sizeof(captured) - strlen(captured) - 1;
    strncat(captured, line, length < room ? length : room);
    pthread_mutex_unlock(&captured_lock);
}
static int captured_has(const char *text)
{
    pthread_mutex_lock(&captured_lock);
    int found = strstr(captured, text) != NULL;
    pthread_mutex_unlock(&captured_lock);
    return found;
}

static void expect_refusal(const char *text, int expected_status, const char *log_text)
{
    int fd = connect_server();
    ARK_ASSERT_EQ(ark_net_send_str(fd, text), 0);
    char response[4096], value[64];
    int status = 0;
    ARK_ASSERT_GT(ark_net_read_http_response(fd, response, sizeof(response), &status), 0);
    ARK_ASSERT_EQ(status, expected_status);
    ARK_ASSERT_STR_EQ(ark_net_http_header(response, "Connection", value, sizeof(value)), "close");
    ARK_ASSERT(ark_net_peer_closed(fd));
    close(fd);
    for (int i = 0; i < 1000 && !captured_has(log_text); i++)
        usleep(1000);
    ARK_ASSERT_MSG(captured_has(log_text), "no log line \"%s\" in: %s", log_text, captured);
}

ARK_TEST(rest_limits_answer_with_their_status_and_a_log_line)
{
    start_server("<max_uri_length>100</max_uri_length><max_header_bytes>2000</max_header_bytes>"
                 "<max_body_bytes>10</max_body_bytes>",
                 NULL);
    mtev_log_stream_set_writer(mtev_log_stream_find("error/http"), capture, NULL);
    expect_refusal("GET /hello HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", 400, ": 400 ");
    char text[4096];
    snprintf(text, sizeof(text), "GET /%0200d HTTP/1.1\r\nHost: x\r\n\r\n", 0);
    expect_refusal(text, 414, ": 414 ");
    snprintf(text, sizeof(text), "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: %03000d\r\n\r\n", 0);
    expect_refusal(text, 431, ": 431 ");
    expect_refusal("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n", 413, ": 413 ");
    expect_refusal("POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "b\r\n01234567890\r\n0\r\n\r\n",
                   413, ": 413 ");
    mtev_log_stream_set_writer(mtev_log_stream_find("error/http"), NULL, NULL);
    stop_server();
}

ARK_TEST(rest_slow_client_gets_408_and_idle_client_is_closed)
{
    start_server("<request_timeout>300</request_timeout><idle_timeout>300</idle_timeout>", NULL);
    mtev_log_stream_set_writer(mtev_log_stream_find("error/http"), capture, NULL);
    /* A request head that never completes. */
    int slow = connect_server();
    ARK_ASSERT_EQ(ark_net_send_str(slow, "GET /hello HTTP/1.1\r\nHost"), 0);
    /* Meanwhile another client is served normally. */
    int good = connect_server();
    char response[4096];
    ARK_ASSERT_EQ(
        request(good, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", response, sizeof(response)), 200);
    int status = 0;
    ARK_ASSERT_GT(ark_net_read_http_response(slow, response, sizeof(response), &status), 0);
    ARK_ASSERT_EQ(status, 408);
    ARK_ASSERT(ark_net_peer_closed(slow));
    ARK_ASSERT(captured_has(": 408 request not complete"));
    /* The good connection, idle after its response, is closed quietly. */
    ARK_ASSERT(ark_net_peer_closed(good));
    close(slow);
    close(good);
    mtev_log_stream_set_writer(mtev_log_stream_find("error/http"), NULL, NULL);
    stop_server();
}

ARK_TEST(rest_acl_restricts_when_configured)
{
    start_server(NULL, "<rest><acl><rule type=\"allow\" url=\"^/hello$\" ip=\"127.0.0.0/8\"/>"
                       "<rule type=\"deny\"/></acl></rest>");
    int fd = connect_server();
    char response[4096];
    ARK_ASSERT_EQ(request(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", response, sizeof(response)),
                  200);
    ARK_ASSERT_EQ(
        request(fd, "GET /echo/x HTTP/1.1\r\nHost: x\r\n\r\n", response, sizeof(response)), 403);
    close(fd);
    stop_server();
}

ARK_TEST(rest_acl_bad_rules_are_logged_with_their_location)
{
    mtev_log_stream_set_writer(mtev_error, capture, NULL);
    start_server(NULL, "<rest><acl><rule type=\"maybe\"/><rule type=\"allow\" ip=\"not-an-ip\"/>"
                       "</acl></rest>");
    mtev_log_stream_set_writer(mtev_error, NULL, NULL);
    ARK_ASSERT_MSG(captured_has("rest.conf:1: rest acl rule: type must be \"allow\" or \"deny\""),
                   "%s", captured);
    ARK_ASSERT_MSG(
        captured_has("rest.conf:1: rest acl rule: ip \"not-an-ip\" is not an address or CIDR"),
        "%s", captured);
    stop_server();
}

ARK_TEST(rest_aco_mountpoint_runs_the_seed_handler_in_a_co)
{
    start_server(NULL, NULL);
    int fd = connect_server();
    char response[4096];
    for (int i = 0; i < 3; i++) {
        ARK_ASSERT_EQ(
            request(fd, "GET /aco/hello HTTP/1.1\r\nHost: x\r\n\r\n", response, sizeof(response)),
            200);
        ARK_ASSERT_STR_EQ(ark_net_http_body(response), "Hello world.\nin a co: yes\n");
    }
    /* Classic rules keep working on the same connection, now served from its co. */
    ARK_ASSERT_EQ(request(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", response, sizeof(response)),
                  200);
    ARK_ASSERT_STR_EQ(ark_net_http_body(response), "Hello world.\n");
    ARK_ASSERT_EQ(request(fd, "GET /async HTTP/1.1\r\nHost: x\r\n\r\n", response, sizeof(response)),
                  200);
    ARK_ASSERT_STR_EQ(ark_net_http_body(response), "from a job thread\n");
    /* Pipelined into the co. */
    ARK_ASSERT_EQ(ark_net_send_str(fd,
                                   "GET /aco/hello HTTP/1.1\r\nHost: x\r\n\r\n"
                                   "GET /echo/p HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
                  0);
    int status;
    ARK_ASSERT_GT(ark_net_read_http_response(fd, response, sizeof(response), &status), 0);
    ARK_ASSERT_STR_EQ(ark_net_http_body(response), "Hello world.\nin a co: yes\n");
    ARK_ASSERT_GT(ark_net_read_http_response(fd, response, sizeof(response), &status), 0);
    ARK_ASSERT(strstr(ark_net_http_body(response), "pat0=p"));
    ARK_ASSERT(ark_net_peer_closed(fd));
    close(fd);
    stop_server();
}

/* Counts co resumes reported on debug/eventer/aco. */
static int co_resumes;
static void count_resumes(void *closure, mtev_log_stream_t stream, const char *line, size_t length)
{
    if (memmem(line, length, " resumed on ", strlen(" resumed on ")))
        __atomic_add_fetch(&co_resumes, 1, __ATOMIC_RELAXED);
}

ARK_TEST(rest_aco_response_ended_by_a_job_wakes_the_co_without_polling)
{
    start_server(NULL, NULL);
    mtev_log_stream_t aco_debug = mtev_log_stream_find("debug/eventer/aco");
    mtev_log_stream_set_writer(aco_debug, count_resumes, NULL);
    mtev_log_stream_enable(aco_debug, mtev_true);
    int fd = connect_server();
    char response[4096];
    ARK_ASSERT_EQ(
        request(fd, "GET /aco/later HTTP/1.1\r\nHost: x\r\n\r\n", response, sizeof(response)), 200);
    ARK_ASSERT_STR_EQ(ark_net_http_body(response), "6\r\nfirst;\r\n6\r\nsecond\r\n0\r\n\r\n");
    /* The co ran for the request, then once per flush and once for the end. Polling while
     * the job slept 300 ms would have resumed it every few milliseconds. */
    int resumes = __atomic_load_n(&co_resumes, __ATOMIC_RELAXED);
    ARK_ASSERT_MSG(resumes <= 8, "the co was resumed %d times", resumes);
    ARK_ASSERT_GE(resumes, 2);
    mtev_log_stream_enable(aco_debug, mtev_false);
    mtev_log_stream_set_writer(aco_debug, NULL, NULL);
    close(fd);
    stop_server();
}

ARK_TEST(rest_aco_reads_and_flushes_wait_cooperatively)
{
    start_server(NULL, NULL);
    int fd = connect_server();
    /* Two clients at once on one loop thread: the co waiting for a slow body must not block
     * the other. */
    ARK_ASSERT_EQ(ark_net_send_str(fd, "POST /aco/upload HTTP/1.1\r\nHost: x\r\n"
                                       "Content-Length: 6\r\n\r\nabc"),
                  0);
    int other = connect_server();
    char response[4096], value[64];
    ARK_ASSERT_EQ(
        request(other, "GET /aco/chunks HTTP/1.1\r\nHost: x\r\n\r\n", response, sizeof(response)),
        200);
    ARK_ASSERT_STR_EQ(ark_net_http_header(response, "Transfer-Encoding", value, sizeof(value)),
                      "chunked");
    ARK_ASSERT_STR_EQ(ark_net_http_body(response),
                      "7\r\npiece0;\r\n7\r\npiece1;\r\n7\r\npiece2;\r\n0\r\n\r\n");
    ARK_ASSERT_EQ(request(fd, "def", response, sizeof(response)), 200);
    ARK_ASSERT_STR_EQ(ark_net_http_body(response), "aco got 6: abcdef (mask 0)");
    /* A chunked body with 100-continue, in the co. */
    ARK_ASSERT_EQ(request(fd,
                          "POST /aco/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                          "Expect: 100-continue\r\n\r\n",
                          response, sizeof(response)),
                  100);
    ARK_ASSERT_EQ(request(fd, "2\r\nxy\r\n0\r\n\r\n", response, sizeof(response)), 200);
    ARK_ASSERT_STR_EQ(ark_net_http_body(response), "aco got 2: xy (mask 0)");
    close(fd);
    close(other);
    stop_server();
}

ARK_TEST(rest_aco_session_times_out_like_a_classic_one)
{
    start_server("<request_timeout>300</request_timeout><idle_timeout>300</idle_timeout>", NULL);
    mtev_log_stream_set_writer(mtev_log_stream_find("error/http"), capture, NULL);
    int fd = connect_server();
    char response[4096];
    ARK_ASSERT_EQ(
        request(fd, "GET /aco/hello HTTP/1.1\r\nHost: x\r\n\r\n", response, sizeof(response)), 200);
    /* Now in the co: a partial head gets 408. */
    ARK_ASSERT_EQ(ark_net_send_str(fd, "GET /hel"), 0);
    int status = 0;
    ARK_ASSERT_GT(ark_net_read_http_response(fd, response, sizeof(response), &status), 0);
    ARK_ASSERT_EQ(status, 408);
    ARK_ASSERT(ark_net_peer_closed(fd));
    close(fd);
    /* And an idle one is closed. */
    fd = connect_server();
    ARK_ASSERT_EQ(
        request(fd, "GET /aco/hello HTTP/1.1\r\nHost: x\r\n\r\n", response, sizeof(response)), 200);
    ARK_ASSERT(ark_net_peer_closed(fd));
    close(fd);
    mtev_log_stream_set_writer(mtev_log_stream_find("error/http"), NULL, NULL);
    stop_server();
}

/* ---- over TLS ---- */

static int tls_read_response(SSL *ssl, char *buffer, size_t capacity, const char *end)
{
    size_t used = 0;
    buffer[0] = '\0';
    while (!strstr(buffer, end) && used + 1 < capacity) {
        int n = SSL_read(ssl, buffer + used, (int)(capacity - 1 - used));
        if (n <= 0)
            return -1;
        used += (size_t)n;
        buffer[used] = '\0';
    }
    return (int)used;
}

ARK_TEST(rest_over_tls_classic_and_aco)
{
    char directory[] = "/tmp/ark_rest_tls_XXXXXX";
    ARK_ASSERT(mkdtemp(directory));
    ark_net_make_certificate(directory);
    static char attributes[512];
    snprintf(attributes, sizeof(attributes),
             "ssl=\"on\"><sslconfig><certificate_file>%s/cert.pem</certificate_file>"
             "<key_file>%s/key.pem</key_file></sslconfig",
             directory, directory);
    listener_attributes = attributes;
    start_server(NULL, NULL);
    int fd = connect_server();
    SSL_CTX *context = SSL_CTX_new(TLS_client_method());
    SSL *ssl = SSL_new(context);
    SSL_set_fd(ssl, fd);
    ARK_ASSERT_EQ(SSL_connect(ssl), 1);
    char response[4096];
    const char *requests[] = {"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
                              "GET /aco/hello HTTP/1.1\r\nHost: x\r\n\r\n",
                              "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"};
    const char *bodies[] = {"Hello world.\n", "Hello world.\nin a co: yes\n", "Hello world.\n"};
    for (int i = 0; i < 3; i++) {
        ARK_ASSERT_EQ(SSL_write(ssl, requests[i], (int)strlen(requests[i])),
                      (int)strlen(requests[i]));
        ARK_ASSERT_GT(tls_read_response(ssl, response, sizeof(response), bodies[i]), 0);
        ARK_ASSERT(strncmp(response, "HTTP/1.1 200 OK\r\n", 17) == 0);
        ARK_ASSERT_STR_EQ(ark_net_http_body(response), bodies[i]);
    }
    SSL_shutdown(ssl);
    SSL_free(ssl);
    SSL_CTX_free(context);
    close(fd);
    usleep(100000);
    listener_attributes = "";
    stop_server();
    char command[256];
    snprintf(command, sizeof(command), "rm -rf %s", directory);
    ARK_ASSERT_EQ(system(command), 0);
}

/* ---- TLS client certificates ---- */

static char pki[64];

static void run_openssl(const char *arguments)
{
    char command[1024];
    snprintf(command, sizeof(command), "cd %s && openssl %s >/dev/null 2>&1", pki, arguments);
    ARK_ASSERT_MSG(system(command) == 0, "failed: %s", command);
}

#define EC_KEY_OPTIONS "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "

/* A trusted CA signing alice, an untrusted one signing mallory, a server certificate. */
static void make_certificates(void)
{
    snprintf(pki, sizeof(pki), "/tmp/ark_rest_pki_XXXXXX");
    ARK_ASSERT(mkdtemp(pki));
    run_openssl("req -x509 " EC_KEY_OPTIONS "-days 1 -subj /CN=test-ca -keyout ca.key -out ca.pem");
    run_openssl("req " EC_KEY_OPTIONS "-subj /CN=alice -keyout alice.key -out alice.csr");
    run_openssl("x509 -req -in alice.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 "
                "-out alice.pem");
    run_openssl("req -x509 " EC_KEY_OPTIONS
                "-days 1 -subj /CN=other-ca -keyout other.key -out other.pem");
    run_openssl("req " EC_KEY_OPTIONS "-subj /CN=mallory -keyout mallory.key -out mallory.csr");
    run_openssl("x509 -req -in mallory.csr -CA other.pem -CAkey other.key -CAcreateserial "
                "-days 1 -out mallory.pem");
    run_openssl("req -x509 " EC_KEY_OPTIONS
                "-days 1 -subj /CN=localhost -keyout server.key -out server.pem");
}

/* Connects over TLS with `name`.pem/.key (NULL: no certificate). NULL if the handshake fails. */
static SSL *tls_connect_as(const char *name, int *fd_out)
{
    SSL_CTX *context = SSL_CTX_new(TLS_client_method());
    ARK_ASSERT(context);
    if (name) {
        char certificate[128], key[128];
        snprintf(certificate, sizeof(certificate), "%s/%s.pem", pki, name);
        snprintf(key, sizeof(key), "%s/%s.key", pki, name);
        ARK_ASSERT_EQ(SSL_CTX_use_certificate_file(context, certificate, SSL_FILETYPE_PEM), 1);
        ARK_ASSERT_EQ(SSL_CTX_use_PrivateKey_file(context, key, SSL_FILETYPE_PEM), 1);
    }
    int fd = connect_server();
    SSL *ssl = SSL_new(context);
    SSL_CTX_free(context); /* the session keeps its own reference */
    SSL_set_fd(ssl, fd);
    *fd_out = fd;
    return ssl;
}

/* Sends `request`; returns the status (0 when the server refused the TLS session). */
static int tls_request(SSL *ssl, const char *request, char *response, size_t capacity)
{
    /* With TLS 1.3 the server judges the client's certificate after the client's handshake
     * ends: a refusal shows on the first read. */
    if (SSL_connect(ssl) != 1)
        return 0;
    if (SSL_write(ssl, request, (int)strlen(request)) != (int)strlen(request))
        return 0;
    size_t used = 0;
    response[0] = '\0';
    while (used + 1 < capacity) {
        int n = SSL_read(ssl, response + used, (int)(capacity - 1 - used));
        if (n <= 0)
            break;
        used += (size_t)n;
        response[used] = '\0';
        const char *head_end = strstr(response, "\r\n\r\n");
        char value[32];
        if (head_end && ark_net_http_header(response, "Content-Length", value, sizeof(value)) &&
            strlen(head_end + 4) >= (size_t)atoi(value))
            break;
    }
    int status = 0;
    if (sscanf(response, "HTTP/1.1 %d", &status) != 1)
        return 0;
    return status;
}

static void tls_done(SSL *ssl, int fd)
{
    SSL_shutdown(ssl);
    SSL_free(ssl);
    close(fd);
}

ARK_TEST(rest_tls_client_certificate_cn_reaches_the_acl)
{
    make_certificates();
    static char attributes[768];
    snprintf(attributes, sizeof(attributes),
             "ssl=\"on\"><sslconfig><certificate_file>%s/server.pem</certificate_file>"
             "<key_file>%s/server.key</key_file><ca_chain>%s/ca.pem</ca_chain>"
             "<optional_no_ca>true</optional_no_ca></sslconfig",
             pki, pki, pki);
    listener_attributes = attributes;
    start_server(NULL, "<rest><acl><rule type=\"allow\" cn=\"alice\" url=\"whoami$\"/>"
                       "<rule type=\"deny\"/></acl></rest>");
    char response[4096];
    int fd;
    /* Signed by the configured CA: its CN passes the ACL's cn rule, classic and aco alike. */
    SSL *ssl = tls_connect_as("alice", &fd);
    ARK_ASSERT_EQ(
        tls_request(ssl, "GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n", response, sizeof(response)),
        200);
    ARK_ASSERT_STR_EQ(ark_net_http_body(response), "cn=alice;classic");
    ARK_ASSERT_EQ(
        tls_request(ssl, "GET /aco/whoami HTTP/1.1\r\nHost: x\r\n\r\n", response, sizeof(response)),
        200);
    ARK_ASSERT_STR_EQ(ark_net_http_body(response), "cn=alice;aco");
    tls_done(ssl, fd);
    /* No certificate (allowed by optional_no_ca): no CN, so the cn rule does not match. */
    ssl = tls_connect_as(NULL, &fd);
    ARK_ASSERT_EQ(
        tls_request(ssl, "GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n", response, sizeof(response)),
        403);
    tls_done(ssl, fd);
    /* A certificate from a CA the listener does not trust: the handshake is refused. */
    ssl = tls_connect_as("mallory", &fd);
    ARK_ASSERT_EQ(
        tls_request(ssl, "GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n", response, sizeof(response)), 0);
    tls_done(ssl, fd);
    listener_attributes = "";
    stop_server();
    char command[128];
    snprintf(command, sizeof(command), "rm -rf %s", pki);
    ARK_ASSERT_EQ(system(command), 0);
}
