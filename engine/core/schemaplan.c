/*
 * schemaplan.c -- the rules of a schema change (schemaplan.h), whatever
 * stores the records: what may change, what needs UDB_SCHEMA_DROP, what
 * UDB_SCHEMA_KEEP keeps, and the words for all of it.  What the rules need
 * to know of stored records (how many, whether they fit) the store answers
 * (udb_plan_store: the LMDB backend's in migrate.c, through backend.h's
 * count and each and udb__schema_fits below; PostgreSQL's in pg/meta.c).
 *
 * A constraint is never loosened silently: a schema that lacks an index, a
 * type or "required" is refused unless the caller says UDB_SCHEMA_DROP
 * (remove) or UDB_SCHEMA_KEEP (keep, add the rest), because an old app
 * version applying its old schema must not undo what a newer one relies
 * on.  Changes that would strand stored records (removing or retyping a
 * field) are refused whatever the flags.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "record.h"
#include "schemaplan.h"

static const udb_field *find_field(const udb_type *t, const char *name)
{
    for (size_t i = 0; i < t->nfields; i++)
        if (strcmp(t->fields[i].name, name) == 0)
            return &t->fields[i];
    return NULL;
}

bool udb__same_index(const udb_index *a, const udb_index *b)
{
    if (a->unique != b->unique || a->nulls_not_distinct != b->nulls_not_distinct ||
        a->nfields != b->nfields || strcmp(a->name, b->name) != 0)
        return false;
    for (size_t i = 0; i < a->nfields; i++)
        if (strcmp(a->fnames[i], b->fnames[i]) != 0 || a->nocase[i] != b->nocase[i])
            return false;
    if (!a->where || !b->where)
        return a->where == b->where;
    return strcmp(a->where, b->where) == 0;
}

/* Records of type t of schema s (whose handles are open). */

typedef struct fit_ctx {
    udb_buf *msg, why;
    const udb_type *o, *n;
} fit_ctx;

static int fits(void *arg, const udb_val *pk, const udb_val *rec)
{
    fit_ctx *f = arg;
    udb_rec r;
    udb__rec_init(&r);
    f->why.len = 0;
    int rc = udb__rec_parse(&r, f->n, rec->data, rec->size, false, &f->why);
    udb__rec_free(&r);
    (void)pk;
    if (rc == UDB_EBADRECORD) {
        udb__buf_printf(f->msg, "type \"%s\": a stored record does not fit the new field "
                        "declarations: %s", f->o->name, f->why.p ? (char *)f->why.p : "?");
        rc = UDB_ESCHEMA;
    }
    return rc;
}

int udb__schema_fits(udb_buf *msg, udb_txn *txn, const udb_schema *os, const udb_type *o,
                     const udb_type *n)
{
    fit_ctx f = {.msg = msg, .o = o, .n = n};
    int rc = udb__txn_backend(txn)->each(txn, os, o, fits, &f);
    udb__buf_free(&f.why);
    return rc;
}

/* Is the change from o to n allowed?  o's handles are valid in txn. */

static int diff_type(udb_buf *msg, const udb_plan_store *st, const udb_type *o,
                     const udb_type *n)
{
    uint64_t count;
    int rc = st->count(&count, o, st->payload);
    if (rc)
        return rc;
#define REFUSE(...) do { udb__buf_printf(msg, __VA_ARGS__); return UDB_ESCHEMA; } while (0)
    if (strcmp(o->fields[o->key].name, n->fields[n->key].name) != 0)
        REFUSE("type \"%s\": the key field cannot change (\"%s\" to \"%s\")", o->name,
               o->fields[o->key].name, n->fields[n->key].name);
    if (o->extra && !n->extra && count)
        REFUSE("type \"%s\": \"extra\" cannot be turned off while the type holds records",
               o->name);
    for (size_t i = 0; i < o->nfields; i++) {
        const udb_field *of = &o->fields[i], *nf = find_field(n, of->name);
        if (!nf)
            REFUSE("type \"%s\": field \"%s\" cannot be removed", o->name, of->name);
        if (nf->type != of->type)
            REFUSE("type \"%s\": field \"%s\" cannot change type (%s to %s)", o->name,
                   of->name, udb__ftype_name(of->type), udb__ftype_name(nf->type));
        if (nf->autoinc != of->autoinc)
            REFUSE("type \"%s\": field \"%s\" cannot change \"auto\"", o->name, of->name);
        if (nf->required && !of->required && count)
            REFUSE("type \"%s\": existing field \"%s\" cannot become required while the type "
                   "holds records", o->name, of->name);
        for (size_t v = 0; v < of->nvalues; v++) {
            bool kept = false;
            for (size_t w = 0; w < nf->nvalues; w++)
                kept |= strcmp(of->values[v], nf->values[w]) == 0;
            if (!kept)
                REFUSE("type \"%s\": enum value \"%s\" of field \"%s\" cannot be removed",
                       o->name, of->values[v], of->name);
        }
    }
    bool gained = false;
    for (size_t i = 0; i < n->nfields; i++) {
        if (find_field(o, n->fields[i].name))
            continue;
        gained = true;
        if (n->fields[i].required && count)
            REFUSE("type \"%s\": new field \"%s\" must be optional while the type holds "
                   "records", n->name, n->fields[i].name);
    }
#undef REFUSE
    return o->extra && gained && count ? st->fits(msg, o, n, st->payload) : 0;
}

