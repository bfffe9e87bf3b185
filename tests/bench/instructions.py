#!/usr/bin/python3
"""Instructions per request, counted by callgrind (repeatable on a noisy
machine, where timings are not).

Three figures for the Hug route of tests/bench/hello.py, each the
difference between a run of --high and a run of --low calls, divided by
their difference (so start-up and import cancel out):

  served    a hugd worker (-w 1, --rebalance-after 0) answering keep-alive
            requests on one connection: everything in user space, the app,
            the Python objects hugd makes and hugd's C with llhttp and libev
  loop/hugd the app called from a Python loop inside hugd's interpreter
            (hugd --check-config on a file that runs the loop as it is
            imported): the app alone, on the libpython hugd links
  loop/python3 the same loop in /usr/bin/python3

served - loop/hugd is hugd's own work; loop/hugd - loop/python3 is what the
interpreter hugd links costs against Debian's own.  PYTHONHASHSEED is fixed,
as hash randomisation moves dict costs by a few hundred instructions.

    /usr/bin/python3 tests/bench/instructions.py
    /usr/bin/python3 tests/bench/instructions.py --hugd OTHER/build/hugd --headers 9
"""
import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

# What a browser-like client sends; --headers N takes the first N.
HEADERS = [("Host", "api.example.com"),
           ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"),
           ("Accept", "application/json"), ("Accept-Encoding", "gzip, deflate, br"),
           ("Accept-Language", "en-US,en;q=0.5"), ("Connection", "keep-alive"),
           ("X-Request-Id", "42"), ("Authorization", "Bearer abcdef0123456789"),
           ("Cache-Control", "no-cache")]

LOOP = r"""
import io, os, sys
sys.path.insert(0, %(here)r)
import warnings; warnings.simplefilter("ignore")
import hello
app = hello.__hug_wsgi__
base = {
    "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": "/",
    "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000",
    "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
    "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
    "wsgi.errors": sys.stderr, "wsgi.multithread": False,
    "wsgi.multiprocess": True, "wsgi.run_once": False,
}
for k, v in %(headers)r:
    base["HTTP_" + k.upper().replace("-", "_")] = v
status = []
def start_response(s, h, exc_info=None):
    status.append(s)
def call():
    env = dict(base); env["wsgi.input"] = io.BytesIO(b"")
    it = app(env, start_response)
    for chunk in it:
        pass
    close = getattr(it, "close", None)
    if close: close()
for _ in range(int(os.environ["LOOP_N"])): call()
assert status[-1].startswith("200"), status[-1]
__hug_wsgi__ = app
"""


def callgrind(argv, out, env=None):
    e = dict(os.environ, PYTHONHASHSEED="0", **(env or {}))
    subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out] + argv,
                   env=e, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=900)


def total(path):
    with open(path) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError("no totals in " + path)


def loop_count(argv, n, tmp, headers):
    src = os.path.join(tmp, "loop_app.py")
    with open(src, "w") as f:
        f.write(LOOP % {"here": HERE, "headers": headers})
    out = os.path.join(tmp, "loop.%d" % n)
    callgrind(argv + [src], out, {"LOOP_N": str(n)})
    return total(out)


def send_requests(port, n, request):
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    buf = b""
    for _ in range(n):
        s.sendall(request)
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                head = buf[:end].decode("latin-1").lower()
                m = re.search(r"\r\ncontent-length: *(\d+)", head)
                if not head.startswith("http/1.1 200") or not m:
                    raise RuntimeError("unexpected response: " + head[:200])
                if len(buf) >= end + 4 + int(m.group(1)):
                    buf = buf[end + 4 + int(m.group(1)):]
                    break
            data = s.recv(65536)
            if not data:
                raise RuntimeError("connection closed")
            buf += data
    s.close()


def served_count(hugd, n, tmp, request):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pattern = os.path.join(tmp, "served.%d.%%p" % n)
    e = dict(os.environ, PYTHONHASHSEED="0")
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + pattern, hugd, "--allow-root",
         "-w", "1", "--rebalance-after", "0", "-b", "127.0.0.1:%d" % port,
         os.path.join(HERE, "hello.py")], env=e, cwd=HERE, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                send_requests(port, 1, request)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("hugd did not start under valgrind")
                time.sleep(0.2)
        send_requests(port, n - 1, request)
    finally:
        proc.terminate()
        proc.wait(120)
    files = [f for f in os.listdir(tmp) if f.startswith("served.%d." % n)]
    pids = sorted(int(f.rsplit(".", 1)[1]) for f in files)
    # The worker is the master's child: the higher pid of the two.
    return total(os.path.join(tmp, "served.%d.%d" % (n, pids[-1])))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hugd", default=os.path.join(REPO, "build", "hugd"))
    ap.add_argument("--low", type=int, default=1000)
    ap.add_argument("--high", type=int, default=5000)
    ap.add_argument("--headers", type=int, default=1, help="request headers, 1 to %d (Host "
                    "first)" % len(HEADERS))
    args = ap.parse_args()
    headers = HEADERS[:max(1, min(args.headers, len(HEADERS)))]
    request = ("GET / HTTP/1.1\r\n" + "".join("%s: %s\r\n" % h for h in headers) +
               "\r\n").encode("latin-1")
    d = args.high - args.low
    with tempfile.TemporaryDirectory() as tmp:
        served = (served_count(args.hugd, args.high, tmp, request) -
                  served_count(args.hugd, args.low, tmp, request)) / d
        loop_h = (loop_count([args.hugd, "--check-config"], args.high, tmp, headers) -
                  loop_count([args.hugd, "--check-config"], args.low, tmp, headers)) / d
        loop_p = (loop_count(["/usr/bin/python3"], args.high, tmp, headers) -
                  loop_count(["/usr/bin/python3"], args.low, tmp, headers)) / d
    print("instructions per request, %d header(s), %s" % (len(headers), args.hugd))
    print("  served by hugd          %8.0f" % served)
    print("  loop in hugd            %8.0f" % loop_h)
    print("  loop in /usr/bin/python3 %7.0f" % loop_p)
    print("RESULT: hugd's own work %.0f (%.1f%% of the app); hugd's interpreter %+.1f%% "
          "against /usr/bin/python3; served %+.1f%% against the loop in /usr/bin/python3"
          % (served - loop_h, 100 * (served - loop_h) / loop_h, 100 * (loop_h / loop_p - 1),
             100 * (served / loop_p - 1)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
