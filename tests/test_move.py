"""Moving connections off a worker that is inside the application (the mover
thread, include/hugd/mover.h): what moves, how fast, that nothing is lost,
and that the application's own C calls are never interrupted."""
import fcntl
import os
import select
import signal
import struct
import subprocess
import termios
import time

import pytest

from hugdtest import APPS, wait_for

GET = "GET {} HTTP/1.1\r\nHost: x\r\n\r\n"


def req(path):
    return GET.format(path).encode()


def pid_of(resp):
    assert resp.status == 200, resp
    assert resp.body.split() and resp.body.split()[-1].isdigit(), resp
    return int(resp.body.split()[-1])


def shared_worker(hugd, nconns, args=()):
    """Start one worker, open nconns keep-alive connections that it serves,
    then add a second worker and wait until it answers.  Returns (srv,
    conns, first_pid, second_pid): every connection in conns belongs to the
    first worker."""
    srv = hugd.start(["-w", "1", *args, "move_app:application"], cwd=APPS, workers=1)
    first = srv.children()[0]
    conns = [srv.conn() for _ in range(nconns)]
    for c in conns:
        c.send(req("/fast"))
        assert pid_of(c.read_response()) == first
    srv.signal(signal.SIGTTIN)
    assert wait_for(lambda: len(srv.children()) == 2, 10), srv.children()
    second = [p for p in srv.children() if p != first][0]

    # The new worker takes new connections once it is up (the busy-free
    # balancer prefers the one with fewer connections).
    def second_up():
        r = srv.request("GET", "/fast")
        return pid_of(r) == second
    assert wait_for(second_up, 10, interval=0.02), "the second worker never answered"
    return srv, conns, first, second


def start_slow(srv, conn, tmp_path, seconds, name="mark"):
    """Send a slow request on conn and wait until the app says it started."""
    mark = tmp_path / name
    if mark.exists():
        mark.unlink()
    conn.send(req(f"/slow?s={seconds}&mark={mark}"))
    assert wait_for(mark.exists, 5, interval=0.002), "the slow request never started"
    return int(mark.read_text())


def channel_backlog(pid):
    """Bytes waiting to be read in the Unix sockets of process pid."""
    out = subprocess.run(["ss", "-xpnH"], capture_output=True, text=True, timeout=10).stdout
    total = 0
    for line in out.splitlines():
        if f"pid={pid}," in line:
            total += int(line.split()[2])
    return total


def close_all(conns):
    for c in conns:
        c.close()


def test_request_read_but_not_started_is_answered(hugd, tmp_path):
    """Requests a worker had read, but not started, when it went into a
    long request move with their bytes and are answered by the other
    worker.  The worker is kept busy first (z) so that x and the ys arrive
    together and are read in one batch; ys on both sides of x, so one of
    them is behind x whatever the batch's order."""
    srv, conns, first, second = shared_worker(hugd, 5, ["--rebalance-after", "0.1"])
    z, x, y1, y2, y3 = conns
    try:
        z.send(req("/slow?s=0.03"))
        y1.send(req("/fast"))
        x.send(req("/slow?s=1.5"))
        y2.send(req("/fast"))
        y3.send(req("/fast"))
        t0 = time.monotonic()
        for y in (y1, y2, y3):
            y.settimeout(5)
            r = y.read_response()
            assert r.status == 200
        took = time.monotonic() - t0
        assert took < 1.0, f"a request waited {took:.2f} s behind the 1.5 s one"
        assert pid_of(z.read_response()) == first
        x.settimeout(5)
        assert x.read_response().status == 200
        # the moved connections go on working
        for y in (y1, y2, y3):
            y.send(req("/fast"))
            assert y.read_response().status == 200
    finally:
        close_all(conns)


