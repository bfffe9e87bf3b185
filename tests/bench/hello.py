"""Minimal Hug app used by the hugd benchmark (tests/bench/bench.py).

Serve it with any WSGI server via the module attribute ``__hug_wsgi__``,
e.g. ``hugd hello.py``, ``gunicorn hello:__hug_wsgi__`` or
``uwsgi --wsgi-file hello.py --callable __hug_wsgi__``.
"""
import hug


@hug.get("/")
@hug.get("/hello")
def hello():
    return {"hello": "world"}
