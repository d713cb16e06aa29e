/*
 * test_scan.c -- udb_scan_range (issue 27): bounds on a prefix of an index's
 * fields, inclusive or exclusive, forward and reverse, limits, and paging
 * with udb_cursor_key, over the primary key, non-unique indexes, unique ones
 * whose NULL-holding entries carry the primary key, partial indexes, and
 * values longer than LMDB's key (longkey.h's groups).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static const char *const SCHEMA =
    "{`types`: {"
    "`b`: {`key`: `id`, `fields`: {`id`: {`type`: `uint`, `auto`: true},"
    "  `p`: {`type`: `str`}, `s`: {`type`: `int`}, `live`: {`type`: `bool`}},"
    "  `unique`: {`u`: {`fields`: [`p`, `s`]},"
    "    `lu`: {`fields`: [`p`, `s`], `where`: `live = true`}},"
    "  `indexes`: {`ps`: {`fields`: [`p`, `s`]}}},"
    "`nnd`: {`key`: `id`, `fields`: {`id`: {`type`: `uint`, `auto`: true},"
    "  `x`: {`type`: `str`}},"
    "  `unique`: {`x`: {`fields`: [`x`], `nulls`: `not_distinct`}}},"
    "`c`: {`key`: `id`, `fields`: {`id`: {`type`: `uint`, `auto`: true},"
    "  `created`: {`type`: `int`}},"
    "  `indexes`: {`by_created`: {`fields`: [`created`]}}},"
    "`lk`: {`key`: `id`, `fields`: {`id`: {`type`: `uint`, `auto`: true},"
    "  `name`: {`type`: `str`, `required`: true}},"
    "  `unique`: {`uname`: {`fields`: [`name`]}},"
    "  `indexes`: {`by_name`: {`fields`: [`name`]}}}}}";

/* `field` of every record of a udb_scan_range, comma-separated; "<error>"
 * (with the message in the test log) if the scan fails. */
static const char *rng_r(udb_txn *txn, const char *type, const char *index, const udb_range *r,
                         const char *field)
{
    udb_cursor *c = NULL;
    int rc = udb_scan_range(&c, txn, type, index, r);
    if (rc)
        return tu_fmt("<%s: %s>", udb_strerror(rc), udb_errmsg(txn));
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    udb_val v;
    int n = 0;
    while ((rc = udb_cursor_next(&v, c)) == 0)
        fprintf(f, "%s%s", n++ ? "," : "", tu_field(v, field));
    if (rc != UDB_ENOTFOUND)
        fprintf(f, "%s<%s>", n ? "," : "", udb_strerror(rc));
    udb_cursor_close(c);
    fclose(f);
    return tu_keep(buf);
}

static const char *rng(udb_txn *txn, const char *type, const char *index, udb_val lo,
                       udb_val hi, unsigned flags, const char *field)
{
    udb_range r = UDB_RANGE_INIT;
    r.lo = lo;
    r.hi = hi;
    r.flags = flags;
    return rng_r(txn, type, index, &r, field);
}

/* Every record, page by page: pages of `limit` entries, each in a new read
 * transaction resumed after the last page's sort key; with del, the last
 * record of each page is deleted before the next is read.  Pages joined by
 * "|". */
static const char *pages(tu *t, const char *type, const char *index, unsigned flags,
                         uint64_t limit, const char *field, bool del)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    udb_val after = NOVAL;
    for (int page = 0; page < 1000; page++) {
        udb_txn *txn = tu_r(t);
        udb_range r = UDB_RANGE_INIT;
        r.flags = flags;
        r.limit = limit;
        r.after = after;
        udb_cursor *c = NULL;
        if (!CHECK_OK(udb_scan_range(&c, txn, type, index, &r))) {
            tu_abort(txn);
            break;
        }
        udb_val v, key = NOVAL, last = NOVAL;
        int rc, n = 0;
        while ((rc = udb_cursor_next(&v, c)) == 0) {
            fprintf(f, "%s%s", n++ ? "," : (page ? "|" : ""), tu_field(v, field));
            last = v;
        }
        CHECK(rc == UDB_ENOTFOUND);
        if (n && CHECK_OK(udb_cursor_key(&key, c)))
            after = mp("r", key);   /* copied: the cursor's memory ends with it */
        if (n)
            last = mp("r", last);
        udb_cursor_close(c);
        tu_abort(txn);
        if (n == 0)
            break;
        if (del) {
            udb_txn *w = tu_w(t);
            CHECK_OK(tu_del(w, type, mp("U", (unsigned long long)tu_fu(last, "id"))));
            tu_commit(w);
        }
    }
    fclose(f);
    return tu_keep(buf);
}

