/*
 * fuzz_ops.c -- the operation semantics, differentially against SQLite.
 *
 * The input bytes drive a sequence of operations -- insert, insert_or_get,
 * upsert, update, merge, delete, insert_first, seq_next, get, find, scans of
 * every index with prefixes, range scans (bounds, reverse, limits, paging),
 * commit, abort, and udb_write between transactions -- on a type with a
 * compound unique index, a partial unique index, NULL-able unique fields
 * (NULLs distinct, one of them "collate": "nocase"), a "nulls":
 * "not_distinct" compound index and a unique float
 * field.  Every operation also runs against SQLite in memory, on the
 * equivalent table:
 *
 *   CREATE TABLE t(id INTEGER PRIMARY KEY AUTOINCREMENT, a TEXT NOT NULL,
 *     b INTEGER, status TEXT NOT NULL CHECK (status IN (...)), email TEXT,
 *     x TEXT, y INTEGER, f REAL);
 *   CREATE UNIQUE INDEX ab ON t(a, b);
 *   CREATE UNIQUE INDEX slot ON t(a, y) WHERE status IN ('pending', 'confirmed');
 *   CREATE UNIQUE INDEX email ON t(email COLLATE NOCASE);
 *   CREATE UNIQUE INDEX xnd ON t(ifnull(x, '~nil~'), ifnull(y, '~nil~'));
 *   CREATE UNIQUE INDEX fu ON t(f);
 *
 * (SQLite has no NULLS NOT DISTINCT; an expression index over ifnull() with
 * a sentinel no generated value takes is the same constraint.  Its NOCASE
 * stops comparing at a NUL byte, which no email value holds.)  SQLite is
 * the oracle: udb's outcome of every operation (ok / conflict / not found /
 * invalid, created or not, the record returned) must be SQLite's, the stored
 * records must be SQLite's rows after every operation, udb_check must pass
 * after every commit, and a conflict's detail must name the index SQLite
 * names, with holders that really hold the values.  Transactions map to
 * BEGIN / COMMIT / ROLLBACK; AUTOINCREMENT's sqlite_sequence is the auto-key
 * sequence "t.id".
 *
 * The API's compound operations are mapped to SQL as documented: insert_or_get
 * is INSERT ... ON CONFLICT (target) DO NOTHING plus a lookup of the holder;
 * upsert is INSERT ... ON CONFLICT (target) DO UPDATE SET <the fields given>;
 * insert_first is one INSERT per candidate until one is not a unique
 * violation.  Where the API is deliberately different from SQL the
 * generator stays inside the common ground (see gen_upsert).
 *
 * One udb environment and one SQLite connection live for the whole process;
 * each input starts by emptying both, so inputs are independent.
 */
#include <inttypes.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "mpack.h"
#include "record.h"

static const char SCHEMA[] =
    "{\"types\": {\"t\": {\"key\": \"id\", \"fields\": {"
    "  \"id\": {\"type\": \"uint\", \"auto\": true},"
    "  \"a\": {\"type\": \"str\", \"required\": true},"
    "  \"b\": {\"type\": \"int\"},"
    "  \"status\": {\"type\": \"enum\", \"values\": [\"pending\", \"confirmed\", \"cancelled\"],"
    "             \"required\": true},"
    "  \"email\": {\"type\": \"str\"},"
    "  \"x\": {\"type\": \"str\"},"
    "  \"y\": {\"type\": \"int\"},"
    "  \"f\": {\"type\": \"float\"}},"
    " \"unique\": {"
    "  \"ab\": {\"fields\": [\"a\", \"b\"]},"
    "  \"slot\": {\"fields\": [\"a\", \"y\"], \"where\": \"status IN ('pending', 'confirmed')\"},"
    "  \"email\": {\"fields\": [{\"field\": \"email\", \"collate\": \"nocase\"}]},"
    "  \"xnd\": {\"fields\": [\"x\", \"y\"], \"nulls\": \"not_distinct\"},"
    "  \"fu\": {\"fields\": [\"f\"]}},"
    " \"indexes\": {\"by_status\": {\"fields\": [\"status\", \"y\"]}}}}}";

static const char SQL_SCHEMA[] =
    "CREATE TABLE t(id INTEGER PRIMARY KEY AUTOINCREMENT, a TEXT NOT NULL, b INTEGER,"
    " status TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'cancelled')),"
    " email TEXT, x TEXT, y INTEGER, f REAL);"
    "CREATE UNIQUE INDEX ab ON t(a, b);"
    "CREATE UNIQUE INDEX slot ON t(a, y) WHERE status IN ('pending', 'confirmed');"
    "CREATE UNIQUE INDEX email ON t(email COLLATE NOCASE);"
    "CREATE UNIQUE INDEX xnd ON t(ifnull(x, '~nil~'), ifnull(y, '~nil~'));"
    "CREATE UNIQUE INDEX fu ON t(f);"
    "CREATE INDEX by_status ON t(status, y);"
    "CREATE TABLE seqs(name TEXT PRIMARY KEY, v INTEGER NOT NULL);";

/* ---- fields and values ------------------------------------------------------ */

enum { F_ID, F_A, F_B, F_STATUS, F_EMAIL, F_X, F_Y, F_F, NF };
static const char *const FNAME[NF] = {"id", "a", "b", "status", "email", "x", "y", "f"};

/* Small domains, so that values collide often.  Some strings are longer
 * than LMDB's 511-byte key and share all but their last bytes (filled in by
 * LLVMFuzzerInitialize): index keys of any length, compared in full. */
static char LONG_A1[560], LONG_A2[560], LONG_E1[620], LONG_E2[620], LONG_E3[1200],
    LONG_E4[620], LONG_X1[530], LONG_X2[530];
static const char *const DOM_A[] = {"a", "b", "c", LONG_A1, LONG_A2};
static const int64_t DOM_B[] = {0, 1, -1};
static const char *const DOM_STATUS[] = {"pending", "confirmed", "cancelled"};
/* emails: the index is nocase, so E1 is e1; the non-ASCII letters É and é
 * are not folded (neither by SQLite's NOCASE); LONG_E4 is LONG_E1 upper-case */
static const char *const DOM_EMAIL[] = {"e1", "e2", "e3", LONG_E1, LONG_E2, LONG_E3,
                                        "E1", "E2", "\xc3\x89" "1", "\xc3\xa9" "1", "_1",
                                        LONG_E4};
/* "x1\0z" holds a NUL: its key starts with the bytes of ("x1")'s, then goes on
 * (the escaped NUL), so it sorts after "x1" and a bound ["x1"] must not match it */
static const char *const DOM_X[] = {"x1", "x2", LONG_X1, LONG_X2, "x1\0z"};
static size_t xlen(unsigned v)
{
    return v == 4 ? 4 : strlen(DOM_X[v]);
}
static const int64_t DOM_Y[] = {0, 1, 2};
/* float field: ints are accepted (stored as float64); -0.0 is 0.0 */
typedef struct fval {
    bool is_int;
    int64_t i;
    double d;
} fval;
static const fval DOM_F[] = {{false, 0, 0.0}, {false, 0, -0.0}, {true, 1, 1.0},
                             {false, 0, 1.0}, {false, 0, 0.5},  {true, 2, 2.0}};
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
static const size_t DOM_N[NF] = {12, NELEM(DOM_A), NELEM(DOM_B), NELEM(DOM_STATUS),
                                 NELEM(DOM_EMAIL), NELEM(DOM_X), NELEM(DOM_Y), NELEM(DOM_F)};

enum { ABSENT = 0, NIL = 1, VAL = 2 };

/* A record or a patch: per field absent, nil or value number v[f]. */
typedef struct rec {
    uint8_t st[NF];
    uint8_t v[NF];
} rec;

/* The unique indexes, in declaration order; index 0 is the primary key. */
enum { IX_PK, IX_AB, IX_SLOT, IX_EMAIL, IX_XND, IX_FU, NIX };
static const char *const IXNAME[NIX] = {NULL, "ab", "slot", "email", "xnd", "fu"};
static const int IXFIELDS[NIX][3] = {{F_ID, -1}, {F_A, F_B, -1}, {F_A, F_Y, -1},
                                     {F_EMAIL, -1}, {F_X, F_Y, -1}, {F_F, -1}};
/* SQLite's name for the constraint in "UNIQUE constraint failed: ..." */
static const char *const IXSQLNAME[NIX] = {"t.id", "t.a, t.b", "t.a, t.y", "t.email",
                                           "index 'xnd'", "t.f"};
static const char *const IXTARGET[NIX] = {
    "id", "a, b", "a, y) WHERE status IN ('pending', 'confirmed'", "email COLLATE NOCASE",
    "ifnull(x, '~nil~'), ifnull(y, '~nil~')", "f"};
/* The row holding given values in each unique index ("?N" is field N-1). */
static const char *const IXLOOKUP[NIX] = {
    "id = ?1", "a = ?2 AND b = ?3", "a = ?2 AND y = ?7 AND status IN ('pending', 'confirmed')",
    "email = ?5 COLLATE NOCASE",
    ("ifnull(x, '~nil~') = ifnull(?6, '~nil~') AND ifnull(y, '~nil~') = ifnull(?7, '~nil~')"),
    "f = ?8"};

