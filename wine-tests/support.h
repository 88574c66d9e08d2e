/* Helpers shared by the conformance tests. */
#ifndef HOSTIOCP_WINE_TESTS_SUPPORT_H
#define HOSTIOCP_WINE_TESTS_SUPPORT_H

#include <windows.h>

/* The DLL under test: %HOSTIOCP_DLL%, else ..\hostiocp.dll beside the test's folder. */
void get_dll_path(WCHAR *path, DWORD size);
/* Runs a command line and returns its exit code, or -1 if it could not start. */
DWORD run_command(const WCHAR *command_line);

#endif
