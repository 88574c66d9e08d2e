/* hostiocp-host: a CLR-faithful host. It activates CLSID_HostIoCpHostControl through COM (as
 * registered, or registration-free with --manifest: an activation context made from
 * hostiocp.manifest is active around activation), takes the thread-pool and I/O completion
 * managers from IHostControl::GetHostManager and plays the CLR's part (GetHostOverlappedSize,
 * SetCLRIoCompletionManager, CreateIoCompletionPort once, Bind per handle,
 * InitializeHostOverlapped per request, drain markers, QueueUserWorkItem for managed work) while
 * real overlapped I/O and work items run through them and every byte is checked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ole2.h>
#include "hostiocp.h"
#include "iobench.h"

#define MIN_THREADS_UNSET ((DWORD)-1)
#define NO_UPPER_LIMIT (~0ull >> 1)
#define GUID_TEXT_LENGTH 39

struct options
{
    const char *workloads[8];
    int workload_count;
    const char *manifest;
    DWORD concurrency, block, min_threads, max_threads, work_us, block_ms, block_every, io_every;
    ULONGLONG file_size;
    double duration;
    LONG64 operations;
    BOOL json, quiet, activate_only;
    const char *progid;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: hostiocp-host [options]\n"
            "  --workload NAME     posted, file-read, file-copy, pipe, tcp, work, or all (the I/O\n"
            "                      workloads file-copy, pipe and tcp; not work); may be repeated\n"
            "                      (default: all)\n"
            "                      work: work items through IHostThreadpoolManager::QueueUserWorkItem\n"
            "                      (Flags 0, as the CLR queues managed work), --concurrency chains of\n"
            "                      them, each item queuing its chain's next when it ends; see --io-every\n"
            "  --size BYTES        file size for the file workloads (default 16M; K, M, G suffixes)\n"
            "  --block BYTES       bytes per request or message (default 64K for files, 4K otherwise)\n"
            "  --concurrency N     requests (files, posted), connections (pipe, tcp) or item chains\n"
            "                      (work) in flight (default 16, at most 10000)\n"
            "  --min-threads N     hostiocp's minimum threads, for the I/O and the worker pool alike\n"
            "                      (default: the CPU count, as the CLR sets it)\n"
            "  --max-threads N     hostiocp's maximum threads, for both pools (default 1000, as the CLR\n"
            "                      sets it)\n"
            "  --work-us N         each callback of the posted and echo workloads, and each item of\n"
            "                      the work chains, spins N us of CPU\n"
            "  --block-ms N        ... and blocks N ms (default: in every callback)\n"
            "  --block-every K     ... in one callback of every K\n"
            "  --io-every K        work: one item of every K (default 2; 0: none) waits for a message\n"
            "                      through a pipe pair bound to the port: the read's OnComplete checks\n"
            "                      its bytes and queues the item that lets it go on, the write's\n"
            "                      OnComplete queues an item and blocks until it has run\n"
            "  --duration SECONDS  how long the posted, file-read, pipe, tcp and work workloads run\n"
            "                      (default 2)\n"
            "  --operations N      stop after N completions instead (work: after exactly N items of\n"
            "                      its chains, however long they take)\n"
            "  --json              print the results as JSON\n"
            "  --quiet             no progress line\n"
            "  --activate-only     activate and report the manager, move no I/O\n"
            "  --manifest PATH     activate hostiocp registration-free, from the assembly manifest at\n"
            "                      PATH (hostiocp.manifest beside hostiocp.dll), not from the registry\n"
            "  --progid PROGID     activate the class this ProgID names (CLSIDFromProgID) instead of\n"
            "                      CLSID_HostIoCpHostControl: one of HostIoCp.HostControl[.1], or with\n"
            "                      --activate-only also HostIoCp.IoCompletionManager[.1]\n");
}

static BOOL parse_size(const char *text, ULONGLONG *value)
{
    char *end;
    double number = strtod(text, &end);

    if (end == text || number < 0)
        return FALSE;
    switch (*end)
    {
    case 'k': case 'K': number *= 1024; end++; break;
    case 'm': case 'M': number *= 1024 * 1024; end++; break;
    case 'g': case 'G': number *= 1024.0 * 1024 * 1024; end++; break;
    }
    *value = (ULONGLONG)number;
    return !*end;
}

static int bad_option(const char *option, const char *why)
{
    fprintf(stderr, "hostiocp-host: %s %s; see hostiocp-host --help\n", option, why);
    return 2;
}

/* The options that take a number, and the numbers each allows. */
static const struct
{
    const char *name;
    ULONGLONG low, high;
} number_options[] =
{
    { "--size", 65536, NO_UPPER_LIMIT },
    { "--block", 64, 64 << 20 },
    { "--concurrency", 1, MAX_CONCURRENCY },
    { "--min-threads", 0, HOSTIOCP_MAX_THREADS_LIMIT },
    { "--max-threads", 1, HOSTIOCP_MAX_THREADS_LIMIT },
    { "--operations", 1, NO_UPPER_LIMIT },
    { "--work-us", 0, 1000000 },
    { "--block-ms", 0, 60000 },
    { "--block-every", 1, 1000000 },
    { "--io-every", 0, 1000000 },
};

