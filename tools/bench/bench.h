/*
 * bench.h -- the shared vocabulary of uniqdb-bench.
 *
 * The benchmark runs the same workloads on three engines: uniqdb through its
 * public API, raw LMDB doing the same puts by hand (the floor uniqdb sits on),
 * and SQLite (what users would pick instead).  To keep the comparison honest,
 * everything an engine does not own lives outside the engines: records come
 * from one deterministic generator (bench_gen.c), the workload drivers time
 * only the engine calls and verify every result the same way
 * (bench_work.c, bench_conc.c), and reporting is shared (bench_report.c).
 * An engine is a table of functions (bench_engine) over an opaque handle.
 */
#ifndef UDB_BENCH_H
#define UDB_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_TYPE     "booking"
#define BENCH_NPSY     997u                  /* psychologists; a prime */
#define BENCH_MAP_SIZE ((size_t)4 << 30)     /* LMDB map for uniqdb and raw LMDB */
#define BENCH_MAX_ITEMS   16
#define BENCH_MAX_THREADS 8                  /* entries of --threads */
#define BENCH_WHY 200

/* One generated booking (6 fields).  The msgpack form is a map in the
 * schema's field order, which is also uniqdb's canonical order, so a record
 * read back from uniqdb or raw LMDB must equal mp byte for byte. */
typedef struct bench_rec {
    uint64_t id;                /* primary key, i + 1 */
    const char *status;         /* pending / confirmed / cancelled / completed */
    bool active;                /* status is pending or confirmed: in the partial index */
    char ref[24];               /* unique: "BK-" + 16 hex digits */
    char psych[16];             /* (psych, slot) unique while active */
    char slot[16];
    char user[16];              /* non-unique index (user, slot) */
    size_t mp_len;
    unsigned char mp[176];
} bench_rec;

/* ---- generator and helpers (bench_gen.c) ---- */
/* The uniqdb schema of the records: type BENCH_TYPE, key id, unique ref and
 * (psychologist, slot) while pending or confirmed, index by_user (user, slot). */
extern const char bench_schema_json[];
/* Record number i (0-based).  nusers spreads records over that many users. */
void     bench_gen(bench_rec *r, uint64_t i, uint64_t nusers);
uint64_t bench_user_of(uint64_t i, uint64_t nusers);
void     bench_user_name(char out[16], uint64_t u);
uint64_t bench_mix64(uint64_t x);          /* a bijective 64-bit mixer */
/* msgpack array of n strings into out; returns its length, 0 if cap is short. */
size_t   bench_pack_strs(unsigned char *out, size_t cap, const char *const *s, size_t n);
/* The id of a record read back (msgpack map whose first field is "id"). */
int      bench_mp_id(uint64_t *id, const void *mp, size_t len);

/* The uniqdb calls of the workloads (bench_udb_calls.c), on any udb_env: who
 * prefixes the message printed on failure.  Insert recs in one udb_write;
 * find each by its ref in one read transaction (*matched: found and byte-
 * identical); insert_or_get r by ref in one udb_write. */
struct udb_env;
int bench_udb_insert(const char *who, struct udb_env *env, const bench_rec *recs, size_t n);
int bench_udb_lookup(const char *who, size_t *matched, struct udb_env *env,
                     const bench_rec *recs, size_t n);
int bench_udb_insert_or_get(const char *who, bool *created, uint64_t *id, struct udb_env *env,
                            const bench_rec *r);
double   bench_now(void);                  /* CLOCK_MONOTONIC seconds */
/* What the block device holding path has completed so far, from
 * /proc/diskstats: write requests (the 5th number after the device name) and
 * flush requests (the 16th, kernel >= 5.5); -1 in a field that is not
 * available.  Device-wide: anything else writing to the same disk counts
 * too.  Write requests tell how scattered a commit's pages are: the kernel
 * merges pages that lie next to each other in the file into one request. */
