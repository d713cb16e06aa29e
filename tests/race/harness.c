/*
 * harness.c -- processes, barriers, shared outcomes and msgpack helpers for the
 * race suite (see harness.h for the model).
 *
 * Start protocol, so that every writer is released at the same instant and no
 * writer starts while another process is still opening the database:
 *   1. the parent forks every child; each child opens the database itself
 *      (never a udb_env across fork), starts its threads, which park on a
 *      thread barrier, writes one byte to the "ready" pipe and closes it;
 *   2. the parent reads one byte per child (EOF early = a child died), then
 *      closes the write end of the "go" pipe: every child's read() returns 0
 *      at once, and each releases its threads through the thread barrier
 *      (support.h's sup_gate does steps 1 and 2 with its two pipes);
 *   3. rounds inside a test are separated by race_sync(), a process-shared
 *      pthread barrier in the MAP_SHARED mapping made before fork().
 * If a child dies by a signal, the others could wait at a barrier forever, so
 * the parent kills them (by pid) and the test fails.
 */
#include "harness.h"
#include "support.h"

#include "env.h"    /* the shipping counts of exec mode */
#include "ship.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- msgpack ---------------------------------------------------------------- */

/* race_pack's spec and shape as a sup_pack format: "su" as a map is
 * "{s:s, s:U}" (the map's names are strings). */
static int spec_format(char *fmt, size_t cap, int shape, const char *spec)
{
    size_t n = strlen(spec), len = 0;
    if ((shape == RACE_VALUE && n != 1) || cap < 2 + 6 * n + 1)
        return -1;
    if (shape != RACE_VALUE)
        fmt[len++] = shape == RACE_MAP ? '{' : '[';
    for (size_t i = 0; i < n; i++) {
        char c = spec[i] == 'i' ? 'I' : spec[i] == 'u' ? 'U' : spec[i];
        if (c != 's' && c != 'I' && c != 'U')
            return -1;
        if (i) {
            fmt[len++] = ',';
            fmt[len++] = ' ';
        }
        if (shape == RACE_MAP) {
            fmt[len++] = 's';
            fmt[len++] = ':';
        }
        fmt[len++] = c;
    }
    if (shape != RACE_VALUE)
        fmt[len++] = shape == RACE_MAP ? '}' : ']';
    fmt[len] = '\0';
    return 0;
}

int race_pack(race_buf *b, int shape, const char *spec, ...)
{
    char fmt[256];
    if (spec_format(fmt, sizeof fmt, shape, spec) != 0)
        return -1;
    sup_fixbuf fb = {b->data, sizeof b->data, 0, false};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &fb, sup_fixbuf_write);
    va_list ap;
    va_start(ap, spec);
    sup_vpack(&pk, fmt, &ap);
    va_end(ap);
    b->len = fb.len;
    b->overflow = fb.overflow;
    return fb.overflow ? -1 : 0;
}

void race_render(char *out, size_t cap, const void *data, size_t len)
{
    sup_render_bytes(out, cap, data, len);
}

int race_field_text(char *out, size_t cap, const void *rec, size_t len, const char *name)
{
    out[0] = '\0';
    msgpack_unpacked u;
    if (sup_unpack(&u, rec, len) != 0)
        return -1;
    const msgpack_object *v = sup_map_get(&u.data, name);
    int rc = -1;
    if (v != NULL) {
        sup_render_object(out, cap, v);
        rc = 0;
    }
    msgpack_unpacked_destroy(&u);
    return rc;
}

/* ---- operations ----------------------------------------------------------- */

void race_take_record(race_outcome *o, const udb_val *rec, const char *keyfield,
                      const char *field)
{
    msgpack_unpacked u;
    if (sup_unpack(&u, rec->data, rec->size) != 0) {
        snprintf(o->key, sizeof o->key, "<undecodable record>");
        return;
    }
    const msgpack_object *v = sup_map_get(&u.data, keyfield);
    if (v != NULL) {
        sup_render_object(o->key, sizeof o->key, v);
        if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            o->id = v->via.u64;
    }
    v = field != NULL ? sup_map_get(&u.data, field) : NULL;
    if (v != NULL)
        sup_render_object(o->field, sizeof o->field, v);
    msgpack_unpacked_destroy(&u);
}

