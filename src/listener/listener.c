/*
 * Listeners from the configuration: socket setup, the accept callback, acceptor closures.
 */
#include "listener/listener_internal.h"

#include "eventer/eventer_internal.h"

#include <mtev_log.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libxml/tree.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define DEFAULT_BACKLOG 1024
/* Connections accepted per callback before yielding to other events of loop 0. */
#define ACCEPT_BATCH 64

struct listener {
    eventer_t event;
    struct ark_listener_config *config;
    struct sockaddr_storage address;
    socklen_t address_length;
    char *unix_path;
    int accepted; /* loop 0 only */
};

static pthread_mutex_t listeners_lock = PTHREAD_MUTEX_INITIALIZER;
static struct listener **listeners;
static int listener_count;

struct listener_set {
    struct listener **all;
    int count;
    struct listener_set *next;
};

/* Sets handed to loop 0 and not closed yet (closed at exit if the eventer stopped first). */
static struct listener_set *pending_sets;
static void close_listeners(void *argument);

static pthread_mutex_t closures_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mtev_acceptor_closure *live_closures;
static int exit_hook_installed;

/* Kept open so that, out of descriptors, a pending connection can still be taken off the
 * backlog (and closed) instead of making the listening socket readable forever. */
static int reserve_fd = -1;

static mtev_log_stream_t listener_error;
static mtev_log_stream_t listener_debug;

static pthread_once_t streams_once = PTHREAD_ONCE_INIT;

static void find_streams(void)
{
    listener_error = mtev_log_stream_find("error/listener");
    listener_debug = mtev_log_stream_find("debug/listener");
}

static void ensure_streams(void)
{
    pthread_once(&streams_once, find_streams);
}

/* ---- listener configuration ---- */

const char *ark_listener_config_get(const struct ark_listener_config *config, const char *key)
{
    if (!config || !key)
        return NULL;
    for (int i = 0; i < config->pair_count; i++)
        if (strcmp(config->pairs[i].key, key) == 0)
            return config->pairs[i].value;
    return NULL;
}

