/*
 * pg_env.c -- the public API on a postgresql:// URL (engine/pg/pgenv.c):
 * open and its errors, schema apply, udb_write / udb_begin / udb_exec /
 * udb_exec_async reaching the server, udb_write run again when the server
 * refuses concurrent work (and exactly one creator among racing threads),
 * UDB_ERETRY for udb_begin users, a COMMIT whose answer is lost (udb_exec
 * finds out from its unit id; udb_write says UDB_EINDOUBT and does not run
 * again), udb_check catching an index dropped behind uniqdb's back, and
 * what a server database has no use for (usage, space, backup).
 * Run under pg_run (PGHOST etc. point at a private server).
 *
 * usage: pg_env [--control-no-unit-id]
 *   --control-no-unit-id: udb_exec's units go without their id, so a lost
 *   COMMIT answer cannot be told from no commit: this run must FAIL
 *   (should_fail): the unit is run again and meets its own record.
 */
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgstore.h"
#include "uniqdb.h"

static int failures;

#define CHECK(e) do { if (!(e)) { fprintf(stderr, "%s:%d: FAIL: %s (%s)\n", __FILE__, \
                                          __LINE__, #e, udb_env_errmsg(NULL)); \
                                  failures++; } } while (0)
#define CHECK_RC(call, want) do { int rc_ = (call); if (rc_ != (want)) { \
    fprintf(stderr, "%s:%d: FAIL: %s gave %d (%s), wanted %d; %s\n", __FILE__, __LINE__, \
            #call, rc_, udb_strerror(rc_), (want), udb_env_errmsg(NULL)); failures++; } \
    } while (0)

#define URL "postgresql:///uniqdb_test?schema=envtest"

static const char schema[] =
    "{\"types\": {\"booking\": {\"key\": \"id\", \"fields\": {"
    "  \"id\": {\"type\": \"uint\", \"auto\": true},"
    "  \"who\": {\"type\": \"str\", \"required\": true},"
    "  \"slot\": {\"type\": \"str\", \"required\": true},"
    "  \"active\": {\"type\": \"bool\"}},"
    " \"unique\": {\"active_slot\": {\"fields\": [\"who\", \"slot\"],"
    "                               \"where\": \"active = true\"}}},"
    " \"tag\": {\"key\": \"name\", \"fields\": {\"name\": {\"type\": \"str\"},"
    "  \"n\": {\"type\": \"int\"}}}}}";

/* msgpack of a booking {who, slot, active: true}: short strings only */
static size_t booking(unsigned char *b, const char *who, const char *slot)
{
    size_t n = 0, lw = strlen(who), ls = strlen(slot);
    b[n++] = 0x83;
    b[n++] = 0xa3; memcpy(b + n, "who", 3); n += 3;
    b[n++] = (unsigned char)(0xa0 | lw); memcpy(b + n, who, lw); n += lw;
    b[n++] = 0xa4; memcpy(b + n, "slot", 4); n += 4;
    b[n++] = (unsigned char)(0xa0 | ls); memcpy(b + n, slot, ls); n += ls;
    b[n++] = 0xa6; memcpy(b + n, "active", 6); n += 6;
    b[n++] = 0xc3;
    return n;
}

static size_t tag(unsigned char *b, const char *name)
{
    size_t n = 0, l = strlen(name);
    b[n++] = 0x81;
    b[n++] = 0xa4; memcpy(b + n, "name", 4); n += 4;
    b[n++] = (unsigned char)(0xa0 | l); memcpy(b + n, name, l); n += l;
    return n;
}

static int count_bookings(udb_env *env)
{
    udb_txn *r;
    udb_type_stat st;
    if (udb_begin(&r, env, UDB_RDONLY))
        return -1;
    int rc = udb_type_stat_get(&st, r, "booking");
    udb_abort(r);
    return rc ? -1 : (int)st.records;
}

/* ---- open ---- */

