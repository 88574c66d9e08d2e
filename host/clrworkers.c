/* A model of the CLR's own worker pool, the pool behind ThreadPool.QueueUserWorkItem when the host
 * supplies no IHostThreadpoolManager: the native ThreadpoolMgr of .NET Framework 4.x and its managed
 * dispatch loop, as opened in dotnet/coreclr's first commit (ef1e2ab328, 2015: src/vm/win32threadpool.cpp
 * and .h, hillclimbing.cpp, threadpoolrequest.cpp, comthreadpool.cpp, and
 * src/mscorlib/src/System/Threading/ThreadPool.cs). CoreCLR up to 3.1 (release/3.1, 1b04187394) keeps
 * these rules but for its LIFO worker semaphore; the portable pool of .NET 6+
 * (dotnet/runtime PortableThreadPool.*.cs) keeps the hill climbing and the starvation rule. Written
 * from the rules, with the function each rule comes from named where it is modelled:
 *
 * - minimum = CPUs; maximum = half the virtual address space over a managed .exe's 1 MiB stack,
 *   within [minimum, 0x7fff]: 32767 on 64-bit, 1023 on 32-bit; the goal (MaxWorking) starts at the
 *   minimum (ThreadpoolMgr::Initialize, GetDefaultMaxLimitWorkerThreads);
 * - an item goes to one global FIFO queue, and each enqueue and each dequeue asks for a thread while
 *   fewer than CPUs requests are outstanding (ThreadPoolWorkQueue.Enqueue with forceGlobal, as
 *   QueueUserWorkItem calls it; EnsureThreadRequested; ManagedPerAppDomainTPCount::SetAppDomainRequestsActive);
 * - a thread request raises NumWorking by at most one, up to the goal: it un-retires a retired
 *   thread, else releases a waiting one, else creates one (MaybeAddWorkingWorker);
 * - a worker that takes a request runs items until the queue is empty or its 30 ms quantum is over,
 *   and after each item counts the completion, may run hill climbing, and retires if the pool is
 *   above the goal (ThreadPoolWorkQueue.Dispatch, tpQuantum; ThreadPoolNative::NotifyRequestComplete;
 *   ShouldWorkerKeepRunning);
 * - an idle worker spins with Sleep(0), then waits on the worker semaphore for 20 s; when that times
 *   out it leaves and sets the goal to max(min, min(active, goal)); a thread above the goal retires
 *   to a plain semaphore for 20 s, then leaves (WorkerThreadStart, UnfairSemaphore, WorkerTimeout);
 * - hill climbing runs on a completion once the sample interval has passed (10 ms at first, then
 *   10-200 ms at random) while active <= goal, skips samples shorter than half the interval, and
 *   moves the goal by the Goertzel measure of a square wave in the thread count, refusing to climb
 *   above 95 % CPU (AdjustMaxWorkersActive, ShouldAdjustMaxWorkersActive, HillClimbing::Update,
 *   ForceChange, the defaults of clrconfigvalues.h);
 * - a gate thread, on a periodic 500 ms timer, samples CPU use and, if requests are pending and
 *   nothing was dequeued or completed for more than 500 ms (CPU below 80 %, else goal x 1000 ms),
 *   sets the goal to active + 1 and requests a thread: at most one per tick, and as the new thread's
 *   first dequeue restarts the clock, about one a second while every thread blocks (GateThreadStart,
 *   GateThreadTimer, SufficientDelaySinceLastDequeue).
 *
 * What the model leaves out, and why:
 * - the GC (a worker waits for one before its next item; the gate thread discounts CPU use during
 *   one), AppDomains (one queue here), thread aborts, ETW and worker tracking: none exist here;
 * - the thread-local work-stealing queues: QueueUserWorkItem never uses them, tasks do;
 * - the configuration knobs: the defaults only;
 * - the gate thread's own retirement (ShouldGateThreadKeepRunning): it runs from the first request
 *   until the pool stops; the CLR's would stop only after a tick with no request pending;
 * - the managed and the VM counts of outstanding thread requests are one count here: the VM's rises
 *   right after the managed one and falls right before it, on the same thread;
 * - completions go to one shared counter, not per-thread counters summed;
 * - the 2015 text stretched the sample interval at the minimum by 10 x max(-ratio, 1), which can
 *   overflow an int; the model takes the fix of a589e3926a (2017): 10 x min(-ratio, 1);
 * - the hill-climbing log, kept only for debuggers.
 * A worker that times out with I/O pending waits again (IsIoPending); work items here issue no I/O,
 * and under Wine GetThreadIOPendingFlag always answers FALSE. Runs shorter than 20 s see no time-out.
 * Peak threads counts workers (active, retired or leaving), not the gate thread. */
#include <complex.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "iobench.h"

