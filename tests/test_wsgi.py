"""PEP 3333 conformance: environ, wsgi.input, start_response, write(), close()."""
import hashlib
import json
import os
import socket
import time

import pytest
import requests

from hugdtest import APPS, build_request, wait_for


@pytest.fixture(scope="module")
def close_log(module_workdir):
    return os.path.join(module_workdir, "close.log")


@pytest.fixture(scope="module")
def srv(module_hugd, close_log):
    return module_hugd.start(["-w", "2", "wsgiapp:application"], cwd=APPS,
                             env={"HUGD_TEST_CLOSE_LOG": close_log}, workers=2)


def closes(close_log):
    try:
        with open(close_log) as f:
            return f.read().split("\n")
    except FileNotFoundError:
        return []


# --- environ --------------------------------------------------------------------------

def test_environ_basics(srv):
    c = srv.conn()
    try:
        local_port = c.sock.getsockname()[1]
        c.send(build_request("GET", "/env/x?a=1&b=%20x&c", {"Host": "example.com:1234"}))
        env = c.read_response().json()
    finally:
        c.close()
    ex = env["_extra"]
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/env/x"
    assert env["QUERY_STRING"] == "a=1&b=%20x&c"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_NAME"]
    assert env["SERVER_PORT"] == str(srv.port)
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_PORT"] == str(local_port)
    assert env["HTTP_HOST"] == "example.com:1234"
    assert env["wsgi.url_scheme"] == "http"
    assert ex["wsgi.version"] == [1, 0]
    assert ex["wsgi.multiprocess"] is True
    assert ex["wsgi.multithread"] is False
    assert ex["wsgi.run_once"] is False
    assert ex["has_input"] and ex["has_errors"] and ex["has_file_wrapper"]
    assert ex["environ_is_dict"]
    assert ex["nonstr_cgi_keys"] == [], ex["nonstr_keys_types"]
    assert "CONTENT_LENGTH" not in env or env["CONTENT_LENGTH"] in ("", "0")


def test_environ_no_query_string(srv):
    env = srv.get_json("/env/plain")
    assert env.get("QUERY_STRING", "") == ""


def test_environ_http10(srv):
    env = srv.get_json("/env/ten", version="HTTP/1.0")
    assert env["SERVER_PROTOCOL"] == "HTTP/1.0"


