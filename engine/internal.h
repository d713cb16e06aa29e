/*
 * internal.h -- shared declarations of the engine's files.  Nothing here is
 * public API; tests and fuzzers may use it to reach the pieces directly.
 *
 * LMDB layout of a database:
 *   "__meta"            "schema" -> canonical schema JSON, "gen" -> u64 (bumped per change)
 *   "__seq"             sequence name -> u64 big-endian
 *   "t:<type>"          tuple(pk) -> canonical msgpack record
 *   "u:<type>:<index>"  tuple(fields) -> tuple(pk)         (unique indexes)
 *   "i:<type>:<index>"  tuple(fields) ++ tuple(pk) -> ""   (non-unique indexes)
 */
#ifndef UDB_INTERNAL_H
#define UDB_INTERNAL_H

#include <lmdb.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "uniqdb.h"

#define UDB_MAX_NAME      64        /* type, field and index names */
#define UDB_MAX_IDX_FIELDS 8
#define UDB_MAX_DEPTH     16        /* msgpack nesting accepted in records */
#define UDB_MAX_RECORD    (4u << 20)   /* bytes of one record */
#define UDB_MAX_ELEMS     (1u << 20)   /* msgpack objects in one record */
#define UDB_MAX_SEQ_NAME  256
#define UDB_MAX_KEY       511       /* refined by mdb_env_get_maxkeysize */

/* ---- bytes ---- */
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

/* ---- growable byte buffer (arena.c) ---- */
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

/* txn-owned memory, released when the transaction ends */
typedef struct udb_arena {
    struct udb_chunk *head;
} udb_arena;
void *udb__arena_alloc(udb_arena *a, size_t n);
void *udb__arena_dup(udb_arena *a, const void *p, size_t n);
void  udb__arena_free(udb_arena *a);

/* ---- msgpack walking of untrusted bytes (mpack.c) ---- */
/* Check that buf holds exactly one well-formed msgpack object: every count is
 * backed by enough bytes, nesting <= max_depth, no trailing bytes.  On failure
 * returns UDB_EBADRECORD and writes a reason into why (may be NULL). */
int udb__mp_check(const void *buf, size_t len, unsigned max_depth, const char **why);
/* Decode bytes already checked by udb__mp_check.  *out lives in *zone's
 * unpacked; call msgpack_unpacked_destroy(up) to release. */
int udb__mp_unpack(msgpack_unpacked *up, const void *buf, size_t len);
/* Check + unpack in one step; error message (if any) in *why. */
int udb__mp_parse(msgpack_unpacked *up, const void *buf, size_t len, const char **why);
/* Decode a msgpack scalar (array=false) or an array of at most max scalars
 * (array=true) without allocating; strings point into buf.  UDB_EBADRECORD with
 * a reason in *why. */
int udb__mp_scalars(msgpack_object *out, size_t max, size_t *n, bool array, const void *buf,
                    size_t len, const char **why);
/* Render a msgpack object for a human message (strings bare). */
void udb__mp_render(udb_buf *b, const msgpack_object *o, bool quote_strings);
const char *udb__mp_typename(const msgpack_object *o);

/* ---- order-preserving tuple keys (keycodec.c) ---- */
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

/* ---- schema (schema.c, predicate.c) ---- */
typedef enum udb_ftype {
    UDB_F_STR, UDB_F_INT, UDB_F_UINT, UDB_F_FLOAT, UDB_F_BOOL, UDB_F_BIN, UDB_F_ENUM, UDB_F_ANY
} udb_ftype;

typedef struct udb_field {
    char *name;
    udb_ftype type;
    bool required, autoinc;
    size_t nvalues;            /* enum */
    char **values;
} udb_field;

typedef enum udb_pop { UDB_P_IN, UDB_P_EQ, UDB_P_NE, UDB_P_ISNULL, UDB_P_NOTNULL } udb_pop;

typedef struct udb_lit {
    enum { UDB_L_STR, UDB_L_INT, UDB_L_BOOL } kind;
    char *s; size_t n;
    int64_t i;
    bool b;
} udb_lit;

typedef struct udb_pterm {
    size_t field;              /* index into type->fields */
    udb_pop op;
    size_t nlits;
    udb_lit *lits;
} udb_pterm;