#define CLR_MAX_POSSIBLE_THREADS 0x7fff    /* ThreadCounter::MaxPossibleCount */
#define CLR_MANAGED_STACK_RESERVE (1 << 20)
#define CLR_WORKER_TIMEOUT_MS 20000        /* WorkerTimeout outside AppX */
#define CLR_QUANTUM_MS 30                  /* ThreadPoolGlobals.tpQuantum */
#define CLR_SPIN_LIMIT_PER_CPU 50          /* UnfairSemaphore::Wait */
#define CLR_GATE_DELAY_MS 500              /* GATE_THREAD_DELAY */
#define CLR_GATE_DELAY_TOLERANCE_MS 50     /* GATE_THREAD_DELAY_TOLERANCE */
#define CLR_DEQUEUE_DELAY_MS (2 * CLR_GATE_DELAY_MS)
#define CLR_CPU_LOW 80                     /* CpuUtilizationLow */
#define CLR_CPU_HIGH 95                    /* CpuUtilizationHigh */

/* HillClimbing's defaults (clrconfigvalues.h). */
#define HC_WAVE_PERIOD 4
#define HC_SAMPLES (HC_WAVE_PERIOD * 8)    /* WavePeriod x WaveHistorySize */
#define HC_TARGET_SIGNAL_TO_NOISE 3.0
#define HC_ERROR_SMOOTHING 0.01
#define HC_WAVE_MAGNITUDE_MULTIPLIER 1.0
#define HC_MAX_WAVE_MAGNITUDE 20
#define HC_BIAS 0.15                       /* the throughput a thread must add to pay for itself */
#define HC_MAX_CHANGE_PER_SECOND 4.0
#define HC_MAX_CHANGE_PER_SAMPLE 20.0
#define HC_MAX_SAMPLE_ERROR 0.15
#define HC_SAMPLE_INTERVAL_LOW 10
#define HC_SAMPLE_INTERVAL_HIGH 200
#define HC_GAIN_EXPONENT 2.0
#define HC_RETRY_INTERVAL 10               /* "collect a little more" */

static const double pi = 3.141592653589793;

/* ThreadCounter::Counts of WorkerCounter: four counts that change together, by compare-and-swap. */
union worker_counts
{
    LONG64 all;
    struct
    {
        SHORT max_working;  /* the goal */
        SHORT active;       /* working, or waiting on the worker semaphore */
        SHORT working;      /* looking for or running work */
        SHORT retired;      /* waiting on the retired semaphore */
    } n;
};

/* UnfairSemaphore::Counts. */
union spin_counts
{
    LONG64 all;
    struct
    {
        SHORT spinners;
        SHORT count_for_spinners;
        SHORT waiters;
        SHORT count_for_waiters;
    } n;
};

/* UnfairSemaphore: a count that threads spinning for it take without a kernel call; a thread
 * that spins too long blocks on a plain semaphore. */
struct unfair_semaphore
{
    volatile LONG64 counts;
    HANDLE semaphore;
    LONG cpus;
};

struct hill_climbing
{
    double control_setting;          /* the goal without the wave */
    LONG64 total_samples;
    int last_thread_count;
    double average_noise;
    double samples[HC_SAMPLES];      /* throughput, circular */
    double thread_counts[HC_SAMPLES];
    int sample_interval;             /* ms, drawn again at each change */
    ULONG random;
    int accumulated_completions;     /* a sample too short to trust, carried into the next */
    double accumulated_seconds;
};

struct clr_workers
{
    volatile LONG64 counts;
    LONG min_threads, max_threads, cpus;
    SRWLOCK queue_lock;
    struct request *head, *tail;
    volatile LONG thread_requests;   /* outstanding, at most cpus */
    struct unfair_semaphore worker_semaphore;
    HANDLE retired_semaphore;
    volatile LONG last_dequeue;      /* GetTickCount(); LastDequeueTime starts at 0 */
    volatile LONG cpu_busy;          /* percent, sampled by the gate thread; 0 until it runs */
    /* Hill climbing; the climber and the decision counts are changed under adjustment_lock. */
    volatile LONG adjustment_lock;   /* ThreadAdjustmentLock, a spin lock */
    volatile LONG64 completions;
    LONG64 prior_completions;
    volatile LONG prior_completion_time, next_completion_time;
    LONGLONG sample_start;           /* QPC ticks; 0 at first, as the CLR's, so the first sample is
                                      * a long one with a throughput near 0 that Update never reads */
    double qpc_frequency;
    int adjustment_interval;
    struct hill_climbing climber;
    ULONGLONG raised, lowered;
    /* The gate thread and the model's own shutdown. */
    volatile LONG gate_state;
    HANDLE gate_thread;
    HANDLE gate_stop;
    volatile LONG stopping;
    volatile LONG alive;             /* worker threads that exist */
    volatile LONG peak;
    volatile LONG64 created;
    HANDLE all_exited;
};

static BOOL swap64(volatile LONG64 *target, LONG64 old, LONG64 new)
{
    return InterlockedCompareExchange64(target, new, old) == old;
}

static LONG64 read64(volatile LONG64 *value)
{
    return InterlockedCompareExchange64(value, 0, 0);
}

/* ---- the worker semaphore ---- */

static union spin_counts read_spin_counts(struct unfair_semaphore *s)
{
    union spin_counts c;
    c.all = read64(&s->counts);
    return c;
}

/* UnfairSemaphore::Release: to spinners first, who need no kernel call, then to waiters; the rest
 * is left for spinners to come. */
