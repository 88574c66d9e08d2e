/* hostiocp-bench: the same workloads, in one process and one run, through (a) a bare
 * completion-port loop, (b) hostiocp, (c) the Windows thread pool (TP_IO) and
 * (d) BindIoCompletionCallback; completions/s as the median of several runs and as a ratio to
 * the bare loop, with latency percentiles, then hostiocp's memory costs. --policy compares
 * hostiocp's default limits with fixed pools; --peers compares every dispatcher at its own
 * defaults, the CLR's own pool (a model) among them, and ends with the blocking storm. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ole2.h>
#include <psapi.h>
#include "hostiocp.h"
#include "iobench.h"

#define MAX_REPEAT 15
#define MAX_COLUMNS 12

struct bench_options
{
    const char *workloads[8];
    int workload_count;
    DWORD threads[8];
    int thread_count;
    int repeat;
    double duration;
    double warmup;
    DWORD concurrency;
    BOOL json;
    BOOL policy;
    BOOL peers;
    BOOL verbose;           /* print every run as it ends */
    const char *scenario;   /* with --policy or --peers: only the rows whose name contains it */
    const char *baseline;   /* with --peers: another build of hostiocp.dll, run as a column of its own */
    DWORD cpus;
    BOOL duration_given;
    const struct dispatcher_ops *dispatchers[MAX_COLUMNS];  /* the columns of the dispatcher table */
    int dispatcher_count;
};

struct measurement
{
    double rate, p50, p99;
    double cpu_us;           /* the process's CPU time per completion over the measured part */
    DWORD callback_threads;  /* distinct threads that ran a callback */
    DWORD peak_threads, final_target;
    ULONGLONG raised, lowered;
    LONG64 errors, verify_failures;
};

/* One column of a row: how to set up the dispatcher for one run. */
struct column
{
    const char *name;
    const struct dispatcher_ops *ops;
    DWORD threads, min_threads, max_threads;
};

/* One row: a workload and how its callbacks behave. */
struct scenario
{
    const char *name;
    const char *workload;
    DWORD concurrency, work_us, block_ms, block_every;
};

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(const double *values, int count)
{
    double sorted[MAX_REPEAT];

    memcpy(sorted, values, count * sizeof(*values));
    qsort(sorted, count, sizeof(*sorted), compare_doubles);
    return count % 2 ? sorted[count / 2] : (sorted[count / 2 - 1] + sorted[count / 2]) / 2;
}

static void range_of(const double *values, int count, double *low, double *high)
{
    int i;

    *low = *high = values[0];
    for (i = 1; i < count; i++)
    {
        *low = min(*low, values[i]);
        *high = max(*high, values[i]);
    }
}

static BOOL measure_once(const struct column *c, const struct scenario *s, const struct bench_options *o,
                         struct measurement *m)
{
    struct dispatcher d;
    struct workload_options w = { s->workload, s->concurrency, 4096, 16 << 20, o->duration, 0, FALSE,
                                  s->work_us, s->block_ms, s->block_every, o->warmup, 0 };
    struct run run;
    BOOL ok;

    dispatcher_init(&d, c->ops, c->threads);
    d.min_threads = c->min_threads;
    d.max_threads = c->max_threads;
    ok = run_workload(&d, &w, &run);
    if (!ok)
        fprintf(stderr, "hostiocp-bench: %s through %s: %s\n", s->name, c->name, d.error[0] ? d.error : "did not finish");
    if (ok && run.seconds < o->duration / 2)
    {
        fprintf(stderr, "hostiocp-bench: %s through %s: the measured part lasted %.2f s of %.2f s: the set-up "
                "outlasted the warm-up, or the workload ended early\n", s->name, c->name, run.seconds, o->duration);
        ok = FALSE;
    }
    if (ok && run.seconds > o->duration * 3 / 2)
    {
        fprintf(stderr, "hostiocp-bench: %s through %s: the measured part lasted %.2f s of %.2f s: no request "
                "ended a round while it ran\n", s->name, c->name, run.seconds, o->duration);
        ok = FALSE;
    }
    m->rate = run.seconds > 0 ? run.measured_operations / run.seconds : 0;
    m->p50 = latency_percentile_us(&run.latency, 0.5);
    m->p99 = latency_percentile_us(&run.latency, 0.99);
    m->cpu_us = run.cpu_operations > 0 ? run.cpu_seconds * 1e6 / run.cpu_operations : 0;
    m->callback_threads = run.callback_threads;
    m->peak_threads = d.threads_peak;
    m->final_target = d.threads_target;
    m->raised = d.target_raised;
    m->lowered = d.target_lowered;
    m->errors = run.errors;
    m->verify_failures = run.verify_failures;
    free_run(&run);
    return ok;
}

/* Runs every column once per round, in an order that rotates from round to round, so that a
 * machine that drifts shifts every column alike. */
static BOOL measure_row(const struct column *columns, int count, const struct scenario *s,
                        const struct bench_options *o, struct measurement runs[][MAX_COLUMNS])
{
    BOOL ok = TRUE;
    int round, i;

    for (round = 0; round < o->repeat; round++)
        for (i = 0; i < count; i++)
        {
            int c = (i + round) % count;
            if (!measure_once(&columns[c], s, o, &runs[round][c]))
                ok = FALSE;
            if (o->verbose)
                fprintf(stderr, "%s, round %d, %s: %.0f/s, %.2f us CPU each, peak %lu threads, target %lu at the "
                        "end (raised %llu, lowered %llu times)\n", s->name, round + 1, columns[c].name,
                        runs[round][c].rate, runs[round][c].cpu_us, runs[round][c].peak_threads,
                        runs[round][c].final_target, runs[round][c].raised, runs[round][c].lowered);
            if (runs[round][c].errors || runs[round][c].verify_failures)
                ok = FALSE;
        }
    return ok;
}

