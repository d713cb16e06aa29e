/*
 * scan.c -- ordered scans over a type's primary key or one of its indexes:
 * forward or reverse, bounded below and above on a prefix of the index's
 * fields, resumed after a given entry, limited in length.
 *
 * The tuple key encoding makes memcmp order value order, so a scan is one
 * seek (MDB_SET_RANGE) and a walk.  Bounds are compared as values, not as
 * raw keys: an entry's key holds all of the index's fields (and the primary
 * key after them in a non-unique index), a bound only its first k, so an
 * entry is compared on its first k elements (see cmp_bound).  Where a scan
 * is resumed is an entry's sort key -- its index fields then its primary
 * key, SQL's ORDER BY -- which every entry has whatever its key's shape, and
 * which stays a position after the entry itself is deleted.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "longkey.h"
#include "keycodec.h"
#include "layout.h"
#include "mpack.h"
#include "txn.h"

/* One entry of a long-key group (longkey.h): its full key in gkeys, and
 * its slot, which with the group's first bytes is its LMDB key. */
typedef struct group_ent {
    size_t off, len;
    unsigned char slot[8];
} group_ent;

struct udb_cursor {
    udb_txn *txn;
    const udb_type *t;
    const udb_index *ix;
    MDB_cursor *mc;
    /* the range: tuples of at most ix->nfields values (empty: no bound), and
       the sort key to resume after (empty: none) */
    udb_buf lo, hi, after;
    size_t after_fields;      /* bytes of `after` that hold the index's fields */
    bool lo_excl, hi_excl, reverse;
    /* in scan order, once an entry is past the start bound (or `after`), so
       is every later one: stop comparing */
    bool start_passed, after_passed;
    uint64_t limit, handed;   /* at most limit entries (0: no limit); handed out */
    bool started, done;
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
    /* sort keys (cand: of the entry being looked at; pos: of the last one
       handed out, empty before the first), and pos as udb_cursor_key's msgpack */
    udb_buf cand, pos, keyout;
};

/* The field of value i of ix's sort key: its fields, then the primary key. */
static const udb_field *sort_field(const udb_type *t, const udb_index *ix, size_t i)
{
    return &t->fields[i < ix->nfields ? ix->fields[i] : t->key];
}

/* Encode v, a msgpack array (untrusted) of values for the first min..max
 * fields of ix's sort key, as a tuple appended to b.  what names v in the
 * message.  UDB_EBADRECORD (not such an array, values of wrong types),
 * UDB_ENOMEM. */
static int encode_values(udb_buf *b, udb_txn *txn, const udb_type *t, const udb_index *ix,
                         udb_val v, size_t min, size_t max, const char *what)
{
    msgpack_object vals[UDB_MAX_IDX_FIELDS + 1];
    size_t nv = 0;
    const char *why = NULL;
    udb_buf names = {0}, msg = {0};
    int rc = udb__mp_scalars(vals, max, &nv, true, v.data, v.size, &why);
    if (rc == 0 && nv < min) {
        rc = UDB_EBADRECORD;
        why = "too few values";
    }
    if (rc) {
        for (size_t i = 0; i < max; i++)
            udb__buf_printf(&names, "%s%s%s", i ? ", " : "",
                            i == ix->nfields ? "then the primary key " : "",
                            sort_field(t, ix, i)->name);
        udb__err(txn, rc, "%s of \"%s.%s\" must be a msgpack array of %s%zu values (%s): %s",
                 what, t->name, ix->name, min == max ? "" : "at most ", max,
                 names.p && !names.oom ? (char *)names.p : "", why);
        goto out;
    }
    for (size_t i = 0; i < nv; i++) {
        if ((rc = udb__field_key(b, t, sort_field(t, ix, i), &vals[i], &msg))) {
            if (rc == UDB_ENOMEM)
                udb__err(txn, rc, "out of memory");
            else
                udb__err(txn, rc, "%s of \"%s.%s\", value %zu: %s", what, t->name, ix->name,
                         i + 1, msg.p && !msg.oom ? (char *)msg.p : "bad value");
            goto out;
        }
    }
out:
    udb__buf_free(&names);
    udb__buf_free(&msg);
    return rc;
}

