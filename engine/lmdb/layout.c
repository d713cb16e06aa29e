/*
 * layout.c -- the storage layout: names of the LMDB databases, the keys of
 * __meta and how their values are stored (the table is in layout.h).
 *
 * Every file that reads or writes __meta goes through here, so a change of
 * the on-disk layout is a change of this file and UDB_FORMAT_VERSION.
 */
#include <string.h>

#include "layout.h"
#include "longkey.h"

const MDB_val udb__meta_format = {6, (void *)"format"};
const MDB_val udb__meta_schema = {6, (void *)"schema"};
const MDB_val udb__meta_gen_key = {3, (void *)"gen"};

void udb__dbname(udb_buf *b, const udb_type *t, const udb_index *ix)
{
    b->len = 0;
    if (ix && !ix->is_pk)
        udb__buf_printf(b, "%s:%s:%s", ix->unique ? "u" : "i", t->name, ix->name);
    else
        udb__buf_printf(b, "t:%s", t->name);
}

int udb__schema_open_dbis(udb_schema *s, MDB_txn *txn, unsigned flags)
{
    udb_buf name = {0};
    int rc = 0;
    for (size_t i = 0; i < s->ntypes && !rc; i++) {
        udb_type *t = &s->types[i];
        udb__dbname(&name, t, NULL);
        if (name.oom) {
            rc = UDB_ENOMEM;
            break;
        }
        rc = mdb_dbi_open(txn, (char *)name.p, flags, &t->dbi);
        for (size_t x = 0; x < t->nidx && !rc; x++) {
            udb_index *ix = &t->idx[x];
            if (ix->is_pk) {
                ix->dbi = t->dbi;
                continue;
            }
            udb__dbname(&name, t, ix);
            rc = name.oom ? UDB_ENOMEM : mdb_dbi_open(txn, (char *)name.p, flags, &ix->dbi);
        }
    }
    udb__buf_free(&name);
    return rc;
}

int udb__meta_u64(uint64_t *out, MDB_txn *txn, MDB_dbi meta, const MDB_val *key)
{
    MDB_val v;
    int rc = mdb_get(txn, meta, (MDB_val *)key, &v);
    if (rc == MDB_NOTFOUND) {
        *out = 0;
        return 0;
    }
    if (rc)
        return rc;
    if (v.mv_size != 8)
        return UDB_ECORRUPT;
    *out = udb__get_be(v.mv_data, 8);
    return 0;
}

int udb__meta_gen(uint64_t *out, MDB_txn *txn, MDB_dbi meta)
{
    return udb__meta_u64(out, txn, meta, &udb__meta_gen_key);
}

int udb__meta_put_u64(MDB_txn *txn, MDB_dbi meta, const MDB_val *key, uint64_t v)
{
    unsigned char b[8];
    udb__put_be64(b, v);
    MDB_val bv = {sizeof b, b};
    return mdb_put(txn, meta, (MDB_val *)key, &bv, 0);
}

int udb__meta_put_schema(MDB_txn *txn, MDB_dbi meta, const char *json, size_t len,
                         uint64_t gen)
{
    MDB_val sv = {len, (void *)json};
    int rc = mdb_put(txn, meta, (MDB_val *)&udb__meta_schema, &sv, 0);
    return rc ? rc : udb__meta_put_u64(txn, meta, &udb__meta_gen_key, gen);
}

#define UNIT_KEY (4 + UDB_META_INSTANCE + 4)

static void unit_key(unsigned char k[UNIT_KEY], const unsigned char *instance, unsigned slot)
{
    memcpy(k, "unit", 4);
    memcpy(k + 4, instance, UDB_META_INSTANCE);
    unsigned char *p = k + 4 + UDB_META_INSTANCE;
    p[0] = (unsigned char)(slot >> 24);
    p[1] = (unsigned char)(slot >> 16);
    p[2] = (unsigned char)(slot >> 8);
    p[3] = (unsigned char)slot;
}

