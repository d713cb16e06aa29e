/*
 * testutil.h -- the small harness shared by the unit tests.
 *
 * Every test case runs in a fresh temporary directory (removed afterwards) and
 * gets a `tu` handle; an environment opened through it is checked with
 * udb_check() and closed when the case ends.
 *
 * Two backends (issue 24): with UDB_TEST_PG=1 in the environment (suite
 * `pg-api` sets it and runs the binary under tests/postgres/pg_run, which
 * exports PGHOST and the rest) a case's database is a fresh PostgreSQL
 * schema, `postgresql:///uniqdb_test?schema=NAME`, instead of dir/db; the
 * cases are the same.  A case that tests LMDB-only behaviour says so with
 * TU_LMDB_ONLY(t, "why") and is reported as skipped on PostgreSQL; checks
 * that need scans are written CHECK_SCAN / CHECK_COUNT, skipped (and counted)
 * while UDB_TEST_PG_SCANS=0 says the server backend has no scans yet.  CHECK* macros never abort: they
 * print file:line, the expression and the library's last error message, and
 * count the failure, so one run reports every broken expectation.
 *
 * Memory handed out by the helpers (msgpack built with mp(), rendered text)
 * lives until the end of the current test case.
 */
#ifndef UDB_TESTUTIL_H
#define UDB_TESTUTIL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "uniqdb.h"

/* ---- one test case ---- */
typedef struct tu {
    char dir[PATH_MAX / 2];  /* fresh, empty, removed after the case */
    char path[PATH_MAX];   /* where tu_open() puts the database: dir + "/db", or
                              on PostgreSQL a URL naming a fresh schema */
    udb_env *env;          /* opened by tu_open(); checked and closed after the case */
} tu;

typedef struct tu_test {
    const char *name;
    void (*fn)(tu *t);
} tu_test;

/* Run the cases (all, or those whose name contains argv[1]); 0 if all passed. */
int tu_main(int argc, char **argv, const tu_test *tests, size_t n);
#define TU_MAIN(...)                                                                   \
    int main(int argc, char **argv)                                                    \
    {                                                                                  \
        static const tu_test tests_[] = {__VA_ARGS__};                                 \
        return tu_main(argc, argv, tests_, sizeof tests_ / sizeof tests_[0]);          \
    }
#define TU_CASE(fn) {#fn, fn}

/* ---- checks ---- */
extern udb_txn *tu_txn;   /* CHECK failures print udb_errmsg() of this transaction */

