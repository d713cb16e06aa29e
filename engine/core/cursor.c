/*
 * cursor.c -- the public scan calls (udb_scan, udb_scan_range, udb_cursor_*)
 * apart from storage (cursor.h): arguments, the type and index, bounds and
 * `after` encoded as the index's keys are, and positions (sort keys) as
 * msgpack.  The walk is the backend's (backend.h, "scans"): the LMDB
 * backend's in lmdb/scan.c, PostgreSQL's in pg/pgscan.c.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cursor.h"
#include "index.h"
#include "keycodec.h"
#include "mpack.h"

/* The field of value i of ix's sort key: its fields, then the primary key. */
static const udb_field *sort_field(const udb_type *t, const udb_index *ix, size_t i)
{
    return &t->fields[i < ix->nfields ? ix->fields[i] : t->key];
}

/* Encode v, a msgpack array (untrusted) of values for the first min..max
 * fields of ix's sort key, as a tuple appended to b.  what names v in the
 * message.  UDB_EBADRECORD (not such an array, values of wrong types),
 * UDB_ENOMEM. */
static int encode_values(udb_buf *b, udb_txn *txn, const udb_type *t, const udb_index *ix,
                         udb_val v, size_t min, size_t max, const char *what)
{
    msgpack_object vals[UDB_MAX_IDX_FIELDS + 1];
    size_t nv = 0;
    const char *why = NULL;
    udb_buf names = {0}, msg = {0};
    int rc = udb__mp_scalars(vals, max, &nv, true, v.data, v.size, &why);
    if (rc == 0 && nv < min) {
        rc = UDB_EBADRECORD;
        why = "too few values";
    }
    if (rc) {
        for (size_t i = 0; i < max; i++)
            udb__buf_printf(&names, "%s%s%s", i ? ", " : "",
                            i == ix->nfields ? "then the primary key " : "",
                            sort_field(t, ix, i)->name);
        udb__err(txn, rc, "%s of \"%s.%s\" must be a msgpack array of %s%zu values (%s): %s",
                 what, t->name, ix->name, min == max ? "" : "at most ", max,
                 names.p && !names.oom ? (char *)names.p : "", why);
        goto out;
    }
    for (size_t i = 0; i < nv; i++) {
        /* an index field through its collation (nocase bounds fold as the entries
           did); the primary key after it as it is */
        rc = i < ix->nfields ? udb__idx_field_key(b, t, ix, i, &vals[i], &msg)
                             : udb__field_key(b, t, sort_field(t, ix, i), &vals[i], &msg);
        if (rc) {
            if (rc == UDB_ENOMEM)
                udb__err(txn, rc, "out of memory");
            else
                udb__err(txn, rc, "%s of \"%s.%s\", value %zu: %s", what, t->name, ix->name,
                         i + 1, msg.p && !msg.oom ? (char *)msg.p : "bad value");
            goto out;
        }
    }
out:
    udb__buf_free(&names);
    udb__buf_free(&msg);
    return rc;
}

/* The common part of udb_scan (prefix) and udb_scan_range (r), both may be
 * NULL.  fn names the call in messages. */
static int open_scan(udb_cursor **out, udb_txn *txn, const char *type, const char *index,
                     const udb_val *prefix, const udb_range *r, const char *fn)
{
    udb_type *t;
    int rc = udb__txn_type(&t, txn, type, false);
    if (rc)
        return rc;
    if (!out)
        return udb__err(txn, UDB_EINVAL, "%s: out is required", fn);
    udb_index *ix = udb__type_index(t, index);
    if (!ix)
        return udb__err_index(txn, t, index, false);
    if (r && (r->version < 1 || r->version > UDB_RANGE_VERSION))
        return udb__err(txn, UDB_EINVAL, "%s: range version %u is not one this library knows "
                        "(1 to %d): start from UDB_RANGE_INIT", fn, r->version,
                        UDB_RANGE_VERSION);
    unsigned known = UDB_LO_EXCL | UDB_HI_EXCL | UDB_REVERSE;
    if (r && (r->flags & ~known))
        return udb__err(txn, UDB_EINVAL, "%s: unknown range flags 0x%x (UDB_LO_EXCL, "
                        "UDB_HI_EXCL and UDB_REVERSE are 0x%x)", fn, r->flags & ~known, known);
    const udb_backend *be = udb__txn_backend(txn);
    if (!be->scan_open)
        return udb__err(txn, UDB_EINVAL, "%s: the %s backend has no scans", fn, be->name);
    udb_cursor *cur = calloc(1, be->scan_size());
    if (!cur)
        return udb__err(txn, UDB_ENOMEM, "out of memory");
    udb_curfront *c = udb__curfront(cur);
    c->be = be;
    c->txn = txn;
    c->t = t;
    c->ix = ix;
    if (prefix && prefix->data) {
        /* a prefix is the range from it to it, both included */
        if ((rc = encode_values(&c->lo, txn, t, ix, *prefix, 0, ix->nfields, "scan prefix")))
            goto fail;
        udb__buf_put(&c->hi, c->lo.p, c->lo.len);
    }
    if (r) {
        if (r->lo.data &&
            (rc = encode_values(&c->lo, txn, t, ix, r->lo, 0, ix->nfields, "range lo")))
            goto fail;
        if (r->hi.data &&
            (rc = encode_values(&c->hi, txn, t, ix, r->hi, 0, ix->nfields, "range hi")))
            goto fail;
        size_t nkey = ix->nfields + !ix->is_pk;
        if (r->after.data) {
            if ((rc = encode_values(&c->after, txn, t, ix, r->after, nkey, nkey,
                                    "range after")))
                goto fail;
            const unsigned char *p = c->after.p, *end = p + c->after.len;
            for (size_t i = 0; i < ix->nfields; i++)
                if (udb__tk_skip(&p, end)) {   /* we encoded it: cannot fail */
                    rc = udb__err(txn, UDB_EINVAL, "%s: bad after", fn);
                    goto fail;
                }
            c->after_fields = (size_t)(p - c->after.p);
        }
        c->lo_excl = r->flags & UDB_LO_EXCL;
        c->hi_excl = r->flags & UDB_HI_EXCL;
        c->reverse = r->flags & UDB_REVERSE;
        c->limit = r->limit;
    }
    if (c->hi.oom) {
        rc = udb__err(txn, UDB_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = be->scan_open(cur)))
        goto fail;
    *out = cur;
    return 0;
fail:
    udb_cursor_close(cur);
    return rc;
}

