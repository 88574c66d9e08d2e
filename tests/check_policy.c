/* Unit tests of the thread-count controller (src/policy.c) against modelled workloads: the
 * completion rate as a function of the thread count, with noise, on a simulated clock.  The
 * shapes are those measured under Wine (doc/thread-policy.md): rising then flat, flat from a few
 * threads, falling, and linear (blocking callbacks).  A model passes on the benchmark's criteria:
 * a rate within GOOD_SHARE of the best fixed pool, and a peak within bound_on_peak(). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "case_runner.h"
#include "policy.h"

#define CPUS 2
#define GOOD_SHARE 0.9          /* of the best fixed pool's rate */

struct model
{
    const char *name;
    double (*rate)(const struct model *model, LONG threads);
    const double *points;       /* rate at 1, 2, 4, ... 512 threads */
    BOOL saturated;             /* packets wait whenever the pool is short of threads */
    double noise;               /* relative, per tick */
    LONG in_flight;             /* requests: those without a thread wait on the port */
    double drift;               /* relative, over 100 ms stretches: a shared machine */
    double slow_spells;         /* the machine runs at SLOW_SPELL of its speed for spells of
                                 * random length, this share of the time */
    double waits_from;          /* seconds: from then on callbacks wait rather than compute; 0: never
                                 * (models without points wait throughout) */
    double cpus_busy;           /* the share of the CPUs in use while they compute; 0: a CPU per thread */
    const double *cpu_points;   /* else, where given, that share at 1, 2, 4, ... 512 threads */
    BOOL own_cpu_time;          /* the CPU time in use is the pool's own (callbacks that compute); else
                                 * the pool's is not known */
    double startup_seconds;     /* the host starting: until then the CPU time in use is not the pool's */
    double pool_part;           /* with own_cpu_time, the pool's threads' part of the CPU time in use (I/O:
                                 * the rest is another process's, wineserver's); 0: all of it */
    LONG from_threads;          /* the pool's target and threads at the start; 0: the CLR's default limits */
    enum policy_work work;      /* completions (the default) or work items, whose time the machine's in use
                                 * stands for */
};
#define SLOW_SPELL 0.65

/* Between the points at 1, 2, 4, ... 512 threads. */
static double interpolate(const double *points, LONG threads)
{
    double position = log2((double)threads);
    int low = (int)floor(position);

    if (low >= 9)
        return points[9];
    return points[low] + (points[low + 1] - points[low]) * (position - low);
}

static double rate_from_points(const struct model *model, LONG threads)
{
    return interpolate(model->points, threads);
}

/* Blocking callbacks: 64 requests in flight, each callback blocks 50 ms. */
static double rate_blocking(const struct model *model, LONG threads)
{
    (void)model;
    return threads < 64 ? threads * 20.0 : 1280.0;
}

struct outcome
{
    LONG final_target;
    LONG peak;
    double final_rate;          /* of the model at the final target */
    double mean_rate;           /* over the second half of the run */
    double rate_after_2s;       /* mean over seconds 2-4 */
    LONG ticks_back_down;       /* at a count the target had been raised from, or fewer */
    LONG first_tick_below_start; /* the first tick whose target was below the pool's start; -1: none */
    LONG least_after_start;     /* the least target after the first tick below the start; 0: none */
    LONG last_tick_below_start; /* the last tick whose target was below the pool's start; -1: none */
    LONG ticks_back_at_start;   /* ticks at the start's count or more after the first below it */
    LONG times_below_start;     /* how many times the target went below the pool's start, a second
                                 * or more after it last was (a probe's pairs are one time) */
    LONG ticks;
    LONG pool_cpu_reads;        /* ticks whose sample read the pool's CPU time */
    LONG64 targets_sum;         /* of the target after each tick: two runs that decide alike have the same */
};

static ULONG noise_state;
static double simulated_seconds;
/* The pool's CPU time in every sample, not only where policy_reads_pool_cpu asks for it. */
static BOOL pool_cpu_every_tick;

/* Uniform in [-1, 1). */
static double next_noise(void)
{
    noise_state = noise_state * 1103515245 + 12345;
    return ((noise_state >> 8) & 0xffff) / 32768.0 - 1.0;
}

static double noisy(double value, double noise)
{
    return value * (1.0 + noise * next_noise());
}

/* Whether the model's callbacks have begun to wait, at this point of the simulated run. */
static BOOL waiting_now(const struct model *model)
{
    return model->waits_from && simulated_seconds >= model->waits_from;
}

/* The share of the machine's CPUs in use: callbacks that compute keep a CPU busy per thread;
 * those that block, hardly any. */
static double cpu_share(const struct model *model, LONG threads)
{
    if (!model->points || waiting_now(model))
        return 0.1;
    if (model->cpus_busy)
        return model->cpus_busy;
    if (model->cpu_points)
        return interpolate(model->cpu_points, threads);
    return min(1.0, threads / (double)CPUS);
}

/* Runs the controller against the model, the pool following its target within a tick.  seed:
 * where the noise starts, so that each run can be replayed. */
static void simulate(const struct model *model, ULONG seed, LONG floor, LONG max, double seconds,
                     struct outcome *out)
{
    struct policy *policy = policy_create(model->from_threads ? model->from_threads : max(floor, CPUS), CPUS,
                                          model->work);
    struct policy_sample sample = { 0 };
    struct policy_decision decision;
    double completions = 0, second_half = 0, early = 0;
    LONG threads = model->from_threads ? model->from_threads : max(floor, 1), i, raised_from = 0;
    LONG ticks = (LONG)(seconds * 1000 / POLICY_TICK_MS);
    double drift = 1.0, cpu_idle = 0, cpu_total = 0, cpu_pool = 0;
    BOOL slow = FALSE;

    noise_state = seed;
    out->peak = threads;
    out->ticks_back_down = 0;
    out->first_tick_below_start = -1;
    out->least_after_start = 0;
    out->last_tick_below_start = -1;
    out->ticks_back_at_start = 0;
    out->times_below_start = 0;
    out->ticks = ticks;
    out->pool_cpu_reads = 0;
    out->targets_sum = 0;
    for (i = 0; i < ticks; i++)
    {
        double rate;

        simulated_seconds = i * POLICY_TICK_MS / 1000.0;
        if (i % (100 / POLICY_TICK_MS) == 0)
        {
            drift = 1.0 + model->drift * next_noise();
            /* A spell ends or begins about once a second. */
            if (model->slow_spells && next_noise() > 0.8)
                slow = next_noise() < 2 * model->slow_spells - 1;
        }
        rate = drift * (slow ? SLOW_SPELL : 1.0) * noisy(model->rate(model, threads), model->noise);

        completions += rate * POLICY_TICK_MS / 1000.0;
        cpu_total += CPUS * POLICY_TICK_MS * 10000.0;
        cpu_idle += CPUS * POLICY_TICK_MS * 10000.0 * (1 - cpu_share(model, threads));
        if (simulated_seconds >= model->startup_seconds)
            cpu_pool += CPUS * POLICY_TICK_MS * 10000.0 * cpu_share(model, threads) *
                        (model->pool_part ? model->pool_part : 1.0);
        if (i >= ticks / 2)
            second_half += rate;
        if (i * POLICY_TICK_MS >= 2000 && i * POLICY_TICK_MS < 4000)
            early += rate;
        sample.now_us = (LONGLONG)(i + 1) * POLICY_TICK_MS * 1000;
        sample.completions = (LONG64)completions;
        sample.threads = threads;
        sample.busy = model->saturated ? min(threads, model->in_flight) : threads / 2;
        sample.queued = model->saturated ? max(model->in_flight - threads, 0) : 0;
        sample.floor = floor;
        sample.max = max;
        sample.cpu_idle = (LONG64)cpu_idle;
        sample.cpu_total = (LONG64)cpu_total;
        sample.cpu_process = -1;
        sample.cpu_pool = POLICY_POOL_CPU_NOT_READ;
        if (pool_cpu_every_tick || policy_reads_pool_cpu(policy, sample.now_us, sample.completions))
        {
            sample.cpu_pool = model->own_cpu_time ? (LONG64)cpu_pool : -1;
            out->pool_cpu_reads++;
        }
        policy_update(policy, &sample, &decision);
        out->targets_sum += decision.target;
        ck_assert_msg(decision.target >= floor && decision.target <= max, "%s, seed %lu, tick %ld: target %ld "
                      "outside the limits %ld-%ld", model->name, seed, i, decision.target, floor, max);
        threads = decision.target;  /* the pool follows within a tick */
        if (threads > out->peak)
            out->peak = threads;
        if (decision.event == POLICY_RAISED)
            raised_from = max(raised_from, decision.from);
        if (threads <= raised_from)
            out->ticks_back_down++;
        if (model->from_threads && threads < model->from_threads)
        {
            if (out->first_tick_below_start < 0)
                out->first_tick_below_start = i;
            if (out->last_tick_below_start < 0 || i - out->last_tick_below_start > 1000 / POLICY_TICK_MS)
                out->times_below_start++;
            out->last_tick_below_start = i;
        }
        else if (out->first_tick_below_start >= 0)
            out->ticks_back_at_start++;
        if (out->first_tick_below_start >= 0)
            out->least_after_start = out->least_after_start ? min(out->least_after_start, threads) : threads;
    }
    out->final_target = threads;
    out->final_rate = model->rate(model, threads);
    out->mean_rate = second_half / (ticks - ticks / 2);
    out->rate_after_2s = early / (2000 / POLICY_TICK_MS);
    policy_destroy(policy);
}

/* The fixed pools that the benchmark compares with, in CPUs. */
static const LONG fixed_pool_multiples[] = { 1, 2, 4, 8, 32 };

/* The best of the fixed pools, and the smallest of them within GOOD_SHARE of it. */
static void fixed_pools(const struct model *model, double *best, LONG *smallest_good)
{
    size_t i;

    *best = 0;
    for (i = 0; i < ARRAYSIZE(fixed_pool_multiples); i++)
        *best = max(*best, model->rate(model, fixed_pool_multiples[i] * CPUS));
    for (i = 0; i < ARRAYSIZE(fixed_pool_multiples); i++)
        if (model->rate(model, fixed_pool_multiples[i] * CPUS) >= GOOD_SHARE * *best)
        {
            *smallest_good = fixed_pool_multiples[i] * CPUS;
            return;
        }
}

/* The most threads the pool may reach: twice the smallest good fixed pool, and the CPUs. */
static LONG bound_on_peak(LONG smallest_good)
{
    return 2 * smallest_good + CPUS;
}

/* The best mean rate of the fixed pools on the machine of the run with this seed, as the
 * benchmark compares within one round: the machine's drift, slow spells and noise come from the
 * seed alone, whatever the thread count. */
static double best_fixed_pool_on_the_same_machine(const struct model *model, ULONG seed, double seconds)
{
    struct outcome out;
    double best = 0;
    size_t i;

    for (i = 0; i < ARRAYSIZE(fixed_pool_multiples); i++)
    {
        LONG threads = fixed_pool_multiples[i] * CPUS;

        simulate(model, seed, threads, threads, seconds, &out);
        best = max(best, out.mean_rate);
    }
    return best;
}

/* One 30 s run from the CLR's default limits must meet both criteria over its second half. */
static struct outcome check_model(const struct model *model)
{
    struct outcome out;
    double best;
    LONG smallest_good = 0;

    fixed_pools(model, &best, &smallest_good);
    simulate(model, 1, CPUS, 1000, 30, &out);
    printf("%-22s target %3ld, peak %3ld, mean rate %.0f/s = %.2f of the best fixed pool (%.0f/s); "
           "bound on peak %ld\n", model->name, out.final_target, out.peak, out.mean_rate, out.mean_rate / best,
           best, bound_on_peak(smallest_good));
    ck_assert_msg(out.mean_rate >= GOOD_SHARE * best, "%s: %.0f/s against the best %.0f/s", model->name,
                  out.mean_rate, best);
    ck_assert_msg(out.peak <= bound_on_peak(smallest_good), "%s: peak %ld threads, over the bound of %ld",
                  model->name, out.peak, bound_on_peak(smallest_good));
    return out;
}

