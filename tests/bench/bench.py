#!/usr/bin/python3
"""hugd throughput benchmark: hugd vs gunicorn (sync) vs uWSGI, one worker each.

Run with Debian's interpreter (it has python3-hug):

    /usr/bin/python3 tests/bench/bench.py [--rounds 5] [--duration 5]
        [--servers hugd,gunicorn,uwsgi] [--json results.json]

Each server is started fresh for every run, pinned to one CPU (--server-cpu,
default 0), warmed up, and loaded by wrk pinned to another CPU (--client-cpu,
default 1): `wrk -t1 -c50 -dNs --latency` with keep-alive (wrk's default).
Runs alternate between servers (A B C A B C ...) so drift hits all equally.
The in-process "ceiling" is the same WSGI call made in a tight Python loop on
the server CPU: no sockets, no HTTP parsing -- the most a single Python
worker could possibly do.  See README.md in this directory.

Exit status: 0 ok; 1 a server returned errors / crashed / did not start;
2 usage or environment problem; 3 overall time limit hit; 130 interrupted.
"""

import argparse
import collections
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PY = "/usr/bin/python3"
EXPECTED_BODY = {"hello": "world"}

# What a server is told to serve: the file (hugd, uWSGI), the module and the
# WSGI callable in it (gunicorn, bjoern).  Paths are relative to HERE, where
# every server runs.
App = collections.namedtuple("App", "file module callable")
HELLO = App("hello.py", "hello", "__hug_wsgi__")
APP_FILE, APP_MODULE, CALLABLE = HELLO

ALL_SERVERS = ("hugd", "gunicorn", "gunicorn-gthread", "gunicorn-preload",
               "uwsgi", "uwsgi-h11", "bjoern", "hugd-b")
DEFAULT_SERVERS = "hugd,gunicorn,uwsgi"
GTHREAD_THREADS = 4


class BenchError(Exception):
    """A server misbehaved (errors, crash, failed to start)."""


class TimeLimit(Exception):
    pass


# ----------------------------------------------------------------- processes

def _children_map():
    """ppid -> [pid] for every process visible in /proc."""
    m = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        # field after the ")" of comm: state ppid ...
        rest = stat[stat.rfind(")") + 2:].split()
        m.setdefault(int(rest[1]), []).append(int(d))
    return m


def descendants(pid):
    m = _children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in m.get(p, ()):
            out.append(c)
            todo.append(c)
    return out


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


class Proc:
    """A subprocess in its own session/process group; killed as a tree."""

    registry = []

    def __init__(self, name, argv, cwd, log_path, term_signal=signal.SIGTERM,
                 env=None):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.term_signal = term_signal
        self.log = open(log_path, "wb")
        self.p = subprocess.Popen(argv, cwd=cwd, stdout=self.log,
                                  stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL,
                                  start_new_session=True, env=env)
        self.pgid = self.p.pid
        self.known = {self.p.pid}
        Proc.registry.append(self)

    def refresh(self):
        """Remember every descendant (in case one leaves our process group)."""
        if self.p.poll() is None:
            self.known.update(descendants(self.p.pid))
        return self.known

    def workers(self):
        return sorted(descendants(self.p.pid)) if self.p.poll() is None else []

    def stop(self, grace=5.0):
        self.refresh()
        for sig in (self.term_signal, signal.SIGKILL):
            try:
                os.killpg(self.pgid, sig)
            except ProcessLookupError:
                pass
            if sig == signal.SIGKILL:
                for pid in self.known:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                self.p.poll()
                if not any(_alive(pid) for pid in self.known):
                    break
                time.sleep(0.05)
            else:
                continue
            break
        try:
            self.p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        self.log.close()
        left = [pid for pid in self.known if _alive(pid)]
        if self in Proc.registry:
            Proc.registry.remove(self)
        return left

    def log_tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    @classmethod
    def stop_all(cls):
        left = []
        for pr in list(cls.registry):
            left += pr.stop(grace=3.0)
        return left


