/*
 * A small, strict, bounded JSON reader and writer for the plaintext documents that
 * compartment programs exchange with the services (shared/eai.py). Part of the
 * runtime library, so every program the launcher builds can use it.
 *
 * Reader. att_json_parse() checks a whole document in one pass over a byte buffer of
 * explicit length (no NUL terminator assumed or needed) and records its values in a
 * token array the caller provides; it allocates nothing and does not recurse (an
 * explicit stack of at most ATT_JSON_MAX_DEPTH levels). Accepted: RFC 8259 JSON with
 * these restrictions, each a typed error with the byte offset where it was found:
 *   - numbers must be integers that fit int64_t (no fraction, no exponent);
 *   - strings must be well-formed UTF-8 (no overlongs, surrogates or code points above
 *     U+10FFFF), with no raw control characters; \u escapes must pair surrogates;
 *   - an object may not name a key twice (after decoding escapes);
 *   - nesting, the number of values, the length of each string and of the input are
 *     bounded (struct att_json_limits; the token array's capacity bounds the values).
 * Values are then reached by index ("handles", size_t): the root is 0; a container's
 * members follow it. ATT_JSON_NONE stands for "no such value" and every accessor
 * accepts it, so lookups chain without checks in between:
 *     att_json_get_int(doc, att_json_member(doc, 0, "sale"), "id", 1, INT64_MAX, &id)
 * The document keeps pointing into the caller's buffer: keep it alive while in use.
 *
 * Writer. struct att_json_writer builds a document into a fixed buffer: it escapes
 * strings, refuses invalid UTF-8, checks that keys and values alternate and that every
 * container is closed, and records the first error instead of writing past the end.
 *
 * Every int-returning function returns ATT_JSON_OK (0) or a negative ATT_JSON_E_*
 * code (distinct from the runtime's ATT_E_* codes); att_json_strerror() names it.
 */
#ifndef ATT_JSON_H
#define ATT_JSON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ATT_JSON_MAX_DEPTH 16u                    /* hard ceiling on nesting */
#define ATT_JSON_DEFAULT_MAX_INPUT (256u * 1024u) /* the services' body limit (shared/eai.py) */
#define ATT_JSON_INPUT_CEILING (16u * 1024u * 1024u)
#define ATT_JSON_DEFAULT_MAX_STRING 4096u         /* decoded bytes per string or key */
#define ATT_JSON_NONE SIZE_MAX

enum att_json_type {
    ATT_JSON_INVALID = 0, /* ATT_JSON_NONE or an index out of range */
    ATT_JSON_NULL = 1,
    ATT_JSON_BOOL = 2,
    ATT_JSON_INT = 3,
    ATT_JSON_STRING = 4,
    ATT_JSON_ARRAY = 5,
    ATT_JSON_OBJECT = 6
};

#define ATT_JSON_OK 0
/* Parse errors (att_json_parse sets the offset) */
#define ATT_JSON_E_ARG (-101)          /* invalid argument from the caller */
#define ATT_JSON_E_TOO_LARGE (-102)    /* input longer than limits.max_input */
#define ATT_JSON_E_TRUNCATED (-103)    /* input ends inside a value */
#define ATT_JSON_E_SYNTAX (-104)       /* a byte that cannot come here */
#define ATT_JSON_E_DEPTH (-105)        /* nesting deeper than limits.max_depth */
#define ATT_JSON_E_TOKENS (-106)       /* more values than the token array holds */
#define ATT_JSON_E_STRING_LONG (-107)  /* a string longer than limits.max_string */
#define ATT_JSON_E_CONTROL (-108)      /* a raw control character (< 0x20) in a string */
#define ATT_JSON_E_ESCAPE (-109)       /* an unknown escape or bad \u hex digits */
#define ATT_JSON_E_SURROGATE (-110)    /* a \u escape of an unpaired surrogate */
#define ATT_JSON_E_UTF8 (-111)         /* ill-formed UTF-8 in a string */
#define ATT_JSON_E_NUMBER (-112)       /* malformed number: lone '-', leading zero */
#define ATT_JSON_E_NOT_INTEGER (-113)  /* a number with a fraction or exponent */
#define ATT_JSON_E_RANGE (-114)        /* an integer outside int64_t, or outside the asked range */
#define ATT_JSON_E_DUPLICATE_KEY (-115) /* an object names a key twice */
#define ATT_JSON_E_TRAILING (-116)     /* bytes after the document */
/* Accessor and writer errors */
#define ATT_JSON_E_TYPE (-117)         /* the value is not of the asked type (or is NONE) */
#define ATT_JSON_E_MISSING (-118)      /* the object has no such member */
#define ATT_JSON_E_SPACE (-119)        /* the output buffer is too small */
#define ATT_JSON_E_NUL (-120)          /* a string holds U+0000: refused as a C string */
#define ATT_JSON_E_STATE (-121)        /* writer misuse: key/value out of turn, unbalanced */

