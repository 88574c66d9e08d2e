/* A model of the CLR's own I/O completion pool, the pool a host gets when it supplies no
 * IHostIoCompletionManager: the native ThreadpoolMgr of .NET Framework and CoreCLR up to .NET 6,
 * dotnet/coreclr src/vm/win32threadpool.cpp (last version, commit 31f9c7ebe3). Written from its
 * rules, with the function each rule comes from named where it is modelled:
 *
 * - one GetQueuedCompletionStatus per packet, the callback called inline on the dequeuing thread
 *   (ThreadpoolMgr::CompletionPortThreadStart);
 * - minimum = CPUs, maximum 1000 (MinLimitTotalCPThreads, MaxLimitTotalCPThreads), one port with
 *   concurrency = CPUs (ThreadpoolMgr::Initialize);
 * - after a dequeue, when every active thread is working, the thread grows the pool: a retired
 *   thread is woken first; otherwise a new thread below the minimum at once, above it only while
 *   CPU use is below 80 % and more than 500 ms after the last creation
 *   (ShouldGrowCompletionPortThreadpool, GrowCompletionPortThreadpoolIfNeeded,
 *   SufficientDelaySinceLastSample, CpuUtilizationLow, GATE_THREAD_DELAY);
 * - a gate thread samples CPU use every 500 ms and, if every thread is working, takes a packet
 *   with a zero timeout and starts a thread that is handed that packet (GateThreadStart);
 * - an idle thread leaves after 15 s (CP_THREAD_WAIT), the last one waits without a timeout, and
 *   a thread stays if leaving would leave every remaining thread working ("we need at least one
 *   free thread"); a thread with I/O pending retires to a 5 s wait for the wake-up event
 *   (CP_THREAD_PENDINGIO_WAIT) instead of leaving.
 *
 * What the model leaves out, and why:
 * - the GC: the CLR counts a thread that waits for a GC as not working and holds back injection
 *   during one; there is no GC here;
 * - the managed fast path (a zero-timeout dequeue after a managed callback, in
 *   BindIoCompletionCallbackStub): the benchmark's callbacks are native, as BindIoCompletionCallback's are;
 * - the gate thread's own retirement (ShouldGateThreadKeepRunning): here it runs from the first
 *   time it is needed until the pool stops, so its 500 ms ticks keep one phase;
 * - the drain markers: the benchmark posts none to this pool.
 * Pending I/O: the CLR asks NtQueryInformationThread(ThreadIsIoPending); the model asks
 * GetThreadIOPendingFlag, which wraps the same query. Wine 8 always answers FALSE (see
 * iocp-peers.md, 2d), so under Wine an idle thread always leaves and never retires; on Windows a
 * thread that issued an echo's I/O would retire, as the CLR's would. Runs shorter than 15 s see
 * neither.
 * Peak threads counts completion threads (active + retired), not the gate thread. */
#include <stdlib.h>
#include "iobench.h"

#define CLR_MAX_THREADS 1000         /* MaxLimitTotalCPThreads */
#define CLR_CPU_LOW 80               /* CpuUtilizationLow: grow only below this */
#define CLR_GATE_DELAY_MS 500        /* GATE_THREAD_DELAY */
#define CLR_IDLE_WAIT_MS 15000       /* CP_THREAD_WAIT outside AppX */
#define CLR_PENDING_IO_WAIT_MS 5000  /* CP_THREAD_PENDINGIO_WAIT */
#define CLR_STOP_KEY ((ULONG_PTR)-1) /* the model's own shutdown; the CLR's pool never stops */

/* ThreadCounter::Counts: four counts that change together, by compare-and-swap. */
union clr_counts
{
    LONG64 all;
    struct
    {
        SHORT active;    /* waiting on the port or running a callback */
        SHORT working;   /* running a callback (or about to) */
        SHORT retired;   /* timed out with I/O pending, parked on the wake-up event */
        SHORT unused;
    } n;
};

struct clr_pool
{
    HANDLE port;
    volatile LONG64 counts;
    LONG min_threads, max_threads;
    volatile LONG last_creation;     /* GetTickCount() of the last thread created */
    volatile LONG cpu_busy;          /* percent, sampled by the gate thread; 0 until it runs */
    HANDLE retired_wakeup;           /* RetiredCPWakeupEvent: auto-reset */
    volatile LONG gate_started, gate_failed;
    HANDLE volatile gate_thread;
    HANDLE gate_stop;
    volatile LONG stopping;
    volatile LONG alive;             /* completion threads that exist */
    volatile LONG peak;
    volatile LONG64 created;
    HANDLE all_exited;
};

/* What the gate thread hands a thread it starts for a packet it took. */
struct handed_packet
{
    BOOL ok;
    DWORD bytes, error;
    ULONG_PTR key;
    OVERLAPPED *overlapped;
};

