/*
 * fuzz_util.c -- helpers shared by the harnesses (see fuzz.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "fuzz.h"
#include "support.h"
#include "uniqdb.h"

/* A finding must replay in any process (replay.c), so nothing a harness
 * reaches may draw on per-process random state.  jansson seeds its hash
 * function from /dev/urandom when the first object is made: fix the seed
 * before anything runs.  (Scratch directory names come from mkdtemp, but
 * they have a fixed length and never reach a result.) */
__attribute__((constructor)) static void fuzz_fixed_seeds(void)
{
    json_object_seed(1);
}

void fuzz_fail(const char *file, int line, const char *fmt, ...)
{
    fprintf(stderr, "\n%s:%d: property broken: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    abort();
}

void fuzz_reader_init(fuzz_reader *r, const uint8_t *data, size_t size)
{
    r->p = data;
    r->end = data + size;
}

bool fuzz_more(const fuzz_reader *r)
{
    return r->p < r->end;
}

uint8_t fuzz_u8(fuzz_reader *r)
{
    return r->p < r->end ? *r->p++ : 0;
}

uint16_t fuzz_u16(fuzz_reader *r)
{
    uint16_t hi = fuzz_u8(r);
    return (uint16_t)(hi << 8 | fuzz_u8(r));
}

uint64_t fuzz_u64(fuzz_reader *r)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | fuzz_u8(r);
    return v;
}

size_t fuzz_bytes(fuzz_reader *r, const uint8_t **out, size_t max)
{
    size_t n = (size_t)(r->end - r->p);
    if (n > max)
        n = max;
    *out = r->p;
    r->p += n;
    return n;
}

static void print_problem(const char *problem, void *ctx)
{
    (void)ctx;
    fprintf(stderr, "  udb_check: %s\n", problem);
}

void fuzz_expect_check(udb_env *env, const char *when)
{
    size_t problems = 0;
    int rc = udb_check(&problems, env, print_problem, NULL);
    FUZZ_CHECK(rc == 0, "udb_check %s: %s (%zu problems): %s", when, udb_strerror(rc), problems,
               udb_env_errmsg(env));
}

/* ---- scratch directories ------------------------------------------------- */

static char scratch[4096];
static pid_t scratch_pid;

int fuzz_wipe_dir(const char *dir)
{
    return sup_remove_tree(dir, true);
}

static void scratch_cleanup(void)
{
    /* forked children (if any) must not remove the parent's directory */
    if (scratch[0] && getpid() == scratch_pid)
        sup_remove_tree(scratch, false);
}

const char *fuzz_scratch_dir(void)
{
    if (!scratch[0]) {
        if (sup_mkdtemp(scratch, sizeof scratch, "udbfuzz.") != 0)
            FUZZ_FAIL("mkdtemp in $TMPDIR: %s", strerror(errno));
        scratch_pid = getpid();
        atexit(scratch_cleanup);
    }
    return scratch;
}

udb_env *fuzz_open_scratch(const char *schema)
{
    udb_options o = UDB_OPTIONS_INIT;
    o.flags = UDB_NOSYNC;
    udb_env *env;
    int rc = udb_open(&env, fuzz_scratch_dir(), &o);
    FUZZ_CHECK(rc == 0, "udb_open: %s", udb_env_errmsg(NULL));
    rc = udb_schema_apply(NULL, env, schema, strlen(schema), 0);
    FUZZ_CHECK(rc == 0, "schema: %s", udb_env_errmsg(env));
    return env;
}