/* Rates at 1, 2, 4, ... 512 threads: measured with hostiocp-bench --policy on 2026-11-28, then
 * extended flat.  light_posted's 16 threads did 13 % better than 8 there; on 2026-12-06 they did
 * 2 % better with the CPUs all busy (busy_posted).  The models that climb on its rates have the
 * CPUs PART_WAITING busy, as callbacks that wait part of the time leave them: a pool whose CPUs
 * are busier stops at BUSY_THREADS_PER_CPU (stops_at_4_threads_per_cpu_while_the_cpus_are_busy). */
#define PART_WAITING 0.6
static const double light_posted[10] = { 11e3, 25e3, 63e3, 80e3, 90.5e3, 90e3, 89.5e3, 89e3, 88e3, 87e3 };
/* Measured with hostiocp-bench --policy --repeat 9 on 2026-12-06, medians at 2, 4, 8, 16 and 64
 * threads; 32 between them, 1 from 2. */
static const double busy_posted[10] = { 13e3, 27.1e3, 74.9e3, 96.8e3, 98.5e3, 94.8e3, 91.1e3, 90e3, 89e3, 88e3 };
static const double heavy_posted[10] = { 10e3, 19e3, 34e3, 34e3, 35e3, 34.5e3, 34e3, 33e3, 32e3, 30e3 };
static const double echo_falling[10] = { 21e3, 27e3, 26e3, 25e3, 23e3, 20e3, 17e3, 16.6e3, 16e3, 15e3 };
/* Pipe echo with 16 connections: 8 threads 8 % more than 4, 16 fewer; its bound is 10 threads. */
static const double pipe_echo[10] = { 7e3, 13.3e3, 28.2e3, 30.5e3, 28.8e3, 27.5e3, 26.3e3, 25e3, 24e3, 23e3 };

START_TEST(finds_many_threads_where_they_pay)
{
    struct model model = { .name = "rising, then flat", .rate = rate_from_points, .points = light_posted,
                           .cpus_busy = PART_WAITING, .saturated = TRUE, .noise = 0.05, .in_flight = 64 };
    check_model(&model);
}
END_TEST

/* While the CPUs are busy (CPUS_BUSY), more threads add contention rather than work: no probe goes
 * past 4 threads per CPU, and the pool stays within GOOD_SHARE of the best. */
START_TEST(stops_at_4_threads_per_cpu_while_the_cpus_are_busy)
{
    struct model model = { .name = "posted, CPUs busy", .rate = rate_from_points, .points = busy_posted,
                           .saturated = TRUE, .noise = 0.05, .in_flight = 64 };
    struct outcome out = check_model(&model);

    ck_assert_msg(out.peak == 4 * CPUS && out.final_target == 4 * CPUS, "peak %ld, final target %ld; expected %d "
                  "and %d", out.peak, out.final_target, 4 * CPUS, 4 * CPUS);
}
END_TEST

/* TCP echo with 16 connections, measured with --peers --scenario 'tcp echo, 16' on 2026-12-07:
 * 8 threads keep the CPUs 79-89 % busy in one window or another (the pool's own threads 40-60 %
 * of them), 16 do no better.  A window at 79 % must not let a probe double: on 10 seeds, the pool
 * never runs more than 8. */
static const double tcp_echo[10] = { 5e3, 11e3, 19.3e3, 28e3, 27.5e3, 26e3, 25e3, 24e3, 23e3, 22e3 };
static const double tcp_echo_cpus[10] = { 0.2, 0.4, 0.7, 0.79, 0.85, 0.9, 0.92, 0.94, 0.95, 0.96 };

START_TEST(a_window_just_under_80_percent_busy_does_not_let_a_probe_double)
{
    struct model model = { .name = "tcp echo, 16", .rate = rate_from_points, .points = tcp_echo,
                           .cpu_points = tcp_echo_cpus, .saturated = TRUE, .noise = 0.05, .in_flight = 32 };
    struct outcome out;
    ULONG seed;

    check_model(&model);
    for (seed = 1; seed <= 10; seed++)
    {
        simulate(&model, seed, CPUS, 1000, 30, &out);
        ck_assert_msg(out.peak == 4 * CPUS, "seed %lu: peak %ld; expected %d", seed, out.peak, 4 * CPUS);
    }
}
END_TEST

/* Callbacks that compute, in the pool's own threads, with the CPUs all busy from a thread per
 * CPU: a probe adds one thread, whatever waits (62 items), and none goes past one thread more than
 * the CPUs; the CLR's hill climbing, a thread at a time, peaks there too.  From the CLR's
 * default limits, and from 8 threads (left by callbacks that blocked before), on 10 seeds. */
static const double computing[10] = { 50e3, 100e3, 100e3, 99e3, 98e3, 97e3, 96e3, 95e3, 94e3, 93e3 };
static const double seeming_gain[10] = { 50e3, 100e3, 140e3, 160e3, 160e3, 160e3, 160e3, 160e3, 160e3, 160e3 };

START_TEST(callbacks_that_compute_in_the_pool_get_one_thread_past_the_cpus_at_most)
{
    struct model model = { .name = "computing", .rate = rate_from_points, .points = computing, .own_cpu_time = TRUE,
                           .saturated = TRUE, .noise = 0.05, .in_flight = 64 };
    struct outcome out = check_model(&model);
    ULONG seed;

    ck_assert_msg(out.peak == CPUS + 1 && out.final_target == CPUS, "peak %ld, final target %ld; expected %d and %d",
                  out.peak, out.final_target, CPUS + 1, CPUS);
    /* Even where the rate seems to say that more would pay (another process leaving the CPUs). */
    model.points = seeming_gain;
    simulate(&model, 1, CPUS, 1000, 30, &out);
    printf("computing, rate rising with threads: peak %ld, final target %ld\n", out.peak, out.final_target);
    ck_assert_msg(out.peak == CPUS + 1, "peak %ld; expected %d", out.peak, CPUS + 1);
    model.points = computing;
    for (seed = 1; seed <= 10; seed++)
    {
        struct policy *policy = policy_create(8, CPUS, POLICY_WORK_IN_SYSTEM);
        struct policy_sample sample = { 0 };
        struct policy_decision decision;
        LONG threads = 8, i, down_at = 0, most_after = 0, first_below = 0;
        double completions = 0;

        noise_state = seed;
        for (i = 0; i < 30000 / POLICY_TICK_MS; i++)
        {
            completions += noisy(model.rate(&model, threads), model.noise) * POLICY_TICK_MS / 1000.0;
            sample.now_us = (LONGLONG)(i + 1) * POLICY_TICK_MS * 1000;
            sample.completions = (LONG64)completions;
            sample.threads = sample.busy = threads;
            sample.queued = 64 - threads;
            sample.floor = CPUS;
            sample.max = 1000;
            sample.cpu_total = sample.cpu_pool = (i + 1) * 1000;  /* the pool's threads keep every CPU busy */
            sample.cpu_idle = 0;
            policy_update(policy, &sample, &decision);
            threads = decision.target;
            if (!first_below && threads < 8)
                first_below = threads;
            if (down_at)
                most_after = max(most_after, threads);
            if (!down_at && decision.event == POLICY_LOWERED && decision.to <= CPUS + 1)
                down_at = i;
        }
        printf("computing from 8 threads, seed %lu: %ld threads at tick %ld, at most %ld after, %ld at the end\n",
               seed, CPUS + 1, down_at, most_after, threads);
        ck_assert_msg(first_below == CPUS + 1, "seed %lu: from 8 threads first to %ld, expected %d", seed, first_below,
                      CPUS + 1);
        ck_assert_msg(down_at && most_after <= CPUS + 1, "seed %lu: %ld or fewer threads at tick %ld, then up to %ld",
                      seed, CPUS + 1, down_at, most_after);
        policy_destroy(policy);
    }
}
END_TEST

/* Ticks back at a count the target climbed from, over 10 seeds of `seconds`, and the runs that
 * ended below `threads`. */
static LONG ticks_back_down_on_10_seeds(const struct model *model, double seconds, LONG threads, LONG *ended_below)
{
    LONG back_down = 0;
    struct outcome out;
    ULONG seed;

    *ended_below = 0;
    for (seed = 1; seed <= 10; seed++)
    {
        simulate(model, seed, CPUS, 1000, seconds, &out);
        back_down += out.ticks_back_down;
        *ended_below += out.final_target < threads;
    }
    printf("%-30s %4ld ticks back at a count it climbed from, %ld runs ended below %ld threads\n", model->name,
           back_down, *ended_below, threads);
    return back_down;
}

/* The same TCP echo on a machine that slows for spells (a shift forgets the count the pool
 * climbed from), its pool's threads using half the CPU time in use (wineserver the rest): short of
 * threads with the CPUs busy at 4 threads per CPU, it holds rather than probing down.  On 10 seeds
 * of 15 s (SHORT_HOLD_US of holds), once at 8 threads it never runs 4 again.  Where the pool's
 * share is not known, it could be computing, and work items compute in this process: both probe
 * down as before.  Callbacks on one lock while another process keeps the CPUs busy do as well
 * with 2 threads as with 8: from 8, the holds end after SHORT_HOLD_US and a probe brings the pool
 * down; its threads cost little there (threads_are_cheap), so it climbs back, never past 4 per
 * CPU, and comes down again after the next 15 s of holds. */
static const double one_lock[10] = { 4e3, 4e3, 4e3, 4e3, 4e3, 4e3, 4e3, 4e3, 4e3, 4e3 };
static const double lock_cpus_busy[] = { 0.9, 0.6 };

START_TEST(an_io_pool_short_of_threads_with_the_cpus_busy_is_not_probed_down)
{
    struct model model = { .name = "tcp echo, 16, spells", .rate = rate_from_points, .points = tcp_echo,
                           .cpu_points = tcp_echo_cpus, .own_cpu_time = TRUE, .pool_part = 0.5,
                           .saturated = TRUE, .noise = 0.05, .in_flight = 32, .drift = 0.03, .slow_spells = 0.25 };
    struct model lock = { .name = "one lock, the CPUs busy", .rate = rate_from_points, .points = one_lock,
                          .cpus_busy = 0.9, .own_cpu_time = TRUE, .pool_part = 0.05, .saturated = TRUE,
                          .noise = 0.05, .in_flight = 64, .from_threads = 4 * CPUS };
    LONG back_down, ended_below;
    struct outcome out;
    ULONG seed;
    size_t i;

    back_down = ticks_back_down_on_10_seeds(&model, 15, 4 * CPUS, &ended_below);
    ck_assert_msg(back_down == 0, "%ld ticks back at a count it climbed from", back_down);
    ck_assert_msg(ended_below == 0, "%ld runs ended below %d threads", ended_below, 4 * CPUS);
    /* Past SHORT_HOLD_US a probe down goes ahead, is refused, and the holds go on: in 60 s, at most
     * 40 ticks a run at 4 threads (a probe down's windows, four times); without the holds, 1,000
     * or more. */
    back_down = ticks_back_down_on_10_seeds(&model, 60, 4 * CPUS, &ended_below);
    ck_assert_msg(back_down <= 10 * 40, "60 s: %ld ticks back at a count it climbed from", back_down);
    model.name = "tcp echo, pool's share unknown";
    model.own_cpu_time = FALSE;
    back_down = ticks_back_down_on_10_seeds(&model, 15, 4 * CPUS, &ended_below);
    ck_assert_msg(back_down > 0, "the pool's share unknown: no tick back at a count it climbed from");
    model.name = "tcp echo, as work items";
    model.own_cpu_time = TRUE;
    model.work = POLICY_WORK_IN_PROCESS;
    back_down = ticks_back_down_on_10_seeds(&model, 15, 4 * CPUS, &ended_below);
    ck_assert_msg(back_down > 0, "work items: no tick back at a count it climbed from");
    for (seed = 1; seed <= 10; seed++)
    {
        struct model computing_from_8 = { .name = "computing from 8", .rate = rate_from_points, .points = computing,
                                          .own_cpu_time = TRUE, .saturated = TRUE, .noise = 0.05, .in_flight = 64,
                                          .from_threads = 4 * CPUS };

        simulate(&computing_from_8, seed, CPUS, 1000, 5, &out);
        ck_assert_msg(out.final_target <= CPUS + 1, "computing from %d threads, seed %lu: %ld threads after 5 s",
                      4 * CPUS, seed, out.final_target);
    }
    for (i = 0; i < ARRAYSIZE(lock_cpus_busy); i++)
        for (seed = 1; seed <= 10; seed++)
        {
            double busy = lock_cpus_busy[i] * 100, below_at, last_below;

            lock.cpus_busy = lock_cpus_busy[i];
            simulate(&lock, seed, CPUS, 1000, 60, &out);
            below_at = out.first_tick_below_start < 0 ? 60 : (out.first_tick_below_start + 1) * POLICY_TICK_MS / 1000.0;
            last_below = (out.last_tick_below_start + 1) * POLICY_TICK_MS / 1000.0;
            printf("one lock, the CPUs %.0f %% busy, seed %lu: below %d threads first at %.2f s, last at %.2f s, "
                   "down to %ld, below it %ld times, %ld ticks back at %d, peak %ld, %ld at the end\n", busy, seed, 4 * CPUS,
                   below_at, last_below, out.least_after_start, out.times_below_start, out.ticks_back_at_start, 4 * CPUS,
                   out.peak, out.final_target);
            ck_assert_msg(below_at > 15 && below_at <= 20, "%.0f %%, seed %lu: below %d threads at %.2f s, expected "
                          "after 15 s and by 20 s", busy, seed, 4 * CPUS, below_at);
            ck_assert_msg(out.least_after_start == CPUS, "%.0f %%, seed %lu: down to %ld threads, expected %d", busy,
                          seed, out.least_after_start, CPUS);
            ck_assert_msg(out.ticks_back_at_start * POLICY_TICK_MS >= 15000 && out.times_below_start <= 3,
                          "%.0f %%, seed %lu: %ld ticks back at %d threads after it first came down, below it %ld "
                          "times in 60 s: expected holds of 15 s", busy, seed, out.ticks_back_at_start, 4 * CPUS,
                          out.times_below_start);
            ck_assert_msg(last_below > 40, "%.0f %%, seed %lu: last below %d threads at %.2f s: the holds no longer "
                          "end", busy, seed, 4 * CPUS, last_below);
            /* Under 75 % busy no cap stops a probe up to 16, which the rate then refuses. */
            ck_assert_msg(out.peak <= (busy >= 75 ? 4 : 8) * CPUS && out.final_target <= 4 * CPUS,
                          "%.0f %%, seed %lu: peak %ld threads, %ld at the end", busy, seed, out.peak,
                          out.final_target);
        }
}
END_TEST

