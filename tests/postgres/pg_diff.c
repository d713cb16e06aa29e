/*
 * pg_diff.c -- the public API on LMDB against the same API on PostgreSQL,
 * differentially (issue 24).
 *
 * A fresh LMDB database (a temp dir) and a fresh PostgreSQL one (udb_open of
 * postgresql:///uniqdb_test?schema=<fresh>, under pg_run) every GROUP traces,
 * one schema applied to both -- tracegen.h's types: compound, partial, NULLS NOT
 * DISTINCT and "collate": "nocase" unique indexes, non-unique ones, an auto
 * key, a field of type any, a float, extra fields -- then the same random
 * steps on both, drawn from tracegen.c's generator:
 *   - a write transaction of a few operations that commits or aborts;
 *   - a udb_exec unit (that may fail: all or nothing);
 *   - a udb_write callback (that may return an error: rolled back);
 *   - a read-only transaction.
 * Operations: insert, get, find, update (replace, merge), delete,
 * insert_or_get and upsert on the primary key or a named unique index
 * (partial ones included, both spellings, and unknown ones), insert_first,
 * seq next/get/set (named sequences and the auto key's), and scans (see
 * scans_on_pg).  Every operation's log line must be byte-identical on both:
 * return code, message, the returned record's bytes, the created flag, the
 * chosen candidate, the sequence value, the conflict detail (type, each
 * index, its fields, values and the holder's key).  After each trace both
 * must hold the same records (every type by primary key, in key order: a get
 * over each type's key domain, and a scan when scans are on), the same counts
 * (udb_type_stat_get's records and index entries), the same sequences, and
 * udb_check must say the same (every 50th trace and the last;
 * every trace with --drop-index).
 *
 * usage: pg_diff [--lmdb] [--drop-index TYPE.INDEX] TRACES OPS [SEED]
 *   --lmdb: the second side is another LMDB database (the harness checking
 *           itself; no server needed)
 *   --drop-index: after the schema is applied, drop that unique index from
 *           the server with DROP INDEX (another SQL client's doing): the
 *           negative control, which must FAIL (should_fail).
 * OPS counts record operations; a seed is printed, and given it reruns the
 * same traces (trace n goes on from trace n-1's state within a group of
 * GROUP: a rerun starts at the group's first trace); PG_DIFF_LOG=1 prints
 * what every step did.  A divergence prints the trace, the seed, the step
 * and the first operation whose line differs, with both lines.
 */
#include <inttypes.h>
#include <libpq-fe.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tracegen.h"
#include "uniqdb.h"

/* Scans on both sides (udb_scan on a URL: engine/pg/pgscan.c).  0 leaves
 * them out of a run on PostgreSQL; with --lmdb scans always run. */
static const int scans_on_pg = 1;

static const char schema_json[] =
    "{\"types\": {" TRACEGEN_TYPES "," TRACEGEN_DOC_TYPE "}}";
#define NTYPES 3

/* ---- the indexes, for find, insert_or_get, upsert and scans ----------------------- */

typedef struct ixdef {
    size_t type;      /* in tg_types */
    const char *name; /* NULL: the primary key */
    int unique;
    size_t nf;
    size_t f[2];      /* the fields, positions in the type's fdef list */
} ixdef;

static const ixdef ixs[] = {
    {0, NULL, 1, 1, {0}},          {0, "ab", 1, 2, {1, 2}},   {0, "active_user", 1, 1, {3}},
    {0, "bn", 1, 2, {2, 6}},       {0, "by_status", 0, 2, {4, 1}},
    {1, NULL, 1, 1, {0}},          {1, "x_nd", 1, 1, {1}},    {1, "y_partial", 1, 1, {2}},
    {1, "e_nc", 1, 1, {3}},
    {2, NULL, 1, 1, {0}},          {2, "slug", 1, 1, {1}},    {2, "owner_score", 1, 2, {2, 4}},
    {2, "by_owner", 0, 1, {2}},
};
#define NIXS (sizeof ixs / sizeof ixs[0])

/* ---- one operation, packed, the same bytes for both sides -------------------------- */

enum rkind {
    R_INSERT, R_UPDATE, R_DELETE, R_GET, R_FIND, R_OR_GET, R_UPSERT, R_FIRST,
    R_SEQ_NEXT, R_SEQ_GET, R_SEQ_SET, R_SCAN
};

#define MAXCAND 3

typedef struct rop {
    enum rkind kind;
    const char *type, *index, *seq;
    char index_buf[40];
    unsigned flags;
    uint64_t seqval;
    msgpack_sbuffer rec, key, on_insert, values;
    int has_on_insert;
    msgpack_sbuffer cand[MAXCAND];
    size_t ncand;
    const char *seq_field; /* udb_exec: set from op seq_op, an earlier SEQ_NEXT */
    size_t seq_op;
    char what[600];
} rop;

#define MAXOPS 8

typedef struct step {
    enum { S_TXN, S_EXEC, S_WRITE, S_READ } kind;
    int commit;    /* S_TXN: commit (else abort); S_WRITE: the callback returns 0 */
    size_t n;
    rop ops[MAXOPS];
} step;

static const char *const step_names[] = {"transaction", "udb_exec unit", "udb_write",
                                         "read-only transaction"};

