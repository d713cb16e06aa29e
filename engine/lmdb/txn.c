/*
 * txn.c -- transactions: begin, commit, abort, the per-transaction error
 * message, and the map-full bookkeeping that lets udb_write grow the map.
 *
 * A transaction pins the schema it began with (schemas are never freed while
 * the env is open) and counts itself active so that a map resize -- which
 * LMDB allows only when this process has no transaction open -- waits for it.
 * At begin it compares the stored schema generation with the cached one, so a
 * schema change made by another process is picked up before any work.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "keycodec.h"
#include "layout.h"
#include "mpack.h"
#include "txn_int.h"

static void txn_free(udb_txn *txn)
{
    udb__front_free(&txn->f);
    free(txn);
}

int udb__txn_begin_raw(udb_txn **out, udb_env *env, unsigned flags, udb_txn *parent)
{
    bool rdonly = flags & UDB_RDONLY;
    udb_txn *txn = calloc(1, sizeof *txn);
    if (!txn)
        return UDB_ENOMEM;
    udb__front_init(&txn->f, &udb__lmdb_backend, rdonly);
    txn->env = env;
    txn->parent = parent;
    int rc;
    if (parent) {
        txn->f.schema = parent->f.schema;
        rc = mdb_txn_begin(udb__env_mdb(env), parent->mdb, 0, &txn->mdb);
        if (rc) {
            txn_free(txn);
            return rc;
        }
        *out = txn;
        return 0;
    }
    if (!rdonly && (rc = udb__env_refuse_write(env))) {
        txn_free(txn);
        return rc;
    }
    udb_sync *sync = udb__env_sync(env);
    if (!rdonly) {
        if ((rc = udb__sync_usable(sync))) {
            txn_free(txn);
            return rc;
        }
        unsigned wait_ms = udb__env_lock_wait_ms(env);
        if ((rc = udb__sync_gate_enter(sync, wait_ms))) {
            txn_free(txn);
            if (rc != UDB_EBUSY)
                return rc;   /* with its message */
            return udb__env_err(rc, "another writer held the database's write lock for over "
                                "%u ms (udb_options.lock_wait_ms); nothing was written",
                                wait_ms);
        }
        txn->gated = sync != NULL;
        txn->writer = true;
    }
    for (;;) {
        if (!rdonly && (rc = udb__env_grow_if_wanted(env)))
            break;
        uint64_t gen;
        txn->owner = pthread_self();
        udb__env_enter(env, &txn->f.schema, &gen, txn->owner);
        rc = rdonly ? udb__env_reader_begin(env, &txn->mdb)
                    : mdb_txn_begin(udb__env_mdb(env), NULL, 0, &txn->mdb);
        if (rc == MDB_MAP_RESIZED) {
            udb__env_leave(env, txn->owner);
            if ((rc = udb__adopt(env)))
                break;
            continue;
        }
        if (rc) {
            udb__env_leave(env, txn->owner);
            break;
        }
        uint64_t stored;
        rc = udb__meta_gen(&stored, txn->mdb, udb__env_meta_dbi(env));
        if (!rc && stored == gen) {
            txn->counted = true;
            *out = txn;
            return 0;
        }
        if (rdonly)
            udb__env_reader_end(env, txn->mdb);
        else
            mdb_txn_abort(txn->mdb);
        txn->mdb = NULL;
        udb__env_leave(env, txn->owner);
        if (rc || (rc = udb__env_reload_schema(env)))
            break;
    }
    if (txn->writer)
        udb__sync_writer_end(sync, 0, 0);
    if (txn->gated)
        udb__sync_gate_leave(sync);
    txn_free(txn);
    return rc;
}

