/*
 * scan.c -- the LMDB backend's scans (backend.h's "scans"; the public calls
 * and what is not LMDB's are core/cursor.c's): ordered walks over a type's
 * primary key or one of its indexes, forward or reverse, bounded below and
 * above on a prefix of the index's fields, resumed after a given entry,
 * limited in length.
 *
 * The tuple key encoding makes memcmp order value order, so a scan is one
 * seek (MDB_SET_RANGE) and a walk.  Bounds are compared as values, not as
 * raw keys: an entry's key holds all of the index's fields (and the primary
 * key after them in a non-unique index), a bound only its first k, so an
 * entry is compared on its first k elements (udb__cmp_bound).  Where a scan
 * is resumed is an entry's sort key -- its index fields then its primary
 * key, SQL's ORDER BY -- which every entry has whatever its key's shape, and
 * which stays a position after the entry itself is deleted.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cursor.h"
#include "longkey.h"
#include "keycodec.h"
#include "layout.h"
#include "txn.h"

/* One entry of a long-key group (longkey.h): its full key in gkeys, and
 * its slot, which with the group's first bytes is its LMDB key. */
typedef struct group_ent {
    size_t off, len;
    unsigned char slot[8];
} group_ent;

struct udb_cursor {
    udb_curfront f;           /* first: the core's part (cursor.h) */
    MDB_dbi dbi, rdbi;        /* ix's database; t's records */
    MDB_cursor *mc;
    bool started;
    bool edge;                /* a group read ran into the end of the database */
    /* long keys sharing their first UDB_KEY_INLINE bytes sit in LMDB in slot
       order: such a group is read whole and handed out in key order */
    unsigned char gfirst[UDB_KEY_INLINE];
    udb_buf gkeys, scratch;
    udb_buf last;             /* the last raw LMDB key read: keys must increase
                                 (decrease in a reverse scan) */
    size_t walked;            /* raw LMDB entries read from the first one */
    /* damage: an entry of garbage size or out of key order is skipped (the
       scan goes on after it: garbage nodes of one damaged page), unless the
       scan reads far more entries than the database holds (a loop) */
    size_t reads, budget;     /* raw reads, good or bad; their limit (0: none) */
    size_t bad_run;           /* bad entries in a row */
    bool skipped, looping;    /* the last error skipped an entry; a loop ends it */
    group_ent *group;
    size_t ngroup, gpos, gcap;
};

size_t udb__lmdb_scan_size(void)
{
    return sizeof(struct udb_cursor);
}

int udb__lmdb_scan_open(udb_cursor *c)
{
    udb_txn *txn = c->f.txn;
    c->dbi = udb__dbi(udb__txn_schema(txn), c->f.ix);
    c->rdbi = udb__type_dbi(udb__txn_schema(txn), c->f.t);
    int rc = mdb_cursor_open(udb__txn_mdb(txn), c->dbi, &c->mc);
    return rc ? udb__mdb_err(txn, rc, "opening a cursor") : 0;
}

static int cmp_group(const void *a, const void *b, void *keys)
{
    const group_ent *x = a, *y = b;
    const unsigned char *base = keys;
    return udb__cmp_bytes(base + x->off, x->len, base + y->off, y->len);
}

/* Where a scan starts: into s, a raw key at or before every entry of the
 * range in scan order (forward: every entry's key is >= s; reverse: < s);
 * false if it starts at the first (last) entry. */
static bool start_key(udb_buf *s, const udb_cursor *c)
{
    const udb_buf *b = c->f.reverse ? &c->f.hi : &c->f.lo;
    bool excl = c->f.reverse ? c->f.hi_excl : c->f.lo_excl;
    if (b->len) {
        /* past every key whose first values equal b: b ++ 0xFF (udb__cmp_bound) */
        udb__buf_put(s, b->p, b->len);
        if (excl != c->f.reverse)
            udb__buf_byte(s, 0xFF);
    }
    if (c->f.after.len) {
        /* forward: a wanted entry's fields are >= after's (its key is the
           fields alone in a unique index); reverse: its key < after */
        size_t n = c->f.reverse ? c->f.after.len : c->f.after_fields;
        int d = udb__cmp_bytes(c->f.after.p, n, s->p, s->len);
        if (!s->len || (c->f.reverse ? d < 0 : d > 0)) {
            s->len = 0;
            udb__buf_put(s, c->f.after.p, n);
        }
    }
    return s->len > 0;
}

