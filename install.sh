#!/bin/bash
# evfuse installer for Raspberry Pi OS Bookworm and Debian 12. Run as root from the source tree:
#
#   sudo ./install.sh              install or upgrade (keeps /etc/evfuse/evfuse.toml)
#   sudo ./install.sh --uninstall  remove program and unit; keep config, state and user
#   sudo ./install.sh --purge      --uninstall, and remove config, state and the evfuse user
#   ./install.sh --root DIR        files go under DIR only; apt, users, ownership, the venv and
#                                  systemctl are not done but written to DIR/install-actions.log
#                                  (for tests and packaging)
#
# Running it again upgrades the program in place and restarts the service.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=""
ACTION=install
PURGE=0

usage() { sed -n '2,10s/^# \{0,1\}//p' "$0"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --root) ROOT=$(realpath -m "${2:?--root needs a directory}"); shift ;;
        --root=*) ROOT=$(realpath -m "${1#--root=}") ;;
        --uninstall) ACTION=uninstall ;;
        --purge) ACTION=uninstall; PURGE=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

OPT=/opt/evfuse
ETC=/etc/evfuse
STATE=/var/lib/evfuse
UNIT=/etc/systemd/system/evfuse.service
LINK=/usr/local/bin/evfuse

if [ -n "$ROOT" ]; then
    LOG="$ROOT/install-actions.log"
    mkdir -p "$ROOT"
    : >>"$LOG"
elif [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run as root (sudo ./install.sh), or use --root DIR for a dry install" >&2
    exit 1
fi

say() { echo "evfuse: $*"; }

# System changes: done for real, or only written to the log under --root.
sys() {
    if [ -n "$ROOT" ]; then
        echo "$*" >>"$LOG"
    else
        "$@"
    fi
}

install_packages() {
    say "installing packages"
    sys apt-get update -q
    sys apt-get install -y -q python3 python3-venv python3-pip
    # lgpio drives GPIO on the Pi 5 and on Bookworm; gpiozero finds it through the venv's
    # system site packages. Not on every Debian box, and not needed without [hardware].
    if [ -n "$ROOT" ] || apt-cache show python3-lgpio >/dev/null 2>&1; then
        sys apt-get install -y -q python3-lgpio
    fi
}

create_user() {
    # gpio exists on Raspberry Pi OS; elsewhere create it so SupplementaryGroups= resolves.
    if [ -n "$ROOT" ] || ! getent group gpio >/dev/null; then
        sys groupadd --system --force gpio
    fi
    if [ -n "$ROOT" ] || ! id evfuse >/dev/null 2>&1; then
        sys useradd --system --user-group --no-create-home --home-dir "$STATE" \
            --shell /usr/sbin/nologin --groups dialout,gpio evfuse
    fi
    sys usermod --append --groups dialout,gpio evfuse
    # The installer's own login may read `evfuse status` without sudo.
    if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
        sys usermod --append --groups evfuse "$SUDO_USER"
    fi
}

install_program() {
    say "installing the program in $OPT"
    mkdir -p "$ROOT$OPT/docs" "$ROOT$(dirname "$LINK")"
    if [ ! -x "$ROOT$OPT/venv/bin/python" ]; then
        sys python3 -m venv --system-site-packages "$OPT/venv"
    fi
    sys "$OPT/venv/bin/pip" install --quiet --upgrade "$SRC"
    install -m 0644 "$SRC/docs/diagnostics.md" "$ROOT$OPT/docs/diagnostics.md"
    ln -sfn "$OPT/venv/bin/evfuse" "$ROOT$LINK"
}

install_config() {
    mkdir -p "$ROOT$ETC"
    chmod 0750 "$ROOT$ETC"
    sys chown root:evfuse "$ETC"
    if [ -e "$ROOT$ETC/evfuse.toml" ]; then
        say "keeping $ETC/evfuse.toml"
        CONFIG_NEW=0
    else
        # It holds charger passwords: readable by root and the service only.
        install -m 0640 "$SRC/controller/evfuse.example.toml" "$ROOT$ETC/evfuse.toml"
        sys chown root:evfuse "$ETC/evfuse.toml"
        say "created $ETC/evfuse.toml from the example: edit it for this site"
        CONFIG_NEW=1
    fi
}

install_unit() {
    mkdir -p "$ROOT$(dirname "$UNIT")"
    install -m 0644 "$SRC/systemd/evfuse.service" "$ROOT$UNIT"
    sys systemctl daemon-reload
    sys systemctl enable evfuse.service
    if [ "$CONFIG_NEW" = 1 ]; then
        say "not started yet: edit $ETC/evfuse.toml, check it with"
        say "  evfuse check-config $ETC/evfuse.toml"
        say "then: sudo systemctl start evfuse"
    else
        sys systemctl restart evfuse.service
        say "running; see: evfuse status, journalctl -u evfuse -f"
    fi
}

uninstall() {
    say "removing evfuse"
    sys systemctl disable --now evfuse.service
    rm -f "$ROOT$UNIT" "$ROOT$LINK"
    sys systemctl daemon-reload
    rm -rf "$ROOT$OPT"
    if [ "$PURGE" = 1 ]; then
        rm -rf "$ROOT$ETC" "$ROOT$STATE"
        sys userdel evfuse
        say "removed config ($ETC), state ($STATE) and the evfuse user"
    else
        say "kept $ETC (config) and the evfuse user; --purge removes them"
    fi
}

if [ "$ACTION" = install ]; then
    install_packages
    create_user
    install_program
    install_config
    install_unit
else
    uninstall
fi
