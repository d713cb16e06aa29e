/*
 * recorder.h -- the system-call recorder of the power-loss suite.
 *
 * Linked into the test executable (which is built with export_dynamic), the
 * recorder's open/pwrite/writev/fdatasync/... take precedence over libc's for
 * every caller in the process, LMDB included; each forwards to the next
 * definition (the sanitizer's interceptor, then libc) and, once recording has
 * started, appends what it did to a log in shared memory: the bytes written,
 * with a global sequence number (one counter in the shared log, so the order
 * holds across threads and forked processes) taken before the call begins
 * and after it returns.  Flushes therefore carry a begin and an end.
 *
 * What is recorded: every file in the tracked directory except LMDB's lock
 * file and uniqdb's sync file (shared memory, not data), including files created later, on every
 * descriptor opened on it (O_DSYNC/O_SYNC ones marked), and the directory
 * itself for renames, unlinks and directory fsyncs.  A call that could change
 * a tracked file in a way the log cannot represent (a writable shared
 * mapping, dup of a tracked descriptor, stdio, copy_file_range, pwritev2,
 * O_APPEND, path truncate) aborts the process with a message: an unknown
 * writing call must never pass silently.
 *
 * The workload adds ACK events: the moment an API call returned success,
 * with what it acknowledged.
 */
#ifndef PL_RECORDER_H
#define PL_RECORDER_H

#include <stddef.h>
#include <stdint.h>

#include "uniqdb.h"

#define REC_MAGIC 0x31474f4c4c50ULL   /* "PLLOG1" */
#define REC_MAXFILES 64
#define REC_NAME 64
#define REC_VOLATILE UDB_LOCK_FILE    /* LMDB's lock file: never data */
#define REC_VOLATILE2 UDB_SYNC_FILE   /* uniqdb's shared flush state: reset by the
                                         first opener, never read after a crash */

enum rec_kind {
    EV_BASE = 1,  /* a tracked file's contents when recording started (payload) */
    EV_CREATE,    /* a new file appeared in the directory (name in payload) */
    EV_OPEN,      /* off = open flags */
    EV_WRITE,     /* off, payload = bytes that reached the page cache */
    EV_SIZE,      /* ftruncate/fallocate: off = the new size (fallocate: grow only) */
    EV_FLUSH,     /* fsync/fdatasync of one file (file = the directory: a dir fsync) */
    EV_FLUSHALL,  /* sync/syncfs: every file */
    EV_CLOSE,
    EV_LSEEK,     /* off = resulting offset */
    EV_RENAME,    /* file = the renamed file; payload = "old\0new" names */
    EV_UNLINK,    /* file = the removed file; payload = name */
    EV_ACK,       /* off = ack kind; payload = what was acknowledged */
};

/* One event; followed by len payload bytes, padded to 8. */
typedef struct rec_ev {
    uint32_t kind;
    uint32_t file;      /* index in rec_hdr.files */
    uint64_t b, e;      /* sequence numbers before the call and after it returned */
    uint64_t off;
    uint64_t len;       /* payload bytes */
    int32_t pid, tid, fd, rc;
    uint32_t sync;      /* EV_WRITE through an O_DSYNC/O_SYNC descriptor */
    uint32_t pad;
} rec_ev;

typedef struct rec_file {
    uint64_t dev, ino;
    uint32_t is_dir;
    char name[REC_NAME];   /* name when first seen */
} rec_file;

/* The shared log: this header, then events. */
typedef struct rec_hdr {
    uint64_t magic;
    uint64_t seq;          /* atomic: the global order */
    uint64_t tail;         /* atomic: bytes of events after the header */
    uint64_t cap;          /* bytes available for events */
    uint64_t flush_mark;   /* atomic: a number taken just before the latest flush of a
                              tracked file began (rec_ack_at_flush_mark) */
    uint32_t lock;         /* atomic spin lock for the file table */
    uint32_t nfiles;
    uint32_t failed;       /* a loud failure or an overflow happened */
    char fail_msg[512];
    rec_file files[REC_MAXFILES];
} rec_hdr;

/* Create a shared log of cap bytes (file at path, kept mapped in this process
 * and every process forked from it).  Returns the header, or NULL. */
rec_hdr *rec_create(const char *path, size_t cap);
/* The mapped log (NULL before rec_create). */
rec_hdr *rec_log(void);
/* Start recording the directory dir in this process (and its future
 * children): every file in it is flushed and logged as EV_BASE. 0 or -1. */
int rec_start(const char *dir);
/* Stop recording in this process. */
void rec_stop(void);

/* Log an ACK of the given kind now (the API call just returned success). */
void rec_ack(uint32_t kind, const void *data, size_t len);
/* Negative control: log this ACK at the beginning of the next flush this
 * process makes (before the flush, i.e. too early), or at rec_ack_flush(). */
void rec_ack_early(uint32_t kind, const void *data, size_t len);
/* Log any ACK still held by rec_ack_early(). */
void rec_ack_flush(void);
/* Negative control across threads and processes: log this ACK as given just
 * before the latest flush of a tracked file -- by any process -- began (too
 * early if that flush is the one that makes the acknowledged write durable). */
void rec_ack_at_flush_mark(uint32_t kind, const void *data, size_t len);

/* Iterate the events of a finished log: *pos starts at 0. NULL at the end. */
const rec_ev *rec_next(const rec_hdr *h, uint64_t *pos);
static inline const unsigned char *rec_payload(const rec_ev *ev)
{
    return (const unsigned char *)(ev + 1);
}

#endif /* PL_RECORDER_H */