def test_pipelined_requests_move_together(hugd, tmp_path):
    """Two requests pipelined on a connection of a busy worker: both are
    answered, in order, by a free worker, well before the long request
    ends."""
    srv, conns, first, second = shared_worker(hugd, 2)
    a, b = conns
    try:
        start_slow(srv, a, tmp_path, 1.5)
        t0 = time.monotonic()
        b.send(req("/fast?n=1") + req("/fast?n=2"))
        b.settimeout(5)
        r1, r2 = b.read_response(), b.read_response()
        took = time.monotonic() - t0
        assert pid_of(r1) == pid_of(r2) == second
        assert took < 0.5, took
        a.settimeout(5)
        assert pid_of(a.read_response()) == first
    finally:
        close_all(conns)


def test_request_head_sent_in_pieces_moves(hugd, tmp_path):
    """A request head half sent when its worker became busy moves with the
    bytes already read, and the other worker completes it."""
    srv, conns, first, second = shared_worker(hugd, 2)
    a, b = conns
    try:
        b.send(b"GET /fast HTTP/1.1\r\nHo")
        start_slow(srv, a, tmp_path, 1.5)
        time.sleep(0.01)  # part of the scenario: the rest comes later
        t0 = time.monotonic()
        b.send(b"st: x\r\n\r\n")
        b.settimeout(5)
        r = b.read_response()
        assert pid_of(r) == second
        assert time.monotonic() - t0 < 0.5
        a.settimeout(5)
        assert pid_of(a.read_response()) == first
    finally:
        close_all(conns)


def test_fast_request_behind_slow_answered_in_milliseconds(hugd, tmp_path):
    """A fast request sent 10 ms into a 1 s request on the same worker's
    keep-alive connection is answered by the other worker in under 25 ms:
    worst of 5 trials, each on a connection of its own."""
    srv, conns, first, second = shared_worker(hugd, 6)
    a, bs = conns[0], conns[1:]
    times = []
    try:
        for i, b in enumerate(bs):
            start_slow(srv, a, tmp_path, 1.0, name=f"m{i}")
            time.sleep(0.01)  # the scenario: 10 ms into the slow request
            t0 = time.monotonic()
            b.send(req("/fast"))
            b.settimeout(5)
            r = b.read_response()
            times.append(time.monotonic() - t0)
            assert pid_of(r) == second
            a.settimeout(5)
            assert pid_of(a.read_response()) == first
        assert max(times) < 0.025, [f"{t * 1000:.1f} ms" for t in times]
    finally:
        close_all(conns)


def test_app_c_call_not_interrupted(hugd, tmp_path):
    """poll(NULL, 0, 300) called from C by the application while its worker
    holds other connections returns 0 after the full wait: nothing
    interrupts the application's thread."""
    srv, conns, first, second = shared_worker(hugd, 3)
    a, b, c = conns
    try:
        a.send(req("/poll?ms=300"))
        time.sleep(0.05)
        b.send(req("/fast"))  # something to move while the app waits
        a.settimeout(5)
        rc, err, ms, pid = a.read_response().body.split()
        assert pid == str(first).encode()
        assert rc == b"0", f"poll returned {rc} errno {err} after {ms} ms"
        assert int(ms) >= 295
        assert b.read_response().status == 200
    finally:
        close_all(conns)


def moves_logged(srv):
    return srv.stderr.count("moved a connection")


def test_nothing_moves_when_nothing_waits(hugd, tmp_path):
    """Idle keep-alive connections of a busy worker stay where they are: a
    200 ms request next to 3 idle connections moves none of them.  Then a
    request on one of them moves exactly that one."""
    srv, conns, first, second = shared_worker(hugd, 4, ["--log-level", "debug"])
    a = conns[0]
    try:
        start_slow(srv, a, tmp_path, 0.2)
        a.settimeout(5)
        assert pid_of(a.read_response()) == first
        assert moves_logged(srv) == 0, srv.stderr
        start_slow(srv, a, tmp_path, 1.0, name="m2")
        conns[1].send(req("/fast"))
        conns[1].settimeout(5)
        assert pid_of(conns[1].read_response()) == second
        assert pid_of(a.read_response()) == first
        assert wait_for(lambda: moves_logged(srv) == 1, 5), srv.stderr
        # the others are still the first worker's
        for c in conns[2:]:
            c.send(req("/fast"))
            assert pid_of(c.read_response()) == first
        assert moves_logged(srv) == 1
    finally:
        close_all(conns)


