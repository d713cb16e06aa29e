/*
 * uniqdb.h -- the whole public contract of uniqdb.
 *
 * uniqdb is an embedded key-value store on LMDB whose records are msgpack maps
 * typed by a JSON schema stored inside the database.  Its point is the
 * uniqueness layer: every unique index (compound, partial, NULL-aware) of a
 * record type is checked and maintained inside the same LMDB write
 * transaction as the record, so "check, then insert" is one atomic step
 * across threads and processes.
 *
 * Conventions
 *  - Every function that can fail returns int: 0 on success, a negative
 *    UDB_E* code below, or an LMDB code passed through unchanged (LMDB's own
 *    negative MDB_* codes, or a positive errno value such as ENOMEM, EACCES).
 *    udb_strerror() names any of them.
 *  - Out-parameters come first.  On failure they are left untouched unless
 *    stated otherwise.
 *  - Records, keys and value lists cross the API as msgpack bytes.  Input
 *    bytes are untrusted: they are validated (sizes, counts, depth, trailing
 *    bytes) before use.
 *  - A udb_val returned by an operation points at memory owned by the
 *    transaction: it stays valid until the transaction ends (commit or
 *    abort), even if the same transaction writes more afterwards.
 *  - Detail of the last failure on a transaction is udb_errmsg(txn); for
 *    calls that take an environment instead, udb_env_errmsg().
 *
 * Threads and processes
 *  - Any number of threads may share one udb_env; each thread uses its own
 *    transactions.  A write transaction belongs to the thread that began it
 *    and must be committed or aborted by that thread.  A read-only
 *    transaction may be handed to another thread, but must not be used by two
 *    threads at once.
 *  - Only one write transaction runs at a time per database (LMDB serializes
 *    writers across threads and processes); a second udb_begin() for writing
 *    waits.  Do not begin a write transaction on a thread that already holds
 *    one on the same environment: it deadlocks.
 *  - The map grows by itself, but only while no transaction of this process
 *    is open: keep read transactions short, and do not hold one on a thread
 *    that writes.  After MDB_MAP_FULL in a transaction of your own, abort it;
 *    the next write udb_begin() grows the map (udb_write() does all of this
 *    for you, and reruns fn).
 *  - Several processes may open the same database.  Never use a udb_env across
 *    fork(): open the database again in the child.  Within one process, every
 *    udb_open() of a database shares one environment (see udb_open), so
 *    libraries that cannot know about each other may each open it.
 *
 * Durability (an environment opened without UDB_NOSYNC / UDB_NOMETASYNC)
 *  - udb_write() and udb_commit() of a write transaction return 0 only once
 *    what the transaction wrote AND the snapshot it read are on disk: a power
 *    cut after that cannot undo it, nor anything an answer was based on (an
 *    insert_or_get that returned a record another process had just committed
 *    waits until that record is durable too).  A write transaction that wrote
 *    nothing waits for its snapshot alone; udb_write() whose fn failed (a
 *    conflict, say) waits the same way before returning the failure.
 *  - Each commit flushes the data file once, inside LMDB's write lock; that
 *    flush also makes the previous commit durable.  A commit is then made
 *    durable by one flush outside the write lock, shared by every thread and
 *    process waiting at that moment (unless a later commit's covered it
 *    first).  The database directory holds a small file, sync.udb, with the
 *    state those processes share.
 *  - A read-only transaction may see commits that are not durable yet (their
 *    writers are still waiting to be acknowledged): after a power cut, the
 *    newest of them may be gone.  udb_commit() of a read-only transaction
 *    does not wait.  udb_abort() of a write transaction does not wait.
 *  - If a flush fails (fdatasync error), it is never retried: the call
 *    returns UDB_EFLUSHFAILED, the commit stands in memory but may not survive
 *    a crash, and from then on every process refuses writes with
 *    UDB_EFLUSHFAILED (reads still work) until all of them have closed the
 *    database and it is opened again.
 *  - Processes opened with UDB_NOSYNC may share the database; their own
 *    commits are then not durable until someone else's flush, and they never
 *    make anyone else's commit look durable.
 */
#ifndef UNIQDB_H
#define UNIQDB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the functions the shared library exports; everything else in it is
 * hidden (it is built with -fvisibility=hidden). */
#ifndef UDB_API
#if defined(__GNUC__) && __GNUC__ >= 4
#define UDB_API __attribute__((visibility("default")))
#else
#define UDB_API
#endif
#endif

/* The version of this header: the one place it is written down (meson.build
 * reads it from here).  udb_version() gives the library's, which may differ
 * when a program runs against another build of the shared library. */
#define UDB_VERSION_MAJOR 0
#define UDB_VERSION_MINOR 1
#define UDB_VERSION_PATCH 0
#define UDB_VERSION_STRING "0.1.0"
/* The on-disk layout this library reads and writes (stored in each database). */
#define UDB_FORMAT_VERSION 3

/* ---- Error codes ---------------------------------------------------------
 * The expected errors a caller branches on.  They lie below LMDB's range
 * (MDB_KEYEXIST -30799 .. MDB_LAST_ERRCODE), so both kinds can be returned
 * through the same int. */
#define UDB_ECONFLICT   (-31001) /* a unique index (or the primary key) already holds the key;
                                    detail in udb_conflict_info() */
#define UDB_ENOTFOUND   (-31002) /* no such record, index entry or sequence */
#define UDB_EBADRECORD  (-31003) /* a record (or value list, or key) does not match the schema;
                                    fix the data (not the call) */
#define UDB_ESCHEMA     (-31004) /* the schema text is malformed, or the change is not allowed */
#define UDB_EKEYTOOLONG (-31005) /* LMDB stores keys and unique values of any length (format
                                    3); on PostgreSQL, an index row over the server's limit
                                    (about 2.7 kB: a third of a page) */
#define UDB_ECORRUPT    (-31006) /* stored data is damaged or udb_check() found problems */
#define UDB_EINVAL      (-31007) /* a bad argument (NULL where not allowed, unknown type or
                                    index: the message lists the valid names) */
#define UDB_ESIZELIMIT  (-31008) /* the database reached udb_options.max_map_size: permanent
                                    until the limit is raised (unlike UDB_EMAPFULL) */
#define UDB_ENOMEM      (-31009) /* out of memory */
#define UDB_EREADONLY   (-31010) /* a write was attempted in a read-only transaction */
#define UDB_EFORMAT     (-31011) /* not a uniqdb database (an LMDB environment holding other
                                    data), or one in a format this version cannot read */
#define UDB_EEXHAUSTED  (-31012) /* a sequence (or a type's auto-key sequence) is at
                                    UINT64_MAX and cannot advance */
#define UDB_EBUSY       (-31013) /* the map had to be resized, but transactions of this
                                    process stayed open longer than
                                    udb_options.grow_wait_ms */
#define UDB_EFLUSHFAILED (-31014) /* a flush of the database to disk failed: commits since the
                                    last good flush may be lost, so the database refuses writes
                                    (in every process) until every process has closed it and it
                                    is opened again; see "Durability" below */
#define UDB_ECONNECT    (-31015) /* PostgreSQL: the server could not be reached (refused, no
                                    such host or socket, too many connections) or the connection
                                    was lost; the message keeps libpq's text */
#define UDB_EAUTH       (-31016) /* PostgreSQL: the server refused the login (authentication
                                    failed, no such role, no pg_hba.conf entry) */
#define UDB_ESERVER     (-31017) /* PostgreSQL reported an error uniqdb has no code of its own
                                    for; the message has its SQLSTATE and text */
#define UDB_ERETRY      (-31018) /* PostgreSQL: the transaction met a concurrent one (a
                                    serialization failure or deadlock, SQLSTATE 40001 or 40P01)
                                    and nothing of it was written: run it again from
                                    udb_begin (udb_write and udb_exec do so themselves) */
#define UDB_EINDOUBT    (-31019) /* PostgreSQL: the connection was lost during COMMIT, so the
                                    transaction may or may not have been written; read to find
                                    out before writing it again (udb_exec finds out itself) */
#define UDB_ELAST       UDB_EINDOUBT /* the last (most negative) UDB_E* code */

/* LMDB's own code for a full map (MDB_MAP_FULL), so callers of udb_begin/
 * udb_commit need not include <lmdb.h>: abort the transaction and run it
 * again; the next udb_begin grows the map.  udb_write never returns it. */
#define UDB_EMAPFULL    (-30792)
/* LMDB's code for "more named databases than max_dbs" (MDB_DBS_FULL): a
 * schema change needs more types and indexes than udb_options.max_dbs
 * allows; udb_env_errmsg says how many.  Open with a larger max_dbs. */
#define UDB_EDBSFULL    (-30791)

