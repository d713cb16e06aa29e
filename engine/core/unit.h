/*
 * unit.h -- a udb_exec() unit (unit.c): checking it, running it in a write
 * transaction, keeping its results, and the bytes it and its results travel
 * as between processes (ship.h).
 */
#ifndef UDB_UNIT_H
#define UDB_UNIT_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "uniqdb.h"

struct udb_results {
    size_t count;
    size_t failed;        /* the op that failed the unit, or count */
    udb_result *items;
    udb_arena arena;      /* records, messages, conflict detail */
};

typedef struct udb_unit {
    const udb_op *ops;
    size_t n;
    udb_results *res;
    size_t failed;        /* the op that failed in the last run, or n */
    int failed_rc;
} udb_unit;

/* UDB_EINVAL with the env message naming the op if ops[0..n-1] is not a
 * unit udb_exec() accepts (see there). */
int  udb__unit_check(const udb_op *ops, size_t n);
/* The name of an op kind ("insert", ...) for messages. */
const char *udb__unit_kind(unsigned kind);
/* Results for n ops, all empty.  NULL: out of memory. */
udb_results *udb__results_new(size_t n);
/* After the unit ran and returned rc: keep only the failed op's result, if
 * an op failed, and say which failed. */
void udb__unit_settle(udb_unit *u, int rc);
/* udb_write's fn for a unit (ctx: the udb_unit): every op in order; the
 * first failure ends it. */
int  udb__unit_run(udb_txn *txn, void *ctx);
/* Is u made of insert_or_get ops only (no fed values): a unit whose answer
 * may be read without writing, if its keys are held (udb__unit_held)? */
bool udb__unit_may_be_held(const udb_unit *u);
/* A unit of insert_or_get ops only, each of whose keys is held already in
 * txn (a read-only snapshot): true, and u's results are what running it
 * would give (each holder, created 0) -- the unit needs no write.  Otherwise
 * false (another op, a key nobody holds, any error), and the results are
 * empty again: the unit must run in a write transaction. */
bool udb__unit_held(udb_txn *txn, udb_unit *u);
/* ops.c: udb_insert_or_get's lookup without its insert.  *held: ix's key is
 * held, and out is its holder (as udb_insert_or_get gives it).  Any error is
 * the one udb_insert_or_get would give before its insert. */
int  udb__insert_or_get_held(udb_val *out, bool *held, udb_txn *txn, const char *type,
                             const char *index, const void *rec, size_t len);

/* ---- as bytes (shipped between processes) ---- */

/* The unit as bytes, into b (b->oom on no memory). */
void udb__unit_encode(udb_buf *b, const udb_op *ops, size_t n);
/* The unit of bytes p..p+len, its ops and every byte they point to in a.
 * Untrusted: UDB_EINVAL if the bytes are not a unit this version writes. */
int  udb__unit_decode(udb_op **ops, size_t *n, udb_arena *a, const void *p, size_t len);
/* u's results after it ran (u->failed, u->failed_rc set), as bytes. */
void udb__results_encode(udb_buf *b, const udb_unit *u);
/* Results for n ops from bytes made by udb__results_encode: into res (made
 * by udb__results_new(n)), setting *failed / *failed_rc as the run did.
 * UDB_EINVAL when the bytes do not describe n results. */
int  udb__results_decode(udb_results *res, size_t *failed, int *failed_rc, const void *p,
                         size_t len);

#endif
