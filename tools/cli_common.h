/*
 * cli_common.h -- what the files of the `uniqdb` command-line tool share.
 *
 * The tool is split by concept: main.c (main, nothing else: the rest is a
 * library the fuzzers link too), uniqdb.c (command table, option handling,
 * error reporting and exit codes), cli_json.c (JSON <-> msgpack: the
 * library's conversion, uniqdb_jansson.h), cli_records.c (the record
 * commands), cli_dump.c (dump and load), cli_admin.c (init, schema, check,
 * stat), cli_backup.c (backup), cli_demo.c (the five scenarios, live),
 * cli_export.c (export to PostgreSQL) and cli_guard.c (reading a damaged
 * database in child processes).  Only the public API of include/uniqdb.h is used, as any
 * application would: the build gives these files no other include directory
 * and links them to the shared library.
 */
#ifndef UNIQDB_CLI_H
#define UNIQDB_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>
#include <msgpack.h>

#include "uniqdb.h"
#include "uniqdb_jansson.h"

/* ---- Exit codes (the contract scripts branch on) ------------------------- */
enum {
    CLI_OK = 0,
    CLI_EFAIL = 1,     /* any other error */
    CLI_EUSAGE = 2,    /* bad command line, unknown type, index or sequence name */
    CLI_ECONFLICT = 3, /* a unique index already holds the key */
    CLI_ENOTFOUND = 4, /* no such record, index entry or sequence */
    CLI_EINVALID = 5,  /* invalid record, schema, key or JSON input; sequence exhausted */
    CLI_ECHECK = 6,    /* check found problems */
    CLI_ETIMEOUT = 7,  /* --timeout: another process held the write lock too long */
    CLI_EOUTPUT = 8    /* the change was committed, but writing the result failed */
};

/* ---- Options every command accepts -------------------------------------- */
extern int cli_json_errors; /* --json: errors as RFC 9457 problem objects on stdout */

/* Set by a command once a write transaction of it has committed: from then
 * on a failure to write stdout exits CLI_EOUTPUT, so that a script knows not
 * to run the command again. */
extern int cli_committed;

/* The whole command line (uniqdb.c): main.c's only call.  Returns the exit code. */
int cli_main(int argc, char **argv);

/* A command: argv[0] is the command name; returns an exit code. */
typedef int cli_command_fn(int argc, char **argv);

cli_command_fn cli_cmd_init, cli_cmd_schema, cli_cmd_put, cli_cmd_get, cli_cmd_find,
    cli_cmd_scan, cli_cmd_update, cli_cmd_delete, cli_cmd_seq, cli_cmd_dump, cli_cmd_load,
    cli_cmd_check, cli_cmd_stat, cli_cmd_demo, cli_cmd_export, cli_cmd_backup;

/* ---- Error reporting (uniqdb.c) ----------------------------------------- */

/* The exit code for a library return code. */
int cli_exit_code(int rc);

/* Report an error and return `code`.  Without --json: "uniqdb: <message>" on
 * stderr.  With --json: a problem object on stdout whose status follows code;
 * the members of `extra` (an object, stolen; may be NULL) are added to it. */
