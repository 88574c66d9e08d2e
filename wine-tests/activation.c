/* Conformance: activation through COM by CLSID and ProgID in both apartment types, the
 * QueryInterface rules, the free-threaded marshaler, the class factory, DllCanUnloadNow and
 * the IHostControl that hands the manager to the CLR. */
#include <windows.h>
#include <ole2.h>
#include <stdio.h>
#define STANDALONE
#include <wine/test.h>
#include "hostiocp.h"
#include "support.h"

/* IHostTaskManager, one of the managers we do not offer. */
static const IID IID_IHostTaskManager =
    { 0x997ff24c, 0x43b7, 0x4352, { 0x86, 0x67, 0x0d, 0xc0, 0x4f, 0xaf, 0xd3, 0x54 } };

static HMODULE dll;
static HRESULT (WINAPI *pDllGetClassObject)(REFCLSID, REFIID, void **);
static HRESULT (WINAPI *pDllCanUnloadNow)(void);

static void check_activation(const char *apartment)
{
    IHostIoCompletionManager *manager = NULL;
    IHostControl *control = NULL;
    HRESULT hr;

    hr = CoCreateInstance(&CLSID_HostIoCompletionManager, NULL, CLSCTX_INPROC_SERVER,
                          &IID_IHostIoCompletionManager, (void **)&manager);
    ok(hr == S_OK, "%s: CoCreateInstance(manager) returned %#lx\n", apartment, hr);
    if (manager)
        IHostIoCompletionManager_Release(manager);
    hr = CoCreateInstance(&CLSID_HostIoCpHostControl, NULL, CLSCTX_INPROC_SERVER, &IID_IHostControl,
                          (void **)&control);
    ok(hr == S_OK, "%s: CoCreateInstance(host control) returned %#lx\n", apartment, hr);
    if (control)
        IHostControl_Release(control);
}

static DWORD WINAPI sta_thread(void *arg)
{
    (void)arg;
    CoInitializeEx(NULL, COINIT_APARTMENTTHREADED);
    check_activation("STA");
    CoUninitialize();
    return 0;
}

static void test_activation_in_both_apartments(void)
{
    HANDLE thread = CreateThread(NULL, 0, sta_thread, NULL, 0, NULL);

    ok(WaitForSingleObject(thread, 60000) == WAIT_OBJECT_0, "STA thread did not finish\n");
    CloseHandle(thread);
    check_activation("MTA");
}

static void test_progids(void)
{
    static const struct { const WCHAR *progid; const CLSID *clsid; } progids[] =
    {
        { HOSTIOCP_MANAGER_PROGID, &CLSID_HostIoCompletionManager },
        { HOSTIOCP_MANAGER_VI_PROGID, &CLSID_HostIoCompletionManager },
        { HOSTIOCP_HOST_CONTROL_PROGID, &CLSID_HostIoCpHostControl },
        { HOSTIOCP_HOST_CONTROL_VI_PROGID, &CLSID_HostIoCpHostControl },
    };
    IUnknown *object;
    WCHAR *progid;
    CLSID clsid;
    HRESULT hr;
    size_t i;

    for (i = 0; i < ARRAYSIZE(progids); i++)
    {
        hr = CLSIDFromProgID(progids[i].progid, &clsid);
        ok(hr == S_OK, "CLSIDFromProgID(%s) returned %#lx\n", wine_dbgstr_w(progids[i].progid), hr);
        ok(IsEqualCLSID(&clsid, progids[i].clsid), "%s maps to %s\n", wine_dbgstr_w(progids[i].progid),
           wine_dbgstr_guid(&clsid));
        hr = CoCreateInstance(&clsid, NULL, CLSCTX_INPROC_SERVER, &IID_IUnknown, (void **)&object);
        ok(hr == S_OK, "CoCreateInstance by %s returned %#lx\n", wine_dbgstr_w(progids[i].progid), hr);
        if (SUCCEEDED(hr))
            IUnknown_Release(object);
    }
    hr = ProgIDFromCLSID(&CLSID_HostIoCompletionManager, &progid);
    ok(hr == S_OK, "ProgIDFromCLSID returned %#lx\n", hr);
    if (SUCCEEDED(hr))
    {
        ok(!lstrcmpW(progid, HOSTIOCP_MANAGER_PROGID), "ProgID is %s\n", wine_dbgstr_w(progid));
        CoTaskMemFree(progid);
    }
}

