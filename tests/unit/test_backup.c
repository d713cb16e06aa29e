/*
 * test_backup.c -- udb_backup and udb_env_space: what is refused (and then
 * nothing written), that a copy -- plain or compacted -- opens, checks and
 * holds exactly what the source held, that compacting drops the free pages
 * udb_env_space counts, that a copy that fails midway leaves nothing that
 * opens as a database, which copy waits for a writer (the plain one, for
 * LMDB's write lock) and which does not, and that a map another process
 * grew is adopted before the copy.
 *
 * `test_backup --control` is the negative control of the failure case: the
 * copy written straight to dest/data.mdb (UDB_BACKUP_TEST_IN_PLACE), whose
 * half-copy the same check must find.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backup.h"
#include "support.h"
#include "testutil.h"

static bool control;

/* The names in dir, sorted, comma-separated ("<errno text>" if unreadable). */
static const char *listing(const char *dir)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0)
        return tu_fmt("<%s>", strerror(errno));
    char *out = tu_keep(calloc(1, 1));
    for (int i = 0; i < n; i++) {
        const char *nm = names[i]->d_name;
        if (strcmp(nm, ".") != 0 && strcmp(nm, "..") != 0)
            out = (char *)tu_fmt("%s%s%s", out, *out ? "," : "", nm);
        free(names[i]);
    }
    free(names);
    return out;
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static int seq_line(const char *name, uint64_t value, void *ctx)
{
    FILE *f = ctx;
    fprintf(f, "%s=%llu;", name, (unsigned long long)value);
    return 0;
}

/* Everything a database holds, as text: the schema, every record of every
 * type in key order (rendered), every sequence. */
static const char *contents(udb_env *env)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    udb_txn *txn = NULL;
    const char *schema;
    const char *const *types;
    size_t n = 0;
    if (!CHECK_OK(udb_begin(&txn, env, UDB_RDONLY)) ||
        !CHECK_OK(udb_txn_schema_json(&schema, NULL, txn)) ||
        !CHECK_OK(udb_types(&types, &n, txn)))
        goto out;
    fprintf(f, "%s\n", schema);
    for (size_t i = 0; i < n; i++) {
        udb_cursor *cur;
        if (!CHECK_OK(udb_scan(&cur, txn, types[i], NULL, NULL, 0)))
            continue;
        udb_val rec;
        int rc;
        while ((rc = udb_cursor_next(&rec, cur)) == 0)
            fprintf(f, "%s %s\n", types[i], tu_render(rec));
        CHECK_RC(rc, UDB_ENOTFOUND);
        udb_cursor_close(cur);
    }
    CHECK_OK(udb_seq_foreach(txn, seq_line, f));
out:
    udb_abort(txn);
    fclose(f);
    return tu_keep(buf);
}

/* A database worth copying: clients with some bulk, bookings (a partial
 * unique index and a plain one), sequences. */
static void populate(tu *t, int clients)
{
    udb_txn *txn = tu_w(t);
    char name[201];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    for (int i = 0; i < clients; i++)
        CHECK_OK(tu_ins(NULL, txn, "client", mp("{s:s, s:s, s:s}", "id", tu_fmt("c%05d", i),
                                                "email", tu_fmt("c%05d@x", i), "name", name)));
    for (int i = 0; i < 5; i++)
        CHECK_OK(tu_ins(NULL, txn, "booking",
                        mp("{s:s, s:s, s:s, s:s, s:s}", "psychologist", "p1", "date",
                           "2026-01-15", "time", tu_fmt("%02d:00", 9 + i), "status",
                           i == 2 ? "cancelled" : "pending", "user", "u1")));
    uint64_t v;
    for (int i = 0; i < 3; i++)
        CHECK_OK(udb_seq_next(&v, txn, "invoices"));
    tu_commit(txn);
}

static udb_env *open_copy(const char *dir, unsigned flags)
{
    udb_options o = UDB_OPTIONS_INIT;
    o.flags = flags;
    udb_env *env = NULL;
    if (!CHECK_OK(udb_open(&env, dir, &o)))
        return NULL;
    return env;
}

