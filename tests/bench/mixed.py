#!/usr/bin/python3
"""hugd mixed-load benchmark: do slow requests stall fast ones?

Run with Debian's interpreter (it has python3-hug):

    /usr/bin/python3 tests/bench/mixed.py [--rounds 3] [--duration 5]
        [--servers hugd,gunicorn,uwsgi] [--patterns close,keepalive]

The same Hug app (mixed_app.py) is served by hugd, gunicorn (sync) and uWSGI
(HTTP router), each with the same number of worker processes (--workers,
default 4).  One wrk process (mixed.lua) sends mostly GET /fast (about 1 ms
of CPU) and, at a fixed rate, GET /slow (a 300 ms sleep: blocking I/O) on the
same connections, and records each request's latency by kind.  Two client
patterns, reported separately:

  close      every request on a new connection (Connection: close), like
             many independent clients or nginx without upstream keep-alive;
  keepalive  persistent connections, like nginx with upstream keep-alive or
             a client's connection pool.

Reported per server and pattern: the FAST requests' latency percentiles and
rate, how many slow requests completed, and errors; medians over rounds of
alternating runs.  See README.md in this directory.

Exit status: 0 ok; 1 a server returned errors / crashed / did not start;
2 usage; 3 overall time limit hit; 130 interrupted.
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import (HERE, ROOT, GTHREAD_THREADS, App, BenchError,  # noqa: E402
                   Proc, arm_time_limit, bjoern_argv, bjoern_available,
                   check_keepalive, free_port, guarded, gunicorn_argv,
                   http_get, hugd_root, listen_overflows)

APP = App("mixed_app.py", "mixed_app", "__hug_wsgi__")
APP_FILE, APP_MODULE, CALLABLE = APP
LUA = os.path.join(HERE, "mixed.lua")

ALL_SERVERS = ("hugd", "gunicorn", "gunicorn-gthread", "uwsgi", "uwsgi-hs",
               "bjoern")
DEFAULT_SERVERS = "hugd,gunicorn,uwsgi"
ALL_PATTERNS = ("close", "keepalive")


# ------------------------------------------------------------------- servers

def server_argv(name, port, pattern, args):
    addr = "127.0.0.1:%d" % port
    w = str(args.workers)
    if name == "hugd":
        return [args.hugd] + hugd_root() + ["-w", w, "-b", addr, APP_FILE]
    if name == "gunicorn":
        return gunicorn_argv(addr, APP, args.workers)
    if name == "gunicorn-gthread":
        return gunicorn_argv(addr, APP, args.workers, "gthread",
                             args.gthread_threads)
    if name == "bjoern":
        return bjoern_argv(addr, APP, args.workers, args.bjoern_path)
    uw_common = ["--wsgi-file", APP_FILE, "--callable", CALLABLE,
                 "--processes", w, "--master", "--disable-logging",
                 "--die-on-term"]
    # uWSGI closes a connection the client asked to close (and --http-socket
    # closes every one) without saying "Connection: close" in an HTTP/1.1
    # response; wrk then counts a read error per request and reconnects out
    # of step.  --add-header makes it say so; only in runs where it closes
    # anyway (with the router it would also close keep-alive connections).
    if name == "uwsgi":
        # The HTTP router (one event-driven C process) holds the client
        # connections, keep-alive included, and passes each request to
        # whichever worker accepts it next on the internal socket.
        return ["uwsgi", "--plugin", "python3,http", "--http", addr,
                "--http-keepalive"] + uw_common + (
                    ["--add-header", "Connection: close"]
                    if pattern == "close" else [])
    if name == "uwsgi-hs":
        # Workers accept and speak HTTP themselves (no router); they close
        # every connection, like gunicorn's sync worker.
        return ["uwsgi", "--plugin", "python3", "--http-socket", addr,
                "--add-header", "Connection: close"] + uw_common
    raise ValueError(name)


def start_server(name, pattern, args, logdir, run_idx):
    port = free_port()
    argv = server_argv(name, port, pattern, args)
    env = dict(os.environ, MIXED_FAST_CPU_MS=str(args.fast_cpu_ms),
               MIXED_SLOW_MS=str(args.slow_ms))
    log = os.path.join(logdir, "%d-%s-%s.log" % (run_idx, name, pattern))
    pr = Proc(name, argv, HERE, log, term_signal=signal.SIGTERM, env=env)
    deadline = time.monotonic() + args.start_timeout
    last = None
    while time.monotonic() < deadline:
        if pr.p.poll() is not None:
            raise BenchError("%s exited with %s during startup:\n%s"
                             % (name, pr.p.returncode, pr.log_tail()))
        try:
            status, body, _ = http_get(port, "/fast?t=1")
            if status != 200 or json.loads(body) != {"k": "f", "t": "1"}:
                raise BenchError("%s: GET /fast -> %d %r"
                                 % (name, status, body[:200]))
            break
        except (OSError, http.client.HTTPException) as e:
            last = e
            time.sleep(0.1)
    else:
        pr.stop()
        raise BenchError("%s did not answer on port %d within %.0fs (%s):\n%s"
                         % (name, port, args.start_timeout, last,
                            pr.log_tail()))
    pr.port = port
    # every worker up (uWSGI/gunicorn fork theirs after the first answers)
    want = args.workers + (1 if name == "uwsgi" else 0)
    while time.monotonic() < deadline and len(pr.workers()) < want:
        time.sleep(0.1)
    time.sleep(0.3)
    pr.refresh()
    return pr


# ----------------------------------------------------------------------- wrk

def pct(hist, q):
    """q-quantile (0..1) of a {value: count} histogram (nearest rank)."""
    n = sum(hist.values())
    if not n:
        return None
    rank = max(1, int(q * n + 0.999999))
    acc = 0
    for v in sorted(hist):
        acc += hist[v]
        if acc >= rank:
            return v
    return max(hist)


def run_wrk(port, pattern, args, duration, logdir, tag):
    out_path = os.path.join(logdir, "wrk-%s.txt" % tag)
    try:
        os.unlink(out_path)
    except FileNotFoundError:
        pass
    argv = ["wrk", "-t%d" % args.threads, "-c%d" % args.connections,
            "-d%ds" % duration, "--timeout", "%ds" % args.wrk_timeout,
            "-s", LUA]
    if pattern == "close":
        argv += ["-H", "Connection: close"]
    argv.append("http://127.0.0.1:%d/" % port)
    think = (args.connections * 1000.0 / args.fast_rate
             if args.fast_rate > 0 else 0)
    env = dict(os.environ, MIXED_OUT=out_path, MIXED_THREADS=str(args.threads),
               MIXED_SLOW_RATE=str(args.slow_rate), MIXED_THINK_MS=str(think))
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       stdin=subprocess.DEVNULL, env=env,
                       timeout=duration + args.wrk_timeout + 30, check=False)
    raw = p.stdout.decode("utf-8", "replace")
    if p.returncode != 0 or not os.path.exists(out_path):
        raise BenchError("wrk failed (exit %d):\n%s" % (p.returncode, raw))
    hist = {"fast": {}, "slow": {}}
    r = {"raw": raw, "socket_errors": {}}
    with open(out_path) as f:
        for line in f:
            parts = line.split()
            if parts[0] in hist:
                v = float(parts[1]) / 1e6
                hist[parts[0]][v] = hist[parts[0]].get(v, 0) + int(parts[2])
            elif parts[0] == "count":
                r[parts[1]] = float(parts[2])
            elif parts[0] == "summary":
                kv = dict(x.split("=") for x in parts[1:])
                r["duration_s"] = int(kv["duration_us"]) / 1e6
                r["requests"] = int(kv["requests"])
                r["socket_errors"] = {k: int(kv[k]) for k in
                                      ("connect", "read", "write", "timeout")}
                r["status_errors"] = int(kv["status"])
    hf = hist["fast"]
    r["hist_fast"] = hf
    r["fast_p50"], r["fast_p90"], r["fast_p99"] = (pct(hf, q) for q in
                                                   (0.50, 0.90, 0.99))
    r["fast_max"] = r.get("max_fast", 0) / 1e6 if hf else None
    r["fast_rps"] = r["n_fast"] / r["duration_s"]
    r["slow_done"] = int(r["n_slow"])
    r["slow_p50"] = pct(hist["slow"], 0.5)
    # share of fast requests that waited longer than half a slow request
    lim = args.slow_ms / 2000.0
    r["fast_stalled"] = sum(c for v, c in hf.items() if v >= lim)
    r["errors"] = (sum(r["socket_errors"].values()) + int(r["bad_status"]) +
                   int(r["unmatched"]))
    return r


# ---------------------------------------------------------------------- runs

def one_run(name, pat, args, logdir, idx):
    """A fresh `name` server, warm-up, one measured wrk run, stop."""
    pr = start_server(name, pat, args, logdir, idx)
    problems = []
    r = None
    try:
        keepalive = check_keepalive(pr.port, "/fast?t=1")
        if args.warmup > 0:
            run_wrk(pr.port, pat, args, args.warmup, logdir,
                    "%d-%s-%s-warm" % (idx, name, pat))
        before = set(pr.workers())
        lo0 = listen_overflows()
        r = run_wrk(pr.port, pat, args, args.duration, logdir,
                    "%d-%s-%s" % (idx, name, pat))
        lo1 = listen_overflows()
        r["listen_overflows"] = (lo1 - lo0 if None not in (lo0, lo1)
                                 else None)
        after = set(pr.workers())
        pr.refresh()
        r["keepalive"] = keepalive
        if pr.p.poll() is not None:
            problems.append("server exited with %s" % pr.p.returncode)
        elif before != after:
            problems.append("worker processes changed during the run "
                            "(crash/respawn?): %s -> %s"
                            % (sorted(before), sorted(after)))
        if r["errors"]:
            problems.append("%d errors (socket %s, non-200 %d, "
                            "unrecognised body %d)"
                            % (r["errors"], r["socket_errors"],
                               r["bad_status"], r["unmatched"]))
        if not r["n_fast"]:
            problems.append("no fast request completed")
        if not problems:
            try:
                status, _, _ = http_get(pr.port, "/fast?t=2")
                if status != 200:
                    problems.append("after run: GET /fast -> %d" % status)
            except (OSError, http.client.HTTPException) as e:
                problems.append("after run: GET /fast failed: %s" % e)
    finally:
        left = pr.stop()
        if left:
            problems.append("processes left behind after stop: %s" % left)
    r["problems"] = problems
    r["log"] = pr.log_path
    if problems:
        r["log_tail"] = pr.log_tail()
    return r


def fmt_ms(s):
    if s is None:
        return "-"
    if s < 0.01:
        return "%.2f" % (s * 1e3)
    return "%.1f" % (s * 1e3)


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--servers", default=DEFAULT_SERVERS,
                    help="comma list from %s (default %s)"
                    % (",".join(ALL_SERVERS), DEFAULT_SERVERS))
    ap.add_argument("--patterns", default=",".join(ALL_PATTERNS),
                    help="comma list from %s" % ",".join(ALL_PATTERNS))
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5, help="seconds per run")
    ap.add_argument("--warmup", type=int, default=1,
                    help="seconds of unmeasured load before each run")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--fast-rate", type=float, default=0,
                    help="0 (default): closed loop, each connection sends "
                    "its next request as soon as it has the answer.  N: a "
                    "think time (exponential, mean connections/N) before "
                    "each request; wrk waits AFTER connecting, which ties "
                    "up a gunicorn sync / uwsgi-hs worker on an idle "
                    "connection, so only fair to servers that do not block "
                    "on one")
    ap.add_argument("--slow-rate", type=float, default=6,
                    help="slow requests/s, spread evenly over the run")
    ap.add_argument("--fast-cpu-ms", type=float, default=1.0)
    ap.add_argument("--slow-ms", type=float, default=300)
    ap.add_argument("--wrk-timeout", type=int, default=10,
                    help="wrk --timeout (s): longer counts as an error")
    ap.add_argument("--hugd", default=os.path.join(ROOT, "build", "hugd"))
    ap.add_argument("--gthread-threads", type=int, default=GTHREAD_THREADS,
                    help="threads per gunicorn-gthread worker")
    ap.add_argument("--bjoern-path", metavar="DIR",
                    help="a bjoern build to import (default: the installed one)")
    ap.add_argument("--start-timeout", type=float, default=20.0)
    ap.add_argument("--max-time", type=int, default=0,
                    help="overall limit in seconds (default: computed)")
    ap.add_argument("--keep-going", action="store_true",
                    help="record server errors and continue (still exits 1)")
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--logdir", help="server and wrk logs (default: temp)")
    args = ap.parse_args()

    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    patterns = [p.strip() for p in args.patterns.split(",") if p.strip()]
    for s in servers:
        if s not in ALL_SERVERS:
            ap.error("unknown server %r" % s)
    for p in patterns:
        if p not in ALL_PATTERNS:
            ap.error("unknown pattern %r" % p)
    for tool in ("wrk",) + (("uwsgi",) if any(
            s.startswith("uwsgi") for s in servers) else ()):
        if not shutil.which(tool):
            ap.error("%s not found (apt-get install -y gunicorn uwsgi "
                     "uwsgi-plugin-python3 wrk)" % tool)
    if "hugd" in servers and not os.access(args.hugd, os.X_OK):
        ap.error("hugd binary not found at %s" % args.hugd)
    if "bjoern" in servers and not bjoern_available(args.bjoern_path):
        ap.error("bjoern cannot be imported (--bjoern-path DIR for a build)")
    if args.slow_rate * args.slow_ms / 1000.0 >= args.workers:
        print("warning: slow requests alone (%.1f in flight) fill the %d "
              "workers" % (args.slow_rate * args.slow_ms / 1000.0,
                           args.workers), file=sys.stderr)

    # one round: every pattern, and in it every server in turn (A B C)
    plan = [(p, s) for p in patterns for s in servers
]
    per_round = len(plan) * (args.duration + args.warmup + 4)
    budget = args.max_time or int(args.rounds * per_round * 1.4 + 30)

    arm_time_limit(budget)

    logdir = args.logdir or tempfile.mkdtemp(prefix="hugd-mixed-")
    os.makedirs(logdir, exist_ok=True)
    think = (args.connections * 1000.0 / args.fast_rate
             if args.fast_rate > 0 else 0)
    print("hugd mixed bench: servers=%s patterns=%s workers=%d rounds=%d "
          "duration=%ds; wrk -t%d -c%d, fast: %.1f ms CPU, %s; slow: "
          "%.0f ms sleep at %.1f/s (%.1f in flight if never delayed); "
          "no CPU pinning (%d CPUs shared by servers and wrk); logs in %s "
          "(time limit %ds, estimate %.0fs)"
          % (",".join(servers), ",".join(patterns), args.workers,
             args.rounds, args.duration, args.threads, args.connections,
             args.fast_cpu_ms,
             "offered %.0f/s (think %.0f ms mean per connection)"
             % (args.fast_rate, think) if think else "closed loop",
             args.slow_ms, args.slow_rate,
             args.slow_rate * args.slow_ms / 1000.0, os.cpu_count() or 0,
             logdir, budget, args.rounds * per_round), flush=True)

    runs = {(s, p): [] for p, s in plan}
    failures = []
    rc = 0
    t_start = time.monotonic()

    def body():
        idx = 0
        for rnd in range(1, args.rounds + 1):
            for p, s in plan:
                idx += 1
                r = one_run(s, p, args, logdir, idx)
                r["round"] = rnd
                runs[(s, p)].append(r)
                print("  round %d %-16s %-9s fast p50 %6s p90 %6s p99 %6s "
                      "max %6s ms  %6.0f fast/s  slow %3d  err %d%s%s"
                      % (rnd, s, p, fmt_ms(r["fast_p50"]),
                         fmt_ms(r["fast_p90"]), fmt_ms(r["fast_p99"]),
                         fmt_ms(r["fast_max"]), r["fast_rps"],
                         r["slow_done"], r["errors"],
                         "  listen-overflows=%d" % r["listen_overflows"]
                         if r["listen_overflows"] else "",
                         "" if not r["problems"] else
                         "  !! " + "; ".join(r["problems"])), flush=True)
                if r["problems"]:
                    failures.append((s, p, rnd))
                    print("---- wrk output ----\n%s---- %s log tail (%s) "
                          "----\n%s\n----" % (r["raw"], s, r["log"],
                                              r.get("log_tail", "")),
                          file=sys.stderr, flush=True)
                    if not args.keep_going:
                        raise BenchError("%s/%s failed in round %d: %s"
                                         % (s, p, rnd,
                                            "; ".join(r["problems"])))

    rc = guarded(body, budget)
    if failures and rc == 0:
        rc = 1

    # ------------------------------------------------------------- report
    summary = {}
    for (s, p), rs in runs.items():
        if not rs:
            continue
        n_fast = sum(r["n_fast"] for r in rs)
        summary[(s, p)] = {
            "runs": len(rs),
            "fast_p50_s": med(r["fast_p50"] for r in rs),
            "fast_p90_s": med(r["fast_p90"] for r in rs),
            "fast_p99_s": med(r["fast_p99"] for r in rs),
            "fast_max_s": med(r["fast_max"] for r in rs),
            "fast_rps": med(r["fast_rps"] for r in rs),
            "slow_done": med(r["slow_done"] for r in rs),
            "slow_p50_s": med(r["slow_p50"] for r in rs),
            "fast_stalled_pct": 100.0 * sum(r["fast_stalled"] for r in rs)
            / n_fast if n_fast else None,
            "errors": sum(r["errors"] for r in rs),
            "keepalive": all(r["keepalive"] for r in rs),
        }
    print()
    hdr = ("%-16s %-9s %4s %8s %8s %8s %8s %8s %6s %7s %8s %4s %4s"
           % ("server", "pattern", "runs", "p50 ms", "p90 ms", "p99 ms",
              "max ms", "fast/s", "slow", "slow50", "stalled", "err",
              "k-a"))
    print("fast requests (medians over rounds); slow = slow requests "
          "completed per run, slow50 = their median latency (ms);\nstalled = "
          "fast requests that took >= %.0f ms (all rounds); k-a = server "
          "kept a connection open" % (args.slow_ms / 2))
    print(hdr)
    print("-" * len(hdr))
    for p in patterns:
        for s in servers:
            v = summary.get((s, p))
            if not v:
                continue
            print("%-16s %-9s %4d %8s %8s %8s %8s %8.0f %6.0f %7s %7.2f%% "
                  "%4d %4s" % (s, p, v["runs"], fmt_ms(v["fast_p50_s"]),
                               fmt_ms(v["fast_p90_s"]),
                               fmt_ms(v["fast_p99_s"]),
                               fmt_ms(v["fast_max_s"]), v["fast_rps"],
                               v["slow_done"], fmt_ms(v["slow_p50_s"]),
                               v["fast_stalled_pct"] or 0, v["errors"],
                               "yes" if v["keepalive"] else "no"))
    for p in patterns:
        h = summary.get(("hugd", p))
        peers = [(s, summary[(s, p)]) for s in servers
                 if s != "hugd" and (s, p) in summary]
        if not h or not peers or not h["fast_p99_s"]:
            continue
        print("RESULT %-9s hugd fast p99 %s ms vs %s" % (
            p + ":", fmt_ms(h["fast_p99_s"]), ", ".join(
                "%s %s ms (%s)" % (s, fmt_ms(v["fast_p99_s"]),
                                   "hugd %.2fx" % (h["fast_p99_s"] /
                                                   v["fast_p99_s"])
                                   if v["fast_p99_s"] else "-")
                for s, v in peers)))
    print("elapsed %.0fs%s" % (time.monotonic() - t_start,
                               "" if rc == 0 else ", exit %d" % rc))

    if args.json:
        out = {
            "config": {k: v for k, v in vars(args).items() if k != "json"},
            "summary": [dict(server=s, pattern=p, **v)
                        for (s, p), v in summary.items()],
            "runs": [dict(server=s, pattern=p,
                          **{k: v for k, v in r.items()
                             if k not in ("raw", "hist_fast")})
                     for (s, p), rs in runs.items() for r in rs],
            "exit": rc,
        }
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return rc


if __name__ == "__main__":
    sys.exit(main())