struct thread_start
{
    struct clr_pool *pool;
    struct handed_packet *packet;
};

static union clr_counts read_counts(struct clr_pool *pool)
{
    union clr_counts c;
    c.all = InterlockedCompareExchange64(&pool->counts, 0, 0);
    return c;
}

static BOOL swap_counts(struct clr_pool *pool, union clr_counts old, union clr_counts new)
{
    return InterlockedCompareExchange64(&pool->counts, new.all, old.all) == old.all;
}

/* Adds delta to each count, retrying until the swap wins. */
static union clr_counts add_counts(struct clr_pool *pool, int active, int working, int retired)
{
    union clr_counts old, new;

    do
    {
        old = new = read_counts(pool);
        new.n.active += active;
        new.n.working += working;
        new.n.retired += retired;
    } while (!swap_counts(pool, old, new));
    return new;
}

BOOL clr_thread_has_io_pending(void)
{
    BOOL pending = FALSE;
    /* As ThreadpoolMgr::IsIoPending: when the question cannot be asked, assume I/O is pending. */
    return !GetThreadIOPendingFlag(GetCurrentThread(), &pending) || pending;
}

/* CPU use of the whole machine since the last sample, as GetCPUBusyTime_NT computes it (kernel
 * time includes idle time). */
LONG clr_sample_cpu_busy(ULONGLONG *last_idle, ULONGLONG *last_total)
{
    FILETIME idle, kernel, user;
    ULONGLONG idle_now, total_now, idle_delta, total_delta;

    if (!GetSystemTimes(&idle, &kernel, &user))
        return 0;
    idle_now = (ULONGLONG)idle.dwHighDateTime << 32 | idle.dwLowDateTime;
    total_now = ((ULONGLONG)kernel.dwHighDateTime << 32 | kernel.dwLowDateTime) +
                ((ULONGLONG)user.dwHighDateTime << 32 | user.dwLowDateTime);
    idle_delta = idle_now - *last_idle;
    total_delta = total_now - *last_total;
    *last_idle = idle_now;
    *last_total = total_now;
    return total_delta ? (LONG)((total_delta - min(idle_delta, total_delta)) * 100 / total_delta) : 0;
}

static DWORD WINAPI clr_completion_thread(void *arg);

static void thread_exited(struct clr_pool *pool)
{
    if (!InterlockedDecrement(&pool->alive) && pool->stopping)
        SetEvent(pool->all_exited);
}

/* CreateCompletionPortThread: the caller has already counted the thread as active and working. */
static BOOL create_completion_thread(struct clr_pool *pool, struct handed_packet *packet)
{
    struct thread_start *start = malloc(sizeof(*start));
    LONG alive = InterlockedIncrement(&pool->alive), peak;
    HANDLE thread;

    start->pool = pool;
    start->packet = packet;
    if (!(thread = CreateThread(NULL, 0, clr_completion_thread, start, 0, NULL)))
    {
        free(start);
        thread_exited(pool);
        return FALSE;
    }
    CloseHandle(thread);
    InterlockedExchange(&pool->last_creation, (LONG)GetTickCount());
    InterlockedIncrement64(&pool->created);
    while (alive > (peak = pool->peak) && InterlockedCompareExchange(&pool->peak, alive, peak) != peak)
        ;
    return TRUE;
}

/* ShouldGrowCompletionPortThreadpool: only when every active thread is working. */
static BOOL should_grow(struct clr_pool *pool, union clr_counts c)
{
    DWORD since_creation = GetTickCount() - (DWORD)pool->last_creation;

    if (c.n.working < c.n.active || pool->stopping)
        return FALSE;
    if (c.n.retired > 0)
        return TRUE;
    return c.n.active + c.n.retired < pool->max_threads &&
           (c.n.active < pool->min_threads ||
            (pool->cpu_busy < CLR_CPU_LOW && since_creation > CLR_GATE_DELAY_MS));
}

/* GrowCompletionPortThreadpoolIfNeeded: wake a retired thread before creating one. */
static void grow_if_needed(struct clr_pool *pool)
{
    for (;;)
    {
        union clr_counts old = read_counts(pool), new = old;

        if (!should_grow(pool, old))
            return;
        if (old.n.retired > 0)
        {
            SetEvent(pool->retired_wakeup);
            return;
        }
        new.n.active++;
        new.n.working++;
        if (!swap_counts(pool, old, new))
            continue;
        if (!create_completion_thread(pool, NULL))
            add_counts(pool, -1, -1, 0);
        return;
    }
}

static DWORD WINAPI clr_gate_thread(void *arg);

