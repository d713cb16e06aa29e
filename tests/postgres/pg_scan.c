/*
 * pg_scan.c -- scans on the PostgreSQL backend (engine/pg/pgscan.c) against
 * the LMDB engine, both through the public API (a directory and a
 * postgresql:// URL): the same records loaded into both, then every kind of
 * scan run on both and every result logged -- return codes, each record's
 * bytes, each udb_cursor_key, skip counts -- and the two logs must be
 * identical.  Scans: every index of every type (primary keys of str, int and
 * uint; unique with NULLs distinct and not distinct; partial, unique and
 * not; nocase, unique and not; compound; float, bytes, bool, enum and uint
 * fields; values longer than LMDB's key), forward and reverse, whole, by
 * prefix, and between random bounds of every length, each side included or
 * excluded, with limits; paged with `after` (pages of a few entries, in new
 * transactions, also after the entry at a page's end was deleted); skips.
 * More rows than the backend's page of 256, so FETCH pages are crossed.
 *
 * Then what differs and what must hold on the server alone: a cursor does
 * not see its own transaction's later writes there (LMDB's does); records a
 * reader's scan hands out stay valid until the transaction ends; a server
 * that returns rows out of uniqdb's order is refused.  Run under pg_run.
 *
 * usage: pg_scan [--misorder]
 *   --misorder: the backend orders NULLs last and does not check the
 *   server's order: the comparison must FAIL (the negative control).
 */
#include <inttypes.h>
#include <libpq-fe.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pgstore.h"
#include "uniqdb.h"

static int failures;

#define CHECK(e) do { if (!(e)) { fprintf(stderr, "%s:%d: FAIL: %s\n", __FILE__, __LINE__, \
                                          #e); failures++; } } while (0)
