/* The least-busy choice, over scoreboards built by hand. */
#include <stdlib.h>

#include "../../src/balancer.c"
#include "check.h"

static struct scoreboard *board(int n)
{
    struct scoreboard *sb = calloc(1, sizeof(*sb) + (size_t)n * sizeof(struct sb_slot));
    sb->nslots = n;
    return sb;
}

/* A live worker: state, connections handed over, picked up, finished. */
static void worker(struct scoreboard *sb, int i, int state, int sent, int received, int closed)
{
    struct sb_slot *s = &sb->slot[i];
    atomic_store(&s->accepting, 1);
    atomic_store(&s->state, state);
    atomic_store(&s->sent, (uint64_t)sent);
    atomic_store(&s->received, (uint64_t)received);
    atomic_store(&s->closed, (uint64_t)closed);
}

int main(void)
{
    struct scoreboard *sb = board(4);
    /* No worker at all, or only empty slots. */
    CHECK_INT(balancer_pick(sb, 0), -1);

    /* A booting worker is not free yet. */
    worker(sb, 0, SB_BOOTING, 0, 0, 0);
    CHECK_INT(balancer_pick(sb, 0), -1);

    /* Idle with nothing pending: free. */
    worker(sb, 0, SB_IDLE, 0, 0, 0);
    CHECK_INT(balancer_pick(sb, 0), 0);

    /* Inside the app: not free, the other one wins. */
    worker(sb, 0, SB_BUSY, 5, 5, 4);
    worker(sb, 1, SB_IDLE, 9, 9, 2); /* 7 keep-alive connections, still free */
    CHECK_INT(balancer_pick(sb, 0), 1);

    /* Handed a connection it has not picked up yet: not free. */
    worker(sb, 1, SB_IDLE, 10, 9, 2);
    CHECK_INT(balancer_pick(sb, 0), -1);

    /* Among free workers, the fewest connections wins, wherever it is. */
    worker(sb, 0, SB_IDLE, 5, 5, 1); /* 4 */
    worker(sb, 1, SB_IDLE, 9, 9, 2); /* 7 */
    worker(sb, 2, SB_IDLE, 3, 3, 1); /* 2 */
    worker(sb, 3, SB_IDLE, 8, 8, 5); /* 3 */
    CHECK_INT(balancer_pick(sb, 0), 2);
    CHECK_INT(balancer_pick(sb, 3), 2);

    /* Ties go to the first at or after start, so equal workers take turns. */
    for (int i = 0; i < 4; i++)
        worker(sb, i, SB_IDLE, 2, 2, 1);
    CHECK_INT(balancer_pick(sb, 0), 0);
    CHECK_INT(balancer_pick(sb, 1), 1);
    CHECK_INT(balancer_pick(sb, 3), 3);
    CHECK_INT(balancer_pick(sb, 7), 0); /* out of range start is clamped */

    /* A worker the master took out of service (retiring, timed out). */
    atomic_store(&sb->slot[1].accepting, 0);
    CHECK_INT(balancer_pick(sb, 1), 2);

    /* Draining workers take nothing. */
    for (int i = 0; i < 4; i++)
        worker(sb, i, SB_DRAINING, 0, 0, 0);
    CHECK_INT(balancer_pick(sb, 0), -1);

    /* The is-free rule itself. */
    worker(sb, 0, SB_IDLE, 1, 1, 0);
    CHECK_INT(balancer_is_free(&sb->slot[0]), 1);
    worker(sb, 0, SB_BUSY, 1, 1, 0);
    CHECK_INT(balancer_is_free(&sb->slot[0]), 0);

    free(sb);
    return CHECK_DONE();
}
