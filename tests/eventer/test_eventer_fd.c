/*
 * fd events: the callback contract, the POSIX opset, moving between loop threads, triggers
 * of floated events, registration failures and EMFILE.
 */
#include "eventer_test_util.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* An echo: read what is there, write it back; 0 at end of stream. */
struct echo_state {
    int rounds;
    int closed;
    int wrong_thread;
};

static int echo_callback(eventer_t e, int mask, void *closure, struct timeval *now)
{
    struct echo_state *state = closure;
    if (!eventer_thread_check(e))
        test_increment(&state->wrong_thread);
    char buffer[256];
    for (;;) {
        int got = eventer_read(e, buffer, sizeof(buffer), &mask);
        if (got < 0)
            return errno == EAGAIN ? mask : 0;
        if (got == 0) {
            eventer_remove_fde(e);
            int close_mask = -1;
            ARK_ASSERT_EQ(eventer_close(e, &close_mask), 0);
            ARK_ASSERT_EQ(close_mask, 0);
            ARK_ASSERT_EQ(eventer_get_fd(e), -1);
            test_increment(&state->closed);
            return 0;
        }
        int wrote = eventer_write(e, buffer, (size_t)got, &mask);
        ARK_ASSERT_EQ(wrote, got);
        test_increment(&state->rounds);
    }
}

static void exchange(int fd, const char *text)
{
    size_t length = strlen(text);
    ARK_ASSERT_EQ(write(fd, text, length), (ssize_t)length);
    char buffer[64] = {0};
    size_t got = 0;
    while (got < length) {
        ssize_t n = read(fd, buffer + got, length - got);
        ARK_ASSERT(n > 0);
        got += (size_t)n;
    }
    ARK_ASSERT(memcmp(buffer, text, length) == 0);
}

ARK_TEST(echo_over_socketpair)
{
    test_eventer_start(2);
    int pair[2];
    ARK_ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
    ARK_ASSERT_EQ(eventer_set_fd_nonblocking(pair[0]), 0);
    ARK_ASSERT(fcntl(pair[0], F_GETFL) & O_NONBLOCK);
    static struct echo_state state;
    eventer_t e = eventer_alloc_fd(echo_callback, &state, pair[0], EVENTER_READ);
    eventer_set_owner(e, eventer_choose_owner(1));
    eventer_add(e);
    ARK_ASSERT(eventer_find_fd(pair[0]) == e);
    for (int i = 0; i < 100; i++)
        exchange(pair[1], "ping");
    close(pair[1]);
    test_wait_for_count(&state.closed, 1, "echo close");
    ARK_ASSERT(eventer_find_fd(pair[0]) == NULL);
    ARK_ASSERT_EQ(test_load(&state.wrong_thread), 0);
    ARK_ASSERT_EQ(eventer_set_fd_blocking(pair[1]), -1); /* closed */
    test_eventer_stop();
}

/*
 * The POSIX opset on each kind of descriptor (sockets go through recv/send, the others
 * through read/write after one ENOTSOCK): the same bytes and the same errors as read() and
 * write(). Returns the number of failed checks; the first one is described in `problem`.
 */
static char problem[256];

static int unused_callback(eventer_t e, int mask, void *closure, struct timeval *now)
{
    return 0;
}

static int check_pair(const char *kind, int writer, int reader)
{
    eventer_t out = eventer_alloc_fd(unused_callback, NULL, writer, EVENTER_WRITE);
    eventer_t in = eventer_alloc_fd(unused_callback, NULL, reader, EVENTER_READ);
    int failures = 0;
    /* Twice: the second time the descriptor's kind is known. */
    for (int round = 0; round < 2; round++) {
        char sent[32], got[64] = {0};
        int length = snprintf(sent, sizeof(sent), "%s round %d", kind, round);
        int mask = 0;
        int wrote = eventer_write(out, sent, (size_t)length, &mask);
        int read_back = eventer_read(in, got, sizeof(got), NULL);
        if (wrote != length || mask != (EVENTER_WRITE | EVENTER_EXCEPTION) || read_back != length ||
            memcmp(sent, got, (size_t)length) != 0) {
            if (!failures++)
                snprintf(problem, sizeof(problem), "%s round %d: wrote %d, read %d (\"%.*s\")",
                         kind, round, wrote, read_back, read_back > 0 ? read_back : 0, got);
        }
    }
    /* Nothing left: EAGAIN, as read() says on an empty non-blocking descriptor. */
    char byte;
    errno = 0;
    if (eventer_read(in, &byte, 1, NULL) != -1 || errno != EAGAIN) {
        if (!failures++)
            snprintf(problem, sizeof(problem), "%s: empty read gave errno %d", kind, errno);
    }
    eventer_free(out);
    eventer_free(in);
    return failures;
}

