/*
 * test_open.c -- one database opened more than once in one process
 * (engine/lmdb/env.c, issue 23): every udb_open of the same directory, however
 * the path spells it, shares one LMDB environment, counted, and the last
 * udb_close closes it.  LMDB allows one MDB_env per file per process:
 * closing a second one drops the process's locks on lock.mdb, and the next
 * process to open the database then resets the lock file under this one --
 * its reader table (writers overwrite the pages its read transactions use)
 * and its writer mutex (two writers at once) -- and acknowledged records
 * are lost.
 *
 * Two direct checks, each after a double open and a close: snapshot_holds
 * (a read transaction of this process must keep reading what it read while
 * another process that opened the database since rewrites it) and probe
 * (while this process holds the write lock, another process's write must
 * wait, and both acknowledged records must be there).  The negative control
 * opens the second handle with the sharing switched off
 * (udb__env_set_test_flags) and must catch the damage.  Since main
 * serializes uniqdb's writers through a lock in sync.udb as well, only the
 * snapshot check catches it there; on bfbedd1 (the code) both do.
 *
 * UDB_TEST_ROUNDS (a number) multiplies the rounds of the thread and
 * process tests for a long run.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <msgpack.h>

#include "env.h"
#include "support.h"
#include "testutil.h"

#define SCHEMA                                                                         \
    "{`types`: {`pet`: {`key`: `name`, `fields`: {`name`: {`type`: `str`}, "          \
    "`note`: {`type`: `str`}}}}}"

/* how long a child's write may take while we hold the write lock before we
 * take it that the child waits for the lock (a write alone takes a flush) */
#define HOLD_MS 300

static int scale(void)
{
    const char *s = getenv("UDB_TEST_ROUNDS");
    int n = s ? atoi(s) : 1;
    return n > 0 ? n : 1;
}

/* {"name": name}, packed by hand: fn runs on other threads (group commit),
 * where the harness's allocator must not be used. */
static int insert_fn(udb_txn *txn, void *arg)
{
    const char *name = arg;
    unsigned char rec[40] = {0x81, 0xa4, 'n', 'a', 'm', 'e'};
    size_t n = strlen(name);
    if (n > 31)
        return UDB_EINVAL;
    rec[6] = (unsigned char)(0xa0 | n);
    memcpy(rec + 7, name, n);
    return udb_insert(NULL, txn, "pet", rec, 7 + n);
}

static int put(udb_env *env, const char *name)
{
    return udb_write(env, insert_fn, (void *)name);
}

static udb_env *open_db(const char *path)
{
    udb_env *env = NULL;
    if (udb_open(&env, path, NULL) != 0) {
        fprintf(stderr, "udb_open %s: %s\n", path, udb_env_errmsg(NULL));
        return NULL;
    }
    return env;
}

/* The names missing from the database, among `names`. */
static int missing(udb_env *env, const char *const *names, int n)
{
    udb_txn *r;
    if (!CHECK_OK(udb_begin(&r, env, UDB_RDONLY)))
        return n;
    int lost = 0;
    for (int i = 0; i < n; i++) {
        udb_val rec;
        udb_val key = mp("s", names[i]);
        if (udb_get(&rec, r, "pet", key.data, key.size) != 0) {
            fprintf(stderr, "  acknowledged record %s is missing\n", names[i]);
            lost++;
        }
    }
    udb_abort(r);
    return lost;
}

/* The database with its schema, opened with default options (durable, as
 * `uniqdb put` is) as t->env: the harness checks and closes it. */
static udb_env *setup(tu *t)
{
    udb_env *env = open_db(t->path);
    if (!CHECK(env))
        return NULL;
    const char *json = jq(SCHEMA);
    CHECK_OK(udb_schema_apply(NULL, env, json, strlen(json), 0));
    return t->env = env;
}

static size_t count(udb_env *env)
{
    udb_txn *r;
    if (!CHECK_OK(udb_begin(&r, env, UDB_RDONLY)))
        return 0;
    size_t n = tu_count(r, "pet");
    udb_abort(r);
    return n;
}

static bool check_ok(udb_env *env)
{
    size_t problems = 1;
    return CHECK_OK(udb_check(&problems, env, NULL, NULL)) && CHECK(problems == 0);
}

/* ---- the probe: does this process still hold LMDB's locks? ---- */

