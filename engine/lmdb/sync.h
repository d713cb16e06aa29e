/*
 * sync.h -- durability (sync.c): when a commit may be acknowledged.
 *
 * Durable environments run LMDB with MDB_NOMETASYNC: a commit T writes its
 * pages, fdatasyncs the data file (inside LMDB's write lock), then writes its
 * meta page without a flush.  That in-lock flush covers everything written
 * before it, so once T is committed, T-1 is durable.  T itself becomes
 * durable at the next flush of the file -- the next commit's, or one a waiter
 * makes outside the write lock.  A caller is acknowledged only when every
 * transaction it depends on (the one it wrote, the snapshot it read) is
 * durable.  The state that lets processes share those flushes lives in a
 * small mmap'd file in the database directory (UDB_SYNC_FILE, uniqdb.h).
 */
#ifndef UDB_SYNC_H
#define UDB_SYNC_H

#include <lmdb.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct udb_sync udb_sync;

/* How commits are acknowledged (from udb_options.flags). */
enum udb_sync_mode {
    UDB_SYNC_DURABLE,    /* wait until the commit and its snapshot are durable */
    UDB_SYNC_PREVIOUS,   /* UDB_NOMETASYNC: acknowledge after the in-lock flush (T-1 durable) */
    UDB_SYNC_NONE,       /* UDB_NOSYNC: no flushes at all */
};

/* Open (creating) dir/UDB_SYNC_FILE for mdb, an open LMDB environment of this
 * process, with `extra` bytes after the sync state for the layer that ships
 * units (ship.h).  The first process to open it (no other has it open)
 * resets it, the extra bytes to zero: that is what "reopen" means after a
 * failed flush.  On error the message is set. */
int  udb__sync_open(udb_sync **out, const char *dir, MDB_env *mdb, enum udb_sync_mode mode,
                    unsigned file_mode, size_t extra);
void udb__sync_close(udb_sync *s);

/* 0 if writes may proceed; UDB_EFLUSHFAILED (message set) after a failed
 * flush, in this process or any other sharing the file. */
int  udb__sync_usable(udb_sync *s);

/* A top-level write transaction has ended.  mine: its txnid if it committed
 * and wrote (0 if not); commit_ns: how long the commit took. */
void udb__sync_writer_end(udb_sync *s, uint64_t mine, uint64_t commit_ns);
/* A commit failed with rc: an I/O error there may be a failed flush, so the
 * database is poisoned as udb__sync_wait's failed flush would. */
void udb__sync_commit_failed(udb_sync *s, int rc);

/* The txnid that must be durable before a write transaction that began as
 * txnid `began` may be acknowledged, given `last`, the highest committed
 * txnid read after its commit: `began` if it committed (last >= began),
 * else the snapshot it read (began - 1).  0 when the mode waits for nothing. */
uint64_t udb__sync_target(const udb_sync *s, uint64_t began, uint64_t last);

/* Wait until txnid target is durable: flush the data file at once, unless
 * another thread or process is flushing it (then wait for that flush, and
 * flush again if it did not cover target).  Not for the next commit, whose
 * in-lock flush would also cover target: that would add a whole commit cycle
 * to each acknowledgement, while a flush now overlaps the next batch's work.
 * 0, or UDB_EFLUSHFAILED (message set): a flush failed, here or elsewhere,
 * and target must not be acknowledged. */
int  udb__sync_wait(udb_sync *s, uint64_t target);

/* Take / let go of the right to begin a write transaction, before LMDB's
 * own writer lock (which has no timeout), waiting at most wait_ms (0:
 * without end).  0; UDB_EBUSY: another writer of this or another process
 * held it that long; UDB_ECORRUPT (message set): the file does not hold a
 * lock.  Taken and let go by the same thread.  A process-shared robust mutex
 * (xlock.h): a writer that dies lets it go. */
int  udb__sync_gate_enter(udb_sync *s, unsigned wait_ms);
void udb__sync_gate_leave(udb_sync *s);
/* Does a writer (of this process or another) hold the gate (it is inside a
 * write transaction)?  A hint. */
bool udb__sync_gate_busy(udb_sync *s);

/* The group commit leader's lock (ship.h), a mutex of the file like the
 * gate: take it, waiting at most ns (UDB_XLOCK_TRY, UDB_XLOCK_WAIT: xlock.h),
 * and let go of it.  true: held.  Taken and let go by the same thread; a
 * leader that dies lets it go. */
bool udb__sync_lead(udb_sync *s, uint64_t ns);
void udb__sync_unlead(udb_sync *s);

/* Does a commit's txnid matter here (false under UDB_NOSYNC, or without a
 * sync file: nothing is acknowledged by txnid)? */
bool udb__sync_counts_commits(const udb_sync *s);

/* How long a durable commit takes lately (a moving average), in ns; 0 if
 * none was timed. */
uint64_t udb__sync_commit_ns(const udb_sync *s);
/* The extra bytes of the file (shared with every process that has it open);
 * NULL when this process could not have them (no room on the disk). */
void *udb__sync_extra(const udb_sync *s);
/* The random id of this session of the file, drawn when it was reset
 * (UDB_SYNC_INSTANCE bytes): no two sessions ever share one. */
#define UDB_SYNC_INSTANCE 16
const unsigned char *udb__sync_instance(const udb_sync *s);
/* When the file was reset no process had the database open: what earlier
 * sessions left in it is garbage.  True once (to the caller that sweeps);
 * a sweep that did not commit is put back. */
bool udb__sync_take_sweep(udb_sync *s);
void udb__sync_put_back_sweep(udb_sync *s);
/* For tests: the committed / durable txnids as the shared file has them, and
 * the count of flushes made outside the write lock since the file was reset. */
void udb__sync_state(const udb_sync *s, uint64_t *committed, uint64_t *durable,
                     uint64_t *flushes);
/* For tests: replace fdatasync() of the out-of-lock flush (NULL restores it).
 * Process-wide. */
typedef int (*udb__sync_flush_fn)(int fd);
void udb__sync_set_flush_hook(udb__sync_flush_fn fn);
/* For tests (negative controls): ignore a write's snapshot term / do not
 * wait at all.  Process-wide; breaks the guarantee on purpose. */
enum { UDB_SYNC_TEST_NO_READ_TERM = 1, UDB_SYNC_TEST_NO_WAIT = 2,
       /* a forked child keeps the parent's file description (set before
          udb_open: the mapping is inherited too), as before fork safety */
       UDB_SYNC_TEST_FORK_KEEPS = 4 };
void udb__sync_set_test_flags(unsigned flags);

#endif
