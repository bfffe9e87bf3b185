/* The scaler on synthetic traces: a simulated pool, a tick every 250 ms,
 * a demand (requests that want a worker at that moment) per tick. */
#include <string.h>

#include "../../src/scaler.c"
#include "check.h"

#define TICK 250

struct pool {
    struct scaler_config cfg;
    struct scaler_state st;
    int serving, starting;
    int64_t now;
    int ups, downs;       /* scale events */
    int most, least;      /* the pool's size seen since the last reset */
    int64_t first_at_max; /* when it first had cfg.max serving, or -1 */
};

static void pool_init(struct pool *p, int min, int max, int start, int spare, int64_t idle_ms)
{
    memset(p, 0, sizeof(*p));
    p->cfg = (struct scaler_config){min, max, spare, idle_ms, TICK};
    p->serving = start;
    p->now = 1000000; /* a monotonic clock is far from 0 */
    p->most = p->least = start;
    p->first_at_max = -1;
}

/* One tick at this demand: workers started last tick are up now. */
static void tick(struct pool *p, int demand)
{
    p->serving += p->starting;
    p->starting = 0;
    struct scaler_snapshot s = {
        .now_ms = p->now,
        .serving = p->serving,
        .starting = 0,
        .busy = demand < p->serving ? demand : p->serving,
        .waiting = demand > p->serving ? demand - p->serving : 0,
    };
    int d = scaler_decide(&p->cfg, &p->st, &s);
    if (d > 0) {
        p->starting += d;
        p->ups++;
    } else if (d < 0) {
        p->serving--;
        p->downs++;
    }
    if (p->serving > p->most)
        p->most = p->serving;
    if (p->serving < p->least)
        p->least = p->serving;
    if (p->serving + p->starting > p->cfg.max || p->serving < p->cfg.min)
        CHECK_INT(p->serving, -1); /* out of bounds */
    if (p->first_at_max < 0 && p->serving == p->cfg.max)
        p->first_at_max = p->now;
    p->now += TICK;
}

static void run(struct pool *p, int demand, int64_t ms)
{
    for (int64_t t = 0; t < ms; t += TICK)
        tick(p, demand);
}

/* From 1 worker (min 1, max 4, idle 2 s): 8 requests at once for 5 s,
 * then nothing. */
static void burst(void)
{
    struct pool p;
    pool_init(&p, 1, 4, 1, 0, 2000);
    run(&p, 0, 3000);
    CHECK_INT(p.ups + p.downs, 0);
    int64_t t0 = p.now;
    run(&p, 8, 5000);
    CHECK_INT(p.serving, 4);
    CHECK_INT(p.first_at_max - t0 <= 1000, 1); /* 1, then 2: four within a second */
    CHECK_INT(p.ups, 2);
    CHECK_INT(p.downs, 0);
    int64_t t1 = p.now;
    int64_t back = -1;
    for (int64_t t = 0; t < 10000 && back < 0; t += TICK) {
        tick(&p, 0);
        if (p.serving == 1)
            back = p.now - t1;
    }
    CHECK_INT(back > 0 && back <= 4000, 1); /* an idle period, then a step each quarter */
    CHECK_INT(back >= 2000, 1);             /* not before a whole idle period */
    CHECK_INT(p.downs, 3);
}

/* Demand growing by one every 2 s: the pool follows, never shrinks. */
static void ramp(void)
{
    struct pool p;
    pool_init(&p, 1, 8, 1, 0, 2000);
    for (int d = 1; d <= 8; d++) {
        run(&p, d, 2000);
        CHECK_INT(p.serving >= d, 1);
    }
    CHECK_INT(p.downs, 0);
    CHECK_INT(p.serving, 8);
}

/* A steady load that needs the pool it has, or a little less, moves
 * nothing for 20 s once the pool fits it. */
static void steady_at_the_threshold(void)
{
    struct pool p;
    pool_init(&p, 1, 4, 1, 0, 2000);
    /* Exactly two requests all the time: one step up, then nothing. */
    run(&p, 2, 20000);
    CHECK_INT(p.ups + p.downs <= 2, 1);
    CHECK_INT(p.serving, 2);
    /* Between 2 and 3 wanted, on 3 workers: neither "work waits" nor
     * "half of one fewer would do". */
    pool_init(&p, 1, 4, 3, 0, 2000);
    for (int64_t t = 0; t < 20000; t += TICK)
        tick(&p, (t / TICK) % 2 ? 3 : 2);
    CHECK_INT(p.ups + p.downs, 0);
    /* A steady 2 on 3 workers: one fewer would fit exactly, with nothing
     * to spare for the next wobble; it stays. */
    pool_init(&p, 1, 4, 3, 0, 2000);
    run(&p, 2, 20000);
    CHECK_INT(p.ups + p.downs, 0);
    /* Between 1 and 2 wanted, on 2 workers (a down would take it to 1,
     * where work waits half the time): at most one round trip. */
    pool_init(&p, 1, 4, 2, 0, 2000);
    for (int64_t t = 0; t < 20000; t += TICK)
        tick(&p, (t / TICK) % 2 ? 2 : 1);
    CHECK_INT(p.ups + p.downs, 0);
}

