/*
 * The echo servers the echo benchmark compares. Every implementation does the same work, so
 * that only the event machinery differs: accept connections on an already-listening
 * non-blocking socket, set TCP_NODELAY, and on each readiness of a connection make ONE read
 * (up to 64 KiB) and write the bytes straight back; bytes the kernel does not take are kept
 * and the connection waits for writability until they are gone; end of stream or an error
 * closes the connection. All run on a single thread (our eventer with one loop thread).
 *
 * Adding an implementation (for example a co-routine server):
 *   1. write echo_server_NAME.c with `int echo_serve_NAME(int listen_fd)` that serves
 *      forever as described above (it never returns unless it fails: then return -1 after
 *      printing why);
 *   2. declare it below and add a row to echo_servers[] in echo_servers.c (the name is what
 *      --servers selects; the first row is "ours", the one every ratio is computed for, so
 *      a second server of ours gets its own ratios with --ours NAME);
 *   3. add the file to bench_echo's sources in CMakeLists.txt.
 * The driver (bench_echo.c) and the load client (echo_load.c) need no change.
 */
#ifndef ARK_BENCH_ECHO_SERVER_H
#define ARK_BENCH_ECHO_SERVER_H

/* Each serves `listen_fd` (non-blocking, listening) forever; returns -1 on failure. */
typedef int (*echo_serve_function_t)(int listen_fd);

struct echo_server_implementation {
    const char *name;        /* what --servers and the output call it */
    const char *description; /* one line printed in the header */
    echo_serve_function_t serve;
};

/* The table; terminated by a row with a NULL name. */
extern const struct echo_server_implementation echo_servers[];

/* Returns the row called `name`, or NULL. */
const struct echo_server_implementation *echo_server_find(const char *name);

int echo_serve_arkenstone(int listen_fd);
int echo_serve_aco(int listen_fd);
int echo_serve_libuv(int listen_fd);
int echo_serve_libev(int listen_fd);
int echo_serve_epoll(int listen_fd);

/* Shared by the implementations: TCP_NODELAY on an accepted connection. */
void echo_set_nodelay(int fd);

/* Size of the read buffer every implementation uses. */
#define ECHO_READ_BUFFER 65536

#endif
