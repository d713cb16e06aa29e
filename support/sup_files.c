/*
 * sup_files.c -- whole files, and temporary directories made and removed.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support.h"

char *sup_read_fp(FILE *f, size_t *len)
{
    char *p = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (cap - n < 4096) {
            if (cap > SIZE_MAX / 2 - 4096) {
                errno = EFBIG;
                goto fail;
            }
            cap = cap ? cap * 2 : 8192;
            char *q = realloc(p, cap);
            if (!q)
                goto fail;
            p = q;
        }
        size_t got = fread(p + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        errno = EIO;
        goto fail;
    }
    p[n] = '\0';
    if (len)
        *len = n;
    return p;
fail:
    free(p);
    return NULL;
}

char *sup_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *p = sup_read_fp(f, len);
    int err = errno;
    fclose(f);
    errno = err;
    return p;
}

int sup_mkdtemp(char *out, size_t cap, const char *prefix)
{
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    int n = snprintf(out, cap, "%s/%sXXXXXX", tmp, prefix);
    if (n < 0 || (size_t)n >= cap) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return mkdtemp(out) ? 0 : -1;
}

int sup_remove_tree(const char *path, bool keep_top)
{
    DIR *d = opendir(path);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    int rc = 0, err = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char sub[4096];
        struct stat st;
        if (snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) >= (int)sizeof sub) {
            rc = -1;
            err = ENAMETOOLONG;
            continue;
        }
        if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode)) {
            if (sup_remove_tree(sub, false) != 0) {
                rc = -1;
                err = errno;
            }
        } else if (unlink(sub) != 0) {
            rc = -1;
            err = errno;
        }
    }
    closedir(d);
    if (!keep_top && rmdir(path) != 0) {
        rc = -1;
        err = errno;
    }
    if (rc)
        errno = err;
    return rc;
}
