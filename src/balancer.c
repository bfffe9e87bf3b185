/* Least-busy choice; see include/hugd/balancer.h. */
#include "hugd/balancer.h"

int balancer_in_long_call(const struct sb_slot *s, int64_t now_ms, int64_t slow_ms)
{
    int64_t since = atomic_load(&s->busy_since_ms);
    if (!since)
        return 0;
    if (atomic_load(&s->judges))
        return atomic_load(&s->slow_call_ms) == since;
    return now_ms - since >= slow_ms;
}

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
        uint64_t conns = sb_owned(s);
        if (best < 0 || conns < best_conns) {
            best = i;
            best_conns = conns;
            if (conns == 0)
                break; /* nobody beats an empty free worker */
        }
    }
    return best;
}

int balancer_fewest(const struct scoreboard *sb, const int *live, int nlive, int prefer,
                    int64_t now_ms, int64_t slow_ms)
{
    int best = -1;
    uint64_t best_conns = 0;
    for (int k = 0; k < nlive; k++) {
        int i = live[k];
        const struct sb_slot *s = &sb->slot[i];
        int st = atomic_load(&s->state);
        if (!atomic_load(&s->accepting) || atomic_load(&s->full) || atomic_load(&s->output_full) ||
            (st != SB_IDLE && st != SB_BUSY && st != SB_QUEUED))
            continue;
        if (balancer_in_long_call(s, now_ms, slow_ms))
            continue; /* its own connections already wait */
        uint64_t conns = sb_owned(s);
        if (best < 0 || conns < best_conns || (conns == best_conns && i == prefer)) {
            best = i;
            best_conns = conns;
        }
    }
    return best;
}

int balancer_rather(const struct scoreboard *sb, const int *live, int nlive, int i, int64_t now_ms,
                    int64_t slow_ms)
{
    int j = balancer_fewest(sb, live, nlive, i, now_ms, slow_ms);
    if (j >= 0 && sb_owned(&sb->slot[j]) + 1 < sb_owned(&sb->slot[i]))
        return j;
    return i;
}
