/*
 * sync.c -- durability: the shared sync file, the acknowledgement rule, and
 * the flush that waiters share across threads and processes.
 *
 * Why it is sound.  A durable commit (not UDB_NOSYNC) fdatasyncs the data
 * file while holding LMDB's write lock, after the previous commit's meta
 * page was written; it publishes its own txnid C as `committed` once it
 * returned, so `committed` = C means C-1 is durable.  (Only a committer's
 * own txnid is published: a UDB_NOSYNC process may share the database, and
 * its commits flush nothing.)  A transaction whose own commit has not been
 * covered that way waits: for the next commit, if a durable writer is on its
 * way (a shared count of write transactions begun and not yet ended), else
 * it flushes the file itself, outside the write lock, and publishes as
 * durable what it knew committed before that flush.  One flusher at a time
 * across processes (an open-file-description lock the kernel drops if the
 * holder dies), so N waiters cost one flush, not N.
 *
 * LMDB's reuse rule is what makes the unflushed meta page harmless: a write
 * transaction reuses only pages freed at least two transactions back, so the
 * meta page of T (not yet flushed) never points at pages T+1 overwrote.
 *
 * A failed flush is never retried as if nothing happened (the kernel may have
 * dropped the dirty pages and will not report it twice): the file records
 * the error, every process refuses writes and acknowledges nothing more,
 * until all of them have closed the database and one reopens it.
 *
 * The file holds nothing the database needs after a crash: the first
 * opener resets it (so txnids it holds are always of this session's commits).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "sync.h"

#define SYNC_MAGIC "udbsync1"
#define SYNC_SIZE 4096

/* byte ranges of the file used as locks (open-file-description locks) */
#define LOCK_OPEN 0     /* shared while open; exclusive while resetting */
#define LOCK_FLUSH 1    /* the one flusher */
/* UDB_SYNC_LOCK_LEAD (sync.h) is 2 */

typedef struct shared {
    char magic[8];
    _Atomic uint64_t committed;   /* highest txnid committed with a flush in the lock */
    _Atomic uint64_t durable;     /* highest txnid known durable by a flush outside the lock */
    _Atomic uint32_t seq;         /* futex word: bumped whenever any of this changes */
    _Atomic uint32_t waiters;     /* threads sleeping on seq */
    _Atomic int32_t writers;      /* write transactions begun and not ended */
    _Atomic int32_t failed;       /* errno of a failed flush; 0 while healthy */
    _Atomic uint64_t commit_ns;   /* recent commit duration (moving average) */
    _Atomic uint64_t flushes;     /* flushes made outside the write lock */
} shared;

_Static_assert(sizeof(shared) <= SYNC_SIZE, "sync file layout");

struct udb_sync {
    enum udb_sync_mode mode;
    int fd;                       /* the sync file */
    int datafd;                   /* LMDB's data file */
    shared *sh;
    size_t size;                  /* of the mapping: SYNC_SIZE + the extra area */
    pthread_mutex_t flush_mu;     /* one flusher per process (the file lock is per process) */
    _Atomic int failed;           /* this handle saw a flush fail */
};

static _Atomic(udb__sync_flush_fn) flush_hook;
static _Atomic unsigned test_flags;

void udb__sync_set_flush_hook(udb__sync_flush_fn fn)
{
    atomic_store(&flush_hook, fn);
}

void udb__sync_set_test_flags(unsigned flags)
{
    atomic_store(&test_flags, flags);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int range_lock(int fd, int cmd, short type, off_t start)
{
    struct flock l = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = 1};
    while (fcntl(fd, cmd, &l) != 0) {
        if (errno != EINTR)
            return errno;
    }
    return 0;
}

static void max_store(_Atomic uint64_t *p, uint64_t v)
{
    uint64_t cur = atomic_load(p);
    while (cur < v && !atomic_compare_exchange_weak(p, &cur, v))
        ;
}

