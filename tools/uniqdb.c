/*
 * uniqdb.c -- the `uniqdb` command line (main.c only calls cli_main): the
 * command table, --help/--version, and the one place that turns failures
 * into an exit code plus either a line on stderr or (with --json) an RFC 9457
 * problem object on stdout, so that scripts can branch without parsing text.
 */
#include "cli_common.h"

#include <inttypes.h>
#include "support.h"

#include <errno.h>
#include <unistd.h>
#include <time.h>
#include <pthread.h>
#include <limits.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

int cli_json_errors;
double cli_timeout;
int cli_committed;

typedef struct command {
    const char *name;
    cli_command_fn *fn;
    const char *args;
    const char *summary;
    const char *help;
} command;

static const command commands[] = {
    {"init", cli_cmd_init, "DB SCHEMA.json [--keep | --drop]",
     "create a database or change its schema",
     "Create the database DB (a directory, or a PostgreSQL URL: the schema is applied\n"
     "on the server in one transaction) with the schema in SCHEMA.json (\"-\": stdin),\n"
     "or apply a schema change to an existing one, and print what changed.  Applying\n"
     "the stored schema again changes nothing.  A schema that lacks or loosens what\n"
     "the stored one has (an index, a type, \"required\") is refused, naming each item,\n"
     "unless --keep (keep them; add only what is new: a subset of the stored schema\n"
     "is then a no-op) or --drop (remove them; a dropped type loses its records)."},
    {"schema", cli_cmd_schema, "DB", "print the stored schema", "Print the stored schema as JSON."},
    {"put", cli_cmd_put, "DB TYPE JSON [--or-get [INDEX]] [--upsert [INDEX]]",
     "insert a record (or get / upsert it)",
     "Insert the record JSON (an object; \"-\": read it from stdin) and print the stored\n"
     "record.  --or-get: if the record's key in unique index INDEX (default: the\n"
     "primary key) is already held, print that record instead (nothing is changed).\n"
     "--upsert: if it is held, merge the given fields into that record (JSON must\n"
     "still be a valid record: what would have been inserted).  On stderr,\n"
     "\"created\", \"existing\" or \"updated\" says which happened."},
    {"get", cli_cmd_get, "DB TYPE KEY", "a record by primary key",
     "Print the record with primary key KEY, a JSON value: 42 or '\"qg2X9STk79i\"'."},
    {"find", cli_cmd_find, "DB TYPE INDEX JSON-ARRAY", "a record by unique index",
     "Print the record that holds the values JSON-ARRAY (one per field, in index\n"
     "order) in the unique index INDEX.  A single value may be given without [ ]."},
    {"scan", cli_cmd_scan,
     "DB TYPE [INDEX [JSON-ARRAY-PREFIX]] [--ge|--gt JSON] [--le|--lt JSON]\n"
     "       [--reverse] [--limit N] [--after JSON]",
     "records in key or index order, in a range",
     "Print the records of TYPE as NDJSON, in primary-key order or in the order of\n"
     "INDEX (\"-\" or the key field: primary key): SQL's ORDER BY over its fields,\n"
     "then the primary key, NULLs first.  A prefix keeps the records whose leading\n"
     "index fields equal it.  --ge (or --from) and --gt give a lower bound, --le (or\n"
     "--to) and --lt an upper one: a JSON array of values for the index's leading\n"
     "fields (a single value may be given without [ ]), compared as a row, so\n"
     "--ge '[\"p1\", \"10:00\"]' --lt '[\"p1\", \"14:00\"]' is p1 from 10:00 to before 14:00,\n"
     "and a bound with fewer values takes in everything that starts with them.\n"
     "NULL is the smallest value: an upper bound alone takes in the records whose\n"
     "field is NULL (--gt null leaves them out).  --reverse: from the top down, NULLs\n"
     "last.  --limit N: at most N records; when more follow, the last line of stderr\n"
     "is \"next: --after JSON\", and the same command with --after JSON prints the\n"
     "next page (JSON is the last record's index values then its primary key: a\n"
     "position, valid after that record changed or was deleted)."},
    {"update", cli_cmd_update, "DB TYPE KEY JSON [--merge]", "replace or merge a record",
     "Replace the record with primary key KEY by JSON (\"-\": stdin), or with --merge\n"
     "merge JSON's fields into it (null removes a field).  Prints the stored record."},
    {"delete", cli_cmd_delete, "DB TYPE KEY", "delete a record",
     "Delete the record with primary key KEY."},
    {"seq", cli_cmd_seq, "DB NAME [--get | --set N]", "take the next value of a sequence",
     "Take the next value of the sequence NAME and print it.  --get prints the\n"
     "current value without advancing it; --set N sets it."},
    {"dump", cli_cmd_dump, "DB [TYPE...]", "the whole database as NDJSON",
     "Write the database as NDJSON: a {\"schema\": ...} line, one\n"
     "{\"type\": T, \"record\": {...}} line per record (types in schema order, records in\n"
     "primary-key order), a {\"sequences\": {...}} line, and an end line that counts\n"
     "them: {\"end\": {\"records\": {T: N, ...}, \"sequences\": N}}, which load checks.\n"
     "Records of a damaged database that cannot be read are left out: stderr says how\n"
     "many of each type, the end line too (\"left_out\": {T: N}), and the exit is 1."},
    {"load", cli_cmd_load, "DB [FILE|-] [--or-get] [--drop] [--atomic] [--no-end]",
     "NDJSON from dump into a database",
     "Read NDJSON as written by dump (no FILE or \"-\": stdin) into DB, creating it if\n"
     "needed.  Each line whose record conflicts with one already stored is reported\n"
     "with its line number and the rest are loaded (exit 3); --or-get skips\n"
     "conflicting records silently instead.  Sequences are restored (never lowered).\n"
     "The dump's schema never loosens DB's: what DB's schema has and the dump's lacks\n"
     "is kept (said on stderr), unless --drop applies the dump's schema exactly.\n"
     "Without --atomic a load is not one transaction: records are committed in\n"
     "batches, so when a line is bad (or the load stops) the lines before it stay\n"
     "loaded; an invalid or conflicting record is reported and skipped, the others\n"
     "committed.  --atomic loads every record and the sequences in one transaction,\n"
     "all or nothing: any bad line (each is reported) and nothing is written (exit\n"
     "as for that line); a new database is built aside and appears at DB only when\n"
     "the load succeeded (if another process creates DB meanwhile, nothing is\n"
     "loaded into it: exit 1; on a PostgreSQL URL the records and sequences are one\n"
     "server transaction).  The schema\n"
     "line must then come first; it is applied in its own transaction, so a change\n"
     "it makes to an existing database stays (stderr says so).  --atomic holds the\n"
     "records in memory until the end of the input.  Records before any schema line\n"
     "into a database without a schema stop the load with one error.  On a terminal\n"
     "a load of over 5000 lines shows its progress: the percentage of the input\n"
     "(when it is a file) and records/s.  The first 20 conflicting or invalid lines\n"
     "are listed, then how many more there were.\n"
     "Input that begins with a schema line is a dump: it must end with dump's end\n"
     "line, and match it.  A dump cut short, with lines missing or added, or one that\n"
     "left out damaged records is not a complete copy: the load says so and exits 5\n"
     "(with --atomic having written nothing).  --no-end: input written by hand that\n"
     "begins with a schema line needs no end line.  An empty input is refused, and so\n"
     "is one without a schema line first when DB does not exist yet."},
    {"export", cli_cmd_export,
     "--postgres DB [--schema NAME] [-o FILE] [--schema-only | --data-only] [--str-nul=bytea]",
     "the database as a PostgreSQL script",
     "Write DB as one SQL script that `psql -v ON_ERROR_STOP=1 -f FILE` loads into an\n"
     "empty PostgreSQL (>= 15) database in one transaction: a table per type with its\n"
     "column types, CHECKs and primary key, every unique index (WHERE predicate, NULLS\n"
     "NOT DISTINCT) and plain index, every sequence at its current value, the records\n"
     "as COPY data.  --schema NAME creates the schema NAME and puts everything there\n"
     "(default: public).  -o FILE writes FILE (complete or not at all) instead of stdout.\n"
     "A str holding a NUL byte (PostgreSQL's text cannot) stops the export with its\n"
     "type, key and field, unless --str-nul=bytea makes such fields bytea columns."},
    {"check", cli_cmd_check, "DB", "verify every index against every record",
     "Verify every record against the schema and every index against every record.\n"
     "Lists each problem and exits 6 if there are any."},
    {"stat", cli_cmd_stat, "DB", "records, index entries, file and map usage",
     "Per type: records, index entries, bytes; then file and map usage (LMDB's\n"
     "figures: on PostgreSQL they are left out, and --json says \"backend\": \"postgresql\").\n"
     "--json prints the same as one JSON object."},
    {"backup", cli_cmd_backup, "DB DEST [--compact]", "a consistent copy, while others write",
     "Copy the database DB to the directory DEST (which must not exist, or be empty)\n"
     "while other processes keep reading and writing it: the copy is one snapshot\n"
     "and holds every write acknowledged before the command began.  It is a complete\n"
     "database (DEST/data.mdb), on disk when the command returns; until then it has a\n"
     "hidden temporary name, so a failure (a full disk) leaves no partial copy.\n"
     "--compact copies only the pages in use: the copy has no free pages, which is how\n"
     "to reclaim the space of deleted records (`stat` shows it); put it in place of\n"
     "DB while no process has DB open.  Without --compact the file is copied as it is\n"
     "(LMDB's write lock is held only while its two meta pages are copied), which\n"
     "works on a damaged database too.  A database on PostgreSQL (DB a URL) is\n"
     "refused: back it up with pg_dump, or copy it with uniqdb dump."},
    {"demo", cli_cmd_demo, "[DIR | URL]", "the five scenarios, live, with real processes",
     "Create a database in DIR (default: a new temporary directory; or at a\n"
     "PostgreSQL URL whose schema holds no database yet), apply the\n"
     "scenarios' schema and run the five scenarios with real concurrent processes,\n"
     "printing what happened.  Ends with a consistency check and a few records."},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static void main_usage(FILE *f)
{
    fprintf(f, "usage: uniqdb [--json] COMMAND [ARGS...]\n"
               "       uniqdb COMMAND --help\n"
               "       uniqdb --help | --version\n\n"
               "Inspect and edit uniqdb databases.  Records are JSON on the command line and on\n"
               "output; binary fields are {\"$bin\": \"<base64>\"}.  In `any` fields, a string\n"
               "that is not UTF-8 is {\"$str\": \"<base64>\"} and a map JSON cannot hold as an\n"
               "object is {\"$map\": [[key, value], ...]}.  NaN and infinities are\n"
               "{\"$float\": \"nan\"} (\"inf\", \"-inf\"); a msgpack float32 is "
               "{\"$float32\": 0.1}.\n\n"
               "commands (uniqdb COMMAND --help for the arguments of each):\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-7s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\noptions (any command):\n"
               "  --json     report errors as RFC 9457 problem objects on stdout; put\n"
               "             --or-get/--upsert print {\"created\": ..., \"record\": ...}\n"
               "  --timeout SEC  a write (init, put, update, delete, seq, load) waiting for\n"
               "             another process's write transaction gives up after SEC seconds\n"
               "             (exit 7, nothing written); so that it can, a put, update,\n"
               "             delete or seq given --timeout commits in this process, not in\n"
               "             another process's shared commit; on a terminal, a wait of over\n"
               "             a second is announced on stderr\n"
               "  --help     show help\n\n"
               "DB is a database directory, or a PostgreSQL (>= 15) database given as a URL:\n"
               "  postgresql://[USER@][HOST][:PORT]/DBNAME?schema=NAME (also postgres://; a\n"
               "  libpq connection URI, plus schema=NAME: the PostgreSQL schema that holds\n"
               "  the database, default public), e.g. postgresql:///shop?schema=app.\n"
               "  `uniqdb dump DIR | uniqdb load URL` moves a database onto a server.\n\n"
               "KEY, values and records are JSON: 42, '\"abc\"', '{\"id\": 1}'.  Put -- before\n"
               "arguments that begin with '-', e.g. uniqdb get DB t -- -5.\n\n"
               "limits: a record 4 MiB as msgpack; 16 levels of maps and arrays (the\n"
               "  record counts as one); 1048576 values per record; type, field and index\n"
               "  names 64 bytes; 8 fields per index; sequence names 1-256 bytes; types\n"
               "  and indexes: no fixed number; JSON integers -2^63..2^64-1; JSON reals\n"
               "  what a float64 holds: magnitudes up to 1.7976931348623157e308, and a\n"
               "  nonzero real must not round to 0 or lose every digit (1e-400, 3e-324)\n\n"
               "exit status (with --json, a problem object's \"status\" in brackets):\n"
               "  0 ok\n"
               "  1 any other error (I/O, permissions, not a database) [500]\n"
               "  2 bad command line; unknown type or index name [400]\n"
               "  3 conflict: a unique index already holds the key [409]\n"
               "  4 not found: record, index entry, sequence [404]\n"
               "  5 invalid record, schema, key or JSON; a value the data refuses;\n"
               "    sequence exhausted; load: not a complete dump [422]\n"
               "  6 check found problems [500]\n"
               "  7 --timeout: another process held the write lock too long [503]\n"
               "  8 committed, but writing the result to stdout failed: do not\n"
               "    run the command again [500]\n"
               "Start with: uniqdb demo\n");
}

int cli_usage(const char *cmd, const char *msg)
{
    const command *c = find_command(cmd);
    if (!msg) {
        if (c)
            printf("usage: uniqdb %s %s\n\n%s\n\noptions: --json (errors as problem objects), "
                   "--help\n",
                   c->name, c->args, c->help);
        else
            main_usage(stdout);
        return CLI_OK;
    }
    if (cli_json_errors) {
        cli_fail(CLI_EUSAGE, NULL, "%s%s%s", c ? c->name : "", c ? ": " : "", msg);
    } else {
        fprintf(stderr, "uniqdb%s%s: %s\n", c ? " " : "", c ? c->name : "", msg);
        if (c)
            fprintf(stderr, "usage: uniqdb %s %s\n", c->name, c->args);
        else
            fprintf(stderr, "try: uniqdb --help\n");
    }
    return CLI_EUSAGE;
}

static int parse_timeout(const char *cmd, const char *arg)
{
    errno = 0;
    char *end;
    double v = strtod(arg, &end);
    if (errno || end == arg || *end || !(v > 0 && v < 1e6)) {
        cli_usage(cmd, "--timeout needs a number of seconds > 0");
        return -1;
    }
    cli_timeout = v;
    return 0;
}

/* ---- Creating a database: build aside, then put in place -------------------- */

/* fsync a directory, so that a name just made in it survives a power cut. */
static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int r = fsync(fd);
    close(fd);
    return r;
}

