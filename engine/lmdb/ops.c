/*
 * ops.c -- the record operations: insert, get, find, update, delete and the
 * race-proof compound ones (insert_or_get, upsert, insert_first).
 *
 * Every write follows one shape: validate, compute every index key, check
 * every unique index, and only then write.  Because an LMDB write transaction
 * is the only writer of the database, nothing can slip in between the check
 * and the write -- that is the whole uniqueness guarantee.  A conflict writes
 * nothing and leaves the transaction usable.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "longkey.h"
#include "mpack.h"
#include "record.h"
#include "seq.h"
#include "txn.h"

/* A record with all its index keys computed. */
typedef struct prep {
    udb_rec rec;
    msgpack_object keyobj;     /* an auto key assigned here */
    bool auto_key;
    udb_buf keys;              /* every applicable index key, back to back */
    size_t *off, *len;
    bool *applies;
    size_t nidx;
} prep;

static void prep_init(prep *p)
{
    memset(p, 0, sizeof *p);
    udb__rec_init(&p->rec);
}

static void prep_free(prep *p)
{
    udb__rec_free(&p->rec);
    udb__buf_free(&p->keys);
    free(p->off);
    free(p->len);
    free(p->applies);
}

static MDB_val keyval(const prep *p, size_t i)
{
    MDB_val v = {p->len[i], p->keys.p + p->off[i]};
    return v;
}

static int parse_rec(udb_rec *r, udb_txn *txn, const udb_type *t, const void *buf, size_t len,
                     bool partial)
{
    if (!buf)
        return udb__err(txn, UDB_EINVAL, "no record given");
    udb_buf msg = {0};
    int rc = udb__rec_parse(r, t, buf, len, partial, &msg);
    if (rc)
        udb__err(txn, rc, "%s", msg.p ? (char *)msg.p : udb_strerror(rc));
    udb__buf_free(&msg);
    return rc;
}

/* Encode a caller's msgpack primary key. */
static int parse_key(udb_buf *out, udb_txn *txn, const udb_type *t, const void *key, size_t len)
{
    if (!key)
        return udb__err(txn, UDB_EINVAL, "no key given");
    msgpack_object o;
    size_t n;
    const char *why = NULL;
    udb_buf msg = {0};
    int rc = udb__mp_scalars(&o, 1, &n, false, key, len, &why);
    if (rc) {
        udb__err(txn, rc, "type \"%s\": a key is one value of the key field \"%s\" (%s), "
                 "not a map or array", t->name, t->fields[t->key].name,
                 udb__ftype_name(t->fields[t->key].type));
    } else if (o.type == MSGPACK_OBJECT_NIL) {
        rc = udb__err(txn, UDB_EBADRECORD, "type \"%s\": the key may not be nil", t->name);
    } else if ((rc = udb__field_key(out, t, &t->fields[t->key], &o, &msg))) {
        udb__err(txn, rc, "%s", msg.p ? (char *)msg.p : "bad key");
    }
    udb__buf_free(&msg);
    return rc;
}

/* Compute every index key of p->rec.  Assigns an auto key first if asked. */
static int prep_keys(prep *p, udb_txn *txn, const udb_type *t, bool assign_auto)
{
    const udb_field *kf = &t->fields[t->key];
    int rc;
    if (!p->rec.vals[t->key] && kf->autoinc) {
        if (!assign_auto)
            return udb__err(txn, UDB_EBADRECORD, "type \"%s\": missing key field \"%s\"", t->name,
                            kf->name);
        uint64_t cur;
        if ((rc = udb__seq_peek(&cur, txn, t->seqname)))
            return rc;
        if (cur == UINT64_MAX)
            return udb__err(txn, UDB_EEXHAUSTED, "type \"%s\": the key sequence \"%s\" is "
                            "exhausted (at %" PRIu64 "); give the key explicitly", t->name,
                            t->seqname, cur);
        p->keyobj.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        p->keyobj.via.u64 = cur + 1;
        p->rec.vals[t->key] = &p->keyobj;
        p->auto_key = true;
    }
    if (!p->off) {
        p->nidx = t->nidx;
        p->off = calloc(t->nidx, sizeof *p->off);
        p->len = calloc(t->nidx, sizeof *p->len);
        p->applies = calloc(t->nidx, sizeof *p->applies);
        if (!p->off || !p->len || !p->applies)
            return udb__err(txn, UDB_ENOMEM, "out of memory");
    }
    p->keys.len = 0;
    udb_buf k = {0};
    for (size_t i = 0; i < t->nidx; i++) {
        const udb_index *ix = &t->idx[i];
        rc = udb__idx_entry(&k, &p->applies[i], t, ix, (const msgpack_object *const *)p->rec.vals,
                            i ? p->keys.p + p->off[0] : NULL, i ? p->len[0] : 0);
        if (rc) {
            udb__buf_free(&k);
            if (rc == UDB_EBADRECORD)
                return udb__err(txn, rc, "type \"%s\": missing key field \"%s\"", t->name,
                                kf->name);
            return udb__err(txn, rc, "out of memory");
        }
        if (!p->applies[i])
            continue;
        p->off[i] = p->keys.len;
        p->len[i] = k.len;
        udb__buf_put(&p->keys, k.p, k.len);
    }
    udb__buf_free(&k);
    return p->keys.oom ? udb__err(txn, UDB_ENOMEM, "out of memory") : 0;
}

