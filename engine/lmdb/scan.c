/*
 * scan.c -- ordered scans over a type's primary key or one of its indexes,
 * optionally restricted to a prefix of the index's fields.  The tuple key
 * encoding makes a prefix of values a prefix of bytes, so a scan is one
 * MDB_SET_RANGE and a walk forward while the prefix matches.
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
    udb_buf prefix;
    bool started, done;
    /* long keys sharing their first UDB_KEY_INLINE bytes sit in LMDB in slot
       order: such a group is read whole and handed out in key order */
    unsigned char gfirst[UDB_KEY_INLINE];
    udb_buf gkeys, scratch;
    udb_buf last;             /* the last raw LMDB key read: keys must increase */
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

int udb_scan(udb_cursor **out, udb_txn *txn, const char *type, const char *index,
             const void *prefix, size_t len)
{
    udb_type *t;
    int rc = udb__txn_type(&t, txn, type, false);
    if (rc)
        return rc;
    if (!out)
        return udb__err(txn, UDB_EINVAL, "udb_scan: out is required");
    udb_index *ix = udb__type_index(t, index);
    if (!ix)
        return udb__err_index(txn, t, index, false);
    udb_cursor *c = calloc(1, sizeof *c);
    if (!c)
        return udb__err(txn, UDB_ENOMEM, "out of memory");
    c->txn = txn;
    c->t = t;
    c->ix = ix;
    udb_buf msg = {0};
    if (prefix) {
        msgpack_object vals[UDB_MAX_IDX_FIELDS];
        size_t nv = 0;
        const char *why = NULL;
        if ((rc = udb__mp_scalars(vals, ix->nfields, &nv, true, prefix, len, &why))) {
            udb__err(txn, rc, "scan prefix of \"%s.%s\" must be a msgpack array of at most %zu "
                     "values: %s", t->name, ix->name, ix->nfields, why);
            goto fail;
        }
        for (size_t i = 0; i < nv; i++) {
            if ((rc = udb__field_key(&c->prefix, t, &t->fields[ix->fields[i]], &vals[i], &msg))) {
                udb__err(txn, rc, "%s", msg.p ? (char *)msg.p : "bad prefix value");
                goto fail;
            }
        }
    }
    if ((rc = mdb_cursor_open(udb__txn_mdb(txn), ix->dbi, &c->mc))) {
        rc = udb__mdb_err(txn, rc, "opening a cursor");
        goto fail;
    }
    udb__buf_free(&msg);
    *out = c;
    return 0;
fail:
    udb__buf_free(&msg);
    udb_cursor_close(c);
    return rc;
}

