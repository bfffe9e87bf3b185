/* A thread's time on and off the CPU; see include/hugd/threadclock.h. */
#include "hugd/threadclock.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void thread_clock_open(struct thread_clock *tc, long tid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/task/%ld/schedstat", tid);
    tc->sched_fd = open(path, O_RDONLY | O_CLOEXEC);
    snprintf(path, sizeof(path), "/proc/self/task/%ld/stat", tid);
    tc->stat_fd = tc->sched_fd >= 0 ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    if (tc->stat_fd < 0 && tc->sched_fd >= 0) {
        close(tc->sched_fd);
        tc->sched_fd = -1;
    }
}

void thread_clock_close(struct thread_clock *tc)
{
    if (tc->sched_fd >= 0)
        close(tc->sched_fd);
    if (tc->stat_fd >= 0)
        close(tc->stat_fd);
    tc->sched_fd = tc->stat_fd = -1;
}

/* The whole of a small /proc file, as a string: 0, or -1. */
static int read_text(int fd, char *buf, size_t size)
{
    if (fd < 0)
        return -1;
    ssize_t n = pread(fd, buf, size - 1, 0);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    return 0;
}

int thread_clock_read(const struct thread_clock *tc, struct thread_times *t)
{
    char buf[96];
    if (read_text(tc->sched_fd, buf, sizeof(buf)) < 0)
        return -1;
    /* "time on a CPU" "time waiting for one" "timeslices", in ns */
    long long on_cpu, waited, slices;
    if (sscanf(buf, "%lld %lld %lld", &on_cpu, &waited, &slices) != 3 ||
        (on_cpu == 0 && waited == 0 && slices == 0))
        return -1; /* "0 0 0": a kernel that keeps no statistics */
    t->on_cpu_ns = on_cpu;
    t->waited_ns = waited;
    return 0;
}

int thread_clock_runnable(const struct thread_clock *tc)
{
    char buf[512];
    if (read_text(tc->stat_fd, buf, sizeof(buf)) < 0)
        return -1;
    /* "tid (comm) S ...": comm may hold anything, the state follows its
     * last parenthesis. */
    const char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ' || !p[2])
        return -1;
    return p[2] == 'R';
}

int64_t thread_clock_lasted_ms(int64_t wall_ms, int64_t before_ms, const struct thread_times *base,
                               const struct thread_times *now, int runnable)
{
    int64_t lasted = wall_ms;
    if (runnable == 1)
        lasted = (now->on_cpu_ns - base->on_cpu_ns) / 1000000 - before_ms;
    else if (runnable == 0) {
        /* Waits for a CPU in the before_ms were not this call's either. */
        int64_t waited = (now->waited_ns - base->waited_ns) / 1000000 - before_ms;
        lasted = wall_ms - (waited > 0 ? waited : 0);
    }
    if (lasted > wall_ms)
        lasted = wall_ms;
    return lasted < 0 ? 0 : lasted;
}
