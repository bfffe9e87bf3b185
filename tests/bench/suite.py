#!/usr/bin/python3
"""hugd benchmark suite: every scenario against every peer, one command.

Run with Debian's interpreter (it has python3-hug), from anywhere:

    /usr/bin/python3 tests/bench/suite.py [--quick] [--markdown FILE]
        [--out DIR] [--rounds 3] [--scenarios throughput,mixed,large,memory]
        [--servers hugd,gunicorn,gunicorn-gthread,uwsgi[,bjoern]]

Scenarios (see README.md in this directory):

  throughput  the Hug route of hello.py, keep-alive, 1 worker pinned to the
              server CPU, wrk -t1 on the client CPU, at -c16 and -c50
              (bench.py's runs), and the in-process ceiling
  mixed       slow and fast requests on the same connections, 4 workers,
              close and keepalive patterns (mixed.py's runs)
  large       a 10 MiB file through wsgi.file_wrapper and a 10 MiB body
              generated in 64 KiB chunks (large_app.py): MiB/s and the
              server's CPU time per MiB
  memory      a worker's USS and PSS after N requests, one server up at a
              time: hugd, gunicorn --preload, uWSGI

Every round runs every scenario for every server in turn (A B C A B C ...),
and the ceiling once, so drift hits all of them alike; the table gives
medians, min and max over rounds and hugd's ratio to each peer round by
round.  It is printed, written as markdown (--markdown, default
OUT/results.md), and drawn with gnuplot: OUT/throughput.png, OUT/latency.png.

Exit status: 0 ok; 1 a server returned errors / crashed / did not start;
2 usage or environment problem; 3 overall time limit hit; 130 interrupted.
Every server is stopped as a process tree on every exit path.
"""

import argparse
import copy
import http.client
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import mixed  # noqa: E402
from bench import HERE, ROOT, PY, App, BenchError  # noqa: E402

SCENARIOS = ("throughput", "mixed", "large", "memory")
PEERS = ("gunicorn", "gunicorn-gthread", "uwsgi")
LARGE = App("large_app.py", "large_app", "application")
LARGE_BYTES = 10 * 1024 * 1024
MIB = 1024.0 * 1024.0
# What a run costs besides its measured seconds: start, checks, stop.
RUN_OVERHEAD_S = 3.0

# Short names for the plots' x axes.
SHORT = {"gunicorn-gthread": "gthread", "gunicorn-preload": "gunicorn"}


# ------------------------------------------------------------------ helpers

