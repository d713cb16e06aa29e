/*
 * cli_dump.c -- dump and load: the whole database as NDJSON and back.
 *
 * dump reads one snapshot and writes a {"schema": ...} line, one
 * {"type": T, "record": {...}} line per record (types in schema order, records
 * in primary-key order, fields in stored order) and a {"sequences": {...}}
 * line.  Output is deterministic, so dump | load | dump reproduces it byte
 * for byte.
 *
 * load inserts records in transactions of up to BATCH lines.  A conflicting or
 * invalid record writes nothing and leaves the transaction usable, so it is
 * reported with its line number and the batch goes on.  With --atomic every
 * record (and the sequences line) is held until the end of the input and
 * inserted in one transaction, rolled back if any line was bad; only a
 * schema line is applied before, in its own (udb_schema_apply), and a new
 * database is built aside and put in place only when the load succeeded
 * (cli_newdb_begin).  Sequences are
 * restored exactly in a fresh database and never lowered in one that had
 * them, so auto keys cannot be handed out twice.
 *
 * load writes through udb_write() (cli_write), not udb_exec() as the record
 * commands do: a batch skips the records that fail and commits the rest,
 * which a udb_exec() unit (all or nothing) cannot express, and sequences
 * are set (udb_seq_set), which is no udb_exec() op.
 */
#include "cli_common.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Records per transaction, or fewer if they are large.  A bulk load writes
 * each page its batch dirtied once per commit, and index inserts land on
 * pages all over the file: with 1000 records a commit, 1M bookings wrote
 * ~30x the database; with 100000, ~3x (README, Performance).  Every commit
 * is durable and holds whole lines, so a killed load keeps a prefix of the
 * input. */
#define BATCH 100000
#define BATCH_BYTES (16u << 20)

/* Conflicting or invalid lines listed one by one; the rest are counted. */
#define LOAD_LIST_MAX 20

/* ---- dump ---------------------------------------------------------------------------- */

/* Damaged records of a type are listed one by one up to this many; then counted. */
#define DUMP_LIST_MAX 10

static int dump_seq(const char *name, uint64_t value, void *ctx)
{
    return json_object_set_new(ctx, name, udb_jansson_u64(value)) ? UDB_ENOMEM : 0;
}

static void salvage_sent(const char *type, json_t *rec);

/* Write line (a record rec of type; the call owns line), tell a salvaging
 * parent, and count it in *written. */
static int emit_record(json_t *line, const char *type, json_t *rec, uint64_t *written)
{
    int ex = cli_print_json(line);
    if (ex == CLI_OK) {
        salvage_sent(type, rec);
        ++*written;
        cli_guard_tick(NULL);
    }
    json_decref(line);
    return ex;
}

int cli_dump_records(udb_txn *txn, const char *type, uint64_t limit, uint64_t most,
                     uint64_t *written, uint64_t *unreadable)
{
    udb_cursor *cur = NULL;
    char err[CLI_ERRLEN];
    uint64_t n = 0;
    int rc;
    *written = *unreadable = 0;
    if ((rc = udb_scan(&cur, txn, type, NULL, NULL, 0)) != 0)
        return cli_fail_rc(rc, udb_errmsg(txn), NULL, type);
    udb_val v;
    int ex = CLI_OK;
    while (limit-- > 0 && ((rc = udb_cursor_next(&v, cur)) == 0 || rc == UDB_ECORRUPT)) {
        json_t *rec = rc ? NULL : cli_msgpack_to_json(v.data, v.size, err);
        if (rc)   /* the scan goes on after a damaged record, or ends if it cannot */
            snprintf(err, sizeof err, "%s", udb_errmsg(txn));
        json_t *line = rec ? json_pack("{s s s o}", "type", type, "record", rec) : NULL;
        n++;
        if (!rec) {
            /* A damaged entry: say so (the first few) and salvage the rest; the
               caller reports how many records this left out. */
            if (++*unreadable <= DUMP_LIST_MAX)
                fprintf(stderr, "uniqdb: %s: record %" PRIu64 " in key order skipped: %s\n",
                        type, n, err);
            continue;
        }
        if (!line) {
            ex = cli_fail(CLI_EFAIL, NULL, "out of memory");
            goto out;
        }
        if (*written == most) {
            /* more records than the type holds: entries are being read twice or
               made up; what is written stops here (no end line follows) */
            json_decref(line);
            ex = cli_fail(CLI_ECHECK, NULL, "%s: more records read than the %" PRIu64 " the type "
                          "holds: the database is damaged; the dump stopped here", type, most);
            goto out;
        }
        if ((ex = emit_record(line, type, rec, written)) != CLI_OK)
            goto out;
    }
    if (rc && rc != UDB_ENOTFOUND)
        ex = cli_fail_rc(rc, udb_errmsg(txn), NULL, type);
out:
    if (*unreadable > DUMP_LIST_MAX)
        fprintf(stderr, "uniqdb: %s: %" PRIu64 " more unreadable entries skipped (not listed)\n",
                type, *unreadable - DUMP_LIST_MAX);
    udb_cursor_close(cur);
    return ex;
}

/* The end line: {"end": {"records": {TYPE: N, ...}, "sequences": N}}, plus
 * "left_out": {TYPE: N, ...} when damaged records could not be written.  load
 * checks it against what it read: a cut dump has none, a changed one does not
 * match, and one that left records out says so. */
static json_t *dump_end_line(json_t *records, size_t nseqs, json_t *left_out)
{
    json_t *end = json_pack("{s O s I}", "records", records, "sequences", (json_int_t)nseqs);
    if (end && json_object_size(left_out) && json_object_set(end, "left_out", left_out)) {
        json_decref(end);
        return NULL;
    }
    return end ? json_pack("{s o}", "end", end) : NULL;
}

/* ---- dump in child processes (cli_guard.c) ------------------------------------------
 * LMDB can crash on a damaged page, so dump reads in a child: a crash or a
 * hang ends the dump with exit 6 and a message naming the type and the last
 * record written.  With --salvage the child flushes every line and sends the
 * parent the primary key of every record it wrote.  After a crash in a type
 * a new child reads the rest of that type through its indexes, one after
 * another (an index lives on other pages than the records, and a record is
 * found from it by a lookup that touches only the pages on its own path):
 * it steps over the index entries already read (udb_cursor_skip, which reads
 * the index only), leaves out the records already written, and after each
 * further crash starts again one entry on.  A crash while stepping over, or
 * more than SALVAGE_RETRIES crashes in one index, moves on to the next
 * index; then to the next type, then the sequences.  So every record that
 * can still be read is written, unless the type has no index (then the
 * records after the damaged page are left out).  Records read through an
 * index come in that index's order. */

#define SALVAGE_RETRIES 1000

typedef struct dump_args {
    int argc;
    char **argv;
    bool salvage;
    size_t crash_part, crash_phase;   /* where the last crash was */
    uint64_t crashes, in_phase;       /* crashes in all, in that part and phase */
} dump_args;

