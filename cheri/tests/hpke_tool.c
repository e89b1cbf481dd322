/*
 * Command-line access to the runtime's HPKE and info builder, for interop tests
 * against Python's cryptography. Hex in, hex out; "-" is the empty string.
 *   hpke_tool seal   PK INFO AAD PT      -> enc||ct
 *   hpke_tool open   SK INFO AAD SEALED  -> pt       (exit 2 if it does not open)
 *   hpke_tool derive IKM                 -> sk pk
 *   hpke_tool info   request|response SERVICE SERIAL NONCE -> info
 */
#include "internal.h"

#include "testutil.h"

static int fail(int rc)
{
    fprintf(stderr, "error: %s\n", att_strerror(rc));
    return 2;
}

int main(int argc, char **argv)
{
    size_t a_len, b_len, c_len, d_len, out_len = 0;
    unsigned char *a, *b, *c, *d, *out;
    int rc;

    if (argc == 6 && (strcmp(argv[1], "seal") == 0 || strcmp(argv[1], "open") == 0)) {
        a = unhex(argv[2], &a_len);
        b = unhex(argv[3], &b_len);
        c = unhex(argv[4], &c_len);
        d = unhex(argv[5], &d_len);
        if (a_len != ATT_X25519_LEN)
            return fail(ATT_E_ARG);
        out = malloc(d_len + ATT_HPKE_OVERHEAD);
        if (out == NULL)
            return 3;
        if (argv[1][0] == 's')
            rc = att_hpke_seal(a, b, b_len, c, c_len, d, d_len, out, d_len + ATT_HPKE_OVERHEAD, &out_len);
        else
            rc = att_hpke_open(a, b, b_len, c, c_len, d, d_len, out, d_len, &out_len);
        if (rc != ATT_OK)
            return fail(rc);
        print_hex(out, out_len);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "derive") == 0) {
        unsigned char sk[ATT_X25519_LEN], pk[ATT_X25519_LEN];
        a = unhex(argv[2], &a_len);
        rc = att_hpke_derive_keypair(a, a_len, sk, pk);
        if (rc != ATT_OK)
            return fail(rc);
        for (size_t i = 0; i < sizeof sk; i++)
            printf("%02x", sk[i]);
        printf(" ");
        print_hex(pk, sizeof pk);
        return 0;
    }
    if (argc == 6 && strcmp(argv[1], "info") == 0) {
        unsigned char info[ATT_INFO_MAX];
        enum att_direction dir = strcmp(argv[2], "request") == 0    ? ATT_DIRECTION_REQUEST
                                 : strcmp(argv[2], "response") == 0 ? ATT_DIRECTION_RESPONSE
                                                                    : (enum att_direction)0;
        d = unhex(argv[5], &d_len);
        if (d_len != ATT_NONCE_LEN)
            return fail(ATT_E_ARG);
        rc = att_info_build(dir, argv[3], argv[4], d, info, sizeof info, &out_len);
        if (rc != ATT_OK)
            return fail(rc);
        print_hex(info, out_len);
        return 0;
    }
    fprintf(stderr, "usage: hpke_tool seal|open|derive|info ...\n");
    return 3;
}
