/*
 * recorder.c -- see recorder.h.  The interposed calls below shadow libc's for
 * the whole process (the executable exports them), so they must be cheap and
 * transparent when the descriptor is not tracked: one table lookup, then the
 * real call with errno preserved.
 *
 * Built without fortification or 32-bit offset redirection so that each
 * definition below is exactly the libc symbol of the same name.
 */
#undef _FORTIFY_SOURCE
#undef _FILE_OFFSET_BITS
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "recorder.h"

/* The definitions below must be visible to the dynamic linker even when the
 * project builds with -fvisibility=hidden: that is what makes them interpose. */
#pragma GCC visibility push(default)

#define REC_MAXFD 4096
#define REC_MAXMAPS 64

static rec_hdr *log_hdr;
static int rec_on;                     /* this process records */
static char rec_dir[PATH_MAX];         /* realpath of the tracked directory */
static uint64_t rec_dev;               /* its device */

/* fd -> file id + 1 (0: untracked), and whether it writes synchronously */
static struct { int file; int sync; } fds[REC_MAXFD];

/* shared read-only mappings of tracked files (a later mprotect must not make them writable) */
static struct { uintptr_t a; size_t n; } maps[REC_MAXMAPS];
static pthread_mutex_t maps_mu = PTHREAD_MUTEX_INITIALIZER;

/* ACKs held back by rec_ack_early() */
#define MAXPEND 256
static struct { uint32_t kind; size_t len; unsigned char *data; } pend[MAXPEND];
static int npend;
static pthread_mutex_t pend_mu = PTHREAD_MUTEX_INITIALIZER;

/* ---- the next definition of each interposed function ---- */
static void *next_fn(void **slot, const char *name)
{
    void *p = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (!p) {
        p = dlsym(RTLD_NEXT, name);
        if (!p) {
            static const char m[] = "recorder: dlsym(RTLD_NEXT) found no libc function\n";
            syscall(SYS_write, 2, m, sizeof m - 1);
            abort();
        }
        __atomic_store_n(slot, p, __ATOMIC_RELEASE);
    }
    return p;
}
#define REAL(name) ((__typeof__(&name))next_fn(&real_##name, #name))
#define SLOTS(X)                                                                           \
    X(open) X(open64) X(openat) X(openat64) X(close) X(write)         \
    X(pwrite) X(writev) X(pwritev) X(pwritev2) X(pwritev64v2) X(lseek)          \
    X(ftruncate) X(fallocate) X(posix_fallocate) \
    X(fsync) X(fdatasync) X(msync) X(sync) X(syncfs) X(rename)       \
    X(renameat) X(renameat2) X(unlink) X(unlinkat) X(truncate) X(truncate64) X(mmap)      \
    X(mmap64) X(mprotect) X(munmap) X(dup) X(dup2) X(dup3) X(fcntl) X(fopen) X(fopen64)   \
    X(freopen) X(copy_file_range) X(sendfile) X(sendfile64) X(link) X(linkat)
#define SLOT(name) static void *real_##name;
SLOTS(SLOT)

