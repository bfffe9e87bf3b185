"""--reload, for development: a saved source file reloads the application
(as HUP does: probe, then the new code) with no failed request."""
import os
import time

import pytest

from hugdtest import wait_for
from loadgen import LoadGen
from test_supervision import BROKEN_MARKER, write_app, write_broken_app


def start(hugd, workdir, *extra):
    app = os.path.join(workdir, "reload_app.py")
    write_app(app, "vA")
    srv = hugd.start(["-w", "2", "--reload", *extra, "reload_app:application"], cwd=workdir,
                     workers=2)
    assert wait_for(lambda: "reload: watching" in srv.stderr, 5), srv.stderr
    return srv, app


def first_answer(loads, text, since, timeout):
    """Seconds from since until every load answers with text, or None."""
    ok = wait_for(lambda: all(text in lg.texts(since=since) for lg in loads), timeout,
                  interval=0.01)
    return time.monotonic() - since if ok else None


@pytest.mark.timeout_s(60)
def test_an_edited_file_is_served_within_two_seconds_and_nothing_fails(hugd, workdir):
    srv, app = start(hugd, workdir)
    loads = [LoadGen(srv.host, srv.port, threads=8, deadline=40).start(),
             LoadGen(srv.host, srv.port, threads=4, keepalive=False, deadline=40).start()]
    try:
        for lg in loads:
            assert wait_for(lambda: len(lg.ok_records()) > 50, 10), lg.report()
        # Saved by renaming a new file over it, as many editors do ...
        t = time.monotonic()
        write_app(app, "vB")
        took_b = first_answer(loads, "vB", t, 2.0)
        assert took_b, srv.stderr[-3000:]
        # ... and written in place.
        src = open(app).read().replace('VERSION = "vB"', 'VERSION = "vC"')
        t = time.monotonic()
        with open(app, "w") as f:
            f.write(src)
        took_c = first_answer(loads, "vC", t, 2.0)
        assert took_c, srv.stderr[-3000:]
        assert wait_for(lambda: all(lg.texts(since=time.monotonic() - 0.3) == {"vC"}
                                    for lg in loads), 10)
    finally:
        for lg in loads:
            lg.stop()
    rep = "\n".join(lg.report() for lg in loads)
    print(f"\n{rep}\nnew code answered {took_b:.2f} s after a rename, {took_c:.2f} s after a "
          "write in place")
    assert all(lg.failures == 0 for lg in loads), rep + "\n" + srv.stderr[-3000:]
    assert srv.stderr.count("reload: reload_app.py changed") == 2, srv.stderr[-3000:]


@pytest.mark.timeout_s(60)
def test_a_broken_save_keeps_the_running_code_until_fixed(hugd, workdir):
    srv, app = start(hugd, workdir)
    write_broken_app(app)
    assert wait_for(lambda: BROKEN_MARKER in srv.stderr and "does not load" in srv.stderr, 10), \
        srv.stderr[-3000:]
    r = srv.request("GET", "/pid")
    assert r.status == 200 and r.body.startswith(b"vA"), r
    write_app(app, "vB")
    assert wait_for(lambda: srv.request("GET", "/pid").body.startswith(b"vB"), 10), \
        srv.stderr[-3000:]


@pytest.mark.timeout_s(60)
def test_an_extra_file_reloads_too_and_other_files_do_not(hugd, workdir):
    settings = os.path.join(workdir, "settings.ini")
    with open(settings, "w") as f:
        f.write("a = 1\n")
    srv, app = start(hugd, workdir, "--reload-extra-file", "settings.ini")
    with open(os.path.join(workdir, "notes.txt"), "w") as f:
        f.write("not watched\n")
    write_app(app + ".unrelated", "vX")  # a neighbour of the app, not it
    time.sleep(0.5)  # nothing to wait for: what must not happen
    assert "changed" not in srv.stderr, srv.stderr[-2000:]
    write_app(app, "vB")  # the code changes, then the settings file is saved
    assert wait_for(lambda: srv.request("GET", "/pid").body.startswith(b"vB"), 10)
    n = srv.stderr.count("new workers ready")
    with open(settings, "w") as f:
        f.write("a = 2\n")
    assert wait_for(lambda: "reload: settings.ini changed" in srv.stderr, 5), srv.stderr[-2000:]
    assert wait_for(lambda: srv.stderr.count("new workers ready") > n, 10), srv.stderr[-2000:]
