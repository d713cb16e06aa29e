/*
 * front.c -- what the core keeps per transaction, whatever stores the
 * records (backend.h): the message, the type and index lookups that word
 * their errors, the bytes handed to the caller, the conflict detail.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "keycodec.h"
#include "mpack.h"

void udb__front_init(udb_txfront *f, const udb_backend *be, bool rdonly)
{
    f->be = be;
    f->rdonly = rdonly;
}

void udb__front_free(udb_txfront *f)
{
    udb__arena_free(&f->arena);
    udb__buf_free(&f->msg);
    udb__conflicts_free(&f->conflicts);
}

const char *udb_errmsg(const udb_txn *txn)
{
    if (!txn || !udb__cfront(txn)->msg.p)
        return "";
    return (const char *)udb__cfront(txn)->msg.p;
}

void udb__clear(udb_txn *txn)
{
    udb_txfront *f = udb__front(txn);
    f->msg.len = 0;
    if (f->msg.p)
        f->msg.p[0] = 0;
    f->msg.oom = false;
    f->conflicts.has = false;
}

int udb__err(udb_txn *txn, int rc, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    udb_txfront *f = udb__front(txn);
    f->msg.len = 0;
    f->msg.oom = false;
    udb__buf_put(&f->msg, tmp, strlen(tmp));
    if (rc == UDB_ERETRY)
        f->must_retry = true;
    return rc;
}

int udb__out_record(udb_val *out, udb_txn *txn, const udb_type *t, const void *key,
                    size_t keylen, const void *rec, size_t reclen)
{
    const unsigned char *p = rec;
    const char *why = NULL;
    if (reclen > UDB_MAX_RECORD)
        why = "larger than the 4 MiB record limit";
    else if (!p || reclen == 0)
        why = "empty";
    else if (!(*p >= 0x80 && *p <= 0x8f) && *p != 0xde && *p != 0xdf)
        why = "not a msgpack map";
    else
        udb__mp_check(p, reclen, UDB_MAX_DEPTH, &why);
    if (!why)
        return udb__out_bytes(out, txn, rec, reclen);
    udb_buf k = {0};
    udb__tk_render(&k, key, keylen);
    udb__err(txn, UDB_ECORRUPT, "type \"%s\": the stored record of key %s is damaged (%zu "
             "bytes: %s); run uniqdb check", t->name, k.p && !k.oom ? (char *)k.p : "?",
             reclen, why);
    udb__buf_free(&k);
    return UDB_ECORRUPT;
}

int udb__txn_type(udb_type **out, udb_txn *txn, const char *type, bool write)
{
    if (!txn)
        return UDB_EINVAL;
    udb__clear(txn);
    if (!type)
        return udb__err(txn, UDB_EINVAL, "no record type given");
    const udb_schema *s = udb__txn_schema(txn);
    if (write && udb__txn_rdonly(txn))
        return udb__err(txn, UDB_EREADONLY, "cannot write in a read-only transaction");
    if (!s)
        return udb__err(txn, UDB_EINVAL, "no schema has been applied to this database");
    udb_type *t = udb__schema_type(s, type);
    if (!t) {
        udb_buf names = {0};
        for (size_t i = 0; i < s->ntypes; i++)
            udb__buf_printf(&names, "%s%s", i ? ", " : "", s->types[i].name);
        int rc = udb__err(txn, UDB_EINVAL, "unknown record type \"%s\" (this database has: %s)",
                          type, names.oom || !names.p ? "?" : (char *)names.p);
        udb__buf_free(&names);
        return rc;
    }
    *out = t;
    return 0;
}

int udb__err_index(udb_txn *txn, const udb_type *t, const char *index, bool unique)
{
    udb_buf names = {0};
    size_t n = 0;
    for (size_t x = 0; x < t->nidx; x++)
        if (t->idx[x].unique || !unique)
            udb__buf_printf(&names, "%s%s", n++ ? ", " : "", t->idx[x].name);
    const char *list = names.oom || !names.p ? "?" : (char *)names.p;
    int rc;
    index = udb__index_name(t, index);
    if (unique && udb__type_index(t, index))
        rc = udb__err(txn, UDB_EINVAL, "index \"%s.%s\" is not unique (unique indexes of "
                      "\"%s\": %s)", t->name, index, t->name, list);
    else
        rc = udb__err(txn, UDB_EINVAL, "type \"%s\" has no %sindex \"%s\" (its %sindexes: %s)",
                      t->name, unique ? "unique " : "", index ? index : "", unique ? "unique " : "",
                      list);
    udb__buf_free(&names);
    return rc;
}

int udb__out_bytes(udb_val *out, udb_txn *txn, const void *p, size_t n)
{
    if (!out)
        return 0;
    if (udb__txn_rdonly(txn)) {
        out->data = p;
        out->size = n;
        return 0;
    }
    void *copy = udb__arena_dup(&udb__front(txn)->arena, p, n);
    if (!copy)
        return udb__err(txn, UDB_ENOMEM, "out of memory copying a record");
    out->data = copy;
    out->size = n;
    return 0;
}

int udb_types(const char *const **out, size_t *count, udb_txn *txn)
{
    if (!out || !count || !txn)
        return UDB_EINVAL;
    udb__clear(txn);
    const udb_schema *s = udb__txn_schema(txn);
    if (!s) {
        *out = NULL;
        *count = 0;
        return 0;
    }
    *out = s->type_names;
    *count = s->ntypes;
    return 0;
}

const udb_conflict *udb_conflict_info(const udb_txn *txn)
{
    return txn && udb__cfront(txn)->conflicts.has ? &udb__cfront(txn)->conflicts.conflict : NULL;
}

void udb__conflict_begin(udb_txn *txn, const udb_type *t)
{
    udb__conflicts_begin(&udb__front(txn)->conflicts, t);
}

int udb__conflict_add(udb_txn *txn, const udb_index *ix, const msgpack_object *const *vals,
                      const void *pk, size_t pklen)
{
    return udb__conflicts_add(&udb__front(txn)->conflicts, ix, vals, pk, pklen);
}

int udb__conflict_finish(udb_txn *txn)
{
    udb_buf m = {0};
    int rc = udb__conflicts_finish(&udb__front(txn)->conflicts, &m);
    if (rc)
        rc = udb__err(txn, rc, "%s", m.p ? (const char *)m.p : "duplicate key");
    udb__buf_free(&m);
    return rc;
}
