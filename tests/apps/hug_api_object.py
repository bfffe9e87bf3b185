"""Defines routes on an explicit hug.API object: `hug_api_object:api` is not a
WSGI callable (hug.API is not callable)."""
import hug

api = hug.API(__name__)


@hug.get("/x", api=api)
def x():
    return 1
