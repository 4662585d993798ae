/*
 * arkend as a user runs it: started on loopback from a configuration file, asked over HTTP,
 * stopped by PID with SIGTERM (finishing the request in flight), and refusing bad
 * configurations with the file, the line and the problem.
 */
#include "ark_net.h"
#include "ark_test.h"
#include "arkend.h"

#include <eventer/eventer.h>
#include <mtev_conf.h>
#include <mtev_listener.h>
#include <mtev_rest.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static char directory[64];

static void make_directory(void)
{
    snprintf(directory, sizeof(directory), "/tmp/ark_arkend_XXXXXX");
    ARK_ASSERT(mkdtemp(directory));
}

static void remove_directory(void)
{
    char command[128];
    snprintf(command, sizeof(command), "rm -rf %s", directory);
    ARK_ASSERT_EQ(system(command), 0);
}

static void write_file(const char *name, const char *text, char *path, size_t capacity)
{
    snprintf(path, capacity, "%s/%s", directory, name);
    FILE *file = fopen(path, "w");
    ARK_ASSERT(file);
    fputs(text, file);
    fclose(file);
}

/* Starts arkend -D -c path with stderr to directory/stderr.txt; returns its PID. */
static pid_t start_arkend(const char *config_path)
{
    char stderr_path[128];
    snprintf(stderr_path, sizeof(stderr_path), "%s/stderr.txt", directory);
    pid_t pid = fork();
    ARK_ASSERT_GE(pid, 0);
    if (pid == 0) {
        /* If the case dies (a failed assertion), arkend must not outlive it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(stderr_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        execl(ARKEND_PATH, "arkend", "-D", "-c", config_path, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int wait_exit_status(pid_t pid)
{
    int status = 0;
    for (int i = 0; i < 20000; i++) {
        pid_t done = waitpid(pid, &status, WNOHANG);
        if (done == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        usleep(1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    ark_test_fail(__FILE__, __LINE__, "arkend did not exit within 20 s");
}

static void read_stderr(char *buffer, size_t capacity)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/stderr.txt", directory);
    FILE *file = fopen(path, "r");
    ARK_ASSERT(file);
    size_t got = fread(buffer, 1, capacity - 1, file);
    buffer[got] = '\0';
    fclose(file);
}

static int connect_when_up(int port)
{
    for (int i = 0; i < 2000; i++) {
        int fd = ark_net_connect("127.0.0.1", port);
        if (fd >= 0)
            return fd;
        usleep(5000);
    }
    ark_test_fail(__FILE__, __LINE__, "arkend did not open port %d", port);
}

static int aco_port;

static pid_t start_on_free_port(int *port)
{
    *port = ark_net_free_port();
    aco_port = ark_net_free_port();
    char config[512], path[128];
    snprintf(config, sizeof(config),
             "<arkend><listeners><listener type=\"http_rest_api\" address=\"127.0.0.1\" "
             "port=\"%d\"/><listener type=\"listen_to_me\" address=\"127.0.0.1\" "
             "port=\"%d\"/></listeners></arkend>\n",
             *port, aco_port);
    write_file("arkend.conf", config, path, sizeof(path));
    return start_arkend(path);
}

ARK_TEST(arkend_serves_hello_and_stats_and_stops_on_sigterm)
{
    make_directory();
    int port;
    pid_t pid = start_on_free_port(&port);
    int fd = connect_when_up(port);
    char response[8192];
    int status = 0;
    ARK_ASSERT_EQ(ark_net_send_str(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    ARK_ASSERT_GT(ark_net_read_http_response(fd, response, sizeof(response), &status), 0);
    ARK_ASSERT_EQ(status, 200);
    ARK_ASSERT_STR_EQ(ark_net_http_body(response), "Hello world.\n");
    ARK_ASSERT_EQ(ark_net_send_str(fd, "GET /eventer/stats.json HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    ARK_ASSERT_GT(ark_net_read_http_response(fd, response, sizeof(response), &status), 0);
    ARK_ASSERT_EQ(status, 200);
    const char *body = ark_net_http_body(response);
    ARK_ASSERT_MSG(strstr(body, "\"loop_threads\": ") && strstr(body, "\"default_queue\": "), "%s",
                   body);
    close(fd);
    ARK_ASSERT_EQ(kill(pid, SIGTERM), 0);
    ARK_ASSERT_EQ(wait_exit_status(pid), 0);
    char text[8192];
    read_stderr(text, sizeof(text));
    ARK_ASSERT_MSG(strstr(text, "arkend: stopped"), "%s", text);
    remove_directory();
}

ARK_TEST(arkend_finishes_the_request_in_flight_on_sigterm)
{
    make_directory();
    int port;
    pid_t pid = start_on_free_port(&port);
    int fd = connect_when_up(port);
    /* /hello takes about a second; stop arkend while it is being answered. */
    ARK_ASSERT_EQ(ark_net_send_str(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    usleep(200000);
    ARK_ASSERT_EQ(kill(pid, SIGTERM), 0);
    char response[4096], value[32];
    int status = 0;
    ARK_ASSERT_GT(ark_net_read_http_response(fd, response, sizeof(response), &status), 0);
    ARK_ASSERT_EQ(status, 200);
    ARK_ASSERT_STR_EQ(ark_net_http_body(response), "Hello world.\n");
    /* Draining: the connection is not kept alive. */
    ARK_ASSERT_STR_EQ(ark_net_http_header(response, "Connection", value, sizeof(value)), "close");
    close(fd);
    ARK_ASSERT_EQ(wait_exit_status(pid), 0);
    /* No new connections once stopping. */
    ARK_ASSERT_LT(ark_net_connect("127.0.0.1", port), 0);
    remove_directory();
}

ARK_TEST(arkend_bad_configuration_names_file_line_and_problem)
{
    make_directory();
    char path[128], text[8192];
    write_file("broken.conf",
               "<arkend>\n  <listeners>\n    <listener type=\"http_rest_api\"\n"
               "</arkend>\n",
               path, sizeof(path));
    pid_t pid = start_arkend(path);
    ARK_ASSERT_EQ(wait_exit_status(pid), 2);
    read_stderr(text, sizeof(text));
    ARK_ASSERT_MSG(strstr(text, "broken.conf:4:"), "%s", text);

    write_file("badport.conf",
               "<arkend>\n  <listeners>\n"
               "    <listener type=\"http_rest_api\" address=\"127.0.0.1\" port=\"eighty\"/>\n"
               "  </listeners>\n</arkend>\n",
               path, sizeof(path));
    pid = start_arkend(path);
    ARK_ASSERT_EQ(wait_exit_status(pid), 2);
    read_stderr(text, sizeof(text));
    ARK_ASSERT_MSG(strstr(text, "badport.conf:3: listener http_rest_api: port \"eighty\""), "%s",
                   text);

    pid = start_arkend("/nonexistent/arkend.conf");
    ARK_ASSERT_EQ(wait_exit_status(pid), 2);
    read_stderr(text, sizeof(text));
    ARK_ASSERT_MSG(strstr(text, "/nonexistent/arkend.conf"), "%s", text);
    remove_directory();
}

/* The daemon, once known: killed if the case fails (it left the case's process group). */
static volatile pid_t daemon_pid;
static void kill_daemon_on_abort(int signal_number)
{
    if (daemon_pid > 0)
        kill(daemon_pid, SIGKILL);
    signal(signal_number, SIG_DFL);
    raise(signal_number);
}

static int read_pid_file(const char *path)
{
    FILE *file = fopen(path, "r");
    if (!file)
        return -1;
    int pid = -1;
    if (fscanf(file, "%d", &pid) != 1)
        pid = -1;
    fclose(file);
    return pid;
}

ARK_TEST(arkend_daemonizes_writes_its_pid_file_and_stops_by_that_pid)
{
    make_directory();
    /* The daemon is reparented to this process, which can then wait for its exit status. */
    ARK_ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    signal(SIGABRT, kill_daemon_on_abort);
    int port = ark_net_free_port();
    char config[512], config_path[128], pid_path[160], log_path[160], stderr_path[160];
    snprintf(config, sizeof(config),
             "<arkend><listeners><listener type=\"http_rest_api\" address=\"127.0.0.1\" "
             "port=\"%d\"/></listeners></arkend>\n",
             port);
    write_file("daemon.conf", config, config_path, sizeof(config_path));
    snprintf(pid_path, sizeof(pid_path), "%s/arkend.pid", directory);
    snprintf(log_path, sizeof(log_path), "%s/arkend.log", directory);
    snprintf(stderr_path, sizeof(stderr_path), "%s/stderr.txt", directory);
    pid_t command = fork();
    ARK_ASSERT_GE(command, 0);
    if (command == 0) {
        int fd = open(stderr_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        execl(ARKEND_PATH, "arkend", "-c", config_path, "-p", pid_path, "-l", log_path,
              (char *)NULL);
        _exit(127);
    }
    /* The command returns once the daemon's listeners are open. */
    ARK_ASSERT_EQ(wait_exit_status(command), 0);
    int pid = read_pid_file(pid_path);
    daemon_pid = pid;
    ARK_ASSERT_GT(pid, 0);
    ARK_ASSERT_NE(pid, command);
    ARK_ASSERT_EQ(kill(pid, 0), 0);
    /* Detached: its own session (not its leader, so no controlling terminal can come back). */
    ARK_ASSERT_NE(getsid(pid), getsid(0));
    ARK_ASSERT_NE(getsid(pid), pid);
    /* Up already: no retries needed. */
    int fd = ark_net_connect("127.0.0.1", port);
    ARK_ASSERT_GE(fd, 0);
    char response[4096], text[8192];
    int status = 0;
    ARK_ASSERT_EQ(ark_net_send_str(fd, "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    ARK_ASSERT_GT(ark_net_read_http_response(fd, response, sizeof(response), &status), 0);
    ARK_ASSERT_EQ(status, 200);
    ARK_ASSERT_STR_EQ(ark_net_http_body(response), "pong\n");
    close(fd);
    /* A second daemon on the same pid file refuses, saying who holds it. */
    pid_t second = fork();
    ARK_ASSERT_GE(second, 0);
    if (second == 0) {
        int err = open(stderr_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(err, 2);
        execl(ARKEND_PATH, "arkend", "-c", config_path, "-p", pid_path, (char *)NULL);
        _exit(127);
    }
    ARK_ASSERT_EQ(wait_exit_status(second), 2);
    read_stderr(text, sizeof(text));
    char held[64];
    snprintf(held, sizeof(held), "held by a running arkend (pid %d)", pid);
    ARK_ASSERT_MSG(strstr(text, held), "%s", text);
    ARK_ASSERT_EQ(read_pid_file(pid_path), pid);

    ARK_ASSERT_EQ(kill(pid, SIGTERM), 0);
    ARK_ASSERT_EQ(wait_exit_status(pid), 0);
    daemon_pid = 0;
    ARK_ASSERT_EQ(access(pid_path, F_OK), -1);
    /* After startup its log went to the log file, not the terminal's stderr. */
    FILE *log = fopen(log_path, "r");
    ARK_ASSERT(log);
    size_t got = fread(text, 1, sizeof(text) - 1, log);
    text[got] = '\0';
    fclose(log);
    ARK_ASSERT_MSG(strstr(text, "arkend: stopped"), "%s", text);
    remove_directory();
}

/* In process, with arkend's stats endpoint: queues made at run time are listed too. */
ARK_TEST(arkend_stats_lists_queues_created_at_run_time)
{
    mtev_conf_init("arkend");
    ARK_ASSERT_EQ(mtev_conf_load_string(
                      "stats.conf", "<arkend><eventer><config><jobq_configured>2</jobq_configured>"
                                    "</config></eventer><listeners><listener "
                                    "type=\"http_rest_api\" address=\"127.0.0.1\" "
                                    "port=\"0\"/></listeners></arkend>"),
                  0);
    ARK_ASSERT_EQ(eventer_init(), 0);
    mtev_http_rest_init();
    arkend_stats_register();
    ARK_ASSERT_EQ(mtev_listener_init("arkend"), 1);
    eventer_jobq_t *runtime = eventer_jobq_create("made_at_runtime");
    ARK_ASSERT(runtime);
    eventer_jobq_set_concurrency(runtime, 3);
    ARK_ASSERT(eventer_jobq_create("odd\"name"));
    int fd = ark_net_connect("127.0.0.1", mtev_listener_get_port(0));
    ARK_ASSERT_GE(fd, 0);
    char response[16384];
    int status = 0;
    ARK_ASSERT_EQ(ark_net_send_str(fd, "GET /eventer/stats.json HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    ARK_ASSERT_GT(ark_net_read_http_response(fd, response, sizeof(response), &status), 0);
    ARK_ASSERT_EQ(status, 200);
    const char *body = ark_net_http_body(response);
    ARK_ASSERT_MSG(strstr(body, "\"made_at_runtime\": {\"concurrency\": 3,"), "%s", body);
    ARK_ASSERT_MSG(strstr(body, "\"default_queue\": {"), "%s", body);
    ARK_ASSERT_MSG(strstr(body, "\"configured\": {\"concurrency\": 2,"), "%s", body);
    ARK_ASSERT_MSG(strstr(body, "\"odd\\\"name\": {"), "%s", body);
    ARK_ASSERT_MSG(!strstr(body, "default_back_queue"), "%s", body);
    close(fd);
    eventer_shutdown();
    eventer_cleanup();
    mtev_conf_unload();
}