/* udb_check on the copy finds nothing, and it holds `want` (contents()). */
static void check_copy_holds(const char *dir, const char *want)
{
    udb_env *env = open_copy(dir, UDB_RDONLY_ENV);
    if (!env)
        return;
    size_t problems = 99;
    CHECK_OK(udb_check(&problems, env, NULL, NULL));
    CHECK(problems == 0);
    CHECK_STR(contents(env), want);
    udb_close(env);
}

/* ... what the source holds now. */
static void check_copy(tu *t, const char *dir)
{
    check_copy_holds(dir, contents(t->env));
}

static void t_refuses_bad_dest(tu *t)
{
    if (!tu_setup(t, tu_scenarios()))
        return;
    populate(t, 3);
    const char *file = tu_fmt("%s/file", t->dir), *full = tu_fmt("%s/full", t->dir);
    FILE *f = fopen(file, "w");
    if (CHECK(f))
        fclose(f);
    CHECK(mkdir(full, 0755) == 0);
    f = fopen(tu_fmt("%s/x", full), "w");
    if (CHECK(f))
        fclose(f);
    const char *before = listing(t->dir);
    CHECK_STR(before, "db,file,full");

    CHECK_RC(udb_backup(t->env, file, 0), EEXIST);
    CHECK_HAS(udb_env_errmsg(t->env), "is not a directory", "nothing was written");
    CHECK_RC(udb_backup(t->env, full, UDB_BACKUP_COMPACT), ENOTEMPTY);
    CHECK_HAS(udb_env_errmsg(t->env), "is not empty", "\"x\"", "nothing was written");
    CHECK_RC(udb_backup(t->env, t->path, 0), ENOTEMPTY);   /* the database itself */
    CHECK_RC(udb_backup(t->env, tu_fmt("%s/missing/copy", t->dir), 0), ENOENT);
    CHECK_HAS(udb_env_errmsg(t->env), "missing does not exist");
    CHECK_RC(udb_backup(t->env, NULL, 0), UDB_EINVAL);
    CHECK_RC(udb_backup(t->env, "", 0), UDB_EINVAL);
    CHECK_RC(udb_backup(NULL, tu_fmt("%s/copy", t->dir), 0), UDB_EINVAL);
    CHECK_RC(udb_backup(t->env, tu_fmt("%s/copy", t->dir), 0x2), UDB_EINVAL);
    CHECK_HAS(udb_env_errmsg(t->env), "unknown flags 0x2");
    /* the plain copy takes LMDB's write lock: a thread holding a transaction
       would wait for itself */
    udb_txn *txn = tu_r(t);
    CHECK_RC(udb_backup(t->env, tu_fmt("%s/copy", t->dir), 0), UDB_EINVAL);
    CHECK_HAS(udb_env_errmsg(t->env), "end it first");
    tu_abort(txn);
    CHECK_STR(listing(t->dir), before);
    CHECK_STR(listing(full), "x");
    /* an interrupted backup's temporary is named as such */
    CHECK(rename(tu_fmt("%s/x", full), tu_fmt("%s/.uniqdb-backup-abc123", full)) == 0);
    CHECK_RC(udb_backup(t->env, full, 0), ENOTEMPTY);
    CHECK_HAS(udb_env_errmsg(t->env), "interrupted");
}