/* path split at its last component, trailing slashes ignored: returns the
 * directory part, malloc'd ("." for a bare name), with *base pointing at the
 * last component, kept in the same allocation; NULL if out of memory. */
static char *split_path(const char *path, const char **base)
{
    size_t n = strlen(path), b, d;
    while (n > 1 && path[n - 1] == '/')
        n--;
    for (b = n; b > 0 && path[b - 1] != '/'; b--)
        ;
    for (d = b; d > 1 && path[d - 1] == '/'; d--)
        ;
    char *out = malloc(d + 2 + (n - b) + 1);
    if (!out)
        return NULL;
    if (b == 0) {
        d = 1;
        out[0] = '.';
    } else {
        memcpy(out, path, d);
    }
    out[d] = '\0';
    memcpy(out + d + 1, path + b, n - b);
    out[d + 1 + n - b] = '\0';
    *base = out + d + 1;
    return out;
}

int cli_newdb_begin(cli_newdb *n, const char *path)
{
    *n = (cli_newdb){.path = path};
    if (!*path)
        return cli_fail(CLI_EUSAGE, NULL, "the database path DB is empty");
    struct stat st;
    char *tmpl = NULL, *data = NULL;
    int e = 0;
    if (cli_is_url(path)) {
        /* on a server there is nothing to build aside: the schema is applied
           in one server transaction (under the engine's advisory lock), and
           --atomic's records in another */
        goto existing;
    }
    if (stat(path, &st) != 0) {
        if (errno != ENOENT)
            goto existing; /* opening it reports why */
        const char *base;
        char *dir = split_path(path, &base);
        if (!dir)
            return cli_fail(CLI_EFAIL, NULL, "out of memory");
        /* hidden, and named after DB so that a stray one (the command was
           killed) says what it was */
        int r = strlen(base) <= 200 ? asprintf(&tmpl, "%s/.%s.uniqdb-new-XXXXXX", dir, base)
                                    : asprintf(&tmpl, "%s/.uniqdb-new-XXXXXX", dir);
        free(dir);
        if (r < 0)
            return cli_fail(CLI_EFAIL, NULL, "out of memory");
    } else {
        if (!S_ISDIR(st.st_mode) || asprintf(&data, "%s/" UDB_DATA_FILE, path) < 0 ||
            lstat(data, &st) == 0 || errno != ENOENT)
            goto existing; /* a database (or not a directory: opening it says so) */
        n->inside = 1;
        if (asprintf(&tmpl, "%s/.uniqdb-new-XXXXXX", path) < 0) {
            free(data);
            return cli_fail(CLI_EFAIL, NULL, "out of memory");
        }
    }
    free(data);
    if (!mkdtemp(tmpl)) {
        e = errno;
        free(tmpl);
        return cli_fail(CLI_EFAIL, NULL, "%s: cannot create the database %s: %s", path,
                        n->inside ? "inside this directory" : "directory", strerror(e));
    }
    n->build = tmpl;
    n->fresh = 1;
    return CLI_OK;
existing:
    free(data);
    if (!(n->build = strdup(path)))
        return cli_fail(CLI_EFAIL, NULL, "out of memory");
    return CLI_OK;
}

