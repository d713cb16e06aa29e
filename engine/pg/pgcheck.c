/*
 * pgcheck.c -- udb_check on a PostgreSQL database: the server's tables
 * are what the stored schema says, and every row is a valid record.
 *
 * The server keeps its own indexes consistent, so what can differ is what
 * another SQL client did to the tables: a dropped or changed index or CHECK,
 * an added unique index, a column of another type, a row written without
 * uniqdb.  The catalog is compared with what ddl.c makes of the schema,
 * made for real in a scratch PostgreSQL schema inside a transaction that is
 * rolled back, so both sides are in the server's own words (pg_get_indexdef,
 * pg_get_constraintdef, format_type).  Then every row of each type is read
 * (as udb_get would) and validated against its type.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "backend.h"
#include "error.h"
#include "pgconn.h"
#include "pgddl.h"
#include "pgmeta.h"
#include "pgstore.h"
#include "record.h"

/* One line per column, constraint and index of table $2 in schema $1, in
 * words that do not name the schema; a tag first (c, k, i, u: a unique
 * index). */
static const char catalog_sql[] =
    "SELECT 'c ' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)"
    " || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END"
    " || coalesce(' collate ' || co.collname, '')"
    " FROM pg_attribute a JOIN pg_class t ON t.oid = a.attrelid"
    " JOIN pg_namespace n ON n.oid = t.relnamespace"
    " LEFT JOIN pg_collation co ON co.oid = a.attcollation AND a.attcollation <> 0"
    " WHERE n.nspname = $1 AND t.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped"
    " UNION ALL SELECT 'k ' || k.conname || ' ' || pg_get_constraintdef(k.oid)"
    " FROM pg_constraint k JOIN pg_class t ON t.oid = k.conrelid"
    " JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = $1 AND t.relname = $2"
    " UNION ALL SELECT CASE WHEN x.indisunique THEN 'u ' ELSE 'i ' END || i.relname || ' '"
    " || replace(pg_get_indexdef(x.indexrelid), quote_ident($1) || '.', '')"
    " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
    " JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace"
    " WHERE n.nspname = $1 AND t.relname = $2"
    " ORDER BY 1";

typedef struct checker {
    size_t problems;
    udb_report_fn report;
    udb_progress_fn progress;
    void *ctx;
    uint64_t done, total;
    const udb_type *t;
    udb_buf msg;
} checker;

