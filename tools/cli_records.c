/*
 * cli_records.c -- the record commands: put, get, find, scan, update, delete,
 * seq.  A write is one operation, given to udb_exec() as data, so that
 * concurrent `uniqdb` processes share commits: while another process leads
 * a group commit, the unit runs in its batch (udb_exec).  Two writes stay on
 * udb_write() with a callback (op_run): `seq --set`, which is no udb_exec()
 * op, and any write given --timeout, which must be able to give up knowing
 * that nothing was written (cli_write; udb_exec() has no such moment).  Both
 * paths print the same: op_run converts what an operation returns to JSON
 * inside the transaction (returned bytes die with it) and resets its results
 * first because udb_write() may run it twice; op_run_unit converts the
 * caller-owned results of udb_exec().
 */
#include "cli_common.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* ---- Parsing command-line values -------------------------------------------- */

/* Pack the JSON text arg ("-": stdin) into sb.  want_object: it must be a
 * JSON object (a record); wrap_array: a non-array is wrapped into [v]. */
static int pack_arg(msgpack_sbuffer *sb, const char *arg, const char *what, int want_object,
                    int wrap_array)
{
    char *text = NULL;
    size_t len;
    int rc;
    if (strcmp(arg, "-") == 0) {
        if ((rc = cli_read_file(&text, &len, "-")) != CLI_OK)
            return rc;
        arg = text;
    } else {
        len = strlen(arg);
    }
    char err[CLI_ERRLEN];
    json_t *v = cli_json_parse(arg, len, err);
    free(text);
    if (!v) {
        if (want_object)
            return cli_fail(CLI_EINVALID, NULL, "%s: %s", what, err);
        return cli_fail(CLI_EINVALID, NULL, "%s: %s (a JSON value: 42 or '\"abc\"')", what, err);
    }
    if (want_object && !json_is_object(v)) {
        json_decref(v);
        return cli_fail(CLI_EINVALID, NULL, "%s: must be a JSON object", what);
    }
    if (wrap_array && !json_is_array(v)) {
        json_t *a = json_array();
        if (!a || json_array_append_new(a, v)) {
            json_decref(a);
            return cli_fail(CLI_EFAIL, NULL, "out of memory");
        }
        v = a;
    }
    rc = cli_json_to_msgpack(sb, v, err);
    json_decref(v);
    if (rc)
        return cli_fail(CLI_EINVALID, NULL, "%s: %s", what, err);
    return CLI_OK;
}

/* Report a failed operation: the engine's detail names type, field or index;
 * without one, say what was being done. */
static int fail_op(int rc, const char *detail, json_t *conflict, const char *what)
{
    return cli_fail_rc(rc, detail, conflict, detail && *detail ? NULL : what);
}

/* ---- Write operations ------------------------------------------------------- */

typedef enum {
    OP_INSERT,
    OP_OR_GET,
    OP_UPSERT,
    OP_UPDATE,
    OP_DELETE,
    OP_SEQ_NEXT,
    OP_SEQ_SET
} op_kind;

typedef struct op {
    op_kind kind;
    const char *type, *index, *name;
    msgpack_sbuffer rec, key;
    unsigned flags;
    uint64_t value;
    /* results of the last run */
    json_t *record, *conflict;
    int created;
    int refused; /* seq --set: the name is fine, the value is refused (invalid input) */
    char detail[2048];
    char err[CLI_ERRLEN];
} op;

static void op_reset(op *o)
{
    json_decref(o->record);
    json_decref(o->conflict);
    o->record = o->conflict = NULL;
    o->created = 0;
    o->refused = 0;
    o->detail[0] = o->err[0] = '\0';
}

