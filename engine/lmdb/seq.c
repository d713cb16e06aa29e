/*
 * seq.c -- named sequences in LMDB, stored in "__seq" as 8-byte big-endian
 * counters: the backend's half (seq.h); the public calls are
 * core/sequence.c's.  Since LMDB has one writer at a time, two writers
 * never see the same value.
 */
#include <inttypes.h>
#include <string.h>

#include "buf.h"
#include "env.h"
#include "error.h"
#include "layout.h"
#include "seq.h"
#include "txn.h"

int udb__seq_peek(uint64_t *out, udb_txn *txn, const char *name)
{
    return udb__seq_find(out, NULL, txn, name);
}

int udb__seq_find(uint64_t *out, bool *found, udb_txn *txn, const char *name)
{
    MDB_val k = {strlen(name), (void *)name}, v;
    int rc = mdb_get(udb__txn_mdb(txn), udb__env_seq_dbi(udb__txn_env(txn)), &k, &v);
    *out = 0;
    if (found)
        *found = rc != MDB_NOTFOUND;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return udb__mdb_err(txn, rc, "reading a sequence");
    if (v.mv_size != 8)
        return udb__err(txn, UDB_ECORRUPT, "sequence \"%s\" is damaged", name);
    *out = udb__get_be(v.mv_data, 8);
    return 0;
}

int udb__seq_store(udb_txn *txn, const char *name, uint64_t val)
{
    unsigned char b[8];
    udb__put_be64(b, val);
    MDB_val k = {strlen(name), (void *)name}, v = {8, b};
    int rc = mdb_put(udb__txn_mdb(txn), udb__env_seq_dbi(udb__txn_env(txn)), &k, &v, 0);
    return rc ? udb__mdb_err(txn, rc, "writing a sequence") : 0;
}

int udb__seq_each(udb_txn *txn, udb_seq_fn fn, void *ctx)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(udb__txn_mdb(txn), udb__env_seq_dbi(udb__txn_env(txn)), &cur);
    if (rc)
        return udb__mdb_err(txn, rc, "opening a cursor");
    MDB_val k, v;
    char name[UDB_MAX_SEQ_NAME + 1];
    udb_buf last = {0};
    size_t good = 0;
    bool stopped = false;     /* by the check or by fn: rc is theirs */
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT), good++) {
        /* a damaged page: garbage sizes, or keys that come round again */
        if (!k.mv_data || k.mv_size > UDB_MAX_SEQ_NAME || v.mv_size != 8 ||
            udb__key_after(&last, &k)) {
            rc = udb__err(txn, UDB_ECORRUPT, "sequence entry %zu in name order is damaged; "
                          "run uniqdb check", good + 1);
            stopped = true;
            break;
        }
        memcpy(name, k.mv_data, k.mv_size);
        name[k.mv_size] = 0;
        if ((rc = fn(name, udb__get_be(v.mv_data, 8), ctx))) {
            stopped = true;
            break;
        }
    }
    mdb_cursor_close(cur);
    udb__buf_free(&last);
    if (rc == MDB_NOTFOUND)
        return 0;
    return stopped ? rc : udb__mdb_err(txn, rc, "reading the sequences");
}
