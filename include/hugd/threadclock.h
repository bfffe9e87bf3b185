/* How long a thread's current piece of work has really lasted.
 *
 * A worker's wall-clock time inside one application call overstates it
 * whenever more workers are runnable than there are CPUs: each waits its
 * turn in the kernel's run queue, and a 1 ms call can take 5 ms of wall
 * time without being slow.  The mover (mover.c) asks this instead, for the
 * worker's main thread, from the scheduler's statistics in /proc:
 *
 *   - while the thread is runnable (computing, or waiting for a CPU), the
 *     call has lasted the CPU time it used;
 *   - while it sleeps (blocking I/O, a lock, sleep()), the call has lasted
 *     its wall time less the time it spent waiting for a CPU.
 *
 * A kernel that keeps no statistics leaves the wall time. */
#ifndef HUGD_THREADCLOCK_H
#define HUGD_THREADCLOCK_H

#include <stdint.h>

struct thread_times {
    int64_t on_cpu_ns; /* time run on a CPU, since the thread began */
    int64_t waited_ns; /* time spent runnable, waiting for a CPU */
};

struct thread_clock {
    int sched_fd; /* /proc/self/task/TID/schedstat, or -1 */
    int stat_fd;  /* /proc/self/task/TID/stat, or -1 */
};

/* Open the statistics of thread tid of this process.  Where they cannot be
 * read both descriptors are -1 and every read below fails. */
void thread_clock_open(struct thread_clock *tc, long tid);
void thread_clock_close(struct thread_clock *tc);

/* 0, or -1 where the statistics cannot be read.  One pread(2). */
int thread_clock_read(const struct thread_clock *tc, struct thread_times *t);

/* 1 runnable (running or waiting for a CPU), 0 sleeping, -1 unknown. */
int thread_clock_runnable(const struct thread_clock *tc);

/* How long a call has lasted, in ms: wall_ms of wall time, base the
 * thread's times read before_ms before it began, now its times now,
 * runnable as above.  CPU time the thread may have used, or time it
 * waited for a CPU, in those before_ms is not the call's.  Never more
 * than wall_ms. */
int64_t thread_clock_lasted_ms(int64_t wall_ms, int64_t before_ms, const struct thread_times *base,
                               const struct thread_times *now, int runnable);

#endif
