/* Randomized stress with a model: driver threads mix every call a CLR host makes (ports opened
 * and closed, Bind on pipes, files and sockets, limits raised and lowered under load, packets
 * posted and real reads and writes, callbacks that block, close their own port or release the
 * manager), and work items beside them (queued from the drivers, from items and from callbacks;
 * items that block, queue another or release the manager; the worker limits moved under load),
 * while a model of what must hold is checked throughout:
 * - every request completes exactly once, with the error and byte count it should have;
 * - every item accepted runs exactly once, none after the last Release returned, and an item is
 *   refused only once that Release has begun;
 * - no OnComplete of a port comes after its Close, or after the last Release, returned;
 * - the statistics match the model exactly at the end of each manager's life;
 * - threads stay within the maximum, once a lowered maximum had time to act;
 * - GetAvailableThreads never reports more than the maximum (a count below 0 would wrap).
 * Every manager's life is an epoch: the DLL is loaded for it and unloaded after it, with
 * CoFreeUnusedLibrariesEx.  Over the run the process's handles, threads, private bytes and the
 * bytes in use in its heaps must stay flat after the first epochs.
 *
 * HOSTIOCP_STRESS_SEED replays a run's operations (each driver's sequence; the threads'
 * interleaving is the system's).  HOSTIOCP_STRESS_SECONDS sets the length (default 5). */
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

#define DRIVERS 3
#define PORTS_PER_DRIVER 3
#define OPS_PER_EPOCH 150
#define MAX_LIMIT 6
#define WAIT_MS 30000

enum request_kind { POSTED, BLOCKING, PIPE_READ, CANCELLED_READ, SOCKET_RECEIVE, FILE_WRITE, CLOSER, RELEASER, QUEUER,
                    LATE_QUEUER };

enum item_kind { COUNTED, BLOCKING_ITEM, REQUEUER, RELEASING_ITEM };

struct item
{
    SLIST_ENTRY entry;              /* must stay first: model.items */
    enum item_kind kind;
    volatile LONG runs;
    DWORD block_ms;
    HANDLE done;                    /* RELEASING_ITEM: set once Release returned */
    ULONG refs;
};

struct port_model;

struct request
{
    struct clr_overlapped clr;      /* must stay first: OnComplete gets its address */
    struct port_model *port;
    struct request *next;
    enum request_kind kind;
    DWORD error, bytes;             /* what OnComplete must see */
    DWORD block_ms;
    volatile LONG completions;
    BYTE data[64];
    WSABUF wsabuf;
    HANDLE done;                    /* CLOSER and RELEASER: set once the call inside returned */
    HRESULT hr;
    ULONG refs;
};

struct port_model
{
    HANDLE handle;
    volatile LONG closed;           /* Close (or the last Release) has returned */
    struct request *requests;
    LONG submitted;
    volatile LONG completed;
    HANDLE pipe_server, pipe_client, file;
    SOCKET socket_server, socket_client;
    LONG64 file_offset;
};

struct model
{
    IHostIoCompletionManager *manager;
    IHostThreadpoolManager *threadpool; /* the same object's */
    volatile LONG releasing;        /* the last Release is about to be called */
    volatile LONG released;         /* the last Release has returned */
    SLIST_HEADER items;             /* every item accepted */
    volatile LONG64 items_accepted, items_run, items_refused;
    DWORD work_min, work_max;       /* changed by driver 1 only */
    volatile LONG64 submitted, posted, failed, binds, ports_opened;
    DWORD min, max;                 /* changed by driver 0 only */
    struct fake_clr *clrs[2];
    int clr_in_use;
    struct port_model ports[DRIVERS][PORTS_PER_DRIVER];
    int open_count[DRIVERS];
};

static struct model model;
static ULONG64 run_seed;
static volatile LONG violations;
static char first_violation[512];
static volatile LONG64 total_operations, total_completions, total_port_cycles, total_items;

static void violation(const char *format, ...)
{
    va_list args;

    if (InterlockedIncrement(&violations) > 1)
        return;
    va_start(args, format);
    vsnprintf(first_violation, sizeof(first_violation), format, args);
    va_end(args);
}

/* xorshift64*: each driver's own sequence. */
static ULONG64 next_random(ULONG64 *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 0x2545f4914f6cdd1dull;
}

static DWORD random_below(ULONG64 *state, DWORD limit)
{
    return (DWORD)(next_random(state) % limit);
}

static void fill_pattern(BYTE *data, DWORD size, DWORD seed)
{
    DWORD i;

    for (i = 0; i < size; i++)
        data[i] = (BYTE)(seed * 31 + i * 7);
}

static BOOL pattern_is(const BYTE *data, DWORD size, DWORD seed)
{
    BYTE expected[64];

    fill_pattern(expected, size, seed);
    return !memcmp(data, expected, size);
}

/* ---- work items ---- */

static struct item *queue_item(enum item_kind kind, ULONG64 *rng);

