"""Imported by hello_hug.py: proves the target's folder is on sys.path."""
GREETING = "world"
