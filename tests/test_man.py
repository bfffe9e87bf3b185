"""The manual page conf/hugd.1: it covers every option and key the binary
has, it renders without warnings, and `meson install` installs it (and
nothing from __pycache__)."""
import os
import re
import shutil
import subprocess

import pytest

from hugdtest import HUGD_BIN, REPO

MAN = REPO / "conf" / "hugd.1"


def _source_text():
    """The page's words, roff escapes removed: \\- is -, fonts are dropped."""
    text = MAN.read_text()
    text = re.sub(r"\\f[BIRP]", "", text)
    return text.replace("\\-", "-").replace("\\e", "\\")


def _run(args):
    return subprocess.run([HUGD_BIN] + args, capture_output=True, text=True, timeout=10)


def test_every_long_option_is_in_the_man_page():
    help_text = _run(["--help"]).stdout
    options = set(re.findall(r"^\s+(?:-\w, )?(--[a-z][a-z-]*)", help_text, re.M))
    assert len(options) > 30, help_text  # the parse found them
    page = _source_text()
    missing = sorted(o for o in options if not re.search(re.escape(o) + r"(?![a-z-])", page))
    assert not missing, f"options not in {MAN.name}: {missing}"


def test_every_ini_key_is_in_the_man_page():
    printed = _run(["--check-config"]).stdout
    sections = re.findall(r"^\[(\w+)\]$", printed, re.M)
    keys = re.findall(r"^(\w+) =", printed, re.M)
    assert len(keys) > 25, printed
    page = _source_text()
    for s in sections:
        assert f".B [{s}]" in page, s
    missing = [k for k in keys if not re.search(rf"(?<![\w-]){k}(?![\w-])", page)]
    assert not missing, f"INI keys not in {MAN.name}: {missing}"


def test_man_page_version_is_the_binary_version():
    version = _run(["--version"]).stdout.split()[1]
    th = re.search(r'^\.TH HUGD 1 "[^"]*" "hugd ([^"]+)"', MAN.read_text(), re.M)
    assert th and th[1] == version, (th and th[1], version)


def _renderers():
    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8")
    found = []
    if shutil.which("man"):
        found.append((["man", "--warnings", "-l", str(MAN)], env))
    if shutil.which("groff"):
        found.append((["groff", "-z", "-ww", "-man", str(MAN)], env))
    if shutil.which("mandoc"):
        found.append((["mandoc", "-T", "lint", "-W", "warning", str(MAN)], env))
    return found


@pytest.mark.skipif(not _renderers(), reason="neither man, groff nor mandoc is installed")
def test_man_page_renders_without_warnings():
    for argv, env in _renderers():
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
        assert p.returncode == 0 and not p.stderr.strip(), (argv, p.returncode, p.stderr)
        if argv[0] == "man":
            assert "--access-logformat" in p.stdout.replace("\u2010", "-")


def _build_dir():
    d = os.path.dirname(os.path.abspath(HUGD_BIN))
    return d if os.path.isdir(os.path.join(d, "meson-private")) else None


@pytest.mark.skipif(not shutil.which("meson") or not _build_dir(),
                    reason="no meson build directory for HUGD_BIN")
@pytest.mark.timeout_s(120)
def test_meson_install_has_the_man_page_and_no_byte_code(workdir):
    cache = REPO / "python" / "hugd" / "__pycache__"
    made = not cache.exists()
    stray = cache / "hugd-test-stray.cpython.pyc"
    cache.mkdir(exist_ok=True)
    stray.write_bytes(b"not byte code")
    try:
        dest = os.path.join(workdir, "dest")
        p = subprocess.run(["meson", "install", "-C", _build_dir(), "--no-rebuild", "--quiet",
                            "--destdir", dest], capture_output=True, text=True, timeout=100)
        assert p.returncode == 0, p.stdout + p.stderr
    finally:
        stray.unlink()
        if made:
            cache.rmdir()
    installed = [os.path.relpath(os.path.join(d, f), dest)
                 for d, _, files in os.walk(dest) for f in files]
    assert [f for f in installed if f.endswith("man1/hugd.1")], installed
    assert [f for f in installed if f.endswith("/hugd/loader.py")], installed
    assert not [f for f in installed if "__pycache__" in f], installed
