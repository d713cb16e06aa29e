/*
 * testutil.c -- the unit-test harness: cases in temp directories, CHECK
 * reporting, a format-driven msgpack builder and readers that render msgpack
 * as text, so tests compare what the library returned with one string.
 */
#include "testutil.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <msgpack.h>

#include "support.h"

udb_txn *tu_txn;
static int failures;          /* in the current case */
static const char *skip_why;  /* the current case was skipped on PostgreSQL: why */
static int skipped_checks;    /* checks of the current case not made ... */
static const char *skipped_why;   /* ... and the reason of the first */
static char case_schema[64];  /* PostgreSQL: the current case's schema name */
static void **kept;           /* memory released at the end of the case */
static size_t nkept, capkept;

/* ---- memory of one case ---- */

void *tu_keep(void *p)
{
    if (!p) {
        fprintf(stderr, "testutil: out of memory\n");
        abort();
    }
    if (nkept == capkept) {
        size_t cap = capkept ? capkept * 2 : 64;
        void **k = realloc(kept, cap * sizeof *k);
        if (!k) {
            fprintf(stderr, "testutil: out of memory\n");
            abort();
        }
        kept = k;
        capkept = cap;
    }
    kept[nkept++] = p;
    return p;
}

static void release_kept(void)
{
    for (size_t i = 0; i < nkept; i++)
        free(kept[i]);
    free(kept);
    kept = NULL;
    nkept = capkept = 0;
}

const char *tu_fmt(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    return tu_keep(n < 0 ? NULL : s);
}

const char *jq(const char *s)
{
    char *c = tu_keep(strdup(s));
    for (char *p = c; *p; p++)
        if (*p == '`')
            *p = '"';
    return c;
}

/* ---- checks ---- */

void tu_fail(const char *file, int line, const char *expr, const char *fmt, ...)
{
    failures++;
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", file, line, expr);
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        fputs("    ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
    const char *m = udb_errmsg(tu_txn);
    if (m[0])
        fprintf(stderr, "    udb_errmsg: %s\n", m);
    m = udb_env_errmsg(NULL);
    if (m[0])
        fprintf(stderr, "    udb_env_errmsg: %s\n", m);
}

bool tu_check_rc(const char *file, int line, const char *expr, int got, int want)
{
    if (got == want)
        return true;
    tu_fail(file, line, expr, "returned %d (%s), expected %d (%s)", got, udb_strerror(got),
            want, udb_strerror(want));
    return false;
}

bool tu_check_str(const char *file, int line, const char *expr, const char *got,
                  const char *want)
{
    if (got && want && strcmp(got, want) == 0)
        return true;
    tu_fail(file, line, expr, "got      %s\n    expected %s", got ? got : "(null)",
            want ? want : "(null)");
    return false;
}

bool tu_check_has(const char *file, int line, const char *expr, const char *hay, ...)
{
    va_list ap;
    bool ok = true;
    va_start(ap, hay);
    for (const char *n = va_arg(ap, const char *); n; n = va_arg(ap, const char *)) {
        if (!hay || !strstr(hay, n)) {
            tu_fail(file, line, expr, "text: %s\n    lacks: %s", hay ? hay : "(null)", n);
            ok = false;
        }
    }
    va_end(ap);
    return ok;
}

/* ---- backends ---- */

bool tu_pg(void)
{
    const char *v = getenv("UDB_TEST_PG");
    return v && strcmp(v, "1") == 0;
}

bool tu_scans(void)
{
    const char *v = getenv("UDB_TEST_PG_SCANS");
    return !tu_pg() || !v || strcmp(v, "0") != 0;
}

bool tu_skip_pg(const char *why)
{
    if (!tu_pg())
        return false;
    skip_why = why;
    return true;
}

bool tu_skip_check(const char *file, int line, const char *why)
{
    (void)file;
    (void)line;
    if (!skipped_checks++)
        skipped_why = why;
    return true;
}

/* The URL of schema `schema` on the server pg_run started (PGHOST etc. say where). */
static void pg_url(char *out, size_t cap, const char *schema)
{
    snprintf(out, cap, "postgresql:///uniqdb_test?schema=%s", schema);
}

const char *tu_db(tu *t, const char *name)
{
    if (!tu_pg())
        return tu_fmt("%s/%s", t->dir, name);
    /* a PostgreSQL name: the case's schema, '_', name in [a-z0-9_] */
    char schema[64];
    int n = snprintf(schema, sizeof schema, "%s_", case_schema);
    for (const char *p = name; *p && n < (int)sizeof schema - 1; p++, n++)
        schema[n] = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ? *p : '_';
    schema[n] = '\0';
    char url[256];
    pg_url(url, sizeof url, schema);
    return tu_fmt("%s", url);
}

/* ---- environments ---- */

udb_env *tu_open(tu *t)
{
    udb_options o = UDB_OPTIONS_INIT;
    o.flags = UDB_NOSYNC;   /* the tests reopen, they never crash: skip fsync */
    t->env = NULL;
    if (!CHECK_OK(udb_open(&t->env, t->path, &o)))
        t->env = NULL;
    return t->env;
}

void tu_reopen(tu *t)
{
    udb_close(t->env);
    t->env = NULL;
    tu_open(t);
}

int tu_apply(tu *t, const char *schema)
{
    return tu_apply_f(t, schema, 0, NULL);
}

int tu_apply_f(tu *t, const char *schema, unsigned flags, const char **changes)
{
    const char *json = jq(schema);
    char *text = NULL;
    int rc = udb_schema_apply(changes ? &text : NULL, t->env, json, strlen(json), flags);
    if (changes)
        *changes = rc ? "<failed>" : tu_keep(text);
    return rc;
}

udb_env *tu_setup(tu *t, const char *schema)
{
    if (!tu_open(t))
        return NULL;
    if (!CHECK_OK(tu_apply(t, schema)))
        return NULL;
    return t->env;
}

static udb_txn *begin(tu *t, unsigned flags)
{
    udb_txn *txn = NULL;
    if (!t->env || !CHECK_OK(udb_begin(&txn, t->env, flags))) {
        fprintf(stderr, "testutil: cannot go on without a transaction\n");
        exit(1);
    }
    tu_txn = txn;
    return txn;
}

udb_txn *tu_w(tu *t)
{
    return begin(t, 0);
}

udb_txn *tu_r(tu *t)
{
    return begin(t, UDB_RDONLY);
}

void tu_commit(udb_txn *txn)
{
    if (tu_txn == txn)
        tu_txn = NULL;
    CHECK_OK(udb_commit(txn));
}

void tu_abort(udb_txn *txn)
{
    if (tu_txn == txn)
        tu_txn = NULL;
    udb_abort(txn);
}

static void report(const char *problem, void *ctx)
{
    (void)ctx;
    fprintf(stderr, "    udb_check: %s\n", problem);
}

void tu_check_db(tu *t)
{
    size_t problems = 99;
    if (!t->env)
        return;
    CHECK_OK(udb_check(&problems, t->env, report, NULL));
    CHECK(problems == 0);
}

char *tu_schema_text(tu *t)
{
    char *s = NULL;
    if (udb_schema_json(&s, t->env) != 0)
        return NULL;
    /* udb_free() is the documented release; keep a malloc'd copy for the case */
    char *copy = tu_keep(strdup(s));
    udb_free(s);
    return copy;
}

char *tu_read_file(const char *path)
{
    char *text = sup_read_file(path, NULL);
    if (!text) {
        fprintf(stderr, "testutil: cannot read %s: %s\n", path, strerror(errno));
        exit(1);
    }
    return tu_keep(text);
}

const char *tu_scenarios(void)
{
    return tu_read_file(UDB_SCENARIOS_JSON);
}

/* ---- msgpack builder ---- */

udb_val mp(const char *fmt, ...)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    va_list ap;
    va_start(ap, fmt);
    sup_vpack(&pk, fmt, &ap);
    va_end(ap);
    size_t size = sb.size;
    udb_val v = {tu_keep(msgpack_sbuffer_release(&sb)), size};
    msgpack_sbuffer_destroy(&sb);
    return v;
}

