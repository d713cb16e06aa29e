/*
 * env.c -- an open database: the LMDB environment, the cached schema and its
 * handles, growing the map, and the process's table of open environments.
 *
 * LMDB rules this file exists to respect: named-database handles are opened
 * by one transaction at a time and survive only if that transaction commits
 * (so they are opened once and cached per schema generation); the map can be
 * resized only while this process has no transaction open (so resizing waits
 * for the active count to reach zero and holds new transactions back); and a
 * size set by another process is adopted on MDB_MAP_RESIZED.  And one
 * MDB_env per database per process: see "The process's open environments".
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "env_int.h"
#include "error.h"
#include "layout.h"
#include "ship.h"

/* LMDB on Linux maps address space, not disk: a generous map costs nothing
 * until used, and growing it waits for every transaction of the process. */
#define DEFAULT_MAP (sizeof(size_t) >= 8 ? (size_t)4 << 30 : (size_t)64 << 20)
#define DEFAULT_GROW_WAIT_MS 10000u
#define DEFAULT_MAXDBS 512
/* named databases beyond those stored, for schema changes: LMDB allocates
   per-transaction state for every slot, so not many more */
#define DBS_ROOM 64

/* ---- The process's open environments ----------------------------------
 * LMDB allows one MDB_env per database per process.  Its locks on lock.mdb
 * are POSIX record locks, which belong to the process, not to the descriptor:
 * closing a second MDB_env of the same file drops the first one's locks (the
 * next process to open then takes itself for the only user and resets the
 * lock file -- writer mutex, reader table -- under a running writer), and
 * clears every reader slot of the process.  So every udb_open of one
 * directory, however the path spells it (same device and inode), returns the
 * same udb_env, counted in env->refs; udb_close closes it when the count
 * reaches zero (lmdb-js keeps the same kind of table).  An environment being
 * opened or closed stays in the table, not ready, and an open of the same
 * directory waits for it, so two MDB_env of one file never exist at once, not
 * even for a moment.  The key stays the database's own while it is open: LMDB
 * holds data.mdb open, and an open file keeps its directory's inode from
 * being freed, so a directory removed and made again gets another inode.  The
 * table lock is never held across LMDB calls: opening one database never
 * waits for another.  A forked child starts with an empty table: its parent's
 * environments are not its own, and it must open the database again (LMDB's
 * rule). */
static pthread_mutex_t envs_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t envs_cond = PTHREAD_COND_INITIALIZER;
static udb_env *envs;           /* ready or not; linked through env->next */
static pthread_once_t envs_once = PTHREAD_ONCE_INIT;
static _Atomic unsigned test_flags;

void udb__env_set_test_flags(unsigned flags)
{
    atomic_store(&test_flags, flags);
}

/* fork() while another thread holds the table lock must not leave it held
 * in the child: the lock is taken around fork, and the child forgets the
 * parent's environments (left allocated: LMDB forbids touching them) and
 * any waiter the condition variable counted. */
static void envs_prefork(void)
{
    pthread_mutex_lock(&envs_lock);
}

static void envs_postfork_parent(void)
{
    pthread_mutex_unlock(&envs_lock);
}

static void envs_postfork_child(void)
{
    envs = NULL;
    pthread_cond_init(&envs_cond, NULL);
    pthread_mutex_unlock(&envs_lock);
}

static void envs_init(void)
{
    pthread_atfork(envs_prefork, envs_postfork_parent, envs_postfork_child);
}

/* The flags of `bits` by name, as "UDB_NOSYNC, UDB_NOGROUP". */
static void flag_names(char *out, size_t cap, unsigned bits)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{UDB_NOSYNC, "UDB_NOSYNC"},         {UDB_NOMETASYNC, "UDB_NOMETASYNC"},
                 {UDB_NOGROUP, "UDB_NOGROUP"},       {UDB_RDONLY_ENV, "UDB_RDONLY_ENV"},
                 {UDB_NOLOCK, "UDB_NOLOCK"},         {UDB_NOSHIP, "UDB_NOSHIP"}};
    size_t n = 0;
    out[0] = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if ((bits & names[i].bit) && n < cap) {
            int w = snprintf(out + n, cap - n, "%s%s", n ? ", " : "", names[i].name);
            n = w < 0 ? cap : n + (size_t)w;
        }
}

/* A second open shares the environment as the first one made it, so it
 * must ask for what governs its behaviour -- the same flags, max_map_size,
 * grow_wait_ms and lock_wait_ms -- and, if it names a number of named
 * databases, no more than the environment has (fixed while it is open).
 * map_size and mode shape a new file, which exists by now: not compared.
 * 0, or UDB_EINVAL naming the option (env is ready, so its fields are
 * settled). */