/* ---- the dispatcher comparison: each against the bare loop, by round ---- */

/* One dispatcher's line of a row: its median rate and its ratio to the bare loop (column 0). */
static void report_dispatcher(const struct bench_options *o, int w, int t, int i,
                              struct measurement runs[][MAX_COLUMNS], BOOL first)
{
    double rates[MAX_REPEAT], ratios[MAX_REPEAT], p50[MAX_REPEAT], p99[MAX_REPEAT], low, high;
    const char *threads_note = o->dispatchers[i] == &bindio_ops ? " (system's)" : "";
    int round;

    for (round = 0; round < o->repeat; round++)
    {
        rates[round] = runs[round][i].rate;
        ratios[round] = runs[round][0].rate ? runs[round][i].rate / runs[round][0].rate : 0;
        p50[round] = runs[round][i].p50;
        p99[round] = runs[round][i].p99;
    }
    range_of(ratios, o->repeat, &low, &high);
    if (o->json)
        printf("%s\n    {\"workload\": \"%s\", \"threads\": %lu, \"dispatcher\": \"%s\", "
               "\"completions_per_second\": %.0f, \"ratio_to_bare\": %.3f, \"ratio_low\": %.3f, "
               "\"ratio_high\": %.3f, \"p50_us\": %.1f, \"p99_us\": %.1f}", first ? "" : ",",
               o->workloads[w], o->threads[t], o->dispatchers[i]->name, median(rates, o->repeat),
               median(ratios, o->repeat), low, high, median(p50, o->repeat), median(p99, o->repeat));
    else
        printf("%-10s %7lu  %-26s %14.0f %7.3f  [%.3f-%.3f] %8.1f %8.1f%s\n", o->workloads[w],
               o->threads[t], o->dispatchers[i]->name, median(rates, o->repeat), median(ratios, o->repeat),
               low, high, median(p50, o->repeat), median(p99, o->repeat), threads_note);
}

static int run_dispatcher_table(const struct bench_options *o)
{
    struct measurement runs[MAX_REPEAT][MAX_COLUMNS];
    struct column columns[MAX_COLUMNS];
    int status = 0, w, t, i;
    BOOL first = TRUE;

    if (o->json)
        printf("{\"bits\": %d, \"rounds\": %d, \"duration\": %.2f, \"concurrency\": %lu, \"results\": [",
               (int)sizeof(void *) * 8, o->repeat, o->duration, o->concurrency);
    else
        printf("hostiocp-bench (%d-bit): %d rounds of %.1f s, dispatchers interleaved round by round; %lu requests "
               "in flight, 4 KiB blocks\nratio: median over rounds of the rate over the bare loop's in the same round "
               "[lowest-highest]\n%-10s %7s  %-26s %14s %7s %15s %8s %8s\n", (int)sizeof(void *) * 8, o->repeat,
               o->duration, o->concurrency, "workload", "threads", "dispatcher", "completions/s", "ratio", "range",
               "p50 us", "p99 us");
    for (w = 0; w < o->workload_count; w++)
        for (t = 0; t < o->thread_count; t++)
        {
            struct scenario s = { o->workloads[w], o->workloads[w], o->concurrency, 0, 0, 1 };

            for (i = 0; i < o->dispatcher_count; i++)
            {
                columns[i].name = o->dispatchers[i]->name;
                columns[i].ops = o->dispatchers[i];
                columns[i].threads = o->threads[t];
                columns[i].min_threads = columns[i].max_threads = 0;
            }
            if (!measure_row(columns, o->dispatcher_count, &s, o, runs))
                status = 1;
            for (i = 0; i < o->dispatcher_count; i++, first = FALSE)
                report_dispatcher(o, w, t, i, runs, first);
        }
    if (o->json)
        printf("\n  ]");
    return status;
}

/* ---- the thread-policy table: hostiocp's default limits against fixed pools ---- */

static const struct scenario policy_scenarios[] =
{
    { "posted, 3 us callbacks", "posted", 64, 3, 0, 1 },
    { "posted, 30 us callbacks", "posted", 64, 30, 0, 1 },
    { "pipe echo, 16 conns", "pipe", 16, 0, 0, 1 },
    { "pipe echo, 256 conns", "pipe", 256, 0, 0, 1 },
    { "tcp echo, 16 conns", "tcp", 16, 0, 0, 1 },
    { "tcp echo, 256 conns", "tcp", 256, 0, 0, 1 },
    { "posted, all block 50 ms", "posted", 64, 0, 50, 1 },
    { "posted, 10% block 50 ms", "posted", 64, 0, 50, 10 },
};

static const DWORD policy_multiples[] = { 1, 2, 4, 8, 32 };
#define POLICY_COLUMNS (1 + ARRAYSIZE(policy_multiples))

/* hostiocp with the CLR's default limits, then with fixed pools of multiples of the CPUs. */
static void set_up_policy_columns(const struct bench_options *o, struct column *columns,
                                  char names[][32])
{
    size_t c;

    columns[0].name = "default";
    columns[0].ops = &hostiocp_ops;
    columns[0].threads = o->cpus;
    columns[0].min_threads = o->cpus;
    columns[0].max_threads = HOSTIOCP_MAX_THREADS_LIMIT;
    for (c = 1; c < POLICY_COLUMNS; c++)
    {
        snprintf(names[c - 1], 32, "%lu fixed", policy_multiples[c - 1] * o->cpus);
        columns[c].name = names[c - 1];
        columns[c].ops = &hostiocp_ops;
        columns[c].threads = columns[c].min_threads = columns[c].max_threads = policy_multiples[c - 1] * o->cpus;
    }
}

