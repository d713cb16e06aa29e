/*
 * race_mapgrow.c -- the map grows by itself under concurrent writers.
 *
 * The database starts with a 64 KiB map.  Every writer of several processes
 * inserts records through udb_write() until the map has doubled many times:
 * udb_write() must hide every MDB_MAP_FULL (grow, rerun fn) and every
 * MDB_MAP_RESIZED (adopt the size another process chose), so no writer ever
 * sees an error, every record is there at the end, and the auto ids handed out
 * are exactly 1..N (a rerun gives back the ids its aborted attempt took).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define INITIAL_MAP (64u * 1024u)
#define GROWTH 16u  /* the map must end at least this many times larger */

static const char TYPE[] = "schedule_workflow";

static int worker(race_ctx *c)
{
    race_rec_arg a = {.type = TYPE, .keyfield = "id", .field = "doctorName"};
    char sched[32];
    snprintf(sched, sizeof sched, "grow-w%d", c->writer);
    char state[256];
    memset(state, 'x', sizeof state - 1);
    state[sizeof state - 1] = '\0';
    for (int r = 0; r < c->spec->rounds; r++) {
        char doctor[32];
        snprintf(doctor, sizeof doctor, "r%d", r);
        race_pack(&a.rec, RACE_MAP, "sss", "scheduleId", sched, "doctorName", doctor,
                  "state", state);
        if (r % 10 == 0)
            race_sync(c);
        race_write(c->env, race_op_insert, &a, race_at(c, r, 0, c->writer));
    }
    size_t map = 0, used = 0;
    int rc = udb_env_usage(&map, &used, c->env);
    race_at(c, c->spec->rounds - 1, 0, c->writer)->num = map;
    return rc != 0 ? race_lib_fail("udb_env_usage", rc, udb_env_errmsg(c->env)) : 0;
}

static int verify(race_ctx *c)
{
    size_t records = (size_t)c->spec->rounds * (size_t)c->nwriters;
    uint64_t *ids = calloc(records, sizeof *ids);
    if (ids == NULL)
        return race_bad(c, NULL, "out of memory");
    size_t n = 0;
    int fails = 0;
    for (int r = 0; r < c->spec->rounds; r++) {
        for (int w = 0; w < c->nwriters; w++) {
            const race_outcome *o = race_at(c, r, 0, w);
            if (race_expect_rc(c, o, 0, "insert while the map grows") != 0)
                fails++;
            else
                ids[n++] = o->id;
        }
    }
    /* fn reruns after MDB_MAP_FULL must give their auto ids back. */
    fails += race_gapless(c, ids, n, "auto ids");
    free(ids);
    size_t seen = 0;
    for (int w = 0; w < c->nwriters; w++) {
        size_t m = race_at(c, c->spec->rounds - 1, 0, w)->num;
        seen = m > seen ? m : seen;
    }
    size_t map = 0, used = 0;
    int rc = udb_env_usage(&map, &used, c->env);
    if (rc != 0)
        fails += race_lib_fail("udb_env_usage", rc, udb_env_errmsg(c->env));
    printf("%s: map %u -> %zu bytes (seen by writers: %zu), %zu in use\n", c->spec->name,
           INITIAL_MAP, map, seen, used);
    if (seen < (size_t)GROWTH * INITIAL_MAP)
        fails += race_bad(c, NULL, "the writers' map ended at %zu bytes, want >= %zu", seen,
                          (size_t)GROWTH * INITIAL_MAP);
    fails += race_expect_count(c, TYPE, NULL, NULL, records);
    fails += race_expect_count(c, TYPE, "schedule_doctor", NULL, records);
    return fails;
}

int main(int argc, char **argv)
{
    static const race_spec spec = {
        .name = "race_mapgrow", .nproc = 4, .nthreads = 4, .rounds = 250, .phases = 1,
        .map_size = INITIAL_MAP, .flags = UDB_NOSYNC, .worker = worker, .verify = verify,
    };
    return race_main(argc, argv, &spec);
}
