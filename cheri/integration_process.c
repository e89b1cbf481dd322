/*
 * The integration process of the EAI case study (seed 001), run by the launcher in a
 * compartment. A store offers a ride home to every customer whose bill is above a
 * threshold ($150.00): this program reads new sales from the store, books a taxi for
 * each sale above the threshold, sends the customer a message with the taxi's number
 * and driver, and reads the customer's answer.
 *
 * Every exchange with a service goes through the compartment runtime (attestables.h):
 * a JSON document (shared/eai.py), HPKE-sealed to the service, carried by the launcher
 * with this run's certificate; the answer comes back sealed to this process's key. The
 * documents are built with the runtime's bounded JSON writer and read with its strict
 * parser (att_json.h); every answer is wiped and freed as soon as it is read.
 *
 * What this program prints is seen by the launcher's operator and kept by the daemon,
 * so it prints metadata only: sale, trip and message ids, whether a sale is above the
 * threshold, the customer's yes or no, error codes. Never a name, phone number,
 * address, taxi number, driver, amount or message text.
 *
 * Guarantees: sales are handled in id order, each at most once per run (the last id
 * handled only grows, and a sale booked but not yet messaged is remembered, so a retry
 * messages it without booking again); across runs the transport service is idempotent
 * by sale id and the messaging service by key ("sale-<id>"), and the program reports
 * when an answer says so ("existing"). A failed pass is retried with exponential
 * backoff; a service that refuses the certificate is retried too (its policy may
 * change). A broken channel ends the program.
 *
 * Usage: integration_process [--threshold DOLLARS] [--interval SECONDS] [--once]
 *            [--max-passes N] [--backoff-min SECONDS] [--backoff-max SECONDS]
 *            [--reply-checks N] [--after-id N] [--pickup TEXT] [--fare DOLLARS]
 * (docs/integration-process.md). Exit status: 0 done (or stopped by a signal), 1 the
 * last pass failed or the channel broke, 2 bad arguments.
 */
#if !defined(__FreeBSD__) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* sigaction, nanosleep under -std=c11 on glibc */
#endif

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "att_json.h"
#include "attestables.h"

#define STORE "store"
#define TRANSPORT "transport"
#define MESSAGING "messaging"

#define SALES_PAGE 50        /* sales asked for at a time (the store allows 1..100) */
#define MAX_PAGES 20         /* pages read in one pass; the rest waits for the next */
#define MAX_PENDING 256      /* messages whose reply is awaited */
#define MAX_BOOKED 8         /* sales booked whose message has not gone out yet */
#define FIELD_MAX 256        /* a name, phone number, taxi number (bytes, with the NUL) */
#define ADDRESS_MAX 512
#define TEXT_MAX 1024        /* the message to the customer */
#define DOC_MAX 16384        /* one request document */
#define IDENT_MAX 64         /* a trip or message id given as a string */
#define STORE_TOKENS 4096
#define SMALL_TOKENS 128
#define ERROR_MAX 512
#define MAX_ETA_MINUTES 1440

enum outcome { PASS_OK = 0, PASS_FAILED = 1, PASS_FATAL = 2 };

struct config {
    int64_t threshold_cents;
    int64_t fare_cents;
    int64_t after_id;
    uint32_t interval_ms;
    uint32_t backoff_min_ms;
    uint32_t backoff_max_ms;
    unsigned long max_passes; /* 0: no limit */
    unsigned long reply_checks;
    int once;
    char pickup[FIELD_MAX];
};

/* A trip or message id as the service gave it: an integer or a short token. */
struct ident {
    int is_int;
    int64_t num;
    char text[IDENT_MAX + 1];
};

struct sale {
    int64_t id;
    int64_t total_cents;
    const char *bad_total;  /* NULL, or why the total is unusable */
    const char *bad_field;  /* NULL, or the first field a booking would need that is unusable */
    char customer[FIELD_MAX];
    char phone[FIELD_MAX];
    char address[ADDRESS_MAX];
};

struct trip {
    struct ident id;
    int64_t eta_minutes;
    int existing;
    char taxi_number[FIELD_MAX];
    char driver_name[FIELD_MAX];
};

struct booked {
    int used;
    int64_t sale_id;
    struct trip trip;
};

struct pending {
    int64_t sale_id;
    struct ident message;
    unsigned long checks;
};

struct counters {
    unsigned long sales, booked, skipped, replies;
};

struct state {
    int64_t last_id;
    unsigned long pass;
    struct booked booked[MAX_BOOKED];
    struct pending pending[MAX_PENDING];
    size_t npending;
    struct counters count;
};

/* An answer from a service: the plaintext (runtime heap, wiped on release) and its
 * parsed form. */
struct answer {
    uint8_t *buf;
    size_t len;
    struct att_json doc;
    struct att_json_token *tokens;
    size_t ntokens;
};