/* ---- state ----------------------------------------------------------------- */

static udb_env *env;
static udb_txn *txn;
static sqlite3 *db;
static uint64_t nops;   /* operations run, for the final report */
static bool trace;      /* UDB_FUZZ_TRACE=1: print every operation (for reproducers) */

#define TRACE(...)                          \
    do {                                    \
        if (trace)                          \
            fprintf(stderr, __VA_ARGS__);   \
    } while (0)

static sqlite3_stmt *st_insert, *st_replace, *st_merge, *st_delete, *st_rows, *st_row,
    *st_count, *st_seq_auto, *st_seq_s, *st_orget[NIX], *st_upsert[NIX], *st_lookup[NIX];

static const char *sql_cols = "id, a, b, status, email, x, y, f";

static sqlite3_stmt *prep(const char *sql)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    FUZZ_CHECK(rc == SQLITE_OK, "prepare: %s\n  %s", sqlite3_errmsg(db), sql);
    return st;
}

static void exec(const char *sql)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    FUZZ_CHECK(rc == SQLITE_OK, "sqlite: %s\n  %s", sqlite3_errmsg(db), sql);
}

static void report(void)
{
    fprintf(stderr, "fuzz_ops: %" PRIu64 " operations checked against SQLite\n", nops);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* a: 540 bytes, differing in the last; e: 600 and 1100 bytes, e3 has e1
       as a prefix; x: 520 bytes */
    memset(LONG_A1, 'a', 539), memset(LONG_A2, 'a', 539);
    LONG_A1[539] = '1', LONG_A2[539] = '2';
    memset(LONG_E1, 'e', 600), memset(LONG_E2, 'e', 600), memset(LONG_E3, 'e', 1100);
    LONG_E1[599] = '1', LONG_E2[599] = '2';
    memcpy(LONG_E3, LONG_E1, 600);
    memset(LONG_E4, 'E', 600);
    LONG_E4[599] = '1';
    memset(LONG_X1, 'x', 520), memset(LONG_X2, 'x', 520);
    LONG_X1[519] = '\0', LONG_X2[519] = '2';   /* x1: 519 bytes, a prefix of x2 */
    env = fuzz_open_scratch(SCHEMA);

    FUZZ_CHECK(sqlite3_open(":memory:", &db) == SQLITE_OK, "sqlite3_open");
    sqlite3_extended_result_codes(db, 1);
    exec(SQL_SCHEMA);
    char sql[1024];
    snprintf(sql, sizeof sql, "INSERT INTO t(%s) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)", sql_cols);
    st_insert = prep(sql);
    st_replace = prep("UPDATE t SET a = ?2, b = ?3, status = ?4, email = ?5, x = ?6, y = ?7, "
                      "f = ?8 WHERE id = ?1");
    st_merge = prep("UPDATE t SET a = CASE WHEN ?9 THEN ?2 ELSE a END,"
                    " b = CASE WHEN ?10 THEN ?3 ELSE b END,"
                    " status = CASE WHEN ?11 THEN ?4 ELSE status END,"
                    " email = CASE WHEN ?12 THEN ?5 ELSE email END,"
                    " x = CASE WHEN ?13 THEN ?6 ELSE x END,"
                    " y = CASE WHEN ?14 THEN ?7 ELSE y END,"
                    " f = CASE WHEN ?15 THEN ?8 ELSE f END WHERE id = ?1");
    st_delete = prep("DELETE FROM t WHERE id = ?1");
    snprintf(sql, sizeof sql, "SELECT %s FROM t ORDER BY id", sql_cols);
    st_rows = prep(sql);
    snprintf(sql, sizeof sql, "SELECT %s FROM t WHERE id = ?1", sql_cols);
    st_row = prep(sql);
    st_count = prep("SELECT count(*) FROM t");
    st_seq_auto = prep("SELECT seq FROM sqlite_sequence WHERE name = 't'");
    st_seq_s = prep("SELECT v FROM seqs WHERE name = 's'");
    for (int i = 0; i < NIX; i++) {
        snprintf(sql, sizeof sql,
                 "INSERT INTO t(%s) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
                 "ON CONFLICT(%s) DO NOTHING",
                 sql_cols, IXTARGET[i]);
        st_orget[i] = prep(sql);
        snprintf(sql, sizeof sql,
                 "INSERT INTO t(%s) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
                 "ON CONFLICT(%s) DO UPDATE SET"
                 " a = CASE WHEN ?9 THEN excluded.a ELSE a END,"
                 " b = CASE WHEN ?10 THEN excluded.b ELSE b END,"
                 " status = CASE WHEN ?11 THEN excluded.status ELSE status END,"
                 " email = CASE WHEN ?12 THEN excluded.email ELSE email END,"
                 " x = CASE WHEN ?13 THEN excluded.x ELSE x END,"
                 " y = CASE WHEN ?14 THEN excluded.y ELSE y END,"
                 " f = CASE WHEN ?15 THEN excluded.f ELSE f END "
                 "RETURNING id",
                 sql_cols, IXTARGET[i]);
        st_upsert[i] = prep(sql);
        snprintf(sql, sizeof sql, "SELECT %s FROM t WHERE %s", sql_cols, IXLOOKUP[i]);
        st_lookup[i] = prep(sql);
    }
    if (getenv("UDB_FUZZ_OPS_REPORT"))
        atexit(report);
    trace = getenv("UDB_FUZZ_TRACE") != NULL;
    return 0;
}

/* ---- msgpack side ------------------------------------------------------------ */

static void pack_value(msgpack_packer *pk, int f, unsigned v)
{
    switch (f) {
    case F_ID: msgpack_pack_uint64(pk, v + 1); break;
    case F_A: msgpack_pack_str_with_body(pk, DOM_A[v], strlen(DOM_A[v])); break;
    case F_B: msgpack_pack_int64(pk, DOM_B[v]); break;
    case F_STATUS: msgpack_pack_str_with_body(pk, DOM_STATUS[v], strlen(DOM_STATUS[v])); break;
    case F_EMAIL: msgpack_pack_str_with_body(pk, DOM_EMAIL[v], strlen(DOM_EMAIL[v])); break;
    case F_X: msgpack_pack_str_with_body(pk, DOM_X[v], xlen(v)); break;
    case F_Y: msgpack_pack_int64(pk, DOM_Y[v]); break;
    case F_F:
        if (DOM_F[v].is_int)
            msgpack_pack_int64(pk, DOM_F[v].i);
        else
            msgpack_pack_double(pk, DOM_F[v].d);
        break;
    }
}

/* r as a msgpack map into sb (absent fields left out, nil as nil). */
static void pack_rec(msgpack_sbuffer *sb, const rec *r)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    size_t n = 0;
    for (int f = 0; f < NF; f++)
        n += r->st[f] != ABSENT;
    msgpack_pack_map(&pk, n);
    for (int f = 0; f < NF; f++) {
        if (r->st[f] == ABSENT)
            continue;
        msgpack_pack_str_with_body(&pk, FNAME[f], strlen(FNAME[f]));
        if (r->st[f] == NIL)
            msgpack_pack_nil(&pk);
        else
            pack_value(&pk, f, r->v[f]);
    }
}

static void pack_key(msgpack_sbuffer *sb, unsigned id)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_uint64(&pk, id);
}

static void trace_rec(const char *what, const rec *r)
{
    if (!trace)
        return;
    fprintf(stderr, " %s{", what);
    for (int f = 0; f < NF; f++) {
        if (r->st[f] == ABSENT)
            continue;
        fprintf(stderr, " %s=", FNAME[f]);
        if (r->st[f] == NIL) {
            fprintf(stderr, "nil");
            continue;
        }
        unsigned v = r->v[f];
        switch (f) {
        case F_ID: fprintf(stderr, "%u", v + 1); break;
        case F_A: fprintf(stderr, "%s", DOM_A[v]); break;
        case F_B: fprintf(stderr, "%" PRId64, DOM_B[v]); break;
        case F_STATUS: fprintf(stderr, "%s", DOM_STATUS[v]); break;
        case F_EMAIL: fprintf(stderr, "%s", DOM_EMAIL[v]); break;
        case F_X: fprintf(stderr, "%s", DOM_X[v]); break;
        case F_Y: fprintf(stderr, "%" PRId64, DOM_Y[v]); break;
        case F_F:
            if (DOM_F[v].is_int)
                fprintf(stderr, "%" PRId64, DOM_F[v].i);
            else
                fprintf(stderr, "%g", DOM_F[v].d);
            break;
        }
    }
    fprintf(stderr, " }");
}

/* ---- comparing a udb record with a SQLite row -------------------------------- */

static const msgpack_object *map_get(const msgpack_object *m, const char *k)
{
    size_t n = strlen(k);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *key = &m->via.map.ptr[i].key;
        if (key->type == MSGPACK_OBJECT_STR && key->via.str.size == n &&
            memcmp(key->via.str.ptr, k, n) == 0)
            return &m->via.map.ptr[i].val;
    }
    return NULL;
}

