"""Header handling does not depend on the process's locale.

The embedded interpreter sets LC_CTYPE from the environment, so a server
started under LC_ALL=tr_TR.UTF-8 runs its C code in a locale where 'i' and
'I' are not each other's case (toupper('i') is not 'I'): locale-aware case
functions would turn Accept-Encoding into HTTP_ACCEPT_ENCODiNG and miss
"100-CONTINUE" or an app's "CONNECTION" header.  HTTP is ASCII; hugd must
treat it so whatever the locale.
"""
import os
import shutil
import subprocess
import tempfile

import pytest

from hugdtest import APPS, build_request

LOCALE = "tr_TR.UTF-8"


@pytest.fixture(scope="module")
def locpath():
    """A directory holding a compiled tr_TR.UTF-8, for LOCPATH."""
    localedef = shutil.which("localedef")
    if not localedef:
        pytest.skip("localedef not found (Debian package 'locales'): cannot make tr_TR.UTF-8")
    d = tempfile.mkdtemp(prefix="hugd-loc-")
    try:
        p = subprocess.run([localedef, "-i", "tr_TR", "-f", "UTF-8", os.path.join(d, LOCALE)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        if not os.path.isdir(os.path.join(d, LOCALE)):
            pytest.skip(f"localedef could not make {LOCALE} (exit {p.returncode}): "
                        f"{p.stdout.decode(errors='replace')[-500:]}")
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def srv(module_hugd, locpath):
    s = module_hugd.start(["-w", "1", "wsgiapp:application"], cwd=APPS, workers=1,
                          env={"LC_ALL": LOCALE, "LOCPATH": locpath})
    # Without this the test proves nothing: the server must really run in it.
    r = s.request("GET", "/locale")
    assert r.status == 200 and r.body.decode() == LOCALE, (r.status, r.body, s.stderr[-2000:])
    return s


def test_environ_keys_are_ascii_upper_case(srv):
    headers = {"Accept-Encoding": "gzip", "Authorization": "Basic eDp5", "Origin": "http://o",
               "Cookie": "a=b", "X-MIXED-IDENT": "upper", "x-lower-in": "lower"}
    env = srv.get_json("/env/x", headers=headers)
    assert env.get("HTTP_ACCEPT_ENCODING") == "gzip", sorted(env)
    assert env.get("HTTP_AUTHORIZATION") == "Basic eDp5", sorted(env)
    assert env.get("HTTP_ORIGIN") == "http://o", sorted(env)
    assert env.get("HTTP_COOKIE") == "a=b", sorted(env)
    assert env.get("HTTP_X_MIXED_IDENT") == "upper", sorted(env)
    assert env.get("HTTP_X_LOWER_IN") == "lower", sorted(env)
    for k in env:
        if k.startswith("HTTP_"):
            assert k.isascii() and k == k.upper(), k


def test_content_headers_in_any_case(srv):
    body = b"hello"
    c = srv.conn()
    try:
        c.send(b"POST /echo HTTP/1.1\r\nHOST: x\r\nCONTENT-TYPE: text/x-i\r\n"
               b"CONTENT-LENGTH: 5\r\nConnection: close\r\n\r\n" + body)
        r = c.read_response("POST")
    finally:
        c.close()
    assert r.status == 200 and r.body == body, (r.status, r.body)
    assert r.header("Content-Type") == "text/x-i"
    assert r.header("X-Content-Length-Env") == "5"


@pytest.mark.parametrize("value", ["100-continue", "100-CONTINUE", "100-Continue"])
def test_expect_continue_in_any_case(srv, value):
    c = srv.conn()
    try:
        c.send(f"POST /echo HTTP/1.1\r\nHOST: x\r\nEXPECT: {value}\r\n"
               f"Content-Length: 3\r\nConnection: close\r\n\r\n".encode())
        r = c.read_response("POST", skip_100=False)
        assert r.status == 100, (r.status, r.raw_head)
        c.send(b"abc")
        r = c.read_response("POST")
        assert r.status == 200 and r.body == b"abc", (r.status, r.body)
    finally:
        c.close()


def test_host_still_required(srv):
    c = srv.conn()
    try:
        c.send(b"GET /env/x HTTP/1.1\r\nX-Host-Ish: x\r\nConnection: close\r\n\r\n")
        assert c.read_response().status == 400
    finally:
        c.close()


def test_app_connection_close_in_upper_case(srv):
    c = srv.conn()
    try:
        c.send(build_request("GET", "/app_header?name=CONNECTION&value=close", {"Host": "x"}))
        r = c.read_response()
        assert r.status == 200 and r.body == b"ok", (r.status, r.body)
        conn = [v for k, v in r.headers if k.lower() == "connection"]
        assert conn == ["close"], r.raw_head
        assert c.at_eof(), "the app asked to close; the connection stayed open"
    finally:
        c.close()


@pytest.mark.parametrize("name", ["TRANSFER-ENCODING", "PROXY-AUTHORIZATION", "Proxy-AUTHORIZATION"])
def test_app_hop_by_hop_in_upper_case_refused(srv, name):
    r = srv.request("GET", f"/app_header?name={name}&value=x")
    assert r.status == 500, (r.status, r.raw_head)
    assert name.lower() not in r.raw_head.decode("latin-1").lower()
