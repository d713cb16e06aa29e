/*
 * predicate.c -- the WHERE clause of partial indexes.
 *
 * The language is deliberately the small common subset of SQLite and
 * PostgreSQL, so the text exports unchanged: a conjunction of
 *   f IN (lit, ...) | f = lit | f != lit | f IS NULL | f IS NOT NULL
 * with 'quoted strings', integers, true and false.  Literals are type-checked
 * against the field at parse time (an enum literal must be one of its values),
 * and evaluation follows SQL's three-valued logic: a comparison with a
 * missing or nil field is not true, so the record is not in the index.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "predicate.h"

static const char *const ftype_names[] = {
    [UDB_F_STR] = "str", [UDB_F_INT] = "int", [UDB_F_UINT] = "uint", [UDB_F_FLOAT] = "float",
    [UDB_F_BOOL] = "bool", [UDB_F_BIN] = "bin", [UDB_F_ENUM] = "enum", [UDB_F_ANY] = "any",
};

const char *udb__ftype_name(udb_ftype t)
{
    return ftype_names[t];
}

typedef struct lexer {
    const char *p;
    udb_buf *msg;
} lexer;

static void skip_ws(lexer *lx)
{
    while (*lx->p && isspace((unsigned char)*lx->p))
        lx->p++;
}

/* Match a keyword (case-insensitive, whole word). */
static bool kw(lexer *lx, const char *word)
{
    skip_ws(lx);
    size_t n = strlen(word);
    if (strncasecmp(lx->p, word, n) != 0)
        return false;
    char c = lx->p[n];
    if (isalnum((unsigned char)c) || c == '_')
        return false;
    lx->p += n;
    return true;
}

static bool punct(lexer *lx, const char *tok)
{
    skip_ws(lx);
    size_t n = strlen(tok);
    if (strncmp(lx->p, tok, n) != 0)
        return false;
    lx->p += n;
    return true;
}

static int perr(lexer *lx, const char *what)
{
    skip_ws(lx);
    udb__buf_printf(lx->msg, "%s at \"%.20s\"", what, *lx->p ? lx->p : "end of text");
    return UDB_ESCHEMA;
}

static int ident(lexer *lx, char *out, size_t cap)
{
    skip_ws(lx);
    const char *s = lx->p;
    if (*s == '"') {                      /* "quoted identifier" */
        const char *e = strchr(s + 1, '"');
        if (!e || (size_t)(e - s - 1) >= cap || e == s + 1)
            return perr(lx, "bad quoted field name");
        memcpy(out, s + 1, (size_t)(e - s - 1));
        out[e - s - 1] = 0;
        lx->p = e + 1;
        return 0;
    }
    if (!isalpha((unsigned char)*s) && *s != '_')
        return perr(lx, "expected a field name");
    size_t n = 0;
    while (isalnum((unsigned char)s[n]) || s[n] == '_')
        n++;
    if (n >= cap)
        return perr(lx, "field name too long");
    memcpy(out, s, n);
    out[n] = 0;
    lx->p += n;
    return 0;
}

