/* The thread-count controller. It finds the count by measuring, as hill climbing does, but with
 * coarse steps that a noisy, shared machine can resolve: from the current target it tries twice as
 * many threads for one measurement window, then half as many, and keeps a change only when the
 * completion rate says so. Up: 50 % better in one window pair while the CPUs are less than half
 * busy (blocking callbacks), or 5 % better over two, because one pair can be 20 % off on a shared
 * machine. A gain that the machine's own movement could have made read as clear or as modest
 * (below), the rate at one count moving by a quarter or more, is measured again, up to twice: a
 * slow spell of the machine began or ended. Down: over two window pairs, no worse than 97 % of the
 * best rate of the round, and not to a count it has climbed from (just measured to do worse) until
 * the rate shifts. After a modest gain (5-20 % over two pairs, or over three when two come within
 * 7 % of 20 %), or a probe up that did not pay in two searches, it does not try more threads
 * (after a gain) or that count or more (after a probe) again until the rate shifts: returns
 * diminish, every probe costs threads, and a count that a doubling improves by less than 11 % is
 * already within 0.9 of the doubled count's rate. A count that did not pay is tried once more
 * after each hold, though, because the machine may have been busy with something else while it was
 * measured. From 8 threads per CPU, only a 50 % gain lets it climb on: that many threads pay when
 * callbacks wait, and then a doubling nearly doubles the rate, while smaller gains there come and
 * go with the scheduler (measured under Wine on 2 CPUs: 16 threads ran 3 us callbacks at 103,700/s
 * in one round of a benchmark, and at 81,100-82,500/s in its two others). Nor does it try more
 * than 8 threads per CPU while the machine's CPUs were 90 % busy in the window before, as .NET's
 * thread pool adds no threads when its CPUs are busy: then more threads cannot help, and a gain
 * that the rate shows comes from the machine, not the count. One search is not enough to give up
 * on a count: a single window pair can be 10 % off, which is as much as a doubling may gain. A
 * probe down that cost throughput is not repeated until the rate moves by 30 % for two windows in
 * a row, the limits change or the pool starves; a shift with as much work in flight and the CPUs
 * still at least half busy forgets only that, not the ceiling above (see rate_shifted). Between
 * searches it holds the target for 0.5 s, doubling up to 8 s while nothing changes, and searches
 * again at once when the rate shifts by 30 %. A probe up is tried only when the pool was short of
 * threads in the window before (packets queued or every thread busy), and never above the most
 * work seen at once in that window (threads busy plus packets queued): more threads would find
 * nothing to do.
 *
 * Starvation overrides all of it: packets queued, every thread inside a callback and no callback
 * started since the last tick means the callbacks block, so the target grows by one at once, every
 * tick, up to the maximum. */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include "policy.h"

#define WINDOW_US           150000   /* the shortest measurement window */
#define WINDOW_MAX_US      1000000   /* the longest, however few completions it sees */
#define WINDOW_COMPLETIONS       8   /* a window ends once it has seen this many */
#define SETTLE_US            40000   /* after a change, time for threads to start or leave */
#define FAST_GAIN             1.50   /* in one window pair while the CPUs wait: no second pair
                                      * needed; from `crowded` threads, the least clear gain */
#define CLEAR_GAIN            1.20   /* over two or three: larger counts may pay too */
#define AMBIGUOUS             0.07   /* two pairs this close to CLEAR_GAIN: measure a third */
#define MOVED                 1.25   /* windows at one count this far apart: the machine moved */
#define REMEASURE_MAX            2   /* ... then the gain is taken as measured, not to stall */
#define CROWDED_PER_CPU          8
#define GAIN                  1.05
#define UNCLEAR               0.95   /* one pair below it rejects a probe up at once */
#define CLEAR_LOSS            0.85
#define LOSS                  0.97
#define HOLD_MIN_US         500000
#define HOLD_MAX_US        8000000
#define SHIFT                 0.30
#define SATURATED_SHARE       0.25   /* of a window's ticks, for a probe up to be worth trying */
#define CPUS_BUSY             0.90   /* of the machine's CPU time in a window: no time to spare */
#define CPUS_COMPUTING        0.50   /* ... callbacks that wait leave more idle (21 % busy measured
                                      * with one in ten blocking, 75-85 % with pipe echo) */

/* The windows measured at one count for one probe. */
struct windows
{
    int count;
    double sum, least, most;
};

