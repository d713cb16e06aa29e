/*
 * store.c -- the LMDB backend's record operations (backend.h): a record
 * under its encoded primary key in "t:<type>", every index entry in its
 * index's database (layout.h), every key through longkey.h.  The core has
 * decided everything (core/ops.c); this stores it.
 */
#include <string.h>

#include "index.h"
#include "layout.h"
#include "longkey.h"
#include "seq.h"
#include "txn.h"

/* The handle of index ix of a type of txn's schema (t->idx[0]: its records). */
static MDB_dbi dbi(const udb_txn *txn, const udb_index *ix)
{
    return udb__dbi(udb__txn_schema(txn), ix);
}

static MDB_val entry(const udb_entries *e, size_t i)
{
    MDB_val v = {e->len[i], (void *)(e->keys + e->off[i])};
    return v;
}

/* The value of index i's entry: a unique index's holds the primary key, any
 * other's nothing (its key ends with the primary key). */
static MDB_val entry_value(const udb_type *t, const udb_entries *e, size_t i)
{
    MDB_val v = {0, (void *)""};
    return t->idx[i].unique ? entry(e, 0) : v;
}

static int get(udb_val *out, udb_txn *txn, MDB_dbi db, const void *key, size_t len,
               const char *what)
{
    MDB_val k = {len, (void *)key}, v;
    int rc = udb__lk_get(udb__txn_mdb(txn), db, &k, &v);
    if (rc == MDB_NOTFOUND)
        return UDB_ENOTFOUND;
    if (rc)
        return udb__mdb_err(txn, rc, what);
    out->data = v.mv_data;
    out->size = v.mv_size;
    return 0;
}

static int lmdb_fetch(udb_val *rec, udb_txn *txn, const udb_type *t, const void *pk, size_t pklen)
{
    return get(rec, txn, dbi(txn, &t->idx[0]), pk, pklen, "reading a record");
}

static int lmdb_holder(udb_val *pk, udb_txn *txn, const udb_type *t, const udb_index *ix,
                       const void *key, size_t keylen)
{
    (void)t;
    return get(pk, txn, dbi(txn, ix), key, keylen, "reading a unique index");
}

static int put(udb_txn *txn, MDB_dbi db, MDB_val k, MDB_val v, unsigned flags)
{
    int rc = udb__lk_put(udb__txn_mdb(txn), db, &k, &v, flags);
    return rc ? udb__mdb_err(txn, rc, "writing") : 0;
}

static int del(udb_txn *txn, MDB_dbi db, MDB_val k)
{
    int rc = udb__lk_del(udb__txn_mdb(txn), db, &k);
    return rc && rc != MDB_NOTFOUND ? udb__mdb_err(txn, rc, "deleting") : 0;
}

/* The record, then each index entry that changed: the old one deleted, the
 * new one written (a unique index's entry holds the primary key). */
static int lmdb_store(udb_txn *txn, const udb_type *t, const void *record, size_t len,
                      const udb_entries *e, const udb_entries *old)
{
    MDB_val rv = {len, (void *)record};
    int rc = put(txn, dbi(txn, &t->idx[0]), entry(e, 0), rv, old ? 0 : MDB_NOOVERWRITE);
    for (size_t i = 1; i < t->nidx && !rc; i++) {
        const udb_index *ix = &t->idx[i];
        bool same = old && old->applies[i] && e->applies[i] && old->len[i] == e->len[i] &&
                    memcmp(old->keys + old->off[i], e->keys + e->off[i], e->len[i]) == 0;
        if (same)
            continue;
        if (old && old->applies[i] && (rc = del(txn, dbi(txn, ix), entry(old, i))))
            break;
        if (e->applies[i])
            rc = put(txn, dbi(txn, ix), entry(e, i), entry_value(t, e, i), 0);
    }
    return rc;
}

/* Is index i of t one whose taken key is a conflict for e (a unique index
 * e is in, not exempt by a NULL)?  Its entry is then put with
 * MDB_NOOVERWRITE; every other entry's key ends with the primary key. */
static bool guarded(const udb_type *t, const udb_entries *e, size_t i)
{
    const udb_index *ix = &t->idx[i];
    return e->applies[i] && ix->unique && !udb__idx_exempt(ix, e->vals);
}

/* Delete the guarded entries of e in indexes 1 .. upto-1 (put by
 * lmdb_store_new before a taken key stopped it; upto t->nidx: all). */
static int unput(udb_txn *txn, const udb_type *t, const udb_entries *e, size_t upto)
{
    int rc = 0;
    for (size_t i = 1; i < upto && !rc; i++)
        if (guarded(t, e, i))
            rc = del(txn, dbi(txn, &t->idx[i]), entry(e, i));
    return rc;
}

