/* Thread policy for one completion port: at least the minimum (and always one listener), never
 * more than the maximum, a new thread as soon as every thread is inside a callback, idle
 * threads above the minimum retired after the idle timeout, and a stop that waits for every
 * thread.  None of it relies on the port's concurrency value or on closing the port. */
#include "hostiocp_private.h"

void pool_init(struct pool *pool, HANDLE port, ICLRIoCompletionManager *clr,
               const struct pool_limits *limits, struct thread_tally *tally,
               void (*destroy)(struct pool *pool))
{
    pool->refs = 1;
    pool->destroy = destroy;
    pool->port = port;
    pool->bind_key = (ULONG_PTR)pool;
    pool->control_key = (ULONG_PTR)pool + 1;
    pool->clr = clr;
    pool->limits = limits;
    pool->tally = tally;
    InitializeSRWLock(&pool->lock);
    InitializeConditionVariable(&pool->thread_ended);
}

void pool_add_ref(struct pool *pool)
{
    InterlockedIncrement(&pool->refs);
}

void pool_release(struct pool *pool)
{
    if (!InterlockedDecrement(&pool->refs))
        pool->destroy(pool);
}

static LONG listener_floor(struct pool *pool)
{
    LONG min = pool->limits->min_threads;
    return min > 1 ? min : 1;
}

static void raise_to(volatile LONG *peak, LONG value)
{
    LONG seen = *peak;

    while (value > seen)
    {
        LONG previous = InterlockedCompareExchange(peak, value, seen);
        if (previous == seen)
            break;
        seen = previous;
    }
}

/* Takes one of the max_threads slots (at most `limit` threads); the caller then starts a thread. */
static BOOL reserve_slot(struct pool *pool, LONG limit)
{
    LONG threads = pool->threads;

    for (;;)
    {
        LONG seen;

        if (threads >= limit)
            return FALSE;
        seen = InterlockedCompareExchange(&pool->threads, threads + 1, threads);
        if (seen == threads)
            break;
        threads = seen;
    }
    module_add_ref();
    raise_to(&pool->peak, threads + 1);
    raise_to(&pool->tally->peak, InterlockedIncrement(&pool->tally->threads));
    return TRUE;
}

/* A slot is gone: the DLL reference and the engine's tally go first, so that whoever waits for
 * the pool's count (pool_stop) sees the engine's counts already settled. */
static void release_module_and_tally(struct pool *pool)
{
    struct thread_tally *tally = pool->tally;

    module_release();
    AcquireSRWLockExclusive(&tally->lock);
    InterlockedDecrement(&tally->threads);
    WakeAllConditionVariable(&tally->ended);
    ReleaseSRWLockExclusive(&tally->lock);
}

static void wake_pool_stop(struct pool *pool)
{
    AcquireSRWLockExclusive(&pool->lock);
    WakeAllConditionVariable(&pool->thread_ended);
    ReleaseSRWLockExclusive(&pool->lock);
}

static void release_slot(struct pool *pool)
{
    release_module_and_tally(pool);
    InterlockedDecrement(&pool->threads);
    wake_pool_stop(pool);
}

/* Gives a thread's slot back only while the count stays above `floor`. */
static BOOL release_slot_above(struct pool *pool, LONG floor)
{
    LONG threads = pool->threads;

    while (threads > floor)
    {
        LONG seen = InterlockedCompareExchange(&pool->threads, threads - 1, threads);
        if (seen == threads)
        {
            release_module_and_tally(pool);
            wake_pool_stop(pool);
            return TRUE;
        }
        threads = seen;
    }
    return FALSE;
}

static BOOL start_thread(struct pool *pool, LONG limit)
{
    HMODULE pin;
    HANDLE thread;

    if (!reserve_slot(pool, limit))
        return FALSE;
    /* A stop that began after the slot was taken might not have counted it. */
    if (pool->stopping || !(pin = module_pin()))
    {
        release_slot(pool);
        return FALSE;
    }
    pool_add_ref(pool);
    if (!(thread = CreateThread(NULL, 0, dispatch_thread, pool, 0, NULL)))
    {
        DWORD error = GetLastError();
        pool_release(pool);
        FreeLibrary(pin);
        release_slot(pool);
        SetLastError(error);
        return FALSE;
    }
    CloseHandle(thread);
    return TRUE;
}

