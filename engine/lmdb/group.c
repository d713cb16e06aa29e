/*
 * group.c -- udb_write: run a caller's function in a write transaction,
 * growing the map and running it again when the map fills, and group commit.
 */
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "env_int.h"
#include "error.h"
#include "group.h"
#include "layout.h"
#include "ship.h"
#include "txn.h"
#include "unit.h"

typedef struct alone {
    udb_env *env;
    udb_write_fn fn;
    void *ctx;
} alone;

/* One attempt at running fn in a transaction of its own. */
static int alone_once(size_t *full_at, void *arg)
{
    alone *a = arg;
    udb_txn *txn;
    int rc = udb__txn_begin_raw(&txn, a->env, 0, NULL);
    if (rc == UDB_EBUSY || rc == UDB_EREADONLY) /* they come with their message */
        return rc;
    if (rc)
        return udb__env_err(rc, "udb_write: begin: %s", udb_strerror(rc));
    rc = a->fn(txn, a->ctx);
    if ((*full_at = udb__txn_full_at(txn))) {
        udb__txn_end(txn, false);
        return rc ? rc : MDB_MAP_FULL;
    }
    if (rc) {
        udb__env_err(rc, "%s", udb_errmsg(txn)[0] ? udb_errmsg(txn) : udb_strerror(rc));
        udb__txn_end(txn, false);
        return rc;
    }
    size_t at = udb__mapsize(a->env);
    rc = udb__txn_end(txn, true);
    if (rc == MDB_MAP_FULL)
        *full_at = at;
    else if (rc)
        udb__env_err(rc, "udb_write: commit: %s", udb_strerror(rc));
    return rc;
}

/* Run fn in one transaction of its own, growing the map and rerunning as needed. */
static int write_alone(udb_env *env, udb_write_fn fn, void *ctx)
{
    alone a = {env, fn, ctx};
    return udb__grow_retry(env, alone_once, &a);
}

/*
 * Group commit.  LMDB has one writer and syncs on every commit, so N
 * concurrent durable writers would pay N commits.  Instead, concurrent
 * udb_write callers queue up; the first becomes the leader, takes the whole
 * queue, runs each fn inside its own nested transaction (so one failure rolls
 * back only its own work), commits once, and wakes the others with their own
 * results.  This is LevelDB's write queue on top of LMDB's nested transactions.
 *
 * Pipelined: once a batch has committed, the leader hands the queue to the
 * next leader and only then waits for the flush that makes its batch durable
 * (sync.c: a flush outside the write lock, as the next batch runs).  Each waiting caller has a
 * condition variable of its own, so a hand-off or a finished batch wakes
 * exactly the threads concerned, not every writer of the process.
 *
 * Across processes (ship.h): a leader holds the lead lock while it runs a
 * batch, and takes into it the udb_exec() units other processes have
 * queued in the sync file.  A udb_exec() caller ships its unit instead of
 * queueing it here while another process leads (or when it would lead a
 * batch of its unit alone), and waits for the outcome (then for
 * durability, as its own commit would).
 */
#define GROUP_MAX 128

typedef struct udb_group udb_group;

typedef struct greq {
    udb_write_fn fn;
    void *ctx;
    udb_unit *unit;             /* fn runs this unit: it may be shipped */
    int rc;
    /* a futex word: REQ_DONE once rc and msg are final (no lock needed to
       see it, so a finished batch's callers do not all wake into the queue's
       mutex), else bumped when this request may lead now */
    _Atomic uint32_t word;
    struct greq *next;
    char msg[512];
} greq;

#define REQ_DONE 0x80000000u

