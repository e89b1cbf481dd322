/*
 * Unit checks of the runtime's JSON API (att_json.h) that a generated corpus does not
 * reach on its own: the exact error codes and offsets, the limits, the lookup helpers
 * on missing members and wrong types, NONE flowing through, and the writer's escapes
 * and misuse. Prints "ok N" and exits 0, or names each failed check and exits 1.
 * Driven by tests/test_json_parser.py (also under AddressSanitizer/UBSan).
 */
#include "att_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int checks, failures;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        checks++;                                                                    \
        if (!(cond)) {                                                               \
            failures++;                                                              \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

static struct att_json_token tokens[64];

/* Parses a NUL-free literal (the length excludes the terminator, which the parser
 * never sees: the text is copied into a buffer of exactly its length). */
static int parse_n(struct att_json *doc, const char *text, size_t len, size_t cap,
                   const struct att_json_limits *limits, size_t *off)
{
    static uint8_t buf[1024];
    if (len > sizeof buf)
        abort();
    memcpy(buf, text, len);
    return att_json_parse(doc, buf, len, tokens, cap, limits, off);
}

static int parse(struct att_json *doc, const char *text, size_t *off)
{
    return parse_n(doc, text, strlen(text), 64, NULL, off);
}

static void expect_error(const char *text, int code, size_t offset)
{
    struct att_json doc;
    size_t off = 999;
    int rc = parse(&doc, text, &off);
    checks++;
    if (rc != code || off != offset) {
        failures++;
        fprintf(stderr, "%s: got %d (%s) at %zu, want %d at %zu\n", text, rc, att_json_strerror(rc), off, code,
                offset);
    }
}

static void test_errors(void)
{
    expect_error("", ATT_JSON_E_TRUNCATED, 0);
    expect_error("   ", ATT_JSON_E_TRUNCATED, 3);
    expect_error("{", ATT_JSON_E_TRUNCATED, 1);
    expect_error("[1,", ATT_JSON_E_TRUNCATED, 3);
    expect_error("[1,]", ATT_JSON_E_SYNTAX, 3);
    expect_error("{\"a\":1,}", ATT_JSON_E_SYNTAX, 7);
    expect_error("{\"a\" 1}", ATT_JSON_E_SYNTAX, 5);
    expect_error("{1:2}", ATT_JSON_E_SYNTAX, 1);
    expect_error("[1 2]", ATT_JSON_E_SYNTAX, 3);
    expect_error("[1}", ATT_JSON_E_SYNTAX, 2);
    expect_error("1 2", ATT_JSON_E_TRAILING, 2);
    expect_error("{} x", ATT_JSON_E_TRAILING, 3);
    expect_error("tru", ATT_JSON_E_TRUNCATED, 3);
    expect_error("trUe", ATT_JSON_E_SYNTAX, 2);
    expect_error("nul", ATT_JSON_E_TRUNCATED, 3);
    expect_error("NaN", ATT_JSON_E_SYNTAX, 0);
    expect_error("-Infinity", ATT_JSON_E_NUMBER, 0);
    expect_error("-", ATT_JSON_E_TRUNCATED, 1);
    expect_error("01", ATT_JSON_E_NUMBER, 0);
    expect_error("-01", ATT_JSON_E_NUMBER, 0);
    expect_error("+1", ATT_JSON_E_SYNTAX, 0);
    expect_error("1.5", ATT_JSON_E_NOT_INTEGER, 0);
    expect_error("[0,1e3]", ATT_JSON_E_NOT_INTEGER, 3);
    expect_error("1E3", ATT_JSON_E_NOT_INTEGER, 0);
    expect_error("9223372036854775808", ATT_JSON_E_RANGE, 0);
    expect_error("-9223372036854775809", ATT_JSON_E_RANGE, 0);
    expect_error("[99999999999999999999999999]", ATT_JSON_E_RANGE, 1);
    expect_error("\"abc", ATT_JSON_E_TRUNCATED, 4);
    expect_error("\"a\tb\"", ATT_JSON_E_CONTROL, 2);
    expect_error("\"\\x\"", ATT_JSON_E_ESCAPE, 1);
    expect_error("\"\\u12G4\"", ATT_JSON_E_ESCAPE, 1);
    expect_error("\"\\u12", ATT_JSON_E_TRUNCATED, 5);
    expect_error("\"\\ud800\"", ATT_JSON_E_SURROGATE, 1);
    expect_error("\"\\udc00\"", ATT_JSON_E_SURROGATE, 1);
    expect_error("\"\\ud800\\u0041\"", ATT_JSON_E_SURROGATE, 1);
    expect_error("\"\\ud800\\n\"", ATT_JSON_E_SURROGATE, 1);
    expect_error("\"\\ud800\\", ATT_JSON_E_TRUNCATED, 8);
    expect_error("\"\xc3\"", ATT_JSON_E_UTF8, 1);          /* lead byte, then a quote */
    expect_error("\"\xc0\xaf\"", ATT_JSON_E_UTF8, 1);      /* overlong '/' */
    expect_error("\"\xed\xa0\x80\"", ATT_JSON_E_UTF8, 1);  /* a surrogate, encoded */
    expect_error("\"\xf4\x90\x80\x80\"", ATT_JSON_E_UTF8, 1); /* above U+10FFFF */
    expect_error("\"\xe2\x82", ATT_JSON_E_TRUNCATED, 3);
    expect_error("\xef\xbb\xbf{}", ATT_JSON_E_SYNTAX, 0); /* a byte order mark */
    expect_error("{\"a\":1,\"a\":2}", ATT_JSON_E_DUPLICATE_KEY, 7);
    expect_error("{\"a\":1,\"b\":{\"a\":1,\"\\u0061\":2}}", ATT_JSON_E_DUPLICATE_KEY, 18);
    expect_error("[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]", ATT_JSON_E_DEPTH, 16);
}

static void test_nul_bytes_are_data(void)
{
    struct att_json doc;
    size_t off = 0;
    char out[8];
    uint8_t raw[8];
    size_t n = 0;

    /* A NUL byte outside a string is a syntax error; inside, a control character. */
    CHECK(parse_n(&doc, "[1]\0", 4, 64, NULL, &off) == ATT_JSON_E_TRAILING && off == 3);
    CHECK(parse_n(&doc, "\"a\0b\"", 5, 64, NULL, &off) == ATT_JSON_E_CONTROL && off == 2);
    /* An escaped U+0000 is data: refused as a C string, kept as bytes. */
    CHECK(parse(&doc, "\"a\\u0000b\"", &off) == ATT_JSON_OK);
    CHECK(att_json_string_len(&doc, 0) == 3);
    CHECK(att_json_string(&doc, 0, out, sizeof out, &n) == ATT_JSON_E_NUL && out[0] == '\0' && n == 0);
    CHECK(att_json_string_bytes(&doc, 0, raw, sizeof raw, &n) == ATT_JSON_OK && n == 3 &&
          memcmp(raw, "a\0b", 3) == 0);
    CHECK(att_json_string_eq(&doc, 0, "a\0b", 3) == 1);
}

static void test_limits(void)
{
    struct att_json doc;
    struct att_json_limits lim = {0, 0, 0};
    size_t off = 0;

    lim.max_depth = 2;
    CHECK(parse_n(&doc, "[[1]]", 5, 64, &lim, &off) == ATT_JSON_OK);
    CHECK(parse_n(&doc, "[[[1]]]", 7, 64, &lim, &off) == ATT_JSON_E_DEPTH && off == 2);
    CHECK(parse_n(&doc, "{\"a\":{\"b\":{}}}", 14, 64, &lim, &off) == ATT_JSON_E_DEPTH && off == 10);
    lim.max_depth = ATT_JSON_MAX_DEPTH + 1;
    CHECK(parse_n(&doc, "1", 1, 64, &lim, &off) == ATT_JSON_E_ARG);
    lim.max_depth = 0;

    lim.max_string = 3;
    CHECK(parse_n(&doc, "\"abc\"", 5, 64, &lim, &off) == ATT_JSON_OK);
    CHECK(parse_n(&doc, "\"abcd\"", 6, 64, &lim, &off) == ATT_JSON_E_STRING_LONG && off == 0);
    CHECK(parse_n(&doc, "\"\\u00e9\\u00e9\"", 14, 64, &lim, &off) == ATT_JSON_E_STRING_LONG); /* 4 bytes */
    CHECK(parse_n(&doc, "{\"abcd\":1}", 10, 64, &lim, &off) == ATT_JSON_E_STRING_LONG && off == 1);
    lim.max_string = 0;

    lim.max_input = 4;
    CHECK(parse_n(&doc, "1234", 4, 64, &lim, &off) == ATT_JSON_OK);
    CHECK(parse_n(&doc, "12345", 5, 64, &lim, &off) == ATT_JSON_E_TOO_LARGE && off == 4);
    lim.max_input = ATT_JSON_INPUT_CEILING + 1;
    CHECK(parse_n(&doc, "1", 1, 64, &lim, &off) == ATT_JSON_E_ARG);

    /* Tokens: [1,2,3] takes 4; {"a":1} takes 3. */
    CHECK(parse_n(&doc, "[1,2,3]", 7, 4, NULL, &off) == ATT_JSON_OK && doc.ntok == 4);
    CHECK(parse_n(&doc, "[1,2,3]", 7, 3, NULL, &off) == ATT_JSON_E_TOKENS && off == 5);
    CHECK(parse_n(&doc, "{\"a\":1}", 7, 3, NULL, &off) == ATT_JSON_OK);
    CHECK(parse_n(&doc, "{\"a\":1}", 7, 2, NULL, &off) == ATT_JSON_E_TOKENS);

    CHECK(att_json_parse(&doc, NULL, 1, tokens, 64, NULL, &off) == ATT_JSON_E_ARG);
    CHECK(att_json_parse(&doc, (const uint8_t *)"1", 1, NULL, 64, NULL, &off) == ATT_JSON_E_ARG);
    CHECK(att_json_parse(&doc, (const uint8_t *)"1", 1, tokens, 0, NULL, &off) == ATT_JSON_E_ARG);
    CHECK(att_json_parse(NULL, (const uint8_t *)"1", 1, tokens, 64, NULL, &off) == ATT_JSON_E_ARG);
    CHECK(att_json_parse(&doc, (const uint8_t *)"1", 1, tokens, 64, NULL, NULL) == ATT_JSON_OK);
}

static void test_integers(void)
{
    struct att_json doc;
    size_t off;
    int64_t v = 0;

    CHECK(parse(&doc, "[9223372036854775807,-9223372036854775808,-0,0,42]", &off) == ATT_JSON_OK);
    CHECK(att_json_int(&doc, att_json_at(&doc, 0, 0), &v) == ATT_JSON_OK && v == INT64_MAX);
    CHECK(att_json_int(&doc, att_json_at(&doc, 0, 1), &v) == ATT_JSON_OK && v == INT64_MIN);
    CHECK(att_json_int(&doc, att_json_at(&doc, 0, 2), &v) == ATT_JSON_OK && v == 0);
    v = 7;
    CHECK(att_json_int_range(&doc, att_json_at(&doc, 0, 4), 0, 41, &v) == ATT_JSON_E_RANGE && v == 7);
    CHECK(att_json_int_range(&doc, att_json_at(&doc, 0, 4), 42, 42, &v) == ATT_JSON_OK && v == 42);
    CHECK(att_json_int(&doc, att_json_at(&doc, 0, 5), &v) == ATT_JSON_E_TYPE);
    CHECK(att_json_int(&doc, 0, NULL) == ATT_JSON_E_ARG);
}

static void test_lookups(void)
{
    struct att_json doc;
    size_t off, n = 99, sales, sale;
    int64_t id = 0;
    int b = -1;
    char name[6];

    CHECK(parse(&doc,
                " {\"sales\": [{\"id\": 7, \"customer\": \"Al\\u00e9x\", \"vip\": true, \"note\": null}],"
                " \"last_id\": 7, \"caf\\u00e9\": \"x\", \"empty\": {}, \"list\": []} ",
                &off) == ATT_JSON_OK);
    CHECK(att_json_type(&doc, 0) == ATT_JSON_OBJECT && att_json_count(&doc, 0) == 5);
    sales = att_json_member(&doc, 0, "sales");
    CHECK(att_json_type(&doc, sales) == ATT_JSON_ARRAY && att_json_count(&doc, sales) == 1);
    sale = att_json_at(&doc, sales, 0);
    CHECK(att_json_get_int(&doc, sale, "id", 1, INT64_MAX, &id) == ATT_JSON_OK && id == 7);
    CHECK(att_json_get_bool(&doc, sale, "vip", &b) == ATT_JSON_OK && b == 1);
    CHECK(att_json_is_null(&doc, att_json_member(&doc, sale, "note")));
    /* "Alx" with an e-acute: 5 bytes; needs 6 with the NUL. */
    CHECK(att_json_get_string(&doc, sale, "customer", name, 6, &n) == ATT_JSON_OK && n == 5 &&
          strcmp(name, "Al\xc3\xa9x") == 0);
    CHECK(att_json_get_string(&doc, sale, "customer", name, 5, &n) == ATT_JSON_E_SPACE && n == 0 &&
          name[0] == '\0');
    CHECK(att_json_get_string(&doc, sale, "id", name, 6, &n) == ATT_JSON_E_TYPE);
    CHECK(att_json_get_string(&doc, sale, "phone", name, 6, &n) == ATT_JSON_E_MISSING);
    CHECK(att_json_get_int(&doc, sale, "customer", 0, 1, &id) == ATT_JSON_E_TYPE);
    CHECK(att_json_get_int(&doc, sale, "missing", 0, 1, &id) == ATT_JSON_E_MISSING);
    CHECK(att_json_get_int(&doc, 0, "last_id", 8, 9, &id) == ATT_JSON_E_RANGE);
    CHECK(att_json_member(&doc, 0, "caf\xc3\xa9") != ATT_JSON_NONE); /* keys compare decoded */
    CHECK(att_json_member(&doc, 0, "cafe") == ATT_JSON_NONE);
    CHECK(att_json_member(&doc, 0, "") == ATT_JSON_NONE);
    CHECK(att_json_member(&doc, 0, NULL) == ATT_JSON_NONE);
    CHECK(att_json_count(&doc, att_json_member(&doc, 0, "empty")) == 0);
    CHECK(att_json_first(&doc, att_json_member(&doc, 0, "list")) == ATT_JSON_NONE);
    /* NONE flows through every accessor. */
    CHECK(att_json_member(&doc, att_json_member(&doc, 0, "nope"), "id") == ATT_JSON_NONE);
    CHECK(att_json_get_int(&doc, ATT_JSON_NONE, "id", 0, 1, &id) == ATT_JSON_E_TYPE);
    CHECK(att_json_get_string(&doc, sales, "id", name, 6, &n) == ATT_JSON_E_TYPE); /* an array */
    CHECK(att_json_type(&doc, ATT_JSON_NONE) == ATT_JSON_INVALID);
    CHECK(att_json_at(&doc, sales, 1) == ATT_JSON_NONE);
    CHECK(att_json_next(&doc, sales, 0) == ATT_JSON_NONE);          /* not inside */
    CHECK(att_json_next(&doc, sales, doc.ntok) == ATT_JSON_NONE);   /* past the end */
    CHECK(att_json_next(&doc, 0, doc.ntok - 1) == ATT_JSON_NONE);   /* the last value: no key follows */
    CHECK(att_json_value_of(&doc, doc.ntok - 1) == ATT_JSON_NONE);
    CHECK(att_json_type(NULL, 0) == ATT_JSON_INVALID && att_json_count(NULL, 0) == 0);
}

static int written(void (*build)(struct att_json_writer *), size_t cap, const char *want, int want_rc)
{
    char buf[300]; /* more than any cap below: the byte at buf[cap] must stay untouched */
    struct att_json_writer w;
    size_t len = 99;
    int rc;
    memset(buf, 'X', sizeof buf);
    att_json_writer_init(&w, buf, cap);
    build(&w);
    rc = att_json_writer_finish(&w, &len);
    if (rc != want_rc) {
        fprintf(stderr, "writer: got %d (%s), want %d\n", rc, att_json_strerror(rc), want_rc);
        return 0;
    }
    if (rc != ATT_JSON_OK)
        return len == 0 && (cap == 0 || buf[0] == '\0') && buf[cap] == 'X';
    if (strcmp(buf, want) != 0 || len != strlen(want)) {
        fprintf(stderr, "writer: got %s, want %s\n", buf, want);
        return 0;
    }
    return 1;
}

static void build_query(struct att_json_writer *w)
{
    att_json_begin_object(w);
    att_json_key(w, "after_id");
    att_json_put_int(w, 0);
    att_json_key(w, "limit");
    att_json_put_int(w, 50);
    att_json_key(w, "list");
    att_json_begin_array(w);
    att_json_put_int(w, INT64_MIN);
    att_json_put_int(w, INT64_MAX);
    att_json_put_bool(w, 1);
    att_json_put_bool(w, 0);
    att_json_put_null(w);
    att_json_begin_object(w);
    att_json_end_object(w);
    att_json_begin_array(w);
    att_json_end_array(w);
    att_json_end_array(w);
    att_json_end_object(w);
}

static void build_escapes(struct att_json_writer *w)
{
    att_json_begin_object(w);
    att_json_key(w, "t\"x");
    att_json_put_string(w, "a\"b\\c/d\b\f\n\r\t\x01\x1f\x7f \xc3\xa9\xf0\x9f\x9a\x95");
    att_json_end_object(w);
}

static void build_bad_utf8(struct att_json_writer *w)
{
    att_json_begin_array(w);
    att_json_put_string(w, "ok");
    att_json_put_string(w, "\xed\xa0\x80"); /* an encoded surrogate */
    att_json_end_array(w);
}

static void build_value_without_key(struct att_json_writer *w)
{
    att_json_begin_object(w);
    att_json_put_int(w, 1);
    att_json_end_object(w);
}

static void build_key_in_array(struct att_json_writer *w)
{
    att_json_begin_array(w);
    att_json_key(w, "a");
    att_json_end_array(w);
}

static void build_dangling_key(struct att_json_writer *w)
{
    att_json_begin_object(w);
    att_json_key(w, "a");
    att_json_end_object(w);
}

static void build_mismatch(struct att_json_writer *w)
{
    att_json_begin_object(w);
    att_json_end_array(w);
}

static void build_unclosed(struct att_json_writer *w)
{
    att_json_begin_array(w);
}

static void build_two_roots(struct att_json_writer *w)
{
    att_json_put_int(w, 1);
    att_json_put_int(w, 2);
}

static void build_nothing(struct att_json_writer *w)
{
    (void)w;
}

static void build_too_deep(struct att_json_writer *w)
{
    for (int i = 0; i < 17; i++)
        att_json_begin_array(w);
    for (int i = 0; i < 17; i++)
        att_json_end_array(w);
}

static void build_null_string(struct att_json_writer *w)
{
    att_json_put_string(w, NULL);
}

static void build_short(struct att_json_writer *w)
{
    att_json_put_string(w, "abcd"); /* 6 bytes and the NUL */
}

static void test_writer(void)
{
    CHECK(written(build_query, 256,
                  "{\"after_id\":0,\"limit\":50,\"list\":[-9223372036854775808,9223372036854775807,true,false,"
                  "null,{},[]]}",
                  ATT_JSON_OK));
    CHECK(written(build_escapes, 256,
                  "{\"t\\\"x\":\"a\\\"b\\\\c/d\\b\\f\\n\\r\\t\\u0001\\u001f\x7f \xc3\xa9\xf0\x9f\x9a\x95\"}",
                  ATT_JSON_OK));
    CHECK(written(build_bad_utf8, 256, "", ATT_JSON_E_UTF8));
    CHECK(written(build_value_without_key, 256, "", ATT_JSON_E_STATE));
    CHECK(written(build_key_in_array, 256, "", ATT_JSON_E_STATE));
    CHECK(written(build_dangling_key, 256, "", ATT_JSON_E_STATE));
    CHECK(written(build_mismatch, 256, "", ATT_JSON_E_STATE));
    CHECK(written(build_unclosed, 256, "", ATT_JSON_E_STATE));
    CHECK(written(build_two_roots, 256, "", ATT_JSON_E_STATE));
    CHECK(written(build_nothing, 256, "", ATT_JSON_E_STATE));
    CHECK(written(build_too_deep, 256, "", ATT_JSON_E_DEPTH));
    CHECK(written(build_null_string, 256, "", ATT_JSON_E_ARG));
    CHECK(written(build_short, 7, "\"abcd\"", ATT_JSON_OK));
    CHECK(written(build_short, 6, "", ATT_JSON_E_SPACE));
    CHECK(written(build_short, 0, "", ATT_JSON_E_ARG));
    CHECK(att_json_writer_finish(NULL, NULL) == ATT_JSON_E_ARG);
}

static void test_strerror(void)
{
    for (int rc = ATT_JSON_E_STATE; rc <= ATT_JSON_E_ARG; rc++)
        CHECK(strcmp(att_json_strerror(rc), "unknown error") != 0);
    CHECK(strcmp(att_json_strerror(ATT_JSON_OK), "ok") == 0);
    CHECK(strcmp(att_json_strerror(-1), "unknown error") == 0);
}

int main(void)
{
    test_errors();
    test_nul_bytes_are_data();
    test_limits();
    test_integers();
    test_lookups();
    test_writer();
    test_strerror();
    if (failures != 0) {
        fprintf(stderr, "%d of %d checks failed\n", failures, checks);
        return 1;
    }
    printf("ok %d\n", checks);
    return 0;
}
