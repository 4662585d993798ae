/*
 * Co-routines on the loop: starting them from anywhere, sleeps, their own thread and errno,
 * converted events with timeouts on read/write/accept/connect, classic calls on aco events,
 * copies, teardown with parked co-routines, statistics and the debug stream, and misuse.
 */
#include "eventer_aco_test_util.h"

#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- starting ---- */

struct start_probe {
    int ran;
    int loop_index;
    void *arg_seen;
};

static void record_start(void)
{
    struct start_probe *probe = eventer_aco_arg();
    probe->arg_seen = probe;
    probe->loop_index = test_loop_index();
    ARK_ASSERT(eventer_is_aco(NULL));
    test_increment(&probe->ran);
    aco_exit();
}

ARK_TEST(start_from_another_thread_runs_on_loop_zero)
{
    test_eventer_start(3);
    static struct start_probe probe;
    ARK_ASSERT(!eventer_is_aco(NULL));
    eventer_aco_start(record_start, &probe);
    test_wait_for_count(&probe.ran, 1, "co start");
    ARK_ASSERT(probe.arg_seen == &probe);
    ARK_ASSERT_EQ(probe.loop_index, 0);
    test_eventer_stop();
}

static int start_from_callback(eventer_t e, int mask, void *closure, struct timeval *now)
{
    eventer_aco_start(record_start, closure);
    return 0;
}

ARK_TEST(start_from_a_loop_thread_runs_there_at_once)
{
    test_eventer_start(3);
    static struct start_probe probe;
    eventer_t timer =
        eventer_alloc_timer_next_opportunity(start_from_callback, &probe, eventer_choose_owner(2));
    eventer_add(timer);
    test_wait_for_count(&probe.ran, 1, "co start");
    ARK_ASSERT_EQ(probe.loop_index, eventer_is_loop(eventer_choose_owner(2)));
    test_eventer_stop();
}

static void start_child_then_check(void)
{
    struct start_probe *probe = eventer_aco_arg();
    /* Started from inside a co: it runs later, on this thread, once this co has waited. */
    eventer_aco_start(record_start, probe);
    ARK_ASSERT_EQ(test_load(&probe->ran), 0);
    struct timeval pause = {0, 1000};
    for (int i = 0; i < 5000 && test_load(&probe->ran) == 0; i++)
        eventer_aco_sleep(&pause);
    ARK_ASSERT_EQ(test_load(&probe->ran), 1);
    aco_exit();
}

ARK_TEST(start_from_inside_a_co_runs_later_on_the_same_thread)
{
    test_eventer_start(2);
    static struct start_probe probe;
    eventer_aco_start_on(eventer_choose_owner(1), start_child_then_check, &probe, 0, 0);
    test_wait_for_count(&probe.ran, 1, "child co");
    ARK_ASSERT_EQ(probe.loop_index, 1);
    test_eventer_stop();
}

/* The seed's first example, bounded: sleep, wake, a few times; the thread never changes. */
struct sleeper {
    struct timeval pause;
    int wakes;
    int wrong_thread;
    int done;
};

static void sleeper_co(void)
{
    struct sleeper *s = eventer_aco_arg();
    int home = test_loop_index();
    for (int i = 0; i < 5; i++) {
        mtev_aco_sleep(&s->pause);
        if (test_loop_index() != home)
            test_increment(&s->wrong_thread);
        test_increment(&s->wakes);
    }
    test_increment(&s->done);
    aco_exit();
}

ARK_TEST(sleeping_cos_wake_on_their_own_thread)
{
    test_eventer_start(3);
    static struct sleeper sleepers[6];
    for (int i = 0; i < 6; i++) {
        sleepers[i].pause = (struct timeval){0, 2000 + 1000 * i};
        eventer_aco_start_on(eventer_choose_owner(i), sleeper_co, &sleepers[i], 0, 0);
    }
    for (int i = 0; i < 6; i++) {
        test_wait_for_count(&sleepers[i].done, 1, "sleeper");
        ARK_ASSERT_EQ(test_load(&sleepers[i].wakes), 5);
        ARK_ASSERT_EQ(test_load(&sleepers[i].wrong_thread), 0);
    }
    test_eventer_stop();
}

static void sleep_then_shutdown(void)
{
    int *stage = eventer_aco_arg();
    struct timeval pause = {0, 5000};
    eventer_aco_sleep(&pause);
    test_increment(stage);
    eventer_shutdown();
    aco_exit();
}

ARK_TEST(start_before_eventer_loop_then_loop_until_a_co_stops_it)
{
    static int stage;
    test_eventer_start(2);
    eventer_aco_start(sleep_then_shutdown, &stage);
    eventer_loop(); /* returns once the co called eventer_shutdown() */
    ARK_ASSERT_EQ(test_load(&stage), 1);
    ARK_ASSERT_EQ(eventer_allocations_current(), 0);
}

static void returns_normally(void)
{
    int *count = eventer_aco_arg();
    test_increment(count);
}