/* EnsureGateThreadRunning, once: the model's gate thread then runs until the pool stops. */
static void ensure_gate_running(struct clr_pool *pool)
{
    HANDLE thread;

    if (InterlockedCompareExchange(&pool->gate_started, 1, 0))
        return;
    if ((thread = CreateThread(NULL, 0, clr_gate_thread, pool, 0, NULL)))
        InterlockedExchangePointer(&pool->gate_thread, thread);
    else
    {
        /* As the CLR: someone will try again later. */
        InterlockedExchange(&pool->gate_failed, 1);
        InterlockedExchange(&pool->gate_started, 0);
    }
}

/* Stops the gate thread, or keeps it from starting; one being started is waited for. */
static void stop_gate(struct clr_pool *pool)
{
    SetEvent(pool->gate_stop);
    if (!InterlockedExchange(&pool->gate_started, 1))
        return;
    while (!InterlockedCompareExchangePointer(&pool->gate_thread, NULL, NULL))
    {
        if (pool->gate_failed)
            return;
        Sleep(1);
    }
    WaitForSingleObject(pool->gate_thread, INFINITE);
    CloseHandle(pool->gate_thread);
}

/* The gate thread's I/O part: every 500 ms, if every thread is working, take a waiting packet
 * with a zero timeout and start a thread for it. */
static void gate_tick(struct clr_pool *pool)
{
    union clr_counts c = read_counts(pool);
    struct handed_packet *packet;

    if (c.n.active != c.n.working || c.n.retired != 0 || c.n.active >= pool->max_threads)
    {
        /* Perhaps threads are blocked, or there is no work: a retired thread may help. */
        if (pool->cpu_busy < CLR_CPU_LOW && c.n.working == c.n.active && c.n.retired > 0)
            SetEvent(pool->retired_wakeup);
        return;
    }
    packet = calloc(1, sizeof(*packet));
    packet->ok = GetQueuedCompletionStatus(pool->port, &packet->bytes, &packet->key, &packet->overlapped, 0);
    packet->error = packet->ok ? ERROR_SUCCESS : GetLastError();
    if (!packet->ok && !packet->overlapped && packet->error == WAIT_TIMEOUT)
    {
        free(packet);  /* nothing was waiting */
        return;
    }
    add_counts(pool, 1, 1, 0);
    /* The CLR retries until the thread starts, sleeping a gate interval between tries. */
    while (!create_completion_thread(pool, packet) && !pool->stopping)
        Sleep(CLR_GATE_DELAY_MS);
}

static DWORD WINAPI clr_gate_thread(void *arg)
{
    struct clr_pool *pool = arg;
    ULONGLONG idle = 0, total = 0;

    clr_sample_cpu_busy(&idle, &total);
    while (WaitForSingleObject(pool->gate_stop, CLR_GATE_DELAY_MS) == WAIT_TIMEOUT)
    {
        InterlockedExchange(&pool->cpu_busy, clr_sample_cpu_busy(&idle, &total));
        gate_tick(pool);
    }
    return 0;
}

/* About to wait on the port: no longer working. The last active thread waits without a timeout,
 * since it may not leave anyway. */
static DWORD stop_working(struct clr_pool *pool)
{
    union clr_counts old, new;

    do
    {
        old = new = read_counts(pool);
        new.n.working--;
    } while (!swap_counts(pool, old, new));
    return new.n.active == 1 ? INFINITE : CLR_IDLE_WAIT_MS;
}

enum after_wait { GO_WORK, WAIT_AGAIN, LEAVE, RETIRE };

/* What a thread does after its wait: work on the packet; after a timeout, leave, retire with
 * I/O pending, or wait again if leaving would leave every remaining thread working. */
static enum after_wait decide_after_wait(struct clr_pool *pool, BOOL timed_out, union clr_counts *now)
{
    for (;;)
    {
        union clr_counts old = read_counts(pool), new = old;
        enum after_wait what = GO_WORK;

        if (!timed_out)
            new.n.working++;
        else
        {
            new.n.active--;
            what = LEAVE;
            if (new.n.working == new.n.active)
            {
                /* "We need at least one free thread, or we have no way of knowing if completions are
                 * being queued": count as working, to be undone at the top of the loop. */
                new = old;
                new.n.working++;
                what = WAIT_AGAIN;
            }
            else if (clr_thread_has_io_pending())
            {
                new.n.retired++;
                what = RETIRE;
            }
        }
        if (swap_counts(pool, old, new))
        {
            *now = new;
            return what;
        }
    }
}

/* Retired with I/O pending: wait to be woken back into rotation (TRUE), or leave once the I/O
 * is done (FALSE). */
static BOOL wait_in_retirement(struct clr_pool *pool)
{
    for (;;)
    {
        if (WaitForSingleObject(pool->retired_wakeup, CLR_PENDING_IO_WAIT_MS) == WAIT_OBJECT_0)
        {
            add_counts(pool, 1, 1, -1);
            return TRUE;
        }
        if (!clr_thread_has_io_pending())
        {
            add_counts(pool, 0, 0, -1);
            return FALSE;
        }
    }
}

