#!/bin/sh
# msi-test.sh PACKAGE.msi BUILD64 BUILD32 WORKDIR
#
# Tests the Windows Installer package under Wine, in a fresh prefix cloned from the cached
# template (HOSTIOCP_WINE_TEMPLATE; without it a new prefix is booted):
#   broken    a truncated and a garbled package fail with an error exit code and change nothing;
#   install   msiexec /i /qn succeeds; the files are in place; the registry entries the package
#             adds under HKLM\Software\Classes are, in both views, exactly the ones regsvr32
#             (src/register.c) adds for the same two DLLs in another fresh prefix;
#   clients   the installed 64-bit and 32-bit host programs activate by CLSID and by ProgID
#             (both classes, versioned and version-independent) and move I/O;
#   upgrade   a package with the next version (built here with build-aux/make-msi.sh, so a new
#             ProductCode) installs over it and leaves exactly one product, the new one;
#   uninstall msiexec /x /qn succeeds and leaves HKLM\Software (64-bit and 32-bit views) and
#             drive C: as they were before the first install.
# Prints PASS/FAIL for each check, with the details of failures; exits 1 if one failed.
set -u

[ $# -eq 4 ] || { echo "usage: $0 PACKAGE.msi BUILD64 BUILD32 WORKDIR" >&2; exit 2; }
package=$1 build64=$2 build32=$3 work=$4
srcdir=$(cd "$(dirname "$0")/.." && pwd)
: "${WINE:=wine}" "${WINESERVER:=wineserver}"
# Wine's own tools go through the 64-bit loader where their 64-bit build sees what Windows would:
# Debian's `wine` starts the 32-bit one first, which costs seconds where qemu-user runs i386
# programs.  Wine 8's 64-bit reg and msiexec do not see or write the registry keys that WOW64
# shares between the views as a 32-bit process does, so the 32-bit view is exported by the
# 32-bit reg, and msiexec is the one Debian's `wine` starts, as before.
WINE64=/usr/lib/wine/wine64
[ -x "$WINE64" ] || WINE64=$WINE
export WINE WINESERVER WINEDEBUG=-all WINEDLLOVERRIDES='mscoree,mshtml='
unset DISPLAY WAYLAND_DISPLAY

failures=0 checks=0
pass() { checks=$((checks + 1)); echo "PASS: $1"; }
fail() { checks=$((checks + 1)); failures=$((failures + 1)); echo "FAIL: $1"; [ $# -lt 2 ] || printf '%s\n' "$2" | sed 's/^/    /'; }
check() { # $1 = description; the rest: a command that must succeed
    what=$1; shift
    if out=$("$@" 2>&1); then pass "$what"; else fail "$what (exit code $?)" "$out"; fi
}

command -v "$WINE" >/dev/null 2>&1 || { echo "SKIP: Wine is not installed"; exit 77; }
rm -rf "$work" && mkdir -p "$work" || exit 1
work=$(cd "$work" && pwd)
package=$(cd "$(dirname "$package")" && pwd)/$(basename "$package")

new_prefix() { # $1 = directory
    sh "$srcdir/build-aux/wine-prefix" "$1" "${HOSTIOCP_WINE_TEMPLATE:-}"
}
PREFIX=$work/prefix
new_prefix "$PREFIX" || { echo "FAIL: cannot make a Wine prefix in $PREFIX"; exit 1; }
export WINEPREFIX="$PREFIX"
trap '"$WINESERVER" -k 2>/dev/null' EXIT
C=$PREFIX/drive_c
PF64="$C/Program Files/hostiocp" PF32="$C/Program Files (x86)/hostiocp"

# A session that wine-run starts ends, as one that msiexec starts, 3 s after its last program:
# msiexec() waits for that end, when the server has written the registry to disk.
run() { WINE_RUN_LINGER=3 sh "$srcdir/build-aux/wine-run" "$@"; }
# msiexec through a batch file, so that the whole Windows exit code is seen (a Unix exit status
# keeps only its low byte: 1627 would read 91); sets msi_code and returns non-zero on failure.
printf '@echo off\r\nmsiexec %%*\r\necho msiexec-exit-code=%%ERRORLEVEL%%\r\n' > "$work/msiexec.bat"
winpath() { printf 'Z:%s' "$1" | tr / '\\'; }
# reg export of a key in view 64 or 32, as UTF-8 text on stdout ($3.reg is the scratch file).
reg_export() { # $1 = key, $2 = view, $3 = output
    if [ "$2" = 64 ]; then loader=$WINE64; else loader=$WINE; fi
    "$loader" reg export "$1" "$3.reg" /reg:$2 /y >/dev/null 2>&1 || echo "reg export of $1 (view $2) failed" >&2
    iconv -f UTF-16LE -t UTF-8 "$3.reg" | tr -d '\r' | sed '1s/^\xEF\xBB\xBF//'
    rm -f "$3.reg"
}
msiexec() { # $1 = /i | /x, $2 = package
    out=$("$WINE" cmd /c "$(winpath "$work/msiexec.bat")" "$1" "$(winpath "$2")" /qn 2>&1)
    status=$?
    "$WINESERVER" -w
    printf '%s\n' "$out" >> "$work/msiexec.out"
    msi_code=$(printf '%s\n' "$out" | tr -d '\r' | sed -n 's/^msiexec-exit-code=//p')
    : "${msi_code:=unknown (exit status $status)}"
    [ "$msi_code" = 0 ]
}

# HKLM\Software in both views and everything on C:, as sorted text.  Windows Installer's own
# containers (Software\Classes\Installer\{Features,Products,UpgradeCodes},
# Software\Microsoft\Windows\CurrentVersion\Installer\{UpgradeCodes,UserData\S-1-5-18\...}) stay
# behind, empty, once msiexec has run at all; they are its state, not the package's: left out
# while empty, any key under them counts.
snapshot() { # $1 = name
    for view in 64 32; do
        reg_export 'HKLM\Software' $view "$work/$1.$view" |
            awk -v RS= -v ORS='\n\n' '
                /^\[HKEY_LOCAL_MACHINE\\Software\\(Classes\\)?Installer(\\(Features|Products|UpgradeCodes|Components|Patches|Assemblies|Win32Assemblies|Managed|LocalPackages))?\]$/ { next }
                /^\[HKEY_LOCAL_MACHINE\\Software\\Microsoft\\Windows\\CurrentVersion\\Installer\\(UpgradeCodes|UserData|UserData\\S-1-5-18|UserData\\S-1-5-18\\(Components|Products))\]$/ { next }
                { print }' > "$work/$1.$view.txt"
    done
    # Every file and directory, with the files' sizes; msiexec's cache folder C:\windows\Installer
    # counts only once it holds something.
    (cd "$C" && find . \( -type d -printf 'd %p\n' \) -o -printf '%y %p %s\n' | LC_ALL=C sort |
        grep -vx 'd ./windows/Installer') > "$work/$1.files"
}
# Keys (with their values) in $2's view $3 that are not in $1's, as .reg text.
added_keys() {
    awk -v RS= 'NR == FNR { seen[$0] = 1; next } !($0 in seen) { print; print "" }' \
        "$work/$1.$3.txt" "$work/$2.$3.txt"
}
same_state() { # $1, $2 = snapshot names: prints the differences, fails if there are any
    status=0
    for view in 64 32; do
        if ! d=$(diff "$work/$1.$view.txt" "$work/$2.$view.txt"); then
            printf 'registry (view %s):\n%s\n' "$view" "$d" | head -n 60; status=1
        fi
    done
    if ! d=$(diff "$work/$1.files" "$work/$2.files"); then
        printf 'files on C: (type path size):\n%s\n' "$d" | head -n 60; status=1
    fi
    return $status
}

echo "msi-test: $(basename "$package") in $PREFIX"
snapshot before

# ---- broken packages: an error exit code, nothing changed ----
size=$(wc -c < "$package")
head -c $((size / 2)) "$package" > "$work/truncated.msi"
cp "$package" "$work/garbled.msi"
# Overwrite the compound file's header and first sectors: no valid database is left.
dd if=/dev/zero of="$work/garbled.msi" bs=512 seek=0 count=8 conv=notrunc 2>/dev/null
for broken in truncated garbled; do
    if msiexec /i "$work/$broken.msi"; then fail "msiexec /i $broken.msi /qn exited 0"
    else pass "msiexec /i $broken.msi /qn fails (exit code $msi_code)"; fi
    snapshot "after-$broken"
    check "msiexec /i $broken.msi leaves the registry and the files unchanged" same_state before "after-$broken"
done

# ---- install ----
if msiexec /i "$package"; then pass "msiexec /i $(basename "$package") /qn (exit code 0)"
else fail "msiexec /i $(basename "$package") /qn exited $msi_code" "$(tail -n 20 "$work/msiexec.out")"; fi
snapshot installed

files_in_place() {
    status=0
    for f in "$PF64/hostiocp.dll" "$PF32/hostiocp.dll" "$PF64/hostiocp-host.exe" "$PF32/hostiocp-host.exe" \
             "$PF64/hostiocp-bench.exe" "$PF32/hostiocp-bench.exe" "$PF64/include/hostiocp.h" \
             "$PF64/include/hostiocp.idl" "$PF64/lib/hostiocp.tlb" "$PF64/lib/pkgconfig/hostiocp.pc" \
             "$PF32/include/hostiocp.h" "$PF32/lib/hostiocp.tlb" "$PF32/lib/pkgconfig/hostiocp.pc"; do
        [ -f "$f" ] || { echo "missing: $f"; status=1; }
    done
    cmp "$PF64/hostiocp.dll" "$build64/hostiocp.dll" || status=1
    cmp "$PF32/hostiocp.dll" "$build32/hostiocp.dll" || status=1
    for bits in 64 32; do
        eval "b=\$build$bits dir=\$PF$bits"
        if [ -f "$b/hostiocp.manifest" ]; then
            cmp "$dir/hostiocp.manifest" "$b/hostiocp.manifest" || status=1
        fi
    done
    return $status
}
check "the DLLs, programs and SDK files are installed (64-bit and 32-bit)" files_in_place

# The reference: what regsvr32 adds, in another fresh prefix, for the same DLLs at the same paths.
reference() {
    ref=$work/refprefix
    new_prefix "$ref" || return 1
    (
        export WINEPREFIX="$ref"
        WORK=$work PREFIX=$ref
        mkdir -p "$ref/drive_c/Program Files/hostiocp" "$ref/drive_c/Program Files (x86)/hostiocp"
        cp "$build64/hostiocp.dll" "$ref/drive_c/Program Files/hostiocp/"
        cp "$build32/hostiocp.dll" "$ref/drive_c/Program Files (x86)/hostiocp/"
        "$WINE64" 'C:\windows\system32\regsvr32.exe' /s 'C:\Program Files\hostiocp\hostiocp.dll' &&
        "$WINE" 'C:\windows\syswow64\regsvr32.exe' /s 'C:\Program Files (x86)\hostiocp\hostiocp.dll' &&
        "$WINESERVER" -w || { echo "regsvr32 failed"; exit 1; }
        for view in 64 32; do
            reg_export 'HKLM\Software\Classes' $view "$work/regsvr32.$view" |
                awk -v RS= -v ORS='\n\n' '{ print }' > "$work/regsvr32.$view.txt"
        done
        "$WINESERVER" -k
    ) || return 1
    status=0
    for view in 64 32; do
        # Both sides relative to the same template: keys added, minus Windows Installer's own.
        added_keys before regsvr32 $view > "$work/regsvr32-added.$view"
        added_keys before installed $view | awk -v RS= -v ORS='\n\n' \
            '/^\[HKEY_LOCAL_MACHINE\\Software\\Classes\\/ && !/^\[HKEY_LOCAL_MACHINE\\Software\\Classes\\Installer\\/' \
            > "$work/msi-added.$view"
        if ! d=$(diff "$work/regsvr32-added.$view" "$work/msi-added.$view"); then
            printf 'view %s: < regsvr32, > msiexec\n%s\n' "$view" "$d"; status=1
        fi
        n=$(grep -c '^\[' "$work/msi-added.$view")
        echo "view $view: the package added $n keys under HKLM\\Software\\Classes"
        [ "$n" -gt 20 ] || { echo "too few keys"; status=1; }
    done
    return $status
}
check "the registration under HKLM\\Software\\Classes (64-bit and 32-bit views) equals regsvr32's" reference
for view in 64 32; do
    [ ! -f "$work/msi-added.$view" ] ||
        echo "    view $view: $(grep -c '^\[' "$work/msi-added.$view") keys added under HKLM\\Software\\Classes"
done

# ---- clients: both bitnesses, by CLSID and by ProgID, activating and moving I/O ----
client() { # $1 = 64 | 32, then the host program's arguments; output must show success
    bits=$1; shift
    eval "dir=\$PF$bits"
    out=$(export WINE_RUN_FAIL_ON_CRASH=1; run "$dir/hostiocp-host.exe" "$@" 2>&1)
    status=$?
    echo "${out:-(the program printed nothing)}"
    [ "$status" -eq 0 ] || { echo "hostiocp-host.exe exited with $status"; return 1; }
    case " $* " in
        *" --activate-only "*) echo "$out" | grep -q "^$bits-bit process: .*IHostIoCompletionManager" ;;
        *) echo "$out" | grep -q 'all bytes verified' ;;
    esac
}
for bits in 64 32; do
    check "$bits-bit client activates CLSID_HostIoCpHostControl" client $bits --activate-only
    for progid in HostIoCp.HostControl HostIoCp.HostControl.1 HostIoCp.IoCompletionManager \
                  HostIoCp.IoCompletionManager.1; do
        check "$bits-bit client activates ProgID $progid" client $bits --activate-only --progid $progid
    done
    check "$bits-bit client moves I/O through the class activated by CLSID (file-copy, pipe)" \
        client $bits --quiet --workload file-copy --workload pipe --size 1M --duration 0.5
    check "$bits-bit client moves I/O through the class activated by ProgID (posted, tcp)" \
        client $bits --quiet --progid HostIoCp.HostControl --workload posted --workload tcp --duration 0.5
done

# ---- upgrade: version N+1 replaces N ----
version=$(echo "$package" | sed -n 's/.*hostiocp-\([0-9.]*\)\.msi$/\1/p')
next=$(echo "$version" | awk -F. '{ printf "%d.%d.%d", $1, $2, $3 + 1 }')
products() { # "ProductCode DisplayVersion" for every installed product named hostiocp
    "$WINE64" reg query 'HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall' /s /reg:64 2>/dev/null | tr -d '\r' |
        awk '/^HKEY/ { key = $0; sub(/.*\\/, "", key) } $1 == "DisplayName" { name[key] = $3 }
             $1 == "DisplayVersion" { ver[key] = $3 } END { for (k in name) if (name[k] == "hostiocp") print k, ver[k] }'
}
if [ -z "$version" ]; then
    fail "cannot tell the version from the package name $(basename "$package")"
elif ! out=$(mkdir -p "$work/next" &&
             sh "$srcdir/build-aux/make-msi.sh" "$work/next/hostiocp-$next.msi" "$next" "$build64" "$build32" 2>&1); then
    fail "building the $next package" "$out"
else
    before_upgrade=$(products)
    if msiexec /i "$work/next/hostiocp-$next.msi"; then pass "msiexec /i hostiocp-$next.msi /qn over $version (exit code 0)"
    else fail "msiexec /i hostiocp-$next.msi /qn exited $msi_code" "$(tail -n 20 "$work/msiexec.out")"; fi
    after_upgrade=$(products)
    old_code=$(echo "$before_upgrade" | awk '{ print $1 }')
    if [ "$(echo "$before_upgrade" | grep -c .)" = 1 ] && [ "$(echo "$after_upgrade" | grep -c .)" = 1 ] &&
       [ "$(echo "$after_upgrade" | awk '{ print $2 }')" = "$next" ] &&
       [ "$(echo "$after_upgrade" | awk '{ print $1 }')" != "$old_code" ]; then
        pass "exactly one product after the upgrade: $after_upgrade (was: $before_upgrade)"
    else
        fail "after installing $next over $version the products are not exactly one, $next" \
            "before: ${before_upgrade:-none}
after: ${after_upgrade:-none}"
    fi
    check "the upgraded installation is complete" files_in_place
    check "64-bit client activates after the upgrade" client 64 --activate-only --progid HostIoCp.HostControl
    check "32-bit client activates after the upgrade" client 32 --activate-only --progid HostIoCp.HostControl
    # And back: the older package must refuse to replace the newer one.
    if ! msiexec /i "$package" && [ "$(products)" = "$after_upgrade" ]; then
        pass "msiexec /i of the older $version over $next is refused (exit code $msi_code)"
    else fail "the older $version installed over $next (exit code $msi_code)" "products: $(products)"; fi
    package=$work/next/hostiocp-$next.msi
fi

# ---- uninstall: everything the package added is gone, nothing else ----
if msiexec /x "$package"; then pass "msiexec /x $(basename "$package") /qn (exit code 0)"
else fail "msiexec /x $(basename "$package") /qn exited $msi_code" "$(tail -n 20 "$work/msiexec.out")"; fi
snapshot uninstalled
check "after uninstalling, HKLM\\Software (both views) and C: are as before the install" same_state before uninstalled
left=$(products)
if [ -z "$left" ]; then pass "no hostiocp product is installed any more"; else fail "products left: $left"; fi

echo "msi-test: $checks checks, $failures failed"
[ "$failures" -eq 0 ]