static void problem(checker *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(checker *c, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    c->problems++;
    if (c->report)
        c->report(line, c->ctx);
}

static bool has_line(const PGresult *r, const char *line)
{
    for (int i = 0; i < PQntuples(r); i++)
        if (strcmp(PQgetvalue(r, i, 0), line) == 0)
            return true;
    return false;
}

/* Compare type t's table in pgschema with the one made in scratch. */
static int compare_table(checker *c, PGconn *conn, const char *pgschema, const char *scratch,
                         const udb_type *t)
{
    PGresult *want = NULL, *have = NULL;
    const char *pw[2] = {scratch, t->name}, *ph[2] = {pgschema, t->name};
    int rc = udb__pg_execp(&want, conn, catalog_sql, 2, pw, &c->msg);
    if (!rc)
        rc = udb__pg_execp(&have, conn, catalog_sql, 2, ph, &c->msg);
    if (!rc && PQntuples(have) == 0)
        problem(c, "type \"%s\": the server has no table \"%s\".\"%s\"", t->name, pgschema,
                t->name);
    for (int i = 0; !rc && PQntuples(have) && i < PQntuples(want); i++)
        if (!has_line(have, PQgetvalue(want, i, 0)))
            problem(c, "type \"%s\": the server's table lacks, or has changed, %s", t->name,
                    PQgetvalue(want, i, 0));
    for (int i = 0; !rc && have && i < PQntuples(have); i++) {
        const char *line = PQgetvalue(have, i, 0);
        /* an index of the user's own that enforces nothing is harmless */
        if (line[0] != 'i' && !has_line(want, line))
            problem(c, "type \"%s\": the server's table has %s, which the schema does not",
                    t->name, line);
    }
    PQclear(want);
    PQclear(have);
    return rc;
}

/* The tables of s, as ddl.c makes them, in a scratch schema that is
 * rolled back, compared with the database's. */
static int check_catalog(checker *c, udb_pgpool *pool, const udb_schema *s, const char *type)
{
    PGconn *conn;
    int rc = udb__pg_acquire(&conn, pool, &c->msg);
    if (rc)
        return rc;
    unsigned r = 0;
    if (getrandom(&r, sizeof r, 0) != sizeof r)
        r = (unsigned)getpid();
    char scratch[64];
    snprintf(scratch, sizeof scratch, "udb_check_%ld_%08x", (long)getpid(), r);
    udb_buf q = {0};
    udb__buf_printf(&q, "BEGIN; CREATE SCHEMA ");
    udb__pg_ident(&q, scratch);
    udb_pgddl o = {.pgschema = scratch};
    rc = q.oom ? UDB_ENOMEM : 0;
    if (!rc)
        rc = udb__pg_exec(NULL, conn, (const char *)q.p, &c->msg);
    q.len = 0;
    if (!rc)
        rc = udb__pg_ddl(&q, s, &o, UDB_PGDDL_TABLES | UDB_PGDDL_INDEXES, &c->msg);
    if (!rc)
        rc = udb__pg_exec(NULL, conn, (const char *)q.p, &c->msg);
    const char *pgschema = udb__pg_pool_schema(pool);
    for (size_t i = 0; !rc && i < s->ntypes; i++)
        if (!type || strcmp(type, s->types[i].name) == 0)
            rc = compare_table(c, conn, pgschema, scratch, &s->types[i]);
    udb_buf m2 = {0};
    udb__pg_exec(NULL, conn, "ROLLBACK", &m2);
    udb__buf_free(&m2);
    udb__buf_free(&q);
    udb__pg_release(pool, conn);
    return rc;
}

static int check_row(void *arg, const udb_val *pk, const udb_val *rec)
{
    checker *c = arg;
    (void)pk;
    udb_rec r;
    udb__rec_init(&r);
    c->msg.len = 0;
    if (udb__rec_parse(&r, c->t, rec->data, rec->size, false, &c->msg) ||
        udb__rec_required(&r, c->t, &c->msg)) {
        problem(c, "type \"%s\": a row is not a valid record: %.*s", c->t->name,
                (int)c->msg.len, c->msg.p ? (const char *)c->msg.p : "");
    }
    udb__rec_free(&r);
    c->done++;
    if (c->progress && c->done % 4096 == 0)
        c->progress(c->done, c->total, c->ctx);
    return 0;
}

int udb__pg_check(size_t *problems, udb_env *env, const char *type, udb_report_fn report,
                  udb_progress_fn progress, void *ctx)
{
    checker c = {.report = report, .progress = progress, .ctx = ctx};
    udb_txn *txn = NULL;
    int rc = udb_begin(&txn, env, UDB_RDONLY);
    if (rc)
        return rc;
    const udb_schema *s = udb__txn_schema(txn);
    const udb_backend *be = udb__txn_backend(txn);
    udb_pgpool *pool = udb__pg_txn_pool(txn);
    if (s)
        rc = check_catalog(&c, pool, s, type);
    for (size_t i = 0; s && !rc && i < s->ntypes; i++) {
        uint64_t n = 0;
        if ((!type || strcmp(type, s->types[i].name) == 0) &&
            (rc = be->count(&n, txn, s, &s->types[i])) == 0)
            c.total += n;
    }
    for (size_t i = 0; s && !rc && i < s->ntypes; i++) {
        if (type && strcmp(type, s->types[i].name) != 0)
            continue;
        c.t = &s->types[i];
        rc = be->each(txn, s, c.t, check_row, &c);
    }
    if (rc)
        udb__env_err(rc, "udb_check: %.*s", c.msg.p ? (int)c.msg.len : 0,
                     c.msg.p ? (const char *)c.msg.p : udb_errmsg(txn));
    else if (progress)
        progress(c.done, c.total, ctx);
    udb_abort(txn);
    udb__buf_free(&c.msg);
    if (problems)
        *problems = c.problems;
    return rc ? rc : c.problems ? UDB_ECORRUPT : 0;
}