static int op_run(udb_txn *txn, void *ctx)
{
    op *o = ctx;
    op_reset(o);
    udb_val out = {NULL, 0};
    int rc = 0;
    switch (o->kind) {
    case OP_INSERT:
        rc = udb_insert(&out, txn, o->type, o->rec.data, o->rec.size);
        o->created = 1;
        break;
    case OP_OR_GET:
        rc = udb_insert_or_get(&out, &o->created, txn, o->type, o->index, o->rec.data,
                               o->rec.size);
        break;
    case OP_UPSERT:
        rc = udb_upsert(&out, &o->created, txn, o->type, o->index, o->rec.data, o->rec.size,
                        NULL, 0);
        break;
    case OP_UPDATE:
        rc = udb_update(&out, txn, o->type, o->key.data, o->key.size, o->rec.data, o->rec.size,
                        o->flags);
        break;
    case OP_DELETE:
        rc = udb_delete(txn, o->type, o->key.data, o->key.size);
        break;
    case OP_SEQ_NEXT:
        rc = udb_seq_next(&o->value, txn, o->name);
        break;
    case OP_SEQ_SET:
        rc = udb_seq_set(txn, o->name, o->value);
        break;
    }
    if (rc) {
        snprintf(o->detail, sizeof o->detail, "%s", udb_errmsg(txn));
        if (rc == UDB_ECONFLICT)
            o->conflict = cli_conflict_json(udb_conflict_info(txn));
        uint64_t cur;
        /* udb_seq_set's UDB_EINVAL is a bad name (a usage error, exit 2) or a value
           below the type's largest auto key: the engine's own name check tells */
        if (o->kind == OP_SEQ_SET && rc == UDB_EINVAL)
            o->refused = udb_seq_get(&cur, txn, o->name) != UDB_EINVAL;
        return rc;
    }
    /* The write stands even if its result cannot be shown: report, don't undo. */
    if (out.data)
        o->record = cli_msgpack_to_json(out.data, out.size, o->err);
    return 0;
}

/* Run o through udb_exec() as a unit of one op, filling o's results as
 * op_run does. */
static int op_run_unit(op *o, udb_env *env, const char *db)
{
    udb_op u = UDB_OP_INIT;
    udb_val rec = {o->rec.data, o->rec.size}, key = {o->key.data, o->key.size};
    u.type = o->type;
    switch (o->kind) {
    case OP_INSERT:
        u.kind = UDB_OP_INSERT;
        u.rec = rec;
        break;
    case OP_OR_GET:
    case OP_UPSERT:
        u.kind = o->kind == OP_OR_GET ? UDB_OP_INSERT_OR_GET : UDB_OP_UPSERT;
        u.index = o->index;
        u.rec = rec;
        break;
    case OP_UPDATE:
        u.kind = UDB_OP_UPDATE;
        u.key = key;
        u.rec = rec;
        u.flags = o->flags;
        break;
    case OP_DELETE:
        u.kind = UDB_OP_DELETE;
        u.key = key;
        break;
    case OP_SEQ_NEXT:
        u.kind = UDB_OP_SEQ_NEXT;
        u.type = NULL;
        u.seq = o->name;
        break;
    case OP_SEQ_SET: /* no such op: op_exec runs it through op_run */
        return UDB_EINVAL;
    }
    op_reset(o);
    udb_results *res;
    int rc = cli_exec(&res, env, db, &u, 1);
    const udb_result *r = udb_result_at(res, 0);
    if (rc) {
        /* the op failed: its own message and conflict, as op_run keeps them
           (udb_write() too falls back on the code's text for an empty one);
           otherwise the unit failed as a whole: op_exec reports
           udb_env_errmsg(), the message udb_write() would have left */
        if (r && udb_results_failed(res) == 0) {
            snprintf(o->detail, sizeof o->detail, "%s", r->errmsg[0] ? r->errmsg
                                                                    : udb_strerror(rc));
            if (rc == UDB_ECONFLICT)
                o->conflict = cli_conflict_json(r->conflict);
        }
    } else {
        o->created = r->created;
        o->value = r->value;
        /* The write stands even if its result cannot be shown: report, don't undo. */
        if (r->record.data)
            o->record = cli_msgpack_to_json(r->record.data, r->record.size, o->err);
    }
    udb_results_free(res);
    return rc;
}

