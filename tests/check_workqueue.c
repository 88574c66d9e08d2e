/* Unit tests of IHostThreadpoolManager: every method's contract and bad input, items run exactly
 * once on pool threads, items queued from items and from completion callbacks, the last Release
 * with items in flight, and waits across the two pools under the default limits. */
#include <check.h>
#include <stdio.h>
#include "case_runner.h"
#include "check_support.h"
#include "fakeclr.h"

#define ITEMS 2000
#define CROSS_WAITERS 32      /* blocked at once in each pool: far above the default minimum */
#define WAIT_MS 60000

static IHostIoCompletionManager *manager;
static IHostThreadpoolManager *threadpool;
static struct fake_clr *clr;
static LONG threads_before;  /* of this process, before the test started any manager */

static BOOL no_thread_of_ours_left(void *unused)
{
    (void)unused;
    return process_threads() == threads_before;
}

static void setup(void)
{
    CoInitializeEx(NULL, COINIT_MULTITHREADED);
    clr = fake_clr_create();
    ck_assert_int_ge(threads_before = process_threads(), 1);
    ck_assert_hr(create_manager(&manager), S_OK);
    ck_assert_hr(IHostIoCompletionManager_QueryInterface(manager, &IID_IHostThreadpoolManager, (void **)&threadpool),
                 S_OK);
}

/* A case that releases the manager itself sets both pointers to NULL. */
static void teardown(void)
{
    if (threadpool)
        IHostThreadpoolManager_Release(threadpool);
    if (manager)
        ck_assert_int_eq(IHostIoCompletionManager_Release(manager), 0);
    ck_assert_msg(wait_until(no_thread_of_ours_left, NULL, 5000), "%ld threads of hostiocp are still there",
                  process_threads() - threads_before);
    ck_assert_int_eq(clr->refs, 1);
    fake_clr_destroy(clr);
    CoUninitialize();
}

static void work_statistics(HOSTIOCP_WORK_STATISTICS *stats)
{
    ck_assert_hr(get_work_statistics((IUnknown *)manager, stats), S_OK);
}

/* ---- counting items ---- */

struct tally
{
    volatile LONG *runs;        /* for each item */
    volatile LONG total;
    LONG expected;
    HANDLE all_ran;
    DWORD queuing_thread;
    volatile LONG on_queuing_thread;
};

/* For `capacity` items, of which `expected` set all_ran. */
static struct tally *tally_create_for(LONG expected, LONG capacity)
{
    struct tally *tally = HeapAlloc(GetProcessHeap(), HEAP_ZERO_MEMORY, sizeof(*tally));

    tally->runs = HeapAlloc(GetProcessHeap(), HEAP_ZERO_MEMORY, capacity * sizeof(*tally->runs));
    tally->expected = expected;
    tally->all_ran = CreateEventW(NULL, TRUE, FALSE, NULL);
    tally->queuing_thread = GetCurrentThreadId();
    return tally;
}

static struct tally *tally_create(LONG expected)
{
    return tally_create_for(expected, expected);
}

static void tally_destroy(struct tally *tally)
{
    HeapFree(GetProcessHeap(), 0, (void *)tally->runs);
    CloseHandle(tally->all_ran);
    HeapFree(GetProcessHeap(), 0, tally);
}

/* The last item's increment may let the test free the tally: nothing is read after it. */
static void tally_run(struct tally *tally, LONG index)
{
    LONG expected = tally->expected;
    HANDLE all_ran = tally->all_ran;

    InterlockedIncrement(&tally->runs[index]);
    if (GetCurrentThreadId() == tally->queuing_thread)
        InterlockedIncrement(&tally->on_queuing_thread);
    if (InterlockedIncrement(&tally->total) == expected)
        SetEvent(all_ran);
}

/* Each item runs exactly once. */
static void check_tally(const struct tally *tally, LONG count)
{
    LONG i;

    for (i = 0; i < count; i++)
        ck_assert_msg(tally->runs[i] == 1, "item %ld ran %ld times", i, tally->runs[i]);
    ck_assert_int_eq(tally->total, count);
}

struct counted_item
{
    struct tally *tally;
    LONG index;
};

static DWORD WINAPI run_counted_item(void *context)
{
    struct counted_item *item = context;

    tally_run(item->tally, item->index);
    return 0;
}

static struct counted_item *counted_items(struct tally *tally, LONG count)
{
    struct counted_item *items = HeapAlloc(GetProcessHeap(), 0, count * sizeof(*items));
    LONG i;

    for (i = 0; i < count; i++)
    {
        items[i].tally = tally;
        items[i].index = i;
    }
    return items;
}

/* ---- the methods' contract ---- */

START_TEST(is_the_io_manager_object)
{
    IUnknown *io_identity, *threadpool_identity;
    IHostIoCompletionManager *back;

    ck_assert_hr(IHostIoCompletionManager_QueryInterface(manager, &IID_IUnknown, (void **)&io_identity), S_OK);
    ck_assert_hr(IHostThreadpoolManager_QueryInterface(threadpool, &IID_IUnknown, (void **)&threadpool_identity), S_OK);
    ck_assert_ptr_eq(io_identity, threadpool_identity);
    ck_assert_hr(IHostThreadpoolManager_QueryInterface(threadpool, &IID_IHostIoCompletionManager, (void **)&back), S_OK);
    ck_assert_ptr_eq(back, manager);
    IHostIoCompletionManager_Release(back);
    IUnknown_Release(io_identity);
    IUnknown_Release(threadpool_identity);
}
END_TEST

