/*
 * cli_admin.c -- the commands about a database as a whole: init (create or
 * change the schema), schema (print it), check (verify indexes against
 * records) and stat (sizes).  Everything here reads the schema stored in the
 * database, which is what lets the tool open a database without the app.
 */
#include "cli_common.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- init, schema ------------------------------------------------------------- */

/* init --json: {"database": DB, "changes": [line, ...], "types": [name, ...]}, the
 * same facts as the text (no change: an empty list).  stored: the schema as
 * applied (NULL: it could not be read back). */
static int init_json(const char *db, char *changes, const char *stored)
{
    json_t *list = json_array(), *o = NULL;
    int ex = CLI_EFAIL;
    for (char *line = strtok(changes, "\n"); list && line; line = strtok(NULL, "\n"))
        if (json_array_append_new(list, json_string(line)))
            goto out;
    json_t *s = stored ? json_loads(stored, 0, NULL) : NULL, *names = json_array(), *t;
    const char *name;
    json_object_foreach(json_object_get(s, "types"), name, t) {
        if (names && json_array_append_new(names, json_string(name))) {
            json_decref(names);
            names = NULL;
        }
    }
    json_decref(s);
    if (list && names)
        o = json_pack("{s s s O s o}", "database", cli_shown(db), "changes", list, "types",
                      names);
    else
        json_decref(names);
    ex = o ? cli_print_json(o) : cli_fail(CLI_EOUTPUT, NULL, "applied, but out of memory "
                                          "showing it");
out:
    json_decref(o);
    json_decref(list);
    return ex;
}

int cli_cmd_init(int argc, char **argv)
{
    static const struct option opts[] = {
        {"keep", no_argument, NULL, 'k'},
        {"drop", no_argument, NULL, 'D'},
        CLI_COMMON_LONGOPTS,
    };
    char *stored = NULL, *changes = NULL;
    optind = 0;
    opterr = 0;
    unsigned flags = 0;
    int c, ex;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'k')
            flags |= UDB_SCHEMA_KEEP;
        else if (c == 'D')
            flags |= UDB_SCHEMA_DROP;
        else if ((ex = cli_common_option(c, argv, NULL)) >= 0)
            return ex;
    }
    if (argc - optind != 2)
        return cli_usage("init", "expected DB SCHEMA.json");
    if (flags == (UDB_SCHEMA_KEEP | UDB_SCHEMA_DROP))
        return cli_usage("init", "--keep and --drop exclude each other");
    char *text = NULL;
    size_t len;
    if ((ex = cli_read_file(&text, &len, argv[optind + 1])) != CLI_OK)
        return ex;
    /* a new database is built aside and put in place once its schema applied:
       a failed init leaves nothing behind and removes nothing anyone saw */
    cli_newdb nd;
    udb_env *env = NULL;
    if ((ex = cli_newdb_begin(&nd, argv[optind])) != CLI_OK)
        goto out;
    int rc;
    for (;;) {
        if ((ex = cli_open_sized(&env, nd.build, CLI_OPEN_CREATE, cli_schema_dbs(text, len))) !=
            CLI_OK)
            goto out;
        if ((rc = cli_schema_apply(&changes, env, argv[optind], text, len, flags)) != 0) {
            ex = cli_fail_rc(rc, udb_env_errmsg(env), NULL, argv[optind + 1]);
            goto out;
        }
        if (udb_schema_json(&stored, env) != 0)
            stored = NULL; /* applied; only the summary line is left out */
        if (!nd.fresh)
            break;
        udb_close(env);
        env = NULL;
        if ((ex = cli_newdb_publish(&nd)) == CLI_OK)
            break;
        if (ex != CLI_NEWDB_TAKEN)
            goto out;
        /* another process created the database meanwhile: apply the schema to
           it, as if it had been there from the start */
        cli_newdb_end(&nd);
        if (!(nd.build = strdup(argv[optind]))) {
            ex = cli_fail(CLI_EFAIL, NULL, "out of memory");
            goto out;
        }
        udb_free(changes);
        udb_free(stored);
        changes = stored = NULL;
    }
    cli_committed = 1;
    if (cli_json_errors) {
        ex = init_json(argv[optind], changes, stored);
        goto out;
    }
    /* Say what changed, then what the database now holds. */
    const char *shown = cli_shown(argv[optind]);
    if (*changes) {
        for (char *line = strtok(changes, "\n"); line; line = strtok(NULL, "\n"))
            printf("%s: %s\n", shown, line);
    } else {
        printf("%s: no change\n", shown);
    }
    if (stored) {
        json_t *s = json_loads(stored, 0, NULL);
        json_t *types = json_object_get(s, "types");
        printf("%s: schema applied, %zu type%s:", shown, json_object_size(types),
               json_object_size(types) == 1 ? "" : "s");
        const char *name;
        json_t *t;
        size_t i = 0;
        json_object_foreach(types, name, t) printf("%s %s", i++ ? "," : "", name);
        printf("\n");
        json_decref(s);
    }
    ex = CLI_OK;
