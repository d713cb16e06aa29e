/*
 * pgenv.c -- a uniqdb database on a PostgreSQL server, as a udb_env: what
 * udb_open of a postgresql:// or postgres:// URL returns (backend.h's
 * udb_env_ops; core/envapi.c dispatches the public calls here).
 *
 * A udb_env holds a pool of connections (conn.c) that its threads share;
 * each transaction holds one connection for its life (pgstore.c).  Writers
 * run SERIALIZABLE, so the server may refuse one that met a concurrent
 * transaction (40001, 40P01): udb_write and udb_exec then run the work
 * again from the start -- the contract udb_write's callbacks already have
 * for map growth on LMDB -- up to RETRIES times, then give UDB_EBUSY; a
 * caller of udb_begin gets UDB_ERETRY and decides.  A connection lost
 * during COMMIT leaves the outcome unknown: udb_write says so
 * (UDB_EINDOUBT) and never runs the work again by itself; udb_exec writes
 * its unit's id in the unit's own transaction, so it reads whether the unit
 * was committed and answers as if the connection had held.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "backend.h"
#include "error.h"
#include "pgconn.h"
#include "pgmeta.h"
#include "pgstore.h"
#include "unit.h"

/* Connections per environment: threads beyond this many in transactions
 * wait for one to be released. */
#define POOL_MAX 16
/* Times udb_write/udb_exec run work the server refused as concurrent. */
#define RETRIES 32
/* udb_exec sweeps old unit ids once in this many units (per process). */
#define SWEEP_EVERY 4096

typedef struct udb_pgenv {
    udb_envfront f;            /* first: its operations (backend.h) */
    udb_pgpool *pool;
    unsigned flags;            /* udb_options.flags */
    _Atomic unsigned long units;
} udb_pgenv;

static udb_pgenv *pge(udb_env *env)
{
    return (udb_pgenv *)(void *)env;
}

static int env_err(int rc, const char *call, const udb_buf *msg)
{
    return udb__env_err(rc, "%s: %.*s", call, msg->p ? (int)msg->len : 0,
                        msg->p ? (const char *)msg->p : udb_strerror(rc));
}

/* LMDB's rule, kept on a server: a thread holding a transaction of env does
 * not write through another (there it would wait for itself; here, for a
 * connection its own transactions may hold). */
static int pg_may_write(udb_env *env, const char *call)
{
    if (!udb__pg_thread_holds(pge(env)->pool))
        return 0;
    return udb__env_err(UDB_EINVAL, "%s: the calling thread already has a transaction open on "
                        "this database; a thread must end it before writing (udb_write, or "
                        "udb_begin for writing): a write may wait for a connection of the "
                        "pool, which this thread's own transactions hold (and on LMDB it would "
                        "wait for itself)", call);
}

static int pg_begin(udb_txn **out, udb_env *env, unsigned flags)
{
    udb_pgenv *e = pge(env);
    if (!(flags & UDB_RDONLY) && (e->flags & UDB_RDONLY_ENV))
        return udb__env_err(UDB_EREADONLY, "udb_begin: the database was opened read-only "
                            "(UDB_RDONLY_ENV)");
    if (!(flags & UDB_RDONLY) && (e->flags & UDB_NOSYNC))
        flags |= UDB__PG_NOSYNC;
    udb_buf msg = {0};
    int rc = udb__pg_begin(out, e->pool, flags, &msg);
    if (rc)
        env_err(rc, "udb_begin", &msg);
    udb__buf_free(&msg);
    return rc;
}

static int pg_begin_checked(udb_txn **out, udb_env *env, unsigned flags)
{
    int rc = flags & UDB_RDONLY ? 0 : pg_may_write(env, "udb_begin");
    return rc ? rc : pg_begin(out, env, flags);
}

/* A short random pause before running refused work again, growing with
 * the attempt, so that the writers that collided do not collide again. */
