/*
 * trace.c -- the same constraints in uniqdb and in its PostgreSQL export.
 *
 * Each trace: a fresh uniqdb database with a schema whose unique indexes are
 * easy to collide in (compound, partial, NULLS NOT DISTINCT, "collate":
 * "nocase", primary keys of both key kinds), a few random records, `uniqdb
 * export --postgres --schema tN` loaded with psql; then the same random
 * inserts, replacing and merging updates and deletes run on both.  Every
 * operation's outcome must agree -- ok, conflict on the same index
 * (PostgreSQL names the first violated one in creation order, uniqdb lists
 * all in declaration order: the first must match), not found, invalid -- and
 * afterwards both hold the same rows.
 *
 * Run under pg_run (PG* variables).  usage:
 *   trace UNIQDB-CLI TRACES OPS [SEED]
 *   trace --drop-index INDEX UNIQDB-CLI TRACES OPS [SEED]
 * The second form is the negative control: it drops one unique index from the
 * PostgreSQL copy and succeeds only if the traces notice.  INDEX=COLUMN
 * (Mixed.e_nc=e) puts a case-sensitive unique index over COLUMN in the place
 * of the "collate": "nocase" one.
 */
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tracegen.h"
#include "uniqdb.h"

static const char schema_json[] = "{\"types\": {" TRACEGEN_TYPES "}}";

/* the types of schema_json: tg_types[0] and [1] */
#define NTYPES 2

typedef struct outcome {
    enum { O_OKAY, O_CONFLICT, O_NOTFOUND, O_INVALID, O_ERROR } kind;
    char index[80]; /* for a conflict: the uniqdb index name */
    char detail[400];
} outcome;

static const char *const outcome_names[] = {"ok", "conflict", "not found", "invalid", "error"};

static void udb_run(outcome *out, udb_env *env, const op *o)
{
    memset(out, 0, sizeof *out);
    msgpack_sbuffer rec, key;
    msgpack_sbuffer_init(&rec);
    msgpack_sbuffer_init(&key);
    tg_pack_op(&rec, &key, o);
    udb_txn *txn = NULL;
    int rc = udb_begin(&txn, env, 0);
    if (rc != 0) {
        out->kind = O_ERROR;
        snprintf(out->detail, sizeof out->detail, "udb_begin: %s", udb_strerror(rc));
        goto out;
    }
    switch (o->kind) {
    case OP_INSERT:
        rc = udb_insert(NULL, txn, o->t->name, rec.data, rec.size);
        break;
    case OP_REPLACE:
    case OP_MERGE:
        rc = udb_update(NULL, txn, o->t->name, key.data, key.size, rec.data, rec.size,
                        o->kind == OP_MERGE ? UDB_MERGE : 0);
        break;
    case OP_DELETE:
        rc = udb_delete(txn, o->t->name, key.data, key.size);
        break;
    }
    snprintf(out->detail, sizeof out->detail, "%s", udb_errmsg(txn));
    if (rc == 0) {
        out->kind = O_OKAY;
        rc = udb_commit(txn);
        txn = NULL;
        if (rc) {
            out->kind = O_ERROR;
            snprintf(out->detail, sizeof out->detail, "udb_commit: %s", udb_strerror(rc));
        }
    } else if (rc == UDB_ECONFLICT) {
        out->kind = O_CONFLICT;
        snprintf(out->index, sizeof out->index, "%s", udb_conflict_info(txn)->indexes[0].index);
    } else if (rc == UDB_ENOTFOUND) {
        out->kind = O_NOTFOUND;
    } else if (rc == UDB_EBADRECORD) {
        out->kind = O_INVALID;
    } else {
        out->kind = O_ERROR;
    }
out:
    udb_abort(txn);
    msgpack_sbuffer_destroy(&rec);
    msgpack_sbuffer_destroy(&key);
}

