/*
 * cli_demo.c -- `uniqdb demo`: the five scenarios of the README ("The five
 * scenarios in C"), live.
 *
 * Each race forks NPROC processes.  Every child opens the database itself
 * (an environment never crosses fork), says it is ready, and blocks on a
 * pipe; the parent releases them all at once by closing the pipe's write end,
 * so their operations really collide.  Each child reports its outcome to the
 * parent through a second pipe as one fixed-size struct (smaller than
 * PIPE_BUF, so the writes of different children never interleave).  The
 * parent holds no environment while children run, and checks every outcome
 * against what the scenario promises: the demo exits 1 if any promise broke.
 *
 * The schema is tools/scenarios.json, compiled in (cli_scenarios.h is
 * generated from it by meson), so there is one source of truth.
 */
#include "cli_common.h"

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli_scenarios.h"
#include "support.h"

#define NPROC 8
#define S5_PER_PROC 3
#define DEMO_ABORT 424242 /* a work function's own code: roll back on purpose */

/* What a child reports. */
typedef struct result {
    int rc;           /* udb return code of the operation */
    int created;      /* insert_or_get: 1 if this child created the record */
    size_t chosen;    /* insert_first: position of the candidate taken */
    int ncases;       /* S5: case numbers committed ... */
    int naborted;     /* ... and transactions rolled back on purpose */
    uint64_t cases[S5_PER_PROC];
    char key[64];     /* JSON text of the primary key of the record obtained */
    char index[96];   /* conflict: "type.index" of the first violated index */
    char held_by[64]; /* conflict: JSON text of the key that holds it */
    char values[160]; /* conflict: "(f1, f2)=(v1, v2)" */
    char detail[400]; /* udb_errmsg() of a failure */
} result;

/* What a child does. */
typedef enum { W_OR_GET, W_INSERT, W_FIRST, W_CASES } work_kind;

typedef struct work {
    work_kind kind;
    const char *type, *index;
    const char *json;           /* the record; "#N" is replaced by the child's number */
    const char *const *cands;   /* W_FIRST: candidate records */
    size_t ncands;
    const char *day;            /* W_CASES: YYYYMMDD */
} work;

static int failures;

