/* Helpers shared by the C test programs (driven by tests/test_c_runtime.py). */
#ifndef ATT_TESTUTIL_H
#define ATT_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes hex ("-" is empty) into a fresh buffer; exits on malformed input. */
static inline unsigned char *unhex(const char *s, size_t *len)
{
    size_t n;
    unsigned char *out;
    if (strcmp(s, "-") == 0)
        s = "";
    n = strlen(s);
    if (n % 2 != 0) {
        fprintf(stderr, "odd hex length\n");
        exit(3);
    }
    out = malloc(n / 2 + 1);
    if (out == NULL)
        exit(3);
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            fprintf(stderr, "bad hex\n");
            exit(3);
        }
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    *len = n / 2;
    return out;
}

static inline void print_hex(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%02x", p[i]);
    printf("\n");
}

#endif
