/* Shared-memory scoreboard; see include/hugd/scoreboard.h. */
#include "hugd/scoreboard.h"

#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

struct scoreboard *scoreboard_create(int nslots)
{
    size_t size = sizeof(struct scoreboard) + (size_t)nslots * sizeof(struct sb_slot);
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    struct scoreboard *sb = p; /* mmap gives zeroed pages: every slot is SB_EMPTY */
    sb->nslots = nslots;
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
    atomic_store(&s->pid, 0);
    s->request[0] = '\0';
    s->spawned_ms = 0;
}

int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
