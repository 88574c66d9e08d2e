#!/bin/sh
# The IDL is the one source of hostiocp's identities: the code takes the CLSIDs and the LIBID
# from its GUIDs and the ProgIDs from the macros it puts in hostiocp.h.  This check fails when
# those macros, or the README, say something else than the coclasses' attributes.
#   IDL      idl/hostiocp.idl
#   README   README.md
set -u
: "${IDL:?IDL must name hostiocp.idl}"
: "${README:?README must name README.md}"

failures=0
fail() { echo "FAIL: $1"; failures=$((failures + 1)); }

# "uuid progid vi_progid" for each coclass, from the attribute blocks in front of it.
coclasses=$(awk '
    /uuid\(/     { match($0, /uuid\([^)]*\)/); uuid = toupper(substr($0, RSTART + 5, RLENGTH - 6)) }
    /vi_progid\(/ { match($0, /"[^"]*"/); vi = substr($0, RSTART + 1, RLENGTH - 2); next }
    /progid\(/   { match($0, /"[^"]*"/); progid = substr($0, RSTART + 1, RLENGTH - 2) }
    /^[ \t]*coclass / { print uuid, progid, vi }' "$IDL")
library=$(awk '/uuid\(/ { match($0, /uuid\([^)]*\)/); uuid = toupper(substr($0, RSTART + 5, RLENGTH - 6)) }
               /^library / { print uuid }' "$IDL")
[ -n "$coclasses" ] || fail "no coclass found in $IDL"
[ -n "$library" ] || fail "no library found in $IDL"

quoted() { # the text of a cpp_quote'd wide-string macro: $1 = macro name
    sed -n "s/^cpp_quote(\"#define $1 L\\\\\"\\(.*\\)\\\\\"\")\$/\\1/p" "$IDL"
}

echo "$coclasses" | while read -r uuid progid vi; do
    case $progid in
    HostIoCp.IoCompletionManager.*) prefix=HOSTIOCP_MANAGER ;;
    HostIoCp.HostControl.*) prefix=HOSTIOCP_HOST_CONTROL ;;
    *) echo "FAIL: coclass {$uuid} has ProgID '$progid', which no macro names"; continue ;;
    esac
    [ "$(quoted ${prefix}_PROGID)" = "$progid" ] || echo "FAIL: ${prefix}_PROGID is not '$progid'"
    [ "$(quoted ${prefix}_VI_PROGID)" = "$vi" ] || echo "FAIL: ${prefix}_VI_PROGID is not '$vi'"
    grep -q "{$uuid}" "$README" || echo "FAIL: $README does not give the CLSID {$uuid}"
    grep -q "\`$progid\`" "$README" || echo "FAIL: $README does not give the ProgID $progid"
done > ids-check.out
cat ids-check.out
failures=$((failures + $(grep -c '^FAIL' ids-check.out)))
rm -f ids-check.out
grep -q "{$library}" "$README" || fail "$README does not give the type library {$library}"

if [ "$failures" -gt 0 ]; then
    echo "$failures identity mismatches"
    exit 1
fi
echo "the header's ProgIDs and the README agree with $IDL: $(echo "$coclasses" | wc -l) coclasses, library {$library}"
