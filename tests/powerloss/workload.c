/*
 * workload.c -- the writers whose system calls the power-loss suite records.
 *
 * Each workload runs in a process of its own (and its children), on a
 * database whose schema was applied before recording started.  A write is
 * ACKed -- logged with the record bytes udb_insert() stored -- the moment the
 * API call that makes it durable returned success: udb_commit() for direct
 * transactions, udb_write() for group commit, udb_schema_apply() for a schema
 * change.  That is the promise the checker holds the engine to.
 *
 * Keys are unique per writer (writer << 24 | n), so every ACKed record must
 * be found under its key with exactly its bytes, whatever else survived.
 *
 * The exec workloads write only through udb_exec() units (their shape is in
 * powerloss.h, PL_UNIT_GET): a unit is ACKed, with everything it wrote and
 * read, when udb_exec() returned 0.  In exec-procs the units of one process
 * run in the batches of another process's leader (shipped through the sync
 * file); the workload fails if none did.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <msgpack.h>

#include "env.h"          /* udb__env_ship: how many units were shipped */
#include "powerloss.h"
#include "ship.h"
#include "support.h"

#define SCHEMA_HEAD                                                                        \
    "{\"types\": {\"item\": {\"key\": \"id\", \"fields\": {"                             \
    "\"id\": {\"type\": \"uint\"}, \"name\": {\"type\": \"str\", \"required\": true}, "     \
    "\"writer\": {\"type\": \"int\"}, \"n\": {\"type\": \"int\"}, "                        \
    "\"tag\": {\"type\": \"str\"}, \"pad\": {\"type\": \"bin\"}, "                         \
    "\"seq\": {\"type\": \"uint\"}}, "                                                     \
    "\"unique\": {\"u_name\": {\"fields\": [\"name\"]}"
#define SCHEMA_TAIL "}, \"indexes\": {\"by_writer\": {\"fields\": [\"writer\", \"n\"]}}}}}"

const char pl_schema[] = SCHEMA_HEAD SCHEMA_TAIL;
/* the schema change: a unique index built over the records already there */
static const char schema_tag[] =
    SCHEMA_HEAD ", \"u_tag\": {\"fields\": [\"tag\"]}" SCHEMA_TAIL;

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

unsigned char *pl_pack_item(size_t *len, uint64_t id, int writer, int n, size_t pad,
                            const char *tag)
{
    return pl_pack_item_seq(len, id, writer, n, pad, tag, 0);
}

unsigned char *pl_pack_item_seq(size_t *len, uint64_t id, int writer, int n, size_t pad,
                                const char *tag, uint64_t seq)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5 + (tag != NULL) + (seq != 0));
    pack_str(&pk, "id");
    msgpack_pack_uint64(&pk, id);
    pack_str(&pk, "name");
    char name[48];
    snprintf(name, sizeof name, "w%d-n%d", writer, n);
    pack_str(&pk, name);
    pack_str(&pk, "writer");
    msgpack_pack_int(&pk, writer);
    pack_str(&pk, "n");
    msgpack_pack_int(&pk, n);
    if (tag) {
        pack_str(&pk, "tag");
        pack_str(&pk, tag);
    }
    if (seq) {
        pack_str(&pk, "seq");
        msgpack_pack_uint64(&pk, seq);
    }
    pack_str(&pk, "pad");
    unsigned char *bytes = malloc(pad ? pad : 1);
    for (size_t i = 0; bytes && i < pad; i++)
        bytes[i] = (unsigned char)(id * 131 + i * 7);
    msgpack_pack_bin(&pk, pad);
    msgpack_pack_bin_body(&pk, bytes, pad);
    free(bytes);
    *len = sb.size;
    return (unsigned char *)msgpack_sbuffer_release(&sb);
}

/* ---- one writer ---- */
enum {
    W_WRITE,                     /* udb_write */
    W_DIRECT,                    /* udb_begin/udb_commit */
    W_EXEC,                      /* udb_exec units */
};

typedef struct writer {
    const char *dir;
    const pl_case *c;
    udb_env *env;
    int id, count, scale;
    size_t pad_min, pad_span;
    bool tagged;
    int mode;                    /* W_WRITE, W_DIRECT, W_EXEC */
    /* schema workload: signal after `announce` records */
    pthread_mutex_t *mu;
    pthread_cond_t *cv;
    int *progress;
    int failed;
} writer;

