/*
 * pgcache.c -- per-connection memory of prepared statements and of the
 * schema (pgcache.h).
 *
 * The state hangs on the PGconn through libpq's event interface: an event
 * procedure registered on the connection gets PGEVT_CONNDESTROY from
 * PQfinish (free it) and PGEVT_CONNRESET from PQreset (the server session
 * is new: forget it).  Statements are named "udb_<n>" by the order they
 * were first seen; their text is the key.  A connection keeps at most
 * MAX_STMTS of them and runs any further text unprepared, so a stream of
 * ever-new texts cannot grow it without bound.
 */
#include <inttypes.h>
#include <libpq-events.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgcache.h"
#include "pgddl.h"
#include "pgmeta.h"

#define MAX_STMTS 1024

static bool test_stale;

void udb__pg_cache_test_stale(bool on)
{
    test_stale = on;
}

typedef struct stmt {
    uint64_t hash;
    char *sql;
    const char *seen;          /* the caller's text that last matched (compared again) */
    char name[24];
} stmt;

typedef struct text {
    const void *owner;
    unsigned kind;
    char *sql;
} text;

typedef struct conn_state {
    udb_schema *schema;        /* as of generation gen; NULL: none read yet */
    uint64_t gen;
    stmt *stmts;
    size_t n, cap;
    text *texts;               /* udb__pg_cache_text's */
    size_t ntexts, captexts;
    uint64_t prepares, schema_reads;
} conn_state;

static void forget_stmts(conn_state *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->stmts[i].sql);
    s->n = 0;
}

static void forget(conn_state *s)
{
    forget_stmts(s);
    for (size_t i = 0; i < s->ntexts; i++)
        free(s->texts[i].sql);
    s->ntexts = 0;
    udb__schema_free(s->schema);
    s->schema = NULL;
    s->gen = 0;
}

static int on_event(PGEventId id, void *info, void *pass)
{
    (void)pass;
    PGconn *c = NULL;
    if (id == PGEVT_CONNDESTROY)
        c = ((PGEventConnDestroy *)info)->conn;
    else if (id == PGEVT_CONNRESET)
        c = ((PGEventConnReset *)info)->conn;
    conn_state *s = c ? PQinstanceData(c, on_event) : NULL;
    if (s) {
        forget(s);
        if (id == PGEVT_CONNDESTROY) {
            free(s->stmts);
            free(s->texts);
            free(s);
            PQsetInstanceData(c, on_event, NULL);
        }
    }
    return 1;
}

/* c's state, made on first use; NULL: out of memory. */
static conn_state *state(PGconn *c)
{
    conn_state *s = PQinstanceData(c, on_event);
    if (s)
        return s;
    if (!(s = calloc(1, sizeof *s)))
        return NULL;
    if (!PQregisterEventProc(c, on_event, "uniqdb", NULL) ||
        !PQsetInstanceData(c, on_event, s)) {
        free(s);
        return NULL;
    }
    return s;
}

static uint64_t fnv1a(const char *p)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
    return h;
}

/* The name of sql's prepared statement on c, prepared now if it is new:
 * 0 (name[0] == '\0': run it unprepared), or an error in msg. */
static int prepared(char name[32], PGconn *c, const char *sql, int n, udb_buf *msg)
{
    name[0] = '\0';
    conn_state *s = state(c);
    if (!s)
        return 0;
    /* a caller mostly passes the same text again (a kept one, pgcache.h):
       its address finds the statement, the bytes confirm it, no hashing */
    for (size_t i = 0; i < s->n; i++)
        if (s->stmts[i].seen == sql && strcmp(s->stmts[i].sql, sql) == 0) {
            memcpy(name, s->stmts[i].name, sizeof s->stmts[i].name);
            return 0;
        }
    uint64_t h = fnv1a(sql);
    for (size_t i = 0; i < s->n; i++)
        if (s->stmts[i].hash == h && strcmp(s->stmts[i].sql, sql) == 0) {
            s->stmts[i].seen = sql;
            memcpy(name, s->stmts[i].name, sizeof s->stmts[i].name);
            return 0;
        }
    if (s->n == MAX_STMTS)
        return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        stmt *a = realloc(s->stmts, cap * sizeof *a);
        if (!a)
            return 0;
        s->stmts = a;
        s->cap = cap;
    }
    char *copy = strdup(sql);
    if (!copy)
        return 0;
    snprintf(name, 32, "udb_%zu", s->n);
    PGresult *r = PQprepare(c, name, sql, n, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        int rc = udb__pg_error(msg, c, r, "statement");
        PQclear(r);
        free(copy);
        return rc;
    }
    PQclear(r);
    stmt *st = &s->stmts[s->n++];
    *st = (stmt){.hash = h, .sql = copy, .seen = sql};
    memcpy(st->name, name, sizeof st->name);
    s->prepares++;
    return 0;
}

