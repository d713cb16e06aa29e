/*
 * scan.c -- ordered scans over a type's primary key or one of its indexes,
 * optionally restricted to a prefix of the index's fields.  The tuple key
 * encoding makes a prefix of values a prefix of bytes, so a scan is one
 * MDB_SET_RANGE and a walk forward while the prefix matches.
 */
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "keycodec.h"
#include "mpack.h"
#include "txn.h"

struct udb_cursor {
    udb_txn *txn;
    const udb_type *t;
    const udb_index *ix;
    MDB_cursor *mc;
    udb_buf prefix;
    bool started, done;
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
        udb__mdb_err(txn, rc, "opening a cursor");
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

int udb_cursor_next(udb_val *out, udb_cursor *c)
{
    if (!c)
        return UDB_EINVAL;
    udb_txn *txn = c->txn;
    if (c->done)
        return UDB_ENOTFOUND;
    MDB_val k = {c->prefix.len, c->prefix.p}, v;
    int rc;
    if (!c->started) {
        c->started = true;
        rc = c->prefix.len ? mdb_cursor_get(c->mc, &k, &v, MDB_SET_RANGE)
                           : mdb_cursor_get(c->mc, &k, &v, MDB_FIRST);
    } else {
        rc = mdb_cursor_get(c->mc, &k, &v, MDB_NEXT);
    }
    /* A byte prefix is not yet a tuple prefix: after a string or bytes element
       (which ends in 0x00) a following 0xFF means the element goes on (an
       escaped NUL), e.g. prefix ("a") vs key ("a\0", ...).  No type code is
       0xFF, and such keys sort after every real match, so the scan ends there. */
    if (rc == 0 && c->prefix.len && (k.mv_size < c->prefix.len ||
                                     memcmp(k.mv_data, c->prefix.p, c->prefix.len) != 0 ||
                                     (k.mv_size > c->prefix.len &&
                                      ((const unsigned char *)k.mv_data)[c->prefix.len] == 0xFF)))
        rc = MDB_NOTFOUND;
    if (rc == MDB_NOTFOUND) {
        c->done = true;
        return UDB_ENOTFOUND;
    }
    if (rc)
        return udb__mdb_err(txn, rc, "scanning");
    if (c->ix->is_pk)
        return udb__out(out, txn, &v);
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
    rc = mdb_get(udb__txn_mdb(txn), c->t->dbi, &pk, &rec);
    if (rc == MDB_NOTFOUND)
        return udb__err(txn, UDB_ECORRUPT, "index \"%s.%s\" points to a missing record",
                        c->t->name, c->ix->name);
    if (rc)
        return udb__mdb_err(txn, rc, "reading a record");
    return udb__out(out, txn, &rec);
}

void udb_cursor_close(udb_cursor *c)
{
    if (!c)
        return;
    if (c->mc)
        mdb_cursor_close(c->mc);
    udb__buf_free(&c->prefix);
    free(c);
}
