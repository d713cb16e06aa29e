/*
 * test_persist.c -- the database on disk: what survives close and reopen,
 * the permissions of what udb_open creates, open errors, map growth (also
 * while threads write) and the size limit.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <lmdb.h>
#include "testutil.h"
#include "support.h"

static void t_close_and_reopen_keeps_everything(tu *t)
{
    if (!tu_setup(t, tu_scenarios()))
        return;
    udb_txn *txn = tu_w(t);
    uint64_t n = 0;
    for (int i = 0; i < 3; i++)
        CHECK_OK(tu_ins(NULL, txn, "booking", mp("{s:s, s:s, s:s, s:s, s:s}", "psychologist", "p",
                                                 "date", "d", "time", tu_fmt("%02d:00", 9 + i),
                                                 "status", "pending", "user", "u")));
    CHECK_OK(tu_ins(NULL, txn, "client", mp("{s:s, s:s}", "id", "c-1", "email", "c@x")));
    for (int i = 0; i < 7; i++)
        CHECK_OK(udb_seq_next(&n, txn, "invoices"));
    tu_commit(txn);
    const char *schema = tu_schema_text(t);

    tu_reopen(t);
    if (!t->env)
        return;
    CHECK_STR(tu_schema_text(t), schema);
    txn = tu_w(t);
    udb_val out;
    CHECK_OK(tu_find(&out, txn, "client", "email", mp("[s]", "c@x")));
    CHECK_STR(tu_field(out, "id"), "\"c-1\"");
    CHECK_STR(tu_scan(txn, "booking", "by_user", mp("[s]", "u"), "time"),
              "\"09:00\",\"10:00\",\"11:00\"");
    CHECK_OK(udb_seq_get(&n, txn, "invoices"));
    CHECK(n == 7);
    CHECK_OK(udb_seq_next(&n, txn, "invoices"));
    CHECK(n == 8);
    /* the auto key and the unique indexes carry on */
    CHECK_OK(tu_ins(&out, txn, "booking", mp("{s:s, s:s, s:s, s:s}", "psychologist", "p",
                                             "date", "d", "time", "12:00", "status", "pending")));
    CHECK(tu_fu(out, "id") == 4);
    CHECK_RC(tu_ins(&out, txn, "booking", mp("{s:s, s:s, s:s, s:s}", "psychologist", "p",
                                             "date", "d", "time", "09:00", "status", "confirmed")),
             UDB_ECONFLICT);
    CHECK_STR(tu_conflict(txn), "booking: active_slot(psychologist, date, time)="
                                "[\"p\",\"d\",\"09:00\"] held by 1");
    const char *const *types;
    size_t ntypes = 0;
    CHECK_OK(udb_types(&types, &ntypes, txn));
    if (CHECK(ntypes == 5)) {
        CHECK_STR(types[0], "schedule_workflow");
        CHECK_STR(types[4], "case");
    }
    udb_type_stat st;
    CHECK_OK(udb_type_stat_get(&st, txn, "booking"));
    CHECK(st.records == 4 && st.index_entries == 8 && st.bytes > 0);
    CHECK_RC(udb_type_stat_get(&st, txn, "nope"), UDB_EINVAL);
    tu_commit(txn);
}

static void t_created_directory_is_not_world_writable(tu *t)
{
    mode_t old = umask(0);   /* let the library's own mode decide */
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/default", t->dir);
    udb_env *env = NULL;
    struct stat st;
    if (CHECK_OK(udb_open(&env, path, NULL))) {
        CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0750);
        udb_close(env);
        snprintf(path, sizeof path, "%s/default/" UDB_DATA_FILE, t->dir);
        CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0640);
    }
    udb_options o = UDB_OPTIONS_INIT;
    o.mode = 0666;           /* even when the files may be shared widely */
    snprintf(path, sizeof path, "%s/shared", t->dir);
    env = NULL;
    if (CHECK_OK(udb_open(&env, path, &o))) {
        CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode));
        CHECK((st.st_mode & 0002) == 0);
        CHECK((st.st_mode & 0555) == 0555);   /* readers can still reach the files */
        udb_close(env);
    }
    umask(old);
}

/* udb_env_files() names exactly the files udb_open() creates (and a write
 * adds none): the list the CLI removes after a failed init. */
static void t_env_files_are_what_open_creates(tu *t)
{
    const char *const *files = udb_env_files();
    if (!CHECK(files && files[0]))
        return;
    CHECK_STR(files[0], UDB_DATA_FILE);
    if (!tu_setup(t, tu_scenarios()))
        return;
    udb_txn *txn = tu_w(t);
    CHECK_OK(tu_ins(NULL, txn, "client", mp("{s:s, s:s}", "id", "c-1", "email", "c@x")));
    tu_commit(txn);
    size_t listed = 0, found = 0;
    for (; files[listed]; listed++) {
        struct stat st;
        CHECK(stat(tu_fmt("%s/%s", t->path, files[listed]), &st) == 0 && S_ISREG(st.st_mode));
    }
    CHECK(listed == 3);
    DIR *d = opendir(t->path);
    if (!CHECK(d))
        return;
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        size_t i = 0;
        while (files[i] && strcmp(files[i], e->d_name))
            i++;
        if (!CHECK(files[i]))
            fprintf(stderr, "  %s is not in udb_env_files()\n", e->d_name);
        found++;
    }
    closedir(d);
    CHECK(found == listed);
}

