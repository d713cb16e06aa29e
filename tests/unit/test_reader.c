/*
 * test_reader.c -- read-only transactions reuse one LMDB handle (issue 25):
 * udb_abort/udb_commit of a read-only transaction resets its MDB_txn and keeps
 * it, the next udb_begin(UDB_RDONLY) renews it (no allocation of max_dbs
 * records, no reader-table lock).  What must hold: the slot is kept and never
 * leaked, each renewed handle sees a new snapshot (another process's commit, a
 * schema change), and a map grown by another process is adopted through it.
 * udb_txn_latest says when a kept snapshot may serve the next read.
 */
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "env.h"
#include "testutil.h"

static const char *SCHEMA = "{`types`: {`user`: {`key`: `id`, `fields`: {`id`: {`type`: "
                            "`uint`}, `email`: {`type`: `str`}, `blob`: {`type`: `bin`}}, "
                            "`unique`: {`email`: {`fields`: [`email`]}}}}}";

typedef struct slots {
    int mine, idle;
} slots;

static int count_slot(const char *line, void *ctx)
{
    slots *s = ctx;
    int pid = 0;
    char tid[64], txn[64];
    if (sscanf(line, "%d %63s %63s", &pid, tid, txn) == 3 && pid == (int)getpid()) {
        s->mine++;
        s->idle += !strcmp(txn, "-");
    }
    return 0;
}

/* This process's slots in LMDB's reader table, and how many are idle. */
static slots reader_slots(udb_env *env)
{
    slots s = {0, 0};
    mdb_reader_list(udb__env_mdb(env), count_slot, &s);
    return s;
}

static void insert(udb_env *env, unsigned long long id, const char *email)
{
    udb_txn *txn = NULL;
    CHECK_OK(udb_begin(&txn, env, 0));
    CHECK_OK(tu_ins(NULL, txn, "user", mp("{s:U, s:s}", "id", id, "email", email)));
    CHECK_OK(udb_commit(txn));
}

/* One idle slot after a read, still one after many (commit or abort), none
 * after close.  Without the reuse there is no slot between reads. */
static void t_one_idle_slot_kept(tu *t)
{
    tu_setup(t, SCHEMA);
    insert(t->env, 1, "a@x");
    for (int i = 0; i < 500; i++) {
        udb_txn *txn = tu_r(t);
        udb_val rec;
        CHECK_OK(tu_get(&rec, txn, "user", mp("U", 1ULL)));
        if (i % 2)
            CHECK_OK(udb_commit(txn));
        else
            udb_abort(txn);
    }
    slots s = reader_slots(t->env);
    CHECK(s.mine == 1 && s.idle == 1);
    /* two at once: the second is a new handle; one is kept, the other freed */
    udb_txn *a = tu_r(t), *b = tu_r(t);
    s = reader_slots(t->env);
    CHECK(s.mine == 2 && s.idle == 0);
    udb_abort(a);
    udb_abort(b);
    s = reader_slots(t->env);
    CHECK(s.mine == 1 && s.idle == 1);
    udb_close(t->env);
    t->env = NULL;
    udb_env *other = NULL;
    CHECK_OK(udb_open(&other, t->path, NULL));
    s = reader_slots(other);
    CHECK(s.mine == 0);
    udb_close(other);
    tu_open(t);
}

/* Every renewed handle reads a new snapshot: a child process's commits and
 * its schema change are seen by the next read. */
static void t_renewed_reads_see_other_process(tu *t)
{
    tu_setup(t, SCHEMA);
    for (unsigned long long id = 1; id <= 20; id++) {
        pid_t pid = fork();
        if (pid == 0) {
            udb_env *env = NULL;
            if (udb_open(&env, t->path, NULL))
                _exit(2);
            insert(env, id, tu_fmt("u%llu@x", id));
            const char *s2 = jq("{`types`: {`user`: {`key`: `id`, "
                                          "`fields`: {`id`: {`type`: `uint`}, `email`: {`type`:"
                                          " `str`}, `blob`: {`type`: `bin`}, `age`: {`type`: "
                                          "`uint`}}, `unique`: {`email`: {`fields`: "
                                          "[`email`]}}}}}");
            char *changes = NULL;
            if (id == 10 && udb_schema_apply(&changes, env, s2, strlen(s2), 0))
                _exit(3);
            udb_free(changes);
            udb_close(env);
            _exit(0);
        }
        int st = 0;
        CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && !WEXITSTATUS(st));
        udb_txn *txn = tu_r(t);
        udb_val rec;
        CHECK_OK(tu_find(&rec, txn, "user", "email", mp("[s]", tu_fmt("u%llu@x", id))));
        CHECK(tu_fu(rec, "id") == id);
        CHECK(tu_count(txn, "user") == id);
        const char *json = NULL;
        CHECK_OK(udb_txn_schema_json(&json, NULL, txn));
        if (json)
            CHECK(!strstr(json, "\"age\"") == (id < 10));
        udb_abort(txn);
    }
}