#define CHECK_RC(call, want) do { int rc_ = (call); if (rc_ != (want)) { \
    fprintf(stderr, "%s:%d: FAIL: %s gave %d, wanted %d; %s\n", __FILE__, __LINE__, \
            #call, rc_, (want), udb_env_errmsg(NULL)); failures++; } } while (0)

static const char schema[] =
    "{\"types\": {"
    "\"item\": {\"key\": \"id\", \"fields\": {"
    "  \"id\": {\"type\": \"uint\"}, \"email\": {\"type\": \"str\"},"
    "  \"name\": {\"type\": \"str\"}, \"grp\": {\"type\": \"str\"},"
    "  \"n\": {\"type\": \"int\"}, \"score\": {\"type\": \"float\"},"
    "  \"flag\": {\"type\": \"bool\"}, \"blob\": {\"type\": \"bin\"},"
    "  \"level\": {\"type\": \"enum\", \"values\": [\"lo\", \"mid\", \"hi\"]},"
    "  \"u\": {\"type\": \"uint\"}, \"tag\": {\"type\": \"str\"},"
    "  \"must\": {\"type\": \"int\", \"required\": true}},"
    " \"unique\": {"
    "   \"email\": {\"fields\": [{\"field\": \"email\", \"collate\": \"nocase\"}]},"
    "   \"grp_n\": {\"fields\": [\"grp\", \"n\"]},"
    "   \"tag_on\": {\"fields\": [\"tag\"], \"where\": \"flag = true\"},"
    "   \"level_u\": {\"fields\": [\"level\", \"u\"], \"nulls\": \"not_distinct\"}},"
    " \"indexes\": {"
    "   \"by_grp\": {\"fields\": [\"grp\"]},"
    "   \"by_name\": {\"fields\": [{\"field\": \"name\", \"collate\": \"nocase\"}, \"n\"]},"
    "   \"by_score\": {\"fields\": [\"score\"]},"
    "   \"by_blob\": {\"fields\": [\"blob\"]},"
    "   \"by_flag_u\": {\"fields\": [\"flag\", \"u\"]},"
    "   \"by_must\": {\"fields\": [\"must\", \"grp\"]},"
    "   \"by_level\": {\"fields\": [\"level\"], \"where\": \"grp IS NOT NULL\"}}},"
    "\"word\": {\"key\": \"w\", \"fields\": {\"w\": {\"type\": \"str\"},"
    "  \"v\": {\"type\": \"int\"}},"
    " \"indexes\": {\"by_v\": {\"fields\": [\"v\"]}}},"
    "\"num\": {\"key\": \"k\", \"fields\": {\"k\": {\"type\": \"int\"},"
    "  \"s\": {\"type\": \"str\"}}}}}";

#define NITEMS 700   /* > 2 of the backend's FETCH pages */

/* ---- the log ------------------------------------------------------------------ */

static udb_buf logbuf;

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
    char tmp[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    udb__buf_put(&logbuf, tmp, strlen(tmp));
}

static void log_hex(const char *what, const void *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    logf_(" %s=", what);
    for (size_t i = 0; i < n; i++) {
        unsigned char b = ((const unsigned char *)p)[i];
        char two[2] = {digits[b >> 4], digits[b & 15]};
        udb__buf_put(&logbuf, two, 2);
    }
}

/* ---- values ---------------------------------------------------------------------- */

static uint64_t rnd_state;

static uint64_t rnd(void)
{
    uint64_t x = rnd_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rnd_state = x;
}

static size_t pick(size_t n)
{
    return (size_t)(rnd() % n);
}

/* A field's pool of values (msgpack given by a packing function). */
typedef enum vkind { V_STR, V_INT, V_UINT, V_FLOAT, V_BOOL, V_BIN } vkind;

static char longa[600], longb[600], longc[700];

static const char *names[] = {
    "ann", "Ann", "ANN", "bob", "Bob", "b", "ab", "a", "", "zed", "Zed", "_", "[", "`", "^z",
    "\xc3\xa9mile", "\xc3\x89mile", "z\xc3\xa9", "a b", "A_B", "a_b", "abc", "ABD", "~",
    NULL, NULL, NULL,   /* the long ones, filled in main */
};
static const char *const grps[] = {"g1", "g2", "G1", "g10", "g2x", "", "g", "h"};
static const int64_t ints[] = {-5, -4, -1, 0, 1, 2, 3, 5, -9000000000LL, 9000000000LL,
                               INT64_MAX, INT64_MIN, 255, -256, 65536};
static const uint64_t uints[] = {0, 1, 2, 255, 256, 65535, 4294967296ULL, 9223372036854775808ULL,
                                 UINT64_MAX, 7, 1000};
static double floats[] = {0, -2.5, -0.0, 0.0, 1e-300, 0.1, 0.30000000000000004, 1, 2.5, 1e300,
                          -1e300, 3, 0};
static const char *const blobs[] = {"", "\x00", "\x00\x00", "\x01", "\xff", "\xff\x00", "a",
                                    "ab", "\x00\xff"};
static const size_t bloblen[] = {0, 1, 2, 1, 1, 2, 1, 2, 2};
static const char *const levels[] = {"lo", "mid", "hi"};

static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_cstr(msgpack_packer *pk, const char *s)
{
    pack_str(pk, s, strlen(s));
}

static void pack_int(msgpack_packer *pk, int64_t v)
{
    if (v < 0)
        msgpack_pack_int64(pk, v);
    else
        msgpack_pack_uint64(pk, (uint64_t)v);
}

/* A string of s with its ASCII letters' case flipped at random: nocase
 * bounds and values must match in any case. */
static void pack_randcase(msgpack_packer *pk, const char *s)
{
    char tmp[800];
    size_t n = strlen(s);
    if (n >= sizeof tmp)
        n = sizeof tmp - 1;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (rnd() % 3 == 0 && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            c ^= 0x20;
        tmp[i] = c;
    }
    pack_str(pk, tmp, n);
}

/* Pack a value of field `field` of item (or word, num): from its pool, or
 * nil with probability nil_pct. */
static void pack_value(msgpack_packer *pk, const char *field, bool nocase)
{
    if (strcmp(field, "email") == 0) {
        char e[64];
        snprintf(e, sizeof e, "user%zu@ex.org", pick(20 * NITEMS));
        pack_randcase(pk, e);
    } else if (strcmp(field, "name") == 0) {
        const char *s = names[pick(sizeof names / sizeof names[0])];
        nocase ? pack_randcase(pk, s) : pack_cstr(pk, s);
    } else if (strcmp(field, "grp") == 0) {
        pack_cstr(pk, grps[pick(sizeof grps / sizeof grps[0])]);
    } else if (strcmp(field, "n") == 0 || strcmp(field, "must") == 0 ||
               strcmp(field, "v") == 0 || strcmp(field, "k") == 0) {
        pack_int(pk, rnd() % 3 ? (int64_t)pick(600) - 300
                               : ints[pick(sizeof ints / sizeof ints[0])]);
    } else if (strcmp(field, "score") == 0) {
        msgpack_pack_double(pk, floats[pick(sizeof floats / sizeof floats[0])]);
    } else if (strcmp(field, "flag") == 0) {
        rnd() & 1 ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    } else if (strcmp(field, "blob") == 0) {
        size_t i = pick(sizeof blobs / sizeof blobs[0]);
        msgpack_pack_bin(pk, bloblen[i]);
        msgpack_pack_bin_body(pk, blobs[i], bloblen[i]);
    } else if (strcmp(field, "level") == 0) {
        pack_cstr(pk, levels[pick(3)]);
    } else if (strcmp(field, "u") == 0 || strcmp(field, "id") == 0) {
        uint64_t v = rnd() % 8 ? pick(4 * NITEMS) : uints[pick(sizeof uints / sizeof uints[0])];
        msgpack_pack_uint64(pk, v);
    } else if (strcmp(field, "tag") == 0) {
        char t[16];
        snprintf(t, sizeof t, "t%02zu", pick(4 * NITEMS));
        pack_cstr(pk, t);
    } else if (strcmp(field, "w") == 0 || strcmp(field, "s") == 0) {
        pack_cstr(pk, names[pick(sizeof names / sizeof names[0])]);
    } else {
        msgpack_pack_nil(pk);
    }
}

static udb_val take(msgpack_sbuffer *sb)
{
    return (udb_val){sb->data, sb->size};
}

/* ---- the two databases: an LMDB directory and a postgresql:// URL ---------------- */

typedef struct side {
    const char *name;
    udb_env *env;
} side;

static int begin(udb_txn **t, side *s, unsigned flags)
{
    return udb_begin(t, s->env, flags);
}

static int commit(udb_txn *t, side *s)
{
    (void)s;
    return udb_commit(t);
}

static void abort_(udb_txn *t, side *s)
{
    (void)s;
    udb_abort(t);
}

/* ---- loading ------------------------------------------------------------------ */

static const char *const item_fields[] = {"email", "name", "grp", "n", "score", "flag",
                                          "blob", "level", "u", "tag"};

static void load(side *s)
{
    udb_txn *t;
    if (begin(&t, s, 0)) {
        fprintf(stderr, "%s: begin failed\n", s->name);
        failures++;
        return;
    }
    rnd_state = 0x9E3779B97F4A7C15ULL;
    int ok = 0, refused = 0;
    for (int i = 0; i < NITEMS; i++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        bool set[10];
        uint32_t n = 2;
        for (size_t f = 0; f < 10; f++)
            n += set[f] = rnd() % 20 >= (f == 8 ? 1 : 6);   /* 30% missing (NULL); u 5% */
        msgpack_pack_map(&pk, n);
        pack_cstr(&pk, "id");
        msgpack_pack_uint64(&pk, (uint64_t)i * 3 + 1);
        pack_cstr(&pk, "must");
        pack_int(&pk, (int64_t)pick(4) - 2);
        for (size_t f = 0; f < 10; f++)
            if (set[f]) {
                pack_cstr(&pk, item_fields[f]);
                pack_value(&pk, item_fields[f], false);
            }
        udb_val r = take(&sb), out;
        int rc = udb_insert(&out, t, "item", r.data, r.size);
        logf_("insert %d: rc=%d\n", i, rc);
        if (rc == UDB_ECONFLICT && getenv("PG_SCAN_DEBUG"))
            fprintf(stderr, "conflict %s\n", udb_conflict_info(t)->indexes[0].index);
        if (rc && rc != UDB_ECONFLICT)
            fprintf(stderr, "%s: insert %d: %s\n", s->name, i, udb_errmsg(t));
        rc ? refused++ : ok++;
        msgpack_sbuffer_destroy(&sb);
    }
    for (int i = 0; i < 120; i++) {
        const char *type = i % 2 ? "word" : "num";
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 2);
        pack_cstr(&pk, i % 2 ? "w" : "k");
        if (i % 2) {
            char w[720];
            snprintf(w, sizeof w, "%s%d", names[pick(sizeof names / sizeof names[0])],
                     (int)pick(5));
            pack_cstr(&pk, w);
        } else {
            pack_int(&pk, rnd() % 3 ? (int64_t)pick(200) - 100
                                    : ints[pick(sizeof ints / sizeof ints[0])]);
        }
        pack_cstr(&pk, i % 2 ? "v" : "s");
        pack_value(&pk, i % 2 ? "v" : "s", false);
        udb_val r = take(&sb), out;
        logf_("insert %s %d: rc=%d\n", type, i, udb_insert(&out, t, type, r.data, r.size));
        msgpack_sbuffer_destroy(&sb);
    }
    int rc = commit(t, s);
    if (rc || ok < NITEMS / 2) {
        fprintf(stderr, "%s: load: commit %d, %d inserted, %d refused\n", s->name, rc, ok,
                refused);
        failures++;
    }
}

