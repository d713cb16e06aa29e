/*
 * bench_main.c -- uniqdb-bench: options, the plan of workloads, and the
 * processes that run it.
 *
 * Each slice of each workload of each engine runs in a child process of its
 * own, which opens the database, runs, and closes it: an engine's peak RSS
 * (ru_maxrss) is its own and nothing is inherited across engines.  Children
 * run one at a time, so engines never compete for the disk or the CPUs; the
 * disk is synced between them and they take turns slice by slice, so a disk
 * whose speed drifts (other load, writeback) skews them alike.  Results and
 * the databases' expected contents live in a shared anonymous mapping.
 * Exit status: 0 if every workload verified, 1 if any failed verification or
 * errored, 2 on bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "uniqdb.h"

static const bench_engine *const ALL_ENGINES[] = {
    &bench_engine_uniqdb, &bench_engine_lmdb, &bench_engine_sqlite,
};
#define NENGINES (sizeof ALL_ENGINES / sizeof ALL_ENGINES[0])

static void usage(FILE *f)
{
    fprintf(f,
        "usage: uniqdb-bench [options]\n"
        "Runs the same workloads on uniqdb, raw LMDB and SQLite and compares them.\n"
        "  W1 batched inserts   W2 random lookups by unique key   W3 single-record commits\n"
        "  W4 concurrent insert_or_get writers, each op its own durable commit\n"
        "  W5 ordered scans by a non-unique index prefix\n"
        "options:\n"
        "  --records N      records inserted by W1 (default 200000)\n"
        "  --lookups N      W2 lookups (default 200000)\n"
        "  --scans N        W5 prefix scans (default 20000)\n"
        "  --commits N      W3 commits (default 500; the nosync pair makes 20 times as many)\n"
        "  --batch N        records per W1 transaction, lookups/scans per read txn (1000)\n"
        "  --threads LIST   W4 thread counts (default 8,64; empty for none)\n"
        "  --procs N        W4 process count (default 8; 0 for none)\n"
        "  --inflight K     W4 rows with K operations in flight in each of --procs\n"
        "                   processes, and 4K in one (default 16; 0 for none)\n"
        "  --duration SEC   seconds per W4 configuration (default 2)\n"
        "  --only LIST      workloads to run, e.g. W1,W3 (default all)\n"
        "  --engines LIST   engines to run: uniqdb,lmdb,sqlite (default all)\n"
        "  --dir DIR        where databases go (default a new directory under $TMPDIR)\n"
        "  --keep           keep the databases afterwards\n"
        "  --no-group       open uniqdb with UDB_NOGROUP (no group commit)\n"
        "  --sqlite-cache MIB  SQLite page cache per connection (default 64; 0: SQLite's\n"
        "                   own default of 2 MiB)\n"
        "  --rounds N       repeat everything N times on fresh databases, report the\n"
        "                   median of each figure (default 1)\n"
        "  --slices N       run each workload but W4 in N parts, the engines taking\n"
        "                   turns, so a disk whose speed drifts skews them alike (4)\n"
        "  --json           print JSON instead of the table\n");
}

static int parse_u64(uint64_t *out, const char *s, uint64_t min, uint64_t max)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Split a comma list; fn is called per item and returns non-zero to reject it. */
static int each_item(const char *list, int (*fn)(const char *item, size_t len, void *ctx),
                     void *ctx)
{
    while (*list) {
        size_t n = strcspn(list, ",");
        if (n && fn(list, n, ctx))
            return -1;
        list += n + (list[n] == ',');
    }
    return 0;
}

static int add_threads(const char *s, size_t n, void *ctx)
{
    bench_opts *o = ctx;
    char buf[16];
    uint64_t v;
    if (n >= sizeof buf || o->nthreads == BENCH_MAX_THREADS)
        return -1;
    memcpy(buf, s, n);
    buf[n] = 0;
    if (parse_u64(&v, buf, 1, 1024))
        return -1;
    o->threads[o->nthreads++] = (unsigned)v;
    return 0;
}

