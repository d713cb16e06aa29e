/*
 * bench_conc.c -- W4: concurrent durable writers, each operation its own
 * commit, as threads sharing the process's handle (or, for SQLite, each with
 * its own connection) or as processes that each open the database after
 * fork().
 *
 * Writers take attempt numbers from one shared counter; attempt c inserts or
 * gets record base + c/2, so every key is tried exactly twice, usually by two
 * different writers racing: one must create it, the other must get it back.
 * The run is time-boxed (--duration) rather than sized, because durable
 * commits cost whatever the disk says, and SQLite's busy-wait backoff under
 * 64 writers can cost far more; the counts are verified all the same.  The
 * shared state lives in a MAP_SHARED mapping so processes update it too.
 *
 * With K operations in flight per process (the "x K" rows), a process keeps
 * K going: through the engine's call that does not wait, where it has one
 * (uniqdb's udb_exec_async, refilled from its completions), else with K
 * threads, each with a connection of its own (what SQLite and LMDB offer).
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

typedef struct w4_shared {
    _Atomic uint64_t next;            /* attempts handed out */
    _Atomic uint64_t created, got, wrong, errors;
    _Atomic unsigned ready;
    _Atomic int go;
    _Atomic uint64_t end_ns;          /* when the last writer finished its last op */
    double deadline;
} w4_shared;

typedef struct w4_arg {
    w4_shared *sh;
    const bench_engine *e;
    void *db;                         /* the shared handle (threads) */
    const char *path;
    bool durable;
    uint64_t base, nusers;
    unsigned inflight;
} w4_arg;

static void nap(long ns)
{
    struct timespec ts = {0, ns};
    nanosleep(&ts, NULL);
}

static void note_end(w4_shared *sh)
{
    uint64_t now = (uint64_t)(bench_now() * 1e9);
    uint64_t cur = atomic_load(&sh->end_ns);
    while (cur < now && !atomic_compare_exchange_weak(&sh->end_ns, &cur, now))
        ;
}

/* Announce readiness and wait for the start. */
static void ready_set_go(w4_shared *sh)
{
    atomic_fetch_add(&sh->ready, 1);
    while (!atomic_load(&sh->go))
        nap(20000);
}

/* Count one operation's outcome; false if it failed. */
static bool tally(w4_shared *sh, int rc, bool created, uint64_t id, uint64_t want)
{
    if (rc) {
        atomic_fetch_add(&sh->errors, 1);
        return false;
    }
    if (id != want)
        atomic_fetch_add(&sh->wrong, 1);
    else
        atomic_fetch_add(created ? &sh->created : &sh->got, 1);
    return true;
}

/* Write until the deadline. */
static void write_loop(const w4_arg *a, void *conn)
{
    w4_shared *sh = a->sh;
    bench_rec r;
    while (bench_now() < sh->deadline) {
        uint64_t c = atomic_fetch_add(&sh->next, 1);
        bench_gen(&r, a->base + c / 2, a->nusers);
        bool created = false;
        uint64_t id = 0;
        int rc = a->e->insert_or_get(&created, &id, conn, &r);
        if (!tally(sh, rc, created, id, r.id))
            break;
    }
    note_end(sh);
}

/* One writer: announce readiness, wait for the start, write until the deadline. */
static void writer(const w4_arg *a, void *conn)
{
    ready_set_go(a->sh);
    write_loop(a, conn);
}

/* K in flight through the engine's call that does not wait: each completion
 * starts the next operation until the deadline. */
typedef struct flight {
    const w4_arg *a;
    void *conn;
    _Atomic unsigned live;     /* chains still going */
} flight;

typedef struct op_ctx {
    flight *f;
    uint64_t want;
} op_ctx;

static void flight_done(void *ctx, int rc, bool created, uint64_t id);

static bool flight_next(flight *f)
{
    w4_shared *sh = f->a->sh;
    op_ctx *o = malloc(sizeof *o);
    if (!o || bench_now() >= sh->deadline) {
        free(o);
        return false;
    }
    uint64_t c = atomic_fetch_add(&sh->next, 1);
    bench_rec r;
    bench_gen(&r, f->a->base + c / 2, f->a->nusers);
    *o = (op_ctx){f, r.id};
    if (f->a->e->insert_or_get_async(f->conn, &r, flight_done, o)) {
        atomic_fetch_add(&sh->errors, 1);
        free(o);
        return false;
    }
    return true;
}

static void flight_done(void *ctx, int rc, bool created, uint64_t id)
{
    op_ctx *o = ctx;
    flight *f = o->f;
    bool ok = tally(f->a->sh, rc, created, id, o->want);
    free(o);
    if (!ok || !flight_next(f)) {
        note_end(f->a->sh);
        atomic_fetch_sub(&f->live, 1);
    }
}

static void write_in_flight(const w4_arg *a, void *conn)
{
    ready_set_go(a->sh);
    flight f = {a, conn, a->inflight};
    for (unsigned i = 0; i < a->inflight; i++)
        if (!flight_next(&f))
            atomic_fetch_sub(&f.live, 1);
    while (atomic_load(&f.live))
        nap(1000000);
    if (a->e->drain(conn))
        atomic_fetch_add(&a->sh->errors, 1);
}

/* K in flight as K threads, each with its own connection where the engine
 * has them. */
typedef struct lane {
    const w4_arg *a;
    void *conn;
    pthread_t th;
} lane;

