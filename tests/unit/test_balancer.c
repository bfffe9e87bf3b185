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

/* Rotation over equal free workers: which slot each pick gets when the
 * caller moves start past the last pick, as the master does. */
static void rotate(const struct scoreboard *sb, const int *live, int nlive, int start,
                   const int *want, int n)
{
    for (int k = 0; k < n; k++) {
        int i = balancer_pick(sb, live, nlive, start);
        CHECK_INT(i, want[k]);
        start = (i + 1) % sb->nslots;
    }
}

/* Where a queued connection goes when a worker reports free. */
static void fewest(void)
{
    struct scoreboard *sb = board(8);
    const int live[] = {0, 1, 2, 3};
    const int64_t now = 100000, slow = 5;
    /* Owned: 3, 2, 2, 5 (sent - closed). */
    worker(sb, 0, SB_BUSY, 3, 3, 0);
    worker(sb, 1, SB_BUSY, 4, 4, 2);
    worker(sb, 2, SB_IDLE, 2, 2, 0);
    worker(sb, 3, SB_IDLE, 5, 5, 0);
    atomic_store(&sb->slot[0].busy_since_ms, now - 1);
    atomic_store(&sb->slot[1].busy_since_ms, now - 1);
    /* The one that asked (3) owns the most: the first with the fewest,
     * busy in a short call or not, takes it. */
    CHECK_INT(balancer_fewest(sb, live, 4, 3, now, slow), 1);
    /* The one that asked wins a tie. */
    CHECK_INT(balancer_fewest(sb, live, 4, 2, now, slow), 2);
    /* Nobody else is emptier: the one that asked. */
    worker(sb, 3, SB_IDLE, 2, 2, 0);
    CHECK_INT(balancer_fewest(sb, live, 4, 3, now, slow), 3);
    /* A worker in a call that has lasted `slow` takes nothing. */
    worker(sb, 1, SB_BUSY, 1, 1, 0);
    CHECK_INT(balancer_fewest(sb, live, 4, 3, now, slow), 1);
    atomic_store(&sb->slot[1].busy_since_ms, now - slow);
    CHECK_INT(balancer_fewest(sb, live, 4, 3, now, slow), 3);
    /* Nor one out of service, draining, booting, or full. */
    worker(sb, 0, SB_IDLE, 0, 0, 0);
    atomic_store(&sb->slot[0].busy_since_ms, 0);
    atomic_store(&sb->slot[0].accepting, 0);
    CHECK_INT(balancer_fewest(sb, live, 4, 3, now, slow), 3);
    worker(sb, 0, SB_DRAINING, 0, 0, 0);
    CHECK_INT(balancer_fewest(sb, live, 4, 3, now, slow), 3);
    worker(sb, 0, SB_BOOTING, 0, 0, 0);
    CHECK_INT(balancer_fewest(sb, live, 4, 3, now, slow), 3);
    worker(sb, 0, SB_IDLE, 0, 0, 0);
    atomic_store(&sb->slot[0].full, 1);
    CHECK_INT(balancer_fewest(sb, live, 4, 3, now, slow), 3);
    atomic_store(&sb->slot[0].full, 0);
    atomic_store(&sb->slot[0].output_full, 1);
    CHECK_INT(balancer_fewest(sb, live, 4, 3, now, slow), 3);
    atomic_store(&sb->slot[0].output_full, 0);
    CHECK_INT(balancer_fewest(sb, live, 4, 3, now, slow), 0);
    /* A held connection when worker 2 reports free: 2, unless one not in
     * a long call would own fewer even after taking it. */
    for (int i = 0; i < 4; i++) {
        worker(sb, i, SB_BUSY, 8, 8, 0);
        atomic_store(&sb->slot[i].busy_since_ms, now - 1);
    }
    worker(sb, 2, SB_IDLE, 9, 9, 0);
    atomic_store(&sb->slot[2].busy_since_ms, 0);
    CHECK_INT(balancer_rather(sb, live, 4, 2, now, slow), 2); /* 9 against 8: free wins */
    worker(sb, 2, SB_IDLE, 10, 10, 0);
    CHECK_INT(balancer_rather(sb, live, 4, 2, now, slow), 0); /* 10 against 8 */
    atomic_store(&sb->slot[0].busy_since_ms, now - slow);     /* 0 is in a long call */
    CHECK_INT(balancer_rather(sb, live, 4, 2, now, slow), 1);
    /* Where the worker's mover judges its calls, its judgement counts,
     * not the wall time: 1 in a call 50 ms old but not found slow (it
     * waited for a CPU) takes it; once found slow, 0 (8, first of the
     * rest). */
    atomic_store(&sb->slot[0].busy_since_ms, 0);
    worker(sb, 1, SB_BUSY, 5, 5, 0);
    atomic_store(&sb->slot[1].busy_since_ms, now - 50);
    atomic_store(&sb->slot[1].judges, 1);
    worker(sb, 3, SB_BUSY, 8, 8, 0);
    CHECK_INT(balancer_in_long_call(&sb->slot[1], now, slow), 0);
    CHECK_INT(balancer_rather(sb, live, 4, 2, now, slow), 1);
    atomic_store(&sb->slot[1].slow_call_ms, now - 50);
    CHECK_INT(balancer_in_long_call(&sb->slot[1], now, slow), 1);
    CHECK_INT(balancer_rather(sb, live, 4, 2, now, slow), 0);
    /* A judgement of an earlier call says nothing of this one. */
    atomic_store(&sb->slot[1].busy_since_ms, now - 49);
    CHECK_INT(balancer_in_long_call(&sb->slot[1], now, slow), 0);
    /* Not in the application: never in a long call. */
    atomic_store(&sb->slot[1].busy_since_ms, 0);
    CHECK_INT(balancer_in_long_call(&sb->slot[1], now, slow), 0);
    atomic_store(&sb->slot[1].judges, 0);
    worker(sb, 1, SB_BUSY, 8, 8, 0);
    /* Only live slots are looked at. */
    worker(sb, 6, SB_IDLE, 0, 0, 0);
    CHECK_INT(balancer_fewest(sb, live, 3, 2, now, slow), 0);
    CHECK_INT(balancer_fewest(sb, live, 0, 2, now, slow), -1);
    free(sb);
}

