/* hostiocp-host: activates hostiocp through COM as a CLR host would. */
#include <stdio.h>
#include <windows.h>
#include <ole2.h>
#include "hostiocp.h"

int main(void)
{
    IHostControl *control = NULL;
    IHostIoCompletionManager *manager = NULL;
    DWORD size = 0, min = 0, max = 0;
    HRESULT hr;

    CoInitializeEx(NULL, COINIT_MULTITHREADED);
    hr = CoCreateInstance(&CLSID_HostIoCpHostControl, NULL, CLSCTX_INPROC_SERVER, &IID_IHostControl,
                          (void **)&control);
    if (FAILED(hr))
    {
        fprintf(stderr, "hostiocp-host: CoCreateInstance(CLSID_HostIoCpHostControl) failed: 0x%08lx\n", hr);
        return 1;
    }
    hr = IHostControl_GetHostManager(control, &IID_IHostIoCompletionManager, (void **)&manager);
    printf("GetHostManager: 0x%08lx\n", hr);
    IHostIoCompletionManager_GetHostOverlappedSize(manager, &size);
    IHostIoCompletionManager_GetMinThreads(manager, &min);
    IHostIoCompletionManager_GetMaxThreads(manager, &max);
    printf("%d-bit: host overlapped %lu bytes, threads %lu..%lu\n", (int)sizeof(void *) * 8, size, min, max);
    IHostIoCompletionManager_Release(manager);
    IHostControl_Release(control);
    CoUninitialize();
    return 0;
}
