/*
 * ddl.c -- the PostgreSQL tables and indexes of a uniqdb schema (pgddl.h
 * has the mapping).  Works from the parsed schema; both `uniqdb export
 * --postgres` (through udb_pg_ddl) and the PostgreSQL backend's schema apply
 * (meta.c) print their DDL here, so the two cannot drift apart.
 *
 * Names are checked before anything is printed: PostgreSQL silently
 * truncates an identifier past 63 bytes, so a name that long, or two
 * relations that would share a name, is refused rather than guessed at.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgddl.h"

void udb__pg_ident(udb_buf *b, const char *name)
{
    udb__buf_byte(b, '"');
    for (; *name; name++) {
        if (*name == '"')
            udb__buf_byte(b, '"');
        udb__buf_byte(b, (unsigned char)*name);
    }
    udb__buf_byte(b, '"');
}

void udb__pg_qualified(udb_buf *b, const char *schema, const char *name)
{
    udb__pg_ident(b, schema);
    udb__buf_byte(b, '.');
    udb__pg_ident(b, name);
}

void udb__pg_literal(udb_buf *b, const char *s, size_t n)
{
    udb__buf_byte(b, '\'');
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\'')
            udb__buf_byte(b, '\'');
        udb__buf_byte(b, (unsigned char)s[i]);
    }
    udb__buf_byte(b, '\'');
}

/* 'schema.name' as a literal for nextval(): the identifiers quoted inside. */
static void regclass_literal(udb_buf *b, const char *schema, const char *name)
{
    udb_buf q = {0};
    udb__pg_qualified(&q, schema, name);
    if (q.oom)
        b->oom = true;
    else
        udb__pg_literal(b, (const char *)q.p, q.len);
    udb__buf_free(&q);
}

void udb__pg_index_relname(char out[UDB_PG_NAMELEN + 1], const char *type, const char *index)
{
    char full[2 * UDB_MAX_NAME + 2];
    snprintf(full, sizeof full, "%s.%s", type, index);
    if (strlen(full) <= UDB_PG_NAMELEN) {
        strcpy(out, full);
        return;
    }
    /* FNV-1a; names are ASCII, so the cut splits no character */
    uint32_t h = 2166136261u;
    for (const char *c = full; *c; c++)
        h = (h ^ (unsigned char)*c) * 16777619u;
    snprintf(out, UDB_PG_NAMELEN + 1, "%.54s~%08" PRIx32, full, h);
}

bool udb__pg_has_raw(const udb_type *t)
{
    if (t->extra)
        return true;
    for (size_t i = 0; i < t->nfields; i++)
        if (t->fields[i].type == UDB_F_ANY)
            return true;
    return false;
}

bool udb__pg_is_bytea(const udb_pgddl *o, const udb_type *t, const udb_field *f)
{
    if (f->type != UDB_F_STR || !o->bytea_fields)
        return false;
    size_t tn = strlen(t->name);
    for (const char *const *p = o->bytea_fields; *p; p++)
        if (strncmp(*p, t->name, tn) == 0 && (*p)[tn] == '.' && strcmp(*p + tn + 1, f->name) == 0)
            return true;
    return false;
}

/* ---- names ------------------------------------------------------------------ */

typedef struct relnames {
    size_t n, cap;
    char **name, **what;
    udb_buf *msg;
} relnames;

static int fits(relnames *r, const char *what, const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > UDB_PG_NAMELEN) {
        udb__buf_printf(r->msg, "%s \"%s\" cannot be a PostgreSQL name (1 to %d bytes)", what,
                        name, UDB_PG_NAMELEN);
        return UDB_ESCHEMA;
    }
    return 0;
}

