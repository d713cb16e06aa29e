/*
 * race_leaderkill.c -- the group commit leader killed (SIGKILL) at random
 * moments while processes ship it their udb_exec() units.
 *
 * WRITERS processes each submit units in a loop; a unit is [seq_next,
 * insert part 1, seq_next, insert part 2] with the unit's id in both records.
 * When udb_exec() returns 0 the writer appends the id to its log in shared
 * memory: that unit is acknowledged.  The parent, ROUNDS times, waits until
 * some unit was acknowledged since the last kill (for at most 10 s: the
 * survivors must carry on), then a random 0-12 ms, reads which process
 * holds the lead lock and kills it (kill -9), starts a new writer in its
 * place, and runs udb_check() (the writers start no unit meanwhile, so
 * the database stays small).  The
 * writers make their leaders pause between commit and publishing outcomes
 * (udb__ship_set_publish_delay), so many kills land in the window where a
 * unit is committed but its owner does not know it yet.
 *
 * At the end: every acknowledged unit is in the database exactly once (both
 * parts, once each), no unit is there twice (acknowledged or not), and
 * udb_check() is clean.
 *
 * Negative control: `race_leaderkill --no-unit-record` makes a new leader
 * treat every orphaned unit as not committed (it does not look for the
 * unit's record): units a killed leader had committed run again, and the
 * verification must fail.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>

#include "env.h"
#include "ship.h"
#include "support.h"
#include "uniqdb.h"

enum { WRITERS = 4, MAXLOG = 1 << 16 };

static const char SCHEMA[] =
    "{\"types\": {\"part\": {\"key\": \"id\", \"fields\": {\"id\": {\"type\": \"uint\"},"
    " \"unit\": {\"type\": \"uint\", \"required\": true},"
    " \"half\": {\"type\": \"uint\", \"required\": true}},"
    " \"indexes\": {\"by_unit\": {\"fields\": [\"unit\"]}}}}}";

typedef struct wlog {
    _Atomic size_t n;
    uint64_t acked[MAXLOG];
} wlog;

typedef struct shared {
    _Atomic int stop;
    _Atomic int pause;      /* the parent checks the database: start no unit */
    wlog logs[WRITERS];
} shared;

static shared *sh;
static char path[512];
static int no_record;

static void pack_part(msgpack_sbuffer *sb, uint64_t unit, unsigned half)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    sup_pack(&pk, "{s:U, s:U}", "unit", (unsigned long long)unit, "half",
             (unsigned long long)half);
}

/* One writer's life: units until told to stop (or killed). */
static int writer(int w, unsigned life)
{
    udb_env *env;
    if (udb_open(&env, path, NULL)) {
        fprintf(stderr, "writer %d: udb_open: %s\n", w, udb_env_errmsg(NULL));
        return 2;
    }
    udb__ship_set_publish_delay(3000000);
    if (no_record)
        udb__ship_set_test_flags(UDB_SHIP_TEST_NO_RECORD);
    int bad = 0;
    for (uint64_t k = 0; !atomic_load(&sh->stop) && k < (1u << 20); k++) {
        while (atomic_load(&sh->pause) && !atomic_load(&sh->stop))
            sup_sleep_us(200);
        uint64_t unit = (uint64_t)w << 48 | (uint64_t)life << 24 | k;
        msgpack_sbuffer a, b;
        msgpack_sbuffer_init(&a);
        msgpack_sbuffer_init(&b);
        pack_part(&a, unit, 1);
        pack_part(&b, unit, 2);
        udb_op ops[4] = {UDB_OP_INIT, UDB_OP_INIT, UDB_OP_INIT, UDB_OP_INIT};
        for (int i = 0; i < 4; i += 2) {
            ops[i].kind = UDB_OP_SEQ_NEXT;
            ops[i].seq = "ids";
            ops[i + 1].kind = UDB_OP_INSERT;
            ops[i + 1].type = "part";
            ops[i + 1].rec.data = i ? b.data : a.data;
            ops[i + 1].rec.size = i ? b.size : a.size;
            ops[i + 1].seq_field = "id";
            ops[i + 1].seq_op = (size_t)i;
        }
        udb_results *res;
        int rc = udb_exec(&res, env, ops, 4);
        udb_results_free(res);
        msgpack_sbuffer_destroy(&a);
        msgpack_sbuffer_destroy(&b);
        if (rc) {
            fprintf(stderr, "writer %d: unit %llx: %s\n", w, (unsigned long long)unit,
                    udb_env_errmsg(env));
            bad = 1;
            break;
        }
        size_t n = atomic_load(&sh->logs[w].n);
        if (n < MAXLOG) {
            sh->logs[w].acked[n] = unit;
            atomic_store(&sh->logs[w].n, n + 1);
        }
    }
    udb_close(env);
    return bad;
}