static int same_options(const udb_env *env, const char *path, const udb_options *o,
                        unsigned grow_wait_ms)
{
    static const char rule[] = "every udb_open of a database in one process shares one "
                               "environment (LMDB allows one per process), so it must ask for "
                               "the options that one was opened with";
    if (env->flags != o->flags) {
        char differ[128];
        flag_names(differ, sizeof differ, env->flags ^ o->flags);
        return udb__env_err(UDB_EINVAL, "udb_open: %s is already open in this process (as %s) "
                            "with flags 0x%x, and this open asks for flags 0x%x (they differ "
                            "in %s): %s", path, env->path, env->flags, o->flags, differ, rule);
    }
    if (env->max_map != o->max_map_size)
        return udb__env_err(UDB_EINVAL, "udb_open: %s is already open in this process (as %s) "
                            "with max_map_size %zu, and this open asks for %zu: %s", path,
                            env->path, env->max_map, o->max_map_size, rule);
    if (env->grow_wait_ms != grow_wait_ms)
        return udb__env_err(UDB_EINVAL, "udb_open: %s is already open in this process (as %s) "
                            "with grow_wait_ms %u, and this open asks for %u: %s", path,
                            env->path, env->grow_wait_ms, grow_wait_ms, rule);
    if (env->lock_wait_ms != o->lock_wait_ms)
        return udb__env_err(UDB_EINVAL, "udb_open: %s is already open in this process (as %s) "
                            "with lock_wait_ms %u, and this open asks for %u: %s", path,
                            env->path, env->lock_wait_ms, o->lock_wait_ms, rule);
    if (o->max_dbs > env->maxdbs)
        return udb__env_err(UDB_EINVAL, "udb_open: %s is already open in this process (as %s) "
                            "with room for %u named databases, and this open asks for max_dbs "
                            "%u, which cannot grow while it is open: %s", path, env->path,
                            env->maxdbs, o->max_dbs, rule);
    return 0;
}

/* Join the environment of fresh's directory (fresh->dev, fresh->ino) if this
 * process has it open, waiting out another thread's open or close of it:
 * 0 with *out that environment, counted, or UDB_EINVAL from same_options.
 * If there is none, fresh goes into the table, not ready, and *out is NULL:
 * the caller opens it, then calls envs_ready, or env_close if it failed. */
static int envs_join(udb_env **out, udb_env *fresh, const char *path, const udb_options *o)
{
    pthread_mutex_lock(&envs_lock);
    udb_env *e;
    for (;;) {
        for (e = envs; e && (e->dev != fresh->dev || e->ino != fresh->ino); e = e->next)
            ;
        if (!e || e->ready)
            break;
        pthread_cond_wait(&envs_cond, &envs_lock);
    }
    int rc = 0;
    *out = NULL;
    if (e && !(rc = same_options(e, path, o, fresh->grow_wait_ms))) {
        e->refs++;
        *out = e;
    } else if (!e) {
        fresh->next = envs;
        envs = fresh;
    }
    pthread_mutex_unlock(&envs_lock);
    return rc;
}

static void env_close(udb_env *env);

static void envs_ready(udb_env *env)
{
    pthread_mutex_lock(&envs_lock);
    env->ready = true;
    pthread_cond_broadcast(&envs_cond);
    pthread_mutex_unlock(&envs_lock);
}

/* Out of the table (an environment opened past it, for a test, is not in
 * it); whoever waited for its directory looks again. */
static void envs_remove(udb_env *env)
{
    pthread_mutex_lock(&envs_lock);
    for (udb_env **p = &envs; *p; p = &(*p)->next)
        if (*p == env) {
            *p = env->next;
            break;
        }
    pthread_cond_broadcast(&envs_cond);
    pthread_mutex_unlock(&envs_lock);
}

const char *const *udb_env_files(void)
{
    static const char *const files[] = {UDB_DATA_FILE, UDB_LOCK_FILE, UDB_SYNC_FILE, NULL};
    return files;
}

void udb__env_install_schema(udb_env *env, udb_schema *s, uint64_t gen)
{
    pthread_mutex_lock(&env->lock);
    if (env->schema) {
        udb_schema **r = realloc(env->retired, (env->nretired + 1) * sizeof *r);
        if (r) {
            env->retired = r;
            env->retired[env->nretired++] = env->schema;
        } else {
            /* cannot happen in practice; leaking beats freeing under a reader */
        }
    }
    env->schema = s;
    env->schema_gen = gen;
    pthread_mutex_unlock(&env->lock);
}

int udb__env_reload_schema(udb_env *env)
{
    MDB_txn *txn = NULL;
    udb_schema *s = NULL;
    uint64_t gen;
    pthread_mutex_lock(&env->dbi_lock);
    int rc = mdb_txn_begin(env->mdb, NULL, MDB_RDONLY, &txn);
    if (rc == MDB_MAP_RESIZED) {
        pthread_mutex_unlock(&env->dbi_lock);
        if ((rc = udb__adopt(env)))
            return rc;
        pthread_mutex_lock(&env->dbi_lock);
        rc = mdb_txn_begin(env->mdb, NULL, MDB_RDONLY, &txn);
    }
    if (rc)
        goto out;
    if ((rc = udb__meta_gen(&gen, txn, env->meta_dbi)))
        goto out;
    pthread_mutex_lock(&env->lock);
    bool same = gen == env->schema_gen && (env->schema || gen == 0);
    pthread_mutex_unlock(&env->lock);
    if (same)
        goto out;
    MDB_val v;
    rc = mdb_get(txn, env->meta_dbi, (MDB_val *)&udb__meta_schema, &v);
    if (rc)
        goto out;
    udb_buf msg = {0};
    rc = udb__schema_parse(&s, v.mv_data, v.mv_size, &msg);
    if (rc) {
        udb__env_err(UDB_ECORRUPT, "stored schema does not parse: %s",
                     msg.p ? (char *)msg.p : "?");
        udb__buf_free(&msg);
        rc = UDB_ECORRUPT;
        goto out;
    }
    udb__buf_free(&msg);
    if ((rc = udb__schema_open_dbis(s, txn, 0))) {
        if (rc == MDB_NOTFOUND)
            rc = udb__env_err(UDB_ECORRUPT, "a database named by the schema is missing");
        goto out;
    }
    /* a read-only commit is what keeps the handles opened above */
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc)
        goto out;
    udb__env_install_schema(env, s, gen);
    s = NULL;