static int child_put(const char *path, const char *name, int go, int opened, int done)
{
    char c;
    if (read(go, &c, 1) != 1)
        return 2;
    udb_env *env = open_db(path);
    if (!env)
        return 3;
    if (write(opened, "o", 1) != 1)
        return 4;
    int rc = put(env, name);
    if (write(done, "d", 1) != 1)
        return 5;
    if (rc)
        fprintf(stderr, "child put %s: %s\n", name, udb_env_errmsg(env));
    udb_close(env);
    return rc ? 6 : 0;
}

/* While env holds LMDB's write lock (a write transaction inserting `mine`,
 * begun with udb_begin), a child process opens the database and inserts
 * `theirs` with udb_write.  If this process's locks hold, the child waits for
 * the lock; if they were dropped, the child resets LMDB's lock file as if
 * alone and, unless something else serializes uniqdb's writers (the lock in
 * sync.udb that closing an MDB_env does not drop: udb_write's lead lock, and
 * on main the writers' gate), takes the write lock too and commits the same
 * transaction id, and one of the two acknowledged records is lost.
 * Returns how many of the two are missing afterwards; *overlapped: the
 * child's write ended while this process held the lock. */
static int probe(tu *t, udb_env *env, const char *mine, const char *theirs, bool *overlapped)
{
    int go[2], opened[2], done[2];
    *overlapped = false;
    if (!CHECK(pipe(go) == 0 && pipe(opened) == 0 && pipe(done) == 0))
        return 2;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        _exit(child_put(t->path, theirs, go[0], opened[1], done[1]));
    udb_txn *txn = NULL;
    int rc = udb_begin(&txn, env, 0);
    if (CHECK_OK(rc) && CHECK_OK(rc = insert_fn(txn, (void *)mine))) {
        struct pollfd p = {opened[0], POLLIN, 0};
        CHECK(write(go[1], "g", 1) == 1);
        if (CHECK(poll(&p, 1, 20000) == 1)) {
            p.fd = done[0];
            *overlapped = poll(&p, 1, HOLD_MS) == 1;
        }
    } else {
        CHECK(write(go[1], "g", 1) == 1);
    }
    if (txn && !rc)
        CHECK_OK(rc = udb_commit(txn));
    else if (txn)
        udb_abort(txn);
    int st = -1;
    bool child_ok = CHECK(pid > 0 && waitpid(pid, &st, 0) == pid) && WIFEXITED(st) &&
                    WEXITSTATUS(st) == 0;
    if (!child_ok)
        fprintf(stderr, "  child: status 0x%x\n", st);
    close(go[0]); close(go[1]); close(opened[0]); close(opened[1]);
    close(done[0]); close(done[1]);
    const char *names[2] = {mine, theirs};
    /* only what was acknowledged counts */
    return missing(env, names + (rc != 0), (rc == 0) + child_ok);
}

/* ---- the other probe: do this process's readers still count? ---- */

#define SNAP_REWRITES 20
#define SNAP_PAD 3000      /* a record on pages of its own (overflow pages) */

/* {"name": "snap", "note": "v<i>" + padding} */
static udb_val snap_rec(int i, char *buf, size_t cap)
{
    char note[SNAP_PAD + 16];
    int n = snprintf(note, sizeof note, "v%d-", i);
    memset(note + n, 'a' + i % 26, SNAP_PAD);
    note[n + SNAP_PAD] = 0;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    sup_pack(&pk, "{s:s, s:s}", "name", "snap", "note", note);
    size_t len = sb.size < cap ? sb.size : 0;
    memcpy(buf, sb.data, len);
    msgpack_sbuffer_destroy(&sb);
    return (udb_val){buf, len};
}

static int child_rewrite(const char *path)
{
    udb_env *env = open_db(path);
    if (!env)
        return 2;
    int bad = 0;
    char buf[SNAP_PAD + 64];
    udb_val key = mp("s", "snap");
    for (int i = 1; i <= SNAP_REWRITES; i++) {
        udb_val rec = snap_rec(i, buf, sizeof buf);
        udb_txn *txn;
        if (udb_begin(&txn, env, 0) != 0) {
            bad++;
            continue;
        }
        if (udb_update(NULL, txn, "pet", key.data, key.size, rec.data, rec.size, 0) != 0) {
            udb_abort(txn);
            bad++;
        } else if (udb_commit(txn) != 0) {
            bad++;
        }
    }
    udb_close(env);
    return bad ? 3 : 0;
}

