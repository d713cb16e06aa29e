/*
 * powerloss.c -- the power-loss suite: no ACKed write lost, no database
 * corrupted, whatever a power cut leaves on disk.
 *
 * A killed process leaves the kernel's page cache behind, so kill -9 tests
 * cannot show what a power cut does.  This suite does it as ALICE (Pillai et
 * al., OSDI 2014) and CrashMonkey do, without kernel support: for each case
 *  1. a workload runs with the recorder (recorder.c) interposed on its
 *     system calls, logging every change to the database directory, in one
 *     global order, plus an ACK each time the API acknowledged a write;
 *  2. crash.c computes, for crash points at every flush boundary, every ACK,
 *     every synchronous write and at random, the file states a power cut
 *     there could leave: nothing unflushed, everything, random page subsets,
 *     torn meta-page writes, lost or zeroed file growth;
 *  3. verify.c checks each distinct state in a fresh process.
 * Negative controls run unsafe configurations through the same machinery;
 * the suite fails unless it catches them.
 *
 * Usage: powerloss [CASE-SUBSTRING...]
 * Environment: UDB_POWERLOSS_SCALE=N  N times more random crash points and
 *                                      states, longer workloads (default 1)
 *              UDB_POWERLOSS_SEED=S    the random seed (default: from the clock)
 *              UDB_POWERLOSS_JOBS=J    cases run at once (default 2)
 *              UDB_POWERLOSS_KEEP=1    keep the directory of each failing state
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "powerloss.h"
#include "support.h"

static int selftest(const char *dir, const pl_case *c, int scale);

static const pl_case cases[] = {
    {"single", "one writer, a durable commit per record (udb_begin/udb_commit)",
     pl_run_single, 0, 0, false, 0, false, 0},
    {"threads", "8 threads through udb_write (group commit)", pl_run_threads, 0, 0, false, 0,
     false, 0},
    {"procs", "4 processes x 2 threads writing at once through udb_write", pl_run_procs, 0, 0,
     false, 0, false, 0},
    {"schema", "a new unique index built over existing records while a writer inserts",
     pl_run_schema, 0, 0, false, 0, false, 0},
    {"mapgrow", "2 processes x 2 threads while the map grows from 64 KiB", pl_run_mapgrow, 0,
     64u * 1024u, false, 0, false, 0},
    {"exec-single", "4 threads of udb_exec units (seq_next, insert, insert_or_get)",
     pl_run_exec_single, 0, 0, false, 0, false, 0},
    {"exec-procs", "4 processes x 2 threads of udb_exec units, shipped between processes",
     pl_run_exec_procs, 0, 0, false, 0, false, 0},
    {"control-nosync", "control: UDB_NOSYNC must be caught losing ACKed commits",
     pl_run_single, UDB_NOSYNC, 0, false, PL_MUST_LOSE, false, 0},
    {"control-early-ack", "control: an ACK given as the commit's flush begins must be caught",
     pl_run_single, 0, 0, true, PL_MUST_LOSE, false, 0},
    {"control-nometasync",
     "control: UDB_NOMETASYNC must be caught undoing the last ACKed commit, never corrupting",
     pl_run_single, UDB_NOMETASYNC, 0, false, PL_MUST_LOSE_ONLY, false, 0},
    {"control-exec-nosync", "control: exec units under UDB_NOSYNC must be caught lost",
     pl_run_exec_single, UDB_NOSYNC, 0, false, PL_MUST_LOSE, false, 100},
    {"control-exec-early-ack",
     "control: shipped units ACKed as a flush (any process's) begins must be caught lost",
     pl_run_exec_procs, 0, 0, true, PL_MUST_LOSE, false, 100},
    {"control-exec-nometasync",
     "control: shipped units under UDB_NOMETASYNC must be caught lost, never corrupt",
     pl_run_exec_procs, UDB_NOMETASYNC, 0, false, PL_MUST_LOSE_ONLY, false, 100},
    {"control-exec-split",
     "control: each unit as two udb_exec calls must be caught applied in part",
     pl_run_exec_procs, 0, 0, false, PL_MUST_SPLIT, true, 100},
    {"recorder-refuses", "the recorder aborts on writing calls it cannot model", selftest, 0,
     0, false, 0, false, 0},
};
#define NCASES (sizeof cases / sizeof cases[0])

typedef struct result {
    int done, passed;
    uint64_t states, points, acks, lost_states, corrupt_states, lost_acks;
    uint64_t partial_states, units;    /* exec cases: states with a unit in part; whole units */
    uint64_t writes, flushes, nacks;   /* what the recorder saw */
    double secs;
    char msg[400];
} result;

