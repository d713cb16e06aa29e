/*
 * test_exec.c -- udb_exec: a unit of operations given as data.  Every op kind
 * and what its result holds; a failing op anywhere leaves nothing of the unit
 * written (with a negative control: the same ops as separate units do write);
 * argument checks; results that outlive the transaction and the environment;
 * a rerun after the map grows; threads sharing commits.  Processes racing
 * through udb_exec are in the race suite (race_exec).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "support.h"
#include "testutil.h"

static const char *const SCHEMA =
    "{`types`: {"
    "`acct`: {`key`: `id`, `fields`: {`id`: {`type`: `str`},"
    "  `email`: {`type`: `str`, `required`: true}, `name`: {`type`: `str`},"
    "  `visits`: {`type`: `uint`}},"
    "  `unique`: {`email`: {`fields`: [`email`]}}},"
    "`job`: {`key`: `id`, `fields`: {`id`: {`type`: `uint`, `auto`: true},"
    "  `queue`: {`type`: `str`, `required`: true}, `name`: {`type`: `str`, `required`: true},"
    "  `state`: {`type`: `str`}, `pad`: {`type`: `str`}},"
    "  `unique`: {`qn`: {`fields`: [`queue`, `name`]}}},"
    "`invoice`: {`key`: `no`, `fields`: {`no`: {`type`: `uint`}, `acct`: {`type`: `str`}}}"
    "}}";

static udb_op op_of(unsigned kind, const char *type)
{
    udb_op o = UDB_OP_INIT;
    o.kind = kind;
    o.type = type;
    return o;
}

static udb_op rec_op(unsigned kind, const char *type, udb_val rec)
{
    udb_op o = op_of(kind, type);
    o.rec = rec;
    return o;
}

static udb_op key_op(unsigned kind, const char *type, udb_val key)
{
    udb_op o = op_of(kind, type);
    o.key = key;
    return o;
}

static udb_op seq_op(const char *name)
{
    udb_op o = op_of(UDB_OP_SEQ_NEXT, NULL);
    o.seq = name;
    return o;
}

/* udb_exec whose results live until the next run() or run_done(). */
static udb_results *last;

static int run(const udb_results **res, tu *t, const udb_op *ops, size_t n)
{
    udb_results_free(last);
    last = NULL;
    int rc = udb_exec(&last, t->env, ops, n);
    *res = last;
    return rc;
}

static void run_done(void)
{
    udb_results_free(last);
    last = NULL;
}

static const udb_result *at(const udb_results *res, size_t i)
{
    static const udb_result none = {-1, -1, {NULL, 0}, 0, 0, "", NULL};
    const udb_result *r = udb_result_at(res, i);
    return r ? r : &none;
}

/* A result zeroed because the unit failed elsewhere. */
static bool is_empty(const udb_result *r)
{
    return r->rc == 0 && r->created == 0 && r->record.data == NULL && r->record.size == 0 &&
           r->chosen == 0 && r->value == 0 && r->errmsg && r->errmsg[0] == '\0' &&
           r->conflict == NULL;
}

