/* Log streams: hierarchy, default-off debug, MTEV_DEBUG, outputs, fatal messages, threads. */
#include "ark_test.h"

#include <mtev_log.h>

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

struct capture {
    pthread_mutex_t lock;
    char text[8192];
    size_t length;
    int lines;
};

static void capture_writer(void *closure, mtev_log_stream_t stream, const char *line, size_t length)
{
    struct capture *capture = closure;
    (void)stream;
    pthread_mutex_lock(&capture->lock);
    if (capture->length + length < sizeof(capture->text)) {
        memcpy(capture->text + capture->length, line, length);
        capture->length += length;
        capture->text[capture->length] = '\0';
    }
    capture->lines++;
    pthread_mutex_unlock(&capture->lock);
}

static int evaluations;
static int count_evaluation(void)
{
    return ++evaluations;
}

ARK_TEST(debug_is_off_and_skips_arguments)
{
    mtev_log_stream_t stream = mtev_log_stream_find("debug/testing");
    ARK_ASSERT(stream != NULL);
    ARK_ASSERT(!mtev_log_stream_is_enabled(mtev_debug));
    ARK_ASSERT(!mtev_log_stream_is_enabled(stream));
    mtevL(stream, "never %d\n", count_evaluation());
    ARK_ASSERT_EQ(evaluations, 0);
    ARK_ASSERT(mtev_log_stream_is_enabled(mtev_error));
    ARK_ASSERT(mtev_log_stream_is_enabled(mtev_notice));
}

ARK_TEST(find_returns_same_stream_and_builds_hierarchy)
{
    mtev_log_stream_t a = mtev_log_stream_find("debug/eventer");
    ARK_ASSERT(a == mtev_log_stream_find("debug/eventer"));
    ARK_ASSERT(mtev_log_stream_find("debug") == mtev_debug);
    ARK_ASSERT(mtev_log_stream_find("error") == mtev_error);
    ARK_ASSERT_STR_EQ(mtev_log_stream_get_name(a), "debug/eventer");
    ARK_ASSERT(mtev_log_stream_find("") == NULL);
    ARK_ASSERT(mtev_log_stream_find(NULL) == NULL);
}

ARK_TEST(enabling_parent_enables_children_unless_set)
{
    mtev_log_stream_t child = mtev_log_stream_find("debug/a/b");
    mtev_log_stream_t sibling = mtev_log_stream_find("debug/a/c");
    mtev_log_stream_enable(sibling, mtev_false);
    mtev_log_stream_enable(mtev_log_stream_find("debug/a"), mtev_true);
    ARK_ASSERT(mtev_log_stream_is_enabled(child));
    ARK_ASSERT(!mtev_log_stream_is_enabled(sibling));
    ARK_ASSERT(!mtev_log_stream_is_enabled(mtev_debug));
    mtev_log_stream_inherit(sibling);
    ARK_ASSERT(mtev_log_stream_is_enabled(sibling));
    /* A stream created later under an enabled parent is on too. */
    ARK_ASSERT(mtev_log_stream_is_enabled(mtev_log_stream_find("debug/a/d/e")));
}

ARK_TEST(spec_switches_streams)
{
    mtev_log_enable_from_spec("debug/x,debug/y");
    ARK_ASSERT(mtev_log_stream_is_enabled(mtev_log_stream_find("debug/x")));
    ARK_ASSERT(mtev_log_stream_is_enabled(mtev_log_stream_find("debug/y/z")));
    ARK_ASSERT(!mtev_log_stream_is_enabled(mtev_log_stream_find("debug/w")));
    mtev_log_enable_from_spec("all,-debug/y");
    ARK_ASSERT(mtev_log_stream_is_enabled(mtev_log_stream_find("debug/w")));
    ARK_ASSERT(mtev_log_stream_is_enabled(mtev_debug));
    ARK_ASSERT(!mtev_log_stream_is_enabled(mtev_log_stream_find("debug/y")));
}

/* Runs only under the environment set by environment_variable_enables_debug. */
ARK_TEST(environment_child)
{
    const char *spec = getenv("MTEV_DEBUG");
    if (!spec || strcmp(spec, "debug/envtest") != 0)
        return;
    ARK_ASSERT(mtev_log_stream_is_enabled(mtev_log_stream_find("debug/envtest")));
    ARK_ASSERT(mtev_log_stream_is_enabled(mtev_log_stream_find("debug/envtest/sub")));
    ARK_ASSERT(!mtev_log_stream_is_enabled(mtev_log_stream_find("debug/other")));
    exit(42);
}

