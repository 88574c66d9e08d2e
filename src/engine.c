/* The completion engine: the ports it owns, the handles bound to them, the CLR's callback, the
 * work-item queue, the limits their pools obey, and the counters they report.  The ports' pools
 * and the queue's pool are the same machinery (pool.c) with limits of their own, so that neither
 * starves the other. */
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

    /* The work-item queue, with a lock of its own so that items never wait for a port's Bind. */
    SRWLOCK work_lock;
    struct pool *volatile work_pool; /* made for the first item under work_lock, then read without it;
                                      * kept, stopped, until the engine shuts down: items are
                                      * queued without a lock of the engine's */
    BOOL work_closed;             /* locked via work_lock: shutdown began, no pool is made */
    struct thread_limits work_limits; /* written Interlocked under work_lock, read without it */
    struct thread_tally work_tally; /* its own lock: the ports' tally counts only theirs */
    CONDITION_VARIABLE work_drained; /* with work_lock: the last item accepted before the close ran */
    volatile LONG64 items_refused; /* Interlocked only */
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
    InitializeSRWLock(&engine->work_lock);
    InitializeConditionVariable(&engine->work_drained);
    thread_tally_init(&engine->work_tally);
    engine->work_limits.min_threads = engine->limits.min_threads;
    engine->work_limits.max_threads = ENGINE_DEFAULT_MAX_WORK_THREADS;
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
    struct pool_client client = { POOL_COMPLETIONS, engine->clr, NULL };
    struct open_port *open_port;
    HRESULT hr;

    if (!engine->clr)
        return HOST_E_CLRNOTAVAILABLE;
    if (!(open_port = heap_alloc(HEAP_ZERO_MEMORY, sizeof(*open_port))))
        return E_OUTOFMEMORY;
    InterlockedIncrement(&engine->refs);  /* the pool's, given back through engine_release */
    if (FAILED(hr = pool_create(&client, engine->limits, &engine->dequeue, &engine->tally, engine_release, engine,
                                &open_port->pool)))
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

static void shut_down_work_queue(struct engine *engine);
static void release_work_pool(struct engine *engine);