static void copy_case(tu *t, unsigned flags)
{
    if (!tu_setup(t, tu_scenarios()))
        return;
    populate(t, 200);
    const char *dest = tu_fmt("%s/copy", t->dir);
    CHECK_OK(udb_backup(t->env, dest, flags));
    /* the copy is the data file alone, with the source's permissions */
    CHECK_STR(listing(dest), UDB_DATA_FILE);
    CHECK_STR(listing(t->dir), "copy,db");
    struct stat a, b;
    if (CHECK(stat(tu_fmt("%s/" UDB_DATA_FILE, t->path), &a) == 0) &&
        CHECK(stat(tu_fmt("%s/" UDB_DATA_FILE, dest), &b) == 0))
        CHECK((a.st_mode & 07777) == (b.st_mode & 07777));
    if (CHECK(stat(t->path, &a) == 0) && CHECK(stat(dest, &b) == 0))
        CHECK((a.st_mode & 07777) == (b.st_mode & 07777));
    check_copy(t, dest);
    /* a copy opened for writing is a database of its own */
    udb_env *env = open_copy(dest, UDB_NOSYNC);
    if (env) {
        udb_txn *txn;
        if (CHECK_OK(udb_begin(&txn, env, 0))) {
            udb_val rec;
            CHECK_RC(udb_insert(&rec, txn, "client", mp("{s:s, s:s}", "id", "new", "email",
                                                        "c00001@x").data,
                                mp("{s:s, s:s}", "id", "new", "email", "c00001@x").size),
                     UDB_ECONFLICT);
            CHECK_OK(udb_insert(&rec, txn, "client",
                                mp("{s:s, s:s}", "id", "new", "email", "new@x").data,
                                mp("{s:s, s:s}", "id", "new", "email", "new@x").size));
            CHECK_OK(udb_commit(txn));
        }
        size_t problems = 99;
        CHECK_OK(udb_check(&problems, env, NULL, NULL));
        CHECK(problems == 0);
        udb_close(env);
    }
}

static void t_plain_copy(tu *t)
{
    copy_case(t, 0);
}

static void t_compact_copy(tu *t)
{
    copy_case(t, UDB_BACKUP_COMPACT);
}

/* An existing empty directory (a mount point, say) is filled, not replaced. */
static void t_into_empty_dir(tu *t)
{
    if (!tu_setup(t, tu_scenarios()))
        return;
    populate(t, 10);
    const char *dest = tu_fmt("%s/mnt/", t->dir);
    struct stat a, b;
    CHECK(mkdir(dest, 0700) == 0);
    CHECK(stat(dest, &a) == 0);
    CHECK_OK(udb_backup(t->env, dest, UDB_BACKUP_COMPACT));
    CHECK(stat(dest, &b) == 0);
    CHECK(a.st_ino == b.st_ino && (b.st_mode & 0777) == 0700);
    CHECK_STR(listing(dest), UDB_DATA_FILE);
    check_copy(t, dest);
}

/* Deleting most records leaves free pages in the file; the compacting copy
 * leaves them out, exactly as many as udb_env_space counts. */
static void t_compact_reclaims(tu *t)
{
    if (!tu_setup(t, tu_scenarios()))
        return;
    populate(t, 3000);
    udb_txn *txn = tu_w(t);
    for (int i = 0; i < 3000; i++)
        if (i % 10)
            CHECK_OK(udb_delete(txn, "client", mp("s", tu_fmt("c%05d", i)).data,
                                mp("s", tu_fmt("c%05d", i)).size));
    tu_commit(txn);
    udb_space sp = UDB_SPACE_INIT;
    CHECK_OK(udb_env_space(&sp, t->env));
    CHECK(sp.page_size >= 512 && sp.pages > 100 && sp.free_pages > sp.pages / 2);
    CHECK(sp.free_pages + sp.freelist_pages < sp.pages);
    CHECK(sp.file_size >= sp.pages * sp.page_size && sp.map_size >= sp.file_size);
    const char *plain = tu_fmt("%s/plain", t->dir), *small = tu_fmt("%s/small", t->dir);
    CHECK_OK(udb_backup(t->env, plain, 0));
    CHECK_OK(udb_backup(t->env, small, UDB_BACKUP_COMPACT));
    long long ps = file_size(tu_fmt("%s/" UDB_DATA_FILE, plain));
    long long cs = file_size(tu_fmt("%s/" UDB_DATA_FILE, small));
    CHECK(ps == (long long)(sp.pages * sp.page_size));
    CHECK(cs == (long long)((sp.pages - sp.free_pages - sp.freelist_pages) * sp.page_size));
    CHECK(cs < ps / 3);
    check_copy(t, plain);
    check_copy(t, small);
    udb_env *env = open_copy(small, UDB_RDONLY_ENV);
    udb_space cp = UDB_SPACE_INIT;
    if (env && CHECK_OK(udb_env_space(&cp, env)))
        CHECK(cp.free_pages == 0 && cp.pages * cp.page_size == (uint64_t)cs);
    udb_close(env);
    env = open_copy(plain, UDB_RDONLY_ENV);
    if (env && CHECK_OK(udb_env_space(&cp, env)))
        CHECK(cp.free_pages == sp.free_pages && cp.pages == sp.pages);
    udb_close(env);
}

