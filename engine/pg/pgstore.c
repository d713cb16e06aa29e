/*
 * pgstore.c -- the PostgreSQL backend (pgstore.h): backend.h over one table
 * per type (ddl.c's mapping), one typed column per declared field, and
 * transactions that start with the core's udb_txfront.
 *
 * A record goes in as column values decoded from the canonical msgpack the
 * core packed; `any` and undeclared fields also go, exactly as packed, into
 * "$raw" (a msgpack map), with readable jsonb copies beside them.  A record
 * comes back rebuilt in the core's canonical order (record.c's
 * udb__rec_pack: declared fields in schema order, then extras; float fields
 * as float64), so fetch returns the same bytes as the LMDB backend.  Keys
 * the core encoded (keycodec.h) are decoded into statement parameters;
 * values are never pasted into SQL.  The server's own unique indexes back
 * the core's checks: a duplicate another client committed after our
 * snapshot is refused by them (23505), and reported as UDB_ECONFLICT with
 * the detail, the holder read on a connection of its own (our snapshot
 * cannot see it).
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "error.h"
#include "index.h"
#include "keycodec.h"
#include "pgcache.h"
#include "pgddl.h"
#include "pgmeta.h"
#include "pgstore.h"
#include "record.h"

/* What a read found, remembered until the transaction writes: the core
 * asks again for what it just asked (insert_or_get looks its unique key up,
 * then checks it; find asks the holder, then fetches the holder's record),
 * and within one snapshot the answer cannot change but by our own writes. */
typedef struct memo {
    const udb_type *t;
    const udb_index *ix;       /* the index looked up (idx[0]: by primary key) */
    udb_buf key;               /* the key asked */
    bool found;
    udb_buf pk, rec;           /* the holder's primary key and record (found) */
} memo;

#define NMEMO 4

typedef struct udb_pgtxn {
    udb_txfront f;             /* first: the core's calls work on it */
    udb_pgpool *pool;
    PGconn *c;
    void **blocks;             /* what fetch and holder handed out, until a write */
    size_t nblocks, capblocks;
    memo memo[NMEMO];          /* the last reads (memo_put), until a write */
    size_t nmemo;              /* entries used; the next one replaced: nmemo % NMEMO */
    bool retry;                /* a statement met a concurrent transaction (UDB_ERETRY) */
    pthread_t owner;           /* the thread that began it ... */
    bool counted;              /* ... counted among the pool's holders */
} udb_pgtxn;

static bool drop_raw;
static bool unguarded;                /* tests: see udb__pg_test_unguarded */
static _Atomic int lose_commits;      /* tests: COMMITs whose answer is "lost" */
static _Atomic bool no_unit_mark;     /* tests: units go without their id */

void udb__pg_test_lose_commits(int n)
{
    lose_commits = n;
}

void udb__pg_test_no_unit_mark(bool on)
{
    no_unit_mark = on;
}

void udb__pg_test_drop_raw(bool on)
{
    drop_raw = on;
}

void udb__pg_test_unguarded(bool on)
{
    unguarded = on;
}

static udb_pgtxn *pgt(udb_txn *txn)
{
    return (udb_pgtxn *)(void *)txn;
}

static const char *pgschema(udb_txn *txn)
{
    return udb__pg_pool_schema(pgt(txn)->pool);
}

/* Forget the remembered reads: a write may change what they would find.
 * (What they handed out was copied into blocks: see keep.) */
static void memo_clear(udb_pgtxn *p)
{
    for (size_t i = 0; i < NMEMO; i++) {
        udb__buf_free(&p->memo[i].key);
        udb__buf_free(&p->memo[i].pk);
        udb__buf_free(&p->memo[i].rec);
        p->memo[i] = (memo){0};
    }
    p->nmemo = 0;
}

static void blocks_free(udb_pgtxn *p)
{
    for (size_t i = 0; i < p->nblocks; i++)
        free(p->blocks[i]);
    p->nblocks = 0;
    memo_clear(p);
}

/* What fetch and holder handed out before a write, taken from the
 * transaction when the write starts and freed when it is done: the core
 * still reads them during the write (an update's entries point into the
 * record it fetched -- a replacement without its key field takes the key
 * from there), and backend.h promises them "until the transaction writes",
 * which is the whole write, not its first line. */
typedef struct blocks {
    void **p;
    size_t n;
} blocks;

static blocks blocks_take(udb_pgtxn *p)
{
    blocks b = {p->blocks, p->nblocks};
    p->blocks = NULL;
    p->nblocks = p->capblocks = 0;
    memo_clear(p);   /* a write starts: what reads found may change */
    return b;
}

static void blocks_drop(blocks *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->p[i]);
    free(b->p);
    *b = (blocks){0};
}

/* A copy of b's bytes that lives until the transaction writes or ends. */
static int keep(udb_val *out, udb_txn *txn, const udb_buf *b)
{
    udb_pgtxn *p = pgt(txn);
    if (b->oom)
        return udb__err(txn, UDB_ENOMEM, "out of memory");
    if (p->nblocks == p->capblocks) {
        size_t cap = p->capblocks ? 2 * p->capblocks : 8;
        void **a = realloc(p->blocks, cap * sizeof *a);
        if (!a)
            return udb__err(txn, UDB_ENOMEM, "out of memory");
        p->blocks = a;
        p->capblocks = cap;
    }
    void *m = malloc(b->len ? b->len : 1);
    if (!m)
        return udb__err(txn, UDB_ENOMEM, "out of memory");
    memcpy(m, b->p, b->len);
    p->blocks[p->nblocks++] = m;
    out->data = m;
    out->size = b->len;
    return 0;
}

/* Map a libpq failure to the transaction's message. */
static int pg_err(udb_txn *txn, int rc, const udb_buf *msg)
{
    if (rc == UDB_ERETRY)
        pgt(txn)->retry = true;
    return udb__err(txn, rc, "%.*s", (int)msg->len, msg->p ? (const char *)msg->p : "");
}

/* ---- statement parameters ------------------------------------------------------- */

/* A statement's parameters, growing: a type has any number of fields. */
typedef struct params {
    int n, cap;
    char **val;
    int *len, *fmt;
} params;

static void params_free(params *ps)
{
    for (int i = 0; i < ps->n; i++)
        free(ps->val[i]);
    free(ps->val);
    free(ps->len);
    free(ps->fmt);
    *ps = (params){0};
}

/* Add a parameter (NULL p: SQL NULL); fmt 1: binary (bytea).  Its number,
 * or -1: out of memory. */
static int param(params *ps, const void *p, size_t n, int fmt)
{
    if (n > INT32_MAX)
        return -1;
    if (ps->n == ps->cap) {
        int cap = ps->cap ? 2 * ps->cap : 16;
        char **v = realloc(ps->val, (size_t)cap * sizeof *v);
        if (v)
            ps->val = v;
        int *l = v ? realloc(ps->len, (size_t)cap * sizeof *l) : NULL;
        if (l)
            ps->len = l;
        int *f = l ? realloc(ps->fmt, (size_t)cap * sizeof *f) : NULL;
        if (!f)
            return -1;
        ps->fmt = f;
        ps->cap = cap;
    }
    int i = ps->n;
    ps->val[i] = NULL;
    ps->len[i] = (int)n;
    ps->fmt[i] = fmt;
    if (p) {
        ps->val[i] = malloc(n + 1);
        if (!ps->val[i])
            return -1;
        memcpy(ps->val[i], p, n);
        ps->val[i][n] = '\0';
    }
    ps->n++;
    return i + 1;
}

static int param_text(params *ps, const char *s)
{
    return param(ps, s, strlen(s), 0);
}

