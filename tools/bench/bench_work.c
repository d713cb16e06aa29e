/*
 * bench_work.c -- the workloads W1, W2, W3 and W5 (W4 is bench_conc.c), run
 * on one engine, timed and verified the same way for every engine.
 *
 * Only engine calls are timed: records are generated before the clock starts
 * and checked after it stops.  Every workload verifies what it did against
 * the generator: the database holds exactly the records and index entries it
 * should (so no duplicate slipped into a unique index), every lookup found
 * the record it asked for with the right content, every scan returned exactly
 * the records of its prefix in index order.  A database's records are always
 * the numbers [0, next): that invariant is what lets any workload know what
 * must be there.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench.h"

/* One database of the run: the shared state (what it holds) and the handle
 * this process has open on it. */
typedef struct dbstate {
    bench_dbstate *sh;         /* in shared memory: survives this process */
    void *db;
    char path[PATH_MAX];
    bool durable;
} dbstate;

typedef struct run_ctx {
    const bench_engine *e;
    const bench_opts *o;
    uint64_t nusers;
    unsigned slice, slices;    /* this process runs slice `slice` of `slices` */
} run_ctx;

unsigned bench_slices(const bench_opts *o, const bench_item *it)
{
    return it->w == BENCH_W4 ? 1 : o->slices;
}

/* This slice's share of total operations, and where it starts. */
static uint64_t share(const run_ctx *c, uint64_t total, uint64_t *start)
{
    uint64_t n = c->slices, q = total / n, rem = total % n;
    if (start)
        *start = c->slice * q + (c->slice < rem ? c->slice : rem);
    return q + (c->slice < rem);
}

void bench_fail(bench_result *r, int status, const char *fmt, ...)
{
    if (r->status > 0)
        return;                /* keep the first reason */
    r->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->why, sizeof r->why, fmt, ap);
    va_end(ap);
}

uint64_t bench_nusers(const bench_opts *o)
{
    return o->records >= 16 ? o->records / 8 : 2;
}

static void expect_add(bench_counts *c, const bench_rec *r)
{
    c->records++;
    c->entries += 2 + r->active;       /* ref, by_user, and active_slot if active */
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "uniqdb-bench: out of memory\n");
        exit(2);
    }
    return p;
}

static size_t chunk(uint64_t left, unsigned batch)
{
    return left < batch ? (size_t)left : batch;
}

/* The database holds what the generator says it should. */
static void verify_counts(run_ctx *c, dbstate *s, bench_result *r)
{
    bench_counts got;
    if (c->e->count(&got, s->db)) {
        bench_fail(r, 2, "counting failed");
        return;
    }
    if (got.records != s->sh->expect.records || got.entries != s->sh->expect.entries)
        bench_fail(r, 1, "holds %llu records / %llu index entries, expected %llu / %llu",
                   (unsigned long long)got.records, (unsigned long long)got.entries,
                   (unsigned long long)s->sh->expect.records,
                   (unsigned long long)s->sh->expect.entries);
}

/* Records first .. first+n-1 can be found by their unique key, intact. */
static void verify_present(run_ctx *c, dbstate *s, bench_result *r, uint64_t first, uint64_t n)
{
    unsigned bs = c->o->batch;
    bench_rec *recs = xcalloc(bs, sizeof *recs);
    for (uint64_t done = 0; done < n && r->status <= 0;) {
        size_t k = chunk(n - done, bs), matched;
        for (size_t i = 0; i < k; i++)
            bench_gen(&recs[i], first + done + i, c->nusers);
        if (c->e->lookup(&matched, s->db, recs, k))
            bench_fail(r, 2, "lookup failed while verifying");
        else if (matched != k)
            bench_fail(r, 1, "%zu of %zu records written are missing or wrong", k - matched, k);
        done += k;
    }
    free(recs);
}

/* W1: insert records in transactions of --batch. */
static void w1(run_ctx *c, dbstate *s, bench_result *r)
{
    const bench_opts *o = c->o;
    bench_rec *recs = xcalloc(o->batch, sizeof *recs);
    uint64_t base = s->sh->next, total = share(c, o->records, NULL);
    double t = 0;
    for (uint64_t done = 0; done < total;) {
        size_t n = chunk(total - done, o->batch);
        for (size_t i = 0; i < n; i++)
            bench_gen(&recs[i], base + done + i, c->nusers);
        double t0 = bench_now();
        int rc = c->e->insert(s->db, recs, n);
        t += bench_now() - t0;
        if (rc) {
            bench_fail(r, 2, "insert failed in the batch at record %llu",
                       (unsigned long long)(base + done));
            break;
        }
        for (size_t i = 0; i < n; i++)
            expect_add(&s->sh->expect, &recs[i]);
        s->sh->next += n;
        done += n;
    }
    free(recs);
    r->ops = s->sh->next - base;
    r->secs = t;
    verify_counts(c, s, r);
}