/* LMDB keeps the pages a read transaction uses from being reused only while
 * its slot in lock.mdb's reader table is there; a process that resets the
 * lock file (because this process's locks were dropped) wipes the slot, and
 * writers then overwrite the reader's snapshot.  A read transaction of env
 * reads the record "snap"; a child process opens the database and rewrites
 * that record 20 times; the read transaction must still read the bytes it
 * read first.  Returns true if its snapshot held. */
static bool snapshot_holds(tu *t, udb_env *env)
{
    char buf[SNAP_PAD + 64];
    udb_val rec0 = snap_rec(0, buf, sizeof buf), key = mp("s", "snap");
    udb_txn *txn;
    if (!CHECK_OK(udb_begin(&txn, env, 0)))
        return false;
    int rc = udb_get(NULL, txn, "pet", key.data, key.size);
    rc = rc == UDB_ENOTFOUND ? udb_insert(NULL, txn, "pet", rec0.data, rec0.size)
                             : udb_update(NULL, txn, "pet", key.data, key.size, rec0.data,
                                          rec0.size, 0);
    if (!CHECK_OK(rc) || !CHECK_OK(udb_commit(txn)))
        return false;
    udb_txn *r;
    if (!CHECK_OK(udb_begin(&r, env, UDB_RDONLY)))
        return false;
    udb_val first;
    bool held = false;
    if (CHECK_OK(udb_get(&first, r, "pet", key.data, key.size)) &&
        CHECK(first.size == rec0.size && memcmp(first.data, rec0.data, rec0.size) == 0)) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0)
            _exit(child_rewrite(t->path));
        int st = -1;
        CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
              WEXITSTATUS(st) == 0);
        udb_val again;
        rc = udb_get(&again, r, "pet", key.data, key.size);
        held = rc == 0 && again.size == rec0.size &&
               memcmp(again.data, rec0.data, rec0.size) == 0;
        if (!held)
            fprintf(stderr, "  the read transaction's snapshot changed under it: %.40s\n",
                    rc ? udb_strerror(rc) : tu_render(again));
    }
    udb_abort(r);
    return held;
}

/* ---- (a) the repro ---- */

/* Open, open again, close the second, and the first must still hold its
 * locks: another process's write waits for ours, nothing is lost. */
static void t_close_second_keeps_locks(tu *t)
{
    udb_env *env = setup(t);
    if (!env)
        return;
    udb_env *second = open_db(t->path);
    if (!CHECK(second))
        return;
    CHECK(second == env);
    udb_close(second);
    CHECK(snapshot_holds(t, env));
    bool overlapped;
    CHECK(probe(t, env, "mine", "theirs", &overlapped) == 0);
    CHECK(!overlapped);
    CHECK(count(env) == 3);
}

/* The control's process: the second open past the table (its own MDB_env,
 * what udb_open did before), closed, then the probe.  Exit status 0 if an
 * acknowledged record was lost (the control caught it), 1 if none was. */
static int unshared_probe(tu *t)
{
    udb_env *env = open_db(t->path);
    if (!env)
        return 64;
    udb__env_set_test_flags(UDB_ENV_TEST_NOSHARE);
    udb_env *second = open_db(t->path);
    udb__env_set_test_flags(0);
    if (!second || second == env)
        return 65;
    udb_close(second);
    bool held = snapshot_holds(t, env);
    bool overlapped;
    int lost = probe(t, env, "mine", "theirs", &overlapped);
    printf("  unshared: read snapshot held: %s; another process's write overlapped ours: %s; "
           "acknowledged records lost: %d\n", held ? "yes" : "no", overlapped ? "yes" : "no",
           lost);
    fflush(stdout);
    return !held || lost > 0 ? 0 : 1;
}

/* Negative control: the probe must catch two writers at once and a lost
 * acknowledged record when the second handle is an MDB_env of its own.  It
 * runs in a process of its own, which it leaves broken (LMDB's lock file was
 * reset under it: its thread may hold a mutex that no longer exists), and
 * which must not hold the database open from here (our locks would stay). */
static void t_control_unshared_loses(tu *t)
{
    udb_env *env = setup(t);
    if (!env)
        return;
    udb_close(env);
    t->env = NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        _exit(unshared_probe(t));
    int st = -1;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
    if (!CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0))
        fprintf(stderr, "  control process: status 0x%x\n", st);
    t->env = open_db(t->path);
    CHECK(t->env);
}

#define REPRO_PROCS 1
#define REPRO_EACH 60     /* short-lived opens per process: 60, like 60 `uniqdb put` */
#define REPRO_OURS 150

