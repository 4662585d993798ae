/*
 * GET /eventer/stats.json: loop threads, events, every job queue (configured or created at run
 * time), and co-routines (live, and the bytes of their save stacks).
 */
#include "arkend.h"

#include <eventer/eventer.h>
#include <mtev_http.h>
#include <mtev_rest.h>

#include <stdio.h>

static void count_fd_event(eventer_t e, void *closure)
{
    (*(int *)closure)++;
}

struct queue_output {
    mtev_http_session_ctx *ctx;
    int first;
};

/* Queue names come from configuration and code: quote them as JSON strings. */
static void append_json_string(mtev_http_session_ctx *ctx, const char *text)
{
    mtev_http_response_append(ctx, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p == '"' || *p == '\\')
            mtev_http_response_appendf(ctx, "\\%c", *p);
        else if (*p < 0x20)
            mtev_http_response_appendf(ctx, "\\u%04x", *p);
        else
            mtev_http_response_append(ctx, p, 1);
    }
    mtev_http_response_append(ctx, "\"", 1);
}

static void append_queue(eventer_jobq_t *queue, void *closure)
{
    struct queue_output *output = closure;
    mtev_http_session_ctx *ctx = output->ctx;
    int first = output->first;
    output->first = 0;
    uint32_t min = 0, max = 0;
    eventer_jobq_get_min_max(queue, &min, &max);
    mtev_http_response_append_str(ctx, first ? "\n    " : ",\n    ");
    append_json_string(ctx, eventer_jobq_get_queue_name(queue));
    mtev_http_response_appendf(ctx,
                               ": {\"concurrency\": %u, \"min\": %u, \"max\": %u, "
                               "\"backlog\": %u, \"inflight\": %u, \"max_backlog\": %u}",
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
    struct queue_output output = {.ctx = ctx, .first = 1};
    eventer_jobq_process_each(append_queue, &output);
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
