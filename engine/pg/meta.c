/*
 * meta.c -- the database's state on the server ("$meta", "$seq") and
 * schema apply on PostgreSQL (pgmeta.h).
 *
 * Apply is one READ COMMITTED transaction that first takes
 * pg_advisory_xact_lock on the database's schema: appliers in any process
 * take turns, and since each statement after the lock sees everything
 * committed before it, the second one plans against the first one's result
 * (a REPEATABLE READ snapshot could predate the lock).  The decision is the
 * LMDB engine's (udb__schema_plan); only the store's two questions (how
 * many records, do they fit) and the DDL differ.  PostgreSQL runs DDL inside
 * transactions, so a refusal or an error anywhere leaves nothing behind.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpack.h"
#include "pgddl.h"
#include "pgmeta.h"
#include "schemaplan.h"

#define MAX_LISTED 10           /* violations listed, as the LMDB engine */
#define LOCK_CLASS 0x75646221   /* "udb!": the first key of our advisory locks */

/* ---- helpers ------------------------------------------------------------------ */

/* Run the text in q, then empty q. */
static int run(PGconn *c, udb_buf *q, udb_buf *msg)
{
    if (q->oom)
        return UDB_ENOMEM;
    udb__buf_byte(q, '\0');
    int rc = q->oom ? UDB_ENOMEM : udb__pg_exec(NULL, c, (const char *)q->p, msg);
    q->len = 0;
    return rc;
}

/* "schema"."name" as a NUL-terminated string in b (for to_regclass). */
static const char *qualified_text(udb_buf *b, const char *schema, const char *name)
{
    b->len = 0;
    udb__pg_qualified(b, schema, name);
    udb__buf_byte(b, '\0');
    return b->oom ? NULL : (const char *)b->p;
}

/* ---- "$meta" ------------------------------------------------------------------- */

int udb__pg_meta_exists(bool *out, PGconn *c, const char *pgschema, udb_buf *msg)
{
    *out = false;
    udb_buf name = {0};
    PGresult *r = NULL;
    const char *rel = qualified_text(&name, pgschema, "$meta");
    int rc = rel ? 0 : UDB_ENOMEM;
    if (!rc && !(rc = udb__pg_execp(&r, c, "SELECT to_regclass($1) IS NOT NULL", 1, &rel, msg)))
        *out = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    udb__buf_free(&name);
    return rc;
}

int udb__pg_meta_read(udb_schema **out, uint64_t *gen, PGconn *c, const char *pgschema,
                      udb_buf *msg)
{
    *out = NULL;
    *gen = 0;
    udb_buf q = {0};
    PGresult *r = NULL;
    bool made;
    int rc = udb__pg_meta_exists(&made, c, pgschema, msg);
    if (rc || !made)
        goto out;
    udb__buf_printf(&q, "SELECT format, gen, schema FROM ");
    udb__pg_qualified(&q, pgschema, "$meta");
    udb__buf_byte(&q, '\0');
    if ((rc = q.oom ? UDB_ENOMEM : udb__pg_exec(&r, c, (const char *)q.p, msg)) ||
        PQntuples(r) == 0)
        goto out;
    int format = atoi(PQgetvalue(r, 0, 0));
    if (format != UDB_PG_FORMAT) {
        udb__buf_printf(msg, "schema \"%s\" holds a uniqdb database of format %d; this version "
                        "reads format %d", pgschema, format, UDB_PG_FORMAT);
        rc = UDB_EFORMAT;
        goto out;
    }
    *gen = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
    const char *json = PQgetvalue(r, 0, 2);
    udb_buf why = {0};
    if ((rc = udb__schema_parse(out, json, strlen(json), &why))) {
        udb__buf_printf(msg, "schema \"%s\": the stored uniqdb schema does not parse: %s",
                        pgschema, why.p ? (char *)why.p : "?");
        rc = rc == UDB_ESCHEMA ? UDB_ECORRUPT : rc;
    }
    udb__buf_free(&why);
out:
    PQclear(r);
    udb__buf_free(&q);
    return rc;
}

/* ---- server features ---------------------------------------------------------- */

