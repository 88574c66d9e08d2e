/* Conformance: what regsvr32 and DllInstall write to and remove from the registry, per machine
 * and per user, in this process's bitness view, and that a failed registration leaves nothing. */
#include <windows.h>
#include <ole2.h>
#include <stdarg.h>
#include <stdio.h>
#define STANDALONE
#include <wine/test.h>
#include "hostiocp.h"
#include "support.h"

#ifdef _WIN64
#define PLATFORM L"win64"
#define OTHER_VIEW KEY_WOW64_32KEY
#else
#define PLATFORM L"win32"
#define OTHER_VIEW KEY_WOW64_64KEY
#endif

static WCHAR dll_path[MAX_PATH * 2];
/* "{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}" and its null. */
#define GUID_STRING_SIZE 39
/* As StringFromGUID2 writes the IDL's GUIDs. */
static WCHAR manager_clsid[GUID_STRING_SIZE], control_clsid[GUID_STRING_SIZE], typelib_libid[GUID_STRING_SIZE];

/* A key path from a format, in one of 16 buffers that are reused in turn. */
static const WCHAR *key_path(const WCHAR *format, ...)
{
    static WCHAR buffers[16][512];
    static unsigned int next;
    WCHAR *buffer = buffers[next++ % ARRAYSIZE(buffers)];
    va_list args;

    va_start(args, format);
    vswprintf(buffer, ARRAYSIZE(buffers[0]), format, args);
    va_end(args);
    return buffer;
}
static HMODULE dll;
static HRESULT (WINAPI *pDllInstall)(BOOL, const WCHAR *);
static HRESULT (WINAPI *pDllRegisterServer)(void);
static HRESULT (WINAPI *pDllUnregisterServer)(void);

static BOOL key_exists(HKEY hive, REGSAM view, const WCHAR *path)
{
    WCHAR full[512];
    HKEY key;

    swprintf(full, ARRAYSIZE(full), L"Software\\Classes\\%ls", path);
    if (RegOpenKeyExW(hive, full, 0, KEY_READ | view, &key))
        return FALSE;
    RegCloseKey(key);
    return TRUE;
}

/* The longest value read, in characters: a path, a GUID or a name. */
#define MAX_VALUE (MAX_PATH * 2)

/* The string value `name` (NULL: the default one) of Software\\Classes\\<path> in a registry
 * view, into data (empty where there is none): ERROR_SUCCESS, or why there is none. */
static LONG read_value(HKEY hive, REGSAM view, const WCHAR *path, const WCHAR *name, WCHAR data[MAX_VALUE])
{
    WCHAR full[512];
    DWORD size = MAX_VALUE * sizeof(WCHAR);
    HKEY key;
    LONG status;

    data[0] = 0;
    swprintf(full, ARRAYSIZE(full), L"Software\\Classes\\%ls", path);
    if ((status = RegOpenKeyExW(hive, full, 0, KEY_READ | view, &key)))
        return status;
    if ((status = RegGetValueW(key, NULL, name, RRF_RT_REG_SZ, NULL, data, &size)))
        data[0] = 0;
    RegCloseKey(key);
    return status;
}

/* The value holds `expected`, in any case; the message says what it holds, or why nothing. */
#define check_value(hive, view, path, name, expected, where) \
    check_value_(__LINE__, hive, view, path, name, expected, where)
static void check_value_(unsigned int line, HKEY hive, REGSAM view, const WCHAR *path, const WCHAR *name,
                         const WCHAR *expected, const char *where)
{
    WCHAR data[MAX_VALUE];
    LONG status = read_value(hive, view, path, name, data);

    ok_(__FILE__, line)(!status && !lstrcmpiW(data, expected), "%s: %s, value %s: %s (error %ld), not %s\n", where,
                        wine_dbgstr_w(path), wine_dbgstr_w(name), wine_dbgstr_w(data), status, wine_dbgstr_w(expected));
}

