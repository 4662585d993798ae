/*
 * The seed's first ACO example, "Starting a simple co-routine", as a program.
 *
 * my_coroutine() and calling_function() are the seed's code. main() is the bootstrap the seed
 * leaves to the reader: start the eventer, call calling_function(), run the loop. The seed's
 * co-routine sleeps and logs forever; so that a test can run this program, it takes two
 * optional arguments: the sleep in milliseconds (default 2000, the seed's two seconds) and a
 * run time in milliseconds after which it stops (default: never).
 *
 *     aco_sleep                # "Waking up to do something" every 2 s, until killed
 *     aco_sleep 20 300         # every 20 ms, for 300 ms, then exit 0
 */
#include <eventer/eventer.h>

#include <stdio.h>
#include <stdlib.h>

static long sleep_ms = 2000;

static void my_coroutine(void)
{
    struct timeval *sleep_time = eventer_aco_arg();
    while (1) {
        mtev_aco_sleep(sleep_time);
        mtevL(mtev_error, "Waking up to do something\n");
    }
    aco_exit();
}

static struct timeval *started_sleep_time;

static void calling_function(void)
{
    struct timeval *sleep_time = malloc(sizeof(*sleep_time));
    sleep_time->tv_sec = sleep_ms / 1000;
    sleep_time->tv_usec = (sleep_ms % 1000) * 1000;
    started_sleep_time = sleep_time; /* not in the seed: lets main() free it at the end */
    eventer_aco_start(my_coroutine, sleep_time);
}

/* Stops the program after the requested run time (not part of the seed's example). */
static int stop_running(eventer_t e, int mask, void *closure, struct timeval *now)
{
    eventer_shutdown();
    return 0;
}

int main(int argc, char **argv)
{
    long run_ms = 0;
    if (argc > 1)
        sleep_ms = strtol(argv[1], NULL, 10);
    if (argc > 2)
        run_ms = strtol(argv[2], NULL, 10);
    if (sleep_ms < 0 || run_ms < 0 || argc > 3) {
        fprintf(stderr, "usage: %s [sleep_ms [run_ms]]\n", argv[0]);
        return 2;
    }
    if (eventer_init() != 0)
        return 1;
    calling_function();
    if (run_ms > 0)
        eventer_add_in_s_us(stop_running, NULL, (unsigned long)run_ms / 1000,
                            (unsigned long)(run_ms % 1000) * 1000);
    eventer_loop(); /* returns after eventer_shutdown(); the parked co is destroyed */
    free(started_sleep_time);
    return 0;
}
