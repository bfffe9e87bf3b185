"""After a HUP the new image installs the master's signal handlers
before it imports the application, so a handler the application's import
installs (signal.signal at import time) replaces the master's: TERM no
longer stops the master.  On the first start the master's come last."""
import signal

from hugdtest import wait_for

APP = '''
import signal
signal.signal(signal.SIGTERM, lambda *a: None)

def application(environ, start_response):
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]
'''


def test_term_stops_the_master_after_a_hup(hugd, tmp_path):
    (tmp_path / "sig_app.py").write_text(APP)
    srv = hugd.start(["-w", "1", "--graceful-timeout", "2", "sig_app:application"],
                     cwd=tmp_path, workers=1)
    first = srv.children()
    srv.signal(signal.SIGHUP)
    assert wait_for(lambda: srv.children() and set(srv.children()).isdisjoint(first), 15), \
        srv.stderr
    assert wait_for(lambda: "new workers ready" in srv.stderr, 10), srv.stderr
    srv.signal(signal.SIGTERM)
    assert wait_for(lambda: srv.proc.poll() is not None, 8), "the master ignored TERM"
