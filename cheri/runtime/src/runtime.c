/*
 * The runtime proper: the handshake (HELLO -> CERT -> SERVICE_KEYS), the key pair,
 * and request round trips. One process, one channel, one key pair, one thread.
 *
 * Whatever the launcher sends is checked field by field; anything out of place is a
 * protocol violation, reported back with a fatal ERROR after which the channel is
 * dead. The launcher is trusted to relay, not to be well-formed.
 */
#include "internal.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#elif defined(__FreeBSD__)
#include <sys/wait.h> /* idtype_t, P_PID */
#include <sys/procctl.h>
#endif

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

enum rt_state { RT_NONE, RT_READY, RT_DEAD };

struct service {
    char id[ATT_SERVICE_ID_MAX + 1];
    uint8_t pk[ATT_X25519_LEN];
};

/* The only copy of the private key the runtime keeps. A separate object, so that on
 * CHERI the capability to it has bounds of exactly these bytes (HELLO reports them). */
static uint8_t att_sk[ATT_X25519_LEN];

static struct {
    enum rt_state state;
    int fd;
    int atexit_registered;
    uint8_t pk[ATT_X25519_LEN];
    char serial[ATT_SERIAL_MAX + 1];
    uint8_t *cert;
    size_t cert_len;
    uint8_t *chain;
    size_t chain_len;
    size_t nservices;
    struct service services[ATT_MAX_SERVICES];
    uint32_t last_request_id;
} rt = {.state = RT_NONE, .fd = -1};

static char detail[256];

const void *att_key_material_ref(void)
{
    return att_sk;
}

const void *att_state_ref(void)
{
    return &rt;
}

const char *att_strerror(int rc)
{
    switch (rc) {
    case ATT_OK: return "ok";
    case ATT_E_ARG: return "invalid argument";
    case ATT_E_IO: return "channel I/O error";
    case ATT_E_CLOSED: return "launcher closed the channel";
    case ATT_E_PROTOCOL: return "protocol violation by the launcher";
    case ATT_E_CRYPTO: return "cryptographic failure";
    case ATT_E_NOMEM: return "out of memory";
    case ATT_E_STATE: return "runtime not in a state for this call";
    case ATT_E_NOT_FOUND: return "unknown service";
    case ATT_E_SPACE: return "buffer too small or limit exceeded";
    case ATT_E_PEER: return "launcher reported a fatal error";
    case ATT_E_REFUSED: return "launcher refused the request";
    case ATT_E_DENIED: return "service denied the request";
    case ATT_E_SERVICE: return "service failed the request";
    default: return "unknown error";
    }
}

const char *att_error_detail(void)
{
    return detail;
}

/* Keeps only printable ASCII: the text comes from the launcher and ends up on a
 * terminal. */
static void set_detail(const char *prefix, const uint8_t *text, size_t len)
{
    size_t n = 0, plen = strlen(prefix);
    if (plen >= sizeof detail)
        plen = sizeof detail - 1;
    memcpy(detail, prefix, plen);
    n = plen;
    for (size_t i = 0; i < len && n < sizeof detail - 1; i++)
        detail[n++] = (text[i] >= 0x20 && text[i] <= 0x7e) ? (char)text[i] : '?';
    detail[n] = '\0';
}

static void wipe(void)
{
    OPENSSL_cleanse(att_sk, sizeof att_sk);
    att_frame_free(rt.cert, rt.cert_len);
    att_frame_free(rt.chain, rt.chain_len);
    if (rt.fd >= 0)
        (void)close(rt.fd);
    OPENSSL_cleanse(rt.services, sizeof rt.services);
    memset(rt.pk, 0, sizeof rt.pk);
    memset(rt.serial, 0, sizeof rt.serial);
    rt.cert = rt.chain = NULL;
    rt.cert_len = rt.chain_len = rt.nservices = 0;
    rt.fd = -1;
    rt.state = RT_NONE;
}