static json_t *salvage_written;   /* --salvage: "type\tkey" of every record written */
static json_t *salvage_schema;    /* the child's schema object (borrowed) */

static json_t *schema_type(const char *type)
{
    return json_object_get(json_object_get(salvage_schema, "types"), type);
}

/* The names of type's indexes, unique ones first: up to cap of them. */
static size_t salvage_indexes(const char *type, const char **names, size_t cap)
{
    size_t n = 0;
    static const char *const kinds[] = {"unique", "indexes"};
    for (size_t k = 0; k < 2; k++) {
        const char *name;
        json_t *v;
        json_object_foreach(json_object_get(schema_type(type), kinds[k]), name, v)
            if (n < cap)
                names[n++] = name;
    }
    return n;
}

/* "type\tkey" of a record (key as compact JSON); of a damaged record without
 * its key field (a damaged field name makes it a {"$map": ...}), the whole
 * record.  NULL: out of memory. */
static char *salvage_id(const char *type, json_t *rec)
{
    json_t *kf = json_object_get(schema_type(type), "key");
    json_t *kv = json_is_string(kf) ? json_object_get(rec, json_string_value(kf)) : NULL;
    char *kj = json_dumps(kv ? kv : rec, JSON_ENCODE_ANY | JSON_COMPACT | JSON_SORT_KEYS),
         *id = NULL;
    if (kj && asprintf(&id, "%s\t%s", type, kj) < 0)
        id = NULL;
    free(kj);
    return id;
}

/* In the child under --salvage: tell the parent a record was written. */
static void salvage_sent(const char *type, json_t *rec)
{
    if (!cli_guard_salvage())
        return;
    char *id = salvage_id(type, rec);
    if (id) {
        cli_guard_send(id);
        json_object_set_new(salvage_written, id, json_true());   /* this child's own */
    }
    free(id);
}

/* The rest of a type whose reading crashed, through index `index`: skip the
 * entries read before, leave out the records written before. */
static int salvage_records(udb_txn *txn, const char *type, const char *index, uint64_t skip,
                           uint64_t *written)
{
    udb_cursor *cur = NULL;
    char err[CLI_ERRLEN];
    int rc = udb_scan(&cur, txn, type, index, NULL, 0);
    if (rc)
        return cli_fail_rc(rc, udb_errmsg(txn), NULL, type);
    cli_guard_skipping(true);
    rc = udb_cursor_skip(NULL, cur, skip);
    cli_guard_skipping(false);
    udb_val v;
    int ex = CLI_OK;
    while (!rc && ((rc = udb_cursor_next(&v, cur)) == 0 || rc == UDB_ECORRUPT)) {
        cli_guard_step();
        json_t *rec = rc ? NULL : cli_msgpack_to_json(v.data, v.size, err);
        if (!rec) {   /* an entry whose record cannot be read (counted in key order) */
            rc = 0;
            continue;
        }
        char *id = salvage_id(type, rec);
        if (id && json_object_get(salvage_written, id)) {
            free(id);
            json_decref(rec);
            continue;   /* written before the crash */
        }
        free(id);
        json_t *line = json_pack("{s s s O}", "type", type, "record", rec);
        ex = line ? emit_record(line, type, rec, written)
                  : cli_fail(CLI_EFAIL, NULL, "out of memory");
        json_decref(rec);
        if (ex != CLI_OK)
            goto out;
    }
    if (rc && rc != UDB_ENOTFOUND)
        ex = cli_fail_rc(rc, udb_errmsg(txn), NULL, type);
out:
    udb_cursor_close(cur);
    return ex;
}

/* A new read snapshot in *txn: after LMDB met damage it refuses the rest of
 * a transaction. */
static int salvage_renew(udb_env *env, udb_txn **txn)
{
    udb_abort(*txn);
    *txn = NULL;
    int rc = udb_begin(txn, env, UDB_RDONLY);
    return rc ? cli_fail_rc(rc, udb_env_errmsg(env), NULL, "dump") : CLI_OK;
}

/* --salvage, in the child: how many records of type the children before
 * this one wrote (the parent's keys, inherited). */
static uint64_t salvage_prior(const char *type)
{
    uint64_t n = 0;
    size_t tl = strlen(type);
    const char *id;
    json_t *v;
    json_object_foreach(salvage_written, id, v)
        n += strncmp(id, type, tl) == 0 && id[tl] == '\t';
    return n;
}

/* --salvage, in the child: the records of type, read the way the parent
 * says (cli_guard_resume: 0 in key order, k through index k); when the read
 * in key order falls short of `most` (LMDB's count; 0: unknown) or meets
 * damage, the rest is read through each further index, in a new snapshot
 * each.  *written: the type's records written, by this child and those
 * before; *unreadable: entries skipped in key order.  *txn is a new
 * snapshot when it returns. */
static int salvage_type(udb_env *env, udb_txn **txn, const char *type, uint64_t most,
                        uint64_t *written, uint64_t *unreadable)
{
    const char *ixs[64];
    size_t nix = salvage_indexes(type, ixs, 64), phase;
    uint64_t skip, prior = salvage_prior(type), w = 0;
    uint64_t cap = most ? most : UINT64_MAX;
    *unreadable = 0;
    cli_guard_resume(&phase, &skip, 1 + nix);
    int ex = phase == 0 ? cli_dump_records(*txn, type, UINT64_MAX, cap, &w, unreadable)
                        : salvage_records(*txn, type, ixs[phase - 1], skip, &w);
    int worst = ex;
    bool short_read = phase == 0 && (*unreadable || prior + w < cap);
    while ((ex == CLI_ECHECK || short_read) && prior + w < cap && ++phase <= nix) {
        if ((ex = salvage_renew(env, txn)) != CLI_OK)
            return ex;
        cli_guard_phase(phase);
        ex = salvage_records(*txn, type, ixs[phase - 1], 0, &w);
        if (ex != CLI_OK && ex != CLI_ECHECK)
            return ex;
    }
    *written = prior + w;
    int rex = salvage_renew(env, txn);
    return rex != CLI_OK ? rex : worst;
}

static int dump_child(void *arg)
{
    dump_args *a = arg;
    return cli_cmd_dump(a->argc, a->argv);
}

static void salvage_line(const char *line, void *ctx)
{
    (void)ctx;
    if (salvage_written)
        json_object_set_new(salvage_written, line, json_true());
}