void engine_shutdown(struct engine *engine)
{
    ICLRIoCompletionManager *clr;
    struct open_port *ports, *next;

    if (module_process_ending())
    {
        /* A killed thread may hold any lock: tell the pools to stop and take nothing. */
        if (engine->work_pool)
            pool_stop(engine->work_pool);
        for (ports = engine->ports; ports; ports = ports->next)
            pool_stop(ports->pool);
        return;
    }
    /* The queue first: its items may wait for completions, which the ports still dispatch; a
     * completion callback that queues an item from now on is refused. */
    shut_down_work_queue(engine);
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
    release_work_pool(engine);
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

/* For the ports and the worker pool alike: the maximum at least 1 and at least the minimum, which
 * may be 0; E_INVALIDARG changes nothing. */
static HRESULT store_thread_limits(struct thread_limits *stored, DWORD min_threads, DWORD max_threads,
                                   struct thread_limits *limits)
{
    if (!max_threads || max_threads > HOSTIOCP_MAX_THREADS_LIMIT || min_threads > max_threads)
        return E_INVALIDARG;
    limits->min_threads = (LONG)min_threads;
    limits->max_threads = (LONG)max_threads;
    InterlockedExchange(&stored->min_threads, limits->min_threads);
    InterlockedExchange(&stored->max_threads, limits->max_threads);
    return S_OK;
}

/* Threads that are not inside a callback, of the maximum; never below 0. */
static DWORD threads_available(LONG max, LONG busy)
{
    return busy < max ? (DWORD)(max - busy) : 0;
}

static HRESULT set_thread_limits(struct engine *engine, DWORD min_threads, DWORD max_threads)
{
    struct open_port *open_port;
    struct thread_limits limits;

    if (FAILED(store_thread_limits(&engine->limits, min_threads, max_threads, &limits)))
        return E_INVALIDARG;
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
    return threads_available(max, busy);
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

/* ---- the work-item queue ---- */

/* The flags the CLR passes: "call or queue" is served by queueing, as a busy pool would. */
#define WORK_ITEM_FLAGS (HOSTIOCP_QUEUE_ONLY | HOSTIOCP_CALL_OR_QUEUE)

/* Called by the queue's pool once the last item accepted before the close has run. */
static void work_queue_finished(void *context)
{
    struct engine *engine = context;

    AcquireSRWLockExclusive(&engine->work_lock);
    WakeAllConditionVariable(&engine->work_drained);
    ReleaseSRWLockExclusive(&engine->work_lock);
}

#define DRAIN_LOOK_MS 20  /* an item that drains looks again this often while others still run */

/* Only the calling item is left. */
static BOOL only_own_item_left(void *context)
{
    return pool_unfinished_items(context) <= 1;
}

/* Waits until every item accepted has run to its end, with the pool still running: its monitor
 * adds threads while items wait for items, as before.  From inside an item, that item is not
 * waited for, and its thread runs queued items meanwhile: they may be queued behind it with
 * no other thread to take them. */
static void drain_work_queue(struct engine *engine, struct pool *pool)
{
    if (pool_serves_current_thread(pool))
    {
        pool_serve_until(pool, only_own_item_left, pool, DRAIN_LOOK_MS);
        return;
    }
    AcquireSRWLockExclusive(&engine->work_lock);
    while (pool_unfinished_items(pool))
        SleepConditionVariableSRW(&engine->work_drained, &engine->work_lock, INFINITE, 0);
    ReleaseSRWLockExclusive(&engine->work_lock);
}

/* Refuses items from here on, runs every item accepted before, and stops the queue's pool; the
 * pool itself stays until release_work_pool, for the statistics and for callers that still
 * queue (they are refused).  Under the loader lock nothing can wait: pool_stop then has the
 * threads discard what is left. */
static void shut_down_work_queue(struct engine *engine)
{
    struct pool *pool;

    AcquireSRWLockExclusive(&engine->work_lock);
    engine->work_closed = TRUE;
    pool = engine->work_pool;
    ReleaseSRWLockExclusive(&engine->work_lock);
    if (!pool)
        return;
    pool_close_work_items(pool);
    if (!module_must_not_wait())
        drain_work_queue(engine, pool);
    pool_stop(pool);
}

/* Once the last reference to the managers is gone: every caller of QueueUserWorkItem holds one
 * (COM's rule), so no one can reach the pool through engine->work_pool any more.  Items of its
 * own that still run, under the loader lock, hold the pool's own references. */
static void release_work_pool(struct engine *engine)
{
    if (engine->work_pool)
        pool_release(engine->work_pool);
}

static HRESULT create_work_pool_locked(struct engine *engine)
{
    struct pool_client client = { POOL_WORK_ITEMS, NULL, work_queue_finished };
    struct pool *pool;
    HRESULT hr;

    InterlockedIncrement(&engine->refs);  /* the pool's, given back through engine_release */
    if (FAILED(hr = pool_create(&client, engine->work_limits, &engine->dequeue, &engine->work_tally,
                                engine_release, engine, &pool)))
        return hr;
    TRACE("work port %p created with %ld threads", pool_port(pool), pool_threads(pool));
    InterlockedExchangePointer((void **)&engine->work_pool, pool);
    return S_OK;
}

HRESULT engine_queue_work_item(struct engine *engine, LPTHREAD_START_ROUTINE function, void *context, ULONG flags)
{
    struct pool *pool;
    HRESULT hr = S_OK;

    if (!function || (flags & ~WORK_ITEM_FLAGS))
        return E_INVALIDARG;
    if (!(pool = engine->work_pool))
    {
        AcquireSRWLockExclusive(&engine->work_lock);
        if (engine->work_closed)
            hr = HOST_E_INVALIDOPERATION;
        else if (!engine->work_pool)
            hr = create_work_pool_locked(engine);
        pool = engine->work_pool;
        ReleaseSRWLockExclusive(&engine->work_lock);
    }
    if (SUCCEEDED(hr))
        hr = pool_post_work_item(pool, function, context);
    if (hr != S_OK)
        InterlockedIncrement64(&engine->items_refused);
    TRACE("QueueUserWorkItem(%p, %p, %#lx): %08lx", function, context, flags, hr);
    return hr;
}

static HRESULT set_work_limits(struct engine *engine, DWORD min_threads, DWORD max_threads)
{
    struct thread_limits limits;

    if (FAILED(store_thread_limits(&engine->work_limits, min_threads, max_threads, &limits)))
        return E_INVALIDARG;
    if (engine->work_pool)
        pool_limits_changed(engine->work_pool, limits);  /* also while it drains: items may wait for items */
    return S_OK;
}

HRESULT engine_set_work_min_threads(struct engine *engine, DWORD count)
{
    HRESULT hr;

    AcquireSRWLockExclusive(&engine->work_lock);
    hr = set_work_limits(engine, count, (DWORD)engine->work_limits.max_threads);
    ReleaseSRWLockExclusive(&engine->work_lock);
    return hr;
}

HRESULT engine_set_work_max_threads(struct engine *engine, DWORD count)
{
    HRESULT hr;

    AcquireSRWLockExclusive(&engine->work_lock);
    hr = set_work_limits(engine, (DWORD)engine->work_limits.min_threads, count);
    ReleaseSRWLockExclusive(&engine->work_lock);
    return hr;
}

DWORD engine_work_min_threads(struct engine *engine)
{
    return (DWORD)engine->work_limits.min_threads;
}

DWORD engine_work_max_threads(struct engine *engine)
{
    return (DWORD)engine->work_limits.max_threads;
}

DWORD engine_work_available_threads(struct engine *engine)
{
    struct pool *pool = engine->work_pool;

    return threads_available(engine->work_limits.max_threads, pool ? pool_busy(pool) : 0);
}

HRESULT engine_work_statistics(struct engine *engine, HOSTIOCP_WORK_STATISTICS *work)
{
    struct pool *work_pool = engine->work_pool;
    HOSTIOCP_STATISTICS pool;

    ZeroMemory(&pool, sizeof(pool));
    if (work_pool)
        pool_statistics(work_pool, &pool);
    finish_statistics(&pool, work_pool ? pool_peak(work_pool) : 0);
    ZeroMemory(work, sizeof(*work));
    work->cbSize = sizeof(*work);
    work->ThreadsTotal = pool.ThreadsTotal;
    work->ThreadsBusy = pool.ThreadsBusy;
    work->ThreadsIdle = pool.ThreadsIdle;
    work->ThreadsPeak = pool.ThreadsPeak;
    work->ThreadsTarget = pool.ThreadsTarget;
    work->ThreadsParked = pool.ThreadsParked;
    work->ItemsWaiting = pool.PacketsQueued;
    work->ItemsQueued = work_pool ? (ULONGLONG)pool_items_accepted(work_pool) : 0;
    work->ItemsRefused = (ULONGLONG)interlocked_read64(&engine->items_refused);
    work->ItemsRun = pool.CompletionsDispatched;
    work->ItemsDiscarded = pool.PacketsDiscarded;
    work->ThreadsInjected = pool.ThreadsInjected;
    work->ThreadsRetired = pool.ThreadsRetired;
    work->TargetRaised = pool.TargetRaised;
    work->TargetLowered = pool.TargetLowered;
    work->StarvationInjections = pool.StarvationInjections;
    return S_OK;
}