static int add_workload(const char *s, size_t n, void *ctx)
{
    unsigned *only = ctx;
    if (n == 2 && (s[0] == 'W' || s[0] == 'w'))
        s++, n--;
    if (n != 1 || s[0] < '1' || s[0] > '5')
        return -1;
    *only |= 1u << (s[0] - '0');
    return 0;
}

static int add_engine(const char *s, size_t n, void *ctx)
{
    unsigned *engines = ctx;
    for (size_t e = 0; e < NENGINES; e++) {
        if (strlen(ALL_ENGINES[e]->name) == n && strncasecmp(ALL_ENGINES[e]->name, s, n) == 0) {
            *engines |= 1u << e;
            return 0;
        }
    }
    return -1;
}

enum { O_RECORDS = 256, O_LOOKUPS, O_SCANS, O_COMMITS, O_BATCH, O_THREADS, O_PROCS, O_INFLIGHT,
       O_DURATION,
       O_ONLY, O_ENGINES, O_DIR, O_KEEP, O_NOGROUP, O_SQLITE_CACHE, O_ROUNDS, O_SLICES, O_JSON,
       O_HELP };

static int parse_args(bench_opts *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"records", required_argument, NULL, O_RECORDS},
        {"lookups", required_argument, NULL, O_LOOKUPS},
        {"scans", required_argument, NULL, O_SCANS},
        {"commits", required_argument, NULL, O_COMMITS},
        {"batch", required_argument, NULL, O_BATCH},
        {"threads", required_argument, NULL, O_THREADS},
        {"procs", required_argument, NULL, O_PROCS},
        {"inflight", required_argument, NULL, O_INFLIGHT},
        {"duration", required_argument, NULL, O_DURATION},
        {"only", required_argument, NULL, O_ONLY},
        {"engines", required_argument, NULL, O_ENGINES},
        {"dir", required_argument, NULL, O_DIR},
        {"keep", no_argument, NULL, O_KEEP},
        {"no-group", no_argument, NULL, O_NOGROUP},
        {"sqlite-cache", required_argument, NULL, O_SQLITE_CACHE},
        {"rounds", required_argument, NULL, O_ROUNDS},
        {"slices", required_argument, NULL, O_SLICES},
        {"json", no_argument, NULL, O_JSON},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    const uint64_t big = (uint64_t)1 << 32;
    uint64_t v;
    int c;
    bool threads_given = false;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        int bad = 0;
        char *end;
        switch (c) {
        case O_RECORDS: bad = parse_u64(&o->records, optarg, 1, big); break;
        case O_LOOKUPS: bad = parse_u64(&o->lookups, optarg, 1, big); break;
        case O_SCANS: bad = parse_u64(&o->scans, optarg, 1, big); break;
        case O_COMMITS: bad = parse_u64(&o->commits, optarg, 1, big); break;
        case O_BATCH:
            bad = parse_u64(&v, optarg, 1, 1000000);
            o->batch = (unsigned)v;
            break;
        case O_THREADS:
            if (!threads_given)
                o->nthreads = 0;
            threads_given = true;
            bad = each_item(optarg, add_threads, o);
            break;
        case O_PROCS:
            bad = parse_u64(&v, optarg, 0, 1024);
            o->procs = (unsigned)v;
            break;
        case O_INFLIGHT:
            bad = parse_u64(&v, optarg, 0, 256);
            o->inflight = (unsigned)v;
            break;
        case O_DURATION:
            o->duration = strtod(optarg, &end);
            bad = end == optarg || *end || !(o->duration > 0 && o->duration <= 3600);
            break;
        case O_ONLY:
            o->only = 0;
            bad = each_item(optarg, add_workload, &o->only) || !o->only;
            break;
        case O_ENGINES:
            o->engines = 0;
            bad = each_item(optarg, add_engine, &o->engines) || !o->engines;
            break;
        case O_DIR: o->dir = optarg; break;
        case O_KEEP: o->keep = true; break;
        case O_NOGROUP: bench_udb_flags |= UDB_NOGROUP; break;
        case O_SQLITE_CACHE:
            bad = parse_u64(&v, optarg, 0, 1 << 20);
            bench_sqlite_cache_mib = (unsigned)v;
            break;
        case O_ROUNDS:
            bad = parse_u64(&v, optarg, 1, 64);
            o->rounds = (unsigned)v;
            break;
        case O_SLICES:
            bad = parse_u64(&v, optarg, 1, 100);
            o->slices = (unsigned)v;
            break;
        case O_JSON: o->json = true; break;
        case O_HELP: usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
        if (bad) {
            fprintf(stderr, "uniqdb-bench: bad value for --%s: %s\n",
                    longopts[c - O_RECORDS].name, optarg);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "uniqdb-bench: unexpected argument %s\n", argv[optind]);
        usage(stderr);
        return -1;
    }
    return 0;
}

