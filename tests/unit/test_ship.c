/*
 * test_ship.c -- udb_exec() units shipped between processes (engine/lmdb/ship.h):
 * a unit another process's leader runs gives its caller the same results as
 * one run at home -- records, sequence values, the failed op and its
 * conflict detail --; a response too large for a slot comes back unrun and
 * is run by its owner; a unit too large for a slot is never queued; and many
 * processes writing at once all get their units, each exactly once.  A
 * leader killed mid-batch is the race suite's (race_leaderkill).
 *
 * To make a unit travel for certain, the test process takes the lead lock
 * itself, lets a thread of its own and a child process queue one unit each,
 * then lets go: whichever of them leads next runs both, so exactly one unit
 * is run by a process other than its own.
 *
 * Many units in flight in a process while another process leads all go to
 * that leader's batch, each through its own slot, rather than waiting in
 * their own process for a batch of their own (ship_inflight_joins_leader).
 *
 * The lead lock and the write gate are xlocks (engine/lmdb/xlock.h): a lock
 * in shared memory that a holder's death -- a thread's or a process's --
 * lets go.  xlock_* below hold one in a thread that returns, and in a child
 * killed with SIGKILL; their negative control is the same lock made fragile
 * (not robust), which the dead holder keeps.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <errno.h>
#include <signal.h>
#include <sys/mman.h>

#include "env.h"
#include "ship.h"
#include "support.h"
#include "testutil.h"
#include "xlock.h"

static const char *const SCHEMA =
    "{`types`: {"
    "`item`: {`key`: `id`, `fields`: {`id`: {`type`: `uint`},"
    "  `no`: {`type`: `uint`}, `email`: {`type`: `str`}, `pad`: {`type`: `str`}},"
    "  `unique`: {`email`: {`fields`: [`email`]}}}"
    "}}";

static udb_op insert_op(udb_val rec)
{
    udb_op o = UDB_OP_INIT;
    o.kind = UDB_OP_INSERT;
    o.type = "item";
    o.rec = rec;
    return o;
}

static void counts(udb_env *env, uint64_t c[UDB_SHIP_NCOUNTS])
{
    udb__ship_counts(udb__env_ship(env), c);
}

/* ---- many processes ---------------------------------------------------------- */

enum { PROCS = 6, UNITS = 100 };

/* One child: UNITS units of [seq_next, insert fed by it]; exit status = the
 * number of wrong results. */
static int child_units(const char *path, int proc)
{
    udb_env *env;
    if (udb_open(&env, path, NULL))
        return 100;
    int bad = 0;
    char pad[200];
    memset(pad, 'p', sizeof pad - 1);
    pad[sizeof pad - 1] = 0;
    for (int i = 0; i < UNITS; i++) {
        udb_op ops[2] = {UDB_OP_INIT, UDB_OP_INIT};
        ops[0].kind = UDB_OP_SEQ_NEXT;
        ops[0].seq = "ticket";
        ops[1] = insert_op(mp("{s:U, s:s}", "id", (unsigned long long)(proc * 1000 + i), "pad",
                              pad));
        ops[1].seq_field = "no";
        ops[1].seq_op = 0;
        udb_results *res;
        int rc = udb_exec(&res, env, ops, 2);
        const udb_result *r0 = udb_result_at(res, 0), *r1 = udb_result_at(res, 1);
        if (rc || !r0 || !r1 || !r1->created || !r0->value ||
            tu_fu(r1->record, "no") != r0->value ||
            tu_fu(r1->record, "id") != (uint64_t)(proc * 1000 + i)) {
            fprintf(stderr, "proc %d unit %d: rc %d (%s)\n", proc, i, rc, udb_env_errmsg(env));
            bad++;
        }
        udb_results_free(res);
    }
    udb_close(env);
    return bad > 99 ? 99 : bad;
}

