"""Nothing is lost through faults and reloads: every TTIN and TTOU counts, a
HUP or USR2 that comes during a reload or upgrade runs after it, a request
that crashes its worker does not empty the pool, and a graceful stop keeps
to graceful_timeout.

Load is strict (tests/loadgen.py): 16 client threads, keep-alive and
new-connection side by side where the point is that no request is lost.
"""
import os
import re
import select
import signal
import socket
import threading
import time

import pytest

from hugdtest import APPS, children_of, pgroup_members, pid_alive, wait_for
from loadgen import LoadGen
from test_supervision import TARGET, direct_get, read_pidfile, stop_clean, wait_load, write_app

THREADS = 16
MASTER_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGTTIN,
                  signal.SIGTTOU, signal.SIGUSR1, signal.SIGUSR2)


# --- helpers --------------------------------------------------------------------------

def start_loads(srv, **kw):
    """A keep-alive and a new-connection load generator, started and
    served."""
    lgs = [LoadGen(srv.host, srv.port, threads=THREADS, keepalive=ka, **kw).start()
           for ka in (True, False)]
    try:
        for lg in lgs:
            wait_load(lg, 50)
    except BaseException:
        stop_loads(lgs)
        raise
    return lgs


def stop_loads(lgs):
    for lg in lgs:
        lg.stop()
    return "\n".join(lg.report() for lg in lgs)


def proc_status_mask(pid, field):
    with open(f"/proc/{pid}/status") as f:
        m = re.search(rf"^{field}:\s+([0-9a-f]+)$", f.read(), re.M)
    return int(m.group(1), 16)


def has(mask, sig):
    return bool(mask >> (int(sig) - 1) & 1)


def send_delivered(pid, sig, times):
    """Send sig `times` times, each one as soon as the kernel has delivered
    the one before (it is no longer pending).  That is as close as two
    standard signals can follow each other: one sent while the same signal
    is still pending is folded into it by the kernel itself."""
    fd = os.open(f"/proc/{pid}/status", os.O_RDONLY)
    try:
        def pending():
            # read afresh each time, from one descriptor: a tight poll
            st = os.pread(fd, 8192, 0)
            return has(int(re.search(rb"^ShdPnd:\s+([0-9a-f]+)$", st, re.M).group(1), 16), sig)

        for _ in range(times):
            os.kill(pid, sig)
            deadline = time.monotonic() + 2
            while pending():
                assert time.monotonic() < deadline, f"{sig.name} still pending in {pid}"
    finally:
        os.close(fd)


def accepts_signals(pid):
    """The master has its handlers in place and the signals unblocked."""
    try:
        caught, blocked = proc_status_mask(pid, "SigCgt"), proc_status_mask(pid, "SigBlk")
    except (OSError, AttributeError):
        return False
    return all(has(caught, s) and not has(blocked, s) for s in MASTER_SIGNALS)


def write_slow_app(path, version, delay):
    """The app, whose import says 'supervised_app: importing <version>' on
    stderr and then takes `delay` seconds: a reload that reads it is
    observably under way for that long."""
    write_app(path, version)
    with open(path) as f:
        src = f.read()
    new = re.sub(r"^IMPORT_DELAY = .*$", f"IMPORT_DELAY = {delay}", src, count=1, flags=re.M)
    assert new != src
    with open(f"{path}.tmp", "w") as f:
        f.write(new)
    os.replace(f"{path}.tmp", path)


class FifoLog:
    """hugd's error log (--error-logfile) through a FIFO that the test reads
    and can stop reading: block() fills it, so that the next line hugd
    writes holds the master where it is, until unblock()."""

    def __init__(self, path):
        os.mkfifo(path)
        self.path = path
        self.data = bytearray()
        self.lock = threading.Lock()
        self.reading = threading.Event()
        self.reading.set()
        self.paused = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        fd = os.open(self.path, os.O_RDONLY)  # returns once hugd opens it
        try:
            while True:
                if not self.reading.is_set():
                    self.paused.set()
                    self.reading.wait()
                    self.paused.clear()
                if not select.select([fd], [], [], 0.02)[0]:
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    return  # every writer has gone
                with self.lock:
                    self.data += chunk
        finally:
            os.close(fd)

    def text(self):
        with self.lock:
            return self.data.replace(b"\0", b"").decode("utf-8", "replace")

    def block(self):
        self.reading.clear()
        assert self.paused.wait(2)
        fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)  # a description of our own
        try:
            for size in (4096, 1):  # to the last byte: a short line must not fit
                while True:
                    try:
                        os.write(fd, b"\0" * size)
                    except BlockingIOError:
                        break
        finally:
            os.close(fd)

    def unblock(self):
        self.reading.set()


def blocked_writing_log(pid):
    """The process is asleep in write(2, ...): its log is full."""
    try:
        with open(f"/proc/{pid}/syscall") as f:
            call = f.read().split()
    except OSError:
        return False
    return call[:2] == ["1", "0x2"]


# --- 1. TTIN / TTOU back to back --------------------------------------------------------