static int udb_has_key(udb_env *env, const op *o)
{
    msgpack_sbuffer rec, key;
    msgpack_sbuffer_init(&rec);
    msgpack_sbuffer_init(&key);
    tg_pack_op(&rec, &key, o);
    udb_txn *txn = NULL;
    udb_val v;
    int found = 0;
    if (udb_begin(&txn, env, UDB_RDONLY) == 0)
        found = udb_get(&v, txn, o->t->name, key.data, key.size) == 0;
    udb_abort(txn);
    msgpack_sbuffer_destroy(&rec);
    msgpack_sbuffer_destroy(&key);
    return found;
}

/* ---- PostgreSQL side -------------------------------------------------------------- */

static void sql_ident(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "\"%s\"", name); /* our names hold no quote */
}

static void pg_run_op(outcome *out, PGconn *pg, const op *o)
{
    memset(out, 0, sizeof *out);
    char sql[1024], id[80];
    const char *params[MAXF];
    int np = 0;
    size_t len = 0;
    sql_ident(id, sizeof id, o->t->name);
#define ADD(...) (len += (size_t)snprintf(sql + len, sizeof sql - len, __VA_ARGS__))
    if (o->kind == OP_INSERT) {
        int first = 1;
        ADD("INSERT INTO %s (", id);
        for (size_t f = 0; f < o->t->nfields; f++) {
            if (o->v[f].st == V_ABSENT)
                continue;
            sql_ident(id, sizeof id, o->t->fields[f].name);
            ADD("%s%s", first ? "" : ", ", id);
            first = 0;
        }
        ADD(") VALUES (");
        for (size_t f = 0; f < o->t->nfields; f++) {
            if (o->v[f].st == V_ABSENT)
                continue;
            params[np] = o->v[f].st == V_TEXT ? o->v[f].text : NULL;
            ADD("%s$%d", np ? ", " : "", np + 1);
            np++;
        }
        ADD(")");
    } else if (o->kind == OP_DELETE) {
        ADD("DELETE FROM %s WHERE ", id);
        sql_ident(id, sizeof id, o->t->fields[0].name);
        ADD("%s = $1", id);
        params[np++] = o->v[0].text;
    } else {
        int first = 1;
        ADD("UPDATE %s SET ", id);
        for (size_t f = 1; f < o->t->nfields; f++) {
            /* a replacement sets every field; a merge only those it names */
            if (o->kind == OP_MERGE && o->v[f].st == V_ABSENT)
                continue;
            sql_ident(id, sizeof id, o->t->fields[f].name);
            params[np] = o->v[f].st == V_TEXT ? o->v[f].text : NULL;
            ADD("%s%s = $%d", first ? "" : ", ", id, ++np);
            first = 0;
        }
        sql_ident(id, sizeof id, o->t->fields[0].name);
        if (first) /* an empty merge: the row is left as it is, if it exists */
            ADD("%s = %s", id, id);
        params[np] = o->v[0].text;
        ADD(" WHERE %s = $%d", id, ++np);
    }
#undef ADD
    PGresult *res = PQexecParams(pg, sql, np, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_COMMAND_OK) {
        out->kind = strcmp(PQcmdTuples(res), "0") == 0 && o->kind != OP_INSERT ? O_NOTFOUND
                                                                                : O_OKAY;
    } else {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        const char *cons = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
        snprintf(out->detail, sizeof out->detail, "%s", PQresultErrorMessage(res));
        if (state && strcmp(state, "23505") == 0 && cons) {
            size_t tl = strlen(o->t->name);
            out->kind = O_CONFLICT;
            /* "T_pkey" is the primary key, which uniqdb names after its field;
               "T.I" is index I */
            if (strcmp(cons + tl, "_pkey") == 0)
                snprintf(out->index, sizeof out->index, "%s", o->t->fields[0].name);
            else
                snprintf(out->index, sizeof out->index, "%s", cons + tl + 1);
        } else if (state && (strcmp(state, "23502") == 0 || strcmp(state, "23514") == 0 ||
                             strcmp(state, "22P02") == 0 || strcmp(state, "22003") == 0)) {
            out->kind = O_INVALID; /* NOT NULL, CHECK, bad text, out of range */
        } else {
            out->kind = O_ERROR;
        }
    }
    PQclear(res);
}

