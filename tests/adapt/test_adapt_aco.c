/*
 * Co-routines: adapter transactions running as co-routines on the owner loop
 * (ecap_host_xaction_run_co), the aco sample adapter against a lookup service on loopback
 * (blocking style, timeouts), the host's blocking-style chain helper for co-routines, and
 * the 10k stress through the aco adapter.
 */
#include "adapt_test_util.h"

#include "eventer/eventer_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ACO_URI       "ecap://arkenstone/adapters/aco"
#define PASSTHRU_URI  "ecap://arkenstone/adapters/passthru"
#define MODIFYING_URI "ecap://arkenstone/adapters/modifying"
#define ASYNC_URI     "ecap://arkenstone/adapters/async"

/* ---- a tiny lookup service on 127.0.0.1: "BLOCK" for URIs containing "blocked" ---- */

struct lookup_server {
    int fd;
    int port;
    int stop;    /* atomic */
    int served;  /* atomic */
    int slow_ms; /* URIs containing "slow" are answered this late */
    pthread_t thread;
};

static void *serve(void *argument)
{
    struct lookup_server *server = argument;
    while (!test_load(&server->stop)) {
        int client = accept(server->fd, NULL, NULL);
        if (client < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            break;
        }
        char line[2100];
        size_t length = 0;
        while (length < sizeof(line) - 1 && !memchr(line, '\n', length)) {
            ssize_t n = read(client, line + length, sizeof(line) - 1 - length);
            if (n <= 0)
                break;
            length += (size_t)n;
        }
        line[length] = '\0';
        if (strstr(line, "slow") && server->slow_ms)
            test_sleep_ms(server->slow_ms);
        const char *answer = strstr(line, "blocked") ? "BLOCK\n" : "ALLOW\n";
        /* Counted before answering: the test checks the count as soon as its run finished. */
        test_increment(&server->served);
        if (write(client, answer, strlen(answer)) < 0) {
            /* the adapter gave up (timeout): fine */
        }
        close(client);
    }
    return NULL;
}

static void server_start(struct lookup_server *server, int slow_ms)
{
    memset(server, 0, sizeof(*server));
    server->slow_ms = slow_ms;
    server->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ARK_ASSERT(server->fd >= 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = 0};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ARK_ASSERT_EQ(bind(server->fd, (struct sockaddr *)&address, sizeof(address)), 0);
    ARK_ASSERT_EQ(listen(server->fd, 1024), 0);
    socklen_t length = sizeof(address);
    ARK_ASSERT_EQ(getsockname(server->fd, (struct sockaddr *)&address, &length), 0);
    server->port = ntohs(address.sin_port);
    ARK_ASSERT_EQ(pthread_create(&server->thread, NULL, serve, server), 0);
}

static void server_stop(struct lookup_server *server)
{
    __atomic_store_n(&server->stop, 1, __ATOMIC_RELEASE);
    shutdown(server->fd, SHUT_RDWR);
    pthread_join(server->thread, NULL);
    close(server->fd);
}

static ecap_service_t *aco_service(struct lookup_server *server, const char *timeout_ms,
                                   const char *on_error)
{
    char lookup[64];
    snprintf(lookup, sizeof(lookup), "127.0.0.1:%d", server->port);
    struct ecap_option options[] = {
        {"lookup", lookup}, {"timeout_ms", timeout_ms}, {"on_error", on_error}};
    return adapt_test_service("aco", ACO_URI, options, 3);
}

static void wait_for_no_coroutines(void)
{
    for (int waited = 0; waited < 20000; waited++) {
        eventer_aco_stats_t stats;
        eventer_aco_get_stats(&stats);
        if (stats.live == 0)
            return;
        test_sleep_ms(1);
    }
    ark_test_fail(__FILE__, __LINE__, "co-routines still running");
}

ARK_TEST(aco_adapter_blocks_urls_the_lookup_service_lists)
{
    struct lookup_server server;
    server_start(&server, 0);
    adapt_test_start(2);
    ecap_service_t *service = aco_service(&server, "2000", "allow");
    ARK_ASSERT(!ecap_service_is_async(service)); /* no polling: it waits in co-routines */
    const char *heads[] = {"GET http://shop.test/blocked/page HTTP/1.1\r\nHost: shop.test\r\n\r\n",
                           "GET http://shop.test/fine HTTP/1.1\r\nHost: shop.test\r\n\r\n"};
    for (int i = 0; i < 2; i++) {
        struct adapt_run run = {.services = {service},
                                .service_count = 1,
                                .head = heads[i],
                                .loop = i,
                                .meta_name = "X-Ecap-Lookup"};
        adapt_run(&run);
        ARK_ASSERT_EQ(run.outcome, i == 0 ? ECAP_OUTCOME_BLOCKED : ECAP_OUTCOME_VIRGIN);
        ARK_ASSERT_STR_EQ(run.meta_value, i == 0 ? "block" : "allow");
        adapt_run_release(&run);
    }
    ARK_ASSERT_EQ(test_load(&server.served), 2);
    wait_for_no_coroutines();
    adapt_test_stop();
    server_stop(&server);
}