START_TEST(null_out_pointers)
{
    IHostIoCpWorkStatistics *statistics;
    HOSTIOCP_WORK_STATISTICS stats = { 0 };

    ck_assert_hr(IHostThreadpoolManager_GetMaxThreads(threadpool, NULL), E_POINTER);
    ck_assert_hr(IHostThreadpoolManager_GetMinThreads(threadpool, NULL), E_POINTER);
    ck_assert_hr(IHostThreadpoolManager_GetAvailableThreads(threadpool, NULL), E_POINTER);
    ck_assert_hr(IHostIoCompletionManager_QueryInterface(manager, &IID_IHostIoCpWorkStatistics,
                                                         (void **)&statistics), S_OK);
    ck_assert_hr(IHostIoCpWorkStatistics_GetWorkStatistics(statistics, NULL), E_POINTER);
    stats.cbSize = sizeof(stats) - 8;
    ck_assert_hr(IHostIoCpWorkStatistics_GetWorkStatistics(statistics, &stats), E_INVALIDARG);
    IHostIoCpWorkStatistics_Release(statistics);
}
END_TEST

/* The CLR's worker defaults: a thread per CPU at least; at most HOSTIOCP_MAX_THREADS_LIMIT, the
 * most a pool runs.  The worker limits are the queue's own: the I/O limits do not move. */
START_TEST(work_limits_round_trip_apart_from_the_io_limits)
{
    SYSTEM_INFO system;
    DWORD value;

    GetSystemInfo(&system);
    ck_assert_hr(IHostThreadpoolManager_GetMinThreads(threadpool, &value), S_OK);
    ck_assert_int_eq(value, system.dwNumberOfProcessors);
    ck_assert_hr(IHostThreadpoolManager_GetMaxThreads(threadpool, &value), S_OK);
    ck_assert_int_eq(value, HOSTIOCP_MAX_THREADS_LIMIT);

    ck_assert_hr(IHostThreadpoolManager_SetMinThreads(threadpool, 0), S_OK);
    ck_assert_hr(IHostThreadpoolManager_GetMinThreads(threadpool, &value), S_OK);
    ck_assert_int_eq(value, 0);
    ck_assert_hr(IHostThreadpoolManager_SetMaxThreads(threadpool, 9), S_OK);
    ck_assert_hr(IHostThreadpoolManager_GetMaxThreads(threadpool, &value), S_OK);
    ck_assert_int_eq(value, 9);
    ck_assert_hr(IHostThreadpoolManager_SetMinThreads(threadpool, 9), S_OK);
    ck_assert_hr(IHostThreadpoolManager_GetMinThreads(threadpool, &value), S_OK);
    ck_assert_int_eq(value, 9);
    ck_assert_hr(IHostThreadpoolManager_SetMinThreads(threadpool, 0), S_OK);
    ck_assert_hr(IHostThreadpoolManager_SetMaxThreads(threadpool, 1), S_OK);
    ck_assert_hr(IHostThreadpoolManager_GetMaxThreads(threadpool, &value), S_OK);
    ck_assert_int_eq(value, 1);

    ck_assert_hr(IHostIoCompletionManager_GetMinThreads(manager, &value), S_OK);
    ck_assert_int_eq(value, system.dwNumberOfProcessors);
    ck_assert_hr(IHostIoCompletionManager_GetMaxThreads(manager, &value), S_OK);
    ck_assert_int_eq(value, HOSTIOCP_MAX_THREADS_LIMIT);
    ck_assert_hr(IHostIoCompletionManager_SetMinThreads(manager, 0), S_OK);
    ck_assert_hr(IHostIoCompletionManager_SetMaxThreads(manager, 5), S_OK);
    ck_assert_hr(IHostThreadpoolManager_GetMaxThreads(threadpool, &value), S_OK);
    ck_assert_int_eq(value, 1);
}
END_TEST

START_TEST(work_limits_reject_out_of_range)
{
    DWORD value;

    ck_assert_hr(IHostThreadpoolManager_SetMinThreads(threadpool, 0), S_OK);
    ck_assert_hr(IHostThreadpoolManager_SetMaxThreads(threadpool, 0), E_INVALIDARG);
    ck_assert_hr(IHostThreadpoolManager_SetMaxThreads(threadpool, HOSTIOCP_MAX_THREADS_LIMIT + 1), E_INVALIDARG);
    ck_assert_hr(IHostThreadpoolManager_SetMaxThreads(threadpool, 0xffffffff), E_INVALIDARG);
    ck_assert_hr(IHostThreadpoolManager_SetMaxThreads(threadpool, 10), S_OK);
    ck_assert_hr(IHostThreadpoolManager_SetMinThreads(threadpool, 11), E_INVALIDARG);
    ck_assert_hr(IHostThreadpoolManager_SetMinThreads(threadpool, 0xffffffff), E_INVALIDARG);
    ck_assert_hr(IHostThreadpoolManager_SetMinThreads(threadpool, 5), S_OK);
    ck_assert_hr(IHostThreadpoolManager_SetMaxThreads(threadpool, 4), E_INVALIDARG);
    /* Failed calls change nothing. */
    ck_assert_hr(IHostThreadpoolManager_GetMinThreads(threadpool, &value), S_OK);
    ck_assert_int_eq(value, 5);
    ck_assert_hr(IHostThreadpoolManager_GetMaxThreads(threadpool, &value), S_OK);
    ck_assert_int_eq(value, 10);
}
END_TEST