def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def tree_cpu_seconds(pids):
    """utime + stime of the live processes `pids` (/proc/PID/stat)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                stat = f.read()
        except OSError:
            continue
        # fields after "comm)": state(3) ... utime(14) stime(15)
        rest = stat[stat.rfind(")") + 2:].split()
        total += int(rest[11]) + int(rest[12])
    return total / tick


def smaps_rollup(pid):
    """{field: kB} from /proc/PID/smaps_rollup, or None if it is gone."""
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    out = {}
    for line in lines[1:]:
        parts = line.split()
        if len(parts) >= 2 and parts[0].endswith(":"):
            out[parts[0][:-1]] = int(parts[1])
    return out


_SIZE = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3,
         "TB": 1024 ** 4}


def wrk_bytes_and_secs(raw):
    """Bytes read and seconds from wrk's "N requests in 5.00s, 9.8GB read"
    (wrk's units are binary).  The bytes include responses the run ended
    in the middle of, which the server spent CPU on as well."""
    m = re.search(r"\d+ requests in ([\d.]+)(\w+), ([\d.]+)(\w+) read", raw)
    if not m:
        raise BenchError("could not parse wrk output:\n" + raw)
    return (float(m.group(3)) * _SIZE[m.group(4)],
            bench._dur(m.group(1) + m.group(2)))


def uwsgi_worker_pids(log_path):
    """uWSGI's workers, as its log names them: the master's other children
    (the HTTP router) are not workers."""
    try:
        with open(log_path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [int(p) for p in
            re.findall(r"spawned uWSGI worker \d+ \(pid: (\d+)", text)]


def worker_pids(name, pr):
    if name.startswith("uwsgi"):
        return uwsgi_worker_pids(pr.log_path)
    if name == "bjoern":
        # one process: it is the worker
        return [pr.p.pid]
    # hugd and gunicorn: every child of the master is a worker
    return pr.workers()


def report_problems(r, name, what, rnd, keep_going):
    if not r["problems"]:
        return
    print("---- wrk output ----\n%s---- %s log tail (%s) ----\n%s\n----"
          % (r.get("raw", ""), name, r.get("log", ""), r.get("log_tail", "")),
          file=sys.stderr, flush=True)
    if not keep_going:
        raise BenchError("%s (%s) failed in round %d: %s"
                         % (name, what, rnd, "; ".join(r["problems"])))


# ---------------------------------------------------------------- scenarios

def throughput_run(name, ns, logdir, idx, lat_path):
    """bench.py's run: fresh server, keep-alive check, warm-up, wrk."""
    return bench.one_run(name, ns, logdir, idx, latency_out=lat_path)


def check_large(name, port, args):
    status, body, _ = bench.http_get(port, "/file", timeout=10)
    if status != 200 or len(body) != LARGE_BYTES:
        raise BenchError("%s: GET /file -> %d, %d bytes (want %d)"
                         % (name, status, len(body), LARGE_BYTES))


def large_run(name, path, ns, logdir, idx):
    """One server on large_app.py; wrk on `path`; MiB/s and server CPU."""
    pr = bench.start_server(name, ns, logdir, idx, app=LARGE,
                            check=check_large)
    problems = []
    try:
        if ns.warmup > 0:
            bench.run_wrk(pr.port, ns, ns.warmup, path=path)
        before = set(pr.workers())
        pids = pr.refresh()
        cpu0 = tree_cpu_seconds(pids)
        r = bench.run_wrk(pr.port, ns, ns.duration, path=path)
        cpu1 = tree_cpu_seconds(pids)
        problems += bench.run_problems(pr, r, before)
        nbytes, secs = wrk_bytes_and_secs(r["raw"])
        r["mib_s"] = nbytes / MIB / secs
        r["cpu_s"] = cpu1 - cpu0
        r["cpu_ms_per_mib"] = (1000.0 * r["cpu_s"] / (nbytes / MIB)
                               if nbytes else None)
        if not problems:
            try:
                check_large(name, pr.port, ns)
            except (OSError, http.client.HTTPException, BenchError) as e:
                problems.append("after run: %s" % e)
    finally:
        left = pr.stop()
        if left:
            problems.append("processes left behind after stop: %s" % left)
    r["problems"] = problems
    r["log"] = pr.log_path
    if problems:
        r["log_tail"] = pr.log_tail()
    return r


def memory_run(name, ns, n_requests, logdir, idx):
    """One server on hello.py, n_requests on one connection (a new one
    whenever the server closes it), then the worker's smaps_rollup."""
    pr = bench.start_server(name, ns, logdir, idx)
    problems = []
    r = {"raw": ""}
    try:
        conn = None
        failed = 0
        for _ in range(n_requests):
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", pr.port,
                                                  timeout=5)
            try:
                conn.request("GET", "/")
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    failed += 1
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                failed += 1
                conn.close()
                conn = None
        if conn is not None:
            conn.close()
        if failed:
            problems.append("%d of %d requests failed" % (failed, n_requests))
        # Let the last request's buffers go back before reading the maps.
        time.sleep(0.3)
        workers = worker_pids(name, pr)
        tree = sorted(p for p in pr.refresh() if bench._alive(p))
        maps = {p: smaps_rollup(p) for p in tree}
        wmaps = [maps[p] for p in workers if maps.get(p)]
        if not wmaps:
            problems.append("no worker found (tree %s, workers %s)"
                            % (tree, workers))
        else:
            r["workers"] = len(wmaps)
            # per worker: every run here has one, an average keeps it so
            r["uss_mib"] = sum(m.get("Private_Clean", 0) +
                               m.get("Private_Dirty", 0) +
                               m.get("Private_Hugetlb", 0)
                               for m in wmaps) / len(wmaps) / 1024.0
            r["pss_mib"] = sum(m.get("Pss", 0) for m in wmaps) / len(wmaps) / 1024.0
            r["rss_mib"] = sum(m.get("Rss", 0) for m in wmaps) / len(wmaps) / 1024.0
        r["processes"] = len([m for m in maps.values() if m])
        r["tree_pss_mib"] = sum(m.get("Pss", 0) for m in maps.values()
                                if m) / 1024.0
        if pr.p.poll() is not None:
            problems.append("server exited with %s" % pr.p.returncode)
    finally:
        left = pr.stop()
        if left:
            problems.append("processes left behind after stop: %s" % left)
    r["problems"] = problems
    r["log"] = pr.log_path
    if problems:
        r["log_tail"] = pr.log_tail()
    return r


# ------------------------------------------------------------------ cases

class Case:
    """One line of the plan: a scenario variant run for several servers."""

    def __init__(self, key, scenario, title, servers, seconds, run):
        self.key = key            # e.g. "tp-c16"
        self.scenario = scenario
        self.title = title
        self.servers = servers
        self.seconds = seconds    # measured + warm-up seconds of one run
        self.run = run            # run(server, round, idx) -> result dict