int udb__pg_features(const udb_schema *s, int v, udb_buf *msg)
{
    for (size_t i = 0; i < s->ntypes; i++) {
        const udb_type *t = &s->types[i];
        for (size_t x = 1; x < t->nidx; x++) {
            if (!t->idx[x].nulls_not_distinct || v >= 150000)
                continue;
            udb__buf_printf(msg, "unique index \"%s.%s\" is \"nulls\": \"not_distinct\", which "
                            "needs NULLS NOT DISTINCT (PostgreSQL 15 or later); this server is "
                            "version %d.%d (server_version_num %d). Nothing was changed",
                            t->name, t->idx[x].name, v / 10000, v % 10000, v);
            return UDB_ESCHEMA;
        }
    }
    return 0;
}

/* ---- the rules' questions, asked of the server ---------------------------------- */

typedef struct pgstore {
    PGconn *c;
    const char *pgschema;
    udb_buf *msg;
} pgstore;

static int pg_count(uint64_t *out, const udb_type *t, void *payload)
{
    pgstore *st = payload;
    udb_buf q = {0};
    PGresult *r = NULL;
    udb__buf_printf(&q, "SELECT count(*) FROM ");
    udb__pg_qualified(&q, st->pgschema, t->name);
    udb__buf_byte(&q, '\0');
    int rc = q.oom ? UDB_ENOMEM : udb__pg_exec(&r, st->c, (const char *)q.p, st->msg);
    *out = rc ? 0 : strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    udb__buf_free(&q);
    return rc;
}

/* An "extra" type gains declared fields: a record holding one of them as an
 * undeclared field would have to move its value into the new column, which
 * this backend does not do yet: refuse (the "$extra" copy shows the keys;
 * one in the lossless {"$msgpack": ...} form might hold any key). */
static int pg_fits(udb_buf *msg, const udb_type *o, const udb_type *n, void *payload)
{
    pgstore *st = payload;
    int rc = 0;
    for (size_t i = 0; i < n->nfields && !rc; i++) {
        const char *f = n->fields[i].name;
        bool declared = false;
        for (size_t k = 0; k < o->nfields; k++)
            declared |= strcmp(o->fields[k].name, f) == 0;
        if (declared)
            continue;
        udb_buf q = {0};
        PGresult *r = NULL;
        udb__buf_printf(&q, "SELECT count(*) FROM ");
        udb__pg_qualified(&q, st->pgschema, o->name);
        udb__buf_printf(&q, " WHERE \"$extra\" ? $1 OR \"$extra\" ? '$msgpack'");
        udb__buf_byte(&q, '\0');
        rc = q.oom ? UDB_ENOMEM : udb__pg_execp(&r, st->c, (const char *)q.p, 1, &f, st->msg);
        if (!rc && strcmp(PQgetvalue(r, 0, 0), "0") != 0) {
            udb__buf_printf(msg, "type \"%s\": %s stored record%s may hold \"%s\" as an "
                            "undeclared field, which the new schema declares; moving such "
                            "values into a column is not done on PostgreSQL yet", o->name,
                            PQgetvalue(r, 0, 0), strcmp(PQgetvalue(r, 0, 0), "1") ? "s" : "",
                            f);
            rc = UDB_ESCHEMA;
        }
        PQclear(r);
        udb__buf_free(&q);
    }
    return rc;
}

/* ---- a new unique index over existing rows -------------------------------------- */

static void render_key(udb_buf *b, const udb_field *kf, const char *text)
{
    msgpack_object o;
    memset(&o, 0, sizeof o);
    if (kf->type == UDB_F_STR) {
        o.type = MSGPACK_OBJECT_STR;
        o.via.str.ptr = text;
        o.via.str.size = (uint32_t)strlen(text);
    } else if (text[0] == '-') {
        o.type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        o.via.i64 = strtoll(text, NULL, 10);
    } else {
        o.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o.via.u64 = strtoull(text, NULL, 10);
    }
    udb__mp_render(b, &o, true);
}

/* The rows that ix would find in conflict, listed as build_index does in the
 * LMDB engine: each with the first (smallest key) holder of its values,
 * in key order.  The table is locked against writers first, so the check
 * and CREATE INDEX see the same rows. */
