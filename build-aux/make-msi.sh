#!/bin/sh
# make-msi.sh OUTPUT.msi VERSION BUILD64 BUILD32
#
# Builds the Windows Installer package of hostiocp with wixl from the builds of both targets:
# BUILD64 is an x86_64-w64-mingw32 build directory, BUILD32 an i686-w64-mingw32 one (both built
# with `make all`).  The .wxs is generated next to OUTPUT (OUTPUT without .msi, plus .wxs):
#   - the class and type library identities (CLSIDs, LIBID, ProgIDs, descriptions, version)
#     come from idl/hostiocp.idl, so the package cannot disagree with the IDL;
#   - the registry entries are the ones src/register.c writes, once per registry view: a Win64
#     component for the 64-bit DLL and a 32-bit component for the 32-bit one;
#   - the UpgradeCode is fixed; the ProductCode is derived from VERSION (each version is a new
#     product, the same version rebuilt is the same product); component GUIDs are derived from
#     the component names and never change.
# A hostiocp.manifest next to a DLL is packaged with it when the build made one.
set -eu

[ $# -eq 4 ] || { echo "usage: $0 OUTPUT.msi VERSION BUILD64 BUILD32" >&2; exit 2; }
output=$1 version=$2 build64=$3 build32=$4
srcdir=$(cd "$(dirname "$0")/.." && pwd)
idl=$srcdir/idl/hostiocp.idl
: "${WIXL:=wixl}"

# Stable: a package with another UpgradeCode would install next to this one instead of replacing it.
UPGRADE_CODE=9E1C5F4A-3B7D-4C21-8A6E-0F2D7B4C9A15

die() { echo "make-msi: $*" >&2; exit 1; }

case $version in
    [0-9]*.[0-9]*.[0-9]*) ;;
    *) die "VERSION must be MAJOR.MINOR.BUILD (what Windows Installer compares), not '$version'" ;;
esac
command -v "$WIXL" >/dev/null 2>&1 || die "wixl not found: install the wixl package (build-aux/setup-deps.sh does)"
for b in "$build64" "$build32"; do
    for f in hostiocp.dll host/hostiocp-host.exe host/hostiocp-bench.exe idl/hostiocp.h idl/hostiocp.tlb hostiocp.pc; do
        [ -f "$b/$f" ] || die "$b/$f is missing: run make all in $b"
    done
done
# 8664 for PE32+ x86-64, 14c for PE32 i386: each build must be the bitness it stands for.
pe_machine() {
    pe=$(od -An -tu4 -j60 -N4 "$1" | tr -d ' ')
    od -An -tx2 -j$((pe + 4)) -N2 "$1" | tr -d ' '
}
[ "$(pe_machine "$build64/hostiocp.dll")" = 8664 ] || die "$build64/hostiocp.dll is not a 64-bit DLL"
[ "$(pe_machine "$build32/hostiocp.dll")" = 014c ] || die "$build32/hostiocp.dll is not a 32-bit DLL"

# A GUID that depends only on its name (an MD5 of it, shaped as a GUID).
name_guid() {
    printf 'hostiocp/%s' "$1" | md5sum |
        sed 's/^\(........\)\(....\)\(....\)\(....\)\(............\).*/\1-\2-\3-\4-\5/' | tr a-f A-F
}