/* SQL's cast for a field's parameter. */
static const char *cast(const udb_field *f)
{
    switch (f->type) {
    case UDB_F_INT: return "bigint";
    case UDB_F_UINT: return "numeric";
    case UDB_F_FLOAT: return "float8";
    case UDB_F_BOOL: return "boolean";
    case UDB_F_BIN: return "bytea";
    case UDB_F_ANY: return "jsonb";
    default: return "text";
    }
}

static void float_text(char out[40], double d)
{
    if (isinf(d))
        snprintf(out, 40, d > 0 ? "Infinity" : "-Infinity");
    else
        snprintf(out, 40, "%.17g", d);
}

/* jsonb's readable copy of msgpack value mp, as `uniqdb export --postgres`
 * writes it: plain JSON where that converts back to the same bytes and jsonb
 * keeps the value (no \u0000, no -0.0, none of the library's "$bin", "$str",
 * "$float", "$map" ... forms), else {"$msgpack": "<base64 of the bytes>"}.
 * Conservative: a string that merely contains such text goes the lossless
 * way too.  malloc'd, NULL: out of memory. */
static char *readable(const void *mp, size_t len)
{
    char *j = NULL;
    size_t jl = 0;
    if (udb_msgpack_to_json(&j, &jl, mp, len, 0) == 0 && !strstr(j, "\\u0000") &&
        !strstr(j, "\"$") && !strstr(j, "-0.0")) {
        void *back = NULL;
        size_t bl = 0;
        bool same = udb_json_to_msgpack(&back, &bl, j, jl) == 0 && bl == len &&
                    memcmp(back, mp, len) == 0;
        udb_free(back);
        if (same) {
            char *out = strdup(j);
            udb_free(j);
            return out;
        }
    }
    udb_free(j);
    char *b = udb__b64_encode(mp, len), *out = NULL;
    if (b && asprintf(&out, "{\"$msgpack\": \"%s\"}", b) < 0)
        out = NULL;
    free(b);
    return out;
}

/* A parameter for the value o of field f (NULL o: SQL NULL). */
static int param_value(udb_txn *txn, params *ps, const udb_type *t, const udb_field *f,
                       const msgpack_object *o)
{
    char num[40];
    int rc = -1;
    if (!o || o->type == MSGPACK_OBJECT_NIL)
        rc = param(ps, NULL, 0, 0);
    else if (f->type == UDB_F_ANY) {
        udb_buf b = {0};
        msgpack_packer pk;
        msgpack_packer_init(&pk, &b, udb__buf_sbuffer_write);
        msgpack_pack_object(&pk, *o);
        char *j = b.oom ? NULL : readable(b.p, b.len);
        rc = j ? param_text(ps, j) : -1;
        free(j);
        udb__buf_free(&b);
    } else if (o->type == MSGPACK_OBJECT_STR) {
        if (memchr(o->via.str.ptr, '\0', o->via.str.size))
            return udb__err(txn, UDB_EBADRECORD, "type \"%s\", field \"%s\": PostgreSQL text "
                            "cannot hold a NUL byte", t->name, f->name);
        rc = param(ps, o->via.str.ptr, o->via.str.size, 0);
    } else if (o->type == MSGPACK_OBJECT_BIN)
        rc = param(ps, o->via.bin.ptr, o->via.bin.size, 1);
    else if (o->type == MSGPACK_OBJECT_BOOLEAN)
        rc = param_text(ps, o->via.boolean ? "t" : "f");
    else if (f->type == UDB_F_FLOAT) {
        float_text(num, udb__as_double(o));
        rc = param_text(ps, num);
    } else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        snprintf(num, sizeof num, "%" PRIu64, o->via.u64);
        rc = param_text(ps, num);
    } else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        snprintf(num, sizeof num, "%" PRId64, o->via.i64);
        rc = param_text(ps, num);
    }
    return rc < 0 ? udb__err(txn, UDB_ENOMEM, "type \"%s\", field \"%s\": cannot pass its "
                             "value to PostgreSQL", t->name, f->name) : rc;
}

/* ---- keys --------------------------------------------------------------------- */

/* Append "AND <field k> = $n" (or IS NULL) for each element of index ix's
 * encoded key (just its fields: a unique key, or a primary key). */
static int key_where_as(udb_txn *txn, udb_buf *q, params *ps, unsigned *nulls,
                        const udb_type *t, const udb_index *ix, const void *key, size_t keylen)
{
    const unsigned char *pos = key, *end = pos + keylen;
    udb_buf scratch = {0};
    udb_pgddl o = {.pgschema = pgschema(txn)};
    int rc = 0;
    for (size_t k = 0; k < ix->nfields && !rc; k++) {
        udb_telem e;
        scratch.len = 0;
        if ((rc = udb__tk_decode(&e, &scratch, &pos, end))) {
            rc = udb__err(txn, UDB_ECORRUPT, "type \"%s\": an encoded key does not decode",
                          t->name);
            break;
        }
        const udb_field *f = &t->fields[ix->fields[k]];
        if (q) {
            udb__buf_printf(q, " AND ");
            if (ix->is_pk)
                udb__pg_ident(q, f->name);
            else
                udb__pg_index_field(q, t, ix, k, &o);
        }
        char num[40];
        int n = 0;
        switch (e.kind) {
        case UDB_TK_NIL:
            if (q)
                udb__buf_printf(q, " IS NULL");
            if (nulls)
                *nulls |= 1u << k;
            continue;
        case UDB_TK_STR:
        case UDB_TK_BYTES:
            /* an empty string leaves scratch unallocated: "", not NULL */
            n = param(ps, scratch.p ? (const char *)scratch.p + e.v.s.off : "", e.v.s.n,
                      e.kind == UDB_TK_BYTES);
            break;
        case UDB_TK_INT:
            snprintf(num, sizeof num, "%" PRId64, e.v.i);
            n = param_text(ps, num);
            break;
        case UDB_TK_UINT:
            snprintf(num, sizeof num, "%" PRIu64, e.v.u);
            n = param_text(ps, num);
            break;
        case UDB_TK_FLOAT:
            float_text(num, e.v.f);
            n = param_text(ps, num);
            break;
        case UDB_TK_BOOL:
            n = param_text(ps, e.v.b ? "t" : "f");
            break;
        }
        if (n < 0)
            rc = udb__err(txn, UDB_ENOMEM, "out of memory");
        else if (q)
            udb__buf_printf(q, " = $%d::%s", n, ix->nocase[k] ? "text" : cast(f));
    }
    udb__buf_free(&scratch);
    return rc;
}

static int key_where(udb_txn *txn, udb_buf *q, params *ps, const udb_type *t,
                     const udb_index *ix, const void *key, size_t keylen)
{
    return key_where_as(txn, q, ps, NULL, t, ix, key, keylen);
}

/* ---- rows back to records --------------------------------------------------------- */

static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* Pack the value of column col of row (text format) as field f's value. */
static int pack_col(msgpack_packer *pk, const udb_field *f, const PGresult *r, int row, int col)
{
    const char *v = PQgetvalue(r, row, col);
    size_t n = (size_t)PQgetlength(r, row, col);
    switch (f->type) {
    case UDB_F_INT: {
        int64_t i = strtoll(v, NULL, 10);
        return i < 0 ? msgpack_pack_int64(pk, i) : msgpack_pack_uint64(pk, (uint64_t)i);
    }
    case UDB_F_UINT:
        return msgpack_pack_uint64(pk, strtoull(v, NULL, 10));
    case UDB_F_FLOAT:
        return msgpack_pack_double(pk, strtod(v, NULL));
    case UDB_F_BOOL:
        return v[0] == 't' ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    case UDB_F_BIN: {
        size_t bn = 0;
        unsigned char *b = PQunescapeBytea((const unsigned char *)v, &bn);
        if (!b)
            return -1;
        msgpack_pack_bin(pk, bn);
        msgpack_pack_bin_body(pk, b, bn);
        PQfreemem(b);
        return 0;
    }
    default:
        pack_str(pk, v, n);
        return 0;
    }
}

