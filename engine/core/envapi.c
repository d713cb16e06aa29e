/*
 * envapi.c -- the public calls on an environment: udb_open picks the
 * backend from the path (a postgresql:// or postgres:// URL is a PostgreSQL
 * database, anything else an LMDB directory); every other call checks its
 * arguments and goes to the environment's backend (backend.h, udb_env_ops),
 * or to the transaction's (udb_commit, udb_abort, udb_type_stat_get).
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "error.h"
#include "unit.h"

static bool is_pg_url(const char *path)
{
    return strncmp(path, "postgresql://", 13) == 0 || strncmp(path, "postgres://", 11) == 0;
}

int udb_open(udb_env **out, const char *path, const udb_options *opts)
{
    if (!out || !path || !*path)
        return udb__env_err(UDB_EINVAL, "udb_open: out and path are required");
    udb_options o = UDB_OPTIONS_INIT;
    if (opts) {
        if (opts->version < 1 || opts->version > UDB_OPTIONS_VERSION)
            return udb__env_err(UDB_EINVAL, "udb_open: udb_options.version is %u; this uniqdb "
                                "knows 1 to %d (start from UDB_OPTIONS_INIT)", opts->version,
                                UDB_OPTIONS_VERSION);
        /* an earlier version's struct ends before the fields added since */
        memcpy(&o, opts, opts->version == 1   ? offsetof(udb_options, grow_wait_ms)
                         : opts->version == 2 ? offsetof(udb_options, lock_wait_ms)
                                              : sizeof o);
        o.version = UDB_OPTIONS_VERSION;
    }
    if (o.flags & ~(UDB_NOSYNC | UDB_NOMETASYNC | UDB_NOGROUP | UDB_RDONLY_ENV | UDB_NOLOCK |
                    UDB_NOSHIP))
        return udb__env_err(UDB_EINVAL, "udb_open: unknown flags 0x%x", o.flags);
    if (!is_pg_url(path))
        return udb__lmdb_open(out, path, &o);
#ifdef UDB_HAVE_PG
    return udb__pg_open(out, path, &o);
#else
    return udb__env_err(UDB_EINVAL, "udb_open: %.40s...: this uniqdb was built without "
                        "PostgreSQL support (libpq was missing at build time)", path);
#endif
}

void udb_close(udb_env *env)
{
    if (env)
        udb__envfront(env)->ops->close(env);
}

void udb__env_front_init(udb_envfront *f, const udb_env_ops *ops)
{
    f->ops = ops;
    pthread_mutex_init(&f->async_lock, NULL);
}

void udb__env_front_free(udb_envfront *f)
{
    pthread_mutex_destroy(&f->async_lock);
}

struct udb_async *udb__env_async(udb_env *env, struct udb_async *(*make)(udb_env *env),
                                 void (*stop)(struct udb_async *a),
                                 void (*drain)(struct udb_async *a))
{
    udb_envfront *f = udb__envfront(env);
    pthread_mutex_lock(&f->async_lock);
    if (!f->async && make && (f->async = make(env))) {
        f->async_stop = stop;
        f->async_drain = drain;
    }
    struct udb_async *a = f->async;
    pthread_mutex_unlock(&f->async_lock);
    return a;
}

void udb__env_async_drain(udb_env *env)
{
    udb_envfront *f = udb__envfront(env);
    pthread_mutex_lock(&f->async_lock);
    struct udb_async *a = f->async;
    void (*drain)(struct udb_async *) = f->async_drain;
    pthread_mutex_unlock(&f->async_lock);
    if (a)
        drain(a);
}

void udb__env_async_stop(udb_env *env)
{
    udb_envfront *f = udb__envfront(env);
    if (f->async)
        f->async_stop(f->async);
}

int udb__env_write_unit(udb_env *env, struct udb_unit *u)
{
    return udb__envfront(env)->ops->write_unit(env, u);
}

int udb_begin(udb_txn **out, udb_env *env, unsigned flags)
{
    if (out)
        *out = NULL;
    if (!out || !env || (flags & ~UDB_RDONLY))
        return udb__env_err(UDB_EINVAL, "udb_begin: %s", !out || !env
                                ? "out and env are required"
                                : "unknown flags (allowed: UDB_RDONLY)");
    return udb__envfront(env)->ops->begin(out, env, flags);
}

int udb_commit(udb_txn *txn)
{
    if (!txn)
        return UDB_EINVAL;
    return udb__txn_backend(txn)->commit(txn);
}