out:
    if (txn)
        mdb_txn_abort(txn);
    pthread_mutex_unlock(&env->dbi_lock);
    udb__schema_free(s);
    return rc;
}

size_t udb__mapsize(udb_env *env)
{
    MDB_envinfo info;
    mdb_env_info(env->mdb, &info);
    return info.me_mapsize;
}

/* Set while a group commit leader holds other processes' units: then a
 * resize that would have to wait for this process's transactions refuses at
 * once, and the leader hands the units back before it waits (group.c). */
static _Thread_local bool no_waiting, refused;

void udb__env_no_waiting(bool on)
{
    no_waiting = on;
    refused = false;
}

bool udb__env_refused_waiting(void)
{
    return refused;
}

/* Wait (env->lock held) until no transaction of this process is open, at
 * most env->grow_wait_ms.  0, or UDB_EBUSY with the message set. */
static int wait_inactive(udb_env *env, const char *why)
{
    if (no_waiting && env->active) {
        refused = true;
        return udb__env_err(UDB_EBUSY, "%s: %s, but %u transactions of this process are open",
                            env->path, why, env->active);
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += env->grow_wait_ms / 1000;
    until.tv_nsec += (long)(env->grow_wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (env->active)
        if (pthread_cond_timedwait(&env->cond, &env->lock, &until) == ETIMEDOUT && env->active)
            return udb__env_err(UDB_EBUSY, "%s: %s, which needs every transaction of this "
                                "process to end, but %u stayed open for %u ms "
                                "(udb_options.grow_wait_ms); end long read transactions, or "
                                "open with a larger map_size", env->path, why, env->active,
                                env->grow_wait_ms);
    return 0;
}

int udb__grow(udb_env *env, size_t from)
{
    int rc = 0;
    pthread_mutex_lock(&env->lock);
    while (env->resizing)
        pthread_cond_wait(&env->cond, &env->lock);
    size_t cur = udb__mapsize(env);
    if (cur <= from) {
        size_t target = from > SIZE_MAX / 2 ? SIZE_MAX : from * 2;
        if (env->max_map && target > env->max_map) {
            if (cur >= env->max_map)
                rc = UDB_ESIZELIMIT;
            target = env->max_map;
        }
        if (!rc) {
            env->resizing = true;
            rc = wait_inactive(env, "the map is full and must grow");
            if (!rc)
                rc = mdb_env_set_mapsize(env->mdb, target);
            env->resizing = false;
            pthread_cond_broadcast(&env->cond);
        }
    }
    env->want_grow = false;
    pthread_mutex_unlock(&env->lock);
    if (rc == UDB_ESIZELIMIT)
        udb__env_err(rc, "the database reached its maximum size of %zu bytes", env->max_map);
    return rc;
}

int udb__adopt(udb_env *env)
{
    pthread_mutex_lock(&env->lock);
    while (env->resizing)
        pthread_cond_wait(&env->cond, &env->lock);
    env->resizing = true;
    int rc = wait_inactive(env, "another process grew the map, which this process must adopt");
    if (!rc)
        rc = mdb_env_set_mapsize(env->mdb, 0);
    env->resizing = false;
    pthread_cond_broadcast(&env->cond);
    pthread_mutex_unlock(&env->lock);
    return rc;
}

/* Doubling from one byte reaches SIZE_MAX in this many steps, so more
 * attempts than this mean a bug, not a small map. */
#define GROW_ATTEMPTS (8 * sizeof(size_t))

int udb__grow_retry(udb_env *env, udb__attempt_fn attempt, void *ctx)
{
    for (size_t i = 0;; i++) {
        size_t at = 0;
        int rc = attempt(&at, ctx);
        if (!at || i == GROW_ATTEMPTS)
            return rc;
        if ((rc = udb__grow(env, at)))
            return rc;
    }
}

void udb__env_want_grow(udb_env *env, size_t from)
{
    pthread_mutex_lock(&env->lock);
    env->want_grow = true;
    env->grow_from = from;
    pthread_mutex_unlock(&env->lock);
}

int udb__env_grow_if_wanted(udb_env *env)
{
    pthread_mutex_lock(&env->lock);
    bool want = env->want_grow;
    size_t from = env->grow_from;
    pthread_mutex_unlock(&env->lock);
    return want ? udb__grow(env, from) : 0;
}

bool udb__env_grow_pending(udb_env *env)
{
    pthread_mutex_lock(&env->lock);
    bool pending = env->want_grow || env->resizing;
    pthread_mutex_unlock(&env->lock);
    return pending;
}

void udb__env_enter(udb_env *env, udb_schema **schema, uint64_t *gen, pthread_t owner)
{
    pthread_mutex_lock(&env->lock);
    while (env->resizing)
        pthread_cond_wait(&env->cond, &env->lock);
    env->active++;
    if (env->nowners == env->capowners) {
        size_t cap = env->capowners ? env->capowners * 2 : 8;
        pthread_t *o = realloc(env->owners, cap * sizeof *o);
        if (o) {
            env->owners = o;
            env->capowners = cap;
        }
    }
    /* without room the thread goes untracked: only the misuse check is lost */
    if (env->nowners < env->capowners)
        env->owners[env->nowners++] = owner;
    *schema = env->schema;
    *gen = env->schema_gen;
    pthread_mutex_unlock(&env->lock);
}

void udb__env_current(udb_env *env, udb_schema **schema, uint64_t *gen)
{
    pthread_mutex_lock(&env->lock);
    *schema = env->schema;
    *gen = env->schema_gen;
    pthread_mutex_unlock(&env->lock);
}

void udb__env_leave(udb_env *env, pthread_t owner)
{
    pthread_mutex_lock(&env->lock);
    for (size_t i = 0; i < env->nowners; i++)
        if (pthread_equal(env->owners[i], owner)) {
            env->owners[i] = env->owners[--env->nowners];
            break;
        }
    if (--env->active == 0)
        pthread_cond_broadcast(&env->cond);
    pthread_mutex_unlock(&env->lock);
}

int udb__env_reader_begin(udb_env *env, MDB_txn **out)
{
    pthread_mutex_lock(&env->lock);
    MDB_txn *t = env->idle_reader;
    env->idle_reader = NULL;
    pthread_mutex_unlock(&env->lock);
    if (t) {
        if (!mdb_txn_renew(t)) {
            *out = t;
            return 0;
        }
        /* MDB_MAP_RESIZED, MDB_PANIC, ...: a new handle reports it again */
        mdb_txn_abort(t);
    }
    return mdb_txn_begin(env->mdb, NULL, MDB_RDONLY, out);
}

void udb__env_reader_end(udb_env *env, MDB_txn *txn)
{
    mdb_txn_reset(txn);
    pthread_mutex_lock(&env->lock);
    if (!env->idle_reader) {
        env->idle_reader = txn;
        txn = NULL;
    }
    pthread_mutex_unlock(&env->lock);
    if (txn)
        mdb_txn_abort(txn);
}

void udb__env_dbi_lock(udb_env *env)
{
    pthread_mutex_lock(&env->dbi_lock);
}

void udb__env_dbi_unlock(udb_env *env)
{
    pthread_mutex_unlock(&env->dbi_lock);
}

MDB_env *udb__env_mdb(const udb_env *env)
{
    return env->mdb;
}

MDB_dbi udb__env_meta_dbi(const udb_env *env)
{
    return env->meta_dbi;
}

MDB_dbi udb__env_seq_dbi(const udb_env *env)
{
    return env->seq_dbi;
}

int udb__env_thread_holds(udb_env *env, const char *call)
{
    pthread_t self = pthread_self();
    bool holds = false;
    pthread_mutex_lock(&env->lock);
    for (size_t i = 0; i < env->nowners && !holds; i++)
        holds = pthread_equal(env->owners[i], self);
    pthread_mutex_unlock(&env->lock);
    if (!holds)
        return 0;
    return udb__env_err(UDB_EINVAL, "%s: the calling thread already has a transaction open on "
                        "%s; a thread must end it before writing (udb_write, or udb_begin "
                        "for writing): a write waits for the single writer slot and may have "
                        "to grow the map, which waits for every transaction of this process "
                        "-- including this thread's own", call, env->path);
}

int udb__env_refuse_write(const udb_env *env)
{
    if (!(env->flags & UDB_RDONLY_ENV))
        return 0;
    return udb__env_err(UDB_EREADONLY, "%s was opened with UDB_RDONLY_ENV: no writes",
                        env->path);
}

size_t udb__env_keymax(const udb_env *env)
{
    return env->keymax;
}

udb_sync *udb__env_sync(const udb_env *env)
{
    return env->sync;
}

struct udb_ship *udb__env_ship(const udb_env *env)
{
    return env->ship;
}

int udb__env_last_txnid(uint64_t *out, udb_env *env)
{
    for (;;) {
        udb_schema *s;
        uint64_t gen;
        udb__env_enter(env, &s, &gen, pthread_self());
        MDB_txn *t;
        int rc = udb__env_reader_begin(env, &t);
        if (!rc) {
            *out = mdb_txn_id(t);
            udb__env_reader_end(env, t);
        }
        udb__env_leave(env, pthread_self());
        if (rc != MDB_MAP_RESIZED)
            return rc;
        if ((rc = udb__adopt(env)))
            return rc;
    }
}

/* A database without a stored format version is format 1 only if its
 * __meta has format 1's shape: it walks cleanly in key order, LMDB's count
 * of its entries is the number walked, and it holds "schema" and "gen" (an
 * 8-byte number) or nothing at all -- every later format stores "format"
 * from its creation.  Anything else is a damaged __meta (e.g. a damaged page
 * header hiding the "format" key), which must never be "upgraded": the
 * upgrade rewrites every index from what it reads. */
static int format1_shape(MDB_txn *txn, udb_env *env)
{
    MDB_stat st;
    MDB_cursor *cur;
    int rc = mdb_stat(txn, env->meta_dbi, &st);
    if (rc || (rc = mdb_cursor_open(txn, env->meta_dbi, &cur)))
        return rc;
    udb_buf last = {0};
    size_t n = 0, schema = 0, gen = 0;
    const char *why = NULL;
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && !why;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (!udb__sane_entry(&k, &v) || udb__key_after(&last, &k))
            why = "entries of garbage size or out of key order";
        else if (++n > st.ms_entries)
            why = "more entries than LMDB counts";
        else if (k.mv_size == udb__meta_schema.mv_size &&
                 memcmp(k.mv_data, udb__meta_schema.mv_data, k.mv_size) == 0)
            schema++;
        else if (k.mv_size == udb__meta_gen_key.mv_size &&
                 memcmp(k.mv_data, udb__meta_gen_key.mv_data, k.mv_size) == 0 && v.mv_size == 8)
            gen++;
        else
            why = "a key format 1 never stored";
    }
    mdb_cursor_close(cur);
    udb__buf_free(&last);
    if (rc != MDB_NOTFOUND && !why)
        why = mdb_strerror(rc);
    else if (!why && n != st.ms_entries)
        why = "fewer entries than LMDB counts";
    else if (!why && schema != gen)
        why = "a schema without its generation, or the reverse";
    if (!why)
        return 0;
    return udb__env_err(UDB_ECORRUPT, "udb_open: %s: the database is damaged: it has no format "
                        "version, and its metadata is not that of a format 1 database (%s); "
                        "nothing was written (run uniqdb check)", env->path, why);
}

/* The stored format version is one this library reads: its own, or an
 * older one udb__upgrade_format() rewrites (a database from before the
 * version was stored has none, and is format 1 if format1_shape() says so). */
static int check_format(MDB_txn *txn, udb_env *env)
{
    uint64_t f;
    int rc = udb__meta_u64(&f, txn, env->meta_dbi, &udb__meta_format);
    if (rc == UDB_ECORRUPT)
        return udb__env_err(UDB_EFORMAT, "udb_open: %s: damaged format version", env->path);
    if (rc)
        return rc;
    if (f == 0 && (rc = format1_shape(txn, env)))
        return rc;
    if (f == 0)
        f = 1;
    if (f > UDB_FORMAT_VERSION)
        return udb__env_err(UDB_EFORMAT,
                            "udb_open: %s: database format %llu; this uniqdb reads formats 1 "
                            "to %d", env->path, (unsigned long long)f, UDB_FORMAT_VERSION);
    env->format = (unsigned)f;
    return 0;
}

/* A new database: __meta with the format version, and __seq.  An LMDB
 * environment that already holds anything is somebody else's: refused, not
 * written.  Runs in a write transaction, so of two processes creating the
 * same database the second finds the first one's work. */
static int create_meta(MDB_txn *txn, udb_env *env)
{
    int rc = mdb_dbi_open(txn, UDB_DB_META, 0, &env->meta_dbi);
    if (rc == MDB_NOTFOUND) {
        MDB_dbi main;
        MDB_stat st;
        if ((rc = mdb_dbi_open(txn, NULL, 0, &main)) || (rc = mdb_stat(txn, main, &st)))
            return rc;
        if (st.ms_entries)
            return udb__env_err(UDB_EFORMAT, "udb_open: %s holds an LMDB environment that is "
                                "not a uniqdb database (%zu entries, no __meta); left untouched",
                                env->path, (size_t)st.ms_entries);
        if ((rc = mdb_dbi_open(txn, UDB_DB_META, MDB_CREATE, &env->meta_dbi)) ||
            (rc = udb__meta_put_u64(txn, env->meta_dbi, &udb__meta_format, UDB_FORMAT_VERSION)))
            return rc;
    } else if (rc) {
        return rc;
    }
    if ((rc = mdb_dbi_open(txn, UDB_DB_SEQ, MDB_CREATE, &env->seq_dbi)))
        return rc;
    return check_format(txn, env);
}

/* An LMDB environment of another program (entries, no __meta): UDB_EFORMAT
 * with the message set, before uniqdb adds a file of its own beside it. */
static int refuse_foreign(udb_env *env)
{
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_stat st;
    int rc = mdb_txn_begin(env->mdb, NULL, MDB_RDONLY, &txn);
    if (rc)
        return rc;
    rc = mdb_dbi_open(txn, UDB_DB_META, 0, &dbi);
    if (rc == MDB_NOTFOUND && !(rc = mdb_dbi_open(txn, NULL, 0, &dbi)) &&
        !(rc = mdb_stat(txn, dbi, &st)) && st.ms_entries)
        rc = udb__env_err(UDB_EFORMAT, "udb_open: %s holds an LMDB environment that is not a "
                          "uniqdb database (%zu entries, no __meta); left untouched", env->path,
                          (size_t)st.ms_entries);
    mdb_txn_abort(txn);
    return rc == UDB_EFORMAT ? rc : 0;   /* anything else: open_meta says it */
}

/* Open __meta and __seq, creating them for a new database; the format
 * version is checked either way.  UDB_EFORMAT comes with its message set. */
static int open_meta(udb_env *env)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(env->mdb, NULL, MDB_RDONLY, &txn);
    if (rc)
        return rc;
    rc = mdb_dbi_open(txn, UDB_DB_META, 0, &env->meta_dbi);
    if (!rc)
        rc = mdb_dbi_open(txn, UDB_DB_SEQ, 0, &env->seq_dbi);
    if (!rc)
        rc = check_format(txn, env);
    if (!rc)
        return mdb_txn_commit(txn);
    mdb_txn_abort(txn);
    if (rc != MDB_NOTFOUND)
        return rc;
    if (env->flags & UDB_RDONLY_ENV)
        return udb__env_err(UDB_EFORMAT, "udb_open: %s: not a uniqdb database (an LMDB "
                            "environment without uniqdb's metadata); opened read-only, so "
                            "nothing was written", env->path);
    /* a new database (waits for the writer slot) */
    if ((rc = mdb_txn_begin(env->mdb, NULL, 0, &txn)))
        return rc;
    if ((rc = create_meta(txn, env))) {
        mdb_txn_abort(txn);
        return rc;
    }
    return mdb_txn_commit(txn);
}

