"""Hostile requests, one row each: the statuses each may get, and for a
refusal a short plain answer, nothing after it (a valid request pipelined
behind the hostile one is never answered) and the connection closed.  The
workers must all survive the whole table.

The rows are the classic ways to make two HTTP parsers disagree about where
a request ends or what it means (RFC 9112 section 11.2, RFC 9110 section 17),
plus the limits and the leniencies RFC 9112 allows that hugd does not take.
"""
import re
import socket
import time

import pytest

from hugdtest import APPS, wait_for

MAX_BODY = 10000
LINE_LIMIT = 8190  # the defaults of limit_request_line / _fields / _field_size
FIELDS_LIMIT = 100

# what hugd itself answers when it refuses a request
REFUSALS = {400, 408, 413, 414, 417, 431, 501, 505}

FOLLOW = b"GET /env/pipelined HTTP/1.1\r\nHost: localhost\r\n\r\n"
H = b"Host: localhost\r\n"


def get(extra=b"", target=b"/env/x", version=b"HTTP/1.1", host=H):
    return b"GET " + target + b" " + version + b"\r\n" + host + extra + b"\r\n"


def post(fields, body=b"", target=b"/echo"):
    return b"POST " + target + b" HTTP/1.1\r\n" + H + fields + b"\r\n" + body


def chunked(body, te=b"Transfer-Encoding: chunked\r\n"):
    return post(te, body)


