/*
 * bench_pg_udb.c -- the uniqdb side of uniqdb-bench-pg: the same calls the
 * LMDB rows of uniqdb-bench make (udb_insert, udb_find, udb_insert_or_get),
 * on the PostgreSQL backend.
 *
 * Until udb_open reaches the server, transactions are engine/pg's own
 * (udb__pg_begin, udb__pg_commit), as tests/postgres/pg_store.c drives them,
 * and a writer re-runs on UDB_EBUSY (a serialization failure) as udb_write
 * will.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_pg.h"
#include "pgmeta.h"
#include "pgstore.h"
#include "uniqdb.h"

bool bench_udb_exec;   /* bench_work.c sets it for W4 "exec" rows, which this bench has not */

typedef struct udb_pgdb {
    bench_pg_handle h;   /* first */
    udb_pgpool *pool;
} udb_pgdb;

static int fail(int rc, const char *what, const char *detail)
{
    fprintf(stderr, "uniqdb-pg: %s: %s (%s)\n", what, udb_strerror(rc), detail);
    return rc;
}

static int pool_open(udb_pgpool **out, const char *path)
{
    char url[1024];
    udb_buf msg = {0};
    bench_pg_url(url, sizeof url, path);
    int rc = udb__pg_pool_open(out, url, 1, &msg);
    if (rc)
        fail(rc, "open", msg.p ? (const char *)msg.p : "");
    udb__buf_free(&msg);
    return rc;
}

int bench_pg_apply(const char *path)
{
    udb_pgpool *p;
    udb_buf msg = {0};
    int rc = pool_open(&p, path);
    if (!rc && (rc = udb__pg_schema_apply(NULL, p, bench_schema_json, strlen(bench_schema_json),
                                          0, &msg)))
        fail(rc, "schema", msg.p ? (const char *)msg.p : "");
    if (!rc)
        udb__pg_pool_close(p);
    udb__buf_free(&msg);
    return rc ? -1 : 0;
}

static int u_open(void **out, const char *path, bool durable)
{
    (void)durable;   /* the server's settings decide (fsync on under the bench) */
    if (bench_pg_apply(path))
        return -1;
    udb_pgdb *d = calloc(1, sizeof *d);
    if (!d)
        return -1;
    bench_pg_schema_of(d->h.schema, path);
    if (pool_open(&d->pool, path)) {
        free(d);
        return -1;
    }
    *out = d;
    return 0;
}

static void u_close(void *db)
{
    udb_pgdb *d = db;
    udb__pg_pool_close(d->pool);
    free(d);
}

/* A write transaction running fn, re-run while it fails with UDB_EBUSY. */
static int write(udb_pgdb *d, int (*fn)(udb_txn *txn, void *arg), void *arg)
{
    for (;;) {
        udb_txn *txn;
        udb_buf msg = {0};
        int rc = udb__pg_begin(&txn, d->pool, 0, &msg);
        if (rc) {
            fail(rc, "begin", msg.p ? (const char *)msg.p : "");
            udb__buf_free(&msg);
            return rc;
        }
        rc = fn(txn, arg);
        if (rc) {
            if (rc != UDB_EBUSY)
                fail(rc, "write", udb_errmsg(txn));
            udb__pg_abort(txn);
        } else if ((rc = udb__pg_commit(txn, &msg)) && rc != UDB_EBUSY) {
            fail(rc, "commit", msg.p ? (const char *)msg.p : "");
        }
        udb__buf_free(&msg);
        if (rc != UDB_EBUSY)
            return rc;
    }
}

typedef struct ins_ctx {
    const bench_rec *recs;
    size_t n;
} ins_ctx;

static int insert_fn(udb_txn *txn, void *arg)
{
    const ins_ctx *c = arg;
    int rc = 0;
    for (size_t i = 0; i < c->n && !rc; i++)
        rc = udb_insert(NULL, txn, BENCH_TYPE, c->recs[i].mp, c->recs[i].mp_len);
    return rc;
}

static int u_insert(void *db, const bench_rec *recs, size_t n)
{
    ins_ctx c = {recs, n};
    return write(db, insert_fn, &c);
}

static int u_lookup(size_t *matched, void *db, const bench_rec *recs, size_t n)
{
    udb_pgdb *d = db;
    udb_txn *txn;
    udb_buf msg = {0};
    int rc = udb__pg_begin(&txn, d->pool, UDB_RDONLY, &msg);
    if (rc) {
        fail(rc, "begin", msg.p ? (const char *)msg.p : "");
        udb__buf_free(&msg);
        return rc;
    }
    size_t ok = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        unsigned char key[64];
        const char *ref = recs[i].ref;
        size_t len = bench_pack_strs(key, sizeof key, &ref, 1);
        udb_val v;
        rc = udb_find(&v, txn, BENCH_TYPE, "ref", key, len);
        if (rc == UDB_ENOTFOUND) {
            rc = 0;
            continue;
        }
        if (rc)
            fail(rc, "find", udb_errmsg(txn));
        else if (v.size == recs[i].mp_len && memcmp(v.data, recs[i].mp, v.size) == 0)
            ok++;
    }
    udb__pg_abort(txn);
    udb__buf_free(&msg);
    *matched = ok;
    return rc;
}

typedef struct iog_ctx {
    const bench_rec *r;
    int created;
    uint64_t id;
} iog_ctx;

static int iog_fn(udb_txn *txn, void *arg)
{
    iog_ctx *c = arg;
    udb_val v;
    int rc = udb_insert_or_get(&v, &c->created, txn, BENCH_TYPE, "ref", c->r->mp, c->r->mp_len);
    if (!rc && bench_mp_id(&c->id, v.data, v.size))
        c->id = 0;
    return rc;
}

static int u_insert_or_get(bool *created, uint64_t *id, void *conn, const bench_rec *r)
{
    iog_ctx c = {r, 0, 0};
    int rc = write(conn, iog_fn, &c);
    *created = c.created;
    *id = c.id;
    return rc;
}

static int u_count(bench_counts *out, void *db)
{
    return bench_pg_count(out, ((udb_pgdb *)db)->h.schema);
}

const bench_engine bench_engine_pg_udb = {
    .name = "uniqdb",
    .label = "uniqdb-pg",
    .sync_desc = "udb write transactions (SERIALIZABLE)",
    .nosync_desc = "-",
    .open = u_open,
    .close = u_close,
    .insert = u_insert,
    .lookup = u_lookup,
    .insert_or_get = u_insert_or_get,
    .count = u_count,
};
