/*
 * Host transactions ("stages"), the bodies flowing between them, and chains.
 *
 * A chain holds stages 0..created-1; stage i+1 is made when stage i decided. Stage i reads
 * its virgin body from `in`: the chain's buffer (the program's virgin body) for stage 0, the
 * `out` body (adapted body) of the previous stage that produced one otherwise. A stage that
 * uses the virgin message passes its `in` on unchanged, so bytes flow from the program's
 * buffer, through ab_content() calls that the adapters answer with borrowed areas, to the
 * program again without copies.
 *
 * Every host -> adapter and host -> program notification goes through a notice (see
 * adapt_internal.h); the only synchronous calls into adapters are pulls: ab_content() and
 * ab_content_shift(), made when the consumer of a stage's adapted body reads it.
 *
 * A stage is stopped (its adapter gets stop()) when its decision is made and both body sides
 * are closed: the virgin side by vb_stop_making/vb_discard/use_virgin/a decision without
 * body, or by itself once note_vb_content_done() was delivered and every byte consumed; the
 * adapted side when its consumer read it to the end or stopped wanting it.
 */
#include "adapt/adapt_internal.h"

#include "eventer/eventer_internal.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct chain_option {
    char *name;
    char *value;
};

/* One meta-information pair copied from an adapter transaction. */
struct chain_meta {
    char *name;
    ecap_area_t value; /* owning copy */
};

enum decision {
    DECISION_OPEN,
    DECISION_VIRGIN,
    DECISION_ADAPTED,
    DECISION_BLOCKED,
    DECISION_ABORTED
};
enum vb_state { VB_UNDECIDED, VB_ON, VB_CLOSED, VB_NEVER };
enum ab_state { AB_NONE, AB_ON, AB_DONE, AB_CLOSED };

#define container_of(pointer, type, member) ((type *)((char *)(pointer)-offsetof(type, member)))

struct adapt_stage {
    struct ecap_host_xaction handle;
    int strong;               /* atomic */
    int weak;                 /* atomic; the strong references together hold one */
    int stopped;              /* atomic */
    struct ecap_chain *chain; /* NULL once stopped */
    size_t index;
    ecap_service_t *service;
    const struct ecap_xaction_methods *x;
    void *xdata;
    struct adapt_loop *loop;
    pthread_t owner;
    int made, stop_queued, stop_called;
    int decision, vb, ab;
    int vb_consumed, vb_done_delivered, ab_make_delivered;
    int vb_ended_closed;     /* the virgin side closed by itself at the end of the body */
    ecap_message_t *virgin;  /* borrowed from the chain or the previous stage */
    ecap_message_t *adapted; /* owned */
    ecap_message_t *out_message;
    struct adapt_body *in; /* NULL when the virgin message has no body */
    struct adapt_body *out_body;
    struct adapt_body out; /* this stage's adapted body */
    char reason[160];
    struct chain_meta *meta; /* the adapter's meta-information, copied at stop */
    size_t meta_count;
    struct adapt_notice n_start, n_vb_available, n_vb_done, n_ab_make, n_ab_make_more, n_ab_stop,
        n_resume, n_stop;
};


struct ecap_chain {
    size_t count;
    ecap_service_t **services;
    struct adapt_stage **stages;
    size_t created;
    ecap_message_t *virgin;
    const ecap_message_t *cause;
    struct ecap_chain_callbacks callbacks;
    void *closure;
    struct adapt_loop *loop;
    pthread_t owner;
    struct adapt_body vb;
    size_t vb_capacity;
    struct adapt_body *final_body;
    ecap_message_t *final_message;
    enum ecap_outcome outcome;
    int started, cancelled, done, any_adapted;
    int refs; /* the program's plus one per queued chain notice */
    struct chain_option *options;
    size_t option_count;
    char reason[160];
    struct adapt_notice n_next_stage, n_decision, n_body, n_vb_room, n_done;
};

static const struct ecap_host_xaction_methods stage_methods;
static const struct ecap_weak_methods weak_methods;

static void stage_check_done(struct adapt_stage *s);
static void chain_check_done(struct ecap_chain *chain);
static void body_available(struct adapt_body *body);
static void body_consumer_gone(struct adapt_body *body);
static int body_probe_drained(struct adapt_body *body);

/* ---- references ---- */

static void stage_free_memory(struct adapt_stage *s)
{
    if (__atomic_sub_fetch(&s->weak, 1, __ATOMIC_ACQ_REL) == 0)
        free(s);
}

static void stage_ref(struct adapt_stage *s)
{
    __atomic_add_fetch(&s->strong, 1, __ATOMIC_RELAXED);
}