/* A 32-bit process on 32-bit Windows has one registry view: nothing is "the other one". */
static BOOL has_other_view(void)
{
    BOOL wow64 = FALSE;

    return sizeof(void *) == 8 || (IsWow64Process(GetCurrentProcess(), &wow64) && wow64);
}

static void check_registered(HKEY hive, const char *where)
{
    WCHAR data[MAX_VALUE];
    LONG status;

    check_value(hive, 0, key_path(L"CLSID\\%ls\\InprocServer32", manager_clsid), NULL, dll_path, where);
    check_value(hive, 0, key_path(L"CLSID\\%ls\\InprocServer32", manager_clsid), L"ThreadingModel", L"Both", where);
    check_value(hive, 0, key_path(L"CLSID\\%ls\\ProgID", manager_clsid), NULL, HOSTIOCP_MANAGER_PROGID, where);
    check_value(hive, 0, key_path(L"CLSID\\%ls\\VersionIndependentProgID", manager_clsid), NULL,
                HOSTIOCP_MANAGER_VI_PROGID, where);
    check_value(hive, 0, key_path(L"CLSID\\%ls\\TypeLib", manager_clsid), NULL, typelib_libid, where);
    check_value(hive, 0, key_path(L"%ls\\CLSID", HOSTIOCP_MANAGER_PROGID), NULL, manager_clsid, where);
    check_value(hive, 0, key_path(L"%ls\\CLSID", HOSTIOCP_MANAGER_VI_PROGID), NULL, manager_clsid, where);
    check_value(hive, 0, key_path(L"%ls\\CurVer", HOSTIOCP_MANAGER_VI_PROGID), NULL, HOSTIOCP_MANAGER_PROGID, where);
    check_value(hive, 0, key_path(L"CLSID\\%ls\\InprocServer32", control_clsid), NULL, dll_path, where);
    check_value(hive, 0, key_path(L"CLSID\\%ls\\InprocServer32", control_clsid), L"ThreadingModel", L"Both", where);
    check_value(hive, 0, key_path(L"%ls\\CLSID", HOSTIOCP_HOST_CONTROL_PROGID), NULL, control_clsid, where);
    check_value(hive, 0, key_path(L"TypeLib\\%ls\\1.0\\0\\" PLATFORM, typelib_libid), NULL, dll_path, where);
    /* CLSID keys are per bitness, in HKCU as in HKLM: the other view may name the other
     * bitness's DLL, never this one.  Wine 8 shares HKCU's CLSID keys between the views. */
    if (!has_other_view())
        return;
    status = read_value(hive, OTHER_VIEW, key_path(L"CLSID\\%ls\\InprocServer32", manager_clsid), NULL, data);
    todo_wine_if(hive == HKEY_CURRENT_USER)
    ok(status || lstrcmpiW(data, dll_path), "%s: the other bitness's view names this DLL too: %s\n", where,
       wine_dbgstr_w(data));
}

static void check_unregistered(HKEY hive, const char *where)
{
    const WCHAR *const keys[] =
    {
        key_path(L"CLSID\\%ls", manager_clsid), key_path(L"CLSID\\%ls", control_clsid), HOSTIOCP_MANAGER_PROGID,
        HOSTIOCP_MANAGER_VI_PROGID, HOSTIOCP_HOST_CONTROL_PROGID, HOSTIOCP_HOST_CONTROL_VI_PROGID,
        key_path(L"TypeLib\\%ls", typelib_libid),
    };
    size_t i;

    for (i = 0; i < ARRAYSIZE(keys); i++)
        ok(!key_exists(hive, 0, keys[i]), "%s: %s is still there\n", where, wine_dbgstr_w(keys[i]));
    ok(hive != HKEY_LOCAL_MACHINE || key_exists(hive, 0, L"CLSID"), "%s: CLSID itself was removed\n", where);
}

static DWORD regsvr32(const WCHAR *options)
{
    return run_regsvr32(options, dll_path);
}