static void test_query_interface(void)
{
    IHostIoCompletionManager *manager;
    IHostIoCpStatistics *statistics;
    IHostIoCpSettings *settings;
    IUnknown *unknown1, *unknown2, *unknown3, *marshal;
    void *out;
    HRESULT hr;

    hr = CoCreateInstance(&CLSID_HostIoCompletionManager, NULL, CLSCTX_INPROC_SERVER,
                          &IID_IHostIoCompletionManager, (void **)&manager);
    ok(hr == S_OK, "CoCreateInstance returned %#lx\n", hr);
    if (FAILED(hr))
        return;
    hr = IHostIoCompletionManager_QueryInterface(manager, &IID_IHostIoCpStatistics, (void **)&statistics);
    ok(hr == S_OK, "QI(IHostIoCpStatistics) returned %#lx\n", hr);
    hr = IHostIoCompletionManager_QueryInterface(manager, &IID_IHostIoCpSettings, (void **)&settings);
    ok(hr == S_OK, "QI(IHostIoCpSettings) returned %#lx\n", hr);
    IHostIoCompletionManager_QueryInterface(manager, &IID_IUnknown, (void **)&unknown1);
    IHostIoCpStatistics_QueryInterface(statistics, &IID_IUnknown, (void **)&unknown2);
    IHostIoCpSettings_QueryInterface(settings, &IID_IUnknown, (void **)&unknown3);
    ok(unknown1 == unknown2 && unknown2 == unknown3, "IUnknown differs between interfaces\n");

    out = (void *)0xdeadbeef;
    hr = IHostIoCompletionManager_QueryInterface(manager, &IID_IDispatch, &out);
    ok(hr == E_NOINTERFACE, "QI(IDispatch) returned %#lx\n", hr);
    ok(out == NULL, "QI(IDispatch) left %p\n", out);
    out = (void *)0xdeadbeef;
    hr = IHostIoCompletionManager_QueryInterface(manager, &IID_ICLRIoCompletionManager, &out);
    ok(hr == E_NOINTERFACE && out == NULL, "QI(ICLRIoCompletionManager) returned %#lx, %p\n", hr, out);
    hr = IHostIoCompletionManager_QueryInterface(manager, &IID_IUnknown, NULL);
    ok(hr == E_POINTER, "QI with no out pointer returned %#lx\n", hr);
    hr = IHostIoCompletionManager_QueryInterface(manager, &IID_IMarshal, (void **)&marshal);
    ok(hr == S_OK, "QI(IMarshal) returned %#lx: no free-threaded marshaler\n", hr);
    if (SUCCEEDED(hr))
    {
        IUnknown *outer;
        IUnknown_QueryInterface(marshal, &IID_IUnknown, (void **)&outer);
        ok(outer == unknown1, "the marshaler is not aggregated\n");
        IUnknown_Release(outer);
        IUnknown_Release(marshal);
    }
    IUnknown_Release(unknown1);
    IUnknown_Release(unknown2);
    IUnknown_Release(unknown3);
    IHostIoCpSettings_Release(settings);
    IHostIoCpStatistics_Release(statistics);
    ok(IHostIoCompletionManager_Release(manager) == 0, "references left\n");
}

struct unmarshal
{
    IStream *stream;
    void *pointer;
    HRESULT hr;
};

static DWORD WINAPI mta_unmarshal_thread(void *arg)
{
    struct unmarshal *state = arg;

    CoInitializeEx(NULL, COINIT_MULTITHREADED);
    state->hr = CoGetInterfaceAndReleaseStream(state->stream, &IID_IHostIoCompletionManager, &state->pointer);
    if (SUCCEEDED(state->hr))
        IUnknown_Release((IUnknown *)state->pointer);
    CoUninitialize();
    return 0;
}

static DWORD WINAPI sta_marshal_thread(void *arg)
{
    struct unmarshal *state = arg;
    IHostIoCompletionManager *manager;
    HANDLE thread;
    HRESULT hr;

    CoInitializeEx(NULL, COINIT_APARTMENTTHREADED);
    hr = CoCreateInstance(&CLSID_HostIoCompletionManager, NULL, CLSCTX_INPROC_SERVER,
                          &IID_IHostIoCompletionManager, (void **)&manager);
    ok(hr == S_OK, "CoCreateInstance in an STA returned %#lx\n", hr);
    if (SUCCEEDED(hr))
    {
        hr = CoMarshalInterThreadInterfaceInStream(&IID_IHostIoCompletionManager, (IUnknown *)manager,
                                                   &state->stream);
        ok(hr == S_OK, "CoMarshalInterThreadInterfaceInStream returned %#lx\n", hr);
        thread = CreateThread(NULL, 0, mta_unmarshal_thread, state, 0, NULL);
        ok(WaitForSingleObject(thread, 60000) == WAIT_OBJECT_0, "MTA thread did not finish\n");
        CloseHandle(thread);
        ok(state->hr == S_OK, "unmarshalling returned %#lx\n", state->hr);
        ok(state->pointer == manager, "the MTA got a proxy %p, not the object %p\n", state->pointer, manager);
        IHostIoCompletionManager_Release(manager);
    }
    CoUninitialize();
    return 0;
}

