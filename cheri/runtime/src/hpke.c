/*
 * HPKE (RFC 9180), base mode, single shot, one suite:
 * DHKEM(X25519, HKDF-SHA256) 0x0020 / HKDF-SHA256 0x0001 / ChaCha20-Poly1305 0x0003.
 *
 * OpenSSL 3.0 (Debian 12, CheriBSD's base system) has no HPKE, so the scheme is
 * composed here from EVP primitives, following RFC 9180 sections 4, 5.1, 5.2 and
 * 7.1 step by step. Where OpenSSL >= 3.2 is available its OSSL_HPKE_* does seal and
 * open instead; the steps below stay, for DeriveKeyPair and the vector tests.
 */
#include "internal.h"

#include <limits.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#if OPENSSL_VERSION_NUMBER >= 0x30200000L
#include <openssl/hpke.h>
#define ATT_USE_OSSL_HPKE 1
#endif

#define HASH_LEN 32u  /* Nh of HKDF-SHA256 */
#define SECRET_LEN 32u /* Nsecret of DHKEM(X25519) */

static const uint8_t hpke_v1[7] = {'H', 'P', 'K', 'E', '-', 'v', '1'};
/* suite_id for the KEM's own labels (section 4.1) and for the key schedule (5.1). */
static const uint8_t kem_suite[5] = {'K', 'E', 'M', 0x00, 0x20};
static const uint8_t hpke_suite[10] = {'H', 'P', 'K', 'E', 0x00, 0x20, 0x00, 0x01, 0x00, 0x03};

/* "HPKE-v1" || suite_id || label || ikm/info never exceeds this: the longest label is
 * 13 bytes and the longest ikm is the application's info. */
#define LABELED_MAX (2u + sizeof hpke_v1 + sizeof hpke_suite + 16u + ATT_HPKE_INFO_MAX)

/* HKDF-SHA256 (RFC 5869) over HMAC-SHA256 through EVP_MAC.
 *
 * Fetching an algorithm and its digest by name costs more than the derivation itself,
 * and HPKE derives 7 to 9 times per message: an HMAC-SHA256 context with its digest set
 * is made once per process (CRYPTO_THREAD_run_once) and duplicated for each MAC, which
 * copies the fetched digest instead of looking it up again. (OpenSSL 3.0's HKDF
 * provider cannot be duplicated, hence HKDF's two steps written out here; the RFC 9180
 * vectors check every value they produce.) */
static CRYPTO_ONCE hmac_once = CRYPTO_ONCE_STATIC_INIT;
static EVP_MAC_CTX *hmac_template;

static void hmac_make_template(void)
{
    static char digest[] = "SHA256";
    OSSL_PARAM params[2];
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;

    EVP_MAC_free(mac); /* the context holds its own reference */
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
    params[1] = OSSL_PARAM_construct_end();
    if (ctx != NULL && EVP_MAC_CTX_set_params(ctx, params) != 1) {
        EVP_MAC_CTX_free(ctx);
        ctx = NULL;
    }
    hmac_template = ctx; /* kept for the life of the process */
}

/* out = HMAC-SHA256(key, a || b || c); any part may be empty. */
static int hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *a, size_t a_len, const uint8_t *b,
                       size_t b_len, const uint8_t *c, size_t c_len, uint8_t out[HASH_LEN])
{
    EVP_MAC_CTX *ctx;
    size_t len = 0;
    int ok;

    if (CRYPTO_THREAD_run_once(&hmac_once, hmac_make_template) != 1 || hmac_template == NULL)
        return ATT_E_CRYPTO;
    ctx = EVP_MAC_CTX_dup(hmac_template);
    if (ctx == NULL)
        return ATT_E_CRYPTO;
    ok = EVP_MAC_init(ctx, key, key_len, NULL) == 1 && (a_len == 0 || EVP_MAC_update(ctx, a, a_len) == 1) &&
         (b_len == 0 || EVP_MAC_update(ctx, b, b_len) == 1) && (c_len == 0 || EVP_MAC_update(ctx, c, c_len) == 1) &&
         EVP_MAC_final(ctx, out, &len, HASH_LEN) == 1 && len == HASH_LEN;
    EVP_MAC_CTX_free(ctx); /* frees (and clears) the key it copied */
    if (!ok) {
        OPENSSL_cleanse(out, HASH_LEN);
        return ATT_E_CRYPTO;
    }
    return ATT_OK;
}