static int cmp_group(const void *a, const void *b, void *keys)
{
    const group_ent *x = a, *y = b;
    const unsigned char *base = keys;
    size_t n = x->len < y->len ? x->len : y->len;
    int d = memcmp(base + x->off, base + y->off, n);
    return d ? d : (x->len > y->len) - (x->len < y->len);
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
    else if (!udb__sane_entry(rk, rv) || (rc = udb__key_after(&c->last, rk)) == UDB_ECORRUPT)
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

/* Read the long-key group the LMDB cursor is on (raw entry rk, rv), leave
 * the cursor on its last entry, and sort it by full key. */
static int read_group(udb_cursor *c, MDB_val rk, MDB_val rv)
{
    int rc;
    memcpy(c->gfirst, rk.mv_data, UDB_KEY_INLINE);
    c->ngroup = c->gpos = 0;
    c->gkeys.len = 0;
    do {
        MDB_val k, v;
        if ((rc = udb__lk_decode(&k, &v, &rk, &rv, &c->scratch)))
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
        memcpy(e->slot, (const unsigned char *)rk.mv_data + UDB_KEY_INLINE, 8);
        udb__buf_put(&c->gkeys, k.mv_data, k.mv_size);
        if (c->gkeys.oom)
            return UDB_ENOMEM;
        rc = mdb_cursor_get(c->mc, &rk, &rv, MDB_NEXT);
        /* an entry of the group is checked here; the one after it, which
           the cursor steps back from, when it is read again */
    } while (rc == 0 && rk.mv_size == UDB_KEY_LONG && rk.mv_data &&
             memcmp(rk.mv_data, c->gfirst, UDB_KEY_INLINE) == 0 &&
             (rc = raw_checked(c, &rk, &rv)) == 0);
    if (rc == UDB_ECORRUPT)
        c->skipped = false;   /* in the middle of a group: the scan cannot go on */
    if (rc == 0)
        rc = mdb_cursor_get(c->mc, &rk, &rv, MDB_PREV);
    else if (rc == MDB_NOTFOUND)
        rc = 0;   /* the group ends the database */
    qsort_r(c->group, c->ngroup, sizeof *c->group, cmp_group, c->gkeys.p);
    return rc;
}

/* The next entry in full-key order: its full key and stored value. */
static int next_entry(MDB_val *k, MDB_val *v, udb_cursor *c)
{
    MDB_val rk, rv;
    int rc;
    for (;;) {
        if (c->gpos < c->ngroup) {
            const group_ent *e = &c->group[c->gpos++];
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
            rk.mv_size = c->prefix.len < UDB_KEY_INLINE ? c->prefix.len : UDB_KEY_INLINE;
            rk.mv_data = c->prefix.p;
            rc = rk.mv_size ? mdb_cursor_get(c->mc, &rk, &rv, MDB_SET_RANGE)
                            : mdb_cursor_get(c->mc, &rk, &rv, MDB_FIRST);
        } else {
            rc = mdb_cursor_get(c->mc, &rk, &rv, MDB_NEXT);
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

/* At the end of a scan of a whole database in a read-only snapshot: LMDB's
 * count of its entries is the number walked.  A damaged page header can
 * hide entries without breaking the key order; a scan that silently ends
 * early would be a partial answer. */
static int whole_walk(udb_cursor *c)
{
    MDB_stat st;
    if (c->prefix.len || !udb__txn_rdonly(c->txn) ||
        mdb_stat(udb__txn_mdb(c->txn), c->ix->dbi, &st) || st.ms_entries == c->walked)
        return UDB_ENOTFOUND;
    return udb__err(c->txn, UDB_ECORRUPT, "%s \"%s%s%s\" is damaged: LMDB counts %zu entries, "
                    "the scan found %zu (a damaged page hides some); run uniqdb check",
                    c->ix->is_pk ? "type" : "index", c->t->name, c->ix->is_pk ? "" : ".",
                    c->ix->is_pk ? "" : c->ix->name, (size_t)st.ms_entries, c->walked);
}

/* The next entry that matches the prefix: 0, or UDB_ENOTFOUND at the end,
 * or an error with its message set (the cursor ends on damage). */
static int next_match(MDB_val *k, MDB_val *v, udb_cursor *c)
{
    udb_txn *txn = c->txn;
    if (c->done)
        return UDB_ENOTFOUND;
    const unsigned char *pre = c->prefix.p;
    size_t plen = c->prefix.len;
    int rc;
    for (;;) {
        if ((rc = next_entry(k, v, c)) || !plen)
            break;
        /* A prefix longer than UDB_KEY_INLINE is sought by its first bytes:
           keys below it come first and are skipped.  A byte prefix is not
           yet a tuple prefix: after a string or bytes element (which ends in
           0x00) a following 0xFF means the element goes on (an escaped NUL),
           e.g. prefix ("a") vs key ("a\0", ...).  No type code is 0xFF, and
           such keys sort after every real match, so the scan ends there. */
        int d = memcmp(k->mv_data, pre, k->mv_size < plen ? k->mv_size : plen);
        if (d < 0 || (d == 0 && k->mv_size < plen))
            continue;
        if (d > 0 || (k->mv_size > plen && ((const unsigned char *)k->mv_data)[plen] == 0xFF))
            rc = MDB_NOTFOUND;
        break;
    }
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
        udb__err(txn, rc, "%s \"%s%s%s\" is damaged after key %s (%s); %s; run uniqdb check",
                 c->ix->is_pk ? "type" : "index", c->t->name, c->ix->is_pk ? "" : ".",
                 c->ix->is_pk ? "" : c->ix->name,
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

void udb_cursor_close(udb_cursor *c)
{
    if (!c)
        return;
    if (c->mc)
        mdb_cursor_close(c->mc);
    udb__buf_free(&c->prefix);
    udb__buf_free(&c->gkeys);
    udb__buf_free(&c->scratch);
    udb__buf_free(&c->last);
    free(c->group);
    free(c);
}
