"""Load-driven scaling (src/master_scale.c, src/scaler.c) and the memory
cap, under strict load (tests/loadgen.py: every request that does not end
in a complete 200 counts, nothing retried).  The scaler's decisions on
synthetic traces are tests/unit/test_scaler.c; here the real pool."""
import re
import signal
import time

import pytest

from hugdtest import APPS, free_port, wait_for
from loadgen import LoadGen
from test_stats import stats

TARGET = "supervised_app:application"
SCALING = ["--min-workers", "1", "--max-workers", "4", "--idle-timeout", "2"]


def events(srv):
    return srv.stderr.count("scaling up:") + srv.stderr.count("scaling down:")


def workers(srv):
    return len(srv.children())


@pytest.mark.timeout_s(60)
def test_burst_grows_the_pool_then_light_load_shrinks_it(hugd):
    """From 1 worker (min 1, max 4, idle timeout 2 s): 8 keep-alive and 4
    new-connection clients on a 200 ms route for 5 s bring 4 workers
    within 2 s; then one client every 100 ms brings the pool back to 1
    within 6 s.  No request fails in either phase."""
    addr = f"127.0.0.1:{free_port()}"
    srv = hugd.start(["-w", "1", "--stats-bind", addr] + SCALING + [TARGET], cwd=APPS, workers=1)
    burst = [LoadGen(srv.host, srv.port, path="/sleep?s=0.2", threads=8, deadline=20).start(),
             LoadGen(srv.host, srv.port, path="/sleep?s=0.2", threads=4, keepalive=False,
                     deadline=20).start()]
    try:
        t0 = time.monotonic()
        assert wait_for(lambda: workers(srv) == 4, 2.0, interval=0.01), \
            (srv.children(), srv.stderr[-3000:])
        grown = time.monotonic() - t0
        time.sleep(max(0.0, 5.0 - (time.monotonic() - t0)))  # the burst lasts 5 s
    finally:
        for lg in burst:
            lg.stop()
    light = LoadGen(srv.host, srv.port, path="/pid", threads=1, pause=0.1, deadline=20).start()
    try:
        t1 = time.monotonic()
        assert wait_for(lambda: workers(srv) == 1, 6.0, interval=0.02), \
            (srv.children(), light.report(), srv.stderr[-3000:])
        shrunk = time.monotonic() - t1
        time.sleep(0.5)  # served by the one that is left
    finally:
        light.stop()
    rep = "\n".join(lg.report() for lg in burst + [light])
    print(f"\n{rep}\n4 workers after {grown:.2f} s of the burst; 1 after {shrunk:.2f} s of light load")
    assert all(lg.failures == 0 for lg in burst + [light]), rep + "\n" + srv.stderr[-3000:]
    assert srv.stderr.count("scaling down:") == 3, srv.stderr[-3000:]
    assert light.ok_records(since=time.monotonic() - 0.4), light.report()
    # What /stats says of it: the live worker, the events, why workers went.
    d = stats(addr)
    assert [w["pid"] for w in d["workers"]] == srv.children(), (d["workers"], srv.children())
    assert d["totals"]["scale_events"] == {"up": srv.stderr.count("scaling up:"), "down": 3}
    assert d["totals"]["restarts"]["scale_down"] == 3, d["totals"]
    assert d["master"]["workers"] == {"target": 1, "min": 1, "max": 4}, d["master"]


@pytest.mark.timeout_s(60)
def test_steady_load_at_the_threshold_does_not_flap(hugd):
    """Two clients on a 200 ms route for 20 s, from 1 worker: one step up
    to the 2 it needs, then nothing: at most 2 scale events."""
    srv = hugd.start(["-w", "1"] + SCALING + [TARGET], cwd=APPS, workers=1)
    lg = LoadGen(srv.host, srv.port, path="/sleep?s=0.2", threads=2, deadline=40).start()
    try:
        sizes = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 20:
            sizes.append(workers(srv))
            time.sleep(0.25)
    finally:
        lg.stop()
    log = [line for line in srv.stderr.splitlines() if "scaling" in line]
    assert lg.failures == 0, lg.report()
    assert events(srv) <= 2, "\n".join(log)
    assert sizes[-1] == 2, (sizes, log)