/* Make path's own data file the one built in n->build: link it in (never
 * replacing one).  CLI_OK, CLI_NEWDB_TAKEN, or an exit code (reported). */
static int link_data(cli_newdb *n)
{
    char *from = NULL, *to = NULL;
    int ex = CLI_OK;
    if (asprintf(&from, "%s/" UDB_DATA_FILE, n->build) < 0 ||
        asprintf(&to, "%s/" UDB_DATA_FILE, n->path) < 0) {
        ex = cli_fail(CLI_EFAIL, NULL, "out of memory");
        goto out;
    }
    int r = link(from, to);
    if (r != 0 && (errno == EPERM || errno == EOPNOTSUPP)) /* no hard links here */
        r = renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE);
    if (r != 0) {
        ex = errno == EEXIST ? CLI_NEWDB_TAKEN
                             : cli_fail(CLI_EFAIL, NULL, "%s: cannot put the new database in "
                                        "place: %s", n->path, strerror(errno));
        goto out;
    }
    if (sync_dir(n->path) != 0)
        ex = cli_fail(CLI_EFAIL, NULL, "%s: the new database is in place, but syncing the "
                      "directory failed: %s", n->path, strerror(errno));
out:
    free(from);
    free(to);
    return ex;
}

int cli_newdb_publish(cli_newdb *n)
{
    if (!n->fresh)
        return CLI_OK;
    if (sync_dir(n->build) != 0)
        return cli_fail(CLI_EFAIL, NULL, "%s: syncing the new database failed: %s", n->path,
                        strerror(errno));
    int ex;
    if (n->inside) {
        ex = link_data(n);
    } else {
        /* the mode udb_open() gives a directory it creates (files 0640) */
        mode_t mask = umask(0);
        umask(mask);
        const char *base;
        char *parent = split_path(n->path, &base);
        if (!parent)
            return cli_fail(CLI_EFAIL, NULL, "out of memory");
        int r = chmod(n->build, 0750 & ~mask);
        if (r == 0)
            r = renameat2(AT_FDCWD, n->build, AT_FDCWD, n->path, RENAME_NOREPLACE);
        if (r != 0 && (errno == EINVAL || errno == ENOSYS)) {
            /* no RENAME_NOREPLACE on this file system: make the directory
               (or find it made) and link the data file into it */
            r = mkdir(n->path, 0750) == 0 || errno == EEXIST ? 1 : -1;
        }
        if (r == 0) {
            free(n->build); /* it is path now */
            n->build = NULL;
            n->fresh = 0;
            ex = sync_dir(parent) == 0 ? CLI_OK
                 : cli_fail(CLI_EFAIL, NULL, "%s: the new database is in place, but syncing "
                            "%s failed: %s", n->path, parent, strerror(errno));
        } else if (r > 0 || errno == EEXIST || errno == ENOTEMPTY) {
            /* another process made path meanwhile (or it is ours to fill) */
            ex = link_data(n);
        } else {
            ex = cli_fail(CLI_EFAIL, NULL, "%s: cannot put the new database in place: %s",
                          n->path, strerror(errno));
        }
        free(parent);
    }
    if (ex == CLI_OK && n->fresh) {
        /* linked in: the private directory goes, the data file stays at path */
        sup_remove_tree(n->build, false);
        free(n->build);
        n->build = NULL;
        n->fresh = 0;
    }
    return ex;
}