/* The detail of a conflict (info may be NULL) into o. */
static void note_conflict(race_outcome *o, const udb_conflict *info)
{
    if (info == NULL || info->count == 0 || info->indexes == NULL)
        return;
    const udb_conflict_index *ix = &info->indexes[0];
    o->nconflicts = info->count;
    snprintf(o->ctype, sizeof o->ctype, "%s", info->type ? info->type : "(null)");
    snprintf(o->cindex, sizeof o->cindex, "%s", ix->index ? ix->index : "(null)");
    o->cfields[0] = '\0';
    size_t len = 0;
    for (size_t i = 0; i < ix->nfields && ix->fields != NULL && len < sizeof o->cfields; i++) {
        int n = snprintf(o->cfields + len, sizeof o->cfields - len, "%s%s", i ? "," : "",
                         ix->fields[i] ? ix->fields[i] : "(null)");
        len += n > 0 ? (size_t)n : 0;
    }
    race_render(o->cvalues, sizeof o->cvalues, ix->values.data, ix->values.size);
    race_render(o->ckey, sizeof o->ckey, ix->existing_key.data, ix->existing_key.size);
}

void race_note(race_outcome *o, udb_txn *txn, int rc)
{
    if (rc == 0)
        return;
    snprintf(o->errmsg, sizeof o->errmsg, "%s", udb_errmsg(txn));
    if (rc == UDB_ECONFLICT)
        note_conflict(o, udb_conflict_info(txn));
}

/* The common tail of every operation: record the result, check *out. */
static int finish_op(race_outcome *o, const race_rec_arg *a, const udb_val *out, int rc)
{
    if (rc == 0)
        race_take_record(o, out, a->keyfield, a->field);
    else if (out->data != NULL)
        o->out_on_error = 1;
    return rc;
}

int race_op_insert(udb_txn *txn, race_outcome *o, const void *arg)
{
    const race_rec_arg *a = arg;
    udb_val out = {NULL, 0};
    return finish_op(o, a, &out, udb_insert(&out, txn, a->type, a->rec.data, a->rec.len));
}

int race_op_insert_or_get(udb_txn *txn, race_outcome *o, const void *arg)
{
    const race_rec_arg *a = arg;
    udb_val out = {NULL, 0};
    int created = -1;
    int rc = udb_insert_or_get(&out, &created, txn, a->type, a->index, a->rec.data, a->rec.len);
    o->created = created;
    return finish_op(o, a, &out, rc);
}

int race_op_insert_first(udb_txn *txn, race_outcome *o, const void *arg)
{
    const race_rec_arg *a = arg;
    udb_val out = {NULL, 0};
    size_t chosen = (size_t)-1;
    int rc = udb_insert_first(&out, &chosen, txn, a->type, a->cands, a->ncands);
    o->chosen = chosen;
    return finish_op(o, a, &out, rc);
}

int race_op_update(udb_txn *txn, race_outcome *o, const void *arg)
{
    const race_rec_arg *a = arg;
    udb_val out = {NULL, 0};
    return finish_op(o, a, &out, udb_update(&out, txn, a->type, a->key.data, a->key.len,
                                            a->rec.data, a->rec.len, a->flags));
}

typedef struct write_call {
    race_op op;
    const void *arg;
    race_outcome *o;
} write_call;

/* Runs again from the start if the map grows: reset the outcome each time. */
static int write_fn(udb_txn *txn, void *ctx)
{
    write_call *w = ctx;
    memset(w->o, 0, sizeof *w->o);
    int rc = w->op(txn, w->o, w->arg);
    race_note(w->o, txn, rc);
    return rc;
}

static int settle(race_outcome *o, udb_env *env, int rc)
{
    o->done = 1;
    o->rc = rc;
    if (rc != 0 && o->errmsg[0] == '\0')
        snprintf(o->errmsg, sizeof o->errmsg, "%s", udb_env_errmsg(env));
    return rc;
}

int race_write(udb_env *env, race_op op, const void *arg, race_outcome *o)
{
    memset(o, 0, sizeof *o);
    write_call w = {op, arg, o};
    return settle(o, env, udb_write(env, write_fn, &w));
}

/* Times race_direct runs a transaction the server refused as concurrent. */
#define DIRECT_RETRIES 64

int race_direct(udb_env *env, race_op op, const void *arg, race_outcome *o, int commit)
{
    int rc;
    /* PostgreSQL may refuse a transaction that met a concurrent one
     * (UDB_ERETRY, never returned on LMDB): a udb_begin user runs it again
     * from udb_begin, as uniqdb.h says; the outcome is the last run's. */
    for (int attempt = 0;; attempt++) {
        memset(o, 0, sizeof *o);
        udb_txn *txn = NULL;
        rc = udb_begin(&txn, env, 0);
        if (rc != 0)
            return settle(o, env, rc);
        rc = op(txn, o, arg);
        race_note(o, txn, rc);
        if (rc == 0 && commit && (rc = udb_commit(txn)) != 0)
            snprintf(o->errmsg, sizeof o->errmsg, "udb_commit failed: %s", udb_env_errmsg(env));
        else if (rc != 0 || !commit)
            udb_abort(txn);
        if (rc != UDB_ERETRY || attempt + 1 == DIRECT_RETRIES)
            break;
    }
    return settle(o, env, rc);
}