/* SELECT list: every declared field but `any` ones, then "$raw" if t has it. */
static void select_list(udb_buf *q, const udb_type *t)
{
    bool first = true;
    for (size_t f = 0; f < t->nfields; f++) {
        if (t->fields[f].type == UDB_F_ANY)
            continue;
        udb__buf_printf(q, first ? "" : ", ");
        first = false;
        udb__pg_ident(q, t->fields[f].name);
    }
    if (udb__pg_has_raw(t))
        udb__buf_printf(q, "%s\"$raw\"", first ? "" : ", ");
}

static bool key_is(const msgpack_object *k, const char *name)
{
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(name) &&
           memcmp(k->via.str.ptr, name, k->via.str.size) == 0;
}

static bool declared(const udb_type *t, const msgpack_object *k)
{
    for (size_t f = 0; f < t->nfields; f++)
        if (key_is(k, t->fields[f].name))
            return true;
    return false;
}

/* The canonical record of row of r (columns as select_list) into out. */
static int row_record(udb_buf *out, const udb_type *t, const PGresult *r, int row)
{
    msgpack_unpacked raw;
    msgpack_unpacked_init(&raw);
    const msgpack_object *rmap = NULL;
    int ncol = PQnfields(r), rc = 0;
    unsigned char *rb = NULL;
    size_t rn = 0;
    if (udb__pg_has_raw(t) && !PQgetisnull(r, row, ncol - 1)) {
        rb = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, ncol - 1), &rn);
        if (!rb || msgpack_unpack_next(&raw, (const char *)rb, rn, NULL) != MSGPACK_UNPACK_SUCCESS
            || raw.data.type != MSGPACK_OBJECT_MAP) {
            rc = UDB_ECORRUPT;
            goto out;
        }
        rmap = &raw.data;
    }
    size_t n = 0;
    int col = 0;
    for (size_t f = 0; f < t->nfields; f++) {
        if (t->fields[f].type != UDB_F_ANY)
            n += !PQgetisnull(r, row, col++);
    }
    for (uint32_t i = 0; rmap && i < rmap->via.map.size; i++)
        n++;   /* any fields and extras: $raw holds only present ones */
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, udb__buf_sbuffer_write);
    msgpack_pack_map(&pk, n);
    col = 0;
    for (size_t f = 0; f < t->nfields; f++) {
        const udb_field *fd = &t->fields[f];
        if (fd->type == UDB_F_ANY) {
            for (uint32_t i = 0; rmap && i < rmap->via.map.size; i++)
                if (key_is(&rmap->via.map.ptr[i].key, fd->name)) {
                    pack_str(&pk, fd->name, strlen(fd->name));
                    msgpack_pack_object(&pk, rmap->via.map.ptr[i].val);
                }
            continue;
        }
        if (!PQgetisnull(r, row, col)) {
            pack_str(&pk, fd->name, strlen(fd->name));
            if (pack_col(&pk, fd, r, row, col)) {
                rc = UDB_ENOMEM;
                goto out;
            }
        }
        col++;
    }
    for (uint32_t i = 0; rmap && i < rmap->via.map.size; i++)
        if (!declared(t, &rmap->via.map.ptr[i].key)) {
            msgpack_pack_object(&pk, rmap->via.map.ptr[i].key);
            msgpack_pack_object(&pk, rmap->via.map.ptr[i].val);
        }
    rc = out->oom ? UDB_ENOMEM : 0;
out:
    if (rb)
        PQfreemem(rb);
    msgpack_unpacked_destroy(&raw);
    return rc;
}

/* Run q with ps on c: 0 and *r, or the libpq error in msg. */
static int run(PGresult **r, PGconn *c, udb_buf *q, const params *ps, udb_buf *msg)
{
    *r = NULL;
    udb__buf_byte(q, '\0');
    if (q->oom)
        return UDB_ENOMEM;
    return udb__pg_run_prepared(r, c, (const char *)q->p, ps->n, (const char *const *)ps->val,
                                ps->len, ps->fmt, msg);
}

/* The record of t whose index ix holds key, on connection c: 0 and its
 * canonical bytes in out, UDB_ENOTFOUND, or an error in msg. */
static int select_by(udb_buf *out, udb_txn *txn, PGconn *c, const udb_type *t,
                     const udb_index *ix, const void *key, size_t keylen, udb_buf *msg)
{
    udb_buf q = {0};
    params ps = {0}, unused = {0};
    PGresult *r = NULL;
    /* the text depends on the index and on which key values are NULL: c
       keeps it (pgcache.h), so a lookup builds only its parameters */
    unsigned nulls = 0;
    int rc = key_where_as(txn, NULL, &ps, &nulls, t, ix, key, keylen);
    const char *sql = rc ? NULL : udb__pg_cache_text(c, ix, nulls);
    if (!rc && !sql) {
        udb__buf_printf(&q, "SELECT ");
        select_list(&q, t);
        udb__buf_printf(&q, " FROM ");
        udb__pg_qualified(&q, pgschema(txn), t->name);
        udb__buf_printf(&q, " WHERE true");
        rc = key_where(txn, &q, &unused, t, ix, key, keylen);
        if (!rc && ix->where)
            udb__buf_printf(&q, " AND (%s)", ix->where);
        udb__buf_byte(&q, '\0');
        if (!rc && q.oom)
            rc = UDB_ENOMEM;
        if (!rc) {
            sql = (const char *)q.p;
            udb__pg_cache_text_put(c, ix, nulls, sql);
        }
    }
    if (!rc)
        rc = udb__pg_run_prepared(&r, c, sql, ps.n, (const char *const *)ps.val, ps.len, ps.fmt,
                                  msg);
    if (!rc && PQntuples(r) == 0)
        rc = UDB_ENOTFOUND;
    else if (!rc)
        rc = row_record(out, t, r, 0);
    PQclear(r);
    params_free(&ps);
    params_free(&unused);
    udb__buf_free(&q);
    return rc;
}

static int fetch_on(udb_val *rec, udb_txn *txn, PGconn *c, const udb_type *t,
                    const udb_index *ix, const void *key, size_t keylen)
{
    udb_buf out = {0}, msg = {0};
    int rc = select_by(&out, txn, c, t, ix, key, keylen, &msg);
    if (rc == UDB_ECORRUPT)
        rc = udb__err(txn, rc, "type \"%s\": a stored \"$raw\" is not a msgpack map", t->name);
    else if (rc && rc != UDB_ENOTFOUND && msg.len)
        rc = pg_err(txn, rc, &msg);
    else if (!rc)
        rc = keep(rec, txn, &out);
    udb__buf_free(&out);
    udb__buf_free(&msg);
    return rc;
}

static bool same_bytes(const udb_buf *b, const void *p, size_t n)
{
    return b->len == n && (n == 0 || memcmp(b->p, p, n) == 0);
}

/* A remembered answer: to "who holds key in ix" (pk: NULL), or to "the
 * record of primary key pk" (ix: NULL) -- also known from a holder found. */
static const memo *memo_get(udb_pgtxn *p, const udb_type *t, const udb_index *ix,
                            const void *key, size_t keylen)
{
    for (size_t i = 0; i < NMEMO && i < p->nmemo; i++) {
        const memo *m = &p->memo[i];
        if (m->t != t)
            continue;
        if (ix && m->ix == ix && same_bytes(&m->key, key, keylen))
            return m;
        if (!ix && ((m->ix == &t->idx[0] && same_bytes(&m->key, key, keylen)) ||
                    (m->found && same_bytes(&m->pk, key, keylen))))
            return m;
    }
    return NULL;
}

