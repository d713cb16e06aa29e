/*
 * backup.c -- a consistent copy of a database that writers keep using
 * (udb_backup), and how its data file's pages are used (udb_env_space): the
 * two halves of reclaiming the space of deleted records.
 *
 * The copy is LMDB's (mdb_env_copyfd2): one read snapshot written to a file,
 * either as it is (free pages included) or compacted (the pages in use,
 * renumbered).  Why it holds every acknowledged write: a read snapshot takes
 * the txnid LMDB publishes in its lock file as the last step of writing a
 * commit's meta page, before mdb_txn_commit returns; and uniqdb acknowledges
 * a write only after that (udb_commit and udb_write wait for durability
 * after the commit; a unit run by another process's leader is handed its
 * outcome after the leader's commit, group.c's publish_shipped).  So a copy
 * begun after an acknowledgement began after the commit, and sees it.
 *
 * What the copy holds, and what it leaves alone: the plain copy takes
 * LMDB's write lock while it copies the two meta pages (so its snapshot is
 * the newest commit and both metas are consistent with it), the compacting
 * copy takes none.  Neither touches uniqdb's sync file: a copy commits
 * nothing, so the acknowledgement rule (sync.c) has nothing to learn from
 * it, and it goes around uniqdb's write gate because it never writes.  Its
 * read snapshot is counted as a transaction of this process
 * (udb__env_enter), since LMDB reads the pages through the map, which must
 * not move under it.
 *
 * Where the copy goes: a hidden temporary file, flushed, then renamed to
 * data.mdb -- inside a hidden directory beside dest, itself then renamed to
 * dest, or inside dest when dest is an existing empty directory (a mount
 * point cannot be replaced).  A name that opens as a database thus appears
 * only once the copy is whole and on disk.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup.h"
#include "env.h"
#include "error.h"
#include "txn.h"

#define TMP_PREFIX ".uniqdb-backup-"

static _Atomic unsigned test_flags;

void udb__backup_set_test_flags(unsigned flags)
{
    atomic_store(&test_flags, flags);
}

/* ---- udb_env_space ------------------------------------------------------ */

/* Pages listed by LMDB's free database (dbi 0): each entry is an ID list
 * whose first word is its length. */
static int count_free(uint64_t *out, MDB_txn *txn)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, 0, &cur);
    if (rc)
        return rc;
    MDB_val k, v = {0, NULL};
    uint64_t n = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        size_t len;
        if (v.mv_size < sizeof len) {
            rc = UDB_ECORRUPT;
            break;
        }
        memcpy(&len, v.mv_data, sizeof len);
        if (len > v.mv_size / sizeof len - 1) {
            rc = UDB_ECORRUPT;
            break;
        }
        n += len;
    }
    mdb_cursor_close(cur);
    if (rc == UDB_ECORRUPT)
        return udb__env_err(rc, "udb_env_space: an entry of LMDB's free list has an "
                            "impossible size (%zu bytes): the database is damaged", v.mv_size);
    if (rc != MDB_NOTFOUND)
        return rc;
    *out = n;
    return 0;
}

/* The figures of one snapshot, if the newest meta page is still the
 * snapshot's (*same); else the caller tries again. */
static int space_once(udb_space *s, bool *same, udb_env *env)
{
    udb_txn *txn;
    int rc = udb_begin(&txn, env, UDB_RDONLY);
    if (rc)
        return rc;
    MDB_txn *m = udb__txn_mdb(txn);
    MDB_env *mdb = udb__env_mdb(env);
    MDB_envinfo info;
    MDB_stat fst, est;
    int fd;
    struct stat st;
    if ((rc = mdb_env_info(mdb, &info)) || (rc = mdb_env_stat(mdb, &est)) ||
        (rc = mdb_stat(m, 0, &fst)) || (rc = count_free(&s->free_pages, m)) ||
        (rc = mdb_env_get_fd(mdb, &fd)))
        goto out;
    if (fstat(fd, &st) != 0) {
        rc = udb__env_err(errno, "udb_env_space: the data file: %s", strerror(errno));
        goto out;
    }
    *same = info.me_last_txnid == mdb_txn_id(m);
    s->page_size = est.ms_psize;
    s->map_size = info.me_mapsize;
    s->file_size = (uint64_t)st.st_size;
    s->pages = (uint64_t)info.me_last_pgno + 1;
    s->freelist_pages = (uint64_t)fst.ms_branch_pages + fst.ms_leaf_pages +
                        fst.ms_overflow_pages;
out:
    udb_abort(txn);
    return rc;
}

