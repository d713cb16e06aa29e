/*
 * powerloss.h -- the pieces of the power-loss suite (see powerloss.c).
 *
 *  workload.c  the writers: record what they write, ACK what the API acknowledged
 *  crash.c     from a recorded log, the file states a power cut could leave
 *  verify.c    one state checked in a fresh process: open, udb_check, every
 *              ACK present with its exact bytes, one more write, check again
 */
#ifndef PL_POWERLOSS_H
#define PL_POWERLOSS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "recorder.h"
#include "uniqdb.h"

/* ---- ACKs ---- */
enum {
    ACK_PUT = 1,     /* payload: u32 key length, msgpack key, the stored record bytes */
    ACK_SCHEMA = 2,  /* payload: the name of a unique index the schema change added */
};

#define PL_TYPE "item"

/* ---- workloads (workload.c) ---- */
typedef struct pl_case {
    const char *name;
    const char *what;            /* one line for the report */
    int (*run)(const char *dir, const struct pl_case *c, int scale);
    unsigned flags;              /* udb_options.flags of the writers */
    size_t map_size;             /* udb_options.map_size (0: the default) */
    bool early_ack;              /* control: ACK at the flush's beginning, not after commit */
    int control;                 /* 0: must survive; PL_MUST_LOSE / PL_MUST_LOSE_ONLY */
} pl_case;

#define PL_MUST_LOSE 1           /* the checker must find lost ACKed writes (corruption allowed) */
#define PL_MUST_LOSE_ONLY 2      /* ... lost ACKed writes, and never corruption */

int pl_run_single(const char *dir, const pl_case *c, int scale);
int pl_run_threads(const char *dir, const pl_case *c, int scale);
int pl_run_procs(const char *dir, const pl_case *c, int scale);
int pl_run_schema(const char *dir, const pl_case *c, int scale);
int pl_run_mapgrow(const char *dir, const pl_case *c, int scale);

/* The schema the writers start from, and the record the checker writes after
 * the crash.  *len gets the packed size; the buffer is the caller's (free). */
extern const char pl_schema[];
unsigned char *pl_pack_item(size_t *len, uint64_t id, int writer, int n, size_t pad,
                            const char *tag);

/* ---- crash states (crash.c) ---- */
typedef struct pl_ack {
    uint64_t seq;
    uint32_t kind;
    const unsigned char *data;
    size_t len;
} pl_ack;

typedef struct pl_log {
    const rec_hdr *h;
    const rec_ev **ev;    /* sorted by b */
    size_t n;
    pl_ack *acks;         /* in sequence order */
    size_t nacks;
    uint64_t start;       /* the first crash point: after the base images */
    uint64_t last;        /* the highest sequence number */
    size_t writes, flushes;
} pl_log;

int pl_log_load(pl_log *L, const rec_hdr *h, char *err, size_t cap);
void pl_log_free(pl_log *L);

/* The sequence numbers to crash at (before event c's number is taken): every
 * flush boundary, every ACK, every synchronous write's middle and end, and
 * nrandom random points; sorted, distinct.  Caller frees. */
uint64_t *pl_crash_points(size_t *n, const pl_log *L, size_t nrandom, uint64_t *rng);

enum { ST_NONE, ST_ALL, ST_RANDOM };

/* Which of the writes that may or may not have reached the disk did. */
typedef struct pl_choice {
    int mode;             /* ST_NONE: only the certain ones; ST_ALL: all; ST_RANDOM */
    unsigned p256;        /* ST_RANDOM: each uncertain 4 KiB page with probability p/256 */
    bool zeros;           /* unflushed file growth survives as zeros (else it is lost) */
    const rec_ev *torn;   /* this write reached the disk only up to file offset torn_at */
    uint64_t torn_at;
    uint64_t rng;
    char desc[96];
} pl_choice;

/* One materialized file. */
typedef struct pl_file {
    char name[REC_NAME];
    unsigned char *data;
    size_t size, cap;
} pl_file;

typedef struct pl_state {
    pl_file files[REC_MAXFILES];
    size_t nfiles;
    size_t nacks;         /* ACKs the state must hold (given before the crash) */
    uint64_t hash;        /* of names and contents */
} pl_state;

/* Build the files a power cut at c leaves under choice. 0 or -1 (no memory). */
int pl_materialize(pl_state *s, const pl_log *L, uint64_t c, pl_choice *choice);
void pl_state_free(pl_state *s);
/* Writes to the first two 4 KiB pages of a file (LMDB's meta pages) that
 * are not certain at c: the last one per page, to tear.  Returns how many
 * (at most max) were put in out. */
size_t pl_torn_candidates(const rec_ev **out, size_t max, const pl_log *L, uint64_t c);
/* Write the state's files into dir (emptied first).  0 or -1. */
int pl_state_write(const pl_state *s, const char *dir);

/* ---- checking (verify.c) ---- */
enum { V_OK = 0, V_LOST = 1, V_CORRUPT = 2 };

typedef struct pl_verdict {
    int verdict;
    uint64_t acks_verified;
    uint64_t lost;
    char msg[400];
} pl_verdict;

/* Check the database in dir, in a fresh child process, against the first
 * nacks ACKs of L. */
void pl_verify(pl_verdict *out, const char *dir, const pl_log *L, size_t nacks);

/* ---- small things ---- */
uint64_t pl_rand(uint64_t *s);
int pl_rmtree(const char *dir);

#endif /* PL_POWERLOSS_H */