static int literal(lexer *lx, udb_lit *lit, const udb_field *f)
{
    skip_ws(lx);
    memset(lit, 0, sizeof *lit);
    if (*lx->p == '\'') {
        udb_buf s = {0};
        const char *q = lx->p + 1;
        for (;;) {
            if (!*q) {
                udb__buf_free(&s);
                return perr(lx, "unterminated string literal");
            }
            if (*q == '\'') {
                if (q[1] != '\'')
                    break;
                q++;
            }
            udb__buf_byte(&s, (unsigned char)*q++);
        }
        lx->p = q + 1;
        if (s.oom)
            return UDB_ENOMEM;
        lit->kind = UDB_L_STR;
        lit->n = s.len;
        lit->s = s.p ? (char *)s.p : calloc(1, 1);
        if (!lit->s)
            return UDB_ENOMEM;
        if (f->type != UDB_F_STR && f->type != UDB_F_ENUM)
            return perr(lx, "a string literal compared with a non-string field");
        if (f->type == UDB_F_ENUM) {
            for (size_t i = 0; i < f->nvalues; i++)
                if (strlen(f->values[i]) == lit->n && memcmp(f->values[i], lit->s, lit->n) == 0)
                    return 0;
            udb__buf_printf(lx->msg, "'%s' is not a value of enum field \"%s\"", lit->s, f->name);
            return UDB_ESCHEMA;
        }
        return 0;
    }
    bool is_true = kw(lx, "true");
    if (is_true || kw(lx, "false")) {
        lit->kind = UDB_L_BOOL;
        lit->b = is_true;
        if (f->type != UDB_F_BOOL)
            return perr(lx, "a boolean literal compared with a non-bool field");
        return 0;
    }
    if (*lx->p == '-' || isdigit((unsigned char)*lx->p)) {
        char *end;
        errno = 0;
        long long v = strtoll(lx->p, &end, 10);
        if (errno || end == lx->p || (*end && (isalnum((unsigned char)*end) || *end == '.')))
            return perr(lx, "bad integer literal (integers only, within 64-bit range)");
        lx->p = end;
        lit->kind = UDB_L_INT;
        lit->i = v;
        if (f->type != UDB_F_INT && f->type != UDB_F_UINT && f->type != UDB_F_FLOAT)
            return perr(lx, "an integer literal compared with a non-numeric field");
        /* as for records (record.c): an integer meets a float field only where
           it converts exactly; beyond 2^53 "f = n" would compare a rounded n,
           which SQLite does not (it compares integers and reals exactly) */
        if (f->type == UDB_F_FLOAT && (v > (1ll << 53) || v < -(1ll << 53)))
            return perr(lx, "an integer literal beyond 2^53 compared with a float field "
                            "(it has no exact float value)");
        return 0;
    }
    return perr(lx, "expected a literal ('string', integer, true or false)");
}

static int add_lit(udb_pterm *t, lexer *lx, const udb_field *f)
{
    udb_lit *l = realloc(t->lits, (t->nlits + 1) * sizeof *l);
    if (!l)
        return UDB_ENOMEM;
    t->lits = l;
    int rc = literal(lx, &t->lits[t->nlits], f);
    if (t->lits[t->nlits].s || rc == 0)
        t->nlits++;     /* keep it owned so it is freed */
    return rc;
}

static int term(lexer *lx, udb_pterm *t, const udb_field *fields, size_t nfields)
{
    char name[UDB_MAX_NAME + 1];
    int rc = ident(lx, name, sizeof name);
    if (rc)
        return rc;
    size_t fi;
    for (fi = 0; fi < nfields; fi++)
        if (strcmp(fields[fi].name, name) == 0)
            break;
    if (fi == nfields) {
        udb__buf_printf(lx->msg, "\"%s\" is not a declared field", name);
        return UDB_ESCHEMA;
    }
    const udb_field *f = &fields[fi];
    t->field = fi;
    if (kw(lx, "IS")) {
        t->op = kw(lx, "NOT") ? UDB_P_NOTNULL : UDB_P_ISNULL;
        if (!kw(lx, "NULL"))
            return perr(lx, "expected NULL after IS [NOT]");
        return 0;
    }
    if (f->type == UDB_F_BIN || f->type == UDB_F_ANY) {
        udb__buf_printf(lx->msg, "field \"%s\" (%s) can only be tested with IS [NOT] NULL",
                        name, udb__ftype_name(f->type));
        return UDB_ESCHEMA;
    }
    if (kw(lx, "IN")) {
        t->op = UDB_P_IN;
        if (!punct(lx, "("))
            return perr(lx, "expected ( after IN");
        do {
            if ((rc = add_lit(t, lx, f)))
                return rc;
        } while (punct(lx, ","));
        if (!punct(lx, ")"))
            return perr(lx, "expected , or ) in IN list");
        return 0;
    }
    if (punct(lx, "!=") || punct(lx, "<>"))
        t->op = UDB_P_NE;
    else if (punct(lx, "="))
        t->op = UDB_P_EQ;
    else
        return perr(lx, "expected IN, =, !=, IS NULL or IS NOT NULL");
    return add_lit(t, lx, f);
}