static void t_open_reports_bad_paths(tu *t)
{
    udb_env *env = NULL;
    CHECK_RC(udb_open(&env, NULL, NULL), UDB_EINVAL);
    CHECK_RC(udb_open(NULL, t->path, NULL), UDB_EINVAL);
    CHECK_RC(udb_open(&env, "", NULL), UDB_EINVAL);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/missing/parent/db", t->dir);
    CHECK_RC(udb_open(&env, path, NULL), ENOENT);
    CHECK_HAS(udb_env_errmsg(NULL), path);
    snprintf(path, sizeof path, "%s/plainfile", t->dir);
    FILE *f = fopen(path, "w");
    if (f)
        fclose(f);
    CHECK(udb_open(&env, path, NULL) != 0);
    CHECK_HAS(udb_env_errmsg(NULL), "not a directory");
    CHECK(env == NULL);
    udb_options o = UDB_OPTIONS_INIT;
    o.flags = 0x100;
    CHECK_RC(udb_open(&env, t->path, &o), UDB_EINVAL);
    CHECK(env == NULL);
}

/* udb_options carries its version, so fields can be added later: a struct
 * not started from UDB_OPTIONS_INIT, or from a newer header, is refused. */
static void t_open_checks_the_options_version(tu *t)
{
    udb_env *env = NULL;
    udb_options o = UDB_OPTIONS_INIT;
    CHECK(o.version == UDB_OPTIONS_VERSION);
    o.version = 0;
    CHECK_RC(udb_open(&env, t->path, &o), UDB_EINVAL);
    CHECK_HAS(udb_env_errmsg(NULL), "udb_options.version is 0", "UDB_OPTIONS_INIT");
    o.version = UDB_OPTIONS_VERSION + 1;
    CHECK_RC(udb_open(&env, t->path, &o), UDB_EINVAL);
    CHECK(env == NULL);
    o.version = UDB_OPTIONS_VERSION;
    if (CHECK_OK(udb_open(&env, t->path, &o)))
        udb_close(env);
}

/* The environment-level message belongs to the thread that failed. */
static void *fail_open(void *arg)
{
    udb_env *env = NULL;
    (void)arg;
    udb_open(&env, "", NULL);
    return NULL;
}

static void t_env_errmsg_is_per_thread(tu *t)
{
    udb_env *env = NULL;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/missing/parent/db", t->dir);
    CHECK_RC(udb_open(&env, path, NULL), ENOENT);
    pthread_t th;
    if (CHECK(pthread_create(&th, NULL, fail_open, NULL) == 0))
        pthread_join(th, NULL);
    CHECK_HAS(udb_env_errmsg(NULL), path);   /* not the other thread's "out and path" */
}

#define BLOBS "{`types`: {`blob`: {`key`: `id`, `fields`: {`id`: {`type`: `uint`, `auto`: " \
              "true}, `data`: {`type`: `str`}}}}}"

static const char *kib_text(void)
{
    static char s[1025];
    memset(s, 'z', 1024);
    return s;
}

static int add_blobs(udb_txn *txn, void *ctx)
{
    const int *n = ctx;
    for (int i = 0; i < *n; i++) {
        int rc = tu_ins(NULL, txn, "blob", mp("{s:s}", "data", kib_text()));
        if (rc)
            return rc;
    }
    return 0;
}

static udb_env *open_sized(tu *t, const char *name, size_t max, unsigned flags)
{
    udb_options o = UDB_OPTIONS_INIT;
    o.map_size = 1u << 20;   /* small, so that it fills (the default is 4 GiB) */
    o.max_map_size = max;
    o.flags = UDB_NOSYNC | flags;
    udb_close(t->env);
    t->env = NULL;
    snprintf(t->path, sizeof t->path, "%s/%s", t->dir, name);
    if (!CHECK_OK(udb_open(&t->env, t->path, &o)) || !CHECK_OK(tu_apply(t, BLOBS)))
        return NULL;
    return t->env;
}

static void t_map_grows_after_map_full(tu *t)
{
    if (!open_sized(t, "grow", 0, 0))
        return;
    size_t map0 = 0, map1 = 0;
    CHECK_OK(udb_env_usage(&map0, NULL, t->env));
    /* by hand: MDB_MAP_FULL, abort, begin again (which grows), redo */
    int n = 1500, rc = MDB_MAP_FULL, attempts = 0;
    while (rc == MDB_MAP_FULL && attempts++ < 20) {
        udb_txn *txn = tu_w(t);
        rc = add_blobs(txn, &n);
        if (rc)
            tu_abort(txn);
        else
            tu_commit(txn);
    }
    CHECK_OK(rc);
    CHECK(attempts > 1);                       /* it did fill up on the way */
    CHECK_OK(udb_env_usage(&map1, NULL, t->env));
    CHECK(map1 > map0);
    /* udb_write does the same by itself */
    CHECK_OK(udb_write(t->env, add_blobs, &n));
    udb_txn *txn = tu_r(t);
    CHECK(tu_count(txn, "blob") == 3000);
    tu_commit(txn);
}

