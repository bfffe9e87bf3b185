"""Limits on what clients that do not read can cost a worker: the write
timeout, the cap on response bytes held for slow readers
(max_pending_output), and the request timeout seeing an iterable's
close().

A client that does not read is made with a small receive buffer, so that
the kernel takes little of a response off the worker's hands.  The app is
tests/apps/limits_app.py."""
import os
import re
import socket
import time

import pytest

from hugdtest import APPS, Conn, wait_for

TARGET = "limits_app:application"
MIB = 1 << 20
FULL = "taking no new connection until they drain"


def stalled_client(srv, mb):
    """A client that asks for mb MiB and reads none of it."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect((srv.host, srv.port))
    s.sendall(f"GET /big?mb={mb} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    return s


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def get_pid(srv):
    r = srv.request("GET", "/pid", timeout=5)
    assert r.status == 200, r
    return int(r.body)


def close_all(socks):
    for s in socks:
        s.close()


@pytest.mark.timeout_s(30)
def test_write_timeout_closes_a_client_that_does_not_read(hugd):
    srv = hugd.start(["-w", "1", "--write-timeout", "1", "--log-level", "debug", TARGET],
                     cwd=APPS, workers=1)
    t0 = time.monotonic()
    s = stalled_client(srv, 8)
    try:
        # The worker waits on the stalled client, not for it: one that
        # reads is served at once.
        get_pid(srv)
        assert "timed out (write_timeout)" not in srv.stderr, "served only after the write timeout"
        assert wait_for(lambda: "timed out (write_timeout)" in srv.stderr, 5), srv.stderr[-2000:]
        took = time.monotonic() - t0
        assert took >= 0.9, f"closed after {took:.2f} s, before the 1 s write timeout"
        # What the kernel had taken comes, then the end: not the whole body.
        c = Conn(s)
        s.settimeout(5)
        got = c.read_to_eof()
        assert got.startswith(b"HTTP/1.1 200"), got[:200]
        assert len(got) < 8 * MIB, f"got all {len(got)} bytes: nothing was cut"
        get_pid(srv)
    finally:
        s.close()


@pytest.mark.timeout_s(40)
def test_max_pending_output_bounds_worker_memory(hugd):
    """50 clients ask for 4 MiB each and read nothing.  Uncapped, the two
    workers take them all and hold about 200 MB between them; with a 1M
    cap each takes one, the master holds the others, and once the clients
    go the rest is served."""
    srv = hugd.start(["-w", "2", "--max-pending-output", "1M", "--write-timeout", "0", TARGET],
                     cwd=APPS, workers=2)
    workers = srv.children()
    base = {pid: rss_kb(pid) for pid in workers}
    master_fds = open_fds(srv.proc.pid)
    socks = []
    try:
        for _ in range(50):
            socks.append(stalled_client(srv, 4))
        # Both workers say they are full, and the master has taken the
        # connections (it holds a descriptor of each; the baseline may
        # still count the start-up probe's, hence the slack).
        assert wait_for(lambda: srv.stderr.count(FULL) >= 2, 10), srv.stderr[-2000:]
        assert wait_for(lambda: open_fds(srv.proc.pid) >= master_fds + 45, 10), \
            (open_fds(srv.proc.pid), master_fds)
        grew = sum(rss_kb(pid) - base[pid] for pid in workers)
        assert grew < 40 * 1024, f"workers grew by {grew // 1024} MB holding unread responses"
        close_all(socks)
        socks = []
        # The workers let go of what the clients left, and serve again.
        assert wait_for(lambda: get_pid(srv) in workers, 15)
    finally:
        close_all(socks)


@pytest.mark.timeout_s(30)
def test_a_full_worker_leaves_new_clients_to_the_other(hugd):
    srv = hugd.start(["-w", "2", "--max-pending-output", "1M", TARGET], cwd=APPS, workers=2)
    s = stalled_client(srv, 8)
    try:
        assert wait_for(lambda: FULL in srv.stderr, 10), srv.stderr[-2000:]
        m = re.search(r"\[(\d+)\] \[worker \d+\] \[WARNING\] [^\n]*" + FULL, srv.stderr)
        assert m, srv.stderr[-2000:]
        full = int(m.group(1))
        served_by = {get_pid(srv) for _ in range(10)}
        assert full not in served_by and served_by <= set(srv.children()), (full, served_by)
    finally:
        s.close()


@pytest.mark.timeout_s(30)
def test_iterable_close_counts_against_the_timeout(hugd):
    """close() runs inside the request as the timeout sees it: one that
    sleeps past --timeout gets its worker killed like a slow request."""
    srv = hugd.start(["-w", "2", "-t", "1", TARGET], cwd=APPS, workers=2)
    original = set(srv.children())
    t0 = time.monotonic()
    c = srv.conn(timeout=15)
    try:
        c.send(b"GET /slow-close?s=20 HTTP/1.1\r\nHost: t\r\n\r\n")
        pat = r'worker \d+ \(pid (\d+)\) timed out: "GET /slow-close'
        m = wait_for(lambda: re.search(pat, srv.stderr), 10)
        assert m, srv.stderr[-3000:]
        took = time.monotonic() - t0
        assert took >= 0.9, f"killed after {took:.2f} s, before the 1 s timeout"
        victim = int(m.group(1))
        assert victim in original
        assert wait_for(lambda: victim not in srv.children() and len(srv.children()) == 2, 10), \
            srv.stderr[-3000:]
        assert get_pid(srv) in srv.children()
    finally:
        c.close()
