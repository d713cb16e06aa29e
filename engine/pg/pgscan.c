/*
 * pgscan.c -- the PostgreSQL backend's scans (backend.h's "scans"; the
 * public calls are core/cursor.c's): a server-side cursor over the type's
 * table, in the order of the LMDB backend's index keys, read a page at a
 * time.
 *
 * The order is keycodec.c's: per field NULL first, then the value's order
 * (text COLLATE "C": bytes, as keys; a nocase field by lower(f COLLATE "C"),
 * the expression its index is built on, ddl.c), ties by the primary key --
 * SQL's ORDER BY e1 NULLS FIRST, ..., pk; UDB_REVERSE is every term DESC
 * NULLS LAST.  A partial index's WHERE keeps its rows only.  The bounds and
 * `after` go to the server as row comparisons written out element by
 * element, NULL the smallest value (SQL's own (a, b) >= (x, y) knows no
 * NULL order), so it sends only the range; the core then decides again, from
 * each row's sort key computed as the LMDB backend's entries hold it
 * (udb__cursor_place), so the two backends take the same rows, and a row
 * out of that order is an error, never a silently different scan.
 *
 * DECLARE ... CURSOR runs the query once, in the transaction's snapshot as
 * it is when the scan opens, and FETCH hands it over in pages: a big table
 * never comes back in one result.  So a cursor does not see what its own
 * transaction writes after it opened (an LMDB cursor sees those it has not
 * passed yet): README "Running on PostgreSQL".
 */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cursor.h"
#include "keycodec.h"
#include "pgddl.h"
#include "pgstore.h"
#include "record.h"

#define PAGE 256   /* rows per FETCH */

typedef struct udb_pgcursor {
    udb_curfront f;            /* first: the core's part (cursor.h) */
    char name[48];             /* the server-side cursor's */
    bool open;                 /* declared and not closed on the server */
    PGresult *page;            /* the rows fetched, page_row the next one */
    int page_row, page_rows;
    bool last_page;            /* the server gave fewer rows than asked: no more */
    udb_buf rec, prev;         /* the current row's record; the previous row's sort key */
    udb_rec parsed;            /* the current row's values */
} udb_pgcursor;

static int misorder;   /* tests: 1 NULLs misplaced, no order check; 2 with the check */

void udb__pg_test_scan_misorder(int mode)
{
    misorder = mode;
}

static udb_pgcursor *pgc(udb_cursor *c)
{
    return (udb_pgcursor *)(void *)c;
}

size_t udb__pg_scan_size(void)
{
    return sizeof(udb_pgcursor);
}

/* A failed statement of the scan: rc, the message naming the scan. */
static int scan_err(udb_txn *txn, const udb_curfront *c, int rc, const udb_buf *msg)
{
    udb_buf m = {0};
    udb__buf_printf(&m, "scanning \"%s.%s\": %.*s", c->t->name, c->ix->name, (int)msg->len,
                    msg->p ? (const char *)msg->p : "");
    rc = udb__pg_txn_err(txn, rc, &m);
    udb__buf_free(&m);
    return rc;
}

/* ---- the query ---------------------------------------------------------------- */

/* Statement parameters, all text. */
typedef struct params {
    int n, cap;
    char **val;
} params;

static void params_free(params *ps)
{
    for (int i = 0; i < ps->n; i++)
        free(ps->val[i]);
    free(ps->val);
    *ps = (params){0};
}

/* Add the n bytes at p as a text parameter: its number, or -1 (out of memory). */
static int param(params *ps, const char *p, size_t n)
{
    if (ps->n == ps->cap) {
        int cap = ps->cap ? 2 * ps->cap : 16;
        char **v = realloc(ps->val, (size_t)cap * sizeof *v);
        if (!v)
            return -1;
        ps->val = v;
        ps->cap = cap;
    }
    char *s = malloc(n + 1);
    if (!s)
        return -1;
    memcpy(s, p, n);
    s[n] = '\0';
    ps->val[ps->n++] = s;
    return ps->n;
}

/* Is s..s+n UTF-8 that PostgreSQL takes as text (no NUL, no surrogate, no
 * overlong form)?  A bound of another string matches no row of a text
 * column exactly: the server gets no bound then, the core decides alone. */
