/* Conformance of the host program as a user runs it: real I/O with every byte verified and a
 * zero exit, work items each run exactly once, one clear line and exit code 2 for bad options. */
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define STANDALONE
#include <wine/test.h>
#include "support.h"

static WCHAR host_path[MAX_PATH * 2], bench_path[MAX_PATH * 2];

/* host\NAME beside the folder of this test. */
static void get_program_path(const WCHAR *name, WCHAR *path, DWORD size)
{
    WCHAR *slash;

    GetModuleFileNameW(NULL, path, size);
    if ((slash = wcsrchr(path, '\\')))
        *slash = 0;
    if ((slash = wcsrchr(path, '\\')))
        *slash = 0;
    lstrcatW(path, L"\\host\\");
    lstrcatW(path, name);
}

static DWORD run_program(const WCHAR *path, const WCHAR *arguments, char *output, DWORD size)
{
    WCHAR command[MAX_PATH * 3];

    swprintf(command, ARRAYSIZE(command), L"\"%ls\" %ls", path, arguments);
    return output ? run_command_output(command, output, size) : run_command(command);
}

static DWORD run_host(const WCHAR *arguments)
{
    return run_program(host_path, arguments, NULL, 0);
}

/* The whole of what the program writes, and its exit code. */
static void check_refusal(const WCHAR *path, const WCHAR *arguments, const char *expected)
{
    char output[1024];
    DWORD code = run_program(path, arguments, output, sizeof(output));

    ok(code == 2, "%s %s exited with %lu, expected 2\n", wine_dbgstr_w(wcsrchr(path, '\\') + 1),
       wine_dbgstr_w(arguments), code);
    ok(!strcmp(output, expected), "%s %s wrote %s, expected %s\n", wine_dbgstr_w(wcsrchr(path, '\\') + 1),
       wine_dbgstr_w(arguments), wine_dbgstr_a(output), wine_dbgstr_a(expected));
}

static void test_unknown_options(void)
{
    static const char host_says[] = "hostiocp-host: --bogus is not an option; see hostiocp-host --help\n";
    static const char bench_says[] = "hostiocp-bench: --bogus is not an option; see hostiocp-bench --help\n";

    check_refusal(host_path, L"--bogus", host_says);
    check_refusal(host_path, L"--bogus 1", host_says);
    check_refusal(host_path, L"--quiet --bogus", host_says);
    check_refusal(bench_path, L"--bogus", bench_says);
    check_refusal(bench_path, L"--bogus 1", bench_says);
    check_refusal(host_path, L"--size", "hostiocp-host: --size needs a value; see hostiocp-host --help\n");
    check_refusal(bench_path, L"--repeat", "hostiocp-bench: --repeat needs a value; see hostiocp-bench --help\n");
}

/* More connections than the workloads can set up in a few seconds are refused at once. */
static void test_concurrency_limit(void)
{
    static const char host_says[] =
        "hostiocp-host: 10001 is out of range for --concurrency (1-10000); see hostiocp-host --help\n";

    check_refusal(host_path, L"--activate-only --concurrency 10001", host_says);
    check_refusal(host_path, L"--activate-only --concurrency 100000",
                  "hostiocp-host: 100000 is out of range for --concurrency (1-10000); see hostiocp-host --help\n");
    check_refusal(bench_path, L"--concurrency 10001",
                  "hostiocp-bench: 10001 is not a concurrency (1-10000); see hostiocp-bench --help\n");
}

/* --manifest: the classes come from the DLL beside the manifest, not from the registered one; a
 * manifest that cannot be used is one clear line and exit code 1. */
