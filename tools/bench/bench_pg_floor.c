/*
 * bench_pg_floor.c -- the floor of uniqdb-bench-pg: what the PostgreSQL
 * backend does, written by hand with libpq, as an application that knows its
 * one table would write it.
 *
 * The table is the one the backend uses: the floor applies the same uniqdb
 * schema (engine/pg's schema apply, so ddl.c's layout: typed columns,
 * text COLLATE "C", uint as numeric(20,0), the same unique and partial
 * indexes) into a PostgreSQL schema of its own, then never goes through
 * uniqdb again.  Statements are prepared once per connection; transactions
 * have the backend's isolation (engine/pg/pgstore.c): writers SERIALIZABLE,
 * readers REPEATABLE READ READ ONLY; a writer re-runs on a serialization
 * failure or deadlock (40001, 40P01), as udb_write does.  insert_or_get is
 * INSERT ... ON CONFLICT DO NOTHING RETURNING, then a SELECT by the unique
 * key when nothing was inserted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "bench_pg.h"

typedef struct floor_db {
    bench_pg_handle h;   /* first */
    PGconn *c;
} floor_db;

#define COLS "id, ref, psychologist, slot, status, \"user\""

static int pq_fail(PGconn *c, const PGresult *r, const char *what)
{
    fprintf(stderr, "libpq floor: %s: %s", what,
            r && PQresultErrorMessage(r)[0] ? PQresultErrorMessage(r) : PQerrorMessage(c));
    return -1;
}

/* A serialization failure or deadlock: the transaction is to be run again. */
static bool retryable(const PGresult *r)
{
    const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    return st && (strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0);
}

/* Run a statement without parameters; 0, 1 (retry: rolled back), -1. */
static int simple(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    int rc = 0;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        rc = retryable(r) ? 1 : pq_fail(c, r, sql);
        PQclear(PQexec(c, "ROLLBACK"));
    }
    PQclear(r);
    return rc;
}

static int prepare(PGconn *c, const char *name, const char *sql, int n)
{
    PGresult *r = PQprepare(c, name, sql, n, NULL);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : pq_fail(c, r, name);
    PQclear(r);
    return rc;
}

static int f_conn(floor_db *f, const char *path)
{
    char q[160];
    bench_pg_schema_of(f->h.schema, path);
    f->c = PQconnectdb(bench_pg_conninfo());
    if (PQstatus(f->c) != CONNECTION_OK)
        return pq_fail(f->c, NULL, "connect");
    char ins[512], iog[600], find[400];
    snprintf(q, sizeof q, "\"%s\".\"" BENCH_TYPE "\"", f->h.schema);
    snprintf(ins, sizeof ins, "INSERT INTO %s (" COLS ") VALUES ($1::numeric, $2::text, "
             "$3::text, $4::text, $5::text, $6::text)", q);
    snprintf(iog, sizeof iog, "%s ON CONFLICT DO NOTHING RETURNING id", ins);
    snprintf(find, sizeof find, "SELECT " COLS " FROM %s WHERE ref = $1::text", q);
    if (prepare(f->c, "ins", ins, 6) || prepare(f->c, "iog", iog, 6) ||
        prepare(f->c, "find", find, 1))
        return -1;
    return 0;
}

static int f_open(void **out, const char *path, bool durable)
{
    (void)durable;   /* the server's settings decide (fsync on under the bench) */
    if (bench_pg_apply(path))
        return -1;
    floor_db *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    if (f_conn(f, path)) {
        PQfinish(f->c);
        free(f);
        return -1;
    }
    *out = f;
    return 0;
}

static void f_close(void *db)
{
    floor_db *f = db;
    PQfinish(f->c);
    free(f);
}

static void params_of(const char *v[6], char id[24], const bench_rec *r)
{
    snprintf(id, 24, "%llu", (unsigned long long)r->id);
    v[0] = id;
    v[1] = r->ref;
    v[2] = r->psych;
    v[3] = r->slot;
    v[4] = r->status;
    v[5] = r->user;
}