/* Fill a new (empty) index ix of type t of schema s from the type's records. */

/* ---- describing a change ------------------------------------------------
 * Items are one per line.  `added` gets what n adds to or tightens in o;
 * `removed` what n lacks or loosens (the changes that need UDB_SCHEMA_DROP).
 * o may be NULL (an empty database).  st (may be NULL) adds record counts. */

static void index_desc(udb_buf *b, const udb_type *t, const udb_index *ix, bool with_name)
{
    if (with_name)
        udb__buf_printf(b, "%s \"%s.%s\" ", ix->unique ? "unique index" : "index", t->name,
                        ix->name);
    udb__buf_byte(b, '(');
    for (size_t i = 0; i < ix->nfields; i++)
        udb__buf_printf(b, "%s%s%s", i ? ", " : "", ix->fnames[i],
                        ix->nocase[i] ? " collate nocase" : "");
    udb__buf_byte(b, ')');
    if (ix->where)
        udb__buf_printf(b, " where %s", ix->where);
    if (ix->nulls_not_distinct)
        udb__buf_printf(b, " nulls not distinct");
}

static void describe_type(udb_buf *added, udb_buf *removed, const udb_type *o,
                          const udb_type *n)
{
    for (size_t i = 0; i < n->nfields; i++) {
        const udb_field *nf = &n->fields[i], *of = find_field(o, nf->name);
        if (!of) {
            udb__buf_printf(added, "added field \"%s.%s\" (%s%s)\n", n->name, nf->name,
                            udb__ftype_name(nf->type), nf->required ? ", required" : "");
            continue;
        }
        for (size_t v = 0; v < nf->nvalues; v++) {
            bool had = false;
            for (size_t w = 0; w < of->nvalues; w++)
                had |= strcmp(nf->values[v], of->values[w]) == 0;
            if (!had)
                udb__buf_printf(added, "added enum value \"%s\" to field \"%s.%s\"\n",
                                nf->values[v], n->name, nf->name);
        }
        if (nf->required && !of->required)
            udb__buf_printf(added, "field \"%s.%s\" is now required\n", n->name, nf->name);
        if (!nf->required && of->required && i != n->key)
            udb__buf_printf(removed, "\"required\" of field \"%s.%s\"\n", o->name, of->name);
    }
    if (o->extra && !n->extra)
        udb__buf_printf(added, "type \"%s\" no longer accepts undeclared fields\n", n->name);
    if (!o->extra && n->extra)
        udb__buf_printf(removed, "the refusal of undeclared fields in type \"%s\" "
                        "(\"extra\": true would accept them)\n", o->name);
    for (size_t x = 1; x < o->nidx; x++) {
        const udb_index *ox = &o->idx[x], *nx = udb__type_index(n, ox->name);
        if (nx && udb__same_index(ox, nx))
            continue;
        index_desc(removed, o, ox, true);
        if (nx) {
            udb__buf_printf(removed, ", redefined as %s ", nx->unique ? "unique" : "non-unique");
            index_desc(removed, n, nx, false);
        }
        udb__buf_byte(removed, '\n');
    }
    for (size_t x = 1; x < n->nidx; x++) {
        const udb_index *nx = &n->idx[x], *ox = udb__type_index(o, nx->name);
        if (ox && udb__same_index(ox, nx))
            continue;
        udb__buf_printf(added, ox ? "rebuilt " : "added ");
        index_desc(added, n, nx, true);
        udb__buf_byte(added, '\n');
    }
}

