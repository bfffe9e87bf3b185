"""HTTP/1.x behaviour over raw sockets (exact bytes matter here)."""
import configparser
import socket
import threading
import time
from email.utils import parsedate_to_datetime
from datetime import datetime, timezone

import pytest

from hugdtest import APPS, Conn, build_request

MAX_BODY = 10000


@pytest.fixture(scope="module")
def srv(module_hugd):
    return module_hugd.start(["-w", "2", "--keep-alive", "5", "--max-body-size", str(MAX_BODY),
                              "wsgiapp:application"], cwd=APPS, workers=2)


def req(path, method="GET", headers=None, body=b"", version="HTTP/1.1"):
    h = {"Host": "localhost"}
    h.update(headers or {})
    return build_request(method, path, h, body, version)


def assert_still_serves(srv):
    r = srv.request("GET", "/fixed")
    assert r.status == 200 and r.body == b"0123456789" * 10


# --- keep-alive ---------------------------------------------------------------------

def test_keep_alive_http11(srv):
    c = srv.conn()
    try:
        for i in range(3):
            c.send(req(f"/env/ka{i}"))
            r = c.read_response()
            assert r.status == 200
            assert r.json()["PATH_INFO"] == f"/env/ka{i}"
            assert (r.header("Connection") or "").lower() != "close"
        assert not c.at_eof(0.3)
    finally:
        c.close()


def test_http10_closes_by_default(srv):
    c = srv.conn()
    try:
        c.send(req("/fixed", version="HTTP/1.0"))
        r = c.read_response()
        assert r.status == 200 and r.body == b"0123456789" * 10
        assert r.version in ("HTTP/1.0", "HTTP/1.1")
        assert c.at_eof(3), "HTTP/1.0 connection without keep-alive was not closed"
    finally:
        c.close()


def test_http10_keep_alive_requested(srv):
    c = srv.conn()
    try:
        for _ in range(2):
            c.send(req("/fixed", version="HTTP/1.0", headers={"Connection": "keep-alive"}))
            r = c.read_response()
            assert r.status == 200 and r.body == b"0123456789" * 10
            assert (r.header("Connection") or "").lower() == "keep-alive", r.headers
    finally:
        c.close()


def test_keep_alive_idle_timeout(hugd):
    s = hugd.start(["-w", "1", "--keep-alive", "1", "wsgiapp:application"], cwd=APPS)
    c = s.conn()
    try:
        c.send(req("/fixed"))
        assert c.read_response().status == 200
        time.sleep(0.3)
        c.send(req("/fixed"))  # still open after 0.3 s idle
        assert c.read_response().status == 200
        t0 = time.monotonic()
        assert c.at_eof(4), "idle keep-alive connection not closed after --keep-alive 1"
        took = time.monotonic() - t0
        assert 0.5 < took < 3, f"closed after {took:.2f}s idle, expected about 1s"
    finally:
        c.close()


def test_keep_alive_zero_disables(hugd):
    s = hugd.start(["-w", "1", "--keep-alive", "0", "wsgiapp:application"], cwd=APPS)
    c = s.conn()
    try:
        c.send(req("/fixed"))
        r = c.read_response()
        assert r.status == 200
        assert c.at_eof(3)
    finally:
        c.close()


def test_pipelined_requests_in_order(srv):
    c = srv.conn()
    try:
        c.send(req("/env/first") + req("/gen?n=3") +
               req("/echo", "POST", {"Content-Type": "text/plain"}, b"second-body") +
               req("/env/third"))
        r1 = c.read_response()
        r2 = c.read_response()
        r3 = c.read_response()
        r4 = c.read_response()
        assert r1.json()["PATH_INFO"] == "/env/first"
        assert r2.body == b"chunk-0;chunk-1;chunk-2;end"
        assert r3.body == b"second-body"
        assert r4.json()["PATH_INFO"] == "/env/third"
    finally:
        c.close()


def test_pipelined_three_in_one_send(srv):
    c = srv.conn()
    try:
        c.send(b"".join(req(f"/env/p{i}") for i in range(3)))
        paths = [c.read_response().json()["PATH_INFO"] for _ in range(3)]
        assert paths == ["/env/p0", "/env/p1", "/env/p2"]
    finally:
        c.close()


# --- request bodies --------------------------------------------------------------------

def test_chunked_request_body(srv):
    body = (b"5\r\nhello\r\n"
            b"1;ext=1\r\n \r\n"
            b"6\r\nworld!\r\n"
            b"0\r\nX-Trailer: t\r\n\r\n")
    c = srv.conn()
    try:
        c.send(req("/echo", "POST", {"Transfer-Encoding": "chunked",
                                     "Content-Type": "text/plain"}) + body)
        r = c.read_response()
        assert r.status == 200, r
        assert r.body == b"hello world!"
        # connection still usable
        c.send(req("/fixed"))
        assert c.read_response().status == 200
    finally:
        c.close()


