"""The client's address behind a proxy: the PROXY protocol header
(--proxy-protocol, --proxy-allow-ips) and forwarded headers
(--forwarded-allow-ips), against the real binary.

A peer that is not trusted is made on one machine by connecting from
127.0.0.2 (all of 127.0.0.0/8 is the loopback's) to a hugd listening on
127.0.0.1, or by trusting some other address.
"""
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from hugdtest import APPS, have_ipv6_loopback, free_port, wait_for, waiting_in_its_loop
from loadgen import LoadGen

APP = "client_app:application"
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(src, sport, dst=None, dport=8000, proto=None):
    proto = proto or ("TCP6" if ":" in src else "TCP4")
    dst = dst or ("::1" if proto == "TCP6" else "127.0.0.1")
    return f"PROXY {proto} {src} {dst} {sport} {dport}\r\n".encode()


def v2(src=None, sport=0, dst=None, dport=8000, tlvs=b"", local=False):
    """A version 2 header; local=True makes the LOCAL command of HAProxy's
    own health checks (no address)."""
    if local:
        return V2_SIG + b"\x20\x00" + struct.pack(">H", len(tlvs)) + tlvs
    fam = socket.AF_INET6 if ":" in src else socket.AF_INET
    dst = dst or ("::1" if fam == socket.AF_INET6 else "127.0.0.1")
    body = (socket.inet_pton(fam, src) + socket.inet_pton(fam, dst) +
            struct.pack(">HH", sport, dport) + tlvs)
    famproto = b"\x21" if fam == socket.AF_INET6 else b"\x11"
    return V2_SIG + b"\x21" + famproto + struct.pack(">H", len(body)) + body


def get(path="/who", headers=None, close=False):
    lines = [f"GET {path} HTTP/1.1", "Host: example.com"]
    if close:
        lines.append("Connection: close")
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def who(conn):
    r = conn.read_response()
    assert r.status == 200, r
    return json.loads(r.body)


def start(hugd, *args, workers=1, log=None):
    extra = ["--access-logfile", str(log), "--access-logformat", "%(h)s %(s)s %(U)s"] if log else []
    return hugd.start(["-w", str(workers), *extra, *args, APP], cwd=APPS, workers=workers)


def conn_from(srv, source):
    """A connection to srv made from the address source (a Conn)."""
    from hugdtest import Conn
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    try:
        s.bind((source, 0))
        s.connect((srv.host, srv.port))
    except OSError as e:
        s.close()
        pytest.skip(f"cannot connect from {source}: {e}")
    return Conn(s)


def refused(conn):
    """The connection got a 400 and was closed."""
    r = conn.read_response()
    assert r.status == 400, r
    assert r.header("Connection") == "close"
    assert conn.at_eof(5), "the connection stayed open after the 400"


def access_lines(path, n, timeout=5):
    def lines():
        try:
            got = path.read_text().splitlines()
        except FileNotFoundError:
            return None
        return got if len(got) >= n else None
    got = wait_for(lines, timeout)
    assert got, f"fewer than {n} access log lines: {path.read_text() if path.exists() else None}"
    return got


# --- the PROXY header ----------------------------------------------------------------


def test_v1_tcp4_and_tcp6_set_the_client(hugd, tmp_path):
    log = tmp_path / "access.log"
    srv = start(hugd, "--proxy-protocol", log=log)
    c = srv.conn()
    c.send(v1("192.0.2.7", 56324) + get())
    w = who(c)
    assert (w["addr"], w["port"]) == ("192.0.2.7", "56324"), w
    # the next request on the connection keeps it
    c.send(get())
    w = who(c)
    assert (w["addr"], w["port"]) == ("192.0.2.7", "56324"), w
    c.close()
    c = srv.conn()
    c.send(v1("2001:db8::7", 1) + get(close=True))
    w = who(c)
    assert (w["addr"], w["port"]) == ("2001:db8::7", "1"), w
    c.close()
    lines = access_lines(log, 3)
    assert lines == ["192.0.2.7 200 /who", "192.0.2.7 200 /who", "2001:db8::7 200 /who"], lines


def test_v1_unknown_and_v2_local_keep_the_peer(hugd):
    srv = start(hugd, "--proxy-protocol")
    for header in (b"PROXY UNKNOWN\r\n", b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
                   v2(local=True), v2(local=True, tlvs=b"\x04\x00\x01\x00")):
        c = srv.conn()
        c.send(header + get(close=True))
        w = who(c)
        assert w["addr"] == "127.0.0.1", (header, w)
        assert w["port"] == str(c.sock.getsockname()[1]), (header, w)
        c.close()


