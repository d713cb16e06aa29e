/*
 * record.h -- records validated against their type, canonical packing and
 * merge patches (record.c).
 */
#ifndef UDB_RECORD_H
#define UDB_RECORD_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "schema.h"

/* A record validated against its type: vals[i] is the value of declared
 * field i, or NULL if missing or nil (SQL's NULL); set[i] says whether the map
 * had the key at all (a nil in a merge patch removes a field).  Extra fields
 * (types with "extra": true) are kept in input order. */
typedef struct udb_rec {
    msgpack_unpacked up;       /* owns the objects */
    const msgpack_object **vals;   /* one allocation with set and extra */
    bool *set;
    size_t nextra;
    const msgpack_object_kv **extra;
} udb_rec;

void udb__rec_init(udb_rec *r);
void udb__rec_free(udb_rec *r);
/* Parse and validate rec (untrusted) against t.  partial: a merge patch, so
 * required fields may be missing.  On error: UDB_EBADRECORD, message in msg. */
int  udb__rec_parse(udb_rec *r, const udb_type *t, const void *buf, size_t len,
                    bool partial, udb_buf *msg);
/* Check required fields; the auto key may be missing. */
int  udb__rec_required(const udb_rec *r, const udb_type *t, udb_buf *msg);
/* Pack canonically: declared fields in schema order, then extras; nils
 * dropped, float fields as float64.  key (may be NULL) replaces the key field. */
int  udb__rec_pack(udb_buf *out, const udb_rec *r, const udb_type *t, const msgpack_object *key);
/* Merge map patch into map base (both trusted objects): patch values replace,
 * nil removes, new keys are appended.  Writes a msgpack map to out.
 * skip (may be NULL) names a key of patch to ignore. */
int  udb__rec_merge(udb_buf *out, const msgpack_object *base, const msgpack_object *patch,
                    const char *skip);
/* Check one value against declared field f: 0 or UDB_EBADRECORD with message. */
int  udb__check_value(const udb_type *t, const udb_field *f, const msgpack_object *o,
                      udb_buf *msg);
/* A float field's value as double (ints are accepted for float fields). */
double udb__as_double(const msgpack_object *o);

#endif
