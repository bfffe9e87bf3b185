/* The pool's size from its load; see include/hugd/scaler.h. */
#include "hugd/scaler.h"

#include <stddef.h>

#define MAX_STEP 32

/* Readings closer together than this share a sample, so that the ring
 * always spans a whole idle period, however often the master asks. */
static int64_t sample_every(const struct scaler_config *cfg)
{
    int64_t every = cfg->idle_ms / (SCALER_SAMPLES / 2);
    return every < 1 ? 1 : every;
}

static void record(const struct scaler_config *cfg, struct scaler_state *st,
                   const struct scaler_snapshot *now)
{
    struct scaler_sample *last = st->n ? &st->s[(st->head + st->n - 1) % SCALER_SAMPLES] : NULL;
    if (!last || now->now_ms - last->t >= sample_every(cfg)) {
        if (st->n == SCALER_SAMPLES) {
            st->head = (st->head + 1) % SCALER_SAMPLES;
            st->n--;
        }
        last = &st->s[(st->head + st->n) % SCALER_SAMPLES];
        st->n++;
        *last = (struct scaler_sample){.t = now->now_ms};
    }
    if (now->busy > last->peak)
        last->peak = now->busy;
    last->sum += now->busy;
    last->readings++;
}

/* Would one worker fewer have done over the last idle period? */
static int too_many(const struct scaler_config *cfg, const struct scaler_state *st,
                    const struct scaler_snapshot *now)
{
    int64_t since = now->now_ms - cfg->idle_ms;
    /* The history must reach back a whole period (a pool just started,
     * or just grown, has not shown yet what it needs). */
    if (!st->n || st->s[st->head].t > since)
        return 0;
    int keep = now->serving - 1 - cfg->spare;
    if (keep < 0)
        return 0;
    int64_t sum = 0, readings = 0;
    for (int k = 0; k < st->n; k++) {
        const struct scaler_sample *s = &st->s[(st->head + k) % SCALER_SAMPLES];
        if (s->t + sample_every(cfg) <= since)
            continue;
        if (s->peak > keep)
            return 0;
        sum += s->sum;
        readings += s->readings;
    }
    /* On average at most half busy: 2 * mean <= keep. */
    return readings > 0 && 2 * sum <= (int64_t)keep * readings;
}

int scaler_decide(const struct scaler_config *cfg, struct scaler_state *st,
                  const struct scaler_snapshot *now)
{
    record(cfg, st, now);
    int pool = now->serving + now->starting;
    int free = now->serving - now->busy;
    int need = 0;
    if (now->waiting > 0)
        need = now->waiting;
    else if (free < cfg->spare && pool < cfg->max)
        need = cfg->spare - free;
    if (need > 0) {
        st->last_short_ms = now->now_ms;
        need -= now->starting; /* on their way */
        int room = cfg->max - pool;
        if (need <= 0 || room <= 0)
            return 0;
        if (st->last_up_ms && now->now_ms - st->last_up_ms < cfg->step_ms)
            return 0;
        if (st->step < 1)
            st->step = 1;
        int n = st->step < need ? st->step : need;
        if (n > room)
            n = room;
        st->step = st->step * 2 > MAX_STEP ? MAX_STEP : st->step * 2;
        st->last_up_ms = now->now_ms;
        return n;
    }
    st->step = 1; /* the shortage is over: the next one starts small again */
    if (now->serving <= cfg->min || now->starting)
        return 0;
    if (now->now_ms - st->last_short_ms < cfg->idle_ms ||
        now->now_ms - st->last_up_ms < cfg->idle_ms)
        return 0;
    if (st->last_down_ms && now->now_ms - st->last_down_ms < cfg->idle_ms / 4)
        return 0;
    if (!too_many(cfg, st, now))
        return 0;
    st->last_down_ms = now->now_ms;
    return -1;
}

int scaler_over_memory(const int64_t *rss, int n, int64_t cap)
{
    int worst = -1;
    for (int i = 0; cap > 0 && i < n; i++)
        if (rss[i] > cap && (worst < 0 || rss[i] > rss[worst]))
            worst = i;
    return worst;
}