/* HKDF-Extract(salt, ikm) = HMAC(salt, ikm). */
static int hkdf_extract(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                        uint8_t prk[HASH_LEN])
{
    return hmac_sha256(salt, salt_len, ikm, ikm_len, NULL, 0, NULL, 0, prk);
}

/* HKDF-Expand(prk, info, L): T(i) = HMAC(prk, T(i-1) || info || i), out = T(1) || T(2) || ... */
static int hkdf_expand(const uint8_t prk[HASH_LEN], const uint8_t *info, size_t info_len, uint8_t *out,
                       size_t out_len)
{
    uint8_t t[HASH_LEN];
    size_t t_len = 0, done = 0;
    int rc = ATT_OK;

    if (out_len > 255u * HASH_LEN)
        return ATT_E_ARG;
    for (uint8_t i = 1; done < out_len && rc == ATT_OK; i++) {
        rc = hmac_sha256(prk, HASH_LEN, t, t_len, info, info_len, &i, 1, t);
        if (rc == ATT_OK) {
            size_t n = out_len - done < HASH_LEN ? out_len - done : HASH_LEN;
            memcpy(out + done, t, n);
            done += n;
            t_len = HASH_LEN;
        }
    }
    OPENSSL_cleanse(t, sizeof t);
    if (rc != ATT_OK)
        OPENSSL_cleanse(out, out_len);
    return rc;
}

/* LabeledExtract(salt, label, ikm) = Extract(salt, "HPKE-v1" || suite_id || label || ikm). */
static int labeled_extract(const uint8_t *suite, size_t suite_len, const uint8_t *salt, size_t salt_len,
                           const char *label, const uint8_t *ikm, size_t ikm_len, uint8_t prk[HASH_LEN])
{
    /* RFC 5869: an absent salt is HashLen zero bytes. Passing them explicitly keeps
     * OpenSSL from ever seeing an empty HMAC key. */
    static const uint8_t zero_salt[HASH_LEN];
    uint8_t buf[LABELED_MAX];
    struct att_wbuf w = {buf, sizeof buf, 0, 0};
    int rc;

    att_wb_bytes(&w, hpke_v1, sizeof hpke_v1);
    att_wb_bytes(&w, suite, suite_len);
    att_wb_bytes(&w, label, strlen(label));
    att_wb_bytes(&w, ikm, ikm_len);
    if (w.err) {
        rc = ATT_E_SPACE;
    } else if (salt_len == 0) {
        rc = hkdf_extract(zero_salt, sizeof zero_salt, buf, w.len, prk);
    } else {
        rc = hkdf_extract(salt, salt_len, buf, w.len, prk);
    }
    OPENSSL_cleanse(buf, sizeof buf); /* it held a DH output or a shared secret */
    return rc;
}

/* LabeledExpand(prk, label, info, L) = Expand(prk, I2OSP(L, 2) || "HPKE-v1" || suite_id || label || info, L). */
static int labeled_expand(const uint8_t *suite, size_t suite_len, const uint8_t prk[HASH_LEN],
                          const char *label, const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len)
{
    uint8_t buf[LABELED_MAX];
    struct att_wbuf w = {buf, sizeof buf, 0, 0};
    int rc;

    if (out_len > 255u * HASH_LEN)
        return ATT_E_ARG;
    att_wb_u16(&w, (uint16_t)out_len);
    att_wb_bytes(&w, hpke_v1, sizeof hpke_v1);
    att_wb_bytes(&w, suite, suite_len);
    att_wb_bytes(&w, label, strlen(label));
    att_wb_bytes(&w, info, info_len);
    if (w.err)
        rc = ATT_E_SPACE;
    else
        rc = hkdf_expand(prk, buf, w.len, out, out_len);
    OPENSSL_cleanse(buf, sizeof buf);
    return rc;
}