ARK_TEST(may_return_cos_end_when_their_function_returns)
{
    test_eventer_start(2);
    static int count;
    for (int i = 0; i < 10; i++)
        eventer_aco_start_on(eventer_choose_owner(i), returns_normally, &count, 0,
                             EVENTER_ACO_MAY_RETURN);
    test_wait_for_count(&count, 10, "returning cos");
    eventer_aco_stats_t stats;
    for (int i = 0; i < 2000; i++) {
        eventer_aco_get_stats(&stats);
        if (stats.live == 0)
            break;
        test_sleep_ms(1);
    }
    ARK_ASSERT_EQ(stats.live, 0);
    ARK_ASSERT_GE(stats.started, 10);
    test_eventer_stop();
}

/* ---- errno ---- */

struct errno_probe {
    int value;
    int seen_after;
    int done;
};

static void keep_errno(void)
{
    struct errno_probe *p = eventer_aco_arg();
    errno = p->value;
    for (int i = 0; i < 3; i++) {
        struct timeval pause = {0, 1000};
        eventer_aco_sleep(&pause);
        if (errno != p->value)
            break;
        errno = p->value; /* a sleep keeps it anyway; set it again as a co would */
    }
    p->seen_after = errno;
    test_increment(&p->done);
    aco_exit();
}

ARK_TEST(each_co_keeps_its_own_errno_across_waits)
{
    test_eventer_start(2);
    static struct errno_probe probes[4] = {
        {EINVAL, 0, 0}, {ENOENT, 0, 0}, {EPIPE, 0, 0}, {ECONNRESET, 0, 0}};
    for (int i = 0; i < 4; i++)
        eventer_aco_start_on(eventer_choose_owner(1), keep_errno, &probes[i], 0, 0);
    for (int i = 0; i < 4; i++) {
        test_wait_for_count(&probes[i].done, 1, "errno co");
        ARK_ASSERT_EQ(probes[i].seen_after, probes[i].value);
    }
    test_eventer_stop();
}

/* One co's read times out (ETIME) while another co fails with EBADF meanwhile. */
struct errno_pair {
    int fd;
    int timed_out_errno;
    int other_errno;
    int done;
};

static void timed_out_reader(void)
{
    struct errno_pair *p = eventer_aco_arg();
    eventer_aco_t e = test_aco_event(p->fd);
    char byte;
    struct timeval wait = {0, 30000};
    int got = eventer_aco_read(e, &byte, 1, &wait);
    p->timed_out_errno = got < 0 ? errno : 0;
    eventer_aco_free(e);
    test_increment(&p->done);
    aco_exit();
}

static void failing_meanwhile(void)
{
    struct errno_pair *p = eventer_aco_arg();
    struct timeval pause = {0, 5000};
    eventer_aco_sleep(&pause);
    char byte;
    ARK_ASSERT_EQ(read(-1, &byte, 1), -1); /* EBADF, on the same thread, meanwhile */
    eventer_aco_sleep(&pause);
    p->other_errno = errno;
    test_increment(&p->done);
    aco_exit();
}

ARK_TEST(errno_set_by_a_call_is_what_the_co_sees)
{
    test_eventer_start(2);
    int pair[2];
    test_socketpair(pair);
    static struct errno_pair probe;
    probe.fd = pair[0];
    eventer_aco_start_on(eventer_choose_owner(1), timed_out_reader, &probe, 0, 0);
    eventer_aco_start_on(eventer_choose_owner(1), failing_meanwhile, &probe, 0, 0);
    test_wait_for_count(&probe.done, 2, "errno cos");
    ARK_ASSERT_EQ(probe.timed_out_errno, ETIME);
    ARK_ASSERT_EQ(probe.other_errno, EBADF);
    close(pair[0]);
    close(pair[1]);
    test_eventer_stop();
}

/* ---- timeouts ---- */

struct io_probe {
    int fd;
    int result;
    int error;
    uint64_t elapsed_us;
    char data[16];
    int done;
};

static void read_with_timeout(void)
{
    struct io_probe *p = eventer_aco_arg();
    eventer_aco_t e = test_aco_event(p->fd);
    struct timeval wait = {0, 50000};
    uint64_t start = test_now_us();
    p->result = eventer_aco_read(e, p->data, sizeof(p->data), &wait);
    p->error = errno;
    p->elapsed_us = test_now_us() - start;
    eventer_aco_free(e);
    test_increment(&p->done);
    aco_exit();
}

ARK_TEST(read_times_out_with_etime)
{
    test_eventer_start(2);
    int pair[2];
    test_socketpair(pair);
    static struct io_probe probe;
    probe.fd = pair[0];
    eventer_aco_start(read_with_timeout, &probe);
    test_wait_for_count(&probe.done, 1, "read");
    ARK_ASSERT_EQ(probe.result, -1);
    ARK_ASSERT_EQ(probe.error, ETIME);
    ARK_ASSERT_GE(probe.elapsed_us, 45000);
    close(pair[0]);
    close(pair[1]);
    test_eventer_stop();
}

ARK_TEST(read_returns_data_that_arrives_before_the_timeout)
{
    test_eventer_start(2);
    int pair[2];
    test_socketpair(pair);
    static struct io_probe probe;
    probe.fd = pair[0];
    eventer_aco_start(read_with_timeout, &probe);
    test_sleep_ms(5);
    ARK_ASSERT_EQ(write(pair[1], "hi", 2), 2);
    test_wait_for_count(&probe.done, 1, "read");
    /* Either the data (usual) or, on a very slow machine, ETIME; never anything else. */
    if (probe.result != -1) {
        ARK_ASSERT_EQ(probe.result, 2);
        ARK_ASSERT(memcmp(probe.data, "hi", 2) == 0);
    } else {
        ARK_ASSERT_EQ(probe.error, ETIME);
    }
    close(pair[0]);
    close(pair[1]);
    test_eventer_stop();
}

