/*
 * bench_uniqdb.c -- the uniqdb side of the benchmark, through the public API
 * only (include/uniqdb.h), the way an application would use it: writes go
 * through udb_write() (the call that grows the map and, with group commit,
 * shares commits between threads), reads through read-only transactions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "uniqdb.h"

unsigned bench_udb_flags;
bool bench_udb_exec;


static int fail(int rc, const char *what, const char *detail)
{
    fprintf(stderr, "uniqdb: %s: %s (%s)\n", what, udb_strerror(rc), detail);
    return rc;
}

static int u_open(void **out, const char *path, bool durable)
{
    udb_options opts = UDB_OPTIONS_INIT;
    opts.map_size = BENCH_MAP_SIZE;
    opts.flags = (durable ? 0 : UDB_NOSYNC) | bench_udb_flags;
    udb_env *env;
    int rc = udb_open(&env, path, &opts);
    if (rc)
        return fail(rc, "open", udb_env_errmsg(NULL));
    if ((rc = udb_schema_apply(NULL, env, bench_schema_json, strlen(bench_schema_json), 0))) {
        fail(rc, "schema", udb_env_errmsg(env));
        udb_close(env);
        return rc;
    }
    *out = env;
    return 0;
}

static void u_close(void *db)
{
    udb_close(db);
}

static int u_insert(void *db, const bench_rec *recs, size_t n)
{
    return bench_udb_insert("uniqdb", db, recs, n);
}

static int u_lookup(size_t *matched, void *db, const bench_rec *recs, size_t n)
{
    return bench_udb_lookup("uniqdb", matched, db, recs, n);
}

/* insert_or_get of r as a udb_exec() op. */
static udb_op iog_op(const bench_rec *r)
{
    udb_op op = UDB_OP_INIT;
    op.kind = UDB_OP_INSERT_OR_GET;
    op.type = BENCH_TYPE;
    op.index = "ref";
    op.rec.data = r->mp;
    op.rec.size = r->mp_len;
    return op;
}

/* What an insert_or_get unit returned: created, and the record's id (0 if
 * it is not ours: verification says so). */
static void iog_result(bool *created, uint64_t *id, const udb_results *res)
{
    const udb_result *out = udb_result_at(res, 0);
    *created = out->created;
    if (bench_mp_id(id, out->record.data, out->record.size))
        *id = 0;
}

/* The same as one udb_exec() unit: data another process's leader can run. */
static int u_exec_insert_or_get(bool *created, uint64_t *id, void *conn, const bench_rec *r)
{
    udb_op op = iog_op(r);
    udb_results *res;
    int rc = udb_exec(&res, conn, &op, 1);
    if (!rc)
        iog_result(created, id, res);
    udb_results_free(res);
    return rc ? fail(rc, "exec", udb_env_errmsg(conn)) : 0;
}

typedef struct async_ctx {
    void (*done)(void *ctx, int rc, bool created, uint64_t id);
    void *ctx;
} async_ctx;

static void u_async_done(int rc, udb_results *res, const char *errmsg, void *payload)
{
    async_ctx *a = payload;
    bool created = false;
    uint64_t id = 0;
    if (!rc)
        iog_result(&created, &id, res);
    else
        fail(rc, "exec_async", errmsg);
    udb_results_free(res);
    a->done(a->ctx, rc, created, id);
    free(a);
}

/* One udb_exec_async() unit: the engine carries it, and calls back once
 * it is durable. */
static int u_insert_or_get_async(void *conn, const bench_rec *r,
                                 void (*done)(void *ctx, int rc, bool created, uint64_t id),
                                 void *ctx)
{
    async_ctx *a = malloc(sizeof *a);
    if (!a)
        return fail(UDB_ENOMEM, "exec_async", "out of memory");
    *a = (async_ctx){done, ctx};
    udb_op op = iog_op(r);
    int rc = udb_exec_async(conn, &op, 1, u_async_done, a);
    if (rc) {
        free(a);
        return fail(rc, "exec_async", udb_env_errmsg(conn));
    }
    return 0;
}

static int u_drain(void *conn)
{
    int rc = udb_exec_async_wait(conn);
    return rc ? fail(rc, "exec_async_wait", udb_env_errmsg(conn)) : 0;
}

static int u_insert_or_get(bool *created, uint64_t *id, void *conn, const bench_rec *r)
{
    if (bench_udb_exec)
        return u_exec_insert_or_get(created, id, conn, r);
    return bench_udb_insert_or_get("uniqdb", created, id, conn, r);
}

static int u_scan(bench_ids *ids, size_t *counts, void *db, const char (*users)[16], size_t n)
{
    udb_txn *txn;
    int rc = udb_begin(&txn, db, UDB_RDONLY);
    if (rc)
        return fail(rc, "begin", udb_env_errmsg(db));
    for (size_t j = 0; j < n && !rc; j++) {
        unsigned char prefix[64];
        const char *user = users[j];
        size_t len = bench_pack_strs(prefix, sizeof prefix, &user, 1);
        udb_cursor *cur;
        if ((rc = udb_scan(&cur, txn, BENCH_TYPE, "by_user", prefix, len))) {
            fail(rc, "scan", udb_errmsg(txn));
            break;
        }
        udb_val v;
        size_t rows = 0;
        while ((rc = udb_cursor_next(&v, cur)) == 0) {
            uint64_t id;
            if (bench_mp_id(&id, v.data, v.size))
                id = 0;                 /* not ours: verification will say so */
            if (bench_ids_push(ids, id)) {
                rc = UDB_ENOMEM;
                break;
            }
            rows++;
        }
        if (rc == UDB_ENOTFOUND)
            rc = 0;
        else if (rc)
            fail(rc, "cursor", udb_errmsg(txn));
        udb_cursor_close(cur);
        counts[j] = rows;
    }
    udb_abort(txn);
    return rc;
}

static int u_count(bench_counts *out, void *db)
{
    udb_txn *txn;
    int rc = udb_begin(&txn, db, UDB_RDONLY);
    if (rc)
        return fail(rc, "begin", udb_env_errmsg(db));
    udb_type_stat st;
    if ((rc = udb_type_stat_get(&st, txn, BENCH_TYPE)))
        fail(rc, "stat", udb_errmsg(txn));
    udb_abort(txn);
    out->records = st.records;
    out->entries = st.index_entries;
    return rc;
}

static void report_problem(const char *problem, void *ctx)
{
    size_t *shown = ctx;
    if ((*shown)++ < 5)
        fprintf(stderr, "uniqdb: check: %s\n", problem);
}

static int u_check(void *db)
{
    size_t problems = 0, shown = 0;
    int rc = udb_check(&problems, db, report_problem, &shown);
    return rc ? fail(rc, "check", udb_env_errmsg(db)) : 0;
}

const bench_engine bench_engine_uniqdb = {
    .name = "uniqdb",
    .label = "uniqdb",
    .sync_desc = "default (fsync per commit)",
    .nosync_desc = "UDB_NOSYNC",
    .open = u_open,
    .close = u_close,
    .insert = u_insert,
    .lookup = u_lookup,
    .insert_or_get = u_insert_or_get,
    .insert_or_get_async = u_insert_or_get_async,
    .drain = u_drain,
    .scan = u_scan,
    .count = u_count,
    .check = u_check,
    .lmdb_dir = true,
};
