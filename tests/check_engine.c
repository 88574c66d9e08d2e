/* Unit tests of the completion engine: exactly-once dispatch under load, batching, the thread
 * policy (minimum, maximum, injection, retirement) and shutdown. */
#include <check.h>
#include <stdio.h>
#include <string.h>
#include "fakeclr.h"

#define ck_assert_hr(call, expected) do { \
    HRESULT hr_ = (call); \
    ck_assert_msg(hr_ == (HRESULT)(expected), "%s returned 0x%08lx, expected 0x%08lx", #call, \
                  (unsigned long)hr_, (unsigned long)(expected)); \
} while (0)

#define STRESS_PACKETS 100000
#define WAIT_MS 60000

static struct fake_clr *clr;

static void setup(void)
{
    CoInitializeEx(NULL, COINIT_MULTITHREADED);
    clr = fake_clr_create();
}

static void teardown(void)
{
    ck_assert_int_eq(clr->refs, 1);
    fake_clr_destroy(clr);
    CoUninitialize();
}

static IHostIoCompletionManager *start(DWORD min, DWORD max, HANDLE *port)
{
    IHostIoCompletionManager *manager = NULL;

    ck_assert_hr(create_manager_with_clr(clr, min, max, &manager, port), S_OK);
    return manager;
}

/* Posts one packet per OVERLAPPED, its index as the byte count, with a key Bind never gave out. */
static void post_packets(HANDLE port, OVERLAPPED *requests, int count)
{
    int i;

    for (i = 0; i < count; i++)
        ck_assert(PostQueuedCompletionStatus(port, i, 0, &requests[i]));
}

/* ---- exactly once, by sequence number ---- */

struct sequence_check
{
    OVERLAPPED *requests;
    volatile LONG *seen;
    volatile LONG wrong_bytes;
    volatile LONG wrong_error;
};

static void count_by_sequence(struct fake_clr *fake, DWORD error, DWORD bytes, void *overlapped)
{
    struct sequence_check *check = fake->context;
    size_t index = (OVERLAPPED *)overlapped - check->requests;

    InterlockedIncrement(&check->seen[index]);
    if (bytes != (DWORD)index)
        InterlockedIncrement(&check->wrong_bytes);
    if (error != ERROR_SUCCESS)
        InterlockedIncrement(&check->wrong_error);
}

static void run_exactly_once(DWORD threads, DWORD batch)
{
    struct sequence_check check = { 0 };
    IHostIoCompletionManager *manager;
    HOSTIOCP_STATISTICS stats;
    HANDLE port;
    LONG i, missing = 0, duplicated = 0;

    check.requests = HeapAlloc(GetProcessHeap(), HEAP_ZERO_MEMORY, STRESS_PACKETS * sizeof(OVERLAPPED));
    check.seen = HeapAlloc(GetProcessHeap(), HEAP_ZERO_MEMORY, STRESS_PACKETS * sizeof(LONG));
    clr->hook = count_by_sequence;
    clr->context = &check;
    manager = start(threads, threads, &port);
    ck_assert_hr(set_batch_size(manager, batch), S_OK);
    fake_clr_expect(clr, STRESS_PACKETS);
    /* Posted as others post to the CLR's port: with a key Bind never gave out. */
    for (i = 0; i < STRESS_PACKETS; i++)
        ck_assert(PostQueuedCompletionStatus(port, (DWORD)i, 0x5eed, &check.requests[i]));
    ck_assert_msg(fake_clr_wait(clr, WAIT_MS), "only %ld of %d completions arrived", clr->calls, STRESS_PACKETS);
    for (i = 0; i < STRESS_PACKETS; i++)
    {
        missing += check.seen[i] == 0;
        duplicated += check.seen[i] > 1;
    }
    ck_assert_int_eq(missing, 0);
    ck_assert_int_eq(duplicated, 0);
    ck_assert_int_eq(check.wrong_bytes, 0);
    ck_assert_int_eq(check.wrong_error, 0);
    ck_assert_hr(get_statistics(manager, port, &stats), S_OK);
    ck_assert_int_eq(stats.CompletionsDispatched, STRESS_PACKETS);
    ck_assert_int_eq(stats.ForeignPackets, STRESS_PACKETS);
    ck_assert_int_eq(stats.CompletionsFailed, 0);
    ck_assert_int_le(stats.ThreadsPeak, threads);
    printf("exactly once: %d packets, %lu threads, batch %lu: %ld calls, peak %lu threads\n",
           STRESS_PACKETS, threads, batch, clr->calls, stats.ThreadsPeak);
    ck_assert_int_eq(IHostIoCompletionManager_Release(manager), 0);
    ck_assert_int_eq(clr->calls, STRESS_PACKETS);
    clr->hook = NULL;
    HeapFree(GetProcessHeap(), 0, (void *)check.seen);
    HeapFree(GetProcessHeap(), 0, check.requests);
}