def listen_overflows():
    """Host-wide TcpExt ListenOverflows (accept queue full), or None."""
    try:
        with open("/proc/net/netstat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for names, vals in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            d = dict(zip(names.split()[1:], vals.split()[1:]))
            if "ListenOverflows" in d:
                return int(d["ListenOverflows"])
    return None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ------------------------------------------------------------------- servers


def hugd_root():
    """The peers run as whoever runs the benchmark; so does hugd (which
    refuses root unless told)."""
    return ["--allow-root"] if os.geteuid() == 0 else []


def arm_time_limit(budget):
    """TimeLimit after budget seconds; TERM and HUP end the run like Ctrl-C,
    which keeps working when started in the background (bash then ignores
    SIGINT for us)."""
    def on_alarm(*_):
        raise TimeLimit()

    def on_term(*_):
        raise KeyboardInterrupt()

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.alarm(budget)


def guarded(body, budget):
    """Run body(); turn the ways a run fails into exit codes (1 a server
    misbehaved or a subprocess hung, 3 the overall time limit, 130
    interrupted; 0 otherwise) and stop every server whatever happened."""
    try:
        body()
        return 0
    except BenchError as e:
        print("\nFAIL: %s" % e, file=sys.stderr)
        return 1
    except TimeLimit:
        print("\nFAIL: overall time limit of %ds hit" % budget, file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except subprocess.TimeoutExpired as e:
        print("\nFAIL: subprocess timed out: %s" % e, file=sys.stderr)
        return 1
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        left = Proc.stop_all()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if left:
            print("WARNING: could not kill %s" % left, file=sys.stderr)

def hugd_target(app):
    """hugd finds a Hug app's WSGI callable in the file by itself; any
    other callable is named as module:attribute."""
    if app.callable == "__hug_wsgi__":
        return app.file
    return "%s:%s" % (app.module, app.callable)


def gunicorn_argv(addr, app, workers, kind="sync", threads=1,
                  preload=False):
    """gunicorn as people run it: `-k sync` (one request at a time, closes
    every connection) or `-k gthread` (keep-alive, a thread pool per
    worker); --preload imports the application in the master before the
    fork, as hugd and uWSGI do."""
    argv = [PY, "-m", "gunicorn", "-w", str(workers), "-k", kind,
            "-b", addr]
    if kind == "gthread":
        argv += ["--threads", str(threads)]
    if preload:
        argv.append("--preload")
    return argv + ["%s:%s" % (app.module, app.callable)]


def bjoern_available(path=None):
    """True if /usr/bin/python3 can import bjoern (from `path` first, when
    given: a build directory that holds _bjoern*.so).  Never builds it."""
    code = "import sys; sys.path[:0] = sys.argv[1:]; import bjoern"
    argv = [PY, "-c", code] + ([path] if path else [])
    return subprocess.run(argv, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL,
                          stdin=subprocess.DEVNULL).returncode == 0


def bjoern_argv(addr, app, workers, path=None):
    host, port = addr.rsplit(":", 1)
    return [PY, os.path.join(HERE, "bjoern_serve.py")] + (
        ["--path", path] if path else []) + [
        "%s:%s" % (app.module, app.callable), host, port, str(workers)]


def server_argv(name, port, args, app=HELLO):
    tset = ["taskset", "-c", str(args.server_cpu)]
    addr = "127.0.0.1:%d" % port
    if name in ("hugd", "hugd-b"):
        # hugd-b: another build (--hugd-b), for an A/B in the same rounds.
        binary = args.hugd if name == "hugd" else args.hugd_b
        return tset + [binary] + hugd_root() + ["-w", "1", "-b", addr,
                                                hugd_target(app)], signal.SIGTERM
    if name in ("gunicorn", "gunicorn-preload"):
        return tset + gunicorn_argv(addr, app, 1,
                                    preload=name == "gunicorn-preload"), \
            signal.SIGTERM
    if name == "gunicorn-gthread":
        threads = getattr(args, "gthread_threads", GTHREAD_THREADS)
        return tset + gunicorn_argv(addr, app, 1, "gthread", threads), \
            signal.SIGTERM
    if name == "bjoern":
        return tset + bjoern_argv(addr, app, 1,
                                  getattr(args, "bjoern_path", None)), \
            signal.SIGTERM
    uw_common = ["--wsgi-file", app.file, "--callable", app.callable,
                 "--processes", "1", "--master", "--disable-logging",
                 "--die-on-term"]
    if name == "uwsgi":
        # uWSGI's HTTP router (a separate event-driven C process, also pinned
        # to the server CPU) keeps client connections alive and forwards each
        # request to the single Python worker over the uwsgi protocol.
        return tset + ["uwsgi", "--plugin", "python3,http", "--http", addr,
                       "--http-keepalive"] + uw_common, signal.SIGTERM
    if name == "uwsgi-h11":
        # Worker speaks HTTP/1.1 itself and keeps connections alive, but a
        # sync worker then serves ONE connection until the client closes it:
        # the other 49 wait in the accept backlog.  Throughput is real,
        # latency/concurrency are not comparable (flagged as starved).
        return tset + ["uwsgi", "--plugin", "python3", "--http11-socket",
                       addr] + uw_common, signal.SIGTERM
    raise ValueError(name)


def http_get(port, path, timeout=2.0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        return r.status, body, r.will_close
    finally:
        c.close()


def check_keepalive(port, path):
    """Two requests on one connection; True if the server kept it open."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    try:
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        if r.will_close:
            return False
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        return r.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        c.close()


def check_hello(name, port, args):
    """The first answer of a server running hello.py: 200 and the body."""
    status, body, _ = http_get(port, args.path)
    if status != 200:
        raise BenchError("%s: GET %s -> %d %r" %
                         (name, args.path, status, body[:200]))
    if json.loads(body) != EXPECTED_BODY:
        raise BenchError("%s: unexpected body %r" % (name, body[:200]))


def start_server(name, args, logdir, run_idx, app=HELLO, check=check_hello):
    """Start `name` serving `app` on a free port and wait until
    check(name, port, args) passes (it raises OSError or HTTPException while
    the server is not up yet, BenchError if it answers wrongly)."""
    port = free_port()
    argv, term = server_argv(name, port, args, app)
    log = os.path.join(logdir, "%s-%d.log" % (name, run_idx))
    pr = Proc(name, argv, HERE, log, term_signal=term)
    deadline = time.monotonic() + args.start_timeout
    last = None
    while time.monotonic() < deadline:
        if pr.p.poll() is not None:
            raise BenchError("%s exited with %s during startup:\n%s"
                             % (name, pr.p.returncode, pr.log_tail()))
        try:
            check(name, port, args)
            pr.port = port
            pr.refresh()
            return pr
        except (OSError, http.client.HTTPException) as e:
            last = e
            time.sleep(0.1)
    pr.stop()
    raise BenchError("%s did not answer on port %d within %.0fs (%s):\n%s"
                     % (name, port, args.start_timeout, last, pr.log_tail()))


# ----------------------------------------------------------------------- wrk

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _dur(s):
    m = re.match(r"([\d.]+)(us|ms|s|m|h)$", s)
    return float(m.group(1)) * _UNITS[m.group(2)]


def run_wrk(port, args, duration, path=None, latency_out=None):
    """wrk -t1 on the client CPU; latency_out: a file that gets wrk's
    latency percentiles (latency.lua: "percentile microseconds" lines)."""
    argv = ["taskset", "-c", str(args.client_cpu), "wrk", "-t1",
            "-c%d" % args.connections, "-d%ds" % duration, "--latency"]
    env = None
    if latency_out:
        argv += ["-s", os.path.join(HERE, "latency.lua")]
        env = dict(os.environ, WRK_LATENCY_OUT=latency_out)
    argv.append("http://127.0.0.1:%d%s" % (port, path or args.path))
    out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, timeout=duration + 30,
                         check=False, env=env).stdout.decode("utf-8", "replace")
    r = {"raw": out, "non2xx": 0,
         "socket_errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0}}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise BenchError("could not parse wrk output:\n" + out)
    r["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in ([\d.]+\w+)", out)
    r["requests"] = int(m.group(1)) if m else None
    m = re.search(r"^\s+Latency\s+(\S+)\s+(\S+)\s+(\S+)", out, re.M)
    r["lat_avg_s"] = _dur(m.group(1)) if m else None
    r["lat_max_s"] = _dur(m.group(3)) if m else None
    for q in ("50", "99"):
        m = re.search(r"^\s+%s%%\s+(\S+)" % q, out, re.M)
        r["p%s_s" % q] = _dur(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        r["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                  r"timeout (\d+)", out)
    if m:
        r["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"),
                                      map(int, m.groups())))
    # Little's law: requests actually in flight on average.  ~= connections
    # when every connection makes progress; ~1 if the server serves one
    # keep-alive connection at a time and starves the rest.
    r["concurrency"] = (r["rps"] * r["lat_avg_s"]
                        if r["lat_avg_s"] is not None else None)
    return r


# ------------------------------------------------------------------- ceiling

CEILING_CODE = r"""
import io, os, sys, time
os.chdir(sys.argv[1]); sys.path.insert(0, sys.argv[1])
secs = float(sys.argv[2]); path = sys.argv[3]
import warnings; warnings.simplefilter("ignore")
import hello
app = hello.__hug_wsgi__
base = {
    "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": path,
    "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000",
    "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
    "HTTP_HOST": "127.0.0.1:8000", "HTTP_USER_AGENT": "wrk",
    "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
    "wsgi.errors": sys.stderr, "wsgi.multithread": False,
    "wsgi.multiprocess": True, "wsgi.run_once": False,
}
BytesIO = io.BytesIO
status = []
def start_response(s, h, exc_info=None):
    status.append(s)
    return None
def call():
    env = dict(base); env["wsgi.input"] = BytesIO(b"")
    it = app(env, start_response)
    for chunk in it:
        pass
    close = getattr(it, "close", None)
    if close: close()
for _ in range(2000): call()  # warm-up, includes hug's lazy instantiation
assert status[-1].startswith("200"), status[-1]
n = 0; t0 = time.perf_counter(); end = t0 + secs
while True:
    for _ in range(500): call()
    n += 500
    t = time.perf_counter()
    if t >= end: break
print("%.1f" % (n / (t - t0)))
"""


def measure_ceiling(args):
    vals = []
    for _ in range(args.ceiling_runs):
        argv = ["taskset", "-c", str(args.server_cpu), PY, "-c", CEILING_CODE,
                HERE, str(args.ceiling_secs), args.path]
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL,
                           timeout=args.ceiling_secs + 30, check=False)
        if p.returncode != 0:
            raise BenchError("ceiling loop failed:\n" +
                             p.stderr.decode("utf-8", "replace"))
        vals.append(float(p.stdout.decode().strip().splitlines()[-1]))
    return vals


# ---------------------------------------------------------------------- main

def fmt_lat(s):
    if s is None:
        return "-"
    return "%.0fus" % (s * 1e6) if s < 1e-3 else "%.2fms" % (s * 1e3)


def run_problems(pr, res, before):
    """What went wrong in the wrk run `res` against the server `pr`, whose
    worker processes were `before` when it started: [] if nothing."""
    problems = []
    after = set(pr.workers())
    pr.refresh()
    if pr.p.poll() is not None:
        problems.append("server exited with %s during the run"
                        % pr.p.returncode)
    elif before != after:
        problems.append("worker processes changed during the run "
                        "(crash/respawn?): %s -> %s"
                        % (sorted(before), sorted(after)))
    if res["non2xx"]:
        problems.append("%d non-2xx/3xx responses" % res["non2xx"])
    se = res["socket_errors"]
    if any(se.values()):
        problems.append("socket errors %s" % se)
    return problems


def one_run(name, args, logdir, idx, latency_out=None):
    """A fresh server, a keep-alive check, warm-up, one measured wrk run,
    stop; the result has "problems" (empty when the server behaved)."""
    pr = start_server(name, args, logdir, idx)
    problems = []
    try:
        keepalive = check_keepalive(pr.port, args.path)
        if args.warmup > 0:
            run_wrk(pr.port, args, args.warmup)
        before = set(pr.workers())
        lo0 = listen_overflows()
        res = run_wrk(pr.port, args, args.duration, latency_out=latency_out)
        lo1 = listen_overflows()
        res["listen_overflows"] = (lo1 - lo0 if lo0 is not None and
                                   lo1 is not None else None)
        res["keepalive"] = keepalive
        problems += run_problems(pr, res, before)
        if not problems:
            # still healthy after the load?
            try:
                status, body, _ = http_get(pr.port, args.path)
                if status != 200 or json.loads(body) != EXPECTED_BODY:
                    problems.append("after run: GET -> %d %r"
                                    % (status, body[:100]))
            except (OSError, http.client.HTTPException, ValueError) as e:
                problems.append("after run: GET failed: %s" % e)
    finally:
        left = pr.stop()
        if left:
            problems.append("processes left behind after stop: %s" % left)
    res["problems"] = problems
    res["log"] = pr.log_path
    if problems:
        res["log_tail"] = pr.log_tail()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--servers", default=DEFAULT_SERVERS,
                    help="comma list from %s (default %s)"
                    % (",".join(ALL_SERVERS), DEFAULT_SERVERS))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=5, help="seconds per run")
    ap.add_argument("--warmup", type=int, default=1,
                    help="seconds of unmeasured wrk load before each run")
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--path", default="/")
    ap.add_argument("--hugd", default=os.path.join(ROOT, "build", "hugd"))
    ap.add_argument("--hugd-b", metavar="PATH",
                    help="a second hugd build (in its own checkout's build/), run as "
                         "'hugd-b' alternating with the others: an A/B of two builds")
    ap.add_argument("--gthread-threads", type=int, default=GTHREAD_THREADS,
                    help="threads of the gunicorn-gthread worker")
    ap.add_argument("--bjoern-path", metavar="DIR",
                    help="a bjoern build to import (default: the installed one)")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--ceiling-runs", type=int, default=5)
    ap.add_argument("--ceiling-secs", type=float, default=2.0)
    ap.add_argument("--no-ceiling", action="store_true")
    ap.add_argument("--start-timeout", type=float, default=20.0)
    ap.add_argument("--max-time", type=int, default=0,
                    help="overall limit in seconds (default: computed)")
    ap.add_argument("--keep-going", action="store_true",
                    help="record server errors and continue instead of "
                    "stopping at the first one (still exits 1)")
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--logdir", help="server logs (default: a temp dir)")
    args = ap.parse_args()

    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    for s in servers:
        if s not in ALL_SERVERS:
            ap.error("unknown server %r" % s)
    for tool in ("taskset", "wrk") + (("uwsgi",) if any(
            s.startswith("uwsgi") for s in servers) else ()):
        if not shutil.which(tool):
            ap.error("%s not found (apt-get install -y gunicorn uwsgi "
                     "uwsgi-plugin-python3 wrk)" % tool)
    if args.hugd_b and "hugd-b" not in servers:
        servers.append("hugd-b")
    if "hugd-b" in servers and not (args.hugd_b and os.access(args.hugd_b, os.X_OK)):
        ap.error("hugd-b needs --hugd-b PATH to a built hugd")
    if "bjoern" in servers and not bjoern_available(args.bjoern_path):
        ap.error("bjoern cannot be imported by %s (--bjoern-path DIR for a "
                 "build of it)" % PY)
    if "hugd" in servers and not os.access(args.hugd, os.X_OK):
        ap.error("hugd binary not found at %s (build it, or --hugd PATH, or "
                 "--servers gunicorn,uwsgi)" % args.hugd)
    ncpu = os.cpu_count() or 1
    if max(args.server_cpu, args.client_cpu) >= ncpu or \
            args.server_cpu == args.client_cpu:
        print("warning: %d CPUs; server cpu %d / client cpu %d not isolated"
              % (ncpu, args.server_cpu, args.client_cpu), file=sys.stderr)
    try:  # keep this script off the server CPU
        os.sched_setaffinity(0, {args.client_cpu})
    except OSError:
        pass

    per_run = args.duration + args.warmup + args.start_timeout + 15
    budget = args.max_time or int(
        len(servers) * args.rounds * per_run + 60 +
        (0 if args.no_ceiling else args.ceiling_runs *
         (args.ceiling_secs + 30)))

    arm_time_limit(budget)

    logdir = args.logdir or tempfile.mkdtemp(prefix="hugd-bench-")
    os.makedirs(logdir, exist_ok=True)
    runs = {s: [] for s in servers}
    failures = []
    ceiling = []
    rc = 0
    print("hugd bench: servers=%s rounds=%d duration=%ds warmup=%ds "
          "wrk -t1 -c%d, server cpu %d, wrk cpu %d, logs in %s "
          "(time limit %ds)" % (",".join(servers), args.rounds, args.duration,
                                args.warmup, args.connections, args.server_cpu,
                                args.client_cpu, logdir, budget), flush=True)
    t_start = time.monotonic()

    def body():
        nonlocal ceiling
        idx = 0
        for rnd in range(1, args.rounds + 1):
            for s in servers:
                idx += 1
                r = one_run(s, args, logdir, idx)
                r["round"] = rnd
                runs[s].append(r)
                print("  round %d %-16s %9.0f req/s  p50 %-8s p99 %-8s "
                      "conc %5.1f  keepalive=%s%s%s"
                      % (rnd, s, r["rps"], fmt_lat(r["p50_s"]),
                         fmt_lat(r["p99_s"]), r["concurrency"] or 0,
                         "yes" if r["keepalive"] else "no",
                         "  listen-overflows=%d" % r["listen_overflows"]
                         if r["listen_overflows"] else "",
                         "" if not r["problems"] else
                         "  !! " + "; ".join(r["problems"])), flush=True)
                if r["problems"]:
                    failures.append((s, rnd, r))
                    print("---- wrk output ----\n%s---- %s log tail (%s) ----"
                          "\n%s\n----" % (r["raw"], s, r["log"],
                                          r.get("log_tail", "")),
                          file=sys.stderr, flush=True)
                    if not args.keep_going:
                        raise BenchError("%s returned errors in round %d: %s"
                                         % (s, rnd, "; ".join(r["problems"])))
        if not args.no_ceiling:
            ceiling = measure_ceiling(args)
            print("  ceiling (in-process WSGI loop, cpu %d): %s calls/s"
                  % (args.server_cpu, ", ".join("%.0f" % v for v in ceiling)),
                  flush=True)

    rc = guarded(body, budget)
    if failures and rc == 0:
        rc = 1

    # ------------------------------------------------------------- report
    summary = {}
    ceil_med = statistics.median(ceiling) if ceiling else None
    for s in servers:
        ok = [r for r in runs[s]]
        if not ok:
            continue
        rps = [r["rps"] for r in ok]
        p99 = [r["p99_s"] for r in ok if r["p99_s"] is not None]
        conc = [r["concurrency"] for r in ok if r["concurrency"] is not None]
        summary[s] = {
            "runs": len(ok), "median_rps": statistics.median(rps),
            "min_rps": min(rps), "max_rps": max(rps),
            "p99_median_s": statistics.median(p99) if p99 else None,
            "concurrency_median": statistics.median(conc) if conc else None,
            "keepalive": all(r["keepalive"] for r in ok),
            "errors": sum(1 for r in ok if r["problems"]),
        }
    gu = summary.get("gunicorn", {}).get("median_rps")
    print()
    hdr = ("%-16s %5s %10s %10s %10s %9s %6s %4s %9s %9s"
           % ("server", "runs", "median/s", "min/s", "max/s", "p99(med)",
              "conc", "k-a", "x gunic.", "x ceiling"))
    print(hdr)
    print("-" * len(hdr))
    for s, v in summary.items():
        starved = (v["concurrency_median"] is not None and
                   v["concurrency_median"] < 0.5 * args.connections)
        print("%-16s %5d %10.0f %10.0f %10.0f %9s %6.1f %4s %9s %9s%s"
              % (s, v["runs"], v["median_rps"], v["min_rps"], v["max_rps"],
                 fmt_lat(v["p99_median_s"]), v["concurrency_median"] or 0,
                 "yes" if v["keepalive"] else "no",
                 "%.2f" % (v["median_rps"] / gu) if gu else "-",
                 "%.2f" % (v["median_rps"] / ceil_med) if ceil_med else "-",
                 "  (STARVED: serves ~%.0f of %d connections)"
                 % (v["concurrency_median"], args.connections)
                 if starved else ""))
    if ceil_med:
        print("%-16s %5d %10.0f %10.0f %10.0f %9s %6s %4s %9s %9s"
              % ("ceiling", len(ceiling), ceil_med, min(ceiling), max(ceiling),
                 "-", "-", "-",
                 "%.2f" % (ceil_med / gu) if gu else "-", "1.00"))
    hu = summary.get("hugd", {}).get("median_rps")
    parts = []
    if hu and gu:
        parts.append("hugd/gunicorn = %.2fx" % (hu / gu))
    if hu and ceil_med:
        parts.append("hugd/ceiling = %.2f" % (hu / ceil_med))
    hb = summary.get("hugd-b", {}).get("median_rps")
    if hu and hb:
        # Runs alternate, so round k of each saw the same machine.
        ratios = [a["rps"] / b["rps"] for a, b in zip(runs["hugd"], runs["hugd-b"]) if b["rps"]]
        parts.append("hugd/hugd-b = %.3f (per round: %s; median %.3f)"
                     % (hu / hb, " ".join("%.3f" % r for r in ratios),
                        statistics.median(ratios) if ratios else 0))
    if parts:
        print("RESULT: " + "  ".join(parts))
    print("elapsed %.0fs%s" % (time.monotonic() - t_start,
                               "" if rc == 0 else ", exit %d" % rc))

    if args.json:
        out = {
            "config": {k: v for k, v in vars(args).items() if k != "json"},
            "servers": servers, "summary": summary,
            "ceiling": {"runs": ceiling, "median": ceil_med},
            "ratios": {"hugd_vs_gunicorn": hu / gu if hu and gu else None,
                       "hugd_vs_ceiling": hu / ceil_med if hu and ceil_med
                       else None},
            "runs": {s: [{k: v for k, v in r.items() if k != "raw"}
                         for r in runs[s]] for s in servers},
            "exit": rc,
        }
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return rc


if __name__ == "__main__":
    sys.exit(main())
