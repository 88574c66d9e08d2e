/* The four ways the benchmark turns completed I/O into callbacks: a bare completion-port loop
 * (the limit), hostiocp driven as the CLR drives it (with its thread-pool manager for the work
 * workload), the Windows thread pool (TP_IO) and BindIoCompletionCallback; and the ways it runs
 * work items: hostiocp's IHostThreadpoolManager, TrySubmitThreadpoolCallback and
 * QueueUserWorkItem (the CLR's own worker pool is modelled in clrworkers.c). */
#include <stdio.h>
#include <stdlib.h>
#include <ole2.h>
#include <psapi.h>
#include "hostiocp.h"
#include "iobench.h"

void dispatcher_init(struct dispatcher *d, const struct dispatcher_ops *ops, DWORD threads)
{
    ZeroMemory(d, sizeof(*d));
    d->ops = ops;
    d->threads = threads;
}

/* ---- (a) a bare completion-port loop: N threads calling one function pointer ---- */

#define STOP_KEY ((ULONG_PTR)-1)

struct bare_port
{
    HANDLE port;
    HANDLE *threads;
    void (*callback)(OVERLAPPED *overlapped, DWORD error, DWORD bytes);
};

static DWORD WINAPI bare_port_thread(void *arg)
{
    struct bare_port *bare = arg;

    for (;;)
    {
        OVERLAPPED *overlapped = NULL;
        ULONG_PTR key = 0;
        DWORD bytes = 0;
        BOOL ok = GetQueuedCompletionStatus(bare->port, &bytes, &key, &overlapped, INFINITE);

        if (overlapped)
            bare->callback(overlapped, ok ? ERROR_SUCCESS : GetLastError(), bytes);
        else if (!ok || key == STOP_KEY)
            return 0;
    }
}

static BOOL bare_port_start(struct dispatcher *d)
{
    struct bare_port *bare = calloc(1, sizeof(*bare));
    DWORD i;

    d->impl = bare;
    bare->callback = complete_request;
    bare->port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 0);
    bare->threads = calloc(d->threads, sizeof(HANDLE));
    for (i = 0; i < d->threads; i++)
        bare->threads[i] = CreateThread(NULL, 0, bare_port_thread, bare, 0, NULL);
    d->threads_peak = d->threads;
    return bare->port != NULL;
}

static BOOL bare_port_bind(struct dispatcher *d, HANDLE handle, void **io)
{
    struct bare_port *bare = d->impl;

    *io = NULL;
    return CreateIoCompletionPort(handle, bare->port, 0, 0) != NULL;
}

static BOOL bare_port_post(struct dispatcher *d, struct request *request)
{
    struct bare_port *bare = d->impl;
    return PostQueuedCompletionStatus(bare->port, 0, 0, &request->overlapped);
}

static void bare_port_stop(struct dispatcher *d)
{
    struct bare_port *bare = d->impl;
    DWORD i;

    for (i = 0; i < d->threads; i++)
        PostQueuedCompletionStatus(bare->port, 0, STOP_KEY, NULL);
    WaitForMultipleObjects(d->threads, bare->threads, TRUE, INFINITE);
    for (i = 0; i < d->threads; i++)
        CloseHandle(bare->threads[i]);
    CloseHandle(bare->port);
    free(bare->threads);
    free(bare);
}

/* For the dispatchers that keep no state of their own: the system's pools. */
BOOL dispatcher_no_start(struct dispatcher *d)
{
    d->impl = NULL;
    return TRUE;
}

void dispatcher_no_stop(struct dispatcher *d)
{
    (void)d;
}

void dispatcher_no_io_context(void *io)
{
    (void)io;
}

void dispatcher_no_prepare(struct dispatcher *d, struct request *request)
{
    (void)d;
    (void)request;
}

/* Pools of work items have no handles to bind. */
BOOL dispatcher_no_bind(struct dispatcher *d, HANDLE handle, void **io)
{
    (void)d;
    (void)handle;
    *io = NULL;
    SetLastError(ERROR_NOT_SUPPORTED);
    return FALSE;
}

void dispatcher_no_unbind(struct dispatcher *d, void *io)
{
    (void)d;
    (void)io;
}