static void test_open_errors(void)
{
    udb_env *env = NULL;
    CHECK_RC(udb_open(&env, "postgresql:///uniqdb_test?schema=a&schema=b", NULL), UDB_EINVAL);
    CHECK(env == NULL);
    CHECK(strstr(udb_env_errmsg(NULL), "schema") != NULL);
    CHECK_RC(udb_open(&env, "postgresql:///uniqdb_test?host=/nonexistent-dir", NULL),
             UDB_ECONNECT);
    CHECK_RC(udb_open(&env, "postgresql:///uniqdb_test?user=nosuchrole", NULL), UDB_EAUTH);
    /* a password in the URL is not repeated in messages */
    CHECK_RC(udb_open(&env, "postgresql://u:s3cret@/uniqdb_test?host=/nonexistent-dir", NULL),
             UDB_ECONNECT);
    CHECK(strstr(udb_env_errmsg(NULL), "s3cret") == NULL);
    CHECK(strstr(udb_env_errmsg(NULL), "u:***@") != NULL);
    CHECK_RC(udb_open(&env, "postgresql:///uniqdb_test?password=s3cret&schema=a&schema=b",
                      NULL), UDB_EINVAL);
    CHECK(strstr(udb_env_errmsg(NULL), "s3cret") == NULL);
    udb_options o = UDB_OPTIONS_INIT;
    o.flags = UDB_NOLOCK | UDB_RDONLY_ENV;
    CHECK_RC(udb_open(&env, URL, &o), UDB_EINVAL);
}

/* ---- writes ---- */

static int insert_fn(udb_txn *txn, void *ctx)
{
    unsigned char b[64];
    size_t n = booking(b, "ana", ctx);
    return udb_insert(NULL, txn, "booking", b, n);
}

static void test_write_read(udb_env *env)
{
    CHECK_RC(udb_write(env, insert_fn, "mon-9"), 0);
    CHECK_RC(udb_write(env, insert_fn, "mon-9"), UDB_ECONFLICT);
    CHECK(strstr(udb_env_errmsg(NULL), "active_slot") != NULL);
    udb_txn *w;
    CHECK_RC(udb_begin(&w, env, 0), 0);
    unsigned char b[64];
    size_t n = booking(b, "ana", "mon-9");
    CHECK_RC(udb_insert(NULL, w, "booking", b, n), UDB_ECONFLICT);
    const udb_conflict *c = udb_conflict_info(w);
    CHECK(c && c->count == 1 && strcmp(c->indexes[0].index, "active_slot") == 0);
    /* a unique value over PostgreSQL's index-row limit: UDB_EKEYTOOLONG, nothing
       written (on LMDB any length is stored) */
    {
        static unsigned char big[8200];
        size_t m = 0;
        big[m++] = 0x83;
        big[m++] = 0xa3; memcpy(big + m, "who", 3); m += 3;
        big[m++] = 0xda; big[m++] = 8000 >> 8; big[m++] = 8000 & 0xff;
        uint32_t x = 2463534242u;   /* xorshift: letters the server cannot compress away */
        for (int i = 0; i < 8000; i++) {
            x ^= x << 13; x ^= x >> 17; x ^= x << 5;
            big[m++] = (unsigned char)('a' + x % 26);
        }
        big[m++] = 0xa4; memcpy(big + m, "slot", 4); m += 4;
        big[m++] = 0xa1; big[m++] = 'x';
        big[m++] = 0xa6; memcpy(big + m, "active", 6); m += 6;
        big[m++] = 0xc3;
        CHECK_RC(udb_insert(NULL, w, "booking", big, m), UDB_EKEYTOOLONG);
        CHECK(strstr(udb_errmsg(w), "2704") != NULL);
    }
    /* the transaction goes on after a conflict, as on LMDB */
    n = booking(b, "ana", "mon-10");
    CHECK_RC(udb_insert(NULL, w, "booking", b, n), 0);
    CHECK_RC(udb_commit(w), 0);
    CHECK(count_bookings(env) == 2);
    char *json = NULL;
    CHECK_RC(udb_schema_json(&json, env), 0);
    CHECK(json && strstr(json, "active_slot"));
    udb_free(json);
}