static int dump_crash(cli_guard_report *r, void *ctx)
{
    dump_args *a = ctx;
    bool first = a->crashes++ == 0 || r->part != a->crash_part;
    if (r->part != a->crash_part || r->phase != a->crash_phase)
        a->in_phase = 0;
    a->crash_part = r->part;
    a->crash_phase = r->phase;
    a->in_phase++;
    if (first)
        cli_fail(CLI_ECHECK, NULL, "dump: %s: reading it %s after %" PRIu64 " line%s%s%s%s: "
                 "the database is damaged; %s", r->name, r->how, r->count,
                 r->count == 1 ? "" : "s", *r->last ? " (the last: " : "", r->last,
                 *r->last ? ")" : "",
                 !a->salvage ? "the dump is incomplete (dump --salvage writes what can "
                               "still be read)"
                 : r->phases > 1 ? "the rest of it is read through its indexes"
                                 : "it has no index: the rest of it is left out");
    if (!a->salvage)
        return CLI_GUARD_STOP;
    if (r->phase == 0 || r->skipping || a->in_phase > SALVAGE_RETRIES) {
        if (r->phase + 1 >= r->phases)
            return CLI_GUARD_NEXT;
        r->phase++;
        r->skip = 0;
        return CLI_GUARD_RETRY;
    }
    r->skip += r->steps + 1;   /* the entry whose record crashed it */
    return CLI_GUARD_RETRY;
}

static int dump_guarded(int argc, char **argv)
{
    dump_args a = {0, calloc((size_t)argc + 1, sizeof *argv), false, 0, 0, 0, 0};
    if (!a.argv)
        return cli_fail(CLI_EFAIL, NULL, "out of memory");
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--salvage") == 0)
            a.salvage = true;
        else
            a.argv[a.argc++] = argv[i];
    }
    if (a.salvage && (salvage_written = json_object()) == NULL) {
        free(a.argv);
        return cli_fail(CLI_EFAIL, NULL, "out of memory");
    }
    int ex = cli_guarded(NULL, "dump", dump_child, &a, a.salvage, dump_crash,
                         a.salvage ? salvage_line : NULL, &a);
    if (a.salvage && a.crashes)
        cli_fail(CLI_ECHECK, NULL, "dump --salvage: %" PRIu64 " crash%s on damaged pages; "
                 "%zu records written; the records that could not be read are left out",
                 a.crashes, a.crashes == 1 ? "" : "es", json_object_size(salvage_written));
    json_decref(salvage_written);
    salvage_written = NULL;
    free(a.argv);
    return ex;
}

int cli_cmd_dump(int argc, char **argv)
{
    if (!cli_guard_child())
        return dump_guarded(argc, argv);
    const char *const *types;
    json_t *line = NULL, *seqs = NULL, *written = NULL, *left_out = NULL;
    int first, ex;
    if ((ex = cli_simple_options(argc, argv, &first)) >= 0)
        return ex;
    if (argc - first < 1)
        return cli_usage("dump", "expected DB [TYPE...]");
    udb_env *env = NULL;
    udb_txn *txn = NULL;
    const char *schema = NULL;
    /* schema, records and sequences all from one read snapshot */
    if ((ex = cli_open_snapshot(&env, &txn, &schema, argv[first])) != CLI_OK)
        goto out;
    line = json_pack("{s o}", "schema", json_loads(schema, 0, NULL));
    if (!line) {
        ex = cli_fail(CLI_EFAIL, NULL, "stored schema is not a JSON object");
        goto out;
    }
    size_t ntypes;
    int rc;
    if ((rc = udb_types(&types, &ntypes, txn)) != 0) {
        ex = cli_fail_rc(rc, udb_errmsg(txn), NULL, "dump");
        goto out;
    }
    size_t i;
    int a;
    for (a = first + 1; a < argc; a++) {
        for (i = 0; i < ntypes && strcmp(types[i], argv[a]) != 0; i++)
            ;
        if (i == ntypes) {
            char names[1024] = "";
            size_t used = 0;
            for (i = 0; i < ntypes && used < sizeof names; i++)
                used += (size_t)snprintf(names + used, sizeof names - used, "%s%s",
                                         i ? ", " : "", types[i]);
            ex = cli_fail(CLI_EUSAGE, NULL, "dump: unknown record type \"%s\" (this database "
                          "has: %s)", argv[a], names);
            goto out;
        }
    }
    if ((written = json_object()) == NULL || (left_out = json_object()) == NULL) {
        ex = cli_fail(CLI_EFAIL, NULL, "out of memory");
        goto out;
    }
    salvage_schema = json_object_get(line, "schema");
    if (!cli_guard_part(0, "the schema line") && (ex = cli_print_json(line)) != CLI_OK)
        goto out;
    uint64_t damaged = 0;
    int failed = CLI_OK;   /* --salvage: a type that failed, the dump went on */
    for (i = 0; i < ntypes; i++) {
        int wanted = argc - first == 1;
        for (a = first + 1; a < argc && !wanted; a++)
            wanted = strcmp(types[i], argv[a]) == 0;
        if (!wanted)
            continue;
        /* --salvage: a type written by the children before this one is counted
           from the keys they sent (salvage_prior) */
        if (cli_guard_part(i + 1, types[i])) {
            if (!cli_guard_salvage())
                continue;
            uint64_t prior = salvage_prior(types[i]);
            udb_type_stat st;
            if (json_object_set_new(written, types[i], udb_jansson_u64(prior)))
                goto oom;
            if (udb_type_stat_get(&st, txn, types[i]) == 0 && st.records > prior) {
                json_object_set_new(left_out, types[i], udb_jansson_u64(st.records - prior));
                damaged += st.records - prior;   /* said when it was read */
            }
            continue;
        }
        /* LMDB's count of the type's records, kept by every write and stored apart
           from the records' pages: what a damaged page hides is measured against it */
        udb_type_stat st;
        uint64_t w, bad;
        if ((rc = udb_type_stat_get(&st, txn, types[i])) != 0) {
            ex = cli_fail_rc(rc, udb_errmsg(txn), NULL, types[i]);
            if (!cli_guard_salvage() || ex != CLI_ECHECK)
                goto out;
            memset(&st, 0, sizeof st);   /* --salvage: unknown; write what can be read */
        }
        if (!cli_guard_salvage()) {
            if ((ex = cli_dump_records(txn, types[i], UINT64_MAX, st.records, &w, &bad)))
                goto out;
        } else if ((ex = salvage_type(env, &txn, types[i], st.records, &w, &bad)) != CLI_OK) {
            if (ex != CLI_ECHECK)
                goto out;
            failed = ex;
        }
        if (json_object_set_new(written, types[i], udb_jansson_u64(w)))
            goto oom;
        if (bad || w < st.records) {
            /* what the type holds and was not written; if the stored count is no
               larger than what was written, it is wrong too: count what was skipped */
            uint64_t lost = st.records > w ? st.records - w : bad;
            fprintf(stderr, "uniqdb: %s: %" PRIu64 " of its %" PRIu64 " records left out of the "
                    "dump (damaged; %" PRIu64 " written", types[i], lost, st.records, w);
            if (bad != lost)
                fprintf(stderr, ", %" PRIu64 " unreadable entries skipped", bad);
            fprintf(stderr, ")\n");
            json_object_set_new(left_out, types[i], udb_jansson_u64(lost));
            damaged += lost;
        }
        /* --salvage reads each type in a new snapshot (damage makes LMDB refuse
           the rest of one): its names */
        if (cli_guard_salvage() && (rc = udb_types(&types, &ntypes, txn)) != 0) {
            ex = cli_fail_rc(rc, udb_errmsg(txn), NULL, "dump");
            goto out;
        }
    }
    if (cli_guard_part(ntypes + 1, "the sequences and end lines"))
        goto out;
    salvage_schema = NULL;   /* borrowed from line */
    json_decref(line);
    line = NULL;
    if ((seqs = json_object()) == NULL || (rc = udb_seq_foreach(txn, dump_seq, seqs)) != 0 ||
        (line = json_pack("{s O}", "sequences", seqs)) == NULL) {
        ex = seqs ? cli_fail_rc(rc ? rc : UDB_ENOMEM, udb_errmsg(txn), NULL, "sequences")
                  : cli_fail(CLI_EFAIL, NULL, "out of memory");
        goto out;
    }
    if ((ex = cli_print_json(line)) != CLI_OK)
        goto out;
    json_decref(line);
    if ((line = dump_end_line(written, json_object_size(seqs), left_out)) == NULL) {
        ex = cli_fail(CLI_EFAIL, NULL, "out of memory");
        goto out;
    }
    ex = cli_print_json(line);
    if (ex == CLI_OK)
        ex = failed;
    if (ex == CLI_OK && damaged)
        ex = cli_fail(CLI_ECHECK, NULL, "%" PRIu64 " damaged record%s left out of the dump (its "
                      "end line says so: a load of it reports an incomplete copy)", damaged,
                      damaged == 1 ? "" : "s");
    goto out;
oom:
    ex = cli_fail(CLI_EFAIL, NULL, "out of memory");
out:
    salvage_schema = NULL;
    json_decref(seqs);
    json_decref(line);
    json_decref(written);
    json_decref(left_out);
    udb_abort(txn);
    udb_close(env);
    return ex;
}

