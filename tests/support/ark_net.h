/*
 * Loopback client helpers for the tests of listeners, HTTP, REST and the programs: blocking
 * sockets with a receive timeout (so a broken server fails the case instead of hanging it).
 */
#ifndef ARK_NET_H
#define ARK_NET_H

#include <stddef.h>
#include <sys/types.h>

/* Connects to `ip` ("127.0.0.1" or "::1") port `port`; returns the fd or -1. 10 s timeouts. */
int ark_net_connect(const char *ip, int port);
/* Connects to a unix socket at `path`; returns the fd or -1. */
int ark_net_connect_unix(const char *path);
/* Sends all `length` bytes; returns 0 or -1. */
int ark_net_send_all(int fd, const void *bytes, size_t length);
/* Sends a NUL-terminated string. */
int ark_net_send_str(int fd, const char *text);
/*
 * Reads until `needle` was received, EOF, an error or the timeout; returns the number of bytes
 * stored in `buffer` (NUL-terminated, at most capacity - 1).
 */
ssize_t ark_net_read_until(int fd, char *buffer, size_t capacity, const char *needle);
/* Reads until EOF (or timeout); NUL-terminated; returns bytes. */
ssize_t ark_net_read_all(int fd, char *buffer, size_t capacity);
/*
 * Reads exactly one HTTP/1.x response (head, then a Content-Length, chunked or close-delimited
 * body) into `buffer` (NUL-terminated). Returns its length, or -1 on EOF/timeout before the
 * response was complete. `*status` (may be NULL) receives the status code. A 1xx interim
 * response is read as a response of its own.
 */
ssize_t ark_net_read_http_response(int fd, char *buffer, size_t capacity, int *status);
/* Returns a pointer to the body of a response read by ark_net_read_http_response(). */
const char *ark_net_http_body(const char *response);
/* The value of header `name` in a response (copied into `value`), or NULL. */
const char *ark_net_http_header(const char *response, const char *name, char *value,
                                size_t capacity);
/* True when the peer closed: a read returns 0 within the timeout (no data expected). */
int ark_net_peer_closed(int fd);
/*
 * A loopback TCP port that was free a moment ago (the kernel's choice for port 0), for a server
 * started in another process. Fails the current test case when no port can be bound.
 */
int ark_net_free_port(void);
/*
 * Writes a fresh self-signed certificate for CN=localhost and its key (RSA, valid one day) to
 * `directory`/cert.pem and `directory`/key.pem with the openssl program. Fails the current
 * test case when openssl does not succeed.
 */
void ark_net_make_certificate(const char *directory);

#endif