static void live_slots(void)
{
    struct scoreboard *sb = board(1024);
    const int live[] = {1, 5, 900};

    /* No live slot: nothing is looked at, however free the board looks. */
    worker(sb, 0, SB_IDLE, 0, 0, 0);
    CHECK_INT(balancer_pick(sb, live, 0, 0), -1);
    CHECK_INT(balancer_pick(sb, NULL, 0, 0), -1);
    /* Slot 0 is free but not live: the live ones are not free yet. */
    CHECK_INT(balancer_pick(sb, live, 3, 0), -1);

    /* Holes in the slot range: only live slots count, ties rotate through
     * them in slot order, from any start (in a hole, past the end). */
    for (int k = 0; k < 3; k++)
        worker(sb, live[k], SB_IDLE, 2, 2, 1);
    rotate(sb, live, 3, 0, (const int[]){1, 5, 900, 1, 5, 900, 1}, 7);
    rotate(sb, live, 3, 2, (const int[]){5, 900, 1}, 3);
    rotate(sb, live, 3, 6, (const int[]){900, 1, 5}, 3);
    rotate(sb, live, 3, 901, (const int[]){1, 5, 900}, 3);
    rotate(sb, live, 3, 1023, (const int[]){1}, 1);
    rotate(sb, live, 3, -1, (const int[]){1}, 1);

    /* The least busy wins wherever it is in the rotation. */
    worker(sb, 900, SB_IDLE, 2, 2, 2); /* 0 connections */
    CHECK_INT(balancer_pick(sb, live, 3, 0), 900);
    CHECK_INT(balancer_pick(sb, live, 3, 901), 900);
    worker(sb, 900, SB_BUSY, 2, 2, 2);
    CHECK_INT(balancer_pick(sb, live, 3, 900), 1);

    /* One live slot, anywhere. */
    const int last[] = {1023};
    worker(sb, 1023, SB_IDLE, 0, 0, 0);
    rotate(sb, last, 1, 0, (const int[]){1023, 1023}, 2);
    worker(sb, 1023, SB_DRAINING, 0, 0, 0);
    CHECK_INT(balancer_pick(sb, last, 1, 0), -1);
    free(sb);
}

