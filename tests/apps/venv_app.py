"""Reports which Python environment serves it: for the virtualenv tests."""
import json
import sys


def application(environ, start_response):
    try:
        import hug  # noqa: F401  (a system package: visible only with system site-packages)
        has_hug = True
    except ImportError:
        has_hug = False
    try:
        import onlyinvenv  # written into the test's virtualenv only
        where = onlyinvenv.WHERE
    except ImportError:
        where = None
    body = json.dumps({"prefix": sys.prefix, "base_prefix": sys.base_prefix,
                       "executable": sys.executable, "hug": has_hug, "onlyinvenv": where,
                       "path": sys.path}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