/* The common part of udb_scan (prefix) and udb_scan_range (r), both may be
 * NULL.  fn names the call in messages. */
static int open_scan(udb_cursor **out, udb_txn *txn, const char *type, const char *index,
                     const udb_val *prefix, const udb_range *r, const char *fn)
{
    udb_type *t;
    int rc = udb__txn_type(&t, txn, type, false);
    if (rc)
        return rc;
    if (!out)
        return udb__err(txn, UDB_EINVAL, "%s: out is required", fn);
    udb_index *ix = udb__type_index(t, index);
    if (!ix)
        return udb__err_index(txn, t, index, false);
    if (r && (r->version < 1 || r->version > UDB_RANGE_VERSION))
        return udb__err(txn, UDB_EINVAL, "%s: range version %u is not one this library knows "
                        "(1 to %d): start from UDB_RANGE_INIT", fn, r->version,
                        UDB_RANGE_VERSION);
    unsigned known = UDB_LO_EXCL | UDB_HI_EXCL | UDB_REVERSE;
    if (r && (r->flags & ~known))
        return udb__err(txn, UDB_EINVAL, "%s: unknown range flags 0x%x (UDB_LO_EXCL, "
                        "UDB_HI_EXCL and UDB_REVERSE are 0x%x)", fn, r->flags & ~known, known);
    udb_cursor *c = calloc(1, sizeof *c);
    if (!c)
        return udb__err(txn, UDB_ENOMEM, "out of memory");
    c->txn = txn;
    c->t = t;
    c->ix = ix;
    if (prefix && prefix->data) {
        /* a prefix is the range from it to it, both included */
        if ((rc = encode_values(&c->lo, txn, t, ix, *prefix, 0, ix->nfields, "scan prefix")))
            goto fail;
        udb__buf_put(&c->hi, c->lo.p, c->lo.len);
    }
    if (r) {
        if (r->lo.data &&
            (rc = encode_values(&c->lo, txn, t, ix, r->lo, 0, ix->nfields, "range lo")))
            goto fail;
        if (r->hi.data &&
            (rc = encode_values(&c->hi, txn, t, ix, r->hi, 0, ix->nfields, "range hi")))
            goto fail;
        size_t nkey = ix->nfields + !ix->is_pk;
        if (r->after.data) {
            if ((rc = encode_values(&c->after, txn, t, ix, r->after, nkey, nkey,
                                    "range after")))
                goto fail;
            const unsigned char *p = c->after.p, *end = p + c->after.len;
            for (size_t i = 0; i < ix->nfields; i++)
                if (udb__tk_skip(&p, end)) {   /* we encoded it: cannot fail */
                    rc = udb__err(txn, UDB_EINVAL, "%s: bad after", fn);
                    goto fail;
                }
            c->after_fields = (size_t)(p - c->after.p);
        }
        c->lo_excl = r->flags & UDB_LO_EXCL;
        c->hi_excl = r->flags & UDB_HI_EXCL;
        c->reverse = r->flags & UDB_REVERSE;
        c->limit = r->limit;
    }
    if (c->hi.oom) {
        rc = udb__err(txn, UDB_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = mdb_cursor_open(udb__txn_mdb(txn), ix->dbi, &c->mc))) {
        rc = udb__mdb_err(txn, rc, "opening a cursor");
        goto fail;
    }
    *out = c;
    return 0;
fail:
    udb_cursor_close(c);
    return rc;
}

int udb_scan(udb_cursor **out, udb_txn *txn, const char *type, const char *index,
             const void *prefix, size_t len)
{
    udb_val p = {prefix, len};
    return open_scan(out, txn, type, index, &p, NULL, "udb_scan");
}

int udb_scan_range(udb_cursor **out, udb_txn *txn, const char *type, const char *index,
                   const udb_range *range)
{
    return open_scan(out, txn, type, index, NULL, range, "udb_scan_range");
}

static int cmp_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int d = n ? memcmp(a, b, n) : 0;
    return d ? d : (alen > blen) - (alen < blen);
}