static void write_until_full_then_time_out(void)
{
    struct io_probe *p = eventer_aco_arg();
    eventer_aco_t e = test_aco_event(p->fd);
    static char chunk[65536];
    struct timeval wait = {0, 30000};
    for (;;) {
        int wrote = eventer_aco_write(e, chunk, sizeof(chunk), &wait);
        if (wrote < 0) {
            p->result = wrote;
            p->error = errno;
            break;
        }
    }
    eventer_aco_free(e);
    test_increment(&p->done);
    aco_exit();
}

ARK_TEST(write_times_out_when_the_peer_does_not_read)
{
    test_eventer_start(2);
    int pair[2];
    test_socketpair(pair);
    static struct io_probe probe;
    probe.fd = pair[0];
    eventer_aco_start(write_until_full_then_time_out, &probe);
    test_wait_for_count(&probe.done, 1, "write");
    ARK_ASSERT_EQ(probe.result, -1);
    ARK_ASSERT_EQ(probe.error, ETIME);
    close(pair[0]);
    close(pair[1]);
    test_eventer_stop();
}

static void accept_twice(void)
{
    struct io_probe *p = eventer_aco_arg();
    eventer_aco_t e = test_aco_event(p->fd);
    struct timeval wait = {0, 30000};
    struct sockaddr_in peer;
    socklen_t length = sizeof(peer);
    p->result = eventer_aco_accept(e, (struct sockaddr *)&peer, &length, &wait);
    p->error = errno;
    test_increment(&p->done);
    /* Now the test connects: a generous timeout, the connection arrives. */
    struct timeval long_wait = {20, 0};
    int fd = eventer_aco_accept(e, (struct sockaddr *)&peer, &length, &long_wait);
    ARK_ASSERT(fd >= 0);
    ARK_ASSERT_EQ(peer.sin_family, AF_INET);
    close(fd);
    eventer_aco_free(e);
    test_increment(&p->done);
    aco_exit();
}

ARK_TEST(accept_times_out_then_accepts)
{
    test_eventer_start(2);
    int port = 0;
    static struct io_probe probe;
    probe.fd = test_listen(&port, 16);
    eventer_aco_start(accept_twice, &probe);
    test_wait_for_count(&probe.done, 1, "accept timeout");
    ARK_ASSERT_EQ(probe.result, -1);
    ARK_ASSERT_EQ(probe.error, ETIME);
    int client = test_connect_blocking(port);
    test_wait_for_count(&probe.done, 2, "accept");
    close(client);
    close(probe.fd);
    test_eventer_stop();
}

struct connect_probe {
    int port;
    int result;
    int error;
    int done;
};

static void connect_once(void)
{
    struct connect_probe *p = eventer_aco_arg();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ARK_ASSERT(fd >= 0);
    eventer_aco_t e = test_aco_event(fd);
    struct sockaddr_in address = test_loopback(p->port);
    struct timeval wait = {0, 200000};
    p->result = eventer_aco_connect(e, (struct sockaddr *)&address, sizeof(address), &wait);
    p->error = errno;
    if (p->result == 0) {
        ARK_ASSERT_EQ(eventer_aco_write(e, "x", 1, NULL), 1);
    }
    ARK_ASSERT_EQ(eventer_aco_close(e), 0);
    eventer_aco_free(e);
    test_increment(&p->done);
    aco_exit();
}

ARK_TEST(connect_succeeds_or_reports_the_error)
{
    test_eventer_start(2);
    int port = 0;
    int listener = test_listen(&port, 16);
    static struct connect_probe ok, refused;
    ok.port = port;
    eventer_aco_start(connect_once, &ok);
    test_wait_for_count(&ok.done, 1, "connect");
    ARK_ASSERT_EQ(ok.result, 0);
    int accepted = accept(listener, NULL, NULL);
    char byte = 0;
    ARK_ASSERT_EQ(read(accepted, &byte, 1), 1);
    ARK_ASSERT_EQ(byte, 'x');
    close(accepted);
    close(listener);
    /* Nobody listens there any more. */
    refused.port = port;
    eventer_aco_start(connect_once, &refused);
    test_wait_for_count(&refused.done, 1, "refused connect");
    ARK_ASSERT_EQ(refused.result, -1);
    ARK_ASSERT_EQ(refused.error, ECONNREFUSED);
    test_eventer_stop();
}

ARK_TEST(connect_times_out_when_the_listener_backlog_is_full)
{
    test_eventer_start(2);
    int port = 0;
    int listener = test_listen(&port, 0);
    /* Fill the accept queue: later SYNs are dropped and connects stay in progress. */
    int fillers[8];
    int filled = 0;
    for (; filled < 8; filled++) {
        fillers[filled] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        struct sockaddr_in address = test_loopback(port);
        connect(fillers[filled], (struct sockaddr *)&address, sizeof(address));
    }
    test_sleep_ms(50);
    static struct connect_probe probe;
    probe.port = port;
    eventer_aco_start(connect_once, &probe);
    test_wait_for_count(&probe.done, 1, "connect");
    ARK_ASSERT_EQ(probe.result, -1);
    ARK_ASSERT_EQ(probe.error, ETIME);
    for (int i = 0; i < filled; i++)
        close(fillers[i]);
    close(listener);
    test_eventer_stop();
}

