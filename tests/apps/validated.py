"""A small app wrapped in wsgiref.validate.validator: any PEP 3333 violation by
the server (environ, wsgi.input, start_response, close()) shows up as an
AssertionError / WSGIWarning in the error log."""
import json
from wsgiref.validate import validator


def simple_app(environ, start_response):
    method = environ["REQUEST_METHOD"]
    path = environ["PATH_INFO"]
    if path == "/missing":
        body = b"nope"
        start_response("404 Not Found", [("Content-Type", "text/plain"),
                                         ("Content-Length", str(len(body)))])
        return [body]
    if method == "POST":
        n = int(environ.get("CONTENT_LENGTH") or 0)
        inp = environ["wsgi.input"]
        data = inp.read(n)
        body = json.dumps({"len": len(data), "data": data.decode("latin-1")}).encode()
    else:
        body = json.dumps({"path": path, "query": environ.get("QUERY_STRING", "")}).encode()
    environ["wsgi.errors"].write("")  # exercised by the validator
    environ["wsgi.errors"].flush()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    if path == "/gen":
        return iter([body[:5], body[5:]])
    return [body]


application = validator(simple_app)