/* One insert as `uniqdb put` makes it: a udb_exec unit of one op. */
static int exec_put(udb_env *env, const char *name)
{
    udb_op op = UDB_OP_INIT;
    op.kind = UDB_OP_INSERT;
    op.type = "pet";
    op.rec = mp("{s:s}", "name", name);
    udb_results *res = NULL;
    int rc = udb_exec(&res, env, &op, 1);
    udb_results_free(res);
    return rc;
}

/* One insert in a write transaction of its own (udb_begin, udb_commit). */
static int txn_put(udb_env *env, const char *name)
{
    udb_txn *txn;
    int rc = udb_begin(&txn, env, 0);
    if (rc)
        return rc;
    if ((rc = insert_fn(txn, (void *)name))) {
        udb_abort(txn);
        return rc;
    }
    return udb_commit(txn);
}

static int repro_child(const char *path, int proc, sup_gate *g)
{
    sup_gate_enter(g);
    if (sup_gate_wait(g) != 0)
        return 90;
    int bad = 0;
    for (int i = 0; i < REPRO_EACH; i++) {
        char name[32];
        snprintf(name, sizeof name, "c%d-%d", proc, i);
        udb_env *env = open_db(path);
        if (!env || exec_put(env, name) != 0)
            bad++;
        udb_close(env);
    }
    return bad;
}

/* The form: open, open again, close the second, then 150 inserts
 * here (udb_write, and udb_begin/udb_commit every other one) while 6
 * processes open, insert (udb_exec, as `uniqdb put` does) and close 10 times
 * each; every acknowledged record is there and udb_check finds nothing. */
static void t_close_second_then_many_writers(tu *t)
{
    udb_env *env = setup(t);
    if (!env)
        return;
    udb_env *second = open_db(t->path);
    if (!CHECK(second))
        return;
    udb_close(second);
    sup_gate g;
    if (!CHECK(sup_gate_init(&g) == 0))
        return;
    pid_t pids[REPRO_PROCS];
    fflush(NULL);
    for (int p = 0; p < REPRO_PROCS; p++) {
        pids[p] = fork();
        if (pids[p] == 0)
            _exit(repro_child(t->path, p, &g));
    }
    CHECK(sup_gate_await(&g, REPRO_PROCS, NULL) == REPRO_PROCS);
    sup_gate_open(&g);
    const char *names[REPRO_OURS + REPRO_PROCS * REPRO_EACH];
    int n = 0;
    for (int i = 0; i < REPRO_OURS; i++) {
        const char *name = tu_fmt("p%d", i);
        if (CHECK_OK(i % 2 ? txn_put(env, name) : put(env, name)))
            names[n++] = name;
    }
    for (int p = 0; p < REPRO_PROCS; p++) {
        int st = -1;
        CHECK(pids[p] > 0 && waitpid(pids[p], &st, 0) == pids[p]);
        /* a child that failed a put exits with the count; its others count */
        if (!CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0))
            fprintf(stderr, "  child %d: status 0x%x\n", p, st);
        for (int i = 0; i < REPRO_EACH; i++)
            names[n++] = tu_fmt("c%d-%d", p, i);
    }
    sup_gate_close(&g);
    CHECK(missing(env, names, n) == 0);
    CHECK(count(env) == (size_t)n);
    check_ok(env);
}

/* ---- (b) every spelling of the path shares ---- */

static void t_path_spellings_share(tu *t)
{
    udb_env *env = setup(t);
    if (!env)
        return;
    char cwd[PATH_MAX];
    if (!CHECK(getcwd(cwd, sizeof cwd)))
        return;
    const char *link = tu_fmt("%s/link", t->dir);
    CHECK(symlink("db", link) == 0);
    CHECK(mkdir(tu_fmt("%s/sub", t->dir), 0700) == 0);
    const char *abs[] = {t->path, tu_fmt("%s/", t->path), tu_fmt("%s//db/.", t->dir), link,
                         tu_fmt("%s/", link), tu_fmt("%s/sub/../db", t->dir)};
    const char *rel[] = {"db", "./db", "db/", "./db/", "link", "sub/../db", "./link/"};
    enum { NABS = sizeof abs / sizeof abs[0], NREL = sizeof rel / sizeof rel[0] };
    udb_env *got[NABS + NREL];
    for (int i = 0; i < NABS; i++) {
        got[i] = open_db(abs[i]);
        if (!CHECK(got[i] == env))
            fprintf(stderr, "  %s: another environment\n", abs[i]);
    }
    if (!CHECK(chdir(t->dir) == 0))
        return;
    for (int i = 0; i < NREL; i++) {
        got[NABS + i] = open_db(rel[i]);
        if (!CHECK(got[NABS + i] == env))
            fprintf(stderr, "  %s: another environment\n", rel[i]);
    }
    CHECK(chdir(cwd) == 0);
    /* another database is another environment */
    udb_env *other = open_db(tu_fmt("%s/other", t->dir));
    CHECK(other && other != env);
    udb_close(other);
    /* closed in any order, each handle leaves the others working */
    for (int i = 0; i < NABS + NREL; i++) {
        udb_close(got[(i * 5) % (NABS + NREL)]);
        CHECK_OK(put(env, tu_fmt("after-%d", i)));
    }
    CHECK(snapshot_holds(t, env));
    bool overlapped;
    CHECK(probe(t, env, "mine", "theirs", &overlapped) == 0);
    CHECK(!overlapped);
    CHECK(count(env) == NABS + NREL + 3);
}