/* Check the unique indexes p enters.  old (may be NULL) is the record's
 * previous state: keys it already holds are not conflicts. */
static int check_unique(udb_txn *txn, const udb_type *t, const prep *p, const prep *old)
{
    udb__conflict_begin(txn, t);
    for (size_t i = 0; i < t->nidx; i++) {
        const udb_index *ix = &t->idx[i];
        if (!ix->unique || !p->applies[i] ||
            udb__idx_exempt(ix, (const msgpack_object *const *)p->rec.vals))
            continue;
        MDB_val k = keyval(p, i), v;
        if (old && old->applies[i] && old->len[i] == k.mv_size &&
            memcmp(old->keys.p + old->off[i], k.mv_data, k.mv_size) == 0)
            continue;
        int rc = udb__lk_get(udb__txn_mdb(txn), ix->dbi, &k, &v);
        if (rc == MDB_NOTFOUND)
            continue;
        if (rc)
            return udb__mdb_err(txn, rc, "reading a unique index");
        const void *holder = ix->is_pk ? k.mv_data : v.mv_data;
        size_t hlen = ix->is_pk ? k.mv_size : v.mv_size;
        if (old && hlen == old->len[0] && memcmp(holder, old->keys.p + old->off[0], hlen) == 0)
            continue;   /* our own entry */
        if ((rc = udb__conflict_add(txn, t, ix, (const msgpack_object *const *)p->rec.vals,
                                    holder, hlen)))
            return udb__err(txn, rc == UDB_ECORRUPT ? rc : UDB_ENOMEM,
                            "cannot record conflict detail");
    }
    return udb__conflict_finish(txn);
}

static int put(udb_txn *txn, MDB_dbi dbi, MDB_val k, MDB_val v, unsigned flags)
{
    int rc = udb__lk_put(udb__txn_mdb(txn), dbi, &k, &v, flags);
    return rc ? udb__mdb_err(txn, rc, "writing") : 0;
}

static int del(udb_txn *txn, MDB_dbi dbi, MDB_val k)
{
    int rc = udb__lk_del(udb__txn_mdb(txn), dbi, &k);
    return rc && rc != MDB_NOTFOUND ? udb__mdb_err(txn, rc, "deleting") : 0;
}

/* Keep the auto-key sequence ahead of explicit keys, so it never hands out a
 * key that is taken (SQLite's AUTOINCREMENT does the same). */
static int bump_seq(udb_txn *txn, const udb_type *t, const prep *p)
{
    if (!t->fields[t->key].autoinc)
        return 0;
    uint64_t v = p->rec.vals[t->key]->via.u64, cur;
    int rc = p->auto_key ? 0 : udb__seq_peek(&cur, txn, t->seqname);
    if (rc)
        return rc;
    if (!p->auto_key && v <= cur)
        return 0;
    return udb__seq_store(txn, t->seqname, v);
}

