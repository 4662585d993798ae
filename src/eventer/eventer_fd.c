/*
 * The POSIX fd opset (plain system calls on non-blocking descriptors) and the eventer_read/
 * write/accept/close entry points that dispatch through an event's opset.
 */
#include "eventer/eventer_internal.h"
#include "eventer/kernel_call.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/*
 * Two savings on every read and write of the POSIX opset, both measured on loopback TCP
 * with 64-byte messages (a socket pair ping-pong in one thread, 80 interleaved rounds):
 *
 *  - Sockets are read and written with recv() and send(), which skip the VFS layer that
 *    read() and write() go through (3% of the CPU of each call). A descriptor that turns
 *    out not to be a socket (ENOTSOCK, once per event) is marked and uses read() and write().
 *    On a socket the two pairs do the same thing, SIGPIPE included.
 *  - On a loop thread the system call is made in line (kernel_call.h): glibc's wrappers are
 *    cancellation points and mark the thread around each call with two atomic operations
 *    (about 50 instructions, 4% of the CPU of each call). Loop threads are never cancelled
 *    and their descriptors are non-blocking, so the marks buy nothing there. Job threads
 *    keep the wrappers (deferred cancellation of a job in WORK acts at them), and so do
 *    sanitizer builds, whose interceptors check the buffers and model the synchronisation
 *    a descriptor carries between threads.
 */
#if defined(ARK_ASAN) || defined(ARK_TSAN)
#define LOOP_THREADS_CALL_THE_KERNEL 0
#else
#define LOOP_THREADS_CALL_THE_KERNEL 1
#endif

/* Values of an event's `descriptor_kind`. */
enum { DESCRIPTOR_MAYBE_SOCKET = 0, DESCRIPTOR_NOT_SOCKET = 1 };

static inline int direct(void)
{
    return LOOP_THREADS_CALL_THE_KERNEL && eventer_impl_this_loop;
}

/* Whether to try the socket calls first for e (NULL: an opset call without its event). */
static inline int maybe_socket(eventer_t e)
{
    return e && __atomic_load_n(&e->descriptor_kind, __ATOMIC_RELAXED) == DESCRIPTOR_MAYBE_SOCKET;
}

static inline int not_a_socket(eventer_t e, int result)
{
    if (result >= 0 || errno != ENOTSOCK)
        return 0;
    __atomic_store_n(&e->descriptor_kind, DESCRIPTOR_NOT_SOCKET, __ATOMIC_RELAXED);
    return 1;
}

static inline int posix_read_event(eventer_t e, int fd, void *buffer, size_t length)
{
    if (maybe_socket(e)) {
        int got = direct() ? (int)eventer_kernel_call6(SYS_recvfrom, fd, (long)buffer, (long)length,
                                                       0, 0, 0)
                           : (int)recv(fd, buffer, length, 0);
        if (!not_a_socket(e, got))
            return got;
    }
    return direct() ? (int)eventer_kernel_call3(SYS_read, fd, (long)buffer, (long)length)
                    : (int)read(fd, buffer, length);
}

static inline int posix_write_event(eventer_t e, int fd, const void *buffer, size_t length)
{
    if (maybe_socket(e)) {
        int wrote = direct() ? (int)eventer_kernel_call6(SYS_sendto, fd, (long)buffer, (long)length,
                                                         0, 0, 0)
                             : (int)send(fd, buffer, length, 0);
        if (!not_a_socket(e, wrote))
            return wrote;
    }
    return direct() ? (int)eventer_kernel_call3(SYS_write, fd, (long)buffer, (long)length)
                    : (int)write(fd, buffer, length);
}

static int posix_accept(int fd, struct sockaddr *address, socklen_t *length, int *mask,
                        void *closure)
{
    (void)closure;
    *mask = EVENTER_READ | EVENTER_EXCEPTION;
    return accept4(fd, address, length, SOCK_CLOEXEC);
}

