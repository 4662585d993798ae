/*
 * Job queues and asynchronous events: the queue registry, subqueues with round-robin
 * service, worker threads started on demand, the WORK -> CLEANUP -> COMPLETE life of a job,
 * deadlines (skip WORK when late; cancel a running WORK when the event asks for it),
 * dependent jobs, and the per-loop completion "back queues".
 *
 * Lock order: a queue's `lock` may be taken while holding nothing or `registry_lock`; it is
 * never held while a callback runs or while a loop's command lock is taken.
 *
 * A job is counted `pending` once for itself plus once per dependent job added from its WORK
 * phase; whoever drops the count to zero (the job's own thread after CLEANUP, or the last
 * dependent after its CLEANUP) posts COMPLETE to the owner loop.
 */
#include "eventer/eventer_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_WORKED, JOB_TIMED_OUT };

struct eventer_job {
    eventer_t event;
    struct _eventer_jobq *queue;
    uint64_t subqueue;
    struct eventer_job *next, *prev;
    struct eventer_job *parent;
    uint32_t pending; /* atomic */
    int state;        /* under queue->lock for cancellable jobs */
    int cancel_requested;
    pthread_t worker;
    eventer_t deadline_timer; /* owner loop thread only */
    struct eventer_loop *complete_loop;
    pthread_t reaper; /* joins the cancelled job thread, then hands the job to the loop */
    int reaper_joined;
    struct eventer_job *next_cancelling;
    /* COMPLETE or CANCELLED when the loop's queue could not take it (one at a time: the
     * loop posts COMPLETE only after it finished CANCELLED). */
    struct eventer_spilled_command spill;
};

struct subqueue {
    uint64_t id;
    struct eventer_job *head, *tail;
    uint32_t count;
    int in_ring;
    struct subqueue *ring_next, *ring_prev;
    struct subqueue *hash_next;
};

struct worker {
    pthread_t thread;
    int exited;
};

struct _eventer_jobq {
    char *name;
    char *short_name;
    pthread_mutex_t lock;
    pthread_cond_t work_available;
    struct subqueue **buckets;
    uint32_t bucket_count, subqueue_count;
    /* Subqueue 0, never freed: also where a job goes whose subqueue record could not be
     * allocated (it then loses its subqueue's fairness, not its place in the queue). */
    struct subqueue common;
    struct subqueue *ring; /* the subqueue served next */
    uint32_t backlog, inflight;
    uint32_t concurrency, min, max, max_backlog;
    uint32_t floor;           /* as set; the effective floor is at most the concurrency */
    uint32_t idle_timeout_ms; /* how long a thread beyond the floor stays idle */
    int lifo;
    eventer_jobq_memory_safety_t memory_safety;
    uint32_t threads, idle_threads;
    struct worker *workers;
    uint32_t worker_count, worker_capacity;
    int shutting_down;
    struct eventer_job *cancelling;  /* jobs whose thread is being cancelled */
    struct eventer_loop *backq_loop; /* non-NULL: a loop's completion queue */
    struct _eventer_jobq *next_queue;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct _eventer_jobq *all_queues;
static struct _eventer_jobq *default_queue;
static uint32_t default_queue_threads = 10;
static int default_lifo;
/* libmtev's idle period: a job thread beyond the floor exits after 5 s without work. */
#define DEFAULT_IDLE_TIMEOUT_MS 5000

static __thread struct eventer_job *current_job;
static __thread int current_phase;

/* ---- queue objects ---- */

static uint32_t bucket_of(struct _eventer_jobq *queue, uint64_t id);

static struct _eventer_jobq *queue_new(const char *name, eventer_jobq_memory_safety_t safety)
{
    struct _eventer_jobq *queue = calloc(1, sizeof(*queue));
    if (!queue)
        return NULL;
    queue->name = strdup(name);
    queue->bucket_count = 16;
    queue->buckets = calloc(queue->bucket_count, sizeof(*queue->buckets));
    if (!queue->name || !queue->buckets) {
        free(queue->name);
        free(queue->buckets);
        free(queue);
        return NULL;
    }
    queue->common.id = 0;
    queue->buckets[bucket_of(queue, 0)] = &queue->common;
    queue->subqueue_count = 1;
    pthread_mutex_init(&queue->lock, NULL);
    /* Idle deadlines on the monotonic clock: setting the wall clock must not end or
     * prolong an idle period. */
    pthread_condattr_t attributes;
    pthread_condattr_init(&attributes);
    pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC);
    pthread_cond_init(&queue->work_available, &attributes);
    pthread_condattr_destroy(&attributes);
    queue->idle_timeout_ms = DEFAULT_IDLE_TIMEOUT_MS;
    queue->concurrency = 1;
    queue->min = 1;
    queue->lifo = default_lifo;
    queue->memory_safety = safety;
    return queue;
}

static void queue_free(struct _eventer_jobq *queue)
{
    for (uint32_t b = 0; b < queue->bucket_count; b++) {
        struct subqueue *sq = queue->buckets[b];
        while (sq) {
            struct subqueue *next = sq->hash_next;
            if (sq != &queue->common)
                free(sq);
            sq = next;
        }
    }
    free(queue->buckets);
    free(queue->workers);
    pthread_mutex_destroy(&queue->lock);
    pthread_cond_destroy(&queue->work_available);
    free(queue->short_name);
    free(queue->name);
    free(queue);
}

static struct _eventer_jobq *find_locked(const char *name)
{
    for (struct _eventer_jobq *q = all_queues; q; q = q->next_queue)
        if (!strcmp(q->name, name))
            return q;
    return NULL;
}