static bool pg_text(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
                     : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (c == 0 || len == 0 || n - i < len)
            return false;
        uint32_t cp = len == 1 ? c : c & (0x7Fu >> len);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3Fu);
        }
        static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

/* The SQL of value i of the cursor's sort key (index fields, then the primary
 * key) into b: the column, or a nocase field's lower(...). */
static void sort_expr(udb_buf *b, const udb_curfront *c, size_t i)
{
    const udb_index *ix = c->ix;
    if (i < ix->nfields && !ix->is_pk) {
        udb_pgddl o = {0};
        udb__pg_index_field(b, c->t, ix, i, &o);
    } else {
        udb__pg_ident(b, c->t->fields[i < ix->nfields ? ix->fields[i] : c->t->key].name);
    }
}

static const udb_field *sort_field(const udb_curfront *c, size_t i)
{
    return &c->t->fields[i < c->ix->nfields ? c->ix->fields[i] : c->t->key];
}

/* Can value i of the sort key be NULL?  (Not the key, not a required field.) */
static bool nullable(const udb_curfront *c, size_t i)
{
    const udb_field *f = sort_field(c, i);
    return !(i >= c->ix->nfields || c->ix->is_pk || f->required ||
             f == &c->t->fields[c->t->key]);
}

/* One decoded value of a bound: NULL (no parameter), or "$n::type". */
typedef struct elem {
    bool null;
    int num;          /* the parameter's number */
    char ref[48];
} elem;

/* Decode the k values of tuple b (a bound or after, as the core encoded
 * them) into parameters.  false: one cannot go to the server as its field's
 * type (a string that is not PostgreSQL text, a value of another kind):
 * the server then gets no such bound; the core's check is exact anyway. */
static bool decode_bound(elem *out, size_t *k, params *ps, const udb_curfront *c,
                         const udb_buf *b, int *oom)
{
    const unsigned char *p = b->p, *end = p + b->len;
    udb_buf scratch = {0}, hex = {0};
    bool ok = true;
    int first = ps->n;   /* a bound left out takes its parameters with it */
    *k = 0;
    while (ok && p < end) {
        udb_telem e;
        scratch.len = 0;
        if (*k > UDB_MAX_IDX_FIELDS || udb__tk_decode(&e, &scratch, &p, end)) {
            ok = false;
            break;
        }
        const udb_field *f = sort_field(c, *k);
        elem *o = &out[(*k)++];
        o->null = e.kind == UDB_TK_NIL;
        if (o->null)
            continue;
        char num[40];
        const char *cast = "text COLLATE \"C\"";
        int n = 0;
        const char *s = scratch.p ? (const char *)scratch.p + e.v.s.off : "";
        switch (f->type) {
        case UDB_F_STR:
        case UDB_F_ENUM:
            /* a nocase value comes folded, as lower() folds the column */
            if (e.kind != UDB_TK_STR || !pg_text((const unsigned char *)s, e.v.s.n)) {
                ok = false;
                continue;
            }
            n = param(ps, s, e.v.s.n);
            break;
        case UDB_F_BIN:
            if (e.kind != UDB_TK_BYTES) {
                ok = false;
                continue;
            }
            hex.len = 0;
            udb__buf_printf(&hex, "\\x");
            for (size_t i = 0; i < e.v.s.n; i++)
                udb__buf_printf(&hex, "%02x", (unsigned char)s[i]);
            n = hex.oom ? -1 : param(ps, (const char *)hex.p, hex.len);
            cast = "bytea";
            break;
        case UDB_F_INT:
        case UDB_F_UINT:
            if (e.kind == UDB_TK_INT)
                snprintf(num, sizeof num, "%" PRId64, e.v.i);
            else if (e.kind == UDB_TK_UINT)
                snprintf(num, sizeof num, "%" PRIu64, e.v.u);
            else {
                ok = false;
                continue;
            }
            n = param(ps, num, strlen(num));
            cast = f->type == UDB_F_INT ? "bigint" : "numeric";
            break;
        case UDB_F_FLOAT:
            if (e.kind != UDB_TK_FLOAT) {
                ok = false;
                continue;
            }
            if (isnan(e.v.f))
                ok = false;
            else if (isinf(e.v.f))
                snprintf(num, sizeof num, e.v.f > 0 ? "Infinity" : "-Infinity");
            else
                snprintf(num, sizeof num, "%.17g", e.v.f);
            n = ok ? param(ps, num, strlen(num)) : 0;
            cast = "float8";
            break;
        case UDB_F_BOOL:
            if (e.kind != UDB_TK_BOOL) {
                ok = false;
                continue;
            }
            n = param(ps, e.v.b ? "t" : "f", 1);
            cast = "boolean";
            break;
        default:
            ok = false;
            continue;
        }
        if (n < 0) {
            *oom = 1;
            ok = false;
            break;
        }
        o->num = n;
        snprintf(o->ref, sizeof o->ref, "$%d::%s", n, cast);
    }
    udb__buf_free(&scratch);
    udb__buf_free(&hex);
    while (!ok && ps->n > first)
        free(ps->val[--ps->n]);
    return ok;
}

