/*
 * backend.h -- the seam between the core and a storage backend.
 *
 * The core (core/ops.c) validates a record, packs it canonically, assigns
 * the auto key, works out which indexes it is in and under which keys
 * (index.h), checks every unique index by asking who holds the key, and
 * assembles the conflict detail.  A backend stores what the core decided:
 * a validated record with its index entries, found again by primary key;
 * the holder of a unique key; sequences.  The seam is at the level of
 * records, not of keys and values, so a backend may keep each type as a
 * table whose own unique indexes enforce uniqueness (PostgreSQL); the LMDB
 * backend (engine/lmdb/store.c) keeps each index as a database of the
 * core's encoded keys (layout.h).
 *
 * Every transaction of every backend begins with a udb_txfront (its struct
 * udb_txn's first member): what the core keeps per transaction -- the
 * pinned schema, the message, the conflict detail, the memory handed to
 * the caller -- and the backend's operations.  front.c implements the
 * core's half declared here.
 */
#ifndef UDB_BACKEND_H
#define UDB_BACKEND_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "conflict.h"
#include "schema.h"
#include "uniqdb.h"

typedef struct udb_backend udb_backend;

#define UDB_MAX_SEQ_NAME 256    /* bytes of a sequence name */

typedef struct udb_txfront {
    const udb_backend *be;
    udb_schema *schema;        /* pinned at begin; NULL before any schema */
    bool rdonly;
    udb_arena arena;           /* what a writing transaction hands out */
    udb_buf msg;               /* errmsg, NUL-terminated */
    udb_conflicts conflicts;   /* conflict detail (conflict.h) */
    bool must_retry;           /* an operation gave UDB_ERETRY (udb__err): the transaction
                                  must run again, whatever its caller made of the code */
} udb_txfront;

/* A record's entries as the core computed them (index.h): for every index i
 * of its type, whether the record is in it and under which key; i = 0 is
 * the primary key (the encoded key field).  A unique index's entry holds the
 * primary key; a non-unique one's key ends with it (udb__idx_entry). */
typedef struct udb_entries {
    const msgpack_object *const *vals;   /* the record's values, by field */
    const unsigned char *keys;           /* the keys, back to back */
    const size_t *off, *len;             /* index i's key: keys + off[i], len[i] */
    const bool *applies;                 /* is the record in index i */
} udb_entries;

/* What a backend does.  Each function sets the transaction's message when
 * it fails (udb__err) but for the UDB_ENOTFOUND of fetch and holder, which
 * the core words itself. */
/* store_new's "a unique key is taken" (no detail, no message): not an
 * error code, never returned by a public call. */
#define UDB_BE_TAKEN 1

