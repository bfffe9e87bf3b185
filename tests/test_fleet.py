"""Several hosts behind a real load balancer: HAProxy and nginx (Debian's
packages, tests/setup.sh installs them) in front of three hugd instances,
each one its own host in its own network namespace on a private bridge
(tests/netns.py), with the proxy in another and the clients in a third.
The proxies run conf/haproxy.cfg and conf/nginx.conf as shipped, with only
the addresses, ports and file paths changed.

Shown under strict load (tests/loadgen.py: 16 clients, half keep-alive and
half a new connection per request, no retries, every incomplete response
a failure):
  - a rolling restart (TERM one instance, which has --shutdown-delay, start
    it again, wait until it serves, then the next): no request fails;
  - one instance SIGKILLed: the only failures are requests that were in
    flight on it (the GETs of this load, even those, both proxies run
    again on another host), and HAProxy takes it out within a second;
  - the health path answers within 50 ms while every worker of an instance
    is in a 2 s request, and HAProxy keeps it in;
  - the client's address reaches the application through HAProxy's
    send-proxy and send-proxy-v2 (checks too) and through X-Forwarded-For
    from HAProxy and nginx, and only from them: the same headers sent
    straight to a host by the client are refused or not believed.

Skipped, with the reason, where namespaces cannot be made (not root, no
`ip netns`) or a proxy is not installed."""
import csv
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from hugdtest import APPS, REPO, build_request, Conn, pid_alive, wait_for
from netns import Net, NetError, NsLoadGen

CONF = REPO / "conf"
APP = "supervised_app:application"
HOSTS = ["h1", "h2", "h3"]
HUGD_PORT = 8000
PROXY_PORT = 80
SHUTDOWN_DELAY = 3  # > HAProxy's fall x inter (2 x 0.5 s) with room to spare
HUGD_ARGS = ["-w", "2", "--health-path", "/health", "--shutdown-delay", str(SHUTDOWN_DELAY),
             "--keep-alive", "5", "--graceful-timeout", "10", APP]


def _sub_once(pattern, repl, text, what):
    new, n = re.subn(pattern, repl, text, flags=re.M)
    assert n == 1, f"{what}: expected one match of {pattern!r} in the shipped config, found {n}"
    return new


def _config(name, addrs, lb, workdir, server_prefix, subs):
    """conf/NAME with the servers' addresses (10.0.0.11.. as shipped) and
    then each (pattern, replacement) of subs changed, each exactly once."""
    text = (CONF / name).read_text()
    for i, addr in enumerate(addrs):
        text = _sub_once(rf"^(\s+{server_prefix(i)})10\.0\.0\.{11 + i}:8000\b",
                         rf"\g<1>{addr}:{HUGD_PORT}", text, f"{name} server")
    for pattern, repl in subs:
        text = _sub_once(pattern, repl, text, name)
    return text


def haproxy_config(addrs, lb, workdir, send_proxy=None):
    """send_proxy: "send-proxy" or "send-proxy-v2" on every server line,
    with check-send-proxy, as the shipped file's comment says."""
    subs = [
        (r"^(\s+bind )0\.0\.0\.0:80$", rf"\g<1>{lb}:{PROXY_PORT}"),
        (r"^(\s+stats socket )/run/haproxy/admin\.sock\b", rf"\g<1>{workdir}/haproxy.sock"),
    ]
    if send_proxy:
        subs += [(rf"^(\s+server h{i + 1} {re.escape(a)}:{HUGD_PORT})$",
                  rf"\g<1> {send_proxy} check-send-proxy") for i, a in enumerate(addrs)]
    return _config("haproxy.cfg", addrs, lb, workdir, lambda i: f"server h{i + 1} ", subs)


def nginx_config(addrs, lb, workdir):
    return _config("nginx.conf", addrs, lb, workdir, lambda i: "server ", [
        (r"^(\s+listen )80;$", rf"\g<1>{lb}:{PROXY_PORT};"),
        (r"^pid /run/nginx-hugd\.pid;$", f"pid {workdir}/nginx.pid;"),
        (r"^error_log /var/log/nginx/error\.log ", f"error_log {workdir}/nginx.err "),
        (r"^(\s+access_log )/var/log/nginx/access\.log;$", rf"\g<1>{workdir}/nginx.access;"),
    ])


