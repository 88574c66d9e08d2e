#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <winternl.h>
#include "support.h"

/* wine/test.h needs this Wine-internal helper, which mingw-w64's ntdll does not export. */
const char * __cdecl __wine_dbg_strdup(const char *text)
{
    static char buffers[8][1024];
    static volatile LONG next;
    char *copy = buffers[InterlockedIncrement(&next) % 8];

    lstrcpynA(copy, text, sizeof(buffers[0]));
    return copy;
}

void get_dll_path(WCHAR *path, DWORD size)
{
    WCHAR *slash;
    DWORD length = GetEnvironmentVariableW(L"HOSTIOCP_DLL", path, size);

    if (length && length < size)
        return;
    GetModuleFileNameW(NULL, path, size);
    if ((slash = wcsrchr(path, '\\')))
        *slash = 0;
    if ((slash = wcsrchr(path, '\\')))
        *slash = 0;
    lstrcatW(path, L"\\hostiocp.dll");
}

DWORD run_command(const WCHAR *command_line)
{
    STARTUPINFOW startup;
    PROCESS_INFORMATION process;
    WCHAR *copy = _wcsdup(command_line);
    DWORD code = (DWORD)-1;

    ZeroMemory(&startup, sizeof(startup));
    startup.cb = sizeof(startup);
    if (CreateProcessW(NULL, copy, NULL, NULL, FALSE, 0, NULL, NULL, &startup, &process))
    {
        WaitForSingleObject(process.hProcess, 120000);
        GetExitCodeProcess(process.hProcess, &code);
        CloseHandle(process.hThread);
        CloseHandle(process.hProcess);
    }
    free(copy);
    return code;
}

DWORD run_regsvr32(const WCHAR *options, const WCHAR *dll)
{
    WCHAR command[MAX_PATH * 3];

    swprintf(command, ARRAYSIZE(command), L"regsvr32.exe /s %ls \"%ls\"", options, dll);
    return run_command(command);
}

/* Reads the pipe until every writer has closed it: the command and its children have exited. */
static void read_output(HANDLE pipe, char *output, DWORD size)
{
    char chunk[512];
    DWORD got, kept = 0, i;

    while (ReadFile(pipe, chunk, sizeof(chunk), &got, NULL) && got)
        for (i = 0; i < got; i++)
            if (chunk[i] != '\r' && kept + 1 < size)
                output[kept++] = chunk[i];
    output[kept] = 0;
}

DWORD run_command_output(const WCHAR *command_line, char *output, DWORD size)
{
    SECURITY_ATTRIBUTES inherit = { sizeof(inherit), NULL, TRUE };
    STARTUPINFOW startup;
    PROCESS_INFORMATION process;
    WCHAR *copy = _wcsdup(command_line);
    HANDLE reader, writer;
    DWORD code = (DWORD)-1;

    output[0] = 0;
    if (!CreatePipe(&reader, &writer, &inherit, 0))
        return code;
    SetHandleInformation(reader, HANDLE_FLAG_INHERIT, 0);
    ZeroMemory(&startup, sizeof(startup));
    startup.cb = sizeof(startup);
    startup.dwFlags = STARTF_USESTDHANDLES;
    startup.hStdInput = GetStdHandle(STD_INPUT_HANDLE);
    startup.hStdOutput = writer;
    startup.hStdError = writer;
    if (CreateProcessW(NULL, copy, NULL, NULL, TRUE, 0, NULL, NULL, &startup, &process))
    {
        CloseHandle(writer);
        writer = NULL;
        read_output(reader, output, size);
        WaitForSingleObject(process.hProcess, 120000);
        GetExitCodeProcess(process.hProcess, &code);
        CloseHandle(process.hThread);
        CloseHandle(process.hProcess);
    }
    if (writer)
        CloseHandle(writer);
    CloseHandle(reader);
    free(copy);
    return code;
}

#ifndef DBG_PRINTEXCEPTION_C
#define DBG_PRINTEXCEPTION_C 0x40010006
#endif

struct trace_counts hostiocp_trace;

static struct
{
    char text[256];
    volatile LONG complete;
} trace_log[TRACE_LOG_LINES];
static volatile LONG trace_log_next;

static LONG CALLBACK collect_debug_output(EXCEPTION_POINTERS *pointers)
{
    const EXCEPTION_RECORD *record = pointers->ExceptionRecord;
    const char *text;
    LONG slot;

    if (record->ExceptionCode != DBG_PRINTEXCEPTION_C || record->NumberParameters < 2)
        return EXCEPTION_CONTINUE_SEARCH;
    text = (const char *)record->ExceptionInformation[1];
    if (!strncmp(text, "hostiocp[", 9))
    {
        InterlockedIncrement(&hostiocp_trace.lines);
        if (strstr(text, "OnComplete("))
            InterlockedIncrement(&hostiocp_trace.oncomplete);
        if (strstr(text, "manager") && strstr(text, "created"))
            InterlockedIncrement(&hostiocp_trace.created);
        if (strstr(text, "]: warn: "))
            InterlockedIncrement(&hostiocp_trace.warn);
        if ((slot = InterlockedIncrement(&trace_log_next) - 1) < TRACE_LOG_LINES)
        {
            lstrcpynA(trace_log[slot].text, text, sizeof(trace_log[slot].text));
            InterlockedExchange(&trace_log[slot].complete, 1);
        }
    }
    return EXCEPTION_CONTINUE_SEARCH;
}

