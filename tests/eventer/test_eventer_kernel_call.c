/*
 * The eventer's inline system calls (src/eventer/kernel_call.h), on their own so that the
 * cross-built aarch64 suite runs them under qemu too: results, errno on failure, and the
 * registers the calls must leave alone.
 */
#include "ark_test.h"

#include "eventer/kernel_call.h"

#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

ARK_TEST(read_and_write_move_bytes_through_a_pipe)
{
    int fds[2];
    ARK_ASSERT_EQ(pipe2(fds, O_NONBLOCK), 0);
    const char text[] = "through the pipe";
    ARK_ASSERT_EQ(eventer_kernel_call3(SYS_write, fds[1], (long)text, sizeof(text)),
                  (long)sizeof(text));
    char got[64] = {0};
    ARK_ASSERT_EQ(eventer_kernel_call3(SYS_read, fds[0], (long)got, sizeof(got)),
                  (long)sizeof(text));
    ARK_ASSERT(memcmp(got, text, sizeof(text)) == 0);
    errno = 0;
    ARK_ASSERT_EQ(eventer_kernel_call3(SYS_read, fds[0], (long)got, sizeof(got)), -1L);
    ARK_ASSERT_EQ(errno, EAGAIN);
    close(fds[0]);
    close(fds[1]);
}

ARK_TEST(sendto_and_recvfrom_use_all_six_arguments)
{
    int fds[2];
    ARK_ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    const char text[] = "over the socket";
    ARK_ASSERT_EQ(eventer_kernel_call6(SYS_sendto, fds[0], (long)text, sizeof(text), 0, 0, 0),
                  (long)sizeof(text));
    char got[64] = {0};
    /* MSG_PEEK in the fourth argument: the bytes stay for the next call. */
    ARK_ASSERT_EQ(
        eventer_kernel_call6(SYS_recvfrom, fds[1], (long)got, sizeof(got), MSG_PEEK, 0, 0),
        (long)sizeof(text));
    memset(got, 0, sizeof(got));
    ARK_ASSERT_EQ(eventer_kernel_call6(SYS_recvfrom, fds[1], (long)got, sizeof(got), 0, 0, 0),
                  (long)sizeof(text));
    ARK_ASSERT(memcmp(got, text, sizeof(text)) == 0);
    close(fds[0]);
    close(fds[1]);
}

ARK_TEST(failures_return_minus_one_with_errno)
{
    int fds[2];
    ARK_ASSERT_EQ(pipe(fds), 0);
    close(fds[0]);
    close(fds[1]);
    char byte;
    errno = 0;
    ARK_ASSERT_EQ(eventer_kernel_call3(SYS_read, fds[0], (long)&byte, 1), -1L);
    ARK_ASSERT_EQ(errno, EBADF);
    ARK_ASSERT_EQ(pipe(fds), 0);
    errno = 0;
    ARK_ASSERT_EQ(eventer_kernel_call6(SYS_recvfrom, fds[0], (long)&byte, 1, 0, 0, 0), -1L);
    ARK_ASSERT_EQ(errno, ENOTSOCK);
    close(fds[0]);
    close(fds[1]);
}

ARK_TEST(epoll_pwait_reports_a_ready_descriptor)
{
    int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    ARK_ASSERT(epoll_fd >= 0);
    int fds[2];
    ARK_ASSERT_EQ(pipe2(fds, O_NONBLOCK), 0);
    struct epoll_event interest = {.events = EPOLLIN, .data.fd = fds[0]};
    ARK_ASSERT_EQ(epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fds[0], &interest), 0);
    struct epoll_event ready[4];
    /* Nothing yet: a zero timeout returns 0. */
    ARK_ASSERT_EQ(eventer_kernel_call6(SYS_epoll_pwait, epoll_fd, (long)ready, 4, 0, 0, 8), 0L);
    ARK_ASSERT_EQ(write(fds[1], "x", 1), 1);
    ARK_ASSERT_EQ(eventer_kernel_call6(SYS_epoll_pwait, epoll_fd, (long)ready, 4, 1000, 0, 8), 1L);
    ARK_ASSERT_EQ(ready[0].data.fd, fds[0]);
    ARK_ASSERT(ready[0].events & EPOLLIN);
    close(fds[0]);
    close(fds[1]);
    close(epoll_fd);
}

/* Values live across many calls stay intact (the clobber lists are complete). */
ARK_TEST(values_live_across_calls_survive)
{
    int fds[2];
    ARK_ASSERT_EQ(pipe2(fds, O_NONBLOCK), 0);
    volatile long seed = 12345;
    long a = seed, b = seed * 3, c = seed * 5, d = seed * 7, e = seed * 11, f = seed * 13;
    long g = seed * 17, h = seed * 19;
    for (int i = 0; i < 1000; i++) {
        char byte = (char)i;
        ARK_ASSERT_EQ(eventer_kernel_call3(SYS_write, fds[1], (long)&byte, 1), 1L);
        ARK_ASSERT_EQ(eventer_kernel_call3(SYS_read, fds[0], (long)&byte, 1), 1L);
        ARK_ASSERT_EQ(byte, (char)i);
        a += 1, b += 2, c += 3, d += 4, e += 5, f += 6, g += 7, h += 8;
    }
    ARK_ASSERT_EQ(a, seed + 1000);
    ARK_ASSERT_EQ(b, seed * 3 + 2000);
    ARK_ASSERT_EQ(c, seed * 5 + 3000);
    ARK_ASSERT_EQ(d, seed * 7 + 4000);
    ARK_ASSERT_EQ(e, seed * 11 + 5000);
    ARK_ASSERT_EQ(f, seed * 13 + 6000);
    ARK_ASSERT_EQ(g, seed * 17 + 7000);
    ARK_ASSERT_EQ(h, seed * 19 + 8000);
    close(fds[0]);
    close(fds[1]);
}
