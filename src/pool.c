/* The threads of one completion port: they dequeue packets and call OnComplete on the same
 * thread, exactly once per packet with an OVERLAPPED, between the host's minimum and maximum,
 * at the count that the controller (policy.c) finds, sampled by the pool's monitor thread.
 *
 * Invariants:
 * - An idle thread retires only if another idle thread stays: threads and busy threads share
 *   one word, so that decision and a dequeue that takes the last idle thread see each other.
 * - A retired thread parks and is the first to be reused.  It ends only when the pool stops, or
 *   after the idle timeout where the system can tell that no I/O it issued is pending: under
 *   Wine, I/O completes through the thread that issued it, and is lost if that thread ends.
 * - Packets queued while every thread is inside a callback are noticed by the monitor within
 *   two ticks (40 ms), which then adds threads up to the maximum.
 * - A dequeued packet is always dispatched; every thread ends on a stop packet of its own, so
 *   the port's FIFO order dispatches everything queued before pool_stop before it returns.
 */
#include <assert.h>
#include <winternl.h>
#include "hostiocp_private.h"
#include "policy.h"

NTSTATUS NTAPI NtQueryIoCompletion(HANDLE port, int information_class, void *buffer, ULONG length,
                                   ULONG *returned);
#ifndef STATUS_SUCCESS
#define STATUS_SUCCESS ((NTSTATUS)0x00000000)
#endif
#ifndef STATUS_UNSUCCESSFUL
#define STATUS_UNSUCCESSFUL ((NTSTATUS)0xc0000001)
#endif
NTSTATUS NTAPI NtRemoveIoCompletion(HANDLE port, ULONG_PTR *key, ULONG_PTR *value, IO_STATUS_BLOCK *io,
                                    LARGE_INTEGER *timeout);

/* counts: threads alive in the high half; in the low half, those not waiting on the port (from
 * the moment a dequeue returns packets until they are all dispatched). */
#define BUSY_ONE      1
#define THREADS_ONE   0x10000
static inline LONG busy_of(LONG counts) { return counts & 0xffff; }
static inline LONG threads_of(LONG counts) { return counts >> 16; }

struct worker
{
    struct pool *pool;
    struct worker *next, *prev;       /* locked via pool->lock */
    struct port_counters counts;      /* written by its own thread, read by anyone */
    OVERLAPPED_ENTRY *entries;        /* what the last dequeue returned ... */
    ULONG count, next_entry;          /* ... of which entries[next_entry..count) are still to go */
    BOOL from_ex;                     /* entries came from GetQueuedCompletionStatusEx */
    OVERLAPPED_ENTRY single;
    OVERLAPPED_ENTRY *batch;          /* room for HOSTIOCP_MAX_BATCH_SIZE, allocated on first use */
    LONG stop_packets;                /* our stop packets this thread has taken */
    LONG retire_packets;              /* ... and retire packets, not yet taken off pool->retire_packets */
    BOOL slot_released;               /* it retired: its count was already taken off */
};

struct pool
{
    volatile LONG refs;               /* the owner's, one per thread and the monitor's */
    HANDLE port;                      /* closed by pool_stop, or by the last reference if abandoned */
    ULONG_PTR bind_key, control_key, retire_key; /* set at creation, then read-only */
    ICLRIoCompletionManager *clr;     /* the pool's own reference, until no thread can call it */
    const struct pool_limits *limits; /* the engine's: it outlives the pool */
    struct thread_tally *tally;       /* the engine's, for every port: Interlocked only */
    void (*on_destroy)(void *context); /* set at creation; called by the last reference */
    void *context;

    volatile LONG counts;             /* Interlocked only; grows only under lock */
    volatile LONG target;             /* written by the monitor only */
    volatile LONG peak;               /* Interlocked only (raise_to) */
    volatile LONG queued;             /* the monitor's last look at the port */
    volatile LONG retire_packets;     /* posted to wake idle threads above the limit, not yet taken */

    SRWLOCK lock;
    CONDITION_VARIABLE changed;       /* a thread or the monitor ended */
    volatile LONG stopping;           /* set under lock; read without it as a hint */
    volatile LONG abandoned;          /* stopped without waiting: discard instead of dispatch */
    volatile LONG stopped;            /* pool_stop closed the port */
    struct worker *workers;           /* locked via lock */
    struct port_counters ended_threads; /* locked via lock: the counters of threads that have ended */
    LONG monitors;                    /* locked via lock: 1 while the monitor runs */
    LONG parked;                      /* locked via lock: retired threads waiting to be needed */
    LONG unpark_requests;             /* locked via lock: how many of them are asked back */
    CONDITION_VARIABLE unparked;      /* an unpark request, or the stop */