static volatile sig_atomic_t stopping;
static struct sale page[SALES_PAGE];
static struct att_json_token store_tokens[STORE_TOKENS];
static struct att_json_token small_tokens[SMALL_TOKENS];
static char pass_error[ERROR_MAX];
static char error_context[48]; /* e.g. "sale 4: ", put before the reason */

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

/* Clears memory that held service data; volatile so the stores are not elided. */
static void wipe(void *p, size_t n)
{
    volatile unsigned char *q = p;
    while (n-- > 0)
        *q++ = 0;
}

#if defined(__GNUC__) || defined(__clang__)
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define PRINTF_LIKE(f, a)
#endif

static void say(const char *fmt, ...) PRINTF_LIKE(1, 2);
static void set_error(const char *fmt, ...) PRINTF_LIKE(1, 2);

static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

/* Records why the pass failed (the first reason only); the main loop prints it. */
static void set_error(const char *fmt, ...)
{
    va_list ap;
    size_t n;
    if (pass_error[0] != '\0')
        return;
    n = (size_t)snprintf(pass_error, sizeof pass_error, "%s", error_context);
    va_start(ap, fmt);
    vsnprintf(pass_error + n, sizeof pass_error - n, fmt, ap);
    va_end(ap);
}

static void format_ms(uint32_t ms, char out[24])
{
    if (ms % 1000u == 0)
        snprintf(out, 24, "%" PRIu32 "s", ms / 1000u);
    else
        snprintf(out, 24, "%" PRIu32 ".%03" PRIu32 "s", ms / 1000u, ms % 1000u);
}

static void sleep_ms(uint32_t ms)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(ms / 1000u);
    ts.tv_nsec = (long)(ms % 1000u) * 1000000L;
    while (!stopping && nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ------------------------------------------------------------------ arguments */

/* "150", "150.5", "150.00", "$150.00": dollars to cents, exactly; no sign. */
static int parse_dollars(const char *s, int64_t *cents)
{
    int64_t whole = 0, frac = 0;
    int digits = 0, frac_digits = 0;

    if (*s == '$')
        s++;
    for (; *s >= '0' && *s <= '9'; s++, digits++) {
        if (digits >= 12)
            return -1;
        whole = whole * 10 + (*s - '0');
    }
    if (digits == 0)
        return -1;
    if (*s == '.') {
        for (s++; *s >= '0' && *s <= '9'; s++, frac_digits++) {
            if (frac_digits >= 2)
                return -1;
            frac = frac * 10 + (*s - '0');
        }
        if (frac_digits == 0)
            return -1;
        if (frac_digits == 1)
            frac *= 10;
    }
    if (*s != '\0')
        return -1;
    *cents = whole * 100 + frac;
    return 0;
}

/* "5", "0.25": seconds to milliseconds, exactly, within [min_ms, max_ms]. */
static int parse_seconds(const char *s, uint32_t min_ms, uint32_t max_ms, uint32_t *ms)
{
    uint64_t whole = 0, frac = 0;
    int digits = 0, frac_digits = 0;

    for (; *s >= '0' && *s <= '9'; s++, digits++) {
        if (digits >= 7)
            return -1;
        whole = whole * 10u + (uint64_t)(*s - '0');
    }
    if (digits == 0)
        return -1;
    if (*s == '.') {
        for (s++; *s >= '0' && *s <= '9'; s++, frac_digits++) {
            if (frac_digits >= 3)
                return -1;
            frac = frac * 10u + (uint64_t)(*s - '0');
        }
        if (frac_digits == 0)
            return -1;
        for (; frac_digits < 3; frac_digits++)
            frac *= 10u;
    }
    if (*s != '\0')
        return -1;
    whole = whole * 1000u + frac;
    if (whole < min_ms || whole > max_ms)
        return -1;
    *ms = (uint32_t)whole;
    return 0;
}

static int parse_count(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (*s == '\0')
        return -1;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10u + (uint64_t)(*s - '0');
        if (v > max)
            return -1;
    }
    *out = v;
    return 0;
}

static void usage(FILE *f)
{
    fputs("usage: integration_process [--threshold DOLLARS] [--interval SECONDS] [--once]\n"
          "           [--max-passes N] [--backoff-min SECONDS] [--backoff-max SECONDS]\n"
          "           [--reply-checks N] [--after-id N] [--pickup TEXT] [--fare DOLLARS]\n"
          "  --threshold DOLLARS  book a taxi for a sale whose total is above this (150.00)\n"
          "  --interval SECONDS   time between passes and between reply checks (5)\n"
          "  --once               one pass (then wait for the replies), exit 1 if it failed\n"
          "  --max-passes N       stop after N passes (0: never)\n"
          "  --backoff-min/-max   wait after a failed pass, doubling from min to max (1, 30)\n"
          "  --reply-checks N     times a customer's reply is read before giving up (60)\n"
          "  --after-id N         start with the sales after this id (0)\n"
          "  --pickup TEXT        where the taxi picks the customer up (\"store\")\n"
          "  --fare DOLLARS       the fare the store covers, sent with each booking (25.00)\n",
          f);
}