/* Append " AND (...)": the entry's first k sort-key values compared with the
 * k values of v as rows, NULL below every value: greater (gt) or less, or
 * equal too (incl). */
static void row_cmp(udb_buf *q, const udb_curfront *c, const udb_buf *expr, const size_t *eoff,
                    const elem *v, size_t k, bool gt, bool incl)
{
    udb__buf_printf(q, " AND ");
    for (size_t i = 0; i < k; i++) {
        const char *e = (const char *)expr->p + eoff[i];
        int el = (int)(eoff[i + 1] - eoff[i]);
        bool last = i + 1 == k;
        /* strictly beyond v[i] */
        udb__buf_printf(q, "(");
        if (v[i].null)
            udb__buf_printf(q, gt ? "%.*s IS NOT NULL" : "false", el, e);
        else if (gt)
            udb__buf_printf(q, "%.*s > %s", el, e, v[i].ref);
        else if (nullable(c, i))
            udb__buf_printf(q, "(%.*s IS NULL OR %.*s < %s)", el, e, el, e, v[i].ref);
        else
            udb__buf_printf(q, "%.*s < %s", el, e, v[i].ref);
        if (last && !incl)
            continue;
        /* or equal to it, and (unless the last) beyond on the rest */
        if (v[i].null)
            udb__buf_printf(q, " OR (%.*s IS NULL", el, e);
        else
            udb__buf_printf(q, " OR (%.*s = %s", el, e, v[i].ref);
        udb__buf_printf(q, last ? "" : " AND ");
    }
    for (size_t i = 0; i < k; i++)
        udb__buf_printf(q, i + 1 == k && !incl ? ")" : "))");
}

/* The server's side of the range: the lo, hi and after conditions that it
 * can take (see decode_bound). */
static int range_sql(udb_buf *q, params *ps, const udb_curfront *c)
{
    size_t nkey = c->ix->nfields + !c->ix->is_pk;
    udb_buf expr = {0};
    size_t eoff[UDB_MAX_IDX_FIELDS + 2];
    for (size_t i = 0; i < nkey; i++) {
        eoff[i] = expr.len;
        sort_expr(&expr, c, i);
    }
    eoff[nkey] = expr.len;
    if (expr.oom) {
        udb__buf_free(&expr);
        return UDB_ENOMEM;
    }
    int oom = 0;
    elem lo[UDB_MAX_IDX_FIELDS + 1], hi[UDB_MAX_IDX_FIELDS + 1], v[UDB_MAX_IDX_FIELDS + 1];
    size_t klo = 0, khi = 0, k;
    if (c->lo.len && !decode_bound(lo, &klo, ps, c, &c->lo, &oom))
        klo = 0;
    if (klo)
        row_cmp(q, c, &expr, eoff, lo, klo, true, !c->lo_excl);
    if (c->hi.len && !decode_bound(hi, &khi, ps, c, &c->hi, &oom))
        khi = 0;
    if (khi)
        row_cmp(q, c, &expr, eoff, hi, khi, false, !c->hi_excl);
    if (c->after.len && decode_bound(v, &k, ps, c, &c->after, &oom) && k)
        row_cmp(q, c, &expr, eoff, v, k, !c->reverse, false);
    /* what the rows above imply of the first value alone, in a form an index
       scan takes (the row comparisons are ORs): a non-NULL lo's first value
       is a lower bound, then hi's an upper one (the entries are not NULL
       there); equal, an equality (a prefix scan); hi's NULL: IS NULL */
    const char *e = (const char *)expr.p;
    int el = (int)eoff[1];
    if (klo && !lo[0].null && khi && !hi[0].null &&
        strcmp(ps->val[lo[0].num - 1], ps->val[hi[0].num - 1]) == 0)
        udb__buf_printf(q, " AND %.*s = %s", el, e, lo[0].ref);
    else if (klo && !lo[0].null)
        udb__buf_printf(q, " AND %.*s >= %s%s%.*s%s%s", el, e, lo[0].ref,
                        khi && !hi[0].null ? " AND " : "", khi && !hi[0].null ? el : 0, e,
                        khi && !hi[0].null ? " <= " : "", khi && !hi[0].null ? hi[0].ref : "");
    else if (khi && hi[0].null)
        udb__buf_printf(q, " AND %.*s IS NULL", el, e);
    udb__buf_free(&expr);
    return oom ? UDB_ENOMEM : 0;
}