static int pg_exec(PGconn *pg, const char *sql)
{
    PGresult *res = PQexec(pg, sql);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "trace: %s: %s", sql, PQresultErrorMessage(res));
    PQclear(res);
    return ok ? 0 : -1;
}

/* ---- final contents ------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct rows {
    char **row;
    size_t n, cap;
} rows;

static int rows_add(rows *r, const char *text)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        char **p = realloc(r->row, cap * sizeof *p);
        if (!p)
            return -1;
        r->row = p;
        r->cap = cap;
    }
    if (!(r->row[r->n] = strdup(text)))
        return -1;
    r->n++;
    return 0;
}

static void rows_free(rows *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->row[i]);
    free(r->row);
    memset(r, 0, sizeof *r);
}

/* A stored record as "v1|v2|..." in field order, PostgreSQL's text forms,
 * \N for absent. */
static int udb_rows(rows *out, udb_env *env, const tdef *t)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    udb_txn *txn = NULL;
    udb_cursor *cur = NULL;
    int ret = -1;
    if (udb_begin(&txn, env, UDB_RDONLY) || udb_scan(&cur, txn, t->name, NULL, NULL, 0))
        goto out;
    udb_val v;
    int rc;
    while ((rc = udb_cursor_next(&v, cur)) == 0) {
        char line[512];
        size_t len = 0, off = 0;
        if (msgpack_unpack_next(&up, v.data, v.size, &off) != MSGPACK_UNPACK_SUCCESS ||
            up.data.type != MSGPACK_OBJECT_MAP)
            goto out;
        for (size_t f = 0; f < t->nfields; f++) {
            const msgpack_object *o = NULL;
            for (uint32_t i = 0; i < up.data.via.map.size; i++) {
                const msgpack_object *k = &up.data.via.map.ptr[i].key;
                if (k->via.str.size == strlen(t->fields[f].name) &&
                    memcmp(k->via.str.ptr, t->fields[f].name, k->via.str.size) == 0)
                    o = &up.data.via.map.ptr[i].val;
            }
            len += (size_t)snprintf(line + len, sizeof line - len, "%s", f ? "|" : "");
            if (!o || o->type == MSGPACK_OBJECT_NIL)
                len += (size_t)snprintf(line + len, sizeof line - len, "\\N");
            else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                len += (size_t)snprintf(line + len, sizeof line - len, "%" PRIu64, o->via.u64);
            else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
                len += (size_t)snprintf(line + len, sizeof line - len, "%" PRId64, o->via.i64);
            else if (o->type == MSGPACK_OBJECT_BOOLEAN)
                len += (size_t)snprintf(line + len, sizeof line - len, "%s",
                                        o->via.boolean ? "true" : "false");
            else if (o->type == MSGPACK_OBJECT_STR)
                len += (size_t)snprintf(line + len, sizeof line - len, "%.*s",
                                        (int)o->via.str.size, o->via.str.ptr);
            else
                goto out;
        }
        if (rows_add(out, line))
            goto out;
    }
    ret = rc == UDB_ENOTFOUND ? 0 : -1;
out:
    msgpack_unpacked_destroy(&up);
    udb_cursor_close(cur);
    udb_abort(txn);
    return ret;
}