eventer_jobq_t *eventer_jobq_create_ms(const char *name, eventer_jobq_memory_safety_t safety)
{
    if (!name)
        return NULL;
    pthread_mutex_lock(&registry_lock);
    struct _eventer_jobq *queue = find_locked(name);
    if (!queue) {
        queue = queue_new(name, safety);
        if (queue) {
            queue->next_queue = all_queues;
            all_queues = queue;
        }
    }
    pthread_mutex_unlock(&registry_lock);
    return queue;
}

eventer_jobq_t *eventer_jobq_create(const char *name)
{
    return eventer_jobq_create_ms(name, EVENTER_JOBQ_MS_GC);
}

eventer_jobq_t *eventer_jobq_retrieve(const char *name)
{
    if (!name)
        return NULL;
    pthread_mutex_lock(&registry_lock);
    struct _eventer_jobq *queue = find_locked(name);
    pthread_mutex_unlock(&registry_lock);
    return queue;
}

int eventer_jobq_process_each(void (*visit)(eventer_jobq_t *queue, void *closure), void *closure)
{
    if (!visit)
        return 0;
    /* A snapshot, so that `visit` runs without the registry lock (it may create queues). */
    pthread_mutex_lock(&registry_lock);
    size_t count = 0;
    for (struct _eventer_jobq *q = all_queues; q; q = q->next_queue)
        count++;
    struct _eventer_jobq **queues = count ? malloc(count * sizeof(*queues)) : NULL;
    if (queues) {
        /* The registry is newest first; visit oldest first. */
        size_t i = count;
        for (struct _eventer_jobq *q = all_queues; q; q = q->next_queue)
            queues[--i] = q;
    }
    pthread_mutex_unlock(&registry_lock);
    if (!queues)
        return 0;
    for (size_t i = 0; i < count; i++)
        visit(queues[i], closure);
    free(queues);
    return (int)count;
}

eventer_jobq_t *eventer_default_jobq(void)
{
    return default_queue;
}

struct _eventer_jobq *eventer_impl_backq_create(struct eventer_loop *loop)
{
    char name[64];
    snprintf(name, sizeof(name), "default_back_queue/%d", loop->index);
    struct _eventer_jobq *queue = queue_new(name, EVENTER_JOBQ_MS_NONE);
    if (queue)
        queue->backq_loop = loop;
    return queue;
}

void eventer_impl_backq_destroy(struct _eventer_jobq *backq)
{
    queue_free(backq);
}

eventer_jobq_t *eventer_default_backq(eventer_t e)
{
    struct eventer_loop *loop = e ? eventer_impl_loop_of_event(e) : eventer_impl_current_loop();
    if (!loop)
        loop = eventer_impl_loops;
    return loop ? loop->backq : NULL;
}

const char *eventer_jobq_get_queue_name(eventer_jobq_t *queue)
{
    return queue->name;
}

void eventer_jobq_set_shortname(eventer_jobq_t *queue, const char *name)
{
    char *copy = name ? strdup(name) : NULL;
    pthread_mutex_lock(&queue->lock);
    free(queue->short_name);
    queue->short_name = copy;
    pthread_mutex_unlock(&queue->lock);
}

void eventer_jobq_set_lifo(eventer_jobq_t *queue, mtev_boolean lifo)
{
    pthread_mutex_lock(&queue->lock);
    queue->lifo = lifo ? 1 : 0;
    pthread_mutex_unlock(&queue->lock);
}

mtev_boolean eventer_jobq_get_lifo(eventer_jobq_t *queue)
{
    pthread_mutex_lock(&queue->lock);
    int lifo = queue->lifo;
    pthread_mutex_unlock(&queue->lock);
    return lifo ? mtev_true : mtev_false;
}

/* Called with queue->lock held. */
static void clamp_concurrency(struct _eventer_jobq *queue)
{
    if (queue->concurrency < queue->min)
        queue->concurrency = queue->min;
    if (queue->max && queue->concurrency > queue->max)
        queue->concurrency = queue->max;
    if (queue->concurrency < 1)
        queue->concurrency = 1;
}

/* Called with queue->lock held. */
static uint32_t effective_floor(struct _eventer_jobq *queue)
{
    return queue->floor < queue->concurrency ? queue->floor : queue->concurrency;
}

/* Called with queue->lock held: idle threads re-check whether they should exit. */
static void idle_rules_changed(struct _eventer_jobq *queue)
{
    if (queue->idle_threads)
        pthread_cond_broadcast(&queue->work_available);
}

void eventer_jobq_set_concurrency(eventer_jobq_t *queue, uint32_t concurrency)
{
    pthread_mutex_lock(&queue->lock);
    queue->concurrency = concurrency;
    clamp_concurrency(queue);
    idle_rules_changed(queue);
    pthread_mutex_unlock(&queue->lock);
}

/* One of the queue's counters or settings, read under its lock. */
static uint32_t read_locked(eventer_jobq_t *queue, const uint32_t *field)
{
    pthread_mutex_lock(&queue->lock);
    uint32_t value = *field;
    pthread_mutex_unlock(&queue->lock);
    return value;
}

uint32_t eventer_jobq_get_concurrency(eventer_jobq_t *queue)
{
    return read_locked(queue, &queue->concurrency);
}

void eventer_jobq_set_floor(eventer_jobq_t *queue, uint32_t floor)
{
    pthread_mutex_lock(&queue->lock);
    queue->floor = floor;
    idle_rules_changed(queue);
    pthread_mutex_unlock(&queue->lock);
}