void cli_newdb_end(cli_newdb *n)
{
    /* the private directory: nobody else knows it, so removing it is safe */
    if (n->fresh && n->build)
        sup_remove_tree(n->build, false);
    free(n->build);
    *n = (cli_newdb){.path = n->path};
}

/* ---- Waiting for another writer ------------------------------------------ */

/* Every write path is watched by a thread: on a terminal it announces a
 * wait of over a second.  cli_write() and cli_schema_apply() may give up
 * (--timeout): the call tells the watch when the writer lock is ours (fn
 * runs; udb_schema_apply_notify()'s callback), and until then nothing is
 * written, so exiting is safe.  udb_exec() (cli_exec) has no such
 * moment to report -- the unit may be waiting for the lock, committing, or
 * queued in another process's batch, which runs it even if we are gone --
 * so its watch only announces, and says that Ctrl-C may not undo it. */
typedef struct watch {
    const char *db;
    udb_write_fn fn; /* cli_write: run once the writer lock is ours */
    void *ctx;
    int told;        /* the call says when the writer lock is ours (cli_write,
                        cli_schema_apply): until then the watch may give up.
                        0: a udb_exec() call, which cannot be given up */
    pthread_mutex_t m;
    pthread_cond_t c;
    int started, done;
} watch;

static void *watchdog(void *p)
{
    watch *w = p;
    struct timespec t0, now;
    int said = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_mutex_lock(&w->m);
    while (!w->started && !w->done) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 100000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&w->c, &w->m, &until);
        if (w->started || w->done)
            break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double waited = (double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9;
        if (!said && waited >= 1.0 && isatty(2)) {
            fprintf(stderr, "uniqdb: waiting for another process's write transaction on %s "
                    "to end%s\n", cli_shown(w->db),
                    !w->told ? " (Ctrl-C stops waiting; the write may still "
                    "be committed)" : cli_timeout > 0 ? " (--timeout)" : " (Ctrl-C gives up)");
            said = 1;
        }
        if (w->told && cli_timeout > 0 && waited >= cli_timeout) {
            /* the lock is not ours, so nothing is written; holding w->m keeps the
               call from going on.  With --json the problem object goes to stdout,
               as for any error. */
            fflush(stdout);
            cli_fail(CLI_ETIMEOUT, NULL, "gave up after %g s waiting for another process's "
                     "write transaction on %s; nothing was written", cli_timeout, w->db);
            fflush(stdout);
            _exit(CLI_ETIMEOUT);
        }
    }
    pthread_mutex_unlock(&w->m);
    return NULL;
}