/* The coclass's type information lists the interface among those it implements. */
static void check_implements(ITypeInfo *coclass, REFIID iid, const char *name)
{
    TYPEATTR *attributes;
    BOOL found = FALSE;
    UINT i;

    if (FAILED(ITypeInfo_GetTypeAttr(coclass, &attributes)))
    {
        ok(0, "no type attributes for the coclass\n");
        return;
    }
    for (i = 0; i < attributes->cImplTypes && !found; i++)
    {
        ITypeInfo *implemented;
        TYPEATTR *implemented_attributes;
        HREFTYPE reference;

        if (FAILED(ITypeInfo_GetRefTypeOfImplType(coclass, i, &reference)) ||
            FAILED(ITypeInfo_GetRefTypeInfo(coclass, reference, &implemented)))
            continue;
        if (SUCCEEDED(ITypeInfo_GetTypeAttr(implemented, &implemented_attributes)))
        {
            found = IsEqualGUID(&implemented_attributes->guid, iid);
            ITypeInfo_ReleaseTypeAttr(implemented, implemented_attributes);
        }
        ITypeInfo_Release(implemented);
    }
    ITypeInfo_ReleaseTypeAttr(coclass, attributes);
    ok(found, "the type library's HostIoCompletionManager does not implement %s\n", name);
}

static void test_machine_round_trip(void)
{
    ITypeLib *typelib;
    HRESULT hr = pDllUnregisterServer();

    /* Only the registry's refusal means "not elevated"; any other failure is a failure. */
    if (hr == E_ACCESSDENIED)
    {
        skip("per-machine registration needs an elevated process\n");
        return;
    }
    ok(hr == S_OK, "DllUnregisterServer returned %#lx\n", hr);
    check_unregistered(HKEY_LOCAL_MACHINE, "after DllUnregisterServer");
    hr = pDllUnregisterServer();
    ok(hr == S_OK, "unregistering twice: DllUnregisterServer returned %#lx\n", hr);

    hr = pDllRegisterServer();
    ok(hr == S_OK, "DllRegisterServer returned %#lx\n", hr);
    check_registered(HKEY_LOCAL_MACHINE, "after DllRegisterServer");
    hr = pDllRegisterServer();
    ok(hr == S_OK, "registering twice: DllRegisterServer returned %#lx\n", hr);
    check_registered(HKEY_LOCAL_MACHINE, "after registering twice");

    hr = LoadRegTypeLib(&LIBID_HostIoCpLib, 1, 0, 0, &typelib);
    ok(hr == S_OK, "LoadRegTypeLib returned %#lx\n", hr);
    if (SUCCEEDED(hr))
    {
        ITypeInfo *info;
        hr = ITypeLib_GetTypeInfoOfGuid(typelib, &CLSID_HostIoCompletionManager, &info);
        ok(hr == S_OK, "the type library has no HostIoCompletionManager: %#lx\n", hr);
        if (SUCCEEDED(hr))
        {
            check_implements(info, &IID_IHostIoCompletionManager, "IHostIoCompletionManager");
            check_implements(info, &IID_IHostThreadpoolManager, "IHostThreadpoolManager");
            check_implements(info, &IID_IHostIoCpStatistics, "IHostIoCpStatistics");
            check_implements(info, &IID_IHostIoCpWorkStatistics, "IHostIoCpWorkStatistics");
            check_implements(info, &IID_IHostIoCpSettings, "IHostIoCpSettings");
            ITypeInfo_Release(info);
        }
        ITypeLib_Release(typelib);
    }
}