const char *att_json_strerror(int rc);

/* Bounds of one parse; a zero field takes the default. */
struct att_json_limits {
    size_t max_input;  /* bytes, default ATT_JSON_DEFAULT_MAX_INPUT, at most ATT_JSON_INPUT_CEILING */
    size_t max_depth;  /* open containers, default and at most ATT_JSON_MAX_DEPTH */
    size_t max_string; /* decoded bytes of one string or key, default ATT_JSON_DEFAULT_MAX_STRING */
};

/* One value. Fields are public for tests and iteration; use the accessors. */
struct att_json_token {
    uint32_t start; /* offset of the value's first byte (a string's opening quote) */
    uint32_t len;   /* bytes of the value's text, quotes and brackets included */
    uint32_t next;  /* index of the first token after this value and everything in it */
    uint32_t count; /* array: elements; object: members; string: decoded bytes */
    int64_t num;    /* integer value; bool 0 or 1; string: a hash of its bytes (internal) */
    uint8_t type;   /* enum att_json_type */
};

struct att_json {
    const uint8_t *buf;
    size_t len;
    const struct att_json_token *tok;
    size_t ntok;
};

/*
 * Parses buf[0..len) into tokens[0..cap). On ATT_JSON_OK, doc describes the document
 * (doc->ntok tokens used). On error, doc is empty (ntok 0, every handle invalid) and
 * *err_offset (if not NULL) is the offset of the byte at fault (len for a truncated
 * input). limits may be NULL for the defaults. Objects take two tokens per member
 * (key, then value) plus one; every other value one.
 */
int att_json_parse(struct att_json *doc, const uint8_t *buf, size_t len,
                   struct att_json_token *tokens, size_t cap,
                   const struct att_json_limits *limits, size_t *err_offset);

/* ---- Navigation: handles are token indexes; ATT_JSON_NONE flows through ---- */

enum att_json_type att_json_type(const struct att_json *doc, size_t v);
/* Elements of an array, members of an object; 0 for anything else. */
size_t att_json_count(const struct att_json *doc, size_t v);
/* The value of the member named key (exact bytes after decoding), or NONE. */
size_t att_json_member(const struct att_json *doc, size_t obj, const char *key);
size_t att_json_member_n(const struct att_json *doc, size_t obj, const char *key, size_t key_len);
/* Iteration. For an array: its elements. For an object: its keys (a key's value is
 * att_json_value_of(key)). NONE when there is none left or v is not a container. */
size_t att_json_first(const struct att_json *doc, size_t container);
size_t att_json_next(const struct att_json *doc, size_t container, size_t item);
size_t att_json_value_of(const struct att_json *doc, size_t key);
/* The index-th element of an array (linear time), or NONE. */
size_t att_json_at(const struct att_json *doc, size_t array, size_t index);

/* ---- Scalars ---- */

