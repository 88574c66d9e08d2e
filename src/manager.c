/* The IHostIoCompletionManager object, with its IHostIoCpStatistics and IHostIoCpSettings
 * extensions.  It checks arguments and hands the work to the completion engine. */
#include <string.h>
#include "hostiocp_private.h"

struct manager
{
    IHostIoCompletionManager IHostIoCompletionManager_iface;
    IHostIoCpStatistics IHostIoCpStatistics_iface;
    IHostIoCpSettings IHostIoCpSettings_iface;
    LONG refs;
    IUnknown *marshaler;
    struct engine *engine;
    volatile LONG overlapped_sequence;
};

static inline struct manager *impl_from_IHostIoCompletionManager(IHostIoCompletionManager *iface)
{
    return CONTAINING_RECORD(iface, struct manager, IHostIoCompletionManager_iface);
}

static inline struct manager *impl_from_IHostIoCpStatistics(IHostIoCpStatistics *iface)
{
    return CONTAINING_RECORD(iface, struct manager, IHostIoCpStatistics_iface);
}

static inline struct manager *impl_from_IHostIoCpSettings(IHostIoCpSettings *iface)
{
    return CONTAINING_RECORD(iface, struct manager, IHostIoCpSettings_iface);
}

/* QueryInterface for all three interfaces; E_NOINTERFACE is for the caller to warn about. */
static HRESULT query_interface(struct manager *manager, REFIID riid, void **out)
{
    if (!out)
        return E_POINTER;
    *out = NULL;
    if (!riid)
        return E_INVALIDARG;
    if (IsEqualIID(riid, &IID_IUnknown) || IsEqualIID(riid, &IID_IHostIoCompletionManager))
        *out = &manager->IHostIoCompletionManager_iface;
    else if (IsEqualIID(riid, &IID_IHostIoCpStatistics))
        *out = &manager->IHostIoCpStatistics_iface;
    else if (IsEqualIID(riid, &IID_IHostIoCpSettings))
        *out = &manager->IHostIoCpSettings_iface;
    else if (IsEqualIID(riid, &IID_IMarshal))
        return IUnknown_QueryInterface(manager->marshaler, riid, out);
    else
        return E_NOINTERFACE;
    IUnknown_AddRef((IUnknown *)*out);
    return S_OK;
}

static HRESULT WINAPI manager_QueryInterface(IHostIoCompletionManager *iface, REFIID riid, void **out)
{
    struct manager *manager = impl_from_IHostIoCompletionManager(iface);
    HRESULT hr;

    TRACE_CALL("%p, %s, %p.", iface, debugstr_guid(riid), out);
    if ((hr = query_interface(manager, riid, out)) == E_NOINTERFACE)
        WARN("%s not implemented.", debugstr_guid(riid));
    return hr;
}

static ULONG WINAPI manager_AddRef(IHostIoCompletionManager *iface)
{
    struct manager *manager = impl_from_IHostIoCompletionManager(iface);
    ULONG refcount = InterlockedIncrement(&manager->refs);

    TRACE_CALL("%p, refcount %lu.", iface, refcount);
    return refcount;
}

static void manager_destroy(struct manager *manager)
{
    TRACE("manager %p: shutting down", manager);
    engine_shutdown(manager->engine);
    if (manager->marshaler)
        IUnknown_Release(manager->marshaler);
    HeapFree(GetProcessHeap(), 0, manager);
    module_release();
}

static ULONG WINAPI manager_Release(IHostIoCompletionManager *iface)
{
    struct manager *manager = impl_from_IHostIoCompletionManager(iface);
    ULONG refcount = InterlockedDecrement(&manager->refs);

    TRACE_CALL("%p, refcount %lu.", iface, refcount);
    if (!refcount)
        manager_destroy(manager);
    return refcount;
}

static HRESULT WINAPI manager_CreateIoCompletionPort(IHostIoCompletionManager *iface, HANDLE *port)
{
    struct manager *manager = impl_from_IHostIoCompletionManager(iface);

    TRACE_CALL("%p, %p.", iface, port);
    if (!port)
        return E_POINTER;
    *port = NULL;
    return engine_create_port(manager->engine, port);
}