static void max_map_size_is_a_hard_limit(tu *t, unsigned flags)
{
    const size_t max = 2u << 20;
    if (!open_sized(t, flags ? "max-nogroup" : "max-group", max, flags))
        return;
    int n = 3000;
    CHECK_RC(udb_write(t->env, add_blobs, &n), UDB_ESIZELIMIT);
    CHECK_HAS(udb_env_errmsg(t->env), "maximum size");
    /* nothing of it was kept, and small writes still work */
    n = 10;
    CHECK_OK(udb_write(t->env, add_blobs, &n));
    udb_txn *txn = tu_r(t);
    CHECK(tu_count(txn, "blob") == 10);
    tu_commit(txn);
    size_t map = 0;
    CHECK_OK(udb_env_usage(&map, NULL, t->env));
    CHECK(map <= max);
}

static void t_max_map_size_with_group_commit(tu *t)
{
    max_map_size_is_a_hard_limit(t, 0);
}

static void t_max_map_size_without_group_commit(tu *t)
{
    max_map_size_is_a_hard_limit(t, UDB_NOGROUP);
}

/* Raw LMDB on path, behind the library's back: the environment and one
 * transaction (flags: 0 or MDB_RDONLY).  0, or an LMDB code with nothing
 * left open.  raw_end() commits (aborts if rc is an error), closes, and
 * returns rc or the commit's error. */
static int raw_begin(MDB_env **e, MDB_txn **txn, const char *path, unsigned flags)
{
    int rc = mdb_env_create(e);
    if (rc)
        return rc;
    mdb_env_set_maxdbs(*e, 8);
    if ((rc = mdb_env_open(*e, path, flags, 0640)) || (rc = mdb_txn_begin(*e, NULL, flags, txn)))
        mdb_env_close(*e);
    return rc;
}

static int raw_end(MDB_env *e, MDB_txn *txn, int rc)
{
    if (rc)
        mdb_txn_abort(txn);
    else
        rc = mdb_txn_commit(txn);
    mdb_env_close(e);
    return rc;
}

/* Put key=num (8-byte big-endian) in named database db.  0 or an LMDB code. */
static int raw_put(const char *path, const char *db, const char *key, uint64_t num)
{
    unsigned char v[8];
    for (int i = 0; i < 8; i++)
        v[i] = (unsigned char)(num >> (56 - 8 * i));
    MDB_val k = {strlen(key), (void *)key}, val = {sizeof v, v};
    MDB_env *e;
    MDB_txn *txn;
    int rc = raw_begin(&e, &txn, path, 0);
    if (rc)
        return rc;
    MDB_dbi dbi;
    if (!(rc = mdb_dbi_open(txn, db, MDB_CREATE, &dbi)))
        rc = mdb_put(txn, dbi, &k, &val, 0);
    return raw_end(e, txn, rc);
}

/* The 8-byte big-endian "format" in __meta, or an LMDB code (-1: not 8 bytes). */
static int raw_format(uint64_t *out, const char *path)
{
    MDB_env *e;
    MDB_txn *txn;
    int rc = raw_begin(&e, &txn, path, MDB_RDONLY);
    if (rc)
        return rc;
    MDB_dbi dbi;
    MDB_val k = {6, (void *)"format"}, v;
    if (!(rc = mdb_dbi_open(txn, "__meta", 0, &dbi)) && !(rc = mdb_get(txn, dbi, &k, &v))) {
        *out = 0;
        for (size_t i = 0; i < v.mv_size; i++)
            *out = *out << 8 | ((unsigned char *)v.mv_data)[i];
        rc = v.mv_size == 8 ? 0 : -1;
    }
    return raw_end(e, txn, rc);
}

/* A database records its format version; another version is refused by
 * name, and so is an LMDB environment that is not ours (left as it was). */