/* The plan: the sync-pair database first (W1 loads what W2 and W5 read;
 * W3 and W4 add to it), then the nosync-pair database. */
static size_t plan(bench_item *items, const bench_opts *o)
{
    size_t n = 0;
    unsigned only = o->only;
#define WANT(w) (only & (1u << (w)))
    if (WANT(BENCH_W1) || WANT(BENCH_W2) || WANT(BENCH_W5))
        items[n++] = (bench_item){BENCH_W1, true, 0, 0, WANT(BENCH_W1) != 0, false, 0};
    if (WANT(BENCH_W2))
        items[n++] = (bench_item){BENCH_W2, true, 0, 0, true, false, 0};
    if (WANT(BENCH_W5))
        items[n++] = (bench_item){BENCH_W5, true, 0, 0, true, false, 0};
    if (WANT(BENCH_W3))
        items[n++] = (bench_item){BENCH_W3, true, 0, 0, true, false, 0};
    if (WANT(BENCH_W4)) {
        for (size_t i = 0; i < o->nthreads; i++)
            items[n++] = (bench_item){BENCH_W4, true, o->threads[i], 0, true, false, 0};
        if (o->procs) {
            items[n++] = (bench_item){BENCH_W4, true, 0, o->procs, true, false, 0};
            /* the declarative API, whose units processes hand to one leader */
            items[n++] = (bench_item){BENCH_W4, true, 0, o->procs, true, true, 0};
        }
        /* K operations in flight per process: uniqdb through udb_exec_async,
           the others a thread and a connection each */
        if (o->procs && o->inflight > 1)
            items[n++] = (bench_item){BENCH_W4, true, 0, o->procs, true, false, o->inflight};
        if (o->inflight > 1)
            items[n++] = (bench_item){BENCH_W4, true, 0, 1, true, false, 4 * o->inflight};
    }
    if (WANT(BENCH_W1))
        items[n++] = (bench_item){BENCH_W1, false, 0, 0, true, false, 0};
    if (WANT(BENCH_W3))
        items[n++] = (bench_item){BENCH_W3, false, 0, 0, true, false, 0};
#undef WANT
    return n;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return (flag == FTW_DP ? rmdir(path) : unlink(path)) ? -1 : 0;
}

/* Remove an engine's database directory (ours: we created it). */
static void rm_tree(const char *path)
{
    if (access(path, F_OK) == 0 && nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "uniqdb-bench: could not remove %s: %s\n", path, strerror(errno));
}

static void rm_engine_dirs(const char *dir, const bench_engine *e)
{
    char path[4096];
    for (int m = 0; m < 2; m++) {
        snprintf(path, sizeof path, "%s/%s-%s", dir, e->name, m ? "sync" : "nosync");
        rm_tree(path);
    }
}