/* ---- load ------------------------------------------------------------------------------ */

enum { ST_PENDING, ST_OK, ST_CONFLICT, ST_INVALID };

typedef struct entry {
    size_t line;
    char *type;
    msgpack_sbuffer rec;
    int status;
    int rc;
    char *detail;
    json_t *conflict;
} entry;

typedef struct loader {
    udb_env *env;
    const char *path;
    const char *dir;   /* where env is opened: path, or where --atomic builds a new database */
    int or_get;
    int drop;          /* --drop: apply the dump's schema exactly, even where it loosens */
    bool had_schema;   /* the database had a schema before the load */
    bool has_schema;   /* it has one now (had one, or a schema line applied) */
    int atomic;        /* --atomic: one transaction for every record and the sequences */
    int no_end;        /* --no-end: a dump's end line is not required */
    entry *batch;      /* the records of a batch; with --atomic, of the input */
    size_t n, cap, bytes;
    int rolled_back;   /* --atomic: a line was bad, the transaction undone */
    int seq_failed;    /* --atomic: the sequences line failed */
    size_t schema_changed_line; /* a schema line that changed the database (0: none) */
    /* sequences present before the load: only raised, never lowered */
    json_t *had_seqs;
    json_t *seqs; /* the sequences line being applied */
    json_t *seqs_pending; /* --atomic: the sequences line, applied with the records */
    size_t seq_line;
    char seq_detail[1024];
    /* dump's end line: a part of the input that begins with a schema line (a
       dump) must end with one, matching what was read since that line */
    int section;       /* 0: nothing read yet, 1: counting, 2: after an end line */
    bool dump_part;    /* the part being read began with a schema line */
    bool want_end;     /* ... and must end with an end line (not --no-end) */
    size_t section_line; /* where it began */
    size_t end_line;   /* the last end line */
    json_t *sec_records; /* records per type read in this part */
    uint64_t sec_seqs; /* sequences read in this part */
    /* totals */
    uint64_t loaded, conflicts, invalid, lines;
    uint64_t incomplete; /* the input is not a complete dump: reported, the exit says so */
    uint64_t listed, not_listed; /* problems of single lines: listed, and left unlisted */
    int progress;      /* a progress line is on stderr */
    int tty;           /* stderr is a terminal: progress lines are drawn */
    uint64_t in_done, in_size; /* bytes read of the input, and its size (0: unknown) */
    double t0;         /* when the load started (CLOCK_MONOTONIC, seconds) */
} loader;

static void entry_reset(entry *e)
{
    free(e->detail);
    json_decref(e->conflict);
    e->detail = NULL;
    e->conflict = NULL;
    e->status = ST_PENDING;
    e->rc = 0;
}

static int load_seqs_fn(udb_txn *txn, void *ctx);
static void progress_draw(loader *l, const char *what, uint64_t records, uint64_t done,
                          uint64_t total);

static int load_batch_fn(udb_txn *txn, void *ctx)
{
    loader *l = ctx;
    size_t i;
    for (i = 0; i < l->n; i++) {
        entry *e = &l->batch[i];
        entry_reset(e); /* udb_write may run us again from the start */
        if (l->atomic && i % 4096 == 0 && i)
            progress_draw(l, "loading", i, i, l->n);
        int rc = udb_insert(NULL, txn, e->type, e->rec.data, e->rec.size);
        if (rc == 0) {
            e->status = ST_OK;
            continue;
        }
        e->rc = rc;
        e->detail = strdup(udb_errmsg(txn));
        if (rc == UDB_ECONFLICT) {
            e->status = ST_CONFLICT;
            e->conflict = cli_conflict_json(udb_conflict_info(txn));
        } else if (rc == UDB_EBADRECORD || rc == UDB_EKEYTOOLONG || rc == UDB_EINVAL) {
            /* validated before anything was written: the transaction goes on */
            e->status = ST_INVALID;
        } else {
            return rc;
        }
    }
    if (l->atomic) {
        l->rolled_back = 0;
        l->seq_failed = 0;
        for (i = 0; i < l->n && !l->invalid && !l->incomplete; i++)
            if (l->batch[i].status == ST_INVALID ||
                (l->batch[i].status == ST_CONFLICT && !l->or_get))
                break;
        if (l->invalid || l->incomplete || i < l->n) {
            l->rolled_back = 1; /* all or nothing: undo every insert */
            return UDB_EBADRECORD;
        }
        if (l->seqs_pending) {
            l->seqs = l->seqs_pending;
            int rc = load_seqs_fn(txn, l);
            l->seqs = NULL;
            l->seq_failed = rc != 0;
            return rc;
        }
    }
    return 0;
}

/* In a load, names come from the input, not the command line: an unknown
 * type or a sequence set too low is invalid input, not a usage error. */