/* ---- failing loudly ---- */
static void loud(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void loud(const char *fmt, ...)
{
    char m[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof m)
        n = (int)sizeof m - 1;
    if (log_hdr) {
        if (!__atomic_exchange_n(&log_hdr->failed, 1, __ATOMIC_SEQ_CST))
            memcpy(log_hdr->fail_msg, m, (size_t)n + 1);
    }
    syscall(SYS_write, 2, "recorder: ", 10);
    syscall(SYS_write, 2, m, (size_t)n);
    syscall(SYS_write, 2, "\n", 1);
    abort();
}

/* ---- the shared log ---- */
static uint64_t tick(void)
{
    return __atomic_add_fetch(&log_hdr->seq, 1, __ATOMIC_SEQ_CST);
}

static rec_ev *reserve(uint32_t kind, size_t payload)
{
    uint64_t need = sizeof(rec_ev) + ((payload + 7) & ~(uint64_t)7);
    uint64_t at = __atomic_fetch_add(&log_hdr->tail, need, __ATOMIC_SEQ_CST);
    if (at + need > log_hdr->cap)
        loud("log full (%llu bytes): raise the log size", (unsigned long long)log_hdr->cap);
    rec_ev *ev = (rec_ev *)((char *)(log_hdr + 1) + at);
    memset(ev, 0, sizeof *ev);
    ev->len = payload;
    ev->pid = (int32_t)getpid();
    ev->tid = (int32_t)syscall(SYS_gettid);
    __atomic_store_n(&ev->kind, kind, __ATOMIC_RELEASE);
    return ev;
}

static void emit(uint32_t kind, int file, int fd, uint64_t b, uint64_t e, uint64_t off,
                 int rc, const void *data, size_t len)
{
    rec_ev *ev = reserve(kind, len);
    ev->file = (uint32_t)file;
    ev->fd = fd;
    ev->b = b;
    ev->e = e;
    ev->off = off;
    ev->rc = rc;
    if (len)
        memcpy(ev + 1, data, len);
}

rec_hdr *rec_create(const char *path, size_t cap)
{
    int fd = REAL(open)(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return NULL;
    size_t total = sizeof(rec_hdr) + cap;
    void *p = MAP_FAILED;
    if (REAL(ftruncate)(fd, (off_t)total) == 0)
        p = REAL(mmap)(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    REAL(close)(fd);
    if (p == MAP_FAILED)
        return NULL;
    log_hdr = p;
    memset(log_hdr, 0, sizeof *log_hdr);
    log_hdr->magic = REC_MAGIC;
    log_hdr->cap = cap;
    return log_hdr;
}

rec_hdr *rec_log(void)
{
    return log_hdr;
}

const rec_ev *rec_next(const rec_hdr *h, uint64_t *pos)
{
    if (*pos >= h->tail)
        return NULL;
    const rec_ev *ev = (const rec_ev *)((const char *)(h + 1) + *pos);
    if (__atomic_load_n(&ev->kind, __ATOMIC_ACQUIRE) == 0)
        return NULL;   /* reserved by a process that died before filling it */
    *pos += sizeof(rec_ev) + ((ev->len + 7) & ~(uint64_t)7);
    return ev;
}

/* ---- the file table (shared: ids are the same in every process) ---- */
static void table_lock(void)
{
    while (__atomic_exchange_n(&log_hdr->lock, 1, __ATOMIC_ACQUIRE))
        ;
}

static void table_unlock(void)
{
    __atomic_store_n(&log_hdr->lock, 0, __ATOMIC_RELEASE);
}

/* The id of (dev, ino); a new one is registered under name.  *fresh says so. */
static int file_id(const struct stat *st, const char *name, int *fresh)
{
    int id = -1;
    *fresh = 0;
    table_lock();
    for (uint32_t i = 0; i < log_hdr->nfiles; i++)
        if (log_hdr->files[i].dev == st->st_dev && log_hdr->files[i].ino == st->st_ino)
            id = (int)i;
    if (id < 0 && log_hdr->nfiles < REC_MAXFILES) {
        rec_file *f = &log_hdr->files[log_hdr->nfiles];
        f->dev = st->st_dev;
        f->ino = st->st_ino;
        f->is_dir = S_ISDIR(st->st_mode);
        snprintf(f->name, sizeof f->name, "%s", name);
        id = (int)log_hdr->nfiles++;
        *fresh = 1;
    }
    table_unlock();
    if (id < 0)
        loud("more than %d files in the tracked directory", REC_MAXFILES);
    return id;
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Is the absolute path p the tracked directory (1) or a file directly in it
 * other than the lock files (2)?  0 otherwise. */
static int in_dir(const char *p)
{
    size_t n = strlen(rec_dir);
    if (strcmp(p, rec_dir) == 0)
        return 1;
    if (strncmp(p, rec_dir, n) != 0 || p[n] != '/' || strchr(p + n + 1, '/'))
        return 0;
    const char *name = p + n + 1;
    return strcmp(name, REC_VOLATILE) == 0 || strcmp(name, REC_VOLATILE2) == 0 ? 0 : 2;
}

/* Absolute form of a path given to a *at() call: the real parent directory
 * plus the last component (which may not exist).  0 on success. */
static int abs_path(char *out, size_t cap, int dirfd, const char *path)
{
    char full[PATH_MAX * 2];
    if (path[0] == '/') {
        snprintf(full, sizeof full, "%s", path);
    } else {
        char d[PATH_MAX];
        if (dirfd == AT_FDCWD) {
            if (!getcwd(d, sizeof d))
                return -1;
        } else {
            char link[64];
            snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
            ssize_t n = readlink(link, d, sizeof d - 1);
            if (n < 0)
                return -1;
            d[n] = '\0';
        }
        snprintf(full, sizeof full, "%s/%s", d, path);
    }
    char parent[PATH_MAX];
    char *slash = strrchr(full, '/');
    if (slash == full)
        snprintf(parent, sizeof parent, "/");
    else {
        *slash = '\0';
        if (!realpath(full, parent))
            return -1;
    }
    snprintf(out, cap, "%s/%s", parent, slash + 1);
    return 0;
}

/* A path (relative to dirfd) names a file in the tracked directory. */
static int path_tracked(int dirfd, const char *path, char *abs, size_t cap)
{
    if (!rec_on || !path)
        return 0;
    if (abs_path(abs, cap, dirfd, path) != 0)
        return 0;
    return in_dir(abs) == 2;
}

static int tracked(int fd)
{
    if (!rec_on || fd < 0 || fd >= REC_MAXFD)
        return 0;
    return __atomic_load_n(&fds[fd].file, __ATOMIC_ACQUIRE);
}

/* After an open that returned fd: track it if it is ours. */
static void after_open(int fd, int flags, uint64_t b)
{
    if (!rec_on || fd < 0)
        return;
    char link[64], p[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, p, sizeof p - 1);
    if (n < 0)
        return;
    p[n] = '\0';
    int kind = in_dir(p);
    if (!kind)
        return;
    if (fd >= REC_MAXFD)
        loud("tracked descriptor %d is beyond the table", fd);
    if (flags & O_APPEND)
        loud("%s opened O_APPEND: not supported by the recorder", p);
    struct stat st;
    if (fstat(fd, &st) != 0)
        loud("fstat of tracked %s failed", p);
    int fresh;
    int id = file_id(&st, kind == 1 ? "." : base_name(p), &fresh);
    uint64_t e = tick();
    if (fresh)
        emit(EV_CREATE, id, fd, b, e, 0, 0, base_name(p), strlen(base_name(p)) + 1);
    if ((flags & O_TRUNC) && kind == 2)
        emit(EV_SIZE, id, fd, b, e, 0, 0, NULL, 0);
    fds[fd].sync = (flags & (O_DSYNC | O_SYNC)) ? 1 : 0;
    __atomic_store_n(&fds[fd].file, id + 1, __ATOMIC_RELEASE);
    emit(EV_OPEN, id, fd, b, e, (uint64_t)flags, 0, NULL, 0);
}

static uint64_t maybe_tick(void)
{
    return rec_on ? tick() : 0;
}

int rec_start(const char *dir)
{
    if (!log_hdr || !realpath(dir, rec_dir))
        return -1;
    /* LMDB calls whatever the global scope resolves: it must be us */
    if (dlsym(RTLD_DEFAULT, "pwrite") != (void *)&pwrite ||
        dlsym(RTLD_DEFAULT, "fdatasync") != (void *)&fdatasync ||
        dlsym(RTLD_DEFAULT, "writev") != (void *)&writev)
        loud("the recorder's functions do not interpose: link the test with export_dynamic");
    struct stat st;
    if (stat(rec_dir, &st) != 0)
        return -1;
    rec_dev = st.st_dev;
    rec_on = 1;
    int fresh;
    file_id(&st, ".", &fresh);
    DIR *d = opendir(rec_dir);
    if (!d)
        return -1;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) && !rc) {
        char p[PATH_MAX * 2];
        snprintf(p, sizeof p, "%s/%s", rec_dir, de->d_name);
        if (in_dir(p) != 2 || stat(p, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        int fd = REAL(open)(p, O_RDONLY);
        unsigned char *buf = malloc((size_t)st.st_size + 1);
        rc = -1;
        if (fd >= 0 && buf && REAL(fsync)(fd) == 0 &&
            pread(fd, buf, (size_t)st.st_size, 0) == st.st_size) {
            int id = file_id(&st, de->d_name, &fresh);
            uint64_t t = tick();
            emit(EV_BASE, id, -1, t, t, 0, 0, buf, (size_t)st.st_size);
            rc = 0;
        }
        free(buf);
        if (fd >= 0)
            REAL(close)(fd);
    }
    closedir(d);
    int dfd = REAL(open)(rec_dir, O_RDONLY | O_DIRECTORY);
    if (dfd < 0 || REAL(fsync)(dfd) != 0)
        rc = -1;
    if (dfd >= 0)
        REAL(close)(dfd);
    /* descriptors this process already holds on the directory's files */
    if ((d = opendir("/proc/self/fd"))) {
        while ((de = readdir(d))) {
            int fd = atoi(de->d_name);
            int fl = de->d_name[0] != '.' && fd != dirfd(d) ? REAL(fcntl)(fd, F_GETFL) : -1;
            if (fl >= 0)
                after_open(fd, fl, tick());
        }
        closedir(d);
    }
    if (rc)
        rec_on = 0;
    return rc;
}

void rec_stop(void)
{
    rec_on = 0;
}

void rec_ack(uint32_t kind, const void *data, size_t len)
{
    uint64_t t = tick();
    emit(EV_ACK, 0, -1, t, t, kind, 0, data, len);
}

void rec_ack_at_flush_mark(uint32_t kind, const void *data, size_t len)
{
    uint64_t t = __atomic_load_n(&log_hdr->flush_mark, __ATOMIC_SEQ_CST);
    emit(EV_ACK, 0, -1, t, t, kind, 0, data, len);
}

void rec_ack_early(uint32_t kind, const void *data, size_t len)
{
    pthread_mutex_lock(&pend_mu);
    if (npend == MAXPEND)
        loud("too many early ACKs pending");
    unsigned char *copy = malloc(len ? len : 1);
    if (!copy)
        loud("out of memory");
    memcpy(copy, data, len);
    pend[npend].kind = kind;
    pend[npend].len = len;
    pend[npend].data = copy;
    npend++;
    pthread_mutex_unlock(&pend_mu);
}

void rec_ack_flush(void)
{
    pthread_mutex_lock(&pend_mu);
    for (int i = 0; i < npend; i++) {
        rec_ack(pend[i].kind, pend[i].data, pend[i].len);
        free(pend[i].data);
    }
    npend = 0;
    pthread_mutex_unlock(&pend_mu);
}

/* ---- opening and closing ---- */
static int mode_arg(int flags, va_list ap)
{
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, int) : 0;
}

#define OPEN_BODY(call)                   \
    va_list ap;                           \
    va_start(ap, flags);                  \
    int mode = mode_arg(flags, ap);       \
    va_end(ap);                           \
    uint64_t b = maybe_tick();            \
    int fd = call;                        \
    int err = errno;                      \
    after_open(fd, flags, b);             \
    errno = err;                          \
    return fd;

int open(const char *path, int flags, ...)
{
    OPEN_BODY(REAL(open)(path, flags, mode))
}

int open64(const char *path, int flags, ...)
{
    OPEN_BODY(REAL(open64)(path, flags, mode))
}

int openat(int dirfd, const char *path, int flags, ...)
{
    OPEN_BODY(REAL(openat)(dirfd, path, flags, mode))
}

int openat64(int dirfd, const char *path, int flags, ...)
{
    OPEN_BODY(REAL(openat64)(dirfd, path, flags, mode))
}

int creat(const char *path, mode_t mode)
{
    return open(path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

int creat64(const char *path, mode_t mode)
{
    return open(path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

int close(int fd)
{
    int f = tracked(fd);
    if (!f)
        return REAL(close)(fd);
    __atomic_store_n(&fds[fd].file, 0, __ATOMIC_RELEASE);
    uint64_t b = tick();
    int r = REAL(close)(fd);
    int err = errno;
    emit(EV_CLOSE, f - 1, fd, b, tick(), 0, r ? err : 0, NULL, 0);
    errno = err;
    return r;
}

static void refuse_dup(int fd, const char *call)
{
    if (tracked(fd))
        loud("%s of a tracked descriptor (%d): not supported by the recorder", call, fd);
}

int dup(int fd)
{
    refuse_dup(fd, "dup");
    return REAL(dup)(fd);
}

int dup2(int fd, int to)
{
    refuse_dup(fd, "dup2");
    refuse_dup(to, "dup2 onto");
    return REAL(dup2)(fd, to);
}

int dup3(int fd, int to, int flags)
{
    refuse_dup(fd, "dup3");
    refuse_dup(to, "dup3 onto");
    return REAL(dup3)(fd, to, flags);
}

int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)
        refuse_dup(fd, "fcntl(F_DUPFD)");
    if (cmd == F_SETFL && ((long)(intptr_t)arg & (O_APPEND | O_DSYNC | O_SYNC)) && tracked(fd))
        loud("fcntl(F_SETFL) changes the write mode of tracked descriptor %d", fd);
    return REAL(fcntl)(fd, cmd, arg);
}

/* ---- writing ---- */
static void log_write(int f, int fd, uint64_t b, uint64_t e, uint64_t off,
                      const struct iovec *iov, int cnt, size_t n)
{
    rec_ev *ev = reserve(EV_WRITE, n);
    ev->file = (uint32_t)(f - 1);
    ev->fd = fd;
    ev->b = b;
    ev->e = e;
    ev->off = off;
    ev->sync = (uint32_t)fds[fd].sync;
    unsigned char *p = (unsigned char *)(ev + 1);
    for (int i = 0; i < cnt && n; i++) {
        size_t k = iov[i].iov_len < n ? iov[i].iov_len : n;
        memcpy(p, iov[i].iov_base, k);
        p += k;
        n -= k;
    }
}

static ssize_t pwritev_rec(int fd, const struct iovec *iov, int cnt, off_t off, int positional)
{
    int f = tracked(fd);
    if (positional == 2)
        return REAL(pwritev)(fd, iov, cnt, off);
    if (!positional) {
        off = REAL(lseek)(fd, 0, SEEK_CUR);
        if (off < 0)
            loud("cannot read the offset of tracked descriptor %d", fd);
    }
    uint64_t b = tick();
    ssize_t r = positional ? REAL(pwritev)(fd, iov, cnt, off) : REAL(writev)(fd, iov, cnt);
    int err = errno;
    uint64_t e = tick();
    if (r > 0)
        log_write(f, fd, b, e, (uint64_t)off, iov, cnt, (size_t)r);
    errno = err;
    return r;
}

ssize_t write(int fd, const void *buf, size_t n)
{
    if (!tracked(fd))
        return REAL(write)(fd, buf, n);
    struct iovec v = {(void *)buf, n};
    return pwritev_rec(fd, &v, 1, 0, 0);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    if (!tracked(fd))
        return REAL(writev)(fd, iov, cnt);
    return pwritev_rec(fd, iov, cnt, 0, 0);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (!tracked(fd))
        return REAL(pwrite)(fd, buf, n, off);
    struct iovec v = {(void *)buf, n};
    return pwritev_rec(fd, &v, 1, off, 1);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
    return pwrite(fd, buf, n, (off_t)off);
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    return pwritev_rec(fd, iov, cnt, off, tracked(fd) ? 1 : 2);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off64_t off)
{
    return pwritev(fd, iov, cnt, (off_t)off);
}

ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
    if (tracked(fd))
        loud("pwritev2 on tracked descriptor %d: not supported by the recorder", fd);
    return REAL(pwritev2)(fd, iov, cnt, off, flags);
}

ssize_t pwritev64v2(int fd, const struct iovec *iov, int cnt, off64_t off, int flags)
{
    if (tracked(fd))
        loud("pwritev2 on tracked descriptor %d: not supported by the recorder", fd);
    return REAL(pwritev64v2)(fd, iov, cnt, off, flags);
}

off_t lseek(int fd, off_t off, int whence)
{
    int f = tracked(fd);
    off_t r = REAL(lseek)(fd, off, whence);
    if (f && r >= 0) {
        int err = errno;
        uint64_t t = tick();
        emit(EV_LSEEK, f - 1, fd, t, t, (uint64_t)r, 0, NULL, 0);
        errno = err;
    }
    return r;
}

off64_t lseek64(int fd, off64_t off, int whence)
{
    return lseek(fd, (off_t)off, whence);
}

static void log_size(int f, int fd, uint64_t b, uint64_t size, int grow_only)
{
    rec_ev *ev = reserve(EV_SIZE, 0);
    ev->file = (uint32_t)(f - 1);
    ev->fd = fd;
    ev->b = b;
    ev->e = tick();
    ev->off = size;
    ev->pad = (uint32_t)grow_only;
}

int ftruncate(int fd, off_t len)
{
    int f = tracked(fd);
    if (!f)
        return REAL(ftruncate)(fd, len);
    uint64_t b = tick();
    int r = REAL(ftruncate)(fd, len);
    int err = errno;
    if (r == 0)
        log_size(f, fd, b, (uint64_t)len, 0);
    errno = err;
    return r;
}

int ftruncate64(int fd, off64_t len)
{
    return ftruncate(fd, (off_t)len);
}

int fallocate(int fd, int mode, off_t off, off_t len)
{
    int f = tracked(fd);
    if (!f)
        return REAL(fallocate)(fd, mode, off, len);
    if (mode & ~FALLOC_FL_KEEP_SIZE)
        loud("fallocate mode 0x%x on tracked descriptor %d changes contents: not supported",
             mode, fd);
    uint64_t b = tick();
    int r = REAL(fallocate)(fd, mode, off, len);
    int err = errno;
    if (r == 0 && !(mode & FALLOC_FL_KEEP_SIZE))
        log_size(f, fd, b, (uint64_t)(off + len), 1);
    errno = err;
    return r;
}

int fallocate64(int fd, int mode, off64_t off, off64_t len)
{
    return fallocate(fd, mode, (off_t)off, (off_t)len);
}

int posix_fallocate(int fd, off_t off, off_t len)
{
    int f = tracked(fd);
    if (!f)
        return REAL(posix_fallocate)(fd, off, len);
    uint64_t b = tick();
    int r = REAL(posix_fallocate)(fd, off, len);
    if (r == 0)
        log_size(f, fd, b, (uint64_t)(off + len), 1);
    return r;
}

int posix_fallocate64(int fd, off64_t off, off64_t len)
{
    return posix_fallocate(fd, (off_t)off, (off_t)len);
}

/* ---- flushing ---- */
static int flush_rec(int fd, int data_only)
{
    int f = tracked(fd);
    if (!f)
        return data_only ? REAL(fdatasync)(fd) : REAL(fsync)(fd);
    rec_ack_flush();   /* negative control: ACKs given before the flush */
    /* the mark (another negative control's ACK time) only grows */
    uint64_t m = tick(), old = __atomic_load_n(&log_hdr->flush_mark, __ATOMIC_SEQ_CST);
    while (old < m && !__atomic_compare_exchange_n(&log_hdr->flush_mark, &old, m, 0,
                                                   __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        ;
    uint64_t b = tick();
    int r = data_only ? REAL(fdatasync)(fd) : REAL(fsync)(fd);
    int err = errno;
    emit(EV_FLUSH, f - 1, fd, b, tick(), 0, r ? err : 0, NULL, 0);
    errno = err;
    return r;
}

int fsync(int fd)
{
    return flush_rec(fd, 0);
}

int fdatasync(int fd)
{
    return flush_rec(fd, 1);
}

/* Tracked files are never mapped writable (see mmap), so msync cannot move
 * their data; it passes through. */
int msync(void *addr, size_t len, int flags)
{
    return REAL(msync)(addr, len, flags);
}

void sync(void)
{
    if (!rec_on) {
        REAL(sync)();
        return;
    }
    rec_ack_flush();
    uint64_t b = tick();
    REAL(sync)();
    emit(EV_FLUSHALL, 0, -1, b, tick(), 0, 0, NULL, 0);
}

int syncfs(int fd)
{
    struct stat st;
    if (!rec_on || fstat(fd, &st) != 0 || st.st_dev != rec_dev)
        return REAL(syncfs)(fd);
    rec_ack_flush();
    uint64_t b = tick();
    int r = REAL(syncfs)(fd);
    int err = errno;
    emit(EV_FLUSHALL, 0, fd, b, tick(), 0, r ? err : 0, NULL, 0);
    errno = err;
    return r;
}

/* ---- the directory ---- */
static int id_of_path(const char *abs)
{
    struct stat st;
    int fresh;
    if (lstat(abs, &st) != 0)
        return -1;
    int id = file_id(&st, base_name(abs), &fresh);
    if (fresh)
        loud("%s was never opened while recording but is being renamed or removed", abs);
    return id;
}

static int rename_rec(int ofd, const char *old, int nfd, const char *new, unsigned flags,
                      int how)
{
    char ao[PATH_MAX * 2 + 2], an[PATH_MAX * 2 + 2];
    int to = path_tracked(ofd, old, ao, sizeof ao), tn = path_tracked(nfd, new, an, sizeof an);
    if (!to && !tn) {
        return how == 0 ? REAL(rename)(old, new)
             : how == 1 ? REAL(renameat)(ofd, old, nfd, new)
                        : REAL(renameat2)(ofd, old, nfd, new, flags);
    }
    if (!to || !tn || flags)
        loud("rename %s -> %s moves a file into, out of or within the tracked directory in "
             "a way the recorder does not model", old, new);
    int id = id_of_path(ao);
    uint64_t b = tick();
    int r = how == 0 ? REAL(rename)(old, new)
          : how == 1 ? REAL(renameat)(ofd, old, nfd, new)
                     : REAL(renameat2)(ofd, old, nfd, new, flags);
    int err = errno;
    if (r == 0 && id >= 0) {
        char names[2 * REC_NAME];
        const char *bo = base_name(ao), *bn = base_name(an);
        size_t lo = strlen(bo) + 1, ln = strlen(bn) + 1;
        if (lo + ln > sizeof names)
            loud("file name too long in the tracked directory");
        memcpy(names, bo, lo);
        memcpy(names + lo, bn, ln);
        emit(EV_RENAME, id, -1, b, tick(), 0, 0, names, lo + ln);
    }
    errno = err;
    return r;
}

int rename(const char *old, const char *new)
{
    return rename_rec(AT_FDCWD, old, AT_FDCWD, new, 0, 0);
}

int renameat(int ofd, const char *old, int nfd, const char *new)
{
    return rename_rec(ofd, old, nfd, new, 0, 1);
}

int renameat2(int ofd, const char *old, int nfd, const char *new, unsigned flags)
{
    return rename_rec(ofd, old, nfd, new, flags, 2);
}

static int unlink_rec(int dirfd, const char *path, int flags, int at)
{
    char a[PATH_MAX * 2 + 2];
    if (!path_tracked(dirfd, path, a, sizeof a))
        return at ? REAL(unlinkat)(dirfd, path, flags) : REAL(unlink)(path);
    int id = id_of_path(a);
    uint64_t b = tick();
    int r = at ? REAL(unlinkat)(dirfd, path, flags) : REAL(unlink)(path);
    int err = errno;
    if (r == 0 && id >= 0)
        emit(EV_UNLINK, id, -1, b, tick(), 0, 0, base_name(a), strlen(base_name(a)) + 1);
    errno = err;
    return r;
}

int unlink(const char *path)
{
    return unlink_rec(AT_FDCWD, path, 0, 0);
}

int unlinkat(int dirfd, const char *path, int flags)
{
    return unlink_rec(dirfd, path, flags, 1);
}

static void refuse_path(const char *path, const char *call)
{
    char a[PATH_MAX * 2 + 2];
    if (path_tracked(AT_FDCWD, path, a, sizeof a))
        loud("%s on %s in the tracked directory: not supported by the recorder", call, a);
}

int truncate(const char *path, off_t len)
{
    refuse_path(path, "truncate");
    return REAL(truncate)(path, len);
}

int truncate64(const char *path, off64_t len)
{
    refuse_path(path, "truncate64");
    return REAL(truncate64)(path, len);
}

int link(const char *old, const char *new)
{
    refuse_path(old, "link");
    refuse_path(new, "link");
    return REAL(link)(old, new);
}

int linkat(int ofd, const char *old, int nfd, const char *new, int flags)
{
    char a[PATH_MAX * 2 + 2];
    if (path_tracked(ofd, old, a, sizeof a) || path_tracked(nfd, new, a, sizeof a))
        loud("linkat in the tracked directory: not supported by the recorder");
    return REAL(linkat)(ofd, old, nfd, new, flags);
}

/* stdio writes through libc's internal write, which cannot be interposed */
static void refuse_stdio(const char *path, const char *mode)
{
    if (mode && strpbrk(mode, "wa+"))
        refuse_path(path, "fopen for writing");
}

FILE *fopen(const char *path, const char *mode)
{
    refuse_stdio(path, mode);
    return REAL(fopen)(path, mode);
}

FILE *fopen64(const char *path, const char *mode)
{
    refuse_stdio(path, mode);
    return REAL(fopen64)(path, mode);
}

FILE *freopen(const char *path, const char *mode, FILE *f)
{
    refuse_stdio(path, mode);
    return REAL(freopen)(path, mode, f);
}

ssize_t copy_file_range(int in, off64_t *oin, int out, off64_t *oout, size_t n, unsigned flags)
{
    if (tracked(out))
        loud("copy_file_range into tracked descriptor %d: not supported by the recorder", out);
    return REAL(copy_file_range)(in, oin, out, oout, n, flags);
}

ssize_t sendfile(int out, int in, off_t *off, size_t n)
{
    if (tracked(out))
        loud("sendfile into tracked descriptor %d: not supported by the recorder", out);
    return REAL(sendfile)(out, in, off, n);
}

/* ---- mappings ---- */
static void *mmap_rec(void *addr, size_t len, int prot, int flags, int fd, off_t off, int is64)
{
    int f = tracked(fd);
    if (f && (prot & PROT_WRITE) && (flags & MAP_SHARED))
        loud("writable shared mapping of tracked descriptor %d: its writes would bypass the "
             "recorder (MDB_WRITEMAP is not supported)", fd);
    void *p = is64 ? REAL(mmap64)(addr, len, prot, flags, fd, off)
                   : REAL(mmap)(addr, len, prot, flags, fd, off);
    if (f && p != MAP_FAILED && (flags & MAP_SHARED)) {
        pthread_mutex_lock(&maps_mu);
        int i = 0;
        while (i < REC_MAXMAPS && maps[i].n)
            i++;
        if (i == REC_MAXMAPS)
            loud("too many mappings of tracked files");
        maps[i].a = (uintptr_t)p;
        maps[i].n = len;
        pthread_mutex_unlock(&maps_mu);
    }
    return p;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    return mmap_rec(addr, len, prot, flags, fd, off, 0);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off)
{
    return mmap_rec(addr, len, prot, flags, fd, (off_t)off, 1);
}

int mprotect(void *addr, size_t len, int prot)
{
    if (rec_on && (prot & PROT_WRITE)) {
        uintptr_t a = (uintptr_t)addr;
        pthread_mutex_lock(&maps_mu);
        for (int i = 0; i < REC_MAXMAPS; i++)
            if (maps[i].n && a < maps[i].a + maps[i].n && maps[i].a < a + len)
                loud("mprotect makes a shared mapping of a tracked file writable");
        pthread_mutex_unlock(&maps_mu);
    }
    return REAL(mprotect)(addr, len, prot);
}

int munmap(void *addr, size_t len)
{
    if (rec_on) {
        pthread_mutex_lock(&maps_mu);
        for (int i = 0; i < REC_MAXMAPS; i++)
            if (maps[i].n && maps[i].a == (uintptr_t)addr)
                maps[i].n = 0;
        pthread_mutex_unlock(&maps_mu);
    }
    return REAL(munmap)(addr, len);
}

ssize_t sendfile64(int out, int in, off64_t *off, size_t n)
{
    if (tracked(out))
        loud("sendfile into tracked descriptor %d: not supported by the recorder", out);
    return REAL(sendfile64)(out, in, off, n);
}
