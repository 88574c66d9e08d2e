#include "fakeclr.h"

static inline struct fake_clr *impl_from_ICLRIoCompletionManager(ICLRIoCompletionManager *iface)
{
    return CONTAINING_RECORD(iface, struct fake_clr, ICLRIoCompletionManager_iface);
}

static HRESULT WINAPI fake_clr_QueryInterface(ICLRIoCompletionManager *iface, REFIID riid, void **out)
{
    if (IsEqualIID(riid, &IID_IUnknown) || IsEqualIID(riid, &IID_ICLRIoCompletionManager))
    {
        *out = iface;
        ICLRIoCompletionManager_AddRef(iface);
        return S_OK;
    }
    *out = NULL;
    return E_NOINTERFACE;
}

static ULONG WINAPI fake_clr_AddRef(ICLRIoCompletionManager *iface)
{
    return InterlockedIncrement(&impl_from_ICLRIoCompletionManager(iface)->refs);
}

static ULONG WINAPI fake_clr_Release(ICLRIoCompletionManager *iface)
{
    return InterlockedDecrement(&impl_from_ICLRIoCompletionManager(iface)->refs);
}

static HRESULT WINAPI fake_clr_OnComplete(ICLRIoCompletionManager *iface, DWORD error, DWORD bytes,
                                          void *overlapped)
{
    struct fake_clr *clr = impl_from_ICLRIoCompletionManager(iface);

    clr->last_error = error;
    clr->last_bytes = bytes;
    clr->last_overlapped = overlapped;
    clr->last_thread = GetCurrentThreadId();
    if (error)
        InterlockedIncrement(&clr->failures);
    if (clr->hook)
        clr->hook(clr, error, bytes, overlapped);
    if (InterlockedIncrement(&clr->calls) == clr->expected)
        SetEvent(clr->reached);
    return S_OK;
}

static const ICLRIoCompletionManagerVtbl fake_clr_vtbl =
{
    fake_clr_QueryInterface,
    fake_clr_AddRef,
    fake_clr_Release,
    fake_clr_OnComplete,
};

struct fake_clr *fake_clr_create(void)
{
    struct fake_clr *clr = HeapAlloc(GetProcessHeap(), HEAP_ZERO_MEMORY, sizeof(*clr));

    clr->ICLRIoCompletionManager_iface.lpVtbl = &fake_clr_vtbl;
    clr->refs = 1;
    clr->expected = -1;
    clr->reached = CreateEventW(NULL, TRUE, FALSE, NULL);
    return clr;
}

void fake_clr_destroy(struct fake_clr *clr)
{
    CloseHandle(clr->reached);
    HeapFree(GetProcessHeap(), 0, clr);
}

void fake_clr_expect(struct fake_clr *clr, LONG count)
{
    ResetEvent(clr->reached);
    InterlockedExchange(&clr->expected, clr->calls + count);
    if (clr->calls >= clr->expected)
        SetEvent(clr->reached);
}

BOOL fake_clr_wait(struct fake_clr *clr, DWORD timeout)
{
    return WaitForSingleObject(clr->reached, timeout) == WAIT_OBJECT_0;
}

HRESULT create_manager_with_clr(struct fake_clr *clr, DWORD min, DWORD max,
                                IHostIoCompletionManager **manager, HANDLE *port)
{
    HRESULT hr = create_manager(manager);

    if (SUCCEEDED(hr))
        hr = activate_manager(*manager, &clr->ICLRIoCompletionManager_iface, min, max);
    if (SUCCEEDED(hr) && port)
        hr = IHostIoCompletionManager_CreateIoCompletionPort(*manager, port);
    return hr;
}

BOOL wait_until(BOOL (*done)(void *context), void *context, DWORD timeout)
{
    DWORD start = GetTickCount();
    HANDLE never = CreateEventW(NULL, TRUE, FALSE, NULL);
    BOOL ok;

    while (!(ok = done(context)) && GetTickCount() - start <= timeout)
        WaitForSingleObject(never, 5);  /* re-read interval, not a synchronisation */
    CloseHandle(never);
    return ok;
}

struct statistics_condition
{
    IHostIoCompletionManager *manager;
    HANDLE port;
    BOOL (*done)(const HOSTIOCP_STATISTICS *stats, LONG arg);
    LONG arg;
};

static BOOL statistics_hold(void *context)
{
    struct statistics_condition *condition = context;
    HOSTIOCP_STATISTICS stats;

    return SUCCEEDED(get_statistics(condition->manager, condition->port, &stats)) &&
           condition->done(&stats, condition->arg);
}

BOOL wait_for_statistics(IHostIoCompletionManager *manager, HANDLE port,
                         BOOL (*done)(const HOSTIOCP_STATISTICS *stats, LONG arg), LONG arg,
                         DWORD timeout)
{
    struct statistics_condition condition = { manager, port, done, arg };
    return wait_until(statistics_hold, &condition, timeout);
}