/* Two udb_begin writers (threads) that both find a key free: the second is
 * refused by the server (UDB_ERETRY), nothing of it written. */
typedef struct stepper {
    udb_env *env;
    pthread_barrier_t *step;
    int rc;
} stepper;

static void *second_writer(void *arg)
{
    stepper *s = arg;
    unsigned char buf[64];
    size_t n = tag(buf, "both");
    int created;
    udb_txn *b = NULL;
    s->rc = udb_begin(&b, s->env, 0);
    pthread_barrier_wait(s->step);          /* 1: both began */
    pthread_barrier_wait(s->step);          /* 2: the first committed */
    if (!s->rc) {
        s->rc = udb_insert_or_get(NULL, &created, b, "tag", NULL, buf, n);
        if (s->rc == 0)
            s->rc = udb_commit(b);
        else
            udb_abort(b);
    }
    return NULL;
}

static void test_retry_code(udb_env *env)
{
    pthread_barrier_t step;
    pthread_barrier_init(&step, NULL, 2);
    stepper s = {env, &step, -1};
    pthread_t th;
    pthread_create(&th, NULL, second_writer, &s);
    udb_txn *a;
    unsigned char buf[64];
    size_t n = tag(buf, "both");
    int created;
    CHECK_RC(udb_begin(&a, env, 0), 0);
    /* a thread holding a transaction does not write through another */
    udb_txn *again = NULL;
    CHECK_RC(udb_begin(&again, env, 0), UDB_EINVAL);
    CHECK(strstr(udb_env_errmsg(NULL), "already has a transaction") != NULL);
    CHECK_RC(udb_write(env, insert_fn, "fri-9"), UDB_EINVAL);
    pthread_barrier_wait(&step);            /* 1 */
    CHECK_RC(udb_insert_or_get(NULL, &created, a, "tag", NULL, buf, n), 0);
    CHECK_RC(udb_commit(a), 0);
    pthread_barrier_wait(&step);            /* 2 */
    pthread_join(th, NULL);
    pthread_barrier_destroy(&step);
    CHECK_RC(s.rc, UDB_ERETRY);
}

/* Threads racing insert_or_get through udb_write: every one succeeds (the
 * refused ones run again), exactly one creates. */
#define RACERS 8
static atomic_int creators;

typedef struct racer {
    char name[32];
    int created;
    udb_env *env;
    int rc;
    pthread_barrier_t *go;
} racer;

static int racer_fn(udb_txn *txn, void *ctx)
{
    racer *r = ctx;
    unsigned char buf[64];
    size_t n = tag(buf, r->name);
    int created = 0;
    int rc = udb_insert_or_get(NULL, &created, txn, "tag", NULL, buf, n);
    r->created = created;   /* the last run's answer is the one committed */
    return rc;
}

static void *race_thread(void *arg)
{
    racer *r = arg;
    pthread_barrier_wait(r->go);
    r->rc = udb_write(r->env, racer_fn, r);
    if (!r->rc && r->created)
        atomic_fetch_add(&creators, 1);
    return NULL;
}

static void test_write_race(udb_env *env)
{
    for (int round = 0; round < 5; round++) {
        pthread_t th[RACERS];
        racer rs[RACERS];
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, RACERS);
        atomic_store(&creators, 0);
        for (int i = 0; i < RACERS; i++) {
            memset(&rs[i], 0, sizeof rs[i]);
            snprintf(rs[i].name, sizeof rs[i].name, "race-%d", round);
            rs[i].env = env;
            rs[i].go = &go;
            pthread_create(&th[i], NULL, race_thread, &rs[i]);
        }
        for (int i = 0; i < RACERS; i++) {
            pthread_join(th[i], NULL);
            CHECK_RC(rs[i].rc, 0);
        }
        pthread_barrier_destroy(&go);
        CHECK(atomic_load(&creators) == 1);
    }
}

