/* The thread-count controller.  Its rules, with the measurements behind them, are in
 * doc/thread-policy.md.  In short:
 * - Starvation comes first: packets queued, every thread inside a callback and no callback
 *   finished since the last tick add one thread at once, every tick, up to the maximum (work
 *   items that computed through the tick, one a second: starving()); with
 *   those threads' callbacks waiting rather than computing for two ticks in a row, a jump adds a
 *   thread for every two packets waiting, at most a doubling, while the jumps before it paid
 *   (jump()).
 * - Otherwise a search finds the count by measuring: from the target it probes up by a thread
 *   for every two packets that waited (at most twice as many threads), then half as many, in
 *   windows that alternate with windows at the target, and moves the target only when the
 *   completion rate says so.
 * - Between searches it holds the target, and searches again when the hold ends or the rate
 *   shifts.
 * The phases, and every change from one to another, are in move_to(). */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include "policy.h"

/* Measurement windows. */
#define WINDOW_US            150000  /* the shortest window: several ticks, so that no one tick decides */
#define WINDOW_MAX_US       1000000  /* the longest, however few completions: a quiet pool is judged too */
#define WINDOW_COMPLETIONS        8  /* a window ends once it has seen this many; fewer cannot judge a count */
#define SETTLE_US             40000  /* after the count changes, two ticks for threads to start or leave */
#define STARTUP_US            60000  /* from the first sample, no window: the pool's threads and the host
                                      * are starting, and their CPU time would hide callbacks that compute */
#define SATURATED_SHARE        0.25  /* of a window's ticks short of threads, for a probe up to find work */
#define WAITED_SHARE           0.75  /* of a window's ticks with more threads in callbacks than a probe down
                                      * would leave: while the callbacks waited (callbacks_waited_since), none
                                      * goes down ... */
#define WAITED_WINDOWS          100  /* ... for this many windows in a row (15 s or more), counted afresh after
                                      * a probe down that did not pay: callbacks that wait on one another
                                      * (one lock) look the same, and would keep every thread they were given */
#define PROBE_FACTOR              2  /* probes double or halve the target: steps a noisy machine can resolve */
#define WAITING_PER_THREAD        2  /* up, a thread for this many packets that waited: a request often waits
                                      * as two packets, one for each end of it */

/* A probe up: the rate at the probe over the rate at the target. */
#define FAST_GAIN              1.50  /* one pair while the CPUs wait raises at once: the pool starves meanwhile;
                                      * for a doubling, and in proportion for a smaller step */
#define CLEAR_GAIN             1.20  /* over two or three pairs, the climb goes on: larger counts may pay too */
#define CLEAR_GAIN_MARGIN      0.07  /* two pairs this close to CLEAR_GAIN: a third pair decides */
#define MODEST_GAIN            1.05  /* over two pairs, the least gain that raises: one pair can be 20 % off */
#define ONE_PAIR_REJECTS       0.95  /* one pair below it refuses the probe at once: every probe costs */
#define MANY_THREADS_PER_CPU      8  /* from here only a FAST_GAIN climbs on: smaller gains come and go */
#define CPUS_BUSY              0.75  /* CPUs this busy in the window before: more threads add contention, not
                                      * work, so no probe up goes past ... (the CLR stops at 80 %, but one
                                      * window's reading is 5 points off: 79-89 % at one count) */
#define BUSY_THREADS_PER_CPU      4  /* ... this many threads for each CPU (enough to cover brief waits) */
#define POOL_COMPUTES          0.80  /* of the machine's CPU time, in the pool's own threads: its callbacks
                                      * compute, so the count goes no further than one thread past the CPUs
                                      * (more could not run at once, one covers a brief wait); I/O leaves
                                      * much of its time to the system */
#define CPUS_COMPUTING         0.50  /* the callbacks' kind of work this busy (the machine, for the fast gain and
                                      * a shift): they compute; those that wait use less */
#define FREE_JUMPS                2  /* jumps for waiting callbacks before the others must show that one paid */
#define JUMP_PAYS              0.50  /* ... a rate since the last jump up by this share of its threads' gain */
#define SMALL_JUMPS_SHARE      0.25  /* jumps that together add this share of the threads of the last jump or
                                      * less need no proof: the tail of a climb to the work in flight adds
                                      * a few threads at a time, a gain the rate's noise hides */
#define WAITED_TICKS_TO_JUMP      2  /* ticks in a row short of threads while the callbacks waited, for a jump: one
                                      * tick's CPU reading also reads low when the machine, or wineserver under
                                      * Wine, held every callback up for a tick, and more threads wait for it too */
#define COMPUTING_STARVED_US 1000000  /* items that compute through ticks without finishing get a thread only
                                      * once none has finished for this long, and then one a period: a
                                      * thread that cannot run finishes nothing sooner (the CLR's gate thread
                                      * waits a second or more while its CPUs are busy) */
#define JUMPS_END_US         150000  /* packets that stop waiting for threads this long, and a thread idle, end
                                      * the jumps: a pause, or threads that all still wait, is the same wait,
                                      * and must not bring new free jumps */
#define MACHINE_MOVED          1.25  /* windows at one count this far apart: the machine moved, not the count */
#define REMEASURE_MAX             2  /* then a gain is taken as measured, or a restless machine stalls the search */

/* A probe down: its rate over the best window of the round. */
#define SMALL_LOSS             0.97  /* over two pairs, the least that lowers: fewer threads for the same work */
#define CLEAR_LOSS             0.85  /* one pair below it refuses the probe at once: it costs while measured */
#define WORK_GONE              0.50  /* a probe window with too few completions and below this share of the
                                      * target's rate: the work went away, so no count can be judged */