/* Items that must never run count here; the test asserts on its own thread. */
static volatile LONG wrongly_run;

static DWORD WINAPI never_run(void *context)
{
    (void)context;
    InterlockedIncrement(&wrongly_run);
    return 0;
}

/* Only the CLR's two values of Flags are accepted (0, queue only; 1, call or queue); Win32's
 * WT_* flags mean something else there.  What is refused starts no thread and counts nothing. */
START_TEST(queue_rejects_bad_input_and_changes_nothing)
{
    static const ULONG bad_flags[] = { 2, WT_EXECUTELONGFUNCTION, WT_EXECUTEINPERSISTENTTHREAD, 0x80000000, 0xffffffff };
    HOSTIOCP_WORK_STATISTICS stats;
    size_t i;

    ck_assert_hr(IHostThreadpoolManager_QueueUserWorkItem(threadpool, NULL, NULL, HOSTIOCP_QUEUE_ONLY), E_INVALIDARG);
    ck_assert_hr(IHostThreadpoolManager_QueueUserWorkItem(threadpool, NULL, (void *)1, HOSTIOCP_CALL_OR_QUEUE),
                 E_INVALIDARG);
    for (i = 0; i < ARRAYSIZE(bad_flags); i++)
        ck_assert_hr(IHostThreadpoolManager_QueueUserWorkItem(threadpool, never_run, NULL, bad_flags[i]), E_INVALIDARG);
    work_statistics(&stats);
    ck_assert_int_eq(wrongly_run, 0);
    ck_assert_int_eq(stats.ItemsQueued, 0);
    ck_assert_int_eq(stats.ItemsRefused, 0);
    ck_assert_int_eq(stats.ItemsRun, 0);
    ck_assert_int_eq(stats.ThreadsTotal, 0);
    ck_assert_int_eq(process_threads(), threads_before);
}
END_TEST

/* ---- running items ---- */

START_TEST(items_run_exactly_once_on_pool_threads)
{
    struct tally *tally = tally_create(ITEMS);
    struct counted_item *items = counted_items(tally, ITEMS);
    HOSTIOCP_WORK_STATISTICS stats;
    LONG i;

    for (i = 0; i < ITEMS; i++)
        ck_assert_hr(IHostThreadpoolManager_QueueUserWorkItem(threadpool, run_counted_item, &items[i],
                                                               i % 2 ? HOSTIOCP_CALL_OR_QUEUE : HOSTIOCP_QUEUE_ONLY),
                     S_OK);
    ck_assert_msg(WaitForSingleObject(tally->all_ran, WAIT_MS) == WAIT_OBJECT_0, "%ld of %d items ran",
                  tally->total, ITEMS);
    check_tally(tally, ITEMS);
    ck_assert_int_eq(tally->on_queuing_thread, 0);
    work_statistics(&stats);
    ck_assert_int_eq(stats.ItemsQueued, ITEMS);
    ck_assert_int_eq(stats.ItemsRun, ITEMS);
    ck_assert_int_eq(stats.ItemsRefused, 0);
    ck_assert_int_eq(stats.ItemsDiscarded, 0);
    ck_assert_int_ge(stats.ThreadsTotal, 1);
    ck_assert_int_ge(stats.ThreadsPeak, stats.ThreadsTotal);
    ck_assert_int_le(stats.ThreadsPeak, HOSTIOCP_MAX_THREADS_LIMIT);
    HeapFree(GetProcessHeap(), 0, items);
    tally_destroy(tally);
}
END_TEST

/* An item queues the next: a chain of ITEMS, each link exactly once. */
struct chain
{
    IHostThreadpoolManager *threadpool;
    struct tally *tally;
    struct counted_item *links;
    volatile LONG failures;
};

static struct chain *the_chain;

static DWORD WINAPI run_chain_link(void *context)
{
    struct counted_item *link = context;

    if (link->index + 1 < ITEMS &&
        IHostThreadpoolManager_QueueUserWorkItem(the_chain->threadpool, run_chain_link, &the_chain->links[link->index + 1],
                                                 HOSTIOCP_QUEUE_ONLY) != S_OK)
        InterlockedIncrement(&the_chain->failures);
    tally_run(link->tally, link->index);
    return 0;
}