static void test_pointer_stays_direct_across_apartments(void)
{
    struct unmarshal state = { 0 };
    HANDLE thread = CreateThread(NULL, 0, sta_marshal_thread, &state, 0, NULL);

    ok(WaitForSingleObject(thread, 60000) == WAIT_OBJECT_0, "STA thread did not finish\n");
    CloseHandle(thread);
}

static void test_class_factory(void)
{
    static const CLSID unknown_clsid = { 0x12345678, 0x1234, 0x1234, { 1, 2, 3, 4, 5, 6, 7, 8 } };
    IClassFactory *factory;
    IUnknown *object;
    void *out;
    HRESULT hr;

    out = (void *)0xdeadbeef;
    hr = pDllGetClassObject(&unknown_clsid, &IID_IClassFactory, &out);
    ok(hr == CLASS_E_CLASSNOTAVAILABLE, "unknown CLSID: %#lx\n", hr);
    ok(out == NULL, "unknown CLSID left %p\n", out);
    hr = pDllGetClassObject(&CLSID_HostIoCompletionManager, &IID_IClassFactory, NULL);
    ok(hr == E_POINTER, "NULL out pointer: %#lx\n", hr);
    hr = pDllGetClassObject(&CLSID_HostIoCompletionManager, &IID_IDispatch, &out);
    ok(hr == E_NOINTERFACE && out == NULL, "class object QI(IDispatch): %#lx\n", hr);

    hr = pDllGetClassObject(&CLSID_HostIoCompletionManager, &IID_IClassFactory, (void **)&factory);
    ok(hr == S_OK, "DllGetClassObject returned %#lx\n", hr);
    if (FAILED(hr))
        return;
    out = (void *)0xdeadbeef;
    hr = IClassFactory_CreateInstance(factory, (IUnknown *)factory, &IID_IUnknown, &out);
    ok(hr == CLASS_E_NOAGGREGATION, "aggregation: %#lx\n", hr);
    ok(out == NULL, "aggregation left %p\n", out);
    hr = IClassFactory_CreateInstance(factory, NULL, &IID_IDispatch, &out);
    ok(hr == E_NOINTERFACE && out == NULL, "CreateInstance(IDispatch): %#lx, %p\n", hr, out);
    hr = IClassFactory_CreateInstance(factory, NULL, &IID_IUnknown, NULL);
    ok(hr == E_POINTER, "CreateInstance with no out pointer: %#lx\n", hr);

    ok(pDllCanUnloadNow() == S_OK, "DllCanUnloadNow with nothing alive\n");
    hr = IClassFactory_CreateInstance(factory, NULL, &IID_IUnknown, (void **)&object);
    ok(hr == S_OK, "CreateInstance returned %#lx\n", hr);
    ok(pDllCanUnloadNow() == S_FALSE, "DllCanUnloadNow with an object alive\n");
    IUnknown_Release(object);
    ok(pDllCanUnloadNow() == S_OK, "DllCanUnloadNow after the last object\n");
    IClassFactory_LockServer(factory, TRUE);
    ok(pDllCanUnloadNow() == S_FALSE, "DllCanUnloadNow with a lock\n");
    IClassFactory_LockServer(factory, FALSE);
    ok(pDllCanUnloadNow() == S_OK, "DllCanUnloadNow after unlocking\n");
    /* An unlock without a lock must not leave the count below nothing. */
    IClassFactory_LockServer(factory, FALSE);
    ok(pDllCanUnloadNow() == S_OK, "DllCanUnloadNow after an unbalanced unlock\n");
    IClassFactory_LockServer(factory, TRUE);
    ok(pDllCanUnloadNow() == S_FALSE, "DllCanUnloadNow with a lock after an unbalanced unlock\n");
    IClassFactory_LockServer(factory, FALSE);
    ok(pDllCanUnloadNow() == S_OK, "DllCanUnloadNow after the lock is taken back\n");
    out = (void *)0xdeadbeef;
    hr = IClassFactory_QueryInterface(factory, NULL, &out);
    ok(hr == E_INVALIDARG && out == NULL, "class factory QueryInterface(NULL riid): %#lx, %p\n", hr, out);
    IClassFactory_Release(factory);
}

