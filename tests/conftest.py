"""pytest fixtures for the hugd integration tests.

Run with:  /usr/bin/python3 -m pytest tests
The binary is $HUGD_BIN, else <repo>/build/hugd.

Every test runs under a wall-clock alarm (TEST_TIMEOUT seconds; no
pytest-timeout needed) and every server a test starts is SIGKILLed, with its
whole process group, at teardown, so no test leaves a process behind.
"""
import os
import signal
import tempfile
import shutil

import pytest

import hugdtest
from hugdtest import Server, HUGD_BIN, APPS

collect_ignore = ["unit", "bench"]

TEST_TIMEOUT = int(os.environ.get("HUGD_TEST_TIMEOUT", "60"))


def pytest_configure(config):
    config.addinivalue_line("markers", "timeout_s(n): per-test wall-clock limit in seconds")


class _Timeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Timeout(f"test exceeded its time limit")


@pytest.fixture(autouse=True)
def _alarm(request):
    """Wall-clock limit per test (setup + call + teardown of inner fixtures)."""
    m = request.node.get_closest_marker("timeout_s")
    limit = m.args[0] if m else TEST_TIMEOUT
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="session", autouse=True)
def _kill_everything_at_exit():
    yield
    for s in hugdtest._ALL_SERVERS:
        try:
            s.kill()
        except Exception:
            pass


def _require_binary():
    if not os.access(HUGD_BIN, os.X_OK):
        pytest.fail(f"hugd binary not found or not executable: {HUGD_BIN} "
                    f"(build with `meson setup build && meson compile -C build`, or set HUGD_BIN)")


class ServerFactory:
    def __init__(self, workdir):
        self.workdir = workdir
        self.servers = []

    def new(self):
        _require_binary()
        s = Server(self.workdir)
        self.servers.append(s)
        return s

    def start(self, args, **kw):
        """Start a server with a fresh port (see Server.start)."""
        return self.new().start(args, **kw)

    def spawn(self, args, **kw):
        return self.new().spawn(args, **kw)

    def run(self, args, timeout=10, **kw):
        """Run hugd to completion (e.g. --version); returns the Server, exited."""
        s = self.new().spawn(args, **kw)
        s.wait(timeout)
        return s

    def cleanup(self):
        for s in self.servers:
            s.kill()


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="hugd-t-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def hugd(workdir):
    """Factory: hugd.start([... args ..., TARGET], cwd=..., env=...) -> Server."""
    f = ServerFactory(workdir)
    try:
        yield f
    finally:
        f.cleanup()


@pytest.fixture(scope="module")
def module_workdir():
    d = tempfile.mkdtemp(prefix="hugd-m-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def module_hugd(module_workdir):
    """Like `hugd`, but servers live for the whole test module."""
    f = ServerFactory(module_workdir)
    try:
        yield f
    finally:
        f.cleanup()


@pytest.fixture
def apps():
    return APPS
