/*
 * txn.h -- transactions as the operations see them (txn.c, conflict.c):
 * begin and end, the per-transaction error message and conflict detail, and
 * the map-full bookkeeping.  The body of struct udb_txn is in txn_int.h.
 */
#ifndef UDB_TXN_H
#define UDB_TXN_H

#include <lmdb.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

#include "env.h"
#include "schema.h"
#include "uniqdb.h"

/* flags: UDB_RDONLY.  parent: a nested transaction inside it (group commit). */
int  udb__txn_begin_raw(udb_txn **out, udb_env *env, unsigned flags, udb_txn *parent);
/* End a transaction: commit (commit=true) or abort, then free it.  A
 * top-level write transaction returns only once its outcome may be
 * acknowledged (sync.h): what it wrote and the snapshot it read are durable
 * (aborted: the snapshot). */
int  udb__txn_end(udb_txn *txn, bool commit);
/* The same without waiting: *ack gets what udb__txn_ack must wait for
 * (0: nothing), so the caller can do more work first (group commit). */
int  udb__txn_end_nowait(udb_txn *txn, bool commit, uint64_t *ack);
/* Wait until ack is durable (see udb__sync_wait for more_coming).  0, or
 * UDB_EFLUSHFAILED: the commit stands but must not be acknowledged. */
int  udb__txn_ack(udb_env *env, uint64_t ack, bool more_coming);

MDB_txn *udb__txn_mdb(const udb_txn *txn);
udb_env *udb__txn_env(const udb_txn *txn);
const udb_schema *udb__txn_schema(const udb_txn *txn);  /* NULL before any schema */
bool     udb__txn_rdonly(const udb_txn *txn);
size_t   udb__txn_keymax(const udb_txn *txn);

/* Note rc in txn's map-full state and return it: MDB_MAP_FULL means the
 * map must grow before the work can be done again. */
int    udb__txn_full(udb_txn *txn, int rc);
/* The map size at which txn hit MDB_MAP_FULL, 0 if it did not. */
size_t udb__txn_full_at(const udb_txn *txn);

/* The type named type, for reading or (write) writing in txn; clears the
 * message.  UDB_EINVAL / UDB_EREADONLY with message. */
int udb__txn_type(udb_type **out, udb_txn *txn, const char *type, bool write);
/* UDB_EINVAL for an index name t does not have (or, with unique, one that is
 * not unique), the message listing the names that would do. */
int udb__err_index(udb_txn *txn, const udb_type *t, const char *index, bool unique);
/* Hand v to the caller: copied into txn memory if the txn writes (LMDB
 * pointers move then).  out may be NULL. */
int udb__out(udb_val *out, udb_txn *txn, const MDB_val *v);
/* udb__out for a stored record of t under encoded key `key`, checked first:
 * LMDB trusts its pages, so a damaged one can hand back garbage.  A record
 * that is not a well-formed msgpack map of at most UDB_MAX_RECORD bytes is
 * UDB_ECORRUPT, the message naming the type and the key. */
int udb__out_rec(udb_val *out, udb_txn *txn, const udb_type *t, const MDB_val *key,
                 const MDB_val *rec);

/* The message udb_errmsg() returns: set it and return rc; clear it. */
int  udb__err(udb_txn *txn, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* An LMDB failure while doing what: message, and map-full bookkeeping.  A
 * code of udb__mdb_damage() becomes UDB_ECORRUPT (the message names LMDB's),
 * and so does the MDB_BAD_TXN with which LMDB refuses everything after it. */
int  udb__mdb_err(udb_txn *txn, int rc, const char *what);
void udb__clear(udb_txn *txn);

/* Conflict detail (conflict.c): call begin, then add once per violated
 * index, then finish, which renders the message and returns UDB_ECONFLICT
 * (0 if nothing was added). */
void udb__conflict_begin(udb_txn *txn, const udb_type *t);
int  udb__conflict_add(udb_txn *txn, const udb_type *t, const udb_index *ix,
                       const msgpack_object *const *vals, const void *pk, size_t pklen);
int  udb__conflict_finish(udb_txn *txn);

#endif
