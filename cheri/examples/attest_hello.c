/*
 * The smallest attested program: completes the handshake with the launcher
 * (HELLO -> CERT -> SERVICE_KEYS), shows what it was given, and exits.
 * Build: cc -std=c11 -I cheri/runtime/include attest_hello.c, every .c file of
 * cheri/runtime/src, and -lcrypto (the launcher links the runtime itself).
 */
#include <stdio.h>

#include "attestables.h"

int main(void)
{
    int rc = att_runtime_init();
    if (rc != ATT_OK) {
        const char *why = att_error_detail();
        fprintf(stderr, "attest_hello: handshake failed: %s%s%s\n", att_strerror(rc), why[0] ? ": " : "", why);
        return 1;
    }
    printf("certificate serial: %s\n", att_certificate_serial());
    printf("services: %zu\n", att_service_count());
    for (size_t i = 0; i < att_service_count(); i++)
        printf("service: %s\n", att_service_id(i));
    att_runtime_shutdown();
    return 0;
}
