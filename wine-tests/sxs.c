/* Conformance of registration-free COM (side-by-side activation), where hostiocp is not
 * registered (under Wine a prefix of its own; on Windows the test unregisters the DLL under test
 * first and registers it again at its end): hostiocp.manifest beside the DLL serves both classes, their ProgIDs and the
 * manager's real I/O through an activation context the host makes (CreateActCtxW) and through
 * an application manifest's dependency on the private assembly, beside the application or in
 * a hostiocp\ folder of its own.  Without a manifest the classes are not registered; a
 * manifest for the other CPU is refused; the host program's --manifest runs its workload. */
#include <windows.h>
#include <ole2.h>
#include <stdio.h>
#include <string.h>
#define STANDALONE
#include <wine/test.h>
#include "fakeclr.h"
#include "support.h"

#define WAIT_MS 30000

#ifdef _WIN64
#define THIS_ARCH "amd64"
#define OTHER_ARCH "x86"
#else
#define THIS_ARCH "x86"
#define OTHER_ARCH "amd64"
#endif

static WCHAR build_dir[MAX_PATH];       /* hostiocp.dll, hostiocp.manifest, host\, wine-tests\ */
static WCHAR work_dir[MAX_PATH];        /* this test's folder under %TEMP% */
static char assembly_version[32];       /* the DLL's file version, a.b.c.d */

static void build_path(const WCHAR *name, WCHAR *path)
{
    swprintf(path, MAX_PATH, L"%ls\\%ls", build_dir, name);
}

/* work_dir\name, made empty. */
static void make_work_folder(const WCHAR *name, WCHAR *path)
{
    swprintf(path, MAX_PATH, L"%ls\\%ls", work_dir, name);
    ok(CreateDirectoryW(path, NULL), "cannot make %s: %lu\n", wine_dbgstr_w(path), GetLastError());
}

static void copy_into(const WCHAR *source, const WCHAR *folder, const WCHAR *name)
{
    WCHAR target[MAX_PATH];

    swprintf(target, MAX_PATH, L"%ls\\%ls", folder, name);
    ok(CopyFileW(source, target, TRUE), "cannot copy %s to %s: %lu\n", wine_dbgstr_w(source),
       wine_dbgstr_w(target), GetLastError());
}

static void write_file(const WCHAR *path, const char *text)
{
    HANDLE file = CreateFileW(path, GENERIC_WRITE, 0, NULL, CREATE_NEW, 0, NULL);
    DWORD written = 0;

    ok(file != INVALID_HANDLE_VALUE, "cannot create %s: %lu\n", wine_dbgstr_w(path), GetLastError());
    if (file == INVALID_HANDLE_VALUE)
        return;
    ok(WriteFile(file, text, strlen(text), &written, NULL) && written == strlen(text),
       "cannot write %s: %lu\n", wine_dbgstr_w(path), GetLastError());
    CloseHandle(file);
}

static void read_file(const WCHAR *path, char *text, DWORD size)
{
    HANDLE file = CreateFileW(path, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING, 0, NULL);
    DWORD got = 0;

    text[0] = 0;
    ok(file != INVALID_HANDLE_VALUE, "cannot open %s: %lu\n", wine_dbgstr_w(path), GetLastError());
    if (file == INVALID_HANDLE_VALUE)
        return;
    ok(ReadFile(file, text, size - 1, &got, NULL), "cannot read %s: %lu\n", wine_dbgstr_w(path), GetLastError());
    text[got] = 0;
    CloseHandle(file);
}

static void remove_tree(const WCHAR *path)
{
    WCHAR pattern[MAX_PATH], child[MAX_PATH];
    WIN32_FIND_DATAW entry;
    HANDLE find;

    swprintf(pattern, MAX_PATH, L"%ls\\*", path);
    if ((find = FindFirstFileW(pattern, &entry)) != INVALID_HANDLE_VALUE)
    {
        do
        {
            if (!wcscmp(entry.cFileName, L".") || !wcscmp(entry.cFileName, L".."))
                continue;
            swprintf(child, MAX_PATH, L"%ls\\%ls", path, entry.cFileName);
            if (entry.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY)
                remove_tree(child);
            else
                ok(DeleteFileW(child), "cannot delete %s: %lu\n", wine_dbgstr_w(child), GetLastError());
        } while (FindNextFileW(find, &entry));
        FindClose(find);
    }
    ok(RemoveDirectoryW(path), "cannot remove %s: %lu\n", wine_dbgstr_w(path), GetLastError());
}

