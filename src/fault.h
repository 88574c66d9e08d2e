/* The system calls that can fail, through one place each, so that tests can make the Nth call
 * of each fail (HOSTIOCP_FAULT; see fault.c). */
#ifndef HOSTIOCP_FAULT_H
#define HOSTIOCP_FAULT_H

#include <windows.h>

enum fault_site { FAULT_CREATE_PORT, FAULT_CREATE_THREAD, FAULT_HEAP_ALLOC, FAULT_REGISTRY, FAULT_POST, FAULT_SITE_COUNT };

/* Reads HOSTIOCP_FAULT; DllMain calls it once. */
void fault_init(void);

void *heap_alloc(DWORD flags, SIZE_T size);
HANDLE create_completion_port(HANDLE file, HANDLE port, ULONG_PTR key, DWORD threads);
HANDLE create_thread(LPTHREAD_START_ROUTINE start, void *arg);
BOOL post_packet(HANDLE port, DWORD bytes, ULONG_PTR key, OVERLAPPED *overlapped);
/* ERROR_SUCCESS, or the error a registry call is to fail with before it is made. */
LONG registry_fault(void);

#endif
