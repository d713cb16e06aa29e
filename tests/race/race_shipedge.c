/*
 * race_shipedge.c -- the edges of shipping units between processes
 * (engine/lmdb/ship.h, engine/lmdb/sync.h): short-lived processes, stale unit records,
 * fork, a stopped leader, a writer killed inside its transaction, and a
 * shipped unit that fails.  Every process is real (fork), every kill a real
 * SIGKILL or SIGSTOP.  One mode per run:
 *
 *   --mode=stale      An earlier session left unit records in __meta for
 *                     every slot.  A new session: leader L takes follower
 *                     F's unit into its batch and is killed before the
 *                     commit; F leads, finds its unit orphaned, and must run
 *                     it again -- not take the earlier session's record for
 *                     its own.  Then F's acknowledged record must be there.
 *                     Control (--control): L writes those records under its
 *                     own session's id, as when the round restarted with the
 *                     session: F's acknowledged record is missing.
 *   --mode=deleted    Leader L of session A commits follower F's unit and is
 *                     killed before it publishes the outcome; meanwhile
 *                     sync.udb was deleted, and a session B in the new file
 *                     shipped 64 units through all 32 slots (rounds 1 and 2).
 *                     F leads in A, finds its orphan committed, and its unit
 *                     is there once.  Control: unit records name no session
 *                     (UDB_SHIP_TEST_ONE_SESSION, as before session ids): B's
 *                     records hide L's, and F's unit runs twice.
 *   --mode=short      6 short-lived processes (open, one udb_exec, close) at
 *                     once, one killed at a random 0-8 ms: every
 *                     acknowledged record is there once, none twice.
 *                     Control: a new leader takes every orphan for not
 *                     committed (UDB_SHIP_TEST_NO_RECORD): units run twice.
 *   --mode=fork       P opens, forks a child that opens too and lives on; P
 *                     is killed while it leads (or while it flushes outside
 *                     LMDB's lock): the lead lock must be free and another
 *                     process's writes must go through.  Control: the child
 *                     keeps P's file description (UDB_SYNC_TEST_FORK_KEEPS),
 *                     which holds the flush lock (an fcntl lock) of a P
 *                     killed while it flushes.  --fragile: the lead lock and
 *                     the gate are mutexes that are not robust (xlock.h):
 *                     a P killed while it leads holds the lead lock.
 *   --mode=stop       Leader L is stopped (SIGSTOP) while it holds the lead
 *                     lock: W's units must all commit while L stays stopped
 *                     (W takes its unit back after 20 ms here, not 0.25 s).
 *                     Control: W never takes back a queued unit
 *                     (UDB_SHIP_TEST_NO_BOUND).
 *   --mode=longread   Leader L holds a read transaction on another thread
 *                     when its batch (with W's unit in it) fills the map:
 *                     growing must wait for that reader, and W's unit must
 *                     not wait with it -- W's write commits while L's reader
 *                     is still open.  Control: L keeps the units it took
 *                     (UDB_SHIP_TEST_HOLD_UNITS).
 *   --mode=lockwait   udb_options.lock_wait_ms: while another process holds a
 *                     write transaction (running, then stopped with SIGSTOP),
 *                     a writer with a 100 ms limit fails with UDB_EBUSY, and
 *                     nothing is written, before the holder ends; once the
 *                     holder commits or is killed, the same writer succeeds.
 *                     --fragile (a control): the gate is not robust, and the
 *                     write after a killed holder fails.
 *   --mode=failack    F's shipped unit conflicts with L's insert in the same
 *                     batch: F's UDB_ECONFLICT is acknowledged only once that
 *                     batch is durable.  Control: F does not wait at all
 *                     (UDB_SYNC_TEST_NO_WAIT).
 *
 * --rounds=N (default 200).  Exit 0: every round held; 1: a round broke the
 * property (the message says which); 2: the test could not run.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <pthread.h>
#include <unistd.h>

#include <msgpack.h>

#include "env.h"
#include "layout.h"
#include "ship.h"
#include "support.h"
#include "txn.h"
#include "uniqdb.h"
#include "xlock.h"

static const char SCHEMA[] =
    "{\"types\": {\"rec\": {\"key\": \"id\", \"fields\": {"
    " \"id\": {\"type\": \"uint\", \"auto\": true},"
    " \"tag\": {\"type\": \"uint\", \"required\": true},"
    " \"email\": {\"type\": \"str\"}, \"blob\": {\"type\": \"bin\"}},"
    " \"unique\": {\"email\": {\"fields\": [\"email\"]}},"
    " \"indexes\": {\"by_tag\": {\"fields\": [\"tag\"]}}}}}";

enum { MAXTAGS = 1 << 14, NSHORT = 6 };

typedef struct shared {
    _Atomic int flag[4];            /* per-round hand-shakes between processes */
    _Atomic int rc[NSHORT];         /* a process's udb_exec result */
    _Atomic int created[NSHORT];
    _Atomic int done[NSHORT];
    _Atomic uint64_t orphans;       /* orphans a follower found (stale mode) */
    _Atomic int acked[MAXTAGS];     /* tag -> acknowledged created */
} shared;

static shared *sh;
static char path[512];
static int control;

