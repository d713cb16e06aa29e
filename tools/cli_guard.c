/*
 * cli_guard.c -- reading a possibly damaged database in a child process.
 *
 * LMDB trusts its pages: on some damage (a page header, a node offset, a
 * branch pointer) it dereferences garbage and the process dies with SIGSEGV
 * or SIGBUS, or it fails an assertion and aborts.  The library checks what
 * LMDB hands back (sizes, msgpack, key order), but it cannot stop LMDB from
 * crashing inside a call.  `check` and `dump` are what people run on a
 * damaged file, so they must end with a report, not a signal: each does its
 * reading in a forked child (which opens the database itself, as LMDB
 * requires after fork), and this parent turns a crash (a signal) or a hang
 * (no progress for UNIQDB_STALL_SECONDS, default 30, while spinning on the
 * CPU) into a report of the
 * part it was reading, exit 6.  (UNIQDB_NO_GUARD=1 reads in the process
 * itself: the negative control of tests/corrupt.)
 *
 * The work is cut into parts (check: one per type, then the sequences; dump:
 * the schema line, one per type, the sequences line).  The child says which
 * part it is in and how far it got through a shared page; after a crash the
 * parent forks again and the new child skips the parts before the next one
 * (check always; dump with --salvage, which also flushes every line so that
 * a crash loses none already read).  What follows the damage inside the
 * part that crashed is not read: a damaged page may sit anywhere in it, and
 * LMDB offers no way to step over one.
 *
 * The child sends lines to the parent (check's problems) through a pipe,
 * which also tells the parent at once when the child is gone.
 */
#include "cli_common.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct shared {
    uint64_t ticks;           /* bumped by the child as it makes progress */
    size_t first;             /* parts before this one are skipped */
    size_t part;              /* the part the child is in */
    uint64_t count;           /* lines written / entries walked in that part */
    char name[200];           /* the part's name */
    char last[200];           /* the last thing written in it */
    uint64_t stat[CLI_GUARD_STATS]; /* sums handed to the parent (cli_guard_stat_add) */
    /* resuming inside part `first` (dump --salvage): set by the parent */
    size_t phase;             /* which way to read it (0: the first way) */
    uint64_t skip;            /* entries to step over first */
    /* reported by the child for the part it is in */
    size_t cur_phase, phases; /* the way it reads it, and how many ways there are */
    uint64_t cur_skip, steps; /* entries stepped over, then read since */
    int skipping;             /* inside the step over */
} shared;

static shared *g;             /* non-NULL in a guarded child */
static int g_fd = -1;         /* the child's end of the pipe */
static bool g_flush;          /* flush stdout after every line (dump --salvage) */
static cli_guard_line_fn *g_line;   /* UNIQDB_NO_GUARD: lines go straight here */
static void *g_ctx;

bool cli_guard_child(void)
{
    return g != NULL;
}

bool cli_guard_salvage(void)
{
    return g && g_flush;
}

bool cli_guard_part(size_t part, const char *name)
{
    if (!g)
        return false;
    if (part < g->first)
        return true;
    if (g_flush)
        fflush(stdout);   /* what the parts before wrote survives a crash in this one */
    __atomic_store_n(&g->count, 0, __ATOMIC_RELAXED);
    g->last[0] = '\0';
    g->cur_phase = part == g->first ? g->phase : 0;
    g->cur_skip = part == g->first ? g->skip : 0;
    g->phases = 1;
    g->steps = 0;
    g->skipping = 0;
    snprintf(g->name, sizeof g->name, "%s", name);
    __atomic_store_n(&g->part, part, __ATOMIC_RELEASE);
    __atomic_add_fetch(&g->ticks, 1, __ATOMIC_RELAXED);
    return false;
}

void cli_guard_tick(const char *last)
{
    if (!g)
        return;
    if (g_flush)
        fflush(stdout);
    if (last) {
        /* a copy cut short: only for the parent's message */
        size_t n = strlen(last);
        if (n >= sizeof g->last)
            n = sizeof g->last - 1;
        memcpy(g->last, last, n);
        g->last[n] = '\0';
    }
    __atomic_add_fetch(&g->count, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&g->ticks, 1, __ATOMIC_RELAXED);
}