static void t_space_arguments(tu *t)
{
    if (!tu_open(t))
        return;
    udb_space sp = UDB_SPACE_INIT;
    CHECK_RC(udb_env_space(NULL, t->env), UDB_EINVAL);
    CHECK_RC(udb_env_space(&sp, NULL), UDB_EINVAL);
    sp.version = 0;
    CHECK_RC(udb_env_space(&sp, t->env), UDB_EINVAL);
    sp.version = UDB_SPACE_VERSION + 1;
    CHECK_RC(udb_env_space(&sp, t->env), UDB_EINVAL);
    CHECK_HAS(udb_env_errmsg(t->env), "UDB_SPACE_INIT");
    sp.version = UDB_SPACE_VERSION;
    CHECK_OK(udb_env_space(&sp, t->env));
    size_t map, used;
    CHECK_OK(udb_env_usage(&map, &used, t->env));
    CHECK(sp.map_size == map && sp.pages * sp.page_size == used);
}

/* A copy that fails midway -- here the file size limit (EFBIG, as a full
 * disk gives ENOSPC) -- leaves nothing: not dest, not a temporary. */
static void t_failure_leaves_nothing(tu *t)
{
    if (!tu_setup(t, tu_scenarios()))
        return;
    populate(t, 800);
    const char *dest = tu_fmt("%s/copy", t->dir), *empty = tu_fmt("%s/empty", t->dir);
    CHECK(mkdir(empty, 0755) == 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        /* its own environment: never one opened before fork() */
        udb_env *env;
        if (udb_open(&env, t->path, NULL) != 0)
            _exit(10);
        if (control)
            udb__backup_set_test_flags(UDB_BACKUP_TEST_IN_PLACE);
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {64 << 10, 64 << 10};
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
            _exit(11);
        int bad = 0;
        for (unsigned flags = 0; flags <= UDB_BACKUP_COMPACT; flags++) {
            int rc = udb_backup(env, dest, flags);
            if (rc != EFBIG) {
                fprintf(stderr, "backup to a new directory: %s\n", udb_strerror(rc));
                bad++;
            }
            rc = udb_backup(env, empty, flags);
            if (rc != EFBIG) {
                fprintf(stderr, "backup into an empty directory: %s\n", udb_strerror(rc));
                bad++;
            }
        }
        udb_close(env);
        _exit(bad);
    }
    int st;
    if (CHECK(pid > 0) && CHECK(waitpid(pid, &st, 0) == pid))
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK_STR(listing(t->dir), "db,empty");
    CHECK_STR(listing(empty), "");
}

typedef struct holder {
    udb_env *env;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int state;        /* 1 holding its write transaction, 2 told to commit, 3 committed */
    const char *dest; /* for backer(): the copy to make */
    int rc;
    bool done;
} holder;

