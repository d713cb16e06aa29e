/*
 * test_ops.c -- the compound operations in one process: insert-or-get,
 * upsert (with on_insert), insert-the-first-free-candidate, and udb_write's
 * commit-or-roll-back, alone and with concurrent callers sharing commits.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <lmdb.h>
#include <msgpack.h>

#include "testutil.h"

static const char *const SCHEMA =
    "{`types`: {"
    "`acct`: {`key`: `id`, `fields`: {`id`: {`type`: `str`},"
    "  `email`: {`type`: `str`, `required`: true}, `name`: {`type`: `str`},"
    "  `visits`: {`type`: `uint`}, `created`: {`type`: `int`}},"
    "  `unique`: {`email`: {`fields`: [`email`]}}},"
    "`job`: {`key`: `id`, `fields`: {`id`: {`type`: `uint`, `auto`: true},"
    "  `queue`: {`type`: `str`, `required`: true}, `name`: {`type`: `str`, `required`: true},"
    "  `state`: {`type`: `str`}, `tag`: {`type`: `str`}},"
    "  `unique`: {`qn`: {`fields`: [`queue`, `name`]}, `tag`: {`fields`: [`tag`]}},"
    "  `indexes`: {`by_state`: {`fields`: [`state`]}}}"
    "}}";

static int ins_or_get(udb_val *out, int *created, udb_txn *txn, const char *type,
                      const char *index, udb_val rec)
{
    return udb_insert_or_get(out, created, txn, type, index, rec.data, rec.size);
}

static int upsert(udb_val *out, int *created, udb_txn *txn, const char *type, const char *index,
                  udb_val rec, udb_val on_insert)
{
    return udb_upsert(out, created, txn, type, index, rec.data, rec.size, on_insert.data,
                      on_insert.size);
}

static void t_insert_or_get_on_a_compound_index(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    udb_txn *txn = tu_w(t);
    udb_val out;
    int created = -1;
    CHECK_OK(ins_or_get(&out, &created, txn, "job", "qn",
                        mp("{s:s, s:s, s:s}", "queue", "q", "name", "n", "state", "first")));
    CHECK(created == 1 && tu_fu(out, "id") == 1);
    /* the second caller gets the stored record; its own fields are not written */
    CHECK_OK(ins_or_get(&out, &created, txn, "job", "qn",
                        mp("{s:s, s:s, s:s}", "queue", "q", "name", "n", "state", "second")));
    CHECK(created == 0);
    CHECK_STR(tu_render(out), "{\"id\":1,\"queue\":\"q\",\"name\":\"n\",\"state\":\"first\"}");
    CHECK_OK(ins_or_get(&out, &created, txn, "job", "qn",
                        mp("{s:s, s:s}", "queue", "q", "name", "other")));
    CHECK(created == 1 && tu_fu(out, "id") == 2);
    /* a conflict on another unique index is still an error, naming that index */
    CHECK_RC(ins_or_get(&out, &created, txn, "job", "qn",
                        mp("{s:s, s:s, s:s}", "queue", "q", "name", "x", "tag", "t")), 0);
    CHECK_RC(ins_or_get(&out, &created, txn, "job", "qn",
                        mp("{s:s, s:s, s:s}", "queue", "q", "name", "y", "tag", "t")),
             UDB_ECONFLICT);
    CHECK_STR(tu_conflict(txn), "job: tag(tag)=[\"t\"] held by 3");
    CHECK_HAS(udb_errmsg(txn), "\"job.tag\"");
    /* an invalid record is invalid even when its key exists */
    CHECK_RC(ins_or_get(&out, &created, txn, "job", "qn",
                        mp("{s:s, s:s, s:i}", "queue", "q", "name", "n", "state", 1)),
             UDB_EBADRECORD);
    /* only unique indexes can key it */
    CHECK_RC(ins_or_get(&out, &created, txn, "job", "by_state",
                        mp("{s:s, s:s}", "queue", "q", "name", "n")), UDB_EINVAL);
    CHECK_RC(ins_or_get(&out, &created, txn, "job", "nope",
                        mp("{s:s, s:s}", "queue", "q", "name", "n")), UDB_EINVAL);
    CHECK_COUNT(txn, "job", 3);
    tu_commit(txn);
}

