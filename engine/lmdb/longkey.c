/*
 * longkey.c -- keys of any length on LMDB's 511-byte key limit.  The layout
 * is described in longkey.h.  Short keys, the common case, go straight to
 * LMDB: one length comparison is all they pay.
 */
#include <stdint.h>
#include <string.h>

#include "longkey.h"
#include "uniqdb.h"

static uint32_t get_be32(const unsigned char *p)
{
    return (uint32_t)udb__get_be(p, 4);
}

/* Split a long-form value into the stored value and the key's tail. */
static int split(MDB_val *val, MDB_val *tail, const MDB_val *rv)
{
    const unsigned char *p = rv->mv_data;
    if (rv->mv_size < 4)
        return UDB_ECORRUPT;
    size_t n = get_be32(p + rv->mv_size - 4);
    if (n == 0 || n > rv->mv_size - 4)
        return UDB_ECORRUPT;
    tail->mv_size = n;
    tail->mv_data = (void *)(p + rv->mv_size - 4 - n);
    val->mv_size = rv->mv_size - 4 - n;
    val->mv_data = rv->mv_data;
    return 0;
}

int udb__lk_decode(MDB_val *key, MDB_val *val, const MDB_val *rk, const MDB_val *rv,
                   udb_buf *scratch)
{
    if (rk->mv_size <= UDB_KEY_INLINE) {
        *key = *rk;
        *val = *rv;
        return 0;
    }
    MDB_val tail;
    if (rk->mv_size != UDB_KEY_LONG || split(val, &tail, rv))
        return UDB_ECORRUPT;
    scratch->len = 0;
    udb__buf_put(scratch, rk->mv_data, UDB_KEY_INLINE);
    udb__buf_put(scratch, tail.mv_data, tail.mv_size);
    if (scratch->oom)
        return UDB_ENOMEM;
    key->mv_size = scratch->len;
    key->mv_data = scratch->p;
    return 0;
}

/* The long-form entry of key: its raw key into raw, its value into *val.
 * MDB_NOTFOUND if there is none. */
static int find_long(unsigned char raw[UDB_KEY_LONG], MDB_val *val, MDB_txn *txn, MDB_dbi dbi,
                     const MDB_val *key)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc)
        return rc;
    const unsigned char *kp = key->mv_data;
    size_t tail_len = key->mv_size - UDB_KEY_INLINE;
    memcpy(raw, kp, UDB_KEY_INLINE);
    memset(raw + UDB_KEY_INLINE, 0, 8);
    MDB_val k = {UDB_KEY_LONG, raw}, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != UDB_KEY_LONG || memcmp(k.mv_data, kp, UDB_KEY_INLINE) != 0) {
            rc = MDB_NOTFOUND;   /* past the group */
            break;
        }
        MDB_val stored, tail;
        if (split(&stored, &tail, &v))
            continue;   /* damaged: never a match (udb_check reports it) */
        if (tail.mv_size == tail_len && memcmp(tail.mv_data, kp + UDB_KEY_INLINE, tail_len) == 0) {
            memcpy(raw, k.mv_data, UDB_KEY_LONG);
            *val = stored;
            break;
        }
    }
    mdb_cursor_close(cur);
    return rc;
}

int udb__lk_get(MDB_txn *txn, MDB_dbi dbi, const MDB_val *key, MDB_val *val)
{
    if (key->mv_size <= UDB_KEY_INLINE)
        return mdb_get(txn, dbi, (MDB_val *)key, val);
    unsigned char raw[UDB_KEY_LONG];
    return find_long(raw, val, txn, dbi, key);
}

/* Write val plus key's tail under raw key rk (LMDB reserves the space). */
static int put_raw(MDB_txn *txn, MDB_dbi dbi, MDB_val *rk, const MDB_val *key,
                   const MDB_val *val)
{
    size_t tail_len = key->mv_size - UDB_KEY_INLINE;
    if (tail_len > UINT32_MAX || val->mv_size > SIZE_MAX - tail_len - 4)
        return MDB_BAD_VALSIZE;
    MDB_val v = {val->mv_size + tail_len + 4, NULL};
    int rc = mdb_put(txn, dbi, rk, &v, MDB_RESERVE);
    if (rc)
        return rc;
    unsigned char *p = v.mv_data;
    if (val->mv_size)
        memcpy(p, val->mv_data, val->mv_size);
    memcpy(p + val->mv_size, (const unsigned char *)key->mv_data + UDB_KEY_INLINE, tail_len);
    for (int i = 0; i < 4; i++)
        p[val->mv_size + tail_len + (size_t)i] = (unsigned char)(tail_len >> (24 - 8 * i));
    return 0;
}

/* FNV-1a: it only spreads the entries of a group over slots. */
static uint64_t slot_of(const MDB_val *key)
{
    uint64_t h = 14695981039346656037ull;
    const unsigned char *p = key->mv_data;
    for (size_t i = 0; i < key->mv_size; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

int udb__lk_put(MDB_txn *txn, MDB_dbi dbi, const MDB_val *key, MDB_val *val, unsigned flags)
{
    if (key->mv_size <= UDB_KEY_INLINE)
        return mdb_put(txn, dbi, (MDB_val *)key, val, flags);
    unsigned char raw[UDB_KEY_LONG];
    MDB_val old, rk = {UDB_KEY_LONG, raw};
    int rc = find_long(raw, &old, txn, dbi, key);
    if (rc == 0) {
        if (flags & MDB_NOOVERWRITE) {
            *val = old;
            return MDB_KEYEXIST;
        }
        return put_raw(txn, dbi, &rk, key, val);
    }
    if (rc != MDB_NOTFOUND)
        return rc;
    /* a free slot: the key's hash, or the next free number after it */
    for (uint64_t slot = slot_of(key);; slot++) {
        MDB_val probe;
        udb__put_be64(raw + UDB_KEY_INLINE, slot);
        rc = mdb_get(txn, dbi, &rk, &probe);
        if (rc == MDB_NOTFOUND)
            return put_raw(txn, dbi, &rk, key, val);
        if (rc)
            return rc;
    }
}

int udb__lk_del(MDB_txn *txn, MDB_dbi dbi, const MDB_val *key)
{
    if (key->mv_size <= UDB_KEY_INLINE)
        return mdb_del(txn, dbi, (MDB_val *)key, NULL);
    unsigned char raw[UDB_KEY_LONG];
    MDB_val old, rk = {UDB_KEY_LONG, raw};
    int rc = find_long(raw, &old, txn, dbi, key);
    return rc ? rc : mdb_del(txn, dbi, &rk, NULL);
}

int udb__lk_relocate(MDB_txn *txn, MDB_dbi dbi, const MDB_val *rk)
{
    udb_buf key = {0}, val = {0};
    MDB_val v;
    int rc = mdb_get(txn, dbi, (MDB_val *)rk, &v);
    if (rc)
        return rc;
    /* copies: the delete below may move the pages they point into */
    udb__buf_put(&key, rk->mv_data, rk->mv_size);
    udb__buf_put(&val, v.mv_data, v.mv_size);
    if (key.oom || val.oom) {
        rc = UDB_ENOMEM;
        goto out;
    }
    MDB_val k = {key.len, key.p}, nv = {val.len, val.p};
    if ((rc = mdb_del(txn, dbi, &k, NULL)) == 0)
        rc = udb__lk_put(txn, dbi, &k, &nv, MDB_NOOVERWRITE);
out:
    udb__buf_free(&key);
    udb__buf_free(&val);
    return rc;
}