static void ship_many_processes(tu *t)
{
    udb_env *env = tu_setup(t, SCHEMA);
    pid_t pids[PROCS];
    fflush(NULL);
    for (int p = 0; p < PROCS; p++) {
        pids[p] = fork();
        if (pids[p] == 0)
            _exit(child_units(t->path, p));
    }
    for (int p = 0; p < PROCS; p++) {
        int st = -1;
        CHECK(pids[p] > 0 && waitpid(pids[p], &st, 0) == pids[p]);
        if (!CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0))
            fprintf(stderr, "  child %d: status 0x%x\n", p, st);
    }
    /* every unit once: PROCS x UNITS records, their numbers exactly 1..N */
    udb_txn *r = tu_r(t);
    CHECK(tu_count(r, "item") == PROCS * UNITS);
    static char seen[PROCS * UNITS + 1];
    memset(seen, 0, sizeof seen);
    size_t wrong = 0;
    for (int p = 0; p < PROCS; p++) {
        for (int i = 0; i < UNITS; i++) {
            udb_val rec;
            if (tu_get(&rec, r, "item", mp("U", (unsigned long long)(p * 1000 + i)))) {
                wrong++;
                continue;
            }
            uint64_t no = tu_fu(rec, "no");
            if (no < 1 || no > PROCS * UNITS || seen[no]++)
                wrong++;
        }
    }
    CHECK(wrong == 0);
    tu_abort(r);
    uint64_t c[UDB_SHIP_NCOUNTS];
    counts(env, c);
    printf("  %d units: %llu run through a slot, %llu by another process's leader\n",
           PROCS * UNITS, (unsigned long long)c[UDB_SHIP_RUN],
           (unsigned long long)c[UDB_SHIP_FOREIGN]);
    CHECK(c[UDB_SHIP_FOREIGN] > 0);
    CHECK(c[UDB_SHIP_BOUNCE] == 0 && c[UDB_SHIP_RERUN] == 0 && c[UDB_SHIP_EARLIER] == 0);
    /* every slot taken was given back, and counted back: the leaders' scans
       are skipped again (a count left high would only cost scans; one gone
       below the slots in use would skip queued units) */
    CHECK(udb__ship_busy(udb__env_ship(env)) == 0);
}

/* ---- one unit here, one in a child, while this process holds the lead ---------- */

typedef struct unit_run {
    udb_env *env;
    const udb_op *ops;
    size_t n;
    int rc;
    udb_results *res;
} unit_run;

static void *exec_thread(void *arg)
{
    unit_run *u = arg;
    u->rc = udb_exec(&u->res, u->env, u->ops, u->n);
    return NULL;
}

typedef bool (*child_check)(int rc, const udb_results *res, udb_env *env);

/* Take the lead lock, then fork.  In the child (0 returned) *child_env is
 * the database opened again; -1: no lock or no child (nothing to undo). */
static pid_t lead_then_fork(tu *t, udb_env **child_env)
{
    udb_ship *ship = udb__env_ship(t->env);
    if (!CHECK(udb__ship_lead(ship)))
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0 && udb_open(child_env, t->path, NULL))
        _exit(3);
    if (!CHECK(pid >= 0))
        udb__ship_unlead(ship);
    return pid;
}

/* The child runs ops through udb_exec and reports check()'s verdict as its
 * exit status; a thread of ours runs `mine` meanwhile.  Both are queued
 * before we let go of the lead.  queue_child: whether the child's unit is
 * expected to queue (a unit too big for a slot is not).  The counts after. */
static void pair(tu *t, const udb_op *ops, size_t n, child_check check, bool queue_child,
                 uint64_t c[UDB_SHIP_NCOUNTS])
{
    udb_ship *ship = udb__env_ship(t->env);
    udb_env *env;
    pid_t pid = lead_then_fork(t, &env);
    if (pid < 0)
        return;
    if (pid == 0) {
        udb_results *res;
        int rc = udb_exec(&res, env, ops, n);
        bool ok = check(rc, res, env);
        udb_results_free(res);
        udb_close(env);
        _exit(ok ? 0 : 1);
    }
    udb_op mine = insert_op(mp("{s:U}", "id", (unsigned long long)777));
    unit_run me = {t->env, &mine, 1, -1, NULL};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, exec_thread, &me) == 0);
    unsigned want = queue_child ? 2 : 1;
    for (int i = 0; i < 5000 && udb__ship_queued(ship) < want; i++)
        sup_sleep_us(1000);
    CHECK(udb__ship_queued(ship) == want);
    sup_sleep_us(50000);   /* a child whose unit cannot queue is now waiting for the lock */
    udb__ship_unlead(ship);
    pthread_join(th, NULL);
    CHECK_OK(me.rc);
    CHECK(me.res && udb_result_at(me.res, 0)->created == 1);
    udb_results_free(me.res);
    int st = -1;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    counts(t->env, c);
}

