/*
 * ops.c -- the record operations: insert, get, find, update, delete and the
 * race-proof compound ones (insert_or_get, upsert, insert_first).
 *
 * Every write follows one shape: validate, compute every index key, check
 * every unique index, and only then write.  Because an LMDB write transaction
 * is the only writer of the database, nothing can slip in between the check
 * and the write -- that is the whole uniqueness guarantee.  A conflict writes
 * nothing and leaves the transaction usable.  A backend with store_new checks
 * a new record's keys by writing it (LMDB: MDB_NOOVERWRITE puts, taken out
 * again when a key is taken; PostgreSQL: ON CONFLICT DO NOTHING), and the
 * core then probes only to word the conflict.
 *
 * This is the core's side of backend.h: everything here decides; what is
 * stored, and how, is the backend's (udb__txn_backend(txn)).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "index.h"
#include "mpack.h"
#include "record.h"
#include "unit.h"

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
    free(p->off);   /* off, len and applies: one allocation */
}

static udb_val keyval(const prep *p, size_t i)
{
    udb_val v = {p->keys.p + p->off[i], p->len[i]};
    return v;
}

/* p's entries, as a backend stores them. */
static udb_entries entries(const prep *p)
{
    udb_entries e = {(const msgpack_object *const *)p->rec.vals, p->keys.p, p->off, p->len,
                     p->applies};
    return e;
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
        if ((rc = udb__txn_backend(txn)->seq_peek(&cur, NULL, txn, t->seqname)))
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
        if (!(p->off = calloc(t->nidx, 2 * sizeof *p->off + sizeof *p->applies)))
            return udb__err(txn, UDB_ENOMEM, "out of memory");
        p->len = p->off + t->nidx;
        p->applies = (bool *)(p->len + t->nidx);
    }
    p->keys.len = 0;
    udb__buf_reserve(&p->keys, 256);   /* typical keys in one allocation; a failure shows below */
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

/* Add ix to the conflict detail: the values as the holder stores them.
 * Without a nocase field they are p's own (equal keys, equal values); with
 * one they may differ in case, so the holder's record is read. */
static int conflict_add(udb_txn *txn, const udb_type *t, const udb_index *ix, const prep *p,
                        const void *holder, size_t hlen)
{
    const msgpack_object *const *vals = (const msgpack_object *const *)p->rec.vals;
    udb_rec h;
    udb__rec_init(&h);
    udb_buf msg = {0};
    int rc = 0;
    if (ix->any_nocase) {
        udb_val hv;
        rc = udb__txn_backend(txn)->fetch(&hv, txn, t, holder, hlen);
        if (rc == UDB_ENOTFOUND) {
            rc = udb__err(txn, UDB_ECORRUPT, "index \"%s.%s\" points to a missing record",
                          t->name, ix->name);
            goto out;
        }
        if (rc)
            goto out;   /* the backend worded it */
        rc = udb__rec_parse(&h, t, hv.data, hv.size, false, &msg);
        if (rc == UDB_EBADRECORD) {
            rc = udb__err(txn, UDB_ECORRUPT, "stored record is damaged: %s",
                          msg.p ? (char *)msg.p : "?");
            goto out;
        }
        if (rc) {
            rc = udb__err(txn, rc, "out of memory");
            goto out;
        }
        vals = (const msgpack_object *const *)h.vals;
    }
    if ((rc = udb__conflict_add(txn, ix, vals, holder, hlen)))
        rc = udb__err(txn, rc == UDB_ECORRUPT ? rc : UDB_ENOMEM, "cannot record conflict detail");
out:
    udb__rec_free(&h);
    udb__buf_free(&msg);
    return rc;
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
        udb_val k = keyval(p, i), v;
        if (old && old->applies[i] && old->len[i] == k.size &&
            memcmp(old->keys.p + old->off[i], k.data, k.size) == 0)
            continue;
        const udb_backend *be = udb__txn_backend(txn);
        int rc = ix->is_pk ? be->fetch(&v, txn, t, k.data, k.size)
                           : be->holder(&v, txn, t, ix, k.data, k.size);
        if (rc == UDB_ENOTFOUND)
            continue;
        if (rc)
            return rc;
        const void *holder = ix->is_pk ? k.data : v.data;
        size_t hlen = ix->is_pk ? k.size : v.size;
        if (old && hlen == old->len[0] && memcmp(holder, old->keys.p + old->off[0], hlen) == 0)
            continue;   /* our own entry */
        if ((rc = conflict_add(txn, t, ix, p, holder, hlen)))
            return rc;
    }
    return udb__conflict_finish(txn);
}

