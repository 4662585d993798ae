/*
 * bench_echo: the same echo server on Arkenstone, libuv, libev and a bare epoll loop (the
 * implementations in echo_servers[], see echo_server.h), all started side by side in one run,
 * each in its own child process pinned to one core, loaded in turn by the project's load
 * client (echo_load.c) pinned to another core, at several connection counts.
 *
 * For each cell it prints round trips per second, latency percentiles, the server's CPU time
 * per round trip (CLOCK_PROCESS_CPUTIME_ID read inside the server process at the window's
 * edges: every thread, user and system) and the client's CPU use; then, per connection
 * count, the ratios ours/peer for both figures. When the client core is near 100 % the round
 * trips per second are the client's ceiling, and the CPU per round trip is the figure to
 * compare. It reports; it never decides pass or fail.
 *
 *   bench_echo [--seconds S] [--warmup S] [--conns 1,10,100,1000] [--servers a,b,...]
 *              [--ours NAME] [--rounds N] [--message BYTES] [--server-cpu N] [--client-cpu N]
 *   bench_echo serve NAME PORT      run one server alone on 127.0.0.1:PORT (by hand, for
 *                                   profiling: same threads as in a benchmark run)
 *
 * Defaults: 2 s per cell after a 0.5 s warm-up, 1 round, 64-byte messages, server on CPU 0
 * and client on CPU 1 (both on CPU 0 when there is only one). Rounds interleave the servers
 * (each round starts with the next one), and the tables show the median over rounds, the
 * best round, and the median of the ratios taken within each round. The machine is
 * shared: before each cell the driver waits (up to --gate-wait 20 s) until the rest of the machine
 * uses less than
 * --gate 0.10 of a core, and a cell during which the rest used more than --disturbed 0.15
 * of a core is marked and retried (--retries 2); --gate 0 turns the waiting off.
 */
#include "bench_support.h"
#include "echo_load.h"
#include "echo_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_SERVERS 16
#define MAX_CONNS   16
#define MAX_ROUNDS  64

struct running_server {
    const struct echo_server_implementation *implementation;
    pid_t pid;
    int listen_fd;
    int request_fd; /* driver -> server: one byte asks for the CPU time */
    int reply_fd;   /* server -> driver: uint64_t nanoseconds */
    struct sockaddr_in address;
    uint64_t cpu_at_start, cpu_at_end;
    uint64_t busy_at_start, busy_at_end; /* machine-wide busy time, nanoseconds */
};

struct cell {
    int valid;
    double round_trips_per_second, p50_us, p99_us;
    double server_cpu_fraction, server_us_per_round_trip, client_cpu_fraction;
    double other_cpu_fraction; /* busy time of both cores not used by server or client */
    int disturbed;             /* other_cpu_fraction above the --disturbed threshold */
};

static struct running_server servers[MAX_SERVERS];
static int server_count;

/* ---- the server side (child process) ---- */

static int child_request_fd = -1, child_reply_fd = -1;

static void *cpu_reporter(void *unused)
{
    (void)unused;
    char request;
    for (;;) {
        ssize_t got = read(child_request_fd, &request, 1);
        if (got == 0)
            _exit(0); /* the driver is gone or done: stop serving */
        if (got < 0) {
            if (errno == EINTR)
                continue;
            _exit(1);
        }
        uint64_t cpu = bench_process_cpu_ns();
        if (write(child_reply_fd, &cpu, sizeof(cpu)) != sizeof(cpu))
            _exit(1);
    }
    return NULL;
}

static void run_server_child(struct running_server *server, int cpu)
{
    /* Keep only this server's descriptors. */
    for (int i = 0; i < server_count; i++) {
        if (&servers[i] == server)
            continue;
        close(servers[i].listen_fd);
        close(servers[i].request_fd);
        close(servers[i].reply_fd);
    }
    child_request_fd = server->request_fd;
    child_reply_fd = server->reply_fd;
    /* Pin before any thread starts, so the server's threads all run on `cpu`. */
    bench_pin_process(cpu);
    pthread_t reporter;
    if (pthread_create(&reporter, NULL, cpu_reporter, NULL) != 0)
        _exit(1);
    server->implementation->serve(server->listen_fd);
    fprintf(stderr, "bench_echo: server %s stopped\n", server->implementation->name);
    _exit(1);
}

