"""A plain WSGI test application for the hugd integration tests.

Dispatches on the first segment of PATH_INFO.  Environment variables set for
the server process:
  HUGD_TEST_CLOSE_LOG  file the iterables' close() calls are appended to
"""
import json
import os
import sys
import time
from urllib.parse import parse_qs


def _qs(environ):
    return {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def _log_close(tag):
    path = os.environ.get("HUGD_TEST_CLOSE_LOG")
    if path:
        with open(path, "a") as f:
            f.write(f"close {tag}\n")


def _text(start_response, body, status="200 OK", ctype="text/plain"):
    if isinstance(body, str):
        body = body.encode()
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


def _json(start_response, obj, status="200 OK"):
    return _text(start_response, json.dumps(obj), status, "application/json")


def env_dump(environ, start_response):
    out = {k: v for k, v in environ.items() if isinstance(v, str)}
    extra = {
        "wsgi.version": list(environ.get("wsgi.version", ())),
        "wsgi.multiprocess": environ.get("wsgi.multiprocess"),
        "wsgi.multithread": environ.get("wsgi.multithread"),
        "wsgi.run_once": environ.get("wsgi.run_once"),
        "has_input": "wsgi.input" in environ,
        "has_errors": "wsgi.errors" in environ,
        "has_file_wrapper": "wsgi.file_wrapper" in environ,
        "environ_is_dict": type(environ) is dict,
        # CGI-style keys (no dot) whose value is not a str: PEP 3333 forbids them
        "nonstr_cgi_keys": sorted(k for k, v in environ.items()
                                  if "." not in k and not isinstance(v, str)),
        "nonstr_keys_types": {k: type(v).__name__ for k, v in environ.items()
                              if "." not in k and not isinstance(v, str)},
    }
    out["_extra"] = extra
    if "mutate=1" in environ.get("QUERY_STRING", ""):
        # What an app does to its environ must not reach the next request's.
        environ["HTTP_HOST"] = "mutated"
        environ["PATH_INFO"] = "/mutated"
        environ.pop("REMOTE_ADDR", None)
        environ.pop("HTTP_USER_AGENT", None)
    return _json(start_response, out)


def echo(environ, start_response):
    body = environ["wsgi.input"].read()
    ctype = environ.get("CONTENT_TYPE") or "application/octet-stream"
    start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body))),
                              ("X-Content-Length-Env", environ.get("CONTENT_LENGTH", "<unset>"))])
    return [body]


def input_modes(environ, start_response):
    inp = environ["wsgi.input"]
    mode = _qs(environ).get("mode", "read")
    pieces = []
    if mode == "read":
        pieces.append(inp.read())
        pieces.append(inp.read())  # at EOF: b""
    elif mode == "read_n":
        n = int(_qs(environ).get("n", "4"))
        while True:
            b = inp.read(n)
            if not b:
                break
            assert len(b) <= n, (len(b), n)
            pieces.append(b)
    elif mode == "read_cl":
        pieces.append(inp.read(int(environ.get("CONTENT_LENGTH") or 0)))
    elif mode == "readline":
        while True:
            b = inp.readline()
            if not b:
                break
            pieces.append(b)
    elif mode == "readline_hint":
        while True:
            b = inp.readline(3)
            if not b:
                break
            assert len(b) <= 3
            pieces.append(b)
    elif mode == "readlines":
        pieces.extend(inp.readlines())
    elif mode == "iter":
        for b in inp:
            pieces.append(b)
    else:
        raise ValueError(mode)
    types = sorted({type(p).__name__ for p in pieces})
    return _json(start_response, {"pieces": [p.decode("latin-1") for p in pieces], "types": types})


def gen(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    n = int(_qs(environ).get("n", "5"))

    def body():
        for i in range(n):
            yield f"chunk-{i};".encode()
        yield b""  # empty strings must not end a chunked body early
        yield b"end"
    return body()


def fixed(environ, start_response):
    return _text(start_response, "0123456789" * 10)


def one_piece(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"single piece, no content-length"]


def pid(environ, start_response):
    return _text(start_response, str(os.getpid()))


def sleep(environ, start_response):
    s = float(_qs(environ).get("s", "1"))
    time.sleep(s)
    return _text(start_response, str(os.getpid()))


def errors(environ, start_response):
    marker = _qs(environ).get("m", "marker")
    err = environ["wsgi.errors"]
    err.write(f"wsgi-errors-write {marker}\n")
    err.writelines([f"wsgi-errors-writelines {marker}\n"])
    err.flush()
    return _text(start_response, "ok")


def raise_(environ, start_response):
    marker = _qs(environ).get("m", "boom")
    raise RuntimeError(f"app-exception {marker}")


def raise_in_iter(environ, start_response):
    tag = _qs(environ).get("id", "x")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Closing(tag, [b"first"], fail_after=1)


def double_start(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    start_response("201 Created", [("Content-Type", "text/plain")])  # must raise
    return [b"should not be sent"]


def exc_info_replace(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-First", "1")])
    try:
        raise ValueError("replace me")
    except ValueError:
        start_response("503 Replaced", [("Content-Type", "text/plain"), ("X-Second", "1")],
                       sys.exc_info())
    return [b"replaced"]


def exc_info_after_sent(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"partial-body;")
    try:
        raise ValueError("too late")
    except ValueError:
        # headers are out: start_response must re-raise this exception
        start_response("500 Oops", [("Content-Type", "text/plain")], sys.exc_info())
    return [b"MUST-NOT-BE-SENT"]


def write_callable(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"hello ")
    write(b"")
    return [b"world"]


def write_callable_cl(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "11")])
    write(b"hello ")
    return [b"world"]


def file_(environ, start_response):
    path = _qs(environ)["path"]
    size = os.path.getsize(path)
    f = open(path, "rb")
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(size))])
    return environ["wsgi.file_wrapper"](f, 8192)