static void t_open_checks_the_format(tu *t)
{
    if (!tu_setup(t, tu_scenarios()))
        return;
    udb_close(t->env);
    t->env = NULL;
    udb_env *env = NULL;
    uint64_t f = 0;
    CHECK_OK(raw_format(&f, t->path));
    CHECK(f == UDB_FORMAT_VERSION);
    /* the same format (rewritten as it was) opens */
    CHECK_OK(raw_put(t->path, "__meta", "format", UDB_FORMAT_VERSION));
    CHECK_OK(udb_open(&env, t->path, NULL));
    udb_close(env);
    env = NULL;
    CHECK_OK(raw_put(t->path, "__meta", "format", UDB_FORMAT_VERSION + 1));
    CHECK_RC(udb_open(&env, t->path, NULL), UDB_EFORMAT);
    CHECK_HAS(udb_env_errmsg(NULL), t->path, tu_fmt("database format %d", UDB_FORMAT_VERSION + 1),
              tu_fmt("reads formats 1 to %d", UDB_FORMAT_VERSION));
    CHECK(env == NULL);
    CHECK_OK(raw_put(t->path, "__meta", "format", UDB_FORMAT_VERSION));
    tu_open(t);   /* healthy again: the end-of-case check runs on it */

    /* somebody else's LMDB environment */
    char other[PATH_MAX];
    snprintf(other, sizeof other, "%s/other", t->dir);
    CHECK(mkdir(other, 0750) == 0);
    CHECK_OK(raw_put(other, "things", "k", 7));
    CHECK_RC(udb_open(&env, other, NULL), UDB_EFORMAT);
    CHECK_HAS(udb_env_errmsg(NULL), other, "not a uniqdb database", "left untouched");
    CHECK(env == NULL);
    /* no file of uniqdb's was added beside it */
    struct stat sst;
    CHECK(stat(tu_fmt("%s/%s", other, UDB_SYNC_FILE), &sst) != 0 && errno == ENOENT);
    /* untouched: still exactly one named database, and no __meta */
    MDB_env *e;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_stat st;
    if (CHECK_OK(raw_begin(&e, &txn, other, MDB_RDONLY))) {
        CHECK_OK(mdb_dbi_open(txn, NULL, 0, &dbi));
        CHECK_OK(mdb_stat(txn, dbi, &st));
        CHECK(st.ms_entries == 1);
        CHECK_RC(mdb_dbi_open(txn, "__meta", 0, &dbi), MDB_NOTFOUND);
        raw_end(e, txn, 0);
    }
    CHECK_STR(udb_strerror(UDB_EFORMAT), "not a uniqdb database, or an unsupported format version");
}

/* Format 1 kept records with a NULL out of unique indexes with NULLs
 * distinct, and stored a key of 504 to 511 bytes as it is.  Such a database
 * (made here by emptying the index and storing a long key plainly, as format
 * 1 would have left them) is upgraded on open: the index holds the records
 * again, and the key is in the long form (the check and a get see it). */
static void t_format_1_is_upgraded_on_open(tu *t)
{
    if (!tu_setup(t, "{`types`: {`t`: {`key`: `id`, `fields`: {`id`: {`type`: `uint`}, "
                     "`s`: {`type`: `str`}}, `unique`: {`s`: {`fields`: [`s`]}}}, "
                     "`w`: {`key`: `k`, `fields`: {`k`: {`type`: `str`}}}}}"))
        return;
    char k505[506];
    memset(k505, 'k', 505);
    k505[505] = 0;
    udb_txn *txn = tu_w(t);
    CHECK_OK(tu_ins(NULL, txn, "w", mp("{s:s}", "k", k505)));
    CHECK_OK(tu_ins(NULL, txn, "t", mp("{s:U, s:s}", "id", 1ull, "s", "a")));
    CHECK_OK(tu_ins(NULL, txn, "t", mp("{s:U}", "id", 2ull)));
    tu_commit(txn);
    udb_close(t->env);
    t->env = NULL;
    MDB_env *e;
    MDB_txn *txn_raw;
    MDB_dbi dbi;
    if (CHECK_OK(raw_begin(&e, &txn_raw, t->path, 0))) {
        int rc = mdb_dbi_open(txn_raw, "u:t:s", 0, &dbi);
        if (!rc)
            rc = mdb_drop(txn_raw, dbi, 0);
        /* the 507-byte key of w's record, stored as it is */
        MDB_cursor *cur = NULL;
        MDB_val k, v;
        unsigned char key[600], val[600];
        if (!rc && !(rc = mdb_dbi_open(txn_raw, "t:w", 0, &dbi)) &&
            !(rc = mdb_cursor_open(txn_raw, dbi, &cur)) &&
            !(rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) && CHECK(k.mv_size == 511)) {
            const unsigned char *vp = v.mv_data;
            size_t tail = (size_t)vp[v.mv_size - 2] << 8 | vp[v.mv_size - 1];
            size_t rlen = v.mv_size - 4 - tail;
            memcpy(key, k.mv_data, 503);
            memcpy(key + 503, vp + rlen, tail);
            memcpy(val, vp, rlen);
            MDB_val nk = {503 + tail, key}, nv = {rlen, val};
            CHECK(nk.mv_size == 507);
            if (!(rc = mdb_cursor_del(cur, 0)))
                rc = mdb_put(txn_raw, dbi, &nk, &nv, 0);
        }
        mdb_cursor_close(cur);
        CHECK_OK(raw_end(e, txn_raw, rc));
    }
    CHECK_OK(raw_put(t->path, "__meta", "format", 1));
    udb_env *env = NULL;
    udb_options ro = UDB_OPTIONS_INIT;
    ro.flags = UDB_RDONLY_ENV;
    CHECK_RC(udb_open(&env, t->path, &ro), UDB_EFORMAT);   /* cannot upgrade read-only */
    CHECK_HAS(udb_env_errmsg(NULL), "database format 1", "when it opens it for writing");
    if (CHECK_OK(udb_open(&env, t->path, NULL))) {
        size_t problems = 99;
        CHECK_OK(udb_check(&problems, env, NULL, NULL));
        CHECK(problems == 0);
        udb_close(env);
    }
    uint64_t f = 0;
    CHECK_OK(raw_format(&f, t->path));
    CHECK(f == UDB_FORMAT_VERSION);
    if (!tu_open(t))
        return;
    txn = tu_r(t);
    CHECK_STR(tu_scan(txn, "t", "s", NOVAL, "id"), "2,1");
    udb_val out;
    CHECK_OK(tu_get(&out, txn, "w", mp("s", k505)));
    tu_commit(txn);
}

