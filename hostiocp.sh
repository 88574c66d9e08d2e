#!/bin/sh
# hostiocp.sh demo | check | native | bench | msi
#
# Installs what is missing (build-aux/setup-deps.sh), configures and builds hostiocp for
# x86_64-w64-mingw32 and i686-w64-mingw32 in build/<target>, registers the DLL in each build's
# private Wine prefix, then:
#   demo   runs the host program in a 64-bit and a 32-bit process;
#   check  runs `make check` for both targets under Wine, then as on Windows (native, below),
#          and prints a pass/fail summary;
#   native builds both targets with configure --without-wine and runs their `make check` with
#          the test programs started directly, as on Windows (build-aux/native-on-wine);
#   bench  runs the benchmark (make bench) for both targets;
#   msi    builds the Windows Installer package build/hostiocp-<version>.msi from both builds
#          (build-aux/make-msi.sh, with wixl).
# check also builds the package and tests it under Wine in a fresh prefix (tests/msi-test.sh),
# when both targets are built.
# Idempotent: a second run only rebuilds what changed.
set -eu
cd "$(dirname "$0")"
: "${HOSTIOCP_CACHE:=${XDG_CACHE_HOME:-${HOME:-/var/cache}/.cache}/hostiocp}"
export HOSTIOCP_CACHE
TARGETS=${HOSTIOCP_TARGETS:-"x86_64-w64-mingw32 i686-w64-mingw32"}
JOBS=$(nproc 2>/dev/null || echo 2)
command=${1:-demo}
shift 2>/dev/null || true

case $command in
    demo|check|native|bench|msi) ;;
    *) echo "usage: $0 demo|check|native|bench|msi" >&2; exit 2 ;;
esac

log() { printf 'hostiocp: %s\n' "$*" >&2; }

sh build-aux/setup-deps.sh

if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
    log "autoreconf"
    autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
fi

export HOSTIOCP_WINE_TEMPLATE="$HOSTIOCP_CACHE/wineprefix-template"

# Runs the command in $2... with configure's arguments for the target $1 after it (a name of
# its own: sh has no local variables, and the callers loop over $target).
with_deps() {
    deps_target=$1
    shift
    "$@" "PKG_CONFIG_PATH=$HOSTIOCP_CACHE/check-$deps_target/lib/pkgconfig" \
        "WINETEST_INCDIR=$HOSTIOCP_CACHE/winetest/include"
}

build_target() { # $1 = triplet
    dir=build/$1
    mkdir -p "$dir"
    if [ ! -f "$dir/Makefile" ]; then
        log "configuring $1"
        (cd "$dir" && with_deps "$1" ../../configure -q --host="$1" HOSTIOCP_WINE_TEMPLATE="$HOSTIOCP_WINE_TEMPLATE")
    fi
    log "building $1"
    make -s -C "$dir" -j"$JOBS" all >/dev/null
    make -s -C "$dir" register >/dev/null
}

if [ "$command" != native ]; then
    for target in $TARGETS; do
        build_target "$target"
    done
fi

VERSION=$(sed -n 's/^AC_INIT(\[hostiocp\], *\[\([^]]*\)\].*/\1/p' configure.ac)
MSI=build/hostiocp-$VERSION.msi
both_targets() {
    case " $TARGETS " in *" x86_64-w64-mingw32 "*) ;; *) return 1 ;; esac
    case " $TARGETS " in *" i686-w64-mingw32 "*) ;; *) return 1 ;; esac
}
build_msi() {
    log "building $MSI"
    sh build-aux/make-msi.sh "$MSI" "$VERSION" build/x86_64-w64-mingw32 build/i686-w64-mingw32 >/dev/null
}

