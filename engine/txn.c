/*
 * txn.c -- transactions: begin, commit, abort, and udb_write's
 * run-commit-grow-retry loop.
 *
 * A transaction pins the schema it began with (schemas are never freed while
 * the env is open) and counts itself active so that a map resize -- which
 * LMDB allows only when this process has no transaction open -- waits for it.
 * At begin it compares the stored schema generation with the cached one, so a
 * schema change made by another process is picked up before any work.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

static void release_active(udb_env *env)
{
    pthread_mutex_lock(&env->lock);
    if (--env->active == 0)
        pthread_cond_broadcast(&env->cond);
    pthread_mutex_unlock(&env->lock);
}

static void txn_free(udb_txn *txn)
{
    udb__arena_free(&txn->arena);
    udb__buf_free(&txn->msg);
    udb__buf_free(&txn->cbuf);
    free(txn->cidx);
    free(txn->coff);
    free(txn);
}

int udb__txn_begin_raw(udb_txn **out, udb_env *env, unsigned flags, udb_txn *parent)
{
    bool rdonly = flags & UDB_RDONLY;
    udb_txn *txn = calloc(1, sizeof *txn);
    if (!txn)
        return UDB_ENOMEM;
    txn->env = env;
    txn->rdonly = rdonly;
    txn->parent = parent;
    int rc;
    if (parent) {
        txn->schema = parent->schema;
        rc = mdb_txn_begin(env->mdb, parent->mdb, 0, &txn->mdb);
        if (rc) {
            txn_free(txn);
            return rc;
        }
        *out = txn;
        return 0;
    }
    for (;;) {
        if (!rdonly && env->want_grow && (rc = udb__grow(env, env->grow_from)))
            break;
        pthread_mutex_lock(&env->lock);
        while (env->resizing)
            pthread_cond_wait(&env->cond, &env->lock);
        env->active++;
        txn->schema = env->schema;
        uint64_t gen = env->schema_gen;
        pthread_mutex_unlock(&env->lock);

        rc = mdb_txn_begin(env->mdb, NULL, rdonly ? MDB_RDONLY : 0, &txn->mdb);
        if (rc == MDB_MAP_RESIZED) {
            release_active(env);
            if ((rc = udb__adopt(env)))
                break;
            continue;
        }
        if (rc) {
            release_active(env);
            break;
        }
        uint64_t stored;
        rc = udb__meta_gen(&stored, txn->mdb, env);
        if (!rc && stored == gen) {
            txn->counted = true;
            *out = txn;
            return 0;
        }
        mdb_txn_abort(txn->mdb);
        txn->mdb = NULL;
        release_active(env);
        if (rc || (rc = udb__env_reload_schema(env)))
            break;
    }
    txn_free(txn);
    return rc;
}

int udb_begin(udb_txn **out, udb_env *env, unsigned flags)
{
    if (!out || !env || (flags & ~UDB_RDONLY))
        return udb__env_err(UDB_EINVAL, "udb_begin: bad arguments");
    int rc = udb__txn_begin_raw(out, env, flags, NULL);
    if (rc)
        udb__env_err(rc, "udb_begin: %s", udb_strerror(rc));
    return rc;
}

int udb__txn_end(udb_txn *txn, bool commit)
{
    udb_env *env = txn->env;
    int rc = 0;
    if (commit) {
        rc = mdb_txn_commit(txn->mdb);
        if (rc == MDB_MAP_FULL && !txn->map_full) {
            txn->map_full = true;
            txn->map_full_at = udb__mapsize(env);
        }
    } else {
        mdb_txn_abort(txn->mdb);
    }
    if (txn->map_full && !txn->parent) {
        pthread_mutex_lock(&env->lock);
        env->want_grow = true;
        env->grow_from = txn->map_full_at;
        pthread_mutex_unlock(&env->lock);
    }
    if (txn->map_full && txn->parent && !txn->parent->map_full) {
        txn->parent->map_full = true;
        txn->parent->map_full_at = txn->map_full_at;
    }
    if (txn->counted)
        release_active(env);
    txn_free(txn);
    return rc;
}

int udb_commit(udb_txn *txn)
{
    if (!txn)
        return UDB_EINVAL;
    return udb__txn_end(txn, true);
}

void udb_abort(udb_txn *txn)
{
    if (txn)
        udb__txn_end(txn, false);
}

/* Run fn in one transaction of its own, growing the map and rerunning as needed. */
static int write_alone(udb_env *env, int (*fn)(udb_txn *, void *), void *ctx)
{
    for (;;) {
        udb_txn *txn;
        int rc = udb__txn_begin_raw(&txn, env, 0, NULL);
        if (rc)
            return udb__env_err(rc, "udb_write: begin: %s", udb_strerror(rc));
        rc = fn(txn, ctx);
        bool full = txn->map_full;
        size_t at = txn->map_full_at;
        if (rc && !full) {
            udb__env_err(rc, "%s", udb_errmsg(txn)[0] ? udb_errmsg(txn) : udb_strerror(rc));
            udb__txn_end(txn, false);
            return rc;
        }
        if (!full) {
            at = udb__mapsize(env);
            rc = udb__txn_end(txn, true);
            if (rc != MDB_MAP_FULL)
                return rc ? udb__env_err(rc, "udb_write: commit: %s", udb_strerror(rc)) : 0;
        } else {
            udb__txn_end(txn, false);
        }
        if ((rc = udb__grow(env, at)))
            return rc;
    }
}