static BOOL parse_flag(const char *arg, struct options *o)
{
    if (!strcmp(arg, "--json")) o->json = TRUE;
    else if (!strcmp(arg, "--quiet")) o->quiet = TRUE;
    else if (!strcmp(arg, "--activate-only")) o->activate_only = TRUE;
    else return FALSE;
    return TRUE;
}

static int find_number_option(const char *arg)
{
    int i;

    for (i = 0; i < (int)ARRAYSIZE(number_options); i++)
        if (!strcmp(arg, number_options[i].name))
            return i;
    return -1;
}

static BOOL takes_value(const char *arg)
{
    return !strcmp(arg, "--workload") || !strcmp(arg, "--duration") || !strcmp(arg, "--manifest") ||
           !strcmp(arg, "--progid") ||
           find_number_option(arg) >= 0;
}

static void store_number(struct options *o, const char *arg, ULONGLONG number)
{
    if (!strcmp(arg, "--size")) o->file_size = number;
    else if (!strcmp(arg, "--block")) o->block = (DWORD)number;
    else if (!strcmp(arg, "--concurrency")) o->concurrency = (DWORD)number;
    else if (!strcmp(arg, "--min-threads")) o->min_threads = (DWORD)number;
    else if (!strcmp(arg, "--max-threads")) o->max_threads = (DWORD)number;
    else if (!strcmp(arg, "--operations")) o->operations = (LONG64)number;
    else if (!strcmp(arg, "--work-us")) o->work_us = (DWORD)number;
    else if (!strcmp(arg, "--block-ms")) o->block_ms = (DWORD)number;
    else if (!strcmp(arg, "--block-every")) o->block_every = (DWORD)number;
    else if (!strcmp(arg, "--io-every")) o->io_every = (DWORD)number;
}

static int out_of_range(const char *arg, const char *value, ULONGLONG low, ULONGLONG high)
{
    char why[96];

    if (high == NO_UPPER_LIMIT)
        snprintf(why, sizeof(why), "is out of range for %s (at least %llu)", arg, low);
    else
        snprintf(why, sizeof(why), "is out of range for %s (%llu-%llu%s)", arg, low, high,
                 strcmp(arg, "--block") ? "" : ", a multiple of 8");
    return bad_option(value, why);
}

static int parse_number_option(const char *arg, const char *value, struct options *o)
{
    int option = find_number_option(arg);
    ULONGLONG number;

    if (!parse_size(value, &number))
        return bad_option(value, "is not a number");
    if (number < number_options[option].low || number > number_options[option].high ||
        (!strcmp(arg, "--block") && number % 8))
        return out_of_range(arg, value, number_options[option].low, number_options[option].high);
    store_number(o, arg, number);
    return 0;
}

