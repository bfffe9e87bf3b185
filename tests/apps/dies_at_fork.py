"""Imports fine in the master; every worker dies as soon as it is forked."""
import os


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"never served\n"]


os.register_at_fork(after_in_child=lambda: os._exit(3))
