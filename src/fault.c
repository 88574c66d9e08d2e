/* Fault injection for tests: the system calls that can fail, through one place each.  Inert
 * unless HOSTIOCP_FAULT is set when the DLL loads: "site:N" makes the Nth call of that site
 * (counted from the load) fail with the error the system gives when it runs out of that
 * resource, and says so in a trace line that is written even with tracing off.  Sites:
 * create_port (CreateIoCompletionPort, for a new port and for Bind), create_thread, heap_alloc,
 * registry (every registry call of registration and unregistration), post
 * (PostQueuedCompletionStatus). */
#include <stdlib.h>
#include <string.h>
#include "debug.h"
#include "fault.h"

static const struct
{
    const char *name;
    DWORD error;
}
fault_sites[FAULT_SITE_COUNT] =
{
    [FAULT_CREATE_PORT] = { "create_port", ERROR_NO_SYSTEM_RESOURCES },
    [FAULT_CREATE_THREAD] = { "create_thread", ERROR_NOT_ENOUGH_MEMORY },
    [FAULT_HEAP_ALLOC] = { "heap_alloc", ERROR_NOT_ENOUGH_MEMORY },
    [FAULT_REGISTRY] = { "registry", ERROR_NO_SYSTEM_RESOURCES },
    [FAULT_POST] = { "post", ERROR_NO_SYSTEM_RESOURCES },
};

static BOOL fault_armed;
static enum fault_site armed_site;
static LONG armed_call;
static volatile LONG calls[FAULT_SITE_COUNT];

void fault_init(void)
{
    char value[64], *colon;     /* room for any site's name and a call number */
    DWORD length = GetEnvironmentVariableA("HOSTIOCP_FAULT", value, sizeof(value));
    int i;

    if (!length || length >= sizeof(value) || !(colon = strchr(value, ':')))
        return;
    *colon = 0;
    for (i = 0; i < FAULT_SITE_COUNT; i++)
        if (!strcmp(value, fault_sites[i].name))
        {
            armed_site = i;
            armed_call = atol(colon + 1);
            fault_armed = armed_call > 0;
        }
}

/* TRUE: this call must fail; the last error is set as the system would set it. */
static BOOL fault_now(enum fault_site site)
{
    LONG call;

    if (!fault_armed || site != armed_site)
        return FALSE;
    if ((call = InterlockedIncrement(&calls[site])) != armed_call)
        return FALSE;
    hostiocp_debug_line("", NULL, "fault injected: %s call %ld fails with error %lu", fault_sites[site].name, call,
                        fault_sites[site].error);
    SetLastError(fault_sites[site].error);
    return TRUE;
}

void *heap_alloc(DWORD flags, SIZE_T size)
{
    return fault_now(FAULT_HEAP_ALLOC) ? NULL : HeapAlloc(GetProcessHeap(), flags, size);
}

HANDLE create_completion_port(HANDLE file, HANDLE port, ULONG_PTR key, DWORD threads)
{
    return fault_now(FAULT_CREATE_PORT) ? NULL : CreateIoCompletionPort(file, port, key, threads);
}

HANDLE create_thread(LPTHREAD_START_ROUTINE start, void *arg)
{
    return fault_now(FAULT_CREATE_THREAD) ? NULL : CreateThread(NULL, 0, start, arg, 0, NULL);
}

BOOL post_packet(HANDLE port, DWORD bytes, ULONG_PTR key, OVERLAPPED *overlapped)
{
    return fault_now(FAULT_POST) ? FALSE : PostQueuedCompletionStatus(port, bytes, key, overlapped);
}

LONG registry_fault(void)
{
    return fault_now(FAULT_REGISTRY) ? (LONG)fault_sites[FAULT_REGISTRY].error : ERROR_SUCCESS;
}