/* LMDB extends its lock file with ftruncate and writes it through a
 * mapping: with no room on the disk that raises SIGBUS inside mdb_env_open.
 * Allocate it for real first (ENOSPC then is an error).  8192 bytes is what
 * LMDB makes for its default 126 readers; a larger file only gives it more
 * reader slots, so an existing file is left as it is. */
static int allocate_lock_file(const char *path, mode_t mode)
{
    char lp[PATH_MAX];
    if (snprintf(lp, sizeof lp, "%s/%s", path, UDB_LOCK_FILE) >= (int)sizeof lp)
        return ENAMETOOLONG;
    int fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, mode);
    if (fd < 0)
        return errno == EACCES || errno == EROFS ? 0 : errno;   /* LMDB says it better */
    struct stat st;
    int rc = fstat(fd, &st) != 0 ? errno : 0;
    if (!rc && st.st_size < 8192) {
        rc = posix_fallocate(fd, 0, 8192);
        if (rc == EOPNOTSUPP || rc == EINVAL)
            rc = 0;   /* a file system without it: LMDB's own way */
    }
    close(fd);
    return rc;
}

unsigned udb__env_lock_wait_ms(const udb_env *env)
{
    return env->lock_wait_ms;
}

bool udb__env_disk_full(const udb_env *env)
{
    struct statvfs v;
    /* less than 64 KiB left: a commit of a few pages cannot be written */
    return env->path && statvfs(env->path, &v) == 0 &&
           (uint64_t)v.f_bavail * v.f_frsize < 65536;
}