static HRESULT WINAPI manager_CloseIoCompletionPort(IHostIoCompletionManager *iface, HANDLE port)
{
    struct manager *manager = impl_from_IHostIoCompletionManager(iface);

    TRACE_CALL("%p, %p.", iface, port);
    if (!port || port == INVALID_HANDLE_VALUE)
        return E_INVALIDARG;
    return engine_close_port(manager->engine, port);
}

static HRESULT WINAPI manager_SetMaxThreads(IHostIoCompletionManager *iface, DWORD count)
{
    struct manager *manager = impl_from_IHostIoCompletionManager(iface);

    TRACE_CALL("%p, %lu.", iface, count);
    return engine_set_max_threads(manager->engine, count);
}

static HRESULT WINAPI manager_GetMaxThreads(IHostIoCompletionManager *iface, DWORD *count)
{
    struct manager *manager = impl_from_IHostIoCompletionManager(iface);

    TRACE_CALL("%p, %p.", iface, count);
    if (!count)
        return E_POINTER;
    *count = engine_max_threads(manager->engine);
    return S_OK;
}

static HRESULT WINAPI manager_GetAvailableThreads(IHostIoCompletionManager *iface, DWORD *count)
{
    struct manager *manager = impl_from_IHostIoCompletionManager(iface);

    TRACE_CALL("%p, %p.", iface, count);
    if (!count)
        return E_POINTER;
    *count = engine_available_threads(manager->engine);
    return S_OK;
}

static HRESULT WINAPI manager_GetHostOverlappedSize(IHostIoCompletionManager *iface, DWORD *size)
{
    TRACE_CALL("%p, %p.", iface, size);
    if (!size)
        return E_POINTER;
    *size = sizeof(HOSTIOCP_OVERLAPPED_EXTENSION);
    return S_OK;
}

static HRESULT WINAPI manager_SetCLRIoCompletionManager(IHostIoCompletionManager *iface,
                                                        ICLRIoCompletionManager *clr)
{
    struct manager *manager = impl_from_IHostIoCompletionManager(iface);

    TRACE_CALL("%p, %p.", iface, clr);
    if (!clr)
        return E_POINTER;
    return engine_set_clr(manager->engine, clr);
}

static HRESULT WINAPI manager_InitializeHostOverlapped(IHostIoCompletionManager *iface, void *overlapped)
{
    struct manager *manager = impl_from_IHostIoCompletionManager(iface);
    HOSTIOCP_OVERLAPPED_EXTENSION extension;

    TRACE_CALL("%p, %p.", iface, overlapped);
    if (!overlapped)
        return E_POINTER;
    extension.Tag = HOSTIOCP_OVERLAPPED_TAG;
    extension.Sequence = (DWORD)InterlockedIncrement(&manager->overlapped_sequence);
    extension.Owner = (ULONG_PTR)manager;
    /* The extension follows the OVERLAPPED and need not be aligned for a ULONGLONG. */
    memcpy((BYTE *)overlapped + sizeof(OVERLAPPED), &extension, sizeof(extension));
    return S_OK;
}

static HRESULT WINAPI manager_Bind(IHostIoCompletionManager *iface, HANDLE port, HANDLE handle)
{
    struct manager *manager = impl_from_IHostIoCompletionManager(iface);

    TRACE_CALL("%p, %p, %p.", iface, port, handle);
    if (!handle || handle == INVALID_HANDLE_VALUE)
        return E_INVALIDARG;
    return engine_bind(manager->engine, port, handle);
}

static HRESULT WINAPI manager_SetMinThreads(IHostIoCompletionManager *iface, DWORD count)
{
    struct manager *manager = impl_from_IHostIoCompletionManager(iface);

    TRACE_CALL("%p, %lu.", iface, count);
    return engine_set_min_threads(manager->engine, count);
}

static HRESULT WINAPI manager_GetMinThreads(IHostIoCompletionManager *iface, DWORD *count)
{
    struct manager *manager = impl_from_IHostIoCompletionManager(iface);

    TRACE_CALL("%p, %p.", iface, count);
    if (!count)
        return E_POINTER;
    *count = engine_min_threads(manager->engine);
    return S_OK;
}

