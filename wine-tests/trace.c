/* Conformance: HOSTIOCP_TRACE sends a trace to the debugger (OutputDebugString).  With 1, every
 * COM method traces its entry with the interface pointer and its arguments, AddRef and Release
 * the new reference count, each OnComplete gives one line, and an interface or a host manager
 * that hostiocp does not provide gives a warn line naming its IID, and the thread policy's
 * decisions are lines too.  With "warn" only the warn lines come; with "policy" only the policy's
 * decisions and warn lines.  The test collects the trace the way a debugger sees it: as the
 * DBG_PRINTEXCEPTION_C that OutputDebugStringA raises.  hostiocp reads HOSTIOCP_TRACE when it
 * loads, so the "warn" and "policy" cases, and a value longer than those words, run in child
 * processes: this program again, as "trace warn", "trace policy" and "trace everything-please".
 * A fourth child, "trace monitor" with HOSTIOCP_TRACE=1, counts the lines with which a fixed
 * pool's monitor says that it sleeps and wakes. */
#include <windows.h>
#include <ole2.h>
#include <stdio.h>
#include <stdlib.h>
#define STANDALONE
#include <wine/test.h>
#include "fakeclr.h"
#include "support.h"

/* An interface that no hostiocp object has. */
static const GUID IID_test_unknown = {0x6f1cd0e3, 0x0ee2, 0x4d58, {0x9a, 0x41, 0x2b, 0x73, 0x5c, 0x1e, 0x88, 0x07}};
#define IID_TEST_UNKNOWN_STR "{6f1cd0e3-0ee2-4d58-9a41-2b735c1e8807}"
/* IID_IHostTaskManager: a host manager that the CLR asks for and hostiocp does not provide. */
static const GUID IID_IHostTaskManager = {0x997ff24c, 0x43b7, 0x4352, {0x86, 0x67, 0x0d, 0xc0, 0x4f, 0xaf, 0xd3, 0x54}};
#define IID_IHOSTTASKMANAGER_STR "{997ff24c-43b7-4352-8667-0dc04fafd354}"

static const char *ptr(const void *pointer)
{
    static char buffers[4][32];
    static int next;
    char *buffer = buffers[next++ % 4];

    sprintf(buffer, "%p", pointer);
    return buffer;
}

static IHostControl *create_host_control(void)
{
    IHostControl *control = NULL;
    HRESULT hr = CoCreateInstance(&CLSID_HostIoCpHostControl, NULL, CLSCTX_INPROC_SERVER, &IID_IHostControl,
                                  (void **)&control);

    ok(hr == S_OK, "CoCreateInstance(CLSID_HostIoCpHostControl) returned %#lx\n", hr);
    return control;
}

/* What the calling thread's lines since mark say; only this thread's lines are counted, so the
 * engine's threads cannot change the numbers. */
static void test_unsupported_interface(IHostIoCompletionManager *manager, BOOL traced)
{
    char entry[128];
    void *out = (void *)0xdeadbeef;
    LONG mark = hostiocp_trace_mark();
    HRESULT hr;

    hr = IHostIoCompletionManager_QueryInterface(manager, &IID_test_unknown, &out);
    ok(hr == E_NOINTERFACE, "QueryInterface returned %#lx\n", hr);
    ok(!out, "QueryInterface gave %p\n", out);
    ok(hostiocp_trace_count(mark, "]: warn: ", NULL) == 1, "%ld warn lines\n",
       hostiocp_trace_count(mark, "]: warn: ", NULL));
    ok(hostiocp_trace_count(mark, "]: warn: manager_QueryInterface " IID_TEST_UNKNOWN_STR " not implemented.",
                            NULL) == 1, "no warn line names " IID_TEST_UNKNOWN_STR "\n");
    sprintf(entry, "]: manager_QueryInterface %s, " IID_TEST_UNKNOWN_STR ", %s.", ptr(manager), ptr(&out));
    ok(hostiocp_trace_count(mark, entry, NULL) == (traced ? 1 : 0), "%ld lines with \"%s\"\n",
       hostiocp_trace_count(mark, entry, NULL), entry);
    /* The entry line and the warn line. */
    ok(hostiocp_trace_count(mark, NULL) == (traced ? 2 : 1), "%ld lines\n", hostiocp_trace_count(mark, NULL));
}