/* ---- udb_exec, and a COMMIT whose answer is lost ---- */

static void test_exec(udb_env *env, bool control)
{
    unsigned char b[64];
    size_t n = booking(b, "bo", "tue-9");
    udb_op op = UDB_OP_INIT;
    op.kind = UDB_OP_INSERT;
    op.type = "booking";
    op.rec = (udb_val){b, n};
    udb_results *res = NULL;
    CHECK_RC(udb_exec(&res, env, &op, 1), 0);
    CHECK(res && udb_results_failed(res) == 1);
    udb_results_free(res);
    CHECK_RC(udb_exec(&res, env, &op, 1), UDB_ECONFLICT);
    CHECK(res && udb_results_failed(res) == 0 && udb_result_at(res, 0)->conflict);
    udb_results_free(res);

    /* the unit commits, its answer is lost: udb_exec reads its id and
       answers as if the connection had held -- not by running it again */
    int before = count_bookings(env);
    n = booking(b, "bo", "tue-10");
    op.rec = (udb_val){b, n};
    udb__pg_test_no_unit_mark(control);
    udb__pg_test_lose_commits(1);
    int rc = udb_exec(&res, env, &op, 1);
    udb__pg_test_lose_commits(0);
    udb__pg_test_no_unit_mark(false);
    if (rc != 0)
        fprintf(stderr, "in-doubt unit: udb_exec gave %d (%s): %s\n", rc, udb_strerror(rc),
                udb_env_errmsg(NULL));
    CHECK_RC(rc, 0);
    CHECK(count_bookings(env) == before + 1);
    udb_results_free(res);
}

static atomic_int runs;

static int counted_fn(udb_txn *txn, void *ctx)
{
    atomic_fetch_add(&runs, 1);
    return insert_fn(txn, ctx);
}

static void test_write_in_doubt(udb_env *env)
{
    int before = count_bookings(env);
    atomic_store(&runs, 0);
    udb__pg_test_lose_commits(1);
    CHECK_RC(udb_write(env, counted_fn, "wed-9"), UDB_EINDOUBT);
    udb__pg_test_lose_commits(0);
    CHECK(atomic_load(&runs) == 1);            /* never run again by itself */
    CHECK(count_bookings(env) == before + 1);  /* (it was written, this time) */
}

static atomic_int async_ok;

static void async_done(int rc, udb_results *res, const char *msg, void *payload)
{
    udb_results_free(res);
    (void)payload;
    if (rc == 0)
        atomic_fetch_add(&async_ok, 1);
    else
        fprintf(stderr, "async unit: %d %s\n", rc, msg);
}

static void test_exec_async(udb_env *env)
{
    enum { N = 64 };
    static unsigned char bufs[N][64];
    atomic_store(&async_ok, 0);
    for (int i = 0; i < N; i++) {
        char name[16];
        snprintf(name, sizeof name, "a%d", i);
        size_t n = tag(bufs[i], name);
        udb_op op = UDB_OP_INIT;
        op.kind = UDB_OP_INSERT;
        op.type = "tag";
        op.rec = (udb_val){bufs[i], n};
        CHECK_RC(udb_exec_async(env, &op, 1, async_done, NULL), 0);
    }
    CHECK_RC(udb_exec_async_wait(env), 0);
    CHECK(atomic_load(&async_ok) == N);
}

/* ---- check, and what a server has no use for ---- */

static int problems_seen;

static void report(const char *problem, void *ctx)
{
    (void)ctx;
    if (strstr(problem, "active_slot"))
        problems_seen++;
}

static void test_check(udb_env *env)
{
    size_t problems = 99;
    CHECK_RC(udb_check(&problems, env, NULL, NULL), 0);
    CHECK(problems == 0);
    /* another SQL client drops the partial unique index */
    PGconn *c = PQconnectdb("dbname=uniqdb_test");
    PGresult *r = PQexec(c, "DROP INDEX envtest.\"booking.active_slot\"");
    CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(c);
    problems_seen = 0;
    CHECK_RC(udb_check(&problems, env, report, NULL), UDB_ECORRUPT);
    CHECK(problems >= 1 && problems_seen >= 1);
}

