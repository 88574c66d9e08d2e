/* The DLL's lifetime: the references that keep it loaded, and whether the calling thread may
 * wait for others (not under the loader lock, not while the process ends). */
#include <stddef.h>
#include <winternl.h>
#include "module.h"

BOOLEAN NTAPI RtlDllShutdownInProgress(void);
BOOL NTAPI RtlIsCriticalSectionLockedByThread(RTL_CRITICAL_SECTION *section);

HINSTANCE hostiocp_instance;
static volatile LONG module_refs;

void module_add_ref(void)
{
    InterlockedIncrement(&module_refs);
}

void module_release(void)
{
    InterlockedDecrement(&module_refs);
}

LONG module_ref_count(void)
{
    return InterlockedCompareExchange(&module_refs, 0, 0);
}

HMODULE module_pin(void)
{
    HMODULE module = NULL;
    GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS, (const WCHAR *)module_pin, &module);
    return module;
}

/* PEB.LoaderLock's offset, past the part of the PEB that winternl.h documents. */
#ifdef _WIN64
#define PEB_LOADER_LOCK_OFFSET 0x110
#else
#define PEB_LOADER_LOCK_OFFSET 0xa0
#endif
/* The PEB starts as winternl.h has it (ProcessParameters after four pointer-sized fields, at 0x20
 * and 0x10), and the lock falls in the space it reserves after that. */
C_ASSERT(offsetof(PEB, ProcessParameters) == 4 * sizeof(void *));
C_ASSERT(PEB_LOADER_LOCK_OFFSET >= offsetof(PEB, ProcessParameters) + sizeof(void *));
C_ASSERT(PEB_LOADER_LOCK_OFFSET + sizeof(void *) <= offsetof(PEB, PostProcessInitRoutine));
C_ASSERT(PEB_LOADER_LOCK_OFFSET % sizeof(void *) == 0);

static RTL_CRITICAL_SECTION *loader_lock(void)
{
    PROCESS_BASIC_INFORMATION info;

    if (NtQueryInformationProcess(GetCurrentProcess(), ProcessBasicInformation, &info, sizeof(info), NULL))
        return NULL;
    return *(RTL_CRITICAL_SECTION **)((BYTE *)info.PebBaseAddress + PEB_LOADER_LOCK_OFFSET);
}

BOOL module_process_ending(void)
{
    return RtlDllShutdownInProgress();
}

BOOL module_must_not_wait(void)
{
    RTL_CRITICAL_SECTION *lock;

    if (module_process_ending())
        return TRUE;
    return (lock = loader_lock()) && RtlIsCriticalSectionLockedByThread(lock);
}