START_TEST(exactly_once_one_thread)   { run_exactly_once(1, 1); } END_TEST
START_TEST(exactly_once_two_threads)  { run_exactly_once(2, 1); } END_TEST
START_TEST(exactly_once_eight_threads) { run_exactly_once(8, 1); } END_TEST
START_TEST(exactly_once_batched)      { run_exactly_once(2, 16); } END_TEST

/* ---- what the dispatch passes on ---- */

START_TEST(wakeup_packets_are_not_dispatched)
{
    IHostIoCompletionManager *manager = start(1, 1, NULL);
    OVERLAPPED marker;
    HOSTIOCP_STATISTICS stats;
    HANDLE port;

    ck_assert_hr(IHostIoCompletionManager_CreateIoCompletionPort(manager, &port), S_OK);
    fake_clr_expect(clr, 1);
    ck_assert(PostQueuedCompletionStatus(port, 7, 0x1234, NULL));
    ck_assert(PostQueuedCompletionStatus(port, 9, 0x1234, &marker));
    ck_assert(fake_clr_wait(clr, WAIT_MS));
    ck_assert_int_eq(clr->calls, 1);
    ck_assert_ptr_eq(clr->last_overlapped, &marker);
    ck_assert_int_eq(clr->last_bytes, 9);
    ck_assert_hr(get_statistics(manager, port, &stats), S_OK);
    ck_assert_int_eq(stats.WakeupPackets, 1);
    ck_assert_int_eq(stats.ForeignPackets, 1);
    ck_assert_int_eq(IHostIoCompletionManager_Release(manager), 0);
}
END_TEST

START_TEST(oncomplete_runs_on_a_pool_thread)
{
    IHostIoCompletionManager *manager;
    OVERLAPPED request;
    HANDLE port;

    manager = start(1, 1, &port);
    fake_clr_expect(clr, 1);
    ck_assert(PostQueuedCompletionStatus(port, 1, 0, &request));
    ck_assert(fake_clr_wait(clr, WAIT_MS));
    ck_assert_int_ne(clr->last_thread, GetCurrentThreadId());
    ck_assert_int_ne(clr->last_thread, 0);
    ck_assert_int_eq(IHostIoCompletionManager_Release(manager), 0);
}
END_TEST

/* ---- thread policy ---- */

struct blocking
{
    HANDLE release;            /* callbacks wait for it */
    volatile LONG inside;
    HANDLE all_inside;
    LONG expected_inside;
};

static void block_until_released(struct fake_clr *fake, DWORD error, DWORD bytes, void *overlapped)
{
    struct blocking *blocking = fake->context;

    (void)error; (void)bytes; (void)overlapped;
    if (InterlockedIncrement(&blocking->inside) == blocking->expected_inside)
        SetEvent(blocking->all_inside);
    WaitForSingleObject(blocking->release, WAIT_MS);
}

static void init_blocking(struct blocking *blocking, LONG expected_inside)
{
    blocking->release = CreateEventW(NULL, TRUE, FALSE, NULL);
    blocking->all_inside = CreateEventW(NULL, TRUE, FALSE, NULL);
    blocking->inside = 0;
    blocking->expected_inside = expected_inside;
    clr->hook = block_until_released;
    clr->context = blocking;
}

static void free_blocking(struct blocking *blocking)
{
    clr->hook = NULL;
    CloseHandle(blocking->release);
    CloseHandle(blocking->all_inside);
}

