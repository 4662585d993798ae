/*
 * bench_eventer_aco: what co-routines cost next to the classic eventer, side by side in one
 * run.
 *
 * 1. Idle connections: the memory (resident set growth of the server process, divided by
 *    the connection count) of N open, idle TCP connections on loopback, each served by a
 *    co-routine parked in eventer_aco_read() (the seed's "moving an event to aco" path), next
 *    to the classic server where each connection is a registered fd event with a callback.
 *    Each server runs in a fresh process (so one's freed memory cannot hide the other's),
 *    and the clients in another process. N is 100,000 unless RLIMIT_NOFILE's hard limit
 *    allows fewer (then it says so).
 * 2. Job round trip: an empty job queued by eventer_aco_simple_asynch() from a co-routine
 *    (WORK on a job thread, the co resumed at COMPLETE) against the classic round trip, a
 *    new eventer_alloc_asynch() event queued from the previous one's COMPLETE callback, and
 *    against the cheapest classic form, one event re-queued from its own COMPLETE. One loop
 *    thread, one job thread; rounds interleave the forms; medians of wall time and of
 *    process CPU time per round trip.
 *
 *   bench_eventer_aco [--connections N] [--jobs N] [--rounds R]   (100000, 20000, 5)
 * It reports figures and ratios; it never decides pass or fail.
 */
#include <eventer/eventer.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ROUNDS 32

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static uint64_t cpu_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static long resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * sysconf(_SC_PAGESIZE);
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *values, int count)
{
    qsort(values, (size_t)count, sizeof(double), compare_double);
    return count ? values[count / 2] : 0;
}

static void wait_for(const int *counter, int target)
{
    for (int i = 0; i < 600000 && __atomic_load_n(counter, __ATOMIC_ACQUIRE) < target; i++)
        usleep(100);
}

/* ---- 1. idle connections ---- */

static int accepted, parked;
static int aco_mode;

static void idle_co(void)
{
    eventer_aco_t e = eventer_set_eventer_aco(eventer_aco_arg());
    char buffer[64];
    __atomic_add_fetch(&parked, 1, __ATOMIC_RELEASE);
    for (;;) {
        int got = eventer_aco_read(e, buffer, sizeof(buffer), NULL);
        if (got <= 0)
            break;
        eventer_aco_write(e, buffer, (size_t)got, NULL);
    }
    eventer_aco_close(e);
    eventer_aco_free(e);
    aco_exit();
}

static int idle_classic(eventer_t e, int mask, void *closure, struct timeval *now)
{
    char buffer[64];
    int got = eventer_read(e, buffer, sizeof(buffer), &mask);
    if (got < 0 && errno == EAGAIN)
        return mask;
    if (got > 0) {
        eventer_write(e, buffer, (size_t)got, &mask);
        return EVENTER_READ | EVENTER_EXCEPTION;
    }
    eventer_remove_fde(e);
    eventer_close(e, &mask);
    return 0;
}

static int on_accept(eventer_t e, int mask, void *closure, struct timeval *now)
{
    for (;;) {
        int fd = eventer_accept(e, NULL, NULL, &mask);
        if (fd < 0)
            return errno == EAGAIN ? EVENTER_READ | EVENTER_EXCEPTION : mask;
        eventer_set_fd_nonblocking(fd);
        __atomic_add_fetch(&accepted, 1, __ATOMIC_RELEASE);
        if (aco_mode) {
            eventer_aco_start(idle_co, eventer_alloc_fd(NULL, NULL, fd, EVENTER_READ));
        } else {
            eventer_add(eventer_alloc_fd(idle_classic, NULL, fd, EVENTER_READ));
            __atomic_add_fetch(&parked, 1, __ATOMIC_RELEASE);
        }
    }
}

static int listen_loopback(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in address = {.sin_family = AF_INET};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    if (fd < 0 || bind(fd, (struct sockaddr *)&address, sizeof(address)) < 0 ||
        listen(fd, 4096) < 0 || getsockname(fd, (struct sockaddr *)&address, &length) < 0) {
        perror("listen");
        exit(1);
    }
    *port = ntohs(address.sin_port);
    return fd;
}

/* The clients: opens `count` connections over `ports`, reports, waits, closes. */
static void run_clients(const int *ports, int port_count, int count, int report, int go)
{
    int *fds = calloc((size_t)count, sizeof(int));
    char start;
    if (read(go, &start, 1) != 1)
        _exit(1);
    for (int i = 0; i < count; i++) {
        struct sockaddr_in address = {.sin_family = AF_INET,
                                      .sin_port = htons((uint16_t)ports[i % port_count])};
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&address, sizeof(address)) < 0) {
            perror("client connect");
            _exit(1);
        }
    }
    char byte = 1;
    if (write(report, &byte, 1) != 1 || read(go, &byte, 1) != 1)
        _exit(1);
    for (int i = 0; i < count; i++)
        close(fds[i]);
    _exit(0);
}