static DWORD WINAPI run_item(void *context)
{
    struct item *item = context;

    if (InterlockedIncrement(&item->runs) != 1)
        violation("an item (kind %d) ran %ld times", item->kind, item->runs);
    if (model.released)
        violation("an item (kind %d) ran after the last Release returned", item->kind);
    switch (item->kind)
    {
    case BLOCKING_ITEM:
        Sleep(item->block_ms);  /* the item's work, not synchronisation */
        break;
    case REQUEUER:
    {
        ULONG64 rng = (ULONG_PTR)item * 0x9e3779b97f4a7c15ull;
        queue_item(random_below(&rng, 8) ? COUNTED : REQUEUER, &rng);
        break;
    }
    case RELEASING_ITEM:
        item->refs = IHostIoCompletionManager_Release(model.manager);
        InterlockedExchange(&model.released, 1);
        break;
    default:
        break;
    }
    InterlockedIncrement64(&model.items_run);
    InterlockedIncrement64(&total_items);
    if (item->done)
        SetEvent(item->done);
    return 0;
}

/* Queues an item from any thread: a refusal is allowed only once the last Release has begun. */
static struct item *queue_item(enum item_kind kind, ULONG64 *rng)
{
    struct item *item = HeapAlloc(GetProcessHeap(), HEAP_ZERO_MEMORY, sizeof(*item));
    HRESULT hr;

    item->kind = kind;
    item->block_ms = kind == BLOCKING_ITEM ? 1 + random_below(rng, 5) : 0;
    if (kind == RELEASING_ITEM)
        item->done = CreateEventW(NULL, TRUE, FALSE, NULL);
    /* Counted first: the item may run before the call returns. */
    InterlockedIncrement64(&model.items_accepted);
    InterlockedPushEntrySList(&model.items, &item->entry);
    if ((hr = IHostThreadpoolManager_QueueUserWorkItem(model.threadpool, run_item, item, random_below(rng, 2))) == S_OK)
        return item;
    if (hr != HOST_E_INVALIDOPERATION || !model.releasing)
        violation("QueueUserWorkItem returned %#lx%s", hr, model.releasing ? "" : " before the last Release");
    /* Refused: it stays in the list, marked as never to run. */
    InterlockedDecrement64(&model.items_accepted);
    InterlockedIncrement64(&model.items_refused);
    InterlockedExchange(&item->runs, -1);
    return item;
}

static BOOL items_quiet(void *unused)
{
    (void)unused;
    return model.items_run == model.items_accepted;
}

/* ---- the CLR's side: every OnComplete is checked against its request ---- */

static void on_complete(struct fake_clr *fake, DWORD error, DWORD bytes, void *overlapped)
{
    struct request *request = overlapped;
    struct port_model *port = request->port;

    (void)fake;
    if (InterlockedIncrement(&request->completions) != 1)
        violation("a request (kind %d) completed %ld times", request->kind, request->completions);
    if (port->closed)
        violation("OnComplete (kind %d) after its port's Close returned", request->kind);
    if (model.released)
        violation("OnComplete (kind %d) after the last Release returned", request->kind);
    if (error != request->error || bytes != request->bytes)
        violation("kind %d: OnComplete(%lu, %lu), expected (%lu, %lu)", request->kind, error, bytes,
                  request->error, request->bytes);
    if ((request->kind == PIPE_READ || request->kind == SOCKET_RECEIVE) &&
        !pattern_is(request->data, request->bytes, (DWORD)(ULONG_PTR)request))
        violation("kind %d: the bytes read are not the bytes written", request->kind);
    InterlockedIncrement64(&total_completions);
    switch (request->kind)
    {
    case BLOCKING:
        Sleep(request->block_ms);  /* the callback's work, not synchronisation */
        break;
    case CLOSER:
        request->hr = IHostIoCompletionManager_CloseIoCompletionPort(model.manager, port->handle);
        InterlockedExchange(&port->closed, 1);
        break;
    case RELEASER:
        request->refs = IHostIoCompletionManager_Release(model.manager);
        InterlockedExchange(&model.released, 1);
        break;
    case LATE_QUEUER:
        Sleep(request->block_ms);  /* the callback's work first, so that Release may have begun */
        /* fall through */
    case QUEUER:
    {
        ULONG64 rng = (ULONG_PTR)request * 0x9e3779b97f4a7c15ull;
        queue_item(random_below(&rng, 4) ? COUNTED : BLOCKING_ITEM, &rng);
        break;
    }
    default:
        break;
    }
    InterlockedIncrement(&port->completed);
    if (request->done)
        SetEvent(request->done);
}

/* ---- requests ---- */

static struct request *new_request(struct port_model *port, enum request_kind kind)
{
    struct request *request = HeapAlloc(GetProcessHeap(), HEAP_ZERO_MEMORY, sizeof(*request));
    HRESULT hr;

    request->port = port;
    request->kind = kind;
    request->next = port->requests;
    port->requests = request;
    if ((hr = IHostIoCompletionManager_InitializeHostOverlapped(model.manager, &request->clr.overlapped)) != S_OK)
        violation("InitializeHostOverlapped returned %#lx", hr);
    port->submitted++;
    InterlockedIncrement64(&model.submitted);
    return request;
}