static const char *tmp_root(void)
{
    const char *t = getenv("TMPDIR");
    return t && *t ? t : "/tmp";
}

/* ---- distinct states: (contents, ACKs owed) seen before ---- */
typedef struct hashset {
    uint64_t *v;
    size_t n, cap;
} hashset;

/* 1 if h was new (and is now in), 0 if seen, -1 out of memory. */
static int hs_add(hashset *s, uint64_t h)
{
    h |= 1;   /* 0 marks an empty slot */
    if (2 * (s->n + 1) > s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 1024;
        uint64_t *v = calloc(cap, sizeof *v);
        if (!v)
            return -1;
        for (size_t i = 0; i < s->cap; i++)
            for (size_t j = s->v[i] % cap; s->v[i]; j = (j + 1) % cap)
                if (!v[j]) {
                    v[j] = s->v[i];
                    break;
                }
        free(s->v);
        s->v = v;
        s->cap = cap;
    }
    for (size_t j = h % s->cap;; j = (j + 1) % s->cap) {
        if (s->v[j] == h)
            return 0;
        if (!s->v[j]) {
            s->v[j] = h;
            s->n++;
            return 1;
        }
    }
}

/* ---- one case ---- */
typedef struct run {
    const pl_case *c;
    result *r;
    pl_log L;
    pl_state st;
    hashset seen;
    char state_dir[4096];
    char keep_dir[4096];
    int printed, keep;
    uint64_t limit;      /* controls: stop after this many states */
} run;

/* The exec workloads: their states are checked unit by unit too. */
static bool exec_case(const pl_case *c)
{
    return c->run == pl_run_exec_single || c->run == pl_run_exec_procs;
}

static const char *const verdict_name[] = {"ok", "LOST", "PARTIAL", "CORRUPT"};

static int check_one(run *R, uint64_t c, pl_choice *ch)
{
    result *r = R->r;
    if (pl_materialize(&R->st, &R->L, c, ch) != 0) {
        snprintf(r->msg, sizeof r->msg, "out of memory");
        return -1;
    }
    int fresh = hs_add(&R->seen, R->st.hash);
    if (fresh <= 0)
        return fresh;
    if (pl_state_write(&R->st, R->state_dir) != 0) {
        snprintf(r->msg, sizeof r->msg, "cannot write the state into %.200s: %s", R->state_dir,
                 strerror(errno));
        return -1;
    }
    pl_verdict v;
    pl_verify(&v, R->state_dir, &R->L, R->st.nacks, exec_case(R->c));
    r->states++;
    r->acks += v.acks_verified;
    r->lost_acks += v.lost;
    r->units += v.units;
    if (v.verdict == V_LOST)
        r->lost_states++;
    if (v.verdict == V_PARTIAL)
        r->partial_states++;
    if (v.verdict == V_CORRUPT)
        r->corrupt_states++;
    if (v.verdict != V_OK && !R->c->control && R->printed < 5) {
        R->printed++;
        printf("  %s: crash at seq %llu of %llu, %s, %zu ACKs owed: %s: %s\n", R->c->name,
               (unsigned long long)c, (unsigned long long)R->L.last, ch->desc, R->st.nacks,
               verdict_name[v.verdict], v.msg);
        if (R->keep) {
            char to[4200];
            snprintf(to, sizeof to, "%s-%d", R->keep_dir, R->printed);
            pl_rmtree(to);
            if (rename(R->state_dir, to) == 0)
                printf("  kept in %s\n", to);
        }
        fflush(stdout);
    }
    if (v.verdict != V_OK && !r->msg[0])
        snprintf(r->msg, sizeof r->msg, "%s at seq %llu (%.90s): %.250s",
                 verdict_name[v.verdict], (unsigned long long)c, ch->desc, v.msg);
    return 1;
}

