#!/bin/bash
# Every test: the C unit tests (meson test), then the integration tests that
# start the real binary (pytest, with Debian's interpreter).
set -euo pipefail
cd "$(dirname "$0")/.."
meson test -C build --print-errorlogs
exec timeout -k 10 900 /usr/bin/python3 -m pytest -q -p no:cacheprovider tests "$@"