static void report(const char *problem, void *ctx)
{
    (void)ctx;
    fprintf(stderr, "udb_check: %s\n", problem);
}

static pid_t spawn(int w, unsigned life)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        _exit(writer(w, life));
    return pid;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct seen {
    uint64_t *v;   /* unit << 2 | half, for every record */
    size_t n, cap;
} seen;

static void collect(seen *s, const udb_val *rec)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int rc = sup_unpack(&u, rec->data, rec->size);
    const msgpack_object *unit = rc ? NULL : sup_map_get(&u.data, "unit");
    const msgpack_object *half = rc ? NULL : sup_map_get(&u.data, "half");
    if (unit && half && s->n < s->cap)
        s->v[s->n++] = unit->via.u64 << 2 | half->via.u64;
    msgpack_unpacked_destroy(&u);
}

/* The verdict on the final database: the number of failures. */
static int verify(udb_env *env)
{
    udb_txn *txn;
    int rc = udb_begin(&txn, env, UDB_RDONLY);
    if (rc)
        return fprintf(stderr, "verify: udb_begin: %s\n", udb_env_errmsg(env)), 1;
    size_t total = 0;
    for (int w = 0; w < WRITERS; w++)
        total += atomic_load(&sh->logs[w].n);
    seen s = {NULL, 0, 2 * total + (1u << 16)};
    s.v = malloc(s.cap * sizeof *s.v);
    int bad = 0;
    udb_cursor *cur;
    if (!s.v || (rc = udb_scan(&cur, txn, "part", NULL, NULL, 0))) {
        udb_abort(txn);
        free(s.v);
        return fprintf(stderr, "verify: scan: %d\n", rc), 1;
    }
    udb_val v;
    while ((rc = udb_cursor_next(&v, cur)) == 0)
        collect(&s, &v);
    udb_cursor_close(cur);
    udb_abort(txn);
    qsort(s.v, s.n, sizeof *s.v, cmp_u64);
    /* per unit (records sorted by unit, then part): each part once, both or none */
    size_t dup = 0, half = 0;
    for (size_t i = 0; i < s.n;) {
        uint64_t u = s.v[i] >> 2;
        size_t parts[4] = {0};
        for (; i < s.n && s.v[i] >> 2 == u; i++)
            parts[s.v[i] & 3]++;
        if ((parts[1] > 1 || parts[2] > 1) && dup++ < 5)
            fprintf(stderr, "unit %llx is in the database more than once (%zu, %zu)\n",
                    (unsigned long long)u, parts[1], parts[2]);
        if (parts[1] != parts[2] && half++ < 5)
            fprintf(stderr, "unit %llx is there in part only (%zu, %zu)\n",
                    (unsigned long long)u, parts[1], parts[2]);
    }
    size_t lost = 0;
    for (int w = 0; w < WRITERS; w++) {
        size_t n = atomic_load(&sh->logs[w].n);
        for (size_t i = 0; i < n; i++) {
            uint64_t want = sh->logs[w].acked[i] << 2 | 1;
            if (!bsearch(&want, s.v, s.n, sizeof *s.v, cmp_u64) && lost++ < 5)
                fprintf(stderr, "acknowledged unit %llx is missing\n",
                        (unsigned long long)sh->logs[w].acked[i]);
        }
    }
    printf("race_leaderkill: %zu records, %zu units acknowledged; %zu duplicated, %zu partial, "
           "%zu acknowledged but missing\n", s.n, total, dup, half, lost);
    bad += dup > 0 || half > 0 || lost > 0;
    free(s.v);
    return bad;
}