static void order_by(udb_buf *q, const udb_curfront *c)
{
    size_t nkey = c->ix->nfields + !c->ix->is_pk;
    udb__buf_printf(q, " ORDER BY ");
    for (size_t i = 0; i < nkey; i++) {
        udb__buf_printf(q, i ? ", " : "");
        sort_expr(q, c, i);
        /* a column that cannot be NULL gets no NULLS clause: its ORDER BY
           then matches a plain index (the primary key's) */
        if (nullable(c, i))
            udb__buf_printf(q, "%s NULLS %s", c->reverse ? " DESC" : " ASC",
                            c->reverse != (misorder != 0) ? "LAST" : "FIRST");
        else
            udb__buf_printf(q, c->reverse ? " DESC" : " ASC");
    }
}

static int declare_fetch(udb_pgcursor *c, const char *declare, const params *ps,
                         udb_buf *msg);

int udb__pg_scan_open(udb_cursor *cur)
{
    udb_pgcursor *c = pgc(cur);
    udb_curfront *f = &c->f;
    udb_txn *txn = f->txn;
    udb_buf q = {0}, msg = {0};
    params ps = {0};
    udb__rec_init(&c->parsed);
    /* unique on the connection: a cursor a failed CLOSE left behind cannot
       clash with a later one */
    static _Atomic uint64_t made;
    snprintf(c->name, sizeof c->name, "udb_scan_%" PRIu64, ++made);
    udb__buf_printf(&q, "DECLARE ");
    udb__pg_ident(&q, c->name);
    udb__buf_printf(&q, " NO SCROLL CURSOR FOR SELECT ");
    udb__pg_select_list(&q, f->t);
    udb__buf_printf(&q, " FROM ");
    udb__pg_qualified(&q, udb__pg_txn_pgschema(txn), f->t->name);
    udb__buf_printf(&q, " WHERE true");
    if (f->ix->where)
        udb__buf_printf(&q, " AND (%s)", f->ix->where);
    int rc = range_sql(&q, &ps, f);
    order_by(&q, f);
    udb__buf_byte(&q, '\0');
    if (rc || q.oom) {
        rc = udb__err(txn, UDB_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = declare_fetch(c, (const char *)q.p, &ps, &msg)))
        rc = scan_err(txn, f, rc, &msg);
out:
    params_free(&ps);
    udb__buf_free(&q);
    udb__buf_free(&msg);
    return rc;
}

/* ---- the walk ----------------------------------------------------------------- */

/* Close the server's cursor (the scan ended, or is closed). */
static void close_server(udb_pgcursor *c)
{
    if (!c->open)
        return;
    c->open = false;
    udb_buf q = {0}, msg = {0};
    udb__buf_printf(&q, "CLOSE ");
    udb__pg_ident(&q, c->name);
    udb__buf_byte(&q, '\0');
    if (!q.oom)
        udb__pg_exec(NULL, udb__pg_txn_conn(c->f.txn), (const char *)q.p, &msg);
    udb__buf_free(&q);
    udb__buf_free(&msg);
}

/* How many rows the next FETCH asks for: a page, or no more than a limited
 * scan may still hand out. */
