/*
 * envops.c -- the LMDB backend's environment operations (backend.h,
 * udb_env_ops): the table core/envapi.c dispatches the public calls on an
 * LMDB environment through.  Each is implemented in the file env.h names.
 */
#include "env.h"
#include "group.h"

const udb_env_ops udb__lmdb_env_ops = {
    .name = "lmdb",
    .begin = udb__lmdb_begin,
    .write = udb__lmdb_write,
    .write_unit = udb__write_unit,
    .may_write = udb__env_thread_holds,
    .schema_apply = udb__lmdb_schema_apply,
    .schema_json = udb__lmdb_schema_json,
    .check = udb__lmdb_check,
    .usage = udb__lmdb_usage,
    .space = udb__lmdb_space,
    .backup = udb__lmdb_backup,
    .close = udb__lmdb_close,
};
