#!/usr/bin/python3
"""Draw how the pool follows a burst: workers, busy workers and connections
waiting in the master's queue over time, from /stats samples of a real run.

    /usr/bin/python3 tests/bench/scaling_plot.py [--out tests/bench/scaling.png]

Runs build/hugd (or --hugd) with --min-workers 1 --max-workers 4
--idle-timeout 2 on tests/apps/supervised_app.py, samples GET /stats every
100 ms through 2 s idle, a 6 s burst (12 clients on a 200 ms route) and
8 s of light load (one request every 100 ms), writes the samples as CSV next
to the picture and draws it with gnuplot (Debian: gnuplot-nox).
"""
import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from loadgen import LoadGen  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stats(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        c.request("GET", "/stats")
        return json.loads(c.getresponse().read())
    finally:
        c.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hugd", default=os.path.join(ROOT, "build", "hugd"))
    p.add_argument("--out", default=os.path.join(HERE, "scaling.png"))
    a = p.parse_args()
    if not shutil.which("gnuplot"):
        sys.exit("gnuplot is needed: apt-get install -y gnuplot-nox")
    port, sport = free_port(), free_port()
    cmd = [a.hugd, "-b", f"127.0.0.1:{port}", "--stats-bind", f"127.0.0.1:{sport}", "-w", "1",
           "--min-workers", "1", "--max-workers", "4", "--idle-timeout", "2", "--log-level",
           "warning", "supervised_app:application"]
    if os.geteuid() == 0:
        cmd.insert(1, "--allow-root")
    srv = subprocess.Popen(cmd, cwd=os.path.join(ROOT, "tests", "apps"), start_new_session=True)
    samples, stop = [], threading.Event()
    try:
        for _ in range(100):
            try:
                stats(sport)
                break
            except OSError:
                time.sleep(0.05)
        t0 = time.monotonic()

        def sample():
            while not stop.is_set():
                s = stats(sport)
                ws = s["workers"]
                samples.append((time.monotonic() - t0, len(ws),
                                sum(w["state"] in ("busy", "queued") for w in ws),
                                s["master"]["queue"]["now"]))
                time.sleep(0.1)

        th = threading.Thread(target=sample)
        th.start()
        time.sleep(2)
        burst = [LoadGen("127.0.0.1", port, path="/sleep?s=0.2", threads=12, deadline=30).start()]
        time.sleep(6)
        for lg in burst:
            lg.stop()
        light = LoadGen("127.0.0.1", port, path="/pid", threads=1, pause=0.1, deadline=30).start()
        time.sleep(8)
        light.stop()
        stop.set()
        th.join()
        failed = sum(lg.failures for lg in burst + [light])
    finally:
        stop.set()
        os.killpg(srv.pid, 15)
        srv.wait(10)
    csv = os.path.splitext(a.out)[0] + ".csv"
    with open(csv, "w") as f:
        f.write("# seconds workers busy queued\n")
        for row in samples:
            f.write("%.2f %d %d %d\n" % row)
    script = f"""
set terminal pngcairo size 800,360 font ',10'
set output '{a.out}'
set title 'hugd --min-workers 1 --max-workers 4 --idle-timeout 2: idle, a burst of 12 clients on a 200 ms route, light load'
set xlabel 'seconds'
set ylabel 'count'
set yrange [0:*]
set key top right
set arrow from 2, graph 0 to 2, graph 1 nohead dt 2
set arrow from 8, graph 0 to 8, graph 1 nohead dt 2
plot '{csv}' using 1:2 with steps lw 2 title 'workers', \\
     '' using 1:3 with steps lw 1 title 'busy workers', \\
     '' using 1:4 with steps lw 1 title 'connections waiting in the master'
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    print(f"{a.out}: {len(samples)} samples, {failed} failed requests")


if __name__ == "__main__":
    main()