static void stage_unref(struct adapt_stage *s)
{
    if (__atomic_sub_fetch(&s->strong, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    ecap_area_release(&s->out.held);
    ecap_message_free(s->adapted);
    s->adapted = NULL;
    for (size_t i = 0; i < s->meta_count; i++) {
        free(s->meta[i].name);
        ecap_area_release(&s->meta[i].value);
    }
    free(s->meta);
    stage_free_memory(s);
}

static struct adapt_stage *from_handle(ecap_host_xaction_t *handle)
{
    return (struct adapt_stage *)handle;
}

static int is_stopped(const struct adapt_stage *s)
{
    return __atomic_load_n(&s->stopped, __ATOMIC_ACQUIRE);
}

/* ---- notices ---- */

static void stage_notice(struct adapt_stage *s, struct adapt_notice *notice)
{
    if (notice->queued || is_stopped(s))
        return;
    stage_ref(s);
    adapt_notice_queue(s->loop, notice);
}

static void chain_unref(struct ecap_chain *chain);

static void chain_notice(struct ecap_chain *chain, struct adapt_notice *notice)
{
    if (notice->queued)
        return;
    chain->refs++;
    adapt_notice_queue(chain->loop, notice);
}

/* ---- misuse ---- */

static int misuse(struct adapt_stage *s, int status, const char *call)
{
    adapt_count(&s->service->misuses);
    return adapt_fail(status, "service %s: transaction %p: %s refused", s->service->uri, (void *)s,
                      call);
}

/* Every host-transaction call but the thread-safe ones starts here. */
static int check_call(struct adapt_stage *s, const char *call)
{
    if (!s)
        return adapt_fail(ECAP_E_INVALID, "%s: NULL transaction", call);
    if (!pthread_equal(pthread_self(), s->owner))
        return misuse(s, ECAP_E_WRONG_THREAD, call);
    if (is_stopped(s))
        return misuse(s, ECAP_E_STOPPED, call);
    if (adapt_in_service_resume())
        return misuse(s, ECAP_E_IN_SERVICE_RESUME, call);
    return ECAP_OK;
}

/* ---- bodies ---- */

static void body_init(struct adapt_body *body, int kind, struct ecap_chain *chain)
{
    memset(body, 0, sizeof(*body));
    body->kind = kind;
    body->chain = chain;
}

int adapt_body_content(struct adapt_body *body, size_t offset, size_t size, ecap_area_t *content)
{
    ecap_area_release(&body->held);
    *content = ecap_area_borrow(NULL, 0);
    if (body->kind == BODY_BUFFER) {
        size_t available = body->end - body->start;
        if (offset < available) {
            size_t n = available - offset;
            if (size < n)
                n = size;
            *content = ecap_area_borrow(body->buffer + body->start + offset, n);
        }
    } else {
        struct adapt_stage *p = body->producer;
        if (is_stopped(p) || !p->ab_make_delivered)
            return ECAP_OK;
        ecap_area_t area = ecap_area_borrow(NULL, 0);
        int status = p->x->ab_content(p->xdata, offset, size, &area);
        if (status != ECAP_OK) {
            ecap_area_release(&area);
            return status;
        }
        if (area.release)
            body->held = area;
        *content = ecap_area_borrow(area.data, area.size);
    }
    return ECAP_OK;
}

static void body_drained(struct adapt_body *body)
{
    if (body->kind == BODY_STAGE) {
        struct adapt_stage *p = body->producer;
        if (p->ab == AB_ON || p->ab == AB_DONE)
            p->ab = AB_CLOSED;
        stage_check_done(p);
    }
    if (body->consumer == CONSUMER_STAGE) {
        struct adapt_stage *r = body->reader;
        if (r->vb == VB_ON && r->vb_done_delivered) {
            r->vb = VB_CLOSED;
            r->vb_ended_closed = 1;
            body->consumer = CONSUMER_NONE;
            body->reader = NULL;
            stage_check_done(r);
        }
    } else if (body->consumer == CONSUMER_PROGRAM) {
        chain_check_done(body->chain);
    }
}

/* True once the producer ended and the consumer consumed everything. */
static int body_probe_drained(struct adapt_body *body)
{
    if (body->drained)
        return 1;
    if (!body->ended)
        return 0;
    if (body->kind == BODY_BUFFER) {
        if (body->start != body->end)
            return 0;
    } else if (!is_stopped(body->producer)) {
        ecap_area_t area;
        if (adapt_body_content(body, 0, ECAP_NSIZE, &area) != ECAP_OK || area.size)
            return 0;
        ecap_area_release(&body->held);
    }
    body->drained = 1;
    body_drained(body);
    return 1;
}

int adapt_body_finished(struct adapt_body *body)
{
    return body_probe_drained(body);
}

void adapt_body_shift(struct adapt_body *body, size_t size)
{
    ecap_area_release(&body->held);
    if (body->kind == BODY_BUFFER) {
        size_t available = body->end - body->start;
        if (size > available)
            size = available;
        body->start += size;
        if (body->start == body->end)
            body->start = body->end = 0;
        if (size && body->room_wanted && !body->ended) {
            body->room_wanted = 0;
            chain_notice(body->chain, &body->chain->n_vb_room);
        }
    } else {
        struct adapt_stage *p = body->producer;
        if (!is_stopped(p) && p->ab_make_delivered && size)
            p->x->ab_content_shift(p->xdata, size);
    }
    body_probe_drained(body);
}

/* The producer has new content or ended: tell whoever reads the body. */
static void body_available(struct adapt_body *body)
{
    body->noted = 1;
    switch (body->consumer) {
    case CONSUMER_STAGE: {
        struct adapt_stage *r = body->reader;
        if (r->vb != VB_ON)
            break;
        stage_notice(r, &r->n_vb_available);
        if (body->ended && !r->vb_done_delivered)
            stage_notice(r, &r->n_vb_done);
        break;
    }
    case CONSUMER_PROGRAM:
        chain_notice(body->chain, &body->chain->n_body);
        if (body->ended)
            body_probe_drained(body);
        break;
    default:
        break;
    }
}

/* Nobody will read the rest of `body`: stop its producer. */
static void body_consumer_gone(struct adapt_body *body)
{
    body->consumer = CONSUMER_GONE;
    body->reader = NULL;
    if (body->kind == BODY_BUFFER) {
        body->start = body->end = 0;
        if (body->room_wanted && !body->ended) {
            body->room_wanted = 0;
            chain_notice(body->chain, &body->chain->n_vb_room);
        }
        return;
    }
    struct adapt_stage *p = body->producer;
    if (p->ab == AB_ON || p->ab == AB_DONE) {
        p->ab = AB_CLOSED;
        stage_notice(p, &p->n_ab_stop);
    }
    stage_check_done(p);
}

/* A stage starts reading `body` (or stops, with reader NULL). */
static void body_attach(struct adapt_body *body, int consumer, struct adapt_stage *reader)
{
    body->consumer = consumer;
    body->reader = reader;
}

/* The stage's virgin side closed: whoever produces `in` needs to know nobody reads it. */
static void stage_detach_in(struct adapt_stage *s)
{
    if (s->in && s->in->consumer == CONSUMER_STAGE && s->in->reader == s)
        body_consumer_gone(s->in);
}

/* ---- stage completion ---- */

static void stage_check_done(struct adapt_stage *s)
{
    if (s->stop_queued || is_stopped(s) || s->decision == DECISION_OPEN)
        return;
    int ab_open = s->ab == AB_ON || s->ab == AB_DONE;
    int vb_open = s->vb == VB_ON || (s->vb == VB_UNDECIDED && ab_open);
    if (vb_open || ab_open)
        return;
    if (s->vb == VB_UNDECIDED) {
        s->vb = VB_NEVER;
        if (s->decision != DECISION_VIRGIN)
            stage_detach_in(s);
    }
    s->stop_queued = 1;
    stage_notice(s, &s->n_stop);
}

static int keep_meta(void *closure, ecap_area_t name, ecap_area_t value)
{
    struct adapt_stage *s = closure;
    struct chain_meta *grown = realloc(s->meta, (s->meta_count + 1) * sizeof(*grown));
    if (!grown)
        return 1;
    s->meta = grown;
    struct chain_meta meta = {malloc(name.size + 1), ecap_area_copy(value.data, value.size)};
    if (!meta.name || (value.size && !meta.value.data)) {
        free(meta.name);
        ecap_area_release(&meta.value);
        return 1;
    }
    memcpy(meta.name, name.data, name.size);
    meta.name[name.size] = '\0';
    s->meta[s->meta_count++] = meta;
    return 0;
}

static void stage_do_stop(struct adapt_stage *s)
{
    if (s->stop_called)
        return;
    s->stop_called = 1;
    __atomic_store_n(&s->stopped, 1, __ATOMIC_RELEASE);
    __atomic_sub_fetch(&s->service->live[s->loop->index % ADAPT_MAX_LOOPS], 1, __ATOMIC_RELEASE);
    __atomic_sub_fetch(&s->service->live_total, 1, __ATOMIC_RELAXED);
    if (s->decision != DECISION_VIRGIN)
        stage_detach_in(s);
    else if (s->in && s->in->reader == s)
        body_attach(s->in, CONSUMER_NONE, NULL);
    if (s->out_body == &s->out && !s->out.ended) {
        s->out.ended = 1;
        s->out.at_end = 0;
        body_available(&s->out);
    }
    /* The adapter may free its state in stop(): keep what it reported for the program. */
    if (s->made && s->x->visit_options)
        s->x->visit_options(s->xdata, keep_meta, s);
    if (s->made)
        s->x->stop(s->xdata);
    struct ecap_chain *chain = s->chain;
    s->chain = NULL;
    if (chain) {
        if (s->out_body == &s->out)
            body_probe_drained(&s->out);
        chain_check_done(chain);
    }
}

/* ---- notice bodies ---- */

#define STAGE_OF(notice, member) container_of(notice, struct adapt_stage, member)

/* Once the host decided to stop a stage, only the stop itself is still delivered. */
static int stage_live(const struct adapt_stage *s)
{
    return !is_stopped(s) && !s->stop_queued;
}

static void run_start(struct adapt_notice *notice)
{
    struct adapt_stage *s = STAGE_OF(notice, n_start);
    if (stage_live(s))
        s->x->start(s->xdata);
    stage_unref(s);
}

static void run_vb_available(struct adapt_notice *notice)
{
    struct adapt_stage *s = STAGE_OF(notice, n_vb_available);
    if (stage_live(s) && s->vb == VB_ON && s->x->note_vb_content_available)
        s->x->note_vb_content_available(s->xdata);
    stage_unref(s);
}

static void run_vb_done(struct adapt_notice *notice)
{
    struct adapt_stage *s = STAGE_OF(notice, n_vb_done);
    if (stage_live(s) && s->vb == VB_ON && !s->vb_done_delivered) {
        s->vb_done_delivered = 1;
        if (s->x->note_vb_content_done)
            s->x->note_vb_content_done(s->xdata, s->in->at_end);
        /* The reader may have consumed the last byte before this notice came: the body was
         * then marked drained while the side could not close yet. Close it now. */
        if (stage_live(s) && s->vb == VB_ON) {
            if (s->in->drained)
                body_drained(s->in);
            else
                body_probe_drained(s->in);
        }
    }
    stage_unref(s);
}

static void run_ab_make(struct adapt_notice *notice)
{
    struct adapt_stage *s = STAGE_OF(notice, n_ab_make);
    if (stage_live(s) && !s->ab_make_delivered) {
        s->ab_make_delivered = 1;
        if (s->ab == AB_ON || s->ab == AB_DONE)
            s->x->ab_make(s->xdata);
    }
    stage_unref(s);
}

static void run_ab_make_more(struct adapt_notice *notice)
{
    struct adapt_stage *s = STAGE_OF(notice, n_ab_make_more);
    if (stage_live(s) && s->ab_make_delivered && s->ab == AB_ON && s->x->ab_make_more)
        s->x->ab_make_more(s->xdata);
    stage_unref(s);
}

static void run_ab_stop(struct adapt_notice *notice)
{
    struct adapt_stage *s = STAGE_OF(notice, n_ab_stop);
    if (stage_live(s) && s->ab_make_delivered && s->x->ab_stop_making)
        s->x->ab_stop_making(s->xdata);
    stage_unref(s);
}

static void run_resume(struct adapt_notice *notice)
{
    struct adapt_stage *s = STAGE_OF(notice, n_resume);
    if (!stage_live(s)) {
        adapt_count(&s->service->skipped_resumes);
    } else {
        adapt_count(&s->service->xaction_resumes);
        s->x->resume(s->xdata);
    }
    stage_unref(s);
}

static void run_stop(struct adapt_notice *notice)
{
    struct adapt_stage *s = STAGE_OF(notice, n_stop);
    stage_do_stop(s);
    stage_unref(s);
}

/* ---- making stages ---- */

static struct adapt_stage *stage_make(struct ecap_chain *chain, size_t index,
                                      ecap_message_t *virgin, struct adapt_body *in)
{
    struct adapt_stage *s = calloc(1, sizeof(*s));
    if (!s) {
        adapt_fail(ECAP_E_NOMEM, "chain: out of memory for a transaction");
        return NULL;
    }
    s->handle.methods = &stage_methods;
    s->strong = 1; /* the chain's */
    s->weak = 1;
    s->chain = chain;
    s->index = index;
    s->service = chain->services[index];
    s->loop = chain->loop;
    s->owner = chain->owner;
    s->virgin = virgin;
    s->in = in;
    body_init(&s->out, BODY_STAGE, chain);
    s->out.producer = s;
    s->n_start.run = run_start;
    s->n_vb_available.run = run_vb_available;
    s->n_vb_done.run = run_vb_done;
    s->n_ab_make.run = run_ab_make;
    s->n_ab_make_more.run = run_ab_make_more;
    s->n_ab_stop.run = run_ab_stop;
    s->n_resume.run = run_resume;
    s->n_stop.run = run_stop;
    if (in)
        body_attach(in, CONSUMER_STAGE, s);
    adapt_count(&s->service->xactions);
    adapt_count(&s->service->live_total);
    __atomic_add_fetch(&s->service->live[s->loop->index % ADAPT_MAX_LOOPS], 1, __ATOMIC_RELEASE);
    chain->stages[index] = s;
    chain->created = index + 1;
    int status = s->service->methods->make_xaction(s->service->data, &s->handle, &s->x, &s->xdata);
    if (status == ECAP_OK && (!s->x || s->x->version < 1 || !s->x->start || !s->x->stop))
        status = adapt_fail(ECAP_E_VERSION,
                            "service %s: make_xaction returned a table without start/stop",
                            s->service->uri);
    if (status != ECAP_OK) {
        adapt_fail(status, "service %s: make_xaction failed", s->service->uri);
        s->decision = DECISION_ABORTED;
        snprintf(s->reason, sizeof(s->reason), "make_xaction failed: %s", ecap_strerror(status));
        s->stop_queued = 1;
        stage_do_stop(s);
        return s;
    }
    s->made = 1;
    stage_notice(s, &s->n_start);
    return s;
}

/* Called once the last created stage decided: make the next one or finish the decision. */
static void run_next_stage(struct adapt_notice *notice)
{
    struct ecap_chain *chain = container_of(notice, struct ecap_chain, n_next_stage);
    struct adapt_stage *s = chain->created ? chain->stages[chain->created - 1] : NULL;
    if (!chain->cancelled && s && s->decision != DECISION_OPEN &&
        chain->outcome == ECAP_OUTCOME_PENDING) {
        if (s->decision == DECISION_BLOCKED || s->decision == DECISION_ABORTED) {
            chain->outcome =
                s->decision == DECISION_BLOCKED ? ECAP_OUTCOME_BLOCKED : ECAP_OUTCOME_ABORTED;
            snprintf(chain->reason, sizeof(chain->reason), "%s", s->reason);
            /* Earlier stages' bodies are no longer wanted. */
            for (size_t i = 0; i < chain->created; i++)
                if (!is_stopped(chain->stages[i]))
                    stage_check_done(chain->stages[i]);
            chain_notice(chain, &chain->n_decision);
        } else if (chain->created < chain->count) {
            stage_make(chain, chain->created, s->out_message, s->out_body);
            if (chain->stages[chain->created - 1]->decision == DECISION_ABORTED)
                chain_notice(chain, &chain->n_next_stage);
        } else {
            chain->outcome = chain->any_adapted ? ECAP_OUTCOME_ADAPTED : ECAP_OUTCOME_VIRGIN;
            chain->final_message = s->out_message;
            chain->final_body = s->out_body;
            chain_notice(chain, &chain->n_decision);
            if (chain->final_body) {
                body_attach(chain->final_body, CONSUMER_PROGRAM, NULL);
                if (chain->final_body->noted || chain->final_body->ended ||
                    (chain->final_body->kind == BODY_BUFFER &&
                     chain->final_body->end > chain->final_body->start))
                    body_available(chain->final_body);
            }
        }
    }
    chain_check_done(chain);
    chain_unref(chain);
}

static void stage_decided(struct adapt_stage *s)
{
    if (s->decision == DECISION_ADAPTED)
        s->chain->any_adapted = 1;
    chain_notice(s->chain, &s->chain->n_next_stage);
}

/* ---- the host transaction methods ---- */

static ecap_message_t *stage_virgin(ecap_host_xaction_t *handle)
{
    struct adapt_stage *s = from_handle(handle);
    return check_call(s, "virgin") == ECAP_OK ? s->virgin : NULL;
}

static ecap_message_t *stage_cause(ecap_host_xaction_t *handle)
{
    struct adapt_stage *s = from_handle(handle);
    return check_call(s, "cause") == ECAP_OK ? (ecap_message_t *)s->chain->cause : NULL;
}

static ecap_message_t *stage_adapted(ecap_host_xaction_t *handle)
{
    struct adapt_stage *s = from_handle(handle);
    return check_call(s, "adapted") == ECAP_OK ? s->adapted : NULL;
}

static int decision_open(struct adapt_stage *s, const char *call)
{
    int status = check_call(s, call);
    if (status == ECAP_OK && s->decision != DECISION_OPEN)
        status = misuse(s, ECAP_E_DECIDED, call);
    return status;
}

static int stage_use_virgin(ecap_host_xaction_t *handle)
{
    struct adapt_stage *s = from_handle(handle);
    int status = decision_open(s, "use_virgin");
    if (status != ECAP_OK)
        return status;
    if (s->vb_consumed)
        return misuse(s, ECAP_E_VB_STATE, "use_virgin after consuming virgin body");
    s->decision = DECISION_VIRGIN;
    s->vb = s->vb == VB_ON ? VB_CLOSED : VB_NEVER;
    if (s->in && s->in->reader == s)
        body_attach(s->in, CONSUMER_NONE, NULL);
    s->out_message = s->virgin;
    s->out_body = s->in;
    stage_decided(s);
    stage_check_done(s);
    return ECAP_OK;
}

static int stage_use_adapted(ecap_host_xaction_t *handle, ecap_message_t *adapted)
{
    struct adapt_stage *s = from_handle(handle);
    int status = decision_open(s, "use_adapted");
    if (status != ECAP_OK)
        return status;
    if (!adapted)
        return misuse(s, ECAP_E_INVALID, "use_adapted with NULL message");
    int has_body = ecap_message_has_body(adapted);
    if (has_body && (!s->x->ab_make || !s->x->ab_content || !s->x->ab_content_shift))
        return misuse(s, ECAP_E_UNSUPPORTED,
                      "use_adapted with a body by a transaction without ab_make/ab_content");
    s->decision = DECISION_ADAPTED;
    s->adapted = adapted;
    s->out_message = adapted;
    if (has_body) {
        s->ab = AB_ON;
        s->out_body = &s->out;
        stage_notice(s, &s->n_ab_make);
    }
    stage_decided(s);
    stage_check_done(s);
    return ECAP_OK;
}

static void stage_end_without_message(struct adapt_stage *s, int decision, const char *reason)
{
    s->decision = decision;
    snprintf(s->reason, sizeof(s->reason), "%s", reason ? reason : "");
    if (s->vb == VB_ON || s->vb == VB_UNDECIDED) {
        s->vb = s->vb == VB_ON ? VB_CLOSED : VB_NEVER;
        stage_detach_in(s);
    }
    stage_decided(s);
    stage_check_done(s);
}

static int stage_block_virgin(ecap_host_xaction_t *handle)
{
    struct adapt_stage *s = from_handle(handle);
    int status = decision_open(s, "block_virgin");
    if (status == ECAP_OK)
        stage_end_without_message(s, DECISION_BLOCKED, "blocked");
    return status;
}

static int stage_adaptation_delayed(ecap_host_xaction_t *handle, const char *state, double progress)
{
    struct adapt_stage *s = from_handle(handle);
    int status = check_call(s, "adaptation_delayed");
    if (status == ECAP_OK)
        mtevL(adapt_debug, "ecap: service %s: transaction %p delayed: %s (%.0f%%)\n",
              s->service->uri, (void *)s, state ? state : "", progress * 100);
    return status;
}

static int stage_adaptation_aborted(ecap_host_xaction_t *handle, const char *reason)
{
    struct adapt_stage *s = from_handle(handle);
    int status = check_call(s, "adaptation_aborted");
    if (status != ECAP_OK)
        return status;
    if (s->decision == DECISION_OPEN) {
        stage_end_without_message(s, DECISION_ABORTED, reason ? reason : "aborted");
        return ECAP_OK;
    }
    /* After use_adapted: the adapted body is cut short. */
    if (s->ab == AB_ON) {
        s->ab = AB_DONE;
        s->out.ended = 1;
        s->out.at_end = 0;
        body_available(&s->out);
    }
    if (s->vb == VB_ON || s->vb == VB_UNDECIDED) {
        s->vb = s->vb == VB_ON ? VB_CLOSED : VB_NEVER;
        stage_detach_in(s);
    }
    stage_check_done(s);
    return ECAP_OK;
}

static void cross_thread_resume(void *argument)
{
    struct adapt_stage *s = argument;
    if (is_stopped(s))
        adapt_count(&s->service->skipped_resumes);
    else
        stage_notice(s, &s->n_resume);
    stage_unref(s);
}

static int stage_resume(ecap_host_xaction_t *handle)
{
    struct adapt_stage *s = from_handle(handle);
    if (!s)
        return adapt_fail(ECAP_E_INVALID, "resume: NULL transaction");
    int owner = pthread_equal(pthread_self(), s->owner);
    if (!owner && !adapt_in_service_resume())
        return misuse(s, ECAP_E_WRONG_THREAD, "resume from a thread that is not a loop thread");
    if (is_stopped(s)) {
        /* A service resume on another loop may race with this stop: not a misuse then. */
        adapt_count(&s->service->skipped_resumes);
        if (owner)
            return misuse(s, ECAP_E_STOPPED, "resume");
        return ECAP_E_STOPPED;
    }
    if (!s->x->resume)
        return misuse(s, ECAP_E_UNSUPPORTED, "resume of a transaction without resume()");
    if (owner) {
        stage_notice(s, &s->n_resume);
        return ECAP_OK;
    }
    stage_ref(s);
    if (eventer_impl_run_on_loop(s->loop->index, cross_thread_resume, s) != 0) {
        stage_unref(s);
        return adapt_fail(ECAP_E_STOPPED, "resume: the eventer is stopping");
    }
    return ECAP_OK;
}

static int stage_vb_discard(ecap_host_xaction_t *handle)
{
    struct adapt_stage *s = from_handle(handle);
    int status = check_call(s, "vb_discard");
    if (status != ECAP_OK)
        return status;
    if (s->vb != VB_UNDECIDED)
        return s->vb == VB_NEVER ? ECAP_OK : misuse(s, ECAP_E_VB_STATE, "vb_discard after vb_make");
    s->vb = VB_NEVER;
    if (s->decision != DECISION_VIRGIN)
        stage_detach_in(s);
    stage_check_done(s);
    return ECAP_OK;
}

static int stage_vb_make(ecap_host_xaction_t *handle)
{
    struct adapt_stage *s = from_handle(handle);
    int status = check_call(s, "vb_make");
    if (status != ECAP_OK)
        return status;
    if (!s->in || !ecap_message_has_body(s->virgin))
        return misuse(s, ECAP_E_NO_BODY, "vb_make on a message without body");
    if (s->vb != VB_UNDECIDED || s->decision == DECISION_VIRGIN)
        return misuse(s, ECAP_E_VB_STATE, "vb_make twice, after vb_discard or use_virgin");
    if (!s->x->note_vb_content_available || !s->x->note_vb_content_done)
        return misuse(s, ECAP_E_UNSUPPORTED, "vb_make by a transaction without note_vb_content_*");
    s->vb = VB_ON;
    struct adapt_body *in = s->in;
    if (in->noted || in->ended || (in->kind == BODY_BUFFER && in->end > in->start))
        body_available(in);
    return ECAP_OK;
}

/* ECAP_OK when the virgin body is being made; 1 when it ended and closed by itself. */
static int vb_on(struct adapt_stage *s, const char *call)
{
    int status = check_call(s, call);
    if (status == ECAP_OK && s->vb != VB_ON)
        status = s->vb_ended_closed ? 1 : misuse(s, ECAP_E_VB_NOT_MADE, call);
    return status;
}

static int stage_vb_stop_making(ecap_host_xaction_t *handle)
{
    struct adapt_stage *s = from_handle(handle);
    int status = vb_on(s, "vb_stop_making");
    if (status != ECAP_OK)
        return status > 0 ? ECAP_OK : status;
    s->vb = VB_CLOSED;
    stage_detach_in(s);
    stage_check_done(s);
    return ECAP_OK;
}

static int stage_vb_make_more(ecap_host_xaction_t *handle)
{
    struct adapt_stage *s = from_handle(handle);
    int status = vb_on(s, "vb_make_more");
    if (status != ECAP_OK)
        return status > 0 ? ECAP_OK : status;
    struct adapt_body *in = s->in;
    if (in->ended)
        return ECAP_OK;
    if (in->kind == BODY_BUFFER) {
        in->room_wanted = 0;
        chain_notice(in->chain, &in->chain->n_vb_room);
    } else {
        stage_notice(in->producer, &in->producer->n_ab_make_more);
    }
    return ECAP_OK;
}

static int stage_vb_content(ecap_host_xaction_t *handle, size_t offset, size_t size,
                            ecap_area_t *content)
{
    struct adapt_stage *s = from_handle(handle);
    if (content)
        *content = ecap_area_borrow(NULL, 0);
    int status = vb_on(s, "vb_content");
    if (status != ECAP_OK)
        return status > 0 ? ECAP_OK : status;
    if (!content)
        return misuse(s, ECAP_E_INVALID, "vb_content with NULL content");
    return adapt_body_content(s->in, offset, size, content);
}

static int stage_vb_content_shift(ecap_host_xaction_t *handle, size_t size)
{
    struct adapt_stage *s = from_handle(handle);
    int status = vb_on(s, "vb_content_shift");
    if (status != ECAP_OK)
        return status > 0 ? ECAP_OK : status;
    if (size)
        s->vb_consumed = 1;
    adapt_body_shift(s->in, size);
    return ECAP_OK;
}

static int stage_note_ab_content_available(ecap_host_xaction_t *handle)
{
    struct adapt_stage *s = from_handle(handle);
    int status = check_call(s, "note_ab_content_available");
    if (status != ECAP_OK)
        return status;
    if (s->ab == AB_CLOSED)
        return ECAP_OK; /* the reader went away; ab_stop_making is on its way */
    if (s->ab != AB_ON)
        return misuse(s, ECAP_E_AB_STATE, "note_ab_content_available without an adapted body");
    body_available(&s->out);
    return ECAP_OK;
}

static int stage_note_ab_content_done(ecap_host_xaction_t *handle, int at_end)
{
    struct adapt_stage *s = from_handle(handle);
    int status = check_call(s, "note_ab_content_done");
    if (status != ECAP_OK)
        return status;
    if (s->ab == AB_CLOSED)
        return ECAP_OK;
    if (s->ab != AB_ON)
        return misuse(s, ECAP_E_AB_STATE, "note_ab_content_done twice or without adapted body");
    s->ab = AB_DONE;
    s->out.ended = 1;
    s->out.at_end = at_end != 0;
    body_available(&s->out);
    return ECAP_OK;
}

static ecap_area_t stage_option(ecap_host_xaction_t *handle, const char *name)
{
    struct adapt_stage *s = from_handle(handle);
    if (check_call(s, "option") != ECAP_OK || !name)
        return ecap_area_borrow(NULL, 0);
    for (size_t i = 0; i < s->chain->option_count; i++)
        if (strcasecmp(s->chain->options[i].name, name) == 0)
            return ecap_area_from_string(s->chain->options[i].value);
    return ecap_area_borrow(NULL, 0);
}

static int stage_visit_options(ecap_host_xaction_t *handle, ecap_visitor_fn visitor,
                               void *visitor_data)
{
    struct adapt_stage *s = from_handle(handle);
    int status = check_call(s, "visit_options");
    if (status != ECAP_OK)
        return status;
    if (!visitor)
        return misuse(s, ECAP_E_INVALID, "visit_options with NULL visitor");
    for (size_t i = 0; i < s->chain->option_count; i++) {
        int result = visitor(visitor_data, ecap_area_from_string(s->chain->options[i].name),
                             ecap_area_from_string(s->chain->options[i].value));
        if (result)
            return result;
    }
    return 0;
}

static void stage_handle_ref(ecap_host_xaction_t *handle)
{
    if (handle)
        stage_ref(from_handle(handle));
}

static void stage_handle_unref(ecap_host_xaction_t *handle)
{
    if (handle)
        stage_unref(from_handle(handle));
}

struct weak_ref {
    struct ecap_weak handle;
    struct adapt_stage *stage;
};

static ecap_weak_t *stage_weak(ecap_host_xaction_t *handle)
{
    struct adapt_stage *s = from_handle(handle);
    if (!s)
        return NULL;
    struct weak_ref *weak = malloc(sizeof(*weak));
    if (!weak)
        return NULL;
    weak->handle.methods = &weak_methods;
    weak->stage = s;
    __atomic_add_fetch(&s->weak, 1, __ATOMIC_RELAXED);
    return &weak->handle;
}

static int stage_wake(ecap_host_xaction_t *handle)
{
    struct adapt_stage *s = from_handle(handle);
    if (!s)
        return ECAP_E_INVALID;
    if (is_stopped(s) || !eventer_impl_running())
        return ECAP_E_STOPPED;
    adapt_count(&s->service->wakes);
    eventer_impl_wake(&eventer_impl_loops[s->loop->index]);
    return ECAP_OK;
}

static ecap_host_t *stage_host(ecap_host_xaction_t *handle)
{
    return ecap_host();
}

struct co_start {
    struct adapt_notice notice;
    struct adapt_stage *stage;
    void (*function)(ecap_host_xaction_t *hostx, void *argument);
    void *argument;
};

static void co_entry(void)
{
    struct co_start *start = eventer_aco_arg();
    start->function(&start->stage->handle, start->argument);
    stage_unref(start->stage);
    free(start);
}

static void run_co_start(struct adapt_notice *notice)
{
    struct co_start *start = container_of(notice, struct co_start, notice);
    struct adapt_stage *s = start->stage;
    if (!stage_live(s)) {
        stage_unref(s);
        free(start);
        return;
    }
    /* Outside any co-routine (notices run in the wait hooks): it runs at once until it waits. */
    eventer_aco_start_on(s->owner, co_entry, start, 0, EVENTER_ACO_MAY_RETURN);
}

static int stage_run_co(ecap_host_xaction_t *handle,
                        void (*function)(ecap_host_xaction_t *hostx, void *argument),
                        void *argument)
{
    struct adapt_stage *s = from_handle(handle);
    int status = check_call(s, "run_co");
    if (status != ECAP_OK)
        return status;
    if (!function)
        return misuse(s, ECAP_E_INVALID, "run_co without a function");
    struct co_start *start = calloc(1, sizeof(*start));
    if (!start)
        return adapt_fail(ECAP_E_NOMEM, "run_co: out of memory");
    start->notice.run = run_co_start;
    start->stage = s;
    start->function = function;
    start->argument = argument;
    stage_ref(s);
    adapt_notice_queue(s->loop, &start->notice);
    return ECAP_OK;
}

static const struct ecap_host_xaction_methods stage_methods = {
    .version = 1,
    .virgin = stage_virgin,
    .cause = stage_cause,
    .adapted = stage_adapted,
    .use_virgin = stage_use_virgin,
    .use_adapted = stage_use_adapted,
    .block_virgin = stage_block_virgin,
    .adaptation_delayed = stage_adaptation_delayed,
    .adaptation_aborted = stage_adaptation_aborted,
    .resume = stage_resume,
    .vb_discard = stage_vb_discard,
    .vb_make = stage_vb_make,
    .vb_stop_making = stage_vb_stop_making,
    .vb_make_more = stage_vb_make_more,
    .vb_content = stage_vb_content,
    .vb_content_shift = stage_vb_content_shift,
    .note_ab_content_available = stage_note_ab_content_available,
    .note_ab_content_done = stage_note_ab_content_done,
    .option = stage_option,
    .visit_options = stage_visit_options,
    .ref = stage_handle_ref,
    .unref = stage_handle_unref,
    .weak = stage_weak,
    .wake = stage_wake,
    .host = stage_host,
    .run_co = stage_run_co,
};

static ecap_host_xaction_t *weak_lock(ecap_weak_t *handle)
{
    struct adapt_stage *s = ((struct weak_ref *)handle)->stage;
    int strong = __atomic_load_n(&s->strong, __ATOMIC_ACQUIRE);
    for (;;) {
        if (strong == 0 || is_stopped(s))
            return NULL;
        if (__atomic_compare_exchange_n(&s->strong, &strong, strong + 1, 1, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            return &s->handle;
    }
}

static void weak_release(ecap_weak_t *handle)
{
    struct weak_ref *weak = (struct weak_ref *)handle;
    stage_free_memory(weak->stage);
    free(weak);
}

static const struct ecap_weak_methods weak_methods = {
    .version = 1,
    .lock = weak_lock,
    .release = weak_release,
};

/* ---- chains ---- */

static int chain_check_owner(ecap_chain_t *chain, const char *call)
{
    if (!chain)
        return adapt_fail(ECAP_E_INVALID, "%s: NULL chain", call);
    if (!pthread_equal(pthread_self(), chain->owner))
        return adapt_fail(ECAP_E_WRONG_THREAD, "%s: called off the chain's loop thread", call);
    return ECAP_OK;
}

static void chain_destroy(struct ecap_chain *chain)
{
    for (size_t i = 0; i < chain->created; i++) {
        struct adapt_stage *s = chain->stages[i];
        s->chain = NULL;
        stage_unref(s);
    }
    ecap_area_release(&chain->vb.held);
    free(chain->vb.buffer);
    ecap_message_free(chain->virgin);
    for (size_t i = 0; i < chain->option_count; i++) {
        free(chain->options[i].name);
        free(chain->options[i].value);
    }
    free(chain->options);
    free(chain->stages);
    free(chain->services);
    free(chain);
}

static void chain_unref(struct ecap_chain *chain)
{
    if (--chain->refs == 0)
        chain_destroy(chain);
}

static void chain_check_done(struct ecap_chain *chain)
{
    if (chain->done || !chain->started)
        return;
    for (size_t i = 0; i < chain->created; i++)
        if (!is_stopped(chain->stages[i]))
            return;
    if (!chain->cancelled) {
        if (chain->outcome == ECAP_OUTCOME_PENDING)
            return;
        if (chain->final_body && chain->final_body->consumer == CONSUMER_PROGRAM &&
            !body_probe_drained(chain->final_body))
            return;
    }
    chain->done = 1;
    chain_notice(chain, &chain->n_done);
}

static void run_decision(struct adapt_notice *notice)
{
    struct ecap_chain *chain = container_of(notice, struct ecap_chain, n_decision);
    if (!chain->cancelled && chain->callbacks.on_decision)
        chain->callbacks.on_decision(chain, chain->closure, chain->outcome);
    chain_unref(chain);
}

static void run_body(struct adapt_notice *notice)
{
    struct ecap_chain *chain = container_of(notice, struct ecap_chain, n_body);
    if (!chain->cancelled && chain->callbacks.on_body)
        chain->callbacks.on_body(chain, chain->closure);
    chain_unref(chain);
}

static void run_vb_room(struct adapt_notice *notice)
{
    struct ecap_chain *chain = container_of(notice, struct ecap_chain, n_vb_room);
    if (!chain->cancelled && chain->callbacks.on_vb_room)
        chain->callbacks.on_vb_room(chain, chain->closure);
    chain_unref(chain);
}

static void run_done(struct adapt_notice *notice)
{
    struct ecap_chain *chain = container_of(notice, struct ecap_chain, n_done);
    if (chain->callbacks.on_done)
        chain->callbacks.on_done(chain, chain->closure);
    chain_unref(chain);
}

ecap_chain_t *ecap_chain_create(ecap_service_t *const *services, size_t count,
                                ecap_message_t *virgin, const ecap_message_t *cause,
                                const struct ecap_chain_callbacks *callbacks, void *closure)
{
    if (!services || count == 0 || !virgin) {
        adapt_fail(ECAP_E_INVALID, "ecap_chain_create: no services or no message");
        return NULL;
    }
    struct adapt_loop *loop = adapt_loop_at(eventer_is_loop(pthread_self()));
    if (!loop) {
        adapt_fail(ECAP_E_WRONG_THREAD,
                   "ecap_chain_create: not on a loop thread (or ecap_host_init not called)");
        return NULL;
    }
    for (size_t i = 0; i < count; i++) {
        if (!services[i] ||
            __atomic_load_n(&services[i]->state, __ATOMIC_ACQUIRE) != SERVICE_STARTED) {
            adapt_fail(ECAP_E_SERVICE_STATE, "ecap_chain_create: service %s is not started",
                       services[i] ? services[i]->uri : "(null)");
            return NULL;
        }
    }
    struct ecap_chain *chain = calloc(1, sizeof(*chain));
    if (chain) {
        chain->services = malloc(count * sizeof(*chain->services));
        chain->stages = calloc(count, sizeof(*chain->stages));
    }
    if (!chain || !chain->services || !chain->stages) {
        if (chain) {
            free(chain->services);
            free(chain->stages);
        }
        free(chain);
        adapt_fail(ECAP_E_NOMEM, "ecap_chain_create: out of memory");
        return NULL;
    }
    memcpy(chain->services, services, count * sizeof(*services));
    chain->count = count;
    chain->virgin = virgin;
    chain->cause = cause;
    if (callbacks)
        chain->callbacks = *callbacks;
    chain->closure = closure;
    chain->loop = loop;
    chain->owner = pthread_self();
    chain->refs = 1;
    chain->vb_capacity = 64 * 1024;
    body_init(&chain->vb, BODY_BUFFER, chain);
    chain->n_next_stage.run = run_next_stage;
    chain->n_decision.run = run_decision;
    chain->n_body.run = run_body;
    chain->n_vb_room.run = run_vb_room;
    chain->n_done.run = run_done;
    return chain;
}

int ecap_chain_set_option(ecap_chain_t *chain, const char *name, const char *value)
{
    int status = chain_check_owner(chain, "ecap_chain_set_option");
    if (status != ECAP_OK)
        return status;
    if (!name || !value || chain->started)
        return adapt_fail(ECAP_E_INVALID, "ecap_chain_set_option: NULL argument or after start");
    struct chain_option *grown =
        realloc(chain->options, (chain->option_count + 1) * sizeof(*grown));
    if (!grown)
        return adapt_fail(ECAP_E_NOMEM, "ecap_chain_set_option: out of memory");
    chain->options = grown;
    struct chain_option option = {strdup(name), strdup(value)};
    if (!option.name || !option.value) {
        free(option.name);
        free(option.value);
        return adapt_fail(ECAP_E_NOMEM, "ecap_chain_set_option: out of memory");
    }
    chain->options[chain->option_count++] = option;
    return ECAP_OK;
}

int ecap_chain_set_vb_capacity(ecap_chain_t *chain, size_t capacity)
{
    int status = chain_check_owner(chain, "ecap_chain_set_vb_capacity");
    if (status != ECAP_OK)
        return status;
    if (capacity == 0 || chain->started)
        return adapt_fail(ECAP_E_INVALID, "ecap_chain_set_vb_capacity: 0 or after start");
    chain->vb_capacity = capacity;
    return ECAP_OK;
}

int ecap_chain_start(ecap_chain_t *chain)
{
    int status = chain_check_owner(chain, "ecap_chain_start");
    if (status != ECAP_OK)
        return status;
    if (chain->started)
        return adapt_fail(ECAP_E_INVALID, "ecap_chain_start: started twice");
    chain->started = 1;
    int has_body = ecap_message_has_body(chain->virgin);
    struct adapt_stage *s = stage_make(chain, 0, chain->virgin, has_body ? &chain->vb : NULL);
    if (!s) {
        chain->created = 0;
        chain->outcome = ECAP_OUTCOME_ABORTED;
        snprintf(chain->reason, sizeof(chain->reason), "out of memory");
        chain_notice(chain, &chain->n_decision);
        chain_check_done(chain);
        return ECAP_E_NOMEM;
    }
    if (s->decision == DECISION_ABORTED)
        chain_notice(chain, &chain->n_next_stage);
    return ECAP_OK;
}

ssize_t ecap_chain_vb_write(ecap_chain_t *chain, const void *data, size_t length)
{
    int status = chain_check_owner(chain, "ecap_chain_vb_write");
    if (status != ECAP_OK)
        return status;
    if (!ecap_message_has_body(chain->virgin))
        return adapt_fail(ECAP_E_NO_BODY, "ecap_chain_vb_write: the virgin message has no body");
    struct adapt_body *vb = &chain->vb;
    if (vb->ended)
        return adapt_fail(ECAP_E_VB_STATE, "ecap_chain_vb_write: after ecap_chain_vb_end");
    if (length && !data)
        return adapt_fail(ECAP_E_INVALID, "ecap_chain_vb_write: NULL data");
    if (vb->consumer == CONSUMER_GONE || chain->cancelled)
        return (ssize_t)length;
    if (!vb->buffer) {
        vb->buffer = malloc(chain->vb_capacity);
        if (!vb->buffer)
            return adapt_fail(ECAP_E_NOMEM, "ecap_chain_vb_write: out of memory");
        vb->capacity = chain->vb_capacity;
    }
    if (vb->capacity - vb->end < length && vb->start > 0) {
        memmove(vb->buffer, vb->buffer + vb->start, vb->end - vb->start);
        vb->end -= vb->start;
        vb->start = 0;
    }
    size_t n = vb->capacity - vb->end;
    if (n > length)
        n = length;
    memcpy(vb->buffer + vb->end, data, n);
    vb->end += n;
    if (n < length)
        vb->room_wanted = 1;
    if (n)
        body_available(vb);
    return (ssize_t)n;
}

int ecap_chain_vb_end(ecap_chain_t *chain, int at_end)
{
    int status = chain_check_owner(chain, "ecap_chain_vb_end");
    if (status != ECAP_OK)
        return status;
    if (chain->vb.ended)
        return adapt_fail(ECAP_E_VB_STATE, "ecap_chain_vb_end: called twice");
    chain->vb.ended = 1;
    chain->vb.at_end = at_end != 0;
    body_available(&chain->vb);
    return ECAP_OK;
}

int ecap_chain_body_peek(ecap_chain_t *chain, ecap_area_t *content)
{
    int status = chain_check_owner(chain, "ecap_chain_body_peek");
    if (content)
        *content = ecap_area_borrow(NULL, 0);
    if (status != ECAP_OK)
        return status;
    if (!content)
        return adapt_fail(ECAP_E_INVALID, "ecap_chain_body_peek: NULL content");
    if (!chain->final_body || chain->final_body->consumer != CONSUMER_PROGRAM)
        return ECAP_E_NO_BODY;
    status = adapt_body_content(chain->final_body, 0, ECAP_NSIZE, content);
    if (status == ECAP_OK && content->size == 0)
        body_probe_drained(chain->final_body);
    return status;
}

int ecap_chain_body_shift(ecap_chain_t *chain, size_t size)
{
    int status = chain_check_owner(chain, "ecap_chain_body_shift");
    if (status != ECAP_OK)
        return status;
    if (!chain->final_body || chain->final_body->consumer != CONSUMER_PROGRAM)
        return ECAP_E_NO_BODY;
    adapt_body_shift(chain->final_body, size);
    return ECAP_OK;
}

ssize_t ecap_chain_body_read(ecap_chain_t *chain, void *buffer, size_t capacity)
{
    ecap_area_t area;
    int status = ecap_chain_body_peek(chain, &area);
    if (status != ECAP_OK)
        return status;
    size_t n = area.size < capacity ? area.size : capacity;
    if (n) {
        memcpy(buffer, area.data, n);
        ecap_chain_body_shift(chain, n);
    }
    return (ssize_t)n;
}

enum ecap_body_state ecap_chain_body_state(ecap_chain_t *chain)
{
    if (chain_check_owner(chain, "ecap_chain_body_state") != ECAP_OK || !chain->final_body ||
        chain->final_body->consumer != CONSUMER_PROGRAM)
        return ECAP_BODY_NONE;
    if (!chain->final_body->drained)
        return ECAP_BODY_MORE;
    return chain->final_body->at_end ? ECAP_BODY_END : ECAP_BODY_TRUNCATED;
}

enum ecap_outcome ecap_chain_outcome(ecap_chain_t *chain)
{
    return chain ? chain->outcome : ECAP_OUTCOME_PENDING;
}

ecap_message_t *ecap_chain_message(ecap_chain_t *chain)
{
    return chain ? chain->final_message : NULL;
}

const char *ecap_chain_reason(ecap_chain_t *chain)
{
    return chain ? chain->reason : "";
}

ecap_area_t ecap_chain_adapter_option(ecap_chain_t *chain, const char *name)
{
    if (chain_check_owner(chain, "ecap_chain_adapter_option") != ECAP_OK || !name)
        return ecap_area_borrow(NULL, 0);
    for (size_t i = chain->created; i-- > 0;) {
        struct adapt_stage *s = chain->stages[i];
        if (is_stopped(s)) {
            for (size_t j = 0; j < s->meta_count; j++)
                if (strcasecmp(s->meta[j].name, name) == 0 && s->meta[j].value.size)
                    return ecap_area_copy(s->meta[j].value.data, s->meta[j].value.size);
            continue;
        }
        if (!s->made || !s->x->option)
            continue;
        ecap_area_t value = s->x->option(s->xdata, name);
        if (value.size) {
            ecap_area_t copy = ecap_area_copy(value.data, value.size);
            ecap_area_release(&value);
            return copy;
        }
        ecap_area_release(&value);
    }
    return ecap_area_borrow(NULL, 0);
}

int ecap_chain_is_done(ecap_chain_t *chain)
{
    return chain && chain->done;
}

void ecap_chain_cancel(ecap_chain_t *chain)
{
    if (chain_check_owner(chain, "ecap_chain_cancel") != ECAP_OK || chain->cancelled)
        return;
    chain->cancelled = 1;
    if (chain->outcome == ECAP_OUTCOME_PENDING)
        chain->outcome = ECAP_OUTCOME_CANCELLED;
    for (size_t i = 0; i < chain->created; i++) {
        struct adapt_stage *s = chain->stages[i];
        if (!is_stopped(s) && !s->stop_queued) {
            s->stop_queued = 1;
            stage_notice(s, &s->n_stop);
        }
    }
    chain_check_done(chain);
}

void ecap_chain_free(ecap_chain_t *chain)
{
    if (chain_check_owner(chain, "ecap_chain_free") != ECAP_OK)
        return;
    memset(&chain->callbacks, 0, sizeof(chain->callbacks));
    if (chain->started && !chain->done)
        ecap_chain_cancel(chain);
    chain_unref(chain);
}