/* A directory removed and made again is another database: the new open
 * must not share the environment still open on the removed files, where its
 * writes would vanish.  ext4 gives a new directory a removed one's inode at
 * once, but not while a file in it is open, as LMDB's are: the key stays
 * unique (if this ever reports "reused", the table's key is wrong). */
static void t_removed_and_recreated_is_another(tu *t)
{
    udb_env *env = setup(t);
    if (!env)
        return;
    CHECK_OK(put(env, "old"));
    struct stat before, after;
    CHECK(stat(t->path, &before) == 0);
    CHECK(sup_remove_tree(t->path, false) == 0);
    udb_env *fresh = open_db(t->path);
    if (!CHECK(fresh))
        return;
    CHECK(stat(t->path, &after) == 0);
    printf("  inode of the directory %s\n", before.st_ino == after.st_ino ? "reused" : "new");
    CHECK(fresh != env);
    const char *json = jq(SCHEMA);
    CHECK_OK(udb_schema_apply(NULL, fresh, json, strlen(json), 0));
    CHECK(count(fresh) == 0);
    CHECK_OK(put(fresh, "new"));
    /* and opened once more, it is the new one that is shared */
    udb_env *again = open_db(t->path);
    CHECK(again == fresh);
    udb_close(again);
    udb_close(env);
    t->env = fresh;
    const char *names[] = {"new"};
    CHECK(missing(fresh, names, 1) == 0);
    CHECK(count(fresh) == 1);
}

/* ---- (c) close orders ---- */

static void close_order(tu *t, bool first_first)
{
    udb_env *env = setup(t);
    if (!env)
        return;
    udb_close(env);
    t->env = NULL;
    udb_env *a = open_db(t->path), *b = open_db(t->path);
    if (!CHECK(a && b))
        return;
    CHECK(a == b);
    CHECK_OK(put(a, "both-open"));
    udb_env *left = first_first ? b : a;
    /* the other open's transaction outlives this close */
    udb_txn *r = NULL;
    CHECK_OK(udb_begin(&r, left, UDB_RDONLY));
    udb_close(first_first ? a : b);
    udb_val rec, key = mp("s", "both-open");
    CHECK_OK(udb_get(&rec, r, "pet", key.data, key.size));
    udb_abort(r);
    CHECK_OK(put(left, "one-closed"));
    CHECK(snapshot_holds(t, left));
    bool overlapped;
    CHECK(probe(t, left, "mine", "theirs", &overlapped) == 0);
    CHECK(!overlapped);
    CHECK_OK(put(left, "after-probe"));
    check_ok(left);
    udb_close(left);
    /* closed for real: open again, everything is there */
    env = t->env = open_db(t->path);
    if (!CHECK(env))
        return;
    const char *names[] = {"both-open", "one-closed", "mine", "theirs", "after-probe"};
    CHECK(missing(env, names, 5) == 0);
    CHECK_OK(put(env, "reopened"));
    CHECK(count(env) == 7);     /* and "snap" */
}

static void t_close_first_then_second(tu *t)
{
    close_order(t, true);
}

static void t_close_second_then_first(tu *t)
{
    close_order(t, false);
}

/* ---- udb_exec_async units and a close of one of two opens ---- */

/* {"name": name} packed by hand into buf (64 bytes), on any thread */
static udb_val name_rec(unsigned char *buf, const char *name)
{
    size_t n = strlen(name);
    if (n > 31)
        n = 31;
    memcpy(buf, "\x81\xa4name", 6);
    buf[6] = (unsigned char)(0xa0 | n);
    memcpy(buf + 7, name, n);
    return (udb_val){buf, 7 + n};
}

