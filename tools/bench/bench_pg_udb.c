/*
 * bench_pg_udb.c -- the uniqdb side of uniqdb-bench-pg: the public API on a
 * postgresql:// URL, the same calls the LMDB rows of uniqdb-bench make --
 * udb_write (which runs the callback again when the server refuses it as
 * concurrent) for writes, read-only udb_begin for lookups.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_pg.h"
#include "uniqdb.h"

bool bench_udb_exec;   /* bench_work.c sets it for W4 "exec" rows, which this bench has not */

typedef struct udb_pgdb {
    bench_pg_handle h;   /* first */
    udb_env *env;
} udb_pgdb;

static int fail(int rc, const char *what, const char *detail)
{
    fprintf(stderr, "uniqdb-pg: %s: %s (%s)\n", what, udb_strerror(rc), detail);
    return rc;
}

/* Open the database of path; apply the benchmark's schema when asked. */
static int env_open(udb_env **out, const char *path, bool apply)
{
    char url[1024];
    bench_pg_url(url, sizeof url, path);
    int rc = udb_open(out, url, NULL);
    if (rc)
        return fail(rc, "open", udb_env_errmsg(NULL));
    if (apply && (rc = udb_schema_apply(NULL, *out, bench_schema_json,
                                        strlen(bench_schema_json), 0))) {
        fail(rc, "schema", udb_env_errmsg(*out));
        udb_close(*out);
    }
    return rc;
}

int bench_pg_apply(const char *path)
{
    udb_env *env;
    int rc = env_open(&env, path, true);
    if (!rc)
        udb_close(env);
    return rc ? -1 : 0;
}

static int u_open(void **out, const char *path, bool durable)
{
    (void)durable;   /* the server's settings decide (fsync on under the bench) */
    udb_pgdb *d = calloc(1, sizeof *d);
    if (!d)
        return -1;
    bench_pg_schema_of(d->h.schema, path);
    if (env_open(&d->env, path, true)) {
        free(d);
        return -1;
    }
    *out = d;
    return 0;
}

static void u_close(void *db)
{
    udb_pgdb *d = db;
    udb_close(d->env);
    free(d);
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
    udb_pgdb *d = db;
    ins_ctx c = {recs, n};
    int rc = udb_write(d->env, insert_fn, &c);
    return rc ? fail(rc, "write", udb_env_errmsg(d->env)) : 0;
}

static int u_lookup(size_t *matched, void *db, const bench_rec *recs, size_t n)
{
    udb_pgdb *d = db;
    udb_txn *txn;
    int rc = udb_begin(&txn, d->env, UDB_RDONLY);
    if (rc)
        return fail(rc, "begin", udb_env_errmsg(d->env));
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
    udb_abort(txn);
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
    udb_pgdb *d = conn;
    iog_ctx c = {r, 0, 0};
    int rc = udb_write(d->env, iog_fn, &c);
    if (rc)
        return fail(rc, "write", udb_env_errmsg(d->env));
    *created = c.created;
    *id = c.id;
    return 0;
}

static int u_count(bench_counts *out, void *db)
{
    return bench_pg_count(out, ((udb_pgdb *)db)->h.schema);
}

const bench_engine bench_engine_pg_udb = {
    .name = "uniqdb",
    .label = "uniqdb-pg",
    .sync_desc = "udb_write (SERIALIZABLE)",
    .nosync_desc = "-",
    .open = u_open,
    .close = u_close,
    .insert = u_insert,
    .lookup = u_lookup,
    .insert_or_get = u_insert_or_get,
    .count = u_count,
};