/* The writer lock is ours: from now on the watch only ends. */
static void watch_locked(void *ctx)
{
    watch *w = ctx;
    pthread_mutex_lock(&w->m);
    w->started = 1;
    pthread_cond_signal(&w->c);
    pthread_mutex_unlock(&w->m);
}

static int watched_fn(udb_txn *txn, void *ctx)
{
    watch *w = ctx;
    watch_locked(w);
    return w->fn(txn, w->ctx);
}

/* Watch w on a terminal, or where it may give up (cli_write with --timeout). */
static int watch_start(pthread_t *th, watch *w)
{
    return (isatty(2) || (w->told && cli_timeout > 0)) &&
           pthread_create(th, NULL, watchdog, w) == 0;
}

static void watch_end(pthread_t th, watch *w)
{
    pthread_mutex_lock(&w->m);
    w->done = 1;
    pthread_cond_signal(&w->c);
    pthread_mutex_unlock(&w->m);
    pthread_join(th, NULL);
}

int cli_write(udb_env *env, const char *db, udb_write_fn fn, void *ctx)
{
    watch w = {db, fn, ctx, 1, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    pthread_t th;
    int watching = watch_start(&th, &w);
    int rc = udb_write(env, watched_fn, &w);
    if (watching)
        watch_end(th, &w);
    return rc;
}

int cli_schema_apply(char **changes, udb_env *env, const char *db, const char *json, size_t len,
                     unsigned flags)
{
    watch w = {db, NULL, NULL, 1, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    pthread_t th;
    int watching = watch_start(&th, &w);
    int rc = udb_schema_apply_notify(changes, env, json, len, flags, watch_locked, &w);
    if (watching)
        watch_end(th, &w);
    return rc;
}

int cli_exec(udb_results **res, udb_env *env, const char *db, const udb_op *ops, size_t n)
{
    watch w = {db, NULL, NULL, 0, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    pthread_t th;
    int watching = watch_start(&th, &w);
    int rc = udb_exec(res, env, ops, n);
    if (watching)
        watch_end(th, &w);
    return rc;
}

int cli_common_option(int c, char **argv, const char *missing_msg)
{
    switch (c) {
    case 'h':
        return cli_usage(argv[0], NULL);
    case 'j':
        cli_json_errors = 1;
        return -1;
    case 'T':
        return parse_timeout(argv[0], optarg) ? CLI_EUSAGE : -1;
    case ':':
        if (missing_msg)
            return cli_usage(argv[0], missing_msg);
        break;
    }
    /* a short option inside a cluster (-55) is named by optopt; a long one
       by the argument getopt just stepped over */
    char shortopt[3] = {'-', (char)optopt, 0};
    char msg[256];
    snprintf(msg, sizeof msg, "unknown option '%s' (put -- before arguments that begin with "
             "'-')", optopt ? shortopt : argv[optind - 1]);
    return cli_usage(argv[0], msg);
}

int cli_simple_options(int argc, char **argv, int *first)
{
    static const struct option opts[] = {CLI_COMMON_LONGOPTS};
    optind = 0;
    opterr = 0;
    int c, ex;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1)
        if ((ex = cli_common_option(c, argv, NULL)) >= 0)
            return ex;
    *first = optind;
    return -1;
}

/* ---- Errors ---------------------------------------------------------------- */

int cli_exit_code(int rc)
{
    switch (rc) {
    case 0:
        return CLI_OK;
    case UDB_ECONFLICT:
        return CLI_ECONFLICT;
    case UDB_ENOTFOUND:
        return CLI_ENOTFOUND;
    case UDB_EBADRECORD:
    case UDB_ESCHEMA:
    case UDB_EKEYTOOLONG:
    case UDB_EEXHAUSTED:
        return CLI_EINVALID;
    case UDB_EINVAL: /* every name and argument the tool passes came from the command line */
        return CLI_EUSAGE;
    default:
        return udb_is_damage(rc) ? CLI_ECHECK : CLI_EFAIL;
    }
}

static void problem_kind(int code, const char **type, const char **title, int *status)
{
    switch (code) {
    case CLI_EUSAGE:
        *type = "usage", *title = "Bad command line", *status = 400;
        break;
    case CLI_ECONFLICT:
        *type = "conflict", *title = "Unique constraint violated", *status = 409;
        break;
    case CLI_ENOTFOUND:
        *type = "not-found", *title = "Not found", *status = 404;
        break;
    case CLI_EINVALID:
        *type = "invalid", *title = "Invalid record, schema or input", *status = 422;
        break;
    case CLI_ECHECK:
        *type = "check-failed", *title = "The database is damaged", *status = 500;
        break;
    case CLI_ETIMEOUT:
        *type = "timeout", *title = "Timed out waiting for another writer", *status = 503;
        break;
    case CLI_EOUTPUT:
        *type = "committed-output-failed", *title = "Committed, but the output failed",
        *status = 500;
        break;
    default:
        *type = "error", *title = "Error", *status = 500;
        break;
    }
}

int cli_fail(int code, json_t *extra, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char text[2048], msg[2048];
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    cli_redact(msg, sizeof msg, text);   /* messages quote DB: never a password */
    if (cli_json_errors) {
        const char *type, *title;
        int status;
        problem_kind(code, &type, &title, &status);
        char uri[64];
        snprintf(uri, sizeof uri, "urn:uniqdb:problem:%s", type);
        json_t *p = json_pack("{s s s s s i s s s i}", "type", uri, "title", title, "status",
                              status, "detail", msg, "exit_code", code);
        if (p && extra)
            json_object_update(p, extra);
        if (!p || cli_print_json(p))
            fprintf(stderr, "uniqdb: %s\n", msg);
        json_decref(p);
    } else {
        fprintf(stderr, "uniqdb: %s\n", msg);
    }
    json_decref(extra);
    return code;
}

int cli_fail_rc(int rc, const char *detail, json_t *conflict, const char *what)
{
    const char *d = detail && *detail ? detail : udb_strerror(rc);
    if (what && *what)
        return cli_fail(cli_exit_code(rc), conflict, "%s: %s", what, d);
    return cli_fail(cli_exit_code(rc), conflict, "%s", d);
}

/* The JSON of one violated index: its name as declared (udb_conflict_index's,
 * which find, scan, --or-get and --upsert take; the type is the problem's
 * "record_type"), fields, values, existing_key. */

static json_t *conflict_index_json(const udb_conflict_index *ci)
{
    json_t *o = json_object(), *fields = json_array();
    if (!o || !fields)
        goto fail;
    for (size_t i = 0; i < ci->nfields; i++)
        if (json_array_append_new(fields, json_string(ci->fields[i])))
            goto fail;
    char err[CLI_ERRLEN];
    json_t *values =
        ci->values.data ? cli_msgpack_to_json(ci->values.data, ci->values.size, err) : NULL;
    json_t *key = ci->existing_key.data
                      ? cli_msgpack_to_json(ci->existing_key.data, ci->existing_key.size, err)
                      : NULL;
    json_object_set_new(o, "index", json_string(ci->index));
    json_object_set_new(o, "fields", fields);
    json_object_set_new(o, "values", values ? values : json_null());
    json_object_set_new(o, "existing_key", key ? key : json_null());
    return o;
fail:
    json_decref(fields);
    json_decref(o);
    return NULL;
}

json_t *cli_conflict_json(const udb_conflict *c)
{
    if (!c || c->count == 0 || !c->indexes)
        return NULL;
    json_t *first = conflict_index_json(&c->indexes[0]);
    json_t *all = json_array();
    if (!first || !all) {
        json_decref(first);
        json_decref(all);
        return NULL;
    }
    json_t *o = json_deep_copy(first);
    for (size_t i = 0; o && i < c->count; i++) {
        json_t *ci = i == 0 ? json_incref(first) : conflict_index_json(&c->indexes[i]);
        if (!ci || json_array_append_new(all, ci)) {
            json_decref(o);
            o = NULL;
        }
    }
    if (o) {
        json_object_set_new(o, "record_type", json_string(c->type));
        json_object_set(o, "conflicts", all);
    }
    json_decref(all);
    json_decref(first);
    return o;
}

/* ---- Shared helpers ---------------------------------------------------------- */

bool cli_is_url(const char *db)
{
    return db && (strncmp(db, "postgresql://", 13) == 0 || strncmp(db, "postgres://", 11) == 0);
}

void cli_redact(char *out, size_t cap, const char *text)
{
    size_t o = 0;
#define PUT(c) do { char c_ = (c); if (o + 1 < cap) out[o++] = c_; } while (0)
#define PUTS(str) do { for (const char *s_ = (str); *s_; s_++) PUT(*s_); } while (0)
    for (const char *p = text; *p;) {
        const char *url = strncmp(p, "postgresql://", 13) == 0 ? p + 13
                          : strncmp(p, "postgres://", 11) == 0 ? p + 11 : NULL;
        if (!url) {
            PUT(*p++);
            continue;
        }
        while (p < url)
            PUT(*p++);
        size_t alen = strcspn(url, "/?# \t\n\"'");
        const char *at = NULL;
        for (const char *q = url; q < url + alen; q++)
            if (*q == '@')
                at = q;
        const char *colon = at ? memchr(url, ':', (size_t)(at - url)) : NULL;
        if (colon) {
            while (p <= colon)
                PUT(*p++);
            PUTS("***");
            p = at;
        }
        /* the rest of the URL: password=... parameters, which exist only
           after its '?' (before it, "&password=x" is part of the host or
           path, and masking it would move where the host ends) */
        bool query = false;
        while (*p && !strchr(" \t\n\"'", *p) && !(p[0] == ':' && p[1] == ' ')) {
            if (query && (p[-1] == '?' || p[-1] == '&') && strncmp(p, "password=", 9) == 0) {
                PUTS("password=***");
                p += 9;
                while (*p && !strchr("& \t\n\"'", *p) && !(p[0] == ':' && p[1] == ' '))
                    p++;
                continue;
            }
            query |= *p == '?';
            PUT(*p++);
        }
    }
    if (cap)
        out[o < cap ? o : cap - 1] = '\0';
#undef PUT
#undef PUTS
}

const char *cli_shown(const char *db)
{
    static char *kept[8];
    static size_t nkept;
    if (!cli_is_url(db))
        return db;
    size_t cap = strlen(db) + 16;
    char *s = malloc(cap);
    if (!s)
        return "(the URL)";
    cli_redact(s, cap, db);
    if (strcmp(s, db) == 0) {
        free(s);
        return db;
    }
    if (nkept == sizeof kept / sizeof *kept)
        free(kept[--nkept]);  /* a command shows one or two databases */
    kept[nkept++] = s;
    return s;
}

int cli_url_has_db(int *has, const char *url)
{
    udb_options o = UDB_OPTIONS_INIT;
    o.flags |= UDB_RDONLY_ENV;
    udb_env *env = NULL;
    *has = 0;
    int rc = udb_open(&env, url, &o);
    if (rc)
        return cli_fail(cli_exit_code(rc), NULL, "%s", *udb_env_errmsg(NULL) ?
                        udb_env_errmsg(NULL) : udb_strerror(rc));
    char *text = NULL;
    rc = udb_schema_json(&text, env);
    int ex = CLI_OK;
    if (rc == 0)
        *has = 1;
    else if (rc != UDB_ENOTFOUND)
        ex = cli_fail_rc(rc, udb_env_errmsg(env), NULL, url);
    udb_free(text);
    udb_close(env);
    return ex;
}

/* Why path cannot be opened as an existing database, or NULL if it looks
 * like one: the three cases a user fixes differently are told apart. */
static const char *not_a_database(const char *path, char *why, size_t cap)
{
    struct stat st;
    int e;
    if (stat(path, &st) != 0) {
        e = errno;
        snprintf(why, cap, "%s", e == ENOENT ? "no such directory" : strerror(e));
        return why;
    }
    if (!S_ISDIR(st.st_mode))
        return "not a directory (a database is a directory)";
    char *data = NULL;
    if (asprintf(&data, "%s/" UDB_DATA_FILE, path) < 0)
        return "out of memory";
    e = stat(data, &st) == 0 ? 0 : errno;
    free(data);
    if (e == ENOENT) {
        snprintf(why, cap, "not a uniqdb database (no " UDB_DATA_FILE "; create one with: "
                 "uniqdb init %s SCHEMA.json)", path);
        return why;
    }
    if (e == EACCES)
        return "permission denied (the directory cannot be searched)";
    if (e) {
        snprintf(why, cap, "%s/" UDB_DATA_FILE ": %s", path, strerror(e));
        return why;
    }
    return NULL;
}

unsigned cli_schema_dbs(const char *json, size_t len)
{
    json_t *s = json_loadb(json, len, 0, NULL), *t;
    const char *name;
    size_t n = 2;
    json_object_foreach(json_object_get(s, "types"), name, t)
        n += 1 + json_object_size(json_object_get(t, "unique")) +
             json_object_size(json_object_get(t, "indexes"));
    json_decref(s);
    return n > UINT_MAX - 64 ? UINT_MAX : (unsigned)n + 64;
}

int cli_open(udb_env **out, const char *path, int mode)
{
    return cli_open_sized(out, path, mode, 0);
}

int cli_open_snapshot(udb_env **env, udb_txn **txn, const char **schema, const char *path)
{
    int ex;
    if ((ex = cli_open(env, path, CLI_OPEN_READ)) != CLI_OK)
        return ex;
    int rc;
    if ((rc = udb_begin(txn, *env, UDB_RDONLY)) != 0 ||
        (rc = udb_txn_schema_json(schema, NULL, *txn)) != 0)
        return cli_fail_rc(rc, rc == UDB_ENOTFOUND ? "no schema applied yet" : udb_env_errmsg(*env),
                           NULL, path);
    return CLI_OK;
}

/* Before a read opens the database at path: if LMDB's lock file is missing,
 * make it the way the database's owner would, so that the read does not
 * change who can write.  LMDB creates it on any open, read-only ones too,
 * owned by whoever opens and with their umask: a `uniqdb scan` run as root on
 * another user's database left a root-owned lock.mdb that locked the owner
 * out of writing ("permission denied").  It is made as an unnamed file
 * (O_TMPFILE), given the owner, group and permission bits of data.mdb (as far
 * as this user may: root may give it to anyone, others only to a group of
 * theirs), and linked in under its name only then, never replacing one made
 * meanwhile.  Any failure leaves things to udb_open(), as before. */
static void lock_file_like_data(const char *path)
{
    char *data = NULL, *lock = NULL;
    struct stat st;
    int fd = -1;
    if (asprintf(&data, "%s/" UDB_DATA_FILE, path) < 0 ||
        asprintf(&lock, "%s/" UDB_LOCK_FILE, path) < 0 || stat(data, &st) != 0 ||
        access(lock, F_OK) == 0 || errno != ENOENT)
        goto out;
    if ((fd = open(path, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)) < 0)
        goto out;
    /* root gives it to data.mdb's owner; others keep it but may give its group */
    int root = geteuid() == 0;
    if ((fchown(fd, root ? st.st_uid : (uid_t)-1, st.st_gid) != 0 && root) ||
        fchmod(fd, st.st_mode & 0666) != 0)
        goto out;
    char self[64];
    snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
    /* linking an unnamed file by descriptor needs CAP_DAC_READ_SEARCH; by its
       /proc name, not.  EEXIST: another process made it meanwhile, theirs is
       the one. */
    if (linkat(fd, "", AT_FDCWD, lock, AT_EMPTY_PATH) != 0 && errno != EEXIST &&
        linkat(AT_FDCWD, self, AT_FDCWD, lock, AT_SYMLINK_FOLLOW) != 0) {
        /* neither worked: udb_open() creates it, as before */
    }
out:
    if (fd >= 0)
        close(fd);
    free(data);
    free(lock);
}

int cli_open_sized(udb_env **out, const char *path, int mode, unsigned max_dbs)
{
    if (!*path)
        return cli_fail(CLI_EUSAGE, NULL, "the database path DB is empty");
    const char *why;
    char buf[600];
    /* a URL is no file: the server says what is wrong with it */
    bool url = cli_is_url(path);
    if (!url && mode != CLI_OPEN_CREATE && (why = not_a_database(path, buf, sizeof buf)) != NULL)
        return cli_fail(CLI_EFAIL, NULL, "%s: %s", path, why);
    udb_options o = UDB_OPTIONS_INIT;
    if (mode == CLI_OPEN_READ) {
        o.flags |= UDB_RDONLY_ENV;
        if (!url)
            lock_file_like_data(path);
    }
    o.max_dbs = max_dbs;
    int rc = udb_open(out, path, &o);
    if (rc == EACCES && mode == CLI_OPEN_READ && !url) {
        /* most likely the lock file cannot be created or written (another user's
           database, a read-only copy): read without LMDB's reader lock */
        o.flags |= UDB_NOLOCK;
        if (udb_open(out, path, &o) == 0) {
            fprintf(stderr, "uniqdb: note: %s/" UDB_LOCK_FILE " cannot be written, so this "
                    "read does not take LMDB's reader lock; if another process writes %s at "
                    "the same time, what is read may be inconsistent or damaged\n", path, path);
            return CLI_OK;
        }
    }
    if (rc)
        return cli_fail(cli_exit_code(rc), NULL, "%s", *udb_env_errmsg(NULL) ?
                        udb_env_errmsg(NULL) : udb_strerror(rc));
    if (url && mode != CLI_OPEN_CREATE) {
        /* what a directory without data.mdb is to LMDB: a PostgreSQL schema that
           holds no uniqdb database (none was ever applied there) */
        char *text = NULL;
        rc = udb_schema_json(&text, *out);
        udb_free(text);
        if (rc) {
            int ex = rc == UDB_ENOTFOUND
                         ? cli_fail(CLI_EFAIL, NULL, "%s: not a uniqdb database (no uniqdb schema "
                                    "was applied in that PostgreSQL schema; create one with: "
                                    "uniqdb init %s SCHEMA.json)", path, path)
                         : cli_fail_rc(rc, udb_env_errmsg(*out), NULL, path);
            udb_close(*out);
            *out = NULL;
            return ex;
        }
    }
    return CLI_OK;
}

int cli_put_line(const char *text)
{
    if (fputs(text, stdout) == EOF || putchar('\n') == EOF)
        return CLI_EFAIL; /* reported by main(), which knows whether a write committed */
    return CLI_OK;
}

int cli_read_file(char **out, size_t *len, const char *path)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f)
        return cli_fail(CLI_EFAIL, NULL, "%s: %s", path, strerror(errno));
    char *p = sup_read_fp(f, len);
    int err = errno;
    if (f != stdin)
        fclose(f);
    if (!p)
        return cli_fail(CLI_EFAIL, NULL, "%s: %s", path, strerror(err));
    *out = p;
    return CLI_OK;
}

