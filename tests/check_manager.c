/* Unit tests of every IHostIoCompletionManager method's contract: arguments, errors, limits,
 * the host overlapped extension, and the statistics and settings extensions. */
#include <check.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include "case_runner.h"
#include "check_support.h"
#include "fakeclr.h"

static IHostIoCompletionManager *manager;
static struct fake_clr *clr;

static void setup(void)
{
    CoInitializeEx(NULL, COINIT_MULTITHREADED);
    clr = fake_clr_create();
    ck_assert_hr(create_manager(&manager), S_OK);
}

static void teardown(void)
{
    ck_assert_int_eq(IHostIoCompletionManager_Release(manager), 0);
    ck_assert_int_eq(clr->refs, 1);  /* the manager let go of the CLR's callback */
    fake_clr_destroy(clr);
    CoUninitialize();
}

static void set_clr(void)
{
    ck_assert_hr(IHostIoCompletionManager_SetCLRIoCompletionManager(manager, &clr->ICLRIoCompletionManager_iface), S_OK);
}

static HANDLE create_temp_file(void)
{
    WCHAR dir[MAX_PATH], path[MAX_PATH];

    GetTempPathW(MAX_PATH, dir);
    GetTempFileNameW(dir, L"hio", 0, path);
    return CreateFileW(path, GENERIC_READ | GENERIC_WRITE, 0, NULL, CREATE_ALWAYS,
                       FILE_FLAG_OVERLAPPED | FILE_FLAG_DELETE_ON_CLOSE, NULL);
}

/* A real completion port that the manager did not create. */
static HANDLE create_foreign_port(void)
{
    HANDLE port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 0);

    ck_assert_ptr_ne(port, NULL);
    return port;
}

/* The port is still open and nobody else dequeues from it: a packet posted comes back as it went. */
static void assert_port_left_alone(HANDLE port)
{
    OVERLAPPED *overlapped = (OVERLAPPED *)1;
    ULONG_PTR key = 0;
    DWORD bytes = 0;

    ck_assert(PostQueuedCompletionStatus(port, 7, 0x1234, NULL));
    ck_assert(GetQueuedCompletionStatus(port, &bytes, &key, &overlapped, 0));
    ck_assert_int_eq(bytes, 7);
    ck_assert_int_eq(key, 0x1234);
    ck_assert_ptr_eq(overlapped, NULL);
}

START_TEST(null_out_pointers)
{
    ck_assert_hr(IHostIoCompletionManager_CreateIoCompletionPort(manager, NULL), E_POINTER);
    ck_assert_hr(IHostIoCompletionManager_GetMaxThreads(manager, NULL), E_POINTER);
    ck_assert_hr(IHostIoCompletionManager_GetMinThreads(manager, NULL), E_POINTER);
    ck_assert_hr(IHostIoCompletionManager_GetAvailableThreads(manager, NULL), E_POINTER);
    ck_assert_hr(IHostIoCompletionManager_GetHostOverlappedSize(manager, NULL), E_POINTER);
    ck_assert_hr(IHostIoCompletionManager_SetCLRIoCompletionManager(manager, NULL), E_POINTER);
    ck_assert_hr(IHostIoCompletionManager_InitializeHostOverlapped(manager, NULL), E_POINTER);
}
END_TEST

START_TEST(no_clr_means_clr_not_available)
{
    HANDLE port = (HANDLE)0xdead, file = create_temp_file();

    ck_assert_hr(IHostIoCompletionManager_CreateIoCompletionPort(manager, &port), HOST_E_CLRNOTAVAILABLE);
    ck_assert_ptr_eq(port, NULL);
    ck_assert_hr(IHostIoCompletionManager_Bind(manager, NULL, file), HOST_E_CLRNOTAVAILABLE);
    CloseHandle(file);
}
END_TEST

