/*
 * Many concurrent co-routine connections echoing over loopback TCP: an aco acceptor per
 * listening port starts one co per connection; a client process opens every connection
 * first, so that all of them are alive (and their cos parked) at once, then echoes twice on
 * each and closes them all.
 *
 * The issue asks for 100,000 connections. Both ends need a descriptor per connection, so the
 * count is bounded by RLIMIT_NOFILE's hard limit (the client runs in its own process, with
 * its own descriptor table): the test raises the soft limit to the hard one and, when that
 * is too low for 100,000, runs as many as fit and says so. Under ThreadSanitizer, which keeps
 * a large state per co-routine (fiber), it runs 2,000.
 */
#include "eventer_aco_test_util.h"

#include <stdio.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define WANTED_CONNECTIONS 100000
#define PORTS              4
#define MESSAGE_LENGTH     8

struct many_server {
    int listen_fds[PORTS];
    int accepted;
    int finished;
    int bad_echo;
};

static struct many_server server;

static void connection_co(void)
{
    eventer_t classic = eventer_aco_arg();
    eventer_aco_t e = eventer_set_eventer_aco(classic);
    char buffer[MESSAGE_LENGTH * 2];
    for (;;) {
        int got = eventer_aco_read(e, buffer, sizeof(buffer), NULL);
        if (got <= 0)
            break;
        if (eventer_aco_write(e, buffer, (size_t)got, NULL) != got) {
            test_increment(&server.bad_echo);
            break;
        }
    }
    eventer_aco_close(e);
    eventer_aco_free(e);
    test_increment(&server.finished);
    aco_exit();
}

static int unused_callback(eventer_t e, int mask, void *closure, struct timeval *now)
{
    return 0;
}

static void acceptor_co(void)
{
    int *listen_fd = eventer_aco_arg();
    eventer_aco_t listener = test_aco_event(*listen_fd);
    for (;;) {
        int fd = eventer_aco_accept(listener, NULL, NULL, NULL);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                struct timeval pause = {0, 1000};
                eventer_aco_sleep(&pause);
                continue;
            }
            break;
        }
        eventer_set_fd_nonblocking(fd);
        test_increment(&server.accepted);
        eventer_t connection = eventer_alloc_fd(unused_callback, NULL, fd, EVENTER_READ);
        eventer_aco_start(connection_co, connection);
    }
    eventer_aco_free(listener);
    aco_exit();
}

/* ---- the client process ---- */

static int read_fully(int fd, char *buffer, size_t length)
{
    size_t got = 0;
    while (got < length) {
        ssize_t n = read(fd, buffer + got, length - got);
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

/* Returns the number of failures; reports progress on `report`, waits on `go`. */
static int run_client(const int *ports, int count, int report, int go)
{
    int *fds = calloc((size_t)count, sizeof(int));
    int failures = 0;
    for (int i = 0; i < count; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in address = test_loopback(ports[i % PORTS]);
        if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&address, sizeof(address)) < 0) {
            fprintf(stderr, "# client: connection %d: %s\n", i, strerror(errno));
            free(fds);
            return count;
        }
    }
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < count; i++) {
            char message[MESSAGE_LENGTH + 1];
            snprintf(message, sizeof(message), "%c%07d", 'a' + round, i % 10000000);
            if (write(fds[i], message, MESSAGE_LENGTH) != MESSAGE_LENGTH)
                failures++;
        }
        for (int i = 0; i < count; i++) {
            char expected[MESSAGE_LENGTH + 1], reply[MESSAGE_LENGTH];
            snprintf(expected, sizeof(expected), "%c%07d", 'a' + round, i % 10000000);
            if (read_fully(fds[i], reply, MESSAGE_LENGTH) < 0 ||
                memcmp(reply, expected, MESSAGE_LENGTH) != 0)
                failures++;
        }
        if (round == 0) {
            /* Every connection is open and has echoed once: let the server look. */
            char byte = 1;
            if (write(report, &byte, 1) != 1 || read(go, &byte, 1) != 1)
                failures++;
        }
    }
    for (int i = 0; i < count; i++)
        close(fds[i]);
    free(fds);
    return failures;
}

static int connection_count(void)
{
    struct rlimit limit;
    ARK_ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
    if (limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        ARK_ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &limit), 0);
    }
    long fit = (long)limit.rlim_cur - 128;
    int count = WANTED_CONNECTIONS;
#ifdef ARK_TSAN
    count = 2000;
    fprintf(stderr, "# ThreadSanitizer build: %d connections instead of %d\n", count,
            WANTED_CONNECTIONS);
#endif
    if (fit < count) {
        fprintf(stderr,
                "# RLIMIT_NOFILE hard limit is %llu (raising it needs CAP_SYS_RESOURCE): %ld "
                "connections instead of %d\n",
                (unsigned long long)limit.rlim_max, fit, count);
        count = (int)fit;
    }
    return count;
}

ARK_TEST_TIMEOUT(many_concurrent_co_connections_echo, 240)
{
    int count = connection_count();
    ARK_ASSERT_GE(count, 1000);
    int ports[PORTS];
    for (int i = 0; i < PORTS; i++)
        server.listen_fds[i] = test_listen(&ports[i], 4096);
    int report[2], go[2];
    ARK_ASSERT_EQ(pipe(report), 0);
    ARK_ASSERT_EQ(pipe(go), 0);
    fflush(NULL);
    /* The client forks before the eventer starts: the child has a single thread. */
    pid_t client = fork();
    ARK_ASSERT(client >= 0);
    if (client == 0) {
        for (int i = 0; i < PORTS; i++)
            close(server.listen_fds[i]);
        close(report[0]);
        close(go[1]);
        _exit(run_client(ports, count, report[1], go[0]) == 0 ? 0 : 1);
    }
    close(report[1]);
    close(go[0]);
    test_eventer_start(3);
    for (int i = 0; i < PORTS; i++)
        eventer_aco_start_on(eventer_choose_owner(i + 1), acceptor_co, &server.listen_fds[i], 0, 0);
    char byte = 0;
    ARK_ASSERT_EQ(read(report[0], &byte, 1), 1);
    /* All connections are open: one parked co for each, plus the acceptors. */
    eventer_aco_stats_t stats;
    eventer_aco_get_stats(&stats);
    ARK_ASSERT_EQ(test_load(&server.accepted), count);
    ARK_ASSERT_GE(stats.live, (uint64_t)count + PORTS);
    fprintf(stderr, "# %d connections: %llu live cos, %llu bytes of save stacks\n", count,
            (unsigned long long)stats.live, (unsigned long long)stats.save_stack_bytes);
    ARK_ASSERT_EQ(write(go[1], &byte, 1), 1);
    int status = 0;
    ARK_ASSERT_EQ(waitpid(client, &status, 0), client);
    ARK_ASSERT_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "client status %d", status);
    test_wait_for_count(&server.finished, count, "connection cos ending");
    ARK_ASSERT_EQ(test_load(&server.bad_echo), 0);
    test_eventer_stop();
    for (int i = 0; i < PORTS; i++)
        close(server.listen_fds[i]);
    close(report[0]);
    close(go[1]);
}
