/* Choosing the worker for a new connection: a pure function of the
 * scoreboard, so it is tested without processes.
 *
 * A worker is free when the master may use it, it is not inside the
 * application, it holds no more response bytes for slow readers than
 * max_pending_output, and every connection handed to it has been picked
 * up.  Free
 * workers win; among them the one owning the fewest connections; ties go to
 * the first at or after slot `start` (the caller rotates it so that equal
 * workers share the load).  -1 means nobody is free: the caller queues the
 * connection and waits for a worker to report free (late binding).
 *
 * Only the nlive slots in `live` (ascending slot numbers, each < nslots) are
 * looked at: the board has room for every worker there may ever be, and a
 * scan of all of it for each connection cost microseconds where the few
 * live slots cost nanoseconds. */
#ifndef HUGD_BALANCER_H
#define HUGD_BALANCER_H

#include "hugd/scoreboard.h"

int balancer_is_free(const struct sb_slot *s);

/* Is the worker in a call that has lasted slow_ms?  Its mover's judgement
 * where it has one (sb_slot.judges), else the wall time since it began. */
int balancer_in_long_call(const struct sb_slot *s, int64_t now_ms, int64_t slow_ms);
int balancer_pick(const struct scoreboard *sb, const int *live, int nlive, int start);

/* The worker that owns the fewest connections, busy or not, among those
 * that take connections and are not in a call that has lasted slow_ms
 * (balancer_in_long_call); prefer on a tie.  A keep-alive
 * connection stays where it is placed, so placing it by who happened to
 * report first would leave some workers with more clients than others,
 * and those clients waiting longer for every request.  -1: none. */
int balancer_fewest(const struct scoreboard *sb, const int *live, int nlive, int prefer,
                    int64_t now_ms, int64_t slow_ms);

/* i, unless another worker that is not in a long call (balancer_fewest)
 * would still own fewer connections than i once it had this one; then
 * that one, busy or not.  For a connection held for lack of a free worker
 * when i reports free: under connection-per-request load counts stay low
 * and the worker that asked wins, as late binding would have it. */
int balancer_rather(const struct scoreboard *sb, const int *live, int nlive, int i, int64_t now_ms,
                    int64_t slow_ms);

#endif