uint32_t eventer_jobq_get_floor(eventer_jobq_t *queue)
{
    pthread_mutex_lock(&queue->lock);
    uint32_t value = effective_floor(queue);
    pthread_mutex_unlock(&queue->lock);
    return value;
}

void eventer_jobq_set_idle_timeout_ms(eventer_jobq_t *queue, uint32_t milliseconds)
{
    pthread_mutex_lock(&queue->lock);
    queue->idle_timeout_ms = milliseconds;
    idle_rules_changed(queue);
    pthread_mutex_unlock(&queue->lock);
}

uint32_t eventer_jobq_get_idle_timeout_ms(eventer_jobq_t *queue)
{
    return read_locked(queue, &queue->idle_timeout_ms);
}

uint32_t eventer_jobq_get_thread_count(eventer_jobq_t *queue)
{
    return read_locked(queue, &queue->threads);
}

uint32_t eventer_jobq_get_idle_thread_count(eventer_jobq_t *queue)
{
    return read_locked(queue, &queue->idle_threads);
}

void eventer_jobq_set_min_max(eventer_jobq_t *queue, uint32_t min, uint32_t max)
{
    pthread_mutex_lock(&queue->lock);
    queue->min = min ? min : 1;
    queue->max = max;
    if (queue->max && queue->max < queue->min)
        queue->max = queue->min;
    clamp_concurrency(queue);
    pthread_mutex_unlock(&queue->lock);
}

void eventer_jobq_get_min_max(eventer_jobq_t *queue, uint32_t *min, uint32_t *max)
{
    pthread_mutex_lock(&queue->lock);
    if (min)
        *min = queue->min;
    if (max)
        *max = queue->max;
    pthread_mutex_unlock(&queue->lock);
}

void eventer_jobq_set_max_backlog(eventer_jobq_t *queue, uint32_t max_backlog)
{
    pthread_mutex_lock(&queue->lock);
    queue->max_backlog = max_backlog;
    pthread_mutex_unlock(&queue->lock);
}

uint32_t eventer_jobq_get_max_backlog(eventer_jobq_t *queue)
{
    return read_locked(queue, &queue->max_backlog);
}

uint32_t eventer_jobq_get_backlog(eventer_jobq_t *queue)
{
    if (queue->backq_loop) {
        struct eventer_loop *loop = queue->backq_loop;
        pthread_mutex_lock(&loop->command_lock);
        uint32_t count = loop->command_count;
        pthread_mutex_unlock(&loop->command_lock);
        return count;
    }
    return read_locked(queue, &queue->backlog);
}

uint32_t eventer_jobq_get_inflight(eventer_jobq_t *queue)
{
    return read_locked(queue, &queue->inflight);
}

eventer_jobq_memory_safety_t eventer_jobq_get_memory_safety(eventer_jobq_t *queue)
{
    return queue->memory_safety;
}

eventer_t eventer_jobq_inflight(void)
{
    return current_job ? current_job->event : NULL;
}

/* ---- subqueues (queue->lock held) ---- */

static uint32_t bucket_of(struct _eventer_jobq *queue, uint64_t id)
{
    uint64_t mixed = id * 0x9e3779b97f4a7c15ULL;
    return (uint32_t)(mixed >> 32) & (queue->bucket_count - 1);
}

static void grow_buckets(struct _eventer_jobq *queue)
{
    uint32_t count = queue->bucket_count * 2;
    struct subqueue **buckets = calloc(count, sizeof(*buckets));
    if (!buckets)
        return; /* keep the longer chains */
    struct subqueue **old = queue->buckets;
    uint32_t old_count = queue->bucket_count;
    queue->buckets = buckets;
    queue->bucket_count = count;
    for (uint32_t b = 0; b < old_count; b++) {
        struct subqueue *sq = old[b];
        while (sq) {
            struct subqueue *next = sq->hash_next;
            uint32_t slot = bucket_of(queue, sq->id);
            sq->hash_next = buckets[slot];
            buckets[slot] = sq;
            sq = next;
        }
    }
    free(old);
}

static struct subqueue *subqueue_get(struct _eventer_jobq *queue, uint64_t id)
{
    uint32_t slot = bucket_of(queue, id);
    for (struct subqueue *sq = queue->buckets[slot]; sq; sq = sq->hash_next)
        if (sq->id == id)
            return sq;
    struct subqueue *sq =
        eventer_impl_fault(EVENTER_FAULT_SUBQUEUE_RECORD) ? NULL : calloc(1, sizeof(*sq));
    if (!sq)
        return NULL;
    sq->id = id;
    sq->hash_next = queue->buckets[slot];
    queue->buckets[slot] = sq;
    if (++queue->subqueue_count > queue->bucket_count * 2)
        grow_buckets(queue);
    return sq;
}

static void subqueue_forget(struct _eventer_jobq *queue, struct subqueue *sq)
{
    struct subqueue **link = &queue->buckets[bucket_of(queue, sq->id)];
    while (*link && *link != sq)
        link = &(*link)->hash_next;
    if (*link)
        *link = sq->hash_next;
    queue->subqueue_count--;
    free(sq);
}

static void ring_insert(struct _eventer_jobq *queue, struct subqueue *sq)
{
    /* Before the cursor: the newcomer is served after every subqueue already waiting. */
    if (!queue->ring) {
        sq->ring_next = sq->ring_prev = sq;
        queue->ring = sq;
    } else {
        struct subqueue *cursor = queue->ring;
        sq->ring_next = cursor;
        sq->ring_prev = cursor->ring_prev;
        cursor->ring_prev->ring_next = sq;
        cursor->ring_prev = sq;
    }
    sq->in_ring = 1;
}

