/*
 * xlock.c -- a lock shared between processes: a process-shared, robust
 * pthread mutex in a shared file mapping, as LMDB's own writer lock is.
 *
 * Why not an fcntl lock on a byte of the file, as the other locks of the
 * sync file are: those cost a system call to take and another to let go
 * (1.3 us each on the project's benchmark machine), and the gate and the
 * lead lock are taken by every write transaction -- four calls, 5.3 us of a
 * UDB_NOSYNC commit's 41 us there.  A free mutex is taken and let go with an atomic
 * instruction each; only a contended one sleeps in the kernel (a futex).
 *
 * What an fcntl lock gave for free, robustness gives here: when a thread
 * dies holding the lock (or its whole process does), the kernel marks it
 * free on the thread's way out and wakes a waiter; the next taker is told
 * (EOWNERDEAD) and marks it consistent.  Nothing these locks guard needs
 * repair: the write transaction a dead gate holder began is LMDB's to roll
 * back (its own lock is robust), and the units a dead leader took are
 * found by their slots' states.
 *
 * A fork does not inherit the mapping (the sync file's is MADV_DONTFORK),
 * and glibc empties the child's list of robust mutexes: a child never holds,
 * nor frees, its parent's locks.
 */
#include <errno.h>
#include <stdatomic.h>
#include <time.h>

#include "xlock.h"

static _Atomic bool fragile;

void udb__xlock_set_fragile(bool f)
{
    atomic_store(&fragile, f);
}

int udb__xlock_init(udb_xlock *l)
{
    pthread_mutexattr_t a;
    int rc = pthread_mutexattr_init(&a);
    if (rc)
        return rc;
    if (!(rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED)) &&
        !(rc = pthread_mutexattr_setrobust(&a, atomic_load(&fragile) ? PTHREAD_MUTEX_STALLED
                                                                    : PTHREAD_MUTEX_ROBUST)))
        rc = pthread_mutex_init(&l->mu, &a);
    pthread_mutexattr_destroy(&a);
    return rc;
}

/* rc of a lock call: held (a dead holder's lock is ours now), or not. */
static int taken(udb_xlock *l, int rc)
{
    if (rc == EOWNERDEAD)
        rc = pthread_mutex_consistent(&l->mu);
    return rc == ETIMEDOUT ? EBUSY : rc;
}

#if defined(__SANITIZE_THREAD__)
#define XLOCK_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define XLOCK_TSAN 1
#endif
#endif

/* Wait at most ns for the lock: pthread_mutex_clocklock on the monotonic
 * clock (a wall clock set back would stretch the wait).  ThreadSanitizer
 * (gcc 12's) intercepts neither clocklock nor a dead holder's lock taken
 * through timedlock: it would take the lock for not held and report its
 * unlock.  Its builds try the lock every 100 us until the limit instead --
 * trylock it follows, dead holders included -- the one difference of those
 * builds. */
static int timed(udb_xlock *l, uint64_t ns)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
#ifdef XLOCK_TSAN
    uint64_t end = (uint64_t)dl.tv_sec * 1000000000u + (uint64_t)dl.tv_nsec + ns;
    for (;;) {
        int rc = pthread_mutex_trylock(&l->mu);
        if (rc != EBUSY)
            return rc;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        if ((uint64_t)dl.tv_sec * 1000000000u + (uint64_t)dl.tv_nsec >= end)
            return EBUSY;
        struct timespec step = {0, 100000};
        nanosleep(&step, NULL);
    }
#else
    uint64_t at = (uint64_t)dl.tv_nsec + ns % 1000000000u;
    dl.tv_sec += (time_t)(ns / 1000000000u + at / 1000000000u);
    dl.tv_nsec = (long)(at % 1000000000u);
    int rc;
    while ((rc = pthread_mutex_clocklock(&l->mu, CLOCK_MONOTONIC, &dl)) == EINTR)
        ;
    return rc;
#endif
}

int udb__xlock_take(udb_xlock *l, uint64_t ns)
{
    if (ns == UDB_XLOCK_TRY)
        return taken(l, pthread_mutex_trylock(&l->mu));
    if (ns == UDB_XLOCK_WAIT)
        return taken(l, pthread_mutex_lock(&l->mu));
    return taken(l, timed(l, ns));
}

void udb__xlock_drop(udb_xlock *l)
{
    pthread_mutex_unlock(&l->mu);
}

bool udb__xlock_busy(udb_xlock *l)
{
    if (udb__xlock_take(l, UDB_XLOCK_TRY) != 0)
        return true;
    udb__xlock_drop(l);
    return false;
}
