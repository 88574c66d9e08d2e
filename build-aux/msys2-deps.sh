#!/bin/sh
# msys2-deps.sh [DIR]: what a native Windows build (MSYS2, MINGW64 or MINGW32 shell) needs besides
# MSYS2's own packages, in DIR (default ~/.cache/hostiocp/msys2):
#   DIR/winetest/include/wine/{test.h,debug.h}  Wine's test header and the debug header it includes;
#   DIR/idl/*.idl                               Wine's mscoree.idl and whatever it imports that the
#                                               MinGW headers lack (widl needs them; mingw-w64 ships
#                                               headers for mscoree, not its IDL).
# All come from the Wine source at the tag WINE_TAG (default wine-8.0: the upstream release that
# Debian 12's wine 8.0~repack, which the Linux set-up takes wine/test.h from, packages).
# Prints the configure arguments that use them.
set -eu
dir=${1:-${HOME}/.cache/hostiocp/msys2}
: "${WINE_TAG:=wine-8.0}"
base=https://gitlab.winehq.org/wine/wine/-/raw/$WINE_TAG
log() { printf 'msys2-deps: %s\n' "$*" >&2; }

fetch() { # $1 = path in the Wine tree, $2 = destination
    [ -s "$2" ] && return 0
    mkdir -p "$(dirname "$2")"
    log "fetching $1 ($WINE_TAG)"
    curl -fsSL --retry 3 -o "$2.part" "$base/$1"
    mv "$2.part" "$2"
}

fetch include/wine/test.h "$dir/winetest/include/wine/test.h"
fetch include/wine/debug.h "$dir/winetest/include/wine/debug.h"

: "${MINGW_PREFIX:=/mingw64}"
: "${WIDL:=widl}"
# An IDL file and, recursively, the imports that neither MinGW nor DIR/idl has.
fetch_idl() { # $1 = file name
    [ -f "$MINGW_PREFIX/include/$1" ] && return 0
    [ -s "$dir/idl/$1" ] && return 0
    fetch "include/$1" "$dir/idl/$1"
    for import in $(sed -n 's/^[ \t]*import[ \t]*"\([^"]*\)".*/\1/p' "$dir/idl/$1"); do
        fetch_idl "$import"
    done
}
mkdir -p "$dir/idl"
echo 'import "mscoree.idl";' > "$dir/idl/conftest.idl"
if ! "$WIDL" -I"$dir/idl" -h -o "$dir/idl/conftest.h" "$dir/idl/conftest.idl" >/dev/null 2>&1; then
    fetch_idl mscoree.idl
fi
rm -f "$dir/idl/conftest.idl" "$dir/idl/conftest.h"

# Native paths (C:/...) for the native tools; stdole2.tlb is Windows' own.
native() { cygpath -m "$1" 2>/dev/null || printf '%s' "$1"; }
tlbdir=$(native "${WINDIR:-C:/Windows}/System32")
echo "WINETEST_INCDIR=$(native "$dir/winetest/include") WIDL_IDLDIR=$(native "$dir/idl") WIDL_TLBDIR=$tlbdir"