static void t_every_kind_in_one_unit(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    udb_val cands[2] = {mp("{s:s, s:s}", "queue", "q", "name", "n"),
                        mp("{s:s, s:s}", "queue", "q", "name", "m")};
    udb_op ops[10];
    ops[0] = rec_op(UDB_OP_INSERT, "acct", mp("{s:s, s:s}", "id", "a", "email", "a@x"));
    ops[1] = rec_op(UDB_OP_INSERT_OR_GET, "job",
                    mp("{s:s, s:s, s:s}", "queue", "q", "name", "n", "state", "first"));
    ops[1].index = "qn";
    ops[2] = ops[1];   /* sees op 1's record */
    ops[2].rec = mp("{s:s, s:s, s:s}", "queue", "q", "name", "n", "state", "second");
    ops[3] = rec_op(UDB_OP_UPSERT, "acct", mp("{s:s, s:s}", "email", "a@x", "name", "Ann"));
    ops[3].index = "email";
    ops[3].on_insert = mp("{s:s}", "id", "zz");
    ops[4] = key_op(UDB_OP_UPDATE, "acct", mp("s", "a"));
    ops[4].rec = mp("{s:s, s:u}", "email", "a@x", "visits", 3u);
    ops[5] = key_op(UDB_OP_UPDATE, "acct", mp("s", "a"));
    ops[5].rec = mp("{s:s}", "name", "Bo");
    ops[5].flags = UDB_MERGE;
    ops[6] = seq_op("inv");
    ops[7] = rec_op(UDB_OP_INSERT, "invoice", mp("{s:s}", "acct", "a"));
    ops[7].seq_field = "no";
    ops[7].seq_op = 6;
    ops[8] = op_of(UDB_OP_INSERT_FIRST, "job");
    ops[8].candidates = cands;
    ops[8].ncandidates = 2;
    ops[9] = key_op(UDB_OP_DELETE, "job", mp("U", 1ull));

    udb_results *res = NULL;
    CHECK_OK(udb_exec(&res, t->env, ops, 10));
    CHECK(res && udb_results_failed(res) == 10);
    const char *want[10] = {
        "{\"id\":\"a\",\"email\":\"a@x\"}",
        "{\"id\":1,\"queue\":\"q\",\"name\":\"n\",\"state\":\"first\"}",
        "{\"id\":1,\"queue\":\"q\",\"name\":\"n\",\"state\":\"first\"}",
        "{\"id\":\"a\",\"email\":\"a@x\",\"name\":\"Ann\"}",
        "{\"id\":\"a\",\"email\":\"a@x\",\"visits\":3}",
        "{\"id\":\"a\",\"email\":\"a@x\",\"name\":\"Bo\",\"visits\":3}",
        NULL,
        "{\"no\":1,\"acct\":\"a\"}",
        "{\"id\":2,\"queue\":\"q\",\"name\":\"m\"}",
        NULL,
    };
    const int created[10] = {1, 1, 0, 0, 0, 0, 0, 1, 0, 0};
    for (size_t i = 0; i < 10; i++) {
        const udb_result *r = at(res, i);
        if (!CHECK(r->rc == 0 && r->errmsg && r->errmsg[0] == '\0' && r->conflict == NULL))
            fprintf(stderr, "  op %zu: rc %d %s\n", i, r->rc, r->errmsg);
        if (want[i])
            CHECK_STR(tu_render(r->record), want[i]);
        else
            CHECK(r->record.data == NULL && r->record.size == 0);
        if (!CHECK(r->created == created[i]))
            fprintf(stderr, "  op %zu: created %d\n", i, r->created);
    }
    CHECK(at(res, 6)->value == 1);
    CHECK(at(res, 8)->chosen == 1);
    CHECK(udb_result_at(res, 10) == NULL && udb_result_at(NULL, 0) == NULL);
    udb_results_free(res);

    /* what the unit wrote */
    udb_txn *txn = tu_r(t);
    udb_val out;
    uint64_t v = 0;
    CHECK_SCAN(tu_scan(txn, "job", NULL, NOVAL, "id"), "2");
    CHECK_SCAN(tu_scan(txn, "acct", NULL, NOVAL, "name"), "\"Bo\"");
    CHECK_OK(tu_get(&out, txn, "invoice", mp("U", 1ull)));
    CHECK_OK(udb_seq_get(&v, txn, "inv"));
    CHECK(v == 1);
    tu_commit(txn);
}

/* A failing op anywhere in the unit: nothing of it is written, the results
 * say which op failed and why, and the other results are empty. */
