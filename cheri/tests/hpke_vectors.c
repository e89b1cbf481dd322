/*
 * Checks the runtime's HPKE against RFC 9180 test vectors, step by step. Reads
 * vectors from stdin, one "name hex" per line ("-" is empty):
 *   vector
 *   ikmR .. ikmE .. skRm .. pkRm .. skEm .. pkEm .. enc .. shared_secret .. key ..
 *   base_nonce .. info ..
 *   encryption SEQ AAD PT NONCE CT      (any number)
 *   end
 * Prints "ok VECTORS ENCRYPTIONS" and exits 0, or names the first mismatch and exits 1.
 */
#include "internal.h"

#include "testutil.h"

enum { IKMR, IKME, SKRM, PKRM, SKEM, PKEM, ENC, SHARED, KEY, BASE_NONCE, INFO, NFIELDS };
static const char *const names[NFIELDS] = {"ikmR", "ikmE", "skRm", "pkRm", "skEm", "pkEm",
                                           "enc", "shared_secret", "key", "base_nonce", "info"};

struct encryption {
    unsigned long long seq;
    unsigned char *aad, *pt, *nonce, *ct;
    size_t aad_len, pt_len, nonce_len, ct_len;
};

#define MAX_ENCRYPTIONS 1024
static unsigned char *field[NFIELDS];
static size_t field_len[NFIELDS];
static struct encryption encs[MAX_ENCRYPTIONS];
static size_t nencs;
static int vector_no;

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "vector %d: FAIL %s\n", vector_no, what);
        exit(1);
    }
}

static int same(const unsigned char *a, size_t a_len, const unsigned char *b, size_t b_len)
{
    return a_len == b_len && (a_len == 0 || memcmp(a, b, a_len) == 0);
}