static int parse_args(int argc, char **argv, struct config *cfg)
{
    uint64_t n = 0;

    memset(cfg, 0, sizeof *cfg);
    cfg->threshold_cents = 15000;
    cfg->fare_cents = 2500;
    cfg->interval_ms = 5000;
    cfg->backoff_min_ms = 1000;
    cfg->backoff_max_ms = 30000;
    cfg->reply_checks = 60;
    strcpy(cfg->pickup, "store");

    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;

        if (strcmp(opt, "--once") == 0) {
            cfg->once = 1;
            continue;
        }
        if (strcmp(opt, "--help") == 0) {
            usage(stdout);
            exit(0);
        }
        if (val == NULL) {
            fprintf(stderr, "integration_process: %s needs a value\n", opt);
            usage(stderr);
            return -1;
        }
        i++;
        if (strcmp(opt, "--threshold") == 0)
            bad = parse_dollars(val, &cfg->threshold_cents);
        else if (strcmp(opt, "--fare") == 0)
            bad = parse_dollars(val, &cfg->fare_cents);
        else if (strcmp(opt, "--interval") == 0)
            bad = parse_seconds(val, 10, 86400000u, &cfg->interval_ms);
        else if (strcmp(opt, "--backoff-min") == 0)
            bad = parse_seconds(val, 10, 86400000u, &cfg->backoff_min_ms);
        else if (strcmp(opt, "--backoff-max") == 0)
            bad = parse_seconds(val, 10, 86400000u, &cfg->backoff_max_ms);
        else if (strcmp(opt, "--max-passes") == 0) {
            bad = parse_count(val, 1000000000u, &n);
            cfg->max_passes = (unsigned long)n;
        } else if (strcmp(opt, "--reply-checks") == 0) {
            bad = parse_count(val, 1000000u, &n) || n == 0;
            cfg->reply_checks = (unsigned long)n;
        } else if (strcmp(opt, "--after-id") == 0) {
            bad = parse_count(val, (uint64_t)INT64_MAX, &n);
            cfg->after_id = (int64_t)n;
        } else if (strcmp(opt, "--pickup") == 0) {
            size_t len = strlen(val);
            bad = len == 0 || len >= sizeof cfg->pickup;
            if (!bad)
                memcpy(cfg->pickup, val, len + 1);
        } else {
            fprintf(stderr, "integration_process: unknown option %s\n", opt);
            usage(stderr);
            return -1;
        }
        if (bad) {
            fprintf(stderr, "integration_process: bad value for %s: %s\n", opt, val);
            return -1;
        }
    }
    if (cfg->backoff_min_ms > cfg->backoff_max_ms) {
        fprintf(stderr, "integration_process: --backoff-min is above --backoff-max\n");
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- identifiers */

static int ident_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.' || c == ':';
}

/* Reads obj[key] as an id: an integer >= 0, or a string of 1..64 of [A-Za-z0-9._:-]
 * (so it is safe to print). */
static int ident_get(const struct att_json *doc, size_t obj, const char *key, struct ident *out)
{
    size_t v = att_json_member(doc, obj, key), len = 0;
    int rc;

    memset(out, 0, sizeof *out);
    if (v == ATT_JSON_NONE)
        return ATT_JSON_E_MISSING;
    if (att_json_type(doc, v) == ATT_JSON_INT) {
        out->is_int = 1;
        return att_json_int_range(doc, v, 0, INT64_MAX, &out->num);
    }
    rc = att_json_string(doc, v, out->text, sizeof out->text, &len);
    if (rc != ATT_JSON_OK)
        return rc;
    if (len == 0)
        return ATT_JSON_E_TYPE;
    for (size_t i = 0; i < len; i++)
        if (!ident_char_ok(out->text[i]))
            return ATT_JSON_E_TYPE;
    return ATT_JSON_OK;
}

static void ident_put(struct att_json_writer *w, const struct ident *id)
{
    if (id->is_int)
        att_json_put_int(w, id->num);
    else
        att_json_put_string(w, id->text);
}

static int ident_eq(const struct ident *a, const struct ident *b)
{
    if (a->is_int != b->is_int)
        return 0;
    return a->is_int ? a->num == b->num : strcmp(a->text, b->text) == 0;
}

static const char *ident_show(const struct ident *id, char out[IDENT_MAX + 1])
{
    if (!id->is_int)
        return id->text;
    snprintf(out, IDENT_MAX + 1, "%" PRId64, id->num);
    return out;
}

/* ------------------------------------------------------------------- requests */