/* Decode msgpack the engine handed out (checked first, like any bytes).
 * One zone is reused for every value: records are decoded after every
 * operation, and a fresh msgpack zone per record dominated the run time. */
static msgpack_zone *zone;

static bool decode(msgpack_object *out, const void *data, size_t size, const char **why)
{
    size_t off = 0;
    if (!zone)
        FUZZ_CHECK((zone = msgpack_zone_new(4096)) != NULL, "out of memory");
    msgpack_zone_clear(zone);
    if (udb__mp_check(data, size, UDB_MAX_DEPTH, why) != 0)
        return false;
    return msgpack_unpack(data, size, &off, zone, out) == MSGPACK_UNPACK_SUCCESS && off == size;
}

/* Does msgpack value o (NULL: missing) equal column col of st? */
static bool same_cell(const msgpack_object *o, sqlite3_stmt *st, int col, int f)
{
    int ty = sqlite3_column_type(st, col);
    if (!o || o->type == MSGPACK_OBJECT_NIL)
        return ty == SQLITE_NULL;
    switch (f) {
    case F_A:
    case F_STATUS:
    case F_EMAIL:
    case F_X:
        return ty == SQLITE_TEXT && o->type == MSGPACK_OBJECT_STR &&
               (size_t)sqlite3_column_bytes(st, col) == o->via.str.size &&
               memcmp(sqlite3_column_text(st, col), o->via.str.ptr, o->via.str.size) == 0;
    case F_ID:
        return ty == SQLITE_INTEGER && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
               (uint64_t)sqlite3_column_int64(st, col) == o->via.u64;
    case F_B:
    case F_Y: {
        int64_t v = sqlite3_column_int64(st, col);
        if (ty != SQLITE_INTEGER)
            return false;
        if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            return v >= 0 && (uint64_t)v == o->via.u64;
        return o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && v == o->via.i64;
    }
    case F_F:
        /* stored float fields are float64 whatever was given */
        return ty == SQLITE_FLOAT && o->type == MSGPACK_OBJECT_FLOAT64 &&
               o->via.f64 == sqlite3_column_double(st, col);
    }
    return false;
}

