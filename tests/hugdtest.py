"""Helpers for the hugd integration tests: start the real binary, talk raw HTTP.

Everything here is bounded in time: sockets carry timeouts, every wait has a
deadline, and every process started is killed (whole process group) by
Server.kill(), which the fixtures in conftest.py always call at teardown.
"""
import json
import os
import signal
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
APPS = TESTS / "apps"
HUGD_BIN = os.environ.get("HUGD_BIN") or str(REPO / "build" / "hugd")
PYTHON = sys.executable

SOCK_TIMEOUT = 10.0

# Every Server ever started, so that a session finaliser can kill leftovers.
_ALL_SERVERS = []


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_PORT_RNG = random.Random()
_PORTS_GIVEN = set()


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    """A port nothing listens on, below the kernel's ephemeral range: a port
    the kernel hands out for binding to 0 is one it may also give any
    outgoing connection (the test's own clients, the server's) as its local
    port before the server under test binds it, which then fails with
    "address already in use"."""
    hi = min(_ephemeral_low(), 65536) - 1
    lo = 10000 if hi > 20000 else 1024
    for _ in range(500):
        port = _PORT_RNG.randint(lo, hi)
        if port in _PORTS_GIVEN:
            continue
        s = socket.socket(family, socket.SOCK_STREAM)
        try:
            s.bind((host, port))
        except OSError:
            continue
        finally:
            s.close()
        _PORTS_GIVEN.add(port)
        return port
    raise RuntimeError(f"no free port in {lo}..{hi}")


def have_ipv6_loopback():
    if not socket.has_ipv6:
        return False
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            s.bind(("::1", 0))
        finally:
            s.close()
        return True
    except OSError:
        return False