static int scans; /* scan operations in this run */

/* All zero: empty msgpack_sbuffers too (what msgpack_sbuffer_init makes;
 * calling it here made GCC 12's -Warray-bounds see a memset out of bounds). */
static void rop_init(rop *r)
{
    memset(r, 0, sizeof *r);
}

static void rop_free(rop *r)
{
    msgpack_sbuffer_destroy(&r->rec);
    msgpack_sbuffer_destroy(&r->key);
    msgpack_sbuffer_destroy(&r->on_insert);
    msgpack_sbuffer_destroy(&r->values);
    for (size_t i = 0; i < MAXCAND; i++)
        msgpack_sbuffer_destroy(&r->cand[i]);
}

static void step_free(step *s)
{
    for (size_t i = 0; i < s->n; i++)
        rop_free(&s->ops[i]);
}

static void add_what(rop *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_what(rop *r, const char *fmt, ...)
{
    size_t len = strlen(r->what);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->what + len, sizeof r->what - len, fmt, ap);
    va_end(ap);
}

/* A random record of type t: an insert op's fields; the key (absent with an
 * auto key, sometimes). */
static void gen_record(op *o, const tdef *t, int allow_bad)
{
    do
        tg_random_op(o, allow_bad, NTYPES);
    while (o->t != t || o->kind == OP_DELETE);
    o->kind = OP_INSERT;
    for (size_t f = 0; f < t->nfields; f++)
        if (o->v[f].st == V_NULL)
            o->v[f].st = V_ABSENT;
}

static void pack_or_die(msgpack_sbuffer *rec, msgpack_sbuffer *key, const op *o)
{
    if (tg_pack_op(rec, key, o)) {
        fprintf(stderr, "pg_diff: the generator made a value it cannot pack\n");
        exit(2);
    }
}

/* An index of type ti (unique only, unless any); its name in one of the
 * spellings (or the primary key as NULL or its field's name), rarely one that
 * does not exist. */
static const ixdef *gen_index(rop *r, size_t ti, int any)
{
    const ixdef *c[8];
    size_t n = 0;
    for (size_t i = 0; i < NIXS; i++)
        if (ixs[i].type == ti && (any || ixs[i].unique))
            c[n++] = &ixs[i];
    const ixdef *ix = c[tg_pick((unsigned)n)];
    unsigned how = tg_pick(20);
    if (how == 0) {
        r->index = "nope";
        ix = NULL;
    } else if (!ix->name) {
        r->index = how < 10 ? NULL : tg_types[ti].fields[0].name;
    } else if (how < 8) {
        snprintf(r->index_buf, sizeof r->index_buf, "%s.%s", tg_types[ti].name, ix->name);
        r->index = r->index_buf;
    } else {
        r->index = ix->name;
    }
    add_what(r, " index=%s", r->index ? r->index : "(primary key)");
    return ix;
}

/* k values (nil sometimes) for the fields of ix, as a msgpack array. */
static void gen_values(rop *r, const ixdef *ix, size_t k)
{
    const tdef *t = &tg_types[ix ? ix->type : 0];
    msgpack_packer pk;
    msgpack_packer_init(&pk, &r->values, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, k);
    add_what(r, " [");
    for (size_t i = 0; i < k; i++) {
        val v = {V_NULL, ""};
        size_t f = ix ? ix->f[i] : 0;
        if (!ix || tg_pick(5))
            tg_random_value(&v, t, f, 0);
        if (tg_pack_val(&pk, &t->fields[f], &v))
            exit(2);
        add_what(r, "%s%s", i ? ", " : "", v.st == V_NULL ? "null" : v.text);
    }
    add_what(r, " ]");
}

static const char *const seqs[] = {"s1", "s2", "doc.id", "select.key"};

/* One random operation; exec: only what a udb_exec unit takes (earlier[0..n)
 * are the unit's ops so far); ro: only reads. */