/* ---- the command line ------------------------------------------------------------ */

/* ---- Reads of a possibly damaged database (cli_guard.c) ---------------------
 * LMDB can crash on a damaged page: the read commands run in a child
 * process, and a crash or hang ends them with a report and exit 6.  check
 * and dump do this themselves (they go on after one). */

typedef struct read_args {
    const command *cmd;
    int argc;
    char **argv;
} read_args;

static bool guarded_read(const command *cmd)
{
    static const char *const names[] = {"get", "find", "scan", "stat", "schema"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strcmp(cmd->name, names[i]) == 0)
            return true;
    return false;
}

static int read_child(void *arg)
{
    read_args *a = arg;
    return a->cmd->fn(a->argc, a->argv);
}

static int read_crash(cli_guard_report *r, void *ctx)
{
    read_args *a = ctx;
    cli_fail(CLI_ECHECK, NULL, "%s: reading the database %s after %" PRIu64 " record%s: the "
             "database is damaged (uniqdb check lists the damage)", a->cmd->name, r->how,
             r->count, r->count == 1 ? "" : "s");
    return CLI_GUARD_STOP;
}

static int read_guarded(const command *cmd, int argc, char **argv)
{
    read_args a = {cmd, argc, argv};
    return cli_guarded(NULL, cmd->name, read_child, &a, false, read_crash, NULL, &a);
}