START_TEST(minimum_threads_start_with_the_port)
{
    IHostIoCompletionManager *manager;
    HOSTIOCP_STATISTICS stats;
    HANDLE port;

    manager = start(3, 8, &port);
    ck_assert_hr(get_statistics(manager, port, &stats), S_OK);
    ck_assert_int_eq(stats.ThreadsTotal, 3);
    ck_assert_int_eq(stats.ThreadsIdle, 3);
    /* Raising the minimum tops the pool up at once. */
    ck_assert_hr(IHostIoCompletionManager_SetMinThreads(manager, 5), S_OK);
    ck_assert_hr(get_statistics(manager, port, &stats), S_OK);
    ck_assert_int_eq(stats.ThreadsTotal, 5);
    ck_assert_int_eq(stats.ThreadsInjected, 0);
    ck_assert_int_eq(IHostIoCompletionManager_Release(manager), 0);
}
END_TEST

START_TEST(blocking_callback_forces_an_injection)
{
    IHostIoCompletionManager *manager;
    struct blocking blocking;
    OVERLAPPED first, second;
    HOSTIOCP_STATISTICS stats;
    HANDLE port;

    init_blocking(&blocking, 2);
    manager = start(1, 4, &port);
    fake_clr_expect(clr, 2);
    ck_assert(PostQueuedCompletionStatus(port, 1, 0, &first));
    ck_assert(PostQueuedCompletionStatus(port, 2, 0, &second));
    /* Both callbacks are inside at once although the pool started with one thread. */
    ck_assert_msg(WaitForSingleObject(blocking.all_inside, 5000) == WAIT_OBJECT_0,
                  "the second packet waited behind a blocked callback");
    ck_assert_hr(get_statistics(manager, port, &stats), S_OK);
    ck_assert_int_ge(stats.ThreadsInjected, 1);
    ck_assert_int_eq(stats.ThreadsBusy, 2);
    ck_assert_int_le(stats.ThreadsTotal, 4);
    SetEvent(blocking.release);
    ck_assert(fake_clr_wait(clr, WAIT_MS));
    ck_assert_int_eq(IHostIoCompletionManager_Release(manager), 0);
    free_blocking(&blocking);
}
END_TEST

static BOOL busy_is(const HOSTIOCP_STATISTICS *stats, LONG busy)
{
    return stats->ThreadsBusy == (DWORD)busy;
}

START_TEST(maximum_is_never_exceeded)
{
    IHostIoCompletionManager *manager;
    struct blocking blocking;
    OVERLAPPED requests[5];
    HOSTIOCP_STATISTICS stats;
    DWORD available;
    HANDLE port;

    init_blocking(&blocking, 2);
    manager = start(1, 2, &port);
    fake_clr_expect(clr, 5);
    post_packets(port, requests, 5);
    ck_assert(WaitForSingleObject(blocking.all_inside, 5000) == WAIT_OBJECT_0);
    ck_assert_hr(IHostIoCompletionManager_GetAvailableThreads(manager, &available), S_OK);
    ck_assert_int_eq(available, 0);
    ck_assert_hr(get_statistics(manager, port, &stats), S_OK);
    ck_assert_int_eq(stats.ThreadsTotal, 2);
    ck_assert_int_eq(stats.ThreadsBusy, 2);
    ck_assert_int_eq(stats.ThreadsPeak, 2);
    ck_assert_int_eq(blocking.inside, 2);
    SetEvent(blocking.release);
    ck_assert(fake_clr_wait(clr, WAIT_MS));
    ck_assert(wait_for_statistics(manager, port, busy_is, 0, 5000));
    ck_assert_hr(IHostIoCompletionManager_GetAvailableThreads(manager, &available), S_OK);
    ck_assert_int_eq(available, 2);
    ck_assert_hr(get_statistics(manager, port, &stats), S_OK);
    ck_assert_int_eq(stats.ThreadsPeak, 2);
    ck_assert_int_eq(IHostIoCompletionManager_Release(manager), 0);
    free_blocking(&blocking);
}
END_TEST

static BOOL threads_are(const HOSTIOCP_STATISTICS *stats, LONG threads)
{
    return stats->ThreadsTotal == (DWORD)threads;
}