/* TCP echo with 256 connections on a machine whose CPUs other guests take for spells (its rate
 * drifting by up to 40 % from one 100 ms to the next, as a run 27 % stolen did): 4 threads per CPU
 * do 12 % more than 2, and 2 do 30 % more than 1, less than the windows' own spread.  The pool is
 * short of threads with its CPUs 55-85 % busy, half of that in its own threads: such a probe up is
 * refused only on a loss, so every run reaches 4 threads per CPU and stays there.  Refused on the
 * noise, 4 of 10 runs ended at 2 threads per CPU. */
static const double tcp_echo_256[10] = { 7e3, 12.5e3, 16.3e3, 18.2e3, 18e3, 17.5e3, 17e3, 16.5e3, 16e3, 15.5e3 };
static const double tcp_echo_256_cpus[10] = { 0.3, 0.55, 0.7, 0.85, 0.88, 0.9, 0.92, 0.94, 0.95, 0.96 };
static const double tcp_echo_256_cpus_lower[10] = { 0.3, 0.5, 0.6, 0.7, 0.72, 0.74, 0.74, 0.74, 0.74, 0.74 };

START_TEST(an_io_pool_short_of_threads_climbs_to_4_per_cpu_on_a_noisy_machine)
{
    struct model model = { .name = "tcp echo, 256, stolen spells", .rate = rate_from_points, .points = tcp_echo_256,
                           .cpu_points = tcp_echo_256_cpus, .own_cpu_time = TRUE, .pool_part = 0.5,
                           .saturated = TRUE, .noise = 0.2, .in_flight = 256, .drift = 0.4, .slow_spells = 0.25 };
    LONG reached = 0, ended = 0, probed_above = 0, above = 0;
    struct outcome out;
    ULONG seed;

    for (seed = 1; seed <= 10; seed++)
    {
        simulate(&model, seed, CPUS, 1000, 15, &out);
        printf("%s, seed %lu: peak %ld, %ld threads at 15 s\n", model.name, seed, out.peak, out.final_target);
        reached += out.peak >= 4 * CPUS;
        ended += out.final_target >= 4 * CPUS;
    }
    ck_assert_msg(reached == 10 && ended == 10, "%ld of 10 runs reached %d threads, %ld ended there", reached,
                  4 * CPUS, ended);
    /* With the CPUs under 75 % busy no cap holds the climb at 4 per CPU: past it, a gain must show
     * as before, and 16 threads do no more than 8 here.  Without the rule 5 of these runs probed 16
     * threads and 3 ended there; with the climb going on past 4 per CPU after a raise that gained
     * little, all 10 probed 16. */
    model.name = "tcp echo, 256, CPUs 60-74 % busy";
    model.cpu_points = tcp_echo_256_cpus_lower;
    for (seed = 1; seed <= 10; seed++)
    {
        simulate(&model, seed, CPUS, 1000, 15, &out);
        printf("%s, seed %lu: peak %ld, %ld threads at 15 s\n", model.name, seed, out.peak, out.final_target);
        probed_above += out.peak > 4 * CPUS;
        above += out.final_target > 4 * CPUS;
    }
    ck_assert_msg(probed_above <= 5 && above <= 1, "with the CPUs 60-74 %% busy %ld of 10 runs went above %d threads, "
                  "%ld ended there", probed_above, 4 * CPUS, above);
}
END_TEST

/* The host starts beside the pool (threads created, its queue grown), and in the first ticks the
 * CPU time in use is not the pool's (here up to the sample 60 ms after the first): no window
 * measures them, so the pool is seen to compute and its first probe up adds one thread, not two. */
START_TEST(a_host_that_starts_beside_a_computing_pool_does_not_make_it_double)
{
    struct model model = { .name = "computing", .rate = rate_from_points, .points = computing, .own_cpu_time = TRUE,
                           .saturated = TRUE, .noise = 0.05, .in_flight = 64, .startup_seconds = 0.07 };
    struct outcome out;

    simulate(&model, 1, CPUS, 1000, 30, &out);
    printf("computing beside a host that starts for 70 ms: peak %ld, final target %ld\n", out.peak, out.final_target);
    ck_assert_msg(out.peak == CPUS + 1, "peak %ld; expected %d", out.peak, CPUS + 1);
}
END_TEST

/* Every model reads the pool's CPU time only where the policy asks for it, and an assertion in
 * the policy stops any that uses a sample without it: here, that reading it at every tick would
 * decide nothing differently, and how many reads that saves. */
START_TEST(the_pools_cpu_time_is_read_only_where_a_window_begins_or_ends)
{
    struct model model = { .name = "computing", .rate = rate_from_points, .points = computing, .own_cpu_time = TRUE,
                           .saturated = TRUE, .noise = 0.05, .in_flight = 64, .drift = 0.1 };
    struct outcome asked, every_tick;
    ULONG seed;

    for (seed = 1; seed <= 5; seed++)
    {
        pool_cpu_every_tick = FALSE;
        simulate(&model, seed, CPUS, 1000, 30, &asked);
        pool_cpu_every_tick = TRUE;
        simulate(&model, seed, CPUS, 1000, 30, &every_tick);
        printf("pool CPU time, seed %lu: read at %ld of %ld ticks\n", seed, asked.pool_cpu_reads, asked.ticks);
        ck_assert_msg(asked.targets_sum == every_tick.targets_sum && asked.peak == every_tick.peak &&
                      asked.final_target == every_tick.final_target, "seed %lu: the targets differ when the pool's "
                      "CPU time is read at every tick (peak %ld against %ld, final %ld against %ld)", seed, asked.peak,
                      every_tick.peak, asked.final_target, every_tick.final_target);
        ck_assert_msg(asked.pool_cpu_reads > 0 && asked.pool_cpu_reads <= asked.ticks / 5,
                      "seed %lu: read at %ld of %ld ticks", seed, asked.pool_cpu_reads, asked.ticks);
    }
}
END_TEST

START_TEST(stays_low_where_more_threads_do_not_pay)
{
    struct model model = { .name = "flat from 4 threads", .rate = rate_from_points, .points = heavy_posted,
                           .saturated = TRUE, .noise = 0.05, .in_flight = 64 };
    check_model(&model);
}
END_TEST

/* After a modest gain the climb ends: no count above the new target is tried, not even a step
 * smaller than a doubling (to the 24 requests in flight, over the bound of 18).  16 threads do 8 %
 * better than 8 and 32 do worse, with the CPUs 70 % busy.  A pool that stayed at 8 would keep
 * both bounds too, so the count itself is asserted. */
static const double modest_at_16[10] = { 5e3, 10e3, 22e3, 29.7e3, 32e3, 25e3, 22e3, 20e3, 18e3, 16e3 };

START_TEST(a_modest_gain_ends_the_climb_below_a_doubling_too)
{
    struct model model = { .name = "modest at 16, 24 busy", .rate = rate_from_points, .points = modest_at_16,
                           .saturated = TRUE, .noise = 0.02, .in_flight = 24, .cpus_busy = 0.7 };
    struct outcome out = check_model(&model);

    ck_assert_msg(out.peak == 16 && out.final_target == 16, "peak %ld, final target %ld; expected 16 and 16",
                  out.peak, out.final_target);
}
END_TEST

START_TEST(stays_low_where_more_threads_cost)
{
    struct model model = { .name = "falling", .rate = rate_from_points, .points = echo_falling,
                           .saturated = TRUE, .noise = 0.05, .in_flight = 256 };
    check_model(&model);
}
END_TEST

/* No probe down to a count the target was raised from: it was just measured to do worse, and a
 * probe costs what it loses for as long as it is measured.  Light callbacks: 4, 8 and 16
 * threads each do better than half as many, so once at 16 the pool never runs 8 again. */
START_TEST(does_not_probe_down_to_a_count_it_climbed_from)
{
    struct model model = { .name = "rising, then flat", .rate = rate_from_points, .points = light_posted,
                           .cpus_busy = PART_WAITING, .saturated = TRUE, .noise = 0.02, .in_flight = 64 };
    struct outcome out;

    simulate(&model, 1, CPUS, 1000, 20, &out);
    printf("%-22s target %3ld, peak %3ld, %ld ticks back at a count it climbed from\n", model.name,
           out.final_target, out.peak, out.ticks_back_down);
    ck_assert_msg(out.final_target == 16, "final target %ld, expected 16", out.final_target);
    ck_assert_msg(out.ticks_back_down == 0, "%ld ticks at a count it climbed from", out.ticks_back_down);
}
END_TEST

/* 8 threads gain 11 % over 4 (30 us callbacks, measured), or 8 %: then 4 is within GOOD_SHARE of
 * the best and may be doubled once, but not twice. */
static const double heavy_posted_measured[10] = { 10e3, 24e3, 35.5e3, 39.5e3, 37.3e3, 37.5e3, 37.5e3, 37e3, 36e3, 35e3 };
static const double little_more_at_8[10] = { 10e3, 24e3, 36e3, 38.9e3, 39e3, 38.5e3, 38e3, 37e3, 36e3, 35e3 };

/* What a model's runs on a noisy machine gave. */
struct noisy_runs
{
    int missed;                 /* over the bound on peak threads or, with check_rate, the rate */
    double median_share;        /* of the best fixed pool on the same machine */
    int below;                  /* runs below GOOD_SHARE of the best fixed pool on the same machine */
};

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The same workloads on a machine whose speed wanders from one 100 ms to the next: over many
 * runs (seeds from first_seed), every one must keep the bound on peak threads over the whole run
 * and, with check_rate, reach GOOD_SHARE of the best fixed pool on a steady machine over the
 * run's second half (4 s to 8 s).  The rate of each run against the best fixed pool on its own
 * machine is in `runs`.  Returns the runs that missed. */
static int check_model_on_a_noisy_machine(const struct model *model, int first_seed, BOOL check_rate,
                                          struct noisy_runs *runs)
{
    enum { RUNS = 60 };
    struct outcome out;
    double best, shares[RUNS];
    LONG smallest_good = 0, worst_peak = 0;
    double worst_share = 1;
    int run;