/* regsvr32 calls the same functions; it is how administrators register, so it is tested too. */
static void test_regsvr32_round_trip(void)
{
    DWORD code = regsvr32(L"/u");

    if (code == 5 && pDllRegisterServer() == E_ACCESSDENIED)
    {
        skip("per-machine registration needs an elevated process\n");
        return;
    }
    ok(code == 0, "regsvr32 /u exited with %lu\n", code);
    check_unregistered(HKEY_LOCAL_MACHINE, "after regsvr32 /u");
    code = regsvr32(L"");
    ok(code == 0, "regsvr32 exited with %lu\n", code);
    check_registered(HKEY_LOCAL_MACHINE, "after regsvr32");
}

static void test_user_round_trip(void)
{
    DWORD code;

    check_unregistered(HKEY_CURRENT_USER, "before per-user registration");
    code = regsvr32(L"/n /i:user");
    ok(code == 0, "regsvr32 /n /i:user exited with %lu\n", code);
    check_registered(HKEY_CURRENT_USER, "per user");
    code = regsvr32(L"/u /n /i:user");
    ok(code == 0, "regsvr32 /u /n /i:user exited with %lu\n", code);
    check_unregistered(HKEY_CURRENT_USER, "after per-user unregistration");
    /* The per-machine registration is untouched. */
    check_value(HKEY_LOCAL_MACHINE, 0, key_path(L"CLSID\\%ls\\InprocServer32", manager_clsid), NULL, dll_path,
                "HKLM after per-user unregistration");
}

/* Unregistering by another spelling of the same path (an 8.3 name) removes the registration. */
static void test_unregister_by_short_path(void)
{
    WCHAR short_path[MAX_PATH * 2], command[MAX_PATH * 3];
    DWORD length = GetShortPathNameW(dll_path, short_path, ARRAYSIZE(short_path));
    HRESULT hr;
    DWORD code;

    if (!length || length >= ARRAYSIZE(short_path) || !lstrcmpiW(short_path, dll_path))
    {
        skip("%s has no distinct 8.3 form here\n", wine_dbgstr_w(dll_path));
        return;
    }
    hr = pDllInstall(TRUE, L"user");
    ok(hr == S_OK, "DllInstall(TRUE, user) returned %#lx\n", hr);
    check_registered(HKEY_CURRENT_USER, "per user, before unregistering by the short path");
    swprintf(command, ARRAYSIZE(command), L"regsvr32.exe /s /u /n /i:user \"%ls\"", short_path);
    code = run_command(command);
    ok(code == 0, "regsvr32 /u /n /i:user %s exited with %lu\n", wine_dbgstr_w(short_path), code);
    check_unregistered(HKEY_CURRENT_USER, "after unregistering by the short path");
    pDllInstall(FALSE, L"user");
}

/* The other bitness's DLL as this project builds it, build/<other target>/hostiocp.dll, or
 * %HOSTIOCP_OTHER_DLL%. */
static BOOL get_other_bitness_dll(WCHAR *path, DWORD size)
{
    const WCHAR *other = sizeof(void *) == 8 ? L"\\i686-w64-mingw32\\hostiocp.dll" : L"\\x86_64-w64-mingw32\\hostiocp.dll";
    WCHAR *slash;
    DWORD length = GetEnvironmentVariableW(L"HOSTIOCP_OTHER_DLL", path, size);

    if (!length || length >= size)
    {
        lstrcpynW(path, dll_path, size);
        if ((slash = wcsrchr(path, '\\')))
            *slash = 0;
        if ((slash = wcsrchr(path, '\\')))
            *slash = 0;
        if (lstrlenW(path) + lstrlenW(other) >= (int)size)
            return FALSE;
        lstrcatW(path, other);
    }
    return GetFileAttributesW(path) != INVALID_FILE_ATTRIBUTES;
}

/* Both bitnesses registered per machine from different folders, this one first: when the
 * other unregisters and then this one, nothing either of them wrote is left. */
