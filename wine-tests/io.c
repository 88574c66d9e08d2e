/* Conformance: real overlapped I/O through hostiocp as the CLR drives it (Bind, then
 * InitializeHostOverlapped per request): file, named-pipe and TCP transfers checked byte for
 * byte, cancellation, a handle closed with I/O pending, and packets others post to the port;
 * then both managers from IHostControl as the CLR takes them, at their default limits, with work
 * items that wait for real I/O and completion callbacks that wait for work items. */
#include <winsock2.h>
#include <windows.h>
#include <ole2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define STANDALONE
#include <wine/test.h>
#include "fakeclr.h"
#include "support.h"

#define WAIT_MS 30000

struct request
{
    struct clr_overlapped clr;  /* must stay first: OnComplete gets its address */
    volatile LONG completions;
    DWORD error;
    DWORD bytes;
    HANDLE done;
};

static struct fake_clr *clr;
static IHostIoCompletionManager *manager;
static HANDLE port;

static void record_completion(struct fake_clr *fake, DWORD error, DWORD bytes, void *overlapped)
{
    struct request *request = overlapped;

    (void)fake;
    request->error = error;
    request->bytes = bytes;
    InterlockedIncrement(&request->completions);
    SetEvent(request->done);
}

static void init_request(struct request *request)
{
    HRESULT hr;

    ZeroMemory(request, sizeof(*request));
    request->done = CreateEventW(NULL, TRUE, FALSE, NULL);
    hr = IHostIoCompletionManager_InitializeHostOverlapped(manager, &request->clr.overlapped);
    ok(hr == S_OK, "InitializeHostOverlapped returned %#lx\n", hr);
}

static void free_request(struct request *request)
{
    CloseHandle(request->done);
}

/* Waits for the request's one completion and checks what OnComplete reported. */
static void check_completion(struct request *request, DWORD error, DWORD bytes, const char *what)
{
    ok(WaitForSingleObject(request->done, WAIT_MS) == WAIT_OBJECT_0, "%s: no completion\n", what);
    ok(request->completions == 1, "%s: %ld completions\n", what, request->completions);
    ok(request->error == error, "%s: error %lu, expected %lu\n", what, request->error, error);
    ok(request->bytes == bytes, "%s: %lu bytes, expected %lu\n", what, request->bytes, bytes);
}

static void fill_pattern(BYTE *buffer, DWORD size, DWORD seed)
{
    DWORD i;

    for (i = 0; i < size; i++)
        buffer[i] = (BYTE)((i * 31 + seed) ^ (i >> 8));
}

static void bind_handle(HANDLE handle, const char *what)
{
    HRESULT hr = IHostIoCompletionManager_Bind(manager, port, handle);
    ok(hr == S_OK, "Bind(%s) returned %#lx\n", what, hr);
}

static void test_file(void)
{
    enum { CHUNK = 65536, CHUNKS = 4 };
    struct request writes[CHUNKS], reads[CHUNKS];
    WCHAR dir[MAX_PATH], path[MAX_PATH];
    BYTE *data = HeapAlloc(GetProcessHeap(), 0, CHUNK * CHUNKS);
    BYTE *back = HeapAlloc(GetProcessHeap(), HEAP_ZERO_MEMORY, CHUNK * CHUNKS);
    HANDLE file;
    int i;

    GetTempPathW(MAX_PATH, dir);
    GetTempFileNameW(dir, L"hio", 0, path);
    file = CreateFileW(path, GENERIC_READ | GENERIC_WRITE, 0, NULL, CREATE_ALWAYS,
                       FILE_FLAG_OVERLAPPED | FILE_FLAG_DELETE_ON_CLOSE, NULL);
    ok(file != INVALID_HANDLE_VALUE, "CreateFile failed: %lu\n", GetLastError());
    bind_handle(file, "file");
    fill_pattern(data, CHUNK * CHUNKS, 7);

    for (i = 0; i < CHUNKS; i++)
    {
        init_request(&writes[i]);
        writes[i].clr.overlapped.Offset = i * CHUNK;
        if (!WriteFile(file, data + i * CHUNK, CHUNK, NULL, &writes[i].clr.overlapped))
            ok(GetLastError() == ERROR_IO_PENDING, "WriteFile failed: %lu\n", GetLastError());
    }
    for (i = 0; i < CHUNKS; i++)
        check_completion(&writes[i], ERROR_SUCCESS, CHUNK, "file write");
    for (i = 0; i < CHUNKS; i++)
    {
        init_request(&reads[i]);
        reads[i].clr.overlapped.Offset = i * CHUNK;
        if (!ReadFile(file, back + i * CHUNK, CHUNK, NULL, &reads[i].clr.overlapped))
            ok(GetLastError() == ERROR_IO_PENDING, "ReadFile failed: %lu\n", GetLastError());
    }
    for (i = 0; i < CHUNKS; i++)
        check_completion(&reads[i], ERROR_SUCCESS, CHUNK, "file read");
    ok(!memcmp(data, back, CHUNK * CHUNKS), "the file read back differs from what was written\n");

    /* Reading at the end of the file completes with ERROR_HANDLE_EOF. */
    init_request(&reads[0]);
    reads[0].clr.overlapped.Offset = CHUNK * CHUNKS;
    if (!ReadFile(file, back, CHUNK, NULL, &reads[0].clr.overlapped) && GetLastError() == ERROR_IO_PENDING)
        check_completion(&reads[0], ERROR_HANDLE_EOF, 0, "read past the end");
    else
        ok(GetLastError() == ERROR_HANDLE_EOF, "ReadFile past the end failed with %lu\n", GetLastError());

    for (i = 0; i < CHUNKS; i++)
    {
        free_request(&writes[i]);
        free_request(&reads[i]);
    }
    CloseHandle(file);
    HeapFree(GetProcessHeap(), 0, data);
    HeapFree(GetProcessHeap(), 0, back);
}

