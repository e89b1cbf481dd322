/*
 * The runtime's JSON reader and writer (include/att_json.h).
 *
 * The reader is a single forward pass with an explicit stack: no recursion, no
 * allocation, every index checked against the input length before it is read. It
 * validates everything (UTF-8, escapes, integer range, duplicate keys) while it
 * records tokens, so the accessors can decode strings later without failing.
 */
#include "att_json.h"

#include <string.h>

/* Token indexes and offsets are stored as uint32_t. */
#define TOKEN_CEILING (UINT32_MAX - 1u)

/* FNV-1a over a string's decoded bytes, kept in the token's num: the duplicate-key
 * check compares hashes before it decodes, so a hostile object of many equally long
 * keys costs integer comparisons, not a decode per pair. */
#define FNV_OFFSET UINT64_C(14695981039346656037)
#define FNV_PRIME UINT64_C(1099511628211)

static uint64_t fnv(uint64_t h, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= FNV_PRIME;
    }
    return h;
}

const char *att_json_strerror(int rc)
{
    switch (rc) {
    case ATT_JSON_OK: return "ok";
    case ATT_JSON_E_ARG: return "invalid argument";
    case ATT_JSON_E_TOO_LARGE: return "document too large";
    case ATT_JSON_E_TRUNCATED: return "document ends inside a value";
    case ATT_JSON_E_SYNTAX: return "syntax error";
    case ATT_JSON_E_DEPTH: return "nesting too deep";
    case ATT_JSON_E_TOKENS: return "too many values";
    case ATT_JSON_E_STRING_LONG: return "string too long";
    case ATT_JSON_E_CONTROL: return "control character in a string";
    case ATT_JSON_E_ESCAPE: return "invalid escape";
    case ATT_JSON_E_SURROGATE: return "unpaired surrogate escape";
    case ATT_JSON_E_UTF8: return "ill-formed UTF-8";
    case ATT_JSON_E_NUMBER: return "malformed number";
    case ATT_JSON_E_NOT_INTEGER: return "number is not an integer";
    case ATT_JSON_E_RANGE: return "integer out of range";
    case ATT_JSON_E_DUPLICATE_KEY: return "duplicate key";
    case ATT_JSON_E_TRAILING: return "data after the document";
    case ATT_JSON_E_TYPE: return "value of another type";
    case ATT_JSON_E_MISSING: return "member missing";
    case ATT_JSON_E_SPACE: return "output buffer too small";
    case ATT_JSON_E_NUL: return "string contains U+0000";
    case ATT_JSON_E_STATE: return "writer used out of order";
    default: return "unknown error";
    }
}

/* ------------------------------------------------------------------ UTF-8 */

/*
 * Length of the well-formed UTF-8 sequence starting at s[0] (a byte >= 0x80), per
 * Unicode Table 3-7: no overlongs, no surrogates, nothing above U+10FFFF. 0 if it is
 * ill-formed; then *short_input says whether it only ran out of bytes.
 */
static size_t utf8_sequence(const uint8_t *s, size_t avail, int *short_input)
{
    uint8_t c = s[0], lo = 0x80, hi = 0xBF;
    size_t need, i;

    *short_input = 0;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c == 0xE0) {
        need = 2;
        lo = 0xA0;
    } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
        need = 2;
    } else if (c == 0xED) {
        need = 2;
        hi = 0x9F;
    } else if (c == 0xF0) {
        need = 3;
        lo = 0x90;
    } else if (c >= 0xF1 && c <= 0xF3) {
        need = 3;
    } else if (c == 0xF4) {
        need = 3;
        hi = 0x8F;
    } else {
        return 0;
    }
    for (i = 1; i <= need; i++) {
        if (i >= avail) {
            *short_input = 1;
            return 0;
        }
        if (s[i] < lo || s[i] > hi)
            return 0;
        lo = 0x80;
        hi = 0xBF;
    }
    return need + 1;
}

static size_t utf8_encode(uint32_t cp, uint8_t out[4])
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0u | (cp >> 6));
        out[1] = (uint8_t)(0x80u | (cp & 0x3Fu));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0u | (cp >> 12));
        out[1] = (uint8_t)(0x80u | ((cp >> 6) & 0x3Fu));
        out[2] = (uint8_t)(0x80u | (cp & 0x3Fu));
        return 3;
    }
    out[0] = (uint8_t)(0xF0u | (cp >> 18));
    out[1] = (uint8_t)(0x80u | ((cp >> 12) & 0x3Fu));
    out[2] = (uint8_t)(0x80u | ((cp >> 6) & 0x3Fu));
    out[3] = (uint8_t)(0x80u | (cp & 0x3Fu));
    return 4;
}