void att_runtime_shutdown(void)
{
    wipe();
}

static void wipe_at_exit(void)
{
    wipe();
}

/* Reports the launcher's violation to it and kills the channel. */
static int violation(const char *why)
{
    set_detail("launcher sent ", (const uint8_t *)why, strlen(why));
    if (rt.fd >= 0)
        (void)att_send_error(rt.fd, 0, ATT_ERROR_PROTOCOL_VIOLATION, why);
    rt.state = RT_DEAD;
    return ATT_E_PROTOCOL;
}

static int channel_fd(int *fd)
{
    const char *s = getenv(ATT_FD_ENV);
    long v = 0;
    int flags;

    if (s == NULL) {
        v = ATT_DEFAULT_FD;
    } else {
        if (*s == '\0')
            return ATT_E_ARG;
        for (; *s != '\0'; s++) {
            if (*s < '0' || *s > '9')
                return ATT_E_ARG;
            v = v * 10 + (*s - '0');
            if (v > INT_MAX)
                return ATT_E_ARG;
        }
    }
    /* 0-2 are stdio: a program printing there would corrupt the channel. */
    if (v < 3)
        return ATT_E_ARG;
    flags = fcntl((int)v, F_GETFD);
    if (flags < 0)
        return ATT_E_IO;
    /* Children the program may start must not inherit the channel. */
    if (fcntl((int)v, F_SETFD, flags | FD_CLOEXEC) < 0)
        return ATT_E_IO;
    *fd = (int)v;
    return ATT_OK;
}

/* Best effort: keep other processes of the same user (the launcher included) from
 * attaching a debugger or reading this process's memory, and keep the key out of
 * core dumps. Root can still read it; docs/threat-model says so. */
static void harden_process(void)
{
#if defined(__linux__)
    (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
#elif defined(__FreeBSD__)
    int arg = PROC_TRACE_CTL_DISABLE;
    (void)procctl(P_PID, getpid(), PROC_TRACE_CTL, &arg);
#endif
}

static int generate_key(void)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_X25519, NULL);
    EVP_PKEY *key = NULL;
    size_t sk_len = sizeof att_sk, pk_len = sizeof rt.pk;
    int ok = ctx != NULL && EVP_PKEY_keygen_init(ctx) == 1 && EVP_PKEY_keygen(ctx, &key) == 1 &&
             EVP_PKEY_get_raw_private_key(key, att_sk, &sk_len) == 1 && sk_len == sizeof att_sk &&
             EVP_PKEY_get_raw_public_key(key, rt.pk, &pk_len) == 1 && pk_len == sizeof rt.pk;
    EVP_PKEY_free(key); /* OpenSSL wipes its copy; att_sk is the one that stays */
    EVP_PKEY_CTX_free(ctx);
    if (!ok) {
        OPENSSL_cleanse(att_sk, sizeof att_sk);
        return ATT_E_CRYPTO;
    }
    return ATT_OK;
}

static int send_hello(void)
{
    char evidence[ATT_EVIDENCE_BUF];
    size_t ev_len = 0;
    struct att_wbuf w;
    int rc = att_evidence_build(evidence, sizeof evidence, &ev_len);

    if (rc != ATT_OK)
        return rc;
    rc = att_frame_begin(&w, ATT_FRAME_HELLO, 2u + 2u + ATT_X25519_LEN + 4u + ev_len);
    if (rc != ATT_OK)
        return rc;
    att_wb_u16(&w, ATT_PROTOCOL_VERSION);
    att_wb_u16(&w, ATT_X25519_LEN);
    att_wb_bytes(&w, rt.pk, ATT_X25519_LEN);
    att_wb_u32(&w, (uint32_t)ev_len);
    att_wb_bytes(&w, evidence, ev_len);
    return att_frame_send(rt.fd, &w);
}