out:
    udb_free(changes);
    udb_free(stored);
    udb_close(env);
    cli_newdb_end(&nd);
    free(text);
    return ex;
}

int cli_cmd_schema(int argc, char **argv)
{
    json_t *s = NULL;
    int first, ex;
    if ((ex = cli_simple_options(argc, argv, &first)) >= 0)
        return ex;
    if (argc - first != 1)
        return cli_usage("schema", "expected DB");
    udb_env *env = NULL;
    if ((ex = cli_open(&env, argv[first], CLI_OPEN_READ)) != CLI_OK)
        return ex;
    char *text = NULL;
    int rc = udb_schema_json(&text, env);
    char *out = NULL;
    if (rc) {
        ex = cli_fail_rc(rc, rc == UDB_ENOTFOUND ? "no schema applied yet" : udb_env_errmsg(env),
                         NULL, argv[first]);
        goto out;
    }
    s = json_loads(text, JSON_DECODE_ANY, NULL);
    out = s ? cli_json_dumps(s, UDB_JSON_INDENT(2)) : NULL;
    ex = out ? cli_put_line(out) : cli_fail(CLI_EFAIL, NULL, "stored schema is not JSON");
out:
    udb_free(out);
    json_decref(s);
    udb_free(text);
    udb_close(env);
    return ex;
}

/* ---- Per-type counts, shared by check and stat ----------------------------------- */

typedef struct type_counts {
    size_t ntypes;
    char **names;
    udb_type_stat *stats;
    udb_type_stat total;
} type_counts;

static void counts_free(type_counts *c)
{
    for (size_t i = 0; i < c->ntypes; i++)
        free(c->names[i]);
    free(c->names);
    free(c->stats);
    memset(c, 0, sizeof *c);
}

/* Collect counts for every type from one read snapshot.  Returns a udb rc. */
static int counts_get(type_counts *c, udb_env *env, const char **detail)
{
    const char *const *names;
    memset(c, 0, sizeof *c);
    *detail = "";
    udb_txn *txn = NULL;
    int rc;
    if ((rc = udb_begin(&txn, env, UDB_RDONLY)) != 0) {
        *detail = udb_env_errmsg(env);
        return rc;
    }
    size_t n;
    if ((rc = udb_types(&names, &n, txn)) != 0)
        goto out;
    c->names = calloc(n ? n : 1, sizeof *c->names);
    c->stats = calloc(n ? n : 1, sizeof *c->stats);
    if (!c->names || !c->stats) {
        rc = UDB_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if ((c->names[i] = strdup(names[i])) == NULL) {
            rc = UDB_ENOMEM;
            goto out;
        }
        c->ntypes = i + 1;
        if ((rc = udb_type_stat_get(&c->stats[i], txn, names[i])) != 0)
            goto out;
        c->total.records += c->stats[i].records;
        c->total.index_entries += c->stats[i].index_entries;
        c->total.bytes += c->stats[i].bytes;
    }
out:
    if (rc) {
        static char msg[1024];
        snprintf(msg, sizeof msg, "%s", udb_errmsg(txn));
        *detail = msg;
        counts_free(c);
    }
    udb_abort(txn);
    return rc;
}

