/*
 * attestables compartment runtime.
 *
 * Linked into every program the launcher builds. It owns the program's side of the
 * compartment channel (docs/compartment-protocol.md): at start it makes an X25519
 * key pair that never leaves the process, announces the public half with capability
 * evidence, receives the run certificate and the services' public keys, and then
 * carries HPKE-sealed requests to services through the launcher, which never sees
 * plaintext.
 *
 * Conventions: every int-returning function returns ATT_OK (0) or a negative ATT_E_*
 * code (att_strerror() names it). Lengths are size_t and always checked against the
 * output capacity the caller passes. Not thread-safe: one thread owns the channel.
 */
#ifndef ATTESTABLES_H
#define ATTESTABLES_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Wire constants (docs/compartment-protocol.md; shared/channel.py mirrors them) ---- */

#define ATT_PROTOCOL_VERSION 1u
#define ATT_FD_ENV "ATTESTABLES_FD" /* channel fd number; 3 when unset */
#define ATT_DEFAULT_FD 3
#define ATT_MAX_FRAME 1048576u /* largest L: the type byte plus the payload */
#define ATT_X25519_LEN 32u
#define ATT_NONCE_LEN 16u
#define ATT_SERVICE_ID_MAX 64u
#define ATT_SERIAL_MAX 40u /* RFC 5280: at most 20 octets, i.e. 40 hex digits */
#define ATT_MAX_SERVICES 64u
#define ATT_MAX_CERT 65536u
#define ATT_MAX_CHAIN 65536u
#define ATT_MAX_EVIDENCE 65536u
#define ATT_MAX_ERROR_MESSAGE 4096u

enum att_frame_type {
    ATT_FRAME_HELLO = 1,
    ATT_FRAME_CERT = 2,
    ATT_FRAME_SERVICE_KEYS = 3,
    ATT_FRAME_READ = 4,
    ATT_FRAME_WRITE = 5,
    ATT_FRAME_RESULT = 6,
    ATT_FRAME_ERROR = 7
};

/* RESULT status: what the service said. */
enum att_result_status {
    ATT_STATUS_OK = 0,
    ATT_STATUS_DENIED = 1, /* the service's verifier refused the certificate or policy */
    ATT_STATUS_FAILED = 2  /* the service could not carry out the request */
};

/* ERROR code: what went wrong on the channel or in the launcher. */
enum att_error_code {
    ATT_ERROR_PROTOCOL_VIOLATION = 1,
    ATT_ERROR_UNKNOWN_SERVICE = 2,
    ATT_ERROR_SERVICE_UNAVAILABLE = 3,
    ATT_ERROR_LIMIT_EXCEEDED = 4,
    ATT_ERROR_INTERNAL = 5,
    ATT_ERROR_ABORTED = 6
};

/* ---- Return codes ---- */

#define ATT_OK 0
#define ATT_E_ARG (-1)      /* invalid argument from the caller */
#define ATT_E_IO (-2)       /* read/write on the channel failed */
#define ATT_E_CLOSED (-3)   /* the launcher closed the channel */
#define ATT_E_PROTOCOL (-4) /* the launcher broke the protocol; the channel is dead */
#define ATT_E_CRYPTO (-5)   /* a cryptographic operation failed, incl. a sealed message that does not open */
#define ATT_E_NOMEM (-6)
#define ATT_E_STATE (-7)     /* wrong state: not initialised, initialised twice, or channel dead */
#define ATT_E_NOT_FOUND (-8) /* no such service */
#define ATT_E_SPACE (-9)     /* output buffer too small, or a wire limit exceeded */
#define ATT_E_PEER (-10)     /* the launcher sent a fatal ERROR; see att_error_detail() */
#define ATT_E_REFUSED (-11)  /* the launcher refused this request (ERROR); see att_error_detail() */
#define ATT_E_DENIED (-12)   /* the service denied the request (RESULT status DENIED) */
#define ATT_E_SERVICE (-13)  /* the service failed (RESULT status FAILED) */

const char *att_strerror(int rc);

/* ---- Runtime: the handshake and the request helpers ---- */

/*
 * Opens the channel (fd from ATTESTABLES_FD, default 3), generates the key pair, sends
 * HELLO, and waits for CERT and then SERVICE_KEYS. Blocks until the launcher answers.
 * On failure everything is wiped, and a protocol violation by the launcher is reported
 * to it with a fatal ERROR before returning.
 */
int att_runtime_init(void);

/* Wipes the private key, frees what the runtime holds and closes the channel.
 * Also runs from atexit; calling it twice is harmless. */
void att_runtime_shutdown(void);

/* Valid after a successful att_runtime_init(); NULL (or 0) before. */
const char *att_certificate_serial(void); /* lowercase hex, no leading zeros */
const uint8_t *att_certificate_der(size_t *len);
const uint8_t *att_certificate_chain_pem(size_t *len);
int att_public_key(uint8_t out[ATT_X25519_LEN]);
size_t att_service_count(void);
const char *att_service_id(size_t index);

/* Seals plaintext to a service for a request carrying this nonce (info direction
 * "request"); out receives enc || ciphertext, pt_len + ATT_HPKE_OVERHEAD bytes. */
int att_seal_to_service(const char *service_id, const uint8_t nonce[ATT_NONCE_LEN],
                        const uint8_t *pt, size_t pt_len,
                        uint8_t *out, size_t out_cap, size_t *out_len);