/* Datagrams keep their boundaries through eventer_read/write; an empty one reads as 0. */
static int check_datagrams(int writer, int reader)
{
    eventer_t out = eventer_alloc_fd(unused_callback, NULL, writer, EVENTER_WRITE);
    eventer_t in = eventer_alloc_fd(unused_callback, NULL, reader, EVENTER_READ);
    int failures = 0;
    char got[16];
    int first = eventer_write(out, "ab", 2, NULL), second = eventer_write(out, "cde", 3, NULL),
        empty = eventer_write(out, "", 0, NULL);
    int got_first = eventer_read(in, got, sizeof(got), NULL);
    int got_second = eventer_read(in, got, 1, NULL); /* the rest of "cde" is discarded */
    char kept = got[0];
    int got_empty = eventer_read(in, got, sizeof(got), NULL);
    errno = 0;
    int got_nothing = eventer_read(in, got, sizeof(got), NULL);
    if (first != 2 || second != 3 || empty != 0 || got_first != 2 || got_second != 1 ||
        kept != 'c' || got_empty != 0 || got_nothing != -1 || errno != EAGAIN) {
        failures++;
        snprintf(problem, sizeof(problem),
                 "datagrams: wrote %d %d %d, read %d %d ('%c') %d %d (errno %d)", first, second,
                 empty, got_first, got_second, kept, got_empty, got_nothing, errno);
    }
    eventer_free(out);
    eventer_free(in);
    return failures;
}

static int check_posix_opset(void)
{
    int failures = 0, fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) == 0) {
        failures += check_pair("socket", fds[0], fds[1]);
        /* A closed peer: EPIPE from eventer_write, as write() gives (SIGPIPE is ignored). */
        close(fds[1]);
        eventer_t out = eventer_alloc_fd(unused_callback, NULL, fds[0], EVENTER_WRITE);
        errno = 0;
        if (eventer_write(out, "x", 1, NULL) != -1 || errno != EPIPE) {
            if (!failures++)
                snprintf(problem, sizeof(problem), "socket: write to closed peer errno %d", errno);
        }
        eventer_free(out);
        close(fds[0]);
    }
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, fds) == 0) {
        failures += check_pair("datagram socket", fds[0], fds[1]);
        failures += check_datagrams(fds[0], fds[1]);
        close(fds[0]);
        close(fds[1]);
    }
    /* An unconnected UDP socket: send() refuses as write() does, with EDESTADDRREQ. */
    int udp = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (udp >= 0) {
        eventer_t out = eventer_alloc_fd(unused_callback, NULL, udp, EVENTER_WRITE);
        errno = 0;
        if (eventer_write(out, "x", 1, NULL) != -1 || errno != EDESTADDRREQ) {
            if (!failures++)
                snprintf(problem, sizeof(problem), "unconnected UDP: write errno %d", errno);
        }
        eventer_free(out);
        close(udp);
    }
    if (pipe2(fds, O_NONBLOCK) == 0) {
        failures += check_pair("pipe", fds[1], fds[0]);
        close(fds[0]);
        close(fds[1]);
    }
    /* A closed descriptor: EBADF, not ENOTSOCK. */
    if (pipe(fds) == 0) {
        close(fds[0]);
        close(fds[1]);
        eventer_t gone = eventer_alloc_fd(unused_callback, NULL, fds[0], EVENTER_READ);
        char byte;
        errno = 0;
        if (eventer_read(gone, &byte, 1, NULL) != -1 || errno != EBADF) {
            if (!failures++)
                snprintf(problem, sizeof(problem), "closed descriptor: errno %d", errno);
        }
        eventer_free(gone);
    }
    return failures;
}

static int loop_failures = -1;

static int check_on_loop(eventer_t e, int mask, void *closure, struct timeval *now)
{
    __atomic_store_n(&loop_failures, check_posix_opset(), __ATOMIC_RELEASE);
    test_increment(closure);
    return 0;
}