def _need(binary):
    if not shutil.which(binary) and not os.path.exists(f"/usr/sbin/{binary}"):
        pytest.skip(f"{binary} is not installed (tests/setup.sh installs it)")


@pytest.mark.parametrize("kind", ["haproxy", "nginx"])
def test_shipped_configs_are_valid(workdir, kind):
    """What the fleet tests run, checked by the proxy itself (no root or
    namespaces needed)."""
    _need(kind)
    addrs = ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
    if kind == "haproxy":
        path = os.path.join(workdir, "haproxy.cfg")
        with open(path, "w") as f:
            f.write(haproxy_config(addrs, "127.0.0.1", workdir))
        argv = ["haproxy", "-c", "-f", path]
    else:
        path = os.path.join(workdir, "nginx.conf")
        with open(path, "w") as f:
            f.write(nginx_config(addrs, "127.0.0.1", workdir))
        argv = ["nginx", "-t", "-c", path, "-e", os.path.join(workdir, "nginx.early")]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert "warn" not in out.lower() or kind == "nginx" and "[warn]" not in out, out


class Proxy:
    def __init__(self, kind, net, workdir, send_proxy=None):
        self.kind, self.net, self.workdir = kind, net, workdir
        self.cfg = os.path.join(workdir, f"{kind}.conf")
        self.sock = os.path.join(workdir, "haproxy.sock")
        if kind == "haproxy":
            text = haproxy_config([net.addr(h) for h in HOSTS], net.addr("lb"), workdir,
                                  send_proxy)
            argv = ["haproxy", "-db", "-f", self.cfg]
        else:
            text = nginx_config([net.addr(h) for h in HOSTS], net.addr("lb"), workdir)
            argv = ["nginx", "-c", self.cfg, "-e", os.path.join(workdir, "nginx.early"),
                    "-g", "daemon off;"]
        with open(self.cfg, "w") as f:
            f.write(text)
        self.log_path = os.path.join(workdir, f"{kind}.log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(net.prefix("lb") + argv, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    @property
    def log(self):
        out = ""
        for name in ("haproxy.log", "nginx.log", "nginx.err", "nginx.early"):
            p = os.path.join(self.workdir, name)
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    out += f"--- {name}\n" + f.read()[-3000:]
        return out

    def servers(self):
        """HAProxy's view: {server name: status} ('UP', 'DOWN', 'UP 1/2', ...)."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(2)
        try:
            s.connect(self.sock)
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        finally:
            s.close()
        rows = csv.DictReader(io.StringIO(data.decode().lstrip("# ")))
        return {r["svname"]: r for r in rows if r["pxname"] == "hugd" and r["svname"] in HOSTS}

    def status(self):
        try:
            return {k: v["status"] for k, v in self.servers().items()}
        except OSError:
            return {}

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(10)


class Fleet:
    def __init__(self, net, hugd, workdir):
        self.net, self.hugd, self.workdir = net, hugd, workdir
        self.servers = {}
        self.proxy = None
        self.loads = []

    def connect(self, host, port, timeout=2):
        return self.net.call("client", socket.create_connection, (self.net.addr(host), port),
                             timeout=timeout)

    def reachable(self, host, port):
        try:
            self.connect(host, port).close()
            return True
        except OSError:
            return False

    def start_host(self, h, args=HUGD_ARGS):
        srv = self.hugd.spawn(["-b", f"{self.net.addr(h)}:{HUGD_PORT}"] + args, cwd=APPS,
                              prefix=self.net.prefix(h))
        srv.host, srv.port = self.net.addr(h), HUGD_PORT
        ok = wait_for(lambda: srv.proc.poll() is not None or self.reachable(h, HUGD_PORT), 15)
        assert ok and srv.proc.poll() is None, srv.stderr[-3000:]
        srv.wait_workers(2)
        self.servers[h] = srv
        return srv

    def start(self, kind, args=HUGD_ARGS, send_proxy=None):
        for h in HOSTS:
            self.start_host(h, args)
        self.proxy = Proxy(kind, self.net, self.workdir, send_proxy)
        if kind == "haproxy":
            ok = wait_for(lambda: set(self.proxy.status().values()) == {"UP"}, 15)
            assert ok, (self.proxy.status(), self.proxy.log)
        else:
            ok = wait_for(lambda: self.reachable("lb", PROXY_PORT), 15)
            assert ok, self.proxy.log
        return self

    def load(self, threads=8):
        """16 strict clients through the proxy: keep-alive and new connections."""
        self.loads = [NsLoadGen(self.net.ns("client"), self.net.addr("lb"), PROXY_PORT,
                                path="/pid", threads=threads, keepalive=ka, deadline=150,
                                timeout=10).start() for ka in (True, False)]
        assert wait_for(lambda: all(lg.total > 50 for lg in self.loads), 15), self.report()
        return self.loads

    def in_background(self, host, port, path, n, method="GET"):
        """n requests for path from client threads, each on its own
        connection: (threads, statuses or error texts, in order of end)."""
        results = []

        def one():
            c = Conn(self.connect(host, port, timeout=10))
            try:
                c.sock.settimeout(15)
                body = b"x" if method == "POST" else b""
                c.send(build_request(method, path, {"Host": host, "Connection": "close"}, body))
                results.append(c.read_response().status)
            except (OSError, EOFError) as e:
                results.append(repr(e))
            finally:
                c.close()

        threads = [threading.Thread(target=self.net.call, args=("client", one),
                                    kwargs={"timeout": 30}) for _ in range(n)]
        for t in threads:
            t.start()
        return threads, results

    def stop_load(self):
        for lg in self.loads:
            lg.stop()

    def records(self):
        return sorted((r for lg in self.loads for r in lg.snapshot()), key=lambda r: r.t)

    def failed(self):
        return [r for r in self.records() if not r.ok]

    def report(self):
        return "\n".join(lg.report(first=10) for lg in self.loads)

    def served_by(self, srv, since):
        pids = set(srv.children())
        return any(r.pid in pids for r in self.records() if r.ok and r.t >= since)

    def close(self):
        for lg in self.loads:
            try:
                lg.stop()
            except AssertionError:
                pass
        if self.proxy:
            self.proxy.kill()
        for srv in self.servers.values():
            srv.kill()


@pytest.fixture
def fleet(workdir, hugd):
    net = Net(["lb", "client"] + HOSTS)
    try:
        net.up()
    except NetError as e:
        pytest.skip(f"cannot make network namespaces for the test hosts: {e}")
    f = Fleet(net, hugd, workdir)
    try:
        yield f
    finally:
        f.close()
        hugd.cleanup()
        for pid in net.leftovers():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_for(lambda: not net.leftovers(), 5)
        net.down()


PROXIES = ["haproxy", "nginx"]


@pytest.mark.timeout_s(180)
@pytest.mark.parametrize("kind", PROXIES)
def test_rolling_restart_fails_no_request(fleet, kind):
    _need(kind)
    fleet.start(kind).load()
    figures = []
    for h in HOSTS:
        old = fleet.servers[h]
        t0 = time.monotonic()
        old.signal(signal.SIGTERM)
        if kind == "haproxy":
            # Taken out while it still serves, on the strength of the 503.
            assert wait_for(lambda: fleet.proxy.status().get(h, "").startswith("DOWN"),
                            SHUTDOWN_DELAY), (fleet.proxy.status(), fleet.proxy.log)
            out_after = time.monotonic() - t0
            assert old.proc.poll() is None
        assert old.wait(SHUTDOWN_DELAY + 15) == 0, old.stderr[-3000:]
        stopped_after = time.monotonic() - t0
        t1 = time.monotonic()
        new = fleet.start_host(h)
        assert wait_for(lambda: fleet.served_by(new, t1), 20), (fleet.report(), fleet.proxy.log)
        back_after = time.monotonic() - t1
        figures.append(f"{h}: " + (f"out of HAProxy after {out_after:.2f} s, " if kind ==
                                   "haproxy" else "") +
                       f"exited after {stopped_after:.2f} s, serving again "
                       f"{back_after:.2f} s after its restart")
        assert not fleet.failed(), fleet.report()
    time.sleep(0.5)
    fleet.stop_load()
    print(f"\n{kind} rolling restart of {len(HOSTS)} hosts:\n  " + "\n  ".join(figures) + "\n" +
          fleet.report())
    assert not fleet.failed(), fleet.report()
    for lg in fleet.loads:
        assert not lg.crashes, lg.crashes


@pytest.mark.timeout_s(120)
@pytest.mark.parametrize("kind", PROXIES)
def test_sigkill_fails_only_requests_in_flight(fleet, kind):
    _need(kind)
    fleet.start(kind).load()
    # Three slow requests too, so that some are surely in flight on the
    # host when it dies: HAProxy (least connections) spreads them.
    threads, slow = fleet.in_background("lb", PROXY_PORT, "/sleep?s=3", 3)
    sleeping = lambda srv: srv.stderr.count("supervised_app: sleeping 3")  # noqa: E731
    assert wait_for(lambda: sum(sleeping(s) for s in fleet.servers.values()) >= 3, 10)
    victim = fleet.servers["h1"]
    on_victim = sleeping(victim)
    pids = [victim.proc.pid] + victim.children()
    t_kill = time.monotonic()
    os.killpg(victim.proc.pid, signal.SIGKILL)
    # The processes are gone a little after kill() returns: what reached
    # them until then was in flight on the host when it died.
    assert wait_for(lambda: not any(pid_alive(p) for p in pids), 5, interval=0.001)
    t_dead = time.monotonic()
    down_after = None
    if kind == "haproxy":
        assert wait_for(lambda: fleet.proxy.status().get("h1", "").startswith("DOWN"), 5,
                        interval=0.01), fleet.proxy.status()
        down_after = time.monotonic() - t_kill
    for t in threads:
        t.join(30)
    fleet.stop_load()
    fails = fleet.failed()
    late = [r for r in fails if r.t > t_dead]
    print(f"\n{kind}, one of {len(HOSTS)} hosts SIGKILLed under 16 clients: "
          f"{len(fails)} failed (started at "
          f"{', '.join(f'{(r.t - t_kill) * 1000:+.0f}' for r in fails) or '-'} ms from the kill; "
          f"its processes were gone {(t_dead - t_kill) * 1000:.0f} ms after it)"
          + (f"; HAProxy marked it down after {down_after * 1000:.0f} ms" if down_after else "")
          + f"\n3 s requests: {on_victim} of 3 were on it when it died; they ended with {slow}\n"
          + fleet.report())
    # Each client has one request in flight at a time: at most 16 of them,
    # and only those sent before the host was gone.
    assert not late, "\n".join(map(repr, late)) + "\n" + fleet.report()
    assert len(fails) <= 16, fleet.report()
    if kind == "haproxy":
        assert down_after < 1.0, down_after
    # Both proxies pass a GET that got no response from one host to the
    # next one (HAProxy's retry-on empty-response, nginx's
    # proxy_next_upstream error): the slow requests that were running on
    # the dead host are run again elsewhere.
    assert slow == [200] * 3, slow


@pytest.mark.timeout_s(90)
@pytest.mark.parametrize("kind", PROXIES)
def test_a_post_running_on_a_killed_host_is_not_run_again(fleet, kind):
    """The other side of the retries above: a POST may have done its work
    before its host died, so neither proxy sends it to another host; its
    client gets an error, and the application runs it once."""
    _need(kind)
    fleet.start(kind)
    threads, results = fleet.in_background("lb", PROXY_PORT, "/sleep?s=3", 3, method="POST")
    sleeping = lambda srv: srv.stderr.count("supervised_app: sleeping 3")  # noqa: E731
    assert wait_for(lambda: sum(sleeping(s) for s in fleet.servers.values()) >= 3, 10)
    victim = fleet.servers["h1"]
    on_victim = sleeping(victim)
    others = {h: sleeping(s) for h, s in fleet.servers.items() if s is not victim}
    os.killpg(victim.proc.pid, signal.SIGKILL)
    for t in threads:
        t.join(30)
    print(f"\n{kind}: {on_victim} of 3 POSTs were on the killed host; they ended with {results}")
    assert on_victim >= 1, "no POST went to h1: nothing was shown"
    assert sorted(map(str, results)).count("200") == 3 - on_victim, results
    assert all(r in (502, 503, 504) or not isinstance(r, int) for r in results if r != 200), results
    # Nobody ran them again.
    assert {h: sleeping(s) for h, s in fleet.servers.items() if s is not victim} == others


@pytest.mark.timeout_s(90)
def test_health_answers_while_every_worker_is_busy(fleet):
    _need("haproxy")
    fleet.start("haproxy")
    h1 = fleet.servers["h1"]
    threads, results = fleet.in_background("h1", HUGD_PORT, "/sleep?s=2", 2)
    try:
        assert wait_for(lambda: h1.stderr.count("supervised_app: sleeping") >= 2, 10)
        t_busy = time.monotonic()

        def check():
            t = time.monotonic()
            c = Conn(fleet.connect("h1", HUGD_PORT))
            try:
                c.send(build_request("GET", "/health", {"Host": "h1"}))
                r = c.read_response()
            finally:
                c.close()
            return r.status, time.monotonic() - t

        times = []
        for _ in range(5):
            status, took = check()
            assert status == 200
            times.append(took)
        # HAProxy's own checks went on meanwhile: it kept h1 in.
        seen = set()
        while time.monotonic() < t_busy + 1.5:
            seen.add(fleet.proxy.status().get("h1"))
            time.sleep(0.05)
        row = fleet.proxy.servers()["h1"]
    finally:
        for t in threads:
            t.join(20)
    print(f"\nhealth path while both workers of h1 are in a 2 s request: "
          f"{', '.join(f'{t * 1000:.1f}' for t in times)} ms; HAProxy's last check of it: "
          f"{row['check_status']} in {row['check_duration']} ms, status {sorted(seen)}")
    assert max(times) < 0.05, times
    assert seen == {"UP"}, seen
    assert results == [200, 200], results


CLIENT_APP_ARGS = ["-w", "2", "--health-path", "/health", "client_app:application"]


def _who(fleet, host, port, data):
    """Send data from the client's namespace to host:port and read one
    response: (status, the app's JSON or None)."""
    c = Conn(fleet.connect(host, port, timeout=5))
    try:
        c.sock.settimeout(10)
        c.send(data)
        r = c.read_response()
    finally:
        c.close()
    return r.status, json.loads(r.body) if r.status == 200 else None


@pytest.mark.timeout_s(120)
@pytest.mark.parametrize("kind,how", [("haproxy", "send-proxy"), ("haproxy", "send-proxy-v2"),
                                      ("haproxy", "forwarded"), ("nginx", "forwarded")])
def test_client_address_only_from_allowed_peers(fleet, kind, how):
    _need(kind)
    lb, client = fleet.net.addr("lb"), fleet.net.addr("client")
    if how == "forwarded":
        trust = ["--forwarded-allow-ips", lb]
    else:
        trust = ["--proxy-protocol", "--proxy-allow-ips", lb]
    # With send-proxy, HAProxy's checks carry a PROXY header too: start()
    # waits until it sees every host up.
    fleet.start(kind, trust + CLIENT_APP_ARGS, None if how == "forwarded" else how)
    spoof = {"X-Forwarded-For": "6.6.6.6", "Forwarded": "for=6.6.6.7", "Connection": "close"}
    hosts = set()
    for i in range(12):
        headers = {"Host": "www", **(spoof if i % 2 else {"Connection": "close"})}
        status, w = _who(fleet, "lb", PROXY_PORT, build_request("GET", "/who", headers))
        assert status == 200 and w["addr"] == client, (status, w, fleet.proxy.log)
        hosts |= {h for h, srv in fleet.servers.items() if w["pid"] in srv.children()}
    # Straight to a host, from the client: its own claims are not believed.
    direct = build_request("GET", "/who", {"Host": "h1", **spoof})
    if how == "forwarded":
        status, w = _who(fleet, "h1", HUGD_PORT, direct)
        assert status == 200 and (w["addr"], w["xff"]) == (client, "6.6.6.6"), w
    else:
        for header in (b"PROXY TCP4 6.6.6.6 10.0.0.1 1 8000\r\n", b""):
            status, _ = _who(fleet, "h1", HUGD_PORT, header + direct)
            assert status == 400, (header, status)
    print(f"\n{kind} ({how}): the client's {client} on {len(hosts)} host(s); "
          f"its own headers sent straight to a host not believed")
