/*
 * race_sql.c -- S1 on PostgreSQL with another SQL client in the race (issue 24).
 *
 * On PostgreSQL a uniqdb unique index is the server's unique index, so it
 * holds against any client writing the tables, not only against uniqdb's own
 * writers.  In every round half the writers (processes x threads; each
 * process opens its own environment after fork) call udb_insert_or_get()
 * through udb_write() on one (scheduleId, doctorName) of schedule_workflow;
 * the other half INSERT the same pair with plain SQL through libpq, each on a
 * connection of its own (autocommit, READ COMMITTED: what psql does), with a
 * primary key of their own below the auto-key sequence (set to 1000000
 * first, so the keys never meet).
 *
 * The verdict of a round: exactly one row holds the pair (counted by SQL);
 * exactly one writer created it (a uniqdb caller with created=1, or an SQL
 * INSERT that succeeded); every other SQL INSERT failed with 23505; every
 * other uniqdb caller got that row (its key, created=0) -- an SQL row
 * committed after its snapshot makes its insert_or_get UDB_ERETRY, and
 * udb_write runs it again -- or UDB_ECONFLICT on schedule_doctor held by that
 * row's key; udb_find() finds it.
 *
 *   race_sql SCHEMA                      the race above
 *   race_sql SCHEMA --drop-index         negative control: the server's index
 *       "schedule_workflow.schedule_doctor" is dropped before the race; the SQL
 *       clients then insert duplicates, which the verdict must catch (udb_check,
 *       which notices the missing index by itself, is not counted): must fail
 *   race_sql SCHEMA --drop-index --uniqdb-only   no SQL clients, index dropped:
 *       negative control too: uniqdb's insert_or_get inserts first and reads the
 *       holder only when the server's index refused the row, so without the
 *       index its writers write the pair once each: must fail
 * Runs only with UDB_TEST_PG=1 under tests/postgres/pg_run (else 77, SKIP).
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

static const char TYPE[] = "schedule_workflow";
static const char INDEX[] = "schedule_doctor";
#define SEQ_START 1000000ull

enum { DROP_INDEX = 1, UNIQDB_ONLY = 2 };
static int mode;
static char pgschema[128];   /* the database's PostgreSQL schema (from its URL) */

/* Writer w goes through SQL (not uniqdb). */
static int sql_writer(int w)
{
    return !(mode & UNIQDB_ONLY) && w % 2 == 1;
}

static void names(char sched[32], char doctor[32], int round)
{
    snprintf(sched, 32, "sched-%d", round);
    snprintf(doctor, 32, "Dr. %d", round % 7);
}

static PGconn *connect_db(void)
{
    /* pg_run exports PGHOST, PGPORT, PGUSER, PGDATABASE */
    PGconn *pg = PQconnectdb("");
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "FAIL: libpq connect: %s", PQerrorMessage(pg));
        PQfinish(pg);
        return NULL;
    }
    return pg;
}

static int sql_command(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "FAIL: %s: %s", sql, PQerrorMessage(pg));
    PQclear(r);
    return ok ? 0 : 1;
}

/* After the schema is applied: keep uniqdb's auto keys above the SQL clients'
 * (a sequence set through uniqdb), and for the control drop the index. */
static int setup(const char *db)
{
    const char *s = strstr(db, "schema=");
    if (s == NULL) {
        fprintf(stderr, "FAIL: no schema= in %s\n", db);
        return 1;
    }
    snprintf(pgschema, sizeof pgschema, "%s", s + 7);
    udb_env *env = NULL;
    udb_txn *txn = NULL;
    int rc = udb_open(&env, db, NULL);
    if (rc == 0)
        rc = udb_begin(&txn, env, 0);
    if (rc == 0 && (rc = udb_seq_set(txn, "schedule_workflow.id", SEQ_START)) != 0)
        udb_abort(txn);
    else if (rc == 0)
        rc = udb_commit(txn);
    if (rc != 0)
        race_lib_fail("setting the key sequence", rc, udb_env_errmsg(env));
    udb_close(env);
    if (rc != 0 || !(mode & DROP_INDEX))
        return rc != 0;
    PGconn *pg = connect_db();
    if (pg == NULL)
        return 1;
    char sql[512];
    snprintf(sql, sizeof sql, "DROP INDEX \"%s\".\"%s.%s\"", pgschema, TYPE, INDEX);
    int fails = sql_command(pg, sql);
    if (fails == 0)
        printf("race_sql: control: %s\n", sql);
    PQfinish(pg);
    return fails;
}