/* How far ahead of the pages in use data.mdb is kept allocated. */
#define RESERVE_AHEAD (4u << 20)
#define RESERVE_LEAST (256u << 10)

int udb__env_reserve(udb_env *env)
{
    int fd;
    MDB_envinfo info;
    MDB_stat st;
    struct stat fst;
    if (mdb_env_get_fd(env->mdb, &fd) || mdb_env_info(env->mdb, &info) ||
        mdb_env_stat(env->mdb, &st))
        return 0;   /* cannot tell: LMDB's own write reports a full disk */
    off_t used = ((off_t)info.me_last_pgno + 1) * st.ms_psize;
    /* blocks once found allocated stay allocated (nothing truncates data.mdb or
       punches holes in it): no fstat while the room known is enough */
    off_t known = (off_t)atomic_load_explicit(&env->reserved_to, memory_order_relaxed);
    if (used + (off_t)RESERVE_LEAST <= known)
        return 0;
    if (fstat(fd, &fst) != 0)
        return 0;
    /* blocks allocated past the pages in use (a sparse tail counts for none) */
    off_t have = (off_t)fst.st_blocks * 512 - used;
    if (fst.st_size >= used + (off_t)RESERVE_LEAST && have >= (off_t)RESERVE_LEAST) {
        off_t end = used + (have < fst.st_size - used ? have : fst.st_size - used);
        atomic_store_explicit(&env->reserved_to, (uint64_t)end, memory_order_relaxed);
        return 0;
    }
    off_t ahead = RESERVE_AHEAD;
    int rc = posix_fallocate(fd, used, ahead);
    if (rc == ENOSPC)
        rc = posix_fallocate(fd, used, ahead = RESERVE_LEAST);
    if (!rc)
        atomic_store_explicit(&env->reserved_to, (uint64_t)(used + ahead), memory_order_relaxed);
    return rc == EOPNOTSUPP || rc == EINVAL ? 0 : rc;
}