static int pg_rows(rows *out, PGconn *pg, const tdef *t)
{
    char sql[512], id[80];
    size_t len = 0;
    len += (size_t)snprintf(sql + len, sizeof sql - len, "SELECT ");
    for (size_t f = 0; f < t->nfields; f++) {
        sql_ident(id, sizeof id, t->fields[f].name);
        len += (size_t)snprintf(sql + len, sizeof sql - len, "%s%s::text", f ? ", " : "", id);
    }
    sql_ident(id, sizeof id, t->name);
    snprintf(sql + len, sizeof sql - len, " FROM %s", id);
    PGresult *res = PQexec(pg, sql);
    int ret = -1;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fprintf(stderr, "trace: %s: %s", sql, PQresultErrorMessage(res));
        goto out;
    }
    for (int r = 0; r < PQntuples(res); r++) {
        char line[512];
        size_t l = 0;
        for (int c = 0; c < PQnfields(res); c++)
            l += (size_t)snprintf(line + l, sizeof line - l, "%s%s", c ? "|" : "",
                                  PQgetisnull(res, r, c) ? "\\N" : PQgetvalue(res, r, c));
        if (rows_add(out, line))
            goto out;
    }
    ret = 0;
out:
    PQclear(res);
    return ret;
}

/* 0 if both hold the same rows; prints the first difference otherwise. */
static int same_contents(udb_env *env, PGconn *pg, size_t *nrows)
{
    int ret = 0;
    for (size_t t = 0; t < NTYPES && ret == 0; t++) {
        rows a = {0}, b = {0};
        if (udb_rows(&a, env, &tg_types[t]) || pg_rows(&b, pg, &tg_types[t])) {
            ret = -1;
        } else {
            if (a.n)   /* an empty table has no array: qsort's pointer must not be NULL */
                qsort(a.row, a.n, sizeof *a.row, cmp_str);
            if (b.n)
                qsort(b.row, b.n, sizeof *b.row, cmp_str);
            for (size_t i = 0; i < a.n || i < b.n; i++) {
                const char *x = i < a.n ? a.row[i] : "(none)", *y = i < b.n ? b.row[i] : "(none)";
                if (strcmp(x, y) != 0) {
                    fprintf(stderr, "trace: type %s differs: uniqdb %s, PostgreSQL %s\n",
                            tg_types[t].name, x, y);
                    ret = -1;
                    break;
                }
            }
            *nrows += a.n;
        }
        rows_free(&a);
        rows_free(&b);
    }
    return ret;
}

/* ---- one trace ------------------------------------------------------------------- */

typedef struct totals {
    unsigned long ops, agree, by_kind[4], conflicts_by_index[9], rows;
} totals;

static const char *const index_names[] = {"key", "ab", "active_user", "bn", "id",
                                          "x_nd", "y_partial", "e_nc", "?"};
#define NINDEX 8

