/* The thread-count controller of one pool: from periodic samples of the pool (completions so
 * far, threads, busy threads, packets queued) it decides how many threads the pool should run.
 * It owns no threads and no handles, so a test can drive it with a model of a workload. */
#ifndef HOSTIOCP_POLICY_H
#define HOSTIOCP_POLICY_H

#include <windows.h>

/* How often the pool's monitor samples; also the starvation detection granularity. */
#define POLICY_TICK_MS 20

struct policy;

struct policy_sample
{
    LONGLONG now_us;        /* a monotonic real clock */
    LONG64 completions;     /* OnComplete calls so far */
    LONG threads;           /* dispatch threads alive */
    LONG busy;              /* of which inside OnComplete */
    LONG queued;            /* packets waiting on the port */
    LONG floor;             /* the least the target may be: the minimum, and at least 1 */
    LONG max;               /* the host's maximum */
    LONG64 cpu_idle;        /* the machine's CPU time so far, idle and in all, in any one unit; */
    LONG64 cpu_total;       /* both 0 where the system does not say */
    LONG64 cpu_process;     /* this process's CPU time so far, in that unit; -1 where not known, and
                             * then the machine's time in use stands for it (a policy whose work is
                             * in the system never reads it) */
    LONG64 cpu_pool;        /* the CPU time of the pool's own threads so far, in the same unit; -1 where
                             * not known; POLICY_POOL_CPU_NOT_READ at a tick where
                             * policy_reads_pool_cpu said it is not needed */
};

#define POLICY_POOL_CPU_NOT_READ (-2)

enum policy_event
{
    POLICY_NONE,
    POLICY_STARVING,        /* packets wait and every thread is busy, and none finished (one more)
                             * or the callbacks waited rather than computed (a thread for every two
                             * packets waiting) */
    POLICY_PROBE,           /* trying another count for one measurement window; again, from
                             * the target, when the machine moved while it was measured (the
                             * rates are then those measured) */
    POLICY_RAISED,          /* a probe above paid: the target moves up */
    POLICY_LOWERED,         /* a probe below cost nothing: the target moves down */
    POLICY_KEPT,            /* the probes did not pay: the target stays */
};

struct policy_decision
{
    LONG target;            /* threads the pool should run while it has work */
    enum policy_event event;
    LONG from, to;          /* for POLICY_PROBE, _RAISED, _LOWERED: the counts compared */
    double from_rate, to_rate; /* their completions per second */
    double cpu_share;       /* in the last window that ended, the share of the machine's CPU time in
                             * use ... */
    double work_share;      /* ... used by the callbacks' kind of work: this process, for work in it
                             * where it is known, else the machine ... */
    double pool_share;      /* ... and in the pool's own threads, as shares of all of it (0: not known) */
};

/* Where the callbacks' work is done, and so which CPU time says whether they compute or wait. */
enum policy_work
{
    POLICY_WORK_IN_SYSTEM,  /* part of it may be the system's: an I/O's (in wineserver, under Wine); the
                             * machine's CPU time in use is the measure */
    POLICY_WORK_IN_PROCESS, /* nearly all of it is in this process (work items; under Wine, calls on
                             * kernel objects are wineserver's): its own CPU time says whether they
                             * wait, so that another process keeping CPUs busy does not make
                             * callbacks that wait look as if they computed; whether more threads
                             * would only contend is still the machine's */
};

/* cpus: the processors that the pool's threads share. */
struct policy *policy_create(LONG initial_target, LONG cpus, enum policy_work work);
void policy_destroy(struct policy *policy);
/* Whether the sample for the tick at now_us, with these completions, needs cpu_pool: reading
 * it costs a system call per thread, and the policy uses it only where a window begins or ends. */
BOOL policy_reads_pool_cpu(const struct policy *policy, LONGLONG now_us, LONG64 completions);
/* The pool's monitor stopped sampling for a while (the pool idled, or ran its fixed maximum); with
 * the first sample after it, before policy_update: the window and the tick before it are dropped,
 * and the next window begins as the first one did; the target, and a hold, are kept, a probe is
 * dropped. */
void policy_resume(struct policy *policy, const struct policy_sample *sample);
/* Called every POLICY_TICK_MS with a fresh sample. */
void policy_update(struct policy *policy, const struct policy_sample *sample,
                   struct policy_decision *decision);
const char *policy_event_name(enum policy_event event);

#endif