void cli_guard_resume(size_t *phase, uint64_t *skip, size_t phases)
{
    *phase = g ? g->cur_phase : 0;
    *skip = g ? g->cur_skip : 0;
    if (g)
        g->phases = phases;
}

void cli_guard_phase(size_t phase)
{
    if (!g)
        return;
    g->cur_phase = phase;
    g->cur_skip = 0;
    g->steps = 0;
    __atomic_add_fetch(&g->ticks, 1, __ATOMIC_RELAXED);
}

void cli_guard_skipping(bool on)
{
    if (g)
        g->skipping = on;
}

void cli_guard_step(void)
{
    if (!g)
        return;
    g->steps++;
    __atomic_add_fetch(&g->ticks, 1, __ATOMIC_RELAXED);
}

void cli_guard_stat_add(size_t i, uint64_t v)
{
    if (g && i < CLI_GUARD_STATS)
        g->stat[i] += v;
}

int cli_guard_send(const char *line)
{
    if (!g)
        return -1;
    if (g_fd < 0) {
        if (g_line)
            g_line(line, g_ctx);
        return 0;
    }
    size_t n = strlen(line);
    char nl = '\n';
    /* one write per line, so the parent never sees half of one */
    char *buf = malloc(n + 1);
    if (!buf)
        return -1;
    memcpy(buf, line, n);
    buf[n] = nl;
    ssize_t w = write(g_fd, buf, n + 1);
    free(buf);
    __atomic_add_fetch(&g->ticks, 1, __ATOMIC_RELAXED);
    return w == (ssize_t)(n + 1) ? 0 : -1;
}

static unsigned stall_seconds(void)
{
    const char *s = getenv("UNIQDB_STALL_SECONDS");
    char *end;
    unsigned long v = s ? strtoul(s, &end, 10) : 0;
    return s && *s && !*end && v > 0 && v < 86400 ? (unsigned)v : 30;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds the process has used (Linux /proc), or -1. */
static double cpu_seconds(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long long ut, st;
    /* after the name: state (field 3) ... utime, stime (fields 14, 15) */
    if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
                     &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Read what the child sends; NUL-free lines go to on_line.  Returns when the
 * child closed the pipe (it ended) or spun: no progress for `stall` seconds
 * while it used at least half of them on the CPU (returns true).  A child
 * that waits -- on a reader of its output that does not read, say -- is not
 * stuck in a damaged page and is left alone. */
static bool follow(int fd, pid_t pid, shared *sh, unsigned stall, cli_guard_line_fn *on_line,
                   void *ctx)
{
    double cpu_since = cpu_seconds(pid);
    char buf[8192];
    size_t have = 0;
    uint64_t seen = __atomic_load_n(&sh->ticks, __ATOMIC_RELAXED);
    double since = now_s();
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, 200);
        if (r < 0 && errno == EINTR)
            continue;
        if (r > 0) {
            ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;   /* the child is gone (or closed its end) */
            have += (size_t)n;
            char *start = buf, *nl;
            while ((nl = memchr(start, '\n', have - (size_t)(start - buf))) != NULL) {
                *nl = '\0';
                if (on_line)
                    on_line(start, ctx);
                start = nl + 1;
            }
            have -= (size_t)(start - buf);
            memmove(buf, start, have);
            if (have == sizeof buf - 1) {     /* a line too long: hand it on in pieces */
                buf[have] = '\0';
                if (on_line)
                    on_line(buf, ctx);
                have = 0;
            }
        }
        uint64_t t = __atomic_load_n(&sh->ticks, __ATOMIC_RELAXED);
        if (t != seen) {
            seen = t;
            since = now_s();
            cpu_since = cpu_seconds(pid);
        } else if (now_s() - since >= stall) {
            double cpu = cpu_seconds(pid);
            if (cpu < 0 || cpu_since < 0 || cpu - cpu_since >= stall / 2.0)
                return true;
            since = now_s();   /* it waits: look again later */
            cpu_since = cpu;
        }
    }
    return false;
}

