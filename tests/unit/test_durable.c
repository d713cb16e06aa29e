/*
 * test_durable.c -- the acknowledgement rule of durable environments
 * (engine/lmdb/sync.c): a write returns 0 only once what it wrote and what it read
 * are durable; a failed flush poisons the database for every process.
 *
 * Durability is observed through the sync file's counters and a test hook
 * that stands in for the out-of-lock fdatasync (to hold a flush back, or make
 * it fail).  Each safety check has a negative control: the same check with
 * the rule switched off (udb__sync_set_test_flags) must catch the violation.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "env.h"
#include "sync.h"
#include "testutil.h"
#include "txn.h"

#define SCHEMA "{`types`: {`pet`: {`key`: `name`, `fields`: {`name`: {`type`: `str`}}}}}"

static udb_env *open_durable(const char *path, unsigned flags)
{
    udb_options o = UDB_OPTIONS_INIT;
    o.flags = flags;
    udb_env *env = NULL;
    if (udb_open(&env, path, &o) != 0) {
        fprintf(stderr, "udb_open %s: %s\n", path, udb_env_errmsg(NULL));
        return NULL;
    }
    return env;
}

static bool setup(tu *t)
{
    udb_env *env = open_durable(t->path, 0);
    if (!CHECK(env))
        return false;
    const char *json = jq(SCHEMA);
    bool ok = CHECK_OK(udb_schema_apply(NULL, env, json, strlen(json), 0));
    udb_close(env);
    return ok;
}

static uint64_t durable_of(udb_env *env)
{
    uint64_t d;
    udb__sync_state(udb__env_sync(env), NULL, &d, NULL);
    return d;
}

typedef struct ins {
    const char *name;
    uint64_t txnid;      /* the transaction fn ran in */
    int created;
    bool ran;
} ins;

/* {"name": a->name}, packed by hand: fn runs on other threads (group
 * commit), where the test harness's allocator must not be used. */
static int insert_fn(udb_txn *txn, void *arg)
{
    ins *a = arg;
    unsigned char rec[64] = {0x81, 0xa4, 'n', 'a', 'm', 'e'};
    size_t n = strlen(a->name);
    if (n > 31)
        return UDB_EINVAL;
    rec[6] = (unsigned char)(0xa0 | n);
    memcpy(rec + 7, a->name, n);
    a->ran = true;
    a->txnid = mdb_txn_id(udb__txn_mdb(txn));
    return udb_insert_or_get(NULL, &a->created, txn, "pet", NULL, rec, 7 + n);
}

/* One writer: after every udb_write the commit is durable, and it took one
 * flush outside the lock per commit (nobody else's commit covers it). */
static void t_lone_writer_acknowledged_when_durable(tu *t)
{
    if (!setup(t))
        return;
    udb_env *env = open_durable(t->path, 0);
    if (!CHECK(env))
        return;
    uint64_t f0;
    udb__sync_state(udb__env_sync(env), NULL, NULL, &f0);
    for (int i = 0; i < 20; i++) {
        ins a = {tu_fmt("p%d", i), 0, 0, false};
        CHECK_OK(udb_write(env, insert_fn, &a));
        CHECK(a.created == 1);
        CHECK(durable_of(env) >= a.txnid);
    }
    uint64_t f1;
    udb__sync_state(udb__env_sync(env), NULL, NULL, &f1);
    CHECK(f1 - f0 == 20);
    /* the same with udb_begin/udb_commit */
    udb_txn *txn;
    CHECK_OK(udb_begin(&txn, env, 0));
    uint64_t id = mdb_txn_id(udb__txn_mdb(txn));
    udb_val v = mp("{s:s}", "name", "by-commit");
    CHECK_OK(udb_insert(NULL, txn, "pet", v.data, v.size));
    CHECK_OK(udb_commit(txn));
    CHECK(durable_of(env) >= id);
    udb_close(env);
}

/* Negative control of the above: without the wait, a lone commit returns
 * before it is durable. */
static void t_control_no_wait_is_caught(tu *t)
{
    if (!setup(t))
        return;
    udb_env *env = open_durable(t->path, 0);
    if (!CHECK(env))
        return;
    udb__sync_set_test_flags(UDB_SYNC_TEST_NO_WAIT);
    ins a = {"x", 0, 0, false};
    CHECK_OK(udb_write(env, insert_fn, &a));
    udb__sync_set_test_flags(0);
    CHECK(durable_of(env) < a.txnid);
    udb_close(env);
}