static void test_manifest_option(void)
{
    WCHAR build[MAX_PATH], folder[MAX_PATH], source[MAX_PATH], target[MAX_PATH], arguments[MAX_PATH * 2];
    char output[4096], expected[MAX_PATH * 2];
    static const WCHAR *const files[] = { L"hostiocp.dll", L"hostiocp.manifest" };
    DWORD code;
    size_t i;

    lstrcpyW(build, host_path);
    *wcsrchr(build, '\\') = 0;
    *wcsrchr(build, '\\') = 0;
    GetTempPathW(MAX_PATH, folder);
    swprintf(folder + lstrlenW(folder), MAX_PATH - lstrlenW(folder), L"hostiocp-manifest-%lu", GetCurrentProcessId());
    ok(CreateDirectoryW(folder, NULL), "cannot make %s: %lu\n", wine_dbgstr_w(folder), GetLastError());
    for (i = 0; i < ARRAYSIZE(files); i++)
    {
        swprintf(source, MAX_PATH, L"%ls\\%ls", build, files[i]);
        swprintf(target, MAX_PATH, L"%ls\\%ls", folder, files[i]);
        ok(CopyFileW(source, target, TRUE), "cannot copy %s: %lu\n", wine_dbgstr_w(source), GetLastError());
    }

    swprintf(arguments, ARRAYSIZE(arguments), L"--manifest \"%ls\\hostiocp.manifest\" --activate-only", folder);
    code = run_program(host_path, arguments, output, sizeof(output));
    ok(code == 0, "hostiocp-host %s exited with %lu: %s\n", wine_dbgstr_w(arguments), code, output);
    snprintf(expected, sizeof(expected), "  served by %ls\\hostiocp.dll\n", folder);
    ok(strstr(output, expected) != NULL, "hostiocp-host --manifest: %s, expected %s\n", wine_dbgstr_a(output),
       wine_dbgstr_a(expected));
    /* Without it, the registered DLL. */
    code = run_program(host_path, L"--activate-only", output, sizeof(output));
    ok(code == 0, "hostiocp-host --activate-only exited with %lu: %s\n", code, output);
    ok(strstr(output, "-> IHostThreadpoolManager ") && strstr(output, "(the same object as the I/O manager)"),
       "hostiocp-host does not hand out both managers as one object: %s\n", wine_dbgstr_a(output));
    snprintf(expected, sizeof(expected), "  served by %ls\\hostiocp.dll\n", build);
    ok(strstr(output, expected) != NULL, "hostiocp-host: %s, expected %s\n", wine_dbgstr_a(output),
       wine_dbgstr_a(expected));

    for (i = 0; i < ARRAYSIZE(files); i++)
    {
        swprintf(target, MAX_PATH, L"%ls\\%ls", folder, files[i]);
        ok(DeleteFileW(target), "cannot delete %s: %lu\n", wine_dbgstr_w(target), GetLastError());
    }
    swprintf(arguments, ARRAYSIZE(arguments), L"--manifest \"%ls\\hostiocp.manifest\" --activate-only", folder);
    code = run_program(host_path, arguments, output, sizeof(output));
    snprintf(expected, sizeof(expected), "hostiocp-host: %ls\\hostiocp.manifest is not a manifest this %d-bit "
             "process can use (CreateActCtx failed with error %u)\n", folder, (int)sizeof(void *) * 8,
             (unsigned)ERROR_FILE_NOT_FOUND);
    ok(code == 1, "hostiocp-host with no manifest at the path exited with %lu\n", code);
    ok(!strcmp(output, expected), "hostiocp-host with no manifest at the path wrote %s, expected %s\n",
       wine_dbgstr_a(output), wine_dbgstr_a(expected));
    ok(RemoveDirectoryW(folder), "cannot remove %s: %lu\n", wine_dbgstr_w(folder), GetLastError());
    check_refusal(host_path, L"--manifest", "hostiocp-host: --manifest needs a value; see hostiocp-host --help\n");
}

/* The number after "name": in the JSON from `from` on, or -1. */
static LONGLONG json_number(const char *from, const char *name)
{
    char key[64];
    const char *at;

    snprintf(key, sizeof(key), "\"%s\": ", name);
    if (!from || !(at = strstr(from, key)))
        return -1;
    return strtoll(at + strlen(key), NULL, 10);
}

