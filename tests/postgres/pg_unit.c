/*
 * pg_unit.c -- engine/pg against a real server (run under pg_run: PG*
 * variables name it): URLs and the schema parameter, connection errors and
 * their codes, the pool under threads, schema apply with the LMDB engine's
 * rules (KEEP, DROP, refusals), violations listed, server features refused,
 * uniqueness held against another SQL client (psql), gapless sequences, and
 * several processes applying at once.
 *
 * usage: pg_unit [--race-nolock]
 *   --race-nolock: only the concurrent-apply test, with apply's advisory
 *   lock switched off: it must FAIL (the negative control; should_fail).
 */
#include <libpq-fe.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pgconn.h"
#include "pgmeta.h"
#include "pgstore.h"
#include "uniqdb.h"

static int failures;

#define CHECK(e) do { if (!(e)) { fprintf(stderr, "%s:%d: FAIL: %s\n", __FILE__, __LINE__, \
                                          #e); failures++; } } while (0)
#define CHECK_RC(call, want) do { int rc_ = (call); if (rc_ != (want)) { \
    fprintf(stderr, "%s:%d: FAIL: %s gave %d, wanted %d; message: %s\n", __FILE__, __LINE__, \
            #call, rc_, (want), msg.p ? (char *)msg.p : ""); failures++; } } while (0)
#define CHECK_HAS(text, part) do { const char *t_ = (text); if (!t_ || !strstr(t_, part)) { \
    fprintf(stderr, "%s:%d: FAIL: \"%s\" not in: %s\n", __FILE__, __LINE__, part, \
            t_ ? t_ : "(null)"); failures++; } } while (0)

static udb_buf msg;

static const char *m(void)
{
    udb__buf_byte(&msg, '\0');
    msg.len--;
    return (const char *)msg.p;
}

static void quiet(void *arg, const char *text)
{
    (void)arg;
    (void)text;
}

/* A scalar answer of sql on a fresh connection (another SQL client), or
 * "ERROR: <sqlstate> <message>". */
__attribute__((format(printf, 1, 0))) static char *vsql1(const char *fmt, va_list ap)
{
    char q[4096];
    vsnprintf(q, sizeof q, fmt, ap);
    PGconn *c = PQconnectdb("");
    PQsetNoticeProcessor(c, quiet, NULL);
    PGresult *r = PQexec(c, q);
    char *out;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r))
        out = strdup(PQgetisnull(r, 0, 0) ? "(null)" : PQgetvalue(r, 0, 0));
    else if (PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK)
        out = strdup("");
    else if (asprintf(&out, "ERROR: %s %s", PQresultErrorField(r, PG_DIAG_SQLSTATE),
                      PQresultErrorMessage(r)) < 0)
        out = NULL;
    PQclear(r);
    PQfinish(c);
    return out;
}

__attribute__((format(printf, 1, 2))) static char *sql1(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *out = vsql1(fmt, ap);
    va_end(ap);
    return out;
}

__attribute__((format(printf, 2, 3))) static int sql_is(const char *want, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *got = vsql1(fmt, ap);
    va_end(ap);
    int ok = got && strcmp(got, want) == 0;
    if (!ok)
        fprintf(stderr, "  query %s: got \"%s\", wanted \"%s\"\n", fmt,
                got ? got : "(null)", want);
    free(got);
    return ok;
}

/* ---- URLs ------------------------------------------------------------------ */