/* ---- scans ---------------------------------------------------------------------- */

typedef struct ixdesc {
    const char *type, *index;            /* index NULL: the primary key */
    const char *fields[3];               /* its fields, then its primary key */
    bool nocase[3];
} ixdesc;

static const ixdesc ixs[] = {
    {"item", NULL, {"id"}, {false}},
    {"item", "email", {"email", "id"}, {true}},
    {"item", "grp_n", {"grp", "n", "id"}, {false}},
    {"item", "tag_on", {"tag", "id"}, {false}},
    {"item", "level_u", {"level", "u", "id"}, {false}},
    {"item", "by_grp", {"grp", "id"}, {false}},
    {"item", "by_name", {"name", "n", "id"}, {true, false}},
    {"item", "by_score", {"score", "id"}, {false}},
    {"item", "by_blob", {"blob", "id"}, {false}},
    {"item", "by_flag_u", {"flag", "u", "id"}, {false}},
    {"item", "by_must", {"must", "grp", "id"}, {false}},
    {"item", "by_level", {"level", "id"}, {false}},
    {"word", NULL, {"w"}, {false}},
    {"word", "by_v", {"v", "w"}, {false}},
    {"num", NULL, {"k"}, {false}},
};
#define NIXS (sizeof ixs / sizeof ixs[0])