int udb_scan(udb_cursor **out, udb_txn *txn, const char *type, const char *index,
             const void *prefix, size_t len)
{
    udb_val p = {prefix, len};
    return open_scan(out, txn, type, index, &p, NULL, "udb_scan");
}

int udb_scan_range(udb_cursor **out, udb_txn *txn, const char *type, const char *index,
                   const udb_range *range)
{
    return open_scan(out, txn, type, index, NULL, range, "udb_scan_range");
}

int udb_cursor_next(udb_val *out, udb_cursor *c)
{
    if (!c)
        return UDB_EINVAL;
    return udb__curfront(c)->be->scan_next(out, c);
}

int udb_cursor_skip(uint64_t *skipped, udb_cursor *c, uint64_t n)
{
    if (!c)
        return UDB_EINVAL;
    return udb__curfront(c)->be->scan_skip(skipped, c, n);
}

int udb_cursor_key(udb_val *out, udb_cursor *cur)
{
    if (!cur || !out)
        return UDB_EINVAL;
    udb_curfront *c = udb__curfront(cur);
    if (!c->pos.len)
        return udb__err(c->txn, UDB_ENOTFOUND, "udb_cursor_key: the scan of \"%s.%s\" has "
                        "handed out no entry yet", c->t->name, c->ix->name);
    size_t n = c->ix->nfields + !c->ix->is_pk;
    c->keyout.len = 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &c->keyout, udb__buf_sbuffer_write);
    msgpack_pack_array(&pk, n);
    const unsigned char *p = c->pos.p, *end = p + c->pos.len;
    for (size_t i = 0; i < n; i++)
        if (udb__tk_to_msgpack(&pk, &p, end) || (i + 1 == n && p != end))
            return udb__err(c->txn, UDB_ECORRUPT, "%s \"%s%s%s\" has a damaged entry",
                            c->ix->is_pk ? "type" : "index", c->t->name,
                            c->ix->is_pk ? "" : ".", c->ix->is_pk ? "" : c->ix->name);
    if (c->keyout.oom)
        return udb__err(c->txn, UDB_ENOMEM, "out of memory");
    out->data = c->keyout.p;
    out->size = c->keyout.len;
    return 0;
}

int udb__cursor_sort_key(udb_curfront *c, bool *applies, const msgpack_object *const *vals)
{
    int rc = udb__idx_key(&c->cand, applies, c->t, c->ix, vals);
    if (rc || !*applies || c->ix->is_pk)
        return rc;
    bool in;
    if ((rc = udb__idx_key(&c->scratch, &in, c->t, &c->t->idx[0], vals)))
        return rc;
    udb__buf_put(&c->cand, c->scratch.p, c->scratch.len);
    return c->cand.oom ? UDB_ENOMEM : 0;
}

void udb_cursor_close(udb_cursor *cur)
{
    if (!cur)
        return;
    udb_curfront *c = udb__curfront(cur);
    c->be->scan_close(cur);
    udb__buf_free(&c->lo);
    udb__buf_free(&c->hi);
    udb__buf_free(&c->after);
    udb__buf_free(&c->cand);
    udb__buf_free(&c->pos);
    udb__buf_free(&c->keyout);
    udb__buf_free(&c->scratch);
    free(cur);
}
