/* Helpers shared by the conformance tests. */
#ifndef HOSTIOCP_WINE_TESTS_SUPPORT_H
#define HOSTIOCP_WINE_TESTS_SUPPORT_H

#include <windows.h>

/* The DLL under test: %HOSTIOCP_DLL%, else ..\hostiocp.dll beside the test's folder. */
void get_dll_path(WCHAR *path, DWORD size);
/* Runs a command line and returns its exit code, or -1 if it could not start. */
DWORD run_command(const WCHAR *command_line);
/* regsvr32 /s with options ("" or "/u") for a DLL; its exit code. */
DWORD run_regsvr32(const WCHAR *options, const WCHAR *dll);
/* The same, keeping what the command wrote to stdout and stderr, without carriage returns and
 * cut to size - 1 characters. */
DWORD run_command_output(const WCHAR *command_line, char *output, DWORD size);

/* Lines that hostiocp sent to the debugger since collect_hostiocp_trace(). */
struct trace_counts
{
    volatile LONG lines;
    volatile LONG oncomplete;
    volatile LONG created;
    volatile LONG warn;         /* lines with the "warn: " marker */
};
extern struct trace_counts hostiocp_trace;
/* Collects OutputDebugString output as a debugger sees it (DBG_PRINTEXCEPTION_C); returns the
 * handler for RemoveVectoredExceptionHandler.  The first TRACE_LOG_LINES lines are kept. */
#define TRACE_LOG_LINES 4096
void *collect_hostiocp_trace(void);
/* A mark for hostiocp_trace_count: the lines kept so far. */
LONG hostiocp_trace_mark(void);
/* The kept lines since mark that the calling thread sent and that contain every one of the
 * strings given (NULL ends the list). */
LONG hostiocp_trace_count(LONG mark, ...);
/* The same, of every thread's lines (the engine's threads, too). */
LONG hostiocp_trace_count_any_thread(LONG mark, ...);

/* This process's handles (GetProcessHandleCount, or where that answers 0, as under Wine 8, the
 * system's handle list) and its committed private memory; its threads: manager_support.h. */
DWORD process_handles(void);
SIZE_T process_private_bytes(void);
/* The bytes of the blocks in use in all of this process's heaps (HeapWalk): unlike private
 * bytes, free space the heaps keep does not count, so it grows only with what is allocated. */
SIZE_T process_heap_bytes_in_use(void);

#endif
