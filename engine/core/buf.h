/*
 * buf.h -- bytes: big-endian numbers, a growable byte buffer, and the
 * transaction arena (arena.c).  The lowest layer of the engine: it uses
 * nothing but libc and the error codes of uniqdb.h.
 */
#ifndef UDB_BUF_H
#define UDB_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "uniqdb.h"

/* The n-byte big-endian number at p (n <= 8): tuple keys, msgpack lengths,
 * and the 8-byte numbers stored in __meta and __seq. */
static inline uint64_t udb__get_be(const unsigned char *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* v as 8 big-endian bytes at out. */
static inline void udb__put_be64(unsigned char out[8], uint64_t v)
{
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)(v >> (56 - 8 * i));
}

/* n bytes at a and b are equal.  msgpack-c gives some empty strings a NULL
 * pointer, and memcmp(NULL, ..., 0) is undefined behaviour. */
static inline bool udb__same_bytes(const void *a, const void *b, size_t n)
{
    return n == 0 || memcmp(a, b, n) == 0;
}

/* A growable byte buffer.  Appends never fail loudly: the first failure sets
 * oom, later appends do nothing, and the caller checks oom once at the end. */
typedef struct udb_buf {
    unsigned char *p;
    size_t len, cap;
    bool oom;          /* sticky: an append failed */
} udb_buf;

void udb__buf_free(udb_buf *b);
int  udb__buf_reserve(udb_buf *b, size_t extra);
void udb__buf_put(udb_buf *b, const void *p, size_t n);
void udb__buf_byte(udb_buf *b, unsigned char c);
int  udb__buf_printf(udb_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int  udb__buf_sbuffer_write(void *data, const char *buf, size_t len); /* msgpack_packer callback */

/* Transaction-owned memory, released all at once when the transaction ends. */
typedef struct udb_arena {
    struct udb_chunk *head;
} udb_arena;

void *udb__arena_alloc(udb_arena *a, size_t n);
void *udb__arena_dup(udb_arena *a, const void *p, size_t n);
void  udb__arena_free(udb_arena *a);

#endif
