/* The completion engine: the ports it owns, the handles bound to them, the CLR's callback,
 * the limits its pools obey, and the counters it reports. */
#include "hostiocp_private.h"

struct port
{
    struct pool *pool;
    HANDLE handle;
    ULONG_PTR bind_key;
    struct port *next;
    volatile LONG64 bound;
};

struct engine
{
    volatile LONG refs;       /* the manager's and one per pool */
    SRWLOCK lock;             /* ports, clr, min/max changes, closed counters */
    struct port *ports;       /* oldest first: the first is the default port of Bind(NULL) */
    ICLRIoCompletionManager *clr;
    struct pool_limits limits;
    struct thread_tally tally;
    HOSTIOCP_STATISTICS closed; /* what ports already closed had counted */
};

static void engine_release(void *context)
{
    struct engine *engine = context;

    if (!InterlockedDecrement(&engine->refs))
        HeapFree(GetProcessHeap(), 0, engine);
}

struct engine *engine_create(void)
{
    struct engine *engine = HeapAlloc(GetProcessHeap(), HEAP_ZERO_MEMORY, sizeof(*engine));
    SYSTEM_INFO system;

    if (!engine)
        return NULL;
    GetSystemInfo(&system);
    engine->refs = 1;
    InitializeSRWLock(&engine->lock);
    InitializeSRWLock(&engine->tally.lock);
    InitializeConditionVariable(&engine->tally.ended);
    engine->limits.min_threads = min(system.dwNumberOfProcessors, HOSTIOCP_MAX_THREADS_LIMIT);
    engine->limits.max_threads = ENGINE_DEFAULT_MAX_THREADS;
    engine->limits.idle_timeout = ENGINE_DEFAULT_IDLE_TIMEOUT;
    engine->limits.batch_size = 1;
    engine->closed.cbSize = sizeof(engine->closed);
    return engine;
}

static struct port *find_port(struct engine *engine, HANDLE handle)
{
    struct port *port;

    for (port = engine->ports; port; port = port->next)
        if (port->handle == handle)
            return port;
    return NULL;
}

static void append_port(struct engine *engine, struct port *port)
{
    struct port **tail = &engine->ports;

    while (*tail)
        tail = &(*tail)->next;
    *tail = port;
}

static void unlink_port(struct engine *engine, struct port *port)
{
    struct port **link = &engine->ports;

    while (*link != port)
        link = &(*link)->next;
    *link = port->next;
}

static HRESULT create_port_locked(struct engine *engine, struct port **out)
{
    struct port *port;
    HRESULT hr;

    if (!engine->clr)
        return HOST_E_CLRNOTAVAILABLE;
    if (!(port = HeapAlloc(GetProcessHeap(), HEAP_ZERO_MEMORY, sizeof(*port))))
        return E_OUTOFMEMORY;
    InterlockedIncrement(&engine->refs);  /* the pool's, given back through engine_release */
    if (FAILED(hr = pool_create(engine->clr, &engine->limits, &engine->tally, engine_release, engine, &port->pool)))
    {
        HeapFree(GetProcessHeap(), 0, port);
        return hr;
    }
    port->handle = pool_port(port->pool);
    port->bind_key = pool_bind_key(port->pool);
    append_port(engine, port);
    TRACE("port %p created with %ld threads", port->handle, pool_threads(port->pool));
    *out = port;
    return S_OK;
}

static void add_port_statistics(HOSTIOCP_STATISTICS *stats, struct port *port)
{
    pool_statistics(port->pool, stats);
    stats->HandlesBound += InterlockedCompareExchange64(&port->bound, 0, 0);
}

/* Stops the port's threads, keeps its counters and closes it; the caller has unlinked it. */
static void shut_down_port(struct engine *engine, struct port *port)
{
    pool_stop(port->pool);
    AcquireSRWLockExclusive(&engine->lock);
    add_port_statistics(&engine->closed, port);
    ReleaseSRWLockExclusive(&engine->lock);
    pool_release(port->pool);
    HeapFree(GetProcessHeap(), 0, port);
}

/* Also waits for threads of ports that were closed from inside their own callbacks; the
 * caller's own thread, if it is one of ours, ends when its callback returns. */
