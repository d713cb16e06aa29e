/*
 * hello.c -- the smallest complete uniqdb program: open a database, give it a
 * schema, and get-or-create one record on a compound unique index (scenario
 * S1).  Run it twice: the first run creates the record, the second gets it.
 *
 *   cc hello.c $(pkg-config --cflags --libs uniqdb) -o hello && ./hello demo.db
 */
#include <stdio.h>
#include <string.h>

#include <msgpack.h>
#include <uniqdb.h>

static const char SCHEMA[] =
    "{\"types\": {\"schedule_workflow\": {\"key\": \"id\", \"fields\": {"
    "\"id\": {\"type\": \"uint\", \"auto\": true},"
    "\"scheduleId\": {\"type\": \"str\", \"required\": true},"
    "\"doctorName\": {\"type\": \"str\", \"required\": true}},"
    "\"unique\": {\"schedule_doctor\": {\"fields\": [\"scheduleId\", \"doctorName\"]}}}}}";

static void pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "hello.db";
    udb_env *env;
    int rc = udb_open(&env, path, NULL);
    if (rc) {
        fprintf(stderr, "%s\n", udb_env_errmsg(NULL));
        return 1;
    }
    /* keeps what is there; adds what is missing */
    rc = udb_schema_apply(NULL, env, SCHEMA, strlen(SCHEMA), UDB_SCHEMA_KEEP);
    if (rc) {
        fprintf(stderr, "%s\n", udb_env_errmsg(env));
        udb_close(env);
        return 1;
    }
    /* the record, as a msgpack map */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    pack_str(&pk, "scheduleId");
    pack_str(&pk, "s1");
    pack_str(&pk, "doctorName");
    pack_str(&pk, "House");
    /* one atomic get-or-create, durable when it returns */
    udb_op op = UDB_OP_INIT;
    op.kind = UDB_OP_INSERT_OR_GET;
    op.type = "schedule_workflow";
    op.index = "schedule_doctor";
    op.rec.data = sb.data;
    op.rec.size = sb.size;
    udb_results *res;
    rc = udb_exec(&res, env, &op, 1);
    if (rc == 0)
        printf("%s the workflow of (s1, House)\n",
               udb_result_at(res, 0)->created ? "created" : "found");
    else
        fprintf(stderr, "%s\n", udb_env_errmsg(env));
    udb_results_free(res);
    msgpack_sbuffer_destroy(&sb);
    udb_close(env);
    return rc ? 1 : 0;
}
