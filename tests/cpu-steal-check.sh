#!/bin/sh
# build-aux/cpu-steal reports the busy and stolen shares of the CPU time between two readings of
# its stat file, and passes the command's exit status through: a stand-in command rewrites the
# stand-in /proc/stat as the run would.
#   CPU_STEAL  build-aux/cpu-steal
set -u
: "${CPU_STEAL:?CPU_STEAL must name build-aux/cpu-steal}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

# $1 = name, $2 and $3 = the stat file's first line before and after, $4 = the command's exit
# status, $5 = what cpu-steal should print on stderr ('' for nothing).
expect() {
    printf '%s\n' "$2" >"$work/stat"
    printf '#!/bin/sh\nprintf "%%s\\n" "%s" >"%s"\nexit %s\n' "$3" "$work/stat" "$4" >"$work/run"
    CPU_STEAL_STAT="$work/stat" sh "$CPU_STEAL" sh "$work/run" 2>"$work/err" >/dev/null
    status=$?
    got=$(cat "$work/err")
    if [ "$got" = "$5" ] && [ "$status" = "$4" ]; then
        echo "PASS: $1"
    else
        printf 'FAIL: %s\n  expected (status %s): %s\n  got (status %s): %s\n' "$1" "$4" "$5" "$status" "$got"
        failures=$((failures + 1))
    fi
}

#      user nice system idle iowait irq softirq steal
expect quiet-machine 'cpu  100 0 100 800 0 0 0 0 0 0' 'cpu  500 0 500 1000 0 0 0 0 0 0' 0 \
    'cpu-steal: during the run the CPUs were 80 % busy and 0 % stolen by other guests'
expect stolen-quarter 'cpu  0 0 0 0 0 0 0 0 0 0' 'cpu  300 0 300 100 0 0 50 250 0 0' 0 \
    "cpu-steal: during the run the CPUs were 65 % busy and 25 % stolen by other guests: rates from this run measure the host's load as well"
expect iowait-is-idle 'cpu  0 0 0 0 0 0 0 0 0 0' 'cpu  100 0 0 50 50 0 0 0 0 0' 3 \
    'cpu-steal: during the run the CPUs were 50 % busy and 0 % stolen by other guests'
expect no-steal-field 'cpu  0 0 0 0 0 0 0' 'cpu  10 0 10 20 0 0 0' 0 \
    'cpu-steal: during the run the CPUs were 50 % busy and 0 % stolen by other guests'
expect unreadable-stat 'not a stat line' 'not a stat line' 7 ''

echo "$failures failed"
[ "$failures" -eq 0 ]