/* The DLL's file version, which the manifest must give as the assembly's version: the
 * VS_FIXEDFILEINFO that follows the "VS_VERSION_INFO" key of its version resource. */
static void get_assembly_version(const WCHAR *dll)
{
    HMODULE module = LoadLibraryExW(dll, NULL, LOAD_LIBRARY_AS_DATAFILE);
    HRSRC resource = module ? FindResourceW(module, MAKEINTRESOURCEW(VS_VERSION_INFO), (const WCHAR *)RT_VERSION) : NULL;
    const BYTE *data = resource ? LoadResource(module, resource) : NULL;
    const VS_FIXEDFILEINFO *info = data ? (const VS_FIXEDFILEINFO *)(data + 40) : NULL;

    ok(info && SizeofResource(module, resource) >= 40 + sizeof(*info) && info->dwSignature == VS_FFI_SIGNATURE,
       "%s has no version resource: %lu\n", wine_dbgstr_w(dll), GetLastError());
    if (info && info->dwSignature == VS_FFI_SIGNATURE)
        snprintf(assembly_version, sizeof(assembly_version), "%u.%u.%u.%u", HIWORD(info->dwFileVersionMS),
                 LOWORD(info->dwFileVersionMS), HIWORD(info->dwFileVersionLS), LOWORD(info->dwFileVersionLS));
    if (module)
        FreeLibrary(module);
}

/* Where this process loaded hostiocp.dll from, or "" if it has not. */
static void loaded_dll(WCHAR *path)
{
    HMODULE module = GetModuleHandleW(L"hostiocp.dll");

    path[0] = 0;
    if (module)
        GetModuleFileNameW(module, path, MAX_PATH);
}

static HRESULT create_host_control(IHostControl **control)
{
    *control = NULL;
    return CoCreateInstance(&CLSID_HostIoCpHostControl, NULL, CLSCTX_INPROC_SERVER, &IID_IHostControl,
                            (void **)control);
}

/* As the CLR does with the manager that GetHostManager gives: one pipe read completes through
 * the manager's port and OnComplete with every byte. */