START_TEST(items_queued_from_items_run)
{
    struct chain chain = { 0 };

    chain.threadpool = threadpool;
    chain.tally = tally_create(ITEMS);
    chain.links = counted_items(chain.tally, ITEMS);
    the_chain = &chain;
    ck_assert_hr(IHostThreadpoolManager_QueueUserWorkItem(threadpool, run_chain_link, &chain.links[0], 0), S_OK);
    ck_assert_msg(WaitForSingleObject(chain.tally->all_ran, WAIT_MS) == WAIT_OBJECT_0, "%ld of %d links ran",
                  chain.tally->total, ITEMS);
    ck_assert_int_eq(chain.failures, 0);
    check_tally(chain.tally, ITEMS);
    HeapFree(GetProcessHeap(), 0, chain.links);
    tally_destroy(chain.tally);
}
END_TEST

/* A completion callback queues an item for each packet: each item runs exactly once. */
static struct tally *completion_tally;
static struct counted_item *completion_items;
static volatile LONG completion_failures;

static void queue_item_from_completion(struct fake_clr *fake, DWORD error, DWORD bytes, void *overlapped)
{
    (void)fake; (void)error; (void)overlapped;
    if (IHostThreadpoolManager_QueueUserWorkItem(threadpool, run_counted_item, &completion_items[bytes],
                                                 HOSTIOCP_QUEUE_ONLY) != S_OK)
        InterlockedIncrement(&completion_failures);
}

START_TEST(items_queued_from_completion_callbacks_run)
{
    OVERLAPPED *requests = HeapAlloc(GetProcessHeap(), HEAP_ZERO_MEMORY, ITEMS * sizeof(*requests));
    HANDLE port;
    LONG i;

    completion_tally = tally_create(ITEMS);
    completion_items = counted_items(completion_tally, ITEMS);
    clr->hook = queue_item_from_completion;
    ck_assert_hr(activate_manager(manager, &clr->ICLRIoCompletionManager_iface, 2, HOSTIOCP_MAX_THREADS_LIMIT), S_OK);
    ck_assert_hr(IHostIoCompletionManager_CreateIoCompletionPort(manager, &port), S_OK);
    fake_clr_expect(clr, ITEMS);
    for (i = 0; i < ITEMS; i++)
        ck_assert(PostQueuedCompletionStatus(port, (DWORD)i, 0, &requests[i]));
    ck_assert_msg(WaitForSingleObject(completion_tally->all_ran, WAIT_MS) == WAIT_OBJECT_0, "%ld of %d items ran",
                  completion_tally->total, ITEMS);
    ck_assert(fake_clr_wait(clr, WAIT_MS));
    ck_assert_int_eq(completion_failures, 0);
    check_tally(completion_tally, ITEMS);
    ck_assert_int_eq(clr->calls, ITEMS);
    HeapFree(GetProcessHeap(), 0, completion_items);
    HeapFree(GetProcessHeap(), 0, requests);
    tally_destroy(completion_tally);
}
END_TEST

/* ---- the last Release ---- */

/* The first item, on the queue's one thread, takes the last reference once every other item is
 * queued behind it, and calls Release from there: the items behind it are still queued, and run
 * before Release returns (on this very thread).  An item that queues another while Release runs
 * is refused, and the refusal is counted. */
struct release_from_item
{
    IHostIoCompletionManager *manager;
    IHostThreadpoolManager *threadpool;
    HANDLE all_queued, released;
    ULONG refs_left;
    LONG ran_when_released;
    struct tally *tally;
    volatile HRESULT late_queue;
};

static struct release_from_item *releasing;

static DWORD WINAPI queue_during_release(void *context)
{
    struct counted_item *item = context;

    releasing->late_queue = IHostThreadpoolManager_QueueUserWorkItem(releasing->threadpool, never_run, NULL, 0);
    tally_run(item->tally, item->index);
    return 0;
}

static DWORD WINAPI release_last_reference(void *context)
{
    struct release_from_item *release = context;

    WaitForSingleObject(release->all_queued, WAIT_MS);
    IHostThreadpoolManager_Release(release->threadpool);
    release->refs_left = IHostIoCompletionManager_Release(release->manager);
    release->ran_when_released = release->tally->total;
    SetEvent(release->released);
    return 0;
}

START_TEST(release_from_an_item_runs_every_item_queued_before_it)
{
    struct release_from_item release = { 0 };
    struct counted_item *items;
    LONG i;

    release.manager = manager;
    release.threadpool = threadpool;
    release.tally = tally_create(ITEMS);
    items = counted_items(release.tally, ITEMS);
    release.all_queued = CreateEventW(NULL, TRUE, FALSE, NULL);
    release.released = CreateEventW(NULL, TRUE, FALSE, NULL);
    release.late_queue = S_OK;
    releasing = &release;
    ck_assert_hr(IHostThreadpoolManager_SetMinThreads(threadpool, 1), S_OK);
    ck_assert_hr(IHostThreadpoolManager_SetMaxThreads(threadpool, 1), S_OK);
    ck_assert_hr(IHostThreadpoolManager_QueueUserWorkItem(threadpool, release_last_reference, &release, 0), S_OK);
    ck_assert_hr(IHostThreadpoolManager_QueueUserWorkItem(threadpool, queue_during_release, &items[0], 0), S_OK);
    for (i = 1; i < ITEMS; i++)
        ck_assert_hr(IHostThreadpoolManager_QueueUserWorkItem(threadpool, run_counted_item, &items[i], 0), S_OK);
    manager = NULL;  /* the item's now */
    threadpool = NULL;
    SetEvent(release.all_queued);
    ck_assert(WaitForSingleObject(release.released, WAIT_MS) == WAIT_OBJECT_0);
    ck_assert_int_eq(release.refs_left, 0);
    ck_assert_int_eq(release.ran_when_released, ITEMS);
    check_tally(release.tally, ITEMS);
    ck_assert_hr(release.late_queue, HOST_E_INVALIDOPERATION);
    CloseHandle(release.all_queued);
    CloseHandle(release.released);
    HeapFree(GetProcessHeap(), 0, items);
    tally_destroy(release.tally);
}
END_TEST