def build_cases(args, servers, logdir):
    base = argparse.Namespace(
        hugd=args.hugd, hugd_b=None, server_cpu=args.server_cpu,
        client_cpu=args.client_cpu, path="/", connections=16,
        duration=args.duration, warmup=args.warmup,
        start_timeout=args.start_timeout,
        gthread_threads=args.gthread_threads, bjoern_path=args.bjoern_path,
        ceiling_runs=1, ceiling_secs=args.ceiling_secs)
    cases = []
    if "throughput" in args.scenarios:
        for c in (16, 50):
            ns = copy.copy(base)
            ns.connections = c

            def run(s, rnd, idx, ns=ns, c=c):
                lat = os.path.join(logdir, "lat-c%d-%s-%d.txt" % (c, s, rnd))
                r = throughput_run(s, ns, logdir, idx, lat)
                r["latency_file"] = lat
                return r
            cases.append(Case("tp-c%d" % c, "throughput",
                              "throughput -c%d" % c, servers,
                              args.duration + args.warmup, run))
    if "mixed" in args.scenarios:
        mns = argparse.Namespace(
            workers=args.mixed_workers, duration=args.mixed_duration,
            warmup=args.warmup, connections=16, threads=2, fast_rate=0,
            slow_rate=6, fast_cpu_ms=1.0, slow_ms=300, wrk_timeout=10,
            hugd=args.hugd, start_timeout=args.start_timeout,
            gthread_threads=args.gthread_threads,
            bjoern_path=args.bjoern_path)
        for pat in mixed.ALL_PATTERNS:
            def run(s, rnd, idx, pat=pat):
                # mixed.py's servers and wrk are not pinned: they share every
                # CPU.  They inherit this script's affinity (the client CPU
                # alone), so it is widened for the run and narrowed again.
                os.sched_setaffinity(0, args.all_cpus)
                try:
                    return mixed.one_run(s, pat, mns, logdir, idx)
                finally:
                    os.sched_setaffinity(0, {args.client_cpu})
            cases.append(Case("mixed-" + pat, "mixed", "mixed, " + pat,
                              servers, args.mixed_duration + args.warmup, run))
    if "large" in args.scenarios:
        lns = copy.copy(base)
        lns.connections = args.large_connections
        lns.duration = args.large_duration
        for body, path in (("file", "/file"), ("gen", "/gen")):
            def run(s, rnd, idx, path=path):
                return large_run(s, path, lns, logdir, idx)
            cases.append(Case("large-" + body, "large",
                              "large, " + {"file": "10 MiB file_wrapper",
                                           "gen": "10 MiB generator"}[body],
                              servers, args.large_duration + args.warmup,
                              run))
    if "memory" in args.scenarios:
        # gunicorn imports the app in the master and forks only with
        # --preload, which is what hugd and uWSGI do by default: the fair
        # comparison of what a worker holds on its own.
        msrv = [{"gunicorn": "gunicorn-preload"}.get(s, s) for s in servers
                if s != "gunicorn-gthread"]

        def run(s, rnd, idx):
            return memory_run(s, base, args.memory_requests, logdir, idx)
        cases.append(Case("memory", "memory", "memory", msrv,
                          args.memory_requests / 1000.0, run))
    return cases


def run_line(case, s, rnd, r):
    """One progress line per run."""
    if case.scenario == "throughput":
        txt = "%8.0f req/s  p99 %-8s k-a %s" % (
            r["rps"], bench.fmt_lat(r["p99_s"]),
            "yes" if r["keepalive"] else "no")
    elif case.scenario == "mixed":
        txt = "%6.0f fast/s  fast p99 %s ms  max %s ms  slow %d" % (
            r["fast_rps"], mixed.fmt_ms(r["fast_p99"]),
            mixed.fmt_ms(r["fast_max"]), r["slow_done"])
    elif case.scenario == "large":
        txt = "%8.0f MiB/s  %.2f ms CPU/MiB" % (r["mib_s"],
                                               r["cpu_ms_per_mib"] or 0)
    else:
        txt = "worker USS %.1f MiB  PSS %.1f MiB  server PSS %.1f MiB" % (
            r.get("uss_mib", 0), r.get("pss_mib", 0), r["tree_pss_mib"])
    return "  round %d %-15s %-16s %s%s" % (
        rnd, case.key, s, txt,
        "  !! " + "; ".join(r["problems"]) if r["problems"] else "")


# ----------------------------------------------------------------- report

