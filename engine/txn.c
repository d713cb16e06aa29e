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
#include <stdlib.h>
#include <string.h>

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

int udb_write(udb_env *env, int (*fn)(udb_txn *txn, void *ctx), void *ctx)
{
    if (!env || !fn)
        return udb__env_err(UDB_EINVAL, "udb_write: env and fn are required");
    return write_alone(env, fn, ctx);
}
