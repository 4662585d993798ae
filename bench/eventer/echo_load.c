/* The echo load client (see echo_load.h). */
#include "echo_load.h"

#include "bench_support.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

struct load_connection {
    int fd;
    int received;     /* bytes of the current echo received so far */
    uint64_t sent_ns; /* when the current message was sent */
};

struct latencies {
    uint32_t *values; /* nanoseconds, saturated */
    size_t count, capacity;
};

static void record(struct latencies *latencies, uint64_t nanoseconds)
{
    if (latencies->count == latencies->capacity) {
        size_t capacity = latencies->capacity ? latencies->capacity * 2 : 1 << 16;
        uint32_t *grown = realloc(latencies->values, capacity * sizeof(uint32_t));
        if (!grown)
            return;
        latencies->values = grown;
        latencies->capacity = capacity;
    }
    latencies->values[latencies->count++] =
        nanoseconds > UINT32_MAX ? UINT32_MAX : (uint32_t)nanoseconds;
}

static int compare_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double percentile_us(struct latencies *latencies, double fraction)
{
    if (latencies->count == 0)
        return 0;
    return latencies->values[(size_t)(fraction * (double)(latencies->count - 1))] / 1000.0;
}

static int open_connections(const struct echo_load_options *options,
                            struct load_connection *connections, int poll_fd)
{
    for (int i = 0; i < options->connections; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 ||
            connect(fd, (const struct sockaddr *)&options->server, sizeof(options->server)) < 0) {
            fprintf(stderr, "echo load: connection %d: %s\n", i, strerror(errno));
            if (fd >= 0)
                close(fd);
            return -1;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        connections[i].fd = fd;
        struct epoll_event event = {.events = EPOLLIN, .data.ptr = &connections[i]};
        epoll_ctl(poll_fd, EPOLL_CTL_ADD, fd, &event);
    }
    return 0;
}

static int send_message(struct load_connection *connection, const char *message, int length,
                        uint64_t now)
{
    connection->sent_ns = now;
    connection->received = 0;
    /* A small message on an idle connection always fits in the socket buffer. */
    if (write(connection->fd, message, (size_t)length) != length) {
        fprintf(stderr, "echo load: short write: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

int echo_load_run(const struct echo_load_options *options, struct echo_load_result *result)
{
    memset(result, 0, sizeof(*result));
    int length = options->message_bytes;
    if (length < 1 || length > 4096 || options->connections < 1) {
        fprintf(stderr, "echo load: bad message size or connection count\n");
        return -1;
    }
    char message[4096], buffer[4096];
    memset(message, 'x', sizeof(message));
    struct load_connection *connections =
        calloc((size_t)options->connections, sizeof(*connections));
    int poll_fd = epoll_create1(EPOLL_CLOEXEC);
    struct latencies latencies = {0};
    int status = -1;
    for (int i = 0; connections && i < options->connections; i++)
        connections[i].fd = -1;
    if (!connections || poll_fd < 0 || open_connections(options, connections, poll_fd) < 0)
        goto done;

    uint64_t start = bench_now_ns();
    uint64_t window_start = start + (uint64_t)(options->warmup_seconds * 1e9);
    uint64_t window_end = window_start + (uint64_t)(options->measure_seconds * 1e9);
    uint64_t window_started_at = 0, cpu_at_start = 0;
    int in_window = 0;
    for (int i = 0; i < options->connections; i++)
        if (send_message(&connections[i], message, length, start) < 0)
            goto done;
    struct epoll_event ready[512];
    for (;;) {
        int count = epoll_wait(poll_fd, ready, 512, 100);
        uint64_t now = bench_now_ns();
        if (!in_window && now >= window_start) {
            in_window = 1;
            window_started_at = now;
            cpu_at_start = bench_thread_cpu_ns();
            if (options->on_window)
                options->on_window(options->closure, 0);
        }
        if (in_window && now >= window_end) {
            if (options->on_window)
                options->on_window(options->closure, 1);
            result->window_seconds = (double)(now - window_started_at) / 1e9;
            result->client_cpu_fraction =
                (double)(bench_thread_cpu_ns() - cpu_at_start) / (double)(now - window_started_at);
            break;
        }
        for (int i = 0; i < count; i++) {
            struct load_connection *connection = ready[i].data.ptr;
            ssize_t got = read(connection->fd, buffer, sizeof(buffer));
            if (got < 0 && errno == EAGAIN)
                continue;
            if (got <= 0) {
                fprintf(stderr, "echo load: the server closed a connection\n");
                goto done;
            }
            connection->received += (int)got;
            if (connection->received < length)
                continue;
            uint64_t back = bench_now_ns();
            if (in_window) {
                result->round_trips++;
                record(&latencies, back - connection->sent_ns);
            }
            if (send_message(connection, message, length, back) < 0)
                goto done;
        }
    }
    result->round_trips_per_second = (double)result->round_trips / result->window_seconds;
    qsort(latencies.values, latencies.count, sizeof(uint32_t), compare_u32);
    result->p50_us = percentile_us(&latencies, 0.5);
    result->p99_us = percentile_us(&latencies, 0.99);
    status = 0;
done:
    for (int i = 0; connections && i < options->connections; i++)
        if (connections[i].fd >= 0)
            close(connections[i].fd);
    if (poll_fd >= 0)
        close(poll_fd);
    free(connections);
    free(latencies.values);
    return status;
}