static int parse_value_option(const char *arg, const char *value, struct options *o)
{
    char *end;

    if (!strcmp(arg, "--workload"))
    {
        if (strcmp(value, "all") && strcmp(value, WORK_WORKLOAD) && !workload_known(value))
            return bad_option(value, "is not a workload (posted, file-read, file-copy, pipe, tcp, work, all)");
        if (o->workload_count == ARRAYSIZE(o->workloads))
            return bad_option(arg, "is given too often");
        o->workloads[o->workload_count++] = value;
        return 0;
    }
    if (!strcmp(arg, "--manifest"))
    {
        o->manifest = value;
        return 0;
    }
    if (!strcmp(arg, "--progid"))
    {
        o->progid = value;
        return 0;
    }
    if (!strcmp(arg, "--duration"))
    {
        o->duration = strtod(value, &end);
        if (*end || o->duration <= 0 || o->duration > 3600)
            return bad_option(value, "is not a duration in seconds (0-3600)");
        return 0;
    }
    return parse_number_option(arg, value, o);
}

static void set_default_options(struct options *o)
{
    o->concurrency = 16;
    o->min_threads = MIN_THREADS_UNSET;
    o->max_threads = HOSTIOCP_MAX_THREADS_LIMIT;
    o->block_every = 1;
    o->io_every = 2;
    o->file_size = 16 << 20;
    o->duration = 2;
}