/* Put the LMDB cursor on the first raw entry the scan reads: (rk, rv). */
static int seek(udb_cursor *c, MDB_val *rk, MDB_val *rv)
{
    udb_buf s = {0};
    bool from = start_key(&s, c);
    int rc;
    if (s.oom) {
        rc = UDB_ENOMEM;
    } else if (!from) {
        rc = mdb_cursor_get(c->mc, rk, rv, c->f.reverse ? MDB_LAST : MDB_FIRST);
    } else {
        /* a key longer than UDB_KEY_INLINE is sought by its first bytes:
           forward, keys below it come first and are skipped */
        rk->mv_size = s.len < UDB_KEY_INLINE ? s.len : UDB_KEY_INLINE;
        rk->mv_data = s.p;
        rc = mdb_cursor_get(c->mc, rk, rv, MDB_SET_RANGE);
        if (c->f.reverse) {
            /* every key from here on is >= s, but with a long s, the short
               key and the group of long keys sharing its first bytes may
               hold keys < s: step over them (the scan skips those >= s) */
            if (s.len > UDB_KEY_INLINE)
                while (rc == 0 && rk->mv_size >= UDB_KEY_INLINE && rk->mv_data &&
                       memcmp(rk->mv_data, s.p, UDB_KEY_INLINE) == 0)
                    rc = mdb_cursor_get(c->mc, rk, rv, MDB_NEXT);
            if (rc == 0)
                rc = mdb_cursor_get(c->mc, rk, rv, MDB_PREV);
            else if (rc == MDB_NOTFOUND)
                rc = mdb_cursor_get(c->mc, rk, rv, MDB_LAST);
        }
    }
    udb__buf_free(&s);
    return rc;
}

/* A raw key is after the last one read in scan order (udb__key_after; in a
 * reverse scan, before it), and becomes the last. */
static int key_in_order(udb_cursor *c, const MDB_val *k)
{
    if (!c->f.reverse)
        return udb__key_after(&c->last, k);
    if (c->last.len && udb__cmp_bytes(k->mv_data, k->mv_size, c->last.p, c->last.len) >= 0)
        return UDB_ECORRUPT;
    c->last.len = 0;
    udb__buf_put(&c->last, k->mv_data, k->mv_size);
    return c->last.oom ? UDB_ENOMEM : 0;
}

/* An entry the LMDB cursor just read is sane and after the one before it
 * (layout.h): a damaged page can give garbage sizes, or send the cursor back
 * over keys it gave, for ever. */
static int raw_checked(udb_cursor *c, const MDB_val *rk, const MDB_val *rv)
{
    if (c->budget == 0) {
        /* a read-only snapshot holds a fixed number of entries: twice that,
           and more, read means the cursor goes round */
        MDB_stat st;
        c->budget = udb__txn_rdonly(c->f.txn) &&
                    mdb_stat(udb__txn_mdb(c->f.txn), c->dbi, &st) == 0
                    ? 2 * (size_t)st.ms_entries + 1024 : SIZE_MAX;
    }
    int rc = 0;
    if (++c->reads > c->budget || c->bad_run > 100000)
        c->looping = true;
    else if (!udb__sane_entry(rk, rv) || (rc = key_in_order(c, rk)) == UDB_ECORRUPT)
        c->skipped = true;
    else if (!rc)
        c->walked++;
    if (c->looping || c->skipped) {
        c->bad_run++;
        return UDB_ECORRUPT;
    }
    c->bad_run = 0;
    return rc;
}

/* Add the raw entry (rk, rv) to the long-key group being read. */
static int group_add(udb_cursor *c, const MDB_val *rk, const MDB_val *rv)
{
    MDB_val k, v;
    int rc = udb__lk_decode(&k, &v, rk, rv, &c->scratch);
    if (rc)
        return rc;
    if (c->ngroup == c->gcap) {
        size_t cap = c->gcap ? 2 * c->gcap : 8;
        group_ent *g = realloc(c->group, cap * sizeof *g);
        if (!g)
            return UDB_ENOMEM;
        c->group = g;
        c->gcap = cap;
    }
    group_ent *e = &c->group[c->ngroup++];
    e->off = c->gkeys.len;
    e->len = k.mv_size;
    memcpy(e->slot, (const unsigned char *)rk->mv_data + UDB_KEY_INLINE, 8);
    udb__buf_put(&c->gkeys, k.mv_data, k.mv_size);
    return c->gkeys.oom ? UDB_ENOMEM : 0;
}

/* Read the long-key group the LMDB cursor is on (raw entry rk, rv) in scan
 * direction, leave the cursor on its last entry read, and sort it by full
 * key. */