static void t_insert_or_get_on_the_primary_key(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    udb_txn *txn = tu_w(t);
    udb_val out;
    int created = -1;
    udb_val rec = mp("{s:s, s:s}", "id", "u1", "email", "a@x");
    CHECK_OK(ins_or_get(&out, &created, txn, "acct", NULL, rec));
    CHECK(created == 1);
    CHECK_OK(ins_or_get(&out, &created, txn, "acct", NULL,
                        mp("{s:s, s:s}", "id", "u1", "email", "other@x")));
    CHECK(created == 0);
    CHECK_STR(tu_field(out, "email"), "\"a@x\"");
    CHECK_OK(ins_or_get(&out, &created, txn, "acct", "id", rec));   /* pk by its name */
    CHECK(created == 0);
    /* same email under a new id: a conflict on the email index, not "existing" */
    CHECK_RC(ins_or_get(&out, &created, txn, "acct", NULL,
                        mp("{s:s, s:s}", "id", "u2", "email", "a@x")), UDB_ECONFLICT);
    CHECK_STR(tu_conflict(txn), "acct: email(email)=[\"a@x\"] held by \"u1\"");
    CHECK_COUNT(txn, "acct", 1);
    tu_commit(txn);
}

static void t_upsert_inserts_then_merges(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    udb_txn *txn = tu_w(t);
    udb_val out;
    int created = -1;
    udb_val oi = mp("{s:i, s:U}", "created", 1700, "visits", 0ull);
    CHECK_OK(upsert(&out, &created, txn, "acct", "email",
                    mp("{s:s, s:s, s:s}", "id", "u1", "email", "a@x", "name", "Ann"), oi));
    CHECK(created == 1);
    CHECK_STR(tu_render(out), "{\"id\":\"u1\",\"email\":\"a@x\",\"name\":\"Ann\",\"visits\":0,"
                              "\"created\":1700}");
    /* found by email: merged; the key field and on_insert are ignored */
    CHECK_OK(upsert(&out, &created, txn, "acct", "email",
                    mp("{s:s, s:s, s:U}", "id", "zzz", "email", "a@x", "visits", 5ull),
                    mp("{s:i}", "created", 9)));
    CHECK(created == 0);
    CHECK_STR(tu_render(out), "{\"id\":\"u1\",\"email\":\"a@x\",\"name\":\"Ann\",\"visits\":5,"
                              "\"created\":1700}");
    CHECK_RC(tu_get(&out, txn, "acct", mp("s", "zzz")), UDB_ENOTFOUND);
    /* keyed on the primary key, without on_insert; nil removes a field */
    CHECK_OK(upsert(&out, &created, txn, "acct", NULL,
                    mp("{s:s, s:s, s:n}", "id", "u1", "email", "a@x", "name"), NOVAL));
    CHECK(created == 0);
    CHECK(strcmp(tu_field(out, "name"), "<absent>") == 0);
    CHECK_OK(upsert(&out, &created, txn, "acct", NULL,
                    mp("{s:s, s:s}", "id", "u2", "email", "b@x"), NOVAL));
    CHECK(created == 1);
    /* a merge that would take another record's unique key fails, changing nothing */
    CHECK_RC(upsert(&out, &created, txn, "acct", NULL,
                    mp("{s:s, s:s}", "id", "u2", "email", "a@x"), NOVAL), UDB_ECONFLICT);
    CHECK_STR(tu_conflict(txn), "acct: email(email)=[\"a@x\"] held by \"u1\"");
    CHECK_OK(tu_get(&out, txn, "acct", mp("s", "u2")));
    CHECK_STR(tu_field(out, "email"), "\"b@x\"");
    /* an insert missing a required field is invalid, whatever on_insert lacks */
    CHECK_RC(upsert(&out, &created, txn, "acct", NULL, mp("{s:s}", "id", "u3"), oi),
             UDB_EBADRECORD);
    CHECK_HAS(udb_errmsg(txn), "missing required field \"email\"");
    CHECK_RC(upsert(&out, &created, txn, "acct", NULL, mp("{s:s, s:s}", "id", "u3", "email",
                                                          "c@x"), mp("{s:s}", "bogus", "x")),
             UDB_EBADRECORD);
    CHECK_COUNT(txn, "acct", 2);
    tu_commit(txn);
}