/* Remember an answer (pk, rec: when found); nothing when out of memory. */
static void memo_put(udb_pgtxn *p, const udb_type *t, const udb_index *ix, const void *key,
                     size_t keylen, const udb_buf *pk, const udb_val *rec)
{
    memo *m = &p->memo[p->nmemo++ % NMEMO];
    m->t = NULL;   /* unusable until whole */
    m->key.len = m->pk.len = m->rec.len = 0;
    udb__buf_put(&m->key, key, keylen);
    if (rec) {
        udb__buf_put(&m->pk, pk->p, pk->len);
        udb__buf_put(&m->rec, rec->data, rec->size);
    }
    if (m->key.oom || m->pk.oom || m->rec.oom)
        return;
    m->t = t;
    m->ix = ix;
    m->found = rec != NULL;
}

static int pg_fetch(udb_val *rec, udb_txn *txn, const udb_type *t, const void *pk, size_t pklen)
{
    udb_pgtxn *p = pgt(txn);
    const memo *m = memo_get(p, t, NULL, pk, pklen);
    if (m)
        return m->found ? keep(rec, txn, &m->rec) : UDB_ENOTFOUND;
    int rc = fetch_on(rec, txn, p->c, t, &t->idx[0], pk, pklen);
    if (rc == UDB_ENOTFOUND || !rc) {
        udb_buf k = {0};
        udb__buf_put(&k, pk, pklen);
        memo_put(p, t, &t->idx[0], pk, pklen, &k, rc ? NULL : rec);
        udb__buf_free(&k);
    }
    return rc;
}

/* The encoded primary key of record rec (canonical) of t into out. */
static int record_pk(udb_buf *out, udb_txn *txn, const udb_type *t, const udb_val *rec)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int rc = UDB_ECORRUPT;
    udb_buf msg = {0};
    if (msgpack_unpack_next(&u, rec->data, rec->size, NULL) == MSGPACK_UNPACK_SUCCESS &&
        u.data.type == MSGPACK_OBJECT_MAP)
        for (uint32_t i = 0; i < u.data.via.map.size; i++)
            if (key_is(&u.data.via.map.ptr[i].key, t->fields[t->key].name))
                rc = udb__field_key(out, t, &t->fields[t->key], &u.data.via.map.ptr[i].val,
                                    &msg);
    msgpack_unpacked_destroy(&u);
    udb__buf_free(&msg);
    return rc ? udb__err(txn, UDB_ECORRUPT, "type \"%s\": a stored record has no valid key",
                         t->name) : 0;
}

static int holder_on(udb_val *pk, udb_txn *txn, PGconn *c, const udb_type *t,
                     const udb_index *ix, const void *key, size_t keylen)
{
    udb_val rec;
    udb_buf k = {0};
    int rc = fetch_on(&rec, txn, c, t, ix, key, keylen);
    if (!rc && !(rc = record_pk(&k, txn, t, &rec)))
        rc = keep(pk, txn, &k);
    udb__buf_free(&k);
    return rc;
}

static int pg_holder(udb_val *pk, udb_txn *txn, const udb_type *t, const udb_index *ix,
                     const void *key, size_t keylen)
{
    udb_pgtxn *p = pgt(txn);
    const memo *m = memo_get(p, t, ix, key, keylen);
    if (m)
        return m->found ? keep(pk, txn, &m->pk) : UDB_ENOTFOUND;
    udb_val rec;
    udb_buf k = {0};
    int rc = fetch_on(&rec, txn, p->c, t, ix, key, keylen);
    if (!rc && !(rc = record_pk(&k, txn, t, &rec))) {
        memo_put(p, t, ix, key, keylen, &k, &rec);
        rc = keep(pk, txn, &k);
    } else if (rc == UDB_ENOTFOUND) {
        memo_put(p, t, ix, key, keylen, NULL, NULL);
    }
    udb__buf_free(&k);
    return rc;
}

/* ---- writes ------------------------------------------------------------------------ */

/* The server refused a duplicate our snapshot could not see (another client
 * committed it): the detail, each holder read on a connection of its own. */
static int raced(udb_txn *txn, const udb_type *t, const udb_entries *e)
{
    udb_pgtxn *p = pgt(txn);
    PGconn *side = NULL;
    udb_buf msg = {0};
    /* not from the pool: this thread holds one of its connections already,
       and a pool of one would wait for it forever */
    int rc = udb__pg_connect_extra(&side, p->pool, &msg);
    if (rc) {
        rc = pg_err(txn, rc, &msg);
        udb__buf_free(&msg);
        return rc;
    }
    udb__conflict_begin(txn, t);
    for (size_t i = 0; i < t->nidx && !rc; i++) {
        const udb_index *ix = &t->idx[i];
        if (!ix->unique || !e->applies[i] || udb__idx_exempt(ix, e->vals))
            continue;
        udb_val hv, rec;
        const void *key = e->keys + e->off[i];
        rc = ix->is_pk ? fetch_on(&rec, txn, side, t, ix, key, e->len[i])
                       : holder_on(&hv, txn, side, t, ix, key, e->len[i]);
        if (rc == UDB_ENOTFOUND) {
            rc = 0;
            continue;
        }
        if (rc)
            break;
        const void *h = ix->is_pk ? key : hv.data;
        size_t hl = ix->is_pk ? e->len[0] : hv.size;
        if (!ix->is_pk && hl == e->len[0] && memcmp(h, e->keys + e->off[0], hl) == 0)
            continue;   /* our own row (an update): not what the server refused */
        /* a nocase field: the values as the holder stores them */
        udb_rec hr;
        udb__rec_init(&hr);
        const msgpack_object *const *vals = e->vals;
        if (ix->any_nocase && !(rc = fetch_on(&rec, txn, side, t, &t->idx[0], h, hl))) {
            if (udb__rec_parse(&hr, t, rec.data, rec.size, false, &msg))
                rc = udb__err(txn, UDB_ECORRUPT, "stored record is damaged");
            vals = (const msgpack_object *const *)hr.vals;
        }
        if (!rc && udb__conflict_add(txn, ix, vals, h, hl))
            rc = udb__err(txn, UDB_ENOMEM, "cannot record conflict detail");
        udb__rec_free(&hr);
    }
    PQfinish(side);
    udb__buf_free(&msg);
    if (rc)
        return rc;
    rc = udb__conflict_finish(txn);
    if (rc)
        return rc;
    pgt(txn)->retry = true;
    return udb__err(txn, UDB_ERETRY, "type \"%s\": PostgreSQL refused a duplicate whose "
                    "holder is gone again; run the transaction again", t->name);
}

/* c's statement texts kept per type (udb__pg_cache_text's owner t): */
enum { TEXT_INSERT, TEXT_INSERT_FRESH };

/* The INSERT of t's records (fresh: ... ON CONFLICT DO NOTHING) into q: its
 * parameters, as store_any passes them, every field in schema order, then
 * "$raw" and "$extra" where t has them. */