static void config_release(struct ark_listener_config *config)
{
    if (!config || __atomic_sub_fetch(&config->refcount, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    for (int i = 0; i < config->pair_count; i++) {
        free(config->pairs[i].key);
        free(config->pairs[i].value);
    }
    free(config->pairs);
    free(config->type);
    if (config->tls_context)
        ark_tls_context_free(config->tls_context);
    free(config);
}

static void collect_pair(const char *key, const char *value, void *closure)
{
    struct ark_listener_config *config = closure;
    /* Ancestors come first: a later (nearer) definition replaces an earlier one. */
    for (int i = 0; i < config->pair_count; i++) {
        if (strcmp(config->pairs[i].key, key) == 0) {
            char *copy = strdup(value);
            if (copy) {
                free(config->pairs[i].value);
                config->pairs[i].value = copy;
            }
            return;
        }
    }
    struct ark_listener_config_pair *grown =
        realloc(config->pairs, sizeof(*grown) * (size_t)(config->pair_count + 1));
    if (!grown)
        return;
    config->pairs = grown;
    char *key_copy = strdup(key), *value_copy = strdup(value);
    if (!key_copy || !value_copy) {
        free(key_copy);
        free(value_copy);
        return;
    }
    config->pairs[config->pair_count].key = key_copy;
    config->pairs[config->pair_count].value = value_copy;
    config->pair_count++;
}

/* ---- acceptor closures ---- */

static void free_closure_now(struct mtev_acceptor_closure *ac)
{
    if (ac->ctx_free && ac->ctx)
        ac->ctx_free(ac->ctx);
    config_release(ac->config);
    free(ac->remote_cn);
    free(ac);
}

static void free_live_closures_at_exit(void)
{
    /* Only once the eventer is gone: then no thread can still use a closure. */
    if (eventer_impl_running())
        return;
    pthread_mutex_lock(&closures_lock);
    struct mtev_acceptor_closure *list = live_closures;
    live_closures = NULL;
    pthread_mutex_unlock(&closures_lock);
    while (list) {
        struct mtev_acceptor_closure *next = list->next;
        free_closure_now(list);
        list = next;
    }
    mtev_listener_shutdown();
    pthread_mutex_lock(&listeners_lock);
    struct listener_set *sets = pending_sets;
    pthread_mutex_unlock(&listeners_lock);
    while (sets) {
        struct listener_set *next = sets->next;
        close_listeners(sets);
        sets = next;
    }
    if (reserve_fd >= 0) {
        close(reserve_fd);
        reserve_fd = -1;
    }
}

static struct mtev_acceptor_closure *closure_new(struct ark_listener_config *config)
{
    struct mtev_acceptor_closure *ac = calloc(1, sizeof(*ac));
    if (!ac)
        return NULL;
    __atomic_add_fetch(&config->refcount, 1, __ATOMIC_ACQ_REL);
    ac->config = config;
    pthread_mutex_lock(&closures_lock);
    ac->next = live_closures;
    if (live_closures)
        live_closures->previous = ac;
    live_closures = ac;
    pthread_mutex_unlock(&closures_lock);
    return ac;
}

void mtev_acceptor_closure_free(mtev_acceptor_closure_t *ac)
{
    if (!ac)
        return;
    pthread_mutex_lock(&closures_lock);
    if (ac->previous)
        ac->previous->next = ac->next;
    else if (live_closures == ac)
        live_closures = ac->next;
    if (ac->next)
        ac->next->previous = ac->previous;
    pthread_mutex_unlock(&closures_lock);
    free_closure_now(ac);
}

struct sockaddr *mtev_acceptor_closure_remote(mtev_acceptor_closure_t *ac)
{
    return ac ? (struct sockaddr *)&ac->remote : NULL;
}

const char *mtev_acceptor_closure_type(mtev_acceptor_closure_t *ac)
{
    return ac ? ac->config->type : NULL;
}

const char *mtev_acceptor_closure_config(mtev_acceptor_closure_t *ac, const char *key)
{
    return ac ? ark_listener_config_get(ac->config, key) : NULL;
}

const char *mtev_acceptor_closure_remote_cn(mtev_acceptor_closure_t *ac)
{
    return ac ? ac->remote_cn : NULL;
}

void *mtev_acceptor_closure_ctx(mtev_acceptor_closure_t *ac)
{
    return ac ? ac->ctx : NULL;
}

void mtev_acceptor_closure_set_ctx(mtev_acceptor_closure_t *ac, void *ctx,
                                   void (*ctx_free)(void *ctx))
{
    ac->ctx = ctx;
    ac->ctx_free = ctx_free;
}

void mtev_acceptor_closure_ctx_free(mtev_acceptor_closure_t *ac)
{
    if (ac && ac->ctx) {
        void *ctx = ac->ctx;
        ac->ctx = NULL;
        if (ac->ctx_free)
            ac->ctx_free(ctx);
    }
}

long ark_listener_config_ms(mtev_acceptor_closure_t *ac, const char *key, long fallback)
{
    const char *text = mtev_acceptor_closure_config(ac, key);
    if (!text)
        return fallback;
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno || end == text || *end || value < 0) {
        ensure_streams();
        mtevL(listener_error, "listener %s: <config><%s> \"%s\" is not a number of ms\n",
              ac->config->type, key, text);
        return fallback;
    }
    return value;
}

/* ---- aco listener types ---- */

struct aco_function_entry {
    char *name;
    void (*function)(void);
    struct aco_function_entry *next;
};

static pthread_mutex_t aco_functions_lock = PTHREAD_MUTEX_INITIALIZER;
static struct aco_function_entry *aco_functions;

static void free_aco_functions(void)
{
    pthread_mutex_lock(&aco_functions_lock);
    while (aco_functions) {
        struct aco_function_entry *next = aco_functions->next;
        free(aco_functions->name);
        free(aco_functions);
        aco_functions = next;
    }
    pthread_mutex_unlock(&aco_functions_lock);
}

void mtev_listener_register_aco_function(const char *name, void (*function)(void))
{
    if (!name || !function)
        return;
    pthread_mutex_lock(&aco_functions_lock);
    int first = aco_functions == NULL;
    struct aco_function_entry *entry = aco_functions;
    while (entry && strcmp(entry->name, name))
        entry = entry->next;
    if (entry) {
        entry->function = function;
    } else if ((entry = calloc(1, sizeof(*entry))) && (entry->name = strdup(name))) {
        entry->function = function;
        entry->next = aco_functions;
        aco_functions = entry;
    } else {
        free(entry);
        mtevL(mtev_error, "mtev_listener_register_aco_function(%s): out of memory\n", name);
    }
    pthread_mutex_unlock(&aco_functions_lock);
    if (first)
        atexit(free_aco_functions);
}

static void (*aco_function_for_name(const char *name))(void)
{
    void (*function)(void) = NULL;
    pthread_mutex_lock(&aco_functions_lock);
    for (struct aco_function_entry *entry = aco_functions; entry; entry = entry->next)
        if (!strcmp(entry->name, name))
            function = entry->function;
    pthread_mutex_unlock(&aco_functions_lock);
    return function;
}

/* Runs in the connection's co-routine: converts the copy, calls the function, cleans up. */
static void aco_connection_main(void)
{
    eventer_t copy = eventer_aco_arg();
    mtev_acceptor_closure_t *ac = eventer_get_closure(copy);
    void (*function)(void) = ac->config->aco_function;
    eventer_set_eventer_aco(copy);
    function();
    /* The function owned the event (it closes and frees it, or the co's end releases it);
     * the acceptor closure is ours. */
    mtev_acceptor_closure_free(ac);
}

/* The classic callback of aco listener types: moves the connection into a co-routine. */
static int aco_dispatch_callback(eventer_t e, int mask, void *closure, struct timeval *now)
{
    eventer_remove_fde(e);
    eventer_t copy = eventer_alloc_copy(e);
    if (!copy) {
        int ignored;
        eventer_close(e, &ignored);
        mtev_acceptor_closure_free(closure);
        return 0;
    }
    eventer_aco_start_on(pthread_self(), aco_connection_main, copy, 0, EVENTER_ACO_MAY_RETURN);
    return 0;
}

/* ---- accepting ---- */

/*
 * accept() failed with EMFILE/ENFILE. The reserved descriptor makes room to take the pending
 * connection off the backlog (so the loop does not spin on it). Descriptors may have been
 * freed since the failure: if the reserve can be reopened with the connection still open,
 * there is room after all and the connection is returned to be served. Otherwise it is
 * closed (the client sees EOF), logged, and -1 returned.
 */
static int take_pending_connection_out_of_descriptors(int listen_fd, const char *type, int error,
                                                      struct sockaddr_storage *remote,
                                                      socklen_t *remote_length)
{
    if (reserve_fd < 0)
        reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (reserve_fd < 0)
        return -1;
    close(reserve_fd);
    reserve_fd = -1;
    int fd = accept4(listen_fd, (struct sockaddr *)remote, remote_length, SOCK_CLOEXEC);
    int accept_error = errno;
    reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        errno = accept_error;
        return -1;
    }
    if (reserve_fd >= 0)
        return fd;
    mtevL(listener_error,
          "listener %s: out of file descriptors (%s); closed a pending connection\n", type,
          strerror(error));
    close(fd);
    reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return -1;
}