def test_v2_proxy_ipv4_ipv6_and_tlvs(hugd):
    srv = start(hugd, "--proxy-protocol")
    alpn_authority_noop = b"\x01\x00\x02h2" + b"\x02\x00\x0bexample.com" + b"\x04\x00\x02\x00\x00"
    cases = [
        (v2("203.0.113.9", 4242), ("203.0.113.9", "4242")),
        (v2("2001:db8::9", 65535), ("2001:db8::9", "65535")),
        (v2("198.51.100.3", 80, tlvs=alpn_authority_noop), ("198.51.100.3", "80")),
    ]
    for header, expect in cases:
        c = srv.conn()
        c.send(header + get(close=True))
        w = who(c)
        assert (w["addr"], w["port"]) == expect, (header, w)
        c.close()


@pytest.mark.skipif(not have_ipv6_loopback(), reason="no IPv6 loopback")
def test_proxy_header_on_an_ipv6_listener(hugd):
    port = free_port(socket.AF_INET6, "::1")
    srv = hugd.new()
    srv.port, srv.host, srv.family = port, "::1", socket.AF_INET6
    srv.start(["-w", "1", "-b", f"[::1]:{port}", "--proxy-protocol", APP], cwd=APPS, bind=False,
              workers=1)
    c = srv.conn()
    c.send(v2("192.0.2.44", 9) + get(close=True))
    assert who(c)["addr"] == "192.0.2.44"


def test_proxy_header_on_a_unix_socket(hugd, workdir):
    """A Unix-socket peer has no address to list: it may send a header
    (nginx's stream module to a socket file), unless the list is empty."""
    path = os.path.join(workdir, "a.sock")  # short: sun_path is 108 bytes
    srv = hugd.new()
    srv.unix_path = path
    srv.start(["-w", "1", "-b", f"unix:{path}", "--proxy-protocol", APP], cwd=APPS, bind=False,
              workers=1)
    c = srv.conn()
    c.send(v1("192.0.2.45", 45) + get(headers={"X-Forwarded-Proto": "https"}, close=True))
    w = who(c)
    assert (w["addr"], w["port"], w["scheme"]) == ("192.0.2.45", "45", "http"), w
    c = srv.conn()
    c.send(v2(local=True) + get(headers={"X-Forwarded-For": "203.0.113.45"}, close=True))
    assert who(c)["addr"] == "203.0.113.45"  # the socket's peer is trusted
    srv.stop()
    path2 = os.path.join(workdir, "b.sock")
    srv = hugd.new()
    srv.unix_path = path2
    srv.start(["-w", "1", "-b", f"unix:{path2}", "--proxy-protocol", "--proxy-allow-ips", "",
               APP], cwd=APPS, bind=False, workers=1)
    c = srv.conn()
    c.send(v1("192.0.2.45", 45) + get())
    refused(c)


def test_header_split_byte_by_byte(hugd):
    """Each byte in a write of its own: the header is read whole across
    reads, and the request after it is still a request."""
    srv = start(hugd, "--proxy-protocol")
    for header, addr in ((v1("192.0.2.8", 1000), "192.0.2.8"),
                         (v2("2001:db8::8", 1000, tlvs=b"\x01\x00\x02h2"), "2001:db8::8")):
        c = srv.conn()
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(header)):
            c.send(header[i:i + 1])
            time.sleep(0.002)  # the scenario: one segment per byte
        c.send(get(close=True))
        assert who(c)["addr"] == addr
        c.close()


def test_header_and_pipelined_requests_in_one_write(hugd):
    srv = start(hugd, "--proxy-protocol")
    c = srv.conn()
    c.send(v1("192.0.2.9", 5) + get("/who?n=1") + get("/who?n=2") + get("/who?n=3", close=True))
    for _ in range(3):
        w = who(c)
        assert (w["addr"], w["port"]) == ("192.0.2.9", "5"), w
    assert c.at_eof(5)


