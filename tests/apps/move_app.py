"""Routes for the connection-moving tests; each answers with the worker pid.

/fast               at once
/slow?s=S&mark=F    creates the file F when it starts (so a test can wait on
                    it rather than guess), then sleeps S seconds
/poll?ms=N          calls poll(NULL, 0, N) from C, as an extension would:
                    answers "<rc> <errno> <elapsed ms> <pid>"
/seq                "<n> <pid>": n counts this process's /seq requests
"""
import ctypes
import itertools
import os
import time
from urllib.parse import parse_qs

_libc = ctypes.CDLL(None, use_errno=True)
_libc.poll.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int]
_seq = itertools.count()


def application(environ, start_response):
    path = environ["PATH_INFO"]
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    pid = os.getpid()
    if path == "/slow":
        if "mark" in q:
            # Whole or not at all: the test reads it as soon as it exists.
            with open(q["mark"] + ".tmp", "w") as f:
                f.write(str(pid))
            os.rename(q["mark"] + ".tmp", q["mark"])
        time.sleep(float(q.get("s", "1")))
        body = f"{pid}"
    elif path == "/poll":
        t0 = time.monotonic()
        rc = _libc.poll(None, 0, int(q.get("ms", "300")))
        err = ctypes.get_errno()
        body = f"{rc} {err} {(time.monotonic() - t0) * 1000:.0f} {pid}"
    elif path == "/seq":
        body = f"{next(_seq)} {pid}"
    else:
        body = f"{pid}"
    data = body.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]