static bool conflict_check(int rc, const udb_results *res, udb_env *env)
{
    const udb_result *r = udb_result_at(res, 1);
    bool ok = rc == UDB_ECONFLICT && udb_results_failed(res) == 1 && r && r->rc == UDB_ECONFLICT &&
              r->conflict && strcmp(tu_conflict_of(r->conflict),
                                    "item: email(email)=[\"a@x\"] held by 1") == 0 &&
              strstr(udb_env_errmsg(env), "ops[1] (insert)") != NULL &&
              udb_result_at(res, 0)->record.data == NULL;
    if (!ok)
        fprintf(stderr, "child: rc %d failed %zu conflict '%s' msg '%s'\n", rc,
                udb_results_failed(res), r && r->conflict ? tu_conflict_of(r->conflict) : "-",
                udb_env_errmsg(env));
    return ok;
}

/* A unit that fails in another process's batch fails for its caller exactly
 * as at home: the failed op, its conflict detail, nothing written. */
static void ship_failure_travels(tu *t)
{
    tu_setup(t, SCHEMA);
    udb_txn *w = tu_w(t);
    CHECK_OK(tu_ins(NULL, w, "item", mp("{s:U, s:s}", "id", 1ull, "email", "a@x")));
    tu_commit(w);
    udb_op ops[2] = {insert_op(mp("{s:U, s:s}", "id", 2ull, "email", "b@x")),
                     insert_op(mp("{s:U, s:s}", "id", 3ull, "email", "a@x"))};
    uint64_t c[UDB_SHIP_NCOUNTS] = {0};
    pair(t, ops, 2, conflict_check, true, c);
    CHECK(c[UDB_SHIP_RUN] == 2 && c[UDB_SHIP_FOREIGN] == 1);
    udb_txn *r = tu_r(t);
    CHECK(tu_count(r, "item") == 2);   /* 1 and the thread's 777: nothing of the unit */
    tu_abort(r);
}

static char big[12000];

static bool big_record_check(int rc, const udb_results *res, udb_env *env)
{
    const udb_result *r0 = udb_result_at(res, 0), *r1 = udb_result_at(res, 1);
    bool ok = rc == 0 && r0 && r1 && r0->created == 0 && r1->created == 0 &&
              strlen(tu_field(r1->record, "pad")) == strlen(big) + 2;
    if (!ok)
        fprintf(stderr, "child: rc %d (%s)\n", rc, udb_env_errmsg(env));
    return ok;
}

/* Two insert_or_get of an existing 12 KB record: a response of ~24 KB does
 * not fit a slot; the unit comes back unrun and its owner runs it.  (Held
 * keys are answered without a write or a slot: the test makes it ship.) */
static void ship_big_response_bounces(tu *t)
{
    tu_setup(t, SCHEMA);
    memset(big, 'x', sizeof big - 1);
    udb_val rec = mp("{s:U, s:s, s:s}", "id", 5ull, "email", "big@x", "pad", big);
    udb_txn *w = tu_w(t);
    CHECK_OK(tu_ins(NULL, w, "item", rec));
    tu_commit(w);
    udb_op ops[2] = {insert_op(mp("{s:U, s:s}", "id", 6ull, "email", "big@x")),
                     insert_op(mp("{s:U, s:s}", "id", 7ull, "email", "big@x"))};
    for (int i = 0; i < 2; i++) {
        ops[i].kind = UDB_OP_INSERT_OR_GET;
        ops[i].index = "email";
    }
    uint64_t c[UDB_SHIP_NCOUNTS] = {0};
    udb__ship_set_test_flags(UDB_SHIP_TEST_NO_HELD);
    pair(t, ops, 2, big_record_check, true, c);
    udb__ship_set_test_flags(0);
    CHECK(c[UDB_SHIP_BOUNCE] == 1);
}

static bool inserted_check(int rc, const udb_results *res, udb_env *env)
{
    const udb_result *r = udb_result_at(res, 0);
    bool ok = rc == 0 && r && r->created == 1 && tu_fu(r->record, "id") == 9;
    if (!ok)
        fprintf(stderr, "child: rc %d (%s)\n", rc, udb_env_errmsg(env));
    return ok;
}

