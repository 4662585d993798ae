/* Configuration: loading, error reports with file and line, getters, inheritance, <logs>. */
#include "ark_test.h"

#include <mtev_conf.h>
#include <mtev_log.h>

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

static const char *sample =
    "<?xml version=\"1.0\"?>\n"
    "<myapp lockfile=\"/tmp/x\">\n"
    "  <eventer><config><concurrency>4</concurrency><jobq_io>2,1,4</jobq_io></config></eventer>\n"
    "  <listeners backlog=\"7\">\n"
    "    <config><greeting>hi</greeting><size>1</size></config>\n"
    "    <listener type=\"echo\" address=\"*\" port=\"8000\">\n"
    "      <config><size>2</size></config>\n"
    "    </listener>\n"
    "    <listener type=\"http\" port=\"8080\" backlog=\"100\" ssl=\"on\"/>\n"
    "  </listeners>\n"
    "  <numbers big=\"5000000000\" bad=\"12x\" ratio=\"0.5\"/>\n"
    "  <logs><log name=\"debug/conftest\" disabled=\"false\"/></logs>\n"
    "</myapp>\n";

static char captured[4096];
static void capture_writer(void *closure, mtev_log_stream_t stream, const char *line, size_t length)
{
    (void)closure;
    (void)stream;
    size_t used = strlen(captured);
    if (used + length < sizeof(captured))
        memcpy(captured + used, line, length);
}

static void capture_errors(void)
{
    captured[0] = '\0';
    mtev_log_stream_set_writer(mtev_error, capture_writer, NULL);
}

ARK_TEST(load_string_and_read_values)
{
    ARK_ASSERT_EQ(mtev_conf_load_string("sample", sample), 0);
    ARK_ASSERT(mtev_conf_is_loaded());
    int32_t concurrency = 0;
    ARK_ASSERT(
        mtev_conf_get_int32(MTEV_CONF_ROOT, "/myapp/eventer/config/concurrency", &concurrency));
    ARK_ASSERT_EQ(concurrency, 4);
    char *lockfile = NULL;
    ARK_ASSERT(mtev_conf_get_string(MTEV_CONF_ROOT, "/myapp/@lockfile", &lockfile));
    ARK_ASSERT_STR_EQ(lockfile, "/tmp/x");
    free(lockfile);
    char *missing = NULL;
    ARK_ASSERT(!mtev_conf_get_string(MTEV_CONF_ROOT, "/myapp/nothing", &missing));
    ARK_ASSERT(missing == NULL);
    int64_t big = 0;
    ARK_ASSERT(mtev_conf_get_int64(MTEV_CONF_ROOT, "//numbers/@big", &big));
    ARK_ASSERT_EQ(big, 5000000000LL);
    int32_t narrow = 0;
    ARK_ASSERT(!mtev_conf_get_int32(MTEV_CONF_ROOT, "//numbers/@big", &narrow));
    capture_errors();
    ARK_ASSERT(!mtev_conf_get_int32(MTEV_CONF_ROOT, "//numbers/@bad", &narrow));
    ARK_ASSERT(strstr(captured, "12x") != NULL);
    double ratio = 0;
    ARK_ASSERT(mtev_conf_get_double(MTEV_CONF_ROOT, "//numbers/@ratio", &ratio));
    ARK_ASSERT(ratio == 0.5);
    mtev_conf_unload();
    mtev_log_stream_set_writer(mtev_error, NULL, NULL);
}

ARK_TEST(sections_and_inheritance)
{
    ARK_ASSERT_EQ(mtev_conf_load_string(NULL, sample), 0);
    int count = 0;
    mtev_conf_section_t *listeners =
        mtev_conf_get_sections_read(MTEV_CONF_ROOT, "/myapp/listeners//listener", &count);
    ARK_ASSERT_EQ(count, 2);
    char type[32];
    ARK_ASSERT(mtev_conf_get_stringbuf(listeners[0], "@type", type, sizeof(type)));
    ARK_ASSERT_STR_EQ(type, "echo");
    int32_t port = 0, backlog = 0;
    ARK_ASSERT(mtev_conf_get_int32(listeners[0], "port", &port));
    ARK_ASSERT_EQ(port, 8000);
    /* Inherited from <listeners backlog="7">, overridden on the second listener. */
    ARK_ASSERT(mtev_conf_get_int32(listeners[0], "backlog", &backlog));
    ARK_ASSERT_EQ(backlog, 7);
    ARK_ASSERT(mtev_conf_get_int32(listeners[1], "backlog", &backlog));
    ARK_ASSERT_EQ(backlog, 100);
    mtev_boolean ssl = mtev_false;
    ARK_ASSERT(mtev_conf_get_boolean(listeners[1], "ssl", &ssl));
    ARK_ASSERT(ssl == mtev_true);
    ARK_ASSERT(!mtev_conf_get_boolean(listeners[0], "ssl", &ssl));
    char name[32];
    ARK_ASSERT(mtev_conf_section_name(listeners[0], name, sizeof(name)));
    ARK_ASSERT_STR_EQ(name, "listener");
    mtev_conf_release_sections_read(listeners, count);

    mtev_conf_section_t none = mtev_conf_get_section_read(MTEV_CONF_ROOT, "/myapp/absent");
    ARK_ASSERT(mtev_conf_section_is_empty(none));
    mtev_conf_section_t eventer = mtev_conf_get_section_read(MTEV_CONF_ROOT, "/myapp/eventer");
    ARK_ASSERT(!mtev_conf_section_is_empty(eventer));
    mtev_conf_release_section_read(eventer);
    mtev_conf_section_t *nothing = mtev_conf_get_sections_read(MTEV_CONF_ROOT, "//zzz", &count);
    ARK_ASSERT(nothing == NULL);
    ARK_ASSERT_EQ(count, 0);
    mtev_conf_unload();
}

