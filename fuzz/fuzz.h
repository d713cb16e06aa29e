/*
 * fuzz.h -- what the fuzz harnesses share: the libFuzzer entry points, a
 * failure macro that names the broken property, a byte reader that never
 * runs dry, and scratch directories for databases.
 *
 * A harness reports a broken property by printing it and calling abort():
 * libFuzzer saves the input as a crash, and the replay driver (replay.c)
 * dies with SIGABRT, failing `meson test --suite fuzz`.
 */
#ifndef UDB_FUZZ_H
#define UDB_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Print "file:line: property broken: <fmt>" to stderr and abort. */
void fuzz_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

#define FUZZ_FAIL(...) fuzz_fail(__FILE__, __LINE__, __VA_ARGS__)
#define FUZZ_CHECK(cond, ...)        \
    do {                             \
        if (!(cond))                 \
            FUZZ_FAIL(__VA_ARGS__);  \
    } while (0)

/* Consumes fuzz input; returns zeros once the bytes are used up, so a
 * harness never has to check for the end. */
typedef struct fuzz_reader {
    const uint8_t *p, *end;
} fuzz_reader;

void fuzz_reader_init(fuzz_reader *r, const uint8_t *data, size_t size);
bool fuzz_more(const fuzz_reader *r);
uint8_t fuzz_u8(fuzz_reader *r);
uint16_t fuzz_u16(fuzz_reader *r);
uint64_t fuzz_u64(fuzz_reader *r);
/* Up to max bytes (fewer at the end of the input); returns how many. */
size_t fuzz_bytes(fuzz_reader *r, const uint8_t **out, size_t max);

struct udb_env;
/* udb_check must pass; otherwise every problem is printed and we abort. */
void fuzz_expect_check(struct udb_env *env, const char *when);

/* A fresh directory under $TMPDIR (or /tmp) for this process, removed with
 * everything in it at exit.  Returns its path (static storage). */
const char *fuzz_scratch_dir(void);
/* Open a scratch database (fuzz_scratch_dir(), no syncs) with `schema`
 * applied; any failure aborts.  The env is the caller's to close. */
struct udb_env *fuzz_open_scratch(const char *schema);
/* Remove everything inside dir (not dir itself).  0 or -1. */
int fuzz_wipe_dir(const char *dir);

#endif
