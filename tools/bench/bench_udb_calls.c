/*
 * bench_udb_calls.c -- the uniqdb calls a workload makes, through the public
 * API, shared by uniqdb-bench (an LMDB directory) and uniqdb-bench-pg (a
 * postgresql:// URL): the same code on both backends, as an application's.
 */
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "uniqdb.h"

static int fail(const char *who, int rc, const char *what, const char *detail)
{
    fprintf(stderr, "%s: %s: %s (%s)\n", who, what, udb_strerror(rc), detail);
    return rc;
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

int bench_udb_insert(const char *who, udb_env *env, const bench_rec *recs, size_t n)
{
    ins_ctx c = {recs, n};
    int rc = udb_write(env, insert_fn, &c);
    return rc ? fail(who, rc, "insert", udb_env_errmsg(env)) : 0;
}

int bench_udb_lookup(const char *who, size_t *matched, udb_env *env, const bench_rec *recs,
                     size_t n)
{
    udb_txn *txn;
    int rc = udb_begin(&txn, env, UDB_RDONLY);
    if (rc)
        return fail(who, rc, "begin", udb_env_errmsg(env));
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
            fail(who, rc, "find", udb_errmsg(txn));
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

int bench_udb_insert_or_get(const char *who, bool *created, uint64_t *id, udb_env *env,
                            const bench_rec *r)
{
    iog_ctx c = {r, 0, 0};
    int rc = udb_write(env, iog_fn, &c);
    if (rc)
        return fail(who, rc, "insert_or_get", udb_env_errmsg(env));
    *created = c.created;
    *id = c.id;
    return 0;
}