static void insert_text(udb_buf *q, const char *pgschema, const udb_type *t, bool fresh)
{
    udb_buf vals = {0};
    udb__buf_printf(q, "INSERT INTO ");
    udb__pg_qualified(q, pgschema, t->name);
    udb__buf_printf(q, " (");
    int n = 0;
    for (size_t f = 0; f < t->nfields; f++) {
        udb__buf_printf(q, f ? ", " : "");
        udb__pg_ident(q, t->fields[f].name);
        udb__buf_printf(&vals, "%s$%d::%s", f ? ", " : "", ++n, cast(&t->fields[f]));
    }
    if (udb__pg_has_raw(t)) {
        udb__buf_printf(q, ", \"$raw\"");
        udb__buf_printf(&vals, ", $%d::bytea", ++n);
        if (t->extra) {
            udb__buf_printf(q, ", \"$extra\"");
            udb__buf_printf(&vals, ", $%d::jsonb", ++n);
        }
    }
    udb__buf_printf(q, ") VALUES (");
    udb__buf_put(q, vals.p, vals.len);
    udb__buf_printf(q, fresh ? ") ON CONFLICT DO NOTHING" : ")");
    if (vals.oom)
        q->oom = true;
    udb__buf_free(&vals);
}

/* store, and store_new (fresh): INSERT ... ON CONFLICT DO NOTHING, a record
 * not inserted UDB_BE_TAKEN (backend.h).  guarded: between SAVEPOINT and
 * RELEASE, so that the transaction outlives the statement's failure. */
static int store_any(udb_txn *txn, const udb_type *t, const void *record, size_t len,
                     const udb_entries *e, const udb_entries *old, bool fresh, bool guarded)
{
    blocks before = blocks_take(pgt(txn));
    PGconn *c = pgt(txn)->c;
    udb_buf q = {0}, msg = {0}, rawb = {0};
    params ps = {0};
    PGresult *r = NULL;
    int rc = 0;
    bool raw = udb__pg_has_raw(t);
    /* an INSERT's text is the same for every record of t: c keeps it */
    const char *sql = old ? NULL : udb__pg_cache_text(c, t, fresh ? TEXT_INSERT_FRESH
                                                                  : TEXT_INSERT);
    /* the record's undeclared fields: the core parsed them, but e has only
       declared values; read them from the canonical record */
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    if (raw && (msgpack_unpack_next(&u, record, len, NULL) != MSGPACK_UNPACK_SUCCESS ||
                u.data.type != MSGPACK_OBJECT_MAP)) {
        rc = udb__err(txn, UDB_EBADRECORD, "type \"%s\": not a msgpack map", t->name);
        goto out;
    }
    if (old) {
        udb__buf_printf(&q, "UPDATE ");
        udb__pg_qualified(&q, pgschema(txn), t->name);
        udb__buf_printf(&q, " SET ");
    }
    for (size_t f = 0; f < t->nfields && !rc; f++) {
        int n = param_value(txn, &ps, t, &t->fields[f], e->vals[f]);
        if (n < 0) {
            rc = n;
            break;
        }
        if (old) {
            udb__buf_printf(&q, f ? ", " : "");
            udb__pg_ident(&q, t->fields[f].name);
            udb__buf_printf(&q, " = $%d::%s", n, cast(&t->fields[f]));
        }
    }
    if (!rc && raw) {
        /* "$raw": any and undeclared fields as packed; "$extra": the latter, readable */
        const msgpack_object_map *m = &u.data.via.map;
        msgpack_packer rp;
        msgpack_packer_init(&rp, &rawb, udb__buf_sbuffer_write);
        uint32_t nraw = 0, nextra = 0;
        for (uint32_t i = 0; i < m->size; i++) {
            bool decl = declared(t, &m->ptr[i].key), any = false;
            for (size_t f = 0; f < t->nfields; f++)
                any |= t->fields[f].type == UDB_F_ANY && key_is(&m->ptr[i].key,
                                                                  t->fields[f].name);
            nraw += !decl || any;
            nextra += !decl;
        }
        msgpack_pack_map(&rp, nraw);
        for (int pass = 0; pass < 2; pass++) {
            if (pass == 1) {   /* the undeclared ones, for "$extra" */
                udb__buf_free(&rawb);
                rawb = (udb_buf){0};
                msgpack_pack_map(&rp, nextra);
            }
            for (uint32_t i = 0; i < m->size; i++) {
                bool decl = declared(t, &m->ptr[i].key), any = false;
                for (size_t f = 0; f < t->nfields; f++)
                    any |= t->fields[f].type == UDB_F_ANY && key_is(&m->ptr[i].key,
                                                                      t->fields[f].name);
                if (pass == 0 ? !decl || any : !decl) {
                    msgpack_pack_object(&rp, m->ptr[i].key);
                    msgpack_pack_object(&rp, m->ptr[i].val);
                }
            }
            if (pass == 0) {
                int n = drop_raw ? param(&ps, NULL, 0, 1) : param(&ps, rawb.p, rawb.len, 1);
                if (old)
                    udb__buf_printf(&q, ", \"$raw\" = $%d::bytea", n);
            }
            if (pass == 1 && t->extra) {
                char *j = nextra ? readable(rawb.p, rawb.len) : NULL;
                int n = nextra ? (j ? param_text(&ps, j) : -1) : param(&ps, NULL, 0, 0);
                free(j);
                if (n < 0)
                    rc = udb__err(txn, UDB_ENOMEM, "out of memory");
                if (old)
                    udb__buf_printf(&q, ", \"$extra\" = $%d::jsonb", n);
            }
        }
    }
    if (!rc && old) {
        udb__buf_printf(&q, " WHERE true");
        rc = key_where(txn, &q, &ps, t, &t->idx[0], old->keys + old->off[0], old->len[0]);
    } else if (!rc && !sql) {
        insert_text(&q, pgschema(txn), t, fresh);
    }
    if (!rc && !sql) {
        udb__buf_byte(&q, '\0');
        if (q.oom)
            rc = udb__err(txn, UDB_ENOMEM, "out of memory");
        else
            sql = (const char *)q.p;
        if (!rc && !old)
            udb__pg_cache_text_put(c, t, fresh ? TEXT_INSERT_FRESH : TEXT_INSERT, sql);
    }
    if (rc)
        goto out;
    /* guarded, a failed statement rolls back to the savepoint alone: nothing
       of it is written and the transaction goes on, as on LMDB (SAVEPOINT,
       the statement and RELEASE go in one round trip) */
    if (guarded)
        rc = udb__pg_run_guarded(&r, c, "udb_store", sql, ps.n, (const char *const *)ps.val,
                                 ps.len, ps.fmt, &msg);
    else
        rc = udb__pg_run_prepared(&r, c, sql, ps.n, (const char *const *)ps.val, ps.len,
                                  ps.fmt, &msg);
    if (rc == UDB_ECONFLICT)   /* (a failed ROLLBACK TO would have another code) */
        rc = raced(txn, t, e);
    else if (rc)
        rc = pg_err(txn, rc, &msg);
    else if (fresh && strcmp(PQcmdTuples(r), "1") != 0)
        rc = UDB_BE_TAKEN;   /* the core asks who holds what */
out:
    PQclear(r);
    msgpack_unpacked_destroy(&u);
    params_free(&ps);
    udb__buf_free(&q);
    udb__buf_free(&msg);
    udb__buf_free(&rawb);
    blocks_drop(&before);
    return rc;
}

/* Bytes an index entry of these values may take at most: the index tuple's
 * header and final padding, then per value its bytes (a number's 16), its
 * varlena header and alignment (8). */
static size_t entry_bound(const udb_index *ix, const udb_entries *e)
{
    size_t n = 24;
    for (size_t k = 0; k < ix->nfields; k++) {
        const msgpack_object *o = e->vals[ix->fields[k]];
        n += 8;
        if (!o || o->type == MSGPACK_OBJECT_NIL)
            continue;
        n += o->type == MSGPACK_OBJECT_STR ? o->via.str.size
             : o->type == MSGPACK_OBJECT_BIN ? o->via.bin.size : 16;
    }
    return n;
}

