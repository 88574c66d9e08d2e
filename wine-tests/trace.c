/* Conformance: HOSTIOCP_TRACE=1 sends a trace to the debugger (OutputDebugString), including
 * one line per OnComplete. The test collects it the way a debugger sees it: as the
 * DBG_PRINTEXCEPTION_C that OutputDebugStringA raises. */
#include <windows.h>
#include <ole2.h>
#include <stdio.h>
#define STANDALONE
#include <wine/test.h>
#include "fakeclr.h"
#include "support.h"

START_TEST(trace)
{
    IHostIoCompletionManager *manager;
    struct fake_clr *clr;
    OVERLAPPED request;
    HANDLE port;
    HRESULT hr;
    void *handler;

    /* Read once, when the DLL loads: set it before COM loads hostiocp. */
    SetEnvironmentVariableA("HOSTIOCP_TRACE", "1");
    handler = collect_hostiocp_trace();
    CoInitializeEx(NULL, COINIT_MULTITHREADED);
    clr = fake_clr_create();

    hr = create_manager(&manager);
    ok(hr == S_OK, "CoCreateInstance returned %#lx\n", hr);
    if (FAILED(hr))
        return;
    ok(hostiocp_trace.lines >= 2, "%ld trace lines after loading and creating\n", hostiocp_trace.lines);
    ok(hostiocp_trace.created == 1, "%ld lines announced the manager\n", hostiocp_trace.created);
    if (threads_unreliable())
        skip("32-bit Wine runs under qemu-user here and cannot run threads reliably\n");
    else
    {
        hr = IHostIoCompletionManager_SetCLRIoCompletionManager(manager, &clr->ICLRIoCompletionManager_iface);
        ok(hr == S_OK, "SetCLRIoCompletionManager returned %#lx\n", hr);
        hr = IHostIoCompletionManager_CreateIoCompletionPort(manager, &port);
        ok(hr == S_OK, "CreateIoCompletionPort returned %#lx\n", hr);
        fake_clr_expect(clr, 3);
        PostQueuedCompletionStatus(port, 1, 0, &request);
        PostQueuedCompletionStatus(port, 2, 0, &request);
        PostQueuedCompletionStatus(port, 3, 0, &request);
        ok(fake_clr_wait(clr, 30000), "completions did not arrive\n");
    }
    ok(IHostIoCompletionManager_Release(manager) == 0, "references left\n");
    ok(hostiocp_trace.oncomplete == clr->calls, "%ld OnComplete lines for %ld calls\n", hostiocp_trace.oncomplete, clr->calls);
    trace("%ld trace lines\n", hostiocp_trace.lines);
    fake_clr_destroy(clr);
    CoUninitialize();
    RemoveVectoredExceptionHandler(handler);
}