enum phase
{
    MEASURE_BASE,           /* the rate at the target */
    MEASURE_PROBE,          /* the rate at the probe */
    MEASURE_REBASE,         /* the target again, for a second window pair */
};

struct policy
{
    LONG target;
    LONG crowded;           /* threads from which only a FAST_GAIN lets the target climb on */
    enum phase phase;
    LONG probe;
    int direction;          /* of the probe: +1 or -1 */
    BOOL moved_up;          /* in this round */
    struct windows at_target, at_probe;
    int remeasured;         /* times this probe was measured afresh because the machine moved */
    double base_rate;       /* the last window at the target */
    double round_best;      /* the best window of this round */

    LONGLONG window_start;  /* 0: the window starts at the first tick after settle_until */
    LONG64 window_completions;
    LONG window_ticks, window_saturated_ticks;
    LONG window_demand;     /* the most busy + queued seen in the window */
    LONG64 window_cpu_idle, window_cpu_total;
    double cpu_share;       /* of the machine's CPU time in use, in the last window that ended */
    LONG demand;            /* ... in the last window that ended */
    LONG ceiling;           /* probes up stay below it; 0: none */
    LONG ceiling_demand;    /* the demand when it was set */
    BOOL ceiling_rejected;  /* the ceiling is a count that did not pay, rather than one after a modest gain */
    LONG doubted;           /* a probe up that did not pay once; the second time it sets the ceiling */
    LONG bottom;            /* probes down stay above it; 0: none */
    LONGLONG settle_until;

    BOOL settled;           /* between searches */
    LONGLONG hold_until;
    LONGLONG hold;
    double settled_rate;
    int shifted_windows;    /* consecutive windows 30 % away from settled_rate */

    BOOL sampled;
    LONG64 last_completions;
};

struct policy *policy_create(LONG initial_target, LONG cpus)
{
    struct policy *policy = calloc(1, sizeof(*policy));

