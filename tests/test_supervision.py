"""Process supervision under load: dead and hung workers, scaling by signals,
reloads (HUP) and upgrades (USR2) that lose no request, worker recycling,
the pid file, privileges, systemd socket activation and notification.

Load comes from tests/loadgen.py, which counts every failed request (no
silent retries; a keep-alive connection the server drops between two
requests is a failure too).  The app is tests/apps/supervised_app.py: it
answers '<VERSION> <pid>', so each answer says which code and which worker.

Already covered elsewhere, not repeated here: TERM with a request in flight
(test_signals.test_term_graceful_with_request_in_flight), an app raising at
import (test_cli_config.test_app_raising_at_import), SIGKILL of the master
(test_signals.test_kill_master_takes_workers_down), USR1 (test_signals).
"""
import collections
import os
import pwd
import grp
import re
import shutil
import signal
import socket
import stat
import threading
import time
from pathlib import Path

import pytest

from hugdtest import APPS, REPO, children_of, free_port, pgroup_members, pid_alive, wait_for
from loadgen import LoadGen

APP = APPS / "supervised_app.py"
TARGET = "supervised_app:application"
THREADS = 8


# --- helpers --------------------------------------------------------------------------

def write_app(path, version):
    """A copy of supervised_app.py answering '<version> <pid>'."""
    src = APP.read_text()
    new = re.sub(r'^VERSION = .*$', f'VERSION = "{version}"', src, count=1, flags=re.M)
    assert new != src or f'VERSION = "{version}"' in src
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(new)
    os.replace(tmp, path)


BROKEN_MARKER = "hugd-test-broken-reload-marker"


def write_broken_app(path):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write("import os\n\n\ndef _fail():\n"
                f"    raise RuntimeError('{BROKEN_MARKER}')\n\n\n_fail()\n")
    os.replace(tmp, path)


def direct_get(srv, path="/pid", timeout=5):
    """(text, pid) of one request on a fresh connection."""
    r = srv.request("GET", path, timeout=timeout)
    assert r.status == 200, (r, srv.stderr[-2000:])
    text, pid = r.body.decode().split()
    return text, int(pid)


def wait_load(lg, n=100, timeout=10):
    """Wait until the load generator has n successful requests."""
    assert wait_for(lambda: len(lg.ok_records()) >= n or lg.failures, timeout), lg.report()


def stop_clean(srv, pgid=None, timeout=10):
    """TERM the master; it must exit 0 and leave no process in its group."""
    srv.signal(signal.SIGTERM)
    rc = srv.wait(timeout)
    assert rc == 0, (rc, srv.stderr[-3000:])
    pgid = pgid or srv.proc.pid
    assert wait_for(lambda: not pgroup_members(pgid), 2), \
        f"left running after TERM: {pgroup_members(pgid)}"


def replaced_set(srv, original, n, replaced):
    """The set of workers if there are n and `replaced` of `original` are
    gone (one snapshot of the children), else None."""
    kids = set(srv.children())
    if len(kids) == n and len(set(original) - kids) == replaced:
        return kids
    return None


def gone(pids):
    return not any(pid_alive(p) for p in pids)


# --- 1. a worker killed with SIGKILL --------------------------------------------------