def test_chunked_request_body_slow_client(srv):
    c = srv.conn()
    try:
        c.send(req("/echo", "POST", {"Transfer-Encoding": "chunked"}))
        for part in (b"3\r\nabc", b"\r\n", b"4\r\nde", b"fg\r\n0\r", b"\n\r\n"):
            time.sleep(0.05)
            c.send(part)
        r = c.read_response()
        assert r.status == 200 and r.body == b"abcdefg"
    finally:
        c.close()


def test_expect_100_continue(srv):
    c = srv.conn()
    try:
        c.send(req("/echo", "POST", {"Content-Length": "11", "Expect": "100-continue",
                                     "Content-Type": "text/plain"}))
        c.settimeout(3)
        line = c.read_until(b"\r\n\r\n")
        assert line.startswith(b"HTTP/1.1 100 Continue\r\n"), line
        c.settimeout(10)
        c.send(b"hello there")
        r = c.read_response()
        assert r.status == 200 and r.body == b"hello there"
    finally:
        c.close()


def test_content_length_body(srv):
    r = srv.request("POST", "/echo", body=b"x" * 5000, headers={"Content-Type": "a/b"})
    assert r.status == 200 and r.body == b"x" * 5000
    assert r.header("Content-Type") == "a/b"


# --- responses ----------------------------------------------------------------------

def test_head_has_length_but_no_body(srv):
    c = srv.conn()
    try:
        # HEAD then GET on one connection: the GET's status line must follow the
        # HEAD's header block directly (no body bytes in between)
        c.send(req("/fixed", "HEAD") + req("/fixed"))
        h = c.read_response(method="HEAD")
        assert h.status == 200
        assert h.header("Content-Length") == "100"
        assert c.read_exact(5) == b"HTTP/", "HEAD response carried a body"
        c.buf = b"HTTP/" + c.buf
        g = c.read_response()
        assert g.body == b"0123456789" * 10
    finally:
        c.close()


def test_head_on_generator_has_no_body(srv):
    c = srv.conn()
    try:
        c.send(req("/gen", "HEAD") + req("/env/after-head"))
        h = c.read_response(method="HEAD")
        assert h.status == 200
        assert c.read_exact(5) == b"HTTP/", "HEAD response carried a body"
        c.buf = b"HTTP/" + c.buf
        assert c.read_response().json()["PATH_INFO"] == "/env/after-head"
    finally:
        c.close()


def test_connection_close_honoured(srv):
    c = srv.conn()
    try:
        c.send(req("/fixed", headers={"Connection": "close"}))
        r = c.read_response()
        assert r.status == 200
        assert (r.header("Connection") or "").lower() == "close"
        assert c.at_eof(3), "server kept the connection open after Connection: close"
    finally:
        c.close()


def test_date_and_server_headers(srv):
    r = srv.request("GET", "/fixed")
    assert r.header("Server"), r.headers
    d = r.header("Date")
    assert d, r.headers
    assert d.endswith(" GMT"), d
    when = parsedate_to_datetime(d)
    assert abs((datetime.now(timezone.utc) - when).total_seconds()) < 60


def test_content_length_from_app(srv):
    r = srv.request("GET", "/fixed")
    assert r.header("Content-Length") == "100"
    assert r.header("Transfer-Encoding") is None
    assert r.body == b"0123456789" * 10


def test_single_piece_body(srv):
    r = srv.request("GET", "/one")
    assert r.status == 200 and r.body == b"single piece, no content-length"


def test_chunked_response_for_generator(srv):
    c = srv.conn()
    try:
        c.send(req("/gen?n=4"))
        r = c.read_response()
        assert r.status == 200
        assert (r.header("Transfer-Encoding") or "").lower() == "chunked", r.headers
        assert r.header("Content-Length") is None
        assert r.body == b"chunk-0;chunk-1;chunk-2;chunk-3;end"
        c.send(req("/fixed"))
        assert c.read_response().status == 200
    finally:
        c.close()


def test_http10_unknown_length_delimited_by_close(srv):
    c = srv.conn()
    try:
        c.send(req("/gen?n=3", version="HTTP/1.0"))
        head = c.read_head()
        headers = dict((k.lower(), v) for k, v in head[3])
        assert head[1] == 200
        assert "transfer-encoding" not in headers, headers
        assert "content-length" not in headers or headers["content-length"] == "27"
        body = c.read_to_eof()
        assert body == b"chunk-0;chunk-1;chunk-2;end"
    finally:
        c.close()