ARK_TEST(posix_opset_reads_and_writes_every_descriptor_kind)
{
    signal(SIGPIPE, SIG_IGN);
    test_eventer_start(2);
    /* Off the loop threads (the libc calls)... */
    int failures = check_posix_opset();
    if (failures)
        fprintf(stderr, "off the loops: %s\n", problem);
    ARK_ASSERT_EQ(failures, 0);
    /* ...and on one (the system calls themselves, in builds without sanitizers). */
    static int ran;
    ARK_ASSERT(eventer_add_in(check_on_loop, &ran, (struct timeval){0, 1000}) != NULL);
    test_wait_for_count(&ran, 1, "check on a loop thread");
    failures = __atomic_load_n(&loop_failures, __ATOMIC_ACQUIRE);
    if (failures)
        fprintf(stderr, "on a loop: %s\n", problem);
    ARK_ASSERT_EQ(failures, 0);
    test_eventer_stop();
}

/* Returning 0 while still registered: the eventer unregisters and frees the event. */
static int done_without_remove(eventer_t e, int mask, void *closure, struct timeval *now)
{
    test_increment(closure);
    return 0;
}

ARK_TEST(returning_zero_unregisters_and_frees)
{
    test_eventer_start(2);
    int fds[2];
    ARK_ASSERT_EQ(pipe(fds), 0);
    static int calls;
    eventer_add(eventer_alloc_fd(done_without_remove, &calls, fds[0], EVENTER_READ));
    ARK_ASSERT_EQ(write(fds[1], "x", 1), 1);
    test_wait_for_count(&calls, 1, "callback");
    for (int i = 0; i < 100 && eventer_find_fd(fds[0]); i++)
        test_sleep_ms(1);
    ARK_ASSERT(eventer_find_fd(fds[0]) == NULL);
    /* Still readable, but nothing calls back any more. */
    test_sleep_ms(20);
    ARK_ASSERT_EQ(test_load(&calls), 1);
    test_eventer_stop();
    /* Closed only now: the loop thread may still be removing it from epoll until then. */
    close(fds[0]);
    close(fds[1]);
}

/* Each readiness moves the event to the next loop thread. */
struct mover {
    int hops;
    int sequence_ok;
    int expected_loop;
    int finished;
};

static int moving_callback(eventer_t e, int mask, void *closure, struct timeval *now)
{
    struct mover *mover = closure;
    char byte;
    int got = eventer_read(e, &byte, 1, &mask);
    if (got <= 0)
        return got < 0 && errno == EAGAIN ? mask : 0;
    if (test_loop_index() != mover->expected_loop)
        mover->sequence_ok = 0;
    int next = (test_loop_index() + 1) % eventer_loop_concurrency();
    mover->expected_loop = next;
    for (int n = 0; n < 64; n++)
        if (eventer_is_loop(eventer_choose_owner(n)) == next) {
            eventer_set_owner(e, eventer_choose_owner(n));
            break;
        }
    ARK_ASSERT_EQ(write(eventer_get_fd(e), "k", 1), 1);
    test_increment(&mover->hops);
    if (test_load(&mover->hops) >= 40) {
        eventer_remove_fde(e);
        close(eventer_get_fd(e));
        test_increment(&mover->finished);
        return 0;
    }
    return EVENTER_READ | EVENTER_EXCEPTION;
}

ARK_TEST(fd_event_moves_between_loop_threads)
{
    test_eventer_start(3);
    int pair[2];
    ARK_ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
    eventer_set_fd_nonblocking(pair[0]);
    static struct mover mover = {.sequence_ok = 1, .expected_loop = 0};
    eventer_t e = eventer_alloc_fd(moving_callback, &mover, pair[0], EVENTER_READ);
    eventer_set_owner(e, eventer_choose_owner(0));
    eventer_add(e);
    /* Ping-pong one byte at a time so each readiness happens after the previous move. */
    for (int i = 0; i < 40; i++) {
        ARK_ASSERT_EQ(write(pair[1], "p", 1), 1);
        char byte;
        ARK_ASSERT_EQ(read(pair[1], &byte, 1), 1);
    }
    test_wait_for_count(&mover.finished, 1, "moves");
    ARK_ASSERT_EQ(test_load(&mover.hops), 40);
    ARK_ASSERT(mover.sequence_ok);
    close(pair[1]);
    test_eventer_stop();
}

