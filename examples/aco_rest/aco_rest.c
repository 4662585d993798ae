/*
 * The seed's "Using aco with REST": GET /hello is served by a handler running in a
 * co-routine, which waits for a job (one second of "work") before ending the response.
 *
 * usage: aco_rest [CONFIG]   (default: aco_rest.conf next to the sources)
 *     curl http://127.0.0.1:8080/hello
 */
#include <eventer/eventer.h>
#include <mtev_conf.h>
#include <mtev_http.h>
#include <mtev_listener.h>
#include <mtev_log.h>
#include <mtev_rest.h>

#include <unistd.h>

/* ---- the seed's code (with the `return 0;` its child_main lacks) ---- */

// clang-format off
static void asynch_hello(void *closure) {
  mtev_http_rest_closure_t *restc = closure;
  mtev_http_session_ctx *ctx = restc->http_ctx;
  sleep(1);
  mtev_http_response_append_str(ctx, "Hello world.\n");
}

static int
hello_handler(mtev_http_rest_closure_t *restc,
              int npats, char **pats) {
  mtev_http_session_ctx *ctx = restc->http_ctx;
  mtev_http_response_ok(ctx, "text/plain");
  eventer_aco_simple_asynch(asynch_hello, restc);
  mtev_http_response_end(ctx);
  return 0;
}

static int child_main(void) {
  eventer_init();
  mtev_http_rest_init();
  mtev_listener_init("myapp");

  mtev_rest_mountpoint_t *rule = mtev_http_rest_new_rule(
    "GET", "/", "^hello$", hello_handler
  );
  mtev_rest_mountpoint_set_aco(rule, mtev_true);

  eventer_loop();
  return 0;
}
// clang-format on

/* ---- the "..." of the seed: load the configuration first ---- */

int main(int argc, char **argv)
{
    const char *config = argc > 1 ? argv[1] : EXAMPLE_CONFIG;
    mtev_conf_init("myapp");
    if (mtev_conf_load(config) < 0)
        return 2;
    return child_main();
}
