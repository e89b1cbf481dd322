/*
 * Drives the evidence formatter with made-up capability records. Built twice by
 * tests/test_c_runtime.py: plain (native format) and with -DATT_FORCE_CHERI_FORMAT.
 * Prints one "label rc [json]" line per case.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

static const struct att_cap_record fake[] = {
    {"key_material", 0x40001230u, 32u, 0x6817du, 1},
    {"code", 0x100000u, 0x23000u, 0x28117u, 1},
    {"odd \"name\" \\ with\ncontrol\x01 and high \xff bytes", 0xffffffffffffffffu, 0u, 0u, 0},
};
#define NFAKE (sizeof fake / sizeof fake[0])

static void show(const char *label, int rc, const char *json)
{
    printf("%s %d %s\n", label, rc, rc == ATT_OK ? json : "-");
}

/* Every capacity below the needed one must be refused, never overrun. */
static int space_check(const struct att_cap_record *caps, size_t ncaps, size_t needed)
{
    static char buf[ATT_EVIDENCE_BUF + 16];
    size_t len = 0;
    for (size_t cap = 1; cap <= needed; cap++) {
        memset(buf, 'Z', sizeof buf);
        if (att_evidence_format(caps, ncaps, buf, cap, &len) != ATT_E_SPACE)
            return 0;
        if (buf[0] != '\0' || buf[cap] != 'Z')
            return 0;
    }
    return att_evidence_format(caps, ncaps, buf, needed + 1, &len) == ATT_OK && len == needed;
}

int main(void)
{
    static char buf[ATT_EVIDENCE_BUF];
    size_t len = 0;
    int rc;
    struct att_cap_record unnamed = {NULL, 0, 0, 0, 0};

    rc = att_evidence_format(fake, NFAKE, buf, sizeof buf, &len);
    show("records", rc, buf);
    if (rc == ATT_OK)
        printf("records-space %d\n", space_check(fake, NFAKE, len));

    rc = att_evidence_format(NULL, 0, buf, sizeof buf, &len);
    show("empty", rc, buf);
    if (rc == ATT_OK)
        printf("empty-space %d\n", space_check(NULL, 0, len));

    printf("unnamed %d\n", att_evidence_format(&unnamed, 1, buf, sizeof buf, &len));
    printf("null-out %d\n", att_evidence_format(NULL, 0, NULL, 10, &len));
    printf("too-many %d\n", att_evidence_format(fake, ATT_EVIDENCE_MAX_CAPS + 1, buf, sizeof buf, &len));

    rc = att_evidence_build(buf, sizeof buf, &len);
    show("build", rc, buf);
    return 0;
}