int udb__lmdb_space(udb_space *out, udb_env *env)
{
    if (!out)
        return udb__env_err(UDB_EINVAL, "udb_env_space: out is NULL");
    if (out->version < 1 || out->version > UDB_SPACE_VERSION)
        return udb__env_err(UDB_EINVAL, "udb_env_space: udb_space.version is %u; this uniqdb "
                            "knows 1 to %d (start from UDB_SPACE_INIT)", out->version,
                            UDB_SPACE_VERSION);
    /* LMDB tells the last page in use of the newest commit, not of a
       snapshot: a commit between the two readings mixes them, so read again
       (a few times: under constant writes, the last reading stands) */
    udb_space s = {out->version, 0, 0, 0, 0, 0, 0};
    bool same = false;
    for (int i = 0; i < 16 && !same; i++) {
        int rc = space_once(&s, &same, env);
        if (rc)
            return rc;
    }
    *out = s;
    return 0;
}

/* ---- udb_backup ---------------------------------------------------------- */

/* Copy one snapshot of env into fd.  A map another process grew past this
 * process's is adopted first (LMDB refuses the snapshot: nothing written). */
static int copy_snapshot(udb_env *env, int fd, unsigned flags)
{
    for (;;) {
        udb_schema *schema;
        uint64_t gen;
        udb__env_enter(env, &schema, &gen, pthread_self());
        int rc = mdb_env_copyfd2(udb__env_mdb(env), fd,
                                 flags & UDB_BACKUP_COMPACT ? MDB_CP_COMPACT : 0);
        udb__env_leave(env, pthread_self());
        if (rc != MDB_MAP_RESIZED)
            return rc;
        if ((rc = udb__adopt(env)))
            return rc;
        if (ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0)
            return errno;
    }
}

/* fsync a directory, so that a name just made in it survives a power cut. */
static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    int rc = fsync(fd) == 0 ? 0 : errno;
    close(fd);
    return rc;
}

/* dest must be missing (*exists false) or an empty directory (true). */
static int check_dest(bool *exists, const char *dest)
{
    struct stat st;
    if (stat(dest, &st) != 0) {
        if (errno != ENOENT)
            return udb__env_err(errno, "udb_backup: %s: %s; nothing was written", dest,
                                strerror(errno));
        *exists = false;
        return 0;
    }
    if (!S_ISDIR(st.st_mode))
        return udb__env_err(EEXIST, "udb_backup: %s exists and is not a directory: the copy "
                            "goes to a new directory or an empty one; nothing was written",
                            dest);
    DIR *d = opendir(dest);
    if (!d)
        return udb__env_err(errno, "udb_backup: %s: cannot read the directory: %s; nothing "
                            "was written", dest, strerror(errno));
    struct dirent *e;
    char name[256] = "";
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            snprintf(name, sizeof name, "%s", e->d_name);
            break;
        }
    closedir(d);
    if (name[0])
        return udb__env_err(ENOTEMPTY, "udb_backup: %s is not empty (it holds \"%s\"%s): the "
                            "copy goes to a new directory or an empty one; nothing was written",
                            dest, name, strncmp(name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0
                            ? ", left by a backup that was interrupted: remove it" : "");
    *exists = true;
    return 0;
}

/* path split at its last component, trailing slashes ignored: the directory
 * part, malloc'd ("." for a bare name), with *base the last component, kept
 * in the same allocation; NULL if out of memory. */
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

/* from becomes to, never replacing a file someone else put there (EEXIST). */
static int rename_noreplace(const char *from, const char *to)
{
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return errno;
    /* no RENAME_NOREPLACE on this file system: a hard link never replaces */
    if (link(from, to) != 0)
        return errno;
    unlink(from);
    return 0;
}

