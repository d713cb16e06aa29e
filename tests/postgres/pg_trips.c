/*
 * pg_trips.c -- what a transaction on the PostgreSQL backend costs in round
 * trips to the server, counted with libpq's own protocol trace (PQtrace: one
 * ReadyForQuery per round trip): as many as the same work written by hand
 * with libpq (tools/bench's floor).  BEGIN and the schema's generation are
 * one round trip, every statement is prepared once per connection, a find is
 * one SELECT, a new record is one INSERT ... ON CONFLICT DO NOTHING with no
 * read before it.  And what the caching must not cost: a schema applied by
 * anyone is seen by the next transaction (the cached one is read again when
 * the stored generation moves), and a taken key still comes back as the
 * conflict with its detail.  The statements are the hand-written ones too:
 * no SET and no SELECT text in a BEGIN (the generation's SELECT is
 * prepared), no SAVEPOINT around a new record's INSERT that can only fail by
 * ending the transaction -- and one that may fail otherwise (an index row
 * over the server's limit) keeps it: UDB_EKEYTOOLONG, and the transaction
 * goes on.  Run under pg_run.
 *
 * usage: pg_trips [--stale | --unguarded]
 *   --stale: the cache ignores the generation (a test knob): the new schema
 *   must then go unseen and the test FAIL (the negative control).
 *   --unguarded: a new record's INSERT never takes a savepoint (a test knob):
 *   the transaction must then end with the over-long key and the test FAIL.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgcache.h"
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
#define CHECK_TRIPS(n) do { long t_ = trips(); if (t_ != (n)) { \
    fprintf(stderr, "%s:%d: FAIL: %ld round trips, wanted %d\n", __FILE__, __LINE__, t_, \
            (n)); failures++; } } while (0)

static const char schema1[] =
    "{\"types\": {\"b\": {\"key\": \"id\", \"fields\": {\"id\": {\"type\": \"uint\"},"
    " \"ref\": {\"type\": \"str\", \"required\": true}, \"who\": {\"type\": \"str\"},"
    " \"slot\": {\"type\": \"str\"}, \"active\": {\"type\": \"bool\"}},"
    " \"unique\": {\"ref\": {\"fields\": [\"ref\"]},"
    "  \"who_slot\": {\"fields\": [\"who\", \"slot\"], \"where\": \"active = true\"}}}}}";
/* the same with a field more */
static const char schema2[] =
    "{\"types\": {\"b\": {\"key\": \"id\", \"fields\": {\"id\": {\"type\": \"uint\"},"
    " \"ref\": {\"type\": \"str\", \"required\": true}, \"who\": {\"type\": \"str\"},"
    " \"slot\": {\"type\": \"str\"}, \"active\": {\"type\": \"bool\"},"
    " \"note\": {\"type\": \"str\"}},"
    " \"unique\": {\"ref\": {\"fields\": [\"ref\"]},"
    "  \"who_slot\": {\"fields\": [\"who\", \"slot\"], \"where\": \"active = true\"}}}}}";

static void *made[128];
static size_t nmade;

static udb_val J(const char *json)
{
    void *p = NULL;
    size_t n = 0;
    if (udb_json_to_msgpack(&p, &n, json, strlen(json)) || nmade == 128) {
        fprintf(stderr, "bad test JSON: %s\n", json);
        exit(2);
    }
    made[nmade++] = p;
    return (udb_val){p, n};
}

/* ---- counting round trips ------------------------------------------------------ */

static char trace_path[64];
static FILE *trace;
static long seen;

/* Round trips since the last call: the server's ReadyForQuery messages. */
static long trips(void)
{
    fflush(trace);
    FILE *f = fopen(trace_path, "r");
    char line[4096];
    long n = 0;
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, "ReadyForQuery") != NULL;
    if (f)
        fclose(f);
    long d = n - seen;
    seen = n;
    return d;
}

/* Lines of the trace the client sent (F) since mark() that contain needle. */
static long mark_line;

static long trace_lines(const char *needle, bool sent_only)
{
    fflush(trace);
    FILE *f = fopen(trace_path, "r");
    char line[8192];
    long n = 0, hits = 0;
    while (f && fgets(line, sizeof line, f)) {
        /* a line longer than the buffer goes on in the next read: count it once */
        bool whole = strchr(line, '\n') != NULL;
        if (n >= mark_line && needle && (!sent_only || line[0] == 'F') && strstr(line, needle))
            hits++;
        n += whole;
    }
    if (f)
        fclose(f);
    return needle ? hits : n;
}

static void mark(void)
{
    mark_line = trace_lines(NULL, false);
}

static long sent(const char *needle)
{
    return trace_lines(needle, true);
}

static udb_pgpool *pool;
static PGconn *conn;   /* the pool's one connection, traced */

static udb_txn *begin(unsigned flags)
{
    udb_txn *t = NULL;
    msg.len = 0;
    CHECK_RC(udb__pg_begin(&t, pool, flags, &msg), 0);
    if (!t)
        exit(1);
    return t;
}

