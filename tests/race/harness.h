/*
 * harness.h -- the shared machinery of the race suite.
 *
 * A race test is a race_spec: N processes x M threads ("writers") that open one
 * database directory after fork(), are released at the same instant (a pipe
 * closed by the parent, then a thread barrier), and run `worker`.  Writers
 * record what every call returned in race_outcome slots that live in shared
 * memory, so the parent can judge the race as a whole after reaping them:
 * `verify` checks the outcomes against the database, then udb_check() runs.
 *
 * Writers never stop early: a surprise is recorded, never acted on, so every
 * writer reaches every race_sync() and no barrier waits for a missing writer.
 *
 * Exec mode (race_spec.exec): the writers write through udb_exec() (see
 * race_exec()), every process groups its commits, and the run fails unless
 * some unit was shipped to, and run by, another process's group commit
 * leader (engine/lmdb/ship.h).
 *
 * PostgreSQL (issue 24): with UDB_TEST_PG=1 in the environment (suite
 * `pg-api`, under tests/postgres/pg_run) the database is a fresh schema on
 * the server, `postgresql:///uniqdb_test?schema=NAME`; every process still
 * opens its own environment after fork (a libpq connection belongs to one
 * process).  Nothing is shipped there (each process's transactions are its
 * own on the server), so exec mode verifies the verdicts only.
 * UDB_RACE_ROUNDS=N runs at most N rounds (the server is slower than LMDB).
 * UDB_TEST_PG_SCANS=0: the server backend has no scans yet, and the checks
 * that need one (race_scan, race_expect_count) are reported, not made.
 */
#ifndef RACE_HARNESS_H
#define RACE_HARNESS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "uniqdb.h"

#define RACE_TEXT 128

/* A msgpack value built in place (no heap, fits in shared memory). */
typedef struct race_buf {
    size_t len;
    int overflow;
    char data[1024];
} race_buf;

/* Pack a msgpack value into b.  spec has one letter per element -- s (const
 * char *), i (long long), u (unsigned long long).  RACE_MAP: the variadic
 * arguments are name, value pairs; RACE_ARRAY: values; RACE_VALUE: one bare
 * value (e.g. a primary key).  Returns 0, or -1 if b is too small. */
enum { RACE_VALUE, RACE_ARRAY, RACE_MAP };
int race_pack(race_buf *b, int shape, const char *spec, ...);

/* Render msgpack bytes as compact text: 7, "abc", ["wf-1",2], null. */
void race_render(char *out, size_t cap, const void *data, size_t len);
/* Render field `name` of the record `rec` (a msgpack map); "" if absent.
 * Returns 0 if the field exists. */
int race_field_text(char *out, size_t cap, const void *rec, size_t len, const char *name);

/* What one call returned, as its writer saw it; copied out of the transaction
 * before it ended.  Text fields hold rendered msgpack (see race_render). */
typedef struct race_outcome {
    int done;                 /* the writer made this call */
    int rc;                   /* what the call returned */
    int created;              /* insert_or_get: *created */
    int out_on_error;         /* *out was written although the call failed */
    size_t chosen;            /* insert_first: *chosen */
    uint64_t id;              /* the returned record's key, if an unsigned int */
    uint64_t num;             /* free for the scenario (a sequence value, a size) */
    char key[RACE_TEXT];      /* the returned record's key */
    char field[RACE_TEXT];    /* one more field of the returned record */
    char errmsg[256];         /* udb_errmsg (or udb_env_errmsg) on failure */
    size_t nconflicts;        /* UDB_ECONFLICT: violated indexes */
    char ctype[RACE_TEXT];    /*   its record type */
    char cindex[RACE_TEXT];   /*   the first violated index */
    char cfields[RACE_TEXT];  /*   its fields, comma-separated */
    char cvalues[RACE_TEXT];  /*   the colliding values */
    char ckey[RACE_TEXT];     /*   the key of the record holding them */
    size_t nops;              /* race_exec(): the unit's ops (0: not a udb_exec call) */
    size_t failed_op;         /*   udb_results_failed(): the op that failed the unit */
    char exec_bad[RACE_TEXT]; /*   what its results got wrong ("" if nothing) */
} race_outcome;