static int check_unique(PGconn *c, const char *pgschema, const udb_type *t,
                        const udb_index *ix, udb_buf *msg)
{
    udb_buf q = {0}, list = {0}, part = {0};
    PGresult *r = NULL;
    const char *key = t->fields[t->key].name;
    udb__buf_printf(&q, "LOCK TABLE ");
    udb__pg_qualified(&q, pgschema, t->name);
    udb__buf_printf(&q, " IN SHARE MODE");
    int rc = run(c, &q, msg);
    if (rc)
        goto out;
    udb_pgddl none = {.pgschema = pgschema};
    for (size_t k = 0; k < ix->nfields; k++) {
        if (k)
            udb__buf_printf(&part, ", ");
        udb__pg_index_field(&part, t, ix, k, &none);   /* nocase: partitioned folded */
    }
    udb__buf_printf(&q, "SELECT k1::text, k2::text, count(*) OVER () FROM (SELECT ");
    udb__pg_ident(&q, key);
    udb__buf_printf(&q, " AS k2, first_value(");
    udb__pg_ident(&q, key);
    udb__buf_printf(&q, ") OVER w AS k1, row_number() OVER w AS rn FROM ");
    udb__pg_qualified(&q, pgschema, t->name);
    udb__buf_printf(&q, " WHERE true");
    if (ix->where)
        udb__buf_printf(&q, " AND (%s)", ix->where);
    for (size_t k = 0; k < ix->nfields && !ix->nulls_not_distinct; k++) {
        udb__buf_printf(&q, " AND ");
        udb__pg_ident(&q, ix->fnames[k]);
        udb__buf_printf(&q, " IS NOT NULL");
    }
    udb__buf_printf(&q, " WINDOW w AS (PARTITION BY %.*s ORDER BY ", (int)part.len,
                    (const char *)part.p);
    udb__pg_ident(&q, key);
    udb__buf_printf(&q, ")) x WHERE rn > 1 ORDER BY x.k2 LIMIT %d", MAX_LISTED);
    udb__buf_byte(&q, '\0');
    if (part.oom || q.oom) {
        rc = UDB_ENOMEM;
        goto out;
    }
    if ((rc = udb__pg_exec(&r, c, (const char *)q.p, msg)) || PQntuples(r) == 0)
        goto out;
    uint64_t collisions = strtoull(PQgetvalue(r, 0, 2), NULL, 10);
    for (int i = 0; i < PQntuples(r); i++) {
        udb__buf_printf(&list, "%s", i ? "; " : "");
        render_key(&list, &t->fields[t->key], PQgetvalue(r, i, 0));
        udb__buf_printf(&list, " and ");
        render_key(&list, &t->fields[t->key], PQgetvalue(r, i, 1));
    }
    udb__buf_printf(msg, "new unique index \"%s.%s\" (", t->name, ix->name);
    for (size_t i = 0; i < ix->nfields; i++)
        udb__buf_printf(msg, "%s%s", i ? ", " : "", ix->fnames[i]);
    udb__buf_printf(msg, ") is violated by %" PRIu64 " existing record%s; colliding %s: %.*s%s",
                    collisions, collisions > 1 ? "s" : "", key, (int)list.len,
                    list.p ? (const char *)list.p : "", collisions > MAX_LISTED ? "; ..." : "");
    rc = UDB_ECONFLICT;
out:
    PQclear(r);
    udb__buf_free(&q);
    udb__buf_free(&list);
    udb__buf_free(&part);
    return rc;
}

/* ---- applying -------------------------------------------------------------------- */

static const udb_field *field_of(const udb_type *t, const char *name)
{
    for (size_t i = 0; i < t->nfields; i++)
        if (strcmp(t->fields[i].name, name) == 0)
            return &t->fields[i];
    return NULL;
}

static void alter(udb_buf *q, const udb_pgddl *o, const udb_type *t)
{
    udb__buf_printf(q, "ALTER TABLE ");
    udb__pg_qualified(q, o->pgschema, t->name);
    udb__buf_byte(q, ' ');
}