def test_environ_post_content_headers(srv):
    r = srv.request("POST", "/env/post", body=b"abc",
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    env = r.json()
    assert env["REQUEST_METHOD"] == "POST"
    assert env["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert env["CONTENT_LENGTH"] == "3"
    assert "HTTP_CONTENT_TYPE" not in env
    assert "HTTP_CONTENT_LENGTH" not in env


def test_path_info_percent_decoded_latin1(srv):
    env = srv.get_json("/env/caf%C3%A9/a%20b")
    assert env["PATH_INFO"] == "/env/caf\xc3\xa9/a b"
    assert env["PATH_INFO"].encode("latin-1").decode("utf-8") == "/env/café/a b"


def test_path_info_raw_non_ascii_bytes(srv):
    c = srv.conn()
    try:
        c.send(b"GET /env/\xc3\xa9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        r = c.read_response()
    finally:
        c.close()
    if r.status == 400:
        pytest.skip("server rejects raw non-ASCII in the request target (allowed)")
    assert r.json()["PATH_INFO"] == "/env/\xc3\xa9"


def test_repeated_headers_joined(srv):
    c = srv.conn()
    try:
        c.send(b"GET /env/rep HTTP/1.1\r\nHost: x\r\nX-Multi: a\r\nX-Other: o\r\n"
               b"X-Multi: b\r\nx-multi: c\r\nConnection: close\r\n\r\n")
        env = c.read_response().json()
    finally:
        c.close()
    assert env["HTTP_X_MULTI"] == "a, b, c"
    assert env["HTTP_X_OTHER"] == "o"


def test_header_names_mapped(srv):
    env = srv.get_json("/env/h", headers={"User-Agent": "ua/1", "X-Dashed-Name": "d",
                                          "Accept": "*/*"})
    assert env["HTTP_USER_AGENT"] == "ua/1"
    assert env["HTTP_X_DASHED_NAME"] == "d"
    assert env["HTTP_ACCEPT"] == "*/*"


def test_environ_is_fresh_per_request(srv):
    c = srv.conn()
    try:
        c.send(build_request("GET", "/env/one", {"Host": "x", "X-Only-First": "1"}))
        e1 = c.read_response().json()
        c.send(build_request("GET", "/env/two", {"Host": "x"}))
        e2 = c.read_response().json()
    finally:
        c.close()
    assert e1["HTTP_X_ONLY_FIRST"] == "1"
    assert "HTTP_X_ONLY_FIRST" not in e2


def test_environ_reused_values_never_leak(srv):
    """hugd keeps the values a connection's requests repeat (Host, User-Agent,
    the path...) in the dict each environ is copied from.  Over one keep-alive
    connection, 300 requests whose headers come and go, repeat, change, are
    sent twice or in another case, each environ holds exactly its own
    request's, and what the app changes in one is not seen by the next."""
    import random
    rnd = random.Random(7)
    names = ["User-Agent", "Accept", "Accept-Encoding", "Cookie", "Authorization",
             "Content-Type", "X-Request-Id", "X-Forwarded-For", "Origin", "X-Custom", "Referer"]
    c = srv.conn()
    try:
        for i in range(300):
            hdrs = [("Host", rnd.choice(["x", "x", "y:80"]))]  # one, as HTTP/1.1 requires
            for n in names:
                if rnd.random() < 0.6:
                    n2 = n if rnd.random() < 0.8 else n.upper()
                    v = rnd.choice(["a", "b", "a b", str(i % 3), str(i)])
                    hdrs.append((n2, v))
                    if rnd.random() < 0.1 and n != "Content-Type":
                        hdrs.append((n2.lower(), "again"))
            path = rnd.choice(["/env/p", "/env/p", "/env/q%20r", "/env"])
            query = rnd.choice(["", "", "x=1", "x=2", "mutate=1"])
            target = path + ("?" + query if query else "")
            head = f"GET {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs)
            c.send((head + "\r\n").encode("latin-1"))
            env = c.read_response().json()
            want = {}
            for k, v in hdrs:
                key = k.upper().replace("-", "_")
                key = key if key in ("CONTENT_TYPE",) else "HTTP_" + key
                want[key] = want[key] + ", " + v if key in want and key != "CONTENT_TYPE" else v
            got = {k: v for k, v in env.items() if k.startswith("HTTP_") or k == "CONTENT_TYPE"}
            assert got == want, (i, hdrs)
            assert env["PATH_INFO"] == path.replace("%20", " "), i
            assert env["QUERY_STRING"] == query, i
            assert env["REQUEST_URI"] == env["RAW_URI"] == target, i
            assert env["REMOTE_ADDR"] == "127.0.0.1", i
    finally:
        c.close()


# --- wsgi.input -------------------------------------------------------------------------

BODY = b"line1\nline2\n\nline4 no newline"
LINES = [b"line1\n", b"line2\n", b"\n", b"line4 no newline"]


def _input(srv, mode, body=BODY, chunked=False, extra=""):
    headers = {"Content-Type": "text/plain"}
    if chunked:
        headers["Transfer-Encoding"] = "chunked"
        half = len(body) // 2
        data = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:half], body[half:]) if p)
        data += b"0\r\n\r\n"
    else:
        data = body
    r = srv.request("POST", f"/input?mode={mode}{extra}", headers=headers, body=data)
    assert r.status == 200, (r, srv.stderr[-3000:])
    out = r.json()
    assert out["types"] in ([], ["bytes"]), out
    return [p.encode("latin-1") for p in out["pieces"]]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_input_read_all(srv, chunked):
    assert _input(srv, "read", chunked=chunked) == [BODY, b""]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_input_read_n(srv, chunked):
    pieces = _input(srv, "read_n", chunked=chunked, extra="&n=4")
    assert b"".join(pieces) == BODY
    assert all(len(p) == 4 for p in pieces[:-1])