/* Every state variant at crash point c. */
static int check_point(run *R, uint64_t c, int nrandom, uint64_t *rng)
{
    pl_choice ch;
    int rc = 0;
#define TRY(...)                                                  \
    do {                                                          \
        snprintf(ch.desc, sizeof ch.desc, __VA_ARGS__);           \
        if (R->r->states >= R->limit || check_one(R, c, &ch) < 0) \
            return -1;                                            \
    } while (0)
    ch = (pl_choice){.mode = ST_NONE};
    TRY("nothing unflushed");
    ch = (pl_choice){.mode = ST_NONE, .zeros = true};
    TRY("nothing unflushed, growth as zeros");
    ch = (pl_choice){.mode = ST_ALL};
    TRY("everything");
    for (int i = 0; i < nrandom; i++) {
        static const unsigned p[] = {32, 128, 224};
        ch = (pl_choice){.mode = ST_RANDOM, .p256 = p[i % 3], .zeros = pl_rand(rng) & 1,
                         .rng = pl_rand(rng)};
        TRY("random pages p=%u/256%s rng=%llu", ch.p256, ch.zeros ? ", growth as zeros" : "",
            (unsigned long long)ch.rng);
    }
    const rec_ev *torn[8];
    size_t nt = pl_torn_candidates(torn, 8, &R->L, c);
    for (size_t i = 0; i < nt; i++) {
        const rec_ev *w = torn[i];
        uint64_t first = (w->off / 512 + 1) * 512, nb = 0;
        if (first < w->off + w->len)
            nb = (w->off + w->len - 1 - first) / 512 + 1;
        /* a sector boundary inside the write, or nothing of it */
        uint64_t at = nb ? first + 512 * (pl_rand(rng) % nb) : w->off;
        for (int others = 0; others < 2; others++) {
            ch = (pl_choice){.mode = others ? ST_ALL : ST_NONE, .torn = w, .torn_at = at};
            TRY("write of %llu bytes at %llu torn at %llu, other unflushed writes %s",
                (unsigned long long)w->len, (unsigned long long)w->off,
                (unsigned long long)at, others ? "all there" : "lost");
        }
    }
#undef TRY
    return rc;
}

static int setup_db(const char *db, const pl_case *c)
{
    udb_options o = UDB_OPTIONS_INIT;
    o.flags = c->flags;
    o.map_size = c->map_size;
    udb_env *env;
    int rc = udb_open(&env, db, &o);
    if (rc) {
        fprintf(stderr, "%s: udb_open: %s\n", c->name, udb_env_errmsg(NULL));
        return rc;
    }
    rc = udb_schema_apply(NULL, env, pl_schema, strlen(pl_schema), 0);
    if (rc)
        fprintf(stderr, "%s: udb_schema_apply: %s\n", c->name, udb_env_errmsg(env));
    udb_close(env);
    return rc;
}

/* Record the workload in a child process; 0 if it succeeded. */
static int record(const char *db, const pl_case *c, int scale, result *r)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        if (rec_start(db) != 0) {
            fprintf(stderr, "%s: rec_start failed\n", c->name);
            _exit(2);
        }
        int rc = c->run(db, c, scale);
        rec_stop();
        _exit(rc);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    snprintf(r->msg, sizeof r->msg, "the workload failed (status 0x%x)%s%.300s", st,
             rec_log()->failed ? ": " : "", rec_log()->fail_msg);
    return -1;
}