int udb__meta_put_unit(MDB_txn *txn, MDB_dbi meta, const unsigned char *instance,
                       unsigned slot, uint64_t round, uint64_t txnid)
{
    unsigned char k[UNIT_KEY], b[16];
    unit_key(k, instance, slot);
    udb__put_be64(b, round);
    udb__put_be64(b + 8, txnid);
    MDB_val kv = {sizeof k, k}, bv = {sizeof b, b};
    return mdb_put(txn, meta, &kv, &bv, 0);
}

int udb__meta_unit(uint64_t *round, uint64_t *txnid, MDB_txn *txn, MDB_dbi meta,
                   const unsigned char *instance, unsigned slot)
{
    unsigned char k[UNIT_KEY];
    unit_key(k, instance, slot);
    MDB_val kv = {sizeof k, k}, v;
    *round = *txnid = 0;
    int rc = mdb_get(txn, meta, &kv, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return rc;
    if (v.mv_size != 16)
        return UDB_ECORRUPT;
    *round = udb__get_be(v.mv_data, 8);
    *txnid = udb__get_be((const unsigned char *)v.mv_data + 8, 8);
    return 0;
}

int udb__meta_sweep_units(size_t *n, MDB_txn *txn, MDB_dbi meta,
                          const unsigned char *instance)
{
    *n = 0;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, meta, &cur);
    if (rc)
        return rc;
    MDB_val k = {4, "unit"}, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); !rc;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < 4 || memcmp(k.mv_data, "unit", 4) != 0)
            break;
        if (k.mv_size == UNIT_KEY &&
            memcmp((const char *)k.mv_data + 4, instance, UDB_META_INSTANCE) == 0)
            continue;
        if ((rc = mdb_cursor_del(cur, 0)))
            break;
        ++*n;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

bool udb__sane_entry(const MDB_val *k, const MDB_val *v)
{
    return k->mv_data && k->mv_size >= 1 && k->mv_size <= UDB_KEY_LONG &&
           (v->mv_size == 0 || v->mv_data) && v->mv_size <= UDB_MAX_RAW_VALUE;
}

int udb__key_after(udb_buf *last, const MDB_val *k)
{
    if (last->len) {
        size_t n = last->len < k->mv_size ? last->len : k->mv_size;
        int d = memcmp(k->mv_data, last->p, n);
        if (d < 0 || (d == 0 && k->mv_size <= last->len))
            return UDB_ECORRUPT;
    }
    last->len = 0;
    udb__buf_put(last, k->mv_data, k->mv_size);
    return last->oom ? UDB_ENOMEM : 0;
}

int udb__each_from(MDB_txn *txn, MDB_dbi dbi, const MDB_val *after,
                   int (*fn)(void *ctx, const MDB_val *k, const MDB_val *v), void *ctx)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc)
        return rc;
    udb_buf last = {0};
    MDB_val k, v;
    if (after && after->mv_size) {
        udb__buf_put(&last, after->mv_data, after->mv_size);   /* entries after it */
        if (last.oom) {
            mdb_cursor_close(cur);
            return UDB_ENOMEM;
        }
        k.mv_size = last.len;
        k.mv_data = last.p;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc == 0 && k.mv_size == last.len && memcmp(k.mv_data, last.p, last.len) == 0)
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    } else {
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    }
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (!udb__sane_entry(&k, &v) || (rc = udb__key_after(&last, &k))) {
            rc = rc ? rc : UDB_ECORRUPT;
            break;
        }
        if ((rc = fn(ctx, &k, &v)))
            break;
    }
    mdb_cursor_close(cur);
    udb__buf_free(&last);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int udb__each(MDB_txn *txn, MDB_dbi dbi, int (*fn)(void *ctx, const MDB_val *k, const MDB_val *v),
              void *ctx)
{
    return udb__each_from(txn, dbi, NULL, fn, ctx);
}