/* A new record, its taken keys found by the puts themselves: each unique
 * index's entry is put with MDB_NOOVERWRITE, which searches the tree once
 * where a probe then a put would search it twice.  The unique entries go
 * first (a conflict on one, the common case, is found before anything else
 * is written), then the record (its primary key may be taken), then the
 * other entries.  A taken key deletes what this call put and returns
 * UDB_BE_TAKEN: the transaction holds what it held, and the core finds who
 * holds what.  reads: only PostgreSQL's snapshots need it. */
static int lmdb_store_new(udb_txn *txn, const udb_type *t, const void *record, size_t len,
                          const udb_entries *e, const udb_index *reads)
{
    (void)reads;
    MDB_txn *mt = udb__txn_mdb(txn);
    MDB_val pk = entry(e, 0);
    size_t i;   /* the guarded index whose key is taken, or t->nidx */
    int rc = 0;
    for (i = 1; i < t->nidx; i++) {
        MDB_val k = entry(e, i), v = pk;
        if (guarded(t, e, i) &&
            (rc = udb__lk_put(mt, dbi(txn, &t->idx[i]), &k, &v, MDB_NOOVERWRITE)))
            break;
    }
    if (!rc) {
        MDB_val v = {len, (void *)record};
        rc = udb__lk_put(mt, dbi(txn, &t->idx[0]), &pk, &v, MDB_NOOVERWRITE);
    }
    if (rc == MDB_KEYEXIST) {
        rc = unput(txn, t, e, i);   /* the entries before i: the taken one is not ours */
        return rc ? rc : UDB_BE_TAKEN;
    }
    if (rc)
        return udb__mdb_err(txn, rc, "writing");
    for (i = 1; i < t->nidx && !rc; i++)
        if (e->applies[i] && !guarded(t, e, i))
            rc = put(txn, dbi(txn, &t->idx[i]), entry(e, i), entry_value(t, e, i), 0);
    return rc;
}

static int lmdb_remove(udb_txn *txn, const udb_type *t, const void *pk, size_t pklen,
                       const udb_entries *old)
{
    int rc = 0;
    for (size_t i = 1; i < t->nidx && !rc; i++)
        if (old->applies[i])
            rc = del(txn, dbi(txn, &t->idx[i]), entry(old, i));
    MDB_val k = {pklen, (void *)pk};
    return rc ? rc : del(txn, dbi(txn, &t->idx[0]), k);
}

static int lmdb_count(uint64_t *n, udb_txn *txn, const udb_schema *s, const udb_type *t)
{
    MDB_stat st;
    int rc = mdb_stat(udb__txn_mdb(txn), udb__type_dbi(s, t), &st);
    *n = rc ? 0 : st.ms_entries;
    return rc;
}

static int lmdb_each(udb_txn *txn, const udb_schema *s, const udb_type *t,
                     int (*fn)(void *ctx, const udb_val *pk, const udb_val *rec), void *ctx)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(udb__txn_mdb(txn), udb__type_dbi(s, t), &cur);
    if (rc)
        return rc;
    MDB_val rk, rv, k, v;
    udb_buf full = {0};
    for (rc = mdb_cursor_get(cur, &rk, &rv, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &rk, &rv, MDB_NEXT)) {
        if ((rc = udb__lk_decode(&k, &v, &rk, &rv, &full)))
            break;
        udb_val pk = {k.mv_data, k.mv_size}, rec = {v.mv_data, v.mv_size};
        if ((rc = fn(ctx, &pk, &rec)))
            break;
    }
    mdb_cursor_close(cur);
    udb__buf_free(&full);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int lmdb_last_key(udb_val *pk, udb_txn *txn, const udb_type *t)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(udb__txn_mdb(txn), dbi(txn, &t->idx[0]), &cur);
    if (rc)
        return udb__mdb_err(txn, rc, "opening a cursor");
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        return UDB_ENOTFOUND;
    if (rc)
        return udb__mdb_err(txn, rc, "reading keys");
    pk->data = k.mv_data;
    pk->size = k.mv_size;
    return 0;
}

const udb_backend udb__lmdb_backend = {
    .name = "lmdb",
    .fetch = lmdb_fetch,
    .holder = lmdb_holder,
    .store = lmdb_store,
    .store_new = lmdb_store_new,
    .lookup_first = true,
    .remove = lmdb_remove,
    .count = lmdb_count,
    .each = lmdb_each,
    .last_key = lmdb_last_key,
    .seq_peek = udb__seq_find,
    .seq_store = udb__seq_store,
    .seq_each = udb__seq_each,
    .commit = udb__lmdb_commit,
    .abort = udb__lmdb_abort,
    .latest = udb__lmdb_latest,
    .type_stat = udb__lmdb_type_stat,
    .scan_size = udb__lmdb_scan_size,
    .scan_open = udb__lmdb_scan_open,
    .scan_next = udb__lmdb_scan_next,
    .scan_skip = udb__lmdb_scan_skip,
    .scan_close = udb__lmdb_scan_close,
};