static void run_case(const pl_case *c, result *r, int scale, uint64_t seed)
{
    run R = {.c = c, .r = r};
    char base[2048], db[4200], logp[4200], shm[2048];
    double t0 = (double)sup_now_us() / 1e6;
    uint64_t *points = NULL; /* freed at out */
    const char *keep = getenv("UDB_POWERLOSS_KEEP");
    R.keep = keep && *keep && strcmp(keep, "0");
    R.limit = c->control ? (c->limit ? c->limit : 600u) * (uint64_t)scale : UINT64_MAX;
    shm[0] = '\0';

    snprintf(base, sizeof base, "%s/udb-powerloss-%s-XXXXXX", tmp_root(), c->name);
    if (!mkdtemp(base)) {
        snprintf(r->msg, sizeof r->msg, "mkdtemp %.200s: %s", base, strerror(errno));
        goto out;
    }
    /* crash states are many small files written and read once: tmpfs if there is one */
    struct stat sb;
    if (stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(shm, sizeof shm, "/dev/shm/udb-powerloss-%s-XXXXXX", c->name);
        if (!mkdtemp(shm))
            shm[0] = '\0';
    }
    snprintf(db, sizeof db, "%s/db", base);
    snprintf(logp, sizeof logp, "%s/log", shm[0] ? shm : base);
    snprintf(R.state_dir, sizeof R.state_dir, "%s/state", shm[0] ? shm : base);
    snprintf(R.keep_dir, sizeof R.keep_dir, "%s/failed", base);

    if (c->run == selftest) {
        r->passed = selftest(base, c, scale) == 0;
        if (!r->passed)
            snprintf(r->msg, sizeof r->msg, "a writing call the recorder cannot model passed");
        goto out;
    }
    if (setup_db(db, c) != 0) {
        snprintf(r->msg, sizeof r->msg, "setting up the database failed");
        goto out;
    }
    size_t cap = (size_t)64 << 20;
    cap *= (size_t)(scale < 16 ? scale : 16);
    if (!rec_create(logp, cap)) {
        snprintf(r->msg, sizeof r->msg, "cannot create the log %.200s: %s", logp, strerror(errno));
        goto out;
    }
    unlink(logp);
    if (record(db, c, scale, r) != 0)
        goto out;
    char err[600];
    if (pl_log_load(&R.L, rec_log(), err, sizeof err) != 0) {
        snprintf(r->msg, sizeof r->msg, "%.390s", err);
        goto out;
    }
    if (!R.L.writes || !R.L.nacks || (!(c->flags & UDB_NOSYNC) && !R.L.flushes)) {
        snprintf(r->msg, sizeof r->msg, "the recorder saw %zu writes, %zu flushes, %zu ACKs: "
                 "is it interposing?", R.L.writes, R.L.flushes, R.L.nacks);
        goto out;
    }
    r->writes = R.L.writes;
    r->flushes = R.L.flushes;
    r->nacks = R.L.nacks;
    uint64_t rng = seed;
    size_t npoints = 0;
    points = pl_crash_points(&npoints, &R.L, 20 * (size_t)scale, &rng);
    if (!points) {
        snprintf(r->msg, sizeof r->msg, "out of memory");
        goto out;
    }
    /* crash points in random order, so a capped control still sees all of the run */
    for (size_t i = npoints; c->control && i > 1; i--) {
        size_t j = pl_rand(&rng) % i;
        uint64_t t = points[i - 1];
        points[i - 1] = points[j];
        points[j] = t;
    }
    int failed = 0;
    for (size_t i = 0; i < npoints && !failed && r->states < R.limit; i++) {
        failed = check_point(&R, points[i], 4 * scale, &rng) < 0 && r->states < R.limit;
        r->points++;
    }
    if (failed)
        goto out;
    uint64_t bad = r->lost_states + r->partial_states + r->corrupt_states;
    switch (c->control) {
    case 0:
        r->passed = bad == 0;
        break;
    case PL_MUST_LOSE:
        r->passed = r->lost_states > 0;
        break;
    case PL_MUST_LOSE_ONLY:
        r->passed = r->lost_states > 0 && r->corrupt_states == 0 && r->partial_states == 0;
        break;
    default:   /* PL_MUST_SPLIT */
        r->passed = r->partial_states > 0 && r->lost_acks == 0 && r->corrupt_states == 0;
        break;
    }
    if (c->control && !r->passed)
        snprintf(r->msg, sizeof r->msg, "NOT DETECTED: %.380s",
                 r->msg[0] ? r->msg : "no loss seen");
out:
    r->secs = (double)sup_now_us() / 1e6 - t0;
    free(points);
    pl_state_free(&R.st);
    free(R.seen.v);
    pl_log_free(&R.L);
    if (shm[0])
        pl_rmtree(shm);
    if (!R.keep || r->passed)
        pl_rmtree(base);
}