/* Why a request failed, in words that carry no plaintext. */
static enum outcome request_failed(const char *what, const char *service, int rc)
{
    switch (rc) {
    case ATT_E_DENIED:
        set_error("%s: %s refused our certificate: contraindicated (its verifier or policy rejected this run)",
                  what, service);
        return PASS_FAILED;
    case ATT_E_SERVICE:
        set_error("%s: %s could not carry out the request", what, service);
        return PASS_FAILED;
    case ATT_E_REFUSED:
        set_error("%s: the launcher refused the request to %s: %s", what, service, att_error_detail());
        return PASS_FAILED;
    case ATT_E_CRYPTO:
        set_error("%s: the answer from %s did not open: %s", what, service, att_error_detail());
        return PASS_FAILED;
    case ATT_E_NOMEM:
    case ATT_E_SPACE:
        set_error("%s: request to %s failed: %s", what, service, att_strerror(rc));
        return PASS_FAILED;
    default: /* the channel is gone (or the run has no key for the service) */
        set_error("%s: request to %s failed: %s%s%s", what, service, att_strerror(rc),
                  att_error_detail()[0] != '\0' ? ": " : "", att_error_detail());
        return PASS_FATAL;
    }
}

static void answer_release(struct answer *a)
{
    att_free(a->buf, a->len);
    a->buf = NULL;
    a->len = 0;
    wipe(a->tokens, a->ntokens * sizeof *a->tokens);
    memset(&a->doc, 0, sizeof a->doc);
}

/* Sends a document to a service (READ or WRITE) and parses its answer, which must be
 * a JSON object. */
static enum outcome request(int is_write, const char *what, const char *service, const char *doc, size_t doc_len,
                            struct answer *a)
{
    size_t off = 0;
    int rc;

    a->buf = NULL;
    a->len = 0;
    memset(&a->doc, 0, sizeof a->doc);
    if (is_write)
        rc = att_write(service, (const uint8_t *)doc, doc_len, &a->buf, &a->len);
    else
        rc = att_read(service, (const uint8_t *)doc, doc_len, &a->buf, &a->len);
    if (rc != ATT_OK)
        return request_failed(what, service, rc);
    if (a->buf == NULL) {
        set_error("%s: %s sent no answer", what, service);
        return PASS_FAILED;
    }
    rc = att_json_parse(&a->doc, a->buf, a->len, a->tokens, a->ntokens, NULL, &off);
    if (rc != ATT_JSON_OK) {
        set_error("%s: %s answered with malformed JSON: %s at byte %zu", what, service, att_json_strerror(rc), off);
        answer_release(a);
        return PASS_FAILED;
    }
    if (att_json_type(&a->doc, 0) != ATT_JSON_OBJECT) {
        set_error("%s: %s answered with JSON that is not an object", what, service);
        answer_release(a);
        return PASS_FAILED;
    }
    return PASS_OK;
}

/* An answer that parses but does not follow the contract (shared/eai.py). */
static enum outcome off_contract(const char *what, const char *service, const char *field, int rc,
                                 struct answer *a)
{
    set_error("%s: %s's answer does not follow the contract: %s (%s)", what, service, field, att_json_strerror(rc));
    answer_release(a);
    return PASS_FAILED;
}

static enum outcome finish_doc(struct att_json_writer *w, const char *what, size_t *len)
{
    int rc = att_json_writer_finish(w, len);
    if (rc != ATT_JSON_OK) {
        set_error("%s: cannot build the request: %s", what, att_json_strerror(rc));
        return PASS_FAILED;
    }
    return PASS_OK;
}

/* ---------------------------------------------------------------------- store */

static void sort_page(size_t n)
{
    for (size_t i = 1; i < n; i++) {
        for (size_t j = i; j > 0 && page[j - 1].id > page[j].id; j--) {
            struct sale tmp = page[j];
            page[j] = page[j - 1];
            page[j - 1] = tmp;
            wipe(&tmp, sizeof tmp);
        }
    }
}

static const char *string_field(const struct att_json *doc, size_t obj, const char *key, char *out, size_t cap)
{
    int rc = att_json_get_string(doc, obj, key, out, cap, NULL);
    if (rc != ATT_JSON_OK || out[0] == '\0')
        return key;
    return NULL;
}

/* Reads the sales after st->last_id into page[0..*count), in id order. */
static enum outcome read_sales(struct state *st, size_t *count)
{
    static const char what[] = "reading sales";
    char query[128];
    struct att_json_writer w;
    struct answer a = {NULL, 0, {NULL, 0, NULL, 0}, store_tokens, STORE_TOKENS};
    enum outcome out;
    size_t len = 0, sales, n = 0;
    int64_t last_id = 0;
    int rc;

    *count = 0;
    att_json_writer_init(&w, query, sizeof query);
    att_json_begin_object(&w);
    att_json_key(&w, "after_id");
    att_json_put_int(&w, st->last_id);
    att_json_key(&w, "limit");
    att_json_put_int(&w, SALES_PAGE);
    att_json_end_object(&w);
    if ((out = finish_doc(&w, what, &len)) != PASS_OK)
        return out;
    if ((out = request(0, what, STORE, query, len, &a)) != PASS_OK)
        return out;

