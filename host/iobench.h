/* The workloads and dispatchers shared by the host program and the benchmark. A dispatcher
 * turns completed I/O into calls of complete_request(); a workload issues overlapped I/O
 * through it and checks every byte that comes back. */
#ifndef HOSTIOCP_IOBENCH_H
#define HOSTIOCP_IOBENCH_H

#include <winsock2.h>
#include <windows.h>
#include "manager_support.h"

#define HOST_EXTENSION_ROOM 32
/* The most requests or connections a workload sets up: 10,000 TCP connections take about 12 s
 * to set up under Wine, 20,000 do not finish in a minute. */
#define MAX_CONCURRENCY 10000
/* Latency: log-linear buckets, 64 to each power of two of microseconds from 1 us to 2^26 us
 * (67 s), so that a bucket's midpoint is within 0.8 % of any value in it; one bucket below them
 * and one above. */
#define LATENCY_SUB_BUCKETS 64
#define LATENCY_OCTAVES 26
#define LATENCY_BUCKETS (1 + LATENCY_OCTAVES * LATENCY_SUB_BUCKETS + 1)

struct request;
struct channel;
typedef void (*request_done)(struct request *request, DWORD error, DWORD bytes);

/* As the CLR lays out a request: the OVERLAPPED, then the host's extension. */
struct request
{
    OVERLAPPED overlapped;
    BYTE host[HOST_EXTENSION_ROOM];
    request_done done;
    struct run *run;
    struct channel *channel;
    LONGLONG issued;
    BYTE *buffer;
    DWORD size;              /* bytes of the current message */
    DWORD have;              /* bytes of it moved so far */
    ULONGLONG offset;
    ULONG round;
    DWORD id;
    int state;
    SOCKET accepted;
};

struct dispatcher;
struct dispatcher_ops
{
    const char *name;
    BOOL (*start)(struct dispatcher *d);
    BOOL (*bind)(struct dispatcher *d, HANDLE handle, void **io);
    void (*prepare)(struct dispatcher *d, struct request *request);
    void (*before_io)(void *io);
    void (*not_pending)(void *io);
    BOOL (*post)(struct dispatcher *d, struct request *request);
    void (*unbind)(struct dispatcher *d, void *io);
    void (*stop)(struct dispatcher *d);
    BOOL work_items;         /* post only: a pool of work items, with no handles to bind */
};

struct dispatcher
{
    const struct dispatcher_ops *ops;
    DWORD threads;
    DWORD min_threads, max_threads;  /* hostiocp only; 0: same as threads */
    DWORD batch;                     /* hostiocp only; 0: its default */
    char error[256];                 /* why start failed */
    void *impl;
    /* filled in by stop() where the dispatcher can tell */
    DWORD threads_peak;
    ULONGLONG injections;
    DWORD threads_target;            /* hostiocp's policy at the end, and its decisions */
    ULONGLONG target_raised, target_lowered;
    ULONGLONG drain_markers;
    /* hostiocp only: the thread-pool manager GetHostManager gave, NULL where it gave none; stop()
     * releases it, after reading its worker pool's statistics (cbSize 0 where it could not) */
    IHostThreadpoolManager *workers;
    HOSTIOCP_WORK_STATISTICS work_stats;
};

void dispatcher_init(struct dispatcher *d, const struct dispatcher_ops *ops, DWORD threads);
/* The operations a dispatcher without per-request state or per-handle context leaves empty. */
BOOL dispatcher_no_start(struct dispatcher *d);
void dispatcher_no_stop(struct dispatcher *d);
void dispatcher_no_io_context(void *io);
void dispatcher_no_prepare(struct dispatcher *d, struct request *request);
BOOL dispatcher_no_bind(struct dispatcher *d, HANDLE handle, void **io);
void dispatcher_no_unbind(struct dispatcher *d, void *io);
extern const struct dispatcher_ops bare_port_ops, hostiocp_ops, hostiocp_batched_ops, threadpool_ops, bindio_ops;
/* hostiocp from another build of the DLL, loaded from hostiocp_baseline_dll (--baseline). */
extern const struct dispatcher_ops hostiocp_baseline_ops, hostiocp_work_baseline_ops;
extern const WCHAR *hostiocp_baseline_dll;
/* Peers at their own defaults: the CLR's native pool (host/clrpool.c) and TP_IO on the default pool. */
extern const struct dispatcher_ops clr_pool_ops, threadpool_default_ops;
/* What both CLR models (clrpool.c, clrworkers.c) ask the system: whether the calling thread has
 * I/O pending (TRUE when that cannot be asked, as ThreadpoolMgr::IsIoPending), and the machine's
 * CPU use in percent since the last call (GetCPUBusyTime_NT). */
