#!/bin/bash
# Every test, as CI runs it (after tests/setup.sh):
#
#  1. build/: the C unit tests and the fuzz corpus replays (meson test), then
#     the integration tests that start the real binary (pytest, with Debian's
#     interpreter).
#  2. build-asan/ (clang, AddressSanitizer + UndefinedBehaviorSanitizer): the
#     same meson test and the whole pytest suite again, against
#     build-asan/hugd.  Every sanitizer report, from any process (the master,
#     a worker, a re-executed master), lands in a log file; any such file
#     fails the run, whatever the tests said.  Leak checking is off there:
#     the embedded interpreter keeps its memory until exit by design.
#  3. The libFuzzer targets (built in build-asan/ too): the request parser,
#     the INI configuration, the state handed across exec, the master's
#     reading of a health check (against the request parser) and the PROXY
#     protocol header (with the forwarded headers), the parser followed by
#     the environ and the application call in an embedded interpreter, each for
#     FUZZ_SECONDS (60) from its seed corpus in tests/fuzz/, leak checking
#     on.  A crash fails the run and leaves its input in build-asan/fuzz-*/.
#
# Arguments go to both pytest runs (e.g. -x, -k name).  SKIP_SANITIZERS=1
# stops after step 1 (a quicker run while developing).
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_SECONDS=${FUZZ_SECONDS:-60}

meson test -C build --print-errorlogs
timeout -k 10 900 /usr/bin/python3 -m pytest -q -p no:cacheprovider tests "$@"
if [ "${SKIP_SANITIZERS:-0}" = 1 ]; then
    exit 0
fi

if [ ! -f build-asan/build.ninja ]; then
    CC=clang meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false \
        -Dfuzzing=enabled
fi
meson compile -C build-asan

reports=$(mktemp -d /tmp/hugd-sanitizer.XXXXXX)
check_reports() {
    if compgen -G "$reports/*" > /dev/null; then
        echo "sanitizer reports ($1):" >&2
        for f in "$reports"/*; do
            echo "--- $f" >&2
            head -c 20000 "$f" >&2
        done
        exit 1
    fi
}
(
    export ASAN_OPTIONS="halt_on_error=1:detect_leaks=0:log_path=$reports/asan"
    export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$reports/ubsan"
    meson test -C build-asan --print-errorlogs
    HUGD_BIN="$PWD/build-asan/hugd" timeout -k 10 1200 \
        /usr/bin/python3 -m pytest -q -p no:cacheprovider tests "$@"
)
check_reports "sanitizer build"
rm -rf "$reports"

fuzz() {
    local name=$1 corpus=$2
    shift 2
    local work=build-asan/fuzz-$name
    rm -rf "$work"
    mkdir -p "$work/new"
    echo "fuzz_$name: ${FUZZ_SECONDS}s from $corpus"
    if ! build-asan/tests/fuzz/fuzz_"$name" -max_total_time="$FUZZ_SECONDS" -timeout=10 \
        -artifact_prefix="$work/" -print_final_stats=1 "$@" "$work/new" "$corpus" \
        > "$work/log" 2>&1; then
        grep -v '^\[' "$work/log" | tail -60 >&2
        echo "fuzz_$name found a crash: its input is in $work/" >&2
        exit 1
    fi
    grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::average_exec_per_sec)' \
        "$work/log" || true
}
fuzz http tests/fuzz/corpus -max_len=16384 -dict=tests/fuzz/http.dict
fuzz config tests/fuzz/config_corpus -max_len=4096
fuzz inherit tests/fuzz/inherit_corpus -max_len=4096
fuzz health tests/fuzz/health_corpus -max_len=4200 -dict=tests/fuzz/http.dict
fuzz proxy tests/fuzz/proxy_corpus -max_len=1024 -dict=tests/fuzz/proxy.dict
LSAN_OPTIONS="suppressions=$PWD/tests/fuzz/lsan_python.supp:print_suppressions=0" \
    fuzz environ tests/fuzz/environ_corpus -max_len=16384 -dict=tests/fuzz/http.dict
echo "fuzzing: 6 passed, 0 failed"