static void fill_b(tu *t)
{
    udb_txn *txn = tu_w(t);
    /* ids 1..9; in (p, s) order, NULLs first: 6, 3, 7, 1, 2, 5, 9, 8, 4 */
    CHECK_OK(tu_ins(NULL, txn, "b", mp("{s:s, s:i, s:b}", "p", "p1", "s", 10, "live", 1)));
    CHECK_OK(tu_ins(NULL, txn, "b", mp("{s:s, s:i}", "p", "p1", "s", 12)));
    CHECK_OK(tu_ins(NULL, txn, "b", mp("{s:s, s:b}", "p", "p1", "live", 1)));
    CHECK_OK(tu_ins(NULL, txn, "b", mp("{s:s, s:i, s:b}", "p", "p2", "s", 9, "live", 1)));
    CHECK_OK(tu_ins(NULL, txn, "b", mp("{s:s, s:i, s:b}", "p", "p1", "s", 14, "live", 1)));
    CHECK_OK(tu_ins(NULL, txn, "b", mp("{s:i}", "s", 3)));
    CHECK_OK(tu_ins(NULL, txn, "b", mp("{s:s, s:n}", "p", "p1", "s")));
    CHECK_OK(tu_ins(NULL, txn, "b", mp("{s:s, s:i}", "p", "p10", "s", 1)));
    /* "p1\0": after every ("p1", ...) -- its key starts with ("p1")'s bytes */
    CHECK_OK(tu_ins(NULL, txn, "b", mp("{s:S, s:i}", "p", "p1\0", (size_t)3, "s", 5)));
    tu_commit(txn);
}

/* Bounds over a non-unique index and over a unique one with the same
 * fields (entries holding a NULL carry the primary key after the fields):
 * the same answers. */