/* eventer_update from a thread that does not own the event changes its interest. */
struct interest {
    int reads, writes, wrong_thread, closed;
};

static int interest_callback(eventer_t e, int mask, void *closure, struct timeval *now)
{
    struct interest *state = closure;
    if (!eventer_thread_check(e))
        test_increment(&state->wrong_thread);
    if (mask & EVENTER_WRITE) {
        test_increment(&state->writes);
        return EVENTER_READ; /* one writable report is enough: back to reading */
    }
    char byte;
    int got = eventer_read(e, &byte, 1, &mask);
    if (got == 1)
        test_increment(&state->reads);
    if (got == 0) {
        eventer_remove_fde(e);
        eventer_close(e, &mask);
        test_increment(&state->closed);
        return 0;
    }
    return EVENTER_READ;
}

ARK_TEST(update_from_another_thread_changes_interest)
{
    test_eventer_start(3);
    int pair[2];
    ARK_ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
    eventer_set_fd_nonblocking(pair[0]);
    static struct interest state;
    eventer_t e = eventer_alloc_fd(interest_callback, &state, pair[0], EVENTER_READ);
    eventer_set_owner(e, eventer_choose_owner(2));
    eventer_add(e);
    /* Writable all along, but only READ was asked for: no write report yet. */
    ARK_ASSERT_EQ(write(pair[1], "r", 1), 1);
    test_wait_for_count(&state.reads, 1, "read");
    ARK_ASSERT_EQ(test_load(&state.writes), 0);
    eventer_update(e, EVENTER_WRITE);
    test_wait_for_count(&state.writes, 1, "write after update");
    /* The callback asked for READ again: reads still arrive, writes stop. */
    ARK_ASSERT_EQ(write(pair[1], "r", 1), 1);
    test_wait_for_count(&state.reads, 2, "read after update");
    test_sleep_ms(20);
    ARK_ASSERT_EQ(test_load(&state.writes), 1);
    /* The owner ends it: removing it from here could free it under a running callback. */
    close(pair[1]);
    test_wait_for_count(&state.closed, 1, "end of stream");
    ARK_ASSERT_EQ(test_load(&state.wrong_thread), 0);
    test_eventer_stop();
}

/* A floated event (not registered) resumed with eventer_trigger from another thread. */
struct floated {
    int triggered;
    int on_owner;
    int reads;
};

static int floated_callback(eventer_t e, int mask, void *closure, struct timeval *now)
{
    struct floated *state = closure;
    if (mask & EVENTER_CROSS_THREAD_TRIGGER)
        return 0; /* must never leak through */
    if (eventer_thread_check(e))
        test_increment(&state->on_owner);
    if (test_load(&state->triggered) == 0) {
        test_increment(&state->triggered);
        return EVENTER_READ; /* now wait for data */
    }
    char byte;
    int got = eventer_read(e, &byte, 1, &mask);
    if (got == 1) {
        test_increment(&state->reads);
        return EVENTER_READ;
    }
    if (got < 0 && errno == EAGAIN)
        return mask;
    eventer_remove_fde(e);
    eventer_close(e, &mask);
    return 0;
}

ARK_TEST(trigger_from_other_thread_runs_on_owner_and_registers)
{
    test_eventer_start(3);
    int pair[2];
    ARK_ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
    eventer_set_fd_nonblocking(pair[0]);
    static struct floated state;
    eventer_t e = eventer_alloc_fd(floated_callback, &state, pair[0], EVENTER_READ);
    eventer_set_owner(e, eventer_choose_owner(2));
    eventer_trigger(e, EVENTER_READ);
    test_wait_for_count(&state.triggered, 1, "trigger");
    ARK_ASSERT_EQ(write(pair[1], "a", 1), 1);
    test_wait_for_count(&state.reads, 1, "read after trigger");
    ARK_ASSERT_EQ(test_load(&state.on_owner), 2);
    close(pair[1]);
    for (int i = 0; i < 1000 && eventer_find_fd(pair[0]) == e; i++)
        test_sleep_ms(1);
    test_eventer_stop();
}

/* Registration failure (a closed descriptor): reported, callback sees EXCEPTION once. */
static int failure_mask;
static int failure_calls;

static int failing_callback(eventer_t e, int mask, void *closure, struct timeval *now)
{
    __atomic_store_n(&failure_mask, mask, __ATOMIC_RELEASE);
    test_increment(&failure_calls);
    return 0;
}

