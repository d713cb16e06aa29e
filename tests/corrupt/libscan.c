/*
 * libscan.c -- test helper for the corruption fuzzer: what an application
 * does with the library alone, in this process (no child process guards
 * it).  Opens DB read-only, scans every type by primary key and by every
 * index, then reads every sequence, and prints one line per scan:
 * "TYPE INDEX COUNT".  Exits 0, 6 on UDB_ECORRUPT, 1 on any other error,
 * with the message on stderr.  (Public API of every version: it also runs
 * against older builds, to show the fuzzer failing there.)
 *
 *   libscan DB TYPE:INDEX[,INDEX...] ...
 *
 * The types and indexes are given (the fuzzer knows its schema): a damaged
 * schema must not decide what is scanned.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uniqdb.h"

static int fail(int rc, const char *what, const char *msg)
{
    fprintf(stderr, "libscan: %s: %s\n", what, msg && *msg ? msg : udb_strerror(rc));
    return rc == UDB_ECORRUPT ? 6 : 1;
}

static int noop(const char *name, uint64_t value, void *ctx)
{
    (void)name, (void)value, (void)ctx;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: libscan DB TYPE:INDEX[,INDEX...] ...\n");
        return 2;
    }
    udb_options o = UDB_OPTIONS_INIT;
    o.flags |= UDB_RDONLY_ENV;
    udb_env *env = NULL;
    int rc = udb_open(&env, argv[1], &o);
    if (rc)
        return fail(rc, "open", udb_env_errmsg(NULL));
    udb_txn *txn = NULL;
    int ex = 0;
    if ((rc = udb_begin(&txn, env, UDB_RDONLY))) {
        ex = fail(rc, "begin", udb_env_errmsg(env));
        goto out;
    }
    for (int a = 2; a < argc && !ex; a++) {
        char spec[256];
        snprintf(spec, sizeof spec, "%s", argv[a]);
        char *colon = strchr(spec, ':');
        char *idx = colon ? colon + 1 : NULL;
        if (colon)
            *colon = '\0';
        /* NULL: the primary key, then each named index */
        char *names[16] = {NULL};
        size_t nn = 1;
        for (char *tok = idx ? strtok(idx, ",") : NULL; tok && nn < 16; tok = strtok(NULL, ","))
            names[nn++] = tok;
        for (size_t k = 0; k < nn && !ex; k++) {
            udb_cursor *c = NULL;
            if ((rc = udb_scan(&c, txn, spec, names[k], NULL, 0))) {
                ex = fail(rc, spec, udb_errmsg(txn));
                break;
            }
            unsigned long long n = 0;
            udb_val v;
            while ((rc = udb_cursor_next(&v, c)) == 0) {
                n++;
                volatile unsigned char sum = 0;   /* touch every byte handed out */
                for (size_t i = 0; i < v.size; i++)
                    sum ^= ((const unsigned char *)v.data)[i];
                (void)sum;
            }
            udb_cursor_close(c);
            printf("%s %s %llu\n", spec, names[k] ? names[k] : "-", n);
            if (rc != UDB_ENOTFOUND)
                ex = fail(rc, spec, udb_errmsg(txn));
        }
    }
    if (!ex && (rc = udb_seq_foreach(txn, noop, NULL)))
        ex = fail(rc, "sequences", udb_errmsg(txn));
out:
    udb_abort(txn);
    udb_close(env);
    return ex;
}
