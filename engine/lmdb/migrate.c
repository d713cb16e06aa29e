/*
 * migrate.c -- applying a schema: first use, no-op re-application, the
 * additive changes (new types, optional fields, enum values, indexes built on
 * the spot), and the removals a caller asked for by name.
 *
 * The whole change is one write transaction: a new unique index that
 * existing records violate fails the change with the colliding keys listed,
 * and nothing is left half-built.  What a change may do, and what it needs
 * UDB_SCHEMA_DROP or UDB_SCHEMA_KEEP for, is the core's (schemaplan.c); this
 * is the LMDB side: its store of answers, the transaction, building indexes,
 * dropping databases.
 */
#include <inttypes.h>
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


static int build_index(udb_buf *msg, udb_txn *txn, const udb_schema *s, const udb_type *t,
                       const udb_index *ix)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(udb__txn_mdb(txn), udb__type_dbi(s, t), &cur);
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
            rc = udb__lk_put(udb__txn_mdb(txn), udb__dbi(s, ix), &ek, &ev, MDB_NOOVERWRITE);
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
                    udb__mp_done(&up);
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


/* The rules' questions (schemaplan.h) about the stored schema's records,
 * answered in the write transaction (payload) through the backend. */
static int plan_count(uint64_t *out, const udb_type *t, void *payload)
{
    udb_txn *txn = payload;
    return udb__txn_backend(txn)->count(out, txn, udb__txn_schema(txn), t);
}

static int plan_fits(udb_buf *msg, const udb_type *o, const udb_type *n, void *payload)
{
    udb_txn *txn = payload;
    return udb__schema_fits(msg, txn, udb__txn_schema(txn), o, n);
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
    udb_plan_store st = {plan_count, plan_fits, txn};
    if ((rc = udb__schema_plan(&s, old, a->flags, &st, &a->msg, &a->report))) {
        if (rc == UDB_ESCHEMA && gen != a->seen_gen)
            udb__schema_explain_race(&a->msg, a->seen, old);
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
            if ((rc = mdb_drop(udb__txn_mdb(txn), udb__dbi(s, ix), 0)) == 0)
                rc = build_index(&a->msg, txn, s, t, ix);
        }
    }
    /* types and indexes that disappeared (or moved between unique and not) */
    for (size_t i = 0; old && i < old->ntypes && !rc; i++) {
        const udb_type *ot = &old->types[i], *t = udb__schema_type(s, ot->name);
        for (size_t x = 1; x < ot->nidx && !rc; x++) {
            const udb_index *nx = t ? udb__type_index(t, ot->idx[x].name) : NULL;
            if (!nx || nx->unique != ot->idx[x].unique)
                rc = mdb_drop(udb__txn_mdb(txn), udb__dbi(old, &ot->idx[x]), 1);
        }
        if (!t && !rc)
            rc = mdb_drop(udb__txn_mdb(txn), udb__type_dbi(old, ot), 1);
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

int udb__lmdb_schema_apply(char **changes, udb_env *env, const char *json, size_t len,
                           unsigned flags, udb_locked_fn locked, void *payload)
{
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
        rc = relocate_long_keys(mdb, udb__type_dbi(s, &s->types[i]));
    for (size_t i = 0; s && i < s->ntypes && !rc; i++)
        for (size_t x = 1; x < s->types[i].nidx && !rc; x++)
            if ((rc = mdb_drop(mdb, udb__dbi(s, &s->types[i].idx[x]), 0)) == 0)
                rc = build_index(&msg, txn, s, &s->types[i], &s->types[i].idx[x]);
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
