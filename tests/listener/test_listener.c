/*
 * Listeners from the configuration: IPv4, IPv6 and unix sockets, inherited <config>,
 * connections spread over loop threads, clear configuration errors, EMFILE, TLS.
 */
#include "ark_net.h"
#include "ark_test.h"

#include <eventer/eventer.h>
#include <mtev_conf.h>
#include <mtev_listener.h>
#include <mtev_log.h>

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int loops_seen[16];

/* Echoes each read back prefixed with the connection's <config><greeting>. */
static int echo_callback(eventer_t e, int mask, void *closure, struct timeval *now)
{
    mtev_acceptor_closure_t *ac = closure;
    int loop = eventer_is_loop(pthread_self());
    if (loop >= 0 && loop < 16)
        __atomic_store_n(&loops_seen[loop], 1, __ATOMIC_RELEASE);
    char buffer[256];
    for (;;) {
        int got = eventer_read(e, buffer, sizeof(buffer), &mask);
        if (got < 0 && errno == EAGAIN)
            return mask;
        if (got <= 0) {
            eventer_remove_fde(e);
            eventer_close(e, &mask);
            mtev_acceptor_closure_free(ac);
            return 0;
        }
        char reply[512];
        const char *greeting = mtev_acceptor_closure_config(ac, "greeting");
        int length =
            snprintf(reply, sizeof(reply), "%s:%.*s", greeting ? greeting : "(none)", got, buffer);
        eventer_write(e, reply, (size_t)length, &mask);
    }
}

static void start(const char *xml)
{
    ARK_ASSERT_EQ(eventer_propset("concurrency", "3"), 0);
    mtev_conf_init("app");
    ARK_ASSERT_EQ(mtev_conf_load_string("test.conf", xml), 0);
    ARK_ASSERT_EQ(eventer_init(), 0);
    eventer_name_callback("echo", echo_callback);
}

static void stop(void)
{
    eventer_shutdown();
    eventer_cleanup();
    mtev_conf_unload();
}

static void expect_echo(int fd, const char *send, const char *expected)
{
    ARK_ASSERT_EQ(ark_net_send_str(fd, send), 0);
    char buffer[512];
    ark_net_read_until(fd, buffer, sizeof(buffer), expected);
    ARK_ASSERT_STR_EQ(buffer, expected);
}

ARK_TEST(listener_ipv4_echo_with_inherited_config)
{
    start("<app><listeners><config><greeting>outer</greeting></config>"
          "<listener type=\"echo\" address=\"127.0.0.1\" port=\"0\">"
          "<config><greeting>hi</greeting></config></listener>"
          "<listener type=\"echo\" address=\"127.0.0.1\" port=\"0\"/>"
          "</listeners></app>");
    ARK_ASSERT_EQ(mtev_listener_init("app"), 2);
    ARK_ASSERT_EQ(mtev_listener_count(), 2);
    ARK_ASSERT_STR_EQ(mtev_listener_get_type(0), "echo");
    int port = mtev_listener_get_port(0);
    ARK_ASSERT_GT(port, 0);
    int fd = ark_net_connect("127.0.0.1", port);
    ARK_ASSERT_GE(fd, 0);
    expect_echo(fd, "ping", "hi:ping");
    expect_echo(fd, "again", "hi:again");
    close(fd);
    /* The second listener inherits the outer <config>. */
    fd = ark_net_connect("127.0.0.1", mtev_listener_get_port(1));
    ARK_ASSERT_GE(fd, 0);
    expect_echo(fd, "x", "outer:x");
    close(fd);
    stop();
}

ARK_TEST(listener_ipv6_loopback)
{
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    if (probe < 0) {
        printf("# no IPv6 on this machine; skipped\n");
        return;
    }
    close(probe);
    start("<app><listeners><listener type=\"echo\" address=\"[::1]\" port=\"0\"/>"
          "</listeners></app>");
    int opened = mtev_listener_init("app");
    if (opened != 1) {
        printf("# ::1 cannot be bound here; skipped\n");
        stop();
        return;
    }
    int fd = ark_net_connect("::1", mtev_listener_get_port(0));
    ARK_ASSERT_GE(fd, 0);
    expect_echo(fd, "six", "(none):six");
    close(fd);
    stop();
}

