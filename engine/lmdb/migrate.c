/*
 * migrate.c -- applying a schema: first use, no-op re-application, the
 * additive changes (new types, optional fields, enum values, indexes built on
 * the spot), and the removals a caller asked for by name.
 *
 * The whole change is one write transaction: a new unique index that
 * existing records violate fails the change with the colliding keys listed,
 * and nothing is left half-built.  A constraint is never loosened silently:
 * a schema that lacks an index, a type or "required" is refused unless the
 * caller says UDB_SCHEMA_DROP (remove) or UDB_SCHEMA_KEEP (keep, add the
 * rest), because an old app version applying its old schema must not undo
 * what a newer one relies on.  Changes that would strand stored records
 * (removing or retyping a field) are refused whatever the flags.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "env.h"
#include "error.h"
#include "index.h"
#include "longkey.h"
#include "keycodec.h"
#include "layout.h"
#include "mpack.h"
#include "record.h"
#include "schemaplan.h"
#include "txn.h"

#define MAX_LISTED 10

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
        if (strcmp(a->fnames[i], b->fnames[i]) != 0)
            return false;
    if (!a->where || !b->where)
        return a->where == b->where;
    return strcmp(a->where, b->where) == 0;
}

static int type_count(uint64_t *n, const udb_type *t, void *payload)
{
    MDB_txn *txn = payload;
    MDB_stat st;
    int rc = mdb_stat(txn, t->dbi, &st);
    *n = rc ? 0 : st.ms_entries;
    return rc;
}

/* Records of an "extra" type may already carry a field that n now declares:
 * every stored record must fit n, or declaring it would strand them. */
static int check_extra(udb_buf *msg, const udb_type *o, const udb_type *n, void *payload)
{
    MDB_txn *txn = payload;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, o->dbi, &cur);
    if (rc)
        return rc;
    MDB_val rk, rv, k, v;
    udb_buf why = {0}, full = {0};
    for (rc = mdb_cursor_get(cur, &rk, &rv, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &rk, &rv, MDB_NEXT)) {
        if ((rc = udb__lk_decode(&k, &v, &rk, &rv, &full)))
            break;
        udb_rec r;
        udb__rec_init(&r);
        why.len = 0;
        rc = udb__rec_parse(&r, n, v.mv_data, v.mv_size, false, &why);
        udb__rec_free(&r);
        if (rc == UDB_EBADRECORD) {
            udb__buf_printf(msg, "type \"%s\": a stored record does not fit the new field "
                            "declarations: %s", o->name, why.p ? (char *)why.p : "?");
            rc = UDB_ESCHEMA;
        }
        if (rc)
            break;
    }
    mdb_cursor_close(cur);
    udb__buf_free(&why);
    udb__buf_free(&full);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Is the change from o to n allowed?  st counts o's records. */
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