static void post_request(struct port_model *port, enum request_kind kind, ULONG64 *rng)
{
    struct request *request = new_request(port, kind);
    ULONG_PTR foreign_key = 0x10000 + random_below(rng, 0x10000) * 16;

    request->bytes = random_below(rng, 1 << 20);
    request->block_ms = kind == BLOCKING || kind == LATE_QUEUER ? 1 + random_below(rng, 5) : 0;
    if (kind == CLOSER || kind == RELEASER)
        request->done = CreateEventW(NULL, TRUE, FALSE, NULL);
    InterlockedIncrement64(&model.posted);
    if (!PostQueuedCompletionStatus(port->handle, request->bytes, foreign_key, &request->clr.overlapped))
        violation("PostQueuedCompletionStatus failed: %lu", GetLastError());
}

static BOOL port_quiet(void *context)
{
    struct port_model *port = context;
    return port->completed == port->submitted;
}

static void bind_handle(struct port_model *port, HANDLE handle)
{
    HRESULT hr = IHostIoCompletionManager_Bind(model.manager, port->handle, handle);

    if (hr != S_OK)
        violation("Bind returned %#lx", hr);
    InterlockedIncrement64(&model.binds);
}

static void create_pipe(struct port_model *port)
{
    static volatile LONG serial;
    WCHAR name[80];

    swprintf(name, ARRAYSIZE(name), L"\\\\.\\pipe\\hostiocp-stress-%lu-%ld", GetCurrentProcessId(),
             InterlockedIncrement(&serial));
    port->pipe_server = CreateNamedPipeW(name, PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED, PIPE_TYPE_BYTE, 1,
                                         4096, 4096, 0, NULL);
    port->pipe_client = CreateFileW(name, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
    if (port->pipe_server == INVALID_HANDLE_VALUE || port->pipe_client == INVALID_HANDLE_VALUE)
        violation("cannot create a pipe: %lu", GetLastError());
    bind_handle(port, port->pipe_server);
}

static void create_socket_pair(struct port_model *port)
{
    struct sockaddr_in address = { 0 };
    int length = sizeof(address);
    SOCKET listener = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);

    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listener, (struct sockaddr *)&address, sizeof(address));
    listen(listener, 1);
    getsockname(listener, (struct sockaddr *)&address, &length);
    port->socket_client = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0, WSA_FLAG_OVERLAPPED);
    if (connect(port->socket_client, (struct sockaddr *)&address, sizeof(address)))
        violation("connect failed: %d", WSAGetLastError());
    port->socket_server = accept(listener, NULL, NULL);
    closesocket(listener);
    if (port->socket_server == INVALID_SOCKET)
        violation("accept failed: %d", WSAGetLastError());
    bind_handle(port, (HANDLE)port->socket_server);
}

static void create_file(struct port_model *port)
{
    WCHAR directory[MAX_PATH], path[MAX_PATH];

    GetTempPathW(MAX_PATH, directory);
    GetTempFileNameW(directory, L"hio", 0, path);
    port->file = CreateFileW(path, GENERIC_READ | GENERIC_WRITE, 0, NULL, CREATE_ALWAYS,
                             FILE_FLAG_OVERLAPPED | FILE_FLAG_DELETE_ON_CLOSE, NULL);
    if (port->file == INVALID_HANDLE_VALUE)
        violation("cannot create a file: %lu", GetLastError());
    bind_handle(port, port->file);
}

static void pipe_round_trip(struct port_model *port, ULONG64 *rng)
{
    struct request *request = new_request(port, PIPE_READ);
    DWORD size = 1 + random_below(rng, sizeof(request->data)), written;
    BYTE data[64];

    if (!port->pipe_server)
        create_pipe(port);
    request->bytes = size;
    if (ReadFile(port->pipe_server, request->data, size, NULL, &request->clr.overlapped) ||
        GetLastError() != ERROR_IO_PENDING)
        violation("the pipe read did not pend: %lu", GetLastError());
    fill_pattern(data, size, (DWORD)(ULONG_PTR)request);
    if (!WriteFile(port->pipe_client, data, size, &written, NULL) || written != size)
        violation("the pipe write failed: %lu", GetLastError());
}

static void cancelled_read(struct port_model *port)
{
    struct request *request = new_request(port, CANCELLED_READ);

    if (!port->pipe_server)
        create_pipe(port);
    request->error = ERROR_OPERATION_ABORTED;
    InterlockedIncrement64(&model.failed);
    if (ReadFile(port->pipe_server, request->data, sizeof(request->data), NULL, &request->clr.overlapped) ||
        GetLastError() != ERROR_IO_PENDING)
        violation("the read to cancel did not pend: %lu", GetLastError());
    if (!CancelIoEx(port->pipe_server, &request->clr.overlapped))
        violation("CancelIoEx failed: %lu", GetLastError());
}

