/* The floor: an echo server on a bare level-triggered epoll loop, no library. */
#include "echo_server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

struct epoll_connection {
    int fd;
    char *pending; /* bytes the kernel did not take yet (malloc'd), NULL if none */
    size_t pending_offset, pending_length;
};

static char read_buffer[ECHO_READ_BUFFER];

static void close_connection(int poll_fd, struct epoll_connection *connection)
{
    epoll_ctl(poll_fd, EPOLL_CTL_DEL, connection->fd, NULL);
    close(connection->fd);
    free(connection->pending);
    free(connection);
}

/* Writes what is pending; returns 1 when all is written, 0 when it must wait, -1 on error. */
static int flush_pending(struct epoll_connection *connection)
{
    while (connection->pending_length) {
        ssize_t wrote = write(connection->fd, connection->pending + connection->pending_offset,
                              connection->pending_length);
        if (wrote < 0)
            return errno == EAGAIN ? 0 : -1;
        connection->pending_offset += (size_t)wrote;
        connection->pending_length -= (size_t)wrote;
    }
    free(connection->pending);
    connection->pending = NULL;
    return 1;
}

static void set_interest(int poll_fd, struct epoll_connection *connection, uint32_t events)
{
    struct epoll_event event = {.events = events, .data.ptr = connection};
    epoll_ctl(poll_fd, EPOLL_CTL_MOD, connection->fd, &event);
}

static void on_ready(int poll_fd, struct epoll_connection *connection, uint32_t events)
{
    if (connection->pending) {
        int flushed = flush_pending(connection);
        if (flushed < 0) {
            close_connection(poll_fd, connection);
        } else if (flushed > 0) {
            set_interest(poll_fd, connection, EPOLLIN);
        }
        return;
    }
    ssize_t got = read(connection->fd, read_buffer, sizeof(read_buffer));
    if (got < 0 && errno == EAGAIN)
        return;
    if (got <= 0) {
        close_connection(poll_fd, connection);
        return;
    }
    ssize_t wrote = write(connection->fd, read_buffer, (size_t)got);
    if (wrote == got)
        return;
    if (wrote < 0) {
        if (errno != EAGAIN) {
            close_connection(poll_fd, connection);
            return;
        }
        wrote = 0;
    }
    connection->pending_length = (size_t)(got - wrote);
    connection->pending_offset = 0;
    connection->pending = malloc(connection->pending_length);
    if (!connection->pending) {
        close_connection(poll_fd, connection);
        return;
    }
    memcpy(connection->pending, read_buffer + wrote, connection->pending_length);
    set_interest(poll_fd, connection, EPOLLOUT);
    (void)events;
}

int echo_serve_epoll(int listen_fd)
{
    int poll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (poll_fd < 0) {
        perror("epoll_create1");
        return -1;
    }
    /* The listening socket is told apart by a NULL pointer. */
    struct epoll_event listen_event = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(poll_fd, EPOLL_CTL_ADD, listen_fd, &listen_event) < 0) {
        perror("epoll_ctl");
        return -1;
    }
    struct epoll_event ready[256];
    for (;;) {
        int count = epoll_wait(poll_fd, ready, 256, -1);
        for (int i = 0; i < count; i++) {
            struct epoll_connection *connection = ready[i].data.ptr;
            if (connection) {
                on_ready(poll_fd, connection, ready[i].events);
                continue;
            }
            int fd;
            while ((fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                echo_set_nodelay(fd);
                connection = calloc(1, sizeof(*connection));
                if (!connection) {
                    close(fd);
                    continue;
                }
                connection->fd = fd;
                struct epoll_event event = {.events = EPOLLIN, .data.ptr = connection};
                if (epoll_ctl(poll_fd, EPOLL_CTL_ADD, fd, &event) < 0) {
                    close(fd);
                    free(connection);
                }
            }
        }
    }
}