/* Run o on DB; prints the stored record if there is one. */
static int op_exec(op *o, const char *db, const char *what)
{
    udb_env *env = NULL;
    int ex;
    if ((ex = cli_open(&env, db, CLI_OPEN_WRITE)) != CLI_OK)
        return ex;
    /* seq --set is no udb_exec() op; with --timeout the write must be able to
       give up before the lock is ours, which only udb_write()'s callback tells */
    int rc = o->kind == OP_SEQ_SET || cli_timeout > 0 ? cli_write(env, db, op_run, o)
                                                       : op_run_unit(o, env, db);
    if (rc == UDB_ENOTFOUND && (o->kind == OP_UPDATE || o->kind == OP_DELETE)) {
        /* name the key that was not there, and where it was looked for */
        ex = cli_fail(CLI_ENOTFOUND, NULL, "%s: %s: no such record", db, what);
        goto out;
    }
    if (rc && o->refused) {
        ex = cli_fail(CLI_EINVALID, NULL, "%s", o->detail); /* a value the data refuses */
        goto out;
    }
    if (rc) {
        ex = fail_op(rc, o->detail[0] ? o->detail : udb_env_errmsg(env), o->conflict, what);
        o->conflict = NULL;
        goto out;
    }
    cli_committed = 1;
    ex = CLI_OK;
    if (o->record && cli_json_errors && (o->kind == OP_OR_GET || o->kind == OP_UPSERT)) {
        /* what happened, machine-readable: {"created": ..., ["updated": ...,] "record": ...} */
        json_t *w = json_pack("{s b}", "created", o->created);
        if (w && o->kind == OP_UPSERT)
            json_object_set_new(w, "updated", json_boolean(!o->created));
        if (w && json_object_set(w, "record", o->record) == 0)
            ex = cli_print_json(w);
        else
            ex = cli_fail(CLI_EOUTPUT, NULL, "written, but out of memory showing it");
        json_decref(w);
    } else if (o->record)
        ex = cli_print_json(o->record);
    else if (o->err[0])
        ex = cli_fail(CLI_EFAIL, NULL, "written, but the stored record cannot be shown: %s",
                      o->err);
out:
    udb_close(env);
    return ex;
}

static void op_init(op *o, op_kind kind)
{
    memset(o, 0, sizeof *o);
    o->kind = kind;
    msgpack_sbuffer_init(&o->rec);
    msgpack_sbuffer_init(&o->key);
}

static void op_destroy(op *o)
{
    op_reset(o);
    msgpack_sbuffer_destroy(&o->rec);
    msgpack_sbuffer_destroy(&o->key);
}

/* ---- put ---------------------------------------------------------------------- */

static int is_nonoption(const char *a)
{
    return a[0] != '-' || a[1] == '\0';
}

int cli_cmd_put(int argc, char **argv)
{
    static const struct option opts[] = {
        {"or-get", optional_argument, NULL, 'g'},
        {"upsert", optional_argument, NULL, 'u'},
        CLI_COMMON_LONGOPTS,
    };
    char *joined = NULL;
    op o;
    op_init(&o, OP_INSERT);
    /* "--or-get INDEX" with a space: getopt only knows "--or-get=INDEX", so
     * join them when the words after the three positionals leave room. */
    char **av = calloc((size_t)argc + 1, sizeof *av);
    int ex;
    if (!av) {
        ex = cli_fail(CLI_EFAIL, NULL, "out of memory");
        goto out;
    }
    int i, nonopt = 0;
    for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        nonopt += is_nonoption(argv[i]);
    for (; i < argc; i++)
        nonopt += strcmp(argv[i], "--") != 0;
    int ac = 0;
    for (i = 0; i < argc; i++) {
        if (!joined && nonopt == 4 && i + 1 < argc && is_nonoption(argv[i + 1]) &&
            (strcmp(argv[i], "--or-get") == 0 || strcmp(argv[i], "--upsert") == 0)) {
            if (asprintf(&joined, "%s=%s", argv[i], argv[i + 1]) < 0) {
                joined = NULL;
                ex = cli_fail(CLI_EFAIL, NULL, "out of memory");
                goto out;
            }
            av[ac++] = joined;
            i++;
            continue;
        }
        av[ac++] = argv[i];
    }
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(ac, av, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'g':
        case 'u':
            if (o.kind != OP_INSERT) {
                ex = cli_usage("put", "--or-get and --upsert exclude each other");
                goto out;
            }
            o.kind = c == 'g' ? OP_OR_GET : OP_UPSERT;
            o.index = optarg && *optarg ? optarg : NULL;
            break;
        default:
            if ((ex = cli_common_option(c, av, NULL)) >= 0)
                goto out;
            break;
        }
    }
    if (ac - optind != 3) {
        ex = cli_usage("put", "expected DB TYPE JSON");
        goto out;
    }
    o.type = av[optind + 1];
    if ((ex = pack_arg(&o.rec, av[optind + 2], "record", 1, 0)) != CLI_OK)
        goto out;
    ex = op_exec(&o, av[optind], o.type);
    if (ex == CLI_OK && o.kind != OP_INSERT)
        fprintf(stderr, "%s\n",
                o.created ? "created" : o.kind == OP_OR_GET ? "existing" : "updated");
