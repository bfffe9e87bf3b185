/* Least-busy choice; see include/hugd/balancer.h. */
#include "hugd/balancer.h"

int balancer_is_free(const struct sb_slot *s)
{
    if (!atomic_load(&s->accepting) || atomic_load(&s->state) != SB_IDLE)
        return 0;
    return atomic_load(&s->sent) == atomic_load(&s->received);
}

int balancer_pick(const struct scoreboard *sb, int start)
{
    int best = -1;
    uint64_t best_conns = 0;
    int n = sb->nslots;
    if (n <= 0)
        return -1;
    if (start < 0 || start >= n)
        start = 0;
    for (int k = 0; k < n; k++) {
        int i = (start + k) % n;
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
