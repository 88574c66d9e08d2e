/* The threads of one completion port.  Each takes packets from the port and handles each, on
 * the same thread and exactly once: on a port of the CLR's I/O, it calls OnComplete for each
 * packet that carries an OVERLAPPED; a work pool's threads take items from the pool's own queue
 * and run them, and wait on the port only for a wake-up when it is empty.  The pool runs
 * between the host's minimum and maximum, at the count that the controller (policy.c) finds from
 * the samples its monitor thread takes; "The thread rules" below say when a thread comes and
 * goes, and doc/thread-policy.md why.
 *
 * Invariants:
 * - Threads alive and threads busy share one interlocked word (`thread_counts`), so that an idle
 *   thread's decision to retire and a dequeue that takes the last idle thread see each other.
 * - A dequeued packet is always dispatched, or counted as discarded once the pool is abandoned.
 * - Every thread ends on a stop packet of its own, so the port's FIFO order dispatches everything
 *   queued before pool_stop before it returns; a work pool's threads empty its item queue before
 *   they look at the port.
 */
#include <assert.h>
#include <stdio.h>
#include <winternl.h>
#include "hostiocp_private.h"
#include "policy.h"

NTSTATUS NTAPI NtQueryIoCompletion(HANDLE port, int information_class, void *buffer, ULONG length,
                                   ULONG *returned);
/* Takes its entries as FILE_IO_COMPLETION_INFORMATION, which OVERLAPPED_ENTRY lays out the same
 * way (GetQueuedCompletionStatusEx passes them straight through): key, OVERLAPPED, status, bytes. */
NTSTATUS NTAPI NtRemoveIoCompletionEx(HANDLE port, OVERLAPPED_ENTRY *entries, ULONG count, ULONG *removed,
                                      LARGE_INTEGER *timeout, BOOLEAN alertable);
C_ASSERT(FIELD_OFFSET(OVERLAPPED_ENTRY, Internal) == 2 * sizeof(void *));
C_ASSERT(sizeof(OVERLAPPED_ENTRY) == 4 * sizeof(void *));
#ifndef STATUS_SUCCESS
#define STATUS_SUCCESS ((NTSTATUS)0x00000000)
#endif

#define NT_TICKS_PER_MS          10000  /* NT timeouts count 100 ns */
#define US_PER_SECOND              1e6
#define US_PER_MS                 1000
#define STOP_POST_BACKOFF_MAX_MS   100  /* a stop packet the system refused is posted again */

/* thread_counts: threads alive in the high 16 bits; in the low 16, those not waiting on the port (from
 * the moment a dequeue returns packets until they are all dispatched). */
#define BUSY_ONE      1
#define THREADS_ONE   0x10000
C_ASSERT(HOSTIOCP_MAX_THREADS_LIMIT < 0x8000);  /* both halves hold any count, and the word stays positive */
static inline LONG busy_of(LONG counts) { return counts & 0xffff; }
static inline LONG threads_of(LONG counts) { return counts >> 16; }

/* The port's counters, each with the HOSTIOCP_STATISTICS field that reports it. */
#define PORT_COUNTERS(X) \
    X(dispatched, CompletionsDispatched) \
    X(failed,     CompletionsFailed)     \
    X(foreign,    ForeignPackets)        \
    X(wakeups,    WakeupPackets)         \
    X(discarded,  PacketsDiscarded)      \
    X(batched,    CompletionsBatched)

/* The pool's own: the monitor's and the threads' decisions. */
#define POOL_COUNTERS(X) \
    X(injected,   ThreadsInjected)       \
    X(retired,    ThreadsRetired)        \
    X(raised,     TargetRaised)          \
    X(lowered,    TargetLowered)         \
    X(starvation, StarvationInjections)

struct port_counters
{
#define DECLARE_COUNTER(name, field) volatile LONG64 name;
    PORT_COUNTERS(DECLARE_COUNTER)
};

struct worker
{
    struct pool *pool;
    struct worker *next, *prev;       /* locked via pool->lock */
    struct port_counters counters;    /* Interlocked; written by its own thread, read by anyone */
    OVERLAPPED_ENTRY *entries;        /* the batch in hand (batch or single) ... */
    ULONG count, next_entry;          /* ... of which entries[next_entry..count) are still to go;
                                       * pool_stop, inside a callback, dispatches them */
    BOOL batched;                     /* the batch came from a dequeue of more than one */
    BOOL dispatching;                 /* inside serve_batch's loop: busy */
    OVERLAPPED_ENTRY single;
    OVERLAPPED_ENTRY *batch;          /* room for HOSTIOCP_MAX_BATCH_SIZE, allocated on first use */
    LONG stop_packets;                /* our stop packets this thread has taken */
    LONG retire_packets;              /* ... and retire packets, not yet taken off pool->retire_packets */
    BOOL slot_released;               /* it retired: its count was already taken off */
    HANDLE thread;                    /* its own, for its CPU time; NULL if it could not be had */
    LONG items_finished;              /* work items it ran or discarded, not yet taken off the queue's
                                       * unfinished count: no locked write per item */
};

/* A work pool's items wait in a queue of its own, in the order they came: taking one from
 * there costs no system call, where the port would cost two (under Wine, two wineserver round
 * trips).  The port carries only the packets that wake a waiting thread for an item, and those
 * that stop or retire one. */
struct queued_item
{
    LPTHREAD_START_ROUTINE function;
    void *context;
};

#define ITEM_QUEUE_FIRST_CAPACITY 64  /* entries; the ring doubles when full and never shrinks */

struct item_queue
{
    SRWLOCK lock;
    struct queued_item *ring;         /* locked via lock: `count` items from `head`, wrapping */
    ULONG capacity, head;             /* locked via lock */
    volatile LONG count;              /* written under lock; the monitor reads it without */
    LONG waiting;                     /* locked via lock: threads that found it empty and wait on the port */
    LONG wakes;                       /* locked via lock: wake packets posted and not yet taken */
    BOOL closed;                      /* locked via lock: items are refused */
    LONG unfinished;                  /* locked via lock: accepted, not yet run to their end nor discarded;
                                       * a worker's runs are taken off when it next takes the lock */
    LONG64 accepted;                  /* locked via lock */
    int spins;                        /* set at creation: ITEM_LOCK_SPINS, none on a single CPU (the holder
                                       * could not run meanwhile) */
};

struct pool
{
    volatile LONG refs;               /* the owner's, one per thread and the monitor's */
    HANDLE port;                      /* closed by pool_stop, or by the last reference if abandoned */
    ULONG_PTR bind_key, stop_key, retire_key, wake_key; /* set at creation, then read-only */
    enum pool_kind kind;              /* set at creation, then read-only */
    ICLRIoCompletionManager *clr;     /* completions: the pool's own reference, until no thread can call it */
    void (*items_finished)(void *context); /* work items: set at creation, then read-only */
    struct thread_tally *tally;       /* the engine's, for every port */
    void (*on_destroy)(void *context); /* set at creation; called by the last reference */
    void *context;
    struct thread_limits limits;      /* written Interlocked by pool_limits_changed, read by anyone */
    const struct dequeue_settings *dequeue; /* the engine's: it outlives the pool */
    LONG cpus;                        /* set at creation */

