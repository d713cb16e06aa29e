/*
 * init_race.c -- a failed `uniqdb init` or `uniqdb load --atomic` never
 * removes a database that another process opened or wrote meanwhile
 * (issue 23, item 1), with real processes.
 *
 *   init_race UNIQDB MODE
 *
 * Each round races two processes, started at one instant (support's gate),
 * the second after a random delay within the first's running time, on a
 * database directory that does not exist yet (or, in half the rounds, exists
 * and is empty, as a mounted volume would):
 *   init-app   `uniqdb init DB bad.json` (parses, fails to apply: a `where`
 *              naming no field) against an app that opens DB, applies its
 *              schema with UDB_SCHEMA_KEEP and acknowledges 20 udb_write
 *              inserts;
 *   load-app   `uniqdb load DB bad.ndjson --atomic` (the schema line, then
 *              an invalid record) against the same app;
 *   init-init  `uniqdb init DB bad.json` against `uniqdb init DB good.json`;
 *   good-app   `uniqdb init DB good.json` against the app: both succeed,
 *              whichever creates DB first.
 * After each round DB must exist and hold every record the app acknowledged
 * (a successful init: its schema), the failing command must have failed with
 * exit 5 and the other succeeded, and the round's directory must hold
 * nothing but DB, and DB no private directory of a command (a failed command
 * leaves nothing behind).
 *
 * MODE control-app is the negative control: the init-app race with the
 * failing side done by this program the way `uniqdb` did it before the fix
 * (create DB by opening it, fail, then remove the files and the directory
 * that were not there before it started).  Its verification must fail: it
 * runs up to three times the rounds and stops at the third loss.
 *
 * Rounds: UDB_INIT_RACE_ROUNDS (default 100).  Exits 0 if every round holds.
 * Without TMPDIR it works in /dev/shm when there is one: the race is between
 * directory operations, and on a disk each round's flushes take most of the
 * time.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support.h"
#include "uniqdb.h"

#define NREC 20

static const char GOOD[] =
    "{\"types\": {\"case\": {\"key\": \"id\", \"fields\": {\"id\": {\"type\": \"uint\"}, "
    "\"n\": {\"type\": \"str\"}}, \"unique\": {\"num\": {\"fields\": [\"n\"]}}}}}";
static const char BAD[] =
    "{\"types\": {\"case\": {\"key\": \"id\", \"fields\": {\"id\": {\"type\": \"uint\"}, "
    "\"n\": {\"type\": \"str\"}}, \"unique\": {\"num\": {\"fields\": [\"n\"], "
    "\"where\": \"nosuch = 1\"}}}}}";

enum mode { INIT_APP, LOAD_APP, INIT_INIT, GOOD_APP, CONTROL_APP };

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void sleep_us(unsigned us)
{
    struct timespec t = {us / 1000000u, (long)(us % 1000000u) * 1000L};
    while (nanosleep(&t, &t) != 0 && errno == EINTR)
        ;
}

static int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    int bad = fputs(text, f) < 0;
    return fclose(f) != 0 || bad ? -1 : 0;
}

static int insert_fn(udb_txn *txn, void *ctx)
{
    unsigned i = *(unsigned *)ctx;
    char buf[64], n[16];
    sup_fixbuf fb = {buf, sizeof buf, 0, false};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &fb, sup_fixbuf_write);
    snprintf(n, sizeof n, "r%u", i);
    sup_pack(&pk, "{s:u, s:s}", "id", i, "n", n);
    return udb_insert(NULL, txn, "case", fb.data, fb.len);
}

/* The long-lived app: exit status = how many inserts were acknowledged
 * (0..NREC), or 100 + the step that failed. */