/* A unit larger than a slot is never queued: its caller waits to lead. */
static void ship_big_unit_not_queued(tu *t)
{
    tu_setup(t, SCHEMA);
    static char pad[20000];
    memset(pad, 'y', sizeof pad - 1);
    udb_op op = insert_op(mp("{s:U, s:s}", "id", 9ull, "pad", pad));
    uint64_t c[UDB_SHIP_NCOUNTS] = {0};
    pair(t, &op, 1, inserted_check, false, c);
    CHECK(c[UDB_SHIP_RUN] == 1);   /* the thread's unit alone went through a slot */
    udb_txn *r = tu_r(t);
    CHECK(tu_count(r, "item") == 2);
    tu_abort(r);
}

/* ---- many units in flight while another process leads -------------------------- */

enum { INFLIGHT = 16 };

static _Atomic int async_bad, async_done;

static pthread_mutex_t async_mu = PTHREAD_MUTEX_INITIALIZER;

static void async_checked(int rc, udb_results *res, const char *errmsg, void *payload)
{
    pthread_mutex_lock(&async_mu);   /* tu_fu keeps what it renders: not thread-safe */
    const udb_result *r = udb_result_at(res, 0);
    if (rc || !r || r->created != 1 || tu_fu(r->record, "id") != (uintptr_t)payload) {
        fprintf(stderr, "child: unit %zu: rc %d (%s)\n", (size_t)(uintptr_t)payload, rc, errmsg);
        async_bad++;
    }
    async_done++;
    udb_results_free(res);
    pthread_mutex_unlock(&async_mu);
}

/* The record is built before the thread starts: testutil's buffers are not
 * thread-safe, and the async callbacks use them meanwhile. */
static udb_val rec_999;

static int write_999(udb_txn *txn, void *ctx)
{
    (void)ctx;
    return tu_ins(NULL, txn, "item", rec_999);
}

static void *write_thread(void *arg)
{
    return (void *)(intptr_t)udb_write(arg, write_999, NULL);
}

/* A child with INFLIGHT udb_exec_async() units in flight while this process
 * holds the lead and a udb_write() of the child leads the child's own queue
 * (waiting for the lead: a udb_write callback cannot travel): every unit is
 * queued in a slot for the leader's next batch, and each gets its result
 * once that batch is durable.  Before, they waited in the child's queue
 * behind the udb_write, to commit as a batch of the child's own. */
static void ship_inflight_joins_leader(tu *t)
{
    tu_setup(t, SCHEMA);
    udb_ship *ship = udb__env_ship(t->env);
    udb_env *env;
    pid_t pid = lead_then_fork(t, &env);
    if (pid < 0)
        return;
    if (pid == 0) {
        rec_999 = mp("{s:U}", "id", 999ull);
        udb_op ops[INFLIGHT];
        for (uintptr_t i = 1; i <= INFLIGHT; i++)
            ops[i - 1] = insert_op(mp("{s:U}", "id", (unsigned long long)i));
        pthread_t w;
        if (pthread_create(&w, NULL, write_thread, env))
            _exit(5);
        sup_sleep_us(20000);   /* it leads the child's queue, waiting for the lead */
        for (uintptr_t i = 1; i <= INFLIGHT; i++)
            if (udb_exec_async(env, &ops[i - 1], 1, async_checked, (void *)i))
                _exit(4);
        udb_exec_async_wait(env);
        void *wrc;
        pthread_join(w, &wrc);
        udb_close(env);
        _exit(async_bad || async_done != INFLIGHT || wrc ? 1 : 0);
    }
    for (int i = 0; i < 5000 && udb__ship_queued(ship) < INFLIGHT; i++)
        sup_sleep_us(1000);
    unsigned queued = udb__ship_queued(ship);
    printf("  %u of %d units in flight queued for the leader\n", queued, INFLIGHT);
    CHECK(queued == INFLIGHT);
    udb__ship_unlead(ship);
    int st = -1;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    uint64_t c[UDB_SHIP_NCOUNTS];
    counts(t->env, c);
    CHECK(c[UDB_SHIP_RUN] == INFLIGHT && c[UDB_SHIP_BOUNCE] == 0);
    CHECK(udb__ship_busy(ship) == 0);
    udb_txn *r = tu_r(t);
    CHECK(tu_count(r, "item") == INFLIGHT + 1);
    tu_abort(r);
}