static int async_put(udb_env *env, const char *name, udb_exec_done_fn done, void *payload)
{
    unsigned char buf[64];
    udb_op op = UDB_OP_INIT;
    op.kind = UDB_OP_INSERT;
    op.type = "pet";
    op.rec = name_rec(buf, name);
    return udb_exec_async(env, &op, 1, done, payload);
}

typedef struct tally {
    atomic_int done, failed;
} tally;

static void slow_done(int rc, udb_results *res, const char *errmsg, void *payload)
{
    (void)errmsg;
    tally *t = payload;
    udb_results_free(res);
    sup_sleep_us(2000);      /* a callback that takes a while: close must wait for it */
    if (rc)
        atomic_fetch_add(&t->failed, 1);
    atomic_fetch_add(&t->done, 1);
}

typedef struct stream {
    udb_env *env;
    tally t;
    atomic_bool stop;
    atomic_int queued;
} stream;

/* Another open that keeps units in flight the whole time. */
static void *stream_units(void *arg)
{
    stream *st = arg;
    for (int i = 0; !atomic_load(&st->stop); i++) {
        char name[32];
        snprintf(name, sizeof name, "s%d", i);
        if (async_put(st->env, name, slow_done, &st->t) == 0)
            atomic_fetch_add(&st->queued, 1);
        sup_sleep_us(200);
    }
    return NULL;
}

#define MY_UNITS 50

/* udb_close returns once the units queued through it are done (each done()
 * called), as it promises -- also when it only gives up one of two opens --
 * and does not wait for the other open's units, which keep coming. */
static void t_close_waits_for_its_async_units(tu *t)
{
    udb_env *env = setup(t);
    if (!env)
        return;
    udb_env *mine = open_db(t->path);
    if (!CHECK(mine == env))
        return;
    stream st = {env, {0, 0}, false, 0};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, stream_units, &st) == 0);
    while (atomic_load(&st.queued) < 10)
        sup_sleep_us(1000);
    tally my = {0, 0};
    for (int i = 0; i < MY_UNITS; i++)
        CHECK_OK(async_put(mine, tu_fmt("m%d", i), slow_done, &my));
    udb_close(mine);
    CHECK(atomic_load(&my.done) == MY_UNITS);
    CHECK(atomic_load(&my.failed) == 0);
    /* the other open's units were still coming: this close did not wait for them */
    int queued = atomic_load(&st.queued);
    sup_sleep_us(20000);
    CHECK(atomic_load(&st.queued) > queued);
    atomic_store(&st.stop, true);
    pthread_join(th, NULL);
    CHECK_OK(udb_exec_async_wait(env));
    CHECK(atomic_load(&st.t.done) == atomic_load(&st.queued));
    CHECK(atomic_load(&st.t.failed) == 0);
    CHECK(count(env) == (size_t)(MY_UNITS + atomic_load(&st.queued)));
}

/* ---- options of a second open ---- */

static int open_opts(udb_env **out, const char *path, unsigned flags, size_t max_map,
                     unsigned grow_wait, unsigned max_dbs, size_t map)
{
    udb_options o = UDB_OPTIONS_INIT;
    o.flags = flags;
    o.max_map_size = max_map;
    o.grow_wait_ms = grow_wait;
    o.max_dbs = max_dbs;
    o.map_size = map;
    return udb_open(out, path, &o);
}