static void describe_row(char *out, size_t cap, sqlite3_stmt *st)
{
    size_t used = 0;
    for (int c = 0; c < NF && used < cap; c++) {
        const char *txt = (const char *)sqlite3_column_text(st, c);
        int w = snprintf(out + used, cap - used, "%s%s=%s", c ? " " : "", FNAME[c],
                         txt ? txt : "NULL");
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

static void describe_rec(char *out, size_t cap, const void *data, size_t size)
{
    out[0] = 0;
    msgpack_object o;
    if (!decode(&o, data, size, NULL) || o.type != MSGPACK_OBJECT_MAP) {
        snprintf(out, cap, "<not a map>");
        return;
    }
    size_t used = 0;
    for (uint32_t i = 0; i < o.via.map.size && used < cap; i++) {
        const msgpack_object_kv *kv = &o.via.map.ptr[i];
        udb_buf b = {0};
        udb__mp_render(&b, &kv->val, true);
        int w = snprintf(out + used, cap - used, "%s%.*s=%s", i ? " " : "",
                         (int)kv->key.via.str.size, kv->key.via.str.ptr, b.p ? (char *)b.p : "");
        udb__buf_free(&b);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

/* The record must equal the current row of st (all eight columns). */
static void expect_same(const void *data, size_t size, sqlite3_stmt *st, const char *what)
{
    msgpack_object m;
    const char *why = NULL;
    FUZZ_CHECK(decode(&m, data, size, &why) && m.type == MSGPACK_OBJECT_MAP,
               "%s: udb returned a record that is not a msgpack map: %s", what, why ? why : "");
    size_t present = 0;
    for (int f = 0; f < NF; f++) {
        const msgpack_object *o = map_get(&m, FNAME[f]);
        present += o != NULL;
        if (!same_cell(o, st, f, f)) {
            char a[512], b[512];
            describe_rec(a, sizeof a, data, size);
            describe_row(b, sizeof b, st);
            FUZZ_FAIL("%s: udb and SQLite disagree on field %s\n  udb:    %s\n  sqlite: %s", what,
                      FNAME[f], a, b);
        }
    }
    FUZZ_CHECK(present == m.via.map.size, "%s: udb record has undeclared fields", what);
}

/* udb's record must be SQLite's row with that id. */
static void expect_row(const udb_val *v, int64_t id, const char *what)
{
    sqlite3_reset(st_row);
    sqlite3_bind_int64(st_row, 1, id);
    FUZZ_CHECK(sqlite3_step(st_row) == SQLITE_ROW, "%s: SQLite has no row %" PRId64, what, id);
    expect_same(v->data, v->size, st_row, what);
    sqlite3_reset(st_row);
}

/* One step of a udb cursor and a SQLite statement in lock step: false when
 * both are at their end; else the record, checked equal to the row, in *v
 * (entry n of the comparison `label`, named in a failure). */
static bool step_both(udb_val *v, udb_cursor *cur, sqlite3_stmt *st, const char *label,
                      size_t n)
{
    int src = sqlite3_step(st);
    int rc = udb_cursor_next(v, cur);
    FUZZ_CHECK(rc == 0 || rc == UDB_ENOTFOUND, "%s: cursor: %s", label, udb_strerror(rc));
    FUZZ_CHECK(src == SQLITE_ROW || src == SQLITE_DONE, "sqlite: %s", sqlite3_errmsg(db));
    if (rc && src == SQLITE_DONE)
        return false;
    if (rc || src == SQLITE_DONE) {
        char a[512] = "", b[512] = "";
        if (!rc)
            describe_rec(a, sizeof a, v->data, v->size);
        else
            describe_row(b, sizeof b, st);
        FUZZ_FAIL("%s, entry %zu: udb has %s, SQLite has %s", label, n, rc ? "none" : a,
                  src == SQLITE_DONE ? "none" : b);
    }
    char what[160];
    snprintf(what, sizeof what, "%s, entry %zu", label, n);
    expect_same(v->data, v->size, st, what);
    return true;
}

/* Step a udb cursor and a SQLite statement in lock step: the same number of
 * records, each equal to its row.  `label` names the comparison in a failure. */
static void compare_cursor(udb_cursor *cur, sqlite3_stmt *st, const char *label)
{
    udb_val v;
    for (size_t n = 0; step_both(&v, cur, st, label, n); n++)
        ;
}

/* Every record equals every row, in key order. */
static void compare_all(const char *when)
{
    udb_txn *t = txn;
    if (!t)
        FUZZ_CHECK(udb_begin(&t, env, UDB_RDONLY) == 0, "begin");
    udb_cursor *cur;
    FUZZ_CHECK(udb_scan(&cur, t, "t", NULL, NULL, 0) == 0, "scan: %s", udb_errmsg(t));
    sqlite3_reset(st_rows);
    compare_cursor(cur, st_rows, when);
    sqlite3_reset(st_rows);
    udb_cursor_close(cur);
    if (t != txn)
        udb_abort(t);
}

/* Bind field f's value number v (SQLite's view of pack_value) at col. */
static void bind_value(sqlite3_stmt *st, int col, int f, unsigned v)
{
    switch (f) {
    case F_ID: sqlite3_bind_int64(st, col, v + 1); break;
    case F_A: sqlite3_bind_text(st, col, DOM_A[v], -1, SQLITE_STATIC); break;
    case F_B: sqlite3_bind_int64(st, col, DOM_B[v]); break;
    case F_STATUS: sqlite3_bind_text(st, col, DOM_STATUS[v], -1, SQLITE_STATIC); break;
    case F_EMAIL: sqlite3_bind_text(st, col, DOM_EMAIL[v], -1, SQLITE_STATIC); break;
    case F_X: sqlite3_bind_text(st, col, DOM_X[v], (int)xlen(v), SQLITE_STATIC); break;
    case F_Y: sqlite3_bind_int64(st, col, DOM_Y[v]); break;
    case F_F:
        if (DOM_F[v].is_int)
            sqlite3_bind_int64(st, col, DOM_F[v].i);
        else
            sqlite3_bind_double(st, col, DOM_F[v].d);
        break;
    }
}

/* ---- SQLite side --------------------------------------------------------------- */

static void bind_rec(sqlite3_stmt *st, const rec *r, bool set_flags)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    for (int f = 0; f < NF; f++) {
        int col = f + 1;
        if (set_flags && f != F_ID)
            sqlite3_bind_int(st, 8 + f, r->st[f] != ABSENT);
        if (r->st[f] != VAL)
            continue;   /* NULL */
        bind_value(st, col, f, r->v[f]);
    }
}

typedef enum outcome { O_OK, O_CONFLICT, O_NOTFOUND, O_INVALID } outcome;
static const char *const ONAME[] = {"ok", "conflict", "not found", "invalid"};

static outcome from_udb(int rc)
{
    switch (rc) {
    case 0: return O_OK;
    case UDB_ECONFLICT: return O_CONFLICT;
    case UDB_ENOTFOUND: return O_NOTFOUND;
    case UDB_EBADRECORD: return O_INVALID;
    default:
        FUZZ_FAIL("udb returned %d (%s): %s", rc, udb_strerror(rc), txn ? udb_errmsg(txn) : "");
    }
}

/* Which unique index SQLite's last error names (-1: not a unique error). */
static int sql_conflict_index(void)
{
    const char *m = sqlite3_errmsg(db), *p = strstr(m, "constraint failed: ");
    if (!p)
        return -1;
    p += strlen("constraint failed: ");
    for (int i = 0; i < NIX; i++)
        if (strcmp(p, IXSQLNAME[i]) == 0)
            return i;
    FUZZ_FAIL("unexpected SQLite message: %s", m);
}

static int sql_last_index = -1;

static outcome from_sql(int rc)
{
    sql_last_index = -1;
    switch (rc) {
    case SQLITE_DONE:
    case SQLITE_ROW:
        return O_OK;
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
        sql_last_index = sql_conflict_index();
        return O_CONFLICT;
    case SQLITE_CONSTRAINT_NOTNULL:
    case SQLITE_CONSTRAINT_CHECK:
        return O_INVALID;
    default:
        FUZZ_FAIL("SQLite returned %d: %s", rc, sqlite3_errmsg(db));
    }
}

/* Run a write statement to completion. */
static outcome sql_run(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    outcome o = from_sql(rc);
    sqlite3_reset(st);
    return o;
}

static int64_t sql_count(void)
{
    sqlite3_reset(st_count);
    FUZZ_CHECK(sqlite3_step(st_count) == SQLITE_ROW, "count");
    int64_t n = sqlite3_column_int64(st_count, 0);
    sqlite3_reset(st_count);
    return n;
}

/* AUTOINCREMENT's counter (-1: no row yet). */
static int64_t sql_seq(void)
{
    sqlite3_reset(st_seq_auto);
    int64_t v = sqlite3_step(st_seq_auto) == SQLITE_ROW ? sqlite3_column_int64(st_seq_auto, 0) : -1;
    sqlite3_reset(st_seq_auto);
    return v;
}

/*
 * SQLite allocates an AUTOINCREMENT value before it detects the conflict of
 * an upsert, so "ON CONFLICT DO NOTHING / DO UPDATE" that inserts nothing
 * still advances sqlite_sequence.  udb takes a key from the sequence only
 * for a record it inserts, so committed auto keys have no gaps (uniqdb.h,
 * udb_seq_next).  Give SQLite's number back when nothing was inserted.
 */
static void sql_seq_restore(int64_t v)
{
    char sql[128];
    if (v < 0)
        snprintf(sql, sizeof sql, "DELETE FROM sqlite_sequence WHERE name = 't'");
    else
        snprintf(sql, sizeof sql, "UPDATE sqlite_sequence SET seq = %" PRId64 " WHERE name = 't'",
                 v);
    exec(sql);
}

/* ---- checking outcomes ------------------------------------------------------- */

static void expect_outcome(outcome u, outcome s, const char *op)
{
    if (u != s)
        FUZZ_FAIL("%s: udb says %s (%s), SQLite says %s (%s)", op, ONAME[u], udb_errmsg(txn),
                  ONAME[s], sqlite3_errmsg(db));
}

static int index_pos(const char *name)
{
    if (strcmp(name, "id") == 0)
        return IX_PK;
    for (int i = 1; i < NIX; i++)
        if (strcmp(name, IXNAME[i]) == 0)
            return i;
    FUZZ_FAIL("conflict names unknown index \"%s\"", name);
}

/* A conflict's detail: every index listed once, primary key first, then in
 * declaration order; each holder holds exactly the listed values; and the
 * index SQLite named is among them. */
static void check_conflict(int sql_index, const char *op)
{
    const udb_conflict *c = udb_conflict_info(txn);
    FUZZ_CHECK(c && c->count >= 1 && strcmp(c->type, "t") == 0, "%s: no conflict detail", op);
    int prev = -1;
    bool named = sql_index < 0;
    for (size_t i = 0; i < c->count; i++) {
        const udb_conflict_index *ci = &c->indexes[i];
        int ix = index_pos(ci->index);
        FUZZ_CHECK(ix > prev, "%s: conflict list out of declaration order", op);
        prev = ix;
        named |= ix == sql_index;
        msgpack_unpacked key, vals;
        msgpack_unpacked_init(&key);
        msgpack_unpacked_init(&vals);
        FUZZ_CHECK(udb__mp_parse(&key, ci->existing_key.data, ci->existing_key.size, NULL) == 0 &&
                       key.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER,
                   "%s: conflict existing_key is not a uint", op);
        FUZZ_CHECK(udb__mp_parse(&vals, ci->values.data, ci->values.size, NULL) == 0 &&
                       vals.data.type == MSGPACK_OBJECT_ARRAY,
                   "%s: conflict values are not an array", op);
        sqlite3_reset(st_row);
        sqlite3_bind_int64(st_row, 1, (int64_t)key.data.via.u64);
        FUZZ_CHECK(sqlite3_step(st_row) == SQLITE_ROW,
                   "%s: conflict on %s names holder %" PRIu64 ", which SQLite does not have", op,
                   ci->index, key.data.via.u64);
        size_t nf = 0;
        while (nf < 3 && IXFIELDS[ix][nf] >= 0)
            nf++;
        FUZZ_CHECK(vals.data.via.array.size == nf && ci->nfields == nf,
                   "%s: conflict on %s lists %u values", op, ci->index,
                   vals.data.via.array.size);
        for (size_t k = 0; k < nf; k++) {
            int f = IXFIELDS[ix][k];
            const msgpack_object *o = &vals.data.via.array.ptr[k];
            FUZZ_CHECK(strcmp(ci->fields[k], FNAME[f]) == 0, "%s: conflict field names", op);
            /* a float given as an int is reported as given */
            if (f == F_F && o->type != MSGPACK_OBJECT_NIL) {
                FUZZ_CHECK(udb__as_double(o) == sqlite3_column_double(st_row, f),
                           "%s: conflict on %s: holder does not hold the value", op, ci->index);
                continue;
            }
            FUZZ_CHECK(same_cell(o, st_row, f, f), "%s: conflict on %s: holder %" PRIu64
                       " does not hold the listed value of %s", op, ci->index,
                       key.data.via.u64, FNAME[f]);
        }
        sqlite3_reset(st_row);
        msgpack_unpacked_destroy(&key);
        msgpack_unpacked_destroy(&vals);
    }
    FUZZ_CHECK(named, "%s: SQLite reports a violation of %s, udb's conflict does not list it",
               op, IXSQLNAME[sql_index]);
}

/* Common tail of a write: outcome, conflict detail, returned record. */
static void after_write(int rc, outcome s, const udb_val *out, int64_t sql_id, const char *op)
{
    outcome u = from_udb(rc);
    TRACE(" -> udb %s, sqlite %s\n", ONAME[u], ONAME[s]);
    expect_outcome(u, s, op);
    if (u == O_CONFLICT)
        check_conflict(sql_last_index, op);
    else
        FUZZ_CHECK(udb_conflict_info(txn) == NULL, "%s: conflict detail without a conflict", op);
    if (u == O_OK && out)
        expect_row(out, sql_id, op);
}

/* ---- generators -------------------------------------------------------------- */

/* Required fields are rarely left out (then the record is invalid);
 * optional ones are absent, nil or a value. */
static void gen_field(rec *r, fuzz_reader *in, int f)
{
    uint8_t c = fuzz_u8(in);
    if (f == F_A || f == F_STATUS) {
        r->st[f] = c == 0 ? ABSENT : c == 1 ? NIL : VAL;
        r->v[f] = (uint8_t)(c % DOM_N[f]);
    } else {
        r->st[f] = c % 4 == 0 ? ABSENT : c % 4 == 1 ? NIL : VAL;
        r->v[f] = (uint8_t)((c / 4) % DOM_N[f]);
    }
}

/* A full record; the key is usually left to the sequence. */
static void gen_rec(rec *r, fuzz_reader *in)
{
    uint8_t c = fuzz_u8(in);
    memset(r, 0, sizeof *r);
    r->st[F_ID] = c % 4 == 3 ? VAL : ABSENT;
    r->v[F_ID] = (uint8_t)((c / 4) % DOM_N[F_ID]);
    for (int f = 1; f < NF; f++)
        gen_field(r, in, f);
}

/* A merge patch: each field absent, nil (removes it) or a value. */
static void gen_patch(rec *r, fuzz_reader *in)
{
    memset(r, 0, sizeof *r);
    for (int f = 1; f < NF; f++) {
        uint8_t c = fuzz_u8(in);
        r->st[f] = c % 4 == 0 || c % 4 == 3 ? ABSENT : c % 4 == 1 ? NIL : VAL;
        r->v[f] = (uint8_t)((c / 4) % DOM_N[f]);
    }
}

static unsigned gen_id(fuzz_reader *in)
{
    return fuzz_u8(in) % DOM_N[F_ID];   /* value number: the id is v + 1 */
}

/* ---- operations ---------------------------------------------------------------- */

static void op_insert(fuzz_reader *in)
{
    rec r;
    gen_rec(&r, in);
    TRACE("insert");
    trace_rec("", &r);
    msgpack_sbuffer sb;
    pack_rec(&sb, &r);
    udb_val out;
    int rc = udb_insert(&out, txn, "t", sb.data, sb.size);
    bind_rec(st_insert, &r, false);
    outcome s = sql_run(st_insert);
    after_write(rc, s, &out, sqlite3_last_insert_rowid(db), "insert");
    msgpack_sbuffer_destroy(&sb);
}

static void op_insert_or_get(fuzz_reader *in)
{
    int ix = fuzz_u8(in) % NIX;
    rec r;
    gen_rec(&r, in);
    TRACE("insert_or_get %s", ix ? IXNAME[ix] : "id");
    trace_rec("", &r);
    msgpack_sbuffer sb;
    pack_rec(&sb, &r);
    udb_val out;
    int created = -1;
    int rc = udb_insert_or_get(&out, &created, txn, "t", IXNAME[ix], sb.data, sb.size);
    int64_t before = sql_count(), seq = sql_seq();
    bind_rec(st_orget[ix], &r, false);
    outcome s = sql_run(st_orget[ix]);
    bool sql_created = sql_count() > before;
    if (!sql_created)
        sql_seq_restore(seq);
    after_write(rc, s, NULL, 0, "insert_or_get");
    if (rc)
        goto out;
    FUZZ_CHECK(created == sql_created, "insert_or_get on %s: udb %s, SQLite %s",
               ix ? IXNAME[ix] : "id", created ? "created" : "found", sql_created ? "created"
                                                                          : "found");
    if (sql_created) {
        expect_row(&out, sqlite3_last_insert_rowid(db), "insert_or_get (created)");
    } else {
        sqlite3_stmt *st = st_lookup[ix];
        bind_rec(st, &r, false);
        FUZZ_CHECK(sqlite3_step(st) == SQLITE_ROW, "insert_or_get: SQLite did nothing but "
                   "holds no row in %s", ix ? IXNAME[ix] : "id");
        expect_same(out.data, out.size, st, "insert_or_get (existing)");
        sqlite3_reset(st);
    }
out:
    msgpack_sbuffer_destroy(&sb);
}

/*
 * Upsert.  Like SQL, udb validates the whole row it would insert (rec merged
 * over on_insert) and looks the holder up by that row, even when it ends up
 * updating.  The generator keeps on_insert off the target index's fields and
 * its predicate all the same (the corpora were grown that way), and the two
 * together always give the required fields (or leave them explicitly nil in
 * rec, which both call invalid).
 */
static void op_upsert(fuzz_reader *in)
{
    int ix = fuzz_u8(in) % NIX;
    uint8_t c = fuzz_u8(in);
    rec patch, ins;
    gen_patch(&patch, in);
    gen_patch(&ins, in);
    if (c & 2) {   /* an explicit key in rec */
        patch.st[F_ID] = VAL;
        patch.v[F_ID] = (uint8_t)gen_id(in);
    }
    bool reserved[NF] = {false};
    for (int k = 0; k < 3 && IXFIELDS[ix][k] >= 0; k++)
        reserved[IXFIELDS[ix][k]] = true;
    if (ix == IX_SLOT)
        reserved[F_STATUS] = true;
    ins.st[F_ID] = ABSENT;
    bool with_ins = c & 1;
    for (int f = 1; f < NF; f++) {
        if (!with_ins || reserved[f])
            ins.st[f] = ABSENT;
        if (f == F_A || f == F_STATUS) {
            /* required: given by rec, or by on_insert, or explicitly nil */
            if (patch.st[f] == ABSENT && (!with_ins || reserved[f] || ins.st[f] != VAL)) {
                patch.st[f] = VAL;
            }
        }
    }
    /* the row SQL would insert: rec over on_insert */
    rec row = ins;
    for (int f = 0; f < NF; f++)
        if (patch.st[f] != ABSENT) {
            row.st[f] = patch.st[f];
            row.v[f] = patch.v[f];
        }
    TRACE("upsert %s", ix ? IXNAME[ix] : "id");
    trace_rec("rec", &patch);
    if (with_ins)
        trace_rec("on_insert", &ins);
    msgpack_sbuffer sp, si;
    pack_rec(&sp, &patch);
    pack_rec(&si, &ins);
    udb_val out;
    int created = -1;
    int rc = udb_upsert(&out, &created, txn, "t", IXNAME[ix], sp.data, sp.size,
                        with_ins ? si.data : NULL, with_ins ? si.size : 0);

    int64_t before = sql_count(), seq = sql_seq();
    sqlite3_stmt *st = st_upsert[ix];
    bind_rec(st, &row, false);
    for (int f = 1; f < NF; f++)
        sqlite3_bind_int(st, 8 + f, patch.st[f] != ABSENT);
    int src = sqlite3_step(st);
    int64_t id = src == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    if (src == SQLITE_ROW)
        src = sqlite3_step(st);
    outcome s = from_sql(src);
    sqlite3_reset(st);
    bool sql_created = sql_count() > before;
    if (!sql_created)
        sql_seq_restore(seq);
    after_write(rc, s, &out, id, "upsert");
    if (rc == 0)
        FUZZ_CHECK(created == sql_created, "upsert on %s: udb %s, SQLite %s",
                   ix ? IXNAME[ix] : "id", created ? "inserted" : "updated",
                   sql_created ? "inserted" : "updated");
    msgpack_sbuffer_destroy(&sp);
    msgpack_sbuffer_destroy(&si);
}

static void op_update(fuzz_reader *in, bool merge)
{
    unsigned id = gen_id(in);
    uint8_t c = fuzz_u8(in);
    rec r;
    if (merge)
        gen_patch(&r, in);
    else
        gen_rec(&r, in);
    /* the record may repeat its key (it may not change it) */
    r.st[F_ID] = c & 1 ? VAL : ABSENT;
    r.v[F_ID] = (uint8_t)id;
    TRACE("%s %u", merge ? "merge" : "update", id + 1);
    trace_rec("", &r);
    msgpack_sbuffer sk, sr;
    pack_key(&sk, id + 1);
    pack_rec(&sr, &r);
    udb_val out;
    int rc = udb_update(&out, txn, "t", sk.data, sk.size, sr.data, sr.size,
                        merge ? UDB_MERGE : 0);
    sqlite3_stmt *st = merge ? st_merge : st_replace;
    bind_rec(st, &r, merge);
    sqlite3_bind_int64(st, 1, id + 1);
    outcome s = sql_run(st);
    if (s == O_OK && sqlite3_changes(db) == 0)
        s = O_NOTFOUND;
    after_write(rc, s, &out, id + 1, merge ? "merge" : "update");
    msgpack_sbuffer_destroy(&sk);
    msgpack_sbuffer_destroy(&sr);
}

static void op_delete(fuzz_reader *in)
{
    unsigned id = gen_id(in);
    TRACE("delete %u", id + 1);
    msgpack_sbuffer sk;
    pack_key(&sk, id + 1);
    int rc = udb_delete(txn, "t", sk.data, sk.size);
    sqlite3_reset(st_delete);
    sqlite3_bind_int64(st_delete, 1, id + 1);
    outcome s = sql_run(st_delete);
    if (s == O_OK && sqlite3_changes(db) == 0)
        s = O_NOTFOUND;
    after_write(rc, s, NULL, 0, "delete");
    msgpack_sbuffer_destroy(&sk);
}

static void op_insert_first(fuzz_reader *in)
{
    size_t n = 1 + fuzz_u8(in) % 4;
    rec r[4];
    msgpack_sbuffer sb[4];
    udb_val cand[4];
    for (size_t i = 0; i < n; i++) {
        gen_rec(&r[i], in);
        pack_rec(&sb[i], &r[i]);
        cand[i].data = sb[i].data;
        cand[i].size = sb[i].size;
    }
    TRACE("insert_first");
    for (size_t i = 0; i < n; i++)
        trace_rec("", &r[i]);
    udb_val out;
    size_t chosen = 99;
    int rc = udb_insert_first(&out, &chosen, txn, "t", cand, n);
    size_t sql_chosen = n;
    outcome s = O_CONFLICT;
    int idx = -1;
    for (size_t i = 0; i < n; i++) {
        bind_rec(st_insert, &r[i], false);
        s = sql_run(st_insert);
        idx = sql_last_index;
        if (s != O_CONFLICT) {
            sql_chosen = i;
            break;
        }
    }
    sql_last_index = idx;
    after_write(rc, s, &out, sqlite3_last_insert_rowid(db), "insert_first");
    if (rc != UDB_ECONFLICT)
        FUZZ_CHECK(chosen == sql_chosen, "insert_first: udb chose %zu, SQLite %zu", chosen,
                   sql_chosen);
    for (size_t i = 0; i < n; i++)
        msgpack_sbuffer_destroy(&sb[i]);
}

static void op_seq_next(fuzz_reader *in)
{
    bool auto_seq = fuzz_u8(in) & 1;
    uint64_t v = 0;
    int rc = udb_seq_next(&v, txn, auto_seq ? "t.id" : "s");
    FUZZ_CHECK(rc == 0, "seq_next: %s", udb_errmsg(txn));
    TRACE("seq_next %s -> %" PRIu64 "\n", auto_seq ? "t.id" : "s", v);
    sqlite3_stmt *st;
    if (auto_seq) {
        /* AUTOINCREMENT's counter is the auto-key sequence */
        exec("INSERT INTO sqlite_sequence(name, seq) SELECT 't', 0 WHERE NOT EXISTS "
             "(SELECT 1 FROM sqlite_sequence WHERE name = 't')");
        exec("UPDATE sqlite_sequence SET seq = seq + 1 WHERE name = 't'");
        st = st_seq_auto;
    } else {
        exec("INSERT INTO seqs VALUES('s', 1) ON CONFLICT(name) DO UPDATE SET v = v + 1");
        st = st_seq_s;
    }
    sqlite3_reset(st);
    FUZZ_CHECK(sqlite3_step(st) == SQLITE_ROW, "sequence row");
    int64_t want = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    FUZZ_CHECK((int64_t)v == want, "seq_next(%s): udb %" PRIu64 ", SQLite %" PRId64,
               auto_seq ? "t.id" : "s", v, want);
}

static void op_get(fuzz_reader *in)
{
    unsigned id = gen_id(in);
    TRACE("get %u\n", id + 1);
    msgpack_sbuffer sk;
    pack_key(&sk, id + 1);
    udb_val out;
    int rc = udb_get(&out, txn, "t", sk.data, sk.size);
    sqlite3_reset(st_row);
    sqlite3_bind_int64(st_row, 1, id + 1);
    int src = sqlite3_step(st_row);
    FUZZ_CHECK(src == SQLITE_ROW || src == SQLITE_DONE, "sqlite: %s", sqlite3_errmsg(db));
    expect_outcome(from_udb(rc), src == SQLITE_ROW ? O_OK : O_NOTFOUND, "get");
    if (rc == 0)
        expect_same(out.data, out.size, st_row, "get");
    sqlite3_reset(st_row);
    msgpack_sbuffer_destroy(&sk);
}

static void op_find(fuzz_reader *in)
{
    int ix = 1 + fuzz_u8(in) % (NIX - 1);
    rec r;
    gen_rec(&r, in);
    size_t nf = 0;
    while (nf < 3 && IXFIELDS[ix][nf] >= 0)
        nf++;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, nf);
    for (size_t k = 0; k < nf; k++) {
        int f = IXFIELDS[ix][k];
        if (r.st[f] == VAL)
            pack_value(&pk, f, r.v[f]);
        else
            msgpack_pack_nil(&pk);
    }
    TRACE("find %s", IXNAME[ix]);
    trace_rec("", &r);
    TRACE("\n");
    udb_val out;
    int rc = udb_find(&out, txn, "t", IXNAME[ix], sb.data, sb.size);
    sqlite3_stmt *st = st_lookup[ix];
    bind_rec(st, &r, false);
    int src = sqlite3_step(st);
    FUZZ_CHECK(src == SQLITE_ROW || src == SQLITE_DONE, "sqlite: %s", sqlite3_errmsg(db));
    expect_outcome(from_udb(rc), src == SQLITE_ROW ? O_OK : O_NOTFOUND, "find");
    if (rc == 0)
        expect_same(out.data, out.size, st, "find");
    sqlite3_reset(st);
    msgpack_sbuffer_destroy(&sb);
}

/*
 * Scans: every index (unique, partial, not-distinct, non-unique) in its
 * order, in full and restricted to a prefix of its fields.  SQLite's side
 * restates each index's definition as a query: every row of the table
 * (NULLs included, whatever the index's uniqueness), except that a partial
 * index holds only the rows its WHERE admits; in index order, SQL's ORDER BY
 * of its fields (NULLs first, as SQLite sorts them), ties by primary key; a
 * prefix value matches with IS, so a nil prefix finds the rows with a NULL.
 */
enum { SC_PK, SC_AB, SC_SLOT, SC_EMAIL, SC_XND, SC_FU, SC_BY_STATUS, NSCAN };
static const char *const SCNAME[NSCAN] = {NULL, "ab", "slot", "email", "xnd", "fu", "by_status"};
static const int SCFIELDS[NSCAN][3] = {{F_ID, -1}, {F_A, F_B, -1}, {F_A, F_Y, -1}, {F_EMAIL, -1},
                                       {F_X, F_Y, -1}, {F_F, -1}, {F_STATUS, F_Y, -1}};
static const char *const SCWHERE[NSCAN] = {
    "1", "1", "status IN ('pending', 'confirmed')", "1", "1", "1", "1"};
static sqlite3_stmt *st_scan[NSCAN][3];

static sqlite3_stmt *scan_stmt(int ix, int nprefix)
{
    if (!st_scan[ix][nprefix]) {
        char sql[1024], cond[256] = "", order[128] = "";
        size_t nf = 0;
        while (nf < 3 && SCFIELDS[ix][nf] >= 0)
            nf++;
        for (int k = 0; k < nprefix; k++) {
            size_t used = strlen(cond);
            snprintf(cond + used, sizeof cond - used, " AND %s IS ?%d%s",
                     FNAME[SCFIELDS[ix][k]], SCFIELDS[ix][k] + 1,
                     SCFIELDS[ix][k] == F_EMAIL ? " COLLATE NOCASE" : "");
        }
        for (size_t k = 0; k < nf; k++) {
            size_t used = strlen(order);
            snprintf(order + used, sizeof order - used, "%s%s, ", FNAME[SCFIELDS[ix][k]],
                     SCFIELDS[ix][k] == F_EMAIL ? " COLLATE NOCASE" : "");
        }
        snprintf(sql, sizeof sql, "SELECT %s FROM t WHERE %s%s ORDER BY %sid", sql_cols,
                 SCWHERE[ix], cond, order);
        st_scan[ix][nprefix] = prep(sql);
    }
    return st_scan[ix][nprefix];
}

static void op_scan(fuzz_reader *in)
{
    int ix = fuzz_u8(in) % NSCAN;
    size_t nf = 0;
    while (nf < 3 && SCFIELDS[ix][nf] >= 0)
        nf++;
    size_t np = fuzz_u8(in) % (nf + 1);
    if (np > 2)
        np = 2;
    rec r;
    gen_rec(&r, in);
    r.st[F_ID] = VAL;   /* a pk prefix is a key */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, np);
    for (size_t k = 0; k < np; k++) {
        int f = SCFIELDS[ix][k];
        if (r.st[f] == VAL)
            pack_value(&pk, f, r.v[f]);
        else {
            msgpack_pack_nil(&pk);
            r.st[f] = NIL;
        }
    }
    TRACE("scan %s prefix", SCNAME[ix] ? SCNAME[ix] : "id");
    for (size_t k = 0; k < np; k++) {
        rec one;
        memset(&one, 0, sizeof one);
        one.st[SCFIELDS[ix][k]] = r.st[SCFIELDS[ix][k]];
        one.v[SCFIELDS[ix][k]] = r.v[SCFIELDS[ix][k]];
        trace_rec("", &one);
    }
    TRACE("\n");
    udb_cursor *cur;
    int rc = udb_scan(&cur, txn, "t", SCNAME[ix], np ? sb.data : NULL, np ? sb.size : 0);
    FUZZ_CHECK(rc == 0, "scan: %s", udb_errmsg(txn));
    sqlite3_stmt *st = scan_stmt(ix, (int)np);
    bind_rec(st, &r, false);
    char label[64];
    snprintf(label, sizeof label, "scan of %s", SCNAME[ix] ? SCNAME[ix] : "id");
    compare_cursor(cur, st, label);
    sqlite3_reset(st);
    udb_cursor_close(cur);
    msgpack_sbuffer_destroy(&sb);
}

/*
 * Range scans (udb_scan_range): bounds on a prefix of an index's fields,
 * each inclusive or exclusive, forward or reverse, a limit, and paging with
 * udb_cursor_key -- after a given sort key, or after the last entry of a
 * first page, whose record may be deleted before the second page is read.
 * SQLite's side is a row-value comparison, as SQL writes a keyset page:
 *
 *   WHERE <index's where> AND (a, b) >= (?, ?) AND (a, b) < (?, ?)
 *         [AND (a, b, id) > (?, ?, ?)]
 *   ORDER BY a DESC, b DESC, id DESC LIMIT n
 *
 * except that each value v is the pair (v IS NOT NULL, coalesce(v, 0)):
 * udb's bounds are positions in the index order, where NULL is the
 * smallest value (SQLite's ORDER BY agrees: NULLs first, last with DESC),
 * while SQL's bare (a, b) < (x, y) is NULL, so false, for a row holding a
 * NULL.  The pair compares 0 < 1 first, so NULL sorts below every value,
 * and two NULLs are equal (0, 0).  The sort key udb_cursor_key gives must
 * be SQLite's last row: its index values then its id.
 */
typedef struct rbound {
    int k;               /* values (-1: no bound) */
    bool excl;
    uint8_t st[3], v[3]; /* per value: NIL or VAL, value number */
} rbound;

static size_t scan_nfields(int ix)
{
    size_t nf = 0;
    while (nf < 3 && SCFIELDS[ix][nf] >= 0)
        nf++;
    return nf;
}

static void gen_bound(rbound *b, fuzz_reader *in, int ix)
{
    size_t nf = scan_nfields(ix);
    uint8_t c = fuzz_u8(in);
    b->k = (int)(c % (nf + 2)) - 1;   /* -1: open; 0: an empty array, open too */
    b->excl = (c / 8) % 2;
    for (int i = 0; i < b->k; i++) {
        int f = SCFIELDS[ix][i];
        uint8_t d = fuzz_u8(in);
        b->st[i] = d % 4 == 0 ? NIL : VAL;
        b->v[i] = (uint8_t)((d / 4) % DOM_N[f]);
    }
}

/* The bound as a msgpack array into sb. */
static void pack_bound(msgpack_sbuffer *sb, const rbound *b, int ix)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, (size_t)b->k);
    for (int i = 0; i < b->k; i++) {
        if (b->st[i] == VAL)
            pack_value(&pk, SCFIELDS[ix][i], b->v[i]);
        else
            msgpack_pack_nil(&pk);
    }
}