typedef struct bench_devio {
    int64_t writes, flushes;
} bench_devio;
bench_devio bench_device_io(const char *path);
/* Write transactions committed so far in the LMDB environment in directory
 * dir: the larger txnid of its data.mdb's two meta pages, read with pread.
 * No environment is opened: a second LMDB environment on the same file in
 * one process would let go of the first one's locks.  -1 when the file is
 * not an LMDB 0.9 data file. */
int64_t bench_lmdb_txnid(const char *dir);

/* A growable list of record ids, filled by scans. */
typedef struct bench_ids {
    uint64_t *v;
    size_t n, cap;
} bench_ids;
int bench_ids_push(bench_ids *ids, uint64_t id);

/* What a database holds: records, and entries over its three indexes. */
typedef struct bench_counts {
    uint64_t records, entries;
} bench_counts;

/* ---- engines (bench_uniqdb.c, bench_lmdb.c, bench_sqlite.c) ----
 * Every function returns 0 or non-zero after printing the reason to stderr.
 * A handle is used by one thread at a time; conn_open gives a thread its own
 * (NULL: the handle is shared by threads, as uniqdb and LMDB allow). */
typedef struct bench_engine {
    const char *name;                  /* key in --engines and JSON */
    const char *label;                 /* column title */
    const char *sync_desc, *nosync_desc;
    int  (*open)(void **out, const char *path, bool durable);
    void (*close)(void *db);
    int  (*conn_open)(void **out, void *db, const char *path, bool durable);
    void (*conn_close)(void *conn);
    /* insert n records in one durable (per mode) transaction */
    int  (*insert)(void *db, const bench_rec *recs, size_t n);
    /* look up n records by unique key ref in one read transaction; *matched
     * counts those found whose content is the generated one */
    int  (*lookup)(size_t *matched, void *db, const bench_rec *recs, size_t n);
    /* insert r or get the record holding r->ref, as its own commit */
    int  (*insert_or_get)(bool *created, uint64_t *id, void *conn, const bench_rec *r);
    /* the same without waiting (NULL: the engine has no such call): done(ctx,
     * rc, created, id) is called once, on another thread; drain waits for all */
    int  (*insert_or_get_async)(void *conn, const bench_rec *r,
                                void (*done)(void *ctx, int rc, bool created, uint64_t id),
                                void *ctx);
    int  (*drain)(void *conn);
    /* scan n user prefixes of the non-unique index in one read transaction,
     * appending the ids in index order; counts[j] = rows of scan j */
    int  (*scan)(bench_ids *ids, size_t *counts, void *db, const char (*users)[16], size_t n);
    int  (*count)(bench_counts *out, void *db);
    int  (*check)(void *db);           /* deep consistency check; may be NULL */
    bool lmdb_dir;                     /* the path is an LMDB environment (bench_lmdb_txnid) */
    bool commit_per_write;             /* W4 commits each record written alone, and nothing else */
} bench_engine;

extern const bench_engine bench_engine_uniqdb, bench_engine_lmdb, bench_engine_sqlite;
extern unsigned bench_udb_flags;       /* extra udb_options.flags (--no-group) */
extern bool bench_udb_exec;            /* insert_or_get through udb_exec (W4 "exec" rows) */
extern unsigned bench_sqlite_cache_mib; /* --sqlite-cache */

/* W3's nosync pair makes this many times --commits commits */
#define BENCH_NOSYNC_SCALE 20

/* ---- what to run ---- */
enum { BENCH_W1 = 1, BENCH_W2, BENCH_W3, BENCH_W4, BENCH_W5 };

typedef struct bench_item {
    int w;                    /* BENCH_W* */
    bool durable;             /* sync pair (else nosync pair) */
    unsigned threads, procs;  /* W4: one of them is non-zero */
    bool report;              /* false: only loads data for later items */
    bool exec;                /* W4: uniqdb writes through udb_exec (the others as usual) */
    unsigned inflight;        /* W4 procs: operations in flight per process (> 1: uniqdb
                                 through udb_exec_async, the others a thread and a
                                 connection each) */
} bench_item;