/* The model's shutdown, which the CLR never does: each thread that takes the stop packet passes
 * it on while other threads remain. */
static void leave_on_stop(struct clr_pool *pool)
{
    add_counts(pool, -1, 0, 0);
    if (pool->alive > 1)
        PostQueuedCompletionStatus(pool->port, 0, CLR_STOP_KEY, NULL);
}

/* CompletionPortThreadStart. */
static DWORD WINAPI clr_completion_thread(void *arg)
{
    struct thread_start start = *(struct thread_start *)arg;
    struct clr_pool *pool = start.pool;
    struct handed_packet *handed = start.packet;

    free(arg);
    for (;;)
    {
        DWORD wait = stop_working(pool), bytes = 0, error = ERROR_SUCCESS;
        OVERLAPPED *overlapped = NULL;
        ULONG_PTR key = 0;
        union clr_counts now;
        BOOL ok;

        if (handed)
        {
            /* The packet the gate thread took for this thread: a one-time deal. */
            ok = handed->ok, bytes = handed->bytes, key = handed->key, overlapped = handed->overlapped;
            error = handed->error;
            free(handed);
            handed = NULL;
        }
        else if (!(ok = GetQueuedCompletionStatus(pool->port, &bytes, &key, &overlapped, wait)))
            error = GetLastError();
        if (!overlapped && key == CLR_STOP_KEY)
        {
            leave_on_stop(pool);
            break;
        }
        switch (decide_after_wait(pool, !ok && !overlapped && error == WAIT_TIMEOUT, &now))
        {
        case WAIT_AGAIN:
            continue;
        case LEAVE:
            thread_exited(pool);
            return 0;
        case RETIRE:
            if (wait_in_retirement(pool))
                continue;
            thread_exited(pool);
            return 0;
        case GO_WORK:
            break;
        }
        if (now.n.working >= now.n.active)
            ensure_gate_running(pool);
        if (!overlapped)
            continue;
        grow_if_needed(pool);
        complete_request(overlapped, ok ? ERROR_SUCCESS : error, bytes);
    }
    thread_exited(pool);
    return 0;
}

static BOOL clr_pool_start(struct dispatcher *d)
{
    struct clr_pool *pool = calloc(1, sizeof(*pool));
    SYSTEM_INFO system;

    GetSystemInfo(&system);
    d->impl = pool;
    pool->min_threads = system.dwNumberOfProcessors;
    pool->max_threads = CLR_MAX_THREADS;
    pool->last_creation = 0;         /* LastCPThreadCreation starts at 0 */
    pool->port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, system.dwNumberOfProcessors);
    pool->retired_wakeup = CreateEventW(NULL, FALSE, FALSE, NULL);
    pool->gate_stop = CreateEventW(NULL, TRUE, FALSE, NULL);
    pool->all_exited = CreateEventW(NULL, TRUE, FALSE, NULL);
    return pool->port != NULL;
}

/* BindIoCompletionCallback: grow if needed (the first bind starts the first thread), then
 * associate the handle with the port. */
static BOOL clr_pool_bind(struct dispatcher *d, HANDLE handle, void **io)
{
    struct clr_pool *pool = d->impl;

    *io = NULL;
    grow_if_needed(pool);
    return CreateIoCompletionPort(handle, pool->port, 0, 0) != NULL;
}

/* ThreadpoolMgr::PostQueuedCompletionStatus grows the same way before posting. */
static BOOL clr_pool_post(struct dispatcher *d, struct request *request)
{
    struct clr_pool *pool = d->impl;

    grow_if_needed(pool);
    return PostQueuedCompletionStatus(pool->port, 0, 0, &request->overlapped);
}

static void clr_pool_stop(struct dispatcher *d)
{
    struct clr_pool *pool = d->impl;

    InterlockedExchange(&pool->stopping, 1);
    stop_gate(pool);
    if (pool->alive)
    {
        PostQueuedCompletionStatus(pool->port, 0, CLR_STOP_KEY, NULL);
        /* Retired threads come back into rotation to take the stop packet. */
        while (WaitForSingleObject(pool->all_exited, 50) == WAIT_TIMEOUT)
            SetEvent(pool->retired_wakeup);
    }
    d->threads_peak = pool->peak;
    d->injections = pool->created;
    CloseHandle(pool->port);
    CloseHandle(pool->retired_wakeup);
    CloseHandle(pool->gate_stop);
    CloseHandle(pool->all_exited);
    free(pool);
}

const struct dispatcher_ops clr_pool_ops =
{
    "CLR pool model", clr_pool_start, clr_pool_bind, dispatcher_no_prepare, dispatcher_no_io_context, dispatcher_no_io_context,
    clr_pool_post, dispatcher_no_unbind, clr_pool_stop, FALSE,
};
