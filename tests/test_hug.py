"""A real Hug application, under each form of TARGET."""
import json

import pytest
import requests

from hugdtest import APPS


def check_hug_app(srv):
    r = requests.get(srv.url + "/hello", timeout=10)
    assert r.status_code == 200
    assert r.json() == {"hello": "world"}
    assert r.headers["Content-Type"].startswith("application/json")
    r = requests.post(srv.url + "/add", json={"a": 2, "b": 40}, timeout=10)
    assert r.status_code == 200 and r.json() == {"sum": 42}
    r = requests.post(srv.url + "/add", data={"a": "1", "b": "5"}, timeout=10)
    assert r.status_code == 200 and r.json() == {"sum": 6}
    r = requests.post(srv.url + "/add", json={"a": "x", "b": 1}, timeout=10)
    assert r.status_code == 400
    r = requests.get(srv.url + "/no/such/route", timeout=10)
    assert r.status_code == 404


def test_hug_app_py(hugd, workdir):
    srv = hugd.start([str(APPS / "hello_hug.py")], cwd=workdir)
    check_hug_app(srv)


def test_hug_relative_app_py(hugd):
    srv = hugd.start(["hello_hug.py"], cwd=APPS)
    check_hug_app(srv)


def test_hug_module_with_chdir(hugd, workdir):
    srv = hugd.start(["--chdir", str(APPS), "hello_hug"], cwd=workdir)
    check_hug_app(srv)


def test_hug_module_from_cwd(hugd):
    srv = hugd.start(["hello_hug"], cwd=APPS)
    check_hug_app(srv)


def test_hug_module_attr(hugd):
    srv = hugd.start(["-w", "2", "hello_hug:__hug_wsgi__"], cwd=APPS, workers=2)
    check_hug_app(srv)


def test_hug_keepalive_session(hugd):
    srv = hugd.start(["-w", "1", "hello_hug"], cwd=APPS, workers=1)
    with requests.Session() as sess:
        pids = {sess.get(srv.url + "/pid", timeout=10).json()["pid"] for _ in range(20)}
    assert pids == set(srv.children())