const struct dispatcher_ops bare_port_ops =
{
    "bare port", bare_port_start, bare_port_bind, dispatcher_no_prepare, dispatcher_no_io_context, dispatcher_no_io_context,
    bare_port_post, dispatcher_no_unbind, bare_port_stop, FALSE,
};

/* ---- (b) hostiocp, called in the CLR's order ---- */

struct clr_side
{
    ICLRIoCompletionManager ICLRIoCompletionManager_iface;
    volatile LONG64 markers;
};

/* The CLR's drain markers: static OVERLAPPEDs it recognises by address. */
static OVERLAPPED initiate_cleanup_marker, continue_cleanup_marker;
static HANDLE markers_seen;

struct hostiocp_dispatcher
{
    IHostControl *control;
    IHostIoCompletionManager *manager;
    struct clr_side clr;
    HANDLE port;
};

static HRESULT WINAPI clr_QueryInterface(ICLRIoCompletionManager *iface, REFIID riid, void **out)
{
    if (IsEqualIID(riid, &IID_IUnknown) || IsEqualIID(riid, &IID_ICLRIoCompletionManager))
    {
        *out = iface;
        return S_OK;
    }
    *out = NULL;
    return E_NOINTERFACE;
}

/* Like the CLR's own: a static object that does not count references. */
static ULONG WINAPI clr_AddRef(ICLRIoCompletionManager *iface)
{
    (void)iface;
    return 1;
}

static ULONG WINAPI clr_Release(ICLRIoCompletionManager *iface)
{
    (void)iface;
    return 1;
}

static HRESULT WINAPI clr_OnComplete(ICLRIoCompletionManager *iface, DWORD error, DWORD bytes, void *overlapped)
{
    struct clr_side *clr = CONTAINING_RECORD(iface, struct clr_side, ICLRIoCompletionManager_iface);

    if (!overlapped)
        return S_OK;
    if (overlapped == &initiate_cleanup_marker || overlapped == &continue_cleanup_marker)
    {
        if (InterlockedIncrement64(&clr->markers) % 2 == 0)
            SetEvent(markers_seen);
        return S_OK;
    }
    complete_request(overlapped, error, bytes);
    return S_OK;
}

static const ICLRIoCompletionManagerVtbl clr_vtbl =
{
    clr_QueryInterface, clr_AddRef, clr_Release, clr_OnComplete,
};

static BOOL hostiocp_fail(struct dispatcher *d, const char *what, HRESULT hr)
{
    if (hr == REGDB_E_CLASSNOTREG)
        snprintf(d->error, sizeof(d->error), "hostiocp is not registered for %d-bit processes: "
                 "run `regsvr32 hostiocp.dll` with the %d-bit DLL", (int)sizeof(void *) * 8,
                 (int)sizeof(void *) * 8);
    else
        snprintf(d->error, sizeof(d->error), "%s failed: 0x%08lx", what, (unsigned long)hr);
    return FALSE;
}

const CLSID *hostiocp_host_control_class = &CLSID_HostIoCpHostControl;
const WCHAR *hostiocp_baseline_dll;

/* The class object of the DLL that --baseline names, loaded by its path on first use and kept
 * loaded: two builds compared in one process, run by run. */
static HRESULT baseline_class_factory(IClassFactory **factory)
{
    static HRESULT (WINAPI *get_class_object)(REFCLSID, REFIID, void **);
    HMODULE module;
    HRESULT hr;

    if (!get_class_object)
    {
        if (!hostiocp_baseline_dll || !(module = LoadLibraryW(hostiocp_baseline_dll)))
            return HRESULT_FROM_WIN32(GetLastError());
        if (!(get_class_object = (void *)GetProcAddress(module, "DllGetClassObject")))
        {
            hr = HRESULT_FROM_WIN32(GetLastError());
            FreeLibrary(module);
            return hr;
        }
    }
    return get_class_object(&CLSID_HostIoCpHostControl, &IID_IClassFactory, (void **)factory);
}

/* The registered class, or for the baseline column the same class from the --baseline DLL;
 * *what names the step for the error. */
