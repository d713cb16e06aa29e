/*
 * exec_watch.c -- the engine's side of tests/cli/exec_test.sh: proof that
 * `uniqdb` write commands reach another process's group commit.
 *
 *   exec_watch DB N SECONDS
 *
 * Opens DB and leads a group commit on it: a udb_write() whose callback
 * prints "holding" and then keeps the lead lock (and LMDB's writer lock)
 * until N units of other processes are queued for this leader through the
 * sync file, or SECONDS pass.  Only udb_exec() queues units there: a
 * udb_write() caller of another process waits for the lock instead.  Then it
 * lets go (one of the queued processes leads next and runs every queued unit
 * in one batch), prints "queued Q", waits for stdin to close (the test
 * closes it once every command has exited) and prints the engine's counts of
 * shipped units: "run R foreign F bounced B rerun X".  The counts live in
 * the sync file as long as some process has the database open: this one
 * keeps it open from before the first command until after the last.
 * Exits 0 unless the database cannot be opened or written.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "env.h"
#include "ship.h"
#include "uniqdb.h"

typedef struct hold {
    udb_env *env;
    unsigned want;
    double seconds;
    unsigned queued;
} hold;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs as the leader's only request: the lead lock is held until it returns. */
static int hold_fn(udb_txn *txn, void *ctx)
{
    (void)txn;
    hold *h = ctx;
    struct udb_ship *ship = udb__env_ship(h->env);
    printf("holding\n");
    fflush(stdout);
    double until = now_s() + h->seconds;
    while (udb__ship_queued(ship) < h->want && now_s() < until) {
        struct timespec ts = {0, 10000000L};
        nanosleep(&ts, NULL);
    }
    h->queued = udb__ship_queued(ship);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: exec_watch DB N SECONDS\n");
        return 2;
    }
    hold h = {NULL, (unsigned)strtoul(argv[2], NULL, 10), strtod(argv[3], NULL), 0};
    int ex = 1;
    if (udb_open(&h.env, argv[1], NULL) != 0) {
        fprintf(stderr, "exec_watch: open %s: %s\n", argv[1], udb_env_errmsg(NULL));
        goto out;
    }
    if (!udb__env_ship(h.env)) {
        fprintf(stderr, "exec_watch: %s: no shipping slots\n", argv[1]);
        goto out;
    }
    if (udb_write(h.env, hold_fn, &h) != 0) {
        fprintf(stderr, "exec_watch: udb_write: %s\n", udb_env_errmsg(h.env));
        goto out;
    }
    printf("queued %u\n", h.queued);
    fflush(stdout);
    while (getchar() != EOF)
        ;
    uint64_t c[UDB_SHIP_NCOUNTS];
    udb__ship_counts(udb__env_ship(h.env), c);
    printf("run %llu foreign %llu bounced %llu rerun %llu\n",
           (unsigned long long)c[UDB_SHIP_RUN], (unsigned long long)c[UDB_SHIP_FOREIGN],
           (unsigned long long)c[UDB_SHIP_BOUNCE], (unsigned long long)c[UDB_SHIP_RERUN]);
    ex = fflush(stdout) == 0 ? 0 : 1;
out:
    udb_close(h.env);
    return ex;
}