    fixed_pools(model, &best, &smallest_good);
    runs->missed = runs->below = 0;
    for (run = 0; run < RUNS; run++)
    {
        simulate(model, first_seed + run, CPUS, 1000, 8, &out);
        worst_peak = max(worst_peak, out.peak);
        worst_share = min(worst_share, out.mean_rate / best);
        shares[run] = out.mean_rate / best_fixed_pool_on_the_same_machine(model, first_seed + run, 8);
        runs->below += shares[run] < GOOD_SHARE;
        if ((check_rate && out.mean_rate < GOOD_SHARE * best) || out.peak > bound_on_peak(smallest_good))
        {
            printf("%-22s seed %d: target %ld, peak %ld, rate %.2f of the best\n", model->name, first_seed + run,
                   out.final_target, out.peak, out.mean_rate / best);
            runs->missed++;
        }
    }
    qsort(shares, RUNS, sizeof(shares[0]), compare_doubles);
    runs->median_share = (shares[RUNS / 2 - 1] + shares[RUNS / 2]) / 2;
    printf("%-22s on a noisy machine: %d of %d runs missed; worst peak %ld (bound %ld), worst rate %.2f of the best; "
           "against the best fixed pool on the same machine: median %.3f, %d runs below 0.9\n", model->name,
           runs->missed, RUNS, worst_peak, bound_on_peak(smallest_good), worst_share, runs->median_share,
           runs->below);
    return runs->missed;
}

/* On a machine that slows to SLOW_SPELL of its speed for spells of a second or so, half of the
 * time, the rate says more threads pay when they do not.  The pool keeps the bound on peak
 * threads: with the CPUs busy it stops at 4 threads per CPU, and past 8 per CPU only a large gain
 * lets it climb on.  It keeps the bound on
 * the rate at median over the runs, against the best fixed pool on the same machine (the same
 * spells, as the benchmark compares within a round); a spell can still cost a run a count that
 * pays, so a few runs may fall below GOOD_SHARE. */
START_TEST(keeps_its_bounds_when_the_machine_slows_for_spells)
{
    static const struct
    {
        struct model model;
        int allowed_below;      /* of 60, below GOOD_SHARE of the best fixed pool on the same machine */
    }
    cases[] =
    {
        { .model = { .name = "11 % more at 8, spells", .rate = rate_from_points, .points = heavy_posted_measured,
                     .saturated = TRUE, .noise = 0.05, .in_flight = 64, .drift = 0.03, .slow_spells = 0.5 },
          .allowed_below = 1 },
        { .model = { .name = "rising, then flat, spells", .rate = rate_from_points, .points = light_posted,
                     .cpus_busy = PART_WAITING, .saturated = TRUE, .noise = 0.05, .in_flight = 64, .drift = 0.03,
                     .slow_spells = 0.5 },
          .allowed_below = 4 },
    };
    struct noisy_runs runs;
    size_t i;

    for (i = 0; i < ARRAYSIZE(cases); i++)
    {
        const char *name = cases[i].model.name;

        check_model_on_a_noisy_machine(&cases[i].model, 2000, FALSE, &runs);
        ck_assert_msg(!runs.missed, "%s: %d runs went over the bound on peak threads", name, runs.missed);
        ck_assert_msg(runs.median_share >= GOOD_SHARE, "%s: at median %.3f of the best fixed pool on the same "
                      "machine", name, runs.median_share);
        ck_assert_msg(runs.below <= cases[i].allowed_below, "%s: %d runs below 0.9 of the best fixed pool on "
                      "the same machine, more than %d", name, runs.below, cases[i].allowed_below);
    }
}
END_TEST

/* A rate that moves with the same work in flight and the CPUs busy is the machine, not the
 * work: it forgets the count below, never that 16 threads did not pay.  Nor does a spell that
 * begins or ends inside the windows comparing 4 threads with 8 read as a clear gain.  Pipe echo,
 * with spells a quarter of the time: no run goes over its bound of 10. */
START_TEST(slow_spells_do_not_make_it_forget_what_did_not_pay)
{
    struct model model = { .name = "pipe echo, spells", .rate = rate_from_points, .points = pipe_echo,
                           .saturated = TRUE, .noise = 0.05, .in_flight = 16, .drift = 0.03,
                           .slow_spells = 0.25 };
    struct noisy_runs runs;
    int missed = check_model_on_a_noisy_machine(&model, 2000, FALSE, &runs);

    ck_assert_msg(!missed, "%d runs went over the bound on peak threads", missed);
}
END_TEST

/* A slow spell that ends while the windows compare 4 threads with 8 is not a gain: one pair does
 * not decide while the CPUs are busy, and a gain that the machine's movement could have made is
 * measured again.  The machine runs at SPELL_SPEED until the spell ends, at any of 300 moments in
 * the first 3 s: pipe echo never goes over its bound of 10. */
#define SPELL_SPEED 0.70
static double spell_ends_at;

static double rate_until_a_slow_spell_ends(const struct model *model, LONG threads)
{
    return (simulated_seconds < spell_ends_at ? SPELL_SPEED : 1.0) * rate_from_points(model, threads);
}

START_TEST(a_slow_spell_that_ends_while_it_compares_counts_is_not_a_gain)
{
    struct model model = { .name = "pipe echo, spell ends", .rate = rate_until_a_slow_spell_ends,
                           .points = pipe_echo, .saturated = TRUE, .noise = 0.02, .in_flight = 16 };
    struct outcome out;
    LONG worst_peak = 0, over = 0, moment, smallest_good = 0;
    double best;

    spell_ends_at = 0;
    fixed_pools(&model, &best, &smallest_good);
    for (moment = 1; moment <= 300; moment++)
    {
        spell_ends_at = moment * 0.01;
        simulate(&model, moment, CPUS, 1000, 8, &out);
        worst_peak = max(worst_peak, out.peak);
        if (out.peak > bound_on_peak(smallest_good))
            over++;
    }
    printf("%-22s at 300 moments in 0-3 s: %ld over the bound of %ld, worst peak %ld\n", model.name, over,
           bound_on_peak(smallest_good), worst_peak);
    ck_assert_msg(!over, "%ld of 300 runs went over the bound of %ld; worst peak %ld", over,
                  bound_on_peak(smallest_good), worst_peak);
}
END_TEST

/* A gain larger than the machine's movement stands.  For its first 3 s the machine runs at
 * JOLT_SPEED every other JOLT_S, from any of 70 moments: 4 threads do 2.5 times as well as 2, so
 * the pool never stops below 8.  Jolts that land on the windows comparing 4 with 8 (27 % better)
 * can make that gain read as modest, and hold the pool at 8: in at most 5 runs. */
#define JOLT_SPEED 0.75
#define JOLT_S 0.35
static double jolts_begin_at;

static double rate_on_a_jolting_machine(const struct model *model, LONG threads)
{
    double since = simulated_seconds - jolts_begin_at;
    BOOL slow = since >= 0 && since < 3 && (int)(since / JOLT_S) % 2;

    return (slow ? JOLT_SPEED : 1.0) * rate_from_points(model, threads);
}

START_TEST(keeps_climbing_on_a_machine_that_jolts)
{
    struct model model = { .name = "rising, jolting", .rate = rate_on_a_jolting_machine, .points = light_posted,
                           .cpus_busy = PART_WAITING, .saturated = TRUE, .noise = 0.02, .in_flight = 64 };
    struct outcome out;
    LONG fewest = 1000, short_of_16 = 0, moment;

    for (moment = 0; moment < 70; moment++)
    {
        jolts_begin_at = moment * 0.01;
        simulate(&model, moment, CPUS, 1000, 10, &out);
        fewest = min(fewest, out.final_target);
        if (out.final_target != 16)
            short_of_16++;
    }
    printf("%-22s at 70 moments in 0-0.7 s: %ld short of 16 threads, fewest %ld\n", model.name, short_of_16,
           fewest);
    ck_assert_msg(fewest >= 8, "a run ended at %ld threads", fewest);
    ck_assert_msg(short_of_16 <= 5, "%ld of 70 runs ended short of 16 threads", short_of_16);
}
END_TEST

/* On a machine whose speed wanders by up to 6 % from one 100 ms to the next, every run keeps both
 * bounds. */
START_TEST(keeps_its_bounds_on_a_noisy_machine)
{
    static const struct model models[] =
    {
        { .name = "rising, then flat", .rate = rate_from_points, .points = light_posted, .cpus_busy = PART_WAITING,
          .saturated = TRUE, .noise = 0.05, .in_flight = 64, .drift = 0.06 },
        { .name = "flat from 4 threads", .rate = rate_from_points, .points = heavy_posted,
          .saturated = TRUE, .noise = 0.05, .in_flight = 64, .drift = 0.06 },
        { .name = "falling", .rate = rate_from_points, .points = echo_falling,
          .saturated = TRUE, .noise = 0.05, .in_flight = 256, .drift = 0.06 },
        { .name = "8 % more at 8 threads", .rate = rate_from_points, .points = little_more_at_8,
          .saturated = TRUE, .noise = 0.05, .in_flight = 64, .drift = 0.06 },
        { .name = "11 % more at 8 threads", .rate = rate_from_points, .points = heavy_posted_measured,
          .saturated = TRUE, .noise = 0.05, .in_flight = 64, .drift = 0.06 },
    };
    struct noisy_runs runs;
    int misses = 0;
    size_t i;

    for (i = 0; i < ARRAYSIZE(models); i++)
        misses += check_model_on_a_noisy_machine(&models[i], 1000, TRUE, &runs);
    ck_assert_msg(!misses, "%d runs missed a bound", misses);
}
END_TEST

/* From 8 threads per CPU only a 50 % gain lets the target climb on: callbacks that compute gain
 * less there only by the scheduler's luck.  Each doubling here pays 30 % up to 64 threads. */
static const double steady_gains[10] = { 10e3, 20e3, 26e3, 33.8e3, 43.9e3, 57.1e3, 74.3e3, 74.3e3, 74.3e3, 74.3e3 };

START_TEST(climbs_past_8_threads_per_cpu_only_on_large_gains)
{
    struct model model = { .name = "30 % per doubling", .rate = rate_from_points, .points = steady_gains,
                           .cpus_busy = PART_WAITING, .saturated = TRUE, .noise = 0.02, .in_flight = 256 };
    struct outcome out;

    simulate(&model, 1, CPUS, 1000, 10, &out);
    printf("%-22s target %3ld, peak %3ld\n", model.name, out.final_target, out.peak);
    ck_assert_msg(out.final_target == 16 && out.peak == 16, "final target %ld, peak %ld; expected 16 and 16",
                  out.final_target, out.peak);
}
END_TEST

/* A probe up that did not pay once is tried again in the next search.  The 11 % workload, but for
 * the first 0.8 s something else on the machine takes a fifth of the time whenever 8 or more
 * threads run: the pool still ends at 8. */
static double rate_disturbed_at_first(const struct model *model, LONG threads)
{
    double rate = rate_from_points(model, threads);
    return simulated_seconds < 0.8 && threads >= 8 ? 0.8 * rate : rate;
}

START_TEST(tries_again_a_count_that_measured_low_once)
{
    struct model model = { .name = "8 low at first", .rate = rate_disturbed_at_first,
                           .points = heavy_posted_measured, .saturated = TRUE, .noise = 0.02, .in_flight = 64 };
    struct outcome out;

    simulate(&model, 1, CPUS, 1000, 10, &out);
    printf("%-22s target %3ld, peak %3ld\n", model.name, out.final_target, out.peak);
    ck_assert_msg(out.final_target == 8, "final target %ld, expected 8", out.final_target);
    ck_assert_msg(out.peak <= 2 * 8 + CPUS, "peak %ld threads, over the bound of %d", out.peak, 2 * 8 + CPUS);
}
END_TEST

/* A count that did not pay is tried once more after each hold, so the pool climbs again once the
 * machine is its own.  Light callbacks, but for the first 3 s something else runs whenever the
 * pool has 8 threads or more and takes what they would gain over 4. */
static double rate_crowded_at_first(const struct model *model, LONG threads)
{
    if (simulated_seconds < 3 && threads >= 8)
        return 0.96 * rate_from_points(model, 4);
    return rate_from_points(model, threads);
}

