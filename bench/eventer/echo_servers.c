/* The table of echo server implementations (see echo_server.h for how to add one). */
#include "echo_server.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

const struct echo_server_implementation echo_servers[] = {
    {"arkenstone", "eventer_* classic callbacks, eventer_read/eventer_write, 1 loop thread",
     echo_serve_arkenstone},
    {"aco", "one eventer_aco co-routine per connection, eventer_aco_read/write, 1 loop thread",
     echo_serve_aco},
    {"libuv", "libuv: uv_read_start with one static buffer, uv_try_write, uv_write for the rest",
     echo_serve_libuv},
    {"libev", "libev: ev_io per connection, read, write back, EV_WRITE only when short",
     echo_serve_libev},
    {"epoll", "bare level-triggered epoll_wait loop, read/write, no library (the floor)",
     echo_serve_epoll},
    {NULL, NULL, NULL},
};

const struct echo_server_implementation *echo_server_find(const char *name)
{
    for (const struct echo_server_implementation *row = echo_servers; row->name; row++)
        if (!strcmp(row->name, name))
            return row;
    return NULL;
}

void echo_set_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}
