/*
 * pg_store.c -- the PostgreSQL backend (engine/pg/pgstore.c) against the
 * LMDB engine: one schema applied to both, the same public record calls run
 * in both kinds of transaction, and every result logged -- return codes, the
 * returned records' bytes, created/chosen, the conflict detail (index,
 * fields, values, holder key) -- must be identical.  Then what only a shared
 * server has: a duplicate written by another SQL client is refused by the
 * server's index, and when our store races one it is UDB_ECONFLICT with the
 * detail.  Run under pg_run.
 *
 * usage: pg_store [--drop-raw]
 *   --drop-raw: the store writes "$raw" as NULL: the comparison must FAIL
 *   (the negative control; should_fail).
 */
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgmeta.h"
#include "pgstore.h"
#include "uniqdb.h"

static int failures;
static udb_buf msg;

#define CHECK(e) do { if (!(e)) { fprintf(stderr, "%s:%d: FAIL: %s\n", __FILE__, __LINE__, \
                                          #e); failures++; } } while (0)
#define CHECK_RC(call, want) do { int rc_ = (call); if (rc_ != (want)) { \
    fprintf(stderr, "%s:%d: FAIL: %s gave %d, wanted %d; %s\n", __FILE__, __LINE__, \
            #call, rc_, (want), msg.p ? (char *)msg.p : ""); failures++; } } while (0)

static const char schema[] =
    "{\"types\": {\"user\": {\"key\": \"id\", \"fields\": {"
    "  \"id\": {\"type\": \"uint\", \"auto\": true},"
    "  \"email\": {\"type\": \"str\", \"required\": true}, \"handle\": {\"type\": \"str\"},"
    "  \"active\": {\"type\": \"bool\"}, \"team\": {\"type\": \"str\"},"
    "  \"badge\": {\"type\": \"int\"}, \"score\": {\"type\": \"float\"},"
    "  \"photo\": {\"type\": \"bin\"}, \"doc\": {\"type\": \"any\"},"
    "  \"level\": {\"type\": \"enum\", \"values\": [\"lo\", \"hi\"]}},"
    " \"unique\": {\"email\": {\"fields\": [{\"field\": \"email\", \"collate\": \"nocase\"}]},"
    "   \"active_handle\": {\"fields\": [\"handle\"], \"where\": \"active = true\"},"
    "   \"team_badge\": {\"fields\": [\"team\", \"badge\"], \"nulls\": \"not_distinct\","
    "                   \"where\": \"team IS NOT NULL\"}},"
    " \"indexes\": {\"by_team\": {\"fields\": [\"team\"]}},"
    " \"extra\": true},"
    " \"tag\": {\"key\": \"name\", \"fields\": {\"name\": {\"type\": \"str\"},"
    "  \"n\": {\"type\": \"int\"}}},"
    " \"wide\": {\"key\": \"k\", \"fields\": {\"k\": {\"type\": \"int\"},"
    "  \"f0\": {\"type\": \"int\"}, \"f1\": {\"type\": \"int\"}, "
    "  \"f2\": {\"type\": \"int\"}, \"f3\": {\"type\": \"int\"}, "
    "  \"f4\": {\"type\": \"int\"}, \"f5\": {\"type\": \"int\"}, "
    "  \"f6\": {\"type\": \"int\"}, \"f7\": {\"type\": \"int\"}, "
    "  \"f8\": {\"type\": \"int\"}, \"f9\": {\"type\": \"int\"}, "
    "  \"f10\": {\"type\": \"int\"}, \"f11\": {\"type\": \"int\"}, "
    "  \"f12\": {\"type\": \"int\"}, \"f13\": {\"type\": \"int\"}, "
    "  \"f14\": {\"type\": \"int\"}, \"f15\": {\"type\": \"int\"}, "
    "  \"f16\": {\"type\": \"int\"}, \"f17\": {\"type\": \"int\"}, "
    "  \"f18\": {\"type\": \"int\"}, \"f19\": {\"type\": \"int\"}, "
    "  \"f20\": {\"type\": \"int\"}, \"f21\": {\"type\": \"int\"}, "
    "  \"f22\": {\"type\": \"int\"}, \"f23\": {\"type\": \"int\"}, "
    "  \"f24\": {\"type\": \"int\"}, \"f25\": {\"type\": \"int\"}, "
    "  \"f26\": {\"type\": \"int\"}, \"f27\": {\"type\": \"int\"}, "
    "  \"f28\": {\"type\": \"int\"}, \"f29\": {\"type\": \"int\"}, "
    "  \"f30\": {\"type\": \"int\"}, \"f31\": {\"type\": \"int\"}, "
    "  \"f32\": {\"type\": \"int\"}, \"f33\": {\"type\": \"int\"}, "
    "  \"f34\": {\"type\": \"int\"}, \"f35\": {\"type\": \"int\"}, "
    "  \"f36\": {\"type\": \"int\"}, \"f37\": {\"type\": \"int\"}, "
    "  \"f38\": {\"type\": \"int\"}, \"f39\": {\"type\": \"int\"}, "
    "  \"s\": {\"type\": \"str\"}}}}}";

/* ---- the log ------------------------------------------------------------------ */

static udb_buf logbuf;

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
    char tmp[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    udb__buf_put(&logbuf, tmp, strlen(tmp));
}

static void log_bytes(const char *what, const void *p, size_t n)
{
    char *j = NULL;
    logf_(" %s=", what);
    for (size_t i = 0; i < n; i++)
        logf_("%02x", ((const unsigned char *)p)[i]);
    if (n && udb_msgpack_to_json(&j, NULL, p, n, 0) == 0)
        logf_(" (%s)", j);
    udb_free(j);
}

/* One call's result: rc, the record, and on a conflict its detail. */
static void log_call(udb_txn *txn, const char *label, int rc, const udb_val *out)
{
    logf_("%s: rc=%d", label, rc);
    if (!rc && out)
        log_bytes("out", out->data, out->size);
    if (rc == UDB_ECONFLICT) {
        const udb_conflict *c = udb_conflict_info(txn);
        logf_(" conflict type=%s", c ? c->type : "(none)");
        for (size_t i = 0; c && i < c->count; i++) {
            const udb_conflict_index *x = &c->indexes[i];
            logf_(" [%s:", x->index);
            for (size_t f = 0; f < x->nfields; f++)
                logf_(" %s", x->fields[f]);
            log_bytes("values", x->values.data, x->values.size);
            log_bytes("key", x->existing_key.data, x->existing_key.size);
            logf_("]");
        }
    }
    logf_("\n");
}

/* msgpack of JSON text (kept until the end) */
static void *made[256];
static size_t nmade;

static udb_val J(const char *json)
{
    void *p = NULL;
    size_t n = 0;
    if (udb_json_to_msgpack(&p, &n, json, strlen(json))) {
        fprintf(stderr, "bad test JSON: %s\n", json);
        exit(2);
    }
    made[nmade++] = p;
    return (udb_val){p, n};
}

/* ---- two kinds of transaction --------------------------------------------------- */

typedef struct side {
    const char *name;
    udb_env *env;
    udb_pgpool *pool;
} side;

static int begin(udb_txn **t, side *s, unsigned flags)
{
    if (s->env)
        return udb_begin(t, s->env, flags);
    msg.len = 0;
    return udb__pg_begin(t, s->pool, flags, &msg);
}

static int commit(udb_txn *t, side *s)
{
    if (s->env)
        return udb_commit(t);
    msg.len = 0;
    return udb__pg_commit(t, &msg);
}

static void abort_(udb_txn *t, side *s)
{
    if (s->env)
        udb_abort(t);
    else
        udb__pg_abort(t);
}

#define INS(label, json) do { udb_val r_ = J(json); \
    log_call(t, label, udb_insert(&out, t, "user", r_.data, r_.size), &out); } while (0)
