/*
 * check.c -- the consistency check and per-type statistics.
 *
 * The check walks both directions in one read snapshot: every record must
 * parse against its schema, sit under its own key and have exactly the index
 * entries udb__idx_entry says it should; every index entry must point to a
 * record that produces exactly that entry.  It reads raw LMDB data and
 * trusts nothing, so it also works on files damaged underneath us.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "index.h"
#include "longkey.h"
#include "keycodec.h"
#include "layout.h"
#include "mpack.h"
#include "record.h"
#include "seq.h"
#include "txn.h"

typedef struct checker {
    udb_txn *txn;
    size_t problems;
    udb_report_fn report;
    udb_progress_fn progress;
    void *ctx;
    uint64_t done, total;      /* entries walked, entries in the snapshot */
    udb_buf line;
    const udb_type *t;         /* what is being walked */
    const udb_index *ix;
    udb_buf key, msg, head;    /* scratch, reused per entry */
    udb_buf full;              /* the full key of a long-key entry (longkey.h) */
    udb_buf last;              /* the raw key of the last entry walked */
    uint64_t walked;           /* entries of the database being walked */
    bool renew;                /* a lookup failed in LMDB: the snapshot is refused */
} checker;

/* Damage: LMDB's codes for a damaged file, and uniqdb's own finding (an
 * entry of garbage size or out of order, layout.h). */
static bool damage(int rc)
{
    return rc == UDB_ECORRUPT || udb__mdb_damage(rc) ||
           (rc <= MDB_KEYEXIST && rc >= MDB_LAST_ERRCODE && rc != MDB_NOTFOUND &&
            rc != MDB_MAP_RESIZED && rc != MDB_READERS_FULL && rc != MDB_BAD_TXN);
}

static const char *damage_text(int rc)
{
    return rc == UDB_ECORRUPT ? "an entry of garbage size, or out of key order"
                              : mdb_strerror(rc);
}

/* The full key and value of a raw entry; a damaged long-key trailer is a
 * problem reported here (returns false). */
static bool decode_entry(checker *c, MDB_val *k, MDB_val *v, const MDB_val *rk,
                         const MDB_val *rv);

static void problem(checker *c, const char *fmt, const void *k1, size_t n1, const void *k2,
                    size_t n2, const char *tail)
{
    /* fmt has up to two %K slots for tuples, filled from k1 and k2 */
    udb_buf *b = &c->line;
    b->len = 0;
    b->oom = false;
    int slot = 0;
    for (const char *f = fmt; *f; f++) {
        if (f[0] == '%' && f[1] == 'K') {
            if (slot++ == 0)
                udb__tk_render(b, k1, n1);
            else
                udb__tk_render(b, k2, n2);
            f++;
        } else {
            udb__buf_byte(b, (unsigned char)*f);
        }
    }
    if (tail)
        udb__buf_printf(b, "%s", tail);
    c->problems++;
    if (c->report && b->p)
        c->report((const char *)b->p, c->ctx);
}

/* One more entry walked: tell the caller every 4096. */
static void tick(checker *c)
{
    if (++c->done % 4096 == 0 && c->progress)
        c->progress(c->done, c->total, c->ctx);
}

/* Where the walk is, for a report of where it had to stop. */
static void seen(checker *c, const MDB_val *k)
{
    c->walked++;
    c->last.len = 0;
    c->last.oom = false;
    udb__buf_put(&c->last, k->mv_data, k->mv_size);
}

static bool decode_entry(checker *c, MDB_val *k, MDB_val *v, const MDB_val *rk,
                         const MDB_val *rv)
{
    int rc = udb__lk_decode(k, v, rk, rv, &c->full);
    if (rc == 0)
        return true;
    c->head.len = 0;
    if (c->ix && !c->ix->is_pk)
        udb__buf_printf(&c->head, "%s.%s: damaged long-key entry %%K", c->t->name, c->ix->name);
    else
        udb__buf_printf(&c->head, "%s: damaged long-key record %%K", c->t->name);
    problem(c, (char *)c->head.p, rk->mv_data, rk->mv_size, NULL, 0,
            rc == UDB_ENOMEM ? " (out of memory)" : NULL);
    return false;
}

/* One record: it parses, sits under its own key, and is in every index it
 * belongs to. */