static void set_state(holder *h, int s)
{
    pthread_mutex_lock(&h->mu);
    h->state = s;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

static void wait_state(holder *h, int s)
{
    pthread_mutex_lock(&h->mu);
    while (h->state < s)
        pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
}

/* A writer that holds its transaction -- and LMDB's write lock -- until told. */
static void *writer(void *arg)
{
    holder *h = arg;
    udb_txn *txn;
    if (udb_begin(&txn, h->env, 0) == 0) {
        udb_val rec = mp("{s:s, s:s}", "id", "late", "email", "late@x");
        udb_insert(NULL, txn, "client", rec.data, rec.size);
        set_state(h, 1);
        wait_state(h, 2);
        udb_commit(txn);
    }
    set_state(h, 3);
    return NULL;
}

static void *backer(void *arg)
{
    holder *h = arg;
    int rc = udb_backup(h->env, h->dest, 0);
    pthread_mutex_lock(&h->mu);
    h->rc = rc;
    h->done = true;
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

static bool has_late(const char *dir)
{
    udb_env *env = open_copy(dir, UDB_RDONLY_ENV);
    udb_txn *txn;
    bool found = false;
    if (env && CHECK_OK(udb_begin(&txn, env, UDB_RDONLY))) {
        udb_val key = mp("s", "late"), rec;
        found = udb_get(&rec, txn, "client", key.data, key.size) == 0;
        udb_abort(txn);
    }
    udb_close(env);
    return found;
}

/* The compacting copy takes no lock: it ends while a writer holds LMDB's
 * write lock, without that writer's work.  The plain copy waits for the
 * lock (it copies the meta pages under it), then holds the commit. */
static void t_who_waits_for_a_writer(tu *t)
{
    if (!tu_setup(t, tu_scenarios()))
        return;
    populate(t, 10);
    holder h = {.env = t->env, .mu = PTHREAD_MUTEX_INITIALIZER,
                .cv = PTHREAD_COND_INITIALIZER, .dest = tu_fmt("%s/plain", t->dir)};
    const char *before = contents(t->env);
    pthread_t w, b;
    if (!CHECK(pthread_create(&w, NULL, writer, &h) == 0))
        return;
    wait_state(&h, 1);
    const char *compact = tu_fmt("%s/compact", t->dir);
    CHECK_OK(udb_backup(t->env, compact, UDB_BACKUP_COMPACT));
    CHECK(h.state == 1);     /* still holding: the copy did not wait for it */
    bool started = CHECK(pthread_create(&b, NULL, backer, &h) == 0);
    struct timespec ts = {0, 300 * 1000 * 1000};
    nanosleep(&ts, NULL);
    pthread_mutex_lock(&h.mu);
    bool early = h.done;
    pthread_mutex_unlock(&h.mu);
    CHECK(!early);           /* waiting for LMDB's write lock */
    set_state(&h, 2);
    pthread_join(w, NULL);
    if (started)
        pthread_join(b, NULL);
    CHECK_OK(h.rc);
    CHECK(!has_late(compact));
    CHECK(has_late(h.dest));
    check_copy_holds(compact, before);
    check_copy(t, h.dest);
}

/* Copies from a read-only environment (what `uniqdb backup` opens). */
static void t_from_readonly_env(tu *t)
{
    if (!tu_setup(t, tu_scenarios()))
        return;
    populate(t, 50);
    const char *before = contents(t->env);
    udb_close(t->env);
    t->env = open_copy(t->path, UDB_RDONLY_ENV);
    if (!t->env)
        return;
    const char *dest = tu_fmt("%s/copy", t->dir);
    CHECK_OK(udb_backup(t->env, dest, 0));
    CHECK_OK(udb_backup(t->env, tu_fmt("%s/small", t->dir), UDB_BACKUP_COMPACT));
    check_copy(t, dest);
    check_copy(t, tu_fmt("%s/small", t->dir));
    CHECK_STR(contents(t->env), before);
}

/* A commit of another process, acknowledged before the backup began. */
static void t_holds_other_process_commit(tu *t)
{
    if (!tu_setup(t, tu_scenarios()))
        return;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        udb_env *env;
        udb_txn *txn;
        udb_val rec = mp("{s:s, s:s}", "id", "late", "email", "late@x");
        _exit(udb_open(&env, t->path, NULL) || udb_begin(&txn, env, 0) ||
              udb_insert(NULL, txn, "client", rec.data, rec.size) || udb_commit(txn));
    }
    int st;
    if (CHECK(pid > 0) && CHECK(waitpid(pid, &st, 0) == pid))
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    const char *plain = tu_fmt("%s/plain", t->dir), *compact = tu_fmt("%s/compact", t->dir);
    CHECK_OK(udb_backup(t->env, plain, 0));
    CHECK_OK(udb_backup(t->env, compact, UDB_BACKUP_COMPACT));
    CHECK(has_late(plain));
    CHECK(has_late(compact));
}

/* Another process grew the map past this process's: LMDB refuses the
 * copy's snapshot (MDB_MAP_RESIZED) until this process adopts the new size,
 * which udb_backup does, then copies. */
static void t_adopts_a_grown_map(tu *t)
{
    udb_options o = UDB_OPTIONS_INIT;
    o.flags = UDB_NOSYNC;
    o.map_size = 256 << 10;
    if (!CHECK_OK(udb_open(&t->env, t->path, &o)) ||
        !CHECK_OK(tu_apply(t, tu_scenarios())))
        return;
    size_t before = 0, after = 0;
    CHECK_OK(udb_env_usage(&before, NULL, t->env));
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        udb_env *env;
        if (udb_open(&env, t->path, &o))
            _exit(10);
        char name[2001];
        memset(name, 'n', sizeof name - 1);
        name[sizeof name - 1] = '\0';
        int bad = 0;
        for (int i = 0; i < 1000 && !bad; i++) {
            udb_txn *txn;
            udb_val rec = mp("{s:s, s:s, s:s}", "id", tu_fmt("g%04d", i), "email",
                             tu_fmt("g%04d@x", i), "name", name);
            int rc = udb_begin(&txn, env, 0);
            if (!rc && (rc = udb_insert(NULL, txn, "client", rec.data, rec.size)))
                udb_abort(txn);
            else if (!rc)
                rc = udb_commit(txn);
            if (rc == UDB_EMAPFULL)   /* the next udb_begin grows the map */
                i--;
            else if (rc) {
                fprintf(stderr, "grower: %s\n", udb_env_errmsg(env));
                bad = 1;
            }
        }
        udb_close(env);
        _exit(bad);
    }
    int st;
    if (CHECK(pid > 0) && CHECK(waitpid(pid, &st, 0) == pid))
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    const char *dest = tu_fmt("%s/copy", t->dir);
    CHECK_OK(udb_backup(t->env, dest, 0));
    CHECK_OK(udb_env_usage(&after, NULL, t->env));
    CHECK(after > before);   /* adopted: this process's map is the grown one */
    CHECK_OK(udb_backup(t->env, tu_fmt("%s/small", t->dir), UDB_BACKUP_COMPACT));
    check_copy(t, dest);
    check_copy(t, tu_fmt("%s/small", t->dir));
    udb_env *env = open_copy(dest, UDB_RDONLY_ENV);
    udb_txn *txn;
    if (env && CHECK_OK(udb_begin(&txn, env, UDB_RDONLY))) {
        CHECK(tu_count(txn, "client") == 1000);
        udb_abort(txn);
    }
    udb_close(env);
}

int main(int argc, char **argv)
{
    static const tu_test tests[] = {
        TU_CASE(t_refuses_bad_dest),
        TU_CASE(t_plain_copy),
        TU_CASE(t_compact_copy),
        TU_CASE(t_into_empty_dir),
        TU_CASE(t_compact_reclaims),
        TU_CASE(t_space_arguments),
        TU_CASE(t_failure_leaves_nothing),
        TU_CASE(t_who_waits_for_a_writer),
        TU_CASE(t_from_readonly_env),
        TU_CASE(t_holds_other_process_commit),
        TU_CASE(t_adopts_a_grown_map),
    };
    if (argc > 1 && strcmp(argv[1], "--control") == 0) {
        control = true;
        char *only[] = {argv[0], "failure_leaves_nothing"};
        return tu_main(2, only, tests, sizeof tests / sizeof tests[0]);
    }
    return tu_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
