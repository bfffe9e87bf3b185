"""hugd top: a live view of a running hugd, from its stats endpoint.

    hugd top --stats 127.0.0.1:9191      (or unix:/run/hugd-stats.sock)

A header (pool size and bounds, the master's queue, requests per second)
and one row per worker (state, requests per second, the request it runs
and for how long, memory), redrawn every second; q quits.  It reads only
GET /stats (the master serves it: see --stats-bind), so watching costs
the application nothing.
"""
import argparse
import curses
import http.client
import json
import os
import socket
import sys
import time

REFRESH = 1.0


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def connection(addr, timeout=2.0):
    if addr.startswith("unix:"):
        return UnixHTTPConnection(addr[5:], timeout)
    host, _, port = addr.rpartition(":")
    return http.client.HTTPConnection(host.strip("[]") or "127.0.0.1", int(port), timeout=timeout)


def fetch(addr):
    """The /stats document, or raises OSError / ValueError."""
    c = connection(addr)
    try:
        c.request("GET", "/stats")
        r = c.getresponse()
        body = r.read()
        if r.status != 200:
            raise ValueError(f"/stats answered {r.status}")
        return json.loads(body)
    finally:
        c.close()


def size(n):
    if n is None:
        return "-"
    for unit in ("B", "K", "M", "G"):
        if n < 1024 or unit == "G":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return "-"


class Rates:
    """Requests per second from two readings of a counter, per key."""

    def __init__(self):
        self.last = {}

    def rate(self, key, count, now):
        prev = self.last.get(key)
        self.last[key] = (count, now)
        if not prev or now <= prev[1] or count < prev[0]:
            return None
        return (count - prev[0]) / (now - prev[1])


def current(w):
    """'GET /path 1.2s' for the request a worker runs, or ''."""
    req = w.get("request")
    if not req:
        return ""
    age = req.get("age")
    line = req.get("line", "")
    return f"{line} {age:.1f}s" if isinstance(age, (int, float)) else line


def lines(stats, rates, now, width):
    """The screen's text: header lines, then one line per worker."""
    m = stats.get("master", {})
    pool = m.get("workers", {})
    queue = m.get("queue", {})
    ws = sorted(stats.get("workers", []), key=lambda w: w.get("id", 0))
    rps = rates.rate("all", stats.get("totals", {}).get("requests", 0), now)
    states = {}
    for w in ws:
        states[w.get("state", "?")] = states.get(w.get("state", "?"), 0) + 1
    head = [
        f"hugd {m.get('version', '')}  master {m.get('pid', '?')}  up {m.get('uptime', 0):.0f}s"
        f"  reloads {m.get('generation', 0)}",
        f"workers {len(ws)} (target {pool.get('target', '?')}, min {pool.get('min', '?')},"
        f" max {pool.get('max', '?')})  " + " ".join(f"{k} {v}" for k, v in sorted(states.items())),
        f"queue {queue.get('now', 0)} (max {queue.get('max', 0)})  requests/s "
        + ("-" if rps is None else f"{rps:.0f}"),
        "",
        f"{'ID':>4} {'PID':>7} {'STATE':<9}{'REQ/S':>7} {'REQUESTS':>9} {'RSS':>7}  REQUEST",
    ]
    rows = []
    for w in ws:
        r = rates.rate(("w", w.get("pid")), w.get("requests", 0), now)
        rows.append(f"{w.get('id', 0):>4} {w.get('pid', 0):>7} {w.get('state', '?'):<9}"
                    f"{'-' if r is None else f'{r:.0f}':>7} {w.get('requests', 0):>9} "
                    f"{size(w.get('rss')):>7}  {current(w)}")
    return [s[:width - 1] for s in head + rows]


def draw(scr, addr):
    curses.curs_set(0)
    scr.timeout(int(REFRESH * 1000))
    rates = Rates()
    while True:
        height, width = scr.getmaxyx()
        try:
            text = lines(fetch(addr), rates, time.monotonic(), width)
        except (OSError, ValueError, http.client.HTTPException) as e:
            text = [f"hugd top: {addr}: {e}"[:width - 1], "", "q quits"]
        scr.erase()
        for y, line in enumerate(text[:height - 1]):
            scr.addstr(y, 0, line, curses.A_REVERSE if y == 4 else curses.A_NORMAL)
        if len(text) > height - 1:
            scr.addstr(height - 1, 0, f"... {len(text) - height + 1} more"[:width - 1])
        scr.refresh()
        key = scr.getch()
        if key in (ord("q"), ord("Q")):
            return


def main(argv=None):
    p = argparse.ArgumentParser(prog="hugd top", description=__doc__.split("\n\n")[0])
    p.add_argument("--stats", default=os.environ.get("HUGD_STATS"),
                   help="the stats address of the hugd to watch (its --stats-bind): "
                        "host:port or unix:PATH; default $HUGD_STATS")
    p.add_argument("--once", action="store_true",
                   help="print the view once, without a terminal, and exit")
    a = p.parse_args(argv)
    if not a.stats:
        p.error("give --stats ADDR: the --stats-bind of the hugd to watch")
    if a.once:
        try:
            print("\n".join(lines(fetch(a.stats), Rates(), time.monotonic(), 200)))
        except (OSError, ValueError, http.client.HTTPException) as e:
            print(f"hugd top: {a.stats}: {e}", file=sys.stderr)
            return 1
        return 0
    curses.wrapper(draw, a.stats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