static void t_bounds(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    fill_b(t);
    udb_txn *txn = tu_r(t);
    const char *const ixs[] = {"ps", "u", "b.u"};
    for (size_t i = 0; i < sizeof ixs / sizeof *ixs; i++) {
        const char *ix = ixs[i];
        udb_val p1 = mp("[s]", "p1");
        CHECK_STR(rng(txn, "b", ix, NOVAL, NOVAL, 0, "id"), "6,3,7,1,2,5,9,8,4");
        /* a prefix shorter than the index: every entry that starts with it */
        CHECK_STR(rng(txn, "b", ix, p1, p1, 0, "id"), "3,7,1,2,5");
        CHECK_STR(rng(txn, "b", ix, p1, p1, UDB_REVERSE, "id"), "5,2,1,7,3");
        /* p1 between 10 and 14: bounds equal to existing values */
        udb_val lo = mp("[s, i]", "p1", 10), hi = mp("[s, i]", "p1", 14);
        CHECK_STR(rng(txn, "b", ix, lo, hi, 0, "id"), "1,2,5");
        CHECK_STR(rng(txn, "b", ix, lo, hi, UDB_HI_EXCL, "id"), "1,2");
        CHECK_STR(rng(txn, "b", ix, lo, hi, UDB_LO_EXCL, "id"), "2,5");
        CHECK_STR(rng(txn, "b", ix, lo, hi, UDB_LO_EXCL | UDB_HI_EXCL, "id"), "2");
        CHECK_STR(rng(txn, "b", ix, lo, hi, UDB_HI_EXCL | UDB_REVERSE, "id"), "2,1");
        CHECK_STR(rng(txn, "b", ix, lo, hi, UDB_LO_EXCL | UDB_REVERSE, "id"), "5,2");
        /* values that no entry holds */
        CHECK_STR(rng(txn, "b", ix, mp("[s, i]", "p1", 11), NOVAL, 0, "id"), "2,5,9,8,4");
        CHECK_STR(rng(txn, "b", ix, NOVAL, mp("[s, i]", "p1", 11), UDB_REVERSE, "id"),
                  "1,7,3,6");
        CHECK_STR(rng(txn, "b", ix, mp("[s]", "p0"), mp("[s]", "p0"), 0, "id"), "");
        /* one side open: hi alone takes in the NULLs, which sort first */
        CHECK_STR(rng(txn, "b", ix, NOVAL, p1, 0, "id"), "6,3,7,1,2,5");
        CHECK_STR(rng(txn, "b", ix, NOVAL, p1, UDB_HI_EXCL, "id"), "6");
        CHECK_STR(rng(txn, "b", ix, NOVAL, p1, UDB_HI_EXCL | UDB_REVERSE, "id"), "6");
        CHECK_STR(rng(txn, "b", ix, p1, NOVAL, UDB_REVERSE, "id"), "4,8,9,5,2,1,7,3");
        /* excluding [p1] excludes every (p1, ...), not ("p1\0", ...) */
        CHECK_STR(rng(txn, "b", ix, p1, NOVAL, UDB_LO_EXCL, "id"), "9,8,4");
        CHECK_STR(rng(txn, "b", ix, p1, NOVAL, UDB_LO_EXCL | UDB_REVERSE, "id"), "4,8,9");
        CHECK_STR(rng(txn, "b", ix, NOVAL, p1, UDB_REVERSE, "id"), "5,2,1,7,3,6");
        /* NULL as a bound value: the smallest value */
        CHECK_STR(rng(txn, "b", ix, mp("[n]"), NOVAL, UDB_LO_EXCL, "id"), "3,7,1,2,5,9,8,4");
        CHECK_STR(rng(txn, "b", ix, mp("[n]"), mp("[n]"), 0, "id"), "6");
        CHECK_STR(rng(txn, "b", ix, mp("[s, n]", "p1"), p1, UDB_LO_EXCL, "id"), "1,2,5");
        CHECK_STR(rng(txn, "b", ix, mp("[s, n]", "p1"), mp("[s, n]", "p1"), 0, "id"), "3,7");
        CHECK_STR(rng(txn, "b", ix, mp("[s, n]", "p1"), mp("[s, n]", "p1"), UDB_REVERSE, "id"),
                  "7,3");
        CHECK_STR(rng(txn, "b", ix, mp("[n, i]", 3), mp("[s, n]", "p1"), UDB_REVERSE, "id"),
                  "7,3,6");
        /* empty ranges: lo after hi, lo = hi with one side excluded */
        CHECK_STR(rng(txn, "b", ix, mp("[s]", "p2"), p1, 0, "id"), "");
        CHECK_STR(rng(txn, "b", ix, mp("[s]", "p2"), p1, UDB_REVERSE, "id"), "");
        CHECK_STR(rng(txn, "b", ix, lo, lo, UDB_LO_EXCL, "id"), "");
        CHECK_STR(rng(txn, "b", ix, lo, lo, UDB_HI_EXCL | UDB_REVERSE, "id"), "");
        CHECK_STR(rng(txn, "b", ix, lo, lo, 0, "id"), "1");
        /* bounds of different lengths; an empty array is an open side */
        CHECK_STR(rng(txn, "b", ix, mp("[s, i]", "p1", 12), mp("[s]", "p10"), 0, "id"),
                  "2,5,9,8");
        CHECK_STR(rng(txn, "b", ix, mp("[]"), mp("[]"), UDB_REVERSE, "id"), "4,8,9,5,2,1,7,3,6");
        /* a limit */
        udb_range r = UDB_RANGE_INIT;
        r.lo = p1;
        r.limit = 2;
        CHECK_STR(rng_r(txn, "b", ix, &r, "id"), "3,7");
        r.flags = UDB_REVERSE;
        CHECK_STR(rng_r(txn, "b", ix, &r, "id"), "4,8");
    }
    /* the primary key: a one-field index */
    CHECK_STR(rng(txn, "b", NULL, mp("[i]", 3), mp("[i]", 7), UDB_HI_EXCL, "id"), "3,4,5,6");
    CHECK_STR(rng(txn, "b", "id", mp("[i]", 3), mp("[i]", 7), UDB_REVERSE, "id"), "7,6,5,4,3");
    CHECK_STR(rng(txn, "b", NULL, mp("[i]", 8), NOVAL, UDB_LO_EXCL, "id"), "9");
    CHECK_STR(rng(txn, "b", NULL, NOVAL, mp("[n]"), 0, "id"), "");
    CHECK_STR(rng(txn, "b", NULL, mp("[n]"), NOVAL, 0, "id"), "1,2,3,4,5,6,7,8,9");
    /* a partial index holds only what its where admits: 1, 3, 4, 5 */
    CHECK_STR(rng(txn, "b", "lu", NOVAL, NOVAL, UDB_REVERSE, "id"), "4,5,1,3");
    CHECK_STR(rng(txn, "b", "lu", mp("[s, i]", "p1", 10), mp("[s]", "p2"), 0, "id"), "1,5,4");
    CHECK_STR(rng(txn, "b", "lu", mp("[s]", "p1"), NOVAL, UDB_LO_EXCL, "id"), "4");
    tu_commit(txn);
}