# --- errors ----------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nthis header has no colon\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nBad\x01Name: v\r\n\r\n",
], ids=["garbage-line", "no-colon", "bad-content-length", "bad-chunk-size", "ctl-in-name"])
def test_malformed_request_gets_400_and_close(srv, raw):
    c = srv.conn()
    try:
        c.send(raw)
        r = c.read_response()
        assert r.status == 400, r
        assert c.at_eof(3), "connection left open after a 400"
    finally:
        c.close()
    assert_still_serves(srv)


def _limits(hugd):
    """The server's effective header limits, from --check-config."""
    s = hugd.run(["--check-config"])
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        cp.read_string(s.stdout)
        http = cp["http"]
        return (int(http.get("limit_request_line", 8190)),
                int(http.get("limit_request_fields", 100)),
                int(http.get("limit_request_field_size", 8190)))
    except Exception:
        return 8190, 100, 8190


def _send_oversize(srv, data):
    c = srv.conn()
    try:
        try:
            c.send(data)
            c.sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            return c.read_response()
        except EOFError as e:
            pytest.fail(f"no response to an oversize request: {e}")
    finally:
        c.close()


def test_request_line_too_long_414(srv, hugd):
    line_limit, _, _ = _limits(hugd)
    path = "/fixed?" + "a" * (line_limit + 500)
    r = _send_oversize(srv, req(path))
    assert r.status == 414, r
    assert_still_serves(srv)


def test_too_many_headers_431(srv, hugd):
    _, fields, _ = _limits(hugd)
    headers = {f"X-H-{i}": "v" for i in range(fields + 10)}
    r = _send_oversize(srv, req("/fixed", headers=headers))
    assert r.status == 431, r
    assert_still_serves(srv)


def test_header_too_big_431(srv, hugd):
    _, _, size = _limits(hugd)
    r = _send_oversize(srv, req("/fixed", headers={"X-Big": "b" * (size + 500)}))
    assert r.status == 431, r
    assert_still_serves(srv)


def test_body_too_big_content_length_413(srv):
    c = srv.conn()
    try:
        c.send(req("/echo", "POST", {"Content-Length": str(MAX_BODY * 5)}))
        c.settimeout(3)
        try:
            r = c.read_response()
        except socket.timeout:
            # the server waits for the body: send it
            c.settimeout(10)
            try:
                c.send(b"x" * MAX_BODY * 5)
            except (BrokenPipeError, ConnectionResetError):
                pass
            r = c.read_response()
        assert r.status == 413, r
    finally:
        c.close()
    assert_still_serves(srv)


def test_body_at_limit_is_accepted(srv):
    r = srv.request("POST", "/echo", body=b"y" * MAX_BODY)
    assert r.status == 200 and len(r.body) == MAX_BODY


