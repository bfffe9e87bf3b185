"""At the descriptor limit: a connection that cannot be served for lack
of descriptors, the master's or every worker's, is answered at once with
503 and closed (src/master_shed.c), never left waiting in the listen queue
or accepted and dropped; it is logged once per interval, not once per
connection; and service comes back as soon as descriptors are free."""
import socket
import time

import pytest

from hugdtest import APPS, free_port, wait_for

TARGET = "supervised_app:application"
LIMIT = 256


def start_limited(hugd, args, workers):
    srv = hugd.new()
    srv.port = free_port()
    srv.spawn(["-b", f"127.0.0.1:{srv.port}"] + args + [TARGET], cwd=APPS,
              prefix=["prlimit", f"--nofile={LIMIT}", "--"])
    srv.wait_ready()
    srv.wait_workers(workers)
    return srv


def get(sock, path="/pid"):
    """One request on sock: its status as text, or what went wrong."""
    try:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return "EOF"
            data += chunk
        return data.split(b" ", 2)[1].decode()
    except OSError as e:
        return type(e).__name__


def probe(port):
    """A new connection with one request: (status, seconds)."""
    t = time.monotonic()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
    except OSError as e:
        return type(e).__name__, time.monotonic() - t
    s.settimeout(2)
    try:
        return get(s), time.monotonic() - t
    finally:
        s.close()


def limit_lines(srv):
    return [ln for ln in srv.stderr.splitlines() if "descriptor limit" in ln]


@pytest.mark.timeout_s(90)
def test_master_at_its_limit_answers_503(hugd):
    """600 idle keep-alive connections under a 256-descriptor limit (the
    master keeps one per connection, so it reaches its limit first): each
    connection past the limit, and each of 100 probes then, is answered
    200 or 503 within a second; once the idle ones close, probes get 200."""
    srv = start_limited(hugd, ["-w", "2", "--keep-alive", "60"], 2)
    idle, seen = [], {}
    try:
        for _ in range(600):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=2)
            s.settimeout(2)
            st = get(s)
            seen[st] = seen.get(st, 0) + 1
            assert st in ("200", "503"), (st, seen)
            idle.append(s)
        probes = [probe(srv.port) for _ in range(100)]
        print(f"\n600 connections kept open under a {LIMIT}-descriptor limit: {seen}; "
              f"100 probes: {sorted(set(p[0] for p in probes))}, slowest "
              f"{max(p[1] for p in probes) * 1000:.1f} ms; log lines: {len(limit_lines(srv))}")
        assert seen.get("503", 0) > 0 and seen.get("200", 0) > 100, seen
        assert all(st in ("200", "503") for st, _ in probes), probes
        assert max(t for _, t in probes) < 1.0, probes
        assert 1 <= len(limit_lines(srv)) <= 3, limit_lines(srv)
    finally:
        for s in idle:
            s.close()
    # The master learns of the closes from the workers: then 200 again.
    assert wait_for(lambda: probe(srv.port)[0] == "200", 10)


@pytest.mark.timeout_s(60)
def test_workers_at_their_limit_answer_503(hugd):
    """The only worker has used up its descriptors (the application opened
    files): new connections get 503 at once, not a spin between master
    and worker; once the application closes them, they get 200 again."""
    srv = start_limited(hugd, ["-w", "1", "--keep-alive", "60"], 1)
    own = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    own.settimeout(5)
    try:
        assert get(own, "/fill_fds") == "200"
        probes = [probe(srv.port) for _ in range(20)]
        print(f"\nworker out of descriptors: 20 probes {sorted(set(p[0] for p in probes))}, "
              f"slowest {max(p[1] for p in probes) * 1000:.1f} ms")
        assert all(st == "503" for st, _ in probes), probes
        assert max(t for _, t in probes) < 1.0, probes
        assert wait_for(lambda: len(limit_lines(srv)) >= 2, 5), srv.stderr[-2000:]
        assert len(limit_lines(srv)) <= 3, limit_lines(srv)
        assert get(own, "/free_fds") == "200"
        assert wait_for(lambda: probe(srv.port)[0] == "200", 5)
    finally:
        own.close()