static void socket_round_trip(struct port_model *port, ULONG64 *rng)
{
    struct request *request = new_request(port, SOCKET_RECEIVE);
    DWORD size = 1 + random_below(rng, sizeof(request->data)), flags = 0;
    BYTE data[64];

    if (port->socket_server == 0)
        create_socket_pair(port);
    request->bytes = size;
    request->wsabuf.buf = (char *)request->data;
    request->wsabuf.len = size;
    if (!WSARecv(port->socket_server, &request->wsabuf, 1, NULL, &flags, &request->clr.overlapped, NULL) ||
        WSAGetLastError() != WSA_IO_PENDING)
        violation("the receive did not pend: %d", WSAGetLastError());
    fill_pattern(data, size, (DWORD)(ULONG_PTR)request);
    if (send(port->socket_client, (const char *)data, size, 0) != (int)size)
        violation("send failed: %d", WSAGetLastError());
}

static void file_write(struct port_model *port, ULONG64 *rng)
{
    struct request *request = new_request(port, FILE_WRITE);
    DWORD size = 1 + random_below(rng, sizeof(request->data));

    if (!port->file)
        create_file(port);
    request->bytes = size;
    request->clr.overlapped.Offset = (DWORD)port->file_offset;
    request->clr.overlapped.OffsetHigh = (DWORD)(port->file_offset >> 32);
    port->file_offset += size;
    fill_pattern(request->data, size, 1);
    if (!WriteFile(port->file, request->data, size, NULL, &request->clr.overlapped) &&
        GetLastError() != ERROR_IO_PENDING)
        violation("the file write failed: %lu", GetLastError());
}

/* ---- ports ---- */

static void open_port(struct port_model *port)
{
    HRESULT hr;

    ZeroMemory(port, sizeof(*port));
    if ((hr = IHostIoCompletionManager_CreateIoCompletionPort(model.manager, &port->handle)) != S_OK)
        violation("CreateIoCompletionPort returned %#lx", hr);
    InterlockedIncrement64(&model.ports_opened);
}

static void free_port_resources(struct port_model *port)
{
    struct request *request, *next;

    for (request = port->requests; request; request = next)
    {
        next = request->next;
        if (request->completions != 1)
            violation("a request (kind %d) of a closed port completed %ld times", request->kind,
                      request->completions);
        if (request->done)
            CloseHandle(request->done);
        HeapFree(GetProcessHeap(), 0, request);
    }
    if (port->pipe_server)
    {
        CloseHandle(port->pipe_client);
        CloseHandle(port->pipe_server);
    }
    if (port->socket_server)
    {
        closesocket(port->socket_client);
        closesocket(port->socket_server);
    }
    if (port->file)
        CloseHandle(port->file);
    ZeroMemory(port, sizeof(*port));
    InterlockedIncrement64(&total_port_cycles);
}

/* Posts a request whose callback closes its port or releases the manager, and waits for that
 * call to return. */
static struct request *call_from_callback(struct port_model *port, enum request_kind kind, ULONG64 *rng)
{
    struct request *request;

    post_request(port, kind, rng);
    request = port->requests;
    if (WaitForSingleObject(request->done, WAIT_MS) != WAIT_OBJECT_0)
        violation("%s from a callback did not return", kind == CLOSER ? "Close" : "Release");
    return request;
}

/* Real I/O of the port is complete before it closes; posted packets may still be queued, and
 * Close must dispatch each of them once before it returns. */
static void close_port(struct port_model *port, BOOL from_callback, ULONG64 *rng)
{
    DWORD i;
    HRESULT hr;

    if (!wait_until(port_quiet, port, WAIT_MS))
        violation("a port's requests were still outstanding after 30 s");
    for (i = random_below(rng, 8); i; i--)
        post_request(port, random_below(rng, 4) ? POSTED : BLOCKING, rng);
    if (from_callback)
        hr = call_from_callback(port, CLOSER, rng)->hr;
    else
    {
        hr = IHostIoCompletionManager_CloseIoCompletionPort(model.manager, port->handle);
        InterlockedExchange(&port->closed, 1);
    }
    if (hr != S_OK)
        violation("CloseIoCompletionPort returned %#lx", hr);
    if (port->completed != port->submitted)
        violation("Close returned with %ld of %ld requests completed", port->completed, port->submitted);
    free_port_resources(port);
}

/* ---- the drivers ---- */

struct driver
{
    int index;
    ULONG64 rng;
    LONG operations;
};

static BOOL threads_within(void *context)
{
    struct port_model *port = context;
    HOSTIOCP_STATISTICS stats;

    return get_statistics(model.manager, port->handle, &stats) == S_OK && stats.ThreadsTotal <= model.max;
}

/* Driver 0 alone moves the limits, so the model knows them and the HRESULT each call must give. */
static void change_limits(struct driver *driver)
{
    DWORD count = 1 + random_below(&driver->rng, MAX_LIMIT), available;
    BOOL set_max = random_below(&driver->rng, 2);
    HRESULT expected = set_max ? (count >= model.min ? S_OK : E_INVALIDARG) : (count <= model.max ? S_OK : E_INVALIDARG);
    HRESULT hr = set_max ? IHostIoCompletionManager_SetMaxThreads(model.manager, count)
                         : IHostIoCompletionManager_SetMinThreads(model.manager, count);
    int i;

    if (hr != expected)
        violation("Set%sThreads(%lu) with min %lu, max %lu returned %#lx, expected %#lx", set_max ? "Max" : "Min",
                  count, model.min, model.max, hr, expected);
    if (hr == S_OK)
        *(set_max ? &model.max : &model.min) = count;
    if (IHostIoCompletionManager_GetAvailableThreads(model.manager, &available) != S_OK || available > model.max)
        violation("GetAvailableThreads gave %lu with max %lu", available, model.max);
    for (i = 0; i < PORTS_PER_DRIVER; i++)
        if (model.ports[0][i].handle && !wait_until(threads_within, &model.ports[0][i], 10000))
            violation("a port kept more than %lu threads for 10 s after SetMaxThreads", model.max);
}

