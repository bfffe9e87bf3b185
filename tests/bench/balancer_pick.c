/* Cost of one balancer_pick on the master's 1024-slot board with 4 live
 * workers, each free and owning keep-alive connections (so no pick stops
 * early at an empty worker), rotating as the master does.
 *
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude tests/bench/balancer_pick.c -o /tmp/balancer_pick
 *   /tmp/balancer_pick [ITERATIONS]
 * or, counting instructions:
 *   valgrind --tool=callgrind --toggle-collect=balancer_pick /tmp/balancer_pick 10000 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../../src/balancer.c"
#include "hugd/config.h"

int main(int argc, char **argv)
{
    int n = HUGD_MAX_WORKERS;
    struct scoreboard *sb = calloc(1, sizeof(*sb) + (size_t)n * sizeof(struct sb_slot));
    if (!sb)
        return 1;
    sb->nslots = n;
    static const int live[] = {0, 1, 2, 3};
    for (int i = 0; i < 4; i++) {
        atomic_store(&sb->slot[i].accepting, 1);
        atomic_store(&sb->slot[i].state, SB_IDLE);
        atomic_store(&sb->slot[i].sent, 3);
        atomic_store(&sb->slot[i].received, 3);
        atomic_store(&sb->slot[i].closed, 1);
    }
    long iters = argc > 1 ? atol(argv[1]) : 20000000, sum = 0;
    int rr = 0;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long k = 0; k < iters; k++) {
        int i = balancer_pick(sb, live, 4, rr);
        sum += i;
        rr = (i + 1) % n;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / iters;
    printf("%.1f ns per pick (checksum %ld)\n", ns, sum);
    free(sb);
    return 0;
}
