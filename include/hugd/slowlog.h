/* --slow-request-log: where a request that runs long is, written to the
 * error log once per request, while it goes on.
 *
 * A thread of the worker watches the worker's scoreboard slot.  Once the
 * main thread has been inside one call into the application for longer
 * than the threshold, the thread takes the GIL the ordinary way (the
 * interpreter hands it over between bytecodes, or at once while the
 * application waits in C with it released) and reads the main thread's
 * frame from sys._current_frames().  Nothing is sent into the
 * application's thread: a signal would break its blocking C calls. */
#ifndef HUGD_SLOWLOG_H
#define HUGD_SLOWLOG_H

#include "hugd/scoreboard.h"

/* Call from the thread that runs the application, with the GIL held.
 * after: seconds; 0 does nothing.  -1 (errno) if the thread can't start. */
int slowlog_start(struct sb_slot *slot, double after);

#endif