out:
    op_destroy(&o);
    free(joined);
    free(av);
    return ex;
}

/* ---- update, delete ---------------------------------------------------------- */

int cli_cmd_update(int argc, char **argv)
{
    static const struct option opts[] = {
        {"merge", no_argument, NULL, 'm'},
        CLI_COMMON_LONGOPTS,
    };
    op o;
    op_init(&o, OP_UPDATE);
    optind = 0;
    opterr = 0;
    int c, ex;
    while ((c = getopt_long(argc, argv, ":hm", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            o.flags |= UDB_MERGE;
            break;
        default:
            if ((ex = cli_common_option(c, argv, NULL)) >= 0)
                goto out;
            break;
        }
    }
    if (argc - optind != 4) {
        ex = cli_usage("update", "expected DB TYPE KEY JSON");
        goto out;
    }
    o.type = argv[optind + 1];
    if ((ex = pack_arg(&o.key, argv[optind + 2], "KEY", 0, 0)) != CLI_OK ||
        (ex = pack_arg(&o.rec, argv[optind + 3], "record", 1, 0)) != CLI_OK)
        goto out;
    char what[512];
    snprintf(what, sizeof what, "%s %s", o.type, argv[optind + 2]);
    ex = op_exec(&o, argv[optind], what);
out:
    op_destroy(&o);
    return ex;
}

int cli_cmd_delete(int argc, char **argv)
{
    int first, ex;
    if ((ex = cli_simple_options(argc, argv, &first)) >= 0)
        return ex;
    if (argc - first != 3)
        return cli_usage("delete", "expected DB TYPE KEY");
    op o;
    op_init(&o, OP_DELETE);
    o.type = argv[first + 1];
    if ((ex = pack_arg(&o.key, argv[first + 2], "KEY", 0, 0)) == CLI_OK) {
        char what[512];
        snprintf(what, sizeof what, "%s %s", o.type, argv[first + 2]);
        ex = op_exec(&o, argv[first], what);
    }
    op_destroy(&o);
    return ex;
}

/* ---- seq ---------------------------------------------------------------------- */

static int parse_u64(uint64_t *out, const char *s)
{
    if (!*s || *s == '-' || *s == '+' || *s == ' ')
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

/* Append a sequence's name to a list of them (a char[1024]), while it has room. */
static int seq_name(const char *name, uint64_t value, void *ctx)
{
    char *list = ctx;
    size_t n = strlen(list);
    (void)value;
    if (n + strlen(name) + 8 < 1024)
        snprintf(list + n, 1024 - n, "%s%s", n ? ", " : "", name);
    else if (n >= 3 && n + 5 < 1024 && strcmp(list + n - 3, "...") != 0)
        snprintf(list + n, 1024 - n, ", ...");
    return 0;
}

int cli_cmd_seq(int argc, char **argv)
{
    static const struct option opts[] = {
        {"get", no_argument, NULL, 'g'},
        {"set", required_argument, NULL, 's'},
        CLI_COMMON_LONGOPTS,
    };
    op o;
    op_init(&o, OP_SEQ_NEXT);
    optind = 0;
    opterr = 0;
    int c, ex, get = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'g':
            get = 1;
            break;
        case 's':
            o.kind = OP_SEQ_SET;
            if (parse_u64(&o.value, optarg)) {
                ex = cli_usage("seq", "--set needs a number 0..18446744073709551615");
                goto out;
            }
            break;
        default:
            if ((ex = cli_common_option(c, argv, "--set needs a value")) >= 0)
                goto out;
            break;
        }
    }
    if (argc - optind != 2) {
        ex = cli_usage("seq", "expected DB NAME");
        goto out;
    }
    if (get && o.kind == OP_SEQ_SET) {
        ex = cli_usage("seq", "--get and --set exclude each other");
        goto out;
    }
    o.name = argv[optind + 1];
    if (!get) {
        ex = op_exec(&o, argv[optind], o.name);
        if (ex == CLI_OK && o.kind == OP_SEQ_NEXT)
            printf("%" PRIu64 "\n", o.value);
        goto out;
    }
    udb_env *env = NULL;
    if ((ex = cli_open(&env, argv[optind], CLI_OPEN_READ)) != CLI_OK)
        goto out;
    udb_txn *txn = NULL;
    if ((c = udb_begin(&txn, env, UDB_RDONLY)) == 0)
        c = udb_seq_get(&o.value, txn, o.name);
    if (c == UDB_ENOTFOUND) {
        /* name the sequences there are, as for an unknown type or index */
        char names[1024] = "", msg[512];
        snprintf(msg, sizeof msg, "%s", udb_errmsg(txn));
        int lrc = udb_seq_foreach(txn, seq_name, names);
        ex = cli_fail(CLI_ENOTFOUND, NULL, "%s (%s%s)", msg,
                      lrc ? "the sequences there are cannot be listed: "
                          : *names ? "this database has: " : "this database has no sequences yet",
                      lrc ? udb_strerror(lrc) : names);
    } else if (c) {
        char what[300];
        snprintf(what, sizeof what, "sequence %s", o.name);
        ex = fail_op(c, udb_errmsg(txn), NULL, what);
    } else {
        printf("%" PRIu64 "\n", o.value);
    }
    udb_abort(txn);
    udb_close(env);
out:
    op_destroy(&o);
    return ex;
}