/* A write transaction scans what it wrote, in both directions. */
static void t_in_write_txn(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    fill_b(t);
    udb_txn *txn = tu_w(t);
    CHECK_OK(tu_ins(NULL, txn, "b", mp("{s:s, s:i}", "p", "p1", "s", 11)));
    CHECK_OK(tu_del(txn, "b", mp("U", 2ull)));
    udb_val lo = mp("[s, i]", "p1", 10), hi = mp("[s, i]", "p1", 14);
    CHECK_STR(rng(txn, "b", "ps", lo, hi, UDB_HI_EXCL, "id"), "1,10");
    CHECK_STR(rng(txn, "b", "u", lo, hi, UDB_REVERSE, "id"), "5,10,1");
    tu_commit(txn);
}

/* The 45 cases of t_paging, those missing put back (same ids, same values). */
static void fill_c(tu *t)
{
    udb_txn *txn = tu_w(t);
    for (int i = 0; i < 45; i++) {
        unsigned long long id = (unsigned long long)i + 1;
        udb_val rec = i % 9 == 4 ? mp("{s:U}", "id", id)
                                 : mp("{s:U, s:i}", "id", id, "created", (i * 7) % 11);
        int rc = tu_ins(NULL, txn, "c", rec);
        CHECK(rc == 0 || rc == UDB_ECONFLICT);
    }
    tu_commit(txn);
}

/* Paging: pages of a limit, each resumed after the last page's sort key
 * in a new transaction, add up to the whole scan -- also when the last
 * record of each page is deleted before the next page is read. */