def ms(seconds):
    return None if seconds is None else seconds * 1e3


def fnum(v, fmt="%.0f"):
    return "-" if v is None else fmt % v


def mmm(vals, fmt="%.0f"):
    """(median, min, max) formatted, '-' for none."""
    vals = [v for v in vals if v is not None]
    if not vals:
        return "-", "-", "-"
    return (fmt % statistics.median(vals), fmt % min(vals), fmt % max(vals))


def per_round(hugd_runs, runs, key, invert=False):
    """hugd's value over the server's, round by round (same round = same
    machine state), as "a b c"; invert for lower-is-better reads the same
    way: above 1 means hugd did better."""
    by_round = {r["round"]: r.get(key) for r in runs}
    out = []
    for h in hugd_runs:
        v, hv = by_round.get(h["round"]), h.get(key)
        if v and hv:
            out.append((v / hv) if invert else (hv / v))
    return out


def ratio_cell(vals):
    if not vals:
        return "-"
    return " ".join("%.2f" % v for v in vals)


def table(rows, header):
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def markdown(cases, results, ceiling, args, meta):
    lines = ["# hugd benchmark suite", "",
             "%s; commit %s; %d round(s); %s; load average at start %s." % (
                 meta["date"], meta["commit"], args.rounds,
                 "--quick" if args.quick else "default durations",
                 meta["loadavg"]), ""]
    ratio_lines = []
    by_scn = {}
    for c in cases:
        by_scn.setdefault(c.scenario, []).append(c)

    if "throughput" in by_scn:
        lines += ["## Throughput: Hug route, keep-alive, 1 worker on CPU %d, "
                  "wrk -t1 on CPU %d, %d s runs" % (args.server_cpu,
                                                   args.client_cpu,
                                                   args.duration), ""]
        rows = []
        ceil_med = med(v for _, v in ceiling)
        for c in by_scn["throughput"]:
            res = results[c.key]
            hugd = res.get("hugd", [])
            gmed = med(r["rps"] for r in res.get("gunicorn", []))
            for s in c.servers:
                rs = res.get(s, [])
                if not rs:
                    continue
                m = mmm([r["rps"] for r in rs])
                smed = med(r["rps"] for r in rs)
                rows.append([c.key[3:], s, len(rs), m[0], m[1], m[2],
                             fnum(med(ms(r["p99_s"]) for r in rs), "%.2f"),
                             "yes" if all(r["keepalive"] for r in rs) else "no",
                             fnum(smed / gmed if gmed else None, "%.2f"),
                             fnum(smed / ceil_med if ceil_med else None,
                                  "%.2f"),
                             "-" if s == "hugd" else
                             ratio_cell(per_round(hugd, rs, "rps"))])
            if ceiling:
                vals = [v for _, v in ceiling]
                m = mmm(vals)
                hr = {r["round"]: r["rps"] for r in hugd}
                rows.append([c.key[3:], "ceiling", len(vals), m[0], m[1],
                             m[2], "-", "-",
                             fnum(ceil_med / gmed if gmed else None, "%.2f"),
                             "1.00", ratio_cell([hr[rnd] / v for rnd, v in
                                                 ceiling if rnd in hr])])
        lines += table(rows, ["conns", "server", "runs", "req/s median",
                              "min", "max", "p99 ms", "k-a", "x gunicorn",
                              "x ceiling", "hugd ÷ server, per round"])
        lines.append("")

    if "mixed" in by_scn:
        lines += ["## Mixed: fast (1 ms CPU) and slow (300 ms sleep) "
                  "requests on the same connections, %d workers, %d s runs"
                  % (args.mixed_workers, args.mixed_duration), ""]
        rows = []
        for c in by_scn["mixed"]:
            res = results[c.key]
            hugd = res.get("hugd", [])
            for s in c.servers:
                rs = res.get(s, [])
                if not rs:
                    continue
                n_fast = sum(r["n_fast"] for r in rs)
                f = mmm([r["fast_rps"] for r in rs])
                p99 = mmm([ms(r["fast_p99"]) for r in rs], "%.1f")
                rows.append([c.key[6:], s, len(rs),
                             "%s (%s–%s)" % f,
                             fnum(med(ms(r["fast_p50"]) for r in rs), "%.2f"),
                             "%s (%s–%s)" % p99,
                             fnum(med(ms(r["fast_max"]) for r in rs), "%.1f"),
                             "%.2f%%" % (100.0 * sum(r["fast_stalled"]
                                                     for r in rs) / n_fast)
                             if n_fast else "-",
                             sum(r["errors"] for r in rs),
                             "-" if s == "hugd" else
                             ratio_cell(per_round(hugd, rs, "fast_p99",
                                                  invert=True))])
        lines += table(rows, ["pattern", "server", "runs",
                              "fast/s median (min–max)", "p50 ms",
                              "p99 ms median (min–max)", "max ms", "stalled",
                              "err", "server p99 ÷ hugd p99, per round"])
        lines.append("")

    if "large" in by_scn:
        lines += ["## Large responses: 10 MiB each, keep-alive, wrk -t1 "
                  "-c%d, 1 worker on CPU %d, %d s runs"
                  % (args.large_connections, args.server_cpu,
                     args.large_duration), ""]
        rows = []
        for c in by_scn["large"]:
            res = results[c.key]
            hugd = res.get("hugd", [])
            for s in c.servers:
                rs = res.get(s, [])
                if not rs:
                    continue
                t = mmm([r["mib_s"] for r in rs])
                cpu = mmm([r["cpu_ms_per_mib"] for r in rs], "%.3f")
                rows.append([c.key[6:], s, len(rs), t[0], t[1], t[2],
                             cpu[0], cpu[1], cpu[2],
                             "-" if s == "hugd" else
                             ratio_cell(per_round(hugd, rs, "mib_s")),
                             "-" if s == "hugd" else
                             ratio_cell(per_round(hugd, rs, "cpu_ms_per_mib",
                                                  invert=True))])
        lines += table(rows, ["body", "server", "runs", "MiB/s median",
                              "min", "max", "CPU ms/MiB median", "min",
                              "max", "hugd ÷ server MiB/s, per round",
                              "server ÷ hugd CPU/MiB, per round"])
        lines.append("")

    if "memory" in by_scn:
        c = by_scn["memory"][0]
        res = results[c.key]
        hugd = res.get("hugd", [])
        lines += ["## Memory: one worker after %d requests to the Hug "
                  "route, no other server up" % args.memory_requests, ""]
        rows = []
        for s in c.servers:
            rs = res.get(s, [])
            if not rs:
                continue
            u = mmm([r.get("uss_mib") for r in rs], "%.1f")
            p = mmm([r.get("pss_mib") for r in rs], "%.1f")
            rows.append([s, len(rs), "%s (%s–%s)" % u, "%s (%s–%s)" % p,
                         fnum(med(r.get("rss_mib") for r in rs), "%.1f"),
                         "%s / %s" % (fnum(med(r["tree_pss_mib"] for r in rs),
                                           "%.1f"),
                                      fnum(med(r["processes"] for r in rs))),
                         "-" if s == "hugd" else
                         ratio_cell(per_round(hugd, rs, "uss_mib"))])
        lines += table(rows, ["server", "runs",
                              "worker USS MiB median (min–max)",
                              "worker PSS MiB median (min–max)",
                              "worker RSS MiB", "server PSS MiB / processes",
                              "hugd ÷ server USS, per round"])
        lines.append("")
        g = res.get("gunicorn-preload", [])
        hu, gu = med(r.get("uss_mib") for r in hugd), \
            med(r.get("uss_mib") for r in g)
        if hu and gu:
            ratio_lines.append(
                "hugd/gunicorn worker USS = %.2f (per round: %s)"
                % (hu / gu, ratio_cell(per_round(hugd, g, "uss_mib"))))

    # the headline ratios, one line each
    for key, label, field in (("tp-c16", "-c16 req/s", "rps"),
                              ("tp-c50", "-c50 req/s", "rps"),
                              ("large-file", "file MiB/s", "mib_s"),
                              ("large-gen", "generator MiB/s", "mib_s")):
        res = results.get(key)
        if not res or not res.get("hugd"):
            continue
        hv = med(r[field] for r in res["hugd"])
        parts = ["%s %.2f" % (s, hv / med(r[field] for r in res[s]))
                 for s in res if s != "hugd" and res[s] and
                 med(r[field] for r in res[s])]
        if key.startswith("tp") and ceiling:
            parts.append("ceiling %.2f" % (hv / med(v for _, v in ceiling)))
        if parts:
            ratio_lines.append("hugd %s ÷ %s" % (label, ", ".join(parts)))
    if ratio_lines:
        lines += ["RESULT:", ""] + ["* " + x for x in ratio_lines] + [""]
    return "\n".join(lines)


