/* Fault injection: for each scenario a host runs and each system call hostiocp makes that can
 * fail, the scenario runs again and again with the 1st, 2nd, 3rd ... call of that kind failing
 * (HOSTIOCP_FAULT=site:N, read when the DLL loads; the DLL is unloaded between runs), until a run
 * makes fewer calls than N.  How many calls failed in turn is the scenario's count of that site's
 * calls, and it must be the one the scenario makes: a sweep in which no fault fires fails.
 * For each failure:
 * - the method that saw it returns the documented HRESULT, or succeeds where the failure is
 *   hidden by design (a thread above the first that cannot start, a packet of the pool's own);
 * - the same call made again succeeds, and completions still flow;
 * - nothing leaks: threads, handles, the DLL's references (it unloads), and no half-written
 *   registry keys. */
#include <winsock2.h>
#include <windows.h>
#include <ole2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define STANDALONE
#include <wine/test.h>
#include "fakeclr.h"
#include "manager_support.h"
#include "support.h"

#define WAIT_MS 30000
#define MAX_CALLS 400

struct site
{
    const char *name;
    HRESULT failure;            /* what a method that sees this failure returns */
};

enum { CREATE_PORT, CREATE_THREAD, HEAP_ALLOC, REGISTRY, POST, SITE_COUNT };

static const struct site sites[SITE_COUNT] =
{
    [CREATE_PORT] = { "create_port", HRESULT_FROM_WIN32(ERROR_NO_SYSTEM_RESOURCES) },
    [CREATE_THREAD] = { "create_thread", HRESULT_FROM_WIN32(ERROR_NOT_ENOUGH_MEMORY) },
    [HEAP_ALLOC] = { "heap_alloc", E_OUTOFMEMORY },
    [REGISTRY] = { "registry", HRESULT_FROM_WIN32(ERROR_NO_SYSTEM_RESOURCES) },
    [POST] = { "post", S_OK },
};

static const struct site *site;       /* the one failing in this run */
static LONG call;                     /* its call that fails */
static char where[96];                /* "scenario, site call N", for messages */
static BOOL warming_up;               /* no fault, no leak check */
static struct fake_clr *clr;
static HMODULE dll;                   /* loaded for the registration scenario */