/* ---- through udb_exec() --------------------------------------------------- */

udb_op race_op_of(unsigned kind, const char *type, const race_buf *rec)
{
    udb_op op = UDB_OP_INIT;
    op.kind = kind;
    op.type = type;
    if (rec != NULL) {
        op.rec.data = rec->data;
        op.rec.size = rec->len;
    }
    return op;
}

/* Is r the zero result every op but the failed one has after a failure? */
static int result_zero(const udb_result *r)
{
    return r->rc == 0 && r->created == 0 && r->record.data == NULL && r->record.size == 0 &&
           r->chosen == 0 && r->value == 0 && r->errmsg != NULL && r->errmsg[0] == '\0' &&
           r->conflict == NULL;
}

int race_exec(udb_env *env, const udb_op *ops, size_t n, size_t at, const char *keyfield,
              const char *field, race_outcome *o)
{
    memset(o, 0, sizeof *o);
    udb_results *res = NULL;
    int rc = udb_exec(&res, env, ops, n);
    o->done = 1;
    o->rc = rc;
    o->nops = n;
    o->failed_op = udb_results_failed(res);
    if (res == NULL && rc == 0)
        snprintf(o->exec_bad, sizeof o->exec_bad, "succeeded without results");
    for (size_t i = 0; i < n && res != NULL; i++) {
        const udb_result *r = udb_result_at(res, i);
        if (rc == 0) {
            if (r->rc != 0)
                snprintf(o->exec_bad, sizeof o->exec_bad, "op %zu has rc %d in a unit that "
                         "succeeded", i, r->rc);
            if (ops[i].kind == UDB_OP_SEQ_NEXT)
                o->num = r->value;
            if (i == at) {
                o->created = r->created;
                o->chosen = r->chosen;
                race_take_record(o, &r->record, keyfield, field);
            }
        } else if (i == o->failed_op) {
            snprintf(o->errmsg, sizeof o->errmsg, "%s", r->errmsg ? r->errmsg : "(null)");
            o->chosen = r->chosen;
            if (rc == UDB_ECONFLICT)
                note_conflict(o, r->conflict);
            if (r->record.data != NULL || r->value != 0)
                o->out_on_error = 1;
            if (r->rc != rc)
                snprintf(o->exec_bad, sizeof o->exec_bad, "the failed op %zu has rc %d, the "
                         "unit %d", i, r->rc, rc);
        } else if (!result_zero(r)) {
            snprintf(o->exec_bad, sizeof o->exec_bad, "op %zu's result is not empty although "
                     "op %zu failed the unit", i, o->failed_op);
        }
    }
    if (rc != 0 && o->errmsg[0] == '\0')
        snprintf(o->errmsg, sizeof o->errmsg, "%s", udb_env_errmsg(env));
    udb_results_free(res);
    return rc;
}

/* ---- verification --------------------------------------------------------- */

race_outcome *race_at(const race_ctx *c, int round, int phase, int writer)
{
    size_t i = ((size_t)round * (size_t)c->spec->phases + (size_t)phase) *
               (size_t)c->nwriters + (size_t)writer;
    return &c->outcomes[i];
}

/* One broken race can fail every call: show the first ones, count the rest. */
#define MAX_REPORTS 40

int race_bad(const race_ctx *c, const race_outcome *o, const char *fmt, ...)
{
    static int reports;
    if (++reports > MAX_REPORTS) {
        if (reports == MAX_REPORTS + 1)
            fprintf(stderr, "%s: (further failures not shown)\n", c->spec->name);
        return 1;
    }
    fprintf(stderr, "%s: FAIL: ", c->spec->name);
    /* Compared as integers: o may point anywhere (a verifier's local). */
    if ((uintptr_t)o >= (uintptr_t)c->outcomes &&
        (uintptr_t)o < (uintptr_t)race_at(c, c->spec->rounds, 0, 0)) {
        size_t i = ((uintptr_t)o - (uintptr_t)c->outcomes) / sizeof *o;
        size_t nw = (size_t)c->nwriters;
        size_t np = (size_t)c->spec->phases;
        fprintf(stderr, "round %zu phase %zu writer %zu: ", i / nw / np, i / nw % np, i % nw);
    }
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (o != NULL) {
        fprintf(stderr, "    done=%d rc=%d (%s) errmsg=\"%s\"\n", o->done, o->rc,
                udb_strerror(o->rc), o->errmsg);
        fprintf(stderr, "    created=%d chosen=%zu key=%s field=%s out_on_error=%d\n",
                o->created, o->chosen, o->key, o->field, o->out_on_error);
        if (o->nops > 0 && o->failed_op < o->nops)
            fprintf(stderr, "    udb_exec: %zu ops, op %zu failed the unit%s%s\n", o->nops,
                    o->failed_op, o->exec_bad[0] ? "; results: " : "", o->exec_bad);
        else if (o->nops > 0)
            fprintf(stderr, "    udb_exec: %zu ops, no op failed%s%s\n", o->nops,
                    o->exec_bad[0] ? "; results: " : "", o->exec_bad);
        if (o->rc == UDB_ECONFLICT)
            fprintf(stderr, "    conflict: %zu index(es); type=%s index=%s fields=(%s) "
                    "values=%s existing=%s\n", o->nconflicts, o->ctype, o->cindex,
                    o->cfields, o->cvalues, o->ckey);
    }
    return 1;
}