/* W2: random lookups by the unique key, --batch per read transaction. */
static void w2(run_ctx *c, dbstate *s, bench_result *r)
{
    const bench_opts *o = c->o;
    bench_rec *recs = xcalloc(o->batch, sizeof *recs);
    double t = 0;
    uint64_t done = 0, start, total = share(c, o->lookups, &start);
    while (done < total && r->status <= 0) {
        size_t n = chunk(total - done, o->batch), matched;
        for (size_t i = 0; i < n; i++)
            bench_gen(&recs[i],
                      bench_mix64((start + done + i) ^ 0x2545f4914f6cdd1dULL) % s->sh->next,
                      c->nusers);
        double t0 = bench_now();
        int rc = c->e->lookup(&matched, s->db, recs, n);
        t += bench_now() - t0;
        if (rc)
            bench_fail(r, 2, "lookup failed");
        else if (matched != n)
            bench_fail(r, 1, "%zu of %zu lookups did not return the stored record", n - matched,
                       n);
        done += n;
    }
    free(recs);
    r->ops = done;
    r->secs = t;
}

/* How far a counter moved from reading a to reading b; -1 when either was
 * not available (-1) or it went back. */
static int64_t moved(int64_t a, int64_t b)
{
    return a < 0 || b < a ? -1 : b - a;
}

/* Device flushes and write requests since io0, for `writes` committed writes. */
static void io_since(bench_result *r, bench_devio io0, const char *path, uint64_t writes)
{
    bench_devio io1 = bench_device_io(path);
    r->flushes = moved(io0.flushes, io1.flushes);
    r->dev_writes = moved(io0.writes, io1.writes);
    r->writes = writes;
}

/* W3: --commits records, each inserted in its own (durable) transaction;
 * the nosync pair BENCH_NOSYNC_SCALE times as many: its commits take ~10 us,
 * and 500 of them (6 ms) were timing a scheduler tick as much as the engine. */
static void w3(run_ctx *c, dbstate *s, bench_result *r)
{
    uint64_t total = c->o->commits * (s->durable ? 1 : BENCH_NOSYNC_SCALE);
    uint64_t n = share(c, total, NULL), base = s->sh->next, i;
    bench_rec *recs = xcalloc(n, sizeof *recs);
    for (i = 0; i < n; i++)
        bench_gen(&recs[i], base + i, c->nusers);
    bench_devio io0 = bench_device_io(s->path);
    double t0 = bench_now();
    for (i = 0; i < n; i++)
        if (c->e->insert(s->db, &recs[i], 1))
            break;
    r->secs = bench_now() - t0;
    r->ops = i;
    io_since(r, io0, s->path, i);
    if (i < n)
        bench_fail(r, 2, "commit %llu failed", (unsigned long long)i);
    for (uint64_t j = 0; j < i; j++)
        expect_add(&s->sh->expect, &recs[j]);
    s->sh->next += i;
    free(recs);
    verify_counts(c, s, r);
    verify_present(c, s, r, base, i);
}

/* Check one scan: exactly the records of user u, in index order (user,
 * slot, id) -- which for the generator's records is id order. */
static void verify_scan(bench_result *r, const uint64_t *ids, size_t n, uint64_t u,
                        const uint32_t *hist, uint64_t next, uint64_t nusers)
{
    if (n != hist[u]) {
        bench_fail(r, 1, "scan of user %llu returned %zu rows, it has %u",
                   (unsigned long long)u, n, hist[u]);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == 0 || ids[i] > next || bench_user_of(ids[i] - 1, nusers) != u) {
            bench_fail(r, 1, "scan of user %llu returned record %llu of another user",
                       (unsigned long long)u, (unsigned long long)ids[i]);
            return;
        }
        if (i && ids[i] <= ids[i - 1]) {
            bench_fail(r, 1, "scan of user %llu is out of index order",
                       (unsigned long long)u);
            return;
        }
    }
}

/* W5: ordered scans of the non-unique index by a user prefix. */
static void w5(run_ctx *c, dbstate *s, bench_result *r)
{
    const bench_opts *o = c->o;
    uint32_t *hist = xcalloc(c->nusers, sizeof *hist);
    for (uint64_t i = 0; i < s->sh->next; i++)
        hist[bench_user_of(i, c->nusers)]++;
    char (*users)[16] = xcalloc(o->batch, sizeof *users);
    uint64_t *us = xcalloc(o->batch, sizeof *us);
    size_t *counts = xcalloc(o->batch, sizeof *counts);
    bench_ids ids = {0};
    double t = 0;
    uint64_t rows = 0, start, total = share(c, o->scans, &start);
    for (uint64_t done = 0; done < total && r->status <= 0;) {
        size_t n = chunk(total - done, o->batch);
        for (size_t j = 0; j < n; j++) {
            us[j] = bench_mix64((start + done + j) ^ 0x9fb21c651e98df25ULL) % c->nusers;
            bench_user_name(users[j], us[j]);
        }
        ids.n = 0;
        double t0 = bench_now();
        int rc = c->e->scan(&ids, counts, s->db, (const char (*)[16])users, n);
        t += bench_now() - t0;
        if (rc) {
            bench_fail(r, 2, "scan failed");
            break;
        }
        size_t at = 0;
        for (size_t j = 0; j < n && r->status <= 0; j++) {
            verify_scan(r, ids.v + at, counts[j], us[j], hist, s->sh->next, c->nusers);
            at += counts[j];
        }
        rows += ids.n;
        done += n;
    }
    r->ops = rows;
    r->secs = t;
    free(ids.v);
    free(counts);
    free(us);
    free(users);
    free(hist);
}