static void print_policy_header(const struct bench_options *o, const struct column *columns)
{
    size_t c;

    printf("hostiocp-bench --policy (%d-bit, %lu CPUs): hostiocp with the CLR's default limits (min %lu, max %u) "
           "against hostiocp with fixed pools; %d rounds, columns interleaved round by round, each run %.1f s "
           "warm-up + %.1f s measured; cells: median completions/s\nratio: median over rounds of default / the fixed "
           "pool with the best median, in the same round [lowest-highest]; peak: default's most threads;\nbound: 2 x "
           "the smallest fixed pool within 0.9 of the best fixed pool of the same round, at median over rounds, + CPUs\n%-24s",
           (int)sizeof(void *) * 8, o->cpus, o->cpus, HOSTIOCP_MAX_THREADS_LIMIT, o->repeat, o->warmup, o->duration,
           "scenario");
    for (c = 0; c < POLICY_COLUMNS; c++)
        printf(" %9s", columns[c].name);
    printf(" %7s %15s %5s %6s %s\n", "ratio", "range", "peak", "bound", "");
}

/* The smallest fixed pool whose rate, over the rounds, is at median within 0.9 of the best fixed
 * pool of the same round: a machine that drifts from round to round shifts every column alike. */
static DWORD smallest_good_pool(const struct bench_options *o, const struct column *columns,
                                struct measurement runs[][MAX_COLUMNS])
{
    double round_best[MAX_REPEAT] = { 0 }, shares[MAX_REPEAT];
    int round, c;

    for (round = 0; round < o->repeat; round++)
        for (c = 1; c < (int)POLICY_COLUMNS; c++)
            round_best[round] = max(round_best[round], runs[round][c].rate);
    for (c = 1; c < (int)POLICY_COLUMNS; c++)
    {
        for (round = 0; round < o->repeat; round++)
            shares[round] = round_best[round] ? runs[round][c].rate / round_best[round] : 0;
        if (median(shares, o->repeat) >= 0.9)
            return columns[c].threads;
    }
    return columns[POLICY_COLUMNS - 1].threads;
}

/* One row: each column's median rate, default against the best fixed pool, round by round. */
static void report_policy_row(const struct bench_options *o, const struct scenario *s, const struct column *columns,
                              struct measurement runs[][MAX_COLUMNS], BOOL ok)
{
    double medians[MAX_COLUMNS], ratios[MAX_REPEAT], best = 0, low, high, ratio;
    DWORD peak = 0, smallest_good = 0, bound;
    int best_column = 1, round, c;

    for (c = 0; c < (int)POLICY_COLUMNS; c++)
    {
        double rates[MAX_REPEAT];
        for (round = 0; round < o->repeat; round++)
            rates[round] = runs[round][c].rate;
        medians[c] = median(rates, o->repeat);
    }
    for (c = 1; c < (int)POLICY_COLUMNS; c++)
        if (medians[c] > best)
        {
            best = medians[c];
            best_column = c;
        }
    for (round = 0; round < o->repeat; round++)
    {
        double fixed = runs[round][best_column].rate;
        ratios[round] = fixed ? runs[round][0].rate / fixed : 0;
        peak = max(peak, runs[round][0].peak_threads);
    }
    smallest_good = smallest_good_pool(o, columns, runs);
    bound = 2 * smallest_good + o->cpus;
    ratio = median(ratios, o->repeat);
    range_of(ratios, o->repeat, &low, &high);
    printf("%-24s", s->name);
    for (c = 0; c < (int)POLICY_COLUMNS; c++)
        printf(" %9.0f", medians[c]);
    printf(" %7.3f  [%.3f-%.3f] %5lu %6lu %s\n", ratio, low, high, peak, bound,
           !ok ? "ERRORS" : ratio >= 0.9 && peak <= bound ? "ok" : "MISSED");
}

static int run_policy_table(const struct bench_options *o)
{
    struct measurement runs[MAX_REPEAT][MAX_COLUMNS];
    struct column columns[POLICY_COLUMNS];
    char names[ARRAYSIZE(policy_multiples)][32];
    int status = 0;
    size_t row;

    set_up_policy_columns(o, columns, names);
    print_policy_header(o, columns);
    for (row = 0; row < ARRAYSIZE(policy_scenarios); row++)
    {
        const struct scenario *s = &policy_scenarios[row];
        BOOL ok;

        if (o->scenario && !strstr(s->name, o->scenario))
            continue;
        ok = measure_row(columns, POLICY_COLUMNS, s, o, runs);
        report_policy_row(o, s, columns, runs, ok);
        if (!ok)
            status = 1;
    }
    return status;
}

/* ---- the peers table: each dispatcher a host author could pick, at its own defaults ---- */

/* A row of the peers table; port_only: packets posted to a completion port, which only the
 * dispatchers with a port of their own can take (TP_IO and BindIoCompletionCallback would run
 * an in-process queue instead, which is another thing). */
struct peer_scenario
{
    struct scenario s;
    BOOL port_only;
};

static const struct peer_scenario peer_scenarios[] =
{
    { { "posted, 3 us callbacks", "posted", 64, 3, 0, 1 }, TRUE },
    { { "posted, 30 us callbacks", "posted", 64, 30, 0, 1 }, TRUE },
    { { "file reads, 16 in flight", "file-read", 16, 0, 0, 1 }, FALSE },
    { { "pipe echo, 16 conns", "pipe", 16, 0, 0, 1 }, FALSE },
    { { "pipe echo, 256 conns", "pipe", 256, 0, 0, 1 }, FALSE },
    { { "tcp echo, 16 conns", "tcp", 16, 0, 0, 1 }, FALSE },
    { { "tcp echo, 256 conns", "tcp", 256, 0, 0, 1 }, FALSE },
    /* Echo rather than posted packets, so that every peer takes part. */
    { { "pipe echo 64, 1 in 10 block 50 ms", "pipe", 64, 0, 50, 10 }, FALSE },
    { { "pipe echo 64, all block 50 ms", "pipe", 64, 0, 50, 1 }, FALSE },
};