typedef struct udb_pred {
    size_t nterms;
    udb_pterm *terms;
} udb_pred;

typedef struct udb_index {
    char *name;
    bool unique, nulls_not_distinct, is_pk;
    size_t nfields;
    size_t fields[UDB_MAX_IDX_FIELDS];     /* indexes into type->fields */
    const char *fnames[UDB_MAX_IDX_FIELDS];/* borrowed from the fields */
    char *where;                           /* original text, NULL if none */
    udb_pred pred;
    MDB_dbi dbi;
} udb_index;

typedef struct udb_type {
    char *name;
    size_t key;                /* index into fields */
    bool extra;
    size_t nfields;
    udb_field *fields;
    size_t nunique, nplain;    /* unique indexes come first in idx[] */
    udb_index *idx;            /* idx[0] is the primary key pseudo-index */
    size_t nidx;
    char *seqname;             /* "<type>.<key>" when the key is auto */
    MDB_dbi dbi;
} udb_type;

typedef struct udb_schema {
    size_t ntypes;
    udb_type *types;
    char *json;                /* canonical text */
    size_t json_len;
    const char **type_names;
} udb_schema;

/* Parse schema JSON into *out (caller frees with udb__schema_free).  On error
 * returns UDB_ESCHEMA with a message in msg. */
int  udb__schema_parse(udb_schema **out, const char *json, size_t len, udb_buf *msg);
void udb__schema_free(udb_schema *s);
udb_type  *udb__schema_type(const udb_schema *s, const char *name);
udb_index *udb__type_index(const udb_type *t, const char *name); /* NULL name: pk */
const char *udb__ftype_name(udb_ftype t);

/* Parse a where-clause against type t.  UDB_ESCHEMA with message on error. */
int  udb__pred_parse(udb_pred *out, const udb_type *t, const char *text, udb_buf *msg);
void udb__pred_free(udb_pred *p);
/* Evaluate with SQL three-valued logic collapsed to "is it true". vals[i] is the
 * record's value of field i, or NULL when missing/nil. */
bool udb__pred_eval(const udb_pred *p, const msgpack_object *const *vals);
/* Print back as canonical text. */
void udb__pred_print(udb_buf *b, const udb_pred *p, const udb_type *t);

/* ---- records (record.c) ---- */
/* A record validated against its type: vals[i] is the value of declared
 * field i, or NULL if missing or nil (SQL's NULL); set[i] says whether the map
 * had the key at all (a nil in a merge patch removes a field).  Extra fields
 * (types with "extra": true) are kept in input order. */
