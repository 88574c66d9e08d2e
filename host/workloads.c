/* Workloads that push real overlapped I/O through a dispatcher and verify every byte:
 * posted packets, file reads, a file copy, echo over named pipes and over TCP, and work items
 * that wait for messages through pipes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mswsock.h>
#include <psapi.h>
#include "iobench.h"

LONGLONG qpc_frequency;

enum transport { TRANSPORT_FILE, TRANSPORT_SOCKET };
enum state { STATE_READ, STATE_WRITE, STATE_ACCEPT };

struct channel
{
    HANDLE handle;
    void *io;
    enum transport transport;
};

/* One workload runs at a time. */
static struct
{
    struct run *run;
    struct channel source, target, listener;
    struct channel *servers, *clients;
    struct request *requests;
    DWORD count;
    ULONGLONG file_size;
    DWORD block;
    volatile LONG64 next_offset;
    volatile LONG clients_left;
    HANDLE clients_done;
    DWORD work_us, block_ms, block_every;
    volatile LONG callbacks;
    BOOL progress;
    struct item_chain *chains;
    volatile LONG64 next_ticket;
    DWORD io_every;
    LONG64 items_seen;           /* items run at the last look for a stall ... */
    LONGLONG items_seen_at;      /* ... and when it changed */
} work;

LONGLONG now_ticks(void)
{
    LARGE_INTEGER ticks;
    QueryPerformanceCounter(&ticks);
    return ticks.QuadPart;
}

int latency_bucket(double us)
{
    int octave;
    double fraction;

    if (us < 1.0)
        return 0;
    fraction = frexp(us, &octave);      /* us = fraction * 2^octave, fraction in [0.5, 1) */
    if (octave > LATENCY_OCTAVES)
        return LATENCY_BUCKETS - 1;
    return 1 + (octave - 1) * LATENCY_SUB_BUCKETS + (int)((fraction * 2 - 1) * LATENCY_SUB_BUCKETS);
}

double latency_bucket_midpoint_us(int bucket)
{
    int octave, sub;

    if (bucket == 0)
        return 0.5;
    octave = (bucket - 1) / LATENCY_SUB_BUCKETS;
    sub = (bucket - 1) % LATENCY_SUB_BUCKETS;
    return ldexp(1.0 + (sub + 0.5) / LATENCY_SUB_BUCKETS, octave);
}

static void raise_to(volatile LONG64 *value, LONG64 at_least)
{
    LONG64 seen = *value;

    while (at_least > seen)
    {
        LONG64 previous = InterlockedCompareExchange64(value, at_least, seen);
        if (previous == seen)
            break;
        seen = previous;
    }
}

static void record_latency(struct histogram *histogram, LONGLONG ticks)
{
    InterlockedIncrement(&histogram->counts[latency_bucket(ticks * 1e6 / qpc_frequency)]);
    raise_to(&histogram->max_ticks, ticks);
}

double latency_percentile_us(const struct histogram *histogram, double fraction)
{
    LONG64 total = 0, seen = 0;
    int i;

    for (i = 0; i < LATENCY_BUCKETS; i++)
        total += histogram->counts[i];
    for (i = 0; i < LATENCY_BUCKETS - 1; i++)
        if ((seen += histogram->counts[i]) >= total * fraction && seen)
            return min(latency_bucket_midpoint_us(i), latency_max_us(histogram));
    /* Above the top, only the largest latency is known. */
    return histogram->counts[LATENCY_BUCKETS - 1] ? latency_max_us(histogram) : 0;
}

double latency_max_us(const struct histogram *histogram)
{
    return histogram->max_ticks * 1e6 / qpc_frequency;
}

/* Counts the threads that ran a callback of this run, for the pools that do not say how many
 * threads they ran. A thread remembers the generation of the last run it counted itself in. */
static volatile LONG run_generation;
static DWORD counted_generation_slot = TLS_OUT_OF_INDEXES;

static void count_callback_thread(struct run *run)
{
    if ((LONG)(LONG_PTR)TlsGetValue(counted_generation_slot) == run->generation)
        return;
    TlsSetValue(counted_generation_slot, (void *)(LONG_PTR)run->generation);
    InterlockedIncrement(&run->callback_threads);
}

static double process_cpu_seconds(void)
{
    FILETIME created, exited, kernel, user;

    if (!GetProcessTimes(GetCurrentProcess(), &created, &exited, &kernel, &user))
        return 0;
    return (((ULONGLONG)kernel.dwHighDateTime << 32 | kernel.dwLowDateTime) +
            ((ULONGLONG)user.dwHighDateTime << 32 | user.dwLowDateTime)) / 1e7;
}

/* The time first, then the count: whoever reads the count and then the time gets a time no
 * earlier than any completion in the count. */
static void count_operation(struct run *run, LONGLONG since)
{
    LONGLONG now = now_ticks();

    record_latency(&run->latency, now - since);
    if (!run->rounds_marked)
        raise_to(&run->last_operation_at, now);
    InterlockedIncrement64(&run->operations);
}

/* A request's round ended: its client read the whole echo back.  The count goes with the time,
 * under one lock. */
static void mark_round_end(struct run *run)
{
    AcquireSRWLockExclusive(&run->round_lock);
    run->round_end.at = now_ticks();
    run->round_end.operations = run->operations;
    ReleaseSRWLockExclusive(&run->round_lock);
}

/* The end of the last round of a request, with the completions counted then, if one ended
 * after `since`.  Where a round is one completion, that is the last completion: the count is
 * read first, so that no completion in it came after the time. */
static BOOL last_round_end(struct run *run, LONGLONG since, struct part_end *end)
{
    if (run->rounds_marked)
    {
        AcquireSRWLockShared(&run->round_lock);
        *end = run->round_end;
        ReleaseSRWLockShared(&run->round_lock);
    }
    else
    {
        end->operations = run->operations;
        end->at = InterlockedCompareExchange64(&run->last_operation_at, 0, 0);
    }
    return end->at > since;
}

static struct part_end part_end_now(struct run *run)
{
    struct part_end end = { now_ticks(), run->operations };
    return end;
}

void complete_request(OVERLAPPED *overlapped, DWORD error, DWORD bytes)
{
    struct request *request = CONTAINING_RECORD(overlapped, struct request, overlapped);
    struct run *run = request->run;

    count_callback_thread(run);
    InterlockedIncrement64(&run->io_completions);
    if (!run->items_are_operations)
        count_operation(run, request->issued);
    InterlockedExchangeAdd64(&run->bytes, bytes);
    request->done(request, error, bytes);
}

