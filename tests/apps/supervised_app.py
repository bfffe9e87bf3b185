"""WSGI app for the supervision tests (tests/test_supervision.py).

Every answer is '<VERSION> <pid>\\n', so a client can tell which worker and
which code answered.  The reload tests copy this file and rewrite VERSION.

  /pid          answer at once
  /sleep?s=N    say so on stderr, sleep N seconds in the function `sleep`, then answer
  /crash        kill the worker (SIGABRT) in the middle of the request
  /fill_fds     open /dev/null until the worker's descriptor limit, keep them
  /spin?s=N     run Python bytecode for N seconds in the function `spin` (holds the GIL)
  /leak?mb=N    keep N MiB more of written memory, for good (a leak)
  /free_fds     close them again

IMPORT_DELAY > 0 (the reload tests rewrite it like VERSION): importing the
module says so on stderr, then takes that many seconds.
"""
import os
import sys
import time
from urllib.parse import parse_qs

VERSION = "base"
IMPORT_DELAY = 0

if IMPORT_DELAY:
    print(f"supervised_app: importing {VERSION}", file=sys.stderr, flush=True)
    time.sleep(IMPORT_DELAY)


def sleep(seconds):
    print(f"supervised_app: sleeping {seconds} s in {os.getpid()}", file=sys.stderr, flush=True)
    time.sleep(seconds)


def spin(seconds):
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    return n


HELD = []
LEAKED = []


def fill_fds():
    try:
        while True:
            HELD.append(os.open("/dev/null", os.O_RDONLY))
    except OSError:
        pass


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/fill_fds":
        fill_fds()
    elif path == "/free_fds":
        while HELD:
            os.close(HELD.pop())
    elif path == "/sleep":
        qs = parse_qs(environ.get("QUERY_STRING", ""))
        sleep(float(qs.get("s", ["1"])[0]))
    elif path == "/spin":
        qs = parse_qs(environ.get("QUERY_STRING", ""))
        spin(float(qs.get("s", ["1"])[0]))
    elif path == "/leak":
        qs = parse_qs(environ.get("QUERY_STRING", ""))
        LEAKED.append(bytearray(b"\x01") * (int(qs.get("mb", ["1"])[0]) << 20))
    elif path == "/crash":
        os.abort()
    elif path != "/pid":
        body = b"not found\n"
        start_response("404 Not Found", [("Content-Type", "text/plain"),
                                         ("Content-Length", str(len(body)))])
        return [body]
    body = f"{VERSION} {os.getpid()}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
