/*
 * arkend: the Arkenstone host program. Loads a configuration (embedded by default), opens its
 * listeners, serves REST with built-in endpoints, and stops cleanly on SIGTERM/SIGINT after
 * the requests in flight are answered.
 */
#include "arkend.h"

#include <eventer/eventer.h>
#include <mtev_conf.h>
#include <mtev_http.h>
#include <mtev_listener.h>
#include <mtev_log.h>
#include <mtev_rest.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define APPNAME "arkend"
/* How long a stop waits for requests in flight before it gives up on them. */
#define DRAIN_SECONDS 10

static const char default_configuration[] =
    "<arkend>\n"
    "  <listeners>\n"
    "    <listener type=\"http_rest_api\" address=\"127.0.0.1\" port=\"8888\"/>\n"
    "    <listener type=\"listen_to_me\" address=\"127.0.0.1\" port=\"9999\"/>\n"
    "  </listeners>\n"
    "</arkend>\n";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: arkend [-c FILE] [-D] [-d] [-p FILE] [-l FILE] [-h]\n"
            "  -c FILE  configuration file (default: the embedded configuration, serving\n"
            "           REST on 127.0.0.1:8888 and the seed's aco listener on 127.0.0.1:9999)\n"
            "  -D       stay in the foreground (default: run as a daemon, detached from the\n"
            "           terminal; the command returns once the listeners are open, with status\n"
            "           0, or 2 when the daemon could not start, its errors on stderr)\n"
            "  -d       turn on the debug log streams\n"
            "  -p FILE  write the server's PID to FILE (locked while it runs, removed when it\n"
            "           stops; a second arkend on the same FILE refuses to start)\n"
            "  -l FILE  append the log to FILE (default: stderr in the foreground, /dev/null\n"
            "           once a daemon is up)\n"
            "  -h       this help\n");
}

/* ---- built-in endpoints ---- */

static void asynch_hello(void *closure)
{
    mtev_http_rest_closure_t *restc = closure;
    mtev_http_session_ctx *ctx = restc->http_ctx;
    sleep(1);
    mtev_http_response_append_str(ctx, "Hello world.\n");
}

/*
 * The seed's GET /hello, an aco mountpoint: the co-routine waits for a job (a second of
 * "work" on the default job queue) and then ends the response.
 */
static int hello_handler(mtev_http_rest_closure_t *restc, int npats, char **pats)
{
    mtev_http_session_ctx *ctx = restc->http_ctx;
    mtev_http_response_ok(ctx, "text/plain");
    eventer_aco_simple_asynch(asynch_hello, restc);
    mtev_http_response_end(ctx);
    return 0;
}

/* The seed's aco listener type "listen_to_me": "thanks!" per read, "bye!" after 10 s idle. */
static void listen_to_me(void)
{
    eventer_aco_t e = eventer_aco_arg();
    struct timeval tensec = {.tv_sec = 10};
    while (1) {
        char buff[128];
        int rv = eventer_aco_read(e, buff, sizeof(buff), &tensec);
        if (rv == -1) {
            if (errno == ETIME)
                eventer_aco_write(e, "bye!\n", 5, NULL);
            break;
        }
        if (rv >= 4 && !strncasecmp(buff, "quit", 4)) {
            eventer_aco_write(e, "quitter!\n", 9, NULL);
            break;
        }
        if (eventer_aco_write(e, "thanks!\n", 8, NULL) < 0)
            break;
    }
    eventer_aco_close(e);
    eventer_aco_free(e);
}

/* A small fixed answer from the loop thread (benchmarks). */
static int ping_handler(mtev_http_rest_closure_t *restc, int npats, char **pats)
{
    mtev_http_session_ctx *ctx = restc->http_ctx;
    mtev_http_response_status_set(ctx, 200, "OK");
    mtev_http_response_header_set(ctx, "Content-Type", "text/plain");
    mtev_http_response_append(ctx, "pong\n", 5);
    mtev_http_response_end(ctx);
    return 0;
}

/* ---- stopping ---- */

static pthread_t signal_thread;
static sigset_t stop_signals;

