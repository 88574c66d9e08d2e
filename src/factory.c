/* Class objects: DllGetClassObject and IClassFactory for each creatable class. */
#include "hostiocp_private.h"

struct class_factory
{
    IClassFactory IClassFactory_iface;
    const CLSID *clsid;
    HRESULT (*create)(REFIID riid, void **out);
};

static inline struct class_factory *impl_from_IClassFactory(IClassFactory *iface)
{
    return CONTAINING_RECORD(iface, struct class_factory, IClassFactory_iface);
}

static HRESULT WINAPI factory_QueryInterface(IClassFactory *iface, REFIID riid, void **out)
{
    HRESULT hr;

    TRACE_CALL("%p, %s, %p.", iface, debugstr_guid(riid), out);
    if ((hr = query_only_interface((IUnknown *)iface, &IID_IClassFactory, riid, out)) == E_NOINTERFACE)
        WARN("%s not implemented.", debugstr_guid(riid));
    return hr;
}

/* The class objects are static; their lifetime is the module's, kept by LockServer. */
static ULONG WINAPI factory_AddRef(IClassFactory *iface)
{
    TRACE_CALL("%p.", iface);
    return 2;
}

static ULONG WINAPI factory_Release(IClassFactory *iface)
{
    TRACE_CALL("%p.", iface);
    return 1;
}

static HRESULT WINAPI factory_CreateInstance(IClassFactory *iface, IUnknown *outer, REFIID riid,
                                             void **out)
{
    struct class_factory *factory = impl_from_IClassFactory(iface);
    HRESULT hr;

    TRACE_CALL("%p, %p, %s, %p.", iface, outer, debugstr_guid(riid), out);
    if (FAILED(hr = check_interface_out(riid, out)))
        return hr;
    if (outer)
        return CLASS_E_NOAGGREGATION;
    return factory->create(riid, out);
}

/* LockServer locks, for all class objects; an unlock without a lock changes nothing. */
static volatile LONG server_locks;

static BOOL take_back_a_lock(void)
{
    LONG locks = server_locks;

    while (locks > 0)
    {
        LONG seen = InterlockedCompareExchange(&server_locks, locks - 1, locks);
        if (seen == locks)
            return TRUE;
        locks = seen;
    }
    return FALSE;
}

static HRESULT WINAPI factory_LockServer(IClassFactory *iface, BOOL lock)
{
    TRACE_CALL("%p, %d.", iface, lock);
    if (lock)
    {
        InterlockedIncrement(&server_locks);
        module_add_ref();
    }
    else if (take_back_a_lock())
        module_release();
    return S_OK;
}

static const IClassFactoryVtbl factory_vtbl =
{
    factory_QueryInterface,
    factory_AddRef,
    factory_Release,
    factory_CreateInstance,
    factory_LockServer,
};

static struct class_factory factories[] =
{
    { { &factory_vtbl }, &CLSID_HostIoCompletionManager, manager_create },
    { { &factory_vtbl }, &CLSID_HostIoCpHostControl, host_control_create },
};

HRESULT WINAPI DllGetClassObject(REFCLSID rclsid, REFIID riid, void **out)
{
    HRESULT hr;
    size_t i;

    if (FAILED(hr = check_interface_out(riid, out)))
        return hr;
    if (!rclsid)
        return E_INVALIDARG;
    for (i = 0; i < ARRAYSIZE(factories); i++)
        if (IsEqualCLSID(rclsid, factories[i].clsid))
            return IClassFactory_QueryInterface(&factories[i].IClassFactory_iface, riid, out);
    return CLASS_E_CLASSNOTAVAILABLE;
}