static void unfair_release(struct unfair_semaphore *s, int count)
{
    union spin_counts old, new;
    int to_spinners, to_waiters;

    do
    {
        old = new = read_spin_counts(s);
        to_spinners = max(0, min(count, old.n.spinners - old.n.count_for_spinners));
        to_waiters = max(0, min(count - to_spinners, old.n.waiters - old.n.count_for_waiters));
        new.n.count_for_spinners += count - to_waiters;
        new.n.count_for_waiters += to_waiters;
    } while (!swap64(&s->counts, old.all, new.all));
    if (to_waiters)
        ReleaseSemaphore(s->semaphore, to_waiters, NULL);
}

/* The more spinners share the CPUs, the fewer times each spins. */
static int spin_limit(struct unfair_semaphore *s, int spinners)
{
    return (int)(CLR_SPIN_LIMIT_PER_CPU / ((double)spinners / s->cpus) + 0.5);
}

/* UnfairSemaphore::Wait: TRUE once the count is taken, FALSE when the blocking wait times out. */
static BOOL unfair_wait(struct unfair_semaphore *s, DWORD timeout)
{
    union spin_counts old, new;
    int spins = 0;
    DWORD result;

    for (;;)
    {
        old = new = read_spin_counts(s);
        if (old.n.count_for_spinners > 0)
            new.n.count_for_spinners--;
        else
            new.n.spinners++;
        if (swap64(&s->counts, old.all, new.all))
        {
            if (old.n.count_for_spinners > 0)
                return TRUE;
            break;
        }
    }
    for (;;)
    {
        old = new = read_spin_counts(s);
        if (old.n.count_for_spinners > 0)
        {
            new.n.count_for_spinners--;
            new.n.spinners--;
            if (swap64(&s->counts, old.all, new.all))
                return TRUE;
        }
        else if (spins < spin_limit(s, old.n.spinners))
        {
            Sleep(0);
            spins++;
        }
        else
        {
            new.n.spinners--;
            new.n.waiters++;
            if (swap64(&s->counts, old.all, new.all))
                break;
        }
    }
    result = WaitForSingleObject(s->semaphore, timeout);
    do
    {
        old = new = read_spin_counts(s);
        new.n.waiters--;
        if (result == WAIT_OBJECT_0)
            new.n.count_for_waiters--;
    } while (!swap64(&s->counts, old.all, new.all));
    return result == WAIT_OBJECT_0;
}

/* ---- hill climbing ---- */

/* CLRRandom.Next(low, high + 1), by xorshift. */
static int random_interval(struct hill_climbing *hc)
{
    hc->random ^= hc->random << 13;
    hc->random ^= hc->random >> 17;
    hc->random ^= hc->random << 5;
    return HC_SAMPLE_INTERVAL_LOW + (int)(hc->random % (HC_SAMPLE_INTERVAL_HIGH - HC_SAMPLE_INTERVAL_LOW + 1));
}

static void hill_climbing_init(struct hill_climbing *hc)
{
    hc->random = ((GetCurrentProcessId() << 16) ^ GetTickCount()) | 1;
    hc->sample_interval = random_interval(hc);
}

/* ChangeThreadCount. */
static void change_thread_count(struct hill_climbing *hc, int count)
{
    hc->last_thread_count = count;
    hc->sample_interval = random_interval(hc);
}

/* HillClimbing::ForceChange: someone else moved the goal; the wave goes on from there. */
static void hill_climbing_force_change(struct hill_climbing *hc, int count)
{
    if (count == hc->last_thread_count)
        return;
    hc->control_setting += count - hc->last_thread_count;
    change_thread_count(hc, count);
}

/* GetWaveComponent: the Goertzel algorithm over the newest count entries. */
static double complex wave_component(const struct hill_climbing *hc, const double *values, int count, double period)
{
    double w = 2.0 * pi / period, coefficient = 2.0 * cos(w), q0, q1 = 0, q2 = 0;
    int i;

    for (i = 0; i < count; i++)
    {
        q0 = coefficient * q1 - q2 + values[(hc->total_samples - count + i) % HC_SAMPLES];
        q2 = q1;
        q1 = q0;
    }
    return (q1 - q2 * cos(w) + I * (q2 * sin(w))) / count;
}

/* How throughput followed the thread wave over the newest count samples (the ratio), and how far
 * that stands out of the noise in the neighbouring frequencies (the confidence). */