static int receive(uint8_t *type, uint8_t **payload, size_t *len)
{
    int rc = att_frame_read(rt.fd, type, payload, len);
    if (rc == ATT_E_PROTOCOL)
        return violation("a malformed or truncated frame");
    if (rc == ATT_E_CLOSED) {
        set_detail("launcher closed the channel", NULL, 0);
        rt.state = RT_DEAD;
    } else if (rc != ATT_OK) {
        rt.state = RT_DEAD;
    }
    return rc;
}

/* ERROR from the launcher: fatal (request 0) or the refusal of one request. */
static int launcher_error(const uint8_t *p, size_t n, uint32_t *request_id)
{
    struct att_rbuf r = {p, n, 0, 0};
    uint32_t rid = att_rb_u32(&r);
    uint16_t code = att_rb_u16(&r);
    uint32_t mlen = att_rb_u32(&r);
    const uint8_t *msg = att_rb_bytes(&r, mlen);

    if (!att_rb_done(&r) || code < ATT_ERROR_PROTOCOL_VIOLATION || code > ATT_ERROR_ABORTED ||
        mlen > ATT_MAX_ERROR_MESSAGE || !att_utf8_valid(msg, mlen))
        return violation("a malformed ERROR");
    set_detail("launcher: ", msg, mlen);
    *request_id = rid;
    return ATT_OK;
}

/* Waits for one frame of the wanted type during the handshake. */
static int receive_expected(uint8_t want, uint8_t **payload, size_t *len)
{
    uint8_t type = 0;
    uint32_t rid = 0;
    int rc = receive(&type, payload, len);

    if (rc != ATT_OK)
        return rc;
    if (type == want)
        return ATT_OK;
    if (type == ATT_FRAME_ERROR) {
        rc = launcher_error(*payload, *len, &rid);
        att_frame_free(*payload, *len);
        *payload = NULL;
        if (rc != ATT_OK)
            return rc;
        if (rid != 0)
            return violation("an ERROR for a request never made");
        rt.state = RT_DEAD;
        return ATT_E_PEER;
    }
    att_frame_free(*payload, *len);
    *payload = NULL;
    return violation(want == ATT_FRAME_CERT ? "another frame where CERT was due"
                                            : "another frame where SERVICE_KEYS was due");
}

static int pem_text(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] > 0x7f)
            return 0;
    return 1;
}

static int parse_cert(const uint8_t *p, size_t n)
{
    struct att_rbuf r = {p, n, 0, 0};
    uint32_t cert_len = att_rb_u32(&r);
    const uint8_t *cert = att_rb_bytes(&r, cert_len);
    uint32_t chain_len = att_rb_u32(&r);
    const uint8_t *chain = att_rb_bytes(&r, chain_len);
    uint16_t serial_len = att_rb_u16(&r);
    const uint8_t *serial = att_rb_bytes(&r, serial_len);

    if (!att_rb_done(&r) || cert_len == 0 || cert_len > ATT_MAX_CERT || chain_len > ATT_MAX_CHAIN ||
        !pem_text(chain, chain_len) || !att_serial_valid((const char *)serial, serial_len))
        return violation("a malformed CERT");
    rt.cert = malloc(cert_len);
    rt.chain = malloc(chain_len > 0 ? chain_len : 1);
    if (rt.cert == NULL || rt.chain == NULL)
        return ATT_E_NOMEM; /* the caller's wipe frees whichever succeeded */
    memcpy(rt.cert, cert, cert_len);
    rt.cert_len = cert_len;
    if (chain_len > 0)
        memcpy(rt.chain, chain, chain_len);
    rt.chain_len = chain_len;
    memcpy(rt.serial, serial, serial_len);
    rt.serial[serial_len] = '\0';
    return ATT_OK;
}