/* "(a IS NOT NULL, coalesce(a, 0), ...) op (?, ?, ...)" over the first k
 * fields of ix (with_id: then id), appended to sql. */
static void sql_rowcmp(char *sql, size_t cap, int ix, int k, bool with_id, const char *op)
{
    size_t used = strlen(sql);
    used += (size_t)snprintf(sql + used, cap - used, " AND (");
    int n = 0;
    for (int i = 0; i < k + with_id; i++) {
        const char *f = i < k ? FNAME[SCFIELDS[ix][i]] : "id";
        bool nc = i < k && SCFIELDS[ix][i] == F_EMAIL;   /* the nocase field */
        used += (size_t)snprintf(sql + used, cap - used, "%s%s IS NOT NULL, coalesce(%s, 0)%s",
                                 i ? ", " : "", f, f, nc ? " COLLATE NOCASE" : "");
        n += 2;
    }
    used += (size_t)snprintf(sql + used, cap - used, ") %s (", op);
    for (int i = 0; i < n; i++)
        used += (size_t)snprintf(sql + used, cap - used, "%s?", i ? ", " : "");
    snprintf(sql + used, cap - used, ")");
}

/* The sort key position of a page's last row: its index values, then id. */
typedef struct lastrow {
    bool some;
    sqlite3_value *v[4];
} lastrow;