typedef struct put {
    const unsigned char *rec;
    size_t len;
    unsigned char *ack;          /* u32 key length, key, stored record */
    size_t ack_len;
    char err[200];
} put;

/* Run inside a write transaction: insert, and keep the stored bytes for the ACK. */
static int put_fn(udb_txn *txn, void *ctx)
{
    put *p = ctx;
    udb_val out;
    int rc = udb_insert(&out, txn, PL_TYPE, p->rec, p->len);
    if (rc) {
        snprintf(p->err, sizeof p->err, "udb_insert: %s", udb_errmsg(txn));
        return rc;
    }
    msgpack_unpacked u;
    if (sup_unpack(&u, out.data, out.size) != 0) {
        snprintf(p->err, sizeof p->err, "stored record is not one msgpack object");
        return UDB_ECORRUPT;
    }
    const msgpack_object *idv = sup_map_get(&u.data, "id");
    int have_id = idv != NULL;
    uint64_t id = have_id ? idv->via.u64 : 0;
    msgpack_unpacked_destroy(&u);
    if (!have_id) {
        snprintf(p->err, sizeof p->err, "stored record is not a map with an id");
        return UDB_ECORRUPT;
    }
    msgpack_sbuffer kb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&kb);
    msgpack_packer_init(&pk, &kb, msgpack_sbuffer_write);
    msgpack_pack_uint64(&pk, id);
    free(p->ack);
    p->ack_len = 4 + kb.size + out.size;
    p->ack = malloc(p->ack_len);
    if (!p->ack) {
        msgpack_sbuffer_destroy(&kb);
        return UDB_ENOMEM;
    }
    uint32_t kl = (uint32_t)kb.size;
    memcpy(p->ack, &kl, 4);
    memcpy(p->ack + 4, kb.data, kb.size);
    memcpy(p->ack + 4 + kb.size, out.data, out.size);
    msgpack_sbuffer_destroy(&kb);
    return 0;
}

static size_t pad_of(const writer *w, uint64_t id, int n)
{
    uint64_t r = id * 0x9E3779B97F4A7C15ULL;
    size_t pad = w->pad_min + (w->pad_span ? (size_t)(r >> 40) % w->pad_span : 0);
    if (n % 7 == 3)
        pad += 6000;   /* an overflow record: a write of several pages */
    return pad;
}

static int put_one(writer *w, int n)
{
    uint64_t id = ((uint64_t)w->id << 24) | (uint64_t)n;
    size_t pad = pad_of(w, id, n);
    char tag[32];
    snprintf(tag, sizeof tag, "t%d-%d", w->id, n);
    put p = {0};
    p.rec = pl_pack_item(&p.len, id, w->id, n, pad, w->tagged ? tag : NULL);
    int rc = p.rec ? 0 : UDB_ENOMEM;
    /* a transaction of our own that fills the map is rerun: the next
       udb_begin grows it */
    for (int tries = 0; !rc && w->mode == W_DIRECT && tries < 16; tries++) {
        udb_txn *txn;
        rc = udb_begin(&txn, w->env, 0);
        if (!rc) {
            rc = put_fn(txn, &p);
            if (rc) {
                udb_abort(txn);
            } else {
                if (w->c->early_ack)
                    rec_ack_early(ACK_PUT, p.ack, p.ack_len);
                rc = udb_commit(txn);
                if (w->c->early_ack)
                    rec_ack_flush();
                else if (!rc)
                    rec_ack(ACK_PUT, p.ack, p.ack_len);
            }
        }
        if (rc != UDB_EMAPFULL)
            break;
        rc = 0;
    }
    if (!rc && w->mode != W_DIRECT) {
        rc = udb_write(w->env, put_fn, &p);
        if (!rc)
            rec_ack(ACK_PUT, p.ack, p.ack_len);
    }
    if (rc)
        fprintf(stderr, "%s: writer %d record %d: %s (%s) %s\n", w->c->name, w->id, n,
                udb_strerror(rc), udb_env_errmsg(w->env), p.err);
    free((void *)p.rec);
    free(p.ack);
    return rc;
}