/* The libmtev bug: a sleep left a "timed out" flag behind that broke the next wait. */
static void sleep_then_read(void)
{
    struct io_probe *p = eventer_aco_arg();
    eventer_aco_t e = test_aco_event(p->fd);
    struct timeval pause = {0, 2000};
    eventer_aco_sleep(&pause);
    eventer_aco_sleep(&pause);
    test_increment(&p->done); /* tells the test to write, later */
    struct timeval wait = {30, 0};
    p->result = eventer_aco_read(e, p->data, sizeof(p->data), &wait);
    p->error = errno;
    eventer_aco_free(e);
    test_increment(&p->done);
    aco_exit();
}

ARK_TEST(sleep_then_read_waits_for_data_arriving_later)
{
    test_eventer_start(2);
    int pair[2];
    test_socketpair(pair);
    static struct io_probe probe;
    probe.fd = pair[0];
    eventer_aco_start(sleep_then_read, &probe);
    test_wait_for_count(&probe.done, 1, "sleeps");
    test_sleep_ms(30);
    ARK_ASSERT_EQ(test_load(&probe.done), 1); /* still waiting: no stale timeout */
    ARK_ASSERT_EQ(write(pair[1], "later", 5), 5);
    test_wait_for_count(&probe.done, 2, "read");
    ARK_ASSERT_EQ(probe.result, 5);
    ARK_ASSERT(memcmp(probe.data, "later", 5) == 0);
    close(pair[0]);
    close(pair[1]);
    test_eventer_stop();
}

/* ---- default timeouts and classic calls on aco events ---- */

static void default_timeouts(void)
{
    struct io_probe *p = eventer_aco_arg();
    eventer_aco_t e = test_aco_event(p->fd);
    struct timeval short_wait = {0, 20000};
    eventer_aco_set_read_timeout(e, &short_wait);
    char byte;
    ARK_ASSERT_EQ(eventer_aco_read(e, &byte, 1, NULL), -1);
    ARK_ASSERT_EQ(errno, ETIME);
    /* A classic call on the aco event is the aco call with no timeout: the default applies. */
    int mask = 0;
    ARK_ASSERT_EQ(eventer_read((eventer_t)e, &byte, 1, &mask), -1);
    ARK_ASSERT_EQ(errno, ETIME);
    eventer_aco_set_read_timeout(e, NULL);
    test_increment(&p->done);
    /* No default now: the classic read waits until the test writes. */
    ARK_ASSERT_EQ(eventer_read((eventer_t)e, &byte, 1, &mask), 1);
    ARK_ASSERT_EQ(byte, 'z');
    ARK_ASSERT_EQ(eventer_write((eventer_t)e, "y", 1, &mask), 1);
    ARK_ASSERT_EQ(eventer_close((eventer_t)e, &mask), 0);
    ARK_ASSERT_EQ(eventer_aco_get_fd(e), -1);
    eventer_aco_free(e);
    test_increment(&p->done);
    aco_exit();
}

ARK_TEST(default_timeouts_and_classic_calls_on_aco_events)
{
    test_eventer_start(2);
    int pair[2];
    test_socketpair(pair);
    static struct io_probe probe;
    probe.fd = pair[0];
    eventer_aco_start(default_timeouts, &probe);
    test_wait_for_count(&probe.done, 1, "default timeouts");
    test_sleep_ms(20);
    ARK_ASSERT_EQ(write(pair[1], "z", 1), 1);
    test_wait_for_count(&probe.done, 2, "classic calls");
    char byte = 0;
    ARK_ASSERT_EQ(read(pair[1], &byte, 1), 1);
    ARK_ASSERT_EQ(byte, 'y');
    ARK_ASSERT_EQ(read(pair[1], &byte, 1), 0); /* closed by eventer_close */
    close(pair[1]);
    test_eventer_stop();
}

/* ---- the seed's second example: classic accept -> classic callback -> aco echo ---- */

static void echo_process(void)
{
    eventer_t classic_e = eventer_aco_arg();
    struct echo_server *server = eventer_get_closure(classic_e);
    eventer_aco_t e = eventer_set_eventer_aco(classic_e);
    ARK_ASSERT(eventer_is_aco((eventer_t)e));
    ARK_ASSERT(eventer_aco_get_closure(e) == server);
    char buffer[64];
    for (;;) {
        int got = eventer_aco_read(e, buffer, sizeof(buffer), NULL);
        if (got <= 0)
            break;
        if (eventer_aco_write(e, buffer, (size_t)got, NULL) != got)
            break;
    }
    eventer_aco_close(e);
    eventer_aco_free(e);
    test_increment(&server->finished);
    aco_exit();
}

static int classic_callback(eventer_t e, int mask, void *c, struct timeval *now)
{
    eventer_remove_fde(e);
    eventer_t copy = eventer_alloc_copy(e);
    eventer_aco_start(echo_process, copy);
    return 0;
}