/* ---- Reads: get, find, scan ---------------------------------------------------- */

static int print_record(udb_val v)
{
    char err[CLI_ERRLEN];
    json_t *j = cli_msgpack_to_json(v.data, v.size, err);
    if (!j)
        return cli_fail(CLI_EFAIL, NULL, "cannot show a stored record: %s", err);
    int ex = cli_print_json(j);
    json_decref(j);
    return ex;
}

/* get and find: one record by primary key or by unique index. */
static int lookup(int argc, char **argv, int by_index)
{
    udb_env *env = NULL;
    udb_txn *txn = NULL;
    int first, ex;
    if ((ex = cli_simple_options(argc, argv, &first)) >= 0)
        return ex;
    const char *cmd = by_index ? "find" : "get";
    if (argc - first != 3 + by_index)
        return cli_usage(cmd, by_index ? "expected DB TYPE INDEX JSON-ARRAY"
                                       : "expected DB TYPE KEY");
    msgpack_sbuffer key;
    msgpack_sbuffer_init(&key);
    if ((ex = pack_arg(&key, argv[first + 2 + by_index], by_index ? "values" : "KEY", 0,
                       by_index)) != CLI_OK)
        goto out;
    if ((ex = cli_open(&env, argv[first], CLI_OPEN_READ)) != CLI_OK)
        goto out;
    int rc = udb_begin(&txn, env, UDB_RDONLY);
    udb_val v;
    if (rc == 0)
        rc = by_index ? udb_find(&v, txn, argv[first + 1], argv[first + 2], key.data, key.size)
                      : udb_get(&v, txn, argv[first + 1], key.data, key.size);
    if (rc) {
        char what[600];
        if (by_index)
            snprintf(what, sizeof what, "%s.%s %s: no such record", argv[first + 1],
                     argv[first + 2], argv[first + 3]);
        else
            snprintf(what, sizeof what, "%s %s: no such record", argv[first + 1], argv[first + 2]);
        /* "not found" alone says nothing: name what was looked up. */
        if (rc == UDB_ENOTFOUND)
            ex = cli_fail(CLI_ENOTFOUND, NULL, "%s", what);
        else
            ex = fail_op(rc, txn ? udb_errmsg(txn) : udb_env_errmsg(env), NULL, cmd);
    } else {
        ex = print_record(v);
    }
out:
    udb_abort(txn);
    udb_close(env);
    msgpack_sbuffer_destroy(&key);
    return ex;
}