/* upsert validates the row it would insert (rec over on_insert) before it
 * looks for a holder, like insert_or_get and like PostgreSQL's INSERT ... ON
 * CONFLICT DO UPDATE: an invalid call is invalid whatever the database holds. */
static void t_upsert_validates_the_row_it_would_insert(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    udb_txn *txn = tu_w(t);
    udb_val out;
    int created = -1;
    CHECK_OK(tu_ins(&out, txn, "acct", mp("{s:s, s:s, s:s}", "id", "u1", "email", "a@x", "name",
                                         "Ann")));
    /* a patch without the required email: refused although u1 holds the key,
       exactly as insert_or_get refuses it */
    udb_val patch = mp("{s:s, s:s}", "id", "u1", "name", "Bo");
    CHECK_RC(upsert(&out, &created, txn, "acct", NULL, patch, NOVAL), UDB_EBADRECORD);
    CHECK_HAS(udb_errmsg(txn), "missing required field \"email\"");
    CHECK_RC(ins_or_get(&out, &created, txn, "acct", NULL, patch), UDB_EBADRECORD);
    CHECK_HAS(udb_errmsg(txn), "missing required field \"email\"");
    /* on_insert completes the row; only rec's fields are merged into the holder */
    CHECK_OK(upsert(&out, &created, txn, "acct", NULL, patch, mp("{s:s}", "email", "z@x")));
    CHECK(created == 0);
    CHECK_STR(tu_render(out), "{\"id\":\"u1\",\"email\":\"a@x\",\"name\":\"Bo\"}");
    /* the holder is looked up by the row's key, fields from on_insert included */
    CHECK_OK(upsert(&out, &created, txn, "acct", "email", mp("{s:s}", "name", "Cy"),
                    mp("{s:s, s:s}", "id", "u9", "email", "a@x")));
    CHECK(created == 0);
    CHECK_STR(tu_render(out), "{\"id\":\"u1\",\"email\":\"a@x\",\"name\":\"Cy\"}");
    /* rec's nil for a required field is invalid even with on_insert giving it */
    CHECK_RC(upsert(&out, &created, txn, "acct", NULL, mp("{s:s, s:n}", "id", "u1", "email"),
                    mp("{s:s}", "email", "z@x")), UDB_EBADRECORD);
    CHECK_COUNT(txn, "acct", 1);
    tu_commit(txn);
}

/* A partial unique index whose predicate reads the auto key: the holder must be
 * looked up with the key the proposed record would get, or the predicate is
 * not true, nobody is found, and the insert then collides with the very record
 * it should have returned. */
static void t_compound_ops_see_the_auto_key_in_a_predicate(tu *t)
{
    if (!tu_setup(t, "{`types`: {`ak`: {`key`: `id`, `fields`: {`id`: {`type`: `uint`, "
                     "`auto`: true}, `a`: {`type`: `int`}, `t`: {`type`: `str`}},"
                     "`unique`: {`ak_a`: {`fields`: [`a`], `where`: `id IS NOT NULL`},"
                     "  `ak_b`: {`fields`: [`t`], `where`: `id != 1`}}}}}"))
        return;
    udb_txn *txn = tu_w(t);
    udb_val out;
    int created = -1;
    CHECK_OK(tu_ins(&out, txn, "ak", mp("{s:i, s:s}", "a", 5, "t", "first")));
    CHECK(tu_fu(out, "id") == 1);
    CHECK_OK(ins_or_get(&out, &created, txn, "ak", "ak_a", mp("{s:i, s:s}", "a", 5, "t", "third")));
    CHECK(created == 0 && tu_fu(out, "id") == 1);
    CHECK_STR(tu_field(out, "t"), "\"first\"");
    CHECK_OK(upsert(&out, &created, txn, "ak", "ak_a", mp("{s:i, s:s}", "a", 5, "t", "fourth"),
                    NOVAL));
    CHECK(created == 0 && tu_fu(out, "id") == 1);
    CHECK_STR(tu_field(out, "t"), "\"fourth\"");
    /* "id != 1": record 1 is outside the index, the next one is inside it */
    CHECK_OK(ins_or_get(&out, &created, txn, "ak", "ak_b",
                        mp("{s:i, s:s}", "a", 6, "t", "fourth")));
    CHECK(created == 1 && tu_fu(out, "id") == 2);
    CHECK_OK(ins_or_get(&out, &created, txn, "ak", "ak_b",
                        mp("{s:i, s:s}", "a", 7, "t", "fourth")));
    CHECK(created == 0 && tu_fu(out, "id") == 2);
    CHECK_OK(upsert(&out, &created, txn, "ak", "ak_b", mp("{s:i, s:s}", "a", 8, "t", "fourth"),
                    NOVAL));
    CHECK(created == 0 && tu_fu(out, "id") == 2);
    CHECK_STR(tu_field(out, "a"), "8");
    /* a record that is not found is inserted under the key the lookup used;
       a lookup that finds nothing takes no number from the sequence */
    CHECK_OK(upsert(&out, &created, txn, "ak", "ak_a", mp("{s:i, s:s}", "a", 9, "t", "fifth"),
                    NOVAL));
    CHECK(created == 1 && tu_fu(out, "id") == 3);
    CHECK_COUNT(txn, "ak", 3);
    tu_commit(txn);
}

