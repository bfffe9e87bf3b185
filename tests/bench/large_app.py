"""WSGI app for the large-response scenario of tests/bench/suite.py.

GET /file  the file named by LARGE_FILE through wsgi.file_wrapper (a server
           may send it with sendfile(2); without a file_wrapper it is read
           and sent in 64 KiB blocks)
GET /gen   LARGE_BYTES bytes (default 10 MiB) from a generator, 64 KiB a
           chunk: every byte goes through Python and the server's write path
GET /      b"ok"

Both large responses carry a Content-Length, so no server needs chunked
encoding and each may keep the connection alive.  Plain WSGI, not Hug: the
scenario is about moving bytes, and Hug's per-request cost is measured by
the others.  Serve it as ``large_app:application``.
"""
import os

CHUNK = 64 * 1024
FILE = os.environ.get("LARGE_FILE", "")
GEN_BYTES = int(os.environ.get("LARGE_BYTES", str(10 * 1024 * 1024)))
# One chunk object, yielded again and again: the generator costs a loop
# step per chunk, not an allocation.
BLOCK = b"x" * CHUNK


def generated(n):
    while n >= CHUNK:
        yield BLOCK
        n -= CHUNK
    if n:
        yield BLOCK[:n]


def blocks(f):
    """The file in CHUNK blocks, for a server without wsgi.file_wrapper."""
    with f:
        while True:
            b = f.read(CHUNK)
            if not b:
                return
            yield b


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/file":
        f = open(FILE, "rb")
        size = os.fstat(f.fileno()).st_size
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(size))])
        wrapper = environ.get("wsgi.file_wrapper")
        if wrapper is not None:
            return wrapper(f, CHUNK)
        return blocks(f)
    if path == "/gen":
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(GEN_BYTES))])
        return generated(GEN_BYTES)
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", "2")])
    return [b"ok"]