ARK_TEST(environment_variable_enables_debug)
{
    pid_t child = fork();
    ARK_ASSERT(child >= 0);
    if (child == 0) {
        setenv("MTEV_DEBUG", "debug/envtest", 1);
        execl("/proc/self/exe", "test_log", "environment_child", (char *)NULL);
        _exit(99);
    }
    int status = 0;
    ARK_ASSERT_EQ(waitpid(child, &status, 0), child);
    ARK_ASSERT(WIFEXITED(status));
    ARK_ASSERT_EQ(WEXITSTATUS(status), 42);
}

ARK_TEST(writer_gets_formatted_line_and_children_inherit_it)
{
    static struct capture capture = {.lock = PTHREAD_MUTEX_INITIALIZER};
    mtev_log_stream_t parent = mtev_log_stream_find("captured");
    mtev_log_stream_t child = mtev_log_stream_find("captured/child");
    mtev_log_stream_set_writer(parent, capture_writer, &capture);
    mtevL(child, "hello %d", 7);
    ARK_ASSERT_EQ(capture.lines, 1);
    ARK_ASSERT(strstr(capture.text, "[captured/child] hello 7\n") != NULL);
    ARK_ASSERT_EQ(capture.text[capture.length - 1], '\n');
    struct timeval stamp = {.tv_sec = 0, .tv_usec = 5};
    mtevLT(parent, &stamp, "stamped\n");
    ARK_ASSERT(strstr(capture.text, "[1970-01-01T00:00:00.000005Z] [captured] stamped\n"));
    /* Long lines are not truncated. */
    char long_text[3000];
    memset(long_text, 'x', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';
    capture.length = 0;
    mtevL(parent, "%s", long_text);
    ARK_ASSERT(capture.length > sizeof(long_text));
    mtev_log_stream_set_writer(parent, NULL, NULL);
}

ARK_TEST(fd_output_writes_lines)
{
    int pipe_fds[2];
    ARK_ASSERT_EQ(pipe(pipe_fds), 0);
    mtev_log_stream_t stream = mtev_log_stream_find("tofd");
    mtev_log_stream_set_fd(stream, pipe_fds[1]);
    mtevL(stream, "via fd\n");
    char buffer[256] = {0};
    ssize_t got = read(pipe_fds[0], buffer, sizeof(buffer) - 1);
    ARK_ASSERT(got > 0);
    ARK_ASSERT(strstr(buffer, "[tofd] via fd\n") != NULL);
    mtev_log_stream_set_fd(stream, -1);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
}

static void fatal_child(void *argument)
{
    (void)argument;
    mtevFatal(mtev_error, "something broke: %s\n", "details");
}

static void assert_child(void *argument)
{
    int value = *(int *)argument;
    mtevAssert(value == 2);
}

ARK_TEST(fatal_and_assert_abort_with_message)
{
    char text[2048];
    int status = ark_test_run_in_child(fatal_child, NULL, text, sizeof(text));
    ARK_ASSERT(WIFSIGNALED(status));
    ARK_ASSERT_EQ(WTERMSIG(status), SIGABRT);
    ARK_ASSERT(strstr(text, "something broke: details") != NULL);
    int one = 1;
    status = ark_test_run_in_child(assert_child, &one, text, sizeof(text));
    ARK_ASSERT(WIFSIGNALED(status));
    ARK_ASSERT(strstr(text, "value == 2") != NULL);
}

static struct capture threaded = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void *log_many(void *argument)
{
    mtev_log_stream_t stream = argument;
    for (int i = 0; i < 500; i++)
        mtevL(stream, "line %d\n", i);
    return NULL;
}

ARK_TEST(concurrent_logging_and_toggling)
{
    mtev_log_stream_t stream = mtev_log_stream_find("threads");
    mtev_log_stream_set_writer(stream, capture_writer, &threaded);
    pthread_t threads[4];
    for (int i = 0; i < 4; i++)
        ARK_ASSERT_EQ(pthread_create(&threads[i], NULL, log_many, stream), 0);
    for (int i = 0; i < 50; i++)
        mtev_log_stream_find("threads/sub");
    for (int i = 0; i < 4; i++)
        pthread_join(threads[i], NULL);
    ARK_ASSERT_EQ(threaded.lines, 2000);
    mtev_log_stream_set_writer(stream, NULL, NULL);
}