struct pairs {
    char text[256];
};

static void collect_pair(const char *key, const char *value, void *closure)
{
    struct pairs *pairs = closure;
    size_t used = strlen(pairs->text);
    snprintf(pairs->text + used, sizeof(pairs->text) - used, "%s=%s;", key, value);
}

ARK_TEST(config_pairs_outermost_first)
{
    ARK_ASSERT_EQ(mtev_conf_load_string(NULL, sample), 0);
    mtev_conf_section_t listener =
        mtev_conf_get_section_read(MTEV_CONF_ROOT, "//listener[@type='echo']");
    struct pairs pairs = {{0}};
    ARK_ASSERT_EQ(mtev_conf_foreach_pair(listener, "config", collect_pair, &pairs), 3);
    ARK_ASSERT_STR_EQ(pairs.text, "greeting=hi;size=1;size=2;");
    mtev_conf_unload();
}

ARK_TEST(file_errors_name_file_and_line)
{
    char path[] = "/tmp/ark_conf_XXXXXX";
    int fd = mkstemp(path);
    ARK_ASSERT(fd >= 0);
    const char *broken = "<myapp>\n  <eventer>\n    <config>\n  </eventer>\n</myapp>\n";
    ARK_ASSERT_EQ(write(fd, broken, strlen(broken)), (ssize_t)strlen(broken));
    close(fd);
    capture_errors();
    ARK_ASSERT_EQ(mtev_conf_load(path), -1);
    char expected[128];
    snprintf(expected, sizeof(expected), "%s:4:", path);
    ARK_ASSERT_MSG(strstr(captured, expected) != NULL, "log was: %s", captured);
    ARK_ASSERT(!mtev_conf_is_loaded());

    captured[0] = '\0';
    ARK_ASSERT_EQ(mtev_conf_load("/nonexistent/ark.conf"), -1);
    ARK_ASSERT(strstr(captured, "/nonexistent/ark.conf:0: cannot open") != NULL);

    /* A good file loads; a wrong root element is refused with its line. */
    const char *good = "<?xml version=\"1.0\"?>\n<other>\n</other>\n";
    fd = open(path, O_WRONLY | O_TRUNC);
    ARK_ASSERT(fd >= 0);
    ARK_ASSERT_EQ(write(fd, good, strlen(good)), (ssize_t)strlen(good));
    close(fd);
    mtev_conf_init("myapp");
    captured[0] = '\0';
    ARK_ASSERT_EQ(mtev_conf_load(path), -1);
    snprintf(expected, sizeof(expected), "%s:2: root element <other> is not <myapp>", path);
    ARK_ASSERT_MSG(strstr(captured, expected) != NULL, "log was: %s", captured);
    mtev_conf_init(NULL);
    ARK_ASSERT_EQ(mtev_conf_load(path), 0);
    unlink(path);
    mtev_conf_unload();
    mtev_log_stream_set_writer(mtev_error, NULL, NULL);
}

ARK_TEST(string_errors_keep_previous_document)
{
    ARK_ASSERT_EQ(mtev_conf_load_string("first", sample), 0);
    capture_errors();
    ARK_ASSERT_EQ(mtev_conf_load_string("embedded", "<a>\n<b>\n</a>"), -1);
    ARK_ASSERT_MSG(strstr(captured, "embedded:3:") != NULL, "log was: %s", captured);
    int32_t concurrency = 0;
    ARK_ASSERT(mtev_conf_get_int32(MTEV_CONF_ROOT, "//concurrency", &concurrency));
    ARK_ASSERT_EQ(concurrency, 4);
    mtev_conf_unload();
    mtev_log_stream_set_writer(mtev_error, NULL, NULL);
}

ARK_TEST(logs_section_enables_streams)
{
    ARK_ASSERT_EQ(mtev_conf_load_string(NULL, sample), 0);
    mtev_log_stream_t stream = mtev_log_stream_find("debug/conftest");
    ARK_ASSERT(!mtev_log_stream_is_enabled(stream));
    ARK_ASSERT_EQ(mtev_conf_log_init(NULL), 1);
    ARK_ASSERT(mtev_log_stream_is_enabled(stream));
    mtev_conf_unload();
}