static int finish_options(struct options *o)
{
    SYSTEM_INFO system;

    GetSystemInfo(&system);
    if (o->min_threads == MIN_THREADS_UNSET)
        o->min_threads = min(system.dwNumberOfProcessors, o->max_threads);
    if (o->min_threads > o->max_threads)
        return bad_option("--min-threads", "is above --max-threads");
    if (!o->workload_count)
        o->workloads[o->workload_count++] = "all";
    return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
    int i, status;

    set_default_options(o);
    for (i = 1; i < argc; i++)
    {
        const char *arg = argv[i];

        if (!strcmp(arg, "--help") || !strcmp(arg, "-h"))
        {
            usage(stdout);
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
    return finish_options(o);
}

/* The manifest that --manifest activated, if any. */
static const char *manifest_in_use;

static void report_not_registered(const char *what)
{
    if (manifest_in_use)
        fprintf(stderr, "hostiocp-host: %s%shostiocp's classes are not in %s (REGDB_E_CLASSNOTREG)\n", what ? what : "",
                what ? ": " : "", manifest_in_use);
    else
        fprintf(stderr, "hostiocp-host: %s%shostiocp is not registered for %d-bit processes: run `regsvr32 "
                "hostiocp.dll` with the %d-bit DLL\n", what ? what : "", what ? ": " : "", (int)sizeof(void *) * 8,
                (int)sizeof(void *) * 8);
}

/* The class --progid names, as COM resolves it; only hostiocp's classes are accepted. */
static int resolve_progid(const char *progid, BOOL activate_only)
{
    static CLSID clsid;
    WCHAR name[256], text[GUID_TEXT_LENGTH];
    HRESULT hr;

    if (!MultiByteToWideChar(CP_ACP, 0, progid, -1, name, ARRAYSIZE(name)))
        return bad_option(progid, "is not a ProgID");
    if (FAILED(hr = CLSIDFromProgID(name, &clsid)))
    {
        fprintf(stderr, "hostiocp-host: CLSIDFromProgID(%s) failed: 0x%08lx (not registered for %d-bit processes?)\n",
                progid, (unsigned long)hr, (int)sizeof(void *) * 8);
        return 1;
    }
    StringFromGUID2(&clsid, text, ARRAYSIZE(text));
    printf("%d-bit process: ProgID %s -> CLSID %ls\n", (int)sizeof(void *) * 8, progid, text);
    if (!IsEqualCLSID(&clsid, &CLSID_HostIoCpHostControl) &&
        !(activate_only && IsEqualCLSID(&clsid, &CLSID_HostIoCompletionManager)))
    {
        fprintf(stderr, "hostiocp-host: %s names %ls, not a class this program can host%s\n", progid, text,
                activate_only ? "" : " (the manager's ProgID needs --activate-only)");
        return 2;
    }
    hostiocp_host_control_class = &clsid;
    return 0;
}

static void report_manager(const char *how, IHostIoCompletionManager *manager)
{
    WCHAR dll[MAX_PATH] = L"";
    DWORD size = 0, min = 0, max = 0, available = 0;

    IHostIoCompletionManager_GetHostOverlappedSize(manager, &size);
    IHostIoCompletionManager_GetMinThreads(manager, &min);
    IHostIoCompletionManager_GetMaxThreads(manager, &max);
    IHostIoCompletionManager_GetAvailableThreads(manager, &available);
    GetModuleFileNameW(GetModuleHandleW(L"hostiocp.dll"), dll, ARRAYSIZE(dll));
    printf("%d-bit process: %s -> IHostIoCompletionManager %p\n"
           "  host overlapped extension %lu bytes, threads min %lu max %lu available %lu\n"
           "  served by %ls\n",
           (int)sizeof(void *) * 8, how, (void *)manager, size, min, max, available, dll);
}

/* The worker pool's limits, and whether the CLR would get one object for both managers. */
static void report_worker_pool(IHostThreadpoolManager *workers, IHostIoCompletionManager *manager)
{
    IUnknown *workers_identity = NULL, *io_identity = NULL;
    DWORD min = 0, max = 0, available = 0;

    IHostThreadpoolManager_GetMinThreads(workers, &min);
    IHostThreadpoolManager_GetMaxThreads(workers, &max);
    IHostThreadpoolManager_GetAvailableThreads(workers, &available);
    IHostThreadpoolManager_QueryInterface(workers, &IID_IUnknown, (void **)&workers_identity);
    IHostIoCompletionManager_QueryInterface(manager, &IID_IUnknown, (void **)&io_identity);
    printf("%d-bit process: IHostControl::GetHostManager -> IHostThreadpoolManager %p (%s object as the I/O "
           "manager)\n  worker threads min %lu max %lu available %lu\n", (int)sizeof(void *) * 8, (void *)workers,
           workers_identity && workers_identity == io_identity ? "the same" : "NOT the same", min, max, available);
    if (workers_identity)
        IUnknown_Release(workers_identity);
    if (io_identity)
        IUnknown_Release(io_identity);
}

/* Without I/O: what a CLR host sees when it activates the manager (or, named by --progid, the
 * manager class itself), and which hostiocp.dll serves it. */
static int activate_only(void)
{
    IHostThreadpoolManager *workers = NULL;
    IHostIoCompletionManager *manager = NULL;
    IHostControl *control = NULL;
    BOOL direct = IsEqualCLSID(hostiocp_host_control_class, &CLSID_HostIoCompletionManager);
    HRESULT hr = direct ? CoCreateInstance(hostiocp_host_control_class, NULL, CLSCTX_INPROC_SERVER,
                                           &IID_IHostIoCompletionManager, (void **)&manager)
                        : CoCreateInstance(hostiocp_host_control_class, NULL, CLSCTX_INPROC_SERVER,
                                           &IID_IHostControl, (void **)&control);

    if (FAILED(hr))
    {
        if (hr == REGDB_E_CLASSNOTREG)
            report_not_registered(NULL);
        else
            fprintf(stderr, "hostiocp-host: CoCreateInstance failed: 0x%08lx\n", (unsigned long)hr);
        return 1;
    }
    if (direct)
    {
        report_manager("CoCreateInstance", manager);
        IHostIoCompletionManager_Release(manager);
        return 0;
    }
    /* In the CLR's order (CorHost2::SetHostControl): the thread-pool manager, then the I/O one. */
    if (FAILED(hr = IHostControl_GetHostManager(control, &IID_IHostThreadpoolManager, (void **)&workers)))
        fprintf(stderr, "hostiocp-host: GetHostManager(IHostThreadpoolManager) failed: 0x%08lx\n", (unsigned long)hr);
    else if (FAILED(hr = IHostControl_GetHostManager(control, &IID_IHostIoCompletionManager, (void **)&manager)))
        fprintf(stderr, "hostiocp-host: GetHostManager(IHostIoCompletionManager) failed: 0x%08lx\n",
                (unsigned long)hr);
    else
    {
        report_worker_pool(workers, manager);
        report_manager("IHostControl::GetHostManager", manager);
        IHostIoCompletionManager_Release(manager);
    }
    if (workers)
        IHostThreadpoolManager_Release(workers);
    IHostControl_Release(control);
    return FAILED(hr);
}

/* The work workload's counts, and the worker pool's statistics (IHostIoCpWorkStatistics) as the
 * DLL counted them. */
static void print_work_result(const struct dispatcher *d, const struct run *run, BOOL json)
{
    const HOSTIOCP_WORK_STATISTICS *w = &d->work_stats;

    if (json)
    {
        printf(", \"items_queued\": %lld, \"items_run\": %lld, \"io_completions\": %lld, \"work_statistics\": "
               "{\"threads_peak\": %lu, \"threads_injected\": %llu, \"starvation_injections\": %llu, "
               "\"threads_retired\": %llu, \"threads_target\": %lu, \"items_queued\": %llu, \"items_run\": %llu, "
               "\"items_refused\": %llu, \"items_discarded\": %llu}",
               (long long)run->items_queued, (long long)run->items_run, (long long)run->io_completions,
               w->ThreadsPeak, w->ThreadsInjected, w->StarvationInjections, w->ThreadsRetired, w->ThreadsTarget,
               w->ItemsQueued, w->ItemsRun, w->ItemsRefused, w->ItemsDiscarded);
        return;
    }
    printf("           items queued %lld, run %lld; I/O completions %lld\n"
           "           worker pool: peak %lu threads, %llu injected (%llu for starvation), %llu retired, target %lu; "
           "it counted %llu items queued, %llu run, %llu refused, %llu discarded\n",
           (long long)run->items_queued, (long long)run->items_run, (long long)run->io_completions, w->ThreadsPeak,
           w->ThreadsInjected, w->StarvationInjections, w->ThreadsRetired, w->ThreadsTarget, w->ItemsQueued,
           w->ItemsRun, w->ItemsRefused, w->ItemsDiscarded);
}

static void print_result(const char *workload, const struct dispatcher *d, const struct run *run, BOOL json, BOOL first)
{
    double rate = run->seconds > 0 ? run->measured_operations / run->seconds : 0;
    BOOL work = !strcmp(workload, WORK_WORKLOAD);

    if (json)
    {
        printf("%s\n    {\"workload\": \"%s\", \"bits\": %d, \"seconds\": %.3f, \"operations\": %lld, \"bytes\": %lld, "
               "\"completions_per_second\": %.0f, \"latency_us\": {\"p50\": %.1f, \"p99\": %.1f, \"max\": %.1f}, "
               "\"threads_peak\": %lu, \"injections\": %llu, \"drain_markers\": %llu, \"errors\": %lld, "
               "\"verify_failures\": %lld, \"peak_working_set\": %llu",
               first ? "" : ",", workload, (int)sizeof(void *) * 8, run->seconds, (long long)run->operations,
               (long long)run->bytes, rate, latency_percentile_us(&run->latency, 0.5),
               latency_percentile_us(&run->latency, 0.99), latency_max_us(&run->latency), d->threads_peak,
               (unsigned long long)d->injections, (unsigned long long)d->drain_markers, (long long)run->errors,
               (long long)run->verify_failures, (unsigned long long)run->peak_working_set);
        if (work)
            print_work_result(d, run, TRUE);
        printf("}");
        return;
    }
    printf("%-10s %10lld %12.1f %10.0f %8.1f %8.1f %9.1f %5lu %5llu %6lld %6lld\n", workload,
           (long long)run->operations, run->bytes / 1048576.0, rate, latency_percentile_us(&run->latency, 0.5),
           latency_percentile_us(&run->latency, 0.99), latency_max_us(&run->latency), d->threads_peak,
           (unsigned long long)d->injections, (long long)run->errors, (long long)run->verify_failures);
    if (run->detail[0])
        printf("           %s\n", run->detail);
    if (work)
        print_work_result(d, run, FALSE);
}

static void print_header(const struct options *o)
{
    if (o->json)
        printf("{\"results\": [");
    else
        printf("hostiocp-host (%d-bit), threads %lu..%lu, concurrency %lu\n"
               "%-10s %10s %12s %10s %8s %8s %9s %5s %5s %6s %6s\n", (int)sizeof(void *) * 8,
               o->min_threads, o->max_threads, o->concurrency, "workload", "completions",
               "MiB", "per s", "p50 us", "p99 us", "max us", "peak", "inj", "errors", "bad");
}

static int work_count_differs(const char *what, LONG64 counted, LONG64 expected)
{
    if (counted == expected)
        return 0;
    fprintf(stderr, "hostiocp-host: work: %s %lld, expected %lld\n", what, (long long)counted, (long long)expected);
    return 1;
}

/* Every item ran exactly once, as this program and the DLL counted them; each completion queued
 * one item; --operations numbered the chains' items exactly. */
static int check_work_items(const struct dispatcher *d, const struct run *run, const struct options *o)
{
    const HOSTIOCP_WORK_STATISTICS *w = &d->work_stats;
    int status = 0;

    if (!w->cbSize)
    {
        fprintf(stderr, "hostiocp-host: work: no statistics of the worker pool (IHostIoCpWorkStatistics)\n");
        return 1;
    }
    status |= work_count_differs("items run", run->items_run, run->items_queued);
    status |= work_count_differs("items queued by the DLL's count", (LONG64)w->ItemsQueued, run->items_queued);
    status |= work_count_differs("items run by the DLL's count", (LONG64)w->ItemsRun, run->items_run);
    status |= work_count_differs("items refused", (LONG64)w->ItemsRefused, 0);
    status |= work_count_differs("I/O completions", run->io_completions,
                                 work_io_completions_expected(run->operations, o->io_every));
    status |= work_count_differs("items run for completions", run->items_run - run->operations,
                                 run->io_completions);
    if (o->operations)
        status |= work_count_differs("items of the chains", run->operations, o->operations);
    return status;
}

/* A workload's result is good if every byte was verified, the CLR's drain markers came back and
 * every work item ran once. */
static int check_run(const char *name, const struct dispatcher *d, const struct run *run, const struct options *o)
{
    int status = 0;

    if (run->errors || run->verify_failures || (!strcmp(name, "file-copy") && !run->operations))
        status = 1;
    if (!strcmp(name, WORK_WORKLOAD))
        status |= check_work_items(d, run, o);
    if (d->drain_markers != 2)
    {
        fprintf(stderr, "hostiocp-host: %s: %llu of the CLR's 2 drain markers came back\n", name,
                (unsigned long long)d->drain_markers);
        status = 1;
    }
    return status;
}

/* Runs one workload through hostiocp and prints its result: 0 if it passed, 1 if it failed, -1 if
 * hostiocp cannot run at all. */
static int run_and_report(const char *name, const struct options *o, BOOL first)
{
    struct dispatcher d;
    struct workload_options w = { name, o->concurrency, o->block, o->file_size, o->duration, o->operations,
                                  !o->quiet && !o->json, o->work_us, o->block_ms, o->block_every, 0, o->io_every };
    struct run run;
    int status = 0;

    dispatcher_init(&d, &hostiocp_ops, o->max_threads);
    d.min_threads = o->min_threads;
    d.max_threads = o->max_threads;
    if (!w.block)
        w.block = strncmp(name, "file", 4) ? 4096 : 65536;
    if (!run_workload(&d, &w, &run))
    {
        if (d.error[0] && strstr(d.error, "regsvr32"))
        {
            report_not_registered(name);
            return -1;
        }
        fprintf(stderr, "hostiocp-host: %s: %s\n", name, d.error[0] ? d.error : "the workload did not finish");
        status = 1;
    }
    status |= check_run(name, &d, &run, o);
    print_result(name, &d, &run, o->json, first);
    free_run(&run);
    return status;
}

/* A workload named on the command line, where "all" stands for file-copy, pipe and tcp. */
static int run_named(const char *name, const struct options *o, int *printed)
{
    static const char *const all[] = { "file-copy", "pipe", "tcp" };
    const char *const *names = !strcmp(name, "all") ? all : &name;
    int count = !strcmp(name, "all") ? ARRAYSIZE(all) : 1, status = 0, result, i;

    for (i = 0; i < count; i++)
    {
        if ((result = run_and_report(names[i], o, !(*printed)++)) < 0)
            return result;
        status |= result;
    }
    return status;
}

/* The workloads, or activation only, as the options say. */
static int run_host(struct options *options)
{
    int i, status = 0, printed = 0, result;

    if (options->progid && (status = resolve_progid(options->progid, options->activate_only)))
        return status;
    if (options->activate_only)
        return activate_only();
    print_header(options);
    for (i = 0; i < options->workload_count; i++)
    {
        if ((result = run_named(options->workloads[i], options, &printed)) < 0)
            return 1;
        status |= result;
    }
    if (options->json)
        printf("\n]}\n");
    else
        printf("%s\n", status ? "FAILED: see the errors above" : "all bytes verified");
    return status;
}

/* Registration-free activation: the activation context of hostiocp's assembly manifest, active
 * on this thread, which makes every activation of hostiocp's classes. */
static HANDLE activate_manifest(const char *path, ULONG_PTR *cookie)
{
    ACTCTXA actctx = { 0 };
    HANDLE context;

    actctx.cbSize = sizeof(actctx);
    actctx.lpSource = path;
    if ((context = CreateActCtxA(&actctx)) == INVALID_HANDLE_VALUE)
    {
        fprintf(stderr, "hostiocp-host: %s is not a manifest this %d-bit process can use (CreateActCtx failed "
                "with error %lu)\n", path, (int)sizeof(void *) * 8, GetLastError());
        return NULL;
    }
    if (!ActivateActCtx(context, cookie))
    {
        fprintf(stderr, "hostiocp-host: ActivateActCtx failed with error %lu\n", GetLastError());
        ReleaseActCtx(context);
        return NULL;
    }
    return context;
}

int main(int argc, char **argv)
{
    struct options options = { 0 };
    HANDLE context = NULL;
    ULONG_PTR cookie = 0;
    WSADATA wsa;
    int status = parse_options(argc, argv, &options);

    if (status)
        return status;
    if (options.manifest && !(context = activate_manifest(options.manifest, &cookie)))
        return 1;
    manifest_in_use = options.manifest;
    CoInitializeEx(NULL, COINIT_MULTITHREADED);
    WSAStartup(MAKEWORD(2, 2), &wsa);
    status = run_host(&options);
    WSACleanup();
    CoUninitialize();
    if (context)
    {
        DeactivateActCtx(0, cookie);
        ReleaseActCtx(context);
    }
    return status;
}