void tu_fail(const char *file, int line, const char *expr, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
bool tu_check_rc(const char *file, int line, const char *expr, int got, int want);
bool tu_check_str(const char *file, int line, const char *expr, const char *got,
                  const char *want);
/* Every NULL-terminated needle must occur in hay. */
bool tu_check_has(const char *file, int line, const char *expr, const char *hay, ...);

#define CHECK(e) ((e) ? true : (tu_fail(__FILE__, __LINE__, #e, NULL), false))
#define CHECK_RC(call, want) tu_check_rc(__FILE__, __LINE__, #call, (call), (want))
#define CHECK_OK(call) CHECK_RC(call, 0)
#define CHECK_STR(got, want) tu_check_str(__FILE__, __LINE__, #got, (got), (want))
#define CHECK_HAS(hay, ...) \
    tu_check_has(__FILE__, __LINE__, #hay, (hay), __VA_ARGS__, (const char *)NULL)

/* ---- backends ---- */
bool tu_pg(void);                              /* the cases run on PostgreSQL (UDB_TEST_PG=1) */
/* Where a further fresh database of the case called `name` goes: dir/name, or
 * on PostgreSQL a URL of a schema of its own.  Lives until the end of the case. */
const char *tu_db(tu *t, const char *name);
/* On PostgreSQL: report the case as skipped, for the one-line reason `why`,
 * and return true (the case returns).  On LMDB: false. */
bool tu_skip_pg(const char *why);
#define TU_LMDB_ONLY(t, why)                                                           \
    do {                                                                               \
        (void)(t);                                                                     \
        if (tu_skip_pg(why))                                                           \
            return;                                                                    \
    } while (0)
/* Scans work on this backend (always on LMDB; on PostgreSQL unless
 * UDB_TEST_PG_SCANS=0). */
bool tu_scans(void);
#define TU_NOSCAN_WHY "scan: pgscan"
/* A check not made (counted and reported with the case); returns true. */
bool tu_skip_check(const char *file, int line, const char *why);
/* CHECK_STR of a value read by a scan (call is not made without scans). */
#define CHECK_SCAN(call, want) \
    (tu_scans() ? CHECK_STR(call, want) : tu_skip_check(__FILE__, __LINE__, TU_NOSCAN_WHY))
/* The same for CHECK_HAS. */
#define CHECK_SCAN_HAS(call, ...) \
    (tu_scans() ? CHECK_HAS(call, __VA_ARGS__) : tu_skip_check(__FILE__, __LINE__, TU_NOSCAN_WHY))
/* A type has n records (a primary-key scan counts them). */
#define CHECK_COUNT(txn, type, n) \
    (tu_scans() ? CHECK(tu_count(txn, type) == (n)) \
                : tu_skip_check(__FILE__, __LINE__, TU_NOSCAN_WHY))

/* ---- environments and transactions ---- */
udb_env *tu_open(tu *t);                       /* open t->path (fails the case if it cannot) */
void tu_reopen(tu *t);                         /* close and open again */
/* Schemas given to these two may write JSON quotes as backticks (see jq). */
udb_env *tu_setup(tu *t, const char *schema);  /* open and apply schema (must succeed) */
int tu_apply(tu *t, const char *schema);       /* udb_schema_apply, rc returned */
/* udb_schema_apply with flags; *changes (changes may be NULL) gets the change
 * report, which lives until the end of the case. */
int tu_apply_f(tu *t, const char *schema, unsigned flags, const char **changes);
udb_txn *tu_w(tu *t);                          /* begin a write transaction (sets tu_txn) */
udb_txn *tu_r(tu *t);                          /* begin a read-only one (sets tu_txn) */
void tu_commit(udb_txn *txn);                  /* commit, which must succeed */
void tu_abort(udb_txn *txn);
void tu_check_db(tu *t);                       /* udb_check() must find no problem */
char *tu_schema_text(tu *t);                   /* udb_schema_json(), or NULL */
char *tu_read_file(const char *path);          /* whole file, NUL-terminated */
const char *tu_scenarios(void);                /* tools/scenarios.json, the scenario schema */

/* ---- msgpack built from a format ----
 * mp("{s:s, s:U, s:n}", "name", "x", "id", (unsigned long long)5, "note")
 *   {..} map of k:v pairs, [..] array, s const char *, S (const char *, size_t),
 *   i int, I long long, u unsigned, U unsigned long long, f double,
 *   F float (passed as double), b bool (int), n nil, x bin (const void *, size_t),
 *   r raw msgpack (udb_val).  Spaces are ignored. */
udb_val mp(const char *fmt, ...);
/* Raw bytes as a value: mpraw("\xdd\xff\xff\xff\xff", 5). */
udb_val mpraw(const void *bytes, size_t n);

/* ---- the record API with udb_val arguments (plain forwards) ---- */
int tu_ins(udb_val *out, udb_txn *txn, const char *type, udb_val rec);
int tu_get(udb_val *out, udb_txn *txn, const char *type, udb_val key);
int tu_find(udb_val *out, udb_txn *txn, const char *type, const char *index, udb_val values);
int tu_upd(udb_val *out, udb_txn *txn, const char *type, udb_val key, udb_val rec,
           unsigned flags);
int tu_del(udb_txn *txn, const char *type, udb_val key);

/* ---- reading values back ----
 * tu_render: msgpack as compact JSON-like text (strings quoted, nil as null,
 * bin as <bin N>).  "<bad msgpack>" if it does not decode. */
const char *tu_render(udb_val v);
/* Field `name` of a record, rendered; "<absent>" if the map lacks it. */
const char *tu_field(udb_val rec, const char *name);
/* Field `name` as an unsigned integer; UINT64_MAX if absent or not one. */
uint64_t tu_fu(udb_val rec, const char *name);
/* `field` of every record of a scan, comma-separated ("<rc>" on error).
 * prefix.data NULL: no prefix. */
const char *tu_scan(udb_txn *txn, const char *type, const char *index, udb_val prefix,
                    const char *field);
/* The same for a udb_scan_range; "<rc: message>" if it is refused. */
const char *tu_scan_range(udb_txn *txn, const char *type, const char *index,
                          const udb_range *r, const char *field);
/* Records of a type (primary-key scan). */
size_t tu_count(udb_txn *txn, const char *type);
/* The conflict detail of txn, one "index(f1, f2)=values held by key" per
 * violated index, joined by "; " and prefixed by the type: "" if none. */
const char *tu_conflict(const udb_txn *txn);
/* The same for conflict detail held elsewhere (udb_result.conflict); "" if NULL. */
const char *tu_conflict_of(const udb_conflict *c);
/* s with every backtick turned into a double quote, so JSON reads well in C:
 * jq("{`types`: {}}"). */
const char *jq(const char *s);
/* A printf into memory that lives until the end of the case. */
const char *tu_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Keep p (malloc'd) until the end of the case; returns p. */
void *tu_keep(void *p);

#define NOVAL ((udb_val){NULL, 0})

#endif