int main(int argc, char **argv)
{
    int rounds = 200;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--no-unit-record") == 0)
            no_record = 1;
        else if (strncmp(argv[i], "--rounds=", 9) == 0)
            rounds = atoi(argv[i] + 9);
    }
    char dir[256];
    if (sup_mkdtemp(dir, sizeof dir, "udb-leaderkill-") != 0)
        return perror("mkdtemp"), 2;
    snprintf(path, sizeof path, "%s/db", dir);
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        return perror("mmap"), 2;
    udb_env *env;
    int rc = udb_open(&env, path, NULL);
    if (!rc)
        rc = udb_schema_apply(NULL, env, SCHEMA, strlen(SCHEMA), 0);
    if (rc)
        return fprintf(stderr, "setup: %s\n", udb_env_errmsg(env)), 2;
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    pid_t pids[WRITERS];
    unsigned life = 0;
    for (int w = 0; w < WRITERS; w++)
        pids[w] = spawn(w, life++);
    int bad = 0, kills = 0, tries = 0, dirty = 0;
    udb_ship *ship = udb__env_ship(env);
    size_t acked_before = 0;
    while (kills < rounds && tries < rounds * 200) {
        tries++;
        /* progress since the last kill (a stuck database fails here), then a
           random moment */
        size_t acked = acked_before;
        for (int waited = 0; acked == acked_before && waited < 10000; waited++) {
            sup_sleep_us(1000);
            acked = 0;
            for (int i = 0; i < WRITERS; i++)
                acked += atomic_load(&sh->logs[i].n);
        }
        if (acked == acked_before) {
            fprintf(stderr, "round %d: no unit acknowledged for 10 s\n", kills);
            bad++;
            break;
        }
        acked_before = acked;
        sup_sleep_us(rand() % 12000);
        pid_t leader = udb__ship_leader(ship);
        int w = 0;
        while (w < WRITERS && pids[w] != leader)
            w++;
        if (!leader || w == WRITERS)
            continue;
        kill(leader, SIGKILL);
        int st;
        waitpid(leader, &st, 0);
        if (!WIFSIGNALED(st)) {   /* it had stopped on its own: a failure */
            fprintf(stderr, "writer %d exited with status %d before the kill\n", w,
                    WEXITSTATUS(st));
            bad++;
        }
        pids[w] = spawn(w, life++);
        kills++;
        size_t problems = 0;
        atomic_store(&sh->pause, 1);   /* keeps the database small: 200 checks stay quick */
        rc = udb_check(&problems, env, report, NULL);
        atomic_store(&sh->pause, 0);
        if (rc && dirty++ < 3)
            fprintf(stderr, "round %d: udb_check: %s, %zu problems\n", kills,
                    udb_strerror(rc), problems);
    }
    atomic_store(&sh->stop, 1);
    for (int w = 0; w < WRITERS; w++) {
        int st;
        waitpid(pids[w], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "writer %d: status 0x%x\n", w, st);
            bad++;
        }
    }
    uint64_t c[UDB_SHIP_NCOUNTS];
    udb__ship_counts(ship, c);
    printf("race_leaderkill: %d leaders killed (%d looks); units through a slot %llu, by "
           "another process %llu; orphans found committed %llu, run again %llu; udb_check "
           "unclean in %d rounds\n", kills, tries, (unsigned long long)c[UDB_SHIP_RUN],
           (unsigned long long)c[UDB_SHIP_FOREIGN], (unsigned long long)c[UDB_SHIP_EARLIER],
           (unsigned long long)c[UDB_SHIP_RERUN], dirty);
    if (kills < rounds) {
        fprintf(stderr, "only %d leaders could be killed\n", kills);
        bad++;
    }
    bad += dirty > 0;
    bad += verify(env);
    size_t problems = 0;
    if (udb_check(&problems, env, report, NULL)) {
        fprintf(stderr, "final udb_check: %zu problems\n", problems);
        bad++;
    }
    udb_close(env);
    sup_remove_tree(dir, false);
    printf("race_leaderkill: %s\n", bad ? "FAILED" : "ok");
    return bad ? 1 : 0;
}