def proc_state(pid):
    """The state letter of pid in /proc (R, S, T, Z ...), None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # state is the field after the ")" closing the comm
    return data.rsplit(")", 1)[1].split()[0]


def pid_alive(pid):
    """True if pid exists and is not a zombie."""
    return proc_state(pid) not in (None, "Z")


def live_processes():
    """(pid, ppid, pgid) of every process that is not a zombie, from /proc."""
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                data = f.read()
        except OSError:
            continue
        # the fields after the ")" closing the comm: state ppid pgrp ...
        rest = data.rsplit(")", 1)[1].split()
        if rest[0] != "Z":
            yield int(d), int(rest[1]), int(rest[2])


def children_of(pid):
    """Pids of the live (non-zombie) children of pid.  From the kernel's
    list of each of its threads' children when it has one: a few reads,
    where scanning all of /proc takes long enough under load to pace a
    test that kills workers in a loop."""
    try:
        kids = set()
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids.update(int(k) for k in f.read().split())
    except FileNotFoundError:
        if not os.path.exists(f"/proc/{pid}"):
            return []
        return sorted(p for p, ppid, _ in live_processes() if ppid == pid)
    return sorted(k for k in kids if pid_alive(k))


def pgroup_members(pgid):
    return [p for p, _, pg in live_processes() if pg == pgid]


def wait_for(pred, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def waiting_in_its_loop(pid):
    """The worker's main thread sleeps in epoll_wait: it has finished what
    it was doing, recorded its connections as idle included."""
    try:
        with open(f"/proc/{pid}/wchan") as f:
            return f.read().strip() == "do_epoll_wait"
    except FileNotFoundError:
        return False


class ServerError(AssertionError):
    pass


class Server:
    """One hugd process (master + its workers, in their own process group)."""

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.proc = None
        self.port = None
        self.host = "127.0.0.1"
        self.family = socket.AF_INET
        self.unix_path = None
        self.args = None
        self.stdout_path = None
        self.stderr_path = None
        self.known_pids = set()
        _ALL_SERVERS.append(self)

    # -- start / stop ---------------------------------------------------
    def spawn(self, args, cwd=None, env=None, allow_root=True, prefix=(), pass_fds=(),
              preexec_fn=None):
        """Start hugd with exactly these args (no bind added, no waiting).

        allow_root=False: don't add --allow-root when running as root.
        prefix: argv run in front of the binary (it must exec it, keeping
        the pid), e.g. a shell setting LISTEN_PID=$$; pass_fds/preexec_fn
        go to subprocess.Popen."""
        args = [str(a) for a in args]
        if allow_root and os.geteuid() == 0 and not any(a in ("--allow-root", "-u", "--user") or
                                         a.startswith("--user=") for a in args):
            # hugd refuses to run an app as root unless told; CI runs as root.
            args = ["--allow-root"] + args
        self.args = [str(a) for a in prefix] + [HUGD_BIN] + args
        full_env = dict(os.environ)
        full_env.pop("PYTHONPATH", None)
        full_env.pop("PYTHONHOME", None)
        full_env.pop("VIRTUAL_ENV", None)  # an activated venv of the runner's must not leak in
        full_env["PYTHONDONTWRITEBYTECODE"] = "1"
        full_env["PYTHONUNBUFFERED"] = "1"
        if env:
            full_env.update({k: str(v) for k, v in env.items()})
        n = len([s for s in _ALL_SERVERS if s.proc is not None])
        self.stdout_path = self.workdir / f"hugd-{n}.stdout"
        self.stderr_path = self.workdir / f"hugd-{n}.stderr"
        out = open(self.stdout_path, "wb")
        err = open(self.stderr_path, "wb")
        try:
            self.proc = subprocess.Popen(
                self.args,
                cwd=str(cwd or self.workdir),
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                pass_fds=tuple(pass_fds),
                preexec_fn=preexec_fn,
            )
        finally:
            out.close()
            err.close()
        self.known_pids.add(self.proc.pid)
        return self

    def start(self, args, cwd=None, env=None, bind=True, wait=True, workers=None,
              ready_timeout=10.0):
        """Start hugd on a fresh port; wait until it accepts connections.

        bind=True adds `-b 127.0.0.1:PORT`; pass bind=False when args carry
        their own -b (set .port / .unix_path / .host / .family yourself).
        workers=N additionally waits until the master has N live children.
        """
        args = list(args)
        if bind:
            self.port = free_port()
            args = ["-b", f"127.0.0.1:{self.port}"] + args
        self.spawn(args, cwd=cwd, env=env)
        if wait:
            self.wait_ready(ready_timeout)
            if workers is not None:
                self.wait_workers(workers, ready_timeout)
        return self

    def _try_connect(self):
        try:
            s = self.connect(timeout=0.5)
        except OSError:
            return False
        s.close()
        return True

    def wait_ready(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(
                    f"hugd exited early with {self.proc.returncode}; args={self.args}\n"
                    f"--- stderr ---\n{self.stderr}\n--- stdout ---\n{self.stdout}")
            if self._try_connect():
                return
            time.sleep(0.05)
        raise ServerError(f"hugd did not accept connections within {timeout}s; "
                          f"args={self.args}\n--- stderr ---\n{self.stderr}")

    def wait_workers(self, n, timeout=10.0):
        ok = wait_for(lambda: len(self.children()) == n, timeout)
        if not ok:
            raise ServerError(f"expected {n} workers, have {self.children()}\n"
                              f"--- stderr ---\n{self.stderr}")
        return self.children()

    def wait_serving(self, n, timeout=10.0):
        """Wait until n workers have said they serve (needs --log-level
        debug): a worker that is alive may still be starting, and until one
        is free the master answers a health check itself, with a close."""
        if not wait_for(lambda: self.stderr.count("] [DEBUG] serving") >= n, timeout):
            raise ServerError(f"expected {n} workers serving\n--- stderr ---\n{self.stderr}")

    def children(self):
        if self.proc is None:
            return []
        kids = children_of(self.proc.pid)
        self.known_pids.update(kids)
        return kids

    def signal(self, sig):
        self.children()
        os.kill(self.proc.pid, sig)

    def wait(self, timeout):
        """Wait for the master to exit; returns the exit status (or raises)."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ServerError(f"hugd still running after {timeout}s\n"
                              f"--- stderr ---\n{self.stderr}")

    def stop(self, timeout=5.0):
        """Graceful stop (TERM), then make sure nothing is left."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.signal(signal.SIGTERM)
                self.proc.wait(timeout=timeout)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                pass
        self.kill()
        return self.proc.returncode

    def kill(self):
        """SIGKILL the whole process group and every pid ever seen. Idempotent."""
        if self.proc is None:
            return
        try:
            self.children()
        except Exception:
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for pid in list(self.known_pids):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        # members of the group may have been reparented; give the kernel a moment
        wait_for(lambda: not pgroup_members(self.proc.pid), 2.0)

    # -- output -------------------------------------------------------------
    @property
    def stderr(self):
        try:
            return self.stderr_path.read_bytes().decode("utf-8", "replace")
        except (OSError, AttributeError):
            return ""

    @property
    def stdout(self):
        try:
            return self.stdout_path.read_bytes().decode("utf-8", "replace")
        except (OSError, AttributeError):
            return ""

    # -- client side ------------------------------------------------------
    @property
    def url(self):
        if self.family == socket.AF_INET6:
            return f"http://[{self.host}]:{self.port}"
        return f"http://{self.host}:{self.port}"

    def connect(self, timeout=SOCK_TIMEOUT):
        if self.unix_path:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            try:
                s.connect(str(self.unix_path))
            except OSError:
                s.close()
                raise
            return s
        s = socket.socket(self.family, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect((self.host, self.port))
        except OSError:
            s.close()
            raise
        return s

    def conn(self, timeout=SOCK_TIMEOUT):
        return Conn(self.connect(timeout))

    def request(self, method, path, headers=None, body=b"", version="HTTP/1.1",
                close=True, timeout=SOCK_TIMEOUT):
        """One request on a fresh connection; returns a Response."""
        c = self.conn(timeout)
        try:
            hdrs = {"Host": "localhost"}
            if close:
                hdrs["Connection"] = "close"
            hdrs.update(headers or {})
            c.send(build_request(method, path, hdrs, body, version))
            return c.read_response(method=method)
        finally:
            c.close()

    def get_json(self, path, **kw):
        r = self.request("GET", path, **kw)
        assert r.status == 200, (r.status, r.body[:500], self.stderr[-2000:])
        return json.loads(r.body)


def build_request(method, path, headers=None, body=b"", version="HTTP/1.1"):
    if isinstance(body, str):
        body = body.encode()
    lines = [f"{method} {path} {version}"]
    headers = dict(headers or {})
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k in headers):
        headers["Content-Length"] = str(len(body))
    for k, v in headers.items():
        lines.append(f"{k}: {v}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Response:
    def __init__(self, version, status, reason, headers, body, raw_head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value)
        self.body = body
        self.raw_head = raw_head

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.headers!r} body={self.body[:200]!r}>"


class Conn:
    """A buffered client connection reading HTTP/1.x responses byte-exactly."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.eof = False

    def send(self, data):
        self.sock.sendall(data)

    def settimeout(self, t):
        self.sock.settimeout(t)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self):
        if self.eof:
            return False
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_until(self, sep):
        while sep not in self.buf:
            if not self._fill():
                raise EOFError(f"connection closed before {sep!r}; have {self.buf[:300]!r}")
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_exact(self, n):
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError(f"connection closed after {len(self.buf)} of {n} bytes")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_to_eof(self):
        while self._fill():
            pass
        out, self.buf = self.buf, b""
        return out

    def at_eof(self, timeout=2.0):
        """True if the peer closed the connection (nothing more buffered)."""
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            if self.buf:
                return False
            try:
                data = self.sock.recv(1)
            except ConnectionResetError:
                return True
            except socket.timeout:
                return False
            if data:
                self.buf += data
                return False
            self.eof = True
            return True
        finally:
            self.sock.settimeout(old)

    def read_head(self):
        raw = self.read_until(b"\r\n\r\n")
        lines = raw[:-4].split(b"\r\n")
        parts = lines[0].decode("latin-1").split(" ", 2)
        version, status = parts[0], int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = []
        for line in lines[1:]:
            k, _, v = line.decode("latin-1").partition(":")
            headers.append((k.strip(), v.strip()))
        return version, status, reason, headers, raw

    def read_chunked(self):
        body = b""
        while True:
            line = self.read_until(b"\r\n")
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                # trailers
                while True:
                    t = self.read_until(b"\r\n")
                    if t == b"\r\n":
                        return body
            body += self.read_exact(size)
            assert self.read_exact(2) == b"\r\n", "chunk not followed by CRLF"

    def read_response(self, method="GET", skip_100=True):
        while True:
            version, status, reason, headers, raw = self.read_head()
            if status == 100 and skip_100:
                continue
            break
        r = Response(version, status, reason, headers, b"", raw)
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return r
        te = (r.header("Transfer-Encoding") or "").lower()
        cl = r.header("Content-Length")
        if "chunked" in te:
            r.body = self.read_chunked()
        elif cl is not None:
            r.body = self.read_exact(int(cl))
        else:
            r.body = self.read_to_eof()
        return r


def http_get(server, path, **kw):
    return server.request("GET", path, **kw)