static void ring_remove(struct _eventer_jobq *queue, struct subqueue *sq)
{
    if (sq->ring_next == sq) {
        queue->ring = NULL;
    } else {
        sq->ring_prev->ring_next = sq->ring_next;
        sq->ring_next->ring_prev = sq->ring_prev;
        if (queue->ring == sq)
            queue->ring = sq->ring_next;
    }
    sq->in_ring = 0;
    sq->ring_next = sq->ring_prev = NULL;
}

/*
 * Queues the job in its subqueue. Returns 0, or 1 when that subqueue's record could not be
 * allocated: the job went to subqueue 0 instead (it keeps its id for the jobs it adds).
 */
static int push_locked(struct _eventer_jobq *queue, struct eventer_job *job)
{
    int fallback = 0;
    struct subqueue *sq = subqueue_get(queue, job->subqueue);
    if (!sq) {
        sq = &queue->common;
        fallback = 1;
    }
    job->next = NULL;
    job->prev = sq->tail;
    if (sq->tail)
        sq->tail->next = job;
    else
        sq->head = job;
    sq->tail = job;
    sq->count++;
    if (!sq->in_ring)
        ring_insert(queue, sq);
    queue->backlog++;
    return fallback;
}

static struct eventer_job *pop_locked(struct _eventer_jobq *queue)
{
    struct subqueue *sq = queue->ring;
    if (!sq)
        return NULL;
    struct eventer_job *job = queue->lifo ? sq->tail : sq->head;
    if (job->prev)
        job->prev->next = job->next;
    else
        sq->head = job->next;
    if (job->next)
        job->next->prev = job->prev;
    else
        sq->tail = job->prev;
    job->next = job->prev = NULL;
    sq->count--;
    queue->backlog--;
    queue->ring = sq->ring_next; /* round robin */
    if (sq->count == 0) {
        ring_remove(queue, sq);
        if (sq->id != 0) /* subqueue 0 is the common case: keep it */
            subqueue_forget(queue, sq);
    }
    return job;
}

/* ---- workers ---- */

static void *worker_main(void *argument);

/* Called with queue->lock held. */
static void reap_exited_workers(struct _eventer_jobq *queue)
{
    uint32_t kept = 0;
    for (uint32_t i = 0; i < queue->worker_count; i++) {
        if (queue->workers[i].exited) {
            pthread_join(queue->workers[i].thread, NULL);
        } else {
            queue->workers[kept++] = queue->workers[i];
        }
    }
    queue->worker_count = kept;
}

/* Called with queue->lock held. */
static void maybe_spawn_worker(struct _eventer_jobq *queue)
{
    if (queue->shutting_down || queue->backlog <= queue->idle_threads ||
        queue->threads >= queue->concurrency)
        return;
    reap_exited_workers(queue);
    int injected = eventer_impl_fault(EVENTER_FAULT_JOBQ_THREADS);
    if (injected || queue->worker_count == queue->worker_capacity) {
        uint32_t capacity = queue->worker_capacity ? queue->worker_capacity * 2 : 8;
        struct worker *grown = injected ? NULL : realloc(queue->workers, capacity * sizeof(*grown));
        if (!grown) {
            /* Jobs stay queued; the next add or an existing thread will take them. */
            mtevL(eventer_impl_error, "jobq %s: out of memory starting a thread\n", queue->name);
            return;
        }
        queue->workers = grown;
        queue->worker_capacity = capacity;
    }
    struct worker *slot = &queue->workers[queue->worker_count];
    slot->exited = 0;
    int error = pthread_create(&slot->thread, NULL, worker_main, queue);
    if (error) {
        /* Jobs stay queued; the next add or an existing thread will take them. */
        mtevL(eventer_impl_error, "jobq %s: cannot start a thread: %s\n", queue->name,
              strerror(error));
        return;
    }
    queue->worker_count++;
    queue->threads++;
}

/* Called with queue->lock held by the exiting worker. */
static void mark_worker_exited(struct _eventer_jobq *queue)
{
    pthread_t self = pthread_self();
    for (uint32_t i = 0; i < queue->worker_count; i++)
        if (pthread_equal(queue->workers[i].thread, self))
            queue->workers[i].exited = 1;
    queue->threads--;
}

/* Posts COMPLETE or CANCELLED for `job` to its loop; without memory, by the job's own node. */
static void post_to_loop(struct eventer_job *job, int kind)
{
    struct eventer_command command = {.kind = kind, .event = job->event};
    if (eventer_impl_queue_command(job->complete_loop, &command) == 0)
        return;
    mtevL(eventer_impl_error,
          "jobq %s: out of memory queueing %s of job %p to %s; passed on without allocating\n",
          job->queue->name, kind == COMMAND_COMPLETE ? "COMPLETE" : "the cancellation",
          (void *)job->event, job->complete_loop->name);
    job->spill.kind = kind;
    job->spill.event = job->event;
    eventer_impl_spill_command(job->complete_loop, &job->spill);
}

static void post_complete(struct eventer_job *job)
{
    post_to_loop(job, COMMAND_COMPLETE);
}

static void job_finished(struct eventer_job *job)
{
    struct eventer_job *parent = job->parent;
    if (parent && __atomic_sub_fetch(&parent->pending, 1, __ATOMIC_ACQ_REL) == 0)
        post_complete(parent);
    if (__atomic_sub_fetch(&job->pending, 1, __ATOMIC_ACQ_REL) == 0)
        post_complete(job);
}

static void run_phase(struct eventer_job *job, int phase)
{
    eventer_t e = job->event;
    struct timeval now;
    gettimeofday(&now, NULL);
    current_phase = phase;
    eventer_impl_run_callback(e, phase, &now);
    current_phase = 0;
}

