/*
 * predicate.h -- declared fields and the WHERE clauses of partial indexes
 * over them (predicate.c).  Below the schema: a predicate sees only the
 * field list of its type, never the type or the schema.
 */
#ifndef UDB_PREDICATE_H
#define UDB_PREDICATE_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define UDB_MAX_NAME 64     /* type, field and index names */

typedef enum udb_ftype {
    UDB_F_STR, UDB_F_INT, UDB_F_UINT, UDB_F_FLOAT, UDB_F_BOOL, UDB_F_BIN, UDB_F_ENUM, UDB_F_ANY
} udb_ftype;

typedef struct udb_field {
    char *name;
    size_t namelen;            /* strlen(name): records are matched against it */
    udb_ftype type;
    bool required, autoinc;
    size_t nvalues;            /* enum */
    char **values;
} udb_field;

/* The schema's spelling of a field type ("str", "int", ...). */
const char *udb__ftype_name(udb_ftype t);

typedef enum udb_pop { UDB_P_IN, UDB_P_EQ, UDB_P_NE, UDB_P_ISNULL, UDB_P_NOTNULL } udb_pop;

typedef struct udb_lit {
    enum { UDB_L_STR, UDB_L_INT, UDB_L_BOOL } kind;
    char *s; size_t n;
    int64_t i;
    bool b;
} udb_lit;

typedef struct udb_pterm {
    size_t field;              /* index into the type's fields */
    udb_pop op;
    size_t nlits;
    udb_lit *lits;
} udb_pterm;

typedef struct udb_pred {
    size_t nterms;
    udb_pterm *terms;
} udb_pred;

/* Parse a where-clause over the nfields declared fields.  UDB_ESCHEMA with
 * message on error. */
int  udb__pred_parse(udb_pred *out, const udb_field *fields, size_t nfields, const char *text,
                     udb_buf *msg);
void udb__pred_free(udb_pred *p);
/* Evaluate with SQL three-valued logic collapsed to "is it true". vals[i] is the
 * record's value of field i, or NULL when missing/nil. */
bool udb__pred_eval(const udb_pred *p, const msgpack_object *const *vals);
/* Print back as canonical text. */
void udb__pred_print(udb_buf *b, const udb_pred *p, const udb_field *fields);

#endif
