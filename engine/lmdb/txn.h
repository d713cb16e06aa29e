/*
 * txn.h -- LMDB transactions as the operations see them (txn.c): begin and
 * end, LMDB's errors, and the map-full bookkeeping.  A transaction begins
 * with the core's udb_txfront (backend.h): its message, conflict detail and
 * schema go through backend.h.  The body of struct udb_txn is in txn_int.h.
 */
#ifndef UDB_TXN_H
#define UDB_TXN_H

#include <lmdb.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

#include "backend.h"
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
/* Wait until ack is durable (udb__sync_wait).  0, or UDB_EFLUSHFAILED: the
 * commit stands but must not be acknowledged. */
int  udb__txn_ack(udb_env *env, uint64_t ack);

MDB_txn *udb__txn_mdb(const udb_txn *txn);
udb_env *udb__txn_env(const udb_txn *txn);
size_t   udb__txn_keymax(const udb_txn *txn);

/* Note rc in txn's map-full state and return it: MDB_MAP_FULL means the
 * map must grow before the work can be done again. */
int    udb__txn_full(udb_txn *txn, int rc);
/* The map size at which txn hit MDB_MAP_FULL, 0 if it did not. */
size_t udb__txn_full_at(const udb_txn *txn);

/* The LMDB backend's record operations (store.c): every transaction's.
 * Its commit and abort (txn.c) and type_stat (check.c) are these: */
extern const udb_backend udb__lmdb_backend;
int  udb__lmdb_commit(udb_txn *txn);
void udb__lmdb_abort(udb_txn *txn);
int  udb__lmdb_latest(int *latest, udb_txn *txn);
int  udb__lmdb_type_stat(udb_type_stat *out, udb_txn *txn, const udb_type *t);
/* Its scans (scan.c): backend.h's "scans" members. */
size_t udb__lmdb_scan_size(void);
int  udb__lmdb_scan_open(udb_cursor *c);
int  udb__lmdb_scan_next(udb_val *rec, udb_cursor *c);
int  udb__lmdb_scan_skip(uint64_t *skipped, udb_cursor *c, uint64_t n);
void udb__lmdb_scan_close(udb_cursor *c);

/* What backend.h declares for every transaction (udb__err, udb__clear,
 * udb__txn_type, ..., the conflict detail) works on these too.  Hand v to
 * the caller: udb__out_bytes.  out may be NULL. */
int udb__out(udb_val *out, udb_txn *txn, const MDB_val *v);
/* udb__out_record (backend.h): a stored record of t under encoded key
 * `key`, checked first (LMDB trusts its pages, so a damaged one can hand
 * back garbage). */
int udb__out_rec(udb_val *out, udb_txn *txn, const udb_type *t, const MDB_val *key,
                 const MDB_val *rec);

/* An LMDB failure while doing what: message, and map-full bookkeeping.  A
 * code of udb__mdb_damage() becomes UDB_ECORRUPT (the message names LMDB's),
 * and so does the MDB_BAD_TXN with which LMDB refuses everything after it. */
int  udb__mdb_err(udb_txn *txn, int rc, const char *what);

#endif
