/*
 * fuzz_schema.c -- schema JSON and partial-index predicates from outside.
 *
 * Input byte 0 picks the mode:
 *   even  the rest is schema JSON.  It parses (udb__schema_parse) or fails
 *         with UDB_ESCHEMA and a message.  What parses has a canonical text
 *         that parses to itself; it applies to a new database; the stored
 *         text (udb_schema_json) is the canonical text; applying either text
 *         again is a no-op; a record with the required fields of each type
 *         can be inserted (or is refused cleanly) and udb_check passes.
 *         "collate": "nocase" is on str index fields only (the corpus has
 *         schema_nocase*).
 *   odd   the rest is a `where` predicate over a fixed type with a field of
 *         every type.  It parses or fails with a message; its canonical text
 *         (udb__pred_print) parses to the same predicate; embedded in a
 *         schema it is accepted exactly when it parses alone.  With SQLite
 *         available, the predicate is also evaluated by SQLite on a handful
 *         of records built from its own literals: the records udb puts in
 *         the partial index must be exactly those SQLite's WHERE selects.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef UDB_HAVE_SQLITE
#include <sqlite3.h>
#endif

#include "fuzz.h"
#include "mpack.h"
#include "schema.h"

static char dbdir[4200];

static udb_env *fresh_env(void)
{
    if (!dbdir[0])
        snprintf(dbdir, sizeof dbdir, "%s/db", fuzz_scratch_dir());
    FUZZ_CHECK(fuzz_wipe_dir(dbdir) == 0, "cannot wipe %s", dbdir);
    udb_options o = UDB_OPTIONS_INIT;
    o.flags = UDB_NOSYNC;
    udb_env *env = NULL;
    int rc = udb_open(&env, dbdir, &o);
    FUZZ_CHECK(rc == 0, "udb_open: %s", udb_env_errmsg(NULL));
    return env;
}

static void expect_check(udb_env *env)
{
    fuzz_expect_check(env, "after inserting");
}

/* A value of field f's type, for a record that must pass validation. */
static void pack_default(msgpack_packer *pk, const udb_field *f)
{
    switch (f->type) {
    case UDB_F_STR: msgpack_pack_str_with_body(pk, "", 0); break;
    case UDB_F_INT:
    case UDB_F_UINT: msgpack_pack_uint64(pk, 0); break;
    case UDB_F_FLOAT: msgpack_pack_double(pk, 0.5); break;
    case UDB_F_BOOL: msgpack_pack_false(pk); break;
    case UDB_F_BIN: msgpack_pack_bin_with_body(pk, "", 0); break;
    case UDB_F_ENUM:
        msgpack_pack_str_with_body(pk, f->values[0], strlen(f->values[0]));
        break;
    case UDB_F_ANY: msgpack_pack_int(pk, 1); break;
    }
}

/* ---- schema mode ------------------------------------------------------------ */