static int listen_on_loopback(int port, struct sockaddr_in *address)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(address, 0, sizeof(*address));
    address->sin_family = AF_INET;
    address->sin_port = htons((uint16_t)port);
    address->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(*address);
    if (bind(fd, (struct sockaddr *)address, sizeof(*address)) < 0 || listen(fd, 4096) < 0 ||
        getsockname(fd, (struct sockaddr *)address, &length) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int start_server(const struct echo_server_implementation *implementation, int cpu)
{
    struct running_server *server = &servers[server_count];
    int request[2], reply[2];
    server->implementation = implementation;
    server->listen_fd = listen_on_loopback(0, &server->address);
    if (server->listen_fd < 0 || pipe2(request, O_CLOEXEC) < 0 || pipe2(reply, O_CLOEXEC) < 0) {
        perror("bench_echo: listen/pipe");
        return -1;
    }
    server_count++;
    /* The child keeps its ends in the same slots; the parent keeps the others. */
    int child_ends[2] = {request[0], reply[1]};
    int parent_ends[2] = {request[1], reply[0]};
    server->request_fd = child_ends[0];
    server->reply_fd = child_ends[1];
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("bench_echo: fork");
        return -1;
    }
    if (pid == 0) {
        close(parent_ends[0]);
        close(parent_ends[1]);
        run_server_child(server, cpu);
    }
    close(child_ends[0]);
    close(child_ends[1]);
    close(server->listen_fd); /* the child serves it; connections go to its queue */
    server->listen_fd = -1;
    server->request_fd = parent_ends[0];
    server->reply_fd = parent_ends[1];
    server->pid = pid;
    return 0;
}

static uint64_t server_cpu_ns(struct running_server *server)
{
    char request = 'c';
    uint64_t cpu = 0;
    if (write(server->request_fd, &request, 1) != 1 ||
        read(server->reply_fd, &cpu, sizeof(cpu)) != sizeof(cpu)) {
        fprintf(stderr, "bench_echo: server %s does not answer\n", server->implementation->name);
        exit(1);
    }
    return cpu;
}

static void on_window(void *closure, int edge)
{
    struct running_server *server = closure;
    uint64_t cpu = server_cpu_ns(server);
    uint64_t busy = bench_machine_busy_ns();
    if (edge == 0) {
        server->cpu_at_start = cpu;
        server->busy_at_start = busy;
    } else {
        server->cpu_at_end = cpu;
        server->busy_at_end = busy;
    }
}

static void stop_servers(void)
{
    for (int i = 0; i < server_count; i++) {
        close(servers[i].request_fd); /* its reporter sees end of file and exits */
        close(servers[i].reply_fd);
    }
    for (int i = 0; i < server_count; i++) {
        int status;
        while (waitpid(servers[i].pid, &status, 0) < 0 && errno == EINTR)
            ;
    }
}

/* Loads `server` with `connections` for one window and fills `cell`. */
static int measure_cell(struct running_server *server, int connections, int message, double warmup,
                        double seconds, struct cell *cell)
{
    struct echo_load_options options = {
        .server = server->address,
        .connections = connections,
        .message_bytes = message,
        .warmup_seconds = warmup,
        .measure_seconds = seconds,
        .on_window = on_window,
        .closure = server,
    };
    struct echo_load_result result;
    memset(cell, 0, sizeof(*cell));
    if (echo_load_run(&options, &result) < 0) {
        fprintf(stderr, "bench_echo: %s at %d connections failed\n", server->implementation->name,
                connections);
        return -1;
    }
    double server_seconds = (double)(server->cpu_at_end - server->cpu_at_start) / 1e9;
    cell->valid = result.round_trips > 0;
    cell->round_trips_per_second = result.round_trips_per_second;
    cell->p50_us = result.p50_us;
    cell->p99_us = result.p99_us;
    cell->server_cpu_fraction = server_seconds / result.window_seconds;
    cell->server_us_per_round_trip =
        result.round_trips ? server_seconds * 1e6 / (double)result.round_trips : 0;
    cell->client_cpu_fraction = result.client_cpu_fraction;
    double busy = (double)(server->busy_at_end - server->busy_at_start) / 1e9;
    double other =
        busy / result.window_seconds - cell->server_cpu_fraction - cell->client_cpu_fraction;
    cell->other_cpu_fraction = other > 0 ? other : 0;
    return 0;
}

/* ---- the driver ---- */

static void usage(void)
{
    fprintf(stderr, "usage: bench_echo [--seconds S] [--warmup S] [--conns 1,10,100,1000]\n"
                    "                  [--servers NAME,...] [--ours NAME] [--rounds N]\n"
                    "                  [--message BYTES] [--server-cpu N] [--client-cpu N]\n"
                    "                  [--gate FRACTION] [--gate-wait S] [--disturbed FRACTION]\n"
                    "                  [--retries N]\n"
                    "       bench_echo serve NAME PORT\n"
                    "servers:");
    for (const struct echo_server_implementation *row = echo_servers; row->name; row++)
        fprintf(stderr, " %s", row->name);
    fprintf(stderr, "\n");
    exit(2);
}

