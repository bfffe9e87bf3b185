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