static void t_paging(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    /* 45 cases; created repeats (ties in id order) and is missing on some */
    fill_c(t);
    udb_txn *txn = tu_r(t);
    const char *fwd = tu_keep(strdup(rng(txn, "c", "by_created", NOVAL, NOVAL, 0, "id")));
    const char *rev =
        tu_keep(strdup(rng(txn, "c", "by_created", NOVAL, NOVAL, UDB_REVERSE, "id")));
    /* the 20 newest: the reverse order's first 20 */
    udb_range r = UDB_RANGE_INIT;
    r.flags = UDB_REVERSE;
    r.limit = 20;
    const char *newest = rng_r(txn, "c", "by_created", &r, "id");
    CHECK(strncmp(rev, newest, strlen(newest)) == 0 && rev[strlen(newest)] == ',');
    tu_abort(txn);
    for (uint64_t limit = 1; limit <= 8; limit += 7) {
        for (int del = 0; del < 2; del++) {
            fill_c(t);
            const char *got = pages(t, "c", "by_created", 0, limit, "id", del);
            char *flat = tu_keep(strdup(got));
            for (char *p = flat; *p; p++)
                if (*p == '|')
                    *p = ',';
            CHECK_STR(flat, fwd);
            fill_c(t);
            got = pages(t, "c", "by_created", UDB_REVERSE, limit, "id", del);
            flat = tu_keep(strdup(got));
            for (char *p = flat; *p; p++)
                if (*p == '|')
                    *p = ',';
            CHECK_STR(flat, rev);
        }
    }
    /* pages of 8: 45 entries in 6 pages */
    fill_c(t);
    CHECK_STR(pages(t, "c", NULL, 0, 8, "id", false),
              "1,2,3,4,5,6,7,8|9,10,11,12,13,14,15,16|17,18,19,20,21,22,23,24|"
              "25,26,27,28,29,30,31,32|33,34,35,36,37,38,39,40|41,42,43,44,45");
    CHECK_STR(pages(t, "c", NULL, UDB_REVERSE, 20, "id", false),
              "45,44,43,42,41,40,39,38,37,36,35,34,33,32,31,30,29,28,27,26|"
              "25,24,23,22,21,20,19,18,17,16,15,14,13,12,11,10,9,8,7,6|5,4,3,2,1");
}

/* Paging over a unique index: the sort key holds the primary key even
 * where the entry's key does not, so resuming after a value whose holder
 * changed is exact; NULL-holding entries (NULLs distinct, and not
 * distinct) page like the others. */
static void t_paging_unique(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    fill_b(t);
    CHECK_STR(pages(t, "b", "u", 0, 1, "id", false), "6|3|7|1|2|5|9|8|4");
    CHECK_STR(pages(t, "b", "u", UDB_REVERSE, 2, "id", false), "4,8|9,5|2,1|7,3|6");
    CHECK_STR(pages(t, "b", "u", 0, 4, "id", true), "6,3,7,1|2,5,9,8|4");
    /* the sort key of each kind of entry (1, 8 and 4 are gone) */
    udb_txn *txn = tu_r(t);
    udb_cursor *c = NULL;
    udb_val k;
    udb_range r = UDB_RANGE_INIT;
    CHECK_OK(udb_scan_range(&c, txn, "b", "u", &r));
    CHECK_RC(udb_cursor_key(&k, c), UDB_ENOTFOUND);
    udb_val v;
    CHECK_OK(udb_cursor_next(&v, c));
    CHECK_OK(udb_cursor_key(&k, c));
    CHECK_STR(tu_render(k), "[null,3,6]");
    CHECK_OK(udb_cursor_next(&v, c));
    CHECK_OK(udb_cursor_key(&k, c));
    CHECK_STR(tu_render(k), "[\"p1\",null,3]");
    CHECK_OK(udb_cursor_skip(NULL, c, 3));
    CHECK_OK(udb_cursor_key(&k, c));
    CHECK_STR(tu_render(k), "[\"p1\",14,5]");
    udb_cursor_close(c);
    c = NULL;
    CHECK_OK(udb_scan_range(&c, txn, "b", NULL, &r));
    CHECK_OK(udb_cursor_next(&v, c));
    CHECK_OK(udb_cursor_key(&k, c));
    CHECK_STR(tu_render(k), "[2]");
    udb_cursor_close(c);
    tu_abort(txn);
    /* after (p3, 1, 100): the holder of (p3, 1) is now id 101 -- after it
       going forward, not going back */
    txn = tu_w(t);
    CHECK_OK(tu_ins(NULL, txn, "b", mp("{s:U, s:s, s:i}", "id", 101ull, "p", "p3", "s", 1)));
    r.after = mp("[s, i, U]", "p3", 1, 100ull);
    CHECK_STR(rng_r(txn, "b", "u", &r, "id"), "101");
    CHECK_STR(rng_r(txn, "b", "ps", &r, "id"), "101");
    r.flags = UDB_REVERSE;
    r.limit = 2;
    CHECK_STR(rng_r(txn, "b", "u", &r, "id"), "9,5");
    r.after = mp("[s, i, U]", "p3", 1, 101ull);
    CHECK_STR(rng_r(txn, "b", "u", &r, "id"), "9,5");
    r.flags = 0;
    CHECK_STR(rng_r(txn, "b", "u", &r, "id"), "");
    /* after and bounds together */
    r.after = mp("[s, i, U]", "p1", 10, 1ull);
    r.lo = mp("[s]", "p1");
    r.hi = mp("[s]", "p1");
    r.limit = 0;
    CHECK_STR(rng_r(txn, "b", "u", &r, "id"), "2,5");
    r.flags = UDB_REVERSE;
    CHECK_STR(rng_r(txn, "b", "ps", &r, "id"), "7,3");
    tu_commit(txn);
    /* NULLs not distinct: one NULL entry, keyed by the fields alone */
    txn = tu_w(t);
    CHECK_OK(tu_ins(NULL, txn, "nnd", mp("{s:s}", "x", "b")));
    CHECK_OK(tu_ins(NULL, txn, "nnd", mp("{}")));
    CHECK_OK(tu_ins(NULL, txn, "nnd", mp("{s:s}", "x", "a")));
    tu_commit(txn);
    CHECK_STR(pages(t, "nnd", "x", 0, 1, "id", false), "2|3|1");
    CHECK_STR(pages(t, "nnd", "x", UDB_REVERSE, 1, "id", false), "1|3|2");
    txn = tu_r(t);
    r = (udb_range)UDB_RANGE_INIT;
    r.after = mp("[n, U]", 1ull);
    CHECK_STR(rng_r(txn, "nnd", "x", &r, "id"), "2,3,1");
    r.after = mp("[n, U]", 2ull);
    CHECK_STR(rng_r(txn, "nnd", "x", &r, "id"), "3,1");
    r.flags = UDB_REVERSE;
    CHECK_STR(rng_r(txn, "nnd", "x", &r, "id"), "");
    r.after = mp("[n, U]", 3ull);
    CHECK_STR(rng_r(txn, "nnd", "x", &r, "id"), "2");
    tu_commit(txn);
}