/*
 * Group commit.  LMDB has one writer and syncs on every commit, so N
 * concurrent durable writers would pay N commits.  Instead, concurrent
 * udb_write callers queue up; the first becomes the leader, takes the whole
 * queue, runs each fn inside its own nested transaction (so one failure rolls
 * back only its own work), commits once, and wakes the others with their own
 * results.  This is LevelDB's write queue on top of LMDB's nested transactions.
 */
#define GROUP_MAX 128

typedef struct greq {
    int (*fn)(udb_txn *, void *);
    void *ctx;
    int rc;
    bool done;
    struct greq *next;
    char msg[512];
} greq;

struct udb_group {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_cond_t arrive;      /* a request was queued (the leader may be gathering) */
    greq *head, *tail;
    bool leading;
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
 * them to queue up again. */
static void gather(udb_group *g)
{
    if (g->last_n < 2)
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

udb_group *udb__group_new(void)
{
    udb_group *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->arrive, &ca);
    pthread_condattr_destroy(&ca);
    return g;
}

void udb__group_free(udb_group *g)
{
    if (!g)
        return;
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    pthread_cond_destroy(&g->arrive);
    free(g);
}

static void keep_msg(greq *r, udb_txn *txn, int rc)
{
    const char *m = udb_errmsg(txn);
    snprintf(r->msg, sizeof r->msg, "%s", m[0] ? m : udb_strerror(rc));
}

/* Run one batch in one transaction.  Returns the commit's result; each
 * request's own result is in r->rc.  *grow_at is set when the map filled. */
static int run_batch(udb_env *env, greq **batch, size_t n, size_t *grow_at)
{
    udb_txn *top;
    *grow_at = 0;
    int rc = udb__txn_begin_raw(&top, env, 0, NULL);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        greq *r = batch[i];
        if (n == 1) {   /* alone: no need for a nested transaction */
            r->rc = r->fn(top, r->ctx);
            if (r->rc && !top->map_full) {
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
        if (top->map_full)
            break;
    }
    if (top->map_full) {
        *grow_at = top->map_full_at;
        udb__txn_end(top, false);
        return MDB_MAP_FULL;
    }
    size_t at = udb__mapsize(env);
    rc = udb__txn_end(top, true);
    if (rc == MDB_MAP_FULL)
        *grow_at = at;
    return rc;
}

static int write_grouped(udb_env *env, int (*fn)(udb_txn *, void *), void *ctx)
{
    udb_group *g = env->group;
    greq me = {.fn = fn, .ctx = ctx};
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
        pthread_cond_wait(&g->cv, &g->mu);
    if (me.done) {
        pthread_mutex_unlock(&g->mu);
        if (me.rc)
            udb__env_err(me.rc, "%s", me.msg);
        return me.rc;
    }
    /* leader: take up to GROUP_MAX queued requests, oldest first */
    g->leading = true;
    gather(g);
    greq *batch[GROUP_MAX];
    size_t n = 0;
    for (greq *r = g->head; r && n < GROUP_MAX; r = r->next)
        batch[n++] = r;
    pthread_mutex_unlock(&g->mu);

    int rc;
    long t0 = now_ns();
    for (;;) {
        size_t grow_at;
        rc = run_batch(env, batch, n, &grow_at);
        if (rc != MDB_MAP_FULL || !grow_at)
            break;
        if ((rc = udb__grow(env, grow_at)))
            break;
    }
    char full_msg[256];   /* udb__grow's message, before anything overwrites it */
    snprintf(full_msg, sizeof full_msg, "%s", udb_env_errmsg(env));
    for (size_t i = 0; i < n; i++) {
        /* the shared commit failed, or the map could not grow (UDB_ESIZELIMIT): so
           did everyone -- including an fn that saw the raw MDB_MAP_FULL */
        if (rc && (!batch[i]->rc || batch[i]->rc == MDB_MAP_FULL)) {
            batch[i]->rc = rc;
            snprintf(batch[i]->msg, sizeof batch[i]->msg, "udb_write: %s",
                     rc == UDB_ESIZELIMIT ? full_msg : udb_strerror(rc));
        }
    }

    long took = now_ns() - t0;
    pthread_mutex_lock(&g->mu);
    g->last_n = n;
    g->last_commit_ns = took;
    g->queued -= n;
    g->head = batch[n - 1]->next;
    if (!g->head)
        g->tail = NULL;
    for (size_t i = 0; i < n; i++)
        batch[i]->done = true;
    g->leading = false;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    if (me.rc)
        udb__env_err(me.rc, "%s", me.msg);
    return me.rc;
}

int udb_write(udb_env *env, udb_write_fn fn, void *ctx)
{
    if (!env || !fn)
        return udb__env_err(UDB_EINVAL, "udb_write: env and fn are required");
    if ((env->flags & UDB_NOGROUP) || !env->group)
        return write_alone(env, fn, ctx);
    return write_grouped(env, fn, ctx);
}