struct idle_result {
    double bytes_per_connection;
    double save_stack_per_connection;
    int connections;
};

/* In a fresh process: one server (classic or aco), its clients in another. */
static void measure_idle(int use_aco, int count, int result_fd)
{
    enum { PORTS = 4 };
    int listen_fds[PORTS], ports[PORTS];
    for (int i = 0; i < PORTS; i++)
        listen_fds[i] = listen_loopback(&ports[i]);
    int report[2], go[2];
    if (pipe(report) < 0 || pipe(go) < 0)
        exit(1);
    /* The clients fork first, from a process without threads; they wait for a byte. */
    fflush(NULL);
    pid_t client = fork();
    if (client == 0) {
        close(report[0]);
        close(go[1]);
        run_clients(ports, PORTS, count, report[1], go[0]);
    }
    aco_mode = use_aco;
    eventer_propset("concurrency", "1");
    if (eventer_init() < 0)
        exit(1);
    for (int i = 0; i < PORTS; i++)
        eventer_add(eventer_alloc_fd(on_accept, NULL, listen_fds[i], EVENTER_READ));
    usleep(100000);
    long before = resident_bytes();
    char byte = 1;
    if (write(go[1], &byte, 1) != 1 || read(report[0], &byte, 1) != 1)
        exit(1);
    wait_for(&accepted, count);
    wait_for(&parked, count);
    usleep(200000);
    long after = resident_bytes();
    eventer_aco_stats_t stats;
    eventer_aco_get_stats(&stats);
    struct idle_result result = {(double)(after - before) / count,
                                 (double)stats.save_stack_bytes / count, count};
    if (write(result_fd, &result, sizeof(result)) != (ssize_t)sizeof(result))
        exit(1);
    if (write(go[1], &byte, 1) != 1)
        exit(1);
    waitpid(client, NULL, 0);
    _exit(0);
}

static int idle_connection_count(int wanted)
{
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
    long fit = (long)limit.rlim_cur - 256;
    if (fit < wanted) {
        printf("RLIMIT_NOFILE hard limit %llu (raising it needs CAP_SYS_RESOURCE): %ld "
               "connections instead of %d\n",
               (unsigned long long)limit.rlim_max, fit, wanted);
        return (int)fit;
    }
    return wanted;
}

static int run_idle(int use_aco, int count, struct idle_result *result)
{
    int channel[2];
    if (pipe(channel) < 0)
        return -1;
    fflush(NULL);
    pid_t server = fork();
    if (server == 0) {
        close(channel[0]);
        measure_idle(use_aco, count, channel[1]);
    }
    close(channel[1]);
    ssize_t got = read(channel[0], result, sizeof(*result));
    close(channel[0]);
    int status = 0;
    waitpid(server, &status, 0);
    return got == (ssize_t)sizeof(*result) && WIFEXITED(status) && !WEXITSTATUS(status) ? 0 : -1;
}

/* ---- 2. job round trips ---- */

enum { FORM_ACO, FORM_CLASSIC_NEW, FORM_CLASSIC_REQUEUE, FORMS };
static const char *form_names[FORMS] = {"aco simple_asynch", "classic new event",
                                        "classic requeued"};

static struct {
    int form;
    int iterations;
    int done;
    int finished; /* atomic */
    uint64_t wall_ns, cpu_ns;
    eventer_jobq_t *queue;
} jobs;

static void empty_work(void *closure)
{
    (void)closure;
}

static void job_co(void)
{
    uint64_t wall = now_ns(), cpu = cpu_ns();
    for (int i = 0; i < jobs.iterations; i++)
        eventer_aco_simple_asynch_queue(empty_work, NULL, jobs.queue);
    jobs.wall_ns = now_ns() - wall;
    jobs.cpu_ns = cpu_ns() - cpu;
    __atomic_store_n(&jobs.finished, 1, __ATOMIC_RELEASE);
    aco_exit();
}

static uint64_t classic_wall, classic_cpu;

static int classic_job(eventer_t e, int mask, void *closure, struct timeval *now)
{
    if (mask != EVENTER_ASYNCH_COMPLETE)
        return 0;
    if (++jobs.done >= jobs.iterations) {
        jobs.wall_ns = now_ns() - classic_wall;
        jobs.cpu_ns = cpu_ns() - classic_cpu;
        __atomic_store_n(&jobs.finished, 1, __ATOMIC_RELEASE);
        return 0;
    }
    if (jobs.form == FORM_CLASSIC_REQUEUE)
        return EVENTER_ASYNCH;
    eventer_add_asynch(jobs.queue, eventer_alloc_asynch(classic_job, NULL));
    return 0;
}