static int app(const char *db)
{
    udb_env *env = NULL;
    char *changes = NULL;
    udb_options o = UDB_OPTIONS_INIT;
    o.flags = UDB_NOSYNC; /* acknowledged is what counts here, not a power cut: no flushes */
    if (udb_open(&env, db, &o) != 0) {
        fprintf(stderr, "app: open %s: %s\n", db, udb_env_errmsg(NULL));
        return 100;
    }
    int rc = udb_schema_apply(&changes, env, GOOD, strlen(GOOD), UDB_SCHEMA_KEEP);
    udb_free(changes);
    if (rc) {
        fprintf(stderr, "app: schema: %s\n", udb_env_errmsg(env));
        udb_close(env);
        return 101;
    }
    unsigned acked = 0;
    for (unsigned i = 1; i <= NREC; i++) {
        if ((rc = udb_write(env, insert_fn, &i)) != 0) {
            fprintf(stderr, "app: insert %u: %s\n", i, udb_env_errmsg(env));
            break;
        }
        acked++;
    }
    udb_close(env);
    return (int)acked;
}

/* The failing side as `uniqdb init` did it before issue 23: remember which
 * files were there, create the database by opening it, fail to apply the
 * schema, remove what was not there before.  Exit 5 like the tool. */
static int naive_init(const char *db)
{
    const char *const *files = udb_env_files();
    int had_dir = access(db, F_OK) == 0;
    unsigned long had = 0;
    char p[PATH_MAX];
    for (size_t i = 0; files[i]; i++) {
        snprintf(p, sizeof p, "%s/%s", db, files[i]);
        if (access(p, F_OK) == 0)
            had |= 1ul << i;
    }
    udb_env *env = NULL;
    char *changes = NULL;
    if (udb_open(&env, db, NULL) == 0 &&
        udb_schema_apply(&changes, env, BAD, strlen(BAD), 0) == 0) {
        udb_free(changes);
        udb_close(env);
        return 0;
    }
    udb_close(env);
    for (size_t i = 0; files[i]; i++) {
        snprintf(p, sizeof p, "%s/%s", db, files[i]);
        if (!(had & 1ul << i))
            unlink(p);
    }
    if (!had_dir)
        rmdir(db);
    return 5;
}

typedef struct side {
    enum { CLI, APP, NAIVE } kind;
    char *argv[8]; /* CLI: the command line */
} side;

/* Fork one side; it waits at the gate, then sleeps delay_us.  Its stderr
 * goes to errpath (kept for a failing round's report). */
static pid_t start(sup_gate *g, const side *s, const char *db, unsigned delay_us,
                   const char *errpath)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    sup_gate_enter(g);
    int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (fd < 0 || null < 0 || dup2(fd, 2) < 0 || dup2(null, 1) < 0)
        _exit(120);
    if (sup_gate_wait(g) != 0)
        _exit(121);
    if (delay_us)
        sleep_us(delay_us);
    if (s->kind == APP)
        _exit(app(db));
    if (s->kind == NAIVE)
        _exit(naive_init(db));
    execv(s->argv[0], s->argv);
    fprintf(stderr, "exec %s: %s\n", s->argv[0], strerror(errno));
    _exit(122);
}

static int status_of(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* What DB holds: -1 if it cannot be opened (gone), else how many of the
 * app's records 1..NREC it has; *types: how many types its schema has. */
static int holds(const char *db, size_t *types, char *why, size_t cap)
{
    udb_options o = UDB_OPTIONS_INIT;
    o.flags = UDB_RDONLY_ENV;
    udb_env *env = NULL;
    udb_txn *txn = NULL;
    *types = 0;
    if (udb_open(&env, db, &o) != 0) {
        snprintf(why, cap, "%s", udb_env_errmsg(NULL));
        return -1;
    }
    int found = 0;
    const char *const *names;
    if (udb_begin(&txn, env, UDB_RDONLY) == 0 && udb_types(&names, types, txn) == 0 &&
        *types > 0) {
        for (unsigned i = 1; i <= NREC; i++) {
            char key[16];
            sup_fixbuf fb = {key, sizeof key, 0, false};
            msgpack_packer pk;
            msgpack_packer_init(&pk, &fb, sup_fixbuf_write);
            msgpack_pack_unsigned_int(&pk, i);
            udb_val v;
            found += udb_get(&v, txn, "case", fb.data, fb.len) == 0;
        }
    }
    udb_abort(txn);
    udb_close(env);
    return found;
}

/* Entries of dir other than keep, written into out ("" if none). */
static void leftovers(const char *dir, const char *keep, char *out, size_t cap)
{
    out[0] = '\0';
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(out, cap, "(cannot list: %s)", strerror(errno));
        return;
    }
    struct dirent *e;
    size_t used = 0;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, keep) ||
            !strcmp(e->d_name, "a.err") || !strcmp(e->d_name, "b.err"))
            continue;
        int n = snprintf(out + used, cap - used, "%s%s", used ? " " : "", e->d_name);
        if (n < 0 || (size_t)n >= cap - used)
            break;
        used += (size_t)n;
    }
    closedir(d);
}