static udb_env *open_env(void)
{
    udb_env *env;
    if (udb_open(&env, path, NULL)) {
        fprintf(stderr, "udb_open: %s\n", udb_env_errmsg(NULL));
        _exit(2);
    }
    return env;
}

/* One unit: insert {tag, email?}.  Its rc; *created from the result. */
static int insert(udb_env *env, unsigned tag, const char *email, int *created)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (email)
        sup_pack(&pk, "{s:U, s:s}", "tag", (unsigned long long)tag, "email", email);
    else
        sup_pack(&pk, "{s:U}", "tag", (unsigned long long)tag);
    udb_op op = UDB_OP_INIT;
    op.kind = UDB_OP_INSERT;
    op.type = "rec";
    op.rec.data = sb.data;
    op.rec.size = sb.size;
    udb_results *res = NULL;
    int rc = udb_exec(&res, env, &op, 1);
    const udb_result *r = udb_result_at(res, 0);
    *created = !rc && r && r->created == 1;
    udb_results_free(res);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static pid_t spawn(int (*fn)(int), int arg)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        _exit(fn(arg));
    if (pid < 0) {
        perror("fork");
        exit(2);
    }
    return pid;
}

static int reap(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Wait (up to ms) until flag i is set. */
static bool await_flag(int i, int ms)
{
    for (int k = 0; k < ms * 10; k++) {
        if (atomic_load(&sh->flag[i]))
            return true;
        sup_sleep_us(100);
    }
    return false;
}

/* Wait (up to 10 s) until a process leads a batch: false if none did by
 * then (one that led and finished while this process was not scheduled). */
static bool await_leader(udb_ship *ship)
{
    for (int k = 0; k < 200000; k++) {
        if (udb__ship_leader(ship))
            return true;
        sup_sleep_us(50);
    }
    return false;
}

/* The records as a count per tag; 0, or 1 with a message. */
static int count_tags(unsigned *counts, size_t ntags)
{
    memset(counts, 0, ntags * sizeof *counts);
    udb_env *env;
    if (udb_open(&env, path, NULL))
        return fprintf(stderr, "verify: udb_open: %s\n", udb_env_errmsg(NULL)), 1;
    udb_txn *txn = NULL;
    udb_cursor *cur;
    int rc = udb_begin(&txn, env, UDB_RDONLY);
    if (!rc && (rc = udb_scan(&cur, txn, "rec", NULL, NULL, 0)) == 0) {
        udb_val v;
        while ((rc = udb_cursor_next(&v, cur)) == 0) {
            msgpack_unpacked u;
            const msgpack_object *tag = NULL;
            if (!sup_unpack(&u, v.data, v.size))
                tag = sup_map_get(&u.data, "tag");
            if (tag && tag->type == MSGPACK_OBJECT_POSITIVE_INTEGER && tag->via.u64 < ntags)
                counts[tag->via.u64]++;
            msgpack_unpacked_destroy(&u);
        }
        udb_cursor_close(cur);
        rc = rc == UDB_ENOTFOUND ? 0 : rc;
    }
    if (txn)
        udb_abort(txn);
    size_t problems = 0;
    if (!rc)
        rc = udb_check(&problems, env, NULL, NULL);
    udb_close(env);
    if (rc || problems)
        return fprintf(stderr, "verify: rc %d, udb_check: %zu problems\n", rc, problems), 1;
    return 0;
}

/* Every acknowledged tag once, no tag twice. */
static int verify_acked(unsigned ntags, int round)
{
    static unsigned counts[MAXTAGS];
    if (count_tags(counts, ntags))
        return 1;
    for (unsigned t = 0; t < ntags; t++) {
        if (atomic_load(&sh->acked[t]) && counts[t] != 1)
            return fprintf(stderr, "round %d: tag %u was acknowledged as created and is there "
                           "%u times\n", round, t, counts[t]), 1;
        if (counts[t] > 1)
            return fprintf(stderr, "round %d: tag %u is there %u times\n", round, t,
                           counts[t]), 1;
    }
    return 0;
}

/* ---- stale ------------------------------------------------------------------- */

typedef struct stale_ctx {
    udb_env *env;
    unsigned round;
} stale_ctx;

/* Records for every slot, round 1, under `instance`: what a session's
 * leaders leave behind. */
static int put_unit_records(udb_txn *txn, void *arg)
{
    udb_env *env = arg;
    MDB_txn *m = udb__txn_mdb(txn);
    for (unsigned slot = 0; slot < UDB_SHIP_SLOTS; slot++) {
        int rc = udb__meta_put_unit(m, udb__env_meta_dbi(env),
                                    udb__sync_instance(udb__env_sync(env)), slot, 1,
                                    mdb_txn_id(m));
        if (rc)
            return rc;
    }
    return 0;
}

static int stale_leader(int round)
{
    udb_env *env = open_env();
    if (control && udb_write(env, put_unit_records, env))
        return 2;
    udb__ship_set_delay(UDB_SHIP_DELAY_LEAD, 30000000);
    udb__ship_set_delay(UDB_SHIP_DELAY_PRECOMMIT, 20000000000ull);
    atomic_store(&sh->flag[1], 1);   /* open: F may begin */
    int created;
    insert(env, (unsigned)round * 2, NULL, &created);
    return 3;   /* killed before this */
}

typedef struct watch {
    udb_ship *ship;
    _Atomic int stop;
} watch;

/* Tell the parent when our queued unit has been taken by the leader. */
static void *watch_taken(void *arg)
{
    watch *w = arg;
    bool seen = false;
    while (!atomic_load(&w->stop)) {
        unsigned q = udb__ship_queued(w->ship);
        if (q)
            seen = true;
        else if (seen) {
            atomic_store(&sh->flag[2], 1);
            break;
        }
        sup_sleep_us(50);
    }
    return NULL;
}

static int stale_follower(int round)
{
    udb_env *env = open_env();
    atomic_store(&sh->flag[0], 1);   /* the session is ours: L may open */
    if (!await_flag(1, 10000))
        return 2;
    udb_ship *ship = udb__env_ship(env);
    if (!await_leader(ship))
        return 2;
    watch w = {ship, 0};
    pthread_t th;
    if (pthread_create(&th, NULL, watch_taken, &w))
        return 2;
    int created;
    unsigned tag = (unsigned)round * 2 + 1;
    int rc = insert(env, tag, NULL, &created);
    atomic_store(&w.stop, 1);
    pthread_join(th, NULL);
    uint64_t c[UDB_SHIP_NCOUNTS];
    udb__ship_counts(ship, c);
    atomic_fetch_add(&sh->orphans, c[UDB_SHIP_EARLIER] + c[UDB_SHIP_RERUN]);
    atomic_store(&sh->acked[tag], created);
    atomic_store(&sh->rc[0], rc);
    udb_close(env);
    return 0;
}

static int run_stale(int rounds)
{
    for (int r = 0; r < rounds; r++) {
        /* an earlier session leaves records for every slot */
        udb_env *env = open_env();
        if (udb_write(env, put_unit_records, env))
            return fprintf(stderr, "put_unit_records: %s\n", udb_env_errmsg(env)), 2;
        udb_close(env);
        memset(sh->flag, 0, sizeof sh->flag);
        pid_t f = spawn(stale_follower, r);
        if (!await_flag(0, 10000))
            return fprintf(stderr, "round %d: follower did not open\n", r), 2;
        pid_t l = spawn(stale_leader, r);
        /* F's unit taken into L's batch, run, the response written: kill L */
        if (await_flag(2, 10000))
            sup_sleep_us(5000);
        kill(l, SIGKILL);
        reap(l);
        if (reap(f) != 0)
            return fprintf(stderr, "round %d: follower failed (rc %d)\n", r, sh->rc[0]), 1;
        if (atomic_load(&sh->acked[r * 2 + 1]) == 0)
            return fprintf(stderr, "round %d: the follower's unit was not acknowledged "
                           "(rc %d)\n", r, sh->rc[0]), 1;
        /* every 20 rounds (tags are the round's own): a check costs an open */
        if ((r % 20 == 19 || r == rounds - 1) && verify_acked((unsigned)r * 2 + 2, r))
            return 1;
    }
    uint64_t o = atomic_load(&sh->orphans);
    printf("stale: %d rounds, %llu orphans met by the follower, every acknowledged record "
           "there once\n", rounds, (unsigned long long)o);
    if (o < (uint64_t)rounds * 3 / 4)
        return fprintf(stderr, "only %llu of %d rounds left an orphan: the test did not test\n",
                       (unsigned long long)o, rounds), 2;
    return 0;
}

/* ---- deleted ------------------------------------------------------------------ */

enum { DEL_FOLLOWERS = 32 };

static void del_flags(void)
{
    if (control)
        udb__ship_set_test_flags(UDB_SHIP_TEST_ONE_SESSION);
}

/* Tell the parent once the unit tagged `tag` is committed (it reads). */
typedef struct seen {
    udb_env *env;
    unsigned tag;
    _Atomic int stop;
} seen;

static void *watch_committed(void *arg)
{
    seen *w = arg;
    while (!atomic_load(&w->stop)) {
        udb_txn *txn;
        udb_cursor *cur;
        bool found = false;
        if (!udb_begin(&txn, w->env, UDB_RDONLY)) {
            msgpack_sbuffer sb;
            msgpack_sbuffer_init(&sb);
            msgpack_packer pk;
            msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
            msgpack_pack_array(&pk, 1);
            msgpack_pack_uint64(&pk, w->tag);
            udb_val v;
            if (!udb_scan(&cur, txn, "rec", "by_tag", sb.data, sb.size)) {
                found = udb_cursor_next(&v, cur) == 0;
                udb_cursor_close(cur);
            }
            msgpack_sbuffer_destroy(&sb);
            udb_abort(txn);
        }
        if (found) {
            atomic_store(&sh->flag[2], 1);
            break;
        }
        sup_sleep_us(1000);
    }
    return NULL;
}

static int del_follower(int round)
{
    del_flags();
    udb_env *env = open_env();
    atomic_store(&sh->flag[0], 1);
    if (!await_flag(1, 10000))
        return 2;
    udb_ship *ship = udb__env_ship(env);
    if (!await_leader(ship))
        return 2;
    unsigned tag = (unsigned)round * 200;
    seen w = {env, tag, 0};
    pthread_t th;
    if (pthread_create(&th, NULL, watch_committed, &w))
        return 2;
    int created;
    int rc = insert(env, tag, NULL, &created);
    atomic_store(&w.stop, 1);
    pthread_join(th, NULL);
    uint64_t c[UDB_SHIP_NCOUNTS];
    udb__ship_counts(ship, c);
    atomic_fetch_add(&sh->orphans, c[UDB_SHIP_EARLIER]);
    atomic_store(&sh->acked[tag], created);
    udb_close(env);
    return rc ? 1 : 0;
}

static int del_leader(int round)
{
    del_flags();
    udb_env *env = open_env();
    udb__ship_set_delay(UDB_SHIP_DELAY_LEAD, 30000000);
    udb__ship_set_publish_delay(30000000000ull);
    atomic_store(&sh->flag[1], 1);
    int created;
    insert(env, (unsigned)round * 200 + 1, NULL, &created);
    return 3;   /* killed before this */
}

/* Session B: a leader that takes every slot's unit, twice. */
static int b_leader(int round)
{
    del_flags();
    udb_env *env = open_env();
    udb__ship_set_delay(UDB_SHIP_DELAY_LEAD, 300000000);
    udb__ship_set_delay(UDB_SHIP_DELAY_BOUND, 5000000000ull);
    atomic_store(&sh->flag[3], 1);
    for (unsigned wave = 0; wave < 2; wave++) {
        int created;
        if (insert(env, (unsigned)round * 200 + 2 + wave, NULL, &created))
            return 1;
    }
    udb_close(env);
    return 0;
}

static int b_follower(int arg)
{
    int round = arg / DEL_FOLLOWERS, i = arg % DEL_FOLLOWERS;
    del_flags();
    udb_env *env = open_env();
    udb__ship_set_delay(UDB_SHIP_DELAY_BOUND, 5000000000ull);
    udb_ship *ship = udb__env_ship(env);
    for (unsigned wave = 0; wave < 2; wave++) {
        /* ship to B's leader if it leads (a slow start may miss it: then the
           unit runs here, and the round tests less, not nothing) */
        for (int k = 0; k < 10000 && !udb__ship_leader(ship); k++)
            sup_sleep_us(200);
        int created;
        if (insert(env, (unsigned)round * 200 + 10 + (unsigned)i * 2 + wave, NULL, &created))
            return 1;
    }
    udb_close(env);
    return 0;
}

static int run_deleted(int rounds)
{
    char syncf[600];
    snprintf(syncf, sizeof syncf, "%s/%s", path, UDB_SYNC_FILE);
    for (int r = 0; r < rounds; r++) {
        memset(sh->flag, 0, sizeof sh->flag);
        pid_t f = spawn(del_follower, r);
        if (!await_flag(0, 10000))
            return 2;
        pid_t l = spawn(del_leader, r);
        /* F's unit committed by L, which now waits to publish: delete the file */
        if (!await_flag(2, 20000))
            return fprintf(stderr, "round %d: the follower's unit never committed\n", r), 2;
        if (unlink(syncf) != 0)
            return perror("unlink sync.udb"), 2;
        pid_t bl = spawn(b_leader, r);
        if (!await_flag(3, 10000))
            return 2;
        pid_t bf[DEL_FOLLOWERS];
        for (int i = 0; i < DEL_FOLLOWERS; i++)
            bf[i] = spawn(b_follower, r * DEL_FOLLOWERS + i);
        int bad = 0;
        for (int i = 0; i < DEL_FOLLOWERS; i++)
            bad |= reap(bf[i]) != 0;
        bad |= reap(bl) != 0;
        if (bad)
            return fprintf(stderr, "round %d: session B's writers failed\n", r), 1;
        kill(l, SIGKILL);
        reap(l);
        if (reap(f) != 0 || !atomic_load(&sh->acked[r * 200]))
            return fprintf(stderr, "round %d: the follower's unit was not acknowledged\n", r),
                   1;
        for (int i = 0; i < DEL_FOLLOWERS * 2; i++)
            atomic_store(&sh->acked[r * 200 + 10 + i], 1);
        if (verify_acked((unsigned)(r + 1) * 200, r))
            return 1;
    }
    uint64_t o = atomic_load(&sh->orphans);
    printf("deleted: %d rounds, sync.udb deleted under a leader killed before publishing; %llu "
           "orphans found committed; every unit there once\n", rounds, (unsigned long long)o);
    if (o < (uint64_t)rounds)
        return fprintf(stderr, "only %llu of %d orphans were found committed: the test did "
                       "not test\n", (unsigned long long)o, rounds), 2;
    return 0;
}

/* ---- short-lived ------------------------------------------------------------- */

static int short_one(int arg)
{
    int i = arg % NSHORT;
    udb_env *env = open_env();
    udb__ship_set_publish_delay(2000000);
    if (control)
        udb__ship_set_test_flags(UDB_SHIP_TEST_NO_RECORD);
    atomic_fetch_add(&sh->flag[0], 1);
    while (atomic_load(&sh->flag[0]) < NSHORT)
        sup_sleep_us(50);
    int created;
    unsigned tag = (unsigned)arg;
    int rc = insert(env, tag, NULL, &created);
    atomic_store(&sh->acked[tag], created);
    atomic_store(&sh->rc[i], rc);
    udb_close(env);
    return 0;
}

static int run_short(int rounds)
{
    unsigned seed = (unsigned)time(NULL);
    /* The kill lands at a random time within a round's length as measured
       (how long the survivors took, averaged), so that it falls before,
       during and after the leader's commit on a fast build and under a
       sanitizer alike: a fixed 0-8 ms missed the commit under ASan. */
    long span_us = 8000;
    for (int r = 0; r < rounds; r++) {
        memset(sh->flag, 0, sizeof sh->flag);
        pid_t p[NSHORT];
        for (int i = 0; i < NSHORT; i++)
            p[i] = spawn(short_one, r * NSHORT + i);
        while (atomic_load(&sh->flag[0]) < NSHORT)
            sup_sleep_us(100);
        uint64_t t0 = sup_now_us();
        int victim = rand_r(&seed) % NSHORT;
        sup_sleep_us(rand_r(&seed) % span_us);
        kill(p[victim], SIGKILL);
        for (int i = 0; i < NSHORT; i++) {
            int st = reap(p[i]);
            if (i != victim && st != 0)
                return fprintf(stderr, "round %d: process %d exited %d\n", r, i, st), 1;
        }
        long took = (long)(sup_now_us() - t0);
        span_us = (span_us * 3 + (took < 1000 ? 1000 : took > 200000 ? 200000 : took)) / 4;
        if ((r % 20 == 19 || r == rounds - 1) && verify_acked((unsigned)(r + 1) * NSHORT, r))
            return 1;
    }
    printf("short: %d rounds of %d processes, one killed each: every acknowledged record "
           "there once\n", rounds, NSHORT);
    return 0;
}

/* ---- fork -------------------------------------------------------------------- */

static int fork_child_lives(udb_env *inherited)
{
    (void)inherited;   /* never used in the child: it opens its own */
    udb_env *env = open_env();
    atomic_store(&sh->flag[1], 1);
    while (!atomic_load(&sh->flag[3]))
        sup_sleep_us(1000);
    udb_close(env);
    return 0;
}

static long flush_sleep_us;

static int slow_flush(int fd)
{
    atomic_store(&sh->flag[2], 1);
    sup_sleep_us(flush_sleep_us);
    return fdatasync(fd);
}

/* P: open, fork a child that opens too, then lead (round even) or flush
 * outside LMDB's lock (odd) until killed. */
static int fork_parent(int round)
{
    if (control)
        udb__sync_set_test_flags(UDB_SYNC_TEST_FORK_KEEPS);
    udb_env *env = open_env();
    fflush(NULL);
    pid_t c = fork();
    if (c == 0)
        _exit(fork_child_lives(env));
    atomic_store(&sh->rc[1], c);
    if (!await_flag(1, 10000))
        return 2;
    int created;
    if (round % 2 == 0) {
        udb__ship_set_delay(UDB_SHIP_DELAY_LEAD, 20000000000ull);
        atomic_store(&sh->flag[0], 1);
        insert(env, (unsigned)round, NULL, &created);   /* killed while it leads */
    } else {
        flush_sleep_us = 20000000;
        udb__sync_set_flush_hook(slow_flush);
        atomic_store(&sh->flag[0], 1);
        insert(env, (unsigned)round, NULL, &created);   /* killed while it flushes */
    }
    return 3;
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char m[] = "writer: no progress in 10 s: a dead process's lock is held\n";
    ssize_t w = write(2, m, sizeof m - 1);
    (void)w;
    _exit(1);
}

static int fork_writer(int round)
{
    signal(SIGALRM, on_alarm);
    alarm(10);
    udb_env *env = open_env();
    udb_ship *ship = udb__env_ship(env);
    if (round % 2 == 0) {
        /* the lead lock of the dead leader must be free at once */
        bool led = false;
        for (int i = 0; i < 200 && !(led = udb__ship_lead(ship)); i++)
            sup_sleep_us(500);
        if (!led) {
            fprintf(stderr, "round %d: the killed leader's lead lock is still held\n", round);
            return 1;
        }
        udb__ship_unlead(ship);
    }
    for (int i = 0; i < 3; i++) {
        int created;
        int rc = insert(env, 100000 + (unsigned)round * 3 + (unsigned)i, NULL, &created);
        if (rc || !created)
            return fprintf(stderr, "round %d: insert: %s\n", round, udb_env_errmsg(env)), 1;
    }
    udb_close(env);
    return 0;
}

static int run_fork(int rounds)
{
    for (int r = 0; r < rounds; r++) {
        memset(sh->flag, 0, sizeof sh->flag);
        pid_t p = spawn(fork_parent, r);
        if (!await_flag(0, 10000))
            return fprintf(stderr, "round %d: P did not start\n", r), 2;
        /* leading: inside its pause; flushing: inside the hook */
        if (r % 2 == 0) {
            sup_sleep_us(3000);
        } else if (!await_flag(2, 10000)) {
            return fprintf(stderr, "round %d: P did not flush\n", r), 2;
        }
        kill(p, SIGKILL);
        reap(p);
        pid_t w = spawn(fork_writer, r);
        int st = reap(w);
        atomic_store(&sh->flag[3], 1);   /* the child may go */
        pid_t c = atomic_load(&sh->rc[1]);
        if (c > 0)
            reap(c);
        if (st != 0)
            return fprintf(stderr, "round %d (%s): the writer after the kill failed (%d)\n", r,
                           r % 2 ? "killed flushing" : "killed leading", st), 1;
    }
    printf("fork: %d rounds (a forked child alive, its parent killed leading or flushing): "
           "no lock outlived the parent\n", rounds);
    return 0;
}

/* ---- stop -------------------------------------------------------------------- */

static int stop_leader(int round)
{
    udb_env *env = open_env();
    udb__ship_set_delay(UDB_SHIP_DELAY_LEAD, 100000000);
    atomic_store(&sh->flag[0], 1);
    int created;
    int rc = insert(env, (unsigned)round * 4, NULL, &created);
    udb_close(env);
    return rc ? 1 : 0;
}

static int stop_writer(int round)
{
    udb_env *env = open_env();
    /* a shorter bound than the engine's 0.25 s, for 200 rounds in seconds */
    udb__ship_set_delay(UDB_SHIP_DELAY_BOUND, 20000000);
    if (control)
        udb__ship_set_test_flags(UDB_SHIP_TEST_NO_BOUND);
    for (unsigned i = 1; i < 4; i++) {
        int created;
        unsigned tag = (unsigned)round * 4 + i;
        int rc = insert(env, tag, NULL, &created);
        if (rc)
            return fprintf(stderr, "round %d: insert: %s\n", round, udb_env_errmsg(env)), 1;
        atomic_store(&sh->acked[tag], created);
    }
    udb_close(env);
    return 0;
}

static int run_stop(int rounds)
{
    /* open once, so that L's pause is never over before we look */
    udb_env *env = open_env();
    udb_ship *ship = udb__env_ship(env);
    for (int r = 0; r < rounds; r++) {
        memset(sh->flag, 0, sizeof sh->flag);
        pid_t l = spawn(stop_leader, r);
        if (!await_flag(0, 10000))
            return 2;
        /* L leads (inside its pause, holding the lead lock): stop it there */
        for (int spin = 0; spin < 100000 && udb__ship_leader(ship) != l; spin++)
            sup_sleep_us(50);
        if (udb__ship_leader(ship) != l)
            return fprintf(stderr, "round %d: the leader was not seen leading\n", r), 2;
        kill(l, SIGSTOP);
        pid_t w = spawn(stop_writer, r);
        int st = -1;
        bool finished = false;
        for (int k = 0; k < 10000 && !finished; k++) {
            finished = waitpid(w, &st, WNOHANG) == w;
            if (!finished)
                sup_sleep_us(1000);
        }
        if (!finished) {
            fprintf(stderr, "round %d: the writer's units did not commit in 10 s while the "
                    "leader was stopped\n", r);
            kill(w, SIGKILL);
            reap(w);
            kill(l, SIGCONT);
            reap(l);
            return 1;
        }
        kill(l, SIGCONT);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || reap(l) != 0)
            return fprintf(stderr, "round %d: writer or leader failed\n", r), 1;
        atomic_store(&sh->acked[r * 4], 1);
        if (r % 20 == 19 || r == rounds - 1) {
            if (verify_acked((unsigned)(r + 1) * 4, r))
                return 1;
        }
    }
    udb_close(env);
    printf("stop: %d rounds, the leader stopped while leading: the writer's units committed "
           "meanwhile\n", rounds);
    return 0;
}

