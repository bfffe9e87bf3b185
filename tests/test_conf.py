"""What conf/ ships: the example app the README serves, and the systemd
units (checked with systemd-analyze where it is installed)."""
import os
import re
import shutil
import subprocess

import pytest
import requests

from hugdtest import REPO, HUGD_BIN

CONF = REPO / "conf"


def test_readme_example_app_serves(hugd, workdir):
    srv = hugd.start([str(CONF / "hello.py")], cwd=workdir)
    r = requests.get(srv.url + "/hello?name=hugd", timeout=10)
    assert r.status_code == 200 and r.json() == {"hello": "hugd"}
    r = requests.post(srv.url + "/echo", json={"a": [1, 2]}, timeout=10)
    assert r.status_code == 200 and r.json() == {"a": [1, 2]}
    assert "pid" in requests.get(srv.url + "/pid", timeout=10).json()


def test_readme_opens_with_the_ci_commands():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    commands = re.findall(r"^    (bash tests/setup\.sh && .*)$", readme, re.M)
    assert len(commands) >= 2, "README must open with the serve and the test command"
    assert "build/hugd" in commands[0]
    assert commands[1] in ci, "CI must run the README's test command"


def test_socket_unit_matches_default_bind():
    socket_unit = (CONF / "hugd.socket").read_text()
    assert re.search(r"^ListenStream=127\.0\.0\.1:8000$", socket_unit, re.M)
    service = (CONF / "hugd.service").read_text()
    assert re.search(r"^Type=notify$", service, re.M)
    assert re.search(r"^ExecReload=/bin/kill -HUP \$MAINPID$", service, re.M)


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_units_verify(workdir):
    service = (CONF / "hugd.service").read_text()
    # Point ExecStart at this build; everything else as shipped.
    service = re.sub(r"^ExecStart=\S+", "ExecStart=" + HUGD_BIN, service, flags=re.M)
    service = re.sub(r"^WorkingDirectory=.*$", "WorkingDirectory=" + str(workdir), service,
                     flags=re.M)
    d = os.path.join(workdir, "units")
    os.makedirs(d)
    with open(os.path.join(d, "hugd.service"), "w") as f:
        f.write(service)
    shutil.copy(CONF / "hugd.socket", os.path.join(d, "hugd.socket"))
    p = subprocess.run(["systemd-analyze", "verify", "--man=no", "hugd.socket", "hugd.service"],
                       cwd=d, capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, SYSTEMD_LOG_LEVEL="warning"))
    problems = [l for l in (p.stdout + p.stderr).splitlines()
                if "hugd" in l and "www-data" not in l]
    assert not problems, "\n".join(problems)


def test_the_man_page_has_every_option_and_key():
    """conf/hugd.1 (installed by meson install) names every option --help
    lists and every INI key --check-config prints."""
    man = (REPO / "conf" / "hugd.1").read_text().replace("\\-", "-")
    helptext = subprocess.run([HUGD_BIN, "--help"], capture_output=True, text=True,
                              timeout=10).stdout
    options = set(re.findall(r"(--[a-z][a-z-]*)", helptext))
    assert len(options) > 40, helptext
    missing = sorted(o for o in options if not re.search(re.escape(o) + r"\b", man))
    assert not missing, missing
    printed = subprocess.run([HUGD_BIN, "--check-config"], capture_output=True, text=True,
                             timeout=10).stdout
    keys = set(re.findall(r"^(\w+) =", printed, re.M))
    assert len(keys) > 40, printed
    missing = sorted(k for k in keys if not re.search(r"\b" + k + r"\b", man))
    assert not missing, missing
