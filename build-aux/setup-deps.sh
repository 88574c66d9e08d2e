#!/bin/sh
# Installs everything hostiocp needs to build and test on Debian 12, idempotently:
# apt packages (MinGW-w64 for both targets, widl, Wine 32+64, autotools, wixl for the Windows
# Installer package, python3-yaml for the workflow check), check cross-built
# for both MinGW targets from Debian's source package, and wine/test.h from Debian's wine
# source package.  Third-party code goes to $HOSTIOCP_CACHE, never into the source tree.
set -eu

: "${HOSTIOCP_CACHE:=${XDG_CACHE_HOME:-${HOME:-/var/cache}/.cache}/hostiocp}"
export DEBIAN_FRONTEND=noninteractive

log() { printf 'setup: %s\n' "$*" >&2; }

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
            log "installing packages needs root (or sudo); missing: $*"; exit 1; fi
    else SUDO=; fi
}

PACKAGES="gcc-mingw-w64-x86-64-win32 gcc-mingw-w64-i686-win32 mingw-w64-tools mingw-w64-x86-64-dev
mingw-w64-i686-dev libwine-dev wine wine64 autoconf automake pkg-config make dpkg-dev xz-utils
ca-certificates wixl python3 python3-yaml"

missing_packages() {
    for p in $PACKAGES wine32:i386; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' || printf '%s ' "$p"
    done
}

have_deb_src() {
    grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ || grep -qs '^deb-src' /etc/apt/sources.list
}

install_packages() {
    missing=$(missing_packages)
    if [ -z "$missing" ] && have_deb_src; then return 0; fi
    need_root $missing
    if ! dpkg --print-foreign-architectures | grep -qx i386; then
        $SUDO dpkg --add-architecture i386
    fi
    if ! have_deb_src; then
        if [ -f /etc/apt/sources.list.d/debian.sources ]; then
            sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources |
                $SUDO tee /etc/apt/sources.list.d/hostiocp-debian-src.sources >/dev/null
        else
            grep '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' |
                $SUDO tee /etc/apt/sources.list.d/hostiocp-debian-src.list >/dev/null
        fi
    fi
    log "installing: ${missing:-(source lists only)}"
    # A mirror mid-sync can fail one index (seen: bookworm-security's i386 list); what the
    # install needs is still there, so carry on and let the install itself decide.
    $SUDO apt-get update -q >/dev/null 2>&1 || log "apt-get update reported errors; continuing"
    [ -n "$missing" ] || return 0
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -q --no-install-recommends $PACKAGES wine32:i386 >/dev/null || {
        # A mirror whose i386 security index lags behind amd64 leaves the Multi-Arch:same
        # libraries unmatchable; the release suite's versions always match.
        log "retrying wine32:i386 from the release suite"
        $SUDO apt-get install -y -q --no-install-recommends -t bookworm --allow-downgrades \
            $PACKAGES wine32:i386 >/dev/null
    }
}

fetch_source() { # $1 = source package; leaves the .dsc and tarballs in $HOSTIOCP_CACHE/src
    mkdir -p "$HOSTIOCP_CACHE/src"
    if ! ls "$HOSTIOCP_CACHE/src/$1"_*.dsc >/dev/null 2>&1; then
        (cd "$HOSTIOCP_CACHE/src" && apt-get source -q --download-only "$1" >/dev/null)
    fi
}

build_check() { # $1 = MinGW triplet
    prefix="$HOSTIOCP_CACHE/check-$1"
    [ -f "$prefix/lib/pkgconfig/check.pc" ] && return 0
    fetch_source check
    work="$HOSTIOCP_CACHE/build-check-$1"
    rm -rf "$work" && mkdir -p "$work"
    orig=$(ls "$HOSTIOCP_CACHE/src"/check_*.orig.tar.* | head -n 1)
    # The upstream tree: Debian's pkg-config patch names a -lcheck_pic that MinGW never builds.
    tar -xf "$orig" -C "$work"
    srcdir=$(ls -d "$work"/check-*/ | head -n 1)
    log "building check for $1"
    mkdir -p "$work/b"
    (cd "$work/b" && "$srcdir/configure" -q --host="$1" --prefix="$prefix" \
        --disable-shared --disable-subunit --disable-timeout-tests --disable-build-docs \
        --enable-fork=no >/dev/null &&
        make -j"$(nproc)" >/dev/null 2>&1 && make install >/dev/null 2>&1)
    rm -rf "$work"
}