/* ---- Types --------------------------------------------------------------- */
typedef struct udb_env udb_env;       /* an open database (a directory) */
typedef struct udb_txn udb_txn;       /* a transaction on it */
typedef struct udb_cursor udb_cursor; /* an ordered scan inside a transaction */

/* Callbacks.  Every one takes the caller's context pointer (payload) as its
 * last parameter. */
typedef int  (*udb_write_fn)(udb_txn *txn, void *payload);      /* udb_write() */
typedef int  (*udb_seq_fn)(const char *name, uint64_t value, void *payload); /* udb_seq_foreach() */
typedef void (*udb_report_fn)(const char *problem, void *payload);          /* udb_check() */
typedef void (*udb_progress_fn)(uint64_t done, uint64_t total, void *payload); /* udb_check_progress() */
typedef void (*udb_locked_fn)(void *payload);                    /* udb_schema_apply_notify() */

/* A run of bytes.  Returned ones are owned by the transaction (see above). */
typedef struct udb_val {
    const void *data;
    size_t size;
} udb_val;

/* Options for udb_open().  Start from UDB_OPTIONS_INIT, then set fields by
 * name: a later version may add fields at the end, and `version` tells
 * udb_open() which fields the caller's struct has. */
typedef struct udb_options {
    unsigned version;    /* UDB_OPTIONS_VERSION (set by UDB_OPTIONS_INIT) */
    size_t map_size;     /* initial map size in bytes; 0 = 4 GiB on 64-bit systems
                            (64 MiB on 32-bit): address space, not disk -- the file
                            grows with the data.  The map grows by itself (doubling)
                            when it fills. */
    size_t max_map_size; /* hard upper limit; 0 = none.  Reaching it gives UDB_ESIZELIMIT. */
    unsigned max_dbs;    /* LMDB named databases (one per type and per index, + 2)
                            this handle can open; 0 = 512.  Raised at open to what
                            the database holds + 64, so any database opens with any
                            value; a schema change needing more fails, naming it */
    unsigned flags;      /* UDB_NOSYNC, UDB_NOMETASYNC, UDB_NOGROUP, UDB_RDONLY_ENV,
                            UDB_NOLOCK */
    unsigned mode;       /* permissions of created files; 0 = 0640 (directory 0750) */
    /* since version 2: */
    unsigned grow_wait_ms; /* how long growing the map (or adopting another process's
                              size) waits for this process's open transactions to end,
                              before the write fails with UDB_EBUSY; 0 = 10000 */
    /* since version 3: */
    unsigned lock_wait_ms; /* how long a write (udb_begin, udb_write, udb_exec,
                              udb_schema_apply, ...) waits for the writer of another thread
                              or process -- uniqdb's, not another LMDB program's -- to end
                              before it fails with UDB_EBUSY, nothing written; 0 = no
                              limit.  A unit handed to another process's leader
                              (udb_exec) is bounded by the leader instead. */
} udb_options;

#define UDB_OPTIONS_VERSION 3
#define UDB_OPTIONS_INIT {UDB_OPTIONS_VERSION, 0, 0, 0, 0, 0, 0, 0}

/* udb_options.flags */
#define UDB_NOSYNC     0x1u /* do not fsync on commit: a crash may lose recent commits,
                               and a power cut may corrupt the database (LMDB's
                               MDB_NOSYNC); calls return without waiting */
#define UDB_NOMETASYNC 0x2u /* acknowledge right after the commit's own flush, without
                               waiting for the one that makes it durable: a crash may
                               undo the last commit, never corrupt (LMDB's
                               MDB_NOMETASYNC) */
#define UDB_NOGROUP    0x4u /* udb_write() runs each call in its own transaction instead
                               of sharing commits between concurrent callers */
#define UDB_RDONLY_ENV 0x8u /* open for reading only (LMDB's MDB_RDONLY): nothing is
                               created or written, not even a missing directory or
                               uniqdb's metadata; write transactions fail with
                               UDB_EREADONLY.  Works on files this process may not
                               write, as long as it can write the lock file (lock.mdb),
                               or the file system is mounted read-only. */
#define UDB_NOLOCK     0x10u /* with UDB_RDONLY_ENV only: do not use the lock file (LMDB's
                               MDB_NOLOCK), for a database whose lock file this process
                               cannot create or write.  Readers are then invisible to
                               writers: a process writing the database at the same time
                               may reuse pages this reader still reads, so reads may see
                               damaged data.  Safe when nobody writes (a backup, a
                               read-only mount). */
#define UDB_NOSHIP     0x20u /* udb_exec() never hands its unit to the group commit leader
                               of another process (see udb_exec); it waits to lead a
                               commit of its own instead */

/* udb_begin() flags */
#define UDB_RDONLY     0x1u

/* udb_update() flags */
#define UDB_MERGE      0x1u /* merge the given fields into the stored record (a nil value
                               removes that field) instead of replacing it */

/* ---- Conflict detail ------------------------------------------------------
 * Filled when an operation returns UDB_ECONFLICT.  Everything here is owned by
 * the transaction and valid until its next operation or its end.
 *
 * Index names: an index is named within its type, as the schema declares it
 * ("email"); messages (udb_errmsg) qualify it with the type ("client.email").
 * Every call that takes an index name (udb_find, udb_scan, udb_insert_or_get,
 * udb_upsert, udb_exec ops) accepts both spellings. */
typedef struct udb_conflict_index {
    const char *index;          /* index name as declared, without the type ("email"); the
                                   primary key is named after its field */
    size_t nfields;
    const char *const *fields;  /* the index's field names, in index order */
    udb_val values;             /* msgpack array of the colliding values, in field order,
                                   as the holder stores them (a "collate": "nocase"
                                   field may differ in case from the value given) */
    udb_val existing_key;       /* msgpack primary key of the record that holds them now */
} udb_conflict_index;

typedef struct udb_conflict {
    const char *type;                   /* the record type */
    size_t count;                       /* >= 1 */
    const udb_conflict_index *indexes;  /* every violated index, primary key first,
                                           then unique indexes in declaration order */
} udb_conflict;

/* ---- Version ------------------------------------------------------------ */

/* The library's version as "MAJOR.MINOR.PATCH"; each of major, minor, patch
 * (may be NULL) gets its part.  Compare with UDB_VERSION_* to detect running
 * against another build than the one compiled against.  Never fails. */
UDB_API const char *udb_version(int *major, int *minor, int *patch);

/* ---- Errors ------------------------------------------------------------- */

/* Static text for any code this library returns (ours, LMDB's, errno). Never NULL. */
UDB_API const char *udb_strerror(int rc);

/* Non-zero if rc means a damaged database: UDB_ECORRUPT, or one of LMDB's
 * codes for a damaged file (MDB_CORRUPTED, MDB_PAGE_NOTFOUND,
 * MDB_CURSOR_FULL, MDB_INCOMPATIBLE, and MDB_INVALID: data.mdb's header is
 * not LMDB's).  `uniqdb` exits 6 for these. */
UDB_API int udb_is_damage(int rc);

/* Detail of the last failure of an operation on txn ("" if none).  Valid until
 * the next operation on txn or its end.  txn may be NULL (returns ""). */
UDB_API const char *udb_errmsg(const udb_txn *txn);

/* Detail of the last failure of an environment-level call (udb_open,
 * udb_schema_apply, udb_write, udb_check, ...) made by the calling thread.
 * The message belongs to the thread, not to env: env is not consulted (it may
 * be NULL, which is how a failed udb_open() is explained), so a thread that
 * uses two environments sees the last failure on either, and threads sharing
 * one environment never see each other's.  Valid until that thread's next
 * environment-level call. */
UDB_API const char *udb_env_errmsg(const udb_env *env);

/* The conflict detail of the last UDB_ECONFLICT on txn, or NULL if the last
 * operation did not end in a conflict.  Owned by txn; valid until the next
 * operation on txn or its end. */
UDB_API const udb_conflict *udb_conflict_info(const udb_txn *txn);

/* Free memory this library allocated for the caller (udb_schema_json,
 * udb_json_to_msgpack, udb_msgpack_to_json, ...). NULL is fine. */
UDB_API void udb_free(void *p);

/* ---- Environment --------------------------------------------------------- */

/* The files of a database directory, created by udb_open() for writing (one
 * with UDB_RDONLY_ENV creates none): LMDB's data file (every record, index
 * and the schema), LMDB's lock file (reader table, write lock) and uniqdb's
 * shared durability state (see "Durability").  The lock and sync files hold
 * only state of the processes that have the database open: a closed database
 * is its data file. */
#define UDB_DATA_FILE "data.mdb"
#define UDB_LOCK_FILE "lock.mdb"
#define UDB_SYNC_FILE "sync.udb"

/* The names above as one NULL-terminated list (static storage), for code that
 * must handle every file of a database directory -- remove them, copy them. */