    sales = att_json_member(&a.doc, 0, "sales");
    if (att_json_type(&a.doc, sales) != ATT_JSON_ARRAY)
        return off_contract(what, STORE, "sales", sales == ATT_JSON_NONE ? ATT_JSON_E_MISSING : ATT_JSON_E_TYPE, &a);
    if ((rc = att_json_get_int(&a.doc, 0, "last_id", 0, INT64_MAX, &last_id)) != ATT_JSON_OK)
        return off_contract(what, STORE, "last_id", rc, &a);
    if (att_json_count(&a.doc, sales) > SALES_PAGE)
        return off_contract(what, STORE, "more sales than asked for", ATT_JSON_E_RANGE, &a);

    for (size_t v = att_json_first(&a.doc, sales); v != ATT_JSON_NONE; v = att_json_next(&a.doc, sales, v)) {
        struct sale *s = &page[n];
        memset(s, 0, sizeof *s);
        if (att_json_type(&a.doc, v) != ATT_JSON_OBJECT)
            rc = ATT_JSON_E_TYPE;
        else
            rc = att_json_get_int(&a.doc, v, "id", 1, INT64_MAX, &s->id);
        if (rc != ATT_JSON_OK) { /* without its id a sale cannot even be skipped */
            wipe(page, sizeof page);
            return off_contract(what, STORE, "a sale's id", rc, &a);
        }
        rc = att_json_get_int(&a.doc, v, "total_cents", 0, INT64_MAX, &s->total_cents);
        if (rc != ATT_JSON_OK)
            s->bad_total = att_json_strerror(rc);
        /* What a booking needs; checked only if the sale is above the threshold. */
        s->bad_field = string_field(&a.doc, v, "customer", s->customer, sizeof s->customer);
        if (s->bad_field == NULL)
            s->bad_field = string_field(&a.doc, v, "phone", s->phone, sizeof s->phone);
        if (s->bad_field == NULL)
            s->bad_field = string_field(&a.doc, v, "address", s->address, sizeof s->address);
        n++;
    }
    answer_release(&a);
    sort_page(n);
    *count = n;
    return PASS_OK;
}

/* ------------------------------------------------------------------ transport */

static enum outcome book_trip(const struct config *cfg, const struct sale *s, struct trip *t)
{
    static const char what[] = "booking a taxi";
    static char doc[DOC_MAX];
    struct att_json_writer w;
    struct answer a = {NULL, 0, {NULL, 0, NULL, 0}, small_tokens, SMALL_TOKENS};
    enum outcome out;
    size_t len = 0;
    int rc;

    memset(t, 0, sizeof *t);
    att_json_writer_init(&w, doc, sizeof doc);
    att_json_begin_object(&w);
    att_json_key(&w, "sale_id");
    att_json_put_int(&w, s->id);
    att_json_key(&w, "customer");
    att_json_put_string(&w, s->customer);
    att_json_key(&w, "pickup");
    att_json_put_string(&w, cfg->pickup);
    att_json_key(&w, "destination");
    att_json_put_string(&w, s->address);
    att_json_key(&w, "phone");
    att_json_put_string(&w, s->phone);
    att_json_key(&w, "fare_cents");
    att_json_put_int(&w, cfg->fare_cents);
    att_json_end_object(&w);
    out = finish_doc(&w, what, &len);
    if (out == PASS_OK)
        out = request(1, what, TRANSPORT, doc, len, &a);
    wipe(doc, sizeof doc);
    if (out != PASS_OK)
        return out;

    if ((rc = ident_get(&a.doc, 0, "trip_id", &t->id)) != ATT_JSON_OK)
        return off_contract(what, TRANSPORT, "trip_id", rc, &a);
    if ((rc = att_json_get_string(&a.doc, 0, "taxi_number", t->taxi_number, sizeof t->taxi_number, NULL)) !=
        ATT_JSON_OK)
        return off_contract(what, TRANSPORT, "taxi_number", rc, &a);
    if ((rc = att_json_get_string(&a.doc, 0, "driver_name", t->driver_name, sizeof t->driver_name, NULL)) !=
        ATT_JSON_OK)
        return off_contract(what, TRANSPORT, "driver_name", rc, &a);
    if ((rc = att_json_get_int(&a.doc, 0, "eta_minutes", 0, MAX_ETA_MINUTES, &t->eta_minutes)) != ATT_JSON_OK)
        return off_contract(what, TRANSPORT, "eta_minutes", rc, &a);
    if ((rc = att_json_get_bool(&a.doc, 0, "existing", &t->existing)) != ATT_JSON_OK)
        return off_contract(what, TRANSPORT, "existing", rc, &a);
    answer_release(&a);
    return PASS_OK;
}