static void *wait_for_signal(void *unused)
{
    int signal_number = 0;
    if (sigwait(&stop_signals, &signal_number) != 0)
        return NULL;
    mtevL(mtev_notice, "arkend: %s received; finishing requests in flight\n",
          strsignal(signal_number));
    mtev_listener_shutdown();
    mtev_http_begin_drain();
    struct timespec poll_interval = {0, 10 * 1000 * 1000};
    for (int waited = 0; waited < DRAIN_SECONDS * 100; waited++) {
        if (mtev_http_inflight_requests() == 0)
            break;
        /* A second signal stops at once. */
        if (sigtimedwait(&stop_signals, NULL, &poll_interval) > 0) {
            mtevL(mtev_notice, "arkend: second signal; stopping now\n");
            break;
        }
    }
    if (mtev_http_inflight_requests() > 0)
        mtevL(mtev_notice, "arkend: %lld requests still in flight; stopping anyway\n",
              (long long)mtev_http_inflight_requests());
    eventer_shutdown();
    return NULL;
}

static void describe_listeners(void)
{
    for (int i = 0; i < mtev_listener_count(); i++) {
        struct sockaddr_storage address;
        socklen_t length = sizeof(address);
        if (mtev_listener_get_address(i, (struct sockaddr *)&address, &length) < 0)
            continue;
        char text[sizeof(struct sockaddr_un) + INET6_ADDRSTRLEN] = "";
        if (address.ss_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&address)->sin_addr, text, sizeof(text));
        else if (address.ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&address)->sin6_addr, text, sizeof(text));
        else
            snprintf(text, sizeof(text), "%s", ((struct sockaddr_un *)&address)->sun_path);
        mtevL(mtev_notice, "arkend: listening on %s port %d (%s)\n", text,
              mtev_listener_get_port(i), mtev_listener_get_type(i));
    }
}

/* ---- daemon mode, pid file, log file ---- */

static int pid_fd = -1;
static char pid_path[PATH_MAX];

/*
 * Creates and locks the pid file; the lock (shared with the forks that follow) tells a second
 * arkend that this one is running. Its PID is written by write_pid_file(), once final.
 */