static int posix_read(int fd, void *buffer, size_t length, int *mask, void *closure)
{
    *mask = EVENTER_READ | EVENTER_EXCEPTION;
    return posix_read_event(closure, fd, buffer, length);
}

static int posix_write(int fd, const void *buffer, size_t length, int *mask, void *closure)
{
    *mask = EVENTER_WRITE | EVENTER_EXCEPTION;
    return posix_write_event(closure, fd, buffer, length);
}

static int posix_close(int fd, int *mask, void *closure)
{
    eventer_t e = closure;
    *mask = 0;
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    /* Unregister first, or a reused descriptor number would find this event. */
    if (e && eventer_find_fd(fd) == e)
        eventer_remove_fd(fd);
    if (e)
        e->fd = -1;
    return close(fd);
}

static int generic_set_opset(void *closure, eventer_fd_opset_t opset)
{
    ((eventer_t)closure)->opset = opset;
    return 0;
}

void *eventer_impl_get_opset_ctx(void *closure)
{
    return ((eventer_t)closure)->opset_ctx;
}

void eventer_impl_set_opset_ctx(void *closure, void *context)
{
    ((eventer_t)closure)->opset_ctx = context;
}

static struct _fd_opset posix_opset = {
    .accept = posix_accept,
    .read = posix_read,
    .write = posix_write,
    .close = posix_close,
    .set_opset = generic_set_opset,
    .get_opset_ctx = eventer_impl_get_opset_ctx,
    .set_opset_ctx = eventer_impl_set_opset_ctx,
    .name = "POSIX",
};

eventer_fd_opset_t eventer_POSIX_fd_opset = &posix_opset;

/* Inside a co a classic event cannot wait for its descriptor: report the misuse. */
static inline void check_not_classic_in_co(const char *call, eventer_t e)
{
    if (mtev_unlikely(eventer_impl_aco_running != NULL) && !(e->flags & EVENT_FLAG_ACO))
        eventer_impl_aco_classic_misuse(call, e);
}

int eventer_read(eventer_t e, void *buffer, size_t length, int *mask)
{
    check_not_classic_in_co("eventer_read", e);
    /* The POSIX opset without its indirect call: the common case on every read. */
    if (e->opset == &posix_opset) {
        if (mask)
            *mask = EVENTER_READ | EVENTER_EXCEPTION;
        return posix_read_event(e, e->fd, buffer, length);
    }
    int ignored;
    return e->opset->read(e->fd, buffer, length, mask ? mask : &ignored, e);
}

int eventer_write(eventer_t e, const void *buffer, size_t length, int *mask)
{
    check_not_classic_in_co("eventer_write", e);
    if (e->opset == &posix_opset) {
        if (mask)
            *mask = EVENTER_WRITE | EVENTER_EXCEPTION;
        return posix_write_event(e, e->fd, buffer, length);
    }
    int ignored;
    return e->opset->write(e->fd, buffer, length, mask ? mask : &ignored, e);
}

int eventer_accept(eventer_t e, struct sockaddr *address, socklen_t *length, int *mask)
{
    check_not_classic_in_co("eventer_accept", e);
    int ignored;
    return e->opset->accept(e->fd, address, length, mask ? mask : &ignored, e);
}

int eventer_close(eventer_t e, int *mask)
{
    check_not_classic_in_co("eventer_close", e);
    int ignored;
    return e->opset->close(e->fd, mask ? mask : &ignored, e);
}

static int set_blocking_mode(int fd, int nonblocking)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0)
        return -1;
    int wanted = nonblocking ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
    if (wanted == flags)
        return 0;
    return fcntl(fd, F_SETFL, wanted) < 0 ? -1 : 0;
}

int eventer_set_fd_nonblocking(int fd)
{
    return set_blocking_mode(fd, 1);
}

int eventer_set_fd_blocking(int fd)
{
    return set_blocking_mode(fd, 0);
}
