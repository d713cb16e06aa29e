/*
 * verify.c -- one crash state, checked the way an application restarting
 * after the power cut would meet it: in a fresh process (the checker never
 * opens a database itself, and a damaged one may crash its reader), with no
 * lock file.  The state is "corrupt" if it does not open, fails udb_check,
 * or cannot take one more write and commit and pass the check again after
 * reopening (some damage only shows when freed pages are reused); it has
 * "lost" writes if any ACK given before the crash is missing or not byte for
 * byte what was stored.  In the exec workloads a state also has a "partial"
 * unit if any udb_exec unit -- ACKed or not -- is there in part, or was
 * applied more than once (the shape of the units is in powerloss.h).
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

#include <msgpack.h>

#include "powerloss.h"
#include "support.h"

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

/* The fields of a stored item the unit checks read: 0, or -1 if the bytes
 * are not such a record (id is required; a missing writer is -1, seq 0). */
static int item_fields(uint64_t *id, int64_t *writer, uint64_t *seq, char *name, size_t cap,
                       const void *p, size_t len)
{
    *writer = -1;
    *seq = 0;
    if (name)
        name[0] = '\0';
    msgpack_unpacked u;
    if (sup_unpack(&u, p, len) != 0)
        return -1;
    const msgpack_object *v = sup_map_get(&u.data, "id");
    int rc = v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? 0 : -1;
    if (rc == 0)
        *id = v->via.u64;
    if ((v = sup_map_get(&u.data, "writer")) && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        *writer = v->via.u64 <= INT64_MAX ? (int64_t)v->via.u64 : -1;
    if ((v = sup_map_get(&u.data, "seq")) && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        *seq = v->via.u64;
    if (name && (v = sup_map_get(&u.data, "name")) && v->type == MSGPACK_OBJECT_STR)
        snprintf(name, cap, "%.*s", (int)v->via.str.size, v->via.str.ptr);
    msgpack_unpacked_destroy(&u);
    return rc;
}

static int seq_value(uint64_t *out, udb_txn *txn, unsigned writer)
{
    char name[32];
    snprintf(name, sizeof name, PL_SEQ_PREFIX "%u", writer);
    int rc = udb_seq_get(out, txn, name);
    if (rc == UDB_ENOTFOUND) {
        *out = 0;
        rc = 0;
    }
    return rc;
}

/* The record under u_name for this name must be rec, and the only one. */
static void check_by_name(pl_verdict *v, udb_txn *txn, const char *name,
                          const unsigned char *rec, size_t len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_str_with_body(&pk, name, strlen(name));
    udb_cursor *cur = NULL;
    udb_val got;
    int rc = udb_scan(&cur, txn, PL_TYPE, "u_name", sb.data, sb.size);
    if (!rc && (rc = udb_cursor_next(&got, cur)) == 0 &&
        (got.size != len || memcmp(got.data, rec, len) != 0))
        say(v, V_CORRUPT, "unique index u_name gives another record for \"%s\"", name);
    else if (rc)
        say(v, V_CORRUPT, "unique index u_name has no record for \"%s\": %s", name,
            udb_strerror(rc));
    else if ((rc = udb_cursor_next(&got, cur)) != UDB_ENOTFOUND)
        say(v, V_CORRUPT, "unique index u_name has two records for \"%s\" (%s)", name,
            udb_strerror(rc));
    udb_cursor_close(cur);
    msgpack_sbuffer_destroy(&sb);
}

/* An ACKed unit: the value its seq_next took is taken, and every record it
 * wrote or read is there, byte for byte, and found through u_name. */
static void check_unit_ack(pl_verdict *v, udb_txn *txn, const pl_ack *a, size_t i, size_t nacks)
{
    uint32_t head[2], count;
    uint64_t val, have;
    const unsigned char *p = a->data, *end = a->data + a->len;
    if (a->len < 20) {
        say(v, V_CORRUPT, "ACK %zu: a unit ACK of %zu bytes", i + 1, a->len);
        return;
    }
    memcpy(head, p, 8);
    memcpy(&val, p + 8, 8);
    memcpy(&count, p + 16, 4);
    p += 20;
    int rc = seq_value(&have, txn, head[0]);
    if (rc) {
        say(v, V_CORRUPT, "udb_seq_get: %s", udb_strerror(rc));
        return;
    }
    int bad = have < val;
    if (bad)
        say(v, V_LOST, "ACKed unit %u of writer %u (ACK %zu of %zu, seq %llu) is missing: its "
            "sequence is at %llu, the unit took %llu", head[1], head[0], i + 1, nacks,
            (unsigned long long)a->seq, (unsigned long long)have, (unsigned long long)val);
    for (uint32_t r = 0; r < count && !bad; r++) {
        uint32_t l[2];
        if ((size_t)(end - p) < sizeof l) {
            say(v, V_CORRUPT, "ACK %zu: truncated", i + 1);
            return;
        }
        memcpy(l, p, sizeof l);
        p += sizeof l;
        if ((size_t)(end - p) < (size_t)l[0] + l[1]) {
            say(v, V_CORRUPT, "ACK %zu: truncated", i + 1);
            return;
        }
        const unsigned char *key = p, *want = p + l[0];
        p += (size_t)l[0] + l[1];
        udb_val got;
        rc = udb_get(&got, txn, PL_TYPE, key, l[0]);
        if (rc == UDB_ENOTFOUND || (!rc && (got.size != l[1] ||
                                            memcmp(got.data, want, l[1]) != 0))) {
            bad = 1;
            say(v, V_LOST, "ACKed unit %u of writer %u (ACK %zu of %zu, seq %llu): its record "
                "%u %s", head[1], head[0], i + 1, nacks, (unsigned long long)a->seq, r,
                rc ? "is missing" : "has other bytes");
        } else if (rc) {
            say(v, V_CORRUPT, "udb_get of ACKed unit %u of writer %u: %s", head[1], head[0],
                udb_strerror(rc));
            return;
        } else {
            uint64_t id, seq;
            int64_t w;
            char name[64];
            if (item_fields(&id, &w, &seq, name, sizeof name, want, l[1]) || !name[0])
                say(v, V_CORRUPT, "ACK %zu: record %u is not an item", i + 1, r);
            else
                check_by_name(v, txn, name, want, l[1]);
        }
    }
    if (bad)
        v->lost++;
    else
        v->acks_verified++;
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
        } else if (a->kind == ACK_UNIT) {
            check_unit_ack(v, txn, a, i, nacks);
        }
    }
    udb_abort(txn);
}