static udb_val slot(const char *name)
{
    return mp("{s:s, s:s}", "queue", "q", "name", name);
}

static void t_insert_first_takes_the_first_free(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    udb_txn *txn = tu_w(t);
    udb_val out;
    size_t chosen = 99;
    CHECK_OK(tu_ins(NULL, txn, "job", slot("a")));
    CHECK_OK(tu_ins(NULL, txn, "job", slot("c")));
    udb_val cands[] = {slot("a"), slot("b"), slot("c")};
    CHECK_OK(udb_insert_first(&out, &chosen, txn, "job", cands, 3));
    CHECK(chosen == 1);
    CHECK_STR(tu_field(out, "name"), "\"b\"");
    /* all taken: a conflict with the detail of the last candidate */
    chosen = 99;
    CHECK_RC(udb_insert_first(&out, &chosen, txn, "job", cands, 3), UDB_ECONFLICT);
    CHECK(chosen == 99);
    CHECK_STR(tu_conflict(txn), "job: qn(queue, name)=[\"q\",\"c\"] held by 2");
    /* an invalid candidate stops the search where it stands */
    udb_val mixed[] = {slot("a"), mp("{s:s}", "queue", "q"), slot("d")};
    CHECK_RC(udb_insert_first(&out, &chosen, txn, "job", mixed, 3), UDB_EBADRECORD);
    CHECK(chosen == 1);
    CHECK_RC(udb_insert_first(&out, &chosen, txn, "job", cands, 0), UDB_EINVAL);
    CHECK_COUNT(txn, "job", 3);
    tu_commit(txn);
}

static int write_two(udb_txn *txn, void *ctx)
{
    const char *second = ctx;
    int rc = tu_ins(NULL, txn, "acct", mp("{s:s, s:s}", "id", "w1", "email", "w1@x"));
    if (!rc)
        rc = tu_ins(NULL, txn, "acct", mp("{s:s, s:s}", "id", "w2", "email", second));
    return rc;
}

static void t_udb_write_commits_or_rolls_back(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    static char same[] = "w1@x", other[] = "w2@x";
    /* the second insert conflicts with the first: nothing of fn stays */
    CHECK_RC(udb_write(t->env, write_two, same), UDB_ECONFLICT);
    CHECK_HAS(udb_env_errmsg(t->env), "duplicate key in unique index \"acct.email\"");
    udb_txn *txn = tu_r(t);
    CHECK_COUNT(txn, "acct", 0);
    tu_commit(txn);
    CHECK_OK(udb_write(t->env, write_two, other));
    txn = tu_r(t);
    CHECK_SCAN(tu_scan(txn, "acct", NULL, NOVAL, "id"), "\"w1\",\"w2\"");
    tu_commit(txn);
}

static int snapshot_writer(udb_txn *w, void *ctx)
{
    (void)ctx;
    int rc = tu_upd(NULL, w, "acct", mp("s", "a"), mp("{s:s}", "name", "new"), UDB_MERGE);
    return rc ? rc : tu_ins(NULL, w, "acct", mp("{s:s, s:s}", "id", "b", "email", "b@x"));
}

