/*
 * seq.h -- named sequences in LMDB (seq.c): the backend's half; the public
 * calls are core/sequence.c.
 */
#ifndef UDB_SEQ_H
#define UDB_SEQ_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "uniqdb.h"

/* The current value of sequence name (0 if never used). */
int udb__seq_peek(uint64_t *out, udb_txn *txn, const char *name);
/* ... and whether it was ever used (found may be NULL): backend.h's
 * seq_peek, as are these two its seq_store and seq_each. */
int udb__seq_find(uint64_t *out, bool *found, udb_txn *txn, const char *name);
int udb__seq_store(udb_txn *txn, const char *name, uint64_t v);
int udb__seq_each(udb_txn *txn, udb_seq_fn fn, void *ctx);

#endif