/* ---- every unit, ACKed or not ---- */
#define MAXW 256          /* writer ids of the exec workloads are below */
#define MAXU (1u << 20)   /* ... and so are their unit numbers */

typedef struct found {
    uint32_t w, nid;      /* writer, id & 0xFFFFFF */
    uint64_t seq;
} found;

static int by_writer_nid(const void *a, const void *b)
{
    const found *x = a, *y = b;
    if (x->w != y->w)
        return x->w < y->w ? -1 : 1;
    return x->nid < y->nid ? -1 : x->nid > y->nid;
}

static int seq_cb(const char *name, uint64_t value, void *payload)
{
    uint64_t *S = payload;
    size_t pl = strlen(PL_SEQ_PREFIX);
    if (strncmp(name, PL_SEQ_PREFIX, pl) == 0) {
        char *end;
        unsigned long w = strtoul(name + pl, &end, 10);
        if (!*end && w < MAXW)
            S[w] = value;
    }
    return 0;
}

/* Writer w's units: 0..S-1 whole (each record with the value its unit's
 * seq_next took, u+1), nothing of any later one. */
static void check_writer(pl_verdict *v, unsigned w, uint64_t S, const found *f, size_t n)
{
    if (S > MAXU) {
        say(v, V_CORRUPT, "writer %u's sequence is at %llu", w, (unsigned long long)S);
        return;
    }
    size_t j = 0;
    uint64_t top = n ? f[n - 1].nid / 2 + 1 : 0;
    if (top < S)
        top = S;
    for (uint64_t u = 0; u < top; u++) {
        const found *r[2] = {NULL, NULL};
        while (j < n && f[j].nid / 2 == u) {
            r[f[j].nid % 2] = &f[j];
            j++;
        }
        int applied = u < S, want1 = applied && pl_unit_creates2(u);
        int ok = applied ? r[0] && r[0]->seq == u + 1 &&
                               (want1 ? r[1] && r[1]->seq == u + 1 : !r[1])
                         : !r[0] && !r[1];
        if (ok) {
            v->units += applied;
            continue;
        }
        v->partial++;
        char d[2][40];
        for (int k = 0; k < 2; k++) {
            if (r[k])
                snprintf(d[k], sizeof d[k], "with seq %llu", (unsigned long long)r[k]->seq);
            else
                snprintf(d[k], sizeof d[k], "missing");
        }
        say(v, V_PARTIAL, "unit %llu of writer %u is not whole: its sequence is at %llu; "
            "record %llu %s, record %llu %s (%s)", (unsigned long long)u, w,
            (unsigned long long)S, (unsigned long long)2 * u, d[0],
            (unsigned long long)2 * u + 1, d[1],
            !applied ? "a unit applied in part" : pl_unit_creates2(u) ? "both expected"
                                                                     : "only the first");
    }
}