int race_expect_rc(const race_ctx *c, const race_outcome *o, int want, const char *what)
{
    if (!o->done)
        return race_bad(c, o, "%s: the call was never made", what);
    if (o->rc != want)
        return race_bad(c, o, "%s: want rc %d (%s)", what, want, udb_strerror(want));
    if (o->rc != 0 && o->out_on_error)
        return race_bad(c, o, "%s: *out was set although the call failed", what);
    if (o->exec_bad[0] != '\0')
        return race_bad(c, o, "%s: udb_exec's results: %s", what, o->exec_bad);
    if (o->nops > 0 && o->rc != 0 && o->failed_op >= o->nops)
        return race_bad(c, o, "%s: udb_exec failed, but no op is named as the one that "
                        "failed", what);
    return 0;
}

static int text_is(const char *got, const char *want)
{
    return want == NULL || strcmp(got, want) == 0;
}

int race_expect_conflict(const race_ctx *c, const race_outcome *o, const char *type,
                         const char *index, const char *fields, const char *values,
                         const char *key, const char *what)
{
    if (race_expect_rc(c, o, UDB_ECONFLICT, what) != 0)
        return 1;
    if (o->nconflicts != 1)
        return race_bad(c, o, "%s: want conflict info naming 1 index", what);
    if (!text_is(o->ctype, type) || !text_is(o->cindex, index) || !text_is(o->cfields, fields) ||
        !text_is(o->cvalues, values) || !text_is(o->ckey, key))
        return race_bad(c, o, "%s: want conflict type=%s index=%s fields=(%s) values=%s "
                        "existing=%s", what, type ? type : "*", index ? index : "*",
                        fields ? fields : "*", values ? values : "*", key ? key : "*");
    return 0;
}

const race_outcome *race_winner(const race_ctx *c, int round, int phase, int need_created,
                                int *w_out)
{
    int winner = -1, n = 0;
    for (int w = 0; w < c->nwriters; w++) {
        const race_outcome *o = race_at(c, round, phase, w);
        if (o->done && o->rc == 0 && (!need_created || o->created == 1)) {
            winner = w;
            n++;
        }
    }
    if (w_out)
        *w_out = winner;
    if (n == 1)
        return race_at(c, round, phase, winner);
    if (w_out)
        *w_out = -1;
    race_bad(c, NULL, "round %d phase %d: %d writers won, want exactly 1", round, phase, n);
    for (int w = 0; w < c->nwriters; w++) {
        const race_outcome *o = race_at(c, round, phase, w);
        if (o->done && o->rc == 0 && (!need_created || o->created == 1))
            race_bad(c, o, "  winner: writer %d", w);
    }
    return NULL;
}

int race_find(race_outcome *o, udb_txn *txn, const char *type, const char *index,
              const race_buf *values, const char *keyfield, const char *field)
{
    memset(o, 0, sizeof *o);
    race_rec_arg a = {0};
    a.keyfield = keyfield;
    a.field = field;
    udb_val out = {NULL, 0};
    int rc = finish_op(o, &a, &out, udb_find(&out, txn, type, index, values->data, values->len));
    race_note(o, txn, rc);
    o->done = 1;
    o->rc = rc;
    return rc;
}

int race_expect_find(const race_ctx *c, const char *type, const char *index,
                     const race_buf *values, const char *key)
{
    race_outcome o;
    race_find(&o, c->txn, type, index, values, "id", NULL);
    char what[RACE_TEXT];
    race_render(what, sizeof what, values->data, values->len);
    if (o.rc != 0 || strcmp(o.key, key) != 0)
        return race_bad(c, &o, "udb_find(%s, %s) gives %s, want %s", index, what, o.key, key);
    return 0;
}