/* An X25519 key from its private bytes. Importing one is a scalar multiplication:
 * OpenSSL computes the public key then, which is written to pk (when not NULL). Each key
 * is imported once per message and used for everything it is needed for: a seal costs
 * two multiplications (the ephemeral key's public half, DH) and an open two (the
 * recipient's public half for kem_context, DH). */
static EVP_PKEY *x25519_key(const uint8_t sk[ATT_X25519_LEN], uint8_t pk[ATT_X25519_LEN])
{
    EVP_PKEY *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, sk, ATT_X25519_LEN);
    size_t len = ATT_X25519_LEN;

    if (key != NULL && pk != NULL && (EVP_PKEY_get_raw_public_key(key, pk, &len) != 1 || len != ATT_X25519_LEN)) {
        EVP_PKEY_free(key);
        return NULL;
    }
    return key;
}

/* The recipient's key, imported once per thread and kept: a compartment opens every answer
 * with the one key of its run, and re-importing it cost a multiplication per open (its
 * public half, for kem_context), a third of an open. A different sk replaces the entry.
 * The kept copy lives as long as the runtime's own (att_sk, the run's key). Returns a
 * borrowed key (not to be freed) and its public half in pk, or NULL. */
static _Thread_local struct {
    uint8_t sk[ATT_X25519_LEN];
    uint8_t pk[ATT_X25519_LEN];
    EVP_PKEY *key;
} recipient;

static EVP_PKEY *recipient_key(const uint8_t sk[ATT_X25519_LEN], uint8_t pk[ATT_X25519_LEN])
{
    if (recipient.key == NULL || CRYPTO_memcmp(recipient.sk, sk, ATT_X25519_LEN) != 0) {
        EVP_PKEY_free(recipient.key);
        OPENSSL_cleanse(&recipient, sizeof recipient);
        recipient.key = x25519_key(sk, recipient.pk);
        if (recipient.key == NULL)
            return NULL;
        memcpy(recipient.sk, sk, ATT_X25519_LEN);
    }
    if (pk != NULL)
        memcpy(pk, recipient.pk, ATT_X25519_LEN);
    return recipient.key;
}

static int x25519_public(const uint8_t sk[ATT_X25519_LEN], uint8_t pk[ATT_X25519_LEN])
{
    EVP_PKEY *key = x25519_key(sk, pk);
    if (key == NULL)
        return ATT_E_CRYPTO;
    EVP_PKEY_free(key); /* frees and wipes OpenSSL's copy of sk */
    return ATT_OK;
}

/* DH(priv, pk), refusing the all-zero output of a low-order point (RFC 9180 7.1.4). */
static int x25519_dh(EVP_PKEY *priv, const uint8_t pk[ATT_X25519_LEN], uint8_t out[ATT_X25519_LEN])
{
    EVP_PKEY *peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, pk, ATT_X25519_LEN);
    EVP_PKEY_CTX *ctx = priv != NULL ? EVP_PKEY_CTX_new(priv, NULL) : NULL;
    size_t len = ATT_X25519_LEN;
    uint8_t acc = 0;
    int ok = ctx != NULL && peer != NULL && EVP_PKEY_derive_init(ctx) == 1 &&
             EVP_PKEY_derive_set_peer(ctx, peer) == 1 && EVP_PKEY_derive(ctx, out, &len) == 1 &&
             len == ATT_X25519_LEN;
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(peer);
    if (ok) {
        for (size_t i = 0; i < ATT_X25519_LEN; i++)
            acc |= out[i];
        ok = acc != 0;
    }
    if (!ok) {
        OPENSSL_cleanse(out, ATT_X25519_LEN);
        return ATT_E_CRYPTO;
    }
    return ATT_OK;
}