    volatile LONG thread_counts;      /* Interlocked only; grows only under lock */
    volatile LONG target;             /* written by the monitor only */
    volatile LONG peak;               /* Interlocked only (interlocked_raise) */
    volatile LONG queued;             /* the monitor's last look at the port (work pools: at the queue) */
    volatile LONG retire_packets;     /* posted to wake idle threads above the limit, not yet taken */

    SRWLOCK lock;
    CONDITION_VARIABLE changed;       /* a thread or the monitor ended */
    volatile LONG stopping;           /* set under lock; read without it as a hint */
    volatile LONG abandoned;          /* stopped without waiting: discard instead of dispatch */
    volatile LONG stopped;            /* pool_stop closed the port */
    struct worker *workers;           /* locked via lock */
    struct port_counters ended_counters; /* locked via lock: what threads that ended counted */
    LONG64 ended_cpu;                 /* locked via lock: the CPU time of threads that ended */
    LONG monitors;                    /* locked via lock: 1 while the monitor runs */
    LONG parked;                      /* locked via lock: retired threads waiting to be needed */
    LONG unpark_requests;             /* locked via lock: how many of them are asked back */
    CONDITION_VARIABLE unparked;      /* an unpark request, or the stop */

    SRWLOCK monitor_lock;             /* what wakes the monitor is in the process, not a system object: under
                                       * Wine a wait on an event costs wineserver a round trip every tick */
    CONDITION_VARIABLE monitor_signalled;
    LONG monitor_signals;             /* locked via monitor_lock: enum monitor_signal, each until the monitor
                                       * takes it, but MONITOR_STOP for good */
    volatile LONG monitor_idle;       /* Interlocked: the monitor sleeps over an idle pool; the first thread to
                                       * take work wakes it */
    struct policy *policy;            /* used by the monitor thread only */
    struct policy_sample last_sample; /* used by the monitor thread only: its look before this one */
#define DECLARE_POOL_COUNTER(name, field) volatile LONG64 name;
    POOL_COUNTERS(DECLARE_POOL_COUNTER) /* Interlocked only */
    struct item_queue items;          /* work pools only */
};

enum monitor_signal
{
    MONITOR_STOP = 1,                 /* the pool stops */
    MONITOR_LIMITS = 2,               /* the host changed the thread limits, or a wake-up for items is the monitor's */
    MONITOR_THREAD_LEFT = 4,          /* a thread ended, or did not start, while the pool runs */
    MONITOR_WORK = 8,                 /* a thread took work while the monitor slept over an idle pool */
};

static DWORD WINAPI worker_thread(void *arg);
static DWORD WINAPI monitor_thread(void *arg);

/* ---- the thread rules: every decision that starts, retires, parks or ends a thread ---- */

#define THREADS_AT_LEAST   1  /* the floor when the minimum is 0: someone must read the port */
#define IDLE_THREADS_KEPT  1  /* an idle thread retires only if this many others wait on the port,
                               * so a packet never waits for a thread to start */

static LONG floor_of(const struct pool *pool)
{
    return max(pool->limits.min_threads, THREADS_AT_LEAST);
}

/* The host's maximum, unless its minimum is above it for the moment. */
static LONG ceiling_of(const struct pool *pool)
{
    return max(pool->limits.max_threads, floor_of(pool));
}

/* Where the controller starts: a thread per CPU, as the CLR's own pool does, within the limits. */
static LONG initial_target(const struct pool *pool)
{
    return max(min(max(pool->cpus, floor_of(pool)), pool->limits.max_threads), THREADS_AT_LEAST);
}

/* The monitor adds threads up to the target only while there is work for them: packets wait,
 * or every thread is inside a callback. */
static BOOL work_waits_for_threads(const struct policy_sample *sample)
{
    return sample->queued > 0 || sample->busy >= sample->threads;
}

/* Idle (its dequeue timed out): it may go if the floor and another idle thread remain. */
static BOOL idle_thread_may_retire(const struct pool *pool, LONG counts)
{
    LONG remaining = threads_of(counts) - 1;
    return !pool->stopping && remaining >= floor_of(pool) && remaining - busy_of(counts) >= IDLE_THREADS_KEPT;
}

/* Between callbacks: above the controller's target or the maximum, a thread goes. */
static BOOL excess_thread_must_retire(const struct pool *pool, LONG counts)
{
    LONG limit = min(pool->target, pool->limits.max_threads);
    return !pool->stopping && threads_of(counts) > max(limit, floor_of(pool));
}

/* A retired thread parks, and is the first to be reused.  It ends after the idle timeout only
 * where the system can tell that no I/O it issued is pending: under Wine, I/O completes through
 * the thread that issued it, and is lost if that thread ends. */
static BOOL parked_thread_may_end(void)
{
    static int system_can_tell = -1;
    BOOL pending = TRUE;

    if (system_can_tell < 0)
        system_can_tell = !GetProcAddress(GetModuleHandleW(L"ntdll.dll"), "wine_get_version");
    return system_can_tell && GetThreadIOPendingFlag(GetCurrentThread(), &pending) && !pending;
}

/* A pool whose minimum is its maximum and that runs exactly that many threads has nothing to
 * decide (starvation cannot add a thread either): its monitor sleeps, unless items wait (a
 * wake-up for them may be the monitor's to post). */
static BOOL fixed_and_full(const struct pool *pool)
{
    return pool->limits.min_threads >= pool->limits.max_threads &&
           threads_of(pool->thread_counts) == pool->limits.max_threads && !pool->items.count;
}

static void signal_monitor(struct pool *pool, enum monitor_signal signal)
{
    AcquireSRWLockExclusive(&pool->monitor_lock);
    pool->monitor_signals |= signal;
    ReleaseSRWLockExclusive(&pool->monitor_lock);
    WakeConditionVariable(&pool->monitor_signalled);
}

/* ---- references and counters ---- */

static void pool_add_ref(struct pool *pool)
{
    InterlockedIncrement(&pool->refs);
}

void pool_release(struct pool *pool)
{
    if (InterlockedDecrement(&pool->refs))
        return;
    assert(threads_of(pool->thread_counts) == 0 && !pool->monitors && !pool->parked);
    if (pool->port)
        CloseHandle(pool->port);
    policy_destroy(pool->policy);
    HeapFree(GetProcessHeap(), 0, pool->items.ring);
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
    return busy_of(pool->thread_counts);
}

LONG pool_threads(const struct pool *pool)
{
    return threads_of(pool->thread_counts);
}

LONG pool_peak(const struct pool *pool)
{
    return pool->peak;
}

static void add_counters(struct port_counters *sum, const struct port_counters *counts)
{
#define ADD_COUNTER(name, field) sum->name += interlocked_read64(&counts->name);
    PORT_COUNTERS(ADD_COUNTER)
}

/* Every thread's counters and those of the threads that ended. */
static void sum_counters(struct pool *pool, struct port_counters *sum)
{
    const struct worker *worker;

    ZeroMemory(sum, sizeof(*sum));
    AcquireSRWLockShared(&pool->lock);
    add_counters(sum, &pool->ended_counters);
    for (worker = pool->workers; worker; worker = worker->next)
        add_counters(sum, &worker->counters);
    ReleaseSRWLockShared(&pool->lock);
}

