/*
 * support.h -- code the tests, the fuzzers, the benchmark and `uniqdb demo`
 * share: msgpack building and rendering, temporary directories and files,
 * and the gate that starts forked processes at one instant.
 *
 * It is a client of the public API only (include/uniqdb.h), like the tools
 * that link it.  Failures return -1 (or NULL) with errno set; nothing here
 * prints or exits, except sup_pack on a malformed format (a bug in the
 * caller's code, not in its data).
 */
#ifndef UDB_SUPPORT_H
#define UDB_SUPPORT_H

#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <msgpack.h>

#include "uniqdb.h"

/* ---- msgpack (sup_msgpack.c) --------------------------------------------- */

/* A fixed buffer a msgpack_packer writes into (sup_fixbuf_write is its
 * callback): no heap, so it can live in shared memory.  A write that does not
 * fit sets overflow and fails; later ones fail too. */
typedef struct sup_fixbuf {
    void *data;
    size_t cap, len;
    bool overflow;
} sup_fixbuf;

/* Both inline: a packer set up with sup_fixbuf_write in the same function
 * then writes without a call per field (uniqdb-bench packs a record per
 * lookup, and an out-of-line writer cost it ~500 instructions a record). */
static inline int sup_fixbuf_write(void *buf, const char *p, size_t n)
{
    sup_fixbuf *b = (sup_fixbuf *)buf;
    if (b->overflow || n > b->cap - b->len) {
        b->overflow = true;
        return -1;
    }
    memcpy((char *)b->data + b->len, p, n);
    b->len += n;
    return 0;
}

/* Pack the NUL-terminated string s as a msgpack str.  0 or the packer's error. */
static inline int sup_pack_cstr(msgpack_packer *pk, const char *s)
{
    return msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* Pack one value described by fmt, taking its parts from the arguments:
 *   { k:v, ... } a map   [ v, ... ] an array   (spaces are ignored)
 *   s const char * (str)          S const char *, size_t (str of n bytes)
 *   i int    I long long          u unsigned    U unsigned long long
 *   f double (float64)            F double, packed as float32
 *   b int (bool)    n nil         x const void *, size_t (bin)
 *   r udb_val (msgpack bytes copied as they are)
 * e.g. sup_pack(pk, "{s:s, s:U, s:n}", "name", "x", "id", 5ULL, "note").
 * A malformed fmt aborts with a message: it is a bug in the caller. */
void sup_pack(msgpack_packer *pk, const char *fmt, ...);
void sup_vpack(msgpack_packer *pk, const char *fmt, va_list *ap);

/* Decode exactly one msgpack object (no trailing bytes) into *u.  0 (the
 * caller then owns *u: msgpack_unpacked_destroy), or -1. */
int sup_unpack(msgpack_unpacked *u, const void *data, size_t len);

/* The value of the str key name in the map object map; NULL if absent or if
 * map is not a map. */
const msgpack_object *sup_map_get(const msgpack_object *map, const char *name);

/* Render o as compact text for test messages: null, true, 7, -2, 1.5 (a
 * float always shows a fraction: 3.0; float32 as f32:1.5), "abc",
 * <bin 3>, [1,"a"], {"k":1}; nesting beyond 32 levels as "...". */
void sup_render(FILE *f, const msgpack_object *o);
/* The same into out (cap bytes, always NUL-terminated, cut short if needed);
 * msgpack bytes that do not decode render as "<N bad bytes>". */
void sup_render_bytes(char *out, size_t cap, const void *data, size_t len);
void sup_render_object(char *out, size_t cap, const msgpack_object *o);

/* ---- files and directories (sup_files.c) --------------------------------- */

/* The whole of f, or of the file at path; malloc'd and NUL-terminated, *len
 * (may be NULL) its length.  NULL with errno on failure. */
char *sup_read_fp(FILE *f, size_t *len);
char *sup_read_file(const char *path, size_t *len);

/* Create a fresh directory $TMPDIR/<prefix>XXXXXX (/tmp without TMPDIR) and
 * put its path in out.  0 or -1 (errno). */
int sup_mkdtemp(char *out, size_t cap, const char *prefix);

/* Remove path and everything below it (keep_top: empty it, keep path).
 * Goes on past failures; 0, or -1 (errno of the last failure).  A missing
 * path is not a failure. */
int sup_remove_tree(const char *path, bool keep_top);

/* ---- starting processes at one instant (sup_proc.c) ---------------------- */

/* Forked children say they are ready, then block until the parent opens the
 * gate, so their next steps really collide.  The parent:
 *   sup_gate_init; fork n times (child: sup_gate_enter ... sup_gate_wait);
 *   sup_gate_await; sup_gate_open.
 * A child that exits without sup_gate_wait counts as not ready. */
typedef struct sup_gate {
    int ready[2], go[2];
} sup_gate;

int  sup_gate_init(sup_gate *g);
/* In the child right after fork: keep only the child's ends. */
void sup_gate_enter(sup_gate *g);
/* In the child: say ready and block until the gate opens.  0 or -1 (errno). */
int  sup_gate_wait(sup_gate *g);
/* In the parent once every child is forked: wait until n children are
 * ready, every child is gone, or (during a signal) *give_up is set (may be
 * NULL).  Returns how many said ready. */
int  sup_gate_await(sup_gate *g, int n, const volatile sig_atomic_t *give_up);
/* Release every child waiting in sup_gate_wait. */
void sup_gate_open(sup_gate *g);
/* Close what is left (after a failure). */
void sup_gate_close(sup_gate *g);

/* Sleep us microseconds (nanosleep; a signal may cut it short). */
void sup_sleep_us(long us);
/* CLOCK_MONOTONIC in microseconds: for timing a test's steps. */
uint64_t sup_now_us(void);

#endif