static void *snapshot_writer_thread(void *env)
{
    static int rc;
    rc = udb_write(env, snapshot_writer, NULL);
    return &rc;
}

static void t_read_snapshot_is_stable(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    udb_txn *w = tu_w(t);
    CHECK_OK(tu_ins(NULL, w, "acct", mp("{s:s, s:s}", "id", "a", "email", "a@x")));
    tu_commit(w);
    udb_txn *r = tu_r(t);
    udb_val before;
    CHECK_OK(tu_get(&before, r, "acct", mp("s", "a")));
    /* a writer (another thread: this one holds the reader) commits while the
       reader is open: the reader does not block it and keeps seeing its snapshot */
    pthread_t th;
    void *res = NULL;
    CHECK(pthread_create(&th, NULL, snapshot_writer_thread, t->env) == 0 &&
          pthread_join(th, &res) == 0 && res && *(int *)res == 0);
    tu_txn = r;
    udb_val v;
    CHECK_OK(tu_get(&v, r, "acct", mp("s", "a")));
    CHECK_STR(tu_render(v), tu_render(before));
    CHECK_COUNT(r, "acct", 1);
    tu_commit(r);
    r = tu_r(t);
    CHECK_COUNT(r, "acct", 2);
    tu_commit(r);
}

static void t_arguments_are_checked(tu *t)
{
    if (!tu_open(t))
        return;
    /* before any schema */
    udb_txn *txn = tu_w(t);
    udb_val out;
    CHECK_RC(tu_ins(&out, txn, "acct", mp("{}")), UDB_EINVAL);
    CHECK_HAS(udb_errmsg(txn), "no schema");
    const char *const *types = NULL;
    size_t ntypes = 9;
    CHECK_OK(udb_types(&types, &ntypes, txn));
    CHECK(ntypes == 0);
    tu_abort(txn);
    CHECK_RC(udb_schema_apply(NULL, t->env, NULL, 0, 0), UDB_EINVAL);
    CHECK_RC(udb_schema_apply(NULL, NULL, "{}", 2, 0), UDB_EINVAL);
    CHECK_OK(tu_apply(t, SCHEMA));
    txn = NULL;
    CHECK_RC(udb_begin(&txn, t->env, 0x80), UDB_EINVAL);
    CHECK_RC(udb_begin(&txn, NULL, 0), UDB_EINVAL);
    CHECK_RC(udb_begin(NULL, t->env, 0), UDB_EINVAL);
    CHECK(txn == NULL);
    CHECK_RC(udb_commit(NULL), UDB_EINVAL);
    udb_abort(NULL);
    udb_cursor_close(NULL);
    udb_free(NULL);
    udb_close(NULL);
    CHECK_RC(tu_ins(&out, NULL, "acct", mp("{}")), UDB_EINVAL);
    CHECK_RC(udb_write(NULL, NULL, NULL), UDB_EINVAL);
    CHECK_RC(udb_check(NULL, NULL, NULL, NULL), UDB_EINVAL);
    CHECK_STR(udb_errmsg(NULL), "");
    CHECK(udb_conflict_info(NULL) == NULL);
    txn = tu_w(t);
    CHECK_RC(tu_ins(&out, txn, NULL, mp("{}")), UDB_EINVAL);
    CHECK_RC(tu_ins(&out, txn, "nope", mp("{}")), UDB_EINVAL);
    CHECK_HAS(udb_errmsg(txn), "unknown record type \"nope\" (this database has: acct, job)");
    /* an unknown or non-unique index: the message lists the ones that would do */
    CHECK_RC(tu_find(&out, txn, "job", "nope", mp("[i]", 1)), UDB_EINVAL);
    CHECK_HAS(udb_errmsg(txn), "type \"job\" has no unique index \"nope\" (its unique "
              "indexes: id, qn, tag)");
    CHECK_RC(tu_find(&out, txn, "job", "by_state", mp("[s]", "x")), UDB_EINVAL);
    CHECK_HAS(udb_errmsg(txn), "index \"job.by_state\" is not unique (unique indexes of "
              "\"job\": id, qn, tag)");
    udb_cursor *cur = NULL;
    if (!tu_scans())
        tu_skip_check(__FILE__, __LINE__, TU_NOSCAN_WHY);
    else if (CHECK_RC(udb_scan(&cur, txn, "job", "nope", NULL, 0), UDB_EINVAL))
        CHECK_HAS(udb_errmsg(txn), "(its indexes: id, qn, tag, by_state)");
    /* an exhausted sequence has its own code, for a named one and an auto key */
    uint64_t v;
    CHECK_OK(udb_seq_set(txn, "s", UINT64_MAX));
    CHECK_RC(udb_seq_next(&v, txn, "s"), UDB_EEXHAUSTED);
    CHECK_HAS(udb_errmsg(txn), "sequence \"s\" is exhausted");
    CHECK_OK(udb_seq_set(txn, "job.id", UINT64_MAX));
    CHECK_RC(tu_ins(&out, txn, "job", mp("{s:s, s:s}", "queue", "q", "name", "n")),
             UDB_EEXHAUSTED);
    CHECK_HAS(udb_errmsg(txn), "key sequence \"job.id\" is exhausted");
    tu_abort(txn);
    /* every code has its own text */
    static const int codes[] = {UDB_ECONFLICT, UDB_ENOTFOUND, UDB_EBADRECORD, UDB_ESCHEMA,
                                UDB_EKEYTOOLONG, UDB_ECORRUPT, UDB_EINVAL, UDB_ESIZELIMIT,
                                UDB_ENOMEM, UDB_EREADONLY, UDB_EFORMAT, UDB_EEXHAUSTED,
                                MDB_MAP_FULL, 0};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        CHECK(udb_strerror(codes[i]) != NULL && udb_strerror(codes[i])[0]);
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(udb_strerror(codes[i]), udb_strerror(codes[j])) != 0);
    }
    CHECK(udb_strerror(123456) != NULL);
}