/* Write the record of p and all its index entries.  old: previous state. */
static int write_rec(udb_val *out, udb_txn *txn, const udb_type *t, prep *p, const prep *old)
{
    udb_buf packed = {0};
    int rc = udb__rec_pack(&packed, &p->rec, t, p->rec.vals[t->key]);
    if (rc) {
        udb__buf_free(&packed);
        return udb__err(txn, rc, "out of memory packing the record");
    }
    MDB_val rv = {packed.len, packed.p};
    if ((rc = put(txn, t->dbi, keyval(p, 0), rv, old ? 0 : MDB_NOOVERWRITE)))
        goto out;
    for (size_t i = 1; i < t->nidx && !rc; i++) {
        const udb_index *ix = &t->idx[i];
        bool same = old && old->applies[i] && p->applies[i] && old->len[i] == p->len[i] &&
                    memcmp(old->keys.p + old->off[i], p->keys.p + p->off[i], p->len[i]) == 0;
        if (same)
            continue;
        if (old && old->applies[i] && (rc = del(txn, ix->dbi, keyval(old, i))))
            break;
        if (p->applies[i]) {
            MDB_val v = {0, (void *)""};
            if (ix->unique)
                v = keyval(p, 0);
            rc = put(txn, ix->dbi, keyval(p, i), v, 0);
        }
    }
    if (!rc && !old)
        rc = bump_seq(txn, t, p);
    if (!rc)
        rc = udb__out(out, txn, &rv);
out:
    udb__buf_free(&packed);
    return rc;
}

static int insert_prepared(udb_val *out, udb_txn *txn, const udb_type *t, prep *p)
{
    int rc = prep_keys(p, txn, t, true);
    if (!rc)
        rc = check_unique(txn, t, p, NULL);
    if (!rc)
        rc = write_rec(out, txn, t, p, NULL);
    return rc;
}

int udb_insert(udb_val *out, udb_txn *txn, const char *type, const void *rec, size_t len)
{
    udb_type *t;
    int rc = udb__txn_type(&t, txn, type, true);
    if (rc)
        return rc;
    prep p;
    prep_init(&p);
    rc = parse_rec(&p.rec, txn, t, rec, len, false);
    if (!rc)
        rc = insert_prepared(out, txn, t, &p);
    prep_free(&p);
    return rc;
}

/* Fetch and parse the stored record under encoded key k. */
static int load_rec(prep *p, MDB_val *raw, udb_txn *txn, const udb_type *t, MDB_val k)
{
    int rc = udb__lk_get(udb__txn_mdb(txn), t->dbi, &k, raw);
    if (rc == MDB_NOTFOUND)
        return udb__err(txn, UDB_ENOTFOUND, "type \"%s\": no record with that key", t->name);
    if (rc)
        return udb__mdb_err(txn, rc, "reading a record");
    udb_buf msg = {0};
    rc = udb__rec_parse(&p->rec, t, raw->mv_data, raw->mv_size, false, &msg);
    if (rc == UDB_EBADRECORD)
        rc = udb__err(txn, UDB_ECORRUPT, "stored record is damaged: %s",
                      msg.p ? (char *)msg.p : "?");
    else if (rc)
        udb__err(txn, rc, "out of memory");
    udb__buf_free(&msg);
    if (!rc)
        rc = prep_keys(p, txn, t, false);
    return rc;
}

int udb_get(udb_val *out, udb_txn *txn, const char *type, const void *key, size_t key_len)
{
    udb_type *t;
    int rc = udb__txn_type(&t, txn, type, false);
    if (rc)
        return rc;
    udb_buf k = {0};
    if (!(rc = parse_key(&k, txn, t, key, key_len))) {
        MDB_val mk = {k.len, k.p}, v;
        rc = udb__lk_get(udb__txn_mdb(txn), t->dbi, &mk, &v);
        if (rc == MDB_NOTFOUND)
            rc = udb__err(txn, UDB_ENOTFOUND, "type \"%s\": no record with that key", t->name);
        else if (rc)
            rc = udb__mdb_err(txn, rc, "reading a record");
        else
            rc = udb__out_rec(out, txn, t, &mk, &v);
    }
    udb__buf_free(&k);
    return rc;
}

