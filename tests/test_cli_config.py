"""Command line, INI configuration and target resolution."""
import configparser
import os
import re
import signal
import time

import pytest

from hugdtest import APPS, REPO, free_port, wait_for, children_of


def ini_text(text):
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    cp.read_string(text)
    return cp


# --- --version / --help --------------------------------------------------------

def test_version(hugd):
    s = hugd.run(["--version"])
    assert s.proc.returncode == 0, s.stderr
    out = (s.stdout + s.stderr).strip()
    assert out, "--version printed nothing"
    assert re.search(r"\d+\.\d+", out), out


def test_help_lists_options(hugd):
    s = hugd.run(["--help"])
    assert s.proc.returncode == 0, s.stderr
    out = s.stdout + s.stderr
    for opt in ("--bind", "--workers", "--config", "--check-config", "--keep-alive",
                "--access-logfile", "--error-logfile", "--log-level", "--timeout",
                "--graceful-timeout", "--chdir", "--pythonpath", "--backlog"):
        assert opt in out, f"{opt} missing from --help:\n{out}"


def test_unknown_option_fails(hugd):
    s = hugd.run(["--no-such-option", "x"])
    assert s.proc.returncode != 0
    assert "no-such-option" in s.stderr


def test_no_target_fails(hugd):
    s = hugd.run([])
    assert s.proc.returncode != 0
    assert s.stderr.strip(), "no message for a missing target"


@pytest.mark.parametrize("args", [["-w", "abc"], ["-w", "0"], ["-w", "-3"],
                                  ["-b", "127.0.0.1:notaport"], ["--keep-alive", "x"],
                                  ["--log-level", "loud"]])
def test_bad_command_line_value(hugd, args):
    s = hugd.run(args + ["--check-config"])
    assert s.proc.returncode not in (0, None), (args, s.stdout)
    assert s.stderr.strip(), f"no error message for {args}"


# --- INI file -----------------------------------------------------------------------

def test_repo_config_checks(hugd):
    conf = REPO / "conf" / "hugd.ini"
    assert conf.exists(), "conf/hugd.ini is missing"
    s = hugd.run(["-c", str(conf), "--check-config"], cwd=REPO)
    assert s.proc.returncode == 0, s.stderr
    cp = ini_text(s.stdout)
    assert cp.has_section("server") and cp.has_section("workers"), s.stdout


def test_check_config_prints_effective_ini(hugd, workdir):
    s = hugd.run(["--check-config", "-w", "3", "-b", "127.0.0.1:8123", "--timeout", "7"])
    assert s.proc.returncode == 0, s.stderr
    cp = ini_text(s.stdout)
    assert int(cp["workers"]["workers"]) == 3, s.stdout
    assert "127.0.0.1:8123" in cp["server"]["bind"], s.stdout
    assert float(cp["workers"]["timeout"].rstrip("s")) == 7, s.stdout


def test_check_config_output_round_trips(hugd, workdir):
    s = hugd.run(["--check-config", "-w", "2", "-b", "127.0.0.1:8124"])
    assert s.proc.returncode == 0, s.stderr
    path = os.path.join(workdir, "roundtrip.ini")
    with open(path, "w") as f:
        f.write(s.stdout)
    s2 = hugd.run(["--config", path, "--check-config"])
    assert s2.proc.returncode == 0, s2.stderr
    assert ini_text(s2.stdout)["workers"]["workers"] == ini_text(s.stdout)["workers"]["workers"]


def test_config_file_bind_and_workers(hugd, workdir):
    port = free_port()
    path = os.path.join(workdir, "t.ini")
    with open(path, "w") as f:
        f.write(f"[server]\nbind = 127.0.0.1:{port}\n\n[workers]\nworkers = 3\n")
    srv = hugd.new()
    srv.port = port
    srv.start(["-c", path, "wsgiapp:application"], bind=False, cwd=APPS, workers=3)
    r = srv.request("GET", "/fixed")
    assert r.status == 200 and r.body == b"0123456789" * 10


def test_command_line_wins_over_file(hugd, workdir):
    file_port = free_port()
    path = os.path.join(workdir, "t.ini")
    with open(path, "w") as f:
        f.write(f"[server]\nbind = 127.0.0.1:{file_port}\n[workers]\nworkers = 3\n")
    # the printed effective config shows the command-line values
    s = hugd.run(["-c", path, "-w", "1", "--check-config"])
    assert s.proc.returncode == 0, s.stderr
    assert int(ini_text(s.stdout)["workers"]["workers"]) == 1, s.stdout
    # and the running server uses them: -w 1, and the -b port (not the file's)
    srv = hugd.start(["-c", path, "-w", "1", "wsgiapp:application"], cwd=APPS, workers=1)
    assert srv.request("GET", "/fixed").status == 200
    time.sleep(0.3)
    assert len(srv.children()) == 1
    import socket
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", file_port), timeout=1).close()


