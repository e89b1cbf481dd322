/*
 * The HPKE benchmark's C side: the runtime's own att_hpke_seal and att_hpke_open
 * (cheri/runtime/src/hpke.c) on one message, timed with CLOCK_MONOTONIC.
 *
 * Usage: hpke_driver SIZE K. Seals SIZE bytes to a recipient key and opens them again,
 * K times, with the protocol's info (a request to "store" under a 16-hex-digit serial)
 * and empty aad, as att_read does. Each opened message is checked. Prints
 * "seal_open_ns X", "seal_ns Y" and "open_ns Z": the mean per operation over K, after
 * one untimed round (OpenSSL's lazy initialisation).
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

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    size_t size = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 1024;
    long k = argc > 2 ? strtol(argv[2], NULL, 10) : 1000;
    uint8_t ikm[32], sk[ATT_X25519_LEN], pk[ATT_X25519_LEN], nonce[ATT_NONCE_LEN];
    uint8_t info[ATT_INFO_MAX];
    size_t info_len = 0, sealed_len = 0, opened_len = 0;
    uint8_t *pt = malloc(size + 1), *sealed = malloc(size + ATT_HPKE_OVERHEAD), *opened = malloc(size + 1);

    if (pt == NULL || sealed == NULL || opened == NULL || k < 1)
        return 2;
    for (size_t i = 0; i < sizeof ikm; i++)
        ikm[i] = (uint8_t)(i * 7 + 1);
    for (size_t i = 0; i < sizeof nonce; i++)
        nonce[i] = (uint8_t)(i * 13 + 5);
    for (size_t i = 0; i < size; i++)
        pt[i] = (uint8_t)('a' + i % 26);
    if (att_hpke_derive_keypair(ikm, sizeof ikm, sk, pk) != ATT_OK ||
        att_info_build(ATT_DIRECTION_REQUEST, "store", "3a5f0c9e11d2b7a4", nonce, info, sizeof info, &info_len) != ATT_OK)
        return 3;

#define SEAL() att_hpke_seal(pk, info, info_len, NULL, 0, pt, size, sealed, size + ATT_HPKE_OVERHEAD, &sealed_len)
#define OPEN() att_hpke_open(sk, info, info_len, NULL, 0, sealed, sealed_len, opened, size + 1, &opened_len)
    if (SEAL() != ATT_OK || OPEN() != ATT_OK || opened_len != size || memcmp(opened, pt, size) != 0) {
        fprintf(stderr, "hpke_driver: the warm-up round failed\n");
        return 4;
    }
    int64_t t0 = now_ns();
    for (long i = 0; i < k; i++) {
        if (SEAL() != ATT_OK || OPEN() != ATT_OK || opened_len != size) {
            fprintf(stderr, "hpke_driver: round %ld failed\n", i);
            return 5;
        }
    }
    int64_t t1 = now_ns();
    for (long i = 0; i < k; i++)
        if (SEAL() != ATT_OK)
            return 5;
    int64_t t2 = now_ns();
    for (long i = 0; i < k; i++)
        if (OPEN() != ATT_OK)
            return 5;
    int64_t t3 = now_ns();
    if (memcmp(opened, pt, size) != 0)
        return 6;
    printf("seal_open_ns %.1f\nseal_ns %.1f\nopen_ns %.1f\n", (double)(t1 - t0) / (double)k,
           (double)(t2 - t1) / (double)k, (double)(t3 - t2) / (double)k);
    free(pt);
    free(sealed);
    free(opened);
    return 0;
}