def test_missing_or_bad_header_gets_400_and_close(hugd, tmp_path):
    log = tmp_path / "access.log"
    srv = start(hugd, "--proxy-protocol", log=log)
    bad = [
        get(),                                               # no header at all
        b"PROXY TCP4 192.0.2.1  192.0.2.2 1 2\r\n" + get(),  # two spaces
        b"PROXY TCP4 ::1 192.0.2.2 1 2\r\n" + get(),         # not its family
        b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\n" + get(),     # a bare LF
        b"PROXY UNKNOWN " + b"x" * 120 + b"\r\n" + get(),    # longer than 107 bytes
        b"PROXY TCP4 192.0.2.1 192.0.2.2 1 65536\r\n" + get(),
        V2_SIG + b"\x11\x11\x00\x0c" + b"\0" * 12 + get(),   # version 1 in a v2 header
        V2_SIG + b"\x21\x12\x00\x0c" + b"\0" * 12 + get(),   # UDP
        v2("192.0.2.1", 1, tlvs=b"\x01\x00\x09ab") + get(),  # a TLV past the end
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 32,  # a TLS ClientHello
        b"\0" * 64,
    ]
    for data in bad:
        c = srv.conn()
        c.send(data)
        refused(c)
        c.close()
    lines = access_lines(log, len(bad))
    assert all(line.startswith("127.0.0.1 400 ") for line in lines), lines
    assert "200" not in " ".join(lines), lines  # no request after a bad header ran
    assert "refused a connection from 127.0.0.1: 400 Bad Request: not a PROXY protocol header" \
        in srv.stderr, srv.stderr[-3000:]


def test_peer_not_allowed_is_refused(hugd):
    srv = start(hugd, "--proxy-protocol", "--proxy-allow-ips", "10.0.0.1, 192.0.2.0/24")
    for data in (v1("198.51.100.1", 7) + get(), v2("198.51.100.1", 7) + get(), get()):
        c = srv.conn()
        c.send(data)
        refused(c)
        c.close()
    assert "proxy_allow_ips does not list this peer" in srv.stderr, srv.stderr[-3000:]


def test_peer_not_in_default_list_is_refused_and_cidr_allows(hugd):
    srv = start(hugd, "--proxy-protocol")
    c = conn_from(srv, "127.0.0.2")
    c.send(v1("198.51.100.1", 7) + get())
    refused(c)
    srv2 = start(hugd, "--proxy-protocol", "--proxy-allow-ips", "127.0.0.0/8")
    c = conn_from(srv2, "127.0.0.2")
    c.send(v1("198.51.100.1", 7) + get(close=True))
    assert who(c)["addr"] == "198.51.100.1"
    srv3 = start(hugd, "--proxy-protocol", "--proxy-allow-ips", "*")
    c = conn_from(srv3, "127.0.0.2")
    c.send(v1("198.51.100.2", 7) + get(close=True))
    assert who(c)["addr"] == "198.51.100.2"


def test_slow_header_times_out_with_408(hugd):
    srv = start(hugd, "--proxy-protocol", "--header-timeout", "1")
    c = srv.conn()
    t0 = time.monotonic()
    c.send(b"PROXY TCP4 192.0.2.1 ")
    c.settimeout(10)
    r = c.read_response()
    took = time.monotonic() - t0
    assert r.status == 408, r
    assert c.at_eof(5)
    assert 0.9 <= took < 5, took


def test_header_and_request_head_share_the_timeout(hugd):
    """The header_timeout that bounds a request head starts at the PROXY
    header's first byte, not again at the request's."""
    srv = start(hugd, "--proxy-protocol", "--header-timeout", "2")
    c = srv.conn()
    header = v1("192.0.2.1", 1)
    t0 = time.monotonic()
    c.send(header[:10])
    time.sleep(0.6)  # the scenario: a slow sender
    c.send(header[10:20])
    time.sleep(0.6)
    c.send(header[20:] + b"GET /who HTTP/1.1\r\nHo")
    c.settimeout(10)
    r = c.read_response()
    took = time.monotonic() - t0
    assert r.status == 408, r
    # 2 s after the first byte; a deadline counted from the request's
    # first byte (at 1.2 s) would answer at 3.2 s
    assert 1.9 <= took < 2.9, took


def test_idle_after_the_header_is_not_408(hugd):
    """A header and then nothing is an idle connection: closed quietly at
    header_timeout, like one that sent nothing."""
    srv = start(hugd, "--proxy-protocol", "--header-timeout", "1")
    c = srv.conn()
    c.send(v1("192.0.2.1", 1))
    c.settimeout(10)
    assert c.read_to_eof() == b""