static const IHostIoCompletionManagerVtbl manager_vtbl =
{
    manager_QueryInterface,
    manager_AddRef,
    manager_Release,
    manager_CreateIoCompletionPort,
    manager_CloseIoCompletionPort,
    manager_SetMaxThreads,
    manager_GetMaxThreads,
    manager_GetAvailableThreads,
    manager_GetHostOverlappedSize,
    manager_SetCLRIoCompletionManager,
    manager_InitializeHostOverlapped,
    manager_Bind,
    manager_SetMinThreads,
    manager_GetMinThreads,
};

static HRESULT WINAPI statistics_QueryInterface(IHostIoCpStatistics *iface, REFIID riid, void **out)
{
    struct manager *manager = impl_from_IHostIoCpStatistics(iface);
    HRESULT hr;

    TRACE_CALL("%p, %s, %p.", iface, debugstr_guid(riid), out);
    if ((hr = query_interface(manager, riid, out)) == E_NOINTERFACE)
        WARN("%s not implemented.", debugstr_guid(riid));
    return hr;
}

static ULONG WINAPI statistics_AddRef(IHostIoCpStatistics *iface)
{
    struct manager *manager = impl_from_IHostIoCpStatistics(iface);
    ULONG refcount = InterlockedIncrement(&manager->refs);

    TRACE_CALL("%p, refcount %lu.", iface, refcount);
    return refcount;
}

static ULONG WINAPI statistics_Release(IHostIoCpStatistics *iface)
{
    struct manager *manager = impl_from_IHostIoCpStatistics(iface);
    ULONG refcount = InterlockedDecrement(&manager->refs);

    TRACE_CALL("%p, refcount %lu.", iface, refcount);
    if (!refcount)
        manager_destroy(manager);
    return refcount;
}

/* Callers built against version 1.0 pass the smaller structure; they get its fields only. */
static HRESULT check_statistics_buffer(const HOSTIOCP_STATISTICS *stats)
{
    if (!stats)
        return E_POINTER;
    return stats->cbSize == sizeof(*stats) || stats->cbSize == HOSTIOCP_STATISTICS_V1_SIZE ? S_OK : E_INVALIDARG;
}

static HRESULT copy_statistics(HRESULT hr, const HOSTIOCP_STATISTICS *all, HOSTIOCP_STATISTICS *stats)
{
    DWORD size = stats->cbSize;

    if (SUCCEEDED(hr))
    {
        memcpy(stats, all, size);
        stats->cbSize = size;
    }
    return hr;
}

static HRESULT WINAPI statistics_GetStatistics(IHostIoCpStatistics *iface, HOSTIOCP_STATISTICS *stats)
{
    struct manager *manager = impl_from_IHostIoCpStatistics(iface);
    HOSTIOCP_STATISTICS all;
    HRESULT hr;

    TRACE_CALL("%p, %p.", iface, stats);
    if (FAILED(hr = check_statistics_buffer(stats)))
        return hr;
    return copy_statistics(engine_statistics(manager->engine, &all), &all, stats);
}

static HRESULT WINAPI statistics_GetPortStatistics(IHostIoCpStatistics *iface, HANDLE port,
                                                   HOSTIOCP_STATISTICS *stats)
{
    struct manager *manager = impl_from_IHostIoCpStatistics(iface);
    HOSTIOCP_STATISTICS all;
    HRESULT hr;

    TRACE_CALL("%p, %p, %p.", iface, port, stats);
    if (FAILED(hr = check_statistics_buffer(stats)))
        return hr;
    if (!port || port == INVALID_HANDLE_VALUE)
        return E_INVALIDARG;
    return copy_statistics(engine_port_statistics(manager->engine, port, &all), &all, stats);
}

static const IHostIoCpStatisticsVtbl statistics_vtbl =
{
    statistics_QueryInterface,
    statistics_AddRef,
    statistics_Release,
    statistics_GetStatistics,
    statistics_GetPortStatistics,
};