static void measure_wave(struct hill_climbing *hc, int count, double complex *ratio, double *confidence)
{
    double throughput_sum = 0, threads_sum = 0, average_throughput, average_threads, error, noise;
    double adjacent_period1 = count / ((double)count / HC_WAVE_PERIOD + 1);
    double adjacent_period2 = count / ((double)count / HC_WAVE_PERIOD - 1);
    double complex throughput_wave, thread_wave;
    int i;

    for (i = 0; i < count; i++)
    {
        throughput_sum += hc->samples[(hc->total_samples - count + i) % HC_SAMPLES];
        threads_sum += hc->thread_counts[(hc->total_samples - count + i) % HC_SAMPLES];
    }
    average_throughput = throughput_sum / count;
    average_threads = threads_sum / count;
    if (average_throughput <= 0 || average_threads <= 0)
        return;
    throughput_wave = wave_component(hc, hc->samples, count, HC_WAVE_PERIOD) / average_throughput;
    error = cabs(wave_component(hc, hc->samples, count, adjacent_period1) / average_throughput);
    if (adjacent_period2 <= count)
        error = fmax(error, cabs(wave_component(hc, hc->samples, count, adjacent_period2) / average_throughput));
    thread_wave = wave_component(hc, hc->thread_counts, count, HC_WAVE_PERIOD) / average_threads;
    if (hc->average_noise == 0)
        hc->average_noise = error;
    else
        hc->average_noise = HC_ERROR_SMOOTHING * error + (1.0 - HC_ERROR_SMOOTHING) * hc->average_noise;
    if (cabs(thread_wave) > 0)
        *ratio = (throughput_wave - HC_BIAS * thread_wave) / thread_wave;
    noise = fmax(hc->average_noise, error);
    *confidence = noise > 0 ? cabs(thread_wave) / noise / HC_TARGET_SIGNAL_TO_NOISE : 1.0;
}

/* HillClimbing::Update: the new goal, and in *interval the time until the next sample. */
static int hill_climbing_update(struct clr_workers *pool, int current, double seconds, int completions, int *interval)
{
    struct hill_climbing *hc = &pool->climber;
    double complex ratio = 0;
    double confidence = 0, move;
    int count, magnitude, goal;

    if (current != hc->last_thread_count)
        hill_climbing_force_change(hc, current);
    seconds += hc->accumulated_seconds;
    completions += hc->accumulated_completions;
    /* Each of the other threads may have an item half done at either end of the sample. */
    if (hc->total_samples > 0 && (current - 1.0) / completions >= HC_MAX_SAMPLE_ERROR)
    {
        hc->accumulated_seconds = seconds;
        hc->accumulated_completions = completions;
        *interval = HC_RETRY_INTERVAL;
        return current;
    }
    hc->accumulated_seconds = 0;
    hc->accumulated_completions = 0;
    hc->samples[hc->total_samples % HC_SAMPLES] = completions / seconds;
    hc->thread_counts[hc->total_samples % HC_SAMPLES] = current;
    hc->total_samples++;

    /* Whole wave periods, and never the oldest sample. */
    count = (int)min(hc->total_samples - 1, HC_SAMPLES) / HC_WAVE_PERIOD * HC_WAVE_PERIOD;
    if (count > HC_WAVE_PERIOD)
        measure_wave(hc, count, &ratio, &confidence);

    move = fmin(1.0, fmax(-1.0, creal(ratio))) * fmin(1.0, fmax(0.0, confidence));
    move = pow(fabs(move), HC_GAIN_EXPONENT) * (move >= 0.0 ? 1 : -1) * HC_MAX_CHANGE_PER_SECOND * seconds;
    move = fmin(move, HC_MAX_CHANGE_PER_SAMPLE);
    if (move > 0.0 && pool->cpu_busy > CLR_CPU_HIGH)
        move = 0.0;
    hc->control_setting += move;

    magnitude = (int)(0.5 + hc->control_setting * hc->average_noise * HC_TARGET_SIGNAL_TO_NOISE *
                            HC_WAVE_MAGNITUDE_MULTIPLIER * 2.0);
    magnitude = max(1, min(magnitude, HC_MAX_WAVE_MAGNITUDE));
    hc->control_setting = fmax(pool->min_threads, fmin(pool->max_threads - magnitude, hc->control_setting));
    goal = (int)(hc->control_setting + magnitude * ((hc->total_samples / (HC_WAVE_PERIOD / 2)) % 2));
    goal = max(pool->min_threads, min(pool->max_threads, goal));
    if (goal != current)
        change_thread_count(hc, goal);

    /* At the minimum and hurting by going higher: stay longer before trying again. */
    if (creal(ratio) < 0.0 && goal == pool->min_threads)
        *interval = (int)(0.5 + hc->sample_interval * (10.0 * fmin(-creal(ratio), 1.0)));
    else
        *interval = hc->sample_interval;
    return goal;
}

/* ---- the pool's counts and threads ---- */

static union worker_counts read_counts(struct clr_workers *pool)
{
    union worker_counts c;
    c.all = read64(&pool->counts);
    return c;
}

/* The counts the swap found: new went in if they equal expected. */
static union worker_counts exchange_counts(struct clr_workers *pool, union worker_counts new,
                                           union worker_counts expected)
{
    union worker_counts seen;
    seen.all = InterlockedCompareExchange64(&pool->counts, new.all, expected.all);
    return seen;
}

static BOOL swap_counts(struct clr_workers *pool, union worker_counts old, union worker_counts new)
{
    return exchange_counts(pool, new, old).all == old.all;
}

static void lock_adjustment(struct clr_workers *pool)
{
    while (InterlockedExchange(&pool->adjustment_lock, 1))
        SwitchToThread();
}

static BOOL try_lock_adjustment(struct clr_workers *pool)
{
    return !InterlockedExchange(&pool->adjustment_lock, 1);
}

static void unlock_adjustment(struct clr_workers *pool)
{
    InterlockedExchange(&pool->adjustment_lock, 0);
}

static void thread_exited(struct clr_workers *pool)
{
    if (!InterlockedDecrement(&pool->alive) && pool->stopping)
        SetEvent(pool->all_exited);
}

