/*
 * bookings_json.c -- records as JSON, no msgpack packing by hand: book
 * psychologists' slots from JSON text, show a double booking as JSON, free
 * a slot by cancelling, and read the bookings back as JSON.  The unique
 * index is partial: one *active* booking (pending or confirmed) per slot.
 *
 *   cc bookings_json.c $(pkg-config --cflags --libs uniqdb) -o bookings_json
 *   ./bookings_json bookings.db     (a new directory: run it on a fresh one)
 */
#include <stdio.h>
#include <string.h>

#include <uniqdb.h>

static const char SCHEMA[] =
    "{\"types\": {\"booking\": {\"key\": \"id\", \"fields\": {"
    "\"id\": {\"type\": \"uint\", \"auto\": true},"
    "\"psychologist\": {\"type\": \"str\", \"required\": true},"
    "\"date\": {\"type\": \"str\", \"required\": true},"
    "\"time\": {\"type\": \"str\", \"required\": true},"
    "\"status\": {\"type\": \"enum\", \"values\": [\"pending\", \"confirmed\", \"cancelled\"],"
    " \"required\": true},"
    "\"user\": {\"type\": \"str\"},"
    "\"fee\": {\"type\": \"float\"}},"
    "\"unique\": {\"active_slot\": {\"fields\": [\"psychologist\", \"date\", \"time\"],"
    " \"where\": \"status IN ('pending', 'confirmed')\"}}}}}";

/* Print label and the msgpack value v as JSON. */
static int print_json(const char *label, const void *v, size_t len)
{
    char *text;
    int rc = udb_msgpack_to_json(&text, NULL, v, len, 0);
    if (rc) {
        fprintf(stderr, "%s\n", udb_env_errmsg(NULL));
        return rc;
    }
    printf("%s%s\n", label, text);
    udb_free(text);
    return 0;
}

/* A conflict as JSON: the index, its fields, the values and the key of the
 * booking that holds them (names are the schema's own: plain identifiers). */
static void print_conflict(const udb_conflict *c)
{
    const udb_conflict_index *ci = &c->indexes[0];
    char *values = NULL, *holder = NULL;
    if (udb_msgpack_to_json(&values, NULL, ci->values.data, ci->values.size, 0) == 0 &&
        udb_msgpack_to_json(&holder, NULL, ci->existing_key.data, ci->existing_key.size, 0) ==
            0) {
        printf("conflict {\"type\":\"%s\",\"index\":\"%s\",\"fields\":[", c->type, ci->index);
        for (size_t i = 0; i < ci->nfields; i++)
            printf("%s\"%s\"", i ? "," : "", ci->fields[i]);
        printf("],\"values\":%s,\"existing_key\":%s}\n", values, holder);
    }
    udb_free(values);
    udb_free(holder);
}

/* Run one write, given as JSON: insert rec, or (key != NULL) merge rec into
 * the record with that key.  Prints the stored record or the conflict. */
static int write_json(udb_env *env, const char *key, const char *rec)
{
    void *mrec = NULL, *mkey = NULL;
    size_t nrec, nkey = 0;
    udb_results *res = NULL;
    int rc = udb_json_to_msgpack(&mrec, &nrec, rec, strlen(rec));
    if (rc == 0 && key)
        rc = udb_json_to_msgpack(&mkey, &nkey, key, strlen(key));
    if (rc) {
        fprintf(stderr, "%s\n", udb_env_errmsg(NULL)); /* bad JSON: where and why */
        goto out;
    }
    udb_op op = UDB_OP_INIT;
    op.kind = key ? UDB_OP_UPDATE : UDB_OP_INSERT;
    op.type = "booking";
    op.rec.data = mrec;
    op.rec.size = nrec;
    op.key.data = mkey;
    op.key.size = nkey;
    op.flags = key ? UDB_MERGE : 0;
    rc = udb_exec(&res, env, &op, 1); /* durable when it returns */
    const udb_result *r = udb_result_at(res, 0);
    if (rc == 0)
        rc = print_json(key ? "updated  " : "inserted ", r->record.data, r->record.size);
    else if (rc == UDB_ECONFLICT && r && r->conflict)
        print_conflict(r->conflict);
    else
        fprintf(stderr, "%s\n", udb_env_errmsg(env));
out:
    udb_results_free(res);
    udb_free(mrec);
    udb_free(mkey);
    return rc;
}

/* Every booking, in primary-key order, as JSON lines. */
static int list(udb_env *env)
{
    udb_txn *txn;
    udb_cursor *cur;
    int rc = udb_begin(&txn, env, UDB_RDONLY);
    if (rc)
        return rc;
    if ((rc = udb_scan(&cur, txn, "booking", NULL, NULL, 0)) == 0) {
        udb_val rec;
        while ((rc = udb_cursor_next(&rec, cur)) == 0)
            if ((rc = print_json("", rec.data, rec.size)) != 0)
                break;
        udb_cursor_close(cur);
    }
    udb_abort(txn);
    return rc == UDB_ENOTFOUND ? 0 : rc;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "bookings.db";
    udb_env *env;
    if (udb_open(&env, path, NULL)) {
        fprintf(stderr, "%s\n", udb_env_errmsg(NULL));
        return 1;
    }
    int rc = udb_schema_apply(NULL, env, SCHEMA, strlen(SCHEMA), UDB_SCHEMA_KEEP);
    if (rc) {
        fprintf(stderr, "%s\n", udb_env_errmsg(env));
        goto out;
    }
    if ((rc = write_json(env, NULL, "{\"psychologist\": \"p1\", \"date\": \"2026-01-15\","
                                    " \"time\": \"10:00\", \"status\": \"pending\","
                                    " \"user\": \"ana\", \"fee\": 80.5}")) != 0 ||
        (rc = write_json(env, NULL, "{\"psychologist\": \"p1\", \"date\": \"2026-01-15\","
                                    " \"time\": \"11:00\", \"status\": \"confirmed\","
                                    " \"user\": \"ben\"}")) != 0)
        goto out;
    /* the 10:00 slot again: refused, and the conflict says by whom */
    rc = write_json(env, NULL, "{\"psychologist\": \"p1\", \"date\": \"2026-01-15\","
                               " \"time\": \"10:00\", \"status\": \"pending\", \"user\": \"eve\"}");
    if (rc != UDB_ECONFLICT)
        goto out;
    /* cancelling booking 1 frees the slot: now eve gets it */
    if ((rc = write_json(env, "1", "{\"status\": \"cancelled\"}")) != 0 ||
        (rc = write_json(env, NULL, "{\"psychologist\": \"p1\", \"date\": \"2026-01-15\","
                                    " \"time\": \"10:00\", \"status\": \"pending\","
                                    " \"user\": \"eve\"}")) != 0)
        goto out;
    /* text that is not JSON: refused, the message says where and why */
    const char *bad = "{\"psychologist\": \"p1\", \"date\": }";
    void *mp;
    size_t n;
    if (udb_json_to_msgpack(&mp, &n, bad, strlen(bad)) != UDB_EBADRECORD) {
        rc = 1;
        goto out;
    }
    printf("refused  %s\n", udb_env_errmsg(NULL));
    printf("bookings:\n");
    rc = list(env);
out:
    udb_close(env);
    return rc ? 1 : 0;
}