BOOL clr_thread_has_io_pending(void);
LONG clr_sample_cpu_busy(ULONGLONG *last_idle, ULONGLONG *last_total);
/* Work items at their own defaults (post only; bind fails): hostiocp's IHostThreadpoolManager,
 * a model of the CLR's own worker pool (host/clrworkers.c), TrySubmitThreadpoolCallback on the
 * default pool and QueueUserWorkItem. */
extern const struct dispatcher_ops hostiocp_work_ops, clr_workers_ops, submit_callback_ops, queue_user_work_item_ops;

struct histogram
{
    volatile LONG counts[LATENCY_BUCKETS];
    volatile LONG64 max_ticks;
};

/* A moment of a run, with the completions counted by then. */
struct part_end
{
    LONGLONG at;                     /* QPC ticks */
    LONG64 operations;
};

struct run
{
    struct dispatcher *dispatcher;
    volatile LONG64 deadline;        /* QPC ticks, set once the workload is set up; 0: none yet */
    LONG64 target_operations;        /* 0: duration only */
    volatile LONG64 operations;      /* completions */
    volatile LONG64 last_operation_at;  /* QPC ticks of the latest completion counted, unless ... */
    BOOL rounds_marked;              /* ... a request's round is several completions: its end is marked */
    SRWLOCK round_lock;
    struct part_end round_end;       /* locked via round_lock: the last marked round's */
    volatile LONG64 bytes;
    volatile LONG64 errors;
    volatile LONG64 verify_failures;
    volatile LONG outstanding;       /* requests still going */
    volatile LONG stopping;
    HANDLE finished;
    struct histogram latency;
    double seconds;                  /* the measured part's (wait_for_run gives its ends) */
    LONG64 measured_operations;      /* completions in the measured part */
    SIZE_T peak_working_set;
    double cpu_seconds;              /* the process's user + kernel time over the measured part ... */
    LONG64 cpu_operations;           /* ... and the completions over the same time */
    LONG generation;                 /* tells this run's callback threads from earlier runs' */
    volatile LONG callback_threads;  /* distinct threads that ran a callback */
    volatile LONG64 io_completions;  /* completions of its requests */
    /* The work workload: an operation is an item of its chains, not a completion. */
    BOOL items_are_operations;
    volatile LONG64 items_queued;    /* QueueUserWorkItem calls that succeeded */
    volatile LONG64 items_run;       /* of its chains, and those its completions queued */
    char detail[160];
};

struct workload_options
{
    const char *name;                /* posted, file-read, file-copy, pipe, tcp, work */
    DWORD concurrency;
    DWORD block;
    ULONGLONG file_size;
    double duration;
    LONG64 operations;
    BOOL progress;
    DWORD work_us;                   /* CPU work in each callback (posted) */
    DWORD block_ms;                  /* callbacks block this long ... */
    DWORD block_every;               /* ... one in this many (1: all) */
    double warmup;                   /* seconds not measured at the start */
    DWORD io_every;                  /* work: one item in this many waits for I/O (0: none) */
};

extern LONGLONG qpc_frequency;
/* The class the hostiocp dispatchers activate: CLSID_HostIoCpHostControl, or what --progid named. */
extern const CLSID *hostiocp_host_control_class;
LONGLONG now_ticks(void);

/* The blocking storm: callbacks that block on every thread a dispatcher has, then one more
 * completion; how long until it is dispatched. */
struct storm_options
{
    DWORD block_ms;                  /* each storm callback blocks this long */
    DWORD most_blocked;              /* stop filling at this many blocked callbacks */
    DWORD taken_within_ms;           /* a completion not taken this soon: every thread is blocked */
};

struct storm_result
{
    BOOL dispatched;
    double dispatch_ms;              /* from the new completion's arrival to its callback */
    DWORD blocked;                   /* callbacks blocked when it arrived */
    DWORD taken;                     /* storm completions taken before it arrived */
    double fill_ms;                  /* from the first storm completion to its arrival */
    DWORD callback_threads;
};

BOOL run_blocking_storm(struct dispatcher *d, const struct storm_options *options, struct storm_result *result);

void complete_request(OVERLAPPED *overlapped, DWORD error, DWORD bytes);
BOOL run_workload(struct dispatcher *d, const struct workload_options *options, struct run *run);
/* The I/O workloads, which every dispatcher runs; "work" runs only through hostiocp (it needs
 * dispatcher.workers). */
BOOL workload_known(const char *name);
#define WORK_WORKLOAD "work"
/* The work workload's I/O completions for `chain_items` items of its chains: a write's and a
 * read's for each item that waits for I/O, one in every io_every.  Each queues one more item. */
LONG64 work_io_completions_expected(LONG64 chain_items, DWORD io_every);
void free_run(struct run *run);
double latency_percentile_us(const struct histogram *histogram, double fraction);
int latency_bucket(double us);
double latency_bucket_midpoint_us(int bucket);
double latency_max_us(const struct histogram *histogram);

#endif