def health_after(conn, header, timeout=5):
    """A health check behind a PROXY header: (status, seconds)."""
    t = time.monotonic()
    conn.send(header + get("/health"))
    conn.settimeout(timeout)
    r = conn.read_response()
    return r.status, time.monotonic() - t


def test_health_checks_behind_a_proxy_header(hugd, tmp_path):
    """HAProxy's check-send-proxy: a check after a PROXY header is answered
    by a worker, and by the master while the only worker is busy; one
    without the header, or from a peer not allowed to send one, is not the
    master's to answer: the worker refuses it once it is free."""
    srv = start(hugd, "--proxy-protocol", "--health-path", "/health", "--log-level", "debug")
    # A check the worker answers (keep-alive; the master's say close): until
    # the worker is free (it serves, and is done with the harness's probe
    # connection), the master answers them.
    def by_the_worker():
        c = srv.conn()
        try:
            c.send(v1("192.0.2.30", 30) + get("/health"))
            c.settimeout(5)
            r = c.read_response()
            assert r.status == 200, r
            return r.header("Connection") != "close"
        finally:
            c.close()

    assert wait_for(by_the_worker, 5), srv.stderr[-2000:]
    answered = "answered a health check with 200 (no worker was free)"
    before = srv.stderr.count(answered)
    busy = srv.conn()
    mark = tmp_path / "mark"
    busy.send(v1("192.0.2.31", 31) + get(f"/slow?s=2&mark={mark}"))
    assert wait_for(mark.exists, 5, interval=0.002)
    times = []
    for header in (v1("192.0.2.32", 32), v2(local=True), v2("2001:db8::33", 33)):
        st, took = health_after(srv.conn(), header)
        assert st == 200
        times.append(took)
    split = srv.conn()
    header = v2(local=True)
    split.send(header[:7])
    time.sleep(0.05)  # the scenario: the header in two packets
    st, took = health_after(split, header[7:])
    assert st == 200
    times.append(took)
    # The master logs each answer after sending it: the fourth line may
    # land just after its client has read the response.
    assert wait_for(lambda: srv.stderr.count(answered) >= before + 4, 5), srv.stderr[-2000:]
    assert srv.stderr.count(answered) == before + 4, srv.stderr[-2000:]
    assert max(times) < 0.5, times
    t0 = time.monotonic()
    bare = srv.conn()
    bare.send(get("/health"))
    other = conn_from(srv, "127.0.0.2")
    other.send(v1("192.0.2.34", 34) + get("/health"))
    for conn in (bare, other):
        conn.settimeout(10)
        refused(conn)
    assert time.monotonic() - t0 > 0.5, "answered before the worker was free"
    busy.settimeout(10)
    assert busy.read_response().status == 200
    print(f"\nhealth checks behind a PROXY header, the worker busy: "
          f"{', '.join(f'{t * 1000:.1f}' for t in times)} ms")


# --- a proxied connection that moves ------------------------------------------------


def two_workers_one_conn_each(hugd, tmp_path):
    srv = start(hugd, "--proxy-protocol", "--rebalance-after", "0.05")
    first = srv.children()[0]
    a, b = srv.conn(), srv.conn()
    a.send(v1("192.0.2.10", 10) + get())
    b.send(v2("2001:db8::11", 11) + get())
    assert who(a)["pid"] == first and who(b)["pid"] == first
    srv.signal(signal.SIGTTIN)
    assert wait_for(lambda: len(srv.children()) == 2, 10), srv.children()
    second = [p for p in srv.children() if p != first][0]

    def second_up():
        c = srv.conn()
        c.send(v2(local=True) + get(close=True))
        return who(c)["pid"] == second
    assert wait_for(second_up, 10, interval=0.02), "the second worker never answered"
    return srv, a, b, first, second


def test_moved_connection_keeps_its_client(hugd, tmp_path):
    """A proxied keep-alive connection whose worker is in a long request
    moves to the other worker with its request, and its client with it."""
    srv, a, b, first, second = two_workers_one_conn_each(hugd, tmp_path)
    mark = tmp_path / "mark"
    a.send(get(f"/slow?s=1.5&mark={mark}"))
    assert wait_for(mark.exists, 5, interval=0.002)
    b.send(get())
    b.settimeout(5)
    w = who(b)
    assert w["pid"] == second, (w, first, second)
    assert (w["addr"], w["port"]) == ("2001:db8::11", "11"), w
    b.send(get())  # and on the new worker from then on
    w = who(b)
    assert (w["pid"], w["addr"], w["port"]) == (second, "2001:db8::11", "11"), w
    a.settimeout(5)
    assert a.read_response().body.startswith(b"192.0.2.10|10 ")


