/*
 * powerloss.h -- the pieces of the power-loss suite (see powerloss.c).
 *
 *  workload.c  the writers: record what they write, ACK what the API acknowledged
 *  crash.c     from a recorded log, the file states a power cut could leave
 *  verify.c    one state checked in a fresh process: open, udb_check, every
 *              ACK present with its exact bytes, every udb_exec unit there
 *              whole or not at all, one more write, check again
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
    ACK_UNIT = 3,    /* payload: u32 writer, u32 unit, u64 the value its seq_next took,
                        u32 count, then count x (u32 key length, u32 record length,
                        msgpack key, record bytes): what the unit wrote and read */
};

/* The exec workloads' units (pl_run_exec_*).  Unit u of writer w is
 *   seq_next("pl.w<w>") -> v;
 *   insert            record id = w << 24 | 2u,     n = 2u,     seq = v;
 *   insert_or_get     on u_name, id = w << 24 | 2u+1, n = 2u+1, seq = v;
 * except every PL_UNIT_GET-th unit, whose insert_or_get names the record of
 * unit u-1 (n = 2u-1): it gets that record and writes nothing, so record
 * 2u+1 of such a unit never exists.  A writer runs its units one after the
 * other, so unit u takes v = u+1 when every unit is applied exactly once;
 * after any crash the database must hold, for each writer, units 0..S-1 whole
 * and nothing else, S being the sequence's value. */
#define PL_UNIT_GET 4
#define PL_SEQ_PREFIX "pl.w"
static inline int pl_unit_creates2(uint64_t u)
{
    return u % PL_UNIT_GET != PL_UNIT_GET - 1;
}

#define PL_TYPE "item"

/* ---- workloads (workload.c) ---- */
typedef struct pl_case {
    const char *name;
    const char *what;            /* one line for the report */
    int (*run)(const char *dir, const struct pl_case *c, int scale);
    unsigned flags;              /* udb_options.flags of the writers */
    size_t map_size;             /* udb_options.map_size (0: the default) */
    bool early_ack;              /* control: ACK at the flush's beginning, not after commit */
    int control;                 /* 0: must survive; PL_MUST_LOSE / _ONLY / PL_MUST_SPLIT */
    bool split;                  /* control (exec): each unit as two udb_exec calls */
    unsigned limit;              /* control: states checked at most, times the scale
                                    (0: 600; crash points are taken in random order) */
} pl_case;

#define PL_MUST_LOSE 1           /* the checker must find lost ACKed writes (corruption allowed) */
#define PL_MUST_LOSE_ONLY 2      /* ... lost ACKed writes, and never corruption nor a unit
                                    applied in part */
#define PL_MUST_SPLIT 3          /* ... units applied in part, and no ACK lost, no corruption */

int pl_run_single(const char *dir, const pl_case *c, int scale);
int pl_run_threads(const char *dir, const pl_case *c, int scale);
int pl_run_procs(const char *dir, const pl_case *c, int scale);
int pl_run_schema(const char *dir, const pl_case *c, int scale);
int pl_run_mapgrow(const char *dir, const pl_case *c, int scale);
int pl_run_exec_single(const char *dir, const pl_case *c, int scale);
int pl_run_exec_procs(const char *dir, const pl_case *c, int scale);

/* The schema the writers start from, and the record the checker writes after
 * the crash.  *len gets the packed size; the buffer is the caller's (free). */
extern const char pl_schema[];
unsigned char *pl_pack_item(size_t *len, uint64_t id, int writer, int n, size_t pad,
                            const char *tag);
/* The same with a "seq" field (seq != 0). */
unsigned char *pl_pack_item_seq(size_t *len, uint64_t id, int writer, int n, size_t pad,
                                const char *tag, uint64_t seq);

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
/* the worst finding of a state: an ACKed write missing, a udb_exec unit
 * applied in part (or more than once), a damaged database */
enum { V_OK = 0, V_LOST = 1, V_PARTIAL = 2, V_CORRUPT = 3 };

typedef struct pl_verdict {
    int verdict;
    uint64_t acks_verified;
    uint64_t lost;
    uint64_t units;              /* units found whole (units: true) */
    uint64_t partial;            /* units found in part or applied twice */
    char msg[400];
} pl_verdict;

/* Check the database in dir, in a fresh child process, against the first
 * nacks ACKs of L; with units, also every unit of the exec workloads,
 * ACKed or not (see PL_UNIT_GET). */
void pl_verify(pl_verdict *out, const char *dir, const pl_log *L, size_t nacks, bool units);

/* ---- small things ---- */
uint64_t pl_rand(uint64_t *s);
int pl_rmtree(const char *dir);

#endif /* PL_POWERLOSS_H */