udb_val mpraw(const void *bytes, size_t n)
{
    void *p = tu_keep(malloc(n ? n : 1));
    memcpy(p, bytes, n);
    return (udb_val){p, n};
}

/* ---- record API forwards ---- */

int tu_ins(udb_val *out, udb_txn *txn, const char *type, udb_val rec)
{
    return udb_insert(out, txn, type, rec.data, rec.size);
}

int tu_get(udb_val *out, udb_txn *txn, const char *type, udb_val key)
{
    return udb_get(out, txn, type, key.data, key.size);
}

int tu_find(udb_val *out, udb_txn *txn, const char *type, const char *index, udb_val values)
{
    return udb_find(out, txn, type, index, values.data, values.size);
}

int tu_upd(udb_val *out, udb_txn *txn, const char *type, udb_val key, udb_val rec,
           unsigned flags)
{
    return udb_update(out, txn, type, key.data, key.size, rec.data, rec.size, flags);
}

int tu_del(udb_txn *txn, const char *type, udb_val key)
{
    return udb_delete(txn, type, key.data, key.size);
}

/* ---- readers ---- */

/* Decode v; NULL-terminated field path (one level) picks a map value. */
static const char *render_val(udb_val v, const char *field)
{
    msgpack_unpacked up;
    if (sup_unpack(&up, v.data, v.size) != 0)
        return "<bad msgpack>";
    const msgpack_object *o = field ? sup_map_get(&up.data, field) : &up.data;
    const char *out = "<absent>";
    if (o) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (f) {
            sup_render(f, o);
            fclose(f);
        }
        out = tu_keep(buf);
    }
    msgpack_unpacked_destroy(&up);
    return out;
}

const char *tu_render(udb_val v)
{
    return render_val(v, NULL);
}

