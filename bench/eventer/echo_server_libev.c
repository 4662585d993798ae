/* The echo server on libev (Debian libev-dev): one ev_io watcher per connection. */
#include "echo_server.h"

#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct libev_connection {
    ev_io watcher; /* first: the callback gets this pointer */
    char *pending;
    size_t pending_offset, pending_length;
};

static char read_buffer[ECHO_READ_BUFFER];

static void close_connection(struct ev_loop *loop, struct libev_connection *connection)
{
    ev_io_stop(loop, &connection->watcher);
    close(connection->watcher.fd);
    free(connection->pending);
    free(connection);
}

static void want(struct ev_loop *loop, struct libev_connection *connection, int events)
{
    ev_io_stop(loop, &connection->watcher);
    ev_io_set(&connection->watcher, connection->watcher.fd, events);
    ev_io_start(loop, &connection->watcher);
}

static void on_connection(struct ev_loop *loop, ev_io *watcher, int revents)
{
    struct libev_connection *connection = (struct libev_connection *)watcher;
    int fd = watcher->fd;
    (void)revents;
    if (connection->pending) {
        while (connection->pending_length) {
            ssize_t wrote = write(fd, connection->pending + connection->pending_offset,
                                  connection->pending_length);
            if (wrote < 0) {
                if (errno != EAGAIN)
                    close_connection(loop, connection);
                return;
            }
            connection->pending_offset += (size_t)wrote;
            connection->pending_length -= (size_t)wrote;
        }
        free(connection->pending);
        connection->pending = NULL;
        want(loop, connection, EV_READ);
        return;
    }
    ssize_t got = read(fd, read_buffer, sizeof(read_buffer));
    if (got < 0 && errno == EAGAIN)
        return;
    if (got <= 0) {
        close_connection(loop, connection);
        return;
    }
    ssize_t wrote = write(fd, read_buffer, (size_t)got);
    if (wrote == got)
        return;
    if (wrote < 0) {
        if (errno != EAGAIN) {
            close_connection(loop, connection);
            return;
        }
        wrote = 0;
    }
    connection->pending_length = (size_t)(got - wrote);
    connection->pending_offset = 0;
    connection->pending = malloc(connection->pending_length);
    if (!connection->pending) {
        close_connection(loop, connection);
        return;
    }
    memcpy(connection->pending, read_buffer + wrote, connection->pending_length);
    want(loop, connection, EV_WRITE);
}

static void on_listen(struct ev_loop *loop, ev_io *watcher, int revents)
{
    (void)revents;
    int fd;
    while ((fd = accept4(watcher->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        echo_set_nodelay(fd);
        struct libev_connection *connection = calloc(1, sizeof(*connection));
        if (!connection) {
            close(fd);
            continue;
        }
        ev_io_init(&connection->watcher, on_connection, fd, EV_READ);
        ev_io_start(loop, &connection->watcher);
    }
}

int echo_serve_libev(int listen_fd)
{
    struct ev_loop *loop = ev_default_loop(EVBACKEND_EPOLL);
    if (!loop) {
        fprintf(stderr, "libev: no epoll backend\n");
        return -1;
    }
    ev_io listener;
    ev_io_init(&listener, on_listen, listen_fd, EV_READ);
    ev_io_start(loop, &listener);
    ev_run(loop, 0);
    return -1;
}