UDB_API const char *const *udb_env_files(void);

/* Open (creating if missing) the database directory `path`.  opts may be NULL.
 * Stale reader slots left by crashed processes are cleared.  A new database
 * records the on-disk format version (UDB_FORMAT_VERSION); opening checks it,
 * and a database of an older format is upgraded in place, in one write
 * transaction (its indexes are rebuilt from the records); read-only, an older
 * format is refused (UDB_EFORMAT) until a read-write open upgrades it.
 * With UDB_RDONLY_ENV nothing is created: the directory and its data.mdb must
 * exist and hold a uniqdb database.
 * Errors: UDB_EINVAL (NULL arguments, unknown flags, UDB_NOLOCK without
 * UDB_RDONLY_ENV; options other than those of the environment this process
 * has open for the same database, see below), UDB_ECORRUPT (stored schema
 * unreadable), UDB_EFORMAT (an LMDB environment that holds other data, or,
 * read-only, one without uniqdb's metadata -- left untouched either way; or a
 * format version newer than this library's), UDB_ENOMEM, errno codes: ENOENT
 * (no such directory; read-only: or no data.mdb in it), EACCES (permission
 * denied, on the directory, the data file or the lock file), ENOTDIR; LMDB
 * codes.
 * On success *out must be closed with udb_close().
 *
 * Opened again in the same process (the same directory, however the path
 * spells it: a symlink, "./db", "db/", absolute or relative -- the same device
 * and inode), while still open: no second LMDB environment is made (LMDB
 * allows one per file per process: closing a second one would drop the
 * process's locks, and another process could then write at the same time and
 * lose acknowledged writes).  *out is the environment already open -- the
 * same pointer -- and counted: each udb_open() needs its udb_close(), and the
 * database is closed by the last one.  A second open must ask for the options
 * the environment was opened with: the same flags, max_map_size, grow_wait_ms
 * (0 counts as its default) and lock_wait_ms, and a max_dbs it has room for
 * (0 always fits); otherwise it fails with UDB_EINVAL, the message naming the
 * option and both values, and the open environment is untouched.  map_size
 * and mode only shape files that exist by then: ignored.  Messages keep the
 * path of the first open.  Threads may open and close the same database at
 * once; an open that meets a close of the last handle waits for it and opens
 * anew.  In a child process after fork() the parent's environments are not
 * shared: udb_open() there opens its own.
 *
 * On PostgreSQL: a path that starts with postgresql:// or postgres:// is a
 * libpq connection URI naming a server database (user, password, host or
 * socket directory, port, dbname and libpq's other parameters; PG*
 * environment variables fill in what it leaves out), plus one parameter of
 * uniqdb's own, schema=NAME (default "public"): the PostgreSQL schema that
 * holds this uniqdb database, so several can share one server database.  For
 * example "postgresql://app@db.internal/shop?schema=bookings".  The same
 * calls then run on the server, with the same meaning and codes (README,
 * "Running on PostgreSQL", lists what differs); udb_schema_apply creates the
 * schema, its tables and indexes.  The environment holds a pool of up to 16
 * connections that its threads share (a transaction holds one for its life);
 * it is opened again, not shared, by each udb_open.  A forked child opens
 * its own.  Of the options, UDB_RDONLY_ENV refuses writes and UDB_NOSYNC
 * commits with synchronous_commit off; UDB_NOLOCK is refused (UDB_EINVAL);
 * the other flags and sizes are LMDB's and ignored.  Opening connects once:
 * UDB_ECONNECT (server unreachable), UDB_EAUTH (login refused), UDB_EINVAL
 * (a malformed URL or schema parameter), and, without libpq at build time,
 * UDB_EINVAL saying so. */
UDB_API int udb_open(udb_env **out, const char *path, const udb_options *opts);

/* Close env, once every udb_exec_async() unit queued before has its done()
 * called.  Every transaction and cursor on it must have ended -- if the
 * process opened the database more than once (see udb_open), only those of
 * the code giving up this open: each udb_close() gives up one udb_open(), the
 * other opens keep working, their transactions and units included, and the
 * last udb_close() closes the database.  (So closing more often than opening
 * closes it under another user.)  NULL is fine. */
UDB_API void udb_close(udb_env *env);

/* udb_schema_apply() flags */
#define UDB_SCHEMA_KEEP 0x1u /* keep everything the stored schema has and json lacks or
                                defines more loosely; add only what json adds.  A json that
                                is a subset of the stored schema is then a no-op: the way an
                                older app version opens a database a newer one extended. */
#define UDB_SCHEMA_DROP 0x2u /* apply json exactly, even where it removes or loosens: drops
                                indexes and types (with their records) it lacks */

/* Apply a schema (JSON text, see README) in one write transaction.  Applying
 * the stored schema again is a no-op.  Without flags, json must be the stored
 * schema plus additions: a new type, an optional field, an index (built
 * here), an enum value, "required" on a field of an empty type.  A change
 * that would remove or loosen a constraint -- remove a type or an index
 * (unique or not), redefine an index, drop "required", turn "extra" on -- is
 * refused with UDB_ESCHEMA, naming each such item, unless flags has
 * UDB_SCHEMA_DROP (do it) or UDB_SCHEMA_KEEP (keep them, add the rest).
 * Changes that would strand stored records are refused whatever the flags:
 * removing or retyping a field, removing an enum value, changing the key or
 * "auto".  If another process (or thread) applied a schema since this handle
 * last read the stored one, a refusal says so and lists what changed.
 * *changes (changes may be NULL) receives what was done, one item per line
 * ("added ...", "rebuilt ...", "removed ...", "kept ... (not in the given
 * schema)"; "" when nothing changed), NUL-terminated; free it with udb_free().
 * Errors: UDB_ESCHEMA (malformed, or a change that is not allowed; the
 * reason in udb_env_errmsg), UDB_ECONFLICT (existing records collide in a
 * new unique index; udb_env_errmsg lists their keys), UDB_EDBSFULL (more
 * types and indexes than udb_options.max_dbs; the message names the number), UDB_EINVAL (NULL env
 * or json, unknown flags, both KEEP and DROP), UDB_ENOMEM, LMDB codes.  On
 * any error nothing changes and *changes is untouched. */
UDB_API int udb_schema_apply(char **changes, udb_env *env, const char *json, size_t len, unsigned flags);

/* udb_schema_apply, calling locked(payload) each time its write transaction
 * has begun (it then holds the database's single writer slot); nothing of
 * the change is written before the first call.  A caller that watches the
 * wait for another process's write transaction (the uniqdb tool's --timeout)
 * thus knows until when giving up -- even ending the process -- leaves the
 * database as it was.  locked runs on the calling thread, more than once if
 * the change is redone after the map grew, and must not call uniqdb; it may
 * be NULL (then this is udb_schema_apply).  Errors, *changes and its
 * ownership: as udb_schema_apply. */
UDB_API int udb_schema_apply_notify(char **changes, udb_env *env, const char *json, size_t len,
                                    unsigned flags, udb_locked_fn locked, void *payload);

/* The stored schema as JSON text, NUL-terminated.  *out is the caller's: free
 * it with udb_free().  Errors: UDB_ENOTFOUND (no schema applied yet), UDB_ENOMEM. */
UDB_API int udb_schema_json(char **out, udb_env *env);

/* The schema txn sees (its snapshot's), as NUL-terminated JSON text owned by
 * txn: valid until txn ends.  *len (may be NULL) gets its length.
 * Errors: UDB_EINVAL, UDB_ENOTFOUND (no schema applied yet). */
UDB_API int udb_txn_schema_json(const char **out, size_t *len, udb_txn *txn);

/* The PostgreSQL tables and indexes of the schema txn sees, as SQL text: the
 * mapping `uniqdb export --postgres` uses (README, "Moving to PostgreSQL"):
 * a table per type with a typed column per field and CHECKs, every unique
 * index a PostgreSQL unique index (partial WHERE, NULLS NOT DISTINCT), every
 * plain index.  opts (NULL: UDB_PG_DDL_OPTIONS_INIT) chooses the schema, the
 * parts (UDB_PG_DDL_TABLES: tables and sequences; UDB_PG_DDL_INDEXES:
 * indexes, which a loader creates after the data) and, with
 * UDB_PG_DDL_SEQUENCES, auto keys as PostgreSQL sequences with a column
 * default; opts->sequences (NULL-terminated, may be NULL) names further
 * sequences to create, opts->bytea_fields ("type.field", NULL-terminated, may
 * be NULL) str fields to declare bytea.  No connection is made.
 * *out is the caller's, NUL-terminated: free it with udb_free().
 * Errors: UDB_EINVAL (txn or out NULL, unknown flags, a bytea_fields entry
 * that is no str field), UDB_ENOTFOUND (no schema applied yet), UDB_ESCHEMA
 * (a name PostgreSQL cannot hold -- over 63 bytes -- or two relations that
 * would share a name; udb_errmsg(txn) names them), UDB_ENOMEM. */