static void t_second_open_needs_same_options(tu *t)
{
    udb_env *env = setup(t);
    if (!env)
        return;
    udb_close(env);
    t->env = NULL;
    udb_env *a = NULL, *b = NULL;
    if (!CHECK_OK(open_opts(&a, t->path, UDB_NOGROUP, (size_t)1 << 30, 2000, 0, 0)))
        return;
    t->env = a;
    /* refused, naming what differs; a stays as it was */
    CHECK_RC(open_opts(&b, t->path, 0, (size_t)1 << 30, 2000, 0, 0), UDB_EINVAL);
    CHECK_HAS(udb_env_errmsg(NULL), "already open in this process", "UDB_NOGROUP", "0x4");
    CHECK_RC(open_opts(&b, t->path, UDB_NOGROUP | UDB_NOSYNC, (size_t)1 << 30, 2000, 0, 0),
             UDB_EINVAL);
    CHECK_HAS(udb_env_errmsg(NULL), "differ in UDB_NOSYNC)");
    CHECK_RC(open_opts(&b, t->path, UDB_NOGROUP | UDB_RDONLY_ENV, (size_t)1 << 30, 2000, 0, 0),
             UDB_EINVAL);
    CHECK_HAS(udb_env_errmsg(NULL), "UDB_RDONLY_ENV");
    CHECK_RC(open_opts(&b, t->path, UDB_NOMETASYNC | UDB_NOSHIP, (size_t)1 << 30, 2000, 0, 0),
             UDB_EINVAL);
    CHECK_HAS(udb_env_errmsg(NULL), "UDB_NOMETASYNC, UDB_NOGROUP, UDB_NOSHIP");
    CHECK_RC(open_opts(&b, t->path, UDB_NOGROUP, 0, 2000, 0, 0), UDB_EINVAL);
    CHECK_HAS(udb_env_errmsg(NULL), "max_map_size 1073741824", "asks for 0");
    CHECK_RC(open_opts(&b, t->path, UDB_NOGROUP, (size_t)1 << 30, 0, 0, 0), UDB_EINVAL);
    CHECK_HAS(udb_env_errmsg(NULL), "grow_wait_ms 2000", "asks for 10000");
    CHECK_RC(open_opts(&b, t->path, UDB_NOGROUP, (size_t)1 << 30, 2000, 100000, 0), UDB_EINVAL);
    CHECK_HAS(udb_env_errmsg(NULL), "max_dbs 100000", "cannot grow while it is open");
    udb_options lw = UDB_OPTIONS_INIT;
    lw.flags = UDB_NOGROUP;
    lw.max_map_size = (size_t)1 << 30;
    lw.grow_wait_ms = 2000;
    lw.lock_wait_ms = 500;
    CHECK_RC(udb_open(&b, t->path, &lw), UDB_EINVAL);
    CHECK_HAS(udb_env_errmsg(NULL), "lock_wait_ms 0", "asks for 500");
    CHECK(b == NULL);
    CHECK_OK(put(a, "still-works"));
    /* the same options share; map_size and mode shape a new file: not compared,
       nor a max_dbs the environment has room for */
    if (CHECK_OK(open_opts(&b, t->path, UDB_NOGROUP, (size_t)1 << 30, 2000, 8, 12345))) {
        CHECK(b == a);
        CHECK_OK(put(b, "shared"));
        udb_close(b);
    }
    CHECK(count(a) == 2);
}

/* ---- (d) threads opening and closing at once ---- */

#define CHURN_THREADS 8
#define CHURN_ROUNDS 200
#define CHURN_CHILD 40

typedef struct churn {
    const char *path;
    int thread, rounds;
    atomic_int *failed;
} churn;

static void *churn_thread(void *arg)
{
    churn *c = arg;
    for (int i = 0; i < c->rounds; i++) {
        char name[32];
        snprintf(name, sizeof name, "t%d-%d", c->thread, i);
        udb_env *env = NULL;
        int rc = udb_open(&env, c->path, NULL);
        if (rc == 0)
            rc = put(env, name);
        if (rc) {
            fprintf(stderr, "thread %d round %d: %s: %s\n", c->thread, i, udb_strerror(rc),
                    udb_env_errmsg(NULL));
            atomic_fetch_add(c->failed, 1);
        }
        udb_close(env);
    }
    return NULL;
}

static int churn_child(const char *path, int rounds)
{
    int bad = 0;
    for (int i = 0; i < rounds; i++) {
        char name[32];
        snprintf(name, sizeof name, "x-%d", i);
        udb_env *env = open_db(path);
        if (!env || put(env, name) != 0)
            bad++;
        udb_close(env);
    }
    return bad > 99 ? 99 : bad;
}

/* 8 threads each open, write and close 200 times, so the environment is
 * shared, closed by the last thread and opened again by the next, while
 * another process writes too: every write there, udb_check clean. */
static void t_threads_open_write_close(tu *t)
{
    udb_env *env = setup(t);
    if (!env)
        return;
    udb_close(env);
    t->env = NULL;
    int rounds = CHURN_ROUNDS * scale(), child_rounds = CHURN_CHILD * scale();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        _exit(churn_child(t->path, child_rounds));
    atomic_int failed = 0;
    churn c[CHURN_THREADS];
    pthread_t th[CHURN_THREADS];
    for (int i = 0; i < CHURN_THREADS; i++) {
        c[i] = (churn){t->path, i, rounds, &failed};
        CHECK(pthread_create(&th[i], NULL, churn_thread, &c[i]) == 0);
    }
    for (int i = 0; i < CHURN_THREADS; i++)
        pthread_join(th[i], NULL);
    int st = -1;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(atomic_load(&failed) == 0);
    env = t->env = open_db(t->path);
    if (!CHECK(env))
        return;
    CHECK(count(env) == (size_t)(CHURN_THREADS * rounds + child_rounds));
}