@pytest.mark.timeout_s(30)
def test_sigkill_worker_replaced_under_load(hugd):
    srv = hugd.start(["-w", "2", TARGET], cwd=APPS, workers=2)
    original = srv.children()
    lg = LoadGen(srv.host, srv.port, threads=THREADS, deadline=20).start()
    try:
        wait_load(lg, 200)
        assert wait_for(lambda: set(original) <= lg.pids(), 5), lg.report()
        victim = original[0]
        t_kill = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        replaced = wait_for(lambda: replaced_set(srv, original, 2, 1), 1.0, interval=0.01)
        took = time.monotonic() - t_kill
        assert replaced, (f"not replaced within 1 s: {srv.children()} (killed {victim})\n"
                          + srv.stderr[-2000:])
        assert victim not in replaced
        newcomer = (replaced - set(original)).pop()
        time.sleep(1.5)
    finally:
        lg.stop()
    rep = lg.report()
    fails = lg.failed()
    # What the server guarantees: only requests the killed worker had read
    # and not answered fail (each client has one in flight, so at most one
    # per client), none after the kill; connections it held between
    # requests go on with another worker.
    assert len(fails) <= THREADS, rep
    per_thread = collections.Counter(r.thread for r in fails)
    assert all(n == 1 for n in per_thread.values()), (per_thread, rep)
    late = [r for r in fails if r.t > t_kill + 0.5]
    assert not late, (late, rep)
    # requests go on succeeding, on every client thread, and the newcomer serves
    after = lg.ok_records(since=t_kill + took + 0.2)
    assert {r.thread for r in after} == set(range(THREADS)), rep
    assert victim not in {r.pid for r in after}, rep
    assert newcomer in {r.pid for r in after} or newcomer in {direct_get(srv)[1] for _ in range(8)}
    log = srv.stderr
    assert re.search(rf"worker \d+ \(pid {victim}\) killed by signal 9\b", log), log[-3000:]
    stop_clean(srv)


# --- 2. TTIN / TTOU -------------------------------------------------------------------

@pytest.mark.timeout_s(40)
def test_ttin_ttou_under_load_lose_nothing(hugd):
    srv = hugd.start(["-w", "2", TARGET], cwd=APPS, workers=2)
    lg = LoadGen(srv.host, srv.port, threads=THREADS, deadline=30).start()
    steps = []
    try:
        wait_load(lg, 100)
        for sig, want in ((signal.SIGTTIN, 3), (signal.SIGTTOU, 2), (signal.SIGTTOU, 1),
                          (signal.SIGTTIN, 2)):
            before = set(srv.children())
            srv.signal(sig)
            ok = wait_for(lambda: len(srv.children()) == want, 5)
            steps.append((sig.name, want, srv.children()))
            assert ok, (steps, srv.stderr[-2000:], lg.report())
            # it stays there, and the load goes on being served
            time.sleep(0.5)
            assert len(srv.children()) == want, (steps, srv.children())
            if want > len(before):
                assert before < set(srv.children()), (before, srv.children())
            else:
                assert set(srv.children()) < before, (before, srv.children())
        t = time.monotonic()
        time.sleep(1.0)
        # the worker TTIN just added takes new connections (it has none; the
        # keep-alive clients' connections stay where they are)
        newest = (set(srv.children()) - set(steps[-2][2])).pop()
        answered = {direct_get(srv)[1] for _ in range(10)}
        assert newest in answered, (newest, answered, srv.children())
    finally:
        lg.stop()
    rep = lg.report()
    assert lg.failures == 0, rep
    assert lg.pids(since=t) <= set(srv.children()), (rep, srv.children())
    stop_clean(srv)


# --- 3. a request running past the timeout --------------------------------------------

@pytest.mark.timeout_s(30)
def test_timeout_kills_and_replaces_with_stack_dump(hugd):
    srv = hugd.start(["-w", "2", "-t", "2", TARGET], cwd=APPS, workers=2)
    original = set(srv.children())
    res = {}

    def hang():
        try:
            r = srv.request("GET", "/sleep?s=10", timeout=15)
            res["status"] = r.status
        except (OSError, EOFError) as e:
            res["error"] = repr(e)

    t0 = time.monotonic()
    th = threading.Thread(target=hang)
    th.start()
    ok = wait_for(lambda: replaced_set(srv, original, 2, 1), 4.0, interval=0.02)
    took = time.monotonic() - t0
    assert ok, (f"hung worker not replaced within 4 s: {original} -> {srv.children()}\n"
                + srv.stderr[-3000:])
    victim = (original - ok).pop()
    assert not pid_alive(victim)
    th.join(15)
    assert "error" in res or res.get("status", 0) >= 500, res
    assert took >= 1.9, f"killed after {took:.1f}s, before the 2 s timeout"
    # the log names the worker, its pid and the request, then Python's stack
    log = srv.stderr
    assert wait_for(lambda: "in sleep" in srv.stderr, 2), srv.stderr[-3000:]
    log = srv.stderr
    m = re.search(rf'worker \d+ \(pid {victim}\) timed out: "GET /sleep[^"]*"', log)
    assert m, log[-3000:]
    dump = log[m.end():]
    assert "Fatal Python error: Aborted" in dump, log[-3000:]
    assert "most recent call first" in dump, log[-3000:]
    assert re.search(r'File "[^"]*supervised_app\.py", line \d+ in sleep', dump), log[-3000:]
    assert re.search(r'File "[^"]*supervised_app\.py", line \d+ in application', dump), \
        log[-3000:]
    # the rest serves
    assert direct_get(srv)[1] in srv.children()
    stop_clean(srv)