#define UDB_PG_DDL_TABLES    0x1u
#define UDB_PG_DDL_INDEXES   0x2u
#define UDB_PG_DDL_SEQUENCES 0x4u
typedef struct udb_pg_ddl_options {
    const char *pgschema;             /* the PostgreSQL schema; "public" when NULL */
    unsigned flags;                   /* UDB_PG_DDL_* */
    const char *const *sequences;     /* named sequences to create too */
    const char *const *bytea_fields;  /* "type.field" str fields as bytea */
} udb_pg_ddl_options;
#define UDB_PG_DDL_OPTIONS_INIT {"public", UDB_PG_DDL_TABLES | UDB_PG_DDL_INDEXES, NULL, NULL}
UDB_API int udb_pg_ddl(char **out, udb_txn *txn, const udb_pg_ddl_options *opts);

/* ---- Transactions -------------------------------------------------------- */

/* Begin a transaction: flags 0 for a write transaction, UDB_RDONLY for a
 * read-only snapshot (readers never block writers).  A write transaction waits
 * for the database's single writer slot.  Picks up schema changes made by other
 * processes.  A write transaction on a thread that already has a transaction
 * open on env is refused (UDB_EINVAL, naming the rule).
 * Errors: UDB_EINVAL, UDB_ENOMEM, UDB_EBUSY (see udb_write), UDB_EREADONLY,
 * UDB_EFLUSHFAILED (for writing, after a failed flush), LMDB codes.
 * On PostgreSQL a write transaction is SERIALIZABLE and a read-only one
 * REPEATABLE READ READ ONLY (one snapshot): writers do not wait for one
 * another at begin, and the server may refuse one that met a concurrent
 * transaction -- any call on it, or udb_commit, then returns UDB_ERETRY:
 * abort it and run it again from udb_begin.  Begin also returns
 * UDB_ECONNECT, UDB_EAUTH, UDB_ESERVER. */
UDB_API int udb_begin(udb_txn **out, udb_env *env, unsigned flags);

/* Commit and free txn (also for read-only ones).  On error the transaction is
 * aborted and freed all the same.  A write transaction returns once it is
 * durable (see "Durability" above); a read-only one at once.
 * Errors: UDB_EFLUSHFAILED (committed, but a flush failed: not acknowledged;
 * the database now refuses writes), LMDB codes (MDB_MAP_FULL, EIO, ...).
 * On PostgreSQL: UDB_ERETRY (refused as concurrent: nothing written, run it
 * again), UDB_EINDOUBT (the connection was lost during COMMIT: it may or may
 * not have been written), UDB_ESERVER (an earlier call failed in a way that
 * made the server roll the transaction back), UDB_ECONNECT; the message is
 * udb_env_errmsg()'s. */
UDB_API int udb_commit(udb_txn *txn);

/* Abandon every change of txn and free it.  NULL is fine. */
UDB_API void udb_abort(udb_txn *txn);

/* Whether read-only transaction txn still reads the latest committed state:
 * *latest = 1 when nothing was committed since it began (by any thread or
 * process) and no growth of the map waits for this process's transactions,
 * so that a caller may keep txn for its next reads instead of beginning
 * another; 0 when it must end txn and begin a new one to see the latest
 * state.  A few loads of shared memory and one uncontended lock, no system
 * call.  Always 0 for a write transaction, a nested one, and on PostgreSQL
 * (whose snapshots cannot tell).  A kept snapshot still holds back LMDB's
 * reuse of pages freed after it, and a map resize waits for it: keep one
 * only briefly (for the reads of one request, say).
 * Errors: UDB_EINVAL (latest or txn NULL; *latest is then 0). */
UDB_API int udb_txn_latest(int *latest, udb_txn *txn);

/* Run fn(txn, ctx) in a write transaction and commit it.  If fn returns
 * non-zero, its changes are rolled back and its code is returned.  If the map
 * fills up, the map is grown and fn runs again from the start (so fn must not
 * have side effects outside txn that cannot be repeated).  fn must not commit
 * or abort txn.
 *
 * Group commit: concurrent callers in one process share commits (unless
 * UDB_NOGROUP): one caller runs every queued fn, each inside its own nested
 * transaction -- so a failing fn rolls back only its own work -- then commits
 * once.  Each caller returns only after its work and what it read are durable
 * (as durable as the env's sync flags make it; see "Durability" above), with
 * its own fn's result.  While one batch waits for its flush, the next batch
 * runs and commits.  If the shared
 * commit or its flush fails, every fn of that batch gets the error.  fn may run on
 * another caller's thread (the batch leader), one fn at a time.  udb_errmsg(),
 * udb_conflict_info() and values returned by operations inside fn refer to
 * fn's own work and stay valid only until fn returns: copy what you need.
 * After a failure, udb_env_errmsg() on the calling thread holds fn's message.
 *
 * Rules: fn must not call udb_write or udb_begin for writing; the calling
 * thread must not hold another transaction on env (growing the map waits
 * until this process has no transaction open).  Both are detected: the call
 * fails at once with UDB_EINVAL and a message naming the rule, instead of
 * hanging.  Growing the map waits at most udb_options.grow_wait_ms for other
 * threads' transactions, then fails with UDB_EBUSY.
 * Errors: fn's own code, UDB_ESIZELIMIT, UDB_EFLUSHFAILED (before fn runs: the
 * database refuses writes; after: fn's work is committed but not
 * acknowledged), UDB_EINVAL, UDB_EBUSY, LMDB codes.
 *
 * On PostgreSQL fn runs in one server transaction of its own (no group
 * commit: the server's commits are shared by its own WAL flushes).  When the
 * server refuses it as concurrent with another (SQLSTATE 40001 or 40P01,
 * met by any call inside fn or by the commit, whatever fn returned), fn runs
 * again from the start after a short random pause -- the same contract as
 * the map growth above -- up to 32 times, then UDB_EBUSY.  If the connection
 * is lost during the COMMIT, udb_write returns UDB_EINDOUBT and does not run
 * fn again (it may have been written: find out by reading).  Also
 * UDB_ECONNECT, UDB_EAUTH, UDB_ESERVER. */
UDB_API int udb_write(udb_env *env, udb_write_fn fn, void *ctx);

/* ---- Records ------------------------------------------------------------- */

/* Insert rec (a msgpack map) as a record of `type`.  An auto key missing from
 * rec is taken from the type's sequence.  Every unique index is checked before
 * anything is written.  *out (may be NULL) receives the stored record.
 * Errors: UDB_ECONFLICT (nothing written, txn still usable; see
 * udb_conflict_info), UDB_EBADRECORD, UDB_EINVAL, UDB_EREADONLY,
 * LMDB codes (UDB_EMAPFULL: abort the transaction; the next udb_begin grows the map). */
UDB_API int udb_insert(udb_val *out, udb_txn *txn, const char *type, const void *rec, size_t len);

/* Get a record by primary key (a msgpack value).  Errors: UDB_ENOTFOUND,
 * UDB_EBADRECORD (key of the wrong type), UDB_EINVAL, LMDB codes. */
UDB_API int udb_get(udb_val *out, udb_txn *txn, const char *type, const void *key, size_t key_len);

/* Get the record that holds `values` (a msgpack array, one value per field)
 * in unique index `index`; a "collate": "nocase" field matches its value in
 * any case of ASCII letters.  Errors: UDB_ENOTFOUND, UDB_EBADRECORD (wrong count
 * or types), UDB_EINVAL (unknown type or index, or not a unique index), LMDB codes. */
UDB_API int udb_find(udb_val *out, udb_txn *txn, const char *type, const char *index,
                     const void *values, size_t len);

/* Replace the record with primary key `key` by rec, or with UDB_MERGE merge
 * rec's fields into it.  rec may omit the key field; it must not change it.
 * Every index moves with the record; a record entering a partial index is
 * checked like an insert.  *out (may be NULL) receives the stored record.
 * Errors: UDB_ENOTFOUND, UDB_ECONFLICT, UDB_EBADRECORD,
 * UDB_EINVAL, UDB_EREADONLY, LMDB codes. */
UDB_API int udb_update(udb_val *out, udb_txn *txn, const char *type, const void *key,
                       size_t key_len, const void *rec, size_t len, unsigned flags);

/* Delete a record and all its index entries.
 * Errors: UDB_ENOTFOUND, UDB_EBADRECORD, UDB_EINVAL, UDB_EREADONLY, LMDB codes. */
UDB_API int udb_delete(udb_txn *txn, const char *type, const void *key, size_t key_len);