/* ---- lockwait --------------------------------------------------------------- */

static int lock_holder(int round)
{
    udb_env *env = open_env();
    udb_txn *txn;
    if (udb_begin(&txn, env, 0))
        return 2;
    atomic_store(&sh->flag[0], 1);
    while (!atomic_load(&sh->flag[1]))   /* until the writer gave up */
        sup_sleep_us(500);
    int rc = udb_commit(txn);
    udb_close(env);
    (void)round;
    return rc ? 1 : 0;
}

static int write_tag(udb_txn *txn, void *arg)
{
    unsigned tag = *(unsigned *)arg;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    sup_pack(&pk, "{s:U}", "tag", (unsigned long long)tag);
    int rc = udb_insert(NULL, txn, "rec", sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static int run_lockwait(int rounds)
{
    udb_options o = UDB_OPTIONS_INIT;
    o.lock_wait_ms = 100;
    udb_env *env;
    if (udb_open(&env, path, &o))
        return fprintf(stderr, "udb_open: %s\n", udb_env_errmsg(NULL)), 2;
    for (int r = 0; r < rounds; r++) {
        memset(sh->flag, 0, sizeof sh->flag);
        pid_t h = spawn(lock_holder, r);
        if (!await_flag(0, 10000))
            return 2;
        bool stopped = r % 3 == 1, killed = r % 3 == 2;
        if (stopped)
            kill(h, SIGSTOP);
        unsigned tag = (unsigned)r;
        int rc = udb_write(env, write_tag, &tag);
        if (rc != UDB_EBUSY || !strstr(udb_env_errmsg(env), "lock_wait_ms"))
            return fprintf(stderr, "round %d: a write behind a %s holder: rc %d (%s), want "
                           "UDB_EBUSY\n", r, stopped ? "stopped" : "running", rc,
                           udb_env_errmsg(env)), 1;
        if (killed) {
            kill(h, SIGKILL);
        } else {
            atomic_store(&sh->flag[1], 1);
            if (stopped)
                kill(h, SIGCONT);
        }
        int hs = reap(h);
        if (!killed && hs != 0)
            return fprintf(stderr, "round %d: holder %d\n", r, hs), 1;
        if ((rc = udb_write(env, write_tag, &tag)))
            return fprintf(stderr, "round %d: the write after the holder %s: %s\n", r,
                           killed ? "was killed" : "ended", udb_env_errmsg(env)), 1;
        atomic_store(&sh->acked[r], 1);
    }
    udb_close(env);
    if (verify_acked((unsigned)rounds, rounds - 1))
        return 1;
    printf("lockwait: %d rounds, holders running, stopped and killed: UDB_EBUSY after the "
           "limit with nothing written, then the write went through\n", rounds);
    return 0;
}

/* ---- longread --------------------------------------------------------------- */

static char small_path[600];

static udb_env *open_small(void)
{
    udb_env *env;
    udb_options o = UDB_OPTIONS_INIT;
    o.map_size = 1u << 20;
    if (udb_open(&env, small_path, &o)) {
        fprintf(stderr, "udb_open: %s\n", udb_env_errmsg(NULL));
        _exit(2);
    }
    return env;
}

static void *long_reader(void *arg)
{
    udb_txn *txn;
    if (udb_begin(&txn, arg, UDB_RDONLY))
        return NULL;
    atomic_store(&sh->flag[1], 1);
    sup_sleep_us(1500000);
    atomic_store(&sh->flag[2], 1);   /* closed */
    udb_abort(txn);
    return NULL;
}

static int longread_leader(int round)
{
    udb_env *env = open_small();
    if (control)
        udb__ship_set_test_flags(UDB_SHIP_TEST_HOLD_UNITS);
    pthread_t th;
    if (pthread_create(&th, NULL, long_reader, env))
        return 2;
    while (!atomic_load(&sh->flag[1]))
        sup_sleep_us(100);
    /* W has the database open (and looks for a leader): lead now */
    for (int k = 0; k < 100000 && !atomic_load(&sh->flag[3]); k++)
        sup_sleep_us(100);
    udb__ship_set_delay(UDB_SHIP_DELAY_LEAD, 100000000);
    /* 2 MiB in a 1 MiB map, with W's unit in the batch */
    size_t n = 2u << 20;
    char *blob = calloc(1, n);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    sup_pack_cstr(&pk, "tag");
    msgpack_pack_uint64(&pk, (uint64_t)round * 2);
    sup_pack_cstr(&pk, "blob");
    msgpack_pack_bin(&pk, n);
    msgpack_pack_bin_body(&pk, blob, n);
    udb_op op = UDB_OP_INIT;
    op.kind = UDB_OP_INSERT;
    op.type = "rec";
    op.rec.data = sb.data;
    op.rec.size = sb.size;
    atomic_store(&sh->flag[0], 1);
    udb_results *res = NULL;
    int rc = udb_exec(&res, env, &op, 1);
    udb_results_free(res);
    msgpack_sbuffer_destroy(&sb);
    free(blob);
    pthread_join(th, NULL);
    udb_close(env);
    if (rc)
        fprintf(stderr, "round %d: the leader's own insert: %d\n", round, rc);
    return rc ? 1 : 0;
}

static int longread_writer(int round)
{
    udb_env *env = open_small();
    atomic_store(&sh->flag[3], 1);
    for (int k = 0; k < 100000 && (!atomic_load(&sh->flag[0]) ||
                                   !udb__ship_leader(udb__env_ship(env))); k++)
        sup_sleep_us(100);
    int created;
    int rc = insert(env, (unsigned)round * 2 + 1, NULL, &created);
    bool reader_open = !atomic_load(&sh->flag[2]);
    uint64_t c[UDB_SHIP_NCOUNTS];
    udb__ship_counts(udb__env_ship(env), c);
    udb_close(env);
    if (rc || !created)
        return fprintf(stderr, "round %d: writer: rc %d\n", round, rc), 1;
    if (!reader_open)
        return fprintf(stderr, "round %d: the writer's unit waited for the leader's long "
                       "read transaction\n", round), 1;
    return c[UDB_SHIP_BOUNCE] ? 0 : 3;   /* 3: not handed back, the round tested nothing */
}

static int run_longread(int rounds)
{
    int handed = 0;
    for (int r = 0; r < rounds; r++) {
        memset(sh->flag, 0, sizeof sh->flag);
        snprintf(small_path, sizeof small_path, "%s-small%d", path, r);
        udb_env *env = open_small();
        if (udb_schema_apply(NULL, env, SCHEMA, strlen(SCHEMA), 0))
            return fprintf(stderr, "schema: %s\n", udb_env_errmsg(env)), 2;
        udb_close(env);
        pid_t l = spawn(longread_leader, r);
        pid_t w = spawn(longread_writer, r);
        int ws = reap(w), ls = reap(l);
        if ((ws && ws != 3) || ls)
            return fprintf(stderr, "round %d: writer %d, leader %d\n", r, ws, ls), 1;
        handed += ws == 0;
        sup_remove_tree(small_path, false);
    }
    printf("longread: %d rounds, %d with the unit handed back: the leader's map full while "
           "its reader held, the other process's unit committed meanwhile\n", rounds, handed);
    if (handed < (rounds + 1) / 2)
        return fprintf(stderr, "only %d rounds handed a unit back: the test did not test\n",
                       handed), 2;
    return 0;
}

/* ---- failack ----------------------------------------------------------------- */

static int failack_leader(int round)
{
    udb_env *env = open_env();
    udb__ship_set_delay(UDB_SHIP_DELAY_LEAD, 50000000);
    flush_sleep_us = 100000;
    udb__sync_set_flush_hook(slow_flush);   /* its own flush: slow */
    atomic_store(&sh->flag[0], 1);
    char email[32];
    snprintf(email, sizeof email, "e%d", round);
    int created;
    int rc = insert(env, (unsigned)round * 2, email, &created);
    atomic_store(&sh->acked[round * 2], created);
    udb_close(env);
    return rc ? 1 : 0;
}

static int failack_follower(int round)
{
    udb_env *env = open_env();
    if (control)
        udb__sync_set_test_flags(UDB_SYNC_TEST_NO_WAIT);
    atomic_store(&sh->flag[1], 1);
    udb_ship *ship = udb__env_ship(env);
    if (!await_leader(ship)) {
        udb_close(env);
        return 4;   /* the leader came and went unseen (a loaded machine): inconclusive */
    }
    char email[32];
    snprintf(email, sizeof email, "e%d", round);
    int created;
    int rc = insert(env, (unsigned)round * 2 + 1, email, &created);
    uint64_t committed, durable;
    udb__sync_state(udb__env_sync(env), &committed, &durable, NULL);
    uint64_t c[UDB_SHIP_NCOUNTS];
    udb__ship_counts(ship, c);
    udb_close(env);
    if (rc != UDB_ECONFLICT)
        return fprintf(stderr, "round %d: follower rc %d, want UDB_ECONFLICT\n", round, rc), 2;
    if (c[UDB_SHIP_FOREIGN] == 0)
        return 4;   /* not run in the leader's batch: inconclusive */
    if (durable < committed)
        return fprintf(stderr, "round %d: the conflict was answered while the batch it read "
                       "(txn %llu) was not durable (durable: %llu)\n", round,
                       (unsigned long long)committed, (unsigned long long)durable), 1;
    return 0;
}

static int run_failack(int rounds)
{
    int conclusive = 0;
    for (int r = 0; r < rounds; r++) {
        memset(sh->flag, 0, sizeof sh->flag);
        pid_t f = spawn(failack_follower, r);
        if (!await_flag(1, 10000))
            return 2;
        pid_t l = spawn(failack_leader, r);
        int fs = reap(f);
        atomic_store(&sh->flag[3], 1);
        int ls = reap(l);
        if (fs == 1 || fs == 2 || ls != 0)
            return fprintf(stderr, "round %d: follower %d leader %d\n", r, fs, ls), 1;
        conclusive += fs == 0;
    }
    printf("failack: %d rounds, %d with the follower's unit in the leader's batch: every "
           "conflict answered once its batch was durable\n", rounds, conclusive);
    if (conclusive < rounds / 2)
        return fprintf(stderr, "only %d conclusive rounds\n", conclusive), 2;
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = NULL;
    int rounds = 200;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--mode=", 7) == 0)
            mode = argv[i] + 7;
        else if (strncmp(argv[i], "--rounds=", 9) == 0)
            rounds = atoi(argv[i] + 9);
        else if (strcmp(argv[i], "--control") == 0)
            control = 1;
        else if (strcmp(argv[i], "--fragile") == 0)
            udb__xlock_set_fragile(true);   /* before the first open resets sync.udb */
        else
            return fprintf(stderr, "usage: race_shipedge --mode=M [--rounds=N] [--control] "
                           "[--fragile]\n"), 2;
    }
    if (!mode || rounds <= 0 || (unsigned)rounds * NSHORT >= MAXTAGS)
        return fprintf(stderr, "race_shipedge: --mode and 0 < --rounds < %d\n",
                       MAXTAGS / NSHORT), 2;
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        return perror("mmap"), 2;
    char dir[256];
    if (sup_mkdtemp(dir, sizeof dir, "udb-shipedge-") != 0)
        return perror("mkdtemp"), 2;
    snprintf(path, sizeof path, "%s/db", dir);
    udb_env *env = open_env();
    if (udb_schema_apply(NULL, env, SCHEMA, strlen(SCHEMA), 0))
        return fprintf(stderr, "schema: %s\n", udb_env_errmsg(env)), 2;
    udb_close(env);
    int rc = strcmp(mode, "stale") == 0        ? run_stale(rounds)
             : strcmp(mode, "short") == 0      ? run_short(rounds)
             : strcmp(mode, "fork") == 0       ? run_fork(rounds)
             : strcmp(mode, "stop") == 0       ? run_stop(rounds)
             : strcmp(mode, "failack") == 0    ? run_failack(rounds)
             : strcmp(mode, "longread") == 0   ? run_longread(rounds)
             : strcmp(mode, "lockwait") == 0   ? run_lockwait(rounds)
             : strcmp(mode, "deleted") == 0    ? run_deleted(rounds)
                                               : (fprintf(stderr, "unknown mode %s\n", mode), 2);
    if (rc == 0)
        sup_remove_tree(dir, false);
    else
        fprintf(stderr, "race_shipedge --mode=%s: FAILED; database kept in %s\n", mode, dir);
    return rc;
}
