/*
 * ship.c -- the slots through which processes hand units to the group
 * commit leader of another process (the protocol is in ship.h).
 *
 * A slot's state word is also its futex: the owner sleeps on it, and the
 * leader wakes it when the outcome is published -- or, after letting go of
 * the lead lock, when the slot is still queued, so that its owner tries to
 * lead.  Owners also wake by themselves every few milliseconds to try the
 * lead lock: that is how a leader's death is noticed (its lock is free).
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "ship.h"
#include "xlock.h"

enum { FREE, FILLING, QUEUED, TAKEN, READY, DONE, BOUNCED };

typedef struct slot {
    _Atomic uint32_t state;       /* futex word */
    _Atomic int32_t owner;        /* pid of the process waiting for it */
    _Atomic int32_t leader;       /* pid of the leader that took it */
    uint32_t reqlen, resplen;
    int32_t rc;
    uint32_t committed;
    uint64_t round;               /* bumped at every submit: with the index, the unit's id */
    uint64_t txnid;
    char msg[480];                /* a failure of the leader's batch as a whole */
    unsigned char req[UDB_SHIP_REQ];
    unsigned char resp[UDB_SHIP_RESP];
} slot;

typedef struct area {
    _Atomic int32_t leader;       /* pid holding the lead lock, 0 if none */
    _Atomic uint32_t arrive;      /* futex word: bumped when a slot is queued */
    _Atomic uint32_t gathering;   /* a leader sleeps on arrive */
    _Atomic uint32_t last_batch;  /* units in the last batch a leader ran ... */
    _Atomic uint32_t last_shipped;   /* ... of which other processes shipped */
    _Atomic int32_t last_leader;  /* the pid that ran it */
    /* slots not FREE, counted up before a slot leaves FREE and down after it
       is FREE again: while 0, nothing is queued or taken, and the leader's
       scans of the 128 slots (1 MiB, a page each) are skipped.  A process
       that dies holding slots leaves it high: that only costs the scans. */
    _Atomic uint32_t busy;
    uint32_t unused;
    _Atomic uint64_t counts[UDB_SHIP_NCOUNTS];   /* since the file was reset */
    _Atomic uint64_t batches;     /* bumped whenever a leader lets go */
    slot slots[UDB_SHIP_SLOTS];
} area;

struct udb_ship {
    udb_sync *sync;
    area *a;
    int32_t pid;
    /* a leader that kept a unit of ours queued too long (stopped?), and
       a.batches then: until it lets go, we do not wait for it */
    _Atomic int32_t stalled_pid;
    _Atomic uint64_t stalled_at;
};

static unsigned queued(const udb_ship *sh, unsigned enough);

static _Atomic uint64_t delays[UDB_SHIP_NDELAYS];
static _Atomic unsigned test_flags;

void udb__ship_set_test_flags(unsigned flags)
{
    atomic_store(&test_flags, flags);
}

unsigned udb__ship_test_flags(void)
{
    return atomic_load(&test_flags);
}

void udb__ship_set_publish_delay(uint64_t ns)
{
    atomic_store(&delays[UDB_SHIP_DELAY_PUBLISH], ns);
}

uint64_t udb__ship_publish_delay(void)
{
    return atomic_load(&delays[UDB_SHIP_DELAY_PUBLISH]);
}

void udb__ship_set_delay(unsigned which, uint64_t ns)
{
    atomic_store(&delays[which], ns);
}

uint64_t udb__ship_delay(unsigned which)
{
    return atomic_load(&delays[which]);
}

void udb__ship_test_pause(unsigned which)
{
    uint64_t ns = atomic_load(&delays[which]);
    if (ns) {
        struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
        nanosleep(&ts, NULL);
    }
}

size_t udb__ship_area_size(void)
{
    return sizeof(area);
}

int udb__ship_open(udb_ship **out, udb_sync *s)
{
    *out = NULL;
    if (!udb__sync_extra(s))
        return 0;   /* no room for the slots: this process does not ship */
    udb_ship *sh = calloc(1, sizeof *sh);
    if (!sh)
        return UDB_ENOMEM;
    sh->sync = s;
    sh->a = udb__sync_extra(s);
    sh->pid = (int32_t)getpid();
    *out = sh;
    return 0;
}