/* The tail of a job after WORK ended (or was skipped or cancelled). */
static void finish_job(struct eventer_job *job)
{
    run_phase(job, EVENTER_ASYNCH_CLEANUP);
    current_job = NULL;
    eventer_impl_set_this_event(NULL);
    struct _eventer_jobq *queue = job->queue;
    job_finished(job);
    pthread_mutex_lock(&queue->lock);
    queue->inflight--;
    pthread_mutex_unlock(&queue->lock);
}

/*
 * Finishes a job whose WORK was cancelled, on its owner loop (as libmtev runs CLEANUP on its
 * timer thread). The cancelled thread itself does nothing after cancellation: a thread being
 * unwound is a poor place for locks, and the sanitizers lose track of it. Its reaper thread
 * joined it, which orders everything it did before this runs.
 */
void eventer_impl_jobq_finish_cancelled(eventer_t e, int tearing_down)
{
    struct eventer_job *job = e->job;
    struct _eventer_jobq *queue = job->queue;
    if (!job->reaper_joined) {
        pthread_join(job->reaper, NULL);
        job->reaper_joined = 1;
    }
    mtevL(eventer_impl_debug, "jobq %s: job %p cancelled at its deadline\n", queue->name,
          (void *)e);
    pthread_mutex_lock(&queue->lock);
    for (struct eventer_job **link = &queue->cancelling; *link; link = &(*link)->next_cancelling)
        if (*link == job) {
            *link = job->next_cancelling;
            break;
        }
    queue->inflight--;
    queue->threads--;
    if (!tearing_down)
        maybe_spawn_worker(queue); /* replace the thread if work is waiting */
    pthread_mutex_unlock(&queue->lock);
    struct eventer_job *saved_job = current_job;
    eventer_t saved_event = eventer_impl_set_this_event(e);
    current_job = job;
    run_phase(job, EVENTER_ASYNCH_CLEANUP);
    current_job = saved_job;
    eventer_impl_set_this_event(saved_event);
    job_finished(job);
}

static void *reap_cancelled_worker(void *argument)
{
    struct eventer_job *job = argument;
    pthread_join(job->worker, NULL);
    post_to_loop(job, COMMAND_CANCELLED);
    return NULL;
}

static int deadline_passed(eventer_t e)
{
    if (e->whence.tv_sec <= 0 && e->whence.tv_usec <= 0)
        return 0;
    uint64_t deadline = (uint64_t)e->whence.tv_sec * 1000000u + (uint64_t)e->whence.tv_usec;
    return eventer_impl_now_us() > deadline;
}

static void run_job(struct _eventer_jobq *queue, struct eventer_job *job)
{
    eventer_t e = job->event;
    int cancellable = e->mask & (EVENTER_CANCEL | EVENTER_EVIL_BRUTAL);
    int skip_work = 0;
    current_job = job;
    eventer_impl_set_this_event(e);
    if (cancellable) {
        pthread_mutex_lock(&queue->lock);
        if (job->state == JOB_TIMED_OUT || deadline_passed(e)) {
            job->state = JOB_TIMED_OUT;
            skip_work = 1;
        } else {
            job->state = JOB_RUNNING;
            job->worker = pthread_self();
        }
        pthread_mutex_unlock(&queue->lock);
    } else {
        skip_work = deadline_passed(e);
    }
    if (skip_work) {
        mtevL(eventer_impl_debug, "jobq %s: job %p past its deadline, WORK skipped\n", queue->name,
              (void *)e);
    } else if (!cancellable) {
        run_phase(job, EVENTER_ASYNCH_WORK);
    } else {
        int requested = 0;
        int old_state, old_type;
        pthread_setcanceltype((e->mask & (EVENTER_CANCEL_ASYNCH | EVENTER_EVIL_BRUTAL))
                                  ? PTHREAD_CANCEL_ASYNCHRONOUS
                                  : PTHREAD_CANCEL_DEFERRED,
                              &old_type);
        pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old_state);
        run_phase(job, EVENTER_ASYNCH_WORK);
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old_state);
        pthread_setcanceltype(PTHREAD_CANCEL_DEFERRED, &old_type);
        pthread_mutex_lock(&queue->lock);
        job->state = JOB_WORKED;
        requested = job->cancel_requested;
        pthread_mutex_unlock(&queue->lock);
        if (requested) {
            /* The deadline fired as WORK returned: a cancel is pending; act on it now so it
             * cannot hit a later job. */
            pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old_state);
            pthread_testcancel();
            pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old_state);
        }
    }
    finish_job(job);
}

static uint64_t monotonic_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

static void *worker_main(void *argument)
{
    struct _eventer_jobq *queue = argument;
    int old_state;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old_state);
    char name[16];
    pthread_mutex_lock(&queue->lock);
    snprintf(name, sizeof(name), "jq/%s", queue->short_name ? queue->short_name : queue->name);
    pthread_mutex_unlock(&queue->lock);
    pthread_setname_np(pthread_self(), name);

    pthread_mutex_lock(&queue->lock);
    for (;;) {
        struct eventer_job *job = NULL;
        uint64_t idle_since_ns = 0;
        while (!queue->shutting_down && !(job = pop_locked(queue))) {
            uint64_t now_ns = monotonic_ns();
            if (!idle_since_ns)
                idle_since_ns = now_ns;
            uint64_t idle_until_ns = idle_since_ns + (uint64_t)queue->idle_timeout_ms * 1000000u;
            int beyond_floor = queue->threads > effective_floor(queue);
            if (beyond_floor && now_ns >= idle_until_ns) {
                mark_worker_exited(queue);
                pthread_mutex_unlock(&queue->lock);
                return NULL;
            }
            /* At the floor a thread waits for work or for a setter to change the rules. */
            queue->idle_threads++;
            if (beyond_floor) {
                struct timespec until = {(time_t)(idle_until_ns / 1000000000u),
                                         (long)(idle_until_ns % 1000000000u)};
                pthread_cond_timedwait(&queue->work_available, &queue->lock, &until);
            } else {
                pthread_cond_wait(&queue->work_available, &queue->lock);
            }
            queue->idle_threads--;
        }
        if (!job)
            break;
        queue->inflight++;
        pthread_mutex_unlock(&queue->lock);
        run_job(queue, job);
        pthread_mutex_lock(&queue->lock);
    }
    mark_worker_exited(queue);
    pthread_mutex_unlock(&queue->lock);
    return NULL;
}

