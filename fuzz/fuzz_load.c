/*
 * fuzz_load.c -- arbitrary NDJSON through `uniqdb load` (tools/cli_dump.c) and
 * the JSON <-> msgpack conversion (engine/core/json.c, which the CLI uses through
 * tools/cli_json.c).
 *
 * Input: byte 0 holds options (bit 0: --or-get; bit 1: start from an empty
 * directory instead of a database holding tools/scenarios.json's schema);
 * the rest is the NDJSON file (and, read as msgpack, a stored value).
 * Properties:
 *  - msgpack that converts to JSON prints, reads back and converts back
 *    stably;
 *  - every line that converts to msgpack converts back to JSON, and that JSON
 *    converts to the very same msgpack bytes;
 *  - the library's text calls (udb_json_to_msgpack, udb_msgpack_to_json: what
 *    a C program uses) agree with the jansson-level path the tool takes,
 *    byte for byte and character for character;
 *  - `load` ends with a documented exit code (not a usage error), never
 *    crashes or leaks, and leaves a database that passes udb_check;
 *  - `dump` of that database, loaded into an empty one, dumps identically
 *    (the promise in cli_dump.c: dump | load | dump reproduces it).
 * The command functions are called as `uniqdb` would call them; stdout (the
 * dump, and --json problem objects) goes to files in the scratch directory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_common.h"
#include "cli_scenarios.h"
#include "fuzz.h"

static char db1[4200], db2[4200], input[4200], out1[4200], out2[4200];

static void check_internal_form_is_not_a_string(void);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = fuzz_scratch_dir();
    snprintf(db1, sizeof db1, "%s/db1", dir);
    snprintf(db2, sizeof db2, "%s/db2", dir);
    snprintf(input, sizeof input, "%s/input.ndjson", dir);
    snprintf(out1, sizeof out1, "%s/dump1.ndjson", dir);
    snprintf(out2, sizeof out2, "%s/dump2.ndjson", dir);
    /* the CLI's stdout: problem objects and dumps, never the terminal */
    FUZZ_CHECK(freopen("/dev/null", "w", stdout), "cannot redirect stdout");
    /* dump reads in this process, not in a guarding child (tools/cli_guard.c):
       the child's exit() would run libFuzzer's exit hook ("fuzz target
       exited"), and a fork per input is slow; what is fuzzed here is load's
       and dump's logic, not crash containment (suite corrupt tests that) */
    FUZZ_CHECK(setenv("UNIQDB_NO_GUARD", "1", 1) == 0, "setenv");
    check_internal_form_is_not_a_string();
    return 0;
}

