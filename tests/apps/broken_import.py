"""Raises at import.  Each import appends the importing pid to
$HUGD_TEST_IMPORT_LOG so the test can count how often it was imported."""
import os

_log = os.environ.get("HUGD_TEST_IMPORT_LOG")
if _log:
    with open(_log, "a") as f:
        f.write(f"{os.getpid()}\n")

raise RuntimeError("hugd-test-import-failure-marker")
