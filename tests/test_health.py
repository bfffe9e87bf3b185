"""The health path and the stop a load balancer needs, on one host:
--health-path answered without the application (also while every worker
is busy, and 503 when the instance cannot serve), --shutdown-delay, and a
drain that closes no keep-alive connection under a request.

tests/test_fleet.py runs the same behind real HAProxy and nginx."""
import http.client
import signal
import socket
import threading
import time

import pytest

from hugdtest import APPS, build_request, free_port, wait_for
from loadgen import LoadGen

APP = "supervised_app:application"


def health(srv, method="GET", path="/health", timeout=5):
    """One health check on a new connection: (status, body, headers, seconds)."""
    t = time.monotonic()
    r = srv.request(method, path, close=False, timeout=timeout)
    return r.status, r.body, r, time.monotonic() - t


def sleeping(srv, n):
    """Wait until n requests are inside the application's sleep."""
    return wait_for(lambda: srv.stderr.count("supervised_app: sleeping") >= n, 10)


def start_sleeps(srv, n, seconds):
    """n requests of `seconds` each, from threads; returns (threads, results)."""
    results = []

    def one():
        try:
            results.append(srv.request("GET", f"/sleep?s={seconds}", timeout=seconds + 10).status)
        except Exception as e:  # noqa: BLE001
            results.append(repr(e))

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    return threads, results


def test_health_path_is_answered_without_the_application(hugd):
    srv = hugd.start(["-w", "2", "--health-path", "/health", "--access-logfile", "-",
                      "--log-level", "debug", APP], cwd=APPS, workers=2)
    # A worker answers (with keep-alive), not the master, once one is free.
    srv.wait_serving(2)
    st, body, r, _ = health(srv)
    assert (st, body) == (200, b"ok\n"), r
    assert r.header("Cache-Control") == "no-store" and r.header("Connection") == "keep-alive"
    st, body, r, _ = health(srv, "HEAD")
    assert (st, body, r.header("Content-Length")) == (200, b"", "3"), r
    assert health(srv, path="/health?from=lb")[:2] == (200, b"ok\n")
    # Only that path, and only GET and HEAD: the rest is the application's.
    assert health(srv, path="/healthz")[0] == 404
    assert health(srv, path="/health/")[0] == 404
    assert srv.request("POST", "/health", body=b"x").status == 404
    # Keep-alive: the same connection serves the app afterwards.
    c = srv.conn()
    try:
        for path in ("/health", "/pid", "/health"):
            c.send(build_request("GET", path, {"Host": "x"}))
            assert c.read_response().status == 200
    finally:
        c.close()
    assert wait_for(lambda: srv.stdout.count('"GET /health HTTP/1.1" 200') >= 3, 5), srv.stdout


def test_health_path_is_off_by_default(hugd):
    srv = hugd.start(["-w", "1", APP], cwd=APPS, workers=1)
    assert health(srv)[0] == 404


def test_health_answers_fast_while_every_worker_is_busy(hugd):
    srv = hugd.start(["-w", "2", "--health-path", "/health", "--log-level", "debug", APP],
                     cwd=APPS, workers=2)
    threads, results = start_sleeps(srv, 2, 2)
    try:
        assert sleeping(srv, 2), srv.stderr[-2000:]
        times = []
        for method in ("GET", "HEAD", "GET", "GET", "HEAD"):
            st, body, r, took = health(srv, method)
            assert st == 200 and r.header("Connection") == "close", r
            times.append(took)
        print(f"health check while both workers sleep: "
              f"{', '.join(f'{t * 1000:.1f}' for t in times)} ms")
        assert max(times) < 0.05, times
        assert "answered a health check with 200 (no worker was free)" in srv.stderr
    finally:
        for t in threads:
            t.join(15)
    assert results == [200, 200], results


