/*
 * sequence.c -- named sequences as the public calls see them (udb_seq_*):
 * names, exhaustion, and an auto key's sequence never set below the keys
 * it handed out.  Where a sequence is kept is the backend's (backend.h).
 *
 * A sequence advances inside the caller's write transaction, so the number
 * and the record that carries it commit together; an aborted transaction
 * takes its step back with it, so committed values have no gaps.
 */
#include <inttypes.h>
#include <string.h>

#include "backend.h"
#include "keycodec.h"

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

int udb_seq_next(uint64_t *out, udb_txn *txn, const char *name)
{
    int rc = name_check(txn, name, true);
    if (rc)
        return rc;
    const udb_backend *be = udb__txn_backend(txn);
    uint64_t cur;
    if ((rc = be->seq_peek(&cur, NULL, txn, name)))
        return rc;
    if (cur == UINT64_MAX)
        return udb__err(txn, UDB_EEXHAUSTED, "sequence \"%s\" is exhausted: it is at "
                        "%" PRIu64 ", the largest value", name, cur);
    if ((rc = be->seq_store(txn, name, cur + 1)))
        return rc;
    if (out)
        *out = cur + 1;
    return 0;
}

int udb_seq_get(uint64_t *out, udb_txn *txn, const char *name)
{
    int rc = name_check(txn, name, false);
    uint64_t cur;
    bool found;
    if (rc || (rc = udb__txn_backend(txn)->seq_peek(&cur, &found, txn, name)))
        return rc;
    if (!found)
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
        udb_val k;
        int rc = udb__txn_backend(txn)->last_key(&k, txn, t);
        if (rc == 0) {
            const unsigned char *p = k.data;
            udb_telem e;
            udb_buf none = {0};
            rc = udb__tk_decode(&e, &none, &p, p + k.size);
            udb__buf_free(&none);
            if (rc == 0 && e.kind == UDB_TK_UINT)
                *out = e.v.u;
            else
                rc = udb__err(txn, UDB_ECORRUPT, "type \"%s\": a key is damaged", t->name);
        } else if (rc == UDB_ENOTFOUND) {
            rc = 0;
        }
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
    return udb__txn_backend(txn)->seq_store(txn, name, value);
}

int udb_seq_foreach(udb_txn *txn, udb_seq_fn fn, void *ctx)
{
    if (!txn || !fn)
        return UDB_EINVAL;
    udb__clear(txn);
    return udb__txn_backend(txn)->seq_each(txn, fn, ctx);
}