static int result_rc(PGresult **out, PGconn *c, PGresult *r, udb_buf *msg)
{
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        *out = r;
        return 0;
    }
    int rc = udb__pg_error(msg, c, r, "statement");
    PQclear(r);
    return rc;
}

int udb__pg_run_prepared(PGresult **r, PGconn *c, const char *sql, int n,
                         const char *const *values, const int *lengths, const int *formats,
                         udb_buf *msg)
{
    *r = NULL;
    char name[32];
    int rc = prepared(name, c, sql, n, msg);
    if (rc)
        return rc;
    PGresult *x = name[0] ? PQexecPrepared(c, name, n, values, lengths, formats, 0)
                          : PQexecParams(c, sql, n, NULL, values, lengths, formats, 0);
    return result_rc(r, c, x, msg);
}

int udb__pg_run_guarded(PGresult **r, PGconn *c, const char *savepoint, const char *sql,
                        int n, const char *const *values, const int *lengths,
                        const int *formats, udb_buf *msg)
{
    *r = NULL;
    char name[32], sp[96], rel[96];
    int rc = prepared(name, c, sql, n, msg);
    if (rc)
        return rc;
    snprintf(sp, sizeof sp, "SAVEPOINT %s", savepoint);
    snprintf(rel, sizeof rel, "RELEASE SAVEPOINT %s", savepoint);
    if (!PQenterPipelineMode(c))
        return udb__pg_error(msg, c, NULL, "pipeline");
    bool sent = PQsendQueryParams(c, sp, 0, NULL, NULL, NULL, NULL, 0) &&
                (name[0] ? PQsendQueryPrepared(c, name, n, values, lengths, formats, 0)
                         : PQsendQueryParams(c, sql, n, NULL, values, lengths, formats, 0)) &&
                PQsendQueryParams(c, rel, 0, NULL, NULL, NULL, NULL, 0) &&
                PQpipelineSync(c);
    /* the results: one per statement, each followed by NULL, then the sync */
    PGresult *res[3] = {NULL, NULL, NULL};
    size_t k = 0;
    for (int nulls = 0; sent && nulls < 4;) {
        PGresult *x = PQgetResult(c);
        if (!x) {
            if (PQstatus(c) != CONNECTION_OK)
                nulls++;
            continue;
        }
        nulls = 0;
        if (PQresultStatus(x) == PGRES_PIPELINE_SYNC) {
            PQclear(x);
            break;
        }
        if (k < 3)
            res[k++] = x;
        else
            PQclear(x);
    }
    if (!sent || !PQexitPipelineMode(c))
        rc = udb__pg_error(msg, c, NULL, "pipeline");
    else if (k < 3 || PQresultStatus(res[0]) != PGRES_COMMAND_OK)
        rc = udb__pg_error(msg, c, k ? res[0] : NULL, "statement");
    else if ((rc = result_rc(r, c, res[1], msg))) {
        res[1] = NULL;   /* cleared by result_rc */
        PGresult *u;
        char undo[128];
        snprintf(undo, sizeof undo, "ROLLBACK TO SAVEPOINT %s", savepoint);
        udb_buf ignored = {0};
        int urc = udb__pg_execp(&u, c, undo, 0, NULL, &ignored);
        if (urc) {
            /* the transaction cannot go on: say why, after the statement's reason */
            udb__buf_printf(msg, "; then ");
            udb__buf_put(msg, ignored.p, ignored.len);
            rc = urc;
        }
        PQclear(u);
        udb__buf_free(&ignored);
    } else {
        res[1] = NULL;   /* *r now */
        if (PQresultStatus(res[2]) != PGRES_COMMAND_OK) {
            rc = udb__pg_error(msg, c, res[2], "statement");
            PQclear(*r);
            *r = NULL;
        }
    }
    for (size_t i = 0; i < 3; i++)
        PQclear(res[i]);
    return rc;
}

/* "<begin_sql>; EXECUTE <name>" into q, the name that of the prepared
 * "SELECT gen FROM <pgschema>."$meta"" (prepared now if new), and kept as
 * c's text for (begin_sql, 0).  0, UDB_ENOMEM, or prepare's error in msg. */