ARK_TEST(classic_events_moved_to_aco_echo)
{
    test_eventer_start(3);
    static struct echo_server server;
    test_echo_server_start(&server, classic_callback);
    int clients[20];
    for (int i = 0; i < 20; i++)
        clients[i] = test_connect_blocking(server.port);
    for (int round = 0; round < 5; round++)
        for (int i = 0; i < 20; i++)
            test_exchange(clients[i], "echo me");
    for (int i = 0; i < 20; i++)
        close(clients[i]);
    test_wait_for_count(&server.finished, 20, "echo cos");
    test_eventer_stop();
    close(server.listen_fd);
}

/* A copy of an aco event is a classic event with the original callback and opset. */
static int never_called(eventer_t e, int mask, void *c, struct timeval *now)
{
    return 0;
}

static void copy_aco_event(void)
{
    struct io_probe *p = eventer_aco_arg();
    eventer_t classic = eventer_alloc_fd(never_called, p, p->fd, EVENTER_READ);
    eventer_aco_t e = eventer_set_eventer_aco(classic);
    eventer_t copy = eventer_alloc_copy((eventer_t)e);
    ARK_ASSERT(!eventer_is_aco(copy));
    ARK_ASSERT(eventer_get_callback(copy) == never_called);
    ARK_ASSERT(eventer_get_fd_opset(copy) == eventer_POSIX_fd_opset);
    ARK_ASSERT(eventer_get_fd_opset((eventer_t)e) == eventer_aco_fd_opset);
    ARK_ASSERT(eventer_get_closure(copy) == p);
    /* The copy converts too (a second aco event on the same descriptor, for this co). */
    eventer_aco_t again = eventer_set_eventer_aco(copy);
    char byte;
    struct timeval wait = {0, 1000};
    /* Both wait on the one descriptor in turn; each registration replaces the other's. */
    for (int i = 0; i < 3; i++) {
        ARK_ASSERT_EQ(eventer_aco_read(i % 2 ? e : again, &byte, 1, &wait), -1);
        ARK_ASSERT_EQ(errno, ETIME);
    }
    eventer_aco_free(again);
    /* Reverting gives the classic event back, with the co's reference. */
    ARK_ASSERT(eventer_set_eventer_aco_co((eventer_t)e, NULL) == NULL);
    ARK_ASSERT(!eventer_is_aco((eventer_t)e));
    ARK_ASSERT(eventer_get_callback((eventer_t)e) == never_called);
    eventer_free((eventer_t)e);
    test_increment(&p->done);
    aco_exit();
}

ARK_TEST(copies_of_aco_events_are_classic_and_convert_again)
{
    test_eventer_start(2);
    int pair[2];
    test_socketpair(pair);
    static struct io_probe probe;
    probe.fd = pair[0];
    eventer_aco_start(copy_aco_event, &probe);
    test_wait_for_count(&probe.done, 1, "copies");
    close(pair[0]);
    close(pair[1]);
    test_eventer_stop();
}

/* ---- teardown, statistics, debug stream ---- */

static void park_forever_in_read(void)
{
    struct io_probe *p = eventer_aco_arg();
    eventer_aco_t e = test_aco_event(p->fd);
    test_increment(&p->done);
    char byte;
    eventer_aco_read(e, &byte, 1, NULL);
    ARK_ASSERT_MSG(0, "the read should never return");
    aco_exit();
}

static void park_forever_in_sleep(void)
{
    struct io_probe *p = eventer_aco_arg();
    char *heap = malloc(100); /* lost with the co: teardown does not run co code */
    free(heap);
    test_increment(&p->done);
    struct timeval long_sleep = {3600, 0};
    eventer_aco_sleep(&long_sleep);
    ARK_ASSERT_MSG(0, "the sleep should never return");
    aco_exit();
}

ARK_TEST(stopping_the_eventer_frees_parked_cos_and_their_events)
{
    test_eventer_start(3);
    int pair[2];
    test_socketpair(pair);
    static struct io_probe readers[4], sleepers[4];
    for (int i = 0; i < 4; i++) {
        readers[i].fd = i == 0 ? pair[0] : dup(pair[0]);
        eventer_aco_start_on(eventer_choose_owner(i), park_forever_in_read, &readers[i], 0, 0);
        eventer_aco_start_on(eventer_choose_owner(i), park_forever_in_sleep, &sleepers[i], 0, 0);
    }
    for (int i = 0; i < 4; i++) {
        test_wait_for_count(&readers[i].done, 1, "reader parked");
        test_wait_for_count(&sleepers[i].done, 1, "sleeper parked");
    }
    eventer_aco_stats_t stats;
    eventer_aco_get_stats(&stats);
    ARK_ASSERT_EQ(stats.live, 8);
    test_eventer_stop(); /* asserts that no event is left allocated */
    eventer_aco_get_stats(&stats);
    ARK_ASSERT_EQ(stats.live, 0);
    ARK_ASSERT_EQ(stats.save_stack_bytes, 0);
    for (int i = 0; i < 4; i++)
        close(readers[i].fd);
    close(pair[1]);
}