START_TEST(create_and_close_ports)
{
    HANDLE first, second, foreign = create_foreign_port();

    set_clr();
    ck_assert_hr(IHostIoCompletionManager_CreateIoCompletionPort(manager, &first), S_OK);
    ck_assert_hr(IHostIoCompletionManager_CreateIoCompletionPort(manager, &second), S_OK);
    ck_assert_ptr_ne(first, NULL);
    ck_assert_ptr_ne(first, second);
    /* A real kernel port: others may post to it. */
    ck_assert(PostQueuedCompletionStatus(first, 0, 0, NULL));
    /* A port that is not ours, while ours are open, is refused and left alone. */
    ck_assert_hr(IHostIoCompletionManager_CloseIoCompletionPort(manager, foreign), E_INVALIDARG);
    assert_port_left_alone(foreign);
    ck_assert_hr(IHostIoCompletionManager_CloseIoCompletionPort(manager, first), S_OK);
    ck_assert_hr(IHostIoCompletionManager_CloseIoCompletionPort(manager, first), E_INVALIDARG);
    ck_assert_hr(IHostIoCompletionManager_CloseIoCompletionPort(manager, NULL), E_INVALIDARG);
    ck_assert_hr(IHostIoCompletionManager_CloseIoCompletionPort(manager, INVALID_HANDLE_VALUE), E_INVALIDARG);
    ck_assert_hr(IHostIoCompletionManager_CloseIoCompletionPort(manager, second), S_OK);
    CloseHandle(foreign);
}
END_TEST

START_TEST(bind_checks_its_handles)
{
    HANDLE port, other_port, file = create_temp_file(), closed = create_temp_file();
    HANDLE foreign_port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 0);

    set_clr();
    ck_assert_hr(IHostIoCompletionManager_CreateIoCompletionPort(manager, &port), S_OK);
    ck_assert_hr(IHostIoCompletionManager_CreateIoCompletionPort(manager, &other_port), S_OK);
    ck_assert_hr(IHostIoCompletionManager_Bind(manager, port, NULL), E_INVALIDARG);
    ck_assert_hr(IHostIoCompletionManager_Bind(manager, port, INVALID_HANDLE_VALUE), E_INVALIDARG);
    ck_assert_hr(IHostIoCompletionManager_Bind(manager, port, other_port), E_INVALIDARG);
    ck_assert_hr(IHostIoCompletionManager_Bind(manager, foreign_port, file), E_INVALIDARG);
    CloseHandle(closed);
    ck_assert_hr(IHostIoCompletionManager_Bind(manager, port, closed), HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE));
    ck_assert_hr(IHostIoCompletionManager_Bind(manager, port, file), S_OK);
    /* A handle belongs to one port for its lifetime. */
    ck_assert_hr(IHostIoCompletionManager_Bind(manager, other_port, file), HRESULT_FROM_WIN32(ERROR_INVALID_PARAMETER));
    CloseHandle(file);
    CloseHandle(foreign_port);
}
END_TEST

START_TEST(bind_null_port_uses_the_default_port)
{
    HANDLE port, file = create_temp_file(), second = create_temp_file();
    HOSTIOCP_STATISTICS stats;

    set_clr();
    /* No port yet: Bind(NULL) creates the default one. */
    ck_assert_hr(IHostIoCompletionManager_Bind(manager, NULL, file), S_OK);
    ck_assert_hr(get_statistics(manager, NULL, &stats), S_OK);
    ck_assert_int_eq(stats.PortsOpen, 1);
    ck_assert_int_eq(stats.HandlesBound, 1);
    /* Later ports do not replace it. */
    ck_assert_hr(IHostIoCompletionManager_CreateIoCompletionPort(manager, &port), S_OK);
    ck_assert_hr(IHostIoCompletionManager_Bind(manager, NULL, second), S_OK);
    ck_assert_hr(get_statistics(manager, port, &stats), S_OK);
    ck_assert_int_eq(stats.HandlesBound, 0);
    ck_assert_hr(get_statistics(manager, NULL, &stats), S_OK);
    ck_assert_int_eq(stats.PortsOpen, 2);
    ck_assert_int_eq(stats.HandlesBound, 2);
    CloseHandle(file);
    CloseHandle(second);
}
END_TEST