static int check_record(void *ctx, const MDB_val *kp, const MDB_val *vp)
{
    checker *c = ctx;
    udb_txn *txn = c->txn;
    const udb_type *t = c->t;
    MDB_val k, v;
    udb_buf *key = &c->key, *msg = &c->msg, *head = &c->head;
    udb_rec r;
    tick(c);
    seen(c, kp);
    if (!decode_entry(c, &k, &v, kp, vp))
        return 0;
    udb__rec_init(&r);
    msg->len = 0;
    head->len = 0;
    udb__buf_printf(head, "%s: record %%K ", t->name);
    int rc = udb__rec_parse(&r, t, v.mv_data, v.mv_size, false, msg);
    if (rc) {
        udb__buf_printf(head, "fails its schema: ");
        problem(c, (char *)head->p, k.mv_data, k.mv_size, NULL, 0,
                msg->p ? (char *)msg->p : udb_strerror(rc));
        udb__rec_free(&r);
        return 0;
    }
    const msgpack_object *const *vals = (const msgpack_object *const *)r.vals;
    for (size_t i = 0; i < t->nidx && !rc; i++) {
        const udb_index *ix = &t->idx[i];
        bool applies;
        if (udb__idx_entry(key, &applies, t, ix, vals, k.mv_data, k.mv_size) || !applies)
            continue;
        MDB_val ek = {key->len, key->p}, ev;
        head->len = 0;
        if (ix->is_pk) {
            if (key->len != k.mv_size || memcmp(key->p, k.mv_data, k.mv_size) != 0) {
                udb__buf_printf(head, "%s: record stored under key %%K has key field %%K",
                                t->name);
                problem(c, (char *)head->p, k.mv_data, k.mv_size, key->p, key->len, NULL);
            }
            continue;
        }
        int grc = udb__lk_get(udb__txn_mdb(txn), udb__dbi(udb__txn_schema(txn), ix), &ek, &ev);
        if (grc == MDB_NOTFOUND) {
            udb__buf_printf(head, "%s.%s: record %%K is missing from the index (entry %%K)",
                            t->name, ix->name);
            problem(c, (char *)head->p, k.mv_data, k.mv_size, key->p, key->len, NULL);
        } else if (grc == UDB_ENOMEM || !damage(grc)) {
            rc = grc;
        } else if (grc) {
            udb__buf_printf(head, "%s.%s: looking up the entry %%K of record %%K failed: %s",
                            t->name, ix->name, damage_text(grc));
            problem(c, (char *)head->p, key->p, key->len, k.mv_data, k.mv_size, NULL);
            if (grc != UDB_ECORRUPT) {
                rc = grc;   /* LMDB refuses the rest of the snapshot: walk() renews it */
                c->renew = true;
            }
        } else if (ix->unique && (ev.mv_size != k.mv_size ||
                                  memcmp(ev.mv_data, k.mv_data, k.mv_size) != 0)) {
            udb__buf_printf(head, "%s.%s: entry for record %%K points to record %%K", t->name,
                            ix->name);
            problem(c, (char *)head->p, k.mv_data, k.mv_size, ev.mv_data, ev.mv_size, NULL);
        }
    }
    uint64_t seq;
    if (!rc && t->seqname && r.vals[t->key] &&
        udb__seq_peek(&seq, txn, t->seqname) == 0 && r.vals[t->key]->via.u64 > seq) {
        head->len = 0;
        udb__buf_printf(head, "%s: record %%K is above the key sequence %s (%" PRIu64 ")",
                        t->name, t->seqname, seq);
        problem(c, (char *)head->p, k.mv_data, k.mv_size, NULL, 0, NULL);
    }
    udb__rec_free(&r);
    return rc;
}