static DWORD WINAPI worker_thread(void *arg);

/* CreateWorkerThread: the caller has already counted the thread as active and working. */
static BOOL create_worker_thread(struct clr_workers *pool)
{
    LONG alive = InterlockedIncrement(&pool->alive), peak;
    HANDLE thread;

    if (!(thread = CreateThread(NULL, 0, worker_thread, pool, 0, NULL)))
    {
        thread_exited(pool);
        return FALSE;
    }
    CloseHandle(thread);
    InterlockedIncrement64(&pool->created);
    while (alive > (peak = pool->peak) && InterlockedCompareExchange(&pool->peak, alive, peak) != peak)
        ;
    return TRUE;
}

/* MaybeAddWorkingWorker: one more thread working, if below the goal. */
static void maybe_add_working_worker(struct clr_workers *pool)
{
    union worker_counts old, new;
    int unretire, create, release;

    do
    {
        old = new = read_counts(pool);
        new.n.working = max(old.n.working, min(old.n.working + 1, old.n.max_working));
        new.n.active = max(old.n.active, new.n.working);
        new.n.retired = max(0, old.n.retired - (new.n.active - old.n.active));
        if (new.all == old.all)
            return;
    } while (!swap_counts(pool, old, new));
    unretire = old.n.retired - new.n.retired;
    create = new.n.active - old.n.active - unretire;
    release = new.n.working - old.n.working - unretire - create;
    if (unretire)
        ReleaseSemaphore(pool->retired_semaphore, unretire, NULL);
    if (release)
        unfair_release(&pool->worker_semaphore, release);
    if (create && !create_worker_thread(pool))
    {
        /* The promised thread is not coming; the gate thread will notice that no work gets done. */
        do
        {
            old = new = read_counts(pool);
            new.n.active--;
            new.n.working--;
        } while (!swap_counts(pool, old, new));
    }
}

/* ---- the gate thread ---- */

static BOOL requests_pending(struct clr_workers *pool)
{
    return pool->thread_requests > 0;
}

static BOOL sufficient_delay_since_last_dequeue(struct clr_workers *pool)
{
    DWORD delay = GetTickCount() - (DWORD)pool->last_dequeue, too_long = CLR_GATE_DELAY_MS;

    if (pool->cpu_busy >= CLR_CPU_LOW)
        too_long = read_counts(pool).n.max_working * CLR_DEQUEUE_DELAY_MS;
    return delay > too_long;
}

/* Starvation: the goal becomes one more than the threads there are, and one thread is requested. */
static void inject_for_starvation(struct clr_workers *pool)
{
    union worker_counts old, new, seen;

    lock_adjustment(pool);
    old = read_counts(pool);
    while (old.n.active < pool->max_threads && old.n.active >= old.n.max_working)
    {
        new = old;
        new.n.max_working = old.n.active + 1;
        if ((seen = exchange_counts(pool, new, old)).all == old.all)
        {
            hill_climbing_force_change(&pool->climber, new.n.max_working);
            pool->raised++;
            maybe_add_working_worker(pool);
            break;
        }
        old = seen;
    }
    unlock_adjustment(pool);
}

/* GateThreadTimer: every 500 ms on a periodic timer the system may delay by up to 50 ms, or after
 * 500 ms waits where there is no such timer. */
static HANDLE create_gate_timer(void)
{
    LARGE_INTEGER due = { .QuadPart = -10000LL * CLR_GATE_DELAY_MS };
    HANDLE timer = CreateWaitableTimerExW(NULL, NULL, 0, TIMER_ALL_ACCESS);

    if (timer && !SetWaitableTimerEx(timer, &due, CLR_GATE_DELAY_MS, NULL, NULL, NULL, CLR_GATE_DELAY_TOLERANCE_MS))
    {
        CloseHandle(timer);
        timer = NULL;
    }
    return timer;
}

/* FALSE once the pool stops. */
static BOOL wait_gate_tick(struct clr_workers *pool, HANDLE timer)
{
    HANDLE handles[2] = { pool->gate_stop, timer };

    if (!timer)
        return WaitForSingleObject(pool->gate_stop, CLR_GATE_DELAY_MS) == WAIT_TIMEOUT;
    return WaitForMultipleObjects(2, handles, FALSE, INFINITE) == WAIT_OBJECT_0 + 1;
}

static DWORD WINAPI gate_thread(void *arg)
{
    struct clr_workers *pool = arg;
    HANDLE timer = create_gate_timer();
    ULONGLONG idle = 0, total = 0;

    /* As the CLR: one tick before the first reading of CPU use. */
    if (wait_gate_tick(pool, timer))
    {
        clr_sample_cpu_busy(&idle, &total);
        while (wait_gate_tick(pool, timer))
        {
            InterlockedExchange(&pool->cpu_busy, clr_sample_cpu_busy(&idle, &total));
            if (requests_pending(pool) && sufficient_delay_since_last_dequeue(pool))
                inject_for_starvation(pool);
        }
    }
    if (timer)
        CloseHandle(timer);
    return 0;
}

enum gate_state { GATE_NONE, GATE_STARTING, GATE_RUNNING, GATE_STOPPED };