#define GET(label, json) do { udb_val k_ = J(json); \
    log_call(t, label, udb_get(&out, t, "user", k_.data, k_.size), &out); } while (0)

static int seq_log(const char *name, uint64_t v, void *ctx)
{
    (void)ctx;
    logf_(" %s=%llu", name, (unsigned long long)v);
    return 0;
}

static int each_log(void *ctx, const udb_val *pk, const udb_val *rec)
{
    (void)ctx;
    log_bytes("pk", pk->data, pk->size);
    log_bytes("rec", rec->data, rec->size);
    logf_("\n");
    return 0;
}

/* The same calls on either side, every result in the log. */
static void script(side *s)
{
    udb_txn *t;
    udb_val out, v;
    int created = -1, rc;
    size_t chosen = 99;
    uint64_t n = 0;
    if ((rc = begin(&t, s, 0))) {
        fprintf(stderr, "%s: begin: %d %s\n", s->name, rc, msg.p ? (char *)msg.p : "");
        failures++;
        return;
    }
    INS("insert ann", "{\"email\": \"Ann@X.org\", \"handle\": \"ann\", \"active\": true,"
        " \"team\": \"t1\", \"badge\": 7, \"score\": 1.5, \"photo\": {\"$bin\": \"AAEC/w==\"},"
        " \"doc\": {\"k\": {\"n\": [1, -2, {\"z\": null, \"f\": 0.25}]}, \"s\": \"x\","
        "          \"b\": {\"$bin\": \"AA==\"}},"
        " \"zz\": \"extra1\", \"nested\": {\"a\": {\"b\": [true, {\"c\": 3}]}},"
        " \"level\": \"hi\"}");
    INS("insert bob", "{\"email\": \"bob@x.org\", \"handle\": \"bob\", \"active\": false,"
        " \"score\": 0.30000000000000004, \"badge\": -9000000000}");
    INS("insert explicit key", "{\"id\": 10, \"email\": \"ten@x.org\", \"doc\": [1, \"two\"]}");
    INS("insert auto after explicit", "{\"email\": \"eleven@x.org\", \"doc\": \"\\u0000nul\"}");
    GET("get 1", "1");
    GET("get 2", "2");
    GET("get 11", "11");
    GET("get 99", "99");
    v = J("[\"ANN@x.ORG\"]");
    log_call(t, "find email nocase", udb_find(&out, t, "user", "email", v.data, v.size), &out);
    v = J("[\"nobody@x.org\"]");
    log_call(t, "find missing", udb_find(&out, t, "user", "email", v.data, v.size), &out);
    v = J("[\"ann\"]");
    log_call(t, "find partial", udb_find(&out, t, "user", "active_handle", v.data, v.size),
             &out);
    INS("conflict email nocase", "{\"email\": \"ann@x.org\"}");
    INS("conflict two indexes", "{\"id\": 1, \"email\": \"BOB@x.org\", \"handle\": \"ann\","
        " \"active\": true}");
    INS("bad record", "{\"email\": 5}");
    INS("bad enum", "{\"email\": \"e@x\", \"level\": \"mid\"}");
    v = J("{\"email\": \"ANN@X.ORG\"}");
    rc = udb_insert_or_get(&out, &created, t, "user", "email", v.data, v.size);
    log_call(t, "insert_or_get existing", rc, &out);
    logf_(" created=%d\n", created);
    v = J("{\"email\": \"cat@x.org\", \"team\": \"t1\"}");
    rc = udb_insert_or_get(&out, &created, t, "user", "email", v.data, v.size);
    log_call(t, "insert_or_get new", rc, &out);
    logf_(" created=%d\n", created);
    v = J("{\"handle\": \"ann\", \"active\": true, \"email\": \"ann2@x.org\", \"zz\": null,"
          " \"more\": {\"deep\": {\"er\": 1}}}");
    rc = udb_upsert(&out, &created, t, "user", "active_handle", v.data, v.size, NULL, 0);
    log_call(t, "upsert partial existing", rc, &out);
    logf_(" created=%d\n", created);
    v = J("{\"handle\": \"bob\", \"active\": true, \"email\": \"bob2@x.org\"}");
    rc = udb_upsert(&out, &created, t, "user", "active_handle", v.data, v.size, NULL, 0);
    log_call(t, "upsert partial new", rc, &out);
    logf_(" created=%d\n", created);
    udb_val cands[3] = {J("{\"email\": \"CAT@x.org\"}"),
                        J("{\"email\": \"dan@x.org\", \"team\": \"t1\"}"),
                        J("{\"email\": \"eve@x.org\"}")};
    rc = udb_insert_first(&out, &chosen, t, "user", cands, 3);
    log_call(t, "insert_first", rc, &out);
    logf_(" chosen=%zu\n", chosen);
    rc = udb_insert_first(&out, &chosen, t, "user", cands, 2);
    log_call(t, "insert_first all taken", rc, &out);
    logf_(" chosen=%zu\n", chosen);
    /* NULLS NOT DISTINCT: cat and dan both have team t1 and no badge */
    INS("nulls not distinct", "{\"email\": \"fay@x.org\", \"team\": \"t1\"}");
    INS("nulls not distinct, outside the partial", "{\"email\": \"gus@x.org\"}");
    udb_val k = J("2");
    v = J("{\"active\": true}");
    log_call(t, "update merge conflict",
             udb_update(&out, t, "user", k.data, k.size, v.data, v.size, UDB_MERGE), &out);
    v = J("{\"team\": \"t2\", \"doc\": {\"m\": {\"n\": {}}}, \"x1\": [], \"score\": -0.0}");
    log_call(t, "update merge",
             udb_update(&out, t, "user", k.data, k.size, v.data, v.size, UDB_MERGE), &out);
    v = J("{\"email\": \"bob@x.org\", \"level\": \"lo\", \"score\": 1e300}");
    log_call(t, "update replace",
             udb_update(&out, t, "user", k.data, k.size, v.data, v.size, 0), &out);
    k = J("99");
    log_call(t, "update missing",
             udb_update(&out, t, "user", k.data, k.size, v.data, v.size, 0), &out);
    k = J("12");
    log_call(t, "delete 12", udb_delete(t, "user", k.data, k.size), NULL);
    log_call(t, "delete 12 again", udb_delete(t, "user", k.data, k.size), NULL);
    GET("get 12", "12");
    v = J("{\"name\": \"a'b\\\"c\", \"n\": 1}");
    log_call(t, "tag", udb_insert(&out, t, "tag", v.data, v.size), &out);
    k = J("\"a'b\\\"c\"");
    log_call(t, "tag get", udb_get(&out, t, "tag", k.data, k.size), &out);
    /* more columns than a statement's first parameter array holds */
    v = J("{\"k\": -5, \"f0\": 0, \"f17\": 17, \"f39\": -39, \"s\": \"w\"}");
    log_call(t, "wide", udb_insert(&out, t, "wide", v.data, v.size), &out);
    k = J("-5");
    v = J("{\"f38\": 38, \"f0\": null}");
    log_call(t, "wide merge",
             udb_update(&out, t, "wide", k.data, k.size, v.data, v.size, UDB_MERGE), &out);
    log_call(t, "wide get", udb_get(&out, t, "wide", k.data, k.size), &out);
    log_call(t, "seq s1", udb_seq_next(&n, t, "s1"), NULL);
    log_call(t, "seq s1", udb_seq_next(&n, t, "s1"), NULL);
    logf_(" s1=%llu\n", (unsigned long long)n);
    /* udb_seq_set reads the type's last key (the backend's last_key) */
    log_call(t, "seq_set below the auto keys", udb_seq_set(t, "user.id", 5), NULL);
    log_call(t, "seq_set", udb_seq_set(t, "user.id", 100), NULL);
    /* the backend's whole-type calls (schema changes use them) */
    const udb_schema *sc = udb__txn_schema(t);
    const udb_type *ut = udb__schema_type(sc, "user");
    uint64_t cnt = 0;
    log_call(t, "count", udb__txn_backend(t)->count(&cnt, t, sc, ut), NULL);
    logf_(" count=%llu\n", (unsigned long long)cnt);
    logf_("each:");
    log_call(t, "", udb__txn_backend(t)->each(t, sc, ut, each_log, NULL), NULL);
    INS("insert after seq_set", "{\"email\": \"hundred@x.org\"}");
    log_call(t, "commit", commit(t, s), NULL);

    /* an aborted transaction gives its numbers back */
    if (begin(&t, s, 0) == 0) {
        INS("insert then abort", "{\"email\": \"gone@x.org\"}");
        log_call(t, "seq s1 then abort", udb_seq_next(&n, t, "s1"), NULL);
        logf_(" s1=%llu\n", (unsigned long long)n);
        abort_(t, s);
    }
    if (begin(&t, s, 0) == 0) {
        log_call(t, "seq get", udb_seq_get(&n, t, "s1"), NULL);
        logf_(" s1=%llu\n", (unsigned long long)n);
        INS("insert after abort", "{\"email\": \"gone@x.org\"}");
        logf_("sequences:");
        udb_seq_foreach(t, seq_log, NULL);
        logf_("\n");
        log_call(t, "commit", commit(t, s), NULL);
    }
    if (begin(&t, s, UDB_RDONLY) == 0) {
        GET("reader get 1", "1");
        GET("reader get 2", "2");
        INS("reader insert", "{\"email\": \"ro@x.org\"}");
        abort_(t, s);
    }
}