    assert(initial_target >= 1 && cpus >= 1);
    if (!policy)
        return NULL;
    policy->target = initial_target;
    policy->crowded = CROWDED_PER_CPU * cpus;
    policy->hold = HOLD_MIN_US;
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

static LONG clamp(LONG value, LONG floor, LONG max)
{
    return value < floor ? floor : value > max ? max : value;
}

static LONG current_count(const struct policy *policy)
{
    return policy->phase == MEASURE_PROBE ? policy->probe : policy->target;
}

/* The next window starts after the pool has had time to reach the new count. */
static void restart_window(struct policy *policy, const struct policy_sample *sample, BOOL count_changed)
{
    policy->window_start = 0;
    policy->settle_until = sample->now_us + (count_changed ? SETTLE_US : 0);
}

static void begin_window(struct policy *policy, const struct policy_sample *sample)
{
    policy->window_start = sample->now_us;
    policy->window_completions = sample->completions;
    policy->window_ticks = policy->window_saturated_ticks = 0;
    policy->window_demand = 0;
    policy->window_cpu_idle = sample->cpu_idle;
    policy->window_cpu_total = sample->cpu_total;
}

/* Returns TRUE with the rate when the window has ended; the next one starts at once. */
static BOOL window_ended(struct policy *policy, const struct policy_sample *sample, double *rate,
                         LONG64 *completions, BOOL *saturated)
{
    LONGLONG elapsed;

    if (!policy->window_start)
    {
        if (sample->now_us >= policy->settle_until)
            begin_window(policy, sample);
        return FALSE;
    }
    policy->window_ticks++;
    if (sample->queued > 0 || sample->busy >= sample->threads)
        policy->window_saturated_ticks++;
    policy->window_demand = max(policy->window_demand, sample->busy + sample->queued);
    elapsed = sample->now_us - policy->window_start;
    *completions = sample->completions - policy->window_completions;
    if (elapsed < WINDOW_US || (*completions < WINDOW_COMPLETIONS && elapsed < WINDOW_MAX_US))
        return FALSE;
    *rate = *completions * 1e6 / (double)elapsed;
    *saturated = policy->window_saturated_ticks >= SATURATED_SHARE * policy->window_ticks;
    policy->cpu_share = sample->cpu_total > policy->window_cpu_total
                            ? 1 - (sample->cpu_idle - policy->window_cpu_idle) /
                                      (double)(sample->cpu_total - policy->window_cpu_total)
                            : 0;
    policy->demand = policy->window_demand;
    begin_window(policy, sample);
    return TRUE;
}

static void forget_searches(struct policy *policy)
{
    policy->ceiling = policy->bottom = policy->doubted = 0;
    policy->ceiling_rejected = FALSE;
}

/* The rate moved by 30 % for two windows.  With as much work in flight as when the ceiling was
 * set and the callbacks still computing rather than waiting, the machine moved (or the callbacks'
 * CPU time), and more threads pay no better than they did (or than a modest gain said): only
 * fewer threads may do now (measured under Wine on 2 CPUs: when a slow spell began or ended, pipe
 * echo with 16 connections probed 16 threads, over its bound of 10).  Otherwise the work changed,
 * and what did not pay before may now.  Work in flight that grows by less than twice counts as the
 * same work. */
static void rate_shifted(struct policy *policy)
{
    if (policy->cpu_share >= CPUS_COMPUTING && policy->demand < 2 * policy->ceiling_demand &&
        2 * policy->demand > policy->ceiling_demand)
    {
        policy->bottom = 0;
        return;
    }
    forget_searches(policy);
}

/* A count that did not pay is tried once more after each hold.  Something else on the machine
 * may have taken what it gains while it was measured, and then the rate at the target does not
 * move when the machine is free again (measured under Wine on 2 CPUs: for seconds at a time 8,
 * 16 and 64 threads ran 3 us callbacks at 63,000-69,000/s, as 4 threads always do, and at
 * 77,000-85,000/s otherwise), so nothing else would bring the pool back up.  One more rejection
 * sets the ceiling again, and the hold doubles unless the round moved the target. */
static void retry_rejected_ceiling(struct policy *policy)
{
    if (!policy->ceiling_rejected)
        return;
    policy->doubted = policy->ceiling;
    policy->ceiling = 0;
    policy->ceiling_rejected = FALSE;
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

static void settle(struct policy *policy, const struct policy_sample *sample, BOOL changed)
{
    policy->phase = MEASURE_BASE;
    policy->settled = TRUE;
    policy->hold = changed ? HOLD_MIN_US : min(policy->hold * 2, (LONGLONG)HOLD_MAX_US);
    policy->hold_until = sample->now_us + policy->hold;
    policy->settled_rate = policy->base_rate;
}

/* Starts measuring `direction` from the target; FALSE if the limits leave no room. */
static BOOL begin_probe(struct policy *policy, const struct policy_sample *sample, int direction,
                        struct policy_decision *decision)
{
    LONG probe;

    if (direction > 0)
        probe = clamp(min(max(policy->target * 2, policy->target + 1), policy->demand), sample->floor, sample->max);
    else
        probe = clamp(policy->target / 2, sample->floor, sample->max);
    if (direction > 0 ? probe <= policy->target || (policy->ceiling && probe >= policy->ceiling) ||
                            (probe > policy->crowded && policy->cpu_share > CPUS_BUSY)
                      : probe >= policy->target || probe <= policy->bottom)
        return FALSE;
    policy->phase = MEASURE_PROBE;
    policy->probe = probe;
    policy->direction = direction;
    policy->remeasured = 0;
    windows_start(&policy->at_target);
    windows_add(&policy->at_target, policy->base_rate);
    windows_start(&policy->at_probe);
    restart_window(policy, sample, TRUE);
    if (decision->event == POLICY_NONE)  /* a raise or lowering that leads to it says more */
        report(decision, POLICY_PROBE, policy->target, probe, policy->base_rate, 0);
    return TRUE;
}

static void start_round(struct policy *policy, const struct policy_sample *sample, BOOL saturated,
                        struct policy_decision *decision)
{
    if (policy->settled)
        retry_rejected_ceiling(policy);
    policy->settled = FALSE;
    policy->moved_up = FALSE;
    policy->round_best = policy->base_rate;
    if (saturated && begin_probe(policy, sample, +1, decision))
        return;
    if (begin_probe(policy, sample, -1, decision))
        return;
    settle(policy, sample, FALSE);
}

static void another_pair(struct policy *policy, const struct policy_sample *sample)
{
    policy->phase = MEASURE_REBASE;
    restart_window(policy, sample, TRUE);
}

static void raise_target(struct policy *policy, const struct policy_sample *sample, double rate, BOOL modest,
                         struct policy_decision *decision)
{
    report(decision, POLICY_RAISED, policy->target, policy->probe, windows_mean(&policy->at_target),
           windows_mean(&policy->at_probe));
    policy->bottom = policy->target;  /* just measured to do worse: not worth a probe down */
    policy->target = policy->probe;
    policy->moved_up = TRUE;
    policy->base_rate = rate;
    policy->round_best = max(policy->round_best, rate);
    if (modest && (!policy->ceiling || policy->target + 1 < policy->ceiling))
    {
        /* The next doubling will not pay, nor a smaller step where the work in flight is fewer
         * (TCP echo with 16 connections went from a modest raise to 16 threads on to a probe of
         * 24, over its bound of 18). */
        policy->ceiling = policy->target + 1;
        policy->ceiling_demand = policy->demand;
        policy->ceiling_rejected = FALSE;
    }
    if (!begin_probe(policy, sample, +1, decision))
        settle(policy, sample, TRUE);
}

static void keep_target_below_probe(struct policy *policy, const struct policy_sample *sample,
                                    struct policy_decision *decision)
{
    report(decision, POLICY_KEPT, policy->target, policy->probe, windows_mean(&policy->at_target),
           windows_mean(&policy->at_probe));
    if (policy->doubted == policy->probe)
    {
        policy->ceiling = policy->probe;
        policy->ceiling_demand = policy->demand;
        policy->ceiling_rejected = TRUE;
    }
    else
        policy->doubted = policy->probe;  /* one search is not enough to give up on it */
    policy->round_best = max(policy->round_best, windows_mean(&policy->at_probe));
    policy->phase = MEASURE_BASE;
    if (policy->moved_up || !begin_probe(policy, sample, -1, decision))
    {
        restart_window(policy, sample, TRUE);
        settle(policy, sample, policy->moved_up);
    }
}

/* Each pair is a window at the target, then one at the probe. */
static int pairs_measured(const struct policy *policy)
{
    return policy->at_probe.count;
}

/* Whether the machine's own movement could have made a gain read as clear or as modest: the
 * rate at one of the two counts moved by a quarter or more while the probe was measured, and the
 * gain divided or multiplied by that movement falls on the other side of clear.  A slow spell of
 * the machine began or ended then, and the ratio says as much about it as about the count
 * (measured under Wine on 2 CPUs: pipe echo with 16 connections ran 4 threads at 0.70 of their
 * rate for seconds at a time, and 8 threads against that read as a gain of 50 %, where 8 gain
 * 8-10 % and 16 lose).  Windows next to each other at one count were within 14 % of each other
 * in 9 of 10.  A gain larger than the movement stands: 2 threads' first windows in a run read up
 * to 1.6 times the later ones, and 4 threads did 2.5 times as well as 2. */
static BOOL machine_may_decide(const struct policy *policy, double ratio, double clear_gain)
{
    double moved = max(windows_spread(&policy->at_target), windows_spread(&policy->at_probe));

    return moved > MOVED && ratio / moved < clear_gain && ratio * moved >= clear_gain;
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
    another_pair(policy, sample);
}

static void judge_up(struct policy *policy, const struct policy_sample *sample, double rate,
                     struct policy_decision *decision)
{
    double ratio = policy->at_probe.sum / policy->at_target.sum;
    double clear_gain = policy->probe >= policy->crowded ? FAST_GAIN : CLEAR_GAIN;

    if (pairs_measured(policy) == 1)
    {
        /* One pair cannot tell a slow spell from a gain, but callbacks that wait gain this much
         * from each doubling, and the pool starves meanwhile.  Where the system does not say
         * how busy its CPUs are, the share reads 0 and one pair does, as it did for all work. */
        if (ratio >= FAST_GAIN && policy->cpu_share < CPUS_COMPUTING)
            raise_target(policy, sample, rate, FALSE, decision);
        else if (ratio >= UNCLEAR)
            another_pair(policy, sample);
        else
            keep_target_below_probe(policy, sample, decision);
    }
    else if (pairs_measured(policy) == 2 && fabs(ratio - CLEAR_GAIN) < AMBIGUOUS)
        another_pair(policy, sample);  /* whether to go on climbing: a third pair decides */
    else if (ratio >= GAIN)
    {
        if (machine_may_decide(policy, ratio, clear_gain) && policy->remeasured < REMEASURE_MAX)
            measure_again(policy, sample, decision);
        else
            raise_target(policy, sample, rate, ratio < clear_gain, decision);
    }
    else
        keep_target_below_probe(policy, sample, decision);
}

static void judge_down(struct policy *policy, const struct policy_sample *sample, double rate,
                       struct policy_decision *decision)
{
    double probe_mean = windows_mean(&policy->at_probe);

    if (pairs_measured(policy) == 2 && probe_mean >= LOSS * policy->round_best)
    {
        report(decision, POLICY_LOWERED, policy->target, policy->probe, windows_mean(&policy->at_target),
               probe_mean);
        policy->target = policy->probe;
        policy->base_rate = rate;
        if (!begin_probe(policy, sample, -1, decision))
            settle(policy, sample, TRUE);
        return;
    }
    if (pairs_measured(policy) == 1 && probe_mean >= CLEAR_LOSS * policy->round_best)
    {
        another_pair(policy, sample);
        return;
    }
    report(decision, POLICY_KEPT, policy->target, policy->probe, windows_mean(&policy->at_target), probe_mean);
    policy->bottom = policy->probe;
    restart_window(policy, sample, TRUE);
    settle(policy, sample, FALSE);
}

/* The work went away rather than the count being wrong: no count can be judged on that window,
 * so the round starts over from a window at the target. */
static void measure_base_again(struct policy *policy, const struct policy_sample *sample, BOOL count_changed)
{
    policy->phase = MEASURE_BASE;
    restart_window(policy, sample, count_changed);
}

static void window_done(struct policy *policy, const struct policy_sample *sample, double rate,
                        LONG64 completions, BOOL saturated, struct policy_decision *decision)
{
    switch (policy->phase)
    {
    case MEASURE_BASE:
        policy->base_rate = rate;
        if (completions < WINDOW_COMPLETIONS)
            return;  /* too little work to tell one count from another */
        if (!policy->settled || fabs(rate - policy->settled_rate) < SHIFT * policy->settled_rate)
            policy->shifted_windows = 0;
        else if (++policy->shifted_windows >= 2)
            rate_shifted(policy);
        if (policy->settled && !policy->shifted_windows && sample->now_us < policy->hold_until)
            return;
        if (policy->settled && policy->shifted_windows == 1)
            return;  /* one window is noise until the next agrees */
        start_round(policy, sample, saturated, decision);
        return;
    case MEASURE_REBASE:
        if (completions < WINDOW_COMPLETIONS)
        {
            measure_base_again(policy, sample, FALSE);
            return;
        }
        windows_add(&policy->at_target, rate);
        policy->round_best = max(policy->round_best, rate);
        policy->phase = MEASURE_PROBE;
        restart_window(policy, sample, TRUE);
        return;
    case MEASURE_PROBE:
        if (completions < WINDOW_COMPLETIONS && rate < 0.5 * policy->base_rate)
        {
            measure_base_again(policy, sample, TRUE);
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

static BOOL starving(const struct policy *policy, const struct policy_sample *sample)
{
    return policy->sampled && sample->queued > 0 && sample->busy >= sample->threads &&
           sample->completions == policy->last_completions && sample->threads < sample->max;
}

void policy_update(struct policy *policy, const struct policy_sample *sample, struct policy_decision *decision)
{
    double rate;
    LONG64 completions;
    BOOL saturated;
    LONG target;

    assert(sample->floor >= 1 && sample->floor <= sample->max);
    decision->event = POLICY_NONE;
    if ((target = clamp(policy->target, sample->floor, sample->max)) != policy->target ||
        (policy->phase != MEASURE_BASE && clamp(policy->probe, sample->floor, sample->max) != policy->probe))
    {
        /* The host moved the limits: start over from inside them. */
        policy->target = target;
        forget_searches(policy);
        policy->phase = MEASURE_BASE;
        policy->settled = FALSE;
        restart_window(policy, sample, TRUE);
    }
    if (starving(policy, sample) && policy->phase == MEASURE_PROBE && policy->direction < 0)
    {
        /* The probe down starves: that count is too few, whatever the rate would say. */
        report(decision, POLICY_KEPT, policy->target, policy->probe, policy->base_rate, 0);
        policy->bottom = policy->probe;
        restart_window(policy, sample, TRUE);
        settle(policy, sample, FALSE);
    }
    else if (starving(policy, sample))
    {
        LONG from = current_count(policy);

        policy->target = clamp(max(from, sample->threads + 1), sample->floor, sample->max);
        forget_searches(policy);
        policy->phase = MEASURE_BASE;
        policy->settled = FALSE;
        restart_window(policy, sample, TRUE);
        report(decision, POLICY_STARVING, sample->threads, policy->target, 0, 0);
    }
    else if (window_ended(policy, sample, &rate, &completions, &saturated))
        window_done(policy, sample, rate, completions, saturated, decision);
    policy->sampled = TRUE;
    policy->last_completions = sample->completions;
    decision->target = current_count(policy);
    assert(decision->target >= sample->floor && decision->target <= sample->max);
}
