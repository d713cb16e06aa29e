/*
 * bench_sqlite.c -- SQLite as a user would set it up for this job: the same
 * table, a UNIQUE constraint, a partial unique index with the same predicate,
 * and the same non-unique index; WAL mode, prepared statements, BEGIN
 * IMMEDIATE for writes, and by default a page cache large enough to hold the
 * database (so it competes with memory-mapped LMDB on reads, not with
 * read(2); --sqlite-cache 0 keeps SQLite's 2 MiB default).
 * synchronous=FULL is paired with LMDB's default durability (each commit
 * survives a power cut); synchronous=NORMAL with MDB_NOSYNC (in WAL mode,
 * commits are not synced; a crash may lose recent ones, never corrupt).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "bench.h"

unsigned bench_sqlite_cache_mib = 64;

#define COLS "id, ref, psychologist, slot, status, user"

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS " BENCH_TYPE " ("
    " id INTEGER PRIMARY KEY,"
    " ref TEXT NOT NULL UNIQUE,"
    " psychologist TEXT NOT NULL,"
    " slot TEXT NOT NULL,"
    " status TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'cancelled', 'completed')),"
    " user TEXT);"
    "CREATE UNIQUE INDEX IF NOT EXISTS active_slot ON " BENCH_TYPE " (psychologist, slot)"
    " WHERE status IN ('pending', 'confirmed');"
    "CREATE INDEX IF NOT EXISTS by_user ON " BENCH_TYPE " (user, slot);";

enum { S_INSERT, S_IOG, S_FIND, S_SCAN, S_BEGIN_W, S_BEGIN_R, S_COMMIT, S_ROLLBACK, S_N };

static const char *const SQL[S_N] = {
    [S_INSERT] = "INSERT INTO " BENCH_TYPE " (" COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [S_IOG] = "INSERT INTO " BENCH_TYPE " (" COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
              " ON CONFLICT (ref) DO NOTHING",
    [S_FIND] = "SELECT " COLS " FROM " BENCH_TYPE " WHERE ref = ?1",
    [S_SCAN] = "SELECT " COLS " FROM " BENCH_TYPE " WHERE user = ?1 ORDER BY slot, id",
    [S_BEGIN_W] = "BEGIN IMMEDIATE",
    [S_BEGIN_R] = "BEGIN",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
};

typedef struct sq_db {
    sqlite3 *db;
    sqlite3_stmt *st[S_N];
} sq_db;

static int fail(sq_db *d, int rc, const char *what)
{
    fprintf(stderr, "sqlite: %s: %s (%s)\n", what, sqlite3_errstr(rc),
            d && d->db ? sqlite3_errmsg(d->db) : "");
    return rc;
}

/* Run a statement that returns no rows. */
static int run(sq_db *d, int which)
{
    sqlite3_stmt *s = d->st[which];
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : fail(d, rc, SQL[which]);
}

static void s_close(void *db)
{
    sq_db *d = db;
    if (!d)
        return;
    for (int i = 0; i < S_N; i++)
        sqlite3_finalize(d->st[i]);
    sqlite3_close(d->db);
    free(d);
}

static int s_open(void **out, const char *path, bool durable)
{
    sq_db *d = calloc(1, sizeof *d);
    if (!d)
        return SQLITE_NOMEM;
    int rc;
    if (mkdir(path, 0750) != 0 && errno != EEXIST) {
        fprintf(stderr, "sqlite: mkdir %s: %s\n", path, strerror(errno));
        rc = SQLITE_CANTOPEN;
        goto out;
    }
    char file[4096];
    snprintf(file, sizeof file, "%s/bench.db", path);
    char pragmas[200];
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA journal_mode = WAL; PRAGMA synchronous = %s; PRAGMA cache_size = %ld;",
             durable ? "FULL" : "NORMAL",
             bench_sqlite_cache_mib ? -1024L * (long)bench_sqlite_cache_mib : -2000L);
    if ((rc = sqlite3_open_v2(file, &d->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL))) {
        fail(d, rc, "open");
        goto out;
    }
    sqlite3_busy_timeout(d->db, 600000);
    if ((rc = sqlite3_exec(d->db, pragmas, NULL, NULL, NULL)) ||
        (rc = sqlite3_exec(d->db, SCHEMA, NULL, NULL, NULL))) {
        fail(d, rc, "setup");
        goto out;
    }
    for (int i = 0; i < S_N && !rc; i++)
        if ((rc = sqlite3_prepare_v3(d->db, SQL[i], -1, SQLITE_PREPARE_PERSISTENT, &d->st[i],
                                     NULL)))
            fail(d, rc, SQL[i]);
out:
    if (rc) {
        s_close(d);
        return rc;
    }
    *out = d;
    return 0;
}

static int s_conn_open(void **out, void *db, const char *path, bool durable)
{
    return s_open(out, path, durable);
}

static void bind_rec(sqlite3_stmt *s, const bench_rec *r)
{
    sqlite3_bind_int64(s, 1, (sqlite3_int64)r->id);
    sqlite3_bind_text(s, 2, r->ref, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, r->psych, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, r->slot, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, r->status, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 6, r->user, -1, SQLITE_STATIC);
}

/* Finish a transaction: COMMIT if rc is 0, else ROLLBACK and keep rc. */
static int finish(sq_db *d, int rc)
{
    if (!rc)
        return run(d, S_COMMIT);
    run(d, S_ROLLBACK);
    return rc;
}

static int s_insert(void *db, const bench_rec *recs, size_t n)
{
    sq_db *d = db;
    int rc = run(d, S_BEGIN_W);
    if (rc)
        return rc;
    sqlite3_stmt *s = d->st[S_INSERT];
    for (size_t i = 0; i < n && !rc; i++) {
        bind_rec(s, &recs[i]);
        rc = run(d, S_INSERT);
    }
    return finish(d, rc);
}