static int parse_service_keys(const uint8_t *p, size_t n)
{
    struct att_rbuf r = {p, n, 0, 0};
    uint16_t count = att_rb_u16(&r);

    if (r.err || count > ATT_MAX_SERVICES)
        return violation("a malformed SERVICE_KEYS");
    for (size_t i = 0; i < count; i++) {
        uint16_t id_len = att_rb_u16(&r);
        const char *id = (const char *)att_rb_bytes(&r, id_len);
        uint16_t key_len = att_rb_u16(&r);
        const uint8_t *key = att_rb_bytes(&r, key_len);

        if (r.err || !att_service_id_valid(id, id_len) || key_len != ATT_X25519_LEN)
            return violation("a malformed SERVICE_KEYS");
        for (size_t k = 0; k < i; k++)
            if (strlen(rt.services[k].id) == id_len && memcmp(rt.services[k].id, id, id_len) == 0)
                return violation("a SERVICE_KEYS with a service twice");
        memcpy(rt.services[i].id, id, id_len);
        rt.services[i].id[id_len] = '\0';
        memcpy(rt.services[i].pk, key, ATT_X25519_LEN);
        rt.nservices = i + 1;
    }
    if (!att_rb_done(&r))
        return violation("a malformed SERVICE_KEYS");
    return ATT_OK;
}

int att_runtime_init(void)
{
    uint8_t *payload = NULL;
    size_t len = 0;
    int rc;

    if (rt.state != RT_NONE)
        return ATT_E_STATE;
    detail[0] = '\0';
    /* Registered before the key exists: no path may leave it unwiped at exit. */
    if (!rt.atexit_registered) {
        if (atexit(wipe_at_exit) != 0)
            return ATT_E_NOMEM;
        rt.atexit_registered = 1;
    }
    rc = channel_fd(&rt.fd);
    if (rc != ATT_OK) {
        set_detail("no channel: set " ATT_FD_ENV " or pass fd 3", NULL, 0);
        rt.fd = -1;
        return rc;
    }
    harden_process();
    rt.state = RT_DEAD; /* until the handshake completes */

    rc = generate_key();
    if (rc == ATT_OK)
        rc = send_hello();
    if (rc == ATT_OK)
        rc = receive_expected(ATT_FRAME_CERT, &payload, &len);
    if (rc == ATT_OK) {
        rc = parse_cert(payload, len);
        att_frame_free(payload, len);
        payload = NULL;
    }
    if (rc == ATT_OK)
        rc = receive_expected(ATT_FRAME_SERVICE_KEYS, &payload, &len);
    if (rc == ATT_OK) {
        rc = parse_service_keys(payload, len);
        att_frame_free(payload, len);
        payload = NULL;
    }
    if (rc != ATT_OK) {
        wipe();
        return rc;
    }
    rt.state = RT_READY;
    return ATT_OK;
}

const char *att_certificate_serial(void)
{
    return rt.state == RT_READY ? rt.serial : NULL;
}

const uint8_t *att_certificate_der(size_t *len)
{
    if (len != NULL)
        *len = rt.state == RT_READY ? rt.cert_len : 0;
    return rt.state == RT_READY ? rt.cert : NULL;
}

const uint8_t *att_certificate_chain_pem(size_t *len)
{
    if (len != NULL)
        *len = rt.state == RT_READY ? rt.chain_len : 0;
    return rt.state == RT_READY ? rt.chain : NULL;
}

int att_public_key(uint8_t out[ATT_X25519_LEN])
{
    if (out == NULL)
        return ATT_E_ARG;
    if (rt.state != RT_READY)
        return ATT_E_STATE;
    memcpy(out, rt.pk, ATT_X25519_LEN);
    return ATT_OK;
}

size_t att_service_count(void)
{
    return rt.state == RT_READY ? rt.nservices : 0;
}

const char *att_service_id(size_t index)
{
    return rt.state == RT_READY && index < rt.nservices ? rt.services[index].id : NULL;
}