/* Opens a service's answer to the request that carried this nonce (info direction
 * "response") with the runtime's private key. */
int att_open_from_service(const char *service_id, const uint8_t nonce[ATT_NONCE_LEN],
                          const uint8_t *sealed, size_t sealed_len,
                          uint8_t *out, size_t out_cap, size_t *out_len);

/*
 * One request round trip: fresh nonce, seal, send READ/WRITE, wait for its RESULT or
 * ERROR, open the answer. On ATT_OK, *answer is a heap copy of the plaintext answer
 * (NULL when the service sent none) to release with att_free(*answer, *answer_len).
 */
int att_read(const char *service_id, const uint8_t *query, size_t query_len,
             uint8_t **answer, size_t *answer_len);
int att_write(const char *service_id, const uint8_t *data, size_t data_len,
              uint8_t **answer, size_t *answer_len);

/* Wipes then frees a buffer returned by the runtime. NULL is allowed. */
void att_free(void *p, size_t len);

/* Why the last call failed, when the channel knows more than the return code: the
 * text of the launcher's ERROR, or what the launcher did wrong. Printable ASCII;
 * "" if there is nothing to add. */
const char *att_error_detail(void);

/* ---- HPKE (RFC 9180) base mode, DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / ChaCha20-Poly1305 ---- */

#define ATT_HPKE_KEM_ID 0x0020u
#define ATT_HPKE_KDF_ID 0x0001u
#define ATT_HPKE_AEAD_ID 0x0003u
#define ATT_HPKE_ENC_LEN 32u
#define ATT_HPKE_TAG_LEN 16u
#define ATT_HPKE_OVERHEAD (ATT_HPKE_ENC_LEN + ATT_HPKE_TAG_LEN)
#define ATT_HPKE_INFO_MAX 512u

/* Single-shot seal (sequence number 0): out = enc || ciphertext || tag. out must not
 * overlap the inputs. */
int att_hpke_seal(const uint8_t pk_r[ATT_X25519_LEN],
                  const uint8_t *info, size_t info_len,
                  const uint8_t *aad, size_t aad_len,
                  const uint8_t *pt, size_t pt_len,
                  uint8_t *out, size_t out_cap, size_t *out_len);

/* Single-shot open of enc || ciphertext || tag. Fails with ATT_E_CRYPTO if anything -
 * key, info, aad, a bit of the message - is wrong; out then holds no plaintext. */
int att_hpke_open(const uint8_t sk_r[ATT_X25519_LEN],
                  const uint8_t *info, size_t info_len,
                  const uint8_t *aad, size_t aad_len,
                  const uint8_t *sealed, size_t sealed_len,
                  uint8_t *out, size_t out_cap, size_t *out_len);

/* RFC 9180 DeriveKeyPair: a deterministic key pair from input keying material
 * (32..256 bytes). */
int att_hpke_derive_keypair(const uint8_t *ikm, size_t ikm_len,
                            uint8_t sk[ATT_X25519_LEN], uint8_t pk[ATT_X25519_LEN]);

/* ---- The info string that binds a sealed message to its context ---- */

enum att_direction { ATT_DIRECTION_REQUEST = 1, ATT_DIRECTION_RESPONSE = 2 };

#define ATT_INFO_LABEL "attestables-info-v1"
#define ATT_INFO_MAX (19u + 1u + 2u + ATT_SERVICE_ID_MAX + 2u + ATT_SERIAL_MAX + 2u + ATT_NONCE_LEN)

/* info = label || u8 direction || u16 len || service id || u16 len || serial
 *        || u16 len || nonce (all big-endian; docs/compartment-protocol.md). */
int att_info_build(enum att_direction direction, const char *service_id, const char *serial,
                   const uint8_t nonce[ATT_NONCE_LEN],
                   uint8_t *out, size_t out_cap, size_t *out_len);

/* 1 if s[0..len) is a service id ([A-Za-z0-9._-]{1,64}), else 0. */
int att_service_id_valid(const char *s, size_t len);
/* 1 if s[0..len) is a canonical certificate serial ([1-9a-f][0-9a-f]{0,39}), else 0. */
int att_serial_valid(const char *s, size_t len);

/* ---- Evidence: what HELLO says about the memory that holds the key ---- */

#define ATT_EVIDENCE_BUF 4096u
#define ATT_EVIDENCE_MAX_CAPS 8u

/* One capability as seen by the CHERI intrinsics. */
struct att_cap_record {
    const char *name;
    uint64_t base;
    uint64_t length;
    uint64_t perms;
    int tag;
};

/*
 * Writes the evidence JSON (NUL-terminated) into out. Built for CHERI
 * (__CHERI_PURE_CAPABILITY__, or ATT_FORCE_CHERI_FORMAT for tests) it lists the
 * records; built otherwise it says there are no capabilities and refuses records
 * (ATT_E_ARG), so a native build can never claim any. *out_len excludes the NUL.
 */
int att_evidence_format(const struct att_cap_record *caps, size_t ncaps,
                        char *out, size_t out_cap, size_t *out_len);

/* The evidence of this process: reads the real capabilities on purecap CHERI. */
int att_evidence_build(char *out, size_t out_cap, size_t *out_len);

#ifdef __cplusplus
}
#endif

#endif /* ATTESTABLES_H */
