"""While a HUP's new image imports the application, the loop thread
runs libev's child watcher, which reaps every child (waitpid(-1)): a
subprocess the application's import runs loses its exit status."""
import os
import signal

from hugdtest import wait_for

APP = '''
import os, subprocess, time
p = subprocess.Popen(["sh", "-c", "exit 3"])
time.sleep(0.3)  # the child has exited before we wait for it
rc = p.wait()
with open(os.environ["RV_OUT"], "a") as f:
    f.write(f"{os.getpid()} {rc}\\n")

def application(environ, start_response):
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]
'''


def lines(path):
    return open(path).read().split("\n")[:-1] if os.path.exists(path) else []


def test_import_after_hup_sees_its_subprocess_status(hugd, tmp_path):
    (tmp_path / "subp_app.py").write_text(APP)
    out = tmp_path / "out"
    srv = hugd.start(["-w", "1", "subp_app:application"], cwd=tmp_path, workers=1,
                     env={"RV_OUT": out})
    assert wait_for(lambda: len(lines(out)) >= 1, 10)
    srv.signal(signal.SIGHUP)
    # the probe's import, then the new image's (same pid as the master)
    assert wait_for(lambda: len(lines(out)) >= 3, 15), lines(out)
    master = str(srv.proc.pid)
    codes = [l.split()[1] for l in lines(out) if l.split()[0] == master]
    assert codes == ["3", "3"], lines(out)