START_TEST(climbs_again_when_a_slow_period_ends)
{
    struct model model = { .name = "crowded for 3 s", .rate = rate_crowded_at_first, .points = light_posted,
                           .cpus_busy = PART_WAITING, .saturated = TRUE, .noise = 0.02, .in_flight = 64 };
    struct model once_its_own = { .name = "light posted", .rate = rate_from_points, .points = light_posted,
                                  .cpus_busy = PART_WAITING, .saturated = TRUE, .noise = 0.02, .in_flight = 64 };
    struct outcome out;
    double best;
    LONG smallest_good;

    /* The bounds are those of the machine once it is its own again, seconds 8-16. */
    fixed_pools(&once_its_own, &best, &smallest_good);
    simulate(&model, 1, CPUS, 1000, 16, &out);
    printf("%-22s target %3ld, peak %3ld, seconds 8-16 at %.2f of the best\n", model.name, out.final_target,
           out.peak, out.mean_rate / best);
    ck_assert_msg(out.mean_rate >= GOOD_SHARE * best, "%.0f/s against the best %.0f/s", out.mean_rate, best);
    ck_assert_msg(out.peak <= bound_on_peak(smallest_good), "peak %ld threads, over the bound of %ld", out.peak,
                  bound_on_peak(smallest_good));
}
END_TEST

/* Callbacks that block get their threads fast: from 2 s on, at least half the ideal rate. */
START_TEST(grows_fast_for_blocking_callbacks)
{
    struct model model = { .name = "blocking 50 ms", .rate = rate_blocking, .saturated = TRUE, .noise = 0.05,
                           .in_flight = 64 };
    struct outcome out;

    check_model(&model);
    simulate(&model, 1, CPUS, 1000, 6, &out);
    printf("blocking 50 ms: seconds 2-4 at %.0f/s (ideal 1280/s)\n", out.rate_after_2s);
    ck_assert_msg(out.rate_after_2s >= 0.5 * 1280, "seconds 2-4 ran at %.0f/s", out.rate_after_2s);
}
END_TEST

/* Tick `i` of callbacks that block, `busy` of them in callbacks and `queued` packets waiting,
 * `completions` so far, with the CPUs 5 % busy, from the CLR's default limits. */
static void tick_of_blocking_callbacks(struct policy *policy, struct policy_sample *sample, LONG i, LONG threads,
                                       double completions, LONG busy, LONG queued, struct policy_decision *decision)
{
    sample->now_us = (LONGLONG)(i + 1) * POLICY_TICK_MS * 1000;
    sample->completions = (LONG64)completions;
    sample->threads = threads;
    sample->busy = busy;
    sample->queued = queued;
    sample->floor = CPUS;
    sample->max = 1000;
    sample->cpu_total = (i + 1) * 1000;
    sample->cpu_idle = (i + 1) * 950;
    policy_update(policy, sample, decision);
}

/* Once every request has a thread, no probe down for 100 windows (15 s or more): the threads
 * wait inside their callbacks with the CPUs idle, and half of them would leave half the requests
 * waiting for 50 ms.  After them one probe down starves, and none follows for as long again.  Also where the pool
 * has a few threads more than the requests that block (packets of the other end of each request
 * that wait briefly: a thread or two stays idle), as pipe echo where every callback blocks; and
 * with a burst of packets every 5 s, whose starvation forgets what the searches found: a probe
 * down that did not pay waits for 100 windows again, so there are 3 in a minute at most. */
START_TEST(blocking_callbacks_that_hold_every_thread_are_not_probed_down)
{
    static const struct { LONG brief_packets; BOOL bursts; } variants[] = { { 0, FALSE }, { 2, FALSE }, { 2, TRUE } };
    struct model model = { .name = "blocking 50 ms", .rate = rate_blocking, .saturated = TRUE, .noise = 0.05,
                           .in_flight = 64 };
    size_t b;

    for (b = 0; b < ARRAYSIZE(variants); b++)
    {
        struct policy *policy = policy_create(CPUS, CPUS, POLICY_WORK_IN_SYSTEM);
        struct policy_sample sample = { 0 };
        struct policy_decision decision;
        LONG threads = CPUS, i, reached = 0, least_after = 64, ticks_below = 0, probes_down = 0;
        double completions = 0;

        noise_state = 1;
        for (i = 0; i < 60000 / POLICY_TICK_MS; i++)
        {
            LONG busy = min(threads, 64), queued = max(64 + variants[b].brief_packets - threads, 0);

            completions += noisy(model.rate(&model, threads), model.noise) * POLICY_TICK_MS / 1000.0;
            if (variants[b].bursts && i % 250 == 249)
            {
                busy = threads;
                queued += 3;
            }
            tick_of_blocking_callbacks(policy, &sample, i, threads, completions, busy, queued, &decision);
            threads = decision.target;
            if (threads >= 64 && !reached)
                reached = i;
            if (reached && i - reached < 15000 / POLICY_TICK_MS)
                least_after = min(least_after, threads);
            if (reached && threads < 64)
                ticks_below++;
            probes_down += decision.event == POLICY_PROBE && decision.to < decision.from;
        }
        printf("blocking callbacks, %ld brief packets%s: 64 threads at tick %ld, at least %ld threads over the next "
               "15 s; %ld ticks below 64 and %ld probes down in a minute\n", variants[b].brief_packets,
               variants[b].bursts ? ", a burst every 5 s" : "", reached, least_after, ticks_below, probes_down);
        ck_assert_msg(probes_down <= 3, "%ld brief packets: %ld probes down in a minute; expected one in 15 s at most",
                      variants[b].brief_packets, probes_down);
        ck_assert_msg(reached && least_after == 64, "%ld brief packets: 64 threads at tick %ld, then down to %ld",
                      variants[b].brief_packets, reached, least_after);
        ck_assert_msg(ticks_below <= 5, "%ld brief packets: %ld ticks below 64 threads", variants[b].brief_packets,
                      ticks_below);
        policy_destroy(policy);
    }
}
END_TEST

/* 64 requests; one callback in ten blocks 50 ms, the others take 20 us. */
static double rate_tenth_blocking(const struct model *model, LONG threads)
{
    (void)model;
    return threads < 64 ? threads / (0.1 * 0.05 + 0.9 * 20e-6) : 64 / (0.1 * 0.05 + 0.9 * 20e-6);
}

START_TEST(grows_fast_when_a_tenth_of_callbacks_block)
{
    struct model model = { .name = "10% blocking 50 ms", .rate = rate_tenth_blocking, .saturated = TRUE,
                           .noise = 0.05, .in_flight = 64 };
    check_model(&model);
}
END_TEST

/* When callbacks start to wait, the CPUs go idle and the rate shifts: what did not pay while they
 * computed is forgotten, and the pool finds the 64 threads that pay now.  Light callbacks for
 * 4 s, then one in ten blocks 50 ms with as much work in flight. */
static double rate_light_then_waiting(const struct model *model, LONG threads)
{
    return waiting_now(model) ? rate_tenth_blocking(model, threads) : rate_from_points(model, threads);
}

START_TEST(climbs_again_when_callbacks_start_to_wait)
{
    struct model model = { .name = "light, then 10% block", .rate = rate_light_then_waiting, .points = light_posted,
                           .cpus_busy = PART_WAITING, .saturated = TRUE, .noise = 0.05, .in_flight = 64,
                           .waits_from = 4.0 };
    double best = rate_tenth_blocking(&model, 64);
    struct outcome out;

    simulate(&model, 1, CPUS, 1000, 12, &out);
    printf("%-22s target %3ld, peak %3ld, seconds 6-12 at %.2f of the best\n", model.name, out.final_target,
           out.peak, out.mean_rate / best);
    /* Each step up adds a thread for every two packets that wait, so the climb ends within a few
     * threads of the 64 in flight, where a step gains less than MODEST_GAIN. */
    ck_assert_msg(out.final_target >= 60 && out.final_target <= 64, "final target %ld, expected 60-64",
                  out.final_target);
    ck_assert_msg(out.mean_rate >= GOOD_SHARE * best, "%.0f/s against the best %.0f/s", out.mean_rate, best);
}
END_TEST

/* A probe up adds a thread for every two packets that waited in the window before: a request
 * that waits for a thread often shows as two packets, one for each end of it.  8 threads, all
 * busy, 6 packets waiting at every tick: the probe is 11, not a doubling to 16. */
START_TEST(probes_up_by_a_thread_for_every_two_packets_that_wait)
{
    struct policy *policy = policy_create(8, CPUS, POLICY_WORK_IN_SYSTEM);
    struct policy_sample sample = { 0 };
    struct policy_decision decision;
    LONG i, probe = 0;

    for (i = 0; i < 50 && !probe; i++)
    {
        sample.now_us = (i + 1) * POLICY_TICK_MS * 1000;
        sample.completions = (i + 1) * 100;  /* a callback ends between any two ticks: not starving */
        sample.threads = sample.busy = 8;
        sample.queued = 6;
        sample.floor = CPUS;
        sample.max = 1000;
        policy_update(policy, &sample, &decision);
        if (decision.event == POLICY_PROBE)
            probe = decision.to;
    }
    printf("waiting packets: a probe from 8 threads with 6 waiting goes to %ld\n", probe);
    ck_assert_msg(probe == 11, "probe %ld from 8 threads with 6 packets waiting, expected 11", probe);
    policy_destroy(policy);
}
END_TEST

/* A pool with no work keeps its initial target: a window needs completions to judge a count. */
START_TEST(idle_pool_keeps_its_target)
{
    static const double none[10] = { 0 };
    struct model model = { .name = "idle", .rate = rate_from_points, .points = none };
    struct outcome out;

    simulate(&model, 1, 1, 1000, 10, &out);
    printf("%-22s target %3ld, peak %3ld\n", model.name, out.final_target, out.peak);
    ck_assert_msg(out.final_target == CPUS && out.peak == CPUS, "final target %ld, peak %ld; expected %d and %d",
                  out.final_target, out.peak, CPUS, CPUS);
}
END_TEST

/* The monitor stops sampling a pool that idles and resumes when a thread takes work: the first
 * sample after it is a fresh start, not a tick in which nothing finished, and the tick after it
 * judges starvation again. */
START_TEST(a_pool_that_idled_starts_afresh_when_work_comes_back)
{
    struct policy *policy = policy_create(2, CPUS, POLICY_WORK_IN_SYSTEM);
    struct policy_sample sample = { .completions = 100, .threads = 2, .floor = 1, .max = 12 };
    struct policy_decision decision;
    LONG i;

    for (i = 0; i < 10; i++)
    {
        sample.now_us = (i + 1) * POLICY_TICK_MS * 1000;
        policy_update(policy, &sample, &decision);
        ck_assert_msg(decision.event == POLICY_NONE && decision.target == 2, "idle tick %ld: %s, target %ld", i,
                      policy_event_name(decision.event), decision.target);
    }
    /* 5 s later every thread has just taken a packet, and more wait. */
    sample.now_us += 5000000;
    sample.busy = 2;
    sample.queued = 3;
    policy_resume(policy, &sample);
    policy_update(policy, &sample, &decision);
    ck_assert_msg(decision.event == POLICY_NONE && decision.target == 2, "first sample after the sleep: %s, target %ld",
                  policy_event_name(decision.event), decision.target);
    sample.now_us += POLICY_TICK_MS * 1000;
    policy_update(policy, &sample, &decision);
    ck_assert_msg(decision.event == POLICY_STARVING && decision.target == 3,
                  "a tick later, nothing finished: %s, target %ld", policy_event_name(decision.event), decision.target);
    policy_destroy(policy);
}
END_TEST

/* Ticks of a pool whose rate is the same at any count, every thread busy and the CPUs 90 % busy
 * (so each round keeps the target and the holds between rounds double), from `from_us` to
 * `to_us` or the KEPT event that makes *kept `stop_at_kept`; returns the first PROBE's time, 0
 * if none.  *kept counts KEPT events, and *kept_us is the time of the last one. */
static LONGLONG flat_ticks(struct policy *policy, struct policy_sample *sample, LONGLONG from_us, LONGLONG to_us,
                           LONG *kept, LONG stop_at_kept, LONGLONG *kept_us)
{
    struct policy_decision decision;
    LONGLONG now, probe_us = 0;

    for (now = from_us; now <= to_us; now += POLICY_TICK_MS * 1000)
    {
        sample->now_us = now;
        sample->completions += 100;
        sample->cpu_total += 2000;
        sample->cpu_idle += 200;
        sample->busy = sample->threads;
        policy_update(policy, sample, &decision);
        sample->threads = decision.target;
        if (decision.event == POLICY_PROBE && !probe_us)
            probe_us = now;
        if (decision.event == POLICY_KEPT)
        {
            *kept_us = now;
            if (++*kept == stop_at_kept)
                break;
        }
    }
    return probe_us;
}