/* ---- check ------------------------------------------------------------------------ */

/* The check runs in child processes (cli_guard.c): LMDB can crash on a
 * damaged page, and check is what people run on a damaged file.  A child
 * checks one type after another (then the sequences) and sends each problem
 * to the parent, which prints them; a crash or hang is one more problem,
 * naming the type, and a new child goes on with the next type. */

enum { CK_PROBLEMS, CK_RECORDS, CK_ENTRIES, CK_TYPES };

typedef struct check_ctx {
    const char *path;
    json_t *list;   /* --json: problems collected here */
    int progress;   /* draw a progress line on stderr */
    size_t problems;
} check_ctx;

static void check_progress(uint64_t done, uint64_t total, void *vctx)
{
    check_ctx *c = vctx;
    cli_guard_tick(NULL);
    /* on a server the engine counts rows: it checks the indexes from the catalog */
    if (c->progress)
        fprintf(stderr, "\rchecking: %" PRIu64 " of %" PRIu64 " records%s (%d%%)", done, total,
                cli_is_url(c->path) ? "" : " and index entries",
                total ? (int)(done * 100 / total) : 100);
}

/* In the child: a problem goes to the parent. */
static void check_report(const char *problem, void *vctx)
{
    check_ctx *c = vctx;
    if (c->progress)
        fprintf(stderr, "\r\033[K");   /* the next progress call redraws it */
    cli_guard_send(problem);
    cli_guard_tick(NULL);
}

/* In the parent: print or collect a problem. */
static void check_line(const char *problem, void *vctx)
{
    check_ctx *c = vctx;
    c->problems++;
    if (c->list)
        json_array_append_new(c->list, json_string(problem));
    else
        printf("problem: %s\n", problem);
    fflush(stdout);
}

static int check_crash(cli_guard_report *r, void *vctx)
{
    char line[1024];
    snprintf(line, sizeof line, "%s: checking it %s after %" PRIu64 " records and index "
             "entries: it is damaged, and the rest of it is not checked", r->name, r->how,
             r->count);
    check_line(line, vctx);
    return CLI_GUARD_NEXT;
}

/* The types' names, copied (the transaction ends here). */
static int check_types(char ***out, size_t *n, udb_env *env, const char **detail)
{
    udb_txn *txn = NULL;
    const char *const *names;
    *out = NULL;
    *n = 0;
    int rc = udb_begin(&txn, env, UDB_RDONLY);
    if (rc) {
        *detail = udb_env_errmsg(env);
        return rc;
    }
    if ((rc = udb_types(&names, n, txn)) == 0 && (*out = calloc(*n + 1, sizeof **out)) == NULL)
        rc = UDB_ENOMEM;
    for (size_t i = 0; !rc && i < *n; i++)
        if (((*out)[i] = strdup(names[i])) == NULL)
            rc = UDB_ENOMEM;
    *detail = udb_errmsg(txn);
    udb_abort(txn);
    return rc;
}

static int no_seq(const char *name, uint64_t value, void *ctx)
{
    (void)name, (void)value;
    cli_guard_tick(NULL);
    (void)ctx;
    return 0;
}