struct udb_backend {
    const char *name;
    /* The stored record of t under primary key pk: 0 and *rec (the
     * backend's memory, valid until the transaction writes or ends), or
     * UDB_ENOTFOUND. */
    int (*fetch)(udb_val *rec, udb_txn *txn, const udb_type *t, const void *pk, size_t pklen);
    /* The primary key of the record of t holding key in unique index ix
     * (not the primary key): 0 and *pk (backend memory, as for fetch), or
     * UDB_ENOTFOUND. */
    int (*holder)(udb_val *pk, udb_txn *txn, const udb_type *t, const udb_index *ix,
                  const void *key, size_t keylen);
    /* Store record (the canonical packing of the record of e) and its index
     * entries.  old: the entries of the stored record of the same primary
     * key it replaces; NULL for a new record.  The core has checked every
     * unique index first: a backend that still finds one taken (another
     * writer of a shared server) reports UDB_ECONFLICT with the detail. */
    int (*store)(udb_txn *txn, const udb_type *t, const void *record, size_t len,
                 const udb_entries *e, const udb_entries *old);
    /* Optional (NULL: the core checks every unique index first, then calls
     * store): store a new record as store does, unless one of its unique keys
     * is taken, which the backend's own unique indexes find without the
     * core's probes (PostgreSQL's INSERT ... ON CONFLICT DO NOTHING: no read
     * before the write; LMDB's MDB_NOOVERWRITE puts: one tree search per
     * key, not two).  0: stored; UDB_BE_TAKEN: a key is taken and
     * nothing was written, no detail (the core finds it with fetch and
     * holder, as it would have before); else as store (UDB_ECONFLICT then
     * comes with the detail).  reads: a unique index whose holder the caller
     * reads when the key is taken (insert_or_get), or NULL -- a key of it
     * taken by a writer the transaction cannot see is then the transaction's
     * own serialization failure (UDB_ERETRY), not a conflict to report. */
    int (*store_new)(udb_txn *txn, const udb_type *t, const void *record, size_t len,
                     const udb_entries *e, const udb_index *reads);
    /* With store_new: insert_or_get still reads its index's holder before
     * it inserts (a read costs no other writer anything here, and a held
     * key then writes nothing); without, it inserts first. */
    bool lookup_first;
    /* Delete the record stored under primary key pk (fetched in this
     * transaction: its entries are old), and its index entries. */
    int (*remove)(udb_txn *txn, const udb_type *t, const void *pk, size_t pklen,
                  const udb_entries *old);
    /* How many records type t of schema s holds (s: the transaction's, or
     * one being replaced in it).  A backend code, no message. */
    int (*count)(uint64_t *n, udb_txn *txn, const udb_schema *s, const udb_type *t);
    /* Call fn with every stored record of type t of schema s (as for
     * count) and its primary key, in primary key order; fn's non-zero return
     * stops the walk and is returned.  A backend code, no message. */
    int (*each)(udb_txn *txn, const udb_schema *s, const udb_type *t,
                int (*fn)(void *ctx, const udb_val *pk, const udb_val *rec), void *ctx);
    /* The largest primary key of type t's records (backend memory, as for
     * fetch), or UDB_ENOTFOUND when it has none. */
    int (*last_key)(udb_val *pk, udb_txn *txn, const udb_type *t);
    /* Sequence name's current value (0 if never advanced; *found, which
     * may be NULL, says whether it ever was), and a new one, in the
     * transaction (rolled back with it). */
    int (*seq_peek)(uint64_t *out, bool *found, udb_txn *txn, const char *name);
    int (*seq_store)(udb_txn *txn, const char *name, uint64_t v);
    /* Call fn with every sequence, in name order (udb_seq_foreach); fn's
     * non-zero return stops the walk and is returned. */
    int (*seq_each)(udb_txn *txn, udb_seq_fn fn, void *ctx);
    /* End the transaction (always freed): udb_commit's and udb_abort's
       meaning and codes (a backend adds its own, documented in uniqdb.h). */
    int  (*commit)(udb_txn *txn);
    void (*abort)(udb_txn *txn);
    /* Optional (NULL: *latest = 0): udb_txn_latest, *latest already 0. */
    int  (*latest)(int *latest, udb_txn *txn);
    /* udb_type_stat_get's counts for type t; figures the backend does not
       keep are 0.  A backend code, with message. */
    int (*type_stat)(udb_type_stat *out, udb_txn *txn, const udb_type *t);

    /* ---- scans (cursor.h) ----
     * The backend's struct udb_cursor, of scan_size() bytes, begins with a
     * udb_curfront, which the core has filled (the type, index, encoded
     * bounds and after, flags, limit) and zeroed the rest before scan_open
     * (which sets the message when it fails).  scan_next and scan_skip are
     * udb_cursor_next and udb_cursor_skip (uniqdb.h), in the order of the
     * entries' sort keys (udb__cursor_place decides which are in the range;
     * udb__cursor_handed records the one handed out).  scan_close frees what
     * the backend added, for a cursor scan_open failed on too. */
    size_t (*scan_size)(void);
    int (*scan_open)(udb_cursor *c);
    int (*scan_next)(udb_val *rec, udb_cursor *c);
    int (*scan_skip)(uint64_t *skipped, udb_cursor *c, uint64_t n);
    void (*scan_close)(udb_cursor *c);
};

/* ---- environments ----
 *
 * Every backend's environment begins with a udb_envfront (its struct
 * udb_env's first member): its operations, and what the core keeps per
 * environment (udb_exec_async's threads, core/async.c).  The public calls
 * on an environment (core/envapi.c) check their arguments and dispatch;
 * udb_open picks the backend from the path: a postgresql:// or postgres://
 * URL is PostgreSQL (engine/pg/pgenv.c), anything else an LMDB directory. */
struct udb_unit;
typedef struct udb_async udb_async;

typedef struct udb_env_ops {
    const char *name;
    int  (*begin)(udb_txn **out, udb_env *env, unsigned flags);
    int  (*write)(udb_env *env, udb_write_fn fn, void *ctx);
    /* udb_exec's unit (core/unit.h): run by udb__unit_run in one write
       transaction, with the backend's own guarantee of "applied once" */
    int  (*write_unit)(udb_env *env, struct udb_unit *u);
    /* May the calling thread write now (call: the public call, for the
       message)?  0, or UDB_EINVAL with the env message; NULL: always. */
    int  (*may_write)(udb_env *env, const char *call);
    int  (*schema_apply)(char **changes, udb_env *env, const char *json, size_t len,
                         unsigned flags, udb_locked_fn locked, void *payload);
    int  (*schema_json)(char **out, udb_env *env);
    int  (*check)(size_t *problems, udb_env *env, const char *type, udb_report_fn report,
                  udb_progress_fn progress, void *ctx);
    int  (*usage)(size_t *map_size, size_t *used, udb_env *env);
    int  (*space)(udb_space *out, udb_env *env);
    int  (*backup)(udb_env *env, const char *dest, unsigned flags);
    /* udb_close: the units this open queued finish first
       (udb__env_async_drain); the last close of env stops the rest
       (udb__env_async_stop) and frees everything. */
    void (*close)(udb_env *env);
} udb_env_ops;

