#!/usr/bin/python3
"""The master's CPU per accepted connection under connection-per-request load.

Starts `hugd --allow-root -w N -b 127.0.0.1:PORT tests/bench/hello.py` (with
a stats endpoint on a second port, for the exact count of connections
accepted), warms it up, reads the master's and the workers' utime + stime
from /proc/PID/stat, runs `wrk -tT -cC -dDs -H 'Connection: close'` (a new
connection for every request), reads them again, and prints microseconds
of CPU per connection for the master and for the workers.  Each round
starts a fresh server; the last lines are the medians.

    /usr/bin/python3 tests/bench/master_cpu.py                 # -w 2 and -w 8, 3 rounds
    /usr/bin/python3 tests/bench/master_cpu.py --workers 2 --rounds 5
    /usr/bin/python3 tests/bench/master_cpu.py --hugd OTHER/build/hugd

Exit status 0; 1 if a server did not start or wrk reported errors.
"""
import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_ticks(pid):
    """utime + stime of a process (all its threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def accepted(stats_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{stats_port}/stats", timeout=5) as r:
        return json.load(r)["totals"]["accepted"]


def wait_up(port, deadline):
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as r:
                if r.status == 200:
                    return True
        except OSError:
            time.sleep(0.1)
    return False


def wrk(port, args, seconds):
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s",
           "-H", "Connection: close", f"http://127.0.0.1:{port}/"]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    m = re.search(r"(\d+) requests in", out)
    errors = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return int(m.group(1)) if m else 0, out, bool(errors or non2xx)


def one_round(args, workers):
    port, stats_port = free_port(), free_port()
    cmd = [args.hugd, "--allow-root", "-w", str(workers), "-b", f"127.0.0.1:{port}",
           "--stats-bind", f"127.0.0.1:{stats_port}", os.path.join(HERE, "hello.py")]
    log = open(os.path.join(args.logdir, f"hugd-w{workers}.log"), "w")
    srv = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        if not wait_up(port, time.monotonic() + 30):
            raise RuntimeError("hugd did not start (see " + log.name + ")")
        while len(children(srv.pid)) < workers:
            time.sleep(0.1)
        wrk(port, args, args.warmup)
        time.sleep(0.5)  # what the warm-up left settles
        pids = children(srv.pid)
        a0 = accepted(stats_port)  # first: the stats request is not counted
        m0, w0 = cpu_ticks(srv.pid), sum(cpu_ticks(p) for p in pids)
        reqs, out, bad = wrk(port, args, args.duration)
        m1, w1 = cpu_ticks(srv.pid), sum(cpu_ticks(p) for p in pids)
        a1 = accepted(stats_port)  # the stats listener's connections are not in it
        if children(srv.pid) != pids:
            raise RuntimeError("a worker was replaced during the run")
        conns = a1 - a0
        if bad:
            print(out, file=sys.stderr)
        return {
            "conns": conns,
            "reqs": reqs,
            "rps": reqs / args.duration,
            "master_us": (m1 - m0) * 1e6 / TICK / max(conns, 1),
            "workers_us": (w1 - w0) * 1e6 / TICK / max(conns, 1),
            "errors": bad,
        }
    finally:
        srv.send_signal(signal.SIGINT)
        try:
            srv.wait(10)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()
        log.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hugd", default=os.path.join(REPO, "build", "hugd"))
    ap.add_argument("--workers", default="2,8", help="comma-separated worker counts")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--logdir", default="/tmp")
    args = ap.parse_args()
    failed = False
    medians = []
    for w in [int(x) for x in args.workers.split(",")]:
        rows = []
        for r in range(args.rounds):
            try:
                row = one_round(args, w)
            except RuntimeError as e:
                print(f"-w {w} round {r + 1}: {e}", file=sys.stderr)
                failed = True
                continue
            failed |= row["errors"]
            rows.append(row)
            print(f"-w {w} round {r + 1}: {row['conns']} connections, {row['rps']:.0f} req/s, "
                  f"master {row['master_us']:.2f} us/conn, workers {row['workers_us']:.2f} us/conn"
                  + (" (wrk errors)" if row["errors"] else ""), flush=True)
        if rows:
            medians.append((w, statistics.median(x["master_us"] for x in rows),
                            statistics.median(x["workers_us"] for x in rows),
                            statistics.median(x["rps"] for x in rows)))
    for w, mu, wu, rps in medians:
        print(f"MEDIAN -w {w}: master {mu:.2f} us/conn, workers {wu:.2f} us/conn, {rps:.0f} req/s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