static int accept_callback(eventer_t e, int mask, void *closure, struct timeval *now)
{
    struct listener *listener = closure;
    struct ark_listener_config *config = listener->config;
    eventer_func_t callback = config->callback;
    for (int accepted = 0; accepted < ACCEPT_BATCH; accepted++) {
        struct sockaddr_storage remote;
        socklen_t remote_length = sizeof(remote);
        int accept_mask = 0;
        int fd = eventer_accept(e, (struct sockaddr *)&remote, &remote_length, &accept_mask);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return EVENTER_READ | EVENTER_EXCEPTION;
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            if (errno == EMFILE || errno == ENFILE) {
                remote_length = sizeof(remote);
                fd = take_pending_connection_out_of_descriptors(eventer_get_fd(e), config->type,
                                                                errno, &remote, &remote_length);
                if (fd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                    return EVENTER_READ | EVENTER_EXCEPTION;
                if (fd < 0)
                    continue;
            } else {
                mtevL(listener_error, "listener %s: accept: %s\n", config->type, strerror(errno));
                return EVENTER_READ | EVENTER_EXCEPTION;
            }
        }
        if (eventer_set_fd_nonblocking(fd) < 0) {
            close(fd);
            continue;
        }
        if (remote.ss_family != AF_UNIX) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        mtev_acceptor_closure_t *ac = closure_new(config);
        eventer_t connection =
            ac ? eventer_alloc_fd(callback, ac, fd,
                                  EVENTER_READ | EVENTER_WRITE | EVENTER_EXCEPTION)
               : NULL;
        if (!connection) {
            mtev_acceptor_closure_free(ac);
            close(fd);
            continue;
        }
        memcpy(&ac->remote, &remote, remote_length);
        ac->remote_length = remote_length;
        if (config->tls_context && ark_tls_attach(connection, config->tls_context, ac) < 0) {
            eventer_free(connection);
            mtev_acceptor_closure_free(ac);
            close(fd);
            continue;
        }
        /* Round-robin rather than by descriptor number, which can repeat one parity. */
        eventer_set_owner(connection, eventer_choose_owner(++listener->accepted));
        eventer_add(connection);
    }
    return EVENTER_READ | EVENTER_EXCEPTION;
}