static int open_pid_file(const char *path)
{
    pid_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (pid_fd < 0) {
        mtevL(mtev_error, "arkend: cannot open the pid file %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (flock(pid_fd, LOCK_EX | LOCK_NB) < 0) {
        char text[32] = "";
        ssize_t got = pread(pid_fd, text, sizeof(text) - 1, 0);
        text[got > 0 ? got : 0] = '\0';
        text[strcspn(text, "\n")] = '\0';
        mtevL(mtev_error, "arkend: the pid file %s is held by a running arkend (pid %s)\n", path,
              text[0] ? text : "unknown");
        close(pid_fd);
        pid_fd = -1;
        return -1;
    }
    /* Absolute, to remove it at exit whatever the directory is then. */
    if (!realpath(path, pid_path))
        snprintf(pid_path, sizeof(pid_path), "%s", path);
    return 0;
}

static int write_pid_file(void)
{
    if (pid_fd < 0)
        return 0;
    char text[32];
    int length = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
    if (ftruncate(pid_fd, 0) < 0 || pwrite(pid_fd, text, (size_t)length, 0) != length) {
        mtevL(mtev_error, "arkend: cannot write the pid file %s: %s\n", pid_path, strerror(errno));
        return -1;
    }
    return 0;
}

static void remove_pid_file(void)
{
    if (pid_fd < 0)
        return;
    unlink(pid_path); /* still locked: nobody else took it over */
    close(pid_fd);
    pid_fd = -1;
}

/*
 * Detaches: fork, setsid, fork again (the daemon is no session leader, so it never gets a
 * controlling terminal). The command itself waits until the daemon reports that its
 * listeners are open (one byte on a pipe) or exits without doing so, and exits 0 or 2. The
 * daemon keeps stderr until then, so startup errors reach the terminal. Returns the pipe's
 * write end in the daemon, or -1 (in the command, on a failed fork).
 */
static int detach(void)
{
    int ready[2];
    if (pipe2(ready, O_CLOEXEC) < 0) {
        mtevL(mtev_error, "arkend: pipe: %s\n", strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid_t child = fork();
    if (child < 0) {
        mtevL(mtev_error, "arkend: fork: %s\n", strerror(errno));
        return -1;
    }
    if (child > 0) {
        close(ready[1]);
        int status;
        while (waitpid(child, &status, 0) < 0 && errno == EINTR)
            ;
        char byte = 0;
        ssize_t got;
        do
            got = read(ready[0], &byte, 1);
        while (got < 0 && errno == EINTR);
        if (got == 1)
            _exit(0);
        fprintf(stderr, "arkend: the daemon stopped before its listeners were open\n");
        _exit(2);
    }
    close(ready[0]);
    if (setsid() < 0)
        _exit(2);
    pid_t daemon_pid = fork();
    if (daemon_pid != 0)
        _exit(daemon_pid < 0 ? 2 : 0); /* without a daemon, the pipe closes: the command says so */
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        if (null > 1)
            close(null);
    }
    return ready[1];
}

/* The daemon is up: leave the terminal's stderr and the directory, and tell the command. */
static void daemon_ready(int ready_fd, int log_fd)
{
    if (chdir("/") < 0)
        mtevL(mtev_error, "arkend: chdir /: %s\n", strerror(errno));
    int target = log_fd >= 0 ? log_fd : open("/dev/null", O_WRONLY);
    if (target >= 0) {
        dup2(target, 2);
        if (target != log_fd)
            close(target);
    }
    ssize_t ignored = write(ready_fd, "1", 1);
    (void)ignored;
    close(ready_fd);
}

int main(int argc, char **argv)
{
    const char *config_file = NULL, *pid_file = NULL, *log_file = NULL;
    int foreground = 0, debug = 0, option;
    while ((option = getopt(argc, argv, "c:Ddp:l:h")) != -1) {
        switch (option) {
        case 'c':
            config_file = optarg;
            break;
        case 'D':
            foreground = 1;
            break;
        case 'd':
            debug = 1;
            break;
        case 'p':
            pid_file = optarg;
            break;
        case 'l':
            log_file = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "arkend: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (debug)
        mtev_log_stream_enable(mtev_debug, mtev_true);

    mtev_conf_init(APPNAME);
    int loaded = config_file
                     ? mtev_conf_load(config_file)
                     : mtev_conf_load_string("(embedded configuration)", default_configuration);
    if (loaded < 0) {
        mtevL(mtev_error, "arkend: cannot use the configuration; stopping\n");
        return 2;
    }
    mtev_conf_log_init(APPNAME);
    if (debug)
        mtev_log_stream_enable(mtev_debug, mtev_true);
    int log_fd = -1, ready_fd = -1;
    if (log_file) {
        log_fd = open(log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (log_fd < 0) {
            mtevL(mtev_error, "arkend: cannot open the log file %s: %s\n", log_file,
                  strerror(errno));
            mtev_conf_unload();
            return 2;
        }
    }
    if (pid_file && open_pid_file(pid_file) < 0) {
        mtev_conf_unload();
        return 2;
    }
    /* Before any thread starts: fork keeps only the calling thread. */
    if (!foreground) {
        ready_fd = detach();
        if (ready_fd < 0)
            return 2;
    } else if (log_fd >= 0) {
        dup2(log_fd, 2);
    }
    if (write_pid_file() < 0) {
        remove_pid_file();
        return 2;
    }

    /* Every thread inherits the blocked set; only the signal thread takes them. */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

    if (eventer_init() < 0) {
        mtevL(mtev_error, "arkend: the eventer could not start\n");
        remove_pid_file();
        return 1;
    }
    mtev_http_rest_init();
    mtev_rest_mountpoint_set_aco(mtev_http_rest_new_rule("GET", "/", "^hello$", hello_handler),
                                 mtev_true);
    mtev_http_rest_new_rule("GET", "/", "^ping$", ping_handler);
    /* The same fixed answer from an aco mountpoint (benchmarks). */
    mtev_rest_mountpoint_set_aco(mtev_http_rest_new_rule("GET", "/aco/", "^ping$", ping_handler),
                                 mtev_true);
    mtev_listener_register_aco_function("listen_to_me", listen_to_me);
    arkend_stats_register();
    int opened = mtev_listener_init(APPNAME);
    if (opened < 0) {
        mtevL(mtev_error, "arkend: a listener could not be opened; stopping\n");
        eventer_shutdown();
        eventer_loop();
        mtev_conf_unload();
        remove_pid_file();
        return 2;
    }
    if (opened == 0)
        mtevL(mtev_notice, "arkend: the configuration has no listeners\n");
    describe_listeners();
    if (pthread_create(&signal_thread, NULL, wait_for_signal, NULL) != 0) {
        mtevL(mtev_error, "arkend: cannot start the signal thread\n");
        remove_pid_file();
        return 1;
    }
    if (ready_fd >= 0)
        daemon_ready(ready_fd, log_fd);
    eventer_loop();
    pthread_join(signal_thread, NULL);
    mtev_conf_unload();
    remove_pid_file();
    mtevL(mtev_notice, "arkend: stopped\n");
    if (log_fd >= 0)
        close(log_fd);
    return 0;
}
