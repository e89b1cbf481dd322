/*
 * Fuzz driver for the runtime's JSON reader and writer (att_json.h). No libFuzzer
 * here (gcc only), so tests/test_json_parser.py generates the cases and runs this
 * under AddressSanitizer/UBSan.
 *
 *   json_fuzz [--tokens N] [--max-string N] [--max-depth N]
 *       reads cases from stdin, each a u32 big-endian length and that many bytes, until
 *       end of input; answers each with one line on stdout, flushed at once.
 *   json_fuzz [options] FILE...
 *       one case per file (to replay a failure).
 *
 * Answer lines: "ok HEX" (HEX: the document written back by the writer, from what the
 * accessors report) or "err CODE OFFSET". Every case is copied into a heap buffer of
 * exactly its length, so a read past the end is an ASan report, not luck. For each
 * accepted document the driver also checks the accessors against each other (member
 * lookup finds every member, string copies honour their capacity, iteration and
 * counts agree, wrong-type accessors refuse) and that the written-back text parses to
 * the same text again; a failed check prints "invariant: ..." and exits 3.
 */
#include "att_json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t max_tokens = 4096;
static struct att_json_limits limits;

static void invariant(int ok, const char *what, size_t v)
{
    if (!ok) {
        fprintf(stderr, "invariant: %s (token %zu)\n", what, v);
        exit(3);
    }
}

static void check_string(const struct att_json *doc, size_t v)
{
    size_t n = att_json_string_len(doc, v), got = 0, got2 = 0;
    uint8_t *bytes = malloc(n + 1);
    char *text = malloc(n + 1);
    int has_nul, rc;

    invariant(bytes != NULL && text != NULL, "out of memory", v);
    rc = att_json_string_bytes(doc, v, bytes, n, &got);
    invariant(rc == ATT_JSON_OK && got == n, "string_bytes with the exact capacity", v);
    has_nul = memchr(bytes, 0, n) != NULL;
    invariant(att_json_string_eq(doc, v, (const char *)bytes, n) == 1, "string_eq with its own bytes", v);
    if (n > 0) {
        invariant(att_json_string_bytes(doc, v, bytes, n - 1, &got2) == ATT_JSON_E_SPACE && got2 == 0,
                  "string_bytes one byte short", v);
        invariant(att_json_string_eq(doc, v, (const char *)bytes, n - 1) == 0, "string_eq with a prefix", v);
    }
    rc = att_json_string(doc, v, text, n + 1, &got2);
    if (has_nul) {
        invariant(rc == ATT_JSON_E_NUL && text[0] == '\0' && got2 == 0, "C string with U+0000 refused", v);
    } else {
        invariant(rc == ATT_JSON_OK && got2 == n && text[n] == '\0' && memcmp(text, bytes, n) == 0,
                  "C string copy", v);
        rc = att_json_string(doc, v, text, n, &got2);
        invariant(rc == ATT_JSON_E_SPACE && (n == 0 || text[0] == '\0'), "C string without room for NUL", v);
    }
    free(bytes);
    free(text);
}