BAD = {400}
ROWS = [
    # --- Content-Length / Transfer-Encoding: who decides where the body ends
    ("cl-and-te", post(b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
                       b"3\r\nabc\r\n0\r\n\r\n"), BAD),
    ("te-and-cl", post(b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
                       b"3\r\nabc\r\n0\r\n\r\n"), BAD),
    ("cl-twice-different", post(b"Content-Length: 3\r\nContent-Length: 4\r\n", b"abcd"), BAD),
    ("cl-twice-same", post(b"Content-Length: 3\r\nContent-Length: 3\r\n", b"abc"), BAD),
    ("cl-list-different", post(b"Content-Length: 3, 4\r\n", b"abcd"), BAD),
    ("cl-list-same", post(b"Content-Length: 3, 3\r\n", b"abc"), BAD),
    ("cl-plus-sign", post(b"Content-Length: +3\r\n", b"abc"), BAD),
    ("cl-negative", post(b"Content-Length: -3\r\n", b"abc"), BAD),
    ("cl-hex", post(b"Content-Length: 0x3\r\n", b"abc"), BAD),
    ("cl-inner-space", post(b"Content-Length: 1 2\r\n", b"abc"), BAD),
    ("cl-empty", post(b"Content-Length:\r\n", b"abc"), BAD),
    ("cl-overflow", post(b"Content-Length: 99999999999999999999999\r\n", b"abc"), BAD | {413}),
    ("te-gzip-then-chunked", chunked(b"3\r\nabc\r\n0\r\n\r\n",
                                     b"Transfer-Encoding: gzip, chunked\r\n"), {400, 501}),
    ("te-chunked-then-gzip", chunked(b"3\r\nabc\r\n0\r\n\r\n",
                                     b"Transfer-Encoding: chunked, gzip\r\n"), BAD),
    ("te-chunked-twice", chunked(b"3\r\nabc\r\n0\r\n\r\n",
                                 b"Transfer-Encoding: chunked, chunked\r\n"), BAD),
    ("te-two-fields", chunked(b"3\r\nabc\r\n0\r\n\r\n",
                              b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"), BAD),
    ("te-two-fields-gzip-chunked", chunked(b"3\r\nabc\r\n0\r\n\r\n",
                                           b"Transfer-Encoding: gzip\r\n"
                                           b"Transfer-Encoding: chunked\r\n"), {400, 501}),
    ("te-identity", chunked(b"abc", b"Transfer-Encoding: identity\r\n"), BAD),
    ("te-xchunked", chunked(b"3\r\nabc\r\n0\r\n\r\n", b"Transfer-Encoding: xchunked\r\n"), BAD),
    ("te-space-before-colon", chunked(b"3\r\nabc\r\n0\r\n\r\n",
                                      b"Transfer-Encoding : chunked\r\n"), BAD),
    ("te-vertical-tab", chunked(b"3\r\nabc\r\n0\r\n\r\n",
                                b"Transfer-Encoding: \x0bchunked\r\n"), BAD),
    ("te-quoted", chunked(b"3\r\nabc\r\n0\r\n\r\n", b'Transfer-Encoding: "chunked"\r\n'), BAD),
    ("te-trailing-comma", chunked(b"3\r\nabc\r\n0\r\n\r\n", b"Transfer-Encoding: chunked,\r\n"),
     BAD),
    ("te-leading-comma", chunked(b"3\r\nabc\r\n0\r\n\r\n", b"Transfer-Encoding: , chunked\r\n"),
     BAD),
    ("te-chunked-with-param", chunked(b"3\r\nabc\r\n0\r\n\r\n",
                                      b"Transfer-Encoding: chunked;q=1\r\n"), BAD),
    ("te-folded", chunked(b"3\r\nabc\r\n0\r\n\r\n", b"Transfer-Encoding: gzip,\r\n chunked\r\n"),
     BAD),
    ("te-in-http10", b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"3\r\nabc\r\n0\r\n\r\n", BAD),
    ("te-in-http10-with-cl", b"POST /echo HTTP/1.0\r\nContent-Length: 3\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", BAD),
    # --- line endings
    ("bare-lf-request-line", b"GET /env/x HTTP/1.1\n" + H + b"\r\n", BAD),
    ("bare-lf-field", b"GET /env/x HTTP/1.1\r\nHost: localhost\nX-A: b\r\n\r\n", BAD),
    ("bare-lf-end-of-head", b"GET /env/x HTTP/1.1\r\n" + H + b"\n", BAD),
    ("lf-only", b"GET /env/x HTTP/1.1\nHost: localhost\n\n", BAD),
    ("bare-cr-field", b"GET /env/x HTTP/1.1\r\nHost: localhost\rX-A: b\r\n\r\n", BAD),
    ("bare-lf-chunk-size", chunked(b"3\nabc\r\n0\r\n\r\n"), BAD),
    ("bare-lf-after-chunk-data", chunked(b"3\r\nabc\n0\r\n\r\n"), BAD),
    ("bare-lf-end-of-trailers", chunked(b"3\r\nabc\r\n0\r\nX-T: y\r\n\n"), BAD),
    # --- folding and whitespace around field names
    ("obs-fold-space", get(b"X-A: one\r\n two\r\n"), BAD),
    ("obs-fold-tab", get(b"X-A: one\r\n\ttwo\r\n"), BAD),
    ("first-field-starts-with-space", b"GET /env/x HTTP/1.1\r\n Host: localhost\r\n\r\n", BAD),
    ("obs-fold-in-trailer", chunked(b"3\r\nabc\r\n0\r\nX-T: a\r\n b\r\n\r\n"), BAD),
    ("space-before-colon", get(b"X-A : b\r\n"), BAD),
    ("tab-before-colon", get(b"X-A\t: b\r\n"), BAD),
    ("empty-field-name", get(b": b\r\n"), BAD),
    ("no-colon", get(b"X-A b\r\n"), BAD),
    # --- bytes that have no place in a head
    ("nul-in-name", get(b"X-\x00A: b\r\n"), BAD),
    ("nul-in-value", get(b"X-A: a\x00b\r\n"), BAD),
    ("ctl-in-value", get(b"X-A: a\x01b\r\n"), BAD),
    ("del-in-value", get(b"X-A: a\x7fb\r\n"), BAD),
    ("ctl-in-name", get(b"X-\x01A: b\r\n"), BAD),
    ("high-byte-in-name", get(b"X-\xe9: b\r\n"), BAD),
    ("nul-in-target", get(target=b"/env/\x00x"), BAD),
    ("high-byte-in-target", get(target=b"/env/\xe9"), BAD),
    # --- Host (RFC 9112 3.2)
    ("two-hosts", get(host=b"Host: localhost\r\nHost: evil.example.com\r\n"), BAD),
    ("two-hosts-case", get(host=b"Host: localhost\r\nhost: localhost\r\n"), BAD),
    ("host-with-space", get(host=b"Host: a b\r\n"), BAD),
    ("host-list", get(host=b"Host: localhost, evil.example.com\r\n"), BAD),
    ("host-userinfo", get(host=b"Host: user@localhost\r\n"), BAD),
    ("host-bad-port", get(host=b"Host: localhost:8x\r\n"), BAD),
    ("host-port-too-big", get(host=b"Host: localhost:65536\r\n"), BAD),
    ("host-empty-port", get(host=b"Host: localhost:\r\n"), BAD),
    ("host-bad-ipv6", get(host=b"Host: [::g]\r\n"), BAD),
    ("host-path", get(host=b"Host: localhost/x\r\n"), BAD),
    ("host-missing-http11", get(host=b""), BAD),
    # --- request targets (RFC 9112 3.2)
    ("asterisk-on-get", get(target=b"*"), BAD),
    ("absolute-bad-authority", b"PUT s://]ufd/: HTTP/1.1\r\n" + H + b"Content-Length: 0\r\n\r\n",
     BAD),
    ("absolute-host-mismatch", get(target=b"http://evil.example.com/env/x"), BAD),
    ("absolute-port-mismatch", get(target=b"http://localhost:8080/env/x"), BAD),
    ("absolute-userinfo", get(target=b"http://user@localhost/env/x"), BAD),
    ("absolute-other-scheme", get(target=b"ftp://localhost/env/x"), BAD),
    ("absolute-no-authority", get(target=b"http:/env/x"), BAD),
    ("absolute-empty-host", get(target=b"http:///env/x"), BAD),
    ("relative-target", get(target=b"env/x"), BAD),
    # --- request line
    ("two-spaces-after-method", b"GET  /env/x HTTP/1.1\r\n" + H + b"\r\n", BAD),
    ("two-spaces-before-version", b"GET /env/x  HTTP/1.1\r\n" + H + b"\r\n", BAD),
    ("space-before-method", b" GET /env/x HTTP/1.1\r\n" + H + b"\r\n", BAD),
    ("tab-separator", b"GET\t/env/x HTTP/1.1\r\n" + H + b"\r\n", BAD),
    ("space-in-target", get(target=b"/env/a b"), BAD | {505}),
    ("space-after-version", b"GET /env/x HTTP/1.1 \r\n" + H + b"\r\n", BAD | {505}),
    ("http09", b"GET /env/x\r\n\r\n", BAD),
    ("version-lowercase", get(version=b"http/1.1"), BAD),
    ("version-1.2", get(version=b"HTTP/1.2"), {505}),
    ("version-2.0", get(version=b"HTTP/2.0"), {505}),
    ("version-garbage", get(version=b"HTTP/1.x"), BAD | {505}),
    ("unknown-method", b"FOO /env/x HTTP/1.1\r\n" + H + b"\r\n", {501}),
    ("lowercase-method", b"get /env/x HTTP/1.1\r\n" + H + b"\r\n", {501}),
    ("method-not-a-token", b"GE@T /env/x HTTP/1.1\r\n" + H + b"\r\n", BAD),
    ("connect", b"CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n", {501}),
    # --- chunk sizes and extensions
    ("chunk-size-not-hex", chunked(b"zz\r\nabc\r\n0\r\n\r\n"), BAD),
    ("chunk-size-negative", chunked(b"-3\r\nabc\r\n0\r\n\r\n"), BAD),
    ("chunk-size-0x", chunked(b"0x3\r\nabc\r\n0\r\n\r\n"), BAD),
    ("chunk-size-overflow", chunked(b"10000000000000003\r\nabc\r\n0\r\n\r\n"), BAD | {413}),
    ("chunk-size-leading-space", chunked(b" 3\r\nabc\r\n0\r\n\r\n"), BAD),
    ("chunk-size-trailing-space", chunked(b"3 \r\nabc\r\n0\r\n\r\n"), BAD),
    ("chunk-size-empty", chunked(b"\r\nabc\r\n0\r\n\r\n"), BAD),
    ("chunk-data-too-long", chunked(b"3\r\nabcd\r\n0\r\n\r\n"), BAD),
    ("chunk-data-no-crlf", chunked(b"3\r\nabc0\r\n\r\n"), BAD),
    ("chunk-ext-ctl", chunked(b"3;a\x01\r\nabc\r\n0\r\n\r\n"), BAD),
    ("chunk-ext-space-in-value", chunked(b"3;a=b c\r\nabc\r\n0\r\n\r\n"), BAD),
    ("chunk-ext-open-quote", chunked(b'3;a="b\r\nabc\r\n0\r\n\r\n'), BAD),
    ("chunk-ext-no-name", chunked(b"3;=b\r\nabc\r\n0\r\n\r\n"), BAD),
    ("chunk-line-too-long", chunked(b"3;a=" + b"b" * (LINE_LIMIT + 10) + b"\r\nabc\r\n0\r\n\r\n"),
     BAD),
    # --- limits
    ("request-line-too-long", get(target=b"/env/" + b"a" * (LINE_LIMIT + 10)), {414}),
    ("too-many-fields", get(b"".join(b"X-F%d: v\r\n" % i for i in range(FIELDS_LIMIT + 5))),
     {431}),
    ("field-too-large", get(b"X-Big: " + b"b" * (LINE_LIMIT + 10) + b"\r\n"), {431}),
    ("body-declared-too-large", post(b"Content-Length: %d\r\n" % (MAX_BODY * 5)), {413}),
    ("body-chunked-too-large", chunked(b"".join(b"3e8\r\n" + b"z" * 1000 + b"\r\n"
                                                for _ in range(MAX_BODY // 1000 + 2))), {413}),
    ("chunk-declared-too-large", chunked(b"%x\r\n" % (MAX_BODY * 5)), {413}),
    ("expect-unknown", post(b"Expect: teapot\r\nContent-Length: 3\r\n", b"abc"), {417}),
    # --- accepted: RFC 9112 allows these, a valid request follows
    ("chunk-ext-bws", chunked(b"5 ; name=value\r\nhello\r\n0\r\n\r\n"), {200}),
    ("chunk-ext-bws-around-equals", chunked(b"5\t;\tname = \"v a l\" ; flag\r\nhello\r\n0\r\n\r\n"),
     {200}),
    ("chunk-ext-two-tokens", chunked(b"5;a=b;c=d\r\nhello\r\n0 ; last\r\n\r\n"), {200}),
    ("absolute-form-matching-host", get(target=b"http://LOCALHOST:80/env/x?q=1"), {200}),
    ("options-asterisk", b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n", {200, 204, 404, 405}),
    ("empty-lines-before-request", b"\r\n\r\n" + get(), {200}),
]


@pytest.fixture(scope="module")
def srv(module_hugd):
    s = module_hugd.start(["-w", "2", "--max-body-size", str(MAX_BODY), "wsgiapp:application"],
                          cwd=APPS, workers=2)
    s.first_workers = s.children()
    return s


def test_table_is_large_enough():
    assert len(ROWS) >= 60
    assert len({name for name, _, _ in ROWS}) == len(ROWS)


@pytest.mark.parametrize("raw,allowed", [(raw, allowed) for _, raw, allowed in ROWS],
                         ids=[name for name, _, _ in ROWS])
def test_hostile(srv, raw, allowed):
    c = srv.conn(timeout=5)
    try:
        try:
            c.send(raw + FOLLOW)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before all of a large request was sent
        r = c.read_response()
        assert r.status in allowed, (r, srv.stderr[-1500:])
        if r.status not in REFUSALS:
            # a valid request: the pipelined one after it is answered too
            nxt = c.read_response()
            assert nxt.status == 200 and nxt.json()["PATH_INFO"] == "/env/pipelined"
            return
        assert (r.header("Connection") or "").lower() == "close", r.headers
        assert r.header("Content-Type") == "text/plain"
        assert len(r.body) < 64, r.body
        try:
            rest = c.read_to_eof()
        except socket.timeout:
            pytest.fail(f"connection still open after {r.status}")
        assert b"HTTP/1." not in rest, f"a response after the refusal: {rest[:200]!r}"
        assert rest == b"", rest[:200]
    finally:
        c.close()


def test_absolute_form_path_and_query(srv):
    c = srv.conn()
    try:
        c.send(b"GET http://example.com:8080/env/a%20b?b=1 HTTP/1.1\r\n"
               b"Host: Example.COM:8080\r\nConnection: close\r\n\r\n")
        env = c.read_response().json()
    finally:
        c.close()
    assert env["PATH_INFO"] == "/env/a b"
    assert env["QUERY_STRING"] == "b=1"
    assert env["HTTP_HOST"] == "Example.COM:8080"  # checked against the target, not replaced
    assert env["REQUEST_URI"] == "http://example.com:8080/env/a%20b?b=1"


def test_absolute_form_without_path(srv):
    c = srv.conn()
    try:
        c.send(b"GET https://[::1]?x=y HTTP/1.1\r\nHost: [::1]:443\r\nConnection: close\r\n\r\n")
        r = c.read_response()
    finally:
        c.close()
    assert r.status == 404  # wsgiapp: no route for "/"
    assert r.header("Connection") is not None


def test_header_timeout_408_then_nothing(hugd):
    s = hugd.start(["-w", "1", "--header-timeout", "1", "wsgiapp:application"], cwd=APPS)
    c = s.conn(timeout=5)
    try:
        c.send(b"GET /env/slow HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")  # never finished
        r = c.read_response()
        assert r.status == 408, r
        assert (r.header("Connection") or "").lower() == "close"
        try:
            c.send(b"x\r\n\r\n" + FOLLOW)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert b"HTTP/1." not in c.read_to_eof()
    finally:
        c.close()
    # Logged like every other refusal.
    assert wait_for(lambda: any("408 Request Timeout: the request head did not arrive" in ln
                                and "[INFO]" in ln for ln in _refusal_lines(s)), 5), \
        s.stderr[-2000:]


def _refusal_lines(s):
    return [ln for ln in s.stderr.splitlines() if "refused a request" in ln]


def test_refusals_logged_at_most_once_a_second(hugd):
    s = hugd.start(["-w", "1", "wsgiapp:application"], cwd=APPS)

    def refuse_one():
        c = s.conn(timeout=5)
        try:
            c.send(get(host=b"Host: a b\r\n"))
            assert c.read_response().status == 400
        finally:
            c.close()

    t0 = time.monotonic()
    sent = 0
    for _ in range(30):
        refuse_one()
        sent += 1
    # keep refusing until a line reports the ones left out (a second later)
    def reported():
        nonlocal sent
        refuse_one()
        sent += 1
        return any("more like it not logged" in ln for ln in _refusal_lines(s))
    assert wait_for(reported, 5, interval=0.1), s.stderr[-2000:]
    took = time.monotonic() - t0
    lines = _refusal_lines(s)
    assert all("400 Bad Request: Host is not a valid host[:port]" in ln and "[INFO]" in ln
               for ln in lines), lines
    assert len(lines) <= took + 1, (len(lines), took)
    left_out = sum(int(m.group(1)) for ln in lines
                   for m in [re.search(r"and (\d+) more like it not logged", ln)] if m)
    # every refusal is either a line or counted in a later one (the last
    # lines' followers may still be uncounted)
    assert len(lines) + left_out <= sent
    assert len(lines) + left_out >= 30


def test_workers_survived_the_table(srv):
    assert srv.children() == srv.first_workers, srv.stderr[-3000:]
    assert srv.request("GET", "/fixed").status == 200