static int claim(relnames *r, const char *name, const char *what)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->name[i], name) == 0) {
            udb__buf_printf(r->msg, "%s \"%s\" would have the same PostgreSQL name as another "
                            "table, index or sequence (%s)", what, name, r->what[i]);
            return UDB_ESCHEMA;
        }
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 32;
        char **a = realloc(r->name, cap * sizeof *a), **w;
        if (a)
            r->name = a;
        if (!a || !(w = realloc(r->what, cap * sizeof *w)))
            return UDB_ENOMEM;
        r->what = w;
        r->cap = cap;
    }
    r->name[r->n] = strdup(name);
    r->what[r->n] = strdup(what);
    r->n++;
    return r->name[r->n - 1] && r->what[r->n - 1] ? 0 : UDB_ENOMEM;
}

static int check_bytea_predicates(const udb_type *t, const udb_pgddl *o, udb_buf *msg)
{
    for (size_t f = 0; f < t->nfields; f++) {
        if (!udb__pg_is_bytea(o, t, &t->fields[f]))
            continue;
        for (size_t x = 1; x < t->nidx; x++) {
            const char *w = t->idx[x].where;
            if (w && strstr(w, t->fields[f].name) && strchr(w, '\\')) {
                udb__buf_printf(msg, "type \"%s\", index \"%s\": its predicate has a backslash "
                                "in a literal, which a bytea field \"%s\" (--str-nul=bytea) "
                                "would read differently", t->name, t->idx[x].name,
                                t->fields[f].name);
                return UDB_ESCHEMA;
            }
        }
    }
    return 0;
}

int udb__pg_check_names(const udb_schema *s, const udb_pgddl *o, udb_buf *msg)
{
    relnames r = {.msg = msg};
    char rel[UDB_PG_NAMELEN + 1], what[2 * UDB_MAX_NAME + 40];
    int rc = fits(&r, "schema", o->pgschema);
    for (size_t i = 0; i < s->ntypes && !rc; i++) {
        const udb_type *t = &s->types[i];
        snprintf(what, sizeof what, "table of type %s", t->name);
        if ((rc = fits(&r, "type", t->name)) || (rc = claim(&r, t->name, what)))
            break;
        for (size_t f = 0; f < t->nfields && !rc; f++)
            if (strlen(t->fields[f].name) > UDB_PG_NAMELEN) {
                udb__buf_printf(msg, "type \"%s\": field \"%s\" cannot be a PostgreSQL name "
                                "(1 to %d bytes)", t->name, t->fields[f].name, UDB_PG_NAMELEN);
                rc = UDB_ESCHEMA;
            }
        if (rc)
            break;
        if (strlen(t->name) + 5 > UDB_PG_NAMELEN) {
            udb__buf_printf(msg, "type \"%s\": name too long for its primary key's PostgreSQL "
                            "name \"%s_pkey\"", t->name, t->name);
            rc = UDB_ESCHEMA;
            break;
        }
        snprintf(rel, sizeof rel, "%s_pkey", t->name);
        snprintf(what, sizeof what, "primary key of %s", t->name);
        if ((rc = claim(&r, rel, what)))
            break;
        for (size_t x = 1; x < t->nidx && !rc; x++) {
            udb__pg_index_relname(rel, t->name, t->idx[x].name);
            snprintf(what, sizeof what, "index %s of %s", t->idx[x].name, t->name);
            rc = claim(&r, rel, what);
        }
        if (!rc && o->sequences && t->seqname) {
            bool named = false;
            for (const char *const *q = o->seqs; q && *q; q++)
                named |= strcmp(*q, t->seqname) == 0;
            if (!named && !(rc = fits(&r, "sequence", t->seqname)))
                rc = claim(&r, t->seqname, "auto-key sequence");
        }
        if (!rc)
            rc = check_bytea_predicates(t, o, msg);
    }
    for (const char *const *q = o->seqs; q && *q && !rc; q++)
        if (!(rc = fits(&r, "sequence", *q)))
            rc = claim(&r, *q, "sequence");
    for (size_t i = 0; i < r.n; i++) {
        free(r.name[i]);
        free(r.what[i]);
    }
    free(r.name);
    free(r.what);
    return rc;
}

/* ---- statements ----------------------------------------------------------------- */