/* Look up the record holding encoded key k in unique index ix. */
static int lookup_unique(MDB_val *rec, MDB_val *pk, udb_txn *txn, const udb_type *t,
                         const udb_index *ix, MDB_val k)
{
    int rc;
    *pk = k;
    if (!ix->is_pk) {
        rc = udb__lk_get(udb__txn_mdb(txn), ix->dbi, &k, pk);
        if (rc == MDB_NOTFOUND)
            return UDB_ENOTFOUND;
        if (rc)
            return udb__mdb_err(txn, rc, "reading a unique index");
    }
    rc = udb__lk_get(udb__txn_mdb(txn), t->dbi, pk, rec);
    if (rc == MDB_NOTFOUND)
        return ix->is_pk ? UDB_ENOTFOUND
                         : udb__err(txn, UDB_ECORRUPT, "index \"%s.%s\" points to a missing record",
                                    t->name, ix->name);
    return rc ? udb__mdb_err(txn, rc, "reading a record") : 0;
}

static int unique_index(udb_index **out, udb_txn *txn, udb_type *t, const char *index)
{
    udb_index *ix = udb__type_index(t, index);
    if (!ix || !ix->unique)
        return udb__err_index(txn, t, index, true);
    *out = ix;
    return 0;
}

int udb_find(udb_val *out, udb_txn *txn, const char *type, const char *index,
             const void *values, size_t len)
{
    udb_type *t;
    udb_index *ix = NULL;
    int rc = udb__txn_type(&t, txn, type, false);
    if (rc || (rc = unique_index(&ix, txn, t, index)))
        return rc;
    if (!values)
        return udb__err(txn, UDB_EINVAL, "no values given");
    msgpack_object vals[UDB_MAX_IDX_FIELDS];
    size_t nv = 0;
    udb_buf k = {0}, msg = {0};
    const char *why = NULL;
    bool has_nil = false;
    if ((rc = udb__mp_scalars(vals, UDB_MAX_IDX_FIELDS, &nv, true, values, len, &why)) ||
        nv != ix->nfields) {
        rc = udb__err(txn, UDB_EBADRECORD, "index \"%s.%s\" needs a msgpack array of %zu values%s%s",
                      t->name, ix->name, ix->nfields, why ? ": " : "", why ? why : "");
        goto out;
    }
    for (size_t i = 0; i < ix->nfields; i++) {
        const msgpack_object *o = &vals[i];
        has_nil |= o->type == MSGPACK_OBJECT_NIL;
        if ((rc = udb__field_key(&k, t, &t->fields[ix->fields[i]], o, &msg))) {
            udb__err(txn, rc, "%s", msg.p ? (char *)msg.p : "bad value");
            goto out;
        }
    }
    if (has_nil && !ix->nulls_not_distinct) {
        rc = udb__err(txn, UDB_ENOTFOUND, "no record with those values in index \"%s.%s\"",
                      t->name, ix->name);
        goto out;
    }
    MDB_val mk = {k.len, k.p}, rec, pk;
    rc = lookup_unique(&rec, &pk, txn, t, ix, mk);
    if (rc == UDB_ENOTFOUND)
        udb__err(txn, rc, "no record with those values in index \"%s.%s\"", t->name, ix->name);
    else if (!rc)
        rc = udb__out_rec(out, txn, t, &pk, &rec);
out:
    udb__buf_free(&k);
    udb__buf_free(&msg);
    return rc;
}

/* Replace old (loaded) by the record in p. */
static int update_prepared(udb_val *out, udb_txn *txn, const udb_type *t, prep *p, prep *old)
{
    const msgpack_object *nk = p->rec.vals[t->key];
    if (!nk)
        p->rec.vals[t->key] = old->rec.vals[t->key];
    int rc = prep_keys(p, txn, t, false);
    if (rc)
        return rc;
    if (p->len[0] != old->len[0] || memcmp(p->keys.p, old->keys.p + old->off[0], p->len[0]))
        return udb__err(txn, UDB_EBADRECORD, "type \"%s\": an update cannot change the key "
                        "field \"%s\"", t->name, t->fields[t->key].name);
    if ((rc = check_unique(txn, t, p, old)))
        return rc;
    return write_rec(out, txn, t, p, old);
}

/* Parse `merged` bytes (built by udb__rec_merge) as a full record into p. */
static int parse_merged(prep *p, udb_txn *txn, const udb_type *t, udb_buf *merged)
{
    if (merged->oom)
        return udb__err(txn, UDB_ENOMEM, "out of memory merging");
    return parse_rec(&p->rec, txn, t, merged->p, merged->len, false);
}