int cli_fail(int code, json_t *extra, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Report a failed library call: the message is `what: <detail or strerror>`;
 * conflict (may be NULL, stolen) is the JSON from cli_conflict_json(). */
int cli_fail_rc(int rc, const char *detail, json_t *conflict, const char *what);

/* The JSON form of a conflict (index by its name as declared, fields, values,
 * existing_key, the type as record_type, and all violated indexes under
 * "conflicts"), for the problem
 * object of cli_fail_rc(); NULL if c is NULL or on error.  Call while the
 * conflict is still valid. */
json_t *cli_conflict_json(const udb_conflict *c);

/* Print a command's usage (to stdout for --help) and return CLI_OK, or print
 * "<msg>" plus the usage line to stderr and return CLI_EUSAGE. */
int cli_usage(const char *cmd, const char *msg);

/* The entries every command's getopt_long() table ends with: --help, --json
 * and the terminator. */
#define CLI_COMMON_LONGOPTS \
    {"help", no_argument, NULL, 'h'}, {"json", no_argument, NULL, 'j'}, \
    {"timeout", required_argument, NULL, 'T'}, {NULL, 0, NULL, 0}

/* --timeout SEC: how long a write waits for another process's write
 * transaction before giving up with CLI_ETIMEOUT; 0 = for ever.  Only
 * cli_write() and cli_schema_apply() can give up, so a command given
 * --timeout writes through them (see cli_exec). */
extern double cli_timeout;

/* udb_write(env, fn, ctx) for the database at path db, watched while it
 * waits for LMDB's writer lock (held by another process): on a terminal,
 * after a second, stderr says so; with --timeout, when the wait exceeds it,
 * the process exits CLI_ETIMEOUT having written nothing.  Once fn runs the
 * lock is ours and the watch ends. */
int cli_write(udb_env *env, const char *db, udb_write_fn fn, void *ctx);

/* udb_schema_apply(changes, env, json, len, flags) for the database at path
 * db, watched like cli_write(): with --timeout, a wait for another process's
 * write transaction longer than that exits CLI_ETIMEOUT having written
 * nothing (init, and load's schema line). */
int cli_schema_apply(char **changes, udb_env *env, const char *db, const char *json, size_t len,
                     unsigned flags);

/* udb_exec(res, env, ops, n) for the database at path db: the way record
 * writes share commits with other processes (the unit may be handed to
 * another process's group commit leader).  On a terminal, a call that has
 * not returned after a second says so on stderr.  It never gives up:
 * udb_exec() reports no moment before which the unit is certain not to be
 * written (a unit handed over runs even if its process is gone), so a
 * command given --timeout uses cli_write() instead. */
int cli_exec(udb_results **res, udb_env *env, const char *db, const udb_op *ops, size_t n);

/* The options every command shares, for the default: case of a command's
 * getopt_long() loop (short options starting with ':', opterr = 0).  c is
 * what getopt_long() returned, argv what it parsed (argv[0]: the command).
 * --json sets cli_json_errors; --help prints the command's usage; ':' (an
 * option missing its argument) is a usage error saying missing_msg, or, when
 * missing_msg is NULL (no option takes an argument), an unknown option like
 * anything else.  Returns -1 to go on, or an exit code. */
int cli_common_option(int c, char **argv, const char *missing_msg);

/* Common option handling for commands without options of their own: parses
 * --help and --json, leaves the positional arguments in argv[*first..argc).
 * Returns -1 to go on, or an exit code (help printed or usage error). */
int cli_simple_options(int argc, char **argv, int *first);

/* Whether DB names a PostgreSQL database (postgresql://... or postgres://...:
 * a libpq connection URI, plus schema=NAME) rather than an LMDB directory.
 * Nothing that treats DB as a file (stat, mkdir, rename, lock.mdb) is done
 * to a URL: the server holds the database. */
bool cli_is_url(const char *db);

/* db as it may be shown (messages, output): a password in a PostgreSQL URL
 * (postgresql://user:PASSWORD@host/..., or a password=... parameter) is
 * replaced by ***; anything else is db itself.  Valid until the process
 * ends. */
const char *cli_shown(const char *db);

/* text with the password of every PostgreSQL URL in it replaced by ***, into
 * out (cap > 0 bytes, NUL-terminated, truncated to fit): the PASSWORD of an
 * authority user:PASSWORD@host, and the value of a password=VALUE parameter
 * up to '&', white space, a quote or ": ".  Text without a URL is copied as
 * it is.  Redacting the result again changes nothing (fuzz/fuzz_redact.c). */
void cli_redact(char *out, size_t cap, const char *text);

/* For a URL: whether the server holds a uniqdb database there (a stored
 * schema).  *has gets 1 or 0.  Opens it read-only and changes nothing.
 * Returns CLI_OK, or an exit code having reported the error (the server
 * cannot be reached, the login is refused). */
int cli_url_has_db(int *has, const char *url);

/* How cli_open() opens a database. */
enum {
    CLI_OPEN_READ,  /* read only (UDB_RDONLY_ENV): works on databases this user cannot
                       write; nothing is ever created or written */
    CLI_OPEN_WRITE, /* an existing database, for writing */
    CLI_OPEN_CREATE /* create it if missing */
};

/* Open the database at path; mode is one of CLI_OPEN_*.  Returns an exit
 * code, having reported the error ("no such directory", "permission denied",
 * "not a uniqdb database" are told apart). */
int cli_open(udb_env **out, const char *path, int mode);
/* Open path read-only and begin one read transaction on it, with the stored
 * schema text in *schema (valid while *txn is open): one snapshot to read
 * everything from.  Returns an exit code, having reported the error; *env
 * and *txn (each NULL or open) are the caller's to end either way. */
int cli_open_snapshot(udb_env **env, udb_txn **txn, const char **schema, const char *path);
/* cli_open with udb_options.max_dbs (0: the library's default) */
int cli_open_sized(udb_env **out, const char *path, int mode, unsigned max_dbs);
/* The max_dbs a schema (JSON text) needs, with room to grow: one LMDB
 * database per type and per index, and 2. */
unsigned cli_schema_dbs(const char *json, size_t len);

/* A database that init or load --atomic may create.  A new one is built in a
 * private directory (beside DB, or inside DB when DB is an existing directory
 * without a database) and put in place only once it is complete: renamed to
 * DB, or its data file linked into DB, neither ever replacing anything.  So a
 * failed command leaves nothing behind, and nothing it removes was ever
 * visible to another process: it can never remove a database someone else
 * opened or wrote.  (Removing "what this command created" afterwards cannot
 * be made safe: another process may open it at any instant between a check
 * and an unlink.) */
typedef struct cli_newdb {
    const char *path; /* DB as given */
    char *build;      /* where to open it: path (an existing database), or the private directory */
    int fresh;        /* build is a private directory, put in place by cli_newdb_publish */
    int inside;       /* it is inside path (an existing directory without a database) */
} cli_newdb;

/* Decide where to build the database at path.  Returns an exit code, having
 * reported the error (the private directory cannot be made). */
int cli_newdb_begin(cli_newdb *n, const char *path);

/* cli_newdb_publish: put the database built in n->build (closed, every
 * commit durable) in place at n->path.  Returns CLI_OK (it is there;
 * n->build is path from now on), CLI_NEWDB_TAKEN (another process created a
 * database at path meanwhile: nothing of this one is there; the caller
 * applies its change to that one, or fails), or an exit code, having
 * reported the error.  Nothing to do (CLI_OK) unless n->fresh. */
enum { CLI_NEWDB_TAKEN = -2 };
int cli_newdb_publish(cli_newdb *n);

/* Remove the private directory if it is still there (the database was not
 * published, or was published by linking its data file), and free n. */
void cli_newdb_end(cli_newdb *n);

/* The progress line of a load: "WHAT: 45% (N records, R records/s)" when the
 * input's size is known (total > 0 bytes, done read), else "WHAT: N records
 * (R records/s)"; no rate when secs is 0. */
void cli_progress_text(char *out, size_t size, const char *what, uint64_t records,
                       uint64_t done, uint64_t total, double secs);

/* Write one line to stdout; returns CLI_OK or CLI_EFAIL (stdout failed). */
int cli_put_line(const char *text);

/* Read a whole file ("-": stdin).  *out is malloc'd and NUL-terminated. */
int cli_read_file(char **out, size_t *len, const char *path);

/* Print up to limit records of type as dump lines (cli_dump.c); *written
 * gets how many were printed.  Entries that cannot be shown are reported on
 * stderr (the first few), counted in *unreadable and skipped.  Reading more
 * than `most` records (the type's count: the database is damaged) stops with
 * an error.  Returns an exit code. */
int cli_dump_records(udb_txn *txn, const char *type, uint64_t limit, uint64_t most,
                     uint64_t *written, uint64_t *unreadable);

/* ---- JSON <-> msgpack (cli_json.c) ---------------------------------------- */

/* The library's conversion (uniqdb_jansson.h: every form, the exact writer)
 * with its message (udb_env_errmsg) copied into err, as the tool reports
 * it.  Numbers above INT64_MAX and strings: udb_jansson_u64(),
 * udb_jansson_to_u64(), udb_jansson_text(). */

/* Room for conversion error messages. */
#define CLI_ERRLEN 512

/* udb_jansson_parse(): any JSON value; integers up to UINT64_MAX exact;
 * duplicate object keys refused.  NULL with a message (line/column) in err. */
json_t *cli_json_parse(const char *text, size_t len, char err[CLI_ERRLEN]);

/* udb_jansson_to_msgpack(), appended to sb (initialised by the caller).
 * Returns 0, or -1 with a message naming the JSON path in err. */
int cli_json_to_msgpack(msgpack_sbuffer *sb, const json_t *v, char err[CLI_ERRLEN]);

/* udb_json_to_msgpack(), appended to sb.  Returns 0 or -1 (err). */
int cli_text_to_msgpack(msgpack_sbuffer *sb, const char *text, size_t len,
                        char err[CLI_ERRLEN]);

/* udb_jansson_from_msgpack(): one complete msgpack value, no trailing bytes.
 * NULL with a message in err on failure. */
json_t *cli_msgpack_to_json(const void *data, size_t len, char err[CLI_ERRLEN]);

/* udb_jansson_dumps(): flags 0 (compact, one line) or UDB_JSON_INDENT(n).
 * Returns text to udb_free(), or NULL (out of memory). */
char *cli_json_dumps(const json_t *v, unsigned flags);

/* cli_json_dumps() then cli_put_line(). */
int cli_print_json(const json_t *v);

/* ---- Reading a damaged database in a child process (cli_guard.c) ------------ */

/* The work of a guarded command, run in a forked child; returns its exit code. */
typedef int cli_guard_fn(void *arg);
/* Where a child crashed or hung: the part it was in (its number and name),
 * how far it got (lines written or entries walked, the last one as text)
 * and what happened ("crashed (Segmentation fault)"). */
typedef struct cli_guard_report {
    size_t part;
    const char *name;
    uint64_t count;
    const char *last;
    const char *how;
    /* how the part was read (cli_guard_resume): the way (phase) of how many,
     * entries stepped over, entries read since, crashed while stepping over.
     * on_crash may set phase and skip for CLI_GUARD_RETRY. */
    size_t phase, phases;
    uint64_t skip, steps;
    bool skipping;
} cli_guard_report;
/* What to do after a crash: stop, go on with the next part, or read the
 * same part again, the way (phase, skip) on_crash set in the report. */
enum { CLI_GUARD_STOP, CLI_GUARD_NEXT, CLI_GUARD_RETRY };
typedef int cli_guard_crash_fn(cli_guard_report *r, void *ctx);
typedef void cli_guard_line_fn(const char *line, void *ctx);
#define CLI_GUARD_STATS 4

/* Run fn(arg) in a child process until one ends by itself.  A crash or a
 * hang of the child is handed to on_crash; then, with resume, a new child
 * starts where on_crash says (the next part, or the same part read another
 * way: cli_guard_part, cli_guard_resume), else the run ends.  Lines the
 * child sends (cli_guard_send) go to on_line (may be NULL).  stat (may be
 * NULL) gets the sums of cli_guard_stat_add.  Returns the last child's exit
 * code, CLI_ECHECK instead of CLI_OK after a crash, or CLI_EFAIL (fork,
 * pipe: message printed). */
int cli_guarded(uint64_t stat[CLI_GUARD_STATS], const char *what, cli_guard_fn *fn, void *arg,
                bool resume, cli_guard_crash_fn *on_crash, cli_guard_line_fn *on_line, void *ctx);
/* In the child: true if running under cli_guarded. */
bool cli_guard_child(void);
/* In the child: true if run with resume (dump --salvage). */
bool cli_guard_salvage(void);
/* In the child: the work enters part number `part` called name; true if
 * the part comes before the one to resume at (skip it).  False outside a
 * child. */
bool cli_guard_part(size_t part, const char *name);
/* In the child: one more line written or entry walked (last: it as text, or
 * NULL).  Under --salvage, flushes stdout, so a crash loses no line. */
void cli_guard_tick(const char *last);
/* In the child: send one line to the parent's on_line; 0 or -1. */
int cli_guard_send(const char *line);
/* In the child, at the start of a part that can be read `phases` ways: the
 * way to read it (0 the first) and how many entries to step over first (a
 * retry after a crash: CLI_GUARD_RETRY), both 0 but in the part resumed. */
void cli_guard_resume(size_t *phase, uint64_t *skip, size_t phases);
/* In the child: the part is now read way `phase`, from its start. */
void cli_guard_phase(size_t phase);
/* In the child: stepping over entries (on) or done (off); one more entry
 * read (cli_guard_step).  The parent's report counts them. */
void cli_guard_skipping(bool on);
void cli_guard_step(void);
/* In the child: add v to the parent's stat[i]. */
void cli_guard_stat_add(size_t i, uint64_t v);

#endif /* UNIQDB_CLI_H */