/* Writes value v back through the writer, checking the accessors on the way. */
static void emit(const struct att_json *doc, size_t v, struct att_json_writer *w, unsigned depth)
{
    enum att_json_type type = att_json_type(doc, v);
    int64_t num = 0;
    int b = 0;

    invariant(depth <= ATT_JSON_MAX_DEPTH, "deeper than the limit", v);
    if (type != ATT_JSON_INT)
        invariant(att_json_int(doc, v, &num) == ATT_JSON_E_TYPE, "int accessor on another type", v);
    if (type != ATT_JSON_BOOL)
        invariant(att_json_bool(doc, v, &b) == ATT_JSON_E_TYPE, "bool accessor on another type", v);
    if (type != ATT_JSON_STRING)
        invariant(att_json_string_len(doc, v) == 0 && att_json_string_eq(doc, v, "", 0) == 0,
                  "string accessors on another type", v);
    if (type != ATT_JSON_ARRAY && type != ATT_JSON_OBJECT)
        invariant(att_json_count(doc, v) == 0 && att_json_first(doc, v) == ATT_JSON_NONE,
                  "container accessors on a scalar", v);

    switch (type) {
    case ATT_JSON_NULL:
        invariant(att_json_is_null(doc, v), "is_null", v);
        att_json_put_null(w);
        break;
    case ATT_JSON_BOOL:
        invariant(att_json_bool(doc, v, &b) == ATT_JSON_OK, "bool", v);
        att_json_put_bool(w, b);
        break;
    case ATT_JSON_INT:
        invariant(att_json_int(doc, v, &num) == ATT_JSON_OK, "int", v);
        invariant(att_json_int_range(doc, v, num, num, &num) == ATT_JSON_OK, "int in its own range", v);
        if (num < INT64_MAX)
            invariant(att_json_int_range(doc, v, num + 1, INT64_MAX, &num) == ATT_JSON_E_RANGE,
                      "int below the range", v);
        att_json_put_int(w, num);
        break;
    case ATT_JSON_STRING: {
        size_t n = att_json_string_len(doc, v), got = 0;
        uint8_t *bytes = malloc(n + 1);
        invariant(bytes != NULL, "out of memory", v);
        check_string(doc, v);
        invariant(att_json_string_bytes(doc, v, bytes, n, &got) == ATT_JSON_OK, "string bytes", v);
        att_json_put_string_n(w, (const char *)bytes, got);
        free(bytes);
        break;
    }
    case ATT_JSON_ARRAY: {
        size_t i = 0;
        att_json_begin_array(w);
        for (size_t e = att_json_first(doc, v); e != ATT_JSON_NONE; e = att_json_next(doc, v, e), i++) {
            invariant(att_json_at(doc, v, i) == e, "at() agrees with iteration", e);
            emit(doc, e, w, depth + 1);
        }
        invariant(i == att_json_count(doc, v), "array count", v);
        invariant(att_json_at(doc, v, i) == ATT_JSON_NONE, "at() past the end", v);
        att_json_end_array(w);
        break;
    }
    case ATT_JSON_OBJECT: {
        size_t i = 0;
        att_json_begin_object(w);
        for (size_t k = att_json_first(doc, v); k != ATT_JSON_NONE; k = att_json_next(doc, v, k), i++) {
            size_t n = att_json_string_len(doc, k), got = 0;
            uint8_t *key = malloc(n + 1);
            invariant(key != NULL, "out of memory", k);
            invariant(att_json_type(doc, k) == ATT_JSON_STRING, "keys are strings", k);
            check_string(doc, k);
            invariant(att_json_string_bytes(doc, k, key, n, &got) == ATT_JSON_OK, "key bytes", k);
            invariant(att_json_value_of(doc, k) == k + 1, "value_of", k);
            invariant(att_json_member_n(doc, v, (const char *)key, got) == k + 1, "member lookup by key", k);
            att_json_key_n(w, (const char *)key, got);
            free(key);
            emit(doc, k + 1, w, depth + 1);
        }
        invariant(i == att_json_count(doc, v), "object count", v);
        att_json_end_object(w);
        break;
    }
    default:
        invariant(0, "a token of no known type", v);
    }
}

/* Parses and writes back; returns the parse code, *out the text (malloc'd) on success. */
static int round_trip(const uint8_t *data, size_t len, struct att_json_token *tokens, char **out, size_t *out_len,
                      size_t *err_offset)
{
    struct att_json doc;
    struct att_json_writer w;
    size_t cap = len * 6 + 64;
    int rc = att_json_parse(&doc, data, len, tokens, max_tokens, &limits, err_offset);

    *out = NULL;
    *out_len = 0;
    if (rc != ATT_JSON_OK) {
        invariant(doc.ntok == 0 && att_json_type(&doc, 0) == ATT_JSON_INVALID, "a failed parse leaves no document",
                  0);
        invariant(*err_offset <= len || rc == ATT_JSON_E_TOO_LARGE, "error offset within the input", 0);
        return rc;
    }
    invariant(doc.ntok >= 1 && doc.ntok <= max_tokens && doc.tok[0].next == doc.ntok, "root spans the tokens", 0);
    invariant(att_json_type(&doc, doc.ntok) == ATT_JSON_INVALID && att_json_type(&doc, ATT_JSON_NONE) == 0,
              "handles past the end are invalid", doc.ntok);
    *out = malloc(cap);
    invariant(*out != NULL, "out of memory", 0);
    att_json_writer_init(&w, *out, cap);
    emit(&doc, 0, &w, 0);
    rc = att_json_writer_finish(&w, out_len);
    invariant(rc == ATT_JSON_OK, att_json_strerror(rc), 0);
    return ATT_JSON_OK;
}

