/*
 * migrate.c -- applying a schema: first use, no-op re-application, and the
 * allowed changes (new types, optional fields, enum values, indexes built on
 * the spot, indexes dropped).
 *
 * The whole change is one write transaction: a new unique index that
 * existing records violate fails the change with the colliding keys listed,
 * and nothing is left half-built.  Changes that would strand stored data
 * (removing or retyping a field, removing a type) are refused.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define MAX_LISTED 10

static const udb_field *find_field(const udb_type *t, const char *name)
{
    for (size_t i = 0; i < t->nfields; i++)
        if (strcmp(t->fields[i].name, name) == 0)
            return &t->fields[i];
    return NULL;
}

static bool same_index(const udb_index *a, const udb_index *b)
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

static int type_count(uint64_t *n, MDB_txn *txn, const udb_type *t)
{
    MDB_stat st;
    int rc = mdb_stat(txn, t->dbi, &st);
    *n = rc ? 0 : st.ms_entries;
    return rc;
}

/* Records of an "extra" type may already carry a field that n now declares:
 * every stored record must fit n, or declaring it would strand them. */
static int check_extra(udb_buf *msg, MDB_txn *txn, const udb_type *o, const udb_type *n)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, o->dbi, &cur);
    if (rc)
        return rc;
    MDB_val k, v;
    udb_buf why = {0};
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
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
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Is the change from o to n allowed?  o's handles are valid in txn. */
static int diff_type(udb_buf *msg, MDB_txn *txn, const udb_type *o, const udb_type *n)
{
    uint64_t count;
    int rc = type_count(&count, txn, o);
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
    return o->extra && gained && count ? check_extra(msg, txn, o, n) : 0;
}

/* Fill a new (empty) index from the type's records. */
static int build_index(udb_buf *msg, udb_txn *txn, const udb_type *t, const udb_index *ix)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn->mdb, t->dbi, &cur);
    if (rc)
        return rc;
    MDB_val k, v;
    udb_buf key = {0}, rmsg = {0}, list = {0};
    size_t collisions = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        udb_rec r;
        udb__rec_init(&r);
        bool applies = false;
        rmsg.len = 0;
        rc = udb__rec_parse(&r, t, v.mv_data, v.mv_size, false, &rmsg);
        if (rc == 0)
            rc = udb__idx_entry(&key, &applies, t, ix, (const msgpack_object *const *)r.vals,
                                k.mv_data, k.mv_size);
        if (rc == UDB_EBADRECORD)
            udb__buf_printf(msg, "a stored record no longer fits the schema: %s",
                            rmsg.p ? (char *)rmsg.p : "?");
        if (rc == 0 && applies && key.len > txn->env->keymax) {
            udb__buf_printf(msg, "key of new index \"%s.%s\" would be %zu bytes; the limit is %zu",
                            t->name, ix->name, key.len, txn->env->keymax);
            rc = UDB_EKEYTOOLONG;
        }
        if (rc == 0 && applies) {
            MDB_val ek = {key.len, key.p}, ev = {ix->unique ? k.mv_size : 0,
                                                 ix->unique ? k.mv_data : (void *)""};
            rc = mdb_put(txn->mdb, ix->dbi, &ek, &ev, MDB_NOOVERWRITE);
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
            if (rc == MDB_MAP_FULL && !txn->map_full) {
                txn->map_full = true;
                txn->map_full_at = udb__mapsize(txn->env);
            }
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
    udb__buf_free(&rmsg);
    udb__buf_free(&list);
    return rc;
}