static size_t nfields(const ixdesc *d)
{
    size_t n = 0;
    while (n < 3 && d->fields[n])
        n++;
    return d->index ? n - 1 : n;   /* without the primary key */
}

/* A random bound of 1..nf values of d's fields (nil now and then). */
static void pack_bound(msgpack_sbuffer *sb, const ixdesc *d, size_t nf)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, nf);
    for (size_t i = 0; i < nf; i++) {
        if (rnd() % 6 == 0)
            msgpack_pack_nil(&pk);
        else
            pack_value(&pk, d->fields[i], d->nocase[i]);
    }
}

/* Run one scan to its end (or max entries), logging what it hands out. */
static void drain(udb_txn *t, udb_cursor *c, int max)
{
    udb_val v, k;
    int rc = 0, n = 0;
    while (n < max && (rc = udb_cursor_next(&v, c)) == 0) {
        log_hex(" r", v.data, v.size);
        if (udb_cursor_key(&k, c) == 0)
            log_hex("k", k.data, k.size);
        else
            logf_(" k:rc");
        n++;
    }
    logf_(" end=%d n=%d", n < max ? rc : 0, n);
    if (rc && rc != UDB_ENOTFOUND)
        logf_(" (%s)", udb_errmsg(t));
    logf_("\n");
}

static void scan_range(udb_txn *t, const ixdesc *d, const char *label, const udb_range *r)
{
    udb_cursor *c = NULL;
    int rc = udb_scan_range(&c, t, d->type, d->index, r);
    logf_("%s %s.%s: open=%d", label, d->type, d->index ? d->index : "(pk)", rc);
    if (rc) {
        logf_(" (%s)\n", udb_errmsg(t));
        return;
    }
    drain(t, c, 1 << 30);
    udb_cursor_close(c);
}

/* Every record in pages of `limit`, each page in a new transaction resumed
 * after the last page's key; with del, the record at a page's end is deleted
 * (in a write transaction) before the next page. */
static void paged(side *s, const ixdesc *d, unsigned flags, uint64_t limit, bool del)
{
    void *after = NULL;
    size_t alen = 0;
    logf_("paged %s.%s flags=%u limit=%llu del=%d:\n", d->type, d->index ? d->index : "(pk)",
          flags, (unsigned long long)limit, del);
    for (int page = 0; page < 10000; page++) {
        udb_txn *t;
        if (begin(&t, s, del ? 0 : UDB_RDONLY)) {
            failures++;
            break;
        }
        udb_range r = UDB_RANGE_INIT;
        r.flags = flags;
        r.limit = limit;
        r.after = (udb_val){after, alen};
        udb_cursor *c = NULL;
        int rc = udb_scan_range(&c, t, d->type, d->index, &r), n = 0;
        udb_val v, k, last = {0};
        while (!rc && (rc = udb_cursor_next(&v, c)) == 0) {
            log_hex(" r", v.data, v.size);
            last = v;
            n++;
        }
        logf_(" page %d: n=%d rc=%d\n", page, n, rc);
        if (n && udb_cursor_key(&k, c) == 0) {
            free(after);
            after = malloc(k.size);
            memcpy(after, k.data, k.size);
            alen = k.size;
        }
        if (n && del) {
            /* the entry at the page's end goes: the position stays one */
            msgpack_unpacked u;
            msgpack_unpacked_init(&u);
            msgpack_unpack_next(&u, last.data, last.size, NULL);
            const char *kname = d->fields[nfields(d) - (d->index ? 0 : 1)];
            for (uint32_t i = 0; i < u.data.via.map.size; i++) {
                const msgpack_object_kv *kv = &u.data.via.map.ptr[i];
                if (kv->key.via.str.size == strlen(kname) &&
                    memcmp(kv->key.via.str.ptr, kname, strlen(kname)) == 0) {
                    msgpack_sbuffer sb;
                    msgpack_sbuffer_init(&sb);
                    msgpack_packer pk;
                    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
                    msgpack_pack_object(&pk, kv->val);
                    logf_(" delete=%d\n", udb_delete(t, d->type, sb.data, sb.size));
                    msgpack_sbuffer_destroy(&sb);
                }
            }
            msgpack_unpacked_destroy(&u);
        }
        udb_cursor_close(c);
        if (del)
            CHECK_RC(commit(t, s), 0);
        else
            abort_(t, s);
        if (n == 0 || rc != UDB_ENOTFOUND)
            break;
    }
    free(after);
}