static void run_case(const uint8_t *input, size_t len, struct att_json_token *tokens)
{
    uint8_t *data = malloc(len > 0 ? len : 1); /* exactly len bytes: ASan sees any overread */
    char *text = NULL, *again = NULL;
    size_t text_len = 0, again_len = 0, off = 0, off2 = 0;
    int rc;

    invariant(data != NULL, "out of memory", 0);
    if (len > 0)
        memcpy(data, input, len);
    rc = round_trip(data, len, tokens, &text, &text_len, &off);
    if (rc != ATT_JSON_OK) {
        printf("err %d %zu\n", rc, off);
    } else {
        /* What the writer wrote must read back to the same text (the limits permitting:
         * escapes can only shrink, so it fits the same string limit). */
        uint8_t *copy = malloc(text_len > 0 ? text_len : 1);
        invariant(copy != NULL, "out of memory", 0);
        memcpy(copy, text, text_len);
        rc = round_trip(copy, text_len, tokens, &again, &again_len, &off2);
        invariant(rc == ATT_JSON_OK, "the written-back document parses", off2);
        invariant(again_len == text_len && memcmp(again, text, text_len) == 0, "writing back is stable", 0);
        free(copy);
        fputs("ok ", stdout);
        for (size_t i = 0; i < text_len; i++)
            printf("%02x", (unsigned)(unsigned char)text[i]);
        putchar('\n');
    }
    fflush(stdout);
    free(text);
    free(again);
    free(data);
}

static int read_exact(FILE *f, uint8_t *buf, size_t n)
{
    return fread(buf, 1, n, f) == n;
}

static size_t parse_size(const char *s)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v == 0 || v > (1ull << 30)) {
        fprintf(stderr, "bad number %s\n", s);
        exit(2);
    }
    return (size_t)v;
}

int main(int argc, char **argv)
{
    struct att_json_token *tokens;
    int i = 1, status = 0;

    for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (strcmp(argv[i], "--tokens") == 0)
            max_tokens = parse_size(argv[i + 1]);
        else if (strcmp(argv[i], "--max-string") == 0)
            limits.max_string = parse_size(argv[i + 1]);
        else if (strcmp(argv[i], "--max-depth") == 0)
            limits.max_depth = parse_size(argv[i + 1]);
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    tokens = malloc(max_tokens * sizeof *tokens);
    if (tokens == NULL)
        return 2;

    if (i < argc) {
        for (; i < argc; i++) {
            FILE *f = fopen(argv[i], "rb");
            uint8_t *buf = malloc(ATT_JSON_INPUT_CEILING + 1);
            size_t n;
            if (f == NULL || buf == NULL) {
                fprintf(stderr, "cannot read %s\n", argv[i]);
                status = 2;
                if (f != NULL)
                    fclose(f);
                free(buf);
                continue;
            }
            n = fread(buf, 1, ATT_JSON_INPUT_CEILING + 1, f);
            fclose(f);
            run_case(buf, n, tokens);
            free(buf);
        }
    } else {
        uint8_t head[4];
        while (read_exact(stdin, head, sizeof head)) {
            size_t n = (size_t)head[0] << 24 | (size_t)head[1] << 16 | (size_t)head[2] << 8 | head[3];
            uint8_t *buf;
            if (n > ATT_JSON_INPUT_CEILING + 1) {
                fprintf(stderr, "case of %zu bytes is beyond the driver's limit\n", n);
                status = 2;
                break;
            }
            buf = malloc(n > 0 ? n : 1);
            if (buf == NULL || !read_exact(stdin, buf, n)) {
                fprintf(stderr, "truncated case\n");
                free(buf);
                status = 2;
                break;
            }
            run_case(buf, n, tokens);
            free(buf);
        }
    }
    free(tokens);
    return status;
}