static void t_a_failing_op_writes_nothing(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    const udb_results *res;
    udb_op seed = rec_op(UDB_OP_INSERT, "acct", mp("{s:s, s:s}", "id", "b", "email", "b@x"));
    CHECK_OK(run(&res, t, &seed, 1));

    udb_op ops[4];
    ops[0] = seq_op("inv");
    ops[1] = rec_op(UDB_OP_INSERT, "acct", mp("{s:s, s:s}", "id", "a", "email", "a@x"));
    ops[2] = rec_op(UDB_OP_INSERT, "acct", mp("{s:s, s:s}", "id", "c", "email", "b@x"));
    ops[3] = rec_op(UDB_OP_INSERT, "job", mp("{s:s, s:s}", "queue", "q", "name", "n"));
    CHECK_RC(run(&res, t, ops, 4), UDB_ECONFLICT);
    CHECK(udb_results_failed(res) == 2);
    const udb_result *r = at(res, 2);
    CHECK(r->rc == UDB_ECONFLICT && r->record.data == NULL);
    CHECK_STR(tu_conflict_of(r->conflict), "acct: email(email)=[\"b@x\"] held by \"b\"");
    CHECK_HAS(r->errmsg, "duplicate key", "\"acct.email\"");
    CHECK_HAS(udb_env_errmsg(t->env), "udb_exec: ops[2] (insert)", "\"acct.email\"");
    CHECK(is_empty(at(res, 0)) && is_empty(at(res, 1)) && is_empty(at(res, 3)));

    udb_txn *txn = tu_r(t);
    uint64_t v;
    CHECK_SCAN(tu_scan(txn, "acct", NULL, NOVAL, "id"), "\"b\"");
    CHECK_COUNT(txn, "job", 0);
    CHECK_RC(udb_seq_get(&v, txn, "inv"), UDB_ENOTFOUND);   /* the step was given back */
    tu_commit(txn);

    /* the last op fails: not found */
    udb_op tail[2];
    tail[0] = ops[1];
    tail[1] = key_op(UDB_OP_DELETE, "acct", mp("s", "nobody"));
    CHECK_RC(run(&res, t, tail, 2), UDB_ENOTFOUND);
    CHECK(udb_results_failed(res) == 1 && at(res, 1)->rc == UDB_ENOTFOUND);
    CHECK(is_empty(at(res, 0)));
    /* the first op fails: an unknown type is that op's UDB_EINVAL, listing the types */
    udb_op head[2] = {rec_op(UDB_OP_INSERT, "nope", mp("{s:s}", "id", "x")), ops[1]};
    CHECK_RC(run(&res, t, head, 2), UDB_EINVAL);
    CHECK(udb_results_failed(res) == 0);
    CHECK_HAS(at(res, 0)->errmsg, "nope", "acct", "job");
    /* an invalid record */
    udb_op bad[2] = {ops[1], rec_op(UDB_OP_INSERT, "acct", mp("{s:s}", "id", "d"))};
    CHECK_RC(run(&res, t, bad, 2), UDB_EBADRECORD);
    CHECK(udb_results_failed(res) == 1);
    CHECK_HAS(at(res, 1)->errmsg, "email");
    /* a fed field in a rec that is not a map */
    udb_op feed[2] = {seq_op("inv"), rec_op(UDB_OP_INSERT, "invoice", mp("[s]", "a"))};
    feed[1].seq_field = "no";
    CHECK_RC(run(&res, t, feed, 2), UDB_EBADRECORD);
    CHECK(udb_results_failed(res) == 1);
    CHECK_HAS(at(res, 1)->errmsg, "not a msgpack map");

    txn = tu_r(t);
    CHECK_SCAN(tu_scan(txn, "acct", NULL, NOVAL, "id"), "\"b\"");
    CHECK_COUNT(txn, "invoice", 0);
    CHECK_RC(udb_seq_get(&v, txn, "inv"), UDB_ENOTFOUND);
    tu_commit(txn);

    /* negative control: the same ops as units of their own do write, so the
       checks above would see a unit that was not atomic */
    CHECK_OK(run(&res, t, &ops[0], 1));
    CHECK_OK(run(&res, t, &ops[1], 1));
    CHECK_RC(run(&res, t, &ops[2], 1), UDB_ECONFLICT);
    txn = tu_r(t);
    CHECK_SCAN(tu_scan(txn, "acct", NULL, NOVAL, "id"), "\"a\",\"b\"");
    CHECK_OK(udb_seq_get(&v, txn, "inv"));
    tu_commit(txn);
    run_done();
}