START_TEST(thread_limits_round_trip)
{
    SYSTEM_INFO system;
    DWORD value;

    GetSystemInfo(&system);
    ck_assert_hr(IHostIoCompletionManager_GetMinThreads(manager, &value), S_OK);
    ck_assert_int_eq(value, system.dwNumberOfProcessors);
    ck_assert_hr(IHostIoCompletionManager_GetMaxThreads(manager, &value), S_OK);
    ck_assert_int_eq(value, HOSTIOCP_MAX_THREADS_LIMIT);

    ck_assert_hr(IHostIoCompletionManager_SetMaxThreads(manager, 7), S_OK);
    ck_assert_hr(IHostIoCompletionManager_GetMaxThreads(manager, &value), S_OK);
    ck_assert_int_eq(value, 7);
    ck_assert_hr(IHostIoCompletionManager_SetMinThreads(manager, 7), S_OK);
    ck_assert_hr(IHostIoCompletionManager_GetMinThreads(manager, &value), S_OK);
    ck_assert_int_eq(value, 7);
    ck_assert_hr(IHostIoCompletionManager_SetMinThreads(manager, 0), S_OK);
    ck_assert_hr(IHostIoCompletionManager_GetMinThreads(manager, &value), S_OK);
    ck_assert_int_eq(value, 0);
    ck_assert_hr(IHostIoCompletionManager_SetMaxThreads(manager, 1), S_OK);
    ck_assert_hr(IHostIoCompletionManager_GetMaxThreads(manager, &value), S_OK);
    ck_assert_int_eq(value, 1);
    ck_assert_hr(IHostIoCompletionManager_SetMaxThreads(manager, HOSTIOCP_MAX_THREADS_LIMIT), S_OK);
    ck_assert_hr(IHostIoCompletionManager_GetMaxThreads(manager, &value), S_OK);
    ck_assert_int_eq(value, HOSTIOCP_MAX_THREADS_LIMIT);
}
END_TEST

START_TEST(thread_limits_reject_out_of_range)
{
    DWORD value;

    ck_assert_hr(IHostIoCompletionManager_SetMaxThreads(manager, 0), E_INVALIDARG);
    ck_assert_hr(IHostIoCompletionManager_SetMaxThreads(manager, HOSTIOCP_MAX_THREADS_LIMIT + 1), E_INVALIDARG);
    ck_assert_hr(IHostIoCompletionManager_SetMaxThreads(manager, 0xffffffff), E_INVALIDARG);
    ck_assert_hr(IHostIoCompletionManager_SetMaxThreads(manager, 10), S_OK);
    ck_assert_hr(IHostIoCompletionManager_SetMinThreads(manager, 11), E_INVALIDARG);
    ck_assert_hr(IHostIoCompletionManager_SetMinThreads(manager, 0xffffffff), E_INVALIDARG);
    ck_assert_hr(IHostIoCompletionManager_SetMinThreads(manager, 5), S_OK);
    ck_assert_hr(IHostIoCompletionManager_SetMaxThreads(manager, 4), E_INVALIDARG);
    /* Failed calls change nothing. */
    ck_assert_hr(IHostIoCompletionManager_GetMinThreads(manager, &value), S_OK);
    ck_assert_int_eq(value, 5);
    ck_assert_hr(IHostIoCompletionManager_GetMaxThreads(manager, &value), S_OK);
    ck_assert_int_eq(value, 10);
}
END_TEST

START_TEST(available_threads_is_max_when_idle)
{
    HANDLE port;
    DWORD value;

    set_clr();
    ck_assert_hr(IHostIoCompletionManager_SetMaxThreads(manager, 12), S_OK);
    ck_assert_hr(IHostIoCompletionManager_GetAvailableThreads(manager, &value), S_OK);
    ck_assert_int_eq(value, 12);
    ck_assert_hr(IHostIoCompletionManager_CreateIoCompletionPort(manager, &port), S_OK);
    ck_assert_hr(IHostIoCompletionManager_GetAvailableThreads(manager, &value), S_OK);
    ck_assert_int_eq(value, 12);
}
END_TEST

START_TEST(host_overlapped_extension)
{
    struct clr_overlapped request;
    OVERLAPPED pattern;
    HOSTIOCP_OVERLAPPED_EXTENSION first, second;
    DWORD size = 0;
    size_t i;

    ck_assert_hr(IHostIoCompletionManager_GetHostOverlappedSize(manager, &size), S_OK);
    ck_assert_int_eq(size, sizeof(HOSTIOCP_OVERLAPPED_EXTENSION));
    ck_assert_int_eq(size, 16);

    memset(&request, 0xab, sizeof(request));
    memset(&pattern, 0xab, sizeof(pattern));
    ck_assert_hr(IHostIoCompletionManager_InitializeHostOverlapped(manager, &request.overlapped), S_OK);
    ck_assert_int_eq(memcmp(&request.overlapped, &pattern, sizeof(pattern)), 0);  /* the OVERLAPPED is the CLR's */
    memcpy(&first, request.host, sizeof(first));
    ck_assert_uint_eq(first.Tag, HOSTIOCP_OVERLAPPED_TAG);
    ck_assert(first.Owner == (ULONG_PTR)manager);
    for (i = size; i < sizeof(request.host); i++)
        ck_assert_uint_eq(request.host[i], 0xab);  /* nothing past the extension */

    ck_assert_hr(IHostIoCompletionManager_InitializeHostOverlapped(manager, &request.overlapped), S_OK);
    memcpy(&second, request.host, sizeof(second));
    ck_assert_uint_eq(second.Sequence, first.Sequence + 1);
}
END_TEST