static void wake(shared *sh)
{
    atomic_fetch_add(&sh->seq, 1);
    if (atomic_load(&sh->waiters))
        syscall(SYS_futex, &sh->seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static void sleep_on(shared *sh, uint32_t seen, uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    atomic_fetch_add(&sh->waiters, 1);
    syscall(SYS_futex, &sh->seq, FUTEX_WAIT, seen, &ts, NULL, 0);
    atomic_fetch_sub(&sh->waiters, 1);
}

int udb__sync_last_txnid(uint64_t *out, MDB_env *mdb)
{
    MDB_txn *t;
    int rc = mdb_txn_begin(mdb, NULL, MDB_RDONLY, &t);
    if (rc)
        return rc;
    *out = mdb_txn_id(t);
    mdb_txn_abort(t);
    return 0;
}

/* Reset the file: we hold it exclusively, so no other process uses it.
 * The magic goes last: a process that finds it knows the rest is reset. */
static void reset(udb_sync *s)
{
    memset(s->sh, 0, s->size);
    memcpy(s->sh->magic, SYNC_MAGIC, sizeof s->sh->magic);
}

int udb__sync_open(udb_sync **out, const char *dir, MDB_env *mdb, enum udb_sync_mode mode,
                   unsigned file_mode, size_t extra)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, UDB_SYNC_FILE) >= (int)sizeof path)
        return udb__env_err(ENAMETOOLONG, "udb_open: %s: path too long", dir);
    udb_sync *s = calloc(1, sizeof *s);
    if (!s)
        return udb__env_err(UDB_ENOMEM, "udb_open: out of memory");
    s->mode = mode;
    s->fd = -1;
    s->sh = MAP_FAILED;
    s->size = SYNC_SIZE + extra;
    pthread_mutex_init(&s->flush_mu, NULL);
    int rc = mdb_env_get_fd(mdb, &s->datafd);
    if (rc)
        goto fail;
    s->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, file_mode);
    if (s->fd < 0) {
        rc = errno;
        goto fail;
    }
    /* the file only ever grows (an older library version maps less of it) */
    struct stat st;
    if (fstat(s->fd, &st) != 0) {
        rc = errno;
        goto fail;
    }
    if ((size_t)st.st_size < s->size && ftruncate(s->fd, (off_t)s->size) != 0) {
        rc = errno;
        goto fail;
    }
    s->sh = mmap(NULL, s->size, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
    if (s->sh == MAP_FAILED) {
        rc = errno;
        goto fail;
    }
    for (;;) {
        rc = range_lock(s->fd, F_OFD_SETLK, F_WRLCK, LOCK_OPEN);
        if (rc == 0) {
            /* nobody else has it open: a new session */
            reset(s);
            rc = range_lock(s->fd, F_OFD_SETLK, F_RDLCK, LOCK_OPEN);
        } else if (rc == EAGAIN || rc == EACCES) {
            rc = range_lock(s->fd, F_OFD_SETLKW, F_RDLCK, LOCK_OPEN);
            /* its opener died before it finished resetting: try again */
            if (!rc && memcmp(s->sh->magic, SYNC_MAGIC, sizeof s->sh->magic) != 0) {
                if ((rc = range_lock(s->fd, F_OFD_SETLK, F_UNLCK, LOCK_OPEN)))
                    goto fail;
                continue;
            }
        }
        break;
    }
    if (rc)
        goto fail;
    *out = s;
    return 0;
fail:
    udb__env_err(rc, "udb_open: %s: %s", path, udb_strerror(rc));
    udb__sync_close(s);
    return rc;
}

void udb__sync_close(udb_sync *s)
{
    if (!s)
        return;
    if (s->sh != MAP_FAILED)
        munmap(s->sh, s->size);
    if (s->fd >= 0)
        close(s->fd);   /* drops the file locks */
    pthread_mutex_destroy(&s->flush_mu);
    free(s);
}

static int failed_err(udb_sync *s, int err)
{
    return udb__env_err(UDB_EFLUSHFAILED,
                        "a flush of the database to disk failed (%s): commits since the last "
                        "good flush may be lost; writes are refused until every process has "
                        "closed the database and it is opened again", strerror(err));
}

int udb__sync_usable(udb_sync *s)
{
    if (!s)
        return 0;
    int err = atomic_load(&s->failed);
    if (!err)
        err = atomic_load(&s->sh->failed);
    if (!err)
        return 0;
    atomic_store(&s->failed, err);
    return failed_err(s, err);
}

static void poison(udb_sync *s, int err)
{
    if (!err)
        err = EIO;
    atomic_store(&s->failed, err);
    int32_t none = 0;
    atomic_compare_exchange_strong(&s->sh->failed, &none, err);
    wake(s->sh);
}

void udb__sync_writer_begin(udb_sync *s)
{
    /* a UDB_NOSYNC commit covers nobody: not counted */
    if (s && s->mode != UDB_SYNC_NONE)
        atomic_fetch_add(&s->sh->writers, 1);
}

void udb__sync_writer_end(udb_sync *s, uint64_t mine, uint64_t commit_ns)
{
    if (!s || s->mode == UDB_SYNC_NONE)
        return;
    shared *sh = s->sh;
    /* committed first: a waiter woken by the count dropping must see it */
    if (mine)
        max_store(&sh->committed, mine);
    if (commit_ns) {
        uint64_t avg = atomic_load(&sh->commit_ns);
        atomic_store(&sh->commit_ns, avg ? (avg * 7 + commit_ns) / 8 : commit_ns);
    }
    atomic_fetch_sub(&sh->writers, 1);
    wake(sh);
}

