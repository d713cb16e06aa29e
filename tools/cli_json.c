/*
 * cli_json.c -- JSON for the command-line tool: the library's conversion
 * (uniqdb_jansson.h, engine/core/json.c: every form, the exact writer), with its
 * messages copied into the tool's buffers, and printing a line.  The tool
 * frames records in jansson trees of its own (dump lines, problem objects,
 * {"created": ..., "record": ...}) and prints them with the library's writer.
 */
#include "cli_common.h"

#include <stdlib.h>
#include <string.h>

/* The library's message of the failure rc into err. */
static void take_msg(char err[CLI_ERRLEN], int rc)
{
    const char *m = udb_env_errmsg(NULL);
    snprintf(err, CLI_ERRLEN, "%s", rc == UDB_ENOMEM || !m[0] ? "out of memory" : m);
}

json_t *cli_json_parse(const char *text, size_t len, char err[CLI_ERRLEN])
{
    json_t *v = NULL;
    int rc = udb_jansson_parse(&v, text, len);
    if (rc)
        take_msg(err, rc);
    return v;
}

/* Append the msgpack bytes p[0..n) (udb_free'd here) to sb. */
static int append(msgpack_sbuffer *sb, void *p, size_t n, char err[CLI_ERRLEN])
{
    int rc = msgpack_sbuffer_write(sb, p, n);
    udb_free(p);
    if (rc)
        snprintf(err, CLI_ERRLEN, "out of memory");
    return rc ? -1 : 0;
}

int cli_json_to_msgpack(msgpack_sbuffer *sb, const json_t *v, char err[CLI_ERRLEN])
{
    void *p;
    size_t n;
    int rc = udb_jansson_to_msgpack(&p, &n, v);
    if (rc) {
        take_msg(err, rc);
        return -1;
    }
    return append(sb, p, n, err);
}

int cli_text_to_msgpack(msgpack_sbuffer *sb, const char *text, size_t len, char err[CLI_ERRLEN])
{
    void *p;
    size_t n;
    int rc = udb_json_to_msgpack(&p, &n, text, len);
    if (rc) {
        take_msg(err, rc);
        return -1;
    }
    return append(sb, p, n, err);
}

json_t *cli_msgpack_to_json(const void *data, size_t len, char err[CLI_ERRLEN])
{
    json_t *v = NULL;
    int rc = udb_jansson_from_msgpack(&v, data, len);
    if (rc)
        take_msg(err, rc);
    return v;
}

char *cli_json_dumps(const json_t *v, unsigned flags)
{
    char *text = NULL;
    return v && udb_jansson_dumps(&text, NULL, v, flags) == 0 ? text : NULL;
}

int cli_print_json(const json_t *v)
{
    char *text = cli_json_dumps(v, 0);
    if (!text) {
        fprintf(stderr, "uniqdb: out of memory printing JSON\n");
        return CLI_EFAIL;
    }
    int rc = cli_put_line(text);
    udb_free(text);
    return rc;
}