void *collect_hostiocp_trace(void)
{
    return AddVectoredExceptionHandler(1, collect_debug_output);
}

LONG hostiocp_trace_mark(void)
{
    LONG next = InterlockedCompareExchange(&trace_log_next, 0, 0);
    return next < TRACE_LOG_LINES ? next : TRACE_LOG_LINES;
}

/* The kept lines since mark, of one thread's (thread: "hostiocp[tid]: ") or of any, that
 * contain every one of the strings in args. */
static LONG count_trace_lines(LONG mark, const char *thread, va_list args)
{
    LONG end = hostiocp_trace_mark(), count = 0, i;

    for (i = mark; i < end; i++)
    {
        const char *text = trace_log[i].text, *needle;
        BOOL match;
        va_list strings;

        if (!InterlockedCompareExchange(&trace_log[i].complete, 0, 0) ||
            (thread && strncmp(text, thread, strlen(thread))))
            continue;
        va_copy(strings, args);
        for (match = TRUE; match && (needle = va_arg(strings, const char *));)
            match = strstr(text, needle) != NULL;
        va_end(strings);
        count += match;
    }
    return count;
}

LONG hostiocp_trace_count(LONG mark, ...)
{
    char thread[32];
    va_list args;
    LONG count;

    snprintf(thread, sizeof(thread), "hostiocp[%04lx]: ", GetCurrentThreadId());
    va_start(args, mark);
    count = count_trace_lines(mark, thread, args);
    va_end(args);
    return count;
}

LONG hostiocp_trace_count_any_thread(LONG mark, ...)
{
    va_list args;
    LONG count;

    va_start(args, mark);
    count = count_trace_lines(mark, NULL, args);
    va_end(args);
    return count;
}

/* SystemHandleInformation's entries, as the system has them on both bitnesses. */
struct handle_entry
{
    ULONG process;
    BYTE type, flags;
    USHORT value;
    void *object;
    ACCESS_MASK access;
};

/* GetProcessHandleCount, or where it answers 0 (Wine 8), the system's list of handles. */
DWORD process_handles(void)
{
    ULONG size = 1 << 20, i;
    struct { ULONG count; struct handle_entry entries[1]; } *list = NULL;
    DWORD count = 0;
    NTSTATUS status;

    if (GetProcessHandleCount(GetCurrentProcess(), &count) && count)
        return count;
    do
    {
        HeapFree(GetProcessHeap(), 0, list);
        list = HeapAlloc(GetProcessHeap(), 0, size *= 2);
        status = NtQuerySystemInformation(SystemHandleInformation, list, size, NULL);
    } while (status == (NTSTATUS)0xc0000004 /* STATUS_INFO_LENGTH_MISMATCH */);
    for (i = 0; !status && i < list->count; i++)
        count += list->entries[i].process == GetCurrentProcessId();
    HeapFree(GetProcessHeap(), 0, list);
    return count;
}

/* Committed private memory, region by region: what "private bytes" counts. */
SIZE_T process_private_bytes(void)
{
    MEMORY_BASIC_INFORMATION region;
    const BYTE *address = NULL;
    SIZE_T total = 0;

    while (VirtualQuery(address, &region, sizeof(region)))
    {
        if (region.State == MEM_COMMIT && region.Type == MEM_PRIVATE)
            total += region.RegionSize;
        address = (const BYTE *)region.BaseAddress + region.RegionSize;
        if (!address)
            break;
    }
    return total;
}

static SIZE_T heap_bytes_in_use(HANDLE heap)
{
    PROCESS_HEAP_ENTRY entry = { 0 };
    SIZE_T total = 0;

    if (!HeapLock(heap))
        return 0;
    while (HeapWalk(heap, &entry))
        if (entry.wFlags & PROCESS_HEAP_ENTRY_BUSY)
            total += entry.cbData;
    HeapUnlock(heap);
    return total;
}

SIZE_T process_heap_bytes_in_use(void)
{
    HANDLE heaps[64];
    DWORD count = GetProcessHeaps(ARRAYSIZE(heaps), heaps), i;
    SIZE_T total = 0;

    for (i = 0; i < count && i < ARRAYSIZE(heaps); i++)
        total += heap_bytes_in_use(heaps[i]);
    return total;
}
