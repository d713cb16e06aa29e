/*
 * xlock.h -- a lock shared by every process that maps it, let go by the
 * kernel when its holder dies (xlock.c).
 */
#ifndef UDB_XLOCK_H
#define UDB_XLOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* Lives in a shared file mapping; one thread holds it at a time. */
typedef struct udb_xlock {
    pthread_mutex_t mu;
} udb_xlock;

/* Make l a new, free lock, while no other process can be using it.
 * 0 or an errno. */
int  udb__xlock_init(udb_xlock *l);

/* Take l: try once (ns 0), wait at most ns nanoseconds, or wait without end
 * (ns UINT64_MAX).  0: held (a dead holder's lock counts as free); EBUSY:
 * held by another thread, here or elsewhere, all that time; any other errno:
 * it cannot be had. */
int  udb__xlock_take(udb_xlock *l, uint64_t ns);
#define UDB_XLOCK_TRY 0
#define UDB_XLOCK_WAIT UINT64_MAX

/* Let go of l, which this thread holds. */
void udb__xlock_drop(udb_xlock *l);

/* Does a thread (of this process or another) hold l?  Only a hint: it may
 * change at once. */
bool udb__xlock_busy(udb_xlock *l);

/* For tests (a negative control): locks initialized from now on in this
 * process are not robust -- a dead holder's lock stays held, as an
 * in-process mutex would in shared memory.  Process-wide. */
void udb__xlock_set_fragile(bool fragile);

#endif