/* A hold between searches runs on through an idle spell: the next probe comes when it would have
 * come without the spell, within a window. */
START_TEST(a_hold_goes_on_through_an_idle_spell)
{
    struct policy_sample base = { .threads = 2, .queued = 2, .floor = 2, .max = 64, .cpu_process = -1, .cpu_pool = -1 };
    struct policy_sample sample;
    struct policy *policy;
    LONGLONG kept_us = 0, round_us, quiet_probe_us, idle_probe_us, resume_us;
    LONG kept = 0;

    /* Without a spell: when does the probe after the third round's hold come? */
    policy = policy_create(2, CPUS, POLICY_WORK_IN_SYSTEM);
    sample = base;
    flat_ticks(policy, &sample, POLICY_TICK_MS * 1000, 60000000, &kept, 3, &kept_us);
    ck_assert_msg(kept == 3, "%ld rounds kept the target in 60 s", kept);
    round_us = kept_us;
    quiet_probe_us = flat_ticks(policy, &sample, round_us + POLICY_TICK_MS * 1000, round_us + 20000000, &kept, 0,
                                &kept_us) - round_us;
    policy_destroy(policy);

    /* The same, with the monitor asleep for 1.5 s after the third round. */
    kept = 0;
    policy = policy_create(2, CPUS, POLICY_WORK_IN_SYSTEM);
    sample = base;
    flat_ticks(policy, &sample, POLICY_TICK_MS * 1000, 60000000, &kept, 3, &kept_us);
    round_us = kept_us;
    resume_us = round_us + 1500000;
    sample.now_us = resume_us;
    policy_resume(policy, &sample);
    idle_probe_us = flat_ticks(policy, &sample, resume_us, round_us + 20000000, &kept, 0, &kept_us) - round_us;
    policy_destroy(policy);

    printf("probe after the third hold: %.2f s, with a 1.5 s idle spell %.2f s\n", quiet_probe_us / 1e6,
           idle_probe_us / 1e6);
    ck_assert_msg(quiet_probe_us > 2000000, "the third hold ended after %.2f s", quiet_probe_us / 1e6);
    ck_assert_msg(idle_probe_us >= quiet_probe_us - 200000 && idle_probe_us <= quiet_probe_us + 400000,
                  "with the idle spell the probe came %.2f s after the round, without it %.2f s",
                  idle_probe_us / 1e6, quiet_probe_us / 1e6);
}
END_TEST

/* Every thread blocks, packets wait and nothing completes: one thread more at every tick after
 * the first, up to the maximum. */
START_TEST(starvation_adds_a_thread_every_tick_up_to_the_maximum)
{
    struct policy *policy = policy_create(2, CPUS, POLICY_WORK_IN_SYSTEM);
    struct policy_sample sample = { 0 };
    struct policy_decision decision;
    LONG threads = 2, i;

    for (i = 0; i < 20; i++)
    {
        sample.now_us = (i + 1) * POLICY_TICK_MS * 1000;
        sample.completions = 5;
        sample.threads = sample.busy = threads;
        sample.queued = 3;
        sample.floor = 1;
        sample.max = 12;
        policy_update(policy, &sample, &decision);
        if (i > 0 && threads < 12)
            ck_assert_msg(decision.event == POLICY_STARVING && decision.target == threads + 1,
                          "tick %ld, %ld threads: %s, target %ld", i, threads, policy_event_name(decision.event),
                          decision.target);
        threads = decision.target;
    }
    printf("starving: %ld threads after 20 ticks\n", threads);
    ck_assert_msg(threads == 12, "%ld threads after 20 ticks, expected the maximum of 12", threads);
    policy_destroy(policy);
}
END_TEST

/* What the first five ticks decided. */
struct first_ticks
{
    LONG targets[5];
    enum policy_event events[5];
};

/* Ticks of callbacks that wait, from 2 threads: every thread inside a callback, 64 - threads
 * packets waiting, one callback ending per thread per tick, with the machine's CPUs
 * `per_thousand_busy` and this process's `per_thousand_in_process` busy.  Returns the tick at
 * which the pool had 64 threads, 0 if it never did. */
static LONG ticks_to_64_threads(enum policy_work work, LONG per_thousand_busy, LONG per_thousand_in_process,
                                struct first_ticks *first)
{
    struct policy *policy = policy_create(2, CPUS, work);
    struct policy_sample sample = { 0 };
    struct policy_decision decision;
    LONG threads = 2, i, reached = 0;

    for (i = 0; i < 40; i++)
    {
        sample.now_us = (i + 1) * POLICY_TICK_MS * 1000;
        sample.completions += threads;
        sample.threads = sample.busy = threads;
        sample.queued = 64 - threads;
        sample.floor = 1;
        sample.max = 1000;
        sample.cpu_total = (i + 1) * 1000;
        sample.cpu_idle = (i + 1) * (1000 - per_thousand_busy);
        sample.cpu_process = (i + 1) * per_thousand_in_process;
        policy_update(policy, &sample, &decision);
        ck_assert_msg(decision.target <= 2 * threads && decision.target <= 64, "tick %ld: %ld threads -> %ld", i,
                      threads, decision.target);
        if (i < 5)
        {
            first->targets[i] = decision.target;
            first->events[i] = decision.event;
        }
        threads = decision.target;
        if (threads == 64 && !reached)
            reached = i;
    }
    policy_destroy(policy);
    return reached;
}

/* Every thread is inside a callback, packets wait, callbacks still end (one per thread per tick),
 * but the CPUs idle: the callbacks wait rather than compute, and the pool takes a thread for
 * every two packets waiting, at most a doubling per jump.  The two free jumps come 40 ms apart;
 * after them, each jump but small ones waits until the threads of the last had 40 ms to pay, and
 * they do: 64 in flight from 2 threads. */
START_TEST(callbacks_that_wait_while_the_cpus_idle_get_a_thread_for_every_two_waiting)
{
    struct first_ticks first;
    LONG reached = ticks_to_64_threads(POLICY_WORK_IN_SYSTEM, 100, 0, &first), i;

    ck_assert_msg(first.events[1] == POLICY_NONE && first.targets[1] == 2, "tick 1: %s, target %ld",
                  policy_event_name(first.events[1]), first.targets[1]);  /* one tick of waiting is no jump */
    for (i = 2; i <= 4; i += 2)  /* the free jumps, from the second tick in a row, two ticks apart: 2 -> 4 -> 8 */
        ck_assert_msg(first.events[i] == POLICY_STARVING && first.targets[i] == 2 * first.targets[i - 1],
                      "tick %ld, %ld threads: %s, target %ld", i, first.targets[i - 1],
                      policy_event_name(first.events[i]), first.targets[i]);
    printf("waiting callbacks, idle CPUs: 64 threads at tick %ld\n", reached);
    ck_assert_msg(reached && reached <= 20, "64 threads at tick %ld, expected by tick 20", reached);
}
END_TEST

/* The same, with the completions of a tick as uneven as those of callbacks that block 50 ms
 * (they end in bursts): past the free jumps, a small jump's gain is lost in that noise, but small
 * jumps adding up to a quarter of the last jump that paid need no proof, so the last waiting
 * packets get their threads too. */
START_TEST(callbacks_that_wait_get_their_last_threads_without_proof)
{
    ULONG seed;

    for (seed = 1; seed <= 10; seed++)
    {
        struct policy *policy = policy_create(2, CPUS, POLICY_WORK_IN_SYSTEM);
        struct policy_sample sample = { 0 };
        struct policy_decision decision;
        LONG threads = 2, i, reached = -1;
        double completions = 0;

        noise_state = seed;
        for (i = 0; i < 50; i++)
        {
            completions += noisy(threads * 20.0 * POLICY_TICK_MS / 1000.0, 0.9);
            sample.now_us = (i + 1) * POLICY_TICK_MS * 1000;
            sample.completions = (LONG64)completions;
            sample.threads = sample.busy = threads;
            sample.queued = 64 - threads;
            sample.floor = 1;
            sample.max = 1000;
            sample.cpu_total = (i + 1) * 1000;
            sample.cpu_idle = (i + 1) * 900;  /* 10 % busy */
            policy_update(policy, &sample, &decision);
            threads = decision.target;
            if (threads == 64 && reached < 0)
                reached = i;
        }
        printf("waiting callbacks, uneven completions, seed %lu: 64 threads at tick %ld (%ld at the end)\n", seed,
               reached, threads);
        ck_assert_msg(reached >= 0 && threads == 64, "seed %lu: 64 threads at tick %ld, %ld at the end", seed, reached,
                      threads);
        policy_destroy(policy);
    }
}
END_TEST

/* Callbacks that block 50 ms, in steps of work: 64 in flight, 77 from 5 s, 83 from 35 s, 147
 * from 50 s.  The pool runs every thread busy with no packet waiting, so the jumps never end; the
 * step to 83 needs a proof and becomes the last proved jump (77 -> 81), with a rate before it
 * measured over 30 s, mostly at 77 threads.  When 64 more items arrive, its proof must not ask for
 * more than those few threads add (83 against 77: 8 %): they get their threads within a second. */
START_TEST(a_new_burst_of_blocking_work_gets_its_threads_after_a_long_busy_spell)
{
    struct policy *policy = policy_create(CPUS, CPUS, POLICY_WORK_IN_SYSTEM);
    struct policy_sample sample = { 0 };
    struct policy_decision decision;
    LONG threads = CPUS, i, reached = -1;
    double completions = 0;

    noise_state = 1;
    for (i = 0; i < 52000 / POLICY_TICK_MS; i++)
    {
        LONG in_flight = i < 5000 / POLICY_TICK_MS ? 64 : i < 35000 / POLICY_TICK_MS ? 77 :
                         i < 50000 / POLICY_TICK_MS ? 83 : 147;

        completions += noisy(min(threads, in_flight) * 20.0 * POLICY_TICK_MS / 1000.0, 0.05);
        tick_of_blocking_callbacks(policy, &sample, i, threads, completions, min(threads, in_flight),
                                   max(in_flight - threads, 0), &decision);
        threads = decision.target;
        if (in_flight == 147 && threads >= 147 && reached < 0)
            reached = i - 50000 / POLICY_TICK_MS;
    }
    printf("blocking work in steps: 147 threads %ld ticks after the last step (%ld at the end)\n", reached, threads);
    ck_assert_msg(reached >= 0 && reached <= 1000 / POLICY_TICK_MS, "147 threads %ld ticks after the step, %ld at "
                  "the end", reached, threads);
    policy_destroy(policy);
}
END_TEST

/* Tick `i` (from 0, one after another, on a sample that began zeroed) with each of `threads`
 * inside a callback: `finished` callbacks end, `queued` packets wait, the minimum is `floor` and
 * the CPUs are `per_thousand_busy` busy over the tick. */
static void tick_with_every_thread_busy(struct policy *policy, struct policy_sample *sample, LONG i, LONG threads,
                                        LONG finished, LONG queued, LONG floor, LONG per_thousand_busy,
                                        struct policy_decision *decision)
{
    sample->now_us = (i + 1) * POLICY_TICK_MS * 1000;
    sample->completions += finished;
    sample->threads = sample->busy = threads;
    sample->queued = queued;
    sample->floor = floor;
    sample->max = 1000;
    sample->cpu_total += 1000;
    sample->cpu_idle += 1000 - per_thousand_busy;
    policy_update(policy, sample, decision);
}

/* Tick `i` of callbacks that wait their turn at one lock: `finished` of them end however many
 * threads wait, `queued` packets wait, and the CPUs are 10 % busy. */
static void tick_of_callbacks_on_one_lock(struct policy *policy, struct policy_sample *sample, LONG i, LONG threads,
                                          LONG finished, LONG queued, struct policy_decision *decision)
{
    tick_with_every_thread_busy(policy, sample, i, threads, finished, queued, 1, 100, decision);
}

/* The same, but the callbacks wait their turn at one lock: as many finish per tick, however many
 * threads wait.  The two free jumps (2 -> 4 -> 8) do not pay, and no third follows. */
