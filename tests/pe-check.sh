#!/bin/sh
# Reads the PE headers of the built binaries and fails on every hardening property they lack:
#   every binary: DYNAMIC_BASE with a .reloc section, NX_COMPAT, HIGH_ENTROPY_VA in 64-bit,
#     stack-protector checks in its own code, imports only from Windows' own DLLs;
#   the DLL: imports only from a fixed list, exports exactly the five COM entry points.
# Runs on the build machine with the target's objdump; no Wine needed.
#   OBJDUMP             the target's objdump
#   PE_CHECK_DLL        the COM server DLL
#   PE_CHECK_PROGRAMS   the other binaries (programs, test programs, helper DLLs)
set -u
: "${OBJDUMP:?OBJDUMP must name the target objdump}"
: "${PE_CHECK_DLL:?PE_CHECK_DLL must name the DLL}"
PE_CHECK_PROGRAMS=${PE_CHECK_PROGRAMS:-}

DLL_IMPORTS="advapi32.dll kernel32.dll msvcrt.dll ntdll.dll ole32.dll oleaut32.dll"
PROGRAM_IMPORTS="$DLL_IMPORTS mswsock.dll psapi.dll ws2_32.dll"
DLL_EXPORTS="DllCanUnloadNow DllGetClassObject DllInstall DllRegisterServer DllUnregisterServer"

failures=0
fail() { echo "FAIL: $1: $2"; failures=$((failures + 1)); }

in_list() { # $1 = word, $2 = list
    for w in $2; do [ "$w" = "$1" ] && return 0; done
    return 1
}

check_binary() { # $1 = file, $2 = allowed imports
    file=$1
    if [ ! -f "$file" ]; then fail "$file" "not found"; return; fi
    headers=$("$OBJDUMP" -p "$file") || { fail "$file" "$OBJDUMP -p failed"; return; }

    format=$(printf '%s\n' "$headers" | sed -n 's/.*file format //p' | head -n 1)
    case $format in
        pei-x86-64) bits=64 ;;
        pei-i386) bits=32 ;;
        *) fail "$file" "unexpected file format '$format'"; return ;;
    esac

    dllchars=$(printf '%s\n' "$headers" | sed -n 's/^DllCharacteristics[[:space:]]*//p')
    case $dllchars in
        *[!0-9a-fA-F]*|'') fail "$file" "no DllCharacteristics in the optional header"; return ;;
    esac
    [ $((0x$dllchars & 0x0040)) -ne 0 ] || fail "$file" "DYNAMIC_BASE (ASLR) not set (DllCharacteristics 0x$dllchars)"
    [ $((0x$dllchars & 0x0100)) -ne 0 ] || fail "$file" "NX_COMPAT (DEP) not set (DllCharacteristics 0x$dllchars)"
    if [ $bits = 64 ]; then
        [ $((0x$dllchars & 0x0020)) -ne 0 ] || fail "$file" "HIGH_ENTROPY_VA not set (DllCharacteristics 0x$dllchars)"
    fi
    # Without relocations the loader cannot move the image, whatever DYNAMIC_BASE says.
    "$OBJDUMP" -h "$file" | grep -q '[[:space:]]\.reloc[[:space:]]' ||
        fail "$file" "no .reloc section: the image cannot be relocated"

    for dll in $(printf '%s\n' "$headers" | sed -n 's/^[[:space:]]*DLL Name: //p' | tr 'A-Z' 'a-z'); do
        in_list "$dll" "$2" || fail "$file" "imports $dll, which is not in the allowed list ($2)"
    done

    # Count the calls to __stack_chk_fail from functions other than libssp's own: the canary
    # checks the compiler put into this project's code (i686 symbols have one more underscore).
    checks=$("$OBJDUMP" -d "$file" | awk '
        /^[0-9a-f]+ <.*>:$/ { fn = $2; next }
        /[[:space:]](call|jmp)[a-z]*[[:space:]].*<_*_stack_chk_fail>/ {
            if (fn !~ /stack_chk|chk_fail/) n++
        }
        END { print n + 0 }')
    [ "$checks" -gt 0 ] ||
        fail "$file" "no stack-protector checks (no call to __stack_chk_fail; built without -fstack-protector-strong, or stripped?)"

    echo "checked $file ($format): DllCharacteristics 0x$dllchars, $checks stack-protector checks"
}

check_binary "$PE_CHECK_DLL" "$DLL_IMPORTS"

exports=$("$OBJDUMP" -p "$PE_CHECK_DLL" 2>/dev/null | sed -n '/^\[Ordinal\/Name Pointer\] Table/,/^$/s/^[[:space:]]*\[ *[0-9]*\] //p' | sort)
expected=$(printf '%s\n' $DLL_EXPORTS | sort)
if [ "$exports" != "$expected" ]; then
    for name in $exports; do
        in_list "$name" "$DLL_EXPORTS" || fail "$PE_CHECK_DLL" "exports $name, which is not a COM entry point"
    done
    for name in $DLL_EXPORTS; do
        in_list "$name" "$exports" || fail "$PE_CHECK_DLL" "does not export $name"
    done
    [ "$failures" -gt 0 ] || fail "$PE_CHECK_DLL" "exports '$(echo $exports)', expected '$(echo $expected)'"
fi

for program in $PE_CHECK_PROGRAMS; do
    check_binary "$program" "$PROGRAM_IMPORTS"
done

[ "$failures" -eq 0 ] || { echo "$failures failures"; exit 1; }
echo "all hardening checks passed"