/* EnsureGateThreadRunning, once: the model's gate thread then runs until the pool stops. */
static void ensure_gate_running(struct clr_workers *pool)
{
    HANDLE thread;

    if (pool->gate_state != GATE_NONE ||
        InterlockedCompareExchange(&pool->gate_state, GATE_STARTING, GATE_NONE) != GATE_NONE)
        return;
    if ((thread = CreateThread(NULL, 0, gate_thread, pool, 0, NULL)))
        pool->gate_thread = thread;
    /* As the CLR: after a failure, someone will try again later. */
    InterlockedExchange(&pool->gate_state, thread ? GATE_RUNNING : GATE_NONE);
}

/* Stops the gate thread, or keeps it from starting; one being started is waited for. */
static void stop_gate(struct clr_workers *pool)
{
    LONG state;

    SetEvent(pool->gate_stop);
    while ((state = pool->gate_state) == GATE_STARTING ||
           InterlockedCompareExchange(&pool->gate_state, GATE_STOPPED, state) != state)
        Sleep(1);
    if (state == GATE_RUNNING)
    {
        WaitForSingleObject(pool->gate_thread, INFINITE);
        CloseHandle(pool->gate_thread);
    }
}

/* ---- the queue and thread requests ---- */

/* The link to the next queued request lives in the host's extension of the request. */
static struct request *next_queued(struct request *request)
{
    struct request *next;
    memcpy(&next, request->host, sizeof(next));
    return next;
}

static void set_next_queued(struct request *request, struct request *next)
{
    memcpy(request->host, &next, sizeof(next));
}

static void enqueue(struct clr_workers *pool, struct request *request)
{
    set_next_queued(request, NULL);
    AcquireSRWLockExclusive(&pool->queue_lock);
    if (pool->tail)
        set_next_queued(pool->tail, request);
    else
        pool->head = request;
    pool->tail = request;
    ReleaseSRWLockExclusive(&pool->queue_lock);
}

static struct request *dequeue(struct clr_workers *pool)
{
    struct request *request;

    AcquireSRWLockExclusive(&pool->queue_lock);
    if ((request = pool->head) && !(pool->head = next_queued(request)))
        pool->tail = NULL;
    ReleaseSRWLockExclusive(&pool->queue_lock);
    return request;
}

/* EnsureThreadRequested, then the VM's SetAppDomainRequestsActive: at most one request per CPU
 * outstanding, each one a thread made to work. */
static void ensure_thread_requested(struct clr_workers *pool)
{
    LONG count = pool->thread_requests, seen;

    while (count < pool->cpus)
    {
        if ((seen = InterlockedCompareExchange(&pool->thread_requests, count + 1, count)) == count)
        {
            maybe_add_working_worker(pool);
            ensure_gate_running(pool);
            return;
        }
        count = seen;
    }
}

/* TakeActiveRequest, then MarkThreadRequestSatisfied. */
static BOOL take_thread_request(struct clr_workers *pool)
{
    LONG count = pool->thread_requests, seen;

    while (count > 0)
    {
        if ((seen = InterlockedCompareExchange(&pool->thread_requests, count - 1, count)) == count)
            return TRUE;
        count = seen;
    }
    return FALSE;
}

static void update_last_dequeue(struct clr_workers *pool)
{
    InterlockedExchange(&pool->last_dequeue, (LONG)GetTickCount());
}

/* ---- hill climbing's place in the pool ---- */

/* ShouldAdjustMaxWorkersActive. */
static BOOL should_adjust(struct clr_workers *pool)
{
    DWORD prior = (DWORD)pool->prior_completion_time;
    union worker_counts c;

    if (GetTickCount() - prior < (DWORD)pool->next_completion_time - prior)
        return FALSE;
    c = read_counts(pool);
    return c.n.active <= c.n.max_working;
}

/* AdjustMaxWorkersActive, with the adjustment lock held. */
static void adjust_max_workers(struct clr_workers *pool)
{
    DWORD now = GetTickCount();
    LONG64 total = read64(&pool->completions);
    LARGE_INTEGER end;
    union worker_counts old, new, seen;
    double seconds;
    int goal;

    QueryPerformanceCounter(&end);
    seconds = (end.QuadPart - pool->sample_start) / pool->qpc_frequency;
    /* A sample reset while this thread waited for the lock would be too short to mean anything. */
    if (seconds * 1000.0 < pool->adjustment_interval / 2)
        return;
    old = read_counts(pool);
    goal = hill_climbing_update(pool, old.n.max_working, seconds, (int)(total - pool->prior_completions),
                                &pool->adjustment_interval);
    while (goal != old.n.max_working)
    {
        new = old;
        new.n.max_working = goal;
        if ((seen = exchange_counts(pool, new, old)).all == old.all)
        {
            /* A higher goal: one thread now, and each that finds work asks for the next. A lower
             * one: the first threads to notice retire. */
            if (goal > old.n.max_working)
            {
                pool->raised++;
                maybe_add_working_worker(pool);
            }
            else
                pool->lowered++;
            break;
        }
        /* The gate thread raised it further meanwhile: leave it. */
        if (seen.n.max_working > old.n.max_working && seen.n.max_working >= goal)
            break;
        old = seen;
    }
    pool->prior_completions = total;
    InterlockedExchange(&pool->next_completion_time, (LONG)(now + pool->adjustment_interval));
    InterlockedExchange(&pool->prior_completion_time, (LONG)now);
    pool->sample_start = end.QuadPart;
}