/* DeriveKeyPair's private half (RFC 9180 7.1.3: for X25519 the expanded bytes are the
 * private key as is). */
static int derive_private(const uint8_t *ikm, size_t ikm_len, uint8_t sk[ATT_X25519_LEN])
{
    uint8_t prk[HASH_LEN];
    int rc = labeled_extract(kem_suite, sizeof kem_suite, NULL, 0, "dkp_prk", ikm, ikm_len, prk);
    if (rc == ATT_OK)
        rc = labeled_expand(kem_suite, sizeof kem_suite, prk, "sk", NULL, 0, sk, ATT_X25519_LEN);
    OPENSSL_cleanse(prk, sizeof prk);
    if (rc != ATT_OK)
        OPENSSL_cleanse(sk, ATT_X25519_LEN);
    return rc;
}

int att_hpke_derive_keypair(const uint8_t *ikm, size_t ikm_len, uint8_t sk[ATT_X25519_LEN],
                            uint8_t pk[ATT_X25519_LEN])
{
    int rc;

    if (ikm == NULL || ikm_len < ATT_X25519_LEN || ikm_len > 256u || sk == NULL || pk == NULL)
        return ATT_E_ARG;
    rc = derive_private(ikm, ikm_len, sk);
    if (rc == ATT_OK)
        rc = x25519_public(sk, pk);
    if (rc != ATT_OK)
        OPENSSL_cleanse(sk, ATT_X25519_LEN);
    return rc;
}

/* ExtractAndExpand(dh, kem_context) with kem_context = enc || pkR (section 4.1). */
static int kem_shared_secret(const uint8_t dh[ATT_X25519_LEN], const uint8_t enc[ATT_HPKE_ENC_LEN],
                             const uint8_t pk_r[ATT_X25519_LEN], uint8_t shared_secret[SECRET_LEN])
{
    uint8_t kem_context[ATT_HPKE_ENC_LEN + ATT_X25519_LEN];
    uint8_t prk[HASH_LEN];
    int rc;

    memcpy(kem_context, enc, ATT_HPKE_ENC_LEN);
    memcpy(kem_context + ATT_HPKE_ENC_LEN, pk_r, ATT_X25519_LEN);
    rc = labeled_extract(kem_suite, sizeof kem_suite, NULL, 0, "eae_prk", dh, ATT_X25519_LEN, prk);
    if (rc == ATT_OK)
        rc = labeled_expand(kem_suite, sizeof kem_suite, prk, "shared_secret", kem_context, sizeof kem_context,
                            shared_secret, SECRET_LEN);
    OPENSSL_cleanse(prk, sizeof prk);
    return rc;
}

/* KeySchedule<Base>(shared_secret, info) with empty psk and psk_id (section 5.1). */
static int key_schedule(const uint8_t shared_secret[SECRET_LEN], const uint8_t *info, size_t info_len,
                        uint8_t key[ATT_HPKE_KEY_LEN], uint8_t base_nonce[ATT_HPKE_NONCE_LEN])
{
    uint8_t context[1 + 2 * HASH_LEN]; /* mode || psk_id_hash || info_hash */
    uint8_t secret[HASH_LEN];
    int rc;

    context[0] = 0x00; /* mode_base */
    rc = labeled_extract(hpke_suite, sizeof hpke_suite, NULL, 0, "psk_id_hash", NULL, 0, context + 1);
    if (rc == ATT_OK)
        rc = labeled_extract(hpke_suite, sizeof hpke_suite, NULL, 0, "info_hash", info, info_len,
                             context + 1 + HASH_LEN);
    if (rc == ATT_OK)
        rc = labeled_extract(hpke_suite, sizeof hpke_suite, shared_secret, SECRET_LEN, "secret", NULL, 0, secret);
    if (rc == ATT_OK)
        rc = labeled_expand(hpke_suite, sizeof hpke_suite, secret, "key", context, sizeof context, key,
                            ATT_HPKE_KEY_LEN);
    if (rc == ATT_OK)
        rc = labeled_expand(hpke_suite, sizeof hpke_suite, secret, "base_nonce", context, sizeof context,
                            base_nonce, ATT_HPKE_NONCE_LEN);
    OPENSSL_cleanse(secret, sizeof secret);
    return rc;
}