static BOOL deadline_passed(struct run *run)
{
    LONGLONG deadline = InterlockedCompareExchange64(&run->deadline, 0, 0);  /* whole, on 32-bit too */

    return deadline && now_ticks() >= deadline;
}

static BOOL keep_going(struct run *run)
{
    if (run->stopping)
        return FALSE;
    if ((run->target_operations && run->operations >= run->target_operations) || deadline_passed(run))
        InterlockedExchange(&run->stopping, 1);
    return !run->stopping;
}

static void finish_request(struct request *request)
{
    if (!InterlockedDecrement(&request->run->outstanding))
        SetEvent(request->run->finished);
}

static void record_error(struct run *run, DWORD error, const char *what)
{
    if (InterlockedIncrement64(&run->errors) == 1)
        snprintf(run->detail, sizeof(run->detail), "first error: %s failed with %lu", what, error);
}

/* Once the run stops, closing the channels fails what is still pending: not an error. */
static void count_error(struct run *run, DWORD error, const char *what)
{
    if (!run->stopping)
        record_error(run, error, what);
}

/* ---- the byte pattern every transfer is checked against ---- */

static ULONGLONG pattern_word(ULONGLONG index, ULONG seed)
{
    return (index + 1) * 0x9e3779b97f4a7c15ull ^ ((ULONGLONG)seed << 32);
}

static void fill_pattern(BYTE *buffer, DWORD size, ULONGLONG first_word, ULONG seed)
{
    DWORD i;

    for (i = 0; i < size / 8; i++)
    {
        ULONGLONG word = pattern_word(first_word + i, seed);
        memcpy(buffer + i * 8, &word, 8);
    }
}

static BOOL pattern_matches(const BYTE *buffer, DWORD size, ULONGLONG first_word, ULONG seed)
{
    DWORD i;

    for (i = 0; i < size / 8; i++)
    {
        ULONGLONG word = pattern_word(first_word + i, seed);
        if (memcmp(buffer + i * 8, &word, 8))
            return FALSE;
    }
    return TRUE;
}

/* ---- issuing I/O through a dispatcher ---- */

static BOOL bind_channel(struct channel *channel, HANDLE handle, enum transport transport)
{
    struct dispatcher *d = work.run->dispatcher;

    channel->handle = handle;
    channel->transport = transport;
    channel->io = NULL;
    return d->ops->bind(d, handle, &channel->io);
}

static void close_channel(struct channel *channel)
{
    struct dispatcher *d = work.run->dispatcher;

    if (!channel->handle)
        return;
    if (channel->transport == TRANSPORT_SOCKET)
        closesocket((SOCKET)channel->handle);
    else
        CloseHandle(channel->handle);
    if (channel->io)
        d->ops->unbind(d, channel->io);
    channel->handle = NULL;
}

static void prepare_io(struct request *request, struct channel *channel)
{
    struct dispatcher *d = request->run->dispatcher;

    ZeroMemory(&request->overlapped, sizeof(request->overlapped));
    request->overlapped.Offset = (DWORD)request->offset;
    request->overlapped.OffsetHigh = (DWORD)(request->offset >> 32);
    request->channel = channel;
    d->ops->prepare(d, request);  /* the CLR calls InitializeHostOverlapped for every request */
    d->ops->before_io(channel->io);
    request->issued = now_ticks();
}

static BOOL io_started(struct request *request, BOOL ok, DWORD error, const char *what)
{
    struct dispatcher *d = request->run->dispatcher;

    if (ok || error == ERROR_IO_PENDING || error == WSA_IO_PENDING)
        return TRUE;
    d->ops->not_pending(request->channel->io);
    count_error(request->run, error, what);
    return FALSE;
}

static BOOL start_read(struct request *request, struct channel *channel, BYTE *buffer, DWORD size)
{
    prepare_io(request, channel);
    if (channel->transport == TRANSPORT_SOCKET)
    {
        WSABUF wsabuf = { size, (char *)buffer };
        DWORD flags = 0;
        int rc = WSARecv((SOCKET)channel->handle, &wsabuf, 1, NULL, &flags, &request->overlapped, NULL);
        return io_started(request, !rc, rc ? (DWORD)WSAGetLastError() : 0, "WSARecv");
    }
    {
        BOOL ok = ReadFile(channel->handle, buffer, size, NULL, &request->overlapped);
        return io_started(request, ok, ok ? 0 : GetLastError(), "ReadFile");
    }
}

static BOOL start_write(struct request *request, struct channel *channel, const BYTE *buffer, DWORD size)
{
    prepare_io(request, channel);
    if (channel->transport == TRANSPORT_SOCKET)
    {
        WSABUF wsabuf = { size, (char *)buffer };
        int rc = WSASend((SOCKET)channel->handle, &wsabuf, 1, NULL, 0, &request->overlapped, NULL);
        return io_started(request, !rc, rc ? (DWORD)WSAGetLastError() : 0, "WSASend");
    }
    {
        BOOL ok = WriteFile(channel->handle, buffer, size, NULL, &request->overlapped);
        return io_started(request, ok, ok ? 0 : GetLastError(), "WriteFile");
    }
}

/* ---- posted packets: pure dispatch cost, or a callback that works or blocks ---- */

static volatile ULONG work_sink;
static double work_loops_per_us;

static void cpu_work(DWORD us)
{
    ULONG i, loops = (ULONG)(us * work_loops_per_us), value = work_sink;

    for (i = 0; i < loops; i++)
        value = value * 1664525 + 1013904223;
    work_sink = value;
}

/* How many loops of cpu_work make a microsecond on this machine. */
static void calibrate_work(void)
{
    LONGLONG start, ticks;

    if (work_loops_per_us)
        return;
    work_loops_per_us = 1000;
    start = now_ticks();
    cpu_work(20000);
    ticks = now_ticks() - start;
    work_loops_per_us = 1000 * 20000 / (ticks * 1e6 / qpc_frequency);
}

static void callback_load(void)
{
    if (work.work_us)
        cpu_work(work.work_us);
    if (work.block_ms && InterlockedIncrement(&work.callbacks) % work.block_every == 0)
        Sleep(work.block_ms);  /* the workload: a callback that blocks */
}

