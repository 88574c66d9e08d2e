/* The completion engine: the ports it owns, the handles bound to them, the CLR's callback,
 * the limits its pools obey, and the counters it reports. */
#include <assert.h>
#include "hostiocp_private.h"

struct open_port
{
    struct pool *pool;            /* set when the port opens, then read-only */
    HANDLE handle;                /* ditto */
    ULONG_PTR bind_key;           /* ditto */
    struct open_port *next;       /* locked via engine->lock */
    volatile LONG64 bound;        /* Interlocked only */
};

struct engine
{
    volatile LONG refs;           /* the manager's and one per pool */
    SRWLOCK lock;
    struct open_port *ports;      /* locked via lock; oldest first: the first is Bind(NULL)'s port */
    ICLRIoCompletionManager *clr; /* locked via lock */
    struct thread_limits limits;  /* written Interlocked under lock, read without it */
    struct dequeue_settings dequeue; /* written Interlocked without the lock, read by every pool */
    struct thread_tally tally;    /* its own lock */
    HOSTIOCP_STATISTICS closed;   /* locked via lock: what ports already closed had counted */
};

static void engine_release(void *context)
{
    struct engine *engine = context;

    if (!InterlockedDecrement(&engine->refs))
        HeapFree(GetProcessHeap(), 0, engine);
}

struct engine *engine_create(void)
{
    struct engine *engine = heap_alloc(HEAP_ZERO_MEMORY, sizeof(*engine));
    SYSTEM_INFO system;

    if (!engine)
        return NULL;
    GetSystemInfo(&system);
    engine->refs = 1;
    InitializeSRWLock(&engine->lock);
    thread_tally_init(&engine->tally);
    /* The CLR's own defaults: a thread per CPU at least, 1000 at most. */
    engine->limits.min_threads = min(system.dwNumberOfProcessors, HOSTIOCP_MAX_THREADS_LIMIT);
    engine->limits.max_threads = ENGINE_DEFAULT_MAX_THREADS;
    engine->dequeue.idle_timeout = ENGINE_DEFAULT_IDLE_TIMEOUT;
    engine->dequeue.batch_size = ENGINE_DEFAULT_BATCH_SIZE;
    engine->closed.cbSize = sizeof(engine->closed);
    return engine;
}

static struct open_port *find_port(struct engine *engine, HANDLE handle)
{
    struct open_port *open_port;

    for (open_port = engine->ports; open_port; open_port = open_port->next)
        if (open_port->handle == handle)
            return open_port;
    return NULL;
}

static void append_port(struct engine *engine, struct open_port *open_port)
{
    struct open_port **tail = &engine->ports;

    while (*tail)
        tail = &(*tail)->next;
    *tail = open_port;
}

static void unlink_port(struct engine *engine, struct open_port *open_port)
{
    struct open_port **link = &engine->ports;

    while (*link != open_port)
        link = &(*link)->next;
    *link = open_port->next;
}

static HRESULT create_port_locked(struct engine *engine, struct open_port **out)
{
    struct open_port *open_port;
    HRESULT hr;

    if (!engine->clr)
        return HOST_E_CLRNOTAVAILABLE;
    if (!(open_port = heap_alloc(HEAP_ZERO_MEMORY, sizeof(*open_port))))
        return E_OUTOFMEMORY;
    InterlockedIncrement(&engine->refs);  /* the pool's, given back through engine_release */
    if (FAILED(hr = pool_create(engine->clr, engine->limits, &engine->dequeue, &engine->tally, engine_release, engine, &open_port->pool)))
    {
        HeapFree(GetProcessHeap(), 0, open_port);
        return hr;
    }
    open_port->handle = pool_port(open_port->pool);
    open_port->bind_key = pool_bind_key(open_port->pool);
    append_port(engine, open_port);
    TRACE("port %p created with %ld threads", open_port->handle, pool_threads(open_port->pool));
    *out = open_port;
    return S_OK;
}

static void add_port_statistics(HOSTIOCP_STATISTICS *stats, struct open_port *open_port)
{
    pool_statistics(open_port->pool, stats);
    stats->HandlesBound += InterlockedCompareExchange64(&open_port->bound, 0, 0);
}

/* Stops the port's threads, keeps its counters and closes it; the caller has unlinked it. */
static void shut_down_port(struct engine *engine, struct open_port *open_port)
{
    pool_stop(open_port->pool);
    AcquireSRWLockExclusive(&engine->lock);
    add_port_statistics(&engine->closed, open_port);
    ReleaseSRWLockExclusive(&engine->lock);
    pool_release(open_port->pool);
    HeapFree(GetProcessHeap(), 0, open_port);
}

/* Also waits for threads of ports that were closed from inside their own callbacks; the
 * caller's own thread, if it is one of ours, ends when its callback returns. */
static void wait_for_threads(struct engine *engine)
{
    LONG remaining = current_thread_tally() == &engine->tally ? 1 : 0;

    if (!module_must_not_wait())
        thread_tally_wait(&engine->tally, remaining);
}

void engine_shutdown(struct engine *engine)
{
    ICLRIoCompletionManager *clr;
    struct open_port *ports, *next;

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
    struct open_port *open_port;
    HRESULT hr;

    AcquireSRWLockExclusive(&engine->lock);
    if (SUCCEEDED(hr = create_port_locked(engine, &open_port)))
        *port_handle = open_port->handle;
    ReleaseSRWLockExclusive(&engine->lock);
    return hr;
}

HRESULT engine_close_port(struct engine *engine, HANDLE port_handle)
{
    struct open_port *open_port;

    AcquireSRWLockExclusive(&engine->lock);
    if ((open_port = find_port(engine, port_handle)))
        unlink_port(engine, open_port);
    ReleaseSRWLockExclusive(&engine->lock);
    if (!open_port)
        return E_INVALIDARG;
    shut_down_port(engine, open_port);
    return S_OK;
}

