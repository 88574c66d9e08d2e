/* IHostControl for ICLRRuntimeHost::SetHostControl: it offers the CLR our I/O completion
 * manager and our thread-pool manager, both the same object and always the same one, and no
 * other host manager. */
#include "hostiocp_private.h"

struct host_control
{
    IHostControl IHostControl_iface;
    LONG refs;
    IUnknown *marshaler;
    IHostIoCompletionManager *volatile manager;
};

static inline struct host_control *impl_from_IHostControl(IHostControl *iface)
{
    return CONTAINING_RECORD(iface, struct host_control, IHostControl_iface);
}

static HRESULT WINAPI host_control_QueryInterface(IHostControl *iface, REFIID riid, void **out)
{
    HRESULT hr;

    TRACE_CALL("%p, %s, %p.", iface, debugstr_guid(riid), out);
    if ((hr = query_only_interface((IUnknown *)iface, &IID_IHostControl, riid, out)) != E_NOINTERFACE)
        return hr;
    if (IsEqualIID(riid, &IID_IMarshal))
        return IUnknown_QueryInterface(impl_from_IHostControl(iface)->marshaler, riid, out);
    WARN("%s not implemented.", debugstr_guid(riid));
    return E_NOINTERFACE;
}

static ULONG WINAPI host_control_AddRef(IHostControl *iface)
{
    struct host_control *control = impl_from_IHostControl(iface);
    ULONG refcount = InterlockedIncrement(&control->refs);

    TRACE_CALL("%p, refcount %lu.", iface, refcount);
    return refcount;
}

static ULONG WINAPI host_control_Release(IHostControl *iface)
{
    struct host_control *control = impl_from_IHostControl(iface);
    ULONG refcount = InterlockedDecrement(&control->refs);

    TRACE_CALL("%p, refcount %lu.", iface, refcount);
    if (!refcount)
    {
        if (control->manager)
            IHostIoCompletionManager_Release(control->manager);
        if (control->marshaler)
            IUnknown_Release(control->marshaler);
        HeapFree(GetProcessHeap(), 0, control);
        module_release();
    }
    return refcount;
}

/* `riid` is one of the manager's interfaces. */
static HRESULT get_manager(struct host_control *control, REFIID riid, void **out)
{
    IHostIoCompletionManager *created;
    HRESULT hr;

    if (!control->manager)
    {
        hr = manager_create(&IID_IHostIoCompletionManager, (void **)&created);
        if (FAILED(hr))
            return hr;
        /* Two first calls racing: the loser drops its copy, so every caller gets one object. */
        if (InterlockedCompareExchangePointer((void *volatile *)&control->manager, created, NULL))
            IHostIoCompletionManager_Release(created);
    }
    return IHostIoCompletionManager_QueryInterface(control->manager, riid, out);
}

static HRESULT WINAPI host_control_GetHostManager(IHostControl *iface, REFIID riid, void **out)
{
    struct host_control *control = impl_from_IHostControl(iface);
    HRESULT hr;

    TRACE_CALL("%p, %s, %p.", iface, debugstr_guid(riid), out);
    if (FAILED(hr = check_interface_out(riid, out)))
        return hr;
    if (IsEqualIID(riid, &IID_IHostIoCompletionManager) || IsEqualIID(riid, &IID_IHostThreadpoolManager))
        return get_manager(control, riid, out);
    WARN("manager %s not provided.", debugstr_guid(riid));
    return E_NOINTERFACE;
}

/* The CLR reports each AppDomain manager here; this host has no use for them. */
static HRESULT WINAPI host_control_SetAppDomainManager(IHostControl *iface, DWORD domain,
                                                       IUnknown *domain_manager)
{
    TRACE_CALL("%p, %lu, %p.", iface, domain, domain_manager);
    return S_OK;
}

static const IHostControlVtbl host_control_vtbl =
{
    host_control_QueryInterface,
    host_control_AddRef,
    host_control_Release,
    host_control_GetHostManager,
    host_control_SetAppDomainManager,
};

HRESULT host_control_create(REFIID riid, void **out)
{
    struct host_control *control;

    if (!(control = heap_alloc(HEAP_ZERO_MEMORY, sizeof(*control))))
        return E_OUTOFMEMORY;
    control->IHostControl_iface.lpVtbl = &host_control_vtbl;
    control->refs = 1;
    module_add_ref();
    return finish_create((IUnknown *)&control->IHostControl_iface, &control->marshaler, riid, out);
}
