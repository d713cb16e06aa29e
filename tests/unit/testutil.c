/*
 * testutil.c -- the unit-test harness: cases in temp directories, CHECK
 * reporting, a format-driven msgpack builder and readers that render msgpack
 * as text, so tests compare what the library returned with one string.
 */
#include "testutil.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <msgpack.h>

udb_txn *tu_txn;
static int failures;          /* in the current case */
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
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "testutil: cannot read %s: %s\n", path, strerror(errno));
        exit(1);
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    char chunk[4096];
    size_t n;
    while (m && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(f);
    if (!m || fclose(m) != 0)
        return tu_keep(NULL);
    return tu_keep(buf);
}

const char *tu_scenarios(void)
{
    return tu_read_file(UDB_SCENARIOS_JSON);
}

/* ---- msgpack builder ---- */

/* Number of items up to the bracket closing the one just opened at p. */
static size_t count_items(const char *p)
{
    int depth = 0;
    size_t commas = 0;
    bool any = false;
    for (; *p; p++) {
        if (*p == '{' || *p == '[') {
            depth++;
        } else if (*p == '}' || *p == ']') {
            if (depth-- == 0)
                break;
        } else if (*p == ',' && depth == 0) {
            commas++;
        }
        if (*p != ' ')
            any = true;
    }
    return any ? commas + 1 : 0;
}

static void expect(const char **p, char c, const char *fmt)
{
    while (**p == ' ')
        (*p)++;
    if (**p != c) {
        fprintf(stderr, "testutil: bad mp() format \"%s\": expected '%c' at \"%s\"\n", fmt, c,
                *p);
        abort();
    }
    (*p)++;
}

static void pack(msgpack_packer *pk, const char **p, va_list *ap, const char *fmt)
{
    while (**p == ' ')
        (*p)++;
    char c = *(*p)++;
    switch (c) {
    case '{':
    case '[': {
        size_t n = count_items(*p);
        if (c == '{')
            msgpack_pack_map(pk, n);
        else
            msgpack_pack_array(pk, n);
        for (size_t i = 0; i < n; i++) {
            if (i)
                expect(p, ',', fmt);
            pack(pk, p, ap, fmt);
            if (c == '{') {
                expect(p, ':', fmt);
                pack(pk, p, ap, fmt);
            }
        }
        expect(p, c == '{' ? '}' : ']', fmt);
        break;
    }
    case 's': {
        const char *s = va_arg(*ap, const char *);
        msgpack_pack_str_with_body(pk, s, strlen(s));
        break;
    }
    case 'S': {
        const char *s = va_arg(*ap, const char *);
        size_t n = va_arg(*ap, size_t);
        msgpack_pack_str_with_body(pk, s, n);
        break;
    }
    case 'i': msgpack_pack_int(pk, va_arg(*ap, int)); break;
    case 'I': msgpack_pack_long_long(pk, va_arg(*ap, long long)); break;
    case 'u': msgpack_pack_unsigned_int(pk, va_arg(*ap, unsigned)); break;
    case 'U': msgpack_pack_unsigned_long_long(pk, va_arg(*ap, unsigned long long)); break;
    case 'f': msgpack_pack_double(pk, va_arg(*ap, double)); break;
    case 'F': msgpack_pack_float(pk, (float)va_arg(*ap, double)); break;
    case 'b':
        if (va_arg(*ap, int))
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
        break;
    case 'n': msgpack_pack_nil(pk); break;
    case 'x': {
        const void *b = va_arg(*ap, const void *);
        size_t n = va_arg(*ap, size_t);
        msgpack_pack_bin_with_body(pk, b, n);
        break;
    }
    case 'r': {
        udb_val v = va_arg(*ap, udb_val);
        msgpack_sbuffer_write(pk->data, v.data, v.size);
        break;
    }
    default:
        fprintf(stderr, "testutil: bad mp() format \"%s\" at '%c'\n", fmt, c);
        abort();
    }
}

udb_val mp(const char *fmt, ...)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    va_list ap;
    va_start(ap, fmt);
    const char *p = fmt;
    pack(&pk, &p, &ap, fmt);
    va_end(ap);
    while (*p == ' ')
        p++;
    if (*p) {
        fprintf(stderr, "testutil: bad mp() format \"%s\": trailing \"%s\"\n", fmt, p);
        abort();
    }
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

