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

static int u_insert(void *db, const bench_rec *recs, size_t n)
{
    return bench_udb_insert("uniqdb-pg", ((udb_pgdb *)db)->env, recs, n);
}

static int u_lookup(size_t *matched, void *db, const bench_rec *recs, size_t n)
{
    return bench_udb_lookup("uniqdb-pg", matched, ((udb_pgdb *)db)->env, recs, n);
}

static int u_insert_or_get(bool *created, uint64_t *id, void *conn, const bench_rec *r)
{
    return bench_udb_insert_or_get("uniqdb-pg", created, id, ((udb_pgdb *)conn)->env, r);
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
