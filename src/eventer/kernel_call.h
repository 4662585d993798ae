/*
 * System calls made in line, for the eventer's per-message paths (eventer_fd.c,
 * poller_epoll.c). Private to the eventer.
 *
 * syscall() and glibc's wrappers are out-of-line calls: the caller spills its live values
 * around them, about twenty instructions per call on the echo path. The inline forms clobber
 * only what the kernel's calling convention does. They are not cancellation points.
 *
 *   long eventer_kernel_call3(long number, long a, long b, long c)
 *   long eventer_kernel_call6(long number, long a, long b, long c, long d, long e, long f)
 *
 * return what the system call returns, or -1 with errno set (as syscall() does). Any thread.
 * On CPUs without an inline form here they are syscall() itself.
 */
#ifndef ARK_EVENTER_KERNEL_CALL_H
#define ARK_EVENTER_KERNEL_CALL_H

#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__aarch64__)

/* The kernel returns -4095..-1 for an error (-errno), anything else for success. */
static inline long eventer_kernel_result(long raw)
{
    if (__builtin_expect((unsigned long)raw > (unsigned long)-4096L, 0)) {
        errno = (int)-raw;
        return -1;
    }
    return raw;
}

#if defined(__x86_64__)

static inline long eventer_kernel_call6(long number, long a, long b, long c, long d, long e, long f)
{
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    long raw;
    __asm__ volatile("syscall"
                     : "=a"(raw)
                     : "0"(number), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return eventer_kernel_result(raw);
}

#else /* __aarch64__ */

static inline long eventer_kernel_call6(long number, long a, long b, long c, long d, long e, long f)
{
    register long x8 __asm__("x8") = number;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    register long x5 __asm__("x5") = f;
    __asm__ volatile("svc #0"
                     : "+r"(x0)
                     : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                     : "memory");
    return eventer_kernel_result(x0);
}

#endif

#else /* another CPU: the library's generic entry */

static inline long eventer_kernel_call6(long number, long a, long b, long c, long d, long e, long f)
{
    return syscall(number, a, b, c, d, e, f);
}

#endif

static inline long eventer_kernel_call3(long number, long a, long b, long c)
{
    return eventer_kernel_call6(number, a, b, c, 0, 0, 0);
}

#endif
