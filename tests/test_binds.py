"""Listening addresses: TCP v4 (everywhere else), Unix sockets, IPv6."""
import os
import shutil
import socket
import tempfile

import pytest

from hugdtest import APPS, build_request, free_port, have_ipv6_loopback


@pytest.fixture
def short_tmp():
    # AF_UNIX paths are limited to ~108 bytes: keep it short
    d = tempfile.mkdtemp(prefix="hugd", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_unix_socket(hugd, short_tmp):
    path = os.path.join(short_tmp, "x.sock")
    srv = hugd.new()
    srv.unix_path = path
    srv.start(["-b", f"unix:{path}", "wsgiapp:application"], bind=False, cwd=APPS)
    c = srv.conn()
    try:
        for i in range(2):
            c.send(build_request("GET", f"/env/unix{i}", {"Host": "localhost"}))
            r = c.read_response()
            assert r.status == 200
            assert r.json()["PATH_INFO"] == f"/env/unix{i}"
    finally:
        c.close()


def test_unix_and_tcp_together(hugd, short_tmp):
    path = os.path.join(short_tmp, "y.sock")
    port = free_port()
    srv = hugd.new()
    srv.unix_path = path
    srv.start(["-b", f"unix:{path}", "-b", f"127.0.0.1:{port}", "wsgiapp:application"],
              bind=False, cwd=APPS)
    assert srv.request("GET", "/fixed").status == 200
    srv.unix_path = None
    srv.port = port
    srv.wait_ready(5)
    assert srv.request("GET", "/fixed").status == 200


@pytest.mark.skipif(not have_ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_loopback(hugd):
    port = free_port(socket.AF_INET6, "::1")
    srv = hugd.new()
    srv.family, srv.host, srv.port = socket.AF_INET6, "::1", port
    srv.start(["-b", f"[::1]:{port}", "wsgiapp:application"], bind=False, cwd=APPS)
    env = srv.get_json("/env/v6")
    assert env["REMOTE_ADDR"] == "::1"
    assert env["SERVER_PORT"] == str(port)


@pytest.mark.parametrize("mask, mode", [("077", 0o700), ("002", 0o775)])
def test_umask_applies_to_unix_socket(hugd, short_tmp, mask, mode):
    path = os.path.join(short_tmp, "m.sock")
    srv = hugd.new()
    srv.unix_path = path
    srv.start(["--umask", mask, "-b", f"unix:{path}", "wsgiapp:application"], bind=False,
              cwd=APPS)
    assert os.stat(path).st_mode & 0o777 == mode


def test_unix_socket_removed_at_exit(hugd, short_tmp):
    path = os.path.join(short_tmp, "gone.sock")
    srv = hugd.new()
    srv.unix_path = path
    srv.start(["-b", f"unix:{path}", "wsgiapp:application"], bind=False, cwd=APPS)
    assert os.path.exists(path)
    srv.stop()
    assert not os.path.exists(path)