/* The work-item rows: 64 items in flight, each queueing the next as it ends. */
static const struct peer_scenario work_scenarios[] =
{
    { { "work items, 3 us", "posted", 64, 3, 0, 1 }, FALSE },
    { { "work items, 30 us", "posted", 64, 30, 0, 1 }, FALSE },
    { { "work items, 1 in 10 block 50 ms", "posted", 64, 0, 50, 10 }, FALSE },
    { { "work items, all block 50 ms", "posted", 64, 0, 50, 1 }, FALSE },
};

#define PEER_HOSTIOCP 0              /* hostiocp is the first column of each table */
static const DWORD bare_multiples[] = { 1, 2, 4, 8, 16 };
#define MAX_PEERS 5                  /* hostiocp and the peers; the bare loops follow, then the baseline */
#define MAX_PEER_COLUMNS (MAX_PEERS + ARRAYSIZE(bare_multiples) + 1)

struct peer_column
{
    const char *name;
    const struct dispatcher_ops *ops;
};

/* A table of dispatchers at their own defaults: columns [0, peers) are hostiocp and its peers,
 * [peers, bare_end) the bare loops, then the --baseline column if there is one. */
struct peer_table
{
    const char *storm_name;
    const struct peer_scenario *rows;
    size_t row_count;
    struct column columns[MAX_PEER_COLUMNS];
    char names[ARRAYSIZE(bare_multiples)][32];
    int peers, bare_end, count;
    int baseline;                    /* the baseline DLL's column, or -1 */
};

/* hostiocp and its peers, as they come. */
static void set_up_peers(struct peer_table *t, const struct peer_column *peers, int count)
{
    int c;

    assert(count <= MAX_PEERS);
    ZeroMemory(t->columns, sizeof(t->columns));
    for (c = 0; c < count; c++)
    {
        t->columns[c].name = peers[c].name;
        t->columns[c].ops = peers[c].ops;
    }
    t->peers = t->bare_end = t->count = count;
    t->baseline = -1;
}

/* The bare loops at fixed multiples of the CPUs, after the peers. */
static void add_bare_loops(struct peer_table *t, const struct bench_options *o)
{
    size_t m;

    for (m = 0; m < ARRAYSIZE(bare_multiples); m++)
    {
        struct column *c = &t->columns[t->count++];

        snprintf(t->names[m], sizeof(t->names[m]), "bare loop, %lu fixed", bare_multiples[m] * o->cpus);
        c->name = t->names[m];
        c->ops = &bare_port_ops;
        c->threads = bare_multiples[m] * o->cpus;
    }
    t->bare_end = t->count;
}

/* With --baseline: hostiocp as set up, from the other DLL, last. */
static void add_baseline(struct peer_table *t, const struct bench_options *o, const struct dispatcher_ops *ops)
{
    if (!o->baseline)
        return;
    t->baseline = t->count++;
    t->columns[t->baseline] = t->columns[PEER_HOSTIOCP];
    t->columns[t->baseline].name = "hostiocp, baseline DLL";
    t->columns[t->baseline].ops = ops;
}

static void set_up_io_table(struct peer_table *t, const struct bench_options *o)
{
    static const struct peer_column peers[] =
    {
        { "hostiocp, CLR limits", &hostiocp_ops },
        { "CLR pool model", &clr_pool_ops },
        { "TP_IO, default pool", &threadpool_default_ops },
        { "TP_IO, private pool", &threadpool_ops },
        { "BindIoCompletionCallback", &bindio_ops },
    };

    t->storm_name = "blocking storm";
    t->rows = peer_scenarios;
    t->row_count = ARRAYSIZE(peer_scenarios);
    set_up_peers(t, peers, ARRAYSIZE(peers));
    /* hostiocp with the limits the CLR's own pool has: what --policy calls "default". */
    t->columns[PEER_HOSTIOCP].threads = t->columns[PEER_HOSTIOCP].min_threads = o->cpus;
    t->columns[PEER_HOSTIOCP].max_threads = HOSTIOCP_MAX_THREADS_LIMIT;
    add_bare_loops(t, o);
    add_baseline(t, o, &hostiocp_baseline_ops);
}

/* Work items have no bare loop: each pool is its own queue. hostiocp's worker pool keeps its own
 * defaults: the CLR sets no worker limits unless managed code does. */
static void set_up_work_table(struct peer_table *t, const struct bench_options *o)
{
    static const struct peer_column peers[] =
    {
        { "hostiocp work items", &hostiocp_work_ops },
        { "CLR worker pool model", &clr_workers_ops },
        { "TrySubmitThreadpoolCallback", &submit_callback_ops },
        { "QueueUserWorkItem", &queue_user_work_item_ops },
    };

    t->storm_name = "work-item blocking storm";
    t->rows = work_scenarios;
    t->row_count = ARRAYSIZE(work_scenarios);
    set_up_peers(t, peers, ARRAYSIZE(peers));
    add_baseline(t, o, &hostiocp_work_baseline_ops);
}

static BOOL has_own_port(const struct column *c)
{
    return c->ops != &threadpool_ops && c->ops != &threadpool_default_ops && c->ops != &bindio_ops;
}

/* The pools that do not report their threads are counted by the threads that ran a callback. */
static DWORD threads_of(const struct measurement *m, BOOL *counted_by_callbacks)
{
    *counted_by_callbacks = !m->peak_threads;
    return m->peak_threads ? m->peak_threads : m->callback_threads;
}

/* Medians of one column over the rounds, and its most threads. */
struct column_summary
{
    double rate, p50, p99, cpu_us;
    DWORD peak;
    BOOL counted_by_callbacks;
};