int main(void)
{
    static const int all4[] = {0, 1, 2, 3};
    struct scoreboard *sb = board(4);
    /* No worker at all, or only empty slots. */
    CHECK_INT(balancer_pick(sb, all4, 4, 0), -1);

    /* A booting worker is not free yet. */
    worker(sb, 0, SB_BOOTING, 0, 0, 0);
    CHECK_INT(balancer_pick(sb, all4, 4, 0), -1);

    /* Idle with nothing pending: free. */
    worker(sb, 0, SB_IDLE, 0, 0, 0);
    CHECK_INT(balancer_pick(sb, all4, 4, 0), 0);

    /* Inside the app: not free, the other one wins. */
    worker(sb, 0, SB_BUSY, 5, 5, 4);
    worker(sb, 1, SB_IDLE, 9, 9, 2); /* 7 keep-alive connections, still free */
    CHECK_INT(balancer_pick(sb, all4, 4, 0), 1);

    /* Handed a connection it has not picked up yet: not free. */
    worker(sb, 1, SB_IDLE, 10, 9, 2);
    CHECK_INT(balancer_pick(sb, all4, 4, 0), -1);

    /* Among free workers, the fewest connections wins, wherever it is. */
    worker(sb, 0, SB_IDLE, 5, 5, 1); /* 4 */
    worker(sb, 1, SB_IDLE, 9, 9, 2); /* 7 */
    worker(sb, 2, SB_IDLE, 3, 3, 1); /* 2 */
    worker(sb, 3, SB_IDLE, 8, 8, 5); /* 3 */
    CHECK_INT(balancer_pick(sb, all4, 4, 0), 2);
    CHECK_INT(balancer_pick(sb, all4, 4, 3), 2);

    /* Ties go to the first at or after start, so equal workers take turns. */
    for (int i = 0; i < 4; i++)
        worker(sb, i, SB_IDLE, 2, 2, 1);
    CHECK_INT(balancer_pick(sb, all4, 4, 0), 0);
    CHECK_INT(balancer_pick(sb, all4, 4, 1), 1);
    CHECK_INT(balancer_pick(sb, all4, 4, 3), 3);
    CHECK_INT(balancer_pick(sb, all4, 4, 7), 0); /* out of range start is clamped */

    /* A worker the master took out of service (retiring, timed out). */
    atomic_store(&sb->slot[1].accepting, 0);
    CHECK_INT(balancer_pick(sb, all4, 4, 1), 2);

    /* Draining workers take nothing. */
    for (int i = 0; i < 4; i++)
        worker(sb, i, SB_DRAINING, 0, 0, 0);
    CHECK_INT(balancer_pick(sb, all4, 4, 0), -1);

    /* The is-free rule itself. */
    worker(sb, 0, SB_IDLE, 1, 1, 0);
    CHECK_INT(balancer_is_free(&sb->slot[0]), 1);
    worker(sb, 0, SB_BUSY, 1, 1, 0);
    CHECK_INT(balancer_is_free(&sb->slot[0]), 0);
    /* Idle, but holding too much output for slow readers. */
    worker(sb, 0, SB_IDLE, 1, 1, 0);
    atomic_store(&sb->slot[0].output_full, 1);
    CHECK_INT(balancer_is_free(&sb->slot[0]), 0);
    atomic_store(&sb->slot[0].output_full, 0);

    free(sb);
    live_slots();
    fewest();
    return CHECK_DONE();
}