void udb_abort(udb_txn *txn)
{
    if (txn)
        udb__txn_backend(txn)->abort(txn);
}

int udb_txn_latest(int *latest, udb_txn *txn)
{
    if (latest)
        *latest = 0;
    if (!latest || !txn)
        return UDB_EINVAL;
    int (*fn)(int *, udb_txn *) = udb__txn_backend(txn)->latest;
    return fn ? fn(latest, txn) : 0;
}

int udb_write(udb_env *env, udb_write_fn fn, void *ctx)
{
    if (!env || !fn)
        return udb__env_err(UDB_EINVAL, "udb_write: env and fn are required");
    return udb__envfront(env)->ops->write(env, fn, ctx);
}

int udb_exec(udb_results **results, udb_env *env, const udb_op *ops, size_t n)
{
    if (results)
        *results = NULL;
    if (!results || !env || !ops)
        return udb__env_err(UDB_EINVAL, "udb_exec: results, env and ops are required");
    int rc = udb__unit_check(ops, n);
    const udb_env_ops *eo = udb__envfront(env)->ops;
    if (rc || (eo->may_write && (rc = eo->may_write(env, "udb_exec"))))
        return rc;
    udb_results *res = udb__results_new(n);
    if (!res)
        return udb__env_err(UDB_ENOMEM, "udb_exec: out of memory for %zu results", n);
    udb_unit u = {ops, n, res, n, 0};
    rc = udb__env_write_unit(env, &u);
    udb__unit_settle(&u, rc);
    *results = res;
    return rc;
}

const udb_result *udb_result_at(const udb_results *res, size_t i)
{
    return res && i < res->count ? &res->items[i] : NULL;
}

size_t udb_results_failed(const udb_results *res)
{
    return res ? res->failed : (size_t)-1;
}

void udb_results_free(udb_results *res)
{
    if (!res)
        return;
    udb__arena_free(&res->arena);
    free(res->items);
    free(res);
}

int udb_schema_apply(char **changes, udb_env *env, const char *json, size_t len, unsigned flags)
{
    return udb_schema_apply_notify(changes, env, json, len, flags, NULL, NULL);
}

int udb_schema_apply_notify(char **changes, udb_env *env, const char *json, size_t len,
                            unsigned flags, udb_locked_fn locked, void *payload)
{
    if (!env || !json)
        return udb__env_err(UDB_EINVAL, "udb_schema_apply: env and json are required");
    return udb__envfront(env)->ops->schema_apply(changes, env, json, len, flags, locked,
                                                  payload);
}

int udb_schema_json(char **out, udb_env *env)
{
    if (!out || !env)
        return UDB_EINVAL;
    return udb__envfront(env)->ops->schema_json(out, env);
}

int udb_check(size_t *problems, udb_env *env, udb_report_fn report, void *ctx)
{
    return udb_check_type(problems, env, NULL, report, NULL, ctx);
}

int udb_check_progress(size_t *problems, udb_env *env, udb_report_fn report,
                       udb_progress_fn progress, void *ctx)
{
    return udb_check_type(problems, env, NULL, report, progress, ctx);
}

int udb_check_type(size_t *problems, udb_env *env, const char *type,
                   udb_report_fn report, udb_progress_fn progress, void *ctx)
{
    if (problems)
        *problems = 0;
    if (!env)
        return udb__env_err(UDB_EINVAL, "udb_check: env is required");
    return udb__envfront(env)->ops->check(problems, env, type, report, progress, ctx);
}

int udb_type_stat_get(udb_type_stat *out, udb_txn *txn, const char *type)
{
    udb_type *t;
    int rc = udb__txn_type(&t, txn, type, false);
    if (rc)
        return rc;
    if (!out)
        return udb__err(txn, UDB_EINVAL, "out is required");
    memset(out, 0, sizeof *out);
    return udb__txn_backend(txn)->type_stat(out, txn, t);
}

int udb_env_usage(size_t *map_size, size_t *used, udb_env *env)
{
    if (!env)
        return UDB_EINVAL;
    return udb__envfront(env)->ops->usage(map_size, used, env);
}

int udb_env_space(udb_space *out, udb_env *env)
{
    if (!env)
        return udb__env_err(UDB_EINVAL, "udb_env_space: env is NULL");
    return udb__envfront(env)->ops->space(out, env);
}

int udb_backup(udb_env *env, const char *dest, unsigned flags)
{
    if (!env)
        return udb__env_err(UDB_EINVAL, "udb_backup: env is NULL");
    return udb__envfront(env)->ops->backup(env, dest, flags);
}