int udb__env_io_rc(const udb_env *env, int rc)
{
    return rc == EIO && udb__env_disk_full(env) ? ENOSPC : rc;
}

/* Create and open env->mdb with env->maxdbs named databases; a new file
 * starts at `want` bytes (an existing file's size is adopted later). */
static int open_mdb(udb_env *env, const char *path, unsigned mflags, mode_t mode, size_t want)
{
    int rc = 0;
    if (!(mflags & (MDB_RDONLY | MDB_NOLOCK)) && (rc = allocate_lock_file(path, mode)))
        return rc;
    rc = mdb_env_create(&env->mdb);
    if (rc)
        return rc;
    if ((rc = mdb_env_set_maxdbs(env->mdb, env->maxdbs)) ||
        (rc = mdb_env_set_mapsize(env->mdb, want)))
        return rc;
    return mdb_env_open(env->mdb, path, mflags, mode);
}

/* How many named databases the file holds: LMDB keeps one record for each
 * in its main database. */
static int count_dbs(unsigned *out, MDB_env *mdb)
{
    MDB_txn *txn;
    MDB_dbi main;
    MDB_stat st;
    int rc = mdb_txn_begin(mdb, NULL, MDB_RDONLY, &txn);
    if (rc == MDB_MAP_RESIZED && (rc = mdb_env_set_mapsize(mdb, 0)) == 0)
        rc = mdb_txn_begin(mdb, NULL, MDB_RDONLY, &txn);
    if (rc)
        return rc;
    if ((rc = mdb_dbi_open(txn, NULL, 0, &main)) == 0 && (rc = mdb_stat(txn, main, &st)) == 0)
        *out = st.ms_entries > UINT_MAX - 2 * DBS_ROOM ? UINT_MAX - 2 * DBS_ROOM
                                                      : (unsigned)st.ms_entries;
    mdb_txn_abort(txn);
    return rc;
}