typedef struct udb_rec {
    msgpack_unpacked up;       /* owns the objects */
    const msgpack_object **vals;
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

/* ---- index keys (index.c) ---- */
/* Encode the key of index ix for the field values vals.  Returns 0 and sets
 * *applies (false: the record is not in this index, e.g. NULL in a
 * nulls-distinct unique index or predicate not true). */
int udb__idx_key(udb_buf *key, bool *applies, const udb_type *t, const udb_index *ix,
                 const msgpack_object *const *vals);
/* The full LMDB key of ix's entry for a record: udb__idx_key, plus the
 * record's encoded primary key appended for non-unique indexes. */
int udb__idx_entry(udb_buf *key, bool *applies, const udb_type *t, const udb_index *ix,
                   const msgpack_object *const *vals, const void *pk, size_t pklen);
/* Encode a msgpack value (given by the caller, untrusted) as a tuple element
 * for field f.  UDB_EBADRECORD with message if its type does not fit. */
int udb__field_key(udb_buf *key, const udb_type *t, const udb_field *f,
                   const msgpack_object *o, udb_buf *msg);

/* ---- environment and transactions (env.c, txn.c) ---- */
struct udb_env {
    MDB_env *mdb;
    char *path;
    unsigned flags;
    size_t max_map;
    size_t keymax;
    MDB_dbi meta_dbi, seq_dbi;

    pthread_mutex_t lock;       /* active count, resize state, schema pointer */
    pthread_cond_t cond;
    pthread_mutex_t dbi_lock;   /* one mdb_dbi_open session at a time (LMDB rule) */
    unsigned active;            /* top-level transactions open in this process */
    bool resizing;
    bool want_grow;             /* a txn hit MDB_MAP_FULL ... */
    size_t grow_from;           /* ... at this map size */
    udb_schema *schema;         /* current; never freed before close */
    uint64_t schema_gen;
    udb_schema **retired;       /* older schemas still referenced by open txns */
    size_t nretired;

    struct udb_group *group;    /* group commit queue (txn.c) */
};

struct udb_txn {
    udb_env *env;
    MDB_txn *mdb;
    udb_schema *schema;
    bool rdonly;
    bool counted;              /* holds an env->active slot */
    bool map_full;             /* an operation hit MDB_MAP_FULL ... */
    size_t map_full_at;        /* ... with the map at this size */
    udb_txn *parent;           /* nested transactions (group commit) */
    udb_arena arena;
    udb_buf msg;               /* errmsg, NUL-terminated */
    /* conflict detail */
    bool has_conflict;
    udb_conflict conflict;
    udb_conflict_index *cidx;  /* conflict.indexes, grown as needed */
    size_t ccap;
    size_t (*coff)[2];         /* offsets of values / existing_key in cbuf */
    udb_buf cbuf;              /* owns conflict bytes */
};

/* Load the stored schema and open its handles if the generation moved. */
int  udb__env_reload_schema(udb_env *env);
/* Open (create) every handle of schema s inside write txn (dbi_lock held). */
int  udb__schema_open_dbis(udb_schema *s, MDB_txn *txn, unsigned flags);
/* Install s as the env's current schema (old one retired, freed at close). */
void udb__env_install_schema(udb_env *env, udb_schema *s, uint64_t gen);
int  udb__meta_gen(uint64_t *out, MDB_txn *txn, udb_env *env);
/* Grow the map to twice `from` (no-op if another thread already did);
 * waits until no transaction of this process is open. */
int  udb__grow(udb_env *env, size_t from);
/* Adopt a map size another process set (MDB_MAP_RESIZED). */
int  udb__adopt(udb_env *env);
size_t udb__mapsize(udb_env *env);
typedef struct udb_group udb_group;
udb_group *udb__group_new(void);
void udb__group_free(udb_group *g);
int  udb__txn_begin_raw(udb_txn **out, udb_env *env, unsigned flags, udb_txn *parent);
/* End a transaction: commit (commit=true) or abort, then free it. */
int  udb__txn_end(udb_txn *txn, bool commit);

/* ---- errors (error.c) ---- */
int  udb__err(udb_txn *txn, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int  udb__env_err(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int  udb__mdb_err(udb_txn *txn, int rc, const char *what);
void udb__clear(udb_txn *txn);
/* Fill the conflict list: call begin, then add once per violated index. */
void udb__conflict_begin(udb_txn *txn, const udb_type *t);
int  udb__conflict_add(udb_txn *txn, const udb_type *t, const udb_index *ix,
                       const msgpack_object *const *vals, const void *pk, size_t pklen);
int  udb__conflict_finish(udb_txn *txn);  /* renders errmsg; returns UDB_ECONFLICT */

/* ---- sequences (seq.c) ---- */
int udb__seq_peek(uint64_t *out, udb_txn *txn, const char *name); /* 0 if never used */
int udb__seq_store(udb_txn *txn, const char *name, uint64_t v);

/* ---- walking a whole LMDB database (scan.c) ---- */
/* Call fn for every entry of dbi in key order; a non-zero return stops the
 * walk and is returned.  The entry is valid only during the call. */
int udb__each(MDB_txn *txn, MDB_dbi dbi, int (*fn)(void *ctx, const MDB_val *k, const MDB_val *v),
              void *ctx);

/* ---- operations shared between files (ops.c) ---- */
int udb__txn_type(udb_type **out, udb_txn *txn, const char *type, bool write);
/* Build the index DB name into b. */
void udb__dbname(udb_buf *b, const char *kind, const udb_type *t, const udb_index *ix);
/* Copy a value into txn memory if the txn writes (LMDB pointers move then). */
int udb__out(udb_val *out, udb_txn *txn, const MDB_val *v);

#endif