@pytest.mark.parametrize("content,line", [
    ("[server]\nbind = 127.0.0.1:8000\n[nosuchsection]\nfoo = 1\n", 4),
    ("[server]\nbind = 127.0.0.1:8000\n\n[workers]\nworkers = 2\nnosuchkey = 1\n", 6),
    ("# comment\n[workers]\nworkers = many\n", 3),
    ("[server]\nbind = 127.0.0.1:8000\n[workers]\ntimeout = -x\n", 4),
    ("[http]\nkeepalive = soon\n", 2),
])
def test_bad_config_file(hugd, workdir, content, line):
    path = os.path.join(workdir, "bad.ini")
    with open(path, "w") as f:
        f.write(content)
    for extra in (["--check-config"], ["wsgiapp:application"]):
        s = hugd.run(["-c", path] + extra, cwd=APPS)
        assert s.proc.returncode == 78, (extra, s.proc.returncode, s.stderr)
        assert f"{path}:{line}:" in s.stderr, (extra, s.stderr)


def test_missing_config_file(hugd, workdir):
    path = os.path.join(workdir, "does-not-exist.ini")
    s = hugd.run(["-c", path, "--check-config"])
    assert s.proc.returncode != 0
    assert "does-not-exist.ini" in s.stderr


# --- target resolution ----------------------------------------------------------------

def test_target_path_to_file(hugd, workdir):
    # cwd is elsewhere; the file's folder goes on sys.path (for _apphelper)
    srv = hugd.start([str(APPS / "hello_hug.py")], cwd=workdir)
    assert srv.get_json("/hello") == {"hello": "world"}


def test_target_module_uses_hug_wsgi(hugd):
    srv = hugd.start(["hello_hug"], cwd=APPS)
    assert srv.get_json("/hello") == {"hello": "world"}


def test_target_module_attr(hugd, workdir):
    srv = hugd.start(["--chdir", str(APPS), "wsgiapp:application"], cwd=workdir)
    assert srv.request("GET", "/fixed").body == b"0123456789" * 10


def test_pythonpath_option(hugd, workdir):
    srv = hugd.start(["--pythonpath", str(APPS), "wsgiapp:app"], cwd=workdir)
    assert srv.request("GET", "/fixed").status == 200


def test_chdir_option(hugd, workdir):
    srv = hugd.start(["--chdir", str(APPS), "hello_hug"], cwd=workdir)
    assert srv.get_json("/hello") == {"hello": "world"}


@pytest.mark.parametrize("target", ["plain_module", "hug_no_routes", "hug_api_object:api",
                                    "plain_module:value", "plain_module:missing_attr",
                                    "no_such_module_xyz", "no_such_file_xyz.py"])
def test_target_without_wsgi_callable(hugd, target):
    t0 = time.monotonic()
    s = hugd.run([target], cwd=APPS, timeout=10)
    took = time.monotonic() - t0
    assert s.proc.returncode != 0, s.stderr
    assert target in s.stderr, s.stderr
    assert took < 5, f"took {took:.1f}s to fail"
    assert len(s.stderr.strip().splitlines()) <= 30, s.stderr


def test_app_raising_at_import(hugd, workdir):
    log = os.path.join(workdir, "imports.log")
    t0 = time.monotonic()
    s = hugd.spawn(["-b", f"127.0.0.1:{free_port()}", "-w", "2", "broken_import"],
                   cwd=APPS, env={"HUGD_TEST_IMPORT_LOG": log})
    seen_children = set()
    while s.proc.poll() is None and time.monotonic() - t0 < 8:
        seen_children.update(children_of(s.proc.pid))
        time.sleep(0.02)
    took = time.monotonic() - t0
    assert s.proc.poll() is not None, "hugd kept running with an app that fails to import"
    assert s.proc.returncode != 0
    assert took < 5, f"took {took:.1f}s"
    assert "hugd-test-import-failure-marker" in s.stderr, s.stderr
    assert "Traceback" in s.stderr or "RuntimeError" in s.stderr, s.stderr
    with open(log) as f:
        importers = f.read().split()
    assert importers == [str(s.proc.pid)], \
        f"imported {len(importers)} times by {importers} (master {s.proc.pid})"
    assert not seen_children, f"workers were created: {seen_children}"


# --- options that change behaviour --------------------------------------------------

def test_workers_option(hugd):
    srv = hugd.start(["--workers", "3", "wsgiapp:application"], cwd=APPS, workers=3)
    pids = set()
    for _ in range(6):
        pids.add(int(srv.request("GET", "/pid").body))
    assert pids <= set(srv.children())