/* Fill a new (empty) index from the type's records. */
static int build_index(udb_buf *msg, udb_txn *txn, const udb_type *t, const udb_index *ix)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(udb__txn_mdb(txn), t->dbi, &cur);
    if (rc)
        return rc;
    MDB_val rk, rv, k, v;
    udb_buf key = {0}, rmsg = {0}, list = {0}, full = {0};
    size_t collisions = 0;
    for (rc = mdb_cursor_get(cur, &rk, &rv, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &rk, &rv, MDB_NEXT)) {
        udb_rec r;
        udb__rec_init(&r);
        bool applies = false;
        rmsg.len = 0;
        rc = udb__lk_decode(&k, &v, &rk, &rv, &full);
        if (rc == 0)
            rc = udb__rec_parse(&r, t, v.mv_data, v.mv_size, false, &rmsg);
        if (rc == 0)
            rc = udb__idx_entry(&key, &applies, t, ix, (const msgpack_object *const *)r.vals,
                                k.mv_data, k.mv_size);
        if (rc == UDB_EBADRECORD)
            udb__buf_printf(msg, "a stored record no longer fits the schema: %s",
                            rmsg.p ? (char *)rmsg.p : "?");
        if (rc == 0 && applies) {
            MDB_val ek = {key.len, key.p}, ev = {ix->unique ? k.mv_size : 0,
                                                 ix->unique ? k.mv_data : (void *)""};
            rc = udb__lk_put(udb__txn_mdb(txn), ix->dbi, &ek, &ev, MDB_NOOVERWRITE);
            if (rc == MDB_KEYEXIST) {
                /* ev now holds the key of the record that got there first */
                if (++collisions <= MAX_LISTED) {
                    msgpack_unpacked up;
                    msgpack_unpacked_init(&up);
                    udb_buf a = {0}, b = {0};
                    msgpack_packer pa, pb;
                    msgpack_packer_init(&pa, &a, udb__buf_sbuffer_write);
                    msgpack_packer_init(&pb, &b, udb__buf_sbuffer_write);
                    const unsigned char *p1 = ev.mv_data, *p2 = k.mv_data;
                    udb__tk_to_msgpack(&pa, &p1, p1 + ev.mv_size);
                    udb__tk_to_msgpack(&pb, &p2, p2 + k.mv_size);
                    udb__buf_printf(&list, "%s", collisions > 1 ? "; " : "");
                    if (a.p && udb__mp_unpack(&up, a.p, a.len) == 0)
                        udb__mp_render(&list, &up.data, true);
                    udb__buf_printf(&list, " and ");
                    if (b.p && udb__mp_unpack(&up, b.p, b.len) == 0)
                        udb__mp_render(&list, &up.data, true);
                    msgpack_unpacked_destroy(&up);
                    udb__buf_free(&a);
                    udb__buf_free(&b);
                }
                rc = 0;
            }
        }
        udb__rec_free(&r);
        if (rc) {
            udb__txn_full(txn, rc);
            break;
        }
    }
    if (rc == MDB_NOTFOUND)
        rc = 0;
    if (!rc && collisions) {
        udb__buf_printf(msg, "new unique index \"%s.%s\" (", t->name, ix->name);
        for (size_t i = 0; i < ix->nfields; i++)
            udb__buf_printf(msg, "%s%s", i ? ", " : "", ix->fnames[i]);
        udb__buf_printf(msg, ") is violated by %zu existing record%s; colliding %s: %s%s",
                        collisions, collisions > 1 ? "s" : "", t->fields[t->key].name,
                        list.p ? (char *)list.p : "", collisions > MAX_LISTED ? "; ..." : "");
        rc = UDB_ECONFLICT;
    }
    mdb_cursor_close(cur);
    udb__buf_free(&key);
    udb__buf_free(&full);
    udb__buf_free(&rmsg);
    udb__buf_free(&list);
    return rc;
}

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
        udb__buf_printf(b, "%s%s", i ? ", " : "", ix->fnames[i]);
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

/* ---- applying ------------------------------------------------------------ */

typedef struct apply_ctx {
    udb_env *env;
    const char *json;          /* the caller's schema text */
    size_t len;
    unsigned flags;
    const udb_schema *seen;    /* the stored schema as this env knew it at the call */
    uint64_t seen_gen;
    udb_buf msg, report;
    udb_locked_fn locked;      /* udb_schema_apply_notify: told once the writer slot is ours */
    void *payload;
} apply_ctx;

/* The refusal in a->msg gets a preface when the stored schema moved since
 * the call began: the caller's schema was written against another one. */
