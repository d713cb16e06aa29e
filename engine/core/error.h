/*
 * error.h -- the environment-level error message (error.c).  A leaf: error.c
 * calls nothing else of the engine but the two functions of the storage
 * backend below.  Messages of a transaction live with the transaction
 * (txn.h); conflict detail in conflict.h.
 */
#ifndef UDB_ERROR_H
#define UDB_ERROR_H

#include "uniqdb.h"

/* Set the message udb_env_errmsg() returns (for calls that take an env or
 * make one) and return rc. */
int udb__env_err(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Defined by the storage backend (lmdb/mdb_error.c): the text of a code
 * that is not uniqdb's -- the backend's own codes, errno values, and what
 * is neither (an application's code returned through udb_write) -- and
 * whether a backend code means a damaged database (udb_is_damage). */
const char *udb__store_strerror(int rc);
int udb__store_damage(int rc);

#endif
