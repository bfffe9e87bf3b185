"""A connection the worker closed without shutdown() (keep-alive
timeout) keeps its FIN until the master closes its copy, and the master only
learns of the close (CHAN_CLOSED) when the worker next waits in its loop,
i.e. after the next application call of the same iteration."""
import socket
import time

from hugdtest import APPS, wait_for

GET = "GET {} HTTP/1.1\r\nHost: x\r\n\r\n"


def test_keepalive_close_fin_not_held_by_next_app_call(hugd, tmp_path):
    srv = hugd.start(["-w", "1", "--keep-alive", "1", "--rebalance-after", "0", "move_app:application"], cwd=APPS,
                     workers=1)
    a = srv.connect()
    a.sendall(GET.format("/fast").encode())
    assert b"200 OK" in a.recv(4096)
    b = srv.connect()
    mark = tmp_path / "m1"
    b.sendall(GET.format(f"/slow?s=2&mark={mark}").encode())
    assert wait_for(mark.exists, 5, interval=0.005)
    # While the first slow call runs (A's keep-alive expires meanwhile),
    # B's next request arrives: it runs in the iteration that closes A.
    b.sendall(GET.format("/slow?s=3").encode())
    b.settimeout(10)
    first = b.recv(4096)
    t_first = time.monotonic()
    assert b"200 OK" in first
    a.settimeout(10)
    got = a.recv(4096)  # EOF expected promptly: the worker closed A at t_first
    delay = time.monotonic() - t_first
    assert got == b""
    assert delay < 1.0, f"A's FIN came {delay:.2f} s after the worker closed it"