HRESULT engine_bind(struct engine *engine, HANDLE port_handle, HANDLE handle)
{
    struct open_port *open_port = NULL;
    HRESULT hr = S_OK;

    AcquireSRWLockExclusive(&engine->lock);
    if (!engine->clr)
        hr = HOST_E_CLRNOTAVAILABLE;
    else if (find_port(engine, handle))
        hr = E_INVALIDARG;
    else if (port_handle)
        hr = (open_port = find_port(engine, port_handle)) ? S_OK : E_INVALIDARG;
    else if (!(open_port = engine->ports))
        hr = create_port_locked(engine, &open_port);
    if (SUCCEEDED(hr))
    {
        if (create_completion_port(handle, open_port->handle, open_port->bind_key, 0))
            InterlockedIncrement64(&open_port->bound);
        else
            hr = HRESULT_FROM_WIN32(GetLastError());
    }
    ReleaseSRWLockExclusive(&engine->lock);
    TRACE("Bind(%p, %p): %08lx", port_handle, handle, hr);
    return hr;
}

/* The maximum at least 1 and at least the minimum, which may be 0. */
static HRESULT set_thread_limits(struct engine *engine, DWORD min_threads, DWORD max_threads)
{
    struct open_port *open_port;
    struct thread_limits limits = { (LONG)min_threads, (LONG)max_threads };

    if (!max_threads || max_threads > HOSTIOCP_MAX_THREADS_LIMIT || min_threads > max_threads)
        return E_INVALIDARG;
    InterlockedExchange(&engine->limits.min_threads, limits.min_threads);
    InterlockedExchange(&engine->limits.max_threads, limits.max_threads);
    for (open_port = engine->ports; open_port; open_port = open_port->next)
        pool_limits_changed(open_port->pool, limits);
    return S_OK;
}

HRESULT engine_set_min_threads(struct engine *engine, DWORD count)
{
    HRESULT hr;

    AcquireSRWLockExclusive(&engine->lock);
    hr = set_thread_limits(engine, count, (DWORD)engine->limits.max_threads);
    ReleaseSRWLockExclusive(&engine->lock);
    return hr;
}

HRESULT engine_set_max_threads(struct engine *engine, DWORD count)
{
    HRESULT hr;

    AcquireSRWLockExclusive(&engine->lock);
    hr = set_thread_limits(engine, (DWORD)engine->limits.min_threads, count);
    ReleaseSRWLockExclusive(&engine->lock);
    return hr;
}

/* Without the engine's lock, so that a host may set them anywhere, under the loader lock too:
 * the lock is held while threads start, and starting one takes the loader lock. */
HRESULT engine_set_idle_timeout(struct engine *engine, DWORD milliseconds)
{
    if (milliseconds < HOSTIOCP_MIN_IDLE_TIMEOUT || milliseconds > HOSTIOCP_MAX_IDLE_TIMEOUT)
        return E_INVALIDARG;
    InterlockedExchange(&engine->dequeue.idle_timeout, (LONG)milliseconds);
    return S_OK;
}

HRESULT engine_set_batch_size(struct engine *engine, DWORD entries)
{
    if (!entries || entries > HOSTIOCP_MAX_BATCH_SIZE)
        return E_INVALIDARG;
    InterlockedExchange(&engine->dequeue.batch_size, (LONG)entries);
    return S_OK;
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
    struct open_port *open_port;
    LONG busy = 0, max;

    AcquireSRWLockShared(&engine->lock);
    max = engine->limits.max_threads;
    for (open_port = engine->ports; open_port; open_port = open_port->next)
        busy += pool_busy(open_port->pool);
    ReleaseSRWLockShared(&engine->lock);
    return busy < max ? (DWORD)(max - busy) : 0;
}

DWORD engine_idle_timeout(struct engine *engine)
{
    return (DWORD)engine->dequeue.idle_timeout;
}

DWORD engine_batch_size(struct engine *engine)
{
    return (DWORD)engine->dequeue.batch_size;
}

static void finish_statistics(HOSTIOCP_STATISTICS *stats, LONG peak)
{
    assert(peak >= 0);
    assert(stats->ThreadsBusy <= stats->ThreadsTotal);
    stats->ThreadsPeak = (DWORD)peak;
    stats->ThreadsIdle = stats->ThreadsTotal - stats->ThreadsBusy;
}

HRESULT engine_statistics(struct engine *engine, HOSTIOCP_STATISTICS *stats)
{
    struct open_port *open_port;

    AcquireSRWLockShared(&engine->lock);
    *stats = engine->closed;
    for (open_port = engine->ports; open_port; open_port = open_port->next)
    {
        add_port_statistics(stats, open_port);
        stats->PortsOpen++;
    }
    ReleaseSRWLockShared(&engine->lock);
    finish_statistics(stats, thread_tally_peak(&engine->tally));
    return S_OK;
}

HRESULT engine_port_statistics(struct engine *engine, HANDLE port_handle, HOSTIOCP_STATISTICS *stats)
{
    struct open_port *open_port;
    HRESULT hr = E_INVALIDARG;

    AcquireSRWLockShared(&engine->lock);
    if ((open_port = find_port(engine, port_handle)))
    {
        ZeroMemory(stats, sizeof(*stats));
        stats->cbSize = sizeof(*stats);
        stats->PortsOpen = 1;
        add_port_statistics(stats, open_port);
        finish_statistics(stats, pool_peak(open_port->pool));
        hr = S_OK;
    }
    ReleaseSRWLockShared(&engine->lock);
    return hr;
}
