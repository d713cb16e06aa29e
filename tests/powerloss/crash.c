/*
 * crash.c -- the files a power cut can leave, computed from a recorded log.
 *
 * The model (ALICE's, at page granularity).  Crash "at c" means the power
 * went out after sequence number c-1 was taken: an event whose begin b < c
 * had started, one whose end e < c had finished.
 *  - A write is certainly on disk if it finished before the begin of a flush
 *    of the same file that finished before c (by any process: fsync and
 *    fdatasync flush every dirty page of the file, whoever wrote it), or if it
 *    went through an O_DSYNC/O_SYNC descriptor and finished.
 *  - Every other write that had started may be on disk or not, each 4 KiB
 *    page of it on its own; a write can also be torn at a 512-byte sector
 *    boundary (pl_choice.torn).
 *  - A file's growth that no flush covered may be lost, or survive as zeros.
 *  - A file created while recording exists for certain once a flush of it or
 *    of the directory finished; renames and unlinks are certain once a flush
 *    of the directory finished.  Before that each may or may not have
 *    happened.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "powerloss.h"

#define PAGE 4096u
#define SECTOR 512u

uint64_t pl_rand(uint64_t *s)
{
    /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static int by_begin(const void *a, const void *b)
{
    const rec_ev *x = *(const rec_ev *const *)a, *y = *(const rec_ev *const *)b;
    return x->b < y->b ? -1 : x->b > y->b;
}

int pl_log_load(pl_log *L, const rec_hdr *h, char *err, size_t cap)
{
    memset(L, 0, sizeof *L);
    L->h = h;
    if (h->magic != REC_MAGIC || h->failed) {
        snprintf(err, cap, "recorder failed: %s", h->fail_msg);
        return -1;
    }
    uint64_t pos = 0;
    size_t n = 0;
    while (rec_next(h, &pos))
        n++;
    if (pos != h->tail) {
        snprintf(err, cap, "the log has an unfinished event at byte %llu",
                 (unsigned long long)pos);
        return -1;
    }
    L->ev = malloc((n ? n : 1) * sizeof *L->ev);
    L->acks = malloc((n ? n : 1) * sizeof *L->acks);
    if (!L->ev || !L->acks) {
        snprintf(err, cap, "out of memory");
        return -1;
    }
    pos = 0;
    const rec_ev *ev;
    while ((ev = rec_next(h, &pos))) {
        L->ev[L->n++] = ev;
        if (ev->e > L->last)
            L->last = ev->e;
        if (ev->kind == EV_BASE && ev->e + 1 > L->start)
            L->start = ev->e + 1;
        if (ev->kind == EV_WRITE)
            L->writes++;
        if (ev->kind == EV_FLUSH || ev->kind == EV_FLUSHALL)
            L->flushes++;
    }
    qsort(L->ev, L->n, sizeof *L->ev, by_begin);
    for (size_t i = 0; i < L->n; i++) {
        ev = L->ev[i];
        if (ev->kind == EV_ACK)
            L->acks[L->nacks++] = (pl_ack){ev->b, (uint32_t)ev->off, rec_payload(ev),
                                           (size_t)ev->len};
    }
    return 0;
}

void pl_log_free(pl_log *L)
{
    free(L->ev);
    free(L->acks);
    memset(L, 0, sizeof *L);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

uint64_t *pl_crash_points(size_t *n, const pl_log *L, size_t nrandom, uint64_t *rng)
{
    size_t cap = 4 * L->n + nrandom + 2, k = 0;
    uint64_t *c = malloc(cap * sizeof *c);
    if (!c)
        return NULL;
    for (size_t i = 0; i < L->n; i++) {
        const rec_ev *ev = L->ev[i];
        if (ev->kind == EV_FLUSH || ev->kind == EV_FLUSHALL) {
            c[k++] = ev->b;        /* just before the flush begins */
            c[k++] = ev->e + 1;    /* just after it completed */
        } else if (ev->kind == EV_ACK) {
            c[k++] = ev->b + 1;    /* just after the API said "done" */
        } else if (ev->kind == EV_WRITE && ev->sync) {
            c[k++] = ev->b + 1;    /* in the middle of a synchronous write */
            c[k++] = ev->e + 1;
        }
    }
    for (size_t i = 0; i < nrandom; i++)
        c[k++] = L->start + pl_rand(rng) % (L->last + 2 - L->start);
    c[k++] = L->last + 1;
    qsort(c, k, sizeof *c, cmp_u64);
    size_t m = 0;
    for (size_t i = 0; i < k; i++)
        if (c[i] >= L->start && (m == 0 || c[m - 1] != c[i]))
            c[m++] = c[i];
    *n = m;
    return c;
}

