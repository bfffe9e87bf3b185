#!/bin/bash
# Install what hugd and its tests need on Debian 12 (as root), then build it into build/.
set -euo pipefail
cd "$(dirname "$0")/.."

# clang and libclang-rt-14-dev: the sanitizer build and the libFuzzer targets (tests/run.sh).
# haproxy, nginx-light and iproute2: tests/test_fleet.py (the proxies in front of several hugd
# hosts, each in a network namespace) and tests/test_proxy.py.
# python3-prometheus-client: tests/test_stats.py parses /metrics with it.
# tmux: tests/test_top.py runs `hugd top` in a terminal; gnuplot-nox draws
# tests/bench/scaling_plot.py's picture.
# systemd: `systemd-analyze verify` checks conf/hugd.service and hugd.socket
# (tests/test_conf.py; nothing is started); procps: the /bin/kill the
# service's ExecReload names.
# man-db: tests/test_man.py renders conf/hugd.1 with man.
# node-llhttp brings Node.js along: Debian ships llhttp's C sources and
# headers only in that package.
packages=(gcc pkg-config meson ninja-build python3-dev libev-dev libinih-dev node-llhttp
          python3-hug python3-falcon python3-pytest python3-requests locales
          clang libclang-rt-14-dev haproxy nginx-light iproute2 python3-prometheus-client
          tmux gnuplot-nox systemd procps man-db)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [ "$(id -u)" != 0 ]; then
        echo "setup: missing packages: ${missing[*]}; run as root (or with sudo)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # The tests run haproxy and nginx themselves, each with a configuration
    # of its own: the services these packages bring are not started now
    # (policy-rc.d, Debian's way to say so) nor, where systemd runs, at boot.
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod 755 "$policy"
        own_policy=1
    fi
    status=0
    apt-get install -y -q --no-install-recommends "${missing[@]}" || status=$?
    if ((own_policy)); then
        rm -f "$policy"
    fi
    ((status == 0)) || exit "$status"
    if [ -d /run/systemd/system ]; then
        for p in "${missing[@]}"; do
            case $p in
            haproxy) systemctl disable --now haproxy || true ;;
            nginx-light) systemctl disable --now nginx || true ;;
            esac
        done
    fi
fi

if [ ! -f build/build.ninja ]; then
    meson setup build
fi
meson compile -C build
