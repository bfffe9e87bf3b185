"""A reload or upgrade that cannot complete must leave the running server
serving, where it served."""
import os
import shutil
import signal
import socket
import tempfile
import time

import pytest

from hugdtest import APPS, free_port, wait_for
from loadgen import LoadGen

APP_SRC = (APPS / "supervised_app.py").read_text()


@pytest.fixture
def short_tmp():
    d = tempfile.mkdtemp(prefix="hugd", dir="/tmp")  # AF_UNIX paths are short
    yield d
    shutil.rmtree(d, ignore_errors=True)


def write_app(path, broken=False):
    with open(path, "w") as f:
        f.write(APP_SRC + ("\nraise RuntimeError('deliberately broken')\n" if broken else ""))


def get_pid(srv):
    r = srv.request("GET", "/pid", timeout=5)
    assert r.status == 200
    return int(r.body.split()[1])


@pytest.mark.timeout_s(30)
def test_failed_usr2_keeps_the_unix_socket(hugd, short_tmp):
    app = os.path.join(short_tmp, "app.py")
    sock = os.path.join(short_tmp, "s.sock")
    write_app(app)
    srv = hugd.new()
    srv.unix_path = sock
    srv.start(["-w", "1", "-b", f"unix:{sock}", "app:application"], bind=False, cwd=short_tmp,
              workers=1)
    before = get_pid(srv)
    write_app(app, broken=True)
    srv.signal(signal.SIGUSR2)
    assert wait_for(lambda: "before it was ready" in srv.stderr, 15), srv.stderr[-2000:]
    assert os.path.exists(sock), "the failed new master removed the serving socket"
    assert get_pid(srv) == before
    assert srv.proc.poll() is None


@pytest.mark.timeout_s(40)
def test_hup_to_an_address_in_use_keeps_serving(hugd, workdir):
    app = os.path.join(workdir, "app.py")
    write_app(app)
    port, busy = free_port(), socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    conf = os.path.join(workdir, "hugd.ini")
    with open(conf, "w") as f:
        f.write(f"[server]\nbind = 127.0.0.1:{port}\n[workers]\nworkers = 2\n")
    srv = hugd.new()
    srv.port = port
    srv.start(["-c", conf, "app:application"], bind=False, cwd=workdir, workers=2)
    master = srv.proc.pid
    lg = LoadGen(srv.host, port, threads=4, deadline=20).start()
    try:
        time.sleep(0.5)
        with open(conf, "w") as f:  # the new address can't be bound
            f.write(f"[server]\nbind = 127.0.0.1:{busy.getsockname()[1]}\n"
                    "[workers]\nworkers = 2\n")
        srv.signal(signal.SIGHUP)
        assert wait_for(lambda: "still listening at" in srv.stderr, 15), srv.stderr[-3000:]
        time.sleep(1.0)
    finally:
        lg.stop()
        busy.close()
    assert srv.proc.poll() is None and srv.proc.pid == master, srv.stderr[-3000:]
    assert lg.failures == 0, lg.report()
    assert get_pid(srv) in srv.children()
