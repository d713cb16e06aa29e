/*
 * verify.c -- one crash state, checked the way an application restarting
 * after the power cut would meet it: in a fresh process (the checker never
 * opens a database itself, and a damaged one may crash its reader), with no
 * lock file.  The state is "corrupt" if it does not open, fails udb_check,
 * or cannot take one more write and commit and pass the check again after
 * reopening (some damage only shows when freed pages are reused); it has
 * "lost" writes if any ACK given before the crash is missing or not byte for
 * byte what was stored.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "powerloss.h"

#define POST_ID ((uint64_t)0xFFFF << 24)

static void say(pl_verdict *v, int verdict, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(pl_verdict *v, int verdict, const char *fmt, ...)
{
    if (verdict > v->verdict || !v->msg[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(v->msg, sizeof v->msg, fmt, ap);
        va_end(ap);
    }
    if (verdict > v->verdict)
        v->verdict = verdict;
}

static void report(const char *problem, void *payload)
{
    pl_verdict *v = payload;
    say(v, V_CORRUPT, "udb_check: %s", problem);
}

/* Every ACK given before the crash, against a read snapshot. */
static void check_acks(pl_verdict *v, udb_env *env, const pl_log *L, size_t nacks)
{
    udb_txn *txn;
    int rc = udb_begin(&txn, env, UDB_RDONLY);
    if (rc) {
        say(v, V_CORRUPT, "udb_begin: %s", udb_strerror(rc));
        return;
    }
    for (size_t i = 0; i < nacks; i++) {
        const pl_ack *a = &L->acks[i];
        if (a->kind == ACK_PUT) {
            uint32_t kl;
            memcpy(&kl, a->data, 4);
            const unsigned char *key = a->data + 4, *want = key + kl;
            size_t wlen = a->len - 4 - kl;
            udb_val got;
            rc = udb_get(&got, txn, PL_TYPE, key, kl);
            if (rc == UDB_ENOTFOUND) {
                v->lost++;
                say(v, V_LOST, "ACKed record %zu of %zu (seq %llu) is missing", i + 1, nacks,
                    (unsigned long long)a->seq);
            } else if (rc) {
                say(v, V_CORRUPT, "udb_get of ACKed record %zu: %s", i + 1, udb_strerror(rc));
            } else if (got.size != wlen || memcmp(got.data, want, wlen) != 0) {
                v->lost++;
                say(v, V_LOST, "ACKed record %zu (seq %llu) has other bytes (%zu, want %zu)",
                    i + 1, (unsigned long long)a->seq, got.size, wlen);
            } else {
                v->acks_verified++;
            }
        } else if (a->kind == ACK_SCHEMA) {
            const char *json;
            char ix[REC_NAME], want[REC_NAME + 4];
            snprintf(ix, sizeof ix, "%.*s", (int)a->len, (const char *)a->data);
            snprintf(want, sizeof want, "\"%s\"", ix);
            udb_cursor *cur = NULL;
            if (udb_txn_schema_json(&json, NULL, txn) != 0 || !strstr(json, want)) {
                v->lost++;
                say(v, V_LOST, "ACKed schema change (index %s, seq %llu) is missing", want,
                    (unsigned long long)a->seq);
            } else if ((rc = udb_scan(&cur, txn, PL_TYPE, ix, NULL, 0))) {
                say(v, V_CORRUPT, "scan of the new index: %s", udb_strerror(rc));
            } else {
                udb_val rec;
                while ((rc = udb_cursor_next(&rec, cur)) == 0)
                    ;
                if (rc != UDB_ENOTFOUND)
                    say(v, V_CORRUPT, "scan of the new index: %s", udb_strerror(rc));
                else
                    v->acks_verified++;
            }
            udb_cursor_close(cur);
        }
    }
    udb_abort(txn);
}

static int post_fn(udb_txn *txn, void *ctx)
{
    size_t len;
    unsigned char *rec = pl_pack_item(&len, POST_ID, 0xFFFF, 0, 100, NULL);
    int rc = rec ? udb_insert(NULL, txn, PL_TYPE, rec, len) : UDB_ENOMEM;
    free(rec);
    return rc;
}

