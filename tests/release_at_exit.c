/* A helper DLL for check_engine: it holds a manager and releases it from its DllMain when the
 * process exits (DLL_PROCESS_DETACH with the loader lock held and every other thread gone),
 * as a host DLL that owns the CLR might, then signals a named event. */
#include <windows.h>
#include <ole2.h>
#include "hostiocp.h"

static IHostIoCompletionManager *held;
static WCHAR event_name[64];

__declspec(dllexport) void WINAPI hold_until_process_exit(IHostIoCompletionManager *manager, const WCHAR *name)
{
    held = manager;
    lstrcpynW(event_name, name, ARRAYSIZE(event_name));
}

BOOL WINAPI DllMain(HINSTANCE instance, DWORD reason, void *reserved)
{
    HANDLE released;

    (void)instance;
    if (reason != DLL_PROCESS_DETACH || !reserved || !held)
        return TRUE;
    IHostIoCompletionManager_Release(held);
    if ((released = OpenEventW(EVENT_MODIFY_STATE, FALSE, event_name)))
    {
        SetEvent(released);
        CloseHandle(released);
    }
    return TRUE;
}
