#!/bin/sh
# build-aux/wine-run starts a prefix's Wine session itself, so that the prefix's system processes
# (which keep the standard error of the program that started them) write to the prefix's
# system-processes.log and never into a test's output.  It runs a program in a fresh prefix with
# no server, then reads where the system processes' standard error goes, and checks that the
# session that wine-run started serves the next program without starting another.
#   WINE, WINESERVER     Wine's loader and server
#   WINE_RUN             build-aux/wine-run;  WINE_PREFIX_SCRIPT  build-aux/wine-prefix
#   HOSTIOCP_WINE_TEMPLATE  (optional) the prefix template
set -u
: "${WINE_RUN:?}" "${WINE_PREFIX_SCRIPT:?}" "${WINESERVER:=wineserver}"
if [ -z "${WINE:-}" ] || ! command -v "$WINE" >/dev/null 2>&1; then
    echo "SKIP: Wine is not installed"
    exit 77
fi
work=$(mktemp -d)
export WINEPREFIX="$work/prefix"
trap '"$WINESERVER" -k 2>/dev/null; rm -rf "$work"' EXIT
failures=0
check() { # $1 = description, $2 = 0 when it holds
    if [ "$2" -eq 0 ]; then echo "PASS: $1"; else echo "FAIL: $1"; failures=$((failures + 1)); fi
}

sh "$WINE_PREFIX_SCRIPT" "$WINEPREFIX" "${HOSTIOCP_WINE_TEMPLATE:-}" || { echo "FAIL: cannot make a prefix"; exit 1; }
# A 64-bit program of the prefix's own, so that no 32-bit loader is needed.
program=$WINEPREFIX/drive_c/windows/system32/cmd.exe

# The prefix's system processes, by process id: those whose WINEPREFIX is ours.
system_processes() {
    for environ in /proc/[0-9]*/environ; do
        pid=${environ#/proc/}; pid=${pid%/environ}
        { tr '\0' '\n' <"$environ"; } 2>/dev/null | grep -qx "WINEPREFIX=$WINEPREFIX" || continue
        case $({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null) in
            *services.exe*|*winedevice.exe*|*plugplay.exe*|*explorer.exe*|*rpcss.exe*|*svchost.exe*) echo "$pid" ;;
        esac
    done
}

"$WINESERVER" -k0 2>/dev/null && { echo "FAIL: a server runs for a prefix just made"; exit 1; }
sh "$WINE_RUN" "$program" /c exit 3 >"$work/first.out" 2>&1
check "wine-run gives the program's exit code (3)" $([ $? -eq 3 ]; echo $?)
"$WINESERVER" -k0 2>/dev/null
check "the session outlives the program" $?

pids=$(system_processes)
check "the prefix's system processes run ($(echo $pids | wc -w) of them)" $([ -n "$pids" ]; echo $?)
# $1 = the process ids: how many of them write their standard error anywhere but the log.
outside_log() {
    outside=0
    for pid in $1; do
        target=$(readlink "/proc/$pid/fd/2" 2>/dev/null) || continue
        if [ "$target" != "$WINEPREFIX/system-processes.log" ]; then
            printf '  %s writes its standard error to %s\n' "$(tr '\0' ' ' <"/proc/$pid/cmdline")" "$target" >&2
            outside=$((outside + 1))
        fi
    done
    echo $outside
}
check "every system process writes its standard error to the prefix's system-processes.log" "$(outside_log "$pids")"
holders=0
for pid in $pids; do
    for fd in /proc/"$pid"/fd/*; do
        [ "$(readlink "$fd" 2>/dev/null)" != "$WINEPREFIX/.session-lock" ] || holders=$((holders + 1))
    done
done
check "no system process holds the lock that wine-run starts a session under" $holders

# The server, by process id: the one whose WINEPREFIX is ours.
server() {
    for pid in $(pgrep wineserver); do
        { tr '\0' '\n' <"/proc/$pid/environ"; } 2>/dev/null | grep -qx "WINEPREFIX=$WINEPREFIX" && echo "$pid"
    done
}
before=$(server)
sh "$WINE_RUN" "$program" /c exit 0 >"$work/second.out" 2>&1
check "the next program runs in the same session (server $before, then $(server))" \
    $([ -n "$before" ] && [ "$before" = "$(server)" ]; echo $?)
# Some system processes start on demand or late: they too write to the log.
check "after it, every system process still writes to the log" "$(outside_log "$(system_processes)")"

[ "$failures" -eq 0 ]