/* Insert rec, or if the key it would have in unique index `index` (NULL: the
 * primary key) is already held, return that record instead.  *created is 1 if
 * rec was inserted, 0 if an existing record was returned.  Nothing is ever
 * overwritten.  rec must be a valid record even when an existing one is
 * returned (UDB_EBADRECORD otherwise: validity never depends on what the
 * database holds).  Its key is computed as an insert would: a missing auto
 * key counts as the sequence's next value (taken only if rec is inserted),
 * so a `where` that reads the key field sees that value.  A conflict on any
 * other unique index is UDB_ECONFLICT.
 * Errors: as udb_insert(). */
UDB_API int udb_insert_or_get(udb_val *out, int *created, udb_txn *txn, const char *type,
                              const char *index, const void *rec, size_t len);

/* Upsert keyed on unique index `index` (NULL: primary key).  The proposed row
 * is rec merged over on_insert (a msgpack map of fields set only when
 * inserting; may be NULL).  It must be a valid record whichever way the call
 * goes -- required fields included -- or the call fails with UDB_EBADRECORD
 * before looking for a holder, as insert_or_get does (and as PostgreSQL's
 * INSERT ... ON CONFLICT DO UPDATE does): validity never depends on what the
 * database holds.  Its key in `index` is computed as an insert would (auto
 * key included, see udb_insert_or_get).  If a record holds that key, rec's
 * fields alone are merged into it (nil removes a field; its primary key is
 * kept: a key field in rec is ignored; other indexes are checked as for an
 * update); otherwise the proposed row is inserted.  *created says which
 * happened.  To patch a record without giving a full row, use udb_update()
 * with UDB_MERGE.
 * Errors: as udb_insert() and udb_update(). */
UDB_API int udb_upsert(udb_val *out, int *created, udb_txn *txn, const char *type,
                       const char *index, const void *rec, size_t len, const void *on_insert,
                       size_t on_insert_len);

/* Insert the first of the n candidate records that conflicts with nothing;
 * *chosen is its position.  If all conflict: UDB_ECONFLICT with the detail of
 * the last candidate.  An invalid candidate stops the search with UDB_EBADRECORD
 * (*chosen is its position).  Errors: as udb_insert(). */
UDB_API int udb_insert_first(udb_val *out, size_t *chosen, udb_txn *txn, const char *type,
                             const udb_val *candidates, size_t n);

/* ---- Declarative writes -------------------------------------------------- */

/* udb_exec() runs a list of record operations, described as data, as ONE
 * atomic unit: all of them are written, or none.  Unlike udb_write()'s
 * callback, a unit is plain data, so it can be checked before it runs and
 * handed to whichever thread leads the group commit.
 *
 * Each udb_op names an operation (kind) and its arguments, the ones the
 * record call of the same name takes.  Start every op from UDB_OP_INIT, then
 * set fields by name: a later version may add fields at the end, and
 * `version` (set by UDB_OP_INIT) tells udb_exec() which fields -- and so which
 * size -- the caller's structs have.  Fields an op kind does not take must
 * stay zero (NULL); a set one is refused with UDB_EINVAL, naming it. */
#define UDB_OP_INSERT        1 /* udb_insert(type, rec) */
#define UDB_OP_INSERT_OR_GET 2 /* udb_insert_or_get(type, index, rec) */
#define UDB_OP_UPSERT        3 /* udb_upsert(type, index, rec, on_insert) */
#define UDB_OP_UPDATE        4 /* udb_update(type, key, rec, flags): flags 0 replaces,
                                  UDB_MERGE merges */
#define UDB_OP_DELETE        5 /* udb_delete(type, key) */
#define UDB_OP_INSERT_FIRST  6 /* udb_insert_first(type, candidates, ncandidates) */
#define UDB_OP_SEQ_NEXT      7 /* udb_seq_next(seq): the value in udb_result.value */

typedef struct udb_op {
    unsigned version;         /* UDB_OP_VERSION (set by UDB_OP_INIT); the same in every
                                 op of one call */
    unsigned kind;            /* UDB_OP_* */
    const char *type;         /* the record type (every kind but UDB_OP_SEQ_NEXT) */
    const char *index;        /* INSERT_OR_GET, UPSERT: the unique index; NULL = primary key */
    udb_val rec;              /* INSERT, INSERT_OR_GET, UPSERT, UPDATE: the record or fields
                                 (a msgpack map) */
    udb_val key;              /* UPDATE, DELETE: the primary key (a msgpack value) */
    udb_val on_insert;        /* UPSERT: fields set only when inserting (data NULL: none) */
    const udb_val *candidates; /* INSERT_FIRST: the candidate records ... */
    size_t ncandidates;       /*   ... and how many (>= 1) */
    unsigned flags;           /* UPDATE: 0 or UDB_MERGE */
    const char *seq;          /* SEQ_NEXT: the sequence name */
    const char *seq_field;    /* INSERT, INSERT_OR_GET, UPSERT, UPDATE (may be NULL): set this
                                 field of rec to the value that op number seq_op took ... */
    size_t seq_op;            /*   ... an earlier UDB_OP_SEQ_NEXT of the same call */
} udb_op;

#define UDB_OP_VERSION 1
#define UDB_OP_INIT {UDB_OP_VERSION, 0, NULL, NULL, {NULL, 0}, {NULL, 0}, {NULL, 0}, NULL, 0, 0, \
                     NULL, NULL, 0}
/* The most ops one udb_exec() call takes. */
#define UDB_EXEC_MAX 65536

/* What one op did.  Owned by the udb_results it came from (see udb_exec), and
 * read only through udb_result_at(): a later version may add fields at the
 * end. */
typedef struct udb_result {
    int rc;                       /* 0, or this op's error: the op that failed the unit */
    int created;                  /* INSERT: 1; INSERT_OR_GET, UPSERT: 1 if rec was inserted,
                                     0 if an existing record was returned (updated, UPSERT) */
    udb_val record;               /* the stored record (INSERT_OR_GET: the existing one when
                                     created is 0), msgpack; {NULL, 0} for DELETE, SEQ_NEXT */
    size_t chosen;                /* INSERT_FIRST: the candidate inserted (or the invalid one) */
    uint64_t value;               /* SEQ_NEXT: the value taken */
    const char *errmsg;           /* rc != 0: udb_errmsg() of the op, else "" (never NULL) */
    const udb_conflict *conflict; /* rc == UDB_ECONFLICT: udb_conflict_info() of the op,
                                     else NULL */
} udb_result;

typedef struct udb_results udb_results; /* every udb_result of one udb_exec() call */

/* Run ops[0..n-1] in order, as one unit, in one write transaction shared
 * with concurrent udb_write() and udb_exec() callers of this process (group
 * commit, exactly as udb_write(): same durability -- 0 only once the unit and
 * what it read are durable --, same map growth and rerun, same rules: not
 * from inside a udb_write() callback, nor on a thread that holds a
 * transaction on env).  Each op sees the work of the ops before it.
 *
 * Across processes: while another process leads a group commit on the same
 * database, a unit is handed to that leader through shared memory (the sync
 * file, UDB_SYNC_FILE; up to 128 units at a time) and runs in its batch; the
 * caller gets the same results, and the same durability, as if it had run
 * here.  A leader killed at any moment loses no unit and
 * applies none twice: each handed-over unit is recorded in the database in
 * the same transaction as its work, so the next leader knows whether it
 * committed.  Units over 8 KiB, or whose results would be, run in their
 * caller's process.  UDB_NOSHIP turns this off for an environment.
 *
 * A unit of UDB_OP_INSERT_OR_GET ops only, each of whose keys is held
 * already, writes nothing: on LMDB it is answered from a read snapshot,
 * without a write transaction or a turn in a group commit, and returns once
 * that snapshot is durable -- the results are those a write would give.
 *
 * If an op fails, the whole unit is rolled back: nothing of it is written,
 * the later ops do not run, and udb_exec() returns that op's code;
 * udb_results_failed() gives its position and its udb_result says why (rc,
 * errmsg, and for UDB_ECONFLICT the conflict detail, as udb_conflict_info()
 * would give it).  After a failure only that op's result is filled: the other
 * results are zero ({NULL, 0} records, "" messages).
 *
 * *results is set on every return: NULL when the call failed before trying
 * the ops (an argument error, the thread rule above, no memory for the
 * results), otherwise every op's result, whether the unit succeeded or not.
 * The results and everything they point to (records, messages, conflict
 * detail) belong to the caller: they stay valid until udb_results_free(),
 * from any thread, independent of any transaction and of env.  ops and the
 * bytes they point to are read only during the call.
 *
 * Arguments are checked before anything runs: results, env and ops must not
 * be NULL, 1 <= n <= UDB_EXEC_MAX, every op must have a known version and
 * kind, the fields its kind needs, no field its kind does not take, and a
 * seq_op that names an earlier UDB_OP_SEQ_NEXT; otherwise UDB_EINVAL with
 * udb_env_errmsg() naming the op ("ops[2]: ...").  Whatever an op's own
 * call checks (unknown type or index, a record that does not match the
 * schema, ...) fails that op as that call would.
 * Errors: the failed op's code (UDB_ECONFLICT, UDB_ENOTFOUND, UDB_EBADRECORD,
 * UDB_EINVAL, UDB_EEXHAUSTED, ...); and, with udb_results_failed() == n (no
 * op failed), what udb_write() returns for the unit as a whole:
 * UDB_ESIZELIMIT, UDB_EBUSY, UDB_EFLUSHFAILED (as with udb_write(): after the
 * commit, the unit is committed but not acknowledged), UDB_EREADONLY,
 * UDB_ENOMEM, LMDB codes.  udb_env_errmsg() holds the detail.
 * On PostgreSQL the unit runs in a server transaction of its own, again when
 * refused as concurrent (as udb_write), and writes a random 16-byte id of
 * its own in that transaction (table "$unit"; ids older than a day are
 * swept): if the connection is lost during its COMMIT, udb_exec reads
 * whether the id is there and answers as if the connection had held --
 * committed, or run again -- so a unit is applied once and never left in
 * doubt while the server can be reached (else UDB_ECONNECT). */