/* Values longer than LMDB's key: entries whose keys share their first 503
 * bytes sit in LMDB in slot order and are sorted by the scan -- in both
 * directions, under bounds that cut the group, and when paging inside it. */
#define NLONG 34
static char *long_name[NLONG];
static size_t long_len[NLONG];

static int cmp_names(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    size_t n = long_len[x] < long_len[y] ? long_len[x] : long_len[y];
    int d = memcmp(long_name[x], long_name[y], n);
    return d ? d : (long_len[x] > long_len[y]) - (long_len[x] < long_len[y]);
}

/* The ids (names' index + 1) of the names between lo and hi (index of a
 * name, or -1: open) as a scan gives them. */
static const char *long_want(int lo, int hi, unsigned flags)
{
    size_t order[NLONG];
    for (size_t i = 0; i < NLONG; i++)
        order[i] = i;
    qsort(order, NLONG, sizeof *order, cmp_names);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    int n = 0;
    for (size_t j = 0; j < NLONG; j++) {
        size_t i = order[(flags & UDB_REVERSE) ? NLONG - 1 - j : j];
        size_t li = (size_t)lo, hi_ = (size_t)hi;
        if (lo >= 0) {
            int d = cmp_names(&i, &li);
            if (d < 0 || (d == 0 && (flags & UDB_LO_EXCL)))
                continue;
        }
        if (hi >= 0) {
            int d = cmp_names(&i, &hi_);
            if (d > 0 || (d == 0 && (flags & UDB_HI_EXCL)))
                continue;
        }
        fprintf(f, "%s%zu", n++ ? "," : "", i + 1);
    }
    fclose(f);
    return tu_keep(buf);
}

