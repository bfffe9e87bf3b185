/* The slow-request log; see include/hugd/slowlog.h. */
/* Python.h first, as it asks. */
#include <Python.h>

#include "hugd/slowlog.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hugd/log.h"

static struct sb_slot *slot;
static int64_t after_ms;
static unsigned long main_ident;

/* The main thread's stack as traceback.format_stack() gives it, malloc'd;
 * NULL if Python could not say.  Needs the GIL. */
static char *main_stack(void)
{
    char *out = NULL;
    PyObject *sys = NULL, *tb = NULL, *frames = NULL, *key = NULL, *lines = NULL, *sep = NULL,
             *text = NULL;
    if (!(sys = PyImport_ImportModule("sys")) || !(tb = PyImport_ImportModule("traceback")) ||
        !(frames = PyObject_CallMethod(sys, "_current_frames", NULL)) ||
        !(key = PyLong_FromUnsignedLong(main_ident)))
        goto done;
    PyObject *frame = PyDict_GetItemWithError(frames, key); /* borrowed */
    if (!frame)
        goto done; /* between calls, or an error */
    if (!(lines = PyObject_CallMethod(tb, "format_stack", "O", frame)) ||
        !(sep = PyUnicode_FromString("")) || !(text = PyUnicode_Join(sep, lines)))
        goto done;
    const char *s = PyUnicode_AsUTF8(text);
    if (s)
        out = strdup(s);
done:
    if (PyErr_Occurred())
        PyErr_Clear();
    Py_XDECREF(text);
    Py_XDECREF(sep);
    Py_XDECREF(lines);
    Py_XDECREF(key);
    Py_XDECREF(frames);
    Py_XDECREF(tb);
    Py_XDECREF(sys);
    return out;
}

static void report(int64_t since, int64_t age)
{
    char req[sizeof(slot->request)];
    memcpy(req, slot->request, sizeof(req));
    req[sizeof(req) - 1] = '\0';
    PyGILState_STATE g = PyGILState_Ensure();
    /* Holding the GIL, the main thread is between bytecodes or in C: if
     * it is still in the same call, its frame is where that call is. */
    char *stack = atomic_load(&slot->busy_since_ms) == since ? main_stack() : NULL;
    PyGILState_Release(g);
    if (atomic_load(&slot->busy_since_ms) != since && !stack)
        return; /* it finished while we waited for the GIL */
    log_warnx("slow request: \"%s\" running for %.1f s (slow_request_log %g s); it is at:\n%s", req,
              age / 1000.0, after_ms / 1000.0,
              stack ? stack : "  (no Python frame: inside hugd or a C call)\n");
    free(stack);
}

static void *run(void *arg)
{
    (void)arg;
    /* A tenth of the threshold, between 10 ms and 1 s: noticed soon after
     * it passes, cheap while nothing is slow. */
    int64_t tick = after_ms / 10 < 10 ? 10 : after_ms / 10 > 1000 ? 1000 : after_ms / 10;
    struct timespec ts = {.tv_sec = tick / 1000, .tv_nsec = (tick % 1000) * 1000000L};
    int64_t logged = 0;
    for (;;) {
        clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
        int64_t since = atomic_load(&slot->busy_since_ms);
        if (!since || since == logged || atomic_load(&slot->state) != SB_BUSY)
            continue;
        int64_t age = monotonic_ms() - since;
        if (age < after_ms)
            continue;
        logged = since; /* once per call */
        report(since, age);
    }
    return NULL;
}

int slowlog_start(struct sb_slot *s, double after)
{
    if (after <= 0)
        return 0;
    slot = s;
    after_ms = (int64_t)(after * 1000);
    if (after_ms < 1)
        after_ms = 1;
    main_ident = PyThread_get_thread_ident();
    pthread_t t;
    sigset_t all, old;
    sigfillset(&all);
    /* Every signal stays with the main thread. */
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(&t, NULL, run, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e) {
        errno = e;
        return -1;
    }
    pthread_detach(t);
    return 0;
}