START_TEST(callbacks_that_wait_on_each_other_get_no_more_jumps)
{
    struct policy *policy = policy_create(2, CPUS, POLICY_WORK_IN_SYSTEM);
    struct policy_sample sample = { 0 };
    struct policy_decision decision;
    LONG threads = 2, i, jumps = 0;

    for (i = 0; i < 30; i++)
    {
        tick_of_callbacks_on_one_lock(policy, &sample, i, threads, 2, 1000, &decision);
        jumps += decision.event == POLICY_STARVING;
        threads = decision.target;
    }
    printf("callbacks on one lock: %ld jumps, %ld threads after 30 ticks\n", jumps, threads);
    ck_assert_msg(jumps == 2 && threads == 8, "%ld jumps, %ld threads; expected the 2 free jumps to 8", jumps,
                  threads);
    policy_destroy(policy);
}
END_TEST

/* The same over a minute: after WAITED_WINDOWS windows of threads that all waited, probes down
 * find that fewer threads finish as many, and the pool comes back down from the 8 that the free
 * jumps gave it. */
START_TEST(callbacks_that_wait_on_each_other_come_back_down)
{
    struct policy *policy = policy_create(2, CPUS, POLICY_WORK_IN_SYSTEM);
    struct policy_sample sample = { 0 };
    struct policy_decision decision;
    LONG threads = 2, i, peak = 2;

    for (i = 0; i < 60000 / POLICY_TICK_MS; i++)
    {
        tick_of_callbacks_on_one_lock(policy, &sample, i, threads, 2, 1000, &decision);
        threads = decision.target;
        peak = max(peak, threads);
    }
    printf("callbacks on one lock: peak %ld threads, %ld after a minute\n", peak, threads);
    ck_assert_msg(threads <= 4, "%ld threads after a minute (peak %ld); expected 4 or fewer", threads, peak);
    policy_destroy(policy);
}
END_TEST

/* Callbacks on one lock that requests reach a little faster than the lock serves them: one or two
 * packets wait at most ticks, and 2 callbacks finish per tick on average however many threads
 * wait.  Each jump would add one thread, a small one, but small jumps add up to a quarter of the
 * last jump that was free or paid and no more: after the free jumps to 4 threads, one more (3
 * jumps in 10 s, to 5 threads).  Where no packet waits at every tenth tick or for 8 ticks in 50,
 * the same: pauses while the threads all still wait bring no new free jumps.  Where the
 * completions of a tick vary (1 and 3, 4 1 1, 1 to 3 at random; never none, which is
 * starvation), a proof passes now and then on the noise, but no jump goes past 8 threads in
 * 10 s (a proof measured over one tick, or with a bar of a few per cent, took the pool to 10-102
 * threads).  Probes up may also try a count above, and find that it does not pay. */
enum lock_noise { EVEN, ONE_AND_THREE, FOUR_ONE_ONE, AT_RANDOM };

static LONG completions_on_one_lock(enum lock_noise noise, LONG i)
{
    switch (noise)
    {
    case EVEN: return 2;
    case ONE_AND_THREE: return 1 + 2 * (i % 2);
    case FOUR_ONE_ONE: return i % 3 == 1 ? 4 : 1;
    case AT_RANDOM: return 1 + (LONG)noisy(1.5, 0.99);  /* 1 to 3: a tick with none is starvation */
    }
    return 0;
}

START_TEST(callbacks_on_one_lock_with_a_packet_or_two_waiting_get_few_threads)
{
    static const struct { const char *name; enum lock_noise noise; LONG pause_every, pause_ticks; } variants[] =
    {
        { "even", EVEN, 0, 0 }, { "1 and 3 a tick", ONE_AND_THREE, 0, 0 }, { "4 1 1", FOUR_ONE_ONE, 0, 0 },
        { "at random", AT_RANDOM, 0, 0 }, { "no packet waiting every tenth tick", EVEN, 10, 1 },
        { "none waiting 8 ticks in 50", EVEN, 50, 8 }, { "at random, 8 ticks in 50", AT_RANDOM, 50, 8 },
    };
    const char *failed = NULL;
    size_t v;

    for (v = 0; v < ARRAYSIZE(variants); v++)
    {
        struct policy *policy = policy_create(2, CPUS, POLICY_WORK_IN_SYSTEM);
        struct policy_sample sample = { 0 };
        struct policy_decision decision;
        LONG threads = 2, i, jumps = 0, jumped_to = 0;

        noise_state = 1;
        for (i = 0; i < 10000 / POLICY_TICK_MS; i++)
        {
            BOOL pause = variants[v].pause_every &&
                         i % variants[v].pause_every >= variants[v].pause_every - variants[v].pause_ticks;

            tick_of_callbacks_on_one_lock(policy, &sample, i, threads, completions_on_one_lock(variants[v].noise, i),
                                          pause ? 0 : 1 + i % 2, &decision);
            if (decision.event == POLICY_STARVING)
            {
                jumps++;
                jumped_to = max(jumped_to, decision.target);
            }
            threads = decision.target;
        }
        printf("callbacks on one lock, 1-2 waiting, %s: %ld jumps, to %ld threads at most; %ld after 10 s\n",
               variants[v].name, jumps, jumped_to, threads);
        if (variants[v].noise == EVEN ? jumps != 3 || jumped_to != 5 : jumped_to > 8)
            failed = variants[v].name;
        policy_destroy(policy);
    }
    ck_assert_msg(!failed, "%s: more jumps than expected", failed);
}
END_TEST

/* SHORT_HOLD_US counts rounds in a row that held: a pool at 8 threads that held, then idled for a
 * minute, holds again when the work comes back, rather than probing down at once; so it does after
 * a new target or starvation. */
static void tick_short_with_cpus_busy(struct policy *policy, struct policy_sample *sample, LONG i,
                                      struct policy_decision *decision)
{
    sample->cpu_pool += 450;  /* half the CPUs' 90 % in the pool's threads */
    sample->cpu_process = -1;
    tick_with_every_thread_busy(policy, sample, i, 4 * CPUS, 400, 24, CPUS, 900, decision);  /* 20,000/s */
}

START_TEST(the_hold_of_a_short_pool_counts_rounds_in_a_row)
{
    struct policy *policy = policy_create(4 * CPUS, CPUS, POLICY_WORK_IN_SYSTEM);
    struct policy_sample sample = { 0 };
    struct policy_decision decision;
    LONG i, least = 4 * CPUS;

    for (i = 0; i < 10000 / POLICY_TICK_MS; i++)
    {
        tick_short_with_cpus_busy(policy, &sample, i, &decision);
        least = min(least, decision.target);
    }
    ck_assert_msg(least == 4 * CPUS, "before the idle spell: down to %ld threads", least);
    for (i = 70000 / POLICY_TICK_MS; i < 80000 / POLICY_TICK_MS; i++)
    {
        if (i == 70000 / POLICY_TICK_MS)
        {
            sample.now_us = (LONGLONG)(i + 1) * POLICY_TICK_MS * 1000;
            policy_resume(policy, &sample);
        }
        tick_short_with_cpus_busy(policy, &sample, i, &decision);
        least = min(least, decision.target);
    }
    printf("short pool after an idle minute: at least %ld threads for 10 s\n", least);
    ck_assert_msg(least == 4 * CPUS, "after an idle minute: down to %ld threads", least);
    policy_destroy(policy);
}
END_TEST

/* The same with the CPUs busy: the callbacks compute, and more threads would only contend. */
START_TEST(callbacks_that_keep_the_cpus_busy_get_no_thread_at_once)
{
    struct policy *policy = policy_create(2, CPUS, POLICY_WORK_IN_SYSTEM);
    struct policy_sample sample = { 0 };
    struct policy_decision decision;
    LONG i;

    for (i = 0; i < 5; i++)
    {
        tick_with_every_thread_busy(policy, &sample, i, 2, 20, 62, 1, 900, &decision);
        ck_assert_msg(decision.event == POLICY_NONE && decision.target == 2, "tick %ld: %s, target %ld", i,
                      policy_event_name(decision.event), decision.target);
    }
    policy_destroy(policy);
}
END_TEST

/* Pipe echo with 8 threads, the minimum, every one in a callback and packets waiting as always,
 * the CPUs 80 % busy: no probe goes up past 4 threads per CPU, nor down past the minimum, so every
 * tick reaches the rule.  Then one tick in which the CPUs read 33 % busy (the machine, or wineserver under Wine,
 * held every callback up: traced on pipe echo with 256 connections, where each such tick doubled
 * the pool, up to 64 threads), and later two such ticks in a row.  One tick is no jump; the
 * second tick in a row is. */
START_TEST(one_tick_of_waiting_callbacks_is_no_jump)
{
    struct policy *policy = policy_create(8, CPUS, POLICY_WORK_IN_SYSTEM);
    struct policy_sample sample = { 0 };
    struct policy_decision decision;
    LONG i;

    for (i = 0; i < 40; i++)
    {
        BOOL quiet = i == 20 || i == 30 || i == 31;

        tick_with_every_thread_busy(policy, &sample, i, 8, quiet ? 4 : 500, 64, 8, quiet ? 330 : 800, &decision);
        if (i == 31)
        {
            ck_assert_msg(decision.event == POLICY_STARVING && decision.target == 16,
                          "the second quiet tick in a row: %s, target %ld, expected a jump to 16",
                          policy_event_name(decision.event), decision.target);
            break;
        }
        ck_assert_msg(decision.event != POLICY_STARVING && decision.target <= 8, "tick %ld%s: %s, target %ld", i,
                      quiet ? " (quiet)" : "", policy_event_name(decision.event), decision.target);
    }
    policy_destroy(policy);
}
END_TEST

/* Work items, whose work is all in this process, judged by its own CPU time: another process
 * keeping the machine's CPUs 55 % busy does not hide items that wait (this process 3 % busy).
 * Every thread is in an item, 64 - threads items wait, one ends per thread per tick.  The jumps
 * come as with idle CPUs (2 -> 4 -> 8 at ticks 2 and 4, 64 threads by tick 20).  An I/O pool
 * given the same samples gets no thread at once (part of an I/O's work may be the system's, so
 * the busy CPUs may be its callbacks'), nor do work items that keep this process 65 % busy, nor
 * those that have a third of a machine whose CPUs other processes keep busy (they compute but get
 * too little CPU, and more threads would only contend). */
START_TEST(work_items_that_wait_get_their_threads_while_another_process_keeps_the_cpus_busy)
{
    struct first_ticks first;
    LONG reached;

    reached = ticks_to_64_threads(POLICY_WORK_IN_PROCESS, 550, 30, &first);
    printf("waiting work items, CPUs 55 %% busy, 3 %% with this process: 2 -> %ld, %ld, %ld, %ld, %ld threads; "
           "64 at tick %ld\n", first.targets[0], first.targets[1], first.targets[2], first.targets[3], first.targets[4],
           reached);
    ck_assert_msg(first.targets[1] == 2 && first.targets[2] == 4 && first.targets[4] == 8,
                  "ticks 1, 2 and 4: %ld, %ld and %ld threads, expected 2, 4 and 8", first.targets[1], first.targets[2],
                  first.targets[4]);
    ck_assert_msg(reached && reached <= 20, "64 threads at tick %ld, expected by tick 20", reached);

    ticks_to_64_threads(POLICY_WORK_IN_SYSTEM, 550, 30, &first);
    printf("waiting I/O callbacks, the same samples: 2 -> %ld, %ld, %ld, %ld, %ld threads\n", first.targets[0],
           first.targets[1], first.targets[2], first.targets[3], first.targets[4]);
    ck_assert_msg(first.targets[4] == 2, "I/O pool: %ld threads after 5 ticks, expected 2", first.targets[4]);

    ticks_to_64_threads(POLICY_WORK_IN_PROCESS, 700, 650, &first);
    ck_assert_msg(first.targets[4] == 2, "work items that compute: %ld threads after 5 ticks, expected 2",
                  first.targets[4]);

    ticks_to_64_threads(POLICY_WORK_IN_PROCESS, 1000, 330, &first);
    ck_assert_msg(first.targets[4] == 2, "work items that compute on a machine that other processes keep busy: "
                  "%ld threads after 5 ticks, expected 2", first.targets[4]);
}
END_TEST

