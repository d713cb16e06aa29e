/*
 * race_backup.c -- hot backups (udb_backup) taken while writer processes
 * keep writing: every backup must hold every write acknowledged before it
 * began, and pass udb_check.
 *
 * PROCS writer processes of THREADS threads each, and a thread of the parent,
 * write units in a loop; the unit number s of writer slot w is [insert k{id: w<<32|s}, upsert
 * progress{id: w, n: s}, insert scratch{id: w<<32|s, 2 KiB}, delete the
 * previous scratch] -- through udb_exec() for even s (units may be shipped to
 * another process's leader) and udb_write() for odd s (group commit within
 * the process); the updates and deletes leave free pages for the compacting
 * copy to drop.  Once the call returned 0 the writer counts the unit as
 * acknowledged, in shared memory.  The parent takes BACKUPS backups,
 * alternately plain and compacted, alternately in itself (where its own
 * writer thread shares the environment) and in a new process that opens
 * the database read-only (as `uniqdb backup` does).  Before each it notes
 * every slot's acknowledged count; the copy must then hold, per slot, every
 * k record below the count and a progress record at least count - 1, no k
 * record beyond what was started when the backup returned, and pass
 * udb_check.
 *
 * Negative control: `race_backup --stale` notes the counts only after the
 * backup returned and each writer has acknowledged a unit it started after
 * that -- as if the backup's snapshot had been taken before those
 * acknowledgements.  The same verdict must fail.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>

#include "support.h"
#include "uniqdb.h"

/* writer slots: THREADS in each process, and one thread of the parent's, which
   backs up in the same process as it writes */
enum { PROCS = 3, THREADS = 2, SLOTS = PROCS * THREADS + 1, BACKUPS = 12 };
/* records written before the writers start (not a writer's: slot PRELOAD) */
enum { PRELOAD = 1000, PRELOAD_N = 3000 };

static const char SCHEMA[] =
    "{\"types\": {"
    "\"k\": {\"key\": \"id\", \"fields\": {\"id\": {\"type\": \"uint\"},"
    " \"w\": {\"type\": \"uint\", \"required\": true},"
    " \"n\": {\"type\": \"uint\", \"required\": true},"
    " \"u\": {\"type\": \"str\", \"required\": true}},"
    " \"unique\": {\"u\": {\"fields\": [\"u\"]}},"
    " \"indexes\": {\"by_w\": {\"fields\": [\"w\", \"n\"]}}},"
    "\"progress\": {\"key\": \"id\", \"fields\": {\"id\": {\"type\": \"uint\"},"
    " \"n\": {\"type\": \"uint\", \"required\": true}}},"
    "\"scratch\": {\"key\": \"id\", \"fields\": {\"id\": {\"type\": \"uint\"},"
    " \"pad\": {\"type\": \"str\", \"required\": true}}}}}";

typedef struct slot {
    _Atomic uint64_t started;   /* units begun (the unit numbered started - 1 is running) */
    _Atomic uint64_t acked;     /* units acknowledged: 0 .. acked - 1 */
} slot;

typedef struct shared {
    _Atomic int stop;
    _Atomic int failed;
    slot slots[SLOTS];
} shared;

static shared *sh;
static char path[512];
static char pad[2048];

typedef struct unit {
    uint64_t w, s;
    msgpack_sbuffer k, prog, scratch, key, prev;
} unit;

