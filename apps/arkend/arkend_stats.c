/*
 * GET /eventer/stats.json: loop threads, events, job queues (the default one and those the
 * configuration names), and co-routines (live, and the bytes of their save stacks).
 */
#include "arkend.h"

#include <eventer/eventer.h>
#include <mtev_conf.h>
#include <mtev_http.h>
#include <mtev_rest.h>

#include <stdio.h>
#include <string.h>

static void count_fd_event(eventer_t e, void *closure)
{
    (*(int *)closure)++;
}

struct queue_list {
    char names[64][64];
    int count;
};

static void add_queue_name(struct queue_list *list, const char *name)
{
    for (int i = 0; i < list->count; i++)
        if (!strcmp(list->names[i], name))
            return;
    if (list->count < 64 && strlen(name) < sizeof(list->names[0]))
        strcpy(list->names[list->count++], name);
}

static void configured_queue(const char *key, const char *value, void *closure)
{
    if (!strncmp(key, "jobq_", 5))
        add_queue_name(closure, key + 5);
}

static void append_queue(mtev_http_session_ctx *ctx, eventer_jobq_t *queue, int first)
{
    uint32_t min = 0, max = 0;
    eventer_jobq_get_min_max(queue, &min, &max);
    mtev_http_response_appendf(ctx,
                               "%s\n    \"%s\": {\"concurrency\": %u, \"min\": %u, \"max\": %u, "
                               "\"backlog\": %u, \"inflight\": %u, \"max_backlog\": %u}",
                               first ? "" : ",", eventer_jobq_get_queue_name(queue),
                               eventer_jobq_get_concurrency(queue), min, max,
                               eventer_jobq_get_backlog(queue), eventer_jobq_get_inflight(queue),
                               eventer_jobq_get_max_backlog(queue));
}

static int stats_handler(mtev_http_rest_closure_t *restc, int npats, char **pats)
{
    mtev_http_session_ctx *ctx = restc->http_ctx;
    int fd_events = 0;
    eventer_foreach_fdevent(count_fd_event, &fd_events);
    struct timeval epoch = {0, 0}, now;
    eventer_get_epoch(&epoch);
    gettimeofday(&now, NULL);
    mtev_http_response_ok(ctx, "application/json");
    mtev_http_response_appendf(ctx,
                               "{\n  \"uptime_seconds\": %ld,\n  \"loop_threads\": %d,\n"
                               "  \"events\": {\"allocated\": %lld, \"allocated_total\": %lld, "
                               "\"fd_registered\": %d},\n"
                               "  \"http\": {\"inflight_requests\": %lld},\n  \"jobq\": {",
                               (long)(now.tv_sec - epoch.tv_sec), eventer_loop_concurrency(),
                               (long long)eventer_allocations_current(),
                               (long long)eventer_allocations_total(), fd_events,
                               (long long)mtev_http_inflight_requests());
    struct queue_list list = {.count = 0};
    int first = 1;
    eventer_jobq_t *default_queue = eventer_default_jobq();
    if (default_queue) {
        append_queue(ctx, default_queue, first);
        first = 0;
    }
    mtev_conf_foreach_pair(MTEV_CONF_ROOT, "eventer/config", configured_queue, &list);
    for (int i = 0; i < list.count; i++) {
        eventer_jobq_t *queue = eventer_jobq_retrieve(list.names[i]);
        if (queue && queue != default_queue) {
            append_queue(ctx, queue, first);
            first = 0;
        }
    }
    eventer_aco_stats_t aco;
    eventer_aco_get_stats(&aco);
    mtev_http_response_appendf(ctx,
                               "\n  },\n  \"aco\": {\"live\": %llu, \"started\": %llu, "
                               "\"save_stack_bytes\": %llu, \"resumes\": %llu}\n}\n",
                               (unsigned long long)aco.live, (unsigned long long)aco.started,
                               (unsigned long long)aco.save_stack_bytes,
                               (unsigned long long)aco.resumes);
    mtev_http_response_end(ctx);
    return 0;
}

void arkend_stats_register(void)
{
    mtev_http_rest_new_rule("GET", "/eventer/", "^stats\\.json$", stats_handler);
}
