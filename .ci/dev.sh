#!/usr/bin/env bash
# Development entry point: sets up .venv on first use (and again when pyproject.toml changes),
# then runs either the whole test suite (`test`) or an evfuse command (`demo`, `simulate`, ...).
# Works on a fresh Debian / Raspberry Pi OS machine with only python3: as root it installs the
# apt packages the venv and systemd-python need; otherwise it says which ones to install.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(python3-venv python3-dev gcc libsystemd-dev pkg-config)
apt_packages+=(mosquitto)  # MQTT tests start their own broker

ensure_system_packages() {
    command -v dpkg >/dev/null 2>&1 || return 0   # not Debian: trust the machine
    local missing=()
    for p in "${apt_packages[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    # python3-venv / python3-dev only matter when the interpreter lacks venv or headers.
    if python3 -c 'import ensurepip' >/dev/null 2>&1; then
        missing=("${missing[@]/python3-venv}")
    fi
    if [ -f "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ]; then
        missing=("${missing[@]/python3-dev}")
    fi
    local need=()
    for p in "${missing[@]}"; do [ -n "$p" ] && need+=("$p"); done
    [ ${#need[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ]; then
        echo "installing apt packages: ${need[*]}" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
        echo "missing apt packages: ${need[*]}" >&2
        echo "run: sudo apt-get install -y ${need[*]}" >&2
        exit 1
    fi
}

ensure_venv() {
    local stamp=.venv/.evfuse-installed want
    want=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ -x .venv/bin/python ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        return 0
    fi
    ensure_system_packages
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip >/dev/null
    .venv/bin/python -m pip install --quiet -e ".[test]"
    echo "$want" > "$stamp"
}

ensure_venv
case "${1:-}" in
    test)
        shift
        exec .venv/bin/python -m pytest "$@"
        ;;
    "")
        echo "usage: bash .ci/dev.sh test [PYTEST ARGS] | bash .ci/dev.sh EVFUSE-COMMAND [ARGS]" >&2
        exit 2
        ;;
    *)
        exec .venv/bin/evfuse "$@"
        ;;
esac