/* The smallest btree row limit a PostgreSQL server can have: 312 bytes with
 * 1 kB pages (BTMaxItemSize; 2704 with the usual 8 kB), kept well under. */
#define SMALL_ENTRY 256

/* Can the INSERT ... ON CONFLICT DO NOTHING of a record whose values are e
 * fail in a way its transaction goes on from?  The core has checked the
 * values (types, enums, UTF-8, no NaN; no NUL: param_value), a taken unique
 * key is no error (UDB_BE_TAKEN), and a serialization failure or deadlock
 * ends the transaction anyway: what is left is an index entry over the
 * server's row limit (54000, UDB_EKEYTOOLONG, which the transaction
 * outlives on LMDB too) -- impossible when every entry is small -- and
 * jsonb's own refusals of an `any` or extra value, not foreseen here: such
 * a type keeps the savepoint. */
static bool insert_may_fail(const udb_type *t, const udb_entries *e)
{
    if (udb__pg_has_raw(t))
        return true;
    for (size_t i = 0; i < t->nidx; i++)
        if (entry_bound(&t->idx[i], e) > SMALL_ENTRY)
            return true;
    return false;
}

static int pg_store(udb_txn *txn, const udb_type *t, const void *record, size_t len,
                    const udb_entries *e, const udb_entries *old)
{
    return store_any(txn, t, record, len, e, old, false, true);
}

static int pg_store_new(udb_txn *txn, const udb_type *t, const void *record, size_t len,
                        const udb_entries *e, const udb_index *reads)
{
    /* did this transaction find one of the record's unique keys free (or is
       the caller about to read one: insert_or_get)? */
    udb_pgtxn *p = pgt(txn);
    bool read_free = reads && e->applies[reads - t->idx] && !udb__idx_exempt(reads, e->vals);
    for (size_t i = 0; i < t->nidx && !read_free; i++) {
        const udb_index *ix = &t->idx[i];
        if (!ix->unique || !e->applies[i] || udb__idx_exempt(ix, e->vals))
            continue;
        const memo *m = ix->is_pk ? memo_get(p, t, NULL, e->keys + e->off[i], e->len[i])
                                  : memo_get(p, t, ix, e->keys + e->off[i], e->len[i]);
        read_free = m && !m->found;
    }
    /* 40001: ON CONFLICT met a key held by a writer our snapshot cannot see.
       Having read that key free, we are the serialization failure itself
       (what PostgreSQL says of the plain INSERT too): run it again.  Else
       the plain INSERT reports the race as before: 23505, raced() and the
       detail (or the same failure), so the first INSERT runs under the
       savepoint, and so does every INSERT that may fail in a way the
       transaction goes on from (insert_may_fail: e.g. 54000, an index row
       over the server's limit).  Having read the key free, the failure that
       is left ends the transaction anyway: no savepoint (a subtransaction on
       the server, two statements more), as the INSERT written by hand */
    int rc = store_any(txn, t, record, len, e, NULL, true,
                       !read_free || (insert_may_fail(t, e) && !unguarded));
    if (rc == UDB_ERETRY && !read_free)
        rc = store_any(txn, t, record, len, e, NULL, false, true);
    return rc;
}

static int pg_remove(udb_txn *txn, const udb_type *t, const void *pk, size_t pklen,
                     const udb_entries *old)
{
    (void)old;
    blocks before = blocks_take(pgt(txn));
    udb_buf q = {0}, msg = {0};
    params ps = {0};
    PGresult *r = NULL;
    udb__buf_printf(&q, "DELETE FROM ");
    udb__pg_qualified(&q, pgschema(txn), t->name);
    udb__buf_printf(&q, " WHERE true");
    int rc = key_where(txn, &q, &ps, t, &t->idx[0], pk, pklen);
    if (!rc && (rc = run(&r, pgt(txn)->c, &q, &ps, &msg)))
        rc = pg_err(txn, rc, &msg);
    PQclear(r);
    params_free(&ps);
    udb__buf_free(&q);
    udb__buf_free(&msg);
    blocks_drop(&before);
    return rc;
}

/* ---- whole types ----------------------------------------------------------------- */

static int pg_count(uint64_t *n, udb_txn *txn, const udb_schema *s, const udb_type *t)
{
    (void)s;
    udb_buf q = {0}, msg = {0};
    params ps = {0};
    PGresult *r = NULL;
    udb__buf_printf(&q, "SELECT count(*) FROM ");
    udb__pg_qualified(&q, pgschema(txn), t->name);
    int rc = run(&r, pgt(txn)->c, &q, &ps, &msg);
    *n = rc ? 0 : strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    udb__buf_free(&q);
    udb__buf_free(&msg);
    return rc;
}

/* Every record of t in primary key order (desc: only the last one). */
static int rows(PGresult **r, udb_txn *txn, const udb_type *t, bool last)
{
    udb_buf q = {0}, msg = {0};
    params ps = {0};
    udb__buf_printf(&q, "SELECT ");
    select_list(&q, t);
    udb__buf_printf(&q, " FROM ");
    udb__pg_qualified(&q, pgschema(txn), t->name);
    udb__buf_printf(&q, " ORDER BY ");
    udb__pg_ident(&q, t->fields[t->key].name);
    udb__buf_printf(&q, last ? " DESC LIMIT 1" : "");
    int rc = run(r, pgt(txn)->c, &q, &ps, &msg);
    if (rc)
        pg_err(txn, rc, &msg);
    udb__buf_free(&q);
    udb__buf_free(&msg);
    return rc;
}

static int pg_each(udb_txn *txn, const udb_schema *s, const udb_type *t,
                   int (*fn)(void *ctx, const udb_val *pk, const udb_val *rec), void *ctx)
{
    (void)s;
    PGresult *r = NULL;
    int rc = rows(&r, txn, t, false);
    udb_buf rec = {0}, k = {0};
    for (int i = 0; !rc && i < PQntuples(r); i++) {
        rec.len = k.len = 0;
        if ((rc = row_record(&rec, t, r, i)))
            break;
        udb_val rv = {rec.p, rec.len};
        if ((rc = record_pk(&k, txn, t, &rv)))
            break;
        udb_val kv = {k.p, k.len};
        rc = fn(ctx, &kv, &rv);
    }
    PQclear(r);
    udb__buf_free(&rec);
    udb__buf_free(&k);
    return rc;
}

static int pg_last_key(udb_val *pk, udb_txn *txn, const udb_type *t)
{
    PGresult *r = NULL;
    int rc = rows(&r, txn, t, true);
    udb_buf rec = {0}, k = {0};
    if (!rc && PQntuples(r) == 0)
        rc = UDB_ENOTFOUND;
    if (!rc && (rc = row_record(&rec, t, r, 0)))
        rc = udb__err(txn, rc, "type \"%s\": cannot read its last record", t->name);
    udb_val rv = {rec.p, rec.len};
    if (!rc && !(rc = record_pk(&k, txn, t, &rv)))
        rc = keep(pk, txn, &k);
    PQclear(r);
    udb__buf_free(&rec);
    udb__buf_free(&k);
    return rc;
}

/* ---- sequences ("$seq", meta.c) ------------------------------------------------------ */

/* Does "$seq" exist?  Always once a schema was applied; before, only once
 * a sequence was advanced (pg_seq_store makes it), as on LMDB sequences
 * need no schema.  Asked before a statement that would fail without it,
 * since a failed statement ends the transaction. */
static int seq_table(bool *out, udb_txn *txn, udb_buf *msg)
{
    *out = true;
    return udb__txn_schema(txn) ? 0 : udb__pg_meta_exists(out, pgt(txn)->c, pgschema(txn), msg);
}