/* ---- udb_exec units ---- */
/* Append a record to a unit's ACK (powerloss.h, ACK_UNIT).  0 or -1. */
static int ack_add(msgpack_sbuffer *b, uint64_t id, const udb_val *rec)
{
    msgpack_sbuffer kb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&kb);
    msgpack_packer_init(&pk, &kb, msgpack_sbuffer_write);
    int rc = msgpack_pack_uint64(&pk, id);
    uint32_t l[2] = {(uint32_t)kb.size, (uint32_t)rec->size};
    if (!rc)
        rc = msgpack_sbuffer_write(b, (const char *)l, sizeof l);
    if (!rc)
        rc = msgpack_sbuffer_write(b, kb.data, kb.size);
    if (!rc)
        rc = msgpack_sbuffer_write(b, rec->data, rec->size);
    msgpack_sbuffer_destroy(&kb);
    return rc ? -1 : 0;
}

static int exec_fail(const writer *w, int u, const char *what, int rc, const udb_results *res)
{
    size_t at = udb_results_failed(res);
    const udb_result *r = udb_result_at(res, at);
    fprintf(stderr, "%s: writer %d unit %d: %s: %s (%s; op %lld: %s)\n", w->c->name, w->id, u,
            what, udb_strerror(rc), udb_env_errmsg(w->env), r ? (long long)at : -1LL,
            r ? r->errmsg : "-");
    return rc ? rc : UDB_ECORRUPT;
}

/* Unit u of writer w (powerloss.h); the split control runs its last op as a
 * unit of its own. */
static int exec_one(writer *w, int u)
{
    uint64_t id0 = ((uint64_t)w->id << 24) | (uint64_t)(2 * u), id1 = id0 + 1;
    int creates = pl_unit_creates2((uint64_t)u);
    int n1 = creates ? 2 * u + 1 : 2 * u - 1;   /* the name insert_or_get looks for */
    size_t len0, len1;
    unsigned char *rec0 = pl_pack_item(&len0, id0, w->id, 2 * u, pad_of(w, id0, 2 * u), NULL);
    unsigned char *rec1 = pl_pack_item(&len1, id1, w->id, n1, pad_of(w, id1, 2 * u + 1), NULL);
    unsigned char *fed = NULL;
    char seq[32];
    snprintf(seq, sizeof seq, PL_SEQ_PREFIX "%d", w->id);
    udb_op ops[3] = {UDB_OP_INIT, UDB_OP_INIT, UDB_OP_INIT};
    ops[0].kind = UDB_OP_SEQ_NEXT;
    ops[0].seq = seq;
    ops[1].kind = UDB_OP_INSERT;
    ops[1].type = PL_TYPE;
    ops[1].rec = (udb_val){rec0, len0};
    ops[1].seq_field = "seq";
    ops[1].seq_op = 0;
    ops[2].kind = UDB_OP_INSERT_OR_GET;
    ops[2].type = PL_TYPE;
    ops[2].index = "u_name";
    ops[2].rec = (udb_val){rec1, len1};
    ops[2].seq_field = "seq";
    ops[2].seq_op = 0;
    udb_results *res = NULL, *res2 = NULL;
    msgpack_sbuffer ack;
    msgpack_sbuffer_init(&ack);
    int rc = rec0 && rec1 ? 0 : UDB_ENOMEM;
    if (!rc && (rc = udb_exec(&res, w->env, ops, w->c->split ? 2 : 3)))
        rc = exec_fail(w, u, "udb_exec", rc, res);
    const udb_result *r0 = udb_result_at(res, 0), *r1 = udb_result_at(res, 1);
    const udb_result *r2 = udb_result_at(res, 2);
    if (!rc && w->c->split) {
        /* the control: the last op in a unit of its own, the value fed by hand */
        size_t flen;
        fed = pl_pack_item_seq(&flen, id1, w->id, n1, pad_of(w, id1, 2 * u + 1), NULL,
                               r0->value);
        udb_op last = ops[2];
        last.rec = (udb_val){fed, flen};
        last.seq_field = NULL;
        last.seq_op = 0;
        if (!fed)
            rc = UDB_ENOMEM;
        else if ((rc = udb_exec(&res2, w->env, &last, 1)))
            rc = exec_fail(w, u, "udb_exec (second half)", rc, res2);
        r2 = udb_result_at(res2, 0);
    }
    /* applied once, in order: the writer's sequence counts its units */
    if (!rc && (r0->value != (uint64_t)u + 1 || !r1->created || r2->created != creates)) {
        fprintf(stderr, "%s: writer %d unit %d: seq_next gave %llu (want %d), created %d, %d "
                "(want 1, %d)\n", w->c->name, w->id, u, (unsigned long long)r0->value, u + 1,
                r1->created, r2->created, creates);
        rc = UDB_ECORRUPT;
    }
    if (!rc) {
        uint32_t head[2] = {(uint32_t)w->id, (uint32_t)u}, count = 2;
        if (msgpack_sbuffer_write(&ack, (const char *)head, sizeof head) ||
            msgpack_sbuffer_write(&ack, (const char *)&r0->value, sizeof r0->value) ||
            msgpack_sbuffer_write(&ack, (const char *)&count, sizeof count) ||
            ack_add(&ack, id0, &r1->record) || ack_add(&ack, creates ? id1 : id0 - 1, &r2->record))
            rc = UDB_ENOMEM;
    }
    if (!rc) {
        if (w->c->early_ack)
            rec_ack_at_flush_mark(ACK_UNIT, ack.data, ack.size);
        else
            rec_ack(ACK_UNIT, ack.data, ack.size);
    }
    msgpack_sbuffer_destroy(&ack);
    udb_results_free(res);
    udb_results_free(res2);
    free(rec0);
    free(rec1);
    free(fed);
    return rc;
}

