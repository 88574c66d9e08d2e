#!/bin/sh
# build-aux/case-driver gives each case a result of its own: it runs stand-in programs that
# print what tests/case_runner.c and wine/test.h print, and compares the .trs results exactly.
#   CASE_DRIVER  build-aux/case-driver
set -u
: "${CASE_DRIVER:?CASE_DRIVER must name build-aux/case-driver}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

# $1 = name, $2 = the program's output, $3 = its exit status, $4 = the results expected, one
# "RESULT description" per line.
expect() {
    printf '#!/bin/sh\nprintf "%%s" "%s"\nexit %s\n' "$2" "$3" >"$work/$1"
    sh "$CASE_DRIVER" --test-name "$1" --log-file "$work/$1.log" --trs-file "$work/$1.trs" -- sh "$work/$1" >/dev/null
    got=$(sed -n 's/^:test-result: //p' "$work/$1.trs" | sed 's/ *$//')
    if [ "$got" = "$4" ]; then
        echo "PASS: $1"
    else
        printf 'FAIL: %s\n  expected:\n%s\n  got:\n%s\n' "$1" "$4" "$got"
        failures=$((failures + 1))
    fi
}

expect cases-one-result-each 'PASS: a
FAIL: b (exit status 1)
SKIP: c: why
' 1 'PASS a
FAIL b (exit status 1)
SKIP c: why'
expect skip-and-exit-77-is-one-skip 'io.c:12: Tests skipped: no port here
io: 0 tests executed (0 marked as todo, 0 as flaky, 0 failures), 1 skipped.
' 77 'SKIP io.c:12: no port here'
expect skip-beside-passing-checks 'io.c:12: Tests skipped: no port here
io: 9 tests executed (0 marked as todo, 0 as flaky, 0 failures), 1 skipped.
' 0 'SKIP io.c:12: no port here
PASS'
expect exit-77-without-a-reason 'nothing to run
' 77 'SKIP'
expect conformance-failure-with-exit-0 'io.c:40: Test failed: 3 bytes, expected 4
' 0 'FAIL 1 conformance failures (exit status 0)'
expect crash-after-passed-cases 'PASS: a
' 3 'PASS a
FAIL exit status 3'
expect hard-error 'wine-run: cannot run it
' 99 'ERROR exit status 99'
expect colours-and-carriage-returns "$(printf '\033[0;32mPASS: a\r')
" 0 'PASS a'

[ "$failures" -eq 0 ]