static void post_again(struct request *request)
{
    struct dispatcher *d = request->run->dispatcher;

    if (!keep_going(request->run))
    {
        finish_request(request);
        return;
    }
    d->ops->prepare(d, request);
    request->issued = now_ticks();
    if (!d->ops->post(d, request))
    {
        count_error(request->run, GetLastError(), "posting");
        finish_request(request);
    }
}

static void posted_done(struct request *request, DWORD error, DWORD bytes)
{
    (void)bytes;
    callback_load();
    if (error)
        count_error(request->run, error, "a posted packet");
    post_again(request);
}

static BOOL start_posted(void)
{
    DWORD i;

    for (i = 0; i < work.count; i++)
    {
        work.requests[i].done = posted_done;
        post_again(&work.requests[i]);
    }
    return TRUE;
}

/* ---- files ---- */

static HANDLE create_pattern_file(ULONGLONG size, WCHAR *path)
{
    WCHAR dir[MAX_PATH];
    BYTE *chunk = malloc(1 << 20);
    ULONGLONG done;
    HANDLE file;
    DWORD written;

    GetTempPathW(MAX_PATH, dir);
    GetTempFileNameW(dir, L"hio", 0, path);
    file = CreateFileW(path, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, 0, NULL);
    for (done = 0; file != INVALID_HANDLE_VALUE && done < size; done += written)
    {
        DWORD length = (DWORD)min(size - done, (ULONGLONG)(1 << 20));
        fill_pattern(chunk, length, done / 8, 0);
        if (!WriteFile(file, chunk, length, &written, NULL))
            break;
    }
    if (file != INVALID_HANDLE_VALUE)
        CloseHandle(file);
    free(chunk);
    return CreateFileW(path, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING,
                       FILE_FLAG_OVERLAPPED | FILE_FLAG_DELETE_ON_CLOSE, NULL);
}

static BOOL next_block(struct request *request, BOOL wrap)
{
    LONG64 offset = InterlockedExchangeAdd64(&work.next_offset, work.block);

    if (!wrap && (ULONGLONG)offset >= work.file_size)
        return FALSE;
    request->offset = (ULONGLONG)offset % work.file_size;
    return TRUE;
}

static void file_read_done(struct request *request, DWORD error, DWORD bytes)
{
    if (error || bytes != work.block)
        count_error(request->run, error ? error : ERROR_HANDLE_EOF, "a file read");
    else if (!pattern_matches(request->buffer, bytes, request->offset / 8, 0))
        InterlockedIncrement64(&request->run->verify_failures);
    if (keep_going(request->run) && next_block(request, TRUE) &&
        start_read(request, &work.source, request->buffer, work.block))
        return;
    finish_request(request);
}

static void file_copy_done(struct request *request, DWORD error, DWORD bytes)
{
    if (error || bytes != work.block)
    {
        count_error(request->run, error ? error : ERROR_HANDLE_EOF, request->state == STATE_READ ? "a read" : "a write");
        finish_request(request);
        return;
    }
    if (request->state == STATE_READ)
    {
        if (!pattern_matches(request->buffer, bytes, request->offset / 8, 0))
            InterlockedIncrement64(&request->run->verify_failures);
        request->state = STATE_WRITE;
        if (start_write(request, &work.target, request->buffer, bytes))
            return;
    }
    else
    {
        request->state = STATE_READ;
        if (next_block(request, FALSE) && start_read(request, &work.source, request->buffer, work.block))
            return;
    }
    finish_request(request);
}

static BOOL start_file(BOOL copy)
{
    WCHAR source[MAX_PATH], target[MAX_PATH];
    HANDLE file = create_pattern_file(work.file_size, source);
    DWORD i;

    if (file == INVALID_HANDLE_VALUE || !bind_channel(&work.source, file, TRANSPORT_FILE))
        return FALSE;
    if (copy)
    {
        lstrcpyW(target, source);
        lstrcatW(target, L".copy");
        file = CreateFileW(target, GENERIC_READ | GENERIC_WRITE, 0, NULL, CREATE_ALWAYS,
                           FILE_FLAG_OVERLAPPED | FILE_FLAG_DELETE_ON_CLOSE, NULL);
        if (file == INVALID_HANDLE_VALUE || !bind_channel(&work.target, file, TRANSPORT_FILE))
            return FALSE;
    }
    for (i = 0; i < work.count; i++)
    {
        struct request *request = &work.requests[i];

        request->done = copy ? file_copy_done : file_read_done;
        request->state = STATE_READ;
        if (!next_block(request, !copy) || !start_read(request, &work.source, request->buffer, work.block))
            finish_request(request);
    }
    return TRUE;
}

/* Reads the copy back on this thread and checks it against the pattern. */
static void verify_copy(struct run *run)
{
    BYTE *buffer = malloc(1 << 20);
    ULONGLONG done;
    OVERLAPPED overlapped;
    DWORD got;
    HANDLE event = CreateEventW(NULL, TRUE, FALSE, NULL);

    for (done = 0; done < work.file_size; done += got)
    {
        ZeroMemory(&overlapped, sizeof(overlapped));
        overlapped.Offset = (DWORD)done;
        overlapped.OffsetHigh = (DWORD)(done >> 32);
        /* Low bit set on the event: the completion is not queued to the port. */
        overlapped.hEvent = (HANDLE)((ULONG_PTR)event | 1);
        got = 0;
        if (!ReadFile(work.target.handle, buffer, 1 << 20, NULL, &overlapped) && GetLastError() != ERROR_IO_PENDING)
            break;
        if (!GetOverlappedResult(work.target.handle, &overlapped, &got, TRUE) || !got)
            break;
        if (!pattern_matches(buffer, got, done / 8, 0))
            InterlockedIncrement64(&run->verify_failures);
    }
    if (done != work.file_size)
        InterlockedIncrement64(&run->verify_failures);
    snprintf(run->detail, sizeof(run->detail), "copied and re-read %llu bytes", (unsigned long long)done);
    CloseHandle(event);
    free(buffer);
}

/* ---- echo over named pipes and TCP ---- */

/* A client sends a message and reads the echo back in full; a server echoes what it reads. */
static void echo_client_done(struct request *request, DWORD error, DWORD bytes);

static BOOL echo_client_send(struct request *request)
{
    request->state = STATE_WRITE;
    request->have = 0;
    fill_pattern(request->buffer, request->size, (ULONGLONG)request->round * (request->size / 8), request->id);
    return start_write(request, request->channel, request->buffer, request->size);
}