static struct booked *find_booked(struct state *st, int64_t sale_id)
{
    for (size_t i = 0; i < MAX_BOOKED; i++)
        if (st->booked[i].used && st->booked[i].sale_id == sale_id)
            return &st->booked[i];
    return NULL;
}

static struct booked *remember_booked(struct state *st, int64_t sale_id, const struct trip *t)
{
    size_t slot = 0;
    for (size_t i = 0; i < MAX_BOOKED; i++) {
        if (!st->booked[i].used) {
            slot = i;
            break;
        }
        if (st->booked[i].sale_id < st->booked[slot].sale_id)
            slot = i; /* full: forget the oldest (transport remembers it anyway) */
    }
    wipe(&st->booked[slot], sizeof st->booked[slot]);
    st->booked[slot].used = 1;
    st->booked[slot].sale_id = sale_id;
    st->booked[slot].trip = *t;
    return &st->booked[slot];
}

/* ------------------------------------------------------------------ messaging */

static enum outcome send_offer(const struct sale *s, const struct trip *t, struct ident *message_id,
                               int *existing)
{
    static const char what[] = "messaging the customer";
    static char doc[DOC_MAX];
    char text[TEXT_MAX], key[32];
    struct att_json_writer w;
    struct answer a = {NULL, 0, {NULL, 0, NULL, 0}, small_tokens, SMALL_TOKENS};
    enum outcome out = PASS_OK;
    size_t len = 0;
    int n, rc;

    n = snprintf(text, sizeof text,
                 "Hello %s, taxi %s driven by %s will pick you up in %" PRId64 " minutes. Reply YES to accept.",
                 s->customer, t->taxi_number, t->driver_name, t->eta_minutes);
    if (n < 0 || (size_t)n >= sizeof text) {
        set_error("%s: the message does not fit %u bytes", what, (unsigned)TEXT_MAX);
        out = PASS_FAILED;
    }
    snprintf(key, sizeof key, "sale-%" PRId64, s->id);
    if (out == PASS_OK) {
        att_json_writer_init(&w, doc, sizeof doc);
        att_json_begin_object(&w);
        att_json_key(&w, "phone");
        att_json_put_string(&w, s->phone);
        att_json_key(&w, "text");
        att_json_put_string(&w, text);
        att_json_key(&w, "key");
        att_json_put_string(&w, key);
        att_json_end_object(&w);
        out = finish_doc(&w, what, &len);
    }
    if (out == PASS_OK)
        out = request(1, what, MESSAGING, doc, len, &a);
    wipe(text, sizeof text);
    wipe(doc, sizeof doc);
    if (out != PASS_OK)
        return out;
    if ((rc = ident_get(&a.doc, 0, "message_id", message_id)) != ATT_JSON_OK)
        return off_contract(what, MESSAGING, "message_id", rc, &a);
    if ((rc = att_json_get_bool(&a.doc, 0, "existing", existing)) != ATT_JSON_OK)
        return off_contract(what, MESSAGING, "existing", rc, &a);
    answer_release(&a);
    return PASS_OK;
}

/* Reads the reply to one message: *answered becomes 1 when the customer has replied,
 * 2 when the program stops waiting; either way the entry can go. */
static enum outcome check_reply(const struct config *cfg, struct pending *p, int *answered)
{
    static const char what[] = "reading a reply";
    char query[128], shown[IDENT_MAX + 1];
    struct att_json_writer w;
    struct answer a = {NULL, 0, {NULL, 0, NULL, 0}, small_tokens, SMALL_TOKENS};
    struct ident echoed;
    enum outcome out;
    size_t len = 0, reply;
    int rc;

    *answered = 0;
    att_json_writer_init(&w, query, sizeof query);
    att_json_begin_object(&w);
    att_json_key(&w, "message_id");
    ident_put(&w, &p->message);
    att_json_end_object(&w);
    if ((out = finish_doc(&w, what, &len)) != PASS_OK)
        return out;
    if ((out = request(0, what, MESSAGING, query, len, &a)) != PASS_OK)
        return out;
    if ((rc = ident_get(&a.doc, 0, "message_id", &echoed)) != ATT_JSON_OK)
        return off_contract(what, MESSAGING, "message_id", rc, &a);
    if (!ident_eq(&echoed, &p->message))
        return off_contract(what, MESSAGING, "message_id of another message", ATT_JSON_E_RANGE, &a);
    reply = att_json_member(&a.doc, 0, "reply");
    p->checks++;
    if (att_json_is_null(&a.doc, reply)) {
        if (p->checks >= cfg->reply_checks) {
            say("sale %" PRId64 ": no reply to message %s after %lu checks, stopped waiting", p->sale_id,
                ident_show(&p->message, shown), p->checks);
            *answered = 2;
        } else if (p->checks == 1) {
            say("sale %" PRId64 ": reply: pending", p->sale_id);
        }
    } else if (att_json_type(&a.doc, reply) == ATT_JSON_STRING) {
        /* Only the contract's two words are echoed; anything else is not printed. */
        const char *word = att_json_string_eq(&a.doc, reply, "accepted", 8)   ? "accepted"
                           : att_json_string_eq(&a.doc, reply, "declined", 8) ? "declined"
                                                                              : "not understood";
        say("sale %" PRId64 ": reply: %s", p->sale_id, word);
        *answered = 1;
    } else {
        return off_contract(what, MESSAGING, "reply", reply == ATT_JSON_NONE ? ATT_JSON_E_MISSING : ATT_JSON_E_TYPE,
                            &a);
    }
    answer_release(&a);
    return PASS_OK;
}

