/*
 * The echo server on Arkenstone's eventer with classic callbacks: one loop thread
 * (concurrency 1, for a fair comparison with the single-threaded peers), an accept event on
 * the listening socket, and one fd event per connection whose callback returns its next
 * interest mask.
 */
#include "echo_server.h"

#include <eventer/eventer.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct arkenstone_connection {
    char *pending;
    size_t pending_offset, pending_length;
};

static char read_buffer[ECHO_READ_BUFFER];

static int finish(eventer_t e, struct arkenstone_connection *connection)
{
    int mask;
    eventer_remove_fde(e);
    eventer_close(e, &mask);
    free(connection->pending);
    free(connection);
    return 0;
}

static int on_connection(eventer_t e, int mask, void *closure, struct timeval *now)
{
    struct arkenstone_connection *connection = closure;
    (void)now;
    if (connection->pending) {
        while (connection->pending_length) {
            int wrote = eventer_write(e, connection->pending + connection->pending_offset,
                                      connection->pending_length, &mask);
            if (wrote < 0)
                return errno == EAGAIN ? mask : finish(e, connection);
            connection->pending_offset += (size_t)wrote;
            connection->pending_length -= (size_t)wrote;
        }
        free(connection->pending);
        connection->pending = NULL;
        return EVENTER_READ | EVENTER_EXCEPTION;
    }
    int got = eventer_read(e, read_buffer, sizeof(read_buffer), &mask);
    if (got < 0 && errno == EAGAIN)
        return mask;
    if (got <= 0)
        return finish(e, connection);
    int wrote = eventer_write(e, read_buffer, (size_t)got, &mask);
    if (wrote == got)
        return EVENTER_READ | EVENTER_EXCEPTION;
    if (wrote < 0) {
        if (errno != EAGAIN)
            return finish(e, connection);
        wrote = 0;
    }
    connection->pending_length = (size_t)(got - wrote);
    connection->pending_offset = 0;
    connection->pending = malloc(connection->pending_length);
    if (!connection->pending)
        return finish(e, connection);
    memcpy(connection->pending, read_buffer + wrote, connection->pending_length);
    return EVENTER_WRITE | EVENTER_EXCEPTION;
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
        struct arkenstone_connection *connection = calloc(1, sizeof(*connection));
        eventer_t client = connection ? eventer_alloc_fd(on_connection, connection, fd,
                                                         EVENTER_READ | EVENTER_EXCEPTION)
                                      : NULL;
        if (!client) {
            free(connection);
            close(fd);
            continue;
        }
        eventer_add(client);
    }
}

int echo_serve_arkenstone(int listen_fd)
{
    if (eventer_propset("concurrency", "1") < 0 || eventer_init() < 0) {
        fprintf(stderr, "arkenstone: eventer_init failed\n");
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