/* ---- adding jobs ---- */

static int deadline_fired(eventer_t timer, int mask, void *closure, struct timeval *now)
{
    struct eventer_job *job = closure;
    struct _eventer_jobq *queue = job->queue;
    (void)timer;
    (void)mask;
    (void)now;
    /* job->deadline_timer stays set: the job's own reference keeps the timer allocated
     * until COMPLETE (on this same thread) drops it. */
    pthread_mutex_lock(&queue->lock);
    if (job->state == JOB_QUEUED) {
        job->state = JOB_TIMED_OUT;
    } else if (job->state == JOB_RUNNING && !job->cancel_requested) {
        /* The job thread dies at its next cancellation point; the reaper joins it (so it
         * leaves the worker list here) and hands the job back to this loop. */
        int error = pthread_create(&job->reaper, NULL, reap_cancelled_worker, job);
        if (error) {
            mtevL(eventer_impl_error, "jobq %s: cannot cancel job %p (no reaper thread: %s)\n",
                  queue->name, (void *)job->event, strerror(error));
        } else {
            job->cancel_requested = 1;
            for (uint32_t i = 0; i < queue->worker_count; i++)
                if (pthread_equal(queue->workers[i].thread, job->worker)) {
                    queue->workers[i] = queue->workers[--queue->worker_count];
                    break;
                }
            job->next_cancelling = queue->cancelling;
            queue->cancelling = job;
            pthread_cancel(job->worker);
        }
    }
    pthread_mutex_unlock(&queue->lock);
    return 0;
}

static void check_asynch(const char *call, eventer_t e)
{
    if (!e)
        mtevFatal(mtev_error, "%s: NULL event\n", call);
    if ((e->mask & EVENTER_ASYNCH) != EVENTER_ASYNCH)
        mtevFatal(mtev_error,
                  "%s: event %p has mask 0x%x, not EVENTER_ASYNCH (use eventer_alloc_asynch)\n",
                  call, (void *)e, e->mask);
    if (!eventer_impl_running())
        mtevFatal(mtev_error, "%s: the eventer is not running (call eventer_init() first)\n", call);
}

/*
 * The one path for every add variant. `try` refuses when the backlog is full; `dependent`
 * ties the job to the current one. Returns false only for a refused try.
 */
static mtev_boolean add_job(const char *call, eventer_jobq_t *queue, eventer_t e, uint64_t id,
                            int has_id, int dependent, int try)
{
    check_asynch(call, e);
    if (!queue)
        queue = default_queue;
    if (queue->backq_loop)
        mtevFatal(mtev_error, "%s: a back queue runs no jobs; use a job queue\n", call);
    struct eventer_job *parent = NULL;
    if (dependent) {
        if (!current_job || current_phase != EVENTER_ASYNCH_WORK)
            mtevFatal(mtev_error, "%s: must be called from inside a job's WORK phase\n", call);
        parent = current_job;
    }
    if (!has_id)
        id = current_job ? current_job->subqueue : 0;
    if (e->job)
        mtevFatal(mtev_error, "%s: event %p is already a queued job\n", call, (void *)e);

    struct eventer_job *job =
        eventer_impl_fault(EVENTER_FAULT_JOB_RECORD) ? NULL : calloc(1, sizeof(*job));
    if (!job) {
        if (try) {
            mtevL(eventer_impl_error, "%s: out of memory for a job; refused\n", call);
            return mtev_false;
        }
        /* No record, so no phase can run: the event is dropped, as the caller handed it. */
        mtevL(eventer_impl_error, "%s: out of memory for a job; event %p dropped unrun\n", call,
              (void *)e);
        eventer_deref(e);
        return mtev_true;
    }
    job->event = e;
    job->queue = queue;
    job->subqueue = id;
    job->pending = 1;
    job->state = JOB_QUEUED;
    job->complete_loop = eventer_impl_loop_of_event(e);
    if (!e->owner_loop) {
        e->owner_loop = job->complete_loop;
        e->thr_owner = job->complete_loop->thread;
    }

    pthread_mutex_lock(&queue->lock);
    int refuse = queue->shutting_down || eventer_impl_stopping() ||
                 (try && queue->max_backlog && queue->backlog >= queue->max_backlog);
    pthread_mutex_unlock(&queue->lock);
    if (refuse && try) {
        free(job);
        return mtev_false;
    }
    e->job = job;
    if (parent) {
        job->parent = parent;
        __atomic_add_fetch(&parent->pending, 1, __ATOMIC_ACQ_REL);
    }
    if ((e->mask & (EVENTER_CANCEL | EVENTER_EVIL_BRUTAL)) &&
        (e->whence.tv_sec > 0 || e->whence.tv_usec > 0)) {
        eventer_t timer = eventer_alloc_timer(deadline_fired, job, &e->whence);
        if (timer) {
            eventer_set_owner(timer, job->complete_loop->thread);
            job->deadline_timer = timer;
            eventer_ref(timer); /* the job's handle, dropped at COMPLETE */
            eventer_add(timer);
        }
    }

    pthread_mutex_lock(&queue->lock);
    if (queue->shutting_down) {
        pthread_mutex_unlock(&queue->lock);
        /* Shutting down: the job completes without running. */
        mtevL(eventer_impl_error, "%s: queue %s cannot take the job; it completes unrun\n", call,
              queue->name);
        job_finished(job);
        return mtev_true;
    }
    int without_subqueue = push_locked(queue, job);
    maybe_spawn_worker(queue);
    int wake = queue->idle_threads > 0;
    pthread_mutex_unlock(&queue->lock);
    if (without_subqueue)
        mtevL(eventer_impl_error,
              "%s: out of memory for subqueue %llu of queue %s; job %p queued in subqueue 0\n",
              call, (unsigned long long)id, queue->name, (void *)e);
    /* Signalled after unlocking: a woken worker that runs at once (same core) would
     * otherwise block on the lock still held here, and cost two more context switches. It
     * cannot miss the job: it looks for work under the lock before it waits. */
    if (wake)
        pthread_cond_signal(&queue->work_available);
    return mtev_true;
}