@pytest.mark.timeout_s(60)
def test_worker_past_max_worker_memory_is_replaced(hugd):
    """Every request leaks 10 MiB; under --max-worker-memory 200M each
    worker is replaced (its replacement first), and no request fails."""
    addr = f"127.0.0.1:{free_port()}"
    srv = hugd.start(["-w", "2", "--stats-bind", addr, "--max-worker-memory", "200M", TARGET],
                     cwd=APPS, workers=2)
    first = set(srv.children())
    leak = LoadGen(srv.host, srv.port, path="/leak?mb=10", threads=2, pause=0.02, deadline=40).start()
    other = LoadGen(srv.host, srv.port, path="/pid", threads=8, deadline=40).start()
    try:
        assert wait_for(lambda: srv.stderr.count("passed max_worker_memory") >= 2
                        and not (first & set(srv.children())), 25), srv.stderr[-3000:]
        time.sleep(0.3)
    finally:
        leak.stop()
        other.stop()
    rep = leak.report() + "\n" + other.report()
    assert leak.failures == 0 and other.failures == 0, rep + "\n" + srv.stderr[-3000:]
    assert "above max_worker_memory (200 MiB): replacing it" in srv.stderr
    assert workers(srv) == 2
    assert wait_for(lambda: stats(addr)["totals"]["restarts"]["memory"] >= 2, 5), stats(addr)


@pytest.mark.timeout_s(30)
def test_ttin_and_ttou_move_the_minimum(hugd):
    srv = hugd.start(["-w", "1"] + SCALING + [TARGET], cwd=APPS, workers=1)
    srv.signal(signal.SIGTTIN)
    assert wait_for(lambda: "TTIN: at least 2 workers, at most 4" in srv.stderr, 5), srv.stderr
    assert wait_for(lambda: workers(srv) == 2, 5)
    # The scaler keeps the new floor, idle as the pool is (idle timeout 2 s).
    time.sleep(3)
    assert workers(srv) == 2 and "scaling down" not in srv.stderr, srv.stderr[-2000:]
    srv.signal(signal.SIGTTOU)
    assert wait_for(lambda: "TTOU: at least 1 workers, at most 4" in srv.stderr, 5), srv.stderr
    assert wait_for(lambda: workers(srv) == 1, 5)


def test_contradicting_bounds_are_refused(hugd):
    srv = hugd.spawn(["--min-workers", "5", "--max-workers", "2", TARGET], cwd=APPS)
    assert srv.wait(10) == 78
    assert "min_workers (5) is above max_workers (2)" in srv.stderr


def test_scaling_is_off_by_default(hugd):
    srv = hugd.start(["--check-config", TARGET], cwd=APPS, wait=False)
    assert srv.wait(10) == 0
    out = srv.stdout
    n = int(next(line.split("=")[1] for line in out.splitlines() if line.startswith("workers =")))
    assert f"min_workers = {n}" in out and f"max_workers = {n}" in out, out


@pytest.mark.timeout_s(60)
def test_a_hup_keeps_the_bounds_ttin_set(hugd):
    addr = f"127.0.0.1:{free_port()}"
    srv = hugd.start(["-w", "1", "--stats-bind", addr] + SCALING + [TARGET], cwd=APPS, workers=1)
    srv.signal(signal.SIGTTIN)
    assert wait_for(lambda: workers(srv) == 2, 5)
    srv.signal(signal.SIGHUP)
    assert wait_for(lambda: "retiring 2 of the previous generation" in srv.stderr, 20), \
        srv.stderr[-3000:]
    assert wait_for(lambda: stats(addr)["master"]["workers"] == {"target": 2, "min": 2, "max": 4},
                    5), stats(addr)["master"]
    # The two it retires exit once their connections are done: the pool
    # then holds the floor TTIN set, 2, not the 1 of the command line.
    assert wait_for(lambda: workers(srv) == 2 and len(stats(addr)["workers"]) == 2, 10), \
        (srv.children(), stats(addr)["workers"])


def test_a_fork_of_a_hug_app_holds_the_master_briefly(hugd, workdir):
    """What a step up costs the accept loop: the fork, timed by the master
    (the Hug example, imported)."""
    import shutil
    from hugdtest import REPO
    shutil.copy(REPO / "conf" / "hello.py", workdir)
    srv = hugd.start(["-w", "4", "hello.py"], cwd=workdir, workers=4)
    assert wait_for(lambda: srv.stderr.count("the fork held the master") >= 4, 5)
    took = [float(x) for x in re.findall(r"the fork held the master (\d+\.\d+) ms", srv.stderr)]
    print(f"\nforks of the Hug example held the master {', '.join(f'{t:.2f}' for t in took)} ms")
    assert max(took) < 50, took
