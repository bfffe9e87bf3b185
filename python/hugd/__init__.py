"""The Python side of hugd: turning a command-line target into a WSGI callable."""

__all__ = ["loader"]