START_TEST(clr_callback_is_kept_and_fixed_once_ports_exist)
{
    struct fake_clr *other = fake_clr_create();
    HANDLE port;

    set_clr();
    ck_assert_int_eq(clr->refs, 2);
    /* Replacing it is fine until a port uses it. */
    ck_assert_hr(IHostIoCompletionManager_SetCLRIoCompletionManager(manager, &other->ICLRIoCompletionManager_iface), S_OK);
    ck_assert_int_eq(clr->refs, 1);
    ck_assert_int_eq(other->refs, 2);
    set_clr();
    ck_assert_int_eq(other->refs, 1);
    ck_assert_hr(IHostIoCompletionManager_CreateIoCompletionPort(manager, &port), S_OK);
    ck_assert_hr(IHostIoCompletionManager_SetCLRIoCompletionManager(manager, &other->ICLRIoCompletionManager_iface),
                 HOST_E_INVALIDOPERATION);
    ck_assert_hr(IHostIoCompletionManager_SetCLRIoCompletionManager(manager, &clr->ICLRIoCompletionManager_iface), S_OK);
    ck_assert_int_eq(other->refs, 1);
    ck_assert_hr(IHostIoCompletionManager_CloseIoCompletionPort(manager, port), S_OK);
    fake_clr_destroy(other);
}
END_TEST

START_TEST(statistics_check_their_arguments)
{
    IHostIoCpStatistics *statistics;
    HOSTIOCP_STATISTICS stats;
    HANDLE port, foreign = create_foreign_port();

    set_clr();
    ck_assert_hr(IHostIoCompletionManager_QueryInterface(manager, &IID_IHostIoCpStatistics, (void **)&statistics), S_OK);
    ck_assert_hr(IHostIoCpStatistics_GetStatistics(statistics, NULL), E_POINTER);
    stats.cbSize = sizeof(stats) - 1;
    ck_assert_hr(IHostIoCpStatistics_GetStatistics(statistics, &stats), E_INVALIDARG);
    stats.cbSize = sizeof(stats);
    ck_assert_hr(IHostIoCpStatistics_GetStatistics(statistics, &stats), S_OK);
    ck_assert_int_eq(stats.PortsOpen, 0);
    ck_assert_int_eq(stats.ThreadsTotal, 0);
    ck_assert_hr(IHostIoCpStatistics_GetPortStatistics(statistics, NULL, &stats), E_INVALIDARG);
    ck_assert_hr(IHostIoCpStatistics_GetPortStatistics(statistics, INVALID_HANDLE_VALUE, &stats), E_INVALIDARG);

    ck_assert_hr(IHostIoCompletionManager_SetMaxThreads(manager, 3), S_OK);
    ck_assert_hr(IHostIoCompletionManager_SetMinThreads(manager, 3), S_OK);
    ck_assert_hr(IHostIoCompletionManager_CreateIoCompletionPort(manager, &port), S_OK);
    ck_assert_hr(IHostIoCpStatistics_GetPortStatistics(statistics, port, NULL), E_POINTER);
    ck_assert_hr(IHostIoCpStatistics_GetPortStatistics(statistics, foreign, &stats), E_INVALIDARG);
    ck_assert_hr(IHostIoCpStatistics_GetPortStatistics(statistics, port, &stats), S_OK);
    ck_assert_int_eq(stats.cbSize, sizeof(stats));
    ck_assert_int_eq(stats.PortsOpen, 1);
    ck_assert_int_eq(stats.ThreadsTotal, 3);
    ck_assert_int_eq(stats.ThreadsBusy, 0);
    ck_assert_int_eq(stats.ThreadsIdle, 3);
    ck_assert_int_eq(stats.ThreadsPeak, 3);
    ck_assert_int_eq(stats.CompletionsDispatched, 0);
    ck_assert_int_eq(stats.ThreadsTarget, 3);
    ck_assert_int_eq(stats.TargetRaised + stats.TargetLowered + stats.StarvationInjections, 0);
    /* A caller built against version 1.0 gets the fields it knows and nothing written after them. */
    memset(&stats, 0xcc, sizeof(stats));
    stats.cbSize = HOSTIOCP_STATISTICS_V1_SIZE;
    ck_assert_int_eq(offsetof(HOSTIOCP_STATISTICS, ThreadsTarget), HOSTIOCP_STATISTICS_V1_SIZE);
    ck_assert_hr(IHostIoCpStatistics_GetPortStatistics(statistics, port, &stats), S_OK);
    ck_assert_int_eq(stats.cbSize, HOSTIOCP_STATISTICS_V1_SIZE);
    ck_assert_int_eq(stats.ThreadsTotal, 3);
    ck_assert_int_eq(stats.ThreadsTarget, 0xcccccccc);
    ck_assert_int_eq(stats.StarvationInjections, 0xccccccccccccccccull);
    stats.cbSize = HOSTIOCP_STATISTICS_V1_SIZE + 8;
    ck_assert_hr(IHostIoCpStatistics_GetStatistics(statistics, &stats), E_INVALIDARG);
    stats.cbSize = sizeof(stats);
    ck_assert_hr(IHostIoCompletionManager_CloseIoCompletionPort(manager, port), S_OK);
    ck_assert_hr(IHostIoCpStatistics_GetPortStatistics(statistics, port, &stats), E_INVALIDARG);
    ck_assert_hr(IHostIoCpStatistics_GetStatistics(statistics, &stats), S_OK);
    ck_assert_int_eq(stats.PortsOpen, 0);
    ck_assert_int_eq(stats.ThreadsTotal, 0);
    ck_assert_int_eq(stats.ThreadsPeak, 3);
    IHostIoCpStatistics_Release(statistics);
    CloseHandle(foreign);
}
END_TEST

