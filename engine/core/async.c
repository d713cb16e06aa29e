/*
 * async.c -- udb_exec_async: a unit handed to the engine, which runs it
 * through group commit and calls back once it is durable (or failed).
 *
 * Why threads and not an event loop of our own: LMDB's group commit (group.c)
 * already turns concurrent callers into one commit each round -- pipelined
 * (the next batch commits while the last waits for its flush) and shared
 * across processes (ship.h) -- and each caller there is a thread that waits.
 * So each unit in flight is carried by one engine thread of a per-env pool,
 * grown on demand up to ASYNC_THREADS: a caller with 64 units in flight gets
 * 64 waiters in group commit, hence batches of up to 64 units, without
 * blocking itself.  Units beyond the pool's size wait in a queue (in order).
 *
 * The caller's ops are copied before udb_exec_async returns (as bytes, with
 * the encoding units travel in between processes: unit.c), so the caller may
 * free them at once.
 */
#include <pthread.h>
#include <stdlib.h>

#include "backend.h"
#include "error.h"
#include "unit.h"

/* Engine threads per environment: units in flight beyond this queue. */
#define ASYNC_THREADS 64

typedef struct job {
    struct job *next;
    udb_op *ops;
    size_t n;
    udb_arena arena;             /* ops and every byte they point to */
    udb_exec_done_fn done;
    void *payload;
    uint64_t ticket;             /* its place in the order units were queued in */
} job;

struct udb_async {
    udb_env *env;
    pthread_mutex_t mu;
    pthread_cond_t work;         /* a job was queued, or stopping */
    pthread_cond_t room;         /* units in flight dropped below the limit */
    pthread_cond_t idle;         /* none in flight */
    job *head, *tail;
    size_t queued, running;      /* in the queue; taken by a thread (in flight: both) */
    unsigned nthreads;
    bool stopping;
    pthread_t threads[ASYNC_THREADS];
    uint64_t tickets;                   /* units ever queued */
    uint64_t carried[ASYNC_THREADS];    /* tickets of the units threads carry; 0: free */
    unsigned draining;                  /* async_drain calls waiting */
};

/* Set on the engine's own threads: a callback must not wait for room. */
static _Thread_local bool on_engine_thread;

static void job_free(job *j)
{
    udb__arena_free(&j->arena);
    free(j);
}

static void run(udb_async *a, job *j)
{
    int rc = UDB_ENOMEM;
    udb_results *res = udb__results_new(j->n);
    if (res) {
        udb_unit u = {j->ops, j->n, res, j->n, 0};
        rc = udb__env_write_unit(a->env, &u);
        udb__unit_settle(&u, rc);
    } else {
        udb__env_err(rc, "udb_exec_async: out of memory for %zu results", j->n);
    }
    j->done(rc, res, rc ? udb_env_errmsg(a->env) : "", j->payload);
}

static void *worker(void *arg)
{
    udb_async *a = arg;
    on_engine_thread = true;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (!a->head && !a->stopping)
            pthread_cond_wait(&a->work, &a->mu);
        job *j = a->head;
        if (!j)
            break;   /* stopping, and nothing left */
        a->head = j->next;
        if (!a->head)
            a->tail = NULL;
        a->queued--;
        a->running++;
        /* fewer units run than there are threads: a slot is free */
        unsigned slot = 0;
        while (a->carried[slot])
            slot++;
        a->carried[slot] = j->ticket;
        pthread_mutex_unlock(&a->mu);
        run(a, j);
        job_free(j);
        pthread_mutex_lock(&a->mu);
        a->carried[slot] = 0;
        bool was_full = a->queued + a->running == UDB_EXEC_ASYNC_MAX;
        a->running--;
        if (was_full)
            pthread_cond_broadcast(&a->room);
        if (a->queued + a->running == 0 || a->draining)
            pthread_cond_broadcast(&a->idle);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

/* Let every queued unit finish (its callback called), then stop the
 * threads.  Called by udb_close before anything is torn down. */
static void async_stop(udb_async *a)
{
    pthread_mutex_lock(&a->mu);
    a->stopping = true;
    pthread_cond_broadcast(&a->work);
    pthread_mutex_unlock(&a->mu);
    for (unsigned i = 0; i < a->nthreads; i++)
        pthread_join(a->threads[i], NULL);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->work);
    pthread_cond_destroy(&a->room);
    pthread_cond_destroy(&a->idle);
    free(a);
}

/* Wait until every unit queued before this call is done (its callback has
 * returned); units queued since may still run.  Called by a udb_close that
 * gives up one open of an environment the process opened more than once
 * (env.c): the units of whoever closes are done when it returns, while
 * another open's go on. */
