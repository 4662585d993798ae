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
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
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
            "usage: arkend [-c FILE] [-D] [-d] [-h]\n"
            "  -c FILE  configuration file (default: the embedded configuration, serving\n"
            "           REST on 127.0.0.1:8888 and the seed's aco listener on 127.0.0.1:9999)\n"
            "  -D       stay in the foreground\n"
            "  -d       turn on the debug log streams\n"
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

static int daemonize(void)
{
    pid_t child = fork();
    if (child < 0) {
        mtevL(mtev_error, "arkend: fork: %s\n", strerror(errno));
        return -1;
    }
    if (child > 0)
        _exit(0);
    setsid();
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        if (null > 2)
            close(null);
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *config_file = NULL;
    int foreground = 0, debug = 0, option;
    while ((option = getopt(argc, argv, "c:Ddh")) != -1) {
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
    if (!foreground && daemonize() < 0)
        return 1;

    /* Every thread inherits the blocked set; only the signal thread takes them. */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

    if (eventer_init() < 0) {
        mtevL(mtev_error, "arkend: the eventer could not start\n");
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
        return 2;
    }
    if (opened == 0)
        mtevL(mtev_notice, "arkend: the configuration has no listeners\n");
    describe_listeners();
    if (pthread_create(&signal_thread, NULL, wait_for_signal, NULL) != 0) {
        mtevL(mtev_error, "arkend: cannot start the signal thread\n");
        return 1;
    }
    eventer_loop();
    pthread_join(signal_thread, NULL);
    mtev_conf_unload();
    mtevL(mtev_notice, "arkend: stopped\n");
    return 0;
}
