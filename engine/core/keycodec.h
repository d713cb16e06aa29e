/*
 * keycodec.h -- order-preserving tuple keys (keycodec.c): the byte strings
 * LMDB sorts with memcmp in the same order as the values they encode.
 */
#ifndef UDB_KEYCODEC_H
#define UDB_KEYCODEC_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"

enum {
    UDB_TC_NIL = 0x00, UDB_TC_BYTES = 0x01, UDB_TC_STR = 0x02,
    UDB_TC_INT0 = 0x14, UDB_TC_FLOAT = 0x21, UDB_TC_FALSE = 0x26, UDB_TC_TRUE = 0x27,
};
typedef enum udb_tkind {
    UDB_TK_NIL, UDB_TK_BYTES, UDB_TK_STR, UDB_TK_INT, UDB_TK_UINT, UDB_TK_FLOAT, UDB_TK_BOOL
} udb_tkind;
/* One decoded tuple element.  Integers: UDB_TK_INT holds negatives, UDB_TK_UINT
 * non-negatives (the encoding does not keep the difference).  Strings and bytes
 * point into the decoder's scratch buffer (offset off, length n). */
typedef struct udb_telem {
    udb_tkind kind;
    union { int64_t i; uint64_t u; double f; bool b; struct { size_t off, n; } s; } v;
} udb_telem;

void udb__tk_nil(udb_buf *b);
void udb__tk_str(udb_buf *b, udb_tkind kind, const void *p, size_t n);
void udb__tk_int(udb_buf *b, int64_t v);
void udb__tk_uint(udb_buf *b, uint64_t v);
void udb__tk_float(udb_buf *b, double v);
void udb__tk_bool(udb_buf *b, bool v);
/* Encode one msgpack scalar (nil, bool, int, float, str, bin) as a tuple element. */
int  udb__tk_object(udb_buf *b, const msgpack_object *o);
/* Decode one element at *pos; string bytes are appended to scratch.
 * Returns 0, or UDB_ECORRUPT on malformed input. */
int  udb__tk_decode(udb_telem *out, udb_buf *scratch, const unsigned char **pos,
                    const unsigned char *end);
/* Skip one element.  0 or UDB_ECORRUPT. */
int  udb__tk_skip(const unsigned char **pos, const unsigned char *end);
/* Re-encode one tuple element as msgpack into pk.  0 or UDB_ECORRUPT. */
int  udb__tk_to_msgpack(msgpack_packer *pk, const unsigned char **pos,
                        const unsigned char *end);

/* Render tuple-encoded bytes as "(a, b)" for messages: strings cut at 80
 * bytes, bytes as their length, an undecodable rest as <damaged>. */
void udb__tk_render(udb_buf *b, const void *data, size_t len);

#endif