static DWORD max_threads(IHostIoCompletionManager *manager)
{
    DWORD count = 0;

    IHostIoCompletionManager_GetMaxThreads(manager, &count);
    return count;
}

static void check_set_max_threads_traced(IHostIoCompletionManager *manager, DWORD count, HRESULT expected,
                                         BOOL traced)
{
    char entry[128];
    LONG mark = hostiocp_trace_mark();
    HRESULT hr = IHostIoCompletionManager_SetMaxThreads(manager, count);

    ok(hr == expected, "SetMaxThreads(%lu) returned %#lx, not %#lx\n", count, hr, expected);
    sprintf(entry, "]: manager_SetMaxThreads %s, %lu.", ptr(manager), count);
    ok(hostiocp_trace_count(mark, entry, NULL) == (traced ? 1 : 0), "%ld lines with \"%s\"\n",
       hostiocp_trace_count(mark, entry, NULL), entry);
    ok(hostiocp_trace_count(mark, NULL) == (traced ? 1 : 0), "%ld lines\n", hostiocp_trace_count(mark, NULL));
}

/* The line comes on entry, whether the call is refused or not.  The minimum is set first: its
 * default is the CPU count, which would decide whether 7 is refused.  The limits are left as they
 * were (the policy test after this one needs a minimum at the pool's first target). */
static void test_set_max_threads(IHostIoCompletionManager *manager, BOOL traced)
{
    DWORD default_min = 0;

    IHostIoCompletionManager_GetMinThreads(manager, &default_min);
    ok(IHostIoCompletionManager_SetMinThreads(manager, 8) == S_OK, "SetMinThreads(8) failed\n");
    check_set_max_threads_traced(manager, 7, E_INVALIDARG, traced);
    ok(max_threads(manager) == 1000, "the refused maximum left %lu\n", max_threads(manager));
    ok(IHostIoCompletionManager_SetMinThreads(manager, 1) == S_OK, "SetMinThreads(1) failed\n");
    check_set_max_threads_traced(manager, 7, S_OK, traced);
    ok(max_threads(manager) == 7, "the maximum is %lu\n", max_threads(manager));
    ok(IHostIoCompletionManager_SetMaxThreads(manager, 1000) == S_OK, "SetMaxThreads(1000) failed\n");
    ok(IHostIoCompletionManager_SetMinThreads(manager, default_min) == S_OK, "SetMinThreads(%lu) failed\n",
       default_min);
}

static void test_unprovided_host_manager(BOOL traced)
{
    IHostControl *control = create_host_control();
    void *out = (void *)0xdeadbeef;
    char entry[128];
    LONG mark;
    HRESULT hr;

    if (!control)
        return;
    mark = hostiocp_trace_mark();
    hr = IHostControl_GetHostManager(control, &IID_IHostTaskManager, &out);
    ok(hr == E_NOINTERFACE, "GetHostManager returned %#lx\n", hr);
    ok(!out, "GetHostManager gave %p\n", out);
    ok(hostiocp_trace_count(mark, "]: warn: host_control_GetHostManager manager " IID_IHOSTTASKMANAGER_STR
                            " not provided.", NULL) == 1, "no warn line names " IID_IHOSTTASKMANAGER_STR "\n");
    sprintf(entry, "]: host_control_GetHostManager %s, " IID_IHOSTTASKMANAGER_STR ", %s.", ptr(control), ptr(&out));
    ok(hostiocp_trace_count(mark, entry, NULL) == (traced ? 1 : 0), "%ld lines with \"%s\"\n",
       hostiocp_trace_count(mark, entry, NULL), entry);
    ok(hostiocp_trace_count(mark, NULL) == (traced ? 2 : 1), "%ld lines\n", hostiocp_trace_count(mark, NULL));

    /* The manager that is provided gives no warning. */
    mark = hostiocp_trace_mark();
    hr = IHostControl_GetHostManager(control, &IID_IHostIoCompletionManager, &out);
    ok(hr == S_OK, "GetHostManager(IID_IHostIoCompletionManager) returned %#lx\n", hr);
    if (SUCCEEDED(hr))
        IUnknown_Release((IUnknown *)out);
    ok(hostiocp_trace_count(mark, "]: warn: ", NULL) == 0, "%ld warn lines\n",
       hostiocp_trace_count(mark, "]: warn: ", NULL));
    IHostControl_Release(control);
}