static void client_finished(struct request *request)
{
    finish_request(request);
    if (!InterlockedDecrement(&work.clients_left))
        SetEvent(work.clients_done);
}

static void echo_client_done(struct request *request, DWORD error, DWORD bytes)
{
    if (error || !bytes)
    {
        count_error(request->run, error ? error : ERROR_BROKEN_PIPE, "a client transfer");
        client_finished(request);
        return;
    }
    request->have += bytes;
    if (request->state == STATE_WRITE && request->have < request->size)
    {
        if (!start_write(request, request->channel, request->buffer + request->have, request->size - request->have))
            client_finished(request);
        return;
    }
    if (request->state == STATE_WRITE)
    {
        request->state = STATE_READ;
        request->have = 0;
        memset(request->buffer, 0, request->size);
    }
    else if (request->have == request->size)
    {
        if (!pattern_matches(request->buffer, request->size, (ULONGLONG)request->round * (request->size / 8), request->id))
            InterlockedIncrement64(&request->run->verify_failures);
        request->round++;
        mark_round_end(request->run);
        if (!keep_going(request->run) || !echo_client_send(request))
            client_finished(request);
        return;
    }
    if (!start_read(request, request->channel, request->buffer + request->have, request->size - request->have))
        client_finished(request);
}

static void echo_server_done(struct request *request, DWORD error, DWORD bytes)
{
    callback_load();
    if (error || !bytes)
    {
        /* The client went away: the normal end of a connection. */
        if (!request->run->stopping && work.clients_left)
            count_error(request->run, error ? error : ERROR_BROKEN_PIPE, "a server transfer");
        finish_request(request);
        return;
    }
    request->have += bytes;
    if (request->state == STATE_READ && request->have == request->size)
    {
        request->state = STATE_WRITE;
        request->have = 0;
    }
    else if (request->state == STATE_WRITE && request->have == request->size)
    {
        request->state = STATE_READ;
        request->have = 0;
    }
    if (request->state == STATE_WRITE
            ? start_write(request, request->channel, request->buffer + request->have, request->size - request->have)
            : start_read(request, request->channel, request->buffer + request->have, request->size - request->have))
        return;
    finish_request(request);
}

static void start_echo_pair(struct request *server, struct request *client)
{
    server->done = echo_server_done;
    server->state = STATE_READ;
    server->have = 0;
    if (!start_read(server, server->channel, server->buffer, server->size))
        finish_request(server);
    client->done = echo_client_done;
    if (!echo_client_send(client))
        client_finished(client);
}

/* Thousands of connections take seconds to set up: say how far it got. */
static void report_connections(DWORD made, DWORD total)
{
    if (work.progress && (made % 1000 == 0 || made == total))
        fprintf(stderr, "\r  connected %lu of %lu%s", made, total, made == total ? "\n" : "");
}

static BOOL start_pipes(void)
{
    DWORD i, pairs = work.count / 2;

    for (i = 0; i < pairs; i++)
    {
        WCHAR name[96];
        HANDLE server, client;

        swprintf(name, ARRAYSIZE(name), L"\\\\.\\pipe\\hostiocp-echo-%lu-%lu", GetCurrentProcessId(), i);
        server = CreateNamedPipeW(name, PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED, PIPE_TYPE_BYTE | PIPE_WAIT,
                                  1, work.block, work.block, 0, NULL);
        client = CreateFileW(name, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, FILE_FLAG_OVERLAPPED, NULL);
        if (server == INVALID_HANDLE_VALUE || client == INVALID_HANDLE_VALUE ||
            !bind_channel(&work.servers[i], server, TRANSPORT_FILE) ||
            !bind_channel(&work.clients[i], client, TRANSPORT_FILE))
            return FALSE;
        work.requests[2 * i].channel = &work.servers[i];
        work.requests[2 * i + 1].channel = &work.clients[i];
        report_connections(i + 1, pairs);
    }
    for (i = 0; i < pairs; i++)
        start_echo_pair(&work.requests[2 * i], &work.requests[2 * i + 1]);
    return TRUE;
}

static void accept_done(struct request *request, DWORD error, DWORD bytes)
{
    SOCKET listener = (SOCKET)work.listener.handle;
    DWORD pair = request->id;

    (void)bytes;
    if (error || setsockopt(request->accepted, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT, (char *)&listener,
                            sizeof(listener)) ||
        !bind_channel(&work.servers[pair], (HANDLE)request->accepted, TRANSPORT_SOCKET))
    {
        count_error(request->run, error ? error : (DWORD)WSAGetLastError(), "AcceptEx");
        closesocket(request->accepted);
        finish_request(request);
        client_finished(&work.requests[2 * pair + 1]);
        return;
    }
    request->channel = &work.servers[pair];
    start_echo_pair(request, &work.requests[2 * pair + 1]);
}

static BOOL start_tcp(void)
{
    struct sockaddr_in address = { 0 };
    int length = sizeof(address);
    DWORD i, pairs = work.count / 2;
    SOCKET listener = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0, WSA_FLAG_OVERLAPPED);

    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (listener == INVALID_SOCKET || bind(listener, (struct sockaddr *)&address, sizeof(address)) ||
        listen(listener, SOMAXCONN) || getsockname(listener, (struct sockaddr *)&address, &length) ||
        !bind_channel(&work.listener, (HANDLE)listener, TRANSPORT_SOCKET))
        return FALSE;
    for (i = 0; i < pairs; i++)
    {
        struct request *request = &work.requests[2 * i];
        DWORD received;
        BOOL ok;

        request->done = accept_done;
        request->accepted = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0, WSA_FLAG_OVERLAPPED);
        prepare_io(request, &work.listener);
        ok = AcceptEx(listener, request->accepted, request->buffer, 0, sizeof(struct sockaddr_in) + 16,
                      sizeof(struct sockaddr_in) + 16, &received, &request->overlapped);
        if (!io_started(request, ok, ok ? 0 : (DWORD)WSAGetLastError(), "AcceptEx"))
            return FALSE;
    }
    for (i = 0; i < pairs; i++)
    {
        SOCKET client = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0, WSA_FLAG_OVERLAPPED);

        /* Bound before it connects: the accept may complete on a pool thread at once. */
        if (client == INVALID_SOCKET || !bind_channel(&work.clients[i], (HANDLE)client, TRANSPORT_SOCKET))
            return FALSE;
        work.requests[2 * i + 1].channel = &work.clients[i];
        if (connect(client, (struct sockaddr *)&address, sizeof(address)))
            return FALSE;
        report_connections(i + 1, pairs);
    }
    return TRUE;
}

