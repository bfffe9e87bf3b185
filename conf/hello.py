"""The example Hug API the README serves: `build/hugd conf/hello.py` (as root:
`build/hugd --allow-root conf/hello.py`)."""
import os

import hug


@hug.get("/")
def index():
    """What this is."""
    return {"server": "hugd", "try": ["/hello?name=you", "/pid", "POST /echo"]}


@hug.get("/hello")
def hello(name: hug.types.text = "world"):
    """A greeting."""
    return {"hello": name}


@hug.get("/pid")
def pid():
    """Which worker answered: run with -w 2 and watch it change under load."""
    return {"pid": os.getpid()}


@hug.post("/echo")
def echo(body):
    """The JSON body, sent back."""
    return body
