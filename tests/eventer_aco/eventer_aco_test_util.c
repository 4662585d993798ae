/* Helpers shared by the eventer ACO tests. */
#include "eventer_aco_test_util.h"

#include <arpa/inet.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void test_socketpair(int pair[2])
{
    ARK_ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    ARK_ASSERT_EQ(eventer_set_fd_nonblocking(pair[0]), 0);
}

static int unused_callback(eventer_t e, int mask, void *closure, struct timeval *now)
{
    return 0;
}

eventer_aco_t test_aco_event(int fd)
{
    eventer_t e = eventer_alloc_fd(unused_callback, NULL, fd, EVENTER_READ);
    ARK_ASSERT(e != NULL);
    return eventer_set_eventer_aco(e);
}

uint64_t test_now_us(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
}

struct sockaddr_in test_loopback(int port)
{
    struct sockaddr_in address;
    memset(&address, 0, sizeof(address));
    address.sin_family = AF_INET;
    address.sin_port = htons((uint16_t)port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return address;
}

int test_listen(int *port, int backlog)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ARK_ASSERT(fd >= 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in address = test_loopback(0);
    ARK_ASSERT_EQ(bind(fd, (struct sockaddr *)&address, sizeof(address)), 0);
    ARK_ASSERT_EQ(listen(fd, backlog), 0);
    socklen_t length = sizeof(address);
    ARK_ASSERT_EQ(getsockname(fd, (struct sockaddr *)&address, &length), 0);
    *port = ntohs(address.sin_port);
    return fd;
}

int test_connect_blocking(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ARK_ASSERT(fd >= 0);
    struct sockaddr_in address = test_loopback(port);
    ARK_ASSERT_EQ(connect(fd, (struct sockaddr *)&address, sizeof(address)), 0);
    return fd;
}

void test_exchange(int fd, const char *text)
{
    size_t length = strlen(text);
    ARK_ASSERT_EQ(write(fd, text, length), (ssize_t)length);
    char buffer[256] = {0};
    size_t got = 0;
    while (got < length) {
        ssize_t n = read(fd, buffer + got, length - got);
        ARK_ASSERT_MSG(n > 0, "read returned %zd", n);
        got += (size_t)n;
    }
    ARK_ASSERT(memcmp(buffer, text, length) == 0);
}

static void expect_abort_with(void (*function)(void *), void *argument, const char *needle)
{
    char text[8192];
    int status = ark_test_run_in_child(function, argument, text, sizeof(text));
    ARK_ASSERT_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
                   "expected an abort with \"%s\", status %d, stderr: %s", needle, status, text);
    ARK_ASSERT_MSG(strstr(text, needle) != NULL, "expected \"%s\" in: %s", needle, text);
}

void test_expect_abort(void (*function)(void *), const char *needle)
{
    expect_abort_with(function, NULL, needle);
}

/* A function pointer may not travel as a void *, so the child gets it in a struct. */
struct co_body {
    void (*body)(void);
};

static void start_body_then_wait(void *argument)
{
    const struct co_body *co = argument;
    test_eventer_start(2);
    static int never;
    eventer_aco_start(co->body, NULL);
    test_wait_for_count(&never, 1, "misuse never aborted");
}

void test_expect_abort_in_co(void (*body)(void), const char *needle)
{
    struct co_body co = {body};
    expect_abort_with(start_body_then_wait, &co, needle);
}

static int accept_connections(eventer_t e, int mask, void *closure, struct timeval *now)
{
    struct echo_server *server = closure;
    for (;;) {
        int fd = eventer_accept(e, NULL, NULL, &mask);
        if (fd < 0)
            return errno == EAGAIN ? EVENTER_READ | EVENTER_EXCEPTION : 0;
        ARK_ASSERT_EQ(eventer_set_fd_nonblocking(fd), 0);
        eventer_t connection =
            eventer_alloc_fd(server->per_connection, server, fd, EVENTER_READ | EVENTER_EXCEPTION);
        eventer_set_owner(connection, eventer_choose_owner(fd));
        test_increment(&server->accepted);
        eventer_add(connection);
    }
}

void test_echo_server_start(struct echo_server *server, eventer_func_t per_connection)
{
    server->per_connection = per_connection;
    server->listen_fd = test_listen(&server->port, 1024);
    eventer_t listener = eventer_alloc_fd(accept_connections, server, server->listen_fd,
                                          EVENTER_READ | EVENTER_EXCEPTION);
    eventer_set_owner(listener, eventer_choose_owner(1));
    eventer_add(listener);
}
