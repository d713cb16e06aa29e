/*
 * xlock.c -- a lock shared between processes: a process-shared, robust
 * pthread mutex in a shared file mapping, as LMDB's own writer lock is.
 *
 * Why not an fcntl lock on a byte of the file, as the other locks of the
 * sync file are: those cost a system call to take and another to let go
 * (about 1.3 us each on the machines we measure), and the gate and the lead
 * lock are taken by every write transaction -- four calls, a seventh of a
 * UDB_NOSYNC commit's time.  A free mutex is taken and let go with an atomic
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

int udb__xlock_take(udb_xlock *l, uint64_t ns)
{
    if (ns == UDB_XLOCK_TRY)
        return taken(l, pthread_mutex_trylock(&l->mu));
    if (ns == UDB_XLOCK_WAIT)
        return taken(l, pthread_mutex_lock(&l->mu));
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    uint64_t at = (uint64_t)dl.tv_nsec + ns % 1000000000u;
    dl.tv_sec += (time_t)(ns / 1000000000u + at / 1000000000u);
    dl.tv_nsec = (long)(at % 1000000000u);
    int rc;
    while ((rc = pthread_mutex_clocklock(&l->mu, CLOCK_MONOTONIC, &dl)) == EINTR)
        ;
    return taken(l, rc);
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