static BOOL work_threads_within(void *unused)
{
    HOSTIOCP_WORK_STATISTICS stats;

    (void)unused;
    return get_work_statistics((IUnknown *)model.threadpool, &stats) == S_OK && stats.ThreadsTotal <= model.work_max;
}

/* Driver 1 alone moves the worker limits, under the load of the items. */
static void change_work_limits(struct driver *driver)
{
    DWORD count = 1 + random_below(&driver->rng, MAX_LIMIT), available;
    BOOL set_max = random_below(&driver->rng, 2);
    HRESULT expected = set_max ? (count >= model.work_min ? S_OK : E_INVALIDARG)
                               : (count <= model.work_max ? S_OK : E_INVALIDARG);
    HRESULT hr = set_max ? IHostThreadpoolManager_SetMaxThreads(model.threadpool, count)
                         : IHostThreadpoolManager_SetMinThreads(model.threadpool, count);

    if (hr != expected)
        violation("worker Set%sThreads(%lu) with min %lu, max %lu returned %#lx, expected %#lx", set_max ? "Max" : "Min",
                  count, model.work_min, model.work_max, hr, expected);
    if (hr == S_OK)
        *(set_max ? &model.work_max : &model.work_min) = count;
    if (IHostThreadpoolManager_GetAvailableThreads(model.threadpool, &available) != S_OK || available > model.work_max)
        violation("worker GetAvailableThreads gave %lu with max %lu", available, model.work_max);
    if (!wait_until(work_threads_within, NULL, 10000))
        violation("the worker pool kept more than %lu threads for 10 s after SetMaxThreads", model.work_max);
}

static void queue_items(struct driver *driver)
{
    static const enum item_kind kinds[] = { COUNTED, COUNTED, COUNTED, COUNTED, BLOCKING_ITEM, REQUEUER };
    DWORD i;

    for (i = 1 + random_below(&driver->rng, 16); i; i--)
        queue_item(kinds[random_below(&driver->rng, ARRAYSIZE(kinds))], &driver->rng);
}

/* With a port open, the CLR callback is fixed: the same one is accepted, another refused. */
static void set_clr_with_ports_open(struct driver *driver)
{
    int other = random_below(&driver->rng, 2);
    HRESULT expected = other == model.clr_in_use ? S_OK : HOST_E_INVALIDOPERATION;
    HRESULT hr = IHostIoCompletionManager_SetCLRIoCompletionManager(model.manager,
                                                                     &model.clrs[other]->ICLRIoCompletionManager_iface);
    if (hr != expected)
        violation("SetCLRIoCompletionManager with ports open returned %#lx, expected %#lx", hr, expected);
}

static struct port_model *random_open_port(struct driver *driver)
{
    struct port_model *ports = model.ports[driver->index];
    int start = random_below(&driver->rng, PORTS_PER_DRIVER), i;

    for (i = 0; i < PORTS_PER_DRIVER; i++)
        if (ports[(start + i) % PORTS_PER_DRIVER].handle)
            return &ports[(start + i) % PORTS_PER_DRIVER];
    return NULL;
}

static struct port_model *random_free_slot(struct driver *driver)
{
    struct port_model *ports = model.ports[driver->index];
    int i;

    for (i = 0; i < PORTS_PER_DRIVER; i++)
        if (!ports[i].handle)
            return &ports[i];
    return NULL;
}

static void run_operation(struct driver *driver)
{
    DWORD choice = random_below(&driver->rng, 100), i;
    struct port_model *port = random_open_port(driver), *slot;

    if (!port || choice < 8)
    {
        if ((slot = random_free_slot(driver)))
            open_port(slot);
        return;
    }
    if (choice < 14)
        close_port(port, choice < 11, &driver->rng);
    else if (choice < 40)
        for (i = 1 + random_below(&driver->rng, 16); i; i--)
        {
            DWORD kind = random_below(&driver->rng, 40);
            post_request(port, kind >= 8 ? POSTED : kind ? QUEUER : BLOCKING, &driver->rng);
        }
    else if (choice < 58)
        pipe_round_trip(port, &driver->rng);
    else if (choice < 64)
        cancelled_read(port);
    else if (choice < 76)
        socket_round_trip(port, &driver->rng);
    else if (choice < 86)
        file_write(port, &driver->rng);
    else if (choice < 94 && driver->index == 0)
        change_limits(driver);
    else if (driver->index == 0)
        set_clr_with_ports_open(driver);
    else if (choice < 97 && driver->index == 1)
        change_work_limits(driver);
    else
        queue_items(driver);
}

