"""Virtualenvs: --virtualenv DIR, [app] virtualenv, $VIRTUAL_ENV.  The
embedded interpreter uses the venv's site-packages, and the system's only
when the venv was made with --system-site-packages; a venv of another
Python version is refused before anything is bound."""
import os
import shutil
import signal
import subprocess
import sys

import pytest

from hugdtest import APPS, free_port, wait_for

# The interpreter hugd embeds is Debian's (python3-embed); its venvs are the
# ones hugd can use.
SYSTEM_PYTHON = "/usr/bin/python3"
VERSION = "%d.%d" % sys.version_info[:2]

pytestmark = pytest.mark.skipif(not os.access(SYSTEM_PYTHON, os.X_OK),
                                reason="no /usr/bin/python3")


def make_venv(path, system_site, tag):
    args = [SYSTEM_PYTHON, "-m", "venv", "--without-pip"]
    if system_site:
        args.append("--system-site-packages")
    subprocess.run(args + [str(path)], check=True, timeout=60, capture_output=True)
    site = subprocess.run([os.path.join(path, "bin", "python3"), "-c",
                           "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          check=True, timeout=30, capture_output=True, text=True).stdout.strip()
    set_marker(site, tag)
    return str(path), site


def set_marker(site, tag):
    pkg = os.path.join(site, "onlyinvenv")
    os.makedirs(pkg, exist_ok=True)
    with open(os.path.join(pkg, "__init__.py"), "w") as f:
        f.write(f"WHERE = {tag!r}\n")


@pytest.fixture(scope="module")
def venvs(module_workdir):
    root = os.path.join(module_workdir, "venvs")
    os.makedirs(root)
    return {
        "system": make_venv(os.path.join(root, "with-system"), True, "with-system"),
        "isolated": make_venv(os.path.join(root, "isolated"), False, "isolated"),
    }


def report(srv):
    return srv.get_json("/")


def test_virtualenv_option(hugd, venvs):
    venv, _ = venvs["system"]
    srv = hugd.start(["--virtualenv", venv, "venv_app:application"], cwd=APPS)
    r = report(srv)
    assert r["onlyinvenv"] == "with-system", r
    assert r["hug"] is True, r  # --system-site-packages: Debian's packages stay visible
    assert r["prefix"] == os.path.realpath(venv) and r["base_prefix"] == "/usr", r
    assert "virtualenv" in srv.stderr and os.path.realpath(venv) in srv.stderr


def test_virtual_env_variable(hugd, venvs):
    venv, _ = venvs["system"]
    srv = hugd.start(["venv_app:application"], cwd=APPS, env={"VIRTUAL_ENV": venv})
    r = report(srv)
    assert r["onlyinvenv"] == "with-system" and r["hug"] is True, r


def test_ini_key_and_option_over_variable(hugd, venvs, workdir):
    ini = os.path.join(workdir, "v.ini")
    with open(ini, "w") as f:
        f.write(f"[app]\nvirtualenv = {venvs['isolated'][0]}\n")
    srv = hugd.start(["-c", ini, "venv_app:application"], cwd=APPS,
                     env={"VIRTUAL_ENV": venvs["system"][0]})
    assert report(srv)["onlyinvenv"] == "isolated"


def test_without_system_site_packages(hugd, venvs):
    venv, _ = venvs["isolated"]
    srv = hugd.start(["--virtualenv", venv, "venv_app:application"], cwd=APPS)
    r = report(srv)
    assert r["onlyinvenv"] == "isolated", r
    assert r["hug"] is False, r  # Debian's dist-packages are hidden
    assert not [p for p in r["path"] if "dist-packages" in p], r["path"]


def test_no_virtualenv_sees_no_venv(hugd, venvs):
    srv = hugd.start(["venv_app:application"], cwd=APPS)
    r = report(srv)
    assert r["onlyinvenv"] is None and r["hug"] is True, r


def test_relative_path_is_from_the_start_folder(hugd, venvs):
    venv, _ = venvs["system"]
    start = os.path.dirname(venv)
    srv = hugd.start(["--chdir", str(APPS), "--virtualenv", os.path.basename(venv),
                      "venv_app:application"], cwd=start)
    assert report(srv)["onlyinvenv"] == "with-system"


def refused(hugd, args, env=None):
    port = free_port()
    s = hugd.run(["-b", f"127.0.0.1:{port}"] + args + ["venv_app:application"], cwd=APPS,
                 env=env)
    assert s.proc.returncode == 78, (s.proc.returncode, s.stderr)
    lines = s.stderr.strip().splitlines()
    assert len(lines) == 1, s.stderr
    assert "listening" not in s.stderr
    return lines[0]


def test_other_python_version_refused(hugd, venvs, workdir):
    venv = os.path.join(workdir, "old-venv")
    shutil.copytree(venvs["system"][0], venv, symlinks=True)
    cfg = os.path.join(venv, "pyvenv.cfg")
    text = open(cfg).read()
    with open(cfg, "w") as f:
        for line in text.splitlines():
            key = line.partition("=")[0].strip()
            f.write("version = 3.9.18\n" if key == "version" else line + "\n")
    line = refused(hugd, ["--virtualenv", venv])
    assert "3.9.18" in line and f"Python {VERSION}" in line, line
    assert venv in line, line
    line = refused(hugd, [], env={"VIRTUAL_ENV": venv})
    assert "VIRTUAL_ENV" in line and "3.9.18" in line and VERSION in line, line


def test_not_a_virtualenv_refused(hugd, workdir):
    line = refused(hugd, ["--virtualenv", workdir])
    assert "pyvenv.cfg" in line, line
    line = refused(hugd, ["--virtualenv", os.path.join(workdir, "missing")])
    assert "missing" in line, line


def test_hup_keeps_the_virtualenv(hugd, venvs):
    venv, site = venvs["system"]
    srv = hugd.start(["-w", "2", "--virtualenv", venv, "venv_app:application"], cwd=APPS,
                     workers=2)
    assert report(srv)["onlyinvenv"] == "with-system"
    old = set(srv.children())
    set_marker(site, "after-hup")  # new workers import it afresh
    try:
        srv.signal(signal.SIGHUP)
        ok = wait_for(lambda: len(srv.children()) == 2 and not (set(srv.children()) & old), 15)
        assert ok, (old, srv.children(), srv.stderr[-2000:])
        for _ in range(4):
            r = report(srv)
            assert r["onlyinvenv"] == "after-hup" and r["hug"] is True, r
    finally:
        set_marker(site, "with-system")