/* One index entry: it points to a record that produces exactly this entry. */
static int check_entry(void *ctx, const MDB_val *kp, const MDB_val *vp)
{
    checker *c = ctx;
    udb_txn *txn = c->txn;
    const udb_type *t = c->t;
    const udb_index *ix = c->ix;
    MDB_val k, pk;
    udb_buf *key = &c->key, *msg = &c->msg, *head = &c->head;
    tick(c);
    seen(c, kp);
    head->len = 0;
    if (!decode_entry(c, &k, &pk, kp, vp))
        return 0;
    if (!ix->unique) {
        const unsigned char *p = k.mv_data, *end = p + k.mv_size;
        bool bad = false;
        for (size_t i = 0; i < ix->nfields && !bad; i++)
            bad = udb__tk_skip(&p, end) != 0;
        if (bad || p == end) {
            udb__buf_printf(head, "%s.%s: damaged entry %%K", t->name, ix->name);
            problem(c, (char *)head->p, k.mv_data, k.mv_size, NULL, 0, NULL);
            return 0;
        }
        pk.mv_data = (void *)p;
        pk.mv_size = (size_t)(end - p);
    }
    MDB_val rv;
    MDB_dbi records = udb__type_dbi(udb__txn_schema(txn), t);
    int rc = pk.mv_size ? udb__lk_get(udb__txn_mdb(txn), records, &pk, &rv) : MDB_NOTFOUND;
    if (rc == MDB_NOTFOUND) {
        udb__buf_printf(head, "%s.%s: entry %%K points to missing record %%K", t->name,
                        ix->name);
        problem(c, (char *)head->p, k.mv_data, k.mv_size, pk.mv_data, pk.mv_size, NULL);
        return 0;
    }
    if (rc && damage(rc)) {
        udb__buf_printf(head, "%s.%s: entry %%K: looking up its record %%K failed: %s",
                        t->name, ix->name, damage_text(rc));
        problem(c, (char *)head->p, k.mv_data, k.mv_size, pk.mv_data, pk.mv_size, NULL);
        if (rc == UDB_ECORRUPT)
            return 0;
        c->renew = true;   /* LMDB's: walk() renews the snapshot and goes on */
        return rc;
    }
    if (rc)
        return rc;
    udb_rec r;
    udb__rec_init(&r);
    bool applies = false;
    msg->len = 0;
    if (udb__rec_parse(&r, t, rv.mv_data, rv.mv_size, false, msg) == 0 &&
        udb__idx_entry(key, &applies, t, ix, (const msgpack_object *const *)r.vals,
                       pk.mv_data, pk.mv_size) == 0 &&
        (!applies || key->len != k.mv_size || memcmp(key->p, k.mv_data, k.mv_size) != 0)) {
        udb__buf_printf(head, "%s.%s: entry %%K does not match its record %%K", t->name,
                        ix->name);
        problem(c, (char *)head->p, k.mv_data, k.mv_size, pk.mv_data, pk.mv_size,
                applies ? NULL : " (the record does not belong in this index)");
    }
    udb__rec_free(&r);
    return 0;
}

/* Walk one LMDB database with fn.  Damage that stops the walk is a problem
 * (naming where it stopped), and the check goes on with the next database:
 * every damaged one is listed, not just the first. */
/* After an error LMDB refuses the rest of a transaction (MDB_BAD_TXN): go
 * on in a new snapshot of the same file. */
static int renew(checker *c)
{
    udb_env *env = udb__txn_env(c->txn);
    udb__txn_end(c->txn, false);
    c->txn = NULL;
    int rc = udb__txn_begin_raw(&c->txn, env, UDB_RDONLY, NULL);
    if (rc)
        c->txn = NULL;
    return rc;
}

static int walk(checker *c, MDB_dbi dbi, const char *what,
                int (*fn)(void *ctx, const MDB_val *k, const MDB_val *v))
{
    c->last.len = 0;
    c->walked = 0;
    udb_buf from = {0};
    int rc;
    for (;;) {
        c->renew = false;
        MDB_val after = {from.len, from.p};
        rc = udb__each_from(udb__txn_mdb(c->txn), dbi, &after, fn, c);
        if (!rc || !c->renew || !damage(rc))
            break;
        /* the lookup from an entry failed (reported): go on after that entry */
        from.len = 0;
        udb__buf_put(&from, c->last.p, c->last.len);
        int brc = from.oom ? UDB_ENOMEM : renew(c);
        if (brc) {
            udb__buf_free(&from);
            return brc;
        }
    }
    udb__buf_free(&from);
    MDB_stat st;
    if (!rc && mdb_stat(udb__txn_mdb(c->txn), dbi, &st) == 0 && st.ms_entries != c->walked) {
        /* a damaged page header can hide entries without breaking the order */
        c->head.len = 0;
        udb__buf_printf(&c->head, "%s: LMDB counts %" PRIu64 " entries, the walk found %"
                        PRIu64 " (a damaged page hides some)", what, (uint64_t)st.ms_entries,
                        c->walked);
        if (c->head.oom)
            return UDB_ENOMEM;
        problem(c, (char *)c->head.p, NULL, 0, NULL, 0, NULL);
    }
    if (!rc || !damage(rc))
        return rc;
    int brc = rc != UDB_ECORRUPT ? renew(c) : 0;   /* the next database: a new snapshot */
    if (brc)
        return brc;
    c->head.len = 0;
    if (c->last.len)
        udb__buf_printf(&c->head, "%s: the walk stopped after key %%K: %s; the rest of it is "
                        "not checked", what, damage_text(rc));
    else
        udb__buf_printf(&c->head, "%s: the walk stopped at its start: %s; none of it is "
                        "checked", what, damage_text(rc));
    if (c->head.oom)
        return UDB_ENOMEM;
    problem(c, (char *)c->head.p, c->last.p, c->last.len, NULL, 0, NULL);
    return 0;
}

