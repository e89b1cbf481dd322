/*
 * The run-certificate benchmark's compartment program: speaks HELLO itself and times
 * the launcher's answer. The X25519 key is made before the clock starts; the clock
 * (CLOCK_MONOTONIC) starts just before HELLO is written to fd 3 and stops when the
 * whole CERT frame has been read. Prints "cert_us <microseconds>", then reads the
 * SERVICE_KEYS frame that follows (untimed) and exits.
 *
 * Usage: cert_timer [SETTLE_MS]. With SETTLE_MS, HELLO is sent that long after the
 * program starts, once the launcher has finished starting the run and reads the
 * channel: the time is then the launcher's HELLO received -> CERT sent (plus two socket
 * transits). Without it HELLO goes at once, as att_runtime_init() sends it, and the time
 * also holds whatever the launcher still does for the run's start before it reads HELLO.
 *
 * Raw frames, not att_runtime_init(): the runtime also makes the key, builds the
 * evidence and waits for SERVICE_KEYS, none of which is the launcher's issuance.
 * Frame: u32 big-endian L (type byte + payload), u8 type, payload
 * (docs/compartment-protocol.md). HELLO payload: u16 version, u16 32, key, u32 len, evidence.
 */
#if !defined(__FreeBSD__) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#define FD 3
#define FRAME_CERT 2

static int put(const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(FD, p, n);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int get(unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t r = read(FD, p, n);
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* One whole frame into a heap buffer; its type, or -1. */
static int frame(unsigned char **payload, uint32_t *len)
{
    unsigned char head[4];
    if (get(head, 4) != 0)
        return -1;
    *len = (uint32_t)head[0] << 24 | (uint32_t)head[1] << 16 | (uint32_t)head[2] << 8 | head[3];
    if (*len < 1 || *len > (1u << 20))
        return -1;
    *payload = malloc(*len);
    if (*payload == NULL || get(*payload, *len) != 0)
        return -1;
    return (*payload)[0];
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    static const char evidence[] = "{\"cheri\":false,\"capabilities\":null,\"abi\":\"native\"}";
    unsigned char hello[4 + 1 + 2 + 2 + 32 + 4 + sizeof evidence];
    unsigned char pk[32], *payload = NULL;
    size_t pk_len = sizeof pk;
    uint32_t elen = (uint32_t)strlen(evidence), len, n = 0;
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_X25519, NULL);

    if (ctx == NULL || EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_keygen(ctx, &key) != 1 ||
        EVP_PKEY_get_raw_public_key(key, pk, &pk_len) != 1 || pk_len != 32) {
        fprintf(stderr, "cert_timer: key generation failed\n");
        return 1;
    }
    len = 1 + 2 + 2 + 32 + 4 + elen;
    hello[n++] = (unsigned char)(len >> 24);
    hello[n++] = (unsigned char)(len >> 16);
    hello[n++] = (unsigned char)(len >> 8);
    hello[n++] = (unsigned char)len;
    hello[n++] = 1;          /* HELLO */
    hello[n++] = 0;          /* version 1 */
    hello[n++] = 1;
    hello[n++] = 0;          /* key length 32 */
    hello[n++] = 32;
    memcpy(hello + n, pk, 32);
    n += 32;
    hello[n++] = (unsigned char)(elen >> 24);
    hello[n++] = (unsigned char)(elen >> 16);
    hello[n++] = (unsigned char)(elen >> 8);
    hello[n++] = (unsigned char)elen;
    memcpy(hello + n, evidence, elen);
    n += elen;

    long settle_ms = argc > 1 ? strtol(argv[1], NULL, 10) : 0;
    if (settle_ms > 0) {
        struct timespec pause = {settle_ms / 1000, (settle_ms % 1000) * 1000000L};
        nanosleep(&pause, NULL);
    }
    int64_t t0 = now_ns();
    if (put(hello, n) != 0) {
        fprintf(stderr, "cert_timer: cannot write HELLO\n");
        return 2;
    }
    int type = frame(&payload, &len);
    int64_t t1 = now_ns();
    if (type != FRAME_CERT) {
        fprintf(stderr, "cert_timer: expected CERT, got frame type %d\n", type);
        return 3;
    }
    printf("cert_us %.3f\ncert_frame_bytes %u\n", (double)(t1 - t0) / 1000.0, len);
    free(payload);
    payload = NULL;
    type = frame(&payload, &len); /* SERVICE_KEYS: read so the launcher's write completes */
    free(payload);
    EVP_PKEY_free(key);
    EVP_PKEY_CTX_free(ctx);
    return type == 3 ? 0 : 4;
}