# --- 4. HUP with new code, twice, under load -------------------------------------------

@pytest.mark.timeout_s(40)
def test_hup_twice_with_new_code_loses_nothing(hugd, workdir):
    app = os.path.join(workdir, "reload_app.py")
    write_app(app, "vA")
    srv = hugd.start(["-w", "2", "reload_app:application"], cwd=workdir, workers=2)
    master = srv.proc.pid
    gen_a = set(srv.children())
    lg = LoadGen(srv.host, srv.port, threads=THREADS, deadline=30).start()
    try:
        t_start = time.monotonic()
        wait_load(lg, 100)
        write_app(app, "vB")
        t_b = time.monotonic()
        srv.signal(signal.SIGHUP)
        assert wait_for(lambda: "vB" in lg.texts(since=t_b), 10), (lg.report(), srv.stderr[-3000:])
        time.sleep(0.3)
        write_app(app, "vC")
        t_c = time.monotonic()
        srv.signal(signal.SIGHUP)
        assert wait_for(lambda: "vC" in lg.texts(since=t_c), 10), (lg.report(), srv.stderr[-3000:])
        # once the new generation answers, the old ones are on their way out
        assert wait_for(lambda: lg.texts(since=time.monotonic() - 0.3) == {"vC"}, 10), \
            (lg.texts(since=time.monotonic() - 0.3), lg.report())
        rest = 4.0 - (time.monotonic() - t_start)
        if rest > 0:
            time.sleep(rest)
    finally:
        lg.stop()
    rep = lg.report()
    assert lg.failures == 0, rep + "\n" + srv.stderr[-3000:]
    assert {"vA", "vB", "vC"} <= lg.texts(), rep
    assert srv.proc.poll() is None and srv.proc.pid == master
    assert wait_for(lambda: len(srv.children()) == 2 and not (set(srv.children()) & gen_a), 10), \
        (gen_a, srv.children())
    for _ in range(6):
        text, pid = direct_get(srv)
        assert text == "vC" and pid in srv.children(), (text, pid, srv.children())
    stop_clean(srv)


@pytest.mark.timeout_s(60)
def test_four_hups_three_seconds_apart_last_code_answers(hugd, workdir):
    """A deploy that reloads four times, 3 s apart, changing the code
    between the second and the third, under 16 keep-alive and 8
    new-connection clients: every HUP is applied (four generations
    retired), nothing fails, and the last code is what answers."""
    app = os.path.join(workdir, "reload_app.py")
    write_app(app, "vA")
    srv = hugd.start(["-w", "4", "reload_app:application"], cwd=workdir, workers=4)
    master = srv.proc.pid
    ka = LoadGen(srv.host, srv.port, threads=16, deadline=45).start()
    nc = LoadGen(srv.host, srv.port, threads=8, keepalive=False, deadline=45).start()
    try:
        wait_load(ka, 200)
        wait_load(nc, 50)
        t_first = time.monotonic()
        for n in range(1, 5):
            if n == 3:
                write_app(app, "vB")
                t_b = time.monotonic()
            srv.signal(signal.SIGHUP)
            if n < 4:
                time.sleep(3.0)  # the deploy's own pace, not a wait for hugd
        assert wait_for(lambda: srv.stderr.count("retiring 4 of the previous generation") >= 4,
                        20), srv.stderr[-3000:]
        t_done = time.monotonic()
        assert wait_for(lambda: nc.ok_records(since=t_done), 5), nc.report()
        time.sleep(0.5)  # load on the last generation, too
    finally:
        ka.stop()
        nc.stop()
    rep = ka.report() + "\n" + nc.report()
    during = sorted(r.latency for r in nc.ok_records(since=t_first, until=t_done))
    print(f"\n{rep}\nnew connections during the reloads ({len(during)}): "
          f"p99 {during[int(len(during) * 0.99)] * 1000:.1f} ms, max {during[-1] * 1000:.1f} ms")
    assert ka.failures == 0 and nc.failures == 0, rep + "\n" + srv.stderr[-3000:]
    assert "vB" in ka.texts(since=t_b) and "vB" in nc.texts(since=t_b), rep
    assert ka.texts(since=t_done) == {"vB"} and nc.texts(since=t_done) == {"vB"}, rep
    assert srv.proc.pid == master and len(srv.children()) == 4
    for _ in range(8):
        assert direct_get(srv)[0] == "vB"
    stop_clean(srv)