static udb_buf run_side(side *s)
{
    logbuf = (udb_buf){0};
    script(s);
    return logbuf;
}

/* ---- another SQL client ----------------------------------------------------------- */

static char *sql1(const char *q)
{
    PGconn *c = PQconnectdb("");
    PGresult *r = PQexec(c, q);
    char *out;
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK && PQntuples(r))
        out = strdup(PQgetisnull(r, 0, 0) ? "(null)" : PQgetvalue(r, 0, 0));
    else if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
        out = strdup("");
    else if (asprintf(&out, "ERROR: %s", PQresultErrorField(r, PG_DIAG_SQLSTATE)) < 0)
        out = NULL;
    PQclear(r);
    PQfinish(c);
    return out;
}

static void test_other_client(udb_pgpool *pool)
{
    /* the server's index refuses what uniqdb would: the nocase email */
    char *got = sql1("INSERT INTO ps.\"user\" (id, email) VALUES (500, 'ANN2@X.ORG')");
    CHECK(got && strcmp(got, "ERROR: 23505") == 0);
    free(got);
    /* the readable jsonb copies: JSON, or the lossless form for binary */
    got = sql1("SELECT doc::text FROM ps.\"user\" WHERE id = 10");
    CHECK(got && strcmp(got, "[1, \"two\"]") == 0);
    free(got);
    got = sql1("SELECT (doc ? '$msgpack')::text || ' ' || (\"$extra\"->'nested'->>'a') FROM "
               "ps.\"user\" WHERE id = 1");
    CHECK(got && strcmp(got, "true {\"b\": [true, {\"c\": 3}]}") == 0);
    if (got && strcmp(got, "true {\"b\": [true, {\"c\": 3}]}") != 0)
        fprintf(stderr, "got: %s\n", got);
    free(got);
    /* a duplicate committed after our snapshot: our check cannot see it, the
       server's index refuses our row, and the detail names its holder */
    udb_txn *t;
    udb_val out, v = J("{\"email\": \"RACE@x.org\", \"team\": \"r\"}");
    CHECK_RC(udb__pg_begin(&t, pool, 0, &msg), 0);
    got = sql1("INSERT INTO ps.\"user\" (id, email) VALUES (1000, 'race@x.org')");
    CHECK(got && strcmp(got, "") == 0);
    free(got);
    CHECK_RC(udb_insert(&out, t, "user", v.data, v.size), UDB_ECONFLICT);
    const udb_conflict *c = udb_conflict_info(t);
    CHECK(c && c->count == 1 && strcmp(c->indexes[0].index, "email") == 0);
    udb_val hk = J("1000"), hv = J("[\"race@x.org\"]");
    CHECK(c && c->count == 1 && c->indexes[0].existing_key.size == hk.size &&
          memcmp(c->indexes[0].existing_key.data, hk.data, hk.size) == 0);
    CHECK(c && c->count == 1 && c->indexes[0].values.size == hv.size &&
          memcmp(c->indexes[0].values.data, hv.data, hv.size) == 0);
    /* nothing written, the transaction goes on */
    v = J("{\"email\": \"after-race@x.org\"}");
    CHECK_RC(udb_insert(&out, t, "user", v.data, v.size), 0);
    CHECK_RC(udb__pg_commit(t, &msg), 0);
    got = sql1("SELECT count(*) FROM ps.\"user\" WHERE email IN ('RACE@x.org', "
               "'after-race@x.org')");
    CHECK(got && strcmp(got, "1") == 0);
    free(got);
}