static void schema_mode(const uint8_t *data, size_t size)
{
    udb_schema *s = NULL;
    udb_buf msg = {0};
    int rc = udb__schema_parse(&s, (const char *)data, size, &msg);
    FUZZ_CHECK(rc == 0 || rc == UDB_ESCHEMA, "schema_parse returned %s", udb_strerror(rc));
    if (rc) {
        FUZZ_CHECK(msg.len > 0, "schema refused without a message");
        FUZZ_CHECK(!s, "schema refused but returned");
        udb__buf_free(&msg);
        return;
    }
    udb__buf_free(&msg);
    FUZZ_CHECK(s && s->json && s->json_len == strlen(s->json), "no canonical text");
    for (size_t i = 0; i < s->ntypes; i++) {
        const udb_type *t = &s->types[i];
        FUZZ_CHECK(t->nidx == 1 + t->nunique + t->nplain && t->idx[0].is_pk,
                   "type %s: index table is inconsistent", t->name);
        for (size_t x = 1; x < t->nidx; x++) {
            const udb_index *ix = &t->idx[x];
            FUZZ_CHECK(ix->unique == (x <= t->nunique) && !ix->is_pk,
                       "type %s: unique indexes do not come first", t->name);
            /* "collate": "nocase" only on str fields */
            bool any = false;
            for (size_t k = 0; k < ix->nfields; k++) {
                FUZZ_CHECK(!ix->nocase[k] || t->fields[ix->fields[k]].type == UDB_F_STR,
                           "type %s, index %s: nocase on a %s field", t->name, ix->name,
                           udb__ftype_name(t->fields[ix->fields[k]].type));
                any |= ix->nocase[k];
            }
            FUZZ_CHECK(any == ix->any_nocase, "type %s, index %s: any_nocase", t->name, ix->name);
        }
        FUZZ_CHECK(strcmp(s->type_names[i], t->name) == 0, "type_names out of order");
    }

    /* the canonical text is a fixpoint */
    udb_schema *s2 = NULL;
    rc = udb__schema_parse(&s2, s->json, s->json_len, &msg);
    FUZZ_CHECK(rc == 0, "canonical text does not parse: %s\n%s", msg.p ? (char *)msg.p : "",
               s->json);
    FUZZ_CHECK(s2->json_len == s->json_len && memcmp(s2->json, s->json, s->json_len) == 0,
               "canonical text is not canonical:\n%s\n%s", s->json, s2->json);
    udb__schema_free(s2);
    udb__buf_free(&msg);

    /* it applies, is stored as the canonical text, and re-applies as a no-op */
    udb_env *env = fresh_env();
    rc = udb_schema_apply(NULL, env, (const char *)data, size, 0);
    FUZZ_CHECK(rc == 0, "a schema that parses does not apply: %s", udb_env_errmsg(env));
    char *stored = NULL;
    rc = udb_schema_json(&stored, env);
    FUZZ_CHECK(rc == 0 && strcmp(stored, s->json) == 0, "stored schema is not the canonical text");
    udb_free(stored);
    FUZZ_CHECK(udb_schema_apply(NULL, env, s->json, s->json_len, 0) == 0,
               "re-applying the canonical text: %s", udb_env_errmsg(env));
    FUZZ_CHECK(udb_schema_apply(NULL, env, (const char *)data, size, 0) == 0, "re-applying: %s",
               udb_env_errmsg(env));

    /* a minimal record per type goes in (or is refused cleanly) */
    udb_txn *txn;
    FUZZ_CHECK(udb_begin(&txn, env, 0) == 0, "begin");
    const char *const *names;
    size_t ntypes;
    FUZZ_CHECK(udb_types(&names, &ntypes, txn) == 0 && ntypes == s->ntypes, "udb_types");
    for (size_t i = 0; i < s->ntypes; i++) {
        const udb_type *t = &s->types[i];
        FUZZ_CHECK(strcmp(names[i], t->name) == 0, "udb_types order");
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        size_t n = 0;
        for (size_t f = 0; f < t->nfields; f++)
            n += t->fields[f].required || f == t->key;
        msgpack_pack_map(&pk, n);
        for (size_t f = 0; f < t->nfields; f++) {
            if (!t->fields[f].required && f != t->key)
                continue;
            msgpack_pack_str_with_body(&pk, t->fields[f].name, strlen(t->fields[f].name));
            pack_default(&pk, &t->fields[f]);
        }
        rc = udb_insert(NULL, txn, t->name, sb.data, sb.size);
        FUZZ_CHECK(rc == 0 || rc == UDB_EKEYTOOLONG, "inserting a minimal %s: %s", t->name,
                   udb_errmsg(txn));
        msgpack_sbuffer_destroy(&sb);
    }
    FUZZ_CHECK(udb_commit(txn) == 0, "commit");
    expect_check(env);
    /* with records stored, the same schema is still a no-op */
    FUZZ_CHECK(udb_schema_apply(NULL, env, s->json, s->json_len, 0) == 0,
               "re-applying with records: %s", udb_env_errmsg(env));
    expect_check(env);
    udb_close(env);
    udb__schema_free(s);
}