/* From the host's thread, while another thread queues items as fast as it can: every item
 * accepted runs exactly once before Release returns, and the first refusal comes once Release has
 * begun.  The first item holds the queue's one thread until the queuing thread is refused, so
 * items are still queued when Release begins. */
#define RACING_ITEMS 1000000    /* more than a thread queues before the Release that follows it */
#define RACING_HEAD_START 100   /* queued before Release begins */

struct racing_queue
{
    IHostThreadpoolManager *threadpool;
    struct tally *tally;
    struct counted_item *items;
    HANDLE gate, some_queued;
    volatile LONG accepted;
    HRESULT refusal;
};

static struct racing_queue *racing;

static DWORD WINAPI wait_at_gate(void *context)
{
    struct counted_item *item = context;

    WaitForSingleObject(racing->gate, WAIT_MS);
    tally_run(item->tally, item->index);
    return 0;
}

static DWORD WINAPI queue_until_refused(void *context)
{
    struct racing_queue *queue = context;
    HRESULT hr = S_OK;

    while (queue->accepted < RACING_ITEMS &&
           (hr = IHostThreadpoolManager_QueueUserWorkItem(queue->threadpool, run_counted_item,
                                                          &queue->items[queue->accepted], 0)) == S_OK)
        if (++queue->accepted == RACING_HEAD_START)
            SetEvent(queue->some_queued);
    queue->refusal = hr;
    SetEvent(queue->gate);
    return 0;
}

START_TEST(release_runs_every_item_accepted_before_it)
{
    struct racing_queue queue = { 0 };
    HANDLE queuing;

    queue.tally = tally_create_for(RACING_ITEMS, RACING_ITEMS);
    queue.items = counted_items(queue.tally, RACING_ITEMS);
    queue.gate = CreateEventW(NULL, TRUE, FALSE, NULL);
    queue.some_queued = CreateEventW(NULL, TRUE, FALSE, NULL);
    racing = &queue;
    ck_assert_hr(IHostThreadpoolManager_SetMinThreads(threadpool, 1), S_OK);
    ck_assert_hr(IHostThreadpoolManager_SetMaxThreads(threadpool, 1), S_OK);
    ck_assert_hr(IHostThreadpoolManager_QueueUserWorkItem(threadpool, wait_at_gate, &queue.items[0], 0), S_OK);
    queue.accepted = 1;
    queue.threadpool = threadpool;
    queuing = CreateThread(NULL, 0, queue_until_refused, &queue, 0, NULL);
    ck_assert_ptr_ne(queuing, NULL);
    ck_assert(WaitForSingleObject(queue.some_queued, WAIT_MS) == WAIT_OBJECT_0);
    threadpool = NULL;
    ck_assert_int_eq(IHostIoCompletionManager_Release(manager), 1);  /* the queuing thread's */
    manager = NULL;
    ck_assert_int_eq(IHostThreadpoolManager_Release(queue.threadpool), 0);
    ck_assert(WaitForSingleObject(queuing, WAIT_MS) == WAIT_OBJECT_0);
    CloseHandle(queuing);
    printf("release racing the queue: %ld items accepted, then 0x%08lx\n", queue.accepted,
           (unsigned long)queue.refusal);
    ck_assert_hr(queue.refusal, HOST_E_INVALIDOPERATION);
    ck_assert_int_ge(queue.accepted, RACING_HEAD_START);
    ck_assert_int_lt(queue.accepted, RACING_ITEMS);
    check_tally(queue.tally, queue.accepted);
    CloseHandle(queue.gate);
    CloseHandle(queue.some_queued);
    HeapFree(GetProcessHeap(), 0, queue.items);
    tally_destroy(queue.tally);
}
END_TEST

/* Items that wait for items queued after them: the last Release waits for them with the pool
 * still growing, as it would while it runs.  Item i waits until item i + 1 has run to its end, so
 * all of them run at once in the end: with the default minimum of a thread per CPU, the later
 * items need threads that Release must still add. */
#define WAITING_CHAIN 12

struct waiting_chain
{
    HANDLE finished[WAITING_CHAIN];
    struct counted_item items[WAITING_CHAIN];
    struct tally *tally;
    volatile LONG timed_out;
};

static struct waiting_chain *waiting;

