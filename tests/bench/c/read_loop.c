/*
 * The attested-read benchmark's compartment program: the handshake, then reads of one
 * sale from the store through the launcher, each timed with CLOCK_MONOTONIC.
 *
 * Usage: read_loop N [WARMUP [START_AT_NS]]. WARMUP reads (default 3) are made first and
 * not printed: the launcher's first connection to the store and the store's first
 * appraisal of this run's certificate. The timed loop then waits until the monotonic
 * clock reaches START_AT_NS (if given), so that concurrent runs read together. Printed
 * after the loop: "loop_start NS", "loop_cpu_ns NS" (the CPU time the loop used), then
 * for each of N reads "read END_NS DURATION_NS", END_NS being the monotonic clock when
 * the answer was open (CLOCK_MONOTONIC is one clock for every process on the host: the
 * sandbox has no time namespace), and "reads N".
 *
 * A read is one att_read("store", {"after_id":0,"limit":1}): seal the query to the
 * store, READ frame to the launcher, the launcher's HTTPS POST to the store, the store's
 * verification and answer sealed to this run's key, RESULT frame back, open it.
 */
#if !defined(__FreeBSD__) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attestables.h"
#include "wait_until.h"

static const char QUERY[] = "{\"after_id\":0,\"limit\":1}";

static int contains(const uint8_t *p, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; k <= n && i <= n - k; i++)
        if (memcmp(p + i, needle, k) == 0)
            return 1;
    return 0;
}

static int read_one(void)
{
    uint8_t *answer = NULL;
    size_t len = 0;
    int rc = att_read("store", (const uint8_t *)QUERY, sizeof QUERY - 1, &answer, &len);
    if (rc != ATT_OK) {
        const char *why = att_error_detail();
        fprintf(stderr, "read_loop: att_read failed: %s%s%s\n", att_strerror(rc), why[0] ? ": " : "", why);
        return 1;
    }
    /* One sale, id 1: the answer is the record, not an empty page or an error. */
    int ok = answer != NULL && len > 0 && contains(answer, len, "\"id\":1,");
    att_free(answer, len);
    if (!ok) {
        fprintf(stderr, "read_loop: the store's answer does not hold sale 1\n");
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 100;
    long warmup = argc > 2 ? strtol(argv[2], NULL, 10) : 3;
    int64_t start_at = argc > 3 ? (int64_t)strtoll(argv[3], NULL, 10) : 0;
    int rc = att_runtime_init();
    if (rc != ATT_OK) {
        const char *why = att_error_detail();
        fprintf(stderr, "read_loop: handshake failed: %s%s%s\n", att_strerror(rc), why[0] ? ": " : "", why);
        return 1;
    }
    for (long i = 0; i < warmup; i++)
        if (read_one() != 0)
            return 1;
    int64_t *end = malloc(sizeof *end * (size_t)(n > 0 ? n : 1));
    int64_t *took = malloc(sizeof *took * (size_t)(n > 0 ? n : 1));
    if (end == NULL || took == NULL)
        return 1;
    int64_t loop_start = wait_until(start_at);
    int64_t cpu_start = cpu_ns();
    for (long i = 0; i < n; i++) {
        int64_t t0 = now_ns();
        if (read_one() != 0)
            return 1;
        end[i] = now_ns();
        took[i] = end[i] - t0;
    }
    int64_t cpu_end = cpu_ns();
    /* Printed after the loop: the output pipe is not part of what is timed. */
    printf("loop_start %lld\nloop_cpu_ns %lld\n", (long long)loop_start, (long long)(cpu_end - cpu_start));
    for (long i = 0; i < n; i++)
        printf("read %lld %lld\n", (long long)end[i], (long long)took[i]);
    printf("reads %ld\n", n);
    free(end);
    free(took);
    att_runtime_shutdown();
    return 0;
}