/* Delete key from LMDB database db of path. */
static int raw_del(const char *path, const char *db, const char *key)
{
    MDB_val k = {strlen(key), (void *)key};
    MDB_env *e;
    MDB_txn *txn;
    int rc = raw_begin(&e, &txn, path, 0);
    if (rc)
        return rc;
    MDB_dbi dbi;
    if (!(rc = mdb_dbi_open(txn, db, 0, &dbi)))
        rc = mdb_del(txn, dbi, &k, NULL);
    return raw_end(e, txn, rc);
}

/* No format version is format 1 only with format 1's __meta ("schema" and
 * "gen", nothing else): a __meta that lost "format" to damage (issue 23: a
 * damaged page header hid it, and the "upgrade" crashed) is UDB_ECORRUPT,
 * read-only or not, and nothing is written.  The same __meta without the
 * extra key is a real format-1 database, and is upgraded. */
static void t_damaged_meta_is_not_format_1(tu *t)
{
    if (!tu_setup(t, "{`types`: {`t`: {`key`: `id`, `fields`: {`id`: {`type`: `uint`}}}}}"))
        return;
    udb_txn *txn = tu_w(t);
    CHECK_OK(tu_ins(NULL, txn, "t", mp("{s:U}", "id", 1ull)));
    tu_commit(txn);
    udb_close(t->env);
    t->env = NULL;
    CHECK_OK(raw_del(t->path, "__meta", "format"));
    CHECK_OK(raw_put(t->path, "__meta", "unit\1\1\1\1", 7));  /* format 1 never had one */
    udb_env *env = NULL;
    udb_options ro = UDB_OPTIONS_INIT;
    ro.flags = UDB_RDONLY_ENV;
    CHECK_RC(udb_open(&env, t->path, &ro), UDB_ECORRUPT);
    CHECK_HAS(udb_env_errmsg(NULL), "damaged", "not that of a format 1 database",
              "nothing was written");
    CHECK_RC(udb_open(&env, t->path, NULL), UDB_ECORRUPT);
    CHECK_HAS(udb_env_errmsg(NULL), "a key format 1 never stored");
    uint64_t f = 99;
    CHECK_RC(raw_format(&f, t->path), MDB_NOTFOUND);            /* not "upgraded" */
    CHECK_OK(raw_del(t->path, "__meta", "unit\1\1\1\1"));   /* format 1's shape */
    if (CHECK_OK(udb_open(&env, t->path, NULL)))
        udb_close(env);
    CHECK_OK(raw_format(&f, t->path));
    CHECK(f == UDB_FORMAT_VERSION);
}

/* 2000 types with a unique index each: 4002 LMDB named databases.  The
 * schema change names the limit when the handle's max_dbs is too small;
 * once stored, any open -- default options, or a max_dbs far too small --
 * sizes the environment from the file. */
static void t_many_types_open_with_any_options(tu *t)
{
    enum { NT = 2000 };
    char *json = tu_keep(malloc(NT * 160 + 64)), *p = json;
    p += sprintf(p, "{\"types\": {");
    for (int i = 0; i < NT; i++)
        p += sprintf(p, "%s\"t%d\": {\"key\": \"id\", \"fields\": {\"id\": {\"type\": "
                     "\"uint\"}, \"v\": {\"type\": \"str\"}}, \"unique\": {\"v\": "
                     "{\"fields\": [\"v\"]}}}", i ? ", " : "", i);
    sprintf(p, "}}");
    if (!tu_open(t))
        return;
    CHECK_RC(udb_schema_apply(NULL, t->env, json, strlen(json), 0), UDB_EDBSFULL);
    CHECK_HAS(udb_env_errmsg(t->env), "4002 LMDB named databases", "max_dbs of at least 4066",
              "the 512 this handle");
    char *none = NULL;
    CHECK_RC(udb_schema_json(&none, t->env), UDB_ENOTFOUND);
    udb_close(t->env);
    t->env = NULL;
    udb_options o = UDB_OPTIONS_INIT;
    o.max_dbs = 4066;
    udb_env *env = NULL;
    if (!CHECK_OK(udb_open(&env, t->path, &o)))
        return;
    CHECK_OK(udb_schema_apply(NULL, env, json, strlen(json), 0));
    udb_txn *txn = NULL;
    if (CHECK_OK(udb_begin(&txn, env, 0))) {
        CHECK_OK(tu_ins(NULL, txn, "t1999", mp("{s:U, s:s}", "id", 7ull, "v", "x")));
        CHECK_OK(udb_commit(txn));
    }
    udb_close(env);
    /* far too small a max_dbs, and the defaults: both open and see it all */
    o.max_dbs = 10;
    env = NULL;
    if (CHECK_OK(udb_open(&env, t->path, &o))) {
        udb_val out;
        if (CHECK_OK(udb_begin(&txn, env, UDB_RDONLY))) {
            CHECK_OK(tu_find(&out, txn, "t1999", "v", mp("[s]", "x")));
            CHECK_RC(tu_ins(NULL, txn, "t0", mp("{s:U}", "id", 1ull)), UDB_EREADONLY);
            udb_abort(txn);
        }
        udb_close(env);
    }
    tu_open(t);   /* default options; the end-of-case check walks all 2000 types */
}

