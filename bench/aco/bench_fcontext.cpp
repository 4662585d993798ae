// The peer: Boost.Context's low-level fcontext switch, timed like bench_aco.c times ACO.
#include <boost/context/detail/fcontext.hpp>

#include <cstdlib>
#include <ctime>

namespace fcontext = boost::context::detail;

extern "C" double bench_fcontext_round_trip_ns(long round_trips);

namespace
{

void ping_back(fcontext::transfer_t from)
{
    fcontext::fcontext_t caller = from.fctx;
    for (;;)
        caller = fcontext::jump_fcontext(caller, nullptr).fctx;
}

double now_ns()
{
    timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec * 1e9 + now.tv_nsec;
}

} // namespace

// Nanoseconds per round trip (caller -> context -> caller) over `round_trips`.
extern "C" double bench_fcontext_round_trip_ns(long round_trips)
{
    const std::size_t stack_size = 64 << 10;
    char *stack = static_cast<char *>(std::malloc(stack_size));
    fcontext::fcontext_t context =
        fcontext::make_fcontext(stack + stack_size, stack_size, ping_back);
    context = fcontext::jump_fcontext(context, nullptr).fctx;
    for (long i = 0; i < 1000; i++)
        context = fcontext::jump_fcontext(context, nullptr).fctx;
    double start = now_ns();
    for (long i = 0; i < round_trips; i++)
        context = fcontext::jump_fcontext(context, nullptr).fctx;
    double elapsed = now_ns() - start;
    std::free(stack); // the context is parked for good: nothing runs on it again
    return elapsed / round_trips;
}