ARK_TEST(listener_unix_socket_replaces_stale_file)
{
    char path[64];
    snprintf(path, sizeof(path), "/tmp/ark_listener_%d.sock", (int)getpid());
    /* A stale socket file from an earlier run must not stop the listener. */
    int stale = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    strcpy(address.sun_path, path);
    unlink(path);
    ARK_ASSERT_EQ(bind(stale, (struct sockaddr *)&address, sizeof(address)), 0);
    close(stale);
    char xml[256];
    snprintf(xml, sizeof(xml),
             "<app><listeners><listener type=\"echo\" address=\"%s\"/></listeners></app>", path);
    start(xml);
    ARK_ASSERT_EQ(mtev_listener_init("app"), 1);
    ARK_ASSERT_EQ(mtev_listener_get_port(0), 0);
    int fd = ark_net_connect_unix(path);
    ARK_ASSERT_GE(fd, 0);
    expect_echo(fd, "local", "(none):local");
    close(fd);
    mtev_listener_shutdown();
    /* Shutting down removes the socket file (from loop 0: give it a moment). */
    struct stat st;
    for (int i = 0; i < 2000 && stat(path, &st) == 0; i++)
        usleep(1000);
    ARK_ASSERT_NE(stat(path, &st), 0);
    stop();
}

ARK_TEST(listener_connections_spread_over_loop_threads)
{
    start("<app><listeners><listener type=\"echo\" address=\"127.0.0.1\" port=\"0\"/>"
          "</listeners></app>");
    ARK_ASSERT_EQ(mtev_listener_init("app"), 1);
    int fds[8];
    for (int i = 0; i < 8; i++) {
        fds[i] = ark_net_connect("127.0.0.1", mtev_listener_get_port(0));
        ARK_ASSERT_GE(fds[i], 0);
        expect_echo(fds[i], "n", "(none):n");
    }
    /* Three loops: connections go round-robin to loops 1 and 2 (0 runs the acceptor). */
    ARK_ASSERT(__atomic_load_n(&loops_seen[1], __ATOMIC_ACQUIRE));
    ARK_ASSERT(__atomic_load_n(&loops_seen[2], __ATOMIC_ACQUIRE));
    for (int i = 0; i < 8; i++)
        close(fds[i]);
    stop();
}

/* An aco listener type: replies "aco:" + what it read, until EOF; may simply return. */
static int aco_connections_done;
static void aco_echo(void)
{
    eventer_aco_t e = eventer_aco_arg();
    mtev_acceptor_closure_t *ac = eventer_aco_get_closure(e);
    const char *greeting = mtev_acceptor_closure_config(ac, "greeting");
    for (;;) {
        char buffer[128], reply[256];
        int got = eventer_aco_read(e, buffer, sizeof(buffer), NULL);
        if (got <= 0)
            break;
        int length =
            snprintf(reply, sizeof(reply), "aco %s:%.*s", greeting ? greeting : "-", got, buffer);
        if (eventer_aco_write(e, reply, (size_t)length, NULL) < 0)
            break;
    }
    eventer_aco_close(e);
    eventer_aco_free(e);
    __atomic_add_fetch(&aco_connections_done, 1, __ATOMIC_ACQ_REL);
}

ARK_TEST(listener_aco_function_gets_the_connection_in_a_co)
{
    mtev_listener_register_aco_function("aco_echo", aco_echo);
    start("<app><listeners><listener type=\"aco_echo\" address=\"127.0.0.1\" port=\"0\">"
          "<config><greeting>g</greeting></config></listener></listeners></app>");
    ARK_ASSERT_EQ(mtev_listener_init("app"), 1);
    int fds[4];
    for (int i = 0; i < 4; i++) {
        fds[i] = ark_net_connect("127.0.0.1", mtev_listener_get_port(0));
        ARK_ASSERT_GE(fds[i], 0);
    }
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 4; i++)
            expect_echo(fds[i], "x", "aco g:x");
    for (int i = 0; i < 4; i++)
        close(fds[i]);
    for (int i = 0; i < 5000 && __atomic_load_n(&aco_connections_done, __ATOMIC_ACQUIRE) < 4; i++)
        usleep(1000);
    ARK_ASSERT_EQ(__atomic_load_n(&aco_connections_done, __ATOMIC_ACQUIRE), 4);
    stop();
}