def test_reload_keeps_the_client_of_idle_connections(hugd):
    """HUP: the old worker gives its idle proxied connections back, and the
    new worker that takes them knows their clients."""
    srv = start(hugd, "--proxy-protocol")
    old = srv.children()[0]
    c = srv.conn()
    c.send(v1("192.0.2.12", 12) + get())
    assert who(c)["pid"] == old
    srv.signal(signal.SIGHUP)
    seen = []

    def served_by_new():
        c.send(get())
        w = who(c)
        seen.append((w["pid"], w["addr"], w["port"]))
        return w["pid"] != old
    assert wait_for(served_by_new, 20, interval=0.05), seen[-3:]
    assert all(s[1:] == ("192.0.2.12", "12") for s in seen), seen


def test_worker_death_closes_idle_proxied_connections(hugd):
    """Its client's address lived only in the dead worker: the connection is
    closed rather than served as if the proxy were the client."""
    srv = start(hugd, "--proxy-protocol")
    victim = srv.children()[0]
    c = srv.conn()
    c.send(v1("192.0.2.13", 13) + get())
    assert who(c)["addr"] == "192.0.2.13"
    # A response is out a moment before its connection counts as idle.
    assert wait_for(lambda: waiting_in_its_loop(victim), 5, interval=0.005)
    os.kill(victim, signal.SIGKILL)
    assert c.at_eof(10), "the idle connection of the dead worker stayed open"
    assert wait_for(lambda: "1 idle after a PROXY header closed" in srv.stderr, 5), \
        srv.stderr[-2000:]


def test_clients_kept_under_load_with_moves_and_reloads(hugd, tmp_path):
    """16 keep-alive and 16 new-connection clients, each with a PROXY header
    of its own, while slow requests make connections move and two HUPs
    hand idle ones to new workers: no request fails, and every answer
    names the client its connection's header gave."""
    srv = start(hugd, "--proxy-protocol", "--rebalance-after", "0.002", "--log-level", "debug",
                workers=4)

    def header(sock, thread, conn_id):
        sock.sendall(v1(f"10.{thread}.{conn_id // 250 % 250}.{conn_id % 250 + 1}", 1000 + thread))

    def expect(r, offset):
        t = r.thread + offset
        return f"10.{t}.{r.conn_id // 250 % 250}.{r.conn_id % 250 + 1}|{1000 + t}"

    ka = LoadGen(srv.host, srv.port, path="/short", threads=16, keepalive=True, duration=8,
                 on_connect=header)
    nc = LoadGen(srv.host, srv.port, path="/short", threads=16, keepalive=False, duration=8,
                 on_connect=lambda s, t, i: header(s, t + 100, i))
    stop = threading.Event()

    def slow_requests():
        n = 0
        while not stop.is_set():
            c = srv.conn()
            c.send(v1("192.0.2.99", 99) + get(f"/slow?s=0.2&n={n}", close=True))
            c.settimeout(10)
            c.read_response()
            c.close()
            n += 1
    slows = [threading.Thread(target=slow_requests, daemon=True) for _ in range(3)]
    ka.start()
    nc.start()
    for t in slows:
        t.start()
    try:
        time.sleep(2.5)  # the scenario: a HUP into steady load, then another
        srv.signal(signal.SIGHUP)
        time.sleep(2.5)
        srv.signal(signal.SIGHUP)
        ka.wait()
        nc.wait()
    finally:
        stop.set()
        ka.stop()
        nc.stop()
        for t in slows:
            t.join(15)
    for lg in (ka, nc):
        assert lg.failures == 0 and not lg.crashes, lg.report()
        assert lg.total > 200, lg.report()
    wrong = [r for r in ka.ok_records() if r.text != expect(r, 0)]
    wrong += [r for r in nc.ok_records() if r.text != expect(r, 100)]
    assert not wrong, wrong[:5]
    generations = {r.pid for r in ka.ok_records()}
    assert len(generations) > 4, "the reloads never replaced the workers"
    moves = srv.stderr.count("moved a connection from 10.")
    assert moves > 0, "no proxied connection moved"
    print(f"\nproxied load: {ka.total} keep-alive + {nc.total} new-connection requests, "
          f"0 failed, {len(generations)} worker pids, {moves} moves")