static void lastrow_free(lastrow *l)
{
    for (int i = 0; i < 4; i++)
        sqlite3_value_free(l->v[i]);
    memset(l, 0, sizeof *l);
}

/* The statement for a range of ix: rows after SQLite's row l (a second
 * page), or after the generated sort key a, or (both NULL) neither. */
static sqlite3_stmt *range_stmt(int ix, const rbound *lo, const rbound *hi, bool reverse,
                                unsigned limit, const lastrow *l, const rbound *a)
{
    char sql[2048];
    size_t nf = scan_nfields(ix);
    bool pk = ix == SC_PK;
    snprintf(sql, sizeof sql, "SELECT %s FROM t WHERE %s", sql_cols, SCWHERE[ix]);
    if (lo->k > 0)
        sql_rowcmp(sql, sizeof sql, ix, lo->k, false, lo->excl ? ">" : ">=");
    if (hi->k > 0)
        sql_rowcmp(sql, sizeof sql, ix, hi->k, false, hi->excl ? "<" : "<=");
    if (l || a)
        sql_rowcmp(sql, sizeof sql, ix, (int)nf, !pk, reverse ? "<" : ">");
    size_t used = strlen(sql);
    used += (size_t)snprintf(sql + used, sizeof sql - used, " ORDER BY ");
    for (size_t i = 0; i < nf; i++)
        used += (size_t)snprintf(sql + used, sizeof sql - used, "%s%s%s, ",
                                 FNAME[SCFIELDS[ix][i]],
                                 SCFIELDS[ix][i] == F_EMAIL ? " COLLATE NOCASE" : "",
                                 reverse ? " DESC" : "");
    used += (size_t)snprintf(sql + used, sizeof sql - used, "id%s", reverse ? " DESC" : "");
    if (limit)
        snprintf(sql + used, sizeof sql - used, " LIMIT %u", limit);
    sqlite3_stmt *st = prep(sql);
    int col = 1;
    const rbound *bs[2] = {lo, hi};
    for (int j = 0; j < 2; j++)
        for (int i = 0; i < bs[j]->k; i++) {
            bool val = bs[j]->st[i] == VAL;
            sqlite3_bind_int(st, col++, val);
            if (val)
                bind_value(st, col++, SCFIELDS[ix][i], bs[j]->v[i]);
            else
                sqlite3_bind_int(st, col++, 0);
        }
    size_t nkey = nf + !pk;
    for (size_t i = 0; i < nkey && (l || a); i++) {
        int f = i < nf ? SCFIELDS[ix][i] : F_ID;
        bool val;
        if (l) {
            val = sqlite3_value_type(l->v[i]) != SQLITE_NULL;
            sqlite3_bind_int(st, col++, val);
            if (val)
                sqlite3_bind_value(st, col++, l->v[i]);
            else
                sqlite3_bind_int(st, col++, 0);
        } else {
            val = a->st[i] == VAL;
            sqlite3_bind_int(st, col++, val);
            if (val)
                bind_value(st, col++, f, a->v[i]);
            else
                sqlite3_bind_int(st, col++, 0);
        }
    }
    return st;
}