/* udb__rec_required with the message on txn. */
static int check_required(udb_txn *txn, const udb_type *t, const udb_rec *r)
{
    udb_buf msg = {0};
    int rc = udb__rec_required(r, t, &msg);
    if (rc)
        udb__err(txn, rc, "%s", msg.p ? (char *)msg.p : udb_strerror(rc));
    udb__buf_free(&msg);
    return rc;
}

int udb_update(udb_val *out, udb_txn *txn, const char *type, const void *key, size_t key_len,
               const void *rec, size_t len, unsigned flags)
{
    udb_type *t;
    int rc = udb__txn_type(&t, txn, type, true);
    if (rc)
        return rc;
    if (flags & ~UDB_MERGE)
        return udb__err(txn, UDB_EINVAL, "unknown update flags 0x%x", flags);
    udb_buf k = {0}, merged = {0};
    prep old, p, patch;
    prep_init(&old);
    prep_init(&p);
    prep_init(&patch);
    MDB_val raw;
    if ((rc = parse_key(&k, txn, t, key, key_len)))
        goto out;
    MDB_val mk = {k.len, k.p};
    /* parsed as a patch either way: a replacement may omit the key field, so
       its required fields are checked once the key is filled in below */
    if ((rc = parse_rec(&patch.rec, txn, t, rec, len, true)) ||
        (rc = load_rec(&old, &raw, txn, t, mk)))
        goto out;
    if (flags & UDB_MERGE) {
        if (patch.rec.set[t->key] && !patch.rec.vals[t->key]) {
            rc = udb__err(txn, UDB_EBADRECORD, "type \"%s\": cannot remove the key field \"%s\"",
                          t->name, t->fields[t->key].name);
            goto out;
        }
        if ((rc = udb__rec_merge(&merged, &old.rec.up.data, &patch.rec.up.data, NULL)) ||
            (rc = parse_merged(&p, txn, t, &merged)))
            goto out;
        rc = update_prepared(out, txn, t, &p, &old);
    } else {
        if (!patch.rec.vals[t->key])
            patch.rec.vals[t->key] = old.rec.vals[t->key];
        if (!(rc = check_required(txn, t, &patch.rec)))
            rc = update_prepared(out, txn, t, &patch, &old);
    }
out:
    prep_free(&old);
    prep_free(&p);
    prep_free(&patch);
    udb__buf_free(&k);
    udb__buf_free(&merged);
    return rc;
}

int udb_delete(udb_txn *txn, const char *type, const void *key, size_t key_len)
{
    udb_type *t;
    int rc = udb__txn_type(&t, txn, type, true);
    if (rc)
        return rc;
    udb_buf k = {0};
    prep old;
    prep_init(&old);
    MDB_val raw;
    if ((rc = parse_key(&k, txn, t, key, key_len)))
        goto out;
    MDB_val mk = {k.len, k.p};
    if ((rc = load_rec(&old, &raw, txn, t, mk)))
        goto out;
    for (size_t i = 1; i < t->nidx && !rc; i++)
        if (old.applies[i])
            rc = del(txn, t->idx[i].dbi, keyval(&old, i));
    if (!rc)
        rc = del(txn, t->dbi, mk);
out:
    prep_free(&old);
    udb__buf_free(&k);
    return rc;
}

/* Compute p's keys as an insert would -- the auto key assigned, so that a
 * predicate reading it sees its value -- and find the record that holds p's
 * key in unique index ix: 0 and *found.  *rec and *pk point into the
 * database.  Nothing is taken from the sequence until p is written. */
static int prepare_and_find(MDB_val *rec, MDB_val *pk, bool *found, prep *p, udb_txn *txn,
                            const udb_type *t, const udb_index *ix)
{
    size_t i = (size_t)(ix - t->idx);
    *found = false;
    int rc = prep_keys(p, txn, t, true);
    if (rc || !p->applies[i] || udb__idx_exempt(ix, (const msgpack_object *const *)p->rec.vals))
        return rc;   /* no key there (a NULL, a false predicate): nobody holds it */
    rc = lookup_unique(rec, pk, txn, t, ix, keyval(p, i));
    if (rc == UDB_ENOTFOUND)
        return 0;
    *found = rc == 0;
    return rc;
}