    HANDLE monitor_wake;              /* set when the pool stops */
    HANDLE monitor_nudge;             /* auto-reset: the host changed the limits */
    HANDLE thread_left;               /* auto-reset: a thread ended, or did not start, while the pool runs */
    struct policy *policy;            /* used by the monitor thread only */
    volatile LONG64 injected, retired, raised, lowered, starvation; /* Interlocked only */
};

static DWORD WINAPI dispatch_thread(void *arg);
static DWORD WINAPI monitor_thread(void *arg);

static void pool_add_ref(struct pool *pool)
{
    InterlockedIncrement(&pool->refs);
}

void pool_release(struct pool *pool)
{
    if (InterlockedDecrement(&pool->refs))
        return;
    assert(threads_of(pool->counts) == 0 && !pool->monitors && !pool->parked);
    if (pool->port)
        CloseHandle(pool->port);
    if (pool->monitor_wake)
        CloseHandle(pool->monitor_wake);
    if (pool->monitor_nudge)
        CloseHandle(pool->monitor_nudge);
    if (pool->thread_left)
        CloseHandle(pool->thread_left);
    policy_destroy(pool->policy);
    if (pool->clr)
        ICLRIoCompletionManager_Release(pool->clr);
    pool->on_destroy(pool->context);
    HeapFree(GetProcessHeap(), 0, pool);
}

HANDLE pool_port(const struct pool *pool)
{
    return pool->port;
}

ULONG_PTR pool_bind_key(const struct pool *pool)
{
    return pool->bind_key;
}

LONG pool_busy(const struct pool *pool)
{
    return busy_of(pool->counts);
}

