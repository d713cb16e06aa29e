/*
 * bench_gen.c -- the generated records every engine stores, and the small
 * helpers around them.
 *
 * Records are a pure function of their number, so a driver can regenerate
 * any record to check what an engine returned, and every engine (and every
 * process of a concurrent run) sees identical input without sharing memory.
 * The unique key `ref` is a bijective hash of the number, so inserts and
 * lookups hit the unique index in random order, as real booking references
 * would; the primary key grows, as an auto key would.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>

#include "bench.h"
#include "support.h"

/* The schema uniqdb stores the records under (both benchmarks). */
const char bench_schema_json[] =
    "{\"types\": {\"" BENCH_TYPE "\": {"
    "\"key\": \"id\","
    "\"fields\": {"
    "  \"id\": {\"type\": \"uint\"},"
    "  \"ref\": {\"type\": \"str\", \"required\": true},"
    "  \"psychologist\": {\"type\": \"str\", \"required\": true},"
    "  \"slot\": {\"type\": \"str\", \"required\": true},"
    "  \"status\": {\"type\": \"enum\", \"required\": true,"
    "             \"values\": [\"pending\", \"confirmed\", \"cancelled\", \"completed\"]},"
    "  \"user\": {\"type\": \"str\"}},"
    "\"unique\": {"
    "  \"ref\": {\"fields\": [\"ref\"]},"
    "  \"active_slot\": {\"fields\": [\"psychologist\", \"slot\"],"
    "                  \"where\": \"status IN ('pending', 'confirmed')\"}},"
    "\"indexes\": {"
    "  \"by_user\": {\"fields\": [\"user\", \"slot\"]}}"
    "}}}";

static const char *const statuses[4] = {"pending", "confirmed", "cancelled", "completed"};

uint64_t bench_mix64(uint64_t x)
{
    /* MurmurHash3's finalizer: every step is invertible */
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

uint64_t bench_user_of(uint64_t i, uint64_t nusers)
{
    return bench_mix64(i ^ 0x5851f42d4c957f2dULL) % nusers;
}

void bench_user_name(char out[16], uint64_t u)
{
    snprintf(out, 16, "user-%07u", (unsigned)(u % 10000000u));
}

/* A msgpack writer into a fixed buffer (records and keys are small). */
void bench_gen(bench_rec *r, uint64_t i, uint64_t nusers)
{
    uint64_t h = bench_mix64(i);
    uint64_t s = i / BENCH_NPSY;            /* slot number; (psych, slot) is unique per i */
    r->id = i + 1;
    r->status = statuses[bench_mix64(i ^ 0x9e3779b97f4a7c15ULL) >> 62];
    r->active = r->status == statuses[0] || r->status == statuses[1];
    snprintf(r->ref, sizeof r->ref, "BK-%016llx", (unsigned long long)h);
    snprintf(r->psych, sizeof r->psych, "psy-%04u", (unsigned)(i % BENCH_NPSY));
    snprintf(r->slot, sizeof r->slot, "d%06u %02u:00", (unsigned)(s / 12 % 1000000u),
             (unsigned)(8 + s % 12));
    bench_user_name(r->user, bench_user_of(i, nusers));

    /* packed field by field, not through sup_pack's format parser: W2 makes
       a record per lookup, and the parser cost more than the lookup itself */
    sup_fixbuf b = {r->mp, sizeof r->mp, 0, false};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, sup_fixbuf_write);
    msgpack_pack_map(&pk, 6);
    sup_pack_cstr(&pk, "id");
    msgpack_pack_uint64(&pk, r->id);
    sup_pack_cstr(&pk, "ref");
    sup_pack_cstr(&pk, r->ref);
    sup_pack_cstr(&pk, "psychologist");
    sup_pack_cstr(&pk, r->psych);
    sup_pack_cstr(&pk, "slot");
    sup_pack_cstr(&pk, r->slot);
    sup_pack_cstr(&pk, "status");
    sup_pack_cstr(&pk, r->status);
    sup_pack_cstr(&pk, "user");
    sup_pack_cstr(&pk, r->user);
    r->mp_len = b.len;   /* fields are bounded above: never overflows */
}

