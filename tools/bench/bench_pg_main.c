/*
 * bench_pg_main.c -- uniqdb-bench-pg: W2 lookups by unique key, W3
 * single-record commits and W4 insert_or_get from N processes, each through
 * the PostgreSQL backend and through the same statements written by hand
 * with libpq (the floor, bench_pg_floor.c), verified and timed by
 * uniqdb-bench's drivers.  Run it against a server, e.g. a throw-away one:
 *
 *   PG_RUN_FSYNC=on tests/postgres/pg_run build/tools/bench/uniqdb-bench-pg --rounds 3
 *
 * Each workload of each engine runs in a child process of its own, the
 * engines taking turns in an order that rotates; every round starts on
 * fresh schemas; the figures are medians over the rounds.  Exit status: 0
 * if everything verified, 1 if anything failed, 2 on bad usage or when the
 * server cannot be reached.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "bench_pg.h"

static const bench_engine *const ENGINES[] = {&bench_engine_pg_udb, &bench_engine_pg_floor};
#define NENG 2
#define DIR "pg"           /* the drivers' paths: "pg/<engine>-sync" */

static const char *conninfo = "postgresql://";

const char *bench_pg_conninfo(void)
{
    return conninfo;
}

void bench_pg_schema_of(char out[64], const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(out, 64, "bench_%s", base);
    for (char *p = out; *p; p++)
        if (*p == '-')
            *p = '_';
}

void bench_pg_url(char *out, size_t cap, const char *path)
{
    char sch[64];
    bench_pg_schema_of(sch, path);
    snprintf(out, cap, "%s%cschema=%s", conninfo, strchr(conninfo, '?') ? '&' : '?', sch);
}

static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;   /* "drop cascades to ...", "does not exist, skipping" */
}

/* Run sql on a connection of its own; the first value of its result into
 * val (may be NULL).  0 or -1. */
static int sql1(char *val, size_t cap, const char *sql)
{
    PGconn *c = PQconnectdb(conninfo);
    PQsetNoticeProcessor(c, quiet, NULL);
    PGresult *r = PQstatus(c) == CONNECTION_OK ? PQexec(c, sql) : NULL;
    ExecStatusType st = PQresultStatus(r);
    int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -1;
    if (rc)
        fprintf(stderr, "uniqdb-bench-pg: %s: %s", sql,
                r ? PQresultErrorMessage(r) : PQerrorMessage(c));
    else if (val)
        snprintf(val, cap, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    PQfinish(c);
    return rc;
}

int bench_pg_count(bench_counts *out, const char *schema)
{
    char sql[512], v[128];
    snprintf(sql, sizeof sql, "SELECT count(*)::text || ' ' || (count(*) * 2 + count(*) FILTER "
             "(WHERE status IN ('pending', 'confirmed')))::text FROM \"%s\".\"" BENCH_TYPE "\"",
             schema);
    unsigned long long recs, entries;
    if (sql1(v, sizeof v, sql) || sscanf(v, "%llu %llu", &recs, &entries) != 2)
        return -1;
    out->records = recs;
    out->entries = entries;
    return 0;
}

static void drop_schemas(void)
{
    for (size_t e = 0; e < NENG; e++) {
        char path[128], sch[64], sql[160];
        snprintf(path, sizeof path, DIR "/%s-sync", ENGINES[e]->name);
        bench_pg_schema_of(sch, path);
        snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS \"%s\" CASCADE", sch);
        sql1(NULL, 0, sql);
    }
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: uniqdb-bench-pg [options]\n"
        "The PostgreSQL backend against the same statements written by hand with libpq.\n"
        "  W2 random lookups by unique key (loaded first by batched inserts)\n"
        "  W3 single-record commits   W4 insert_or_get from N processes, each op a commit\n"
        "The server is libpq's default (PGHOST, PGDATABASE, ...) or --url.\n"
        "options:\n"
        "  --url URI        libpq connection URI (default postgresql://)\n"
        "  --records N      records loaded for W2 (default 20000)\n"
        "  --lookups N      W2 lookups (default 20000)\n"
        "  --batch N        lookups per read transaction, records per load txn (100)\n"
        "  --commits N      W3 commits (default 1000)\n"
        "  --procs N        W4 processes (default 8)\n"
        "  --duration SEC   seconds of W4 (default 3)\n"
        "  --rounds N       rounds on fresh schemas; medians reported (default 3)\n"
        "  --slices N       run W2 and W3 in N parts, the engines taking turns (4)\n"
        "  --only LIST      workloads, e.g. W2,W4 (default W2,W3,W4)\n");
}