/* UDB_RDONLY_ENV creates and writes nothing: no directory, no metadata in an
 * empty LMDB environment, no write transaction. */
static void t_read_only_open_writes_nothing(tu *t)
{
    udb_options o = UDB_OPTIONS_INIT;
    o.flags = UDB_RDONLY_ENV;
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/missing", t->dir);
    udb_env *env = NULL;
    CHECK_RC(udb_open(&env, p, &o), ENOENT);
    CHECK_HAS(udb_env_errmsg(NULL), "no such directory");
    struct stat st;
    CHECK(stat(p, &st) != 0);
    /* an empty directory: no data.mdb, and none made */
    snprintf(p, sizeof p, "%s/empty", t->dir);
    CHECK(mkdir(p, 0750) == 0);
    CHECK_RC(udb_open(&env, p, &o), ENOENT);
    CHECK_HAS(udb_env_errmsg(NULL), "not a uniqdb database");
    /* an empty LMDB environment made by another program stays without __meta */
    MDB_env *e;
    MDB_txn *rt;
    MDB_dbi dbi;
    if (CHECK_OK(raw_begin(&e, &rt, p, 0)))
        raw_end(e, rt, 1);
    CHECK_RC(udb_open(&env, p, &o), UDB_EFORMAT);
    CHECK_HAS(udb_env_errmsg(NULL), "not a uniqdb database", "nothing was written");
    if (CHECK_OK(raw_begin(&e, &rt, p, MDB_RDONLY))) {
        CHECK_RC(mdb_dbi_open(rt, "__meta", 0, &dbi), MDB_NOTFOUND);
        raw_end(e, rt, 0);
    }
    o.flags = UDB_NOLOCK;
    CHECK_RC(udb_open(&env, t->path, &o), UDB_EINVAL);
    /* a real database reads, and refuses writes */
    if (!tu_setup(t, tu_scenarios()))
        return;
    udb_close(t->env);
    t->env = NULL;
    o.flags = UDB_RDONLY_ENV;
    if (!CHECK_OK(udb_open(&env, t->path, &o)))
        return;
    udb_txn *txn = NULL;
    CHECK_RC(udb_begin(&txn, env, 0), UDB_EREADONLY);
    CHECK_HAS(udb_env_errmsg(env), "UDB_RDONLY_ENV");
    CHECK_RC(udb_schema_apply(NULL, env, tu_scenarios(), strlen(tu_scenarios()), 0),
             UDB_EREADONLY);
    CHECK_OK(udb_begin(&txn, env, UDB_RDONLY));
    udb_abort(txn);
    udb_close(env);
    tu_open(t);
}

/* A thread that holds a transaction and then writes on the same env would
 * wait for itself at the first map growth: refused at once, naming the rule. */
static int nothing(udb_txn *txn, void *ctx)
{
    (void)txn, (void)ctx;
    return 0;
}

static void t_write_while_holding_a_txn_is_refused(tu *t)
{
    if (!open_sized(t, "hold", 0, 0))
        return;
    udb_txn *r = tu_r(t), *w = NULL;
    int n = 1500;   /* more than the 1 MiB map holds: the write would have to grow it */
    CHECK_RC(udb_write(t->env, add_blobs, &n), UDB_EINVAL);
    CHECK_HAS(udb_env_errmsg(t->env), "udb_write", "already has a transaction open");
    CHECK_RC(udb_begin(&w, t->env, 0), UDB_EINVAL);
    CHECK_HAS(udb_env_errmsg(t->env), "udb_begin", "already has a transaction open");
    udb_txn *r2 = NULL;   /* a second reader is allowed */
    CHECK_OK(udb_begin(&r2, t->env, UDB_RDONLY));
    udb_abort(r2);
    tu_commit(r);
    CHECK_OK(udb_write(t->env, add_blobs, &n));   /* with the reader ended: fine */
    /* a write transaction held, then udb_write */
    w = tu_w(t);
    CHECK_RC(udb_write(t->env, nothing, NULL), UDB_EINVAL);
    tu_commit(w);
}

