/*
 * test_pgddl.c -- udb_pg_ddl: the PostgreSQL text of a schema through the
 * public API, its parts and options, and its refusals (names PostgreSQL
 * would truncate or share, bad arguments).  The text loading into a real
 * server is the `postgres` suite's (export_demo.sh, roundtrip.py, pg_unit).
 */
#include <string.h>

#include "testutil.h"

static const char schema[] =
    "{\"types\": {\"doc\": {\"key\": \"id\", \"fields\": {"
    "  \"id\": {\"type\": \"uint\", \"auto\": true}, \"title\": {\"type\": \"str\"},"
    "  \"kind\": {\"type\": \"enum\", \"values\": [\"a\", \"it's\"], \"required\": true},"
    "  \"body\": {\"type\": \"any\"}, \"w\": {\"type\": \"float\"}},"
    " \"unique\": {\"title_kind\": {\"fields\": [\"title\", \"kind\"], \"nulls\": "
    "   \"not_distinct\", \"where\": \"kind = 'a'\"}},"
    " \"indexes\": {\"by_w\": {\"fields\": [\"w\"]}}}}}";

static void t_tables_indexes_and_options(tu *t)
{
    udb_env *env = tu_open(t);
    udb_txn *txn;
    char *out = NULL;
    CHECK_OK(udb_begin(&txn, env, UDB_RDONLY));
    tu_txn = txn;
    CHECK_RC(udb_pg_ddl(&out, txn, NULL), UDB_ENOTFOUND);
    tu_abort(txn);
    CHECK_OK(udb_schema_apply(NULL, env, schema, strlen(schema), 0));
    CHECK_OK(udb_begin(&txn, env, UDB_RDONLY));
    tu_txn = txn;
    CHECK_OK(udb_pg_ddl(&out, txn, NULL));
    CHECK_HAS(out, "CREATE TABLE \"public\".\"doc\" (\n",
              "    \"id\" numeric(20,0) NOT NULL CHECK (\"id\" BETWEEN 0 AND "
              "18446744073709551615),\n",
              "    \"title\" text COLLATE \"C\",\n",
              "    \"kind\" text COLLATE \"C\" NOT NULL CHECK (\"kind\" IN ('a', 'it''s')),\n",
              "    \"body\" jsonb,\n", "    \"w\" double precision CHECK (\"w\" <> 'NaN'),\n",
              "    \"$raw\" bytea,\n", "    CONSTRAINT \"doc_pkey\" PRIMARY KEY (\"id\")\n);\n",
              "CREATE UNIQUE INDEX \"doc.title_kind\" ON \"public\".\"doc\" (\"title\", \"kind\") "
              "NULLS NOT DISTINCT WHERE (kind = 'a');\n",
              "CREATE INDEX \"doc.by_w\" ON \"public\".\"doc\" (\"w\");\n", NULL);
    /* the backend's form: no PostgreSQL sequence behind the auto key */
    CHECK(strstr(out, "SEQUENCE") == NULL && strstr(out, "nextval") == NULL);
    udb_free(out);
    const char *seqs[] = {"invoices", NULL};
    const char *bytea[] = {"doc.title", NULL};
    udb_pg_ddl_options o = {"My \"S\"", UDB_PG_DDL_TABLES | UDB_PG_DDL_SEQUENCES, seqs, bytea};
    CHECK_OK(udb_pg_ddl(&out, txn, &o));
    CHECK_HAS(out, "CREATE SEQUENCE \"My \"\"S\"\"\".\"doc.id\" AS bigint MINVALUE 0 START WITH 1;",
              "DEFAULT nextval('\"My \"\"S\"\"\".\"doc.id\"')",
              "CREATE SEQUENCE \"My \"\"S\"\"\".\"invoices\"", "\"title\" bytea,",
              "OWNED BY \"My \"\"S\"\"\".\"doc\".\"id\";", NULL);
    CHECK(strstr(out, "INDEX") == NULL);
    udb_free(out);
    o.flags = UDB_PG_DDL_INDEXES;
    CHECK_OK(udb_pg_ddl(&out, txn, &o));
    CHECK(strstr(out, "TABLE") == NULL && strstr(out, "CREATE UNIQUE INDEX") != NULL);
    udb_free(out);
    /* refusals */
    out = NULL;
    o.flags = 0x10;
    CHECK_RC(udb_pg_ddl(&out, txn, &o), UDB_EINVAL);
    o.flags = UDB_PG_DDL_TABLES;
    const char *notstr[] = {"doc.w", NULL};
    o.bytea_fields = notstr;
    CHECK_RC(udb_pg_ddl(&out, txn, &o), UDB_EINVAL);
    CHECK_HAS(udb_errmsg(txn), "\"doc.w\" is no str field", NULL);
    o.bytea_fields = NULL;
    const char *clash[] = {"doc_pkey", NULL};
    o.sequences = clash;
    CHECK_RC(udb_pg_ddl(&out, txn, &o), UDB_ESCHEMA);
    CHECK_HAS(udb_errmsg(txn), "sequence \"doc_pkey\" would have the same PostgreSQL name",
              "primary key of doc", NULL);
    o.sequences = NULL;
    o.pgschema = "s234567890123456789012345678901234567890123456789012345678901234";
    CHECK_RC(udb_pg_ddl(&out, txn, &o), UDB_ESCHEMA);
    CHECK_HAS(udb_errmsg(txn), "cannot be a PostgreSQL name (1 to 63 bytes)", NULL);
    CHECK(out == NULL);
    CHECK_RC(udb_pg_ddl(NULL, txn, NULL), UDB_EINVAL);
    tu_abort(txn);
}

/* A type name PostgreSQL can hold, but not with "_pkey" after it; a field of
 * 64 bytes (uniqdb's limit, one past PostgreSQL's). */
static void t_names_postgresql_would_truncate(tu *t)
{
    udb_env *env = tu_open(t);
    static const char *const bad[][2] = {
        {"{\"types\": {\"t2345678901234567890123456789012345678901234567890123456789\": "
         "{\"key\": \"k\", \"fields\": {\"k\": {\"type\": \"int\"}}}}}",
         "name too long for its primary key's PostgreSQL name"},
        {"{\"types\": {\"t\": {\"key\": \"f234567890123456789012345678901234567890123456789012"
         "345678901234\", \"fields\": {\"f23456789012345678901234567890123456789012345678901234"
         "5678901234\": {\"type\": \"int\"}}}}}", "cannot be a PostgreSQL name"},
    };
    for (size_t i = 0; i < 2; i++) {
        CHECK_OK(udb_schema_apply(NULL, env, bad[i][0], strlen(bad[i][0]), UDB_SCHEMA_DROP));
        udb_txn *txn;
        char *out = NULL;
        CHECK_OK(udb_begin(&txn, env, UDB_RDONLY));
        tu_txn = txn;
        CHECK_RC(udb_pg_ddl(&out, txn, NULL), UDB_ESCHEMA);
        CHECK_HAS(udb_errmsg(txn), bad[i][1], NULL);
        tu_abort(txn);
    }
}

TU_MAIN(TU_CASE(t_tables_indexes_and_options), TU_CASE(t_names_postgresql_would_truncate))