@pytest.mark.timeout_s(30)
def test_hup_while_reloading_does_not_kill_the_master(hugd, workdir):
    """A second HUP that arrives while the master is executing itself anew
    (after the probe passed) must neither kill it nor fail a request."""
    app = os.path.join(workdir, "reload_app.py")
    write_app(app, "v1")
    srv = hugd.start(["-w", "2", "reload_app:application"], cwd=workdir, workers=2)
    master = srv.proc.pid
    lg = LoadGen(srv.host, srv.port, threads=THREADS, deadline=20).start()
    try:
        wait_load(lg, 100)
        write_app(app, "v2")
        srv.signal(signal.SIGHUP)
        # the master logs this line just before it executes itself
        assert wait_for(lambda: "HUP: the new configuration and application load" in srv.stderr,
                        10, interval=0.002), srv.stderr[-3000:]
        write_app(app, "v3")
        srv.signal(signal.SIGHUP)
        time.sleep(0.5)
        assert srv.proc.poll() is None, \
            (f"master died (status {srv.proc.returncode}) on a HUP during a reload\n"
             + srv.stderr[-3000:])
        # the second HUP waits for the first, then runs: the last code answers
        assert wait_for(lambda: lg.texts(since=time.monotonic() - 0.3) == {"v3"}, 15), \
            (lg.report(), srv.stderr[-3000:])
    finally:
        lg.stop()
    rep = lg.report()
    assert lg.failures == 0, rep
    assert srv.proc.pid == master
    stop_clean(srv)


# --- 5. HUP with broken code ------------------------------------------------------------

@pytest.mark.timeout_s(40)
def test_hup_with_broken_code_keeps_serving(hugd, workdir):
    app = os.path.join(workdir, "reload_app.py")
    write_app(app, "good")
    srv = hugd.start(["-w", "2", "reload_app:application"], cwd=workdir, workers=2)
    master = srv.proc.pid
    gen = srv.children()
    lg = LoadGen(srv.host, srv.port, threads=THREADS, deadline=30).start()
    try:
        wait_load(lg, 100)
        write_broken_app(app)
        t_hup = time.monotonic()
        srv.signal(signal.SIGHUP)
        assert wait_for(lambda: "does not load" in srv.stderr or "failed to load" in srv.stderr,
                        10), srv.stderr[-3000:]
        time.sleep(1.0)
        t_end = time.monotonic()
    finally:
        lg.stop()
    rep = lg.report()
    assert lg.failures == 0, rep + "\n" + srv.stderr[-3000:]
    # the same generation serves
    assert srv.proc.pid == master and srv.proc.poll() is None
    assert srv.children() == gen, (gen, srv.children(), srv.stderr[-3000:])
    assert lg.pids(since=t_hup) == set(gen), rep
    assert lg.texts(since=t_hup) == {"good"}, rep
    assert len(lg.ok_records(since=t_end - 0.5)) > 10, rep
    # and the log says why
    log = srv.stderr
    assert BROKEN_MARKER in log, log[-3000:]
    assert "Traceback" in log, log[-3000:]
    # fixed code and another HUP: it reloads
    write_app(app, "fixed")
    srv.signal(signal.SIGHUP)
    assert wait_for(lambda: direct_get(srv)[0] == "fixed", 10), srv.stderr[-3000:]
    assert srv.proc.pid == master
    stop_clean(srv)