@pytest.mark.timeout_s(90)
def test_ttou_and_ttin_back_to_back_each_count(hugd):
    srv = hugd.start(["-w", "3", TARGET], cwd=APPS, workers=3)
    lgs = start_loads(srv, deadline=80)
    steps = []
    try:
        for i in range(5):
            for sig, want in ((signal.SIGTTOU, 1), (signal.SIGTTIN, 3)):
                send_delivered(srv.proc.pid, sig, 2)
                ok = wait_for(lambda: len(srv.children()) == want, 5)
                steps.append((i, sig.name, len(srv.children())))
                assert ok, (steps, srv.stderr[-2000:])
    finally:
        rep = stop_loads(lgs)
    assert all(lg.failures == 0 for lg in lgs), rep
    log = srv.stderr
    assert len(re.findall(r"TTOU: \d+ workers", log)) == 10, log[-3000:]
    assert len(re.findall(r"TTIN: \d+ workers", log)) == 10, log[-3000:]
    stop_clean(srv)


@pytest.mark.timeout_s(60)
def test_ttou_twice_while_the_master_is_busy_counts_twice(hugd, workdir):
    """Two TTOUs delivered while the master's loop is held inside a pass
    (here: writing a log line to a full log) are two."""
    log = FifoLog(os.path.join(workdir, "error.fifo"))
    srv = hugd.start(["-w", "3", "--error-logfile", log.path, TARGET], cwd=APPS, workers=3)
    master = srv.proc.pid
    lgs = start_loads(srv, deadline=50)
    steps = []
    try:
        for i in range(5):
            log.block()
            try:
                send_delivered(master, signal.SIGTTIN, 1)  # logs "TTIN: 4 workers": held
                assert wait_for(lambda: blocked_writing_log(master), 2, interval=0.001), \
                    log.text()[-2000:]
                send_delivered(master, signal.SIGTTOU, 2)
            finally:
                log.unblock()
            ok = wait_for(lambda: len(srv.children()) == 2, 5)
            steps.append((i, len(srv.children())))
            assert ok, (steps, log.text()[-2000:])
            send_delivered(master, signal.SIGTTIN, 1)
            assert wait_for(lambda: len(srv.children()) == 3, 5), (steps, log.text()[-2000:])
    finally:
        rep = stop_loads(lgs)
    assert all(lg.failures == 0 for lg in lgs), rep
    text = log.text()
    assert len(re.findall(r"TTOU: \d+ workers", text)) == 10, text[-3000:]
    stop_clean(srv)


# --- 2. HUP and USR2 during a reload or upgrade -----------------------------------------

RELOADING = "HUP: the new configuration and application load; reloading"


def more_during_the_first(srv, app, lgs, sig):
    """Under load: vB (slow to import) and sig; then, while vB is being
    imported (the reload or upgrade is under way), vC and two more sig."""
    write_slow_app(app, "vB", 1.0)
    srv.signal(sig)
    assert wait_for(lambda: "importing vB" in srv.stderr, 10, interval=0.005), \
        srv.stderr[-3000:]
    write_app(app, "vC")
    send_delivered(srv.proc.pid, sig, 2)


def newest_served_all(lgs, since, rep, log):
    """No request failed, vC answered every one since `since`, and no
    signal was dropped."""
    assert all(lg.failures == 0 for lg in lgs), rep + "\n" + log[-3000:]
    assert all(lg.texts(since=since) == {"vC"} for lg in lgs), rep
    assert "ignored" not in log, log[-3000:]


def served_on(lgs):
    """Now, once every load generator has had answers since."""
    t = time.monotonic()
    assert wait_for(lambda: all(len(lg.ok_records(since=t)) > 20 for lg in lgs), 10)
    return t


@pytest.mark.timeout_s(60)
def test_hup_during_a_reload_runs_after_it(hugd, workdir):
    app = os.path.join(workdir, "reload_app.py")
    write_app(app, "vA")
    srv = hugd.start(["-w", "2", "reload_app:application"], cwd=workdir, workers=2)
    master = srv.proc.pid
    lgs = start_loads(srv, deadline=50)
    try:
        more_during_the_first(srv, app, lgs, signal.SIGHUP)
        assert wait_for(lambda: srv.stderr.count(RELOADING) == 2, 15), srv.stderr[-3000:]
        second = lambda: srv.stderr.split(RELOADING)[-1]  # noqa: E731
        assert wait_for(lambda: "new workers ready" in second(), 15), srv.stderr[-3000:]
        assert wait_for(lambda: len(srv.children()) == 2, 15), srv.children()
        t_end = served_on(lgs)
    finally:
        rep = stop_loads(lgs)
    log = srv.stderr
    newest_served_all(lgs, t_end, rep, log)
    assert log.count(RELOADING) == 2, log[-3000:]
    assert srv.proc.pid == master and srv.proc.poll() is None
    assert direct_get(srv)[0] == "vC"
    stop_clean(srv)