static void test_both_bitnesses_from_different_folders(void)
{
    WCHAR other[MAX_PATH * 2], command[MAX_PATH * 3];
    DWORD code;
    HRESULT hr;

    if (!has_other_view())
    {
        skip("a 32-bit system has one bitness\n");
        return;
    }
    if (!get_other_bitness_dll(other, ARRAYSIZE(other)))
    {
        skip("the other bitness's DLL is not built (%s)\n", wine_dbgstr_w(other));
        return;
    }
    if ((hr = pDllRegisterServer()) == E_ACCESSDENIED)
    {
        skip("per-machine registration needs an elevated process\n");
        return;
    }
    ok(hr == S_OK, "DllRegisterServer returned %#lx\n", hr);
    swprintf(command, ARRAYSIZE(command), L"regsvr32.exe /s \"%ls\"", other);
    code = run_command(command);
    ok(code == 0, "regsvr32 %s exited with %lu\n", wine_dbgstr_w(other), code);
    check_value(HKEY_LOCAL_MACHINE, OTHER_VIEW, key_path(L"CLSID\\%ls\\InprocServer32", manager_clsid), NULL, other,
                "the other bitness's view");
    swprintf(command, ARRAYSIZE(command), L"regsvr32.exe /s /u \"%ls\"", other);
    code = run_command(command);
    ok(code == 0, "regsvr32 /u %s exited with %lu\n", wine_dbgstr_w(other), code);
    check_registered(HKEY_LOCAL_MACHINE, "after the other bitness unregistered");
    hr = pDllUnregisterServer();
    ok(hr == S_OK, "DllUnregisterServer returned %#lx\n", hr);
    check_unregistered(HKEY_LOCAL_MACHINE, "after both bitnesses unregistered");
    ok(!key_exists(HKEY_LOCAL_MACHINE, OTHER_VIEW, key_path(L"CLSID\\%ls", manager_clsid)), "the other view kept its CLSID key\n");
}

/* regsvr32 /i without ":..." hands DllInstall an empty string; NULL is read the same way. */
static void test_dllinstall_without_a_scope(void)
{
    const WCHAR *const command_lines[] = { NULL, L"" };
    char where[64];
    HRESULT hr;
    DWORD code;
    size_t i;

    if ((hr = pDllUnregisterServer()) == E_ACCESSDENIED)
    {
        skip("per-machine registration needs an elevated process\n");
        return;
    }
    ok(hr == S_OK, "DllUnregisterServer returned %#lx\n", hr);
    for (i = 0; i < ARRAYSIZE(command_lines); i++)
    {
        sprintf(where, "DllInstall(TRUE, %s)", wine_dbgstr_w(command_lines[i]));
        hr = pDllInstall(TRUE, command_lines[i]);
        ok(hr == S_OK, "%s returned %#lx\n", where, hr);
        check_registered(HKEY_LOCAL_MACHINE, where);
        check_unregistered(HKEY_CURRENT_USER, where);
        sprintf(where, "DllInstall(FALSE, %s)", wine_dbgstr_w(command_lines[i]));
        hr = pDllInstall(FALSE, command_lines[i]);
        ok(hr == S_OK, "%s returned %#lx\n", where, hr);
        check_unregistered(HKEY_LOCAL_MACHINE, where);
    }
    /* /n: DllInstall alone, without DllRegisterServer. */
    code = regsvr32(L"/n /i");
    ok(code == 0, "regsvr32 /n /i exited with %lu\n", code);
    check_registered(HKEY_LOCAL_MACHINE, "regsvr32 /n /i");
    check_unregistered(HKEY_CURRENT_USER, "regsvr32 /n /i");
    code = regsvr32(L"/u /n /i");
    ok(code == 0, "regsvr32 /u /n /i exited with %lu\n", code);
    check_unregistered(HKEY_LOCAL_MACHINE, "regsvr32 /u /n /i");
}

/* DllInstall(install, s) for strings it does not know: each refused, and the hives as `check`
 * finds them (in HKLM only where the process may register per machine). */