# From the IDL: "uuid|helpstring|progid|vi_progid" per coclass, "uuid|version|helpstring" for the library.
coclasses=$(awk '
    /^[ \t]*\[[ \t]*$/ { uuid = help = progid = vi = version = "" }
    /uuid\(/      { match($0, /uuid\([^)]*\)/); uuid = toupper(substr($0, RSTART + 5, RLENGTH - 6)) }
    /helpstring\(/ { match($0, /"[^"]*"/); help = substr($0, RSTART + 1, RLENGTH - 2) }
    /vi_progid\(/ { match($0, /"[^"]*"/); vi = substr($0, RSTART + 1, RLENGTH - 2); next }
    /progid\(/    { match($0, /"[^"]*"/); progid = substr($0, RSTART + 1, RLENGTH - 2) }
    /^[ \t]*coclass / { print uuid "|" help "|" progid "|" vi }' "$idl")
library=$(awk '
    /^[ \t]*\[[ \t]*$/ { uuid = help = version = "" }
    /uuid\(/      { match($0, /uuid\([^)]*\)/); uuid = toupper(substr($0, RSTART + 5, RLENGTH - 6)) }
    /version\(/   { match($0, /version\([^)]*\)/); version = substr($0, RSTART + 8, RLENGTH - 9) }
    /helpstring\(/ { match($0, /"[^"]*"/); help = substr($0, RSTART + 1, RLENGTH - 2) }
    /^library /   { print uuid "|" version "|" help }' "$idl")
[ "$(echo "$coclasses" | grep -c '^[0-9A-F-]\{36\}|[^|]\{1,\}|[^|]\{1,\}|[^|]\{1,\}$')" -ge 1 ] ||
    die "no complete coclass (uuid, helpstring, progid, vi_progid) in $idl"
echo "$library" | grep -q '^[0-9A-F-]\{36\}|[0-9]\{1,\}\.[0-9]\{1,\}|.' || die "no library uuid/version/helpstring in $idl"
libid=$(echo "$library" | cut -d'|' -f1)
libver=$(echo "$library" | cut -d'|' -f2)
libhelp=$(echo "$library" | cut -d'|' -f3)

xml() { printf '%s' "$1" | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/"/\&quot;/g'; }

# A relocatable hostiocp.pc: pkg-config finds the rest from where the .pc file is installed.
wxs=${output%.msi}.wxs
work=${output%.msi}.files
rm -rf "$work" && mkdir -p "$work/64" "$work/32"
for bits in 64 32; do
    eval "b=\$build$bits"
    sed -e 's|^prefix=.*|prefix=${pcfiledir}/../..|' -e 's|^exec_prefix=.*|exec_prefix=${prefix}|' \
        -e 's|^includedir=.*|includedir=${prefix}/include|' -e 's|^bindir=.*|bindir=${prefix}|' \
        -e 's|^libdir=.*|libdir=${prefix}/lib|' "$b/hostiocp.pc" > "$work/$bits/hostiocp.pc"
done

# One registry value: $1 = key under Software\Classes, $2 = value name ("" for the default),
# $3 = value.  An empty default value becomes a Registry row with neither name nor value, which
# Windows Installer reads as "create the key" (it has no way to write an empty string).
regval() {
    name=
    [ -z "$2" ] || name=" Name=\"$(xml "$2")\""
    printf '          <RegistryValue Root="HKLM" Key="Software\\Classes\\%s"%s Type="string" Value="%s"/>\n' \
        "$(xml "$1")" "$name" "$(xml "$3")"
}

# The entries of src/register.c's registry_table for one bitness: $1 = 64 | 32.
registration() {
    dll="[#hostiocp.dll.$1]"
    echo "$coclasses" | while IFS='|' read -r clsid help progid vi; do
        regval "CLSID\\{$clsid}" "" "$help"
        regval "CLSID\\{$clsid}\\InprocServer32" "" "$dll"
        regval "CLSID\\{$clsid}\\InprocServer32" ThreadingModel Both
        regval "CLSID\\{$clsid}\\ProgID" "" "$progid"
        regval "CLSID\\{$clsid}\\VersionIndependentProgID" "" "$vi"
        regval "CLSID\\{$clsid}\\TypeLib" "" "{$libid}"
        regval "CLSID\\{$clsid}\\Version" "" "$libver"
        regval "$progid" "" "$help"
        regval "$progid\\CLSID" "" "{$clsid}"
        regval "$vi" "" "$help"
        regval "$vi\\CLSID" "" "{$clsid}"
        regval "$vi\\CurVer" "" "$progid"
    done
    regval "TypeLib\\{$libid}\\$libver" "" "$libhelp"
    regval "TypeLib\\{$libid}\\$libver\\FLAGS" "" 0
    regval "TypeLib\\{$libid}\\$libver\\HELPDIR" "" ""
    regval "TypeLib\\{$libid}\\$libver\\0\\win$1" "" "$dll"
}

component() { # $1 = Id, $2 = 64 | 32; the files follow on stdin as "source|name" lines
    win64=no
    [ "$2" = 32 ] || win64=yes
    printf '        <Component Id="%s" Guid="%s" Win64="%s">\n' "$1" "$(name_guid "component/$1")" "$win64"
    keypath=' KeyPath="yes"'
    while IFS='|' read -r source name; do
        # wixl takes sources relative to where it runs: each file is staged next to the .wxs.
        [ "$source" = "$work/$2/$name" ] || cp "$source" "$work/$2/$name"
        printf '          <File Id="%s.%s" Name="%s" Source="%s/%s/%s"%s/>\n' \
            "$(echo "$name" | tr - _)" "$2" "$name" "$(xml "$(basename "$work")")" "$2" "$name" "$keypath"
        keypath=
    done
}

directory_tree() { # $1 = 64 | 32
    bits=$1
    eval "b=\$build$bits"
    if [ "$bits" = 64 ]; then pf=ProgramFiles64Folder; else pf=ProgramFilesFolder; fi
    cat <<EOF
    <Directory Id="$pf">
      <Directory Id="INSTALLDIR$bits" Name="hostiocp">
EOF
    {
        echo "$b/hostiocp.dll|hostiocp.dll"
        [ ! -f "$b/hostiocp.manifest" ] || echo "$b/hostiocp.manifest|hostiocp.manifest"
    } | component Runtime$bits "$bits"
    registration "$bits"
    echo '        </Component>'
    printf '%s\n' "$b/host/hostiocp-host.exe|hostiocp-host.exe" "$b/host/hostiocp-bench.exe|hostiocp-bench.exe" |
        component Programs$bits "$bits"
    echo '        </Component>'
    echo "        <Directory Id=\"IncludeDir$bits\" Name=\"include\">"
    printf '%s\n' "$b/idl/hostiocp.h|hostiocp.h" "$idl|hostiocp.idl" | component Headers$bits "$bits"
    echo '          </Component>'
    echo '        </Directory>'
    echo "        <Directory Id=\"LibDir$bits\" Name=\"lib\">"
    echo "$b/idl/hostiocp.tlb|hostiocp.tlb" | component TypeLibrary$bits "$bits"
    echo '          </Component>'
    echo "          <Directory Id=\"PkgConfigDir$bits\" Name=\"pkgconfig\">"
    echo "$work/$bits/hostiocp.pc|hostiocp.pc" | component PkgConfig$bits "$bits"
    echo '            </Component>'
    echo '          </Directory>'
    echo '        </Directory>'
    echo '      </Directory>'
    echo '    </Directory>'
}

{
    cat <<EOF
<?xml version="1.0" encoding="utf-8"?>
<!-- Generated by build-aux/make-msi.sh from idl/hostiocp.idl and the builds; do not edit. -->
<Wix xmlns="http://schemas.microsoft.com/wix/2006/wi">
  <Product Id="$(name_guid "product/$version")" Name="hostiocp" Language="1033" Version="$version"
           Manufacturer="hostiocp" UpgradeCode="$UPGRADE_CODE">
    <Package InstallerVersion="500" Compressed="yes" InstallScope="perMachine"
             Description="hostiocp $version: host I/O completion manager for CLR hosts (64-bit and 32-bit)"/>
    <MajorUpgrade DowngradeErrorMessage="A newer version of hostiocp is already installed."/>
    <Media Id="1" Cabinet="hostiocp.cab" EmbedCab="yes"/>
    <Property Id="ARPNOMODIFY" Value="1"/>
    <Directory Id="TARGETDIR" Name="SourceDir">
EOF
    directory_tree 64 | sed 's/^/  /'
    directory_tree 32 | sed 's/^/  /'
    cat <<EOF
    </Directory>
    <Feature Id="Runtime" Title="hostiocp" Level="1" Absent="disallow"
             Description="The 64-bit and 32-bit hostiocp.dll, registered for 64-bit and 32-bit processes">
      <ComponentRef Id="Runtime64"/>
      <ComponentRef Id="Runtime32"/>
    </Feature>
    <Feature Id="SDK" Title="SDK" Level="1"
             Description="hostiocp.h, hostiocp.idl, hostiocp.tlb, hostiocp.pc, the host program and the benchmark">
      <ComponentRef Id="Programs64"/>
      <ComponentRef Id="Headers64"/>
      <ComponentRef Id="TypeLibrary64"/>
      <ComponentRef Id="PkgConfig64"/>
      <ComponentRef Id="Programs32"/>
      <ComponentRef Id="Headers32"/>
      <ComponentRef Id="TypeLibrary32"/>
      <ComponentRef Id="PkgConfig32"/>
    </Feature>
  </Product>
</Wix>
EOF
} > "$wxs.tmp"
mv "$wxs.tmp" "$wxs"

rm -f "$output.tmp"
(cd "$(dirname "$wxs")" && "$WIXL" -a x64 -o "$(basename "$output").tmp" "$(basename "$wxs")")
mv "$output.tmp" "$output"
echo "make-msi: $output (hostiocp $version, 64-bit and 32-bit)"