/* ---- work items: managed work as the CLR queues it to IHostThreadpoolManager ---- */

/* `concurrency` chains of items, one item of each in flight: an item spins and blocks as
 * --work-us, --block-ms and --block-every say, and then queues its chain's next.  One item in
 * every io_every waits for a message through its chain's pipe pair, both ends bound to the CLR's
 * port: the read's OnComplete checks the bytes and queues the item that lets the waiting item
 * go on, as ThreadPool.UnsafeQueueNativeOverlapped does when the thread pool is hosted, and the
 * write's OnComplete queues an item and blocks until it has run.  So items wait for completions
 * and completions wait for items, and neither pool may run out of threads for the other. */

/* A wait for another item or a completion that takes this long is an error, not a hang. */
#define ITEM_WAIT_MS 30000

struct item_chain
{
    DWORD index;
    LONG64 ticket;             /* the item in flight: its number among every chain's items, from 1 */
    LONGLONG queued;           /* when it was queued */
    struct request *read, *write;
    struct channel *server, *client;
    HANDLE read_seen;          /* auto-reset: the item that the read's completion queued ran */
    HANDLE write_item_ran;     /* auto-reset: the item that the write's callback waits for ran */
    HANDLE write_seen;         /* auto-reset: the write's callback is done */
};

LONG64 work_io_completions_expected(LONG64 chain_items, DWORD io_every)
{
    return io_every ? 2 * (chain_items / io_every) : 0;
}

/* Flags 0, as the CLR passes for managed work (doc/clr-threadpool-contract.md). */
static BOOL queue_item(LPTHREAD_START_ROUTINE function, void *context)
{
    struct run *run = work.run;
    HRESULT hr;

    /* Counted first: the item may run, and the run end, before the call returns. */
    InterlockedIncrement64(&run->items_queued);
    if (SUCCEEDED(hr = IHostThreadpoolManager_QueueUserWorkItem(run->dispatcher->workers, function, context, 0)))
        return TRUE;
    InterlockedDecrement64(&run->items_queued);
    record_error(run, (DWORD)hr, "QueueUserWorkItem");
    return FALSE;
}

/* Waits for all of the events at once. */
static void wait_for_signals(DWORD count, const HANDLE *events, const char *what)
{
    if (count && WaitForMultipleObjects(count, events, TRUE, ITEM_WAIT_MS) >= WAIT_OBJECT_0 + count)
        record_error(work.run, ERROR_TIMEOUT, what);
}

/* The item of a chain's next number; none once --operations items were numbered, or without
 * --operations once the duration is over, nor after an error: a lost item or completion costs
 * ITEM_WAIT_MS each time it is waited for. */
static BOOL take_ticket(struct item_chain *chain)
{
    struct run *run = work.run;
    LONG64 ticket;

    if (run->stopping || run->errors || (!run->target_operations && deadline_passed(run)))
        return FALSE;
    ticket = InterlockedIncrement64(&work.next_ticket);
    if (run->target_operations && ticket > run->target_operations)
        return FALSE;
    chain->ticket = ticket;
    return TRUE;
}

static DWORD WINAPI run_chain_item(void *context);

static void queue_chain_item(struct item_chain *chain)
{
    if (take_ticket(chain))
    {
        chain->queued = now_ticks();
        if (queue_item(run_chain_item, chain))
            return;
    }
    finish_request(chain->read);
}

static DWORD WINAPI let_reader_go_on(void *context)
{
    struct item_chain *chain = context;

    InterlockedIncrement64(&work.run->items_run);
    SetEvent(chain->read_seen);
    return 0;
}

static void message_read(struct request *request, DWORD error, DWORD bytes)
{
    struct item_chain *chain = &work.chains[request->id];

    if (error || bytes != work.block)
        record_error(request->run, error ? error : ERROR_MORE_DATA, "a message read");
    else if (!pattern_matches(request->buffer, bytes, chain->ticket * (work.block / 8), chain->index))
        InterlockedIncrement64(&request->run->verify_failures);
    if (!queue_item(let_reader_go_on, chain))
        SetEvent(chain->read_seen);  /* counted as an error: the item need not wait */
}

static DWORD WINAPI let_writer_go_on(void *context)
{
    struct item_chain *chain = context;

    InterlockedIncrement64(&work.run->items_run);
    SetEvent(chain->write_item_ran);
    return 0;
}

static void message_written(struct request *request, DWORD error, DWORD bytes)
{
    struct item_chain *chain = &work.chains[request->id];

    if (error || bytes != work.block)
        record_error(request->run, error ? error : ERROR_WRITE_FAULT, "a message write");
    if (queue_item(let_writer_go_on, chain))
        wait_for_signals(1, &chain->write_item_ran, "a write's callback waiting for its item");
    SetEvent(chain->write_seen);
}

/* One message of the item's own pattern, read on the server end as the client end writes it. */
static void wait_for_message(struct item_chain *chain)
{
    HANDLE seen[2] = { chain->read_seen, chain->write_seen };
    BOOL reading, writing = FALSE;

    fill_pattern(chain->write->buffer, work.block, chain->ticket * (work.block / 8), chain->index);
    memset(chain->read->buffer, 0, work.block);
    if ((reading = start_read(chain->read, chain->server, chain->read->buffer, work.block)) &&
        !(writing = start_write(chain->write, chain->client, chain->write->buffer, work.block)))
        CancelIoEx(chain->server->handle, &chain->read->overlapped);  /* it completes, as an error */
    wait_for_signals(writing ? 2 : reading ? 1 : 0, seen, "an item waiting for its message");
}

static DWORD WINAPI run_chain_item(void *context)
{
    struct item_chain *chain = context;

    InterlockedIncrement64(&work.run->items_run);
    count_operation(work.run, chain->queued);
    callback_load();
    if (work.io_every && chain->ticket % work.io_every == 0)
        wait_for_message(chain);
    queue_chain_item(chain);
    return 0;
}