/* What udb_backup is making, for its one clean-up path. */
typedef struct job {
    const char *dest;
    bool exists;          /* dest is an existing empty directory we write into */
    char *parent;         /* dest's parent (split_path; base inside) */
    const char *base;
    char *dir;            /* where the file is made: dest, or the private directory */
    char *tmp;            /* the temporary file, while it exists */
    char *data;           /* dir/data.mdb */
    bool placed;          /* data exists (renamed from tmp) */
    bool published;       /* the copy is at dest */
    int fd;
} job;

static void job_end(job *j)
{
    if (j->fd >= 0)
        close(j->fd);
    if (!j->published) {
        if (j->tmp)
            unlink(j->tmp);
        if (j->placed)
            unlink(j->data);
        /* the private directory: nobody else knows its name */
        if (!j->exists && j->dir)
            rmdir(j->dir);
    }
    free(j->tmp);
    free(j->data);
    if (j->dir != j->dest)
        free(j->dir);
    free(j->parent);
}

static const char *copy_hint(int rc)
{
    if (rc == ENOSPC)
        return " (the file system of the copy is full)";
    if (rc == MDB_INCOMPATIBLE)
        return " (the compacting copy found pages neither in use nor free: the database is "
               "damaged; check it, and copy it without compacting)";
    return "";
}

/* Write the copy under a temporary name in j->dir and give it its name. */
static int make_copy(job *j, udb_env *env, unsigned flags)
{
    MDB_env *mdb = udb__env_mdb(env);
    const char *src = NULL;
    int srcfd, rc;
    struct stat st;
    if ((rc = mdb_env_get_path(mdb, &src)) || (rc = mdb_env_get_fd(mdb, &srcfd)))
        return udb__env_err(rc, "udb_backup: %s", udb_strerror(rc));
    if (fstat(srcfd, &st) != 0)
        return udb__env_err(errno, "udb_backup: %s: the data file: %s", src, strerror(errno));
    if (asprintf(&j->tmp, "%s/" TMP_PREFIX "XXXXXX", j->dir) < 0) {
        j->tmp = NULL;
        return udb__env_err(UDB_ENOMEM, "udb_backup: out of memory");
    }
    if ((j->fd = mkostemp(j->tmp, O_CLOEXEC)) < 0) {
        rc = errno;
        free(j->tmp);
        j->tmp = NULL;
        return udb__env_err(rc, "udb_backup: cannot create a file in %s: %s; nothing was "
                            "written", j->dir, strerror(rc));
    }
    if (fchmod(j->fd, st.st_mode & 07777) != 0)
        return udb__env_err(errno, "udb_backup: %s: %s", j->tmp, strerror(errno));
    if ((rc = copy_snapshot(env, j->fd, flags)))
        return udb__env_err(rc, "udb_backup: copying %s to %s: %s%s; nothing of the copy was "
                            "left", src, j->dest, udb_strerror(rc), copy_hint(rc));
    if (fsync(j->fd) != 0 || close(j->fd) != 0) {
        rc = errno;
        j->fd = -1;
        return udb__env_err(rc, "udb_backup: flushing the copy to %s: %s%s; nothing of the "
                            "copy was left", j->dest, strerror(rc), copy_hint(rc));
    }
    j->fd = -1;
    if (asprintf(&j->data, "%s/" UDB_DATA_FILE, j->dir) < 0) {
        j->data = NULL;
        return udb__env_err(UDB_ENOMEM, "udb_backup: out of memory");
    }
    if ((rc = rename_noreplace(j->tmp, j->data)))
        return udb__env_err(rc, "udb_backup: %s: %s%s; nothing of the copy was left", j->data,
                            strerror(rc), rc == EEXIST ? " (made by another process while "
                            "the copy was written)" : "");
    free(j->tmp);
    j->tmp = NULL;
    j->placed = true;
    if ((rc = sync_dir(j->dir)))
        return udb__env_err(rc, "udb_backup: flushing the directory %s: %s; nothing of the "
                            "copy was left", j->dir, strerror(rc));
    return 0;
}