int udb__lmdb_begin(udb_txn **out, udb_env *env, unsigned flags)
{
    int rc;
    if (!(flags & UDB_RDONLY) && (rc = udb__env_thread_holds(env, "udb_begin")))
        return rc;
    rc = udb__txn_begin_raw(out, env, flags, NULL);
    if (rc && rc != UDB_EREADONLY) /* that one comes with its message */
        udb__env_err(rc, "udb_begin: %s", udb_strerror(rc));
    return rc;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* After a top-level write transaction that began as txnid `began` ended: tell
 * the sync file, and find what must be durable before it is acknowledged. */
static int writer_ended(uint64_t *ack, udb_env *env, uint64_t began, int rc, uint64_t took)
{
    udb_sync *sync = udb__env_sync(env);
    uint64_t last = 0;
    if (rc) {
        udb__sync_commit_failed(sync, rc);
    } else if (!udb__sync_counts_commits(sync)) {
        /* UDB_NOSYNC: nothing waits for its txnid */
    } else if ((rc = udb__env_last_txnid(&last, env))) {
        /* committed, but whether it wrote cannot be told: not acknowledged */
        last = 0;
        udb__env_err(rc, "commit: the commit is done, but its durability cannot be "
                     "confirmed: %s", udb_strerror(rc));
    }
    udb__sync_writer_end(sync, last >= began ? began : 0, took);
    if (!rc && ack)
        *ack = udb__sync_target(sync, began, last);
    return rc;
}

int udb__txn_end_nowait(udb_txn *txn, bool commit, uint64_t *ack)
{
    udb_env *env = txn->env;
    int rc = 0;
    bool writer = txn->writer;
    uint64_t began = 0, took = 0;
    *ack = 0;
    if (writer)
        began = mdb_txn_id(txn->mdb);
    bool refused = false;   /* no room reserved: nothing was written */
    if (commit && writer && (rc = udb__env_reserve(env))) {
        refused = true;
        mdb_txn_abort(txn->mdb);
        udb__env_err(rc, "commit: %s: the commit was refused before anything was written",
                     rc == ENOSPC ? "no space left on device" : strerror(rc));
    } else if (txn->f.rdonly && !txn->parent && !txn->damaged) {
        udb__env_reader_end(env, txn->mdb); /* a read-only commit is an abort */
    } else if (commit) {
        uint64_t t0 = now_ns();
        rc = udb__txn_full(txn, mdb_txn_commit(txn->mdb));
        if (rc && !txn->parent)
            rc = udb__env_io_rc(env, rc);
        took = now_ns() - t0;
    } else {
        mdb_txn_abort(txn->mdb);
    }
    if (txn->map_full && !txn->parent)
        udb__env_want_grow(env, txn->map_full_at);
    if (txn->map_full && txn->parent && !txn->parent->map_full) {
        txn->parent->map_full = true;
        txn->parent->map_full_at = txn->map_full_at;
    }
    if (txn->counted)
        udb__env_leave(env, txn->owner);
    if (txn->gated)
        udb__sync_gate_leave(udb__env_sync(env));
    txn_free(txn);
    if (writer) {
        if (refused) {
            udb__sync_writer_end(udb__env_sync(env), 0, 0);
        } else if (commit) {
            rc = writer_ended(ack, env, began, rc, took);
        } else {
            /* nothing written, but what it read is an answer too */
            udb__sync_writer_end(udb__env_sync(env), 0, 0);
            *ack = udb__sync_target(udb__env_sync(env), began, 0);
        }
    }
    return rc;
}

int udb__txn_ack(udb_env *env, uint64_t ack)
{
    return udb__sync_wait(udb__env_sync(env), ack);
}

int udb__txn_end(udb_txn *txn, bool commit)
{
    uint64_t ack;
    udb_env *env = txn->env;
    int rc = udb__txn_end_nowait(txn, commit, &ack);
    return rc ? rc : udb__txn_ack(env, ack);
}

int udb__lmdb_commit(udb_txn *txn)
{
    return udb__txn_end(txn, true);
}

void udb__lmdb_abort(udb_txn *txn)
{
    uint64_t ack;
    udb__txn_end_nowait(txn, false, &ack);   /* the caller asked for no answer */
}

/* A read-only snapshot is the latest while LMDB's last committed txnid (the
 * newer meta page, which every process's commit writes before it returns) is
 * the one it reads, and no resize of the map waits for this process's
 * transactions to end. */
int udb__lmdb_latest(int *latest, udb_txn *txn)
{
    if (!txn->f.rdonly || txn->parent || txn->damaged || !txn->mdb)
        return 0;
    MDB_envinfo info;
    if (mdb_env_info(udb__env_mdb(txn->env), &info))
        return 0;
    *latest = info.me_last_txnid == mdb_txn_id(txn->mdb) && !udb__env_grow_pending(txn->env);
    return 0;
}

int udb__txn_full(udb_txn *txn, int rc)
{
    if (rc == MDB_MAP_FULL && !txn->map_full) {
        txn->map_full = true;
        txn->map_full_at = udb__mapsize(txn->env);
    }
    return rc;
}

size_t udb__txn_full_at(const udb_txn *txn)
{
    return txn->map_full ? txn->map_full_at : 0;
}

MDB_txn *udb__txn_mdb(const udb_txn *txn)
{
    return txn->mdb;
}

udb_env *udb__txn_env(const udb_txn *txn)
{
    return txn->env;
}

size_t udb__txn_keymax(const udb_txn *txn)
{
    return udb__env_keymax(txn->env);
}

int udb__mdb_err(udb_txn *txn, int rc, const char *what)
{
    udb__txn_full(txn, rc);
    if (udb__mdb_damage(rc)) {
        txn->damaged = true;
        return udb__err(txn, UDB_ECORRUPT, "%s: the database is damaged (LMDB: %s); run "
                        "uniqdb check", what, mdb_strerror(rc));
    }
    if (rc == MDB_BAD_TXN && txn->damaged)   /* LMDB refuses a transaction after damage */
        return udb__err(txn, UDB_ECORRUPT, "%s: this transaction met a damaged page before, "
                        "and LMDB refuses the rest of it; run uniqdb check", what);
    return udb__err(txn, rc, "%s: %s", what, udb_strerror(rc));
}

int udb__out(udb_val *out, udb_txn *txn, const MDB_val *v)
{
    return udb__out_bytes(out, txn, v->mv_data, v->mv_size);
}

int udb__out_rec(udb_val *out, udb_txn *txn, const udb_type *t, const MDB_val *key,
                 const MDB_val *rec)
{
    return udb__out_record(out, txn, t, key->mv_data, key->mv_size, rec->mv_data, rec->mv_size);
}