/* A second interface of the manager traces with its own pointer, and AddRef and Release with
 * the reference count after the call. */
static void test_statistics_interface(IHostIoCompletionManager *manager)
{
    IHostIoCpStatistics *stats;
    char line[160];
    LONG mark = hostiocp_trace_mark();
    HRESULT hr;

    hr = IHostIoCompletionManager_QueryInterface(manager, &IID_IHostIoCpStatistics, (void **)&stats);
    ok(hr == S_OK, "QueryInterface(IID_IHostIoCpStatistics) returned %#lx\n", hr);
    if (FAILED(hr))
        return;
    sprintf(line, "]: statistics_AddRef %s, refcount 2.", ptr(stats));
    ok(hostiocp_trace_count(mark, line, NULL) == 1, "no line with \"%s\"\n", line);
    /* QueryInterface's entry and the AddRef it makes; no warning. */
    ok(hostiocp_trace_count(mark, NULL) == 2, "%ld lines\n", hostiocp_trace_count(mark, NULL));

    mark = hostiocp_trace_mark();
    IHostIoCpStatistics_Release(stats);
    sprintf(line, "]: statistics_Release %s, refcount 1.", ptr(stats));
    ok(hostiocp_trace_count(mark, line, NULL) == 1, "no line with \"%s\"\n", line);
    ok(hostiocp_trace_count(mark, NULL) == 1, "%ld lines\n", hostiocp_trace_count(mark, NULL));
}

/* Gives the manager the fake CLR, opens a port and sends `count` packets through it, the Nth
 * with N as its byte count; returns the port. */
static HANDLE open_port_and_complete(IHostIoCompletionManager *manager, struct fake_clr *clr, DWORD count)
{
    static OVERLAPPED request;
    HANDLE port = NULL;
    HRESULT hr;
    DWORD i;

    hr = IHostIoCompletionManager_SetCLRIoCompletionManager(manager, &clr->ICLRIoCompletionManager_iface);
    ok(hr == S_OK, "SetCLRIoCompletionManager returned %#lx\n", hr);
    hr = IHostIoCompletionManager_CreateIoCompletionPort(manager, &port);
    ok(hr == S_OK, "CreateIoCompletionPort returned %#lx\n", hr);
    fake_clr_expect(clr, count);
    for (i = 1; i <= count; i++)
        PostQueuedCompletionStatus(port, i, 0, &request);
    ok(fake_clr_wait(clr, 30000), "completions did not arrive\n");
    return port;
}

/* Blocks the packets posted with BLOCKED_BYTES until the event in the context is set. */
#define BLOCKED_BYTES 0xb10c
static void block_until_set(struct fake_clr *fake, DWORD error, DWORD bytes, void *overlapped)
{
    (void)error; (void)overlapped;
    if (bytes == BLOCKED_BYTES)
        WaitForSingleObject(fake->context, 30000);
}

static BOOL starvation_traced(void *mark)
{
    return hostiocp_trace_count_any_thread((LONG)(LONG_PTR)mark, ": policy starving: ", NULL) > 0;
}

/* The thread policy's decisions are trace lines: with every thread blocked in a callback and a
 * packet waiting, the monitor adds a thread and says so ("policy starving"). */