static const struct service *find_service(const char *id)
{
    size_t len;
    if (id == NULL)
        return NULL;
    len = strnlen(id, ATT_SERVICE_ID_MAX + 1u);
    if (len > ATT_SERVICE_ID_MAX)
        return NULL;
    for (size_t i = 0; i < rt.nservices; i++)
        if (strcmp(rt.services[i].id, id) == 0)
            return &rt.services[i];
    return NULL;
}

int att_seal_to_service(const char *service_id, const uint8_t nonce[ATT_NONCE_LEN], const uint8_t *pt,
                        size_t pt_len, uint8_t *out, size_t out_cap, size_t *out_len)
{
    uint8_t info[ATT_INFO_MAX];
    size_t info_len = 0;
    const struct service *svc;
    int rc;

    if (rt.state != RT_READY)
        return ATT_E_STATE;
    svc = find_service(service_id);
    if (svc == NULL)
        return ATT_E_NOT_FOUND;
    rc = att_info_build(ATT_DIRECTION_REQUEST, svc->id, rt.serial, nonce, info, sizeof info, &info_len);
    if (rc != ATT_OK)
        return rc;
    /* aad stays empty: everything the message is bound to is in info. */
    return att_hpke_seal(svc->pk, info, info_len, NULL, 0, pt, pt_len, out, out_cap, out_len);
}

int att_open_from_service(const char *service_id, const uint8_t nonce[ATT_NONCE_LEN], const uint8_t *sealed,
                          size_t sealed_len, uint8_t *out, size_t out_cap, size_t *out_len)
{
    uint8_t info[ATT_INFO_MAX];
    size_t info_len = 0;
    const struct service *svc;
    int rc;

    if (rt.state != RT_READY)
        return ATT_E_STATE;
    svc = find_service(service_id);
    if (svc == NULL)
        return ATT_E_NOT_FOUND;
    rc = att_info_build(ATT_DIRECTION_RESPONSE, svc->id, rt.serial, nonce, info, sizeof info, &info_len);
    if (rc != ATT_OK)
        return rc;
    return att_hpke_open(att_sk, info, info_len, NULL, 0, sealed, sealed_len, out, out_cap, out_len);
}

void att_free(void *p, size_t len)
{
    att_frame_free(p, len);
}

/* The RESULT for request rid: opens its answer into a fresh heap buffer. */
static int take_result(const uint8_t *p, size_t n, uint32_t rid, const char *service_id,
                       const uint8_t nonce[ATT_NONCE_LEN], uint8_t **answer, size_t *answer_len)
{
    struct att_rbuf r = {p, n, 0, 0};
    uint32_t got_rid = att_rb_u32(&r);
    uint16_t status = att_rb_u16(&r);
    uint32_t sealed_len = att_rb_u32(&r);
    const uint8_t *sealed = att_rb_bytes(&r, sealed_len);
    uint8_t *plain;
    size_t plain_cap, plain_len = 0;
    int rc;

    if (!att_rb_done(&r) || status > ATT_STATUS_FAILED ||
        (status != ATT_STATUS_OK && sealed_len != 0) || (sealed_len != 0 && sealed_len < ATT_HPKE_OVERHEAD))
        return violation("a malformed RESULT");
    if (got_rid != rid)
        return violation("a RESULT for a request not outstanding");
    if (status == ATT_STATUS_DENIED)
        return ATT_E_DENIED;
    if (status == ATT_STATUS_FAILED)
        return ATT_E_SERVICE;
    if (sealed_len == 0)
        return ATT_OK;
    plain_cap = sealed_len - ATT_HPKE_OVERHEAD;
    plain = malloc(plain_cap > 0 ? plain_cap : 1);
    if (plain == NULL)
        return ATT_E_NOMEM;
    rc = att_open_from_service(service_id, nonce, sealed, sealed_len, plain, plain_cap, &plain_len);
    if (rc != ATT_OK) {
        /* Not a protocol violation: the channel is intact, the message is not ours
         * or was altered. The program decides what that means. */
        free(plain);
        set_detail("the answer did not open: wrong key, context or altered in transit", NULL, 0);
        return rc;
    }
    *answer = plain;
    *answer_len = plain_len;
    return ATT_OK;
}