static void summarise_column(const struct bench_options *o, struct measurement runs[][MAX_COLUMNS], int k,
                             struct column_summary *summary)
{
    double rates[MAX_REPEAT], p50[MAX_REPEAT], p99[MAX_REPEAT], cpu[MAX_REPEAT];
    int round;

    summary->peak = 0;
    for (round = 0; round < o->repeat; round++)
    {
        rates[round] = runs[round][k].rate;
        p50[round] = runs[round][k].p50;
        p99[round] = runs[round][k].p99;
        cpu[round] = runs[round][k].cpu_us;
        summary->peak = max(summary->peak, threads_of(&runs[round][k], &summary->counted_by_callbacks));
    }
    summary->rate = median(rates, o->repeat);
    summary->p50 = median(p50, o->repeat);
    summary->p99 = median(p99, o->repeat);
    summary->cpu_us = median(cpu, o->repeat);
}

static void print_peer_line(const char *name, const struct column_summary *s)
{
    printf("  %-30s %12.0f %5lu%s %9.1f %9.1f %9.2f\n", name, s->rate, s->peak, s->counted_by_callbacks ? "*" : " ",
           s->p50, s->p99, s->cpu_us);
}

/* The columns a row runs (posted rows: only those with a port), packed; ran[c] is column c's
 * index among them, or -1. */
static int pick_row_columns(const struct peer_table *t, const struct peer_scenario *row, struct column *picked,
                            int *ran)
{
    int c, count = 0;

    for (c = 0; c < t->count; c++)
    {
        ran[c] = -1;
        if (row->port_only && !has_own_port(&t->columns[c]))
            continue;
        ran[c] = count;
        picked[count++] = t->columns[c];
    }
    return count;
}

/* In each round: the best of the bare loops' rates (the limit), and the best of the peers'. */
static double best_rate_in_round(const struct measurement *round_runs, const int *ran, int first, int end)
{
    double best = 0;
    int c;

    for (c = first; c < end; c++)
        if (ran[c] >= 0)
            best = max(best, round_runs[ran[c]].rate);
    return best;
}

/* Column k's rate over the best peer's in the same round (peers only, not the bare loops). */
static void ratio_to_best_peer(const struct bench_options *o, const struct peer_table *t,
                               struct measurement runs[][MAX_COLUMNS], const int *ran, int k, double *ratio,
                               double *low, double *high)
{
    double ratios[MAX_REPEAT];
    int round;

    for (round = 0; round < o->repeat; round++)
    {
        double best = best_rate_in_round(runs[round], ran, PEER_HOSTIOCP + 1, t->peers);
        ratios[round] = best ? runs[round][ran[k]].rate / best : 0;
    }
    *ratio = median(ratios, o->repeat);
    range_of(ratios, o->repeat, low, high);
}

/* How close hostiocp and the best peer each came to the limit: per round their rate over the best
 * bare loop's, as medians.  Where the best peer is at the limit, hostiocp can lead it only by the
 * noise. */
static void report_against_limit(const struct bench_options *o, const struct peer_table *t,
                                 struct measurement runs[][MAX_COLUMNS], const int *ran)
{
    double own[MAX_REPEAT], peer[MAX_REPEAT], own_low, own_high, peer_low, peer_high;
    int round;

    if (t->bare_end == t->peers)
        return;
    for (round = 0; round < o->repeat; round++)
    {
        double limit = best_rate_in_round(runs[round], ran, t->peers, t->bare_end);

        own[round] = limit ? runs[round][ran[PEER_HOSTIOCP]].rate / limit : 0;
        peer[round] = limit ? best_rate_in_round(runs[round], ran, PEER_HOSTIOCP + 1, t->peers) / limit : 0;
    }
    range_of(own, o->repeat, &own_low, &own_high);
    range_of(peer, o->repeat, &peer_low, &peer_high);
    printf("  against the best bare loop in each round: hostiocp %.3f [%.3f-%.3f], best peer %.3f [%.3f-%.3f]\n",
           median(own, o->repeat), own_low, own_high, median(peer, o->repeat), peer_low, peer_high);
}

/* The limit: per round the best of the bare loops; its line shows the count with the best median. */
static void report_bare_limit(const struct bench_options *o, const struct peer_table *t,
                              struct measurement runs[][MAX_COLUMNS], const int *ran)
{
    double best_rates[MAX_REPEAT];
    struct column_summary best = { 0 }, s;
    const char *best_name = "";
    char line[64];
    int round, c;

    if (t->bare_end == t->peers)
        return;
    for (round = 0; round < o->repeat; round++)
    {
        best_rates[round] = 0;
        for (c = t->peers; c < t->bare_end; c++)
            best_rates[round] = max(best_rates[round], runs[round][ran[c]].rate);
    }
    for (c = t->peers; c < t->bare_end; c++)
    {
        summarise_column(o, runs, ran[c], &s);
        if (s.rate >= best.rate)
        {
            best = s;
            best_name = t->columns[c].name + strlen("bare loop, ");
        }
    }
    best.rate = median(best_rates, o->repeat);
    snprintf(line, sizeof(line), "bare loop, best (%s)", best_name);
    print_peer_line(line, &best);
}

static void report_peer_row(const struct bench_options *o, const struct peer_table *t, const struct peer_scenario *row,
                            struct measurement runs[][MAX_COLUMNS], const int *ran, BOOL ok)
{
    struct column_summary s;
    double ratio, low, high, best_rate = 0;
    const char *best_peer = "";
    int c;