const char *tu_field(udb_val rec, const char *name)
{
    return render_val(rec, name);
}

uint64_t tu_fu(udb_val rec, const char *name)
{
    const char *s = render_val(rec, name);
    char *end;
    if (s[0] < '0' || s[0] > '9')
        return UINT64_MAX;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    return errno || *end ? UINT64_MAX : v;
}

/* `field` of every record the cursor gives, comma-separated; closes it. */
static const char *cursor_fields(udb_cursor *c, const char *field)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    udb_val v;
    int n = 0, rc;
    while ((rc = udb_cursor_next(&v, c)) == 0)
        fprintf(f, "%s%s", n++ ? "," : "", tu_field(v, field));
    if (rc != UDB_ENOTFOUND)
        fprintf(f, "%s<%s>", n ? "," : "", udb_strerror(rc));
    udb_cursor_close(c);
    fclose(f);
    return tu_keep(buf);
}

const char *tu_scan(udb_txn *txn, const char *type, const char *index, udb_val prefix,
                    const char *field)
{
    udb_cursor *c = NULL;
    int rc = udb_scan(&c, txn, type, index, prefix.data, prefix.size);
    if (rc)
        return tu_fmt("<%s>", udb_strerror(rc));
    return cursor_fields(c, field);
}

const char *tu_scan_range(udb_txn *txn, const char *type, const char *index,
                          const udb_range *r, const char *field)
{
    udb_cursor *c = NULL;
    int rc = udb_scan_range(&c, txn, type, index, r);
    if (rc)
        return tu_fmt("<%s: %s>", udb_strerror(rc), udb_errmsg(txn));
    return cursor_fields(c, field);
}

size_t tu_count(udb_txn *txn, const char *type)
{
    udb_cursor *c = NULL;
    size_t n = 0;
    udb_val v;
    if (!CHECK_OK(udb_scan(&c, txn, type, NULL, NULL, 0)))
        return SIZE_MAX;
    while (udb_cursor_next(&v, c) == 0)
        n++;
    udb_cursor_close(c);
    return n;
}

const char *tu_conflict(const udb_txn *txn)
{
    return tu_conflict_of(udb_conflict_info(txn));
}

const char *tu_conflict_of(const udb_conflict *c)
{
    if (!c)
        return "";
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    fprintf(f, "%s: ", c->type);
    for (size_t i = 0; i < c->count; i++) {
        const udb_conflict_index *ci = &c->indexes[i];
        fprintf(f, "%s%s(", i ? "; " : "", ci->index);
        for (size_t j = 0; j < ci->nfields; j++)
            fprintf(f, "%s%s", j ? ", " : "", ci->fields[j]);
        fprintf(f, ")=%s held by %s", tu_render(ci->values), tu_render(ci->existing_key));
    }
    fclose(f);
    return tu_keep(buf);
}

/* ---- running cases ---- */

int tu_main(int argc, char **argv, const tu_test *tests, size_t n)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    size_t run = 0, failed = 0, skipped = 0;
    for (size_t i = 0; i < n; i++) {
        if (only && !strstr(tests[i].name, only))
            continue;
        tu t;
        memset(&t, 0, sizeof t);
        if (sup_mkdtemp(t.dir, sizeof t.dir, "udb-unit-") != 0) {
            fprintf(stderr, "testutil: a temporary directory: %s\n", strerror(errno));
            return 1;
        }
        snprintf(t.path, sizeof t.path, "%s/db", t.dir);
        if (tu_pg()) {
            snprintf(case_schema, sizeof case_schema, "tu_%ld_%zu", (long)getpid(), i);
            pg_url(t.path, sizeof t.path, case_schema);
        }
        failures = 0;
        skip_why = NULL;
        skipped_checks = 0;
        tu_txn = NULL;
        tests[i].fn(&t);
        tu_txn = NULL;
        tu_check_db(&t);        /* every case leaves a consistent database */
        udb_close(t.env);
        if (sup_remove_tree(t.dir, false) != 0)
            fprintf(stderr, "testutil: cannot remove %s: %s\n", t.dir, strerror(errno));
        release_kept();
        run++;
        if (failures)
            failed++;
        if (skip_why && !failures) {
            skipped++;
            printf("skip %s (postgresql: %s)\n", tests[i].name, skip_why);
        } else if (skipped_checks) {
            printf("%s %s (%d checks not made on postgresql: %s)\n", failures ? "FAIL" : "ok  ",
                   tests[i].name, skipped_checks, skipped_why);
        } else {
            printf("%s %s\n", failures ? "FAIL" : "ok  ", tests[i].name);
        }
        fflush(stdout);
    }
    printf("%zu cases, %zu failed, %zu skipped%s\n", run, failed, skipped,
           tu_pg() ? " (on postgresql)" : "");
    if (run > 0 && skipped == run && !failed)
        return 77;   /* nothing ran: a skip, never a pass */
    return failed || run == 0 ? 1 : 0;
}
