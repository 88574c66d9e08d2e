/* A DLL of the other CPU, in the place of hostiocp.dll beside the other CPU's hostiocp.manifest:
 * the registration-free tests check that a process of this CPU cannot load it.  Only its
 * machine type matters. */
#include <windows.h>

BOOL WINAPI DllMain(HINSTANCE instance, DWORD reason, void *reserved)
{
    (void)instance;
    (void)reason;
    (void)reserved;
    return TRUE;
}
