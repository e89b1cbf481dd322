/* The monotonic clock, a wait for a moment on it, and the process's CPU time: the read
 * benchmarks' programs (read_loop.c in a compartment, https_get.c on the host) start
 * their timed loops together at a moment the benchmark chose. Header-only: a compartment
 * program is one uploaded file, so the benchmark pastes this in place of the #include. */
#ifndef BENCH_WAIT_UNTIL_H
#define BENCH_WAIT_UNTIL_H

#include <stdint.h>
#include <time.h>

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CPU time this process has used (user + system). */
static int64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Sleeps until the clock reads at least at_ns (0: no wait); the clock then. */
static int64_t wait_until(int64_t at_ns)
{
    int64_t now = now_ns();
    if (at_ns > now) {
        struct timespec ts = {(time_t)(at_ns / 1000000000), (long)(at_ns % 1000000000)};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {
        }
        now = now_ns();
    }
    return now;
}

#endif
