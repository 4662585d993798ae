/*
 * The seed's listener and REST examples, each started from an XML configuration on a free
 * loopback port, talked to, and stopped by PID.
 */
#include "ark_net.h"
#include "ark_test.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char directory[64];
static pid_t child;

/* Writes the configuration, starts `program` with it, waits until `port` answers. */
static int start_example(const char *program, const char *config, int port)
{
    snprintf(directory, sizeof(directory), "/tmp/ark_example_XXXXXX");
    ARK_ASSERT(mkdtemp(directory));
    char path[128];
    snprintf(path, sizeof(path), "%s/example.conf", directory);
    FILE *file = fopen(path, "w");
    ARK_ASSERT(file);
    fputs(config, file);
    fclose(file);
    child = fork();
    ARK_ASSERT_GE(child, 0);
    if (child == 0) {
        /* If the case dies (a failed assertion), the program must not outlive it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execl(program, program, path, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 2000; i++) {
        int fd = ark_net_connect("127.0.0.1", port);
        if (fd >= 0)
            return fd;
        usleep(5000);
    }
    ark_test_fail(__FILE__, __LINE__, "%s did not open port %d", program, port);
}

static void stop_example(void)
{
    ARK_ASSERT_EQ(kill(child, SIGTERM), 0);
    int status;
    ARK_ASSERT_EQ(waitpid(child, &status, 0), child);
    ARK_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
    char command[128];
    snprintf(command, sizeof(command), "rm -rf %s", directory);
    ARK_ASSERT_EQ(system(command), 0);
}

static const char *listener_config(int port)
{
    static char config[256];
    snprintf(config, sizeof(config),
             "<aco_listener><listeners><listener type=\"listen_to_me\" address=\"127.0.0.1\" "
             "port=\"%d\"/></listeners></aco_listener>\n",
             port);
    return config;
}

ARK_TEST(example_aco_listener_thanks_and_quitter)
{
    int port = ark_net_free_port();
    int fd = start_example(ACO_LISTENER_PATH, listener_config(port), port);
    char buffer[256];
    /* The seed writes 9 bytes of "thanks!\n": its terminating NUL travels too. */
    ARK_ASSERT_EQ(ark_net_send_str(fd, "hello"), 0);
    ARK_ASSERT_EQ(recv(fd, buffer, 9, MSG_WAITALL), 9);
    ARK_ASSERT(memcmp(buffer, "thanks!\n", 9) == 0);
    ARK_ASSERT_EQ(ark_net_send_str(fd, "quit"), 0);
    ssize_t got = ark_net_read_all(fd, buffer, sizeof(buffer));
    ARK_ASSERT_EQ(got, 9);
    ARK_ASSERT_STR_EQ(buffer, "quitter!\n");
    close(fd);
    stop_example();
}

ARK_TEST_TIMEOUT(example_aco_listener_says_bye_after_ten_idle_seconds, 60)
{
    int port = ark_net_free_port();
    int fd = start_example(ACO_LISTENER_PATH, listener_config(port), port);
    /* Several idle clients at once: each co has its own 10 s read timeout. */
    int others[3];
    for (int i = 0; i < 3; i++) {
        others[i] = ark_net_connect("127.0.0.1", port);
        ARK_ASSERT_GE(others[i], 0);
    }
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    char buffer[64];
    struct timeval patience = {20, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof(patience));
    ssize_t got = ark_net_read_all(fd, buffer, sizeof(buffer));
    clock_gettime(CLOCK_MONOTONIC, &end);
    ARK_ASSERT_EQ(got, 5);
    ARK_ASSERT_STR_EQ(buffer, "bye!\n");
    /* Not before the ten seconds (a lower bound only: no upper timing is asserted). */
    ARK_ASSERT_GE(end.tv_sec - start.tv_sec + (end.tv_nsec >= start.tv_nsec ? 0 : -1), 9);
    for (int i = 0; i < 3; i++) {
        setsockopt(others[i], SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof(patience));
        ARK_ASSERT_EQ(ark_net_read_all(others[i], buffer, sizeof(buffer)), 5);
        ARK_ASSERT_STR_EQ(buffer, "bye!\n");
        close(others[i]);
    }
    close(fd);
    stop_example();
}

ARK_TEST(example_aco_rest_hello)
{
    int port = ark_net_free_port();
    char config[256];
    snprintf(config, sizeof(config),
             "<myapp><listeners><listener type=\"http_rest_api\" address=\"127.0.0.1\" "
             "port=\"%d\"/></listeners></myapp>\n",
             port);
    int fd = start_example(ACO_REST_PATH, config, port);
    char response[4096];
    int status = 0;
    /* The seed's program opens its listener before it adds the rule: until then, 404. */
    for (int tries = 0; tries < 400; tries++) {
        ARK_ASSERT_EQ(ark_net_send_str(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
        ARK_ASSERT_GT(ark_net_read_http_response(fd, response, sizeof(response), &status), 0);
        if (status != 404)
            break;
        usleep(25000);
    }
    ARK_ASSERT_EQ(status, 200);
    for (int i = 0; i < 2; i++) {
        ARK_ASSERT_EQ(ark_net_send_str(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
        ARK_ASSERT_GT(ark_net_read_http_response(fd, response, sizeof(response), &status), 0);
        ARK_ASSERT_EQ(status, 200);
        ARK_ASSERT_STR_EQ(ark_net_http_body(response), "Hello world.\n");
    }
    /* Two clients at once: one waits for its job while the other is answered. */
    int other = ark_net_connect("127.0.0.1", port);
    ARK_ASSERT_GE(other, 0);
    ARK_ASSERT_EQ(ark_net_send_str(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    ARK_ASSERT_EQ(ark_net_send_str(other, "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    ARK_ASSERT_GT(ark_net_read_http_response(other, response, sizeof(response), &status), 0);
    ARK_ASSERT_EQ(status, 404);
    ARK_ASSERT_GT(ark_net_read_http_response(fd, response, sizeof(response), &status), 0);
    ARK_ASSERT_EQ(status, 200);
    close(other);
    close(fd);
    stop_example();
}