static LONG floor_of(const struct pool_limits *limits)
{
    return limits->min_threads > 1 ? limits->min_threads : 1;
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

/* ---- threads coming and going ---- */

/* Counts a new thread if the pool is not stopping and has fewer than `limit`. */
static BOOL reserve_thread(struct pool *pool, LONG limit)
{
    BOOL reserved = FALSE;
    LONG counts;

    AcquireSRWLockExclusive(&pool->lock);
    counts = pool->counts;
    while (!pool->stopping && threads_of(counts) < limit)
    {
        LONG seen = InterlockedCompareExchange(&pool->counts, counts + THREADS_ONE, counts);
        if (seen == counts)
        {
            reserved = TRUE;
            break;
        }
        counts = seen;
    }
    ReleaseSRWLockExclusive(&pool->lock);
    if (!reserved)
        return FALSE;
    module_add_ref();
    raise_to(&pool->peak, threads_of(counts) + 1);
    raise_to(&pool->tally->peak, InterlockedIncrement(&pool->tally->threads));
    return TRUE;
}

/* The engine's counts first, so that whoever waits for the pool sees them settled. */
static void thread_gone(struct pool *pool, BOOL take_off_count)
{
    struct thread_tally *tally = pool->tally;

    module_release();
    AcquireSRWLockExclusive(&tally->lock);
    InterlockedDecrement(&tally->threads);
    WakeAllConditionVariable(&tally->thread_left);
    ReleaseSRWLockExclusive(&tally->lock);
    AcquireSRWLockExclusive(&pool->lock);
    if (take_off_count)
        InterlockedExchangeAdd(&pool->counts, -THREADS_ONE);
    WakeAllConditionVariable(&pool->changed);
    ReleaseSRWLockExclusive(&pool->lock);
    /* One thread less than counted (it ended, or never started): a monitor asleep over a full
     * pool looks again. */
    if (take_off_count && !pool->stopping)
        SetEvent(pool->thread_left);
}

static BOOL start_thread(struct pool *pool, LONG limit)
{
    HMODULE pin;
    HANDLE thread;
    DWORD error;

    if (!reserve_thread(pool, limit))
        return FALSE;
    if (!(pin = module_pin()))
    {
        thread_gone(pool, TRUE);
        return FALSE;
    }
    pool_add_ref(pool);
    if ((thread = create_thread(dispatch_thread, pool)))
    {
        CloseHandle(thread);
        return TRUE;
    }
    error = GetLastError();
    FreeLibrary(pin);
    thread_gone(pool, TRUE);
    pool_release(pool);
    SetLastError(error);
    return FALSE;
}

/* Takes the caller off the count if what remains satisfies `keep`. */
static BOOL leave_if(struct pool *pool, struct worker *worker, BOOL (*allowed)(struct pool *pool, LONG counts))
{
    LONG counts = pool->counts;

    while (allowed(pool, counts))
    {
        LONG seen = InterlockedCompareExchange(&pool->counts, counts - THREADS_ONE, counts);
        if (seen == counts)
        {
            worker->slot_released = TRUE;
            InterlockedIncrement64(&pool->retired);
            return TRUE;
        }
        counts = seen;
    }
    return FALSE;
}

/* An idle thread (waiting on the port, not counted busy) may go if the minimum and another
 * waiting thread remain: a dequeue that takes that other one is counted in the same word. */
static BOOL idle_may_leave(struct pool *pool, LONG counts)
{
    LONG remaining = threads_of(counts) - 1;
    return !pool->stopping && remaining >= floor_of(pool->limits) && remaining - busy_of(counts) >= 1;
}

/* Between callbacks: above the maximum or the controller's target, a thread goes. */
static BOOL excess_may_leave(struct pool *pool, LONG counts)
{
    LONG limit = min(pool->target, pool->limits->max_threads);
    return !pool->stopping && threads_of(counts) > max(limit, floor_of(pool->limits));
}

/* ---- the dispatch loop ---- */

/* Internal holds the packet's NTSTATUS: success and informational statuses mean success. */
static DWORD entry_error(const OVERLAPPED_ENTRY *entry)
{
    NTSTATUS status = (NTSTATUS)entry->Internal;
    return NT_SUCCESS(status) ? ERROR_SUCCESS : RtlNtStatusToDosError(status);
}

static void dispatch_entry(struct pool *pool, struct worker *worker, const OVERLAPPED_ENTRY *entry)
{
    DWORD error = entry_error(entry);

    if (!entry->lpOverlapped)
    {
        if (entry->lpCompletionKey == pool->control_key)
            worker->stop_packets++;
        else if (entry->lpCompletionKey == pool->retire_key)
            worker->retire_packets++;  /* the loop sees whether this thread is in excess */
        else
            InterlockedIncrement64(&worker->counts.wakeups);
        return;
    }
    if (pool->abandoned)
    {
        InterlockedIncrement64(&worker->counts.discarded);
        return;
    }
    InterlockedIncrement64(&worker->counts.dispatched);
    if (worker->from_ex)
        InterlockedIncrement64(&worker->counts.batched);
    if (error != ERROR_SUCCESS)
        InterlockedIncrement64(&worker->counts.failed);
    if (entry->lpCompletionKey != pool->bind_key)
        InterlockedIncrement64(&worker->counts.foreign);
    TRACE("port %p: OnComplete(%lu, %lu, %p) key %p", pool->port, error, entry->dwNumberOfBytesTransferred,
          entry->lpOverlapped, (void *)entry->lpCompletionKey);
    ICLRIoCompletionManager_OnComplete(pool->clr, error, entry->dwNumberOfBytesTransferred,
                                       entry->lpOverlapped);
}

/* Dispatches what the last dequeue returned; pool_stop calls it too, from inside a callback. */
static void dispatch_entries(struct pool *pool, struct worker *worker)
{
    while (worker->next_entry < worker->count)
        dispatch_entry(pool, worker, &worker->entries[worker->next_entry++]);
}

/* One packet into entry, with its status in Internal as GetQueuedCompletionStatusEx gives it;
 * returns STATUS_SUCCESS, STATUS_TIMEOUT, or why the call failed (the port is closed or gone).
 * GetQueuedCompletionStatus cannot be told apart from a failed call when the packet has an error
 * status and no OVERLAPPED, so the one-packet path asks the system itself. */
static NTSTATUS take_packet(HANDLE port, OVERLAPPED_ENTRY *entry, DWORD timeout_ms)
{
    LARGE_INTEGER timeout = { .QuadPart = -(LONGLONG)timeout_ms * 10000 };
    IO_STATUS_BLOCK io;
    NTSTATUS status;

    status = NtRemoveIoCompletion(port, &entry->lpCompletionKey, (ULONG_PTR *)&entry->lpOverlapped, &io,
                                  timeout_ms == INFINITE ? NULL : &timeout);
    if (status == STATUS_SUCCESS)
    {
        entry->Internal = (ULONG_PTR)io.Status;
        entry->dwNumberOfBytesTransferred = (DWORD)io.Information;
    }
    return status;
}

/* One packet into worker->single, then the worker's entries; leaves them as they were if none
 * came, and returns take_packet's answer. */
static NTSTATUS dequeue_single(struct pool *pool, struct worker *worker, DWORD timeout)
{
    NTSTATUS status = take_packet(pool->port, &worker->single, timeout);

    if (status != STATUS_SUCCESS)
        return status;
    worker->entries = &worker->single;
    worker->from_ex = FALSE;
    worker->count = 1;
    worker->next_entry = 0;
    return status;
}

/* Up to the batch size of packets into the worker's entries, as dequeue_single answers. */
static NTSTATUS take_packets(struct pool *pool, struct worker *worker)
{
    LONG batch = pool->limits->batch_size;
    DWORD timeout = (DWORD)pool->limits->idle_timeout;

    if (batch > 1 && !worker->batch)
        worker->batch = heap_alloc(0, HOSTIOCP_MAX_BATCH_SIZE * sizeof(*worker->batch));
    if (batch <= 1 || !worker->batch)
        return dequeue_single(pool, worker, timeout);
    worker->entries = worker->batch;
    worker->from_ex = TRUE;
    /* It never fails with a packet: an error packet is an entry like any other. */
    if (GetQueuedCompletionStatusEx(pool->port, worker->batch, (ULONG)batch, &worker->count, timeout, FALSE))
        return STATUS_SUCCESS;
    if (GetLastError() == WAIT_TIMEOUT)
        return STATUS_TIMEOUT;
    TRACE("port %p: GetQueuedCompletionStatusEx failed with error %lu", pool->port, GetLastError());
    return STATUS_UNSUCCESSFUL;
}

/* Returns FALSE when the thread should stop serving the port: the port is closed or gone, or
 * the thread retired after idling (worker->slot_released). */
static BOOL dequeue(struct pool *pool, struct worker *worker)
{
    NTSTATUS status;

    worker->count = worker->next_entry = 0;
    status = take_packets(pool, worker);
    if (status == STATUS_SUCCESS)
    {
        InterlockedExchangeAdd(&pool->counts, BUSY_ONE);
        return TRUE;
    }
    if (status != STATUS_TIMEOUT)
    {
        TRACE("port %p: dequeue failed with status %#lx; the thread ends", pool->port, status);
        return FALSE;
    }
    if (!leave_if(pool, worker, idle_may_leave))
        return TRUE;
    TRACE("port %p: an idle thread retired, %ld left", pool->port, threads_of(pool->counts));
    return FALSE;
}

static void worker_enter(struct pool *pool, struct worker *worker)
{
    ZeroMemory(worker, sizeof(*worker));
    worker->pool = pool;
    set_current_worker(worker);
    AcquireSRWLockExclusive(&pool->lock);
    worker->next = pool->workers;
    if (pool->workers)
        pool->workers->prev = worker;
    pool->workers = worker;
    ReleaseSRWLockExclusive(&pool->lock);
}

/* Whole on 32-bit too. */
static LONG64 read64(const volatile LONG64 *value)
{
    return InterlockedCompareExchange64((volatile LONG64 *)value, 0, 0);
}

static void add_counters(struct port_counters *sum, const struct port_counters *counts)
{
    sum->dispatched += read64(&counts->dispatched);
    sum->failed += read64(&counts->failed);
    sum->foreign += read64(&counts->foreign);
    sum->wakeups += read64(&counts->wakeups);
    sum->discarded += read64(&counts->discarded);
    sum->batched += read64(&counts->batched);
}

/* Every thread ends on a stop packet of its own, so one that cannot be posted now (the system
 * is out of resources) is tried again until it is: giving up would leave a thread waiting on
 * the port for ever. */
static void post_stop_packet(struct pool *pool)
{
    DWORD delay = 1;

    while (!post_packet(pool->port, 0, pool->control_key, NULL))
    {
        WARN("port %p: a stop packet could not be posted (error %lu); trying again", pool->port, GetLastError());
        Sleep(delay);  /* back-off before the retry, not synchronisation */
        delay = min(delay * 2, 100);
    }
}

static void worker_leave(struct pool *pool, struct worker *worker)
{
    LONG extra;

    /* A batch can hold several stop packets: the others' go back to the port for them. */
    for (extra = worker->stop_packets - 1; extra > 0 && !pool->stopped; extra--)
        post_stop_packet(pool);
    HeapFree(GetProcessHeap(), 0, worker->batch);
    AcquireSRWLockExclusive(&pool->lock);
    add_counters(&pool->ended_threads, &worker->counts);
    if (worker->prev)
        worker->prev->next = worker->next;
    else
        pool->workers = worker->next;
    if (worker->next)
        worker->next->prev = worker->prev;
    ReleaseSRWLockExclusive(&pool->lock);
    set_current_worker(NULL);
    /* pool_stop ran inside this thread's callback, the pool's last: nothing calls the CLR now,
     * and whoever waits for the thread to be gone may count on the reference being gone too. */
    if (pool->stopped && pool->clr)
    {
        ICLRIoCompletionManager_Release(pool->clr);
        pool->clr = NULL;
    }
    thread_gone(pool, !worker->slot_released);
    pool_release(pool);
}

/* Whether a parked thread may end: only where the system can tell it has no I/O pending. */
static BOOL thread_may_end(void)
{
    static int system_can_tell = -1;
    BOOL pending = TRUE;

    if (system_can_tell < 0)
        system_can_tell = !GetProcAddress(GetModuleHandleW(L"ntdll.dll"), "wine_get_version");
    return system_can_tell && GetThreadIOPendingFlag(GetCurrentThread(), &pending) && !pending;
}

/* A retired thread waits to be asked back (TRUE) or to end (FALSE). */
static BOOL park(struct pool *pool, struct worker *worker)
{
    BOOL back = FALSE, may_end = FALSE;

    AcquireSRWLockExclusive(&pool->lock);
    pool->parked++;
    for (;;)
    {
        /* Checked after every wait, the one that timed out too: a request made between the
         * timeout and taking the lock back counted this thread among the threads already. */
        if (pool->unpark_requests)
        {
            pool->unpark_requests--;
            back = TRUE;
            break;
        }
        if (pool->stopping || may_end)
            break;
        may_end = !SleepConditionVariableSRW(&pool->unparked, &pool->lock, (DWORD)pool->limits->idle_timeout, 0) &&
                  thread_may_end();
    }
    pool->parked--;
    WakeAllConditionVariable(&pool->changed);
    ReleaseSRWLockExclusive(&pool->lock);
    /* Whoever asked it back has counted it among the threads again. */
    worker->slot_released = !back;
    TRACE("port %p: a parked thread %s", pool->port, back ? "is back" : "ends");
    return back;
}

/* Asks up to `wanted` parked threads back, counting them among the threads; returns how many. */
static LONG unpark(struct pool *pool, LONG wanted)
{
    LONG count;

    AcquireSRWLockExclusive(&pool->lock);
    count = pool->stopping ? 0 : min(wanted, pool->parked - pool->unpark_requests);
    if (count > 0)
    {
        pool->unpark_requests += count;
        raise_to(&pool->peak, threads_of(InterlockedExchangeAdd(&pool->counts, count * THREADS_ONE)) + count);
        WakeAllConditionVariable(&pool->unparked);
    }
    ReleaseSRWLockExclusive(&pool->lock);
    return max(count, 0);
}

/* A retire packet stays counted until its thread has left the count or chosen to stay, so that
 * the monitor does not post another for the same excess in between. */
static void settle_retire_packets(struct pool *pool, struct worker *worker)
{
    if (worker->retire_packets)
        InterlockedExchangeAdd(&pool->retire_packets, -worker->retire_packets);
    worker->retire_packets = 0;
}

/* Dispatches until the thread retires (TRUE) or ends (FALSE). */
static BOOL serve_port(struct pool *pool, struct worker *worker)
{
    BOOL left;

    while (!pool->stopped)
    {
        if (!dequeue(pool, worker))
            return worker->slot_released;
        if (!worker->count)
            continue;
        dispatch_entries(pool, worker);
        InterlockedExchangeAdd(&pool->counts, -BUSY_ONE);
        if (worker->stop_packets || pool->stopped)
            return FALSE;
        left = leave_if(pool, worker, excess_may_leave);
        settle_retire_packets(pool, worker);
        if (left)
        {
            TRACE("port %p: a thread above the target retired, %ld remain", pool->port, threads_of(pool->counts));
            return TRUE;
        }
    }
    return FALSE;
}

static DWORD WINAPI dispatch_thread(void *arg)
{
    struct pool *pool = arg;
    struct worker worker;

    worker_enter(pool, &worker);
    TRACE("port %p: thread started", pool->port);
    while (serve_port(pool, &worker) && park(pool, &worker))
        ;
    TRACE("port %p: thread ends", pool->port);
    worker_leave(pool, &worker);
    FreeLibraryAndExitThread(hostiocp_instance, 0);
}

/* Threads above a lowered maximum retire between callbacks; idle ones wait on the port, so a
 * packet of ours wakes as many of them as are in excess, rather than leaving them to their idle
 * timeout.  (Not for the controller's target: its probes would park and unpark threads.) */
static void wake_threads_above_maximum(struct pool *pool)
{
    LONG counts = pool->counts, limit = max(pool->limits->max_threads, floor_of(pool->limits));
    LONG wanted = min(threads_of(counts) - limit, threads_of(counts) - busy_of(counts)) - pool->retire_packets;

    for (; wanted > 0 && !pool->stopping; wanted--)
    {
        InterlockedIncrement(&pool->retire_packets);
        if (!post_packet(pool->port, 0, pool->retire_key, NULL))
        {
            InterlockedDecrement(&pool->retire_packets);
            break;
        }
    }
}

/* Parked threads first, then new ones, up to the minimum (and at least one listener). */
static void grow_to_minimum(struct pool *pool)
{
    LONG floor = floor_of(pool->limits), missing = floor - threads_of(pool->counts);

    if (missing > 0)
        unpark(pool, missing);
    while (threads_of(pool->counts) < floor && start_thread(pool, floor))
        ;
}

/* ---- the monitor: samples the pool for the controller and starts the threads it asks for ---- */

static LONG queue_depth(HANDLE port)
{
    LONG depth = 0;  /* IO_COMPLETION_BASIC_INFORMATION */

    return NtQueryIoCompletion(port, 0, &depth, sizeof(depth), NULL) ? 0 : depth;
}

static LONGLONG now_us(void)
{
    LARGE_INTEGER counter, frequency;

    QueryPerformanceCounter(&counter);
    QueryPerformanceFrequency(&frequency);
    return (LONGLONG)(counter.QuadPart * 1e6 / frequency.QuadPart);
}

static LONG64 filetime_units(FILETIME time)
{
    return (LONG64)(((ULONGLONG)time.dwHighDateTime << 32) | time.dwLowDateTime);
}

/* The machine's CPU time so far, in 100 ns units: idle, and in all (kernel time includes idle). */
static void cpu_times(LONG64 *idle, LONG64 *total)
{
    FILETIME idle_time, kernel_time, user_time;

    if (!GetSystemTimes(&idle_time, &kernel_time, &user_time))
    {
        *idle = *total = 0;
        return;
    }
    *idle = filetime_units(idle_time);
    *total = filetime_units(kernel_time) + filetime_units(user_time);
}

static LONG64 dispatched_so_far(struct pool *pool)
{
    struct port_counters sum;

    pool_counters(pool, &sum);
    return sum.dispatched;
}

static void note_decision(struct pool *pool, const struct policy_decision *decision)
{
    switch (decision->event)
    {
    case POLICY_NONE:
        return;
    case POLICY_STARVING: InterlockedIncrement64(&pool->starvation); break;
    case POLICY_RAISED: InterlockedIncrement64(&pool->raised); break;
    case POLICY_LOWERED: InterlockedIncrement64(&pool->lowered); break;
    case POLICY_PROBE: case POLICY_KEPT: break;
    }
    TRACE_POLICY("port %p: policy %s: %ld threads (%.0f/s) -> %ld (%.0f/s); target %ld", pool->port,
          policy_event_name(decision->event), decision->from, decision->from_rate, decision->to,
          decision->to_rate, decision->target);
}

/* A pool whose minimum is its maximum and that runs exactly that many threads has nothing to
 * decide (starvation cannot add a thread either) and no thread to start or to retire. */
static BOOL fixed_and_full(const struct pool *pool)
{
    return pool->limits->min_threads >= pool->limits->max_threads &&
           threads_of(pool->counts) == pool->limits->max_threads;
}

static void monitor_tick(struct pool *pool)
{
    struct policy_sample sample;
    struct policy_decision decision;
    LONG counts = pool->counts;

    sample.now_us = now_us();
    sample.completions = dispatched_so_far(pool);
    sample.threads = threads_of(counts);
    sample.busy = busy_of(counts);
    sample.queued = queue_depth(pool->port);
    sample.floor = floor_of(pool->limits);
    sample.max = max(pool->limits->max_threads, sample.floor);
    cpu_times(&sample.cpu_idle, &sample.cpu_total);
    pool->queued = sample.queued;
    policy_update(pool->policy, &sample, &decision);
    InterlockedExchange(&pool->target, decision.target);
    note_decision(pool, &decision);
    wake_threads_above_maximum(pool);  /* again: those that were still starting were busy */
    grow_to_minimum(pool);  /* again: a thread may have failed to start */
    /* Threads come when there is work for them; idle ones go after the idle timeout. */
    if (sample.queued > 0 || sample.busy >= sample.threads)
    {
        LONG missing = decision.target - threads_of(pool->counts);

        if (missing > 0)
            InterlockedExchangeAdd64(&pool->injected, unpark(pool, missing));
        while (threads_of(pool->counts) < decision.target && start_thread(pool, decision.target))
            InterlockedIncrement64(&pool->injected);
    }
}

/* Waits for the monitor's next look; FALSE when the pool stops.  Over a fixed, full pool the
 * monitor waits, leaving wineserver alone, until the limits change or a thread ends. */
static BOOL monitor_wait(struct pool *pool)
{
    HANDLE events[3] = { pool->monitor_wake, pool->monitor_nudge, pool->thread_left };

    if (!fixed_and_full(pool))
        return WaitForMultipleObjects(2, events, FALSE, POLICY_TICK_MS) != WAIT_OBJECT_0;
    /* What set them before now (the limits, a thread's end) is in the look below; what sets
     * them after it ends the wait. */
    ResetEvent(pool->monitor_nudge);
    ResetEvent(pool->thread_left);
    if (!fixed_and_full(pool))
        return TRUE;
    TRACE("port %p: monitor sleeps: the pool runs its fixed %ld threads", pool->port, threads_of(pool->counts));
    if (WaitForMultipleObjects(3, events, FALSE, INFINITE) == WAIT_OBJECT_0)
        return FALSE;
    TRACE("port %p: monitor wakes", pool->port);
    return TRUE;
}

static DWORD WINAPI monitor_thread(void *arg)
{
    struct pool *pool = arg;

    while (monitor_wait(pool))
        if (!fixed_and_full(pool))
            monitor_tick(pool);
    module_release();
    AcquireSRWLockExclusive(&pool->lock);
    pool->monitors--;
    WakeAllConditionVariable(&pool->changed);
    ReleaseSRWLockExclusive(&pool->lock);
    pool_release(pool);
    FreeLibraryAndExitThread(hostiocp_instance, 0);
}

static BOOL start_monitor(struct pool *pool)
{
    HMODULE pin = module_pin();
    HANDLE thread;

    if (!pin)
        return FALSE;
    module_add_ref();
    pool_add_ref(pool);
    pool->monitors = 1;
    if ((thread = create_thread(monitor_thread, pool)))
    {
        CloseHandle(thread);
        return TRUE;
    }
    pool->monitors = 0;
    pool_release(pool);
    module_release();
    FreeLibrary(pin);
    return FALSE;
}

/* ---- the pool's life ---- */

HRESULT pool_create(ICLRIoCompletionManager *clr, const struct pool_limits *limits, struct thread_tally *tally,
                    void (*on_destroy)(void *context), void *context, struct pool **out)
{
    struct pool *pool;
    SYSTEM_INFO system;
    LONG initial;
    HRESULT hr;

    if (!(pool = heap_alloc(HEAP_ZERO_MEMORY, sizeof(*pool))))
    {
        on_destroy(context);
        return E_OUTOFMEMORY;
    }
    GetSystemInfo(&system);
    /* The kernel then runs no more threads than CPUs at once where it can (not under Wine). */
    if (!(pool->port = create_completion_port(INVALID_HANDLE_VALUE, NULL, 0, system.dwNumberOfProcessors)))
    {
        hr = HRESULT_FROM_WIN32(GetLastError());
        HeapFree(GetProcessHeap(), 0, pool);
        on_destroy(context);
        return hr;
    }
    pool->refs = 1;
    pool->bind_key = (ULONG_PTR)pool;
    pool->control_key = (ULONG_PTR)pool + 1;
    pool->retire_key = (ULONG_PTR)pool + 2;
    pool->clr = clr;
    ICLRIoCompletionManager_AddRef(clr);
    pool->limits = limits;
    pool->tally = tally;
    pool->on_destroy = on_destroy;
    pool->context = context;
    InitializeSRWLock(&pool->lock);
    InitializeConditionVariable(&pool->changed);
    InitializeConditionVariable(&pool->unparked);
    initial = min(max((LONG)system.dwNumberOfProcessors, floor_of(limits)), limits->max_threads);
    pool->target = max(initial, 1);
    pool->policy = policy_create(pool->target, (LONG)system.dwNumberOfProcessors);
    pool->monitor_wake = CreateEventW(NULL, TRUE, FALSE, NULL);
    pool->monitor_nudge = CreateEventW(NULL, FALSE, FALSE, NULL);
    pool->thread_left = CreateEventW(NULL, FALSE, FALSE, NULL);
    if (!pool->policy || !pool->monitor_wake || !pool->monitor_nudge || !pool->thread_left ||
        !start_thread(pool, limits->max_threads))
        hr = HRESULT_FROM_WIN32(GetLastError() ? GetLastError() : ERROR_NOT_ENOUGH_MEMORY);
    else if (!start_monitor(pool))
        hr = HRESULT_FROM_WIN32(GetLastError() ? GetLastError() : ERROR_NOT_ENOUGH_MEMORY);
    else
    {
        pool_limits_changed(pool);
        *out = pool;
        return S_OK;
    }
    pool_stop(pool);
    pool_release(pool);
    return hr;
}

void pool_limits_changed(struct pool *pool)
{
    SetEvent(pool->monitor_nudge);
    wake_threads_above_maximum(pool);
    grow_to_minimum(pool);
}

static struct worker *own_worker(struct pool *pool)
{
    struct worker *worker = current_worker();
    return worker && worker->pool == pool ? worker : NULL;
}

const struct thread_tally *current_thread_tally(void)
{
    struct worker *worker = current_worker();
    return worker ? worker->pool->tally : NULL;
}

/* From inside a callback: everything queued before the stop packet of this thread is
 * dispatched here, on this thread, since nobody else is left to. */
static void dispatch_until_own_stop_packet(struct pool *pool, struct worker *worker)
{
    LONG stop_packets = worker->stop_packets;

    while (worker->stop_packets == stop_packets && dequeue_single(pool, worker, 0) == STATUS_SUCCESS)
        dispatch_entries(pool, worker);
}

/* After the threads: what arrived after the stop is counted, not dispatched. */
static void discard_remaining(struct pool *pool)
{
    OVERLAPPED_ENTRY entry;
    LONG64 discarded = 0;

    while (take_packet(pool->port, &entry, 0) == STATUS_SUCCESS)
        if (entry.lpOverlapped)
            discarded++;
    pool->ended_threads.discarded += discarded;
    if (discarded)
        TRACE("port %p: %ld packets arrived after the stop and were discarded", pool->port, (long)discarded);
}

void pool_stop(struct pool *pool)
{
    struct worker *own = own_worker(pool);
    LONG threads, i, remaining = own ? 1 : 0;

    if (module_process_ending())
    {
        /* Other threads were killed wherever they were, perhaps holding a lock: take none. */
        InterlockedExchange(&pool->abandoned, 1);
        InterlockedExchange(&pool->stopping, 1);
        return;
    }
    AcquireSRWLockExclusive(&pool->lock);
    assert(!pool->stopping);
    pool->stopping = TRUE;
    threads = threads_of(pool->counts);
    WakeAllConditionVariable(&pool->unparked);
    if (module_must_not_wait())
    {
        /* The threads cannot end while the loader lock is held: they discard what they dequeue
         * and end when it is released, and the last reference closes the port. */
        InterlockedExchange(&pool->abandoned, 1);
        TRACE("port %p: stopped without waiting (loader lock held)", pool->port);
    }
    ReleaseSRWLockExclusive(&pool->lock);
    if (pool->monitor_wake)
        SetEvent(pool->monitor_wake);
    for (i = 0; i < threads; i++)
        post_stop_packet(pool);
    if (pool->abandoned)
        return;
    if (own)
        dispatch_entries(pool, own);
    AcquireSRWLockExclusive(&pool->lock);
    while (threads_of(pool->counts) > remaining || pool->parked || pool->monitors)
        SleepConditionVariableSRW(&pool->changed, &pool->lock, INFINITE, 0);
    ReleaseSRWLockExclusive(&pool->lock);
    if (own)
        dispatch_until_own_stop_packet(pool, own);
    AcquireSRWLockExclusive(&pool->lock);
    discard_remaining(pool);
    ReleaseSRWLockExclusive(&pool->lock);
    CloseHandle(pool->port);
    pool->port = NULL;
    InterlockedExchange(&pool->stopped, 1);
    /* No thread of ours calls the CLR any more; the caller's own thread, if it is one, is
     * still inside a call and lets go of it when it ends. */
    if (!own)
    {
        ICLRIoCompletionManager_Release(pool->clr);
        pool->clr = NULL;
    }
    TRACE("pool %p: stopped", pool);
}

void pool_counters(struct pool *pool, struct port_counters *sum)
{
    const struct worker *worker;

    ZeroMemory(sum, sizeof(*sum));
    AcquireSRWLockShared(&pool->lock);
    add_counters(sum, &pool->ended_threads);
    for (worker = pool->workers; worker; worker = worker->next)
        add_counters(sum, &worker->counts);
    ReleaseSRWLockShared(&pool->lock);
}

void pool_statistics(struct pool *pool, HOSTIOCP_STATISTICS *stats)
{
    struct port_counters counts;
    LONG packed = pool->counts;

    pool_counters(pool, &counts);
    stats->CompletionsDispatched += counts.dispatched;
    stats->CompletionsFailed += counts.failed;
    stats->ForeignPackets += counts.foreign;
    stats->WakeupPackets += counts.wakeups;
    stats->PacketsDiscarded += counts.discarded;
    stats->CompletionsBatched += counts.batched;
    stats->ThreadsInjected += read64(&pool->injected);
    stats->ThreadsRetired += read64(&pool->retired);
    stats->TargetRaised += read64(&pool->raised);
    stats->TargetLowered += read64(&pool->lowered);
    stats->StarvationInjections += read64(&pool->starvation);
    if (pool->stopping)
        return;  /* what a stopped pool's threads still do is not the port's any more */
    assert(busy_of(packed) >= 0 && busy_of(packed) <= threads_of(packed));
    stats->ThreadsTotal += threads_of(packed);
    stats->ThreadsBusy += busy_of(packed);
    stats->ThreadsTarget += pool->target;
    stats->PacketsQueued += pool->queued;
    AcquireSRWLockShared(&pool->lock);
    stats->ThreadsParked += pool->parked;
    ReleaseSRWLockShared(&pool->lock);
}

LONG pool_threads(const struct pool *pool)
{
    return threads_of(pool->counts);
}

LONG pool_peak(const struct pool *pool)
{
    return pool->peak;
}