HRESULT pool_start(struct pool *pool)
{
    if (!start_thread(pool, pool->limits->max_threads))
    {
        DWORD error = GetLastError();
        return HRESULT_FROM_WIN32(error ? error : ERROR_NOT_ENOUGH_MEMORY);
    }
    pool_grow_to_minimum(pool);
    return S_OK;
}

void pool_grow_to_minimum(struct pool *pool)
{
    while (pool->threads < pool->limits->min_threads && start_thread(pool, pool->limits->min_threads))
        ;
}

void pool_inject(struct pool *pool)
{
    if (start_thread(pool, pool->limits->max_threads))
    {
        InterlockedIncrement64(&pool->injected);
        TRACE("port %p: injected a thread, %ld now", pool->port, pool->threads);
    }
}

BOOL pool_retire_idle(struct pool *pool, struct worker *worker)
{
    BOOL io_pending = FALSE;

    /* Where the system can tell, a thread with I/O of its own in flight stays. */
    if (GetThreadIOPendingFlag(GetCurrentThread(), &io_pending) && io_pending)
        return FALSE;
    if (!release_slot_above(pool, listener_floor(pool)))
        return FALSE;
    worker->slot_released = TRUE;
    InterlockedIncrement64(&pool->retired);
    TRACE("port %p: retired an idle thread, %ld left", pool->port, pool->threads);
    return TRUE;
}

BOOL pool_retire_excess(struct pool *pool, struct worker *worker)
{
    LONG max = pool->limits->max_threads;

    if (pool->threads <= max || !release_slot_above(pool, max))
        return FALSE;
    worker->slot_released = TRUE;
    InterlockedIncrement64(&pool->retired);
    TRACE("port %p: retired a thread above the maximum, %ld left", pool->port, pool->threads);
    return TRUE;
}

static void add_counters(struct port_counters *sum, const struct port_counters *counts)
{
    sum->dispatched += InterlockedCompareExchange64((LONG64 *)&counts->dispatched, 0, 0);
    sum->failed += InterlockedCompareExchange64((LONG64 *)&counts->failed, 0, 0);
    sum->foreign += InterlockedCompareExchange64((LONG64 *)&counts->foreign, 0, 0);
    sum->wakeups += InterlockedCompareExchange64((LONG64 *)&counts->wakeups, 0, 0);
    sum->discarded += InterlockedCompareExchange64((LONG64 *)&counts->discarded, 0, 0);
}

void pool_worker_enter(struct pool *pool, struct worker *worker)
{
    ZeroMemory(worker, sizeof(*worker));
    set_current_pool(pool);
    AcquireSRWLockExclusive(&pool->lock);
    worker->next = pool->workers;
    if (pool->workers)
        pool->workers->prev = worker;
    pool->workers = worker;
    ReleaseSRWLockExclusive(&pool->lock);
}

void pool_worker_leave(struct pool *pool, struct worker *worker)
{
    AcquireSRWLockExclusive(&pool->lock);
    add_counters(&pool->ended, &worker->counts);
    if (worker->prev)
        worker->prev->next = worker->next;
    else
        pool->workers = worker->next;
    if (worker->next)
        worker->next->prev = worker->prev;
    ReleaseSRWLockExclusive(&pool->lock);
    if (!worker->slot_released)
        release_slot(pool);
    pool_release(pool);
}

void pool_counters(struct pool *pool, struct port_counters *sum)
{
    const struct worker *worker;

    ZeroMemory(sum, sizeof(*sum));
    AcquireSRWLockShared(&pool->lock);
    add_counters(sum, &pool->ended);
    for (worker = pool->workers; worker; worker = worker->next)
        add_counters(sum, &worker->counts);
    ReleaseSRWLockShared(&pool->lock);
}

void pool_stop(struct pool *pool)
{
    LONG threads, remaining, i;

    InterlockedExchange(&pool->stopping, 1);
    /* One stop packet per thread: closing a port does not wake its waiters on every system. */
    threads = pool->threads;
    for (i = 0; i < threads; i++)
        PostQueuedCompletionStatus(pool->port, 0, pool->control_key, NULL);

    AcquireSRWLockExclusive(&pool->lock);
    /* Called from a callback on one of our own threads: that thread ends when it returns. */
    remaining = current_pool() == pool ? 1 : 0;
    while (pool->threads > remaining)
        SleepConditionVariableSRW(&pool->thread_ended, &pool->lock, INFINITE, 0);
    ReleaseSRWLockExclusive(&pool->lock);
    TRACE("port %p: stopped", pool->port);
}