int udb_insert_or_get(udb_val *out, int *created, udb_txn *txn, const char *type,
                      const char *index, const void *rec, size_t len)
{
    udb_type *t;
    udb_index *ix = NULL;
    int rc = udb__txn_type(&t, txn, type, true);
    if (rc || (rc = unique_index(&ix, txn, t, index)))
        return rc;
    prep p;
    prep_init(&p);
    bool found = false;
    MDB_val existing, pk;
    if ((rc = parse_rec(&p.rec, txn, t, rec, len, false)) ||
        (rc = prepare_and_find(&existing, &pk, &found, &p, txn, t, ix)))
        goto out;
    if (found)
        rc = udb__out_rec(out, txn, t, &pk, &existing);
    else if (!(rc = check_unique(txn, t, &p, NULL)))
        rc = write_rec(out, txn, t, &p, NULL);
    if (!rc && created)
        *created = !found;
out:
    prep_free(&p);
    return rc;
}

int udb_upsert(udb_val *out, int *created, udb_txn *txn, const char *type, const char *index,
               const void *rec, size_t len, const void *on_insert, size_t on_insert_len)
{
    udb_type *t;
    udb_index *ix = NULL;
    int rc = udb__txn_type(&t, txn, type, true);
    if (rc || (rc = unique_index(&ix, txn, t, index)))
        return rc;
    prep patch, extra, row, old, p;
    prep_init(&patch);
    prep_init(&extra);
    prep_init(&row);
    prep_init(&old);
    prep_init(&p);
    udb_buf proposed = {0}, merged = {0};
    bool found = false;
    MDB_val existing, pk;
    msgpack_object empty = {.type = MSGPACK_OBJECT_MAP};
    if ((rc = parse_rec(&patch.rec, txn, t, rec, len, true)))
        goto out;
    if (on_insert && (rc = parse_rec(&extra.rec, txn, t, on_insert, on_insert_len, true)))
        goto out;
    /* The row an insert would store is validated and looked up whether or not
       it ends up inserted (as PostgreSQL does with the proposed row): whether a
       call is valid never depends on what the database holds, and the key
       looked up is the key an insert would take. */
    if ((rc = udb__rec_merge(&proposed, on_insert ? &extra.rec.up.data : &empty,
                             &patch.rec.up.data, NULL)) ||
        (rc = parse_merged(&row, txn, t, &proposed)) ||
        (rc = prepare_and_find(&existing, &pk, &found, &row, txn, t, ix)))
        goto out;
    if (found) {
        /* merge rec alone into the holder, keeping its primary key */
        if ((rc = load_rec(&old, &existing, txn, t, pk)))
            goto out;
        if ((rc = udb__rec_merge(&merged, &old.rec.up.data, &patch.rec.up.data,
                                 t->fields[t->key].name)) ||
            (rc = parse_merged(&p, txn, t, &merged)))
            goto out;
        rc = update_prepared(out, txn, t, &p, &old);
    } else if (!(rc = check_unique(txn, t, &row, NULL))) {
        rc = write_rec(out, txn, t, &row, NULL);
    }
    if (!rc && created)
        *created = !found;
out:
    prep_free(&patch);
    prep_free(&extra);
    prep_free(&row);
    prep_free(&old);
    prep_free(&p);
    udb__buf_free(&proposed);
    udb__buf_free(&merged);
    return rc;
}

int udb_insert_first(udb_val *out, size_t *chosen, udb_txn *txn, const char *type,
                     const udb_val *candidates, size_t n)
{
    udb_type *t;
    int rc = udb__txn_type(&t, txn, type, true);
    if (rc)
        return rc;
    if (!candidates || n == 0)
        return udb__err(txn, UDB_EINVAL, "no candidates given");
    rc = UDB_ECONFLICT;
    for (size_t i = 0; i < n; i++) {
        prep p;
        prep_init(&p);
        udb__clear(txn);   /* each candidate reports for itself: no stale conflict */
        rc = parse_rec(&p.rec, txn, t, candidates[i].data, candidates[i].size, false);
        if (!rc)
            rc = insert_prepared(out, txn, t, &p);
        prep_free(&p);
        if (rc != UDB_ECONFLICT) {
            if (chosen)
                *chosen = i;
            return rc;
        }
    }
    return rc;
}