/* Keep the auto-key sequence ahead of explicit keys, so it never hands out a
 * key that is taken (SQLite's AUTOINCREMENT does the same). */
static int bump_seq(udb_txn *txn, const udb_type *t, const prep *p)
{
    if (!t->fields[t->key].autoinc)
        return 0;
    uint64_t v = p->rec.vals[t->key]->via.u64, cur;
    const udb_backend *be = udb__txn_backend(txn);
    int rc = p->auto_key ? 0 : be->seq_peek(&cur, NULL, txn, t->seqname);
    if (rc)
        return rc;
    if (!p->auto_key && v <= cur)
        return 0;
    return be->seq_store(txn, t->seqname, v);
}

/* Write the record of p and all its index entries.  old: previous state.
 * fresh: a new record whose unique keys were not checked: the backend's
 * store_new checks them (UDB_BE_TAKEN: one is taken). */
static int write_any(udb_val *out, udb_txn *txn, const udb_type *t, prep *p, const prep *old,
                     bool fresh, const udb_index *reads)
{
    udb_buf packed = {0};
    udb__buf_reserve(&packed, 512);   /* a typical record in one allocation */
    int rc = udb__rec_pack(&packed, &p->rec, t, p->rec.vals[t->key]);
    if (rc) {
        udb__buf_free(&packed);
        return udb__err(txn, rc, "out of memory packing the record");
    }
    udb_entries e = entries(p), o = old ? entries(old) : e;
    const udb_backend *be = udb__txn_backend(txn);
    rc = fresh ? be->store_new(txn, t, packed.p, packed.len, &e, reads)
               : be->store(txn, t, packed.p, packed.len, &e, old ? &o : NULL);
    if (!rc && !old)
        rc = bump_seq(txn, t, p);
    if (!rc)
        rc = udb__out_bytes(out, txn, packed.p, packed.len);
    udb__buf_free(&packed);
    return rc;
}

static int write_rec(udb_val *out, udb_txn *txn, const udb_type *t, prep *p, const prep *old)
{
    return write_any(out, txn, t, p, old, false, NULL);
}

/* A new record's checks and write.  Where the backend's own indexes check
 * (store_new), it writes first and the core asks who holds what only when
 * a key was taken -- the same outcome, and on a shared server no read that
 * other writers' inserts would have to be serialized against. */
static int check_and_write(udb_val *out, udb_txn *txn, const udb_type *t, prep *p)
{
    if (!udb__txn_backend(txn)->store_new) {
        int rc = check_unique(txn, t, p, NULL);
        return rc ? rc : write_rec(out, txn, t, p, NULL);
    }
    int rc = write_any(out, txn, t, p, NULL, true, NULL);
    if (rc != UDB_BE_TAKEN)
        return rc;
    if ((rc = check_unique(txn, t, p, NULL)))
        return rc;
    return udb__err(txn, UDB_ERETRY, "type \"%s\": a unique key was taken and is free again; "
                    "run the transaction again", t->name);
}

