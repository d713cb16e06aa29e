/*
 * layout.h -- the storage layout (layout.c): the one place that names the
 * LMDB databases and the keys of __meta.
 *
 *   "__meta"            "format" -> u64 (UDB_FORMAT_VERSION; absent in format 1 files)
 *                       "schema" -> canonical schema JSON
 *                       "gen"    -> u64, bumped by every schema change
 *                       "unit" ++ instance(16) ++ u32(slot) -> u64(round) ++ u64(txnid):
 *                                   the last unit shipped through that slot of that
 *                                   session of the sync file (ship.h) that committed
 *                                   (format 2 files of earlier versions also hold
 *                                   "unit" ++ u32(slot) records: swept as garbage)
 *   "__seq"             sequence name -> u64
 *   "t:<type>"          tuple(pk) -> canonical msgpack record
 *   "u:<type>:<index>"  tuple(fields) -> tuple(pk)         (unique indexes; an entry
 *                       with a NULL in a NULLs-distinct index: tuple(fields) ++ tuple(pk))
 *   "i:<type>:<index>"  tuple(fields) ++ tuple(pk) -> ""   (non-unique indexes)
 *
 * Numbers are 8 bytes big-endian; tuples are keycodec.h's encoding.
 */
#ifndef UDB_LAYOUT_H
#define UDB_LAYOUT_H

#include <lmdb.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "mpack.h"
#include "schema.h"

#define UDB_DB_META "__meta"
#define UDB_DB_SEQ  "__seq"

/* Keys of __meta. */
extern const MDB_val udb__meta_format, udb__meta_schema, udb__meta_gen_key;

/* The LMDB name of a type's records (ix NULL or the primary key) or of
 * index ix, into b. */
void udb__dbname(udb_buf *b, const udb_type *t, const udb_index *ix);
/* Open (flags MDB_CREATE: create) the handle of every database of s. */
int  udb__schema_open_dbis(udb_schema *s, MDB_txn *txn, unsigned flags);

/* The 8-byte number under key of __meta: 0 and *out (0 when absent), or
 * UDB_ECORRUPT when the value is not 8 bytes. */
int udb__meta_u64(uint64_t *out, MDB_txn *txn, MDB_dbi meta, const MDB_val *key);
/* The schema generation (0 before any schema). */
int udb__meta_gen(uint64_t *out, MDB_txn *txn, MDB_dbi meta);
/* Store json as the schema of generation gen. */
int udb__meta_put_schema(MDB_txn *txn, MDB_dbi meta, const char *json, size_t len,
                         uint64_t gen);
/* Store v under key of __meta as 8 bytes. */
int udb__meta_put_u64(MDB_txn *txn, MDB_dbi meta, const MDB_val *key, uint64_t v);

/* Record, in txn, that the unit of ship slot `slot`, round `round`, of the
 * sync file session `instance` (UDB_META_INSTANCE bytes) commits with txnid;
 * and read that record back (0 and zeros when there is none). */
#define UDB_META_INSTANCE 16
int udb__meta_put_unit(MDB_txn *txn, MDB_dbi meta, const unsigned char *instance,
                       unsigned slot, uint64_t round, uint64_t txnid);
int udb__meta_unit(uint64_t *round, uint64_t *txnid, MDB_txn *txn, MDB_dbi meta,
                   const unsigned char *instance, unsigned slot);
/* Delete every unit record but those of session `instance`; *n: how many. */
int udb__meta_sweep_units(size_t *n, MDB_txn *txn, MDB_dbi meta,
                          const unsigned char *instance);

/* What LMDB hands back is checked before anything reads it: LMDB trusts its
 * pages, and a damaged one can give a key or value of garbage size (a value's
 * size is a 32-bit field of the page) or send a cursor back over keys it
 * already gave (a damaged branch page), for ever.  No uniqdb value is larger
 * than UDB_MAX_RAW_VALUE: a record is at most UDB_MAX_RECORD bytes, and a
 * long key's tail (longkey.h) comes from a record. */
#define UDB_MAX_RAW_VALUE (4u * UDB_MAX_RECORD)
/* A key of 1 to UDB_KEY_LONG bytes, a value of at most UDB_MAX_RAW_VALUE. */
bool udb__sane_entry(const MDB_val *k, const MDB_val *v);
/* Keys of a walk strictly increase in LMDB's order (memcmp, then length):
 * 0 and k copied into last, or UDB_ECORRUPT (k is not after last), or
 * UDB_ENOMEM.  last starts empty. */
int udb__key_after(udb_buf *last, const MDB_val *k);

/* Call fn for every entry of dbi in key order; a non-zero return stops the
 * walk and is returned.  The entry is valid only during the call.  An entry
 * that fails udb__sane_entry or comes out of order stops the walk with
 * UDB_ECORRUPT (the last entry fn saw is the last good one). */
int udb__each(MDB_txn *txn, MDB_dbi dbi, int (*fn)(void *ctx, const MDB_val *k, const MDB_val *v),
              void *ctx);
/* udb__each from the first entry after key `after` (NULL or empty: from the
 * first entry). */
int udb__each_from(MDB_txn *txn, MDB_dbi dbi, const MDB_val *after,
                   int (*fn)(void *ctx, const MDB_val *k, const MDB_val *v), void *ctx);

#endif