def epoll_entries(pid):
    """{(epoll fd, registered fd): data} for every epoll set the process has.
    libev stores a generation count in the data's upper half and bumps it
    whenever it registers a descriptor again, as it does for all of them
    when it rebuilds its set."""
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:[eventpoll]":
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                for line in f:
                    if line.startswith("tfd:"):
                        parts = line.split()
                        out[(int(fd), int(parts[1]))] = parts[5]
        except FileNotFoundError:
            continue
    return out


def open_fds(pid):
    return {int(fd) for fd in os.listdir(f"/proc/{pid}/fd")}


def test_moved_connection_leaves_the_epoll_set(hugd, tmp_path):
    """A connection that moved away is dropped from the old worker's epoll
    set (its descriptor lives on elsewhere): no registration for a closed
    descriptor is left behind, and the set is not rebuilt (libev does that
    when an event arrives for a descriptor it no longer has)."""
    srv, conns, first, second = shared_worker(hugd, 3)
    a, b, c = conns
    try:
        before = epoll_entries(first)
        start_slow(srv, a, tmp_path, 0.5)
        b.send(req("/fast"))
        assert pid_of(b.read_response()) == second
        a.settimeout(5)
        assert pid_of(a.read_response()) == first
        c.send(req("/fast"))  # an iteration of the old worker's loop
        assert pid_of(c.read_response()) == first
        mid = epoll_entries(first)
        stale = {k for k in mid if k[1] not in open_fds(first)}
        assert not stale, f"closed descriptors still registered: {stale}"
        b.send(req("/fast"))  # traffic on the moved connection
        assert pid_of(b.read_response()) == second
        c.send(req("/fast"))
        assert pid_of(c.read_response()) == first
        after = epoll_entries(first)
        again = {k for k in before if k in after and after[k] != before[k]}
        assert not again, f"the worker registered these again (a rebuilt set): {again}"
    finally:
        close_all(conns)


def test_moved_bytes_survive_the_receivers_death(hugd, tmp_path):
    """A connection moved with bytes its first worker had already read
    (half a request head) is sent to a worker that dies before taking it
    from its channel: the master sends it on with those bytes, and the
    request is answered.  (The receiver is stopped, so that it cannot take
    it, then killed.)"""
    srv, conns, first, second = shared_worker(hugd, 2, ["--log-level", "debug"])
    a, b = conns
    try:
        os.kill(second, signal.SIGSTOP)
        b.send(b"GET /fast HTTP/1.1\r\nHo")
        start_slow(srv, a, tmp_path, 1.5)
        time.sleep(0.01)  # part of the scenario: the rest comes later
        b.send(b"st: x\r\n\r\n")
        # Wait until the master has handed b to the stopped worker: bytes
        # waiting in that worker's end of its channel.
        assert wait_for(lambda: channel_backlog(second) > 0, 5), srv.stderr[-2000:]
        os.kill(second, signal.SIGKILL)
        b.settimeout(5)
        r = b.read_response()
        assert r.status == 200, r
        a.settimeout(5)
        assert pid_of(a.read_response()) == first
    finally:
        try:
            os.kill(second, signal.SIGCONT)
        except ProcessLookupError:
            pass
        close_all(conns)


def arrivals(conns, started, limit=5):
    """Seconds from `started` until each connection's response arrives,
    sorted; each response is read whole and checked."""
    pending = {c.sock: c for c in conns}
    out = []
    deadline = started + limit
    while pending and time.monotonic() < deadline:
        ready, _, _ = select.select(list(pending), [], [], deadline - time.monotonic())
        for s in ready:
            c = pending.pop(s)
            out.append(time.monotonic() - started)
            c.settimeout(5)
            r = c.read_response()
            assert r.status == 200 and r.body.split()[-1].isdigit(), r
    assert not pending, f"{len(pending)} request(s) unanswered after {limit} s"
    return sorted(out)