/* For each file id, the latest begin of a flush that finished before c (0:
 * none); dir_flush: the same for the directory. */
static void flush_marks(uint64_t *mark, uint64_t *dir_flush, const pl_log *L, uint64_t c)
{
    memset(mark, 0, REC_MAXFILES * sizeof *mark);
    *dir_flush = 0;
    for (size_t i = 0; i < L->n && L->ev[i]->b < c; i++) {
        const rec_ev *ev = L->ev[i];
        if (ev->e >= c || ev->rc != 0)
            continue;
        if (ev->kind == EV_FLUSH) {
            if (ev->b > mark[ev->file])
                mark[ev->file] = ev->b;
            if (L->h->files[ev->file].is_dir && ev->b > *dir_flush)
                *dir_flush = ev->b;
        } else if (ev->kind == EV_FLUSHALL) {
            for (uint32_t f = 0; f < REC_MAXFILES; f++)
                if (ev->b > mark[f])
                    mark[f] = ev->b;
            if (ev->b > *dir_flush)
                *dir_flush = ev->b;
        }
    }
}

static bool certain(const rec_ev *ev, const uint64_t *mark, uint64_t c)
{
    return ev->e < mark[ev->file] || (ev->sync && ev->e < c);
}

/* Does an uncertain piece make it, under choice? */
static bool chosen(pl_choice *ch)
{
    if (ch->mode == ST_NONE)
        return false;
    if (ch->mode == ST_ALL)
        return true;
    return (pl_rand(&ch->rng) & 255) < ch->p256;
}

static int file_resize(pl_file *f, size_t size)
{
    if (size > f->cap) {
        size_t cap = f->cap ? f->cap : PAGE;
        while (cap < size)
            cap *= 2;
        unsigned char *p = realloc(f->data, cap);
        if (!p)
            return -1;
        memset(p + f->cap, 0, cap - f->cap);
        f->data = p;
        f->cap = cap;
    }
    if (size < f->size)
        memset(f->data + size, 0, f->size - size);
    f->size = size;
    return 0;
}

static int file_put(pl_file *f, uint64_t off, const unsigned char *p, size_t n)
{
    if (off + n > f->size && file_resize(f, off + n))
        return -1;
    memcpy(f->data + off, p, n);
    return 0;
}

void pl_state_free(pl_state *s)
{
    for (size_t i = 0; i < REC_MAXFILES; i++)
        free(s->files[i].data);
    memset(s, 0, sizeof *s);
}