static int pg_seq_peek(uint64_t *out, bool *found, udb_txn *txn, const char *name)
{
    udb_buf msg = {0};
    bool there;
    int rc = seq_table(&there, txn, &msg);
    if (!rc)
        rc = there ? udb__pg_seq_get(out, pgt(txn)->c, pgschema(txn), name, &msg)
                   : UDB_ENOTFOUND;
    if (found)
        *found = rc == 0;
    if (rc == UDB_ENOTFOUND) {
        *out = 0;
        rc = 0;
    } else if (rc)
        rc = pg_err(txn, rc, &msg);
    udb__buf_free(&msg);
    return rc;
}

static int pg_seq_store(udb_txn *txn, const char *name, uint64_t v)
{
    udb_buf q = {0}, msg = {0};
    params ps = {0};
    PGresult *r = NULL;
    char num[24];
    snprintf(num, sizeof num, "%" PRIu64, v);
    param_text(&ps, name);
    param_text(&ps, num);
    udb__buf_printf(&q, "INSERT INTO ");
    udb__pg_qualified(&q, pgschema(txn), "$seq");
    udb__buf_printf(&q, " (name, value) VALUES ($1::text, $2::numeric) ON CONFLICT (name) "
                    "DO UPDATE SET value = EXCLUDED.value");
    int rc = ps.n == 2 ? 0 : UDB_ENOMEM;
    if (!rc && !udb__txn_schema(txn))
        rc = udb__pg_meta_make(pgt(txn)->c, pgschema(txn), &msg);
    if (!rc)
        rc = run(&r, pgt(txn)->c, &q, &ps, &msg);
    if (rc)
        rc = pg_err(txn, rc, &msg);
    PQclear(r);
    params_free(&ps);
    udb__buf_free(&q);
    udb__buf_free(&msg);
    return rc;
}

static int pg_seq_each(udb_txn *txn, udb_seq_fn fn, void *ctx)
{
    udb_buf q = {0}, msg = {0};
    params ps = {0};
    PGresult *r = NULL;
    udb__buf_printf(&q, "SELECT name, value::text FROM ");
    udb__pg_qualified(&q, pgschema(txn), "$seq");
    udb__buf_printf(&q, " ORDER BY name");
    bool there;
    int rc = seq_table(&there, txn, &msg);
    if (!rc && there)
        rc = run(&r, pgt(txn)->c, &q, &ps, &msg);
    if (rc)
        rc = pg_err(txn, rc, &msg);
    for (int i = 0; !rc && i < PQntuples(r); i++)
        rc = fn(PQgetvalue(r, i, 0), strtoull(PQgetvalue(r, i, 1), NULL, 10), ctx);
    PQclear(r);
    udb__buf_free(&q);
    udb__buf_free(&msg);
    return rc;
}

static int pg_type_stat(udb_type_stat *out, udb_txn *txn, const udb_type *t)
{
    int rc = pg_count(&out->records, txn, udb__txn_schema(txn), t);
    if (rc)
        return udb__err(txn, rc, "type \"%s\": counting its rows: %s", t->name,
                        udb_strerror(rc));
    udb_buf q = {0}, sel = {0};
    udb__pg_qualified(&q, pgschema(txn), t->name);
    /* index_entries as the LMDB backend counts them: every index but the
       primary key holds each row its where admits (core/index.c: a row with
       NULLs too, under its own entry) */
    udb__buf_printf(&sel, "SELECT pg_total_relation_size($1::regclass), (SELECT 0");
    for (size_t i = 1; i < t->nidx; i++) {
        udb__buf_printf(&sel, " + count(*)");
        if (t->idx[i].where)
            udb__buf_printf(&sel, " FILTER (WHERE (%s))", t->idx[i].where);
    }
    udb__buf_printf(&sel, " FROM %.*s)", (int)q.len, q.p ? (const char *)q.p : "");
    PGresult *r = NULL;
    udb_buf msg = {0};
    const char *name = (const char *)q.p;
    rc = q.oom || sel.oom ? UDB_ENOMEM
                          : udb__pg_execp(&r, pgt(txn)->c, (const char *)sel.p, 1, &name, &msg);
    if (!rc && PQntuples(r) == 1) {
        out->bytes = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
        out->index_entries = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
    }
    if (rc)
        rc = pg_err(txn, rc, &msg);
    PQclear(r);
    udb__buf_free(&q);
    udb__buf_free(&sel);
    udb__buf_free(&msg);
    return rc;
}

static int pg_commit(udb_txn *txn)
{
    udb_buf msg = {0};
    int rc = udb__pg_commit(txn, &msg);
    if (rc)
        udb__env_err(rc, "udb_commit: %.*s", (int)msg.len, msg.p ? (char *)msg.p : "");
    udb__buf_free(&msg);
    return rc;
}

const udb_backend udb__pg_backend = {
    .name = "postgresql",
    .fetch = pg_fetch,
    .holder = pg_holder,
    .store = pg_store,
    .store_new = pg_store_new,
    .remove = pg_remove,
    .count = pg_count,
    .each = pg_each,
    .last_key = pg_last_key,
    .seq_peek = pg_seq_peek,
    .seq_store = pg_seq_store,
    .seq_each = pg_seq_each,
    .commit = pg_commit,
    .abort = udb__pg_abort,
    .type_stat = pg_type_stat,
    .scan_size = udb__pg_scan_size,
    .scan_open = udb__pg_scan_open,
    .scan_next = udb__pg_scan_next,
    .scan_skip = udb__pg_scan_skip,
    .scan_close = udb__pg_scan_close,
};

/* ---- for pgscan.c (pgstore.h) ------------------------------------------------------ */

PGconn *udb__pg_txn_conn(udb_txn *txn)
{
    return pgt(txn)->c;
}

const char *udb__pg_txn_pgschema(udb_txn *txn)
{
    return pgschema(txn);
}

void udb__pg_select_list(udb_buf *q, const udb_type *t)
{
    select_list(q, t);
}

int udb__pg_row_record(udb_buf *out, const udb_type *t, const PGresult *r, int row)
{
    return row_record(out, t, r, row);
}

int udb__pg_txn_err(udb_txn *txn, int rc, const udb_buf *msg)
{
    return pg_err(txn, rc, msg);
}

/* ---- transactions ------------------------------------------------------------------- */

/* Which threads hold transactions of which pool: a thread that holds one
 * is refused a write (pgenv.c), as on LMDB, where it would wait for
 * itself; here it could wait for a connection its own transactions hold. */
typedef struct holder_slot {
    const udb_pgpool *pool;
    pthread_t thread;
    unsigned n;
} holder_slot;
static pthread_mutex_t holders_mu = PTHREAD_MUTEX_INITIALIZER;
static holder_slot *holders;
static size_t nholders, capholders;

static bool holders_add(const udb_pgpool *pool, pthread_t th, int d)
{
    pthread_mutex_lock(&holders_mu);
    holder_slot *free_slot = NULL, *mine = NULL;
    for (size_t i = 0; i < nholders && !mine; i++) {
        if (holders[i].n && holders[i].pool == pool && pthread_equal(holders[i].thread, th))
            mine = &holders[i];
        else if (!holders[i].n && !free_slot)
            free_slot = &holders[i];
    }
    bool ok = true;
    if (!mine && d > 0) {
        if (!free_slot && nholders == capholders) {
            size_t cap = capholders ? capholders * 2 : 16;
            holder_slot *h = realloc(holders, cap * sizeof *h);
            if (h) {
                holders = h;
                capholders = cap;
            }
        }
        if (!free_slot && nholders < capholders)
            free_slot = &holders[nholders++];
        if ((mine = free_slot)) {
            mine->pool = pool;
            mine->thread = th;
            mine->n = 0;
        } else {
            ok = false;
        }
    }
    if (mine)
        mine->n += (unsigned)d;
    pthread_mutex_unlock(&holders_mu);
    return ok;
}

