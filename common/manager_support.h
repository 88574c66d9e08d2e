/* Helpers shared by the host programs and the tests, in plain C: creating and activating a
 * manager, its settings and statistics extensions. */
#ifndef HOSTIOCP_MANAGER_SUPPORT_H
#define HOSTIOCP_MANAGER_SUPPORT_H

#include <windows.h>
#include <ole2.h>
#include "hostiocp.h"

/* The threads this process has now (a Toolhelp snapshot), or -1 if there is no snapshot. */
LONG process_threads(void);

/* A manager of its own, through CLSID_HostIoCompletionManager. */
HRESULT create_manager(IHostIoCompletionManager **manager);
/* What the CLR does with a new manager: hands it the CLR's callback, then sets min..max threads
 * (lowering the minimum first, so that any max works). */
HRESULT activate_manager(IHostIoCompletionManager *manager, ICLRIoCompletionManager *clr, DWORD min, DWORD max);
HRESULT set_batch_size(IHostIoCompletionManager *manager, DWORD entries);
HRESULT set_idle_timeout(IHostIoCompletionManager *manager, DWORD milliseconds);
/* The port's statistics, or the whole manager's if port is NULL. */
HRESULT get_statistics(IHostIoCompletionManager *manager, HANDLE port, HOSTIOCP_STATISTICS *stats);
/* The worker pool's statistics, through any of the manager's interfaces. */
HRESULT get_work_statistics(IUnknown *manager, HOSTIOCP_WORK_STATISTICS *stats);

#endif