static int cmp_group(const void *a, const void *b, void *keys)
{
    const group_ent *x = a, *y = b;
    const unsigned char *base = keys;
    return cmp_bytes(base + x->off, x->len, base + y->off, y->len);
}

/*
 * The order of the first k values of key (an entry's key or sort key)
 * against b, a tuple of k values: <0, 0 or >0.  Both are tuples, whose
 * memcmp order is value order, but key holds more values than b: its first
 * k are compared.  Where b ends, key's next byte starts its next value (a
 * type code: the k values are equal), unless it is 0xFF: then b's last
 * value is a string or bytes, whose 0x00 terminator is, in key, an escaped
 * NUL -- key's value goes on and is greater (prefix ("a") vs key ("a\0")).
 * No type code is 0xFF.
 */
static int cmp_bound(const void *key, size_t len, const udb_buf *b)
{
    const unsigned char *k = key;
    size_t n = len < b->len ? len : b->len;
    int d = n ? memcmp(k, b->p, n) : 0;
    if (d || len < b->len)
        return d ? d : -1;
    return len > b->len && k[b->len] == 0xFF;
}

/* Where a scan starts: into s, a raw key at or before every entry of the
 * range in scan order (forward: every entry's key is >= s; reverse: < s);
 * false if it starts at the first (last) entry. */