static void explain_race(apply_ctx *a, const udb_schema *stored, uint64_t gen)
{
    if (gen == a->seen_gen)
        return;
    udb_buf added = {0}, removed = {0}, m = {0};
    describe(&added, &removed, a->seen, stored, NULL);
    udb__buf_printf(&m, "the stored schema changed underneath this call (another process or "
                    "thread applied one since this database handle last read it): ");
    prefixed(&m, &added, "", "; ");
    if (removed.len)
        prefixed(&m, &removed, added.len ? "; removed " : "removed ", "; removed ");
    if (!added.len && !removed.len)
        udb__buf_printf(&m, "it was rewritten");
    udb__buf_printf(&m, ". Against the schema stored now: %s",
                    a->msg.p ? (char *)a->msg.p : "refused");
    udb__buf_free(&a->msg);
    a->msg = m;
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

/* The LMDB store of the rules: counts and record checks in the write txn. */
static int plan(apply_ctx *a, udb_schema **s, const udb_schema *old, MDB_txn *mdb)
{
    udb_plan_store st = {type_count, check_extra, mdb};
    return udb__schema_plan(s, old, a->flags, &st, &a->msg, &a->report);
}

/* One attempt at applying a->json (an attempt for udb__grow_retry): parsed
 * afresh each time, because a schema that is not installed is freed. */
static int apply_once(size_t *grow_at, void *arg)
{
    apply_ctx *a = arg;
    udb_env *env = a->env;
    udb_schema *s = NULL;
    udb_txn *txn;
    a->msg.len = 0;
    a->report.len = 0;
    int rc = udb__schema_parse(&s, a->json, a->len, &a->msg);
    if (rc)
        return rc;
    if ((rc = udb__txn_begin_raw(&txn, env, 0, NULL))) {
        udb__schema_free(s);
        return rc;
    }
    if (a->locked)
        a->locked(a->payload);
    const udb_schema *old = udb__txn_schema(txn);
    bool locked = false;
    uint64_t gen = 0;
    MDB_dbi meta = udb__env_meta_dbi(env);
    if ((rc = udb__meta_gen(&gen, udb__txn_mdb(txn), meta)))
        goto out;
    if ((rc = plan(a, &s, old, udb__txn_mdb(txn)))) {
        if (rc == UDB_ESCHEMA)
            explain_race(a, old, gen);
        goto out;
    }
    if (old && old->json_len == s->json_len && memcmp(old->json, s->json, s->json_len) == 0)
        goto out;   /* the stored schema already: nothing to do */
    udb__env_dbi_lock(env);
    locked = true;
    rc = udb__schema_open_dbis(s, udb__txn_mdb(txn), MDB_CREATE);
    if (rc == MDB_DBS_FULL) {
        size_t need = 2;
        for (size_t i = 0; i < s->ntypes; i++)
            need += s->types[i].nidx;
        udb__buf_printf(&a->msg, "this schema needs %zu LMDB named databases (one per type and "
                        "per index, and 2), more than the %u this handle was opened with: "
                        "open the database with udb_options.max_dbs of at least %zu (the "
                        "uniqdb tool does that itself); later opens size it from what is "
                        "stored", need, udb__env_maxdbs(env), need + 64);
    }
    for (size_t i = 0; i < s->ntypes && !rc; i++) {
        const udb_type *t = &s->types[i];
        const udb_type *ot = old ? udb__schema_type(old, t->name) : NULL;
        for (size_t x = 1; x < t->nidx && !rc; x++) {
            const udb_index *ix = &t->idx[x], *ox = ot ? udb__type_index(ot, ix->name) : NULL;
            if (ox && udb__same_index(ix, ox))
                continue;
            /* new, or redefined: start from empty and build from the records */
            if ((rc = mdb_drop(udb__txn_mdb(txn), ix->dbi, 0)) == 0)
                rc = build_index(&a->msg, txn, t, ix);
        }
    }
    /* types and indexes that disappeared (or moved between unique and not) */
    for (size_t i = 0; old && i < old->ntypes && !rc; i++) {
        const udb_type *ot = &old->types[i], *t = udb__schema_type(s, ot->name);
        for (size_t x = 1; x < ot->nidx && !rc; x++) {
            const udb_index *nx = t ? udb__type_index(t, ot->idx[x].name) : NULL;
            if (!nx || nx->unique != ot->idx[x].unique)
                rc = mdb_drop(udb__txn_mdb(txn), ot->idx[x].dbi, 1);
        }
        if (!t && !rc)
            rc = mdb_drop(udb__txn_mdb(txn), ot->dbi, 1);
    }
    if (!rc)
        rc = udb__meta_put_schema(udb__txn_mdb(txn), meta, s->json, s->json_len, gen + 1);
out:
    udb__txn_full(txn, rc);
    if (rc || !locked) {
        *grow_at = udb__txn_full_at(txn);
        udb__txn_end(txn, false);
    } else {
        size_t at = udb__mapsize(env);
        rc = udb__txn_end(txn, true);
        if (rc == MDB_MAP_FULL)
            *grow_at = at;
        if (!rc) {
            udb__env_install_schema(env, s, gen + 1);
            s = NULL;
        }
    }
    if (locked)
        udb__env_dbi_unlock(env);
    udb__schema_free(s);
    return rc;
}

int udb_schema_apply(char **changes, udb_env *env, const char *json, size_t len, unsigned flags)
{
    return udb_schema_apply_notify(changes, env, json, len, flags, NULL, NULL);
}

int udb_schema_apply_notify(char **changes, udb_env *env, const char *json, size_t len,
                            unsigned flags, udb_locked_fn locked, void *payload)
{
    if (!env || !json)
        return udb__env_err(UDB_EINVAL, "udb_schema_apply: env and json are required");
    if ((flags & ~(UDB_SCHEMA_KEEP | UDB_SCHEMA_DROP)) ||
        (flags & UDB_SCHEMA_KEEP && flags & UDB_SCHEMA_DROP))
        return udb__env_err(UDB_EINVAL, "udb_schema_apply: flags 0x%x: UDB_SCHEMA_KEEP and "
                            "UDB_SCHEMA_DROP are the only flags, and exclusive", flags);
    apply_ctx a = {.env = env, .json = json, .len = len, .flags = flags, .locked = locked,
                   .payload = payload};
    udb_schema *seen;
    udb__env_current(env, &seen, &a.seen_gen);
    a.seen = seen;              /* never freed before close (retired, not freed) */
    int rc = udb__grow_retry(env, apply_once, &a);
    if (rc) {
        udb__env_err(rc, "%s", a.msg.len ? (char *)a.msg.p : udb_strerror(rc));
    } else if (changes) {
        char *text = malloc(a.report.len + 1);
        if (!text) {
            rc = udb__env_err(UDB_ENOMEM, "udb_schema_apply: out of memory (the schema was "
                              "applied)");
        } else {
            if (a.report.len)
                memcpy(text, a.report.p, a.report.len);
            text[a.report.len] = '\0';
            *changes = text;
        }
    }
    udb__buf_free(&a.msg);
    udb__buf_free(&a.report);
    return rc;
}

/* ---- older on-disk formats ------------------------------------------------
 * Format 1 left records with a NULL out of unique indexes with NULLs
 * distinct; format 2 holds them (index.c).  Formats 1 and 2 stored keys of
 * 504 to 511 bytes as they were; format 3 stores every key longer than
 * UDB_KEY_INLINE in the long form (longkey.h).  Records with such keys are
 * moved, then every index is rebuilt from the records, which is what an
 * index of any older format needs. */

/* Before format 3 a key of 504 to 511 bytes was stored as it is: move such
 * records to the long-key form (longkey.h). */
static int relocate_long_keys(MDB_txn *txn, MDB_dbi dbi)
{
    udb_buf keys = {0};
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc)
        return rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size <= UDB_KEY_INLINE)
            continue;
        unsigned char n[2] = {(unsigned char)(k.mv_size >> 8), (unsigned char)k.mv_size};
        udb__buf_put(&keys, n, 2);
        udb__buf_put(&keys, k.mv_data, k.mv_size);
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        rc = keys.oom ? UDB_ENOMEM : 0;
    for (size_t off = 0; !rc && off < keys.len;) {
        MDB_val rk = {(size_t)keys.p[off] << 8 | keys.p[off + 1], keys.p + off + 2};
        rc = udb__lk_relocate(txn, dbi, &rk);
        off += 2 + rk.mv_size;
    }
    udb__buf_free(&keys);
    return rc;
}