static int begin_text(udb_buf *q, PGconn *c, const char *pgschema, const char *begin_sql,
                      udb_buf *msg)
{
    udb__buf_printf(q, "SELECT gen FROM ");
    udb__pg_qualified(q, pgschema, "$meta");
    udb__buf_byte(q, '\0');
    char name[32];
    int rc = q->oom ? UDB_ENOMEM : prepared(name, c, (const char *)q->p, 0, msg);
    if (rc)
        return rc;
    q->len = 0;
    if (name[0]) {
        udb__buf_printf(q, "%s; EXECUTE %s", begin_sql, name);
    } else {   /* no room for a statement more: the SELECT's own text */
        udb__buf_printf(q, "%s; SELECT gen FROM ", begin_sql);
        udb__pg_qualified(q, pgschema, "$meta");
    }
    udb__buf_byte(q, '\0');
    if (q->oom)
        return UDB_ENOMEM;
    udb__pg_cache_text_put(c, begin_sql, 0, (const char *)q->p);
    return 0;
}

int udb__pg_begin_cached(const udb_schema **out, PGconn *c, const char *pgschema,
                         const char *begin_sql, udb_buf *msg)
{
    *out = NULL;
    conn_state *s = state(c);
    if (!s) {
        udb__buf_printf(msg, "out of memory");
        return UDB_ENOMEM;
    }
    int rc = 0;
    bool open = false;
    if (s->schema) {
        /* BEGIN and the generation in one round trip, the SELECT prepared
           once (EXECUTE: no parse or plan per transaction), the text kept */
        const char *sql = udb__pg_cache_text(c, begin_sql, 0);
        PGresult *r = NULL;
        udb_buf why = {0}, q = {0};
        if (!sql && !(rc = begin_text(&q, c, pgschema, begin_sql, &why)))
            sql = (const char *)q.p;
        if (!rc)
            rc = udb__pg_exec(&r, c, sql, &why);
        udb__buf_free(&q);
        if (!rc && PQntuples(r) == 1 &&
            (strtoull(PQgetvalue(r, 0, 0), NULL, 10) == s->gen || test_stale)) {
            PQclear(r);
            udb__buf_free(&why);
            *out = s->schema;
            return 0;
        }
        PQclear(r);
        if (!rc) {
            open = true;   /* another generation: read it in this transaction */
        } else if (rc == UDB_ENOMEM || rc == UDB_ECONNECT) {
            udb__buf_put(msg, why.p, why.len);
            udb__buf_free(&why);
            return rc;
        } else {
            /* "$meta" is gone (the schema dropped?): start again, uncached */
            udb_buf ignored = {0};
            if ((rc = udb__pg_exec(NULL, c, "ROLLBACK", &ignored))) {
                udb__buf_put(msg, ignored.p, ignored.len);
                udb__buf_free(&ignored);
                udb__buf_free(&why);
                return rc;
            }
            udb__buf_free(&ignored);
        }
        udb__buf_free(&why);
    }
    if (!open && (rc = udb__pg_exec(NULL, c, begin_sql, msg)))
        return rc;
    udb_schema *fresh = NULL;
    uint64_t gen = 0;
    if ((rc = udb__pg_meta_read(&fresh, &gen, c, pgschema, msg)))
        return rc;
    s->schema_reads++;
    if (s->n && (rc = udb__pg_exec(NULL, c, "DEALLOCATE ALL", msg))) {
        udb__schema_free(fresh);
        return rc;
    }
    forget(s);
    s->schema = fresh;
    s->gen = gen;
    *out = fresh;
    return 0;
}

const char *udb__pg_cache_text(PGconn *c, const void *owner, unsigned kind)
{
    conn_state *s = PQinstanceData(c, on_event);
    for (size_t i = 0; s && i < s->ntexts; i++)
        if (s->texts[i].owner == owner && s->texts[i].kind == kind)
            return s->texts[i].sql;
    return NULL;
}

void udb__pg_cache_text_put(PGconn *c, const void *owner, unsigned kind, const char *sql)
{
    conn_state *s = state(c);
    if (!s || s->ntexts == MAX_STMTS)
        return;
    if (s->ntexts == s->captexts) {
        size_t cap = s->captexts ? 2 * s->captexts : 16;
        text *a = realloc(s->texts, cap * sizeof *a);
        if (!a)
            return;
        s->texts = a;
        s->captexts = cap;
    }
    char *copy = strdup(sql);
    if (copy)
        s->texts[s->ntexts++] = (text){owner, kind, copy};
}

uint64_t udb__pg_cache_prepares(PGconn *c)
{
    conn_state *s = PQinstanceData(c, on_event);
    return s ? s->prepares : 0;
}

uint64_t udb__pg_cache_schema_reads(PGconn *c)
{
    conn_state *s = PQinstanceData(c, on_event);
    return s ? s->schema_reads : 0;
}
