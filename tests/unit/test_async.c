/*
 * test_async.c -- udb_exec_async: units handed to the engine, done() called
 * once each.  Many units in flight from one thread share commits (fewer
 * commits than units: a serial engine fails it) and give S1's verdict (one
 * creator per key, every unit handed that record); the caller's ops are
 * copied (freed at once; ASan checks); a failing unit reports like
 * udb_exec; bad arguments queue nothing; udb_close waits for every unit in
 * flight; a done() callback may queue the next unit but not wait.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "env.h"
#include "support.h"
#include "testutil.h"

static const char *const SCHEMA =
    "{`types`: {"
    "`job`: {`key`: `id`, `fields`: {`id`: {`type`: `uint`, `auto`: true},"
    "  `queue`: {`type`: `str`, `required`: true}, `name`: {`type`: `str`, `required`: true}},"
    "  `unique`: {`qn`: {`fields`: [`queue`, `name`]}}}}}";

enum { UNITS = 512, KEYS = 64 };

typedef struct outcome {
    _Atomic int calls, ok, created, other;
    uint64_t id[UNITS];
    int rc[UNITS];
    char msg[UNITS][256];
} outcome;

typedef struct call {
    outcome *o;
    int unit;
} call;

/* The id of a record, on any thread (testutil's readers are not). */
static uint64_t rec_id(udb_val rec)
{
    msgpack_unpacked u;
    uint64_t id = UINT64_MAX;
    if (rec.data && !sup_unpack(&u, rec.data, rec.size)) {
        const msgpack_object *o = sup_map_get(&u.data, "id");
        if (o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            id = o->via.u64;
        msgpack_unpacked_destroy(&u);
    }
    return id;
}

static void done(int rc, udb_results *res, const char *errmsg, void *payload)
{
    call *c = payload;
    outcome *o = c->o;
    o->rc[c->unit] = rc;
    snprintf(o->msg[c->unit], sizeof o->msg[c->unit], "%s", errmsg);
    const udb_result *r = udb_result_at(res, 0);
    if (!rc && r) {
        atomic_fetch_add(&o->ok, 1);
        atomic_fetch_add(&o->created, r->created);
        o->id[c->unit] = rec_id(r->record);
    } else {
        atomic_fetch_add(&o->other, 1);
    }
    udb_results_free(res);
    atomic_fetch_add(&o->calls, 1);
}

/* Queue an insert_or_get of (queue q, name k) from a buffer freed at once. */
static int submit(udb_env *env, const char *q, int k, call *c)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    char name[16];
    snprintf(name, sizeof name, "k%d", k);
    sup_pack(&pk, "{s:s, s:s}", "queue", q, "name", name);
    char *idx = strdup("qn");
    udb_op op = UDB_OP_INIT;
    op.kind = UDB_OP_INSERT_OR_GET;
    op.type = "job";
    op.index = idx;
    op.rec.data = sb.data;
    op.rec.size = sb.size;
    int rc = udb_exec_async(env, &op, 1, done, c);
    msgpack_sbuffer_destroy(&sb);   /* the engine has its own copy */
    free(idx);
    return rc;
}

static uint64_t committed_txnid(udb_env *env)
{
    uint64_t c = 0;
    CHECK_OK(udb__env_last_txnid(&c, env));
    return c;
}

static void t_many_units_share_commits(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    static outcome o;
    static call c[UNITS];
    /* durable commits (the suite's are not), as an application's: every
       unit creates, and in flight together they share commits (one at a
       time: a commit each) */
    udb_close(t->env);
    if (!CHECK_OK(udb_open(&t->env, t->path, NULL)))
        return;
    memset(&o, 0, sizeof o);
    uint64_t before = committed_txnid(t->env);
    for (int u = 0; u < UNITS; u++) {
        c[u] = (call){&o, u};
        CHECK_OK(submit(t->env, "distinct", u, &c[u]));
    }
    CHECK_OK(udb_exec_async_wait(t->env));
    uint64_t commits = committed_txnid(t->env) - before;
    CHECK(atomic_load(&o.calls) == UNITS && atomic_load(&o.created) == UNITS);
    CHECK(commits < UNITS / 4);
    printf("     %d units in %llu commits\n", UNITS, (unsigned long long)commits);
    /* S1: many units per key -- one creator each, every unit handed it */
    memset(&o, 0, sizeof o);
    for (int u = 0; u < UNITS; u++) {
        c[u] = (call){&o, u};
        CHECK_OK(submit(t->env, "q", u % KEYS, &c[u]));
    }
    CHECK_OK(udb_exec_async_wait(t->env));
    CHECK(atomic_load(&o.calls) == UNITS);
    CHECK(atomic_load(&o.ok) == UNITS);
    CHECK(atomic_load(&o.created) == KEYS);
    udb_txn *txn = tu_r(t);
    CHECK(tu_count(txn, "job") == UNITS + KEYS);
    for (int u = 0; u < UNITS; u++) {
        udb_val rec;
        CHECK_OK(tu_find(&rec, txn, "job", "qn", mp("[s, s]", "q", tu_fmt("k%d", u % KEYS))));
        if (!CHECK(o.id[u] == tu_fu(rec, "id")))
            fprintf(stderr, "  unit %d got id %llu\n", u, (unsigned long long)o.id[u]);
    }
    tu_commit(txn);
    tu_check_db(t);
}

