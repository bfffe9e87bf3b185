"""The access log: every atom of --access-logformat, the JSON lines form,
errors in the format, and what is logged for requests refused while they
were being parsed."""
import base64
import json
import os
import re
import socket
import time

import pytest

from hugdtest import APPS, build_request, wait_for

# Every atom, tab-separated (a tab in a value would be escaped, so the
# fields split cleanly).
ATOMS = ["h", "l", "u", "t", "r", "m", "U", "q", "H", "s", "b", "B", "f", "a", "T", "M", "D",
         "L", "p", "{x-marker}i", "{content-type}o", "{x-status-route}o"]
FORMAT = "\t".join(f"%({a})s" for a in ATOMS) + "\t%%"


def _lines(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("latin-1").splitlines()
    except FileNotFoundError:
        return []


def _line_with(path, marker, timeout=5):
    found = wait_for(lambda: [l for l in _lines(path) if marker in l], timeout)
    assert found, f"no access log line with {marker!r}:\n" + "\n".join(_lines(path)[-20:])
    assert len(found) == 1, found
    return found[0]


@pytest.fixture(scope="module")
def every_atom(module_hugd, module_workdir):
    path = os.path.join(module_workdir, "atoms.log")
    srv = module_hugd.start(["-w", "2", "--access-logfile", path, "--access-logformat", FORMAT,
                             "wsgiapp:application"], cwd=APPS)
    return srv, path


def _send_garbage(srv, raw):
    """raw on a fresh connection; it must be refused with 400."""
    c = srv.conn()
    try:
        c.send(raw)
        assert c.read_response().status == 400
    finally:
        c.close()


def _fields(every_atom, marker, path="/fixed", headers=None, version="HTTP/1.1"):
    srv, log = every_atom
    r = srv.request("GET", f"{path}{'&' if '?' in path else '?'}id={marker}",
                    headers=headers, version=version)
    fields = _line_with(log, f"id={marker}").split("\t")
    assert len(fields) == len(ATOMS) + 1, fields
    return dict(zip(ATOMS + ["%%"], fields)), r


def test_atom_h_l(every_atom):
    f, _ = _fields(every_atom, "hl")
    assert f["h"] == "127.0.0.1"
    assert f["l"] == "-"


def test_atom_u(every_atom):
    auth = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    f, _ = _fields(every_atom, "u1", headers={"Authorization": auth})
    assert f["u"] == "alice"
    f, _ = _fields(every_atom, "u2")
    assert f["u"] == "-"


def test_atom_t(every_atom):
    f, _ = _fields(every_atom, "t")
    m = re.fullmatch(r"\[(\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\]", f["t"])
    assert m, f["t"]
    logged = time.mktime(time.strptime(m[1], "%d/%b/%Y:%H:%M:%S %z"))
    assert abs(logged - time.time()) < 120 + abs(time.timezone), f["t"]


def test_atom_r_m_U_q_H(every_atom):
    f, _ = _fields(every_atom, "rq", path="/fixed?a=1", version="HTTP/1.0")
    assert f["r"] == "GET /fixed?a=1&id=rq HTTP/1.0"
    assert f["m"] == "GET"
    assert f["U"] == "/fixed"
    assert f["q"] == "a=1&id=rq"
    assert f["H"] == "HTTP/1.0"


def test_atom_s(every_atom):
    f, r = _fields(every_atom, "s", path="/status?code=204")
    assert r.status == 204
    assert f["s"] == "204"


def test_atom_b_B(every_atom):
    f, r = _fields(every_atom, "b")
    assert len(r.body) == 100
    assert f["b"] == "100" and f["B"] == "100"


def test_atom_f_a(every_atom):
    f, _ = _fields(every_atom, "fa", headers={"Referer": "http://ref.example/x",
                                              "User-Agent": "agent \"quoted\"/1"})
    assert f["f"] == "http://ref.example/x"
    assert f["a"] == 'agent \\"quoted\\"/1'  # quotes escaped: a field cannot end early
    f, _ = _fields(every_atom, "fa2")
    assert f["f"] == "-" and f["a"] == "-"


def test_atoms_T_M_D_L(every_atom):
    t0 = time.monotonic()
    f, _ = _fields(every_atom, "dur", path="/sleep?s=0.3")
    took = time.monotonic() - t0
    assert f["T"] == "0"
    assert 300 <= int(f["M"]) <= took * 1e3 + 1
    assert 300000 <= int(f["D"]) <= took * 1e6 + 1000
    assert re.fullmatch(r"\d+\.\d{6}", f["L"]) and 0.3 <= float(f["L"]) <= took + 0.001
    assert abs(int(f["D"]) / 1e6 - float(f["L"])) < 1e-5


def test_atom_p(every_atom):
    f, r = _fields(every_atom, "p", path="/pid")
    assert f["p"] == f"<{r.text}>"  # the worker that served it, as gunicorn writes it


def test_atom_request_header(every_atom):
    f, _ = _fields(every_atom, "hdr", headers={"X-Marker": "mark-42"})
    assert f["{x-marker}i"] == "mark-42"
    f, _ = _fields(every_atom, "hdr2")
    assert f["{x-marker}i"] == "-"


def test_atom_response_header(every_atom):
    f, _ = _fields(every_atom, "out")
    assert f["{content-type}o"] == "text/plain"
    assert f["{x-status-route}o"] == "-"
    f, _ = _fields(every_atom, "out2", path="/status?code=205")
    assert f["{x-status-route}o"] == "205"
    assert f["{content-type}o"] == "-"


def test_percent(every_atom):
    f, _ = _fields(every_atom, "pct")
    assert f["%%"] == "%"


# --- JSON lines -------------------------------------------------------------------

def test_json_lines(hugd, workdir):
    path = os.path.join(workdir, "access.jsonl")
    srv = hugd.start(["--access-logfile", path, "--access-logformat", "json",
                      "wsgiapp:application"], cwd=APPS)
    srv.request("GET", "/fixed?id=j1", headers={"Referer": "http://r/",
                                                "User-Agent": 'we "quote"\\ and \xe9'})
    _send_garbage(srv, b"\x01garbage\r\n\r\n")
    assert wait_for(lambda: len(_lines(path)) == 2, 5), _lines(path)
    # Two workers may write their lines in either order.
    bad, good = sorted((json.loads(l) for l in _lines(path)), key=lambda o: o["status"] == 200)
    assert list(good) == ["time", "remote_addr", "user", "method", "url", "path", "query",
                          "protocol", "status", "bytes", "duration", "referer", "user_agent",
                          "pid"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d", good["time"])
    assert good["remote_addr"] == "127.0.0.1"
    assert good["user"] is None
    assert (good["method"], good["url"], good["path"], good["query"], good["protocol"]) == \
        ("GET", "/fixed?id=j1", "/fixed", "id=j1", "HTTP/1.1")
    assert (good["status"], good["bytes"]) == (200, 100)
    assert isinstance(good["duration"], float) and 0 <= good["duration"] < 5
    assert good["referer"] == "http://r/"
    assert good["user_agent"] == 'we "quote"\\ and \xe9'
    assert good["pid"] in srv.children()
    assert bad["status"] == 400 and bad["bytes"] == len(b"Bad Request\n")
    assert bad["method"] is bad["url"] is bad["protocol"] is None


# --- format errors: exit 78 (EX_CONFIG) -----------------------------------------------

def test_unknown_atom_on_the_command_line(hugd):
    s = hugd.run(["--access-logformat", "%(h)s %(x)s", "wsgiapp:application"], cwd=APPS)
    assert s.proc.returncode == 78, s.stderr
    assert s.stderr.strip().splitlines()[0].startswith(
        "hugd: --access-logformat: unknown atom %(x)s"), s.stderr
    assert "listening" not in s.stderr


def test_unknown_atom_in_the_file(hugd, workdir):
    ini = os.path.join(workdir, "h.ini")
    with open(ini, "w") as f:
        f.write("[log]\naccess_logfile = -\n\naccess_logformat = %(h)s %({Host}e)s\n")
    s = hugd.run(["-c", ini, "wsgiapp:application"], cwd=APPS)
    assert s.proc.returncode == 78, s.stderr
    assert s.stderr.startswith(f"{ini}:4: access_logformat: unknown atom %({{Host}}e)s"), s.stderr


# --- requests refused while parsing ---------------------------------------------------

@pytest.fixture(scope="module")
def strict(module_hugd, module_workdir):
    path = os.path.join(module_workdir, "strict.log")
    srv = module_hugd.start(["-w", "1", "--access-logfile", path, "--max-body-size", "1k",
                             "--limit-request-line", "100", "--header-timeout", "0.5",
                             "wsgiapp:application"], cwd=APPS)
    return srv, path


LINE = re.compile(r'^127\.0\.0\.1 - - \[[^]]+\] "(?P<r>[^"]*)" (?P<s>\d{3}) (?P<b>\d+) '
                  r'"-" "-" \d+\.\d{6}$')

MALFORMED = [
    (b"\x01\x02garbage\r\n\r\n", "- - -", 400),
    (b"BREW /pot HTTP/1.1\r\nHost: h\r\n\r\n", "- - -", 501),  # a token: not implemented
    (b"GET /v HTTP/2.0\r\nHost: h\r\n\r\n", "GET /v HTTP/2.0", 505),
    (b"GET /v HTTP/1.1\r\n\r\n", "GET /v HTTP/1.1", 400),  # no Host
    (b"GET /" + b"x" * 200 + b" HTTP/1.1\r\nHost: h\r\n\r\n", "GET - -", 414),
    (b"GET /h HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(101)) + b"\r\n",
     "GET /h HTTP/1.1", 431),
    (b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n", "POST /echo HTTP/1.1",
     413),
    (b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", "CONNECT h:443 HTTP/1.1", 501),
    (b"GET /slow HTTP/1", "GET /slow -", 408),
]


@pytest.mark.parametrize("raw, request_line, status", MALFORMED,
                         ids=[str(m[2]) + "-" + str(i) for i, m in enumerate(MALFORMED)])
def test_malformed_request_line(strict, raw, request_line, status):
    srv, path = strict
    before = len(_lines(path))
    c = srv.conn()
    try:
        # A good request first, on the same connection: nothing of its
        # response may leak into the refused request's line.
        c.send(build_request("GET", "/fixed", {"Host": "h"}))
        assert c.read_response().status == 200
        c.send(raw)
        r = c.read_response()
        assert r.status == status, r
        assert wait_for(lambda: len(_lines(path)) >= before + 2, 5), _lines(path)[before:]
    finally:
        c.close()
    first, line = _lines(path)[before:before + 2]
    assert LINE.match(first)["r"] == "GET /fixed HTTP/1.1", first
    m = LINE.match(line)
    assert m, line
    assert (m["r"], int(m["s"])) == (request_line, status), line
    assert int(m["b"]) == len(r.body), line


def test_malformed_first_request(strict):
    """Nothing parsed on a fresh connection: no method, target or version
    is made up (this once read "DELETE  HTTP/0.0")."""
    srv, path = strict
    before = len(_lines(path))
    _send_garbage(srv, b"\x01\r\n\r\n")
    assert wait_for(lambda: len(_lines(path)) > before, 5)
    m = LINE.match(_lines(path)[before])
    assert m and (m["r"], m["s"], m["b"]) == ("- - -", "400", "12"), _lines(path)[before]