static void park_with_stack_in_use(void)
{
    struct io_probe *p = eventer_aco_arg();
    volatile char frame[600];
    for (size_t i = 0; i < sizeof(frame); i++)
        frame[i] = (char)i;
    test_increment(&p->done);
    struct timeval pause = {0, 20000};
    eventer_aco_sleep(&pause);
    ARK_ASSERT_EQ(frame[599], (char)599);
    test_increment(&p->done);
    aco_exit();
}

ARK_TEST(statistics_count_live_cos_and_save_stacks)
{
    test_eventer_start(2);
    eventer_aco_stats_t before;
    eventer_aco_get_stats(&before);
    static struct io_probe probes[3];
    for (int i = 0; i < 3; i++)
        eventer_aco_start_on(eventer_choose_owner(1), park_with_stack_in_use, &probes[i], 0, 0);
    for (int i = 0; i < 3; i++)
        test_wait_for_count(&probes[i].done, 1, "parked");
    /* A co counts "done" just before it sleeps; the copy happens when the next one runs. */
    eventer_aco_stats_t during;
    for (int i = 0; i < 5000; i++) {
        eventer_aco_get_stats(&during);
        if (during.save_stack_bytes >= before.save_stack_bytes + 2 * 600)
            break;
        test_sleep_ms(1);
    }
    ARK_ASSERT_EQ(during.live, before.live + 3);
    ARK_ASSERT_EQ(during.started, before.started + 3);
    /* Two of the three were copied off the shared stack, each with its 600-byte frame. */
    ARK_ASSERT_GE(during.save_stack_bytes, before.save_stack_bytes + 2 * 600);
    for (int i = 0; i < 3; i++)
        test_wait_for_count(&probes[i].done, 2, "woken");
    eventer_aco_stats_t after;
    for (int i = 0; i < 2000; i++) {
        eventer_aco_get_stats(&after);
        if (after.live == before.live)
            break;
        test_sleep_ms(1);
    }
    ARK_ASSERT_EQ(after.live, before.live);
    ARK_ASSERT_EQ(after.save_stack_bytes, before.save_stack_bytes);
    test_eventer_stop();
}

static char captured[8192];
static size_t captured_length;
static pthread_mutex_t captured_lock = PTHREAD_MUTEX_INITIALIZER;

static void capture(void *closure, mtev_log_stream_t stream, const char *line, size_t length)
{
    pthread_mutex_lock(&captured_lock);
    if (captured_length + length < sizeof(captured)) {
        memcpy(captured + captured_length, line, length);
        captured_length += length;
        captured[captured_length] = '\0';
    }
    pthread_mutex_unlock(&captured_lock);
}

ARK_TEST(debug_stream_reports_stack_sizes_on_resume)
{
    mtev_log_stream_t stream = mtev_log_stream_find("debug/eventer/aco");
    mtev_log_stream_set_writer(stream, capture, NULL);
    mtev_log_stream_enable(stream, mtev_true);
    test_eventer_start(2);
    static struct io_probe probes[2];
    for (int i = 0; i < 2; i++)
        eventer_aco_start_on(eventer_choose_owner(1), park_with_stack_in_use, &probes[i], 0, 0);
    for (int i = 0; i < 2; i++)
        test_wait_for_count(&probes[i].done, 2, "woken");
    test_eventer_stop();
    mtev_log_stream_enable(stream, mtev_false);
    pthread_mutex_lock(&captured_lock);
    /* Each co's second resume restores its 600-byte frame (and the frames below it). */
    int large_restores = 0;
    for (const char *at = captured; (at = strstr(at, "resumed on loop/1: ")) != NULL; at++) {
        unsigned bytes = 0;
        if (sscanf(at, "resumed on loop/1: %u bytes of stack to restore", &bytes) == 1 &&
            bytes >= 600)
            large_restores++;
    }
    ARK_ASSERT_MSG(large_restores >= 1, "log: %s", captured);
    pthread_mutex_unlock(&captured_lock);
    mtev_log_stream_set_writer(stream, NULL, NULL);
}

/* ---- misuse, each in a child process ---- */

static void classic_read_in_co(void)
{
    int pair[2];
    test_socketpair(pair);
    eventer_t e = eventer_alloc_fd(never_called, NULL, pair[0], EVENTER_READ);
    char byte;
    int mask;
    eventer_read(e, &byte, 1, &mask);
    aco_exit();
}

static void returns_without_exit(void)
{
}

static void convert_arg(void)
{
    eventer_set_eventer_aco(eventer_aco_arg());
    aco_exit();
}

static void convert_registered(void)
{
    int pair[2];
    test_socketpair(pair);
    eventer_t e = eventer_alloc_fd(never_called, NULL, pair[0], EVENTER_READ);
    eventer_add(e);
    eventer_set_eventer_aco(e);
    aco_exit();
}

/* The seed's classic_callback without its eventer_remove_fde(). */
static int forgot_remove_callback(eventer_t e, int mask, void *c, struct timeval *now)
{
    eventer_t copy = eventer_alloc_copy(e);
    eventer_aco_start(convert_arg, copy);
    return 0;
}

static void convert_copy_of_registered(void)
{
    int pair[2];
    test_socketpair(pair);
    eventer_t e = eventer_alloc_fd(forgot_remove_callback, NULL, pair[0], EVENTER_READ);
    eventer_add(e);
    ARK_ASSERT_EQ(write(pair[1], "x", 1), 1);
    struct timeval pause = {5, 0};
    eventer_aco_sleep(&pause);
    aco_exit();
}