static void t_a_failing_unit_reports_like_exec(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    static outcome o;
    memset(&o, 0, sizeof o);
    udb_txn *w = tu_w(t);
    CHECK_OK(tu_ins(NULL, w, "job", mp("{s:U, s:s, s:s}", "id", 7ull, "queue", "q", "name",
                                       "x")));
    tu_commit(w);
    /* a plain insert of the held (q, x): a conflict naming the holder */
    udb_op op = UDB_OP_INIT;
    op.kind = UDB_OP_INSERT;
    op.type = "job";
    udb_val rec = mp("{s:s, s:s}", "queue", "q", "name", "x");
    op.rec = rec;
    call c = {&o, 0};
    CHECK_OK(udb_exec_async(t->env, &op, 1, done, &c));
    CHECK_OK(udb_exec_async_wait(t->env));
    CHECK(atomic_load(&o.calls) == 1);
    CHECK_RC(o.rc[0], UDB_ECONFLICT);
    CHECK_HAS(o.msg[0], "qn");
    udb_txn *r = tu_r(t);
    CHECK(tu_count(r, "job") == 1);
    tu_abort(r);
}

static _Atomic int never_called;

static void must_not_run(int rc, udb_results *res, const char *errmsg, void *payload)
{
    (void)rc, (void)errmsg, (void)payload;
    udb_results_free(res);
    atomic_fetch_add(&never_called, 1);
}

static void t_bad_arguments_queue_nothing(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    udb_op op = UDB_OP_INIT;   /* kind 0: no such kind */
    CHECK_RC(udb_exec_async(t->env, &op, 1, must_not_run, NULL), UDB_EINVAL);
    CHECK_HAS(udb_env_errmsg(t->env), "ops[0]");
    CHECK_RC(udb_exec_async(t->env, &op, 0, must_not_run, NULL), UDB_EINVAL);
    CHECK_RC(udb_exec_async(t->env, NULL, 1, must_not_run, NULL), UDB_EINVAL);
    CHECK_RC(udb_exec_async(t->env, &op, 1, NULL, NULL), UDB_EINVAL);
    CHECK_RC(udb_exec_async(NULL, &op, 1, must_not_run, NULL), UDB_EINVAL);
    CHECK_OK(udb_exec_async_wait(t->env));
    CHECK(atomic_load(&never_called) == 0);
}

static void t_close_waits_for_units_in_flight(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    static outcome o;
    static call c[200];
    memset(&o, 0, sizeof o);
    for (int u = 0; u < 200; u++) {
        c[u] = (call){&o, u};
        CHECK_OK(submit(t->env, "close", u, &c[u]));
    }
    udb_close(t->env);   /* no wait before: close does it */
    t->env = NULL;
    CHECK(atomic_load(&o.calls) == 200);
    CHECK(atomic_load(&o.created) == 200);
    tu_reopen(t);
    udb_txn *r = tu_r(t);
    CHECK(tu_count(r, "job") == 200);
    tu_abort(r);
}

/* A callback queues the next unit (a chain of 50), and may not wait. */
typedef struct chain {
    udb_env *env;
    _Atomic int n, wait_rc, fails;
} chain;

static void chained(int rc, udb_results *res, const char *errmsg, void *payload);

static int chain_next(chain *ch)
{
    char q[16];
    snprintf(q, sizeof q, "c%d", atomic_load(&ch->n));
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    sup_pack(&pk, "{s:s, s:s}", "queue", q, "name", "n");
    udb_op op = UDB_OP_INIT;
    op.kind = UDB_OP_INSERT;
    op.type = "job";
    op.rec.data = sb.data;
    op.rec.size = sb.size;
    int rc = udb_exec_async(ch->env, &op, 1, chained, ch);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static void chained(int rc, udb_results *res, const char *errmsg, void *payload)
{
    chain *ch = payload;
    (void)errmsg;
    udb_results_free(res);
    if (rc)
        atomic_fetch_add(&ch->fails, 1);
    atomic_store(&ch->wait_rc, udb_exec_async_wait(ch->env));
    if (atomic_fetch_add(&ch->n, 1) + 1 < 50 && chain_next(ch))
        atomic_fetch_add(&ch->fails, 1);
}

static void t_a_callback_queues_the_next(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    static chain ch;
    memset(&ch, 0, sizeof ch);
    ch.env = t->env;
    CHECK_OK(chain_next(&ch));
    /* wait sees the chain through: each unit is queued before its
       predecessor's done() returns */
    CHECK_OK(udb_exec_async_wait(t->env));
    CHECK(atomic_load(&ch.n) == 50);
    CHECK(atomic_load(&ch.fails) == 0);
    CHECK_RC(atomic_load(&ch.wait_rc), UDB_EINVAL);
    udb_txn *r = tu_r(t);
    CHECK(tu_count(r, "job") == 50);
    tu_abort(r);
}

TU_MAIN(TU_CASE(t_many_units_share_commits), TU_CASE(t_a_failing_unit_reports_like_exec),
        TU_CASE(t_bad_arguments_queue_nothing), TU_CASE(t_close_waits_for_units_in_flight),
        TU_CASE(t_a_callback_queues_the_next))