static double now(void);

static bool control;   /* --misorder: whole scans only, enough to differ */

static void scans(side *s)
{
    double t0 = now();
    udb_txn *t;
    if (begin(&t, s, UDB_RDONLY)) {
        failures++;
        return;
    }
    rnd_state = 0xD1B54A32D192ED03ULL;
    for (size_t x = 0; x < NIXS; x++) {
        const ixdesc *d = &ixs[x];
        size_t nf = nfields(d);
        udb_range r = UDB_RANGE_INIT;
        scan_range(t, d, "all", &r);
        r.flags = UDB_REVERSE;
        scan_range(t, d, "all reverse", &r);
        if (control)
            continue;
        /* udb_scan with a prefix of 1..nf values */
        for (int i = 0; i < 6; i++) {
            msgpack_sbuffer sb;
            msgpack_sbuffer_init(&sb);
            pack_bound(&sb, d, 1 + pick(nf));
            udb_cursor *c = NULL;
            int rc = udb_scan(&c, t, d->type, d->index, sb.data, sb.size);
            log_hex("prefix", sb.data, sb.size);
            logf_(" %s.%s: open=%d", d->type, d->index ? d->index : "(pk)", rc);
            if (!rc)
                drain(t, c, 1 << 30);
            else
                logf_("\n");
            udb_cursor_close(c);
            msgpack_sbuffer_destroy(&sb);
        }
        /* random bounds: lo and hi of any length, either missing, every flag */
        for (int i = 0; i < 16; i++) {
            msgpack_sbuffer lo, hi;
            msgpack_sbuffer_init(&lo);
            msgpack_sbuffer_init(&hi);
            int shape = (int)pick(4);   /* both, lo only, hi only, equal */
            pack_bound(&lo, d, 1 + pick(nf));
            if (shape == 3)
                msgpack_sbuffer_write(&hi, lo.data, lo.size);
            else
                pack_bound(&hi, d, 1 + pick(nf));
            r = (udb_range)UDB_RANGE_INIT;
            if (shape != 2)
                r.lo = take(&lo);
            if (shape != 1)
                r.hi = take(&hi);
            r.flags = (unsigned)pick(8);
            r.limit = rnd() % 3 == 0 ? 1 + pick(20) : 0;
            log_hex("lo", r.lo.data, r.lo.size);
            log_hex("hi", r.hi.data, r.hi.size);
            logf_(" flags=%u limit=%llu\n", r.flags, (unsigned long long)r.limit);
            scan_range(t, d, "range", &r);
            msgpack_sbuffer_destroy(&lo);
            msgpack_sbuffer_destroy(&hi);
        }
        /* after a random position (not necessarily an entry's) */
        for (int i = 0; i < 4; i++) {
            msgpack_sbuffer a;
            msgpack_sbuffer_init(&a);
            msgpack_packer pk;
            msgpack_packer_init(&pk, &a, msgpack_sbuffer_write);
            msgpack_pack_array(&pk, nf + (d->index != NULL));
            for (size_t f = 0; f < nf + (d->index != NULL); f++)
                if (f < nf && rnd() % 5 == 0)
                    msgpack_pack_nil(&pk);
                else
                    pack_value(&pk, d->fields[f], f < nf && d->nocase[f]);
            r = (udb_range)UDB_RANGE_INIT;
            r.after = take(&a);
            r.flags = (unsigned)pick(8);
            r.limit = 1 + pick(30);
            log_hex("after", a.data, a.size);
            logf_(" flags=%u\n", r.flags);
            scan_range(t, d, "after", &r);
            msgpack_sbuffer_destroy(&a);
        }
        /* skips: n entries stepped over, then the next one */
        for (int i = 0; i < 3; i++) {
            r = (udb_range)UDB_RANGE_INIT;
            r.flags = i == 1 ? UDB_REVERSE : 0;
            r.limit = i == 2 ? 40 : 0;
            udb_cursor *c = NULL;
            uint64_t skipped = 0, want = i == 2 ? 1000 : 1 + pick(300);
            int rc = udb_scan_range(&c, t, d->type, d->index, &r);
            if (!rc) {
                rc = udb_cursor_skip(&skipped, c, want);
                logf_("skip %llu: rc=%d skipped=%llu", (unsigned long long)want, rc,
                      (unsigned long long)skipped);
                drain(t, c, 3);
            }
            udb_cursor_close(c);
        }
    }
    /* what the core refuses, the same on both */
    udb_range r = UDB_RANGE_INIT;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_true(&pk);
    r.lo = take(&sb);
    scan_range(t, &ixs[7], "bad lo", &r);
    r = (udb_range)UDB_RANGE_INIT;
    r.after = take(&sb);
    scan_range(t, &ixs[2], "bad after", &r);
    msgpack_sbuffer_destroy(&sb);
    /* string bounds PostgreSQL's text cannot hold (a NUL, bytes that are not
       UTF-8): the server gets no such bound, the core still decides */
    static const char *const odd[] = {"ann\0", "a\0b", "\xff", "b\xc3", "Zed\xed\xa0\x80"};
    static const size_t oddlen[] = {4, 3, 1, 2, 6};
    for (size_t i = 0; i < 5 * 4; i++) {
        const ixdesc *d = &ixs[i % 4 < 2 ? 6 : 12];   /* by_name (nocase, n), word's key */
        if (d == &ixs[12] && i % 2)
            continue;   /* one value for a primary key */
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, i % 2 + 1);
        pack_str(&pk, odd[i / 4], oddlen[i / 4]);
        if (i % 2)
            msgpack_pack_int64(&pk, -1);
        r = (udb_range)UDB_RANGE_INIT;
        if (i % 4 == 1 || i % 4 == 2)
            r.hi = take(&sb);
        else
            r.lo = take(&sb);
        r.flags = (unsigned)(i % 8);
        r.flags = (unsigned)(d == &ixs[12] ? r.flags : r.flags | UDB_HI_EXCL);
        log_hex("odd", sb.data, sb.size);
        logf_(" flags=%u\n", r.flags);
        scan_range(t, d, "odd", &r);
        msgpack_sbuffer_destroy(&sb);
        /* after a good value: by_must (must, grp), as a bound and in after */
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 2 + i % 2);
        msgpack_pack_int64(&pk, (int64_t)(i % 3) - 1);
        pack_str(&pk, odd[i / 4], oddlen[i / 4]);
        if (i % 2)
            msgpack_pack_uint64(&pk, 3 * i);
        r = (udb_range)UDB_RANGE_INIT;
        if (i % 2)
            r.after = take(&sb);
        else if (i % 4)
            r.hi = take(&sb);
        else
            r.lo = take(&sb);
        r.flags = (unsigned)(i % 8);
        log_hex("odd", sb.data, sb.size);
        logf_(" flags=%u\n", r.flags);
        scan_range(t, &ixs[10], "odd", &r);
        msgpack_sbuffer_destroy(&sb);
    }
    abort_(t, s);
    if (control)
        return;
    printf("pg_scan: %s: scans before paging %.2f s\n", s->name, now() - t0);
    /* paging: whole indexes in pages, forward and reverse, with deletes */
    for (size_t x = 0; x < NIXS; x++) {
        paged(s, &ixs[x], 0, 97, false);
        paged(s, &ixs[x], UDB_REVERSE, 301, false);
    }
    paged(s, &ixs[6], 0, 13, true);
    paged(s, &ixs[2], UDB_REVERSE, 17, true);
    paged(s, &ixs[0], 0, 250, true);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static udb_buf run_side(side *s)
{
    logbuf = (udb_buf){0};
    double t0 = now();
    load(s);
    double t1 = now();
    scans(s);
    printf("pg_scan: %s: load %.2f s, scans %.2f s\n", s->name, t1 - t0, now() - t1);
    return logbuf;
}

