/*
 * Handshake, then one request per argument, each "read:SERVICE:TEXT" or
 * "write:SERVICE:TEXT". Prints "OP rc=N answer=TEXT" per request; stops at the
 * first error that kills the channel, and then checks that shutting down wiped the
 * private key. Driven by tests/test_c_runtime.py, which plays launcher and services.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

static int key_is_zero(void)
{
    const unsigned char *k = att_key_material_ref();
    unsigned char acc = 0;
    for (size_t i = 0; i < ATT_X25519_LEN; i++)
        acc |= k[i];
    return acc == 0;
}

int main(int argc, char **argv)
{
    int rc = att_runtime_init();
    if (rc != ATT_OK) {
        fprintf(stderr, "handshake failed: %s: %s\n", att_strerror(rc), att_error_detail());
        return 1;
    }
    printf("serial %s\n", att_certificate_serial());
    for (int i = 1; i < argc; i++) {
        char op[16], service[ATT_SERVICE_ID_MAX + 2];
        const char *text, *colon = strchr(argv[i], ':');
        const char *colon2 = colon ? strchr(colon + 1, ':') : NULL;
        uint8_t *answer = NULL;
        size_t answer_len = 0, op_len, id_len;

        if (colon == NULL || colon2 == NULL || (op_len = (size_t)(colon - argv[i])) >= sizeof op ||
            (id_len = (size_t)(colon2 - colon - 1)) >= sizeof service) {
            fprintf(stderr, "bad argument %s\n", argv[i]);
            return 3;
        }
        memcpy(op, argv[i], op_len);
        op[op_len] = '\0';
        memcpy(service, colon + 1, id_len);
        service[id_len] = '\0';
        text = colon2 + 1;
        if (strcmp(op, "read") == 0)
            rc = att_read(service, (const uint8_t *)text, strlen(text), &answer, &answer_len);
        else
            rc = att_write(service, (const uint8_t *)text, strlen(text), &answer, &answer_len);
        printf("%s rc=%d answer=%.*s detail=%s\n", op, rc, (int)answer_len, answer ? (const char *)answer : "",
               att_error_detail());
        fflush(stdout);
        att_free(answer, answer_len);
        if (rc == ATT_E_PROTOCOL || rc == ATT_E_PEER || rc == ATT_E_CLOSED || rc == ATT_E_IO) {
            int had_key = !key_is_zero();
            att_runtime_shutdown();
            printf("key %s\n", had_key && key_is_zero() ? "wiped" : "NOT WIPED");
            return 1;
        }
    }
    att_runtime_shutdown();
    return 0;
}