static uint64_t page_want(const udb_pgcursor *c)
{
    uint64_t want = PAGE;
    if (c->f.limit && c->f.limit - c->f.handed < want)
        want = c->f.limit - c->f.handed;
    return want;
}

/* r, the rows of a FETCH of want, becomes the page; fewer: the last one. */
static void take_page(udb_pgcursor *c, PGresult *r, uint64_t want)
{
    c->page = r;
    c->page_row = 0;
    c->page_rows = PQntuples(r);
    if ((uint64_t)c->page_rows < want) {
        c->last_page = true;
        close_server(c);
    }
}

/* The next page of rows.  0 (page_rows 0: none left), or an error. */
static int fetch_page(udb_pgcursor *c)
{
    udb_txn *txn = c->f.txn;
    PQclear(c->page);
    c->page = NULL;
    c->page_row = c->page_rows = 0;
    if (c->last_page || !c->open)
        return 0;
    uint64_t want = page_want(c);
    char sql[96];
    snprintf(sql, sizeof sql, "FETCH FORWARD %" PRIu64 " FROM \"%s\"", want, c->name);
    udb_buf msg = {0};
    PGresult *r = NULL;
    int rc = udb__pg_exec(&r, udb__pg_txn_conn(txn), sql, &msg);
    if (rc) {
        c->open = false;   /* the transaction has failed: the cursor is gone */
        rc = scan_err(txn, &c->f, rc, &msg);
    } else {
        take_page(c, r, want);
    }
    udb__buf_free(&msg);
    return rc;
}

/* DECLARE the cursor (declare, with ps) and FETCH its first page in one
 * round trip, in libpq's pipeline mode: most scans are one page.  0, or
 * the code and message of the first statement that failed. */