/* Message mode: a read takes one whole message, so that each message is one completion. */
static BOOL open_message_pipes(struct item_chain *chain)
{
    WCHAR name[96];
    HANDLE server, client;

    swprintf(name, ARRAYSIZE(name), L"\\\\.\\pipe\\hostiocp-work-%lu-%lu", GetCurrentProcessId(), chain->index);
    server = CreateNamedPipeW(name, PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED,
                              PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE | PIPE_WAIT, 1, work.block, work.block, 0,
                              NULL);
    if (server == INVALID_HANDLE_VALUE || !bind_channel(chain->server, server, TRANSPORT_FILE))
        return FALSE;
    client = CreateFileW(name, GENERIC_WRITE, 0, NULL, OPEN_EXISTING, FILE_FLAG_OVERLAPPED, NULL);
    return client != INVALID_HANDLE_VALUE && bind_channel(chain->client, client, TRANSPORT_FILE);
}

static BOOL set_up_chain(struct item_chain *chain, DWORD index)
{
    chain->index = index;
    chain->read = &work.requests[2 * index];
    chain->write = &work.requests[2 * index + 1];
    chain->read->done = message_read;
    chain->write->done = message_written;
    chain->server = &work.servers[index];
    chain->client = &work.clients[index];
    chain->read_seen = CreateEventW(NULL, FALSE, FALSE, NULL);
    chain->write_item_ran = CreateEventW(NULL, FALSE, FALSE, NULL);
    chain->write_seen = CreateEventW(NULL, FALSE, FALSE, NULL);
    if (!chain->read_seen || !chain->write_item_ran || !chain->write_seen)
        return FALSE;
    return !work.io_every || open_message_pipes(chain);
}

/* Every chain is set up before the first item runs; if one cannot be, none starts. */
static BOOL start_work_items(void)
{
    struct run *run = work.run;
    DWORD i, chains = work.count / 2;

    work.chains = calloc(chains, sizeof(*work.chains));
    if (!run->dispatcher->workers)
        SetLastError(ERROR_NOT_SUPPORTED);  /* no IHostThreadpoolManager from GetHostManager */
    for (i = 0; run->dispatcher->workers && work.chains && i < chains; i++)
        if (!set_up_chain(&work.chains[i], i))
            break;
    if (!work.chains || i < chains)
    {
        InterlockedExchange(&run->outstanding, 0);
        SetEvent(run->finished);
        return FALSE;
    }
    for (i = 0; i < chains; i++)
        queue_chain_item(&work.chains[i]);
    return TRUE;
}

/* No item ran for ITEM_WAIT_MS beyond the longest block while chains still go: one was lost. */
static BOOL items_stalled(struct run *run)
{
    LONG64 ran = InterlockedCompareExchange64(&run->items_run, 0, 0);
    LONGLONG now = now_ticks();

    if (ran != work.items_seen || !work.items_seen_at)
    {
        work.items_seen = ran;
        work.items_seen_at = now;
        return FALSE;
    }
    if ((now - work.items_seen_at) * 1000 / qpc_frequency < ITEM_WAIT_MS + (LONGLONG)work.block_ms)
        return FALSE;
    record_error(run, ERROR_TIMEOUT, "waiting for an item of a chain to run");
    InterlockedExchange(&run->stopping, 1);  /* the chains that still go end with their items in flight */
    return TRUE;
}

static void free_chains(void)
{
    DWORD i;

    for (i = 0; work.chains && i < work.count / 2; i++)
    {
        if (work.chains[i].read_seen)
            CloseHandle(work.chains[i].read_seen);
        if (work.chains[i].write_item_ran)
            CloseHandle(work.chains[i].write_item_ran);
        if (work.chains[i].write_seen)
            CloseHandle(work.chains[i].write_seen);
    }
    free(work.chains);
}

/* ---- running one ---- */

BOOL workload_known(const char *name)
{
    static const char *const names[] = { "posted", "file-read", "file-copy", "pipe", "tcp" };
    size_t i;

    for (i = 0; i < ARRAYSIZE(names); i++)
        if (!strcmp(name, names[i]))
            return TRUE;
    return FALSE;
}

static void print_progress(struct run *run, LONGLONG start)
{
    double seconds = (now_ticks() - start) / (double)qpc_frequency;

    fprintf(stderr, "\r  %-10s %6.1f s  %12lld completions  %10.0f/s  %lld errors ",
            "running", seconds, (long long)run->operations, seconds > 0 ? run->operations / seconds : 0.0,
            (long long)run->errors);
}

static void init_qpc_frequency(void)
{
    LARGE_INTEGER frequency;

    if (qpc_frequency)
        return;
    QueryPerformanceFrequency(&frequency);
    qpc_frequency = frequency.QuadPart;
}

static BOOL is_echo(const char *name)
{
    return !strcmp(name, "pipe") || !strcmp(name, "tcp");
}

static BOOL is_work(const char *name)
{
    return !strcmp(name, WORK_WORKLOAD);
}

/* The shared state of one run and its requests; an echo workload has a client and a server
 * request for each connection, the work workload a read and a write for each chain. */
static void set_up_work(struct dispatcher *d, const struct workload_options *options, struct run *run)
{
    BOOL echo = is_echo(options->name), pairs = echo || is_work(options->name);
    DWORD i;

    ZeroMemory(run, sizeof(*run));
    ZeroMemory(&work, sizeof(work));
    run->dispatcher = d;
    run->finished = CreateEventW(NULL, TRUE, FALSE, NULL);
    if (counted_generation_slot == TLS_OUT_OF_INDEXES)
        counted_generation_slot = TlsAlloc();
    run->generation = InterlockedIncrement(&run_generation);
    work.run = run;
    work.block = options->block;
    work.file_size = options->file_size - options->file_size % options->block;
    work.count = pairs ? max(options->concurrency, 1) * 2 : max(options->concurrency, 1);
    work.clients_left = echo ? work.count / 2 : 0;
    work.clients_done = CreateEventW(NULL, TRUE, FALSE, NULL);
    work.work_us = options->work_us;
    work.block_ms = options->block_ms;
    work.block_every = max(options->block_every, 1);
    work.progress = options->progress;
    work.io_every = options->io_every;
    run->items_are_operations = is_work(options->name);
    InitializeSRWLock(&run->round_lock);
    run->rounds_marked = echo;
    if (work.work_us)
        calibrate_work();
    work.requests = calloc(work.count, sizeof(*work.requests));
    work.servers = calloc(work.count, sizeof(*work.servers));
    work.clients = calloc(work.count, sizeof(*work.clients));
    for (i = 0; i < work.count; i++)
    {
        work.requests[i].run = run;
        work.requests[i].id = pairs ? i / 2 : i;
        work.requests[i].size = work.block;
        work.requests[i].buffer = malloc(work.block);
    }
    run->outstanding = is_work(options->name) ? work.count / 2 : work.count;  /* a chain counts as its read */
    run->target_operations = options->operations;
}