static void wait_for_threads(struct engine *engine)
{
    LONG remaining = current_thread_tally() == &engine->tally ? 1 : 0;

    if (module_must_not_wait())
        return;
    AcquireSRWLockExclusive(&engine->tally.lock);
    while (engine->tally.threads > remaining)
        SleepConditionVariableSRW(&engine->tally.ended, &engine->tally.lock, INFINITE, 0);
    ReleaseSRWLockExclusive(&engine->tally.lock);
}

void engine_shutdown(struct engine *engine)
{
    ICLRIoCompletionManager *clr;
    struct port *ports, *next;

    if (module_process_ending())
    {
        /* A killed thread may hold any lock: tell the pools to stop and take nothing. */
        for (ports = engine->ports; ports; ports = ports->next)
            pool_stop(ports->pool);
        return;
    }
    AcquireSRWLockExclusive(&engine->lock);
    ports = engine->ports;
    engine->ports = NULL;
    clr = engine->clr;
    engine->clr = NULL;
    ReleaseSRWLockExclusive(&engine->lock);
    for (; ports; ports = next)
    {
        next = ports->next;
        shut_down_port(engine, ports);
    }
    wait_for_threads(engine);
    if (clr)
        ICLRIoCompletionManager_Release(clr);
    engine_release(engine);
}

HRESULT engine_set_clr(struct engine *engine, ICLRIoCompletionManager *clr)
{
    HRESULT hr = S_OK;

    AcquireSRWLockExclusive(&engine->lock);
    if (engine->clr == clr)
        ;
    else if (engine->ports)
        hr = HOST_E_INVALIDOPERATION;  /* open ports keep calling the one they started with */
    else
    {
        ICLRIoCompletionManager_AddRef(clr);
        if (engine->clr)
            ICLRIoCompletionManager_Release(engine->clr);
        engine->clr = clr;
    }
    ReleaseSRWLockExclusive(&engine->lock);
    return hr;
}

HRESULT engine_create_port(struct engine *engine, HANDLE *port_handle)
{
    struct port *port;
    HRESULT hr;

    AcquireSRWLockExclusive(&engine->lock);
    if (SUCCEEDED(hr = create_port_locked(engine, &port)))
        *port_handle = port->handle;
    ReleaseSRWLockExclusive(&engine->lock);
    return hr;
}

HRESULT engine_close_port(struct engine *engine, HANDLE port_handle)
{
    struct port *port;

    AcquireSRWLockExclusive(&engine->lock);
    if ((port = find_port(engine, port_handle)))
        unlink_port(engine, port);
    ReleaseSRWLockExclusive(&engine->lock);
    if (!port)
        return E_INVALIDARG;
    shut_down_port(engine, port);
    return S_OK;
}

HRESULT engine_bind(struct engine *engine, HANDLE port_handle, HANDLE handle)
{
    struct port *port = NULL;
    HRESULT hr = S_OK;

    AcquireSRWLockExclusive(&engine->lock);
    if (!engine->clr)
        hr = HOST_E_CLRNOTAVAILABLE;
    else if (find_port(engine, handle))
        hr = E_INVALIDARG;
    else if (port_handle)
        hr = (port = find_port(engine, port_handle)) ? S_OK : E_INVALIDARG;
    else if (!(port = engine->ports))
        hr = create_port_locked(engine, &port);
    if (SUCCEEDED(hr))
    {
        if (CreateIoCompletionPort(handle, port->handle, port->bind_key, 0))
            InterlockedIncrement64(&port->bound);
        else
            hr = HRESULT_FROM_WIN32(GetLastError());
    }
    ReleaseSRWLockExclusive(&engine->lock);
    TRACE("Bind(%p, %p): %08lx", port_handle, handle, hr);
    return hr;
}

HRESULT engine_set_min_threads(struct engine *engine, DWORD count)
{
    struct port *port;
    HRESULT hr = E_INVALIDARG;

    AcquireSRWLockExclusive(&engine->lock);
    if (count <= (DWORD)engine->limits.max_threads)
    {
        InterlockedExchange(&engine->limits.min_threads, (LONG)count);
        for (port = engine->ports; port; port = port->next)
            pool_limits_changed(port->pool);
        hr = S_OK;
    }
    ReleaseSRWLockExclusive(&engine->lock);
    return hr;
}