void eventer_add_asynch(eventer_jobq_t *queue, eventer_t e)
{
    add_job("eventer_add_asynch", queue, e, 0, 0, 0, 0);
}

void eventer_add_asynch_subqueue(eventer_jobq_t *queue, eventer_t e, uint64_t id)
{
    add_job("eventer_add_asynch_subqueue", queue, e, id, 1, 0, 0);
}

void eventer_add_asynch_dep(eventer_jobq_t *queue, eventer_t e)
{
    add_job("eventer_add_asynch_dep", queue, e, 0, 0, 1, 0);
}

void eventer_add_asynch_dep_subqueue(eventer_jobq_t *queue, eventer_t e, uint64_t id)
{
    add_job("eventer_add_asynch_dep_subqueue", queue, e, id, 1, 1, 0);
}

mtev_boolean eventer_try_add_asynch(eventer_jobq_t *queue, eventer_t e)
{
    return add_job("eventer_try_add_asynch", queue, e, 0, 0, 0, 1);
}

mtev_boolean eventer_try_add_asynch_subqueue(eventer_jobq_t *queue, eventer_t e, uint64_t id)
{
    return add_job("eventer_try_add_asynch_subqueue", queue, e, id, 1, 0, 1);
}

mtev_boolean eventer_try_add_asynch_dep(eventer_jobq_t *queue, eventer_t e)
{
    return add_job("eventer_try_add_asynch_dep", queue, e, 0, 0, 1, 1);
}

mtev_boolean eventer_try_add_asynch_dep_subqueue(eventer_jobq_t *queue, eventer_t e, uint64_t id)
{
    return add_job("eventer_try_add_asynch_dep_subqueue", queue, e, id, 1, 1, 1);
}

/* ---- completion (owner loop) and teardown ---- */

static void detach_job(eventer_t e)
{
    struct eventer_job *job = e->job;
    if (job->deadline_timer) {
        eventer_t timer = eventer_remove_timed(job->deadline_timer);
        if (timer)
            eventer_deref(timer);           /* the eventer's reference, handed back */
        eventer_deref(job->deadline_timer); /* the job's handle */
        job->deadline_timer = NULL;
    }
    e->job = NULL;
    free(job);
}

void eventer_impl_jobq_complete(eventer_t e)
{
    struct eventer_loop *loop = eventer_impl_current_loop();
    if (!loop || loop != e->job->complete_loop)
        mtevFatal(mtev_error, "eventer COMPLETE phase of %p on the wrong thread\n", (void *)e);
    detach_job(e);
    int again = eventer_impl_run_callback(e, e->mask, &loop->now);
    if (again) {
        e->mask = again;
        eventer_add(e);
    } else {
        eventer_deref(e);
    }
}

void eventer_impl_jobq_discard(eventer_t e)
{
    struct eventer_job *job = e->job;
    if (job && job->deadline_timer) {
        /* The loops are stopped: the timer is released with its loop's heap. */
        eventer_deref(job->deadline_timer);
        job->deadline_timer = NULL;
    }
    eventer_deref(e);
}

/* ---- settings, start, stop ---- */