/* ---- group commit: threads calling udb_write at once ---- */

#define GC_THREADS 8
#define GC_ROUNDS 30
#define GC_APP_ERROR (-77)

typedef struct gc_req {
    int attempt, thread, round;
    pthread_t caller, ran_on;
    int rc;
} gc_req;

typedef struct gc_thread {
    pthread_t tid;
    udb_env *env;
    pthread_barrier_t *start;
    gc_req *reqs;   /* GC_ROUNDS of them */
} gc_thread;

/* What request (thread, round) does: 0, 1 commit; 2 inserts, then fails with
 * an application error; 3 inserts a record whose email is taken. */
static int gc_kind(int thread, int round)
{
    return (thread + round) % 4;
}

static int gc_fn(udb_txn *txn, void *ctx)
{
    gc_req *q = ctx;
    char id[48], email[48];
    int kind = gc_kind(q->thread, q->round);
    q->ran_on = pthread_self();
    snprintf(id, sizeof id, "a%d-t%d-r%d", q->attempt, q->thread, q->round);
    snprintf(email, sizeof email, kind == 3 ? "taken@x" : "%s@x", id);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "id", 2);
    msgpack_pack_str_with_body(&pk, id, strlen(id));
    msgpack_pack_str_with_body(&pk, "email", 5);
    msgpack_pack_str_with_body(&pk, email, strlen(email));
    int rc = udb_insert(NULL, txn, "acct", sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return rc ? rc : kind == 2 ? GC_APP_ERROR : 0;
}

static void *gc_main(void *p)
{
    gc_thread *t = p;
    pthread_barrier_wait(t->start);
    for (int r = 0; r < GC_ROUNDS; r++) {
        t->reqs[r].caller = pthread_self();
        t->reqs[r].rc = udb_write(t->env, gc_fn, &t->reqs[r]);
    }
    return NULL;
}

/* One attempt: every thread's every call got its own fn's result and only
 * the successful ones' records exist.  Returns how many fns ran on a thread
 * other than their caller's (work of a shared commit), or -1. */