static HRESULT create_host_control(const struct dispatcher *d, IHostControl **control, const char **what)
{
    IClassFactory *factory;
    HRESULT hr;

    if (d->ops != &hostiocp_baseline_ops && d->ops != &hostiocp_work_baseline_ops)
    {
        *what = "CoCreateInstance(CLSID_HostIoCpHostControl)";
        return CoCreateInstance(hostiocp_host_control_class, NULL, CLSCTX_INPROC_SERVER, &IID_IHostControl,
                                (void **)control);
    }
    *what = "loading the --baseline DLL's HostControl class";
    if (FAILED(hr = baseline_class_factory(&factory)))
        return hr;
    hr = IClassFactory_CreateInstance(factory, NULL, &IID_IHostControl, (void **)control);
    IClassFactory_Release(factory);
    return hr;
}

/* Managed ThreadPool.SetMinThreads/SetMaxThreads pass their worker counts to the thread-pool
 * manager as activate_manager passes the I/O ones: the minimum lowered first, so that any
 * maximum works. */
static HRESULT set_worker_limits(IHostThreadpoolManager *workers, DWORD min, DWORD max)
{
    HRESULT hr = IHostThreadpoolManager_SetMinThreads(workers, 0);

    if (SUCCEEDED(hr))
        hr = IHostThreadpoolManager_SetMaxThreads(workers, max);
    if (SUCCEEDED(hr))
        hr = IHostThreadpoolManager_SetMinThreads(workers, min);
    return hr;
}

/* The CLR keeps the thread-pool manager only if GetHostManager answers S_OK with one; a DLL
 * that offers none (a --baseline build before it) leaves the work workload without items. */
static void take_workers(struct dispatcher *d, IHostControl *control)
{
    if (IHostControl_GetHostManager(control, &IID_IHostThreadpoolManager, (void **)&d->workers) != S_OK)
        d->workers = NULL;
}

static BOOL hostiocp_start(struct dispatcher *d)
{
    struct hostiocp_dispatcher *h = calloc(1, sizeof(*h));
    DWORD size = 0, min = d->min_threads ? d->min_threads : d->threads;
    DWORD max = d->max_threads ? d->max_threads : d->threads;
    const char *what;
    HRESULT hr;

    d->impl = h;
    h->clr.ICLRIoCompletionManager_iface.lpVtbl = &clr_vtbl;
    if (!markers_seen)
        markers_seen = CreateEventW(NULL, FALSE, FALSE, NULL);
    if (FAILED(hr = create_host_control(d, &h->control, &what)))
        return hostiocp_fail(d, what, hr);
    /* What ICLRRuntimeHost::SetHostControl does with it, in that order: the thread-pool manager
     * just before the I/O one. */
    take_workers(d, h->control);
    if (FAILED(hr = IHostControl_GetHostManager(h->control, &IID_IHostIoCompletionManager, (void **)&h->manager)))
        return hostiocp_fail(d, "GetHostManager(IID_IHostIoCompletionManager)", hr);
    if (FAILED(hr = IHostIoCompletionManager_GetHostOverlappedSize(h->manager, &size)))
        return hostiocp_fail(d, "GetHostOverlappedSize", hr);
    if (size > HOST_EXTENSION_ROOM)
        return hostiocp_fail(d, "GetHostOverlappedSize (too large)", E_UNEXPECTED);
    /* SetCLRIoCompletionManager, then ThreadPool.SetMinThreads/SetMaxThreads as the host configured them. */
    if (FAILED(hr = activate_manager(h->manager, &h->clr.ICLRIoCompletionManager_iface, min, max)))
        return hostiocp_fail(d, "SetCLRIoCompletionManager or Set{Min,Max}Threads", hr);
    if (d->workers && FAILED(hr = set_worker_limits(d->workers, min, max)))
        return hostiocp_fail(d, "IHostThreadpoolManager::Set{Min,Max}Threads", hr);
    if (d->batch && FAILED(hr = set_batch_size(h->manager, d->batch)))
        return hostiocp_fail(d, "SetBatchSize", hr);
    /* Thread-pool initialisation: one port for the process. */
    if (FAILED(hr = IHostIoCompletionManager_CreateIoCompletionPort(h->manager, &h->port)))
        return hostiocp_fail(d, "CreateIoCompletionPort", hr);
    return TRUE;
}