static void t_bad_arguments_run_nothing(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    udb_results *res = (udb_results *)&res;   /* must become NULL */
    udb_op good = rec_op(UDB_OP_INSERT, "acct", mp("{s:s, s:s}", "id", "a", "email", "a@x"));
    udb_op ops[2] = {good, good};
    CHECK_RC(udb_exec(NULL, t->env, ops, 1), UDB_EINVAL);
    CHECK_RC(udb_exec(&res, NULL, ops, 1), UDB_EINVAL);
    CHECK(res == NULL);
    CHECK_RC(udb_exec(&res, t->env, NULL, 1), UDB_EINVAL);
    CHECK_HAS(udb_env_errmsg(NULL), "results, env and ops are required");
    CHECK_RC(udb_exec(&res, t->env, ops, 0), UDB_EINVAL);
    CHECK_HAS(udb_env_errmsg(NULL), "n is 0", "1 to 65536");
    CHECK_RC(udb_exec(&res, t->env, ops, (size_t)UDB_EXEC_MAX + 1), UDB_EINVAL);
    CHECK_HAS(udb_env_errmsg(NULL), "n is 65537");

    udb_op o;
#define REFUSED(expr, ...)                                                        \
    do {                                                                          \
        ops[0] = good;                                                            \
        ops[1] = good;                                                            \
        expr;                                                                     \
        res = (udb_results *)&res;                                                \
        CHECK_RC(udb_exec(&res, t->env, ops, 2), UDB_EINVAL);                     \
        CHECK(res == NULL);                                                       \
        CHECK_HAS(udb_env_errmsg(NULL), __VA_ARGS__);                             \
    } while (0)
    REFUSED(ops[0].version = 0, "ops[0]: version 0", "UDB_OP_INIT");
    REFUSED((ops[0].version = 99, ops[1].version = 99), "version 99");
    REFUSED(ops[1].version = 2, "ops[1]: version 2, but ops[0] has 1");
    REFUSED(ops[1].kind = 0, "ops[1]: unknown kind 0", "UDB_OP_SEQ_NEXT");
    REFUSED(ops[1].kind = 42, "ops[1]: unknown kind 42");
    REFUSED(ops[1].type = NULL, "ops[1] (insert): needs type");
    REFUSED(ops[1].rec = NOVAL, "ops[1] (insert): needs rec");
    REFUSED(ops[1].index = "email", "ops[1] (insert): index is set, but insert takes no index");
    REFUSED(ops[1].flags = UDB_MERGE, "insert takes no flags");
    REFUSED(ops[1].key = mp("s", "a"), "insert takes no key");
    REFUSED(ops[1].on_insert = mp("{}"), "insert takes no on_insert");
    REFUSED(ops[1].ncandidates = 1, "insert takes no candidates");
    REFUSED(ops[1].seq = "s", "insert takes no seq");
    REFUSED((o = key_op(UDB_OP_UPDATE, "acct", mp("s", "a")), ops[1] = o),
            "ops[1] (update): needs rec");
    REFUSED((o = key_op(UDB_OP_UPDATE, "acct", mp("s", "a")), o.rec = mp("{}"), o.flags = 8,
             ops[1] = o), "unknown flags 0x8");
    REFUSED((o = op_of(UDB_OP_DELETE, "acct"), ops[1] = o), "ops[1] (delete): needs key");
    REFUSED((o = key_op(UDB_OP_DELETE, "acct", mp("s", "a")), o.seq_field = "x", ops[1] = o),
            "delete takes no seq_field");
    REFUSED((o = op_of(UDB_OP_INSERT_FIRST, "acct"), ops[1] = o), "needs candidates");
    REFUSED((o = seq_op(NULL), ops[1] = o), "ops[1] (seq_next): needs seq");
    REFUSED((o = seq_op("s"), o.type = "acct", ops[1] = o), "seq_next takes no type");
    REFUSED((ops[1].seq_field = "id", ops[1].seq_op = 0),
            "seq_op 0 must name an earlier op of kind UDB_OP_SEQ_NEXT");
    REFUSED((ops[0].seq_field = "id", ops[0].seq_op = 0), "ops[0] (insert): seq_op 0");
    REFUSED(ops[1].seq_op = 1, "seq_op is set but seq_field is not");
    REFUSED(ops[1].on_insert.size = 1, "insert takes no on_insert");
#undef REFUSED

    udb_txn *txn = tu_r(t);
    CHECK_COUNT(txn, "acct", 0);
    tu_commit(txn);
    CHECK(udb_results_failed(NULL) == (size_t)-1);
    udb_results_free(NULL);
}

/* Results belong to the caller: they outlive the transaction and even the
 * environment (ASan would see a read of freed memory). */
static void t_results_outlive_the_environment(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    udb_op ops[2] = {rec_op(UDB_OP_INSERT, "acct", mp("{s:s, s:s}", "id", "a", "email", "a@x")),
                     rec_op(UDB_OP_INSERT, "acct", mp("{s:s, s:s}", "id", "b", "email", "b@x"))};
    udb_results *ok = NULL, *bad = NULL;
    CHECK_OK(udb_exec(&ok, t->env, ops, 2));
    ops[0].rec = mp("{s:s, s:s}", "id", "a", "email", "c@x");   /* key "a" is taken */
    ops[1].rec = mp("{s:s, s:s}", "id", "c", "email", "b@x");
    CHECK_RC(udb_exec(&bad, t->env, ops, 2), UDB_ECONFLICT);
    tu_reopen(t);   /* closes the environment the results came from */
    CHECK_STR(tu_render(at(ok, 1)->record), "{\"id\":\"b\",\"email\":\"b@x\"}");
    CHECK(udb_results_failed(bad) == 0);
    CHECK_STR(tu_conflict_of(at(bad, 0)->conflict), "acct: id(id)=[\"a\"] held by \"a\"");
    CHECK_HAS(at(bad, 0)->errmsg, "\"acct.id\"");
    CHECK(is_empty(at(bad, 1)));
    udb_results_free(ok);
    udb_results_free(bad);
}

