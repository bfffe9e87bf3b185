"""What a worker's death costs: only the requests it had read and not yet
answered.  Connections idle between requests, and connections still on
their way to it, belong to no request: the master keeps its own descriptor
of each and gives them to another worker (src/master_conns.c)."""
import os
import signal
import time

import pytest

from hugdtest import APPS, proc_state, wait_for, waiting_in_its_loop
from loadgen import LoadGen

TARGET = "supervised_app:application"


def req(path):
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


def answer(conn):
    r = conn.read_response()
    assert r.status == 200, r
    return int(r.body.split()[1])


def test_idle_connections_outlive_their_worker(hugd):
    """Kill a worker that holds idle keep-alive connections: the next
    request on each of them is answered, by another worker."""
    srv = hugd.start(["-w", "2", TARGET], cwd=APPS, workers=2)
    conns, owner = [], {}
    try:
        # Until both workers hold a few (the second may still be starting).
        while len(conns) < 40 and (len(conns) < 8 or min(
                list(owner.values()).count(p) for p in srv.children()) < 2):
            c = srv.conn()
            conns.append(c)
            c.send(req("/pid"))
            owner[c] = answer(c)
        victims = set(owner.values())
        assert len(victims) == 2, owner  # both workers hold some
        victim = next(iter(victims))
        # A response is out a moment before its connection counts as idle.
        assert wait_for(lambda: waiting_in_its_loop(victim), 5, interval=0.005)
        os.kill(victim, signal.SIGKILL)
        assert wait_for(lambda: victim not in srv.children() and len(srv.children()) == 2, 5)
        for c in conns:
            c.settimeout(5)
            c.send(req("/pid"))
            assert answer(c) != victim
        moved = sum(1 for c in conns if owner[c] == victim)
        assert f"{moved} idle one(s) went to other workers" in srv.stderr, srv.stderr[-2000:]
    finally:
        for c in conns:
            c.close()


def test_requests_waiting_their_turn_outlive_their_worker(hugd):
    """Requests that arrive together on three keep-alive connections of
    one worker (it is stopped while they are sent): it runs one, the others
    wait their turn.  Killed during the first, it costs only that one: the
    others are answered by its replacement.  (A worker reads a request
    only when it is about to run it; the mover is told to wait 10 s before
    moving one, so that they stay on this worker until it dies.)"""
    srv = hugd.start(["-w", "1", "--rebalance-busy-after", "10", TARGET], cwd=APPS, workers=1)
    conns = [srv.conn() for _ in range(3)]
    try:
        for c in conns:
            c.send(req("/pid"))
            answer(c)
        (worker,) = srv.children()
        assert wait_for(lambda: waiting_in_its_loop(worker), 5, interval=0.005)
        os.kill(worker, signal.SIGSTOP)
        try:
            assert wait_for(lambda: proc_state(worker) == "T", 5, interval=0.001)
            for c in conns:
                c.send(req("/sleep?s=2"))
        finally:
            os.kill(worker, signal.SIGCONT)
        assert wait_for(lambda: f"sleeping 2.0 s in {worker}" in srv.stderr, 5), srv.stderr[-2000:]
        os.kill(worker, signal.SIGKILL)
        ended = []
        for c in conns:
            c.settimeout(10)
            try:
                r = c.read_response()
                ended.append(r.status)
            except (ConnectionError, EOFError, OSError) as e:
                ended.append(type(e).__name__)
        assert sorted(map(str, ended)).count("200") == 2, ended
    finally:
        for c in conns:
            c.close()