static void t_long_values(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    /* 26 names of 521 bytes differing in the last byte, inserted out of
       order; names of 500 to 503 bytes around the 503-byte cut (the key
       adds a type byte and a terminator, and a non-unique index the
       primary key), one with a tail past the others, and short ones */
    static const size_t lens[] = {500, 501, 502, 503, 504, 530, 1};
    size_t n = 0;
    for (int i = 0; i < 26; i++, n++) {
        long_len[n] = 521;
        long_name[n] = tu_keep(malloc(521));
        memset(long_name[n], 'x', 520);
        long_name[n][520] = (char)('a' + (i * 11) % 26);
    }
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++, n++) {
        long_len[n] = lens[i];
        long_name[n] = tu_keep(malloc(lens[i]));
        memset(long_name[n], 'x', lens[i]);
        if (lens[i] == 530)
            long_name[n][520] = 'm';   /* after "x...xm" (521 bytes): longer */
    }
    long_len[n] = 1;
    long_name[n++] = tu_keep(strdup("y"));
    CHECK(n == NLONG);
    udb_txn *txn = tu_w(t);
    for (size_t i = 0; i < NLONG; i++)
        CHECK_OK(tu_ins(NULL, txn, "lk", mp("{s:S}", "name", long_name[i], long_len[i])));
    tu_commit(txn);
    txn = tu_r(t);
    /* bounds: whole names, inside the group, at its edges, and prefixes */
    static const int bounds[][2] = {{-1, -1}, {0, -1}, {-1, 0}, {3, 17}, {17, 3}, {5, 5},
                                    {26, 29}, {29, 31}, {28, 12}, {31, 33}, {27, 32}};
    static const unsigned flagset[] = {0, UDB_LO_EXCL, UDB_HI_EXCL, UDB_LO_EXCL | UDB_HI_EXCL};
    const char *const ixs[] = {"by_name", "uname"};
    for (size_t x = 0; x < 2; x++)
        for (size_t b = 0; b < sizeof bounds / sizeof *bounds; b++)
            for (size_t fl = 0; fl < 4; fl++)
                for (unsigned rev = 0; rev <= UDB_REVERSE; rev += UDB_REVERSE) {
                    int lo = bounds[b][0], hi = bounds[b][1];
                    unsigned flags = flagset[fl] | rev;
                    udb_val vlo = lo < 0 ? NOVAL : mp("[S]", long_name[lo], long_len[lo]);
                    udb_val vhi = hi < 0 ? NOVAL : mp("[S]", long_name[hi], long_len[hi]);
                    const char *got = rng(txn, "lk", ixs[x], vlo, vhi, flags, "id");
                    const char *want = long_want(lo, hi, flags);
                    if (!CHECK_STR(got, want))
                        fprintf(stderr, "  %s lo %d hi %d flags %u\n", ixs[x], lo, hi, flags);
                }
    /* a bound that is a prefix of the group's names (520 x's) or cuts the
       group's shared bytes: every name that starts with it */
    char cut[520];
    memset(cut, 'x', sizeof cut);
    CHECK_STR(rng(txn, "lk", "by_name", mp("[S]", cut, (size_t)520), NOVAL, UDB_LO_EXCL, "id"),
              long_want(30, -1, UDB_LO_EXCL));   /* names > the 504 x's: none between */
    CHECK_STR(rng(txn, "lk", "uname", NOVAL, mp("[S]", cut, (size_t)520), UDB_REVERSE, "id"),
              long_want(-1, 30, UDB_REVERSE));
    tu_abort(txn);
    /* pages of 3 and 5 through the group, forward and reverse */
    for (uint64_t limit = 3; limit <= 5; limit += 2)
        for (size_t x = 0; x < 2; x++)
            for (unsigned rev = 0; rev <= UDB_REVERSE; rev += UDB_REVERSE) {
                char *flat = tu_keep(strdup(pages(t, "lk", ixs[x], rev, limit, "id", false)));
                for (char *p = flat; *p; p++)
                    if (*p == '|')
                        *p = ',';
                CHECK_STR(flat, long_want(-1, -1, rev));
            }
}

