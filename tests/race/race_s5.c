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

static int mode_of(int w, int r)
{
    int m = (w + r) % NMODES;
    return m > WRITE_COMMIT ? WRITE_COMMIT : m;
}

static int committed(int mode)
{
    return mode == DIRECT_COMMIT || mode == WRITE_COMMIT;
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
    char number[32];
    race_buf rec;
    udb_val out = {NULL, 0};
    uint64_t n = 0;
    int rc = udb_seq_next(&n, txn, SEQ);

    if (rc != 0)
        return rc;
    o->num = n;
    case_number(number, sizeof number, n);
    race_pack(&rec, RACE_MAP, "ssi", "case_number", number, "caller", a->caller,
              "opened_at", 1759140000LL);
    rc = udb_insert(&out, txn, TYPE, rec.data, rec.len);
    if (rc != 0)
        return rc;
    race_take_record(o, &out, "id", "case_number");
    return a->fail ? -1 : 0;
}

static int worker(race_ctx *c)
{
    for (int r = 0; r < c->spec->rounds; r++) {
        race_outcome *o = race_at(c, r, 0, c->writer);
        int mode = mode_of(c->writer, r);
        case_arg a = {.fail = mode == FN_FAILS};

        snprintf(a.caller, sizeof a.caller, "w%d-r%d", c->writer, r);
        race_sync(c);
        if (mode == DIRECT_ABORT || mode == DIRECT_COMMIT)
            race_direct(c->env, op_open_case, &a, o, mode == DIRECT_COMMIT);
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
    char number[RACE_TEXT], id[RACE_TEXT];

    if (s->n == s->cap)
        return -1;
    race_field_text(number, sizeof number, rec->data, rec->size, "case_number");
    race_field_text(id, sizeof id, rec->data, rec->size, "id");
    s->numbers[s->n] = strncmp(number, "\"CASE-20250929-", 15) == 0
                       ? strtoull(number + 15, NULL, 10) : 0;
    s->ids[s->n] = strtoull(id, NULL, 10);
    s->n++;
    return 0;
}

static int verify_outcomes(const race_ctx *c, uint64_t *taken, size_t *n)
{
    char want[RACE_TEXT], number[32];
    race_buf key;
    int fails = 0;

    *n = 0;
    for (int r = 0; r < c->spec->rounds; r++) {
        for (int w = 0; w < c->nwriters; w++) {
            const race_outcome *o = race_at(c, r, 0, w);
            int mode = mode_of(w, r);

            case_number(number, sizeof number, o->num);
            snprintf(want, sizeof want, "\"%s\"", number);
            if (race_expect_rc(c, o, mode == FN_FAILS ? -1 : 0, "open a case") != 0) {
                fails++;
            } else if (strcmp(o->field, want) != 0) {
                fails += race_bad(c, o, "stored case_number %s, want %s", o->field, want);
            } else if (committed(mode)) {
                taken[(*n)++] = o->num;
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
    uint64_t *taken = calloc(max, sizeof *taken), seq = 0;
    stored s = {calloc(max, sizeof(uint64_t)), calloc(max, sizeof(uint64_t)), 0, max};
    int rc, fails = 0;

    if (taken == NULL || s.numbers == NULL || s.ids == NULL) {
        fails = race_bad(c, NULL, "out of memory");
        goto out;
    }
    fails += verify_outcomes(c, taken, &n);
    fails += race_gapless(c, taken, n, "committed case numbers");
    if (race_scan(&count, c->txn, TYPE, NULL, NULL, collect, &s) != 0 || s.n != n) {
        fails += race_bad(c, NULL, "%zu case records, want %zu", s.n, n);
        goto out;
    }
    fails += race_gapless(c, s.numbers, s.n, "stored case numbers");
    fails += race_gapless(c, s.ids, s.n, "stored auto ids");
    rc = udb_seq_get(&seq, c->txn, SEQ);
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
    static const race_spec spec = {
        .name = "race_s5", .nproc = 4, .nthreads = 4, .rounds = 60, .phases = 1,
        .flags = UDB_NOSYNC, .worker = worker, .verify = verify,
    };
    return race_main(argc, argv, &spec);
}