/* One attempt at inserting recs in a transaction: 0, 1 (retry), -1. */
static int insert_once(PGconn *c, const bench_rec *recs, size_t n)
{
    int rc = simple(c, "BEGIN ISOLATION LEVEL SERIALIZABLE");
    for (size_t i = 0; i < n && !rc; i++) {
        const char *v[6];
        char id[24];
        params_of(v, id, &recs[i]);
        PGresult *r = PQexecPrepared(c, "ins", 6, v, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            rc = retryable(r) ? 1 : pq_fail(c, r, "insert");
            PQclear(PQexec(c, "ROLLBACK"));
        }
        PQclear(r);
    }
    return rc ? rc : simple(c, "COMMIT");
}

static int f_insert(void *db, const bench_rec *recs, size_t n)
{
    floor_db *f = db;
    int rc;
    while ((rc = insert_once(f->c, recs, n)) == 1)
        ;
    return rc;
}

/* Is row i of r record rec, column by column? */
static bool same_row(const PGresult *r, int i, const bench_rec *rec)
{
    char id[24];
    snprintf(id, sizeof id, "%llu", (unsigned long long)rec->id);
    const char *want[6] = {id, rec->ref, rec->psych, rec->slot, rec->status, rec->user};
    for (int k = 0; k < 6; k++)
        if (PQgetisnull(r, i, k) || strcmp(PQgetvalue(r, i, k), want[k]) != 0)
            return false;
    return true;
}

static int f_lookup(size_t *matched, void *db, const bench_rec *recs, size_t n)
{
    floor_db *f = db;
    size_t ok = 0;
    int rc = simple(f->c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    for (size_t i = 0; i < n && !rc; i++) {
        const char *v = recs[i].ref;
        PGresult *r = PQexecPrepared(f->c, "find", 1, &v, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            rc = pq_fail(f->c, r, "find");
        else if (PQntuples(r) == 1 && same_row(r, 0, &recs[i]))
            ok++;
        PQclear(r);
    }
    if (!rc)
        rc = simple(f->c, "COMMIT");
    else
        PQclear(PQexec(f->c, "ROLLBACK"));
    *matched = ok;
    return rc ? -1 : 0;
}

/* One attempt: 0, 1 (retry), -1. */
static int iog_once(bool *created, uint64_t *id, PGconn *c, const bench_rec *rec)
{
    int rc = simple(c, "BEGIN ISOLATION LEVEL SERIALIZABLE");
    if (rc)
        return rc;
    const char *v[6];
    char idtxt[24];
    params_of(v, idtxt, rec);
    PGresult *r = PQexecPrepared(c, "iog", 6, v, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 0) {
        PQclear(r);
        r = PQexecPrepared(c, "find", 1, &v[1], NULL, NULL, 0);
        *created = false;
    } else {
        *created = true;
    }
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        rc = PQresultStatus(r) == PGRES_TUPLES_OK ? pq_fail(c, r, "insert_or_get: no row")
             : retryable(r) ? 1 : pq_fail(c, r, "insert_or_get");
        PQclear(PQexec(c, "ROLLBACK"));
    } else {
        *id = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    }
    PQclear(r);
    return rc ? rc : simple(c, "COMMIT");
}

static int f_insert_or_get(bool *created, uint64_t *id, void *conn, const bench_rec *rec)
{
    floor_db *f = conn;
    int rc;
    while ((rc = iog_once(created, id, f->c, rec)) == 1)
        ;
    return rc;
}

static int f_count(bench_counts *out, void *db)
{
    return bench_pg_count(out, ((floor_db *)db)->h.schema);
}

const bench_engine bench_engine_pg_floor = {
    .name = "libpq",
    .label = "libpq floor",
    .sync_desc = "SERIALIZABLE writers, prepared statements",
    .nosync_desc = "-",
    .open = f_open,
    .close = f_close,
    .insert = f_insert,
    .lookup = f_lookup,
    .insert_or_get = f_insert_or_get,
    .count = f_count,
};