static BOOL hostiocp_bind(struct dispatcher *d, HANDLE handle, void **io)
{
    struct hostiocp_dispatcher *h = d->impl;

    *io = NULL;
    return SUCCEEDED(IHostIoCompletionManager_Bind(h->manager, h->port, handle));
}

static void hostiocp_prepare(struct dispatcher *d, struct request *request)
{
    struct hostiocp_dispatcher *h = d->impl;
    IHostIoCompletionManager_InitializeHostOverlapped(h->manager, &request->overlapped);
}

/* Posted as others post to the CLR's port: with a key that Bind never gave out. */
static BOOL hostiocp_post(struct dispatcher *d, struct request *request)
{
    struct hostiocp_dispatcher *h = d->impl;
    return PostQueuedCompletionStatus(h->port, 0, (ULONG_PTR)&clr_vtbl, &request->overlapped);
}

static void hostiocp_stop(struct dispatcher *d)
{
    struct hostiocp_dispatcher *h = d->impl;
    HOSTIOCP_STATISTICS stats;

    if (h->port)
    {
        /* The CLR drains the port with its two markers (async-pin cleanup); they must come back. */
        PostQueuedCompletionStatus(h->port, 0, (ULONG_PTR)clr_OnComplete, &initiate_cleanup_marker);
        PostQueuedCompletionStatus(h->port, 0, (ULONG_PTR)clr_OnComplete, &continue_cleanup_marker);
        WaitForSingleObject(markers_seen, 10000);
        d->drain_markers = h->clr.markers;
    }
    if (h->manager && SUCCEEDED(get_statistics(h->manager, NULL, &stats)))
    {
        d->threads_peak = stats.ThreadsPeak;
        d->injections = stats.ThreadsInjected;
        d->threads_target = stats.ThreadsTarget;
        d->target_raised = stats.TargetRaised;
        d->target_lowered = stats.TargetLowered;
    }
    if (d->workers)
    {
        if (FAILED(get_work_statistics((IUnknown *)d->workers, &d->work_stats)))
            d->work_stats.cbSize = 0;
        IHostThreadpoolManager_Release(d->workers);
        d->workers = NULL;
    }
    if (h->manager)
        IHostIoCompletionManager_Release(h->manager);
    if (h->control)
        IHostControl_Release(h->control);
    free(h);
}

const struct dispatcher_ops hostiocp_ops =
{
    "hostiocp", hostiocp_start, hostiocp_bind, hostiocp_prepare, dispatcher_no_io_context, dispatcher_no_io_context,
    hostiocp_post, dispatcher_no_unbind, hostiocp_stop, FALSE,
};

/* The same, from the DLL that --baseline names. */
const struct dispatcher_ops hostiocp_baseline_ops =
{
    "hostiocp-baseline", hostiocp_start, hostiocp_bind, hostiocp_prepare, dispatcher_no_io_context,
    dispatcher_no_io_context, hostiocp_post, dispatcher_no_unbind, hostiocp_stop, FALSE,
};

/* The same with GetQueuedCompletionStatusEx batches of 16, to see whether batching pays. */
static BOOL hostiocp_batched_start(struct dispatcher *d)
{
    d->batch = 16;
    return hostiocp_start(d);
}

const struct dispatcher_ops hostiocp_batched_ops =
{
    "hostiocp, batches of 16", hostiocp_batched_start, hostiocp_bind, hostiocp_prepare, dispatcher_no_io_context,
    dispatcher_no_io_context, hostiocp_post, dispatcher_no_unbind, hostiocp_stop, FALSE,
};

/* ---- hostiocp's worker pool: IHostThreadpoolManager at its own limits, as the CLR gets it ---- */

struct hostiocp_work
{
    IHostControl *control;
    IHostThreadpoolManager *manager;
};

static DWORD WINAPI hostiocp_work_item(void *context)
{
    complete_request(context, ERROR_SUCCESS, 0);
    return 0;
}