static void write_file(const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    FUZZ_CHECK(f && fwrite(data, 1, size, f) == size && fclose(f) == 0, "cannot write %s", path);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    FUZZ_CHECK(f, "cannot read %s", path);
    long n;
    FUZZ_CHECK(fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0,
               "cannot size %s", path);
    char *p = malloc((size_t)n + 1);
    FUZZ_CHECK(p && fread(p, 1, (size_t)n, f) == (size_t)n, "cannot read %s", path);
    p[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return p;
}

/* Run a CLI command with stdout going to path. */
static int run_cli(cli_command_fn *fn, const char *stdout_path, int argc, char **argv)
{
    fflush(stdout);
    FUZZ_CHECK(freopen(stdout_path, "w", stdout), "cannot redirect stdout");
    cli_json_errors = 0;
    int ex = fn(argc, argv);
    fflush(stdout);
    FUZZ_CHECK(freopen("/dev/null", "w", stdout), "cannot redirect stdout");
    return ex;
}

/* JSON -> msgpack -> JSON -> msgpack gives the same bytes. */
static void check_conversion(const char *line, size_t len)
{
    char err[CLI_ERRLEN];
    json_t *v = cli_json_parse(line, len, err);
    if (!v) {
        void *mp = NULL;
        size_t n;
        FUZZ_CHECK(udb_json_to_msgpack(&mp, &n, line, len) != 0,
                   "udb_json_to_msgpack takes a line the tool refuses: %s", err);
        return;
    }
    msgpack_sbuffer a, b;
    msgpack_sbuffer_init(&a);
    msgpack_sbuffer_init(&b);
    if (cli_json_to_msgpack(&a, v, err) == 0) {
        msgpack_unpacked up;
        size_t off = 0;
        msgpack_unpacked_init(&up);
        msgpack_unpack_return r = msgpack_unpack_next(&up, a.data, a.size, &off);
        msgpack_unpacked_destroy(&up);
        if (r == MSGPACK_UNPACK_NOMEM_ERROR)
            goto out;   /* nested deeper than msgpack-c's 32 levels */
        FUZZ_CHECK(r == MSGPACK_UNPACK_SUCCESS && off == a.size,
                   "cli_json_to_msgpack wrote invalid msgpack");
        json_t *back = cli_msgpack_to_json(a.data, a.size, err);
        FUZZ_CHECK(back, "msgpack from JSON does not convert back: %s", err);
        char *text = cli_json_dumps(back, 0);
        FUZZ_CHECK(text, "cli_json_dumps failed");
        FUZZ_CHECK(cli_text_to_msgpack(&b, text, strlen(text), err) == 0,
                   "printed JSON does not parse back: %s\n  %s", err, text);
        FUZZ_CHECK(a.size == b.size && memcmp(a.data, b.data, a.size) == 0,
                   "JSON -> msgpack -> JSON -> msgpack changed the value\n  %.*s\n  %s",
                   (int)(len > 300 ? 300 : len), line, text);
        /* a C program's calls: the same bytes, the same text */
        void *mp = NULL;
        size_t n;
        char *text2 = NULL;
        FUZZ_CHECK(udb_json_to_msgpack(&mp, &n, line, len) == 0 && n == a.size &&
                       memcmp(mp, a.data, n) == 0,
                   "udb_json_to_msgpack disagrees with the tool\n  %.*s",
                   (int)(len > 300 ? 300 : len), line);
        FUZZ_CHECK(udb_msgpack_to_json(&text2, NULL, mp, n, 0) == 0 && strcmp(text, text2) == 0,
                   "udb_msgpack_to_json disagrees with the tool\n  %s", text);
        udb_free(mp);
        udb_free(text2);
        free(text);
        json_decref(back);
    }
out:
    msgpack_sbuffer_destroy(&a);
    msgpack_sbuffer_destroy(&b);
    json_decref(v);
}

/* msgpack -> JSON text -> msgpack (appended to out).  Returns the text
 * (malloc'd), or NULL if data does not convert to JSON. */
static char *through_json(msgpack_sbuffer *out, const void *data, size_t size)
{
    char err[CLI_ERRLEN];
    json_t *v = cli_msgpack_to_json(data, size, err);
    if (!v)
        return NULL;
    char *text = cli_json_dumps(v, 0);
    json_decref(v);
    FUZZ_CHECK(text, "cli_json_dumps failed on msgpack that converted");
    FUZZ_CHECK(cli_text_to_msgpack(out, text, strlen(text), err) == 0,
               "JSON printed from msgpack does not read back: %s\n  %s", err, text);
    return text;
}

/* msgpack bytes as stored (possibly damaged): whatever converts to JSON
 * prints, reads back, and from then on converts to the very same text and
 * bytes (the first pass may canonicalise: a NaN loses its payload, wide int
 * encodings shrink). */
static void check_msgpack(const uint8_t *data, size_t size)
{
    msgpack_sbuffer a, b;
    msgpack_sbuffer_init(&a);
    msgpack_sbuffer_init(&b);
    char *t1 = through_json(&a, data, size);
    if (t1 != NULL) {
        char *t2 = through_json(&b, a.data, a.size);
        FUZZ_CHECK(t2, "msgpack packed from JSON does not convert back\n  %s", t1);
        FUZZ_CHECK(strcmp(t1, t2) == 0 && a.size == b.size && memcmp(a.data, b.data, a.size) == 0,
                   "msgpack -> JSON -> msgpack is not stable\n  %s\n  %s", t1, t2);
        free(t2);
    }
    free(t1);
    msgpack_sbuffer_destroy(&a);
    msgpack_sbuffer_destroy(&b);
}

/* Regression for a random CI failure: the tool once carried big integers
 * and reals through jansson as strings tagged with a per-process random
 * marker, which libFuzzer learned and put into records.  Whatever the tool
 * now uses internally for a big integer, a record string holding those very
 * bytes (alone, as a key, with text around it) must round-trip exactly. */
static void check_internal_form_is_not_a_string(void)
{
    json_t *big = udb_jansson_u64(UINT64_MAX);
    const char *s = json_string_value(big);
    size_t n = json_string_length(big);
    FUZZ_CHECK(big, "udb_jansson_u64 failed");
    if (!s) { /* a number node: nothing a string could imitate */
        json_decref(big);
        return;
    }
    msgpack_sbuffer a, b;
    msgpack_sbuffer_init(&a);
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &a, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, s, n);
    msgpack_pack_str_with_body(&pk, s, n);
    msgpack_pack_str_with_body(&pk, "k", 1);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_str(&pk, n + 2);
    msgpack_pack_str_body(&pk, "x", 1);
    msgpack_pack_str_body(&pk, s, n);
    msgpack_pack_str_body(&pk, "x", 1);
    msgpack_pack_uint64(&pk, UINT64_MAX);
    char *text = through_json(&b, a.data, a.size);
    FUZZ_CHECK(text, "a string holding the tool's internal form of 2^64-1 does not convert");
    FUZZ_CHECK(a.size == b.size && memcmp(a.data, b.data, a.size) == 0,
               "a string holding the tool's internal form of 2^64-1 does not round-trip: %s", text);
    free(text);
    json_decref(big);
    msgpack_sbuffer_destroy(&a);
    msgpack_sbuffer_destroy(&b);
}