/* A field's CHECK changed (enum values added): replace the column's CHECK. */
static int replace_check(PGconn *c, const udb_pgddl *o, const udb_type *t, const udb_field *f,
                         udb_buf *msg)
{
    udb_buf name = {0}, q = {0};
    PGresult *r = NULL;
    const char *rel = qualified_text(&name, o->pgschema, t->name);
    const char *params[2] = {rel, f->name};
    int rc = rel ? udb__pg_execp(&r, c,
                                 "SELECT conname FROM pg_constraint WHERE conrelid = "
                                 "to_regclass($1) AND contype = 'c' AND conkey = ARRAY[(SELECT "
                                 "attnum FROM pg_attribute WHERE attrelid = to_regclass($1) AND "
                                 "attname = $2)]", 2, params, msg)
                 : UDB_ENOMEM;
    for (int i = 0; !rc && i < PQntuples(r); i++) {
        alter(&q, o, t);
        udb__buf_printf(&q, "DROP CONSTRAINT ");
        udb__pg_ident(&q, PQgetvalue(r, i, 0));
        rc = run(c, &q, msg);
    }
    if (!rc) {
        alter(&q, o, t);
        udb__buf_printf(&q, "ADD CHECK (");
        udb__pg_check_expr(&q, f);
        udb__buf_byte(&q, ')');
        rc = run(c, &q, msg);
    }
    PQclear(r);
    udb__buf_free(&name);
    udb__buf_free(&q);
    return rc;
}

static bool same_values(const udb_field *a, const udb_field *b)
{
    if (a->nvalues != b->nvalues)
        return false;
    for (size_t i = 0; i < a->nvalues; i++)
        if (strcmp(a->values[i], b->values[i]) != 0)
            return false;
    return true;
}

/* The DDL from old's tables to s's (the rules allowed the change). */
static int change_tables(PGconn *c, const udb_pgddl *o, const udb_schema *old,
                         const udb_schema *s, udb_buf *msg)
{
    udb_buf q = {0};
    int rc = 0;
    char rel[UDB_PG_NAMELEN + 1];
    for (size_t i = 0; old && i < old->ntypes && !rc; i++) {
        const udb_type *ot = &old->types[i], *t = udb__schema_type(s, ot->name);
        if (!t) {
            udb__buf_printf(&q, "DROP TABLE ");
            udb__pg_qualified(&q, o->pgschema, ot->name);
            rc = run(c, &q, msg);
            continue;
        }
        for (size_t x = 1; x < ot->nidx && !rc; x++) {
            const udb_index *nx = udb__type_index(t, ot->idx[x].name);
            if (nx && udb__same_index(nx, &ot->idx[x]))
                continue;
            udb__pg_index_relname(rel, ot->name, ot->idx[x].name);
            udb__buf_printf(&q, "DROP INDEX ");
            udb__pg_qualified(&q, o->pgschema, rel);
            rc = run(c, &q, msg);
        }
    }
    for (size_t i = 0; i < s->ntypes && !rc; i++) {
        const udb_type *t = &s->types[i], *ot = old ? udb__schema_type(old, t->name) : NULL;
        if (!ot) {
            udb__pg_create_table(&q, t, o);
            rc = run(c, &q, msg);
        }
        for (size_t f = 0; ot && f < t->nfields && !rc; f++) {
            const udb_field *nf = &t->fields[f], *of = field_of(ot, nf->name);
            if (!of) {
                alter(&q, o, t);
                udb__buf_printf(&q, "ADD COLUMN ");
                udb__pg_column(&q, t, f, o);
                rc = run(c, &q, msg);
                continue;
            }
            if (nf->required != of->required && f != t->key) {
                alter(&q, o, t);
                udb__buf_printf(&q, "ALTER COLUMN ");
                udb__pg_ident(&q, nf->name);
                udb__buf_printf(&q, nf->required ? " SET NOT NULL" : " DROP NOT NULL");
                rc = run(c, &q, msg);
            }
            if (!rc && !same_values(nf, of))
                rc = replace_check(c, o, t, nf, msg);
        }
        if (ot && !rc && t->extra != ot->extra) {
            alter(&q, o, t);
            if (t->extra)
                udb__buf_printf(&q, "ADD COLUMN %s", udb__pg_extra_column);
            else
                udb__buf_printf(&q, "DROP COLUMN \"$extra\"");
            rc = run(c, &q, msg);
        }
        if (ot && !rc && udb__pg_has_raw(t) != udb__pg_has_raw(ot)) {
            alter(&q, o, t);
            if (udb__pg_has_raw(t))
                udb__buf_printf(&q, "ADD COLUMN %s", udb__pg_raw_column);
            else
                udb__buf_printf(&q, "DROP COLUMN \"$raw\"");
            rc = run(c, &q, msg);
        }
        for (size_t x = 1; x < t->nidx && !rc; x++) {
            const udb_index *ix = &t->idx[x], *ox = ot ? udb__type_index(ot, ix->name) : NULL;
            if (ox && udb__same_index(ix, ox))
                continue;
            if (ot && ix->unique && (rc = check_unique(c, o->pgschema, t, ix, msg)))
                break;
            udb__pg_create_index(&q, t, ix, o);
            rc = run(c, &q, msg);
        }
    }
    udb__buf_free(&q);
    return rc;
}

