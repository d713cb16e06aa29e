/*
 * race_s5.c -- S5: collision-free, gapless case numbers from a sequence.
 *
 * Every writer, every round, takes n = udb_seq_next("case:20250929") and
 * inserts a case numbered CASE-20250929-<n, 6 digits> in the same
 * transaction.  Some transactions are abandoned on purpose after taking the
 * number and inserting: by fn returning -1 inside udb_write(), or by
 * udb_abort() of a transaction of its own.  Afterwards the committed numbers
 * are exactly 1..N, the records agree, the sequence stands at N, and the
 * unique index on case_number never fired.
 *
 * `race_s5 SCHEMA --exec`: the same race as udb_exec() units, from processes
 * that all group their commits, so units are shipped to another process's
 * leader (the run fails unless some are).  A unit cannot format a number
 * into a string, so its closest declarative form differs: the unit is
 * [UDB_OP_SEQ_NEXT "case:20250929", UDB_OP_INSERT of the case with seq_field
 * "id" fed by op 0] -- the number is the case's primary key, and case_number
 * (required, unique) holds "CASE-20250929-" and the caller's own tag, since
 * the number is not known when the unit is built.  A unit is abandoned after
 * taking the number and inserting by a third op that fails: a UDB_OP_DELETE
 * of a case that does not exist (UDB_ENOTFOUND, for fn returning -1), or a
 * UDB_OP_INSERT of a case without case_number (UDB_EBADRECORD, for
 * udb_abort).  The verification is the same, read through the key: the
 * committed numbers are exactly 1..N, each is the key of the case holding
 * its caller's case_number, the stored keys are exactly 1..N, the sequence
 * stands at N, an abandoned unit failed at its last op, and no unit ever
 * met a conflict.
 * Negative control: `--exec --split` takes the number in a unit of its own
 * ([UDB_OP_SEQ_NEXT]) and inserts the case, with that key, in a second
 * unit: an abandoned second unit no longer gives its number back, and the
 * verification must catch the gaps.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static const char TYPE[] = "case";
static const char SEQ[] = "case:20250929";

/* How writer w ends its transaction in round r. */
enum { FN_FAILS, DIRECT_ABORT, DIRECT_COMMIT, WRITE_COMMIT, NMODES = 5 };

enum { EXEC = RACE_EXEC, SPLIT = RACE_CONTROL };
static int mode;

static int mode_of(int w, int r)
{
    int m = (w + r) % NMODES;
    return m > WRITE_COMMIT ? WRITE_COMMIT : m;
}

static int committed(int how)
{
    return how == DIRECT_COMMIT || how == WRITE_COMMIT;
}

static void case_number(char *out, size_t cap, uint64_t n)
{
    snprintf(out, cap, "CASE-20250929-%06" PRIu64, n);
}

typedef struct case_arg {
    int fail;
    char caller[32];
} case_arg;

static int op_open_case(udb_txn *txn, race_outcome *o, const void *arg)
{
    const case_arg *a = arg;
    uint64_t n = 0;
    int rc = udb_seq_next(&n, txn, SEQ);
    if (rc != 0)
        return rc;
    o->num = n;
    char number[32];
    case_number(number, sizeof number, n);
    race_buf rec;
    race_pack(&rec, RACE_MAP, "ssi", "case_number", number, "caller", a->caller,
              "opened_at", 1759140000LL);
    udb_val out = {NULL, 0};
    rc = udb_insert(&out, txn, TYPE, rec.data, rec.len);
    if (rc != 0)
        return rc;
    race_take_record(o, &out, "id", "case_number");
    return a->fail ? -1 : 0;
}

/* The case_number of exec mode: the caller's tag, not the number. */
static void exec_case_number(char *out, size_t cap, const char *caller)
{
    snprintf(out, cap, "CASE-20250929-%s", caller);
}

