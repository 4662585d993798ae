/* Loopback client helpers (see ark_net.h). */
#include "ark_net.h"

#include "ark_test.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

static void set_timeouts(int fd)
{
    struct timeval timeout = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
}

int ark_net_connect(const char *ip, int port)
{
    struct sockaddr_storage address;
    memset(&address, 0, sizeof(address));
    socklen_t length;
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&address;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, ip, &in6->sin6_addr) != 1)
            return -1;
        length = sizeof(*in6);
    } else {
        struct sockaddr_in *in4 = (struct sockaddr_in *)&address;
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, ip, &in4->sin_addr) != 1)
            return -1;
        length = sizeof(*in4);
    }
    int fd = socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    set_timeouts(fd);
    if (connect(fd, (struct sockaddr *)&address, length) < 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

int ark_net_connect_unix(const char *path)
{
    struct sockaddr_un address;
    memset(&address, 0, sizeof(address));
    address.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(address.sun_path))
        return -1;
    strcpy(address.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    set_timeouts(fd);
    if (connect(fd, (struct sockaddr *)&address, sizeof(address)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int ark_net_send_all(int fd, const void *bytes, size_t length)
{
    const char *cursor = bytes;
    while (length > 0) {
        ssize_t sent = send(fd, cursor, length, MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        cursor += sent;
        length -= (size_t)sent;
    }
    return 0;
}

int ark_net_send_str(int fd, const char *text)
{
    return ark_net_send_all(fd, text, strlen(text));
}

ssize_t ark_net_read_until(int fd, char *buffer, size_t capacity, const char *needle)
{
    size_t used = 0;
    buffer[0] = '\0';
    while (used + 1 < capacity) {
        if (needle && strstr(buffer, needle))
            break;
        ssize_t got = recv(fd, buffer + used, capacity - 1 - used, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        used += (size_t)got;
        buffer[used] = '\0';
    }
    return (ssize_t)used;
}

ssize_t ark_net_read_all(int fd, char *buffer, size_t capacity)
{
    return ark_net_read_until(fd, buffer, capacity, NULL);
}

/* Reads more bytes into buffer; returns bytes read (0 at EOF/timeout). */
static ssize_t read_more(int fd, char *buffer, size_t *used, size_t capacity)
{
    if (*used + 1 >= capacity)
        return 0;
    for (;;) {
        ssize_t got = recv(fd, buffer + *used, capacity - 1 - *used, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return 0;
        *used += (size_t)got;
        buffer[*used] = '\0';
        return got;
    }
}

const char *ark_net_http_body(const char *response)
{
    const char *end = strstr(response, "\r\n\r\n");
    return end ? end + 4 : response + strlen(response);
}

const char *ark_net_http_header(const char *response, const char *name, char *value,
                                size_t capacity)
{
    const char *head_end = strstr(response, "\r\n\r\n");
    const char *line = strstr(response, "\r\n");
    size_t name_length = strlen(name);
    while (line && head_end && line < head_end) {
        line += 2;
        if (strncasecmp(line, name, name_length) == 0 && line[name_length] == ':') {
            const char *start = line + name_length + 1;
            while (*start == ' ')
                start++;
            const char *stop = strstr(start, "\r\n");
            size_t length = (size_t)(stop - start);
            if (length >= capacity)
                length = capacity - 1;
            memcpy(value, start, length);
            value[length] = '\0';
            return value;
        }
        line = strstr(line, "\r\n");
    }
    return NULL;
}

/*
 * Appends one received byte (NUL-terminated), so bytes past what the caller looks for stay in
 * the socket; 0, or -1 on a full buffer, EOF, an error or the timeout.
 */
static int receive_byte(int fd, char *buffer, size_t *used, size_t capacity)
{
    if (*used + 1 >= capacity)
        return -1;
    for (;;) {
        ssize_t got = recv(fd, buffer + *used, 1, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return -1;
        (*used)++;
        buffer[*used] = '\0';
        return 0;
    }
}

/*
 * Reads one response by receiving one byte at a time after the head, so bytes of a following
 * (pipelined) response are never consumed.
 */
ssize_t ark_net_read_http_response(int fd, char *buffer, size_t capacity, int *status)
{
    size_t used = 0;
    buffer[0] = '\0';
    while (!strstr(buffer, "\r\n\r\n")) {
        if (receive_byte(fd, buffer, &used, capacity) < 0)
            return -1;
    }
    int code = 0;
    if (sscanf(buffer, "HTTP/1.%*d %d", &code) != 1)
        return -1;
    if (status)
        *status = code;
    if (code < 200 || code == 204 || code == 304)
        return (ssize_t)used;
    char value[64];
    size_t head_length = used;
    if (ark_net_http_header(buffer, "Content-Length", value, sizeof(value))) {
        size_t want = head_length + (size_t)strtoull(value, NULL, 10);
        if (want + 1 > capacity)
            return -1;
        while (used < want) {
            ssize_t got = recv(fd, buffer + used, want - used, 0);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0)
                return -1;
            used += (size_t)got;
        }
        buffer[used] = '\0';
        return (ssize_t)used;
    }
    if (ark_net_http_header(buffer, "Transfer-Encoding", value, sizeof(value))) {
        while (!strstr(buffer + head_length, "\r\n0\r\n\r\n") &&
               strncmp(buffer + head_length, "0\r\n\r\n", 5) != 0) {
            if (receive_byte(fd, buffer, &used, capacity) < 0)
                return -1;
        }
        return (ssize_t)used;
    }
    while (read_more(fd, buffer, &used, capacity) > 0)
        ;
    return (ssize_t)used;
}

int ark_net_peer_closed(int fd)
{
    char byte;
    for (;;) {
        ssize_t got = recv(fd, &byte, 1, 0);
        if (got < 0 && errno == EINTR)
            continue;
        return got == 0 || (got < 0 && errno == ECONNRESET);
    }
}

int ark_net_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ARK_ASSERT_GE(fd, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ARK_ASSERT_EQ(bind(fd, (struct sockaddr *)&address, sizeof(address)), 0);
    socklen_t length = sizeof(address);
    getsockname(fd, (struct sockaddr *)&address, &length);
    close(fd);
    return ntohs(address.sin_port);
}

void ark_net_make_certificate(const char *directory)
{
    char command[512];
    snprintf(command, sizeof(command),
             "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
             "-keyout %s/key.pem -out %s/cert.pem >/dev/null 2>&1",
             directory, directory);
    ARK_ASSERT_EQ(system(command), 0);
}