UDB_API int udb_exec(udb_results **results, udb_env *env, const udb_op *ops, size_t n);

/* The completion of udb_exec_async(): rc and results exactly as udb_exec()
 * would have returned them (results NULL only when rc is UDB_ENOMEM and
 * there was no memory for them); errmsg is what udb_env_errmsg() would say
 * ("" on success), valid during the call.  results are the callback's: free
 * them with udb_results_free(), now or later, from any thread. */
typedef void (*udb_exec_done_fn)(int rc, udb_results *results, const char *errmsg,
                                 void *payload);

/* The most udb_exec_async() units one environment has in flight. */
#define UDB_EXEC_ASYNC_MAX 4096

/* udb_exec() without waiting: the unit is checked (as udb_exec() checks it:
 * UDB_EINVAL with udb_env_errmsg() naming the op) and copied -- ops and the
 * bytes they point to may be freed as soon as this returns --, then run by
 * the engine through group commit like any udb_exec() unit (same batches,
 * shared with other processes, same durability), and done() is called
 * exactly once, on one of the engine's threads, when the unit is durable or
 * has failed.  Units of one environment run concurrently, as udb_exec()
 * calls from as many threads would: their order between each other is not
 * defined (chain them, or put the ops in one unit, where order matters).
 *
 * Returns 0 once the unit is queued: done() will be called.  Any other
 * return means it was not queued and done() will not be called: UDB_EINVAL
 * (arguments, ops, or env is closing), UDB_ENOMEM, UDB_EBUSY (called from a
 * done() callback while UDB_EXEC_ASYNC_MAX units are in flight; elsewhere
 * the call waits until one finishes: that is the backpressure).
 *
 * Threads: any thread may call it, also one holding a transaction and also a
 * done() callback.  done() runs on an engine thread that holds no
 * transaction; it may call any uniqdb function but udb_close() and
 * udb_exec_async_wait() on env, and while it runs it holds up one of the 64
 * threads that carry units in flight: keep it short.  udb_close() first
 * waits for every unit queued before it (each done() called); if it gives up
 * one of several opens of the database (see udb_open), units the other opens
 * queue meanwhile go on. */
UDB_API int udb_exec_async(udb_env *env, const udb_op *ops, size_t n, udb_exec_done_fn done,
                           void *payload);

/* Wait until every udb_exec_async() unit of env queued before this call (and
 * since) is done: each done() has returned.  Not from a done() callback
 * (UDB_EINVAL).  Errors: UDB_EINVAL. */
UDB_API int udb_exec_async_wait(udb_env *env);

/* The result of op i of res, or NULL if i >= the number of ops (or res is NULL). */
UDB_API const udb_result *udb_result_at(const udb_results *res, size_t i);

/* The position of the op that failed the unit; the number of ops if none did
 * (success, or a failure of the unit as a whole); (size_t)-1 for a NULL res. */
UDB_API size_t udb_results_failed(const udb_results *res);

/* Free res and everything its results point to.  NULL is fine. */
UDB_API void udb_results_free(udb_results *res);

/* ---- Scans --------------------------------------------------------------- */

/* Open a cursor over the records of `type` in the order of `index` (NULL: the
 * primary key), restricted to those whose leading index fields equal `prefix`
 * (a msgpack array of up to nfields values; NULL for all).  Any index can be
 * scanned, unique or not, and holds every record of the type -- records with
 * missing (NULL) index fields included, in SQL's ORDER BY order of the
 * index's fields with NULLs first (SQLite's order); ties of a non-unique
 * index, and of NULL-holding entries of a unique one, in primary-key order.
 * A nil in prefix matches a missing field (SQL's IS NULL).  A "collate":
 * "nocase" field orders and matches its values with ASCII A-Z as a-z (SQLite's
 * NOCASE index order).  The exception is
 * a partial index: it holds only the records its "where" predicate admits.
 * The cursor must be closed before txn ends.  The prefix case of
 * udb_scan_range (lo = hi = prefix, both included), which adds bounds,
 * reverse order, a limit and paging.
 * On PostgreSQL the same records come in the same order with the same
 * positions (udb_cursor_key), read from a server-side cursor 256 rows at a
 * time.  The difference: the cursor works on the transaction's data as it
 * was when the scan opened, so it does not see records its own transaction
 * writes afterwards (on LMDB a cursor sees those it has not passed yet).
 * Errors: UDB_EINVAL, UDB_EBADRECORD (prefix of wrong types), UDB_ENOMEM, LMDB codes;
 * on PostgreSQL UDB_ERETRY, UDB_ECONNECT, UDB_ESERVER. */
UDB_API int udb_scan(udb_cursor **out, udb_txn *txn, const char *type, const char *index,
                     const void *prefix, size_t len);

/* A range of an index for udb_scan_range().  Start from UDB_RANGE_INIT, then
 * set fields by name: a later version may add fields at the end, and
 * `version` tells the library which fields the caller's struct has.
 *
 * lo and hi are msgpack arrays of values for the index's leading fields (at
 * most its field count; the primary key's one field for a primary-key
 * scan), each value of its field's type or nil; data NULL (or an empty
 * array) leaves that side open.  An entry is in the range when its first k
 * index values, compared as a row with a bound of k values (SQL's
 * (a, b) >= (x, y)), are >= lo (> with UDB_LO_EXCL) and <= hi (< with
 * UDB_HI_EXCL): a bound of fewer values than the index has takes in every
 * entry that starts with them (lo = hi = [x] is the prefix [x]).  Bounds
 * are positions in the index's order, where NULL (a missing field) is the
 * smallest value: hi alone takes in the entries with NULLs (SQL's a < x
 * would not; lo = [nil] with UDB_LO_EXCL leaves them out), and nil is a
 * bound like any value.  lo after hi is an empty range, not an error.
 *
 * after resumes a scan (paging): a sort key as udb_cursor_key() gives it --
 * the index's field values then the primary key (the primary key alone for
 * a primary-key scan), all of them -- and the scan takes only the entries
 * after it in scan order (before it, in a reverse scan).  It is a position,
 * not a record: it works after that record was changed or deleted.
 *
 * UDB_REVERSE: the range in reverse order (NULLs last).  limit: at most this
 * many entries (udb_cursor_next or udb_cursor_skip), then UDB_ENOTFOUND; 0:
 * no limit.  The bytes lo, hi and after point to are read during
 * udb_scan_range() only. */
typedef struct udb_range {
    unsigned version;   /* UDB_RANGE_VERSION (set by UDB_RANGE_INIT) */
    udb_val lo, hi;     /* msgpack arrays of leading field values; data NULL: open */
    unsigned flags;     /* UDB_LO_EXCL, UDB_HI_EXCL, UDB_REVERSE */
    udb_val after;      /* a sort key from udb_cursor_key(); data NULL: from the start */
    uint64_t limit;     /* at most this many entries; 0: no limit */
} udb_range;

#define UDB_RANGE_VERSION 1
#define UDB_RANGE_INIT {UDB_RANGE_VERSION, {NULL, 0}, {NULL, 0}, 0, {NULL, 0}, 0}

/* udb_range.flags */
#define UDB_LO_EXCL 0x1u /* lo is excluded: entries whose first values equal lo are not in */
#define UDB_HI_EXCL 0x2u /* hi is excluded */
#define UDB_REVERSE 0x4u /* scan from hi down to lo: the index's order reversed */

