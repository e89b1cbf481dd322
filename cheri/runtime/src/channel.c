/*
 * Frame I/O on the compartment channel: u32 big-endian L, u8 type, L-1 payload bytes
 * (docs/compartment-protocol.md). Everything the launcher sends is length-checked
 * before a byte of payload is read or allocated.
 */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/crypto.h>

static int frame_type_known(uint8_t type)
{
    return type >= ATT_FRAME_HELLO && type <= ATT_FRAME_ERROR;
}

/* The launcher may hand over a non-blocking socket; wait instead of spinning. */
static int wait_fd(int fd, short events)
{
    struct pollfd p;
    p.fd = fd;
    p.events = events;
    p.revents = 0;
    for (;;) {
        int n = poll(&p, 1, -1);
        if (n > 0)
            return ATT_OK;
        if (n < 0 && errno != EINTR)
            return ATT_E_IO;
    }
}

/* Reads exactly n bytes unless the stream ends first; *got says how many arrived. */
static int read_full(int fd, uint8_t *buf, size_t n, size_t *got)
{
    size_t off = 0;
    while (off < n) {
        ssize_t r = read(fd, buf + off, n - off);
        if (r > 0) {
            off += (size_t)r;
        } else if (r == 0) {
            break;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (wait_fd(fd, POLLIN) != ATT_OK)
                return ATT_E_IO;
        } else {
            return ATT_E_IO;
        }
    }
    *got = off;
    return ATT_OK;
}

static int write_full(int fd, const uint8_t *buf, size_t n)
{
    size_t off = 0;
    int use_send = 1;
    while (off < n) {
        ssize_t r;
        /* MSG_NOSIGNAL: a launcher that went away must give an error return, not
         * kill the program with SIGPIPE. Plain write() only if fd is no socket. */
        if (use_send)
            r = send(fd, buf + off, n - off, MSG_NOSIGNAL);
        else
            r = write(fd, buf + off, n - off);
        if (r > 0) {
            off += (size_t)r;
        } else if (r < 0 && errno == EINTR) {
            continue;
        } else if (r < 0 && use_send && errno == ENOTSOCK) {
            use_send = 0;
        } else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_fd(fd, POLLOUT) != ATT_OK)
                return ATT_E_IO;
        } else if (r < 0 && (errno == EPIPE || errno == ECONNRESET)) {
            return ATT_E_CLOSED;
        } else {
            return ATT_E_IO;
        }
    }
    return ATT_OK;
}

int att_frame_begin(struct att_wbuf *w, uint8_t type, size_t payload_len)
{
    w->p = NULL;
    w->cap = w->len = 0;
    w->err = 1;
    if (!frame_type_known(type) || payload_len > ATT_MAX_FRAME - 1u)
        return ATT_E_SPACE;
    w->p = malloc(ATT_FRAME_HEADER_LEN + payload_len);
    if (w->p == NULL)
        return ATT_E_NOMEM;
    w->cap = ATT_FRAME_HEADER_LEN + payload_len;
    w->err = 0;
    att_wb_u32(w, (uint32_t)(payload_len + 1u));
    att_wb_u8(w, type);
    return ATT_OK;
}

int att_frame_send(int fd, struct att_wbuf *w)
{
    int rc;
    /* A frame that was not filled to the byte means its size computation and its
     * encoder disagree: never put such a frame on the wire. */
    if (w->p == NULL || w->err || w->len != w->cap)
        rc = ATT_E_SPACE;
    else
        rc = write_full(fd, w->p, w->len);
    att_frame_discard(w);
    return rc;
}

void att_frame_discard(struct att_wbuf *w)
{
    if (w->p != NULL) {
        OPENSSL_cleanse(w->p, w->cap);
        free(w->p);
    }
    w->p = NULL;
    w->cap = w->len = 0;
    w->err = 1;
}

int att_frame_read(int fd, uint8_t *type, uint8_t **payload, size_t *payload_len)
{
    uint8_t head[ATT_FRAME_HEADER_LEN];
    uint32_t frame_len;
    size_t got = 0, n;
    uint8_t *buf;
    int rc;

    *payload = NULL;
    *payload_len = 0;
    rc = read_full(fd, head, 4, &got);
    if (rc != ATT_OK)
        return rc;
    if (got == 0)
        return ATT_E_CLOSED;
    if (got < 4)
        return ATT_E_PROTOCOL;
    frame_len = ((uint32_t)head[0] << 24) | ((uint32_t)head[1] << 16) | ((uint32_t)head[2] << 8) | head[3];
    if (frame_len == 0 || frame_len > ATT_MAX_FRAME)
        return ATT_E_PROTOCOL;
    rc = read_full(fd, head + 4, 1, &got);
    if (rc != ATT_OK)
        return rc;
    if (got != 1 || !frame_type_known(head[4]))
        return ATT_E_PROTOCOL;

    n = (size_t)frame_len - 1u;
    buf = malloc(n > 0 ? n : 1); /* never malloc(0): its result may be NULL */
    if (buf == NULL)
        return ATT_E_NOMEM;
    rc = read_full(fd, buf, n, &got);
    if (rc == ATT_OK && got != n)
        rc = ATT_E_PROTOCOL;
    if (rc != ATT_OK) {
        att_frame_free(buf, n);
        return rc;
    }
    *type = head[4];
    *payload = buf;
    *payload_len = n;
    return ATT_OK;
}

void att_frame_free(uint8_t *payload, size_t payload_len)
{
    if (payload == NULL)
        return;
    OPENSSL_cleanse(payload, payload_len);
    free(payload);
}

int att_send_error(int fd, uint32_t request_id, uint16_t code, const char *message)
{
    struct att_wbuf w;
    size_t mlen = message ? strlen(message) : 0;
    int rc;

    if (mlen > ATT_MAX_ERROR_MESSAGE || !att_utf8_valid((const uint8_t *)message, mlen))
        return ATT_E_ARG;
    rc = att_frame_begin(&w, ATT_FRAME_ERROR, 4u + 2u + 4u + mlen);
    if (rc != ATT_OK)
        return rc;
    att_wb_u32(&w, request_id);
    att_wb_u16(&w, code);
    att_wb_u32(&w, (uint32_t)mlen);
    att_wb_bytes(&w, message, mlen);
    return att_frame_send(fd, &w);
}

int att_utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the first continuation byte */
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0)
                lo = 0xA0; /* no overlongs */
            else if (c == 0xED)
                hi = 0x9F; /* no surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0)
                lo = 0x90; /* no overlongs */
            else if (c == 0xF4)
                hi = 0x8F; /* nothing above U+10FFFF */
        } else {
            return 0;
        }
        if (need > len - i - 1)
            return 0;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (size_t k = 2; k <= need; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF)
                return 0;
        i += need + 1;
    }
    return 1;
}
