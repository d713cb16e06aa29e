/*
 * race_s1.c -- S1: get-or-create on a compound unique key.
 *
 * In every round all writers call udb_insert_or_get() on the same
 * (scheduleId, doctorName) of schedule_workflow, each with its own "state".
 * Exactly one record per round; every caller got that record (same primary
 * key, and the creator's state: nothing overwritten); exactly one created it.
 * This test keeps the default sync flags so the durable commit path races too.
 *
 * `race_s1 SCHEMA --exec`: the same race and verification, each call a
 * udb_exec() unit of one UDB_OP_INSERT_OR_GET, from processes that all group
 * their commits, so units are shipped to another process's leader (the run
 * fails unless some are).
 * Negative control: `--exec --plain-insert` runs UDB_OP_INSERT instead: every
 * writer but the first gets a conflict, which the verification must catch.
 */
#include <stdio.h>
#include <string.h>

#include "harness.h"

static const char TYPE[] = "schedule_workflow";
static const char INDEX[] = "schedule_doctor";

enum { EXEC = RACE_EXEC, PLAIN_INSERT = RACE_CONTROL };
static int mode;

/* The pair all writers race on in a round. */
static void names(char sched[32], char doctor[32], int round)
{
    snprintf(sched, 32, "sched-%d", round);
    snprintf(doctor, 32, "Dr. %d", round % 7);
}

static int worker(race_ctx *c)
{
    race_rec_arg a = {.type = TYPE, .index = INDEX, .keyfield = "id", .field = "state"};
    int fails = 0;
    for (int r = 0; r < c->spec->rounds; r++) {
        char sched[32], doctor[32];
        names(sched, doctor, r);
        char state[32];
        snprintf(state, sizeof state, "w%d", c->writer);
        fails += race_pack(&a.rec, RACE_MAP, "sss", "scheduleId", sched, "doctorName", doctor,
                           "state", state) != 0;
        race_sync(c);
        if (mode == 0) {
            race_write(c->env, race_op_insert_or_get, &a, race_at(c, r, 0, c->writer));
            continue;
        }
        udb_op op = race_op_of(mode & PLAIN_INSERT ? UDB_OP_INSERT : UDB_OP_INSERT_OR_GET, TYPE,
                               &a.rec);
        op.index = mode & PLAIN_INSERT ? NULL : INDEX;
        race_exec(c->env, &op, 1, 0, a.keyfield, a.field, race_at(c, r, 0, c->writer));
    }
    return fails;
}

static int verify(race_ctx *c)
{
    int fails = 0;
    for (int r = 0; r < c->spec->rounds; r++) {
        char sched[32], doctor[32];
        names(sched, doctor, r);
        race_buf key;
        race_pack(&key, RACE_ARRAY, "ss", sched, doctor);
        fails += race_expect_one_creator(c, r, 0, "insert_or_get", TYPE, INDEX, &key);
    }
    fails += race_expect_count(c, TYPE, NULL, NULL, (size_t)c->spec->rounds);
    return fails;
}

int main(int argc, char **argv)
{
    race_spec spec = {
        .name = "race_s1", .nproc = 4, .nthreads = 4, .rounds = 50, .phases = 1,
        .flags = 0, .worker = worker, .verify = verify,
    };
    return race_main_modes(argc, argv, &spec, "--plain-insert", &mode);
}