ARK_TEST(bad_descriptor_reported_as_exception)
{
    test_eventer_start(2);
    int fds[2];
    ARK_ASSERT_EQ(pipe(fds), 0);
    close(fds[0]);
    close(fds[1]);
    eventer_add(eventer_alloc_fd(failing_callback, NULL, fds[0], EVENTER_READ));
    test_wait_for_count(&failure_calls, 1, "failure callback");
    ARK_ASSERT_EQ(test_load(&failure_mask), EVENTER_EXCEPTION);
    test_eventer_stop();
}

/* EMFILE on accept is reported to the caller and the loop keeps working. */
struct acceptor {
    int emfile;
    int accepted;
};

static int accept_callback(eventer_t e, int mask, void *closure, struct timeval *now)
{
    struct acceptor *state = closure;
    struct sockaddr_in address;
    socklen_t length = sizeof(address);
    int fd = eventer_accept(e, (struct sockaddr *)&address, &length, &mask);
    if (fd < 0) {
        if (errno == EMFILE) {
            test_increment(&state->emfile);
            /* Survive: stop accepting for now. */
            eventer_remove_fde(e);
            return 0;
        }
        return mask;
    }
    close(fd);
    test_increment(&state->accepted);
    return mask;
}

static void emfile_child(void *argument)
{
    test_eventer_start(2);
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    ARK_ASSERT_EQ(bind(listener, (struct sockaddr *)&address, sizeof(address)), 0);
    socklen_t length = sizeof(address);
    getsockname(listener, (struct sockaddr *)&address, &length);
    ARK_ASSERT_EQ(listen(listener, 16), 0);
    eventer_set_fd_nonblocking(listener);
    static struct acceptor state;
    eventer_t e = eventer_alloc_fd(accept_callback, &state, listener, EVENTER_READ);
    eventer_add(e);
    /* Use up the descriptors, keeping one for the client socket. */
    int client = socket(AF_INET, SOCK_STREAM, 0);
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    int lowest_free = dup(0);
    close(lowest_free);
    /* Every descriptor below the limit is in use: the next accept gets EMFILE. */
    limit.rlim_cur = (rlim_t)lowest_free;
    ARK_ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &limit), 0);
    ARK_ASSERT_EQ(connect(client, (struct sockaddr *)&address, sizeof(address)), 0);
    test_wait_for_count(&state.emfile, 1, "EMFILE");
    /* The loop is alive: a timer still fires. */
    static int fired;
    eventer_add_in_s_us(done_without_remove, &fired, 0, 1000);
    test_wait_for_count(&fired, 1, "timer after EMFILE");
    close(client);
    close(listener);
    test_eventer_stop();
    exit(0);
}

ARK_TEST(emfile_on_accept_is_survived)
{
    char text[4096];
    int status = ark_test_run_in_child(emfile_child, NULL, text, sizeof(text));
    ARK_ASSERT_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d: %s", status, text);
}

ARK_TEST(alloc_copy_and_accessors)
{
    int closure_value = 5;
    eventer_t e =
        eventer_alloc_fd(done_without_remove, &closure_value, 9, EVENTER_READ | EVENTER_WRITE);
    eventer_t copy = eventer_alloc_copy(e);
    ARK_ASSERT_EQ(eventer_get_fd(copy), 9);
    ARK_ASSERT_EQ(eventer_get_mask(copy), EVENTER_READ | EVENTER_WRITE);
    ARK_ASSERT(eventer_get_closure(copy) == &closure_value);
    ARK_ASSERT(eventer_get_callback(copy) == done_without_remove);
    ARK_ASSERT(eventer_get_fd_opset(copy) == eventer_POSIX_fd_opset);
    ARK_ASSERT(eventer_fd_opset_get_read(eventer_POSIX_fd_opset) != NULL);
    eventer_set_closure(copy, NULL);
    ARK_ASSERT(eventer_get_closure(copy) == NULL);
    eventer_set_mask(copy, EVENTER_WRITE);
    ARK_ASSERT_EQ(eventer_get_mask(copy), EVENTER_WRITE);
    ARK_ASSERT_EQ(eventer_allocations_current(), 2);
    eventer_ref(copy);
    ARK_ASSERT(!eventer_free(copy));
    ARK_ASSERT(eventer_free(copy));
    ARK_ASSERT(eventer_deref(e));
    ARK_ASSERT_EQ(eventer_allocations_current(), 0);
    ARK_ASSERT(eventer_remove_fd(-1) == NULL);
    ARK_ASSERT(eventer_find_fd(-1) == NULL);
}

