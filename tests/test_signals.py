"""Signals and process lifecycle: graceful and quick stops, orphaned workers,
respawn, TTIN/TTOU."""
import os
import signal
import threading
import time

import pytest

from hugdtest import APPS, pid_alive, wait_for


def all_gone(pids, timeout):
    return wait_for(lambda: not any(pid_alive(p) for p in pids), timeout)


def test_term_graceful_with_request_in_flight(hugd):
    srv = hugd.start(["-w", "2", "--graceful-timeout", "10", "wsgiapp:application"],
                     cwd=APPS, workers=2)
    kids = srv.children()
    res = {}

    def do():
        try:
            r = srv.request("GET", "/sleep?s=1", timeout=10)
            res["status"] = r.status
            res["body"] = r.body
        except Exception as e:  # noqa: BLE001
            res["error"] = repr(e)

    t = threading.Thread(target=do)
    t.start()
    time.sleep(0.3)
    srv.signal(signal.SIGTERM)
    t.join(10)
    assert res.get("status") == 200, (res, srv.stderr[-2000:])
    rc = srv.wait(10)
    assert rc == 0, (rc, srv.stderr[-2000:])
    assert all_gone(kids, 2), [p for p in kids if pid_alive(p)]


def test_term_stops_accepting(hugd):
    srv = hugd.start(["-w", "1", "wsgiapp:application"], cwd=APPS, workers=1)
    srv.signal(signal.SIGTERM)
    srv.wait(10)
    with pytest.raises(OSError):
        srv.connect(timeout=1).close()


def test_term_graceful_timeout_bounds_drain(hugd):
    srv = hugd.start(["-w", "1", "--graceful-timeout", "1", "wsgiapp:application"],
                     cwd=APPS, workers=1)
    kids = srv.children()
    t = threading.Thread(target=lambda: _swallow(srv, "/sleep?s=20"))
    t.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    srv.signal(signal.SIGTERM)
    srv.wait(8)
    assert time.monotonic() - t0 < 5
    assert all_gone(kids, 2)
    t.join(15)


def _swallow(srv, path):
    try:
        srv.request("GET", path, timeout=25)
    except Exception:  # noqa: BLE001
        pass


def test_int_stops_at_once(hugd):
    srv = hugd.start(["-w", "2", "wsgiapp:application"], cwd=APPS, workers=2)
    kids = srv.children()
    t = threading.Thread(target=lambda: _swallow(srv, "/sleep?s=10"))
    t.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    srv.signal(signal.SIGINT)
    srv.wait(5)
    assert time.monotonic() - t0 < 2, "SIGINT did not stop at once"
    assert all_gone(kids, 2), [p for p in kids if pid_alive(p)]
    t.join(15)


def test_quit_stops_at_once(hugd):
    srv = hugd.start(["-w", "2", "wsgiapp:application"], cwd=APPS, workers=2)
    kids = srv.children()
    t0 = time.monotonic()
    srv.signal(signal.SIGQUIT)
    srv.wait(5)
    assert time.monotonic() - t0 < 2
    assert all_gone(kids, 2)


def test_kill_master_takes_workers_down(hugd):
    srv = hugd.start(["-w", "2", "wsgiapp:application"], cwd=APPS, workers=2)
    kids = srv.children()
    assert len(kids) == 2
    os.kill(srv.proc.pid, signal.SIGKILL)
    srv.proc.wait(5)
    assert all_gone(kids, 1.5), f"workers survived their master: {[p for p in kids if pid_alive(p)]}"


def test_dead_worker_respawned(hugd):
    srv = hugd.start(["-w", "2", "wsgiapp:application"], cwd=APPS, workers=2)
    kids = srv.children()
    os.kill(kids[0], signal.SIGKILL)
    assert wait_for(lambda: len(srv.children()) == 2 and kids[0] not in srv.children(), 5), \
        (kids, srv.children(), srv.stderr[-2000:])
    for _ in range(6):
        assert srv.request("GET", "/fixed").status == 200


def test_ttin_ttou(hugd):
    srv = hugd.start(["-w", "1", "wsgiapp:application"], cwd=APPS, workers=1)
    srv.signal(signal.SIGTTIN)
    assert wait_for(lambda: len(srv.children()) == 2, 5), srv.children()
    srv.signal(signal.SIGTTOU)
    assert wait_for(lambda: len(srv.children()) == 1, 5), srv.children()
    srv.signal(signal.SIGTTOU)  # never below 1
    time.sleep(0.5)
    assert len(srv.children()) == 1
    assert srv.request("GET", "/fixed").status == 200


def test_stop_leaves_nothing_running(hugd):
    srv = hugd.start(["-w", "3", "wsgiapp:application"], cwd=APPS, workers=3)
    kids = srv.children()
    assert srv.stop(timeout=10) == 0
    assert all_gone(kids + [srv.proc.pid], 2)


def test_term_with_idle_keepalive_connection_exits_promptly(hugd):
    srv = hugd.start(["-w", "1", "--keep-alive", "30", "--graceful-timeout", "20",
                      "wsgiapp:application"], cwd=APPS, workers=1)
    kids = srv.children()
    c = srv.conn()
    try:
        c.send(b"GET /fixed HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_response().status == 200
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        rc = srv.wait(10)
        took = time.monotonic() - t0
        assert rc == 0
        assert took < 3, f"an idle keep-alive connection held a graceful stop for {took:.1f}s"
        assert c.at_eof(2)
    finally:
        c.close()
    assert all_gone(kids, 2)


def test_hup_reloads_workers(hugd):
    srv = hugd.start(["-w", "2", "wsgiapp:application"], cwd=APPS, workers=2)
    old = set(srv.children())
    master = srv.proc.pid
    srv.signal(signal.SIGHUP)
    ok = wait_for(lambda: len(srv.children()) == 2 and not (set(srv.children()) & old), 10)
    assert ok, (old, srv.children(), srv.stderr[-2000:])
    assert srv.proc.poll() is None and srv.proc.pid == master
    for _ in range(4):
        assert srv.request("GET", "/fixed").status == 200


def test_usr1_reopens_access_log(hugd, workdir):
    path = os.path.join(workdir, "access.log")
    srv = hugd.start(["-w", "1", "--access-logfile", path, "wsgiapp:application"],
                     cwd=APPS, workers=1)
    srv.request("GET", "/fixed?before-rotate")
    assert wait_for(lambda: os.path.exists(path) and "before-rotate" in open(path).read(), 3)
    os.rename(path, path + ".1")
    srv.signal(signal.SIGUSR1)
    time.sleep(0.5)
    srv.request("GET", "/fixed?after-rotate")
    assert wait_for(lambda: os.path.exists(path) and "after-rotate" in open(path).read(), 3), \
        "access log not reopened after USR1"
    assert "after-rotate" not in open(path + ".1").read()