static int num(uint64_t *out, const char *s, uint64_t min, uint64_t max)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse(bench_opts *o, int argc, char **argv)
{
    static const struct option lo[] = {
        {"url", required_argument, NULL, 'u'}, {"records", required_argument, NULL, 'r'},
        {"lookups", required_argument, NULL, 'l'}, {"batch", required_argument, NULL, 'b'},
        {"commits", required_argument, NULL, 'c'}, {"procs", required_argument, NULL, 'p'},
        {"duration", required_argument, NULL, 'd'}, {"rounds", required_argument, NULL, 'n'},
        {"only", required_argument, NULL, 'o'}, {"slices", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    uint64_t v;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        int bad = 0;
        char *end;
        switch (c) {
        case 'u': conninfo = optarg; break;
        case 'r': bad = num(&o->records, optarg, 1, 1u << 30); break;
        case 'l': bad = num(&o->lookups, optarg, 1, 1u << 30); break;
        case 'b': bad = num(&v, optarg, 1, 100000); o->batch = (unsigned)v; break;
        case 'c': bad = num(&o->commits, optarg, 1, 1u << 30); break;
        case 'p': bad = num(&v, optarg, 1, 64); o->procs = (unsigned)v; break;
        case 'n': bad = num(&v, optarg, 1, 64); o->rounds = (unsigned)v; break;
        case 's': bad = num(&v, optarg, 1, 100); o->slices = (unsigned)v; break;
        case 'd':
            o->duration = strtod(optarg, &end);
            bad = end == optarg || *end || !(o->duration > 0 && o->duration <= 600);
            break;
        case 'o':
            o->only = 0;
            for (const char *s = optarg; *s && !bad; s += strcspn(s, ",") + (s[strcspn(s, ",")]
                                                                          == ',')) {
                size_t n = strcspn(s, ",");
                if (n == 2 && (s[0] == 'W' || s[0] == 'w') && s[1] >= '2' && s[1] <= '4')
                    o->only |= 1u << (s[1] - '0');
                else
                    bad = 1;
            }
            bad |= !o->only;
            break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
        if (bad) {
            fprintf(stderr, "uniqdb-bench-pg: bad value for --%s: %s\n", lo[0].name[0] == c ?
                    lo[0].name : "option", optarg);
            return -1;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return -1;
    }
    return 0;
}

static size_t plan(bench_item *items, const bench_opts *o)
{
    size_t n = 0;
    if (o->only & (1u << BENCH_W2)) {
        items[n++] = (bench_item){BENCH_W1, true, 0, 0, false, false, 0};
        items[n++] = (bench_item){BENCH_W2, true, 0, 0, true, false, 0};
    }
    if (o->only & (1u << BENCH_W3))
        items[n++] = (bench_item){BENCH_W3, true, 0, 0, true, false, 0};
    if (o->only & (1u << BENCH_W4))
        items[n++] = (bench_item){BENCH_W4, true, 0, o->procs, true, false, 0};
    return n;
}

/* Client CPU seconds of each engine's last job (user + system, its
 * processes only: the server's are not counted). */
static double client_cpu[NENG];

static void run_job(bench_engine_result *out, const bench_engine *e, const bench_opts *o,
                    const bench_item *it, unsigned slice, bench_result *r, double *cpu)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        bench_run_item(out, e, o, it, slice, r, DIR);
        fflush(NULL);
        _exit(0);
    }
    int st = 0;
    struct rusage ru = {0};
    if (pid < 0 || wait4(pid, &st, 0, &ru) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        bench_fail(r, 2, "%s process %s", e->label, pid < 0 ? "could not start" : "died");
    *cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) * 1e-6;
}

/* Add one slice's outcome to the workload's (as uniqdb-bench does). */
static void merge_slice(bench_result *r, const bench_result *slice)
{
    r->ops += slice->ops;
    r->secs += slice->secs;
    if (slice->status > 0 && r->status <= 0) {
        r->status = slice->status;
        memcpy(r->why, slice->why, sizeof r->why);
    } else if (r->status < 0) {
        r->status = slice->status;
    }
}

static double rate(const bench_result *r)
{
    return r->secs > 0 ? (double)r->ops / r->secs : 0;
}

/* The median round (a failed one wins: it must be seen). */
static bench_result median(bench_result *r, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (r[i].status != 0)
            return r[i];
    for (unsigned i = 1; i < n; i++)
        for (unsigned j = i; j > 0 && rate(&r[j]) < rate(&r[j - 1]); j--) {
            bench_result t = r[j];
            r[j] = r[j - 1];
            r[j - 1] = t;
        }
    return r[n / 2];
}

static void header(const bench_opts *o)
{
    char cpu[128] = "unknown CPU", line[256], date[32], fsync[16] = "?", sync[16] = "?",
         ver[64] = "?";
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0 && strchr(line, ':')) {
            const char *v = strchr(line, ':') + 1;
            v += strspn(v, " \t");
            snprintf(cpu, sizeof cpu, "%.*s", (int)strcspn(v, "\n"), v);
            break;
        }
    if (f)
        fclose(f);
    double load[3] = {0};
    if (getloadavg(load, 3) < 0)
        load[0] = load[1] = load[2] = -1;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", &tm);
    struct utsname u;
    uname(&u);
    sql1(fsync, sizeof fsync, "SHOW fsync");
    sql1(sync, sizeof sync, "SHOW synchronous_commit");
    sql1(ver, sizeof ver, "SHOW server_version");
    printf("uniqdb-bench-pg: %s; %s, %ld cores, %s %s; load average %.2f %.2f %.2f\n", date,
           cpu, sysconf(_SC_NPROCESSORS_ONLN), u.sysname, u.release, load[0], load[1],
           load[2]);
    printf("PostgreSQL %s, fsync=%s, synchronous_commit=%s; libpq %d; %u round%s, medians; "
           "W2 %llu lookups over %llu records, %u per read txn; W3 %llu commits; W4 %u procs "
           "x %.1f s\n\n", ver, fsync, sync, PQlibVersion(), o->rounds, o->rounds > 1 ? "s" : "",
           (unsigned long long)o->lookups, (unsigned long long)o->records, o->batch,
           (unsigned long long)o->commits, o->procs, o->duration);
    if (strcmp(fsync, "on") != 0 || strcmp(sync, "on") != 0)
        printf("NOTE: the server does not flush commits (fsync=%s, synchronous_commit=%s): "
               "W3/W4 are not durable figures (PG_RUN_FSYNC=on tests/postgres/pg_run ...)\n\n",
               fsync, sync);
}