static void test_urls(void)
{
    CHECK(udb__pg_is_url("postgresql://h/db"));
    CHECK(udb__pg_is_url("postgres://"));
    CHECK(!udb__pg_is_url("/var/lib/db"));
    CHECK(!udb__pg_is_url("db"));
    CHECK(!udb__pg_is_url("postgresql:/x"));
    CHECK(!udb__pg_is_url("mysql://h/db"));
    udb_pgurl u;
    msg.len = 0;
    CHECK_RC(udb__pg_url_parse(&u, "postgresql://u@h:5/db?sslmode=disable&schema=My%20App"
                               "&connect_timeout=3", &msg), 0);
    if (u.conninfo) {
        CHECK(strcmp(u.conninfo, "postgresql://u@h:5/db?sslmode=disable&connect_timeout=3") == 0);
        CHECK(strcmp(u.schema, "My App") == 0);
    }
    udb__pg_url_free(&u);
    CHECK_RC(udb__pg_url_parse(&u, "postgres://h/db", &msg), 0);
    if (u.conninfo)
        CHECK(strcmp(u.conninfo, "postgres://h/db") == 0 && strcmp(u.schema, "public") == 0);
    udb__pg_url_free(&u);
    CHECK_RC(udb__pg_url_parse(&u, "postgresql://?schema=a", &msg), 0);
    if (u.conninfo)
        CHECK(strcmp(u.conninfo, "postgresql://") == 0 && strcmp(u.schema, "a") == 0);
    udb__pg_url_free(&u);
    static const char *const bad[] = {
        "postgresql://h/db?schema=a&schema=b", "postgresql://h/db?schema=", "postgresql://h/db?schema",
        "postgresql://h/db?schema=%zz", "postgresql://h/db?schema=%00", "postgresql://h/db?schema=a%2",
        "postgresql://h/db?schema=0123456789012345678901234567890123456789012345678901234567890123",
        "/a/path",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        msg.len = 0;
        int rc = udb__pg_url_parse(&u, bad[i], &msg);
        if (rc != UDB_EINVAL || !msg.len)
            fprintf(stderr, "FAIL: %s accepted (%d)\n", bad[i], rc), failures++;
        CHECK(u.conninfo == NULL && u.schema == NULL);
    }
}

/* ---- connections and errors ------------------------------------------------------ */

static void test_connect_errors(void)
{
    udb_pgpool *p = NULL;
    msg.len = 0;
    CHECK_RC(udb__pg_pool_open(&p, "postgresql:///uniqdb_test?host=/nonexistent/dir", 2, &msg),
             UDB_ECONNECT);
    CHECK_HAS(m(), "connection failed");
    CHECK_HAS(m(), "/nonexistent/dir");      /* libpq's text kept */
    CHECK(p == NULL);
    msg.len = 0;
    CHECK_RC(udb__pg_pool_open(&p, "postgresql://no_such_role@/uniqdb_test", 2, &msg),
             UDB_EAUTH);
    CHECK_HAS(m(), "refused the login");
    CHECK_HAS(m(), "no_such_role");
    msg.len = 0;
    CHECK_RC(udb__pg_pool_open(&p, "postgresql:///uniqdb_test?no_such_param=1", 2, &msg),
             UDB_ECONNECT);
    CHECK_HAS(m(), "no_such_param");
    msg.len = 0;
    CHECK_RC(udb__pg_pool_open(&p, "/a/dir", 2, &msg), UDB_EINVAL);
    CHECK(strcmp(udb_strerror(UDB_EAUTH), udb_strerror(UDB_ECONNECT)) != 0);
}

/* ---- the pool under threads --------------------------------------------------------- */

typedef struct poolrun {
    udb_pgpool *p;
    int rc;
    int pid;
} poolrun;

static void *pool_thread(void *arg)
{
    poolrun *r = arg;
    udb_buf tmsg = {0};
    for (int i = 0; i < 5 && r->rc == 0; i++) {
        PGconn *c;
        if ((r->rc = udb__pg_acquire(&c, r->p, &tmsg)))
            break;
        PGresult *res = NULL;
        if ((r->rc = udb__pg_exec(&res, c, "SELECT pg_backend_pid(), pg_sleep(0.01)", &tmsg)))
            break;
        r->pid = atoi(PQgetvalue(res, 0, 0));
        PQclear(res);
        if (udb__pg_pool_open_count(r->p) > 3)
            r->rc = -1;
        udb__pg_release(r->p, c);
    }
    udb__buf_free(&tmsg);
    return NULL;
}

