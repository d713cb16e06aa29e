/*
 * error.h -- the environment-level error message (error.c).  A leaf: error.c
 * calls nothing else of the engine.  Messages of a transaction live with the
 * transaction (txn.h); conflict detail in conflict.c.
 */
#ifndef UDB_ERROR_H
#define UDB_ERROR_H

#include "uniqdb.h"

/* Set the message udb_env_errmsg() returns (for calls that take an env or
 * make one) and return rc. */
int udb__env_err(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* LMDB codes that mean a damaged file, met while reading one that opened
 * (MDB_CORRUPTED, MDB_PAGE_NOTFOUND, MDB_CURSOR_FULL, MDB_INCOMPATIBLE). */
int udb__mdb_damage(int rc);

#endif
