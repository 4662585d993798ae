/*
 * Co-routine adapter: ecap://arkenstone/adapters/aco asks a TCP lookup service about each
 * request's URI, in blocking style from a co-routine on the host's loop (no threads of its
 * own), and blocks the URIs the service lists.
 *
 * Lookup protocol (one connection per question): the adapter sends the URI and "\n"; the
 * service answers one line, "BLOCK" or "ALLOW" (anything else counts as an error).
 *
 * Options: lookup (required: "127.0.0.1:PORT" or "[::1]:PORT"), timeout_ms (the whole
 * lookup, default 1000), on_error ("allow" or "block": what to do when the lookup fails or
 * times out, default "allow").
 *
 * Meta-information: "X-Ecap-Lookup" = "block", "allow", "error" or "timeout".
 *
 * Needs a host with co-routines (ecap_host_xaction_run_co) and the eventer's eventer_aco_*
 * functions, which the module takes from the program hosting it.
 */
#include <ecap/adapter.h>
#include <eventer/eventer.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define ACO_URI "ecap://arkenstone/adapters/aco"

struct aco_service {
    struct sockaddr_storage address;
    socklen_t address_length;
    int configured;
    unsigned timeout_ms;
    int block_on_error;
};

/* Shared by the host (until stop) and the co-routine (until it returns). */
struct aco_xaction {
    struct aco_service *service;
    ecap_host_xaction_t *hostx;
    int references;
    int stopped;
    const char *verdict;
};

static void release(struct aco_xaction *x)
{
    if (--x->references == 0)
        free(x);
}

static const char *aco_uri(void *service)
{
    return ACO_URI;
}

static int parse_address(const char *text, struct sockaddr_storage *address, socklen_t *length)
{
    char host[64];
    const char *colon = strrchr(text, ':');
    if (!colon || colon == text || (size_t)(colon - text) >= sizeof(host))
        return -1;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    char *end = NULL;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (*end != '\0' || port == 0 || port > 65535)
        return -1;
    memset(address, 0, sizeof(*address));
    if (host[0] == '[') {
        size_t n = strlen(host);
        if (n < 3 || host[n - 1] != ']')
            return -1;
        host[n - 1] = '\0';
        struct sockaddr_in6 *six = (struct sockaddr_in6 *)address;
        six->sin6_family = AF_INET6;
        six->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host + 1, &six->sin6_addr) != 1)
            return -1;
        *length = sizeof(*six);
        return 0;
    }
    struct sockaddr_in *four = (struct sockaddr_in *)address;
    four->sin_family = AF_INET;
    four->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &four->sin_addr) != 1)
        return -1;
    *length = sizeof(*four);
    return 0;
}

static int aco_configure(void *data, const struct ecap_option *options, size_t count,
                         struct ecap_error *error)
{
    struct aco_service *s = data;
    struct aco_service next = *s;
    for (size_t i = 0; i < count; i++) {
        const char *name = options[i].name, *value = options[i].value;
        if (strcmp(name, "lookup") == 0) {
            if (parse_address(value, &next.address, &next.address_length) < 0)
                return ecap_error_set(error, ECAP_E_BAD_OPTION,
                                      "option lookup=\"%s\": not ADDRESS:PORT "
                                      "(127.0.0.1:53000, [::1]:53000)",
                                      value);
            next.configured = 1;
        } else if (strcmp(name, "timeout_ms") == 0) {
            char *end = NULL;
            unsigned long ms = strtoul(value, &end, 10);
            if (!*value || *end != '\0' || ms == 0 || ms > 3600000)
                return ecap_error_set(error, ECAP_E_BAD_OPTION,
                                      "option timeout_ms=\"%s\": not a number of milliseconds "
                                      "from 1 to 3600000",
                                      value);
            next.timeout_ms = (unsigned)ms;
        } else if (strcmp(name, "on_error") == 0) {
            if (strcmp(value, "allow") != 0 && strcmp(value, "block") != 0)
                return ecap_error_set(error, ECAP_E_BAD_OPTION,
                                      "option on_error=\"%s\": not allow or block", value);
            next.block_on_error = strcmp(value, "block") == 0;
        } else {
            return ecap_error_set(error, ECAP_E_BAD_OPTION, "unknown option %s", name);
        }
    }
    *s = next;
    return ECAP_OK;
}

static int aco_start_service(void *data, struct ecap_error *error)
{
    struct aco_service *s = data;
    if (!s->configured)
        return ecap_error_set(error, ECAP_E_BAD_OPTION, "option lookup is required");
    return ECAP_OK;
}

static void aco_retire(void *data)
{
    free(data);
}

/* The socket is only waited on by the co-routine; the eventer never calls this. */
static int never_called(eventer_t e, int mask, void *closure, struct timeval *now)
{
    return 0;
}