/* A sort key's value against the row's: the nocase email field's key holds
 * its ASCII letters folded to lower case, the row its own spelling. */
static bool same_key_cell(const msgpack_object *o, sqlite3_stmt *st, int f)
{
    if (f != F_EMAIL || !o || o->type != MSGPACK_OBJECT_STR ||
        sqlite3_column_type(st, f) != SQLITE_TEXT)
        return same_cell(o, st, f, f);
    const unsigned char *t = sqlite3_column_text(st, f);
    size_t n = (size_t)sqlite3_column_bytes(st, f);
    if (n != o->via.str.size)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = t[i] >= 'A' && t[i] <= 'Z' ? (unsigned char)(t[i] + 32) : t[i];
        if (c != (unsigned char)o->via.str.ptr[i])
            return false;
    }
    return true;
}

/* Step a range cursor and SQLite's rows in lock step (compare_cursor), and
 * keep SQLite's last row's sort key in *l; its udb sort key must be the same. */
static size_t compare_range(udb_cursor *cur, sqlite3_stmt *st, int ix, lastrow *l,
                            const char *label)
{
    size_t nf = scan_nfields(ix), nkey = nf + (ix != SC_PK), n = 0;
    lastrow_free(l);
    udb_val v;
    for (; step_both(&v, cur, st, label, n); n++) {
        char what[160];
        snprintf(what, sizeof what, "%s, entry %zu", label, n);
        /* the sort key: SQLite's index values and id */
        udb_val key;
        FUZZ_CHECK(udb_cursor_key(&key, cur) == 0, "%s: udb_cursor_key: %s", what,
                   udb_errmsg(txn));
        msgpack_object k;
        const char *why = NULL;
        FUZZ_CHECK(decode(&k, key.data, key.size, &why) && k.type == MSGPACK_OBJECT_ARRAY &&
                       k.via.array.size == nkey,
                   "%s: the sort key is not an array of %zu values", what, nkey);
        lastrow_free(l);
        l->some = true;
        for (size_t i = 0; i < nkey; i++) {
            int f = i < nf ? SCFIELDS[ix][i] : F_ID;
            FUZZ_CHECK(same_key_cell(&k.via.array.ptr[i], st, f),
                       "%s: sort key value %zu is not the row's %s", what, i, FNAME[f]);
            FUZZ_CHECK((l->v[i] = sqlite3_value_dup(sqlite3_column_value(st, f))) != NULL,
                       "out of memory");
        }
    }
    return n;
}

static void trace_bound(const char *name, const rbound *b, int ix)
{
    if (!trace)
        return;
    if (b->k < 0) {
        fprintf(stderr, " %s open", name);
        return;
    }
    fprintf(stderr, " %s%s [", name, b->excl ? " excl" : "");
    for (int i = 0; i < b->k; i++) {
        rec one;
        memset(&one, 0, sizeof one);
        one.st[SCFIELDS[ix][i]] = b->st[i];
        one.v[SCFIELDS[ix][i]] = b->v[i];
        trace_rec("", &one);
    }
    fprintf(stderr, " ]");
}

