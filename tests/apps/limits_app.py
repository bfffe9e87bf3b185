"""The app of tests/test_limits.py: large responses for clients that do
not read them, and an iterable whose close() outlasts the timeout.

  /big?mb=N        N MiB of body, a new bytes object per request (a shared
                   constant would cost the worker nothing to hold)
  /pid             the worker's pid
  /slow-close?s=S  a one-chunk body whose iterable's close() sleeps S seconds
"""
import os
import time
from urllib.parse import parse_qs


def _arg(environ, name, default):
    v = parse_qs(environ.get("QUERY_STRING", "")).get(name)
    return float(v[0]) if v else default


class SlowClose:
    def __init__(self, seconds):
        self.seconds = seconds

    def __iter__(self):
        yield b"closing slowly\n"

    def close(self):
        time.sleep(self.seconds)


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/big":
        n = int(_arg(environ, "mb", 4) * (1 << 20))
        body = bytes(bytearray(n))
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(n))])
        return [body]
    if path == "/slow-close":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return SlowClose(_arg(environ, "s", 10))
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