/* The child's work: every type from the one to resume at, then the sequences. */
static int check_child(void *arg)
{
    check_ctx *c = arg;
    udb_env *env = NULL;
    char **names = NULL;
    size_t n = 0;
    int ex, rc;
    if ((ex = cli_open(&env, c->path, CLI_OPEN_READ)) != CLI_OK)
        return ex;
    const char *detail = "";
    if ((rc = check_types(&names, &n, env, &detail)) != 0) {
        ex = cli_fail_rc(rc, detail, NULL, "check");
        goto out;
    }
    cli_guard_stat_add(CK_TYPES, cli_guard_part(0, "") ? 0 : n);
    for (size_t i = 0; i < n; i++) {
        if (cli_guard_part(i, names[i]))
            continue;
        udb_txn *txn = NULL;
        udb_type_stat st;
        if (udb_begin(&txn, env, UDB_RDONLY) == 0 && udb_type_stat_get(&st, txn, names[i]) == 0) {
            cli_guard_stat_add(CK_RECORDS, st.records);
            cli_guard_stat_add(CK_ENTRIES, st.index_entries);
            /* a progress line only for people, and only when the wait is noticeable */
            c->progress = isatty(2) && st.records > 5000;
        }
        udb_abort(txn);
        size_t problems = 0;
        rc = udb_check_type(&problems, env, names[i], check_report, check_progress, c);
        if (c->progress)
            fprintf(stderr, "\r\033[K");
        if (rc && rc != UDB_ECORRUPT) {
            if (!udb_is_damage(rc)) {
                ex = cli_fail_rc(rc, udb_env_errmsg(env), NULL, "check");
                goto out;
            }
            char line[1024];
            snprintf(line, sizeof line, "%s: %s", names[i], udb_env_errmsg(env));
            cli_guard_send(line);
        }
    }
    if (!cli_guard_part(n, "the sequences")) {
        udb_txn *txn = NULL;
        if ((rc = udb_begin(&txn, env, UDB_RDONLY)) == 0)
            rc = udb_seq_foreach(txn, no_seq, NULL);
        if (rc && udb_is_damage(rc)) {
            char line[1024];
            snprintf(line, sizeof line, "sequences: %s", txn ? udb_errmsg(txn) : "?");
            cli_guard_send(line);
        } else if (rc) {
            ex = cli_fail_rc(rc, txn ? udb_errmsg(txn) : udb_env_errmsg(env), NULL, "check");
        }
        udb_abort(txn);
    }
out:
    for (size_t i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
    udb_close(env);
    return ex;
}

int cli_cmd_check(int argc, char **argv)
{
    check_ctx ctx = {0};
    int first, ex;
    if ((ex = cli_simple_options(argc, argv, &first)) >= 0)
        return ex;
    if (argc - first != 1)
        return cli_usage("check", "expected DB");
    ctx.path = argv[first];
    if (cli_json_errors && (ctx.list = json_array()) == NULL)
        return cli_fail(CLI_EFAIL, NULL, "out of memory");
    uint64_t st[CLI_GUARD_STATS] = {0};
    ex = cli_guarded(st, "check", check_child, &ctx, true, check_crash, check_line, &ctx);
    if (ex == CLI_OK && ctx.problems)
        ex = CLI_ECHECK;
    if ((ex != CLI_OK && ex != CLI_ECHECK) || (ex == CLI_ECHECK && !ctx.problems))
        goto out;   /* the child said why */
    /* index entries are LMDB's: a server's indexes are checked against the schema */
    bool url = cli_is_url(ctx.path);
    if (ctx.list) {
        json_t *o = json_pack("{s b s I s I s I s O}", "ok", ex == CLI_OK, "problem_count",
                              (json_int_t)ctx.problems, "records", (json_int_t)st[CK_RECORDS],
                              "index_entries", (json_int_t)st[CK_ENTRIES], "problems",
                              ctx.list);
        if (o && url)
            json_object_del(o, "index_entries");
        if (!o || cli_print_json(o) != CLI_OK)
            ex = CLI_EFAIL;
        json_decref(o);
    } else if (ex == CLI_OK && url) {
        printf("check: ok (%" PRIu64 " records in %" PRIu64 " type%s; tables and indexes "
               "match the schema)\n", st[CK_RECORDS], st[CK_TYPES], st[CK_TYPES] == 1 ? "" : "s");
    } else if (ex == CLI_OK) {
        printf("check: ok (%" PRIu64 " records, %" PRIu64 " index entries in %" PRIu64
               " type%s)\n", st[CK_RECORDS], st[CK_ENTRIES], st[CK_TYPES],
               st[CK_TYPES] == 1 ? "" : "s");
    } else if (ctx.problems) {
        printf("check: %zu problem%s found\n", ctx.problems, ctx.problems == 1 ? "" : "s");
    }
out:
    json_decref(ctx.list);
    return ex;
}

/* ---- stat --------------------------------------------------------------------------- */

static const char *human(char buf[32], double bytes)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024 && u < 4) {
        bytes /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, 32, "%.0f B", bytes);
    else
        snprintf(buf, 32, "%.1f %s", bytes, units[u]);
    return buf;
}

