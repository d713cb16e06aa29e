/*
 * txn_int.h -- the body of struct udb_txn.  Only txn.c (which owns it)
 * includes this; everything else goes through txn.h.
 */
#ifndef UDB_TXN_INT_H
#define UDB_TXN_INT_H

#include "backend.h"
#include "txn.h"

struct udb_txn {
    udb_txfront f;             /* first: what the core keeps (backend.h) */
    udb_env *env;
    MDB_txn *mdb;
    bool damaged;              /* LMDB reported damage: it refuses the rest (MDB_BAD_TXN) */
    bool counted;              /* holds an env->active slot */
    pthread_t owner;           /* the thread that began it (for that slot) */
    bool writer;               /* a top-level write txn, counted in the sync file */
    bool gated;                /* ... holding the sync file's write gate */
    bool map_full;             /* an operation hit MDB_MAP_FULL ... */
    size_t map_full_at;        /* ... with the map at this size */
    udb_txn *parent;           /* nested transactions (group commit) */
};

#endif