static void test_policy_decisions_traced(IHostIoCompletionManager *manager, HANDLE port, struct fake_clr *clr)
{
    HOSTIOCP_STATISTICS stats = { 0 };
    IHostIoCpStatistics *statistics;
    HANDLE release = CreateEventW(NULL, TRUE, FALSE, NULL);
    LONG mark = hostiocp_trace_mark(), count, i;
    OVERLAPPED *requests;
    BOOL traced;
    HRESULT hr;

    hr = IHostIoCompletionManager_QueryInterface(manager, &IID_IHostIoCpStatistics, (void **)&statistics);
    ok(hr == S_OK, "QueryInterface(IID_IHostIoCpStatistics) returned %#lx\n", hr);
    if (FAILED(hr))
        return;
    stats.cbSize = sizeof(stats);
    hr = IHostIoCpStatistics_GetPortStatistics(statistics, port, &stats);
    ok(hr == S_OK, "GetPortStatistics returned %#lx\n", hr);
    /* One packet more than there are threads: all of them block, and one waits. */
    count = stats.ThreadsTotal + 1;
    requests = calloc(count, sizeof(*requests));
    clr->context = release;
    clr->hook = block_until_set;
    fake_clr_expect(clr, count);
    for (i = 0; i < count; i++)
        PostQueuedCompletionStatus(port, BLOCKED_BYTES, 0, &requests[i]);
    traced = wait_until(starvation_traced, (void *)(LONG_PTR)mark, 5000);
    SetEvent(release);
    ok(fake_clr_wait(clr, 30000), "the blocked completions did not arrive\n");
    clr->hook = NULL;
    ok(traced, "no \"policy starving\" line within 5 s of %ld blocked callbacks\n", count);
    hr = IHostIoCpStatistics_GetPortStatistics(statistics, port, &stats);
    ok(hr == S_OK, "GetPortStatistics returned %#lx\n", hr);
    /* One line per decision that the statistics count. */
    ok(hostiocp_trace_count_any_thread(0, ": policy starving: ", NULL) == (LONG)stats.StarvationInjections,
       "%ld \"policy starving\" lines for %lu starvation injections\n",
       hostiocp_trace_count_any_thread(0, ": policy starving: ", NULL), (ULONG)stats.StarvationInjections);
    /* Each says how long the tick that starved took, and how busy the process and the CPUs were. */
    ok(hostiocp_trace_count_any_thread(0, ": policy starving: ", "; the tick: ", " ms, the process ", "% of a CPU, CPUs ",
                                       "% busy", NULL) == hostiocp_trace_count_any_thread(0, ": policy starving: ", NULL),
       "%ld of %ld \"policy starving\" lines describe their tick\n",
       hostiocp_trace_count_any_thread(0, ": policy starving: ", "; the tick: ", NULL),
       hostiocp_trace_count_any_thread(0, ": policy starving: ", NULL));
    IHostIoCpStatistics_Release(statistics);
    free(requests);
    CloseHandle(release);
}

/* The start of each process's part: the trace collected from here on, COM, and a manager of
 * its own (NULL, reported, if none). */
static IHostIoCompletionManager *begin_traced(void **handler)
{
    IHostIoCompletionManager *manager = NULL;
    HRESULT hr;

    *handler = collect_hostiocp_trace();
    CoInitializeEx(NULL, COINIT_MULTITHREADED);
    hr = create_manager(&manager);
    ok(hr == S_OK, "CoCreateInstance returned %#lx\n", hr);
    return SUCCEEDED(hr) ? manager : NULL;
}

static void end_traced(void *handler)
{
    CoUninitialize();
    RemoveVectoredExceptionHandler(handler);
}

/* The child: HOSTIOCP_TRACE=warn. */
static void test_warn_only(void)
{
    void *handler;
    IHostIoCompletionManager *manager = begin_traced(&handler);

    if (manager)
    {
        ok(hostiocp_trace.created == 0, "%ld lines announced the manager\n", hostiocp_trace.created);
        test_unsupported_interface(manager, FALSE);
        test_set_max_threads(manager, FALSE);
        test_unprovided_host_manager(FALSE);
        ok(IHostIoCompletionManager_Release(manager) == 0, "references left\n");
    }
    /* The two warn lines above and nothing else: not "loaded", no entry, no AddRef. */
    ok(hostiocp_trace.warn == 2, "%ld warn lines\n", hostiocp_trace.warn);
    ok(hostiocp_trace.lines == hostiocp_trace.warn, "%ld lines, %ld of them warn lines\n", hostiocp_trace.lines,
       hostiocp_trace.warn);
    end_traced(handler);
}

