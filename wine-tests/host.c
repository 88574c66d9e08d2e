/* Conformance of the host program as a user runs it: real I/O with every byte verified and a
 * zero exit, one clear line and exit code 2 for bad options. */
#include <windows.h>
#include <stdio.h>
#define STANDALONE
#include <wine/test.h>
#include "support.h"

static WCHAR host_path[MAX_PATH * 2];

static DWORD run_host(const WCHAR *arguments)
{
    WCHAR command[MAX_PATH * 3];

    swprintf(command, ARRAYSIZE(command), L"\"%ls\" %ls", host_path, arguments);
    return run_command(command);
}

START_TEST(host)
{
    static const WCHAR *const bad[] =
    {
        L"--bogus", L"--workload nothing", L"--concurrency 0", L"--block 7", L"--duration -1",
        L"--min-threads 9 --max-threads 8", L"--size", L"stray",
    };
    WCHAR *slash;
    DWORD code;
    size_t i;

    GetModuleFileNameW(NULL, host_path, ARRAYSIZE(host_path));
    if ((slash = wcsrchr(host_path, '\\')))
        *slash = 0;
    if ((slash = wcsrchr(host_path, '\\')))
        *slash = 0;
    lstrcatW(host_path, L"\\host\\hostiocp-host.exe");

    for (i = 0; i < ARRAYSIZE(bad); i++)
    {
        code = run_host(bad[i]);
        ok(code == 2, "hostiocp-host %s exited with %lu, expected 2\n", wine_dbgstr_w(bad[i]), code);
    }
    code = run_host(L"--help");
    ok(code == 0, "--help exited with %lu\n", code);
    /* Every workload moves and checks real bytes; any error or mismatch makes the exit non-zero. */
    code = run_host(L"--quiet --duration 0.3 --size 1M --concurrency 4 --workload all --workload posted "
                    L"--workload file-read");
    ok(code == 0, "hostiocp-host exited with %lu\n", code);
    code = run_host(L"--quiet --operations 2000 --workload pipe --min-threads 1 --max-threads 1 --json");
    ok(code == 0, "hostiocp-host with one thread exited with %lu\n", code);
}
