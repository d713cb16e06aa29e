/*
 * race_s4.c -- S4: one active booking per slot (partial unique index
 * "active_slot" over status IN (pending, confirmed)), and automatic booking.
 *
 * Each round:
 *   phase 0  all writers book slot psy-R 2025-10-01 10:00 (pending): one wins (A),
 *            the rest get UDB_ECONFLICT on active_slot naming A;
 *   phase 1  A cancels its booking (UDB_MERGE {"status": "cancelled"});
 *   phase 2  all book the slot again (confirmed): one new winner C;
 *   phase 3  A tries to re-activate its cancelled booking: UDB_ECONFLICT naming C;
 *   phase 4  all call udb_insert_first over the same K candidate slots, more
 *            writers than slots: K winners, each a distinct slot; the rest
 *            UDB_ECONFLICT.
 * Afterwards each slot holds exactly one active booking, the cancelled ones are
 * still stored, and the record counts are exact.
 *
 * `race_s4 SCHEMA --exec`: the same race and verification, each call a
 * udb_exec() unit of one op (UDB_OP_INSERT, UDB_OP_UPDATE with UDB_MERGE,
 * UDB_OP_INSERT_FIRST), from processes that all group their commits, so
 * units are shipped to another process's leader (the run fails unless some
 * are).
 * Negative control: `--exec --upsert` books (phases 0 and 2) with
 * UDB_OP_UPSERT keyed on active_slot: a taken slot's booking is taken over
 * instead of refused, and the verification must catch the extra winners.
 */
#include <stdio.h>
#include <string.h>

#include "harness.h"

#define K 10  /* candidate slots for insert_first; fewer than the writers */

static const char TYPE[] = "booking";
static const char INDEX[] = "active_slot";
static const char FIELDS[] = "psychologist,date,time";
static const char DAY[] = "2025-10-01";
static const char AUTO_DAY[] = "2025-11-01";

enum { EXEC = RACE_EXEC, UPSERT = RACE_CONTROL };
static int mode;

/* Run op (race_op_insert, _update or _insert_first, with a) through
 * udb_write, or the same as a udb_exec unit of one op. */
static void run(race_ctx *c, race_op fn, const race_rec_arg *a, race_outcome *o)
{
    if (mode == 0) {
        race_write(c->env, fn, a, o);
        return;
    }
    udb_op op = race_op_of(UDB_OP_INSERT, TYPE, &a->rec);
    if (fn == race_op_update) {
        op.kind = UDB_OP_UPDATE;
        op.key = (udb_val){a->key.data, a->key.len};
        op.flags = a->flags;
    } else if (fn == race_op_insert_first) {
        op = race_op_of(UDB_OP_INSERT_FIRST, TYPE, NULL);
        op.candidates = a->cands;
        op.ncandidates = a->ncands;
    } else if (mode & UPSERT) {
        op.kind = UDB_OP_UPSERT;
        op.index = INDEX;
    }
    race_exec(c->env, &op, 1, 0, a->keyfield, a->field, o);
}

static void slot_time(char out[8], int k)
{
    snprintf(out, 8, "09:%02d", k % 60);
}

static void book(race_ctx *c, race_rec_arg *a, int r, int phase, const char *status)
{
    char psy[32], user[32];
    snprintf(psy, sizeof psy, "psy-%d", r);
    snprintf(user, sizeof user, "w%d", c->writer);
    race_pack(&a->rec, RACE_MAP, "sssss", "psychologist", psy, "date", DAY, "time", "10:00",
              "status", status, "user", user);
    a->field = "user";
    race_sync(c);
    run(c, race_op_insert, a, race_at(c, r, phase, c->writer));
}

/* Only the phase-0 winner acts; everyone still meets at the barrier. */
static void set_status(race_ctx *c, race_rec_arg *a, int r, int phase, const char *status)
{
    const race_outcome *mine = race_at(c, r, 0, c->writer);
    race_pack(&a->key, RACE_VALUE, "u", (unsigned long long)mine->id);
    race_pack(&a->rec, RACE_MAP, "s", "status", status);
    a->field = "status";
    race_sync(c);
    if (mine->rc == 0)
        run(c, race_op_update, a, race_at(c, r, phase, c->writer));
}

static void book_first(race_ctx *c, race_rec_arg *a, int r)
{
    char psy[32], user[32];
    snprintf(psy, sizeof psy, "auto-%d", r);
    snprintf(user, sizeof user, "w%d", c->writer);
    race_buf cand[K];
    udb_val vals[K];
    for (int k = 0; k < K; k++) {
        char t[8];
        slot_time(t, k);
        race_pack(&cand[k], RACE_MAP, "sssss", "psychologist", psy, "date", AUTO_DAY, "time", t,
                  "status", "pending", "user", user);
        vals[k] = (udb_val){cand[k].data, cand[k].len};
    }
    a->cands = vals;
    a->ncands = K;
    a->field = "user";
    race_sync(c);
    run(c, race_op_insert_first, a, race_at(c, r, 4, c->writer));
}

static int worker(race_ctx *c)
{
    race_rec_arg a = {.type = TYPE, .keyfield = "id", .flags = UDB_MERGE};
    for (int r = 0; r < c->spec->rounds; r++) {
        book(c, &a, r, 0, "pending");
        set_status(c, &a, r, 1, "cancelled");
        book(c, &a, r, 2, "confirmed");
        set_status(c, &a, r, 3, "pending");
        book_first(c, &a, r);
    }
    return 0;
}