size_t bench_pack_strs(unsigned char *out, size_t cap, const char *const *s, size_t n)
{
    sup_fixbuf b = {out, cap, 0, false};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, sup_fixbuf_write);
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++)
        sup_pack_cstr(&pk, s[i]);
    return b.overflow ? 0 : b.len;
}

int bench_mp_id(uint64_t *id, const void *mp, size_t len)
{
    const unsigned char *p = mp;
    static const unsigned char head[] = {0x86, 0xa2, 'i', 'd'};
    if (len < sizeof head + 1 || memcmp(p, head, sizeof head) != 0)
        return -1;
    p += sizeof head;
    len -= sizeof head;
    unsigned n;
    if (p[0] < 0x80) {
        *id = p[0];
        return 0;
    }
    switch (p[0]) {
    case 0xcc: n = 1; break;
    case 0xcd: n = 2; break;
    case 0xce: n = 4; break;
    case 0xcf: n = 8; break;
    default: return -1;
    }
    if (len < 1 + n)
        return -1;
    uint64_t v = 0;
    for (unsigned i = 1; i <= n; i++)
        v = v << 8 | p[i];
    *id = v;
    return 0;
}

bench_devio bench_device_io(const char *path)
{
    bench_devio io = {-1, -1};
    struct stat st;
    if (stat(path, &st) != 0)
        return io;
    FILE *f = fopen("/proc/diskstats", "r");
    if (!f)
        return io;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        unsigned maj, min;
        char name[64];
        unsigned long long v[17];
        int n = sscanf(line, " %u %u %63s %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu "
                       "%llu %llu %llu %llu %llu %llu %llu", &maj, &min, name, &v[0], &v[1],
                       &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10], &v[11],
                       &v[12], &v[13], &v[14], &v[15], &v[16]);
        if (n < 3 || maj != major(st.st_dev) || min != minor(st.st_dev))
            continue;
        if (n >= 3 + 5)
            io.writes = (int64_t)v[4];
        if (n >= 3 + 16)
            io.flushes = (int64_t)v[15];
        break;
    }
    fclose(f);
    return io;
}

int64_t bench_lmdb_txnid(const char *dir)
{
    /* LMDB 0.9's data format (mdb.c): page 0 and page 1 are meta pages, each
     * a 16-byte page header, then MDB_meta: magic, version (uint32 each), the
     * map address and size (8 bytes each), two MDB_db of 48 bytes (the
     * first one's leading uint32 holds the page size in meta pages), the last
     * page number and the txnid (8 bytes each). */
    enum { HDR = 16, MAGIC = HDR, VERSION = HDR + 4, PSIZE = HDR + 24,
           TXNID = HDR + 128, META_END = TXNID + 8 };
    char path[4096];
    if (snprintf(path, sizeof path, "%s/data.mdb", dir) >= (int)sizeof path)
        return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int64_t last = -1;
    uint32_t psize = 0;
    for (int i = 0; i < 2; i++) {
        unsigned char m[META_END];
        uint32_t magic, version;
        uint64_t txnid;
        if (pread(fd, m, sizeof m, (off_t)i * psize) != (ssize_t)sizeof m) {
            last = -1;
            break;
        }
        memcpy(&magic, m + MAGIC, 4);
        memcpy(&version, m + VERSION, 4);
        if (i == 0)
            memcpy(&psize, m + PSIZE, 4);
        memcpy(&txnid, m + TXNID, 8);
        if (magic != 0xBEEFC0DEu || version != 1 || psize < 512 || psize > (1u << 16) ||
            (psize & (psize - 1)) || txnid > INT64_MAX) {
            last = -1;
            break;
        }
        if ((int64_t)txnid > last)
            last = (int64_t)txnid;
    }
    close(fd);
    return last;
}

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int bench_ids_push(bench_ids *ids, uint64_t id)
{
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 1024;
        uint64_t *v = realloc(ids->v, cap * sizeof *v);
        if (!v)
            return -1;
        ids->v = v;
        ids->cap = cap;
    }
    ids->v[ids->n++] = id;
    return 0;
}