/* Open a case in udb_exec units (see the top of the file), ending as `how`. */
static void exec_open_case(race_ctx *c, const case_arg *a, int how, race_outcome *o)
{
    char number[64];
    exec_case_number(number, sizeof number, a->caller);
    race_buf rec;
    race_pack(&rec, RACE_MAP, "ssi", "case_number", number, "caller", a->caller,
              "opened_at", 1759140000LL);
    udb_op ops[3];
    size_t n = 0;
    ops[n] = race_op_of(UDB_OP_SEQ_NEXT, NULL, NULL);
    ops[n++].seq = SEQ;
    uint64_t split_num = 0;
    if (mode & SPLIT) {
        /* the control: the number is taken, and committed, in a unit of its own */
        race_outcome first;
        race_exec(c->env, ops, n, 0, "id", NULL, &first);
        split_num = first.num;
        n = 0;
        race_pack(&rec, RACE_MAP, "ussi", "id", (unsigned long long)split_num, "case_number",
                  number, "caller", a->caller, "opened_at", 1759140000LL);
    }
    size_t at = n;
    ops[n] = race_op_of(UDB_OP_INSERT, TYPE, &rec);
    if (!(mode & SPLIT)) {
        ops[n].seq_field = "id";
        ops[n].seq_op = 0;
    }
    n++;
    race_buf missing, bad;
    race_pack(&missing, RACE_VALUE, "u", ~0ULL);
    race_pack(&bad, RACE_MAP, "s", "caller", a->caller);
    if (how == FN_FAILS) {
        ops[n] = race_op_of(UDB_OP_DELETE, TYPE, NULL);
        ops[n++].key = (udb_val){missing.data, missing.len};
    } else if (how == DIRECT_ABORT) {
        ops[n++] = race_op_of(UDB_OP_INSERT, TYPE, &bad);
    }
    race_exec(c->env, ops, n, at, "id", "case_number", o);
    if (mode & SPLIT)
        o->num = split_num;
}

static int worker(race_ctx *c)
{
    for (int r = 0; r < c->spec->rounds; r++) {
        race_outcome *o = race_at(c, r, 0, c->writer);
        int how = mode_of(c->writer, r);
        case_arg a = {.fail = how == FN_FAILS};
        snprintf(a.caller, sizeof a.caller, "w%d-r%d", c->writer, r);
        race_sync(c);
        if (mode != 0)
            exec_open_case(c, &a, how, o);
        else if (how == DIRECT_ABORT || how == DIRECT_COMMIT)
            race_direct(c->env, op_open_case, &a, o, how == DIRECT_COMMIT);
        else
            race_write(c->env, op_open_case, &a, o);
    }
    return 0;
}

typedef struct stored {
    uint64_t *numbers, *ids;
    size_t n, cap;
} stored;

static int collect(void *ctx, const udb_val *rec)
{
    stored *s = ctx;
    if (s->n == s->cap)
        return -1;
    char number[RACE_TEXT], id[RACE_TEXT];
    race_field_text(number, sizeof number, rec->data, rec->size, "case_number");
    race_field_text(id, sizeof id, rec->data, rec->size, "id");
    s->ids[s->n] = strtoull(id, NULL, 10);
    if (mode != 0) {
        /* exec mode: the number is the key; case_number must be its caller's */
        char caller[RACE_TEXT], want[RACE_TEXT + 32];
        race_field_text(caller, sizeof caller, rec->data, rec->size, "caller");
        snprintf(want, sizeof want, "\"CASE-20250929-%s", caller[0] ? caller + 1 : "");
        s->numbers[s->n] = strcmp(number, want) == 0 ? s->ids[s->n] : 0;
        s->n++;
        return 0;
    }
    s->numbers[s->n] = strncmp(number, "\"CASE-20250929-", 15) == 0
                       ? strtoull(number + 15, NULL, 10) : 0;
    s->n++;
    return 0;
}