static void *lane_main(void *p)
{
    lane *l = p;
    void *conn = l->conn;
    if (l->a->e->conn_open && l->a->e->conn_open(&conn, l->conn, l->a->path, l->a->durable)) {
        atomic_fetch_add(&l->a->sh->errors, 1);
        return NULL;
    }
    write_loop(l->a, conn);
    if (l->a->e->conn_open)
        l->a->e->conn_close(conn);
    return NULL;
}

static void write_in_threads(const w4_arg *a, void *conn)
{
    lane *l = calloc(a->inflight, sizeof *l);
    ready_set_go(a->sh);
    unsigned started = 0;
    for (; l && started < a->inflight; started++) {
        l[started] = (lane){a, conn, 0};
        if (pthread_create(&l[started].th, NULL, lane_main, &l[started]))
            break;
    }
    if (!l || started < a->inflight)
        atomic_fetch_add(&a->sh->errors, 1);
    for (unsigned i = 0; i < started; i++)
        pthread_join(l[i].th, NULL);
    free(l);
}

/* A writer that could not open its handle still counts as ready, or the
 * start would wait for it forever. */
static void writer_failed(w4_shared *sh)
{
    atomic_fetch_add(&sh->errors, 1);
    atomic_fetch_add(&sh->ready, 1);
}

static void *thread_main(void *p)
{
    const w4_arg *a = p;
    void *conn = a->db;
    if (a->e->conn_open && a->e->conn_open(&conn, a->db, a->path, a->durable)) {
        writer_failed(a->sh);
        return NULL;
    }
    writer(a, conn);
    if (a->e->conn_open)
        a->e->conn_close(conn);
    return NULL;
}

static void process_main(const w4_arg *a)
{
    void *conn;
    if (a->e->open(&conn, a->path, a->durable)) {
        writer_failed(a->sh);
        _exit(1);
    }
    if (a->inflight <= 1)
        writer(a, conn);
    else if (a->e->insert_or_get_async)
        write_in_flight(a, conn);
    else
        write_in_threads(a, conn);
    a->e->close(conn);
    _exit(0);
}

/* Release the writers once all are ready; returns the start time. */
static double start_when_ready(w4_shared *sh, unsigned n, double duration)
{
    while (atomic_load(&sh->ready) < n)
        nap(1000000);
    double start = bench_now();
    sh->deadline = start + duration;
    atomic_store(&sh->go, 1);
    return start;
}

int bench_w4(bench_result *r, uint64_t *keys, const bench_engine *e, void *db,
             const char *path, bool durable, double duration, uint64_t base,
             uint64_t nusers, unsigned nwriters, bool procs, unsigned inflight)
{
    w4_shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                         -1, 0);
    if (sh == MAP_FAILED) {
        bench_fail(r, 2, "mmap failed");
        return -1;
    }
    memset(sh, 0, sizeof *sh);
    w4_arg a = {sh, e, db, path, durable, base, nusers, procs ? inflight : 1};
    unsigned started = 0;
    double start = 0;
    if (procs) {
        pid_t *pids = calloc(nwriters, sizeof *pids);
        fflush(NULL);
        for (; pids && started < nwriters; started++) {
            pids[started] = fork();
            if (pids[started] == 0)
                process_main(&a);
            if (pids[started] < 0)
                break;
        }
        if (started == nwriters)
            start = start_when_ready(sh, nwriters, duration);
        else
            for (unsigned i = 0; i < started; i++)
                kill(pids[i], SIGKILL);
        for (unsigned i = 0; i < started; i++) {
            int st;
            if (waitpid(pids[i], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
                atomic_fetch_add(&sh->errors, 1);
        }
        free(pids);
    } else {
        pthread_t *tids = calloc(nwriters, sizeof *tids);
        for (; tids && started < nwriters; started++)
            if (pthread_create(&tids[started], NULL, thread_main, &a))
                break;
        if (started == nwriters) {
            start = start_when_ready(sh, nwriters, duration);
        } else {
            sh->deadline = 0;  /* writers stop at once */
            atomic_store(&sh->go, 1);
        }
        for (unsigned i = 0; i < started; i++)
            pthread_join(tids[i], NULL);
        free(tids);
    }
    uint64_t ops = atomic_load(&sh->next), created = atomic_load(&sh->created),
             got = atomic_load(&sh->got), wrong = atomic_load(&sh->wrong),
             errors = atomic_load(&sh->errors);
    r->ops = ops;
    r->secs = start > 0 ? (double)atomic_load(&sh->end_ns) * 1e-9 - start : 0;
    *keys = (ops + 1) / 2;
    if (started < nwriters)
        bench_fail(r, 2, "could only start %u of %u writers", started, nwriters);
    else if (errors)
        bench_fail(r, 2, "%llu writers failed", (unsigned long long)errors);
    else if (wrong)
        bench_fail(r, 1, "%llu operations returned another record", (unsigned long long)wrong);
    else if (created != *keys || got != ops - *keys)
        bench_fail(r, 1,
                   "%llu created and %llu got for %llu keys tried twice: expected %llu / %llu",
                   (unsigned long long)created, (unsigned long long)got, (unsigned long long)*keys,
                   (unsigned long long)*keys, (unsigned long long)(ops - *keys));
    munmap(sh, sizeof *sh);
    return r->status > 0 ? -1 : 0;
}