/* The child: HOSTIOCP_TRACE=policy.  Only the thread policy's decisions come, and warn lines
 * (none here): no entry lines, no OnComplete lines. */
static void test_policy_only(void)
{
    struct fake_clr *clr = fake_clr_create();
    void *handler;
    IHostIoCompletionManager *manager = begin_traced(&handler);
    HANDLE port;

    if (manager)
    {
        port = open_port_and_complete(manager, clr, 1);
        test_policy_decisions_traced(manager, port, clr);
        ok(IHostIoCompletionManager_Release(manager) == 0, "references left\n");
    }
    ok(hostiocp_trace.oncomplete == 0, "%ld OnComplete lines\n", hostiocp_trace.oncomplete);
    ok(hostiocp_trace.lines == hostiocp_trace_count_any_thread(0, ": policy ", NULL),
       "%ld lines, %ld of them the policy's\n", hostiocp_trace.lines,
       hostiocp_trace_count_any_thread(0, ": policy ", NULL));
    fake_clr_destroy(clr);
    end_traced(handler);
}

/* A value longer than any of the words that choose less: tracing is on in full. */
#define LONG_SETTING "everything-please"

/* The child: HOSTIOCP_TRACE=everything-please. */
static void test_long_value(void)
{
    void *handler;
    IHostIoCompletionManager *manager = begin_traced(&handler);

    ok(hostiocp_trace_count(0, "]: loaded", NULL) == 1, "%ld \"loaded\" lines\n",
       hostiocp_trace_count(0, "]: loaded", NULL));
    ok(hostiocp_trace.created == 1, "%ld lines announced the manager\n", hostiocp_trace.created);
    if (manager)
    {
        test_unsupported_interface(manager, TRUE);
        test_set_max_threads(manager, TRUE);
        test_unprovided_host_manager(TRUE);
        ok(IHostIoCompletionManager_Release(manager) == 0, "references left\n");
    }
    ok(hostiocp_trace.warn == 2, "%ld warn lines\n", hostiocp_trace.warn);
    end_traced(handler);
}

struct monitor_lines
{
    LONG sleeps, wakes;
};

static LONG monitor_sleeps(void)
{
    return hostiocp_trace_count_any_thread(0, ": monitor sleeps: ", NULL);
}

static LONG monitor_wakes(void)
{
    return hostiocp_trace_count_any_thread(0, ": monitor wakes", NULL);
}

static BOOL monitor_lines_are(void *context)
{
    const struct monitor_lines *expected = context;
    return monitor_sleeps() == expected->sleeps && monitor_wakes() == expected->wakes;
}

/* Waits until the monitor has said it went to sleep and woke exactly so often. */
static void check_monitor_lines(const char *when, LONG sleeps, LONG wakes)
{
    struct monitor_lines expected = { sleeps, wakes };

    ok(wait_until(monitor_lines_are, &expected, 5000), "%s: the monitor slept %ld times and woke %ld times, "
       "expected %ld and %ld\n", when, monitor_sleeps(), monitor_wakes(), sleeps, wakes);
}

/* The child "monitor", HOSTIOCP_TRACE=1.  A pool whose minimum is its maximum and that runs
 * that many threads has nothing for its monitor to do: the monitor sleeps until the limits
 * change (or a thread ends, which this test cannot bring about).  Between, the pool idles with
 * room to grow, and its monitor sleeps for that. */