static void backoff(unsigned attempt)
{
    unsigned r;
    if (getrandom(&r, sizeof r, 0) != sizeof r)
        r = (unsigned)clock();
    unsigned cap = attempt < 8 ? 1u << attempt : 256;      /* x 100 us */
    struct timespec ts = {0, (long)(r % cap + 1) * 100000L};
    nanosleep(&ts, NULL);
}

/* Run fn in one write transaction and commit; again on UDB_ERETRY.  unit:
 * udb_exec's unit, whose id goes into the transaction. */
static int write_retrying(udb_env *env, udb_write_fn fn, void *ctx, udb_unit *unit)
{
    udb_pgenv *e = pge(env);
    int held = unit ? 0 : pg_may_write(env, "udb_write");   /* udb_exec asked already */
    if (held)
        return held;
    unsigned char id[UDB_PG_UNIT_ID];
    if (unit && getrandom(id, sizeof id, 0) != sizeof id)
        return udb__env_err(UDB_ENOMEM, "udb_exec: no random bytes for the unit's id");
    for (unsigned attempt = 0;; attempt++) {
        udb_txn *txn;
        int rc = pg_begin(&txn, env, 0);
        if (rc)
            return rc;
        rc = fn(txn, ctx);
        if (!rc && unit)
            rc = udb__pg_unit_mark(txn, id);
        bool retry = udb__pg_txn_retry(txn) || rc == UDB_ERETRY;
        if (rc || retry) {
            /* as on LMDB (group.c): fn's message, or the code's text when fn
               failed without one */
            if (!retry)
                udb__env_err(rc, "%s", udb_errmsg(txn)[0] ? udb_errmsg(txn) : udb_strerror(rc));
            udb__pg_abort(txn);
        } else {
            udb_buf msg = {0};
            rc = udb__pg_commit(txn, &msg);
            if (rc == UDB_EINDOUBT && unit) {
                bool seen = false;
                udb_buf m2 = {0};
                int rc2 = udb__pg_unit_seen(&seen, e->pool, id, &m2);
                if (!rc2)
                    rc = seen ? 0 : UDB_ERETRY;   /* not written: run it again */
                udb__buf_free(&m2);
            }
            retry = rc == UDB_ERETRY;
            if (rc && !retry)
                env_err(rc, unit ? "udb_exec" : "udb_write", &msg);
            udb__buf_free(&msg);
            if (!rc && unit && ++e->units % SWEEP_EVERY == 0) {
                udb_buf m3 = {0};
                udb__pg_unit_sweep(e->pool, &m3);   /* best effort: the next one tries again */
                udb__buf_free(&m3);
            }
        }
        if (!retry)
            return rc;
        if (attempt + 1 >= RETRIES)
            return udb__env_err(UDB_EBUSY, "%s: the server refused the transaction as "
                                "concurrent with others %u times (serialization failures or "
                                "deadlocks); nothing was written", unit ? "udb_exec"
                                : "udb_write", RETRIES);
        if (attempt)
            backoff(attempt - 1);   /* the first rerun at once, as a hand-written retry */
        /* (a unit's next run starts afresh: udb__unit_run) */
    }
}

static int pg_write(udb_env *env, udb_write_fn fn, void *ctx)
{
    return write_retrying(env, fn, ctx, NULL);
}

static int pg_write_unit(udb_env *env, udb_unit *u)
{
    return write_retrying(env, udb__unit_run, u, u);
}

static int pg_schema_apply(char **changes, udb_env *env, const char *json, size_t len,
                           unsigned flags, udb_locked_fn locked, void *payload)
{
    udb_pgenv *e = pge(env);
    if (e->flags & UDB_RDONLY_ENV)
        return udb__env_err(UDB_EREADONLY, "udb_schema_apply: the database was opened "
                            "read-only (UDB_RDONLY_ENV)");
    /* the change is one server transaction: giving up at any moment
       leaves the database as it was, so "locked" may be told at once */
    if (locked)
        locked(payload);
    udb_buf msg = {0};
    int rc = udb__pg_schema_apply(changes, e->pool, json, len, flags, &msg);
    if (rc)
        env_err(rc, "udb_schema_apply", &msg);
    udb__buf_free(&msg);
    return rc;
}

