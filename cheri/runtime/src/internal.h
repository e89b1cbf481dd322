/*
 * Private to the runtime (and its tests): the bounded byte codec, frame I/O,
 * HPKE step hooks and the evidence collector. Include first, before any system
 * header, so the feature-test macro below takes effect.
 */
#ifndef ATT_INTERNAL_H
#define ATT_INTERNAL_H

/* Linux/glibc hides POSIX (send, MSG_NOSIGNAL, poll) under -std=c11 without this.
 * FreeBSD exposes everything by default and would hide its own extensions
 * (procctl) if asked for plain POSIX, so leave it alone there. */
#if !defined(__FreeBSD__) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "attestables.h"

/* ---- Bounded writer: a fixed-capacity buffer that records overflow instead of
 * writing past the end; callers check .err once at the end. ---- */

struct att_wbuf {
    uint8_t *p;
    size_t cap;
    size_t len;
    int err;
};

static inline void att_wb_bytes(struct att_wbuf *w, const void *src, size_t n)
{
    if (w->err || n > w->cap - w->len) {
        w->err = 1;
        return;
    }
    if (n > 0)
        memcpy(w->p + w->len, src, n);
    w->len += n;
}

static inline void att_wb_u8(struct att_wbuf *w, uint8_t v)
{
    att_wb_bytes(w, &v, 1);
}

static inline void att_wb_u16(struct att_wbuf *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    att_wb_bytes(w, b, sizeof b);
}

static inline void att_wb_u32(struct att_wbuf *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    att_wb_bytes(w, b, sizeof b);
}

/* ---- Bounded reader over a received payload. A short read sets .err and yields
 * zeros / NULL, so a parser can read every field and check once. ---- */

struct att_rbuf {
    const uint8_t *p;
    size_t len;
    size_t off;
    int err;
};

static inline const uint8_t *att_rb_bytes(struct att_rbuf *r, size_t n)
{
    const uint8_t *q;
    if (r->err || n > r->len - r->off) {
        r->err = 1;
        return NULL;
    }
    q = r->p + r->off;
    r->off += n;
    return q;
}

static inline uint8_t att_rb_u8(struct att_rbuf *r)
{
    const uint8_t *q = att_rb_bytes(r, 1);
    return q ? q[0] : 0;
}

static inline uint16_t att_rb_u16(struct att_rbuf *r)
{
    const uint8_t *q = att_rb_bytes(r, 2);
    if (q == NULL)
        return 0;
    return (uint16_t)((unsigned)q[0] << 8 | q[1]);
}

static inline uint32_t att_rb_u32(struct att_rbuf *r)
{
    const uint8_t *q = att_rb_bytes(r, 4);
    if (q == NULL)
        return 0;
    return (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3];
}

/* True when every byte was consumed and nothing was short: trailing bytes are a
 * protocol violation. */
static inline int att_rb_done(const struct att_rbuf *r)
{
    return !r->err && r->off == r->len;
}

/* ---- Frames (channel.c) ---- */

#define ATT_FRAME_HEADER_LEN 5u /* u32 L + u8 type */

/* Allocates a buffer for exactly one frame of payload_len bytes and writes its header. */
int att_frame_begin(struct att_wbuf *w, uint8_t type, size_t payload_len);
/* Sends the frame if it was filled exactly; always frees the buffer. */
int att_frame_send(int fd, struct att_wbuf *w);
/* Frees an unsent frame (wiped: it may hold sealed data). */
void att_frame_discard(struct att_wbuf *w);
/* Reads one frame; *payload is heap memory (free with att_frame_free) even when
 * empty. Returns ATT_E_CLOSED on a clean end of stream between frames and
 * ATT_E_PROTOCOL on a bad length, an unknown type or a stream cut mid-frame. */
int att_frame_read(int fd, uint8_t *type, uint8_t **payload, size_t *payload_len);
void att_frame_free(uint8_t *payload, size_t payload_len);

/* Sends ERROR{request_id, code, message}; best effort for fatal reports. */
int att_send_error(int fd, uint32_t request_id, uint16_t code, const char *message);

/* 1 if s[0..len) is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF). */
int att_utf8_valid(const uint8_t *s, size_t len);

/* ---- HPKE steps (hpke.c), exposed so the RFC 9180 vectors can check each one ---- */

#define ATT_HPKE_KEY_LEN 32u
#define ATT_HPKE_NONCE_LEN 12u

/* Seal with the ephemeral key derived from ikm_e (DeriveKeyPair), as the RFC vectors
 * do. att_hpke_seal() is this with a fresh random ikm_e. */
int att_hpke_seal_derand(const uint8_t pk_r[ATT_X25519_LEN],
                         const uint8_t *ikm_e, size_t ikm_e_len,
                         const uint8_t *info, size_t info_len,
                         const uint8_t *aad, size_t aad_len,
                         const uint8_t *pt, size_t pt_len,
                         uint8_t *out, size_t out_cap, size_t *out_len);

/* The recipient's view of the key schedule: Decap + KeySchedule<Base>. */
int att_hpke_recipient_schedule(const uint8_t sk_r[ATT_X25519_LEN],
                                const uint8_t enc[ATT_HPKE_ENC_LEN],
                                const uint8_t *info, size_t info_len,
                                uint8_t shared_secret[32],
                                uint8_t key[ATT_HPKE_KEY_LEN],
                                uint8_t base_nonce[ATT_HPKE_NONCE_LEN]);

/* ComputeNonce(seq) and the AEAD alone, for the vectors' later sequence numbers. */
void att_hpke_nonce(const uint8_t base_nonce[ATT_HPKE_NONCE_LEN], uint64_t seq,
                    uint8_t nonce[ATT_HPKE_NONCE_LEN]);
int att_hpke_aead_seal(const uint8_t key[ATT_HPKE_KEY_LEN], const uint8_t nonce[ATT_HPKE_NONCE_LEN],
                       const uint8_t *aad, size_t aad_len, const uint8_t *pt, size_t pt_len,
                       uint8_t *ct, size_t ct_cap, size_t *ct_len);

/* ---- Runtime internals the evidence collector reads (runtime.c) ---- */

const void *att_key_material_ref(void);
const void *att_state_ref(void);

/* Fills up to max records with this process's capabilities; 0 off CHERI. */
size_t att_evidence_collect(struct att_cap_record *out, size_t max);

#endif /* ATT_INTERNAL_H */
