/*
 * bench_report.c -- the results as a table for people and as JSON for
 * machines.  Both name the machine and the date, and which durability
 * settings were paired, because a number without them cannot be compared.
 */
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "uniqdb.h"

typedef struct machine {
    char cpu[128], kernel[200], date[32];
    long cores;
} machine;

static void machine_get(machine *m)
{
    snprintf(m->cpu, sizeof m->cpu, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0)
            continue;
        const char *v = strchr(line, ':');
        if (v) {
            v += strspn(v + 1, " \t") + 1;
            snprintf(m->cpu, sizeof m->cpu, "%.*s", (int)strcspn(v, "\n"), v);
        }
        break;
    }
    if (f)
        fclose(f);
    struct utsname u;
    if (uname(&u) == 0)
        snprintf(m->kernel, sizeof m->kernel, "%s %s %s", u.sysname, u.release, u.machine);
    else
        snprintf(m->kernel, sizeof m->kernel, "unknown");
    m->cores = sysconf(_SC_NPROCESSORS_ONLN);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(m->date, sizeof m->date, "%Y-%m-%d %H:%M UTC", &tm);
}

static const char *item_workload(const bench_item *it, char *buf, size_t cap)
{
    switch (it->w) {
    case BENCH_W1: return "W1 batched inserts";
    case BENCH_W2: return "W2 lookup by unique key";
    case BENCH_W3: return "W3 single-record commits";
    case BENCH_W5: return "W5 scan by index prefix";
    default: break;
    }
    if (it->inflight > 1)
        snprintf(buf, cap, "W4 insert_or_get %u proc%s x%u", it->procs, it->procs > 1 ? "s" : "",
                 it->inflight);
    else
        snprintf(buf, cap, "W4 insert_or_get %u %s%s", it->procs ? it->procs : it->threads,
                 it->procs ? "procs" : "threads", it->exec ? " exec" : "");
    return buf;
}

static const char *item_unit(const bench_item *it)
{
    static const char *const units[] = {
        [BENCH_W1] = "records/s", [BENCH_W2] = "lookups/s", [BENCH_W3] = "commits/s",
        [BENCH_W4] = "ops/s", [BENCH_W5] = "rows/s",
    };
    return units[it->w];
}

static const char *item_pair(const bench_item *it)
{
    if (it->w == BENCH_W2 || it->w == BENCH_W5)
        return "-";
    return it->durable ? "sync" : "nosync";
}

static double rate(const bench_result *r)
{
    return r->status == 0 && r->secs > 0 ? (double)r->ops / r->secs : 0;
}

/* -1: not measured or not available */
static double flushes_per_write(const bench_result *r)
{
    if (r->status != 0 || r->flushes < 0 || !r->writes)
        return -1;
    return (double)r->flushes / (double)r->writes;
}

/* -1: not measured or not available */
static double dev_writes_per_write(const bench_result *r)
{
    if (r->status != 0 || r->dev_writes < 0 || !r->writes)
        return -1;
    return (double)r->dev_writes / (double)r->writes;
}

/* -1: not counted (an engine that is not LMDB) or nothing committed */
static double writes_per_commit(const bench_result *r)
{
    if (r->status != 0 || r->commits <= 0)
        return -1;
    return (double)r->writes / (double)r->commits;
}

static int engine_index(const bench_engine *const *engines, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(engines[i]->name, name) == 0)
            return (int)i;
    return -1;
}

/* uniqdb's rate over the other engine's on item i, or 0 if either is missing. */
static double ratio(const bench_engine *const *engines, const bench_engine_result *res,
                    size_t n, size_t i, const char *other)
{
    int u = engine_index(engines, n, "uniqdb"), x = engine_index(engines, n, other);
    if (u < 0 || x < 0)
        return 0;
    double a = rate(&res[u].res[i]), b = rate(&res[x].res[i]);
    return a > 0 && b > 0 ? a / b : 0;
}

static void print_rate(double v)
{
    if (v <= 0)
        printf(" %12s", "FAIL");
    else if (v >= 100)
        printf(" %12.0f", v);
    else
        printf(" %12.1f", v);
}

static void print_ratio(double v)
{
    if (v > 0)
        printf(" %10.2fx", v);
    else
        printf(" %11s", "-");
}

/* Under the title, one line per durable W4 workload (and W3's with w3), with
 * each engine's figure fig ("n/a" where it is not available). */
static void print_figure(const bench_item *items, size_t nitems,
                         const bench_engine *const *engines, const bench_engine_result *res,
                         size_t nengines, const char *title, bool w3,
                         double (*fig)(const bench_result *))
{
    char wbuf[64];
    printf("\n%s:\n", title);
    for (size_t i = 0; i < nitems; i++) {
        if (!items[i].report || !(items[i].w == BENCH_W4 || (w3 && items[i].w == BENCH_W3)) ||
            !items[i].durable)
            continue;
        printf("  %-29s", item_workload(&items[i], wbuf, sizeof wbuf));
        for (size_t e = 0; e < nengines; e++) {
            double f = fig(&res[e].res[i]);
            if (f < 0)
                printf("  %s n/a", engines[e]->label);
            else
                printf("  %s %.2f", engines[e]->label, f);
        }
        printf("\n");
    }
}