/* One SQL client's INSERT of the pair: rc 0, or -1 with the SQLSTATE in
 * o->field and the message in o->errmsg. */
static void sql_insert(PGconn *pg, race_outcome *o, int round, int writer, const char *sched,
                       const char *doctor, const char *state)
{
    memset(o, 0, sizeof *o);
    char sql[512], id[32];
    snprintf(sql, sizeof sql,
             "INSERT INTO \"%s\".\"%s\" (id, \"scheduleId\", \"doctorName\", state) "
             "VALUES ($1, $2, $3, $4)", pgschema, TYPE);
    unsigned long long key = 1 + (unsigned long long)round * 1000 + (unsigned long long)writer;
    snprintf(id, sizeof id, "%llu", key);
    const char *params[4] = {id, sched, doctor, state};
    PGresult *r = PQexecParams(pg, sql, 4, NULL, params, NULL, NULL, 0);
    o->done = 1;
    if (PQresultStatus(r) == PGRES_COMMAND_OK) {
        o->rc = 0;
        o->created = 1;
        o->id = key;
        snprintf(o->key, sizeof o->key, "%llu", key);
    } else {
        o->rc = -1;
        const char *state_code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        snprintf(o->field, sizeof o->field, "%s", state_code ? state_code : "?");
        snprintf(o->errmsg, sizeof o->errmsg, "%s", PQerrorMessage(pg));
    }
    PQclear(r);
}

static int worker(race_ctx *c)
{
    PGconn *pg = NULL;
    if (sql_writer(c->writer) && (pg = connect_db()) == NULL)
        return 1;   /* it still reaches every race_sync below: its outcomes say "never made" */
    race_rec_arg a = {.type = TYPE, .index = INDEX, .keyfield = "id", .field = "state"};
    int fails = 0;
    for (int r = 0; r < c->spec->rounds; r++) {
        char sched[32], doctor[32], state[32];
        names(sched, doctor, r);
        snprintf(state, sizeof state, "w%d", c->writer);
        fails += race_pack(&a.rec, RACE_MAP, "sss", "scheduleId", sched, "doctorName", doctor,
                           "state", state) != 0;
        race_sync(c);
        race_outcome *o = race_at(c, r, 0, c->writer);
        if (!sql_writer(c->writer))
            race_write(c->env, race_op_insert_or_get, &a, o);
        else if (pg != NULL) {
            /* odd rounds: let uniqdb's writers start first (uniqdb is slower per
               call than one INSERT, so else the SQL clients nearly always win) */
            if (r % 2 == 1)
                nanosleep(&(struct timespec){0, 3 * 1000 * 1000}, NULL);
            sql_insert(pg, o, r, c->writer, sched, doctor, state);
        }
    }
    PQfinish(pg);
    return fails;
}

/* The keys of the rows holding round r's pair, by SQL: how many, the first in *id. */
static int rows_of(PGconn *pg, int round, unsigned long long *id)
{
    char sched[32], doctor[32], sql[512];
    names(sched, doctor, round);
    snprintf(sql, sizeof sql,
             "SELECT id FROM \"%s\".\"%s\" WHERE \"scheduleId\" = $1 AND \"doctorName\" = $2 "
             "ORDER BY id", pgschema, TYPE);
    const char *params[2] = {sched, doctor};
    PGresult *r = PQexecParams(pg, sql, 2, NULL, params, NULL, NULL, 0);
    int n = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        n = PQntuples(r);
        *id = n > 0 ? strtoull(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    } else {
        fprintf(stderr, "FAIL: %s: %s", sql, PQerrorMessage(pg));
    }
    PQclear(r);
    return n;
}