/* Bad ranges are refused, naming what is wrong; nothing is opened. */
static void t_errors(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    fill_b(t);
    udb_txn *txn = tu_r(t);
    udb_cursor *c = NULL;
    udb_range r = UDB_RANGE_INIT;
    r.version = 0;
    CHECK_RC(udb_scan_range(&c, txn, "b", "ps", &r), UDB_EINVAL);
    CHECK_HAS(udb_errmsg(txn), "UDB_RANGE_INIT");
    r.version = UDB_RANGE_VERSION + 1;
    CHECK_RC(udb_scan_range(&c, txn, "b", "ps", &r), UDB_EINVAL);
    r = (udb_range)UDB_RANGE_INIT;
    r.flags = 0x80;
    CHECK_RC(udb_scan_range(&c, txn, "b", "ps", &r), UDB_EINVAL);
    CHECK_HAS(udb_errmsg(txn), "unknown range flags 0x80");
    r.flags = 0;
    CHECK_RC(udb_scan_range(NULL, txn, "b", "ps", &r), UDB_EINVAL);
    CHECK_RC(udb_scan_range(&c, txn, "b", "nope", &r), UDB_EINVAL);
    CHECK_RC(udb_scan_range(&c, txn, "nope", NULL, &r), UDB_EINVAL);
    r.lo = mp("s", "p1");   /* not an array */
    CHECK_RC(udb_scan_range(&c, txn, "b", "ps", &r), UDB_EBADRECORD);
    CHECK_HAS(udb_errmsg(txn), "range lo of \"b.ps\"", "at most 2 values (p, s)",
              "expected a msgpack array");
    r.lo = NOVAL;
    r.hi = mp("[s, i, i]", "p1", 1, 2);   /* too many */
    CHECK_RC(udb_scan_range(&c, txn, "b", "ps", &r), UDB_EBADRECORD);
    CHECK_HAS(udb_errmsg(txn), "range hi of \"b.ps\"", "too many values");
    r.hi = mp("[i]", 5);   /* wrong type */
    CHECK_RC(udb_scan_range(&c, txn, "b", "ps", &r), UDB_EBADRECORD);
    CHECK_HAS(udb_errmsg(txn), "range hi of \"b.ps\", value 1", "field \"p\": expected str");
    r.hi = mpraw("\x91", 1);   /* truncated */
    CHECK_RC(udb_scan_range(&c, txn, "b", "ps", &r), UDB_EBADRECORD);
    r.hi = mpraw("", 0);
    r.hi.data = "";   /* given, but empty */
    CHECK_RC(udb_scan_range(&c, txn, "b", "ps", &r), UDB_EBADRECORD);
    r.hi = NOVAL;
    r.after = mp("[s, i]", "p1", 10);   /* the sort key has three values */
    CHECK_RC(udb_scan_range(&c, txn, "b", "ps", &r), UDB_EBADRECORD);
    CHECK_HAS(udb_errmsg(txn), "range after", "array of 3 values (p, s, then the primary key id)",
              "too few values");
    r.after = mp("[s, i, s]", "p1", 10, "x");
    CHECK_RC(udb_scan_range(&c, txn, "b", "ps", &r), UDB_EBADRECORD);
    CHECK_HAS(udb_errmsg(txn), "value 3", "field \"id\"");
    r.after = mp("[U, U]", 1ull, 2ull);   /* a primary-key scan: the key alone */
    CHECK_RC(udb_scan_range(&c, txn, "b", NULL, &r), UDB_EBADRECORD);
    CHECK(c == NULL);
    /* the good ones still work, and NULL ranges scan everything */
    r.after = mp("[U]", 7ull);
    CHECK_STR(rng_r(txn, "b", NULL, &r, "id"), "8,9");
    CHECK_STR(rng_r(txn, "b", NULL, NULL, "id"), "1,2,3,4,5,6,7,8,9");
    CHECK_RC(udb_cursor_key(NULL, NULL), UDB_EINVAL);
    tu_commit(txn);
}

TU_MAIN(TU_CASE(t_bounds), TU_CASE(t_in_write_txn), TU_CASE(t_paging),
        TU_CASE(t_paging_unique), TU_CASE(t_long_values), TU_CASE(t_errors))