/* One attempt at applying s.  *installed says whether s now belongs to env. */
static int apply_once(udb_env *env, udb_schema *s, udb_buf *msg, bool *installed,
                      bool *grow, size_t *grow_at)
{
    udb_txn *txn;
    int rc = udb__txn_begin_raw(&txn, env, 0, NULL);
    if (rc)
        return rc;
    const udb_schema *old = txn->schema;
    if (old && old->json_len == s->json_len && memcmp(old->json, s->json, s->json_len) == 0) {
        udb__txn_end(txn, false);
        return 0;   /* the stored schema already: nothing to do */
    }
    for (size_t i = 0; old && i < old->ntypes && !rc; i++) {
        const udb_type *n = udb__schema_type(s, old->types[i].name);
        if (!n) {
            udb__buf_printf(msg, "type \"%s\" cannot be removed", old->types[i].name);
            rc = UDB_ESCHEMA;
        } else {
            rc = diff_type(msg, txn->mdb, &old->types[i], n);
        }
    }
    if (rc) {
        udb__txn_end(txn, false);
        return rc;
    }
    pthread_mutex_lock(&env->dbi_lock);
    rc = udb__schema_open_dbis(s, txn->mdb, MDB_CREATE);
    for (size_t i = 0; i < s->ntypes && !rc; i++) {
        const udb_type *t = &s->types[i];
        const udb_type *ot = old ? udb__schema_type(old, t->name) : NULL;
        for (size_t x = 1; x < t->nidx && !rc; x++) {
            const udb_index *ix = &t->idx[x], *ox = ot ? udb__type_index(ot, ix->name) : NULL;
            if (ox && same_index(ix, ox))
                continue;
            /* new, or redefined: start from empty and build from the records */
            if ((rc = mdb_drop(txn->mdb, ix->dbi, 0)) == 0)
                rc = build_index(msg, txn, t, ix);
        }
    }
    /* indexes that disappeared (or moved between unique and not) */
    for (size_t i = 0; old && i < old->ntypes && !rc; i++) {
        const udb_type *ot = &old->types[i], *t = udb__schema_type(s, ot->name);
        for (size_t x = 1; x < ot->nidx && !rc; x++) {
            const udb_index *nx = udb__type_index(t, ot->idx[x].name);
            if (!nx || nx->unique != ot->idx[x].unique)
                rc = mdb_drop(txn->mdb, ot->idx[x].dbi, 1);
        }
    }
    uint64_t gen = 0;
    if (!rc)
        rc = udb__meta_gen(&gen, txn->mdb, env);
    if (!rc) {
        unsigned char g[8];
        udb__put_be64(g, gen + 1);
        MDB_val gk = {3, (void *)"gen"}, gv = {8, g};
        MDB_val sk = {6, (void *)"schema"}, sv = {s->json_len, s->json};
        rc = mdb_put(txn->mdb, env->meta_dbi, &sk, &sv, 0);
        if (!rc)
            rc = mdb_put(txn->mdb, env->meta_dbi, &gk, &gv, 0);
    }
    if (rc == MDB_MAP_FULL && !txn->map_full) {
        txn->map_full = true;
        txn->map_full_at = udb__mapsize(env);
    }
    *grow_at = txn->map_full_at;
    if (rc) {
        *grow = txn->map_full;
        udb__txn_end(txn, false);
    } else {
        *grow_at = udb__mapsize(env);
        rc = udb__txn_end(txn, true);
        *grow = rc == MDB_MAP_FULL;
        if (!rc) {
            udb__env_install_schema(env, s, gen + 1);
            *installed = true;
        }
    }
    pthread_mutex_unlock(&env->dbi_lock);
    return rc;
}

int udb_schema_apply(udb_env *env, const char *json, size_t len)
{
    if (!env || !json)
        return udb__env_err(UDB_EINVAL, "udb_schema_apply: env and json are required");
    udb_schema *s;
    udb_buf msg = {0};
    int rc = udb__schema_parse(&s, json, len, &msg);
    for (int attempt = 0; !rc; attempt++) {
        bool installed = false, grow = false;
        size_t at = 0;
        msg.len = 0;
        rc = apply_once(env, s, &msg, &installed, &grow, &at);
        if (!installed)
            udb__schema_free(s);
        if (!grow || attempt > 60)
            break;
        if ((rc = udb__grow(env, at)))
            break;
        /* the failed attempt freed s: parse again for the next one */
        rc = udb__schema_parse(&s, json, len, &msg);
    }
    if (rc)
        udb__env_err(rc, "%s", msg.len ? (char *)msg.p : udb_strerror(rc));
    udb__buf_free(&msg);
    return rc;
}

int udb_schema_json(char **out, udb_env *env)
{
    if (!out || !env)
        return UDB_EINVAL;
    int rc = udb__env_reload_schema(env);
    if (rc)
        return rc;
    pthread_mutex_lock(&env->lock);
    const udb_schema *s = env->schema;
    char *copy = s ? malloc(s->json_len + 1) : NULL;
    if (copy)
        memcpy(copy, s->json, s->json_len + 1);
    pthread_mutex_unlock(&env->lock);
    if (!s)
        return udb__env_err(UDB_ENOTFOUND, "no schema has been applied to this database");
    if (!copy)
        return UDB_ENOMEM;
    *out = copy;
    return 0;
}

int udb_txn_schema_json(const char **out, size_t *len, udb_txn *txn)
{
    if (!out || !txn)
        return UDB_EINVAL;
    udb__clear(txn);
    if (!txn->schema)
        return udb__err(txn, UDB_ENOTFOUND, "no schema has been applied to this database");
    *out = txn->schema->json;
    if (len)
        *len = txn->schema->json_len;
    return 0;
}