/* Two of our writers that both find a key free: the second cannot commit a
 * result no serial order gives (a second record, or a conflict it could not
 * see); SERIALIZABLE makes it UDB_ERETRY, and its retry gets the winner.  (A type
 * without an auto key: the sequence's row would make any isolation fail.) */
static void test_two_writers(udb_pgpool *pool)
{
    udb_txn *a, *b;
    udb_val out, v = J("{\"name\": \"both\"}");
    int created = -1;
    CHECK_RC(udb__pg_begin(&a, pool, 0, &msg), 0);
    CHECK_RC(udb__pg_begin(&b, pool, 0, &msg), 0);
    CHECK_RC(udb_insert_or_get(&out, &created, a, "tag", NULL, v.data, v.size), 0);
    CHECK(created == 1);
    CHECK_RC(udb__pg_commit(a, &msg), 0);
    int rc = udb_insert_or_get(&out, &created, b, "tag", NULL, v.data, v.size);
    if (rc != UDB_ERETRY) {
        fprintf(stderr, "FAIL: the second writer got %d (%s), wanted UDB_ERETRY\n", rc,
                udb_errmsg(b));
        failures++;
    }
    udb__pg_abort(b);
    /* a reader sees one snapshot, as an LMDB read transaction: not what a
       writer commits after it began */
    udb_txn *r;
    udb_val k = J("\"later\""), w = J("{\"name\": \"later\"}");
    CHECK_RC(udb__pg_begin(&r, pool, UDB_RDONLY, &msg), 0);
    CHECK_RC(udb_get(&out, r, "tag", k.data, k.size), UDB_ENOTFOUND);
    CHECK_RC(udb__pg_begin(&a, pool, 0, &msg), 0);
    CHECK_RC(udb_insert(&out, a, "tag", w.data, w.size), 0);
    CHECK_RC(udb__pg_commit(a, &msg), 0);
    CHECK_RC(udb_get(&out, r, "tag", k.data, k.size), UDB_ENOTFOUND);
    CHECK_RC(udb_insert(&out, r, "tag", w.data, w.size), UDB_EREADONLY);
    udb__pg_abort(r);
    CHECK_RC(udb__pg_begin(&b, pool, 0, &msg), 0);
    created = -1;
    CHECK_RC(udb_insert_or_get(&out, &created, b, "tag", NULL, v.data, v.size), 0);
    CHECK(created == 0);
    CHECK_RC(udb__pg_commit(b, &msg), 0);
}