HRESULT engine_set_max_threads(struct engine *engine, DWORD count)
{
    HRESULT hr = E_INVALIDARG;

    if (!count || count > HOSTIOCP_MAX_THREADS_LIMIT)
        return E_INVALIDARG;
    AcquireSRWLockExclusive(&engine->lock);
    if (count >= (DWORD)engine->limits.min_threads)
    {
        struct port *port;

        InterlockedExchange(&engine->limits.max_threads, (LONG)count);
        for (port = engine->ports; port; port = port->next)
            pool_limits_changed(port->pool);
        hr = S_OK;
    }
    ReleaseSRWLockExclusive(&engine->lock);
    return hr;
}

DWORD engine_min_threads(struct engine *engine)
{
    return (DWORD)engine->limits.min_threads;
}

DWORD engine_max_threads(struct engine *engine)
{
    return (DWORD)engine->limits.max_threads;
}

DWORD engine_available_threads(struct engine *engine)
{
    struct port *port;
    LONG busy = 0, max;

    AcquireSRWLockShared(&engine->lock);
    max = engine->limits.max_threads;
    for (port = engine->ports; port; port = port->next)
        busy += pool_busy(port->pool);
    ReleaseSRWLockShared(&engine->lock);
    return busy < max ? (DWORD)(max - busy) : 0;
}

HRESULT engine_set_idle_timeout(struct engine *engine, DWORD milliseconds)
{
    if (milliseconds < HOSTIOCP_MIN_IDLE_TIMEOUT || milliseconds > HOSTIOCP_MAX_IDLE_TIMEOUT)
        return E_INVALIDARG;
    InterlockedExchange(&engine->limits.idle_timeout, (LONG)milliseconds);
    return S_OK;
}

DWORD engine_idle_timeout(struct engine *engine)
{
    return (DWORD)engine->limits.idle_timeout;
}

HRESULT engine_set_batch_size(struct engine *engine, DWORD entries)
{
    if (!entries || entries > HOSTIOCP_MAX_BATCH_SIZE)
        return E_INVALIDARG;
    InterlockedExchange(&engine->limits.batch_size, (LONG)entries);
    return S_OK;
}

DWORD engine_batch_size(struct engine *engine)
{
    return (DWORD)engine->limits.batch_size;
}

static void finish_statistics(HOSTIOCP_STATISTICS *stats, LONG threads, LONG peak)
{
    stats->ThreadsTotal = threads > 0 ? (DWORD)threads : 0;
    stats->ThreadsPeak = peak > 0 ? (DWORD)peak : 0;
    /* Counted a moment apart: a thread may be inside OnComplete before it is counted alive. */
    if (stats->ThreadsBusy > stats->ThreadsTotal)
        stats->ThreadsBusy = stats->ThreadsTotal;
    stats->ThreadsIdle = stats->ThreadsTotal - stats->ThreadsBusy;
}

HRESULT engine_statistics(struct engine *engine, HOSTIOCP_STATISTICS *stats)
{
    struct port *port;
    LONG threads = 0;

    AcquireSRWLockShared(&engine->lock);
    *stats = engine->closed;
    for (port = engine->ports; port; port = port->next)
    {
        add_port_statistics(stats, port);
        threads += pool_threads(port->pool);
        stats->PortsOpen++;
    }
    ReleaseSRWLockShared(&engine->lock);
    finish_statistics(stats, threads, engine->tally.peak);
    return S_OK;
}

HRESULT engine_port_statistics(struct engine *engine, HANDLE port_handle, HOSTIOCP_STATISTICS *stats)
{
    struct port *port;
    HRESULT hr = E_INVALIDARG;

    AcquireSRWLockShared(&engine->lock);
    if ((port = find_port(engine, port_handle)))
    {
        ZeroMemory(stats, sizeof(*stats));
        stats->cbSize = sizeof(*stats);
        stats->PortsOpen = 1;
        add_port_statistics(stats, port);
        finish_statistics(stats, pool_threads(port->pool), pool_peak(port->pool));
        hr = S_OK;
    }
    ReleaseSRWLockShared(&engine->lock);
    return hr;
}