/* ---- what only the server shows -------------------------------------------------- */

/* A cursor in a write transaction, and a record the transaction writes after
 * the cursor opened, where the cursor has not been yet: LMDB's cursor reads
 * it, PostgreSQL's (its query ran at DECLARE) does not. */
static void test_own_writes(side *s, bool sees)
{
    udb_txn *t;
    CHECK_RC(begin(&t, s, 0), 0);
    udb_cursor *c = NULL;
    udb_range r = UDB_RANGE_INIT;
    CHECK_RC(udb_scan_range(&c, t, "num", NULL, &r), 0);
    udb_val v, k;
    CHECK_RC(udb_cursor_next(&v, c), 0);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    pack_cstr(&pk, "k");
    msgpack_pack_int64(&pk, INT64_MAX - 1);   /* after the first key */
    CHECK_RC(udb_insert(&v, t, "num", sb.data, sb.size), 0);
    msgpack_sbuffer_destroy(&sb);
    int rc;
    bool seen = false;
    while ((rc = udb_cursor_next(&v, c)) == 0)
        if (udb_cursor_key(&k, c) == 0 && k.size == 10 &&
            memcmp(k.data, "\x91\xcf\x7f\xff\xff\xff\xff\xff\xff\xfe", 10) == 0)
            seen = true;
    CHECK(rc == UDB_ENOTFOUND);
    if (seen != sees) {
        fprintf(stderr, "FAIL: %s: a cursor %s its own transaction's later write\n", s->name,
                seen ? "saw" : "did not see");
        failures++;
    }
    /* a cursor opened after the write sees it on both */
    udb_cursor_close(c);
    CHECK_RC(udb_scan(&c, t, "num", NULL, "\x91\xcf\x7f\xff\xff\xff\xff\xff\xff\xfe", 10),
             0);
    CHECK_RC(udb_cursor_next(&v, c), 0);
    CHECK_RC(udb_cursor_next(&v, c), UDB_ENOTFOUND);
    udb_cursor_close(c);
    abort_(t, s);
}