static int insert_prepared(udb_val *out, udb_txn *txn, const udb_type *t, prep *p)
{
    int rc = prep_keys(p, txn, t, true);
    return rc ? rc : check_and_write(out, txn, t, p);
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

/* The stored record of t under encoded key k, into *raw (backend memory);
 * its absence worded. */
static int fetch(udb_val *raw, udb_txn *txn, const udb_type *t, udb_val k)
{
    int rc = udb__txn_backend(txn)->fetch(raw, txn, t, k.data, k.size);
    if (rc == UDB_ENOTFOUND)
        return udb__err(txn, UDB_ENOTFOUND, "type \"%s\": no record with that key", t->name);
    return rc;
}

/* Fetch and parse the stored record under encoded key k. */
static int load_rec(prep *p, udb_val *raw, udb_txn *txn, const udb_type *t, udb_val k)
{
    int rc = fetch(raw, txn, t, k);
    if (rc)
        return rc;
    udb_buf msg = {0};
    rc = udb__rec_parse(&p->rec, t, raw->data, raw->size, false, &msg);
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
        udb_val mk = {k.p, k.len}, v;
        if (!(rc = fetch(&v, txn, t, mk)))
            rc = udb__out_record(out, txn, t, k.p, k.len, v.data, v.size);
    }
    udb__buf_free(&k);
    return rc;
}

/* Look up the record holding encoded key k in unique index ix. */
static int lookup_unique(udb_val *rec, udb_val *pk, udb_txn *txn, const udb_type *t,
                         const udb_index *ix, udb_val k)
{
    const udb_backend *be = udb__txn_backend(txn);
    int rc;
    *pk = k;
    if (!ix->is_pk && (rc = be->holder(pk, txn, t, ix, k.data, k.size)))
        return rc;
    rc = be->fetch(rec, txn, t, pk->data, pk->size);
    if (rc == UDB_ENOTFOUND && !ix->is_pk)
        return udb__err(txn, UDB_ECORRUPT, "index \"%s.%s\" points to a missing record",
                        t->name, ix->name);
    return rc;
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
        if ((rc = udb__idx_field_key(&k, t, ix, i, o, &msg))) {
            udb__err(txn, rc, "%s", msg.p ? (char *)msg.p : "bad value");
            goto out;
        }
    }
    if (has_nil && !ix->nulls_not_distinct) {
        rc = udb__err(txn, UDB_ENOTFOUND, "no record with those values in index \"%s.%s\"",
                      t->name, ix->name);
        goto out;
    }
    udb_val mk = {k.p, k.len}, rec, pk;
    rc = lookup_unique(&rec, &pk, txn, t, ix, mk);
    if (rc == UDB_ENOTFOUND)
        udb__err(txn, rc, "no record with those values in index \"%s.%s\"", t->name, ix->name);
    else if (!rc)
        rc = udb__out_record(out, txn, t, pk.data, pk.size, rec.data, rec.size);
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
    udb_val raw;
    if ((rc = parse_key(&k, txn, t, key, key_len)))
        goto out;
    udb_val mk = {k.p, k.len};
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
    udb_val raw;
    if ((rc = parse_key(&k, txn, t, key, key_len)))
        goto out;
    udb_val mk = {k.p, k.len};
    if ((rc = load_rec(&old, &raw, txn, t, mk)))
        goto out;
    udb_entries e = entries(&old);
    rc = udb__txn_backend(txn)->remove(txn, t, k.p, k.len, &e);
out:
    prep_free(&old);
    udb__buf_free(&k);
    return rc;
}

/* Compute p's keys as an insert would -- the auto key assigned, so that a
 * predicate reading it sees its value -- and find the record that holds p's
 * key in unique index ix: 0 and *found.  *rec and *pk point into the
 * database.  Nothing is taken from the sequence until p is written. */