def file_nolen(environ, start_response):
    path = _qs(environ)["path"]
    f = open(path, "rb")
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](f, 8192)


class Closing:
    """An iterable that records close() in HUGD_TEST_CLOSE_LOG."""

    def __init__(self, tag, chunks, delay=0.0, fail_after=None):
        self.tag = tag
        self.chunks = chunks
        self.delay = delay
        self.fail_after = fail_after

    def __iter__(self):
        for i, c in enumerate(self.chunks):
            if self.fail_after is not None and i >= self.fail_after:
                raise RuntimeError(f"iter-failure {self.tag}")
            if self.delay:
                time.sleep(self.delay)
            yield c
        if self.fail_after is not None:
            raise RuntimeError(f"iter-failure {self.tag}")

    def close(self):
        _log_close(self.tag)


def close_(environ, start_response):
    tag = _qs(environ).get("id", "x")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Closing(tag, [b"a", b"b", b"c"])


def close_slow(environ, start_response):
    """Endless-ish large body: 2000 x 64 KiB, slowly; the client hangs up."""
    tag = _qs(environ).get("id", "x")
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return Closing(tag, (b"x" * 65536 for _ in range(2000)), delay=0.005)


def bad(environ, start_response):
    kind = _qs(environ).get("kind")
    ok = [("Content-Type", "text/plain")]
    if kind == "status_crlf":
        start_response("200 OK\r\nX-Injected: status", ok)
    elif kind == "status_lf":
        start_response("200 OK\nX-Injected: status", ok)
    elif kind == "value_crlf":
        start_response("200 OK", ok + [("X-Foo", "a\r\nX-Injected: value")])
    elif kind == "value_lf":
        start_response("200 OK", ok + [("X-Foo", "a\nX-Injected: value")])
    elif kind == "name_crlf":
        start_response("200 OK", ok + [("X-Injected: name\r\nX-Foo", "v")])
    elif kind == "value_int":
        start_response("200 OK", ok + [("X-Injected", 5)])
    elif kind == "value_bytes":
        start_response("200 OK", ok + [("X-Injected", b"bytes")])
    elif kind == "name_bytes":
        start_response("200 OK", ok + [(b"X-Injected", "v")])
    elif kind == "status_bytes":
        start_response(b"200 X-Injected", ok)
    elif kind == "value_nonlatin1":
        start_response("200 OK", ok + [("X-Injected", "euro \u20ac")])
    elif kind == "body_str":
        start_response("200 OK", ok)
        return ["X-Injected str body"]
    else:
        raise ValueError(kind)
    return [b"X-Injected body"]


def status(environ, start_response):
    """/status?code=204: a response that must carry no body."""
    code = _qs(environ).get("code", "204")
    reasons = {"204": "No Content", "304": "Not Modified", "205": "Reset Content"}
    start_response(f"{code} {reasons.get(code, 'X')}", [("X-Status-Route", code)])
    return iter([])


def wrong_cl(environ, start_response):
    """Claims Content-Length 100 but sends only 10 bytes."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "100")])
    return [b"0123456789"]


def latin1_header(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2"),
                              ("X-Latin1", "caf\xe9")])
    return [b"ok"]


def app_header(environ, start_response):
    """/app_header?name=N&value=V: a response carrying the header N: V."""
    q = _qs(environ)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2"),
                              (q["name"], q.get("value", ""))])
    return [b"ok"]


def ctype_locale(environ, start_response):
    """The LC_CTYPE the process runs under (the embedded interpreter sets it)."""
    import locale
    return _text(start_response, locale.setlocale(locale.LC_CTYPE))


def big_gen(environ, start_response):
    """5 MiB in 64 KiB pieces, no Content-Length."""
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return (bytes([i % 251]) * 65536 for i in range(80))


def big_list(environ, start_response):
    """A list whose first piece is big (written without copying) and whose
    later pieces are small: the order on the wire must be the list's."""
    parts = [b"A" * 70000, b"B" * 10, b"C" * 80000, b"D" * 5]
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return parts


def write_then_file(environ, start_response):
    """write() starts the body, then the rest comes from a file_wrapper."""
    path = _qs(environ)["path"]
    write = start_response("200 OK", [("Content-Type", "application/octet-stream")])
    write(b"hello")
    return environ["wsgi.file_wrapper"](open(path, "rb"), 8192)


ROUTES = {
    "big_list": big_list,
    "write_then_file": write_then_file,
    "status": status,
    "wrong_cl": wrong_cl,
    "latin1_header": latin1_header,
    "app_header": app_header,
    "locale": ctype_locale,
    "big_gen": big_gen,
    "env": env_dump,
    "echo": echo,
    "input": input_modes,
    "gen": gen,
    "fixed": fixed,
    "one": one_piece,
    "pid": pid,
    "sleep": sleep,
    "errors": errors,
    "raise": raise_,
    "raise_in_iter": raise_in_iter,
    "double_start": double_start,
    "exc_info_replace": exc_info_replace,
    "exc_info_after_sent": exc_info_after_sent,
    "write": write_callable,
    "write_cl": write_callable_cl,
    "file": file_,
    "file_nolen": file_nolen,
    "close": close_,
    "close_slow": close_slow,
    "bad": bad,
}


def application(environ, start_response):
    first = environ.get("PATH_INFO", "/").lstrip("/").split("/", 1)[0]
    handler = ROUTES.get(first)
    if handler is None:
        return _text(start_response, "not found: " + environ.get("PATH_INFO", ""), "404 Not Found")
    return handler(environ, start_response)


app = application
