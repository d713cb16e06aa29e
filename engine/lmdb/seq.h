/*
 * seq.h -- named sequences as the record operations use them (seq.c).
 */
#ifndef UDB_SEQ_H
#define UDB_SEQ_H

#include <stdint.h>

#include "uniqdb.h"

#define UDB_MAX_SEQ_NAME 256

/* The current value of sequence name (0 if never used). */
int udb__seq_peek(uint64_t *out, udb_txn *txn, const char *name);
int udb__seq_store(udb_txn *txn, const char *name, uint64_t v);

#endif