static json_t *type_stat_json(const udb_type_stat *st)
{
    return json_pack("{s o s o s o}", "records", udb_jansson_u64(st->records), "index_entries",
                     udb_jansson_u64(st->index_entries), "bytes", udb_jansson_u64(st->bytes));
}

/* stat of a database on PostgreSQL: records and bytes per type (the bytes are
 * the server's: pg_total_relation_size, the table with its indexes and
 * TOAST), and "backend": "postgresql" instead of the figures that are LMDB's:
 * index entries (PostgreSQL's indexes are its own), file, map and pages. */
static int stat_server(const type_counts *tc)
{
    if (cli_json_errors) {
        json_t *o = json_object(), *types = json_object();
        for (size_t i = 0; o && types && i < tc->ntypes; i++)
            json_object_set_new(types, tc->names[i],
                                json_pack("{s o s o}", "records",
                                          udb_jansson_u64(tc->stats[i].records), "bytes",
                                          udb_jansson_u64(tc->stats[i].bytes)));
        int ex;
        if (o && types) {
            json_object_set_new(o, "backend", json_string("postgresql"));
            json_object_set_new(o, "types", types);
            types = NULL;
            json_object_set_new(o, "records", udb_jansson_u64(tc->total.records));
            json_object_set_new(o, "bytes", udb_jansson_u64(tc->total.bytes));
            ex = cli_print_json(o);
        } else {
            ex = cli_fail(CLI_EFAIL, NULL, "out of memory");
        }
        json_decref(types);
        json_decref(o);
        return ex;
    }
    printf("%-24s %12s %12s\n", "type", "records", "bytes");
    for (size_t i = 0; i < tc->ntypes; i++)
        printf("%-24s %12" PRIu64 " %12" PRIu64 "\n", tc->names[i], tc->stats[i].records,
               tc->stats[i].bytes);
    printf("%-24s %12" PRIu64 " %12" PRIu64 "\n", "total", tc->total.records, tc->total.bytes);
    printf("\nbackend: PostgreSQL; bytes are the server's (each table with its indexes and "
           "TOAST);\nindex entries, file, map and free pages are LMDB's figures: not on "
           "PostgreSQL\n");
    return CLI_OK;
}