static int prepare_and_find(udb_val *rec, udb_val *pk, bool *found, prep *p, udb_txn *txn,
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

/* Is ix among the indexes of txn's conflict detail? */
static bool conflict_on(udb_txn *txn, const udb_index *ix)
{
    const udb_conflict *c = udb_conflict_info(txn);
    for (size_t k = 0; c && k < c->count; k++)
        if (strcmp(c->indexes[k].index, ix->name) == 0)
            return true;
    return false;
}

/* insert_or_get where the backend's own indexes check (store_new): the
 * insert first, as `INSERT ... ON CONFLICT DO NOTHING` then `SELECT` by
 * hand, and ix's holder read only when a key was taken -- the outcome of
 * looking first (the holder of ix if there is one, else the insert or the
 * conflict on another index), without a read that racing inserts of the
 * same key would be serialized against. */
static int insert_or_find(udb_val *out, bool *found, udb_txn *txn, const udb_type *t,
                          const udb_index *ix, prep *p)
{
    size_t i = (size_t)(ix - t->idx);
    int rc = prep_keys(p, txn, t, true);
    if (rc)
        return rc;
    rc = write_any(out, txn, t, p, NULL, true, ix);
    if (rc == UDB_ECONFLICT && conflict_on(txn, ix))
        /* ix's holder committed after this transaction's snapshot: looking
           first would not have seen it either, so the transaction must run
           again to return it (serially, it would have) */
        return udb__err(txn, UDB_ERETRY, "type \"%s\": the key of index \"%s\" was taken by "
                        "a transaction this one cannot see; run it again", t->name, ix->name);
    if (rc != UDB_BE_TAKEN)
        return rc;
    if (p->applies[i] && !udb__idx_exempt(ix, (const msgpack_object *const *)p->rec.vals)) {
        udb_val existing, pk;
        rc = lookup_unique(&existing, &pk, txn, t, ix, keyval(p, i));
        if (rc != UDB_ENOTFOUND) {
            *found = rc == 0;
            return rc ? rc : udb__out_record(out, txn, t, pk.data, pk.size, existing.data,
                                             existing.size);
        }
    }
    if ((rc = check_unique(txn, t, p, NULL)))
        return rc;
    return udb__err(txn, UDB_ERETRY, "type \"%s\": a unique key was taken and is free again; "
                    "run the transaction again", t->name);
}

/* insert_or_get up to its decision -- *found: ix's key is held, out its
 * holder -- and, with `insert`, the insert of a key nobody holds. */
static int insert_or_get(udb_val *out, bool *found, udb_txn *txn, const char *type,
                         const char *index, const void *rec, size_t len, bool insert)
{
    udb_type *t;
    udb_index *ix = NULL;
    *found = false;
    int rc = udb__txn_type(&t, txn, type, insert);
    if (rc || (rc = unique_index(&ix, txn, t, index)))
        return rc;
    prep p;
    prep_init(&p);
    udb_val existing, pk;
    if ((rc = parse_rec(&p.rec, txn, t, rec, len, false)))
        goto out;
    const udb_backend *be = udb__txn_backend(txn);
    if (insert && be->store_new && !be->lookup_first) {
        rc = insert_or_find(out, found, txn, t, ix, &p);
        goto out;
    }
    if ((rc = prepare_and_find(&existing, &pk, found, &p, txn, t, ix)))
        goto out;
    if (*found)
        rc = udb__out_record(out, txn, t, pk.data, pk.size, existing.data, existing.size);
    else if (insert)
        rc = check_and_write(out, txn, t, &p);
out:
    prep_free(&p);
    return rc;
}

int udb_insert_or_get(udb_val *out, int *created, udb_txn *txn, const char *type,
                      const char *index, const void *rec, size_t len)
{
    bool found;
    int rc = insert_or_get(out, &found, txn, type, index, rec, len, true);
    if (!rc && created)
        *created = !found;
    return rc;
}

int udb__insert_or_get_held(udb_val *out, bool *held, udb_txn *txn, const char *type,
                            const char *index, const void *rec, size_t len)
{
    int rc = insert_or_get(out, held, txn, type, index, rec, len, false);
    if (rc)
        *held = false;
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
    udb_val existing, pk;
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
