"""Hug app for the mixed-load benchmark (tests/bench/mixed.py).

GET /fast  about MIXED_FAST_CPU_MS of CPU work (default 1 ms; 0 = none)
GET /slow  sleeps MIXED_SLOW_MS (default 300 ms): blocking I/O, no CPU
GET /      {"hello": "world"}

/fast and /slow echo their query parameter ``t`` back as {"k": "f"|"s",
"t": "..."}: the load generator (mixed.lua) puts its send time there and so
measures each request's latency by kind without per-connection state.
Serve it as ``mixed_app:__hug_wsgi__`` (or ``hugd mixed_app.py``).
"""
import os
import time

import hug

FAST_CPU_S = float(os.environ.get("MIXED_FAST_CPU_MS", "1")) / 1000.0
SLOW_S = float(os.environ.get("MIXED_SLOW_MS", "300")) / 1000.0


def _spin(secs):
    """Busy CPU (not sleep) for about secs of this process's CPU time."""
    if secs <= 0:
        return 0
    end = time.thread_time() + secs
    n = 0
    while time.thread_time() < end:
        for _ in range(200):
            n += 1
    return n


@hug.get("/")
def hello():
    return {"hello": "world"}


@hug.get("/fast")
def fast(t: hug.types.text = ""):
    _spin(FAST_CPU_S)
    return {"k": "f", "t": t}


@hug.get("/slow")
def slow(t: hug.types.text = ""):
    time.sleep(SLOW_S)
    return {"k": "s", "t": t}