/* Idle from 4: down to the minimum, one at a time, the first after a whole
 * idle period and then at most one per quarter period. */
static void idle(void)
{
    struct pool p;
    pool_init(&p, 2, 4, 4, 0, 2000);
    int64_t t0 = p.now, last = -1;
    int64_t gaps_ok = 1;
    for (int64_t t = 0; t < 15000; t += TICK) {
        int before = p.serving;
        tick(&p, 0);
        if (p.serving < before) {
            CHECK_INT(before - p.serving, 1);
            if (last < 0)
                CHECK_INT(p.now - TICK - t0 >= 2000, 1);
            else
                gaps_ok &= p.now - last >= 500;
            last = p.now;
        }
    }
    CHECK_INT(gaps_ok, 1);
    CHECK_INT(p.serving, 2);
    CHECK_INT(p.downs, 2);
}

/* Every worker in a slow request and nothing queued: starting more would
 * not serve anyone sooner, and none is idle. */
static void all_busy_nothing_waits(void)
{
    struct pool p;
    pool_init(&p, 1, 8, 4, 0, 2000);
    run(&p, 4, 30000);
    CHECK_INT(p.ups + p.downs, 0);
    CHECK_INT(p.serving, 4);
}

/* spare = 2: at least two free workers while below the maximum. */
static void spares(void)
{
    struct pool p;
    pool_init(&p, 1, 6, 2, 2, 2000);
    run(&p, 1, 1000);
    CHECK_INT(p.serving, 3);
    run(&p, 3, 2000);
    CHECK_INT(p.serving, 5);
    run(&p, 6, 2000);
    CHECK_INT(p.serving, 6); /* the maximum: spares give way */
    run(&p, 0, 10000);
    CHECK_INT(p.serving, 2); /* idle: the spares are all that is left */
}

/* A shortage that lasts grows the steps: 1, 2, 4, 8 ... */
static void doubling_steps(void)
{
    struct pool p;
    pool_init(&p, 1, 64, 1, 0, 2000);
    run(&p, 64, 250);
    CHECK_INT(p.starting, 1);
    run(&p, 64, 250);
    CHECK_INT(p.starting, 2);
    run(&p, 64, 250);
    CHECK_INT(p.starting, 4);
    run(&p, 64, 250);
    CHECK_INT(p.starting, 8);
    run(&p, 64, 3000);
    CHECK_INT(p.serving, 64);
}

/* Workers still starting count: no second step for the same shortage. */
static void starting_counts(void)
{
    struct scaler_config cfg = {1, 8, 0, 2000, TICK};
    struct scaler_state st;
    memset(&st, 0, sizeof(st));
    struct scaler_snapshot s = {.now_ms = 5000, .serving = 1, .busy = 1, .waiting = 2};
    CHECK_INT(scaler_decide(&cfg, &st, &s), 1);
    s.now_ms += TICK;
    s.starting = 2;
    CHECK_INT(scaler_decide(&cfg, &st, &s), 0);
    s.now_ms += TICK;
    s.starting = 1;
    CHECK_INT(scaler_decide(&cfg, &st, &s), 1);
}

/* A leak: each worker's memory grows; the one past the cap is replaced,
 * the biggest first, one at a time. */
static void memory_growth(void)
{
    int64_t rss[4] = {50, 60, 70, 80};
    int replaced[4] = {0};
    int order[8], n = 0;
    for (int t = 0; t < 40; t++) {
        for (int i = 0; i < 4; i++)
            rss[i] += 10 * (i + 1);
        int i = scaler_over_memory(rss, 4, 500);
        if (i >= 0) {
            CHECK_INT(rss[i] > 500, 1);
            for (int j = 0; j < 4; j++)
                CHECK_INT(rss[j] > rss[i], 0);
            if (n < 8)
                order[n++] = i;
            replaced[i]++;
            rss[i] = 50; /* its replacement starts small */
        }
    }
    CHECK_INT(n > 0 && order[0] == 3, 1);
    CHECK_INT(replaced[3] >= replaced[0], 1);
    int64_t none[2] = {100, 200};
    CHECK_INT(scaler_over_memory(none, 2, 500), -1);
    CHECK_INT(scaler_over_memory(none, 2, 0), -1); /* 0: no cap */
}

int main(void)
{
    burst();
    ramp();
    steady_at_the_threshold();
    idle();
    all_busy_nothing_waits();
    spares();
    doubling_steps();
    starting_counts();
    memory_growth();
    return CHECK_DONE();
}