/* Stands in for the CPU reporter of a benchmark run (see serve_alone). */
static void *idle_thread(void *unused)
{
    (void)unused;
    for (;;)
        pause();
    return NULL;
}

static int serve_alone(int argc, char **argv)
{
    if (argc < 4)
        usage();
    const struct echo_server_implementation *implementation = echo_server_find(argv[2]);
    if (!implementation)
        usage();
    struct sockaddr_in address;
    int fd = listen_on_loopback(atoi(argv[3]), &address);
    if (fd < 0) {
        perror("bench_echo serve");
        return 1;
    }
    /* In a benchmark run every server process also has its CPU reporter thread, and a
     * multi-threaded process takes a longer path through libc's system call wrappers: keep
     * a thread here too, so that a server run by hand (under a profiler, say) does what it
     * does in the benchmark. */
    pthread_t idle;
    if (pthread_create(&idle, NULL, idle_thread, NULL) != 0) {
        fprintf(stderr, "bench_echo serve: cannot start a thread\n");
        return 1;
    }
    printf("%s serving on 127.0.0.1:%d\n", implementation->name, ntohs(address.sin_port));
    fflush(stdout);
    return implementation->serve(fd) < 0 ? 1 : 0;
}

static void print_ratios(const char *ours, int our_index, const int *conns, int conns_count,
                         struct cell (*table)[MAX_SERVERS], const char *which)
{
    printf("\nratios %s/peer, %s: rt/s (higher is better for %s), server CPU us per round "
           "trip (lower is better)\n",
           ours, which, ours);
    printf("%5s %-12s %14s %16s\n", "conns", "peer", "rt/s ours/peer", "us/rt ours/peer");
    for (int c = 0; c < conns_count; c++) {
        struct cell *mine = &table[c][our_index];
        for (int s = 0; s < server_count; s++) {
            struct cell *peer = &table[c][s];
            if (s == our_index || !mine->valid || !peer->valid)
                continue;
            printf("%5d %-12s %14.3f %16.3f\n", conns[c], servers[s].implementation->name,
                   mine->round_trips_per_second / peer->round_trips_per_second,
                   mine->server_us_per_round_trip / peer->server_us_per_round_trip);
        }
    }
}

/*
 * Ratios taken within each round (ours and the peer measured minutes apart at most, in the
 * same state of the shared machine), then their median and quartiles over rounds: slow drifts
 * of the machine cancel out of these, where they do not out of a ratio of two medians.
 */
