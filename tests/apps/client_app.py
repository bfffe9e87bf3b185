"""Who the application thinks the client is, for the PROXY protocol and
forwarded-header tests.

/who                JSON: REMOTE_ADDR, REMOTE_PORT (null when unset),
                    wsgi.url_scheme, HTTP_X_FORWARDED_FOR, HTTP_FORWARDED,
                    HTTP_X_FORWARDED_PROTO (null when absent), and the pid
/short              "<REMOTE_ADDR>|<REMOTE_PORT> <pid>" (for tests/loadgen.py)
/slow?s=S&mark=F    creates the file F when it starts, sleeps S seconds, then
                    answers like /short
"""
import json
import os
import time
from urllib.parse import parse_qs


def _short(environ):
    return f"{environ.get('REMOTE_ADDR')}|{environ.get('REMOTE_PORT')} {os.getpid()}"


def application(environ, start_response):
    path = environ["PATH_INFO"]
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if path == "/who":
        body = json.dumps({
            "addr": environ.get("REMOTE_ADDR"),
            "port": environ.get("REMOTE_PORT"),
            "scheme": environ.get("wsgi.url_scheme"),
            "xff": environ.get("HTTP_X_FORWARDED_FOR"),
            "forwarded": environ.get("HTTP_FORWARDED"),
            "xfp": environ.get("HTTP_X_FORWARDED_PROTO"),
            "pid": os.getpid(),
        })
    elif path == "/slow":
        if "mark" in q:
            with open(q["mark"] + ".tmp", "w") as f:
                f.write(str(os.getpid()))
            os.rename(q["mark"] + ".tmp", q["mark"])
        time.sleep(float(q.get("s", "1")))
        body = _short(environ)
    else:
        body = _short(environ)
    data = body.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]