static void show_file(const char *label, const char *path)
{
    char *t = sup_read_file(path, NULL);
    if (t && *t)
        fprintf(stderr, "    %s: %.400s", label, t);
    free(t);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: init_race UNIQDB init-app|load-app|init-init|good-app|"
                        "control-app\n");
        return 2;
    }
    const char *u = argv[1], *ms = argv[2];
    enum mode m;
    if (!strcmp(ms, "init-app"))
        m = INIT_APP;
    else if (!strcmp(ms, "load-app"))
        m = LOAD_APP;
    else if (!strcmp(ms, "init-init"))
        m = INIT_INIT;
    else if (!strcmp(ms, "good-app"))
        m = GOOD_APP;
    else if (!strcmp(ms, "control-app"))
        m = CONTROL_APP;
    else {
        fprintf(stderr, "init_race: unknown mode %s\n", ms);
        return 2;
    }
    const char *r = getenv("UDB_INIT_RACE_ROUNDS");
    unsigned rounds = r && atoi(r) > 0 ? (unsigned)atoi(r) : 100;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    srand(seed);

    if (!getenv("TMPDIR") && access("/dev/shm", W_OK | X_OK) == 0)
        setenv("TMPDIR", "/dev/shm", 1);
    char base[PATH_MAX], good[PATH_MAX + 16], bad[PATH_MAX + 16], badload[PATH_MAX + 16];
    if (sup_mkdtemp(base, sizeof base, "udb-init-race-") != 0) {
        perror("init_race: mkdtemp");
        return 1;
    }
    snprintf(good, sizeof good, "%s/good.json", base);
    snprintf(bad, sizeof bad, "%s/bad.json", base);
    snprintf(badload, sizeof badload, "%s/bad.ndjson", base);
    char *line = NULL;
    if (asprintf(&line, "{\"schema\": %s}\n{\"type\": \"case\", \"record\": "
                 "{\"id\": \"not a uint\"}}\n", GOOD) < 0 || write_text(good, GOOD) ||
        write_text(bad, BAD) || write_text(badload, line)) {
        perror("init_race: writing inputs");
        return 1;
    }
    free(line);

    /* the first side fails (exit 5) except in good-app; the second is the app
       except in init-init */
    side a = {CLI, {(char *)u, "init", NULL, bad, NULL}};
    side b = {APP, {NULL}};
    int a_want = 5, b_cli = 0;
    if (m == LOAD_APP) {
        a.argv[1] = "load";
        a.argv[3] = badload;
        a.argv[4] = "--atomic";
    } else if (m == GOOD_APP) {
        a.argv[3] = good;
        a_want = 0;
    } else if (m == CONTROL_APP) {
        a.kind = NAIVE;
    } else if (m == INIT_INIT) {
        b = (side){CLI, {(char *)u, "init", NULL, good, NULL}};
        b_cli = 1;
    }

    /* how long the first side takes alone: the second starts within it */
    double t0 = now_s();
    char db[PATH_MAX + 64], err_a[PATH_MAX + 64], err_b[PATH_MAX + 64], dir[PATH_MAX + 32];
    for (int i = 0; i < 2; i++) {
        snprintf(dir, sizeof dir, "%s/solo", base);
        snprintf(db, sizeof db, "%s/L.db", dir);
        mkdir(dir, 0755);
        sup_gate g;
        snprintf(err_a, sizeof err_a, "%s/a.err", dir);
        if (sup_gate_init(&g) != 0) {
            perror("init_race: gate");
            return 1;
        }
        a.argv[2] = db;
        pid_t pa = start(&g, &a, db, 0, err_a);
        sup_gate_await(&g, 1, NULL);
        sup_gate_open(&g);
        sup_gate_close(&g);
        status_of(pa);
        sup_remove_tree(dir, false);
    }
    unsigned window = (unsigned)((now_s() - t0) / 2 * 1e6) + 1000;

    unsigned lost = 0, gone = 0, failed = 0, left = 0, ran = 0;
    if (m == CONTROL_APP)
        rounds *= 3;
    for (unsigned round = 0; round < rounds && !(m == CONTROL_APP && lost >= 3); round++) {
        snprintf(dir, sizeof dir, "%s/r%u", base, round);
        snprintf(db, sizeof db, "%s/L.db", dir);
        snprintf(err_a, sizeof err_a, "%s/a.err", dir);
        snprintf(err_b, sizeof err_b, "%s/b.err", dir);
        int premade = rand() % 2;
        if (mkdir(dir, 0755) != 0 || (premade && mkdir(db, 0755) != 0)) {
            perror("init_race: mkdir");
            return 1;
        }
        a.argv[2] = db;
        if (b_cli)
            b.argv[2] = db;
        sup_gate g;
        if (sup_gate_init(&g) != 0) {
            perror("init_race: gate");
            return 1;
        }
        ran++;
        /* mostly the second side starts while the first runs; sometimes first */
        unsigned da = 0, db_us = (unsigned)rand() % window;
        if (rand() % 4 == 0) {
            da = db_us / 4;
            db_us = 0;
        }
        pid_t pa = start(&g, &a, db, da, err_a);
        pid_t pb = start(&g, &b, db, db_us, err_b);
        sup_gate_await(&g, 2, NULL);
        sup_gate_open(&g);
        sup_gate_close(&g);
        int sa = status_of(pa), sb = status_of(pb);

        size_t types = 0;
        char why[600] = "", rest[600];
        int n = holds(db, &types, why, sizeof why);
        int acked = b_cli ? 0 : sb >= 0 && sb <= NREC ? sb : 0;
        int bad_round = 0;
        if (b_cli ? sb == 0 && (n < 0 || types == 0) : n < acked) {
            bad_round = 1;
            if (n < 0)
                gone++;
            lost++;
            fprintf(stderr, "round %u (DB %s): LOST: %s after the %s side succeeded (%s; "
                    "a exit %d, b exit %d)\n", round, premade ? "made before" : "new",
                    n < 0 ? "the database is gone" : "records missing",
                    b_cli ? "init good.json" : "app", n < 0 ? why : "fewer records than "
                    "acknowledged", sa, sb);
        }
        if (sa != a_want || (b_cli ? sb != 0 : sb != NREC)) {
            bad_round = 1;
            failed++;
            fprintf(stderr, "round %u (DB %s): exit %d (want %d) and %s %d (want %d)\n", round,
                    premade ? "made before" : "new", sa,
                    a_want, b_cli ? "exit" : "acknowledged", sb, b_cli ? 0 : NREC);
        }
        leftovers(dir, "L.db", rest, sizeof rest);
        if (!*rest && n >= 0) {
            /* inside DB: only the database's own files */
            char inside[600];
            leftovers(db, "", inside, sizeof inside);
            const char *const *files = udb_env_files();
            for (char *w = strtok(inside, " "); w; w = strtok(NULL, " ")) {
                size_t k;
                for (k = 0; files[k] && strcmp(files[k], w) != 0; k++)
                    ;
                if (!files[k])
                    snprintf(rest, sizeof rest, "L.db/%s", w);
            }
        }
        if (*rest) {
            bad_round = 1;
            left++;
            fprintf(stderr, "round %u (DB %s): left behind: %s\n", round,
                    premade ? "made before" : "new", rest);
        }
        if (bad_round) {
            show_file("a", err_a);
            show_file("b", err_b);
        }
        sup_remove_tree(dir, false);
    }
    sup_remove_tree(base, false);
    printf("init_race %s: %u rounds (second side within %u us; seed %u): %u lost "
           "(%u with the database gone), %u with wrong exits, %u with leftovers\n",
           ms, ran, window, seed, lost, gone, failed, left);
    return lost || failed || left ? 1 : 0;
}