# --- 6. USR2: a new master, inheriting the sockets ----------------------------------------

def read_pidfile(path):
    try:
        with open(path) as f:
            s = f.read().strip()
        return int(s) if s else None
    except (OSError, ValueError):
        return None


@pytest.mark.timeout_s(45)
def test_usr2_upgrade_under_load(hugd, workdir):
    pidfile = os.path.join(workdir, "hugd.pid")
    srv = hugd.start(["-w", "2", "-p", pidfile, TARGET], cwd=APPS, workers=2)
    old = srv.proc.pid
    old_workers = set(srv.children())
    assert wait_for(lambda: read_pidfile(pidfile) == old, 5), read_pidfile(pidfile)
    lg = LoadGen(srv.host, srv.port, threads=THREADS, deadline=35).start()
    nc = LoadGen(srv.host, srv.port, threads=THREADS, keepalive=False, deadline=35).start()
    new = None
    try:
        wait_load(lg, 100)
        wait_load(nc, 50)
        t_usr2 = time.monotonic()
        srv.signal(signal.SIGUSR2)
        assert wait_for(lambda: read_pidfile(pidfile) not in (None, old), 10), \
            (read_pidfile(pidfile), srv.stderr[-3000:])
        new = read_pidfile(pidfile)
        srv.known_pids.add(new)  # so teardown kills it whatever happens
        assert pid_alive(new)
        rc = srv.wait(10)  # the old master is gone
        assert rc == 0, (rc, srv.stderr[-3000:])
        assert wait_for(lambda: gone(old_workers), 5), [p for p in old_workers if pid_alive(p)]
        new_workers = children_of(new)
        srv.known_pids.update(new_workers)
        assert len(new_workers) == 2, new_workers
        t_new = time.monotonic()
        time.sleep(1.0)
    finally:
        lg.stop()
        nc.stop()
    rep = lg.report() + "\n" + nc.report()
    # How long a new connection waits while the upgrade runs.
    during = sorted(r.latency for r in nc.snapshot() if r.ok and t_usr2 <= r.t <= t_new)
    if during:
        print(f"\n{rep}\nnew connections during the upgrade ({len(during)}): "
              f"p99 {during[int(len(during) * 0.99)] * 1000:.1f} ms, max {during[-1] * 1000:.1f} ms")
    assert lg.failures == 0 and nc.failures == 0, rep + "\n" + srv.stderr[-3000:]
    # the new master's workers serve; the pid file (still) names it
    assert lg.pids(since=t_new) and lg.pids(since=t_new) <= set(children_of(new)), \
        (rep, children_of(new))
    assert read_pidfile(pidfile) == new
    assert direct_get(srv)[1] in children_of(new)
    # TERM the new master: nothing left, pid file removed
    os.kill(new, signal.SIGTERM)
    assert wait_for(lambda: not pid_alive(new), 10), srv.stderr[-3000:]
    assert wait_for(lambda: not pgroup_members(old), 2), pgroup_members(old)
    assert not os.path.exists(pidfile)


# --- 7. max_requests recycles workers ----------------------------------------------------

@pytest.mark.timeout_s(30)
@pytest.mark.parametrize("keepalive", [True, False], ids=["keepalive", "close"])
def test_max_requests_recycles_without_loss(hugd, keepalive):
    srv = hugd.start(["-w", "2", "--max-requests", "50", "--max-requests-jitter", "10", TARGET],
                     cwd=APPS, workers=2)
    original = set(srv.children())
    lg = LoadGen(srv.host, srv.port, threads=THREADS, keepalive=keepalive, deadline=20).start()
    try:
        time.sleep(3.0)
        t_late = time.monotonic() - 1.0
    finally:
        lg.stop()
    rep = lg.report()
    assert lg.failures == 0, rep + "\n" + srv.stderr[-3000:]
    # each worker asks to go after 50..60 requests: many generations served
    assert lg.total >= 600, rep
    assert len(lg.pids()) >= 6, rep + "\n" + srv.stderr[-6000:]
    assert not (original & lg.pids(since=t_late)), rep
    assert wait_for(lambda: gone(original), 5), [p for p in original if pid_alive(p)]
    assert wait_for(lambda: len(srv.children()) == 2, 5), srv.children()
    stop_clean(srv)