/* 0: all agreed; 1: a disagreement (printed); -1: the trace could not run. */
static int run_trace(const char *cli, const char *workdir, PGconn *pg, unsigned n,
                     unsigned nops, uint64_t seed, const char *drop_index, totals *tot)
{
    tg_rng = seed * 0x9E3779B97F4A7C15ull + n + 1;
    char dbdir[512], sqlfile[600], schema[32], sql[256];
    snprintf(dbdir, sizeof dbdir, "%s/t%u", workdir, n);
    snprintf(sqlfile, sizeof sqlfile, "%s/t%u.sql", workdir, n);
    snprintf(schema, sizeof schema, "t%u", n);
    udb_options opts = UDB_OPTIONS_INIT;
    opts.flags = UDB_NOSYNC; /* a throw-away database */
    udb_env *env = NULL;
    int ret = -1;
    if (udb_open(&env, dbdir, &opts) ||
        udb_schema_apply(NULL, env, schema_json, sizeof schema_json - 1, 0)) {
        fprintf(stderr, "trace: cannot create %s: %s\n", dbdir, udb_env_errmsg(env));
        goto out;
    }
    /* some records before the export, so that the copy starts with data */
    for (unsigned i = 0; i < 12; i++) {
        op o;
        outcome u;
        tg_random_op(&o, 0, NTYPES);
        o.kind = OP_INSERT;
        for (size_t f = 1; f < o.t->nfields; f++)
            if (o.v[f].st == V_NULL)
                o.v[f].st = V_ABSENT;
        udb_run(&u, env, &o);
    }
    {
        char *exp[] = {(char *)cli, "export", "--postgres", dbdir, "--schema", schema,
                       "-o", sqlfile, NULL};
        char *load[] = {"psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", sqlfile, NULL};
        if (tg_run_cmd(exp) != 0 || tg_run_cmd(load) != 0) {
            fprintf(stderr, "trace %u: export or load failed\n", n);
            goto out;
        }
    }
    snprintf(sql, sizeof sql, "SET search_path = %s", schema);
    if (pg_exec(pg, sql))
        goto out;
    if (drop_index) {
        /* INDEX=COLUMN: the index comes back case-sensitive over COLUMN (the
           control of a nocase index: the fold, not only the index, matters) */
        const char *eq = strchr(drop_index, '='), *dot = strchr(drop_index, '.');
        int nlen = eq ? (int)(eq - drop_index) : (int)strlen(drop_index);
        snprintf(sql, sizeof sql, "DROP INDEX \"%.*s\"", nlen, drop_index);
        if (pg_exec(pg, sql))
            goto out;
        if (eq && dot) {
            snprintf(sql, sizeof sql, "CREATE UNIQUE INDEX \"%.*s\" ON \"%.*s\" (\"%s\")", nlen,
                     drop_index, (int)(dot - drop_index), drop_index, eq + 1);
            if (pg_exec(pg, sql))
                goto out;
        }
    }
    if (same_contents(env, pg, &tot->rows)) {
        fprintf(stderr, "trace %u (seed %" PRIu64 "): contents differ right after the load\n",
                n, seed);
        ret = 1;
        goto out;
    }
    ret = 0;
    for (unsigned i = 0; i < nops; i++) {
        op o;
        outcome u, p;
        char what[300];
        tg_random_op(&o, 1, NTYPES);
        /* A bad value in an update of a missing record: PostgreSQL finds no
           row before any check, uniqdb checks the patch first.  Both refuse;
           which refusal wins is not a constraint, so such updates go only to
           records that exist. */
        if ((o.kind == OP_REPLACE || o.kind == OP_MERGE) && !udb_has_key(env, &o))
            for (size_t f = 1; f < o.t->nfields; f++)
                if (o.v[f].st == V_TEXT &&
                    (strcmp(o.v[f].text, "bogus") == 0 || strcmp(o.v[f].text, "-1") == 0))
                    tg_random_value(&o.v[f], o.t, f, 0);
        udb_run(&u, env, &o);
        pg_run_op(&p, pg, &o);
        tot->ops++;
        tg_describe(what, sizeof what, &o);
        if (u.kind == O_ERROR || p.kind == O_ERROR) {
            fprintf(stderr, "trace %u op %u: %s: unexpected error: uniqdb %s / PostgreSQL %s\n",
                    n, i, what, u.detail, p.detail);
            ret = -1;
            goto out;
        }
        if (u.kind != p.kind || strcmp(u.index, p.index) != 0) {
            fprintf(stderr,
                    "trace %u (seed %" PRIu64 ") op %u: %s\n  uniqdb: %s %s (%s)\n"
                    "  PostgreSQL: %s %s (%s)\n",
                    n, seed, i, what, outcome_names[u.kind], u.index, u.detail,
                    outcome_names[p.kind], p.index, p.detail);
            ret = 1;
            goto out;
        }
        tot->agree++;
        tot->by_kind[u.kind]++;
        if (u.kind == O_CONFLICT) {
            size_t k;
            for (k = 0; k < NINDEX && strcmp(index_names[k], u.index) != 0; k++)
                ;
            tot->conflicts_by_index[k]++;
        }
    }
    if (same_contents(env, pg, &tot->rows)) {
        fprintf(stderr, "trace %u (seed %" PRIu64 "): final contents differ\n", n, seed);
        ret = 1;
    }
out:
    udb_close(env);
    if (ret >= 0) {
        snprintf(sql, sizeof sql, "RESET search_path; DROP SCHEMA %s CASCADE", schema);
        if (pg_exec(pg, sql))
            ret = -1;
    }
    return ret;
}