const char udb__pg_extra_column[] =
    "\"$extra\" jsonb CHECK (jsonb_typeof(\"$extra\") = 'object')";
const char udb__pg_raw_column[] = "\"$raw\" bytea";

static const char gapless_note[] =
    "-- uniqdb's sequences are gapless: a transaction that aborts gives its number back,\n"
    "-- and an explicit key above an auto key's sequence moves the sequence up.\n"
    "-- PostgreSQL sequences are NOT gapless: an aborted transaction (a failed INSERT\n"
    "-- included) still consumes its value, and explicit keys do not move the sequence\n"
    "-- (call setval after inserting them).  Where numbers must be gapless in\n"
    "-- PostgreSQL, keep the counter in a row and take it with\n"
    "-- UPDATE counters SET n = n + 1 WHERE name = ... RETURNING n in the inserting\n"
    "-- transaction (the row lock serializes writers; an abort gives it back).\n";

void udb__pg_check_expr(udb_buf *b, const udb_field *f)
{
    switch (f->type) {
    case UDB_F_UINT:
        udb__pg_ident(b, f->name);
        udb__buf_printf(b, " BETWEEN 0 AND 18446744073709551615");
        break;
    case UDB_F_FLOAT:
        udb__pg_ident(b, f->name);
        udb__buf_printf(b, " <> 'NaN'");
        break;
    case UDB_F_ENUM:
        udb__pg_ident(b, f->name);
        udb__buf_printf(b, " IN (");
        for (size_t k = 0; k < f->nvalues; k++) {
            if (k)
                udb__buf_printf(b, ", ");
            udb__pg_literal(b, f->values[k], strlen(f->values[k]));
        }
        udb__buf_byte(b, ')');
        break;
    default:
        break;
    }
}

void udb__pg_column(udb_buf *b, const udb_type *t, size_t i, const udb_pgddl *o)
{
    static const char *const pgtypes[] = {
        [UDB_F_STR] = "text COLLATE \"C\"", [UDB_F_INT] = "bigint",
        [UDB_F_UINT] = "numeric(20,0)", [UDB_F_FLOAT] = "double precision",
        [UDB_F_BOOL] = "boolean", [UDB_F_BIN] = "bytea", [UDB_F_ENUM] = "text COLLATE \"C\"",
        [UDB_F_ANY] = "jsonb",
    };
    const udb_field *f = &t->fields[i];
    udb__pg_ident(b, f->name);
    udb__buf_printf(b, " %s", udb__pg_is_bytea(o, t, f) ? "bytea" : pgtypes[f->type]);
    if (f->required || i == t->key)
        udb__buf_printf(b, " NOT NULL");
    if (f->autoinc && o->sequences && t->seqname) {
        udb__buf_printf(b, " DEFAULT nextval(");
        regclass_literal(b, o->pgschema, t->seqname);
        udb__buf_byte(b, ')');
    }
    udb_buf check = {0};
    udb__pg_check_expr(&check, f);
    if (check.len)
        udb__buf_printf(b, " CHECK (%.*s)", (int)check.len, (const char *)check.p);
    if (check.oom)
        b->oom = true;
    udb__buf_free(&check);
}

static void create_sequence(udb_buf *b, const udb_pgddl *o, const char *name)
{
    udb__buf_printf(b, "CREATE SEQUENCE ");
    udb__pg_qualified(b, o->pgschema, name);
    udb__buf_printf(b, " AS bigint MINVALUE 0 START WITH 1;\n");
}