struct race_spec;

/* A writer's view (and, with writer == -1, the verifier's). */
typedef struct race_ctx {
    const struct race_spec *spec;
    udb_env *env;
    int proc, thread, writer, nwriters;
    race_outcome *outcomes;      /* rounds x phases x nwriters, shared */
    pthread_barrier_t *all;      /* every writer of every process */
    udb_txn *txn;                /* verify: a read-only snapshot of the result */
} race_ctx;

typedef struct race_spec {
    const char *name;
    int nproc, nthreads, rounds, phases;
    size_t map_size;             /* udb_options.map_size (0 = default) */
    unsigned flags;              /* udb_options.flags; odd processes add UDB_NOGROUP,
                                    unless exec */
    int exec;                    /* writes go through udb_exec(): every process groups
                                    commits, and some unit must be run by another
                                    process's leader */
    int (*worker)(race_ctx *c);  /* returns the number of failures it saw itself */
    int (*verify)(race_ctx *c);  /* returns the number of failures */
    /* May be NULL: run once the schema is applied, before any writer starts,
     * with the database's location (directory or URL); its failures count. */
    int (*setup)(const char *db);
    int check_not_counted;       /* udb_check's findings are printed, not counted (a
                                    control that damages the database on purpose) */
} race_spec;

/* Run the whole test: argv[1] is the schema (tools/scenarios.json).  Creates a
 * fresh temporary database, applies the schema, races, verifies, runs
 * udb_check(), removes the directory.  Returns the process exit status. */
int race_main(int argc, char **argv, const race_spec *spec);
/* The mode flags after the schema: bit i set if argv holds known[i] (a
 * NULL-terminated list); -1 (after printing) for any other argument. */
int race_flags(int argc, char **argv, const char *const *known);

/* The modes of a scenario that also runs through udb_exec(). */
enum { RACE_EXEC = 1, RACE_CONTROL = 2 };
/* main() of such a scenario: `SCHEMA [--exec] [CONTROL]`.  --exec sets
 * spec->exec and names the run NAME_exec; the flag control (the scenario's
 * negative control, which runs through udb_exec() too) names it
 * NAME_exec_control and cuts it to 10 rounds, since a control fails in its
 * first rounds.  *mode gets RACE_EXEC and RACE_CONTROL as given, before any
 * worker starts.  Returns race_main()'s exit status, or 2 for a bad flag. */
int race_main_modes(int argc, char **argv, race_spec *spec, const char *control, int *mode);

/* Wait until every writer of every process gets here. */
void race_sync(race_ctx *c);
/* The outcome slot of (round, phase, writer). */
race_outcome *race_at(const race_ctx *c, int round, int phase, int writer);

/* ---- operations, run through race_write() or race_direct() ---- */
typedef int (*race_op)(udb_txn *txn, race_outcome *o, const void *arg);

typedef struct race_rec_arg {
    const char *type;
    const char *index;           /* insert_or_get: the target index (NULL = primary key) */
    const char *keyfield;        /* the record's key field, read back into o->key */
    const char *field;           /* one more field read back into o->field (may be NULL) */
    race_buf rec;                /* the record (update: the fields) */
    race_buf key;                /* update: the primary key */
    unsigned flags;              /* update: flags */
    const udb_val *cands;        /* insert_first: candidates */
    size_t ncands;
} race_rec_arg;

int race_op_insert(udb_txn *txn, race_outcome *o, const void *arg);
int race_op_insert_or_get(udb_txn *txn, race_outcome *o, const void *arg);
int race_op_insert_first(udb_txn *txn, race_outcome *o, const void *arg);
int race_op_update(udb_txn *txn, race_outcome *o, const void *arg);

/* Read the key and one field of a record returned by an operation into o. */
void race_take_record(race_outcome *o, const udb_val *rec, const char *keyfield,
                      const char *field);
/* Copy txn's error detail and conflict info into o (call before txn moves on). */
void race_note(race_outcome *o, udb_txn *txn, int rc);

/* Run op through udb_write(); o->rc gets what udb_write returned. */
int race_write(udb_env *env, race_op op, const void *arg, race_outcome *o);
/* Run op in a transaction of its own (udb_begin), then commit or abort it;
 * again from udb_begin when it returns UDB_ERETRY (PostgreSQL), up to 64 times. */
