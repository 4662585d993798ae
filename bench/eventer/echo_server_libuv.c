/*
 * The echo server on libuv (Debian libuv1-dev), written the efficient way (one static read
 * buffer, uv_try_write first, uv_write of a copy only for what the kernel did not take), so
 * it does the same work as the others rather than libuv's textbook malloc-per-read echo.
 */
#include "echo_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

struct libuv_write {
    uv_write_t request;
    uv_buf_t buffer;
};

static char read_buffer[ECHO_READ_BUFFER];
static uv_loop_t *loop;

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buffer)
{
    (void)handle;
    (void)suggested;
    *buffer = uv_buf_init(read_buffer, sizeof(read_buffer));
}

static void on_closed(uv_handle_t *handle)
{
    free(handle);
}

static void on_written(uv_write_t *request, int status)
{
    struct libuv_write *write = (struct libuv_write *)request;
    (void)status;
    free(write->buffer.base);
    free(write);
}

static void on_read(uv_stream_t *stream, ssize_t got, const uv_buf_t *buffer)
{
    if (got < 0) {
        uv_close((uv_handle_t *)stream, on_closed);
        return;
    }
    if (got == 0)
        return;
    uv_buf_t out = uv_buf_init(buffer->base, (unsigned)got);
    int wrote = uv_try_write(stream, &out, 1);
    if (wrote == got)
        return;
    if (wrote < 0)
        wrote = 0;
    struct libuv_write *write = malloc(sizeof(*write));
    char *copy = malloc((size_t)(got - wrote));
    if (!write || !copy) {
        free(write);
        free(copy);
        uv_close((uv_handle_t *)stream, on_closed);
        return;
    }
    memcpy(copy, buffer->base + wrote, (size_t)(got - wrote));
    write->buffer = uv_buf_init(copy, (unsigned)(got - wrote));
    if (uv_write(&write->request, stream, &write->buffer, 1, on_written) < 0) {
        free(copy);
        free(write);
        uv_close((uv_handle_t *)stream, on_closed);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    uv_tcp_t *client = malloc(sizeof(*client));
    if (!client)
        return;
    uv_tcp_init(loop, client);
    if (uv_accept(server, (uv_stream_t *)client) != 0) {
        uv_close((uv_handle_t *)client, on_closed);
        return;
    }
    uv_tcp_nodelay(client, 1);
    uv_read_start((uv_stream_t *)client, on_alloc, on_read);
}

int echo_serve_libuv(int listen_fd)
{
    loop = uv_default_loop();
    uv_tcp_t server;
    uv_tcp_init(loop, &server);
    int error = uv_tcp_open(&server, listen_fd);
    if (error == 0)
        error = uv_listen((uv_stream_t *)&server, 4096, on_connection);
    if (error) {
        fprintf(stderr, "libuv: %s\n", uv_strerror(error));
        return -1;
    }
    uv_run(loop, UV_RUN_DEFAULT);
    return -1;
}