static HRESULT WINAPI settings_QueryInterface(IHostIoCpSettings *iface, REFIID riid, void **out)
{
    struct manager *manager = impl_from_IHostIoCpSettings(iface);
    HRESULT hr;

    TRACE_CALL("%p, %s, %p.", iface, debugstr_guid(riid), out);
    if ((hr = query_interface(manager, riid, out)) == E_NOINTERFACE)
        WARN("%s not implemented.", debugstr_guid(riid));
    return hr;
}

static ULONG WINAPI settings_AddRef(IHostIoCpSettings *iface)
{
    struct manager *manager = impl_from_IHostIoCpSettings(iface);
    ULONG refcount = InterlockedIncrement(&manager->refs);

    TRACE_CALL("%p, refcount %lu.", iface, refcount);
    return refcount;
}

static ULONG WINAPI settings_Release(IHostIoCpSettings *iface)
{
    struct manager *manager = impl_from_IHostIoCpSettings(iface);
    ULONG refcount = InterlockedDecrement(&manager->refs);

    TRACE_CALL("%p, refcount %lu.", iface, refcount);
    if (!refcount)
        manager_destroy(manager);
    return refcount;
}

static HRESULT WINAPI settings_SetIdleTimeout(IHostIoCpSettings *iface, DWORD milliseconds)
{
    struct manager *manager = impl_from_IHostIoCpSettings(iface);

    TRACE_CALL("%p, %lu.", iface, milliseconds);
    return engine_set_idle_timeout(manager->engine, milliseconds);
}

static HRESULT WINAPI settings_GetIdleTimeout(IHostIoCpSettings *iface, DWORD *milliseconds)
{
    struct manager *manager = impl_from_IHostIoCpSettings(iface);

    TRACE_CALL("%p, %p.", iface, milliseconds);
    if (!milliseconds)
        return E_POINTER;
    *milliseconds = engine_idle_timeout(manager->engine);
    return S_OK;
}

static HRESULT WINAPI settings_SetBatchSize(IHostIoCpSettings *iface, DWORD entries)
{
    struct manager *manager = impl_from_IHostIoCpSettings(iface);

    TRACE_CALL("%p, %lu.", iface, entries);
    return engine_set_batch_size(manager->engine, entries);
}

static HRESULT WINAPI settings_GetBatchSize(IHostIoCpSettings *iface, DWORD *entries)
{
    struct manager *manager = impl_from_IHostIoCpSettings(iface);

    TRACE_CALL("%p, %p.", iface, entries);
    if (!entries)
        return E_POINTER;
    *entries = engine_batch_size(manager->engine);
    return S_OK;
}

static const IHostIoCpSettingsVtbl settings_vtbl =
{
    settings_QueryInterface,
    settings_AddRef,
    settings_Release,
    settings_SetIdleTimeout,
    settings_GetIdleTimeout,
    settings_SetBatchSize,
    settings_GetBatchSize,
};

HRESULT manager_create(IUnknown *outer, REFIID riid, void **out)
{
    struct manager *manager;
    HRESULT hr;

    if (outer)
        return CLASS_E_NOAGGREGATION;
    if (!(manager = heap_alloc(HEAP_ZERO_MEMORY, sizeof(*manager))))
        return E_OUTOFMEMORY;
    manager->IHostIoCompletionManager_iface.lpVtbl = &manager_vtbl;
    manager->IHostIoCpStatistics_iface.lpVtbl = &statistics_vtbl;
    manager->IHostIoCpSettings_iface.lpVtbl = &settings_vtbl;
    manager->refs = 1;
    module_add_ref();
    if (!(manager->engine = engine_create()))
    {
        HeapFree(GetProcessHeap(), 0, manager);
        module_release();
        return E_OUTOFMEMORY;
    }
    hr = CoCreateFreeThreadedMarshaler((IUnknown *)&manager->IHostIoCompletionManager_iface,
                                       &manager->marshaler);
    if (SUCCEEDED(hr))
        hr = manager_QueryInterface(&manager->IHostIoCompletionManager_iface, riid, out);
    manager_Release(&manager->IHostIoCompletionManager_iface);
    TRACE("manager %p created: %08lx", manager, hr);
    return hr;
}