static void render(FILE *f, const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: fputs("null", f); break;
    case MSGPACK_OBJECT_BOOLEAN: fputs(o->via.boolean ? "true" : "false", f); break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: fprintf(f, "%" PRIu64, o->via.u64); break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: fprintf(f, "%" PRId64, o->via.i64); break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: {
        /* floats always show as floats: 3.0, f32:1.5 */
        char num[64];
        snprintf(num, sizeof num, "%.15g", o->via.f64);
        fprintf(f, "%s%s%s", o->type == MSGPACK_OBJECT_FLOAT32 ? "f32:" : "", num,
                strspn(num, "-0123456789") == strlen(num) ? ".0" : "");
        break;
    }
    case MSGPACK_OBJECT_STR:
        fprintf(f, "\"%.*s\"", (int)o->via.str.size, o->via.str.ptr);
        break;
    case MSGPACK_OBJECT_BIN: fprintf(f, "<bin %" PRIu32 ">", o->via.bin.size); break;
    case MSGPACK_OBJECT_ARRAY:
        fputc('[', f);
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i)
                fputc(',', f);
            render(f, &o->via.array.ptr[i]);
        }
        fputc(']', f);
        break;
    case MSGPACK_OBJECT_MAP:
        fputc('{', f);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            if (i)
                fputc(',', f);
            render(f, &o->via.map.ptr[i].key);
            fputc(':', f);
            render(f, &o->via.map.ptr[i].val);
        }
        fputc('}', f);
        break;
    default: fputs("<ext>", f); break;
    }
}

/* Decode v; NULL-terminated field path (one level) picks a map value. */
static const char *render_val(udb_val v, const char *field)
{
    msgpack_unpacked up;
    size_t off = 0;
    msgpack_unpacked_init(&up);
    const char *out = "<bad msgpack>";
    if (v.data && msgpack_unpack_next(&up, v.data, v.size, &off) == MSGPACK_UNPACK_SUCCESS &&
        off == v.size) {
        const msgpack_object *o = &up.data;
        if (field) {
            o = NULL;
            if (up.data.type == MSGPACK_OBJECT_MAP)
                for (uint32_t i = 0; i < up.data.via.map.size; i++) {
                    const msgpack_object *k = &up.data.via.map.ptr[i].key;
                    if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(field) &&
                        memcmp(k->via.str.ptr, field, k->via.str.size) == 0)
                        o = &up.data.via.map.ptr[i].val;
                }
        }
        if (!o) {
            out = "<absent>";
        } else {
            char *buf = NULL;
            size_t len = 0;
            FILE *f = open_memstream(&buf, &len);
            if (f) {
                render(f, o);
                fclose(f);
            }
            out = tu_keep(buf);
        }
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

const char *tu_scan(udb_txn *txn, const char *type, const char *index, udb_val prefix,
                    const char *field)
{
    udb_cursor *c = NULL;
    int rc = udb_scan(&c, txn, type, index, prefix.data, prefix.size);
    if (rc)
        return tu_fmt("<%s>", udb_strerror(rc));
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    udb_val v;
    int n = 0;
    while ((rc = udb_cursor_next(&v, c)) == 0)
        fprintf(f, "%s%s", n++ ? "," : "", tu_field(v, field));
    if (rc != UDB_ENOTFOUND)
        fprintf(f, "%s<%s>", n ? "," : "", udb_strerror(rc));
    udb_cursor_close(c);
    fclose(f);
    return tu_keep(buf);
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
    const udb_conflict *c = udb_conflict_info(txn);
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

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0)
        fprintf(stderr, "testutil: cannot remove %s: %s\n", path, strerror(errno));
    return 0;
}

int tu_main(int argc, char **argv, const tu_test *tests, size_t n)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    const char *tmp = getenv("TMPDIR");
    size_t run = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        if (only && !strstr(tests[i].name, only))
            continue;
        tu t;
        memset(&t, 0, sizeof t);
        snprintf(t.dir, sizeof t.dir, "%s/udb-unit-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(t.dir)) {
            fprintf(stderr, "mkdtemp %s: %s\n", t.dir, strerror(errno));
            return 1;
        }
        snprintf(t.path, sizeof t.path, "%s/db", t.dir);
        failures = 0;
        tu_txn = NULL;
        tests[i].fn(&t);
        tu_txn = NULL;
        tu_check_db(&t);        /* every case leaves a consistent database */
        udb_close(t.env);
        nftw(t.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        release_kept();
        run++;
        if (failures)
            failed++;
        printf("%s %s\n", failures ? "FAIL" : "ok  ", tests[i].name);
        fflush(stdout);
    }
    printf("%zu cases, %zu failed\n", run, failed);
    return failed || run == 0 ? 1 : 0;
}