/* ---- the worker's TLS slot: which pool thread, if any, the calling thread is ---- */

static DWORD worker_tls = TLS_OUT_OF_INDEXES;

BOOL pool_process_attach(void)
{
    return (worker_tls = TlsAlloc()) != TLS_OUT_OF_INDEXES;
}

void pool_process_detach(void)
{
    TlsFree(worker_tls);
}

static struct worker *current_worker(void)
{
    return worker_tls == TLS_OUT_OF_INDEXES ? NULL : TlsGetValue(worker_tls);
}

static struct worker *own_worker(struct pool *pool)
{
    struct worker *worker = current_worker();
    return worker && worker->pool == pool ? worker : NULL;
}

BOOL pool_serves_current_thread(const struct pool *pool)
{
    struct worker *worker = current_worker();
    return worker && worker->pool == pool;
}

const struct thread_tally *current_thread_tally(void)
{
    struct worker *worker = current_worker();
    return worker ? worker->pool->tally : NULL;
}

/* ---- threads coming and going ---- */

/* Counts a new thread if the pool is not stopping and has fewer than `limit`. */
static BOOL reserve_thread(struct pool *pool, LONG limit)
{
    BOOL reserved = FALSE;
    LONG counts;

    AcquireSRWLockExclusive(&pool->lock);
    counts = pool->thread_counts;
    while (!pool->stopping && threads_of(counts) < limit)
    {
        LONG seen = InterlockedCompareExchange(&pool->thread_counts, counts + THREADS_ONE, counts);
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
    interlocked_raise(&pool->peak, threads_of(counts) + 1);
    thread_tally_add(pool->tally);
    return TRUE;
}

/* The engine's tally first, so that whoever waits for the pool sees it settled. */
static void thread_gone(struct pool *pool, BOOL take_off_count)
{
    module_release();
    thread_tally_remove(pool->tally);
    AcquireSRWLockExclusive(&pool->lock);
    if (take_off_count)
        InterlockedExchangeAdd(&pool->thread_counts, -THREADS_ONE);
    WakeAllConditionVariable(&pool->changed);
    ReleaseSRWLockExclusive(&pool->lock);
    /* One thread less than counted (it ended, or never started): a monitor asleep over a full
     * pool looks again. */
    if (take_off_count && !pool->stopping)
        signal_monitor(pool, MONITOR_THREAD_LEFT);
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
    if ((thread = create_thread(worker_thread, pool)))
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

/* Takes the caller off the count if the rule allows it for the counts that remain. */
static BOOL retire_if(struct pool *pool, struct worker *worker, BOOL (*allowed)(const struct pool *pool, LONG counts))
{
    LONG counts = pool->thread_counts;

    while (allowed(pool, counts))
    {
        LONG seen = InterlockedCompareExchange(&pool->thread_counts, counts - THREADS_ONE, counts);
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

/* A retire packet stays counted until its thread has left the count or chosen to stay, so that
 * the monitor does not post another for the same excess in between. */
static void settle_retire_packets(struct pool *pool, struct worker *worker)
{
    if (worker->retire_packets)
        InterlockedExchangeAdd(&pool->retire_packets, -worker->retire_packets);
    worker->retire_packets = 0;
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
        may_end = !SleepConditionVariableSRW(&pool->unparked, &pool->lock, (DWORD)pool->dequeue->idle_timeout, 0) &&
                  parked_thread_may_end();
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
        interlocked_raise(&pool->peak, threads_of(InterlockedExchangeAdd(&pool->thread_counts, count * THREADS_ONE)) + count);
        WakeAllConditionVariable(&pool->unparked);
    }
    ReleaseSRWLockExclusive(&pool->lock);
    return max(count, 0);
}

/* Every thread ends on a stop packet of its own, so one that cannot be posted now (the system
 * is out of resources) is tried again until it is: giving up would leave a thread waiting on
 * the port for ever. */
static void post_stop_packet(struct pool *pool)
{
    DWORD delay = 1;

    while (!post_packet(pool->port, 0, pool->stop_key, NULL))
    {
        WARN("port %p: a stop packet could not be posted (error %lu); trying again", pool->port, GetLastError());
        Sleep(delay);  /* back-off before the retry, not synchronisation */
        delay = min(delay * 2, STOP_POST_BACKOFF_MAX_MS);
    }
}

static LONG64 filetime_units(FILETIME time);

/* A thread's CPU time so far (user + kernel, 100 ns); 0 if the system does not say. */
static LONG64 thread_cpu_time(HANDLE thread)
{
    FILETIME created, exited, kernel_time, user_time;

    if (!thread || !GetThreadTimes(thread, &created, &exited, &kernel_time, &user_time))
        return 0;
    return filetime_units(kernel_time) + filetime_units(user_time);
}

#define CPU_TIME_THREADS_PER_CPU 4  /* the pool's CPU time is read only while it has at most this many threads
                                     * per CPU, parked ones included: a system call per thread, every tick,
                                     * and the policy asks only whether threads that compute keep the CPUs
                                     * busy */

/* The CPU time of the pool's threads so far, those that ended included; -1 (not known) while it
 * has more than CPU_TIME_THREADS_PER_CPU threads per CPU. */
static LONG64 pool_cpu_time(struct pool *pool)
{
    struct worker *worker;
    LONG64 time;
    LONG threads = 0;

    AcquireSRWLockShared(&pool->lock);
    for (worker = pool->workers; worker; worker = worker->next)
        threads++;
    time = pool->ended_cpu;
    for (worker = pool->workers; worker && threads <= CPU_TIME_THREADS_PER_CPU * pool->cpus; worker = worker->next)
        time += thread_cpu_time(worker->thread);
    ReleaseSRWLockShared(&pool->lock);
    return threads <= CPU_TIME_THREADS_PER_CPU * pool->cpus ? time : -1;
}

static void worker_enter(struct pool *pool, struct worker *worker)
{
    ZeroMemory(worker, sizeof(*worker));
    worker->pool = pool;
    if (!DuplicateHandle(GetCurrentProcess(), GetCurrentThread(), GetCurrentProcess(), &worker->thread,
                         THREAD_QUERY_LIMITED_INFORMATION, FALSE, 0))
        worker->thread = NULL;
    TlsSetValue(worker_tls, worker);
    AcquireSRWLockExclusive(&pool->lock);
    worker->next = pool->workers;
    if (pool->workers)
        pool->workers->prev = worker;
    pool->workers = worker;
    ReleaseSRWLockExclusive(&pool->lock);
}

static void worker_leave(struct pool *pool, struct worker *worker)
{
    LONG extra;

    /* A batch can hold several stop packets: the others' go back to the port for them. */
    for (extra = worker->stop_packets - 1; extra > 0 && !pool->stopped; extra--)
        post_stop_packet(pool);
    HeapFree(GetProcessHeap(), 0, worker->batch);
    AcquireSRWLockExclusive(&pool->lock);
    add_counters(&pool->ended_counters, &worker->counters);
    pool->ended_cpu += thread_cpu_time(worker->thread);
    if (worker->prev)
        worker->prev->next = worker->next;
    else
        pool->workers = worker->next;
    if (worker->next)
        worker->next->prev = worker->prev;
    ReleaseSRWLockExclusive(&pool->lock);
    if (worker->thread)
        CloseHandle(worker->thread);
    TlsSetValue(worker_tls, NULL);
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

/* ---- from the port to OnComplete ---- */

/* Up to `count` packets into `entries`; STATUS_SUCCESS, STATUS_TIMEOUT, or why the call failed
 * (the port is closed or gone).  One call serves a single packet and a batch alike, and unlike
 * GetQueuedCompletionStatus it tells a failed call from a packet with an error status and no
 * OVERLAPPED: a packet's status is in its entry's Internal. */
static NTSTATUS take_packets(HANDLE port, OVERLAPPED_ENTRY *entries, ULONG count, ULONG *taken, DWORD timeout_ms)
{
    LARGE_INTEGER timeout = { .QuadPart = -(LONGLONG)timeout_ms * NT_TICKS_PER_MS };

    return NtRemoveIoCompletionEx(port, entries, count, taken, timeout_ms == INFINITE ? NULL : &timeout, FALSE);
}

/* How many packets the next dequeue asks for, and where they go: the batch size, where room for
 * a batch could be allocated. */
static ULONG batch_room(struct worker *worker, LONG batch_size, OVERLAPPED_ENTRY **entries)
{
    if (batch_size > 1 && !worker->batch)
        worker->batch = heap_alloc(0, HOSTIOCP_MAX_BATCH_SIZE * sizeof(*worker->batch));
    *entries = batch_size > 1 && worker->batch ? worker->batch : &worker->single;
    return *entries == worker->batch ? (ULONG)batch_size : 1;
}

/* Items one at a time, whatever the host set: an item often waits for another, which could sit
 * later in its own batch. */
static LONG batch_size(const struct pool *pool)
{
    return pool->kind == POOL_WORK_ITEMS ? 1 : pool->dequeue->batch_size;
}

/* ---- work items: the pool's own queue ---- */

#define ITEM_LOCK_SPINS 64  /* tries before a thread waits for the queue's lock in the system: it is held
                             * for a few instructions, and a wait costs a system call on both sides */

static void lock_items(struct item_queue *items)
{
    int i;

    for (i = 0; i < items->spins; i++)
    {
        if (TryAcquireSRWLockExclusive(&items->lock))
            return;
        YieldProcessor();
    }
    AcquireSRWLockExclusive(&items->lock);
}

static BOOL create_item_queue(struct item_queue *items, LONG cpus)
{
    InitializeSRWLock(&items->lock);
    items->spins = cpus > 1 ? ITEM_LOCK_SPINS : 0;
    items->capacity = ITEM_QUEUE_FIRST_CAPACITY;
    return (items->ring = heap_alloc(0, items->capacity * sizeof(*items->ring))) != NULL;
}

/* Twice the room, the items unwrapped to its start. */
static BOOL grow_item_queue_locked(struct item_queue *items)
{
    struct queued_item *ring = heap_alloc(0, 2 * items->capacity * sizeof(*ring));
    ULONG i;

    if (!ring)
        return FALSE;
    for (i = 0; i < (ULONG)items->count; i++)
        ring[i] = items->ring[(items->head + i) % items->capacity];
    HeapFree(GetProcessHeap(), 0, items->ring);
    items->ring = ring;
    items->head = 0;
    items->capacity *= 2;
    return TRUE;
}

/* Queues the item, and wakes a thread for it if one waits on the port and no wake-up already
 * on its way will reach it.  Refused once the queue is closed, or when it is full and cannot
 * grow: an item once queued always runs.  A wake-up the system refuses (it is out of resources)
 * is left to the monitor, which looks at once, rather than tried again here, where the caller
 * may hold up others. */
HRESULT pool_post_work_item(struct pool *pool, LPTHREAD_START_ROUTINE function, void *context)
{
    struct item_queue *items = &pool->items;
    HRESULT hr = S_OK;
    BOOL wake = FALSE;

    assert(pool->kind == POOL_WORK_ITEMS && function);
    lock_items(items);
    if (items->closed)
        hr = HOST_E_INVALIDOPERATION;
    else if ((ULONG)items->count == items->capacity && !grow_item_queue_locked(items))
        hr = E_OUTOFMEMORY;
    else
    {
        items->ring[(items->head + items->count) % items->capacity] = (struct queued_item){ function, context };
        items->count++;
        items->unfinished++;
        items->accepted++;
        if ((wake = items->waiting > items->wakes))
            items->wakes++;
    }
    ReleaseSRWLockExclusive(&items->lock);
    if (wake && !post_packet(pool->port, 0, pool->wake_key, NULL))
    {
        WARN("port %p: a wake-up could not be posted (error %lu); the monitor posts it", pool->port, GetLastError());
        lock_items(items);
        items->wakes--;
        ReleaseSRWLockExclusive(&items->lock);
        signal_monitor(pool, MONITOR_LIMITS);
    }
    return hr;
}

void pool_close_work_items(struct pool *pool)
{
    BOOL finished;

    lock_items(&pool->items);
    pool->items.closed = TRUE;
    finished = !pool->items.unfinished;
    ReleaseSRWLockExclusive(&pool->items.lock);
    TRACE("work port %p: closed to new items%s", pool->port, finished ? ", none unfinished" : "");
}

LONG pool_unfinished_items(struct pool *pool)
{
    LONG unfinished;

    AcquireSRWLockShared(&pool->items.lock);
    unfinished = pool->items.unfinished;
    ReleaseSRWLockShared(&pool->items.lock);
    return unfinished;
}

LONG64 pool_items_accepted(struct pool *pool)
{
    LONG64 accepted;

    AcquireSRWLockShared(&pool->items.lock);
    accepted = pool->items.accepted;
    ReleaseSRWLockShared(&pool->items.lock);
    return accepted;
}

/* Takes the items the worker finished off the unfinished count; TRUE when that was the last of
 * a closed queue's. */
static BOOL settle_finished_items_locked(struct item_queue *items, struct worker *worker)
{
    if (!worker->items_finished)
        return FALSE;
    items->unfinished -= worker->items_finished;
    worker->items_finished = 0;
    assert(items->unfinished >= 0);
    return items->closed && !items->unfinished;
}

static void settle_finished_items(struct pool *pool, struct worker *worker)
{
    BOOL last;

    if (!worker->items_finished)
        return;
    lock_items(&pool->items);
    last = settle_finished_items_locked(&pool->items, worker);
    ReleaseSRWLockExclusive(&pool->items.lock);
    if (last)
        pool->items_finished(pool->context);
}

/* The monitor's part: a wake-up for every thread that waits on the port while items wait for
 * it, less those on their way (one refused before, or a thread that began to wait just now). */
static void wake_threads_for_items(struct pool *pool)
{
    struct item_queue *items = &pool->items;
    LONG wanted;

    lock_items(items);
    wanted = min(items->count, items->waiting) - items->wakes;
    if (wanted > 0)
        items->wakes += wanted;
    ReleaseSRWLockExclusive(&items->lock);
    for (; wanted > 0; wanted--)
        if (!post_packet(pool->port, 0, pool->wake_key, NULL))
        {
            lock_items(items);
            items->wakes -= wanted;
            ReleaseSRWLockExclusive(&items->lock);
            return;
        }
}

/* The oldest item, as a packet: its function as the key, its context as the OVERLAPPED.  None
 * and `wait`: the caller counts as waiting on the port from here, under the same lock that a
 * queuer looks at the waiting threads under, so that no item queued after this look goes
 * without a wake-up.  Under the same lock, the items the worker finished are taken off. */
static BOOL take_queued_item(struct pool *pool, struct worker *worker, OVERLAPPED_ENTRY *entry, BOOL wait)
{
    struct item_queue *items = &pool->items;
    BOOL taken, last;

    lock_items(items);
    last = settle_finished_items_locked(items, worker);
    if ((taken = items->count > 0))
    {
        struct queued_item item = items->ring[items->head];

        items->head = (items->head + 1) % items->capacity;
        items->count--;
        ZeroMemory(entry, sizeof(*entry));
        entry->lpCompletionKey = (ULONG_PTR)item.function;
        entry->lpOverlapped = item.context;
    }
    else if (wait)
        items->waiting++;
    ReleaseSRWLockExclusive(&items->lock);
    if (last)
        pool->items_finished(pool->context);
    return taken;
}

static void stop_waiting(struct item_queue *items, BOOL woken)
{
    lock_items(items);
    items->waiting--;
    items->wakes -= woken;
    assert(items->waiting >= 0 && items->wakes >= 0);
    ReleaseSRWLockExclusive(&items->lock);
}

/* An item from the queue, or, once it is empty, the next packet from the port that is not a
 * wake-up (a stop or retire packet), or the wait's end.  A thread woken for an item looks
 * again: another may have taken it first. */
static NTSTATUS take_item(struct pool *pool, struct worker *worker, OVERLAPPED_ENTRY *entry, ULONG *taken,
                          DWORD timeout_ms)
{
    NTSTATUS status;
    BOOL woken;

    do
    {
        if (take_queued_item(pool, worker, entry, TRUE))
        {
            *taken = 1;
            return STATUS_SUCCESS;
        }
        status = take_packets(pool->port, entry, 1, taken, timeout_ms);
        woken = status == STATUS_SUCCESS && !entry->lpOverlapped && entry->lpCompletionKey == pool->wake_key;
        stop_waiting(&pool->items, woken);
    } while (woken);
    return status;
}

/* Left when the pool stopped: counted, not run. */
static LONG64 discard_queued_items(struct item_queue *items)
{
    LONG64 discarded;

    lock_items(items);
    discarded = items->count;
    items->count = 0;
    items->unfinished -= discarded;
    ReleaseSRWLockExclusive(&items->lock);
    return discarded;
}

/* Internal holds the packet's NTSTATUS: success and informational statuses mean success. */
static DWORD entry_error(const OVERLAPPED_ENTRY *entry)
{
    NTSTATUS status = (NTSTATUS)entry->Internal;
    return NT_SUCCESS(status) ? ERROR_SUCCESS : RtlNtStatusToDosError(status);
}

/* Packets without an OVERLAPPED with the pool's own keys: stop, retire and (work pools) wake. */
static BOOL is_own_packet(const struct pool *pool, const OVERLAPPED_ENTRY *entry)
{
    return !entry->lpOverlapped && (entry->lpCompletionKey == pool->stop_key ||
                                    entry->lpCompletionKey == pool->retire_key ||
                                    entry->lpCompletionKey == pool->wake_key);
}

/* Whether a packet that is not the pool's own is work: from a work pool every one is an item;
 * on a port of the CLR's I/O, those without an OVERLAPPED are someone else's wake-ups (the CLR
 * posts its own), and every one with an OVERLAPPED goes to OnComplete, whatever its key. */
static BOOL is_work(const struct pool *pool, const OVERLAPPED_ENTRY *entry)
{
    return pool->kind == POOL_WORK_ITEMS || entry->lpOverlapped;
}

static void dispatch_completion(struct pool *pool, struct worker *worker, const OVERLAPPED_ENTRY *entry)
{
    DWORD error = entry_error(entry);

    if (error != ERROR_SUCCESS)
        InterlockedIncrement64(&worker->counters.failed);
    if (entry->lpCompletionKey != pool->bind_key)
        InterlockedIncrement64(&worker->counters.foreign);
    TRACE("port %p: OnComplete(%lu, %lu, %p) key %p", pool->port, error, entry->dwNumberOfBytesTransferred,
          entry->lpOverlapped, (void *)entry->lpCompletionKey);
    ICLRIoCompletionManager_OnComplete(pool->clr, error, entry->dwNumberOfBytesTransferred, entry->lpOverlapped);
}

/* An item, as take_queued_item hands it over: its function as the key, its context as the OVERLAPPED. */
static void run_work_item(struct pool *pool, const OVERLAPPED_ENTRY *entry)
{
    LPTHREAD_START_ROUTINE function = (LPTHREAD_START_ROUTINE)entry->lpCompletionKey;

    TRACE("work port %p: running %p(%p)", pool->port, function, entry->lpOverlapped);
    function(entry->lpOverlapped);
}

static void handle_packet(struct pool *pool, struct worker *worker, const OVERLAPPED_ENTRY *entry)
{
    if (is_own_packet(pool, entry))
    {
        if (entry->lpCompletionKey == pool->stop_key)
            worker->stop_packets++;
        else if (entry->lpCompletionKey == pool->retire_key)
            worker->retire_packets++;  /* the worker's loop sees whether it is in excess */
    }
    else if (!is_work(pool, entry))
        InterlockedIncrement64(&worker->counters.wakeups);
    else
    {
        if (pool->abandoned)
            InterlockedIncrement64(&worker->counters.discarded);
        else
        {
            InterlockedIncrement64(&worker->counters.dispatched);
            if (worker->batched)
                InterlockedIncrement64(&worker->counters.batched);
            if (pool->kind == POOL_WORK_ITEMS)
                run_work_item(pool, entry);
            else
                dispatch_completion(pool, worker, entry);
        }
        if (pool->kind == POOL_WORK_ITEMS)
            worker->items_finished++;
    }
}

#define ITEMS_PER_TURN 64  /* a work pool's thread runs at most this many items while it stays busy */

/* After an item, a work pool's thread takes the next one straight from the queue while it stays
 * busy: marking it idle and busy again between two 3 us items costs more than the items' own
 * locking.  Not after its stop or a retire packet, nor while it is in excess. */
static void run_more_items(struct pool *pool, struct worker *worker)
{
    OVERLAPPED_ENTRY entry;
    int i;

    for (i = 1; i < ITEMS_PER_TURN && !worker->stop_packets && !worker->retire_packets &&
                !excess_thread_must_retire(pool, pool->thread_counts) && take_queued_item(pool, worker, &entry, FALSE);
         i++)
        handle_packet(pool, worker, &entry);
}

/* From the port to the work: takes up to `wanted` packets into `entries`, waiting up to
 * `timeout_ms`, and handles them in order; returns the dequeue's status.  A batch still in hand
 * is finished first, and then `wanted` 0 takes nothing: pool_stop, called from inside one of this
 * thread's callbacks, serves the port from there. */
static NTSTATUS serve_batch(struct pool *pool, struct worker *worker, OVERLAPPED_ENTRY *entries, ULONG wanted,
                            DWORD timeout_ms)
{
    BOOL nested = worker->dispatching;  /* inside a callback: the thread counts as busy already */
    NTSTATUS status;
    ULONG taken;

    if (worker->next_entry == worker->count)
    {
        if (!wanted)
            return STATUS_SUCCESS;
        status = pool->kind == POOL_WORK_ITEMS ? take_item(pool, worker, entries, &taken, timeout_ms)
                                               : take_packets(pool->port, entries, wanted, &taken, timeout_ms);
        if (status != STATUS_SUCCESS)
            return status;
        worker->entries = entries;
        worker->count = taken;
        worker->next_entry = 0;
        worker->batched = wanted > 1;
    }
    if (!nested)
    {
        InterlockedExchangeAdd(&pool->thread_counts, BUSY_ONE);
        if (pool->monitor_idle && InterlockedExchange(&pool->monitor_idle, 0))
            signal_monitor(pool, MONITOR_WORK);
    }
    worker->dispatching = TRUE;
    while (worker->next_entry < worker->count)
        handle_packet(pool, worker, &worker->entries[worker->next_entry++]);
    if (pool->kind == POOL_WORK_ITEMS)
    {
        if (!nested)
            run_more_items(pool, worker);
        settle_finished_items(pool, worker);
    }
    worker->dispatching = nested;
    if (!nested)
        InterlockedExchangeAdd(&pool->thread_counts, -BUSY_ONE);
    return STATUS_SUCCESS;
}

/* A worker thread serves the port until it takes its stop packet, the port is closed, a dequeue
 * fails or, retired, it parks and is not asked back before it may end. */
static DWORD WINAPI worker_thread(void *arg)
{
    struct pool *pool = arg;
    struct worker worker;
    OVERLAPPED_ENTRY *entries;
    NTSTATUS status;
    ULONG wanted;

    worker_enter(pool, &worker);
    TRACE("port %p: thread started", pool->port);
    while (!pool->stopped)
    {
        wanted = batch_room(&worker, batch_size(pool), &entries);
        status = serve_batch(pool, &worker, entries, wanted, (DWORD)pool->dequeue->idle_timeout);
        if (status == STATUS_TIMEOUT)
        {
            if (!retire_if(pool, &worker, idle_thread_may_retire))
                continue;
            TRACE("port %p: an idle thread retired, %ld left", pool->port, threads_of(pool->thread_counts));
            if (park(pool, &worker))
                continue;
            break;
        }
        if (status != STATUS_SUCCESS)
        {
            TRACE("port %p: dequeue failed with status %#lx; the thread ends", pool->port, status);
            break;
        }
        if (worker.stop_packets || pool->stopped)
            break;
        if (!retire_if(pool, &worker, excess_thread_must_retire))
        {
            settle_retire_packets(pool, &worker);
            continue;
        }
        settle_retire_packets(pool, &worker);
        TRACE("port %p: a thread above the target retired, %ld remain", pool->port, threads_of(pool->thread_counts));
        if (!park(pool, &worker))
            break;
    }
    TRACE("port %p: thread ends", pool->port);
    worker_leave(pool, &worker);
    FreeLibraryAndExitThread(hostiocp_instance, 0);
}

/* ---- the monitor: samples the pool for the controller and starts the threads it asks for ---- */

/* Threads above a lowered maximum retire between callbacks; idle ones wait on the port, so a
 * packet of ours wakes as many of them as are in excess, rather than leaving them to their idle
 * timeout.  (Not for the controller's target: its probes would park and unpark threads.) */
static void wake_threads_above_maximum(struct pool *pool)
{
    LONG counts = pool->thread_counts, limit = ceiling_of(pool);
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

/* Parked threads first, then new ones, up to `target` but never above the maximum as it is now:
 * the monitor's target may come from a look taken before the host lowered it.  Returns how many
 * came. */
static LONG grow_to(struct pool *pool, LONG target)
{
    LONG missing, added = 0;

    target = min(target, ceiling_of(pool));
    missing = target - threads_of(pool->thread_counts);

    if (missing > 0)
        added = unpark(pool, missing);
    while (threads_of(pool->thread_counts) < target && start_thread(pool, target))
        added++;
    return added;
}

static LONG queue_depth(HANDLE port)
{
    LONG depth = 0;  /* IO_COMPLETION_BASIC_INFORMATION */

    return NtQueryIoCompletion(port, 0, &depth, sizeof(depth), NULL) ? 0 : depth;
}

/* Packets on the port, or a work pool's items in its queue. */
static LONG queue_length(struct pool *pool)
{
    return pool->kind == POOL_WORK_ITEMS ? pool->items.count : queue_depth(pool->port);
}

static LONGLONG now_us(void)
{
    LARGE_INTEGER counter, frequency;

    QueryPerformanceCounter(&counter);
    QueryPerformanceFrequency(&frequency);
    return (LONGLONG)(counter.QuadPart * US_PER_SECOND / frequency.QuadPart);
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

/* Work items run in this process; part of an I/O's work may be the system's. */
static enum policy_work policy_work_of(const struct pool *pool)
{
    return pool->kind == POOL_WORK_ITEMS ? POLICY_WORK_IN_PROCESS : POLICY_WORK_IN_SYSTEM;
}

/* This process's CPU time so far (user + kernel, 100 ns); -1 if the system does not say. */
static LONG64 process_cpu_time(void)
{
    FILETIME created, exited, kernel_time, user_time;

    if (!GetProcessTimes(GetCurrentProcess(), &created, &exited, &kernel_time, &user_time))
        return -1;
    return filetime_units(kernel_time) + filetime_units(user_time);
}

static void take_sample(struct pool *pool, struct policy_sample *sample)
{
    struct port_counters sum;
    LONG counts = pool->thread_counts;

    sample->now_us = now_us();
    sum_counters(pool, &sum);
    sample->completions = sum.dispatched;
    sample->threads = threads_of(counts);
    sample->busy = busy_of(counts);
    sample->queued = queue_length(pool);
    sample->floor = floor_of(pool);
    sample->max = ceiling_of(pool);
    cpu_times(&sample->cpu_idle, &sample->cpu_total);
    sample->cpu_process = policy_work_of(pool) == POLICY_WORK_IN_PROCESS ? process_cpu_time() : -1;
    sample->cpu_pool = policy_reads_pool_cpu(pool->policy, sample->now_us, sample->completions) ?
                       pool_cpu_time(pool) : POLICY_POOL_CPU_NOT_READ;
}

/* For a starving decision: how long the tick took, and how busy the process and the CPUs were
 * meanwhile.  A tick far longer than POLICY_TICK_MS, or a process that kept a CPU busy, says that
 * something other than blocked callbacks held them up. */
static void describe_tick(const struct pool *pool, const struct policy_sample *sample, char *text, size_t size)
{
    const struct policy_sample *last = &pool->last_sample;
    double tick_us = (double)(sample->now_us - last->now_us);

    assert(last->now_us);  /* the policy judges starvation only against a tick before */
    snprintf(text, size, "; the tick: %.1f ms, the process %.0f%% of a CPU, CPUs %.0f%% busy", tick_us / US_PER_MS,
             sample->cpu_process >= 0 && last->cpu_process >= 0 ?
                 10.0 * (sample->cpu_process - last->cpu_process) / tick_us : -1.0, /* 100 ns units over us */
             sample->cpu_total > last->cpu_total ?
                 100.0 * (1 - (double)(sample->cpu_idle - last->cpu_idle) / (sample->cpu_total - last->cpu_total)) : -1.0);
}

static void note_decision(struct pool *pool, const struct policy_decision *decision, const struct policy_sample *sample)
{
    char tick[96] = "";

    switch (decision->event)
    {
    case POLICY_NONE:
        return;
    case POLICY_STARVING:
        InterlockedIncrement64(&pool->starvation);
        if (hostiocp_policy_trace_enabled)
            describe_tick(pool, sample, tick, sizeof(tick));
        break;
    case POLICY_RAISED: InterlockedIncrement64(&pool->raised); break;
    case POLICY_LOWERED: InterlockedIncrement64(&pool->lowered); break;
    case POLICY_PROBE: case POLICY_KEPT: break;
    }
    TRACE_POLICY("%s %p: policy %s: %ld threads (%.0f/s) -> %ld (%.0f/s); target %ld; last window: CPUs %.0f%% busy, "
                 "%.0f%% with the callbacks' work, %.0f%% in the pool%s",
                 pool->kind == POOL_WORK_ITEMS ? "work port" : "port", pool->port, policy_event_name(decision->event),
                 decision->from, decision->from_rate, decision->to, decision->to_rate, decision->target,
                 100 * decision->cpu_share, 100 * decision->work_share, 100 * decision->pool_share, tick);
}

/* Nothing in a callback, nothing queued, and the threads the minimum asks for. */
static BOOL pool_idles(const struct policy_sample *sample)
{
    return !sample->busy && !sample->queued && sample->threads >= sample->floor;
}

/* One look: returns whether the pool idled.  `resumed`: the first look after the monitor slept
 * (over an idle pool, or a fixed one that ran its maximum), which the policy takes as a fresh start. */
static BOOL monitor_tick(struct pool *pool, BOOL resumed)
{
    struct policy_sample sample;
    struct policy_decision decision;

    if (pool->kind == POOL_WORK_ITEMS)
        wake_threads_for_items(pool);
    take_sample(pool, &sample);
    pool->queued = sample.queued;
    if (resumed)
        policy_resume(pool->policy, &sample);
    policy_update(pool->policy, &sample, &decision);
    InterlockedExchange(&pool->target, decision.target);
    note_decision(pool, &decision, &sample);
    pool->last_sample = sample;
    wake_threads_above_maximum(pool);  /* again: those that were still starting were busy */
    grow_to(pool, floor_of(pool));  /* again: a thread may have failed to start */
    if (work_waits_for_threads(&sample))
        InterlockedExchangeAdd64(&pool->injected, grow_to(pool, decision.target));
    return pool_idles(&sample);
}

/* Waits until one of `signals` (and always the stop) or, with a timeout, until it has passed,
 * whatever else wakes the monitor early; takes the signals it ends on.  FALSE when the pool stops. */
static BOOL wait_for_monitor_signal(struct pool *pool, LONG signals, LONGLONG timeout_us)
{
    LONGLONG deadline = timeout_us < 0 ? 0 : now_us() + timeout_us, left;
    BOOL stopped;

    signals |= MONITOR_STOP;
    AcquireSRWLockExclusive(&pool->monitor_lock);
    while (!(pool->monitor_signals & signals))
    {
        if (timeout_us < 0)
            SleepConditionVariableSRW(&pool->monitor_signalled, &pool->monitor_lock, INFINITE, 0);
        else if ((left = deadline - now_us()) > 0)
            SleepConditionVariableSRW(&pool->monitor_signalled, &pool->monitor_lock,
                                      (DWORD)((left + US_PER_MS - 1) / US_PER_MS), 0);
        else
            break;
    }
    stopped = pool->monitor_signals & MONITOR_STOP;
    pool->monitor_signals &= ~signals | MONITOR_STOP;
    ReleaseSRWLockExclusive(&pool->monitor_lock);
    return !stopped;
}

static void forget_monitor_signals(struct pool *pool, LONG signals)
{
    AcquireSRWLockExclusive(&pool->monitor_lock);
    pool->monitor_signals &= ~signals;
    ReleaseSRWLockExclusive(&pool->monitor_lock);
}

/* Waits for the monitor's next look: a tick, or the limits changed; FALSE when the pool stops.
 * Over a fixed, full pool the monitor waits, without ticks, until the limits change or a thread
 * ends. */
static BOOL monitor_wait(struct pool *pool)
{
    if (!fixed_and_full(pool))
        return wait_for_monitor_signal(pool, MONITOR_LIMITS, POLICY_TICK_MS * US_PER_MS);
    /* What signalled before now (the limits, a thread's end) is in the look below; what signals
     * after it ends the wait. */
    forget_monitor_signals(pool, MONITOR_LIMITS | MONITOR_THREAD_LEFT);
    if (!fixed_and_full(pool))
        return TRUE;
    TRACE("port %p: monitor sleeps: the pool runs its fixed %ld threads", pool->port, threads_of(pool->thread_counts));
    if (!wait_for_monitor_signal(pool, MONITOR_LIMITS | MONITOR_THREAD_LEFT, -1))
        return FALSE;
    TRACE("port %p: monitor wakes", pool->port);
    return TRUE;
}

#define IDLE_TICKS_BEFORE_SLEEP (1000 / POLICY_TICK_MS) /* a pool idle for a second stops its monitor's ticks: an
                                                      * idle process costs nothing, and a short pause between
                                                      * bursts of work keeps the policy's window */

enum idle_sleep { IDLE_NOT_SLEPT, IDLE_SLEPT, IDLE_STOPPED };

/* Over an idle pool the monitor waits, without ticks, until a thread takes work (serve_batch
 * signals it), the limits change, a thread ends or the pool stops. */
static enum idle_sleep monitor_sleep_while_idle(struct pool *pool)
{
    /* What signalled before now is in the look below; what signals after it ends the wait. */
    forget_monitor_signals(pool, MONITOR_WORK | MONITOR_THREAD_LEFT);
    InterlockedExchange(&pool->monitor_idle, 1);
    /* Work taken before the flag was set shows here; after it, the thread that took it signals. */
    if (busy_of(pool->thread_counts) || queue_length(pool) || threads_of(pool->thread_counts) < floor_of(pool))
    {
        InterlockedExchange(&pool->monitor_idle, 0);
        return IDLE_NOT_SLEPT;
    }
    TRACE("port %p: monitor sleeps: the pool idles", pool->port);
    if (!wait_for_monitor_signal(pool, MONITOR_WORK | MONITOR_LIMITS | MONITOR_THREAD_LEFT, -1))
        return IDLE_STOPPED;
    InterlockedExchange(&pool->monitor_idle, 0);
    TRACE("port %p: monitor wakes", pool->port);
    return IDLE_SLEPT;
}

static DWORD WINAPI monitor_thread(void *arg)
{
    struct pool *pool = arg;
    enum idle_sleep slept = IDLE_NOT_SLEPT;
    LONG idle_ticks = 0;
    BOOL resumed = FALSE;

    while (slept != IDLE_STOPPED && monitor_wait(pool))
    {
        if (fixed_and_full(pool))
        {
            /* The monitor sleeps over it: no window or tick spans that. */
            idle_ticks = 0;
            resumed = TRUE;
            continue;
        }
        idle_ticks = monitor_tick(pool, resumed) ? idle_ticks + 1 : 0;
        resumed = FALSE;
        if (idle_ticks < IDLE_TICKS_BEFORE_SLEEP)
            continue;
        idle_ticks = 0;
        slept = monitor_sleep_while_idle(pool);
        resumed = slept == IDLE_SLEPT;
    }
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

/* Tops the pool up to its minimum, has idle threads above its maximum retire, and has the monitor
 * look again at once. */
static void apply_thread_limits(struct pool *pool)
{
    signal_monitor(pool, MONITOR_LIMITS);
    wake_threads_above_maximum(pool);
    grow_to(pool, floor_of(pool));
}

static void store_limits(struct pool *pool, struct thread_limits limits)
{
    InterlockedExchange(&pool->limits.min_threads, limits.min_threads);
    InterlockedExchange(&pool->limits.max_threads, limits.max_threads);
}

HRESULT pool_create(const struct pool_client *client, struct thread_limits limits,
                    const struct dequeue_settings *dequeue, struct thread_tally *tally,
                    void (*on_destroy)(void *context), void *context, struct pool **out)
{
    struct pool *pool;
    SYSTEM_INFO system;
    HRESULT hr;

    GetSystemInfo(&system);
    if (!(pool = heap_alloc(HEAP_ZERO_MEMORY, sizeof(*pool))) ||
        (client->kind == POOL_WORK_ITEMS && !create_item_queue(&pool->items, (LONG)system.dwNumberOfProcessors)))
    {
        HeapFree(GetProcessHeap(), 0, pool);
        on_destroy(context);
        return E_OUTOFMEMORY;
    }
    /* The kernel then runs no more threads than CPUs at once where it can (not under Wine). */
    if (!(pool->port = create_completion_port(INVALID_HANDLE_VALUE, NULL, 0, system.dwNumberOfProcessors)))
    {
        hr = HRESULT_FROM_WIN32(GetLastError());
        HeapFree(GetProcessHeap(), 0, pool->items.ring);
        HeapFree(GetProcessHeap(), 0, pool);
        on_destroy(context);
        return hr;
    }
    pool->refs = 1;
    /* Keys no one else can hold: the pool's own address and the three bytes after it. */
    pool->bind_key = (ULONG_PTR)pool;
    pool->stop_key = (ULONG_PTR)pool + 1;
    pool->retire_key = (ULONG_PTR)pool + 2;
    pool->wake_key = (ULONG_PTR)pool + 3;
    pool->kind = client->kind;
    pool->items_finished = client->items_finished;
    if ((pool->clr = client->clr))
        ICLRIoCompletionManager_AddRef(pool->clr);
    store_limits(pool, limits);
    pool->dequeue = dequeue;
    pool->cpus = (LONG)system.dwNumberOfProcessors;
    pool->tally = tally;
    pool->on_destroy = on_destroy;
    pool->context = context;
    InitializeSRWLock(&pool->lock);
    InitializeConditionVariable(&pool->changed);
    InitializeSRWLock(&pool->monitor_lock);
    InitializeConditionVariable(&pool->monitor_signalled);
    InitializeConditionVariable(&pool->unparked);
    pool->target = initial_target(pool);
    pool->policy = policy_create(pool->target, pool->cpus, policy_work_of(pool));
    if (!pool->policy || !start_thread(pool, limits.max_threads))
        hr = HRESULT_FROM_WIN32(GetLastError() ? GetLastError() : ERROR_NOT_ENOUGH_MEMORY);
    else if (!start_monitor(pool))
        hr = HRESULT_FROM_WIN32(GetLastError() ? GetLastError() : ERROR_NOT_ENOUGH_MEMORY);
    else
    {
        apply_thread_limits(pool);
        *out = pool;
        return S_OK;
    }
    pool_stop(pool);
    pool_release(pool);
    return hr;
}

void pool_limits_changed(struct pool *pool, struct thread_limits limits)
{
    store_limits(pool, limits);
    apply_thread_limits(pool);
}

/* After the threads: what arrived after the stop is counted, not dispatched. */
static void discard_remaining(struct pool *pool)
{
    OVERLAPPED_ENTRY entry;
    ULONG taken;
    LONG64 discarded = 0;

    while (take_packets(pool->port, &entry, 1, &taken, 0) == STATUS_SUCCESS)
        if (!is_own_packet(pool, &entry) && is_work(pool, &entry))
            discarded++;
    if (pool->kind == POOL_WORK_ITEMS)
        discarded += discard_queued_items(&pool->items);
    pool->ended_counters.discarded += discarded;
    if (discarded)
        TRACE("port %p: %ld packets or items were left after the stop and were discarded", pool->port, (long)discarded);
}

void pool_serve_until(struct pool *pool, BOOL (*done)(void *context), void *context, DWORD wait_ms)
{
    struct worker *worker = own_worker(pool);
    NTSTATUS status = STATUS_SUCCESS;

    assert(worker);
    while (!done(context) && (status == STATUS_SUCCESS || status == STATUS_TIMEOUT))
        status = serve_batch(pool, worker, &worker->single, 1, wait_ms);
}

/* From inside a callback: everything queued before the stop packet of this thread is
 * dispatched here, on this thread, since nobody else is left to; one packet at a time, so that
 * none queued after it is taken. */
static void dispatch_until_own_stop_packet(struct pool *pool, struct worker *worker)
{
    LONG stop_packets = worker->stop_packets;

    while (worker->stop_packets == stop_packets && serve_batch(pool, worker, &worker->single, 1, 0) == STATUS_SUCCESS)
        ;
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
    threads = threads_of(pool->thread_counts);
    WakeAllConditionVariable(&pool->unparked);
    if (module_must_not_wait())
    {
        /* The threads cannot end while the loader lock is held: they discard what they dequeue
         * and end when it is released, and the last reference closes the port. */
        InterlockedExchange(&pool->abandoned, 1);
        TRACE("port %p: stopped without waiting (loader lock held)", pool->port);
    }
    ReleaseSRWLockExclusive(&pool->lock);
    signal_monitor(pool, MONITOR_STOP);
    for (i = 0; i < threads; i++)
        post_stop_packet(pool);
    if (pool->abandoned)
        return;
    if (own)
        serve_batch(pool, own, NULL, 0, 0);  /* the rest of the batch in hand */
    AcquireSRWLockExclusive(&pool->lock);
    while (threads_of(pool->thread_counts) > remaining || pool->parked || pool->monitors)
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
    if (!own && pool->clr)
    {
        ICLRIoCompletionManager_Release(pool->clr);
        pool->clr = NULL;
    }
    TRACE("pool %p: stopped", pool);
}

void pool_statistics(struct pool *pool, HOSTIOCP_STATISTICS *stats)
{
    struct port_counters counts;
    LONG packed = pool->thread_counts;

    sum_counters(pool, &counts);
#define REPORT_COUNTER(name, field) stats->field += counts.name;
    PORT_COUNTERS(REPORT_COUNTER)
#define REPORT_POOL_COUNTER(name, field) stats->field += interlocked_read64(&pool->name);
    POOL_COUNTERS(REPORT_POOL_COUNTER)
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