static DWORD WINAPI wait_for_the_next_item(void *context)
{
    struct counted_item *item = context;

    if (item->index + 1 < WAITING_CHAIN &&
        WaitForSingleObject(waiting->finished[item->index + 1], WAIT_MS) != WAIT_OBJECT_0)
        InterlockedIncrement(&waiting->timed_out);
    tally_run(item->tally, item->index);
    SetEvent(waiting->finished[item->index]);
    return 0;
}

START_TEST(release_keeps_adding_threads_for_items_that_wait_for_later_items)
{
    struct waiting_chain chain;
    SYSTEM_INFO system;
    LONG i;

    ZeroMemory(&chain, sizeof(chain));
    GetSystemInfo(&system);
    ck_assert_int_lt(system.dwNumberOfProcessors, WAITING_CHAIN);
    chain.tally = tally_create(WAITING_CHAIN);
    waiting = &chain;
    for (i = 0; i < WAITING_CHAIN; i++)
    {
        chain.finished[i] = CreateEventW(NULL, TRUE, FALSE, NULL);
        chain.items[i].tally = chain.tally;
        chain.items[i].index = i;
    }
    for (i = 0; i < WAITING_CHAIN; i++)
        ck_assert_hr(IHostThreadpoolManager_QueueUserWorkItem(threadpool, wait_for_the_next_item, &chain.items[i], 0),
                     S_OK);
    IHostThreadpoolManager_Release(threadpool);
    threadpool = NULL;
    ck_assert_int_eq(IHostIoCompletionManager_Release(manager), 0);
    manager = NULL;
    ck_assert_int_eq(chain.timed_out, 0);
    check_tally(chain.tally, WAITING_CHAIN);
    for (i = 0; i < WAITING_CHAIN; i++)
        CloseHandle(chain.finished[i]);
    tally_destroy(chain.tally);
}
END_TEST

/* The last Release from inside a completion callback: the items queued before it, held behind
 * the queue's one thread, run before it returns. */
struct release_from_completion
{
    struct tally *tally;
    struct counted_item *items;
    HANDLE gate, released;
    ULONG refs_left;
    LONG ran_when_released;
    volatile LONG queue_failures;
};

static struct release_from_completion *completion_release;

static DWORD WINAPI wait_at_completion_gate(void *context)
{
    struct counted_item *item = context;

    WaitForSingleObject(completion_release->gate, WAIT_MS);
    tally_run(item->tally, item->index);
    return 0;
}

static void release_from_completion(struct fake_clr *fake, DWORD error, DWORD bytes, void *overlapped)
{
    struct release_from_completion *release = completion_release;
    LONG i;

    (void)fake; (void)error; (void)bytes; (void)overlapped;
    if (IHostThreadpoolManager_QueueUserWorkItem(threadpool, wait_at_completion_gate, &release->items[0], 0) != S_OK)
        InterlockedIncrement(&release->queue_failures);
    for (i = 1; i < ITEMS; i++)
        if (IHostThreadpoolManager_QueueUserWorkItem(threadpool, run_counted_item, &release->items[i], 0) != S_OK)
            InterlockedIncrement(&release->queue_failures);
    SetEvent(release->gate);
    IHostThreadpoolManager_Release(threadpool);
    release->refs_left = IHostIoCompletionManager_Release(manager);
    release->ran_when_released = release->tally->total;
    SetEvent(release->released);
}

START_TEST(release_from_a_completion_callback_runs_the_queued_items)
{
    struct release_from_completion release = { 0 };
    OVERLAPPED request = { 0 };
    HANDLE port;

    release.tally = tally_create(ITEMS);
    release.items = counted_items(release.tally, ITEMS);
    release.gate = CreateEventW(NULL, TRUE, FALSE, NULL);
    release.released = CreateEventW(NULL, TRUE, FALSE, NULL);
    completion_release = &release;
    clr->hook = release_from_completion;
    ck_assert_hr(IHostThreadpoolManager_SetMinThreads(threadpool, 1), S_OK);
    ck_assert_hr(IHostThreadpoolManager_SetMaxThreads(threadpool, 1), S_OK);
    ck_assert_hr(activate_manager(manager, &clr->ICLRIoCompletionManager_iface, 1, 1), S_OK);
    ck_assert_hr(IHostIoCompletionManager_CreateIoCompletionPort(manager, &port), S_OK);
    ck_assert(PostQueuedCompletionStatus(port, 0, 0, &request));
    ck_assert(WaitForSingleObject(release.released, WAIT_MS) == WAIT_OBJECT_0);
    manager = NULL;
    threadpool = NULL;
    ck_assert_int_eq(release.queue_failures, 0);
    ck_assert_int_eq(release.refs_left, 0);
    ck_assert_int_eq(release.ran_when_released, ITEMS);
    check_tally(release.tally, ITEMS);
    CloseHandle(release.gate);
    CloseHandle(release.released);
    HeapFree(GetProcessHeap(), 0, release.items);
    tally_destroy(release.tally);
}
END_TEST

/* With a batch size of 64 for the ports, items are still taken one at a time: item A waits for
 * item B, queued right after it, and two threads are free once the gates open.  A thread that
 * took both in one batch would hold B behind A. */
#define BATCH_WAIT_MS 10000

static HANDLE batch_gate, b_started;
static volatile LONG a_timed_out;