int cli_cmd_get(int argc, char **argv)
{
    return lookup(argc, argv, 0);
}

int cli_cmd_find(int argc, char **argv)
{
    return lookup(argc, argv, 1);
}

/* The primary-key field of type in the stored schema, or NULL. */
static char *key_field(udb_env *env, const char *type)
{
    char *text = NULL;
    if (udb_schema_json(&text, env) != 0)
        return NULL;
    json_t *s = json_loads(text, 0, NULL);
    udb_free(text);
    char *r = NULL;
    if (s) {
        const char *k = json_string_value(json_object_get(
            json_object_get(json_object_get(s, "types"), type), "key"));

        r = k ? strdup(k) : NULL;
        json_decref(s);
    }
    return r;
}

/* The text of the next page's --after: the sort key of the entry cur gave
 * last, as compact JSON (malloc'd), or NULL with the failure reported in *ex. */
static char *after_text(udb_cursor *cur, udb_txn *txn, int *ex)
{
    udb_val key;
    int rc = udb_cursor_key(&key, cur);
    if (rc) {
        *ex = fail_op(rc, udb_errmsg(txn), NULL, "scan");
        return NULL;
    }
    char err[CLI_ERRLEN];
    json_t *j = cli_msgpack_to_json(key.data, key.size, err);
    char *text = j ? cli_json_dumps(j, 0) : NULL;
    json_decref(j);
    if (!text)
        *ex = cli_fail(CLI_EFAIL, NULL, "cannot show the scan's position: %s",
                       j ? "out of memory" : err);
    return text;
}