/* One process alone, many units in flight: its leaders never wait for units
 * of other processes.  Each leader used to expect as many shipped units as
 * the last batch had units beyond its own queue -- from the process's own
 * last batch too, which nobody ships to -- and waited a fraction of a commit
 * for them at nearly every batch (a fifth of the cycle of `1 proc x64`). */
static void ship_alone_does_not_gather(tu *t)
{
    enum { UNITS_ALONE = 400 };
    tu_setup(t, SCHEMA);
    udb_op *ops = calloc(UNITS_ALONE, sizeof *ops);
    CHECK(ops != NULL);
    if (!ops)
        return;
    for (uintptr_t i = 1; i <= UNITS_ALONE; i++)
        ops[i - 1] = insert_op(mp("{s:U}", "id", (unsigned long long)i));
    async_bad = async_done = 0;
    for (uintptr_t i = 1; i <= UNITS_ALONE; i++)
        CHECK(udb_exec_async(t->env, &ops[i - 1], 1, async_checked, (void *)i) == 0);
    udb_exec_async_wait(t->env);
    free(ops);
    CHECK(async_bad == 0 && async_done == UNITS_ALONE);
    uint64_t c[UDB_SHIP_NCOUNTS];
    counts(t->env, c);
    printf("  %d units: the leaders waited for shipped units %llu times\n", UNITS_ALONE,
           (unsigned long long)c[UDB_SHIP_GATHER]);
    CHECK(c[UDB_SHIP_GATHER] == 0);
    CHECK(udb__ship_busy(udb__env_ship(t->env)) == 0);   /* no slot was used */
}

/* A child's insert_or_get of a key held already, while this process leads:
 * true if it returned within ms (answered from a read snapshot, no slot
 * queued), false if it waited -- queued for our batch, which never comes
 * until we let go.  test_flags go to the child. */
static bool held_answered_while_led(tu *t, unsigned test_flags, int ms)
{
    tu_setup(t, SCHEMA);
    udb_txn *w = tu_w(t);
    CHECK_OK(tu_ins(NULL, w, "item", mp("{s:U, s:s}", "id", 1ull, "email", "a@x")));
    tu_commit(w);
    udb_op op = insert_op(mp("{s:U, s:s}", "id", 2ull, "email", "a@x"));
    op.kind = UDB_OP_INSERT_OR_GET;
    op.index = "email";
    udb_ship *ship = udb__env_ship(t->env);
    udb_env *env;
    pid_t pid = lead_then_fork(t, &env);
    if (pid < 0)
        return false;
    if (pid == 0) {
        /* a queued unit is never taken back (the lead is held without a
           write transaction, as a stopped leader's would be) */
        udb__ship_set_test_flags(test_flags | UDB_SHIP_TEST_NO_BOUND);
        udb_results *res;
        int rc = udb_exec(&res, env, &op, 1);
        const udb_result *r = udb_result_at(res, 0);
        bool ok = !rc && r && r->created == 0 && tu_fu(r->record, "id") == 1;
        udb_results_free(res);
        udb_close(env);
        _exit(ok ? 0 : 1);
    }
    int st = -1;
    pid_t got = 0;
    for (int i = 0; i < ms && (got = waitpid(pid, &st, WNOHANG)) == 0; i++)
        sup_sleep_us(1000);
    unsigned queued = udb__ship_queued(ship);
    udb__ship_unlead(ship);
    if (got != pid)
        CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);   /* either way: the holder, created 0 */
    printf("  the held key's answer %s while another process led (%u queued)\n",
           got == pid ? "came" : "waited", queued);
    return got == pid && queued == 0;
}

/* A unit of held keys writes nothing: it needs no commit, so it is neither
 * queued for another process's batch nor waits for one. */
static void ship_held_key_not_shipped(tu *t)
{
    CHECK(held_answered_while_led(t, 0, 5000));
}

/* Negative control: run as a write, the same unit is queued and waits. */
static void ship_control_held_key_shipped(tu *t)
{
    CHECK(!held_answered_while_led(t, UDB_SHIP_TEST_NO_HELD, 1000));
}

/* ---- xlock ---- */