static bool col_is(sqlite3_stmt *s, int col, const char *want)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    return t && strcmp((const char *)t, want) == 0;
}

/* The row s is on holds exactly record r. */
static bool row_is(sqlite3_stmt *s, const bench_rec *r)
{
    return (uint64_t)sqlite3_column_int64(s, 0) == r->id && col_is(s, 1, r->ref) &&
           col_is(s, 2, r->psych) && col_is(s, 3, r->slot) && col_is(s, 4, r->status) &&
           col_is(s, 5, r->user);
}

static int s_lookup(size_t *matched, void *db, const bench_rec *recs, size_t n)
{
    sq_db *d = db;
    int rc = run(d, S_BEGIN_R);
    if (rc)
        return rc;
    sqlite3_stmt *s = d->st[S_FIND];
    size_t ok = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        sqlite3_bind_text(s, 1, recs[i].ref, -1, SQLITE_STATIC);
        int st = sqlite3_step(s);
        if (st == SQLITE_ROW)
            ok += row_is(s, &recs[i]);
        else if (st != SQLITE_DONE)
            rc = fail(d, st, "find");
        sqlite3_reset(s);
    }
    *matched = ok;
    return finish(d, rc);
}

static int s_insert_or_get(bool *created, uint64_t *id, void *conn, const bench_rec *r)
{
    sq_db *d = conn;
    int rc = run(d, S_BEGIN_W);
    if (rc)
        return rc;
    bind_rec(d->st[S_IOG], r);
    if ((rc = run(d, S_IOG)))
        return finish(d, rc);
    *created = sqlite3_changes(d->db) == 1;
    *id = r->id;
    if (!*created) {
        sqlite3_stmt *s = d->st[S_FIND];
        sqlite3_bind_text(s, 1, r->ref, -1, SQLITE_STATIC);
        int st = sqlite3_step(s);
        if (st == SQLITE_ROW)
            *id = (uint64_t)sqlite3_column_int64(s, 0);
        else
            rc = fail(d, st == SQLITE_DONE ? SQLITE_NOTFOUND : st, "insert_or_get lookup");
        sqlite3_reset(s);
    }
    return finish(d, rc);
}

static int s_scan(bench_ids *ids, size_t *counts, void *db, const char (*users)[16], size_t n)
{
    sq_db *d = db;
    int rc = run(d, S_BEGIN_R);
    if (rc)
        return rc;
    sqlite3_stmt *s = d->st[S_SCAN];
    for (size_t j = 0; j < n && !rc; j++) {
        sqlite3_bind_text(s, 1, users[j], -1, SQLITE_STATIC);
        size_t rows = 0;
        int st;
        while ((st = sqlite3_step(s)) == SQLITE_ROW) {
            /* fetch the whole row, as uniqdb hands back the whole record */
            bool whole = true;
            for (int c = 1; c < 6; c++)
                whole &= sqlite3_column_text(s, c) != NULL;
            if (bench_ids_push(ids, whole ? (uint64_t)sqlite3_column_int64(s, 0) : 0)) {
                st = SQLITE_NOMEM;
                break;
            }
            rows++;
        }
        if (st != SQLITE_DONE)
            rc = fail(d, st, "scan");
        sqlite3_reset(s);
        counts[j] = rows;
    }
    return finish(d, rc);
}

/* One integer from a query. */
static int query_u64(uint64_t *out, sq_db *d, const char *sql)
{
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v2(d->db, sql, -1, &s, NULL);
    if (rc)
        return fail(d, rc, sql);
    if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        *out = (uint64_t)sqlite3_column_int64(s, 0);
        rc = 0;
    } else {
        fail(d, rc, sql);
    }
    sqlite3_finalize(s);
    return rc;
}

static int s_count(bench_counts *out, void *db)
{
    sq_db *d = db;
    uint64_t refs = 0, active = 0;
    /* distinct counts: a duplicate key would show as a missing entry */
    int rc = query_u64(&out->records, d, "SELECT count(*) FROM " BENCH_TYPE);
    if (!rc)
        rc = query_u64(&refs, d, "SELECT count(DISTINCT ref) FROM " BENCH_TYPE);
    if (!rc)
        rc = query_u64(&active, d, "SELECT count(*) FROM (SELECT DISTINCT psychologist, slot"
                       " FROM " BENCH_TYPE " WHERE status IN ('pending', 'confirmed'))");
    out->entries = refs + active + out->records;
    return rc;
}

static int s_check(void *db)
{
    sq_db *d = db;
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v2(d->db, "PRAGMA integrity_check", -1, &s, NULL);
    if (rc)
        return fail(d, rc, "integrity_check");
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && col_is(s, 0, "ok")) {
        rc = 0;
    } else {
        fprintf(stderr, "sqlite: integrity_check: %s\n",
                rc == SQLITE_ROW ? (const char *)sqlite3_column_text(s, 0) : sqlite3_errstr(rc));
        rc = SQLITE_CORRUPT;
    }
    sqlite3_finalize(s);
    return rc;
}

const bench_engine bench_engine_sqlite = {
    .name = "sqlite",
    .label = "SQLite",
    .sync_desc = "WAL, synchronous=FULL",
    .nosync_desc = "WAL, synchronous=NORMAL",
    .open = s_open,
    .close = s_close,
    .conn_open = s_conn_open,
    .conn_close = s_close,
    .insert = s_insert,
    .lookup = s_lookup,
    .insert_or_get = s_insert_or_get,
    .scan = s_scan,
    .count = s_count,
    .check = s_check,
};