static BOOL hostiocp_work_start(struct dispatcher *d)
{
    struct hostiocp_work *w = calloc(1, sizeof(*w));
    const char *what;
    HRESULT hr;

    d->impl = w;
    if (FAILED(hr = create_host_control(d, &w->control, &what)))
        return hostiocp_fail(d, what, hr);
    if (FAILED(hr = IHostControl_GetHostManager(w->control, &IID_IHostThreadpoolManager, (void **)&w->manager)))
        return hostiocp_fail(d, "GetHostManager(IID_IHostThreadpoolManager)", hr);
    return TRUE;
}

/* Flags 0: what the CLR passes for managed work items (doc/clr-threadpool-contract.md). */
static BOOL hostiocp_work_post(struct dispatcher *d, struct request *request)
{
    struct hostiocp_work *w = d->impl;
    HRESULT hr = IHostThreadpoolManager_QueueUserWorkItem(w->manager, hostiocp_work_item, &request->overlapped, 0);

    if (FAILED(hr))
        SetLastError(HRESULT_FACILITY(hr) == FACILITY_WIN32 ? HRESULT_CODE(hr) : (DWORD)hr);
    return SUCCEEDED(hr);
}

static void hostiocp_work_stop(struct dispatcher *d)
{
    struct hostiocp_work *w = d->impl;
    HOSTIOCP_WORK_STATISTICS stats;

    if (w->manager && SUCCEEDED(get_work_statistics((IUnknown *)w->manager, &stats)))
    {
        d->threads_peak = stats.ThreadsPeak;
        d->injections = stats.ThreadsInjected;
        d->threads_target = stats.ThreadsTarget;
        d->target_raised = stats.TargetRaised;
        d->target_lowered = stats.TargetLowered;
    }
    if (w->manager)
        IHostThreadpoolManager_Release(w->manager);
    if (w->control)
        IHostControl_Release(w->control);
    free(w);
}

const struct dispatcher_ops hostiocp_work_ops =
{
    "hostiocp work items", hostiocp_work_start, dispatcher_no_bind, dispatcher_no_prepare, dispatcher_no_io_context,
    dispatcher_no_io_context, hostiocp_work_post, dispatcher_no_unbind, hostiocp_work_stop, TRUE,
};

const struct dispatcher_ops hostiocp_work_baseline_ops =
{
    "hostiocp-baseline work items", hostiocp_work_start, dispatcher_no_bind, dispatcher_no_prepare,
    dispatcher_no_io_context, dispatcher_no_io_context, hostiocp_work_post, dispatcher_no_unbind, hostiocp_work_stop,
    TRUE,
};

/* ---- (c) the Windows thread pool: TP_IO per handle, a private pool of N threads ---- */

struct threadpool
{
    PTP_POOL pool;
    TP_CALLBACK_ENVIRON environment;
};

static void CALLBACK threadpool_io_callback(PTP_CALLBACK_INSTANCE instance, void *context, void *overlapped,
                                            ULONG result, ULONG_PTR bytes, PTP_IO io)
{
    (void)instance;
    (void)context;
    (void)io;
    complete_request(overlapped, result, (DWORD)bytes);
}

static void CALLBACK threadpool_work_callback(PTP_CALLBACK_INSTANCE instance, void *context)
{
    (void)instance;
    complete_request(context, ERROR_SUCCESS, 0);
}

static BOOL threadpool_start(struct dispatcher *d)
{
    struct threadpool *tp = calloc(1, sizeof(*tp));

    d->impl = tp;
    if (!(tp->pool = CreateThreadpool(NULL)))
        return FALSE;
    /* No thread count: the private pool keeps the limits it was created with. */
    if (d->threads)
    {
        SetThreadpoolThreadMaximum(tp->pool, d->threads);
        SetThreadpoolThreadMinimum(tp->pool, d->threads);
    }
    InitializeThreadpoolEnvironment(&tp->environment);
    SetThreadpoolCallbackPool(&tp->environment, tp->pool);
    d->threads_peak = d->threads;
    return TRUE;
}

static BOOL threadpool_bind(struct dispatcher *d, HANDLE handle, void **io)
{
    struct threadpool *tp = d->impl;

    *io = CreateThreadpoolIo(handle, threadpool_io_callback, NULL, &tp->environment);
    return *io != NULL;
}

