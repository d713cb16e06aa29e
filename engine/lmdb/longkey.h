/*
 * longkey.h -- keys of any length on LMDB's 511-byte key limit (longkey.c).
 *
 * A key of at most UDB_KEY_INLINE bytes is stored as it is.  A longer key K
 * is stored under K's first UDB_KEY_INLINE bytes plus an 8-byte slot number,
 * and the rest of K travels at the end of the value:
 *
 *   LMDB key    K[0, INLINE) ++ slot (8 bytes big-endian)
 *   LMDB value  value ++ K[INLINE, |K|) ++ |K| - INLINE (4 bytes big-endian)
 *
 * Long keys with the same first INLINE bytes (a "group") sit together in
 * LMDB's order, right after the short key equal to those bytes, if any; so
 * the order of groups is the order of the keys, and only inside a group
 * does the slot order differ from the key order (scan.c sorts a group).
 * Every lookup compares the full key, never a hash: two keys that share
 * their first INLINE bytes are different keys.  The slot is only where the
 * entry lives (a hash of the key, the next free number on a collision).
 */
#ifndef UDB_LONGKEY_H
#define UDB_LONGKEY_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

#define UDB_KEY_INLINE 503                   /* longest key stored as it is */
#define UDB_KEY_LONG   (UDB_KEY_INLINE + 8)  /* size of every long-form LMDB key */

/* The full key and value of a raw LMDB entry (rk, rv).  A long key is
 * assembled in scratch (*key points there until scratch changes); *val
 * points into rv.  0 or UDB_ECORRUPT (a damaged trailer). */
int udb__lk_decode(MDB_val *key, MDB_val *val, const MDB_val *rk, const MDB_val *rv,
                   udb_buf *scratch);

/* mdb_get by full key.  *val is the stored value (LMDB memory). */
int udb__lk_get(MDB_txn *txn, MDB_dbi dbi, const MDB_val *key, MDB_val *val);

/* mdb_put by full key; flags 0 (replace the entry of an equal key) or
 * MDB_NOOVERWRITE (MDB_KEYEXIST with *val set to the stored value). */
int udb__lk_put(MDB_txn *txn, MDB_dbi dbi, const MDB_val *key, MDB_val *val, unsigned flags);

/* mdb_del by full key (MDB_NOTFOUND if absent). */
int udb__lk_del(MDB_txn *txn, MDB_dbi dbi, const MDB_val *key);

/* Rewrite the entry under raw LMDB key rk (a key stored as it is by an
 * older format, longer than UDB_KEY_INLINE) in the long form. */
int udb__lk_relocate(MDB_txn *txn, MDB_dbi dbi, const MDB_val *rk);

#endif