int cli_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"version", no_argument, NULL, 'V'},
        CLI_COMMON_LONGOPTS,
    };
    opterr = 0;
    int c;
    /* --json among the options before the command applies to their own errors too */
    for (c = 1; c < argc && argv[c][0] == '-' && strcmp(argv[c], "--") != 0; c++)
        if (strcmp(argv[c], "--json") == 0)
            cli_json_errors = 1;
    while ((c = getopt_long(argc, argv, "+:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            main_usage(stdout);
            return CLI_OK;
        case 'V':
            printf("uniqdb %s (jansson %s, msgpack-c %s)\n", udb_version(NULL, NULL, NULL),
                   JANSSON_VERSION, msgpack_version());
            return CLI_OK;
        case 'j':
            cli_json_errors = 1;
            break;
        case 'T':
            if (parse_timeout("", optarg))
                return CLI_EUSAGE;
            break;
        default:
            if (cli_json_errors)
                return cli_fail(CLI_EUSAGE, NULL, "unknown option '%s' (try: uniqdb --help)",
                                argv[optind - 1]);
            fprintf(stderr, "uniqdb: unknown option '%s'\n", argv[optind - 1]);
            main_usage(stderr);
            return CLI_EUSAGE;
        }
    }
    if (optind >= argc) {
        if (cli_json_errors)
            return cli_fail(CLI_EUSAGE, NULL, "no command given (try: uniqdb --help)");
        main_usage(stderr);
        return CLI_EUSAGE;
    }
    const command *cmd = find_command(argv[optind]);
    if (!cmd) {
        char msg[256];
        snprintf(msg, sizeof msg, "unknown command '%s'", argv[optind]);
        return cli_usage("", msg);
    }
    int rc = guarded_read(cmd) ? read_guarded(cmd, argc - optind, argv + optind)
                               : cmd->fn(argc - optind, argv + optind);
    if (fflush(stdout) == EOF || ferror(stdout)) {
        int err = errno;
        if (cli_committed) {
            fprintf(stderr, "uniqdb: %s: the change was committed, but writing the result to "
                    "stdout failed (%s); running the command again would repeat it\n",
                    cmd->name, strerror(err));
            rc = CLI_EOUTPUT;
        } else {
            fprintf(stderr, "uniqdb: writing to stdout failed (%s)\n", strerror(err));
            if (rc == CLI_OK)
                rc = CLI_EFAIL;
        }
    }
    return rc;
}
