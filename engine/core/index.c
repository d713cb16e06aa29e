/*
 * index.c -- what a record contributes to each index.
 *
 * One function decides, for a record and an index, whether the record is in
 * it and under which key.  Insert, update, delete, check and schema changes
 * all ask it, so they cannot disagree.  SQL's rules: a partial index holds a
 * record only when its predicate is true; every other index holds every
 * record, NULLs (missing fields) first, so a scan of an index sees the same
 * records as SQL's ORDER BY over its fields.  A unique index with NULLs
 * distinct (SQL's default) must never see a conflict between entries that
 * hold a NULL: those entries carry the primary key after the fields, as
 * non-unique entries do, which keeps them apart and keeps every entry
 * without a NULL an exact-match key for the uniqueness check.
 */
#include "index.h"
#include "keycodec.h"
#include "record.h"

static void encode_value(udb_buf *key, const udb_field *f, const msgpack_object *o)
{
    if (f->type == UDB_F_FLOAT && o->type != MSGPACK_OBJECT_NIL)
        udb__tk_float(key, udb__as_double(o));
    else
        udb__tk_object(key, o);
}

int udb__idx_key(udb_buf *key, bool *applies, const udb_type *t, const udb_index *ix,
                 const msgpack_object *const *vals)
{
    key->len = 0;
    *applies = false;
    if (ix->pred.nterms && !udb__pred_eval(&ix->pred, vals))
        return 0;
    for (size_t i = 0; i < ix->nfields; i++) {
        const msgpack_object *o = vals[ix->fields[i]];
        if (!o) {
            if (ix->is_pk)
                return UDB_EBADRECORD;
            udb__tk_nil(key);
            continue;
        }
        encode_value(key, &t->fields[ix->fields[i]], o);
    }
    if (key->oom)
        return UDB_ENOMEM;
    *applies = true;
    return 0;
}

int udb__field_key(udb_buf *key, const udb_type *t, const udb_field *f,
                   const msgpack_object *o, udb_buf *msg)
{
    if (o->type == MSGPACK_OBJECT_NIL) {
        udb__tk_nil(key);
        return key->oom ? UDB_ENOMEM : 0;
    }
    /* a lookup string needs no UTF-8 check: an invalid one is never stored,
       so it is simply not found */
    if (f->type == UDB_F_STR && o->type == MSGPACK_OBJECT_STR) {
        udb__tk_str(key, UDB_TK_STR, o->via.str.ptr, o->via.str.size);
        return key->oom ? UDB_ENOMEM : 0;
    }
    int rc = udb__check_value(t, f, o, msg);
    if (rc)
        return rc;
    encode_value(key, f, o);
    return key->oom ? UDB_ENOMEM : 0;
}

int udb__idx_entry(udb_buf *key, bool *applies, const udb_type *t, const udb_index *ix,
                   const msgpack_object *const *vals, const void *pk, size_t pklen)
{
    int rc = udb__idx_key(key, applies, t, ix, vals);
    if (rc || !*applies || (ix->unique && !udb__idx_exempt(ix, vals)))
        return rc;
    udb__buf_put(key, pk, pklen);   /* entries that may repeat are made unique by the key */
    return key->oom ? UDB_ENOMEM : 0;
}

bool udb__idx_exempt(const udb_index *ix, const msgpack_object *const *vals)
{
    if (!ix->unique || ix->nulls_not_distinct || ix->is_pk)
        return false;
    for (size_t i = 0; i < ix->nfields; i++)
        if (!vals[ix->fields[i]])
            return true;
    return false;
}