static void check_other_strings_refused(BOOL install, void (*check)(HKEY hive, const char *where), BOOL machine)
{
    const WCHAR *const command_lines[] = { L"everyone", L"users", L" machine", L"user:x" };
    char where[64];
    HRESULT hr;
    size_t i;

    for (i = 0; i < ARRAYSIZE(command_lines); i++)
    {
        sprintf(where, "DllInstall(%s, %s)", install ? "TRUE" : "FALSE", wine_dbgstr_w(command_lines[i]));
        hr = pDllInstall(install, command_lines[i]);
        ok(hr == E_INVALIDARG, "%s returned %#lx\n", where, hr);
        check(HKEY_CURRENT_USER, where);
        if (machine)
            check(HKEY_LOCAL_MACHINE, where);
    }
}

/* Any other string is refused before anything is written or removed: installing with nothing
 * registered leaves both hives without our keys, uninstalling with both registered keeps them. */
static void test_dllinstall_refuses_other_strings(void)
{
    BOOL machine = pDllUnregisterServer() != E_ACCESSDENIED;

    HRESULT hr;

    if (!machine)
        skip("per-machine registration needs an elevated process: HKCU only\n");
    hr = pDllInstall(FALSE, L"user");
    ok(hr == S_OK, "DllInstall(FALSE, user) returned %#lx\n", hr);
    check_other_strings_refused(TRUE, check_unregistered, machine);
    hr = pDllInstall(TRUE, L"user");
    ok(hr == S_OK, "DllInstall(TRUE, user) returned %#lx\n", hr);
    hr = machine ? pDllRegisterServer() : S_OK;
    ok(hr == S_OK, "DllRegisterServer returned %#lx\n", hr);
    check_other_strings_refused(FALSE, check_registered, machine);
    hr = pDllInstall(FALSE, L"user");
    ok(hr == S_OK, "DllInstall(FALSE, user) returned %#lx\n", hr);
}

static void test_dllinstall_arguments(void)
{
    HRESULT hr;

    hr = pDllInstall(TRUE, L"USER");
    ok(hr == S_OK, "DllInstall(TRUE, USER) returned %#lx\n", hr);
    check_registered(HKEY_CURRENT_USER, "DllInstall(TRUE, USER)");
    hr = pDllInstall(FALSE, L"user");
    ok(hr == S_OK, "DllInstall(FALSE, user) returned %#lx\n", hr);
    check_unregistered(HKEY_CURRENT_USER, "DllInstall(FALSE, user)");
}

