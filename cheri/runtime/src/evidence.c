/*
 * Evidence: the JSON text HELLO carries about the memory that holds the key.
 *
 * The formatting is separate from reading the capabilities so that a test can feed
 * it made-up records (built with -DATT_FORCE_CHERI_FORMAT); the real reads exist
 * only under __CHERI_PURE_CAPABILITY__, so no other build can claim capabilities.
 */
#include "internal.h"

#include <inttypes.h>
#include <stdio.h>

#include <openssl/crypto.h>

#if defined(__CHERI_PURE_CAPABILITY__) || defined(ATT_FORCE_CHERI_FORMAT)
#define ATT_EVIDENCE_CHERI 1
#endif

#ifdef __CHERI_PURE_CAPABILITY__
#include <cheriintrin.h>
#endif

#define ATT_RUNTIME_NAME "attestables-runtime/1"

/* A bounded JSON writer: out always holds a NUL-terminated prefix; overflow is
 * recorded, never written. */
struct jw {
    char *out;
    size_t cap;
    size_t len;
    int err;
};

static void jw_raw(struct jw *w, const char *s, size_t n)
{
    if (w->err || n >= w->cap - w->len) { /* keep one byte for the NUL */
        w->err = 1;
        return;
    }
    memcpy(w->out + w->len, s, n);
    w->len += n;
    w->out[w->len] = '\0';
}

static void jw_lit(struct jw *w, const char *s)
{
    jw_raw(w, s, strlen(s));
}

/* A JSON string. Control characters are escaped; bytes above 0x7f become '?' so the
 * output is ASCII, hence valid UTF-8, whatever the input. */
static void jw_str(struct jw *w, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    jw_raw(w, "\"", 1);
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            jw_raw(w, esc, 2);
        } else if (c < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf]};
            jw_raw(w, esc, 6);
        } else if (c > 0x7e) {
            jw_raw(w, "?", 1);
        } else {
            char ch = (char)c;
            jw_raw(w, &ch, 1);
        }
    }
    jw_raw(w, "\"", 1);
}

#ifdef ATT_EVIDENCE_CHERI
/* 64-bit values as hex strings: exact in every JSON reader (numbers above 2^53
 * are not) and how addresses are read anyway. */
static void jw_hex(struct jw *w, uint64_t v)
{
    char buf[2 + 16 + 2 + 1];
    int n = snprintf(buf, sizeof buf, "\"0x%" PRIx64 "\"", v);
    if (n < 0 || (size_t)n >= sizeof buf) {
        w->err = 1;
        return;
    }
    jw_raw(w, buf, (size_t)n);
}
#endif

int att_evidence_format(const struct att_cap_record *caps, size_t ncaps, char *out, size_t out_cap,
                        size_t *out_len)
{
    struct jw w;

    if (out == NULL || out_cap == 0 || out_len == NULL || (caps == NULL && ncaps != 0) ||
        ncaps > ATT_EVIDENCE_MAX_CAPS)
        return ATT_E_ARG;
#ifndef ATT_EVIDENCE_CHERI
    if (ncaps != 0)
        return ATT_E_ARG;
#endif
    for (size_t i = 0; i < ncaps; i++)
        if (caps[i].name == NULL)
            return ATT_E_ARG;
    w.out = out;
    w.cap = out_cap;
    w.len = 0;
    w.err = 0;
    out[0] = '\0';

    jw_lit(&w, "{\"version\":1,");
#ifdef ATT_EVIDENCE_CHERI
    jw_lit(&w, "\"cheri\":true,\"abi\":\"purecap\",\"capabilities\":[");
    for (size_t i = 0; i < ncaps; i++) {
        jw_lit(&w, i == 0 ? "{\"name\":" : ",{\"name\":");
        jw_str(&w, caps[i].name);
        jw_lit(&w, caps[i].tag ? ",\"tag\":true,\"base\":" : ",\"tag\":false,\"base\":");
        jw_hex(&w, caps[i].base);
        jw_lit(&w, ",\"length\":");
        jw_hex(&w, caps[i].length);
        jw_lit(&w, ",\"perms\":");
        jw_hex(&w, caps[i].perms);
        jw_lit(&w, "}");
    }
    jw_lit(&w, "]");
#elif defined(__CHERI__)
    /* Hybrid: pointers are plain addresses; nothing capability-backed to report. */
    jw_lit(&w, "\"cheri\":false,\"abi\":\"hybrid\",\"capabilities\":null");
#else
    jw_lit(&w, "\"cheri\":false,\"abi\":\"native\",\"capabilities\":null");
#endif
    jw_lit(&w, ",\"runtime\":\"" ATT_RUNTIME_NAME "\",\"crypto\":");
    jw_str(&w, OpenSSL_version(OPENSSL_VERSION));
    jw_lit(&w, "}");

    if (w.err) {
        out[0] = '\0';
        return ATT_E_SPACE;
    }
    *out_len = w.len;
    return ATT_OK;
}

#ifdef __CHERI_PURE_CAPABILITY__

static void cap_record(struct att_cap_record *r, const char *name, const void *cap)
{
    r->name = name;
    r->tag = cheri_tag_get(cap) ? 1 : 0;
    r->base = (uint64_t)cheri_base_get(cap);
    r->length = (uint64_t)cheri_length_get(cap);
    r->perms = (uint64_t)cheri_perms_get(cap);
}

size_t att_evidence_collect(struct att_cap_record *out, size_t max)
{
    size_t n = 0;
    if (out == NULL || max < 4)
        return 0;
    /* The key buffer: its bounds should be exactly the 32 key bytes. */
    cap_record(&out[n++], "key_material", att_key_material_ref());
    /* A function pointer carries the program's code capability: its bounds say how
     * much code shares the compartment with the key. */
    cap_record(&out[n++], "code", (const void *)(uintptr_t)&att_runtime_init);
    /* A global: the runtime's state, as any of the program's data is reached. */
    cap_record(&out[n++], "data", att_state_ref());
    /* Purecap code should run with a null DDC: no ambient authority over memory. */
    cap_record(&out[n++], "ddc", cheri_ddc_get());
    return n;
}

#else

size_t att_evidence_collect(struct att_cap_record *out, size_t max)
{
    (void)out;
    (void)max;
    return 0;
}

#endif

int att_evidence_build(char *out, size_t out_cap, size_t *out_len)
{
#if defined(ATT_FORCE_CHERI_FORMAT) && !defined(__CHERI_PURE_CAPABILITY__)
    /* A test build of the CHERI format must never reach a launcher. */
    (void)out;
    (void)out_cap;
    (void)out_len;
    return ATT_E_STATE;
#else
    struct att_cap_record caps[ATT_EVIDENCE_MAX_CAPS];
    size_t n = att_evidence_collect(caps, ATT_EVIDENCE_MAX_CAPS);
    return att_evidence_format(caps, n, out, out_cap, out_len);
#endif
}
