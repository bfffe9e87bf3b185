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
int balancer_pick(const struct scoreboard *sb, const int *live, int nlive, int start);

#endif