static void test_pool(void)
{
    udb_pgpool *p = NULL;
    msg.len = 0;
    CHECK_RC(udb__pg_pool_open(&p, "postgresql://?schema=pooltest", 3, &msg), 0);
    if (!p)
        return;
    CHECK(strcmp(udb__pg_pool_schema(p), "pooltest") == 0);
    CHECK(udb__pg_pool_server_version(p) >= 150000);
    poolrun runs[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        runs[i] = (poolrun){p, 0, 0};
        pthread_create(&th[i], NULL, pool_thread, &runs[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        CHECK(runs[i].rc == 0);
    }
    CHECK(udb__pg_pool_open_count(p) <= 3);
    /* a connection given back inside a transaction is not reused */
    PGconn *c;
    CHECK_RC(udb__pg_acquire(&c, p, &msg), 0);
    size_t before = udb__pg_pool_open_count(p);
    CHECK_RC(udb__pg_exec(NULL, c, "BEGIN", &msg), 0);
    udb__pg_release(p, c);
    CHECK(udb__pg_pool_open_count(p) == before - 1);
    /* a statement error keeps libpq's SQLSTATE and text */
    CHECK_RC(udb__pg_acquire(&c, p, &msg), 0);
    msg.len = 0;
    CHECK_RC(udb__pg_exec(NULL, c, "SELECT * FROM no_such_table", &msg), UDB_ESERVER);
    CHECK_HAS(m(), "42P01");
    CHECK_HAS(m(), "no_such_table");
    udb__pg_release(p, c);
    udb__pg_pool_close(p);
}

/* ---- schema apply -------------------------------------------------------------------- */

static const char schema1[] =
    "{\"types\": {\"user\": {\"key\": \"id\", \"fields\": {"
    "  \"id\": {\"type\": \"str\"}, \"email\": {\"type\": \"str\", \"required\": true},"
    "  \"org\": {\"type\": \"int\"}, \"team\": {\"type\": \"str\"},"
    "  \"state\": {\"type\": \"enum\", \"values\": [\"active\", \"gone\"]},"
    "  \"n\": {\"type\": \"uint\"}, \"doc\": {\"type\": \"any\"}},"
    " \"unique\": {\"email\": {\"fields\": [\"email\"]},"
    "   \"active_team\": {\"fields\": [\"org\", \"team\"], \"where\": \"state = 'active'\"},"
    "   \"org_team_nd\": {\"fields\": [\"org\", \"team\"], \"nulls\": \"not_distinct\"}},"
    " \"indexes\": {\"by_org\": {\"fields\": [\"org\"]}}},"
    " \"counter\": {\"key\": \"k\", \"fields\": {\"k\": {\"type\": \"uint\", \"auto\": true}},"
    "  \"extra\": true}}}";

/* schema1 without by_org, with state's value "paused" and a new field */
static const char schema2[] =
    "{\"types\": {\"user\": {\"key\": \"id\", \"fields\": {"
    "  \"id\": {\"type\": \"str\"}, \"email\": {\"type\": \"str\", \"required\": true},"
    "  \"org\": {\"type\": \"int\"}, \"team\": {\"type\": \"str\"},"
    "  \"state\": {\"type\": \"enum\", \"values\": [\"active\", \"gone\", \"paused\"]},"
    "  \"n\": {\"type\": \"uint\"}, \"doc\": {\"type\": \"any\"}, \"nick\": {\"type\": \"str\"}},"
    " \"unique\": {\"email\": {\"fields\": [\"email\"]},"
    "   \"active_team\": {\"fields\": [\"org\", \"team\"], \"where\": \"state = 'active'\"},"
    "   \"org_team_nd\": {\"fields\": [\"org\", \"team\"], \"nulls\": \"not_distinct\"}}},"
    " \"counter\": {\"key\": \"k\", \"fields\": {\"k\": {\"type\": \"uint\", \"auto\": true}},"
    "  \"extra\": true}}}";

static int apply(udb_pgpool *p, const char *json, unsigned flags, char **changes)
{
    msg.len = 0;
    return udb__pg_schema_apply(changes, p, json, strlen(json), flags, &msg);
}

static void test_apply(void)
{
    udb_pgpool *p = NULL;
    msg.len = 0;
    CHECK_RC(udb__pg_pool_open(&p, "postgresql://?schema=App%20One", 2, &msg), 0);
    if (!p)
        return;
    char *changes = NULL;
    CHECK_RC(apply(p, schema1, 0, &changes), 0);
    CHECK_HAS(changes, "added type \"user\"");
    free(changes);
    changes = NULL;
    /* tables, columns and indexes as ddl.c says; the metadata stored */
    CHECK(sql_is("text", "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE "
                 "attrelid = '\"App One\".\"user\"'::regclass AND attname = %s", "'email'"));
    CHECK(sql_is("C", "SELECT collname FROM pg_attribute a JOIN pg_collation c ON "
                 "c.oid = a.attcollation WHERE attrelid = '\"App One\".\"user\"'::regclass AND "
                 "attname = %s", "'email'"));
    CHECK(sql_is("bytea", "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE "
                 "attrelid = '\"App One\".\"user\"'::regclass AND attname = %s", "'$raw'"));
    CHECK(sql_is("CREATE UNIQUE INDEX \"user.org_team_nd\" ON \"App One\".\"user\" USING btree "
                 "(org, team) NULLS NOT DISTINCT", "SELECT pg_get_indexdef(%s::regclass)",
                 "'\"App One\".\"user.org_team_nd\"'"));
    CHECK(sql_is("1", "SELECT gen FROM \"App One\".%s", "\"$meta\""));
    char *stored = sql1("SELECT schema FROM \"App One\".\"$meta\"");
    CHECK(stored && strstr(stored, "\"active_team\""));
    udb_schema *s = NULL;
    uint64_t gen = 0;
    PGconn *c;
    CHECK_RC(udb__pg_acquire(&c, p, &msg), 0);
    CHECK_RC(udb__pg_meta_read(&s, &gen, c, "App One", &msg), 0);
    CHECK(s && gen == 1 && stored && strcmp(s->json, stored) == 0);
    udb__schema_free(s);
    free(stored);
    /* nothing stored in another schema of the same server database */
    CHECK_RC(udb__pg_meta_read(&s, &gen, c, "App Two", &msg), 0);
    CHECK(s == NULL && gen == 0);
    udb__pg_release(p, c);

    /* the same schema again: nothing to do, gen unchanged */
    CHECK_RC(apply(p, schema1, 0, &changes), 0);
    CHECK(changes && changes[0] == '\0');
    free(changes);
    changes = NULL;
    CHECK(sql_is("1", "SELECT gen FROM \"App One\".%s", "\"$meta\""));

    /* uniqueness held against another SQL client */
    char *r = sql1("INSERT INTO \"App One\".\"user\" (id, email, org, team, state) VALUES "
                   "('u1', 'a@x', 1, 't', 'active'), ('u2', 'b@x', 1, 't', 'gone')");
    CHECK_HAS(r, "ERROR: 23505");           /* org_team_nd: (1, 't') twice */
    CHECK_HAS(r, "user.org_team_nd");
    free(r);
    r = sql1("INSERT INTO \"App One\".\"user\" (id, email, org, team, state) VALUES "
             "('u1', 'a@x', 1, NULL, 'active'), ('u2', 'b@x', 1, NULL, 'gone')");
    CHECK_HAS(r, "ERROR: 23505");           /* NULLS NOT DISTINCT: (1, NULL) twice */
    free(r);
    r = sql1("INSERT INTO \"App One\".\"user\" (id, email, org, team, state) VALUES "
             "('u1', 'a@x', 1, 't1', 'active'), ('u2', 'a@x', 2, 't2', 'gone')");
    CHECK_HAS(r, "user.email");
    free(r);
    /* and against psql itself */
    FILE *ps = popen("psql -X -q -v ON_ERROR_STOP=1 -c \"INSERT INTO \\\"App One\\\".\\\"user\\\" "
                     "(id, email, org, team, state) VALUES ('p1', 'p@x', 7, 'q', 'active'), "
                     "('p2', 'p2@x', 7, 'q', 'active')\" 2>&1", "r");
    char out[1024] = "";
    size_t got = ps ? fread(out, 1, sizeof out - 1, ps) : 0;
    out[got] = '\0';
    int st = ps ? pclose(ps) : -1;
    CHECK(st != 0);
    CHECK_HAS(out, "duplicate key value violates unique constraint \"user.active_team\"");
    r = sql1("INSERT INTO \"App One\".\"user\" (id, email, state) VALUES ('u1', 'a@x', 'paused')");
    CHECK_HAS(r, "ERROR: 23514");           /* the enum's CHECK */
    free(r);
    r = sql1("INSERT INTO \"App One\".\"user\" (id, email, org, team, state) VALUES "
             "('u1', 'a@x', 1, 't1', 'active'), ('u2', 'b@x', 2, 't2', 'gone'), "
             "('u3', 'c@x', 3, 't3', 'gone')");
    CHECK(r && r[0] == '\0');
    free(r);

    /* a schema that lacks an index: refused without flags, nothing changed */
    CHECK_RC(apply(p, schema2, 0, NULL), UDB_ESCHEMA);
    CHECK_HAS(m(), "would remove or weaken: index \"user.by_org\"");
    CHECK(sql_is("1", "SELECT count(*) FROM pg_class WHERE relname = %s", "'user.by_org'"));
    CHECK(sql_is("0", "SELECT count(*) FROM pg_attribute WHERE attname = %s", "'nick'"));
    /* KEEP: the index stays, the rest is added */
    CHECK_RC(apply(p, schema2, UDB_SCHEMA_KEEP, &changes), 0);
    CHECK_HAS(changes, "added field \"user.nick\"");
    CHECK_HAS(changes, "added enum value \"paused\"");
    CHECK_HAS(changes, "kept index \"user.by_org\"");
    free(changes);
    changes = NULL;
    CHECK(sql_is("1", "SELECT count(*) FROM pg_class WHERE relname = %s", "'user.by_org'"));
    r = sql1("UPDATE \"App One\".\"user\" SET state = 'paused', nick = 'n' WHERE id = 'u3'");
    CHECK(r && r[0] == '\0');
    free(r);
    CHECK(sql_is("2", "SELECT gen FROM \"App One\".%s", "\"$meta\""));
    /* DROP: the index goes */
    CHECK_RC(apply(p, schema2, UDB_SCHEMA_DROP, &changes), 0);
    CHECK_HAS(changes, "removed index \"user.by_org\"");
    free(changes);
    changes = NULL;
    CHECK(sql_is("0", "SELECT count(*) FROM pg_class WHERE relname = %s", "'user.by_org'"));
    /* rules that hold whatever the flags: a field cannot change type */
    char *retyped = strdup(schema2);
    char *at = strstr(retyped, "\"org\": {\"type\": \"int\"}");
    memcpy(at, "\"org\": {\"type\": \"str\"}", strlen("\"org\": {\"type\": \"str\"}"));
    CHECK_RC(apply(p, retyped, UDB_SCHEMA_DROP, NULL), UDB_ESCHEMA);
    CHECK_HAS(m(), "field \"org\" cannot change type (int to str)");
    free(retyped);

    /* a new unique index that rows break: listed as the LMDB engine lists them */
    r = sql1("INSERT INTO \"App One\".\"user\" (id, email, org, team) VALUES "
             "('u4', 'd@x', 10, 'red'), ('u5', 'e@x', 11, 'red'), ('u0', 'f@x', 12, 'red'), "
             "('u6', 'g@x', 13, 'blue'), ('u7', 'h@x', 14, 'blue')");
    CHECK(r && r[0] == '\0');
    free(r);
    char *withteam = NULL;
    const char *cut = strstr(schema2, "\"org_team_nd\"");
    if (asprintf(&withteam, "%.*s\"team_u\": {\"fields\": [\"team\"]}, %s", (int)(cut - schema2),
                 schema2, cut) > 0) {
        CHECK_RC(apply(p, withteam, 0, NULL), UDB_ECONFLICT);
        CHECK_HAS(m(), "new unique index \"user.team_u\" (team) is violated by 3 existing "
                  "records; colliding id: \"u0\" and \"u4\"; \"u0\" and \"u5\"; \"u6\" and "
                  "\"u7\"");
        CHECK(sql_is("0", "SELECT count(*) FROM pg_class WHERE relname = %s", "'user.team_u'"));
        CHECK(sql_is("3", "SELECT gen FROM \"App One\".%s", "\"$meta\""));
        r = sql1("DELETE FROM \"App One\".\"user\" WHERE id IN ('u0', 'u5', 'u7')");
        free(r);
        CHECK_RC(apply(p, withteam, 0, &changes), 0);
        CHECK_HAS(changes, "added unique index \"user.team_u\" (team)");
        free(changes);
        changes = NULL;
        r = sql1("INSERT INTO \"App One\".\"user\" (id, email, team) VALUES ('u9', 'z@x', 'red')");
        CHECK_HAS(r, "user.team_u");
        free(r);
    }
    free(withteam);

    /* a server without NULLS NOT DISTINCT: refused, naming feature and version */
    udb__pg_pool_fake_version(p, 140009);
    msg.len = 0;
    CHECK_RC(udb__pg_pool_server_version(p) == 140009 ? 0 : -1, 0);
    udb_pgpool *p2 = NULL;
    CHECK_RC(udb__pg_pool_open(&p2, "postgresql://?schema=old_server", 1, &msg), 0);
    if (p2) {
        udb__pg_pool_fake_version(p2, 140009);
        CHECK_RC(apply(p2, schema1, 0, NULL), UDB_ESCHEMA);
        CHECK_HAS(m(), "unique index \"user.org_team_nd\"");
        CHECK_HAS(m(), "NULLS NOT DISTINCT (PostgreSQL 15 or later); this server is version "
                  "14.9 (server_version_num 140009)");
        CHECK(sql_is("0", "SELECT count(*) FROM pg_namespace WHERE nspname = %s",
                     "'old_server'"));
        udb__pg_pool_fake_version(p2, 0);
        CHECK_RC(apply(p2, schema1, 0, NULL), 0);
        udb__pg_pool_close(p2);
    }
    udb__pg_pool_fake_version(p, 0);

    /* sequences, through the public calls on server transactions (the
       backend's seq_peek/seq_store under core/sequence.c): gapless, a
       rollback gives the number back, and UINT64_MAX is the end */
    uint64_t v = 0;
    udb_txn *tx;
    CHECK_RC(udb__pg_begin(&tx, p, UDB_RDONLY, &msg), 0);
    CHECK_RC(udb_seq_get(&v, tx, "invoice"), UDB_ENOTFOUND);
    udb__pg_abort(tx);
    CHECK_RC(udb__pg_begin(&tx, p, 0, &msg), 0);
    CHECK_RC(udb_seq_next(&v, tx, "invoice"), 0);
    CHECK(v == 1);
    CHECK_RC(udb_seq_next(&v, tx, "invoice"), 0);
    CHECK(v == 2);
    udb__pg_abort(tx);
    CHECK_RC(udb__pg_begin(&tx, p, 0, &msg), 0);
    CHECK_RC(udb_seq_next(&v, tx, "invoice"), 0);
    CHECK(v == 1);
    CHECK_RC(udb__pg_commit(tx, &msg), 0);
    CHECK_RC(udb__pg_begin(&tx, p, UDB_RDONLY, &msg), 0);
    CHECK_RC(udb_seq_get(&v, tx, "invoice"), 0);
    CHECK(v == 1);
    udb__pg_abort(tx);
    r = sql1("UPDATE \"App One\".\"$seq\" SET value = 18446744073709551615");
    free(r);
    CHECK_RC(udb__pg_begin(&tx, p, 0, &msg), 0);
    CHECK_RC(udb_seq_next(&v, tx, "invoice"), UDB_EEXHAUSTED);
    udb__pg_abort(tx);
    udb__pg_pool_close(p);
}

/* ---- violations: the same message as the LMDB engine's ------------------------------- */

static const char vschema[] =
    "{\"types\": {\"v\": {\"key\": \"k\", \"fields\": {\"k\": {\"type\": \"int\"},"
    " \"a\": {\"type\": \"str\"}, \"b\": {\"type\": \"int\"}, \"on\": {\"type\": \"bool\"}}}}}";
/* each new unique index alone: a partial compound one, a NULLS NOT DISTINCT
 * one, a NULLs-distinct one */
static const char *const vschemas[] = {
    "{\"types\": {\"v\": {\"key\": \"k\", \"fields\": {\"k\": {\"type\": \"int\"},"
    " \"a\": {\"type\": \"str\"}, \"b\": {\"type\": \"int\"}, \"on\": {\"type\": \"bool\"}},"
    " \"unique\": {\"ab\": {\"fields\": [\"a\", \"b\"], \"where\": \"on = true\"}}}}}",
    "{\"types\": {\"v\": {\"key\": \"k\", \"fields\": {\"k\": {\"type\": \"int\"},"
    " \"a\": {\"type\": \"str\"}, \"b\": {\"type\": \"int\"}, \"on\": {\"type\": \"bool\"}},"
    " \"unique\": {\"b_nd\": {\"fields\": [\"b\"], \"nulls\": \"not_distinct\"}}}}}",
    "{\"types\": {\"v\": {\"key\": \"k\", \"fields\": {\"k\": {\"type\": \"int\"},"
    " \"a\": {\"type\": \"str\"}, \"b\": {\"type\": \"int\"}, \"on\": {\"type\": \"bool\"}},"
    " \"unique\": {\"a\": {\"fields\": [\"a\"]}}}}}",
};
/* k, a, b, on (b < -1000: NULL) */
static const struct { int k; const char *a; int b; int on; } vrows[] = {
    {5, "x", 1, 1}, {-3, "x", 1, 1}, {7, "x", 1, 0}, {9, "y", -9999, 1}, {2, "y", -9999, 1},
    {11, NULL, 1, 1}, {12, NULL, 1, 1}, {20, "z", -9999, 1}, {-40, "w", 4, 1}, {41, "w", 4, 1},
};

static void test_violations(void)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/pg_unit.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    udb_env *env = NULL;
    udb_txn *txn = NULL;
    udb_pgpool *p = NULL;
    msg.len = 0;
    CHECK(mkdtemp(dir) != NULL);
    CHECK_RC(udb_open(&env, dir, NULL), 0);
    CHECK_RC(udb__pg_pool_open(&p, "postgresql://?schema=viol", 1, &msg), 0);
    if (!env || !p)
        goto out;
    CHECK_RC(udb_schema_apply(NULL, env, vschema, strlen(vschema), 0), 0);
    CHECK_RC(apply(p, vschema, 0, NULL), 0);
    CHECK_RC(udb_begin(&txn, env, 0), 0);
    for (size_t i = 0; txn && i < sizeof vrows / sizeof vrows[0]; i++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 2 + (vrows[i].a != NULL) + (vrows[i].b > -1000));
        msgpack_pack_str_with_body(&pk, "k", 1);
        msgpack_pack_int(&pk, vrows[i].k);
        if (vrows[i].a) {
            msgpack_pack_str_with_body(&pk, "a", 1);
            msgpack_pack_str_with_body(&pk, vrows[i].a, strlen(vrows[i].a));
        }
        if (vrows[i].b > -1000) {
            msgpack_pack_str_with_body(&pk, "b", 1);
            msgpack_pack_int(&pk, vrows[i].b);
        }
        msgpack_pack_str_with_body(&pk, "on", 2);
        if (vrows[i].on)
            msgpack_pack_true(&pk);
        else
            msgpack_pack_false(&pk);
        CHECK_RC(udb_insert(NULL, txn, "v", sb.data, sb.size), 0);
        msgpack_sbuffer_destroy(&sb);
        char a[16], b[16];
        snprintf(a, sizeof a, vrows[i].a ? "'%s'" : "NULL", vrows[i].a);
        snprintf(b, sizeof b, vrows[i].b > -1000 ? "%d" : "NULL", vrows[i].b);
        char *r = sql1("INSERT INTO viol.v (k, a, b, \"on\") VALUES (%d, %s, %s, %s)",
                       vrows[i].k, a, b, vrows[i].on ? "true" : "false");
        CHECK(r && r[0] == '\0');
        free(r);
    }
    CHECK_RC(udb_commit(txn), 0);
    for (size_t i = 0; i < sizeof vschemas / sizeof vschemas[0]; i++) {
        const char *v2 = vschemas[i];
        CHECK_RC(udb_schema_apply(NULL, env, v2, strlen(v2), 0), UDB_ECONFLICT);
        char *lmdb = strdup(udb_env_errmsg(env));
        CHECK_RC(apply(p, v2, 0, NULL), UDB_ECONFLICT);
        if (strcmp(lmdb, m()) != 0) {
            fprintf(stderr, "FAIL: violations differ:\n  LMDB:       %s\n  PostgreSQL: %s\n",
                    lmdb, m());
            failures++;
        }
        printf("violations: %s\n", lmdb);
        free(lmdb);
    }
    CHECK_HAS(m(), "4 existing records; colliding k: -3 and 5; -3 and 7; 2 and 9; -40 and 41");
out:
    udb_close(env);
    udb__pg_pool_close(p);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

/* ---- processes applying at once ----------------------------------------------------------- */

#define NPROC 4

static int race(bool nolock)
{
    /* the database exists already: the appliers race on "$meta" and the
       tables, not on creating the schema */
    udb_pgpool *base = NULL;
    const char base_json[] = "{\"types\": {\"base\": {\"key\": \"k\", \"fields\": "
                             "{\"k\": {\"type\": \"int\"}}}}}";
    msg.len = 0;
    if (udb__pg_pool_open(&base, "postgresql://?schema=race", 1, &msg) ||
        apply(base, base_json, 0, NULL)) {
        fprintf(stderr, "race: the base schema: %s\n", m());
        udb__pg_pool_close(base);
        return 1;
    }
    udb__pg_pool_close(base);
    int gate[2];
    if (pipe(gate))
        return 1;
    pid_t kids[NPROC];
    for (int i = 0; i < NPROC; i++) {
        if ((kids[i] = fork()) == 0) {
            close(gate[1]);
            char b;
            udb_pgpool *p = NULL;
            udb_buf kmsg = {0};
            int rc = udb__pg_pool_open(&p, "postgresql://?schema=race", 1, &kmsg);
            if (read(gate[0], &b, 1) < 0)
                _exit(9);
            if (!rc) {
                udb__pg_pool_test_race(p, nolock, 150);
                char json[256];
                snprintf(json, sizeof json, "{\"types\": {\"t%d\": {\"key\": \"k\", \"fields\": "
                         "{\"k\": {\"type\": \"int\"}, \"v\": {\"type\": \"str\"}}, \"unique\": "
                         "{\"v\": {\"fields\": [\"v\"]}}}}}", i);
                rc = udb__pg_schema_apply(NULL, p, json, strlen(json), UDB_SCHEMA_KEEP, &kmsg);
            }
            if (rc)
                fprintf(stderr, "applier %d: %d %s\n", i, rc, kmsg.p ? (char *)kmsg.p : "");
            udb__pg_pool_close(p);
            udb__buf_free(&kmsg);
            _exit(rc ? 1 : 0);
        }
    }
    close(gate[0]);
    usleep(300 * 1000);   /* every child connected */
    close(gate[1]);       /* all start at once */
    int bad = 0;
    for (int i = 0; i < NPROC; i++) {
        int st;
        waitpid(kids[i], &st, 0);
        bad += !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    }
    /* every applier's type is in the stored schema and on the server */
    char *gen = sql1("SELECT gen FROM race.\"$meta\"");
    char *stored = sql1("SELECT schema FROM race.\"$meta\"");
    int types = 0, tables = 0;
    for (int i = 0; i < NPROC; i++) {
        char t[16], q[64];
        snprintf(t, sizeof t, "\"t%d\"", i);
        types += stored && strstr(stored, t) != NULL;
        snprintf(q, sizeof q, "'race.t%d'", i);
        tables += sql_is("t", "SELECT to_regclass(%s) IS NOT NULL", q);
    }
    printf("race%s: %d appliers failed; stored schema has %d of %d types, %d tables, gen %s\n",
           nolock ? " (no lock)" : "", bad, types, NPROC, tables, gen ? gen : "?");
    int ok = bad == 0 && types == NPROC && tables == NPROC && gen && atoi(gen) == NPROC + 1 &&
             stored && strstr(stored, "\"base\"");
    free(gen);
    free(stored);
    char *r = sql1("DROP SCHEMA race CASCADE");
    free(r);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--race-nolock") == 0) {
        int rc = race(true);
        udb__buf_free(&msg);
        return rc;
    }
    test_urls();
    test_connect_errors();
    test_pool();
    test_apply();
    test_violations();
    if (race(false))
        failures++;
    udb__buf_free(&msg);
    if (failures) {
        fprintf(stderr, "pg_unit: %d failures\n", failures);
        return 1;
    }
    printf("pg_unit: ok\n");
    return 0;
}