/* An xlock in memory shared with children, as the sync file's mapping is. */
static udb_xlock *xlock_new(bool fragile)
{
    udb_xlock *l = mmap(NULL, sizeof *l, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                        -1, 0);
    if (l == MAP_FAILED)
        return NULL;
    udb__xlock_set_fragile(fragile);
    int rc = udb__xlock_init(l);
    udb__xlock_set_fragile(false);
    if (rc) {
        munmap(l, sizeof *l);
        return NULL;
    }
    return l;
}

static void *take_and_return(void *arg)
{
    return (void *)(intptr_t)udb__xlock_take(arg, UDB_XLOCK_TRY);   /* never dropped */
}

static void *take_for_a_while(void *arg)
{
    udb_xlock *l = arg;
    uint64_t t0 = sup_now_us();
    int rc = udb__xlock_take(l, 30000000);   /* 30 ms */
    uint64_t took = sup_now_us() - t0;
    if (!rc)
        udb__xlock_drop(l);
    return (void *)(intptr_t)(rc == EBUSY && took >= 25000 ? 0 : rc ? rc : -1);
}

/* Held: others wait (a limit ends the wait with EBUSY) and see it busy. */
static void xlock_waits_and_times_out(tu *t)
{
    (void)t;
    udb_xlock *l = xlock_new(false);
    if (!CHECK(l != NULL))
        return;
    CHECK(!udb__xlock_busy(l));
    CHECK_RC(udb__xlock_take(l, UDB_XLOCK_TRY), 0);
    CHECK(udb__xlock_busy(l));
    pthread_t th;
    void *got = NULL;
    CHECK(pthread_create(&th, NULL, take_for_a_while, l) == 0 && pthread_join(th, &got) == 0);
    CHECK(got == NULL);   /* EBUSY, after its 30 ms */
    udb__xlock_drop(l);
    CHECK(!udb__xlock_busy(l));
    CHECK_RC(udb__xlock_take(l, 1000000), 0);
    udb__xlock_drop(l);
    munmap(l, sizeof *l);
}

/* A holder that dies: a thread that returns holding it, then a process
 * killed holding it.  The next taker has it at once.  Fragile (the control),
 * the dead holder keeps it. */
static void dead_holder(bool fragile)
{
    udb_xlock *l = xlock_new(fragile);
    if (!CHECK(l != NULL))
        return;
    pthread_t th;
    void *got = (void *)1;
    CHECK(pthread_create(&th, NULL, take_and_return, l) == 0 && pthread_join(th, &got) == 0);
    CHECK(got == NULL);
    int rc = udb__xlock_take(l, 200000000);   /* 200 ms */
    CHECK_RC(rc, fragile ? EBUSY : 0);
    if (!rc)
        udb__xlock_drop(l);
    if (fragile) {   /* the thread's lock stays held: a new one for the process case */
        munmap(l, sizeof *l);
        if (!CHECK((l = xlock_new(true)) != NULL))
            return;
    }
    int ready[2];
    CHECK(pipe(ready) == 0);
    pid_t c = fork();
    if (c == 0) {
        char one = 1;
        if (udb__xlock_take(l, UDB_XLOCK_TRY) == 0 && write(ready[1], &one, 1) == 1)
            pause();
        _exit(1);
    }
    char b;
    CHECK(c > 0 && read(ready[0], &b, 1) == 1);
    CHECK(udb__xlock_busy(l));
    kill(c, SIGKILL);
    int st;
    waitpid(c, &st, 0);
    rc = udb__xlock_take(l, 200000000);
    CHECK_RC(rc, fragile ? EBUSY : 0);
    if (!rc)
        udb__xlock_drop(l);
    close(ready[0]);
    close(ready[1]);
    munmap(l, sizeof *l);
}

static void xlock_dead_holder_lets_go(tu *t)
{
    (void)t;
    dead_holder(false);
}

static void xlock_control_fragile_kept(tu *t)
{
    (void)t;
    dead_holder(true);
}

TU_MAIN(TU_CASE(ship_many_processes), TU_CASE(ship_inflight_joins_leader),
        TU_CASE(ship_held_key_not_shipped), TU_CASE(ship_control_held_key_shipped),
        TU_CASE(ship_alone_does_not_gather), TU_CASE(ship_failure_travels),
        TU_CASE(ship_big_response_bounces), TU_CASE(ship_big_unit_not_queued),
        TU_CASE(xlock_waits_and_times_out), TU_CASE(xlock_dead_holder_lets_go),
        TU_CASE(xlock_control_fragile_kept))