def one_worker_batch(hugd, nconns, args=()):
    """One worker with nconns keep-alive connections it has served, and
    moves kept off (--rebalance-busy-after), so that what arrives while it
    is busy is run there in one batch."""
    srv = hugd.start(["-w", "1", "--rebalance-busy-after", "60", *args, "move_app:application"],
                     cwd=APPS, workers=1)
    conns = [srv.conn() for _ in range(nconns)]
    for c in conns:
        c.send(req("/fast"))
        assert c.read_response().status == 200
    return srv, conns


@pytest.mark.parametrize("after", ["0.005", "0.001", "1"])
def test_responses_finished_ahead_of_a_long_request_are_not_held(hugd, tmp_path, after):
    """Responses a worker finished in the same loop iteration as a long
    request, but ahead of it, reach their clients within milliseconds of
    the long one's start, not when it ends nor at the kernel's 200 ms limit
    on corked output: a corked response waits about a millisecond at most
    (conn.c, cork()), whatever --rebalance-after is (the mover's tick, and
    an engagement before any tick).  z keeps the worker busy while four
    fast requests, a 1 s one and four more fast ones arrive; whatever the
    batch's order, at least four fast ones run ahead of the long one."""
    for rnd in range(2):
        srv, conns = one_worker_batch(hugd, 10, ["--rebalance-after", after])
        try:
            z, slow, fast = conns[0], conns[1], conns[2:]
            start_slow(srv, z, tmp_path, 0.3, name=f"z{rnd}")
            for f in fast[:4]:
                f.send(req("/fast"))
            mark = tmp_path / f"long{rnd}"
            slow.send(req(f"/slow?s=1&mark={mark}"))
            for f in fast[4:]:
                f.send(req("/fast"))
            z.settimeout(5)
            assert z.read_response().status == 200
            assert wait_for(mark.exists, 5, interval=0.002), "the long request never started"
            got = arrivals(fast, time.monotonic())
            # Held corked, they would come at the kernel's 200 ms limit.
            assert got[3] < 0.1, [f"{t * 1000:.0f} ms" for t in got]
            slow.settimeout(5)
            assert slow.read_response().status == 200
        finally:
            close_all(conns)
            srv.kill()


def test_a_batch_of_short_calls_does_not_hold_its_first_responses(hugd, tmp_path):
    """Twelve requests of 1 ms each, read in one batch: the first answers
    leave as they are made (give or take the cork's millisecond), not all
    together when the batch ends."""
    srv, conns = one_worker_batch(hugd, 13)
    try:
        z, rest = conns[0], conns[1:]
        start_slow(srv, z, tmp_path, 0.3, name="z")
        for c in rest:
            c.send(req("/poll?ms=1"))
        z.settimeout(5)
        assert z.read_response().status == 200
        got = arrivals(rest, time.monotonic())
        # About 1 ms apart: held to the end, all would come together.
        assert got[0] < 0.5 * got[-1], [f"{t * 1000:.1f} ms" for t in got]
    finally:
        close_all(conns)


def unacked(sock):
    """Bytes sent on sock that its peer's kernel has not yet acknowledged
    (SIOCOUTQ): 0 once the server's socket holds all of them."""
    return struct.unpack("i", fcntl.ioctl(sock, termios.TIOCOUTQ, b"\0" * 4))[0]


def test_requests_waiting_for_a_busy_worker_run_in_arrival_order(hugd, tmp_path):
    """Requests that arrive while a worker is busy run, once it is free, in
    the order they came (conn.c, mark_ready): the client that has waited
    longest is not the one served last.  Each is sent only once the one
    before it is in the server's socket, and the app numbers them as it
    runs them."""
    for rnd in range(3):
        srv, conns = one_worker_batch(hugd, 9)
        try:
            z, rest = conns[0], conns[1:]
            start_slow(srv, z, tmp_path, 0.3, name=f"z{rnd}")
            for c in rest:
                c.send(req("/seq"))
                assert wait_for(lambda: unacked(c.sock) == 0, 5, interval=0.001)
            z.settimeout(5)
            assert z.read_response().status == 200
            order = []
            for c in rest:
                c.settimeout(5)
                r = c.read_response()
                assert r.status == 200, r
                order.append(int(r.body.split()[0]))
            assert order == sorted(order), order
        finally:
            close_all(conns)
            srv.kill()