static bool start_key(udb_buf *s, const udb_cursor *c)
{
    const udb_buf *b = c->reverse ? &c->hi : &c->lo;
    bool excl = c->reverse ? c->hi_excl : c->lo_excl;
    if (b->len) {
        /* past every key whose first values equal b: b ++ 0xFF (cmp_bound) */
        udb__buf_put(s, b->p, b->len);
        if (excl != c->reverse)
            udb__buf_byte(s, 0xFF);
    }
    if (c->after.len) {
        /* forward: a wanted entry's fields are >= after's (its key is the
           fields alone in a unique index); reverse: its key < after */
        size_t n = c->reverse ? c->after.len : c->after_fields;
        int d = cmp_bytes(c->after.p, n, s->p, s->len);
        if (!s->len || (c->reverse ? d < 0 : d > 0)) {
            s->len = 0;
            udb__buf_put(s, c->after.p, n);
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
        rc = mdb_cursor_get(c->mc, rk, rv, c->reverse ? MDB_LAST : MDB_FIRST);
    } else {
        /* a key longer than UDB_KEY_INLINE is sought by its first bytes:
           forward, keys below it come first and are skipped */
        rk->mv_size = s.len < UDB_KEY_INLINE ? s.len : UDB_KEY_INLINE;
        rk->mv_data = s.p;
        rc = mdb_cursor_get(c->mc, rk, rv, MDB_SET_RANGE);
        if (c->reverse) {
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
    if (!c->reverse)
        return udb__key_after(&c->last, k);
    if (c->last.len && cmp_bytes(k->mv_data, k->mv_size, c->last.p, c->last.len) >= 0)
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
        c->budget = udb__txn_rdonly(c->txn) &&
                    mdb_stat(udb__txn_mdb(c->txn), c->ix->dbi, &st) == 0
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
    MDB_cursor_op on = c->reverse ? MDB_PREV : MDB_NEXT, back = c->reverse ? MDB_NEXT : MDB_PREV;
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
            const group_ent *e = &c->group[c->reverse ? c->ngroup - 1 - i : i];
            unsigned char raw[UDB_KEY_LONG];
            memcpy(raw, c->gfirst, UDB_KEY_INLINE);
            memcpy(raw + UDB_KEY_INLINE, e->slot, 8);
            rk.mv_size = UDB_KEY_LONG;
            rk.mv_data = raw;
            rc = mdb_get(udb__txn_mdb(c->txn), c->ix->dbi, &rk, &rv);
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
            rc = mdb_cursor_get(c->mc, &rk, &rv, c->reverse ? MDB_PREV : MDB_NEXT);
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
    if (c->ix->unique && !c->ix->is_pk) {
        const unsigned char *p = k->mv_data, *end = p + k->mv_size;
        size_t i = 0;
        while (i < c->ix->nfields && udb__tk_skip(&p, end) == 0)
            i++;
        if (i == c->ix->nfields && p == end)
            udb__buf_put(s, v->mv_data, v->mv_size);
    }
    return s->oom ? UDB_ENOMEM : 0;
}

/* Where the entry of key k and sort key c->cand lies: -1 before the range
 * in scan order (skip it), 0 in it, 1 after it (the scan ends). */
static int place(udb_cursor *c, const MDB_val *k)
{
    int dir = c->reverse ? -1 : 1;
    const udb_buf *start = c->reverse ? &c->hi : &c->lo, *end = c->reverse ? &c->lo : &c->hi;
    bool start_excl = c->reverse ? c->hi_excl : c->lo_excl;
    bool end_excl = c->reverse ? c->lo_excl : c->hi_excl;
    if (!c->start_passed && start->len) {
        int d = dir * cmp_bound(k->mv_data, k->mv_size, start);
        if (d < 0 || (d == 0 && start_excl))
            return -1;
    }
    c->start_passed = true;
    if (!c->after_passed && c->after.len) {
        if (dir * cmp_bytes(c->cand.p, c->cand.len, c->after.p, c->after.len) <= 0)
            return -1;
    }
    c->after_passed = true;
    if (end->len) {
        int d = dir * cmp_bound(k->mv_data, k->mv_size, end);
        if (d > 0 || (d == 0 && end_excl))
            return 1;
    }
    return 0;
}

/* At the end of a scan of a whole database in a read-only snapshot: LMDB's
 * count of its entries is the number walked.  A damaged page header can
 * hide entries without breaking the key order; a scan that silently ends
 * early would be a partial answer. */
static int whole_walk(udb_cursor *c)
{
    MDB_stat st;
    if (c->lo.len || c->hi.len || c->after.len || !udb__txn_rdonly(c->txn) ||
        mdb_stat(udb__txn_mdb(c->txn), c->ix->dbi, &st) || st.ms_entries == c->walked)
        return UDB_ENOTFOUND;
    return udb__err(c->txn, UDB_ECORRUPT, "%s \"%s%s%s\" is damaged: LMDB counts %zu entries, "
                    "the scan found %zu (a damaged page hides some); run uniqdb check",
                    c->ix->is_pk ? "type" : "index", c->t->name, c->ix->is_pk ? "" : ".",
                    c->ix->is_pk ? "" : c->ix->name, (size_t)st.ms_entries, c->walked);
}

/* The next entry of the range: 0, or UDB_ENOTFOUND at the end, or an error
 * with its message set (the cursor ends on damage). */
static int next_match(MDB_val *k, MDB_val *v, udb_cursor *c)
{
    udb_txn *txn = c->txn;
    if (c->done)
        return UDB_ENOTFOUND;
    int rc, where = 0;
    for (;;) {
        if ((rc = next_entry(k, v, c)) || (rc = sort_key(&c->cand, c, k, v)))
            break;
        if ((where = place(c, k)) >= 0)
            break;
    }
    if (where > 0)
        rc = MDB_NOTFOUND;
    if (rc == MDB_NOTFOUND) {
        c->done = true;
        return whole_walk(c);
    }
    if (rc == UDB_ECORRUPT) {
        /* a bad entry is skipped and the scan goes on after it; a loop, or
           damage it cannot step over (a long key), ends it */
        bool go_on = c->skipped && !c->looping;
        c->skipped = false;
        c->done = !go_on;
        udb_buf at = {0};
        udb__tk_render(&at, c->last.p, c->last.len);
        udb__err(txn, rc, "%s \"%s%s%s\" is damaged %s key %s (%s); %s; run uniqdb check",
                 c->ix->is_pk ? "type" : "index", c->t->name, c->ix->is_pk ? "" : ".",
                 c->ix->is_pk ? "" : c->ix->name, c->reverse ? "before" : "after",
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
        c->done = true;   /* LMDB refuses the rest of the transaction anyway */
        return udb__mdb_err(txn, rc, "scanning");
    }
    udb_buf swap = c->pos;   /* the entry is handed out: its sort key is the position */
    c->pos = c->cand;
    c->cand = swap;
    if (c->limit && ++c->handed >= c->limit)
        c->done = true;
    return 0;
}

int udb_cursor_skip(uint64_t *skipped, udb_cursor *c, uint64_t n)
{
    if (!c)
        return UDB_EINVAL;
    uint64_t done = 0;
    int rc = 0;
    MDB_val k, v;
    /* a skipped bad entry is one step, as it is one udb_cursor_next */
    while (done < n && ((rc = next_match(&k, &v, c)) == 0 || (rc == UDB_ECORRUPT && !c->done))) {
        done++;
        rc = 0;
    }
    if (skipped)
        *skipped = done;
    return rc == UDB_ENOTFOUND ? 0 : rc;
}

int udb_cursor_next(udb_val *out, udb_cursor *c)
{
    if (!c)
        return UDB_EINVAL;
    udb_txn *txn = c->txn;
    MDB_val k, v;
    int rc = next_match(&k, &v, c);
    if (rc)
        return rc;
    if (c->ix->is_pk)
        return udb__out_rec(out, txn, c->t, &k, &v);
    /* index entry: find the primary key, then the record */
    MDB_val pk = v;
    if (!c->ix->unique) {
        const unsigned char *p = k.mv_data, *end = p + k.mv_size;
        for (size_t i = 0; i < c->ix->nfields; i++)
            if (udb__tk_skip(&p, end))
                return udb__err(txn, UDB_ECORRUPT, "index \"%s.%s\" has a damaged entry",
                                c->t->name, c->ix->name);
        pk.mv_data = (void *)p;
        pk.mv_size = (size_t)(end - p);
    }
    MDB_val rec;
    rc = udb__lk_get(udb__txn_mdb(txn), c->t->dbi, &pk, &rec);
    if (rc == MDB_NOTFOUND)
        return udb__err(txn, UDB_ECORRUPT, "index \"%s.%s\" points to a missing record",
                        c->t->name, c->ix->name);
    if (rc)
        return udb__mdb_err(txn, rc, "reading a record");
    return udb__out_rec(out, txn, c->t, &pk, &rec);
}

int udb_cursor_key(udb_val *out, udb_cursor *c)
{
    if (!c || !out)
        return UDB_EINVAL;
    if (!c->pos.len)
        return udb__err(c->txn, UDB_ENOTFOUND, "udb_cursor_key: the scan of \"%s.%s\" has "
                        "handed out no entry yet", c->t->name, c->ix->name);
    size_t n = c->ix->nfields + !c->ix->is_pk;
    c->keyout.len = 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &c->keyout, udb__buf_sbuffer_write);
    msgpack_pack_array(&pk, n);
    const unsigned char *p = c->pos.p, *end = p + c->pos.len;
    for (size_t i = 0; i < n; i++)
        if (udb__tk_to_msgpack(&pk, &p, end) || (i + 1 == n && p != end))
            return udb__err(c->txn, UDB_ECORRUPT, "%s \"%s%s%s\" has a damaged entry",
                            c->ix->is_pk ? "type" : "index", c->t->name,
                            c->ix->is_pk ? "" : ".", c->ix->is_pk ? "" : c->ix->name);
    if (c->keyout.oom)
        return udb__err(c->txn, UDB_ENOMEM, "out of memory");
    out->data = c->keyout.p;
    out->size = c->keyout.len;
    return 0;
}

void udb_cursor_close(udb_cursor *c)
{
    if (!c)
        return;
    if (c->mc)
        mdb_cursor_close(c->mc);
    udb__buf_free(&c->lo);
    udb__buf_free(&c->hi);
    udb__buf_free(&c->after);
    udb__buf_free(&c->cand);
    udb__buf_free(&c->pos);
    udb__buf_free(&c->keyout);
    udb__buf_free(&c->gkeys);
    udb__buf_free(&c->scratch);
    udb__buf_free(&c->last);
    free(c->group);
    free(c);
}
