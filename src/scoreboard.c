/* Shared-memory scoreboard; see include/hugd/scoreboard.h. */
#include "hugd/scoreboard.h"

#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static size_t conn_offset(int nslots)
{
    size_t off = sizeof(struct scoreboard) + (size_t)nslots * sizeof(struct sb_slot);
    return (off + 63) & ~(size_t)63;
}

static size_t board_size(int nslots, int nconns)
{
    return conn_offset(nslots) + (size_t)nconns * sizeof(struct sb_conn);
}

static struct scoreboard *map(int fd, size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    return p == MAP_FAILED ? NULL : p;
}

struct scoreboard *scoreboard_attach(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return NULL;
    return map(fd, (size_t)st.st_size);
}

struct scoreboard *scoreboard_create(int nslots, int nconns, int *fd)
{
    /* A memfd rather than anonymous memory: a master reloading in place
     * (HUP) maps the same board again after exec, and keeps its workers. */
    *fd = memfd_create("hugd-scoreboard", MFD_CLOEXEC);
    if (*fd < 0)
        return NULL;
    if (ftruncate(*fd, (off_t)board_size(nslots, nconns)) < 0) {
        close(*fd);
        return NULL;
    }
    struct scoreboard *sb = map(*fd, board_size(nslots, nconns));
    if (!sb) {
        close(*fd);
        return NULL;
    }
    /* New pages are zeroed: every slot starts SB_EMPTY. */
    sb->nslots = nslots;
    sb->nconns = nconns;
    sb->conn_off = conn_offset(nslots);
    return sb;
}

void scoreboard_reset_slot(struct sb_slot *s)
{
    atomic_store(&s->state, SB_EMPTY);
    atomic_store(&s->received, 0);
    atomic_store(&s->closed, 0);
    atomic_store(&s->requests, 0);
    atomic_store(&s->busy_since_ms, 0);
    atomic_store(&s->sent, 0);
    atomic_store(&s->accepting, 0);
    s->request[0] = '\0';
    s->spawned_ms = 0;
    atomic_store(&s->output_full, 0);
    atomic_store(&s->judges, 0);
    atomic_store(&s->slow_call_ms, 0);
    for (int k = 0; k < STATS_NCLASSES; k++)
        atomic_store(&s->by_class[k], 0);
    atomic_store(&s->resp_us_sum, 0);
    atomic_store(&s->resp_us_max, 0);
    for (int k = 0; k < STATS_NBUCKETS; k++)
        atomic_store(&s->resp_hist[k], 0);
}

int64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
