/*
 * mpack.h -- msgpack bytes from outside, checked before msgpack-c decodes
 * them (mpack.c).
 */
#ifndef UDB_MPACK_H
#define UDB_MPACK_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

#define UDB_MAX_DEPTH     16           /* msgpack nesting accepted in records */
#define UDB_MAX_RECORD    (4u << 20)   /* bytes of one record */
#define UDB_MAX_ELEMS     (1u << 20)   /* msgpack objects in one record */

/* Check that buf holds exactly one well-formed msgpack object: every count is
 * backed by enough bytes, nesting <= max_depth, no trailing bytes.  On failure
 * returns UDB_EBADRECORD and writes a reason into why (may be NULL). */
int udb__mp_check(const void *buf, size_t len, unsigned max_depth, const char **why);
/* Decode bytes already checked by udb__mp_check into up (what up held before
 * is let go of); the objects live until udb__mp_done(up). */
int udb__mp_unpack(msgpack_unpacked *up, const void *buf, size_t len);
/* Let go of what udb__mp_unpack or udb__mp_parse put in up (its zone is kept
 * for the next unpack); up is then empty, as msgpack_unpacked_init leaves it.
 * (msgpack_unpacked_destroy would free the zone instead: also correct.) */
void udb__mp_done(msgpack_unpacked *up);
/* Check + unpack in one step; error message (if any) in *why.  A map of
 * scalars is decoded in one pass of our own (no msgpack-c call), into the
 * same objects. */
int udb__mp_parse(msgpack_unpacked *up, const void *buf, size_t len, const char **why);
/* Decode a msgpack scalar (array=false) or an array of at most max scalars
 * (array=true) without allocating; strings point into buf.  UDB_EBADRECORD with
 * a reason in *why. */
int udb__mp_scalars(msgpack_object *out, size_t max, size_t *n, bool array, const void *buf,
                    size_t len, const char **why);
/* Append o to b as msgpack_pack_object(pk, *o) would, byte for byte (pk's
 * writer must append to b: udb__buf_sbuffer_write).  Scalars -- nil, bool,
 * integers, str, bin -- are written here in one append each instead of a
 * writer call per header and body; anything else goes through pk. */
void udb__mp_pack(msgpack_packer *pk, udb_buf *b, const msgpack_object *o);
/* Append the msgpack str header of an n-byte string to b, then its bytes. */
void udb__mp_pack_str(udb_buf *b, const void *s, size_t n);
/* Render a msgpack object for a human message (strings bare). */
void udb__mp_render(udb_buf *b, const msgpack_object *o, bool quote_strings);
const char *udb__mp_typename(const msgpack_object *o);

#endif