/* Records a reader's scan hands out stay valid until the transaction ends,
 * across FETCH pages (ASan would see a freed one). */
static void test_reader_memory(side *s)
{
    udb_txn *t;
    CHECK_RC(begin(&t, s, UDB_RDONLY), 0);
    udb_cursor *c = NULL;
    CHECK_RC(udb_scan(&c, t, "item", NULL, NULL, 0), 0);
    udb_val first = {0}, v;
    CHECK_RC(udb_cursor_next(&first, c), 0);
    void *copy = malloc(first.size);
    memcpy(copy, first.data, first.size);
    int n = 1;
    while (udb_cursor_next(&v, c) == 0)
        n++;
    udb_cursor_close(c);
    CHECK(n > 300);   /* more than a FETCH page */
    CHECK(first.data && memcmp(first.data, copy, first.size) == 0);
    free(copy);
    abort_(t, s);
}

/* A server whose rows come out of uniqdb's order (NULLs last here) is
 * refused, not passed on. */
static void test_order_guard(side *s)
{
    udb__pg_test_scan_misorder(2);
    udb_txn *t;
    CHECK_RC(begin(&t, s, UDB_RDONLY), 0);
    udb_cursor *c = NULL;
    CHECK_RC(udb_scan(&c, t, "item", "by_grp", NULL, 0), 0);
    udb_val v;
    int rc;
    while ((rc = udb_cursor_next(&v, c)) == 0) {}
    CHECK(rc == UDB_ESERVER);
    if (rc != UDB_ESERVER)
        fprintf(stderr, "order guard: rc %d: %s\n", rc, udb_errmsg(t));
    CHECK_RC(udb_cursor_next(&v, c), UDB_ENOTFOUND);
    udb_cursor_close(c);
    abort_(t, s);
    udb__pg_test_scan_misorder(0);
}

static PGresult *sql(PGconn *c, const char *q)
{
    PGresult *r = PQexec(c, q);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        fprintf(stderr, "FAIL: %s: %s", q, PQerrorMessage(c));
        failures++;
    }
    return r;
}

/* A scan that meets a concurrent transaction is UDB_ERETRY, and so is the
 * commit (the transaction is marked to be run again), as a record call's
 * statement would be.  SSI's "conflict out to old pivot": the scan reads a
 * row that w, committed after the scan's snapshot, wrote, and w read a row
 * that c wrote and committed before w: no serial order has all three, and
 * the server refuses the scan's read itself. */
static void test_retry(side *s)
{
    PGconn *w = PQconnectdb(""), *c = PQconnectdb("");
    udb_txn *t;
    CHECK_RC(begin(&t, s, 0), 0);   /* its snapshot: the schema read at begin */
    PQclear(sql(w, "BEGIN ISOLATION LEVEL SERIALIZABLE"));
    PGresult *r = sql(w, "SELECT k FROM pscan.num ORDER BY k LIMIT 2");
    char a[32] = "0", b[32] = "0", q[160];
    if (PQntuples(r) == 2) {
        snprintf(a, sizeof a, "%s", PQgetvalue(r, 0, 0));
        snprintf(b, sizeof b, "%s", PQgetvalue(r, 1, 0));
    }
    PQclear(r);
    PQclear(sql(c, "BEGIN ISOLATION LEVEL SERIALIZABLE"));
    snprintf(q, sizeof q, "UPDATE pscan.num SET s = 'c' WHERE k = %s", a);
    PQclear(sql(c, q));
    PQclear(sql(c, "COMMIT"));
    snprintf(q, sizeof q, "UPDATE pscan.num SET s = 'w' WHERE k = %s", b);
    PQclear(sql(w, q));
    PQclear(sql(w, "COMMIT"));
    udb_cursor *cur = NULL;
    udb_val v;
    int rc = udb_scan(&cur, t, "num", NULL, NULL, 0);
    while (rc == 0 && (rc = udb_cursor_next(&v, cur)) == 0) {}
    if (rc != UDB_ERETRY) {
        fprintf(stderr, "FAIL: the scan gave %d (%s), wanted UDB_ERETRY\n", rc, udb_errmsg(t));
        failures++;
    }
    udb_cursor_close(cur);
    CHECK_RC(udb_commit(t), UDB_ERETRY);
    PQfinish(w);
    PQfinish(c);
}

/* A scan whose query the server refuses (another client renamed a column):
 * UDB_ESERVER with the server's words, and the connection goes back to the
 * pool fit for the next transaction (out of libpq's pipeline mode). */
