/*
 * mdb_error.c -- what LMDB's own codes mean: their text, and which of them
 * mean a damaged file (layout.h; error.h's backend half).
 */
#include <lmdb.h>

#include "error.h"
#include "layout.h"

const char *udb__store_strerror(int rc)
{
    if (rc < 0 && (rc < MDB_KEYEXIST || rc > MDB_LAST_ERRCODE))
        return "an application's own error code (not from uniqdb or LMDB)";
    return mdb_strerror(rc);        /* LMDB codes and errno values */
}

int udb__mdb_damage(int rc)
{
    return rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND || rc == MDB_CURSOR_FULL ||
           rc == MDB_INCOMPATIBLE;
}

int udb__store_damage(int rc)
{
    return rc == MDB_INVALID || udb__mdb_damage(rc);
}

_Static_assert(UDB_EMAPFULL == MDB_MAP_FULL, "UDB_EMAPFULL must be LMDB's MDB_MAP_FULL");
