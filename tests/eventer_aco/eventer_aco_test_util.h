/* Helpers shared by the eventer ACO tests (on top of the eventer tests' helpers). */
#ifndef EVENTER_ACO_TEST_UTIL_H
#define EVENTER_ACO_TEST_UTIL_H

#include "eventer_test_util.h"

#include <netinet/in.h>

/* A connected AF_UNIX stream pair; pair[0] is non-blocking (for the eventer). */
void test_socketpair(int pair[2]);
/* Inside a co: a new fd event on `fd` converted for the calling co. */
eventer_aco_t test_aco_event(int fd);
/* Microseconds of CLOCK_MONOTONIC. */
uint64_t test_now_us(void);
/* 127.0.0.1:port. */
struct sockaddr_in test_loopback(int port);
/* A non-blocking listening socket on 127.0.0.1, an ephemeral port stored in *port. */
int test_listen(int *port, int backlog);
/* A blocking client connected to 127.0.0.1:port. */
int test_connect_blocking(int port);
/* Writes `text` on blocking `fd` and asserts the same bytes come back. */
void test_exchange(int fd, const char *text);
/* Runs `function` in a child process and asserts it aborts with `needle` on stderr. */
void test_expect_abort(void (*function)(void *), const char *needle);
/*
 * In a child process: starts the eventer (2 loops), runs `body` as a co and asserts the child
 * aborts with `needle` on stderr (the body is expected to misuse the API).
 */
void test_expect_abort_in_co(void (*body)(void), const char *needle);

/*
 * A TCP server on 127.0.0.1: its listener's classic callback accepts every connection and
 * registers an fd event calling `per_connection` (closure: the server) on a loop chosen by
 * descriptor. Stop the eventer before closing listen_fd.
 */
struct echo_server {
    int listen_fd;
    int port;
    eventer_func_t per_connection;
    int accepted;
    int finished;
};
void test_echo_server_start(struct echo_server *server, eventer_func_t per_connection);

#endif