/* ---- where mode ------------------------------------------------------------ */

/* A field of every type; "order" is an SQL keyword (the canonical text
 * must still be SQL, so it has to quote it). */
static const char WHERE_TYPE[] =
    "{\"key\": \"k\", \"fields\": {"
    " \"k\": {\"type\": \"int\"}, \"s\": {\"type\": \"str\"}, \"i\": {\"type\": \"int\"},"
    " \"u\": {\"type\": \"uint\"}, \"f\": {\"type\": \"float\"}, \"b\": {\"type\": \"bool\"},"
    " \"bin\": {\"type\": \"bin\"},"
    " \"e\": {\"type\": \"enum\", \"values\": [\"a\", \"b\", \"it's\"]},"
    " \"any\": {\"type\": \"any\"}, \"order\": {\"type\": \"int\"}}}";

static udb_schema *where_schema;

static const udb_type *where_type(void)
{
    if (!where_schema) {
        char json[1024];
        udb_buf msg = {0};
        snprintf(json, sizeof json, "{\"types\": {\"t\": %s}}", WHERE_TYPE);
        FUZZ_CHECK(udb__schema_parse(&where_schema, json, strlen(json), &msg) == 0,
                   "fixed schema: %s", msg.p ? (char *)msg.p : "");
        udb__buf_free(&msg);
    }
    return &where_schema->types[0];
}

static bool same_pred(const udb_pred *a, const udb_pred *b)
{
    if (a->nterms != b->nterms)
        return false;
    for (size_t i = 0; i < a->nterms; i++) {
        const udb_pterm *x = &a->terms[i], *y = &b->terms[i];
        if (x->field != y->field || x->op != y->op || x->nlits != y->nlits)
            return false;
        for (size_t j = 0; j < x->nlits; j++) {
            const udb_lit *l = &x->lits[j], *m = &y->lits[j];
            if (l->kind != m->kind)
                return false;
            if (l->kind == UDB_L_STR && (l->n != m->n || memcmp(l->s, m->s, l->n) != 0))
                return false;
            if (l->kind == UDB_L_INT && l->i != m->i)
                return false;
            if (l->kind == UDB_L_BOOL && l->b != m->b)
                return false;
        }
    }
    return true;
}

/* The schema with the predicate on a non-unique index (no conflicts: every
 * admitted record is in it) and on a unique one.  NULL if text is not a
 * JSON string (invalid UTF-8). */
static char *schema_with_where(const char *text, size_t len)
{
    json_t *w = json_stringn(text, len);
    if (!w)
        return NULL;
    char head[1024];
    snprintf(head, sizeof head, "{\"types\": {\"t\": %s}}", WHERE_TYPE);
    json_error_t err;
    json_t *root = json_loads(head, 0, &err);
    FUZZ_CHECK(root, "fixed schema: %s", err.text);
    json_t *t = json_object_get(json_object_get(root, "types"), "t");
    json_object_set_new(t, "indexes",
                        json_pack("{s{s[s]sO}}", "w", "fields", "k", "where", w));
    json_object_set_new(t, "unique",
                        json_pack("{s{s[s]sO}}", "uw", "fields", "s", "where", w));
    char *out = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    json_decref(w);
    FUZZ_CHECK(out, "json_dumps");
    return out;
}

#define NREC 8
#define MAXCAND 12

typedef struct cand {
    bool null;
    const udb_lit *lit;   /* NULL: the field's default value */
} cand;

/* Candidate values per field: NULL, a default, and the predicate's own
 * literals for that field (so the predicate is sometimes true). */
static size_t candidates(cand *out, const udb_pred *p, size_t field)
{
    size_t n = 0;
    out[n++] = (cand){true, NULL};
    out[n++] = (cand){false, NULL};
    for (size_t i = 0; i < p->nterms; i++)
        for (size_t j = 0; p->terms[i].field == field && j < p->terms[i].nlits && n < MAXCAND; j++)
            out[n++] = (cand){false, &p->terms[i].lits[j]};
    return n;
}