static DWORD WINAPI driver_thread(void *arg)
{
    struct driver *driver = arg;

    while (driver->operations-- > 0 && !violations)
    {
        run_operation(driver);
        InterlockedIncrement64(&total_operations);
    }
    return 0;
}

/* ---- one manager's life ---- */

static BOOL all_ports_quiet(void *unused)
{
    int d, i;

    (void)unused;
    for (d = 0; d < DRIVERS; d++)
        for (i = 0; i < PORTS_PER_DRIVER; i++)
            if (model.ports[d][i].handle && !port_quiet(&model.ports[d][i]))
                return FALSE;
    return TRUE;
}

static void check_statistics(void)
{
    HOSTIOCP_STATISTICS stats;
    LONG open = 0;
    int d, i;

    if (get_statistics(model.manager, NULL, &stats) != S_OK)
    {
        violation("GetStatistics failed");
        return;
    }
    for (d = 0; d < DRIVERS; d++)
        for (i = 0; i < PORTS_PER_DRIVER; i++)
            open += model.ports[d][i].handle != NULL;
    if (stats.CompletionsDispatched != (ULONGLONG)model.submitted || stats.ForeignPackets != (ULONGLONG)model.posted ||
        stats.CompletionsFailed != (ULONGLONG)model.failed || stats.HandlesBound != (ULONGLONG)model.binds ||
        stats.PacketsDiscarded != 0 || stats.PortsOpen != (DWORD)open || stats.WakeupPackets != 0)
        violation("statistics: dispatched %I64u (model %I64d), foreign %I64u (%I64d), failed %I64u (%I64d), "
                  "bound %I64u (%I64d), discarded %I64u (0), ports %lu (%ld), wakeups %I64u (0)",
                  stats.CompletionsDispatched, model.submitted, stats.ForeignPackets, model.posted,
                  stats.CompletionsFailed, model.failed, stats.HandlesBound, model.binds, stats.PacketsDiscarded,
                  stats.PortsOpen, open, stats.WakeupPackets);
    if (stats.ThreadsBusy > stats.ThreadsTotal)
        violation("statistics: %lu busy of %lu threads", stats.ThreadsBusy, stats.ThreadsTotal);
}

static void check_work_statistics(void)
{
    HOSTIOCP_WORK_STATISTICS stats;

    if (get_work_statistics((IUnknown *)model.threadpool, &stats) != S_OK)
    {
        violation("GetWorkStatistics failed");
        return;
    }
    if (stats.ItemsQueued != (ULONGLONG)model.items_accepted || stats.ItemsRun != (ULONGLONG)model.items_run ||
        stats.ItemsRefused != 0 || stats.ItemsDiscarded != 0 || stats.ThreadsBusy > stats.ThreadsTotal)
        violation("work statistics: queued %I64u (model %I64d), run %I64u (%I64d), refused %I64u (0), "
                  "discarded %I64u (0), %lu busy of %lu threads", stats.ItemsQueued, model.items_accepted,
                  stats.ItemsRun, model.items_run, stats.ItemsRefused, stats.ItemsDiscarded, stats.ThreadsBusy,
                  stats.ThreadsTotal);
}

/* Every item ran once, or was refused once the last Release had begun. */
static void free_items(void)
{
    SLIST_ENTRY *entry;

    while ((entry = InterlockedPopEntrySList(&model.items)))
    {
        struct item *item = (struct item *)entry;

        if (item->runs != 1 && item->runs != -1)
            violation("an item (kind %d) ran %ld times by the end of its manager", item->kind, item->runs);
        if (item->done)
            CloseHandle(item->done);
        HeapFree(GetProcessHeap(), 0, item);
    }
}

/* The last Release, from this thread, from a callback on one of the ports still open or from an
 * item, with items still queued: every one accepted has run when it returns. */
static void release_manager(ULONG64 *rng)
{
    struct port_model *last = NULL;
    DWORD from = random_below(rng, 3), i;
    ULONG refs;
    int d;

    for (d = 0; d < DRIVERS && !last; d++)
        for (i = 0; i < PORTS_PER_DRIVER && !last; i++)
            if (model.ports[d][i].handle)
                last = &model.ports[d][i];
    IHostThreadpoolManager_Release(model.threadpool);
    for (i = random_below(rng, 32); i; i--)
        queue_item(random_below(rng, 4) ? COUNTED : random_below(rng, 2) ? BLOCKING_ITEM : REQUEUER, rng);
    /* Callbacks that queue items while Release runs: each item runs, or is refused. */
    InterlockedExchange(&model.releasing, 1);
    for (d = 0; d < DRIVERS; d++)
        for (i = 0; i < PORTS_PER_DRIVER; i++)
            if (model.ports[d][i].handle && random_below(rng, 2))
                post_request(&model.ports[d][i], LATE_QUEUER, rng);
    if (last && from == 0)
        refs = call_from_callback(last, RELEASER, rng)->refs;
    else if (from == 1)
    {
        struct item *item = queue_item(RELEASING_ITEM, rng);

        if (WaitForSingleObject(item->done, WAIT_MS) != WAIT_OBJECT_0)
            violation("Release from an item did not return");
        refs = item->refs;
    }
    else
    {
        refs = IHostIoCompletionManager_Release(model.manager);
        InterlockedExchange(&model.released, 1);
    }
    if (refs)
        violation("the last Release left %lu references", refs);
    if (model.items_run != model.items_accepted)
        violation("the last Release returned with %I64d of %I64d items run", model.items_run, model.items_accepted);
    for (d = 0; d < DRIVERS; d++)
        for (i = 0; i < PORTS_PER_DRIVER; i++)
            if (model.ports[d][i].handle)
            {
                InterlockedExchange(&model.ports[d][i].closed, 1);
                if (model.ports[d][i].completed != model.ports[d][i].submitted)
                    violation("the last Release returned with %ld of %ld requests of a port completed",
                              model.ports[d][i].completed, model.ports[d][i].submitted);
            }
}