START_TEST(idle_threads_above_minimum_retire)
{
    IHostIoCompletionManager *manager;
    struct blocking blocking;
    OVERLAPPED requests[3];
    HOSTIOCP_STATISTICS stats;
    HANDLE port;

    init_blocking(&blocking, 3);
    manager = start(1, 8, &port);
    ck_assert_hr(set_idle_timeout(manager, 50), S_OK);
    fake_clr_expect(clr, 3);
    post_packets(port, requests, 3);
    ck_assert(WaitForSingleObject(blocking.all_inside, 5000) == WAIT_OBJECT_0);
    SetEvent(blocking.release);
    ck_assert(fake_clr_wait(clr, WAIT_MS));
    ck_assert_msg(wait_for_statistics(manager, port, threads_are, 1, 10000), "idle threads stayed");
    ck_assert_hr(get_statistics(manager, port, &stats), S_OK);
    ck_assert_int_ge(stats.ThreadsRetired, 2);
    ck_assert_int_eq(stats.ThreadsTotal, 1);  /* never below one listener */
    /* ... which still serves the port. */
    fake_clr_expect(clr, 1);
    ck_assert(PostQueuedCompletionStatus(port, 1, 0, &requests[0]));
    ck_assert(fake_clr_wait(clr, WAIT_MS));
    ck_assert_int_eq(IHostIoCompletionManager_Release(manager), 0);
    free_blocking(&blocking);
}
END_TEST

START_TEST(lowered_maximum_retires_threads_after_callbacks)
{
    static OVERLAPPED requests[50];
    IHostIoCompletionManager *manager;
    HOSTIOCP_STATISTICS stats;
    HANDLE port;

    manager = start(4, 4, &port);
    ck_assert_hr(IHostIoCompletionManager_SetMinThreads(manager, 1), S_OK);
    ck_assert_hr(IHostIoCompletionManager_SetMaxThreads(manager, 2), S_OK);
    ck_assert_hr(get_statistics(manager, port, &stats), S_OK);
    ck_assert_int_eq(stats.ThreadsTotal, 4);  /* idle threads wait; busy ones leave after their callback */
    fake_clr_expect(clr, 50);
    post_packets(port, requests, 50);
    ck_assert(fake_clr_wait(clr, WAIT_MS));
    ck_assert_msg(wait_for_statistics(manager, port, threads_are, 2, 10000), "threads above the new maximum stayed");
    ck_assert_hr(get_statistics(manager, port, &stats), S_OK);
    ck_assert_int_eq(stats.ThreadsRetired, 2);
    ck_assert_int_eq(stats.CompletionsDispatched, 50);
    ck_assert_int_eq(IHostIoCompletionManager_Release(manager), 0);
}
END_TEST

/* ---- shutdown ---- */

struct after_release
{
    volatile LONG released;
    volatile LONG calls_after;
    HANDLE never;
};

/* Slow callbacks (up to 20 ms each) keep packets queued when the manager goes away. */
static void note_calls_after_release(struct fake_clr *fake, DWORD error, DWORD bytes, void *overlapped)
{
    struct after_release *state = fake->context;

    (void)error; (void)bytes; (void)overlapped;
    if (state->released)
        InterlockedIncrement(&state->calls_after);
    if (fake->calls >= 100)
        WaitForSingleObject(state->never, 20);
}

START_TEST(release_while_packets_stream)
{
    static OVERLAPPED requests[20000];
    struct after_release state = { 0 };
    IHostIoCompletionManager *manager;
    LARGE_INTEGER frequency, before, after;
    HANDLE port;
    LONG calls;

    state.never = CreateEventW(NULL, TRUE, FALSE, NULL);
    clr->hook = note_calls_after_release;
    clr->context = &state;
    manager = start(4, 4, &port);
    fake_clr_expect(clr, 100);
    post_packets(port, requests, 20000);
    ck_assert(fake_clr_wait(clr, WAIT_MS));  /* dispatch is under way */
    QueryPerformanceFrequency(&frequency);
    QueryPerformanceCounter(&before);
    ck_assert_int_eq(IHostIoCompletionManager_Release(manager), 0);
    QueryPerformanceCounter(&after);
    InterlockedExchange(&state.released, 1);
    calls = clr->calls;
    printf("release with packets queued: %.1f ms, %ld of 20000 dispatched\n",
           (after.QuadPart - before.QuadPart) * 1000.0 / frequency.QuadPart, calls);
    ck_assert_int_lt(calls, 20000);          /* it did not drain the queue first */
    ck_assert_int_eq(clr->refs, 1);          /* no thread can call the CLR any more */
    ck_assert_int_eq(state.calls_after, 0);
    ck_assert_int_eq(clr->calls, calls);
    clr->hook = NULL;
    CloseHandle(state.never);
}
END_TEST

