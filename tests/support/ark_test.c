/*
 * Test runner: owns the case registry, forks one child per case when running the whole
 * binary, enforces time limits, and prints TAP.
 */
#include "ark_test.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct ark_test_case *registry_head;
static struct ark_test_case *registry_tail;
static const char *current_case_name = "?";

void ark_test_register(struct ark_test_case *test_case)
{
    test_case->next = NULL;
    if (registry_tail)
        registry_tail->next = test_case;
    else
        registry_head = test_case;
    registry_tail = test_case;
}

void ark_test_fail(const char *file, int line, const char *format, ...)
{
    va_list arguments;
    fprintf(stderr, "# FAIL %s (%s:%d): ", current_case_name, file, line);
    va_start(arguments, format);
    vfprintf(stderr, format, arguments);
    va_end(arguments);
    fputc('\n', stderr);
    fflush(NULL);
    abort();
}

static double timeout_scale(void)
{
    const char *text = getenv("ARK_TEST_TIMEOUT_SCALE");
    double scale = text ? atof(text) : 1.0;
    return scale > 0 ? scale : 1.0;
}

static void describe_status(int status, char *text, size_t capacity)
{
    if (WIFEXITED(status))
        snprintf(text, capacity, "exit status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(text, capacity, "signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(text, capacity, "wait status %d", status);
}

/* Returns 1 if the case passed. */
static int run_forked(struct ark_test_case *test_case)
{
    fflush(NULL);
    pid_t child = fork();
    if (child < 0) {
        fprintf(stderr, "# fork failed: %s\n", strerror(errno));
        return 0;
    }
    if (child == 0) {
        /* Its own process group: whatever it starts (a server) ends with it, see below. */
        setpgid(0, 0);
        current_case_name = test_case->name;
        test_case->function();
        fflush(NULL);
        exit(0); /* exit, not _exit: leak checkers run at exit */
    }
    setpgid(child, child); /* also here: whichever of the two runs first */
    double limit = test_case->timeout_seconds * timeout_scale();
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int status = 0;
    for (;;) {
        pid_t done = waitpid(child, &status, WNOHANG);
        if (done == child)
            break;
        if (done < 0 && errno != EINTR) {
            fprintf(stderr, "# waitpid failed: %s\n", strerror(errno));
            return 0;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        double elapsed = (now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9;
        if (elapsed > limit) {
            kill(-child, SIGKILL);
            waitpid(child, &status, 0);
            fprintf(stderr, "# %s: timed out after %.0f s\n", test_case->name, limit);
            return 0;
        }
        usleep(elapsed < 1 ? 1000 : 20000);
    }
    /*
     * A case that failed half-way may leave a process it started running (an example server,
     * say), which would keep the runner's output pipe open and hang ctest: end the group.
     */
    kill(-child, SIGKILL);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 1;
    char text[128];
    describe_status(status, text, sizeof(text));
    fprintf(stderr, "# %s: ended with %s\n", test_case->name, text);
    return 0;
}

int ark_test_run_in_child(void (*function)(void *), void *argument, char *stderr_text,
                          size_t stderr_capacity)
{
    int pipe_fds[2];
    if (pipe(pipe_fds) != 0)
        ark_test_fail(__FILE__, __LINE__, "pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t child = fork();
    if (child < 0)
        ark_test_fail(__FILE__, __LINE__, "fork: %s", strerror(errno));
    if (child == 0) {
        close(pipe_fds[0]);
        dup2(pipe_fds[1], STDERR_FILENO);
        close(pipe_fds[1]);
        function(argument);
        fflush(NULL);
        _exit(0);
    }
    close(pipe_fds[1]);
    size_t used = 0;
    char discard[4096];
    for (;;) {
        char *target = discard;
        size_t room = sizeof(discard);
        if (stderr_text && used + 1 < stderr_capacity) {
            target = stderr_text + used;
            room = stderr_capacity - 1 - used;
        }
        ssize_t got = read(pipe_fds[0], target, room);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        if (target != discard)
            used += (size_t)got;
    }
    close(pipe_fds[0]);
    if (stderr_text && stderr_capacity)
        stderr_text[used] = '\0';
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    return status;
}

static struct ark_test_case *find_case(const char *name)
{
    for (struct ark_test_case *c = registry_head; c; c = c->next)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && strcmp(argv[1], "--list") == 0) {
        for (struct ark_test_case *c = registry_head; c; c = c->next)
            printf("%s\n", c->name);
        return 0;
    }
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: %s [--list] [CASE...]\n"
               "  no CASE: run every case, each in a forked child, TAP output\n"
               "  CASE...: run the named cases in this process\n",
               argv[0]);
        return 0;
    }
    if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            struct ark_test_case *c = find_case(argv[i]);
            if (!c) {
                fprintf(stderr, "%s: no case named '%s' (see --list)\n", argv[0], argv[i]);
                return 2;
            }
        }
        for (int i = 1; i < argc; i++) {
            struct ark_test_case *c = find_case(argv[i]);
            current_case_name = c->name;
            c->function();
            printf("ok %d - %s\n", i, c->name);
        }
        return 0;
    }
    int total = 0, failed = 0;
    for (struct ark_test_case *c = registry_head; c; c = c->next)
        total++;
    printf("1..%d\n", total);
    int index = 0;
    for (struct ark_test_case *c = registry_head; c; c = c->next) {
        index++;
        int passed = run_forked(c);
        printf("%s %d - %s\n", passed ? "ok" : "not ok", index, c->name);
        failed += !passed;
    }
    if (failed)
        fprintf(stderr, "# %d of %d cases failed\n", failed, total);
    return failed ? 1 : 0;
}