static void test_fixed_pool_monitor(void)
{
    HANDLE never = CreateEventW(NULL, TRUE, FALSE, NULL);
    struct fake_clr *clr = fake_clr_create();
    void *handler;
    IHostIoCompletionManager *manager = begin_traced(&handler);
    HRESULT hr;

    if (!manager)
        return;
    hr = activate_manager(manager, &clr->ICLRIoCompletionManager_iface, 2, 2);
    ok(hr == S_OK, "activating with 2 threads returned %#lx\n", hr);
    open_port_and_complete(manager, clr, 100);
    check_monitor_lines("once both threads run", 1, 0);
    /* Not a synchronisation: 3 s in which nothing changes, so the monitor must not wake. */
    WaitForSingleObject(never, 3000);
    check_monitor_lines("3 s later", 1, 0);
    /* The limits set again, unchanged: one look, and back to sleep. */
    hr = IHostIoCompletionManager_SetMaxThreads(manager, 2);
    ok(hr == S_OK, "SetMaxThreads(2) returned %#lx\n", hr);
    check_monitor_lines("after SetMaxThreads(2)", 2, 1);
    /* No longer fixed: it wakes and looks until the pool has idled for a second, and sleeps again. */
    hr = IHostIoCompletionManager_SetMaxThreads(manager, 3);
    ok(hr == S_OK, "SetMaxThreads(3) returned %#lx\n", hr);
    check_monitor_lines("a second after SetMaxThreads(3)", 3, 2);
    /* Fixed again: the change wakes it, and it sleeps once the third thread runs. */
    hr = IHostIoCompletionManager_SetMinThreads(manager, 3);
    ok(hr == S_OK, "SetMinThreads(3) returned %#lx\n", hr);
    check_monitor_lines("after SetMinThreads(3)", 4, 3);
    ok(IHostIoCompletionManager_Release(manager) == 0, "references left\n");
    /* The stop ends it without a wake. */
    check_monitor_lines("after Release", 4, 3);
    fake_clr_destroy(clr);
    CloseHandle(never);
    end_traced(handler);
}

/* The child "idle", HOSTIOCP_TRACE=1.  A pool with room to grow that idles for a second stops
 * its monitor's ticks: an idle process costs nothing.  The first packet a thread takes wakes the
 * monitor, and a second after it the monitor sleeps again; starvation still adds a thread after
 * such a sleep. */
static void test_idle_pool_monitor(void)
{
    static OVERLAPPED request;
    struct fake_clr *clr = fake_clr_create();
    void *handler;
    IHostIoCompletionManager *manager = begin_traced(&handler);
    HANDLE port;
    HRESULT hr;

    if (!manager)
        return;
    hr = activate_manager(manager, &clr->ICLRIoCompletionManager_iface, 2, 8);
    ok(hr == S_OK, "activating with 2 to 8 threads returned %#lx\n", hr);
    port = open_port_and_complete(manager, clr, 3);
    check_monitor_lines("after 3 completions", 1, 0);
    fake_clr_expect(clr, 1);
    ok(PostQueuedCompletionStatus(port, 4, 0, &request), "PostQueuedCompletionStatus failed: %lu\n", GetLastError());
    ok(fake_clr_wait(clr, 30000), "the completion did not arrive\n");
    check_monitor_lines("after one more completion", 2, 1);
    /* Woken by callbacks that all block, it still adds a thread for the packet that waits. */
    test_policy_decisions_traced(manager, port, clr);
    check_monitor_lines("a second after the blocked callbacks", 3, 2);
    ok(IHostIoCompletionManager_Release(manager) == 0, "references left\n");
    /* The stop ends it without a wake. */
    check_monitor_lines("after Release", 3, 2);
    fake_clr_destroy(clr);
    end_traced(handler);
}

/* Runs this program again as "trace <argument>" with HOSTIOCP_TRACE=<setting>. */
static void run_child(const char *argument, const char *setting)
{
    WCHAR path[MAX_PATH], command_line[MAX_PATH + 32];
    DWORD code;

    GetModuleFileNameW(NULL, path, ARRAY_SIZE(path));
    lstrcpyW(command_line, L"\"");
    lstrcatW(command_line, path);
    lstrcatW(command_line, L"\" trace ");
    MultiByteToWideChar(CP_ACP, 0, argument, -1, command_line + lstrlenW(command_line),
                        ARRAY_SIZE(command_line) - lstrlenW(command_line));
    SetEnvironmentVariableA("HOSTIOCP_TRACE", setting);
    code = run_command(command_line);
    ok(code == 0, "trace %s with HOSTIOCP_TRACE=%s: exit code %lu (failures in the child)\n", argument, setting,
       code);
    SetEnvironmentVariableA("HOSTIOCP_TRACE", "1");
}