void bench_report_table(const bench_opts *o, const bench_item *items, size_t nitems,
                        const bench_engine *const *engines, const bench_engine_result *res,
                        size_t nengines, const char *dir)
{
    machine m;
    machine_get(&m);
    printf("uniqdb-bench %s, %s\n", UDB_VERSION_STRING, m.date);
    printf("machine: %s, %ld cores, %s\n", m.cpu, m.cores, m.kernel);
    printf("records %llu, lookups %llu, scans %llu, commits %llu, batch %u, W4 %.1f s per run,"
           " dir %s\n", (unsigned long long)o->records, (unsigned long long)o->lookups,
           (unsigned long long)o->scans, (unsigned long long)o->commits, o->batch, o->duration,
           dir);
    printf("engines take turns in %u slice%s per workload (W4: 1), synced between;", o->slices,
           o->slices == 1 ? "" : "s");
    if (o->rounds > 1)
        printf(" each figure is the median of %u rounds on fresh databases", o->rounds);
    printf("\n");
    printf("SQLite page cache %u MiB per connection%s; uniqdb group commit %s\n",
           bench_sqlite_cache_mib ? bench_sqlite_cache_mib : 2,
           bench_sqlite_cache_mib ? "" : " (its default)",
           bench_udb_flags & UDB_NOGROUP ? "off (UDB_NOGROUP)" : "on");
    printf("durability pairs:\n");
    for (int pass = 0; pass < 2; pass++) {
        printf("  %-7s", pass ? "nosync" : "sync");
        for (size_t e = 0; e < nengines; e++)
            printf("%s %s: %s", e ? ";" : "", engines[e]->label,
                   pass ? engines[e]->nosync_desc : engines[e]->sync_desc);
        printf("\n");
    }
    printf("\n%-29s %-6s %-10s", "workload", "pair", "unit");
    for (size_t e = 0; e < nengines; e++)
        printf(" %12s", engines[e]->label);
    bool ratios = engine_index(engines, nengines, "uniqdb") >= 0;
    if (ratios)
        printf(" %11s %11s", "udb/SQLite", "udb/LMDB");
    printf("\n");
    char wbuf[64];
    for (size_t i = 0; i < nitems; i++) {
        const bench_item *it = &items[i];
        if (!it->report)
            continue;
        printf("%-29s %-6s %-10s", item_workload(it, wbuf, sizeof wbuf), item_pair(it),
               item_unit(it));
        for (size_t e = 0; e < nengines; e++)
            print_rate(rate(&res[e].res[i]));
        if (ratios) {
            print_ratio(ratio(engines, res, nengines, i, "sqlite"));
            print_ratio(ratio(engines, res, nengines, i, "lmdb"));
        }
        printf("\n");
    }
    for (size_t i = 0; i < nitems; i++) {
        if (!items[i].report || items[i].w != BENCH_W3)
            continue;
        printf("\nW3 %s time per commit:", item_pair(&items[i]));
        for (size_t e = 0; e < nengines; e++) {
            double r = rate(&res[e].res[i]);
            printf("  %s %.1f us", engines[e]->label, r > 0 ? 1e6 / r : 0);
        }
    }
    print_figure(items, nitems, engines, res, nengines, "device flushes per committed write "
                 "(whole device, so other I/O on it counts)", true, flushes_per_write);
    print_figure(items, nitems, engines, res, nengines, "device write requests per committed "
                 "write (whole device)", true, dev_writes_per_write);
    print_figure(items, nitems, engines, res, nengines, "committed writes per commit (LMDB's "
                 "transactions; SQLite commits each write alone)", false, writes_per_commit);
    printf("peak RSS (MiB): ");
    for (size_t e = 0; e < nengines; e++)
        printf(" %s %.1f", engines[e]->label, (double)res[e].rss_kb / 1024);
    printf("\n");
    bool ok = true;
    for (size_t e = 0; e < nengines; e++) {
        for (size_t i = 0; i < nitems; i++) {
            const bench_result *r = &res[e].res[i];
            if (r->status == 0)
                continue;
            ok = false;
            printf("%s %s: %s: %s\n", engines[e]->label,
                   item_workload(&items[i], wbuf, sizeof wbuf),
                   r->status == 1 ? "VERIFICATION FAILED" : "ERROR",
                   r->status < 0 ? "not run" : r->why);
        }
        if (res[e].check > 0) {
            ok = false;
            printf("%s: consistency check FAILED\n", engines[e]->label);
        }
    }
    printf("verification: %s\n", ok ? "every workload verified; consistency checks passed"
                                     : "FAILED (see above)");
}

/* ---- JSON ---- */

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void json_kv_str(const char *k, const char *v, bool comma)
{
    printf("%s", comma ? ", " : "");
    json_str(k);
    printf(": ");
    json_str(v);
}

