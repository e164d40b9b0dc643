#!/bin/sh
# System set-up for nmmx's timing flow on a fresh Debian machine (run as root; idempotent).
#
# * installs OpenSTA (Debian package `opensta`, the `sta` command);
# * extracts only `osu018_stdcells.lib` from the Debian package `qflow-tech-osu018` into
#   $NMMX_LIB_DIR/osu018/ (default ~/.cache/nmmx/lib/osu018/), without installing qflow.
#
# The ASAP7 liberty set is not downloaded: it sits in ../shared/pdk/asap7 beside the
# clone (or $NMMX_ASAP7_DIR).  Nothing else is installed (no -dev packages, no recommends).
# Quiet unless something fails; a second run does nothing.
set -eu

lib_root="${NMMX_LIB_DIR:-${HOME:-/root}/.cache/nmmx/lib}"
osu_dir="$lib_root/osu018"
osu_lib="$osu_dir/osu018_stdcells.lib"

need_sta=1
command -v sta >/dev/null 2>&1 && need_sta=0
need_osu=1
[ -s "$osu_lib" ] && need_osu=0
[ "$need_sta" = 0 ] && [ "$need_osu" = 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "error: tools/setup-system.sh installs Debian packages and must run as root: sudo NMMX_LIB_DIR=\"$lib_root\" sh tools/setup-system.sh" >&2
    exit 2
fi

export DEBIAN_FRONTEND=noninteractive
# Quiet: apt's output is shown only when it fails.
apt_q() {
    log="$(mktemp)"
    if ! apt-get -qq -o=Dpkg::Use-Pty=0 "$@" >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
}

apt_q update
if [ "$need_sta" = 1 ]; then
    apt_q install -y --no-install-recommends opensta
fi
if [ "$need_osu" = 1 ]; then
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    # apt-get download writes into the current directory; _apt needs to be able to write it.
    chmod 0777 "$work"
    (cd "$work" && apt_q download qflow-tech-osu018)
    dpkg-deb -x "$work"/qflow-tech-osu018_*.deb "$work/root"
    found="$(find "$work/root" -name osu018_stdcells.lib -type f | head -n 1)"
    if [ -z "$found" ]; then
        echo "error: the package qflow-tech-osu018 holds no osu018_stdcells.lib" >&2
        exit 1
    fi
    mkdir -p "$osu_dir"
    # Atomic: copy beside the target, then rename into place.
    cp "$found" "$osu_lib.tmp.$$"
    mv -f "$osu_lib.tmp.$$" "$osu_lib"
    # A non-root user pointing NMMX_LIB_DIR at their own directory keeps owning it.
    if [ -n "${SUDO_UID:-}" ]; then
        chown -R "$SUDO_UID:${SUDO_GID:-$SUDO_UID}" "$lib_root" 2>/dev/null || true
    fi
fi