/* What the race came to, over every round (printed: the mix really raced). */
static struct {
    int sql_created, sql_refused, udb_created, udb_got, udb_conflict;
} tally;

static int verify_round(const race_ctx *c, PGconn *pg, int r)
{
    unsigned long long id = 0;
    int n = rows_of(pg, r, &id);
    if (n != 1)
        return race_bad(c, NULL, "round %d: %d rows hold the pair, want 1", r, n);
    char key[32];
    snprintf(key, sizeof key, "%llu", id);
    int fails = 0, creators = 0;
    for (int w = 0; w < c->nwriters; w++) {
        const race_outcome *o = race_at(c, r, 0, w);
        if (!o->done) {
            fails += race_bad(c, o, "the call was never made");
            continue;
        }
        if (o->rc == 0 && o->created == 1) {
            creators++;
            if (sql_writer(w))
                tally.sql_created++;
            else
                tally.udb_created++;
            if (strcmp(o->key, key) != 0)
                fails += race_bad(c, o, "created a row %s, but the pair is held by %s", o->key,
                                  key);
            continue;
        }
        if (sql_writer(w)) {
            tally.sql_refused++;
            if (strcmp(o->field, "23505") != 0)
                fails += race_bad(c, o, "SQL INSERT: want success or 23505 (unique_violation)");
        } else if (o->rc == UDB_ECONFLICT) {
            tally.udb_conflict++;
            fails += race_expect_conflict(c, o, TYPE, INDEX, "scheduleId,doctorName", NULL, key,
                                          "insert_or_get after an SQL client's row");
        } else if (race_expect_rc(c, o, 0, "insert_or_get") != 0) {
            fails++;
        } else if (strcmp(o->key, key) != 0 || o->created != 0) {
            fails += race_bad(c, o, "want the row %s, created=0", key);
        } else {
            tally.udb_got++;
        }
    }
    if (creators != 1)
        fails += race_bad(c, NULL, "round %d: %d writers created the pair, want 1", r, creators);
    char sched[32], doctor[32];
    names(sched, doctor, r);
    race_buf values;
    race_pack(&values, RACE_ARRAY, "ss", sched, doctor);
    return fails + race_expect_find(c, TYPE, INDEX, &values, key);
}

static int verify(race_ctx *c)
{
    PGconn *pg = connect_db();
    if (pg == NULL)
        return 1;
    int fails = 0;
    for (int r = 0; r < c->spec->rounds; r++)
        fails += verify_round(c, pg, r);
    PQfinish(pg);
    printf("%s: rows created by SQL %d, by uniqdb %d; SQL INSERTs refused %d; uniqdb callers "
           "given the row %d, refused by the server's index (UDB_ECONFLICT) %d\n",
           c->spec->name, tally.sql_created, tally.udb_created, tally.sql_refused, tally.udb_got,
           tally.udb_conflict);
    return fails;
}

int main(int argc, char **argv)
{
    if (!race_pg()) {
        printf("race_sql: SKIP: PostgreSQL only (UDB_TEST_PG=1 under tests/postgres/pg_run)\n");
        return 77;
    }
    static const char *const flags[] = {"--drop-index", "--uniqdb-only", NULL};
    mode = race_flags(argc, argv, flags);
    if (mode < 0)
        return 2;
    static char name[64];
    snprintf(name, sizeof name, "race_sql%s%s", mode & DROP_INDEX ? "_noindex" : "",
             mode & UNIQDB_ONLY ? "_uniqdb" : "");
    race_spec spec = {
        .name = name, .nproc = 4, .nthreads = 4, .rounds = 20, .phases = 1,
        .flags = UDB_NOSYNC, .worker = worker, .verify = verify, .setup = setup,
        .check_not_counted = (mode & DROP_INDEX) != 0,
    };
    return race_main(argc, argv, &spec);
}
