/*
 * bench_lmdb.c -- the floor: raw LMDB doing by hand what uniqdb does for the
 * benchmark's schema, with nothing else.  Same layout and key encoding as
 * uniqdb (engine/lmdb/layout.h): the record under its tuple-encoded primary key,
 * one put per index entry, MDB_NOOVERWRITE standing in for the unique checks.
 * No validation, no canonical repacking, no conflict detail, no rollback of a
 * half-inserted record on a conflict: whatever uniqdb costs above this is the
 * price of its guarantees.
 */
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench.h"
#include "keycodec.h"

typedef struct lmdb_db {
    MDB_env *env;
    MDB_dbi t, ref, active, user;
} lmdb_db;

/* The four keys of one record, back to back in one buffer. */
enum { K_PK, K_REF, K_ACTIVE, K_USER, K_N };
typedef struct rec_keys {
    udb_buf b;
    size_t off[K_N], len[K_N];
} rec_keys;

static int fail(int rc, const char *what)
{
    fprintf(stderr, "lmdb: %s: %s\n", what, mdb_strerror(rc));
    return rc;
}

static int begin(MDB_txn **txn, const lmdb_db *d, unsigned flags)
{
    int rc = mdb_txn_begin(d->env, NULL, flags, txn);
    return rc ? fail(rc, "begin") : 0;
}

/* Commit a write transaction, or abort it if its work failed with rc. */
static int finish(MDB_txn *txn, int rc, const char *what)
{
    if (rc) {
        mdb_txn_abort(txn);
        return fail(rc, what);
    }
    rc = mdb_txn_commit(txn);
    return rc ? fail(rc, "commit") : 0;
}

static void key_str(udb_buf *b, const char *s)
{
    udb__tk_str(b, UDB_TK_STR, s, strlen(s));
}

static void key_mark(rec_keys *k, int which, size_t start)
{
    k->off[which] = start;
    k->len[which] = k->b.len - start;
}

static MDB_val key_val(const rec_keys *k, int which)
{
    MDB_val v = {k->len[which], k->b.p + k->off[which]};
    return v;
}

static int encode_keys(rec_keys *k, const bench_rec *r)
{
    k->b.len = 0;
    udb__tk_uint(&k->b, r->id);
    key_mark(k, K_PK, 0);
    size_t at = k->b.len;
    key_str(&k->b, r->ref);
    key_mark(k, K_REF, at);
    at = k->b.len;
    key_str(&k->b, r->psych);
    key_str(&k->b, r->slot);
    key_mark(k, K_ACTIVE, at);
    at = k->b.len;
    key_str(&k->b, r->user);
    key_str(&k->b, r->slot);
    unsigned char pk[16];                         /* a tuple uint is at most 9 bytes */
    memcpy(pk, k->b.p, k->len[K_PK]);
    udb__buf_put(&k->b, pk, k->len[K_PK]);        /* non-unique: the pk makes it unique */
    key_mark(k, K_USER, at);
    return k->b.oom ? ENOMEM : 0;
}

static int l_open(void **out, const char *path, bool durable)
{
    lmdb_db *d = calloc(1, sizeof *d);
    if (!d)
        return ENOMEM;
    MDB_txn *txn = NULL;
    int rc;
    if (mkdir(path, 0750) != 0 && errno != EEXIST) {
        rc = errno;
        fprintf(stderr, "lmdb: mkdir %s: %s\n", path, strerror(rc));
        goto out;
    }
    if ((rc = mdb_env_create(&d->env)) || (rc = mdb_env_set_maxdbs(d->env, 8)) ||
        (rc = mdb_env_set_mapsize(d->env, BENCH_MAP_SIZE)) ||
        (rc = mdb_env_open(d->env, path, MDB_NOTLS | (durable ? 0 : MDB_NOSYNC), 0640))) {
        fail(rc, "open");
        goto out;
    }
    if ((rc = mdb_txn_begin(d->env, NULL, 0, &txn)) ||
        (rc = mdb_dbi_open(txn, "t:" BENCH_TYPE, MDB_CREATE, &d->t)) ||
        (rc = mdb_dbi_open(txn, "u:" BENCH_TYPE ":ref", MDB_CREATE, &d->ref)) ||
        (rc = mdb_dbi_open(txn, "u:" BENCH_TYPE ":active_slot", MDB_CREATE, &d->active)) ||
        (rc = mdb_dbi_open(txn, "i:" BENCH_TYPE ":by_user", MDB_CREATE, &d->user))) {
        fail(rc, "creating databases");
        goto out;
    }
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc)
        fail(rc, "commit");