static void test_refused(side *s)
{
    PGconn *c = PQconnectdb("");
    PQclear(sql(c, "ALTER TABLE pscan.word RENAME COLUMN v TO v2"));
    udb_txn *t;
    udb_cursor *cur = NULL;
    CHECK_RC(begin(&t, s, UDB_RDONLY), 0);
    int rc = udb_scan(&cur, t, "word", "by_v", NULL, 0);
    CHECK(rc == UDB_ESERVER && cur == NULL && strstr(udb_errmsg(t), "scanning \"word.by_v\"") &&
          strstr(udb_errmsg(t), "42703"));
    abort_(t, s);
    PQclear(sql(c, "ALTER TABLE pscan.word RENAME COLUMN v2 TO v"));
    PQfinish(c);
    for (int i = 0; i < 3; i++) {   /* every pooled connection works */
        udb_val v;
        CHECK_RC(begin(&t, s, 0), 0);
        CHECK_RC(udb_scan(&cur, t, "word", "by_v", NULL, 0), 0);
        CHECK_RC(udb_cursor_next(&v, cur), 0);
        udb_cursor_close(cur);
        CHECK_RC(udb_get(&v, t, "num", "\xcd\x30\x39", 3), UDB_ENOTFOUND);   /* 12345 */
        CHECK_RC(udb_commit(t), 0);
    }
}

int main(int argc, char **argv)
{
    control = argc > 1 && strcmp(argv[1], "--misorder") == 0;
    memset(longa, 'x', sizeof longa - 1);
    memcpy(longb, longa, sizeof longb);
    longb[sizeof longb - 2] = 'y';
    memset(longc, 'X', sizeof longc - 1);
    size_t nn = sizeof names / sizeof names[0];
    names[nn - 3] = longa;
    names[nn - 2] = longb;
    names[nn - 1] = longc;
    floats[0] = INFINITY;
    floats[sizeof floats / sizeof floats[0] - 1] = -INFINITY;
    char dir[] = "/tmp/pg_scan.XXXXXX";
    if (!mkdtemp(dir))
        return 2;
    side lm = {.name = "lmdb"}, pg = {.name = "postgresql"};
    CHECK_RC(udb_open(&lm.env, dir, NULL), 0);
    CHECK_RC(udb_schema_apply(NULL, lm.env, schema, strlen(schema), 0), 0);
    CHECK_RC(udb_open(&pg.env, "postgresql:///uniqdb_test?schema=pscan", NULL), 0);
    CHECK_RC(udb_schema_apply(NULL, pg.env, schema, strlen(schema), 0), 0);
    if (failures) {
        fprintf(stderr, "%s\n", udb_env_errmsg(NULL));
        return 1;
    }
    udb__pg_test_scan_misorder(control ? 1 : 0);
    udb_buf a = run_side(&lm), b = run_side(&pg);
    udb__pg_test_scan_misorder(0);
    if (a.len != b.len || memcmp(a.p, b.p, a.len) != 0) {
        failures++;
        fprintf(stderr, "pg_scan: the two backends differ\n");
        size_t i = 0, ls = 0, line = 1;
        while (i < a.len && i < b.len && a.p[i] == b.p[i])
            if (a.p[i++] == '\n') {
                ls = i;
                line++;
            }
        const char *la = (const char *)a.p + ls, *lb = (const char *)b.p + ls;
        const char *ea = memchr(la, '\n', a.len - ls), *eb = memchr(lb, '\n', b.len - ls);
        fprintf(stderr, "line %zu\nlmdb:       %.*s\npostgresql: %.*s\n", line,
                (int)(ea ? (ea - la > 600 ? 600 : ea - la) : 0), la,
                (int)(eb ? (eb - lb > 600 ? 600 : eb - lb) : 0), lb);
    }
    size_t lines = 0;
    for (size_t i = 0; i < a.len; i++)
        lines += a.p[i] == '\n';
    printf("pg_scan: %zu log lines, %zu bytes compared\n", lines, a.len);
    if (getenv("PG_SCAN_LOG")) {
        FILE *f = fopen(getenv("PG_SCAN_LOG"), "w");
        if (f) {
            fwrite(a.p, 1, a.len, f);
            fclose(f);
        }
    }
    udb__buf_free(&a);
    udb__buf_free(&b);
    if (!control) {
        test_own_writes(&lm, true);
        test_own_writes(&pg, false);
        test_reader_memory(&lm);
        test_reader_memory(&pg);
        test_order_guard(&pg);
        test_retry(&pg);
        test_refused(&pg);
    }
    udb_close(pg.env);
    udb_close(lm.env);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {}
    if (failures) {
        fprintf(stderr, "pg_scan: %d failures\n", failures);
        return 1;
    }
    printf("pg_scan: ok\n");
    return 0;
}