static void commit(udb_txn *t)
{
    msg.len = 0;
    CHECK_RC(udb__pg_commit(t, &msg), 0);
}

static void insert(const char *json, int want)
{
    udb_txn *t = begin(0);
    udb_val r = J(json), out;
    CHECK_RC(udb_insert(&out, t, "b", r.data, r.size), want);
    commit(t);
}

int main(int argc, char **argv)
{
    bool stale = argc > 1 && strcmp(argv[1], "--stale") == 0;
    udb__pg_test_unguarded(argc > 1 && strcmp(argv[1], "--unguarded") == 0);
    snprintf(trace_path, sizeof trace_path, "/tmp/pg_trips.%d", (int)getpid());
    CHECK_RC(udb__pg_pool_open(&pool, "postgresql://?schema=trips", 1, &msg), 0);
    CHECK_RC(udb__pg_schema_apply(NULL, pool, schema1, strlen(schema1), 0, &msg), 0);
    if (failures)
        return 1;
    udb__pg_cache_test_stale(stale);
    CHECK_RC(udb__pg_acquire(&conn, pool, &msg), 0);
    trace = fopen(trace_path, "w");
    if (!conn || !trace)
        return 2;
    PQtrace(conn, trace);
    PQsetTraceFlags(conn, PQTRACE_SUPPRESS_TIMESTAMPS);
    udb__pg_release(pool, conn);

    /* the first transactions read the schema and prepare their statements */
    insert("{\"id\": 1, \"ref\": \"r1\", \"who\": \"w\", \"slot\": \"s1\", \"active\": true}", 0);
    udb_txn *t = begin(UDB_RDONLY);
    udb_val k = J("[\"r1\"]"), out;
    CHECK_RC(udb_find(&out, t, "b", "ref", k.data, k.size), 0);
    udb__pg_abort(t);
    uint64_t prepared = udb__pg_cache_prepares(conn);
    CHECK(udb__pg_cache_schema_reads(conn) == 1);
    trips();

    /* a single insert: BEGIN (and the generation), INSERT, COMMIT */
    insert("{\"id\": 2, \"ref\": \"r2\", \"who\": \"w\", \"slot\": \"s2\", \"active\": true}", 0);
    CHECK_TRIPS(3);
    /* a find is one SELECT (a key asked again in the transaction: none) */
    t = begin(UDB_RDONLY);
    CHECK_TRIPS(1);
    for (int i = 0; i < 10; i++) {
        char key[16];
        snprintf(key, sizeof key, "[\"r%d\"]", i);
        k = J(key);
        CHECK_RC(udb_find(&out, t, "b", "ref", k.data, k.size),
                 i == 1 || i == 2 ? 0 : UDB_ENOTFOUND);
    }
    CHECK_TRIPS(10);
    k = J("[\"r9\"]");
    CHECK_RC(udb_find(&out, t, "b", "ref", k.data, k.size), UDB_ENOTFOUND);
    CHECK_TRIPS(0);
    udb__pg_abort(t);
    CHECK_TRIPS(1);
    /* insert_or_get: the INSERT first (ON CONFLICT DO NOTHING), and the
       holder read only when the key was taken -- as by hand: a new key is
       one round trip, a taken one two.  And the statements as by hand:
       BEGIN with the generation's SELECT prepared (no SET, no SELECT text),
       no SAVEPOINT around an INSERT that can only fail by ending the
       transaction */
    mark();
    t = begin(0);
    CHECK_TRIPS(1);
    CHECK(sent("SET ") == 0);
    CHECK(sent("SELECT gen") == 0);
    CHECK(sent("EXECUTE udb_") == 1);
    int created = -1;
    udb_val r = J("{\"id\": 3, \"ref\": \"r1\", \"who\": \"x\", \"slot\": \"s3\"}");
    CHECK_RC(udb_insert_or_get(&out, &created, t, "b", "ref", r.data, r.size), 0);
    CHECK(created == 0);
    CHECK_TRIPS(2);
    r = J("{\"id\": 3, \"ref\": \"r3\", \"who\": \"x\", \"slot\": \"s3\"}");
    CHECK_RC(udb_insert_or_get(&out, &created, t, "b", "ref", r.data, r.size), 0);
    CHECK(created == 1);
    CHECK_TRIPS(1);
    CHECK(sent("SAVEPOINT") == 0);
    commit(t);
    CHECK_TRIPS(1);
    /* nothing prepared again, the schema not read again */
    CHECK(udb__pg_cache_prepares(conn) == prepared);
    CHECK(udb__pg_cache_schema_reads(conn) == 1);

    /* a taken key: the conflict and its detail as before, nothing written,
       the transaction goes on */
    t = begin(0);
    r = J("{\"id\": 9, \"ref\": \"R9\", \"who\": \"w\", \"slot\": \"s1\", \"active\": true}");
    CHECK_RC(udb_insert(&out, t, "b", r.data, r.size), UDB_ECONFLICT);
    const udb_conflict *c = udb_conflict_info(t);
    udb_val hk = J("1");
    CHECK(c && c->count == 1 && strcmp(c->indexes[0].index, "who_slot") == 0 &&
          c->indexes[0].existing_key.size == hk.size &&
          memcmp(c->indexes[0].existing_key.data, hk.data, hk.size) == 0);
    r = J("{\"id\": 9, \"ref\": \"r9\", \"who\": \"w\", \"slot\": \"s9\", \"active\": true}");
    CHECK_RC(udb_insert(&out, t, "b", r.data, r.size), 0);
    commit(t);
    trips();

    /* an INSERT that may fail in a way the transaction goes on from keeps
       its savepoint: a key over the server's index row limit is
       UDB_EKEYTOOLONG naming the index, nothing written, and the
       transaction goes on (--unguarded drops the savepoint: it must not) */
    char big[6000];
    unsigned x = 12345;
    for (size_t i = 0; i < sizeof big - 1; i++) {
        x = x * 1103515245u + 12345u;
        big[i] = (char)('a' + (x >> 16) % 26);   /* nothing the server's compression shrinks */
    }
    big[sizeof big - 1] = '\0';
    char json[6100];
    snprintf(json, sizeof json, "{\"id\": 20, \"ref\": \"%s\"}", big);
    t = begin(0);
    mark();
    r = J(json);
    msg.len = 0;
    CHECK_RC(udb_insert_or_get(&out, &created, t, "b", "ref", r.data, r.size),
             UDB_EKEYTOOLONG);
    CHECK(strstr(udb_errmsg(t), "b.ref") != NULL);
    CHECK(sent("ROLLBACK TO SAVEPOINT") == 1);
    r = J("{\"id\": 21, \"ref\": \"r21\"}");
    CHECK_RC(udb_insert_or_get(&out, &created, t, "b", "ref", r.data, r.size), 0);
    CHECK(created == 1);
    commit(t);
    t = begin(UDB_RDONLY);
    CHECK_RC(udb_get(&out, t, "b", J("20").data, J("20").size), UDB_ENOTFOUND);
    CHECK_RC(udb_get(&out, t, "b", J("21").data, J("21").size), 0);
    udb__pg_abort(t);
    trips();

    /* another process's schema change is seen by the next transaction */
    udb_pgpool *other = NULL;
    CHECK_RC(udb__pg_pool_open(&other, "postgresql://?schema=trips", 1, &msg), 0);
    CHECK_RC(udb__pg_schema_apply(NULL, other, schema2, strlen(schema2), 0, &msg), 0);
    udb__pg_pool_close(other);
    insert("{\"id\": 10, \"ref\": \"r10\", \"note\": \"new field\"}", 0);
    CHECK(udb__pg_cache_schema_reads(conn) == 2);
    t = begin(UDB_RDONLY);
    k = J("[\"r10\"]");
    CHECK_RC(udb_find(&out, t, "b", "ref", k.data, k.size), 0);
    udb_val want = J("{\"id\": 10, \"ref\": \"r10\", \"note\": \"new field\"}");
    CHECK(out.size == want.size && memcmp(out.data, want.data, want.size) == 0);
    udb__pg_abort(t);

    /* what going without the savepoint gives up (README, "What differs"): a
       failure the core cannot foresee -- here a CHECK another SQL client
       added -- ends the transaction: the call fails, then COMMIT
       (UDB_ESERVER), and nothing is written */
    PGconn *other_client = PQconnectdb("postgresql:///uniqdb_test");
    PGresult *res = PQexec(other_client, "ALTER TABLE \"trips\".\"b\" ADD CONSTRAINT "
                           "\"b_not_z\" CHECK (\"who\" IS DISTINCT FROM 'z')");
    CHECK(PQresultStatus(res) == PGRES_COMMAND_OK);
    PQclear(res);
    PQfinish(other_client);
    t = begin(0);
    r = J("{\"id\": 30, \"ref\": \"r30\", \"who\": \"z\"}");
    CHECK_RC(udb_insert_or_get(&out, &created, t, "b", "ref", r.data, r.size), UDB_EBADRECORD);
    msg.len = 0;
    CHECK_RC(udb__pg_commit(t, &msg), UDB_ESERVER);
    t = begin(UDB_RDONLY);
    CHECK_RC(udb_get(&out, t, "b", J("30").data, J("30").size), UDB_ENOTFOUND);
    udb__pg_abort(t);

    udb__pg_pool_close(pool);
    fclose(trace);
    unlink(trace_path);
    for (size_t i = 0; i < nmade; i++)
        udb_free(made[i]);
    udb__buf_free(&msg);
    if (failures) {
        fprintf(stderr, "pg_trips: %d failures\n", failures);
        return 1;
    }
    printf("pg_trips: ok\n");
    return 0;
}