# --- 11. the pid file --------------------------------------------------------------------

@pytest.mark.timeout_s(20)
def test_pid_file_written_and_removed(hugd, workdir):
    pidfile = os.path.join(workdir, "run", "hugd.pid")
    os.mkdir(os.path.dirname(pidfile))
    srv = hugd.start(["-w", "1", "--pid", pidfile, TARGET], cwd=APPS, workers=1)
    assert wait_for(lambda: read_pidfile(pidfile) == srv.proc.pid, 5), read_pidfile(pidfile)
    with open(pidfile) as f:
        assert f.read() == f"{srv.proc.pid}\n"
    assert direct_get(srv)[1] in srv.children()
    stop_clean(srv)
    assert not os.path.exists(pidfile)
    assert os.listdir(os.path.dirname(pidfile)) == []  # no temporary file left either


# --- 12. root -------------------------------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs to run as root")


@needs_root
@pytest.mark.timeout_s(20)
def test_refuses_root_without_allow_root(hugd):
    port = free_port()
    s = hugd.spawn(["-b", f"127.0.0.1:{port}", "-w", "1", TARGET], cwd=APPS, allow_root=False)
    seen = set()
    t0 = time.monotonic()
    while s.proc.poll() is None and time.monotonic() - t0 < 8:
        seen.update(children_of(s.proc.pid))
        time.sleep(0.02)
    rc = s.wait(2)
    assert rc != 0, s.stderr
    assert "root" in s.stderr, s.stderr
    assert not seen, f"workers were started: {seen}"


def _world_readable_tree(path):
    """True if 'other' users can reach and read path (a folder tree)."""
    p = Path(path).resolve()
    for d in [p] + list(p.parents):
        if not os.stat(d).st_mode & stat.S_IXOTH:
            return False
    for root, dirs, files in os.walk(p):
        for d in dirs:
            if not os.stat(os.path.join(root, d)).st_mode & (stat.S_IXOTH | stat.S_IROTH) == \
                    (stat.S_IXOTH | stat.S_IROTH):
                return False
        for f in files:
            if not os.stat(os.path.join(root, f)).st_mode & stat.S_IROTH:
                return False
    return True


def _ids(pid):
    with open(f"/proc/{pid}/status") as f:
        st = f.read()
    uid = [int(x) for x in re.search(r"^Uid:\s+(.*)$", st, re.M).group(1).split()]
    gid = [int(x) for x in re.search(r"^Gid:\s+(.*)$", st, re.M).group(1).split()]
    return uid, gid


@needs_root
@pytest.mark.timeout_s(20)
def test_user_and_group_drop_privileges(hugd, workdir):
    try:
        nobody = pwd.getpwnam("nobody").pw_uid
        nogroup = grp.getgrnam("nogroup").gr_gid
    except KeyError:
        pytest.skip("no user nobody / group nogroup")
    if not _world_readable_tree(REPO / "python"):
        pytest.skip(f"{REPO / 'python'} is not readable by other users")
    appdir = os.path.join(workdir, "app")
    os.mkdir(appdir)
    os.chmod(workdir, 0o755)
    os.chmod(appdir, 0o755)
    shutil.copy(APP, appdir)
    os.chmod(os.path.join(appdir, APP.name), 0o644)
    if not _world_readable_tree(appdir):
        pytest.skip(f"{appdir} is not reachable by other users")
    srv = hugd.start(["-w", "2", "--user", "nobody", "--group", "nogroup", TARGET],
                     cwd=appdir, workers=2)
    kids = srv.children()
    for pid in kids + [srv.proc.pid]:
        uid, gid = _ids(pid)
        assert uid == [nobody] * 4, (pid, uid)
        assert gid == [nogroup] * 4, (pid, gid)
    for _ in range(4):
        assert direct_get(srv)[1] in kids
    stop_clean(srv)