def test_connections_in_a_dead_workers_channel_are_served(hugd):
    """A worker that dies with connections sent to it but not yet taken
    (it is stopped, then killed): they are served by another worker."""
    srv = hugd.start(["-w", "2", TARGET], cwd=APPS, workers=2)
    a, b = srv.children()
    os.kill(a, signal.SIGSTOP)  # it can't take anything now, nor look free
    try:
        # Its state was "free" when stopped: the master may hand it
        # connections before it notices nothing comes back.
        conns = []
        for _ in range(6):
            c = srv.conn()
            c.send(req("/pid"))
            conns.append(c)
        os.kill(a, signal.SIGKILL)
        for c in conns:
            c.settimeout(5)
            assert answer(c) != a
    finally:
        try:
            os.kill(a, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for c in conns:
            c.close()


@pytest.mark.timeout_s(60)
def test_repeated_kills_cost_only_requests_in_flight(hugd):
    """A worker SIGKILLed every 300 ms for 6 s under 16 keep-alive and 16
    new-connection clients on 4 workers: a kill costs at most the requests
    the victim had read and not answered; every other request succeeds."""
    srv = hugd.start(["-w", "4", TARGET], cwd=APPS, workers=4)
    ka = LoadGen(srv.host, srv.port, threads=16, deadline=30).start()
    nc = LoadGen(srv.host, srv.port, threads=16, keepalive=False, deadline=30).start()
    kills = 0
    samples = []
    try:
        assert wait_for(lambda: ka.total > 200 and nc.total > 100, 10)
        end = time.monotonic() + 6
        while time.monotonic() < end:
            kids = srv.children()
            samples.append(len(kids))
            if kids:
                os.kill(kids[kills % len(kids)], signal.SIGKILL)
                kills += 1
            time.sleep(0.3)
        time.sleep(0.5)
    finally:
        ka.stop()
        nc.stop()
    fails = ka.failures + nc.failures
    report = f"{kills} kills, pool sizes {samples}\n{ka.report()}\n{nc.report()}"
    print(report)
    # A kill costs the requests its victim had read and not answered; the
    # connections it held between requests go on with another worker.
    # (Before the master kept its own descriptors: about 5 per kill.)
    assert fails <= kills, report
    assert ka.total > 1000 and nc.total > 500, report


def test_keepalive_counts_from_the_end_of_a_long_request(hugd):
    """A 3 s request under --keep-alive 2: the idle timeout starts when its
    response is out, so the next request on the connection is answered."""
    srv = hugd.start(["-w", "1", "--keep-alive", "2", TARGET], cwd=APPS, workers=1)
    c = srv.conn()
    try:
        c.settimeout(10)
        c.send(req("/sleep?s=3"))
        r = c.read_response()
        assert r.status == 200 and r.header("Connection") != "close", r
        time.sleep(0.5)  # part of the scenario: well inside the 2 s
        c.send(req("/pid"))
        assert answer(c) > 0
    finally:
        c.close()


def any_body(body):
    return "ok", 0


@pytest.mark.timeout_s(60)
def test_hup_keeps_accepting_new_connections(hugd, workdir):
    """While a reload's new image imports the new code (a Hug app: a
    second or more), the previous generation goes on taking new
    connections: under 16 new-connection and 16 keep-alive clients, two
    HUPs fail nothing and no new connection waits anywhere near an import
    (before: up to 2.5 s)."""
    import shutil
    from hugdtest import REPO
    shutil.copy(REPO / "conf" / "hello.py", workdir)
    srv = hugd.start(["-w", "4", "hello.py"], cwd=workdir, workers=4)
    ka = LoadGen(srv.host, srv.port, path="/", threads=16, deadline=40, parse=any_body).start()
    nc = LoadGen(srv.host, srv.port, path="/", threads=16, keepalive=False, deadline=40,
                 parse=any_body).start()
    marks = []
    try:
        assert wait_for(lambda: nc.total > 100, 10)
        for n in (1, 2):
            marks.append(time.monotonic())
            srv.signal(signal.SIGHUP)
            assert wait_for(lambda: srv.stderr.count("retiring 4 of the previous generation") >= n,
                            20), srv.stderr[-3000:]
            time.sleep(0.5)  # load after the swap, too
    finally:
        ka.stop()
        nc.stop()
    report = f"{ka.report()}\n{nc.report()}"
    assert ka.failures == 0 and nc.failures == 0, report
    during = sorted(r.latency for r in nc.ok_records(since=marks[0]))
    p99, worst = during[int(len(during) * 0.99)], during[-1]
    print(f"new connections during the reloads: p99 {p99 * 1000:.1f} ms, max {worst * 1000:.1f} ms")
    assert worst < 1.0, report
