/*
 * Pass-through adapter: ecap://arkenstone/adapters/passthru. Each transaction clones the
 * virgin message and uses the clone, copying nothing itself: its adapted body is the virgin
 * body seen through (ab_content answers with the host's vb_content area, ab_content_shift
 * shifts the virgin body), so bytes flow from producer to consumer without a copy here.
 */
#include <ecap/adapter.h>

struct passthru {
    ecap_host_xaction_t *hostx;
    int ab_made;
    int vb_done, vb_at_end; /* the virgin body ended before the host asked for ab */
    int ab_done_sent;
};

static const char *passthru_uri(void *service)
{
    return "ecap://arkenstone/adapters/passthru";
}

static void passthru_start(void *xaction)
{
    struct passthru *p = xaction;
    ecap_message_t *virgin = ecap_host_xaction_virgin(p->hostx);
    ecap_message_t *adapted = virgin ? ecap_message_clone(virgin) : NULL;
    if (!adapted) {
        ecap_host_xaction_adaptation_aborted(p->hostx, "passthru: out of memory");
        return;
    }
    if (ecap_message_has_body(virgin) && ecap_host_xaction_vb_make(p->hostx) != ECAP_OK)
        ecap_message_set_has_body(adapted, 0);
    if (ecap_host_xaction_use_adapted(p->hostx, adapted) != ECAP_OK)
        ecap_message_free(adapted);
}

static void passthru_stop(void *xaction)
{
    free(xaction);
}

static void send_done(struct passthru *p)
{
    if (p->ab_made && p->vb_done && !p->ab_done_sent) {
        p->ab_done_sent = 1;
        ecap_host_xaction_note_ab_content_done(p->hostx, p->vb_at_end);
    }
}

static void passthru_ab_make(void *xaction)
{
    struct passthru *p = xaction;
    p->ab_made = 1;
    ecap_host_xaction_note_ab_content_available(p->hostx);
    send_done(p);
}

static void passthru_ab_make_more(void *xaction)
{
    struct passthru *p = xaction;
    ecap_host_xaction_vb_make_more(p->hostx);
}

static void passthru_ab_stop_making(void *xaction)
{
    struct passthru *p = xaction;
    ecap_host_xaction_vb_stop_making(p->hostx);
}

static int passthru_ab_content(void *xaction, size_t offset, size_t size, ecap_area_t *content)
{
    struct passthru *p = xaction;
    return ecap_host_xaction_vb_content(p->hostx, offset, size, content);
}

static void passthru_ab_content_shift(void *xaction, size_t size)
{
    struct passthru *p = xaction;
    ecap_host_xaction_vb_content_shift(p->hostx, size);
}

static void passthru_note_vb_content_available(void *xaction)
{
    struct passthru *p = xaction;
    if (p->ab_made)
        ecap_host_xaction_note_ab_content_available(p->hostx);
}

static void passthru_note_vb_content_done(void *xaction, int at_end)
{
    struct passthru *p = xaction;
    p->vb_done = 1;
    p->vb_at_end = at_end;
    send_done(p);
}

static const struct ecap_xaction_methods passthru_xaction = {
    .version = 1,
    .start = passthru_start,
    .stop = passthru_stop,
    .ab_make = passthru_ab_make,
    .ab_make_more = passthru_ab_make_more,
    .ab_stop_making = passthru_ab_stop_making,
    .ab_content = passthru_ab_content,
    .ab_content_shift = passthru_ab_content_shift,
    .note_vb_content_available = passthru_note_vb_content_available,
    .note_vb_content_done = passthru_note_vb_content_done,
};

static int passthru_make_xaction(void *service, ecap_host_xaction_t *hostx,
                                 const struct ecap_xaction_methods **methods, void **xaction)
{
    struct passthru *p = calloc(1, sizeof(*p));
    if (!p)
        return ECAP_E_NOMEM;
    p->hostx = hostx;
    *methods = &passthru_xaction;
    *xaction = p;
    return ECAP_OK;
}

static const struct ecap_service_methods passthru_service = {
    .version = 1,
    .uri = passthru_uri,
    .make_xaction = passthru_make_xaction,
};

static int passthru_register(ecap_host_t *host, struct ecap_error *error)
{
    return ecap_host_register_service(host, &passthru_service, NULL);
}

ECAP_MODULE("passthru", passthru_register);