static void check_pipe_read(IHostIoCompletionManager *manager, struct fake_clr *clr, const char *how)
{
    static const char message[] = "registration-free completion";
    struct clr_overlapped request = { 0 };
    HANDLE port = NULL, server, client;
    char buffer[256] = { 0 };
    WCHAR name[80];
    DWORD written;
    HRESULT hr;

    hr = activate_manager(manager, &clr->ICLRIoCompletionManager_iface, 1, 2);
    ok(hr == S_OK, "%s: SetCLRIoCompletionManager or the thread limits returned %#lx\n", how, hr);
    hr = IHostIoCompletionManager_CreateIoCompletionPort(manager, &port);
    ok(hr == S_OK, "%s: CreateIoCompletionPort returned %#lx\n", how, hr);
    swprintf(name, ARRAYSIZE(name), L"\\\\.\\pipe\\hostiocp-sxs-%lu-%lu", GetCurrentProcessId(), GetTickCount());
    server = CreateNamedPipeW(name, PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED,
                              PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT, 1, 4096, 4096, 0, NULL);
    ok(server != INVALID_HANDLE_VALUE, "%s: CreateNamedPipe failed: %lu\n", how, GetLastError());
    client = CreateFileW(name, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
    ok(client != INVALID_HANDLE_VALUE, "%s: opening the pipe failed: %lu\n", how, GetLastError());
    hr = IHostIoCompletionManager_Bind(manager, port, server);
    ok(hr == S_OK, "%s: Bind returned %#lx\n", how, hr);
    hr = IHostIoCompletionManager_InitializeHostOverlapped(manager, &request.overlapped);
    ok(hr == S_OK, "%s: InitializeHostOverlapped returned %#lx\n", how, hr);

    fake_clr_expect(clr, 1);
    if (!ReadFile(server, buffer, sizeof(buffer), NULL, &request.overlapped))
        ok(GetLastError() == ERROR_IO_PENDING, "%s: ReadFile failed: %lu\n", how, GetLastError());
    ok(WriteFile(client, message, sizeof(message), &written, NULL) && written == sizeof(message),
       "%s: WriteFile failed: %lu\n", how, GetLastError());
    ok(fake_clr_wait(clr, WAIT_MS), "%s: OnComplete was not called\n", how);
    ok(clr->calls == 1, "%s: %ld OnComplete calls\n", how, clr->calls);
    ok(clr->last_error == ERROR_SUCCESS, "%s: OnComplete error %lu\n", how, clr->last_error);
    ok(clr->last_bytes == sizeof(message), "%s: OnComplete with %lu bytes, expected %u\n", how,
       clr->last_bytes, (unsigned)sizeof(message));
    ok(clr->last_overlapped == &request.overlapped, "%s: OnComplete for %p, expected %p\n", how,
       clr->last_overlapped, &request.overlapped);
    ok(!memcmp(buffer, message, sizeof(message)), "%s: the pipe delivered %s\n", how, wine_dbgstr_a(buffer));

    CloseHandle(client);
    CloseHandle(server);
    hr = IHostIoCompletionManager_CloseIoCompletionPort(manager, port);
    ok(hr == S_OK, "%s: CloseIoCompletionPort returned %#lx\n", how, hr);
}

/* A ProgID from the manifest gives a CLSID that creates its class: in an activation context
 * that is an alias of the class's CLSID, which CoCreateInstance resolves. */
static void check_progid(const WCHAR *progid, const IID *iid, const char *how)
{
    IUnknown *object = NULL;
    CLSID clsid;
    HRESULT hr;

    hr = CLSIDFromProgID(progid, &clsid);
    ok(hr == S_OK, "%s: CLSIDFromProgID(%s) returned %#lx\n", how, wine_dbgstr_w(progid), hr);
    if (FAILED(hr))
        return;
    hr = CoCreateInstance(&clsid, NULL, CLSCTX_INPROC_SERVER, iid, (void **)&object);
    ok(hr == S_OK, "%s: CoCreateInstance(%s) by %s returned %#lx\n", how, wine_dbgstr_guid(&clsid),
       wine_dbgstr_w(progid), hr);
    if (object)
        ok(IUnknown_Release(object) == 0, "%s: references left on the object of %s\n", how, wine_dbgstr_w(progid));
}

/* What a CLR host does: both classes and the ProgIDs, and the manager from GetHostManager moves
 * bytes.  expected_dll is the copy of hostiocp.dll that must serve them. */
static void check_activation(const WCHAR *expected_dll, const char *how)
{
    IHostIoCompletionManager *manager = NULL, *own = NULL;
    struct fake_clr *clr;
    IHostControl *control;
    WCHAR loaded[MAX_PATH];
    HRESULT hr;

    hr = create_host_control(&control);
    ok(hr == S_OK, "%s: CoCreateInstance(CLSID_HostIoCpHostControl) returned %#lx\n", how, hr);
    if (FAILED(hr))
        return;
    loaded_dll(loaded);
    ok(!lstrcmpiW(loaded, expected_dll), "%s: hostiocp.dll was loaded from %s, expected %s\n", how,
       wine_dbgstr_w(loaded), wine_dbgstr_w(expected_dll));
    hr = IHostControl_GetHostManager(control, &IID_IHostIoCompletionManager, (void **)&manager);
    ok(hr == S_OK, "%s: GetHostManager returned %#lx\n", how, hr);
    clr = fake_clr_create();
    if (manager)
    {
        check_pipe_read(manager, clr, how);
        IHostIoCompletionManager_Release(manager);
    }
    /* The host control keeps the manager, and the manager the CLR's callback, until it goes. */
    ok(IHostControl_Release(control) == 0, "%s: host control references left\n", how);
    ok(clr->refs == 1, "%s: the manager kept %ld references to the CLR's callback\n", how, clr->refs - 1);
    fake_clr_destroy(clr);

    hr = CoCreateInstance(&CLSID_HostIoCompletionManager, NULL, CLSCTX_INPROC_SERVER,
                          &IID_IHostIoCompletionManager, (void **)&own);
    ok(hr == S_OK, "%s: CoCreateInstance(CLSID_HostIoCompletionManager) returned %#lx\n", how, hr);
    if (own)
        ok(IHostIoCompletionManager_Release(own) == 0, "%s: manager references left\n", how);
    check_progid(HOSTIOCP_MANAGER_PROGID, &IID_IHostIoCpStatistics, how);
    check_progid(HOSTIOCP_MANAGER_VI_PROGID, &IID_IHostIoCpSettings, how);
    check_progid(HOSTIOCP_HOST_CONTROL_PROGID, &IID_IHostControl, how);
    check_progid(HOSTIOCP_HOST_CONTROL_VI_PROGID, &IID_IHostControl, how);
}

/* Neither class nor ProgID is known here: what every process sees without a manifest. */
static void check_not_registered(const char *how)
{
    IHostIoCompletionManager *manager = (void *)0xdeadbeef;
    IHostControl *control;
    CLSID clsid;
    HRESULT hr;

    hr = CoCreateInstance(&CLSID_HostIoCompletionManager, NULL, CLSCTX_INPROC_SERVER,
                          &IID_IHostIoCompletionManager, (void **)&manager);
    ok(hr == REGDB_E_CLASSNOTREG && !manager, "%s: CoCreateInstance(CLSID_HostIoCompletionManager): %#lx, "
       "expected REGDB_E_CLASSNOTREG\n", how, hr);
    if (SUCCEEDED(hr))
        IHostIoCompletionManager_Release(manager);
    hr = create_host_control(&control);
    ok(hr == REGDB_E_CLASSNOTREG, "%s: CoCreateInstance(CLSID_HostIoCpHostControl): %#lx, "
       "expected REGDB_E_CLASSNOTREG\n", how, hr);
    if (SUCCEEDED(hr))
        IHostControl_Release(control);
    hr = CLSIDFromProgID(HOSTIOCP_HOST_CONTROL_PROGID, &clsid);
    ok(hr == CO_E_CLASSSTRING, "%s: CLSIDFromProgID(%s): %#lx, expected CO_E_CLASSSTRING\n", how,
       wine_dbgstr_w(HOSTIOCP_HOST_CONTROL_PROGID), hr);
}

static HRESULT try_manager_class(void)
{
    IUnknown *object = NULL;
    HRESULT hr = CoCreateInstance(&CLSID_HostIoCompletionManager, NULL, CLSCTX_INPROC_SERVER, &IID_IUnknown,
                                  (void **)&object);

    if (object)
        IUnknown_Release(object);
    return hr;
}

/* Natively (make check's HOSTIOCP_NATIVE, one registry for every test) unregisters the DLL under
 * test where it is registered; TRUE if it did, so that the end of the test registers it again.
 * Under Wine the test has a prefix of its own, which must be found unregistered. */
static BOOL unregister_for_the_test(const WCHAR *dll)
{
    char native[4];
    DWORD code;

    if (!GetEnvironmentVariableA("HOSTIOCP_NATIVE", native, sizeof(native)) || strcmp(native, "1") ||
        try_manager_class() == REGDB_E_CLASSNOTREG)
        return FALSE;
    code = run_regsvr32(L"/u", dll);
    ok(code == 0, "regsvr32 /u %s exited with %lu\n", wine_dbgstr_w(dll), code);
    return TRUE;
}

static void register_again(const WCHAR *dll)
{
    DWORD code = run_regsvr32(L"", dll);

    ok(code == 0, "regsvr32 %s exited with %lu: the DLL under test is no longer registered\n",
       wine_dbgstr_w(dll), code);
    ok(try_manager_class() == S_OK, "CLSID_HostIoCompletionManager does not activate after registering again\n");
}

/* Everything below needs a scope where nothing registered hostiocp. */
static BOOL test_nothing_is_registered(void)
{
    HRESULT hr = try_manager_class();

    ok(hr == REGDB_E_CLASSNOTREG, "CLSID_HostIoCompletionManager is registered (CoCreateInstance returned "
       "%#lx, expected REGDB_E_CLASSNOTREG): under Wine these tests need a prefix where nothing is registered "
       "(make check runs them in wineprefix-unregistered); natively, another copy of hostiocp is registered\n", hr);
    if (hr != REGDB_E_CLASSNOTREG)
        return FALSE;
    check_not_registered("no manifest");
    return TRUE;
}

/* What the manifest says: this CPU and the DLL's version. */
static void test_manifest_identity(const WCHAR *manifest)
{
    char text[8192], identity[160];

    read_file(manifest, text, sizeof(text));
    snprintf(identity, sizeof(identity), "<assemblyIdentity type=\"win32\" name=\"hostiocp\" version=\"%s\" "
             "processorArchitecture=\"" THIS_ARCH "\"/>", assembly_version);
    ok(strstr(text, identity) != NULL, "%s does not say %s\n", wine_dbgstr_w(manifest), identity);
    ok(strstr(text, "<file name=\"hostiocp.dll\">") != NULL, "%s names no hostiocp.dll\n", wine_dbgstr_w(manifest));
}

/* The host brackets activation with an activation context made from hostiocp.manifest. */
static void test_activation_context(const WCHAR *manifest, const WCHAR *dll)
{
    ACTCTXW actctx = { 0 };
    ULONG_PTR cookie;
    HANDLE context;

    actctx.cbSize = sizeof(actctx);
    actctx.lpSource = manifest;
    context = CreateActCtxW(&actctx);
    ok(context != INVALID_HANDLE_VALUE, "CreateActCtxW(%s) failed: %lu\n", wine_dbgstr_w(manifest), GetLastError());
    if (context == INVALID_HANDLE_VALUE)
        return;
    ok(ActivateActCtx(context, &cookie), "ActivateActCtx failed: %lu\n", GetLastError());
    check_activation(dll, "activation context");
    ok(DeactivateActCtx(0, cookie), "DeactivateActCtx failed: %lu\n", GetLastError());
    check_not_registered("after DeactivateActCtx");
    ReleaseActCtx(context);
}

/* A folder that has the DLL but no manifest gives no activation context, and no class. */
static void test_no_manifest(const WCHAR *dll)
{
    ACTCTXW actctx = { 0 };
    WCHAR folder[MAX_PATH], manifest[MAX_PATH];
    HANDLE context;

    make_work_folder(L"no-manifest", folder);
    copy_into(dll, folder, L"hostiocp.dll");
    swprintf(manifest, MAX_PATH, L"%ls\\hostiocp.manifest", folder);
    actctx.cbSize = sizeof(actctx);
    actctx.lpSource = manifest;
    SetLastError(0xdeadbeef);
    context = CreateActCtxW(&actctx);
    ok(context == INVALID_HANDLE_VALUE && GetLastError() == ERROR_FILE_NOT_FOUND,
       "CreateActCtxW with no manifest: %p, error %lu, expected ERROR_FILE_NOT_FOUND\n", context, GetLastError());
    if (context != INVALID_HANDLE_VALUE)
        ReleaseActCtx(context);
    check_not_registered("a folder with the DLL and no manifest");
}

/* The other CPU's assembly (build\wine-tests\other-cpu: hostiocp.manifest made for the other
 * CPU and a DLL built for it) is refused: no activation context, or a class that cannot load. */
static void test_other_cpu_assembly(void)
{
    ACTCTXW actctx = { 0 };
    WCHAR manifest[MAX_PATH], dll[MAX_PATH];
    IHostControl *control = (void *)0xdeadbeef;
    char text[8192];
    ULONG_PTR cookie;
    HANDLE context;
    HRESULT hr;

    build_path(L"wine-tests\\other-cpu\\hostiocp.manifest", manifest);
    build_path(L"wine-tests\\other-cpu\\hostiocp.dll", dll);
    read_file(manifest, text, sizeof(text));
    ok(strstr(text, "processorArchitecture=\"" OTHER_ARCH "\"") != NULL, "%s is not for " OTHER_ARCH "\n",
       wine_dbgstr_w(manifest));
    if (GetFileAttributesW(dll) == INVALID_FILE_ATTRIBUTES)
    {
        skip("no DLL for the other CPU: configure found no compiler for it (OTHER_CPU_CC)\n");
        return;
    }
    actctx.cbSize = sizeof(actctx);
    actctx.lpSource = manifest;
    SetLastError(0xdeadbeef);
    context = CreateActCtxW(&actctx);
    if (context == INVALID_HANDLE_VALUE)
    {
        ok(GetLastError() != ERROR_SUCCESS, "CreateActCtxW refused the other CPU's manifest with no error\n");
        trace("CreateActCtxW refused the other CPU's manifest with error %lu\n", GetLastError());
        return;
    }
    /* Wine 8 makes the context (it ignores processorArchitecture); the loader refuses the DLL. */
    ok(ActivateActCtx(context, &cookie), "ActivateActCtx failed: %lu\n", GetLastError());
    hr = create_host_control(&control);
    ok(hr == E_ACCESSDENIED && !control, "CoCreateInstance with the other CPU's assembly: %#lx, %p, "
       "expected E_ACCESSDENIED (the DLL cannot load)\n", hr, control);
    if (SUCCEEDED(hr))
        IHostControl_Release(control);
    ok(DeactivateActCtx(0, cookie), "DeactivateActCtx failed: %lu\n", GetLastError());
    ReleaseActCtx(context);
    check_not_registered("after the other CPU's assembly");
}

/* An application folder: a copy of this program with an application manifest that depends on
 * hostiocp of this CPU and the DLL's version, and the assembly (manifest and DLL) beside it or in
 * a hostiocp\ folder of its own.  Gives the application's folder and where its DLL is. */
static void make_application(const WCHAR *name, BOOL subfolder, const WCHAR *manifest, const WCHAR *dll,
                             WCHAR *app, WCHAR *app_dll)
{
    WCHAR assembly[MAX_PATH], self[MAX_PATH], path[MAX_PATH];
    char app_manifest[1024];

    make_work_folder(name, app);
    GetModuleFileNameW(NULL, self, MAX_PATH);
    copy_into(self, app, L"sxs-app.exe");
    snprintf(app_manifest, sizeof(app_manifest),
             "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n"
             "<assembly xmlns=\"urn:schemas-microsoft-com:asm.v1\" manifestVersion=\"1.0\">\n"
             "  <assemblyIdentity type=\"win32\" name=\"hostiocp.sxs-app\" version=\"1.0.0.0\" "
             "processorArchitecture=\"" THIS_ARCH "\"/>\n"
             "  <dependency>\n"
             "    <dependentAssembly>\n"
             "      <assemblyIdentity type=\"win32\" name=\"hostiocp\" version=\"%s\" "
             "processorArchitecture=\"" THIS_ARCH "\"/>\n"
             "    </dependentAssembly>\n"
             "  </dependency>\n"
             "</assembly>\n", assembly_version);
    swprintf(path, MAX_PATH, L"%ls\\sxs-app.exe.manifest", app);
    write_file(path, app_manifest);
    lstrcpyW(assembly, app);
    if (subfolder)
    {
        swprintf(assembly, MAX_PATH, L"%ls\\hostiocp", app);
        ok(CreateDirectoryW(assembly, NULL), "cannot make %s: %lu\n", wine_dbgstr_w(assembly), GetLastError());
    }
    copy_into(dll, assembly, L"hostiocp.dll");
    copy_into(manifest, assembly, L"hostiocp.manifest");
    swprintf(app_dll, MAX_PATH, L"%ls\\hostiocp.dll", assembly);
}

/* Starts the application's copy of this program as "sxs MODE ARGUMENT", with this one's output. */
static BOOL start_application(const WCHAR *app, const WCHAR *mode, const WCHAR *argument,
                              PROCESS_INFORMATION *process)
{
    WCHAR command[MAX_PATH * 3];
    STARTUPINFOW startup = { 0 };

    swprintf(command, ARRAYSIZE(command), L"\"%ls\\sxs-app.exe\" sxs %ls \"%ls\"", app, mode, argument);
    startup.cb = sizeof(startup);
    startup.dwFlags = STARTF_USESTDHANDLES;
    startup.hStdInput = GetStdHandle(STD_INPUT_HANDLE);
    startup.hStdOutput = GetStdHandle(STD_OUTPUT_HANDLE);
    startup.hStdError = GetStdHandle(STD_ERROR_HANDLE);
    return CreateProcessW(NULL, command, NULL, NULL, TRUE, 0, NULL, app, &startup, process);
}

/* The dependency in the application's manifest is all it takes: the child activates both
 * classes from the application's copy of the DLL and moves bytes. */
static void test_application_manifest(const WCHAR *name, BOOL subfolder, const WCHAR *manifest, const WCHAR *dll)
{
    WCHAR app[MAX_PATH], app_dll[MAX_PATH];
    PROCESS_INFORMATION process;

    make_application(name, subfolder, manifest, dll, app, app_dll);
    if (!start_application(app, L"child", app_dll, &process))
    {
        ok(0, "cannot run the application in %s: %lu\n", wine_dbgstr_w(app), GetLastError());
        return;
    }
    wait_child_process(process.hProcess);
    CloseHandle(process.hThread);
    CloseHandle(process.hProcess);
}

/* An application whose dependency names this CPU, given the other CPU's manifest: Windows does
 * not start it (the identity found is not the one asked for).  Wine 8 ignores
 * processorArchitecture and starts it with the dependency bound. */
static void test_application_other_cpu_manifest(const WCHAR *dll)
{
    WCHAR app[MAX_PATH], app_dll[MAX_PATH], other[MAX_PATH];
    PROCESS_INFORMATION process;
    BOOL started;

    build_path(L"wine-tests\\other-cpu\\hostiocp.manifest", other);
    make_application(L"app-other-cpu", FALSE, other, dll, app, app_dll);
    SetLastError(0xdeadbeef);
    started = start_application(app, L"idle", app_dll, &process);
    todo_wine
    ok(!started && GetLastError() == ERROR_SXS_CANT_GEN_ACTCTX, "an application bound to the other CPU's "
       "manifest: started %d, error %lu, expected ERROR_SXS_CANT_GEN_ACTCTX\n", started, GetLastError());
    if (!started)
        return;
    wait_child_process(process.hProcess);
    CloseHandle(process.hThread);
    CloseHandle(process.hProcess);
}

/* In the application's process: the dependency in its manifest makes both classes known. */
static void child(const char *expected_dll)
{
    WCHAR expected[MAX_PATH];

    MultiByteToWideChar(CP_ACP, 0, expected_dll, -1, expected, MAX_PATH);
    CoInitializeEx(NULL, COINIT_MULTITHREADED);
    check_activation(expected, "application manifest");
    CoUninitialize();
}

/* hostiocp-host --manifest runs its workload through an activation context, here where
 * nothing is registered; without it the host says to register. */
static void test_host_program(const WCHAR *manifest)
{
    WCHAR host[MAX_PATH], command[MAX_PATH * 3];
    char output[4096];
    DWORD code;

    build_path(L"host\\hostiocp-host.exe", host);
    swprintf(command, ARRAYSIZE(command), L"\"%ls\" --quiet --manifest \"%ls\" --workload pipe --operations 200 "
             L"--concurrency 2", host, manifest);
    code = run_command_output(command, output, sizeof(output));
    ok(code == 0, "hostiocp-host --manifest exited with %lu: %s\n", code, output);
    ok(strstr(output, "all bytes verified") != NULL,
       "hostiocp-host --manifest did not verify its bytes: %s\n", output);

    swprintf(command, ARRAYSIZE(command), L"\"%ls\" --activate-only", host);
    code = run_command_output(command, output, sizeof(output));
    ok(code == 1, "hostiocp-host with nothing registered exited with %lu: %s\n", code, output);
    ok(strstr(output, "hostiocp is not registered") != NULL, "hostiocp-host with nothing registered said %s\n",
       wine_dbgstr_a(output));
}

static void test_registration_free(const WCHAR *dll, const WCHAR *manifest)
{
    GetTempPathW(MAX_PATH, work_dir);
    swprintf(work_dir + lstrlenW(work_dir), MAX_PATH - lstrlenW(work_dir), L"hostiocp-sxs-%lu", GetCurrentProcessId());
    ok(CreateDirectoryW(work_dir, NULL), "cannot make %s: %lu\n", wine_dbgstr_w(work_dir), GetLastError());

    test_manifest_identity(manifest);
    test_no_manifest(dll);
    test_other_cpu_assembly();
    test_activation_context(manifest, dll);
    test_application_manifest(L"app", FALSE, manifest, dll);
    test_application_manifest(L"app-subfolder", TRUE, manifest, dll);
    test_application_other_cpu_manifest(dll);
    test_host_program(manifest);
    remove_tree(work_dir);
}

START_TEST(sxs)
{
    WCHAR dll[MAX_PATH], manifest[MAX_PATH], *slash;
    BOOL was_registered;
    char **argv;
    int argc = winetest_get_mainargs(&argv);

    if (argc >= 4 && !strcmp(argv[2], "child"))
    {
        child(argv[3]);
        return;
    }
    if (argc >= 3 && !strcmp(argv[2], "idle"))
        return;

    get_dll_path(dll, ARRAYSIZE(dll));
    lstrcpyW(build_dir, dll);
    if ((slash = wcsrchr(build_dir, '\\')))
        *slash = 0;
    build_path(L"hostiocp.manifest", manifest);
    get_assembly_version(dll);

    CoInitializeEx(NULL, COINIT_MULTITHREADED);
    was_registered = unregister_for_the_test(dll);
    if (test_nothing_is_registered())
        test_registration_free(dll, manifest);
    if (was_registered)
        register_again(dll);
    CoUninitialize();
}