static void gen_rop(rop *r, int exec, int ro, const rop *earlier, size_t n)
{
    rop_init(r);
    unsigned k = tg_pick(100);
    op o;
    if (ro) {
        r->kind = k < 35 ? R_GET : k < 70 ? R_FIND : k < 80 ? R_SEQ_GET : scans ? R_SCAN : R_GET;
    } else if (exec) {
        r->kind = k < 30 ? R_INSERT : k < 45 ? R_UPDATE : k < 52 ? R_DELETE : k < 67 ? R_OR_GET
                : k < 82 ? R_UPSERT : k < 90 ? R_FIRST : R_SEQ_NEXT;
    } else {
        r->kind = k < 22 ? R_INSERT : k < 34 ? R_UPDATE : k < 40 ? R_DELETE : k < 46 ? R_GET
                : k < 52 ? R_FIND : k < 62 ? R_OR_GET : k < 72 ? R_UPSERT : k < 78 ? R_FIRST
                : k < 84 ? R_SEQ_NEXT : k < 88 ? R_SEQ_GET : k < 92 ? R_SEQ_SET
                : scans ? R_SCAN : R_INSERT;
    }
    size_t ti = tg_pick(10) < 4 ? 0 : tg_pick(2) ? 1 : 2;
    const tdef *t = &tg_types[ti];
    r->type = t->name;
    switch (r->kind) {
    case R_INSERT:
    case R_UPDATE:
    case R_DELETE:;
        /* values the schema refuses: in some ops (a unit fails as a whole) */
        int bad = (int)tg_pick(exec ? 5 : 3) == 0;
        do
            tg_random_op(&o, bad, NTYPES);
        while ((r->kind == R_INSERT) != (o.kind == OP_INSERT) ||
               (r->kind == R_DELETE) != (o.kind == OP_DELETE));
        r->type = o.t->name;
        if (r->kind == R_UPDATE && o.v[0].st == V_ABSENT)
            tg_random_value(&o.v[0], o.t, 0, 0);
        r->flags = o.kind == OP_MERGE ? UDB_MERGE : 0;
        pack_or_die(&r->rec, &r->key, &o);
        tg_describe(r->what, sizeof r->what, &o);
        /* udb_exec: an insert may take an earlier SEQ_NEXT's value */
        for (size_t i = 0; exec && r->kind == R_INSERT && i < n; i++)
            if (earlier[i].kind == R_SEQ_NEXT && tg_pick(2)) {
                r->seq_field = o.t == &tg_types[0] ? "a" : o.t == &tg_types[1] ? "y" : "owner";
                r->seq_op = i;
                add_what(r, " %s=<ops[%zu]>", r->seq_field, i);
                break;
            }
        break;
    case R_GET:
    case R_FIND:
    case R_SCAN: {
        snprintf(r->what, sizeof r->what, "%s %s",
                 r->kind == R_GET ? "get" : r->kind == R_FIND ? "find" : "scan", t->name);
        if (r->kind == R_GET) {
            val v;
            tg_random_value(&v, t, 0, 0);
            msgpack_packer pk;
            msgpack_packer_init(&pk, &r->key, msgpack_sbuffer_write);
            tg_pack_val(&pk, &t->fields[0], &v);
            add_what(r, " key=%s", v.text);
            break;
        }
        const ixdef *ix = gen_index(r, ti, r->kind == R_SCAN || tg_pick(10) == 0);
        size_t nv = ix ? ix->nf : 1;
        if (r->kind == R_SCAN)
            nv = tg_pick((unsigned)nv + 1);
        else if (tg_pick(30) == 0)
            nv++; /* the wrong number of values */
        if (r->kind == R_FIND || nv || tg_pick(2))
            gen_values(r, ix, nv);
        break;
    }
    case R_OR_GET:
    case R_UPSERT:
        gen_record(&o, t, tg_pick(10) == 0);
        pack_or_die(&r->rec, &r->key, &o);
        tg_describe(r->what, sizeof r->what, &o);
        memcpy(r->what, r->kind == R_OR_GET ? "or_get" : "upsert", 6);
        gen_index(r, ti, tg_pick(15) == 0);
        if (r->kind == R_UPSERT && tg_pick(3) == 0) {
            /* on_insert: a few fields set only when inserting */
            op oi;
            gen_record(&oi, t, 0);
            for (size_t f = 0; f < t->nfields; f++)
                if (tg_pick(2))
                    oi.v[f].st = V_ABSENT;
            msgpack_sbuffer key;
            msgpack_sbuffer_init(&key);
            pack_or_die(&r->on_insert, &key, &oi);
            msgpack_sbuffer_destroy(&key);
            r->has_on_insert = 1;
            char w[300];
            tg_describe(w, sizeof w, &oi);
            add_what(r, " on_insert=%s", strchr(w, '{'));
        }
        break;
    case R_FIRST:
        r->ncand = 1 + tg_pick(MAXCAND);
        snprintf(r->what, sizeof r->what, "insert_first %s", t->name);
        for (size_t i = 0; i < r->ncand; i++) {
            gen_record(&o, t, tg_pick(12) == 0);
            msgpack_sbuffer key;
            msgpack_sbuffer_init(&key);
            pack_or_die(&r->cand[i], &key, &o);
            msgpack_sbuffer_destroy(&key);
            char w[300];
            tg_describe(w, sizeof w, &o);
            add_what(r, " [%zu] key=%s%s", i, o.v[0].st == V_ABSENT ? "(auto)" : o.v[0].text,
                     strchr(w, '{'));
        }
        break;
    case R_SEQ_NEXT:
    case R_SEQ_GET:
    case R_SEQ_SET: {
        unsigned s = tg_pick(20);
        r->seq = s < 8 ? seqs[0] : s < 12 ? seqs[1] : s < 18 ? seqs[2] : s < 19 ? seqs[3] : "";
        unsigned v = tg_pick(10);
        r->seqval = v < 6 ? v : v < 9 ? 10 + v : UINT64_MAX - tg_pick(2);
        snprintf(r->what, sizeof r->what, "seq_%s \"%s\"",
                 r->kind == R_SEQ_NEXT ? "next" : r->kind == R_SEQ_GET ? "get" : "set", r->seq);
        if (r->kind == R_SEQ_SET)
            add_what(r, " %" PRIu64, r->seqval);
        break;
    }
    }
}

static void gen_step(step *s)
{
    memset(s, 0, sizeof *s);
    unsigned k = tg_pick(20);
    s->kind = k < 10 ? S_TXN : k < 15 ? S_EXEC : k < 17 ? S_WRITE : S_READ;
    s->commit = tg_pick(5) != 0;
    s->n = 1 + tg_pick(MAXOPS);
    for (size_t i = 0; i < s->n; i++)
        gen_rop(&s->ops[i], s->kind == S_EXEC, s->kind == S_READ, s->ops, i);
}

