/* A stand-in for the CLR's ICLRIoCompletionManager, shared by the tests: it counts OnComplete
 * calls, remembers the last one, signals an event when an expected count is reached and can
 * run a hook of the test's on each call. */
#ifndef HOSTIOCP_FAKECLR_H
#define HOSTIOCP_FAKECLR_H

#include <windows.h>
#include <ole2.h>
#include "hostiocp.h"
#include "manager_support.h"

struct fake_clr;
typedef void (*fake_clr_hook)(struct fake_clr *clr, DWORD error, DWORD bytes, void *overlapped);

struct fake_clr
{
    ICLRIoCompletionManager ICLRIoCompletionManager_iface;
    volatile LONG refs;
    volatile LONG calls;
    volatile LONG failures;           /* calls with a non-zero error */
    volatile LONG expected;
    HANDLE reached;                   /* set when calls reaches expected */
    DWORD last_error;
    DWORD last_bytes;
    void *last_overlapped;
    DWORD last_thread;
    fake_clr_hook hook;
    void *context;
};

struct fake_clr *fake_clr_create(void);
void fake_clr_destroy(struct fake_clr *clr);
/* Arms the event for `count` more calls, counted from now. */
void fake_clr_expect(struct fake_clr *clr, LONG count);
BOOL fake_clr_wait(struct fake_clr *clr, DWORD timeout);

/* Test helpers shared by every suite. */
/* A manager with the fake CLR set, min..max threads and, if port is given, one open port. */
HRESULT create_manager_with_clr(struct fake_clr *clr, DWORD min, DWORD max,
                                IHostIoCompletionManager **manager, HANDLE *port);
/* Re-checks `done` every few milliseconds until it holds or the timeout passes. */
BOOL wait_until(BOOL (*done)(void *context), void *context, DWORD timeout);
/* Re-reads the statistics until `done` holds or the timeout passes. */
BOOL wait_for_statistics(IHostIoCompletionManager *manager, HANDLE port,
                         BOOL (*done)(const HOSTIOCP_STATISTICS *stats, LONG arg), LONG arg,
                         DWORD timeout);

/* An OVERLAPPED followed by room for the host extension, as the CLR allocates it. */
struct clr_overlapped
{
    OVERLAPPED overlapped;
    BYTE host[32];
};

#endif