static void *writer_main(void *arg)
{
    writer *w = arg;
    for (int n = 0; n < w->count; n++) {
        if (w->mode == W_EXEC ? exec_one(w, n) : put_one(w, n)) {
            w->failed = 1;
            break;
        }
        if (w->progress) {
            pthread_mutex_lock(w->mu);
            (*w->progress)++;
            pthread_cond_broadcast(w->cv);
            pthread_mutex_unlock(w->mu);
        }
    }
    return NULL;
}

static int open_env(udb_env **env, const char *dir, const pl_case *c, size_t map)
{
    udb_options o = UDB_OPTIONS_INIT;
    o.flags = c->flags;
    o.map_size = map;
    int rc = udb_open(env, dir, &o);
    if (rc)
        fprintf(stderr, "%s: udb_open: %s\n", c->name, udb_env_errmsg(NULL));
    return rc;
}

/* nthreads writers on one env in this process; first writer id `first`.
 * ship, if not NULL, gets the sync file's counts of shipped units
 * (UDB_SHIP_*), as this process saw them last, where they are higher. */
static int run_threads(const char *dir, const pl_case *c, int first, int nthreads, int count,
                       int mode, size_t pad_min, size_t pad_span, size_t map, uint64_t *ship)
{
    udb_env *env;
    if (open_env(&env, dir, c, map))
        return 1;
    writer w[16];
    pthread_t th[16];
    int fails = 0, started = 0;
    for (int i = 0; i < nthreads; i++) {
        w[i] = (writer){.dir = dir, .c = c, .env = env, .id = first + i, .count = count,
                        .mode = mode, .pad_min = pad_min, .pad_span = pad_span};
        if (nthreads == 1)
            writer_main(&w[i]);
        else if (pthread_create(&th[i], NULL, writer_main, &w[i]))
            break;
        started++;
    }
    for (int i = 0; i < started; i++) {
        if (nthreads > 1)
            pthread_join(th[i], NULL);
        fails += w[i].failed;
    }
    if (ship) {
        uint64_t now[UDB_SHIP_NCOUNTS];
        udb__ship_counts(udb__env_ship(env), now);
        for (int i = 0; i < UDB_SHIP_NCOUNTS; i++) {
            uint64_t old = __atomic_load_n(&ship[i], __ATOMIC_SEQ_CST);
            while (old < now[i] && !__atomic_compare_exchange_n(&ship[i], &old, now[i], false,
                                                               __ATOMIC_SEQ_CST,
                                                               __ATOMIC_SEQ_CST))
                ;
        }
    }
    udb_close(env);
    return fails != 0 || started < nthreads;
}

int pl_run_single(const char *dir, const pl_case *c, int scale)
{
    return run_threads(dir, c, 1, 1, 20 * scale, W_DIRECT, 50, 1500, 0, NULL);
}

int pl_run_threads(const char *dir, const pl_case *c, int scale)
{
    return run_threads(dir, c, 1, 8, 5 * scale, W_WRITE, 20, 800, 0, NULL);
}

int pl_run_exec_single(const char *dir, const pl_case *c, int scale)
{
    return run_threads(dir, c, 1, 4, 4 * scale, W_EXEC, 20, 1000, 0, NULL);
}