# --- forwarded headers -----------------------------------------------------------------


def test_forwarded_headers_from_a_trusted_peer(hugd, tmp_path):
    log = tmp_path / "access.log"
    srv = start(hugd, log=log)  # the default trusts 127.0.0.1, where we are
    c = srv.conn()
    c.send(get(headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.7", "X-Forwarded-Proto": "https"}))
    w = who(c)
    assert (w["addr"], w["port"], w["scheme"]) == ("203.0.113.7", None, "https"), w
    assert w["xff"] == "6.6.6.6, 203.0.113.7"  # still there for the application
    c.send(get(headers={"Forwarded": 'for="[2001:db8:cafe::17]:4711";proto=https;by=_x'}))
    w = who(c)
    assert (w["addr"], w["port"], w["scheme"]) == ("2001:db8:cafe::17", "4711", "https"), w
    # a plain request on the same connection is the peer's again
    c.send(get())
    w = who(c)
    assert (w["addr"], w["scheme"]) == ("127.0.0.1", "http"), w
    assert w["port"] == str(c.sock.getsockname()[1])
    # X-Forwarded-For wins over Forwarded
    c.send(get(headers={"Forwarded": "for=6.6.6.6;proto=https", "X-Forwarded-For": "203.0.113.8"}))
    w = who(c)
    assert (w["addr"], w["scheme"]) == ("203.0.113.8", "http"), w
    # X-Forwarded-Proto other than http or https: unchanged
    c.send(get(headers={"X-Forwarded-Proto": "javascript"}))
    assert who(c)["scheme"] == "http"
    # the right-most hop is not an address: nothing believed
    c.send(get(headers={"X-Forwarded-For": "203.0.113.9, nonsense"}))
    assert who(c)["addr"] == "127.0.0.1"
    c.close()
    lines = access_lines(log, 6)
    assert lines[:3] == ["203.0.113.7 200 /who", "2001:db8:cafe::17 200 /who",
                         "127.0.0.1 200 /who"], lines


def test_trusted_hops_are_skipped(hugd):
    srv = start(hugd, "--forwarded-allow-ips", "127.0.0.1, 10.0.0.0/8")
    c = srv.conn()
    c.send(get(headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.7, 10.1.2.3"}))
    assert who(c)["addr"] == "203.0.113.7"
    c.send(get(headers={"Forwarded": "for=203.0.113.5;proto=https, for=10.9.9.9;proto=http"}))
    w = who(c)
    assert (w["addr"], w["scheme"]) == ("203.0.113.5", "https"), w


def test_forwarded_headers_from_an_untrusted_peer_are_not_believed(hugd):
    headers = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https",
               "Forwarded": "for=203.0.113.8;proto=https"}
    srv = start(hugd, "--forwarded-allow-ips", "10.0.0.0/8")
    c = srv.conn()
    c.send(get(headers=headers))
    w = who(c)
    assert (w["addr"], w["scheme"]) == ("127.0.0.1", "http"), w
    assert (w["xff"], w["xfp"], w["forwarded"]) == ("203.0.113.7", "https",
                                                    "for=203.0.113.8;proto=https"), w
    srv = start(hugd, "--forwarded-allow-ips", "")
    c = srv.conn()
    c.send(get(headers=headers))
    assert who(c)["addr"] == "127.0.0.1"
    # from 127.0.0.2, which the default list does not name
    srv = start(hugd)
    c = conn_from(srv, "127.0.0.2")
    c.send(get(headers=headers))
    w = who(c)
    assert (w["addr"], w["scheme"], w["xff"]) == ("127.0.0.2", "http", "203.0.113.7"), w
    # ... until a range or * names it
    for trust in ("127.0.0.0/8", "*"):
        srv = start(hugd, "--forwarded-allow-ips", trust)
        c = conn_from(srv, "127.0.0.2")
        c.send(get(headers=headers))
        w = who(c)
        assert (w["addr"], w["scheme"]) == ("203.0.113.7", "https"), (trust, w)


def test_with_proxy_protocol_the_client_is_the_peer_trusted(hugd):
    """The PROXY header's client is whose forwarded headers are judged: a
    client behind a TCP-mode proxy on 127.0.0.1 cannot choose its own
    X-Forwarded-For."""
    srv = start(hugd, "--proxy-protocol", "--forwarded-allow-ips", "127.0.0.1, 10.0.0.0/8")
    spoof = {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https"}
    c = srv.conn()
    c.send(v1("203.0.113.20", 20) + get(headers=spoof, close=True))
    w = who(c)
    assert (w["addr"], w["port"], w["scheme"]) == ("203.0.113.20", "20", "http"), w
    assert w["xff"] == "6.6.6.6"
    # a client that is itself a trusted proxy is believed
    c = srv.conn()
    c.send(v1("10.1.1.1", 21) + get(headers={"X-Forwarded-For": "203.0.113.21"}, close=True))
    w = who(c)
    assert (w["addr"], w["port"]) == ("203.0.113.21", None), w
    # LOCAL: the peer (127.0.0.1, trusted) is the client
    c = srv.conn()
    c.send(v2(local=True) + get(headers={"X-Forwarded-For": "203.0.113.22"}, close=True))
    assert who(c)["addr"] == "203.0.113.22"


# --- a real HAProxy in front ---------------------------------------------------------

HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy")
                                      else None)


@pytest.mark.skipif(not HAPROXY, reason="haproxy is not installed (apt-get install haproxy)")
def test_haproxy_send_proxy_v2_with_checks(hugd, tmp_path):
    """Debian's HAProxy with send-proxy-v2 and PROXY-carrying health checks
    in front: checks pass, and 16 keep-alive and 16 new-connection clients
    on 127.0.0.2 are all seen as 127.0.0.2, though every connection hugd
    has comes from 127.0.0.1."""
    log = tmp_path / "access.log"
    srv = start(hugd, "--proxy-protocol", log=log, workers=2)
    fe = free_port()
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(f"""
global
    maxconn 500
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    option http-keep-alive
frontend fe
    bind 127.0.0.1:{fe}
    default_backend hugd
backend hugd
    option httpchk GET /who
    http-check expect status 200
    server s1 127.0.0.1:{srv.port} send-proxy-v2 check-send-proxy check inter 200ms rise 1 fall 2
""")
    hap = subprocess.Popen([HAPROXY, "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, start_new_session=True)
    try:
        def checked():
            try:
                return any(line.endswith(" /who") for line in log.read_text().splitlines())
            except FileNotFoundError:
                return False
        assert wait_for(checked, 10), "no health check reached hugd"

        def through():
            s = socket.socket()
            s.settimeout(5)
            try:
                s.bind(("127.0.0.2", 0))
                s.connect(("127.0.0.1", fe))
                s.sendall(get("/short", close=True))
                data = b""
                while True:
                    d = s.recv(65536)
                    if not d:
                        return data
                    data += d
            except OSError:
                return b""
            finally:
                s.close()
        assert wait_for(lambda: b" 200 " in through().split(b"\r\n")[0] + b" ", 10)
        assert b"\r\n\r\n127.0.0.2|" in through()

        def from_127_0_0_2(r):
            text, pid = r.decode().split()
            assert text.startswith("127.0.0.2|"), text
            return text.split("|")[0], int(pid)
        ka = LoadGen("127.0.0.1", fe, path="/short", threads=16, keepalive=True, duration=4,
                     source_address=("127.0.0.2", 0), parse=from_127_0_0_2)
        nc = LoadGen("127.0.0.1", fe, path="/short", threads=16, keepalive=False, duration=4,
                     source_address=("127.0.0.2", 0), parse=from_127_0_0_2)
        ka.start()
        nc.start()
        ka.wait()
        nc.wait()
        for lg in (ka, nc):
            assert lg.failures == 0 and not lg.crashes, lg.report()
            assert lg.total > 100, lg.report()
        assert hap.poll() is None, hap.stderr.read().decode()
        checks = [line for line in log.read_text().splitlines() if line.endswith(" /who")]
        assert checks and all(line == "127.0.0.1 200 /who" for line in checks), checks[:5]
        print(f"\nthrough HAProxy: {ka.total} keep-alive + {nc.total} new-connection requests, "
              f"0 failed, {len(checks)} health checks")
    finally:
        try:
            os.killpg(hap.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        hap.wait(10)
