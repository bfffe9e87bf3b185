"""hugd top in a real terminal (tmux, 80x24): one row per worker, the rows
follow a TTIN, q quits."""
import shutil
import signal
import subprocess
import uuid

import pytest

from hugdtest import APPS, HUGD_BIN, free_port, wait_for

TARGET = "supervised_app:application"


def tmux(*args):
    return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=10)


@pytest.fixture
def terminal():
    if not shutil.which("tmux"):
        pytest.skip("tmux is not installed (tests/setup.sh installs it)")
    name = f"hugd-top-{uuid.uuid4().hex[:8]}"
    yield name
    tmux("kill-session", "-t", name)


def screen(name):
    r = tmux("capture-pane", "-p", "-t", name)
    return r.stdout if r.returncode == 0 else ""


def rows(text, pids):
    return {p for p in pids if any(line.split()[1:2] == [str(p)] for line in text.splitlines()
                                   if line.split())}


@pytest.mark.timeout_s(40)
def test_top_shows_a_row_per_worker_follows_ttin_and_quits_on_q(hugd, terminal):
    port = free_port()
    srv = hugd.start(["-w", "2", "--stats-bind", f"127.0.0.1:{port}", TARGET], cwd=APPS, workers=2)
    r = tmux("new-session", "-d", "-s", terminal, "-x", "80", "-y", "24",
             f"{HUGD_BIN} top --stats 127.0.0.1:{port}")
    assert r.returncode == 0, r.stderr
    kids = srv.children()
    assert wait_for(lambda: rows(screen(terminal), kids) == set(kids), 10), screen(terminal)
    text = screen(terminal)
    assert "workers 2" in text and all(len(line) <= 80 for line in text.splitlines()), text
    srv.signal(signal.SIGTTIN)
    assert wait_for(lambda: len(srv.children()) == 3, 5)
    kids = srv.children()
    assert wait_for(lambda: rows(screen(terminal), kids) == set(kids), 10), screen(terminal)
    # A request in progress shows in its worker's row.
    import threading
    t = threading.Thread(target=lambda: srv.request("GET", "/sleep?s=3", timeout=10))
    t.start()
    assert wait_for(lambda: "GET /sleep?s=3" in screen(terminal), 5), screen(terminal)
    tmux("send-keys", "-t", terminal, "q")
    assert wait_for(lambda: tmux("has-session", "-t", terminal).returncode != 0, 5), \
        screen(terminal)
    t.join(10)


def test_top_without_an_address_says_what_to_give():
    r = subprocess.run([HUGD_BIN, "top"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "give --stats ADDR" in r.stderr, r.stderr


def test_top_once_prints_the_view(hugd):
    port = free_port()
    srv = hugd.start(["-w", "2", "--stats-bind", f"127.0.0.1:{port}", TARGET], cwd=APPS, workers=2)
    r = subprocess.run([HUGD_BIN, "top", "--stats", f"127.0.0.1:{port}", "--once"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    assert rows(r.stdout, srv.children()) == set(srv.children()), r.stdout