/* The byte a one-letter escape stands for ('"', '\\', '/', b, f, n, r, t). */
static uint8_t unescape(uint8_t e)
{
    switch (e) {
    case 'b': return '\b';
    case 'f': return '\f';
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    default: return e; /* '"', '\\', '/' */
    }
}

static int hex_value(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Four hex digits at s[0..avail): 1 and *out, 0 if one is not hex, -1 if input ends. */
static int hex4(const uint8_t *s, size_t avail, uint32_t *out)
{
    uint32_t v = 0;
    for (size_t i = 0; i < 4; i++) {
        int h;
        if (i >= avail)
            return -1;
        h = hex_value(s[i]);
        if (h < 0)
            return 0;
        v = v << 4 | (uint32_t)h;
    }
    *out = v;
    return 1;
}

/* ----------------------------------------------------------------- reader */

struct parser {
    const uint8_t *buf;
    size_t len;
    size_t pos;
    struct att_json_token *tok;
    size_t cap;
    size_t ntok;
    size_t max_string;
    size_t err_off;
};

static int fail(struct parser *p, int code, size_t off)
{
    p->err_off = off;
    return code;
}

static void skip_ws(struct parser *p)
{
    while (p->pos < p->len) {
        uint8_t c = p->buf[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

static int new_token(struct parser *p, enum att_json_type type, size_t *index)
{
    struct att_json_token *t;
    if (p->ntok >= p->cap)
        return fail(p, ATT_JSON_E_TOKENS, p->pos);
    t = &p->tok[p->ntok];
    memset(t, 0, sizeof *t);
    t->type = (uint8_t)type;
    t->start = (uint32_t)p->pos; /* pos <= len <= ATT_JSON_INPUT_CEILING */
    t->next = (uint32_t)(p->ntok + 1);
    *index = p->ntok++;
    return ATT_JSON_OK;
}

/* The string at p->pos (its opening quote): validated; its decoded length and hash. */
static int parse_string(struct parser *p, size_t *decoded, uint64_t *hash)
{
    const uint8_t *b = p->buf;
    size_t start = p->pos, i = p->pos + 1, n = 0;
    uint64_t h = FNV_OFFSET;

    for (;;) {
        uint8_t c;
        if (i >= p->len)
            return fail(p, ATT_JSON_E_TRUNCATED, p->len);
        c = b[i];
        if (c == '"')
            break;
        if (c < 0x20)
            return fail(p, ATT_JSON_E_CONTROL, i);
        if (c == '\\') {
            if (i + 1 >= p->len)
                return fail(p, ATT_JSON_E_TRUNCATED, p->len);
            switch (b[i + 1]) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                c = unescape(b[i + 1]);
                h = fnv(h, &c, 1);
                n += 1;
                i += 2;
                break;
            case 'u': {
                size_t k;
                uint32_t cp = 0, low = 0;
                uint8_t utf8[4];
                int r = hex4(b + i + 2, p->len - (i + 2), &cp);
                if (r < 0)
                    return fail(p, ATT_JSON_E_TRUNCATED, p->len);
                if (r == 0)
                    return fail(p, ATT_JSON_E_ESCAPE, i);
                if (cp >= 0xDC00 && cp <= 0xDFFF)
                    return fail(p, ATT_JSON_E_SURROGATE, i);
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    size_t j = i + 6; /* a low surrogate escape must follow */
                    if (j >= p->len)
                        return fail(p, ATT_JSON_E_TRUNCATED, p->len);
                    if (b[j] != '\\')
                        return fail(p, ATT_JSON_E_SURROGATE, i);
                    if (j + 1 >= p->len)
                        return fail(p, ATT_JSON_E_TRUNCATED, p->len);
                    if (b[j + 1] != 'u')
                        return fail(p, ATT_JSON_E_SURROGATE, i);
                    r = hex4(b + j + 2, p->len - (j + 2), &low);
                    if (r < 0)
                        return fail(p, ATT_JSON_E_TRUNCATED, p->len);
                    if (r == 0)
                        return fail(p, ATT_JSON_E_ESCAPE, j);
                    if (low < 0xDC00 || low > 0xDFFF)
                        return fail(p, ATT_JSON_E_SURROGATE, i);
                    cp = 0x10000u + ((cp - 0xD800u) << 10) + (low - 0xDC00u);
                    i = j + 6;
                } else {
                    i += 6;
                }
                k = utf8_encode(cp, utf8);
                h = fnv(h, utf8, k);
                n += k;
                break;
            }
            default:
                return fail(p, ATT_JSON_E_ESCAPE, i);
            }
        } else if (c < 0x80) {
            h = fnv(h, &c, 1);
            n++;
            i++;
        } else {
            int short_input;
            size_t k = utf8_sequence(b + i, p->len - i, &short_input);
            if (k == 0)
                return short_input ? fail(p, ATT_JSON_E_TRUNCATED, p->len) : fail(p, ATT_JSON_E_UTF8, i);
            h = fnv(h, b + i, k);
            n += k;
            i += k;
        }
        if (n > p->max_string)
            return fail(p, ATT_JSON_E_STRING_LONG, start);
    }
    p->pos = i + 1;
    *decoded = n;
    *hash = h;
    return ATT_JSON_OK;
}

/* An integer at p->pos ('-' or a digit), into int64_t. */
static int parse_integer(struct parser *p, int64_t *out)
{
    const uint8_t *b = p->buf;
    size_t start = p->pos, i = p->pos;
    int negative = 0;
    uint64_t mag = 0, limit;

    if (b[i] == '-') {
        negative = 1;
        i++;
    }
    limit = negative ? (uint64_t)INT64_MAX + 1u : (uint64_t)INT64_MAX;
    if (i >= p->len)
        return fail(p, ATT_JSON_E_TRUNCATED, p->len);
    if (b[i] == '0') {
        i++;
        if (i < p->len && b[i] >= '0' && b[i] <= '9')
            return fail(p, ATT_JSON_E_NUMBER, start);
    } else if (b[i] >= '1' && b[i] <= '9') {
        while (i < p->len && b[i] >= '0' && b[i] <= '9') {
            uint64_t d = (uint64_t)(b[i] - '0');
            if (mag > (limit - d) / 10u)
                return fail(p, ATT_JSON_E_RANGE, start);
            mag = mag * 10u + d;
            i++;
        }
    } else {
        return fail(p, ATT_JSON_E_NUMBER, start);
    }
    if (i < p->len && (b[i] == '.' || b[i] == 'e' || b[i] == 'E'))
        return fail(p, ATT_JSON_E_NOT_INTEGER, start);
    p->pos = i;
    if (negative)
        *out = mag == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)mag;
    else
        *out = (int64_t)mag;
    return ATT_JSON_OK;
}

static int parse_literal(struct parser *p, const char *word, size_t word_len)
{
    for (size_t k = 0; k < word_len; k++) {
        if (p->pos + k >= p->len)
            return fail(p, ATT_JSON_E_TRUNCATED, p->len);
        if (p->buf[p->pos + k] != (uint8_t)word[k])
            return fail(p, ATT_JSON_E_SYNTAX, p->pos + k);
    }
    p->pos += word_len;
    return ATT_JSON_OK;
}

/* Decodes a validated string token byte by byte. */
struct decoder {
    const uint8_t *s;
    size_t i, end;
    uint8_t pending[4];
    size_t npending, ipending;
};

static void decoder_init(struct decoder *d, const uint8_t *buf, const struct att_json_token *t)
{
    d->s = buf;
    d->i = (size_t)t->start + 1;
    d->end = (size_t)t->start + t->len - 1;
    d->npending = d->ipending = 0;
}

static uint32_t hex4_valid(const uint8_t *s)
{
    uint32_t v = 0;
    for (size_t k = 0; k < 4; k++)
        v = v << 4 | (uint32_t)hex_value(s[k]);
    return v;
}

static int decoder_next(struct decoder *d, uint8_t *out)
{
    uint32_t cp;
    uint8_t c;
    if (d->ipending < d->npending) {
        *out = d->pending[d->ipending++];
        return 1;
    }
    if (d->i >= d->end)
        return 0;
    c = d->s[d->i];
    if (c != '\\') {
        *out = c;
        d->i++;
        return 1;
    }
    c = d->s[d->i + 1];
    d->i += 2;
    if (c != 'u') {
        *out = unescape(c);
        return 1;
    }
    cp = hex4_valid(d->s + d->i);
    d->i += 4;
    if (cp >= 0xD800 && cp <= 0xDBFF) { /* the parser saw its low half */
        uint32_t low = hex4_valid(d->s + d->i + 2);
        d->i += 6;
        cp = 0x10000u + ((cp - 0xD800u) << 10) + (low - 0xDC00u);
    }
    d->npending = utf8_encode(cp, d->pending);
    d->ipending = 1;
    *out = d->pending[0];
    return 1;
}

static int tokens_equal_strings(const uint8_t *buf, const struct att_json_token *a, const struct att_json_token *b)
{
    struct decoder da, db;
    uint8_t ca, cb;

    if (a->count != b->count || a->num != b->num)
        return 0;
    if (a->len == b->len && memcmp(buf + a->start, buf + b->start, a->len) == 0)
        return 1;
    decoder_init(&da, buf, a);
    decoder_init(&db, buf, b);
    while (decoder_next(&da, &ca)) {
        if (!decoder_next(&db, &cb) || ca != cb)
            return 0;
    }
    return 1;
}

/* Closes the container at index top, whose closing bracket is at p->pos. */
static int close_container(struct parser *p, size_t top)
{
    struct att_json_token *t = &p->tok[top];
    p->pos++;
    t->len = (uint32_t)(p->pos - t->start);
    t->next = (uint32_t)p->ntok;
    if (t->type == ATT_JSON_OBJECT && t->count > 1) {
        /* Members are (key, value) pairs; a later key is compared with every earlier
         * one. Quadratic, but bounded by the token array. */
        for (size_t k = top + 1; k < p->ntok; k = p->tok[k + 1].next) {
            for (size_t j = top + 1; j < k; j = p->tok[j + 1].next) {
                if (tokens_equal_strings(p->buf, &p->tok[j], &p->tok[k]))
                    return fail(p, ATT_JSON_E_DUPLICATE_KEY, p->tok[k].start);
            }
        }
    }
    return ATT_JSON_OK;
}

enum parse_state { WANT_VALUE, WANT_KEY, AFTER_VALUE };

static int parse(struct parser *p, size_t max_depth)
{
    size_t stack[ATT_JSON_MAX_DEPTH];
    size_t depth = 0, index = 0;
    enum parse_state state = WANT_VALUE;
    int rc;

    skip_ws(p);
    for (;;) {
        if (state == WANT_VALUE) {
            struct att_json_token *parent = depth > 0 ? &p->tok[stack[depth - 1]] : NULL;
            uint8_t c;
            int64_t num = 0;
            size_t decoded = 0;
            uint64_t hash = 0;

            if (p->pos >= p->len)
                return fail(p, ATT_JSON_E_TRUNCATED, p->len);
            if (parent != NULL && parent->type == ATT_JSON_ARRAY)
                parent->count++;
            c = p->buf[p->pos];
            switch (c) {
            case '{':
            case '[':
                if (depth >= max_depth)
                    return fail(p, ATT_JSON_E_DEPTH, p->pos);
                rc = new_token(p, c == '{' ? ATT_JSON_OBJECT : ATT_JSON_ARRAY, &index);
                if (rc != ATT_JSON_OK)
                    return rc;
                stack[depth++] = index;
                p->pos++;
                skip_ws(p);
                if (p->pos < p->len && p->buf[p->pos] == (c == '{' ? '}' : ']')) {
                    rc = close_container(p, index);
                    if (rc != ATT_JSON_OK)
                        return rc;
                    depth--;
                    state = AFTER_VALUE;
                } else {
                    state = c == '{' ? WANT_KEY : WANT_VALUE;
                }
                continue;
            case '"':
                rc = new_token(p, ATT_JSON_STRING, &index);
                if (rc == ATT_JSON_OK)
                    rc = parse_string(p, &decoded, &hash);
                if (rc != ATT_JSON_OK)
                    return rc;
                p->tok[index].count = (uint32_t)decoded; /* decoded <= input length */
                p->tok[index].num = (int64_t)(hash >> 1);
                break;
            case 't':
            case 'f':
                rc = new_token(p, ATT_JSON_BOOL, &index);
                if (rc == ATT_JSON_OK)
                    rc = c == 't' ? parse_literal(p, "true", 4) : parse_literal(p, "false", 5);
                if (rc != ATT_JSON_OK)
                    return rc;
                p->tok[index].num = c == 't';
                break;
            case 'n':
                rc = new_token(p, ATT_JSON_NULL, &index);
                if (rc == ATT_JSON_OK)
                    rc = parse_literal(p, "null", 4);
                if (rc != ATT_JSON_OK)
                    return rc;
                break;
            default:
                if (c != '-' && (c < '0' || c > '9'))
                    return fail(p, ATT_JSON_E_SYNTAX, p->pos);
                rc = new_token(p, ATT_JSON_INT, &index);
                if (rc == ATT_JSON_OK)
                    rc = parse_integer(p, &num);
                if (rc != ATT_JSON_OK)
                    return rc;
                p->tok[index].num = num;
                break;
            }
            p->tok[index].len = (uint32_t)(p->pos - p->tok[index].start);
            state = AFTER_VALUE;
        } else if (state == WANT_KEY) {
            size_t decoded = 0;
            uint64_t hash = 0;
            if (p->pos >= p->len)
                return fail(p, ATT_JSON_E_TRUNCATED, p->len);
            if (p->buf[p->pos] != '"')
                return fail(p, ATT_JSON_E_SYNTAX, p->pos);
            p->tok[stack[depth - 1]].count++;
            rc = new_token(p, ATT_JSON_STRING, &index);
            if (rc == ATT_JSON_OK)
                rc = parse_string(p, &decoded, &hash);
            if (rc != ATT_JSON_OK)
                return rc;
            p->tok[index].count = (uint32_t)decoded;
            p->tok[index].num = (int64_t)(hash >> 1);
            p->tok[index].len = (uint32_t)(p->pos - p->tok[index].start);
            skip_ws(p);
            if (p->pos >= p->len)
                return fail(p, ATT_JSON_E_TRUNCATED, p->len);
            if (p->buf[p->pos] != ':')
                return fail(p, ATT_JSON_E_SYNTAX, p->pos);
            p->pos++;
            skip_ws(p);
            state = WANT_VALUE;
        } else { /* AFTER_VALUE */
            size_t top;
            int is_object;
            skip_ws(p);
            if (depth == 0) {
                if (p->pos != p->len)
                    return fail(p, ATT_JSON_E_TRAILING, p->pos);
                return ATT_JSON_OK;
            }
            if (p->pos >= p->len)
                return fail(p, ATT_JSON_E_TRUNCATED, p->len);
            top = stack[depth - 1];
            is_object = p->tok[top].type == ATT_JSON_OBJECT;
            if (p->buf[p->pos] == ',') {
                p->pos++;
                skip_ws(p);
                state = is_object ? WANT_KEY : WANT_VALUE;
            } else if (p->buf[p->pos] == (is_object ? '}' : ']')) {
                rc = close_container(p, top);
                if (rc != ATT_JSON_OK)
                    return rc;
                depth--;
            } else {
                return fail(p, ATT_JSON_E_SYNTAX, p->pos);
            }
        }
    }
}

int att_json_parse(struct att_json *doc, const uint8_t *buf, size_t len, struct att_json_token *tokens,
                   size_t cap, const struct att_json_limits *limits, size_t *err_offset)
{
    struct parser p;
    size_t max_input = ATT_JSON_DEFAULT_MAX_INPUT, max_depth = ATT_JSON_MAX_DEPTH;
    size_t max_string = ATT_JSON_DEFAULT_MAX_STRING;
    int rc;

    if (err_offset != NULL)
        *err_offset = 0;
    if (doc == NULL)
        return ATT_JSON_E_ARG;
    doc->buf = NULL;
    doc->len = 0;
    doc->tok = NULL;
    doc->ntok = 0;
    if ((buf == NULL && len != 0) || tokens == NULL || cap == 0)
        return ATT_JSON_E_ARG;
    if (limits != NULL) {
        if (limits->max_input > ATT_JSON_INPUT_CEILING || limits->max_depth > ATT_JSON_MAX_DEPTH)
            return ATT_JSON_E_ARG;
        if (limits->max_input != 0)
            max_input = limits->max_input;
        if (limits->max_depth != 0)
            max_depth = limits->max_depth;
        if (limits->max_string != 0)
            max_string = limits->max_string;
    }
    if (len > max_input) {
        if (err_offset != NULL)
            *err_offset = max_input;
        return ATT_JSON_E_TOO_LARGE;
    }
    p.buf = buf;
    p.len = len;
    p.pos = 0;
    p.tok = tokens;
    p.cap = cap < TOKEN_CEILING ? cap : TOKEN_CEILING;
    p.ntok = 0;
    p.max_string = max_string;
    p.err_off = 0;
    rc = parse(&p, max_depth);
    if (rc != ATT_JSON_OK) {
        if (err_offset != NULL)
            *err_offset = p.err_off;
        return rc;
    }
    doc->buf = buf;
    doc->len = len;
    doc->tok = tokens;
    doc->ntok = p.ntok;
    return ATT_JSON_OK;
}

/* ------------------------------------------------------------- navigation */

static const struct att_json_token *token(const struct att_json *doc, size_t v)
{
    if (doc == NULL || doc->tok == NULL || v >= doc->ntok)
        return NULL;
    return &doc->tok[v];
}

enum att_json_type att_json_type(const struct att_json *doc, size_t v)
{
    const struct att_json_token *t = token(doc, v);
    return t ? (enum att_json_type)t->type : ATT_JSON_INVALID;
}

size_t att_json_count(const struct att_json *doc, size_t v)
{
    const struct att_json_token *t = token(doc, v);
    if (t == NULL || (t->type != ATT_JSON_ARRAY && t->type != ATT_JSON_OBJECT))
        return 0;
    return t->count;
}

size_t att_json_first(const struct att_json *doc, size_t container)
{
    if (att_json_count(doc, container) == 0)
        return ATT_JSON_NONE;
    return container + 1;
}

size_t att_json_next(const struct att_json *doc, size_t container, size_t item)
{
    const struct att_json_token *c = token(doc, container);
    size_t next;

    if (c == NULL || (c->type != ATT_JSON_ARRAY && c->type != ATT_JSON_OBJECT) || item <= container ||
        item >= c->next)
        return ATT_JSON_NONE;
    if (c->type == ATT_JSON_OBJECT) {
        if (item + 1 >= c->next) /* not a key of this object */
            return ATT_JSON_NONE;
        next = doc->tok[item + 1].next;
    } else {
        next = doc->tok[item].next;
    }
    return next < c->next ? next : ATT_JSON_NONE;
}

size_t att_json_value_of(const struct att_json *doc, size_t key)
{
    const struct att_json_token *t = token(doc, key);
    if (t == NULL || t->type != ATT_JSON_STRING || key + 1 >= doc->ntok)
        return ATT_JSON_NONE;
    return key + 1;
}

size_t att_json_at(const struct att_json *doc, size_t array, size_t index)
{
    size_t item;
    if (att_json_type(doc, array) != ATT_JSON_ARRAY)
        return ATT_JSON_NONE;
    for (item = att_json_first(doc, array); item != ATT_JSON_NONE && index > 0; index--)
        item = att_json_next(doc, array, item);
    return item;
}

int att_json_string_eq(const struct att_json *doc, size_t v, const char *s, size_t s_len)
{
    const struct att_json_token *t = token(doc, v);
    struct decoder d;
    uint8_t c;
    size_t k = 0;

    if (t == NULL || t->type != ATT_JSON_STRING || (s == NULL && s_len != 0) || t->count != s_len)
        return 0;
    decoder_init(&d, doc->buf, t);
    while (decoder_next(&d, &c)) {
        if (k >= s_len || c != (uint8_t)s[k])
            return 0;
        k++;
    }
    return k == s_len;
}

size_t att_json_member_n(const struct att_json *doc, size_t obj, const char *key, size_t key_len)
{
    int64_t hash;
    size_t k;
    if (att_json_type(doc, obj) != ATT_JSON_OBJECT || (key == NULL && key_len != 0))
        return ATT_JSON_NONE;
    hash = (int64_t)(fnv(FNV_OFFSET, (const uint8_t *)key, key_len) >> 1);
    for (k = att_json_first(doc, obj); k != ATT_JSON_NONE; k = att_json_next(doc, obj, k)) {
        if (doc->tok[k].num == hash && att_json_string_eq(doc, k, key, key_len))
            return k + 1;
    }
    return ATT_JSON_NONE;
}

size_t att_json_member(const struct att_json *doc, size_t obj, const char *key)
{
    if (key == NULL)
        return ATT_JSON_NONE;
    return att_json_member_n(doc, obj, key, strlen(key));
}

/* ---------------------------------------------------------------- scalars */

int att_json_int(const struct att_json *doc, size_t v, int64_t *out)
{
    return att_json_int_range(doc, v, INT64_MIN, INT64_MAX, out);
}

int att_json_int_range(const struct att_json *doc, size_t v, int64_t min, int64_t max, int64_t *out)
{
    const struct att_json_token *t = token(doc, v);
    if (out == NULL)
        return ATT_JSON_E_ARG;
    if (t == NULL || t->type != ATT_JSON_INT)
        return ATT_JSON_E_TYPE;
    if (t->num < min || t->num > max)
        return ATT_JSON_E_RANGE;
    *out = t->num;
    return ATT_JSON_OK;
}

int att_json_bool(const struct att_json *doc, size_t v, int *out)
{
    const struct att_json_token *t = token(doc, v);
    if (out == NULL)
        return ATT_JSON_E_ARG;
    if (t == NULL || t->type != ATT_JSON_BOOL)
        return ATT_JSON_E_TYPE;
    *out = t->num != 0;
    return ATT_JSON_OK;
}

int att_json_is_null(const struct att_json *doc, size_t v)
{
    return att_json_type(doc, v) == ATT_JSON_NULL;
}

size_t att_json_string_len(const struct att_json *doc, size_t v)
{
    const struct att_json_token *t = token(doc, v);
    return t != NULL && t->type == ATT_JSON_STRING ? t->count : 0;
}

static int copy_string(const struct att_json *doc, size_t v, uint8_t *out, size_t cap, size_t room_after,
                       int refuse_nul, size_t *out_len)
{
    const struct att_json_token *t = token(doc, v);
    struct decoder d;
    uint8_t c;
    size_t k = 0;

    if (out_len != NULL)
        *out_len = 0;
    if (out == NULL && cap != 0)
        return ATT_JSON_E_ARG;
    if (t == NULL || t->type != ATT_JSON_STRING)
        return ATT_JSON_E_TYPE;
    if (cap < room_after || t->count > cap - room_after)
        return ATT_JSON_E_SPACE;
    decoder_init(&d, doc->buf, t);
    while (decoder_next(&d, &c) && k < t->count) {
        if (c == 0 && refuse_nul) {
            memset(out, 0, k);
            return ATT_JSON_E_NUL;
        }
        out[k++] = c;
    }
    if (out_len != NULL)
        *out_len = k;
    return ATT_JSON_OK;
}

int att_json_string(const struct att_json *doc, size_t v, char *out, size_t cap, size_t *out_len)
{
    size_t n = 0;
    int rc = copy_string(doc, v, (uint8_t *)out, cap, 1, 1, &n);
    if (cap > 0 && out != NULL)
        out[rc == ATT_JSON_OK ? n : 0] = '\0';
    if (out_len != NULL)
        *out_len = rc == ATT_JSON_OK ? n : 0;
    return rc;
}

int att_json_string_bytes(const struct att_json *doc, size_t v, uint8_t *out, size_t cap, size_t *out_len)
{
    return copy_string(doc, v, out, cap, 0, 0, out_len);
}

int att_json_get_int(const struct att_json *doc, size_t obj, const char *key, int64_t min, int64_t max,
                     int64_t *out)
{
    size_t v = att_json_member(doc, obj, key);
    if (v == ATT_JSON_NONE)
        return att_json_type(doc, obj) == ATT_JSON_OBJECT ? ATT_JSON_E_MISSING : ATT_JSON_E_TYPE;
    return att_json_int_range(doc, v, min, max, out);
}

int att_json_get_bool(const struct att_json *doc, size_t obj, const char *key, int *out)
{
    size_t v = att_json_member(doc, obj, key);
    if (v == ATT_JSON_NONE)
        return att_json_type(doc, obj) == ATT_JSON_OBJECT ? ATT_JSON_E_MISSING : ATT_JSON_E_TYPE;
    return att_json_bool(doc, v, out);
}

int att_json_get_string(const struct att_json *doc, size_t obj, const char *key, char *out, size_t cap,
                        size_t *out_len)
{
    size_t v = att_json_member(doc, obj, key);
    if (v == ATT_JSON_NONE) {
        if (cap > 0 && out != NULL)
            out[0] = '\0';
        if (out_len != NULL)
            *out_len = 0;
        return att_json_type(doc, obj) == ATT_JSON_OBJECT ? ATT_JSON_E_MISSING : ATT_JSON_E_TYPE;
    }
    return att_json_string(doc, v, out, cap, out_len);
}

/* ----------------------------------------------------------------- writer */

static void w_fail(struct att_json_writer *w, int code)
{
    if (w->err == ATT_JSON_OK)
        w->err = code;
}

/* Appends n bytes, always keeping one byte free for finish's NUL. */
static void w_raw(struct att_json_writer *w, const char *s, size_t n)
{
    if (w->err != ATT_JSON_OK)
        return;
    if (w->len >= w->cap || n >= w->cap - w->len) {
        w_fail(w, ATT_JSON_E_SPACE);
        return;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

void att_json_writer_init(struct att_json_writer *w, char *buf, size_t cap)
{
    if (w == NULL)
        return;
    memset(w, 0, sizeof *w);
    w->buf = buf;
    w->cap = cap;
    if (buf == NULL || cap == 0)
        w->err = ATT_JSON_E_ARG;
    else
        buf[0] = '\0';
}

/* Before any value: a comma in an array, a key already written in an object, and
 * only one value at the top. 1 if the value may be written. */
static int w_value_begin(struct att_json_writer *w)
{
    if (w->err != ATT_JSON_OK)
        return 0;
    if (w->root_done) {
        w_fail(w, ATT_JSON_E_STATE);
        return 0;
    }
    if (w->depth > 0) {
        unsigned level = w->depth - 1;
        if (w->kind[level] == ATT_JSON_OBJECT) {
            if (!w->key_done) {
                w_fail(w, ATT_JSON_E_STATE);
                return 0;
            }
            w->key_done = 0;
        } else {
            if (w->items[level])
                w_raw(w, ",", 1);
            w->items[level] = 1;
        }
    }
    return w->err == ATT_JSON_OK;
}

static void w_value_end(struct att_json_writer *w)
{
    if (w->depth == 0 && w->err == ATT_JSON_OK)
        w->root_done = 1;
}

static void w_string(struct att_json_writer *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *b = (const uint8_t *)s;
    size_t i = 0, run = 0;
    int short_input;

    for (i = 0; i < n;) { /* validate first: nothing half-written on bad input */
        if (b[i] < 0x80) {
            i++;
        } else {
            size_t k = utf8_sequence(b + i, n - i, &short_input);
            if (k == 0) {
                w_fail(w, ATT_JSON_E_UTF8);
                return;
            }
            i += k;
        }
    }
    w_raw(w, "\"", 1);
    for (i = 0; i < n; i++) {
        uint8_t c = b[i];
        char esc[6] = {'\\', 'u', '0', '0', 0, 0};
        size_t esc_len = 2;
        if (c >= 0x20 && c != '"' && c != '\\') {
            run++;
            continue;
        }
        w_raw(w, s + i - run, run);
        run = 0;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0xF];
            esc_len = 6;
            break;
        }
        w_raw(w, esc, esc_len);
    }
    w_raw(w, s + n - run, run);
    w_raw(w, "\"", 1);
}

static void w_begin(struct att_json_writer *w, enum att_json_type kind, const char *open)
{
    if (w == NULL || !w_value_begin(w))
        return;
    if (w->depth >= ATT_JSON_MAX_DEPTH) {
        w_fail(w, ATT_JSON_E_DEPTH);
        return;
    }
    w_raw(w, open, 1);
    w->kind[w->depth] = (uint8_t)kind;
    w->items[w->depth] = 0;
    w->depth++;
}

static void w_end(struct att_json_writer *w, enum att_json_type kind, const char *close)
{
    if (w == NULL || w->err != ATT_JSON_OK)
        return;
    if (w->depth == 0 || w->kind[w->depth - 1] != (uint8_t)kind || w->key_done) {
        w_fail(w, ATT_JSON_E_STATE);
        return;
    }
    w_raw(w, close, 1);
    w->depth--;
    w_value_end(w);
}

void att_json_begin_object(struct att_json_writer *w)
{
    w_begin(w, ATT_JSON_OBJECT, "{");
}

void att_json_end_object(struct att_json_writer *w)
{
    w_end(w, ATT_JSON_OBJECT, "}");
}

void att_json_begin_array(struct att_json_writer *w)
{
    w_begin(w, ATT_JSON_ARRAY, "[");
}

void att_json_end_array(struct att_json_writer *w)
{
    w_end(w, ATT_JSON_ARRAY, "]");
}

void att_json_key_n(struct att_json_writer *w, const char *key, size_t len)
{
    unsigned level;
    if (w == NULL || w->err != ATT_JSON_OK)
        return;
    if (key == NULL && len != 0) {
        w_fail(w, ATT_JSON_E_ARG);
        return;
    }
    if (w->depth == 0 || w->kind[w->depth - 1] != ATT_JSON_OBJECT || w->key_done) {
        w_fail(w, ATT_JSON_E_STATE);
        return;
    }
    level = w->depth - 1;
    if (w->items[level])
        w_raw(w, ",", 1);
    w->items[level] = 1;
    w_string(w, key != NULL ? key : "", len);
    w_raw(w, ":", 1);
    w->key_done = 1;
}

void att_json_key(struct att_json_writer *w, const char *key)
{
    if (w != NULL && key == NULL) {
        w_fail(w, ATT_JSON_E_ARG);
        return;
    }
    att_json_key_n(w, key, key != NULL ? strlen(key) : 0);
}

void att_json_put_string_n(struct att_json_writer *w, const char *s, size_t len)
{
    if (w == NULL)
        return;
    if (s == NULL && len != 0) {
        w_fail(w, ATT_JSON_E_ARG);
        return;
    }
    if (!w_value_begin(w))
        return;
    w_string(w, s != NULL ? s : "", len);
    w_value_end(w);
}

void att_json_put_string(struct att_json_writer *w, const char *s)
{
    if (w != NULL && s == NULL) {
        w_fail(w, ATT_JSON_E_ARG);
        return;
    }
    att_json_put_string_n(w, s, s != NULL ? strlen(s) : 0);
}

void att_json_put_int(struct att_json_writer *w, int64_t v)
{
    char digits[24];
    size_t n = sizeof digits;
    uint64_t mag = v < 0 ? (uint64_t)(-(v + 1)) + 1u : (uint64_t)v;

    if (w == NULL || !w_value_begin(w))
        return;
    do {
        digits[--n] = (char)('0' + (int)(mag % 10u));
        mag /= 10u;
    } while (mag != 0);
    if (v < 0)
        digits[--n] = '-';
    w_raw(w, digits + n, sizeof digits - n);
    w_value_end(w);
}

void att_json_put_bool(struct att_json_writer *w, int v)
{
    if (w == NULL || !w_value_begin(w))
        return;
    if (v)
        w_raw(w, "true", 4);
    else
        w_raw(w, "false", 5);
    w_value_end(w);
}

void att_json_put_null(struct att_json_writer *w)
{
    if (w == NULL || !w_value_begin(w))
        return;
    w_raw(w, "null", 4);
    w_value_end(w);
}

int att_json_writer_finish(struct att_json_writer *w, size_t *len)
{
    if (len != NULL)
        *len = 0;
    if (w == NULL)
        return ATT_JSON_E_ARG;
    if (w->err == ATT_JSON_OK && (w->depth != 0 || !w->root_done))
        w->err = ATT_JSON_E_STATE;
    if (w->err != ATT_JSON_OK) {
        if (w->buf != NULL && w->cap > 0)
            w->buf[0] = '\0';
        return w->err;
    }
    w->buf[w->len] = '\0'; /* w_raw kept this byte free */
    if (len != NULL)
        *len = w->len;
    return ATT_JSON_OK;
}