out:
    if (txn)
        mdb_txn_abort(txn);
    if (rc) {
        if (d->env)
            mdb_env_close(d->env);
        free(d);
        return rc;
    }
    *out = d;
    return 0;
}

static void l_close(void *db)
{
    lmdb_db *d = db;
    if (!d)
        return;
    mdb_env_close(d->env);
    free(d);
}

/* Put r: the unique key first, so an existing holder is found (and reported
 * in *holder's pk) before anything is written; then the record and the other
 * index entries. */
static int put_rec(MDB_val *holder, MDB_txn *txn, const lmdb_db *d, rec_keys *k,
                   const bench_rec *r)
{
    int rc = encode_keys(k, r);
    if (rc)
        return rc;
    MDB_val key = key_val(k, K_REF), pk = key_val(k, K_PK);
    *holder = pk;
    if ((rc = mdb_put(txn, d->ref, &key, holder, MDB_NOOVERWRITE)))
        return rc;
    MDB_val rec = {r->mp_len, (void *)r->mp}, v = pk, empty = {0, (void *)""};
    rc = mdb_put(txn, d->t, &pk, &rec, MDB_NOOVERWRITE);
    key = key_val(k, K_ACTIVE);
    if (!rc && r->active)
        rc = mdb_put(txn, d->active, &key, &v, MDB_NOOVERWRITE);
    key = key_val(k, K_USER);
    if (!rc)
        rc = mdb_put(txn, d->user, &key, &empty, 0);
    /* MDB_KEYEXIST means "ref is held"; a later collision is another error
     * (the benchmark's data never collides there) */
    return rc == MDB_KEYEXIST ? EEXIST : rc;
}

static int l_insert(void *db, const bench_rec *recs, size_t n)
{
    lmdb_db *d = db;
    MDB_txn *txn;
    int rc = begin(&txn, d, 0);
    if (rc)
        return rc;
    rec_keys k = {0};
    for (size_t i = 0; i < n && !rc; i++) {
        MDB_val holder;
        rc = put_rec(&holder, txn, d, &k, &recs[i]);
    }
    udb__buf_free(&k.b);
    return finish(txn, rc, "insert");
}

/* The record under the given pk, and its id. */
static int get_rec(MDB_val *rec, uint64_t *id, MDB_txn *txn, const lmdb_db *d, MDB_val pk)
{
    int rc = mdb_get(txn, d->t, &pk, rec);
    if (!rc && bench_mp_id(id, rec->mv_data, rec->mv_size))
        *id = 0;
    return rc;
}

static int l_lookup(size_t *matched, void *db, const bench_rec *recs, size_t n)
{
    lmdb_db *d = db;
    MDB_txn *txn;
    int rc = begin(&txn, d, MDB_RDONLY);
    if (rc)
        return rc;
    udb_buf k = {0};
    size_t ok = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        k.len = 0;
        key_str(&k, recs[i].ref);
        MDB_val key = {k.len, k.p}, pk, rec;
        uint64_t id;
        rc = mdb_get(txn, d->ref, &key, &pk);
        if (!rc)
            rc = get_rec(&rec, &id, txn, d, pk);
        if (rc == MDB_NOTFOUND) {
            rc = 0;
            continue;
        }
        if (!rc && rec.mv_size == recs[i].mp_len &&
            memcmp(rec.mv_data, recs[i].mp, rec.mv_size) == 0)
            ok++;
    }
    udb__buf_free(&k);
    mdb_txn_abort(txn);
    *matched = ok;
    return rc ? fail(rc, "lookup") : 0;
}