/* The negative control (backup.h): the copy written where it will be read. */
static int copy_in_place(udb_env *env, const char *dest, unsigned flags)
{
    char *data = NULL;
    if (asprintf(&data, "%s/" UDB_DATA_FILE, dest) < 0)
        return UDB_ENOMEM;
    int rc = 0;
    int fd = mkdir(dest, 0750) == 0 || errno == EEXIST
                 ? open(data, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640) : -1;
    if (fd < 0 || (rc = copy_snapshot(env, fd, flags)) || fsync(fd) != 0)
        rc = rc ? rc : errno;
    if (fd >= 0)
        close(fd);
    free(data);
    return rc ? udb__env_err(rc, "udb_backup: %s", udb_strerror(rc)) : 0;
}

int udb__lmdb_backup(udb_env *env, const char *dest, unsigned flags)
{
    if (!dest || !*dest)
        return udb__env_err(UDB_EINVAL, "udb_backup: %s", !dest ? "dest is NULL"
                            : "dest is empty");
    if (flags & ~UDB_BACKUP_COMPACT)
        return udb__env_err(UDB_EINVAL, "udb_backup: unknown flags 0x%x (known: "
                            "UDB_BACKUP_COMPACT)", flags & ~UDB_BACKUP_COMPACT);
    if (udb__env_thread_holds(env, "udb_backup"))
        return udb__env_err(UDB_EINVAL, "udb_backup: the calling thread has a transaction "
                            "open on this database: end it first (the copy may wait for "
                            "LMDB's write lock, and for every transaction of this process "
                            "when the map must be adopted)");
    job j = {.dest = dest, .fd = -1};
    int rc = check_dest(&j.exists, dest);
    if (rc)
        return rc;
    if (atomic_load(&test_flags) & UDB_BACKUP_TEST_IN_PLACE)
        return copy_in_place(env, dest, flags);
    if (!(j.parent = split_path(dest, &j.base)))
        return udb__env_err(UDB_ENOMEM, "udb_backup: out of memory");
    if (j.exists) {
        j.dir = (char *)dest;
    } else {
        /* hidden, and named after dest, so that one a crash left says what it was */
        int r = strlen(j.base) <= 200
                    ? asprintf(&j.dir, "%s/.%s" TMP_PREFIX "XXXXXX", j.parent, j.base)
                    : asprintf(&j.dir, "%s/" TMP_PREFIX "XXXXXX", j.parent);
        if (r < 0) {
            j.dir = NULL;
            rc = udb__env_err(UDB_ENOMEM, "udb_backup: out of memory");
            goto out;
        }
        if (!mkdtemp(j.dir)) {
            rc = errno;
            free(j.dir);
            j.dir = NULL;
            if (rc == ENOENT)
                udb__env_err(rc, "udb_backup: %s does not exist (the directory that is to hold "
                             "%s); nothing was written", j.parent, j.base);
            else
                udb__env_err(rc, "udb_backup: cannot create a directory in %s: %s; nothing "
                             "was written", j.parent, strerror(rc));
            goto out;
        }
    }
    if ((rc = make_copy(&j, env, flags)))
        goto out;
    if (!j.exists) {
        const char *src = NULL;
        struct stat st;
        if (mdb_env_get_path(udb__env_mdb(env), &src) == 0 && stat(src, &st) == 0)
            chmod(j.dir, st.st_mode & 07777);
        /* replaces nothing but an empty directory made meanwhile */
        if (rename(j.dir, dest) != 0) {
            rc = errno;
            udb__env_err(rc, "udb_backup: %s: %s%s; nothing of the copy was left", dest,
                         strerror(rc), rc == ENOTEMPTY || rc == EEXIST || rc == ENOTDIR
                         ? " (made by another process while the copy was written)" : "");
            goto out;
        }
        j.published = true;
        if ((rc = sync_dir(j.parent))) {
            udb__env_err(rc, "udb_backup: the copy is at %s, but flushing the directory %s "
                         "failed: %s (the name may not survive a power cut)", dest, j.parent,
                         strerror(rc));
            goto out;
        }
    }
    j.published = true;
out:
    job_end(&j);
    return rc;
}