/* Open a cursor over the records of `type` in the order of `index` (NULL or
 * the key field: the primary key) within `range` (NULL: every record, as
 * udb_scan with no prefix).  The order is udb_scan's, SQL's ORDER BY over
 * the index's fields then the primary key, NULLs first -- reversed with
 * UDB_REVERSE (ORDER BY ... DESC: NULLs last).  Long values (keys over 503
 * bytes) are compared in full.  The cursor must be closed before txn ends.
 * Errors: UDB_EINVAL (NULL out, unknown type or index, range->version not
 * one this library knows, unknown flags), UDB_EBADRECORD (lo, hi or after
 * not a msgpack array of scalars, more values than the index has fields --
 * after: not exactly its sort key's count -- or a value of the wrong type
 * for its field; the message names which and what is allowed), UDB_ENOMEM,
 * LMDB codes. */
UDB_API int udb_scan_range(udb_cursor **out, udb_txn *txn, const char *type, const char *index,
                           const udb_range *range);

/* The sort key of the entry the cursor handed out last (udb_cursor_next or
 * udb_cursor_skip): a msgpack array of the index's field values (nil for a
 * missing one) then the record's primary key -- for a primary-key scan, the
 * primary key alone.  Give it as udb_range.after to get the entries that
 * follow (the next page), in this transaction or a later one.  *out is the
 * cursor's memory, valid until its next call or its close.
 * Errors: UDB_EINVAL (NULL argument), UDB_ENOTFOUND (nothing handed out
 * yet), UDB_ECORRUPT (a damaged entry), UDB_ENOMEM. */
UDB_API int udb_cursor_key(udb_val *out, udb_cursor *cur);

/* The next record.  Errors: UDB_ENOTFOUND at the end, UDB_ECORRUPT (the
 * message names the type and key): a damaged record, a record an index entry
 * points to is missing, or an entry of garbage size or out of key order
 * (skipped): the cursor goes on after it.  A scan that reads far more
 * entries than the database holds (a loop), damage in a long key, or an
 * LMDB error end it: the next call returns UDB_ENOTFOUND.  At the end of a
 * whole type or index in a read-only transaction, fewer entries read than
 * LMDB counts is UDB_ECORRUPT too.  LMDB codes.  Records are checked (a
 * msgpack map of at most 4 MiB) before they are handed out.
 * On PostgreSQL: UDB_ERETRY (the server refused the read as concurrent with
 * another transaction: run the transaction again), UDB_ECONNECT, and
 * UDB_ESERVER also when the server hands rows back out of uniqdb's order
 * (the scan ends rather than differ from LMDB's); every record handed out
 * is copied into the transaction, a read-only one too, until it ends. */
UDB_API int udb_cursor_next(udb_val *out, udb_cursor *cur);

/* Step over the next n entries of the scan without reading the records they
 * point to (an index scan reads only the index; a primary-key scan reads
 * only its own pages, where the records are), as udb_cursor_next would have
 * returned them.  *skipped (may be NULL) gets how many there were (fewer
 * than n at the end of the scan).  Lets a reader resume an index scan of a
 * damaged database after the entry whose record could not be read: what
 * `uniqdb dump --salvage` does in a new process.  Errors: UDB_EINVAL,
 * UDB_ECORRUPT (the scan met damage; *skipped entries were stepped over),
 * UDB_ENOMEM, LMDB codes. */
UDB_API int udb_cursor_skip(uint64_t *skipped, udb_cursor *cur, uint64_t n);

/* Close a cursor.  NULL is fine. */
UDB_API void udb_cursor_close(udb_cursor *cur);

/* ---- Sequences ----------------------------------------------------------- */

/* Advance the named sequence and return its new value (1 the first time).
 * The step belongs to txn: if txn aborts, the number is given back, so the
 * values of committed transactions have no gaps.  Type auto keys use the
 * sequence "<type>.<keyfield>".
 * Errors: UDB_EINVAL (empty or over-long name), UDB_EEXHAUSTED (at UINT64_MAX),
 * UDB_EREADONLY, LMDB codes. */
UDB_API int udb_seq_next(uint64_t *out, udb_txn *txn, const char *name);

/* The current value of a sequence (the last one taken).
 * Errors: UDB_ENOTFOUND (never advanced), UDB_EINVAL, LMDB codes. */
UDB_API int udb_seq_get(uint64_t *out, udb_txn *txn, const char *name);

/* Set a sequence's current value (for restoring dumps).  A type's auto-key
 * sequence cannot be set below the type's largest key (the next auto key
 * would be taken).
 * Errors: UDB_EINVAL (bad name, or below the largest key), UDB_EREADONLY,
 * LMDB codes. */
UDB_API int udb_seq_set(udb_txn *txn, const char *name, uint64_t value);

/* Call fn for every sequence in name order; a non-zero return from fn stops
 * the walk and is returned.  name is valid only during the call.
 * Errors: fn's own code, UDB_EINVAL (NULL txn or fn), UDB_ECORRUPT (a damaged
 * sequence entry), LMDB codes. */
UDB_API int udb_seq_foreach(udb_txn *txn, udb_seq_fn fn, void *ctx);

/* ---- Records as JSON -------------------------------------------------------
 * The JSON forms of the `uniqdb` tool (README, "Records as JSON"), for C
 * programs that would rather not pack msgpack by hand.  The conversion is
 * exact both ways and knows no schema: the record call that takes the bytes
 * checks them against the schema as it checks any msgpack (a JSON integer
 * given for a float field is stored as a float, as any msgpack integer is;
 * a bin field wants {"$bin": "<base64>"}, since a JSON string is a msgpack
 * str).  So any msgpack value the engine can hand out converts, and reads
 * back as the very same bytes -- but for a NaN, which JSON writes as one
 * form: a NaN's sign and payload (an `any` value may keep them) come back as
 * the quiet NaN of its width (0x7ff8000000000000, float32 0x7fc00000):
 *  - integers from -2^63 to 2^64-1 exactly (no rounding through a double);
 *  - reals as float64, written in the shortest text that reads back as the
 *    same double, always with a "." or an exponent (0.1, 1.0, -0.0, 5e-324;
 *    80.0 as 8e+01); NaN and infinities as {"$float": "nan"} ("inf", "-inf");
 *  - a msgpack float32 as {"$float32": 0.1} (the shortest number that reads
 *    back as that float32; "nan", "inf", "-inf" for those);
 *  - bin as {"$bin": "<base64>"}; a str that is not UTF-8 as
 *    {"$str": "<base64>"} (RFC 4648, padded);
 *  - a map JSON cannot hold as an object (a key that is not a UTF-8 string,
 *    a key holding a NUL byte, a duplicate key, or a lone key that is one of
 *    these marker names) as {"$map": [[key, value], ...]}.
 * Keys and index value lists convert the same way (udb_get, udb_find take
 * msgpack). */

/* udb_msgpack_to_json() flags: n spaces (1 to 31) of indentation per level,
 * each member on a line of its own; 0 (no flag): compact, on one line, as
 * `uniqdb get` prints. */
#define UDB_JSON_INDENT(n) ((unsigned)(n) & 0x1fu)

/* Convert JSON text json[0..len) (one JSON value: a record is an object) to
 * msgpack.  *out (malloc'd: free it with udb_free()) gets the bytes and
 * *out_len their size; json need not be NUL-terminated.
 * Errors (udb_env_errmsg(NULL) says which, in the calling thread):
 * UDB_EBADRECORD -- the text is not JSON ("invalid JSON: <reason> (line L,
 * column C)"; duplicate object keys are refused), or a value has no msgpack
 * form: an integer outside -2^63 .. 2^64-1, a real outside float64's range or
 * so close to zero that a float64 keeps none of its digits, a malformed
 * "$bin"/"$str"/"$float"/"$float32"/"$map" form, "$ext", nesting deeper than
 * 64 (the message names the field: "field \"photo\": ..." or "at /a/0: ...");
 * UDB_EINVAL (NULL out, out_len, or json with len > 0), UDB_ENOMEM.  On
 * error *out and *out_len are untouched. */
UDB_API int udb_json_to_msgpack(void **out, size_t *out_len, const char *json, size_t len);

/* Convert one msgpack value mp[0..len) (a record as an operation returned it,
 * a key, a conflict's values) to JSON text, in the forms above, object
 * members in msgpack order.  *out is NUL-terminated and malloc'd: free it
 * with udb_free(); *out_len (may be NULL) gets its length.  flags: 0 or
 * UDB_JSON_INDENT(n).
 * Errors (udb_env_errmsg(NULL) says which): UDB_EBADRECORD -- mp is not one
 * complete msgpack value (truncated, trailing bytes, nested deeper than 64)
 * or holds an extension value (records hold none); UDB_EINVAL (NULL out,
 * mp NULL with len > 0, unknown flags), UDB_ENOMEM.  On error *out is
 * untouched. */