    printf("%s%s\n", row->s.name, ok ? "" : " (ERRORS: see above)");
    for (c = 0; c < t->peers; c++)
    {
        if (ran[c] < 0)
        {
            printf("  %-30s %12s  (no port of its own: not compared)\n", t->columns[c].name, "-");
            continue;
        }
        summarise_column(o, runs, ran[c], &s);
        print_peer_line(t->columns[c].name, &s);
        if (c != PEER_HOSTIOCP && s.rate > best_rate)
        {
            best_rate = s.rate;
            best_peer = t->columns[c].name;
        }
    }
    report_bare_limit(o, t, runs, ran);
    if (t->baseline >= 0)
    {
        summarise_column(o, runs, ran[t->baseline], &s);
        print_peer_line(t->columns[t->baseline].name, &s);
    }
    ratio_to_best_peer(o, t, runs, ran, PEER_HOSTIOCP, &ratio, &low, &high);
    printf("  hostiocp / best peer in each round: %.3f [%.3f-%.3f]; best peer at median: %s\n", ratio, low, high,
           best_peer);
    report_against_limit(o, t, runs, ran);
    if (t->baseline >= 0)
    {
        ratio_to_best_peer(o, t, runs, ran, t->baseline, &ratio, &low, &high);
        printf("  baseline DLL / best peer in each round: %.3f [%.3f-%.3f]\n", ratio, low, high);
    }
}

/* The blocking storm, per peer, rounds interleaved like the rows. */
static void report_storm(const struct bench_options *o, const struct peer_table *t)
{
    const struct storm_options storm = { 2000, 64, 50 };
    struct storm_result results[MAX_REPEAT][MAX_PEER_COLUMNS];
    int storm_columns[MAX_PEER_COLUMNS], count = 0, round, i, c;

    for (c = 0; c < t->peers; c++)
        storm_columns[count++] = c;
    if (t->baseline >= 0)
        storm_columns[count++] = t->baseline;

    printf("%s: %s arrive one at a time, each callback blocking %lu ms, while each is taken within "
           "%lu ms (at most %lu);\nthe first not taken in time (or one more after the last) is the new one: "
           "dispatch ms runs from its arrival, so it is at least %lu ms\nwhen it ended the fill; blocked: callbacks "
           "blocked when it arrived; taken: storm callbacks taken before it; fill ms: from the first to it;\n"
           "threads*: threads that ran a callback\n  %-30s %12s %15s %8s %6s %8s %8s\n", t->storm_name,
           t->columns[PEER_HOSTIOCP].ops->work_items ? "work items" : "completions", storm.block_ms,
           storm.taken_within_ms, storm.most_blocked, storm.taken_within_ms, "dispatcher", "dispatch ms", "range",
           "blocked", "taken", "fill ms", "threads*");
    for (round = 0; round < o->repeat; round++)
        for (i = 0; i < count; i++)
        {
            const struct column *column;
            struct dispatcher d;

            c = storm_columns[(i + round) % count];
            column = &t->columns[c];
            dispatcher_init(&d, column->ops, column->threads);
            d.min_threads = column->min_threads;
            d.max_threads = column->max_threads;
            if (!run_blocking_storm(&d, &storm, &results[round][c]))
                fprintf(stderr, "hostiocp-bench: %s through %s: %s\n", t->storm_name, column->name,
                        d.error[0] ? d.error : "the new one was not dispatched");
            if (o->verbose)
                fprintf(stderr, "%s, round %d, %s: %.1f ms with %lu blocked\n", t->storm_name, round + 1,
                        column->name, results[round][c].dispatch_ms, results[round][c].blocked);
        }
    for (i = 0; i < count; i++)
    {
        double ms[MAX_REPEAT], blocked[MAX_REPEAT], taken[MAX_REPEAT], fill[MAX_REPEAT], low, high;
        DWORD threads = 0;
        int missed = 0;

        c = storm_columns[i];
        for (round = 0; round < o->repeat; round++)
        {
            /* Not dispatched: at least as long as it was waited for. */
            ms[round] = results[round][c].dispatched ? results[round][c].dispatch_ms : storm.block_ms + 10000.0;
            missed += !results[round][c].dispatched;
            blocked[round] = results[round][c].blocked;
            taken[round] = results[round][c].taken;
            fill[round] = results[round][c].fill_ms;
            threads = max(threads, results[round][c].callback_threads);
        }
        range_of(ms, o->repeat, &low, &high);
        printf("  %-30s %12.1f  [%.1f-%.1f] %8.0f %6.0f %8.0f %8lu%s\n", t->columns[c].name, median(ms, o->repeat),
               low, high, median(blocked, o->repeat), median(taken, o->repeat), median(fill, o->repeat), threads,
               missed ? "  (not dispatched in some rounds)" : "");
    }
}

static void print_peers_header(const struct bench_options *o)
{
    printf("hostiocp-bench --peers (%d-bit, %lu CPUs): each dispatcher at its own defaults; %d rounds, dispatchers "
           "interleaved round by round, each run %.1f s warm-up + %.1f s measured\n"
           "rate: median completions (or work items) /s; peak: most threads over the rounds (* = threads that ran a "
           "callback, for pools that do not say); p50/p99: median latency, us;\ncpu: the process's CPU time (user + "
           "kernel) per completion, us; ratio: median over rounds of hostiocp's rate / the best peer's rate in the "
           "same round, bare loops excluded [lowest-highest]\n  %-30s %12s %6s %9s %9s %9s\n",
           (int)sizeof(void *) * 8, o->cpus, o->repeat, o->warmup, o->duration, "dispatcher", "rate", "peak",
           "p50 us", "p99 us", "cpu us");
}

/* Every row of one table whose name --scenario matches, then its storm. */
static int run_peer_table(const struct bench_options *o, const struct peer_table *t)
{
    struct measurement runs[MAX_REPEAT][MAX_COLUMNS];
    struct column picked[MAX_PEER_COLUMNS];
    int ran[MAX_PEER_COLUMNS], status = 0, count;
    size_t row;

    for (row = 0; row < t->row_count; row++)
    {
        const struct peer_scenario *r = &t->rows[row];
        BOOL ok;

        if (o->scenario && !strstr(r->s.name, o->scenario))
            continue;
        count = pick_row_columns(t, r, picked, ran);
        ok = measure_row(picked, count, &r->s, o, runs);
        report_peer_row(o, t, r, runs, ran, ok);
        if (!ok)
            status = 1;
    }
    if (!o->scenario || strstr(t->storm_name, o->scenario))
        report_storm(o, t);
    return status;
}