# Adds the results of the make check in $1 (whose test-suite.log the caller removed before it,
# so that none of an earlier run counts) to the totals, printing each with the label $2; $3 is
# its exit status.  A failure that no test reported (the build, the registration) counts as one.
count_results() {
    grep -E '^(PASS|FAIL|XFAIL|XPASS|SKIP|ERROR):' "$1/check.out" 2>/dev/null | sed "s|^|  [$2] |" || true
    summary=$1/test-suite.log
    p=0 f=0 e=0 s=0
    if [ -f "$summary" ]; then
        p=$(sed -n 's/^# PASS: *//p' "$summary"); f=$(sed -n 's/^# FAIL: *//p' "$summary")
        e=$(sed -n 's/^# ERROR: *//p' "$summary"); s=$(sed -n 's/^# SKIP: *//p' "$summary")
    fi
    passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0} + ${e:-0})); skipped=$((skipped + ${s:-0}))
    if [ "${f:-0}${e:-0}" != 00 ]; then
        cat "$summary"; status=1
    elif [ "$3" -ne 0 ]; then
        echo "hostiocp: make check ($2) failed (exit status $3) without a failed test:" >&2
        tail -n 40 "$1/check.out" >&2; failed=$((failed + 1)); status=1
    fi
}

status=0
case $command in
msi)
    both_targets || { log "the package needs both x86_64-w64-mingw32 and i686-w64-mingw32 builds"; exit 1; }
    build_msi || status=1
    [ $status -ne 0 ] || echo "$MSI"
    ;;
demo)
    for target in $TARGETS; do
        log "running the host program ($target)"
        make -s -C "build/$target" demo DEMO_ARGS="$*" || status=1
    done
    ;;
bench)
    for target in $TARGETS; do
        log "benchmark ($target)"
        make -s -C "build/$target" bench BENCH_ARGS="$*" || status=1
    done
    ;;
check|native)
    passed=0 failed=0 skipped=0
    if [ "$command" = check ]; then
        log "32-bit programs: $(sh build-aux/i386-runner)"
        for target in $TARGETS; do
            log "make check ($target)"
            rm -f "build/$target/test-suite.log"
            run_status=0
            make -s -C "build/$target" -j"$JOBS" check >"build/$target/check.out" 2>&1 || run_status=$?
            count_results "build/$target" "$target" $run_status
        done
    fi
    for target in $TARGETS; do
        log "make check ($target, native: configure --without-wine, Windows programs started directly)"
        dir=build/native-$target
        mkdir -p "$dir"
        rm -f "$dir/test-suite.log"
        run_status=0
        with_deps "$target" sh build-aux/native-on-wine "$target" "$dir" >"$dir/check.out" 2>&1 || run_status=$?
        if [ "$run_status" -eq 77 ] && grep '^SKIP: native make check' "$dir/check.out" >&2; then
            skipped=$((skipped + 1))
        else
            count_results "$dir" "native $target" $run_status
        fi
    done
    if [ "$command" = native ]; then
        :
    elif both_targets; then
        log "Windows Installer package: build and test under Wine"
        msi_status=0
        if build_msi >build/msi-test.out 2>&1; then
            WINE=wine HOSTIOCP_WINE_TEMPLATE="$HOSTIOCP_CACHE/wineprefix-template" \
                sh tests/msi-test.sh "$MSI" build/x86_64-w64-mingw32 build/i686-w64-mingw32 build/msi-test \
                >>build/msi-test.out 2>&1 || msi_status=$?
        else
            msi_status=1
        fi
        grep -E '^(PASS|FAIL|SKIP):' build/msi-test.out | sed 's|^|  [msi] |' || true
        p=$(grep -c '^PASS:' build/msi-test.out || true) f=$(grep -c '^FAIL:' build/msi-test.out || true)
        passed=$((passed + p)); failed=$((failed + f))
        if [ "$msi_status" -eq 77 ]; then skipped=$((skipped + 1))
        elif [ "$msi_status" -ne 0 ]; then
            [ "$f" -gt 0 ] || failed=$((failed + 1))
            status=1; cat build/msi-test.out
        fi
    else
        log "not testing the Windows Installer package: it needs both targets"
    fi
    [ "$skipped" -eq 0 ] || grep -h '^SKIP:\|Tests skipped\|skipping' build/*/tests/*.log build/*/wine-tests/*.log 2>/dev/null | sort -u | sed 's/^/hostiocp: skipped: /' >&2
    echo "hostiocp: test cases for $TARGETS$( [ "$command" = native ] || echo " under Wine and" ) natively$(
        [ "$command" = check ] && both_targets && echo ", and the Windows Installer package's checks")"
    echo "$passed passed, $failed failed, $skipped skipped"
    ;;
esac
exit $status