/* The call returns S_OK, or the site's documented failure; then, made again, S_OK. */
#define retried(expression) do { \
    HRESULT hr_ = (expression); \
    ok(hr_ == S_OK || hr_ == site->failure, "%s: %s returned %#lx\n", where, #expression, hr_); \
    if (hr_ != S_OK) \
    { \
        hr_ = (expression); \
        ok(hr_ == S_OK, "%s: %s made again returned %#lx\n", where, #expression, hr_); \
    } \
} while (0)

/* ---- what the scenarios share ---- */

struct blocking
{
    HANDLE release;
    volatile LONG inside;
};

static void count_or_block(struct fake_clr *fake, DWORD error, DWORD bytes, void *overlapped)
{
    struct blocking *blocking = fake->context;

    (void)error; (void)overlapped;
    if (bytes == 0xb10c && blocking)
    {
        InterlockedIncrement(&blocking->inside);
        WaitForSingleObject(blocking->release, WAIT_MS);
    }
}

static IHostIoCompletionManager *start_manager(DWORD min, DWORD max)
{
    IHostIoCompletionManager *manager = NULL;

    retried(create_manager(&manager));
    if (!manager)
        return NULL;
    ok(activate_manager(manager, &clr->ICLRIoCompletionManager_iface, min, max) == S_OK, "%s: activation failed\n",
       where);
    return manager;
}

static HANDLE open_port(IHostIoCompletionManager *manager)
{
    HANDLE port = NULL;

    retried(IHostIoCompletionManager_CreateIoCompletionPort(manager, &port));
    return port;
}

/* Completions still flow: `count` packets, each dispatched once. */
static void check_packets_flow(HANDLE port, int count)
{
    static OVERLAPPED requests[16];
    int i;

    fake_clr_expect(clr, count);
    for (i = 0; i < count; i++)
        ok(PostQueuedCompletionStatus(port, i, 0x5eed, &requests[i]), "%s: posting failed\n", where);
    ok(fake_clr_wait(clr, WAIT_MS), "%s: %ld of %d packets dispatched\n", where, clr->calls, count);
}

static void close_and_release(IHostIoCompletionManager *manager, HANDLE port)
{
    if (port)
        ok(IHostIoCompletionManager_CloseIoCompletionPort(manager, port) == S_OK, "%s: Close failed\n", where);
    ok(IHostIoCompletionManager_Release(manager) == 0, "%s: references left\n", where);
}

/* ---- the scenarios ---- */

static void create_and_close_a_port(void)
{
    IHostIoCompletionManager *manager = start_manager(1, 4);
    HANDLE port;

    if (!manager)
        return;
    port = open_port(manager);
    check_packets_flow(port, 8);
    close_and_release(manager, port);
}

static void bind_a_pipe(void)
{
    IHostIoCompletionManager *manager = start_manager(1, 4);
    struct clr_overlapped read;
    HANDLE port, server, client;
    char buffer[8] = { 0 };
    WCHAR name[64];
    DWORD written;

    if (!manager)
        return;
    ZeroMemory(&read, sizeof(read));
    port = open_port(manager);
    swprintf(name, ARRAYSIZE(name), L"\\\\.\\pipe\\hostiocp-faults-%lu", GetCurrentProcessId());
    server = CreateNamedPipeW(name, PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED, PIPE_TYPE_BYTE, 1, 64, 64, 0, NULL);
    client = CreateFileW(name, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
    retried(IHostIoCompletionManager_Bind(manager, port, server));
    ok(IHostIoCompletionManager_InitializeHostOverlapped(manager, &read.overlapped) == S_OK, "%s: init\n", where);
    fake_clr_expect(clr, 1);
    ok(!ReadFile(server, buffer, 8, NULL, &read.overlapped) && GetLastError() == ERROR_IO_PENDING,
       "%s: the read did not pend\n", where);
    WriteFile(client, "abcdefgh", 8, &written, NULL);
    ok(fake_clr_wait(clr, WAIT_MS), "%s: the read did not complete\n", where);
    ok(clr->last_overlapped == &read.overlapped && clr->last_bytes == 8 && !memcmp(buffer, "abcdefgh", 8),
       "%s: the read gave %lu bytes\n", where, clr->last_bytes);
    close_and_release(manager, port);
    CloseHandle(client);
    CloseHandle(server);
}

static BOOL threads_at_least(const HOSTIOCP_STATISTICS *stats, LONG count)
{
    return stats->ThreadsTotal >= (DWORD)count;
}

/* A pool that runs its minimum gets new limits; threads that cannot start when the minimum
 * rises are started again by the pool, and completions flow. */
static void change_the_limits(DWORD min, DWORD max, DWORD new_min, DWORD new_max)
{
    IHostIoCompletionManager *manager = start_manager(min, max);
    HANDLE port;

    if (!manager)
        return;
    port = open_port(manager);
    ok(wait_for_statistics(manager, port, threads_at_least, min, 5000), "%s: fewer than %lu threads\n", where, min);
    if (new_max != max)
        ok(IHostIoCompletionManager_SetMaxThreads(manager, new_max) == S_OK, "%s: SetMaxThreads(%lu) failed\n",
           where, new_max);
    ok(IHostIoCompletionManager_SetMinThreads(manager, new_min) == S_OK, "%s: SetMinThreads(%lu) failed\n", where,
       new_min);
    ok(wait_for_statistics(manager, port, threads_at_least, new_min, 5000), "%s: fewer than %lu threads\n", where,
       new_min);
    check_packets_flow(port, 8);
    close_and_release(manager, port);
}

static void raise_the_minimum(void)
{
    change_the_limits(1, 8, 6, 8);
}

/* A fixed pool that runs its maximum has a monitor asleep, and one made larger must start the
 * threads that could not start. */
static void grow_a_fixed_pool(void)
{
    change_the_limits(2, 2, 4, 4);
}

static LONG calls_before;

static BOOL four_calls_done(void *unused)
{
    (void)unused;
    return clr->calls - calls_before >= 4;
}

/* Callbacks block; the pool adds threads for the queued packets, one of which cannot start. */
static void inject_under_load(void)
{
    static OVERLAPPED blockers[4], others[4];
    IHostIoCompletionManager *manager = start_manager(1, 8);
    struct blocking blocking = { CreateEventW(NULL, TRUE, FALSE, NULL), 0 };
    HANDLE port;
    int i;

    if (manager && (port = open_port(manager)))
    {
        clr->context = &blocking;
        calls_before = clr->calls;
        fake_clr_expect(clr, 8);
        for (i = 0; i < 4; i++)
            PostQueuedCompletionStatus(port, 0xb10c, 0x5eed, &blockers[i]);
        for (i = 0; i < 4; i++)
            PostQueuedCompletionStatus(port, i, 0x5eed, &others[i]);
        /* Four blocked threads and the others' packets dispatched by threads added on top. */
        ok(wait_until(four_calls_done, NULL, 5000), "%s: the other packets waited\n", where);
        ok(blocking.inside == 4, "%s: %ld callbacks blocked\n", where, blocking.inside);
        ok(clr->calls - calls_before == 4, "%s: %ld of the 4 other packets dispatched while 4 callbacks block\n",
           where, clr->calls - calls_before);
        SetEvent(blocking.release);
        ok(fake_clr_wait(clr, WAIT_MS), "%s: %ld of 8 packets dispatched\n", where, clr->calls);
        close_and_release(manager, port);
        clr->context = NULL;
    }
    else if (manager)
        IHostIoCompletionManager_Release(manager);
    CloseHandle(blocking.release);
}

static volatile LONG items_run;

static DWORD WINAPI count_item(void *context)
{
    (void)context;
    InterlockedIncrement(&items_run);
    return 0;
}

/* An item whose pool or packet cannot be made is refused with the site's error (a packet of the
 * pool's own is posted again instead). */
static HRESULT item_failure(void)
{
    return site == &sites[POST] ? HRESULT_FROM_WIN32(ERROR_NO_SYSTEM_RESOURCES) : site->failure;
}

/* Work items: the first makes the worker pool.  A refused item, queued again, is accepted; every
 * item accepted runs once, before the last Release returns. */
static void queue_work_items(void)
{
    IHostIoCompletionManager *manager = start_manager(1, 4);
    IHostThreadpoolManager *threadpool;
    HRESULT hr;
    int i;

    if (!manager)
        return;
    ok(IHostIoCompletionManager_QueryInterface(manager, &IID_IHostThreadpoolManager, (void **)&threadpool) == S_OK,
       "%s: no IHostThreadpoolManager\n", where);
    ok(IHostThreadpoolManager_SetMinThreads(threadpool, 1) == S_OK &&
       IHostThreadpoolManager_SetMaxThreads(threadpool, 4) == S_OK, "%s: the worker limits were refused\n", where);
    items_run = 0;
    for (i = 0; i < 8; i++)
    {
        hr = IHostThreadpoolManager_QueueUserWorkItem(threadpool, count_item, NULL, 0);
        ok(hr == S_OK || hr == item_failure(), "%s: QueueUserWorkItem returned %#lx\n", where, hr);
        if (hr != S_OK)
            ok(IHostThreadpoolManager_QueueUserWorkItem(threadpool, count_item, NULL, 0) == S_OK,
               "%s: QueueUserWorkItem made again failed\n", where);
    }
    IHostThreadpoolManager_Release(threadpool);
    close_and_release(manager, NULL);
    ok(items_run == 8, "%s: %ld of 8 items ran\n", where, items_run);
}

static BOOL user_keys_absent(void)
{
    WCHAR clsid[39], path[128];
    HKEY key;

    StringFromGUID2(&CLSID_HostIoCompletionManager, clsid, ARRAYSIZE(clsid));
    swprintf(path, ARRAYSIZE(path), L"Software\\Classes\\CLSID\\%ls", clsid);
    if (!RegOpenKeyExW(HKEY_CURRENT_USER, path, 0, KEY_READ, &key))
    {
        RegCloseKey(key);
        return FALSE;
    }
    swprintf(path, ARRAYSIZE(path), L"Software\\Classes\\%ls", HOSTIOCP_HOST_CONTROL_PROGID);
    if (!RegOpenKeyExW(HKEY_CURRENT_USER, path, 0, KEY_READ, &key))
    {
        RegCloseKey(key);
        return FALSE;
    }
    return TRUE;
}

/* Per user and per machine: a registration that fails leaves nothing; made again it works. */
static void register_and_unregister(void)
{
    HRESULT (WINAPI *install)(BOOL, const WCHAR *) = (void *)GetProcAddress(dll, "DllInstall");
    HRESULT (WINAPI *register_server)(void) = (void *)GetProcAddress(dll, "DllRegisterServer");
    HRESULT (WINAPI *unregister_server)(void) = (void *)GetProcAddress(dll, "DllUnregisterServer");
    HRESULT hr = install(TRUE, L"user");

    ok(hr == S_OK || hr == site->failure, "%s: DllInstall(TRUE, user) returned %#lx\n", where, hr);
    if (hr != S_OK)
    {
        ok(user_keys_absent(), "%s: a failed registration left keys\n", where);
        ok(install(TRUE, L"user") == S_OK, "%s: DllInstall(TRUE, user) made again failed\n", where);
    }
    retried(install(FALSE, L"user"));
    ok(user_keys_absent(), "%s: unregistration left keys\n", where);
    retried(unregister_server());
    retried(register_server());
}

/* ---- the sweep ---- */

/* How many calls of a site a scenario makes: exactly `least` where the scenario decides it; where
 * the pool's timing decides how many threads start (and so how many stop packets Close posts),
 * from what the scenario needs to what its maximum allows. */
struct call_count
{
    LONG least, most;
};

struct scenario
{
    const char *name;
    void (*run)(void);
    BOOL uses_dll;              /* loads the DLL itself, rather than through COM */
    struct call_count calls[SITE_COUNT];
};

/* create_port: the port, and Bind's association.  create_thread: the monitor and the threads,
 * from those the scenario needs at once (the first; the minimum of 6; the fixed 4; 4 blocked
 * callbacks and one for the other packets) to the maximum.  heap_alloc: the manager, its engine, the port and
 * its pool; registration's journal, per user and per machine.  registry: every call of one
 * registration and unregistration per user and one per machine, in a registry where the other
 * bitness is not registered.  post: a stop packet per thread at Close, from those that must be
 * left (one listener; the minimum) to the maximum.  Work items: the worker pool's port, its monitor
 * and threads, the manager, engine, pool and its item queue, and the stop packets with as many
 * wake-ups (none to one per item) as items found a thread waiting; a refused wake-up is posted
 * again, so the item is accepted all the same. */
static const struct scenario scenarios[] =
{
    { "create and close a port", create_and_close_a_port, FALSE,
      { [CREATE_PORT] = { 1, 1 }, [CREATE_THREAD] = { 2, 1 + 4 }, [HEAP_ALLOC] = { 4, 4 }, [POST] = { 1, 4 } } },
    { "Bind", bind_a_pipe, FALSE,
      { [CREATE_PORT] = { 2, 2 }, [CREATE_THREAD] = { 2, 1 + 4 }, [HEAP_ALLOC] = { 4, 4 }, [POST] = { 1, 4 } } },
    { "raise the minimum", raise_the_minimum, FALSE,
      { [CREATE_PORT] = { 1, 1 }, [CREATE_THREAD] = { 1 + 6, 1 + 8 }, [HEAP_ALLOC] = { 4, 4 }, [POST] = { 6, 8 } } },
    { "grow a fixed pool", grow_a_fixed_pool, FALSE,
      { [CREATE_PORT] = { 1, 1 }, [CREATE_THREAD] = { 1 + 4, 1 + 4 }, [HEAP_ALLOC] = { 4, 4 }, [POST] = { 4, 4 } } },
    { "inject under load", inject_under_load, FALSE,
      { [CREATE_PORT] = { 1, 1 }, [CREATE_THREAD] = { 1 + 5, 1 + 8 }, [HEAP_ALLOC] = { 4, 4 }, [POST] = { 1, 8 } } },
    { "queue work items", queue_work_items, FALSE,
      { [CREATE_PORT] = { 1, 1 }, [CREATE_THREAD] = { 2, 1 + 4 }, [HEAP_ALLOC] = { 4, 4 }, [POST] = { 1, 8 + 4 } } },
    { "register and unregister", register_and_unregister, TRUE,
      { [HEAP_ALLOC] = { 2, 2 }, [REGISTRY] = { 372, 372 } } },
};

static BOOL dll_gone(void *unused)
{
    (void)unused;
    CoFreeUnusedLibrariesEx(0, 0);
    return !GetModuleHandleW(L"hostiocp.dll");
}

/* A thread of ours that has left the DLL may still be on its way out of the process. */
static BOOL threads_back_to(void *count)
{
    return process_threads() <= *(LONG *)count;
}

/* One run with the site's Nth call failing; TRUE if it was made (the fault fired). */
static BOOL run_once(const struct scenario *scenario)
{
    LONG threads = process_threads(), faults = hostiocp_trace.lines;
    DWORD handles = process_handles();
    char setting[64];
    WCHAR path[MAX_PATH * 2];

    snprintf(where, sizeof(where), "%s, %s call %ld", scenario->name, site->name, call);
    snprintf(setting, sizeof(setting), "%s:%ld", site->name, call);
    SetEnvironmentVariableA("HOSTIOCP_FAULT", setting);
    clr->hook = count_or_block;
    if (scenario->uses_dll)
    {
        get_dll_path(path, ARRAYSIZE(path));
        dll = LoadLibraryW(path);
    }
    scenario->run();
    if (dll)
        FreeLibrary(dll);
    dll = NULL;
    SetEnvironmentVariableA("HOSTIOCP_FAULT", NULL);
    ok(wait_until(dll_gone, NULL, 10000), "%s: hostiocp.dll stayed loaded\n", where);
    if (warming_up)
        return FALSE;
    wait_until(threads_back_to, &threads, 5000);
    ok(process_threads() == threads, "%s: %ld threads left behind\n", where, process_threads() - threads);
    ok(process_handles() == handles, "%s: %ld handles left behind\n", where, (LONG)(process_handles() - handles));
    ok(clr->refs == 1, "%s: the CLR callback kept %ld references\n", where, clr->refs - 1);
    return hostiocp_trace.lines > faults;
}

/* The site's 1st, 2nd, 3rd ... call failing in turn, until a run makes fewer calls; how many. */
static LONG sweep(const struct scenario *scenario)
{
    for (call = 1; call <= MAX_CALLS && run_once(scenario); call++)
        ;
    ok(call <= MAX_CALLS, "%s: still failing calls after %d\n", scenario->name, MAX_CALLS);
    trace("%s: %s failed at each of its %ld calls in turn\n", scenario->name, site->name, call - 1);
    return call - 1;
}

static void check_calls_failed(const struct scenario *scenario, size_t site_index, LONG failed)
{
    const struct call_count *expected = &scenario->calls[site_index];

    if (expected->least == expected->most)
        ok(failed == expected->least, "%s: %s failed at %ld calls in turn, not %ld\n", scenario->name,
           sites[site_index].name, failed, expected->least);
    else
        ok(failed >= expected->least && failed <= expected->most,
           "%s: %s failed at %ld calls in turn, not %ld to %ld\n", scenario->name, sites[site_index].name, failed,
           expected->least, expected->most);
}

START_TEST(faults)
{
    LONG failed, failed_in_all[SITE_COUNT] = { 0 };
    void *handler;
    size_t s, i;

    handler = collect_hostiocp_trace();
    CoInitializeEx(NULL, COINIT_MULTITHREADED);
    clr = fake_clr_create();
    /* Twice without a fault: what the system sets up on first use is not a leak. */
    site = &sites[0];
    call = MAX_CALLS + 1;
    warming_up = TRUE;
    OutputDebugStringA("faults: the first debug string opens the debugger's shared objects\n");
    for (i = 0; i < 2; i++)
        for (s = 0; s < ARRAYSIZE(scenarios); s++)
            run_once(&scenarios[s]);
    warming_up = FALSE;
    for (s = 0; s < ARRAYSIZE(scenarios); s++)
        for (i = 0; i < SITE_COUNT; i++)
        {
            site = &sites[i];
            failed = sweep(&scenarios[s]);
            check_calls_failed(&scenarios[s], i, failed);
            failed_in_all[i] += failed;
        }
    for (i = 0; i < SITE_COUNT; i++)
        ok(failed_in_all[i] > 0, "%s: no call failed in any scenario\n", sites[i].name);
    fake_clr_destroy(clr);
    CoUninitialize();
    RemoveVectoredExceptionHandler(handler);
}