/* nproc processes, each with nthreads writers (mode W_WRITE or W_EXEC);
 * ship as in run_threads, shared by the processes. */
static int run_procs(const char *dir, const pl_case *c, int nproc, int nthreads, int count,
                     int mode, size_t pad_min, size_t pad_span, size_t map, uint64_t *ship)
{
    pid_t pids[8];
    int fails = 0;
    for (int i = 0; i < nproc; i++) {
        pids[i] = fork();
        if (pids[i] < 0)
            return 1;
        if (pids[i] == 0)
            _exit(run_threads(dir, c, 1 + i * nthreads, nthreads, count, mode, pad_min,
                              pad_span, map, ship));
    }
    for (int i = 0; i < nproc; i++) {
        int st;
        while (waitpid(pids[i], &st, 0) < 0 && errno == EINTR)
            ;
        if (!WIFEXITED(st) || WEXITSTATUS(st)) {
            fprintf(stderr, "%s: writer process %d failed (status 0x%x)\n", c->name, i, st);
            fails++;
        }
    }
    return fails != 0;
}

int pl_run_procs(const char *dir, const pl_case *c, int scale)
{
    return run_procs(dir, c, 4, 2, 3 * scale, W_WRITE, 20, 1200, 0, NULL);
}

/* 4 processes x 2 threads of udb_exec units: the point is units run in
 * another process's batch, so the case fails if none did (a control that
 * turns durability off may commit too fast for any to wait: not there). */
int pl_run_exec_procs(const char *dir, const pl_case *c, int scale)
{
    uint64_t *ship = mmap(NULL, UDB_SHIP_NCOUNTS * sizeof *ship, PROT_READ | PROT_WRITE,
                          MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (ship == MAP_FAILED)
        return 1;
    memset(ship, 0, UDB_SHIP_NCOUNTS * sizeof *ship);
    int rc = run_procs(dir, c, 4, 2, 3 * scale, W_EXEC, 20, 1000, 0, ship);
    printf("  %s: units handed to a leader through the sync file: %llu run (%llu by another "
           "process), %llu bounced back\n", c->name, (unsigned long long)ship[UDB_SHIP_RUN],
           (unsigned long long)ship[UDB_SHIP_FOREIGN], (unsigned long long)ship[UDB_SHIP_BOUNCE]);
    fflush(stdout);
    if (!rc && !c->control && !ship[UDB_SHIP_FOREIGN]) {
        fprintf(stderr, "%s: no unit ran in another process's batch\n", c->name);
        rc = 1;
    }
    munmap(ship, UDB_SHIP_NCOUNTS * sizeof *ship);
    return rc;
}

int pl_run_mapgrow(const char *dir, const pl_case *c, int scale)
{
    const size_t map = c->map_size;
    int rc = run_procs(dir, c, 2, 2, 10 * scale, W_WRITE, 1500, 2500, map, NULL);
    if (rc)
        return rc;
    udb_env *env;
    size_t now = 0;
    if (open_env(&env, dir, c, map))
        return 1;
    rc = udb_env_usage(&now, NULL, env);
    udb_close(env);
    if (rc || now < 4 * map) {
        fprintf(stderr, "%s: the map did not grow (%zu bytes, want >= %zu)\n", c->name, now,
                4 * map);
        return 1;
    }
    return 0;
}

/* One thread inserts tagged records; another adds a unique index on the tag
 * while it does. */
int pl_run_schema(const char *dir, const pl_case *c, int scale)
{
    udb_env *env;
    if (open_env(&env, dir, c, 0))
        return 1;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    int progress = 0;
    writer w = {.dir = dir, .c = c, .env = env, .id = 1, .count = 16 * scale,
                .pad_min = 30, .pad_span = 900, .tagged = true, .mu = &mu, .cv = &cv,
                .progress = &progress};
    pthread_t th;
    if (pthread_create(&th, NULL, writer_main, &w)) {
        udb_close(env);
        return 1;
    }
    pthread_mutex_lock(&mu);
    while (progress < w.count / 2 && !w.failed)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    int rc = udb_schema_apply(NULL, env, schema_tag, strlen(schema_tag), 0);
    if (rc)
        fprintf(stderr, "%s: udb_schema_apply: %s\n", c->name, udb_env_errmsg(env));
    else
        rec_ack(ACK_SCHEMA, "u_tag", 5);
    pthread_join(th, NULL);
    udb_close(env);
    return rc || w.failed;
}