typedef struct udb_envfront {
    const udb_env_ops *ops;
    pthread_mutex_t async_lock;     /* async and its functions */
    struct udb_async *async;        /* made on first udb_exec_async */
    void (*async_stop)(struct udb_async *a);
    void (*async_drain)(struct udb_async *a);
} udb_envfront;

static inline udb_envfront *udb__envfront(udb_env *env)
{
    return (udb_envfront *)(void *)env;
}

/* A new environment's front (udb__env_front_free undoes it). */
void udb__env_front_init(udb_envfront *f, const udb_env_ops *ops);
void udb__env_front_free(udb_envfront *f);
/* env's udb_exec_async state, made with make(env) on first use (make NULL:
 * NULL if none yet); stop and drain are kept for close. */
struct udb_async *udb__env_async(udb_env *env, struct udb_async *(*make)(udb_env *env),
                                 void (*stop)(struct udb_async *a),
                                 void (*drain)(struct udb_async *a));
/* Units queued so far finish (udb_close of one open of a shared env), and
 * every unit finishes and the threads end (the last close). */
void udb__env_async_drain(udb_env *env);
void udb__env_async_stop(udb_env *env);
/* udb_exec's unit through env's backend. */
int  udb__env_write_unit(udb_env *env, struct udb_unit *u);

/* The backends' udb_open: path is the caller's, opts checked and completed
 * to UDB_OPTIONS_VERSION by udb_open. */
int udb__lmdb_open(udb_env **out, const char *path, const udb_options *opts);
int udb__pg_open(udb_env **out, const char *url, const udb_options *opts);

/* ---- the core's half: every backend's transactions use these ---- */

static inline udb_txfront *udb__front(udb_txn *txn)
{
    return (udb_txfront *)(void *)txn;
}
static inline const udb_txfront *udb__cfront(const udb_txn *txn)
{
    return (const udb_txfront *)(const void *)txn;
}
static inline const udb_backend *udb__txn_backend(const udb_txn *txn)
{
    return udb__cfront(txn)->be;
}
/* NULL before any schema. */
static inline const udb_schema *udb__txn_schema(const udb_txn *txn)
{
    return udb__cfront(txn)->schema;
}
static inline bool udb__txn_rdonly(const udb_txn *txn)
{
    return udb__cfront(txn)->rdonly;
}

/* A new transaction's front, and its end (frees what it holds). */
void udb__front_init(udb_txfront *f, const udb_backend *be, bool rdonly);
void udb__front_free(udb_txfront *f);

/* The message udb_errmsg() returns: set it and return rc; clear it (and
 * the conflict detail). */
int  udb__err(udb_txn *txn, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void udb__clear(udb_txn *txn);
/* The type named type, for reading or (write) writing in txn; clears the
 * message.  UDB_EINVAL / UDB_EREADONLY with message. */
int udb__txn_type(udb_type **out, udb_txn *txn, const char *type, bool write);
/* UDB_EINVAL for an index name t does not have (or, with unique, one that is
 * not unique), the message listing the names that would do. */
int udb__err_index(udb_txn *txn, const udb_type *t, const char *index, bool unique);
/* Hand bytes p..p+n to the caller: copied into txn memory if the txn writes
 * (a backend's memory may change then).  out may be NULL. */
int udb__out_bytes(udb_val *out, udb_txn *txn, const void *p, size_t n);
/* udb__out_bytes for a stored record of t under encoded key key, checked
 * first: storage may hand back garbage from a damaged file.  A record that
 * is not a well-formed msgpack map of at most UDB_MAX_RECORD bytes is
 * UDB_ECORRUPT, the message naming the type and the key. */
int udb__out_record(udb_val *out, udb_txn *txn, const udb_type *t, const void *key,
                    size_t keylen, const void *rec, size_t reclen);

/* Conflict detail (conflict.h), kept in the front: begin, add once per
 * violated index, then finish, which sets the message and returns
 * UDB_ECONFLICT (0 if nothing was added). */
void udb__conflict_begin(udb_txn *txn, const udb_type *t);
int  udb__conflict_add(udb_txn *txn, const udb_index *ix, const msgpack_object *const *vals,
                       const void *pk, size_t pklen);
int  udb__conflict_finish(udb_txn *txn);

#endif
