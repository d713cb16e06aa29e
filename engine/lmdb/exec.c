/*
 * exec.c -- udb_exec: a unit of record operations given as data (unit.c),
 * run as one atomic step through group commit (group.c), which may hand it
 * to the leader of another process.
 */
#include <stdlib.h>

#include "env.h"
#include "error.h"
#include "group.h"
#include "unit.h"

int udb_exec(udb_results **results, udb_env *env, const udb_op *ops, size_t n)
{
    if (results)
        *results = NULL;
    if (!results || !env || !ops)
        return udb__env_err(UDB_EINVAL, "udb_exec: results, env and ops are required");
    int rc = udb__unit_check(ops, n);
    if (rc || (rc = udb__env_thread_holds(env, "udb_exec")))
        return rc;
    udb_results *res = udb__results_new(n);
    if (!res)
        return udb__env_err(UDB_ENOMEM, "udb_exec: out of memory for %zu results", n);
    udb_unit u = {ops, n, res, n, 0};
    rc = udb__write_unit(env, &u);
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