static void unexpected(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void unexpected(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("    UNEXPECTED: ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    failures++;
}

/* ---- Helpers used inside transactions ---------------------------------------- */

/* JSON text of msgpack bytes, into a fixed buffer. */
static void mp_text(char *out, size_t outlen, const void *data, size_t len)
{
    char err[CLI_ERRLEN];
    json_t *j = data ? cli_msgpack_to_json(data, len, err) : NULL;
    char *t = j ? cli_json_dumps(j, 0) : NULL;
    snprintf(out, outlen, "%s", t ? t : "?");
    udb_free(t);
    json_decref(j);
}

/* The key field "id" of a stored record, as JSON text. */
static void record_key(char *out, size_t outlen, udb_val rec)
{
    char err[CLI_ERRLEN];
    json_t *j = cli_msgpack_to_json(rec.data, rec.size, err);
    char *t = j ? cli_json_dumps(json_object_get(j, "id"), 0) : NULL;
    snprintf(out, outlen, "%s", t ? t : "?");
    udb_free(t);
    json_decref(j);
}

/* "(f1, f2)=(v1, v2)" for a violated index, as PostgreSQL puts it. */
static void conflict_values(char *out, size_t outlen, const udb_conflict_index *ci)
{
    char err[CLI_ERRLEN];
    json_t *vals = cli_msgpack_to_json(ci->values.data, ci->values.size, err);
    size_t n = 0;
    n += (size_t)snprintf(out, outlen, "(");
    size_t i;
    for (i = 0; i < ci->nfields && n < outlen; i++)
        n += (size_t)snprintf(out + n, outlen - n, "%s%s", i ? ", " : "", ci->fields[i]);
    for (i = 0; n < outlen && i <= json_array_size(vals); i++) {
        if (i == json_array_size(vals)) {
            n += (size_t)snprintf(out + n, outlen - n, ")");
            break;
        }
        json_t *v = json_array_get(vals, i);
        char *t = NULL;
        if (!json_is_string(v))
            t = cli_json_dumps(v, 0);
        n += (size_t)snprintf(out + n, outlen - n, "%s%s", i ? ", " : ")=(",
                              json_is_string(v) ? json_string_value(v) : t ? t : "?");
        udb_free(t);
    }
    json_decref(vals);
}

static void note_failure(result *r, udb_txn *txn, int rc)
{
    const udb_conflict *c = rc == UDB_ECONFLICT ? udb_conflict_info(txn) : NULL;
    r->rc = rc;
    snprintf(r->detail, sizeof r->detail, "%s", udb_errmsg(txn));
    if (c && c->count > 0) {
        const udb_conflict_index *ci = &c->indexes[0];
        snprintf(r->index, sizeof r->index, "%s.%s", c->type, ci->index);
        mp_text(r->held_by, sizeof r->held_by, ci->existing_key.data, ci->existing_key.size);
        conflict_values(r->values, sizeof r->values, ci);
    }
}

/* ---- Child side ----------------------------------------------------------------- */

typedef struct child_ctx {
    const work *w;
    int i;     /* child number */
    int round; /* S5: which case of this child */
    result *r;
    int abort_this;
} child_ctx;

/* Pack the JSON template tmpl with every "#N" replaced by the child's number. */
static int pack_text(msgpack_sbuffer *sb, const char *tmpl, int i)
{
    char text[1024];
    const char *p = tmpl, *q;
    size_t n = 0;
    while ((q = strstr(p, "#N")) != NULL && n < sizeof text) {
        n += (size_t)snprintf(text + n, sizeof text - n, "%.*s%d", (int)(q - p), p, i);
        p = q + 2;
    }
    if (n < sizeof text)
        snprintf(text + n, sizeof text - n, "%s", p);
    char err[CLI_ERRLEN];
    return cli_text_to_msgpack(sb, text, strlen(text), err);
}

static int child_fn(udb_txn *txn, void *vctx)
{
    child_ctx *c = vctx;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    result *r = c->r;
    r->rc = 0;
    r->created = 0;
    r->detail[0] = r->index[0] = r->key[0] = '\0';
    const work *w = c->w;
    udb_val out = {NULL, 0};
    int rc = UDB_ENOMEM;
    switch (w->kind) {
    case W_OR_GET:
        if (pack_text(&sb, w->json, c->i) == 0)
            rc = udb_insert_or_get(&out, &r->created, txn, w->type, w->index, sb.data, sb.size);
        break;
    case W_INSERT:
        if (pack_text(&sb, w->json, c->i) == 0)
            rc = udb_insert(&out, txn, w->type, sb.data, sb.size);
        r->created = rc == 0;
        break;
    case W_FIRST: {
        msgpack_sbuffer bufs[8];
        udb_val cands[8];
        size_t k, n = w->ncands < 8 ? w->ncands : 8;
        rc = 0;
        for (k = 0; k < n; k++) {
            msgpack_sbuffer_init(&bufs[k]);
            if (rc == 0 && pack_text(&bufs[k], w->cands[k], c->i) != 0)
                rc = UDB_ENOMEM;
            cands[k].data = bufs[k].data;
            cands[k].size = bufs[k].size;
        }
        if (rc == 0)
            rc = udb_insert_first(&out, &r->chosen, txn, w->type, cands, n);
        if (rc)
            note_failure(r, txn, rc);
        else
            record_key(r->key, sizeof r->key, out);
        for (k = 0; k < n; k++)
            msgpack_sbuffer_destroy(&bufs[k]);
        msgpack_sbuffer_destroy(&sb);
        return rc;
    }
    case W_CASES: {
        char name[64], json[256], err[CLI_ERRLEN];
        uint64_t n = 0;
        snprintf(name, sizeof name, "case:%s", w->day);
        rc = udb_seq_next(&n, txn, name);
        if (rc)
            break;
        snprintf(json, sizeof json,
                 "{\"case_number\": \"CASE-%s-%06" PRIu64 "\", \"caller\": \"caller-%d-%d\", "
                 "\"opened_at\": %lld}",
                 w->day, n, c->i, c->round, (long long)time(NULL));
        rc = cli_text_to_msgpack(&sb, json, strlen(json), err) ? UDB_ENOMEM
             : udb_insert(&out, txn, w->type, sb.data, sb.size);
        if (rc == 0 && c->abort_this) {
            msgpack_sbuffer_destroy(&sb);
            return DEMO_ABORT; /* the number goes back with the transaction */
        }
        if (rc == 0)
            r->cases[r->ncases] = n;
        break;
    }
    }
    if (rc)
        note_failure(r, txn, rc);
    else if (out.data)
        record_key(r->key, sizeof r->key, out);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static void child_run(udb_env *env, const work *w, int i, result *r)
{
    child_ctx c = {w, i, 0, r, 0};
    if (w->kind != W_CASES) {
        udb_write(env, child_fn, &c);
        return;
    }
    /* S5: several cases per process; odd processes roll one transaction back
     * after taking its number, which must leave no gap. */
    for (c.round = 0; c.round < S5_PER_PROC; c.round++) {
        c.abort_this = (i % 2 == 1) && c.round == 1;
        int rc = udb_write(env, child_fn, &c);
        if (rc == DEMO_ABORT) {
            r->naborted++;
            if (c.round == 1) { /* and take a number for real afterwards */
                c.abort_this = 0;
                rc = udb_write(env, child_fn, &c);
            }
        }
        if (rc == 0)
            r->ncases++;
        else if (rc != DEMO_ABORT)
            return;
    }
    r->rc = 0;
}

/* Run w in NPROC processes released at the same instant; results in res[]
 * (returns how many reported). */
static int race(const char *dir, const work *w, result res[NPROC])
{
    int got = 0;
    memset(res, 0, sizeof(result) * NPROC);
    sup_gate gate;
    if (sup_gate_init(&gate) != 0) {
        unexpected("pipe: %s", strerror(errno));
        return 0;
    }
    int rep[2] = {-1, -1};
    if (pipe(rep)) {
        unexpected("pipe: %s", strerror(errno));
        goto out;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pids[NPROC];
    int started = 0;
    for (int i = 0; i < NPROC; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            unexpected("fork: %s", strerror(errno));
            break;
        }
        if (pid == 0) {
            sup_gate_enter(&gate);
            close(rep[0]);
            result r;
            memset(&r, 0, sizeof r);
            udb_env *env = NULL;
            int rc = udb_open(&env, dir, NULL);
            if (sup_gate_wait(&gate) != 0)
                _exit(1);
            if (rc) {
                r.rc = rc;
                snprintf(r.detail, sizeof r.detail, "open: %s", udb_env_errmsg(NULL));
            } else {
                child_run(env, w, i, &r);
            }
            udb_close(env);
            _exit(write(rep[1], &r, sizeof r) == (ssize_t)sizeof r ? 0 : 1);
        }
        pids[started++] = pid;
    }
    /* Wait until every child has opened the database, then open the gate. */
    sup_gate_await(&gate, started, NULL);
    sup_gate_open(&gate);
    close(rep[1]);
    rep[1] = -1;
    while (got < started) {
        ssize_t n = read(rep[0], &res[got], sizeof res[got]);
        if (n < 0 && errno == EINTR)
            continue;
        if (n != (ssize_t)sizeof res[got])
            break;
        got++;
    }
    for (int i = 0; i < started; i++) {
        int status;
        while (waitpid(pids[i], &status, 0) < 0 && errno == EINTR)
            ;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            unexpected("a child process failed (status %d)", status);
    }
    if (got != NPROC)
        unexpected("%d of %d processes reported", got, NPROC);
out:
    sup_gate_close(&gate);
    for (int i = 0; i < 2; i++)
        if (rep[i] >= 0)
            close(rep[i]);
    return got;
}

/* ---- Parent side --------------------------------------------------------------- */

typedef struct tally {
    int ok, created, conflict, other;
    const result *first_ok, *first_conflict, *first_other;
    const char *conflict_index, *held_by; /* the first conflict's, or "-" */
} tally;

static tally count(const result *res, int n)
{
    tally t;
    memset(&t, 0, sizeof t);
    for (int i = 0; i < n; i++) {
        if (res[i].rc == 0) {
            t.ok++;
            t.created += res[i].created;
            if (!t.first_ok || res[i].created)
                t.first_ok = &res[i];
        } else if (res[i].rc == UDB_ECONFLICT) {
            t.conflict++;
            if (!t.first_conflict)
                t.first_conflict = &res[i];
        } else {
            t.other++;
            if (!t.first_other)
                t.first_other = &res[i];
        }
    }
    t.conflict_index = t.first_conflict ? t.first_conflict->index : "-";
    t.held_by = t.first_conflict ? t.first_conflict->held_by : "-";
    if (t.first_other)
        unexpected("%d processes failed: %s (%s)", t.other, udb_strerror(t.first_other->rc),
                   t.first_other->detail);
    return t;
}

/* Every process that got a record got the same key; every conflict names
 * the same index and holder. */
static void expect_same(const result *res, int n, const char *index, const char *held_by)
{
    for (int i = 0; i < n; i++) {
        if (res[i].rc == 0 && held_by && strcmp(res[i].key, held_by) != 0)
            unexpected("process got record %s instead of %s", res[i].key, held_by);
        if (res[i].rc == UDB_ECONFLICT && index && strcmp(res[i].index, index) != 0)
            unexpected("conflict named %s instead of %s", res[i].index, index);
        if (res[i].rc == UDB_ECONFLICT && held_by && strcmp(res[i].held_by, held_by) != 0)
            unexpected("conflict held by %s instead of %s", res[i].held_by, held_by);
    }
}

static int scenario_s1(const char *dir)
{
    static const work w = {W_OR_GET, "schedule_workflow", "schedule_doctor",
                           "{\"scheduleId\": \"2026-W03\", \"doctorName\": \"Dr. Rivera\", "
                           "\"state\": \"requested by process #N\"}",
                           NULL, 0, NULL};
    result res[NPROC];
    int n = race(dir, &w, res);
    tally t = count(res, n);
    printf("S1  Get-or-create on a compound unique key\n");
    printf("    %d processes asked for the workflow of (scheduleId 2026-W03, doctorName "
           "Dr. Rivera) at the same instant:\n",
           n);
    printf("    %d created it (id %s), %d got that same record back: one workflow, no errors.\n",
           t.created, t.first_ok ? t.first_ok->key : "?", t.ok - t.created);
    if (t.created != 1 || t.ok != NPROC)
        unexpected("expected 1 created and %d answered", NPROC);
    expect_same(res, n, NULL, t.first_ok ? t.first_ok->key : "");
    return 0;
}

static int scenario_s2(const char *dir)
{
    static const work same_id = {W_OR_GET, "client", NULL,
                                 "{\"id\": \"c-7f3a\", \"email\": \"ana@example.com\", "
                                 "\"name\": \"Ana (request #N)\"}",
                                 NULL, 0, NULL};
    static const work new_id = {W_OR_GET, "client", NULL,
                                "{\"id\": \"c-new-#N\", \"email\": \"ana@example.com\", "
                                "\"name\": \"Ana again (#N)\"}",
                                NULL, 0, NULL};
    printf("\nS2  Insert with a caller-chosen id; return the existing record only for that key\n");
    result res[NPROC];
    int n = race(dir, &same_id, res);
    tally t = count(res, n);
    printf("    %d processes inserted client \"c-7f3a\" at the same instant: %d created it, "
           "%d got the existing record back.\n",
           n, t.created, t.ok - t.created);
    if (t.created != 1 || t.ok != NPROC)
        unexpected("expected 1 created and %d answered", NPROC);
    expect_same(res, n, NULL, "\"c-7f3a\"");

    n = race(dir, &new_id, res);
    t = count(res, n);
    printf("    %d processes inserted new ids with the same email: %d got 409 conflict (%s, "
           "held by id %s), none got a record.\n",
           n, t.conflict, t.conflict_index, t.held_by);
    if (t.conflict != NPROC)
        unexpected("expected %d conflicts", NPROC);
    expect_same(res, n, "client.email", "\"c-7f3a\"");
    return 0;
}

static int scenario_s3(const char *dir)
{
    static const work w = {W_INSERT, "workflow", NULL,
                           "{\"workflow_name\": \"invoice-sync\", \"version\": 3, "
                           "\"execution_engine\": \"temporal\", "
                           "\"definition\": {\"steps\": [\"fetch\", \"post\"], \"by\": #N}}",
                           NULL, 0, NULL};
    result res[NPROC], bad;
    child_ctx c = {NULL, 0, 0, &bad, 0};
    int n = race(dir, &w, res);
    tally t = count(res, n);
    printf("\nS3  A duplicate is a conflict that says exactly what collided\n");
    printf("    %d processes registered workflow invoice-sync version 3 at the same instant: "
           "%d created (id %s), %d got 409 conflict\n",
           n, t.created, t.first_ok ? t.first_ok->key : "?", t.conflict);
    if (t.first_conflict)
        printf("    (%s: %s, held by id %s).\n", t.first_conflict->index,
               t.first_conflict->values, t.first_conflict->held_by);
    if (t.created != 1 || t.conflict != NPROC - 1)
        unexpected("expected 1 created and %d conflicts", NPROC - 1);
    expect_same(res, n, "workflow.name_version", t.first_ok ? t.first_ok->key : "");
    if (t.first_conflict &&
        strcmp(t.first_conflict->values, "(workflow_name, version)=(invoice-sync, 3)") != 0)
        unexpected("the conflict does not name both values: %s", t.first_conflict->values);

    memset(&bad, 0, sizeof bad);
    work wbad = {W_INSERT, "workflow", NULL,
                 "{\"workflow_name\": \"invoice-sync\", \"version\": 4, "
                 "\"execution_engine\": \"cron\", \"definition\": #N}",
                 NULL, 0, NULL};
    c.w = &wbad;
    udb_env *env = NULL;
    int rc;
    if ((rc = udb_open(&env, dir, NULL)) == 0)
        rc = udb_write(env, child_fn, &c);
    udb_close(env);
    printf("    An unknown execution_engine \"cron\" is refused (422): %s\n",
           bad.detail[0] ? bad.detail : udb_strerror(rc));
    if (rc != UDB_EBADRECORD)
        unexpected("expected an invalid-record error, got %s", udb_strerror(rc));
    else if (!strstr(bad.detail, "temporal") || !strstr(bad.detail, "execution_engine"))
        unexpected("the error does not name the field and the allowed values");
    return 0;
}

static int cancel_booking(const char *dir, const char *key)
{
    msgpack_sbuffer k;
    msgpack_sbuffer_init(&k);
    msgpack_sbuffer rec;
    msgpack_sbuffer_init(&rec);
    udb_env *env = NULL;
    char err[CLI_ERRLEN];
    int rc = cli_text_to_msgpack(&k, key, strlen(key), err) ||
                     cli_text_to_msgpack(&rec, "{\"status\": \"cancelled\"}", 23, err)
                 ? UDB_EBADRECORD
                 : udb_open(&env, dir, NULL);
    udb_txn *txn = NULL;
    if (rc == 0 && (rc = udb_begin(&txn, env, 0)) == 0) {
        rc = udb_update(NULL, txn, "booking", k.data, k.size, rec.data, rec.size, UDB_MERGE);
        if (rc == 0)
            rc = udb_commit(txn);
        else
            udb_abort(txn);
    }
    udb_close(env);
    msgpack_sbuffer_destroy(&k);
    msgpack_sbuffer_destroy(&rec);
    return rc;
}

static int scenario_s4(const char *dir)
{
    static const work book = {W_INSERT, "booking", NULL,
                              "{\"psychologist\": \"p1\", \"date\": \"2026-01-15\", "
                              "\"time\": \"10:00\", \"status\": \"pending\", "
                              "\"user\": \"user-#N\"}",
                              NULL, 0, NULL};
    static const char *const slots[] = {"10:00", "11:00", "12:00", "13:00", "14:00"};
    static const char *const cands[] = {
        "{\"psychologist\": \"p1\", \"date\": \"2026-01-15\", \"time\": \"10:00\", "
        "\"status\": \"confirmed\", \"user\": \"auto-#N\"}",
        "{\"psychologist\": \"p1\", \"date\": \"2026-01-15\", \"time\": \"11:00\", "
        "\"status\": \"confirmed\", \"user\": \"auto-#N\"}",
        "{\"psychologist\": \"p1\", \"date\": \"2026-01-15\", \"time\": \"12:00\", "
        "\"status\": \"confirmed\", \"user\": \"auto-#N\"}",
        "{\"psychologist\": \"p1\", \"date\": \"2026-01-15\", \"time\": \"13:00\", "
        "\"status\": \"confirmed\", \"user\": \"auto-#N\"}",
        "{\"psychologist\": \"p1\", \"date\": \"2026-01-15\", \"time\": \"14:00\", "
        "\"status\": \"confirmed\", \"user\": \"auto-#N\"}",
    };
    static const work first = {W_FIRST, "booking", NULL, NULL, cands, 5, NULL};
    printf("\nS4  Only one active booking per slot; cancelled ones free it\n");
    result res[NPROC];
    int n = race(dir, &book, res);
    tally t = count(res, n);
    printf("    %d processes booked psychologist p1 at 2026-01-15 10:00 at the same instant: "
           "%d booked, %d got 409 conflict (%s, held by id %s)\n",
           n, t.ok, t.conflict, t.conflict_index, t.held_by);
    if (t.ok != 1 || t.conflict != NPROC - 1)
        unexpected("expected 1 booked and %d conflicts", NPROC - 1);
    expect_same(res, n, "booking.active_slot", t.first_ok ? t.first_ok->key : "");
    char first_key[64] = "?";
    if (t.first_ok)
        snprintf(first_key, sizeof first_key, "%s", t.first_ok->key);

    int rc = cancel_booking(dir, first_key);
    printf("    Booking %s cancelled: the slot is free again.\n", first_key);
    if (rc)
        unexpected("cancel failed: %s", udb_strerror(rc));

    n = race(dir, &book, res);
    t = count(res, n);
    printf("    %d processes booked it again: %d booked (id %s), %d got 409 conflict (held by id "
           "%s); booking %s stays stored, cancelled.\n",
           n, t.ok, t.first_ok ? t.first_ok->key : "?", t.conflict, t.held_by, first_key);
    if (t.ok != 1 || t.conflict != NPROC - 1)
        unexpected("expected 1 booked and %d conflicts", NPROC - 1);
    expect_same(res, n, "booking.active_slot", t.first_ok ? t.first_ok->key : "");

    n = race(dir, &first, res);
    t = count(res, n);
    printf("    %d processes auto-booked the first free of 10:00 .. 14:00 at the same instant: "
           "%d booked (",
           n, t.ok);
    int i, taken[5] = {0};
    for (i = 0; i < n; i++)
        if (res[i].rc == 0 && res[i].chosen < 5)
            taken[res[i].chosen]++;
    for (i = 0, rc = 0; i < 5; i++)
        if (taken[i])
            printf("%s%s", rc++ ? ", " : "", slots[i]);
    printf("), %d got 409: every candidate taken.\n", t.conflict);
    if (t.ok != 4 || t.conflict != NPROC - 4 || taken[0] || taken[1] != 1 || taken[2] != 1 ||
        taken[3] != 1 || taken[4] != 1)
        unexpected("expected 11:00, 12:00, 13:00 and 14:00 taken once each, 4 conflicts");
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int scenario_s5(const char *dir)
{
    char day[16];
    time_t now = time(NULL);
    struct tm tm;
    work w = {W_CASES, "case", NULL, NULL, NULL, 0, day};
    localtime_r(&now, &tm);
    strftime(day, sizeof day, "%Y%m%d", &tm);
    result res[NPROC];
    int n = race(dir, &w, res);
    count(res, n);
    uint64_t nums[NPROC * S5_PER_PROC];
    int i, total = 0, aborted = 0;
    for (i = 0; i < n; i++) {
        aborted += res[i].naborted;
        for (int j = 0; j < res[i].ncases && total < NPROC * S5_PER_PROC; j++)
            nums[total++] = res[i].cases[j];
    }
    qsort(nums, (size_t)total, sizeof nums[0], cmp_u64);
    int gapless = 1;
    for (i = 0; i < total; i++)
        if (nums[i] != (uint64_t)i + 1)
            gapless = 0;
    printf("\nS5  Collision-free case numbers from an atomic sequence\n");
    printf("    %d processes opened %d cases each at the same time, %d transactions rolled back "
           "on purpose after taking a number:\n",
           n, S5_PER_PROC, aborted);
    printf("    %d cases, CASE-%s-000001 .. CASE-%s-%06d: %s\n", total, day, day, total,
           gapless ? "all distinct, no gaps" : "NOT gapless");
    if (!gapless || total != NPROC * S5_PER_PROC)
        unexpected("expected %d distinct case numbers 1..%d", NPROC * S5_PER_PROC,
                   NPROC * S5_PER_PROC);
    return 0;
}

static void print_problem(const char *problem, void *ctx)
{
    (void)ctx;
    printf("    problem: %s\n", problem);
}

static int finish(const char *dir)
{
    const char *const *types;
    udb_env *env = NULL;
    int rc;
    if ((rc = udb_open(&env, dir, NULL)) != 0)
        return cli_fail_rc(rc, udb_env_errmsg(NULL), NULL, dir);
    printf("\n");
    size_t problems = 0;
    rc = udb_check(&problems, env, print_problem, NULL);
    size_t ntypes;
    udb_txn *txn = NULL;
    size_t i;
    if (rc == 0) {
        uint64_t recs = 0, entries = 0;
        if (udb_begin(&txn, env, UDB_RDONLY) == 0 && udb_types(&types, &ntypes, txn) == 0) {
            for (i = 0; i < ntypes; i++) {
                udb_type_stat st;
                if (udb_type_stat_get(&st, txn, types[i]) == 0) {
                    recs += st.records;
                    entries += st.index_entries;
                }
            }
        }
        udb_abort(txn);
        txn = NULL;
        if (cli_is_url(dir)) /* index entries are LMDB's; the server's are checked by the catalog */
            printf("check: ok (%" PRIu64 " records, every one verified; tables and indexes match "
                   "the schema)\n", recs);
        else
            printf("check: ok (%" PRIu64 " records, %" PRIu64 " index entries, every one "
                   "verified)\n", recs, entries);
    } else {
        printf("check: %zu problems (%s)\n", problems, udb_strerror(rc));
        failures++;
    }
    printf("\nA few records, as `uniqdb dump %s` prints them:\n", cli_shown(dir));
    fflush(stdout);
    rc = udb_begin(&txn, env, UDB_RDONLY);
    if (rc == 0)
        rc = udb_types(&types, &ntypes, txn);
    int ex = rc ? cli_fail_rc(rc, udb_env_errmsg(env), NULL, dir) : CLI_OK;
    uint64_t written, damaged;
    for (i = 0; ex == CLI_OK && i < ntypes; i++) /* one record of each type */
        ex = cli_dump_records(txn, types[i], 1, UINT64_MAX, &written, &damaged);
    udb_abort(txn);
    udb_close(env);
    return ex;
}

/* Create dir (or accept an empty one), or make a fresh temporary one. */
static int make_dir(char *out, size_t outlen, const char *dir)
{
    if (!dir) {
        if (sup_mkdtemp(out, outlen, "uniqdb-demo-") != 0)
            return cli_fail(CLI_EFAIL, NULL, "a temporary directory: %s", strerror(errno));
        return CLI_OK;
    }
    if (strlen(dir) >= outlen)
        return cli_fail(CLI_EUSAGE, NULL, "%.64s...: longer than %zu bytes", dir, outlen - 1);
    snprintf(out, outlen, "%s", dir);
    if (cli_is_url(dir)) {
        /* a database on a server: the same refusal of one that holds data */
        int has, ex = cli_url_has_db(&has, dir);
        if (ex == CLI_OK && has)
            ex = cli_fail(CLI_EFAIL, NULL, "%s already holds a database; give a URL naming a "
                          "new or empty schema (?schema=NAME)", dir);
        return ex;
    }
    if (mkdir(dir, 0750) != 0) {
        if (errno != EEXIST)
            return cli_fail(CLI_EFAIL, NULL, "%s: %s", dir, strerror(errno));
        char *data = NULL;
        if (asprintf(&data, "%s/" UDB_DATA_FILE, dir) < 0)
            return cli_fail(CLI_EFAIL, NULL, "out of memory");
        struct stat st;
        int exists = stat(data, &st) == 0;
        free(data);
        if (exists)
            return cli_fail(CLI_EFAIL, NULL,
                            "%s already holds a database; give a new or empty directory", dir);
    }
    return CLI_OK;
}

int cli_cmd_demo(int argc, char **argv)
{
    int first, ex;
    if ((ex = cli_simple_options(argc, argv, &first)) >= 0)
        return ex;
    if (argc - first > 1)
        return cli_usage("demo", "expected [DIR]");
    char dir[4096];
    if ((ex = make_dir(dir, sizeof dir, argc - first == 1 ? argv[first] : NULL)) != CLI_OK)
        return ex;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    udb_env *env = NULL;
    int rc;
    if ((rc = udb_open(&env, dir, NULL)) != 0)
        return cli_fail_rc(rc, udb_env_errmsg(NULL), NULL, dir);
    rc = udb_schema_apply(NULL, env, CLI_SCENARIOS_JSON, strlen(CLI_SCENARIOS_JSON), 0);
    if (rc) {
        ex = cli_fail_rc(rc, udb_env_errmsg(env), NULL, "scenarios schema");
        udb_close(env);
        return ex;
    }
    udb_close(env); /* the parent holds no environment while children run */
    printf("uniqdb demo: a database %s %s with the scenarios' schema (5 record types).\n"
           "Each race below starts %d real processes, released at the same instant.\n\n",
           cli_is_url(dir) ? "at" : "in", cli_shown(dir), NPROC);

    scenario_s1(dir);
    scenario_s2(dir);
    scenario_s3(dir);
    scenario_s4(dir);
    scenario_s5(dir);
    if ((ex = finish(dir)) != CLI_OK)
        return ex;
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("\n%s in %.1f s.  Look around:\n"
           "    uniqdb dump %s | jq .\n"
           "    uniqdb stat %s\n"
           "    uniqdb put %s booking '{\"psychologist\": \"p1\", \"date\": \"2026-01-15\", "
           "\"time\": \"11:00\", \"status\": \"pending\"}'\n",
           failures ? "FAILED" : "Done",
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
           cli_shown(dir), cli_shown(dir), cli_shown(dir));
    if (failures) {
        fprintf(stderr, "uniqdb demo: %d expectation%s failed\n", failures,
                failures == 1 ? "" : "s");
        return CLI_EFAIL;
    }
    return CLI_OK;
}
