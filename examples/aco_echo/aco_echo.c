/*
 * The seed's second ACO example, "Moving an event to aco", as a small TCP echo server.
 *
 * A classic listener accepts connections and gives each one a classic fd event whose
 * callback is the seed's classic_callback(): it takes the event out of the eventer, copies
 * it, and starts my_aco_process() with the copy, which converts it to an aco event. Where the
 * seed says "Use eventer_aco_* functions to interact with e", this program echoes what the
 * client sends (lines or not) until the client closes or stays silent for 10 seconds.
 *
 *     aco_echo [port]            # serve on 127.0.0.1:port (0 or none: any free port)
 *     aco_echo --self-test N     # serve, connect N clients to itself, check the echoes, exit
 *
 * The listening address is printed on stdout as "listening on 127.0.0.1:PORT".
 */
#include <eventer/eventer.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the seed's example ---- */

static void my_aco_process(void);

static int classic_callback(eventer_t e, int mask, void *c, struct timeval *now)
{
    // First we must remove the event from the eventer system.
    eventer_remove_fde(e);

    // When we return 0 from this function, the event will be freed,
    // so we need a copy.
    eventer_t copy = eventer_alloc_copy(e);

    // This event needs to be converted to an aco event, but we don't
    // have a coroutine yet.
    eventer_aco_start(my_aco_process, copy);

    return 0;
}

static int connections_done; /* atomic; not in the seed: the self-test waits on it */

static void my_aco_process(void)
{
    eventer_t classic_e = eventer_aco_arg();

    // We're now in an aco context so we can convert this to an aco event.
    eventer_aco_t e = eventer_set_eventer_aco(classic_e);

    // Use eventer_aco_* functions to interact with e.
    struct timeval idle = {.tv_sec = 10};
    char buffer[128];
    for (;;) {
        int got = eventer_aco_read(e, buffer, sizeof(buffer), &idle);
        if (got <= 0)
            break; /* end of stream, error, or ETIME after 10 s of silence */
        if (eventer_aco_write(e, buffer, (size_t)got, NULL) != got)
            break;
    }
    eventer_aco_close(e);
    eventer_aco_free(e);
    __atomic_add_fetch(&connections_done, 1, __ATOMIC_RELEASE);

    aco_exit();
}

/* ---- the server around it ---- */

static int accept_callback(eventer_t e, int mask, void *closure, struct timeval *now)
{
    for (;;) {
        int fd = eventer_accept(e, NULL, NULL, &mask);
        if (fd < 0)
            return errno == EAGAIN || errno == EINTR ? EVENTER_READ | EVENTER_EXCEPTION : 0;
        if (eventer_set_fd_nonblocking(fd) < 0) {
            close(fd);
            continue;
        }
        eventer_t connection =
            eventer_alloc_fd(classic_callback, NULL, fd, EVENTER_READ | EVENTER_EXCEPTION);
        eventer_set_owner(connection, eventer_choose_owner(fd));
        eventer_add(connection);
    }
}

static int listen_on(int port, int *bound_port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    if (bind(fd, (struct sockaddr *)&address, sizeof(address)) < 0 || listen(fd, 1024) < 0 ||
        getsockname(fd, (struct sockaddr *)&address, &length) < 0) {
        perror("aco_echo: listen");
        close(fd);
        return -1;
    }
    *bound_port = ntohs(address.sin_port);
    return fd;
}

/* ---- --self-test: clients in a thread of this process ---- */

struct self_test {
    int port;
    int clients;
    int failures;
};

static int exchange(int fd, const char *text)
{
    size_t length = strlen(text);
    if (write(fd, text, length) != (ssize_t)length)
        return -1;
    char reply[128];
    size_t got = 0;
    while (got < length) {
        ssize_t n = read(fd, reply + got, length - got);
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return memcmp(reply, text, length) == 0 ? 0 : -1;
}

static void *run_clients(void *argument)
{
    struct self_test *t = argument;
    int *fds = calloc((size_t)t->clients, sizeof(int));
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)t->port)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < t->clients; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&address, sizeof(address)) < 0)
            t->failures++;
    }
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < t->clients; i++)
            if (fds[i] >= 0 && exchange(fds[i], "hello, co-routine\n") < 0)
                t->failures++;
    for (int i = 0; i < t->clients; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(fds);
    /* Each co sees its client's end of stream, closes, and counts itself. */
    for (int waited = 0; waited < 20000; waited++) {
        if (__atomic_load_n(&connections_done, __ATOMIC_ACQUIRE) >= t->clients)
            break;
        usleep(1000);
    }
    if (__atomic_load_n(&connections_done, __ATOMIC_ACQUIRE) != t->clients)
        t->failures++;
    eventer_shutdown();
    return NULL;
}

int main(int argc, char **argv)
{
    int port = 0, self_test_clients = 0;
    if (argc == 3 && !strcmp(argv[1], "--self-test"))
        self_test_clients = atoi(argv[2]);
    else if (argc == 2)
        port = atoi(argv[1]);
    else if (argc != 1) {
        fprintf(stderr, "usage: %s [port] | --self-test N\n", argv[0]);
        return 2;
    }
    if (eventer_init() != 0)
        return 1;
    int bound_port = 0;
    int listen_fd = listen_on(port, &bound_port);
    if (listen_fd < 0)
        return 1;
    printf("listening on 127.0.0.1:%d\n", bound_port);
    fflush(stdout);
    eventer_add(
        eventer_alloc_fd(accept_callback, NULL, listen_fd, EVENTER_READ | EVENTER_EXCEPTION));
    struct self_test test = {bound_port, self_test_clients, 0};
    pthread_t clients;
    if (self_test_clients > 0)
        pthread_create(&clients, NULL, run_clients, &test);
    eventer_loop();
    close(listen_fd);
    if (self_test_clients > 0) {
        pthread_join(clients, NULL);
        printf("self-test: %d connections, %d failures\n", self_test_clients, test.failures);
        return test.failures ? 1 : 0;
    }
    return 0;
}