# ------------------------------------------------------------------- plots

def nines(p):
    """Percentile p (0-100) on a "number of nines" axis: 90 -> 1, 99 -> 2."""
    return -math.log10(max(1e-6, 1.0 - p / 100.0))


PCTS = (0, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 92.5, 95, 96, 97, 98,
        99, 99.5, 99.7, 99.9, 99.95, 99.99, 99.999)


def plot(cases, results, ceiling, outdir, args):
    """throughput.png: every round's value per server and the median;
    latency.png: latency against percentile.  Data files go to OUT/plot."""
    pdir = os.path.join(outdir, "plot")
    os.makedirs(pdir, exist_ok=True)
    tp_panels, lat_panels = [], []
    for c in cases:
        res = results[c.key]
        servers = [s for s in c.servers if res.get(s)]
        if c.scenario == "memory" or not servers:
            continue
        field, ylabel = {"throughput": ("rps", "requests/s"),
                         "mixed": ("fast_rps", "fast requests/s"),
                         "large": ("mib_s", "MiB/s")}[c.scenario]
        pts = os.path.join(pdir, c.key + "-rounds.dat")
        meds = os.path.join(pdir, c.key + "-median.dat")
        labels = list(servers)
        with open(pts, "w") as fp, open(meds, "w") as fm:
            for i, s in enumerate(servers):
                vals = [r[field] for r in res[s]]
                for j, v in enumerate(vals):
                    # spread rounds a little sideways so they do not overlap
                    fp.write("%g %g\n" % (i + (j - (len(vals) - 1) / 2) * 0.06,
                                          v))
                fm.write("%d %g\n" % (i, statistics.median(vals)))
            if c.scenario == "throughput" and ceiling:
                i = len(servers)
                labels.append("ceiling")
                for j, (_, v) in enumerate(ceiling):
                    fp.write("%g %g\n" % (i + (j - (len(ceiling) - 1) / 2)
                                          * 0.06, v))
                fm.write("%d %g\n" % (i, med(v for _, v in ceiling)))
        tp_panels.append((c.title, ylabel, labels, pts, meds))

        # latency percentiles: throughput from wrk (the median round of
        # each server), mixed from the fast requests' histograms of every
        # round together
        if c.scenario == "large":
            continue
        curves = []
        for s in servers:
            path = os.path.join(pdir, "%s-%s-latency.dat" % (c.key, s))
            if c.scenario == "throughput":
                rs = sorted(res[s], key=lambda r: r["rps"])
                src = rs[len(rs) // 2].get("latency_file")
                try:
                    with open(src) as f:
                        pairs = [tuple(map(float, ln.split()))
                                 for ln in f if ln.strip()]
                except (OSError, TypeError):
                    continue
                pairs = [(p, us / 1000.0) for p, us in pairs if p < 100]
            else:
                hist = {}
                for r in res[s]:
                    for v, n in r.get("hist_fast", {}).items():
                        hist[v] = hist.get(v, 0) + n
                if not hist:
                    continue
                pairs = [(p, mixed.pct(hist, p / 100.0) * 1000.0)
                         for p in PCTS]
            with open(path, "w") as f:
                for p, ms in pairs:
                    f.write("%g %g %g\n" % (nines(p), max(ms, 0.001), p))
            curves.append((s, path))
        if curves:
            lat_panels.append((c.title + (" (fast requests)"
                                          if c.scenario == "mixed" else ""),
                               curves))

    def q(s):
        return "'" + s.replace("'", "''") + "'"

    scripts = []
    if tp_panels:
        cols = 2
        rows = (len(tp_panels) + cols - 1) // cols
        out = os.path.join(outdir, "throughput.png")
        g = ["set terminal pngcairo noenhanced size %d,%d font ',9'" % (1000, 330 * rows),
             "set output %s" % q(out),
             "set multiplot layout %d,%d title %s" % (
                 rows, cols, q("hugd benchmark suite: every round (dots) "
                               "and the median (bars)")),
             "set yrange [0:*]", "set grid ytics", "unset key",
             "set boxwidth 0.5", "set style fill solid 0.35 noborder",
             "set xtics rotate by -20"]
        for title, ylabel, labels, pts, meds in tp_panels:
            g += ["set title %s" % q(title), "set ylabel %s" % q(ylabel),
                  "set xrange [-0.6:%g]" % (len(labels) - 0.4),
                  "set xtics (%s)" % ", ".join(
                      "%s %d" % (q(SHORT.get(s, s)), i)
                      for i, s in enumerate(labels)),
                  "plot %s using 1:2 with boxes lc rgb '#4477aa', "
                  "%s using 1:2 with points pt 7 ps 0.8 lc rgb '#222222'"
                  % (q(meds), q(pts))]
        g.append("unset multiplot")
        scripts.append((out, "\n".join(g) + "\n"))
    if lat_panels:
        cols = 2
        rows = (len(lat_panels) + cols - 1) // cols
        out = os.path.join(outdir, "latency.png")
        g = ["set terminal pngcairo noenhanced size %d,%d font ',9'" % (1000, 360 * rows),
             "set output %s" % q(out),
             "set multiplot layout %d,%d title %s" % (
                 rows, cols, q("latency by percentile (throughput: each "
                               "server's median round; mixed: every round)")),
             "set logscale y", "set grid", "set key top left",
             "set xlabel 'percentile'", "set ylabel 'ms'",
             "set xrange [0:5]",
             "set xtics ('50' %g, '90' 1, '99' 2, '99.9' 3, "
             "'99.99' 4, '99.999' 5)" % nines(50)]
        for title, curves in lat_panels:
            g += ["set title %s" % q(title),
                  "plot " + ", ".join(
                      "%s using 1:2 with linespoints pt 7 ps 0.4 lw 1.5 "
                      "title %s" % (q(path), q(SHORT.get(s, s)))
                      for s, path in curves)]
        g.append("unset multiplot")
        scripts.append((out, "\n".join(g) + "\n"))
    made = []
    for out, script in scripts:
        with open(os.path.splitext(out)[0] + ".gp", "w") as f:
            f.write(script)
        p = subprocess.run(["gnuplot"], input=script, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=60, check=False)
        if p.returncode != 0:
            print("warning: gnuplot failed for %s:\n%s" % (out, p.stdout),
                  file=sys.stderr)
        else:
            made.append(out)
    return made


# -------------------------------------------------------------------- main

QUICK = dict(rounds=1, duration=2, mixed_duration=2, large_duration=1,
             warmup=1, memory_requests=500, ceiling_secs=1.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run of about 2 minutes: %s" % ", ".join(
                        "%s=%s" % kv for kv in QUICK.items()))
    ap.add_argument("--scenarios", default=",".join(SCENARIOS),
                    help="comma list from %s" % ",".join(SCENARIOS))
    ap.add_argument("--servers",
                    help="comma list from hugd,%s,bjoern (default: all of "
                    "them, bjoern only when it can be imported)"
                    % ",".join(PEERS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=4,
                    help="seconds of each throughput run")
    ap.add_argument("--mixed-duration", type=int, default=4)
    ap.add_argument("--mixed-workers", type=int, default=4)
    ap.add_argument("--large-duration", type=int, default=2)
    ap.add_argument("--large-connections", type=int, default=4)
    ap.add_argument("--memory-requests", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=1,
                    help="seconds of unmeasured load before each run")
    ap.add_argument("--ceiling-secs", type=float, default=2.0,
                    help="seconds of the in-process loop, once a round")
    ap.add_argument("--hugd", default=os.path.join(ROOT, "build", "hugd"))
    ap.add_argument("--gthread-threads", type=int,
                    default=bench.GTHREAD_THREADS)
    ap.add_argument("--bjoern-path", metavar="DIR",
                    help="a bjoern build directory to import it from")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--start-timeout", type=float, default=20.0)
    ap.add_argument("--max-time", type=int, default=0,
                    help="overall limit in seconds (default: computed)")
    ap.add_argument("--keep-going", action="store_true",
                    help="record server errors and continue (still exits 1)")
    ap.add_argument("--out", metavar="DIR",
                    help="logs, data, PNGs, results.json (default: a new "
                    "temporary directory)")
    ap.add_argument("--markdown", metavar="FILE",
                    help="the table as markdown (default OUT/results.md)")
    args = ap.parse_args()
    if args.quick:
        # --quick sets what was not given explicitly on the command line
        given = {a.split("=")[0] for a in sys.argv[1:] if a.startswith("--")}
        for k, v in QUICK.items():
            if "--" + k.replace("_", "-") not in given:
                setattr(args, k, v)

    args.scenarios = [s.strip() for s in args.scenarios.split(",")
                      if s.strip()]
    for s in args.scenarios:
        if s not in SCENARIOS:
            ap.error("unknown scenario %r" % s)
    have_bjoern = bench.bjoern_available(args.bjoern_path)
    if args.servers:
        servers = [s.strip() for s in args.servers.split(",") if s.strip()]
        for s in servers:
            if s not in ("hugd",) + PEERS + ("bjoern",):
                ap.error("unknown server %r" % s)
        if "bjoern" in servers and not have_bjoern:
            ap.error("bjoern cannot be imported by %s (--bjoern-path DIR)"
                     % PY)
    else:
        servers = ["hugd"] + list(PEERS) + (["bjoern"] if have_bjoern else [])
    tools = ["taskset", "wrk"] + (["uwsgi"] if "uwsgi" in servers else [])
    for tool in tools:
        if not shutil.which(tool):
            ap.error("%s not found (apt-get install -y gunicorn uwsgi "
                     "uwsgi-plugin-python3 wrk)" % tool)
    if "hugd" in servers and not os.access(args.hugd, os.X_OK):
        ap.error("hugd binary not found at %s (build it, or --hugd PATH)"
                 % args.hugd)
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        print("warning: gnuplot not found (apt-get install -y gnuplot-nox): "
              "no PNGs", file=sys.stderr)
    args.all_cpus = os.sched_getaffinity(0)
    try:  # keep this script off the server CPU
        os.sched_setaffinity(0, {args.client_cpu})
    except OSError:
        pass

    outdir = args.out or tempfile.mkdtemp(prefix="hugd-suite-")
    logdir = os.path.join(outdir, "logs")
    os.makedirs(logdir, exist_ok=True)
    md_path = args.markdown or os.path.join(outdir, "results.md")

    # the 10 MiB file for large-file, and its size for the generator
    big = os.path.join(outdir, "large.bin")
    if "large" in args.scenarios:
        with open(big, "wb") as f:
            block = os.urandom(1024 * 1024)
            for _ in range(LARGE_BYTES // len(block)):
                f.write(block)
    os.environ["LARGE_FILE"] = big
    os.environ["LARGE_BYTES"] = str(LARGE_BYTES)

    cases = build_cases(args, servers, logdir)
    runs_per_round = sum(len(c.servers) for c in cases)
    estimate = args.rounds * (
        sum(len(c.servers) * (c.seconds + RUN_OVERHEAD_S) for c in cases) +
        (args.ceiling_secs + 2 if "throughput" in args.scenarios else 0))
    budget = args.max_time or int(estimate * 1.5 + 60)
    bench.arm_time_limit(budget)

    meta = {"date": time.strftime("%Y-%m-%d %H:%M"),
            "loadavg": " ".join(open("/proc/loadavg").read().split()[:3])}
    try:
        meta["commit"] = subprocess.run(
            ["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            timeout=10).stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        meta["commit"] = "?"
    print("hugd suite: scenarios=%s servers=%s rounds=%d (%d runs a round); "
          "server cpu %d, wrk cpu %d; output in %s (estimate %.0fs, time "
          "limit %ds)" % (",".join(args.scenarios), ",".join(servers),
                          args.rounds, runs_per_round, args.server_cpu,
                          args.client_cpu, outdir, estimate, budget),
          flush=True)

    results = {c.key: {s: [] for s in c.servers} for c in cases}
    ceiling = []   # (round, calls/s)
    failures = []
    t_start = time.monotonic()

    def body():
        idx = 0
        cns = argparse.Namespace(server_cpu=args.server_cpu, path="/",
                                 ceiling_runs=1,
                                 ceiling_secs=args.ceiling_secs)
        for rnd in range(1, args.rounds + 1):
            for c in cases:
                for s in c.servers:
                    idx += 1
                    r = c.run(s, rnd, idx)
                    r["round"] = rnd
                    results[c.key][s].append(r)
                    print(run_line(c, s, rnd, r), flush=True)
                    if r["problems"]:
                        failures.append((c.key, s, rnd))
                        report_problems(r, s, c.key, rnd, args.keep_going)
            if "throughput" in args.scenarios:
                # the same round as the servers' runs: same machine state
                v = bench.measure_ceiling(cns)[0]
                ceiling.append((rnd, v))
                print("  round %d %-15s %-16s %8.0f calls/s" %
                      (rnd, "ceiling", "in-process", v), flush=True)

    rc = bench.guarded(body, budget)
    if failures and rc == 0:
        rc = 1

    md = markdown(cases, results, ceiling, args, meta)
    print()
    print(md)
    with open(md_path, "w") as f:
        f.write(md + "\n")
    pngs = plot(cases, results, ceiling, outdir, args) if gnuplot else []
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump({
            "config": {k: v for k, v in vars(args).items()
                       if k != "all_cpus"},
            "servers": servers, "meta": meta, "exit": rc,
            "ceiling": [{"round": rnd, "calls_s": v} for rnd, v in ceiling],
            "results": {k: {s: [{x: y for x, y in r.items()
                                 if x not in ("raw", "hist_fast")}
                                for r in rs] for s, rs in v.items()}
                        for k, v in results.items()},
        }, f, indent=2)
    print("markdown: %s" % md_path)
    for p in pngs:
        print("plot: %s" % p)
    print("elapsed %.0fs%s" % (time.monotonic() - t_start,
                               "" if rc == 0 else ", exit %d" % rc))
    return rc


if __name__ == "__main__":
    sys.exit(main())