/* ShouldWorkerKeepRunning: above the goal, this thread retires. */
static BOOL should_keep_running(struct clr_workers *pool)
{
    union worker_counts old, new;

    do
    {
        old = new = read_counts(pool);
        if (old.n.active <= old.n.max_working)
            return TRUE;
        new.n.working--;
        new.n.active--;
        new.n.retired++;
    } while (!swap_counts(pool, old, new));
    return FALSE;
}

/* NotifyRequestComplete: FALSE when this thread is to retire. */
static BOOL notify_work_item_complete(struct clr_workers *pool)
{
    InterlockedIncrement64(&pool->completions);
    update_last_dequeue(pool);
    if (should_adjust(pool) && try_lock_adjustment(pool))
    {
        adjust_max_workers(pool);
        unlock_adjustment(pool);
    }
    return should_keep_running(pool);
}

/* ---- the worker thread ---- */

/* ThreadPoolWorkQueue.Dispatch: items until the queue is empty or the quantum is over, each
 * dequeue asking for another thread. FALSE when the thread was retired. */
static BOOL dispatch(struct clr_workers *pool)
{
    DWORD start = GetTickCount();
    BOOL need_another_thread = TRUE, keep_running = TRUE;
    struct request *request;

    while (keep_running && GetTickCount() - start < CLR_QUANTUM_MS)
    {
        if (!(request = dequeue(pool)))
        {
            need_another_thread = FALSE;
            break;
        }
        ensure_thread_requested(pool);
        complete_request(&request->overlapped, ERROR_SUCCESS, 0);
        keep_running = notify_work_item_complete(pool);
    }
    /* Stopped with work perhaps left: someone else must come. */
    if (need_another_thread)
        ensure_thread_requested(pool);
    return keep_running;
}

enum worker_next { WORK, WAIT_FOR_WORK, RETIRE };

/* The top of WorkerThreadStart's loop: above the goal the thread retires; without work it goes
 * back to wait. */
static enum worker_next check_counts(struct clr_workers *pool, BOOL found_work)
{
    union worker_counts old, new;
    enum worker_next next;

    do
    {
        old = new = read_counts(pool);
        if (old.n.active > old.n.max_working)
        {
            new.n.active--;
            new.n.retired++;
            next = RETIRE;
        }
        else if (found_work)
            return WORK;
        else
            next = WAIT_FOR_WORK;
        new.n.working--;
    } while (!swap_counts(pool, old, new));
    return next;
}

/* After the worker semaphore timed out: leave (TRUE), lowering the goal to the threads that remain,
 * unless someone counted this thread as working and is about to release it. */
static BOOL leave_after_timeout(struct clr_workers *pool)
{
    union worker_counts old, new;
    BOOL leave = FALSE;

    lock_adjustment(pool);
    do
    {
        old = new = read_counts(pool);
        if (old.n.active == old.n.working)
            break;
        new.n.active--;
        new.n.max_working = max(pool->min_threads, min(new.n.active, new.n.max_working));
    } while (!(leave = swap_counts(pool, old, new)));
    if (leave)
    {
        hill_climbing_force_change(&pool->climber, new.n.max_working);
        if (new.n.max_working < old.n.max_working)
            pool->lowered++;
    }
    unlock_adjustment(pool);
    return leave;
}

/* WaitForWork: TRUE when released to work, FALSE to leave. */
static BOOL wait_for_work(struct clr_workers *pool)
{
    /* Work may have come in just before this thread stopped counting as working. */
    if (requests_pending(pool))
        maybe_add_working_worker(pool);
    for (;;)
    {
        if (pool->stopping)
            return FALSE;
        if (unfair_wait(&pool->worker_semaphore, CLR_WORKER_TIMEOUT_MS))
            return !pool->stopping;
        if (!clr_thread_has_io_pending() && leave_after_timeout(pool))
            return FALSE;
    }
}

/* After the retired semaphore timed out: leave (TRUE), unless a waker has already counted this
 * thread out of retirement, whose signal it must then take. */
static BOOL leave_retirement(struct clr_workers *pool)
{
    union worker_counts old, new;

    do
    {
        old = new = read_counts(pool);
        if (!old.n.retired)
            return FALSE;
        new.n.retired--;
    } while (!swap_counts(pool, old, new));
    return TRUE;
}

/* Retire: TRUE when brought back to work, FALSE to leave. */
static BOOL wait_in_retirement(struct clr_workers *pool)
{
    if (requests_pending(pool))
        maybe_add_working_worker(pool);
    for (;;)
    {
        if (pool->stopping)
            return FALSE;
        if (WaitForSingleObject(pool->retired_semaphore, CLR_WORKER_TIMEOUT_MS) == WAIT_OBJECT_0)
            return !pool->stopping;
        if (!clr_thread_has_io_pending() && leave_retirement(pool))
            return FALSE;
    }
}