/* A sequence: an 8-byte value under a name. */
static int check_seq(void *ctx, const MDB_val *k, const MDB_val *v)
{
    checker *c = ctx;
    tick(c);
    seen(c, k);
    if (v->mv_size != 8 || k->mv_size > UDB_MAX_SEQ_NAME) {
        c->head.len = 0;
        udb__buf_printf(&c->head, "sequence \"%.*s\": damaged entry (%zu-byte name, %zu-byte "
                        "value)", (int)(k->mv_size > 80 ? 80 : k->mv_size),
                        (const char *)k->mv_data, k->mv_size, v->mv_size);
        if (c->head.oom)
            return UDB_ENOMEM;
        problem(c, (char *)c->head.p, NULL, 0, NULL, 0, NULL);
    }
    return 0;
}

/* Counts of one type of s from LMDB's statistics (idx[0] is the records). */
static int type_stat(udb_type_stat *out, MDB_txn *mdb, const udb_schema *s, const udb_type *t)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < t->nidx; i++) {
        MDB_stat st;
        int rc = mdb_stat(mdb, udb__dbi(s, &t->idx[i]), &st);
        if (rc)
            return rc;
        if (i == 0)
            out->records = st.ms_entries;
        else
            out->index_entries += st.ms_entries;
        out->bytes += (uint64_t)(st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages) *
                      st.ms_psize;
    }
    return 0;
}

/* Records plus index entries of every type, for progress. */
static int count_entries(uint64_t *total, MDB_txn *mdb, const udb_schema *s)
{
    *total = 0;
    for (size_t i = 0; s && i < s->ntypes; i++) {
        udb_type_stat st;
        int rc = type_stat(&st, mdb, s, &s->types[i]);
        if (rc)
            return rc;
        *total += st.records + st.index_entries;
    }
    return 0;
}

int udb__lmdb_check(size_t *problems, udb_env *env, const char *type,
                    udb_report_fn report, udb_progress_fn progress, void *ctx)
{
    checker c = {0};
    c.report = report;
    c.progress = progress;
    c.ctx = ctx;
    int rc = udb__txn_begin_raw(&c.txn, env, UDB_RDONLY, NULL);
    if (rc)
        return udb__env_err(rc, "udb_check: %s", udb_strerror(rc));
    const udb_schema *s = udb__txn_schema(c.txn);
    /* only for progress: a database too damaged to count is still checked */
    if (progress && count_entries(&c.total, udb__txn_mdb(c.txn), s))
        c.total = 0;
    udb_buf what = {0};
    for (size_t i = 0; s && i < s->ntypes && !rc; i++) {
        if (type && strcmp(type, s->types[i].name) != 0)
            continue;
        c.t = &s->types[i];
        c.ix = NULL;
        what.len = 0;
        udb__buf_printf(&what, "%s: records", c.t->name);
        rc = what.oom ? UDB_ENOMEM : walk(&c, udb__type_dbi(s, c.t), (char *)what.p, check_record);
        for (size_t x = 1; x < c.t->nidx && !rc; x++) {
            c.ix = &c.t->idx[x];
            what.len = 0;
            udb__buf_printf(&what, "%s.%s: index", c.t->name, c.ix->name);
            rc = what.oom ? UDB_ENOMEM : walk(&c, udb__dbi(s, c.ix), (char *)what.p, check_entry);
        }
    }
    if (!rc && !type)
        rc = walk(&c, udb__env_seq_dbi(env), "sequences", check_seq);
    udb__buf_free(&what);
    if (!rc && progress)
        progress(c.done, c.total, ctx);
    if (c.txn)
        udb__txn_end(c.txn, false);
    udb__buf_free(&c.line);
    udb__buf_free(&c.key);
    udb__buf_free(&c.msg);
    udb__buf_free(&c.head);
    udb__buf_free(&c.full);
    udb__buf_free(&c.last);
    if (rc)
        return udb__env_err(rc, "udb_check: %s", udb_strerror(rc));
    if (problems)
        *problems = c.problems;
    if (c.problems)
        return udb__env_err(UDB_ECORRUPT, "udb_check: %zu problems found", c.problems);
    return 0;
}

int udb__lmdb_type_stat(udb_type_stat *out, udb_txn *txn, const udb_type *t)
{
    int rc = type_stat(out, udb__txn_mdb(txn), udb__txn_schema(txn), t);
    return rc ? udb__mdb_err(txn, rc, "reading statistics") : 0;
}
