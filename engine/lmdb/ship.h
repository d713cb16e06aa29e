/*
 * ship.h -- units shipped between processes (ship.c): the slots in the sync
 * file through which a process hands a udb_exec() unit to the process that
 * leads group commit, and gets its results back.
 *
 * One leader at a time across processes holds the lead lock (a robust mutex
 * of the sync file, xlock.h: the kernel lets it go when the holder dies).  A
 * process that cannot take it puts its unit, encoded, in a free slot
 * (QUEUED) and waits.  The leader takes every queued slot (TAKEN), runs the
 * units in its own batch, writes each response into its slot before the
 * commit (READY), and after the commit publishes the outcome (DONE), all
 * before it lets go of the lock.  A slot still TAKEN or READY when a new
 * leader takes the lock is an orphan of a leader that died: whether its unit
 * committed is read from the database, where a shipped unit records its
 * slot and round in the same transaction as its work (layout.h), so it is
 * neither lost nor applied twice.
 *
 * The area has a fixed size: a unit or a response that does not fit in a
 * slot is not shipped (its caller leads instead).
 */
#ifndef UDB_SHIP_H
#define UDB_SHIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sync.h"

#define UDB_SHIP_SLOTS 128
#define UDB_SHIP_REQ   (8u << 10)    /* bytes of one encoded unit */
#define UDB_SHIP_RESP  (8u << 10)    /* bytes of one encoded response */

typedef struct udb_ship udb_ship;

/* The bytes ship.c keeps in the sync file (udb__sync_open's `extra`). */
size_t udb__ship_area_size(void);
/* The slots of s's sync file (*out NULL: this process has none, for want
 * of disk space, and does not ship).  UDB_ENOMEM. */
int    udb__ship_open(udb_ship **out, udb_sync *s);
void   udb__ship_close(udb_ship *sh);

/* ---- leading ---- */

/* Take the lead lock if it is free (false: another thread or process holds
 * it).  A thread of this process must not hold it already. */
bool udb__ship_lead(udb_ship *sh);
/* Take it, waiting at most ns for the leader to let go (false: not had). */
bool udb__ship_lead_within(udb_ship *sh, uint64_t ns);
/* A unit of ours stayed queued too long: the leader of now is stalled (a
 * stopped process holds the lead lock), and udb__ship_stalled() says so
 * until a leader lets go of the lock -- meanwhile this process writes alone
 * instead of shipping or waiting for the lead. */
void udb__ship_mark_stalled(udb_ship *sh);
bool udb__ship_stalled(const udb_ship *sh);
/* Let go of it, then wake the owner of one slot still queued: it leads
 * next (its batch takes the others). */
void udb__ship_unlead(udb_ship *sh);

/* Under the lead lock: wait up to ns for `want` slots to be queued (the
 * processes of the last batch, coming back with their next unit). */
void udb__ship_gather(udb_ship *sh, unsigned want, uint64_t ns);
/* Under the lead lock: how many units of other processes the last batch
 * suggests will come back -- the ones shipped into it if this process ran
 * it, else all of it but about as many as this process has queued now
 * (`mine`: its units were shipped in, the last leader's will be). */
unsigned udb__ship_expected(const udb_ship *sh, unsigned mine);
/* Record this leader's batch: `mine` units of its own process and
 * `shipped` that other processes queued. */
void udb__ship_set_last_batch(udb_ship *sh, unsigned mine, unsigned shipped);

enum udb_ship_taken { UDB_SHIP_NEW, UDB_SHIP_ORPHAN };
/* Under the lead lock: take up to max slots -- every queued one (NEW) and
 * every one a dead leader had taken (ORPHAN) -- into idx / kind; returns how
 * many. */
size_t udb__ship_collect(udb_ship *sh, unsigned *idx, enum udb_ship_taken *kind, size_t max);
/* Slot i's unit and round (the unit's id, with i). */
const void *udb__ship_req(const udb_ship *sh, unsigned i, size_t *len, uint64_t *round);
/* Where the response of slot i goes (UDB_SHIP_RESP bytes), then: it is
 * written (len bytes), before the commit. */
void *udb__ship_resp_buf(udb_ship *sh, unsigned i);
void  udb__ship_ready(udb_ship *sh, unsigned i, size_t len);
/* Is slot i's response written (an orphan whose unit committed must be)? */
bool  udb__ship_is_ready(const udb_ship *sh, unsigned i);
/* The outcome, after the commit: rc, the txnid of the batch, whether the
 * unit's work committed, and for a failure of the batch as a whole its
 * message.  The response stays if it was written (the results: of the
 * committed unit, or of the op that failed it).  The owner sees it at its
 * next look; udb__ship_wake tells it at once. */
void  udb__ship_done(udb_ship *sh, unsigned i, int rc, uint64_t txnid, bool committed,
                     const char *msg);
