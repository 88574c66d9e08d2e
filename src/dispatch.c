/* The dispatch loop of every pool thread: dequeue a packet and call OnComplete with it on this
 * same thread, exactly once, with the OVERLAPPED pointer as it came off the port. */
#include <winternl.h>
#include "hostiocp_private.h"

/* Returns FALSE when the thread should end. */
static BOOL handle_packet(struct pool *pool, struct worker *worker, ULONG_PTR key,
                          OVERLAPPED *overlapped, DWORD bytes, DWORD error)
{
    if (!overlapped)
    {
        /* Our stop packets, or someone's wake-up: there is nothing to complete. */
        if (key != pool->control_key)
            InterlockedIncrement64(&worker->counts.wakeups);
        return !pool->stopping;
    }
    if (pool->stopping)
    {
        InterlockedIncrement64(&worker->counts.discarded);
        return FALSE;
    }
    /* Every thread is inside a callback: start another before this one may block. */
    if (InterlockedIncrement(&pool->busy) >= pool->threads)
        pool_inject(pool);
    InterlockedIncrement64(&worker->counts.dispatched);
    if (error != ERROR_SUCCESS)
        InterlockedIncrement64(&worker->counts.failed);
    if (key != pool->bind_key)
        InterlockedIncrement64(&worker->counts.foreign);
    if (hostiocp_trace_enabled)
        hostiocp_trace_line("port %p: OnComplete(%lu, %lu, %p) key %p", pool->port, error, bytes,
                            overlapped, (void *)key);
    ICLRIoCompletionManager_OnComplete(pool->clr, error, bytes, overlapped);
    InterlockedDecrement(&pool->busy);
    return TRUE;
}

static BOOL wait_ended(struct pool *pool, struct worker *worker, DWORD error)
{
    if (error == WAIT_TIMEOUT)
        return !pool->stopping && !pool_retire_idle(pool, worker);
    TRACE("port %p: dequeue failed with error %lu; the thread ends", pool->port, error);
    return FALSE;
}

static BOOL dispatch_one(struct pool *pool, struct worker *worker)
{
    OVERLAPPED *overlapped = NULL;
    ULONG_PTR key = 0;
    DWORD bytes = 0;
    BOOL ok = GetQueuedCompletionStatus(pool->port, &bytes, &key, &overlapped,
                                        pool->limits->idle_timeout);

    if (!ok && !overlapped)
        return wait_ended(pool, worker, GetLastError());
    return handle_packet(pool, worker, key, overlapped, bytes, ok ? ERROR_SUCCESS : GetLastError());
}

/* OVERLAPPED_ENTRY.Internal holds the packet's NTSTATUS, the same status from which
 * GetQueuedCompletionStatus derives its last error. */
static BOOL dispatch_batch(struct pool *pool, struct worker *worker, OVERLAPPED_ENTRY *entries,
                           ULONG capacity)
{
    BOOL keep_running = TRUE;
    ULONG count = 0, i;

    if (!GetQueuedCompletionStatusEx(pool->port, entries, capacity, &count,
                                     pool->limits->idle_timeout, FALSE))
        return wait_ended(pool, worker, GetLastError());
    for (i = 0; i < count; i++)
    {
        DWORD error = RtlNtStatusToDosError((NTSTATUS)entries[i].Internal);

        if (!handle_packet(pool, worker, entries[i].lpCompletionKey, entries[i].lpOverlapped,
                           entries[i].dwNumberOfBytesTransferred, error))
            keep_running = FALSE;
    }
    return keep_running;
}

DWORD WINAPI dispatch_thread(void *arg)
{
    struct pool *pool = arg;
    OVERLAPPED_ENTRY *entries = NULL;
    struct worker worker;
    BOOL keep_running = TRUE;

    pool_worker_enter(pool, &worker);
    TRACE("port %p: thread started", pool->port);
    while (keep_running && !pool->stopping)
    {
        LONG batch = pool->limits->batch_size;

        if (batch > 1 && !entries)
            entries = HeapAlloc(GetProcessHeap(), 0, HOSTIOCP_MAX_BATCH_SIZE * sizeof(*entries));
        if (batch > 1 && entries)
            keep_running = dispatch_batch(pool, &worker, entries, (ULONG)batch);
        else
            keep_running = dispatch_one(pool, &worker);
        if (keep_running && pool_retire_excess(pool, &worker))
            break;
    }
    HeapFree(GetProcessHeap(), 0, entries);
    TRACE("port %p: thread ends", pool->port);
    pool_worker_leave(pool, &worker);
    FreeLibraryAndExitThread(hostiocp_instance, 0);
}
