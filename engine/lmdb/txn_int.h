/*
 * txn_int.h -- the body of struct udb_txn.  Only txn.c and conflict.c (which
 * own it) include this; everything else goes through txn.h.
 */
#ifndef UDB_TXN_INT_H
#define UDB_TXN_INT_H

#include "buf.h"
#include "txn.h"

struct udb_txn {
    udb_env *env;
    MDB_txn *mdb;
    udb_schema *schema;
    bool rdonly;
    bool damaged;              /* LMDB reported damage: it refuses the rest (MDB_BAD_TXN) */
    bool counted;              /* holds an env->active slot */
    pthread_t owner;           /* the thread that began it (for that slot) */
    bool writer;               /* a top-level write txn, counted in the sync file */
    bool gated;                /* ... holding the sync file's write gate */
    bool map_full;             /* an operation hit MDB_MAP_FULL ... */
    size_t map_full_at;        /* ... with the map at this size */
    udb_txn *parent;           /* nested transactions (group commit) */
    udb_arena arena;
    udb_buf msg;               /* errmsg, NUL-terminated */
    /* conflict detail (conflict.c) */
    bool has_conflict;
    udb_conflict conflict;
    udb_conflict_index *cidx;  /* conflict.indexes, grown as needed */
    size_t ccap;
    size_t (*coff)[2];         /* offsets of values / existing_key in cbuf */
    udb_buf cbuf;              /* owns conflict bytes */
};

#endif
