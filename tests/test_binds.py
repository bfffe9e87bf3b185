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


# --- an address already taken ---------------------------------------------------------

def _holder_message(hugd, bind):
    s = hugd.run(["-b", bind, "wsgiapp:application"], cwd=APPS)
    assert s.proc.returncode == 71, (s.proc.returncode, s.stderr)  # EX_OSERR
    assert "listening at" not in s.stderr
    return s.stderr


@pytest.mark.parametrize("family, host", [(socket.AF_INET, "127.0.0.1"),
                                          (socket.AF_INET6, "::1")])
def test_address_in_use_names_the_holder(hugd, family, host):
    if family == socket.AF_INET6 and not have_ipv6_loopback():
        pytest.skip("no IPv6 loopback")
    holder = socket.socket(family, socket.SOCK_STREAM)
    try:
        holder.bind((host, 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        bind = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        err = _holder_message(hugd, bind)
    finally:
        holder.close()
    assert f"{bind}: address already in use (held by pid {os.getpid()}" in err, err


def test_unix_socket_in_use_names_the_holder(hugd, short_tmp):
    path = os.path.join(short_tmp, "taken.sock")
    holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        holder.bind(path)
        holder.listen(1)
        err = _holder_message(hugd, f"unix:{path}")
    finally:
        holder.close()
    assert f"unix:{path}: another server is listening there (held by pid {os.getpid()}" in err, \
        err


# --- root without --allow-root: refused before anything is bound ------------------------

@pytest.mark.skipif(os.geteuid() != 0, reason="needs to run as root")
@pytest.mark.parametrize("extra", [[], ["--user", "root"], ["--user", "0"]])
def test_root_refused_before_binding(hugd, short_tmp, extra):
    port = free_port()
    path = os.path.join(short_tmp, "root.sock")
    s = hugd.new().spawn(["-b", f"127.0.0.1:{port}", "-b", f"unix:{path}"] + extra +
                         ["wsgiapp:application"], cwd=APPS, allow_root=False)
    assert s.wait(10) == 78, s.stderr
    assert "refusing to run the application as root" in s.stderr, s.stderr
    assert "listening" not in s.stderr, s.stderr
    assert not os.path.exists(path), "the unix socket was bound (and left behind)"
    # The port was never taken: binding it without SO_REUSEADDR works.
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.bind(("127.0.0.1", port))
        probe.listen(1)
    finally:
        probe.close()