static void pack(msgpack_sbuffer *sb, const char *fmt, ...)
{
    msgpack_sbuffer_clear(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    va_list ap;
    va_start(ap, fmt);
    sup_vpack(&pk, fmt, &ap);
    va_end(ap);
}

static void unit_pack(unit *u)
{
    unsigned long long id = u->w << 32 | u->s;
    char name[64];
    snprintf(name, sizeof name, "u-%llu", id);
    pack(&u->k, "{s:U, s:U, s:U, s:s}", "id", id, "w", (unsigned long long)u->w, "n",
         (unsigned long long)u->s, "u", name);
    pack(&u->prog, "{s:U, s:U}", "id", (unsigned long long)u->w, "n",
         (unsigned long long)u->s);
    pack(&u->scratch, "{s:U, s:s}", "id", id, "pad", pad);
    pack(&u->prev, "U", id - 1);
}

static int write_fn(udb_txn *txn, void *ctx)
{
    unit *u = ctx;
    int rc = udb_insert(NULL, txn, "k", u->k.data, u->k.size);
    if (!rc)
        rc = udb_upsert(NULL, NULL, txn, "progress", NULL, u->prog.data, u->prog.size, NULL, 0);
    if (!rc)
        rc = udb_insert(NULL, txn, "scratch", u->scratch.data, u->scratch.size);
    if (!rc && u->s)
        rc = udb_delete(txn, "scratch", u->prev.data, u->prev.size);
    return rc;
}

static int exec_unit(udb_env *env, unit *u)
{
    udb_op ops[4] = {UDB_OP_INIT, UDB_OP_INIT, UDB_OP_INIT, UDB_OP_INIT};
    ops[0].kind = UDB_OP_INSERT;
    ops[0].type = "k";
    ops[0].rec = (udb_val){u->k.data, u->k.size};
    ops[1].kind = UDB_OP_UPSERT;
    ops[1].type = "progress";
    ops[1].rec = (udb_val){u->prog.data, u->prog.size};
    ops[2].kind = UDB_OP_INSERT;
    ops[2].type = "scratch";
    ops[2].rec = (udb_val){u->scratch.data, u->scratch.size};
    ops[3].kind = UDB_OP_DELETE;
    ops[3].type = "scratch";
    ops[3].key = (udb_val){u->prev.data, u->prev.size};
    udb_results *res;
    int rc = udb_exec(&res, env, ops, u->s ? 4 : 3);
    udb_results_free(res);
    return rc;
}

typedef struct wctx {
    udb_env *env;
    uint64_t w;
} wctx;

static void *writer_thread(void *arg)
{
    wctx *c = arg;
    unit u = {.w = c->w};
    msgpack_sbuffer_init(&u.k);
    msgpack_sbuffer_init(&u.prog);
    msgpack_sbuffer_init(&u.scratch);
    msgpack_sbuffer_init(&u.prev);
    slot *sl = &sh->slots[c->w];
    for (u.s = 0; !atomic_load(&sh->stop); u.s++) {
        unit_pack(&u);
        atomic_store(&sl->started, u.s + 1);
        int rc = u.s % 2 ? udb_write(c->env, write_fn, &u) : exec_unit(c->env, &u);
        if (rc) {
            fprintf(stderr, "writer %llu: unit %llu: %s\n", (unsigned long long)c->w,
                    (unsigned long long)u.s, udb_env_errmsg(c->env));
            atomic_store(&sh->failed, 1);
            break;
        }
        atomic_store(&sl->acked, u.s + 1);
    }
    msgpack_sbuffer_destroy(&u.k);
    msgpack_sbuffer_destroy(&u.prog);
    msgpack_sbuffer_destroy(&u.scratch);
    msgpack_sbuffer_destroy(&u.prev);
    return NULL;
}

static int writer_proc(int p)
{
    udb_env *env;
    if (udb_open(&env, path, NULL)) {
        fprintf(stderr, "writer process %d: udb_open: %s\n", p, udb_env_errmsg(NULL));
        return 2;
    }
    pthread_t th[THREADS];
    wctx c[THREADS];
    int n = 0;
    for (int t = 0; t < THREADS; t++) {
        c[t] = (wctx){env, (uint64_t)(p * THREADS + t)};
        if (pthread_create(&th[t], NULL, writer_thread, &c[t]) == 0)
            n++;
    }
    for (int t = 0; t < n; t++)
        pthread_join(th[t], NULL);
    udb_close(env);
    return n == THREADS ? 0 : 3;
}

static void report(const char *problem, void *ctx)
{
    (void)ctx;
    fprintf(stderr, "udb_check of the copy: %s\n", problem);
}

static uint64_t total_acked(void)
{
    uint64_t n = 0;
    for (int w = 0; w < SLOTS; w++)
        n += atomic_load(&sh->slots[w].acked);
    return n;
}

/* The verdict on one copy: the number of failures. */
static int verify(const char *dir, const uint64_t marks[SLOTS], const uint64_t started[SLOTS])
{
    udb_options o = UDB_OPTIONS_INIT;
    o.flags = UDB_RDONLY_ENV;
    udb_env *env;
    if (udb_open(&env, dir, &o))
        return fprintf(stderr, "%s: udb_open: %s\n", dir, udb_env_errmsg(NULL)), 1;
    int bad = 0;
    size_t problems = 0;
    int rc = udb_check(&problems, env, report, NULL);
    if (rc || problems) {
        fprintf(stderr, "%s: udb_check: %s, %zu problems\n", dir, udb_strerror(rc), problems);
        bad++;
    }
    udb_txn *txn;
    if ((rc = udb_begin(&txn, env, UDB_RDONLY))) {
        udb_close(env);
        return fprintf(stderr, "%s: udb_begin: %s\n", dir, udb_strerror(rc)), bad + 1;
    }
    for (uint64_t w = 0; w < SLOTS; w++) {
        size_t missing = 0;
        udb_val rec;
        msgpack_sbuffer key;
        msgpack_sbuffer_init(&key);
        for (uint64_t s = 0; s < marks[w]; s++) {
            pack(&key, "U", (unsigned long long)(w << 32 | s));
            if (udb_get(&rec, txn, "k", key.data, key.size) != 0 && missing++ < 3)
                fprintf(stderr, "%s: writer %llu's unit %llu was acknowledged before the "
                        "backup began, and is not in the copy\n", dir, (unsigned long long)w,
                        (unsigned long long)s);
        }
        /* nothing that had not even started when the backup returned */
        pack(&key, "U", (unsigned long long)(w << 32 | started[w]));
        if (udb_get(&rec, txn, "k", key.data, key.size) == 0) {
            fprintf(stderr, "%s: writer %llu's unit %llu is in the copy, but was started "
                    "after the backup returned\n", dir, (unsigned long long)w,
                    (unsigned long long)started[w]);
            bad++;
        }
        if (marks[w]) {
            pack(&key, "U", (unsigned long long)w);
            msgpack_unpacked u;
            msgpack_unpacked_init(&u);
            const msgpack_object *n = NULL;
            if (udb_get(&rec, txn, "progress", key.data, key.size) == 0 &&
                sup_unpack(&u, rec.data, rec.size) == 0)
                n = sup_map_get(&u.data, "n");
            if (!n || n->via.u64 + 1 < marks[w]) {
                fprintf(stderr, "%s: writer %llu's progress is %lld in the copy, below the "
                        "%llu acknowledged\n", dir, (unsigned long long)w,
                        n ? (long long)n->via.u64 : -1LL, (unsigned long long)marks[w] - 1);
                bad++;
            }
            if (n)
                msgpack_unpacked_destroy(&u);
        }
        msgpack_sbuffer_destroy(&key);
        if (missing) {
            fprintf(stderr, "%s: writer %llu: %zu acknowledged units missing\n", dir,
                    (unsigned long long)w, missing);
            bad++;
        }
    }
    udb_abort(txn);
    udb_close(env);
    return bad;
}

/* The backup of another process: this program again, run by exec (a fresh
 * process, not a fork of the threaded parent: ThreadSanitizer cannot follow
 * threads started after a multi-threaded fork), in --backup-child mode. */
static int backup_child_main(const char *db, const char *dest, const char *flags)
{
    udb_options o = UDB_OPTIONS_INIT;
    o.flags = UDB_RDONLY_ENV;
    udb_env *env;
    int rc = udb_open(&env, db, &o);
    if (!rc && (rc = udb_backup(env, dest, (unsigned)strtoul(flags, NULL, 10))))
        fprintf(stderr, "backup process: %s\n", udb_env_errmsg(env));
    if (rc && !env)
        fprintf(stderr, "backup process: %s\n", udb_env_errmsg(NULL));
    udb_close(env);
    return rc ? 1 : 0;
}

static int backup_in_child(const char *dest, unsigned flags)
{
    char fl[16];
    snprintf(fl, sizeof fl, "%u", flags);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/proc/self/exe", "race_backup", "--backup-child", path, dest, fl, (char *)NULL);
        _exit(127);
    }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--backup-child") == 0)
        return backup_child_main(argv[2], argv[3], argv[4]);
    bool stale = argc > 1 && strcmp(argv[1], "--stale") == 0;
    memset(pad, 'p', sizeof pad - 1);
    char dir[400];
    if (sup_mkdtemp(dir, sizeof dir, "udb-race-backup-") != 0)
        return perror("mkdtemp"), 1;
    snprintf(path, sizeof path, "%s/db", dir);
    udb_env *env;
    char *changes = NULL;
    if (udb_open(&env, path, NULL) ||
        udb_schema_apply(&changes, env, SCHEMA, strlen(SCHEMA), 0))
        return fprintf(stderr, "setup: %s\n", udb_env_errmsg(env)), 1;
    udb_free(changes);
    /* a database of some size, for the copies to take a while */
    udb_txn *txn;
    if (udb_begin(&txn, env, 0))
        return fprintf(stderr, "setup: %s\n", udb_env_errmsg(env)), 1;
    unit u = {.w = PRELOAD};
    msgpack_sbuffer_init(&u.k);
    msgpack_sbuffer_init(&u.prog);
    msgpack_sbuffer_init(&u.scratch);
    msgpack_sbuffer_init(&u.prev);
    for (u.s = 0; u.s < PRELOAD_N; u.s++) {
        unit_pack(&u);
        if (udb_insert(NULL, txn, "k", u.k.data, u.k.size))
            return fprintf(stderr, "setup: %s\n", udb_errmsg(txn)), 1;
    }
    msgpack_sbuffer_destroy(&u.k);
    msgpack_sbuffer_destroy(&u.prog);
    msgpack_sbuffer_destroy(&u.scratch);
    msgpack_sbuffer_destroy(&u.prev);
    if (udb_commit(txn))
        return fprintf(stderr, "setup: %s\n", udb_env_errmsg(env)), 1;
    udb_close(env);
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        return perror("mmap"), 1;
    pid_t pids[PROCS];
    for (int p = 0; p < PROCS; p++) {
        fflush(NULL);
        if ((pids[p] = fork()) == 0)
            _exit(writer_proc(p));
    }
    /* the parent's environment opened after the forks: never share one across fork() */
    if (udb_open(&env, path, NULL))
        return fprintf(stderr, "parent: udb_open: %s\n", udb_env_errmsg(NULL)), 1;
    wctx pc = {env, PROCS * THREADS};
    pthread_t pw;
    if (pthread_create(&pw, NULL, writer_thread, &pc) != 0)
        return perror("pthread_create"), 1;
    int bad = 0;
    uint64_t last = 0, spent = 0, during = 0, start = sup_now_us();
    /* the control fails at every backup: a few make the point */
    int backups = stale ? 4 : BACKUPS;
    for (int b = 0; b < backups && !atomic_load(&sh->failed); b++) {
        /* new acknowledgements since the last backup, for this one to hold */
        uint64_t give_up = sup_now_us() + 10000000;
        while (total_acked() < last + 8 * SLOTS && sup_now_us() < give_up)
            sup_sleep_us(1000);
        uint64_t marks[SLOTS], started[SLOTS];
        for (int w = 0; w < SLOTS; w++)
            marks[w] = atomic_load(&sh->slots[w].acked);
        char dest[600];
        unsigned flags = b % 2 ? UDB_BACKUP_COMPACT : 0;
        snprintf(dest, sizeof dest, "%s/backup%d", dir, b);
        uint64_t a0 = total_acked(), t0 = sup_now_us();
        int rc = b / 2 % 2 ? backup_in_child(dest, flags) : udb_backup(env, dest, flags);
        uint64_t t1 = sup_now_us(), a1 = total_acked();
        for (int w = 0; w < SLOTS; w++)
            started[w] = atomic_load(&sh->slots[w].started);
        spent += t1 - t0;
        during += a1 - a0;
        if (rc) {
            fprintf(stderr, "backup %d: %s\n", b, b / 2 % 2 ? "failed" : udb_env_errmsg(env));
            bad++;
            continue;
        }
        if (stale) {
            /* as if the snapshot had been taken before these acknowledgements */
            give_up = sup_now_us() + 10000000;
            for (int w = 0; w < SLOTS; w++) {
                while (atomic_load(&sh->slots[w].acked) <= started[w] && sup_now_us() < give_up)
                    sup_sleep_us(500);
                marks[w] = atomic_load(&sh->slots[w].acked);
            }
        }
        last = total_acked();
        struct stat st;
        char data[700];
        snprintf(data, sizeof data, "%s/" UDB_DATA_FILE, dest);
        long long size = stat(data, &st) == 0 ? (long long)st.st_size : -1;
        uint64_t t2 = sup_now_us();
        int v = verify(dest, marks, started);
        printf("backup %d (%s, %s): %lld bytes in %.1f ms, %llu units acknowledged meanwhile; "
               "verified in %.1f ms%s\n", b, flags ? "compact" : "plain", b / 2 % 2 ?
               "another process" : "the writers' database open for writing", size,
               (double)(t1 - t0) / 1000.0, (unsigned long long)(a1 - a0),
               (double)(sup_now_us() - t2) / 1000.0, v ? ": FAILED" : "");
        fflush(stdout);
        bad += v;
    }
    atomic_store(&sh->stop, 1);
    pthread_join(pw, NULL);
    for (int p = 0; p < PROCS; p++) {
        int st;
        if (waitpid(pids[p], &st, 0) != pids[p] || !WIFEXITED(st) || WEXITSTATUS(st)) {
            fprintf(stderr, "writer process %d failed\n", p);
            bad++;
        }
    }
    if (atomic_load(&sh->failed))
        bad++;
    size_t problems = 0;
    if (udb_check(&problems, env, report, NULL) || problems)
        bad++;
    udb_close(env);
    printf("race_backup: %d backups, %llu units acknowledged in all, %llu of them while a "
           "backup ran (%.1f ms of backups, %.1f s in all)%s\n", backups,
           (unsigned long long)total_acked(), (unsigned long long)during, (double)spent / 1000.0,
           (double)(sup_now_us() - start) / 1e6, bad ? ": FAILED" : "");
    sup_remove_tree(dir, false);
    return bad ? 1 : 0;
}