static int gc_attempt(udb_env *env, int attempt)
{
    static gc_req reqs[GC_THREADS][GC_ROUNDS];
    memset(reqs, 0, sizeof reqs);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, GC_THREADS);
    gc_thread th[GC_THREADS];
    for (int i = 0; i < GC_THREADS; i++) {
        for (int r = 0; r < GC_ROUNDS; r++)
            reqs[i][r] = (gc_req){.attempt = attempt, .thread = i, .round = r};
        th[i] = (gc_thread){.env = env, .start = &start, .reqs = reqs[i]};
        if (!CHECK(pthread_create(&th[i].tid, NULL, gc_main, &th[i]) == 0))
            return -1;   /* the barrier never opens: cannot go on */
    }
    for (int i = 0; i < GC_THREADS; i++)
        pthread_join(th[i].tid, NULL);
    pthread_barrier_destroy(&start);

    udb_txn *txn;
    if (!CHECK_OK(udb_begin(&txn, env, UDB_RDONLY)))
        return -1;
    int shared = 0;
    for (int i = 0; i < GC_THREADS; i++)
        for (int r = 0; r < GC_ROUNDS; r++) {
            gc_req *q = &reqs[i][r];
            int kind = gc_kind(i, r);
            int want = kind == 2 ? GC_APP_ERROR : kind == 3 ? UDB_ECONFLICT : 0;
            char key[52];
            udb_val v;
            int n = snprintf(key + 1, sizeof key - 1, "a%d-t%d-r%d", attempt, i, r);
            key[0] = (char)(0xa0 | n);   /* msgpack fixstr */
            if (!CHECK_RC(q->rc, want))
                fprintf(stderr, "    thread %d round %d\n", i, r);
            CHECK_RC(udb_get(&v, txn, "acct", key, (size_t)n + 1), want ? UDB_ENOTFOUND : 0);
            shared += !pthread_equal(q->ran_on, q->caller);
        }
    udb_abort(txn);
    return shared;
}

/* Concurrent udb_write callers share commits, and each still gets its own
 * result: a failing or conflicting fn rolls back only its own work.  Sharing
 * depends on timing, so up to 20 attempts may run before one is seen (one
 * is enough here); with UDB_NOGROUP every fn runs on its own caller's thread.
 * On PostgreSQL there is no group commit (each udb_write is a server
 * transaction of its caller's; a serialization failure runs fn again): the
 * same calls, every fn on its caller's thread, each its own result. */
static void t_group_commit_shares_commits_and_isolates_failures(tu *t)
{
    if (!tu_setup(t, SCHEMA))
        return;
    udb_val holder = mp("{s:s, s:s}", "id", "holder", "email", "taken@x");
    udb_txn *txn = tu_w(t);
    CHECK_OK(tu_ins(NULL, txn, "acct", holder));
    tu_commit(txn);
    int shared = 0;
    if (tu_pg()) {
        CHECK(gc_attempt(t->env, 0) == 0);
    } else {
        for (int attempt = 0; attempt < 20 && shared == 0; attempt++)
            if ((shared = gc_attempt(t->env, attempt)) < 0)
                return;
        CHECK(shared > 0);
    }

    udb_options o = UDB_OPTIONS_INIT;
    udb_env *alone = NULL;
    o.flags = UDB_NOGROUP | UDB_NOSYNC;
    if (!CHECK_OK(udb_open(&alone, tu_db(t, "nogroup"), &o)))
        return;
    if (CHECK_OK(udb_schema_apply(NULL, alone, jq(SCHEMA), strlen(SCHEMA), 0)) &&
        CHECK_OK(udb_begin(&txn, alone, 0))) {
        CHECK_OK(udb_insert(NULL, txn, "acct", holder.data, holder.size));
        CHECK_OK(udb_commit(txn));
        CHECK(gc_attempt(alone, 0) == 0);
    }
    CHECK_OK(udb_check(NULL, alone, NULL, NULL));
    udb_close(alone);
}

TU_MAIN(TU_CASE(t_arguments_are_checked), TU_CASE(t_insert_or_get_on_a_compound_index),
        TU_CASE(t_insert_or_get_on_the_primary_key), TU_CASE(t_upsert_inserts_then_merges),
        TU_CASE(t_upsert_validates_the_row_it_would_insert),
        TU_CASE(t_compound_ops_see_the_auto_key_in_a_predicate),
        TU_CASE(t_insert_first_takes_the_first_free), TU_CASE(t_udb_write_commits_or_rolls_back),
        TU_CASE(t_group_commit_shares_commits_and_isolates_failures),
        TU_CASE(t_read_snapshot_is_stable))