/* WorkerThreadStart. A new thread starts counted as working. */
static DWORD WINAPI worker_thread(void *arg)
{
    struct clr_workers *pool = arg;
    BOOL found_work = TRUE;
    enum worker_next next;

    for (;;)
    {
        if ((next = check_counts(pool, found_work)) == WORK)
        {
            update_last_dequeue(pool);
            if (!(found_work = take_thread_request(pool)) || dispatch(pool))
                continue;
            next = RETIRE;  /* should_keep_running has counted it retired */
        }
        if (next == RETIRE ? !wait_in_retirement(pool) : !wait_for_work(pool))
            break;
        found_work = TRUE;
    }
    thread_exited(pool);
    return 0;
}

/* ---- the dispatcher ---- */

/* GetDefaultMaxLimitWorkerThreads, with the stack a managed .exe reserves. */
static LONG default_max_threads(LONG min_threads)
{
    MEMORYSTATUSEX memory = { .dwLength = sizeof(memory) };
    ULONGLONG half_address_space = GlobalMemoryStatusEx(&memory) ? memory.ullTotalVirtual / 2 : 0x7ffe0000ull / 2;
    ULONGLONG limit = half_address_space / CLR_MANAGED_STACK_RESERVE;

    return (LONG)min(max(limit, (ULONGLONG)min_threads), (ULONGLONG)CLR_MAX_POSSIBLE_THREADS);
}

static void free_pool(struct clr_workers *pool)
{
    if (pool->worker_semaphore.semaphore)
        CloseHandle(pool->worker_semaphore.semaphore);
    if (pool->retired_semaphore)
        CloseHandle(pool->retired_semaphore);
    if (pool->gate_stop)
        CloseHandle(pool->gate_stop);
    if (pool->all_exited)
        CloseHandle(pool->all_exited);
    free(pool);
}

/* ThreadpoolMgr::Initialize: no thread until the first request. */
static BOOL clr_workers_start(struct dispatcher *d)
{
    struct clr_workers *pool = calloc(1, sizeof(*pool));
    union worker_counts counts = { 0 };
    LARGE_INTEGER frequency;
    SYSTEM_INFO system;

    if (!pool)
    {
        snprintf(d->error, sizeof(d->error), "%s: out of memory", d->ops->name);
        return FALSE;
    }
    GetSystemInfo(&system);
    QueryPerformanceFrequency(&frequency);
    pool->cpus = pool->min_threads = system.dwNumberOfProcessors;
    pool->max_threads = default_max_threads(pool->min_threads);
    counts.n.max_working = pool->min_threads;
    pool->counts = counts.all;
    InitializeSRWLock(&pool->queue_lock);
    pool->worker_semaphore.cpus = pool->cpus;
    pool->worker_semaphore.semaphore = CreateSemaphoreW(NULL, 0, CLR_MAX_POSSIBLE_THREADS, NULL);
    pool->retired_semaphore = CreateSemaphoreW(NULL, 0, CLR_MAX_POSSIBLE_THREADS, NULL);
    pool->gate_stop = CreateEventW(NULL, TRUE, FALSE, NULL);
    pool->all_exited = CreateEventW(NULL, TRUE, FALSE, NULL);
    pool->qpc_frequency = (double)frequency.QuadPart;
    pool->adjustment_interval = HC_SAMPLE_INTERVAL_LOW;
    hill_climbing_init(&pool->climber);
    if (!pool->worker_semaphore.semaphore || !pool->retired_semaphore || !pool->gate_stop || !pool->all_exited)
    {
        snprintf(d->error, sizeof(d->error), "%s: creating its semaphores and events failed: error %lu",
                 d->ops->name, GetLastError());
        free_pool(pool);
        return FALSE;
    }
    d->impl = pool;
    return TRUE;
}

/* ThreadPool.QueueUserWorkItem. */
static BOOL clr_workers_post(struct dispatcher *d, struct request *request)
{
    struct clr_workers *pool = d->impl;

    enqueue(pool, request);
    ensure_thread_requested(pool);
    return TRUE;
}

/* The model's own shutdown, which the CLR never does: every thread that waits, or will, is
 * released once and then sees that the pool stops. */
static void clr_workers_stop(struct dispatcher *d)
{
    struct clr_workers *pool = d->impl;
    LONG alive;

    InterlockedExchange(&pool->stopping, 1);
    stop_gate(pool);
    if ((alive = InterlockedCompareExchange(&pool->alive, 0, 0)))
    {
        ReleaseSemaphore(pool->retired_semaphore, alive, NULL);
        unfair_release(&pool->worker_semaphore, alive);
        WaitForSingleObject(pool->all_exited, INFINITE);
    }
    d->threads_peak = pool->peak;
    d->injections = pool->created;
    d->threads_target = read_counts(pool).n.max_working;
    d->target_raised = pool->raised;
    d->target_lowered = pool->lowered;
    free_pool(pool);
}

const struct dispatcher_ops clr_workers_ops =
{
    "CLR worker pool model", clr_workers_start, dispatcher_no_bind, dispatcher_no_prepare, dispatcher_no_io_context,
    dispatcher_no_io_context, clr_workers_post, dispatcher_no_unbind, clr_workers_stop, TRUE,
};
