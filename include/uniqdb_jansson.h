/*
 * uniqdb_jansson.h -- records as jansson trees, for programs that build or
 * read JSON with jansson (https://github.com/akheron/jansson) themselves: the
 * `uniqdb` tool frames records in its own output this way.  Optional: it
 * needs <jansson.h> (pkg-config --cflags jansson; link -ljansson if the
 * program calls jansson itself).  udb_json_to_msgpack() and
 * udb_msgpack_to_json() of uniqdb.h are these calls with text at both ends;
 * the forms, the errors and their messages (udb_env_errmsg(NULL), per
 * thread) are theirs.
 *
 * One thing jansson cannot hold: an integer above INT64_MAX (jansson's
 * json_int_t is 64-bit signed).  In a tree from these calls such a number
 * is a json_t string that is not UTF-8 -- the byte 0xFF, then its decimal
 * digits -- which no JSON text and no msgpack str can produce, so it is
 * never mistaken for a string.  Read numbers with udb_jansson_to_u64() and
 * strings with udb_jansson_text() (json_string_value() would show the
 * digits); make one with udb_jansson_u64(); print trees with
 * udb_jansson_dumps() (jansson's json_dumps() refuses such a string, and
 * writes reals with 17 digits where this writes the shortest exact form).
 */
#ifndef UNIQDB_JANSSON_H
#define UNIQDB_JANSSON_H

#include <jansson.h>

#include "uniqdb.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Parse JSON text json[0..len) into a tree (*out: the caller's reference,
 * json_decref() it): any JSON value; integers up to 2^64-1 exact (see
 * above), reals checked against float64's range; duplicate object keys are
 * refused.  The markers ({"$bin": ...}) stay as written: they take effect in
 * udb_jansson_to_msgpack().  Errors: as udb_json_to_msgpack(). */
UDB_API int udb_jansson_parse(json_t **out, const char *json, size_t len);

/* Pack a tree (from udb_jansson_parse(), udb_jansson_from_msgpack(), or
 * built with jansson and udb_jansson_u64()) as one msgpack value: *out
 * (malloc'd: udb_free()), *out_len.  Reals become float64, the markers their
 * msgpack values.  Errors: as udb_json_to_msgpack() (the message names the
 * field), UDB_EINVAL (a NULL argument). */
UDB_API int udb_jansson_to_msgpack(void **out, size_t *out_len, const json_t *v);

/* One msgpack value mp[0..len) as a tree (*out: the caller's reference).
 * Errors: as udb_msgpack_to_json(). */
UDB_API int udb_jansson_from_msgpack(json_t **out, const void *mp, size_t len);

/* Write a tree as JSON text, object members in their order: *out
 * NUL-terminated, malloc'd (udb_free()), *out_len (may be NULL) its length.
 * flags: 0 (compact, one line) or UDB_JSON_INDENT(n).  Errors: UDB_EINVAL
 * (NULL out or v, unknown flags), UDB_ENOMEM. */
UDB_API int udb_jansson_dumps(char **out, size_t *out_len, const json_t *v, unsigned flags);

/* A JSON number for any uint64 (a jansson integer up to INT64_MAX, the
 * string form above beyond); NULL out of memory.  A new reference. */
UDB_API json_t *udb_jansson_u64(uint64_t v);

/* *out = the non-negative integer v (a jansson integer >= 0, or the form
 * above).  Errors: UDB_EINVAL (v is not one, or NULL arguments). */
UDB_API int udb_jansson_to_u64(uint64_t *out, const json_t *v);

/* The text of a JSON string; NULL if v is not a string, or is a number
 * above INT64_MAX in the form above. */
UDB_API const char *udb_jansson_text(const json_t *v);

#ifdef __cplusplus
}
#endif
#endif /* UNIQDB_JANSSON_H */