/* Another process grows the map while this one keeps an idle handle: the
 * next read adopts the new size (the renew reports MDB_MAP_RESIZED). */
static void t_map_grown_elsewhere_is_adopted(tu *t)
{
    udb_options o = UDB_OPTIONS_INIT;
    o.map_size = 1u << 20;
    CHECK_OK(udb_open(&t->env, t->path, &o));
    CHECK_OK(tu_apply(t, SCHEMA));
    insert(t->env, 1, "a@x");
    udb_abort(tu_r(t)); /* the idle handle */
    pid_t pid = fork();
    if (pid == 0) {
        udb_env *env = NULL;
        if (udb_open(&env, t->path, &o))
            _exit(2);
        static char blob[64 << 10];
        for (unsigned long long id = 2; id < 2 + 64; id++) {
            udb_txn *txn = NULL;
            if (udb_begin(&txn, env, 0))
                _exit(3);
            int rc = tu_ins(NULL, txn, "user",
                            mp("{s:U, s:s, s:x}", "id", id, "email", tu_fmt("b%llu@x", id), "blob",
                               (const void *)blob, sizeof blob));
            if (rc == UDB_EMAPFULL) {
                udb_abort(txn);
                id--; /* the next udb_begin grows the map */
                continue;
            }
            if (rc || udb_commit(txn))
                _exit(4);
        }
        udb_close(env);
        _exit(0);
    }
    int st = 0;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && !WEXITSTATUS(st));
    size_t map = 0;
    udb_txn *txn = tu_r(t);
    CHECK(txn != NULL);
    if (txn) {
        CHECK(tu_count(txn, "user") == 65);
        udb_abort(txn);
    }
    CHECK_OK(udb_env_usage(&map, NULL, t->env));
    CHECK(map > (1u << 20));
}

static void *insert_c(void *env)
{
    insert(env, 3, "c@x");
    return NULL;
}

static int latest(udb_txn *txn)
{
    int l = -1;
    CHECK_OK(udb_txn_latest(&l, txn));
    return l;
}

/* udb_txn_latest: a kept read-only snapshot is the latest until anything is
 * committed -- by another process (forked) or this one -- and then says so,
 * which is what lets a caller keep one snapshot across reads (the Node.js
 * binding) and still see every write committed before each read.  The kept
 * snapshot itself does not see the child's record: without the check, a
 * kept snapshot would read stale data. */
static void t_latest_until_a_commit(tu *t)
{
    tu_setup(t, SCHEMA);
    insert(t->env, 1, "a@x");
    udb_txn *r = tu_r(t);
    udb_val rec;
    CHECK(latest(r) == 1);
    CHECK_OK(tu_find(&rec, r, "user", "email", mp("[s]", "a@x")));
    CHECK(latest(r) == 1);
    pid_t pid = fork();
    if (pid == 0) {
        udb_env *env = NULL;
        if (udb_open(&env, t->path, NULL))
            _exit(2);
        insert(env, 2, "b@x");
        udb_close(env);
        _exit(0);
    }
    int st = 0;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && !WEXITSTATUS(st));
    CHECK(latest(r) == 0);
    CHECK(tu_find(&rec, r, "user", "email", mp("[s]", "b@x")) == UDB_ENOTFOUND);
    udb_abort(r);
    r = tu_r(t);
    CHECK(latest(r) == 1);
    CHECK_OK(tu_find(&rec, r, "user", "email", mp("[s]", "b@x")));
    pthread_t th; /* this process, another thread */
    CHECK(pthread_create(&th, NULL, insert_c, t->env) == 0 && pthread_join(th, NULL) == 0);
    CHECK(latest(r) == 0);
    udb_abort(r);
    r = tu_r(t);
    CHECK(latest(r) == 1);
    udb_abort(r);

    /* a write transaction is never a snapshot to keep; bad arguments */
    udb_txn *w = NULL;
    CHECK_OK(udb_begin(&w, t->env, 0));
    CHECK(latest(w) == 0);
    udb_abort(w);
    int l = 1;
    CHECK(udb_txn_latest(&l, NULL) == UDB_EINVAL && l == 0);
    CHECK(udb_txn_latest(NULL, NULL) == UDB_EINVAL);
}

TU_MAIN(TU_CASE(t_one_idle_slot_kept), TU_CASE(t_renewed_reads_see_other_process),
        TU_CASE(t_map_grown_elsewhere_is_adopted), TU_CASE(t_latest_until_a_commit))
