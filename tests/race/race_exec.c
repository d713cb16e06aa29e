/*
 * race_exec.c -- S1 through udb_exec: get-or-create of several keys as one unit.
 *
 * In every round every writer (processes x threads; odd processes commit
 * alone, UDB_NOGROUP) runs one udb_exec() unit of KEYS insert_or_get ops on
 * the same KEYS (scheduleId, doctorName) pairs of schedule_workflow, each
 * writer taking them in its own order and with its own "state".  For each
 * key: exactly one record, created by exactly one writer; every writer's
 * result is that record (same primary key, the creator's state: nothing
 * overwritten).  Default sync flags, so the durable commit path races too.
 *
 * Negative control: `race_exec SCHEMA --plain-insert` runs UDB_OP_INSERT
 * instead (every writer but the first gets a conflict, and its unit writes
 * nothing); the verification must fail (the race suite expects it to).
 */
#include <stdio.h>
#include <string.h>

#include "harness.h"

static const char TYPE[] = "schedule_workflow";
static const char INDEX[] = "schedule_doctor";

enum { KEYS = 3 };

static int plain_insert;   /* the negative control */

static void names(char sched[32], char doctor[32], int round, int k)
{
    snprintf(sched, 32, "sched-%d", round);
    snprintf(doctor, 32, "Dr. %d", k);
}

static int worker(race_ctx *c)
{
    int fails = 0;
    for (int r = 0; r < c->spec->rounds; r++) {
        char state[32];
        snprintf(state, sizeof state, "w%d", c->writer);
        race_buf recs[KEYS];
        udb_op ops[KEYS];
        for (int i = 0; i < KEYS; i++) {
            int k = (i + c->writer) % KEYS;   /* each writer in its own order */
            char sched[32], doctor[32];
            names(sched, doctor, r, k);
            fails += race_pack(&recs[i], RACE_MAP, "sss", "scheduleId", sched, "doctorName",
                               doctor, "state", state) != 0;
            ops[i] = (udb_op)UDB_OP_INIT;
            ops[i].kind = plain_insert ? UDB_OP_INSERT : UDB_OP_INSERT_OR_GET;
            ops[i].type = TYPE;
            ops[i].index = plain_insert ? NULL : INDEX;
            ops[i].rec.data = recs[i].data;
            ops[i].rec.size = recs[i].len;
        }
        race_sync(c);
        udb_results *res = NULL;
        int rc = udb_exec(&res, c->env, ops, KEYS);
        for (int i = 0; i < KEYS; i++) {
            race_outcome *o = race_at(c, r, (i + c->writer) % KEYS, c->writer);
            const udb_result *u = udb_result_at(res, (size_t)i);
            memset(o, 0, sizeof *o);
            o->done = 1;
            o->rc = rc;
            if (rc != 0) {
                snprintf(o->errmsg, sizeof o->errmsg, "%s", udb_env_errmsg(c->env));
                continue;
            }
            o->created = u->created;
            race_take_record(o, &u->record, "id", "state");
        }
        udb_results_free(res);
    }
    return fails;
}

static int verify(race_ctx *c)
{
    int fails = 0;
    for (int r = 0; r < c->spec->rounds; r++) {
        for (int k = 0; k < KEYS; k++) {
            char sched[32], doctor[32];
            names(sched, doctor, r, k);
            race_buf key;
            race_pack(&key, RACE_ARRAY, "ss", sched, doctor);
            fails += race_expect_one_creator(c, r, k, "udb_exec insert_or_get", TYPE, INDEX, &key);
        }
    }
    fails += race_expect_count(c, TYPE, NULL, NULL, (size_t)c->spec->rounds * KEYS);
    return fails;
}

int main(int argc, char **argv)
{
    static const race_spec spec = {
        .name = "race_exec", .nproc = 4, .nthreads = 4, .rounds = 40, .phases = KEYS,
        .flags = 0, .worker = worker, .verify = verify,
    };
    static const char *const flags[] = {"--plain-insert", NULL};
    plain_insert = race_flags(argc, argv, flags);
    if (plain_insert < 0)
        return 2;
    return race_main(argc, argv, &spec);
}