/* udb_write's rule: a thread holding a transaction is refused at once. */
static void t_a_thread_holding_a_txn_is_refused(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    udb_op op = rec_op(UDB_OP_INSERT, "acct", mp("{s:s, s:s}", "id", "a", "email", "a@x"));
    udb_txn *txn = tu_r(t);
    udb_results *res = NULL;
    CHECK_RC(udb_exec(&res, t->env, &op, 1), UDB_EINVAL);
    CHECK(res == NULL);
    CHECK_HAS(udb_env_errmsg(t->env), "udb_exec: the calling thread already has a transaction");
    tu_commit(txn);
    CHECK_OK(udb_exec(&res, t->env, &op, 1));
    udb_results_free(res);
}

/* A unit that fills the map runs again once it has grown: its results are
 * those of the last run (no leftovers of the first), nothing twice. */
static void t_a_rerun_after_growth_starts_afresh(tu *t)
{
    TU_LMDB_ONLY(t, "the LMDB map and its growth (map_size, udb_env_usage)");
    udb_options o = UDB_OPTIONS_INIT;
    o.map_size = 256u << 10;
    if (!CHECK_OK(udb_open(&t->env, t->path, &o)) || tu_apply(t, SCHEMA) != 0)
        return;
    enum { N = 300 };
    static char pad[2048];
    memset(pad, 'p', sizeof pad - 1);
    udb_op *ops = tu_keep(calloc(N, sizeof *ops));
    for (size_t i = 0; i < N; i++) {
        ops[i] = rec_op(UDB_OP_INSERT_OR_GET, "job",
                        mp("{s:s, s:s, s:s}", "queue", "g", "name", tu_fmt("n%zu", i % (N / 2)),
                           "pad", pad));
        ops[i].index = "qn";
    }
    size_t before = 0, after = 0;
    CHECK_OK(udb_env_usage(&before, NULL, t->env));
    udb_results *res = NULL;
    CHECK_OK(udb_exec(&res, t->env, ops, N));
    CHECK_OK(udb_env_usage(&after, NULL, t->env));
    CHECK(after > before);   /* it did grow */
    for (size_t i = 0; i < N; i++) {
        const udb_result *r = at(res, i);
        if (!CHECK(r->rc == 0 && r->created == (i < N / 2) &&
                   tu_fu(r->record, "id") == i % (N / 2) + 1))
            break;
    }
    udb_results_free(res);
    udb_txn *txn = tu_r(t);
    CHECK_COUNT(txn, "job", N / 2);
    tu_commit(txn);
}

/* Threads of one process share commits: every caller of a key gets the one
 * record, whichever unit created it. */
enum { THREADS = 8, UNITS = 40, KEYS = 5 };

typedef struct worker {
    tu *t;
    int id, fails;
    udb_op ops[UNITS][KEYS + 1];   /* built before the threads start (mp() is not thread-safe) */
    uint64_t got[UNITS][KEYS];
} worker;