void udb__pred_free(udb_pred *p)
{
    for (size_t i = 0; i < p->nterms; i++) {
        for (size_t j = 0; j < p->terms[i].nlits; j++)
            free(p->terms[i].lits[j].s);
        free(p->terms[i].lits);
    }
    free(p->terms);
    p->terms = NULL;
    p->nterms = 0;
}

int udb__pred_parse(udb_pred *out, const udb_field *fields, size_t nfields, const char *text,
                    udb_buf *msg)
{
    lexer lx = {text, msg};
    memset(out, 0, sizeof *out);
    int rc;
    skip_ws(&lx);
    if (!*lx.p) {
        udb__buf_printf(msg, "empty predicate");
        return UDB_ESCHEMA;
    }
    do {
        if (out->nterms >= 64) {
            rc = perr(&lx, "too many AND terms (at most 64)");
            goto fail;
        }
        udb_pterm *terms = realloc(out->terms, (out->nterms + 1) * sizeof *terms);
        if (!terms) {
            rc = UDB_ENOMEM;
            goto fail;
        }
        out->terms = terms;
        memset(&terms[out->nterms], 0, sizeof *terms);
        rc = term(&lx, &terms[out->nterms], fields, nfields);
        out->nterms++;
        if (rc)
            goto fail;
    } while (kw(&lx, "AND"));
    skip_ws(&lx);
    if (*lx.p) {
        rc = perr(&lx, "expected AND or the end (only AND of simple terms is supported)");
        goto fail;
    }
    return 0;
fail:
    udb__pred_free(out);
    return rc;
}

static bool lit_eq(const udb_lit *l, const msgpack_object *o)
{
    switch (l->kind) {
    case UDB_L_STR:
        return o->type == MSGPACK_OBJECT_STR && o->via.str.size == l->n &&
               udb__same_bytes(o->via.str.ptr, l->s, l->n);
    case UDB_L_BOOL:
        return o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean == l->b;
    case UDB_L_INT:
        if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            return l->i >= 0 && o->via.u64 == (uint64_t)l->i;
        if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            return o->via.i64 == l->i;
        if (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64)
            return o->via.f64 == (double)l->i;
        return false;
    }
    return false;
}

bool udb__pred_eval(const udb_pred *p, const msgpack_object *const *vals)
{
    for (size_t i = 0; i < p->nterms; i++) {
        const udb_pterm *t = &p->terms[i];
        const msgpack_object *o = vals[t->field];
        bool ok = false;
        switch (t->op) {
        case UDB_P_ISNULL: ok = o == NULL; break;
        case UDB_P_NOTNULL: ok = o != NULL; break;
        case UDB_P_EQ: ok = o && lit_eq(&t->lits[0], o); break;
        case UDB_P_NE: ok = o && !lit_eq(&t->lits[0], o); break;
        case UDB_P_IN:
            for (size_t j = 0; o && j < t->nlits && !ok; j++)
                ok = lit_eq(&t->lits[j], o);
            break;
        }
        if (!ok)
            return false;
    }
    return true;
}

static void print_lit(udb_buf *b, const udb_lit *l)
{
    switch (l->kind) {
    case UDB_L_STR:
        udb__buf_byte(b, '\'');
        for (size_t i = 0; i < l->n; i++) {
            if (l->s[i] == '\'')
                udb__buf_byte(b, '\'');
            udb__buf_byte(b, (unsigned char)l->s[i]);
        }
        udb__buf_byte(b, '\'');
        break;
    case UDB_L_BOOL: udb__buf_printf(b, l->b ? "true" : "false"); break;
    case UDB_L_INT: udb__buf_printf(b, "%" PRId64, l->i); break;
    }
}