static BOOL start_named_workload(const char *name)
{
    if (!strcmp(name, "posted"))
        return start_posted();
    if (!strcmp(name, "file-read") || !strcmp(name, "file-copy"))
        return start_file(!strcmp(name, "file-copy"));
    if (!strcmp(name, "pipe"))
        return start_pipes();
    if (!strcmp(name, "tcp"))
        return start_tcp();
    if (is_work(name))
        return start_work_items();
    return FALSE;
}

/* Waits for the run to end, or, given a time, at most until then; TRUE once it ended (or its
 * items stalled). */
static BOOL wait_for_end(struct run *run, const struct workload_options *options, HANDLE ended, LONGLONG until,
                         LONGLONG start)
{
    for (;;)
    {
        DWORD ms = 1000;

        if (until)
        {
            LONGLONG left = until - now_ticks();

            if (left <= 0)
                return FALSE;
            ms = (DWORD)min(1000, (left * 1000 + qpc_frequency - 1) / qpc_frequency);
        }
        if (WaitForSingleObject(ended, ms) == WAIT_OBJECT_0)
            return TRUE;
        if (options->progress)
            print_progress(run, start);
        if (run->items_are_operations && items_stalled(run))
            return TRUE;
    }
}

/* Waits out the warm-up and the run, and gives the measured part's two ends.  After a warm-up
 * they are alike: the last round of a request that had ended when the warm-up was over, and the
 * last that had ended at the deadline (or when the run ended before it), each with the
 * completions counted then; or, with no round ended in the warm-up, those two moments
 * themselves.  Callbacks that block alike end their rounds in bursts, and a part that began
 * between bursts and ended on one, or the other way round, would be off by a burst (with 64
 * callbacks of 50 ms, 2.5 % of a 2 s run); an echo's round is four completions, its ends the
 * reads of the echo.  Without a warm-up the part runs from the start to the run's end. */
static void wait_for_run(struct run *run, const struct workload_options *options, LONGLONG start,
                         struct part_end *from, struct part_end *to)
{
    /* Echo clients end by themselves; then closing them ends the servers' reads. */
    HANDLE ended = is_echo(options->name) ? work.clients_done : run->finished;
    BOOL by_rounds = FALSE, over;

    from->at = start;
    from->operations = 0;
    if (options->warmup > 0)
    {
        /* The warm-up is a phase of the run: its completions are not measured. */
        WaitForSingleObject(ended, (DWORD)(options->warmup * 1000));
        if (!(by_rounds = last_round_end(run, start, from)))
            *from = part_end_now(run);
        ZeroMemory(&run->latency, sizeof(run->latency));
    }
    run->cpu_operations = -run->operations;
    run->cpu_seconds = -process_cpu_seconds();
    over = wait_for_end(run, options, ended, options->warmup > 0 ? run->deadline : 0, from->at);
    if (!by_rounds || !last_round_end(run, from->at, to))
        *to = part_end_now(run);
    run->cpu_seconds += process_cpu_seconds();
    run->cpu_operations += run->operations;
    if (!over)
        wait_for_end(run, options, ended, 0, from->at);
}

static void close_echo_clients(struct run *run)
{
    DWORD i;

    InterlockedExchange(&run->stopping, 1);
    for (i = 0; i < work.count / 2; i++)
        close_channel(&work.clients[i]);
    WaitForSingleObject(run->finished, 30000);
}

static void record_peak_working_set(struct run *run)
{
    PROCESS_MEMORY_COUNTERS memory;

    memory.cb = sizeof(memory);
    if (GetProcessMemoryInfo(GetCurrentProcess(), &memory, sizeof(memory)))
        run->peak_working_set = memory.PeakWorkingSetSize;
}

static void close_channels(void)
{
    DWORD i;

    for (i = 0; i < work.count; i++)
    {
        close_channel(&work.servers[i]);
        close_channel(&work.clients[i]);
    }
    close_channel(&work.source);
    close_channel(&work.target);
    close_channel(&work.listener);
}

BOOL run_workload(struct dispatcher *d, const struct workload_options *options, struct run *run)
{
    LONGLONG start;
    struct part_end from, to;
    BOOL ok;

    init_qpc_frequency();
    set_up_work(d, options, run);
    if (!d->ops->start(d))
    {
        if (!d->error[0])
            snprintf(d->error, sizeof(d->error), "%s could not start: error %lu", d->ops->name, GetLastError());
        return FALSE;
    }
    if (!(ok = start_named_workload(options->name)))
    {
        snprintf(d->error, sizeof(d->error), "setting up the %s workload failed: error %lu", options->name,
                 GetLastError());
        InterlockedExchange(&run->stopping, 1);
    }
    /* The warm-up and the measured part begin once the workload is set up: thousands of
     * connections, or many threads starting, can take seconds. */
    start = now_ticks();
    if (options->duration > 0)
        InterlockedExchange64(&run->deadline,
                              start + (LONGLONG)((options->warmup + options->duration) * qpc_frequency));
    wait_for_run(run, options, start, &from, &to);
    run->measured_operations = to.operations - from.operations;
    if (is_echo(options->name))
        close_echo_clients(run);
    if (options->progress)
    {
        print_progress(run, from.at);
        fputc('\n', stderr);
    }
    run->seconds = (to.at - from.at) / (double)qpc_frequency;
    if (!strcmp(options->name, "file-copy") && ok)
        verify_copy(run);
    record_peak_working_set(run);
    close_channels();
    d->ops->stop(d);
    return ok && run->outstanding == 0;
}

void free_run(struct run *run)
{
    DWORD i;

    for (i = 0; i < work.count; i++)
        free(work.requests[i].buffer);
    free_chains();
    free(work.requests);
    free(work.servers);
    free(work.clients);
    CloseHandle(work.clients_done);
    CloseHandle(run->finished);
    ZeroMemory(&work, sizeof(work));
}

/* ---- the blocking storm ---- */

/* Each storm completion is a one-byte read on a pipe of its own, completed by a synchronous
 * write on the other end, so that every dispatcher sees it, with or without a port; for a pool
 * of work items, it is a work item queued at that moment. */
enum storm_request_state { STORM_ISSUED, STORM_TAKEN, STORM_NEW };