static int create_meta(PGconn *c, const char *pgschema, udb_buf *msg)
{
    udb_buf q = {0};
    udb__buf_printf(&q, "CREATE SCHEMA IF NOT EXISTS ");
    udb__pg_ident(&q, pgschema);
    udb__buf_printf(&q, "; CREATE TABLE IF NOT EXISTS ");
    udb__pg_qualified(&q, pgschema, "$meta");
    udb__buf_printf(&q, " (one boolean PRIMARY KEY DEFAULT true CHECK (one), format integer "
                    "NOT NULL, gen bigint NOT NULL, schema text NOT NULL)"
                    "; CREATE TABLE IF NOT EXISTS ");
    udb__pg_qualified(&q, pgschema, "$seq");
    udb__buf_printf(&q, " (name text COLLATE \"C\" PRIMARY KEY, value numeric(20,0) NOT NULL "
                    "CHECK (value BETWEEN 0 AND 18446744073709551615))"
                    "; CREATE TABLE IF NOT EXISTS ");
    udb__pg_qualified(&q, pgschema, "$unit");
    udb__buf_printf(&q, " (id bytea PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())");
    int rc = run(c, &q, msg);
    udb__buf_free(&q);
    return rc;
}

/* Take pgschema's advisory lock until the end of c's transaction: whoever
 * changes the database's own tables holds it. */
static int lock_schema(PGconn *c, const char *pgschema, udb_buf *msg)
{
    char lock[160];
    snprintf(lock, sizeof lock, "SELECT pg_advisory_xact_lock(%d, hashtext($1))", LOCK_CLASS);
    return udb__pg_execp(NULL, c, lock, 1, &pgschema, msg);
}

int udb__pg_meta_make(PGconn *c, const char *pgschema, udb_buf *msg)
{
    int rc = lock_schema(c, pgschema, msg);
    return rc ? rc : create_meta(c, pgschema, msg);
}

static int put_meta(PGconn *c, const char *pgschema, const udb_schema *s, uint64_t gen,
                    udb_buf *msg)
{
    udb_buf q = {0};
    char genbuf[24], fmt[12];
    snprintf(genbuf, sizeof genbuf, "%" PRIu64, gen);
    snprintf(fmt, sizeof fmt, "%d", UDB_PG_FORMAT);
    udb__buf_printf(&q, "INSERT INTO ");
    udb__pg_qualified(&q, pgschema, "$meta");
    udb__buf_printf(&q, " (format, gen, schema) VALUES ($1, $2, $3) ON CONFLICT (one) DO "
                    "UPDATE SET format = EXCLUDED.format, gen = EXCLUDED.gen, "
                    "schema = EXCLUDED.schema");
    udb__buf_byte(&q, '\0');
    const char *params[3] = {fmt, genbuf, s->json};
    int rc = q.oom ? UDB_ENOMEM : udb__pg_execp(NULL, c, (const char *)q.p, 3, params, msg);
    udb__buf_free(&q);
    return rc;
}