int cli_guarded(uint64_t stat[CLI_GUARD_STATS], const char *what, cli_guard_fn *fn, void *arg,
                bool resume, cli_guard_crash_fn *on_crash, cli_guard_line_fn *on_line, void *ctx)
{
    if (getenv("UNIQDB_NO_GUARD")) {   /* the corruption fuzzer's negative control */
        static shared inline_sh;
        memset(&inline_sh, 0, sizeof inline_sh);
        g = &inline_sh;
        g_line = on_line;
        g_ctx = ctx;
        int ex = fn(arg);
        if (stat)
            memcpy(stat, inline_sh.stat, sizeof inline_sh.stat);
        g = NULL;
        return ex;
    }
    shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                      -1, 0);
    if (sh == MAP_FAILED)
        return cli_fail(CLI_EFAIL, NULL, "%s: mmap: %s", what, strerror(errno));
    memset(sh, 0, sizeof *sh);
    unsigned stall = stall_seconds();
    int ex = CLI_OK;
    bool crashed = false;
    for (;;) {
        int fds[2];
        if (pipe(fds) != 0) {
            ex = cli_fail(CLI_EFAIL, NULL, "%s: pipe: %s", what, strerror(errno));
            break;
        }
        fflush(stdout);
        fflush(stderr);
        sh->part = sh->first;
        sh->name[0] = sh->last[0] = '\0';
        sh->count = 0;
        pid_t pid = fork();
        if (pid < 0) {
            close(fds[0]);
            close(fds[1]);
            ex = cli_fail(CLI_EFAIL, NULL, "%s: fork: %s", what, strerror(errno));
            break;
        }
        if (pid == 0) {
            close(fds[0]);
            g = sh;
            g_fd = fds[1];
            g_flush = resume;
            int cex = fn(arg);
            if (fflush(stdout) == EOF || ferror(stdout)) {   /* as cli_main says it */
                fprintf(stderr, "uniqdb: writing to stdout failed (%s)\n", strerror(errno));
                if (cex == CLI_OK)
                    cex = CLI_EFAIL;
            }
            fflush(stderr);
            exit(cex);   /* not _exit: LeakSanitizer checks the child too */
        }
        close(fds[1]);
        bool stalled = follow(fds[0], pid, sh, stall, on_line, ctx);
        close(fds[0]);
        if (stalled)
            kill(pid, SIGKILL);
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        if (!stalled && WIFEXITED(st)) {
            ex = WEXITSTATUS(st);
            if (crashed && ex == CLI_OK)
                ex = CLI_ECHECK;
            break;
        }
        crashed = true;
        char how[96];
        if (stalled)
            snprintf(how, sizeof how, "spun for %u s without progress (killed; "
                     "UNIQDB_STALL_SECONDS sets the limit)", stall);
        else
            snprintf(how, sizeof how, "crashed (%s)", strsignal(WTERMSIG(st)));
        bool entered = sh->name[0] != '\0';
        cli_guard_report r = {sh->part, entered ? sh->name : "the database (opening it)",
                              sh->count, sh->last, how, sh->cur_phase, sh->phases,
                              sh->cur_skip, sh->steps, sh->skipping != 0};
        int next = on_crash(&r, ctx);
        if (!resume || !entered || next == CLI_GUARD_STOP) {
            /* no part begun: the next child would crash alike */
            ex = CLI_ECHECK;
            break;
        }
        if (next == CLI_GUARD_RETRY) {   /* the same part, read another way */
            sh->first = sh->part;
            sh->phase = r.phase;
            sh->skip = r.skip;
        } else {
            sh->first = sh->part + 1;
            sh->phase = 0;
            sh->skip = 0;
        }
    }
    if (stat)
        memcpy(stat, sh->stat, sizeof sh->stat);
    munmap(sh, sizeof *sh);
    return ex;
}