static int declare_fetch(udb_pgcursor *c, const char *declare, const params *ps, udb_buf *msg)
{
    PGconn *conn = udb__pg_txn_conn(c->f.txn);
    uint64_t want = page_want(c);
    char fetch[96];
    snprintf(fetch, sizeof fetch, "FETCH FORWARD %" PRIu64 " FROM \"%s\"", want, c->name);
    if (!PQenterPipelineMode(conn))
        return udb__pg_error(msg, conn, NULL, "PostgreSQL");
    int rc = 0;
    PGresult *rows = NULL;
    if (!PQsendQueryParams(conn, declare, ps->n, NULL, (const char *const *)ps->val, NULL,
                           NULL, 0) ||
        !PQsendQueryParams(conn, fetch, 0, NULL, NULL, NULL, NULL, 0) ||
        !PQpipelineSync(conn)) {
        rc = udb__pg_error(msg, conn, NULL, "PostgreSQL");   /* the connection is broken */
        PQexitPipelineMode(conn);
        return rc;
    }
    /* each statement's results end in NULL; the sync's ends the pipeline (a
       failed DECLARE makes the FETCH PGRES_PIPELINE_ABORTED) */
    for (int i = 0; i < 2; i++) {
        PGresult *r;
        while ((r = PQgetResult(conn)) != NULL) {
            ExecStatusType st = PQresultStatus(r);
            if (!rc && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
                rc = udb__pg_error(msg, conn, r, "PostgreSQL");
            if (!rc && i == 1 && st == PGRES_TUPLES_OK && !rows)
                rows = r;
            else
                PQclear(r);
        }
    }
    for (int i = 0; i < 4; i++) {
        PGresult *r = PQgetResult(conn);
        bool sync = r && PQresultStatus(r) == PGRES_PIPELINE_SYNC;
        PQclear(r);
        if (sync)
            break;
    }
    if (!PQexitPipelineMode(conn) && !rc)
        rc = udb__pg_error(msg, conn, NULL, "PostgreSQL");
    if (rc || !rows) {
        PQclear(rows);
        return rc ? rc : udb__pg_error(msg, conn, NULL, "PostgreSQL");
    }
    c->open = true;
    take_page(c, rows, want);
    return 0;
}

/* The next row in the range: its record in c->rec and sort key in c->f.cand;
 * 0, UDB_ENOTFOUND at the end, or an error with the message set. */
static int next_row(udb_pgcursor *c)
{
    udb_curfront *f = &c->f;
    udb_txn *txn = f->txn;
    if (f->done)
        return UDB_ENOTFOUND;
    int rc = 0;
    udb_buf msg = {0};
    for (;;) {
        if (c->page_row >= c->page_rows) {
            if ((rc = fetch_page(c)))
                break;
            if (c->page_rows == 0) {
                rc = UDB_ENOTFOUND;
                break;
            }
        }
        int row = c->page_row++;
        c->rec.len = 0;
        if ((rc = udb__pg_row_record(&c->rec, f->t, c->page, row))) {
            rc = udb__err(txn, rc, "type \"%s\": a stored \"$raw\" is not a msgpack map",
                          f->t->name);
            break;
        }
        udb__rec_free(&c->parsed);
        udb__rec_init(&c->parsed);
        bool in = false;
        if (udb__rec_parse(&c->parsed, f->t, c->rec.p, c->rec.len, false, &msg) ||
            (rc = udb__cursor_sort_key(f, &in, c->parsed.vals))) {
            rc = rc == UDB_ENOMEM ? udb__err(txn, rc, "out of memory")
                 : udb__err(txn, UDB_ECORRUPT, "type \"%s\": a stored row is not a valid "
                            "record: %s", f->t->name, msg.p ? (const char *)msg.p : "");
            break;
        }
        if (!in)
            continue;   /* the server's WHERE and the core's predicate disagree: the core's */
        /* the server's order must be the LMDB backend's: a row out of it
           would make the range decisions below wrong */
        if (c->prev.len && misorder != 1) {
            int d = udb__cmp_bytes(f->cand.p, f->cand.len, c->prev.p, c->prev.len);
            if (f->reverse ? d >= 0 : d <= 0) {
                rc = udb__err(txn, UDB_ESERVER, "scanning \"%s.%s\": PostgreSQL returned "
                              "the rows out of uniqdb's index order", f->t->name,
                              f->ix->name);
                break;
            }
        }
        c->prev.len = 0;
        udb__buf_put(&c->prev, f->cand.p, f->cand.len);
        if (c->prev.oom) {
            rc = udb__err(txn, UDB_ENOMEM, "out of memory");
            break;
        }
        int where = udb__cursor_place(f, f->cand.p, f->cand.len);
        if (where > 0)
            rc = UDB_ENOTFOUND;
        if (where >= 0)
            break;
    }
    udb__buf_free(&msg);
    if (rc) {
        f->done = true;
        close_server(c);
        return rc;
    }
    udb__cursor_handed(f);
    return 0;
}

int udb__pg_scan_next(udb_val *out, udb_cursor *cur)
{
    udb_pgcursor *c = pgc(cur);
    int rc = next_row(c);
    if (rc)
        return rc;
    udb_txn *txn = c->f.txn;
    /* the primary key of the row, for messages: the sort key's last value */
    const unsigned char *pk = c->f.pos.p, *end = pk + c->f.pos.len;
    for (size_t i = 0; i < c->f.ix->nfields && !c->f.ix->is_pk; i++)
        if (udb__tk_skip(&pk, end))
            break;
    /* handed memory lives until the transaction ends: a reader's too */
    const void *rec = c->rec.p;
    if (udb__txn_rdonly(txn) &&
        !(rec = udb__arena_dup(&udb__front(txn)->arena, c->rec.p, c->rec.len)))
        return udb__err(txn, UDB_ENOMEM, "out of memory copying a record");
    return udb__out_record(out, txn, c->f.t, pk, (size_t)(end - pk), rec, c->rec.len);
}

int udb__pg_scan_skip(uint64_t *skipped, udb_cursor *cur, uint64_t n)
{
    udb_pgcursor *c = pgc(cur);
    uint64_t done = 0;
    int rc = 0;
    while (done < n && (rc = next_row(c)) == 0)
        done++;
    if (skipped)
        *skipped = done;
    return rc == UDB_ENOTFOUND ? 0 : rc;
}

void udb__pg_scan_close(udb_cursor *cur)
{
    udb_pgcursor *c = pgc(cur);
    close_server(c);
    PQclear(c->page);
    udb__rec_free(&c->parsed);
    udb__buf_free(&c->rec);
    udb__buf_free(&c->prev);
}