static int configure_queue_from_spec(const char *name, const char *spec)
{
    /* concurrency[,min[,max[,memory_safety[,backlog[,lifo|fifo]]]]] */
    char copy[256];
    snprintf(copy, sizeof(copy), "%s", spec ? spec : "");
    char *fields[6] = {0};
    int count = 0;
    char *save = NULL;
    for (char *token = strtok_r(copy, ",", &save); token && count < 6;
         token = strtok_r(NULL, ",", &save))
        fields[count++] = token;
    if (count == 0) {
        mtevL(eventer_impl_error, "eventer_propset: jobq_%s needs a concurrency\n", name);
        return -1;
    }
    long numbers[3] = {0, 0, 0};
    for (int i = 0; i < 3 && i < count; i++) {
        char *end = NULL;
        numbers[i] = strtol(fields[i], &end, 10);
        if (end == fields[i] || *end != '\0' || numbers[i] < 0) {
            mtevL(eventer_impl_error, "eventer_propset: jobq_%s: \"%s\" is not a count\n", name,
                  fields[i]);
            return -1;
        }
    }
    eventer_jobq_memory_safety_t safety = EVENTER_JOBQ_MS_GC;
    if (count > 3) {
        if (!strcmp(fields[3], "none"))
            safety = EVENTER_JOBQ_MS_NONE;
        else if (!strcmp(fields[3], "cs"))
            safety = EVENTER_JOBQ_MS_CS;
        else if (strcmp(fields[3], "gc") != 0) {
            mtevL(eventer_impl_error, "eventer_propset: jobq_%s: memory safety \"%s\"?\n", name,
                  fields[3]);
            return -1;
        }
    }
    long backlog = 0;
    if (count > 4) {
        char *end = NULL;
        backlog = strtol(fields[4], &end, 10);
        if (end == fields[4] || *end != '\0' || backlog < 0) {
            mtevL(eventer_impl_error, "eventer_propset: jobq_%s: backlog \"%s\"?\n", name,
                  fields[4]);
            return -1;
        }
    }
    int lifo = -1;
    if (count > 5) {
        if (!strcmp(fields[5], "lifo"))
            lifo = 1;
        else if (!strcmp(fields[5], "fifo"))
            lifo = 0;
        else {
            mtevL(eventer_impl_error, "eventer_propset: jobq_%s: order \"%s\"?\n", name, fields[5]);
            return -1;
        }
    }
    eventer_jobq_t *queue = eventer_jobq_create_ms(name, safety);
    if (!queue)
        return -1;
    if (count > 1)
        eventer_jobq_set_min_max(queue, (uint32_t)numbers[1], (uint32_t)numbers[2]);
    eventer_jobq_set_concurrency(queue, (uint32_t)numbers[0]);
    if (count > 4)
        eventer_jobq_set_max_backlog(queue, (uint32_t)backlog);
    if (lifo >= 0)
        eventer_jobq_set_lifo(queue, lifo ? mtev_true : mtev_false);
    return 0;
}

int eventer_impl_jobq_propset(const char *key, const char *value)
{
    if (!strcmp(key, "default_queue_threads")) {
        char *end = NULL;
        long threads = value ? strtol(value, &end, 10) : 0;
        if (!value || end == value || *end != '\0' || threads < 1) {
            mtevL(eventer_impl_error, "eventer_propset: default_queue_threads=\"%s\"?\n",
                  value ? value : "(null)");
            return -1;
        }
        default_queue_threads = (uint32_t)threads;
        if (default_queue)
            eventer_jobq_set_concurrency(default_queue, default_queue_threads);
        return 0;
    }
    if (!strcmp(key, "default_jobq_ordering")) {
        if (value && !strcmp(value, "lifo"))
            default_lifo = 1;
        else if (value && !strcmp(value, "fifo"))
            default_lifo = 0;
        else {
            mtevL(eventer_impl_error, "eventer_propset: default_jobq_ordering=\"%s\"?\n",
                  value ? value : "(null)");
            return -1;
        }
        if (default_queue)
            eventer_jobq_set_lifo(default_queue, default_lifo ? mtev_true : mtev_false);
        return 0;
    }
    return configure_queue_from_spec(key + strlen("jobq_"), value);
}

int eventer_impl_jobq_init(void)
{
    default_queue = eventer_jobq_create("default_queue");
    if (!default_queue)
        return -1;
    eventer_jobq_set_concurrency(default_queue, default_queue_threads);
    eventer_jobq_set_lifo(default_queue, default_lifo ? mtev_true : mtev_false);
    return 0;
}

static struct _eventer_jobq *stopped_queues;

void eventer_impl_jobq_stop(void)
{
    pthread_mutex_lock(&registry_lock);
    struct _eventer_jobq *queues = all_queues;
    all_queues = NULL;
    default_queue = NULL;
    pthread_mutex_unlock(&registry_lock);
    stopped_queues = queues;
    for (struct _eventer_jobq *q = queues; q; q = q->next_queue) {
        pthread_mutex_lock(&q->lock);
        q->shutting_down = 1;
        pthread_cond_broadcast(&q->work_available);
        pthread_mutex_unlock(&q->lock);
    }
    for (struct _eventer_jobq *q = queues; q; q = q->next_queue) {
        /* Workers finish their current job; join them outside the lock. */
        for (;;) {
            pthread_mutex_lock(&q->lock);
            if (q->worker_count == 0) {
                pthread_mutex_unlock(&q->lock);
                break;
            }
            pthread_t thread = q->workers[--q->worker_count].thread;
            pthread_mutex_unlock(&q->lock);
            pthread_join(thread, NULL);
        }
        /* Cancelled threads: their reapers post the jobs, finished by the teardown drain. */
        pthread_mutex_lock(&q->lock);
        for (struct eventer_job *job = q->cancelling; job; job = job->next_cancelling) {
            if (!job->reaper_joined) {
                pthread_join(job->reaper, NULL);
                job->reaper_joined = 1;
            }
        }
        pthread_mutex_unlock(&q->lock);
    }
    for (struct _eventer_jobq *q = queues; q; q = q->next_queue) {
        /* Jobs that never started complete unrun (their completions are discarded). */
        struct eventer_job *job;
        pthread_mutex_lock(&q->lock);
        while ((job = pop_locked(q)) != NULL) {
            pthread_mutex_unlock(&q->lock);
            job_finished(job);
            pthread_mutex_lock(&q->lock);
        }
        pthread_mutex_unlock(&q->lock);
    }
}

void eventer_impl_jobq_free(void)
{
    struct _eventer_jobq *queues = stopped_queues;
    stopped_queues = NULL;
    while (queues) {
        struct _eventer_jobq *next = queues->next_queue;
        queue_free(queues);
        queues = next;
    }
}