def test_input_read_content_length(srv):
    assert _input(srv, "read_cl") == [BODY]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_input_readline(srv, chunked):
    assert _input(srv, "readline", chunked=chunked) == LINES


def test_input_readline_size_hint(srv):
    pieces = _input(srv, "readline_hint")
    assert b"".join(pieces) == BODY
    assert pieces[:3] == [b"lin", b"e1\n", b"lin"]


def test_input_readlines(srv):
    assert _input(srv, "readlines") == LINES


def test_input_iteration(srv):
    assert _input(srv, "iter") == LINES


def test_input_empty_body(srv):
    assert _input(srv, "read", body=b"") == [b"", b""]
    assert _input(srv, "readlines", body=b"") == []


def test_large_body_roundtrip(srv):
    data = os.urandom(3 * 1024 * 1024 + 17)
    r = requests.post(srv.url + "/echo", data=data, timeout=20,
                      headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 200
    assert hashlib.sha256(r.content).hexdigest() == hashlib.sha256(data).hexdigest()


def test_large_chunked_body_roundtrip(srv):
    data = os.urandom(2 * 1024 * 1024 + 5)

    def gen():
        for i in range(0, len(data), 100000):
            yield data[i:i + 100000]
    r = requests.post(srv.url + "/echo", data=gen(), timeout=20)
    assert r.status_code == 200
    assert r.content == data


# --- wsgi.errors --------------------------------------------------------------------------

def test_wsgi_errors_to_stderr(srv):
    assert srv.request("GET", "/errors?m=stderr-mark-1").status == 200
    assert wait_for(lambda: "wsgi-errors-write stderr-mark-1" in srv.stderr, 3), srv.stderr[-2000:]
    assert "wsgi-errors-writelines stderr-mark-1" in srv.stderr


# --- file_wrapper -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def big_file(module_workdir):
    path = os.path.join(module_workdir, "big.bin")
    data = os.urandom(1024 * 1024 * 2 + 333)
    with open(path, "wb") as f:
        f.write(data)
    return path, data


def test_file_wrapper(srv, big_file):
    path, data = big_file
    r = requests.get(srv.url + "/file", params={"path": path}, timeout=20)
    assert r.status_code == 200
    assert r.headers["Content-Length"] == str(len(data))
    assert r.content == data


def test_file_wrapper_small_file_keepalive(srv, module_workdir):
    path = os.path.join(module_workdir, "small.txt")
    with open(path, "wb") as f:
        f.write(b"small file contents\n")
    c = srv.conn()
    try:
        for _ in range(2):
            c.send(build_request("GET", f"/file?path={path}", {"Host": "x"}))
            r = c.read_response()
            assert r.status == 200 and r.body == b"small file contents\n"
            assert r.header("Content-Length") == "20"
    finally:
        c.close()


def test_file_wrapper_without_length(srv, big_file):
    path, data = big_file
    r = requests.get(srv.url + "/file_nolen", params={"path": path}, timeout=20)
    assert r.status_code == 200
    assert r.content == data


def test_file_wrapper_head(srv, big_file):
    path, data = big_file
    r = srv.request("HEAD", f"/file?path={path}")
    assert r.status == 200 and r.header("Content-Length") == str(len(data))


def test_write_then_file_wrapper_one_response(srv, module_workdir):
    """write() began the body, so the file follows in the same framing, and
    the connection stays usable."""
    path = os.path.join(module_workdir, "tail.txt")
    with open(path, "wb") as f:
        f.write(b" world\n")
    c = srv.conn()
    try:
        for _ in range(2):
            c.send(build_request("GET", f"/write_then_file?path={path}", {"Host": "x"}))
            r = c.read_response()
            assert r.status == 200 and r.body == b"hello world\n"
    finally:
        c.close()


def test_list_with_big_first_piece_keeps_its_order(srv):
    c = srv.conn()
    try:
        for _ in range(2):
            c.send(build_request("GET", "/big_list", {"Host": "x"}))
            r = c.read_response()
            assert r.status == 200
            assert r.body == b"A" * 70000 + b"B" * 10 + b"C" * 80000 + b"D" * 5
    finally:
        c.close()


# --- start_response ------------------------------------------------------------------------

def test_start_response_twice_without_exc_info_is_500(srv):
    r = srv.request("GET", "/double_start")
    assert r.status == 500, r
    assert b"should not be sent" not in r.body


def test_exc_info_before_headers_sent_replaces_response(srv):
    r = srv.request("GET", "/exc_info_replace")
    assert r.status == 503, r
    assert r.body == b"replaced"
    assert r.header("X-Second") == "1"
    assert r.header("X-First") is None


def test_exc_info_after_headers_sent_aborts(srv):
    c = srv.conn()
    try:
        c.send(build_request("GET", "/exc_info_after_sent", {"Host": "x"}))
        head = c.read_head()
        assert head[1] == 200
        rest = c.read_to_eof()  # the server must close: the response cannot be completed
        assert b"MUST-NOT-BE-SENT" not in rest
        assert b"500 Oops" not in rest
        if head[3] and any(k.lower() == "transfer-encoding" for k, _ in head[3]):
            assert not rest.endswith(b"0\r\n\r\n"), "aborted response ended like a complete one"
    finally:
        c.close()
    assert srv.request("GET", "/fixed").status == 200


def test_write_callable(srv):
    r = srv.request("GET", "/write")
    assert r.status == 200 and r.body == b"hello world"


def test_write_callable_with_content_length(srv):
    r = srv.request("GET", "/write_cl")
    assert r.status == 200 and r.body == b"hello world"
    assert r.header("Content-Length") == "11"


def test_write_callable_keepalive(srv):
    c = srv.conn()
    try:
        for _ in range(2):
            c.send(build_request("GET", "/write", {"Host": "x"}))
            assert c.read_response().body == b"hello world"
    finally:
        c.close()


# --- close() --------------------------------------------------------------------------------

def test_close_called_after_response(srv, close_log):
    r = srv.request("GET", "/close?id=normal-1")
    assert r.status == 200 and r.body == b"abc"
    assert wait_for(lambda: "close normal-1" in closes(close_log), 3), closes(close_log)
    assert closes(close_log).count("close normal-1") == 1


def test_close_called_for_head(srv, close_log):
    r = srv.request("HEAD", "/close?id=head-1")
    assert r.status == 200
    assert wait_for(lambda: "close head-1" in closes(close_log), 3), closes(close_log)


def test_close_called_when_iteration_raises(srv, close_log):
    try:
        srv.request("GET", "/raise_in_iter?id=iterfail-1")
    except (EOFError, OSError):
        pass
    assert wait_for(lambda: "close iterfail-1" in closes(close_log), 3), closes(close_log)
    assert srv.request("GET", "/fixed").status == 200


def test_close_called_when_client_disconnects(srv, close_log):
    c = srv.conn()
    try:
        c.send(build_request("GET", "/close_slow?id=gone-1", {"Host": "x"}))
        head = c.read_head()
        assert head[1] == 200
        c.read_exact(100000)
    finally:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()  # RST
    assert wait_for(lambda: "close gone-1" in closes(close_log), 8), \
        f"close() not called after the client went away; log={closes(close_log)}"
    # and the worker is free again
    t0 = time.monotonic()
    for _ in range(4):
        assert srv.request("GET", "/fixed").status == 200
    assert time.monotonic() - t0 < 3


# --- application errors ---------------------------------------------------------------------

def test_app_exception_is_500_and_logged(hugd):
    s = hugd.start(["-w", "1", "wsgiapp:application"], cwd=APPS, workers=1)
    pid_before = s.request("GET", "/pid").body
    r = s.request("GET", "/raise?m=exc-marker-7")
    assert r.status == 500
    assert b"exc-marker-7" not in r.body, "traceback leaked to the client"
    assert wait_for(lambda: "exc-marker-7" in s.stderr, 3), s.stderr
    assert "Traceback" in s.stderr
    assert "RuntimeError" in s.stderr
    # the same worker goes on serving
    r2 = s.request("GET", "/pid")
    assert r2.status == 200 and r2.body == pid_before


BAD_KINDS = ["status_crlf", "status_lf", "value_crlf", "value_lf", "name_crlf",
             "value_int", "value_bytes", "name_bytes", "status_bytes"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_status_or_header_is_500(srv, kind):
    c = srv.conn()
    try:
        c.send(build_request("GET", f"/bad?kind={kind}", {"Host": "x", "Connection": "close"}))
        raw = c.read_to_eof()
    finally:
        c.close()
    assert raw.startswith(b"HTTP/1.1 500 "), raw[:300]
    assert b"X-Injected" not in raw and b"x-injected" not in raw.lower(), raw


def test_str_body_is_error(srv):
    c = srv.conn()
    try:
        c.send(build_request("GET", "/bad?kind=body_str", {"Host": "x", "Connection": "close"}))
        raw = c.read_to_eof()
    finally:
        c.close()
    assert b"X-Injected str body" not in raw
    # either a 500 (when caught before the headers went out) or an aborted response
    assert raw.startswith(b"HTTP/1.1 500 ") or raw.startswith(b"HTTP/1.1 200 "), raw[:200]
    assert srv.request("GET", "/fixed").status == 200


# --- wsgiref.validate -----------------------------------------------------------------------

def test_validator_clean(hugd):
    s = hugd.start(["-w", "1", "validated:application"], cwd=APPS, workers=1)
    c = s.conn()
    try:
        c.send(build_request("GET", "/some/path?q=1", {"Host": "x"}))
        r = c.read_response()
        assert r.status == 200 and r.json() == {"path": "/some/path", "query": "q=1"}
        c.send(build_request("POST", "/post", {"Host": "x", "Content-Type": "text/plain"},
                             b"posted body"))
        r = c.read_response()
        assert r.status == 200 and r.json() == {"len": 11, "data": "posted body"}
        c.send(build_request("HEAD", "/head", {"Host": "x"}))
        r = c.read_response(method="HEAD")
        assert r.status == 200 and r.header("Content-Length")
        c.send(build_request("GET", "/gen", {"Host": "x"}))
        r = c.read_response()
        assert r.status == 200 and r.json()["path"] == "/gen"
        c.send(build_request("GET", "/missing", {"Host": "x"}))
        assert c.read_response().status == 404
        c.send(build_request("POST", "/post", {"Host": "x", "Transfer-Encoding": "chunked"},
                             b"4\r\nabcd\r\n0\r\n\r\n"))
        r = c.read_response()
        assert r.status == 200, r
    finally:
        c.close()
    r = s.request("GET", "/x", version="HTTP/1.0")
    assert r.status == 200
    time.sleep(0.3)
    err = s.stderr
    for bad in ("Traceback", "AssertionError", "WSGIWarning", "Warning", "Exception ignored"):
        assert bad not in err, err


@pytest.mark.parametrize("kind", ["value_nonlatin1"])
def test_non_latin1_header_value_is_500(srv, kind):
    test_bad_status_or_header_is_500(srv, kind)


def test_latin1_header_value_sent_as_latin1(srv):
    c = srv.conn()
    try:
        c.send(build_request("GET", "/latin1_header", {"Host": "x", "Connection": "close"}))
        raw = c.read_to_eof()
    finally:
        c.close()
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert b"\r\nX-Latin1: caf\xe9\r\n" in raw, raw