/* ---- logging what a side did ------------------------------------------------------- */

typedef msgpack_sbuffer logbuf;

static void lg(logbuf *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void lg(logbuf *l, const char *fmt, ...)
{
    char tmp[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        msgpack_sbuffer_write(l, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* bytes as hex: what is compared (a divergence shows them as JSON too) */
static void lg_bytes(logbuf *l, const char *label, const void *p, size_t n)
{
    lg(l, " %s=", label);
    if (!p) {
        lg(l, "(none)");
        return;
    }
    static const char hexd[] = "0123456789abcdef";
    char chunk[512];
    for (size_t i = 0; i < n;) {
        size_t k = 0;
        for (; i < n && k + 2 <= sizeof chunk; i++) {
            chunk[k++] = hexd[((const unsigned char *)p)[i] >> 4];
            chunk[k++] = hexd[((const unsigned char *)p)[i] & 15];
        }
        msgpack_sbuffer_write(l, chunk, k);
    }
}

/* Print a log line, then its msgpack fields (out=, rec=, values=, holder=)
 * as JSON, for reading a divergence. */
static void show_line(const char *side, const char *p, int n)
{
    fprintf(stderr, "  %s %.*s\n", side, n, p);
    static const char *const labels[] = {" out=", " rec=", " values=", " holder="};
    for (size_t i = 0; i < sizeof labels / sizeof labels[0]; i++) {
        size_t ll = strlen(labels[i]);
        for (const char *q = p; q + ll <= p + n; q++) {
            if (memcmp(q, labels[i], ll) != 0)
                continue;
            const char *h = q + ll, *e = h;
            while (e < p + n && strchr("0123456789abcdef", *e) && *e)
                e++;
            size_t len = (size_t)(e - h) / 2;
            unsigned char *b = malloc(len ? len : 1);
            if (!b)
                return;
            for (size_t k = 0; k < len; k++) {
                unsigned v = 0;
                sscanf(h + 2 * k, "%2x", &v);
                b[k] = (unsigned char)v;
            }
            char *json = NULL;
            if (udb_msgpack_to_json(&json, NULL, b, len, 0) == 0)
                fprintf(stderr, "      %s %s\n", labels[i] + 1, json);
            udb_free(json);
            free(b);
        }
    }
}

static void lg_conflict(logbuf *l, const udb_conflict *c)
{
    if (!c)
        return;
    lg(l, " conflict{type=%s count=%zu", c->type, c->count);
    for (size_t i = 0; i < c->count; i++) {
        const udb_conflict_index *x = &c->indexes[i];
        lg(l, " [%s fields=", x->index);
        for (size_t f = 0; f < x->nfields; f++)
            lg(l, "%s%s", f ? "," : "", x->fields[f]);
        lg_bytes(l, "values", x->values.data, x->values.size);
        lg_bytes(l, "holder", x->existing_key.data, x->existing_key.size);
        lg(l, "]");
    }
    lg(l, "}");
}

/* The end of an operation's line: its code, message, conflict. */
static void lg_rc(logbuf *l, int rc, udb_txn *txn)
{
    lg(l, " rc=%d", rc);
    if (rc)
        lg(l, " msg=\"%s\"", udb_errmsg(txn));
    if (rc == UDB_ECONFLICT)
        lg_conflict(l, udb_conflict_info(txn));
    lg(l, "\n");
}

static const void *dp(const msgpack_sbuffer *b)
{
    return b->size ? b->data : NULL;
}

/* Run r in txn; its line into l.  Returns its code. */
static int run_rop(logbuf *l, udb_txn *txn, const rop *r)
{
    udb_val out = {NULL, 0};
    int rc = 0, created = -1;
    size_t chosen = (size_t)-1;
    uint64_t v = 0;
    lg(l, "%s:", r->what);
    switch (r->kind) {
    case R_INSERT:
        rc = udb_insert(&out, txn, r->type, r->rec.data, r->rec.size);
        break;
    case R_UPDATE:
        rc = udb_update(&out, txn, r->type, r->key.data, r->key.size, r->rec.data, r->rec.size,
                        r->flags);
        break;
    case R_DELETE:
        rc = udb_delete(txn, r->type, r->key.data, r->key.size);
        break;
    case R_GET:
        rc = udb_get(&out, txn, r->type, r->key.data, r->key.size);
        break;
    case R_FIND:
        rc = udb_find(&out, txn, r->type, r->index, r->values.data, r->values.size);
        break;
    case R_OR_GET:
        rc = udb_insert_or_get(&out, &created, txn, r->type, r->index, r->rec.data, r->rec.size);
        break;
    case R_UPSERT:
        rc = udb_upsert(&out, &created, txn, r->type, r->index, r->rec.data, r->rec.size,
                        r->has_on_insert ? r->on_insert.data : NULL,
                        r->has_on_insert ? r->on_insert.size : 0);
        break;
    case R_FIRST: {
        udb_val c[MAXCAND];
        for (size_t i = 0; i < r->ncand; i++)
            c[i] = (udb_val){r->cand[i].data, r->cand[i].size};
        rc = udb_insert_first(&out, &chosen, txn, r->type, c, r->ncand);
        break;
    }
    case R_SEQ_NEXT:
        rc = udb_seq_next(&v, txn, r->seq);
        break;
    case R_SEQ_GET:
        rc = udb_seq_get(&v, txn, r->seq);
        break;
    case R_SEQ_SET:
        rc = udb_seq_set(txn, r->seq, r->seqval);
        break;
    case R_SCAN: {
        udb_cursor *cur = NULL;
        rc = udb_scan(&cur, txn, r->type, r->index, dp(&r->values), r->values.size);
        size_t n = 0;
        while (rc == 0 && (rc = udb_cursor_next(&out, cur)) == 0) {
            udb_val key;
            int krc = udb_cursor_key(&key, cur);
            lg(l, "\n  #%zu krc=%d", n++, krc);
            if (krc == 0)
                lg_bytes(l, "key", key.data, key.size);
            lg_bytes(l, "rec", out.data, out.size);
        }
        udb_cursor_close(cur);
        if (rc == UDB_ENOTFOUND)
            lg(l, "\n  end after %zu", n);
        out.data = NULL;
        break;
    }
    }
    if (out.data)
        lg_bytes(l, "out", out.data, out.size);
    if (created >= 0)
        lg(l, " created=%d", created);
    if (chosen != (size_t)-1)
        lg(l, " chosen=%zu", chosen);
    if (r->kind == R_SEQ_NEXT || r->kind == R_SEQ_GET)
        lg(l, " value=%" PRIu64, v);
    lg_rc(l, rc, txn);
    return rc;
}

/* ---- running a step on one side ---------------------------------------------------- */

typedef struct wctx {
    const step *s;
    logbuf *l;
    size_t mark; /* where the callback's lines start: a rerun starts over */
} wctx;

static int write_fn(udb_txn *txn, void *payload)
{
    wctx *w = payload;
    w->l->size = w->mark;
    int first = 0;
    for (size_t i = 0; i < w->s->n; i++) {
        int rc = run_rop(w->l, txn, &w->s->ops[i]);
        if (rc && !first)
            first = rc;
    }
    /* commit: keep what succeeded; else fail with the first error (or EINVAL) */
    return w->s->commit ? 0 : first ? first : UDB_EINVAL;
}

static void run_step(logbuf *l, udb_env *env, const step *s)
{
    int rc;
    switch (s->kind) {
    case S_TXN:
    case S_READ: {
        udb_txn *txn = NULL;
        rc = udb_begin(&txn, env, s->kind == S_READ ? UDB_RDONLY : 0);
        lg(l, "begin rc=%d\n", rc);
        if (rc)
            return;
        for (size_t i = 0; i < s->n; i++)
            run_rop(l, txn, &s->ops[i]);
        if (s->kind == S_TXN && !s->commit) {
            udb_abort(txn);
            lg(l, "abort\n");
        } else {
            rc = udb_commit(txn);
            lg(l, "commit rc=%d\n", rc);
        }
        return;
    }
    case S_WRITE: {
        wctx w = {s, l, l->size};
        rc = udb_write(env, write_fn, &w);
        lg(l, "udb_write rc=%d", rc);
        if (rc)
            lg(l, " msg=\"%s\"", udb_env_errmsg(env));
        lg(l, "\n");
        return;
    }
    case S_EXEC: {
        udb_op ops[MAXOPS];
        udb_val cands[MAXOPS][MAXCAND];
        for (size_t i = 0; i < s->n; i++) {
            const rop *r = &s->ops[i];
            udb_op o = UDB_OP_INIT;
            o.type = r->type;
            switch (r->kind) {
            case R_INSERT:
                o.kind = UDB_OP_INSERT;
                o.rec = (udb_val){r->rec.data, r->rec.size};
                break;
            case R_UPDATE:
                o.kind = UDB_OP_UPDATE;
                o.rec = (udb_val){r->rec.data, r->rec.size};
                o.key = (udb_val){r->key.data, r->key.size};
                o.flags = r->flags;
                break;
            case R_DELETE:
                o.kind = UDB_OP_DELETE;
                o.key = (udb_val){r->key.data, r->key.size};
                break;
            case R_OR_GET:
            case R_UPSERT:
                o.kind = r->kind == R_OR_GET ? UDB_OP_INSERT_OR_GET : UDB_OP_UPSERT;
                o.index = r->index;
                o.rec = (udb_val){r->rec.data, r->rec.size};
                if (r->has_on_insert)
                    o.on_insert = (udb_val){r->on_insert.data, r->on_insert.size};
                break;
            case R_FIRST:
                o.kind = UDB_OP_INSERT_FIRST;
                for (size_t c = 0; c < r->ncand; c++)
                    cands[i][c] = (udb_val){r->cand[c].data, r->cand[c].size};
                o.candidates = cands[i];
                o.ncandidates = r->ncand;
                break;
            case R_SEQ_NEXT:
                o.kind = UDB_OP_SEQ_NEXT;
                o.type = NULL;
                o.seq = r->seq;
                break;
            default:
                fprintf(stderr, "pg_diff: %s in a unit\n", r->what);
                exit(2);
            }
            if (r->seq_field) {
                o.seq_field = r->seq_field;
                o.seq_op = r->seq_op;
            }
            ops[i] = o;
        }
        udb_results *res = NULL;
        rc = udb_exec(&res, env, ops, s->n);
        lg(l, "udb_exec rc=%d", rc);
        if (rc)
            lg(l, " msg=\"%s\"", udb_env_errmsg(env));
        if (!res) {
            lg(l, " results=NULL\n");
            return;
        }
        lg(l, " failed=%zu\n", udb_results_failed(res));
        for (size_t i = 0; i < s->n; i++) {
            const udb_result *x = udb_result_at(res, i);
            lg(l, "%s: rc=%d created=%d chosen=%zu value=%" PRIu64 " msg=\"%s\"",
               s->ops[i].what, x->rc, x->created, x->chosen, x->value, x->errmsg);
            if (x->record.data)
                lg_bytes(l, "out", x->record.data, x->record.size);
            lg_conflict(l, x->conflict);
            lg(l, "\n");
        }
        udb_results_free(res);
        return;
    }
    }
}

/* ---- the final state of a side -------------------------------------------------------- */

static int seq_line(const char *name, uint64_t value, void *payload)
{
    lg(payload, "seq %s = %" PRIu64 "\n", name, value);
    return 0;
}

static void check_report(const char *problem, void *payload)
{
    lg(payload, "check: %s\n", problem);
}

/* Every record, by primary key in key order (a get over the key domain: scans
 * need not work), the sequences, with scans every index, and with check
 * udb_check's verdict. */
static void dump(logbuf *l, udb_env *env, int check)
{
    udb_txn *txn = NULL;
    int rc = udb_begin(&txn, env, UDB_RDONLY);
    lg(l, "dump: begin rc=%d\n", rc);
    if (rc)
        return;
    uint64_t top = 0;
    udb_seq_get(&top, txn, "doc.id");
    for (size_t t = 0; t < NTYPES; t++) {
        /* select: -2..7; Mixed: k0..k7; doc: 1..8 and up to past its auto key */
        uint64_t n = t < 2 ? 10 : (top < 1000 ? (top > 8 ? top : 8) + 1 : 16);
        for (uint64_t i = 0; i < n; i++) {
            msgpack_sbuffer key;
            msgpack_sbuffer_init(&key);
            msgpack_packer pk;
            msgpack_packer_init(&pk, &key, msgpack_sbuffer_write);
            char ks[24];
            if (t == 0) {
                snprintf(ks, sizeof ks, "%d", (int)i - 2);
                msgpack_pack_int64(&pk, (int)i - 2);
            } else if (t == 1) {
                snprintf(ks, sizeof ks, "k%d", (int)i);
                msgpack_pack_str(&pk, strlen(ks));
                msgpack_pack_str_body(&pk, ks, strlen(ks));
            } else {
                /* a sequence set near the top: its last keys */
                uint64_t k = top < 1000 || i < 8 ? i + 1 : top - (15 - i);
                snprintf(ks, sizeof ks, "%" PRIu64, k);
                msgpack_pack_uint64(&pk, k);
            }
            udb_val v;
            rc = udb_get(&v, txn, tg_types[t].name, key.data, key.size);
            if (rc != UDB_ENOTFOUND) {
                lg(l, "%s %s: rc=%d", tg_types[t].name, ks, rc);
                if (rc == 0)
                    lg_bytes(l, "rec", v.data, v.size);
                lg(l, "\n");
            }
            msgpack_sbuffer_destroy(&key);
        }
    }
    /* stat's counts (its bytes are LMDB pages on one side: not compared) */
    for (size_t t = 0; t < NTYPES; t++) {
        udb_type_stat st;
        memset(&st, 0, sizeof st);
        rc = udb_type_stat_get(&st, txn, tg_types[t].name);
        lg(l, "stat %s: rc=%d records=%" PRIu64 " index_entries=%" PRIu64 "\n",
           tg_types[t].name, rc, st.records, st.index_entries);
    }
    rc = udb_seq_foreach(txn, seq_line, l);
    lg(l, "seq_foreach rc=%d\n", rc);
    for (size_t i = 0; scans && i < NIXS; i++) {
        rop r;
        rop_init(&r);
        r.kind = R_SCAN;
        r.type = tg_types[ixs[i].type].name;
        r.index = ixs[i].name;
        snprintf(r.what, sizeof r.what, "dump scan %s %s", r.type, r.index ? r.index : "");
        run_rop(l, txn, &r);
        rop_free(&r);
    }
    udb_abort(txn);
    if (!check)
        return;
    size_t problems = 0;
    rc = udb_check(&problems, env, check_report, l);
    lg(l, "udb_check rc=%d problems=%zu\n", rc, problems);
}

/* ---- comparing --------------------------------------------------------------------------- */

/* 0 if a and b are the same bytes; else prints the first differing line. */
static int same(const logbuf *a, const logbuf *b, const char *where)
{
    if (a->size == b->size && (a->size == 0 || memcmp(a->data, b->data, a->size) == 0))
        return 0;
    size_t i = 0, line = 0;
    while (i < a->size && i < b->size && a->data[i] == b->data[i])
        if (a->data[i++] == '\n')
            line = i;
    const char *ea = memchr(a->data + line, '\n', a->size - line);
    const char *eb = memchr(b->data + line, '\n', b->size - line);
    int la = ea ? (int)(ea - (a->data + line)) : (int)(a->size - line);
    int lb = eb ? (int)(eb - (b->data + line)) : (int)(b->size - line);
    fprintf(stderr, "pg_diff: %s: the sides differ at\n", where);
    show_line("LMDB:      ", a->data + line, la);
    show_line("other side:", b->data + line, lb);
    return 1;
}

/* ---- traces ----------------------------------------------------------------------------- */

static int pg_sql(PGconn *pg, const char *sql)
{
    PGresult *res = PQexec(pg, sql);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "pg_diff: %s: %s", sql, PQresultErrorMessage(res));
    PQclear(res);
    return ok ? 0 : -1;
}

typedef struct run {
    int lmdb_only;
    const char *drop_index;
    const char *workdir;
    int verbose; /* PG_DIFF_LOG=1: print every step's log (LMDB's side) */
    PGconn *pg;
    uint64_t seed;
    unsigned ntraces;
    unsigned long steps, ops, by_kind[R_SCAN + 1], failed_ops, conflicts;
} run;

static int open_side(udb_env **env, const char *where, char *changes_out, size_t cap)
{
    udb_options opts = UDB_OPTIONS_INIT;
    opts.flags = UDB_NOSYNC; /* throw-away databases */
    char *changes = NULL;
    int rc = udb_open(env, where, &opts);
    if (rc == 0)
        rc = udb_schema_apply(&changes, *env, schema_json, sizeof schema_json - 1, 0);
    if (rc)
        fprintf(stderr, "pg_diff: cannot create %s: %s: %s\n", where, udb_strerror(rc),
                udb_env_errmsg(*env));
    snprintf(changes_out, cap, "%s", changes ? changes : "");
    udb_free(changes);
    return rc;
}

/* A pair of databases serves GROUP traces in a row: each trace goes on from
 * the state the one before left, which its final dump showed the same on
 * both.  (A fresh pair costs the server about as much as a trace of 200
 * operations: schema apply is DDL, and so is the drop.) */
#define GROUP 10

typedef struct pair {
    udb_env *a, *b;
    char dir_a[512], where_b[512], pgschema[32];
} pair;

static void pair_close(run *R, pair *p)
{
    udb_close(p->a);
    udb_close(p->b);
    p->a = p->b = NULL;
    char *rm[] = {"rm", "-rf", p->dir_a, R->lmdb_only ? p->where_b : NULL, NULL};
    tg_run_cmd(rm);
    if (!R->lmdb_only && R->pg) {
        char sql[128];
        snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS \"%s\" CASCADE", p->pgschema);
        pg_sql(R->pg, sql);
    }
}

/* A fresh pair for group g, the schema applied to both: 0, 1 (they said
 * different things), -1 (could not). */
static int pair_open(run *R, pair *p, unsigned g)
{
    snprintf(p->dir_a, sizeof p->dir_a, "%s/a%u", R->workdir, g);
    snprintf(p->pgschema, sizeof p->pgschema, "pgdiff_%u", g);
    if (R->lmdb_only)
        snprintf(p->where_b, sizeof p->where_b, "%s/b%u", R->workdir, g);
    else
        snprintf(p->where_b, sizeof p->where_b, "postgresql:///uniqdb_test?schema=%s",
                 p->pgschema);
    char ca[1024], cb[1024], sql[256];
    if (open_side(&p->a, p->dir_a, ca, sizeof ca) ||
        open_side(&p->b, p->where_b, cb, sizeof cb))
        return -1;
    if (strcmp(ca, cb) != 0) {
        fprintf(stderr, "pg_diff: group %u: schema apply said\n  LMDB: %s\n  other: %s\n", g,
                ca, cb);
        return 1;
    }
    if (R->drop_index) {
        /* another SQL client drops one of the server's unique indexes */
        snprintf(sql, sizeof sql, "DROP INDEX \"%s\".\"%s\"", p->pgschema, R->drop_index);
        if (pg_sql(R->pg, sql))
            return -1;
    }
    return 0;
}

/* 0: the same; 1: a divergence (printed); -1: the trace could not run. */
static int run_trace(run *R, pair *p, unsigned n, unsigned nops)
{
    tg_rng = R->seed * 0x9E3779B97F4A7C15ull + n + 1;
    logbuf la, lb;
    msgpack_sbuffer_init(&la);
    msgpack_sbuffer_init(&lb);
    int ret = 0;
    for (unsigned done = 0, i = 0; done < nops; i++) {
        step s;
        gen_step(&s);
        la.size = lb.size = 0;
        run_step(&la, p->a, &s);
        run_step(&lb, p->b, &s);
        if (R->verbose)
            fprintf(stderr, "-- trace %u step %u (%s)\n%.*s", n, i, step_names[s.kind],
                    (int)la.size, la.data);
        char where[160];
        snprintf(where, sizeof where, "trace %u (seed %" PRIu64 ") step %u, a %s of %zu", n,
                 R->seed, i, step_names[s.kind], s.n);
        if (same(&la, &lb, where)) {
            for (size_t k = 0; k < s.n; k++)
                fprintf(stderr, "    op %zu: %s\n", k, s.ops[k].what);
            ret = 1;
        }
        R->steps++;
        R->ops += s.n;
        for (size_t k = 0; k < s.n; k++)
            R->by_kind[s.ops[k].kind]++;
        /* outcome counts, from the log: every negative code */
        for (size_t k = 0; k + 4 < la.size; k++)
            if (memcmp(la.data + k, "rc=-", 4) == 0) {
                R->failed_ops++;
                R->conflicts += k + 9 < la.size && memcmp(la.data + k + 3, "-31001", 6) == 0;
            }
        done += (unsigned)s.n;
        step_free(&s);
        if (ret)
            goto out;
    }
    la.size = lb.size = 0;
    /* udb_check on the server costs about as much as a fresh pair: every
       50th trace and the last, and every trace of the control (it is what
       sees an index dropped behind uniqdb's back) */
    int check = R->drop_index || n % 50 == 49 || n + 1 == R->ntraces;
    dump(&la, p->a, check);
    dump(&lb, p->b, check);
    char where[120];
    snprintf(where, sizeof where, "trace %u (seed %" PRIu64 "): the final dumps", n, R->seed);
    ret = same(&la, &lb, where);
out:
    msgpack_sbuffer_destroy(&la);
    msgpack_sbuffer_destroy(&lb);
    return ret;
}

int main(int argc, char **argv)
{
    run R;
    memset(&R, 0, sizeof R);
    int a = 1;
    for (; a < argc && strncmp(argv[a], "--", 2) == 0; a++) {
        if (strcmp(argv[a], "--lmdb") == 0)
            R.lmdb_only = 1;
        else if (strcmp(argv[a], "--drop-index") == 0 && a + 1 < argc)
            R.drop_index = argv[++a];
        else
            break;
    }
    if (argc - a < 2 || argc - a > 3 || (R.lmdb_only && R.drop_index)) {
        fprintf(stderr, "usage: pg_diff [--lmdb] [--drop-index TYPE.INDEX] TRACES OPS [SEED]\n");
        return 2;
    }
    unsigned ntraces = R.ntraces = (unsigned)strtoul(argv[a], NULL, 10);
    unsigned nops = (unsigned)strtoul(argv[a + 1], NULL, 10);
    R.seed = argc - a == 3 ? strtoull(argv[a + 2], NULL, 10) : (uint64_t)time(NULL);
    scans = R.lmdb_only || scans_on_pg;
    R.verbose = getenv("PG_DIFF_LOG") != NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char workdir[] = "/tmp/uniqdb-pgdiff-XXXXXX";
    if (!mkdtemp(workdir)) {
        perror("pg_diff: mkdtemp");
        return 1;
    }
    R.workdir = workdir;
    int ret = 1, found = 0;
    if (!R.lmdb_only) {
        R.pg = PQconnectdb("");
        if (PQstatus(R.pg) != CONNECTION_OK) {
            fprintf(stderr, "pg_diff: cannot connect (run under pg_run): %s",
                    PQerrorMessage(R.pg));
            goto out;
        }
        if (pg_sql(R.pg, "SET client_min_messages = warning"))
            goto out;
    }
    printf("pg_diff: seed %" PRIu64 " (rerun: %s%s%s%s %u %u %" PRIu64 ")\n", R.seed, argv[0],
           R.lmdb_only ? " --lmdb" : "", R.drop_index ? " --drop-index " : "",
           R.drop_index ? R.drop_index : "", ntraces, nops, R.seed);
    fflush(stdout);
    pair p = {0};
    for (unsigned n = 0; n < ntraces && !found; n++) {
        int r = n % GROUP == 0 ? pair_open(&R, &p, n / GROUP) : 0;
        if (r == 0)
            r = run_trace(&R, &p, n, nops);
        if (r != 0 || n % GROUP == GROUP - 1 || n + 1 == ntraces)
            pair_close(&R, &p);
        if (r < 0) {
            /* the control fails only by catching the difference: an error
               must not pass it */
            ret = R.drop_index ? 0 : 1;
            goto out;
        }
        found = r > 0;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (R.drop_index) {
        printf("pg_diff: negative control, unique index %s dropped on the server: %s\n",
               R.drop_index, found ? "the difference was caught" : "NOT caught");
        /* caught: this run fails, as the meson test (should_fail) expects */
        ret = found ? 1 : 0;
        goto out;
    }
    if (found)
        goto out;
    printf("pg_diff: %u traces x %u operations on LMDB and %s: %lu steps, %lu operations "
           "identical (%lu failed, %lu of them conflicts); %.1f s\n",
           ntraces, nops, R.lmdb_only ? "LMDB" : "PostgreSQL", R.steps, R.ops, R.failed_ops,
           R.conflicts, secs);
    static const char *const kn[] = {"insert", "update", "delete", "get", "find", "or_get",
                                     "upsert", "insert_first", "seq_next", "seq_get",
                                     "seq_set", "scan"};
    printf("pg_diff: by kind:");
    for (size_t k = 0; k <= R_SCAN; k++)
        printf(" %s %lu", kn[k], R.by_kind[k]);
    printf("\n");
    ret = 0;
out:
    PQfinish(R.pg);
    {
        char *rm[] = {"rm", "-rf", workdir, NULL};
        tg_run_cmd(rm);
    }
    return ret;
}