static void json_ratio(const char *k, double v)
{
    printf(", ");
    json_str(k);
    if (v > 0)
        printf(": %.4f", v);
    else
        printf(": null");
}

void bench_report_json(const bench_opts *o, const bench_item *items, size_t nitems,
                       const bench_engine *const *engines, const bench_engine_result *res,
                       size_t nengines)
{
    machine m;
    machine_get(&m);
    printf("{");
    json_kv_str("tool", "uniqdb-bench", false);
    json_kv_str("version", UDB_VERSION_STRING, true);
    json_kv_str("date", m.date, true);
    printf(", \"machine\": {");
    json_kv_str("cpu", m.cpu, false);
    printf(", \"cores\": %ld", m.cores);
    json_kv_str("kernel", m.kernel, true);
    printf("}, \"config\": {\"records\": %llu, \"lookups\": %llu, \"scans\": %llu, "
           "\"commits\": %llu, \"batch\": %u, \"w4_seconds\": %.3f, \"sqlite_cache_mib\": %u, "
           "\"group_commit\": %s, \"rounds\": %u, \"slices\": %u}",
           (unsigned long long)o->records, (unsigned long long)o->lookups,
           (unsigned long long)o->scans, (unsigned long long)o->commits, o->batch, o->duration,
           bench_sqlite_cache_mib ? bench_sqlite_cache_mib : 2,
           bench_udb_flags & UDB_NOGROUP ? "false" : "true", o->rounds, o->slices);
    bool ok = true;
    printf(", \"engines\": {");
    for (size_t e = 0; e < nengines; e++) {
        printf("%s", e ? ", " : "");
        json_str(engines[e]->name);
        printf(": {");
        json_kv_str("label", engines[e]->label, false);
        json_kv_str("sync", engines[e]->sync_desc, true);
        json_kv_str("nosync", engines[e]->nosync_desc, true);
        printf(", \"peak_rss_kb\": %ld, \"check\": %s}", res[e].rss_kb,
               res[e].check < 0 ? "null" : res[e].check ? "false" : "true");
        ok &= res[e].check <= 0;
    }
    printf("}, \"results\": [");
    char wbuf[64];
    bool first = true;
    for (size_t i = 0; i < nitems; i++) {
        const bench_item *it = &items[i];
        if (!it->report)
            continue;
        printf("%s{\"workload\": \"W%d\"", first ? "" : ", ", it->w);
        first = false;
        json_kv_str("name", item_workload(it, wbuf, sizeof wbuf), true);
        json_kv_str("pair", item_pair(it), true);
        json_kv_str("unit", item_unit(it), true);
        printf(", \"threads\": %u, \"procs\": %u, \"exec\": %s, \"inflight\": %u, "
               "\"engines\": {", it->threads, it->procs, it->exec ? "true" : "false",
               it->inflight > 1 ? it->inflight : 1);
        for (size_t e = 0; e < nengines; e++) {
            const bench_result *r = &res[e].res[i];
            ok &= r->status == 0;
            printf("%s", e ? ", " : "");
            json_str(engines[e]->name);
            printf(": {\"ops\": %llu, \"seconds\": %.6f, \"ops_per_sec\": %.2f, ",
                   (unsigned long long)r->ops, r->secs, rate(r));
            if (flushes_per_write(r) >= 0)
                printf("\"flushes_per_write\": %.4f, ", flushes_per_write(r));
            else if (it->w == BENCH_W3 || it->w == BENCH_W4)
                printf("\"flushes_per_write\": null, ");
            if (it->w == BENCH_W3 || it->w == BENCH_W4)
                printf("\"writes\": %llu, ", (unsigned long long)r->writes);
            if (writes_per_commit(r) >= 0)
                printf("\"commits\": %lld, \"writes_per_commit\": %.4f, ",
                       (long long)r->commits, writes_per_commit(r));
            else if (it->w == BENCH_W4)
                printf("\"writes_per_commit\": null, ");
            if (dev_writes_per_write(r) >= 0)
                printf("\"device_writes_per_write\": %.4f, ", dev_writes_per_write(r));
            else if (it->w == BENCH_W3 || it->w == BENCH_W4)
                printf("\"device_writes_per_write\": null, ");
            printf("\"verified\": %s, \"error\": ", r->status == 0 ? "true" : "false");
            if (r->status == 0)
                printf("null}");
            else {
                json_str(r->status < 0 ? "not run" : r->why);
                printf("}");
            }
        }
        printf("}");
        json_ratio("uniqdb/sqlite", ratio(engines, res, nengines, i, "sqlite"));
        json_ratio("uniqdb/lmdb", ratio(engines, res, nengines, i, "lmdb"));
        printf("}");
    }
    for (size_t e = 0; e < nengines; e++)
        for (size_t i = 0; i < nitems; i++)
            ok &= res[e].res[i].status == 0;    /* load-only items count too */
    printf("], \"ok\": %s}\n", ok ? "true" : "false");
}
