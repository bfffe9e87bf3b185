"""The master's mode: each change is logged at debug level, in the order
the master goes through them (src/master_mode.c), and none is refused."""
import os
import signal

from hugdtest import APPS, pid_alive, wait_for

APP = """
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""


def modes(srv):
    return [line.split("mode: ", 1)[1] for line in srv.stderr.splitlines() if "mode: " in line]


def test_failed_hup_then_term(hugd, workdir):
    app = os.path.join(workdir, "mode_app.py")
    with open(app, "w") as f:
        f.write(APP)
    srv = hugd.start(["-w", "1", "--log-level", "debug", "mode_app:application"],
                     cwd=workdir, workers=1)
    with open(app, "w") as f:
        f.write(APP + "\nthis is not python\n")
    srv.signal(signal.SIGHUP)
    assert wait_for(lambda: "does not load" in srv.stderr, 10), srv.stderr[-3000:]
    assert srv.request("GET", "/").status == 200
    srv.signal(signal.SIGTERM)
    assert srv.wait(10) == 0, srv.stderr[-3000:]
    assert modes(srv) == ["serving -> reloading (HUP)",
                          "reloading -> serving (the probe ended)",
                          "serving -> stopping (TERM)"], srv.stderr[-3000:]
    assert "not a change the master makes" not in srv.stderr


def test_usr2_hands_over(hugd, workdir):
    pidfile = os.path.join(workdir, "hugd.pid")
    srv = hugd.start(["-w", "1", "--log-level", "debug", "-p", pidfile, "wsgiapp:application"],
                     cwd=APPS, workers=1)
    old = srv.proc.pid

    def new_master():
        try:
            with open(pidfile) as f:
                pid = int(f.read().strip() or 0)
        except (OSError, ValueError):
            return None
        return pid if pid and pid != old else None

    srv.signal(signal.SIGUSR2)
    assert wait_for(new_master, 10), srv.stderr[-3000:]
    new = new_master()
    srv.known_pids.add(new)
    assert srv.wait(10) == 0, srv.stderr[-3000:]
    os.kill(new, signal.SIGTERM)
    assert wait_for(lambda: not pid_alive(new), 10)
    got = modes(srv)  # both masters' lines: the new one writes to the same stderr
    assert "serving -> upgrading (USR2)" in got, got
    assert "upgrading -> handing over (the new master is ready)" in got, got
    assert got.index("serving -> upgrading (USR2)") < \
        got.index("upgrading -> handing over (the new master is ready)"), got
    # and the new master, told TERM, stops as any would
    assert got[-1] == "serving -> stopping (TERM)", got
    assert "not a change the master makes" not in srv.stderr