static int request(uint8_t kind, const char *service_id, const uint8_t *msg, size_t msg_len, uint8_t **answer,
                   size_t *answer_len)
{
    uint8_t nonce[ATT_NONCE_LEN];
    const struct service *svc;
    struct att_wbuf w;
    size_t id_len, fixed, sealed_len = 0;
    uint32_t rid, err_rid = 0;
    uint8_t type = 0, *payload = NULL;
    size_t len = 0;
    int rc;

    if (answer == NULL || answer_len == NULL || (msg == NULL && msg_len != 0))
        return ATT_E_ARG;
    *answer = NULL;
    *answer_len = 0;
    detail[0] = '\0';
    if (rt.state != RT_READY)
        return ATT_E_STATE;
    svc = find_service(service_id);
    if (svc == NULL)
        return ATT_E_NOT_FOUND;
    id_len = strlen(svc->id);
    /* request_id, id, nonce, sealed length, HPKE overhead, and the type byte. */
    fixed = 4u + 2u + id_len + 2u + ATT_NONCE_LEN + 4u + ATT_HPKE_OVERHEAD;
    if (msg_len > ATT_MAX_FRAME - 1u - fixed)
        return ATT_E_SPACE;
    if (rt.last_request_id == UINT32_MAX)
        return ATT_E_STATE;
    if (RAND_bytes(nonce, sizeof nonce) != 1)
        return ATT_E_CRYPTO;
    rid = ++rt.last_request_id;

    rc = att_frame_begin(&w, kind, fixed + msg_len);
    if (rc != ATT_OK)
        return rc;
    att_wb_u32(&w, rid);
    att_wb_u16(&w, (uint16_t)id_len);
    att_wb_bytes(&w, svc->id, id_len);
    att_wb_u16(&w, ATT_NONCE_LEN);
    att_wb_bytes(&w, nonce, ATT_NONCE_LEN);
    att_wb_u32(&w, (uint32_t)(msg_len + ATT_HPKE_OVERHEAD));
    /* Seal straight into the frame: the plaintext is never copied. */
    if (!w.err) {
        rc = att_seal_to_service(svc->id, nonce, msg, msg_len, w.p + w.len, w.cap - w.len, &sealed_len);
        if (rc == ATT_OK)
            w.len += sealed_len;
    }
    if (rc != ATT_OK) {
        att_frame_discard(&w);
        return rc;
    }
    rc = att_frame_send(rt.fd, &w);
    if (rc != ATT_OK) {
        rt.state = RT_DEAD;
        return rc;
    }

    rc = receive(&type, &payload, &len);
    if (rc != ATT_OK)
        return rc;
    if (type == ATT_FRAME_RESULT) {
        rc = take_result(payload, len, rid, svc->id, nonce, answer, answer_len);
    } else if (type == ATT_FRAME_ERROR) {
        rc = launcher_error(payload, len, &err_rid);
        if (rc == ATT_OK && err_rid == 0) {
            rt.state = RT_DEAD;
            rc = ATT_E_PEER;
        } else if (rc == ATT_OK && err_rid == rid) {
            rc = ATT_E_REFUSED;
        } else if (rc == ATT_OK) {
            rc = violation("an ERROR for a request not outstanding");
        }
    } else {
        rc = violation("another frame where RESULT or ERROR was due");
    }
    att_frame_free(payload, len);
    return rc;
}

int att_read(const char *service_id, const uint8_t *query, size_t query_len, uint8_t **answer,
             size_t *answer_len)
{
    return request(ATT_FRAME_READ, service_id, query, query_len, answer, answer_len);
}

int att_write(const char *service_id, const uint8_t *data, size_t data_len, uint8_t **answer,
              size_t *answer_len)
{
    return request(ATT_FRAME_WRITE, service_id, data, data_len, answer, answer_len);
}
