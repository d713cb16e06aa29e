/*
 * race_s2.c -- S2: insert with a caller-chosen id; return the existing record
 * only for a conflict on that key.
 *
 * Each round, client "client-R" with email "cR@example.com":
 *   phase 0  all writers insert_or_get it by primary key: one record, all get it;
 *   phase 1  all insert_or_get (by primary key) a NEW id with the same email:
 *            UDB_ECONFLICT naming index "email" and the holder, never a record;
 *   phase 2  all insert_or_get a new id keyed on index "email": the existing
 *            record comes back, nothing is created.
 *
 * `race_s2 SCHEMA --exec`: the same race and verification, each call a
 * udb_exec() unit of one UDB_OP_INSERT_OR_GET, from processes that all group
 * their commits, so units are shipped to another process's leader (the run
 * fails unless some are).
 * Negative control: `--exec --upsert` runs UDB_OP_UPSERT instead, which
 * merges each caller's name into the existing client rather than returning
 * it untouched; the verification must catch the overwritten record.
 */
#include <stdio.h>
#include <string.h>

#include "harness.h"

static const char TYPE[] = "client";

enum { EXEC = RACE_EXEC, UPSERT = RACE_CONTROL };
static int mode;

static int worker(race_ctx *c)
{
    race_rec_arg a = {.type = TYPE, .keyfield = "id", .field = "name"};
    int fails = 0;
    char name[32];
    snprintf(name, sizeof name, "w%d", c->writer);
    for (int r = 0; r < c->spec->rounds; r++) {
        char email[64];
        snprintf(email, sizeof email, "c%d@example.com", r);
        for (int phase = 0; phase < 3; phase++) {
            char id[64];
            if (phase == 0)
                snprintf(id, sizeof id, "client-%d", r);
            else if (c->writer % 2 == 0)
                snprintf(id, sizeof id, "client-%d-alt%d", r, phase);  /* shared new id */
            else
                snprintf(id, sizeof id, "client-%d-w%d-%d", r, c->writer, phase);
            a.index = phase == 2 ? "email" : NULL;
            fails += race_pack(&a.rec, RACE_MAP, "sss", "id", id, "email", email, "name",
                               name) != 0;
            race_sync(c);
            if (mode == 0) {
                race_write(c->env, race_op_insert_or_get, &a, race_at(c, r, phase, c->writer));
                continue;
            }
            udb_op op = race_op_of(mode & UPSERT ? UDB_OP_UPSERT : UDB_OP_INSERT_OR_GET, TYPE,
                                   &a.rec);
            op.index = a.index;
            race_exec(c->env, &op, 1, 0, a.keyfield, a.field, race_at(c, r, phase, c->writer));
        }
    }
    return fails;
}

static int verify(race_ctx *c)
{
    int fails = 0;
    for (int r = 0; r < c->spec->rounds; r++) {
        const race_outcome *win = race_winner(c, r, 0, 1, NULL);
        if (win == NULL) {
            fails++;
            continue;
        }
        char id[64], email[64], values[RACE_TEXT];
        snprintf(id, sizeof id, "\"client-%d\"", r);
        snprintf(email, sizeof email, "c%d@example.com", r);
        snprintf(values, sizeof values, "[\"%s\"]", email);
        if (strcmp(win->key, id) != 0)
            fails += race_bad(c, win, "created record has key %s, want %s", win->key, id);
        for (int w = 0; w < c->nwriters; w++) {
            const race_outcome *o = race_at(c, r, 0, w);
            const race_outcome *other = race_at(c, r, 1, w);
            const race_outcome *byemail = race_at(c, r, 2, w);
            if (race_expect_rc(c, o, 0, "insert_or_get same id") != 0)
                fails++;
            else if (strcmp(o->key, id) != 0 || strcmp(o->field, win->field) != 0)
                fails += race_bad(c, o, "want the creator's record %s (name %s)", id, win->field);
            fails += race_expect_conflict(c, other, TYPE, "email", "email", values, id,
                                          "insert_or_get new id, same email");
            if (race_expect_rc(c, byemail, 0, "insert_or_get keyed on email") != 0)
                fails++;
            else if (byemail->created != 0 || strcmp(byemail->key, id) != 0)
                fails += race_bad(c, byemail, "want the existing record %s, created=0", id);
        }
        race_buf key;
        race_pack(&key, RACE_ARRAY, "s", email);
        fails += race_expect_find(c, TYPE, "email", &key, id);
    }
    fails += race_expect_count(c, TYPE, NULL, NULL, (size_t)c->spec->rounds);
    return fails;
}

int main(int argc, char **argv)
{
    race_spec spec = {
        .name = "race_s2", .nproc = 4, .nthreads = 4, .rounds = 40, .phases = 3,
        .flags = UDB_NOSYNC, .worker = worker, .verify = verify,
    };
    return race_main_modes(argc, argv, &spec, "--upsert", &mode);
}