unsigned udb__env_maxdbs(const udb_env *env)
{
    return env->maxdbs;
}

int udb__lmdb_open(udb_env **out, const char *path, const udb_options *opts)
{
    udb_options o = *opts;
    bool rdonly = o.flags & UDB_RDONLY_ENV;
    if ((o.flags & UDB_NOLOCK) && !rdonly)
        return udb__env_err(UDB_EINVAL, "udb_open: UDB_NOLOCK needs UDB_RDONLY_ENV (writers "
                            "must lock)");
    mode_t mode = o.mode ? o.mode : 0640;
    /* the directory gets x wherever the files get r, never world-writable */
    mode_t dmode = (mode | ((mode & 0444) >> 2)) & ~(mode_t)0002;
    if (!rdonly && mkdir(path, dmode) != 0 && errno != EEXIST)
        return udb__env_err(errno, "udb_open: cannot create directory %s: %s", path,
                            strerror(errno));
    struct stat st;
    if (stat(path, &st) != 0) {
        int e = errno;
        return udb__env_err(e, "udb_open: %s: %s", path,
                            e == ENOENT ? "no such directory" : strerror(e));
    }
    if (!S_ISDIR(st.st_mode))
        return udb__env_err(ENOTDIR, "udb_open: %s is not a directory", path);

    udb_env *env = calloc(1, sizeof *env);
    if (!env)
        return udb__env_err(UDB_ENOMEM, "udb_open: out of memory");
    udb__env_front_init(&env->f, &udb__lmdb_env_ops);
    pthread_mutex_init(&env->lock, NULL);
    pthread_mutex_init(&env->dbi_lock, NULL);
    pthread_cond_init(&env->cond, NULL);
    env->flags = o.flags;
    env->max_map = o.max_map_size;
    env->grow_wait_ms = o.grow_wait_ms ? o.grow_wait_ms : DEFAULT_GROW_WAIT_MS;
    env->lock_wait_ms = o.lock_wait_ms;
    env->dev = st.st_dev;
    env->ino = st.st_ino;
    env->refs = 1;
    int rc;
    pthread_once(&envs_once, envs_init);
    if (!(atomic_load(&test_flags) & UDB_ENV_TEST_NOSHARE)) {
        udb_env *shared;
        rc = envs_join(&shared, env, path, &o);
        if (rc || shared) {
            env_close(env);     /* nothing of it was opened */
            if (shared)
                *out = shared;
            return rc;
        }
    }
    rc = UDB_ENOMEM;
    if (!(env->path = strdup(path)))
        goto fail;
    size_t want = o.map_size ? o.map_size : DEFAULT_MAP;
    if (env->max_map && want > env->max_map)
        want = env->max_map;
    /* Durable commits flush once, inside LMDB's write lock; the meta page
       is made durable by the next flush and the commit acknowledged then
       (sync.c).  Never MDB_NOSYNC or MDB_WRITEMAP for durability: a flushed
       meta page could then point at pages that never reached the disk. */
    unsigned mflags = MDB_NOTLS;
    enum udb_sync_mode smode = UDB_SYNC_DURABLE;
    if (o.flags & UDB_NOSYNC) {
        mflags |= MDB_NOSYNC;
        smode = UDB_SYNC_NONE;
    } else {
        mflags |= MDB_NOMETASYNC;
        if (o.flags & UDB_NOMETASYNC)
            smode = UDB_SYNC_PREVIOUS;
    }
    if (rdonly)
        mflags |= MDB_RDONLY;
    if (o.flags & UDB_NOLOCK)
        mflags |= MDB_NOLOCK;
    /* LMDB's number of named databases is fixed when the environment opens:
       sized from how many the file holds (another program may have made
       them), so that any database opens with any options */
    env->maxdbs = o.max_dbs ? o.max_dbs : DEFAULT_MAXDBS;
    for (int attempt = 0;; attempt++) {
        unsigned stored = 0;
        if ((rc = open_mdb(env, path, mflags, mode, want)) ||
            (rc = count_dbs(&stored, env->mdb)))
            break;
        if (attempt || stored + DBS_ROOM <= env->maxdbs)
            break;
        env->maxdbs = stored + DBS_ROOM;
        mdb_env_close(env->mdb);
        env->mdb = NULL;
    }
    if (rc) {
        if (rc == ENOENT && rdonly)
            udb__env_err(rc, "udb_open: %s: not a uniqdb database (no " UDB_DATA_FILE ")", path);
        else if (rc == EACCES)
            udb__env_err(rc, "udb_open: %s: permission denied (%s)", path,
                         rdonly ? "reading " UDB_DATA_FILE ", or creating or writing " UDB_LOCK_FILE
                                : "writing " UDB_DATA_FILE " or " UDB_LOCK_FILE);
        else if (rc == ENOSPC)
            udb__env_err(rc, "udb_open: %s: no space left on device", path);
        else
            udb__env_err(rc, "udb_open: %s: %s", path, udb_strerror(rc));
        goto fail_quiet;
    }
    int dead = 0;
    mdb_reader_check(env->mdb, &dead);       /* slots of crashed processes */
    env->keymax = (size_t)mdb_env_get_maxkeysize(env->mdb);
    /* adopt the size stored in the file, then grow to the requested one */
    if ((rc = mdb_env_set_mapsize(env->mdb, 0)))
        goto fail;
    if (!rdonly && udb__mapsize(env) < want && (rc = mdb_env_set_mapsize(env->mdb, want)))
        goto fail;
    /* another program's LMDB environment gets no sync file of ours */
    if (!rdonly && (rc = refuse_foreign(env)))
        goto fail_quiet;
    /* a read-only handle never commits, so it has nothing to acknowledge */
    if (!rdonly && (rc = udb__sync_open(&env->sync, path, env->mdb, smode, mode,
                                        udb__ship_area_size())))
        goto fail_quiet;
    if (env->sync && (rc = udb__ship_open(&env->ship, env->sync)))
        goto fail;
    if ((rc = open_meta(env))) {
        if (rc == UDB_EFORMAT || rc == UDB_ECORRUPT)
            goto fail_quiet;
        goto fail;
    }
    if ((rc = udb__env_reload_schema(env)))
        goto fail_quiet;
    if (env->format < UDB_FORMAT_VERSION && rdonly) {
        rc = udb__env_err(UDB_EFORMAT, "udb_open: %s: database format %u; this uniqdb "
                          "upgrades it to format %d when it opens it for writing", path,
                          env->format, UDB_FORMAT_VERSION);
        goto fail_quiet;
    }
    if (env->format < UDB_FORMAT_VERSION && (rc = udb__upgrade_format(env)))
        goto fail_quiet;
    envs_ready(env);
    *out = env;
    return 0;
fail:
    rc = udb__env_io_rc(env, rc);
    udb__env_err(rc, "udb_open: %s: %s", path,
                 rc == ENOSPC ? "no space left on device" : udb_strerror(rc));
fail_quiet:
    env_close(env);
    return rc;
}

