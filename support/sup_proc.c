/*
 * sup_proc.c -- the start gate for forked processes.
 *
 * Two pipes.  Each child writes one byte to `ready` and then reads `go`,
 * which blocks until the parent closes go's write end: then every child's
 * read returns 0 at the same moment.  The parent counts the ready bytes; a
 * child that dies early closes its copy of ready's write end, so the count
 * ends at end-of-file instead of waiting forever.
 */
#include <errno.h>
#include <time.h>
#include <unistd.h>

#include "support.h"

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

int sup_gate_init(sup_gate *g)
{
    g->ready[0] = g->ready[1] = g->go[0] = g->go[1] = -1;
    if (pipe(g->ready) != 0)
        return -1;
    if (pipe(g->go) != 0) {
        int err = errno;
        sup_gate_close(g);
        errno = err;
        return -1;
    }
    return 0;
}

void sup_gate_enter(sup_gate *g)
{
    close_fd(&g->ready[0]);
    close_fd(&g->go[1]);
}

int sup_gate_wait(sup_gate *g)
{
    /* closing ready matters: the parent reads until every child's copy is closed */
    if (write(g->ready[1], "r", 1) != 1)
        return -1;
    close_fd(&g->ready[1]);
    char ch;
    ssize_t n;
    do
        n = read(g->go[0], &ch, 1);
    while (n < 0 && errno == EINTR);
    close_fd(&g->go[0]);
    return n < 0 ? -1 : 0;
}

int sup_gate_await(sup_gate *g, int n, const volatile sig_atomic_t *give_up)
{
    close_fd(&g->ready[1]);
    close_fd(&g->go[0]);
    int got = 0;
    while (got < n) {
        char buf[64];
        ssize_t r = read(g->ready[0], buf, sizeof buf);
        if (r < 0 && errno == EINTR && !(give_up && *give_up))
            continue;
        if (r <= 0)
            break;
        got += (int)r;
    }
    close_fd(&g->ready[0]);
    return got;
}

void sup_gate_open(sup_gate *g)
{
    close_fd(&g->go[1]);
}

void sup_gate_close(sup_gate *g)
{
    close_fd(&g->ready[0]);
    close_fd(&g->ready[1]);
    close_fd(&g->go[0]);
    close_fd(&g->go[1]);
}

void sup_sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000L};
    nanosleep(&ts, NULL);
}

uint64_t sup_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}
