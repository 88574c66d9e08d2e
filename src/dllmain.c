/* The DLL's entry points and module lifetime. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <winternl.h>
#include "hostiocp_private.h"

BOOLEAN NTAPI RtlDllShutdownInProgress(void);
BOOL NTAPI RtlIsCriticalSectionLockedByThread(RTL_CRITICAL_SECTION *section);

HINSTANCE hostiocp_instance;
BOOL hostiocp_trace_enabled;
BOOL hostiocp_warn_enabled;
BOOL hostiocp_policy_trace_enabled;
static volatile LONG module_refs;

void module_add_ref(void)
{
    InterlockedIncrement(&module_refs);
}

void module_release(void)
{
    InterlockedDecrement(&module_refs);
}

LONG module_ref_count(void)
{
    return InterlockedCompareExchange(&module_refs, 0, 0);
}

HMODULE module_pin(void)
{
    HMODULE module = NULL;
    GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS, (const WCHAR *)module_pin, &module);
    return module;
}

/* PEB.LoaderLock: the documented part of the PEB in winternl.h stops before it. */
static RTL_CRITICAL_SECTION *loader_lock(void)
{
    PROCESS_BASIC_INFORMATION info;

    if (NtQueryInformationProcess(GetCurrentProcess(), ProcessBasicInformation, &info, sizeof(info), NULL))
        return NULL;
    return *(RTL_CRITICAL_SECTION **)((BYTE *)info.PebBaseAddress + (sizeof(void *) == 8 ? 0x110 : 0xa0));
}

BOOL module_process_ending(void)
{
    return RtlDllShutdownInProgress();
}

BOOL module_must_not_wait(void)
{
    RTL_CRITICAL_SECTION *lock;

    if (module_process_ending())
        return TRUE;
    return (lock = loader_lock()) && RtlIsCriticalSectionLockedByThread(lock);
}

void hostiocp_debug_line(const char *marker, const char *function, const char *format, ...)
{
    char line[512];
    int prefix = snprintf(line, sizeof(line), "hostiocp[%04lx]: %s%s%s", GetCurrentThreadId(), marker,
                          function ? function : "", function ? " " : "");
    va_list args;

    va_start(args, format);
    vsnprintf(line + prefix, sizeof(line) - prefix - 1, format, args);
    va_end(args);
    strcat(line, "\n");
    OutputDebugStringA(line);
}

/* Wine's debugstr_guid: "{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}", or "(null)", in one of eight
 * buffers that calls take in turn, so that a line can format a few GUIDs while other threads
 * trace too. */
const char *debugstr_guid(const GUID *guid)
{
    static char buffers[8][39];
    static volatile LONG next;
    char *buffer;

    if (!guid)
        return "(null)";
    buffer = buffers[(ULONG)InterlockedIncrement(&next) % ARRAYSIZE(buffers)];
    snprintf(buffer, sizeof(buffers[0]), "{%08lx-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x}",
             (unsigned long)guid->Data1, guid->Data2, guid->Data3, guid->Data4[0], guid->Data4[1],
             guid->Data4[2], guid->Data4[3], guid->Data4[4], guid->Data4[5], guid->Data4[6], guid->Data4[7]);
    return buffer;
}

/* HOSTIOCP_TRACE=warn: warnings only; =policy: warnings and the thread policy's decisions; any
 * other value but 0: trace and warnings. */
static void read_trace_setting(void)
{
    char value[8];  /* room for each word that chooses less; a longer value is none of them */
    DWORD length = GetEnvironmentVariableA("HOSTIOCP_TRACE", value, sizeof(value));
    BOOL fits = length < sizeof(value);

    if (!length || (fits && !strcmp(value, "0")))
        return;
    hostiocp_warn_enabled = TRUE;
    hostiocp_policy_trace_enabled = !fits || lstrcmpiA(value, "warn") != 0;
    hostiocp_trace_enabled = hostiocp_policy_trace_enabled && (!fits || lstrcmpiA(value, "policy") != 0);
}

BOOL WINAPI DllMain(HINSTANCE instance, DWORD reason, void *reserved)
{
    if (reason == DLL_PROCESS_ATTACH)
    {
        hostiocp_instance = instance;
        DisableThreadLibraryCalls(instance);
        read_trace_setting();
        fault_init();
        if (!pool_process_attach())
            return FALSE;
        TRACE("loaded");
    }
    else if (reason == DLL_PROCESS_DETACH && !reserved)
        pool_process_detach();
    return TRUE;
}

HRESULT WINAPI DllCanUnloadNow(void)
{
    return module_ref_count() == 0 ? S_OK : S_FALSE;
}

HRESULT WINAPI DllRegisterServer(void)
{
    return register_server(SCOPE_MACHINE);
}

HRESULT WINAPI DllUnregisterServer(void)
{
    return unregister_server(SCOPE_MACHINE);
}

/* regsvr32 [/u] /n /i:user registers in HKCU only; /i:machine, /i alone (an empty or NULL command
 * line) in HKLM. */
HRESULT WINAPI DllInstall(BOOL install, const WCHAR *command_line)
{
    enum registration_scope scope;

    if (!command_line || !command_line[0] || !lstrcmpiW(command_line, L"machine"))
        scope = SCOPE_MACHINE;
    else if (!lstrcmpiW(command_line, L"user"))
        scope = SCOPE_USER;
    else
        return E_INVALIDARG;
    return install ? register_server(scope) : unregister_server(scope);
}