static void check_json_number(const char *from, const char *name, LONGLONG expected, const char *arguments)
{
    LONGLONG value = json_number(from, name);

    ok(value == expected, "hostiocp-host %s: %s is %ld, expected %ld\n", arguments, name, (long)value, (long)expected);
}

/* --workload work with --operations: exactly that many items of the chains, two I/O completions
 * (a write and a read of one message) for each item of every io_every, and one more item queued
 * from each completion; the program and the DLL count each item queued and run once. */
static void check_work_counts(const char *arguments, LONGLONG chain_items, LONGLONG io_every, LONGLONG block)
{
    LONGLONG completions = io_every ? 2 * (chain_items / io_every) : 0, items = chain_items + completions;
    WCHAR wide[256];
    char output[4096];
    const char *dll_counts;
    DWORD code;

    swprintf(wide, ARRAYSIZE(wide), L"--quiet --json --workload work %hs", arguments);
    code = run_program(host_path, wide, output, sizeof(output));
    ok(code == 0, "hostiocp-host %s exited with %lu: %s\n", arguments, code, output);
    check_json_number(output, "operations", chain_items, arguments);
    check_json_number(output, "items_queued", items, arguments);
    check_json_number(output, "items_run", items, arguments);
    check_json_number(output, "io_completions", completions, arguments);
    check_json_number(output, "bytes", completions * block, arguments);
    check_json_number(output, "errors", 0, arguments);
    check_json_number(output, "verify_failures", 0, arguments);
    check_json_number(output, "drain_markers", 2, arguments);
    dll_counts = strstr(output, "\"work_statistics\": {");
    ok(dll_counts != NULL, "hostiocp-host %s: no work statistics in %s\n", arguments, output);
    check_json_number(dll_counts, "items_queued", items, arguments);
    check_json_number(dll_counts, "items_run", items, arguments);
    check_json_number(dll_counts, "items_refused", 0, arguments);
    check_json_number(dll_counts, "items_discarded", 0, arguments);
}

static void test_work_workload(void)
{
    /* Every item waits for a message, more chains than the default minimum of threads. */
    check_work_counts("--operations 300 --concurrency 24 --io-every 1 --block 512", 300, 1, 512);
    /* One in three, with items that spin and some that block. */
    check_work_counts("--operations 400 --concurrency 8 --io-every 3 --block 1024 --work-us 20 --block-ms 2 "
                      "--block-every 16", 400, 3, 1024);
    /* Fewer items than chains; items without I/O. */
    check_work_counts("--operations 5 --concurrency 16 --io-every 0", 5, 0, 4096);
}

START_TEST(host)
{
    static const WCHAR *const bad[] =
    {
        L"--bogus", L"--workload nothing", L"--concurrency 0", L"--block 7", L"--duration -1",
        L"--min-threads 9 --max-threads 8", L"--size", L"stray",
    };
    DWORD code;
    size_t i;

    get_program_path(L"hostiocp-host.exe", host_path, ARRAYSIZE(host_path));
    get_program_path(L"hostiocp-bench.exe", bench_path, ARRAYSIZE(bench_path));

    for (i = 0; i < ARRAYSIZE(bad); i++)
    {
        code = run_host(bad[i]);
        ok(code == 2, "hostiocp-host %s exited with %lu, expected 2\n", wine_dbgstr_w(bad[i]), code);
    }
    test_unknown_options();
    test_concurrency_limit();
    test_manifest_option();
    code = run_host(L"--help");
    ok(code == 0, "--help exited with %lu\n", code);
    /* Every workload moves and checks real bytes; any error or mismatch makes the exit non-zero. */
    code = run_host(L"--quiet --duration 0.3 --size 1M --concurrency 4 --workload all --workload posted "
                    L"--workload file-read --workload work");
    ok(code == 0, "hostiocp-host exited with %lu\n", code);
    code = run_host(L"--quiet --operations 2000 --workload pipe --min-threads 1 --max-threads 1 --json");
    ok(code == 0, "hostiocp-host with one thread exited with %lu\n", code);
    test_work_workload();
}