typedef struct rec {
    cand v[16];
} rec;

static void pack_value(msgpack_packer *pk, const udb_field *f, const cand *c)
{
    if (!c->lit) {
        pack_default(pk, f);
        return;
    }
    switch (c->lit->kind) {
    case UDB_L_STR: msgpack_pack_str_with_body(pk, c->lit->s, c->lit->n); break;
    case UDB_L_BOOL: c->lit->b ? msgpack_pack_true(pk) : msgpack_pack_false(pk); break;
    case UDB_L_INT:
        if (f->type == UDB_F_FLOAT)
            msgpack_pack_double(pk, (double)c->lit->i);
        else
            msgpack_pack_int64(pk, c->lit->i);
        break;
    }
}

/* Is the record acceptable to udb at all (types)?  Literals were type-checked
 * against their field at parse time; only a negative literal for a uint field
 * does not fit. */
static bool storable(const udb_field *f, const cand *c)
{
    return c->null || !c->lit || c->lit->kind != UDB_L_INT || f->type != UDB_F_UINT ||
           c->lit->i >= 0;
}

#ifdef UDB_HAVE_SQLITE
static void sql_bind(sqlite3_stmt *st, int col, const udb_field *f, const cand *c)
{
    if (c->null) {
        sqlite3_bind_null(st, col);
        return;
    }
    if (!c->lit) {
        switch (f->type) {
        case UDB_F_STR: sqlite3_bind_text(st, col, "", 0, SQLITE_STATIC); break;
        case UDB_F_INT:
        case UDB_F_UINT: sqlite3_bind_int64(st, col, 0); break;
        case UDB_F_FLOAT: sqlite3_bind_double(st, col, 0.5); break;
        case UDB_F_BOOL: sqlite3_bind_int(st, col, 0); break;
        case UDB_F_BIN: sqlite3_bind_blob(st, col, "", 0, SQLITE_STATIC); break;
        case UDB_F_ENUM: sqlite3_bind_text(st, col, f->values[0], -1, SQLITE_STATIC); break;
        case UDB_F_ANY: sqlite3_bind_int(st, col, 1); break;
        }
        return;
    }
    switch (c->lit->kind) {
    case UDB_L_STR: sqlite3_bind_text(st, col, c->lit->s, (int)c->lit->n, SQLITE_STATIC); break;
    case UDB_L_BOOL: sqlite3_bind_int(st, col, c->lit->b); break;
    case UDB_L_INT:
        if (f->type == UDB_F_FLOAT)
            sqlite3_bind_double(st, col, (double)c->lit->i);
        else
            sqlite3_bind_int64(st, col, c->lit->i);
        break;
    }
}