static DWORD WINAPI hold_a_thread(void *context)
{
    (void)context;
    WaitForSingleObject(batch_gate, WAIT_MS);
    return 0;
}

static DWORD WINAPI item_a(void *context)
{
    (void)context;
    if (WaitForSingleObject(b_started, BATCH_WAIT_MS) != WAIT_OBJECT_0)
        InterlockedExchange(&a_timed_out, 1);
    return 0;
}

static DWORD WINAPI item_b(void *context)
{
    (void)context;
    SetEvent(b_started);
    return 0;
}

START_TEST(items_are_taken_one_at_a_time_whatever_the_batch_size)
{
    HOSTIOCP_WORK_STATISTICS stats;

    batch_gate = CreateEventW(NULL, TRUE, FALSE, NULL);
    b_started = CreateEventW(NULL, TRUE, FALSE, NULL);
    ck_assert_hr(set_batch_size(manager, 64), S_OK);
    ck_assert_hr(IHostThreadpoolManager_SetMinThreads(threadpool, 2), S_OK);
    ck_assert_hr(IHostThreadpoolManager_SetMaxThreads(threadpool, 2), S_OK);
    ck_assert_hr(IHostThreadpoolManager_QueueUserWorkItem(threadpool, hold_a_thread, NULL, 0), S_OK);
    ck_assert_hr(IHostThreadpoolManager_QueueUserWorkItem(threadpool, hold_a_thread, NULL, 0), S_OK);
    ck_assert_hr(IHostThreadpoolManager_QueueUserWorkItem(threadpool, item_a, NULL, 0), S_OK);
    ck_assert_hr(IHostThreadpoolManager_QueueUserWorkItem(threadpool, item_b, NULL, 0), S_OK);
    SetEvent(batch_gate);
    ck_assert(WaitForSingleObject(b_started, WAIT_MS) == WAIT_OBJECT_0);
    ck_assert_int_eq(a_timed_out, 0);
    work_statistics(&stats);
    ck_assert_int_le(stats.ThreadsPeak, 2);
    CloseHandle(batch_gate);
    CloseHandle(b_started);
}
END_TEST

/* ---- waits across the pools, under the default limits ---- */

/* Opens once `count` parties have arrived; each arrival waits for it. */
struct barrier
{
    volatile LONG arrived;
    LONG count;
    HANDLE open;
};

static void barrier_init(struct barrier *barrier, LONG count)
{
    barrier->arrived = 0;
    barrier->count = count;
    barrier->open = CreateEventW(NULL, TRUE, FALSE, NULL);
}

static BOOL barrier_wait(struct barrier *barrier)
{
    if (InterlockedIncrement(&barrier->arrived) == barrier->count)
        SetEvent(barrier->open);
    return WaitForSingleObject(barrier->open, WAIT_MS) == WAIT_OBJECT_0;
}

struct cross
{
    HANDLE port;
    OVERLAPPED requests[CROSS_WAITERS];
    HANDLE done[CROSS_WAITERS];          /* the other pool's half of waiter i finished */
    struct barrier items, completions;   /* every waiter of a pool is blocked at once */
    struct tally *tally;
    volatile LONG failures;
};

static struct cross *cross;

static LONG request_index(const void *overlapped)
{
    return (LONG)((const OVERLAPPED *)overlapped - cross->requests);
}

/* Items wait for completions: item i posts packet i and waits for its callback, which waits for
 * every callback to be blocked before it lets item i go on. */
static void completion_waits_for_all_completions(struct fake_clr *fake, DWORD error, DWORD bytes, void *overlapped)
{
    (void)fake; (void)error; (void)bytes;
    if (!barrier_wait(&cross->completions))
        InterlockedIncrement(&cross->failures);
    SetEvent(cross->done[request_index(overlapped)]);
}

static DWORD WINAPI item_waits_for_its_completion(void *context)
{
    struct counted_item *item = context;

    if (!barrier_wait(&cross->items) ||
        !PostQueuedCompletionStatus(cross->port, 0, 0, &cross->requests[item->index]) ||
        WaitForSingleObject(cross->done[item->index], WAIT_MS) != WAIT_OBJECT_0)
        InterlockedIncrement(&cross->failures);
    tally_run(item->tally, item->index);
    return 0;
}

/* Completions wait for items: callback i queues item i and waits for it; the item waits for every
 * item to be blocked first. */
static DWORD WINAPI item_waits_for_all_items(void *context)
{
    struct counted_item *item = context;

    if (!barrier_wait(&cross->items))
        InterlockedIncrement(&cross->failures);
    SetEvent(cross->done[item->index]);
    return 0;
}

static struct counted_item *cross_items;

static void completion_waits_for_its_item(struct fake_clr *fake, DWORD error, DWORD bytes, void *overlapped)
{
    LONG index = request_index(overlapped);

    (void)fake; (void)error; (void)bytes;
    if (!barrier_wait(&cross->completions) ||
        IHostThreadpoolManager_QueueUserWorkItem(threadpool, item_waits_for_all_items, &cross_items[index], 0) != S_OK ||
        WaitForSingleObject(cross->done[index], WAIT_MS) != WAIT_OBJECT_0)
        InterlockedIncrement(&cross->failures);
    tally_run(cross->tally, index);
}

