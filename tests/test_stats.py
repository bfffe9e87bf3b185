"""The master's stats endpoint (--stats-bind): GET /stats (JSON) and GET
/metrics (Prometheus text 0.0.4), answered by the master itself.

The app is tests/apps/supervised_app.py: /pid answers, /sleep?s=N holds a
worker in the application, any other path is a 404."""
import json
import os
import shutil
import signal
import socket
import tempfile
import threading
import time

import pytest

from hugdtest import APPS, free_port, wait_for

APP = "supervised_app:application"

pytestmark = pytest.mark.timeout_s(60)


@pytest.fixture
def short_tmp():
    # AF_UNIX paths are limited to ~108 bytes: keep it short
    d = tempfile.mkdtemp(prefix="hugd", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def fetch(addr, path, method="GET", timeout=5.0):
    """One request to the stats address ("host:port" or "unix:PATH"):
    (status, headers, body bytes).  The server closes after the answer."""
    if addr.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target = addr[5:]
    else:
        host, port = addr.rsplit(":", 1)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        target = (host, int(port))
    s.settimeout(timeout)
    try:
        s.connect(target)
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: stats\r\nUser-Agent: t\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    assert int(headers["content-length"]) == len(body) or method == "HEAD"
    return status, headers, body


def stats(addr):
    status, headers, body = fetch(addr, "/stats")
    assert status == 200 and headers["content-type"] == "application/json", (status, headers)
    return json.loads(body)


def start(hugd, workers=2, extra=()):
    addr = f"127.0.0.1:{free_port()}"
    srv = hugd.start(["-w", str(workers), "--stats-bind", addr] + list(extra) + [APP], cwd=APPS,
                     workers=workers)
    srv.stats_addr = addr
    return srv


def live_pids(srv):
    return sorted(w["pid"] for w in stats(srv.stats_addr)["workers"])


def test_stats_lists_exactly_the_live_workers(hugd):
    srv = start(hugd, workers=3)
    assert wait_for(lambda: live_pids(srv) == sorted(srv.children()), 10), \
        (live_pids(srv), srv.children())
    d = stats(srv.stats_addr)
    m = d["master"]
    assert m["pid"] == srv.proc.pid
    assert m["version"] and m["generation"] == 0 and m["uptime"] >= 0
    assert m["workers"] == {"target": 3, "min": 3, "max": 3}
    assert m["queue"]["now"] == 0 and m["queue"]["max"] >= 0
    [ls] = m["listeners"]
    assert ls["bind"] == f"127.0.0.1:{srv.port}"
    assert ls["accept_queue"] == 0 and ls["backlog"] == 2048, ls
    assert wait_for(lambda: all(w["state"] == "idle" for w in stats(srv.stats_addr)["workers"]),
                    10)
    for w in stats(srv.stats_addr)["workers"]:
        assert w["request"] is None and w["connections"] == 0
        assert w["rss"] > w["uss"] > 0, w
        assert abs(w["started_at"] - time.time()) < 60, w
    assert [w["id"] for w in d["workers"]] == sorted(w["id"] for w in d["workers"])


def test_busy_worker_shows_its_request_and_its_age(hugd):
    srv = start(hugd)
    t = threading.Thread(target=lambda: srv.request("GET", "/sleep?s=1.5&x=1"))
    t.start()
    try:
        def busy():
            ws = [w for w in stats(srv.stats_addr)["workers"] if w["request"]]
            return ws and ws[0]["request"]["age"] >= 0.3 and ws[0]
        w = wait_for(busy, 10)
        assert w, stats(srv.stats_addr)
        assert w["state"] == "busy" and w["request"]["line"] == "GET /sleep?s=1.5&x=1", w
        assert w["connections"] == 1
    finally:
        t.join(10)
    assert wait_for(lambda: not any(w["request"] for w in stats(srv.stats_addr)["workers"]), 10)
    # It took about 1.5 s: the worker's slowest response says so.
    assert max(w["response_time_max"] for w in stats(srv.stats_addr)["workers"]) >= 1.4


def test_counters_grow_by_status_class(hugd):
    srv = start(hugd)
    before = stats(srv.stats_addr)["totals"]
    for _ in range(5):
        assert srv.request("GET", "/pid").status == 200
    for _ in range(3):
        assert srv.request("GET", "/no/such/path").status == 404
    def counted():
        t = stats(srv.stats_addr)["totals"]
        return t["status"]["2xx"] - before["status"]["2xx"] == 5 and \
            t["status"]["4xx"] - before["status"]["4xx"] == 3 and t
    t = wait_for(counted, 10)
    assert t, stats(srv.stats_addr)["totals"]
    assert t["accepted"] - before["accepted"] >= 8
    assert t["requests"] - before["requests"] == 8
    assert t["status"]["5xx"] == 0
    d = stats(srv.stats_addr)
    assert sum(w["requests"] for w in d["workers"]) == t["requests"]
    assert all(w["response_time_avg"] <= w["response_time_max"] for w in d["workers"])


def test_totals_survive_a_killed_worker(hugd):
    srv = start(hugd)
    for _ in range(6):
        assert srv.request("GET", "/pid").status == 200
    assert wait_for(lambda: stats(srv.stats_addr)["totals"]["requests"] >= 6, 10)
    before = stats(srv.stats_addr)
    victim = before["workers"][0]["pid"]
    os.kill(victim, signal.SIGKILL)
    assert wait_for(lambda: victim not in live_pids(srv) and len(live_pids(srv)) == 2, 10), \
        srv.stderr
    after = stats(srv.stats_addr)
    assert after["totals"]["requests"] >= before["totals"]["requests"]
    for k, v in before["totals"]["status"].items():
        assert after["totals"]["status"][k] >= v, (k, before, after)
    assert after["totals"]["restarts"]["signal"] == 1, after["totals"]
    assert after["totals"]["restarts"]["exit"] == 0
    assert after["totals"]["accepted"] >= before["totals"]["accepted"]
    # The replacement starts from 0; the totals do not.
    assert sorted(live_pids(srv)) == sorted(srv.children())


def test_metrics_parse_as_prometheus_text(hugd):
    parser = pytest.importorskip("prometheus_client.parser")
    srv = start(hugd)
    for path in ("/pid", "/pid", "/missing"):
        srv.request("GET", path)
    assert wait_for(lambda: stats(srv.stats_addr)["totals"]["requests"] >= 3, 10)
    status, headers, body = fetch(srv.stats_addr, "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4"), headers
    text = body.decode()
    for line in text.splitlines():
        if line.startswith("# TYPE ") and line.endswith(" counter"):
            assert line.split()[2].endswith("_total"), line
    fams = {f.name: f for f in parser.text_string_to_metric_families(text)}
    assert all(n.startswith("hugd_") for n in fams), sorted(fams)
    assert all(f.documentation for f in fams.values())

    def samples(name):
        return {tuple(sorted(s.labels.items())): s.value for s in fams[name].samples
                if s.name == name or s.name == name + "_total"}

    h = fams["hugd_request_duration_seconds"]
    assert h.type == "histogram"
    buckets = [s for s in h.samples if s.name.endswith("_bucket")]
    assert buckets[-1].labels["le"] == "+Inf" and len(buckets) == 12
    assert [b.value for b in buckets] == sorted(b.value for b in buckets)
    count = [s.value for s in h.samples if s.name.endswith("_count")][0]
    assert count == buckets[-1].value >= 3
    req = {dict(k)["class"]: v for k, v in samples("hugd_requests").items()}
    assert req["2xx"] >= 2 and req["4xx"] >= 1 and sum(req.values()) == count
    states = {dict(k)["state"]: v for k, v in samples("hugd_workers").items()}
    assert set(states) == {"starting", "idle", "busy", "queued", "draining"}
    assert sum(states.values()) == 2
    assert samples("hugd_queue_length") == {(): 0}
    lq = samples("hugd_listen_queue")
    assert lq == {(("listener", f"127.0.0.1:{srv.port}"),): 0}, lq
    reasons = {dict(k)["reason"] for k in samples("hugd_worker_restarts")}
    assert reasons == {"exit", "signal", "timeout", "max_requests", "scale_down", "memory"}
    scale = {dict(k)["direction"]: v for k, v in samples("hugd_scale_events").items()}
    assert scale == {"up": 0, "down": 0}
    assert samples("hugd_connections_accepted")[()] >= 3


def test_other_paths_and_methods(hugd):
    srv = start(hugd)
    assert fetch(srv.stats_addr, "/")[0] == 404
    assert fetch(srv.stats_addr, "/stats/x")[0] == 404
    assert fetch(srv.stats_addr, "/stats?pretty=1")[0] == 200
    status, headers, _ = fetch(srv.stats_addr, "/stats", method="POST")
    assert status == 405 and "GET" in headers["allow"]
    status, headers, body = fetch(srv.stats_addr, "/metrics", method="HEAD")
    assert status == 200 and body == b""


def test_non_loopback_address_is_refused(hugd, workdir):
    port = free_port()
    s = hugd.run(["--stats-bind", f"0.0.0.0:{port}", APP], cwd=APPS)
    assert s.proc.returncode == 78, s.stderr
    assert "--stats-bind: '0.0.0.0:%d' is not a loopback address" % port in s.stderr, s.stderr
    assert "--stats-allow-remote" in s.stderr and "listening" not in s.stderr
    ini = os.path.join(workdir, "stats.ini")
    with open(ini, "w") as f:
        f.write(f"[server]\n\nstats_bind = 0.0.0.0:{port}\n")
    s = hugd.run(["-c", ini, APP], cwd=APPS)
    assert s.proc.returncode == 78, s.stderr
    assert f"{ini}:3: stats_bind: '0.0.0.0:{port}' is not a loopback address" in s.stderr
    assert "stats_allow_remote = yes" in s.stderr
    # Bad syntax is the ordinary error of the key.
    with open(ini, "w") as f:
        f.write("[server]\nstats_bind = nowhere\n")
    s = hugd.run(["-c", ini, APP], cwd=APPS)
    assert s.proc.returncode == 78 and f"{ini}:2: stats_bind:" in s.stderr, s.stderr


def test_remote_address_when_allowed(hugd):
    port = free_port()
    srv = hugd.start(["-w", "1", "--stats-bind", f"0.0.0.0:{port}", "--stats-allow-remote", APP],
                     cwd=APPS, workers=1)
    assert stats(f"127.0.0.1:{port}")["master"]["pid"] == srv.proc.pid


def test_unix_socket(hugd, short_tmp):
    path = os.path.join(short_tmp, "stats.sock")
    srv = hugd.start(["-w", "1", "--stats-bind", f"unix:{path}", APP], cwd=APPS, workers=1)
    d = stats(f"unix:{path}")
    assert d["master"]["pid"] == srv.proc.pid
    assert fetch(f"unix:{path}", "/metrics")[0] == 200
    assert srv.stop() == 0
    assert not os.path.exists(path)


def test_silent_client_does_not_stall_the_master(hugd):
    srv = start(hugd, extra=["--stats-timeout", "1", "--stats-max-connections", "2"])
    host, port = srv.stats_addr.rsplit(":", 1)
    silent = [socket.create_connection((host, int(port)), timeout=5) for _ in range(3)]
    try:
        silent[0].sendall(b"GET /sta")  # half a request line, then nothing
        t0 = time.monotonic()
        assert srv.request("GET", "/pid").status == 200
        assert time.monotonic() - t0 < 1.0
        # Every place is taken: the next waits in the backlog, and gets its
        # answer once a silent one has timed out.
        t0 = time.monotonic()
        assert stats(srv.stats_addr)["master"]["pid"] == srv.proc.pid
        assert time.monotonic() - t0 < 3.0
        assert srv.request("GET", "/pid").status == 200
        for s in silent[:2]:
            s.settimeout(3)
            assert s.recv(100) == b""  # closed by the master at stats_timeout
    finally:
        for s in silent:
            s.close()
    t0 = time.monotonic()
    stats(srv.stats_addr)
    assert time.monotonic() - t0 < 1.0


def test_reload_counts_a_generation_and_keeps_the_totals(hugd):
    srv = start(hugd, workers=1)
    for _ in range(4):
        srv.request("GET", "/pid")
    assert wait_for(lambda: stats(srv.stats_addr)["totals"]["requests"] >= 4, 10)
    old = live_pids(srv)
    srv.signal(signal.SIGHUP)

    def reloaded():
        try:
            d = stats(srv.stats_addr)
        except OSError:
            return None  # the new image binds the address again
        return d["master"]["generation"] == 1 and \
            not set(w["pid"] for w in d["workers"]) & set(old) and d
    d = wait_for(reloaded, 20)
    assert d, srv.stderr
    assert d["master"]["pid"] == srv.proc.pid
    assert d["totals"]["requests"] >= 4
    assert d["totals"]["restarts"] == {"exit": 0, "signal": 0, "timeout": 0, "max_requests": 0,
                                       "scale_down": 0, "memory": 0}


def test_max_requests_is_a_restart_reason(hugd):
    srv = start(hugd, workers=1, extra=["--max-requests", "3"])
    first = live_pids(srv)
    for _ in range(3):
        assert srv.request("GET", "/pid").status == 200
    assert wait_for(lambda: stats(srv.stats_addr)["totals"]["restarts"]["max_requests"] == 1, 10), \
        stats(srv.stats_addr)
    assert wait_for(lambda: live_pids(srv) != first and len(live_pids(srv)) == 1, 10)
    assert stats(srv.stats_addr)["totals"]["requests"] >= 3


def test_over_long_request_gets_400(hugd):
    srv = start(hugd, extra=["--limit-request-line", "100"])
    host, port = srv.stats_addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"GET /" + b"a" * 200 + b" HTTP/1.1\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    assert data.startswith(b"HTTP/1.1 400 "), data
    assert stats(srv.stats_addr)["master"]["pid"] == srv.proc.pid


def test_timeout_is_a_restart_reason(hugd):
    srv = start(hugd, workers=1, extra=["--timeout", "1"])
    def doomed():
        try:
            srv.request("GET", "/sleep?s=5", timeout=10)
        except (OSError, EOFError):
            pass  # its worker is killed under it
    t = threading.Thread(target=doomed)
    t.start()
    try:
        assert wait_for(lambda: stats(srv.stats_addr)["totals"]["restarts"]["timeout"] == 1, 15), \
            srv.stderr
    finally:
        t.join(15)
    assert stats(srv.stats_addr)["totals"]["restarts"]["signal"] == 0