static int upgrade_once(size_t *grow_at, void *arg)
{
    udb_env *env = arg;
    udb_txn *txn;
    udb_buf msg = {0};
    int rc = udb__txn_begin_raw(&txn, env, 0, NULL);
    if (rc)
        return rc;
    MDB_txn *mdb = udb__txn_mdb(txn);
    MDB_dbi meta = udb__env_meta_dbi(env);
    const udb_schema *s = udb__txn_schema(txn);
    uint64_t f = 0;
    if ((rc = udb__meta_u64(&f, mdb, meta, &udb__meta_format)) || f >= UDB_FORMAT_VERSION)
        goto out;   /* another process upgraded it first */
    for (size_t i = 0; s && i < s->ntypes && !rc && f < 3; i++)
        rc = relocate_long_keys(mdb, s->types[i].dbi);
    for (size_t i = 0; s && i < s->ntypes && !rc; i++)
        for (size_t x = 1; x < s->types[i].nidx && !rc; x++)
            if ((rc = mdb_drop(mdb, s->types[i].idx[x].dbi, 0)) == 0)
                rc = build_index(&msg, txn, &s->types[i], &s->types[i].idx[x]);
    if (!rc)
        rc = udb__meta_put_u64(mdb, meta, &udb__meta_format, UDB_FORMAT_VERSION);
out:
    udb__txn_full(txn, rc);
    *grow_at = udb__txn_full_at(txn);
    if (rc) {
        udb__txn_end(txn, false);
        udb__env_err(rc, "udb_open: upgrading the database from format %llu to %d: %s",
                     (unsigned long long)f, UDB_FORMAT_VERSION,
                     msg.len ? (char *)msg.p : udb_strerror(rc));
    } else {
        size_t at = udb__mapsize(env);
        if ((rc = udb__txn_end(txn, true)) == MDB_MAP_FULL)
            *grow_at = at;
    }
    udb__buf_free(&msg);
    return rc;
}

int udb__upgrade_format(udb_env *env)
{
    return udb__grow_retry(env, upgrade_once, env);
}

int udb_txn_schema_json(const char **out, size_t *len, udb_txn *txn)
{
    if (!out || !txn)
        return UDB_EINVAL;
    udb__clear(txn);
    const udb_schema *s = udb__txn_schema(txn);
    if (!s)
        return udb__err(txn, UDB_ENOTFOUND, "no schema has been applied to this database");
    *out = s->json;
    if (len)
        *len = s->json_len;
    return 0;
}