int race_direct(udb_env *env, race_op op, const void *arg, race_outcome *o, int commit);

/* ---- the same through udb_exec() ---- */
/* An op of `kind` on `type` with record rec (may be NULL), from UDB_OP_INIT. */
udb_op race_op_of(unsigned kind, const char *type, const race_buf *rec);
/* Run ops[0..n-1] as one udb_exec() unit.  o gets what udb_exec returned,
 * nops, failed_op, num (the value the unit's last UDB_OP_SEQ_NEXT took), and
 * -- on success -- created, chosen, key and field of op `at`'s record; on
 * failure the errmsg, chosen and conflict detail of the op that failed (or
 * udb_env_errmsg for a unit-wide failure).  Results that break udb_exec's
 * contract (an op's rc not what the unit returned; after a failure a record
 * or value in the failed op's result, or anything in another op's) are
 * described in exec_bad, which race_expect_rc() reports. */
int race_exec(udb_env *env, const udb_op *ops, size_t n, size_t at, const char *keyfield,
              const char *field, race_outcome *o);

/* ---- backends ---- */
/* The race runs on PostgreSQL (UDB_TEST_PG=1). */
int race_pg(void);
/* Scans work on this backend (see the top); when they do not, a verifier
 * that needs one calls race_noscan(c, what) (a note, never a failure). */
int race_scans(void);
void race_noscan(const race_ctx *c, const char *what);

/* ---- verification ---- */
/* Print a failure with the outcome's whole detail (and its round, phase and
 * writer when o is a race_at() slot); o may be NULL.  Returns 1. */
int race_bad(const race_ctx *c, const race_outcome *o, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* 0 if o->rc == want (and *out untouched on failure), else race_bad(). */
int race_expect_rc(const race_ctx *c, const race_outcome *o, int want, const char *what);
/* 0 if o is a UDB_ECONFLICT on exactly one index with this detail (NULL: any). */
int race_expect_conflict(const race_ctx *c, const race_outcome *o, const char *type,
                         const char *index, const char *fields, const char *values,
                         const char *key, const char *what);
/* The outcome of the one writer whose call in (round, phase) succeeded (and,
 * with need_created, created its record), its number in *w (may be NULL);
 * NULL (after printing, *w = -1) if not exactly one. */
const race_outcome *race_winner(const race_ctx *c, int round, int phase, int need_created,
                                int *w);

/* Scan records of type in index order (index NULL: primary key) under prefix
 * (may be NULL); fn (may be NULL) sees each; *count gets their number. */
int race_scan(size_t *count, udb_txn *txn, const char *type, const char *index,
              const race_buf *prefix, int (*fn)(void *ctx, const udb_val *rec), void *ctx);
/* udb_find() into o: key and one field of the record, or the error. */
int race_find(race_outcome *o, udb_txn *txn, const char *type, const char *index,
              const race_buf *values, const char *keyfield, const char *field);
/* 0 if udb_find() finds the record whose key renders as `key` (field "id"). */
int race_expect_find(const race_ctx *c, const char *type, const char *index,
                     const race_buf *values, const char *key);
/* S1's verdict on the record raced for in (round, phase): exactly one writer
 * created it, with its own state ("wN" in the outcome's field); every writer's
 * call (`what`) returned 0 and that record (same key and state, created only
 * for the creator); index finds it under values.  Returns the failures. */
int race_expect_one_creator(const race_ctx *c, int round, int phase, const char *what,
                            const char *type, const char *index, const race_buf *values);
/* 0 if a scan (see race_scan) sees exactly `want` records. */
int race_expect_count(const race_ctx *c, const char *type, const char *index,
                      const race_buf *prefix, size_t want);
/* Sort v; 0 if its n values are exactly 1..n (distinct, no gaps). */
int race_gapless(const race_ctx *c, uint64_t *v, size_t n, const char *what);
/* Print a failed library call (rc, udb_strerror, detail); returns 1. */
int race_lib_fail(const char *call, int rc, const char *detail);

#endif /* RACE_HARNESS_H */