/* Between searches. */
#define SHORT_HOLD_US     15000000  /* an I/O pool short of threads with the CPUs busy holds this long before a
                                     * probe down (about WAITED_WINDOWS' time): it may hold more than it needs */
#define HOLD_MIN_US          500000  /* after a round that set the target: the new count is checked soon */
#define HOLD_MAX_US         8000000  /* doubling up to this while rounds change nothing: every probe costs */
#define HOLD_GROWTH               2  /* per round that changes nothing: a steady pool probes ever more rarely */
#define RATE_SHIFT             0.30  /* a window this far from the rate held ... */
#define SHIFTED_WINDOWS           2  /* ... this many times in a row ends the hold: one window is noise */
#define SAME_WORK                 2  /* work within this factor of the ceiling's: a shift is the machine's doing */

/* The windows measured at one count for one probe. */
struct windows
{
    int count;
    double sum, least, most;
};

/* Jumps for callbacks that wait, since packets last stopped waiting for threads (JUMPS_END_US). */
struct jumps
{
    int count;
    LONGLONG us;            /* the last one that was free or proved the one before it: its time ... */
    LONG64 completions;     /* ... and completions then */
    double rate_before;     /* from the jump before it to it; 0: not measured */
    LONG64 completions_before; /* ... and the completions it was measured from */
    LONG from, to;          /* the threads before and after it */
    LONG small_added;       /* threads added since it by small jumps, without proof */
};

/* Every change of phase is made by move_to(). */
enum phase
{
    MEASURING_TARGET,       /* a window at the target; then a search starts */
    MEASURING_PROBE,        /* a window at the probe, which completes a pair; then the pairs are judged */
    MEASURING_TARGET_AGAIN, /* a window at the target for another pair; then the probe again */
    HOLDING,                /* between searches: windows at the target until the hold ends or the rate shifts */
};

/* The CPU times of one sample, as the shares between two of them need them. */
struct cpu_reading
{
    LONG64 idle, total, process;
};

struct policy
{
    enum phase phase;
    LONG target;
    LONG many_threads;      /* MANY_THREADS_PER_CPU for each CPU */
    LONG busy_cpus_threads; /* BUSY_THREADS_PER_CPU for each CPU */
    LONG cpus;
    enum policy_work work;

    /* The search. */
    LONG probe;
    int direction;          /* of the probe: +1 or -1 */
    BOOL raised_in_round;
    struct windows at_target, at_probe;
    int remeasured;         /* times this probe was measured afresh because the machine moved */
    double target_rate;     /* the last window at the target */
    double round_best;      /* the best window of this round */

    /* What earlier searches found: counts not worth a probe until the rate shifts, the limits
     * change or the pool starves. */
    LONG ceiling;           /* probes up stay below it; 0: none */
    LONG ceiling_demand;    /* the demand when it was set */
    BOOL ceiling_did_not_pay; /* the ceiling is a probe that did not pay, not the count after a modest gain */
    LONG rejected_once;     /* a probe up that did not pay once; if it does not pay again, it is the ceiling */
    LONG probe_down_limit;  /* probes down stay above it: a count measured worse; 0: none */

    /* The window. */
    LONGLONG window_start;  /* 0: the window starts at the first tick after settle_until and measure_from */
    LONGLONG settle_until;
    LONGLONG measure_from;  /* the first sample's time and STARTUP_US */
    LONG64 window_completions;
    LONG window_ticks, window_saturated_ticks, window_waited_ticks;
    LONG window_demand;     /* the most busy + queued seen in the window */
    LONG64 window_queued;   /* queued, summed over the window's ticks */
    struct cpu_reading window_cpu;
    LONG64 window_cpu_pool;
    double cpu_share;       /* of the machine's CPU time in use, in the last window that ended */
    double work_share;      /* ... used by the callbacks' kind of work (work_share_since) */
    double pool_share;      /* ... of it in the pool's threads; 0 where not known */
    BOOL pool_share_known;
    BOOL threads_waited;    /* ... more threads were in callbacks than a probe down would leave, while
                             * the callbacks waited (callbacks_waited_since) */
    LONG waited_windows;    /* windows in a row that ended so */
    BOOL round_cheap;       /* the window before this round read the pool threads_are_cheap, and the
                             * climb's probes still do (judge_cheap_up, short_pool_holds) */
    LONGLONG short_since_us; /* the first of the rounds in a row that held so (short_pool_holds); 0: none,
                              * and since starvation, moved limits, a new target, the work going away
                              * (a round started over) or an idle spell */
    LONG demand;            /* ... the most busy + queued in it */
    LONG queued;            /* ... the packets that waited in it, on average, rounded up */

    /* Holding. */
    LONGLONG hold_us;
    LONGLONG hold_until;
    double held_rate;       /* the target's rate when the hold began */
    int shifted_windows;    /* windows in a row RATE_SHIFT away from held_rate */

    /* Starvation: the last tick's sample. */
    BOOL sampled;
    LONG64 last_completions;
    LONGLONG fed_us;        /* the last tick that was no starvation (a callback finished, a thread was
                             * free or nothing waited), or at which items that compute got a thread */
    struct cpu_reading last_cpu;

    struct jumps jump;
    LONGLONG lacked_us;     /* the last tick at which packets waited for threads, below the maximum */
    int waited_ticks;       /* ticks in a row, up to this one, short of threads while the callbacks waited */
};

struct policy *policy_create(LONG initial_target, LONG cpus, enum policy_work work)
{
    struct policy *policy = calloc(1, sizeof(*policy));

    assert(initial_target >= 1 && cpus >= 1);
    if (!policy)
        return NULL;
    policy->phase = MEASURING_TARGET;
    policy->target = initial_target;
    policy->many_threads = MANY_THREADS_PER_CPU * cpus;
    policy->cpus = cpus;
    policy->work = work;
    policy->busy_cpus_threads = BUSY_THREADS_PER_CPU * cpus;
    policy->hold_us = HOLD_MIN_US;
    return policy;
}

void policy_destroy(struct policy *policy)
{
    free(policy);
}

const char *policy_event_name(enum policy_event event)
{
    static const char *const names[] = { "none", "starving", "probe", "raised", "lowered", "kept" };
    return names[event];
}

/* ---- windows ---- */

static void windows_start(struct windows *windows)
{
    windows->count = 0;
    windows->sum = windows->most = 0;
    windows->least = HUGE_VAL;
}

static void windows_add(struct windows *windows, double rate)
{
    windows->count++;
    windows->sum += rate;
    windows->least = min(windows->least, rate);
    windows->most = max(windows->most, rate);
}

static double windows_mean(const struct windows *windows)
{
    assert(windows->count > 0);
    return windows->sum / windows->count;
}

/* The most over the least window. */
static double windows_spread(const struct windows *windows)
{
    return windows->most / windows->least;
}

/* Each pair is a window at the target, then one at the probe. */
static int pairs_measured(const struct policy *policy)
{
    return policy->at_probe.count;
}

static LONG clamp(LONG value, LONG floor, LONG max)
{
    return value < floor ? floor : value > max ? max : value;
}

static BOOL probing(const struct policy *policy)
{
    return policy->phase == MEASURING_PROBE || policy->phase == MEASURING_TARGET_AGAIN;
}

/* The count the pool should run now. */
static LONG current_count(const struct policy *policy)
{
    return policy->phase == MEASURING_PROBE ? policy->probe : policy->target;
}

static struct cpu_reading cpu_reading_of(const struct policy_sample *sample)
{
    struct cpu_reading reading = { sample->cpu_idle, sample->cpu_total, sample->cpu_process };
    return reading;
}

/* The share of the machine's CPU time between `since` and the sample that was in use.  The
 * machine's time must have moved on. */
static double machine_share_since(const struct policy_sample *sample, const struct cpu_reading *since)
{
    assert(sample->cpu_total > since->total);
    return 1 - (sample->cpu_idle - since->idle) / (double)(sample->cpu_total - since->total);
}

/* The share of the machine's CPU time between `since` and the sample that the callbacks' kind of
 * work used: this process's, where their work is in it and it says (read apart from the
 * machine's, so it can exceed 1 by a clock tick or two), else the machine's.  The machine's time
 * must have moved on. */
static double work_share_since(const struct policy *policy, const struct policy_sample *sample,
                               const struct cpu_reading *since)
{
    if (policy->work == POLICY_WORK_IN_PROCESS && sample->cpu_process >= 0 && since->process >= 0)
        return (sample->cpu_process - since->process) / (double)(sample->cpu_total - since->total);
    return machine_share_since(sample, since);
}

/* Whether the callbacks waited rather than computed between `since` and the sample, with
 * `computing` the share of the CPUs the busy threads would keep busy if they computed: their kind
 * of work used less than CPUS_COMPUTING of that, and the machine's CPUs were not so busy that
 * callbacks which compute may just have had too little of them.  FALSE where the machine's time
 * did not move on. */
static BOOL callbacks_waited_since(const struct policy *policy, const struct policy_sample *sample,
                                   const struct cpu_reading *since, double computing)
{
    if (sample->cpu_total <= since->total)
        return FALSE;
    return work_share_since(policy, sample, since) < CPUS_COMPUTING * computing &&
           machine_share_since(sample, since) < CPUS_BUSY;  /* implied where the work is the machine's */
}

/* The window in progress is dropped; the next starts at the next tick, or once the pool has had
 * time to reach a new count. */
static void restart_window(struct policy *policy, const struct policy_sample *sample, BOOL count_changed)
{
    policy->window_start = 0;
    policy->settle_until = sample->now_us + (count_changed ? SETTLE_US : 0);
}

static void begin_window(struct policy *policy, const struct policy_sample *sample)
{
    assert(sample->cpu_pool != POLICY_POOL_CPU_NOT_READ);
    policy->window_start = sample->now_us;
    policy->window_completions = sample->completions;
    policy->window_ticks = policy->window_saturated_ticks = policy->window_waited_ticks = 0;
    policy->window_demand = 0;
    policy->window_queued = 0;
    policy->window_cpu = cpu_reading_of(sample);
    policy->window_cpu_pool = sample->cpu_pool;
}

/* Whether the window in progress has lasted long enough, and seen enough, to end now. */
static BOOL window_long_enough(const struct policy *policy, LONGLONG now_us, LONG64 completions)
{
    LONGLONG elapsed = now_us - policy->window_start;

    return elapsed >= WINDOW_US && (completions - policy->window_completions >= WINDOW_COMPLETIONS ||
                                    elapsed >= WINDOW_MAX_US);
}

static BOOL window_may_begin(const struct policy *policy, LONGLONG now_us)
{
    return policy->sampled && now_us >= policy->settle_until && now_us >= policy->measure_from;
}

/* A window begins or ends at this tick: the only ticks that read the pool's CPU time. */
BOOL policy_reads_pool_cpu(const struct policy *policy, LONGLONG now_us, LONG64 completions)
{
    return policy->window_start ? window_long_enough(policy, now_us, completions) : window_may_begin(policy, now_us);
}

/* Returns TRUE with the rate when the window has ended; the next one starts at once. */
static BOOL window_ended(struct policy *policy, const struct policy_sample *sample, double *rate,
                         LONG64 *completions, BOOL *saturated)
{
    LONGLONG elapsed;

    if (!policy->window_start)
    {
        if (window_may_begin(policy, sample->now_us))
            begin_window(policy, sample);
        return FALSE;
    }
    policy->window_ticks++;
    if (sample->queued > 0 || sample->busy >= sample->threads)
        policy->window_saturated_ticks++;
    if (sample->busy * PROBE_FACTOR > sample->threads)
        policy->window_waited_ticks++;
    policy->window_demand = max(policy->window_demand, sample->busy + sample->queued);
    policy->window_queued += sample->queued;
    if (!window_long_enough(policy, sample->now_us, sample->completions))
        return FALSE;
    elapsed = sample->now_us - policy->window_start;
    *completions = sample->completions - policy->window_completions;
    *rate = *completions * 1e6 / (double)elapsed;
    *saturated = policy->window_saturated_ticks >= SATURATED_SHARE * policy->window_ticks;
    policy->cpu_share = policy->work_share = policy->pool_share = 0;
    policy->pool_share_known = policy->threads_waited = FALSE;
    if (sample->cpu_total > policy->window_cpu.total)
    {
        double total = (double)(sample->cpu_total - policy->window_cpu.total);

        policy->cpu_share = machine_share_since(sample, &policy->window_cpu);
        policy->work_share = work_share_since(policy, sample, &policy->window_cpu);
        assert(sample->cpu_pool != POLICY_POOL_CPU_NOT_READ);
        if (policy->window_cpu_pool >= 0 && sample->cpu_pool >= policy->window_cpu_pool)
        {
            policy->pool_share = min(policy->cpu_share, (sample->cpu_pool - policy->window_cpu_pool) / total);
            policy->pool_share_known = TRUE;
        }
        policy->threads_waited = callbacks_waited_since(policy, sample, &policy->window_cpu, 1.0) &&
                                 policy->window_waited_ticks >= WAITED_SHARE * policy->window_ticks;
    }
    policy->waited_windows = policy->threads_waited ? policy->waited_windows + 1 : 0;
    policy->demand = policy->window_demand;
    policy->queued = (LONG)((policy->window_queued + policy->window_ticks - 1) / policy->window_ticks);
    begin_window(policy, sample);
    return TRUE;
}

/* ---- what earlier searches found ---- */

static void forget_searches(struct policy *policy)
{
    policy->ceiling = policy->probe_down_limit = policy->rejected_once = 0;
    policy->ceiling_did_not_pay = FALSE;
}

/* The rate shifted.  With the same work in flight as when the ceiling was set and the callbacks
 * still computing, the machine moved rather than the work: more threads pay no better than they
 * did, and only fewer threads may do now.  Otherwise the work changed, and everything may. */
static void forget_after_shift(struct policy *policy)
{
    if (policy->cpu_share >= CPUS_COMPUTING && policy->demand < SAME_WORK * policy->ceiling_demand &&
        SAME_WORK * policy->demand > policy->ceiling_demand)
    {
        policy->probe_down_limit = 0;
        return;
    }
    forget_searches(policy);
}

/* After each hold, a count that did not pay is tried once more: something else on the machine
 * may have taken what it gains while it was measured.  Refused again, it is the ceiling again. */
static void retry_rejected_ceiling(struct policy *policy)
{
    if (!policy->ceiling_did_not_pay)
        return;
    policy->rejected_once = policy->ceiling;
    policy->ceiling = 0;
    policy->ceiling_did_not_pay = FALSE;
}

static void report(struct policy_decision *decision, enum policy_event event, LONG from, LONG to,
                   double from_rate, double to_rate)
{
    decision->event = event;
    decision->from = from;
    decision->to = to;
    decision->from_rate = from_rate;
    decision->to_rate = to_rate;
}

/* ---- the phases ---- */

/* Moves the controller to `next`, doing what entering it means; the caller has set the target
 * and the probe.  target_set: the limits, starvation or the round just set the target. */
static void move_to(struct policy *policy, const struct policy_sample *sample, enum phase next, BOOL target_set)
{
    /* The pool goes from the probe back to the target. */
    BOOL leaves_probe = policy->phase == MEASURING_PROBE && policy->probe != policy->target;

    if (next == MEASURING_TARGET || target_set)
        policy->short_since_us = 0;  /* the rounds that held are no longer in a row */

    switch (next)
    {
    case MEASURING_TARGET:
        /* Starting over: the next window waits for the threads if the count changes or the
         * target was set anew, and begins at the next tick otherwise. */
        restart_window(policy, sample, leaves_probe || target_set);
        break;
    case MEASURING_PROBE:
    case MEASURING_TARGET_AGAIN:
        /* The count goes from the target to the probe, or back. */
        restart_window(policy, sample, TRUE);
        break;
    case HOLDING:
        /* A short hold after a round that set the target; doubling after rounds that did not. */
        policy->hold_us = target_set ? HOLD_MIN_US : min(policy->hold_us * HOLD_GROWTH, (LONGLONG)HOLD_MAX_US);
        policy->hold_until = sample->now_us + policy->hold_us;
        policy->held_rate = policy->target_rate;
        if (leaves_probe)
            restart_window(policy, sample, TRUE);
        break;
    }
    policy->phase = next;
}

/* ---- the search ---- */

/* The pool's own threads kept the CPUs busy in the last window: its callbacks compute. */
static BOOL computing(const struct policy *policy)
{
    return policy->pool_share >= POOL_COMPUTES;
}

/* A probe stays inside what earlier searches found.  None goes down after a window in which more
 * threads waited inside callbacks than it would leave (fewer would leave work waiting longer for
 * the same wait; the threads above them only wait for the next packet), until WAITED_WINDOWS have
 * ended so in a row. */
static BOOL worth_probing(const struct policy *policy, LONG probe, int direction)
{
    if (direction < 0)
        return probe < policy->target && probe > policy->probe_down_limit &&
               (!policy->threads_waited || policy->waited_windows >= WAITED_WINDOWS);
    return probe > policy->target && (!policy->ceiling || probe < policy->ceiling);
}

/* Starts measuring `direction` from the target: up by a thread for every WAITING_PER_THREAD
 * packets that waited in the window before, at most a doubling and at least one, never past the
 * most work seen at once in it (more threads would find nothing to do); while the CPUs were busy,
 * never past BUSY_THREADS_PER_CPU, and while the pool's own threads kept them busy, one thread
 * more and no further than one past the CPUs.  Down: half, or, while the pool's threads keep
 * the CPUs busy, straight to one past the CPUs (or the least count above one refused before).
 * FALSE if no count is worth it. */
static BOOL begin_probe(struct policy *policy, const struct policy_sample *sample, int direction,
                        struct policy_decision *decision)
{
    LONG probe;

    if (direction > 0)
    {
        LONG step = (policy->queued + WAITING_PER_THREAD - 1) / WAITING_PER_THREAD;

        probe = min(policy->target + clamp(step, 1, policy->target * (PROBE_FACTOR - 1)), policy->demand);
        if (computing(policy))
            probe = min(probe, min(policy->target + 1, policy->cpus + 1));
        else if (policy->cpu_share >= CPUS_BUSY)
            probe = min(probe, max(policy->target, policy->busy_cpus_threads));
        probe = clamp(probe, sample->floor, sample->max);
    }
    else if (computing(policy) && policy->target > policy->cpus + 1)
        probe = clamp(max(policy->cpus + 1, policy->probe_down_limit + 1), sample->floor, sample->max);
    else
        probe = clamp(policy->target / PROBE_FACTOR, sample->floor, sample->max);
    if (!worth_probing(policy, probe, direction))
        return FALSE;
    policy->probe = probe;
    policy->direction = direction;
    policy->remeasured = 0;
    windows_start(&policy->at_target);
    windows_add(&policy->at_target, policy->target_rate);
    windows_start(&policy->at_probe);
    move_to(policy, sample, MEASURING_PROBE, FALSE);
    if (decision->event == POLICY_NONE)  /* a raise or lowering that leads to it says more */
        report(decision, POLICY_PROBE, policy->target, probe, policy->target_rate, 0);
    return TRUE;
}

/* Whether the window before a round read a completion pool short of threads, with the machine's
 * CPUs at least half busy and its own threads' share known and below POOL_COMPUTES (they do not
 * keep the CPUs busy by themselves): requests whose work is partly in another process wait for
 * threads, and up to BUSY_THREADS_PER_CPU threads cost little.  A probe up there is refused only
 * on a loss (judge_cheap_up): one pair of a shared machine's windows can be 20 % off, and a
 * refusal on that noise left such pools at half the threads they needed.  Callbacks on one lock,
 * with another process keeping the CPUs busy, look the same and keep that many threads most of
 * the time: a bounded cost.  The CLR's own pool adds threads without measuring at all while its
 * CPUs are under 80 % busy. */
static BOOL threads_are_cheap(const struct policy *policy, BOOL saturated)
{
    return saturated && policy->work == POLICY_WORK_IN_SYSTEM && policy->cpu_share >= CPUS_COMPUTING &&
           policy->pool_share_known && !computing(policy);
}

/* Whether a round that did not raise the target holds rather than probing down: its threads cost
 * little (round_cheap, which only a raise changes) and it runs no more than BUSY_THREADS_PER_CPU,
 * so fewer threads would leave more requests waiting, and a probe down costs what it loses while
 * it is measured.  So for SHORT_HOLD_US of such rounds in a row, then the probes down of one round
 * go ahead: the pool may hold more threads than it needs (callbacks that wait on each other while
 * other processes keep the CPUs busy). */
static BOOL short_pool_holds(struct policy *policy, const struct policy_sample *sample)
{
    BOOL holds;

    assert(!policy->raised_in_round);
    holds = policy->round_cheap && policy->target <= policy->busy_cpus_threads &&
                 (!policy->short_since_us || sample->now_us - policy->short_since_us < SHORT_HOLD_US);

    if (!holds)
        policy->short_since_us = 0;
    else if (!policy->short_since_us)
        policy->short_since_us = sample->now_us;
    return holds;
}

/* A round probes up when the pool was short of threads in the window before, else down (or holds,
 * short_pool_holds). */
static void start_round(struct policy *policy, const struct policy_sample *sample, BOOL saturated,
                        struct policy_decision *decision)
{
    if (policy->phase == HOLDING)
        retry_rejected_ceiling(policy);
    policy->raised_in_round = FALSE;
    policy->round_best = policy->target_rate;
    policy->round_cheap = threads_are_cheap(policy, saturated);
    if (saturated && begin_probe(policy, sample, +1, decision))
        return;
    if (short_pool_holds(policy, sample) || !begin_probe(policy, sample, -1, decision))
        move_to(policy, sample, HOLDING, FALSE);
}

/* No probe up reaches `count` or above: a climb that gained little ends there (the count's gain
 * did not pay, ceiling_did_not_pay, is refuse_probe_up's to say).  A lower ceiling stays. */
static void lower_ceiling_to(struct policy *policy, LONG count)
{
    if (policy->ceiling && policy->ceiling <= count)
        return;
    policy->ceiling = count;
    policy->ceiling_demand = policy->demand;
    policy->ceiling_did_not_pay = FALSE;
}

/* The probe up paid: it is the target, and where the count below measured worse (gained), it is
 * not worth a probe down.  After a modest gain the climb ends: no count above is tried.  A climb
 * goes on only while its rounds' threads cost little (threads_are_cheap) or the gains say so. */
static void raise_target(struct policy *policy, const struct policy_sample *sample, double rate, BOOL modest,
                         BOOL gained, struct policy_decision *decision)
{
    report(decision, POLICY_RAISED, policy->target, policy->probe, windows_mean(&policy->at_target),
           windows_mean(&policy->at_probe));
    if (gained)
        policy->probe_down_limit = policy->target;
    policy->target = policy->probe;
    policy->raised_in_round = TRUE;
    policy->target_rate = rate;
    policy->round_best = max(policy->round_best, rate);
    if (modest)
        lower_ceiling_to(policy, policy->target + 1);
    policy->round_cheap = policy->round_cheap && threads_are_cheap(policy, TRUE);
    if (!begin_probe(policy, sample, +1, decision))
        move_to(policy, sample, HOLDING, TRUE);
}

/* The probe up did not pay.  Twice in a row, it is the ceiling; a round that has not raised the
 * target then probes down, unless short_pool_holds. */
static void refuse_probe_up(struct policy *policy, const struct policy_sample *sample,
                            struct policy_decision *decision)
{
    report(decision, POLICY_KEPT, policy->target, policy->probe, windows_mean(&policy->at_target),
           windows_mean(&policy->at_probe));
    if (policy->rejected_once == policy->probe)
    {
        policy->ceiling = policy->probe;
        policy->ceiling_demand = policy->demand;
        policy->ceiling_did_not_pay = TRUE;
    }
    else
        policy->rejected_once = policy->probe;
    policy->round_best = max(policy->round_best, windows_mean(&policy->at_probe));
    if (policy->raised_in_round || short_pool_holds(policy, sample) ||
        !begin_probe(policy, sample, -1, decision))
        move_to(policy, sample, HOLDING, policy->raised_in_round);
}

/* The probe down did not pay, by its rate or because it starved: no probe goes down to it again
 * until searches are forgotten, and none at all for WAITED_WINDOWS more while the threads wait. */
static void refuse_probe_down(struct policy *policy, const struct policy_sample *sample, double target_rate,
                              double probe_rate, struct policy_decision *decision)
{
    report(decision, POLICY_KEPT, policy->target, policy->probe, target_rate, probe_rate);
    policy->probe_down_limit = policy->probe;
    policy->waited_windows = 0;
    move_to(policy, sample, HOLDING, FALSE);
}

/* Whether the machine's own movement could have made a gain read as clear or as modest: the
 * windows at one of the two counts lie MACHINE_MOVED apart, and the gain divided or multiplied
 * by that spread falls on the other side of clear.  A gain larger than the movement stands. */
static BOOL machine_may_decide(const struct policy *policy, double ratio, double clear_gain)
{
    double moved = max(windows_spread(&policy->at_target), windows_spread(&policy->at_probe));

    return moved > MACHINE_MOVED && ratio / moved < clear_gain && ratio * moved >= clear_gain;
}

/* Starts the probe's measurement afresh, at the target. */
static void measure_again(struct policy *policy, const struct policy_sample *sample,
                          struct policy_decision *decision)
{
    report(decision, POLICY_PROBE, policy->target, policy->probe, windows_mean(&policy->at_target),
           windows_mean(&policy->at_probe));
    policy->remeasured++;
    windows_start(&policy->at_target);
    windows_start(&policy->at_probe);
    move_to(policy, sample, MEASURING_TARGET_AGAIN, FALSE);
}

/* While the callbacks wait, one pair raises at once on a gain in proportion to the threads added:
 * FAST_GAIN for a doubling. */
static double fast_gain(const struct policy *policy)
{
    return max(MODEST_GAIN, 1 + (FAST_GAIN - 1) * (policy->probe - policy->target) / (double)policy->target);
}

/* A probe up of a round_cheap pool to at most BUSY_THREADS_PER_CPU: refused on a clear loss, or a
 * small one over two pairs; one pair that lost less is measured again; otherwise raised.  The
 * climb goes on up to that bound (the counts there are as cheap), and past it only where every
 * such raise of the climb gained clearly; the count below stays open to probes down unless two
 * pairs or more showed at least a modest gain. */
static void judge_cheap_up(struct policy *policy, const struct policy_sample *sample, double rate, double ratio,
                           struct policy_decision *decision)
{
    if (ratio < CLEAR_LOSS || (pairs_measured(policy) > 1 && ratio < SMALL_LOSS))
        refuse_probe_up(policy, sample, decision);
    else if (pairs_measured(policy) == 1 && ratio < 1.0)
        move_to(policy, sample, MEASURING_TARGET_AGAIN, FALSE);
    else
    {
        /* One pair decides nothing more: it is as noisy here as anywhere. */
        BOOL gained = ratio >= MODEST_GAIN && pairs_measured(policy) > 1;

        if (ratio < CLEAR_GAIN)
            lower_ceiling_to(policy, policy->busy_cpus_threads + 1);
        raise_target(policy, sample, rate, FALSE, gained, decision);
    }
}

static void judge_up(struct policy *policy, const struct policy_sample *sample, double rate,
                     struct policy_decision *decision)
{
    double ratio = policy->at_probe.sum / policy->at_target.sum;
    double clear_gain = policy->probe >= policy->many_threads ? FAST_GAIN : CLEAR_GAIN;

    if (policy->round_cheap && policy->probe <= policy->busy_cpus_threads)
        judge_cheap_up(policy, sample, rate, ratio, decision);
    else if (pairs_measured(policy) == 1)
    {
        /* Where the system does not say how busy its CPUs are, the share reads 0. */
        if (ratio >= fast_gain(policy) && policy->cpu_share < CPUS_COMPUTING)
            raise_target(policy, sample, rate, FALSE, TRUE, decision);
        else if (ratio >= ONE_PAIR_REJECTS)
            move_to(policy, sample, MEASURING_TARGET_AGAIN, FALSE);
        else
            refuse_probe_up(policy, sample, decision);
    }
    else if (pairs_measured(policy) == 2 && fabs(ratio - CLEAR_GAIN) < CLEAR_GAIN_MARGIN)
        move_to(policy, sample, MEASURING_TARGET_AGAIN, FALSE);
    else if (ratio >= MODEST_GAIN)
    {
        if (machine_may_decide(policy, ratio, clear_gain) && policy->remeasured < REMEASURE_MAX)
            measure_again(policy, sample, decision);
        else
            raise_target(policy, sample, rate, ratio < clear_gain, TRUE, decision);
    }
    else
        refuse_probe_up(policy, sample, decision);
}

static void judge_down(struct policy *policy, const struct policy_sample *sample, double rate,
                       struct policy_decision *decision)
{
    double probe_mean = windows_mean(&policy->at_probe);

    if (pairs_measured(policy) == 2 && probe_mean >= SMALL_LOSS * policy->round_best)
    {
        report(decision, POLICY_LOWERED, policy->target, policy->probe, windows_mean(&policy->at_target),
               probe_mean);
        policy->target = policy->probe;
        policy->target_rate = rate;
        if (!begin_probe(policy, sample, -1, decision))
            move_to(policy, sample, HOLDING, TRUE);
        return;
    }
    if (pairs_measured(policy) == 1 && probe_mean >= CLEAR_LOSS * policy->round_best)
    {
        move_to(policy, sample, MEASURING_TARGET_AGAIN, FALSE);
        return;
    }
    refuse_probe_down(policy, sample, windows_mean(&policy->at_target), probe_mean, decision);
}

/* Whether a held target's window ends the hold: the hold is over, or the rate has shifted for
 * SHIFTED_WINDOWS in a row (then what earlier searches found may no longer hold). */
static BOOL hold_ends(struct policy *policy, const struct policy_sample *sample, double rate)
{
    if (fabs(rate - policy->held_rate) < RATE_SHIFT * policy->held_rate)
        policy->shifted_windows = 0;
    else if (++policy->shifted_windows >= SHIFTED_WINDOWS)
        forget_after_shift(policy);
    if (policy->shifted_windows)
        return policy->shifted_windows >= SHIFTED_WINDOWS;
    return sample->now_us >= policy->hold_until;
}

static void window_done(struct policy *policy, const struct policy_sample *sample, double rate,
                        LONG64 completions, BOOL saturated, struct policy_decision *decision)
{
    switch (policy->phase)
    {
    case MEASURING_TARGET:
        policy->target_rate = rate;
        if (completions < WINDOW_COMPLETIONS)
            return;  /* too little work to tell one count from another */
        policy->shifted_windows = 0;
        start_round(policy, sample, saturated, decision);
        return;
    case HOLDING:
        policy->target_rate = rate;
        if (completions < WINDOW_COMPLETIONS)
            return;
        if (hold_ends(policy, sample, rate))
            start_round(policy, sample, saturated, decision);
        return;
    case MEASURING_TARGET_AGAIN:
        if (completions < WINDOW_COMPLETIONS)
        {
            move_to(policy, sample, MEASURING_TARGET, FALSE);  /* the work went away */
            return;
        }
        windows_add(&policy->at_target, rate);
        policy->round_best = max(policy->round_best, rate);
        move_to(policy, sample, MEASURING_PROBE, FALSE);
        return;
    case MEASURING_PROBE:
        if (completions < WINDOW_COMPLETIONS && rate < WORK_GONE * policy->target_rate)
        {
            move_to(policy, sample, MEASURING_TARGET, FALSE);
            return;
        }
        windows_add(&policy->at_probe, rate);
        assert(policy->at_target.count == policy->at_probe.count);
        if (policy->direction > 0)
            judge_up(policy, sample, rate, decision);
        else
            judge_down(policy, sample, rate, decision);
        return;
    }
}

/* ---- every tick ---- */

/* The busy threads' callbacks waited since the last tick rather than computed (a CPU each, up to
 * all of them, if they had). */
static BOOL busy_threads_waited(const struct policy *policy, const struct policy_sample *sample)
{
    return callbacks_waited_since(policy, sample, &policy->last_cpu, min(1.0, sample->busy / (double)policy->cpus));
}

static double rate_since_jump(const struct policy *policy, const struct policy_sample *sample)
{
    return (sample->completions - policy->jump.completions) * 1e6 / (double)(sample->now_us - policy->jump.us);
}

/* Whether the last jump that was proved or free paid: after its threads had time to start, the
 * rate since it is up on the rate before it by JUMP_PAYS of the share of threads it added, and by
 * more than the noise of the fewer completions of the two (one over their square root, as for
 * counts of independent events): a rate that does not move passes a smaller bar on its noise at
 * one tick or another.  Callbacks that wait on something of their own, one at a time (a lock),
 * use as little CPU time, but more threads do not finish more of them. */
static BOOL last_jump_paid(const struct policy *policy, const struct policy_sample *sample)
{
    LONG64 counted = min(policy->jump.completions_before, sample->completions - policy->jump.completions);
    double gain = JUMP_PAYS * (policy->jump.to - policy->jump.from) / policy->jump.from;

    if (sample->now_us - policy->jump.us < SETTLE_US || counted <= 0)
        return FALSE;
    gain = max(gain, 1 / sqrt((double)counted));
    return rate_since_jump(policy, sample) >= policy->jump.rate_before * (1 + gain);
}

static void note_jump(struct policy *policy, const struct policy_sample *sample, LONG to)
{
    policy->jump.rate_before = policy->jump.count ? rate_since_jump(policy, sample) : 0;
    policy->jump.completions_before = policy->jump.count ? sample->completions - policy->jump.completions : 0;
    policy->jump.count++;
    policy->jump.us = sample->now_us;
    policy->jump.completions = sample->completions;
    policy->jump.from = sample->threads;
    policy->jump.to = to;
    policy->jump.small_added = 0;
}

/* Whether a jump of `added` threads for callbacks that wait may follow: the first FREE_JUMPS
 * SETTLE_US apart, so that the rate before each is measured over as long as a proof; then small
 * ones at once, while together they add no more than SMALL_JUMPS_SHARE of the threads of the last
 * jump that was free or proved; any other only when that jump paid, and it then takes its place.
 * So callbacks on one lock get about a quarter more threads than the free jumps gave them,
 * however few packets wait at a time, until packets stop waiting for JUMPS_END_US with a thread
 * idle. */
static BOOL jump(struct policy *policy, const struct policy_sample *sample, LONG added)
{
    if (policy->jump.count < FREE_JUMPS)
    {
        if (policy->jump.count && sample->now_us - policy->jump.us < SETTLE_US)
            return FALSE;
    }
    else if (policy->jump.small_added + added <= SMALL_JUMPS_SHARE * policy->jump.to)
    {
        policy->jump.small_added += added;
        return TRUE;
    }
    else if (!last_jump_paid(policy, sample))
        return FALSE;
    note_jump(policy, sample, sample->threads + added);
    return TRUE;
}

/* The busy threads' items computed since the last tick: this process used at least CPUS_COMPUTING
 * of the CPU time they would use computing, and the machine's CPUs were CPUS_BUSY busy (with a
 * CPU free, a thread more would run).  Only where the work is the process's own and its time is
 * read: elsewhere, other processes' work reads the same as the callbacks'. */
static BOOL busy_items_computed(const struct policy *policy, const struct policy_sample *sample)
{
    const struct cpu_reading *since = &policy->last_cpu;

    if (policy->work != POLICY_WORK_IN_PROCESS || sample->cpu_process < 0 || since->process < 0 ||
        sample->cpu_total <= since->total)
        return FALSE;
    return work_share_since(policy, sample, since) >= CPUS_COMPUTING * min(1.0, sample->busy / (double)policy->cpus) &&
           machine_share_since(sample, since) >= CPUS_BUSY;
}

/* No callback finished since the last tick: one more thread, for callbacks that block.  Items
 * that computed through the tick get it only once none has finished for COMPUTING_STARVED_US:
 * long items hold their threads for ticks, and one more thread only contends for the CPUs; the
 * wait bounds the cost of items that spin until an item behind them runs. */
static BOOL starving(struct policy *policy, const struct policy_sample *sample)
{
    if (sample->completions != policy->last_completions)
        return FALSE;
    if (!busy_items_computed(policy, sample))
        return TRUE;
    if (sample->now_us - policy->fed_us < COMPUTING_STARVED_US)
        return FALSE;
    policy->fed_us = sample->now_us;
    return TRUE;
}

/* Packets wait and every thread is inside a callback. */
static BOOL every_thread_busy_with_work_waiting(const struct policy_sample *sample)
{
    return sample->queued > 0 && sample->busy >= sample->threads;
}

/* The threads the pool lacks now, 0 if none: packets wait and every thread is inside a callback,
 * and either their callbacks wait rather than compute (busy_threads_waited: each thread
 * added takes a waiting packet: a thread for every WAITING_PER_THREAD of them, at most a
 * doubling, when jump() allows it, from the second such tick in a row) or the pool starves
 * (starving(): one more thread). */
static LONG threads_lacking(struct policy *policy, const struct policy_sample *sample)
{
    if (!policy->sampled || !every_thread_busy_with_work_waiting(sample) || sample->threads >= sample->max)
    {
        if (sample->now_us - policy->lacked_us >= JUMPS_END_US && sample->busy < sample->threads)
            policy->jump.count = 0;
        policy->waited_ticks = 0;
        return 0;
    }
    policy->lacked_us = sample->now_us;
    policy->waited_ticks = busy_threads_waited(policy, sample) ? policy->waited_ticks + 1 : 0;
    if (policy->waited_ticks >= WAITED_TICKS_TO_JUMP)
    {
        LONG added = min((sample->queued + WAITING_PER_THREAD - 1) / WAITING_PER_THREAD, sample->threads);

        if (jump(policy, sample, added))
            return added;
    }
    return starving(policy, sample);
}

void policy_resume(struct policy *policy, const struct policy_sample *sample)
{
    if (probing(policy))
        move_to(policy, sample, MEASURING_TARGET, FALSE);  /* a probe's windows would span the idle spell */
    else
        restart_window(policy, sample, FALSE);  /* a hold goes on */
    policy->shifted_windows = 0;  /* the windows before the spell and after it are not in a row */
    policy->short_since_us = 0;   /* nor the rounds that held */
    policy->sampled = FALSE;
}

void policy_update(struct policy *policy, const struct policy_sample *sample, struct policy_decision *decision)
{
    double rate;
    LONG64 completions;
    BOOL saturated;
    LONG target, lacking;
    struct jumps jumps_before;

    assert(sample->floor >= 1 && sample->floor <= sample->max);
    decision->event = POLICY_NONE;
    if ((target = clamp(policy->target, sample->floor, sample->max)) != policy->target ||
        (probing(policy) && clamp(policy->probe, sample->floor, sample->max) != policy->probe))
    {
        /* The host moved the limits: start over from inside them. */
        policy->target = target;
        forget_searches(policy);
        move_to(policy, sample, MEASURING_TARGET, TRUE);
    }
    jumps_before = policy->jump;
    lacking = threads_lacking(policy, sample);
    if (lacking && policy->phase == MEASURING_PROBE && policy->direction < 0)
    {
        /* The probe down starves: that count is too few, whatever the rate would say.  The pool
         * goes back to the target, not to a jump from the probe. */
        policy->jump = jumps_before;
        refuse_probe_down(policy, sample, policy->target_rate, 0, decision);
    }
    else if (lacking)
    {
        LONG from = current_count(policy);

        policy->target = clamp(max(from, sample->threads + lacking), sample->floor, sample->max);
        forget_searches(policy);
        move_to(policy, sample, MEASURING_TARGET, TRUE);
        report(decision, POLICY_STARVING, sample->threads, policy->target, 0, 0);
    }
    else if (window_ended(policy, sample, &rate, &completions, &saturated))
        window_done(policy, sample, rate, completions, saturated, decision);
    if (!policy->sampled)
        policy->measure_from = sample->now_us + STARTUP_US;
    if (!policy->sampled || sample->completions != policy->last_completions ||
        !every_thread_busy_with_work_waiting(sample))
        policy->fed_us = sample->now_us;
    policy->sampled = TRUE;
    policy->last_completions = sample->completions;
    policy->last_cpu = cpu_reading_of(sample);
    decision->target = current_count(policy);
    decision->cpu_share = policy->cpu_share;
    decision->work_share = policy->work_share;
    decision->pool_share = policy->pool_share;
    assert(decision->target >= sample->floor && decision->target <= sample->max);
}