def test_body_too_big_chunked_413(srv):
    c = srv.conn()
    try:
        chunk = b"z" * 1000
        data = b"".join(b"3e8\r\n" + chunk + b"\r\n" for _ in range(MAX_BODY // 1000 + 3))
        try:
            c.send(req("/echo", "POST", {"Transfer-Encoding": "chunked"}) + data + b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = c.read_response()
        assert r.status == 413, r
    finally:
        c.close()
    assert_still_serves(srv)


# --- connection handling ----------------------------------------------------------------

def test_client_hangs_up_without_request(srv):
    for _ in range(5):
        srv.connect().close()
    c = srv.conn()
    c.send(b"GET /fix")  # partial request, then gone
    c.close()
    assert_still_serves(srv)


def test_many_concurrent_connections(srv):
    results = []
    errors = []

    def one(i):
        try:
            r = srv.request("GET", f"/env/c{i}")
            results.append(r.json()["PATH_INFO"] == f"/env/c{i}")
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(60)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not errors, errors[:5]
    assert len(results) == 60 and all(results)


def test_idle_open_connections_do_not_block_others(srv):
    # slow clients cost a buffer, never a worker: hold 10 idle connections
    # (more than workers) and a new request is still served at once
    idle = [srv.connect() for _ in range(10)]
    try:
        for s in idle[:5]:
            s.sendall(b"GET /fixed HTTP/1.1\r\nHost: x\r\n")  # incomplete head
        t0 = time.monotonic()
        assert_still_serves(srv)
        assert time.monotonic() - t0 < 2
    finally:
        for s in idle:
            s.close()


# --- more framing edge cases ---------------------------------------------------------------

def test_unread_body_is_skipped_before_next_request(srv):
    c = srv.conn()
    try:
        # /fixed never reads wsgi.input: the server must skip the body
        c.send(req("/fixed", "POST", body=b"GET /env/smuggled HTTP/1.1\r\nHost: x\r\n\r\n") +
               req("/env/next"))
        assert c.read_response().body == b"0123456789" * 10
        assert c.read_response().json()["PATH_INFO"] == "/env/next"
    finally:
        c.close()


def test_unread_chunked_body_is_skipped(srv):
    c = srv.conn()
    try:
        c.send(req("/fixed", "POST", {"Transfer-Encoding": "chunked"}) +
               b"5\r\nhello\r\n0\r\n\r\n" + req("/env/after-chunked"))
        assert c.read_response().status == 200
        assert c.read_response().json()["PATH_INFO"] == "/env/after-chunked"
    finally:
        c.close()


@pytest.mark.parametrize("code", ["204", "304"])
def test_no_body_statuses(srv, code):
    c = srv.conn()
    try:
        c.send(req(f"/status?code={code}") + req("/env/after-status"))
        r = c.read_response()
        assert r.status == int(code)
        assert (r.header("Transfer-Encoding") or "").lower() != "chunked", r.headers
        # the next response must follow the header block directly
        assert c.read_exact(5) == b"HTTP/", f"{code} response carried a body"
        c.buf = b"HTTP/" + c.buf
        assert c.read_response().json()["PATH_INFO"] == "/env/after-status"
    finally:
        c.close()


def test_app_short_of_its_content_length_closes(srv):
    c = srv.conn()
    try:
        c.send(req("/wrong_cl"))
        head = c.read_head()
        assert head[1] == 200
        c.settimeout(4)
        data = c.read_to_eof()  # must not hang until the keep-alive timeout
        assert data == b"0123456789"
    except socket.timeout:
        pytest.fail("response shorter than its Content-Length left the client hanging")
    finally:
        c.close()


def test_many_requests_on_one_connection(srv):
    c = srv.conn()
    try:
        for i in range(200):
            c.send(req("/fixed"))
            r = c.read_response()
            assert r.status == 200 and len(r.body) == 100
    finally:
        c.close()


def test_header_whitespace_trimmed(srv):
    c = srv.conn()
    try:
        c.send(b"GET /env/ws HTTP/1.1\r\nHost: x\r\nX-Pad:    padded value  \t\r\n"
               b"X-Empty:\r\nConnection: close\r\n\r\n")
        env = c.read_response().json()
    finally:
        c.close()
    assert env["HTTP_X_PAD"] == "padded value"
    assert env.get("HTTP_X_EMPTY") == ""


def test_absolute_form_target(srv):
    # the Host field must name the target's authority (a mismatch is a 400:
    # see test_hostile.py)
    env = srv.get_json("http://example.org/env/abs?q=1", headers={"Host": "example.org"})
    assert env["PATH_INFO"] == "/env/abs"
    assert env["QUERY_STRING"] == "q=1"
    assert env["HTTP_HOST"] == "example.org"


def test_expect_100_continue_body_too_big(srv):
    c = srv.conn()
    try:
        c.send(req("/echo", "POST", {"Content-Length": str(MAX_BODY * 5),
                                     "Expect": "100-continue"}))
        c.settimeout(5)
        r = c.read_response(skip_100=False)
        assert r.status == 413, r
    finally:
        c.close()


def test_large_generator_slow_reader(srv):
    c = srv.conn()
    try:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        c.send(req("/big_gen"))
        head = c.read_head()
        assert head[1] == 200
        time.sleep(0.5)  # let the server hit a full socket buffer
        r_headers = dict((k.lower(), v) for k, v in head[3])
        assert r_headers.get("transfer-encoding", "").lower() == "chunked"
        body = c.read_chunked()
        assert len(body) == 80 * 65536
        assert all(body[i * 65536] == i % 251 and body[i * 65536 + 65535] == i % 251
                   for i in range(80))
    finally:
        c.close()


def test_obs_fold_rejected_or_unfolded(srv):
    c = srv.conn()
    try:
        c.send(b"GET /env/fold HTTP/1.1\r\nHost: x\r\nX-F: a\r\n b\r\nX-G: 1\r\n"
               b"Connection: close\r\n\r\n")
        r = c.read_response()
    finally:
        c.close()
    assert r.status in (200, 400), r
    if r.status == 200:  # RFC 9112 5.2: replace each obs-fold with SP
        env = r.json()
        assert env["HTTP_X_F"] in ("a b", "a  b"), env["HTTP_X_F"]
        assert env["HTTP_X_G"] == "1"


def test_slow_request_head_gets_408(hugd):
    s = hugd.start(["-w", "1", "--header-timeout", "1", "wsgiapp:application"], cwd=APPS)
    c = s.conn()
    try:
        c.send(b"GET /fixed HTTP/1.1\r\nHost: x\r\n")  # never finished
        t0 = time.monotonic()
        c.settimeout(5)
        r = c.read_response()
        took = time.monotonic() - t0
        assert r.status == 408, r
        assert 0.5 < took < 3, took
        assert c.at_eof(2)
    finally:
        c.close()
    assert s.request("GET", "/fixed").status == 200