static int pg_schema_json(char **out, udb_env *env)
{
    udb_pgenv *e = pge(env);
    udb_buf msg = {0};
    PGconn *c;
    udb_schema *s = NULL;
    uint64_t gen;
    int rc = udb__pg_acquire(&c, e->pool, &msg);
    if (!rc) {
        rc = udb__pg_meta_read(&s, &gen, c, udb__pg_pool_schema(e->pool), &msg);
        udb__pg_release(e->pool, c);
    }
    if (rc) {
        env_err(rc, "udb_schema_json", &msg);
    } else if (!s) {
        rc = udb__env_err(UDB_ENOTFOUND, "no schema has been applied to this database");
    } else if (!(*out = malloc(s->json_len + 1))) {
        rc = UDB_ENOMEM;
    } else {
        memcpy(*out, s->json, s->json_len + 1);
    }
    udb__schema_free(s);
    udb__buf_free(&msg);
    return rc;
}

static int pg_usage(size_t *map_size, size_t *used, udb_env *env)
{
    (void)map_size;
    (void)used;
    (void)env;
    return udb__env_err(UDB_EINVAL, "udb_env_usage: a PostgreSQL database has no map: the "
                        "server manages its storage (udb_type_stat_get gives each type's "
                        "bytes)");
}

static int pg_space(udb_space *out, udb_env *env)
{
    (void)out;
    (void)env;
    return udb__env_err(UDB_EINVAL, "udb_env_space: a PostgreSQL database has no data file "
                        "of uniqdb's: the server manages its storage");
}

static int pg_backup(udb_env *env, const char *dest, unsigned flags)
{
    (void)env;
    (void)dest;
    (void)flags;
    return udb__env_err(UDB_EINVAL, "udb_backup: a PostgreSQL database is backed up with the "
                        "server's tools (pg_dump, pg_basebackup), or moved with uniqdb dump");
}

static void pg_close(udb_env *env)
{
    udb_pgenv *e = pge(env);
    udb__env_async_drain(env);
    udb__env_async_stop(env);
    udb__pg_pool_close(e->pool);
    udb__env_front_free(&e->f);
    free(e);
}

static const udb_env_ops pg_env_ops = {
    .name = "postgresql",
    .begin = pg_begin_checked,
    .write = pg_write,
    .write_unit = pg_write_unit,
    .may_write = pg_may_write,
    .schema_apply = pg_schema_apply,
    .schema_json = pg_schema_json,
    .check = udb__pg_check,
    .usage = pg_usage,
    .space = pg_space,
    .backup = pg_backup,
    .close = pg_close,
};

int udb__pg_open(udb_env **out, const char *url, const udb_options *opts)
{
    if (opts->flags & UDB_NOLOCK)
        return udb__env_err(UDB_EINVAL, "udb_open: UDB_NOLOCK is for LMDB files; a PostgreSQL "
                            "database is always shared safely");
    udb_pgenv *e = calloc(1, sizeof *e);
    if (!e)
        return udb__env_err(UDB_ENOMEM, "udb_open: out of memory");
    udb__env_front_init(&e->f, &pg_env_ops);
    e->flags = opts->flags;
    udb_buf shown = {0}, msg = {0};
    udb__pg_url_redact(&shown, url);
    int rc = udb__pg_pool_open(&e->pool, url, POOL_MAX, &msg);
    if (rc) {
        udb__env_err(rc, "udb_open: %s: %.*s", shown.p && !shown.oom ? (char *)shown.p : "?",
                     (int)msg.len, msg.p ? (const char *)msg.p : udb_strerror(rc));
        udb__buf_free(&shown);
        udb__buf_free(&msg);
        udb__env_front_free(&e->f);
        free(e);
        return rc;
    }
    udb__buf_free(&shown);
    udb__buf_free(&msg);
    *out = (udb_env *)(void *)e;
    return 0;
}
