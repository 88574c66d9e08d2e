/* hostiocp-bench: the same workloads, in one process and one run, through (a) a bare
 * completion-port loop, (b) hostiocp, (c) the Windows thread pool (TP_IO) and
 * (d) BindIoCompletionCallback; completions/s as the median of several runs and as a ratio to
 * the bare loop, with latency percentiles, then hostiocp's memory costs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ole2.h>
#include <psapi.h>
#include "hostiocp.h"
#include "iobench.h"

#define MAX_REPEAT 15

static const struct dispatcher_ops *dispatchers[5] = { &bare_port_ops, &hostiocp_ops, &threadpool_ops, &bindio_ops };
static size_t dispatcher_count = 4;

struct bench_options
{
    const char *workloads[8];
    int workload_count;
    DWORD threads[8];
    int thread_count;
    int repeat;
    double duration;
    DWORD concurrency;
    BOOL json;
};

struct measurement
{
    double rate, p50, p99;
    LONG64 errors, verify_failures;
};

static int compare_rates(const void *a, const void *b)
{
    double x = ((const struct measurement *)a)->rate, y = ((const struct measurement *)b)->rate;
    return x < y ? -1 : x > y;
}

static BOOL measure(const struct dispatcher_ops *ops, const char *workload, DWORD threads,
                    const struct bench_options *o, struct measurement *median)
{
    struct measurement runs[MAX_REPEAT];
    int i;

    for (i = 0; i < o->repeat; i++)
    {
        struct dispatcher d;
        struct workload_options w = { workload, o->concurrency, 4096, 16 << 20, o->duration, 0, FALSE };
        struct run run;

        dispatcher_init(&d, ops, threads);
        if (!run_workload(&d, &w, &run))
        {
            fprintf(stderr, "hostiocp-bench: %s through %s: %s\n", workload, ops->name,
                    d.error[0] ? d.error : "did not finish");
            free_run(&run);
            return FALSE;
        }
        runs[i].rate = run.operations / run.seconds;
        runs[i].p50 = latency_percentile_us(&run.latency, 0.5);
        runs[i].p99 = latency_percentile_us(&run.latency, 0.99);
        runs[i].errors = run.errors;
        runs[i].verify_failures = run.verify_failures;
        free_run(&run);
    }
    qsort(runs, o->repeat, sizeof(runs[0]), compare_rates);
    *median = runs[o->repeat / 2];
    return TRUE;
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
    struct workload_options w = { "posted", 10000, 4096, 0, 0.5, 0, FALSE };
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

static int parse_options(int argc, char **argv, struct bench_options *o)
{
    int i;

    o->repeat = 5;
    o->duration = 1.0;
    o->concurrency = 16;
    for (i = 1; i < argc; i++)
    {
        const char *arg = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        char *end;

        if (!strcmp(arg, "--help") || !strcmp(arg, "-h"))
        {
            printf("usage: hostiocp-bench [--workload posted|file-read|pipe|tcp]... [--threads N]... "
                   "[--repeat N] [--duration SECONDS] [--concurrency N] [--batched] [--json]\n"
                   "--batched adds hostiocp with GetQueuedCompletionStatusEx batches of 16\n"
                   "defaults: every workload, threads 1 2 4, repeat 5, duration 1, concurrency 16\n");
            exit(0);
        }
        if (!strcmp(arg, "--json")) { o->json = TRUE; continue; }
        if (!strcmp(arg, "--batched"))
        {
            dispatchers[dispatcher_count++] = &hostiocp_batched_ops;
            continue;
        }
        if (!value)
            return bad_option(arg, strncmp(arg, "--", 2) ? "is not an option" : "needs a value");
        i++;
        if (!strcmp(arg, "--workload"))
        {
            if (!workload_known(value) || !strcmp(value, "file-copy"))
                return bad_option(value, "is not a benchmark workload (posted, file-read, pipe, tcp)");
            if (o->workload_count < 8)
                o->workloads[o->workload_count++] = value;
        }
        else if (!strcmp(arg, "--threads"))
        {
            long n = strtol(value, &end, 10);
            if (*end || n < 1 || n > 64)
                return bad_option(value, "is not a thread count (1-64)");
            if (o->thread_count < 8)
                o->threads[o->thread_count++] = (DWORD)n;
        }
        else if (!strcmp(arg, "--repeat"))
        {
            o->repeat = (int)strtol(value, &end, 10);
            if (*end || o->repeat < 1 || o->repeat > MAX_REPEAT)
                return bad_option(value, "is not a repeat count (1-15)");
        }
        else if (!strcmp(arg, "--duration"))
        {
            o->duration = strtod(value, &end);
            if (*end || o->duration <= 0 || o->duration > 600)
                return bad_option(value, "is not a duration in seconds");
        }
        else if (!strcmp(arg, "--concurrency"))
        {
            long n = strtol(value, &end, 10);
            if (*end || n < 1 || n > 10000)
                return bad_option(value, "is not a concurrency (1-10000)");
            o->concurrency = (DWORD)n;
        }
        else
            return bad_option(arg, "is not an option");
    }
    if (!o->workload_count)
    {
        static const char *const all[] = { "posted", "file-read", "pipe", "tcp" };
        for (i = 0; i < 4; i++)
            o->workloads[o->workload_count++] = all[i];
    }
    if (!o->thread_count)
    {
        o->threads[0] = 1; o->threads[1] = 2; o->threads[2] = 4;
        o->thread_count = 3;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct bench_options o = { 0 };
    int status = parse_options(argc, argv, &o), w, t;
    WSADATA wsa;
    BOOL first = TRUE;

    if (status)
        return status;
    setvbuf(stdout, NULL, _IONBF, 0);
    if (threads_unreliable_here())
    {
        printf("hostiocp-bench: 32-bit Wine runs under qemu-user on this machine and cannot run threads "
               "reliably; no 32-bit numbers\n");
        return 0;
    }
    CoInitializeEx(NULL, COINIT_MULTITHREADED);
    WSAStartup(MAKEWORD(2, 2), &wsa);
    if (o.json)
        printf("{\"bits\": %d, \"repeat\": %d, \"duration\": %.2f, \"concurrency\": %lu, \"results\": [",
               (int)sizeof(void *) * 8, o.repeat, o.duration, o.concurrency);
    else
        printf("hostiocp-bench (%d-bit): median of %d runs of %.1f s, %lu requests in flight, 4 KiB blocks\n"
               "%-10s %7s  %-26s %14s %7s %8s %8s\n", (int)sizeof(void *) * 8, o.repeat, o.duration,
               o.concurrency, "workload", "threads", "dispatcher", "completions/s", "ratio", "p50 us", "p99 us");
    for (w = 0; w < o.workload_count; w++)
        for (t = 0; t < o.thread_count; t++)
        {
            double bare = 0;
            size_t i;

            for (i = 0; i < dispatcher_count; i++)
            {
                struct measurement m;
                const char *threads_note = dispatchers[i] == &bindio_ops ? " (system's)" : "";

                if (!measure(dispatchers[i], o.workloads[w], o.threads[t], &o, &m))
                {
                    status = 1;
                    continue;
                }
                if (i == 0)
                    bare = m.rate;
                if (m.errors || m.verify_failures)
                    status = 1;
                if (o.json)
                    printf("%s\n    {\"workload\": \"%s\", \"threads\": %lu, \"dispatcher\": \"%s\", "
                           "\"completions_per_second\": %.0f, \"ratio_to_bare\": %.3f, \"p50_us\": %.1f, "
                           "\"p99_us\": %.1f, \"errors\": %lld, \"verify_failures\": %lld}", first ? "" : ",",
                           o.workloads[w], o.threads[t], dispatchers[i]->name, m.rate, bare ? m.rate / bare : 0,
                           m.p50, m.p99, (long long)m.errors, (long long)m.verify_failures);
                else
                    printf("%-10s %7lu  %-26s %14.0f %7.3f %8.1f %8.1f%s\n", o.workloads[w], o.threads[t],
                           dispatchers[i]->name, m.rate, bare ? m.rate / bare : 0, m.p50, m.p99, threads_note);
                first = FALSE;
            }
        }
    if (o.json)
        printf("\n  ]");
    measure_memory(&o);
    if (o.json)
        printf("\n}\n");
    WSACleanup();
    CoUninitialize();
    return status;
}