void udb__ship_close(udb_ship *sh)
{
    if (!sh)
        return;
    free(sh);
}

static void wake_slot(slot *sl)
{
    syscall(SYS_futex, &sl->state, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* ---- leading ------------------------------------------------------------------ */

/* Take the lead lock, waiting at most ns (UDB_XLOCK_TRY, UDB_XLOCK_WAIT). */
static bool lead(udb_ship *sh, uint64_t ns)
{
    /* not held: another thread leads, here or elsewhere -- or the lock
       cannot be had at all, and then slots must not be taken without it
       (the caller commits its own batch alone) */
    if (!udb__sync_lead(sh->sync, ns))
        return false;
    atomic_store(&sh->a->leader, sh->pid);
    return true;
}

bool udb__ship_lead(udb_ship *sh)
{
    return lead(sh, UDB_XLOCK_TRY);
}

void udb__ship_unlead(udb_ship *sh)
{
    atomic_fetch_add(&sh->a->batches, 1);
    atomic_store(&sh->a->leader, 0);
    udb__sync_unlead(sh->sync);
    /* one owner is enough to lead next (and its batch takes every queued
       slot): waking them all would have each try the lock, ~100 wakeups a
       batch with 8 processes of 16 units in flight.  An owner that does not
       wake still looks every few milliseconds (udb__ship_wait's caller). */
    if (!atomic_load(&sh->a->busy))
        return;
    for (unsigned i = 0; i < UDB_SHIP_SLOTS; i++) {
        slot *sl = &sh->a->slots[i];
        if (atomic_load(&sl->state) == QUEUED) {
            wake_slot(sl);
            break;
        }
    }
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

bool udb__ship_lead_within(udb_ship *sh, uint64_t ns)
{
    uint64_t deadline = now_ns() + ns;
    for (;;) {
        /* a waiter of the lock itself: the leader's unlock wakes one, which
           then holds it (a leader that dies wakes one too).  In steps of
           1 ms, to see a leader of ours marked stalled meanwhile. */
        uint64_t now = now_ns();
        uint64_t wait = now >= deadline || udb__ship_stalled(sh) ? UDB_XLOCK_TRY
                        : deadline - now < 1000000 ? deadline - now : 1000000;
        if (lead(sh, wait))
            return true;
        if (wait == UDB_XLOCK_TRY)
            return false;
    }
}

void udb__ship_mark_stalled(udb_ship *sh)
{
    atomic_store(&sh->stalled_at, atomic_load(&sh->a->batches));
    atomic_store(&sh->stalled_pid, atomic_load(&sh->a->leader));
}

bool udb__ship_stalled(const udb_ship *sh)
{
    int32_t pid = atomic_load(&sh->stalled_pid);
    return pid && atomic_load(&sh->a->leader) == pid &&
           atomic_load(&sh->a->batches) == atomic_load(&sh->stalled_at);
}

void udb__ship_gather(udb_ship *sh, unsigned want, uint64_t ns)
{
    area *a = sh->a;
    uint64_t deadline = now_ns() + ns;
    udb__ship_count(sh, UDB_SHIP_GATHER);
    atomic_store(&a->gathering, 1);
    for (;;) {
        uint32_t seen = atomic_load(&a->arrive);
        uint64_t now = now_ns();
        if (queued(sh, want) >= want || now >= deadline)
            break;
        struct timespec ts = {(time_t)((deadline - now) / 1000000000u),
                              (long)((deadline - now) % 1000000000u)};
        syscall(SYS_futex, &a->arrive, FUTEX_WAIT, seen, &ts, NULL, 0);
    }
    atomic_store(&a->gathering, 0);
}

unsigned udb__ship_expected(const udb_ship *sh, unsigned mine)
{
    const area *a = sh->a;
    if (atomic_load(&a->last_leader) == sh->pid)
        return atomic_load(&a->last_shipped);
    unsigned last = atomic_load(&a->last_batch);
    return last > mine ? last - mine : 0;
}

void udb__ship_set_last_batch(udb_ship *sh, unsigned mine, unsigned shipped)
{
    area *a = sh->a;
    atomic_store(&a->last_batch, mine + shipped);
    atomic_store(&a->last_shipped, shipped);
    atomic_store(&a->last_leader, sh->pid);
}

size_t udb__ship_collect(udb_ship *sh, unsigned *idx, enum udb_ship_taken *kind, size_t max)
{
    size_t n = 0;
    if (!atomic_load(&sh->a->busy))
        return 0;
    for (unsigned i = 0; i < UDB_SHIP_SLOTS && n < max; i++) {
        slot *sl = &sh->a->slots[i];
        uint32_t st = atomic_load(&sl->state);
        if (st == TAKEN || st == READY) {
            /* we hold the lock, so its leader let go without publishing: dead */
            atomic_store(&sl->leader, sh->pid);
            idx[n] = i;
            kind[n++] = UDB_SHIP_ORPHAN;
        } else if (st == QUEUED && atomic_compare_exchange_strong(&sl->state, &st, TAKEN)) {
            /* a CAS: its owner may be withdrawing it (udb__ship_withdraw) */
            atomic_store(&sl->leader, sh->pid);
            idx[n] = i;
            kind[n++] = UDB_SHIP_NEW;
        }
    }
    return n;
}

const void *udb__ship_req(const udb_ship *sh, unsigned i, size_t *len, uint64_t *round)
{
    const slot *sl = &sh->a->slots[i];
    *len = sl->reqlen <= UDB_SHIP_REQ ? sl->reqlen : 0;
    *round = sl->round;
    return sl->req;
}

void *udb__ship_resp_buf(udb_ship *sh, unsigned i)
{
    return sh->a->slots[i].resp;
}

void udb__ship_ready(udb_ship *sh, unsigned i, size_t len)
{
    slot *sl = &sh->a->slots[i];
    sl->resplen = (uint32_t)len;
    atomic_store(&sl->state, READY);
}

bool udb__ship_is_ready(const udb_ship *sh, unsigned i)
{
    return atomic_load(&sh->a->slots[i].state) == READY;
}

void udb__ship_done(udb_ship *sh, unsigned i, int rc, uint64_t txnid, bool committed,
                    const char *msg)
{
    slot *sl = &sh->a->slots[i];
    snprintf(sl->msg, sizeof sl->msg, "%s", msg ? msg : "");
    sl->rc = rc;
    sl->txnid = txnid;
    sl->committed = committed;
    if (!committed && atomic_load(&sl->state) != READY)
        sl->resplen = 0;   /* no results: rc says why */
    if (atomic_load(&sl->owner) != sh->pid)
        udb__ship_count(sh, UDB_SHIP_FOREIGN);
    atomic_store(&sl->state, DONE);
}

void udb__ship_bounce(udb_ship *sh, unsigned i)
{
    atomic_store(&sh->a->slots[i].state, BOUNCED);
}

void udb__ship_wake(udb_ship *sh, unsigned i)
{
    wake_slot(&sh->a->slots[i]);
}

/* ---- following ---------------------------------------------------------------- */

static bool owner_gone(const slot *sl)
{
    pid_t pid = atomic_load(&sl->owner);
    return pid > 0 && kill(pid, 0) != 0 && errno == ESRCH;
}

/* Free the slots whose owner died before releasing them (its unit was run
 * or not: nobody is waiting for the outcome).  Not queued or taken ones: a
 * leader still runs those. */
static void reclaim(udb_ship *sh)
{
    for (unsigned i = 0; i < UDB_SHIP_SLOTS; i++) {
        slot *sl = &sh->a->slots[i];
        uint32_t st = atomic_load(&sl->state);
        if ((st == DONE || st == BOUNCED || st == FILLING) && owner_gone(sl) &&
            atomic_compare_exchange_strong(&sl->state, &st, FREE))
            atomic_fetch_sub(&sh->a->busy, 1);
    }
}

static bool claim(udb_ship *sh, unsigned *out)
{
    unsigned start = (unsigned)sh->pid % UDB_SHIP_SLOTS;
    atomic_fetch_add(&sh->a->busy, 1);   /* before the slot can be seen queued */
    for (unsigned k = 0; k < UDB_SHIP_SLOTS; k++) {
        unsigned i = (start + k) % UDB_SHIP_SLOTS;
        uint32_t st = FREE;
        if (atomic_compare_exchange_strong(&sh->a->slots[i].state, &st, FILLING)) {
            *out = i;
            return true;
        }
    }
    atomic_fetch_sub(&sh->a->busy, 1);
    return false;
}

bool udb__ship_submit(udb_ship *sh, unsigned *out, const void *req, size_t len)
{
    if (len > UDB_SHIP_REQ)
        return false;
    unsigned i;
    if (!claim(sh, &i)) {
        reclaim(sh);
        if (!claim(sh, &i))
            return false;
    }
    slot *sl = &sh->a->slots[i];
    atomic_store(&sl->owner, sh->pid);
    atomic_store(&sl->leader, 0);
    sl->round++;
    memcpy(sl->req, req, len);
    sl->reqlen = (uint32_t)len;
    sl->resplen = 0;
    sl->rc = 0;
    sl->committed = 0;
    sl->txnid = 0;
    sl->msg[0] = 0;
    atomic_store(&sl->state, QUEUED);
    atomic_fetch_add(&sh->a->arrive, 1);
    if (atomic_load(&sh->a->gathering))
        syscall(SYS_futex, &sh->a->arrive, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    *out = i;
    return true;
}

enum udb_ship_state udb__ship_wait(udb_ship *sh, unsigned i, uint64_t timeout_ns)
{
    slot *sl = &sh->a->slots[i];
    uint32_t st = atomic_load(&sl->state);
    if (st != DONE && st != BOUNCED) {
        struct timespec ts = {(time_t)(timeout_ns / 1000000000u),
                              (long)(timeout_ns % 1000000000u)};
        syscall(SYS_futex, &sl->state, FUTEX_WAIT, st, &ts, NULL, 0);
        st = atomic_load(&sl->state);
    }
    return st == DONE ? UDB_SHIP_DONE : st == BOUNCED ? UDB_SHIP_BOUNCED : UDB_SHIP_WAITING;
}

bool udb__ship_withdraw(udb_ship *sh, unsigned i)
{
    uint32_t st = QUEUED;
    if (!atomic_compare_exchange_strong(&sh->a->slots[i].state, &st, FREE))
        return false;
    atomic_fetch_sub(&sh->a->busy, 1);
    return true;
}

const void *udb__ship_outcome(const udb_ship *sh, unsigned i, size_t *len, int *rc,
                              uint64_t *txnid, bool *committed, const char **msg)
{
    const slot *sl = &sh->a->slots[i];
    *msg = sl->msg;
    *len = sl->resplen <= UDB_SHIP_RESP ? sl->resplen : 0;
    *rc = sl->rc;
    *txnid = sl->txnid;
    *committed = sl->committed != 0;
    return sl->resp;
}

void udb__ship_release(udb_ship *sh, unsigned i)
{
    atomic_store(&sh->a->slots[i].state, FREE);
    atomic_fetch_sub(&sh->a->busy, 1);
}

void udb__ship_count(udb_ship *sh, unsigned what)
{
    atomic_fetch_add(&sh->a->counts[what], 1);
}

void udb__ship_counts(const udb_ship *sh, uint64_t out[UDB_SHIP_NCOUNTS])
{
    for (unsigned i = 0; i < UDB_SHIP_NCOUNTS; i++)
        out[i] = sh ? atomic_load(&sh->a->counts[i]) : 0;
}

/* The queued slots, counting no further than `enough` (each slot is pages
 * away from the next: a full scan is 128 cache misses). */
static unsigned queued(const udb_ship *sh, unsigned enough)
{
    unsigned n = 0;
    if (!atomic_load(&sh->a->busy))
        return 0;
    for (unsigned i = 0; i < UDB_SHIP_SLOTS && n < enough; i++)
        n += atomic_load(&sh->a->slots[i].state) == QUEUED;
    return n;
}

unsigned udb__ship_queued(const udb_ship *sh)
{
    return queued(sh, UDB_SHIP_SLOTS);
}

unsigned udb__ship_busy(const udb_ship *sh)
{
    return sh ? atomic_load(&sh->a->busy) : 0;
}

int udb__ship_leader(const udb_ship *sh)
{
    return sh ? atomic_load(&sh->a->leader) : 0;
}

bool udb__ship_other_leads(const udb_ship *sh)
{
    int32_t pid = sh ? atomic_load(&sh->a->leader) : 0;
    return pid && pid != sh->pid;
}