static void start_cross(fake_clr_hook hook)
{
    LONG i;

    cross = HeapAlloc(GetProcessHeap(), HEAP_ZERO_MEMORY, sizeof(*cross));
    for (i = 0; i < CROSS_WAITERS; i++)
        cross->done[i] = CreateEventW(NULL, TRUE, FALSE, NULL);
    barrier_init(&cross->items, CROSS_WAITERS);
    barrier_init(&cross->completions, CROSS_WAITERS);
    cross->tally = tally_create(CROSS_WAITERS);
    cross_items = counted_items(cross->tally, CROSS_WAITERS);
    clr->hook = hook;
    /* The CLR's defaults for both pools: a thread per CPU at least, 1000 at most. */
    ck_assert_hr(IHostIoCompletionManager_SetCLRIoCompletionManager(manager, &clr->ICLRIoCompletionManager_iface), S_OK);
    ck_assert_hr(IHostIoCompletionManager_CreateIoCompletionPort(manager, &cross->port), S_OK);
    fake_clr_expect(clr, CROSS_WAITERS);
}

static void finish_cross(void)
{
    HOSTIOCP_WORK_STATISTICS work;
    HOSTIOCP_STATISTICS io;
    LONG i;

    ck_assert_msg(WaitForSingleObject(cross->tally->all_ran, WAIT_MS) == WAIT_OBJECT_0,
                  "%ld of %d waiters finished; %ld items and %ld completions were blocked at once", cross->tally->total,
                  CROSS_WAITERS, cross->items.arrived, cross->completions.arrived);
    ck_assert(fake_clr_wait(clr, WAIT_MS));
    ck_assert_int_eq(cross->failures, 0);
    check_tally(cross->tally, CROSS_WAITERS);
    work_statistics(&work);
    ck_assert_hr(get_statistics(manager, NULL, &io), S_OK);
    printf("cross-pool waits: work threads peak %lu (%lu starvation injections), I/O threads peak %lu (%lu)\n",
           (unsigned long)work.ThreadsPeak, (unsigned long)work.StarvationInjections, (unsigned long)io.ThreadsPeak,
           (unsigned long)io.StarvationInjections);
    ck_assert_int_ge(work.ThreadsPeak, CROSS_WAITERS);
    ck_assert_int_ge(io.ThreadsPeak, CROSS_WAITERS);
    ck_assert_int_eq(work.ItemsRun, CROSS_WAITERS);
    ck_assert_int_eq(clr->calls, CROSS_WAITERS);
    clr->hook = NULL;
    for (i = 0; i < CROSS_WAITERS; i++)
        CloseHandle(cross->done[i]);
    CloseHandle(cross->items.open);
    CloseHandle(cross->completions.open);
    HeapFree(GetProcessHeap(), 0, cross_items);
    tally_destroy(cross->tally);
    HeapFree(GetProcessHeap(), 0, cross);
}

START_TEST(items_that_wait_for_completions_finish_under_the_default_limits)
{
    LONG i;

    start_cross(completion_waits_for_all_completions);
    for (i = 0; i < CROSS_WAITERS; i++)
        ck_assert_hr(IHostThreadpoolManager_QueueUserWorkItem(threadpool, item_waits_for_its_completion,
                                                               &cross_items[i], 0), S_OK);
    finish_cross();
}
END_TEST

START_TEST(completions_that_wait_for_items_finish_under_the_default_limits)
{
    LONG i;

    start_cross(completion_waits_for_its_item);
    for (i = 0; i < CROSS_WAITERS; i++)
        ck_assert(PostQueuedCompletionStatus(cross->port, 0, 0, &cross->requests[i]));
    finish_cross();
}
END_TEST

int main(void)
{
    const struct test_case cases[] =
    {
        TEST_CASE(is_the_io_manager_object),
        TEST_CASE(null_out_pointers),
        TEST_CASE(work_limits_round_trip_apart_from_the_io_limits),
        TEST_CASE(work_limits_reject_out_of_range),
        TEST_CASE(queue_rejects_bad_input_and_changes_nothing),
        TEST_CASE(items_run_exactly_once_on_pool_threads),
        TEST_CASE(items_queued_from_items_run),
        TEST_CASE(items_queued_from_completion_callbacks_run),
        TEST_CASE(release_from_an_item_runs_every_item_queued_before_it),
        TEST_CASE(release_runs_every_item_accepted_before_it),
        TEST_CASE(release_keeps_adding_threads_for_items_that_wait_for_later_items),
        TEST_CASE(release_from_a_completion_callback_runs_the_queued_items),
        TEST_CASE(items_are_taken_one_at_a_time_whatever_the_batch_size),
        TEST_CASE(items_that_wait_for_completions_finish_under_the_default_limits),
        TEST_CASE(completions_that_wait_for_items_finish_under_the_default_limits),
    };
    return run_cases_in_own_processes(suite_of_cases("workqueue", cases, ARRAYSIZE(cases), setup, teardown), cases,
                                      ARRAYSIZE(cases)) ? 1 : 0;
}