/* A read transaction held on another thread while the map must grow: the
 * writer waits at most grow_wait_ms and fails with UDB_EBUSY, never stalls. */
typedef struct held {
    udb_env *env;
    int ms;
    int started;
    pthread_mutex_t m;
    pthread_cond_t c;
} held;

static void *hold_reader(void *p)
{
    held *h = p;
    udb_txn *r = NULL;
    int rc = udb_begin(&r, h->env, UDB_RDONLY);
    pthread_mutex_lock(&h->m);
    h->started = rc ? -1 : 1;
    pthread_cond_signal(&h->c);
    pthread_mutex_unlock(&h->m);
    struct timespec d = {h->ms / 1000, (long)(h->ms % 1000) * 1000000L};
    nanosleep(&d, NULL);
    udb_abort(r);
    return NULL;
}

static void t_growth_waits_for_readers_a_bounded_time(tu *t)
{
    udb_options o = UDB_OPTIONS_INIT;
    o.map_size = 1u << 20;
    o.flags = UDB_NOSYNC;
    o.grow_wait_ms = 300;
    udb_close(t->env);
    t->env = NULL;
    if (!CHECK_OK(udb_open(&t->env, t->path, &o)) || !CHECK_OK(tu_apply(t, BLOBS)))
        return;
    held h = {t->env, 2500, 0, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER};
    pthread_t th;
    if (!CHECK(pthread_create(&th, NULL, hold_reader, &h) == 0))
        return;
    pthread_mutex_lock(&h.m);
    while (!h.started)
        pthread_cond_wait(&h.c, &h.m);
    pthread_mutex_unlock(&h.m);
    int n = 1500;
    double t0 = (double)sup_now_us() / 1e6;
    int rc = udb_write(t->env, add_blobs, &n);
    double took = (double)sup_now_us() / 1e6 - t0;
    CHECK(h.started == 1);
    CHECK_RC(rc, UDB_EBUSY);
    CHECK_HAS(udb_env_errmsg(t->env), "must grow", "300 ms", "grow_wait_ms");
    CHECK(took < 2.0);   /* the reader held on for 2.5 s: the writer did not wait it out */
    pthread_join(th, NULL);
    CHECK_OK(udb_write(t->env, add_blobs, &n));   /* reader gone: it grows */
}

/* Threads of one process fill a small map while others write and read: the
 * grow request a full transaction leaves (udb__env_want_grow) and the next
 * writer's check for it (udb__env_grow_if_wanted) meet on different threads.
 * Every write must land, and under ThreadSanitizer (build-tsan) the resize
 * state must show no data race: with env->lock taken out of those two
 * functions, TSan reports one here. */
#define GT_BY_HAND 4    /* udb_begin, insert, commit; abort and redo on a full map */
#define GT_GROUPED 1    /* udb_write of GT_BATCH records (group commit grows by itself) */
#define GT_ROUNDS  30
#define GT_BATCH   3
#define GT_CYCLES  10   /* fresh databases: growth is fastest from a small map */

typedef struct grow_thread {
    udb_env *env;
    udb_val blob;          /* one record, packed before the threads start */
    int fulls;             /* UDB_EMAPFULL seen by a by-hand writer */
    int rc;                /* first unexpected error, 0 if none */
    pthread_t th;
} grow_thread;

typedef struct grow_readers {
    udb_env *env;
    pthread_mutex_t m;
    bool stop;
    int rc, reads;
} grow_readers;

static void *grow_by_hand(void *p)
{
    grow_thread *g = p;
    for (int r = 0; r < GT_ROUNDS && !g->rc; r++) {
        int rc = UDB_EMAPFULL, attempts = 0;
        while (rc == UDB_EMAPFULL && attempts++ < 64) {
            udb_txn *txn = NULL;
            if ((rc = udb_begin(&txn, g->env, 0)))
                break;
            rc = udb_insert(NULL, txn, "blob", g->blob.data, g->blob.size);
            if (rc)
                udb_abort(txn);
            else
                rc = udb_commit(txn);
            g->fulls += rc == UDB_EMAPFULL;
        }
        g->rc = rc;
    }
    return NULL;
}

static int add_batch(udb_txn *txn, void *ctx)
{
    const grow_thread *g = ctx;
    for (int i = 0; i < GT_BATCH; i++) {
        int rc = udb_insert(NULL, txn, "blob", g->blob.data, g->blob.size);
        if (rc)
            return rc;
    }
    return 0;
}

static void *grow_grouped(void *p)
{
    grow_thread *g = p;
    for (int r = 0; r < GT_ROUNDS && !g->rc; r++)
        g->rc = udb_write(g->env, add_batch, g);
    return NULL;
}

