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
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <msgpack.h>

#include "powerloss.h"

#define SCHEMA_HEAD                                                                        \
    "{\"types\": {\"item\": {\"key\": \"id\", \"fields\": {"                             \
    "\"id\": {\"type\": \"uint\"}, \"name\": {\"type\": \"str\", \"required\": true}, "     \
    "\"writer\": {\"type\": \"int\"}, \"n\": {\"type\": \"int\"}, "                        \
    "\"tag\": {\"type\": \"str\"}, \"pad\": {\"type\": \"bin\"}}, "                        \
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
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char name[48];
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5 + (tag != NULL));
    pack_str(&pk, "id");
    msgpack_pack_uint64(&pk, id);
    pack_str(&pk, "name");
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
typedef struct writer {
    const char *dir;
    const pl_case *c;
    udb_env *env;
    int id, count, scale;
    size_t pad_min, pad_span;
    bool tagged;
    int direct;                  /* udb_begin/udb_commit instead of udb_write */
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
    msgpack_unpacked_init(&u);
    size_t off = 0;
    if (msgpack_unpack_next(&u, out.data, out.size, &off) != MSGPACK_UNPACK_SUCCESS ||
        u.data.type != MSGPACK_OBJECT_MAP) {
        msgpack_unpacked_destroy(&u);
        snprintf(p->err, sizeof p->err, "stored record is not a map");
        return UDB_ECORRUPT;
    }
    uint64_t id = 0;
    for (uint32_t i = 0; i < u.data.via.map.size; i++) {
        const msgpack_object_kv *kv = &u.data.via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == 2 &&
            memcmp(kv->key.via.str.ptr, "id", 2) == 0)
            id = kv->val.via.u64;
    }
    msgpack_unpacked_destroy(&u);
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

static int put_one(writer *w, int n)
{
    uint64_t id = ((uint64_t)w->id << 24) | (uint64_t)n;
    uint64_t r = id * 0x9E3779B97F4A7C15ULL;
    size_t pad = w->pad_min + (w->pad_span ? (size_t)(r >> 40) % w->pad_span : 0);
    if (n % 7 == 3)
        pad += 6000;   /* an overflow record: a write of several pages */
    char tag[32];
    snprintf(tag, sizeof tag, "t%d-%d", w->id, n);
    put p = {0};
    p.rec = pl_pack_item(&p.len, id, w->id, n, pad, w->tagged ? tag : NULL);
    int rc = p.rec ? 0 : UDB_ENOMEM;
    /* a transaction of our own that fills the map is rerun: the next
       udb_begin grows it */
    for (int tries = 0; !rc && w->direct && tries < 16; tries++) {
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
    if (!rc && !w->direct) {
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

static void *writer_main(void *arg)
{
    writer *w = arg;
    for (int n = 0; n < w->count; n++) {
        if (put_one(w, n)) {
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

/* nthreads writers on one env in this process; first writer id `first`. */
static int run_threads(const char *dir, const pl_case *c, int first, int nthreads, int count,
                       int direct, size_t pad_min, size_t pad_span, size_t map)
{
    udb_env *env;
    if (open_env(&env, dir, c, map))
        return 1;
    writer w[16];
    pthread_t th[16];
    int fails = 0;
    for (int i = 0; i < nthreads; i++) {
        w[i] = (writer){.dir = dir, .c = c, .env = env, .id = first + i, .count = count,
                        .direct = direct, .pad_min = pad_min, .pad_span = pad_span};
        if (nthreads == 1)
            writer_main(&w[i]);
        else if (pthread_create(&th[i], NULL, writer_main, &w[i]))
            return 1;
    }
    for (int i = 0; i < nthreads; i++) {
        if (nthreads > 1)
            pthread_join(th[i], NULL);
        fails += w[i].failed;
    }
    udb_close(env);
    return fails != 0;
}

int pl_run_single(const char *dir, const pl_case *c, int scale)
{
    return run_threads(dir, c, 1, 1, 20 * scale, 1, 50, 1500, 0);
}

int pl_run_threads(const char *dir, const pl_case *c, int scale)
{
    return run_threads(dir, c, 1, 8, 5 * scale, 0, 20, 800, 0);
}

/* nproc processes, each with nthreads writers through udb_write. */
static int run_procs(const char *dir, const pl_case *c, int nproc, int nthreads, int count,
                     size_t pad_min, size_t pad_span, size_t map)
{
    pid_t pids[8];
    int fails = 0;
    for (int i = 0; i < nproc; i++) {
        pids[i] = fork();
        if (pids[i] < 0)
            return 1;
        if (pids[i] == 0)
            _exit(run_threads(dir, c, 1 + i * nthreads, nthreads, count, 0, pad_min,
                              pad_span, map));
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
    return run_procs(dir, c, 4, 2, 3 * scale, 20, 1200, 0);
}

int pl_run_mapgrow(const char *dir, const pl_case *c, int scale)
{
    const size_t map = c->map_size;
    int rc = run_procs(dir, c, 2, 2, 10 * scale, 1500, 2500, map);
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