int cli_cmd_stat(int argc, char **argv)
{
    type_counts tc;
    char *path = NULL;
    memset(&tc, 0, sizeof tc);
    int first, ex;
    if ((ex = cli_simple_options(argc, argv, &first)) >= 0)
        return ex;
    if (argc - first != 1)
        return cli_usage("stat", "expected DB");
    udb_env *env = NULL;
    if ((ex = cli_open(&env, argv[first], CLI_OPEN_READ)) != CLI_OK)
        return ex;
    const char *detail;
    size_t map_size = 0, used = 0;
    int rc;
    udb_space sp = UDB_SPACE_INIT;
    /* on a server there is no data file, map or free page: those figures are
       LMDB's, and are left out (the text says so) */
    bool url = cli_is_url(argv[first]);
    if ((rc = counts_get(&tc, env, &detail)) != 0 ||
        (!url && ((rc = udb_env_usage(&map_size, &used, env)) != 0 ||
                  (rc = udb_env_space(&sp, env)) != 0))) {
        ex = cli_fail_rc(rc, tc.names ? udb_env_errmsg(env) : detail, NULL, "stat");
        goto out;
    }
    if (url) {
        ex = stat_server(&tc);
        goto out;
    }
    if (asprintf(&path, "%s/" UDB_DATA_FILE, argv[first]) < 0) {
        path = NULL;
        ex = cli_fail(CLI_EFAIL, NULL, "out of memory");
        goto out;
    }
    struct stat st;
    long long file_size = -1;
    if (stat(path, &st) == 0)
        file_size = (long long)st.st_size;
    size_t i;
    /* what a compacting backup of this snapshot writes: the pages in use */
    uint64_t live = sp.pages - sp.free_pages - sp.freelist_pages;
    uint64_t compact = sp.free_pages + sp.freelist_pages <= sp.pages ? live * sp.page_size : 0;
    if (cli_json_errors) {
        json_t *o = json_object(), *types = json_object();
        for (i = 0; o && types && i < tc.ntypes; i++)
            json_object_set_new(types, tc.names[i], type_stat_json(&tc.stats[i]));
        if (o && types) {
            json_object_set_new(o, "backend", json_string("lmdb"));
            json_object_set_new(o, "types", types);
            types = NULL;
            json_object_set_new(o, "records", udb_jansson_u64(tc.total.records));
            json_object_set_new(o, "index_entries", udb_jansson_u64(tc.total.index_entries));
            json_object_set_new(o, "file", json_string(path));
            json_object_set_new(o, "file_size", json_integer(file_size));
            json_object_set_new(o, "map_size", udb_jansson_u64(map_size));
            json_object_set_new(o, "map_used", udb_jansson_u64(used));
            json_object_set_new(o, "page_size", udb_jansson_u64(sp.page_size));
            json_object_set_new(o, "pages", udb_jansson_u64(sp.pages));
            json_object_set_new(o, "free_pages", udb_jansson_u64(sp.free_pages));
            json_object_set_new(o, "freelist_pages", udb_jansson_u64(sp.freelist_pages));
            json_object_set_new(o, "compact_size", udb_jansson_u64(compact));
            ex = cli_print_json(o);
        } else {
            ex = cli_fail(CLI_EFAIL, NULL, "out of memory");
        }
        json_decref(types);
        json_decref(o);
        goto out;
    }
    printf("%-24s %12s %14s %12s\n", "type", "records", "index entries", "bytes");
    for (i = 0; i < tc.ntypes; i++)
        printf("%-24s %12" PRIu64 " %14" PRIu64 " %12" PRIu64 "\n", tc.names[i],
               tc.stats[i].records, tc.stats[i].index_entries, tc.stats[i].bytes);
    printf("%-24s %12" PRIu64 " %14" PRIu64 " %12" PRIu64 "\n", "total", tc.total.records,
           tc.total.index_entries, tc.total.bytes);
    char h1[32];
    printf("\nfile: %s, %s\n", path, file_size >= 0 ? human(h1, (double)file_size) : "missing");
    char h2[32];
    printf("map:  %s, %s in use (%.1f%%)\n", human(h1, (double)map_size), human(h2, (double)used),
           map_size ? 100.0 * (double)used / (double)map_size : 0.0);
    char h3[32];
    printf("free: %" PRIu64 " of %" PRIu64 " pages (%s, %.1f%%); backup --compact would write "
           "%s\n", sp.free_pages, sp.pages, human(h3, (double)(sp.free_pages * sp.page_size)),
           sp.pages ? 100.0 * (double)sp.free_pages / (double)sp.pages : 0.0,
           human(h1, (double)compact));
    ex = CLI_OK;
out:
    free(path);
    counts_free(&tc);
    udb_close(env);
    return ex;
}