/* One unit of work for a child process: item it of engine e, or (it NULL)
 * the engine's final consistency check. */
typedef struct job {
    bench_engine_result *out;
    const bench_engine *e;
    const bench_opts *o;
    const bench_item *it;
    unsigned slice;
    bench_result *r;
    const char *dir;
} job;

static void run_job(const job *j)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (j->it)
            bench_run_item(j->out, j->e, j->o, j->it, j->slice, j->r, j->dir);
        else
            bench_check_engine(j->out, j->e, j->dir);
        fflush(NULL);
        _exit(0);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        const char *what = pid < 0 ? "could not start" : "died";
        if (j->it)
            bench_fail(j->r, 2, "%s process %s", j->e->label, what);
        else
            j->out->check = 1;
    }
}
/* Before a workload starts, write back what the previous one left dirty
 * (a nosync run leaves a lot): otherwise whoever runs next pays for it. */
static void settle(const char *dir)
{
    fflush(NULL);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        syncfs(fd);
        close(fd);
    }
}

/* Two slices' counts of one thing; -1 when either was not counted. */
static int64_t sum_counted(int64_t a, int64_t b)
{
    return a < 0 || b < 0 ? -1 : a + b;
}

/* Add one slice's outcome to the workload's. */
static void merge_slice(bench_result *r, const bench_result *slice)
{
    r->ops += slice->ops;
    r->secs += slice->secs;
    r->writes += slice->writes;
    r->flushes = sum_counted(r->flushes, slice->flushes);
    r->dev_writes = sum_counted(r->dev_writes, slice->dev_writes);
    r->commits = sum_counted(r->commits, slice->commits);
    if (slice->status > 0 && r->status <= 0) {
        r->status = slice->status;
        memcpy(r->why, slice->why, sizeof r->why);
    } else if (r->status < 0) {
        r->status = slice->status;
    }
}

/* One round: every item of every engine, on fresh databases, the engines
 * taking turns a slice at a time, in an order that rotates. */
static void run_round(bench_engine_result *res, const bench_engine *const *engines,
                      size_t nengines, const bench_item *items, size_t nitems,
                      const bench_opts *o, const char *dir, unsigned round)
{
    for (size_t e = 0; e < nengines; e++) {
        rm_engine_dirs(dir, engines[e]);      /* a fresh start, also with --dir */
        memset(res[e].db, 0, sizeof res[e].db);
        for (size_t i = 0; i < nitems; i++)
            res[e].res[i] = (bench_result){.status = -1};
    }
    for (size_t i = 0; i < nitems; i++) {
        double took[NENGINES] = {0};
        for (unsigned sl = 0; sl < bench_slices(o, &items[i]); sl++) {
            for (size_t k = 0; k < nengines; k++) {
                size_t e = (i + sl + round + k) % nengines;   /* nobody always goes first */
                settle(dir);
                double t0 = bench_now();
                res[e].slice = (bench_result){.status = -1};
                job j = {&res[e], engines[e], o, &items[i], sl, &res[e].slice, dir};
                run_job(&j);
                merge_slice(&res[e].res[i], &res[e].slice);
                took[e] += bench_now() - t0;
            }
        }
        bool reads = items[i].w == BENCH_W2 || items[i].w == BENCH_W5;
        for (size_t e = 0; e < nengines; e++)
            fprintf(stderr, "uniqdb-bench: W%d%s %s: %.1f s\n", items[i].w,
                    reads ? "" : items[i].durable ? " sync" : " nosync", engines[e]->label,
                    took[e]);
    }
    for (size_t e = 0; e < nengines; e++) {
        double t0 = bench_now();
        job j = {&res[e], engines[e], o, NULL, 0, NULL, dir};
        run_job(&j);
        fprintf(stderr, "uniqdb-bench: consistency check %s: %.1f s\n", engines[e]->label,
                bench_now() - t0);
        if (!o->keep)
            rm_engine_dirs(dir, engines[e]);
    }
}

