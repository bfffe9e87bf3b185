"""/slow sleeps 2 s, /fast answers at once; both return the worker pid."""
import os
import time


def application(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(2.0)
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