/* Keys of the records SQLite's WHERE selects, as a bit set. */
static unsigned sqlite_select(const udb_type *t, const rec *recs, const bool *stored,
                              const char *where)
{
    static sqlite3 *db;
    if (!db) {
        FUZZ_CHECK(sqlite3_open(":memory:", &db) == SQLITE_OK, "sqlite3_open");
        FUZZ_CHECK(sqlite3_exec(db, "CREATE TABLE t(k INTEGER PRIMARY KEY, s TEXT, i INTEGER, "
                                    "u INTEGER, f REAL, b INTEGER, bin BLOB, e TEXT, any ANY, "
                                    "\"order\" INTEGER)",
                                NULL, NULL, NULL) == SQLITE_OK,
                   "create: %s", sqlite3_errmsg(db));
    }
    FUZZ_CHECK(sqlite3_exec(db, "DELETE FROM t", NULL, NULL, NULL) == SQLITE_OK, "delete");
    sqlite3_stmt *st = NULL;
    FUZZ_CHECK(sqlite3_prepare_v2(db, "INSERT INTO t VALUES(?,?,?,?,?,?,?,?,?,?)", -1, &st, NULL) ==
                   SQLITE_OK, "prepare insert");
    for (int r = 0; r < NREC; r++) {
        if (!stored[r])
            continue;
        sqlite3_reset(st);
        sqlite3_bind_int(st, 1, r);
        for (size_t f = 1; f < t->nfields; f++)
            sql_bind(st, (int)f + 1, &t->fields[f], &recs[r].v[f]);
        FUZZ_CHECK(sqlite3_step(st) == SQLITE_DONE, "sqlite insert: %s", sqlite3_errmsg(db));
    }
    sqlite3_finalize(st);
    char sql[8192];
    if (snprintf(sql, sizeof sql, "SELECT k FROM t WHERE %s", where) >= (int)sizeof sql)
        return ~0u;   /* too long to compare */
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    FUZZ_CHECK(rc == SQLITE_OK, "SQLite cannot evaluate the canonical predicate: %s\n  %s",
               sqlite3_errmsg(db), sql);
    unsigned set = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        set |= 1u << sqlite3_column_int(st, 0);
    FUZZ_CHECK(rc == SQLITE_DONE, "sqlite: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return set;
}
#endif

/* Store records built from the predicate's literals; the partial index
 * must hold exactly those that satisfy it, by SQLite's reckoning. */
static void where_records(const char *schema_json, const udb_pred *p, const char *canon,
                          const uint8_t *data, size_t size)
{
    const udb_type *t = where_type();
    udb_env *env = fresh_env();
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 16777619u;
    int rc = udb_schema_apply(NULL, env, schema_json, strlen(schema_json), 0);
    FUZZ_CHECK(rc == 0, "a schema that parses does not apply: %s", udb_env_errmsg(env));
    udb_txn *txn;
    FUZZ_CHECK(udb_begin(&txn, env, 0) == 0, "begin");
    rec recs[NREC];
    bool stored[NREC] = {0};
    for (int r = 0; r < NREC; r++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        size_t n = 1;
        bool ok = true;
        for (size_t f = 1; f < t->nfields; f++) {
            cand c[MAXCAND];
            size_t nc = candidates(c, p, f);
            h = h * 1103515245u + 12345u;
            recs[r].v[f] = c[(h >> 8) % nc];
            n += !recs[r].v[f].null;
            ok &= storable(&t->fields[f], &recs[r].v[f]);
        }
        if (!ok) {
            msgpack_sbuffer_destroy(&sb);
            continue;
        }
        msgpack_pack_map(&pk, n);
        msgpack_pack_str_with_body(&pk, "k", 1);
        msgpack_pack_int(&pk, r);
        for (size_t f = 1; f < t->nfields; f++) {
            if (recs[r].v[f].null)
                continue;
            msgpack_pack_str_with_body(&pk, t->fields[f].name, strlen(t->fields[f].name));
            pack_value(&pk, &t->fields[f], &recs[r].v[f]);
        }
        rc = udb_insert(NULL, txn, "t", sb.data, sb.size);
        FUZZ_CHECK(rc == 0 || rc == UDB_ECONFLICT || rc == UDB_EKEYTOOLONG, "insert: %s",
                   udb_errmsg(txn));
        stored[r] = rc == 0;
        msgpack_sbuffer_destroy(&sb);
    }
    FUZZ_CHECK(udb_commit(txn) == 0, "commit");
    expect_check(env);

    FUZZ_CHECK(udb_begin(&txn, env, UDB_RDONLY) == 0, "begin");
    udb_cursor *cur;
    FUZZ_CHECK(udb_scan(&cur, txn, "t", "w", NULL, 0) == 0, "scan: %s", udb_errmsg(txn));
    unsigned in_index = 0;
    udb_val v;
    while ((rc = udb_cursor_next(&v, cur)) == 0) {
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        FUZZ_CHECK(udb__mp_parse(&up, v.data, v.size, NULL) == 0, "stored record");
        const msgpack_object *k = &up.data.via.map.ptr[0].val;   /* the key comes first */
        FUZZ_CHECK(k->type == MSGPACK_OBJECT_POSITIVE_INTEGER && k->via.u64 < NREC, "key");
        in_index |= 1u << k->via.u64;
        msgpack_unpacked_destroy(&up);
    }
    FUZZ_CHECK(rc == UDB_ENOTFOUND, "cursor: %s", udb_strerror(rc));
    udb_cursor_close(cur);
    udb_abort(txn);
#ifdef UDB_HAVE_SQLITE
    unsigned want = sqlite_select(t, recs, stored, canon);
    FUZZ_CHECK(want == ~0u || want == in_index,
               "partial index holds records 0x%02x, SQLite's WHERE selects 0x%02x\n  where: %s",
               in_index, want, canon);
#else
    (void)canon;
#endif
    udb_close(env);
}

static void where_mode(const uint8_t *data, size_t size)
{
    const udb_type *t = where_type();
    char *text = malloc(size + 1);
    FUZZ_CHECK(text, "out of memory");
    memcpy(text, data, size);
    text[size] = 0;
    udb_pred p;
    udb_buf msg = {0};
    int rc = udb__pred_parse(&p, t->fields, t->nfields, text, &msg);
    FUZZ_CHECK(rc == 0 || rc == UDB_ESCHEMA, "pred_parse returned %s", udb_strerror(rc));
    FUZZ_CHECK(rc == 0 || msg.len > 0, "predicate refused without a message");
    udb_buf canon = {0}, canon2 = {0};
    if (rc == 0) {
        udb__pred_print(&canon, &p, t->fields);
        FUZZ_CHECK(!canon.oom && canon.p, "print");
        msg.len = 0;
        udb_pred p2;
        rc = udb__pred_parse(&p2, t->fields, t->nfields, (char *)canon.p, &msg);
        FUZZ_CHECK(rc == 0, "canonical predicate does not parse: %s\n  %s",
                   msg.p ? (char *)msg.p : "", (char *)canon.p);
        FUZZ_CHECK(same_pred(&p, &p2), "canonical predicate parses differently: %s",
                   (char *)canon.p);
        udb__pred_print(&canon2, &p2, t->fields);
        FUZZ_CHECK(canon2.len == canon.len && memcmp(canon2.p, canon.p, canon.len) == 0,
                   "canonical predicate is not canonical:\n  %s\n  %s", (char *)canon.p,
                   (char *)canon2.p);
        udb__pred_free(&p2);
        rc = 0;
    }

    /* inside a schema: accepted iff it parses alone (the JSON string carries
       every byte, so a NUL must not cut the predicate short) */
    char *json = schema_with_where(text, size);
    if (json) {
        udb_buf smsg = {0};
        udb_schema *s = NULL;
        int src = udb__schema_parse(&s, json, strlen(json), &smsg);
        bool has_nul = memchr(text, 0, size) != NULL;
        FUZZ_CHECK(src == 0 || src == UDB_ESCHEMA, "schema_parse returned %s", udb_strerror(src));
        FUZZ_CHECK((src == 0) == (rc == 0 && !has_nul),
                   "predicate alone: %s; in a schema: %s (%s)", rc ? "refused" : "accepted",
                   src ? "refused" : "accepted", smsg.p ? (char *)smsg.p : "");
        if (src == 0) {
            const udb_index *w = udb__type_index(&s->types[0], "w");
            FUZZ_CHECK(w && w->where && strcmp(w->where, (char *)canon.p) == 0,
                       "schema keeps a different predicate text");
            where_records(json, &p, (char *)canon.p, data, size);
        }
        udb__schema_free(s);
        udb__buf_free(&smsg);
        free(json);
    }
    if (rc == 0)
        udb__pred_free(&p);
    udb__buf_free(&msg);
    udb__buf_free(&canon);
    udb__buf_free(&canon2);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] % 2 == 0)
        schema_mode(data + 1, size - 1);
    else
        where_mode(data + 1, size - 1);
    return 0;
}