static int read_group(udb_cursor *c, MDB_val rk, MDB_val rv)
{
    MDB_cursor_op on = c->f.reverse ? MDB_PREV : MDB_NEXT, back = c->f.reverse ? MDB_NEXT : MDB_PREV;
    int rc;
    memcpy(c->gfirst, rk.mv_data, UDB_KEY_INLINE);
    c->ngroup = c->gpos = 0;
    c->gkeys.len = 0;
    do {
        if ((rc = group_add(c, &rk, &rv)))
            return rc;
        rc = mdb_cursor_get(c->mc, &rk, &rv, on);
        /* an entry of the group is checked here; the one after it, which
           the cursor steps back from, when it is read again */
    } while (rc == 0 && rk.mv_size == UDB_KEY_LONG && rk.mv_data &&
             memcmp(rk.mv_data, c->gfirst, UDB_KEY_INLINE) == 0 &&
             (rc = raw_checked(c, &rk, &rv)) == 0);
    if (rc == UDB_ECORRUPT)
        c->skipped = false;   /* in the middle of a group: the scan cannot go on */
    if (rc == 0) {
        rc = mdb_cursor_get(c->mc, &rk, &rv, back);
    } else if (rc == MDB_NOTFOUND) {
        rc = 0;   /* the group ends the database (begins it, in reverse) */
        c->edge = true;
    }
    qsort_r(c->group, c->ngroup, sizeof *c->group, cmp_group, c->gkeys.p);
    return rc;
}

/* The next entry in full-key order (reverse: the previous): its full key
 * and stored value. */
static int next_entry(MDB_val *k, MDB_val *v, udb_cursor *c)
{
    MDB_val rk, rv;
    int rc;
    for (;;) {
        if (c->gpos < c->ngroup) {
            size_t i = c->gpos++;
            const group_ent *e = &c->group[c->f.reverse ? c->ngroup - 1 - i : i];
            unsigned char raw[UDB_KEY_LONG];
            memcpy(raw, c->gfirst, UDB_KEY_INLINE);
            memcpy(raw + UDB_KEY_INLINE, e->slot, 8);
            rk.mv_size = UDB_KEY_LONG;
            rk.mv_data = raw;
            rc = mdb_get(udb__txn_mdb(c->f.txn), c->dbi, &rk, &rv);
            if (rc == MDB_NOTFOUND)
                continue;   /* deleted by this transaction since */
            if (rc || (rc = udb__lk_decode(k, v, &rk, &rv, &c->scratch)))
                return rc;
            k->mv_data = c->gkeys.p + e->off;   /* scratch is reused: point at the copy */
            return 0;
        }
        if (!c->started) {
            c->started = true;
            rc = seek(c, &rk, &rv);
        } else if (c->edge) {
            rc = MDB_NOTFOUND;
        } else {
            rc = mdb_cursor_get(c->mc, &rk, &rv, c->f.reverse ? MDB_PREV : MDB_NEXT);
        }
        if (rc || (rc = raw_checked(c, &rk, &rv)))
            return rc;
        if (rk.mv_size <= UDB_KEY_INLINE) {
            *k = rk;
            *v = rv;
            return 0;
        }
        if ((rc = read_group(c, rk, rv)))
            return rc;
    }
}

/* The sort key of entry (k, v) into s: its key, but for an entry of a
 * unique index that holds no primary key (no NULL, or NULLs not distinct),
 * the key then the primary key, its value. */
static int sort_key(udb_buf *s, const udb_cursor *c, const MDB_val *k, const MDB_val *v)
{
    s->len = 0;
    udb__buf_put(s, k->mv_data, k->mv_size);
    if (c->f.ix->unique && !c->f.ix->is_pk) {
        const unsigned char *p = k->mv_data, *end = p + k->mv_size;
        size_t i = 0;
        while (i < c->f.ix->nfields && udb__tk_skip(&p, end) == 0)
            i++;
        if (i == c->f.ix->nfields && p == end)
            udb__buf_put(s, v->mv_data, v->mv_size);
    }
    return s->oom ? UDB_ENOMEM : 0;
}

/* At the end of a scan of a whole database in a read-only snapshot: LMDB's
 * count of its entries is the number walked.  A damaged page header can
 * hide entries without breaking the key order; a scan that silently ends
 * early would be a partial answer. */
static int whole_walk(udb_cursor *c)
{
    MDB_stat st;
    if (c->f.lo.len || c->f.hi.len || c->f.after.len || !udb__txn_rdonly(c->f.txn) ||
        mdb_stat(udb__txn_mdb(c->f.txn), c->dbi, &st) || st.ms_entries == c->walked)
        return UDB_ENOTFOUND;
    return udb__err(c->f.txn, UDB_ECORRUPT, "%s \"%s%s%s\" is damaged: LMDB counts %zu entries, "
                    "the scan found %zu (a damaged page hides some); run uniqdb check",
                    c->f.ix->is_pk ? "type" : "index", c->f.t->name, c->f.ix->is_pk ? "" : ".",
                    c->f.ix->is_pk ? "" : c->f.ix->name, (size_t)st.ms_entries, c->walked);
}