/* Asks the lookup service; returns 1 (block), 0 (allow), -1 (error) or -2 (timeout). */
static int ask(struct aco_service *s, const char *uri, size_t uri_length)
{
    int fd = socket(s->address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    eventer_t e = eventer_alloc_fd(never_called, NULL, fd, EVENTER_WRITE | EVENTER_EXCEPTION);
    if (!e) {
        close(fd);
        return -1;
    }
    eventer_aco_t ae = eventer_set_eventer_aco(e);
    struct timeval timeout = {s->timeout_ms / 1000, (suseconds_t)(s->timeout_ms % 1000) * 1000};
    int answer = -1;
    char request[2048];
    if (uri_length > sizeof(request) - 2)
        uri_length = sizeof(request) - 2;
    memcpy(request, uri, uri_length);
    request[uri_length] = '\n';
    /* One timeout for the whole lookup: each call gets what is left of it. */
    struct timeval start;
    gettimeofday(&start, NULL);
    if (eventer_aco_connect(ae, (struct sockaddr *)&s->address, s->address_length, &timeout) < 0) {
        answer = errno == ETIME ? -2 : -1;
        goto done;
    }
    size_t sent = 0;
    while (sent < uri_length + 1) {
        int n = eventer_aco_write(ae, request + sent, uri_length + 1 - sent, &timeout);
        if (n <= 0) {
            answer = n < 0 && errno == ETIME ? -2 : -1;
            goto done;
        }
        sent += (size_t)n;
    }
    char reply[16];
    size_t received = 0;
    while (received < sizeof(reply) - 1 && !memchr(reply, '\n', received)) {
        struct timeval now, left;
        gettimeofday(&now, NULL);
        long used_us = (now.tv_sec - start.tv_sec) * 1000000L + (now.tv_usec - start.tv_usec);
        long left_us = (long)s->timeout_ms * 1000L - used_us;
        if (left_us <= 0) {
            answer = -2;
            goto done;
        }
        left.tv_sec = left_us / 1000000;
        left.tv_usec = left_us % 1000000;
        int n = eventer_aco_read(ae, reply + received, sizeof(reply) - 1 - received, &left);
        if (n <= 0) {
            answer = n < 0 && errno == ETIME ? -2 : -1;
            goto done;
        }
        received += (size_t)n;
    }
    reply[received] = '\0';
    if (strncmp(reply, "BLOCK\n", 6) == 0)
        answer = 1;
    else if (strncmp(reply, "ALLOW\n", 6) == 0)
        answer = 0;
done:
    eventer_aco_close(ae);
    eventer_aco_free(ae);
    return answer;
}

static void lookup_co(ecap_host_xaction_t *hostx, void *argument)
{
    struct aco_xaction *x = argument;
    struct aco_service *s = x->service;
    ecap_message_t *virgin = ecap_host_xaction_virgin(hostx);
    ecap_message_t *request = virgin && ecap_message_kind(virgin) == ECAP_MESSAGE_REQUEST
                                  ? virgin
                                  : ecap_host_xaction_cause(hostx);
    int answer = -1;
    if (request) {
        ecap_area_t uri = ecap_message_uri(request);
        /* Copied: the message may be gone when the co-routine resumes. */
        char copy[2048];
        size_t n = uri.size < sizeof(copy) ? uri.size : sizeof(copy);
        memcpy(copy, uri.data, n);
        answer = ask(s, copy, n);
    }
    if (!x->stopped) {
        int block = answer == 1 || (answer < 0 && s->block_on_error);
        x->verdict = answer == 1    ? "block"
                     : answer == 0  ? "allow"
                     : answer == -2 ? "timeout"
                                    : "error";
        if (block)
            ecap_host_xaction_block_virgin(hostx);
        else
            ecap_host_xaction_use_virgin(hostx);
    }
    release(x);
}

static void aco_xaction_start(void *xaction)
{
    struct aco_xaction *x = xaction;
    x->references++;
    int status = ecap_host_xaction_run_co(x->hostx, lookup_co, x);
    if (status != ECAP_OK) {
        x->references--;
        ecap_host_xaction_adaptation_aborted(x->hostx, "aco: the host cannot run co-routines");
    }
}

static void aco_xaction_stop(void *xaction)
{
    struct aco_xaction *x = xaction;
    x->stopped = 1;
    release(x);
}

static ecap_area_t aco_option(void *xaction, const char *name)
{
    struct aco_xaction *x = xaction;
    if (strcasecmp(name, "X-Ecap-Lookup") == 0 && x->verdict)
        return ecap_area_from_string(x->verdict);
    return ecap_area_borrow(NULL, 0);
}

static int aco_visit_options(void *xaction, ecap_visitor_fn visitor, void *visitor_data)
{
    ecap_area_t value = aco_option(xaction, "X-Ecap-Lookup");
    return value.size ? visitor(visitor_data, ecap_area_from_string("X-Ecap-Lookup"), value) : 0;
}

static const struct ecap_xaction_methods aco_xaction = {
    .version = 1,
    .start = aco_xaction_start,
    .stop = aco_xaction_stop,
    .option = aco_option,
    .visit_options = aco_visit_options,
};

static int aco_make_xaction(void *data, ecap_host_xaction_t *hostx,
                            const struct ecap_xaction_methods **methods, void **xaction)
{
    struct aco_xaction *x = calloc(1, sizeof(*x));
    if (!x)
        return ECAP_E_NOMEM;
    x->service = data;
    x->hostx = hostx;
    x->references = 1;
    *methods = &aco_xaction;
    *xaction = x;
    return ECAP_OK;
}

static const struct ecap_service_methods aco_service_methods = {
    .version = 1,
    .uri = aco_uri,
    .configure = aco_configure,
    .start = aco_start_service,
    .retire = aco_retire,
    .make_xaction = aco_make_xaction,
};

static int aco_register(ecap_host_t *host, struct ecap_error *error)
{
    struct aco_service *s = calloc(1, sizeof(*s));
    if (!s)
        return ecap_error_set(error, ECAP_E_NOMEM, "out of memory");
    s->timeout_ms = 1000;
    int status = ecap_host_register_service(host, &aco_service_methods, s);
    if (status != ECAP_OK)
        free(s);
    return status;
}

ECAP_MODULE("aco", aco_register);