/* The unit was not run (its response would not fit, or the leader cannot
 * read it): its owner runs it itself.  Seen as udb__ship_done's outcome. */
void  udb__ship_bounce(udb_ship *sh, unsigned i);
/* Wake whoever waits on slot i: the owner of a done or bounced unit.  May
 * come after the lead lock is let go, when the slot may already hold another
 * unit; its owner then wakes for nothing and waits again. */
void  udb__ship_wake(udb_ship *sh, unsigned i);

/* ---- following ---- */

/* Put req in a free slot, queued for the leader: true and *slot, or false
 * (no free slot, or req is larger than UDB_SHIP_REQ). */
bool udb__ship_submit(udb_ship *sh, unsigned *slot, const void *req, size_t len);
enum udb_ship_state { UDB_SHIP_WAITING, UDB_SHIP_DONE, UDB_SHIP_BOUNCED };
/* Wait up to timeout_ns for slot's outcome. */
enum udb_ship_state udb__ship_wait(udb_ship *sh, unsigned slot, uint64_t timeout_ns);
/* Take back a unit no leader has taken yet (the leader may be stopped):
 * true if it was still queued -- it will not run, and the slot is free --,
 * false if a leader took it (wait for the outcome). */
bool udb__ship_withdraw(udb_ship *sh, unsigned slot);
/* A done slot's outcome (see udb__ship_done) and response. */
const void *udb__ship_outcome(const udb_ship *sh, unsigned slot, size_t *len, int *rc,
                              uint64_t *txnid, bool *committed, const char **msg);
/* The owner is finished with its slot: it is free again. */
void udb__ship_release(udb_ship *sh, unsigned slot);

/* What happened to shipped units, counted in the file (for tests and the
 * benchmark): run by a leader (RUN; FOREIGN: of another process than the
 * unit's); orphans found committed / run again by a new leader; bounced
 * back to their owner; and the times a leader waited for units to be
 * shipped (GATHER). */
enum { UDB_SHIP_RUN, UDB_SHIP_FOREIGN, UDB_SHIP_EARLIER, UDB_SHIP_RERUN, UDB_SHIP_BOUNCE,
       UDB_SHIP_GATHER, UDB_SHIP_NCOUNTS };
void udb__ship_count(udb_ship *sh, unsigned what);
void udb__ship_counts(const udb_ship *sh, uint64_t out[UDB_SHIP_NCOUNTS]);

/* How many slots are queued now. */
unsigned udb__ship_queued(const udb_ship *sh);
/* How many slots are in use (not free): the scans above are skipped at 0. */
unsigned udb__ship_busy(const udb_ship *sh);
/* The pid of the process that holds the lead lock now (0: none). */
int  udb__ship_leader(const udb_ship *sh);
/* Does another process lead now? */
bool udb__ship_other_leads(const udb_ship *sh);
/* For tests: make a leader sleep this long between its commit and
 * publishing the outcomes (the window a leader's death is most dangerous
 * in).  Process-wide. */
void udb__ship_set_publish_delay(uint64_t ns);
uint64_t udb__ship_publish_delay(void);
/* For tests: pauses at other moments of leading (process-wide): right after
 * taking the lead lock (a leader stopped there holds up only shippers), and
 * after running shipped units, before the commit (a leader killed there
 * leaves units that never committed); and BOUND, the least time a unit
 * stays queued before its owner takes it back (0: the engine's own). */
enum { UDB_SHIP_DELAY_PUBLISH, UDB_SHIP_DELAY_LEAD, UDB_SHIP_DELAY_PRECOMMIT,
       UDB_SHIP_DELAY_BOUND, UDB_SHIP_NDELAYS };
void udb__ship_set_delay(unsigned which, uint64_t ns);
uint64_t udb__ship_delay(unsigned which);
void udb__ship_test_pause(unsigned which);
/* For tests (the negative control of race_leaderkill): a new leader takes
 * every orphan for not committed, without reading its record -- which runs
 * committed units twice.  Process-wide. */
enum { UDB_SHIP_TEST_NO_RECORD = 1,
       /* never take back a queued unit, however long the leader holds it */
       UDB_SHIP_TEST_NO_BOUND = 2,
       /* a leader whose map must grow keeps the units it took while it waits
          for its own process's transactions */
       UDB_SHIP_TEST_HOLD_UNITS = 4,
       /* unit records name no session (all share one id), as before
          session ids: a deleted sync.udb then lets units run twice */
       UDB_SHIP_TEST_ONE_SESSION = 8,
       /* a unit of insert_or_get ops whose keys are all held runs in a write
          transaction all the same (group.c: held_already) */
       UDB_SHIP_TEST_NO_HELD = 16 };
void udb__ship_set_test_flags(unsigned flags);
unsigned udb__ship_test_flags(void);

#endif