void att_hpke_nonce(const uint8_t base_nonce[ATT_HPKE_NONCE_LEN], uint64_t seq, uint8_t nonce[ATT_HPKE_NONCE_LEN])
{
    memcpy(nonce, base_nonce, ATT_HPKE_NONCE_LEN);
    for (size_t i = 0; i < 8; i++)
        nonce[ATT_HPKE_NONCE_LEN - 1 - i] ^= (uint8_t)(seq >> (8 * i));
}

int att_hpke_aead_seal(const uint8_t key[ATT_HPKE_KEY_LEN], const uint8_t nonce[ATT_HPKE_NONCE_LEN],
                       const uint8_t *aad, size_t aad_len, const uint8_t *pt, size_t pt_len,
                       uint8_t *ct, size_t ct_cap, size_t *ct_len)
{
    EVP_CIPHER_CTX *c;
    int n = 0, fin = 0, ok;

    if (aad_len > INT_MAX || pt_len > (size_t)INT_MAX - ATT_HPKE_TAG_LEN || ct_cap < pt_len + ATT_HPKE_TAG_LEN)
        return ATT_E_SPACE;
    c = EVP_CIPHER_CTX_new();
    if (c == NULL)
        return ATT_E_NOMEM;
    ok = EVP_EncryptInit_ex(c, EVP_chacha20_poly1305(), NULL, key, nonce) == 1 &&
         (aad_len == 0 || EVP_EncryptUpdate(c, NULL, &n, aad, (int)aad_len) == 1) &&
         EVP_EncryptUpdate(c, ct, &n, pt, (int)pt_len) == 1 && (size_t)n == pt_len &&
         EVP_EncryptFinal_ex(c, ct + n, &fin) == 1 && fin == 0 &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, (int)ATT_HPKE_TAG_LEN, ct + pt_len) == 1;
    EVP_CIPHER_CTX_free(c);
    if (!ok) {
        OPENSSL_cleanse(ct, ct_cap);
        return ATT_E_CRYPTO;
    }
    *ct_len = pt_len + ATT_HPKE_TAG_LEN;
    return ATT_OK;
}

static int aead_open(const uint8_t key[ATT_HPKE_KEY_LEN], const uint8_t nonce[ATT_HPKE_NONCE_LEN],
                     const uint8_t *aad, size_t aad_len, const uint8_t *ct, size_t ct_len,
                     uint8_t *pt, size_t pt_cap, size_t *pt_len)
{
    uint8_t tag[ATT_HPKE_TAG_LEN];
    size_t body;
    EVP_CIPHER_CTX *c;
    int n = 0, fin = 0, ok;

    if (ct_len < ATT_HPKE_TAG_LEN)
        return ATT_E_CRYPTO;
    body = ct_len - ATT_HPKE_TAG_LEN;
    if (aad_len > INT_MAX || body > INT_MAX)
        return ATT_E_SPACE;
    if (pt_cap < body)
        return ATT_E_SPACE;
    memcpy(tag, ct + body, sizeof tag); /* EVP wants a mutable tag buffer */
    c = EVP_CIPHER_CTX_new();
    if (c == NULL)
        return ATT_E_NOMEM;
    ok = EVP_DecryptInit_ex(c, EVP_chacha20_poly1305(), NULL, key, nonce) == 1 &&
         (aad_len == 0 || EVP_DecryptUpdate(c, NULL, &n, aad, (int)aad_len) == 1) &&
         EVP_DecryptUpdate(c, pt, &n, ct, (int)body) == 1 && (size_t)n == body &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, (int)sizeof tag, tag) == 1 &&
         EVP_DecryptFinal_ex(c, pt + n, &fin) == 1 && fin == 0;
    EVP_CIPHER_CTX_free(c);
    if (!ok) {
        /* Unauthenticated plaintext must not survive a failed open. */
        OPENSSL_cleanse(pt, pt_cap);
        return ATT_E_CRYPTO;
    }
    *pt_len = body;
    return ATT_OK;
}