def test_multiple_binds(hugd):
    p1, p2 = free_port(), free_port()
    srv = hugd.new()
    srv.port = p1
    srv.start(["--bind", f"127.0.0.1:{p1}", "-b", f"127.0.0.1:{p2}", "wsgiapp:application"],
              bind=False, cwd=APPS)
    assert srv.request("GET", "/fixed").status == 200
    srv.port = p2
    assert srv.request("GET", "/fixed").status == 200


def test_backlog_option_accepted(hugd):
    srv = hugd.start(["--backlog", "16", "wsgiapp:application"], cwd=APPS)
    assert srv.request("GET", "/fixed").status == 200


def test_access_log_off_by_default(hugd):
    srv = hugd.start(["wsgiapp:application"], cwd=APPS)
    srv.request("GET", "/fixed?access-marker-1")
    time.sleep(0.3)
    assert "access-marker-1" not in srv.stdout
    assert "access-marker-1" not in srv.stderr


COMBINED = re.compile(
    r'^(?P<host>\S+) \S+ \S+ \[(?P<time>\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\] '
    r'"(?P<request>[^"]*)" (?P<status>\d{3}) (?P<size>\d+|-) "(?P<referer>[^"]*)" '
    r'"(?P<agent>[^"]*)"(?P<rest>.*)$')


def _check_access_line(text, marker):
    lines = [l for l in text.splitlines() if marker in l]
    assert len(lines) == 1, text
    m = COMBINED.match(lines[0])
    assert m, f"not combined log format: {lines[0]!r}"
    assert m["host"] == "127.0.0.1"
    assert m["request"] == f"GET /fixed?{marker} HTTP/1.1"
    assert m["status"] == "200"
    assert m["size"] == "100"
    assert m["referer"] == "http://ref.example/"
    assert m["agent"] == "hugd-test-agent/1.0"
    assert re.search(r"\d", m["rest"]), f"no request time after the combined fields: {lines[0]!r}"


def test_access_logfile(hugd, workdir):
    path = os.path.join(workdir, "access.log")
    srv = hugd.start(["--access-logfile", path, "wsgiapp:application"], cwd=APPS)
    srv.request("GET", "/fixed?access-marker-2",
                headers={"Referer": "http://ref.example/", "User-Agent": "hugd-test-agent/1.0"})
    wait_for(lambda: os.path.exists(path) and "access-marker-2" in open(path).read(), 3)
    _check_access_line(open(path).read(), "access-marker-2")


def test_access_logfile_stdout(hugd):
    srv = hugd.start(["--access-logfile", "-", "wsgiapp:application"], cwd=APPS)
    srv.request("GET", "/fixed?access-marker-3",
                headers={"Referer": "http://ref.example/", "User-Agent": "hugd-test-agent/1.0"})
    wait_for(lambda: "access-marker-3" in srv.stdout, 3)
    _check_access_line(srv.stdout, "access-marker-3")


def test_error_logfile_gets_app_errors(hugd, workdir):
    path = os.path.join(workdir, "error.log")
    srv = hugd.start(["--error-logfile", path, "wsgiapp:application"], cwd=APPS)
    assert srv.request("GET", "/errors?m=elog-marker").status == 200
    assert srv.request("GET", "/raise?m=elog-exc").status == 500
    ok = wait_for(lambda: os.path.exists(path) and "elog-exc" in open(path).read()
                  and "elog-marker" in open(path).read(), 3)
    assert ok, open(path).read() if os.path.exists(path) else "no error log file"
    text = open(path).read()
    assert "wsgi-errors-write elog-marker" in text
    assert "Traceback" in text
    assert "elog-marker" not in srv.stderr


def test_log_level_option(hugd):
    srv = hugd.start(["--log-level", "debug", "wsgiapp:application"], cwd=APPS)
    assert srv.request("GET", "/fixed").status == 200
    s = hugd.run(["--log-level", "warning", "--check-config"])
    assert s.proc.returncode == 0, s.stderr


def test_timeout_kills_hung_worker(hugd):
    srv = hugd.start(["-w", "1", "-t", "1", "wsgiapp:application"], cwd=APPS, workers=1)
    first = srv.children()
    t0 = time.monotonic()
    try:
        r = srv.request("GET", "/sleep?s=8", timeout=6)
        status = r.status
    except (OSError, EOFError):
        status = None  # connection dropped: acceptable
    took = time.monotonic() - t0
    assert took < 5, f"request running past --timeout 1 lasted {took:.1f}s"
    assert status is None or status >= 500
    # replaced by a new worker, which serves
    assert wait_for(lambda: srv.children() and srv.children() != first, 5), srv.stderr
    assert srv.request("GET", "/fixed").status == 200