static void slot_values(char *out, size_t cap, const char *psy, const char *day, const char *t)
{
    snprintf(out, cap, "[\"%s\",\"%s\",\"%s\"]", psy, day, t);
}

/* Phases 0-3 of round r: one booking per race, A cancelled, C active. */
static int verify_slot(const race_ctx *c, int r)
{
    int wa, wc;
    const race_outcome *a = race_winner(c, r, 0, 0, &wa), *c2 = race_winner(c, r, 2, 0, &wc);
    if (a == NULL || c2 == NULL)
        return 1;
    char psy[32], values[RACE_TEXT];
    snprintf(psy, sizeof psy, "psy-%d", r);
    slot_values(values, sizeof values, psy, DAY, "10:00");
    int fails = 0;
    if (strcmp(a->key, c2->key) == 0)
        fails += race_bad(c, c2, "the re-booking reused key %s", a->key);
    for (int w = 0; w < c->nwriters; w++) {
        if (w != wa)
            fails += race_expect_conflict(c, race_at(c, r, 0, w), TYPE, INDEX, FIELDS, values,
                                          a->key, "book a taken slot");
        if (w != wc)
            fails += race_expect_conflict(c, race_at(c, r, 2, w), TYPE, INDEX, FIELDS, values,
                                          c2->key, "book a taken slot again");
    }
    if (race_expect_rc(c, race_at(c, r, 1, wa), 0, "cancel") == 0 &&
        strcmp(race_at(c, r, 1, wa)->field, "\"cancelled\"") != 0)
        fails += race_bad(c, race_at(c, r, 1, wa), "want status \"cancelled\"");
    fails += race_expect_conflict(c, race_at(c, r, 3, wa), TYPE, INDEX, FIELDS, values, c2->key,
                                  "re-activate a cancelled booking");
    race_buf key;
    race_pack(&key, RACE_ARRAY, "sss", psy, DAY, "10:00");
    fails += race_expect_find(c, TYPE, INDEX, &key, c2->key);
    fails += race_expect_count(c, TYPE, INDEX, &key, 1);
    return fails;
}

/* Phase 4 of round r: K winners on K distinct slots; the rest conflict, with
 * the detail of the last candidate. */
static int verify_first(const race_ctx *c, int r)
{
    int owner[K];
    for (int k = 0; k < K; k++)
        owner[k] = -1;
    int winners = 0, fails = 0;
    for (int w = 0; w < c->nwriters; w++) {
        const race_outcome *o = race_at(c, r, 4, w);
        char user[32];
        snprintf(user, sizeof user, "\"w%d\"", w);
        if (o->rc != 0)
            continue;
        if (o->chosen >= K || owner[o->chosen] >= 0 || strcmp(o->field, user) != 0) {
            fails += race_bad(c, o, "insert_first: want a free slot of its own, user %s", user);
            continue;
        }
        owner[o->chosen] = w;
        winners++;
    }
    if (winners != K)
        return fails + race_bad(c, NULL, "round %d: insert_first had %d winners, want %d", r,
                                winners, K);
    char psy[32], t[8], values[RACE_TEXT];
    snprintf(psy, sizeof psy, "auto-%d", r);
    slot_time(t, K - 1);
    slot_values(values, sizeof values, psy, AUTO_DAY, t);
    for (int w = 0; w < c->nwriters; w++)
        if (race_at(c, r, 4, w)->rc != 0)
            fails += race_expect_conflict(c, race_at(c, r, 4, w), TYPE, INDEX, FIELDS, values,
                                          race_at(c, r, 4, owner[K - 1])->key,
                                          "insert_first with every slot taken");
    for (int k = 0; k < K; k++) {
        slot_time(t, k);
        race_buf key;
        race_pack(&key, RACE_ARRAY, "sss", psy, AUTO_DAY, t);
        fails += race_expect_find(c, TYPE, INDEX, &key, race_at(c, r, 4, owner[k])->key);
    }
    return fails;
}

static int count_cancelled(void *ctx, const udb_val *rec)
{
    char status[RACE_TEXT];
    race_field_text(status, sizeof status, rec->data, rec->size, "status");
    if (strcmp(status, "\"cancelled\"") == 0)
        ++*(size_t *)ctx;
    return 0;
}

static int verify(race_ctx *c)
{
    int fails = 0;
    for (int r = 0; r < c->spec->rounds; r++)
        fails += verify_slot(c, r) + verify_first(c, r);
    size_t rounds = (size_t)c->spec->rounds, n, cancelled = 0;
    if (!race_scans()) {
        race_noscan(c, "the number of bookings and of cancelled ones");
        return fails;
    }
    if (race_scan(&n, c->txn, TYPE, NULL, NULL, count_cancelled, &cancelled) != 0)
        return fails + 1;
    if (n != rounds * (2 + K) || cancelled != rounds)
        fails += race_bad(c, NULL, "%zu bookings (%zu cancelled), want %zu (%zu cancelled)", n,
                          cancelled, rounds * (2 + K), rounds);
    fails += race_expect_count(c, TYPE, INDEX, NULL, rounds * (1 + K));
    return fails;
}

int main(int argc, char **argv)
{
    race_spec spec = {
        .name = "race_s4", .nproc = 4, .nthreads = 4, .rounds = 30, .phases = 5,
        .flags = UDB_NOSYNC, .worker = worker, .verify = verify,
    };
    return race_main_modes(argc, argv, &spec, "--upsert", &mode);
}