fetch_winetest() {
    dest="$HOSTIOCP_CACHE/winetest/include"
    [ -f "$dest/wine/test.h" ] && return 0
    fetch_source wine
    orig=$(ls "$HOSTIOCP_CACHE/src"/wine_*.orig.tar.* | head -n 1)
    mkdir -p "$dest/wine"
    tar -xf "$orig" -O --wildcards '*/include/wine/test.h' > "$dest/wine/test.h.part"
    mv "$dest/wine/test.h.part" "$dest/wine/test.h"
    rm -f "$HOSTIOCP_CACHE/src"/wine_*   # 80+ MB we no longer need
}

# 32-bit Wine is made of i386 ELF programs.  Where the kernel cannot run them (IA-32 emulation
# off: ia32_emulation=0, or a kernel built without it), qemu-user runs them, registered with
# binfmt_misc for the whole machine.  Only qemu-user 10 or later runs 32-bit Wine's threads
# correctly (7.2, Debian 12's own, crashes as soon as two run at once), so it comes from
# bookworm-backports, and an older qemu-i386 entry is replaced.  The registration is gone after
# a reboot, so this is checked every time.  HOSTIOCP_FORCE_QEMU=1 registers qemu-user even where
# the kernel could run the programs itself, to try the emulated path on such a machine.
BACKPORTS=/etc/apt/sources.list.d/hostiocp-backports.sources
QEMU=/usr/bin/qemu-i386

install_qemu_user() {
    "$QEMU" --version 2>/dev/null | grep -Eq ' version ([1-9][0-9]+)\.' && return 0
    need_root qemu-user
    # A machine that lists bookworm-backports already keeps its own entry (a second one with
    # another Signed-By would stop apt).
    if [ ! -f "$BACKPORTS" ] &&
       ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' |
            $SUDO tee "$BACKPORTS" >/dev/null
    fi
    log "installing qemu-user from bookworm-backports"
    $SUDO apt-get update -q >/dev/null 2>&1 || log "apt-get update reported errors; continuing"
    $SUDO apt-get install -y -q --no-install-recommends -t bookworm-backports qemu-user >/dev/null
}

# Removes the i386 entry that i386-runner reports while it names an older (or unknown) qemu.
remove_old_qemu_entries() {
    while ! runner=$(sh "$(dirname "$0")/i386-runner"); do
        set -- $runner
        [ "$1" = qemu ] || return 0
        need_root "binfmt_misc"
        log "removing the binfmt_misc entry $4 ($3, qemu $2)"
        echo -1 | $SUDO tee "$4" >/dev/null
    done
}

enable_i386_programs() {
    binfmt=/proc/sys/fs/binfmt_misc
    force=${HOSTIOCP_FORCE_QEMU:-0}
    if [ ! -e "$binfmt/register" ] && { [ "$force" = 1 ] || ! /lib/ld-linux.so.2 --version >/dev/null 2>&1; }; then
        need_root "binfmt_misc"
        $SUDO mount -t binfmt_misc binfmt_misc "$binfmt"
    fi
    remove_old_qemu_entries
    case $(sh "$(dirname "$0")/i386-runner") in
    kernel) [ "$force" = 1 ] || return 0 ;;
    qemu*) return 0 ;;
    esac
    install_qemu_user
    need_root "binfmt_misc registration"
    log "registering $QEMU for i386 programs"
    $SUDO sh "$(dirname "$0")/i386-runner" register "$QEMU"
    runner=$(sh "$(dirname "$0")/i386-runner") ||
        { log "cannot run 32-bit Wine's threads: i386 programs run by: $runner"; exit 1; }
    log "i386 programs run under $runner"
}

install_packages
enable_i386_programs
build_check x86_64-w64-mingw32
build_check i686-w64-mingw32
fetch_winetest
log "dependencies ready in $HOSTIOCP_CACHE"
