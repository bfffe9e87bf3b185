"""A real Hug application."""
import os

import hug

from _apphelper import GREETING


@hug.get("/hello")
def hello():
    return {"hello": GREETING}


@hug.post("/add")
def add(a: hug.types.number, b: hug.types.number):
    return {"sum": a + b}


@hug.get("/pid")
def pid():
    return {"pid": os.getpid()}
