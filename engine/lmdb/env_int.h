/*
 * env_int.h -- the body of struct udb_env.  Only env.c (which owns it) and
 * group.c (which keeps its queue in it) include this; everything else goes
 * through env.h.
 */
#ifndef UDB_ENV_INT_H
#define UDB_ENV_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend.h"
#include "env.h"

struct udb_group;

struct udb_env {
    udb_envfront f;             /* first: its operations, async units (backend.h) */
    MDB_env *mdb;
    char *path;
    unsigned flags;
    size_t max_map;
    size_t keymax;
    unsigned format;            /* on-disk format version found at open */
    unsigned maxdbs;            /* LMDB named databases this environment can open */
    MDB_dbi meta_dbi, seq_dbi;
    udb_sync *sync;             /* durability state shared with other processes */
    struct udb_ship *ship;      /* units shipped between processes (in the sync file) */

    pthread_mutex_t lock;       /* active count, resize state, schema pointer, group */
    pthread_cond_t cond;
    pthread_mutex_t dbi_lock;   /* one mdb_dbi_open session at a time (LMDB rule) */
    unsigned active;            /* top-level transactions open in this process */
    pthread_t *owners;          /* the thread that began each of them (a multiset) */
    size_t nowners, capowners;
    unsigned grow_wait_ms;      /* how long a resize waits for them to end */
    unsigned lock_wait_ms;      /* how long a writer waits for the write lock; 0: no end */
    bool resizing;
    /* set when a transaction that hit MDB_MAP_FULL ends, read by the next
       writer's udb_begin on any thread: both only under lock (udb__env_want_grow,
       udb__env_grow_if_wanted, udb__grow); test_persist's
       map_grows_while_threads_write is ThreadSanitizer's check */
    bool want_grow;             /* a txn hit MDB_MAP_FULL ... */
    size_t grow_from;           /* ... at this map size */
    udb_schema *schema;         /* current; never freed before close */
    uint64_t schema_gen;
    udb_schema **retired;       /* older schemas still referenced by open txns */
    size_t nretired;
    /* a read-only MDB_txn ended by mdb_txn_reset, kept for the next read to
       renew (no 25 KiB calloc, no reader-table lock); under lock */
    MDB_txn *idle_reader;
    /* data.mdb's blocks are known allocated up to here (udb__env_reserve's
       last fstat or posix_fallocate), so a commit well below needs no fstat */
    _Atomic uint64_t reserved_to;

    /* group commit queue: made by group.c on first use, freed at close
       with the function it was made with */
    struct udb_group *group;
    void (*group_free)(struct udb_group *g);

    /* this process's table of open environments (env.c): every udb_open of
       the directory (dev, ino) shares this one; all under env.c's table lock */
    dev_t dev;
    ino_t ino;
    unsigned refs;              /* udb_open calls not yet closed */
    bool ready;                 /* open; false while being opened or closed */
    struct udb_env *next;       /* in the table */
};

#endif
