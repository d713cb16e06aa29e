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
 * covered that way flushes the file itself, outside the write lock, and
 * publishes as durable what it knew committed before that flush -- at once,
 * not waiting for the next commit's in-lock flush: that would hold every
 * acknowledgement for a whole commit cycle, while a flush now runs as the
 * next batch works inside the lock.  One flusher at a time across processes
 * (an open-file-description lock the kernel drops if the holder dies); the
 * others wait for its end and look again, so N waiters cost one flush, not
 * N.
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
 * opener resets it (so txnids it holds are always of this session's commits)
 * and draws a new random instance id, which names the session in what it
 * leaves in the database (ship.h: a shipped unit's record), so that nothing
 * of an earlier session -- or of a session whose sync file was deleted while
 * it ran -- is ever taken for this one's.
 *
 * The write gate and the lead lock, taken by every write transaction, are
 * robust process-shared mutexes in the file (xlock.h): no system call while
 * free, and let go by the kernel when their holder dies.  Every other lock
 * here is an open-file-description lock, so that it is one process's and
 * the kernel drops it when the process dies.  A fork would share the
 * description, and with it the locks, with the child (a parent killed while
 * flushing would then hold every other flusher forever): the mapping is not
 * inherited (MADV_DONTFORK) and a fork handler closes the child's copy of
 * the descriptor.
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
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "sync.h"
#include "xlock.h"

/* Bumped whenever the layout changes ("udbsync1": before instance ids;
 * "udbsync3": before the ship area counted slots in use; "udbsync4": while
 * the gate and the lead lock were fcntl locks): a process of an older layout
 * and one of this never share the file (udb__sync_open refuses) */
#define SYNC_MAGIC "udbsync5"
#define SYNC_SIZE 4096

/* byte ranges of the file used as locks (open-file-description locks;
 * bytes 2 and 4 were the lead lock and the gate, now `shared`'s mutexes;
 * byte 3 was held while a process had a write transaction on its way, for
 * waiters that counted on its flush -- they no longer wait for one) */
#define LOCK_OPEN 0     /* shared while open; exclusive while resetting */
#define LOCK_FLUSH 1    /* the one flusher */
/* A byte of LMDB's data file, far past its end (LMDB locks only lock.mdb):
 * shared while the database is open, by whichever sync file; held
 * exclusively by a resetting opener, no process of any session has it. */
#define LOCK_LIVE ((off_t)1 << 60)

typedef struct shared {
    char magic[8];
    _Atomic uint64_t committed;   /* highest txnid committed with a flush in the lock */
    _Atomic uint64_t durable;     /* highest txnid known durable by a flush outside the lock */
    _Atomic uint32_t seq;         /* futex word: bumped whenever any of this changes */
    _Atomic uint32_t waiters;     /* threads sleeping on seq */
    _Atomic int32_t unused;       /* was a count of writers: a dead one never decremented it */
    _Atomic int32_t failed;       /* errno of a failed flush; 0 while healthy */
    _Atomic uint64_t commit_ns;   /* recent commit duration (moving average) */
    _Atomic uint64_t flushes;     /* flushes made outside the write lock */
    unsigned char instance[UDB_SYNC_INSTANCE];   /* random, drawn at reset */
    _Atomic uint32_t sweep;       /* no session was alive at reset: records of others may go */
    udb_xlock gate;               /* the write transaction's slot: taken before LMDB's lock */
    udb_xlock lead;               /* the group commit leader's (ship.h) */
} shared;

_Static_assert(sizeof(shared) <= SYNC_SIZE, "sync file layout");

struct udb_sync {
    enum udb_sync_mode mode;
    int fd;                       /* the sync file */
    int datafd;                   /* LMDB's data file */
    shared *sh;
    size_t size;                  /* of the mapping: SYNC_SIZE + the extra area */
    size_t extra;                 /* bytes of the extra area mapped (0: none could be had) */
    pthread_mutex_t flush_mu;     /* one flusher per process (the file lock is per process) */
    _Atomic int failed;           /* this handle saw a flush fail */
    struct udb_sync *next;        /* in `open_syncs` */
};

static _Atomic(udb__sync_flush_fn) flush_hook;
static _Atomic unsigned test_flags;

/* Every open handle of this process, for the fork handler. */
static pthread_mutex_t open_mu = PTHREAD_MUTEX_INITIALIZER;
static udb_sync *open_syncs;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void fork_prepare(void)
{
    pthread_mutex_lock(&open_mu);
}

static void fork_parent(void)
{
    pthread_mutex_unlock(&open_mu);
}

/* In the child: let go of the parent's file description, so that its locks
 * die with the parent.  The mapping was not inherited (MADV_DONTFORK).  The
 * handle stays allocated (the child's copy of the env still points at it),
 * unusable: a child opens the database again. */
static void fork_child(void)
{
    if (!(atomic_load(&test_flags) & UDB_SYNC_TEST_FORK_KEEPS)) {
        for (udb_sync *s = open_syncs; s; s = s->next) {
            if (s->fd >= 0)
                close(s->fd);
            s->fd = -1;
            s->sh = MAP_FAILED;
        }
    }
    pthread_mutex_unlock(&open_mu);
}

static void install_atfork(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

void udb__sync_set_flush_hook(udb__sync_flush_fn fn)
{
    atomic_store(&flush_hook, fn);
}

void udb__sync_set_test_flags(unsigned flags)
{
    atomic_store(&test_flags, flags);
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

/* `seq`, the shared file's futex word: bump it and wake every sleeper (only
 * if any sleeps) / sleep while it is still `seen`, at most ns. */
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

/* Reset the file: we hold it exclusively, so no process uses it.  The magic
 * goes last: a process that finds it knows the rest is reset.  If no process
 * has the database open through any sync file (LOCK_LIVE is free: the file
 * was not deleted under a running session), what sessions left in the
 * database may be swept. */
static int reset(udb_sync *s)
{
    unsigned char id[UDB_SYNC_INSTANCE];
    for (size_t got = 0; got < sizeof id;) {
        ssize_t r = getrandom(id + got, sizeof id - got, 0);
        if (r < 0 && errno != EINTR)
            return errno;
        if (r > 0)
            got += (size_t)r;
    }
    memset(s->sh, 0, s->size);
    memcpy(s->sh->instance, id, sizeof id);
    int rc;
    if ((rc = udb__xlock_init(&s->sh->gate)) || (rc = udb__xlock_init(&s->sh->lead)))
        return rc;
    if (range_lock(s->datafd, F_OFD_SETLK, F_WRLCK, LOCK_LIVE) == 0)
        atomic_store(&s->sh->sweep, 1);
    memcpy(s->sh->magic, SYNC_MAGIC, sizeof s->sh->magic);
    return 0;
}

/* Make the first `want` bytes of the file real blocks, so that touching the
 * mapping cannot raise SIGBUS on a full disk. */
static int allocate(int fd, off_t want)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return errno;
    if (st.st_size >= want)
        return 0;
    int rc = posix_fallocate(fd, 0, want);
    /* a file system without fallocate: extend it as before */
    if (rc == EOPNOTSUPP && ftruncate(fd, want) != 0)
        rc = errno;
    else if (rc == EOPNOTSUPP)
        rc = 0;
    return rc;
}

static int open_file(udb_sync *s, const char *path, unsigned file_mode, size_t extra)
{
    s->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, file_mode);
    if (s->fd < 0)
        return errno;
    /* the file only ever grows (an older library version maps less of it) */
    int rc = allocate(s->fd, SYNC_SIZE);
    if (rc)
        return rc;
    /* the units' area is only a convenience: a process that cannot have it
       (a full disk) does not ship, and maps only what exists */
    s->extra = allocate(s->fd, (off_t)(SYNC_SIZE + extra)) ? 0 : extra;
    s->size = SYNC_SIZE + s->extra;
    s->sh = mmap(NULL, s->size, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
    if (s->sh == MAP_FAILED)
        return errno;
    if (!(atomic_load(&test_flags) & UDB_SYNC_TEST_FORK_KEEPS) &&
        madvise(s->sh, s->size, MADV_DONTFORK) != 0)
        return errno;
    return 0;
}

int udb__sync_open(udb_sync **out, const char *dir, MDB_env *mdb, enum udb_sync_mode mode,
                   unsigned file_mode, size_t extra)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, UDB_SYNC_FILE) >= (int)sizeof path)
        return udb__env_err(ENAMETOOLONG, "udb_open: %s: path too long", dir);
    pthread_once(&atfork_once, install_atfork);
    udb_sync *s = calloc(1, sizeof *s);
    if (!s)
        return udb__env_err(UDB_ENOMEM, "udb_open: out of memory");
    s->mode = mode;
    s->fd = -1;
    s->sh = MAP_FAILED;
    pthread_mutex_init(&s->flush_mu, NULL);
    /* registered before the descriptor exists: a fork from now on closes it */
    pthread_mutex_lock(&open_mu);
    s->next = open_syncs;
    open_syncs = s;
    pthread_mutex_unlock(&open_mu);
    int rc = mdb_env_get_fd(mdb, &s->datafd);
    if (rc || (rc = open_file(s, path, file_mode, extra)))
        goto fail;
    for (;;) {
        rc = range_lock(s->fd, F_OFD_SETLK, F_WRLCK, LOCK_OPEN);
        if (rc == 0) {
            /* nobody else has it open: a new session */
            if ((rc = reset(s)))
                goto fail;
            rc = range_lock(s->fd, F_OFD_SETLK, F_RDLCK, LOCK_OPEN);
        } else if (rc == EAGAIN || rc == EACCES) {
            rc = range_lock(s->fd, F_OFD_SETLKW, F_RDLCK, LOCK_OPEN);
            if (!rc && memcmp(s->sh->magic, SYNC_MAGIC, sizeof s->sh->magic) != 0) {
                static const char zero[sizeof s->sh->magic];
                bool unset = memcmp(s->sh->magic, zero, sizeof zero) == 0;
                if ((rc = range_lock(s->fd, F_OFD_SETLK, F_UNLCK, LOCK_OPEN)))
                    goto fail;
                /* its opener died before it finished resetting: try again */
                if (unset)
                    continue;
                rc = udb__env_err(UDB_EBUSY, "udb_open: %s is in use by a process of another "
                                  "uniqdb version (or damaged): every process that has the "
                                  "database open must run one version", path);
                goto fail_quiet;
            }
        }
        break;
    }
    /* this session is alive: no opener may sweep what it leaves (shared, or
       the exclusive lock reset() took turned shared) */
    if (!rc)
        rc = range_lock(s->datafd, F_OFD_SETLKW, F_RDLCK, LOCK_LIVE);
    if (rc)
        goto fail;
    *out = s;
    return 0;
fail:
    udb__env_err(rc, "udb_open: %s: %s", path, rc == ENOSPC ? "no space left on device" :
                 udb_strerror(rc));
fail_quiet:
    udb__sync_close(s);
    return rc;
}