static void add_pending(struct state *st, int64_t sale_id, const struct ident *message)
{
    char shown[IDENT_MAX + 1];
    if (st->npending == MAX_PENDING) {
        say("sale %" PRId64 ": stopped waiting for the reply to message %s (too many awaited)",
            st->pending[0].sale_id, ident_show(&st->pending[0].message, shown));
        memmove(&st->pending[0], &st->pending[1], (MAX_PENDING - 1) * sizeof st->pending[0]);
        st->npending--;
    }
    st->pending[st->npending].sale_id = sale_id;
    st->pending[st->npending].message = *message;
    st->pending[st->npending].checks = 0;
    st->npending++;
}

/* Reads the reply to every awaited message once (or only the last one). */
static enum outcome check_replies(const struct config *cfg, struct state *st, size_t from)
{
    size_t i = from;
    while (i < st->npending && !stopping) {
        int answered = 0;
        enum outcome out = check_reply(cfg, &st->pending[i], &answered);
        if (out != PASS_OK)
            return out;
        if (answered) {
            if (answered == 1)
                st->count.replies++;
            memmove(&st->pending[i], &st->pending[i + 1], (st->npending - i - 1) * sizeof st->pending[0]);
            st->npending--;
        } else {
            i++;
        }
    }
    return PASS_OK;
}

/* ----------------------------------------------------------------------- pass */

static enum outcome handle_sale_steps(const struct config *cfg, struct state *st, const struct sale *s);

/* Failures while handling a sale name it; the context is cleared afterwards. */
static enum outcome handle_sale(const struct config *cfg, struct state *st, const struct sale *s)
{
    enum outcome out = handle_sale_steps(cfg, st, s);
    error_context[0] = '\0';
    return out;
}

static enum outcome handle_sale_steps(const struct config *cfg, struct state *st, const struct sale *s)
{
    char trip_shown[IDENT_MAX + 1], message_shown[IDENT_MAX + 1];
    struct booked *b;
    struct ident message_id;
    int existing = 0;
    enum outcome out;

    st->count.sales++;
    if (s->bad_total != NULL) {
        say("sale %" PRId64 ": unusable total_cents (%s), skipped", s->id, s->bad_total);
        st->count.skipped++;
        st->last_id = s->id;
        return PASS_OK;
    }
    if (s->total_cents <= cfg->threshold_cents) {
        say("sale %" PRId64 ": at or below threshold, skipped", s->id);
        st->count.skipped++;
        st->last_id = s->id;
        return PASS_OK;
    }
    if (s->bad_field != NULL) {
        say("sale %" PRId64 ": above threshold, but its %s is missing or unusable; skipped", s->id, s->bad_field);
        st->count.skipped++;
        st->last_id = s->id;
        return PASS_OK;
    }

    snprintf(error_context, sizeof error_context, "sale %" PRId64 ": ", s->id);
    b = find_booked(st, s->id);
    if (b == NULL) {
        struct trip t;
        out = book_trip(cfg, s, &t);
        if (out == PASS_OK)
            b = remember_booked(st, s->id, &t);
        wipe(&t, sizeof t);
        if (out != PASS_OK)
            return out;
    }
    out = send_offer(s, &b->trip, &message_id, &existing);
    if (out != PASS_OK)
        return out; /* b stays: the retry messages this trip, it does not book again */
    say("sale %" PRId64 ": above threshold, booked trip %s (%s), message %s sent (%s)", s->id,
        ident_show(&b->trip.id, trip_shown), b->trip.existing ? "existing" : "new",
        ident_show(&message_id, message_shown), existing ? "existing" : "new");
    wipe(b, sizeof *b);
    st->count.booked++;
    st->last_id = s->id;
    add_pending(st, s->id, &message_id);
    return check_replies(cfg, st, st->npending - 1);
}

static enum outcome run_pass(const struct config *cfg, struct state *st)
{
    enum outcome out = PASS_OK;
    size_t earlier = st->npending;