/* Captures mtev_error lines. */
static char captured[4096];
static pthread_mutex_t captured_lock = PTHREAD_MUTEX_INITIALIZER;
static void capture(void *closure, mtev_log_stream_t stream, const char *line, size_t length)
{
    pthread_mutex_lock(&captured_lock);
    strncat(captured, line,
            length < sizeof(captured) - strlen(captured) - 1
                ? length
                : sizeof(captured) - strlen(captured) - 1);
    pthread_mutex_unlock(&captured_lock);
}

ARK_TEST(listener_configuration_errors_name_file_line_and_problem)
{
    start("<app><listeners>\n"
          "<listener address=\"127.0.0.1\" port=\"0\"/>\n"
          "<listener type=\"echo\" address=\"127.0.0.1\" port=\"99999\"/>\n"
          "<listener type=\"nosuch\" address=\"127.0.0.1\" port=\"0\"/>\n"
          "<listener type=\"echo\" address=\"not-an-address\" port=\"0\"/>\n"
          "<listener type=\"echo\" address=\"127.0.0.1\"/>\n"
          "<listener type=\"echo\" address=\"127.0.0.1\" port=\"0\"/>\n"
          "</listeners></app>");
    mtev_log_stream_set_writer(mtev_error, capture, NULL);
    ARK_ASSERT_EQ(mtev_listener_init("app"), -1);
    mtev_log_stream_set_writer(mtev_error, NULL, NULL);
    /* The good one still opened. */
    ARK_ASSERT_EQ(mtev_listener_count(), 1);
    ARK_ASSERT_MSG(strstr(captured, "test.conf:2: listener: the type attribute is missing"), "%s",
                   captured);
    ARK_ASSERT_MSG(strstr(captured, "test.conf:3: listener echo: port \"99999\""), "%s", captured);
    ARK_ASSERT_MSG(strstr(captured, "test.conf:4: listener type \"nosuch\" names no callback"),
                   "%s", captured);
    ARK_ASSERT_MSG(strstr(captured, "test.conf:5: listener: address \"not-an-address\""), "%s",
                   captured);
    ARK_ASSERT_MSG(strstr(captured, "test.conf:6: listener at \"127.0.0.1\": a port is required"),
                   "%s", captured);
    stop();
}

ARK_TEST(listener_bind_conflict_is_reported)
{
    start("<app><listeners><listener type=\"echo\" address=\"127.0.0.1\" port=\"0\"/>"
          "</listeners></app>");
    ARK_ASSERT_EQ(mtev_listener_init("app"), 1);
    char xml[256];
    snprintf(xml, sizeof(xml),
             "<app><listeners><listener type=\"echo\" address=\"127.0.0.1\" port=\"%d\"/>"
             "</listeners></app>",
             mtev_listener_get_port(0));
    ARK_ASSERT_EQ(mtev_conf_load_string("second.conf", xml), 0);
    mtev_log_stream_set_writer(mtev_error, capture, NULL);
    ARK_ASSERT_EQ(mtev_listener_init("app"), -1);
    mtev_log_stream_set_writer(mtev_error, NULL, NULL);
    ARK_ASSERT_MSG(strstr(captured, "second.conf:1: listener echo: cannot bind 127.0.0.1"), "%s",
                   captured);
    ARK_ASSERT_MSG(strstr(captured, "Address already in use"), "%s", captured);
    stop();
}

ARK_TEST(listener_survives_running_out_of_descriptors)
{
    start("<app><listeners><listener type=\"echo\" address=\"127.0.0.1\" port=\"0\"/>"
          "</listeners></app>");
    ARK_ASSERT_EQ(mtev_listener_init("app"), 1);
    int port = mtev_listener_get_port(0);
    /* Fill the descriptor table, keeping a few for the client side. */
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    struct rlimit lowered = {256, limit.rlim_max};
    ARK_ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &lowered), 0);
    int fillers[256], filled = 0;
    while (filled < 256 && (fillers[filled] = open("/dev/null", O_RDONLY)) >= 0)
        filled++;
    /* One free slot, for the client side of each attempt. */
    close(fillers[--filled]);
    mtev_log_stream_set_writer(mtev_error, capture, NULL);
    /* Each connection is taken off the backlog and closed: the client sees EOF. */
    for (int i = 0; i < 3; i++) {
        int fd = ark_net_connect("127.0.0.1", port);
        ARK_ASSERT_GE(fd, 0);
        ARK_ASSERT(ark_net_peer_closed(fd));
        close(fd);
    }
    mtev_log_stream_set_writer(mtev_error, NULL, NULL);
    ARK_ASSERT_MSG(strstr(captured, "out of file descriptors"), "%s", captured);
    for (int i = 0; i < filled; i++)
        close(fillers[i]);
    /* Descriptors are back: service resumes. */
    int fd = ark_net_connect("127.0.0.1", port);
    ARK_ASSERT_GE(fd, 0);
    expect_echo(fd, "back", "(none):back");
    close(fd);
    stop();
}