static void run_child_with_setting(const char *setting)
{
    run_child(setting, setting);
}

START_TEST(trace)
{
    IHostIoCompletionManager *manager;
    struct fake_clr *clr;
    HANDLE port;
    void *handler;
    char **argv;
    int argc;

    argc = winetest_get_mainargs(&argv);
    if (argc >= 3 && !strcmp(argv[2], "warn"))
    {
        test_warn_only();
        return;
    }
    if (argc >= 3 && !strcmp(argv[2], "monitor"))
    {
        test_fixed_pool_monitor();
        return;
    }
    if (argc >= 3 && !strcmp(argv[2], "idle"))
    {
        test_idle_pool_monitor();
        return;
    }
    if (argc >= 3 && !strcmp(argv[2], LONG_SETTING))
    {
        test_long_value();
        return;
    }
    if (argc >= 3 && !strcmp(argv[2], "policy"))
    {
        test_policy_only();
        return;
    }

    /* Read once, when the DLL loads: set it before COM loads hostiocp. */
    SetEnvironmentVariableA("HOSTIOCP_TRACE", "1");
    clr = fake_clr_create();
    if (!(manager = begin_traced(&handler)))
        return;
    /* Loading says "loaded".  CoCreateInstance goes through the class factory, whose
     * QueryInterface, AddRef and Release COM calls as it likes, but always in pairs, and its
     * CreateInstance; that creates the manager, whose own QueryInterface for the caller's IID
     * traces with the AddRef it makes (refcount 2), then the Release of the creation reference
     * (refcount 1), then the line that announces it: 3 manager_ lines and one "created". */
    ok(hostiocp_trace_count(0, "]: loaded", NULL) == 1, "no \"loaded\" line\n");
    ok(hostiocp_trace_count(0, "]: factory_CreateInstance ", "{8bde9d80-ec06-41d6-83e6-22580effcc20}, ", NULL) == 1,
       "no CreateInstance line naming IID_IHostIoCompletionManager\n");
    ok(hostiocp_trace_count(0, "]: factory_AddRef ", NULL) == hostiocp_trace_count(0, "]: factory_Release ", NULL),
       "%ld factory AddRef lines, %ld Release lines\n", hostiocp_trace_count(0, "]: factory_AddRef ", NULL),
       hostiocp_trace_count(0, "]: factory_Release ", NULL));
    ok(hostiocp_trace_count(0, "]: manager_", NULL) == 3, "%ld manager_ lines after creating\n",
       hostiocp_trace_count(0, "]: manager_", NULL));
    ok(hostiocp_trace_count(0, "]: manager_AddRef ", ", refcount 2.", NULL) == 1, "no AddRef to 2\n");
    ok(hostiocp_trace_count(0, "]: manager_Release ", ", refcount 1.", NULL) == 1, "no Release to 1\n");
    ok(hostiocp_trace.created == 1, "%ld lines announced the manager\n", hostiocp_trace.created);
    ok(hostiocp_trace.warn == 0, "%ld warn lines after creating\n", hostiocp_trace.warn);
    test_unsupported_interface(manager, TRUE);
    test_statistics_interface(manager);
    test_set_max_threads(manager, TRUE);
    test_unprovided_host_manager(TRUE);
    port = open_port_and_complete(manager, clr, 3);
    test_policy_decisions_traced(manager, port, clr);
    ok(IHostIoCompletionManager_Release(manager) == 0, "references left\n");
    /* One line per OnComplete: the COM lines (entries, AddRef, Release) do not count as such. */
    ok(hostiocp_trace.oncomplete == clr->calls, "%ld OnComplete lines for %ld calls\n", hostiocp_trace.oncomplete, clr->calls);
    trace("%ld trace lines, %ld warn lines\n", hostiocp_trace.lines, hostiocp_trace.warn);
    fake_clr_destroy(clr);
    end_traced(handler);

    run_child_with_setting("warn");
    run_child_with_setting("policy");
    run_child_with_setting(LONG_SETTING);
    run_child("monitor", "1");
    run_child("idle", "1");
}
