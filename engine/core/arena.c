/*
 * arena.c -- the two memory shapes the engine needs: a growable byte buffer
 * for building keys, records and messages, and a transaction arena that owns
 * every value handed to the caller until the transaction ends.
 *
 * The arena exists because LMDB's pointers into a write transaction move on
 * the next write; our contract says returned values live until the end of the
 * transaction, so write transactions copy them here.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

void udb__buf_free(udb_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = false;
}

int udb__buf_reserve(udb_buf *b, size_t extra)
{
    if (b->oom)
        return UDB_ENOMEM;
    if (extra > SIZE_MAX - b->len - 1) {
        b->oom = true;
        return UDB_ENOMEM;
    }
    size_t need = b->len + extra + 1;   /* room for a NUL terminator */
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;   /* most records and keys fit at once */
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    unsigned char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return UDB_ENOMEM;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void udb__buf_put(udb_buf *b, const void *p, size_t n)
{
    /* room for n bytes and the NUL: no call (msgpack packs a record in ~20 puts) */
    if ((b->oom || n >= b->cap - b->len) && udb__buf_reserve(b, n) != 0)
        return;
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = 0;
}

void udb__buf_byte(udb_buf *b, unsigned char c)
{
    udb__buf_put(b, &c, 1);
}

int udb__buf_printf(udb_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return UDB_ENOMEM;
    if ((size_t)n < sizeof small) {
        udb__buf_put(b, small, (size_t)n);
        return b->oom ? UDB_ENOMEM : 0;
    }
    if (udb__buf_reserve(b, (size_t)n) != 0)
        return UDB_ENOMEM;
    va_start(ap, fmt);
    vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int udb__buf_sbuffer_write(void *data, const char *buf, size_t len)
{
    udb_buf *b = data;
    udb__buf_put(b, buf, len);
    return b->oom ? -1 : 0;
}

struct udb_chunk {
    struct udb_chunk *next;
    size_t used, cap;
    max_align_t data[];
};

#define CHUNK_MIN 4096

void *udb__arena_alloc(udb_arena *a, size_t n)
{
    const size_t align = sizeof(max_align_t);
    if (n > SIZE_MAX - align)
        return NULL;
    size_t rn = (n + align - 1) / align * align;
    struct udb_chunk *c = a->head;
    if (!c || c->cap - c->used < rn) {
        size_t cap = rn > CHUNK_MIN ? rn : CHUNK_MIN;
        if (c && c->cap * 2 > cap && c->cap * 2 <= (64u << 20))
            cap = c->cap * 2;
        if (cap > SIZE_MAX - sizeof *c)
            return NULL;
        c = malloc(sizeof *c + cap);
        if (!c)
            return NULL;
        c->used = 0;
        c->cap = cap;
        c->next = a->head;
        a->head = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += rn;
    return p;
}

void *udb__arena_dup(udb_arena *a, const void *p, size_t n)
{
    void *q = udb__arena_alloc(a, n ? n : 1);
    if (q && n)
        memcpy(q, p, n);
    return q;
}

void udb__arena_free(udb_arena *a)
{
    struct udb_chunk *c = a->head;
    while (c) {
        struct udb_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
}
