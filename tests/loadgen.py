"""A small, strict HTTP load generator for the hugd supervision tests.

N client threads send GET requests as fast as they can, each over its own
connection (keep-alive: one http.client.HTTPConnection reused request after
request; or a new connection per request).  EVERY request that does not end
in a complete 200 response is a failure: a refused connect, a reset, a
connection the server closed before answering (even one that was idle
between two keep-alive requests), a timeout, a short body, another status.
Nothing is retried silently: after a failure the thread counts it, drops its
connection and opens a new one for the next request.

Each request is recorded (start time, ok, error text, the pid that answered,
latency, the body's first word), so tests can ask which worker answered when.

    lg = LoadGen(srv.host, srv.port, path="/pid", threads=8).start()
    ... do things to the server ...
    lg.stop()
    assert lg.failures == 0, lg.report()

Bounded in time: every socket has a timeout, every thread stops at
`duration` (if given) and at the hard `deadline` whatever happens, and
stop() joins the threads.
"""
import http.client
import threading
import time


class Record:
    __slots__ = ("t", "ok", "error", "pid", "latency", "text", "thread", "conn_id")

    def __init__(self, t, ok, error, pid, latency, text, thread, conn_id):
        self.t = t              # time.monotonic() when the request started
        self.ok = ok            # complete 200 response
        self.error = error      # text of the failure, or None
        self.pid = pid          # pid the app reported (int), or None
        self.latency = latency  # seconds
        self.text = text        # first word of the body (the app's version)
        self.thread = thread    # client thread index
        self.conn_id = conn_id  # which connection of that thread carried it

    def __repr__(self):
        return (f"<Record t={self.t:.3f} ok={self.ok} pid={self.pid} text={self.text!r} "
                f"lat={self.latency * 1000:.1f}ms thread={self.thread} conn={self.conn_id} "
                f"error={self.error!r}>")


def parse_pid_body(body):
    """The supervised apps answer '<text> <pid>\\n': return (text, pid)."""
    parts = body.decode("ascii", "replace").split()
    if len(parts) != 2 or not parts[1].isdigit():
        raise ValueError(f"unexpected body {body[:100]!r}")
    return parts[0], int(parts[1])


class LoadGen:
    def __init__(self, host, port, path="/pid", threads=8, keepalive=True,
                 duration=None, deadline=60.0, timeout=10.0, parse=parse_pid_body,
                 pause=0.0, source_address=None, on_connect=None):
        """source_address: (host, port) each connection is made from;
        on_connect(sock, thread, conn_id): called on each new connection
        before its first request (to send a PROXY header, say)."""
        self.host = host
        self.port = port
        self.path = path
        self.nthreads = threads
        self.keepalive = keepalive
        self.duration = duration
        self.deadline = deadline
        self.timeout = timeout
        self.parse = parse
        self.pause = pause
        self.source_address = source_address
        self.on_connect = on_connect
        self.records = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []
        self.t0 = None
        self.crashes = []  # exceptions that escaped a client thread (a bug here)

    # -- running ---------------------------------------------------------------
    def start(self):
        self.t0 = time.monotonic()
        end = self.t0 + self.deadline
        if self.duration is not None:
            end = min(end, self.t0 + self.duration)
        self._end = end
        for i in range(self.nthreads):
            t = threading.Thread(target=self._run, args=(i,), name=f"loadgen-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self, join_timeout=None):
        """Stop sending and join every thread (bounded by the socket timeout)."""
        self._stop.set()
        limit = join_timeout if join_timeout is not None else self.timeout + 5
        until = time.monotonic() + limit
        for t in self._threads:
            t.join(max(0.0, until - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            raise AssertionError(f"load generator threads still running: {alive}")
        return self

    def wait(self):
        """Wait until the duration (or the deadline) is over."""
        for t in self._threads:
            t.join(max(0.0, self._end - time.monotonic()) + self.timeout + 5)
        return self.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)

    def _record(self, rec):
        with self._lock:
            self.records.append(rec)

    def _run(self, idx):
        conn = None
        conn_id = 0
        try:
            while not self._stop.is_set() and time.monotonic() < self._end:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout,
                                                      source_address=self.source_address)
                    conn_id += 1
                t = time.monotonic()
                ok, err, pid, text = False, None, None, None
                try:
                    headers = {} if self.keepalive else {"Connection": "close"}
                    if self.on_connect and conn.sock is None:
                        conn.connect()
                        self.on_connect(conn.sock, idx, conn_id)
                    conn.request("GET", self.path, headers=headers)
                    resp = conn.getresponse()
                    body = resp.read()  # IncompleteRead if short of Content-Length
                    if resp.status != 200:
                        err = f"status {resp.status}: {body[:200]!r}"
                    else:
                        cl = resp.getheader("Content-Length")
                        if cl is not None and int(cl) != len(body):
                            err = f"body of {len(body)} bytes, Content-Length {cl}"
                        else:
                            text, pid = self.parse(body)
                            ok = True
                    if not self.keepalive or resp.will_close:
                        conn.close()
                        conn = None
                except Exception as e:  # noqa: BLE001 - every failure counts
                    err = f"{type(e).__name__}: {e}"
                    ok = False
                if not ok:
                    # count it, then start over on a fresh connection
                    if conn is not None:
                        conn.close()
                        conn = None
                self._record(Record(t, ok, err, pid, time.monotonic() - t, text, idx, conn_id))
                if self.pause:
                    time.sleep(self.pause)
        except BaseException as e:  # noqa: BLE001
            self.crashes.append(repr(e))
        finally:
            if conn is not None:
                conn.close()

    # -- results -------------------------------------------------------------------
    def snapshot(self):
        with self._lock:
            return list(self.records)

    @property
    def total(self):
        return len(self.snapshot())

    def failed(self):
        return [r for r in self.snapshot() if not r.ok]

    @property
    def failures(self):
        return len(self.failed())

    def ok_records(self, since=None, until=None):
        return [r for r in self.snapshot() if r.ok
                and (since is None or r.t >= since) and (until is None or r.t < until)]

    def pids(self, since=None, until=None):
        return {r.pid for r in self.ok_records(since, until)}

    def texts(self, since=None, until=None):
        return {r.text for r in self.ok_records(since, until)}

    def last_ok(self):
        oks = self.ok_records()
        return oks[-1] if oks else None

    def report(self, first=5):
        recs = self.snapshot()
        fails = [r for r in recs if not r.ok]
        lat = sorted(r.latency for r in recs if r.ok)
        span = (max(r.t for r in recs) - min(r.t for r in recs)) if recs else 0.0
        out = [f"{len(recs)} requests in {span:.1f}s ({'keep-alive' if self.keepalive else 'close'},"
               f" {self.nthreads} threads), {len(fails)} failed"]
        if lat:
            out.append(f"latency p50 {lat[len(lat) // 2] * 1000:.1f}ms "
                       f"p99 {lat[int(len(lat) * 0.99)] * 1000:.1f}ms max {lat[-1] * 1000:.1f}ms")
        out.append(f"pids seen: {sorted(p for p in {r.pid for r in recs if r.ok})}")
        if self.t0 is not None:
            for r in fails[:first]:
                out.append(f"  at +{r.t - self.t0:.3f}s thread {r.thread} conn {r.conn_id}: {r.error}")
        if self.crashes:
            out.append(f"client thread crashes: {self.crashes}")
        return "\n".join(out)
