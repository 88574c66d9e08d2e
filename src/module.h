/* The DLL's lifetime: what keeps it loaded, and when its threads may not be waited for. */
#ifndef HOSTIOCP_MODULE_H
#define HOSTIOCP_MODULE_H

#include <windows.h>

/* Set by DllMain when the DLL loads. */
extern HINSTANCE hostiocp_instance;

/* Everything that must keep the DLL loaded: objects, LockServer locks and engine threads. */
void module_add_ref(void);
void module_release(void);
LONG module_ref_count(void);

/* Pins the DLL for a thread of ours; the thread ends with FreeLibraryAndExitThread. */
HMODULE module_pin(void);

/* Where the loader lock is held by this thread or the process is ending: nothing may wait for
 * other threads to end. */
BOOL module_must_not_wait(void);
/* The process is exiting: other threads were killed wherever they were, locks and all. */
BOOL module_process_ending(void);

#endif