/* ---- the recorder's refusals ---- */
/* In a child: start recording dir, then run `what` on a tracked file; the
 * recorder must abort the child and say so in the log. */
static int refuses(const char *dir, int what, const char *needle)
{
    pid_t pid = fork();
    if (pid == 0) {
        char p[4200];
        snprintf(p, sizeof p, "%s/" UDB_DATA_FILE, dir);
        if (rec_start(dir) != 0)
            _exit(2);
        int fd = open(p, O_RDWR);
        if (fd < 0)
            _exit(3);
        if (what == 0) {
            void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            (void)m;
        } else if (what == 1) {
            struct iovec v = {"x", 1};
            (void)pwritev2(fd, &v, 1, 0, 0);
        } else {
            (void)dup(fd);
        }
        _exit(0);   /* not refused */
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    rec_hdr *h = rec_log();
    int ok = WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT && h->failed &&
             strstr(h->fail_msg, needle);
    if (!ok)
        printf("  recorder-refuses: %s was not refused (status 0x%x, log says \"%s\")\n",
               needle, st, h->fail_msg);
    h->failed = 0;
    h->fail_msg[0] = '\0';
    return !ok;
}

static int selftest(const char *dir, const pl_case *c, int scale)
{
    char p[4200], logp[4200];
    snprintf(p, sizeof p, "%s/" UDB_DATA_FILE, dir);
    snprintf(logp, sizeof logp, "%s/log", dir);
    int fd = open(p, O_RDWR | O_CREAT, 0600);
    if (fd < 0 || ftruncate(fd, 8192) != 0 || close(fd) != 0 || !rec_create(logp, 1 << 20))
        return 1;
    unlink(logp);
    int fails = refuses(dir, 0, "writable shared mapping");
    fails += refuses(dir, 1, "pwritev2");
    fails += refuses(dir, 2, "dup of a tracked descriptor");
    return fails;
}

int main(int argc, char **argv)
{
    const char *e = getenv("UDB_POWERLOSS_SCALE");
    int scale = e ? atoi(e) : 1;
    e = getenv("UDB_POWERLOSS_JOBS");
    int jobs = e ? atoi(e) : 2;
    e = getenv("UDB_POWERLOSS_SEED");
    uint64_t seed = e ? strtoull(e, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    if (scale < 1)
        scale = 1;
    if (jobs < 1)
        jobs = 1;

    size_t pick[NCASES], n = 0;
    for (size_t i = 0; i < NCASES; i++) {
        int want = argc < 2;
        for (int a = 1; a < argc; a++)
            want |= strstr(cases[i].name, argv[a]) != NULL;
        if (want)
            pick[n++] = i;
    }
    if (!n) {
        fprintf(stderr, "powerloss: no case matches; cases:");
        for (size_t i = 0; i < NCASES; i++)
            fprintf(stderr, " %s", cases[i].name);
        fprintf(stderr, "\n");
        return 2;
    }
    result *res = mmap(NULL, NCASES * sizeof *res, PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (res == MAP_FAILED)
        return 1;
    memset(res, 0, NCASES * sizeof *res);
    printf("powerloss: %zu cases, scale %d, seed %llu (UDB_POWERLOSS_SEED to repeat)\n", n,
           scale, (unsigned long long)seed);
    fflush(stdout);

    double t0 = (double)sup_now_us() / 1e6;
    pid_t pids[NCASES] = {0};
    size_t next = 0, running = 0;
    while (next < n || running) {
        if (next < n && running < (size_t)jobs) {
            size_t i = pick[next++];
            pid_t pid = fork();
            if (pid == 0) {
                run_case(&cases[i], &res[i], scale, seed + 7919 * i);
                res[i].done = 1;
                fflush(stdout);
                _exit(0);
            }
            pids[i] = pid;
            running++;
            continue;
        }
        int st;
        pid_t pid = wait(&st);
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (size_t i = 0; i < NCASES; i++) {
            if (pids[i] != pid)
                continue;
            running--;
            result *r = &res[i];
            if (!r->done)
                snprintf(r->msg, sizeof r->msg, "the case process died (status 0x%x)", st);
            char units[64] = "";
            if (exec_case(&cases[i]))
                snprintf(units, sizeof units, ", %llu whole units, partial %llu",
                         (unsigned long long)r->units, (unsigned long long)r->partial_states);
            printf("%-23s %s: recorded %llu writes, %llu flushes, %llu ACKs; %llu states at "
                   "%llu crash points, %llu ACKs verified%s, lost %llu, corrupt %llu (%.1f s)"
                   "%s%s\n",
                   cases[i].name, r->passed ? "ok" : "FAIL", (unsigned long long)r->writes,
                   (unsigned long long)r->flushes, (unsigned long long)r->nacks,
                   (unsigned long long)r->states,
                   (unsigned long long)r->points, (unsigned long long)r->acks, units,
                   (unsigned long long)r->lost_states, (unsigned long long)r->corrupt_states,
                   r->secs, r->msg[0] ? " -- " : "", r->msg);
            fflush(stdout);
        }
    }

    uint64_t states = 0, acks = 0, lost = 0, corrupt = 0, partial = 0;
    size_t passed = 0, failed = 0, controls = 0, detected = 0;
    char cdetail[2048] = "";
    for (size_t k = 0; k < n; k++) {
        const pl_case *c = &cases[pick[k]];
        const result *r = &res[pick[k]];
        r->passed ? passed++ : failed++;
        if (c->control) {
            controls++;
            detected += r->passed;
            size_t l = strlen(cdetail);
            if (c->control == PL_MUST_SPLIT)
                snprintf(cdetail + l, sizeof cdetail - l, "%s%s: %llu partial, %llu lost ACKs, "
                         "%llu corrupt", l ? "; " : "", c->name + strlen("control-"),
                         (unsigned long long)r->partial_states,
                         (unsigned long long)r->lost_acks,
                         (unsigned long long)r->corrupt_states);
            else
                snprintf(cdetail + l, sizeof cdetail - l, "%s%s: %llu lost, %llu corrupt",
                         l ? "; " : "", c->name + strlen("control-"),
                         (unsigned long long)r->lost_states,
                         (unsigned long long)r->corrupt_states);
        } else {
            states += r->states;
            acks += r->acks;
            lost += r->lost_states;
            partial += r->partial_states;
            corrupt += r->corrupt_states;
        }
    }
    printf("powerloss: %llu crash states checked, %llu acknowledged writes verified, lost %llu, "
           "partial %llu, corrupt %llu; controls detected %zu/%zu (%s); %.0f s\n",
           (unsigned long long)states, (unsigned long long)acks, (unsigned long long)lost,
           (unsigned long long)partial, (unsigned long long)corrupt, detected, controls,
           cdetail, (double)sup_now_us() / 1e6 - t0);
    printf("powerloss: %zu passed, %zu failed\n", passed, failed);
    return failed ? 1 : 0;
}
