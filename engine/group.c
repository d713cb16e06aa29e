/*
 * group.c -- udb_write: run a caller's function in a write transaction,
 * growing the map and running it again when the map fills, and group commit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "env_int.h"
#include "error.h"
#include "txn.h"

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
 * -- usually the next batch's own commit (sync.c).  Each waiting caller has a
 * condition variable of its own, so a hand-off or a finished batch wakes
 * exactly the threads concerned, not every writer of the process.
 */
#define GROUP_MAX 128

typedef struct udb_group udb_group;

typedef struct greq {
    udb_write_fn fn;
    void *ctx;
    int rc;
    bool done;
    pthread_cond_t cv;          /* done, or this request leads now */
    struct greq *next;
    char msg[512];
} greq;

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
 * callers come back only after the next commit, so waiting for them here
 * would only delay that commit. */
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

typedef struct batch {
    udb_env *env;
    greq **reqs;
    size_t n;
    uint64_t ack;       /* what must be durable before the batch is acknowledged */
} batch;

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
    for (size_t i = 0; i < n; i++) {
        greq *r = reqs[i];
        if (n == 1) {   /* alone: no need for a nested transaction */
            r->rc = r->fn(top, r->ctx);
            if (r->rc && !udb__txn_full_at(top)) {
                keep_msg(r, top, r->rc);
                udb__txn_end(top, false);
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
    if ((*grow_at = udb__txn_full_at(top))) {
        udb__txn_end(top, false);
        return MDB_MAP_FULL;
    }
    size_t at = udb__mapsize(env);
    rc = udb__txn_end_nowait(top, true, &((batch *)arg)->ack);
    if (rc == MDB_MAP_FULL)
        *grow_at = at;
    return rc;
}

static int write_grouped(udb_env *env, udb_group *g, udb_write_fn fn, void *ctx)
{
    greq me = {.fn = fn, .ctx = ctx, .cv = PTHREAD_COND_INITIALIZER};
    pthread_mutex_lock(&g->mu);
    if (g->tail)
        g->tail->next = &me;
    else
        g->head = &me;
    g->tail = &me;
    g->queued++;
    if (g->leading)
        pthread_cond_signal(&g->arrive);
    while (!me.done && (g->leading || g->head != &me))
        pthread_cond_wait(&me.cv, &g->mu);
    if (me.done) {
        pthread_mutex_unlock(&g->mu);
        pthread_cond_destroy(&me.cv);
        if (me.rc)
            udb__env_err(me.rc, "%s", me.msg);
        return me.rc;
    }
    /* leader: take up to GROUP_MAX queued requests, oldest first */
    g->leading = true;
    gather(g);
    greq *reqs[GROUP_MAX];
    size_t n = 0;
    for (greq *r = g->head; r && n < GROUP_MAX; r = r->next)
        reqs[n++] = r;
    pthread_mutex_unlock(&g->mu);

    long t0 = now_ns();
    batch b = {env, reqs, n, 0};
    int rc = udb__grow_retry(env, run_batch, &b);
    long took = now_ns() - t0;

    /* hand the queue to the next leader, then wait for this batch's flush */
    pthread_mutex_lock(&g->mu);
    g->last_n = n;
    g->last_commit_ns = took;
    g->queued -= n;
    g->head = reqs[n - 1]->next;
    if (!g->head)
        g->tail = NULL;
    bool more = g->head != NULL;
    g->leading = false;
    g->awaiting++;
    if (more)
        pthread_cond_signal(&g->head->cv);
    pthread_mutex_unlock(&g->mu);

    if (!rc)
        rc = udb__txn_ack(env, b.ack, more);
    char full_msg[480];   /* udb__grow's or the flush's message, before anything overwrites it */
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
    for (size_t i = 0; i < n; i++) {
        reqs[i]->done = true;
        if (reqs[i] != &me)
            pthread_cond_signal(&reqs[i]->cv);
    }
    pthread_mutex_unlock(&g->mu);
    pthread_cond_destroy(&me.cv);
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

int udb_write(udb_env *env, udb_write_fn fn, void *ctx)
{
    if (!env || !fn)
        return udb__env_err(UDB_EINVAL, "udb_write: env and fn are required");
    int rc = udb__env_thread_holds(env, "udb_write");
    if (rc)
        return rc;
    udb_group *g = (env->flags & UDB_NOGROUP) ? NULL : group_of(env);
    if (!g)
        return write_alone(env, fn, ctx);
    return write_grouped(env, g, fn, ctx);
}