void udb__sync_commit_failed(udb_sync *s, int rc)
{
    /* errno values from LMDB's pwrite/fdatasync (LMDB's own codes are
       negative); ENOMEM is not I/O */
    if (s && rc > 0 && rc != ENOMEM && s->mode != UDB_SYNC_NONE)
        poison(s, rc);
}

uint64_t udb__sync_target(const udb_sync *s, uint64_t began, uint64_t last)
{
    if (!s || s->mode != UDB_SYNC_DURABLE || (atomic_load(&test_flags) & UDB_SYNC_TEST_NO_WAIT))
        return 0;
    if (last >= began)
        return began;
    if (atomic_load(&test_flags) & UDB_SYNC_TEST_NO_READ_TERM)
        return 0;
    return began - 1;
}

static uint64_t durable_now(const shared *sh)
{
    uint64_t d = atomic_load(&sh->durable);
    uint64_t c = atomic_load(&sh->committed);
    return c && c - 1 > d ? c - 1 : d;
}

static bool covered(const shared *sh, uint64_t target)
{
    return durable_now(sh) >= target;
}

/* Flush the data file unless someone covered target meanwhile.  0 (target
 * may now be covered: the caller looks again) or UDB_EFLUSHFAILED. */
static int flush(udb_sync *s, uint64_t target)
{
    shared *sh = s->sh;
    int rc = 0;
    pthread_mutex_lock(&s->flush_mu);
    int err = range_lock(s->fd, F_OFD_SETLKW, F_WRLCK, LOCK_FLUSH);
    if (err) {
        /* cannot serialize with other processes: flush anyway, it is only slower */
    }
    if (!covered(sh, target) && !atomic_load(&sh->failed)) {
        /* target too: it was committed before we got here (a UDB_NOSYNC
           commit, perhaps, which `committed` does not show) */
        uint64_t c = atomic_load(&sh->committed);
        if (c < target)
            c = target;
        udb__sync_flush_fn hook = atomic_load(&flush_hook);
        int r = hook ? hook(s->datafd) : fdatasync(s->datafd);
        if (r != 0) {
            poison(s, errno);
        } else {
            max_store(&sh->durable, c);
            atomic_fetch_add(&sh->flushes, 1);
            wake(sh);
        }
    }
    if (!err)
        range_lock(s->fd, F_OFD_SETLK, F_UNLCK, LOCK_FLUSH);
    pthread_mutex_unlock(&s->flush_mu);
    if ((err = atomic_load(&sh->failed)))
        rc = failed_err(s, err);
    return rc;
}

/* How long a waiter counts on a writer on its way before flushing itself:
 * a few commits' time (a writer may still be gathering or queued for the
 * lock), bounded so that a count left by a crashed writer costs little. */
static uint64_t cover_wait_ns(const shared *sh)
{
    uint64_t w = 4 * atomic_load(&sh->commit_ns);
    if (w < 200000)
        w = 200000;
    if (w > 20000000)
        w = 20000000;
    return w;
}

int udb__sync_wait(udb_sync *s, uint64_t target, bool more_coming)
{
    if (!s || !target)
        return 0;
    shared *sh = s->sh;
    uint64_t deadline = 0;
    for (;;) {
        int err = atomic_load(&sh->failed);
        if (err || (err = atomic_load(&s->failed))) {
            atomic_store(&s->failed, err);
            return failed_err(s, err);
        }
        uint32_t seen = atomic_load(&sh->seq);
        if (covered(sh, target))
            return 0;
        uint64_t now = now_ns();
        if (!deadline)
            deadline = now + cover_wait_ns(sh);
        if (now < deadline && (more_coming || atomic_load(&sh->writers) > 0)) {
            sleep_on(sh, seen, deadline - now);
            continue;
        }
        int rc = flush(s, target);
        if (rc)
            return rc;
    }
}

uint64_t udb__sync_commit_ns(const udb_sync *s)
{
    return s ? atomic_load(&s->sh->commit_ns) : 0;
}

void *udb__sync_extra(const udb_sync *s)
{
    return (char *)s->sh + SYNC_SIZE;
}

int udb__sync_lock(udb_sync *s, unsigned byte, int how)
{
    if (how == UDB_SYNC_UNLOCK)
        return range_lock(s->fd, F_OFD_SETLK, F_UNLCK, byte);
    return range_lock(s->fd, how == UDB_SYNC_LOCK_WAIT ? F_OFD_SETLKW : F_OFD_SETLK, F_WRLCK,
                      byte);
}

void udb__sync_state(const udb_sync *s, uint64_t *committed, uint64_t *durable,
                     uint64_t *flushes)
{
    if (committed)
        *committed = s ? atomic_load(&s->sh->committed) : 0;
    if (durable)
        *durable = s ? durable_now(s->sh) : 0;
    if (flushes)
        *flushes = s ? atomic_load(&s->sh->flushes) : 0;
}