/* ---- a flush held back by process A; process B reads A's commit ---- */

static int hold_fd = -1;     /* A's flush waits until this pipe is readable */
static atomic_int holding;

static int held_flush(int fd)
{
    atomic_store(&holding, 1);
    struct pollfd p = {hold_fd, POLLIN, 0};
    poll(&p, 1, 10000);
    return fdatasync(fd);
}

typedef struct writer_arg {
    udb_env *env;
    ins a;
    int rc;
} writer_arg;

static void *writer_thread(void *arg)
{
    writer_arg *w = arg;
    w->rc = udb_write(w->env, insert_fn, &w->a);
    return NULL;
}

static uint64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* B's insert_or_get of A's key as a udb_exec unit: a key held already is
 * answered from a read snapshot, without a write transaction (group.c). */
static int exec_insert_or_get(udb_env *env, ins *a)
{
    unsigned char rec[64] = {0x81, 0xa4, 'n', 'a', 'm', 'e'};
    size_t n = strlen(a->name);
    rec[6] = (unsigned char)(0xa0 | n);
    memcpy(rec + 7, a->name, n);
    udb_op op = UDB_OP_INIT;
    op.kind = UDB_OP_INSERT_OR_GET;
    op.type = "pet";
    op.rec = (udb_val){rec, 7 + n};
    udb_results *res = NULL;
    int rc = udb_exec(&res, env, &op, 1);
    const udb_result *r = res ? udb_result_at(res, 0) : NULL;
    a->created = r ? r->created : -1;
    udb_results_free(res);
    return rc;
}

/* Run the scenario; returns true if B's insert_or_get returned while A's
 * commit (which B read) was not durable.  test_flags go to B; exec: B's
 * insert_or_get is a udb_exec unit (else a udb_write callback's). */
static bool b_acknowledged_early(tu *t, unsigned test_flags, bool exec, int *b_created)
{
    int go[2], hold[2], done[2];
    if (!CHECK(pipe(go) == 0 && pipe(hold) == 0 && pipe(done) == 0))
        return false;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {   /* B */
        char c;
        if (read(go[0], &c, 1) != 1)
            _exit(2);
        udb_env *env = open_durable(t->path, 0);
        if (!env)
            _exit(3);
        udb__sync_set_test_flags(test_flags);
        ins a = {"shared", 0, 0, false};
        int rc = exec ? exec_insert_or_get(env, &a) : udb_write(env, insert_fn, &a);
        char out[2] = {(char)(rc == 0 ? 'k' : 'e'), (char)('0' + a.created)};
        if (write(done[1], out, 2) != 2)
            _exit(4);
        udb_close(env);
        _exit(0);
    }
    bool early = false;
    udb_env *env = open_durable(t->path, 0);
    if (!CHECK(env) || !CHECK(pid > 0))
        goto out;
    hold_fd = hold[0];
    atomic_store(&holding, 0);
    udb__sync_set_flush_hook(held_flush);
    writer_arg w = {env, {"shared", 0, 0, false}, -1};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, writer_thread, &w) == 0);
    /* A committed and is flushing (held): B may now read it */
    uint64_t t0 = ms_now();
    while (!atomic_load(&holding) && ms_now() - t0 < 10000)
        usleep(1000);
    CHECK(atomic_load(&holding));
    CHECK(durable_of(env) < w.a.txnid || w.a.txnid == 0);
    CHECK(write(go[1], "g", 1) == 1);
    struct pollfd p = {done[0], POLLIN, 0};
    early = poll(&p, 1, 500) == 1;
    CHECK(write(hold[1], "r", 1) == 1);   /* let A's flush go */
    pthread_join(th, NULL);
    CHECK_OK(w.rc);
    CHECK(w.a.created == 1);
    char out[2] = {0, 0};
    CHECK(read(done[0], out, 2) == 2);
    CHECK(out[0] == 'k');
    *b_created = out[1] - '0';
    udb__sync_set_flush_hook(NULL);
    udb_close(env);
out:
    if (pid > 0) {
        int st = 0;
        CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    close(go[0]); close(go[1]); close(hold[0]); close(hold[1]); close(done[0]); close(done[1]);
    return early;
}

/* The scenario, B getting A's record (created 0) and returning early or not
 * as `early` says. */
