/*
 * cli_backup.c -- `uniqdb backup DB DEST [--compact]`: a copy of a database
 * that other processes keep writing (udb_backup), for backups and for
 * reclaiming the space of deleted records (README, "Backup and compaction").
 * DB is opened read-only: the copy changes nothing in it.
 */
#include "cli_common.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int cli_cmd_backup(int argc, char **argv)
{
    static const struct option opts[] = {
        {"compact", no_argument, NULL, 'c'},
        CLI_COMMON_LONGOPTS,
    };
    optind = 0;
    opterr = 0;
    unsigned flags = 0;
    int c, ex;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'c')
            flags |= UDB_BACKUP_COMPACT;
        else if ((ex = cli_common_option(c, argv, NULL)) >= 0)
            return ex;
    }
    if (argc - optind != 2)
        return cli_usage("backup", "expected DB DEST");
    const char *db = argv[optind], *dest = argv[optind + 1];
    if (!*dest)
        return cli_usage("backup", "DEST is empty");
    if (cli_is_url(db))
        return cli_fail(CLI_EUSAGE, NULL, "backup copies an LMDB database directory; %s is a "
                        "PostgreSQL database: back it up with PostgreSQL's pg_dump (its schema: "
                        "pg_dump --schema=NAME), or copy it with uniqdb dump DB > FILE", db);
    udb_env *env = NULL;
    if ((ex = cli_open(&env, db, CLI_OPEN_READ)) != CLI_OK)
        return ex;
    char *data = NULL;
    int rc = udb_backup(env, dest, flags);
    if (rc) {
        /* the library's message, without its function name */
        const char *m = udb_env_errmsg(env);
        if (strncmp(m, "udb_backup: ", 12) == 0)
            m += 12;
        ex = cli_fail_rc(rc, m, NULL, "backup");
        goto out;
    }
    struct stat st;
    long long size = -1;
    if (asprintf(&data, "%s/" UDB_DATA_FILE, dest) >= 0 && stat(data, &st) == 0)
        size = (long long)st.st_size;
    if (cli_json_errors) {
        json_t *o = json_pack("{s s s s s b s I}", "database", db, "backup", dest, "compact",
                              (flags & UDB_BACKUP_COMPACT) != 0, "file_size", (json_int_t)size);
        ex = o ? cli_print_json(o) : cli_fail(CLI_EFAIL, NULL, "out of memory");
        json_decref(o);
        goto out;
    }
    char line[4096];
    snprintf(line, sizeof line, "backup of %s%s in %s: %lld bytes", db,
             flags & UDB_BACKUP_COMPACT ? ", compacted," : "", dest, size);
    ex = cli_put_line(line);
out:
    free(data);
    udb_close(env);
    return ex;
}