@pytest.mark.timeout_s(90)
def test_usr2_during_an_upgrade_runs_after_it(hugd, workdir):
    app = os.path.join(workdir, "reload_app.py")
    pidfile = os.path.join(workdir, "hugd.pid")
    write_app(app, "vA")
    srv = hugd.start(["-w", "2", "-p", pidfile, "reload_app:application"], cwd=workdir,
                     workers=2)
    m0 = srv.proc.pid
    masters = [m0]
    assert wait_for(lambda: read_pidfile(pidfile) == m0, 5)

    def next_master():
        """The pid file names a master not seen before: it must accept
        signals by then."""
        p = read_pidfile(pidfile)
        if p is None or p in masters:
            return None
        srv.known_pids.add(p)
        assert accepts_signals(p), (p, srv.stderr[-3000:])
        masters.append(p)
        return p

    lgs = start_loads(srv, deadline=80)
    try:
        more_during_the_first(srv, app, lgs, signal.SIGUSR2)
        m1 = wait_for(next_master, 15, interval=0.01)
        assert m1, (read_pidfile(pidfile), srv.stderr[-3000:])
        assert srv.wait(15) == 0, srv.stderr[-3000:]
        m2 = wait_for(next_master, 20, interval=0.01)
        assert m2, (read_pidfile(pidfile), masters, srv.stderr[-3000:])
        assert wait_for(lambda: not pid_alive(m1), 15), srv.stderr[-3000:]
        assert wait_for(lambda: len(children_of(m2)) == 2, 10), children_of(m2)
        srv.known_pids.update(children_of(m2))
        t_end = served_on(lgs)
    finally:
        rep = stop_loads(lgs)
    log = srv.stderr
    newest_served_all(lgs, t_end, rep, log)
    assert all(lg.pids(since=t_end) <= set(children_of(m2)) for lg in lgs), rep
    assert log.count("USR2: starting a new master") == 2, log[-3000:]
    assert read_pidfile(pidfile) == m2
    os.kill(m2, signal.SIGTERM)
    assert wait_for(lambda: not pid_alive(m2), 10), srv.stderr[-3000:]
    assert wait_for(lambda: not pgroup_members(m0), 2), pgroup_members(m0)
    assert not os.path.exists(pidfile)


# --- 3. a request that crashes its worker ------------------------------------------------

@pytest.mark.timeout_s(40)
def test_crashing_request_does_not_empty_the_pool(hugd):
    srv = hugd.start(["-w", "4", TARGET], cwd=APPS, workers=4)
    lg = LoadGen(srv.host, srv.port, threads=THREADS, deadline=30).start()
    samples, crashes = [], []
    done = threading.Event()

    def sample():
        while not done.is_set():
            samples.append(len(children_of(srv.proc.pid)))
            done.wait(0.05)

    def crash():
        for _ in range(30):  # 10 a second for 3 s
            t = time.monotonic()
            try:
                s = socket.create_connection((srv.host, srv.port), timeout=5)
                s.sendall(b"GET /crash HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                s.recv(100)  # until the worker dies and its socket closes
                s.close()
            except OSError:
                pass
            crashes.append(t)
            done.wait(max(0.0, t + 0.1 - time.monotonic()))

    sampler = threading.Thread(target=sample)
    try:
        wait_load(lg, 100)
        sampler.start()
        crash()
        time.sleep(0.5)  # the last crash's replacement is sampled too
    finally:
        done.set()
        sampler.join(5)
        lg.stop()
    rep = lg.report()
    log = srv.stderr
    assert len(re.findall(r"worker \d+ \(pid \d+\) killed by signal 6\b", log)) == len(crashes), \
        log[-3000:]
    below = [n for n in samples if n < 4]
    assert min(samples) >= 3, (f"{len(below)} of {len(samples)} samples below 4 workers, "
                               f"min {min(samples)}", log[-3000:])
    assert "CRITICAL" not in log, log[-3000:]
    # A worker's death costs only the requests it had read and not yet
    # answered (/crash, and those read in the same batch); its idle
    # keep-alive connections go on to other workers.
    assert lg.failures <= len(crashes), rep
    assert wait_for(lambda: len(srv.children()) == 4, 5), srv.children()
    stop_clean(srv)


# --- 4. graceful_timeout is kept ----------------------------------------------------------

@pytest.mark.timeout_s(30)
def test_term_keeps_to_graceful_timeout(hugd):
    srv = hugd.start(["-w", "2", "--graceful-timeout", "2", TARGET], cwd=APPS, workers=2)
    group = srv.proc.pid
    c = srv.conn(timeout=70)
    try:
        c.send(b"GET /sleep?s=60 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert wait_for(lambda: "sleeping 60.0 s" in srv.stderr, 5), srv.stderr[-3000:]
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        rc = srv.wait(10)
        took = time.monotonic() - t0
        assert rc == 0, (rc, srv.stderr[-3000:])
        assert 1.9 <= took <= 2.3, f"TERM with --graceful-timeout 2 took {took:.2f} s"
        assert wait_for(lambda: not pgroup_members(group), 1), pgroup_members(group)
        assert c.at_eof(2)
    finally:
        c.close()
