/*
 * race_s3.c -- S3: a duplicate is a conflict with exact detail, not a crash.
 *
 * Each round all writers udb_insert() the same (workflow_name, version):
 * exactly one succeeds; every other gets UDB_ECONFLICT whose detail names
 * type "workflow", index "name_version", its fields, both colliding values
 * and the winner's primary key -- enough for an RFC 9457 409 body.  Then each
 * writer inserts an unknown execution_engine: UDB_EBADRECORD, and the message
 * names the field and the allowed values.
 *
 * `race_s3 SCHEMA --exec`: the same race and verification, each call a
 * udb_exec() unit of one UDB_OP_INSERT (the detail read from the failed op's
 * udb_result), from processes that all group their commits, so units are
 * shipped to another process's leader (the run fails unless some are).
 * Negative control: `--exec --insert-or-get` runs UDB_OP_INSERT_OR_GET on
 * name_version instead: duplicates get the stored workflow back instead of a
 * conflict, and the verification must catch the missing 409s.
 */
#include <stdio.h>
#include <string.h>

#include "harness.h"

static const char TYPE[] = "workflow";
static const char *const ENGINES[] = {"temporal", "airflow", "argo"};

enum { EXEC = RACE_EXEC, INSERT_OR_GET = RACE_CONTROL };
static int mode;

/* One insert, through udb_write or as a udb_exec unit. */
static void insert(race_ctx *c, const race_rec_arg *a, race_outcome *o)
{
    if (mode == 0) {
        race_write(c->env, race_op_insert, a, o);
        return;
    }
    udb_op op = race_op_of(mode & INSERT_OR_GET ? UDB_OP_INSERT_OR_GET : UDB_OP_INSERT, TYPE,
                           &a->rec);
    op.index = mode & INSERT_OR_GET ? "name_version" : NULL;
    race_exec(c->env, &op, 1, 0, a->keyfield, a->field, o);
}

static int worker(race_ctx *c)
{
    race_rec_arg a = {.type = TYPE, .keyfield = "id", .field = "execution_engine"};
    int fails = 0;
    for (int r = 0; r < c->spec->rounds; r++) {
        char name[64];
        snprintf(name, sizeof name, "wf-%d", r);
        fails += race_pack(&a.rec, RACE_MAP, "siss", "workflow_name", name, "version",
                           (long long)(r % 3 + 1), "execution_engine",
                           ENGINES[c->writer % 3], "definition", name) != 0;
        race_sync(c);
        insert(c, &a, race_at(c, r, 0, c->writer));

        snprintf(name, sizeof name, "wf-bad-%d-%d", r, c->writer);
        fails += race_pack(&a.rec, RACE_MAP, "sis", "workflow_name", name, "version", 1LL,
                           "execution_engine", "spark") != 0;
        insert(c, &a, race_at(c, r, 1, c->writer));
    }
    return fails;
}

static int verify_invalid(const race_ctx *c, const race_outcome *o)
{
    static const char *const must[] = {"execution_engine", "temporal", "airflow", "argo"};
    if (race_expect_rc(c, o, UDB_EBADRECORD, "unknown execution_engine") != 0)
        return 1;
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++)
        if (strstr(o->errmsg, must[i]) == NULL)
            return race_bad(c, o, "udb_errmsg does not mention \"%s\"", must[i]);
    return 0;
}

static int verify(race_ctx *c)
{
    int fails = 0;
    for (int r = 0; r < c->spec->rounds; r++) {
        int w0;
        const race_outcome *win = race_winner(c, r, 0, 0, &w0);
        char name[64], values[RACE_TEXT];
        snprintf(name, sizeof name, "wf-%d", r);
        snprintf(values, sizeof values, "[\"%s\",%d]", name, r % 3 + 1);
        for (int w = 0; w < c->nwriters; w++) {
            fails += verify_invalid(c, race_at(c, r, 1, w));
            if (win != NULL && w != w0)
                fails += race_expect_conflict(c, race_at(c, r, 0, w), TYPE, "name_version",
                                              "workflow_name,version", values, win->key,
                                              "duplicate insert");
        }
        if (win == NULL) {
            fails++;
            continue;
        }
        race_buf key;
        race_pack(&key, RACE_ARRAY, "si", name, (long long)(r % 3 + 1));
        fails += race_expect_find(c, TYPE, "name_version", &key, win->key);
    }
    fails += race_expect_count(c, TYPE, NULL, NULL, (size_t)c->spec->rounds);
    return fails;
}

int main(int argc, char **argv)
{
    race_spec spec = {
        .name = "race_s3", .nproc = 4, .nthreads = 4, .rounds = 50, .phases = 2,
        .flags = UDB_NOSYNC, .worker = worker, .verify = verify,
    };
    return race_main_modes(argc, argv, &spec, "--insert-or-get", &mode);
}