static void test_host_control(void)
{
    IHostIoCompletionManager *first, *second;
    IHostThreadpoolManager *threadpool, *threadpool_again;
    IUnknown *io_identity, *threadpool_identity;
    IHostControl *control;
    void *out;
    HRESULT hr;

    hr = CoCreateInstance(&CLSID_HostIoCpHostControl, NULL, CLSCTX_INPROC_SERVER, &IID_IHostControl,
                          (void **)&control);
    ok(hr == S_OK, "CoCreateInstance returned %#lx\n", hr);
    if (FAILED(hr))
        return;
    hr = IHostControl_GetHostManager(control, &IID_IHostIoCompletionManager, (void **)&first);
    ok(hr == S_OK, "GetHostManager(IHostIoCompletionManager) returned %#lx\n", hr);
    hr = IHostControl_GetHostManager(control, &IID_IHostIoCompletionManager, (void **)&second);
    ok(hr == S_OK, "second GetHostManager returned %#lx\n", hr);
    ok(first == second, "GetHostManager returned two managers\n");
    /* The CLR asks for the thread-pool manager before the I/O one: both are the one object. */
    hr = IHostControl_GetHostManager(control, &IID_IHostThreadpoolManager, (void **)&threadpool);
    ok(hr == S_OK, "GetHostManager(IHostThreadpoolManager) returned %#lx\n", hr);
    hr = IHostControl_GetHostManager(control, &IID_IHostThreadpoolManager, (void **)&threadpool_again);
    ok(hr == S_OK && threadpool_again == threadpool, "second GetHostManager(IHostThreadpoolManager): %#lx, %p, %p\n",
       hr, threadpool_again, threadpool);
    IHostIoCompletionManager_QueryInterface(first, &IID_IUnknown, (void **)&io_identity);
    IHostThreadpoolManager_QueryInterface(threadpool, &IID_IUnknown, (void **)&threadpool_identity);
    ok(io_identity == threadpool_identity, "the two managers are different objects: %p, %p\n", io_identity,
       threadpool_identity);
    IUnknown_Release(io_identity);
    IUnknown_Release(threadpool_identity);
    IHostThreadpoolManager_Release(threadpool_again);
    IHostThreadpoolManager_Release(threadpool);
    out = (void *)0xdeadbeef;
    hr = IHostControl_GetHostManager(control, &IID_IHostTaskManager, &out);
    ok(hr == E_NOINTERFACE && out == NULL, "GetHostManager(IHostTaskManager): %#lx, %p\n", hr, out);
    out = (void *)0xdeadbeef;
    hr = IHostControl_GetHostManager(control, &IID_IUnknown, &out);
    ok(hr == E_NOINTERFACE && out == NULL, "GetHostManager(IUnknown): %#lx, %p\n", hr, out);
    hr = IHostControl_GetHostManager(control, &IID_IHostIoCompletionManager, NULL);
    ok(hr == E_POINTER, "GetHostManager with no out pointer: %#lx\n", hr);
    hr = IHostControl_SetAppDomainManager(control, 1, NULL);
    ok(hr == S_OK, "SetAppDomainManager returned %#lx\n", hr);
    IHostIoCompletionManager_Release(second);
    /* The host control keeps the manager for the CLR, which never releases its copy. */
    ok(IHostIoCompletionManager_Release(first) == 1, "the host control holds no reference\n");
    ok(IHostControl_Release(control) == 0, "host control references left\n");
}

START_TEST(activation)
{
    WCHAR dll_path[MAX_PATH * 2];

    get_dll_path(dll_path, ARRAYSIZE(dll_path));
    dll = LoadLibraryW(dll_path);
    ok(dll != NULL, "cannot load %s: %lu\n", wine_dbgstr_w(dll_path), GetLastError());
    if (!dll)
        return;
    pDllGetClassObject = (void *)GetProcAddress(dll, "DllGetClassObject");
    pDllCanUnloadNow = (void *)GetProcAddress(dll, "DllCanUnloadNow");
    CoInitializeEx(NULL, COINIT_MULTITHREADED);

    test_activation_in_both_apartments();
    test_progids();
    test_query_interface();
    test_pointer_stays_direct_across_apartments();
    test_class_factory();
    test_host_control();

    CoUninitialize();
    FreeLibrary(dll);
}