static LONG threads_before_epoch;

static BOOL back_to_threads_before(void *unused)
{
    (void)unused;
    return process_threads() == threads_before_epoch;
}

static BOOL dll_unloadable(void)
{
    HMODULE dll = GetModuleHandleW(L"hostiocp.dll");
    HRESULT (WINAPI *can_unload_now)(void);

    if (!dll)
        return TRUE;
    can_unload_now = (void *)GetProcAddress(dll, "DllCanUnloadNow");
    return can_unload_now && can_unload_now() == S_OK;
}

static void run_epoch(ULONG64 epoch)
{
    struct driver drivers[DRIVERS];
    HANDLE threads[DRIVERS];
    ULONG64 rng = run_seed * 0x9e3779b97f4a7c15ull + epoch + 1;
    HRESULT hr;
    int d, i;

    threads_before_epoch = process_threads();
    ZeroMemory(&model, sizeof(model));
    for (i = 0; i < 2; i++)
    {
        model.clrs[i] = fake_clr_create();
        model.clrs[i]->hook = on_complete;
    }
    model.min = 1 + random_below(&rng, 2);
    model.max = model.min + random_below(&rng, MAX_LIMIT - model.min + 1);
    if ((hr = create_manager(&model.manager)) != S_OK)
    {
        violation("creating a manager failed: %#lx", hr);
        return;
    }
    /* With no port open the CLR callback may change. */
    model.clr_in_use = random_below(&rng, 2);
    for (i = 0; i <= model.clr_in_use; i++)
        if ((hr = IHostIoCompletionManager_SetCLRIoCompletionManager(model.manager,
                                                                     &model.clrs[i]->ICLRIoCompletionManager_iface)))
            violation("SetCLRIoCompletionManager with no port open returned %#lx", hr);
    InitializeSListHead(&model.items);
    model.work_min = 1 + random_below(&rng, 2);
    model.work_max = model.work_min + random_below(&rng, MAX_LIMIT - model.work_min + 1);
    if (IHostIoCompletionManager_QueryInterface(model.manager, &IID_IHostThreadpoolManager,
                                                (void **)&model.threadpool) != S_OK ||
        IHostThreadpoolManager_SetMinThreads(model.threadpool, 0) != S_OK ||
        IHostThreadpoolManager_SetMaxThreads(model.threadpool, model.work_max) != S_OK ||
        IHostThreadpoolManager_SetMinThreads(model.threadpool, model.work_min) != S_OK)
        violation("setting the worker limits %lu..%lu failed", model.work_min, model.work_max);
    if (IHostIoCompletionManager_SetMinThreads(model.manager, 0) != S_OK ||
        IHostIoCompletionManager_SetMaxThreads(model.manager, model.max) != S_OK ||
        IHostIoCompletionManager_SetMinThreads(model.manager, model.min) != S_OK)
        violation("setting the limits %lu..%lu failed", model.min, model.max);
    for (d = 0; d < DRIVERS; d++)
    {
        drivers[d].index = d;
        drivers[d].rng = rng ^ (0x1234567ull * (d + 1));
        drivers[d].operations = OPS_PER_EPOCH;
        threads[d] = CreateThread(NULL, 0, driver_thread, &drivers[d], 0, NULL);
    }
    WaitForMultipleObjects(DRIVERS, threads, TRUE, INFINITE);
    for (d = 0; d < DRIVERS; d++)
        CloseHandle(threads[d]);
    if (!wait_until(all_ports_quiet, NULL, WAIT_MS))
        violation("requests were still outstanding 30 s after the drivers stopped");
    if (!wait_until(items_quiet, NULL, WAIT_MS))
        violation("items were still queued 30 s after the drivers stopped");
    check_statistics();
    check_work_statistics();
    release_manager(&rng);
    free_items();
    for (d = 0; d < DRIVERS; d++)
        for (i = 0; i < PORTS_PER_DRIVER; i++)
            if (model.ports[d][i].handle)
                free_port_resources(&model.ports[d][i]);
    if (!wait_until(back_to_threads_before, NULL, 10000))
        violation("%ld threads of hostiocp outlived their manager", process_threads() - threads_before_epoch);
    for (i = 0; i < 2; i++)
    {
        if (model.clrs[i]->refs != 1)
            violation("a CLR callback kept %ld references after the last Release", model.clrs[i]->refs - 1);
        fake_clr_destroy(model.clrs[i]);
    }
    /* Unloaded under the load it just had: a thread left behind would run unloaded code. */
    if (!dll_unloadable())
        violation("DllCanUnloadNow does not answer S_OK after the last Release");
    CoFreeUnusedLibrariesEx(0, 0);
    if (GetModuleHandleW(L"hostiocp.dll"))
        violation("hostiocp.dll stayed loaded after CoFreeUnusedLibrariesEx");
}