int pl_materialize(pl_state *s, const pl_log *L, uint64_t c, pl_choice *ch)
{
    uint64_t mark[REC_MAXFILES], dir_flush;
    bool exists[REC_MAXFILES] = {0};
    uint64_t grown[REC_MAXFILES] = {0};   /* the size every started write implies */
    char names[REC_MAXFILES][REC_NAME];
    flush_marks(mark, &dir_flush, L, c);
    for (size_t i = 0; i < REC_MAXFILES; i++) {
        file_resize(&s->files[i], 0);   /* keeps the bytes beyond size zero */
        s->files[i].name[0] = '\0';
    }
    for (size_t i = 0; i < L->n && L->ev[i]->b < c; i++) {
        const rec_ev *ev = L->ev[i];
        pl_file *f = &s->files[ev->file];
        switch (ev->kind) {
        case EV_BASE:
            exists[ev->file] = true;
            snprintf(names[ev->file], REC_NAME, "%s", L->h->files[ev->file].name);
            if (file_resize(f, 0) || file_put(f, 0, rec_payload(ev), ev->len))
                return -1;
            break;
        case EV_CREATE: {
            uint64_t m = mark[ev->file] > dir_flush ? mark[ev->file] : dir_flush;
            exists[ev->file] = ev->e < m || chosen(ch);
            snprintf(names[ev->file], REC_NAME, "%s", (const char *)rec_payload(ev));
            if (file_resize(f, 0))
                return -1;
            break;
        }
        case EV_RENAME:
        case EV_UNLINK:
            if (ev->e < dir_flush || chosen(ch)) {
                const char *p = (const char *)rec_payload(ev);
                if (ev->kind == EV_UNLINK) {
                    exists[ev->file] = false;
                    break;
                }
                const char *to = p + strlen(p) + 1;
                for (size_t k = 0; k < REC_MAXFILES; k++)
                    if (exists[k] && strcmp(names[k], to) == 0)
                        exists[k] = false;   /* replaced */
                snprintf(names[ev->file], REC_NAME, "%s", to);
            }
            break;
        case EV_SIZE:
            if (certain(ev, mark, c) || chosen(ch)) {
                size_t size = ev->pad && f->size > ev->off ? f->size : (size_t)ev->off;
                if (file_resize(f, size))
                    return -1;
            }
            if (ev->off > grown[ev->file])
                grown[ev->file] = ev->off;
            break;
        case EV_WRITE: {
            const unsigned char *p = rec_payload(ev);
            uint64_t end = ev->off + ev->len;
            if (end > grown[ev->file])
                grown[ev->file] = end;
            if (certain(ev, mark, c)) {
                if (file_put(f, ev->off, p, ev->len))
                    return -1;
                break;
            }
            if (ev == ch->torn) {
                if (ch->torn_at > ev->off && file_put(f, ev->off, p, ch->torn_at - ev->off))
                    return -1;
                break;
            }
            /* page by page; a write still in flight may also be torn (ch->torn) */
            for (uint64_t at = ev->off; at < end;) {
                uint64_t next = (at / PAGE + 1) * PAGE;
                if (next > end)
                    next = end;
                if (chosen(ch) && file_put(f, at, p + (at - ev->off), next - at))
                    return -1;
                at = next;
            }
            break;
        }
        default:
            break;
        }
    }
    s->nfiles = 0;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < REC_MAXFILES; i++) {
        pl_file *f = &s->files[i];
        if (!exists[i] || L->h->files[i].is_dir)
            continue;
        if (ch->zeros && grown[i] > f->size && file_resize(f, grown[i]))
            return -1;
        snprintf(f->name, sizeof f->name, "%s", names[i]);
        s->nfiles++;
        for (const char *p = f->name; *p; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ULL;
        for (size_t k = 0; k < f->size; k++)
            h = (h ^ f->data[k]) * 1099511628211ULL;
        h = (h ^ f->size) * 1099511628211ULL;
    }
    s->nacks = 0;
    while (s->nacks < L->nacks && L->acks[s->nacks].seq < c)
        s->nacks++;
    s->hash = h ^ (s->nacks * 0x9E3779B97F4A7C15ULL);
    return 0;
}

size_t pl_torn_candidates(const rec_ev **out, size_t max, const pl_log *L, uint64_t c)
{
    uint64_t mark[REC_MAXFILES], dir_flush;
    const rec_ev *last[REC_MAXFILES][2] = {{0}};
    flush_marks(mark, &dir_flush, L, c);
    for (size_t i = 0; i < L->n && L->ev[i]->b < c; i++) {
        const rec_ev *ev = L->ev[i];
        if (ev->kind != EV_WRITE || certain(ev, mark, c))
            continue;
        for (uint64_t pg = 0; pg < 2; pg++)
            if (ev->off < (pg + 1) * PAGE && ev->off + ev->len > pg * PAGE)
                last[ev->file][pg] = ev;
    }
    size_t n = 0;
    for (size_t f = 0; f < REC_MAXFILES; f++)
        for (int pg = 0; pg < 2; pg++)
            if (last[f][pg] && n < max && (pg == 0 || last[f][1] != last[f][0]))
                out[n++] = last[f][pg];
    return n;
}

int pl_rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            rc |= pl_rmtree(p);
        else if (unlink(p) != 0)
            rc = -1;
    }
    closedir(d);
    return rmdir(dir) == 0 ? rc : -1;
}

int pl_state_write(const pl_state *s, const char *dir)
{
    if (pl_rmtree(dir) != 0 || mkdir(dir, 0700) != 0)
        return -1;
    for (size_t i = 0; i < REC_MAXFILES; i++) {
        const pl_file *f = &s->files[i];
        if (!f->name[0])
            continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, f->name);
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0)
            return -1;
        size_t done = 0;
        while (done < f->size) {
            ssize_t w = write(fd, f->data + done, f->size - done);
            if (w <= 0) {
                close(fd);
                return -1;
            }
            done += (size_t)w;
        }
        if (close(fd) != 0)
            return -1;
    }
    return 0;
}