static void *grow_reader(void *p)
{
    grow_readers *rd = p;
    for (;;) {
        pthread_mutex_lock(&rd->m);
        bool stop = rd->stop || rd->rc;
        pthread_mutex_unlock(&rd->m);
        if (stop)
            break;
        udb_txn *txn = NULL;
        udb_type_stat st;
        int rc = udb_begin(&txn, rd->env, UDB_RDONLY);
        if (!rc) {
            rc = udb_type_stat_get(&st, txn, "blob");
            udb_abort(txn);
        }
        pthread_mutex_lock(&rd->m);
        rd->rc = rc;
        rd->reads++;
        pthread_mutex_unlock(&rd->m);
    }
    return NULL;
}

/* One database from a 64 KiB map: the threads above fill it, then every
 * record must be there and the map must have doubled several times.  Returns
 * how often the by-hand writers saw UDB_EMAPFULL (in one cycle the udb_write
 * thread may have grown the map before every time). */
static int grow_with_threads(tu *t, int cycle, udb_val blob)
{
    udb_options o = UDB_OPTIONS_INIT;
    o.map_size = 64u << 10;   /* a few records fill it: it doubles many times */
    o.flags = UDB_NOSYNC;
    udb_close(t->env);
    t->env = NULL;
    snprintf(t->path, sizeof t->path, "%s/grow%d", t->dir, cycle);
    if (!CHECK_OK(udb_open(&t->env, t->path, &o)) || !CHECK_OK(tu_apply(t, BLOBS)))
        return 0;
    size_t map0 = 0, map1 = 0;
    CHECK_OK(udb_env_usage(&map0, NULL, t->env));
    grow_thread g[GT_BY_HAND + GT_GROUPED];
    grow_readers rd = {t->env, PTHREAD_MUTEX_INITIALIZER, false, 0, 0};
    pthread_t reader;
    int started = 0, fulls = 0;
    bool reading = CHECK(pthread_create(&reader, NULL, grow_reader, &rd) == 0);
    /* the writers start once the reader is reading: on two cores they could
       otherwise fill the map before the reader thread first ran (seen in CI) */
    for (int waited = 0; reading && waited < 10000; waited++) {
        pthread_mutex_lock(&rd.m);
        bool going = rd.reads > 0 || rd.rc;
        pthread_mutex_unlock(&rd.m);
        if (going)
            break;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    for (int i = 0; i < GT_BY_HAND + GT_GROUPED; i++, started++) {
        g[i] = (grow_thread){.env = t->env, .blob = blob};
        if (!CHECK(pthread_create(&g[i].th, NULL, i < GT_BY_HAND ? grow_by_hand : grow_grouped,
                                  &g[i]) == 0))
            break;
    }
    for (int i = 0; i < started; i++) {
        pthread_join(g[i].th, NULL);
        if (!CHECK_OK(g[i].rc))
            fprintf(stderr, "  writer %d: %s\n", i, udb_strerror(g[i].rc));
        fulls += g[i].fulls;
    }
    pthread_mutex_lock(&rd.m);
    rd.stop = true;
    pthread_mutex_unlock(&rd.m);
    if (reading)
        pthread_join(reader, NULL);
    CHECK_OK(rd.rc);
    CHECK(rd.reads > 0);
    CHECK_OK(udb_env_usage(&map1, NULL, t->env));
    CHECK(map1 >= 4 * map0);   /* it doubled at least twice */
    udb_txn *txn = tu_r(t);
    CHECK(tu_count(txn, "blob") == (size_t)GT_ROUNDS * (GT_BY_HAND + GT_GROUPED * GT_BATCH));
    tu_commit(txn);
    return fulls;
}

static void t_map_grows_while_threads_write(tu *t)
{
    udb_val blob = mp("{s:s}", "data", kib_text());
    int fulls = 0;
    for (int cycle = 0; cycle < GT_CYCLES; cycle++)
        fulls += grow_with_threads(t, cycle, blob);
    CHECK(fulls > 0);   /* the by-hand writers did see the map fill up */
}

TU_MAIN(TU_CASE(t_close_and_reopen_keeps_everything), TU_CASE(t_open_checks_the_format),
        TU_CASE(t_format_1_is_upgraded_on_open), TU_CASE(t_damaged_meta_is_not_format_1),
        TU_CASE(t_many_types_open_with_any_options),
        TU_CASE(t_read_only_open_writes_nothing), TU_CASE(t_write_while_holding_a_txn_is_refused),
        TU_CASE(t_growth_waits_for_readers_a_bounded_time),
        TU_CASE(t_created_directory_is_not_world_writable),
        TU_CASE(t_env_files_are_what_open_creates), TU_CASE(t_open_reports_bad_paths),
        TU_CASE(t_open_checks_the_options_version), TU_CASE(t_env_errmsg_is_per_thread),
        TU_CASE(t_map_grows_after_map_full), TU_CASE(t_max_map_size_with_group_commit),
        TU_CASE(t_max_map_size_without_group_commit),
        TU_CASE(t_map_grows_while_threads_write))