/* Every unit of the exec workloads, ACKed or not: whole or absent. */
static void check_units(pl_verdict *v, udb_env *env)
{
    udb_txn *txn;
    int rc = udb_begin(&txn, env, UDB_RDONLY);
    if (rc) {
        say(v, V_CORRUPT, "udb_begin: %s", udb_strerror(rc));
        return;
    }
    uint64_t S[MAXW] = {0};
    found *f = NULL;
    size_t n = 0, cap = 0;
    udb_cursor *cur = NULL;
    if ((rc = udb_seq_foreach(txn, seq_cb, S))) {
        say(v, V_CORRUPT, "udb_seq_foreach: %s", udb_strerror(rc));
        goto out;
    }
    if ((rc = udb_scan(&cur, txn, PL_TYPE, NULL, NULL, 0))) {
        say(v, V_CORRUPT, "udb_scan: %s", udb_strerror(rc));
        goto out;
    }
    udb_val rec;
    while ((rc = udb_cursor_next(&rec, cur)) == 0) {
        uint64_t id, seq;
        int64_t w;
        if (item_fields(&id, &w, &seq, NULL, 0, rec.data, rec.size)) {
            say(v, V_CORRUPT, "a stored record is not an item");
            goto out;
        }
        if (w == 0xFFFF)
            continue;   /* the checker's own */
        if (w <= 0 || w >= MAXW || (uint64_t)w != id >> 24) {
            v->partial++;
            say(v, V_PARTIAL, "record %llu belongs to no unit (writer %lld)",
                (unsigned long long)id, (long long)w);
            continue;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            found *g = realloc(f, cap * sizeof *f);
            if (!g) {
                say(v, V_CORRUPT, "out of memory");
                goto out;
            }
            f = g;
        }
        f[n++] = (found){(uint32_t)w, (uint32_t)(id & 0xFFFFFF), seq};
    }
    if (rc != UDB_ENOTFOUND) {
        say(v, V_CORRUPT, "udb_cursor_next: %s", udb_strerror(rc));
        goto out;
    }
    qsort(f, n, sizeof *f, by_writer_nid);
    size_t j = 0;
    for (unsigned w = 1; w < MAXW; w++) {
        size_t k = j;
        while (k < n && f[k].w == w)
            k++;
        if (S[w] || k > j)
            check_writer(v, w, S[w], f + j, k - j);
        j = k;
    }
out:
    udb_cursor_close(cur);
    free(f);
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
static void check_db(pl_verdict *v, const char *dir, const pl_log *L, size_t nacks, bool units)
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
        if (pass == 0 && units)
            check_units(v, env);
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

void pl_verify(pl_verdict *out, const char *dir, const pl_log *L, size_t nacks, bool units)
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
        check_db(&v, dir, L, nacks, units);
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