static void describe(udb_buf *added, udb_buf *removed, const udb_schema *o, const udb_schema *n,
                     const udb_plan_store *st)
{
    for (size_t i = 0; i < n->ntypes; i++) {
        const udb_type *nt = &n->types[i], *ot = o ? udb__schema_type(o, nt->name) : NULL;
        if (ot) {
            describe_type(added, removed, ot, nt);
            continue;
        }
        udb__buf_printf(added, "added type \"%s\" (%zu field%s", nt->name, nt->nfields,
                        nt->nfields == 1 ? "" : "s");
        for (size_t x = 1; x < nt->nidx; x++) {
            udb__buf_printf(added, x == 1 ? "; " : ", ");
            index_desc(added, nt, &nt->idx[x], true);
        }
        udb__buf_printf(added, ")\n");
    }
    for (size_t i = 0; o && i < o->ntypes; i++) {
        const udb_type *ot = &o->types[i];
        if (udb__schema_type(n, ot->name))
            continue;
        uint64_t count = 0;
        if (st && st->count(&count, ot, st->payload) == 0)
            udb__buf_printf(removed, "type \"%s\" with its %" PRIu64 " record%s\n", ot->name,
                            count, count == 1 ? "" : "s");
        else
            udb__buf_printf(removed, "type \"%s\" with its records\n", ot->name);
    }
}

/* Each line of items, prefixed, into out. */
static void prefixed(udb_buf *out, const udb_buf *items, const char *prefix, const char *sep)
{
    const char *p = items->p ? (const char *)items->p : "", *end = p + items->len;
    bool first = true;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        udb__buf_printf(out, "%s%s%.*s", first ? "" : sep, prefix, (int)n, p);
        first = false;
        p += n + 1;
    }
}


/* ---- UDB_SCHEMA_KEEP: the stored schema plus what the given one adds ---- */

/* Merge canonical type definition nt into ot (both jansson objects of the
 * canonical form).  Definitions present in both keep the stored one, except
 * that enum values are united and "required" is kept if either says it. */
static int merge_type(json_t *ot, json_t *nt, const char *tname, udb_buf *msg)
{
    const char *ok = json_string_value(json_object_get(ot, "key"));
    const char *nk = json_string_value(json_object_get(nt, "key"));
    if (!ok || !nk || strcmp(ok, nk) != 0) {
        udb__buf_printf(msg, "type \"%s\": the key field differs (stored \"%s\", given \"%s\")",
                        tname, ok ? ok : "?", nk ? nk : "?");
        return UDB_ESCHEMA;
    }
    json_t *of = json_object_get(ot, "fields"), *nf = json_object_get(nt, "fields");
    const char *name;
    json_t *nd;
    json_object_foreach(nf, name, nd) {
        json_t *od = json_object_get(of, name);
        if (!od) {
            json_object_set(of, name, nd);
            continue;
        }
        if (!json_equal(json_object_get(od, "type"), json_object_get(nd, "type"))) {
            udb__buf_printf(msg, "type \"%s\": field \"%s\" is %s in the stored schema, %s in "
                            "the given one", tname, name,
                            json_string_value(json_object_get(od, "type")),
                            json_string_value(json_object_get(nd, "type")));
            return UDB_ESCHEMA;
        }
        if (json_is_true(json_object_get(nd, "required")))
            json_object_set_new(od, "required", json_true());
        json_t *ov = json_object_get(od, "values"), *nv = json_object_get(nd, "values");
        size_t i, j;
        json_t *v, *w;
        json_array_foreach(nv, i, v) {
            bool had = false;
            json_array_foreach(ov, j, w)
                had |= json_equal(v, w);
            if (!had)
                json_array_append(ov, v);
        }
    }
    static const char *const kinds[] = {"unique", "indexes"};
    for (int k = 0; k < 2; k++) {
        json_t *nset = json_object_get(nt, kinds[k]);
        json_object_foreach(nset, name, nd) {
            if (json_object_get(json_object_get(ot, "unique"), name) ||
                json_object_get(json_object_get(ot, "indexes"), name))
                continue;   /* the stored definition wins */
            json_t *oset = json_object_get(ot, kinds[k]);
            if (!oset) {
                oset = json_object();
                json_object_set_new(ot, kinds[k], oset);
            }
            json_object_set(oset, name, nd);
        }
    }
    return 0;
}

