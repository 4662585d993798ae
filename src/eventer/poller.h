/*
 * The poller: the one piece of the eventer that talks to the kernel's readiness interface.
 * One poller per loop thread. add/modify/remove may be called from any thread (the backend
 * must allow that: epoll does); wait only from the owning loop thread.
 */
#ifndef ARK_EVENTER_POLLER_H
#define ARK_EVENTER_POLLER_H

#include <stdint.h>

/* Ready descriptors reported by one wait, at most this many. */
#define EVENTER_POLLER_BATCH 256

struct eventer_poller_ready {
    int fd;
    int mask; /* EVENTER_READ | EVENTER_WRITE | EVENTER_EXCEPTION */
};

struct eventer_poller {
    int kernel_fd;
    void *scratch; /* backend's event buffer */
};

/* Returns 0, or -1 and errno. */
int eventer_poller_create(struct eventer_poller *poller);
void eventer_poller_destroy(struct eventer_poller *poller);
/* Interest in `mask` on `fd`. Return 0, or -1 and errno. */
int eventer_poller_add(struct eventer_poller *poller, int fd, int mask);
int eventer_poller_modify(struct eventer_poller *poller, int fd, int mask);
int eventer_poller_remove(struct eventer_poller *poller, int fd);
/*
 * Waits at most `timeout_us` microseconds (UINT64_MAX = forever, rounded up to the backend's
 * resolution) and fills `ready` (capacity EVENTER_POLLER_BATCH). Returns the count (0 on
 * timeout or EINTR).
 */
int eventer_poller_wait(struct eventer_poller *poller, struct eventer_poller_ready *ready,
                        uint64_t timeout_us);

#endif