static double result_rate(const bench_result *r)
{
    return r->secs > 0 ? (double)r->ops / r->secs : 0;
}

/* The round with the median rate; a failed round wins (it must be seen). */
static bench_result median(const bench_result *r, unsigned n)
{
    size_t idx[64];
    size_t m = n < 64 ? n : 64;
    for (size_t i = 0; i < m; i++) {
        if (r[i].status != 0)
            return r[i];
        idx[i] = i;
    }
    for (size_t i = 1; i < m; i++)               /* insertion sort by rate */
        for (size_t j = i; j > 0 && result_rate(&r[idx[j]]) < result_rate(&r[idx[j - 1]]); j--) {
            size_t t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
    return r[idx[m / 2]];
}

int main(int argc, char **argv)
{
    bench_opts o = {
        .records = 200000, .lookups = 200000, .commits = 500, .scans = 20000, .batch = 1000,
        .duration = 2.0, .threads = {8, 64}, .nthreads = 2, .procs = 8, .inflight = 16,
        .only = 0x3e, .engines = (1u << NENGINES) - 1, .rounds = 1, .slices = 4,
    };
    if (parse_args(&o, argc, argv))
        return 2;
    bench_item items[BENCH_MAX_ITEMS];
    size_t nitems = plan(items, &o);

    char dir[4096];
    bool made_dir = false;
    if (o.dir) {
        snprintf(dir, sizeof dir, "%s", o.dir);
        if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
            fprintf(stderr, "uniqdb-bench: cannot create %s: %s\n", dir, strerror(errno));
            return 2;
        }
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/uniqdb-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir)) {
            fprintf(stderr, "uniqdb-bench: cannot create a directory in %s: %s\n",
                    tmp && *tmp ? tmp : "/tmp", strerror(errno));
            return 2;
        }
        made_dir = true;
    }

    const bench_engine *engines[NENGINES];
    size_t nengines = 0;
    for (size_t e = 0; e < NENGINES; e++)
        if (o.engines & (1u << e))
            engines[nengines++] = ALL_ENGINES[e];
    bench_engine_result *res = mmap(NULL, nengines * sizeof *res, PROT_READ | PROT_WRITE,
                                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (res == MAP_FAILED) {
        perror("uniqdb-bench: mmap");
        return 2;
    }
    memset(res, 0, nengines * sizeof *res);
    bench_result *all = calloc((size_t)o.rounds * nengines * nitems, sizeof *all);
    if (!all) {
        fprintf(stderr, "uniqdb-bench: out of memory\n");
        return 2;
    }
    for (size_t e = 0; e < nengines; e++)
        res[e].check = -1;
    for (unsigned round = 0; round < o.rounds; round++) {
        if (o.rounds > 1)
            fprintf(stderr, "uniqdb-bench: round %u of %u\n", round + 1, o.rounds);
        run_round(res, engines, nengines, items, nitems, &o, dir, round);
        for (size_t e = 0; e < nengines; e++)
            for (size_t i = 0; i < nitems; i++)
                all[(e * nitems + i) * o.rounds + round] = res[e].res[i];
    }
    for (size_t e = 0; e < nengines; e++)
        for (size_t i = 0; i < nitems; i++)
            res[e].res[i] = median(&all[(e * nitems + i) * o.rounds], o.rounds);
    free(all);
    if (made_dir && !o.keep)
        rmdir(dir);

    if (o.json)
        bench_report_json(&o, items, nitems, engines, res, nengines);
    else
        bench_report_table(&o, items, nitems, engines, res, nengines, dir);
    int rc = 0;
    for (size_t e = 0; e < nengines; e++) {
        rc |= res[e].check > 0;
        for (size_t i = 0; i < nitems; i++)
            rc |= res[e].res[i].status != 0;
    }
    munmap(res, nengines * sizeof *res);
    return rc ? 1 : 0;
}