static void threadpool_before_io(void *io)
{
    StartThreadpoolIo(io);
}

static void threadpool_not_pending(void *io)
{
    CancelThreadpoolIo(io);
}

/* The pool has no port to post to; a work callback is its posted packet. */
static BOOL threadpool_post(struct dispatcher *d, struct request *request)
{
    struct threadpool *tp = d->impl;
    return TrySubmitThreadpoolCallback(threadpool_work_callback, &request->overlapped, &tp->environment);
}

static void threadpool_unbind(struct dispatcher *d, void *io)
{
    (void)d;
    WaitForThreadpoolIoCallbacks(io, FALSE);
    CloseThreadpoolIo(io);
}

static void threadpool_stop(struct dispatcher *d)
{
    struct threadpool *tp = d->impl;

    DestroyThreadpoolEnvironment(&tp->environment);
    if (tp->pool)
        CloseThreadpool(tp->pool);
    free(tp);
}

const struct dispatcher_ops threadpool_ops =
{
    "thread pool (TP_IO)", threadpool_start, threadpool_bind, dispatcher_no_prepare, threadpool_before_io,
    threadpool_not_pending, threadpool_post, threadpool_unbind, threadpool_stop, FALSE,
};

/* The same on the process's default pool, whose limits nobody set: no environment at all. */

static BOOL threadpool_default_bind(struct dispatcher *d, HANDLE handle, void **io)
{
    (void)d;
    *io = CreateThreadpoolIo(handle, threadpool_io_callback, NULL, NULL);
    return *io != NULL;
}

static BOOL threadpool_default_post(struct dispatcher *d, struct request *request)
{
    (void)d;
    return TrySubmitThreadpoolCallback(threadpool_work_callback, &request->overlapped, NULL);
}

const struct dispatcher_ops threadpool_default_ops =
{
    "TP_IO, default pool", dispatcher_no_start, threadpool_default_bind, dispatcher_no_prepare, threadpool_before_io,
    threadpool_not_pending, threadpool_default_post, threadpool_unbind, dispatcher_no_stop, FALSE,
};

/* Work items only: TrySubmitThreadpoolCallback on the default pool. */
const struct dispatcher_ops submit_callback_ops =
{
    "TrySubmitThreadpoolCallback", dispatcher_no_start, dispatcher_no_bind, dispatcher_no_prepare,
    dispatcher_no_io_context, dispatcher_no_io_context, threadpool_default_post, dispatcher_no_unbind,
    dispatcher_no_stop, TRUE,
};

/* ---- (d) BindIoCompletionCallback: the system's own pool and thread count ---- */

static void CALLBACK bindio_callback(DWORD error, DWORD bytes, OVERLAPPED *overlapped)
{
    complete_request(overlapped, error, bytes);
}

static DWORD CALLBACK bindio_work(void *context)
{
    complete_request(context, ERROR_SUCCESS, 0);
    return 0;
}

static BOOL bindio_bind(struct dispatcher *d, HANDLE handle, void **io)
{
    (void)d;
    *io = NULL;
    return BindIoCompletionCallback(handle, bindio_callback, 0);
}

static BOOL bindio_post(struct dispatcher *d, struct request *request)
{
    (void)d;
    return QueueUserWorkItem(bindio_work, &request->overlapped, WT_EXECUTEDEFAULT);
}

const struct dispatcher_ops bindio_ops =
{
    "BindIoCompletionCallback", dispatcher_no_start, bindio_bind, dispatcher_no_prepare, dispatcher_no_io_context, dispatcher_no_io_context,
    bindio_post, dispatcher_no_unbind, dispatcher_no_stop, FALSE,
};

/* Work items only: QueueUserWorkItem with its default flags. */
const struct dispatcher_ops queue_user_work_item_ops =
{
    "QueueUserWorkItem", dispatcher_no_start, dispatcher_no_bind, dispatcher_no_prepare, dispatcher_no_io_context,
    dispatcher_no_io_context, bindio_post, dispatcher_no_unbind, dispatcher_no_stop, TRUE,
};