/* The text of o plus what n adds, into *out (malloc'd). */
static int merge_keep(char **out, const udb_schema *o, const udb_schema *n, udb_buf *msg)
{
    json_t *oj = json_loadb(o->json, o->json_len, 0, NULL);
    json_t *nj = json_loadb(n->json, n->json_len, 0, NULL);
    int rc = UDB_ENOMEM;
    if (!oj || !nj)
        goto out;
    json_t *otypes = json_object_get(oj, "types"), *ntypes = json_object_get(nj, "types");
    const char *name;
    json_t *nt;
    rc = 0;
    json_object_foreach(ntypes, name, nt) {
        json_t *ot = json_object_get(otypes, name);
        if (!ot)
            json_object_set(otypes, name, nt);
        else if ((rc = merge_type(ot, nt, name, msg)))
            goto out;
    }
    *out = json_dumps(oj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    rc = *out ? 0 : UDB_ENOMEM;
out:
    json_decref(oj);
    json_decref(nj);
    return rc;
}


void udb__schema_explain_race(udb_buf *msg, const udb_schema *seen, const udb_schema *stored)
{
    udb_buf added = {0}, removed = {0}, m = {0};
    describe(&added, &removed, seen, stored, NULL);
    udb__buf_printf(&m, "the stored schema changed underneath this call (another process or "
                    "thread applied one since this database handle last read it): ");
    prefixed(&m, &added, "", "; ");
    if (removed.len)
        prefixed(&m, &removed, added.len ? "; removed " : "removed ", "; removed ");
    if (!added.len && !removed.len)
        udb__buf_printf(&m, "it was rewritten");
    udb__buf_printf(&m, ". Against the schema stored now: %s",
                    msg->p ? (char *)msg->p : "refused");
    udb__buf_free(msg);
    *msg = m;
    udb__buf_free(&added);
    udb__buf_free(&removed);
}


int udb__schema_plan(udb_schema **s, const udb_schema *old, unsigned flags,
                     const udb_plan_store *st, udb_buf *msg, udb_buf *report)
{
    udb_buf added = {0}, removed = {0}, kept = {0}, none = {0};
    int rc = 0;
    if ((flags & UDB_SCHEMA_KEEP) && old) {
        char *merged = NULL;
        udb_schema *m = NULL;
        describe(&none, &kept, old, *s, NULL);
        if (!(rc = merge_keep(&merged, old, *s, msg)))
            rc = udb__schema_parse(&m, merged, strlen(merged), msg);
        free(merged);
        if (rc)
            goto out;
        udb__schema_free(*s);
        *s = m;
    }
    for (size_t i = 0; old && i < old->ntypes && !rc; i++) {
        const udb_type *n = udb__schema_type(*s, old->types[i].name);
        if (n)
            rc = diff_type(msg, st, &old->types[i], n);
    }
    if (rc)
        goto out;
    describe(&added, &removed, old, *s, st);
    if (removed.len && !(flags & UDB_SCHEMA_DROP)) {
        udb__buf_printf(msg, "this schema would remove or weaken: ");
        prefixed(msg, &removed, "", "; ");
        udb__buf_printf(msg, ". Nothing was changed. To remove them, apply with "
                        "UDB_SCHEMA_DROP (uniqdb init --drop); to keep them and add only what "
                        "is new, with UDB_SCHEMA_KEEP (uniqdb init --keep)");
        rc = UDB_ESCHEMA;
        goto out;
    }
    prefixed(report, &added, "", "\n");
    if (removed.len)
        prefixed(report, &removed, report->len ? "\nremoved " : "removed ", "\nremoved ");
    if (kept.len)
        prefixed(report, &kept, report->len ? "\nkept " : "kept ", "\nkept ");
    if (kept.len)
        udb__buf_printf(report, " (not in the given schema)");
    rc = msg->oom || report->oom ? UDB_ENOMEM : 0;
out:
    udb__buf_free(&added);
    udb__buf_free(&removed);
    udb__buf_free(&kept);
    udb__buf_free(&none);
    return rc;
}