static int load_code(int rc)
{
    return rc == UDB_EINVAL ? CLI_EINVALID : cli_exit_code(rc);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

void cli_progress_text(char *out, size_t size, const char *what, uint64_t records,
                       uint64_t done, uint64_t total, double secs)
{
    int n;
    if (total > 0) {
        /* whole percent, never 100 before the end */
        unsigned pct = done >= total ? 100 : (unsigned)((double)done * 100.0 / (double)total);
        n = snprintf(out, size, "%s: %u%% (%" PRIu64 " records", what, pct, records);
    } else {
        n = snprintf(out, size, "%s: %" PRIu64 " records", what, records);
    }
    if (n < 0 || (size_t)n >= size)
        return;
    if (secs > 0.0)
        snprintf(out + n, size - (size_t)n, total > 0 ? ", %.0f records/s)" : " (%.0f records/s)",
                 (double)records / secs);
    else if (total > 0)
        snprintf(out + n, size - (size_t)n, ")");
}

/* Draw the progress line (done of total: bytes of the input, or with --atomic
 * records of the transaction): on a terminal, for loads of over 5000 lines. */
static void progress_draw(loader *l, const char *what, uint64_t records, uint64_t done,
                          uint64_t total)
{
    if (!l->tty || l->lines <= 5000)
        return;
    char text[160];
    cli_progress_text(text, sizeof text, what, records, done, total, now_s() - l->t0);
    fprintf(stderr, "\r\033[K%s", text);
    l->progress = 1;
}

static void progress_clear(loader *l)
{
    if (l->progress) {
        fprintf(stderr, "\r\033[K");
        l->progress = 0;
    }
}

static int line_problem(loader *l, int code, size_t line, json_t *extra, const char *msg)
{
    json_t *x = extra ? extra : json_object();
    progress_clear(l);
    if (x)
        json_object_set_new(x, "line", json_integer((json_int_t)line));
    return cli_fail(code, x, "line %zu: %s", line, msg);
}

/* The problem of one line (a conflicting or invalid record, a line that is not
 * understood): the first LOAD_LIST_MAX are listed, the rest counted and the
 * count given at the end, so a load with a million conflicts stays readable. */
static void record_problem(loader *l, int code, size_t line, json_t *extra, const char *msg)
{
    if (l->listed >= LOAD_LIST_MAX) {
        json_decref(extra);
        l->not_listed++;
        return;
    }
    l->listed++;
    line_problem(l, code, line, extra, msg);
}

/* A problem that makes the copy incomplete: always listed, flagged in --json. */
static void incomplete_problem(loader *l, size_t line, const char *msg)
{
    l->incomplete++;
    line_problem(l, CLI_EINVALID, line, json_pack("{s b}", "incomplete", 1), msg);
}

static int flush(loader *l)
{
    size_t i;
    int ex = CLI_OK;
    if (l->n == 0 && !(l->atomic && l->seqs_pending && !l->invalid && !l->incomplete))
        return CLI_OK;
    int rc = cli_write(l->env, l->path, load_batch_fn, l);
    if (rc && l->seq_failed) {
        ex = line_problem(l, load_code(rc), l->seq_line, NULL,
                          l->seq_detail[0] ? l->seq_detail : udb_strerror(rc));
        goto out;
    }
    if (rc && !l->rolled_back) {
        const char *d = udb_env_errmsg(l->env);
        /* the record whose insert failed has the detail */
        for (i = 0; i < l->n; i++)
            if (l->batch[i].detail && *l->batch[i].detail && l->batch[i].rc == rc)
                d = l->batch[i].detail;
        progress_clear(l);
        ex = cli_fail(load_code(rc), NULL, "lines %zu-%zu: %s", l->batch[0].line,
                      l->batch[l->n - 1].line, *d ? d : udb_strerror(rc));
        goto out;
    }
    if (!rc)
        cli_committed = 1;
    for (i = 0; i < l->n; i++) {
        entry *e = &l->batch[i];
        if (e->status == ST_OK) {
            l->loaded += !rc;
        } else if (e->status == ST_CONFLICT) {
            l->conflicts++;
            if (!l->or_get)
                record_problem(l, CLI_ECONFLICT, e->line, e->conflict,
                               e->detail ? e->detail : "conflict");
            else
                json_decref(e->conflict);
            e->conflict = NULL; /* given to record_problem() or released */
        } else {
            l->invalid++;
            record_problem(l, load_code(e->rc), e->line, NULL,
                           e->detail && *e->detail ? e->detail : udb_strerror(e->rc));
        }
    }
    if (!l->atomic)
        progress_draw(l, "loading", l->loaded, l->in_done, l->in_size);
out:
    for (i = 0; i < l->n; i++) {
        entry_reset(&l->batch[i]);
        free(l->batch[i].type);
        msgpack_sbuffer_destroy(&l->batch[i].rec);
    }
    l->n = 0;
    l->bytes = 0;
    return ex;
}

static int collect_seq(const char *name, uint64_t value, void *ctx)
{
    return json_object_set_new(ctx, name, udb_jansson_u64(value)) ? UDB_ENOMEM : 0;
}

static int load_seqs_fn(udb_txn *txn, void *ctx)
{
    loader *l = ctx;
    l->seq_detail[0] = '\0';
    const char *name;
    json_t *v;
    int rc;
    json_object_foreach(l->seqs, name, v) {
        uint64_t want;
        if (udb_jansson_to_u64(&want, v)) {
            snprintf(l->seq_detail, sizeof l->seq_detail,
                     "sequence \"%s\": value must be an integer >= 0", name);
            return UDB_EBADRECORD;
        }
        if (json_object_get(l->had_seqs, name)) {
            uint64_t cur;
            rc = udb_seq_get(&cur, txn, name);
            if (rc == 0 && cur >= want)
                continue;
            if (rc && rc != UDB_ENOTFOUND)
                goto fail;
        }
        if ((rc = udb_seq_set(txn, name, want)) != 0)
            goto fail;
    }
    return 0;
fail:
    snprintf(l->seq_detail, sizeof l->seq_detail, "sequence \"%s\": %s", name, udb_errmsg(txn));
    return rc;
}

/* Room for more records of the batch. */
static int grow(loader *l)
{
    size_t cap = l->cap * 2;
    entry *b = cap > SIZE_MAX / sizeof *b ? NULL : realloc(l->batch, cap * sizeof *b);
    if (!b)
        return cli_fail(CLI_EFAIL, NULL, "out of memory holding %zu records%s", l->n,
                        l->atomic ? " for --atomic; load without it" : "");
    memset(b + l->cap, 0, (cap - l->cap) * sizeof *b);
    l->batch = b;
    l->cap = cap;
    return CLI_OK;
}

/* ---- dump's end line ------------------------------------------------------------------ */

/* A schema line begins a dump: from here on records and sequences are counted
 * for its end line.  A dump cut before its end line, then followed by another,
 * is reported here. */
static void section_schema(loader *l, size_t lineno)
{
    if (l->section == 1 && !l->dump_part)
        return; /* hand-made input that did not begin with a schema line: no dump */
    if (l->section == 1 && l->want_end)
        incomplete_problem(l, l->section_line, "the dump that begins here has no end line "
                           "before the next schema line: it was cut, and what was loaded of "
                           "it is not a complete copy");
    l->section = 1;
    l->dump_part = true;
    l->want_end = !l->no_end;
    l->section_line = lineno;
    l->sec_seqs = 0;
    json_object_clear(l->sec_records);
}

/* A record or sequences line: counted, or refused after an end line.
 * Returns false for a line that must not be loaded. */
static bool section_count(loader *l, size_t lineno, const char *type, size_t nseqs)
{
    if (l->section == 2) {
        char msg[200];
        l->invalid++;
        snprintf(msg, sizeof msg, "after dump's end line (line %zu) only a new dump, beginning "
                 "with its schema line, may follow; this line was not loaded", l->end_line);
        record_problem(l, CLI_EINVALID, lineno, NULL, msg);
        return false;
    }
    l->section = 1;
    if (type) {
        json_t *n = json_object_get(l->sec_records, type);
        json_object_set_new(l->sec_records, type, json_integer(n ? json_integer_value(n) + 1 : 1));
    }
    l->sec_seqs += nseqs;
    return true;
}

/* Append "NAME: A written, B read" (what the end line says against what was
 * read) to a message, while it has room. */
static void count_diff(char *msg, size_t size, const char *name, uint64_t want, uint64_t got)
{
    size_t n = strlen(msg);
    if (n + 1 < size)
        snprintf(msg + n, size - n, "%s%s: %" PRIu64 " written, %" PRIu64 " read",
                 n ? "; " : "", name, want, got);
}

/* dump's end line: {"end": {"records": {TYPE: N, ...}, "sequences": N[, "left_out":
 * {TYPE: N, ...}]}}.  What it counts must be what was read since the schema line;
 * records the dump left out make the copy incomplete. */
static void section_end(loader *l, json_t *end, size_t lineno)
{
    json_t *recs = json_object_get(end, "records"), *left = json_object_get(end, "left_out");
    json_t *v;
    const char *name;
    uint64_t want, seqs, lost = 0;
    char diff[600] = "", msg[900];
    if (l->section == 2) {
        l->invalid++;
        record_problem(l, CLI_EINVALID, lineno, NULL, "a second end line, with no dump before it");
        return;
    }
    l->section = 2;
    l->dump_part = false;
    l->end_line = lineno;
    bool ok = json_is_object(recs) && !udb_jansson_to_u64(&seqs, json_object_get(end, "sequences")) &&
              (!left || json_is_object(left));
    json_object_foreach(recs, name, v) ok = ok && !udb_jansson_to_u64(&want, v);
    json_object_foreach(left, name, v) ok = ok && !udb_jansson_to_u64(&want, v);
    if (!ok) {
        incomplete_problem(l, lineno, "an end line must be {\"end\": {\"records\": {TYPE: N, "
                           "...}, \"sequences\": N}} as dump writes it: the input cannot be "
                           "checked, so it is not taken as a complete copy");
        return;
    }
    json_object_foreach(recs, name, v) {
        json_t *got = json_object_get(l->sec_records, name);
        udb_jansson_to_u64(&want, v);
        if (want != (got ? (uint64_t)json_integer_value(got) : 0))
            count_diff(diff, sizeof diff, name, want, got ? (uint64_t)json_integer_value(got) : 0);
    }
    json_object_foreach(l->sec_records, name, v)
        if (!json_object_get(recs, name))
            count_diff(diff, sizeof diff, name, 0, (uint64_t)json_integer_value(v));
    if (seqs != l->sec_seqs)
        count_diff(diff, sizeof diff, "sequences", seqs, l->sec_seqs);
    if (*diff) {
        snprintf(msg, sizeof msg, "dump's end line does not match the lines before it (%s): lines "
                 "are missing or were changed, and this is not a complete copy", diff);
        incomplete_problem(l, lineno, msg);
    }
    *diff = '\0';
    json_object_foreach(left, name, v) {
        udb_jansson_to_u64(&want, v);
        if (want) {
            size_t n = strlen(diff);
            if (n + 1 < sizeof diff)
                snprintf(diff + n, sizeof diff - n, "%s%s: %" PRIu64, n ? ", " : "", name, want);
        }
        lost = want > UINT64_MAX - lost ? UINT64_MAX : lost + want;
    }
    if (lost) {
        snprintf(msg, sizeof msg, "the dump left out %" PRIu64 " damaged record%s of its database "
                 "(%s), so this is not a complete copy", lost, lost == 1 ? "" : "s", diff);
        incomplete_problem(l, lineno, msg);
    }
}

/* One NDJSON line.  Returns CLI_OK, or an exit code that stops the load. */
static int load_line(loader *l, char *text, size_t len, size_t lineno)
{
    char err[CLI_ERRLEN];
    int ex = CLI_OK;
    json_t *v = cli_json_parse(text, len, err);
    if (!v) {
        l->invalid++;
        record_problem(l, CLI_EINVALID, lineno, NULL, err);
        return CLI_OK;
    }
    json_t *x;
    int rc;
    if ((x = json_object_get(v, "schema")) != NULL && json_object_size(v) == 1) {
        char *s = cli_json_dumps(x, 0);
        section_schema(l, lineno);
        if (l->atomic && l->n) {
            /* the schema has its own transaction: it cannot follow records */
            ex = line_problem(l, CLI_EINVALID, lineno, NULL,
                              "with --atomic a schema line must come before every record (dump "
                              "writes it first); the load stopped here and nothing was loaded");
        } else if ((ex = flush(l)) == CLI_OK) {
            char *changes = NULL;
            /* a dump never loosens the database it is loaded into (unless --drop):
               what the stored schema has and the dump's lacks is kept, and the user
               is told */
            unsigned flags = l->drop ? UDB_SCHEMA_DROP : UDB_SCHEMA_KEEP;
            rc = s ? cli_schema_apply(&changes, l->env, l->path, s, strlen(s), flags)
                   : UDB_ENOMEM;
            if (rc == UDB_EDBSFULL) {
                /* more types and indexes than this handle can open: again, sized
                   for this schema (nothing is pending: flush() ran above) */
                udb_close(l->env);
                l->env = NULL;
                if ((ex = cli_open_sized(&l->env, l->dir, CLI_OPEN_CREATE,
                                         cli_schema_dbs(s, strlen(s)))) == CLI_OK)
                    rc = cli_schema_apply(&changes, l->env, l->path, s, strlen(s), flags);
                else
                    rc = 0;   /* reported by cli_open_sized; ex stops the load */
            }
            if (rc == 0 && changes && *changes)
                l->schema_changed_line = lineno;
            if (rc == 0 && l->had_schema && changes && *changes) {
                for (char *c = strtok(changes, "\n"); c; c = strtok(NULL, "\n"))
                    fprintf(stderr, "uniqdb: %s: schema: %s\n", cli_shown(l->path), c);
            }
            udb_free(changes);
            if (rc) {
                char msg[1200];
                snprintf(msg, sizeof msg, "schema: %s",
                         *udb_env_errmsg(l->env) ? udb_env_errmsg(l->env) : udb_strerror(rc));
                ex = line_problem(l, load_code(rc), lineno, NULL, msg);
            } else {
                cli_committed = 1;
                l->has_schema = true;
            }
        }
        udb_free(s);
    } else if ((x = json_object_get(v, "record")) != NULL && json_object_size(v) == 2 &&
               udb_jansson_text(json_object_get(v, "type"))) {
        entry *e = &l->batch[l->n];
        if (!l->has_schema) {
            /* one error, not one per record: nothing can load without a schema */
            ex = line_problem(l, CLI_EINVALID, lineno, NULL,
                              "a record, but the database has no schema and no {\"schema\": "
                              "...} line came before it (dump writes it first); the load "
                              "stopped here");
            goto out;
        }
        if (!section_count(l, lineno, udb_jansson_text(json_object_get(v, "type")), 0))
            goto out;
        if (!json_is_object(x)) {
            l->invalid++;
            record_problem(l, CLI_EINVALID, lineno, NULL, "\"record\" must be a JSON object");
            goto out;
        }
        msgpack_sbuffer_init(&e->rec);
        if (cli_json_to_msgpack(&e->rec, x, err)) {
            msgpack_sbuffer_destroy(&e->rec);
            l->invalid++;
            record_problem(l, CLI_EINVALID, lineno, NULL, err);
            goto out;
        }
        e->type = strdup(udb_jansson_text(json_object_get(v, "type")));
        e->line = lineno;
        e->status = ST_PENDING;
        l->n++;
        l->bytes += e->rec.size;
        if (!e->type)
            ex = cli_fail(CLI_EFAIL, NULL, "out of memory");
        else if (!l->atomic && (l->n == BATCH || l->bytes >= BATCH_BYTES))
            ex = flush(l);
        else if (l->n == l->cap)
            ex = grow(l);
    } else if ((x = json_object_get(v, "sequences")) != NULL && json_object_size(v) == 1 &&
               json_is_object(x)) {
        if (!section_count(l, lineno, NULL, json_object_size(x))) {
            /* reported */
        } else if (l->atomic) {
            json_decref(l->seqs_pending);
            l->seqs_pending = json_incref(x);
            l->seq_line = lineno;
        } else if ((ex = flush(l)) == CLI_OK) {
            l->seqs = x;
            rc = cli_write(l->env, l->path, load_seqs_fn, l);
            l->seqs = NULL;
            if (rc)
                ex = line_problem(l, load_code(rc), lineno, NULL,
                                  l->seq_detail[0] ? l->seq_detail : udb_strerror(rc));
            else
                cli_committed = 1;
        }
    } else if ((x = json_object_get(v, "end")) != NULL && json_object_size(v) == 1 &&
               json_is_object(x)) {
        /* the lines before are reported first */
        if (l->atomic || (ex = flush(l)) == CLI_OK)
            section_end(l, x, lineno);
    } else {
        l->invalid++;
        record_problem(l, CLI_EINVALID, lineno, NULL,
                       "expected {\"schema\": ...}, {\"type\": ..., \"record\": ...}, "
                       "{\"sequences\": ...} or dump's {\"end\": ...}");
    }
out:
    json_decref(v);
    return ex;
}

/* Whether a line (as read, with its newline) is a {"schema": ...} line. */
static bool starts_with_schema(const char *text, size_t len)
{
    char err[CLI_ERRLEN];
    json_t *v = cli_json_parse(text, len, err);
    bool yes = json_object_get(v, "schema") && json_object_size(v) == 1;
    json_decref(v);
    return yes;
}

/* Whether path holds a database (its data file; on a server, a stored
 * schema).  *exists gets the answer; returns an exit code (reported). */
static int db_exists(bool *exists, const char *path)
{
    if (cli_is_url(path)) {
        int has, ex = cli_url_has_db(&has, path);
        *exists = has;
        return ex;
    }
    *exists = true; /* when in doubt: open it and see */
    char *p;
    if (asprintf(&p, "%s/" UDB_DATA_FILE, path) < 0)
        return CLI_OK;
    *exists = access(p, F_OK) == 0;
    free(p);
    return CLI_OK;
}

int cli_cmd_load(int argc, char **argv)
{
    static const struct option opts[] = {
        {"or-get", no_argument, NULL, 'g'},
        {"drop", no_argument, NULL, 'D'},
        {"atomic", no_argument, NULL, 'A'},
        {"no-end", no_argument, NULL, 'E'},
        CLI_COMMON_LONGOPTS,
    };
    cli_newdb nd = {0};
    char *line = NULL;
    size_t lineno = 0;
    optind = 0;
    opterr = 0;
    int or_get = 0, drop = 0, atomic = 0, no_end = 0, c, ex;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'g':
            or_get = 1;
            break;
        case 'D':
            drop = 1;
            break;
        case 'A':
            atomic = 1;
            break;
        case 'E':
            no_end = 1;
            break;
        default:
            if ((ex = cli_common_option(c, argv, NULL)) >= 0)
                return ex;
            break;
        }
    }
    if (argc - optind < 1 || argc - optind > 2)
        return cli_usage("load", "expected DB [FILE|-]");
    const char *file = "-";
    if (argc - optind == 2)
        file = argv[optind + 1];
    loader *l = calloc(1, sizeof *l);
    if (!l || (l->batch = calloc(1024, sizeof *l->batch)) == NULL) {
        free(l);
        return cli_fail(CLI_EFAIL, NULL, "out of memory");
    }
    l->cap = 1024;
    l->or_get = or_get;
    l->drop = drop;
    l->atomic = atomic;
    l->no_end = no_end;
    FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
    if (!f) {
        ex = cli_fail(CLI_EFAIL, NULL, "%s: %s", file, strerror(errno));
        goto out;
    }
    if ((l->sec_records = json_object()) == NULL) {
        ex = cli_fail(CLI_EFAIL, NULL, "out of memory");
        goto out;
    }
    {
        off_t at = ftello(f);
        struct stat st;
        /* a file (also given on stdin): the percentage is of its bytes */
        if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > (at > 0 ? at : 0))
            l->in_size = (uint64_t)(st.st_size - (at > 0 ? at : 0));
    }
    /* the first line that is not blank, before the database is opened: an empty
       input (a dump that wrote nothing, /dev/null) loads nothing and creates nothing */
    size_t cap = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, f)) > 0 && strspn(line, " \t\r\n") == (size_t)got) {
        lineno++;
        l->in_done += (uint64_t)got;
    }
    if (got <= 0) {
        ex = ferror(f) ? cli_fail(CLI_EFAIL, NULL, "%s: read error", file)
                       : cli_fail(CLI_EINVALID, NULL, "%s: the input is empty: nothing to load "
                                  "(a dump has at least a schema line and an end line); %s was "
                                  "neither created nor changed",
                                  strcmp(file, "-") == 0 ? "stdin" : file, argv[optind]);
        goto out;
    }
    /* on a server, whether DB holds a database is asked once: a new one has
       nothing to read before the load (not even its sequences table) */
    bool exists = true, schema_first = starts_with_schema(line, (size_t)got);
    if ((!schema_first || cli_is_url(argv[optind])) &&
        (ex = db_exists(&exists, argv[optind])) != CLI_OK)
        goto out;
    if (!schema_first && !exists) {
        /* decided before anything is created: a database without a schema is never
           made, and nothing has to be removed again (which could race with another
           process creating it) */
        ex = cli_fail(CLI_EINVALID, NULL, "%s does not exist, and the input does not begin with "
                      "a {\"schema\": ...} line (dump writes it first): a new database needs "
                      "one; nothing was created", argv[optind]);
        goto out;
    }
    /* --atomic builds a new database aside and puts it in place only once
       loaded: a failed load leaves nothing behind and removes nothing */
    if (atomic && (ex = cli_newdb_begin(&nd, argv[optind])) != CLI_OK)
        goto out;
    l->dir = atomic ? nd.build : argv[optind];
    if ((ex = cli_open(&l->env, l->dir, CLI_OPEN_CREATE)) != CLI_OK)
        goto out;
    if ((l->had_seqs = json_object()) == NULL) {
        ex = cli_fail(CLI_EFAIL, NULL, "out of memory");
        goto out;
    }
    l->path = argv[optind];
    l->tty = isatty(2);
    l->t0 = now_s();
    udb_txn *txn = NULL;
    int rc = 0;
    if (exists && (rc = udb_begin(&txn, l->env, UDB_RDONLY)) == 0)
        rc = udb_seq_foreach(txn, collect_seq, l->had_seqs);
    if (exists && rc == 0) {
        const char *const *names;
        size_t ntypes = 0;
        rc = udb_types(&names, &ntypes, txn);
        l->had_schema = l->has_schema = ntypes > 0;
    }
    if (rc) {
        ex = cli_fail_rc(rc, txn ? udb_errmsg(txn) : udb_env_errmsg(l->env), NULL, "load");
        udb_abort(txn);
        goto out;
    }
    udb_abort(txn);
    for (; got > 0; got = getline(&line, &cap, f)) {
        size_t len = (size_t)got;
        lineno++;
        l->lines = lineno;
        l->in_done += (uint64_t)got;
        if (lineno % 4096 == 0)
            progress_draw(l, l->atomic ? "reading" : "loading",
                          l->atomic ? l->n : l->loaded + l->n, l->in_done, l->in_size);
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        line[len] = '\0';
        if (strspn(line, " \t") == len)
            continue;
        if ((ex = load_line(l, line, len, lineno)) != CLI_OK)
            goto out;
    }
    if (ferror(f)) {
        ex = cli_fail(CLI_EFAIL, NULL, "%s: read error", file);
        goto out;
    }
    if (l->section == 1 && l->want_end) {
        char msg[400];
        snprintf(msg, sizeof msg, "the input ends without dump's end line ({\"end\": ...}, "
                 "the last line of every dump): the dump that begins at line %zu stopped early "
                 "or was cut, and this is not a complete copy (for input written by hand, give "
                 "--no-end)", l->section_line);
        incomplete_problem(l, lineno, msg);
    }
    if ((ex = flush(l)) != CLI_OK)
        goto out;
    progress_clear(l);
    ex = l->invalid || l->incomplete ? CLI_EINVALID
         : l->conflicts && !l->or_get ? CLI_ECONFLICT : CLI_OK;
    if (l->not_listed)
        cli_fail(ex, json_pack("{s I}", "not_listed", (json_int_t)l->not_listed),
                 "%" PRIu64 " more conflicting or invalid lines not listed (only the first %d are)",
                 l->not_listed, LOAD_LIST_MAX);
    if (ex == CLI_OK && nd.fresh) {
        udb_close(l->env);
        l->env = NULL;
        if ((ex = cli_newdb_publish(&nd)) == CLI_NEWDB_TAKEN)
            ex = cli_fail(CLI_EFAIL, NULL, "%s: another process created this database while "
                          "the load ran; --atomic loaded nothing into it (load again to load "
                          "into that database)", l->path);
        if (ex != CLI_OK)
            cli_committed = 0; /* what was committed is not in place */
    }
    if (l->atomic && ex != CLI_OK)
        fprintf(stderr, "uniqdb: --atomic: nothing loaded (%" PRIu64 " conflicting, %" PRIu64
                " invalid%s)\n", l->conflicts, l->invalid,
                l->incomplete ? "; the input is not a complete dump" : "");
    else if (l->conflicts || l->invalid || l->incomplete || isatty(2))
        fprintf(stderr,
                "uniqdb: loaded %" PRIu64 " records, %" PRIu64 " conflicting%s, %" PRIu64
                " invalid%s%s%s\n",
                l->loaded, l->conflicts, l->or_get ? " (skipped)" : "", l->invalid,
                l->incomplete ? "; the input is not a complete dump, so " : "",
                l->incomplete ? cli_shown(l->path) : "",
                l->incomplete ? " is not a complete copy" : "");
out:
    if (l && l->atomic && ex != CLI_OK && (l->env || nd.fresh)) {
        /* all or nothing: what a schema line did stays (its own transaction);
           a new database is not put in place */
        udb_close(l->env);
        l->env = NULL;
        if (nd.fresh) {
            fprintf(stderr, "uniqdb: %s: --atomic: the database was not created\n",
                    cli_shown(argv[optind]));
        } else if (l->schema_changed_line) {
            fprintf(stderr, "uniqdb: %s: --atomic: the schema change of line %zu stays "
                    "applied (a schema is applied in its own transaction)\n", cli_shown(l->path),
                    l->schema_changed_line);
        }
    }
    if (l) {
        progress_clear(l);
        for (size_t i = 0; i < l->n; i++) {
            entry_reset(&l->batch[i]);
            free(l->batch[i].type);
            msgpack_sbuffer_destroy(&l->batch[i].rec);
        }
        free(l->batch);
        json_decref(l->seqs_pending);
        json_decref(l->had_seqs);
        json_decref(l->sec_records);
        udb_close(l->env);
        free(l);
    }
    cli_newdb_end(&nd);
    free(line);
    if (f && f != stdin)
        fclose(f);
    return ex;
}
