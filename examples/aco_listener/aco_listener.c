/*
 * The seed's "Making an aco listener": a listener whose type is an aco function. Each
 * connection gets "thanks!" for every read, "quitter!" and a close for "quit", and "bye!" and
 * a close after 10 s of silence.
 *
 * usage: aco_listener [CONFIG]   (default: aco_listener.conf next to the sources)
 *     printf 'hi\nquit\n' | nc 127.0.0.1 9999
 */
#include <eventer/eventer.h>
#include <mtev_conf.h>
#include <mtev_listener.h>
#include <mtev_log.h>

#include <errno.h>
#include <string.h>
#include <strings.h>

#define APPNAME "aco_listener"

/* ---- the seed's code, unchanged ---- */

// clang-format off
static void listen_to_me(void) {
  eventer_aco_t e = eventer_aco_arg();
  struct timeval tensec = { .tv_sec = 10 };
  while(1) {
    int rv;
    char buff[128];
    rv = eventer_aco_read(e, buff, sizeof(buff), &tensec);
    if(rv == -1) {
      if(errno == ETIME) {
        eventer_aco_write(e, "bye!\n", 5, NULL);
      }
      break;
    }
    if(rv >=4 && !strncasecmp(buff, "quit", 4)) {
      eventer_aco_write(e, "quitter!\n", 9, NULL);
      break;
    }
    if(eventer_aco_write(e, "thanks!\n", 9, NULL) < 0)
      break;
  }

  eventer_aco_close(e);
  eventer_aco_free(e);
  // our caller aco_exit()s, but it won't hurt anything if we do it first
  // aco_exit();
}

static int child_main(void) {
  eventer_init();
  mtev_listener_register_aco_function("listen_to_me", listen_to_me);
  mtev_listener_init(APPNAME);
  eventer_loop();
  return 0;
}
// clang-format on

/* ---- the "..." of the seed: load the configuration first ---- */

int main(int argc, char **argv)
{
    const char *config = argc > 1 ? argv[1] : EXAMPLE_CONFIG;
    mtev_conf_init(APPNAME);
    if (mtev_conf_load(config) < 0)
        return 2;
    return child_main();
}
