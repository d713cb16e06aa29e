/*
 * seq.c -- named sequences, stored in "__seq" as 8-byte big-endian counters.
 *
 * A sequence advances inside the caller's write transaction, so the number
 * and the record that carries it commit together; an aborted transaction
 * takes its step back with it, so committed values have no gaps.  Since LMDB
 * has one writer at a time, two writers never see the same value.
 */
#include <inttypes.h>
#include <string.h>

#include "buf.h"
#include "env.h"
#include "error.h"
#include "keycodec.h"
#include "layout.h"
#include "seq.h"
#include "txn.h"

static int name_check(udb_txn *txn, const char *name, bool write)
{
    if (!txn)
        return UDB_EINVAL;
    udb__clear(txn);
    if (!name || !*name || strlen(name) > UDB_MAX_SEQ_NAME)
        return udb__err(txn, UDB_EINVAL, "a sequence name must have 1 to %d bytes",
                        UDB_MAX_SEQ_NAME);
    if (write && udb__txn_rdonly(txn))
        return udb__err(txn, UDB_EREADONLY, "cannot advance a sequence in a read-only "
                        "transaction");
    return 0;
}

int udb__seq_peek(uint64_t *out, udb_txn *txn, const char *name)
{
    MDB_val k = {strlen(name), (void *)name}, v;
    int rc = mdb_get(udb__txn_mdb(txn), udb__env_seq_dbi(udb__txn_env(txn)), &k, &v);
    *out = 0;
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

int udb_seq_next(uint64_t *out, udb_txn *txn, const char *name)
{
    int rc = name_check(txn, name, true);
    uint64_t cur;
    if (rc || (rc = udb__seq_peek(&cur, txn, name)))
        return rc;
    if (cur == UINT64_MAX)
        return udb__err(txn, UDB_EEXHAUSTED, "sequence \"%s\" is exhausted: it is at "
                        "%" PRIu64 ", the largest value", name, cur);
    if ((rc = udb__seq_store(txn, name, cur + 1)))
        return rc;
    if (out)
        *out = cur + 1;
    return 0;
}

int udb_seq_get(uint64_t *out, udb_txn *txn, const char *name)
{
    int rc = name_check(txn, name, false);
    uint64_t cur;
    if (rc || (rc = udb__seq_peek(&cur, txn, name)))
        return rc;
    MDB_val k = {strlen(name), (void *)name}, v;
    if (cur == 0 && mdb_get(udb__txn_mdb(txn), udb__env_seq_dbi(udb__txn_env(txn)), &k, &v) == MDB_NOTFOUND)
        return udb__err(txn, UDB_ENOTFOUND, "sequence \"%s\" was never advanced", name);
    if (out)
        *out = cur;
    return 0;
}

/* The largest key of the type whose auto key uses sequence `name` (0 if
 * none, or no records).  A sequence set below it would hand out keys that
 * are taken -- exactly what udb_check reports as damage. */
static int auto_key_floor(uint64_t *out, udb_txn *txn, const char *name, const char **type)
{
    *out = 0;
    const udb_schema *s = udb__txn_schema(txn);
    for (size_t i = 0; s && i < s->ntypes; i++) {
        const udb_type *t = &s->types[i];
        if (!t->seqname || strcmp(t->seqname, name) != 0)
            continue;
        MDB_cursor *cur;
        MDB_val k, v;
        int rc = mdb_cursor_open(udb__txn_mdb(txn), t->dbi, &cur);
        if (rc)
            return udb__mdb_err(txn, rc, "opening a cursor");
        rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
        if (rc == 0) {
            const unsigned char *p = k.mv_data;
            udb_telem e;
            udb_buf none = {0};
            rc = udb__tk_decode(&e, &none, &p, p + k.mv_size);
            udb__buf_free(&none);
            if (rc == 0 && e.kind == UDB_TK_UINT)
                *out = e.v.u;
            else
                rc = udb__err(txn, UDB_ECORRUPT, "type \"%s\": a key is damaged", t->name);
        } else if (rc == MDB_NOTFOUND) {
            rc = 0;
        } else {
            rc = udb__mdb_err(txn, rc, "reading keys");
        }
        mdb_cursor_close(cur);
        *type = t->name;
        return rc;
    }
    return 0;
}

int udb_seq_set(udb_txn *txn, const char *name, uint64_t value)
{
    int rc = name_check(txn, name, true);
    uint64_t floor;
    const char *type = NULL;
    if (rc || (rc = auto_key_floor(&floor, txn, name, &type)))
        return rc;
    if (value < floor)
        return udb__err(txn, UDB_EINVAL, "sequence \"%s\" is the auto key of type \"%s\", "
                        "whose largest key is %" PRIu64 "; it cannot be set below that",
                        name, type, floor);
    return udb__seq_store(txn, name, value);
}

int udb_seq_foreach(udb_txn *txn, udb_seq_fn fn,
                    void *ctx)
{
    if (!txn || !fn)
        return UDB_EINVAL;
    udb__clear(txn);
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