    pass_error[0] = '\0';
    memset(&st->count, 0, sizeof st->count);
    /* Replies to messages of earlier passes first; new ones are read as they are sent. */
    if (earlier > 0)
        out = check_replies(cfg, st, 0);
    for (int p = 0; out == PASS_OK && p < MAX_PAGES && !stopping; p++) {
        size_t n = 0, handled = 0;
        out = read_sales(st, &n);
        for (size_t i = 0; out == PASS_OK && i < n && !stopping; i++) {
            if (page[i].id <= st->last_id)
                continue; /* handled before, or a duplicate in the page */
            out = handle_sale(cfg, st, &page[i]);
            handled++;
        }
        wipe(page, sizeof page);
        if (n < SALES_PAGE || handled == 0)
            break;
    }
    return out;
}

static void summary(const struct config *cfg, const struct state *st, enum outcome out)
{
    const struct counters *c = &st->count;
    if (out != PASS_OK)
        return;
    if (c->sales == 0 && c->replies == 0 && !cfg->once && cfg->max_passes == 0)
        return; /* a quiet pass: nothing to say, and output is capped */
    say("pass %lu: %lu new sales, %lu booked, %lu skipped; %lu replies read, %zu awaited; last sale id %" PRId64,
        st->pass, c->sales, c->booked, c->skipped, c->replies, st->npending, st->last_id);
}

/* A failure is printed when it changes, and then at 1, 2, 4, 8... repetitions, so a
 * long outage does not fill the capped output. */
static void report_failure(const struct state *st, uint32_t retry_ms, int retrying)
{
    static char previous[ERROR_MAX];
    static unsigned long repeats;
    char when[24];

    format_ms(retry_ms, when);
    if (strcmp(previous, pass_error) == 0) {
        repeats++;
        if ((repeats & (repeats - 1)) != 0)
            return;
        fprintf(stderr, "pass %lu failed again (the same error, %lu times in a row)%s%s\n", st->pass, repeats,
                retrying ? "; retrying in " : "", retrying ? when : "");
    } else {
        memcpy(previous, pass_error, sizeof previous);
        repeats = 1;
        fprintf(stderr, "pass %lu failed: %s%s%s\n", st->pass, pass_error, retrying ? "; retrying in " : "",
                retrying ? when : "");
    }
    fflush(stderr);
}

static int have_services(void)
{
    static const char *const needed[] = {STORE, TRANSPORT, MESSAGING};
    int ok = 1;
    for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++) {
        int found = 0;
        for (size_t k = 0; k < att_service_count(); k++)
            if (strcmp(att_service_id(k), needed[i]) == 0)
                found = 1;
        if (!found) {
            fprintf(stderr, "the launcher gave no key for the service %s: is it configured?\n", needed[i]);
            ok = 0;
        }
    }
    return ok;
}

int main(int argc, char **argv)
{
    static struct state st;
    struct config cfg;
    struct sigaction sa;
    enum outcome out = PASS_OK;
    uint32_t backoff;
    char interval[24];
    int rc;

    if (parse_args(argc, argv, &cfg) != 0)
        return 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    rc = att_runtime_init();
    if (rc != ATT_OK) {
        fprintf(stderr, "handshake failed: %s: %s\n", att_strerror(rc), att_error_detail());
        return 1;
    }
    if (!have_services()) {
        att_runtime_shutdown();
        return 1;
    }
    format_ms(cfg.interval_ms, interval);
    say("integration process: certificate serial %s; booking above $%" PRId64 ".%02" PRId64
        "; sales after id %" PRId64 "; %s",
        att_certificate_serial(), cfg.threshold_cents / 100, cfg.threshold_cents % 100, cfg.after_id,
        cfg.once ? "one pass" : interval);

    st.last_id = cfg.after_id;
    backoff = cfg.backoff_min_ms;
    while (!stopping) {
        int last;
        st.pass++;
        out = run_pass(&cfg, &st);
        if (out == PASS_OK && cfg.once) {
            /* One pass, then wait for the customers' answers (bounded by --reply-checks). */
            while (out == PASS_OK && st.npending > 0 && !stopping) {
                sleep_ms(cfg.interval_ms);
                if (!stopping)
                    out = check_replies(&cfg, &st, 0);
            }
        }
        summary(&cfg, &st, out);
        last = cfg.once || (cfg.max_passes != 0 && st.pass >= cfg.max_passes) || out == PASS_FATAL;
        if (out != PASS_OK)
            report_failure(&st, backoff, !last && !stopping);
        if (last)
            break;
        if (out == PASS_OK) {
            backoff = cfg.backoff_min_ms;
            sleep_ms(cfg.interval_ms);
        } else {
            sleep_ms(backoff);
            backoff = backoff > cfg.backoff_max_ms / 2 ? cfg.backoff_max_ms : backoff * 2;
        }
    }
    if (stopping)
        say("stopping: signal received");
    wipe(&st, sizeof st);
    att_runtime_shutdown();
    if (stopping && out != PASS_FATAL)
        return 0;
    return out == PASS_OK ? 0 : 1;
}
