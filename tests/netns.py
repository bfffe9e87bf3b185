"""Private test hosts for tests/test_fleet.py: Linux network namespaces on
one bridge, with test addresses (10.77.0.x) that exist only inside them.

    net = Net(["lb", "h1", "h2"]).up()      # or pytest.skip(reason)
    net.addr("h1")                          # '10.77.0.11'
    net.prefix("h1")                        # argv prefix: run a program there
    net.call("lb", socket.create_connection, (net.addr("h1"), 8000))
    net.down()                              # always, in teardown

The bridge lives in a namespace of its own, so nothing is added to the
namespace the tests run in: every interface is created directly inside
the namespaces (veth pairs), and deleting the namespaces deletes them.
Names carry the test process's pid and a counter, so that concurrent test
runs never share one.  A thread of the test process enters a namespace
with setns(2), which changes only that thread: call() runs a function in a
fresh thread that did, and NsLoadGen's client threads do the same.
"""
import ctypes
import itertools
import os
import subprocess
import threading

from loadgen import LoadGen

CLONE_NEWNET = 0x40000000
SUBNET = "10.77.0"
# Host addresses: the proxy .10, hugd hosts .11 up, the clients .100.
ADDRS = {"lb": 10, "client": 100}
_counter = itertools.count()
_libc = ctypes.CDLL(None, use_errno=True)


class NetError(Exception):
    pass


def ip(*args, check=True):
    p = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
    if check and p.returncode != 0:
        raise NetError(f"ip {' '.join(args)}: {p.stderr.strip() or p.returncode}")
    return p


def enter(ns):
    """Move the calling thread into network namespace ns."""
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"setns into {ns}: {os.strerror(e)}")
    finally:
        os.close(fd)


class Net:
    def __init__(self, hosts):
        self.tag = f"hugdt{os.getpid()}x{next(_counter)}"
        self.hosts = list(hosts)
        self.made = []  # namespaces created, for down()
        n = 11
        self.addrs = {}
        for h in self.hosts:
            if h in ADDRS:
                self.addrs[h] = f"{SUBNET}.{ADDRS[h]}"
            else:
                self.addrs[h] = f"{SUBNET}.{n}"
                n += 1

    def ns(self, host):
        return f"{self.tag}-{host}"

    @property
    def switch(self):
        return f"{self.tag}-sw"

    def _add_ns(self, name):
        ip("netns", "add", name)
        self.made.append(name)
        ip("-n", name, "link", "set", "lo", "up")

    def up(self):
        """Build it; on any failure, tear down what was made and raise NetError."""
        if os.geteuid() != 0:
            raise NetError("network namespaces need root")
        try:
            self._add_ns(self.switch)
            ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            ip("-n", self.switch, "link", "set", "br0", "up")
            for i, h in enumerate(self.hosts):
                ns = self.ns(h)
                self._add_ns(ns)
                port = f"p{i}"
                ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port,
                   "netns", self.switch)
                ip("-n", self.switch, "link", "set", port, "master", "br0")
                ip("-n", self.switch, "link", "set", port, "up")
                ip("-n", ns, "addr", "add", f"{self.addrs[h]}/24", "dev", "eth0")
                ip("-n", ns, "link", "set", "eth0", "up")
        except (NetError, OSError, subprocess.TimeoutExpired) as e:
            self.down()
            raise NetError(str(e)) from e
        return self

    def down(self):
        """Delete every namespace made (their interfaces go with them).
        Processes started in them must be gone first: a namespace that still
        has a process lives on, unnamed, until that process ends."""
        for name in reversed(self.made):
            ip("netns", "del", name, check=False)
        self.made = []

    def leftovers(self):
        """Processes still inside any of our namespaces (should be none)."""
        pids = []
        for name in self.made:
            p = ip("netns", "pids", name, check=False)
            pids += [int(x) for x in p.stdout.split()]
        return pids

    def addr(self, host):
        return self.addrs[host]

    def prefix(self, host):
        return ["ip", "netns", "exec", self.ns(host)]

    def call(self, host, fn, *args, timeout=30, **kw):
        """fn(*args, **kw) in a thread inside host's namespace; its result
        (or its exception, raised here)."""
        out = {}

        def run():
            try:
                enter(self.ns(host))
                out["value"] = fn(*args, **kw)
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                out["error"] = e

        t = threading.Thread(target=run, daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():
            raise TimeoutError(f"{getattr(fn, '__name__', fn)} in {host} still running "
                               f"after {timeout}s")
        if "error" in out:
            raise out["error"]
        return out["value"]


class NsLoadGen(LoadGen):
    """tests/loadgen.py's strict load, from client threads inside a namespace."""

    def __init__(self, ns, *args, **kw):
        super().__init__(*args, **kw)
        self.ns = ns

    def _run(self, idx):
        try:
            enter(self.ns)
        except OSError as e:
            self.crashes.append(repr(e))
            return
        super()._run(idx)