/* Completions first, then work items. */
static int run_peers_table(const struct bench_options *o)
{
    static struct peer_table io, work;
    int status;

    set_up_io_table(&io, o);
    set_up_work_table(&work, o);
    print_peers_header(o);
    status = run_peer_table(o, &io);
    return run_peer_table(o, &work) || status;
}

static SIZE_T private_bytes(void)
{
    PROCESS_MEMORY_COUNTERS_EX memory;

    memory.cb = sizeof(memory);
    GetProcessMemoryInfo(GetCurrentProcess(), (PROCESS_MEMORY_COUNTERS *)&memory, sizeof(memory));
    return memory.PrivateUsage;
}

/* What binding costs hostiocp itself: private bytes before and after binding sockets. */
static void measure_memory(const struct bench_options *o)
{
    enum { HANDLES = 1000 };
    static SOCKET sockets[HANDLES];
    struct dispatcher d;
    struct workload_options w = { "posted", 10000, 4096, 0, 0.5, 0, FALSE, 0, 0, 1, 0, 0 };
    struct run run;
    SIZE_T before, after;
    void *io;
    int i;

    for (i = 0; i < HANDLES; i++)
        sockets[i] = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0, WSA_FLAG_OVERLAPPED);
    dispatcher_init(&d, &hostiocp_ops, 2);
    d.ops->start(&d);
    before = private_bytes();
    for (i = 0; i < HANDLES; i++)
        d.ops->bind(&d, (HANDLE)sockets[i], &io);
    after = private_bytes();
    d.ops->stop(&d);
    for (i = 0; i < HANDLES; i++)
        closesocket(sockets[i]);

    dispatcher_init(&d, &hostiocp_ops, 2);
    run_workload(&d, &w, &run);
    if (o->json)
        printf(",\n  \"memory\": {\"bytes_per_bound_handle\": %.1f, \"extension_bytes_per_request\": %u, "
               "\"allocated_bytes_per_request\": 0, \"peak_working_set_10000_requests\": %llu}",
               (double)(after > before ? after - before : 0) / HANDLES,
               (unsigned)sizeof(HOSTIOCP_OVERLAPPED_EXTENSION), (unsigned long long)run.peak_working_set);
    else
        printf("\nmemory: %.1f bytes per bound handle (private bytes over %d Bind calls); per request "
               "%u bytes of extension inside the caller's OVERLAPPED and nothing allocated; peak working "
               "set %.1f MiB with 10,000 requests in flight (posted, %lld completions)\n",
               (double)(after > before ? after - before : 0) / HANDLES, HANDLES,
               (unsigned)sizeof(HOSTIOCP_OVERLAPPED_EXTENSION), run.peak_working_set / 1048576.0,
               (long long)run.operations);
    free_run(&run);
}

static int bad_option(const char *option, const char *why)
{
    fprintf(stderr, "hostiocp-bench: %s %s; see hostiocp-bench --help\n", option, why);
    return 2;
}

static void print_usage(void)
{
    printf("usage: hostiocp-bench [--workload posted|file-read|pipe|tcp]... [--threads N]... "
           "[--repeat N] [--duration SECONDS] [--warmup SECONDS] [--concurrency N] [--batched] [--json]\n"
           "       hostiocp-bench --policy [--scenario TEXT] [--repeat N] [--duration SECONDS] [--warmup SECONDS]\n"
           "       [--verbose]\n"
           "       hostiocp-bench --peers [--scenario TEXT] [--baseline DLL] [--repeat N] [--duration SECONDS] [--warmup SECONDS] [--verbose]\n"
           "--batched adds hostiocp with GetQueuedCompletionStatusEx batches of 16\n"
           "--policy compares hostiocp's default limits with fixed pools of 1, 2, 4, 8 and 32 times the CPUs\n"
           "--peers compares each dispatcher at its own defaults: hostiocp with the CLR's limits, a model of the CLR's\n"
           "  own pool, TP_IO on the default and on a private pool, BindIoCompletionCallback, the best bare loop;\n"
           "  then the blocking storm; then work items (hostiocp's IHostThreadpoolManager, a model of the CLR's\n"
           "  worker pool, TrySubmitThreadpoolCallback, QueueUserWorkItem) and their storm (text output only)\n"
           "--scenario runs only the policy or peers rows whose name contains TEXT (\"pipe\", \"256 conns\", \"storm\",\n"
           "           \"work\")\n"
           "--baseline adds to --peers a column for another build of hostiocp.dll, loaded by its path, run in turn\n"
           "           with the others and compared with the best peer like hostiocp (a before-and-after in one run)\n"
           "--verbose prints each run's rate, peak threads and policy decisions to stderr as it ends\n"
           "defaults: every workload, threads 1 2 4, 5 rounds, duration 1, no warm-up, concurrency 16;\n"
           "          with --policy or --peers, 2 s of warm-up and 2 s measured\n");
}

static void set_default_options(struct bench_options *o)
{
    static const struct dispatcher_ops *const compared[] = { &bare_port_ops, &hostiocp_ops, &threadpool_ops, &bindio_ops };
    SYSTEM_INFO system;

    GetSystemInfo(&system);
    o->cpus = system.dwNumberOfProcessors;
    o->repeat = 5;
    o->duration = 1.0;
    o->concurrency = 16;
    memcpy(o->dispatchers, compared, sizeof(compared));
    o->dispatcher_count = ARRAYSIZE(compared);
}

