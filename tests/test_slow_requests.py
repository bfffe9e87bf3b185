"""--slow-request-log: a request running past it has the application's
stack written to the error log once, and goes on to its 200; --timeout,
not this, is what kills."""
import re
import threading
import time

from hugdtest import APPS, wait_for

TARGET = "supervised_app:application"


def test_slow_request_logs_the_apps_frame_and_completes(hugd):
    srv = hugd.start(["-w", "1", "--slow-request-log", "0.5", TARGET], cwd=APPS, workers=1)
    t0 = time.monotonic()
    r = srv.request("GET", "/sleep?s=2", timeout=10)
    took = time.monotonic() - t0
    assert r.status == 200 and took >= 2.0, (r, took)
    log = srv.stderr
    m = re.search(r'slow request: "GET /sleep\?s=2" running for (\d+\.\d) s \(slow_request_log 0\.5 s\)'
                  r"; it is at:\n(.*?)(?=\n\[|\Z)", log, re.S)
    assert m, log[-3000:]
    assert 0.5 <= float(m.group(1)) < 1.0, m.group(0)
    stack = m.group(2)
    # The application's own frame: its file, the line of time.sleep, the function.
    assert re.search(r'File ".*supervised_app\.py", line \d+, in sleep\n\s+time\.sleep\(seconds\)',
                     stack), stack
    assert log.count("slow request:") == 1, log[-3000:]  # once per request, not per tick
    assert "timed out" not in log


def test_a_request_running_python_is_caught_between_bytecodes(hugd):
    """No C call to wait in: the interpreter hands the GIL over between
    bytecodes, and the stack shows the loop."""
    srv = hugd.start(["-w", "1", "--slow-request-log", "0.3", TARGET], cwd=APPS, workers=1)
    assert srv.request("GET", "/spin?s=1", timeout=10).status == 200
    assert wait_for(lambda: "slow request" in srv.stderr, 2), srv.stderr[-3000:]
    assert re.search(r'File ".*supervised_app\.py", line \d+, in spin\n', srv.stderr), \
        srv.stderr[-3000:]


def test_fast_requests_log_nothing_and_the_log_is_off_by_default(hugd):
    srv = hugd.start(["-w", "1", "--slow-request-log", "0.5", TARGET], cwd=APPS, workers=1)
    for _ in range(20):
        assert srv.request("GET", "/pid").status == 200
    assert srv.request("GET", "/sleep?s=0.2").status == 200
    assert "slow request" not in srv.stderr
    srv2 = hugd.start(["-w", "1", TARGET], cwd=APPS, workers=1)
    assert srv2.request("GET", "/sleep?s=1").status == 200
    assert "slow request" not in srv2.stderr


def test_every_slow_request_is_logged_once(hugd):
    """Two workers, three slow requests one after another on each: six
    entries, each naming its request."""
    srv = hugd.start(["-w", "2", "--slow-request-log", "0.2", TARGET], cwd=APPS, workers=2)
    results = []

    def client():
        for _ in range(3):
            results.append(srv.request("GET", "/sleep?s=0.5", timeout=10).status)

    threads = [threading.Thread(target=client) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert results == [200] * 6
    assert wait_for(lambda: srv.stderr.count('slow request: "GET /sleep?s=0.5"') == 6, 2), \
        srv.stderr[-3000:]