UDB_API int udb_msgpack_to_json(char **out, size_t *out_len, const void *mp, size_t len,
                                unsigned flags);

/* ---- Inspection ---------------------------------------------------------- */

/* Names of the record types in the stored schema, in schema order.  *out and
 * the strings are owned by txn and valid until it ends.  Errors: UDB_EINVAL. */
UDB_API int udb_types(const char *const **out, size_t *count, udb_txn *txn);

/* Verify the whole database in one read snapshot: every record is valid for
 * its schema and sits under its own key; every index entry points to a record
 * that produces exactly that entry; every record that belongs in an index is
 * in it.  report (may be NULL) is called once per problem with a one-line
 * description (valid during the call).  *problems (may be NULL) gets the count.
 * It also walks the sequences.  Damage that stops the walk of one LMDB
 * database (an LMDB error such as MDB_CORRUPTED or MDB_PAGE_NOTFOUND, an
 * entry of garbage size, keys out of order) is a problem naming the database
 * and the last key walked, and the check goes on with the next database; a
 * lookup that LMDB fails is a problem too, and the walk goes on after it.
 * (After an error LMDB refuses the rest of a transaction: the check goes on
 * in a new read snapshot, so on a database written meanwhile it may mix two.)
 * A walk that finds fewer entries than LMDB counts is a problem.
 * Returns 0 if consistent, UDB_ECORRUPT if problems were found, or an error
 * (UDB_EINVAL, UDB_ENOMEM, an LMDB code from beginning the snapshot).
 * LMDB trusts its pages: on some damage it can crash the process instead of
 * returning an error (README, Damaged files); `uniqdb check` runs this in a
 * child process for that reason. */
UDB_API int udb_check(size_t *problems, udb_env *env, udb_report_fn report, void *ctx);

/* udb_check with progress: progress (may be NULL) is called after every 4096
 * records and index entries walked, and once at the end, with how many have
 * been walked and the total (records plus index entries in the snapshot, so
 * done == total in the last call of a check that found no error).  Both
 * callbacks get ctx.  Errors and results as udb_check. */
UDB_API int udb_check_progress(size_t *problems, udb_env *env, udb_report_fn report,
                               udb_progress_fn progress, void *ctx);

/* udb_check_progress for one record type: its records and indexes (not the
 * sequences); type NULL is the whole database, as udb_check_progress.  An
 * unknown type checks nothing (0 problems).  Lets a caller check a damaged
 * database type by type, each in its own process (what `uniqdb check`
 * does), so a crash in one type does not hide the others.  Errors and
 * results as udb_check. */
UDB_API int udb_check_type(size_t *problems, udb_env *env, const char *type,
                           udb_report_fn report, udb_progress_fn progress, void *ctx);

/* Counts for one type, from one read snapshot. */
typedef struct udb_type_stat {
    uint64_t records;
    uint64_t index_entries;   /* over all its indexes */
    uint64_t bytes;           /* LMDB pages used by the type and its indexes, in bytes */
} udb_type_stat;

/* Per-type counts.  Errors: UDB_EINVAL (unknown type), LMDB codes. */
UDB_API int udb_type_stat_get(udb_type_stat *out, udb_txn *txn, const char *type);

/* Map size in bytes now, and bytes in use (map_size and used may be NULL).
 * Errors: UDB_EINVAL (NULL env), LMDB codes. */
UDB_API int udb_env_usage(size_t *map_size, size_t *used, udb_env *env);

/* How the data file's pages are used, as one read snapshot sees them.  Start
 * from UDB_SPACE_INIT: a later version may add fields at the end, and
 * `version` tells udb_env_space() which fields the caller's struct has. */
typedef struct udb_space {
    unsigned version;        /* UDB_SPACE_VERSION (set by UDB_SPACE_INIT) */
    uint64_t page_size;      /* bytes per page */
    uint64_t map_size;       /* bytes of address space mapped (not disk) */
    uint64_t file_size;      /* bytes of data.mdb now; uniqdb allocates the file ahead of
                                the pages in use, so this may exceed pages * page_size */
    uint64_t pages;          /* pages up to the last one in use (its number + 1): what a
                                plain udb_backup() copies */
    uint64_t free_pages;     /* of those, pages on LMDB's free list: later commits write
                                there again, but the file never shrinks by itself */
    uint64_t freelist_pages; /* of those, pages holding the free list itself */
} udb_space;

#define UDB_SPACE_VERSION 1
#define UDB_SPACE_INIT {UDB_SPACE_VERSION, 0, 0, 0, 0, 0, 0}

/* Fill *out (its version set by UDB_SPACE_INIT) from one read snapshot:
 * pages - free_pages - freelist_pages pages is the size of a compacting
 * backup of that snapshot (UDB_BACKUP_COMPACT), and free_pages * page_size
 * about what it reclaims.  Reading the free list takes a read transaction;
 * while writers commit, figures of a snapshot just replaced.
 * Errors: UDB_EINVAL (NULL arguments; out->version not 1 to
 * UDB_SPACE_VERSION), UDB_ECORRUPT (a free-list entry of impossible size),
 * LMDB codes, errno codes (fstat of the data file). */
UDB_API int udb_env_space(udb_space *out, udb_env *env);

/* ---- Backup and compaction ------------------------------------------------ */

/* udb_backup() flags */
#define UDB_BACKUP_COMPACT 0x1u /* copy only the pages in use, renumbered: no free pages,
                                   so the copy is as small as its data allows (LMDB's
                                   MDB_CP_COMPACT); it walks every page of the database */

/* Copy the database to the directory dest while other threads and processes
 * go on reading and writing.  The copy is LMDB's copy of one read snapshot,
 * begun during this call: it holds every write acknowledged (udb_write,
 * udb_commit, udb_exec returned 0, in any process) before the call began --
 * with the schema and the sequences of that moment -- and nothing half
 * written.  When the call returns 0 the copy is on disk (the file and the
 * directories holding its name are flushed).
 *
 * dest must not exist (its parent directory must) or be an empty directory
 * (a mount point, say); anything else is refused before anything is written.
 * The result is a complete database directory holding data.mdb alone (the
 * lock and sync files are created by udb_open(), see UDB_DATA_FILE): open it
 * with udb_open(), or put it in place of the original while no process has
 * that open.  The copy is written under a temporary name (a hidden file in
 * a hidden directory beside dest, or a hidden file inside an empty dest) and
 * takes its name only once complete and flushed: a failure -- a full disk, a
 * crash -- never leaves a partial copy that opens as a database.  After a
 * failure the temporary is removed; after a crash it stays (its name starts
 * with ".uniqdb-backup-" or ".NAME.uniqdb-backup-"), and dest, if it existed,
 * is then not empty.  The copy's data file gets the permissions of the
 * source's, a directory this call creates those of the source's directory.
 *
 * Without UDB_BACKUP_COMPACT, the data file is copied as it is up to its last
 * page in use, free pages included (udb_env_space().pages); LMDB holds its
 * write lock -- keeping writers of every process waiting -- only while it
 * copies the two meta pages.  With UDB_BACKUP_COMPACT only the pages in use
 * are written, without any lock: how to reclaim the space of deleted records
 * (README, "Backup and compaction").  Either way the snapshot keeps the pages
 * it reads from being reused until the copy ends (writers meanwhile grow the
 * file instead), and, as any transaction of this process, keeps this
 * process's map from growing: a writer of this process that must grow it
 * waits up to udb_options.grow_wait_ms, then fails with UDB_EBUSY.  A copy
 * from an environment opened with UDB_NOLOCK is consistent only if nobody
 * writes meanwhile.
 *
 * The calling thread must not have a transaction open on env (the copy may
 * wait for LMDB's write lock, and for this process's transactions).
 * Errors: UDB_EINVAL (NULL env or dest, empty dest, unknown flags, a
 * transaction open on the calling thread), EEXIST (dest exists and is not a
 * directory), ENOTEMPTY (dest is a directory that is not empty; the message
 * names an entry), ENOENT (dest's parent directory does not exist), ENOSPC
 * (the file system of dest filled up), EACCES, EIO and other errno codes of
 * the file system, UDB_EBUSY (a map grown by another process had to be
 * adopted, see above), MDB_INCOMPATIBLE (UDB_BACKUP_COMPACT found pages
 * neither in use nor free: a damaged database), other LMDB codes (damage the
 * copy ran into).  On any error no copy is left (but see "crash" above) --
 * except when only the flush of dest's parent directory failed after the copy
 * took its name: the copy is complete, but its name may not survive a power
 * cut.  udb_env_errmsg() says which. */
UDB_API int udb_backup(udb_env *env, const char *dest, unsigned flags);

#ifdef __cplusplus
}
#endif
#endif /* UNIQDB_H */