int att_hpke_recipient_schedule(const uint8_t sk_r[ATT_X25519_LEN], const uint8_t enc[ATT_HPKE_ENC_LEN],
                                const uint8_t *info, size_t info_len, uint8_t shared_secret[SECRET_LEN],
                                uint8_t key[ATT_HPKE_KEY_LEN], uint8_t base_nonce[ATT_HPKE_NONCE_LEN])
{
    uint8_t dh[ATT_X25519_LEN], pk_r[ATT_X25519_LEN];
    EVP_PKEY *key_r;
    int rc;

    if (info_len > ATT_HPKE_INFO_MAX || (info == NULL && info_len != 0))
        return ATT_E_ARG;
    key_r = recipient_key(sk_r, pk_r); /* borrowed: kept for the next open */
    rc = key_r != NULL ? x25519_dh(key_r, enc, dh) : ATT_E_CRYPTO;
    if (rc == ATT_OK)
        rc = kem_shared_secret(dh, enc, pk_r, shared_secret);
    if (rc == ATT_OK)
        rc = key_schedule(shared_secret, info, info_len, key, base_nonce);
    OPENSSL_cleanse(dh, sizeof dh);
    return rc;
}

static int check_common(const uint8_t *info, size_t info_len, const uint8_t *aad, size_t aad_len,
                        const uint8_t *msg, size_t msg_len, const uint8_t *out, const size_t *out_len)
{
    if (info_len > ATT_HPKE_INFO_MAX || (info == NULL && info_len != 0) || (aad == NULL && aad_len != 0) ||
        (msg == NULL && msg_len != 0) || out == NULL || out_len == NULL)
        return ATT_E_ARG;
    if (aad_len > INT_MAX || msg_len > (size_t)INT_MAX - ATT_HPKE_OVERHEAD)
        return ATT_E_SPACE;
    return ATT_OK;
}

#ifdef ATT_USE_OSSL_HPKE

static const OSSL_HPKE_SUITE att_suite = {OSSL_HPKE_KEM_ID_X25519, OSSL_HPKE_KDF_ID_HKDF_SHA256,
                                          OSSL_HPKE_AEAD_ID_CHACHA_POLY1305};

int att_hpke_seal_derand(const uint8_t pk_r[ATT_X25519_LEN], const uint8_t *ikm_e, size_t ikm_e_len,
                         const uint8_t *info, size_t info_len, const uint8_t *aad, size_t aad_len,
                         const uint8_t *pt, size_t pt_len, uint8_t *out, size_t out_cap, size_t *out_len)
{
    OSSL_HPKE_CTX *ctx;
    size_t enc_len = ATT_HPKE_ENC_LEN, ct_len;
    int rc = check_common(info, info_len, aad, aad_len, pt, pt_len, out, out_len), ok;

    if (rc != ATT_OK)
        return rc;
    if (pk_r == NULL || ikm_e == NULL || ikm_e_len < ATT_X25519_LEN || ikm_e_len > 256u)
        return ATT_E_ARG;
    if (out_cap < pt_len + ATT_HPKE_OVERHEAD)
        return ATT_E_SPACE;
    ctx = OSSL_HPKE_CTX_new(OSSL_HPKE_MODE_BASE, att_suite, OSSL_HPKE_ROLE_SENDER, NULL, NULL);
    if (ctx == NULL)
        return ATT_E_NOMEM;
    ct_len = out_cap - ATT_HPKE_ENC_LEN;
    ok = OSSL_HPKE_CTX_set1_ikme(ctx, ikm_e, ikm_e_len) == 1 &&
         OSSL_HPKE_encap(ctx, out, &enc_len, pk_r, ATT_X25519_LEN, info, info_len) == 1 &&
         enc_len == ATT_HPKE_ENC_LEN &&
         OSSL_HPKE_seal(ctx, out + ATT_HPKE_ENC_LEN, &ct_len, aad, aad_len, pt, pt_len) == 1 &&
         ct_len == pt_len + ATT_HPKE_TAG_LEN;
    OSSL_HPKE_CTX_free(ctx);
    if (!ok) {
        OPENSSL_cleanse(out, out_cap);
        return ATT_E_CRYPTO;
    }
    *out_len = ATT_HPKE_ENC_LEN + ct_len;
    return ATT_OK;
}