static void convert_twice(void)
{
    int pair[2];
    test_socketpair(pair);
    eventer_t e = eventer_alloc_fd(never_called, NULL, pair[0], EVENTER_READ);
    eventer_set_eventer_aco(e);
    eventer_set_eventer_aco(e);
    aco_exit();
}

static void convert_timer(void)
{
    eventer_t e = eventer_in_s_us(never_called, NULL, 1, 0);
    eventer_set_eventer_aco(e);
    aco_exit();
}

static void aco_read_on_classic(void)
{
    int pair[2];
    test_socketpair(pair);
    eventer_t e = eventer_alloc_fd(never_called, NULL, pair[0], EVENTER_READ);
    char byte;
    eventer_aco_read((eventer_aco_t)e, &byte, 1, NULL);
    aco_exit();
}

static void child_arg_outside(void *unused)
{
    test_eventer_start(2);
    eventer_aco_arg();
}
static void child_sleep_outside(void *unused)
{
    test_eventer_start(2);
    struct timeval pause = {0, 1};
    eventer_aco_sleep(&pause);
}
static void child_start_before_init(void *unused)
{
    eventer_aco_start(returns_without_exit, NULL);
}
static void child_convert_outside(void *unused)
{
    test_eventer_start(2);
    eventer_t e = eventer_alloc_fd(never_called, NULL, 0, EVENTER_READ);
    eventer_set_eventer_aco(e);
}

ARK_TEST(misuse_is_reported_clearly)
{
    test_expect_abort_in_co(classic_read_in_co, "eventer_read: called from inside a co-routine");
    test_expect_abort_in_co(classic_read_in_co, "convert it with eventer_set_eventer_aco()");
    char needle[128];
    snprintf(needle, sizeof(needle), "co-routine function %p", (void *)returns_without_exit);
    test_expect_abort_in_co(returns_without_exit, needle);
    test_expect_abort_in_co(returns_without_exit, "returned without calling aco_exit()");
    test_expect_abort_in_co(convert_registered, "is still registered with the eventer");
    test_expect_abort_in_co(convert_twice, "is already an aco event");
    test_expect_abort_in_co(convert_copy_of_registered,
                            "is still registered with the eventer by classic event");
    test_expect_abort_in_co(convert_timer, "is not an fd event");
    test_expect_abort_in_co(aco_read_on_classic, "eventer_aco_read: event");
    test_expect_abort_in_co(aco_read_on_classic, "is not an aco event");
    test_expect_abort(child_arg_outside, "eventer_aco_arg: must be called inside a co-routine");
    test_expect_abort(child_sleep_outside, "eventer_aco_sleep: must be called inside a co-routine");
    test_expect_abort(child_start_before_init, "eventer_aco_start: the eventer is not running");
    test_expect_abort(child_convert_outside,
                      "eventer_set_eventer_aco: must be called inside a co-routine");
}

/* ---- other threads and nested wake-ups ---- */

struct job_io {
    eventer_aco_t e;
    int wrote;
    int read_result;
    int read_errno;
};

static void io_from_a_job(void *closure)
{
    struct job_io *io = closure;
    io->wrote = eventer_aco_write(io->e, "j", 1, NULL);
    char byte;
    io->read_result = eventer_aco_read(io->e, &byte, 1, NULL);
    io->read_errno = errno;
}

static void job_thread_io(void)
{
    struct io_probe *p = eventer_aco_arg();
    struct job_io *io = calloc(1, sizeof(*io));
    io->e = test_aco_event(p->fd);
    eventer_aco_simple_asynch(io_from_a_job, io);
    /* From a job thread: one attempt each, no waiting (nothing to read: EAGAIN). */
    p->result = io->wrote == 1 && io->read_result == -1 && io->read_errno == EAGAIN;
    eventer_aco_free(io->e);
    free(io);
    test_increment(&p->done);
    aco_exit();
}

ARK_TEST(aco_calls_from_a_job_thread_make_one_attempt)
{
    test_eventer_start(2);
    int pair[2];
    test_socketpair(pair);
    static struct io_probe probe;
    probe.fd = pair[0];
    eventer_aco_start(job_thread_io, &probe);
    test_wait_for_count(&probe.done, 1, "job io");
    ARK_ASSERT_EQ(probe.result, 1);
    char byte = 0;
    ARK_ASSERT_EQ(read(pair[1], &byte, 1), 1);
    ARK_ASSERT_EQ(byte, 'j');
    close(pair[0]);
    close(pair[1]);
    test_eventer_stop();
}

/* A co triggers another co's aco event: that co is woken from inside a co (deferred). */
static eventer_aco_t reader_event;
static int reader_ready;

static void reader_co(void)
{
    struct io_probe *p = eventer_aco_arg();
    reader_event = test_aco_event(p->fd);
    __atomic_store_n(&reader_ready, 1, __ATOMIC_RELEASE);
    p->result = eventer_aco_read(reader_event, p->data, sizeof(p->data), NULL);
    eventer_aco_free(reader_event);
    test_increment(&p->done);
    aco_exit();
}

