"""Nothing is lost through faults and reloads: a request that crashes its
worker does not empty the pool, and a graceful stop keeps to
graceful_timeout.

Load is strict (tests/loadgen.py): 16 client threads.
"""
import re
import signal
import socket
import threading
import time

import pytest

from hugdtest import APPS, children_of, pgroup_members, wait_for
from loadgen import LoadGen
from test_supervision import TARGET, stop_clean, wait_load

THREADS = 16
MASTER_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGTTIN,
                  signal.SIGTTOU, signal.SIGUSR1, signal.SIGUSR2)


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
    # Only the connections held by a worker when it crashed may fail
    # (a request in flight there, or an idle keep-alive connection).
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