static void req_wait(greq *r, uint32_t seen)
{
    syscall(SYS_futex, &r->word, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
}

/* Wake r's caller.  After a REQ_DONE, r may be gone the moment the word
 * is set: the wake only names its address (a futex waiter there, if any,
 * looks at its own word again). */
static void req_wake(greq *r, uint32_t how)
{
    if (how == REQ_DONE)
        atomic_fetch_or_explicit(&r->word, REQ_DONE, memory_order_release);
    else
        atomic_fetch_add_explicit(&r->word, 1, memory_order_release);
    syscall(SYS_futex, &r->word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

struct udb_group {
    pthread_mutex_t mu;
    pthread_cond_t arrive;      /* a request was queued (the leader may be gathering) */
    greq *head, *tail;
    bool leading;
    unsigned awaiting;          /* committed batches waiting for their flush */
    size_t queued;              /* requests in the queue, the running batch included */
    size_t last_n;              /* size of the last batch */
    long last_commit_ns;        /* how long its commit took */
};

static long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* Group commit delay.  The callers of the batch that just committed usually
 * come straight back with their next request; a leader that snapshots the
 * queue at once misses them, so batches alternate between two halves of the
 * writers and each commit (two syncs) serves only about half of them.  If
 * the last batch was shared, wait a little -- a fraction of a commit -- for
 * them to queue up again.  Not while a batch waits for its flush: its
 * callers come back only once that flush is done, so waiting for them here
 * would only delay this commit. */
static void gather(udb_group *g)
{
    if (g->last_n < 2 || g->awaiting)
        return;
    size_t want = g->queued + g->last_n;
    if (want > GROUP_MAX)
        want = GROUP_MAX;
    long wait = g->last_commit_ns / 4;
    if (wait < 20000)
        wait = 20000;
    if (wait > 1000000)
        wait = 1000000;
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_nsec += wait;
    dl.tv_sec += dl.tv_nsec / 1000000000L;
    dl.tv_nsec %= 1000000000L;
    while (g->queued < want && pthread_cond_timedwait(&g->arrive, &g->mu, &dl) == 0)
        ;
}

static udb_group *group_new(void)
{
    udb_group *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    pthread_mutex_init(&g->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->arrive, &ca);
    pthread_condattr_destroy(&ca);
    return g;
}

static void group_free(udb_group *g)
{
    if (!g)
        return;
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->arrive);
    free(g);
}

static void keep_msg(greq *r, udb_txn *txn, int rc)
{
    const char *m = udb_errmsg(txn);
    snprintf(r->msg, sizeof r->msg, "%s", m[0] ? m : udb_strerror(rc));
}

/* A unit another process queued, run in this process's batch. */
typedef struct shipped {
    unsigned slot;
    uint64_t round;
    enum udb_ship_taken kind;
    bool bounce;         /* not run here: its owner runs it itself */
    bool unreadable;     /* its bytes are not a unit this version runs: bounced */
    bool earlier;        /* an orphan whose unit a dead leader committed ... */
    uint64_t txnid;      /* ... in this transaction */
    int rc;              /* the unit's own result in this batch */
    udb_unit u;
    udb_arena arena;     /* u's ops, decoded */
} shipped;

typedef struct batch {
    udb_env *env;
    greq **reqs;
    size_t n;
    shipped *sh;
    size_t nsh;
    uint64_t ack;       /* what must be durable before the batch is acknowledged */
    uint64_t txnid;     /* of its transaction */
    bool sweep;         /* delete the unit records of earlier sessions (sync.h) */
} batch;

_Static_assert(UDB_META_INSTANCE == UDB_SYNC_INSTANCE, "a unit record names its session");

/* The session a unit record names (a test flag makes every session one,
 * as records were before session ids). */
static const unsigned char *session(const udb_env *env)
{
    static const unsigned char shared_id[UDB_SYNC_INSTANCE];
    return udb__ship_test_flags() & UDB_SHIP_TEST_ONE_SESSION ? shared_id
                                                               : udb__sync_instance(env->sync);
}

/* Run shipped unit s in a nested transaction of top, recording its slot
 * and round there, and write its response into the slot. */
static void run_shipped(udb_env *env, udb_txn *top, shipped *s)
{
    udb_ship *ship = env->ship;
    MDB_dbi meta = udb__env_meta_dbi(env);
    if (s->kind == UDB_SHIP_ORPHAN && !(udb__ship_test_flags() & UDB_SHIP_TEST_NO_RECORD)) {
        uint64_t round, txnid;
        s->earlier = !udb__meta_unit(&round, &txnid, udb__txn_mdb(top), meta, session(env),
                                     s->slot) &&
                     round == s->round && udb__ship_is_ready(ship, s->slot);
        s->txnid = txnid;
        if (s->earlier)
            return;
    }
    udb_txn *sub;
    if ((s->rc = udb__txn_begin_raw(&sub, env, 0, top))) {
        s->bounce = true;
        return;
    }
    s->rc = udb__unit_run(sub, &s->u);
    if (!s->rc && (s->rc = udb__meta_put_unit(udb__txn_mdb(sub), meta, session(env), s->slot,
                                              s->round, mdb_txn_id(udb__txn_mdb(top))))) {
        s->rc = udb__mdb_err(sub, s->rc, "recording a shipped unit");
        s->u.failed = s->u.n;
    }
    udb_buf resp = {0};
    udb__results_encode(&resp, &s->u);
    s->bounce = resp.oom || resp.len > UDB_SHIP_RESP;
    if (!s->bounce) {
        memcpy(udb__ship_resp_buf(ship, s->slot), resp.p, resp.len);
        udb__ship_ready(ship, s->slot, resp.len);
    }
    udb__buf_free(&resp);
    if (s->rc || s->bounce)
        udb__txn_end(sub, false);
    else if ((s->rc = udb__txn_end(sub, true)))
        s->u.failed = s->u.n;
}

/* Run one batch in one transaction (an attempt for udb__grow_retry).
 * Returns the commit's result; each request's own result is in r->rc. */
static int run_batch(size_t *grow_at, void *arg)
{
    udb_env *env = ((batch *)arg)->env;
    greq **reqs = ((batch *)arg)->reqs;
    size_t n = ((batch *)arg)->n;
    udb_txn *top;
    int rc = udb__txn_begin_raw(&top, env, 0, NULL);
    if (rc)
        return rc;
    size_t nsh = ((batch *)arg)->nsh;
    ((batch *)arg)->txnid = mdb_txn_id(udb__txn_mdb(top));
    for (size_t i = 0; i < n; i++) {
        greq *r = reqs[i];
        if (n == 1 && !nsh) {   /* alone: no need for a nested transaction */
            r->rc = r->fn(top, r->ctx);
            if (r->rc && !udb__txn_full_at(top)) {
                keep_msg(r, top, r->rc);
                udb__txn_end(top, false);
                if (((batch *)arg)->sweep)
                    udb__sync_put_back_sweep(env->sync);
                return 0;
            }
            break;
        }
        udb_txn *sub;
        if ((r->rc = udb__txn_begin_raw(&sub, env, 0, top))) {
            snprintf(r->msg, sizeof r->msg, "udb_write: nested begin: %s", udb_strerror(r->rc));
            continue;
        }
        r->rc = r->fn(sub, r->ctx);
        if (r->rc) {
            keep_msg(r, sub, r->rc);
            udb__txn_end(sub, false);
        } else if ((r->rc = udb__txn_end(sub, true))) {
            snprintf(r->msg, sizeof r->msg, "udb_write: nested commit: %s",
                     udb_strerror(r->rc));
        }
        if (udb__txn_full_at(top))
            break;
    }
    for (size_t i = 0; i < nsh && !udb__txn_full_at(top); i++) {
        shipped *sh = &((batch *)arg)->sh[i];
        sh->bounce = sh->unreadable;
        sh->earlier = false;
        if (!sh->bounce)
            run_shipped(env, top, sh);
    }
    if (((batch *)arg)->sweep && !udb__txn_full_at(top)) {
        /* best effort: a sweep that fails leaves garbage, nothing wrong */
        size_t swept;
        udb_txn *sub;
        if (!udb__txn_begin_raw(&sub, env, 0, top)) {
            bool ok = !udb__meta_sweep_units(&swept, udb__txn_mdb(sub),
                                             udb__env_meta_dbi(env),
                                             udb__sync_instance(env->sync));
            udb__txn_end(sub, ok);
        }
    }
    if ((*grow_at = udb__txn_full_at(top))) {
        udb__txn_end(top, false);
        return MDB_MAP_FULL;
    }
    if (nsh)
        udb__ship_test_pause(UDB_SHIP_DELAY_PRECOMMIT);
    size_t at = udb__mapsize(env);
    rc = udb__txn_end_nowait(top, true, &((batch *)arg)->ack);
    if (rc == MDB_MAP_FULL)
        *grow_at = at;
    return rc;
}

/* Take the units other processes queued (and those a dead leader left)
 * into b, decoded.  Under the lead lock. */
static void take_shipped(udb_ship *ship, batch *b, shipped *sh)
{
    unsigned idx[UDB_SHIP_SLOTS];
    enum udb_ship_taken kind[UDB_SHIP_SLOTS];
    b->sh = sh;
    b->nsh = udb__ship_collect(ship, idx, kind, UDB_SHIP_SLOTS);
    for (size_t i = 0; i < b->nsh; i++) {
        shipped *s = &sh[i];
        memset(s, 0, sizeof *s);
        s->slot = idx[i];
        s->kind = kind[i];
        size_t len;
        const void *req = udb__ship_req(ship, s->slot, &len, &s->round);
        udb_op *ops;
        size_t n;
        if (udb__unit_decode(&ops, &n, &s->arena, req, len) ||
            !(s->u.res = udb__results_new(n))) {
            s->unreadable = true;
            continue;
        }
        s->u.ops = ops;
        s->u.n = n;
        s->u.failed = n;
    }
}

/* Hand every shipped unit of b its outcome; rc: the batch's.  Its owner is
 * woken by unlead_and_wake, after the lead lock is let go. */
static void publish_shipped(udb_ship *ship, batch *b, int rc, const char *msg)
{
    uint64_t delay = udb__ship_publish_delay();
    if (delay && b->nsh) {
        struct timespec ts = {(time_t)(delay / 1000000000u), (long)(delay % 1000000000u)};
        nanosleep(&ts, NULL);
    }
    for (size_t i = 0; i < b->nsh; i++) {
        shipped *s = &b->sh[i];
        if (s->bounce)
            udb__ship_bounce(ship, s->slot);
        else if (s->earlier)
            udb__ship_done(ship, s->slot, 0, s->txnid, true, NULL);
        else if (rc)
            udb__ship_done(ship, s->slot, rc, 0, false, msg);
        else
            udb__ship_done(ship, s->slot, s->rc, b->txnid, !s->rc, NULL);
        udb__ship_count(ship, s->bounce ? UDB_SHIP_BOUNCE : s->earlier ? UDB_SHIP_EARLIER :
                              s->kind == UDB_SHIP_ORPHAN ? UDB_SHIP_RERUN : UDB_SHIP_RUN);
        udb_results_free(s->u.res);
        udb__arena_free(&s->arena);
    }
}

/* Let go of the lead, then wake the owners of b's shipped units, whose
 * outcomes publish_shipped has put out.  Each wakeup may hand the CPU to the
 * process woken: fifty of them under the lead lock held the next batch back
 * about 1.2 ms (x16 in uniqdb-bench, probes, 2026-12-08).  An owner that
 * misses its wakeup (this process died between the two) sees its outcome at
 * its next look, a few milliseconds on (follow). */
static void unlead_and_wake(udb_ship *ship, const batch *b)
{
    udb__ship_unlead(ship);
    for (size_t i = 0; i < b->nsh; i++)
        udb__ship_wake(ship, b->sh[i].slot);
}

/* Run reqs[0..n-1] and, with ship (whose lead lock the caller holds, and
 * which this lets go of), the units other processes queued, in one
 * transaction.  The commit's result; each request's own in r->rc, what
 * must be durable before the batch is acknowledged in b->ack. */
static int lead_batch(udb_env *env, udb_ship *ship, batch *b)
{
    shipped sh[UDB_SHIP_SLOTS];
    b->nsh = 0;
    if (ship) {
        udb__ship_test_pause(UDB_SHIP_DELAY_LEAD);
        b->sweep = udb__sync_take_sweep(env->sync);
        /* as gather() does within a process: if the last batch was shared by
           other processes, give them a fraction of a commit to queue again
           (not when it was this process's alone: nobody else would come, and
           the wait would be a fifth of every cycle) */
        unsigned want = udb__ship_expected(ship, (unsigned)b->n);
        if (want > 1 && !udb__ship_publish_delay()) {
            uint64_t wait = udb__sync_commit_ns(env->sync) / 4;
            wait = wait < 20000 ? 20000 : wait > 1000000 ? 1000000 : wait;
            udb__ship_gather(ship, want, wait);
        }
        take_shipped(ship, b, sh);
        udb__ship_set_last_batch(ship, (unsigned)b->n, (unsigned)b->nsh);
    }
    int rc = 0;
    if (b->n || b->nsh || b->sweep) {
        /* the map may have to grow (or adopt another process's growth),
           which waits for this process's other transactions -- perhaps long
           reads: not while other processes' units wait for this batch */
        bool orphans = false;   /* their commit is known only once a batch ran */
        for (size_t i = 0; i < b->nsh; i++)
            orphans |= b->sh[i].kind == UDB_SHIP_ORPHAN;
        udb__env_no_waiting(ship && b->nsh && !orphans &&
                            !(udb__ship_test_flags() & UDB_SHIP_TEST_HOLD_UNITS));
        rc = udb__grow_retry(env, run_batch, b);
        bool refused = udb__env_refused_waiting();
        udb__env_no_waiting(false);
        if (refused && rc == UDB_EBUSY) {
            /* nothing committed: their owners run them (and grow their own
               maps); we let go of the lead, then wait as long as it takes */
            for (size_t i = 0; i < b->nsh; i++)
                b->sh[i].bounce = !b->sh[i].earlier;
            publish_shipped(ship, b, 0, NULL);
            unlead_and_wake(ship, b);
            ship = NULL;
            b->nsh = 0;
            rc = b->n || b->sweep ? udb__grow_retry(env, run_batch, b) : 0;
        }
    }
    if (b->sweep && rc)
        udb__sync_put_back_sweep(env->sync);
    if (ship) {
        publish_shipped(ship, b, rc, udb_env_errmsg(env));
        unlead_and_wake(ship, b);
    }
    return rc;
}

/* env's shipping, NULL when this environment does not ship (UDB_NOSHIP). */
static udb_ship *ship_of(const udb_env *env)
{
    return (env->flags & UDB_NOSHIP) ? NULL : env->ship;
}

/* How long a unit may stay queued before its owner takes it back and runs it
 * itself: many commits' time (the leader may be gathering, or running a long
 * batch), for a leader that holds the lead lock and does not lead -- stopped
 * outside a write transaction (inside one it holds every writer anyway). */
static uint64_t queued_bound_ns(const udb_env *env)
{
    if (udb__ship_test_flags() & UDB_SHIP_TEST_NO_BOUND)
        return UINT64_MAX / 4;
    uint64_t least = udb__ship_delay(UDB_SHIP_DELAY_BOUND);
    if (!least)
        least = 250000000;
    uint64_t b = 16 * udb__sync_commit_ns(env->sync);
    return b < least ? least : b > 2000000000 ? 2000000000 : b;
}

/* Ship r's unit to the process that leads and wait for its outcome, then for
 * durability.  false: it could not be shipped, or came back unrun -- the
 * caller runs it.  true: *rc and r's results, rc and message are set. */
static bool follow(udb_env *env, udb_ship *ship, greq *r, int *rc)
{
    if (udb__ship_stalled(ship))
        return false;
    udb_unit *u = r->unit;
    udb_buf req = {0};
    udb__unit_encode(&req, u->ops, u->n);
    unsigned slot;
    bool queued = !req.oom && udb__ship_submit(ship, &slot, req.p, req.len);
    udb__buf_free(&req);
    if (!queued)
        return false;
    enum udb_ship_state st;
    uint64_t give_up = (uint64_t)now_ns() + queued_bound_ns(env);
    do {
        /* the leader may have finished (or died) since we looked: then lead */
        if (udb__ship_lead(ship)) {
            batch b = {env, NULL, 0, NULL, 0, 0, 0, false};
            lead_batch(env, ship, &b);
        }
        /* woken when its outcome is out, or when it may lead; meanwhile
           a look every few ms for a leader gone without waking anyone (a
           longer one while a leader is at work: with 100 units queued, a
           2 ms look is most of the process's context switches) */
        st = udb__ship_wait(ship, slot, udb__ship_leader(ship) ? 20000000 : 2000000);
        /* taken back only from a leader that is not writing: one inside its
           write transaction holds up everyone's writes, ours run here too */
        if (st == UDB_SHIP_WAITING && (uint64_t)now_ns() > give_up &&
            !udb__sync_gate_busy(env->sync) && udb__ship_withdraw(ship, slot)) {
            udb__ship_mark_stalled(ship);
            return false;
        }
    } while (st == UDB_SHIP_WAITING);
    if (st == UDB_SHIP_BOUNCED) {
        udb__ship_release(ship, slot);
        return false;
    }
    size_t len;
    uint64_t txnid;
    bool committed;
    const char *msg;
    const void *resp = udb__ship_outcome(ship, slot, &len, &r->rc, &txnid, &committed, &msg);
    snprintf(r->msg, sizeof r->msg, "%s", msg[0] ? msg : udb_strerror(r->rc));
    if (len && udb__results_decode(u->res, &u->failed, &u->failed_rc, resp, len)) {
        r->rc = UDB_ECORRUPT;
        snprintf(r->msg, sizeof r->msg, "udb_exec: the results of a unit run by another "
                 "process could not be read (it %s)", committed ? "committed" : "did not commit");
    }
    udb__ship_release(ship, slot);
    *rc = r->rc;
    /* txnid is the batch's that committed (with or without this unit's work):
       a unit that failed read what the units before it in that batch wrote,
       so its answer, as a success, stands only once the batch is durable */
    if (txnid) {
        uint64_t target = udb__sync_target(env->sync, txnid, txnid);
        int arc = udb__txn_ack(env, target);
        if (!*rc)
            *rc = arc;
    }
    return true;
}

/* The leader hands the queue on: the batch of n requests has run. */
static void hand_off(udb_group *g, greq **reqs, size_t n, long took)
{
    pthread_mutex_lock(&g->mu);
    g->last_n = n;
    if (took)
        g->last_commit_ns = took;
    g->queued -= n;
    g->head = reqs[n - 1]->next;
    if (!g->head)
        g->tail = NULL;
    bool more = g->head != NULL;
    g->leading = false;
    g->awaiting++;
    if (more)
        req_wake(g->head, 1);
    pthread_mutex_unlock(&g->mu);
}

/* The queue's first GROUP_MAX requests into reqs, oldest first: how many.
 * Under g->mu. */
static size_t take_queue(udb_group *g, greq **reqs)
{
    size_t n = 0;
    for (greq *r = g->head; r && n < GROUP_MAX; r = r->next)
        reqs[n++] = r;
    return n;
}

static int write_grouped(udb_env *env, udb_group *g, udb_write_fn fn, void *ctx, udb_unit *unit)
{
    greq me = {.fn = fn, .ctx = ctx, .unit = unit};
    /* Another process leads: ship the unit to its batch at once rather than
       queue it here, where our own leader would wait for the lead and then
       commit only this process's units.  Every process's units then share
       the leader's commit and its flush (8 processes with 16 units in flight
       each: batches of about 50 units instead of about 10). */
    udb_ship *ship = ship_of(env);
    bool tried = unit && udb__ship_other_leads(ship);
    if (tried) {
        int rc;
        if (follow(env, ship, &me, &rc)) {
            if (rc)
                udb__env_err(rc, "%s", me.msg);
            return rc;
        }
        me.rc = 0;   /* not shipped, or bounced: it runs here, not shipped again */
    }
    pthread_mutex_lock(&g->mu);
    if (g->tail)
        g->tail->next = &me;
    else
        g->head = &me;
    g->tail = &me;
    g->queued++;
    if (g->leading)
        pthread_cond_signal(&g->arrive);
    for (bool locked = true;;) {
        uint32_t seen = atomic_load_explicit(&me.word, memory_order_acquire);
        if (seen & REQ_DONE) {
            if (locked)
                pthread_mutex_unlock(&g->mu);
            if (me.rc)
                udb__env_err(me.rc, "%s", me.msg);
            return me.rc;
        }
        if (!locked) {
            pthread_mutex_lock(&g->mu);
            locked = true;
            continue;   /* the word again, under the lock */
        }
        if (!g->leading && g->head == &me)
            break;
        pthread_mutex_unlock(&g->mu);
        locked = false;
        req_wait(&me, seen);
    }
    /* leader: take up to GROUP_MAX queued requests, oldest first */
    g->leading = true;
    gather(g);
    greq *reqs[GROUP_MAX];
    size_t n = take_queue(g, reqs);
    pthread_mutex_unlock(&g->mu);

    bool leading = ship && udb__ship_lead(ship);
    int rc = 0;
    if (ship && !leading && n == 1 && me.unit && !tried) {
        /* another process leads, and we would commit one unit alone: ship it;
           hand our queue on first, as a leader does once its batch committed */
        hand_off(g, reqs, n, 0);
        if (!follow(env, ship, &me, &rc)) {
            me.rc = 0;
            batch b = {env, reqs, n, NULL, 0, 0, 0, false};
            leading = udb__ship_lead_within(ship, queued_bound_ns(env));
            rc = lead_batch(env, leading ? ship : NULL, &b);
            if (!rc)
                rc = udb__txn_ack(env, b.ack);
        }
    } else {
        /* wait for the leader of another process to let go, and lead the
           next cross-process batch -- for a bounded time: a stopped leader
           holds the lock, and then this batch commits without shipping */
        if (ship && !leading) {
            leading = udb__ship_lead_within(ship, queued_bound_ns(env));
            /* the requests queued while we waited for the lead join this
               batch: taken before, they would wait a whole round of the
               other processes' batches for the next one */
            pthread_mutex_lock(&g->mu);
            n = take_queue(g, reqs);
            pthread_mutex_unlock(&g->mu);
        }
        long t0 = now_ns();
        batch b = {env, reqs, n, NULL, 0, 0, 0, false};
        rc = lead_batch(env, leading ? ship : NULL, &b);
        /* hand the queue to the next leader, then wait for this batch's flush */
        hand_off(g, reqs, n, now_ns() - t0);
        if (!rc)
            rc = udb__txn_ack(env, b.ack);
    }

    char full_msg[480];   /* udb__grow's or the flush's message, before anything overwrites it */
    if (rc)
        snprintf(full_msg, sizeof full_msg, "%s", udb_env_errmsg(env));
    for (size_t i = 0; i < n; i++) {
        /* the shared commit or its flush failed, or the map could not grow
           (UDB_ESIZELIMIT): so did everyone -- including an fn that saw the raw
           MDB_MAP_FULL */
        if (rc && (!reqs[i]->rc || reqs[i]->rc == MDB_MAP_FULL)) {
            reqs[i]->rc = rc;
            snprintf(reqs[i]->msg, sizeof reqs[i]->msg, "udb_write: %s",
                     rc == UDB_ESIZELIMIT || rc == UDB_EBUSY || rc == UDB_EREADONLY ||
                             rc == UDB_EFLUSHFAILED
                         ? full_msg : udb_strerror(rc));
        }
    }
    pthread_mutex_lock(&g->mu);
    g->awaiting--;
    pthread_mutex_unlock(&g->mu);
    for (size_t i = 0; i < n; i++)
        if (reqs[i] != &me)
            req_wake(reqs[i], REQ_DONE);
    if (me.rc)
        udb__env_err(me.rc, "%s", me.msg);
    return me.rc;
}

/* env's queue, made on first use; NULL (write alone) if that fails. */
static udb_group *group_of(udb_env *env)
{
    pthread_mutex_lock(&env->lock);
    if (!env->group && (env->group = group_new()))
        env->group_free = group_free;
    udb_group *g = env->group;
    pthread_mutex_unlock(&env->lock);
    return g;
}

int udb__lmdb_write(udb_env *env, udb_write_fn fn, void *ctx)
{
    int rc = udb__env_thread_holds(env, "udb_write");
    if (rc)
        return rc;
    udb_group *g = (env->flags & UDB_NOGROUP) ? NULL : group_of(env);
    if (!g)
        return write_alone(env, fn, ctx);
    return write_grouped(env, g, fn, ctx, NULL);
}

/* A unit whose every op is an insert_or_get of a key held already writes
 * nothing: its answer is the holders, read in a snapshot and acknowledged
 * once that snapshot is durable -- as a write transaction that wrote nothing
 * is.  It then takes no part in a commit (nor is it shipped): where keys are
 * asked for again, as in the Node.js binding's W4, about half the units.
 * true: *rc is the unit's outcome. */
static bool held_already(int *rc, udb_env *env, udb_unit *u)
{
    if (!udb__unit_may_be_held(u))
        return false;   /* before any transaction: most units are writes */
    udb_txn *r;
    /* a database opened read-only refuses the unit as a write would */
    if (udb__env_refuse_write(env) || udb__txn_begin_raw(&r, env, UDB_RDONLY, NULL))
        return false;
    bool held = udb__unit_held(r, u);
    uint64_t snap = mdb_txn_id(udb__txn_mdb(r)), none;
    udb__txn_end_nowait(r, false, &none);
    if (!held)
        return false;
    /* what a write transaction beginning after snap, writing nothing, waits for */
    uint64_t target = udb__sync_target(env->sync, snap + 1, 0);
    *rc = udb__txn_ack(env, target);
    return true;
}

int udb__write_unit(udb_env *env, udb_unit *u)
{
    int rc;
    if (!(udb__ship_test_flags() & UDB_SHIP_TEST_NO_HELD) && held_already(&rc, env, u))
        return rc;
    udb_group *g = (env->flags & UDB_NOGROUP) ? NULL : group_of(env);
    if (!g)
        return write_alone(env, udb__unit_run, u);
    return write_grouped(env, g, udb__unit_run, u, u);
}