static void b_case(tu *t, unsigned test_flags, bool exec, bool early)
{
    if (!setup(t))
        return;
    int created = -1;
    CHECK(b_acknowledged_early(t, test_flags, exec, &created) == early);
    CHECK(created == 0);
}

/* B's insert_or_get finds the record A committed but has not flushed: B
 * wrote nothing, yet must not return before A's commit is durable. */
static void t_read_term_waits_for_other_process(tu *t)
{
    b_case(t, 0, false, false);
}

/* Negative control: with the read term ignored, B returns at once. */
static void t_control_no_read_term_is_caught(tu *t)
{
    b_case(t, UDB_SYNC_TEST_NO_READ_TERM, false, true);
}

/* The same through udb_exec, whose unit of held keys is answered from a read
 * snapshot without a write transaction: that answer too waits for A's
 * commit to be durable. */
static void t_held_unit_waits_for_other_process(tu *t)
{
    b_case(t, 0, true, false);
}

/* Negative control: with the read term ignored, the held answer returns at once. */
static void t_control_held_no_read_term_is_caught(tu *t)
{
    b_case(t, UDB_SYNC_TEST_NO_READ_TERM, true, true);
}

/* ---- a failed flush ---- */

static int failing_flush(int fd)
{
    (void)fd;
    errno = EIO;
    return -1;
}

static int never_fn(udb_txn *txn, void *arg)
{
    (void)txn;
    *(bool *)arg = true;
    return 0;
}

static int child_write(const char *path)
{
    udb_env *env = open_durable(path, 0);
    if (!env)
        return 100;
    bool ran = false;
    int rc = udb_write(env, never_fn, &ran);
    udb_close(env);
    return rc == UDB_EFLUSHFAILED && !ran ? 0 : 1;
}

static void t_failed_flush_poisons_every_process(tu *t)
{
    if (!setup(t))
        return;
    udb_env *env = open_durable(t->path, 0);
    if (!CHECK(env))
        return;
    udb__sync_set_flush_hook(failing_flush);
    ins a = {"lost", 0, 0, false};
    CHECK_RC(udb_write(env, insert_fn, &a), UDB_EFLUSHFAILED);
    CHECK_HAS(udb_env_errmsg(env), "flush", "Input/output error", "refused");
    udb__sync_set_flush_hook(NULL);
    /* never retried, never acknowledged: writes are refused from now on */
    bool ran = false;
    CHECK_RC(udb_write(env, never_fn, &ran), UDB_EFLUSHFAILED);
    CHECK(!ran);
    udb_txn *txn = NULL;
    CHECK_RC(udb_begin(&txn, env, 0), UDB_EFLUSHFAILED);
    /* reads still work */
    CHECK_OK(udb_begin(&txn, env, UDB_RDONLY));
    CHECK_OK(udb_commit(txn));
    /* another process, opened while this one is open, is refused too */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        _exit(child_write(t->path));
    int st = 0;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* once every process has closed it, reopening clears the state */
    udb_close(env);
    env = open_durable(t->path, 0);
    if (!CHECK(env))
        return;
    ins b = {"after", 0, 0, false};
    CHECK_OK(udb_write(env, insert_fn, &b));
    CHECK(durable_of(env) >= b.txnid);
    udb_close(env);
}

/* ---- many writers, threads and processes: every acknowledgement durable ---- */

#define PROCS 3
#define THREADS 4
#define PER_THREAD 40

typedef struct shared_count {
    atomic_int acked, created, early, failed;
} shared_count;

typedef struct many_arg {
    udb_env *env;
    shared_count *sc;
    int run, proc, thread;
} many_arg;

static void *many_thread(void *arg)
{
    many_arg *m = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        char name[64];
        /* every name twice: the second insert_or_get writes nothing and
           waits on what it read alone */
        snprintf(name, sizeof name, "w%d-%d-%d-%d", m->run, m->proc, m->thread,
                 i % (PER_THREAD / 2));
        ins a = {name, 0, 0, false};
        int rc = udb_write(m->env, insert_fn, &a);
        if (rc) {
            atomic_fetch_add(&m->sc->failed, 1);
            continue;
        }
        atomic_fetch_add(&m->sc->acked, 1);
        if (a.created)
            atomic_fetch_add(&m->sc->created, 1);
        /* wrote: its own txnid; else the snapshot it read (one before) */
        if (durable_of(m->env) < (a.created ? a.txnid : a.txnid - 1))
            atomic_fetch_add(&m->sc->early, 1);
    }
    return NULL;
}