int race_expect_one_creator(const race_ctx *c, int round, int phase, const char *what,
                            const char *type, const char *index, const race_buf *values)
{
    int w0;
    const race_outcome *win = race_winner(c, round, phase, 1, &w0);
    if (win == NULL)
        return 1;
    int fails = 0;
    char state[RACE_TEXT];
    snprintf(state, sizeof state, "\"w%d\"", w0);
    if (strcmp(win->field, state) != 0)
        fails += race_bad(c, win, "creator's record has state %s, want %s", win->field, state);
    for (int w = 0; w < c->nwriters; w++) {
        const race_outcome *o = race_at(c, round, phase, w);
        if (race_expect_rc(c, o, 0, what) != 0)
            fails++;
        else if (strcmp(o->key, win->key) != 0 || strcmp(o->field, win->field) != 0 ||
                 (w != w0 && o->created != 0))
            fails += race_bad(c, o, "want the creator's record %s (state %s), created=0",
                              win->key, win->field);
    }
    return fails + race_expect_find(c, type, index, values, win->key);
}

int race_expect_count(const race_ctx *c, const char *type, const char *index,
                      const race_buf *prefix, size_t want)
{
    if (!race_scans()) {
        race_noscan(c, "race_expect_count");
        return 0;
    }
    size_t n;
    if (race_scan(&n, c->txn, type, index, prefix, NULL, NULL) != 0)
        return 1;
    if (n != want)
        return race_bad(c, NULL, "%zu %s records in index %s, want %zu", n, type,
                        index ? index : "(primary)", want);
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int race_gapless(const race_ctx *c, uint64_t *v, size_t n, const char *what)
{
    qsort(v, n, sizeof *v, cmp_u64);
    for (size_t i = 0; i < n; i++)
        if (v[i] != i + 1)
            return race_bad(c, NULL, "%s: sorted value %zu is %llu, want %zu (of %zu)", what, i,
                            (unsigned long long)v[i], i + 1, n);
    return 0;
}

int race_lib_fail(const char *call, int rc, const char *detail)
{
    fprintf(stderr, "FAIL: %s: rc=%d (%s): %s\n", call, rc, udb_strerror(rc),
            detail != NULL ? detail : "");
    return 1;
}

int race_scan(size_t *count, udb_txn *txn, const char *type, const char *index,
              const race_buf *prefix, int (*fn)(void *ctx, const udb_val *rec), void *ctx)
{
    *count = 0;
    udb_cursor *cur = NULL;
    int rc = udb_scan(&cur, txn, type, index, prefix ? prefix->data : NULL,
                      prefix ? prefix->len : 0);
    if (rc != 0) {
        race_lib_fail("udb_scan", rc, udb_errmsg(txn));
        return rc;
    }
    udb_val rec;
    while ((rc = udb_cursor_next(&rec, cur)) == 0) {
        (*count)++;
        if (fn != NULL && (rc = fn(ctx, &rec)) != 0)
            break;
    }
    udb_cursor_close(cur);
    if (rc == UDB_ENOTFOUND)
        return 0;
    race_lib_fail("udb_cursor_next", rc, udb_errmsg(txn));
    return rc;
}

void race_sync(race_ctx *c)
{
    pthread_barrier_wait(c->all);
}

/* ---- backends ------------------------------------------------------------- */

int race_pg(void)
{
    const char *v = getenv("UDB_TEST_PG");
    return v != NULL && strcmp(v, "1") == 0;
}

int race_scans(void)
{
    const char *v = getenv("UDB_TEST_PG_SCANS");
    return !race_pg() || v == NULL || strcmp(v, "0") != 0;
}

void race_noscan(const race_ctx *c, const char *what)
{
    static int noted;
    if (noted++ < 3)
        printf("%s: not checked on postgresql (scan: pgscan): %s\n", c->spec->name, what);
}

/* ---- processes ------------------------------------------------------------ */

typedef struct shared_head {
    pthread_barrier_t all;
    _Atomic uint64_t ship[UDB_SHIP_NCOUNTS];   /* exec mode: the largest counts a child saw */
} shared_head;

static shared_head *head;   /* in the mapping every child inherits */

/* Room for the head, then the outcome array, each cache-line aligned. */
#define HEAD_SIZE ((sizeof(shared_head) + 63) / 64 * 64)

typedef struct writer_thread {
    pthread_t tid;
    pthread_barrier_t *start;
    race_ctx c;
    int fails;
} writer_thread;

static void *writer_main(void *p)
{
    writer_thread *t = p;
    pthread_barrier_wait(t->start);
    t->fails = t->c.spec->worker(&t->c);
    return NULL;
}

static void open_options(udb_options *o, const race_spec *s, int proc)
{
    *o = (udb_options)UDB_OPTIONS_INIT;
    o->map_size = s->map_size;
    o->flags = s->flags;
    /* Half the processes commit each call alone: both udb_write paths race.
     * Not in exec mode: a process that commits alone never ships a unit. */
    if (proc % 2 == 1 && !s->exec)
        o->flags |= UDB_NOGROUP;
}

/* Exec mode: keep what the sync file counted of shipped units.  The counts
 * only grow while the database is open, and the last child to get here does
 * so after every writer of every process has finished, so the largest counts
 * any child saw are the run's. */
static void note_shipping(udb_env *env)
{
    uint64_t n[UDB_SHIP_NCOUNTS];
    udb__ship_counts(udb__env_ship(env), n);
    for (int i = 0; i < UDB_SHIP_NCOUNTS; i++) {
        uint64_t old = atomic_load(&head->ship[i]);
        while (n[i] > old && !atomic_compare_exchange_weak(&head->ship[i], &old, n[i]))
            ;
    }
}

static int child_main(const race_ctx *base, const char *dir, sup_gate *gate)
{
    const race_spec *s = base->spec;
    udb_options opts;
    open_options(&opts, s, base->proc);
    udb_env *env = NULL;
    int rc = udb_open(&env, dir, &opts);
    if (rc != 0)
        return race_lib_fail("child udb_open", rc, udb_env_errmsg(NULL));
    writer_thread *ts = calloc((size_t)s->nthreads, sizeof *ts);
    pthread_barrier_t start;
    if (ts == NULL || pthread_barrier_init(&start, NULL, (unsigned)s->nthreads + 1) != 0) {
        fprintf(stderr, "FAIL: child setup: out of memory\n");
        free(ts);
        udb_close(env);
        return 1;
    }
    for (int i = 0; i < s->nthreads; i++) {
        ts[i].start = &start;
        ts[i].c = *base;
        ts[i].c.env = env;
        ts[i].c.thread = i;
        ts[i].c.writer = base->proc * s->nthreads + i;
        if (pthread_create(&ts[i].tid, NULL, writer_main, &ts[i]) != 0) {
            /* Parked threads cannot be released without the others: give up. */
            fprintf(stderr, "FAIL: pthread_create\n");
            _exit(2);
        }
    }
    if (sup_gate_wait(gate) != 0) {
        fprintf(stderr, "FAIL: start pipes: %s\n", strerror(errno));
        _exit(2);
    }
    pthread_barrier_wait(&start);
    int fails = 0;
    for (int i = 0; i < s->nthreads; i++) {
        pthread_join(ts[i].tid, NULL);
        fails += ts[i].fails;
    }
    pthread_barrier_destroy(&start);
    free(ts);
    if (s->exec && !race_pg())
        note_shipping(env);
    udb_close(env);
    return fails ? 1 : 0;
}

/* A deadlocked engine must fail the test with a diagnosis, not hit the meson
 * timeout: after this long the parent kills the writers and verifies. */
#define DEADLINE_SECONDS 240

static volatile sig_atomic_t deadline_passed;

static void on_alarm(int sig)
{
    (void)sig;
    deadline_passed = 1;
}

static int reap(pid_t *pids, int n, int kill_all)
{
    int left = 0;
    for (int i = 0; i < n; i++) {
        if (pids[i] > 0) {
            left++;
            if (kill_all)
                kill(pids[i], SIGKILL);
        }
    }
    int fails = 0;
    while (left > 0) {
        int st;
        pid_t pid = waitpid(-1, &st, 0);
        if (pid < 0) {
            if (errno == EINTR && deadline_passed && !kill_all) {
                fprintf(stderr, "FAIL: writers still running after %d s (deadlock?): "
                        "killing them\n", DEADLINE_SECONDS);
                kill_all = 1;
                fails++;
                for (int j = 0; j < n; j++)
                    if (pids[j] > 0)
                        kill(pids[j], SIGKILL);
            }
            if (errno == EINTR)
                continue;
            perror("waitpid");
            return fails + 1;
        }
        int i = 0;
        while (i < n && pids[i] != pid)
            i++;
        if (i == n)
            continue;
        pids[i] = 0;
        left--;
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
            continue;
        fails++;
        if (kill_all)
            continue;
        if (WIFEXITED(st)) {
            fprintf(stderr, "FAIL: process %d exited with status %d\n", i, WEXITSTATUS(st));
            continue;
        }
        fprintf(stderr, "FAIL: process %d killed by signal %d\n", i, WTERMSIG(st));
        /* The others may be waiting for it at a barrier. */
        for (int j = 0; j < n; j++)
            if (pids[j] > 0)
                kill(pids[j], SIGKILL);
    }
    return fails;
}

static int run_processes(const race_ctx *base, const char *dir)
{
    const race_spec *s = base->spec;
    pid_t *pids = calloc((size_t)s->nproc, sizeof *pids);
    sup_gate gate;
    if (pids == NULL || sup_gate_init(&gate) != 0) {
        free(pids);
        return race_lib_fail("pipe", errno, strerror(errno));
    }
    for (int p = 0; p < s->nproc; p++) {
        fflush(NULL);
        pids[p] = fork();
        if (pids[p] == 0) {
            sup_gate_enter(&gate);
            race_ctx c = *base;
            c.proc = p;
            int rc = child_main(&c, dir, &gate);
            free(pids);
            exit(rc);
        }
        if (pids[p] < 0) {
            perror("fork");
            break;
        }
    }
    sigaction(SIGALRM, &(struct sigaction){.sa_handler = on_alarm}, NULL);  /* no SA_RESTART */
    deadline_passed = 0;
    alarm(DEADLINE_SECONDS);
    int got = sup_gate_await(&gate, s->nproc, &deadline_passed);
    if (got != s->nproc) {
        fprintf(stderr, "FAIL: %d of %d processes got ready\n", got, s->nproc);
        alarm(0);
        sup_gate_close(&gate);
        reap(pids, s->nproc, 1);
        free(pids);
        return 1;
    }
    sup_gate_open(&gate);  /* the start signal: every child's read() returns 0 now */
    int fails = reap(pids, s->nproc, 0);
    alarm(0);
    free(pids);
    return fails;
}

/* ---- whole test ------------------------------------------------------------ */

static int create_db(const char *dir, const char *schema_path, const race_spec *s)
{
    size_t len = 0;
    char *json = sup_read_file(schema_path, &len);
    if (json == NULL) {
        fprintf(stderr, "FAIL: cannot read schema %s: %s\n", schema_path, strerror(errno));
        return 1;
    }
    udb_options opts;
    open_options(&opts, s, 0);
    udb_env *env = NULL;
    int rc = udb_open(&env, dir, &opts);
    if (rc != 0) {
        free(json);
        return race_lib_fail("udb_open", rc, udb_env_errmsg(NULL));
    }
    rc = udb_schema_apply(NULL, env, json, len, 0);
    if (rc != 0)
        race_lib_fail("udb_schema_apply", rc, udb_env_errmsg(env));
    udb_close(env);
    free(json);
    return rc != 0;
}

static void report_problem(const char *problem, void *ctx)
{
    fprintf(stderr, "%s: udb_check: %s\n", (const char *)ctx, problem);
}

static int verify_db(race_ctx *c, const char *dir)
{
    udb_options opts;
    open_options(&opts, c->spec, 0);
    int rc = udb_open(&c->env, dir, &opts);
    if (rc != 0)
        return race_lib_fail("udb_open (verify)", rc, udb_env_errmsg(NULL));
    int fails;
    rc = udb_begin(&c->txn, c->env, UDB_RDONLY);
    if (rc != 0) {
        fails = race_lib_fail("udb_begin (verify)", rc, udb_env_errmsg(c->env));
    } else {
        fails = c->spec->verify(c);
        udb_abort(c->txn);
        c->txn = NULL;
    }
    size_t problems = 0;
    rc = udb_check(&problems, c->env, report_problem, (void *)c->spec->name);
    if (c->spec->check_not_counted)
        printf("%s: udb_check: rc %d, %zu problems (not counted: the database is damaged on "
               "purpose)\n", c->spec->name, rc, problems);
    else if (rc != 0 || problems != 0)
        fails += race_lib_fail("udb_check", rc, udb_env_errmsg(c->env));
    udb_close(c->env);
    c->env = NULL;
    return fails;
}

int race_flags(int argc, char **argv, const char *const *known)
{
    int flags = 0;
    for (int i = 2; i < argc; i++) {
        int k = 0;
        while (known[k] != NULL && strcmp(argv[i], known[k]) != 0)
            k++;
        if (known[k] == NULL) {
            fprintf(stderr, "%s: unknown argument %s\n", argv[0], argv[i]);
            return -1;
        }
        flags |= 1 << k;
    }
    return flags;
}

int race_main_modes(int argc, char **argv, race_spec *spec, const char *control, int *mode)
{
    const char *const flags[] = {"--exec", control, NULL};
    int m = race_flags(argc, argv, flags);
    if (m < 0)
        return 2;
    if (m != 0) {
        m |= RACE_EXEC;
        static char name[128];
        snprintf(name, sizeof name, "%s_exec%s", spec->name, m & RACE_CONTROL ? "_control" : "");
        spec->name = name;
        spec->exec = 1;
        if (m & RACE_CONTROL)
            spec->rounds = 10;
    }
    *mode = m;
    return race_main(argc, argv, spec);
}

int race_main(int argc, char **argv, const race_spec *spec)
{
    double t0 = (double)sup_now_us() / 1e6;
    if (argc < 2) {
        fprintf(stderr, "usage: %s SCHEMA.json\n", argv[0]);
        return 2;
    }
    /* the spec the writers see, after UDB_RACE_ROUNDS (inherited by fork) */
    race_spec local = *spec;
    const race_spec *s = &local;
    const char *rounds = getenv("UDB_RACE_ROUNDS");
    if (rounds != NULL && atoi(rounds) > 0 && atoi(rounds) < local.rounds)
        local.rounds = atoi(rounds);
    /* dir: the database's directory, or on PostgreSQL the URL of a fresh schema */
    char dir[4096], prefix[128];
    if (race_pg()) {
        snprintf(dir, sizeof dir, "postgresql:///uniqdb_test?schema=%s_%ld", s->name,
                 (long)getpid());
    } else {
        snprintf(prefix, sizeof prefix, "uniqdb-%s-", s->name);
        if (sup_mkdtemp(dir, sizeof dir, prefix) != 0) {
            perror("mkdtemp");
            return 1;
        }
    }
    race_ctx c = {0};
    c.spec = s;
    c.writer = -1;
    c.nwriters = s->nproc * s->nthreads;
    size_t nout = (size_t)s->rounds * (size_t)s->phases * (size_t)c.nwriters;
    size_t size = HEAD_SIZE + nout * sizeof(race_outcome);
    void *shm = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shm == MAP_FAILED) {
        perror("mmap");
        if (!race_pg())
            rmdir(dir);
        return 1;
    }
    head = shm;
    c.all = &head->all;
    c.outcomes = (race_outcome *)((char *)shm + HEAD_SIZE);
    pthread_barrierattr_t attr;
    pthread_barrierattr_init(&attr);
    pthread_barrierattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);

    /* Exec mode must show units shipped to another process's leader.  Whether
     * any is depends on the writers' timing (all of a round's units may reach
     * their own process's queue before any process leads): a run that shipped
     * none, its verdicts good, runs again on a fresh database, three at most. */
    int fails = 0, ran = 1;
    for (int run_no = 1;; run_no++) {
        pthread_barrier_init(c.all, &attr, (unsigned)c.nwriters);
        fails = create_db(dir, argv[1], s);
        ran = 1;
        if (fails == 0 && s->setup != NULL)
            fails = s->setup(dir);
        if (fails)
            break;
        /* Verify even after a failed run: it explains what went wrong. */
        ran = run_processes(&c, dir);
        fails = ran + verify_db(&c, dir);
        if (!s->exec || fails)
            break;
        if (race_pg()) {
            printf("%s: udb_exec on postgresql: no shipping to check, the verdicts only\n",
                   s->name);
            break;
        }
        uint64_t run = atomic_load(&head->ship[UDB_SHIP_RUN]);
        uint64_t foreign = atomic_load(&head->ship[UDB_SHIP_FOREIGN]);
        printf("%s: udb_exec units through a slot %llu, run by another process %llu\n",
               s->name, (unsigned long long)run, (unsigned long long)foreign);
        if (foreign != 0)
            break;
        if (run_no == 3) {
            fails += race_bad(&c, NULL, "no udb_exec unit was run by another process's "
                              "leader in %d runs: nothing was shipped", run_no);
            break;
        }
        printf("%s: run %d shipped nothing: once more on a fresh database\n", s->name, run_no);
        pthread_barrier_destroy(c.all);
        memset(shm, 0, size);
        c.all = &head->all;
        if (sup_remove_tree(dir, true) != 0) {
            fails = race_bad(&c, NULL, "cannot empty %s: %s", dir, strerror(errno));
            break;
        }
    }
    pthread_barrierattr_destroy(&attr);

    /* After a killed writer the barrier is mid-use; destroy would wait forever. */
    if (ran == 0)
        pthread_barrier_destroy(c.all);
    munmap(shm, size);
    if (!race_pg() && sup_remove_tree(dir, false) != 0)
        fprintf(stderr, "warning: could not remove %s: %s\n", dir, strerror(errno));
    printf("%s: %d processes x %d threads, %d rounds%s: %s (%.2f s)\n", s->name, s->nproc,
           s->nthreads, s->rounds, race_pg() ? " on postgresql" : "", fails ? "FAILED" : "ok",
           (double)sup_now_us() / 1e6 - t0);
    return fails ? 1 : 0;
}