def test_master_waits_for_a_split_health_check_and_passes_on_the_rest(hugd):
    srv = hugd.start(["-w", "1", "--health-path", "/health", APP], cwd=APPS, workers=1)
    threads, results = start_sleeps(srv, 1, 1.5)
    try:
        assert sleeping(srv, 1)
        split = srv.conn()
        other = srv.conn()
        try:
            # The head in three pieces: the master reads them as they come.
            split.send(b"GET /hea")
            other.send(b"GET /he")  # not a health check after all, once the rest comes
            time.sleep(0.1)
            split.send(b"lth HTTP/1.1\r\nHo")
            other.send(b"llo HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.1)
            t = time.monotonic()
            split.send(b"st: x\r\n\r\n")
            r = split.read_response()
            assert (r.status, r.body) == (200, b"ok\n") and time.monotonic() - t < 0.5
            assert split.at_eof(2)
            # The other one went to the worker with the bytes the master read.
            r = other.read_response()
            assert r.status == 404, r
        finally:
            split.close()
            other.close()
    finally:
        for t in threads:
            t.join(15)


def test_health_is_503_when_the_queue_is_full(hugd):
    from test_stats import stats
    stats_addr = f"127.0.0.1:{free_port()}"
    srv = hugd.start(["-w", "1", "--accept-queue", "2", "--health-path", "/health",
                      "--stats-bind", stats_addr, APP], cwd=APPS, workers=1)
    threads, results = start_sleeps(srv, 1, 2)
    held = srv.conn()
    try:
        assert sleeping(srv, 1)
        # It waits in the master's queue: accepted there, or accepted by the
        # worker before its call began and handed back once it had a request.
        held.send(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n")
        assert wait_for(lambda: stats(stats_addr)["master"]["queue"]["now"] == 1, 5), \
            stats(stats_addr)["master"]
        st, body, r, _ = health(srv)  # the second: the queue is full
        assert (st, body) == (503, b"queue full\n"), r
        assert held.read_response().status == 200
    finally:
        held.close()
        for t in threads:
            t.join(15)
    assert results == [200]
    assert health(srv)[:2] == (200, b"ok\n")


def test_health_is_503_when_no_worker_is_alive(hugd):
    port = free_port()
    srv = hugd.spawn(["-w", "1", "-b", f"127.0.0.1:{port}", "--health-path", "/health",
                      "dies_at_fork:application"], cwd=APPS)
    srv.port = port
    srv.wait_ready()
    st, body, r, _ = health(srv)
    assert (st, body) == (503, b"no worker\n"), (r, srv.stderr[-2000:])


def test_shutdown_delay_serves_on_with_the_health_check_failing(hugd):
    srv = hugd.start(["-w", "2", "--health-path", "/health", "--shutdown-delay", "1.5", APP],
                     cwd=APPS, workers=2)
    assert health(srv)[0] == 200
    t0 = time.monotonic()
    srv.signal(signal.SIGTERM)
    assert wait_for(lambda: health(srv)[0] == 503, 2)
    st, body, r, _ = health(srv)
    assert (st, body) == (503, b"draining\n"), r
    # Still serving, new connections and keep-alive alike.
    assert srv.request("GET", "/pid").status == 200
    c = srv.conn()
    try:
        c.send(build_request("GET", "/pid", {"Host": "x"}))
        assert c.read_response().header("Connection") != "close"
        # Then it stops accepting: not before the delay is over.

        def refused():
            try:
                srv.connect(timeout=1).close()
                return False
            except OSError:
                return True
        assert wait_for(refused, 5)
        waited = time.monotonic() - t0
        assert 1.4 <= waited < 4, waited
        # The kept-alive connection is still served, and told to close.
        c.send(build_request("GET", "/pid", {"Host": "x"}))
        r = c.read_response()
        assert r.status == 200 and r.header("Connection") == "close", r
        assert c.at_eof(2)
    finally:
        c.close()
    assert srv.wait(10) == 0, srv.stderr[-2000:]
    assert "serving for 1.5 s more (shutdown_delay)" in srv.stderr


def test_second_term_ends_the_shutdown_delay(hugd):
    srv = hugd.start(["-w", "1", "--health-path", "/health", "--shutdown-delay", "60", APP],
                     cwd=APPS, workers=1)
    srv.signal(signal.SIGTERM)
    assert wait_for(lambda: "shutdown_delay" in srv.stderr, 5)
    srv.signal(signal.SIGTERM)
    assert srv.wait(10) == 0


def test_hup_during_the_shutdown_delay_is_ignored(hugd):
    srv = hugd.start(["-w", "1", "--health-path", "/health", "--shutdown-delay", "1", APP],
                     cwd=APPS, workers=1)
    kids = srv.children()
    srv.signal(signal.SIGTERM)
    assert wait_for(lambda: "shutdown_delay" in srv.stderr, 5)
    srv.signal(signal.SIGHUP)
    assert wait_for(lambda: "HUP ignored: stopping" in srv.stderr, 5), srv.stderr[-2000:]
    assert srv.children() == kids
    assert srv.wait(10) == 0


def test_drain_keeps_idle_connections_until_their_keep_alive_timeout(hugd):
    """TERM after a shutdown delay (behind a balancer): an idle keep-alive
    connection is not closed under its client: its next request is
    answered, with Connection: close; one that sends nothing is closed at
    its keep-alive timeout.  (Without a delay a stop closes idle ones at
    once: tests/test_signals.py.)"""
    srv = hugd.start(["-w", "1", "--keep-alive", "3", "--shutdown-delay", "0.3", APP], cwd=APPS,
                     workers=1)
    used, quiet = srv.conn(), srv.conn()
    try:
        for c in (used, quiet):
            c.send(build_request("GET", "/pid", {"Host": "x"}))
            assert c.read_response().header("Connection") != "close"
        t_idle = time.monotonic()
        srv.signal(signal.SIGTERM)
        assert not used.at_eof(1.0), "an idle keep-alive connection was closed at the drain"
        used.send(build_request("GET", "/pid", {"Host": "x"}))
        r = used.read_response()
        assert r.status == 200 and r.header("Connection") == "close", r
        assert used.at_eof(2)
        assert quiet.at_eof(5)
        closed_after = time.monotonic() - t_idle
        assert 2.5 < closed_after < 4.5, closed_after
    finally:
        used.close()
        quiet.close()
    assert srv.wait(10) == 0


def test_response_in_flight_at_term_says_connection_close(hugd):
    """A request running when TERM comes: its response (keep-alive as the
    client asked) says Connection: close, and the connection then ends."""
    srv = hugd.start(["-w", "1", APP], cwd=APPS, workers=1)
    c = srv.conn()
    try:
        c.send(build_request("GET", "/sleep?s=1", {"Host": "x"}))
        assert sleeping(srv, 1)
        srv.signal(signal.SIGTERM)
        r = c.read_response()
        assert r.status == 200 and r.header("Connection") == "close", r
        assert c.at_eof(2)
    finally:
        c.close()
    assert srv.wait(10) == 0


def _refused(r):
    return r.error and ("ConnectionRefusedError" in r.error)


@pytest.mark.timeout_s(90)
@pytest.mark.parametrize("keepalive", [True, False], ids=["keep-alive", "new-connection"])
def test_stop_under_load_cuts_no_connection_under_a_request(hugd, keepalive):
    """16 clients without retries; TERM with a shutdown delay.  During the
    delay nothing fails; after it, no request on a kept-alive connection
    fails (each was told Connection: close), and a new connection is
    refused by the closed listener (or, when the kernel completed it in the
    instant the listener closed, reset before anything was read from it)."""
    srv = hugd.start(["-w", "2", "--health-path", "/health", "--shutdown-delay", "1",
                      "--keep-alive", "2", APP], cwd=APPS, workers=2)
    lg = LoadGen(srv.host, srv.port, path="/pid", threads=16, keepalive=keepalive,
                 deadline=40, timeout=10).start()
    try:
        assert wait_for(lambda: lg.total > 200, 10), lg.report()
        t_term = time.monotonic()
        srv.signal(signal.SIGTERM)
        assert srv.wait(20) == 0, srv.stderr[-2000:]
    finally:
        lg.stop()
    recs = lg.snapshot()
    during = [r for r in recs if t_term <= r.t < t_term + 0.9]
    assert during and all(r.ok for r in during), lg.report()
    # A connection that had carried a request before is a kept-alive one.
    used = {(r.thread, r.conn_id) for r in recs if r.ok}
    cut = [r for r in lg.failed() if (r.thread, r.conn_id) in used]
    assert not cut, "\n".join(map(repr, cut[:10])) + "\n" + lg.report()
    resets = [r for r in lg.failed() if not _refused(r)]
    assert all("ConnectionResetError" in r.error for r in resets), resets[:10]
    assert len(resets) <= 16, resets[:10]
    print(f"\n{len(during)} requests during the delay, none failed; after it "
          f"{len(lg.failed()) - len(resets)} new connections refused by the closed listener, "
          f"{len(resets)} reset as it closed, none cut on a kept-alive connection")