/* Open, check, verify the ACKs; write and commit one more record; check and
 * verify again in the same environment (the new commit reuses pages the crash
 * left free: some damage shows only then). */
static void check_db(pl_verdict *v, const char *dir, const pl_log *L, size_t nacks)
{
    udb_options o = UDB_OPTIONS_INIT;
    o.flags = UDB_NOSYNC;   /* the check's own write need not be durable */
    udb_env *env;
    int rc = udb_open(&env, dir, &o);
    if (rc) {
        say(v, V_CORRUPT, "udb_open after the crash: %s", udb_env_errmsg(NULL));
        return;
    }
    for (int pass = 0; pass < 2 && v->verdict != V_CORRUPT; pass++) {
        size_t problems = 0;
        rc = udb_check(&problems, env, report, v);
        if (rc && !problems)
            say(v, V_CORRUPT, "udb_check: %s", udb_strerror(rc));
        uint64_t verified = v->acks_verified;
        check_acks(v, env, L, nacks);
        if (pass == 0) {
            if ((rc = udb_write(env, post_fn, NULL)))
                say(v, V_CORRUPT, "one more write after the crash: %s", udb_env_errmsg(env));
            continue;
        }
        v->acks_verified = verified;   /* counted once per state */
        udb_txn *txn;
        unsigned char key[9] = {0xcf};
        for (int i = 0; i < 8; i++)
            key[1 + i] = (unsigned char)(POST_ID >> (56 - 8 * i));
        udb_val got;
        if ((rc = udb_begin(&txn, env, UDB_RDONLY)) == 0) {
            rc = udb_get(&got, txn, PL_TYPE, key, sizeof key);
            udb_abort(txn);
        }
        if (rc)
            say(v, V_CORRUPT, "the write after the crash cannot be read back: %s",
                udb_strerror(rc));
    }
    udb_close(env);
}

void pl_verify(pl_verdict *out, const char *dir, const pl_log *L, size_t nacks)
{
    char errpath[4200];
    int pfd[2];
    memset(out, 0, sizeof *out);
    snprintf(errpath, sizeof errpath, "%s.stderr", dir);
    if (pipe(pfd) != 0) {
        snprintf(out->msg, sizeof out->msg, "pipe: %s", strerror(errno));
        out->verdict = V_CORRUPT;
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        /* a damaged database may crash LMDB: keep its noise out of the report */
        int efd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (efd >= 0) {
            dup2(efd, 2);
            close(efd);
        }
        alarm(120);
        pl_verdict v = {0};
        check_db(&v, dir, L, nacks);
        ssize_t w = write(pfd[1], &v, sizeof v);
        _exit(w == (ssize_t)sizeof v ? 0 : 3);
    }
    close(pfd[1]);
    pl_verdict v;
    size_t got = 0;
    while (pid > 0 && got < sizeof v) {
        ssize_t r = read(pfd[0], (char *)&v + got, sizeof v - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(pfd[0]);
    int st = 0;
    while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (pid > 0 && got == sizeof v && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        *out = v;
        return;
    }
    char first[200] = "";
    FILE *f = fopen(errpath, "r");
    if (f) {
        while (fgets(first, sizeof first, f) && (first[0] == '\n' || first[0] == '='))
            ;
        fclose(f);
        first[strcspn(first, "\n")] = '\0';
    }
    out->verdict = V_CORRUPT;
    if (pid < 0)
        snprintf(out->msg, sizeof out->msg, "fork: %s", strerror(errno));
    else if (WIFSIGNALED(st))
        snprintf(out->msg, sizeof out->msg, "the checking process died of signal %d: %s",
                 WTERMSIG(st), first);
    else
        snprintf(out->msg, sizeof out->msg, "the checking process exited %d: %s",
                 WIFEXITED(st) ? WEXITSTATUS(st) : -1, first);
}