static void *open_read_close_thread(void *arg)
{
    churn *c = arg;
    for (int i = 0; i < c->rounds; i++) {
        udb_env *env = NULL;
        udb_txn *r = NULL;
        int rc = udb_open(&env, c->path, NULL);
        if (rc == 0 && (rc = udb_begin(&r, env, UDB_RDONLY)) == 0)
            udb_abort(r);
        if (rc) {
            fprintf(stderr, "thread %d round %d: %s: %s\n", c->thread, i, udb_strerror(rc),
                    udb_env_errmsg(NULL));
            atomic_fetch_add(c->failed, 1);
        }
        udb_close(env);
    }
    return NULL;
}

/* The same without writes, so that closes of the last handle and opens meet
 * often (an open then waits for the close and opens anew). */
static void t_threads_open_close(tu *t)
{
    udb_env *env = setup(t);
    if (!env)
        return;
    udb_close(env);
    t->env = NULL;
    atomic_int failed = 0;
    churn c[CHURN_THREADS];
    pthread_t th[CHURN_THREADS];
    for (int i = 0; i < CHURN_THREADS; i++) {
        c[i] = (churn){t->path, i, 300 * scale(), &failed};
        CHECK(pthread_create(&th[i], NULL, open_read_close_thread, &c[i]) == 0);
    }
    for (int i = 0; i < CHURN_THREADS; i++)
        pthread_join(th[i], NULL);
    CHECK(atomic_load(&failed) == 0);
    t->env = open_db(t->path);
    CHECK(t->env);
}

/* ---- (e) fork ---- */

typedef struct opener {
    const char *path;
    atomic_bool stop;
    atomic_int failed;
} opener;

static void *open_close_loop(void *arg)
{
    opener *o = arg;
    while (!atomic_load(&o->stop)) {
        udb_env *env = NULL;
        if (udb_open(&env, o->path, NULL) != 0)
            atomic_fetch_add(&o->failed, 1);
        udb_close(env);
    }
    return NULL;
}

#define FORKS 20

static int forked_child(const char *path, udb_env *inherited, int i)
{
    alarm(20);      /* a table lock left held across fork would hang us */
    /* without fsync: a flush held up by a loaded disk is not what this waits for */
    udb_options o = UDB_OPTIONS_INIT;
    o.flags = UDB_NOSYNC;
    udb_env *env = NULL;
    if (udb_open(&env, path, &o) != 0)
        return 2;
    if (env == inherited)
        return 3;   /* the parent's environment: LMDB forbids using it here */
    char name[32];
    snprintf(name, sizeof name, "f%d", i);
    int rc = put(env, name);
    udb_close(env);
    return rc ? 4 : 0;
}

/* A forked child that opens the database gets an environment of its own,
 * and works, even when fork() comes while another thread opens and closes
 * the same database (the table's lock held at that moment). */
static void t_forked_child_opens_its_own(tu *t)
{
    udb_env *env = setup(t);
    if (!env)
        return;
    opener o = {t->path, false, 0};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, open_close_loop, &o) == 0);
    const char *names[FORKS];
    for (int i = 0; i < FORKS; i++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0)
            _exit(forked_child(t->path, env, i));
        int st = -1;
        CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
        if (!CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0))
            fprintf(stderr, "  child %d: status 0x%x\n", i, st);
        names[i] = tu_fmt("f%d", i);
    }
    atomic_store(&o.stop, true);
    pthread_join(th, NULL);
    CHECK(atomic_load(&o.failed) == 0);
    CHECK(missing(env, names, FORKS) == 0);
}

TU_MAIN(TU_CASE(t_close_second_keeps_locks), TU_CASE(t_control_unshared_loses),
        TU_CASE(t_close_second_then_many_writers), TU_CASE(t_path_spellings_share),
        TU_CASE(t_removed_and_recreated_is_another),
        TU_CASE(t_close_first_then_second), TU_CASE(t_close_second_then_first),
        TU_CASE(t_close_waits_for_its_async_units), TU_CASE(t_second_open_needs_same_options),
        TU_CASE(t_threads_open_write_close), TU_CASE(t_threads_open_close),
        TU_CASE(t_forked_child_opens_its_own))