static void async_drain(udb_async *a)
{
    pthread_mutex_lock(&a->mu);
    uint64_t upto = a->tickets;
    a->draining++;
    for (;;) {
        /* the queue runs in order: its head is the oldest unit waiting */
        bool older = a->head && a->head->ticket <= upto;
        for (unsigned i = 0; i < ASYNC_THREADS && !older; i++)
            older = a->carried[i] && a->carried[i] <= upto;
        if (!older)
            break;
        pthread_cond_wait(&a->idle, &a->mu);
    }
    a->draining--;
    pthread_mutex_unlock(&a->mu);
}

static udb_async *async_new(udb_env *env)
{
    udb_async *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->env = env;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->work, NULL);
    pthread_cond_init(&a->room, NULL);
    pthread_cond_init(&a->idle, NULL);
    return a;
}

/* The ops as a job of their own: every byte they point to copied. */
static int copy_job(job **out, const udb_op *ops, size_t n)
{
    job *j = calloc(1, sizeof *j);
    if (!j)
        return UDB_ENOMEM;
    udb_buf b = {0};
    udb__unit_encode(&b, ops, n);
    int rc = b.oom ? UDB_ENOMEM : udb__unit_decode(&j->ops, &j->n, &j->arena, b.p, b.len);
    udb__buf_free(&b);
    if (rc) {
        job_free(j);
        return rc;
    }
    *out = j;
    return 0;
}

int udb_exec_async(udb_env *env, const udb_op *ops, size_t n, udb_exec_done_fn done,
                   void *payload)
{
    if (!env || !ops || !done)
        return udb__env_err(UDB_EINVAL, "udb_exec_async: env, ops and done are required");
    int rc = udb__unit_check(ops, n);
    if (rc)
        return rc;
    job *j;
    if ((rc = copy_job(&j, ops, n)))
        return udb__env_err(rc, "udb_exec_async: %s copying the unit",
                            rc == UDB_ENOMEM ? "out of memory" : "cannot encode its ops");
    j->done = done;
    j->payload = payload;
    udb_async *a = udb__env_async(env, async_new, async_stop, async_drain);
    if (!a) {
        job_free(j);
        return udb__env_err(UDB_ENOMEM, "udb_exec_async: out of memory");
    }
    pthread_mutex_lock(&a->mu);
    while (a->queued + a->running >= UDB_EXEC_ASYNC_MAX && !a->stopping) {
        if (on_engine_thread) {
            pthread_mutex_unlock(&a->mu);
            job_free(j);
            return udb__env_err(UDB_EBUSY, "udb_exec_async: %d units are in flight, and a "
                                "callback may not wait for room", UDB_EXEC_ASYNC_MAX);
        }
        pthread_cond_wait(&a->room, &a->mu);
    }
    if (a->stopping) {
        pthread_mutex_unlock(&a->mu);
        job_free(j);
        return udb__env_err(UDB_EINVAL, "udb_exec_async: the environment is closing");
    }
    j->ticket = ++a->tickets;
    if (a->tail)
        a->tail->next = j;
    else
        a->head = j;
    a->tail = j;
    a->queued++;
    rc = 0;
    /* a thread for every unit in flight, up to the pool's size */
    if (a->queued > a->nthreads - a->running && a->nthreads < ASYNC_THREADS) {
        if (pthread_create(&a->threads[a->nthreads], NULL, worker, a) == 0)
            a->nthreads++;
        else if (!a->nthreads)
            rc = UDB_ENOMEM;   /* no thread at all would ever run it */
    }
    if (rc) {
        a->head = a->tail = NULL;
        a->queued--;
        pthread_mutex_unlock(&a->mu);
        job_free(j);
        return udb__env_err(rc, "udb_exec_async: cannot start an engine thread");
    }
    pthread_cond_signal(&a->work);
    pthread_mutex_unlock(&a->mu);
    return 0;
}

int udb_exec_async_wait(udb_env *env)
{
    if (!env)
        return udb__env_err(UDB_EINVAL, "udb_exec_async_wait: env is required");
    if (on_engine_thread)
        return udb__env_err(UDB_EINVAL, "udb_exec_async_wait: not from a callback");
    udb_async *a = udb__env_async(env, NULL, NULL, NULL);
    if (!a)
        return 0;
    pthread_mutex_lock(&a->mu);
    while (a->queued + a->running)
        pthread_cond_wait(&a->idle, &a->mu);
    pthread_mutex_unlock(&a->mu);
    return 0;
}