static struct
{
    volatile LONG *states;
    HANDLE *writers;
    LONGLONG *issued;
    HANDLE taken, new_done;
    volatile LONG blocked_now;
    volatile LONG ending;
    DWORD block_ms;
    LONGLONG new_dispatched;
    DWORD posted;                    /* work items queued: the others are never dispatched */
} storm;

static void storm_done(struct request *request, DWORD error, DWORD bytes)
{
    (void)bytes;
    /* Closing the pipes at the end completes the reads never written to. */
    if (error || storm.ending)
    {
        finish_request(request);
        return;
    }
    if (InterlockedCompareExchange(&storm.states[request->id], STORM_TAKEN, STORM_ISSUED) == STORM_ISSUED)
    {
        InterlockedIncrement(&storm.blocked_now);
        SetEvent(storm.taken);
        Sleep(storm.block_ms);  /* the storm: a callback that blocks */
        InterlockedDecrement(&storm.blocked_now);
    }
    else
    {
        storm.new_dispatched = now_ticks();
        SetEvent(storm.new_done);
    }
    finish_request(request);
}

static BOOL set_up_storm_pipes(const struct dispatcher *d)
{
    DWORD i;

    for (i = 0; i < work.count; i++)
        work.requests[i].done = storm_done;
    if (d->ops->work_items)
        return TRUE;
    for (i = 0; i < work.count; i++)
    {
        WCHAR name[96];
        HANDLE server;

        swprintf(name, ARRAYSIZE(name), L"\\\\.\\pipe\\hostiocp-storm-%lu-%lu", GetCurrentProcessId(), i);
        server = CreateNamedPipeW(name, PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED, PIPE_TYPE_BYTE | PIPE_WAIT,
                                  1, 64, 64, 0, NULL);
        storm.writers[i] = CreateFileW(name, GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
        if (server == INVALID_HANDLE_VALUE || storm.writers[i] == INVALID_HANDLE_VALUE ||
            !bind_channel(&work.servers[i], server, TRANSPORT_FILE))
            return FALSE;
        if (!start_read(&work.requests[i], &work.servers[i], work.requests[i].buffer, 1))
            return FALSE;
    }
    return TRUE;
}

static BOOL complete_storm_read(DWORD i)
{
    struct request *request = &work.requests[i];
    struct dispatcher *d = request->run->dispatcher;
    DWORD written;

    storm.issued[i] = request->issued = now_ticks();
    if (!d->ops->work_items)
        return WriteFile(storm.writers[i], "s", 1, &written, NULL);
    d->ops->prepare(d, request);
    if (d->ops->post(d, request))
    {
        storm.posted++;
        return TRUE;
    }
    return FALSE;
}

/* Completes reads one at a time while each is taken within taken_within_ms; the first one not
 * taken becomes the new completion (unless a thread takes it at that very moment). Returns its
 * index, and how many callbacks block. */
static DWORD fill_until_all_blocked(const struct storm_options *options, DWORD *blocked)
{
    DWORD i;

    for (i = 0; i < options->most_blocked; i++)
    {
        if (!complete_storm_read(i))
            break;
        if (WaitForSingleObject(storm.taken, options->taken_within_ms) == WAIT_OBJECT_0)
            continue;
        if (InterlockedCompareExchange(&storm.states[i], STORM_NEW, STORM_ISSUED) == STORM_ISSUED)
            break;
        WaitForSingleObject(storm.taken, INFINITE);  /* taken after all, just now */
    }
    if (i == options->most_blocked)
    {
        storm.states[i] = STORM_NEW;
        complete_storm_read(i);
    }
    /* Early callbacks may have ended already when the fill is slow: count those still blocked. */
    *blocked = storm.blocked_now;
    return i;
}

static void end_storm(struct run *run, const struct storm_options *options)
{
    DWORD i, waited;

    InterlockedExchange(&storm.ending, 1);
    for (waited = 0; storm.blocked_now && waited < options->block_ms + 10000; waited += 10)
        Sleep(10);
    for (i = 0; i < work.count; i++)
        if (storm.writers[i] && storm.writers[i] != INVALID_HANDLE_VALUE)
            CloseHandle(storm.writers[i]);
    if (run->dispatcher->ops->work_items)
        for (i = storm.posted; i < work.count; i++)
            finish_request(&work.requests[i]);
    WaitForSingleObject(run->finished, 10000);
    close_channels();
}

BOOL run_blocking_storm(struct dispatcher *d, const struct storm_options *options, struct storm_result *result)
{
    struct workload_options w = { "storm", options->most_blocked + 1, 64, 0, 0, 0, FALSE, 0, 0, 1, 0, 0 };
    struct run run;
    DWORD new_one;
    BOOL ok;

    init_qpc_frequency();
    ZeroMemory(result, sizeof(*result));
    set_up_work(d, &w, &run);
    ZeroMemory(&storm, sizeof(storm));
    storm.block_ms = options->block_ms;
    storm.states = calloc(work.count, sizeof(*storm.states));
    storm.writers = calloc(work.count, sizeof(*storm.writers));
    storm.issued = calloc(work.count, sizeof(*storm.issued));
    storm.taken = CreateEventW(NULL, FALSE, FALSE, NULL);
    storm.new_done = CreateEventW(NULL, TRUE, FALSE, NULL);
    if (!d->ops->start(d))
    {
        if (!d->error[0])
            snprintf(d->error, sizeof(d->error), "%s could not start: error %lu", d->ops->name, GetLastError());
        ok = FALSE;
    }
    else
    {
        if (!(ok = set_up_storm_pipes(d)))
            snprintf(d->error, sizeof(d->error), "setting up the storm's pipes failed: error %lu", GetLastError());
        else
        {
            result->taken = new_one = fill_until_all_blocked(options, &result->blocked);
            result->fill_ms = (storm.issued[new_one] - storm.issued[0]) * 1000.0 / qpc_frequency;
            result->dispatched = WaitForSingleObject(storm.new_done, options->block_ms + 10000) == WAIT_OBJECT_0;
            if (result->dispatched)
                result->dispatch_ms = (storm.new_dispatched - storm.issued[new_one]) * 1000.0 / qpc_frequency;
        }
        end_storm(&run, options);
        result->callback_threads = run.callback_threads;
        d->ops->stop(d);
    }
    CloseHandle(storm.taken);
    CloseHandle(storm.new_done);
    free((void *)storm.states);
    free(storm.writers);
    free(storm.issued);
    free_run(&run);
    return ok && result->dispatched;
}