typedef struct bench_opts {
    uint64_t records, lookups, commits, scans;
    unsigned batch;
    double duration;          /* W4 seconds per configuration */
    unsigned threads[BENCH_MAX_THREADS];
    size_t nthreads;
    unsigned procs;
    unsigned inflight;        /* W4: in flight per process in the "x K" rows (0: no rows) */
    unsigned rounds;          /* repeat on fresh databases; report medians */
    unsigned slices;          /* each workload in this many parts, engines taking turns */
    unsigned only;            /* bit w set: run workload w */
    unsigned engines;         /* bit e set: run engine e */
    bool json, keep;
    const char *dir;
} bench_opts;

/* One workload's outcome for one engine. */
typedef struct bench_result {
    int status;               /* -1 not run, 0 verified, 1 verification failed, 2 error */
    uint64_t ops;
    double secs;
    uint64_t writes;          /* W3/W4: records written (committed writes) */
    int64_t flushes;          /* device flush requests meanwhile; -1: not available */
    int64_t dev_writes;       /* device write requests meanwhile; -1: not available */
    int64_t commits;          /* W4: write transactions committed meanwhile; -1: not counted
                                 (an engine that is not LMDB); 0 in other workloads */
    char why[BENCH_WHY];
} bench_result;

/* What one database of a run holds: records 0 .. next-1, and the counts
 * the engine must report for them. */
typedef struct bench_dbstate {
    uint64_t next;
    bench_counts expect;
} bench_dbstate;

/* Everything one engine's run reports.  It lives in shared memory: each
 * workload runs in a process of its own and leaves its results here. */
typedef struct bench_engine_result {
    bool ran;
    long rss_kb;              /* peak RSS over the engine's processes */
    int check;                /* -1 not run, 0 consistent, else failed */
    bench_dbstate db[2];      /* [0] nosync pair, [1] sync pair */
    bench_result slice;       /* what the last slice's process reported */
    bench_result res[BENCH_MAX_ITEMS];
} bench_engine_result;

/* ---- drivers ---- */
/* bench_work.c: run slice `slice` (of o->slices) of item it on engine e
 * (databases under dir) into *r.  Meant to run in a child process: opens and
 * closes its database. */
void bench_run_item(bench_engine_result *out, const bench_engine *e, const bench_opts *o,
                    const bench_item *it, unsigned slice, bench_result *r, const char *dir);
/* The engine's deep consistency check of the sync-pair database (out->check). */
void bench_check_engine(bench_engine_result *out, const bench_engine *e, const char *dir);
void bench_fail(bench_result *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
uint64_t bench_nusers(const bench_opts *o);
/* How many slices item it runs in.  W4 is time-boxed and drains its writers'
 * last operations at the end of each run, so it runs whole. */
unsigned bench_slices(const bench_opts *o, const bench_item *it);

/* bench_conc.c: W4, nwriters threads sharing db (or procs: processes that
 * open path themselves; db must then be closed) doing insert_or_get of
 * records base, base, base+1, base+1, ... (each key twice) for duration
 * seconds.  Fills r; *keys gets how many new records were written. */
int bench_w4(bench_result *r, uint64_t *keys, const bench_engine *e, void *db,
             const char *path, bool durable, double duration, uint64_t base,
             uint64_t nusers, unsigned nwriters, bool procs, unsigned inflight);

/* bench_report.c */
void bench_report_table(const bench_opts *o, const bench_item *items, size_t nitems,
                        const bench_engine *const *engines, const bench_engine_result *res,
                        size_t nengines, const char *dir);
void bench_report_json(const bench_opts *o, const bench_item *items, size_t nitems,
                       const bench_engine *const *engines, const bench_engine_result *res,
                       size_t nengines);

#endif