START_TEST(settings_round_trip_and_reject_out_of_range)
{
    IHostIoCpSettings *settings;
    DWORD value;

    ck_assert_hr(IHostIoCompletionManager_QueryInterface(manager, &IID_IHostIoCpSettings, (void **)&settings), S_OK);
    ck_assert_hr(IHostIoCpSettings_GetIdleTimeout(settings, &value), S_OK);
    ck_assert_int_eq(value, 10000);
    ck_assert_hr(IHostIoCpSettings_GetBatchSize(settings, &value), S_OK);
    ck_assert_int_eq(value, 1);
    ck_assert_hr(IHostIoCpSettings_GetIdleTimeout(settings, NULL), E_POINTER);
    ck_assert_hr(IHostIoCpSettings_GetBatchSize(settings, NULL), E_POINTER);
    ck_assert_hr(IHostIoCpSettings_SetIdleTimeout(settings, 0), E_INVALIDARG);
    ck_assert_hr(IHostIoCpSettings_SetIdleTimeout(settings, HOSTIOCP_MAX_IDLE_TIMEOUT + 1), E_INVALIDARG);
    ck_assert_hr(IHostIoCpSettings_SetIdleTimeout(settings, 1234), S_OK);
    ck_assert_hr(IHostIoCpSettings_GetIdleTimeout(settings, &value), S_OK);
    ck_assert_int_eq(value, 1234);
    ck_assert_hr(IHostIoCpSettings_SetBatchSize(settings, 0), E_INVALIDARG);
    ck_assert_hr(IHostIoCpSettings_SetBatchSize(settings, HOSTIOCP_MAX_BATCH_SIZE + 1), E_INVALIDARG);
    ck_assert_hr(IHostIoCpSettings_SetBatchSize(settings, 64), S_OK);
    ck_assert_hr(IHostIoCpSettings_GetBatchSize(settings, &value), S_OK);
    ck_assert_int_eq(value, 64);
    IHostIoCpSettings_Release(settings);
}
END_TEST

int main(void)
{
    const struct test_case cases[] =
    {
        TEST_CASE(null_out_pointers),
        TEST_CASE(no_clr_means_clr_not_available),
        TEST_CASE(thread_limits_round_trip),
        TEST_CASE(thread_limits_reject_out_of_range),
        TEST_CASE(host_overlapped_extension),
        TEST_CASE(settings_round_trip_and_reject_out_of_range),
        TEST_CASE(create_and_close_ports),
        TEST_CASE(bind_checks_its_handles),
        TEST_CASE(bind_null_port_uses_the_default_port),
        TEST_CASE(available_threads_is_max_when_idle),
        TEST_CASE(clr_callback_is_kept_and_fixed_once_ports_exist),
        TEST_CASE(statistics_check_their_arguments),
    };
    return run_cases_in_own_processes(suite_of_cases("manager", cases, ARRAYSIZE(cases), setup, teardown), cases,
                                      ARRAYSIZE(cases)) ? 1 : 0;
}