int udb__pg_schema_apply(char **changes, udb_pgpool *p, const char *json, size_t len,
                         unsigned flags, udb_buf *msg)
{
    if ((flags & ~(UDB_SCHEMA_KEEP | UDB_SCHEMA_DROP)) ||
        (flags & UDB_SCHEMA_KEEP && flags & UDB_SCHEMA_DROP)) {
        udb__buf_printf(msg, "udb_schema_apply: flags 0x%x: UDB_SCHEMA_KEEP and "
                        "UDB_SCHEMA_DROP are the only flags, and exclusive", flags);
        return UDB_EINVAL;
    }
    const char *pgschema = udb__pg_pool_schema(p);
    udb_pgddl o = {.pgschema = pgschema};
    udb_schema *s = NULL, *old = NULL;
    udb_buf report = {0};
    PGconn *c = NULL;
    uint64_t gen = 0;
    bool open_txn = false;
    int rc = udb__schema_parse(&s, json, len, msg);
    if (!rc)
        rc = udb__pg_features(s, udb__pg_pool_server_version(p), msg);
    if (!rc)
        rc = udb__pg_check_names(s, &o, msg);
    if (!rc)
        rc = udb__pg_acquire(&c, p, msg);
    if (rc)
        goto out;
    if ((rc = udb__pg_exec(NULL, c, "BEGIN ISOLATION LEVEL READ COMMITTED", msg)))
        goto out;
    open_txn = true;
    if ((!udb__pg_pool_nolock(p) && (rc = lock_schema(c, pgschema, msg))) ||
        (rc = udb__pg_meta_read(&old, &gen, c, pgschema, msg)))
        goto out;
    if (udb__pg_pool_sleep_ms(p)) {
        char sleep[64];
        snprintf(sleep, sizeof sleep, "SELECT pg_sleep(%d / 1000.0)", udb__pg_pool_sleep_ms(p));
        if ((rc = udb__pg_exec(NULL, c, sleep, msg)))
            goto out;
    }
    if ((rc = create_meta(c, pgschema, msg)))
        goto out;
    pgstore st = {c, pgschema, msg};
    udb_plan_store store = {pg_count, pg_fits, &st};
    if ((rc = udb__schema_plan(&s, old, flags, &store, msg, &report)))
        goto out;
    if (old && old->json_len == s->json_len && memcmp(old->json, s->json, s->json_len) == 0)
        goto out;   /* the stored schema already: nothing to do */
    if ((rc = udb__pg_features(s, udb__pg_pool_server_version(p), msg)) ||
        (rc = udb__pg_check_names(s, &o, msg)) ||
        (rc = change_tables(c, &o, old, s, msg)) ||
        (rc = put_meta(c, pgschema, s, gen + 1, msg)))
        goto out;
    rc = udb__pg_exec(NULL, c, "COMMIT", msg);
    open_txn = false;
out:
    if (open_txn) {
        udb_buf ignored = {0};   /* rc says what went wrong; ROLLBACK's own fate is moot */
        udb__pg_exec(NULL, c, "ROLLBACK", &ignored);
        udb__buf_free(&ignored);
    }
    udb__pg_release(p, c);
    if (!rc && changes) {
        udb__buf_byte(&report, '\0');
        if (report.oom) {
            rc = UDB_ENOMEM;
            udb__buf_free(&report);
        } else {
            *changes = (char *)report.p;
            report.p = NULL;
        }
    }
    udb__buf_free(&report);
    udb__schema_free(s);
    udb__schema_free(old);
    return rc;
}

/* ---- sequences --------------------------------------------------------------------- */

int udb__pg_seq_get(uint64_t *out, PGconn *c, const char *pgschema, const char *name,
                    udb_buf *msg)
{
    udb_buf q = {0};
    PGresult *r = NULL;
    udb__buf_printf(&q, "SELECT value::text FROM ");
    udb__pg_qualified(&q, pgschema, "$seq");
    udb__buf_printf(&q, " WHERE name = $1");
    udb__buf_byte(&q, '\0');
    int rc = q.oom ? UDB_ENOMEM : udb__pg_execp(&r, c, (const char *)q.p, 1, &name, msg);
    if (!rc && PQntuples(r) == 0) {
        udb__buf_printf(msg, "no sequence \"%s\"", name);
        rc = UDB_ENOTFOUND;
    }
    if (!rc)
        *out = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    udb__buf_free(&q);
    return rc;
}