int cli_cmd_scan(int argc, char **argv)
{
    enum { O_GE = 256, O_GT, O_LE, O_LT, O_AFTER };
    static const struct option opts[] = {
        {"limit", required_argument, NULL, 'n'},
        {"reverse", no_argument, NULL, 'r'},
        {"ge", required_argument, NULL, O_GE},
        {"from", required_argument, NULL, O_GE},
        {"gt", required_argument, NULL, O_GT},
        {"le", required_argument, NULL, O_LE},
        {"to", required_argument, NULL, O_LE},
        {"lt", required_argument, NULL, O_LT},
        {"after", required_argument, NULL, O_AFTER},
        CLI_COMMON_LONGOPTS,
    };
    /* bufs: the prefix, lo, hi, after */
    msgpack_sbuffer buf[4];
    const char *lo_arg = NULL, *hi_arg = NULL, *after_arg = NULL;
    udb_env *env = NULL;
    udb_txn *txn = NULL;
    udb_cursor *cur = NULL;
    char *keyf = NULL, *next = NULL;
    for (int i = 0; i < 4; i++)
        msgpack_sbuffer_init(&buf[i]);
    udb_range range = UDB_RANGE_INIT;
    optind = 0;
    opterr = 0;
    uint64_t limit = UINT64_MAX;
    int c, ex;
    while ((c = getopt_long(argc, argv, ":hn:r", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (parse_u64(&limit, optarg)) {
                ex = cli_usage("scan", "--limit needs a number");
                goto out;
            }
            break;
        case 'r':
            range.flags |= UDB_REVERSE;
            break;
        case O_GE:
        case O_GT:
        case O_LE:
        case O_LT: {
            bool lo = c == O_GE || c == O_GT;
            if (lo ? lo_arg != NULL : hi_arg != NULL) {
                ex = cli_usage("scan", lo ? "one lower bound: --ge (--from) or --gt, once"
                                          : "one upper bound: --le (--to) or --lt, once");
                goto out;
            }
            *(lo ? &lo_arg : &hi_arg) = optarg;
            if (c == O_GT)
                range.flags |= UDB_LO_EXCL;
            if (c == O_LT)
                range.flags |= UDB_HI_EXCL;
            int i = lo ? 1 : 2;
            const char *what = c == O_GE ? "--ge" : c == O_GT ? "--gt" : c == O_LE ? "--le"
                                                                                 : "--lt";
            if ((ex = pack_arg(&buf[i], optarg, what, 0, 1)) != CLI_OK)
                goto out;
            break;
        }
        case O_AFTER:
            after_arg = optarg;
            if ((ex = pack_arg(&buf[3], optarg, "--after", 0, 1)) != CLI_OK)
                goto out;
            break;
        default:
            if ((ex = cli_common_option(c, argv, "--limit, --ge, --gt, --le, --lt and --after "
                                        "need a value")) >= 0)
                goto out;
            break;
        }
    }
    int npos = argc - optind;
    if (npos < 2 || npos > 4) {
        ex = cli_usage("scan", "expected DB TYPE [INDEX [JSON-ARRAY-PREFIX]]");
        goto out;
    }
    const char *type = argv[optind + 1];
    const char *index = NULL;
    if (npos >= 3 && strcmp(argv[optind + 2], "-") != 0 && argv[optind + 2][0])
        index = argv[optind + 2];
    if (npos == 4) {
        if (lo_arg || hi_arg) {
            ex = cli_usage("scan", "give a prefix or bounds, not both (a prefix P is "
                           "--ge P --le P)");
            goto out;
        }
        if ((ex = pack_arg(&buf[0], argv[optind + 3], "prefix", 0, 1)) != CLI_OK)
            goto out;
        range.lo = range.hi = (udb_val){buf[0].data, buf[0].size};
    }
    if (lo_arg)
        range.lo = (udb_val){buf[1].data, buf[1].size};
    if (hi_arg)
        range.hi = (udb_val){buf[2].data, buf[2].size};
    if (after_arg)
        range.after = (udb_val){buf[3].data, buf[3].size};
    if ((ex = cli_open(&env, argv[optind], CLI_OPEN_READ)) != CLI_OK)
        goto out;
    if (index && (keyf = key_field(env, type)) != NULL && strcmp(keyf, index) == 0)
        index = NULL;
    int rc = udb_begin(&txn, env, UDB_RDONLY);
    if (rc == 0)
        rc = udb_scan_range(&cur, txn, type, index, &range);
    uint64_t n = 0;
    while (rc == 0 && n < limit) {
        udb_val v;
        rc = udb_cursor_next(&v, cur);
        if (rc == 0 && (ex = print_record(v)) != CLI_OK)
            goto out;
        cli_guard_tick(NULL);
        n += rc == 0;
    }
    if (rc == 0 && n > 0) {
        /* stopped by --limit: if an entry follows, say how to get it */
        if (!(next = after_text(cur, txn, &ex)))
            goto out;
        uint64_t more = 0;
        if ((rc = udb_cursor_skip(&more, cur, 1)) == 0 && more)
            fprintf(stderr, "next: --after %s\n", next);
    }
    if (rc && rc != UDB_ENOTFOUND)
        ex = fail_op(rc, txn ? udb_errmsg(txn) : udb_env_errmsg(env), NULL, "scan");
    else
        ex = CLI_OK;
out:
    udb_cursor_close(cur);
    udb_abort(txn);
    udb_close(env);
    free(keyf);
    free(next);
    for (int i = 0; i < 4; i++)
        msgpack_sbuffer_destroy(&buf[i]);
    return ex;
}