static void expect_check(const char *path)
{
    udb_env *env;
    int rc = udb_open(&env, path, NULL);
    FUZZ_CHECK(rc == 0, "reopening the loaded database: %s", udb_env_errmsg(NULL));
    fuzz_expect_check(env, "after load");
    udb_close(env);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t opts = data[0];
    data++, size--;

    check_msgpack(data, size);
    /* line by line conversion */
    for (size_t i = 0; i < size;) {
        const uint8_t *nl = memchr(data + i, '\n', size - i);
        size_t n = nl ? (size_t)(nl - (data + i)) : size - i;
        char *line = malloc(n + 1);
        FUZZ_CHECK(line, "out of memory");
        memcpy(line, data + i, n);
        line[n] = 0;
        check_conversion(line, n);
        free(line);
        i += n + 1;
    }

    FUZZ_CHECK(fuzz_wipe_dir(db1) == 0 && fuzz_wipe_dir(db2) == 0, "cannot wipe");
    rmdir(db1);
    rmdir(db2);
    if (!(opts & 2)) {
        udb_env *env;
        int rc = udb_open(&env, db1, NULL);
        FUZZ_CHECK(rc == 0, "udb_open: %s", udb_env_errmsg(NULL));
        rc = udb_schema_apply(NULL, env, CLI_SCENARIOS_JSON, strlen(CLI_SCENARIOS_JSON), 0);
        FUZZ_CHECK(rc == 0, "scenarios schema: %s", udb_env_errmsg(env));
        udb_close(env);
    }
    write_file(input, data, size);
    char a_load[] = "load", a_json[] = "--json", a_orget[] = "--or-get", a_dump[] = "dump";
    int ex;
    {
        char *argv[] = {a_load, a_json, db1, input, a_orget, NULL};
        int argc = opts & 1 ? 5 : 4;
        ex = run_cli(cli_cmd_load, "/dev/null", argc, argv);
    }
    FUZZ_CHECK(ex == CLI_OK || ex == CLI_EFAIL || ex == CLI_ECONFLICT || ex == CLI_ENOTFOUND ||
                   ex == CLI_EINVALID,
               "load exited with %d", ex);
    if (access(db1, F_OK) != 0)
        return 0;   /* refused before creating anything */
    expect_check(db1);

    /* dump | load | dump */
    {
        char *argv[] = {a_dump, db1, NULL};
        ex = run_cli(cli_cmd_dump, out1, 2, argv);
    }
    if (ex != CLI_OK)
        return 0;   /* e.g. no schema was ever applied */
    {
        char *argv[] = {a_load, db2, out1, NULL};
        ex = run_cli(cli_cmd_load, "/dev/null", 3, argv);
        size_t n1 = 0;
        char *d1 = read_file(out1, &n1);
        FUZZ_CHECK(ex == CLI_OK, "loading a dump failed with %d; the dump:\n%.2000s", ex, d1);
        free(d1);
    }
    expect_check(db2);
    {
        char *argv[] = {a_dump, db2, NULL};
        ex = run_cli(cli_cmd_dump, out2, 2, argv);
        FUZZ_CHECK(ex == CLI_OK, "dumping a loaded dump failed with %d", ex);
    }
    size_t n1, n2;
    char *d1 = read_file(out1, &n1), *d2 = read_file(out2, &n2);
    FUZZ_CHECK(n1 == n2 && memcmp(d1, d2, n1) == 0,
               "dump | load | dump differs\n--- first dump:\n%.3000s\n--- second dump:\n%.3000s",
               d1, d2);
    free(d1);
    free(d2);
    return 0;
}
