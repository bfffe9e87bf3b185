/* How long a call has lasted: the rule on made-up times, then the
 * statistics of real threads (one computing, one asleep). */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../../src/threadclock.c"
#include "check.h"

#define MS 1000000LL

static void rule(void)
{
    struct thread_times base = {.on_cpu_ns = 100 * MS, .waited_ns = 50 * MS};
    /* Runnable: what it computed.  1 ms of CPU in 5 ms of wall time is a
     * short call that waited for a CPU. */
    struct thread_times now = {.on_cpu_ns = 101 * MS, .waited_ns = 54 * MS};
    CHECK_INT(thread_clock_lasted_ms(5, 0, &base, &now, 1), 1);
    /* A long computation counts in full. */
    now = (struct thread_times){.on_cpu_ns = 130 * MS, .waited_ns = 52 * MS};
    CHECK_INT(thread_clock_lasted_ms(32, 0, &base, &now, 1), 30);
    /* The base was read 8 ms before the call began, while the thread ran
     * an earlier one: that CPU time is not this call's. */
    CHECK_INT(thread_clock_lasted_ms(32, 8, &base, &now, 1), 22);
    CHECK_INT(thread_clock_lasted_ms(32, 40, &base, &now, 1), 0);
    /* Asleep: wall time less its waits for a CPU (a 300 ms sleep lasts). */
    now = (struct thread_times){.on_cpu_ns = 100 * MS + 200000, .waited_ns = 53 * MS};
    CHECK_INT(thread_clock_lasted_ms(40, 0, &base, &now, 0), 37);
    CHECK_INT(thread_clock_lasted_ms(300, 0, &base, &now, 0), 297);
    /* The base read 2 ms before the call: up to 2 ms of those waits came
     * before it (a sleeping call is not made shorter by them). */
    CHECK_INT(thread_clock_lasted_ms(40, 2, &base, &now, 0), 39);
    CHECK_INT(thread_clock_lasted_ms(40, 5, &base, &now, 0), 40);
    /* Unknown state: the wall time. */
    CHECK_INT(thread_clock_lasted_ms(40, 0, &base, &now, -1), 40);
    /* Never more than the wall time (the base came from a tick before the
     * call began), never less than 0. */
    now = (struct thread_times){.on_cpu_ns = 120 * MS, .waited_ns = 50 * MS};
    CHECK_INT(thread_clock_lasted_ms(7, 0, &base, &now, 1), 7);
    now = (struct thread_times){.on_cpu_ns = 100 * MS, .waited_ns = 90 * MS};
    CHECK_INT(thread_clock_lasted_ms(7, 0, &base, &now, 0), 0);
}

static _Atomic long sleeper_tid;
static _Atomic int sleeper_go;

static void *sleeper(void *arg)
{
    (void)arg;
    atomic_store(&sleeper_tid, (long)syscall(SYS_gettid));
    while (!atomic_load(&sleeper_go)) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void real_threads(void)
{
    struct thread_clock self;
    thread_clock_open(&self, (long)syscall(SYS_gettid));
    if (self.sched_fd < 0) {
        printf("no scheduler statistics in /proc: real threads not checked\n");
        thread_clock_close(&self);
        return;
    }
    /* This thread runs while it asks. */
    CHECK_INT(thread_clock_runnable(&self), 1);
    struct thread_times a, b;
    CHECK_INT(thread_clock_read(&self, &a), 0);
    int64_t end = now_ms() + 30;
    volatile unsigned long spin = 0;
    while (now_ms() < end)
        spin++;
    CHECK_INT(thread_clock_read(&self, &b), 0);
    /* 30 ms of wall time, most of it on a CPU (a loaded machine may take
     * some away: at least a third). */
    int64_t ran = (b.on_cpu_ns - a.on_cpu_ns) / MS;
    CHECK_INT(ran >= 10 && ran <= 31, 1);
    CHECK_INT(b.waited_ns >= a.waited_ns, 1);
    thread_clock_close(&self);
    CHECK_INT(self.sched_fd, -1);
    CHECK_INT(thread_clock_read(&self, &a), -1);
    CHECK_INT(thread_clock_runnable(&self), -1);

    /* A thread in nanosleep is seen asleep (it wakes every millisecond, so
     * ask until it is caught sleeping, a few tries at most). */
    pthread_t t;
    pthread_create(&t, NULL, sleeper, NULL);
    while (!atomic_load(&sleeper_tid))
        sched_yield();
    struct thread_clock other;
    thread_clock_open(&other, atomic_load(&sleeper_tid));
    int asleep = 0;
    for (int i = 0; i < 1000 && !asleep; i++)
        asleep = thread_clock_runnable(&other) == 0;
    CHECK_INT(asleep, 1);
    CHECK_INT(thread_clock_read(&other, &a), 0);
    /* It has mostly slept: a little CPU time, however long it has lived. */
    CHECK_INT(a.on_cpu_ns > 0 && a.on_cpu_ns < 1000 * MS, 1);
    atomic_store(&sleeper_go, 1);
    pthread_join(t, NULL);
    thread_clock_close(&other);
}

int main(void)
{
    rule();
    real_threads();
    return CHECK_DONE();
}
