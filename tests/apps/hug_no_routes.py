"""Imports hug but declares no route: no __hug_wsgi__."""
import hug  # noqa: F401

answer = 42
