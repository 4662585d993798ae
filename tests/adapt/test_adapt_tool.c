/* arken-adapt: a message from a file or stdin through a chain of modules, printed adapted. */
#include "adapt_test_util.h"

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs `command` with the shell, returns its exit status and stdout in `output`. */
static int run_command(const char *command, char *output, size_t capacity)
{
    FILE *pipe = popen(command, "r");
    ARK_ASSERT(pipe != NULL);
    size_t length = fread(output, 1, capacity - 1, pipe);
    output[length] = '\0';
    int status = pclose(pipe);
    ARK_ASSERT(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void write_file(const char *path, const char *text)
{
    FILE *file = fopen(path, "wb");
    ARK_ASSERT(file != NULL);
    fputs(text, file);
    fclose(file);
}

ARK_TEST(arken_adapt_prints_the_adapted_message)
{
    char path[] = "/tmp/arken-adapt-test-XXXXXX";
    int fd = mkstemp(path);
    ARK_ASSERT(fd >= 0);
    close(fd);
    write_file(path, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 24\r\n\r\n"
                     "the cat sat on the cat!\n");
    char command[4096], output[4096];
    snprintf(command, sizeof(command),
             "%s -m %s -m %s -s ecap://arkenstone/adapters/passthru "
             "-s ecap://arkenstone/adapters/modifying -o victim=cat -o replacement=tiger %s",
             ARK_ADAPT_TOOL, adapt_test_module("passthru"), adapt_test_module("modifying"), path);
    ARK_ASSERT_EQ(run_command(command, output, sizeof(output)), 0);
    ARK_ASSERT_STR_EQ(output, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                              "Content-Length: 28\r\n\r\nthe tiger sat on the tiger!\n");

    /* From stdin, streaming mode (buffer_limit 0): the tool adds the real Content-Length. */
    snprintf(command, sizeof(command),
             "%s -m %s -s ecap://arkenstone/adapters/modifying -o victim=cat -o replacement=ox "
             "-o buffer_limit=0 - < %s",
             ARK_ADAPT_TOOL, adapt_test_module("modifying"), path);
    ARK_ASSERT_EQ(run_command(command, output, sizeof(output)), 0);
    ARK_ASSERT_STR_EQ(output, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                              "Content-Length: 22\r\n\r\nthe ox sat on the ox!\n");

    /* A blocked request exits with 2; a bad option with 1 and a message naming it. */
    write_file(path, "GET http://bad.example/x HTTP/1.1\r\nHost: bad.example\r\n\r\n");
    snprintf(command, sizeof(command),
             "%s -m %s -s ecap://arkenstone/adapters/async -o delay_ms=1 -o block=bad.example "
             "%s 2>&1",
             ARK_ADAPT_TOOL, adapt_test_module("async"), path);
    ARK_ASSERT_EQ(run_command(command, output, sizeof(output)), 2);
    ARK_ASSERT(strstr(output, "blocked") != NULL);
    snprintf(command, sizeof(command),
             "%s -m %s -s ecap://arkenstone/adapters/async -o delay_ms=later %s 2>&1",
             ARK_ADAPT_TOOL, adapt_test_module("async"), path);
    ARK_ASSERT_EQ(run_command(command, output, sizeof(output)), 1);
    ARK_ASSERT_MSG(strstr(output, "delay_ms=\"later\"") != NULL, "output: %s", output);
    unlink(path);
}
