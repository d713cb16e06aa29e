/*
 * group.h -- group commit (group.c), as udb_exec() uses it.
 */
#ifndef UDB_GROUP_H
#define UDB_GROUP_H

#include "unit.h"

/* Run u in a write transaction, as udb_write() runs a function (same group
 * commit, durability and map growth), except that u, being data, may be
 * handed to the group commit leader of another process sharing the
 * database (ship.h) and run there.  Returns what udb_write() would; the
 * results are in u->res either way, u->failed / u->failed_rc set. */
int udb__write_unit(udb_env *env, udb_unit *u);

#endif