bool udb__pg_thread_holds(const udb_pgpool *pool)
{
    pthread_t self = pthread_self();
    bool holds = false;
    pthread_mutex_lock(&holders_mu);
    for (size_t i = 0; i < nholders && !holds; i++)
        holds = holders[i].n && holders[i].pool == pool && pthread_equal(holders[i].thread, self);
    pthread_mutex_unlock(&holders_mu);
    return holds;
}

static void end(udb_pgtxn *p)
{
    if (p->counted)
        holders_add(p->pool, p->owner, -1);
    blocks_free(p);
    free(p->blocks);
    udb__front_free(&p->f);
    free(p);
}

int udb__pg_begin(udb_txn **out, udb_pgpool *pool, unsigned flags, udb_buf *msg)
{
    *out = NULL;
    if (flags & ~(unsigned)(UDB_RDONLY | UDB__PG_NOSYNC)) {
        udb__buf_printf(msg, "udb__pg_begin: unknown flags 0x%x (allowed: UDB_RDONLY)",
                        flags);
        return UDB_EINVAL;
    }
    udb_pgtxn *p = calloc(1, sizeof *p);
    if (!p)
        return UDB_ENOMEM;
    p->pool = pool;
    bool rdonly = flags & UDB_RDONLY;
    udb__front_init(&p->f, &udb__pg_backend, rdonly);
    const udb_schema *schema = NULL;
    int rc = udb__pg_acquire(&p->c, pool, msg);
    if (!rc)
        /* the schema is the connection's, read again only when its
           generation moved (pgcache.h): BEGIN costs one round trip.
           (extra_float_digits is the session's: conn.c sets it) */
        rc = udb__pg_begin_cached(&schema, p->c, udb__pg_pool_schema(pool),
                                  rdonly ? "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
                                  : flags & UDB__PG_NOSYNC ? "BEGIN ISOLATION LEVEL SERIALIZABLE;"
                                           " SET LOCAL synchronous_commit = off"
                                         : "BEGIN ISOLATION LEVEL SERIALIZABLE", msg);
    if (rc) {
        if (p->c)
            udb__pg_release(pool, p->c);   /* inside a transaction: closed */
        end(p);
        return rc;
    }
    p->f.schema = (udb_schema *)schema;   /* the front pins; the connection owns */
    p->owner = pthread_self();
    p->counted = holders_add(pool, p->owner, 1);
    *out = (udb_txn *)(void *)p;
    return 0;
}

int udb__pg_commit(udb_txn *txn, udb_buf *msg)
{
    udb_pgtxn *p = pgt(txn);
    PGresult *r = NULL;
    int rc = udb__pg_exec(&r, p->c, "COMMIT", msg);
    if (!rc && strcmp(PQcmdStatus(r), "COMMIT") != 0) {
        /* an earlier statement failed outside a savepoint */
        msg->len = 0;
        udb__buf_printf(msg, "an earlier statement of the transaction failed%s, so "
                        "PostgreSQL rolled it back", p->retry ? " (a concurrent transaction)"
                                                          : "");
        rc = p->retry ? UDB_ERETRY : UDB_ESERVER;
    } else if (!rc && atomic_load(&lose_commits) > 0 &&
               atomic_fetch_sub(&lose_commits, 1) > 0) {
        udb__buf_printf(msg, "the connection was lost during COMMIT (test): the transaction "
                        "may or may not have been written");
        rc = UDB_EINDOUBT;
    } else if (rc == UDB_ECONNECT) {
        msg->len = 0;
        udb__buf_printf(msg, "the connection was lost during COMMIT (%s): the transaction "
                        "may or may not have been written", PQerrorMessage(p->c));
        rc = UDB_EINDOUBT;
    }
    PQclear(r);
    udb__pg_release(p->pool, p->c);
    end(p);
    return rc;
}

void udb__pg_abort(udb_txn *txn)
{
    if (!txn)
        return;
    udb_pgtxn *p = pgt(txn);
    udb_buf msg = {0};
    udb__pg_exec(NULL, p->c, "ROLLBACK", &msg);
    udb__buf_free(&msg);
    udb__pg_release(p->pool, p->c);
    end(p);
}

udb_pgpool *udb__pg_txn_pool(const udb_txn *txn)
{
    return ((const udb_pgtxn *)(const void *)txn)->pool;
}

bool udb__pg_txn_retry(const udb_txn *txn)
{
    return ((const udb_pgtxn *)(const void *)txn)->retry || udb__cfront(txn)->must_retry;
}

/* An id as bytea text: \x and 32 hex digits. */
static void unit_hex(char out[35], const unsigned char id[UDB_PG_UNIT_ID])
{
    static const char hex[] = "0123456789abcdef";
    out[0] = '\\';
    out[1] = 'x';
    for (int i = 0; i < UDB_PG_UNIT_ID; i++) {
        out[2 + 2 * i] = hex[id[i] >> 4];
        out[3 + 2 * i] = hex[id[i] & 15];
    }
    out[34] = 0;
}

static int unit_sql(udb_buf *q, const char *pgschema, const char *head, const char *tail)
{
    udb__buf_printf(q, "%s", head);
    udb__pg_qualified(q, pgschema, "$unit");
    udb__buf_printf(q, "%s", tail);
    return q->oom ? UDB_ENOMEM : 0;
}

int udb__pg_unit_mark(udb_txn *txn, const unsigned char id[UDB_PG_UNIT_ID])
{
    if (atomic_load(&no_unit_mark))
        return 0;
    char hex[35];
    unit_hex(hex, id);
    const char *v = hex;
    udb_buf q = {0}, msg = {0};
    int rc = unit_sql(&q, pgschema(txn), "INSERT INTO ", " (id) VALUES ($1::bytea)");
    if (!rc)
        rc = udb__pg_execp(NULL, pgt(txn)->c, (const char *)q.p, 1, &v, &msg);
    if (rc)
        rc = pg_err(txn, rc, &msg);
    udb__buf_free(&q);
    udb__buf_free(&msg);
    return rc;
}

int udb__pg_unit_seen(bool *seen, udb_pgpool *pool, const unsigned char id[UDB_PG_UNIT_ID],
                      udb_buf *msg)
{
    char hex[35];
    unit_hex(hex, id);
    const char *v = hex;
    PGconn *c;
    int rc = udb__pg_acquire(&c, pool, msg);
    if (rc)
        return rc;
    udb_buf q = {0};
    PGresult *r = NULL;
    rc = unit_sql(&q, udb__pg_pool_schema(pool), "SELECT 1 FROM ", " WHERE id = $1::bytea");
    if (!rc)
        rc = udb__pg_execp(&r, c, (const char *)q.p, 1, &v, msg);
    if (!rc)
        *seen = PQntuples(r) > 0;
    PQclear(r);
    udb__buf_free(&q);
    udb__pg_release(pool, c);
    return rc;
}

int udb__pg_unit_sweep(udb_pgpool *pool, udb_buf *msg)
{
    PGconn *c;
    int rc = udb__pg_acquire(&c, pool, msg);
    if (rc)
        return rc;
    udb_buf q = {0};
    rc = unit_sql(&q, udb__pg_pool_schema(pool), "DELETE FROM ",
                  " WHERE at < now() - interval '1 day'");
    if (!rc)
        rc = udb__pg_exec(NULL, c, (const char *)q.p, msg);
    udb__buf_free(&q);
    udb__pg_release(pool, c);
    return rc;
}