int main(int argc, char **argv)
{
    const char *drop_index = NULL;
    int a = 1;
    if (argc > 2 && strcmp(argv[1], "--drop-index") == 0) {
        drop_index = argv[2];
        a = 3;
    }
    if (argc - a < 3 || argc - a > 4) {
        fprintf(stderr, "usage: trace [--drop-index INDEX] UNIQDB-CLI TRACES OPS [SEED]\n");
        return 2;
    }
    const char *cli = argv[a];
    unsigned ntraces = (unsigned)strtoul(argv[a + 1], NULL, 10);
    unsigned nops = (unsigned)strtoul(argv[a + 2], NULL, 10);
    uint64_t seed = argc - a == 4 ? strtoull(argv[a + 3], NULL, 10) : (uint64_t)time(NULL);
    totals tot;
    memset(&tot, 0, sizeof tot);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char workdir[] = "/tmp/uniqdb-trace-XXXXXX";
    if (!mkdtemp(workdir)) {
        perror("trace: mkdtemp");
        return 1;
    }
    int ret = 1;
    PGconn *pg = PQconnectdb("");
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "trace: cannot connect (run under pg_run): %s", PQerrorMessage(pg));
        goto out;
    }
    if (pg_exec(pg, "SET client_min_messages = warning"))
        goto out;
    printf("trace: seed %" PRIu64 " (rerun: %s %s %u %u %" PRIu64 ")\n", seed, argv[0], cli,
           ntraces, nops, seed);
    int found = 0;
    for (unsigned n = 0; n < ntraces; n++) {
        int r = run_trace(cli, workdir, pg, n, nops, seed, drop_index, &tot);
        if (r < 0)
            goto out;
        if (r > 0) {
            found = 1;
            break;
        }
    }
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (drop_index) {
        /* the negative control: a missing index must be noticed */
        printf("trace: negative control, index \"%s\" dropped from the copy: %s after %lu "
               "operations\n", drop_index, found ? "disagreement found" : "NOT noticed",
               tot.ops);
        ret = found ? 0 : 1;
        goto out;
    }
    if (found)
        goto out;
    printf("trace: %u traces x %u operations: %lu operations, %lu agreed (ok %lu, conflict "
           "%lu, not found %lu, invalid %lu); %lu rows compared; %.1f s\n",
           ntraces, nops, tot.ops, tot.agree, tot.by_kind[O_OKAY], tot.by_kind[O_CONFLICT],
           tot.by_kind[O_NOTFOUND], tot.by_kind[O_INVALID], tot.rows,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    printf("trace: conflicts by index:");
    for (size_t k = 0; k < NINDEX; k++)
        printf(" %s %lu", index_names[k], tot.conflicts_by_index[k]);
    printf("\n");
    /* the traces must have exercised every kind of outcome and every index */
    ret = 0;
    for (size_t k = 0; k < 4; k++)
        if (tot.by_kind[k] == 0) {
            fprintf(stderr, "trace: no operation ended %s\n", outcome_names[k]);
            ret = 1;
        }
    for (size_t k = 0; k < NINDEX; k++)
        if (tot.conflicts_by_index[k] == 0) {
            fprintf(stderr, "trace: no conflict on index %s\n", index_names[k]);
            ret = 1;
        }
out:
    PQfinish(pg);
    {
        char *rm[] = {"rm", "-rf", workdir, NULL};
        tg_run_cmd(rm);
    }
    return ret;
}
