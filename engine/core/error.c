/*
 * error.c -- the text of error codes and the environment-level message.
 * A leaf: it calls nothing else of the engine but the storage backend's
 * own codes (error.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "error.h"

static _Thread_local char env_msg[1024];

const char *udb_strerror(int rc)
{
    switch (rc) {
    case 0: return "success";
    case UDB_ECONFLICT: return "unique constraint violated";
    case UDB_ENOTFOUND: return "not found";
    case UDB_EBADRECORD: return "record does not match the schema";
    case UDB_ESCHEMA: return "invalid schema or schema change";
    case UDB_EKEYTOOLONG: return "key too long";
    case UDB_ECORRUPT: return "database is damaged";
    case UDB_EINVAL: return "invalid argument";
    case UDB_ESIZELIMIT: return "database reached its maximum size";
    case UDB_ENOMEM: return "out of memory";
    case UDB_EREADONLY: return "write in a read-only transaction";
    case UDB_EFORMAT: return "not a uniqdb database, or an unsupported format version";
    case UDB_EEXHAUSTED: return "sequence exhausted";
    case UDB_EBUSY: return "transactions stayed open while the map had to be resized";
    case UDB_EFLUSHFAILED: return "a flush to disk failed; writes refused until the database is reopened";
    case UDB_ECONNECT: return "the PostgreSQL server could not be reached, or the connection was lost";
    case UDB_EAUTH: return "the PostgreSQL server refused the login";
    case UDB_ESERVER: return "the PostgreSQL server reported an error";
    case UDB_ERETRY: return "the transaction met a concurrent one and was rolled back: run it again";
    case UDB_EINDOUBT: return "the connection was lost during commit: the transaction may or may not have been written";
    default:
        return udb__store_strerror(rc);  /* the backend's codes and errno values */
    }
}

int udb_is_damage(int rc)
{
    return rc == UDB_ECORRUPT || udb__store_damage(rc);
}

const char *udb_env_errmsg(const udb_env *env)
{
    (void)env;
    return env_msg;
}

void udb_free(void *p)
{
    free(p);
}

int udb__env_err(int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(env_msg, sizeof env_msg, fmt, ap);
    va_end(ap);
    return rc;
}