int att_hpke_open(const uint8_t sk_r[ATT_X25519_LEN], const uint8_t *info, size_t info_len,
                  const uint8_t *aad, size_t aad_len, const uint8_t *sealed, size_t sealed_len,
                  uint8_t *out, size_t out_cap, size_t *out_len)
{
    OSSL_HPKE_CTX *ctx;
    EVP_PKEY *priv;
    size_t pt_len;
    int rc = check_common(info, info_len, aad, aad_len, sealed, sealed_len, out, out_len), ok;

    if (rc != ATT_OK)
        return rc;
    if (sk_r == NULL || sealed == NULL || sealed_len < ATT_HPKE_OVERHEAD)
        return ATT_E_CRYPTO;
    if (out_cap < sealed_len - ATT_HPKE_OVERHEAD)
        return ATT_E_SPACE;
    priv = recipient_key(sk_r, NULL); /* borrowed: kept for the next open */
    ctx = OSSL_HPKE_CTX_new(OSSL_HPKE_MODE_BASE, att_suite, OSSL_HPKE_ROLE_RECEIVER, NULL, NULL);
    pt_len = out_cap;
    ok = priv != NULL && ctx != NULL &&
         OSSL_HPKE_decap(ctx, sealed, ATT_HPKE_ENC_LEN, priv, info, info_len) == 1 &&
         OSSL_HPKE_open(ctx, out, &pt_len, aad, aad_len, sealed + ATT_HPKE_ENC_LEN,
                        sealed_len - ATT_HPKE_ENC_LEN) == 1;
    OSSL_HPKE_CTX_free(ctx);
    if (!ok) {
        OPENSSL_cleanse(out, out_cap);
        return ATT_E_CRYPTO;
    }
    *out_len = pt_len;
    return ATT_OK;
}

#else /* OpenSSL 3.0/3.1: the composition above */

