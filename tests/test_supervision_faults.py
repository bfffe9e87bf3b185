"""Nothing is lost through faults and reloads: a graceful stop keeps to
graceful_timeout.
"""
import signal
import time

import pytest

from hugdtest import APPS, pgroup_members, wait_for
from test_supervision import TARGET

THREADS = 16
MASTER_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGTTIN,
                  signal.SIGTTOU, signal.SIGUSR1, signal.SIGUSR2)


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
