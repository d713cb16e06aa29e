/*
 * fuzz_pgurl.c -- the PostgreSQL URL of a database (engine/pg/conn.c):
 * udb__pg_url_parse takes uniqdb's schema=NAME out of a libpq URI.
 *
 * Properties, for the input as a C string (up to its first NUL):
 *   1. it is accepted exactly when udb__pg_is_url says it is a URL and its
 *      schema parameter (if any) is one, well %-escaped, NUL-free, 1 to 63
 *      bytes; a refusal is UDB_EINVAL with a message and leaves nothing;
 *   2. what libpq gets is the input minus that one parameter: the part
 *      before '?' unchanged, the other parameters in order, no schema left;
 *   3. the schema survives a round trip: %-escaping it again and appending
 *      it to the libpq part parses back to the same two strings.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "pgconn.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

/* The non-empty parameters of s after '?' other than schema[=...], '&'-joined. */
static char *others(const char *s)
{
    const char *q = strchr(s, '?');
    char *out = calloc(1, strlen(s) + 1);
    size_t o = 0;
    for (const char *p = q ? q + 1 : NULL; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        bool ours = n >= 6 && strncmp(p, "schema", 6) == 0 && (n == 6 || p[6] == '=');
        if (n && !ours) {
            if (o)
                out[o++] = '&';
            memcpy(out + o, p, n);
            o += n;
        }
        p = amp ? amp + 1 : NULL;
    }
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *url = malloc(size + 1);
    memcpy(url, data, size);
    url[size] = '\0';
    udb_pgurl u;
    udb_buf msg = {0};
    int rc = udb__pg_url_parse(&u, url, &msg);
    FUZZ_CHECK(rc == 0 || rc == UDB_EINVAL, "rc %d", rc);
    if (rc) {
        FUZZ_CHECK(u.conninfo == NULL && u.schema == NULL, "a refusal left a result");
        FUZZ_CHECK(msg.len > 0, "a refusal without a message");
        goto out;
    }
    FUZZ_CHECK(udb__pg_is_url(url), "accepted a non-URL");
    size_t sn = strlen(u.schema);
    FUZZ_CHECK(sn >= 1 && sn <= 63, "schema of %zu bytes", sn);
    const char *q = strchr(url, '?');
    size_t base = q ? (size_t)(q - url) : strlen(url);
    FUZZ_CHECK(strncmp(u.conninfo, url, base) == 0 && (u.conninfo[base] == '\0' ||
                                                       u.conninfo[base] == '?'),
               "the part before '?' changed: %s -> %s", url, u.conninfo);
    char *want = others(url), *got = others(u.conninfo);
    FUZZ_CHECK(strcmp(want, got) == 0, "other parameters: %s, libpq gets %s", want, got);
    /* libpq's part has no schema parameter left (nor empty ones) */
    const char *lq = u.conninfo[base] == '?' ? u.conninfo + base + 1 : "";
    FUZZ_CHECK(strcmp(got, lq) == 0, "schema left in %s", u.conninfo);
    free(want);
    free(got);
    /* 3. round trip */
    char *again = malloc(strlen(u.conninfo) + 3 * sn + 16);
    size_t n = (size_t)sprintf(again, "%s%cschema=", u.conninfo,
                               strchr(u.conninfo, '?') ? '&' : '?');
    for (size_t i = 0; i < sn; i++)
        n += (size_t)sprintf(again + n, "%%%02X", (unsigned char)u.schema[i]);
    udb_pgurl v;
    msg.len = 0;
    rc = udb__pg_url_parse(&v, again, &msg);
    FUZZ_CHECK(rc == 0, "round trip of %s refused: %s", again, msg.p ? (char *)msg.p : "");
    FUZZ_CHECK(strcmp(v.conninfo, u.conninfo) == 0 && strcmp(v.schema, u.schema) == 0,
               "round trip changed %s / %s", u.conninfo, u.schema);
    udb__pg_url_free(&v);
    free(again);
out:
    udb__pg_url_free(&u);
    udb__buf_free(&msg);
    free(url);
    return 0;
}