ARK_TEST(aco_adapter_lookup_timeout_applies_the_error_policy)
{
    struct lookup_server server;
    server_start(&server, 400);
    adapt_test_start(2);
    ecap_service_t *service = aco_service(&server, "50", "block");
    struct adapt_run run = {.services = {service},
                            .service_count = 1,
                            .head = "GET http://slow.test/x HTTP/1.1\r\nHost: slow.test\r\n\r\n",
                            .meta_name = "X-Ecap-Lookup"};
    adapt_run(&run);
    ARK_ASSERT_STR_EQ(run.meta_value, "timeout");
    /* The lookup would allow it, but it answers after the 50 ms timeout: on_error=block. */
    ARK_ASSERT_EQ(run.outcome, ECAP_OUTCOME_BLOCKED);
    adapt_run_release(&run);
    wait_for_no_coroutines();
    adapt_test_stop();
    server_stop(&server);
    /* A bad option names itself. */
    adapt_test_start(2);
    ARK_ASSERT_EQ(ecap_module_load(adapt_test_module("aco")), ECAP_OK);
    struct ecap_option bad[] = {{"lookup", "localhost"}};
    ARK_ASSERT_EQ(ecap_service_configure(ecap_service_find(ACO_URI), bad, 1), ECAP_E_BAD_OPTION);
    ARK_ASSERT(strstr(ecap_host_last_error(), "lookup=\"localhost\"") != NULL);
    adapt_test_stop();
}

/* ---- run_co with a service defined here ---- */

static int co_checks_failed;     /* atomic */
static int co_finished;          /* atomic */
static int co_sleeping;          /* atomic */
static int co_status_after_stop; /* atomic */
static pthread_t co_owner;

/* Shared by the host side (until stop) and the co-routine (until it returns). */
struct co_state {
    ecap_host_xaction_t *hostx;
    int stopped;
    int references;
    int hold; /* the co-routine waits until stopped (the cancelling case) */
};

static void co_release(struct co_state *x)
{
    if (--x->references == 0)
        free(x);
}

static void co_body(ecap_host_xaction_t *hostx, void *argument)
{
    struct co_state *x = argument;
    if (!eventer_is_aco(NULL) || !pthread_equal(pthread_self(), co_owner) || hostx != x->hostx)
        test_increment(&co_checks_failed);
    struct timeval pause = {0, 5000};
    test_increment(&co_sleeping);
    /* The loop runs meanwhile; in the cancelling case the program stops us while we wait. */
    for (int i = 0; i < 2000 && (i < 2 || (x->hold && !x->stopped)); i++)
        eventer_aco_sleep(&pause);
    if (!pthread_equal(pthread_self(), co_owner))
        test_increment(&co_checks_failed);
    int status = ecap_host_xaction_use_virgin(hostx);
    if (x->stopped)
        __atomic_store_n(&co_status_after_stop, status, __ATOMIC_RELEASE);
    else if (status != ECAP_OK)
        test_increment(&co_checks_failed);
    co_release(x);
    test_increment(&co_finished);
}

static int co_hold_next; /* the next transaction holds */

static void co_start(void *xaction)
{
    struct co_state *x = xaction;
    co_owner = pthread_self();
    x->hold = co_hold_next;
    x->references++;
    ARK_ASSERT_EQ(ecap_host_xaction_run_co(x->hostx, co_body, x), ECAP_OK);
}

static void co_stop(void *xaction)
{
    struct co_state *x = xaction;
    x->stopped = 1;
    co_release(x);
}

static const struct ecap_xaction_methods co_xaction_methods = {
    .version = 1, .start = co_start, .stop = co_stop};

static const char *co_uri(void *service)
{
    return "ecap://test/co";
}

static int co_make(void *service, ecap_host_xaction_t *hostx,
                   const struct ecap_xaction_methods **methods, void **xaction)
{
    struct co_state *x = calloc(1, sizeof(*x));
    x->hostx = hostx;
    x->references = 1;
    *methods = &co_xaction_methods;
    *xaction = x;
    return ECAP_OK;
}