/*
 * A loop that never sleeps (an always-writable descriptor keeps it dispatching) still runs
 * the work other threads queue to it and the timers it holds, at their time and not before:
 * the loop skips the clock, the timers and the command queue in iterations that have none,
 * and this is what a user relies on when it does have some.
 */
struct busy_loop {
    int spins;
    int stop;
    int closed;
    int local_timer_added;
    int timers_fired;
    int timers_early;
    int triggers_run;
    int wrong_thread;
};

static struct busy_loop busy;

static int busy_timer(eventer_t e, int mask, void *closure, struct timeval *now)
{
    (void)closure;
    ARK_ASSERT(mask & EVENTER_TIMER);
    struct timeval whence = eventer_get_whence(e);
    if (now->tv_sec < whence.tv_sec ||
        (now->tv_sec == whence.tv_sec && now->tv_usec < whence.tv_usec))
        test_increment(&busy.timers_early);
    if (test_loop_index() != 0)
        test_increment(&busy.wrong_thread);
    test_increment(&busy.timers_fired);
    return 0;
}

static int busy_triggered(eventer_t e, int mask, void *closure, struct timeval *now)
{
    (void)e;
    (void)closure;
    (void)now;
    ARK_ASSERT(mask & EVENTER_READ);
    if (test_loop_index() != 0)
        test_increment(&busy.wrong_thread);
    test_increment(&busy.triggers_run);
    return 0; /* never registered: freed */
}

static int busy_writable(eventer_t e, int mask, void *closure, struct timeval *now)
{
    (void)mask;
    (void)closure;
    (void)now;
    test_increment(&busy.spins);
    if (!busy.local_timer_added) {
        busy.local_timer_added = 1;
        ARK_ASSERT(eventer_add_in_s_us(busy_timer, NULL, 0, 2000) != NULL);
    }
    if (test_load(&busy.stop)) {
        eventer_remove_fde(e);
        eventer_close(e, &mask);
        test_increment(&busy.closed);
        return 0;
    }
    return EVENTER_WRITE; /* still writable: dispatched again at once */
}

ARK_TEST(cross_thread_work_reaches_a_loop_that_never_sleeps)
{
    enum { CROSS_TIMERS = 50, TRIGGERS = 50 };
    memset(&busy, 0, sizeof(busy));
    test_eventer_start(1);
    int pair[2];
    ARK_ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
    ARK_ASSERT_EQ(eventer_set_fd_nonblocking(pair[0]), 0);
    eventer_t writer = eventer_alloc_fd(busy_writable, NULL, pair[0], EVENTER_WRITE);
    eventer_set_owner(writer, eventer_choose_owner(0));
    eventer_add(writer);
    test_wait_for_count(&busy.spins, 1000, "busy loop spinning");
    for (int i = 0; i < CROSS_TIMERS; i++) {
        eventer_t timer = eventer_in_s_us(busy_timer, NULL, 0, (unsigned long)(i % 5) * 1000);
        eventer_set_owner(timer, eventer_choose_owner(0));
        eventer_add(timer);
    }
    for (int i = 0; i < TRIGGERS; i++) {
        eventer_t floated = eventer_alloc_fd(busy_triggered, NULL, pair[1], EVENTER_READ);
        eventer_set_owner(floated, eventer_choose_owner(0));
        eventer_trigger(floated, EVENTER_READ);
        if (i % 10 == 0)
            test_sleep_ms(1); /* some land while the queue is empty again */
    }
    test_wait_for_count(&busy.triggers_run, TRIGGERS, "triggers on the busy loop");
    test_wait_for_count(&busy.timers_fired, CROSS_TIMERS + 1, "timers on the busy loop");
    int spins_before = test_load(&busy.spins);
    test_wait_for_count(&busy.spins, spins_before + 1000, "still spinning");
    __atomic_store_n(&busy.stop, 1, __ATOMIC_RELEASE);
    test_wait_for_count(&busy.closed, 1, "busy event closed");
    ARK_ASSERT_EQ(test_load(&busy.timers_early), 0);
    ARK_ASSERT_EQ(test_load(&busy.wrong_thread), 0);
    close(pair[1]);
    test_eventer_stop();
}
