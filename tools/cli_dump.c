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

/* ---- dump ---------------------------------------------------------------------------- */

static int dump_seq(const char *name, uint64_t value, void *ctx)
{
    return json_object_set_new(ctx, name, cli_json_from_u64(value)) ? UDB_ENOMEM : 0;
}

int cli_dump_records(udb_txn *txn, const char *type, uint64_t limit, uint64_t *damaged)
{
    udb_cursor *cur = NULL;
    char err[CLI_ERRLEN];
    uint64_t n = 0;
    int rc;
    if ((rc = udb_scan(&cur, txn, type, NULL, NULL, 0)) != 0)
        return cli_fail_rc(rc, udb_errmsg(txn), NULL, type);
    udb_val v;
    int ex = CLI_OK;
    while (limit-- > 0 && (rc = udb_cursor_next(&v, cur)) == 0) {
        json_t *rec = cli_msgpack_to_json(v.data, v.size, err);
        json_t *line = rec ? json_pack("{s s s o}", "type", type, "record", rec) : NULL;
        n++;
        if (!rec) {
            /* A damaged record: say so and salvage the rest (exit 1 at the end). */
            cli_fail(CLI_EFAIL, NULL, "%s: record %" PRIu64 " in key order skipped: %s", type,
                     n, err);
            (*damaged)++;
            continue;
        }
        if (!line) {
            ex = cli_fail(CLI_EFAIL, NULL, "out of memory");
            goto out;
        }
        ex = cli_print_json(line);
        json_decref(line);
        if (ex != CLI_OK)
            goto out;
    }
    if (rc && rc != UDB_ENOTFOUND)
        ex = cli_fail_rc(rc, udb_errmsg(txn), NULL, type);
out:
    udb_cursor_close(cur);
    return ex;
}