static void op_range(fuzz_reader *in)
{
    int ix = fuzz_u8(in) % NSCAN;
    rbound lo, hi, a;
    memset(&a, 0, sizeof a);
    gen_bound(&lo, in, ix);
    gen_bound(&hi, in, ix);
    uint8_t c = fuzz_u8(in);
    bool reverse = c % 2;
    unsigned limit = (c / 2) % 6;               /* 0: no limit */
    int mode = (c / 12) % 4;                    /* 0, 1: one scan; 2: after a given key;
                                                   3: a second page */
    bool del = (c / 48) % 2;                    /* mode 3: delete the page's last record */
    size_t nf = scan_nfields(ix), nkey = nf + (ix != SC_PK);
    msgpack_sbuffer sa;
    msgpack_sbuffer_init(&sa);
    if (mode == 2) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sa, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, nkey);
        for (size_t i = 0; i < nkey; i++) {
            int f = i < nf ? SCFIELDS[ix][i] : F_ID;
            uint8_t d = fuzz_u8(in);
            a.st[i] = f != F_ID && d % 4 == 0 ? NIL : VAL;
            a.v[i] = (uint8_t)((d / 4) % DOM_N[f]);
            if (a.st[i] == VAL)
                pack_value(&pk, f, a.v[i]);
            else
                msgpack_pack_nil(&pk);
        }
    }
    TRACE("range %s%s limit %u mode %d%s", SCNAME[ix] ? SCNAME[ix] : "id",
          reverse ? " reverse" : "", limit, mode, del ? " del" : "");
    trace_bound("lo", &lo, ix);
    trace_bound("hi", &hi, ix);
    TRACE("\n");
    msgpack_sbuffer slo, shi;
    pack_bound(&slo, &lo, ix);
    pack_bound(&shi, &hi, ix);
    udb_range r = UDB_RANGE_INIT;
    if (lo.k >= 0)
        r.lo = (udb_val){slo.data, slo.size};
    if (hi.k >= 0)
        r.hi = (udb_val){shi.data, shi.size};
    r.flags = (lo.excl ? UDB_LO_EXCL : 0) | (hi.excl ? UDB_HI_EXCL : 0) |
              (reverse ? UDB_REVERSE : 0);
    r.limit = limit;
    if (mode == 2)
        r.after = (udb_val){sa.data, sa.size};
    udb_cursor *cur;
    int rc = udb_scan_range(&cur, txn, "t", SCNAME[ix], &r);
    FUZZ_CHECK(rc == 0, "range scan: %s", udb_errmsg(txn));
    sqlite3_stmt *st = range_stmt(ix, &lo, &hi, reverse, limit, NULL, mode == 2 ? &a : NULL);
    char label[64];
    snprintf(label, sizeof label, "range of %s", SCNAME[ix] ? SCNAME[ix] : "id");
    lastrow l;
    memset(&l, 0, sizeof l);
    size_t n = compare_range(cur, st, ix, &l, label);
    sqlite3_finalize(st);
    if (mode == 3 && n > 0) {
        /* the next page, after udb's sort key (SQLite: after its last row) */
        udb_val key;
        FUZZ_CHECK(udb_cursor_key(&key, cur) == 0, "udb_cursor_key: %s", udb_errmsg(txn));
        msgpack_sbuffer_write(&sa, key.data, key.size);   /* copied: the cursor goes */
        udb_cursor_close(cur);
        if (del) {
            int64_t id = sqlite3_value_int64(l.v[nkey - 1]);
            TRACE("delete %" PRId64 " (the page's last)\n", id);
            msgpack_sbuffer sk;
            pack_key(&sk, (unsigned)id);
            FUZZ_CHECK(udb_delete(txn, "t", sk.data, sk.size) == 0, "delete: %s",
                       udb_errmsg(txn));
            msgpack_sbuffer_destroy(&sk);
            sqlite3_reset(st_delete);
            sqlite3_bind_int64(st_delete, 1, id);
            FUZZ_CHECK(sql_run(st_delete) == O_OK && sqlite3_changes(db) == 1, "sql delete");
        }
        r.after = (udb_val){sa.data, sa.size};
        FUZZ_CHECK(udb_scan_range(&cur, txn, "t", SCNAME[ix], &r) == 0, "range scan: %s",
                   udb_errmsg(txn));
        st = range_stmt(ix, &lo, &hi, reverse, limit, &l, NULL);
        snprintf(label, sizeof label, "next page of %s", SCNAME[ix] ? SCNAME[ix] : "id");
        compare_range(cur, st, ix, &l, label);
        sqlite3_finalize(st);
    }
    udb_cursor_close(cur);
    lastrow_free(&l);
    msgpack_sbuffer_destroy(&slo);
    msgpack_sbuffer_destroy(&shi);
    msgpack_sbuffer_destroy(&sa);
}

static void expect_consistent(void)
{
    fuzz_expect_check(env, "after commit");
}

static void begin(void)
{
    FUZZ_CHECK(udb_begin(&txn, env, 0) == 0, "begin: %s", udb_env_errmsg(env));
    exec("BEGIN");
}

static void commit(void)
{
    TRACE("commit\n");
    int rc = udb_commit(txn);
    txn = NULL;
    FUZZ_CHECK(rc == 0, "commit: %s", udb_strerror(rc));
    exec("COMMIT");
    expect_consistent();
    compare_all("after commit");
}

static void rollback(void)
{
    TRACE("abort\n");
    udb_abort(txn);
    txn = NULL;
    exec("ROLLBACK");
    compare_all("after abort");
}

/* udb_write between transactions: one insert (or insert_or_get) that commits
 * or rolls back by itself -- a statement in SQLite's autocommit mode. */
typedef struct wctx {
    rec r;
    msgpack_sbuffer sb;
    int rc;
    bool stored;
    unsigned char out[4096];
    size_t outlen;
    const char *errmsg;
} wctx;

static int write_fn(udb_txn *t, void *ctx)
{
    wctx *w = ctx;
    udb_val out;
    w->rc = udb_insert(&out, t, "t", w->sb.data, w->sb.size);
    if (w->rc == 0 && out.size <= sizeof w->out) {
        memcpy(w->out, out.data, out.size);
        w->outlen = out.size;
        w->stored = true;
    }
    return w->rc;
}

static void op_write(fuzz_reader *in)
{
    wctx w;
    memset(&w, 0, sizeof w);
    gen_rec(&w.r, in);
    TRACE("udb_write insert");
    trace_rec("", &w.r);
    TRACE("\n");
    pack_rec(&w.sb, &w.r);
    commit();
    int rc = udb_write(env, write_fn, &w);
    FUZZ_CHECK(rc == w.rc, "udb_write returned %d, fn %d", rc, w.rc);
    bind_rec(st_insert, &w.r, false);
    outcome s = sql_run(st_insert);
    expect_outcome(from_udb(rc), s, "udb_write insert");
    if (rc == 0) {
        udb_val v = {w.out, w.outlen};
        FUZZ_CHECK(w.stored, "record too large for the test buffer");
        expect_row(&v, sqlite3_last_insert_rowid(db), "udb_write insert");
        expect_consistent();
    }
    compare_all("after udb_write");
    msgpack_sbuffer_destroy(&w.sb);
    begin();
}

/* Empty both databases (committed), so every input starts alike. */
static void reset(void)
{
    FUZZ_CHECK(udb_begin(&txn, env, 0) == 0, "begin");
    for (;;) {
        udb_cursor *cur;
        FUZZ_CHECK(udb_scan(&cur, txn, "t", NULL, NULL, 0) == 0, "scan");
        uint64_t keys[64];
        size_t n = 0;
        udb_val v;
        int rc;
        while (n < 64 && (rc = udb_cursor_next(&v, cur)) == 0) {
            msgpack_object r;
            FUZZ_CHECK(decode(&r, v.data, v.size, NULL) && r.type == MSGPACK_OBJECT_MAP,
                       "stored record");
            const msgpack_object *id = map_get(&r, "id");
            FUZZ_CHECK(id && id->type == MSGPACK_OBJECT_POSITIVE_INTEGER, "stored id");
            keys[n++] = id->via.u64;
        }
        udb_cursor_close(cur);
        if (n == 0)
            break;
        for (size_t i = 0; i < n; i++) {
            msgpack_sbuffer sk;
            pack_key(&sk, (unsigned)keys[i]);
            FUZZ_CHECK(udb_delete(txn, "t", sk.data, sk.size) == 0, "reset delete");
            msgpack_sbuffer_destroy(&sk);
        }
    }
    FUZZ_CHECK(udb_seq_set(txn, "t.id", 0) == 0 && udb_seq_set(txn, "s", 0) == 0, "seq reset");
    FUZZ_CHECK(udb_commit(txn) == 0, "commit");
    txn = NULL;
    exec("DELETE FROM t; DELETE FROM sqlite_sequence; DELETE FROM seqs");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_reader in;
    fuzz_reader_init(&in, data, size);
    reset();
    begin();
    while (fuzz_more(&in)) {
        uint8_t op = fuzz_u8(&in);
        nops++;
        switch (op % 22) {
        case 0: case 1: case 2: case 3: op_insert(&in); break;
        case 4: case 5: op_insert_or_get(&in); break;
        case 6: case 7: op_upsert(&in); break;
        case 8: op_update(&in, false); break;
        case 9: case 10: op_update(&in, true); break;
        case 11: op_delete(&in); break;
        case 12: op_insert_first(&in); break;
        case 13: op_seq_next(&in); break;
        case 14: commit(); begin(); break;
        case 15: rollback(); begin(); break;
        case 16: op_get(&in); break;
        case 17: op_find(&in); break;
        case 18: op_write(&in); break;
        case 19: op_scan(&in); break;
        default: op_range(&in); break;
        }
        compare_all("after operation");
    }
    rollback();
    return 0;
}