/* ---- TLS ---- */

ARK_TEST(listener_tls_echo)
{
    char directory[] = "/tmp/ark_tls_XXXXXX";
    ARK_ASSERT(mkdtemp(directory));
    ark_net_make_certificate(directory);
    char xml[1024];
    snprintf(xml, sizeof(xml),
             "<app><listeners><listener type=\"echo\" address=\"127.0.0.1\" port=\"0\" "
             "ssl=\"on\"><sslconfig><certificate_file>%s/cert.pem</certificate_file>"
             "<key_file>%s/key.pem</key_file></sslconfig></listener></listeners></app>",
             directory, directory);
    start(xml);
    ARK_ASSERT_EQ(mtev_listener_init("app"), 1);
    int fd = ark_net_connect("127.0.0.1", mtev_listener_get_port(0));
    ARK_ASSERT_GE(fd, 0);
    SSL_CTX *context = SSL_CTX_new(TLS_client_method());
    SSL *ssl = SSL_new(context);
    SSL_set_fd(ssl, fd);
    ARK_ASSERT_EQ(SSL_connect(ssl), 1);
    ARK_ASSERT_EQ(SSL_write(ssl, "secret", 6), 6);
    char buffer[64] = {0};
    int got = 0;
    while (got < 13) {
        int n = SSL_read(ssl, buffer + got, (int)sizeof(buffer) - 1 - got);
        ARK_ASSERT_GT(n, 0);
        got += n;
    }
    ARK_ASSERT_STR_EQ(buffer, "(none):secret");
    SSL_shutdown(ssl);
    SSL_free(ssl);
    SSL_CTX_free(context);
    close(fd);
    /* The server closes on EOF; wait for it before stopping so its TLS session is freed. */
    usleep(100000);
    stop();
    char command[256];
    snprintf(command, sizeof(command), "rm -rf %s", directory);
    ARK_ASSERT_EQ(system(command), 0);
}

ARK_TEST(listener_tls_missing_key_is_a_clear_error)
{
    start("<app><listeners><listener type=\"echo\" address=\"127.0.0.1\" port=\"0\" "
          "ssl=\"on\"><sslconfig><certificate_file>/nonexistent.pem</certificate_file>"
          "</sslconfig></listener></listeners></app>");
    mtev_log_stream_set_writer(mtev_error, capture, NULL);
    ARK_ASSERT_EQ(mtev_listener_init("app"), -1);
    mtev_log_stream_set_writer(mtev_error, NULL, NULL);
    ARK_ASSERT_MSG(strstr(captured, "test.conf:1: listener TLS: <sslconfig><key_file> is missing"),
                   "%s", captured);
    stop();
}

ARK_TEST(listener_tls_unreadable_ca_chain_is_a_clear_error)
{
    char directory[] = "/tmp/ark_tls_ca_XXXXXX";
    ARK_ASSERT(mkdtemp(directory));
    ark_net_make_certificate(directory);
    char xml[1024];
    snprintf(xml, sizeof(xml),
             "<app><listeners><listener type=\"echo\" address=\"127.0.0.1\" port=\"0\" "
             "ssl=\"on\"><sslconfig><certificate_file>%s/cert.pem</certificate_file>"
             "<key_file>%s/key.pem</key_file><ca_chain>%s/no-such-ca.pem</ca_chain>"
             "</sslconfig></listener></listeners></app>",
             directory, directory, directory);
    start(xml);
    mtev_log_stream_set_writer(mtev_error, capture, NULL);
    ARK_ASSERT_EQ(mtev_listener_init("app"), -1);
    mtev_log_stream_set_writer(mtev_error, NULL, NULL);
    char expected[128];
    snprintf(expected, sizeof(expected), "test.conf:1: listener TLS: %s/no-such-ca.pem", directory);
    ARK_ASSERT_MSG(strstr(captured, expected), "%s", captured);
    stop();
    char command[256];
    snprintf(command, sizeof(command), "rm -rf %s", directory);
    ARK_ASSERT_EQ(system(command), 0);
}
