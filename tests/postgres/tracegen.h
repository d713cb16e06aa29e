/*
 * tracegen.h -- random operations on a schema built to collide, shared by the
 * PostgreSQL trace tests: trace.c (uniqdb against its `export --postgres`
 * copy, in SQL) and pg_diff.c (the public API on LMDB against the same API on
 * PostgreSQL).
 *
 * The schema's types have unique indexes that are easy to collide in
 * (compound, partial, NULLS NOT DISTINCT, "collate": "nocase", primary keys of
 * both key kinds); values come from small domains, so that records collide.
 * An operation is a record (or patch, or key) over a type's fields, each
 * field absent, nil or a value held as text (its SQL text, also how it is
 * packed).  Everything is reproducible from the seed (xorshift64*).
 */
#ifndef UDB_TRACEGEN_H
#define UDB_TRACEGEN_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

/* The types trace.c exports ("select", "Mixed"), as the body of a schema's
 * "types" object; keys are given explicitly (an auto key would differ as soon
 * as a failed insert consumed a PostgreSQL sequence value). */
#define TRACEGEN_TYPES                                                                       \
    " \"select\": {\"key\": \"key\", \"fields\": {"                                          \
    "   \"key\": {\"type\": \"int\"}, \"a\": {\"type\": \"int\"}, \"b\": {\"type\": \"str\"}," \
    "   \"User\": {\"type\": \"str\"},"                                                      \
    "   \"status\": {\"type\": \"enum\", \"values\": [\"active\", \"archived\", \"deleted\"]," \
    "              \"required\": true},"                                                     \
    "   \"flag\": {\"type\": \"bool\"}, \"n\": {\"type\": \"uint\"}},"                        \
    "  \"unique\": {"                                                                        \
    "   \"ab\": {\"fields\": [\"a\", \"b\"]},"                                               \
    "   \"active_user\": {\"fields\": [\"User\"],"                                           \
    "                   \"where\": \"status IN ('active') AND flag = true\"},"               \
    "   \"bn\": {\"fields\": [\"b\", \"n\"], \"nulls\": \"not_distinct\"}},"                 \
    "  \"indexes\": {\"by_status\": {\"fields\": [\"status\", \"a\"]}}},"                    \
    " \"Mixed\": {\"key\": \"id\", \"fields\": {"                                            \
    "   \"id\": {\"type\": \"str\"}, \"x\": {\"type\": \"str\"}, \"y\": {\"type\": \"int\"}," \
    "   \"e\": {\"type\": \"str\"}},"                                                        \
    "  \"unique\": {"                                                                        \
    "   \"x_nd\": {\"fields\": [\"x\"], \"nulls\": \"not_distinct\"},"                       \
    "   \"y_partial\": {\"fields\": [\"y\"], \"where\": \"x IS NOT NULL AND y != 0\"},"      \
    "   \"e_nc\": {\"fields\": [{\"field\": \"e\", \"collate\": \"nocase\"}]}}}"

/* A third type only pg_diff.c uses (the SQL side of trace.c has no msgpack):
 * an auto key, a field of type any, a float, extra fields ("zz" is one: not
 * declared), a partial nocase unique index and a compound NULLS NOT DISTINCT
 * one over a float and an any-free field. */
#define TRACEGEN_DOC_TYPE                                                                    \
    " \"doc\": {\"key\": \"id\", \"fields\": {"                                              \
    "   \"id\": {\"type\": \"uint\", \"auto\": true}, \"slug\": {\"type\": \"str\"},"         \
    "   \"owner\": {\"type\": \"int\"}, \"body\": {\"type\": \"any\"},"                       \
    "   \"score\": {\"type\": \"float\"},"                                                   \
    "   \"tag\": {\"type\": \"enum\", \"values\": [\"pub\", \"draft\"]}},"                    \
    "  \"unique\": {"                                                                        \
    "   \"slug\": {\"fields\": [{\"field\": \"slug\", \"collate\": \"nocase\"}],"            \
    "            \"where\": \"tag = 'pub'\"},"                                               \
    "   \"owner_score\": {\"fields\": [\"owner\", \"score\"], \"nulls\": \"not_distinct\"}}," \
    "  \"indexes\": {\"by_owner\": {\"fields\": [\"owner\"]}},"                              \
    "  \"extra\": true}"

enum tg_kind { K_INT, K_UINT, K_STR, K_BOOL, K_FLOAT, K_ANY };

typedef struct fdef {
    const char *name;
    enum tg_kind kind;
} fdef;

typedef struct tdef {
    const char *name;
    const fdef *fields; /* fields[0] is the key */
    size_t nfields;
    int auto_key;       /* the key may be left to the type's sequence */
} tdef;

/* tg_types[0] "select", [1] "Mixed" (trace.c's), [2] "doc" (TRACEGEN_DOC_TYPE). */
extern const tdef tg_types[3];

#define MAXF 8

/* One value: absent (not in the record), null (present as nil: removes the
 * field in a merge), or text (its SQL text; also how it is packed; for a
 * field of type any: JSON). */
typedef struct val {
    enum { V_ABSENT, V_NULL, V_TEXT } st;
    char text[40];
} val;

typedef struct op {
    enum { OP_INSERT, OP_REPLACE, OP_MERGE, OP_DELETE } kind;
    const tdef *t;
    val v[MAXF]; /* v[0]: the key (absent only for an insert with an auto key) */
} op;

extern const char *const tg_op_names[4];

/* The generator's state; seeded by the caller. */
extern uint64_t tg_rng;
uint64_t tg_next(void);
unsigned tg_pick(unsigned n);

/* A value for field f of t from a small domain, so that records collide;
 * bad != 0 allows values the schema refuses. */
void tg_random_value(val *v, const tdef *t, size_t f, int bad);
/* A random insert, replace, merge or delete on one of the first ntypes of
 * tg_types (trace.c: 2); with allow_bad, values the schema refuses too. */
void tg_random_op(op *o, int allow_bad, size_t ntypes);

/* Field f's value as msgpack (a value of type any: its JSON packed).  0, or
 * -1 if the JSON cannot be packed (a generator bug). */
int tg_pack_val(msgpack_packer *pk, const fdef *f, const val *v);
/* The record (for insert: with its key when given; for update: without) into
 * rec and the key into key (nothing when absent). */
int tg_pack_op(msgpack_sbuffer *rec, msgpack_sbuffer *key, const op *o);
/* "insert select key=3 { a=1 b=x }" */
void tg_describe(char *out, size_t cap, const op *o);

/* Run argv (a program and its arguments, NULL-terminated) and wait: its exit
 * status, or -1 if it could not run or was killed. */
int tg_run_cmd(char *const argv[]);

#endif
