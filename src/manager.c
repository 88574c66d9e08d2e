/* The host manager object: IHostIoCompletionManager and IHostThreadpoolManager on one engine, with
 * the IHostIoCpStatistics, IHostIoCpWorkStatistics and IHostIoCpSettings extensions.  It checks
 * arguments and hands the work to the engine. */
#include <string.h>
#include "hostiocp_private.h"

struct manager
{
    IHostIoCompletionManager IHostIoCompletionManager_iface;
    IHostThreadpoolManager IHostThreadpoolManager_iface;
    IHostIoCpStatistics IHostIoCpStatistics_iface;
    IHostIoCpWorkStatistics IHostIoCpWorkStatistics_iface;
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

static inline struct manager *impl_from_IHostThreadpoolManager(IHostThreadpoolManager *iface)
{
    return CONTAINING_RECORD(iface, struct manager, IHostThreadpoolManager_iface);
}

static inline struct manager *impl_from_IHostIoCpStatistics(IHostIoCpStatistics *iface)
{
    return CONTAINING_RECORD(iface, struct manager, IHostIoCpStatistics_iface);
}

static inline struct manager *impl_from_IHostIoCpWorkStatistics(IHostIoCpWorkStatistics *iface)
{
    return CONTAINING_RECORD(iface, struct manager, IHostIoCpWorkStatistics_iface);
}

static inline struct manager *impl_from_IHostIoCpSettings(IHostIoCpSettings *iface)
{
    return CONTAINING_RECORD(iface, struct manager, IHostIoCpSettings_iface);
}

/* ---- IUnknown, once for the five interfaces ---- */

/* E_NOINTERFACE is for the caller to warn about. */
static HRESULT query_interface(struct manager *manager, REFIID riid, void **out)
{
    HRESULT hr;

    if (FAILED(hr = check_interface_out(riid, out)))
        return hr;
    if (IsEqualIID(riid, &IID_IUnknown) || IsEqualIID(riid, &IID_IHostIoCompletionManager))
        *out = &manager->IHostIoCompletionManager_iface;
    else if (IsEqualIID(riid, &IID_IHostThreadpoolManager))
        *out = &manager->IHostThreadpoolManager_iface;
    else if (IsEqualIID(riid, &IID_IHostIoCpStatistics))
        *out = &manager->IHostIoCpStatistics_iface;
    else if (IsEqualIID(riid, &IID_IHostIoCpWorkStatistics))
        *out = &manager->IHostIoCpWorkStatistics_iface;
    else if (IsEqualIID(riid, &IID_IHostIoCpSettings))
        *out = &manager->IHostIoCpSettings_iface;
    else if (IsEqualIID(riid, &IID_IMarshal))
        return IUnknown_QueryInterface(manager->marshaler, riid, out);
    else
        return E_NOINTERFACE;
    IUnknown_AddRef((IUnknown *)*out);
    return S_OK;
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

/* <prefix>_QueryInterface, <prefix>_AddRef and <prefix>_Release of the manager's interface `type`:
 * each traces its call with its own name and the interface's pointer, as every COM method does,
 * and all work on the one manager behind the interface. */
#define MANAGER_IUNKNOWN(prefix, type) \
static HRESULT WINAPI prefix##_QueryInterface(type *iface, REFIID riid, void **out) \
{ \
    HRESULT hr; \
\
    TRACE_CALL("%p, %s, %p.", iface, debugstr_guid(riid), out); \
    if ((hr = query_interface(impl_from_##type(iface), riid, out)) == E_NOINTERFACE) \
        WARN("%s not implemented.", debugstr_guid(riid)); \
    return hr; \
} \
\
static ULONG WINAPI prefix##_AddRef(type *iface) \
{ \
    ULONG refcount = InterlockedIncrement(&impl_from_##type(iface)->refs); \
\
    TRACE_CALL("%p, refcount %lu.", iface, refcount); \
    return refcount; \
} \
\
static ULONG WINAPI prefix##_Release(type *iface) \
{ \
    struct manager *manager = impl_from_##type(iface); \
    ULONG refcount = InterlockedDecrement(&manager->refs); \
\
    TRACE_CALL("%p, refcount %lu.", iface, refcount); \
    if (!refcount) \
        manager_destroy(manager); \
    return refcount; \
}

MANAGER_IUNKNOWN(manager, IHostIoCompletionManager)
MANAGER_IUNKNOWN(threadpool, IHostThreadpoolManager)
MANAGER_IUNKNOWN(statistics, IHostIoCpStatistics)
MANAGER_IUNKNOWN(work_statistics, IHostIoCpWorkStatistics)
MANAGER_IUNKNOWN(settings, IHostIoCpSettings)

/* <prefix>_Set<name> and <prefix>_Get<name>, on the manager's interface `type`, of a setting that the
 * engine keeps as a DWORD and checks: each traces its call and hands it to the engine. */
#define ENGINE_SETTING(prefix, type, name, engine_set, engine_get) \
static HRESULT WINAPI prefix##_Set##name(type *iface, DWORD value) \
{ \
    TRACE_CALL("%p, %lu.", iface, value); \
    return engine_set(impl_from_##type(iface)->engine, value); \
} \
\
static HRESULT WINAPI prefix##_Get##name(type *iface, DWORD *value) \
{ \
    TRACE_CALL("%p, %p.", iface, value); \
    if (!value) \
        return E_POINTER; \
    *value = engine_get(impl_from_##type(iface)->engine); \
    return S_OK; \
}

/* ---- IHostIoCompletionManager ---- */

ENGINE_SETTING(manager, IHostIoCompletionManager, MaxThreads, engine_set_max_threads, engine_max_threads)
ENGINE_SETTING(manager, IHostIoCompletionManager, MinThreads, engine_set_min_threads, engine_min_threads)

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

/* ---- IHostThreadpoolManager ---- */

ENGINE_SETTING(threadpool, IHostThreadpoolManager, MaxThreads, engine_set_work_max_threads, engine_work_max_threads)
ENGINE_SETTING(threadpool, IHostThreadpoolManager, MinThreads, engine_set_work_min_threads, engine_work_min_threads)

static HRESULT WINAPI threadpool_QueueUserWorkItem(IHostThreadpoolManager *iface, LPTHREAD_START_ROUTINE function,
                                                   void *context, ULONG flags)
{
    struct manager *manager = impl_from_IHostThreadpoolManager(iface);

    TRACE_CALL("%p, %p, %p, %#lx.", iface, function, context, flags);
    return engine_queue_work_item(manager->engine, function, context, flags);
}

static HRESULT WINAPI threadpool_GetAvailableThreads(IHostThreadpoolManager *iface, DWORD *count)
{
    struct manager *manager = impl_from_IHostThreadpoolManager(iface);

    TRACE_CALL("%p, %p.", iface, count);
    if (!count)
        return E_POINTER;
    *count = engine_work_available_threads(manager->engine);
    return S_OK;
}

static const IHostThreadpoolManagerVtbl threadpool_vtbl =
{
    threadpool_QueryInterface,
    threadpool_AddRef,
    threadpool_Release,
    threadpool_QueueUserWorkItem,
    threadpool_SetMaxThreads,
    threadpool_GetMaxThreads,
    threadpool_GetAvailableThreads,
    threadpool_SetMinThreads,
    threadpool_GetMinThreads,
};

/* ---- IHostIoCpStatistics ---- */

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

/* ---- IHostIoCpWorkStatistics ---- */

static HRESULT WINAPI work_statistics_GetWorkStatistics(IHostIoCpWorkStatistics *iface, HOSTIOCP_WORK_STATISTICS *stats)
{
    struct manager *manager = impl_from_IHostIoCpWorkStatistics(iface);

    TRACE_CALL("%p, %p.", iface, stats);
    if (!stats)
        return E_POINTER;
    if (stats->cbSize != sizeof(*stats))
        return E_INVALIDARG;
    return engine_work_statistics(manager->engine, stats);
}

static const IHostIoCpWorkStatisticsVtbl work_statistics_vtbl =
{
    work_statistics_QueryInterface,
    work_statistics_AddRef,
    work_statistics_Release,
    work_statistics_GetWorkStatistics,
};

/* ---- IHostIoCpSettings ---- */

ENGINE_SETTING(settings, IHostIoCpSettings, IdleTimeout, engine_set_idle_timeout, engine_idle_timeout)
ENGINE_SETTING(settings, IHostIoCpSettings, BatchSize, engine_set_batch_size, engine_batch_size)

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

HRESULT manager_create(REFIID riid, void **out)
{
    struct manager *manager;
    HRESULT hr;

    if (!(manager = heap_alloc(HEAP_ZERO_MEMORY, sizeof(*manager))))
        return E_OUTOFMEMORY;
    manager->IHostIoCompletionManager_iface.lpVtbl = &manager_vtbl;
    manager->IHostThreadpoolManager_iface.lpVtbl = &threadpool_vtbl;
    manager->IHostIoCpStatistics_iface.lpVtbl = &statistics_vtbl;
    manager->IHostIoCpWorkStatistics_iface.lpVtbl = &work_statistics_vtbl;
    manager->IHostIoCpSettings_iface.lpVtbl = &settings_vtbl;
    manager->refs = 1;
    module_add_ref();
    if (!(manager->engine = engine_create()))
    {
        HeapFree(GetProcessHeap(), 0, manager);
        module_release();
        return E_OUTOFMEMORY;
    }
    hr = finish_create((IUnknown *)&manager->IHostIoCompletionManager_iface, &manager->marshaler, riid, out);
    TRACE("manager %p created: %08lx", manager, hr);
    return hr;
}