/* Words SQLite or PostgreSQL reserve (SQLite's keywords, PostgreSQL's
 * reserved and type/function-name words), lower case, sorted. */
static const char *const sql_words[] = {
    "abort", "action", "add", "after", "all", "alter", "always", "analyse", "analyze", "and",
    "any", "array", "as", "asc", "asymmetric", "attach", "authorization", "autoincrement",
    "before", "begin", "between", "binary", "both", "by", "cascade", "case", "cast", "check",
    "collate", "collation", "column", "commit", "concurrently", "conflict", "constraint",
    "create", "cross", "current", "current_catalog", "current_date", "current_role",
    "current_schema", "current_time", "current_timestamp", "current_user", "database",
    "default", "deferrable", "deferred", "delete", "desc", "detach", "distinct", "do", "drop",
    "each", "else", "end", "escape", "except", "exclude", "exclusive", "exists", "explain",
    "fail", "false", "fetch", "filter", "first", "following", "for", "foreign", "freeze",
    "from", "full", "generated", "glob", "grant", "group", "groups", "having", "if", "ignore",
    "ilike", "immediate", "in", "index", "indexed", "initially", "inner", "insert", "instead",
    "intersect", "into", "is", "isnull", "join", "key", "last", "lateral", "leading", "left",
    "like", "limit", "localtime", "localtimestamp", "match", "materialized", "natural", "no",
    "not", "nothing", "notnull", "null", "nulls", "of", "offset", "on", "only", "or", "order",
    "others", "outer", "over", "overlaps", "partition", "placing", "plan", "pragma",
    "preceding", "primary", "query", "raise", "range", "recursive", "references", "regexp",
    "reindex", "release", "rename", "replace", "restrict", "returning", "right", "rollback",
    "row", "rows", "savepoint", "select", "session_user", "set", "similar", "some", "symmetric",
    "table", "tablesample", "temp", "temporary", "then", "ties", "to", "trailing",
    "transaction", "trigger", "true", "unbounded", "union", "unique", "update", "user", "using",
    "vacuum", "values", "variadic", "verbose", "view", "virtual", "when", "where", "window",
    "with", "without", NULL,
};

/* A field name as SQL text: bare when SQLite and PostgreSQL both read it
 * as that column (lower case, not a keyword), else "quoted".  PostgreSQL
 * folds unquoted names to lower case and reads e.g. `user` as CURRENT_USER;
 * SQLite refuses `order = 1`.  Names are letters, digits and _, so quoting
 * needs no escapes, and ident() reads both forms back. */
static void print_name(udb_buf *b, const char *name)
{
    bool plain = true;
    for (const char *c = name; *c && plain; c++)
        plain = (*c >= 'a' && *c <= 'z') || *c == '_' || (c > name && *c >= '0' && *c <= '9');
    for (size_t i = 0; plain && sql_words[i]; i++)
        plain = strcmp(sql_words[i], name) != 0;
    udb__buf_printf(b, plain ? "%s" : "\"%s\"", name);
}

void udb__pred_print(udb_buf *b, const udb_pred *p, const udb_field *fields)
{
    static const char *const ops[] = {
        [UDB_P_IN] = " IN (", [UDB_P_EQ] = " = ", [UDB_P_NE] = " != ",
        [UDB_P_ISNULL] = " IS NULL", [UDB_P_NOTNULL] = " IS NOT NULL",
    };
    for (size_t i = 0; i < p->nterms; i++) {
        const udb_pterm *term_ = &p->terms[i];
        udb__buf_printf(b, "%s", i ? " AND " : "");
        print_name(b, fields[term_->field].name);
        udb__buf_printf(b, "%s", ops[term_->op]);
        for (size_t j = 0; j < term_->nlits; j++) {
            if (j)
                udb__buf_printf(b, ", ");
            print_lit(b, &term_->lits[j]);
        }
        if (term_->op == UDB_P_IN)
            udb__buf_byte(b, ')');
    }
    if (!b->p)
        udb__buf_put(b, "", 0);
}
