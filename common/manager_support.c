#include "manager_support.h"
#include <tlhelp32.h>

HRESULT create_manager(IHostIoCompletionManager **manager)
{
    return CoCreateInstance(&CLSID_HostIoCompletionManager, NULL, CLSCTX_INPROC_SERVER,
                            &IID_IHostIoCompletionManager, (void **)manager);
}

HRESULT activate_manager(IHostIoCompletionManager *manager, ICLRIoCompletionManager *clr, DWORD min, DWORD max)
{
    HRESULT hr = IHostIoCompletionManager_SetCLRIoCompletionManager(manager, clr);

    if (SUCCEEDED(hr))
        hr = IHostIoCompletionManager_SetMinThreads(manager, 0);
    if (SUCCEEDED(hr))
        hr = IHostIoCompletionManager_SetMaxThreads(manager, max);
    if (SUCCEEDED(hr))
        hr = IHostIoCompletionManager_SetMinThreads(manager, min);
    return hr;
}

static HRESULT get_settings(IHostIoCompletionManager *manager, IHostIoCpSettings **settings)
{
    return IHostIoCompletionManager_QueryInterface(manager, &IID_IHostIoCpSettings, (void **)settings);
}

HRESULT set_batch_size(IHostIoCompletionManager *manager, DWORD entries)
{
    IHostIoCpSettings *settings;
    HRESULT hr = get_settings(manager, &settings);

    if (SUCCEEDED(hr))
    {
        hr = IHostIoCpSettings_SetBatchSize(settings, entries);
        IHostIoCpSettings_Release(settings);
    }
    return hr;
}

HRESULT set_idle_timeout(IHostIoCompletionManager *manager, DWORD milliseconds)
{
    IHostIoCpSettings *settings;
    HRESULT hr = get_settings(manager, &settings);

    if (SUCCEEDED(hr))
    {
        hr = IHostIoCpSettings_SetIdleTimeout(settings, milliseconds);
        IHostIoCpSettings_Release(settings);
    }
    return hr;
}

HRESULT get_statistics(IHostIoCompletionManager *manager, HANDLE port, HOSTIOCP_STATISTICS *stats)
{
    IHostIoCpStatistics *statistics;
    HRESULT hr = IHostIoCompletionManager_QueryInterface(manager, &IID_IHostIoCpStatistics,
                                                         (void **)&statistics);
    if (FAILED(hr))
        return hr;
    stats->cbSize = sizeof(*stats);
    hr = port ? IHostIoCpStatistics_GetPortStatistics(statistics, port, stats)
              : IHostIoCpStatistics_GetStatistics(statistics, stats);
    IHostIoCpStatistics_Release(statistics);
    return hr;
}

HRESULT get_work_statistics(IUnknown *manager, HOSTIOCP_WORK_STATISTICS *stats)
{
    IHostIoCpWorkStatistics *statistics;
    HRESULT hr = IUnknown_QueryInterface(manager, &IID_IHostIoCpWorkStatistics, (void **)&statistics);

    if (FAILED(hr))
        return hr;
    stats->cbSize = sizeof(*stats);
    hr = IHostIoCpWorkStatistics_GetWorkStatistics(statistics, stats);
    IHostIoCpWorkStatistics_Release(statistics);
    return hr;
}

LONG process_threads(void)
{
    HANDLE snapshot = CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0);
    THREADENTRY32 entry;
    LONG count = 0;
    BOOL more;

    if (snapshot == INVALID_HANDLE_VALUE)
        return -1;
    entry.dwSize = sizeof(entry);
    for (more = Thread32First(snapshot, &entry); more; more = Thread32Next(snapshot, &entry))
        count += entry.th32OwnerProcessID == GetCurrentProcessId();
    CloseHandle(snapshot);
    return count;
}