static void create_pipe_pair(HANDLE *server, HANDLE *client)
{
    WCHAR name[64];

    swprintf(name, ARRAYSIZE(name), L"\\\\.\\pipe\\hostiocp-%lu-%lu", GetCurrentProcessId(), GetTickCount());
    *server = CreateNamedPipeW(name, PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED,
                               PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT, 1, 4096, 4096, 0, NULL);
    ok(*server != INVALID_HANDLE_VALUE, "CreateNamedPipe failed: %lu\n", GetLastError());
    *client = CreateFileW(name, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
    ok(*client != INVALID_HANDLE_VALUE, "opening the pipe failed: %lu\n", GetLastError());
}

static void start_read(HANDLE handle, BYTE *buffer, DWORD size, struct request *request)
{
    init_request(request);
    if (!ReadFile(handle, buffer, size, NULL, &request->clr.overlapped))
        ok(GetLastError() == ERROR_IO_PENDING, "ReadFile failed: %lu\n", GetLastError());
}

static void test_pipe(const char *mode)
{
    static const char message[] = "completion through the host";
    struct request request;
    HANDLE server, client;
    BYTE buffer[256];
    DWORD written;
    char what[64];

    create_pipe_pair(&server, &client);
    bind_handle(server, "pipe");

    start_read(server, buffer, sizeof(buffer), &request);
    ok(WriteFile(client, message, sizeof(message), &written, NULL), "WriteFile failed: %lu\n", GetLastError());
    snprintf(what, sizeof(what), "%s pipe read", mode);
    check_completion(&request, ERROR_SUCCESS, sizeof(message), what);
    ok(!memcmp(buffer, message, sizeof(message)), "%s: the pipe delivered other bytes\n", mode);
    free_request(&request);

    start_read(server, buffer, sizeof(buffer), &request);
    ok(CancelIoEx(server, &request.clr.overlapped), "CancelIoEx failed: %lu\n", GetLastError());
    snprintf(what, sizeof(what), "%s cancelled read", mode);
    check_completion(&request, ERROR_OPERATION_ABORTED, 0, what);
    free_request(&request);

    start_read(server, buffer, sizeof(buffer), &request);
    CloseHandle(client);
    snprintf(what, sizeof(what), "%s read when the client went away", mode);
    check_completion(&request, ERROR_BROKEN_PIPE, 0, what);
    free_request(&request);
    CloseHandle(server);
}

/* Closing the bound handle itself with a read pending still completes that read, once. */
static void test_close_with_pending_read(void)
{
    struct request request;
    HANDLE server, client;
    BYTE buffer[64];

    create_pipe_pair(&server, &client);
    bind_handle(server, "pipe closed with a read pending");
    start_read(server, buffer, sizeof(buffer), &request);
    CloseHandle(server);
    ok(WaitForSingleObject(request.done, WAIT_MS) == WAIT_OBJECT_0, "closing the handle lost the read\n");
    ok(request.completions == 1, "%ld completions\n", request.completions);
    /* Closing a handle cancels its I/O; Wine 8 completes the read with ERROR_BROKEN_PIPE instead. */
    todo_wine
    ok(request.error == ERROR_OPERATION_ABORTED, "error %lu\n", request.error);
    ok(request.bytes == 0, "%lu bytes\n", request.bytes);
    free_request(&request);
    CloseHandle(client);
}

/* A connected loopback pair; the server end is bound to the host. */
static void connect_sockets(SOCKET *listener, SOCKET *client, SOCKET *server)
{
    struct sockaddr_in address = { 0 };
    int length = sizeof(address);

    *listener = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok(!bind(*listener, (struct sockaddr *)&address, sizeof(address)), "bind failed: %d\n", WSAGetLastError());
    ok(!listen(*listener, 1), "listen failed: %d\n", WSAGetLastError());
    getsockname(*listener, (struct sockaddr *)&address, &length);
    *client = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    ok(!connect(*client, (struct sockaddr *)&address, sizeof(address)), "connect failed: %d\n", WSAGetLastError());
    *server = accept(*listener, NULL, NULL);
    ok(*server != INVALID_SOCKET, "accept failed: %d\n", WSAGetLastError());
    bind_handle((HANDLE)*server, "socket");
}

static void start_receive(SOCKET server, BYTE *buffer, DWORD size, struct request *request)
{
    WSABUF wsabuf = { size, (char *)buffer };
    DWORD flags = 0;

    init_request(request);
    if (WSARecv(server, &wsabuf, 1, NULL, &flags, &request->clr.overlapped, NULL))
        ok(WSAGetLastError() == WSA_IO_PENDING, "WSARecv failed: %d\n", WSAGetLastError());
}

/* Receive through the host. */
static void test_socket_receive(SOCKET server, SOCKET client)
{
    struct request request;
    BYTE back[5];

    start_receive(server, back, sizeof(back), &request);
    ok(send(client, "ping!", 5, 0) == 5, "send failed: %d\n", WSAGetLastError());
    check_completion(&request, ERROR_SUCCESS, 5, "socket receive");
    ok(!memcmp(back, "ping!", 5), "the socket delivered other bytes\n");
    free_request(&request);
}

/* Send through the host, read it on the other side. */
static void test_socket_send(SOCKET server, SOCKET client)
{
    enum { SIZE = 100000 };
    BYTE *data = HeapAlloc(GetProcessHeap(), 0, SIZE), *back = HeapAlloc(GetProcessHeap(), 0, SIZE);
    WSABUF buffer = { SIZE, (char *)data };
    struct request request;
    int received = 0, n;

    fill_pattern(data, SIZE, 3);
    init_request(&request);
    if (WSASend(server, &buffer, 1, NULL, 0, &request.clr.overlapped, NULL))
        ok(WSAGetLastError() == WSA_IO_PENDING, "WSASend failed: %d\n", WSAGetLastError());
    while (received < SIZE && (n = recv(client, (char *)back + received, SIZE - received, 0)) > 0)
        received += n;
    ok(received == SIZE, "received %d of %d bytes\n", received, SIZE);
    check_completion(&request, ERROR_SUCCESS, SIZE, "socket send");
    ok(!memcmp(data, back, SIZE), "the bytes sent through the host differ\n");
    free_request(&request);
    HeapFree(GetProcessHeap(), 0, data);
    HeapFree(GetProcessHeap(), 0, back);
}

/* The peer closing completes a pending receive with no bytes. */
static void test_socket_peer_close(SOCKET server, SOCKET client)
{
    struct request request;
    BYTE back[16];

    start_receive(server, back, sizeof(back), &request);
    closesocket(client);
    check_completion(&request, ERROR_SUCCESS, 0, "receive after the peer closed");
    free_request(&request);
}

static void test_socket(void)
{
    SOCKET listener, client, server;

    connect_sockets(&listener, &client, &server);
    test_socket_receive(server, client);
    test_socket_send(server, client);
    test_socket_peer_close(server, client);
    closesocket(server);
    closesocket(listener);
}

/* The CLR posts its own markers: a static OVERLAPPED with no host extension and a key that Bind
 * never gave out.  Placed at the very end of a page followed by an inaccessible one, any read
 * past the OVERLAPPED would fault. */
/* What OnComplete reported for the marker; the completions before it are others' business. */
static struct
{
    OVERLAPPED *overlapped;
    volatile LONG calls;
    DWORD error, bytes;
    HANDLE done;
} marker_seen;

static void record_marker(struct fake_clr *fake, DWORD error, DWORD bytes, void *overlapped)
{
    (void)fake;
    if (overlapped != marker_seen.overlapped)
        return;
    marker_seen.error = error;
    marker_seen.bytes = bytes;
    InterlockedIncrement(&marker_seen.calls);
    SetEvent(marker_seen.done);
}

static void test_foreign_packets(void)
{
    SYSTEM_INFO system;
    BYTE *pages;
    HOSTIOCP_STATISTICS before, after;
    DWORD old;

    GetSystemInfo(&system);
    pages = VirtualAlloc(NULL, system.dwPageSize * 2, MEM_COMMIT | MEM_RESERVE, PAGE_READWRITE);
    VirtualProtect(pages + system.dwPageSize, system.dwPageSize, PAGE_NOACCESS, &old);
    marker_seen.overlapped = (OVERLAPPED *)(pages + system.dwPageSize - sizeof(OVERLAPPED));
    marker_seen.calls = 0;
    marker_seen.done = CreateEventW(NULL, TRUE, FALSE, NULL);
    get_statistics(manager, port, &before);

    clr->hook = record_marker;
    ok(PostQueuedCompletionStatus(port, 0, (ULONG_PTR)0xc1c1c1c1, marker_seen.overlapped),
       "PostQueuedCompletionStatus failed\n");
    ok(WaitForSingleObject(marker_seen.done, WAIT_MS) == WAIT_OBJECT_0, "the foreign packet was not dispatched\n");
    ok(marker_seen.calls == 1, "the marker was dispatched %ld times\n", marker_seen.calls);
    ok(marker_seen.error == ERROR_SUCCESS && marker_seen.bytes == 0, "error %lu, bytes %lu\n",
       marker_seen.error, marker_seen.bytes);
    get_statistics(manager, port, &after);
    ok(after.ForeignPackets == before.ForeignPackets + 1, "foreign packets %s -> %s\n",
       wine_dbgstr_longlong(before.ForeignPackets), wine_dbgstr_longlong(after.ForeignPackets));
    clr->hook = record_completion;
    CloseHandle(marker_seen.done);
    VirtualFree(pages, 0, MEM_RELEASE);
}

/* Completions with an error: the pipe's cancelled read and broken pipe; then the file's read
 * past the end and the read pending when its handle closed. */
#define FAILED_COMPLETIONS_PIPE 2
#define FAILED_COMPLETIONS_ONE_AT_A_TIME (FAILED_COMPLETIONS_PIPE + 2)

/* A manager whose threads dequeue `batch` packets at a time from their start. */
static HRESULT start_manager(DWORD batch)
{
    HRESULT hr = create_manager_with_clr(clr, 2, 8, &manager, NULL);

    if (SUCCEEDED(hr))
        hr = set_batch_size(manager, batch);
    if (SUCCEEDED(hr))
        hr = IHostIoCompletionManager_CreateIoCompletionPort(manager, &port);
    ok(hr == S_OK, "creating the manager and its port with batch %lu failed: %#lx\n", batch, hr);
    return hr;
}

static void check_statistics_and_release(const char *mode, ULONGLONG bound, ULONGLONG failed, BOOL batched)
{
    HOSTIOCP_STATISTICS stats;

    get_statistics(manager, port, &stats);
    ok(stats.HandlesBound == bound, "%s: %s handles bound\n", mode, wine_dbgstr_longlong(stats.HandlesBound));
    ok(stats.CompletionsFailed == failed, "%s: %s failed completions\n", mode,
       wine_dbgstr_longlong(stats.CompletionsFailed));
    /* Every packet went through the path under test. */
    ok(stats.CompletionsBatched == (batched ? stats.CompletionsDispatched : 0), "%s: %s of %s dispatched from batches\n",
       mode, wine_dbgstr_longlong(stats.CompletionsBatched), wine_dbgstr_longlong(stats.CompletionsDispatched));
    trace("%s: dispatched %s completions, %s failed, %s foreign\n", mode,
          wine_dbgstr_longlong(stats.CompletionsDispatched), wine_dbgstr_longlong(stats.CompletionsFailed),
          wine_dbgstr_longlong(stats.ForeignPackets));
    ok(IHostIoCompletionManager_Release(manager) == 0, "%s: manager references left\n", mode);
    ok(clr->refs == 1, "%s: the CLR callback is still referenced\n", mode);
}

/* ---- both managers as the CLR drives them: work items and I/O waiting for each other ---- */

#define MESSAGE_SIZE 512
#define WAITERS_ABOVE_MINIMUM 8   /* blocked at once in a pool: this many more than its minimum */

/* The CLR's side of hostiocp as CorHost2::SetHostControl and the thread pool's start set it up:
 * GetHostManager for the thread-pool manager and then the I/O one, the overlapped size, the
 * CLR's callback and one port.  It sets neither pool's limits: the CLR sets them only when
 * managed code calls ThreadPool.SetMinThreads or SetMaxThreads. */
struct clr_host
{
    IHostControl *control;
    IHostThreadpoolManager *workers;
    IHostIoCompletionManager *manager;
    HANDLE port;
};

/* One party of a wait: a read on a message pipe whose server end is bound to the port. */
struct waiter
{
    struct clr_overlapped read;   /* OnComplete gets its address */
    HANDLE server, client;
    BYTE sent[MESSAGE_SIZE], received[MESSAGE_SIZE];
    volatile LONG completions;
    volatile LONG waits_begun;    /* by the waiting party: an item, or a callback */
    volatile LONG helper_runs;    /* of the item that lets it go on */
    DWORD error, bytes;
    HANDLE go_on;                 /* set by the item that lets the waiting party go on */
};

static struct
{
    struct clr_host host;
    struct waiter *waiters;
    LONG count;
    volatile LONG arrived;        /* parties about to wait */
    HANDLE all_arrived;
    volatile LONG finished;       /* waiting items that went on */
    HANDLE all_finished;
    volatile LONG failures;       /* refused items and timed-out waits, on pool threads */
    LONG calls_before;            /* the fake CLR's OnComplete calls before these */
} waits;

static DWORD processors(void)
{
    SYSTEM_INFO system;

    GetSystemInfo(&system);
    return system.dwNumberOfProcessors;
}

static BOOL set_up_clr_host(struct clr_host *host)
{
    DWORD size = 0, value;
    HRESULT hr;

    ZeroMemory(host, sizeof(*host));
    hr = CoCreateInstance(&CLSID_HostIoCpHostControl, NULL, CLSCTX_INPROC_SERVER, &IID_IHostControl,
                          (void **)&host->control);
    ok(hr == S_OK, "CoCreateInstance(CLSID_HostIoCpHostControl) returned %#lx\n", hr);
    if (FAILED(hr))
        return FALSE;
    hr = IHostControl_GetHostManager(host->control, &IID_IHostThreadpoolManager, (void **)&host->workers);
    ok(hr == S_OK && host->workers, "GetHostManager(IHostThreadpoolManager) returned %#lx\n", hr);
    hr = IHostControl_GetHostManager(host->control, &IID_IHostIoCompletionManager, (void **)&host->manager);
    ok(hr == S_OK && host->manager, "GetHostManager(IHostIoCompletionManager) returned %#lx\n", hr);
    if (!host->workers || !host->manager)
        return FALSE;
    /* The defaults the CLR leaves them at: a thread per CPU at least, 1000 at most. */
    ok(IHostThreadpoolManager_GetMinThreads(host->workers, &value) == S_OK && value == processors(),
       "the worker pool's minimum is %lu, expected %lu\n", value, processors());
    ok(IHostThreadpoolManager_GetMaxThreads(host->workers, &value) == S_OK && value == HOSTIOCP_MAX_THREADS_LIMIT,
       "the worker pool's maximum is %lu\n", value);
    ok(IHostIoCompletionManager_GetMinThreads(host->manager, &value) == S_OK && value == processors(),
       "the I/O pool's minimum is %lu, expected %lu\n", value, processors());
    ok(IHostIoCompletionManager_GetMaxThreads(host->manager, &value) == S_OK && value == HOSTIOCP_MAX_THREADS_LIMIT,
       "the I/O pool's maximum is %lu\n", value);
    hr = IHostIoCompletionManager_GetHostOverlappedSize(host->manager, &size);
    ok(hr == S_OK && size <= sizeof(((struct clr_overlapped *)NULL)->host), "GetHostOverlappedSize: %#lx, %lu\n",
       hr, size);
    hr = IHostIoCompletionManager_SetCLRIoCompletionManager(host->manager, &clr->ICLRIoCompletionManager_iface);
    ok(hr == S_OK, "SetCLRIoCompletionManager returned %#lx\n", hr);
    hr = IHostIoCompletionManager_CreateIoCompletionPort(host->manager, &host->port);
    ok(hr == S_OK, "CreateIoCompletionPort returned %#lx\n", hr);
    return SUCCEEDED(hr);
}

static void release_clr_host(struct clr_host *host)
{
    if (host->workers)
        IHostThreadpoolManager_Release(host->workers);
    if (host->manager)
        IHostIoCompletionManager_Release(host->manager);
    if (host->control)
        ok(IHostControl_Release(host->control) == 0, "references to the host control left\n");
    ok(clr->refs == 1, "the CLR callback is still referenced\n");
}

/* Message mode: the read takes the one message whole, in one completion. */
static void open_message_pipe(struct waiter *waiter, LONG index)
{
    WCHAR name[80];

    swprintf(name, ARRAYSIZE(name), L"\\\\.\\pipe\\hostiocp-waits-%lu-%ld", GetCurrentProcessId(), index);
    waiter->server = CreateNamedPipeW(name, PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED,
                                      PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE | PIPE_WAIT, 1, MESSAGE_SIZE,
                                      MESSAGE_SIZE, 0, NULL);
    ok(waiter->server != INVALID_HANDLE_VALUE, "CreateNamedPipe failed: %lu\n", GetLastError());
    waiter->client = CreateFileW(name, GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
    ok(waiter->client != INVALID_HANDLE_VALUE, "opening the pipe failed: %lu\n", GetLastError());
    ok(IHostIoCompletionManager_Bind(waits.host.manager, waits.host.port, waiter->server) == S_OK, "Bind failed\n");
}

static BOOL start_waits(fake_clr_hook hook)
{
    LONG i;

    ZeroMemory(&waits, sizeof(waits));
    waits.count = processors() + WAITERS_ABOVE_MINIMUM;
    waits.waiters = HeapAlloc(GetProcessHeap(), HEAP_ZERO_MEMORY, waits.count * sizeof(*waits.waiters));
    waits.all_arrived = CreateEventW(NULL, TRUE, FALSE, NULL);
    waits.all_finished = CreateEventW(NULL, TRUE, FALSE, NULL);
    clr->hook = hook;
    waits.calls_before = clr->calls;
    fake_clr_expect(clr, waits.count);
    if (!set_up_clr_host(&waits.host))
        return FALSE;
    for (i = 0; i < waits.count; i++)
    {
        waits.waiters[i].go_on = CreateEventW(NULL, FALSE, FALSE, NULL);
        fill_pattern(waits.waiters[i].sent, MESSAGE_SIZE, (DWORD)i);
        open_message_pipe(&waits.waiters[i], i);
    }
    return TRUE;
}

static void arrive(void)
{
    if (InterlockedIncrement(&waits.arrived) == waits.count)
        SetEvent(waits.all_arrived);
}

static void wait_on_pool_thread(HANDLE event)
{
    if (WaitForSingleObject(event, WAIT_MS) != WAIT_OBJECT_0)
        InterlockedIncrement(&waits.failures);
}

/* Flags 0, as the CLR queues managed work. */
static void queue_item(LPTHREAD_START_ROUTINE function, struct waiter *waiter)
{
    if (IHostThreadpoolManager_QueueUserWorkItem(waits.host.workers, function, waiter, 0) != S_OK)
    {
        InterlockedIncrement(&waits.failures);
        SetEvent(waiter->go_on);  /* counted: whoever waits for it need not */
    }
}

static void start_message_read(struct waiter *waiter)
{
    IHostIoCompletionManager_InitializeHostOverlapped(waits.host.manager, &waiter->read.overlapped);
    if (!ReadFile(waiter->server, waiter->received, MESSAGE_SIZE, NULL, &waiter->read.overlapped) &&
        GetLastError() != ERROR_IO_PENDING)
        InterlockedIncrement(&waits.failures);
}

static void record_read(struct waiter *waiter, DWORD error, DWORD bytes)
{
    waiter->error = error;
    waiter->bytes = bytes;
    InterlockedIncrement(&waiter->completions);
}

static void write_messages(void)
{
    DWORD written;
    LONG i;

    for (i = 0; i < waits.count; i++)
        ok(WriteFile(waits.waiters[i].client, waits.waiters[i].sent, MESSAGE_SIZE, &written, NULL) &&
           written == MESSAGE_SIZE, "writing message %ld failed: %lu\n", i, GetLastError());
}

/* Every party once: each read completed once with its own message, each item ran once. */
static void check_waiters(const char *what)
{
    LONG i;

    ok(!waits.failures, "%s: %ld items refused or waits timed out on pool threads\n", what, waits.failures);
    for (i = 0; i < waits.count; i++)
    {
        struct waiter *waiter = &waits.waiters[i];

        ok(waiter->completions == 1, "%s: read %ld completed %ld times\n", what, i, waiter->completions);
        ok(waiter->waits_begun == 1 && waiter->helper_runs == 1, "%s: waiter %ld waited %ld times, its helper item "
           "ran %ld times\n", what, i, waiter->waits_begun, waiter->helper_runs);
        ok(!waiter->error && waiter->bytes == MESSAGE_SIZE, "%s: read %ld: error %lu, %lu bytes\n", what, i,
           waiter->error, waiter->bytes);
        ok(!memcmp(waiter->received, waiter->sent, MESSAGE_SIZE), "%s: read %ld got other bytes\n", what, i);
    }
}

static void check_work_statistics(const char *what, LONG items, DWORD threads_at_least)
{
    HOSTIOCP_WORK_STATISTICS stats;

    ok(get_work_statistics((IUnknown *)waits.host.workers, &stats) == S_OK, "%s: no work statistics\n", what);
    ok(stats.ItemsQueued == (ULONGLONG)items && stats.ItemsRun == (ULONGLONG)items,
       "%s: %lu items queued and %lu run, expected %ld\n", what, (ULONG)stats.ItemsQueued, (ULONG)stats.ItemsRun, items);
    ok(!stats.ItemsRefused && !stats.ItemsDiscarded, "%s: %lu items refused, %lu discarded\n", what,
       (ULONG)stats.ItemsRefused, (ULONG)stats.ItemsDiscarded);
    ok(stats.ThreadsPeak >= threads_at_least, "%s: the worker pool peaked at %lu threads, expected %lu or more\n",
       what, stats.ThreadsPeak, threads_at_least);
    trace("%s: worker pool peak %lu threads, %lu injected (%lu for starvation)\n", what, stats.ThreadsPeak,
          (ULONG)stats.ThreadsInjected, (ULONG)stats.StarvationInjections);
}

static void check_io_statistics(const char *what, DWORD threads_at_least)
{
    HOSTIOCP_STATISTICS stats;

    ok(get_statistics(waits.host.manager, waits.host.port, &stats) == S_OK, "%s: no statistics\n", what);
    ok(stats.CompletionsDispatched == (ULONGLONG)waits.count && !stats.CompletionsFailed,
       "%s: %lu completions dispatched, %lu failed, expected %ld\n", what, (ULONG)stats.CompletionsDispatched,
       (ULONG)stats.CompletionsFailed, waits.count);
    ok(stats.ThreadsPeak >= threads_at_least, "%s: the I/O pool peaked at %lu threads, expected %lu or more\n", what,
       stats.ThreadsPeak, threads_at_least);
    trace("%s: I/O pool peak %lu threads, %lu injected (%lu for starvation)\n", what, stats.ThreadsPeak,
          (ULONG)stats.ThreadsInjected, (ULONG)stats.StarvationInjections);
}

static void finish_waits(void)
{
    LONG i;

    for (i = 0; i < waits.count; i++)
    {
        CloseHandle(waits.waiters[i].client);
        CloseHandle(waits.waiters[i].server);
        CloseHandle(waits.waiters[i].go_on);
    }
    release_clr_host(&waits.host);
    clr->hook = record_completion;
    CloseHandle(waits.all_arrived);
    CloseHandle(waits.all_finished);
    HeapFree(GetProcessHeap(), 0, waits.waiters);
}

/* Items wait for their reads: more items than the worker pool's minimum each start a read and
 * block until it completes, all at once, before any message is written.  The read's callback
 * queues the item that lets its reader go on, as ThreadPool.UnsafeQueueNativeOverlapped does when
 * the thread pool is hosted: that item needs a thread beyond the blocked ones. */
static DWORD WINAPI let_reader_go_on(void *context)
{
    struct waiter *waiter = context;

    InterlockedIncrement(&waiter->helper_runs);
    SetEvent(waiter->go_on);
    return 0;
}

static void read_queues_its_continuation(struct fake_clr *fake, DWORD error, DWORD bytes, void *overlapped)
{
    struct waiter *waiter = CONTAINING_RECORD(overlapped, struct waiter, read.overlapped);

    (void)fake;
    record_read(waiter, error, bytes);
    queue_item(let_reader_go_on, waiter);
}

static DWORD WINAPI item_waits_for_its_read(void *context)
{
    struct waiter *waiter = context;

    InterlockedIncrement(&waiter->waits_begun);
    start_message_read(waiter);
    arrive();
    wait_on_pool_thread(waiter->go_on);
    if (InterlockedIncrement(&waits.finished) == waits.count)
        SetEvent(waits.all_finished);
    return 0;
}

static void test_items_waiting_for_reads(void)
{
    const char *what = "items waiting for reads";
    LONG i;

    if (start_waits(read_queues_its_continuation))
    {
        for (i = 0; i < waits.count; i++)
            ok(IHostThreadpoolManager_QueueUserWorkItem(waits.host.workers, item_waits_for_its_read, &waits.waiters[i],
                                                        0) == S_OK, "QueueUserWorkItem failed\n");
        ok(WaitForSingleObject(waits.all_arrived, WAIT_MS) == WAIT_OBJECT_0,
           "%s: %ld of %ld items were blocked at once\n", what, waits.arrived, waits.count);
        write_messages();
        ok(WaitForSingleObject(waits.all_finished, WAIT_MS) == WAIT_OBJECT_0, "%s: %ld of %ld items went on\n",
           what, waits.finished, waits.count);
        ok(fake_clr_wait(clr, WAIT_MS), "%s: %ld of %ld OnComplete calls returned\n", what,
           clr->calls - waits.calls_before, waits.count);
        check_waiters(what);
        check_work_statistics(what, 2 * waits.count, waits.count + 1);
        check_io_statistics(what, 1);
    }
    finish_waits();
}

/* Callbacks wait for items: more reads than the I/O pool's minimum complete, and each callback
 * queues an item and blocks until it has run; the items let them go on only once every callback
 * is blocked, so the I/O pool must add threads while items wait for them. */
static DWORD WINAPI item_waits_for_every_callback(void *context)
{
    struct waiter *waiter = context;

    InterlockedIncrement(&waiter->helper_runs);
    wait_on_pool_thread(waits.all_arrived);
    SetEvent(waiter->go_on);
    return 0;
}

static void read_waits_for_its_item(struct fake_clr *fake, DWORD error, DWORD bytes, void *overlapped)
{
    struct waiter *waiter = CONTAINING_RECORD(overlapped, struct waiter, read.overlapped);

    (void)fake;
    record_read(waiter, error, bytes);
    InterlockedIncrement(&waiter->waits_begun);
    arrive();
    queue_item(item_waits_for_every_callback, waiter);
    wait_on_pool_thread(waiter->go_on);
}

static void test_callbacks_waiting_for_items(void)
{
    const char *what = "callbacks waiting for items";
    LONG i;

    if (start_waits(read_waits_for_its_item))
    {
        for (i = 0; i < waits.count; i++)
            start_message_read(&waits.waiters[i]);
        write_messages();
        ok(WaitForSingleObject(waits.all_arrived, WAIT_MS) == WAIT_OBJECT_0,
           "%s: %ld of %ld callbacks were blocked at once\n", what, waits.arrived, waits.count);
        ok(fake_clr_wait(clr, WAIT_MS), "%s: %ld of %ld callbacks returned\n", what, clr->calls - waits.calls_before,
           waits.count);
        check_waiters(what);
        check_work_statistics(what, waits.count, 1);
        check_io_statistics(what, waits.count);
    }
    finish_waits();
}

START_TEST(io)
{
    WSADATA wsa;
    void *handler;

    handler = collect_hostiocp_trace();
    CoInitializeEx(NULL, COINIT_MULTITHREADED);
    WSAStartup(MAKEWORD(2, 2), &wsa);
    clr = fake_clr_create();
    clr->hook = record_completion;

    if (SUCCEEDED(start_manager(1)))
    {
        test_file();
        test_pipe("one at a time");
        test_close_with_pending_read();
        test_socket();
        test_foreign_packets();
        check_statistics_and_release("one at a time", 4, FAILED_COMPLETIONS_ONE_AT_A_TIME, FALSE);
    }
    /* The same through batched dequeues: error codes come from each entry's status. */
    if (SUCCEEDED(start_manager(8)))
    {
        test_pipe("batched");
        test_foreign_packets();
        check_statistics_and_release("batched", 1, FAILED_COMPLETIONS_PIPE, TRUE);
    }
    test_items_waiting_for_reads();
    test_callbacks_waiting_for_items();

    fake_clr_destroy(clr);
    WSACleanup();
    CoUninitialize();
    /* Tracing is off unless HOSTIOCP_TRACE asks for it. */
    ok(hostiocp_trace.lines == 0, "%ld trace lines without HOSTIOCP_TRACE\n", hostiocp_trace.lines);
    RemoveVectoredExceptionHandler(handler);
}