void udb__lmdb_close(udb_env *env)
{
    /* udb_close returns once the caller's udb_exec_async units are done: if
       env is shared, another open's may go on (the last close stops them
       all); drained while this open still keeps env from being freed */
    udb__env_async_drain(env);
    pthread_mutex_lock(&envs_lock);
    bool last = --env->refs == 0;
    if (last)
        env->ready = false;     /* an open of its directory waits until it is closed */
    pthread_mutex_unlock(&envs_lock);
    if (last)
        env_close(env);
}

/* Release everything env holds; only then take it out of the table (another
 * MDB_env of its file may be opened from then on) and free it. */
static void env_close(udb_env *env)
{
    /* units in flight finish first: they use everything below */
    udb__env_async_stop(env);
    mdb_txn_abort(env->idle_reader); /* before its environment (NULL is fine) */
    if (env->mdb)
        mdb_env_close(env->mdb);
    udb__ship_close(env->ship);
    udb__sync_close(env->sync);
    udb__schema_free(env->schema);
    for (size_t i = 0; i < env->nretired; i++)
        udb__schema_free(env->retired[i]);
    free(env->retired);
    if (env->group)
        env->group_free(env->group);
    free(env->path);
    free(env->owners);
    pthread_mutex_destroy(&env->lock);
    pthread_mutex_destroy(&env->dbi_lock);
    pthread_cond_destroy(&env->cond);
    envs_remove(env);
    udb__env_front_free(&env->f);
    free(env);
}

int udb__lmdb_usage(size_t *map_size, size_t *used, udb_env *env)
{
    MDB_envinfo info;
    MDB_stat st;
    int rc = mdb_env_info(env->mdb, &info);
    if (!rc)
        rc = mdb_env_stat(env->mdb, &st);
    if (rc)
        return rc;
    if (map_size)
        *map_size = info.me_mapsize;
    if (used)
        *used = (info.me_last_pgno + 1) * (size_t)st.ms_psize;
    return 0;
}

int udb__lmdb_schema_json(char **out, udb_env *env)
{
    int rc = udb__env_reload_schema(env);
    if (rc)
        return rc;
    pthread_mutex_lock(&env->lock);
    const udb_schema *s = env->schema;
    char *copy = s ? malloc(s->json_len + 1) : NULL;
    if (copy)
        memcpy(copy, s->json, s->json_len + 1);
    pthread_mutex_unlock(&env->lock);
    if (!s)
        return udb__env_err(UDB_ENOTFOUND, "no schema has been applied to this database");
    if (!copy)
        return UDB_ENOMEM;
    *out = copy;
    return 0;
}
