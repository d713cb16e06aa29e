/*
 * ddl_api.c -- udb_pg_ddl: ddl.c's text for the schema a transaction sees,
 * the public door through which `uniqdb export --postgres` (a client of the
 * public API only) reaches the one schema-to-PostgreSQL mapping.
 */
#include <stdlib.h>
#include <string.h>

#include "pgddl.h"
#include "txn.h"

int udb_pg_ddl(char **out, udb_txn *txn, const udb_pg_ddl_options *opts)
{
    static const udb_pg_ddl_options defaults = UDB_PG_DDL_OPTIONS_INIT;
    if (!txn)
        return UDB_EINVAL;
    if (!opts)
        opts = &defaults;
    if (!out)
        return udb__err(txn, UDB_EINVAL, "udb_pg_ddl: out is required");
    if (opts->flags & ~(UDB_PG_DDL_TABLES | UDB_PG_DDL_INDEXES | UDB_PG_DDL_SEQUENCES))
        return udb__err(txn, UDB_EINVAL, "udb_pg_ddl: flags 0x%x: UDB_PG_DDL_TABLES, "
                        "UDB_PG_DDL_INDEXES and UDB_PG_DDL_SEQUENCES are the only flags",
                        opts->flags);
    const udb_schema *s = udb__txn_schema(txn);
    if (!s)
        return udb__err(txn, UDB_ENOTFOUND, "udb_pg_ddl: no schema applied yet");
    udb_pgddl o = {.pgschema = opts->pgschema ? opts->pgschema : "public",
                   .sequences = (opts->flags & UDB_PG_DDL_SEQUENCES) != 0,
                   .seqs = opts->sequences, .bytea_fields = opts->bytea_fields};
    for (const char *const *p = o.bytea_fields; p && *p; p++) {
        const char *dot = strchr(*p, '.');
        size_t tn = dot ? (size_t)(dot - *p) : 0;
        bool found = false;
        for (size_t i = 0; i < s->ntypes && dot && !found; i++) {
            const udb_type *t = &s->types[i];
            for (size_t f = 0; f < t->nfields && !found; f++)
                found = strlen(t->name) == tn && strncmp(t->name, *p, tn) == 0 &&
                        t->fields[f].type == UDB_F_STR && strcmp(t->fields[f].name, dot + 1) == 0;
        }
        if (!found)
            return udb__err(txn, UDB_EINVAL, "udb_pg_ddl: bytea field \"%s\" is no str field "
                            "(\"type.field\")", *p);
    }
    udb_buf b = {0}, msg = {0};
    unsigned parts = (opts->flags & UDB_PG_DDL_TABLES ? UDB_PGDDL_TABLES : 0) |
                     (opts->flags & UDB_PG_DDL_INDEXES ? UDB_PGDDL_INDEXES : 0);
    int rc = udb__pg_ddl(&b, s, &o, parts, &msg);
    udb__buf_byte(&b, '\0');
    if (!rc && b.oom)
        rc = UDB_ENOMEM;
    if (rc) {
        if (msg.len && !msg.oom)
            udb__err(txn, rc, "%.*s", (int)msg.len, (const char *)msg.p);
        else
            udb__err(txn, rc, "udb_pg_ddl: %s", udb_strerror(rc));
        udb__buf_free(&b);
    } else {
        *out = (char *)b.p;
    }
    udb__buf_free(&msg);
    return rc;
}