static int l_insert_or_get(bool *created, uint64_t *id, void *conn, const bench_rec *r)
{
    lmdb_db *d = conn;
    MDB_txn *txn;
    int rc = begin(&txn, d, 0);
    if (rc)
        return rc;
    rec_keys k = {0};
    MDB_val holder, rec;
    rc = put_rec(&holder, txn, d, &k, r);
    *created = rc == 0;
    *id = r->id;
    if (rc == MDB_KEYEXIST)
        rc = get_rec(&rec, id, txn, d, holder);
    udb__buf_free(&k.b);
    return finish(txn, rc, "insert_or_get");
}

static int l_scan(bench_ids *ids, size_t *counts, void *db, const char (*users)[16], size_t n)
{
    lmdb_db *d = db;
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = begin(&txn, d, MDB_RDONLY);
    if (rc)
        return rc;
    if ((rc = mdb_cursor_open(txn, d->user, &cur))) {
        mdb_txn_abort(txn);
        return fail(rc, "cursor");
    }
    udb_buf prefix = {0};
    for (size_t j = 0; j < n && !rc; j++) {
        prefix.len = 0;
        key_str(&prefix, users[j]);
        MDB_val key = {prefix.len, prefix.p}, v;
        size_t rows = 0;
        for (rc = mdb_cursor_get(cur, &key, &v, MDB_SET_RANGE); !rc;
             rc = mdb_cursor_get(cur, &key, &v, MDB_NEXT)) {
            if (key.mv_size < prefix.len || memcmp(key.mv_data, prefix.p, prefix.len) != 0)
                break;
            /* skip (user, slot); the rest of the key is the pk */
            const unsigned char *p = key.mv_data, *end = p + key.mv_size;
            if (udb__tk_skip(&p, end) || udb__tk_skip(&p, end)) {
                rc = MDB_CORRUPTED;
                break;
            }
            MDB_val pk = {(size_t)(end - p), (void *)p}, rec;
            uint64_t id;
            if ((rc = get_rec(&rec, &id, txn, d, pk)))
                break;
            if (bench_ids_push(ids, id)) {
                rc = ENOMEM;
                break;
            }
            rows++;
        }
        if (rc == MDB_NOTFOUND)
            rc = 0;
        counts[j] = rows;
    }
    udb__buf_free(&prefix);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return rc ? fail(rc, "scan") : 0;
}

static int l_count(bench_counts *out, void *db)
{
    lmdb_db *d = db;
    MDB_txn *txn;
    int rc = begin(&txn, d, MDB_RDONLY);
    if (rc)
        return rc;
    const MDB_dbi dbis[] = {d->t, d->ref, d->active, d->user};
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < sizeof dbis / sizeof dbis[0] && !rc; i++) {
        MDB_stat st;
        if ((rc = mdb_stat(txn, dbis[i], &st)))
            break;
        if (i == 0)
            out->records = st.ms_entries;
        else
            out->entries += st.ms_entries;
    }
    mdb_txn_abort(txn);
    return rc ? fail(rc, "stat") : 0;
}

const bench_engine bench_engine_lmdb = {
    .name = "lmdb",
    .label = "raw-LMDB",
    .sync_desc = "default (fsync per commit)",
    .nosync_desc = "MDB_NOSYNC",
    .open = l_open,
    .close = l_close,
    .insert = l_insert,
    .lookup = l_lookup,
    .insert_or_get = l_insert_or_get,
    .scan = l_scan,
    .count = l_count,
    .lmdb_dir = true,
    .commit_per_write = true,
};