static BOOL parse_flag(const char *arg, struct bench_options *o)
{
    if (!strcmp(arg, "--json"))
        o->json = TRUE;
    else if (!strcmp(arg, "--policy"))
    {
        o->policy = TRUE;
        if (!o->duration_given)
            o->duration = 2.0, o->warmup = 2.0;
    }
    else if (!strcmp(arg, "--peers"))
    {
        o->peers = TRUE;
        if (!o->duration_given)
            o->duration = 2.0, o->warmup = 2.0;
    }
    else if (!strcmp(arg, "--verbose"))
        o->verbose = TRUE;
    else if (!strcmp(arg, "--batched"))
    {
        if (o->dispatcher_count < MAX_COLUMNS)
            o->dispatchers[o->dispatcher_count++] = &hostiocp_batched_ops;
    }
    else
        return FALSE;
    return TRUE;
}

static BOOL takes_value(const char *arg)
{
    static const char *const names[] =
    {
        "--scenario", "--baseline", "--workload", "--threads", "--repeat", "--warmup", "--duration", "--concurrency",
    };
    size_t i;

    for (i = 0; i < ARRAYSIZE(names); i++)
        if (!strcmp(arg, names[i]))
            return TRUE;
    return FALSE;
}

static int add_workload(const char *value, struct bench_options *o)
{
    if (!workload_known(value) || !strcmp(value, "file-copy"))
        return bad_option(value, "is not a benchmark workload (posted, file-read, pipe, tcp)");
    if (o->workload_count < (int)ARRAYSIZE(o->workloads))
        o->workloads[o->workload_count++] = value;
    return 0;
}

static int add_thread_count(const char *value, struct bench_options *o)
{
    char *end;
    long n = strtol(value, &end, 10);

    if (*end || n < 1 || n > 64)
        return bad_option(value, "is not a thread count (1-64)");
    if (o->thread_count < (int)ARRAYSIZE(o->threads))
        o->threads[o->thread_count++] = (DWORD)n;
    return 0;
}

static int parse_number_option(const char *arg, const char *value, struct bench_options *o)
{
    char *end;

    if (!strcmp(arg, "--repeat"))
    {
        o->repeat = (int)strtol(value, &end, 10);
        if (*end || o->repeat < 1 || o->repeat > MAX_REPEAT)
            return bad_option(value, "is not a round count (1-15)");
    }
    else if (!strcmp(arg, "--warmup"))
    {
        o->warmup = strtod(value, &end);
        if (*end || o->warmup < 0 || o->warmup > 600)
            return bad_option(value, "is not a warm-up in seconds");
    }
    else if (!strcmp(arg, "--duration"))
    {
        o->duration_given = TRUE;
        o->duration = strtod(value, &end);
        if (*end || o->duration <= 0 || o->duration > 600)
            return bad_option(value, "is not a duration in seconds");
    }
    else if (!strcmp(arg, "--concurrency"))
    {
        long n = strtol(value, &end, 10);
        if (*end || n < 1 || n > MAX_CONCURRENCY)
        {
            char why[64];
            snprintf(why, sizeof(why), "is not a concurrency (1-%d)", MAX_CONCURRENCY);
            return bad_option(value, why);
        }
        o->concurrency = (DWORD)n;
    }
    return 0;
}

static int parse_value_option(const char *arg, const char *value, struct bench_options *o)
{
    if (!strcmp(arg, "--scenario"))
    {
        o->scenario = value;
        return 0;
    }
    if (!strcmp(arg, "--baseline"))
    {
        static WCHAR path[MAX_PATH];

        if (!MultiByteToWideChar(CP_ACP, 0, value, -1, path, ARRAYSIZE(path)))
            return bad_option(value, "is not a path");
        o->baseline = value;
        hostiocp_baseline_dll = path;
        return 0;
    }
    if (!strcmp(arg, "--workload"))
        return add_workload(value, o);
    if (!strcmp(arg, "--threads"))
        return add_thread_count(value, o);
    return parse_number_option(arg, value, o);
}

static void fill_unset_lists(struct bench_options *o)
{
    static const char *const all[] = { "posted", "file-read", "pipe", "tcp" };
    static const DWORD threads[] = { 1, 2, 4 };

    if (!o->workload_count)
    {
        memcpy(o->workloads, all, sizeof(all));
        o->workload_count = ARRAYSIZE(all);
    }
    if (!o->thread_count)
    {
        memcpy(o->threads, threads, sizeof(threads));
        o->thread_count = ARRAYSIZE(threads);
    }
}

static int parse_options(int argc, char **argv, struct bench_options *o)
{
    int i, status;

    set_default_options(o);
    for (i = 1; i < argc; i++)
    {
        const char *arg = argv[i];

        if (!strcmp(arg, "--help") || !strcmp(arg, "-h"))
        {
            print_usage();
            exit(0);
        }
        if (parse_flag(arg, o))
            continue;
        if (!takes_value(arg))
            return bad_option(arg, "is not an option");
        if (i + 1 == argc)
            return bad_option(arg, "needs a value");
        if ((status = parse_value_option(arg, argv[++i], o)))
            return status;
    }
    fill_unset_lists(o);
    return 0;
}

int main(int argc, char **argv)
{
    struct bench_options o = { 0 };
    int status = parse_options(argc, argv, &o);
    WSADATA wsa;

    if (status)
        return status;
    setvbuf(stdout, NULL, _IONBF, 0);
    CoInitializeEx(NULL, COINIT_MULTITHREADED);
    WSAStartup(MAKEWORD(2, 2), &wsa);
    if (o.peers)
        status = run_peers_table(&o);
    else if (o.policy)
        status = run_policy_table(&o);
    else
    {
        status = run_dispatcher_table(&o);
        measure_memory(&o);
        if (o.json)
            printf("\n}\n");
    }
    WSACleanup();
    CoUninitialize();
    return status;
}