# --- 13. systemd socket activation -----------------------------------------------------

def _fd3_spawn_args(sock):
    """pass_fds / preexec_fn / cleanup putting sock on fd 3 in the child."""
    fd = sock.fileno()
    if fd == 3:
        return (3,), None, lambda: None
    try:
        os.fstat(3)
        fd3_open = True
    except OSError:
        fd3_open = False
    if not fd3_open:
        os.dup2(fd, 3)  # fd 3 is free here: use it for the child's copy
        return (3,), None, lambda: os.close(3)

    def pre():
        os.dup2(fd, 3)
        os.close(fd)
    return (3, fd), pre, lambda: None


@pytest.mark.timeout_s(20)
def test_systemd_socket_activation(hugd):
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(128)
    port = lsock.getsockname()[1]
    other = free_port()
    srv = hugd.new()
    srv.port = port
    pass_fds, pre, cleanup = _fd3_spawn_args(lsock)
    try:
        srv.spawn(["-b", f"127.0.0.1:{other}", "-w", "2", TARGET], cwd=APPS,
                  prefix=["/bin/sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$@"', "sh"],
                  pass_fds=pass_fds, preexec_fn=pre)
    finally:
        cleanup()
        lsock.close()  # hugd holds the only copy now
    srv.wait_workers(2)
    text, pid = direct_get(srv, timeout=10)
    assert pid in srv.children()
    assert "systemd" in srv.stderr, srv.stderr
    # nothing else is listening: not the -b address the socket replaces
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.settimeout(2)
    try:
        with pytest.raises(ConnectionRefusedError):
            probe.connect(("127.0.0.1", other))
    finally:
        probe.close()
    # nor any other TCP/Unix listening socket of the master's
    inodes = set()
    for fd in os.listdir(f"/proc/{srv.proc.pid}/fd"):
        try:
            link = os.readlink(f"/proc/{srv.proc.pid}/fd/{fd}")
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]", link)
        if m:
            inodes.add(m.group(1))
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:  # 0A = LISTEN
                listening.append((table, f[1]))
    assert len(listening) == 1 and listening[0][1].endswith(f":{port:04X}"), listening
    stop_clean(srv)


# --- 14. sd_notify --------------------------------------------------------------------------

class Notifications:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.msgs = []

    def expect(self, field, timeout=10):
        """Read datagrams until one has the line `field`; return that message."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {field!r} within {timeout}s; got {self.msgs}")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096).decode()
            except socket.timeout:
                continue
            self.msgs.append(data)
            if field in data.split("\n"):
                return data

    def close(self):
        self.sock.close()


@pytest.mark.timeout_s(30)
def test_sd_notify(hugd, workdir):
    path = os.path.join(workdir, "notify.sock")
    n = Notifications(path)
    try:
        srv = hugd.start(["-w", "2", TARGET], cwd=APPS, env={"NOTIFY_SOCKET": path}, wait=False)
        ready = n.expect("READY=1")
        assert f"MAINPID={srv.proc.pid}" in ready.split("\n"), ready
        # READY means serving: workers are up and a request answers
        assert len(srv.children()) == 2, srv.children()
        assert direct_get(srv)[1] in srv.children()
        gen = set(srv.children())
        srv.signal(signal.SIGHUP)
        n.expect("RELOADING=1")
        ready2 = n.expect("READY=1")
        assert "STOPPING=1" not in "".join(n.msgs)
        # READY after a reload: the new generation is up
        assert set(srv.children()) - gen, (gen, srv.children(), ready2)
        assert srv.proc.poll() is None
        assert wait_for(lambda: direct_get(srv)[1] not in gen, 5)
        srv.signal(signal.SIGTERM)
        n.expect("STOPPING=1")
        assert srv.wait(10) == 0, srv.stderr[-3000:]
        assert wait_for(lambda: not pgroup_members(srv.proc.pid), 2)
    finally:
        n.close()