void udb__pg_create_table(udb_buf *b, const udb_type *t, const udb_pgddl *o)
{
    bool seq = o->sequences && t->seqname;
    if (seq)
        create_sequence(b, o, t->seqname);
    udb__buf_printf(b, "CREATE TABLE ");
    udb__pg_qualified(b, o->pgschema, t->name);
    udb__buf_printf(b, " (\n");
    for (size_t f = 0; f < t->nfields; f++) {
        udb__buf_printf(b, "    ");
        udb__pg_column(b, t, f, o);
        udb__buf_printf(b, ",\n");
    }
    if (t->extra)
        udb__buf_printf(b, "    %s,\n", udb__pg_extra_column);
    if (udb__pg_has_raw(t))
        udb__buf_printf(b, "    %s,\n", udb__pg_raw_column);
    char rel[UDB_PG_NAMELEN + 1];
    snprintf(rel, sizeof rel, "%s_pkey", t->name);
    udb__buf_printf(b, "    CONSTRAINT ");
    udb__pg_ident(b, rel);
    udb__buf_printf(b, " PRIMARY KEY (");
    udb__pg_ident(b, t->fields[t->key].name);
    udb__buf_printf(b, ")\n);\n");
    if (seq) {
        udb__buf_printf(b, "ALTER SEQUENCE ");
        udb__pg_qualified(b, o->pgschema, t->seqname);
        udb__buf_printf(b, " OWNED BY ");
        udb__pg_qualified(b, o->pgschema, t->name);
        udb__buf_byte(b, '.');
        udb__pg_ident(b, t->fields[t->key].name);
        udb__buf_printf(b, ";\n");
    }
}

void udb__pg_create_index(udb_buf *b, const udb_type *t, const udb_index *ix,
                          const udb_pgddl *o)
{
    char rel[UDB_PG_NAMELEN + 1];
    udb__pg_index_relname(rel, t->name, ix->name);
    udb__buf_printf(b, ix->unique ? "CREATE UNIQUE INDEX " : "CREATE INDEX ");
    udb__pg_ident(b, rel);
    udb__buf_printf(b, " ON ");
    udb__pg_qualified(b, o->pgschema, t->name);
    udb__buf_printf(b, " (");
    for (size_t k = 0; k < ix->nfields; k++) {
        if (k)
            udb__buf_printf(b, ", ");
        udb__pg_ident(b, ix->fnames[k]);
    }
    udb__buf_byte(b, ')');
    if (ix->nulls_not_distinct)
        udb__buf_printf(b, " NULLS NOT DISTINCT");
    /* the engine's canonical predicate text is PostgreSQL already: names
       quoted where needed, '' in strings, integers, booleans */
    if (ix->where)
        udb__buf_printf(b, " WHERE (%s)", ix->where);
    udb__buf_printf(b, ";\n");
}

static bool is_auto_seq(const udb_schema *s, const char *name)
{
    for (size_t i = 0; i < s->ntypes; i++)
        if (s->types[i].seqname && strcmp(s->types[i].seqname, name) == 0)
            return true;
    return false;
}

int udb__pg_ddl(udb_buf *b, const udb_schema *s, const udb_pgddl *o, unsigned parts,
                udb_buf *msg)
{
    int rc = udb__pg_check_names(s, o, msg);
    if (rc)
        return rc;
    bool noted = false;
    for (size_t i = 0; i < s->ntypes && (parts & UDB_PGDDL_TABLES); i++) {
        const udb_type *t = &s->types[i];
        udb__buf_printf(b, "\n-- type %s\n", t->name);
        if (o->sequences && t->seqname && !noted) {
            udb__buf_printf(b, "%s", gapless_note);
            noted = true;
        }
        udb__pg_create_table(b, t, o);
    }
    for (const char *const *q = o->seqs; q && *q && (parts & UDB_PGDDL_TABLES); q++) {
        if (o->sequences && is_auto_seq(s, *q))
            continue;
        udb__buf_printf(b, "\n-- sequence %s\n", *q);
        if (!noted)
            udb__buf_printf(b, "%s", gapless_note);
        noted = true;
        create_sequence(b, o, *q);
    }
    for (size_t i = 0; i < s->ntypes && (parts & UDB_PGDDL_INDEXES); i++)
        for (size_t x = 1; x < s->types[i].nidx; x++)
            udb__pg_create_index(b, &s->types[i], &s->types[i].idx[x], o);
    return b->oom || msg->oom ? UDB_ENOMEM : 0;
}