/* Tick `i` of 16 chains of work items: `finished` end, every one of `threads` is in an item, the
 * others wait, and the machine's CPUs are `per_thousand_busy` busy, all of it this process's, in
 * the pool's own threads. */
static void tick_of_items(struct policy *policy, struct policy_sample *sample, LONG i, LONG threads, LONG finished,
                          LONG per_thousand_busy, struct policy_decision *decision)
{
    sample->cpu_process += per_thousand_busy;
    sample->cpu_pool += per_thousand_busy;
    tick_with_every_thread_busy(policy, sample, i, threads, finished, max(16 - threads, 0), CPUS, per_thousand_busy,
                                decision);
}

/* Items that compute 100 ms each on 2 CPUs: one ends every 2.5 ticks, however many threads run them. */
static LONG long_items_finished(LONG i)
{
    return (i + 1) * 2 / 5 - i * 2 / 5;
}

/* The first ticks of those samples: how many of the first five starved (of ticks 1 and 3, in which
 * none ends; tick 0 has none before it to judge by). */
static LONG starving_ticks_of_five(enum policy_work work, LONG per_thousand_busy)
{
    struct policy *policy = policy_create(CPUS, CPUS, work);
    struct policy_sample sample = { 0 };
    struct policy_decision decision;
    LONG threads = CPUS, i, starving = 0;

    for (i = 0; i < 5; i++)
    {
        tick_of_items(policy, &sample, i, threads, long_items_finished(i), per_thousand_busy, &decision);
        starving += decision.event == POLICY_STARVING;
        threads = decision.target;
    }
    policy_destroy(policy);
    return starving;
}

/* Items that compute for longer than a tick leave ticks in which none finishes; on 2 CPUs one
 * ends every 50 ms, however many threads run them.  Traced with the host program (16 chains of
 * 100 ms items), each such tick added a thread, up to 17.  They get none: the process kept the
 * CPUs busy, so the items computed rather than blocked.  If they stop finishing altogether (items
 * that spin until one behind them runs), a thread comes a second after the last one finished,
 * and the next a second later.  The same ticks still starve at once with a CPU free (the process
 * 50 % of the machine: one item computes, and one may wait for an item behind it), and for an I/O
 * pool, whose CPU reading is the machine's, other processes' work included. */
START_TEST(work_items_that_compute_for_longer_than_a_tick_get_no_thread_for_it)
{
    struct policy *policy = policy_create(CPUS, CPUS, POLICY_WORK_IN_PROCESS);
    struct policy_sample sample = { 0 };
    struct policy_decision decision;
    LONG threads = CPUS, most = CPUS, i, last_finished = -1, starved[2] = { 0 }, starvations = 0, starving;

    for (i = 0; i < 250; i++)
    {
        /* 5 s of them */
        if (long_items_finished(i))
            last_finished = i;
        tick_of_items(policy, &sample, i, threads, long_items_finished(i), 1000, &decision);
        ck_assert_msg(decision.event != POLICY_STARVING, "tick %ld, %ld threads: starving, target %ld", i, threads,
                      decision.target);
        threads = decision.target;
        most = max(most, threads);
    }
    printf("items of 100 ms on %d CPUs: at most %ld threads in 5 s, %ld at the end\n", CPUS, most, threads);
    ck_assert_msg(most <= CPUS + 1, "%ld threads at most, expected one past the CPUs at most", most);

    for (; i < 400 && starvations < 2; i++)
    {
        /* then none ends, 3 s */
        tick_of_items(policy, &sample, i, threads, 0, 1000, &decision);
        if (decision.event == POLICY_STARVING)
        {
            ck_assert_msg(decision.target == threads + 1, "tick %ld, %ld threads: starving, target %ld", i, threads,
                          decision.target);
            starved[starvations++] = i;
        }
        threads = decision.target;
    }
    printf("then none ends: a thread at ticks %ld and %ld (the last ended at tick %ld)\n", starved[0], starved[1],
           last_finished);
    ck_assert_msg(starvations == 2 && starved[0] == last_finished + 50 && starved[1] == starved[0] + 50,
                  "starving at ticks %ld and %ld, expected %ld and %ld", starved[0], starved[1], last_finished + 50,
                  last_finished + 100);
    policy_destroy(policy);

    starving = starving_ticks_of_five(POLICY_WORK_IN_PROCESS, 500);
    ck_assert_msg(starving == 2, "a CPU free: %ld of the first 5 ticks starved, expected the 2 that can", starving);
    starving = starving_ticks_of_five(POLICY_WORK_IN_SYSTEM, 1000);
    ck_assert_msg(starving == 2, "an I/O pool: %ld of the first 5 ticks starved, expected the 2 that can", starving);
}
END_TEST

/* Work items that hold every thread while another process keeps the machine's CPUs 55 % busy
 * (this process 5 %): from 64 threads, one for each item, no probe down for 15 s, as with idle
 * CPUs.  An I/O pool, judged by the machine's CPU time, probes down. */
START_TEST(waiting_work_items_are_not_probed_down_while_another_process_keeps_the_cpus_busy)
{
    static const enum policy_work works[] = { POLICY_WORK_IN_PROCESS, POLICY_WORK_IN_SYSTEM };
    LONG probes_down[2];
    size_t w;

    for (w = 0; w < ARRAYSIZE(works); w++)
    {
        struct policy *policy = policy_create(64, CPUS, works[w]);
        struct policy_sample sample = { 0 };
        struct policy_decision decision;
        LONG threads = 64, i;
        double completions = 0;

        noise_state = 1;
        probes_down[w] = 0;
        for (i = 0; i < 15000 / POLICY_TICK_MS; i++)
        {
            completions += noisy(rate_blocking(NULL, threads), 0.05) * POLICY_TICK_MS / 1000.0;
            sample.now_us = (LONGLONG)(i + 1) * POLICY_TICK_MS * 1000;
            sample.completions = (LONG64)completions;
            sample.threads = threads;
            sample.busy = min(threads, 64);
            sample.queued = max(64 - threads, 0);
            sample.floor = CPUS;
            sample.max = 1000;
            sample.cpu_total = (i + 1) * 1000;
            sample.cpu_idle = (i + 1) * 450;
            sample.cpu_process = (i + 1) * 50;
            policy_update(policy, &sample, &decision);
            threads = decision.target;
            probes_down[w] += decision.event == POLICY_PROBE && decision.to < decision.from;
        }
        policy_destroy(policy);
    }
    printf("blocking callbacks, CPUs 55 %% busy, 5 %% with this process: %ld probes down in 15 s for work items, "
           "%ld for I/O\n", probes_down[0], probes_down[1]);
    ck_assert_msg(probes_down[0] == 0, "work items: %ld probes down in 15 s", probes_down[0]);
    ck_assert_msg(probes_down[1] > 0, "I/O: no probe down in 15 s; the machine's busy CPUs should allow them");
}
END_TEST

/* When the host moves the limits, the target is inside them from that tick on. */
START_TEST(target_follows_the_limits_at_once)
{
    struct model model = { .name = "rising, then flat", .rate = rate_from_points, .points = light_posted,
                           .cpus_busy = PART_WAITING, .saturated = TRUE, .noise = 0.02, .in_flight = 64 };
    struct policy *policy = policy_create(2, CPUS, POLICY_WORK_IN_SYSTEM);
    struct policy_sample sample = { 0 };
    struct policy_decision decision;
    double completions = 0;
    LONG threads = 2, i;

    for (i = 0; i < 500; i++)
    {
        completions += model.rate(&model, threads) * POLICY_TICK_MS / 1000.0;
        sample.now_us = (i + 1) * POLICY_TICK_MS * 1000;
        sample.completions = (LONG64)completions;
        sample.threads = sample.busy = threads;
        sample.queued = 16;
        sample.floor = i < 300 ? 2 : 5;
        sample.max = i < 300 ? 1000 : 6;
        policy_update(policy, &sample, &decision);
        if (i == 299)
        {
            printf("limits: %ld threads before the limits move to 5-6\n", decision.target);
            ck_assert_msg(decision.target > 6, "target %ld before the limits move; it should have climbed past 6",
                          decision.target);
        }
        if (i >= 300)
            ck_assert_msg(decision.target >= 5 && decision.target <= 6, "tick %ld: target %ld outside the limits 5-6",
                          i, decision.target);
        threads = decision.target;
    }
    policy_destroy(policy);
}
END_TEST

int main(void)
{
    const struct test_case cases[] =
    {
        TEST_CASE(finds_many_threads_where_they_pay),
        TEST_CASE(an_io_pool_short_of_threads_with_the_cpus_busy_is_not_probed_down),
        TEST_CASE(the_hold_of_a_short_pool_counts_rounds_in_a_row),
        TEST_CASE(an_io_pool_short_of_threads_climbs_to_4_per_cpu_on_a_noisy_machine),
        TEST_CASE(callbacks_that_compute_in_the_pool_get_one_thread_past_the_cpus_at_most),
        TEST_CASE(blocking_callbacks_that_hold_every_thread_are_not_probed_down),
        TEST_CASE(the_pools_cpu_time_is_read_only_where_a_window_begins_or_ends),
        TEST_CASE(a_host_that_starts_beside_a_computing_pool_does_not_make_it_double),
        TEST_CASE(stays_low_where_more_threads_do_not_pay),
        TEST_CASE(stays_low_where_more_threads_cost),
        TEST_CASE(a_modest_gain_ends_the_climb_below_a_doubling_too),
        TEST_CASE(does_not_probe_down_to_a_count_it_climbed_from),
        TEST_CASE(keeps_its_bounds_on_a_noisy_machine),
        TEST_CASE(a_slow_spell_that_ends_while_it_compares_counts_is_not_a_gain),
        TEST_CASE(keeps_climbing_on_a_machine_that_jolts),
        TEST_CASE(keeps_its_bounds_when_the_machine_slows_for_spells),
        TEST_CASE(slow_spells_do_not_make_it_forget_what_did_not_pay),
        TEST_CASE(tries_again_a_count_that_measured_low_once),
        TEST_CASE(climbs_past_8_threads_per_cpu_only_on_large_gains),
        TEST_CASE(stops_at_4_threads_per_cpu_while_the_cpus_are_busy),
        TEST_CASE(a_window_just_under_80_percent_busy_does_not_let_a_probe_double),
        TEST_CASE(climbs_again_when_a_slow_period_ends),
        TEST_CASE(grows_fast_for_blocking_callbacks),
        TEST_CASE(grows_fast_when_a_tenth_of_callbacks_block),
        TEST_CASE(callbacks_that_wait_while_the_cpus_idle_get_a_thread_for_every_two_waiting),
        TEST_CASE(callbacks_that_wait_get_their_last_threads_without_proof),
        TEST_CASE(a_new_burst_of_blocking_work_gets_its_threads_after_a_long_busy_spell),
        TEST_CASE(callbacks_that_keep_the_cpus_busy_get_no_thread_at_once),
        TEST_CASE(one_tick_of_waiting_callbacks_is_no_jump),
        TEST_CASE(work_items_that_wait_get_their_threads_while_another_process_keeps_the_cpus_busy),
        TEST_CASE(work_items_that_compute_for_longer_than_a_tick_get_no_thread_for_it),
        TEST_CASE(waiting_work_items_are_not_probed_down_while_another_process_keeps_the_cpus_busy),
        TEST_CASE(callbacks_that_wait_on_each_other_get_no_more_jumps),
        TEST_CASE(callbacks_that_wait_on_each_other_come_back_down),
        TEST_CASE(callbacks_on_one_lock_with_a_packet_or_two_waiting_get_few_threads),
        TEST_CASE(climbs_again_when_callbacks_start_to_wait),
        TEST_CASE(probes_up_by_a_thread_for_every_two_packets_that_wait),
        TEST_CASE(idle_pool_keeps_its_target),
        TEST_CASE(a_pool_that_idled_starts_afresh_when_work_comes_back),
        TEST_CASE(a_hold_goes_on_through_an_idle_spell),
        TEST_CASE(starvation_adds_a_thread_every_tick_up_to_the_maximum),
        TEST_CASE(target_follows_the_limits_at_once),
    };

    /* check cannot fork here, so only a process of its own gives each case a time limit. */
    return run_cases_in_own_processes(suite_of_cases("policy", cases, ARRAYSIZE(cases), NULL, NULL), cases,
                                      ARRAYSIZE(cases));
}
