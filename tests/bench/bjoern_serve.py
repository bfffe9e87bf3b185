#!/usr/bin/python3
"""Serve a WSGI callable with bjoern, for the benchmarks' "bjoern" server.

    bjoern_serve.py [--path DIR] module:callable HOST PORT WORKERS

bjoern is one process with one event loop and leaves several processes to
its user: this listens once, then forks WORKERS processes that all run the
loop on the inherited socket (the kernel's accept queue picks who takes a
connection, as for gunicorn).  With one worker the process serves itself.
--path puts a bjoern build directory first on sys.path.  Run from the
application's directory.  Only used when bjoern is present: the benchmarks
never build it.
"""
import importlib
import os
import signal
import sys


def main():
    argv = sys.argv[1:]
    if argv[:1] == ["--path"]:
        sys.path.insert(0, argv[1])
        argv = argv[2:]
    target, host, port, workers = argv
    import bjoern
    sys.path.insert(0, os.getcwd())
    module, attr = target.split(":")
    app = getattr(importlib.import_module(module), attr)
    bjoern.listen(app, host, int(port))
    if int(workers) == 1:
        bjoern.run()
        return
    children = []
    for _ in range(int(workers)):
        pid = os.fork()
        if pid == 0:
            bjoern.run()
            os._exit(0)
        children.append(pid)

    # The benchmarks stop the whole process group; this is for a TERM sent
    # to this process alone.
    def stop(*_):
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    while children:
        pid, _ = os.wait()
        children.remove(pid)


if __name__ == "__main__":
    main()