static int all_zero(const unsigned char *p, size_t n)
{
    unsigned char acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

static void check_vector(void)
{
    unsigned char sk[32], pk[32], ss[32], key[32], base_nonce[12], nonce[12];
    unsigned char sealed[2048], opened[2048], ct[2048];
    size_t sealed_len = 0, opened_len = 0, ct_len = 0;
    const unsigned char *info = field[INFO];
    size_t info_len = field_len[INFO];
    struct encryption *e0 = &encs[0];

    for (int i = 0; i < NFIELDS; i++)
        check(field[i] != NULL, names[i]);
    check(nencs > 0 && encs[0].seq == 0, "a sequence-0 encryption is present");

    /* DeriveKeyPair, both sides. */
    check(att_hpke_derive_keypair(field[IKMR], field_len[IKMR], sk, pk) == ATT_OK, "DeriveKeyPair(ikmR) runs");
    check(same(sk, 32, field[SKRM], field_len[SKRM]), "DeriveKeyPair(ikmR) gives skRm");
    check(same(pk, 32, field[PKRM], field_len[PKRM]), "DeriveKeyPair(ikmR) gives pkRm");
    check(att_hpke_derive_keypair(field[IKME], field_len[IKME], sk, pk) == ATT_OK, "DeriveKeyPair(ikmE) runs");
    check(same(sk, 32, field[SKEM], field_len[SKEM]), "DeriveKeyPair(ikmE) gives skEm");
    check(same(pk, 32, field[PKEM], field_len[PKEM]), "DeriveKeyPair(ikmE) gives pkEm");
    check(same(field[ENC], field_len[ENC], field[PKEM], field_len[PKEM]), "enc is pkEm");

    /* Decap and the key schedule, from the recipient's side. */
    check(att_hpke_recipient_schedule(field[SKRM], field[ENC], info, info_len, ss, key, base_nonce) == ATT_OK,
          "recipient key schedule runs");
    check(same(ss, 32, field[SHARED], field_len[SHARED]), "shared_secret");
    check(same(key, 32, field[KEY], field_len[KEY]), "key");
    check(same(base_nonce, 12, field[BASE_NONCE], field_len[BASE_NONCE]), "base_nonce");

    /* Every encryption of the vector through the AEAD with ComputeNonce(seq). */
    for (size_t i = 0; i < nencs; i++) {
        struct encryption *e = &encs[i];
        att_hpke_nonce(base_nonce, e->seq, nonce);
        check(same(nonce, 12, e->nonce, e->nonce_len), "ComputeNonce(seq)");
        check(e->pt_len + ATT_HPKE_TAG_LEN <= sizeof ct, "encryption fits the test buffer");
        check(att_hpke_aead_seal(key, nonce, e->aad, e->aad_len, e->pt, e->pt_len, ct, sizeof ct, &ct_len) ==
                  ATT_OK,
              "AEAD seal runs");
        check(same(ct, ct_len, e->ct, e->ct_len), "ciphertext at this sequence number");
    }

    /* The single-shot API end to end: sealing with the vector's ikmE gives enc || ct0. */
    check(att_hpke_seal_derand(field[PKRM], field[IKME], field_len[IKME], info, info_len, e0->aad, e0->aad_len,
                               e0->pt, e0->pt_len, sealed, sizeof sealed, &sealed_len) == ATT_OK,
          "single-shot seal runs");
    check(sealed_len == 32 + e0->ct_len && same(sealed, 32, field[ENC], 32) &&
              same(sealed + 32, sealed_len - 32, e0->ct, e0->ct_len),
          "single-shot seal gives enc || ct of sequence 0");
    check(att_hpke_open(field[SKRM], info, info_len, e0->aad, e0->aad_len, sealed, sealed_len, opened,
                        sizeof opened, &opened_len) == ATT_OK,
          "single-shot open runs");
    check(same(opened, opened_len, e0->pt, e0->pt_len), "single-shot open gives pt");

    /* What must not open. Each failure leaves the output wiped. */
    sealed[sealed_len - 1] ^= 1;
    memset(opened, 0xaa, sizeof opened);
    check(att_hpke_open(field[SKRM], info, info_len, e0->aad, e0->aad_len, sealed, sealed_len, opened,
                        sizeof opened, &opened_len) == ATT_E_CRYPTO,
          "a flipped tag bit is refused");
    check(all_zero(opened, sizeof opened), "a failed open wipes its output");
    sealed[sealed_len - 1] ^= 1;
    sealed[0] ^= 1;
    check(att_hpke_open(field[SKRM], info, info_len, e0->aad, e0->aad_len, sealed, sealed_len, opened,
                        sizeof opened, &opened_len) == ATT_E_CRYPTO,
          "a flipped enc bit is refused");
    sealed[0] ^= 1;
    sealed[40] ^= 0x80;
    check(att_hpke_open(field[SKRM], info, info_len, e0->aad, e0->aad_len, sealed, sealed_len, opened,
                        sizeof opened, &opened_len) == ATT_E_CRYPTO,
          "a flipped ciphertext bit is refused");
    sealed[40] ^= 0x80;
    check(att_hpke_open(field[SKRM], info, info_len > 0 ? info_len - 1 : 0, e0->aad, e0->aad_len, sealed,
                        sealed_len, opened, sizeof opened, &opened_len) == ATT_E_CRYPTO,
          "another info is refused");
    check(att_hpke_open(field[SKRM], info, info_len, (const unsigned char *)"x", 1, sealed, sealed_len, opened,
                        sizeof opened, &opened_len) == ATT_E_CRYPTO,
          "another aad is refused");
    check(att_hpke_open(field[SKEM], info, info_len, e0->aad, e0->aad_len, sealed, sealed_len, opened,
                        sizeof opened, &opened_len) == ATT_E_CRYPTO,
          "another private key is refused");
    check(att_hpke_open(field[SKRM], info, info_len, e0->aad, e0->aad_len, sealed, ATT_HPKE_OVERHEAD - 1, opened,
                        sizeof opened, &opened_len) == ATT_E_CRYPTO,
          "a message shorter than enc + tag is refused");
    check(att_hpke_open(field[SKRM], info, info_len, e0->aad, e0->aad_len, sealed, sealed_len, opened,
                        e0->pt_len - 1, &opened_len) == ATT_E_SPACE,
          "a too small output buffer is refused");
    check(att_hpke_seal_derand(field[PKRM], field[IKME], field_len[IKME], info, info_len, e0->aad, e0->aad_len,
                               e0->pt, e0->pt_len, sealed, e0->pt_len + ATT_HPKE_OVERHEAD - 1, &sealed_len) ==
              ATT_E_SPACE,
          "seal refuses a too small output buffer");
    {
        /* enc = 0 is a low-order point: the all-zero DH output must be refused. */
        unsigned char low[ATT_HPKE_OVERHEAD + 8];
        memset(low, 0, sizeof low);
        check(att_hpke_open(field[SKRM], info, info_len, NULL, 0, low, sizeof low, opened, sizeof opened,
                            &opened_len) == ATT_E_CRYPTO,
              "a low-order enc is refused");
        check(att_hpke_seal(low, info, info_len, NULL, 0, e0->pt, e0->pt_len, sealed, sizeof sealed,
                            &sealed_len) == ATT_E_CRYPTO,
              "sealing to a low-order public key is refused");
    }

    /* The randomised seal: fresh enc each time, and it opens. */
    {
        unsigned char s1[256], s2[256];
        size_t l1 = 0, l2 = 0;
        check(att_hpke_seal(field[PKRM], info, info_len, NULL, 0, e0->pt, e0->pt_len, s1, sizeof s1, &l1) == ATT_OK &&
                  att_hpke_seal(field[PKRM], info, info_len, NULL, 0, e0->pt, e0->pt_len, s2, sizeof s2, &l2) ==
                      ATT_OK,
              "random seal runs");
        check(l1 == l2 && memcmp(s1, s2, 32) != 0, "random seals use fresh ephemeral keys");
        check(att_hpke_open(field[SKRM], info, info_len, NULL, 0, s1, l1, opened, sizeof opened, &opened_len) ==
                      ATT_OK &&
                  same(opened, opened_len, e0->pt, e0->pt_len),
              "random seal opens");
    }
}

static void reset(void)
{
    for (int i = 0; i < NFIELDS; i++) {
        free(field[i]);
        field[i] = NULL;
        field_len[i] = 0;
    }
    for (size_t i = 0; i < nencs; i++) {
        free(encs[i].aad);
        free(encs[i].pt);
        free(encs[i].nonce);
        free(encs[i].ct);
    }
    memset(encs, 0, sizeof encs);
    nencs = 0;
}

int main(void)
{
    static char line[65536];
    size_t total_encs = 0;

    while (fgets(line, sizeof line, stdin) != NULL) {
        char *name, *rest, *save = NULL;
        size_t n = strlen(line);
        if (n == sizeof line - 1 && line[n - 1] != '\n') {
            fprintf(stderr, "line too long\n");
            return 3;
        }
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        name = strtok_r(line, " ", &save);
        if (name == NULL)
            continue;
        if (strcmp(name, "vector") == 0) {
            reset();
            vector_no++;
        } else if (strcmp(name, "end") == 0) {
            check_vector();
            total_encs += nencs;
        } else if (strcmp(name, "encryption") == 0) {
            struct encryption *e;
            char *seq = strtok_r(NULL, " ", &save), *aad = strtok_r(NULL, " ", &save);
            char *pt = strtok_r(NULL, " ", &save), *nonce = strtok_r(NULL, " ", &save);
            char *ct = strtok_r(NULL, " ", &save);
            if (ct == NULL || nencs == MAX_ENCRYPTIONS) {
                fprintf(stderr, "bad encryption line\n");
                return 3;
            }
            e = &encs[nencs++];
            e->seq = strtoull(seq, NULL, 10);
            e->aad = unhex(aad, &e->aad_len);
            e->pt = unhex(pt, &e->pt_len);
            e->nonce = unhex(nonce, &e->nonce_len);
            e->ct = unhex(ct, &e->ct_len);
        } else {
            int i;
            rest = strtok_r(NULL, " ", &save);
            for (i = 0; i < NFIELDS; i++)
                if (strcmp(name, names[i]) == 0)
                    break;
            if (i == NFIELDS || rest == NULL) {
                fprintf(stderr, "unknown line %s\n", name);
                return 3;
            }
            free(field[i]);
            field[i] = unhex(rest, &field_len[i]);
        }
    }
    reset();
    if (vector_no == 0) {
        fprintf(stderr, "no vectors\n");
        return 3;
    }
    printf("ok %d %zu\n", vector_no, total_encs);
    return 0;
}