static void trigger_co(void)
{
    struct io_probe *p = eventer_aco_arg();
    /* Nothing to read yet: the reader wakes, finds EAGAIN, and waits again. */
    eventer_trigger((eventer_t)reader_event, EVENTER_READ);
    struct timeval pause = {0, 2000};
    eventer_aco_sleep(&pause);
    eventer_aco_sleep(&pause);
    test_increment(&p->done);
    aco_exit();
}

ARK_TEST(a_co_woken_from_inside_another_co_resumes_later)
{
    test_eventer_start(2);
    int pair[2];
    test_socketpair(pair);
    static struct io_probe reader, trigger;
    reader.fd = pair[0];
    eventer_aco_start_on(eventer_choose_owner(1), reader_co, &reader, 0, 0);
    test_wait_for_count(&reader_ready, 1, "reader");
    eventer_aco_start_on(eventer_choose_owner(1), trigger_co, &trigger, 0, 0);
    test_wait_for_count(&trigger.done, 1, "trigger");
    ARK_ASSERT_EQ(test_load(&reader.done), 0); /* still waiting for data */
    ARK_ASSERT_EQ(write(pair[1], "go", 2), 2);
    test_wait_for_count(&reader.done, 1, "reader");
    ARK_ASSERT_EQ(reader.result, 2);
    close(pair[0]);
    close(pair[1]);
    test_eventer_stop();
}

/* ---- larger shared stacks ---- */

#define LARGE_FRAME ((size_t)5 << 19) /* 2.5 MiB: more than the default shared stack */

struct large_probe {
    int intact;
    int done;
};

static void use_large_frame(void)
{
    struct large_probe *p = eventer_aco_arg();
    volatile char frame[LARGE_FRAME];
    frame[0] = 'a';
    frame[LARGE_FRAME - 1] = 'z';
    struct timeval pause = {0, 1000};
    eventer_aco_sleep(&pause); /* the other large co runs on the same stack meanwhile */
    eventer_aco_sleep(&pause);
    p->intact = frame[0] == 'a' && frame[LARGE_FRAME - 1] == 'z';
    test_increment(&p->done);
    aco_exit();
}

ARK_TEST(start_stack_beyond_the_default_gets_a_larger_shared_stack)
{
    test_eventer_start(2);
    static struct large_probe large[2];
    static struct sleeper small = {{0, 1000}, 0, 0, 0};
    for (int i = 0; i < 2; i++)
        eventer_aco_start_stack(use_large_frame, &large[i], (size_t)3 << 20);
    eventer_aco_start(sleeper_co, &small);
    for (int i = 0; i < 2; i++) {
        test_wait_for_count(&large[i].done, 1, "large co");
        ARK_ASSERT_EQ(large[i].intact, 1);
    }
    test_wait_for_count(&small.done, 1, "small co");
    test_eventer_stop();
}

/* Reverting inside the event's own wake-up (what a session leaving aco mode does). */
struct revert_probe {
    int fd;
    int read_ok;
    int classic_calls;
    int done;
};

static int count_classic_call(eventer_t e, int mask, void *closure, struct timeval *now)
{
    struct revert_probe *p = closure;
    char buffer[8];
    int got = eventer_read(e, buffer, sizeof(buffer), &mask);
    if (got > 0) {
        test_increment(&p->classic_calls);
        return EVENTER_READ | EVENTER_EXCEPTION;
    }
    if (got < 0 && errno == EAGAIN)
        return mask;
    eventer_remove_fde(e);
    return 0;
}

static void read_then_revert(void)
{
    struct revert_probe *p = eventer_aco_arg();
    eventer_t classic = eventer_alloc_fd(count_classic_call, p, p->fd, EVENTER_READ);
    eventer_aco_t e = eventer_set_eventer_aco(classic);
    char byte;
    test_increment(&p->done);
    p->read_ok = eventer_aco_read(e, &byte, 1, NULL) == 1 && byte == 'a';
    /* Resumed by e's own callback: revert there, and hand it back to the classic loop. */
    ARK_ASSERT(eventer_set_eventer_aco_co((eventer_t)e, NULL) == NULL);
    ARK_ASSERT(!eventer_is_aco(classic));
    eventer_set_mask(classic, EVENTER_READ | EVENTER_EXCEPTION);
    eventer_add(classic); /* the reference the co held goes to the eventer */
    test_increment(&p->done);
    aco_exit();
}

ARK_TEST(reverting_during_the_events_wake_up_hands_it_back_to_classic_callbacks)
{
    test_eventer_start(2);
    int pair[2];
    test_socketpair(pair);
    static struct revert_probe probe;
    probe.fd = pair[0];
    eventer_aco_start_on(eventer_choose_owner(1), read_then_revert, &probe, 0, 0);
    test_wait_for_count(&probe.done, 1, "co waiting");
    ARK_ASSERT_EQ(write(pair[1], "a", 1), 1);
    test_wait_for_count(&probe.done, 2, "reverted");
    ARK_ASSERT_EQ(probe.read_ok, 1);
    ARK_ASSERT_EQ(write(pair[1], "b", 1), 1);
    test_wait_for_count(&probe.classic_calls, 1, "classic callback after revert");
    close(pair[1]); /* end of stream: the classic callback removes and finishes it */
    test_sleep_ms(20);
    test_eventer_stop();
    close(pair[0]);
}
