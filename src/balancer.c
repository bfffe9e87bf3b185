/* Least-busy choice; see include/hugd/balancer.h. */
#include "hugd/balancer.h"

int balancer_is_free(const struct sb_slot *s)
{
    if (!atomic_load(&s->accepting) || atomic_load(&s->state) != SB_IDLE || atomic_load(&s->full) ||
        atomic_load(&s->output_full))
        return 0;
    return atomic_load(&s->sent) == atomic_load(&s->received);
}

int balancer_pick(const struct scoreboard *sb, const int *live, int nlive, int start)
{
    if (nlive <= 0)
        return -1;
    /* Where the rotation starts: the first live slot at or after start,
     * else (start past the last one) the first live slot. */
    int p = 0;
    while (p < nlive && live[p] < start)
        p++;
    if (p == nlive)
        p = 0;
    int best = -1;
    uint64_t best_conns = 0;
    for (int k = 0; k < nlive; k++) {
        int i = live[p + k < nlive ? p + k : p + k - nlive];
        const struct sb_slot *s = &sb->slot[i];
        if (!balancer_is_free(s))
            continue;
        uint64_t conns = atomic_load(&s->sent) - atomic_load(&s->closed);
        if (best < 0 || conns < best_conns) {
            best = i;
            best_conns = conns;
            if (conns == 0)
                break; /* nobody beats an empty free worker */
        }
    }
    return best;
}