void udb__sync_close(udb_sync *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&open_mu);
    for (udb_sync **p = &open_syncs; *p; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            break;
        }
    }
    pthread_mutex_unlock(&open_mu);
    if (s->sh != MAP_FAILED)
        munmap(s->sh, s->size);
    if (s->fd >= 0)
        close(s->fd);   /* drops the file locks */
    pthread_mutex_destroy(&s->flush_mu);
    free(s);
}

static int failed_err(udb_sync *s, int err)
{
    /* the shared word is only ever an errno: anything else was written into
       the file by something other than uniqdb */
    if (err <= 0 || err >= 4096)
        return udb__env_err(UDB_EFLUSHFAILED, "the shared state in %s was overwritten (it "
                            "holds a failure code %d that no flush sets): writes are refused "
                            "until every process has closed the database and it is opened "
                            "again", UDB_SYNC_FILE, err);
    return udb__env_err(UDB_EFLUSHFAILED,
                        "a flush of the database to disk failed (%s%s): commits since the "
                        "last good flush may be lost; writes are refused until every process "
                        "has closed the database and it is opened again",
                        err == ENOSPC ? "no space left on device" : strerror(err),
                        err == ENOSPC ? "; free space first" : "");
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

void udb__sync_writer_end(udb_sync *s, uint64_t mine, uint64_t commit_ns)
{
    if (!s || s->mode == UDB_SYNC_NONE)
        return;
    shared *sh = s->sh;
    if (mine)
        max_store(&sh->committed, mine);
    if (commit_ns) {
        uint64_t avg = atomic_load(&sh->commit_ns);
        atomic_store(&sh->commit_ns, avg ? (avg * 7 + commit_ns) / 8 : commit_ns);
    }
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

/* Flush the data file unless someone covered target meanwhile -- or, when
 * another thread or process is flushing already, return FLUSH_BUSY at once
 * (its flush may cover target: the caller waits for its wake and looks
 * again).  0 (target may now be covered: the caller looks again),
 * FLUSH_BUSY, or UDB_EFLUSHFAILED. */
#define FLUSH_BUSY 1
static int flush(udb_sync *s, uint64_t target)
{
    shared *sh = s->sh;
    if (pthread_mutex_trylock(&s->flush_mu))
        return FLUSH_BUSY;
    int err = range_lock(s->fd, F_OFD_SETLK, F_WRLCK, LOCK_FLUSH);
    if (err == EAGAIN || err == EACCES) {
        pthread_mutex_unlock(&s->flush_mu);
        return FLUSH_BUSY;
    }
    /* any other error: cannot serialize with other processes; flush anyway,
       it is only slower */
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
        return failed_err(s, err);
    return 0;
}

/* How long a waiter sleeps at most between looks while another flush is
 * under way (its end wakes the waiter sooner): a flusher that died or
 * stopped holding the lock is noticed, or waited for, this often. */
#define FLUSH_LOOK_NS 2000000u

int udb__sync_wait(udb_sync *s, uint64_t target)
{
    if (!s || !target)
        return 0;
    shared *sh = s->sh;
    for (;;) {
        int err = atomic_load(&sh->failed);
        if (err || (err = atomic_load(&s->failed))) {
            atomic_store(&s->failed, err);
            return failed_err(s, err);
        }
        uint32_t seen = atomic_load(&sh->seq);
        if (covered(sh, target))
            return 0;
        int rc = flush(s, target);
        if (rc == FLUSH_BUSY)
            sleep_on(sh, seen, FLUSH_LOOK_NS);
        else if (rc)
            return rc;
    }
}

/* The gate.  LMDB's writer lock has no timeout; every uniqdb writer takes
 * this one first, so the wait happens here, where it can end.  A mutex of
 * the shared file (xlock.h): free, it costs no system call, and a holder
 * that dies lets it go.  A process without the mapping (a forked child's
 * copy) has no gate: LMDB's own lock still serializes it. */
int udb__sync_gate_enter(udb_sync *s, unsigned wait_ms)
{
    if (!s || s->sh == MAP_FAILED)
        return 0;
    int rc = udb__xlock_take(&s->sh->gate, wait_ms ? (uint64_t)wait_ms * 1000000u
                                                   : UDB_XLOCK_WAIT);
    if (rc == EBUSY || !rc)
        return rc ? UDB_EBUSY : 0;
    /* EINVAL, ENOTRECOVERABLE: the file's bytes are not a lock any uniqdb
       left there */
    return udb__env_err(UDB_ECORRUPT, "the write lock in %s cannot be taken (%s): the file was "
                        "overwritten; writes are refused until every process has closed the "
                        "database and it is opened again", UDB_SYNC_FILE, strerror(rc));
}

bool udb__sync_gate_busy(udb_sync *s)
{
    return s && s->sh != MAP_FAILED && udb__xlock_busy(&s->sh->gate);
}

void udb__sync_gate_leave(udb_sync *s)
{
    if (s && s->sh != MAP_FAILED)
        udb__xlock_drop(&s->sh->gate);
}

bool udb__sync_lead(udb_sync *s, uint64_t ns)
{
    return s->sh != MAP_FAILED && udb__xlock_take(&s->sh->lead, ns) == 0;
}

void udb__sync_unlead(udb_sync *s)
{
    udb__xlock_drop(&s->sh->lead);
}

bool udb__sync_counts_commits(const udb_sync *s)
{
    return s && s->mode != UDB_SYNC_NONE;
}

uint64_t udb__sync_commit_ns(const udb_sync *s)
{
    return s ? atomic_load(&s->sh->commit_ns) : 0;
}

void *udb__sync_extra(const udb_sync *s)
{
    return s->extra ? (char *)s->sh + SYNC_SIZE : NULL;
}

const unsigned char *udb__sync_instance(const udb_sync *s)
{
    return s->sh->instance;
}

bool udb__sync_take_sweep(udb_sync *s)
{
    uint32_t one = 1;
    return atomic_compare_exchange_strong(&s->sh->sweep, &one, 0);
}

void udb__sync_put_back_sweep(udb_sync *s)
{
    atomic_store(&s->sh->sweep, 1);
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
