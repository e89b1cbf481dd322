/*
 * The channel fuzzer's compartment program: writes bytes chosen by the test to fd 3 and
 * reports, in hex, every frame the launcher sends back.
 *
 * Usage: chan_relay MODE SEGMENT...
 *   MODE     "hello": complete the handshake first (att_runtime_init: HELLO, CERT,
 *            SERVICE_KEYS), then send the segments; "raw": send them straight away.
 *   SEGMENT  "N:HEX": write the bytes HEX to fd 3 in one go, then wait (at most 5 s)
 *            until N whole frames have come back. "N:HEX:close" also shuts down the
 *            write side of fd 3 after writing.
 * After the last segment it reads whatever else arrives until the launcher closes the
 * channel or 0.3 s pass without a byte. Every frame received is printed as
 * "reply TYPE HEX-PAYLOAD", then "done". A frame whose length is 0 or above the limit
 * is printed as "badreply"; the launcher must never send one. Exit status 0, or 2 for
 * bad arguments, 3 when the handshake fails.
 */
#if !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "attestables.h"

#define FD 3

static uint8_t inbuf[ATT_MAX_FRAME + 8];
static size_t inlen;
static unsigned long frames_seen;

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Print every whole frame buffered; return how many. */
static unsigned long drain_frames(void)
{
    unsigned long n = 0;
    size_t pos = 0;
    while (inlen - pos >= 5) {
        uint32_t len = ((uint32_t)inbuf[pos] << 24) | ((uint32_t)inbuf[pos + 1] << 16) |
                       ((uint32_t)inbuf[pos + 2] << 8) | inbuf[pos + 3];
        if (len == 0 || len > ATT_MAX_FRAME) {
            printf("badreply %u\n", len);
            fflush(stdout);
            exit(4);
        }
        if (inlen - pos < 4 + (size_t)len)
            break;
        printf("reply %u ", inbuf[pos + 4]);
        for (uint32_t i = 1; i < len; i++)
            printf("%02x", inbuf[pos + 4 + i]);
        printf("\n");
        pos += 4 + len;
        n++;
    }
    memmove(inbuf, inbuf + pos, inlen - pos);
    inlen -= pos;
    fflush(stdout);
    return n;
}

/* Read until `want` more frames arrived, the channel closed, or `idle_ms` of silence. */
static int read_frames(unsigned long want, int idle_ms)
{
    unsigned long got = 0;
    for (;;) {
        if (want && got >= want)
            return 0;
        struct pollfd p = {.fd = FD, .events = POLLIN};
        int r = poll(&p, 1, idle_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        ssize_t n = read(FD, inbuf + inlen, sizeof inbuf - inlen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1; /* closed */
        inlen += (size_t)n;
        got += drain_frames();
        frames_seen += got;
    }
}

static int put(const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = send(FD, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    if (strcmp(argv[1], "hello") == 0) {
        int rc = att_runtime_init();
        if (rc != ATT_OK) {
            printf("handshake %s\n", att_strerror(rc));
            return 3;
        }
        printf("handshake ok\n");
    } else if (strcmp(argv[1], "raw") != 0) {
        return 2;
    }
    fflush(stdout);
    static uint8_t out[8192];
    for (int i = 2; i < argc; i++) {
        char *colon = strchr(argv[i], ':');
        if (colon == NULL)
            return 2;
        unsigned long want = strtoul(argv[i], NULL, 10);
        const char *hex = colon + 1;
        const char *end = strchr(hex, ':');
        size_t hexlen = end ? (size_t)(end - hex) : strlen(hex);
        if (hexlen % 2 || hexlen / 2 > sizeof out)
            return 2;
        for (size_t k = 0; k < hexlen / 2; k++) {
            int hi = hexval(hex[2 * k]), lo = hexval(hex[2 * k + 1]);
            if (hi < 0 || lo < 0)
                return 2;
            out[k] = (uint8_t)(hi << 4 | lo);
        }
        if (put(out, hexlen / 2) != 0) {
            printf("write failed at segment %d: %s\n", i - 1, strerror(errno));
            break;
        }
        if (end && strcmp(end, ":close") == 0)
            shutdown(FD, SHUT_WR);
        if (want && read_frames(want, 5000) != 0) {
            printf("short at segment %d\n", i - 1);
            break;
        }
    }
    read_frames(0, 300);
    printf("done\n");
    return 0;
}