/* Field "id" of a record (tu_fu is not thread-safe); UINT64_MAX if none. */
static uint64_t rec_id(udb_val rec)
{
    msgpack_unpacked up;
    uint64_t id = UINT64_MAX;
    if (sup_unpack(&up, rec.data, rec.size) != 0)
        return id;
    const msgpack_object *o = sup_map_get(&up.data, "id");
    if (o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        id = o->via.u64;
    msgpack_unpacked_destroy(&up);
    return id;
}

static void *worker_main(void *p)
{
    worker *w = p;
    for (int u = 0; u < UNITS; u++) {
        udb_results *res = NULL;
        int rc = udb_exec(&res, w->t->env, w->ops[u], KEYS + 1);
        if (rc) {
            fprintf(stderr, "thread %d unit %d: %s: %s\n", w->id, u, udb_strerror(rc),
                    udb_env_errmsg(NULL));
            w->fails++;
        }
        for (int k = 0; k < KEYS && !rc; k++)
            w->got[u][(k + w->id) % KEYS] = rec_id(at(res, (size_t)k)->record);
        udb_results_free(res);
    }
    return NULL;
}

static void build_units(worker *w)
{
    for (int u = 0; u < UNITS; u++) {
        udb_op *ops = w->ops[u];
        for (int k = 0; k < KEYS; k++) {   /* each thread takes the keys in its own order */
            ops[k] = rec_op(UDB_OP_INSERT_OR_GET, "job",
                            mp("{s:s, s:s, s:s}", "queue", tu_fmt("u%d", u), "name",
                               tu_fmt("k%d", (k + w->id) % KEYS), "state", tu_fmt("w%d", w->id)));
            ops[k].index = "qn";
        }
        ops[KEYS] = rec_op(UDB_OP_INSERT, "acct",
                           mp("{s:s, s:s}", "id", tu_fmt("w%d-%d", w->id, u), "email",
                              tu_fmt("w%d-%d@x", w->id, u)));
    }
}

static void t_threads_share_commits(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    static worker w[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].t = t;
        w[i].id = i;
        build_units(&w[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        CHECK(pthread_create(&th[i], NULL, worker_main, &w[i]) == 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    udb_txn *txn = tu_r(t);
    CHECK_COUNT(txn, "job", UNITS * KEYS);
    CHECK_COUNT(txn, "acct", THREADS * UNITS);
    for (int u = 0; u < UNITS; u++) {
        for (int k = 0; k < KEYS; k++) {
            udb_val rec;
            CHECK_OK(tu_find(&rec, txn, "job", "qn", mp("[s, s]", tu_fmt("u%d", u),
                                                        tu_fmt("k%d", k))));
            for (int i = 0; i < THREADS; i++)
                if (!CHECK(w[i].got[u][k] == tu_fu(rec, "id")))
                    fprintf(stderr, "  unit %d key %d thread %d\n", u, k, i);
        }
    }
    tu_commit(txn);
    for (int i = 0; i < THREADS; i++)
        CHECK(w[i].fails == 0);
}

/* A unit of insert_or_get ops whose keys are all held (answered from a
 * read snapshot: test_ship's ship_held_key_not_shipped shows that path is
 * taken): the holders come back, created 0.  One key nobody holds and the
 * unit is a write as before, the held op's result the same.  On a database
 * opened with UDB_RDONLY_ENV the unit is refused as a write is, held keys
 * or not (fails with the snapshot's answer given there). */
static void t_held_keys_commit_nothing(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    udb_op a = rec_op(UDB_OP_INSERT, "acct", mp("{s:s, s:s}", "id", "a", "email", "a@x"));
    const udb_results *res;
    CHECK_OK(run(&res, t, &a, 1));
    udb_op ops[2] = {
        rec_op(UDB_OP_INSERT_OR_GET, "acct", mp("{s:s, s:s}", "id", "b", "email", "a@x")),
        rec_op(UDB_OP_INSERT_OR_GET, "acct", mp("{s:s, s:s}", "id", "a", "email", "z@x"))};
    ops[0].index = "email";
    CHECK_OK(run(&res, t, ops, 2));
    for (size_t i = 0; i < 2; i++) {
        CHECK(at(res, i)->rc == 0 && at(res, i)->created == 0);
        CHECK_STR(tu_render(at(res, i)->record), "{\"id\":\"a\",\"email\":\"a@x\"}");
    }
    ops[1].rec = mp("{s:s, s:s}", "id", "n", "email", "n@x");   /* nobody holds "n" */
    CHECK_OK(run(&res, t, ops, 2));
    CHECK(at(res, 0)->created == 0 && at(res, 1)->created == 1);
    udb_txn *r = tu_r(t);
    udb_val got;
    CHECK_OK(tu_get(&got, r, "acct", mp("s", "n")));   /* written */
    tu_abort(r);
    CHECK_STR(tu_render(at(res, 0)->record), "{\"id\":\"a\",\"email\":\"a@x\"}");
    run_done();
    udb_close(t->env);
    udb_options ro = UDB_OPTIONS_INIT;
    ro.flags = UDB_RDONLY_ENV;
    t->env = NULL;
    if (!CHECK_OK(udb_open(&t->env, t->path, &ro)))
        return;
    CHECK_RC(run(&res, t, ops, 1), UDB_EREADONLY);
    run_done();
}

TU_MAIN(TU_CASE(t_every_kind_in_one_unit), TU_CASE(t_a_failing_op_writes_nothing),
        TU_CASE(t_bad_arguments_run_nothing), TU_CASE(t_results_outlive_the_environment),
        TU_CASE(t_a_thread_holding_a_txn_is_refused),
        TU_CASE(t_a_rerun_after_growth_starts_afresh), TU_CASE(t_threads_share_commits),
        TU_CASE(t_held_keys_commit_nothing))