int main(int argc, char **argv)
{
    bench_opts o = {
        .records = 20000, .lookups = 20000, .commits = 1000, .batch = 100, .duration = 3.0,
        .procs = 8, .rounds = 3, .slices = 4, .only = (1u << 2) | (1u << 3) | (1u << 4),
    };
    if (parse(&o, argc, argv))
        return 2;
    if (sql1(NULL, 0, "SELECT 1"))
        return 2;
    header(&o);
    bench_item items[8];
    size_t nitems = plan(items, &o);
    bench_engine_result *res = mmap(NULL, NENG * sizeof *res, PROT_READ | PROT_WRITE,
                                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    bench_result *all = calloc((size_t)o.rounds * NENG * nitems, sizeof *all);
    if (res == MAP_FAILED || !all) {
        fprintf(stderr, "uniqdb-bench-pg: out of memory\n");
        return 2;
    }
    memset(res, 0, NENG * sizeof *res);
    for (unsigned round = 0; round < o.rounds; round++) {
        drop_schemas();
        for (size_t e = 0; e < NENG; e++) {
            memset(res[e].db, 0, sizeof res[e].db);
            for (size_t i = 0; i < nitems; i++)
                res[e].res[i] = (bench_result){.status = -1};
        }
        /* the engines take turns a slice at a time (W4 runs whole), so load
           that drifts during a workload skews both alike */
        for (size_t i = 0; i < nitems; i++) {
            double cpu[NENG] = {0};
            for (unsigned sl = 0; sl < bench_slices(&o, &items[i]); sl++)
                for (size_t k = 0; k < NENG; k++) {
                    size_t e = (i + sl + round + k) % NENG;   /* nobody always goes first */
                    res[e].slice = (bench_result){.status = -1};   /* shared memory */
                    run_job(&res[e], ENGINES[e], &o, &items[i], sl, &res[e].slice,
                            &client_cpu[e]);
                    merge_slice(&res[e].res[i], &res[e].slice);
                    cpu[e] += client_cpu[e];
                }
            for (size_t e = 0; e < NENG; e++)
                fprintf(stderr, "uniqdb-bench-pg: round %u W%d %s: %.0f/s, client CPU %.0f "
                        "us/op%s%s\n", round + 1, items[i].w, ENGINES[e]->label,
                        rate(&res[e].res[i]), res[e].res[i].ops ?
                        cpu[e] * 1e6 / (double)res[e].res[i].ops : 0.0,
                        res[e].res[i].status > 0 ? ": FAILED: " : "",
                        res[e].res[i].status > 0 ? res[e].res[i].why : "");
        }
        for (size_t e = 0; e < NENG; e++)
            for (size_t i = 0; i < nitems; i++)
                all[(e * nitems + i) * o.rounds + round] = res[e].res[i];
    }
    drop_schemas();
    printf("%-28s %-10s %10s %12s %13s %8s\n", "workload", "unit", "uniqdb-pg", "libpq floor",
           "uniqdb/floor", "paired");
    int rc = 0;
    for (size_t i = 0; i < nitems; i++) {
        if (!items[i].report)
            continue;
        /* the median of each round's own ratio: both sides of a round ran
           under the same load */
        double pr[64];
        unsigned np = 0;
        for (unsigned k = 0; k < o.rounds && k < 64; k++) {
            double a = rate(&all[(0 * nitems + i) * o.rounds + k]),
                   b = rate(&all[(1 * nitems + i) * o.rounds + k]);
            if (b > 0)
                pr[np++] = a / b;
        }
        for (unsigned x = 1; x < np; x++)
            for (unsigned y = x; y > 0 && pr[y] < pr[y - 1]; y--) {
                double tmp = pr[y];
                pr[y] = pr[y - 1];
                pr[y - 1] = tmp;
            }
        bench_result m[NENG];
        for (size_t e = 0; e < NENG; e++) {
            m[e] = median(&all[(e * nitems + i) * o.rounds], o.rounds);
            rc |= m[e].status != 0;
        }
        char w[64];
        const char *unit = items[i].w == BENCH_W2 ? "lookups/s" : items[i].w == BENCH_W3
                           ? "commits/s" : "ops/s";
        if (items[i].w == BENCH_W2)
            snprintf(w, sizeof w, "W2 lookup by unique key");
        else if (items[i].w == BENCH_W3)
            snprintf(w, sizeof w, "W3 single-record commits");
        else
            snprintf(w, sizeof w, "W4 insert_or_get %u procs", items[i].procs);
        printf("%-28s %-10s %10.0f %12.0f %12.2fx %7.2fx\n", w, unit, rate(&m[0]), rate(&m[1]),
               rate(&m[1]) > 0 ? rate(&m[0]) / rate(&m[1]) : 0.0, np ? pr[np / 2] : 0.0);
        for (size_t e = 0; e < NENG; e++)
            if (m[e].status != 0)
                printf("  %s: %s\n", ENGINES[e]->label,
                       m[e].status < 0 ? "not run" : m[e].why[0] ? m[e].why : "failed");
    }
    free(all);
    munmap(res, NENG * sizeof *res);
    return rc ? 1 : 0;
}