static int many_proc(const char *path, shared_count *sc, int run, int proc, unsigned flags,
                     unsigned test_flags)
{
    udb_env *env = open_durable(path, flags);
    if (!env)
        return 1;
    udb__sync_set_test_flags(test_flags);
    pthread_t th[THREADS];
    many_arg m[THREADS];
    for (int i = 0; i < THREADS; i++) {
        m[i] = (many_arg){env, sc, run, proc, i};
        pthread_create(&th[i], NULL, many_thread, &m[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    udb_close(env);
    return 0;
}

static void run_many(tu *t, int run, unsigned flags, unsigned test_flags, shared_count *sc)
{
    pid_t pids[PROCS];
    fflush(NULL);
    for (int p = 0; p < PROCS; p++) {
        pids[p] = fork();
        if (pids[p] == 0)
            _exit(many_proc(t->path, sc, run, p, flags, test_flags));
    }
    for (int p = 0; p < PROCS; p++) {
        int st = 0;
        CHECK(pids[p] > 0 && waitpid(pids[p], &st, 0) == pids[p] && WIFEXITED(st) &&
              WEXITSTATUS(st) == 0);
    }
}

static void t_concurrent_acks_are_durable(tu *t)
{
    if (!setup(t))
        return;
    for (int nogroup = 0; nogroup < 2; nogroup++) {
        shared_count *sc = mmap(NULL, sizeof *sc, PROT_READ | PROT_WRITE,
                                MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (!CHECK(sc != MAP_FAILED))
            return;
        run_many(t, nogroup, nogroup ? UDB_NOGROUP : 0, 0, sc);
        CHECK(atomic_load(&sc->acked) == PROCS * THREADS * PER_THREAD);
        CHECK(atomic_load(&sc->created) == PROCS * THREADS * PER_THREAD / 2);
        CHECK(atomic_load(&sc->failed) == 0);
        CHECK(atomic_load(&sc->early) == 0);
        if (atomic_load(&sc->early))
            fprintf(stderr, "nogroup=%d: %d of %d acknowledged before durable\n", nogroup,
                    atomic_load(&sc->early), atomic_load(&sc->acked));
        munmap(sc, sizeof *sc);
    }
}

/* Negative control: without the wait, some acknowledgements come early. */
static void t_control_concurrent_no_wait_is_caught(tu *t)
{
    if (!setup(t))
        return;
    shared_count *sc = mmap(NULL, sizeof *sc, PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (!CHECK(sc != MAP_FAILED))
        return;
    run_many(t, 0, 0, UDB_SYNC_TEST_NO_WAIT, sc);
    CHECK(atomic_load(&sc->early) > 0);
    munmap(sc, sizeof *sc);
}

/* UDB_NOSYNC and durable processes may share a database: the durable one's
 * acknowledgements stay durable (a NOSYNC commit covers nobody). */
static void t_nosync_neighbour_does_not_fake_durability(tu *t)
{
    if (!setup(t))
        return;
    udb_env *fast = open_durable(t->path, UDB_NOSYNC);
    CHECK(fast);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        udb_env *e = open_durable(t->path, 0);
        int bad = !e;
        for (int i = 0; e && i < 30; i++) {
            ins a = {tu_fmt("d%d", i), 0, 0, false};
            if (udb_write(e, insert_fn, &a) || durable_of(e) < a.txnid)
                bad++;
        }
        udb_close(e);
        _exit(bad);
    }
    for (int i = 0; fast && i < 300; i++) {
        ins a = {tu_fmt("n%d", i), 0, 0, false};
        CHECK_OK(udb_write(fast, insert_fn, &a));
    }
    int st = 0;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    udb_close(fast);
}

TU_MAIN(TU_CASE(t_lone_writer_acknowledged_when_durable), TU_CASE(t_control_no_wait_is_caught),
        TU_CASE(t_read_term_waits_for_other_process), TU_CASE(t_control_no_read_term_is_caught),
        TU_CASE(t_held_unit_waits_for_other_process),
        TU_CASE(t_control_held_no_read_term_is_caught),
        TU_CASE(t_failed_flush_poisons_every_process), TU_CASE(t_concurrent_acks_are_durable),
        TU_CASE(t_control_concurrent_no_wait_is_caught),
        TU_CASE(t_nosync_neighbour_does_not_fake_durability))