int cli_cmd_dump(int argc, char **argv)
{
    const char *const *types;
    json_t *line = NULL, *seqs = NULL;
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
    if ((ex = cli_print_json(line)) != CLI_OK)
        goto out;
    uint64_t damaged = 0;
    for (i = 0; i < ntypes; i++) {
        int wanted = argc - first == 1;
        for (a = first + 1; a < argc && !wanted; a++)
            wanted = strcmp(types[i], argv[a]) == 0;
        if (wanted && (ex = cli_dump_records(txn, types[i], UINT64_MAX, &damaged)) != CLI_OK)
            goto out;
    }
    json_decref(line);
    line = NULL;
    if ((seqs = json_object()) == NULL || (rc = udb_seq_foreach(txn, dump_seq, seqs)) != 0 ||
        (line = json_pack("{s O}", "sequences", seqs)) == NULL) {
        ex = seqs ? cli_fail_rc(rc ? rc : UDB_ENOMEM, udb_errmsg(txn), NULL, "sequences")
                  : cli_fail(CLI_EFAIL, NULL, "out of memory");
        goto out;
    }
    ex = cli_print_json(line);
    if (ex == CLI_OK && damaged)
        ex = cli_fail(CLI_EFAIL, NULL, "%" PRIu64 " damaged record%s left out of the dump",
                      damaged, damaged == 1 ? "" : "s");
out:
    json_decref(seqs);
    json_decref(line);
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
    /* totals */
    uint64_t loaded, conflicts, invalid, lines;
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
        for (i = 0; i < l->n && !l->invalid; i++)
            if (l->batch[i].status == ST_INVALID ||
                (l->batch[i].status == ST_CONFLICT && !l->or_get))
                break;
        if (l->invalid || i < l->n) {
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

static int flush(loader *l)
{
    size_t i;
    int ex = CLI_OK;
    if (l->n == 0 && !(l->atomic && l->seqs_pending && !l->invalid))
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
                line_problem(l, CLI_ECONFLICT, e->line, e->conflict,
                             e->detail ? e->detail : "conflict");
            else
                json_decref(e->conflict);
            e->conflict = NULL; /* given to line_problem() or released */
        } else {
            l->invalid++;
            line_problem(l, load_code(e->rc), e->line, NULL,
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
    return json_object_set_new(ctx, name, cli_json_from_u64(value)) ? UDB_ENOMEM : 0;
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
        if (cli_json_to_u64(v, &want)) {
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

/* One NDJSON line.  Returns CLI_OK, or an exit code that stops the load. */
static int load_line(loader *l, char *text, size_t len, size_t lineno)
{
    char err[CLI_ERRLEN];
    int ex = CLI_OK;
    json_t *v = cli_json_parse(text, len, err);
    if (!v) {
        l->invalid++;
        line_problem(l, CLI_EINVALID, lineno, NULL, err);
        return CLI_OK;
    }
    json_t *x;
    int rc;
    if ((x = json_object_get(v, "schema")) != NULL && json_object_size(v) == 1) {
        char *s = cli_json_dumps(x, 0);
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
                    fprintf(stderr, "uniqdb: %s: schema: %s\n", l->path, c);
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
        free(s);
    } else if ((x = json_object_get(v, "record")) != NULL && json_object_size(v) == 2 &&
               cli_json_text(json_object_get(v, "type"))) {
        entry *e = &l->batch[l->n];
        if (!l->has_schema) {
            /* one error, not one per record: nothing can load without a schema */
            ex = line_problem(l, CLI_EINVALID, lineno, NULL,
                              "a record, but the database has no schema and no {\"schema\": "
                              "...} line came before it (dump writes it first); the load "
                              "stopped here");
            goto out;
        }
        if (!json_is_object(x)) {
            l->invalid++;
            line_problem(l, CLI_EINVALID, lineno, NULL, "\"record\" must be a JSON object");
            goto out;
        }
        msgpack_sbuffer_init(&e->rec);
        if (cli_json_to_msgpack(&e->rec, x, err)) {
            msgpack_sbuffer_destroy(&e->rec);
            l->invalid++;
            line_problem(l, CLI_EINVALID, lineno, NULL, err);
            goto out;
        }
        e->type = strdup(cli_json_text(json_object_get(v, "type")));
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
        if (l->atomic) {
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
    } else {
        l->invalid++;
        line_problem(l, CLI_EINVALID, lineno, NULL,
                     "expected {\"schema\": ...}, {\"type\": ..., \"record\": ...} or "
                     "{\"sequences\": ...}");
    }
out:
    json_decref(v);
    return ex;
}

int cli_cmd_load(int argc, char **argv)
{
    static const struct option opts[] = {
        {"or-get", no_argument, NULL, 'g'},
        {"drop", no_argument, NULL, 'D'},
        {"atomic", no_argument, NULL, 'A'},
        CLI_COMMON_LONGOPTS,
    };
    cli_newdb nd = {0};
    char *line = NULL;
    size_t lineno = 0;
    optind = 0;
    opterr = 0;
    int or_get = 0, drop = 0, atomic = 0, c, ex;
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
    FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
    if (!f) {
        ex = cli_fail(CLI_EFAIL, NULL, "%s: %s", file, strerror(errno));
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
    {
        off_t at = ftello(f);
        struct stat st;
        /* a file (also given on stdin): the percentage is of its bytes */
        if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > (at > 0 ? at : 0))
            l->in_size = (uint64_t)(st.st_size - (at > 0 ? at : 0));
    }
    udb_txn *txn = NULL;
    int rc;
    if ((rc = udb_begin(&txn, l->env, UDB_RDONLY)) == 0)
        rc = udb_seq_foreach(txn, collect_seq, l->had_seqs);
    if (rc == 0) {
        const char *const *names;
        size_t ntypes = 0;
        rc = udb_types(&names, &ntypes, txn);
        l->had_schema = l->has_schema = ntypes > 0;
    }
    udb_abort(txn);
    if (rc) {
        ex = cli_fail_rc(rc, udb_env_errmsg(l->env), NULL, "load");
        goto out;
    }
    size_t cap = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, f)) > 0) {
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
    if ((ex = flush(l)) != CLI_OK)
        goto out;
    progress_clear(l);
    ex = l->invalid ? CLI_EINVALID : l->conflicts && !l->or_get ? CLI_ECONFLICT : CLI_OK;
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
                " invalid)\n", l->conflicts, l->invalid);
    else if (l->conflicts || l->invalid || isatty(2))
        fprintf(stderr,
                "uniqdb: loaded %" PRIu64 " records, %" PRIu64 " conflicting%s, %" PRIu64
                " invalid\n",
                l->loaded, l->conflicts, l->or_get ? " (skipped)" : "", l->invalid);
out:
    if (l && l->atomic && ex != CLI_OK && (l->env || nd.fresh)) {
        /* all or nothing: what a schema line did stays (its own transaction);
           a new database is not put in place */
        udb_close(l->env);
        l->env = NULL;
        if (nd.fresh) {
            fprintf(stderr, "uniqdb: %s: --atomic: the database was not created\n",
                    argv[optind]);
        } else if (l->schema_changed_line) {
            fprintf(stderr, "uniqdb: %s: --atomic: the schema change of line %zu stays "
                    "applied (a schema is applied in its own transaction)\n", l->path,
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
        udb_close(l->env);
        free(l);
    }
    cli_newdb_end(&nd);
    free(line);
    if (f && f != stdin)
        fclose(f);
    return ex;
}