/* Exec mode: writer w's unit of round r (see the top of the file). */
static int verify_exec_outcome(const race_ctx *c, int w, int r, uint64_t *taken, size_t *n)
{
    const race_outcome *o = race_at(c, r, 0, w);
    int how = mode_of(w, r);
    int want_rc = how == FN_FAILS ? UDB_ENOTFOUND : how == DIRECT_ABORT ? UDB_EBADRECORD : 0;
    if (race_expect_rc(c, o, want_rc, "open a case") != 0)
        return 1;
    if (want_rc != 0)
        return o->failed_op + 1 == o->nops ? 0 :
               race_bad(c, o, "the unit failed at op %zu, want its last op", o->failed_op);
    char caller[32], number[64], want[RACE_TEXT], key[32];
    snprintf(caller, sizeof caller, "w%d-r%d", w, r);
    exec_case_number(number, sizeof number, caller);
    snprintf(want, sizeof want, "\"%s\"", number);
    snprintf(key, sizeof key, "%" PRIu64, o->num);
    if (o->num == 0 || strcmp(o->key, key) != 0 || strcmp(o->field, want) != 0)
        return race_bad(c, o, "want the case keyed by the number it took (%s), case_number %s",
                        key, want);
    taken[(*n)++] = o->num;
    race_buf values;
    race_pack(&values, RACE_ARRAY, "s", number);
    return race_expect_find(c, TYPE, "case_number", &values, o->key);
}

static int verify_outcomes(const race_ctx *c, uint64_t *taken, size_t *n)
{
    int fails = 0;
    *n = 0;
    for (int r = 0; r < c->spec->rounds; r++) {
        for (int w = 0; w < c->nwriters; w++) {
            if (mode != 0) {
                fails += verify_exec_outcome(c, w, r, taken, n);
                continue;
            }
            const race_outcome *o = race_at(c, r, 0, w);
            int how = mode_of(w, r);
            char want[RACE_TEXT], number[32];
            case_number(number, sizeof number, o->num);
            snprintf(want, sizeof want, "\"%s\"", number);
            if (race_expect_rc(c, o, how == FN_FAILS ? -1 : 0, "open a case") != 0) {
                fails++;
            } else if (strcmp(o->field, want) != 0) {
                fails += race_bad(c, o, "stored case_number %s, want %s", o->field, want);
            } else if (committed(how)) {
                taken[(*n)++] = o->num;
                race_buf key;
                race_pack(&key, RACE_ARRAY, "s", number);
                fails += race_expect_find(c, TYPE, "case_number", &key, o->key);
            }
        }
    }
    return fails;
}

static int verify(race_ctx *c)
{
    size_t max = (size_t)c->spec->rounds * (size_t)c->nwriters, n = 0, count;
    uint64_t *taken = calloc(max, sizeof *taken);
    stored s = {calloc(max, sizeof(uint64_t)), calloc(max, sizeof(uint64_t)), 0, max};
    int fails = 0;
    if (taken == NULL || s.numbers == NULL || s.ids == NULL) {
        fails = race_bad(c, NULL, "out of memory");
        goto out;
    }
    fails += verify_outcomes(c, taken, &n);
    fails += race_gapless(c, taken, n, "committed case numbers");
    if (!race_scans()) {
        race_noscan(c, "the stored case numbers and keys");
    } else if (race_scan(&count, c->txn, TYPE, NULL, NULL, collect, &s) != 0 || s.n != n) {
        fails += race_bad(c, NULL, "%zu case records, want %zu", s.n, n);
        goto out;
    }
    fails += race_gapless(c, s.numbers, s.n, "stored case numbers");
    fails += race_gapless(c, s.ids, s.n, "stored auto ids");
    uint64_t seq = 0;
    int rc = udb_seq_get(&seq, c->txn, SEQ);
    if (rc != 0 || seq != n)
        fails += race_bad(c, NULL, "udb_seq_get(%s) = %" PRIu64 " (rc %d, %s), want %zu", SEQ,
                          seq, rc, udb_strerror(rc), n);
    printf("%s: %zu cases committed, %zu abandoned\n", c->spec->name, n, max - n);
out:
    free(taken);
    free(s.numbers);
    free(s.ids);
    return fails;
}

int main(int argc, char **argv)
{
    race_spec spec = {
        .name = "race_s5", .nproc = 4, .nthreads = 4, .rounds = 60, .phases = 1,
        .flags = UDB_NOSYNC, .worker = worker, .verify = verify,
    };
    return race_main_modes(argc, argv, &spec, "--split", &mode);
}