static const struct ecap_service_methods co_service_methods = {
    .version = 1, .uri = co_uri, .make_xaction = co_make};

static void cancel_run(void *argument)
{
    struct adapt_run *run = argument;
    ecap_chain_cancel(run->chain);
}

ARK_TEST(coroutine_transaction_runs_on_its_owner_loop_and_survives_stop)
{
    adapt_test_start(2);
    ARK_ASSERT_EQ(ecap_host_register_service(ecap_host(), &co_service_methods, NULL), ECAP_OK);
    ecap_service_t *service = ecap_service_find("ecap://test/co");
    ARK_ASSERT_EQ(ecap_service_start(service), ECAP_OK);
    struct adapt_run run = {.services = {service},
                            .service_count = 1,
                            .head = "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
                            .loop = 1};
    adapt_run(&run);
    ARK_ASSERT_EQ(run.outcome, ECAP_OUTCOME_VIRGIN);
    adapt_run_release(&run);
    ARK_ASSERT_EQ(test_load(&co_finished), 1);
    /* Cancelled while the co-routine waits: it resumes later and gets ECAP_E_STOPPED. */
    co_hold_next = 1;
    struct adapt_run cancelled = {.services = {service},
                                  .service_count = 1,
                                  .head = "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
                                  .loop = 1};
    adapt_run_start(&cancelled);
    test_wait_for_count(&co_sleeping, 2, "the second co-routine to wait");
    adapt_test_on_loop(1, cancel_run, &cancelled);
    test_wait_for_count(&cancelled.done, 1, "the cancelled chain");
    ARK_ASSERT_EQ(cancelled.outcome, ECAP_OUTCOME_CANCELLED);
    adapt_run_release(&cancelled);
    test_wait_for_count(&co_finished, 2, "the cancelled transaction's co-routine");
    ARK_ASSERT_EQ(test_load(&co_status_after_stop), ECAP_E_STOPPED);
    ARK_ASSERT_EQ(test_load(&co_checks_failed), 0);
    adapt_test_stop();
}

/* ---- the blocking-style chain helper ---- */

struct helper_case {
    ecap_service_t *services[3];
    size_t count;
    const char *head;
    const char *body;
    struct timeval timeout;
    size_t body_limit; /* 0: ecap_chain_run_aco's default */
    int status;
    struct ecap_chain_result result;
    int done; /* atomic */
};

static void helper_co(void)
{
    struct helper_case *c = eventer_aco_arg();
    size_t head_length;
    ecap_message_t *virgin = ecap_message_parse(c->head, strlen(c->head), &head_length);
    size_t body_size = c->body ? strlen(c->body) : 0;
    if (c->body_limit)
        c->status = ecap_chain_run_aco_limited(c->services, c->count, virgin, NULL, c->body,
                                               body_size, &c->timeout, c->body_limit, &c->result);
    else
        c->status = ecap_chain_run_aco(c->services, c->count, virgin, NULL, c->body, body_size,
                                       &c->timeout, &c->result);
    test_increment(&c->done);
}

static void start_helper(void *argument)
{
    eventer_aco_start_on(pthread_self(), helper_co, argument, 0, EVENTER_ACO_MAY_RETURN);
}

