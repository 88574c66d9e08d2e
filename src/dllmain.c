/* The DLL's entry points: DllMain and the Dll* exports but DllGetClassObject (factory.c). */
#include "hostiocp_private.h"

BOOL WINAPI DllMain(HINSTANCE instance, DWORD reason, void *reserved)
{
    if (reason == DLL_PROCESS_ATTACH)
    {
        hostiocp_instance = instance;
        DisableThreadLibraryCalls(instance);
        debug_init();
        fault_init();
        if (!pool_process_attach())
            return FALSE;
        TRACE("loaded");
    }
    else if (reason == DLL_PROCESS_DETACH && !reserved)
        pool_process_detach();
    return TRUE;
}

HRESULT WINAPI DllCanUnloadNow(void)
{
    return module_ref_count() == 0 ? S_OK : S_FALSE;
}

HRESULT WINAPI DllRegisterServer(void)
{
    return register_server(SCOPE_MACHINE);
}

HRESULT WINAPI DllUnregisterServer(void)
{
    return unregister_server(SCOPE_MACHINE);
}

/* regsvr32 [/u] /n /i:user registers in HKCU only; /i:machine, /i alone (an empty or NULL command
 * line) in HKLM. */
HRESULT WINAPI DllInstall(BOOL install, const WCHAR *command_line)
{
    enum registration_scope scope;

    if (!command_line || !command_line[0] || !lstrcmpiW(command_line, L"machine"))
        scope = SCOPE_MACHINE;
    else if (!lstrcmpiW(command_line, L"user"))
        scope = SCOPE_USER;
    else
        return E_INVALIDARG;
    return install ? register_server(scope) : unregister_server(scope);
}