static int start_classic(eventer_t e, int mask, void *closure, struct timeval *now)
{
    classic_wall = now_ns();
    classic_cpu = cpu_ns();
    eventer_add_asynch(jobs.queue, eventer_alloc_asynch(classic_job, NULL));
    return 0;
}

static void run_jobs(int form, int iterations, double *wall_per, double *cpu_per)
{
    jobs.form = form;
    jobs.iterations = iterations;
    jobs.done = 0;
    __atomic_store_n(&jobs.finished, 0, __ATOMIC_RELEASE);
    if (form == FORM_ACO)
        eventer_aco_start(job_co, NULL);
    else
        eventer_add(
            eventer_alloc_timer_next_opportunity(start_classic, NULL, eventer_choose_owner(0)));
    wait_for(&jobs.finished, 1);
    *wall_per = (double)jobs.wall_ns / iterations;
    *cpu_per = (double)jobs.cpu_ns / iterations;
}

int main(int argc, char **argv)
{
    int connections = 100000, iterations = 20000, rounds = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--connections"))
            connections = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--jobs"))
            iterations = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rounds"))
            rounds = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: %s [--connections N] [--jobs N] [--rounds R]\n", argv[0]);
            return 2;
        }
    }
    if (rounds < 1 || rounds > MAX_ROUNDS || iterations < 1 || connections < 1) {
        fprintf(stderr, "bench_eventer_aco: bad arguments\n");
        return 2;
    }

    printf("== idle connections: resident memory per open, idle loopback TCP connection\n");
    int count = idle_connection_count(connections);
    struct idle_result classic_idle, aco_idle;
    if (run_idle(0, count, &classic_idle) < 0 || run_idle(1, count, &aco_idle) < 0) {
        fprintf(stderr, "bench_eventer_aco: the idle-connection measurement failed\n");
        return 1;
    }
    printf("%-28s %12s %16s\n", "server", "connections", "bytes/connection");
    printf("%-28s %12d %16.0f\n", "classic fd event", classic_idle.connections,
           classic_idle.bytes_per_connection);
    printf("%-28s %12d %16.0f   (save stacks: %.0f bytes/connection)\n", "aco co-routine per conn",
           aco_idle.connections, aco_idle.bytes_per_connection, aco_idle.save_stack_per_connection);
    printf("aco/classic: %.2f; aco bytes per connection vs the 1024-byte goal: %.2f\n",
           aco_idle.bytes_per_connection / classic_idle.bytes_per_connection,
           aco_idle.bytes_per_connection / 1024.0);

    printf("\n== job round trip: empty job, WORK on a job thread, back at COMPLETE "
           "(%d jobs x %d rounds)\n",
           iterations, rounds);
    eventer_propset("concurrency", "1");
    if (eventer_init() < 0)
        return 1;
    jobs.queue = eventer_jobq_create("bench_aco_jobs");
    eventer_jobq_set_concurrency(jobs.queue, 1);
    double wall[FORMS][MAX_ROUNDS], cpu[FORMS][MAX_ROUNDS];
    double ignored_wall, ignored_cpu;
    run_jobs(FORM_CLASSIC_NEW, iterations / 10 + 1, &ignored_wall, &ignored_cpu); /* warm-up */
    run_jobs(FORM_ACO, iterations / 10 + 1, &ignored_wall, &ignored_cpu);
    for (int r = 0; r < rounds; r++)
        for (int f = 0; f < FORMS; f++)
            run_jobs(f, iterations, &wall[f][r], &cpu[f][r]);
    double wall_median[FORMS], cpu_median[FORMS];
    printf("%-24s %14s %14s\n", "form", "wall ns/job", "cpu ns/job");
    for (int f = 0; f < FORMS; f++) {
        wall_median[f] = median(wall[f], rounds);
        cpu_median[f] = median(cpu[f], rounds);
        printf("%-24s %14.0f %14.0f\n", form_names[f], wall_median[f], cpu_median[f]);
    }
    for (int f = FORM_CLASSIC_NEW; f < FORMS; f++)
        printf("ratio aco/%s: wall %.3f, cpu %.3f (goal: within 1.2x of the classic round "
               "trip)\n",
               form_names[f], wall_median[FORM_ACO] / wall_median[f],
               cpu_median[FORM_ACO] / cpu_median[f]);
    eventer_shutdown();
    eventer_cleanup();
    return 0;
}