int main(int argc, char **argv)
{
    bool control = argc > 1 && strcmp(argv[1], "--drop-raw") == 0;
    udb__pg_test_drop_raw(control);
    char dir[] = "/tmp/pg_store.XXXXXX";
    if (!mkdtemp(dir))
        return 2;
    side lm = {.name = "lmdb"}, pg = {.name = "postgresql"};
    CHECK_RC(udb_open(&lm.env, dir, NULL), 0);
    CHECK_RC(udb_schema_apply(NULL, lm.env, schema, strlen(schema), 0), 0);
    /* floats must read back exactly whatever the server's text setting */
    char *set = sql1("ALTER DATABASE uniqdb_test SET extra_float_digits = 0");
    CHECK(set && strcmp(set, "") == 0);
    free(set);
    CHECK_RC(udb__pg_pool_open(&pg.pool, "postgresql://?schema=ps", 4, &msg), 0);
    CHECK_RC(udb__pg_schema_apply(NULL, pg.pool, schema, strlen(schema), 0, &msg), 0);
    if (failures)
        return 1;
    udb_buf a = run_side(&lm), b = run_side(&pg);
    if (a.len != b.len || memcmp(a.p, b.p, a.len) != 0) {
        failures++;
        fprintf(stderr, "pg_store: the two backends differ\n");
        /* the first differing line of each */
        size_t i = 0, ls = 0;
        while (i < a.len && i < b.len && a.p[i] == b.p[i])
            if (a.p[i++] == '\n')
                ls = i;
        const char *la = (const char *)a.p + ls, *lb = (const char *)b.p + ls;
        fprintf(stderr, "lmdb:       %.*s\npostgresql: %.*s\n",
                (int)(strchr(la, '\n') ? strchr(la, '\n') - la : 0), la,
                (int)(strchr(lb, '\n') ? strchr(lb, '\n') - lb : 0), lb);
    }
    if (getenv("PG_STORE_LOG"))
        fwrite(b.p, 1, b.len, stdout);
    udb__buf_free(&a);
    udb__buf_free(&b);
    if (!control) {
        /* a pool of one: the race's detail must not wait for a second
           pooled connection while the transaction holds the only one */
        udb_pgpool *one = NULL;
        CHECK_RC(udb__pg_pool_open(&one, "postgresql://?schema=ps", 1, &msg), 0);
        if (one)
            test_other_client(one);
        udb__pg_pool_close(one);
        test_two_writers(pg.pool);
    }
    udb__pg_pool_close(pg.pool);
    udb_close(lm.env);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {}
    for (size_t i = 0; i < nmade; i++)
        udb_free(made[i]);
    udb__buf_free(&msg);
    if (failures) {
        fprintf(stderr, "pg_store: %d failures\n", failures);
        return 1;
    }
    printf("pg_store: ok\n");
    return 0;
}