/* ---- the process over the whole run ---- */

struct footprint
{
    DWORD handles;
    LONG threads;
    SIZE_T private_bytes;
    SIZE_T heap_bytes;
};

static void measure_footprint(struct footprint *footprint)
{
    footprint->handles = process_handles();
    footprint->threads = process_threads();
    footprint->private_bytes = process_private_bytes();
    footprint->heap_bytes = process_heap_bytes_in_use();
}

static DWORD setting(const char *name, DWORD fallback)
{
    const char *value = getenv(name);
    return value && *value ? strtoul(value, NULL, 0) : fallback;
}


START_TEST(stress)
{
    struct footprint start = { 0 }, quarter = { 0 }, end;
    DWORD seconds = setting("HOSTIOCP_STRESS_SECONDS", 5), began;
    ULONG64 epoch;
    WSADATA wsa;

    run_seed = setting("HOSTIOCP_STRESS_SEED", GetTickCount());
    trace("seed %I64u (HOSTIOCP_STRESS_SEED replays it), %lu s\n", run_seed, seconds);
    CoInitializeEx(NULL, COINIT_MULTITHREADED);
    WSAStartup(MAKEWORD(2, 2), &wsa);
    began = GetTickCount();
    for (epoch = 0; !violations && (epoch < 2 || GetTickCount() - began < seconds * 1000); epoch++)
    {
        DWORD epoch_began = GetTickCount();

        run_epoch(epoch);
        if (winetest_debug > 1)
            trace("epoch %I64u: %lu ms\n", epoch, GetTickCount() - epoch_began);
        if (epoch == 1)
            measure_footprint(&start);  /* after warm-up: the first managers loaded what stays */
        if (!quarter.threads && GetTickCount() - began >= seconds * 250)
            measure_footprint(&quarter);  /* the heap has grown to what the run needs */
    }
    measure_footprint(&end);
    ok(!violations, "%ld violations; the first: %s; replay with HOSTIOCP_STRESS_SEED=%I64u\n", violations,
       first_violation, run_seed);
    trace("%I64u epochs, %I64d operations, %I64d completions, %I64d work items, %I64d port open/close cycles in "
          "%.1f s\n", epoch, total_operations, total_completions, total_items, total_port_cycles,
          (GetTickCount() - began) / 1000.0);
    if (!quarter.threads)
        quarter = end;
    trace("after warm-up -> a quarter of the run -> end: handles %lu -> %lu -> %lu, threads %ld -> %ld -> %ld, "
          "private bytes %lu -> %lu -> %lu KiB\n", start.handles, quarter.handles, end.handles, start.threads,
          quarter.threads, end.threads, (DWORD)(start.private_bytes / 1024), (DWORD)(quarter.private_bytes / 1024),
          (DWORD)(end.private_bytes / 1024));
    trace("heap bytes in use %lu -> %lu -> %lu KiB\n", (DWORD)(start.heap_bytes / 1024),
          (DWORD)(quarter.heap_bytes / 1024), (DWORD)(end.heap_bytes / 1024));
    ok(end.threads == start.threads, "threads grew from %ld to %ld\n", start.threads, end.threads);
    ok(end.handles <= start.handles + 16, "handles grew from %lu to %lu\n", start.handles, end.handles);
    ok(end.private_bytes <= start.private_bytes + 4 * 1024 * 1024, "private bytes grew from %lu KiB to %lu KiB\n",
       (DWORD)(start.private_bytes / 1024), (DWORD)(end.private_bytes / 1024));
    /* In a soak the heap has long grown to what the run needs by a quarter of it; in the short
     * run of make check it may still be growing then. */
    ok(seconds < 60 || end.private_bytes <= quarter.private_bytes + 1024 * 1024, "private bytes grew from %lu KiB "
       "at a quarter of the run to %lu KiB\n", (DWORD)(quarter.private_bytes / 1024), (DWORD)(end.private_bytes / 1024));
    /* The heaps' free space is theirs to keep, but what is in use must come back: every manager
     * and every item frees all it allocated by the time its DLL unloads. */
    ok(end.heap_bytes <= start.heap_bytes + 16 * 1024, "heap bytes in use grew from %lu KiB to %lu KiB\n",
       (DWORD)(start.heap_bytes / 1024), (DWORD)(end.heap_bytes / 1024));
    ok(GetModuleHandleW(L"hostiocp.dll") == NULL, "hostiocp.dll is loaded after the run\n");
    WSACleanup();
    CoUninitialize();
}