struct release_inside
{
    IHostIoCompletionManager *manager;
    HANDLE port;
    BOOL close_port;
    HRESULT hr;
    ULONG refs;
};

static void release_from_callback(struct fake_clr *fake, DWORD error, DWORD bytes, void *overlapped)
{
    struct release_inside *state = fake->context;

    (void)error; (void)bytes; (void)overlapped;
    if (state->close_port)
        state->hr = IHostIoCompletionManager_CloseIoCompletionPort(state->manager, state->port);
    else
        state->refs = IHostIoCompletionManager_Release(state->manager);
}

START_TEST(last_release_inside_a_callback)
{
    struct release_inside state = { 0 };
    OVERLAPPED request;

    state.manager = start(2, 2, &state.port);
    clr->hook = release_from_callback;
    clr->context = &state;
    fake_clr_expect(clr, 1);
    ck_assert(PostQueuedCompletionStatus(state.port, 0, 0, &request));
    ck_assert(fake_clr_wait(clr, WAIT_MS));
    ck_assert_int_eq(state.refs, 0);
    clr->hook = NULL;
}
END_TEST

START_TEST(close_port_inside_a_callback)
{
    struct release_inside state = { 0 };
    OVERLAPPED request;
    HOSTIOCP_STATISTICS stats;

    state.manager = start(2, 2, &state.port);
    state.close_port = TRUE;
    state.hr = E_FAIL;
    clr->hook = release_from_callback;
    clr->context = &state;
    fake_clr_expect(clr, 1);
    ck_assert(PostQueuedCompletionStatus(state.port, 0, 0, &request));
    ck_assert(fake_clr_wait(clr, WAIT_MS));
    ck_assert_hr(state.hr, S_OK);
    ck_assert_hr(get_statistics(state.manager, NULL, &stats), S_OK);
    ck_assert_int_eq(stats.PortsOpen, 0);
    ck_assert_int_eq(stats.CompletionsDispatched, 1);
    ck_assert_int_eq(IHostIoCompletionManager_Release(state.manager), 0);
    clr->hook = NULL;
}
END_TEST

static Suite *engine_suite(void)
{
    Suite *suite = suite_create("engine");
    TCase *dispatch = tcase_create("dispatch"), *threads = tcase_create("threads");
    TCase *shutdown = tcase_create("shutdown");

    tcase_add_checked_fixture(dispatch, setup, teardown);
    tcase_add_test(dispatch, exactly_once_one_thread);
    tcase_add_test(dispatch, exactly_once_two_threads);
    tcase_add_test(dispatch, exactly_once_eight_threads);
    tcase_add_test(dispatch, exactly_once_batched);
    tcase_add_test(dispatch, wakeup_packets_are_not_dispatched);
    tcase_add_test(dispatch, oncomplete_runs_on_a_pool_thread);
    suite_add_tcase(suite, dispatch);

    tcase_add_checked_fixture(threads, setup, teardown);
    tcase_add_test(threads, minimum_threads_start_with_the_port);
    tcase_add_test(threads, blocking_callback_forces_an_injection);
    tcase_add_test(threads, maximum_is_never_exceeded);
    tcase_add_test(threads, idle_threads_above_minimum_retire);
    tcase_add_test(threads, lowered_maximum_retires_threads_after_callbacks);
    suite_add_tcase(suite, threads);

    tcase_add_checked_fixture(shutdown, setup, teardown);
    tcase_add_test(shutdown, release_while_packets_stream);
    tcase_add_test(shutdown, last_release_inside_a_callback);
    tcase_add_test(shutdown, close_port_inside_a_callback);
    suite_add_tcase(suite, shutdown);
    return suite;
}

int main(void)
{
    SRunner *runner;
    int failed;

    if (threads_unreliable())
    {
        printf("SKIP: 32-bit Wine runs under qemu-user here and cannot run threads reliably\n");
        return 77;
    }
    setvbuf(stdout, NULL, _IONBF, 0);
    runner = srunner_create(engine_suite());
    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed ? 1 : 0;
}