static void test_failed_registration_leaves_nothing(void)
{
    HKEY blocker;
    DWORD subkeys = 1;
    LONG status;
    HRESULT hr;

    /* A volatile key cannot get persistent subkeys: registration fails part-way through. */
    status = RegCreateKeyExW(HKEY_CURRENT_USER, key_path(L"Software\\Classes\\%ls", HOSTIOCP_HOST_CONTROL_PROGID), 0, NULL,
                             REG_OPTION_VOLATILE, KEY_ALL_ACCESS, NULL, &blocker, NULL);
    ok(!status, "RegCreateKeyEx failed: %ld\n", status);
    hr = pDllInstall(TRUE, L"user");
    ok(hr == HRESULT_FROM_WIN32(ERROR_CHILD_MUST_BE_VOLATILE), "DllInstall returned %#lx\n", hr);
    RegQueryInfoKeyW(blocker, NULL, NULL, NULL, &subkeys, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    ok(subkeys == 0, "the blocking key got %lu subkeys\n", subkeys);
    RegCloseKey(blocker);
    ok(key_exists(HKEY_CURRENT_USER, 0, HOSTIOCP_HOST_CONTROL_PROGID), "the key that was there is gone\n");
    RegDeleteKeyW(HKEY_CURRENT_USER, key_path(L"Software\\Classes\\%ls", HOSTIOCP_HOST_CONTROL_PROGID));
    check_unregistered(HKEY_CURRENT_USER, "after a failed registration");
}

static void test_unregister_keeps_what_others_added(void)
{
    HKEY key;
    DWORD values = 0;
    LONG status;
    HRESULT hr = pDllInstall(TRUE, L"user");

    ok(hr == S_OK, "DllInstall(TRUE, user) returned %#lx\n", hr);
    RegOpenKeyExW(HKEY_CURRENT_USER, key_path(L"Software\\Classes\\CLSID\\%ls", manager_clsid), 0, KEY_ALL_ACCESS, &key);
    RegSetValueExW(key, L"AddedByOthers", 0, REG_SZ, (const BYTE *)L"1", 2 * sizeof(WCHAR));
    RegCloseKey(key);
    hr = pDllInstall(FALSE, L"user");
    ok(hr == S_OK, "DllInstall(FALSE, user) returned %#lx\n", hr);
    ok(!key_exists(HKEY_CURRENT_USER, 0, key_path(L"CLSID\\%ls\\InprocServer32", manager_clsid)), "InprocServer32 stayed\n");
    status = RegOpenKeyExW(HKEY_CURRENT_USER, key_path(L"Software\\Classes\\CLSID\\%ls", manager_clsid), 0, KEY_ALL_ACCESS, &key);
    ok(!status, "a key holding someone else's value was deleted: RegOpenKeyEx returned %ld\n", status);
    RegQueryInfoKeyW(key, NULL, NULL, NULL, NULL, NULL, NULL, &values, NULL, NULL, NULL, NULL);
    ok(values == 1, "%lu values left, expected just the foreign one\n", values);
    RegCloseKey(key);
    RegDeleteKeyW(HKEY_CURRENT_USER, key_path(L"Software\\Classes\\CLSID\\%ls", manager_clsid));
}

START_TEST(registration)
{
    DWORD code;

    StringFromGUID2(&CLSID_HostIoCompletionManager, manager_clsid, ARRAYSIZE(manager_clsid));
    StringFromGUID2(&CLSID_HostIoCpHostControl, control_clsid, ARRAYSIZE(control_clsid));
    StringFromGUID2(&LIBID_HostIoCpLib, typelib_libid, ARRAYSIZE(typelib_libid));
    get_dll_path(dll_path, ARRAYSIZE(dll_path));
    trace("testing %s\n", wine_dbgstr_w(dll_path));
    dll = LoadLibraryW(dll_path);
    ok(dll != NULL, "cannot load %s: %lu\n", wine_dbgstr_w(dll_path), GetLastError());
    if (!dll)
        return;
    GetModuleFileNameW(dll, dll_path, ARRAYSIZE(dll_path));
    pDllInstall = (void *)GetProcAddress(dll, "DllInstall");
    pDllRegisterServer = (void *)GetProcAddress(dll, "DllRegisterServer");
    pDllUnregisterServer = (void *)GetProcAddress(dll, "DllUnregisterServer");
    ok(pDllInstall && pDllRegisterServer && pDllUnregisterServer,
       "the registration functions are not all exported: DllInstall %p, DllRegisterServer %p, DllUnregisterServer %p\n",
       pDllInstall, pDllRegisterServer, pDllUnregisterServer);
    if (!pDllInstall || !pDllRegisterServer || !pDllUnregisterServer)
    {
        FreeLibrary(dll);
        return;
    }
    CoInitializeEx(NULL, COINIT_MULTITHREADED);

    test_machine_round_trip();
    test_regsvr32_round_trip();
    test_user_round_trip();
    test_unregister_by_short_path();
    test_both_bitnesses_from_different_folders();
    test_dllinstall_arguments();
    test_dllinstall_without_a_scope();
    test_dllinstall_refuses_other_strings();
    test_failed_registration_leaves_nothing();
    test_unregister_keeps_what_others_added();

    /* Leave the machine registration in place for the other tests. */
    code = regsvr32(L"");
    ok(code == 0, "re-registering: regsvr32 exited with %lu\n", code);
    CoUninitialize();
    FreeLibrary(dll);
}