static void test_not_on_server(udb_env *env)
{
    size_t a, b;
    CHECK_RC(udb_env_usage(&a, &b, env), UDB_EINVAL);
    udb_space sp = UDB_SPACE_INIT;
    CHECK_RC(udb_env_space(&sp, env), UDB_EINVAL);
    CHECK_RC(udb_backup(env, "/tmp/nowhere", 0), UDB_EINVAL);
    CHECK(strstr(udb_env_errmsg(NULL), "pg_dump") != NULL);
    udb_options o = UDB_OPTIONS_INIT;
    o.flags = UDB_RDONLY_ENV;
    udb_env *ro;
    CHECK_RC(udb_open(&ro, URL, &o), 0);
    udb_txn *t = NULL;
    CHECK_RC(udb_begin(&t, ro, 0), UDB_EREADONLY);
    CHECK_RC(udb_begin(&t, ro, UDB_RDONLY), 0);
    udb_abort(t);
    udb_close(ro);
}

/* Sequences need no schema, as on LMDB: read before any was advanced (no
 * "$seq" yet), they were never advanced -- and the transaction goes on --;
 * advanced, they make the database's tables; a schema applied after keeps
 * them. */
static void test_seq_without_schema(void)
{
    udb_env *env;
    CHECK_RC(udb_open(&env, "postgresql:///uniqdb_test?schema=envseq", NULL), 0);
    if (failures)
        return;
    udb_txn *t;
    uint64_t v = 0;
    CHECK_RC(udb_begin(&t, env, UDB_RDONLY), 0);
    CHECK_RC(udb_seq_get(&v, t, "tickets"), UDB_ENOTFOUND);
    CHECK_RC(udb_seq_get(&v, t, "tickets"), UDB_ENOTFOUND);
    udb_abort(t);
    CHECK_RC(udb_begin(&t, env, 0), 0);
    CHECK_RC(udb_seq_get(&v, t, "tickets"), UDB_ENOTFOUND);
    CHECK_RC(udb_seq_next(&v, t, "tickets"), 0);
    CHECK(v == 1);
    CHECK_RC(udb_seq_next(&v, t, "tickets"), 0);
    CHECK(v == 2);
    CHECK_RC(udb_commit(t), 0);
    CHECK_RC(udb_begin(&t, env, UDB_RDONLY), 0);
    CHECK_RC(udb_seq_get(&v, t, "tickets"), 0);
    CHECK(v == 2);
    udb_abort(t);
    CHECK_RC(udb_schema_apply(NULL, env, schema, strlen(schema), 0), 0);
    CHECK_RC(udb_begin(&t, env, 0), 0);
    CHECK_RC(udb_seq_next(&v, t, "tickets"), 0);
    CHECK(v == 3);
    CHECK_RC(udb_commit(t), 0);
    udb_close(env);
}

int main(int argc, char **argv)
{
    bool control = argc > 1 && strcmp(argv[1], "--control-no-unit-id") == 0;
    test_open_errors();
    test_seq_without_schema();
    udb_env *env;
    CHECK_RC(udb_open(&env, URL, NULL), 0);
    if (failures)
        return 1;
    CHECK_RC(udb_schema_apply(NULL, env, schema, strlen(schema), 0), 0);
    test_write_read(env);
    test_retry_code(env);
    test_write_race(env);
    test_exec(env, control);
    test_write_in_doubt(env);
    test_exec_async(env);
    test_not_on_server(env);
    test_check(env);
    udb_close(env);
    if (failures) {
        fprintf(stderr, "pg_env: %d failures\n", failures);
        return 1;
    }
    printf("pg_env: ok\n");
    return 0;
}
