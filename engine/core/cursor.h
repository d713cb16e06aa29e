/*
 * cursor.h -- ordered scans behind the backend seam (cursor.c).
 *
 * The core opens a scan: it checks the arguments, finds the type and the
 * index, and encodes the bounds, the prefix and `after` with the key codec
 * (index.h: a nocase field folded, as its entries are).  A backend walks
 * its storage in the index's order and, for every entry, gives the core the
 * entry's sort key -- its index fields then its primary key, encoded
 * (keycodec.h), SQL's ORDER BY -- which udb__cursor_place puts before, in or
 * after the range, and which udb_cursor_key hands back as msgpack.  Both
 * backends so take the same entries in the same order and give the same
 * positions.
 *
 * Every backend's struct udb_cursor begins with a udb_curfront (its first
 * member); the backend's size and calls are backend.h's "scans" members.
 */
#ifndef UDB_CURSOR_H
#define UDB_CURSOR_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "backend.h"

typedef struct udb_curfront {
    const udb_backend *be;    /* first: the public calls dispatch on it */
    udb_txn *txn;
    const udb_type *t;
    const udb_index *ix;
    /* the range: tuples of at most ix->nfields values (empty: no bound), and
       the sort key to resume after (empty: none) */
    udb_buf lo, hi, after;
    size_t after_fields;      /* bytes of `after` that hold the index's fields */
    bool lo_excl, hi_excl, reverse;
    /* in scan order, once an entry is past the start bound (or `after`), so
       is every later one: stop comparing */
    bool start_passed, after_passed;
    uint64_t limit, handed;   /* at most limit entries (0: no limit); handed out */
    bool done;                /* the scan has ended: UDB_ENOTFOUND from now on */
    /* sort keys (cand: of the entry being looked at; pos: of the last one
       handed out, empty before the first), and pos as udb_cursor_key's msgpack */
    udb_buf cand, pos, keyout;
    udb_buf scratch;          /* udb__cursor_sort_key's */
} udb_curfront;

static inline udb_curfront *udb__curfront(udb_cursor *c)
{
    return (udb_curfront *)(void *)c;
}

static inline int udb__cmp_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int d = n ? memcmp(a, b, n) : 0;
    return d ? d : (alen > blen) - (alen < blen);
}

/*
 * The order of the first k values of key (an entry's key or sort key)
 * against b, a tuple of k values: <0, 0 or >0.  Both are tuples, whose
 * memcmp order is value order, but key holds more values than b: its first
 * k are compared.  Where b ends, key's next byte starts its next value (a
 * type code: the k values are equal), unless it is 0xFF: then b's last
 * value is a string or bytes, whose 0x00 terminator is, in key, an escaped
 * NUL -- key's value goes on and is greater (prefix ("a") vs key ("a\0")).
 * No type code is 0xFF.
 */
static inline int udb__cmp_bound(const void *key, size_t len, const udb_buf *b)
{
    const unsigned char *k = key;
    size_t n = len < b->len ? len : b->len;
    int d = n ? memcmp(k, b->p, n) : 0;
    if (d || len < b->len)
        return d ? d : -1;
    return len > b->len && k[b->len] == 0xFF;
}

/* Where the entry of key (its key, or its sort key: both begin with its
 * index values) and sort key c->cand lies: -1 before the range in scan
 * order (skip it), 0 in it, 1 after it (the scan ends).  Entries must come
 * in scan order. */
static inline int udb__cursor_place(udb_curfront *c, const void *key, size_t len)
{
    int dir = c->reverse ? -1 : 1;
    const udb_buf *start = c->reverse ? &c->hi : &c->lo, *end = c->reverse ? &c->lo : &c->hi;
    bool start_excl = c->reverse ? c->hi_excl : c->lo_excl;
    bool end_excl = c->reverse ? c->lo_excl : c->hi_excl;
    if (!c->start_passed && start->len) {
        int d = dir * udb__cmp_bound(key, len, start);
        if (d < 0 || (d == 0 && start_excl))
            return -1;
    }
    c->start_passed = true;
    if (!c->after_passed && c->after.len) {
        if (dir * udb__cmp_bytes(c->cand.p, c->cand.len, c->after.p, c->after.len) <= 0)
            return -1;
    }
    c->after_passed = true;
    if (end->len) {
        int d = dir * udb__cmp_bound(key, len, end);
        if (d > 0 || (d == 0 && end_excl))
            return 1;
    }
    return 0;
}

/* The entry whose sort key is c->cand is handed out: it becomes the
 * position, and counts against the limit. */
static inline void udb__cursor_handed(udb_curfront *c)
{
    udb_buf swap = c->pos;
    c->pos = c->cand;
    c->cand = swap;
    if (c->limit && ++c->handed >= c->limit)
        c->done = true;
}

/* The sort key of a record of the cursor's type from its values (vals by
 * field, as record.h parses them) into c->cand, as the LMDB backend's
 * entries give it: the index's key of them (index.h; *applies false: a
 * partial index does not hold the record, c->cand is then undefined), then,
 * but in a primary-key scan, the encoded primary key.  0, UDB_ENOMEM,
 * UDB_EBADRECORD (no primary key). */
int udb__cursor_sort_key(udb_curfront *c, bool *applies, const msgpack_object *const *vals);

#endif
