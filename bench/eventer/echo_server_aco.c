/*
 * The echo server with one co-routine per connection: the classic accept callback of the
 * seed's example hands each connection to eventer_aco_start(), and the co reads and writes
 * in blocking style with eventer_aco_read/eventer_aco_write. One loop thread, like the
 * others. Each read lands in one static buffer (a co does not yield between its read and
 * its write unless the write comes up short; then the rest moves to the heap first, because
 * another co will read into the static buffer meanwhile).
 */
#include "echo_server.h"

#include <eventer/eventer.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char read_buffer[ECHO_READ_BUFFER];

/* Writes what the kernel did not take, from the heap; 0, or -1 when the connection failed. */
static int __attribute__((noinline)) write_rest(eventer_aco_t e, const char *data, size_t length)
{
    char *rest = malloc(length);
    if (!rest)
        return -1;
    memcpy(rest, data, length);
    size_t offset = 0;
    while (offset < length) {
        int wrote = eventer_aco_write(e, rest + offset, length - offset, NULL);
        if (wrote < 0)
            break;
        offset += (size_t)wrote;
    }
    free(rest);
    return offset == length ? 0 : -1;
}

static void serve_connection(void)
{
    eventer_aco_t e = eventer_set_eventer_aco(eventer_aco_arg());
    for (;;) {
        int got = eventer_aco_read(e, read_buffer, sizeof(read_buffer), NULL);
        if (got <= 0)
            break;
        /* eventer_aco_write() would wait holding the static buffer: try once without it. */
        int wrote = (int)write(eventer_aco_get_fd(e), read_buffer, (size_t)got);
        if (wrote == got)
            continue;
        if (wrote < 0) {
            if (errno != EAGAIN)
                break;
            wrote = 0;
        }
        if (write_rest(e, read_buffer + wrote, (size_t)(got - wrote)) < 0)
            break;
    }
    eventer_aco_close(e);
    eventer_aco_free(e);
    aco_exit();
}

static int on_listen(eventer_t e, int mask, void *closure, struct timeval *now)
{
    (void)closure;
    (void)now;
    for (;;) {
        int fd = eventer_accept(e, NULL, NULL, &mask);
        if (fd < 0)
            return errno == EAGAIN ? EVENTER_READ | EVENTER_EXCEPTION : mask;
        eventer_set_fd_nonblocking(fd);
        echo_set_nodelay(fd);
        eventer_t client = eventer_alloc_fd(NULL, NULL, fd, EVENTER_READ);
        if (!client) {
            close(fd);
            continue;
        }
        eventer_aco_start(serve_connection, client);
    }
}

int echo_serve_aco(int listen_fd)
{
    if (eventer_propset("concurrency", "1") < 0 || eventer_init() < 0) {
        fprintf(stderr, "aco: eventer_init failed\n");
        return -1;
    }
    eventer_t listener =
        eventer_alloc_fd(on_listen, NULL, listen_fd, EVENTER_READ | EVENTER_EXCEPTION);
    if (!listener)
        return -1;
    eventer_add(listener);
    eventer_loop();
    return -1;
}