int att_json_int(const struct att_json *doc, size_t v, int64_t *out);
/* ATT_JSON_E_RANGE if the integer is outside [min, max]; *out untouched on error. */
int att_json_int_range(const struct att_json *doc, size_t v, int64_t min, int64_t max, int64_t *out);
int att_json_bool(const struct att_json *doc, size_t v, int *out);
int att_json_is_null(const struct att_json *doc, size_t v); /* 1 or 0 */
/* Decoded length of a string in bytes, 0 for anything else. */
size_t att_json_string_len(const struct att_json *doc, size_t v);
/* Copies a string, decoded and NUL-terminated, into out[0..cap): needs cap >=
 * att_json_string_len() + 1, else ATT_JSON_E_SPACE. Refuses a string holding U+0000
 * (ATT_JSON_E_NUL), which would silently truncate as a C string. On error out[0] is
 * '\0' (when cap > 0) and *out_len 0. out_len may be NULL. */
int att_json_string(const struct att_json *doc, size_t v, char *out, size_t cap, size_t *out_len);
/* The decoded bytes alone (U+0000 allowed, no terminator); cap >= the length. */
int att_json_string_bytes(const struct att_json *doc, size_t v, uint8_t *out, size_t cap, size_t *out_len);
/* 1 if v is a string whose decoded bytes equal s[0..s_len), else 0. */
int att_json_string_eq(const struct att_json *doc, size_t v, const char *s, size_t s_len);

/* Member lookups in one call: ATT_JSON_E_MISSING when obj lacks the key, else as
 * the accessors above. */
int att_json_get_int(const struct att_json *doc, size_t obj, const char *key, int64_t min, int64_t max,
                     int64_t *out);
int att_json_get_bool(const struct att_json *doc, size_t obj, const char *key, int *out);
int att_json_get_string(const struct att_json *doc, size_t obj, const char *key, char *out, size_t cap,
                        size_t *out_len);

/* ---- Writer ---- */

struct att_json_writer {
    char *buf;
    size_t cap;
    size_t len;
    int err;                            /* first error, sticky */
    unsigned depth;                     /* open containers */
    uint8_t kind[ATT_JSON_MAX_DEPTH];   /* ATT_JSON_ARRAY or ATT_JSON_OBJECT per level */
    uint8_t items[ATT_JSON_MAX_DEPTH];  /* nonzero once a level has an item (comma due) */
    uint8_t key_done;                   /* in an object: a key was written, its value is due */
    uint8_t root_done;                  /* the top-level value is complete */
};

/* buf must have room for the text and a terminating NUL (written by finish). */
void att_json_writer_init(struct att_json_writer *w, char *buf, size_t cap);
void att_json_begin_object(struct att_json_writer *w);
void att_json_end_object(struct att_json_writer *w);
void att_json_begin_array(struct att_json_writer *w);
void att_json_end_array(struct att_json_writer *w);
void att_json_key(struct att_json_writer *w, const char *key);
void att_json_key_n(struct att_json_writer *w, const char *key, size_t len);
/* Strings must be valid UTF-8 (else ATT_JSON_E_UTF8). Written with the escapes \" \\
 * \b \f \n \r \t and \u00XX for the other control characters; anything else as is
 * (so the text is never longer than the strictest escaping of the same string). */
void att_json_put_string(struct att_json_writer *w, const char *s);
void att_json_put_string_n(struct att_json_writer *w, const char *s, size_t len);
void att_json_put_int(struct att_json_writer *w, int64_t v);
void att_json_put_bool(struct att_json_writer *w, int v);
void att_json_put_null(struct att_json_writer *w);
/* ATT_JSON_OK if exactly one complete value was written; then buf holds it,
 * NUL-terminated, and *len (if not NULL) its length. Otherwise the first error. */
int att_json_writer_finish(struct att_json_writer *w, size_t *len);

#ifdef __cplusplus
}
#endif

#endif /* ATT_JSON_H */