ARK_TEST(chain_run_aco_waits_in_blocking_style_for_decision_and_body)
{
    adapt_test_start(2);
    ecap_service_t *passthru = adapt_test_service("passthru", PASSTHRU_URI, NULL, 0);
    struct ecap_option options[] = {{"victim", "red"}, {"replacement", "green"}};
    ecap_service_t *modifying = adapt_test_service("modifying", MODIFYING_URI, options, 2);
    static char body[300001];
    for (size_t i = 0; i < sizeof(body) - 1; i++)
        body[i] = "red fox "[i % 8];
    static struct helper_case c;
    c = (struct helper_case){.services = {passthru, modifying},
                             .count = 2,
                             .head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                             .body = body,
                             .timeout = {20, 0}};
    adapt_test_on_loop(1, start_helper, &c);
    test_wait_for_count(&c.done, 1, "the co-routine's chain");
    ARK_ASSERT_EQ(c.status, ECAP_OK);
    ARK_ASSERT_EQ(c.result.outcome, ECAP_OUTCOME_ADAPTED);
    ARK_ASSERT_EQ(c.result.body_state, ECAP_BODY_END);
    ARK_ASSERT_EQ(c.result.body_size, (sizeof(body) - 1) / 8 * 10);
    ARK_ASSERT(memcmp(c.result.body, "green fox green fox ", 20) == 0);
    ARK_ASSERT(c.result.message != NULL);
    ARK_ASSERT_EQ(ecap_message_status_code(c.result.message), 200);
    ecap_chain_result_release(&c.result);

    /* A decision that comes too late: the chain is cancelled at the timeout. */
    struct ecap_option slow[] = {{"delay_ms", "3000"}};
    ecap_service_t *async = adapt_test_service("async", ASYNC_URI, slow, 1);
    c = (struct helper_case){.services = {async},
                             .count = 1,
                             .head = "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
                             .timeout = {0, 50000}};
    adapt_test_on_loop(1, start_helper, &c);
    test_wait_for_count(&c.done, 1, "the co-routine's chain to time out");
    ARK_ASSERT_EQ(c.status, ECAP_E_TIMEOUT);
    ARK_ASSERT_EQ(c.result.outcome, ECAP_OUTCOME_CANCELLED);
    ARK_ASSERT(c.result.message == NULL);
    ecap_chain_result_release(&c.result);

    /* Outside a co-routine it refuses (and frees the message). */
    size_t head_length;
    ecap_message_t *virgin = ecap_message_parse("GET / HTTP/1.1\r\n\r\n", 18, &head_length);
    struct ecap_chain_result result;
    ARK_ASSERT_EQ(ecap_chain_run_aco(&passthru, 1, virgin, NULL, NULL, 0, NULL, &result),
                  ECAP_E_WRONG_THREAD);
    wait_for_no_coroutines();
    adapt_test_stop();
}

ARK_TEST(chain_run_aco_refuses_a_final_body_over_its_limit)
{
    adapt_test_start(2);
    ecap_service_t *passthru = adapt_test_service("passthru", PASSTHRU_URI, NULL, 0);
    static char body[200001];
    memset(body, 'b', sizeof(body) - 1);
    static struct helper_case c;
    const char *head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    /* Exactly at the limit: the whole body comes back. */
    c = (struct helper_case){.services = {passthru},
                             .count = 1,
                             .head = head,
                             .body = body,
                             .timeout = {20, 0},
                             .body_limit = sizeof(body) - 1};
    adapt_test_on_loop(1, start_helper, &c);
    test_wait_for_count(&c.done, 1, "the chain at its limit");
    ARK_ASSERT_EQ(c.status, ECAP_OK);
    ARK_ASSERT_EQ(c.result.body_state, ECAP_BODY_END);
    ARK_ASSERT_EQ(c.result.body_size, sizeof(body) - 1);
    ecap_chain_result_release(&c.result);

    /* One byte less allowed: refused with a status and a reason, the chain cancelled. */
    c = (struct helper_case){.services = {passthru},
                             .count = 1,
                             .head = head,
                             .body = body,
                             .timeout = {20, 0},
                             .body_limit = sizeof(body) - 2};
    adapt_test_on_loop(1, start_helper, &c);
    test_wait_for_count(&c.done, 1, "the chain over its limit");
    ARK_ASSERT_EQ(c.status, ECAP_E_TOO_LARGE);
    ARK_ASSERT(c.result.body == NULL);
    ARK_ASSERT_EQ(c.result.body_size, 0);
    ARK_ASSERT_EQ(c.result.body_state, ECAP_BODY_TRUNCATED);
    ARK_ASSERT(c.result.message == NULL);
    ARK_ASSERT(strstr(c.result.reason, "exceeds the limit of 199999 bytes") != NULL);
    ecap_chain_result_release(&c.result);
    struct ecap_service_stats stats;
    ecap_service_get_stats(passthru, &stats);
    ARK_ASSERT_EQ(stats.live_xactions, 0);
    wait_for_no_coroutines();
    adapt_test_stop();
}

ARK_TEST_TIMEOUT(stress_10k_aco_transactions_random_stops_two_loops, 300)
{
    struct lookup_server server;
    server_start(&server, 0);
    adapt_test_start(2);
    int blocked = 0;
    adapt_stress_run(aco_service(&server, "5000", "allow"),
                     "GET http://stress.test/blocked HTTP/1.1\r\nHost: stress.test\r\n\r\n",
                     &blocked);
    /* Every transaction that was not cancelled before its lookup answered was blocked. */
    ARK_ASSERT(blocked > 0);
    ARK_ASSERT(test_load(&server.served) >= blocked);
    mtevL(mtev_notice, "aco stress: %d blocked after a lookup, %d lookups served\n", blocked,
          test_load(&server.served));
    server_stop(&server);
}