/* ---- opening ---- */

void ark_listener_describe_location(mtev_conf_section_t section, char *buffer, size_t capacity)
{
    xmlNodePtr node = mtev_conf_section_to_xmlnodeptr(section);
    const char *file = node && node->doc && node->doc->URL ? (const char *)node->doc->URL : "?";
    snprintf(buffer, capacity, "%s:%ld", file, node ? xmlGetLineNo(node) : 0L);
}

static int parse_address(const char *where, const char *text, int port, struct listener *listener)
{
    memset(&listener->address, 0, sizeof(listener->address));
    if (text[0] == '/') {
        struct sockaddr_un *un = (struct sockaddr_un *)&listener->address;
        if (strlen(text) >= sizeof(un->sun_path)) {
            mtevL(mtev_error, "%s: listener: unix socket path \"%s\" is too long\n", where, text);
            return -1;
        }
        un->sun_family = AF_UNIX;
        strcpy(un->sun_path, text);
        listener->address_length = sizeof(*un);
        listener->unix_path = strdup(text);
        return listener->unix_path ? 0 : -1;
    }
    if (port < 0) {
        mtevL(mtev_error, "%s: listener at \"%s\": a port is required\n", where, text);
        return -1;
    }
    struct sockaddr_in *in4 = (struct sockaddr_in *)&listener->address;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&listener->address;
    if (!strcmp(text, "*") || !strcmp(text, "inet:*")) {
        in4->sin_family = AF_INET;
        in4->sin_addr.s_addr = htonl(INADDR_ANY);
        in4->sin_port = htons((uint16_t)port);
        listener->address_length = sizeof(*in4);
        return 0;
    }
    if (!strcmp(text, "inet6:*")) {
        in6->sin6_family = AF_INET6;
        in6->sin6_addr = in6addr_any;
        in6->sin6_port = htons((uint16_t)port);
        listener->address_length = sizeof(*in6);
        return 0;
    }
    if (inet_pton(AF_INET, text, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        listener->address_length = sizeof(*in4);
        return 0;
    }
    char v6[INET6_ADDRSTRLEN + 2];
    size_t length = strlen(text);
    if (length >= 2 && text[0] == '[' && text[length - 1] == ']' && length - 2 < sizeof(v6)) {
        memcpy(v6, text + 1, length - 2);
        v6[length - 2] = '\0';
    } else {
        snprintf(v6, sizeof(v6), "%s", text);
    }
    if (inet_pton(AF_INET6, v6, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        listener->address_length = sizeof(*in6);
        return 0;
    }
    mtevL(mtev_error,
          "%s: listener: address \"%s\" is neither an IP address, \"*\", \"inet6:*\" nor an "
          "absolute path\n",
          where, text);
    return -1;
}

static int open_socket(const char *where, struct listener *listener, int backlog)
{
    int family = listener->address.ss_family;
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        mtevL(mtev_error, "%s: listener: socket: %s\n", where, strerror(errno));
        return -1;
    }
    int one = 1;
    if (family != AF_UNIX)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (family == AF_UNIX) {
        struct stat st;
        if (lstat(listener->unix_path, &st) == 0 && S_ISSOCK(st.st_mode))
            unlink(listener->unix_path);
    }
    if (bind(fd, (struct sockaddr *)&listener->address, listener->address_length) < 0) {
        char text[INET6_ADDRSTRLEN] = "?";
        int port = 0;
        if (family == AF_INET) {
            struct sockaddr_in *in4 = (struct sockaddr_in *)&listener->address;
            inet_ntop(AF_INET, &in4->sin_addr, text, sizeof(text));
            port = ntohs(in4->sin_port);
        } else if (family == AF_INET6) {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&listener->address;
            inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
            port = ntohs(in6->sin6_port);
        } else {
            snprintf(text, sizeof(text), "%s", listener->unix_path);
        }
        mtevL(mtev_error, "%s: listener %s: cannot bind %s port %d: %s\n", where,
              listener->config->type, text, port, strerror(errno));
        close(fd);
        return -1;
    }
    if (listen(fd, backlog) < 0) {
        mtevL(mtev_error, "%s: listener: listen: %s\n", where, strerror(errno));
        close(fd);
        return -1;
    }
    listener->address_length = sizeof(listener->address);
    getsockname(fd, (struct sockaddr *)&listener->address, &listener->address_length);
    return fd;
}

static void listener_free(struct listener *listener)
{
    if (!listener)
        return;
    config_release(listener->config);
    free(listener->unix_path);
    free(listener);
}

static int open_listener(mtev_conf_section_t section)
{
    char where[512];
    ark_listener_describe_location(section, where, sizeof(where));
    char *type = NULL, *address = NULL, *port_text = NULL, *backlog_text = NULL, *ssl_text = NULL;
    mtev_boolean ssl = mtev_false;
    int result = -1;
    struct listener *listener = calloc(1, sizeof(*listener));
    if (!listener)
        return -1;
    if (!mtev_conf_get_string(section, "@type", &type) &&
        !mtev_conf_get_string(section, "type", &type)) {
        mtevL(mtev_error, "%s: listener: the type attribute is missing\n", where);
        goto done;
    }
    if (!mtev_conf_get_string(section, "address", &address))
        address = strdup("*");
    int port = -1;
    if (mtev_conf_get_string(section, "port", &port_text)) {
        char *end;
        long value = strtol(port_text, &end, 10);
        if (end == port_text || *end || value < 0 || value > 65535) {
            mtevL(mtev_error, "%s: listener %s: port \"%s\" is not a number in 0..65535\n", where,
                  type, port_text);
            goto done;
        }
        port = (int)value;
    }
    int backlog = DEFAULT_BACKLOG;
    if (mtev_conf_get_string(section, "backlog", &backlog_text)) {
        char *end;
        long value = strtol(backlog_text, &end, 10);
        if (end == backlog_text || *end || value < 1 || value > 65535) {
            mtevL(mtev_error, "%s: listener %s: backlog \"%s\" is not a number in 1..65535\n",
                  where, type, backlog_text);
            goto done;
        }
        backlog = (int)value;
    }
    if (mtev_conf_get_string(section, "ssl", &ssl_text))
        ssl = !strcmp(ssl_text, "on") || !strcmp(ssl_text, "true") || !strcmp(ssl_text, "yes");
    struct ark_listener_config *config = calloc(1, sizeof(*config));
    if (!config)
        goto done;
    config->refcount = 1;
    config->type = type;
    type = NULL;
    listener->config = config;
    mtev_conf_foreach_pair(section, "config", collect_pair, config);
    config->callback = eventer_callback_for_name(config->type);
    if (!config->callback) {
        config->aco_function = aco_function_for_name(config->type);
        if (config->aco_function)
            config->callback = aco_dispatch_callback;
    }
    if (!config->callback) {
        mtevL(mtev_error,
              "%s: listener type \"%s\" names no callback (eventer_name_callback) and no aco "
              "function\n",
              where, config->type);
        goto done;
    }
    if (parse_address(where, address, port, listener) < 0)
        goto done;
    if (ssl) {
        config->tls_context = ark_tls_context_from_config(section, where);
        if (!config->tls_context)
            goto done;
    }
    int fd = open_socket(where, listener, backlog);
    if (fd < 0)
        goto done;
    listener->event =
        eventer_alloc_fd(accept_callback, listener, fd, EVENTER_READ | EVENTER_EXCEPTION);
    if (!listener->event) {
        close(fd);
        goto done;
    }
    eventer_set_owner(listener->event, eventer_choose_owner(0));
    /* Our own reference: the event outlives the eventer's teardown until we close it. */
    eventer_ref(listener->event);
    pthread_mutex_lock(&listeners_lock);
    struct listener **grown = realloc(listeners, sizeof(*grown) * (size_t)(listener_count + 1));
    if (grown) {
        listeners = grown;
        listeners[listener_count++] = listener;
    }
    pthread_mutex_unlock(&listeners_lock);
    if (!grown) {
        eventer_free(listener->event);
        eventer_free(listener->event);
        close(fd);
        goto done;
    }
    mtevL(listener_debug, "%s: listener %s open on fd %d\n", where, config->type, fd);
    eventer_add(listener->event);
    listener = NULL;
    result = 0;
done:
    free(type);
    free(address);
    free(port_text);
    free(backlog_text);
    free(ssl_text);
    listener_free(listener);
    return result;
}

int mtev_listener_init(const char *toplevel)
{
    ensure_streams();
    signal(SIGPIPE, SIG_IGN);
    pthread_mutex_lock(&closures_lock);
    if (!exit_hook_installed) {
        exit_hook_installed = 1;
        atexit(free_live_closures_at_exit);
    }
    if (reserve_fd < 0)
        reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pthread_mutex_unlock(&closures_lock);

    char path[256];
    snprintf(path, sizeof(path), "/%s/listeners//listener", toplevel ? toplevel : "*");
    int count = 0;
    mtev_conf_section_t *sections = mtev_conf_get_sections_read(MTEV_CONF_ROOT, path, &count);
    int opened = 0, failed = 0;
    for (int i = 0; i < count; i++) {
        if (open_listener(sections[i]) == 0)
            opened++;
        else
            failed++;
    }
    mtev_conf_release_sections_read(sections, count);
    return failed ? -1 : opened;
}


/* On loop 0 (which runs the accept callbacks), or once the eventer is gone. */
static void close_listeners(void *argument)
{
    struct listener_set *set = argument;
    pthread_mutex_lock(&listeners_lock);
    for (struct listener_set **link = &pending_sets; *link; link = &(*link)->next) {
        if (*link == set) {
            *link = set->next;
            break;
        }
    }
    pthread_mutex_unlock(&listeners_lock);
    for (int i = 0; i < set->count; i++) {
        struct listener *listener = set->all[i];
        eventer_t e = listener->event;
        int fd = eventer_get_fd(e);
        if (eventer_impl_running()) {
            eventer_t registered = eventer_remove_fde(e);
            if (registered)
                eventer_deref(registered);
        }
        if (fd >= 0)
            close(fd);
        eventer_deref(e);
        if (listener->unix_path)
            unlink(listener->unix_path);
        listener_free(listener);
    }
    free(set->all);
    free(set);
}

void mtev_listener_shutdown(void)
{
    struct listener_set *set = calloc(1, sizeof(*set));
    if (!set)
        return;
    pthread_mutex_lock(&listeners_lock);
    set->all = listeners;
    set->count = listener_count;
    listeners = NULL;
    listener_count = 0;
    int deferred = eventer_impl_running() && eventer_is_loop(pthread_self()) != 0;
    if (deferred) {
        set->next = pending_sets;
        pending_sets = set;
    }
    pthread_mutex_unlock(&listeners_lock);
    if (deferred && eventer_impl_run_on_loop(0, close_listeners, set) == 0)
        return;
    close_listeners(set);
}

int mtev_listener_count(void)
{
    pthread_mutex_lock(&listeners_lock);
    int count = listener_count;
    pthread_mutex_unlock(&listeners_lock);
    return count;
}

int mtev_listener_get_address(int index, struct sockaddr *address, socklen_t *length)
{
    int result = -1;
    pthread_mutex_lock(&listeners_lock);
    if (index >= 0 && index < listener_count && address && length) {
        socklen_t copy = listeners[index]->address_length;
        if (copy > *length)
            copy = *length;
        memcpy(address, &listeners[index]->address, copy);
        *length = listeners[index]->address_length;
        result = 0;
    }
    pthread_mutex_unlock(&listeners_lock);
    if (result < 0)
        errno = EINVAL;
    return result;
}

int mtev_listener_get_port(int index)
{
    struct sockaddr_storage address;
    socklen_t length = sizeof(address);
    if (mtev_listener_get_address(index, (struct sockaddr *)&address, &length) < 0)
        return -1;
    if (address.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&address)->sin_port);
    if (address.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&address)->sin6_port);
    return 0;
}

const char *mtev_listener_get_type(int index)
{
    const char *type = NULL;
    pthread_mutex_lock(&listeners_lock);
    if (index >= 0 && index < listener_count)
        type = listeners[index]->config->type;
    pthread_mutex_unlock(&listeners_lock);
    return type;
}