int att_hpke_seal_derand(const uint8_t pk_r[ATT_X25519_LEN], const uint8_t *ikm_e, size_t ikm_e_len,
                         const uint8_t *info, size_t info_len, const uint8_t *aad, size_t aad_len,
                         const uint8_t *pt, size_t pt_len, uint8_t *out, size_t out_cap, size_t *out_len)
{
    uint8_t sk_e[ATT_X25519_LEN], dh[ATT_X25519_LEN], shared_secret[SECRET_LEN];
    uint8_t key[ATT_HPKE_KEY_LEN], base_nonce[ATT_HPKE_NONCE_LEN];
    size_t ct_len = 0;
    EVP_PKEY *key_e = NULL;
    int rc = check_common(info, info_len, aad, aad_len, pt, pt_len, out, out_len);

    if (rc != ATT_OK)
        return rc;
    if (pk_r == NULL || ikm_e == NULL || ikm_e_len < ATT_X25519_LEN || ikm_e_len > 256u)
        return ATT_E_ARG;
    if (out_cap < pt_len + ATT_HPKE_OVERHEAD)
        return ATT_E_SPACE;
    /* Encap(pkR): enc = pkE is written straight into out (section 4.1). */
    rc = derive_private(ikm_e, ikm_e_len, sk_e);
    if (rc == ATT_OK) {
        key_e = x25519_key(sk_e, out);
        rc = key_e != NULL ? x25519_dh(key_e, pk_r, dh) : ATT_E_CRYPTO;
        EVP_PKEY_free(key_e);
    }
    if (rc == ATT_OK)
        rc = kem_shared_secret(dh, out, pk_r, shared_secret);
    if (rc == ATT_OK)
        rc = key_schedule(shared_secret, info, info_len, key, base_nonce);
    /* Single shot: sequence number 0, so the nonce is base_nonce itself. */
    if (rc == ATT_OK)
        rc = att_hpke_aead_seal(key, base_nonce, aad, aad_len, pt, pt_len, out + ATT_HPKE_ENC_LEN,
                                out_cap - ATT_HPKE_ENC_LEN, &ct_len);
    OPENSSL_cleanse(sk_e, sizeof sk_e);
    OPENSSL_cleanse(dh, sizeof dh);
    OPENSSL_cleanse(shared_secret, sizeof shared_secret);
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(base_nonce, sizeof base_nonce);
    if (rc != ATT_OK) {
        OPENSSL_cleanse(out, out_cap);
        return rc;
    }
    *out_len = ATT_HPKE_ENC_LEN + ct_len;
    return ATT_OK;
}

int att_hpke_open(const uint8_t sk_r[ATT_X25519_LEN], const uint8_t *info, size_t info_len,
                  const uint8_t *aad, size_t aad_len, const uint8_t *sealed, size_t sealed_len,
                  uint8_t *out, size_t out_cap, size_t *out_len)
{
    uint8_t shared_secret[SECRET_LEN], key[ATT_HPKE_KEY_LEN], base_nonce[ATT_HPKE_NONCE_LEN];
    int rc = check_common(info, info_len, aad, aad_len, sealed, sealed_len, out, out_len);

    if (rc != ATT_OK)
        return rc;
    if (sk_r == NULL || sealed == NULL || sealed_len < ATT_HPKE_OVERHEAD)
        return ATT_E_CRYPTO;
    if (out_cap < sealed_len - ATT_HPKE_OVERHEAD)
        return ATT_E_SPACE;
    rc = att_hpke_recipient_schedule(sk_r, sealed, info, info_len, shared_secret, key, base_nonce);
    if (rc == ATT_OK)
        rc = aead_open(key, base_nonce, aad, aad_len, sealed + ATT_HPKE_ENC_LEN, sealed_len - ATT_HPKE_ENC_LEN,
                       out, out_cap, out_len);
    OPENSSL_cleanse(shared_secret, sizeof shared_secret);
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(base_nonce, sizeof base_nonce);
    /* A low-order enc or a bad tag both mean: this message is not for us. */
    return rc == ATT_OK ? ATT_OK : (rc == ATT_E_SPACE || rc == ATT_E_NOMEM ? rc : ATT_E_CRYPTO);
}

#endif /* ATT_USE_OSSL_HPKE */

int att_hpke_seal(const uint8_t pk_r[ATT_X25519_LEN], const uint8_t *info, size_t info_len,
                  const uint8_t *aad, size_t aad_len, const uint8_t *pt, size_t pt_len,
                  uint8_t *out, size_t out_cap, size_t *out_len)
{
    /* RFC 9180 7.1.3: GenerateKeyPair may be DeriveKeyPair(random(Nsk)). Using it
     * keeps one code path, the one the test vectors check. */
    uint8_t ikm_e[ATT_X25519_LEN];
    int rc;

    if (RAND_priv_bytes(ikm_e, sizeof ikm_e) != 1)
        return ATT_E_CRYPTO;
    rc = att_hpke_seal_derand(pk_r, ikm_e, sizeof ikm_e, info, info_len, aad, aad_len, pt, pt_len, out,
                              out_cap, out_len);
    OPENSSL_cleanse(ikm_e, sizeof ikm_e);
    return rc;
}
