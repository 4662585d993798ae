/*
 * The epoll backend of the poller. Level-triggered: a descriptor stays ready until the
 * callback drains it, which is what the eventer's callback contract expects. Uses
 * epoll_pwait2 for microsecond timeouts when the kernel has it, epoll_wait (milliseconds,
 * rounded up so timers never fire early) otherwise.
 */
#include "eventer/poller.h"
#include "eventer/kernel_call.h"

#include <eventer/eventer.h>

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static uint32_t to_epoll(int mask)
{
    uint32_t events = 0;
    if (mask & EVENTER_READ)
        events |= EPOLLIN;
    if (mask & EVENTER_WRITE)
        events |= EPOLLOUT;
    if (mask & EVENTER_EXCEPTION)
        events |= EPOLLPRI;
    return events;
}

static int from_epoll(uint32_t events)
{
    int mask = 0;
    if (events & EPOLLIN)
        mask |= EVENTER_READ;
    if (events & EPOLLOUT)
        mask |= EVENTER_WRITE;
    if (events & (EPOLLERR | EPOLLHUP | EPOLLPRI))
        mask |= EVENTER_EXCEPTION;
    return mask;
}

int eventer_poller_create(struct eventer_poller *poller)
{
    poller->scratch = calloc(EVENTER_POLLER_BATCH, sizeof(struct epoll_event));
    if (!poller->scratch) {
        errno = ENOMEM;
        return -1;
    }
    poller->kernel_fd = epoll_create1(EPOLL_CLOEXEC);
    if (poller->kernel_fd < 0) {
        int saved = errno;
        free(poller->scratch);
        poller->scratch = NULL;
        errno = saved;
        return -1;
    }
    return 0;
}

void eventer_poller_destroy(struct eventer_poller *poller)
{
    if (poller->kernel_fd >= 0)
        close(poller->kernel_fd);
    poller->kernel_fd = -1;
    free(poller->scratch);
    poller->scratch = NULL;
}

static int control(struct eventer_poller *poller, int operation, int fd, int mask)
{
    struct epoll_event event = {.events = to_epoll(mask), .data.fd = fd};
    return epoll_ctl(poller->kernel_fd, operation, fd, &event);
}

int eventer_poller_add(struct eventer_poller *poller, int fd, int mask)
{
    if (control(poller, EPOLL_CTL_ADD, fd, mask) == 0)
        return 0;
    /* A descriptor closed and reopened without being removed is still known: modify it. */
    if (errno == EEXIST)
        return control(poller, EPOLL_CTL_MOD, fd, mask);
    return -1;
}

int eventer_poller_modify(struct eventer_poller *poller, int fd, int mask)
{
    if (control(poller, EPOLL_CTL_MOD, fd, mask) == 0)
        return 0;
    if (errno == ENOENT)
        return control(poller, EPOLL_CTL_ADD, fd, mask);
    return -1;
}

int eventer_poller_remove(struct eventer_poller *poller, int fd)
{
    struct epoll_event unused = {0};
    return epoll_ctl(poller->kernel_fd, EPOLL_CTL_DEL, fd, &unused);
}

#ifndef SYS_epoll_pwait2
#define SYS_epoll_pwait2 441
#endif

/*
 * -1 unknown, 0 missing, 1 present. Races are harmless: every thread finds the same.
 * ThreadSanitizer sees epoll_wait() (a registration made by another thread happens before
 * the wait that reports it) but not a raw epoll_pwait2 system call: it reported races on
 * descriptors handed between threads, so its builds use epoll_wait() only.
 */
#if defined(ARK_TSAN) || defined(__SANITIZE_THREAD__)
static int have_pwait2 = 0;
#else
static int have_pwait2 = -1;
#endif

int eventer_poller_wait(struct eventer_poller *poller, struct eventer_poller_ready *ready,
                        uint64_t timeout_us)
{
    struct epoll_event *events = poller->scratch;
    int count = -1;
    int known = __atomic_load_n(&have_pwait2, __ATOMIC_RELAXED);
    if (timeout_us != UINT64_MAX && timeout_us % 1000 != 0 && known != 0) {
        struct timespec timeout = {(time_t)(timeout_us / 1000000),
                                   (long)(timeout_us % 1000000) * 1000};
        count = (int)syscall(SYS_epoll_pwait2, poller->kernel_fd, events, EVENTER_POLLER_BATCH,
                             &timeout, NULL, (size_t)8);
        if (count < 0 && errno == ENOSYS) {
            __atomic_store_n(&have_pwait2, 0, __ATOMIC_RELAXED);
        } else if (known < 0) {
            __atomic_store_n(&have_pwait2, 1, __ATOMIC_RELAXED);
        }
        if (count < 0 && errno == ENOSYS)
            count = -2;
    } else {
        count = -2;
    }
    if (count == -2) {
        int timeout_ms;
        if (timeout_us == UINT64_MAX)
            timeout_ms = -1;
        else if (timeout_us > (uint64_t)3600 * 1000000)
            timeout_ms = 3600 * 1000;
        else
            timeout_ms = (int)((timeout_us + 999) / 1000);
#if defined(ARK_ASAN) || defined(ARK_TSAN)
        count = epoll_wait(poller->kernel_fd, events, EVENTER_POLLER_BATCH, timeout_ms);
#else
        /* Only loop threads wait here and they are never cancelled: the system call itself
         * skips glibc's cancellation-point marks (two atomic operations per wait). */
        count = (int)eventer_kernel_call6(SYS_epoll_pwait, poller->kernel_fd, (long)events,
                                          EVENTER_POLLER_BATCH, timeout_ms, 0, 8);
#endif
    }
    if (count <= 0)
        return 0;
    for (int i = 0; i < count; i++) {
        ready[i].fd = events[i].data.fd;
        ready[i].mask = from_epoll(events[i].events);
    }
    return count;
}