static void w4(run_ctx *c, dbstate *s, const bench_item *it, bench_result *r)
{
    uint64_t keys = 0, base = s->sh->next;
    if (it->procs) {
        c->e->close(s->db);    /* no handle may cross fork() */
        s->db = NULL;
    }
    bench_devio io0 = bench_device_io(s->path);
    int64_t t0 = c->e->lmdb_dir ? bench_lmdb_txnid(s->path) : -1;
    bench_udb_exec = it->exec;
    bench_w4(r, &keys, c->e, s->db, s->path, s->durable, c->o->duration, base, c->nusers,
             it->procs ? it->procs : it->threads, it->procs != 0, it->inflight);
    io_since(r, io0, s->path, keys);
    r->commits = t0 < 0 ? -1 : moved(t0, bench_lmdb_txnid(s->path));
    /* the count is checked where it is known: raw LMDB commits each record
       it writes alone, and a lookup that finds its record commits nothing */
    if (c->e->lmdb_dir && r->commits < 0)
        bench_fail(r, 2, "the commits could not be counted (data.mdb's meta pages)");
    else if (c->e->commit_per_write && (uint64_t)r->commits != keys)
        bench_fail(r, 1, "%lld commits counted for %llu records written, one each expected",
                   (long long)r->commits, (unsigned long long)keys);
    if (!s->db && c->e->open(&s->db, s->path, s->durable)) {
        bench_fail(r, 2, "reopen failed");
        return;
    }
    for (uint64_t k = 0; k < keys; k++) {
        bench_rec rec;
        bench_gen(&rec, base + k, c->nusers);
        expect_add(&s->sh->expect, &rec);
    }
    s->sh->next += keys;
    verify_counts(c, s, r);
    verify_present(c, s, r, base, keys);
}

static void db_init(dbstate *s, bench_engine_result *out, const bench_engine *e,
                    const char *dir, bool durable)
{
    s->sh = &out->db[durable];
    s->db = NULL;
    s->durable = durable;
    snprintf(s->path, sizeof s->path, "%s/%s-%s", dir, e->name, durable ? "sync" : "nosync");
}

static void note_rss(bench_engine_result *out)
{
    struct rusage self, kids;
    if (getrusage(RUSAGE_SELF, &self) || getrusage(RUSAGE_CHILDREN, &kids))
        return;
    long kb = self.ru_maxrss > kids.ru_maxrss ? self.ru_maxrss : kids.ru_maxrss;
    if (kb > out->rss_kb)
        out->rss_kb = kb;
}

void bench_run_item(bench_engine_result *out, const bench_engine *e, const bench_opts *o,
                    const bench_item *it, unsigned slice, bench_result *r, const char *dir)
{
    run_ctx c = {.e = e, .o = o, .nusers = bench_nusers(o), .slice = slice,
                 .slices = bench_slices(o, it)};
    dbstate s;
    db_init(&s, out, e, dir, it->durable);
    out->ran = true;
    r->status = 0;
    if (e->open(&s.db, s.path, s.durable)) {
        bench_fail(r, 2, "open failed");
        return;
    }
    if ((it->w == BENCH_W2 || it->w == BENCH_W5) && s.sh->next == 0) {
        bench_fail(r, 2, "no records to read (W1 loads them)");
    } else {
        switch (it->w) {
        case BENCH_W1: w1(&c, &s, r); break;
        case BENCH_W2: w2(&c, &s, r); break;
        case BENCH_W3: w3(&c, &s, r); break;
        case BENCH_W4: w4(&c, &s, it, r); break;
        case BENCH_W5: w5(&c, &s, r); break;
        default: bench_fail(r, 2, "unknown workload"); break;
        }
    }
    if (s.db)
        e->close(s.db);
    note_rss(out);
}

void bench_check_engine(bench_engine_result *out, const bench_engine *e, const char *dir)
{
    /* the sync-pair database: it went through every workload, W4's races too */
    dbstate s;
    db_init(&s, out, e, dir, true);
    if (!e->check || s.sh->expect.records == 0 || e->open(&s.db, s.path, s.durable))
        return;
    int rc = e->check(s.db);
    e->close(s.db);
    if (out->check <= 0)
        out->check = rc ? 1 : 0;
}