static void print_paired_ratios(const char *ours, int our_index, const int *conns, int conns_count,
                                int rounds, struct cell (*cells)[MAX_CONNS][MAX_SERVERS])
{
    printf("\nratios %s/peer within each round (median [quartiles], rounds where %s is ahead):"
           "\n%5s %-12s %26s %26s\n",
           ours, ours, "conns", "peer", "rt/s ours/peer", "us/rt ours/peer");
    for (int c = 0; c < conns_count; c++) {
        for (int s = 0; s < server_count; s++) {
            if (s == our_index)
                continue;
            double rate[MAX_ROUNDS], cpu[MAX_ROUNDS];
            int n = 0, rate_ahead = 0, cpu_ahead = 0;
            for (int round = 0; round < rounds; round++) {
                struct cell *mine = &cells[round][c][our_index], *peer = &cells[round][c][s];
                if (!mine->valid || !peer->valid || mine->disturbed || peer->disturbed)
                    continue;
                rate[n] = mine->round_trips_per_second / peer->round_trips_per_second;
                cpu[n] = mine->server_us_per_round_trip / peer->server_us_per_round_trip;
                rate_ahead += rate[n] >= 1;
                cpu_ahead += cpu[n] <= 1;
                n++;
            }
            if (n == 0)
                continue;
            double rate_median = bench_median(rate, n), cpu_median = bench_median(cpu, n);
            /* bench_median() sorted the arrays. */
            printf("%5d %-12s %6.3f [%5.3f %5.3f] %2d/%-2d %6.3f [%5.3f %5.3f] %2d/%-2d\n",
                   conns[c], servers[s].implementation->name, rate_median, rate[n / 4],
                   rate[(3 * n) / 4], rate_ahead, n, cpu_median, cpu[n / 4], cpu[(3 * n) / 4],
                   cpu_ahead, n);
        }
    }
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "serve"))
        return serve_alone(argc, argv);

    double seconds = 2.0, warmup = 0.5;
    int conns[MAX_CONNS] = {1, 10, 100, 1000}, conns_count = 4;
    int rounds = 1, message = 64;
    int cpus = bench_cpu_count();
    int server_cpu = 0, client_cpu = cpus > 1 ? 1 : 0;
    const char *server_names = NULL, *ours = NULL;
    double gate = 0.10, gate_wait = 20, disturbed_above = 0.15;
    int retries = 2;
    for (int i = 1; i < argc; i++) {
        const char *option = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!value)
            usage();
        i++;
        if (!strcmp(option, "--seconds"))
            seconds = atof(value);
        else if (!strcmp(option, "--warmup"))
            warmup = atof(value);
        else if (!strcmp(option, "--conns"))
            conns_count = bench_parse_int_list(value, conns, MAX_CONNS);
        else if (!strcmp(option, "--servers"))
            server_names = value;
        else if (!strcmp(option, "--ours"))
            ours = value;
        else if (!strcmp(option, "--rounds"))
            rounds = atoi(value);
        else if (!strcmp(option, "--message"))
            message = atoi(value);
        else if (!strcmp(option, "--server-cpu"))
            server_cpu = atoi(value);
        else if (!strcmp(option, "--client-cpu"))
            client_cpu = atoi(value);
        else if (!strcmp(option, "--gate"))
            gate = atof(value);
        else if (!strcmp(option, "--gate-wait"))
            gate_wait = atof(value);
        else if (!strcmp(option, "--disturbed"))
            disturbed_above = atof(value);
        else if (!strcmp(option, "--retries"))
            retries = atoi(value);
        else
            usage();
    }
    if (conns_count < 1 || seconds <= 0 || warmup < 0 || rounds < 1 || rounds > MAX_ROUNDS ||
        message < 1 || message > 4096 || server_cpu >= cpus || client_cpu >= cpus)
        usage();

    /* Which servers, in table order unless named. */
    const struct echo_server_implementation *chosen[MAX_SERVERS];
    int chosen_count = 0;
    if (server_names) {
        char *copy = strdup(server_names), *saved = NULL;
        for (char *name = strtok_r(copy, ",", &saved); name; name = strtok_r(NULL, ",", &saved)) {
            const struct echo_server_implementation *row = echo_server_find(name);
            if (!row || chosen_count == MAX_SERVERS) {
                fprintf(stderr, "bench_echo: unknown server \"%s\"\n", name);
                usage();
            }
            chosen[chosen_count++] = row;
        }
        free(copy);
    } else {
        for (const struct echo_server_implementation *row = echo_servers;
             row->name && chosen_count < MAX_SERVERS; row++)
            chosen[chosen_count++] = row;
    }
    if (!ours)
        ours = echo_servers[0].name;

    signal(SIGPIPE, SIG_IGN);
    printf("bench_echo: %d-byte messages, %.1f s per cell after %.1f s warm-up, %d round(s); "
           "servers pinned to cpu %d, load client to cpu %d\n",
           message, seconds, warmup, rounds, server_cpu, client_cpu);
    printf("every server is single-threaded (arkenstone: eventer with ONE loop thread, "
           "concurrency=1)\n");
    for (int i = 0; i < chosen_count; i++) {
        printf("  %-12s %s\n", chosen[i]->name, chosen[i]->description);
        if (start_server(chosen[i], server_cpu) < 0)
            return 1;
    }
    bench_pin_thread(client_cpu);
    usleep(200000); /* let the servers reach their loops */

    static struct cell cells[MAX_ROUNDS][MAX_CONNS][MAX_SERVERS];
    printf("\n(other: CPU the rest of the machine used during the window, of one core, from "
           "/proc/stat. Each cell waits for a quiet\n machine first (--gate %.2f of a core) and "
           "is retried up to %d times when other > %.0f%% (--disturbed);\n medians use "
           "undisturbed cells only, unless every round was disturbed)\n",
           gate, retries, 100 * disturbed_above);
    printf("%5s %-12s %5s %10s %9s %9s %8s %11s %8s %8s\n", "round", "server", "conns", "rt/s",
           "p50 us", "p99 us", "srv cpu", "srv us/rt", "cli cpu", "other");
    for (int round = 0; round < rounds; round++) {
        for (int c = 0; c < conns_count; c++) {
            /* Each round starts with the next server, so that no server always follows the
             * same one (or a larger connection count's teardown) and takes its wake. */
            for (int position = 0; position < server_count; position++) {
                int s = (position + round) % server_count;
                struct running_server *server = &servers[s];
                struct cell *cell = &cells[round][c][s];
                for (int attempt = 0; attempt <= retries; attempt++) {
                    if (gate > 0 && bench_wait_for_quiet(gate, gate_wait) < 0)
                        printf("(the machine stayed busy for %.0f s: measuring anyway)\n",
                               gate_wait);
                    if (measure_cell(server, conns[c], message, warmup, seconds, cell) < 0)
                        break;
                    cell->disturbed = cell->other_cpu_fraction > disturbed_above;
                    printf("%5d %-12s %5d %10.0f %9.1f %9.1f %7.0f%% %11.2f %7.0f%% %7.0f%%%s\n",
                           round + 1, server->implementation->name, conns[c],
                           cell->round_trips_per_second, cell->p50_us, cell->p99_us,
                           100 * cell->server_cpu_fraction, cell->server_us_per_round_trip,
                           100 * cell->client_cpu_fraction, 100 * cell->other_cpu_fraction,
                           cell->disturbed ? "  disturbed" : "");
                    fflush(stdout);
                    usleep(100000); /* let the server finish closing the connections */
                    if (!cell->disturbed)
                        break;
                }
            }
        }
    }
    stop_servers();

    /* Medians over rounds, then ratios. */
    static struct cell summary[MAX_CONNS][MAX_SERVERS], best[MAX_CONNS][MAX_SERVERS];
    for (int c = 0; c < conns_count; c++) {
        for (int s = 0; s < server_count; s++) {
            double rate[MAX_ROUNDS], cpu[MAX_ROUNDS], client[MAX_ROUNDS], other[MAX_ROUNDS];
            int n = 0;
            int undisturbed = 0;
            for (int round = 0; round < rounds; round++)
                undisturbed += cells[round][c][s].valid && !cells[round][c][s].disturbed;
            for (int round = 0; round < rounds; round++) {
                struct cell *cell = &cells[round][c][s];
                /* Disturbed cells count only when every round was disturbed. */
                if (!cell->valid || (undisturbed && cell->disturbed))
                    continue;
                rate[n] = cell->round_trips_per_second;
                cpu[n] = cell->server_us_per_round_trip;
                client[n] = cell->client_cpu_fraction;
                other[n] = cell->other_cpu_fraction;
                n++;
            }
            summary[c][s].valid = n > 0;
            summary[c][s].disturbed = undisturbed == 0;
            summary[c][s].round_trips_per_second = bench_median(rate, n);
            summary[c][s].server_us_per_round_trip = bench_median(cpu, n);
            summary[c][s].client_cpu_fraction = bench_median(client, n);
            summary[c][s].other_cpu_fraction = bench_median(other, n);
            /* Interference only ever slows a server down: the best round is the least
             * disturbed view of each (after bench_median sorted both arrays). */
            best[c][s].valid = n > 0;
            best[c][s].round_trips_per_second = n ? rate[n - 1] : 0;
            best[c][s].server_us_per_round_trip = n ? cpu[0] : 0;
        }
    }
    int our_index = -1;
    for (int s = 0; s < server_count; s++)
        if (!strcmp(servers[s].implementation->name, ours))
            our_index = s;
    printf("\nmedian over %d round(s)\n%5s %-12s %10s %11s %8s %8s\n", rounds, "conns", "server",
           "rt/s", "srv us/rt", "cli cpu", "other");
    for (int c = 0; c < conns_count; c++)
        for (int s = 0; s < server_count; s++)
            printf("%5d %-12s %10.0f %11.2f %7.0f%% %7.0f%%%s\n", conns[c],
                   servers[s].implementation->name, summary[c][s].round_trips_per_second,
                   summary[c][s].server_us_per_round_trip, 100 * summary[c][s].client_cpu_fraction,
                   100 * summary[c][s].other_cpu_fraction,
                   summary[c][s].disturbed ? "  disturbed (every round)" : "");
    if (our_index < 0) {
        printf("\n(no ratios: \"%s\" was not run)\n", ours);
        return 0;
    }
    print_ratios(ours, our_index, conns, conns_count, summary, "median");
    if (rounds > 1) {
        print_ratios(ours, our_index, conns, conns_count, best,
                     "best round of each (highest rt/s, lowest us/rt)");
        print_paired_ratios(ours, our_index, conns, conns_count, rounds, cells);
    }
    printf("(goals of issue 3: rt/s ratio >= 1 vs libev and >= 0.95 vs epoll; us/rt ratio <= 1 "
           "vs libev and <= 1/0.95 = 1.053 vs epoll)\n");
    return 0;
}