/* The next entry of the range: 0, or UDB_ENOTFOUND at the end, or an error
 * with its message set (the cursor ends on damage). */
static int next_match(MDB_val *k, MDB_val *v, udb_cursor *c)
{
    udb_txn *txn = c->f.txn;
    if (c->f.done)
        return UDB_ENOTFOUND;
    int rc, where = 0;
    for (;;) {
        if ((rc = next_entry(k, v, c)) || (rc = sort_key(&c->f.cand, c, k, v)))
            break;
        if ((where = udb__cursor_place(&c->f, k->mv_data, k->mv_size)) >= 0)
            break;
    }
    if (where > 0)
        rc = MDB_NOTFOUND;
    if (rc == MDB_NOTFOUND) {
        c->f.done = true;
        return whole_walk(c);
    }
    if (rc == UDB_ECORRUPT) {
        /* a bad entry is skipped and the scan goes on after it; a loop, or
           damage it cannot step over (a long key), ends it */
        bool go_on = c->skipped && !c->looping;
        c->skipped = false;
        c->f.done = !go_on;
        udb_buf at = {0};
        udb__tk_render(&at, c->last.p, c->last.len);
        udb__err(txn, rc, "%s \"%s%s%s\" is damaged %s key %s (%s); %s; run uniqdb check",
                 c->f.ix->is_pk ? "type" : "index", c->f.t->name, c->f.ix->is_pk ? "" : ".",
                 c->f.ix->is_pk ? "" : c->f.ix->name, c->f.reverse ? "before" : "after",
                 c->last.len && at.p && !at.oom ? (char *)at.p : "(start)",
                 c->looping ? "the scan read far more entries than it holds: a loop"
                            : "an entry of garbage size, out of key order, or a damaged long key",
                 go_on ? "the entry is skipped" : "the scan ends here");
        udb__buf_free(&at);
        return rc;
    }
    if (rc == UDB_ENOMEM)
        return udb__err(txn, rc, "out of memory");
    if (rc) {
        c->f.done = true;   /* LMDB refuses the rest of the transaction anyway */
        return udb__mdb_err(txn, rc, "scanning");
    }
    udb__cursor_handed(&c->f);   /* its sort key is the position */
    return 0;
}

int udb__lmdb_scan_skip(uint64_t *skipped, udb_cursor *c, uint64_t n)
{
    uint64_t done = 0;
    int rc = 0;
    MDB_val k, v;
    /* a skipped bad entry is one step, as it is one udb_cursor_next */
    while (done < n && ((rc = next_match(&k, &v, c)) == 0 || (rc == UDB_ECORRUPT &&
                                                                 !c->f.done))) {
        done++;
        rc = 0;
    }
    if (skipped)
        *skipped = done;
    return rc == UDB_ENOTFOUND ? 0 : rc;
}

int udb__lmdb_scan_next(udb_val *out, udb_cursor *c)
{
    udb_txn *txn = c->f.txn;
    MDB_val k, v;
    int rc = next_match(&k, &v, c);
    if (rc)
        return rc;
    if (c->f.ix->is_pk)
        return udb__out_rec(out, txn, c->f.t, &k, &v);
    /* index entry: find the primary key, then the record */
    MDB_val pk = v;
    if (!c->f.ix->unique) {
        const unsigned char *p = k.mv_data, *end = p + k.mv_size;
        for (size_t i = 0; i < c->f.ix->nfields; i++)
            if (udb__tk_skip(&p, end))
                return udb__err(txn, UDB_ECORRUPT, "index \"%s.%s\" has a damaged entry",
                                c->f.t->name, c->f.ix->name);
        pk.mv_data = (void *)p;
        pk.mv_size = (size_t)(end - p);
    }
    MDB_val rec;
    rc = udb__lk_get(udb__txn_mdb(txn), c->rdbi, &pk, &rec);
    if (rc == MDB_NOTFOUND)
        return udb__err(txn, UDB_ECORRUPT, "index \"%s.%s\" points to a missing record",
                        c->f.t->name, c->f.ix->name);
    if (rc)
        return udb__mdb_err(txn, rc, "reading a record");
    return udb__out_rec(out, txn, c->f.t, &pk, &rec);
}


void udb__lmdb_scan_close(udb_cursor *c)
{
    if (c->mc)
        mdb_cursor_close(c->mc);
    udb__buf_free(&c->gkeys);
    udb__buf_free(&c->scratch);
    udb__buf_free(&c->last);
    free(c->group);
}
