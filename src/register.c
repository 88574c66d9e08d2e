/* Registration: the keys regsvr32 writes and removes, per machine (HKLM) or per user (HKCU).
 *
 * Registering writes the table below, journalling every key it creates and every value it
 * replaces, and undoes the journal if any step fails.  Unregistering removes only values that
 * still hold what this module would write, then the keys that are left empty.  Under WOW64 the
 * CLSID keys exist once per bitness but the ProgID and TypeLib keys are shared; those stay while
 * the other bitness is still registered. */
#include <stdio.h>
#include "hostiocp_private.h"

#ifdef _WIN64
#define TYPELIB_PLATFORM L"win64"
#define OTHER_VIEW KEY_WOW64_32KEY
#else
#define TYPELIB_PLATFORM L"win32"
#define OTHER_VIEW KEY_WOW64_64KEY
#endif

/* What a value holds: its text, this module's path, or the text of a GUID from the IDL. */
enum value_kind { TEXT, MODULE_PATH, CLASS_ID, LIBRARY_ID };

struct reg_entry
{
    const CLSID *clsid;     /* the class that "{clsid}" in key and CLASS_ID values stand for */
    const WCHAR *key;       /* under Software\Classes; "{clsid}" and "{libid}" stand for the GUIDs */
    const WCHAR *name;      /* NULL: the key's default value */
    enum value_kind kind;
    const WCHAR *text;
    BOOL shared;            /* one key for both bitnesses */
};

#define CLASS_ENTRIES(clsid, description, progid, vi_progid) \
    { clsid, L"CLSID\\{clsid}", NULL, TEXT, description, FALSE }, \
    { clsid, L"CLSID\\{clsid}\\InprocServer32", NULL, MODULE_PATH, NULL, FALSE }, \
    { clsid, L"CLSID\\{clsid}\\InprocServer32", L"ThreadingModel", TEXT, L"Both", FALSE }, \
    { clsid, L"CLSID\\{clsid}\\ProgID", NULL, TEXT, progid, FALSE }, \
    { clsid, L"CLSID\\{clsid}\\VersionIndependentProgID", NULL, TEXT, vi_progid, FALSE }, \
    { clsid, L"CLSID\\{clsid}\\TypeLib", NULL, LIBRARY_ID, NULL, FALSE }, \
    { clsid, L"CLSID\\{clsid}\\Version", NULL, TEXT, L"1.0", FALSE }, \
    { clsid, progid, NULL, TEXT, description, TRUE }, \
    { clsid, progid L"\\CLSID", NULL, CLASS_ID, NULL, TRUE }, \
    { clsid, vi_progid, NULL, TEXT, description, TRUE }, \
    { clsid, vi_progid L"\\CLSID", NULL, CLASS_ID, NULL, TRUE }, \
    { clsid, vi_progid L"\\CurVer", NULL, TEXT, progid, TRUE }

static const struct reg_entry registry_table[] =
{
    CLASS_ENTRIES(&CLSID_HostIoCompletionManager, HOSTIOCP_MANAGER_DESCRIPTION,
                  HOSTIOCP_MANAGER_PROGID, HOSTIOCP_MANAGER_VI_PROGID),
    CLASS_ENTRIES(&CLSID_HostIoCpHostControl, HOSTIOCP_HOST_CONTROL_DESCRIPTION,
                  HOSTIOCP_HOST_CONTROL_PROGID, HOSTIOCP_HOST_CONTROL_VI_PROGID),
    { NULL, L"TypeLib\\{libid}\\1.0", NULL, TEXT, HOSTIOCP_TYPELIB_DESCRIPTION, TRUE },
    { NULL, L"TypeLib\\{libid}\\1.0\\FLAGS", NULL, TEXT, L"0", TRUE },
    /* No help files: an empty HELPDIR, the same for both bitnesses, so that the last one to go
     * removes it whichever folder each was registered from. */
    { NULL, L"TypeLib\\{libid}\\1.0\\HELPDIR", NULL, TEXT, L"", TRUE },
    { NULL, L"TypeLib\\{libid}\\1.0\\0\\" TYPELIB_PLATFORM, NULL, MODULE_PATH, NULL, FALSE },
};

#define MAX_KEY_PATH 256
#define MAX_JOURNAL 64
/* A file's path in its long form, which may be longer than MAX_PATH. */
#define MAX_LONG_PATH (MAX_PATH * 4)

/* What stands for the class's and the type library's GUID in a key of the table. */
#define CLSID_PLACEHOLDER L"{clsid}"
#define LIBID_PLACEHOLDER L"{libid}"
#define PLACEHOLDER_LENGTH (ARRAYSIZE(CLSID_PLACEHOLDER) - 1)
C_ASSERT(ARRAYSIZE(LIBID_PLACEHOLDER) - 1 == PLACEHOLDER_LENGTH);

struct module_paths
{
    WCHAR path[MAX_LONG_PATH];   /* the long form, whatever path the module was loaded by */
};

struct replaced_value
{
    const struct reg_entry *entry;
    BOOL existed;
    DWORD type;
    BYTE *data;
    DWORD size;
};

struct journal
{
    WCHAR created_keys[MAX_JOURNAL][MAX_KEY_PATH];
    unsigned int key_count;
    struct replaced_value values[MAX_JOURNAL];
    unsigned int value_count;
};

static HKEY scope_hive(enum registration_scope scope)
{
    return scope == SCOPE_USER ? HKEY_CURRENT_USER : HKEY_LOCAL_MACHINE;
}

/* The long form of a path, in place; a path that does not resolve stays as it is. */
static void to_long_path(WCHAR *path, DWORD size)
{
    WCHAR long_path[MAX_LONG_PATH];
    DWORD length = GetLongPathNameW(path, long_path, ARRAYSIZE(long_path));

    if (length && length < ARRAYSIZE(long_path) && length < size)
        lstrcpyW(path, long_path);
}

static HRESULT get_module_paths(struct module_paths *paths)
{
    DWORD length = GetModuleFileNameW(hostiocp_instance, paths->path, ARRAYSIZE(paths->path));

    if (!length || length >= ARRAYSIZE(paths->path))
        return HRESULT_FROM_WIN32(length ? ERROR_INSUFFICIENT_BUFFER : GetLastError());
    to_long_path(paths->path, ARRAYSIZE(paths->path));
    return S_OK;
}

static BOOL starts_with(const WCHAR *text, const WCHAR *prefix)
{
    return !wcsncmp(text, prefix, wcslen(prefix));
}

/* The key of an entry, with the GUIDs written out. */
static LONG entry_key(const struct reg_entry *entry, WCHAR key[MAX_KEY_PATH])
{
    WCHAR guid[GUID_STRING_SIZE];
    const WCHAR *in = entry->key;
    size_t used = 0;

    while (*in)
    {
        const WCHAR *insert = NULL;
        size_t length;

        if (starts_with(in, CLSID_PLACEHOLDER) && StringFromGUID2(entry->clsid, guid, ARRAYSIZE(guid)))
            insert = guid;
        else if (starts_with(in, LIBID_PLACEHOLDER) && StringFromGUID2(&LIBID_HostIoCpLib, guid, ARRAYSIZE(guid)))
            insert = guid;
        length = insert ? wcslen(insert) : 1;
        if (used + length >= MAX_KEY_PATH)
            return ERROR_BUFFER_OVERFLOW;
        memcpy(key + used, insert ? insert : in, length * sizeof(WCHAR));
        used += length;
        in += insert ? PLACEHOLDER_LENGTH : 1;
    }
    key[used] = 0;
    return ERROR_SUCCESS;
}

static const WCHAR *entry_data(const struct reg_entry *entry, const struct module_paths *paths,
                               WCHAR guid[GUID_STRING_SIZE])
{
    switch (entry->kind)
    {
    case MODULE_PATH: return paths->path;
    case CLASS_ID: return StringFromGUID2(entry->clsid, guid, GUID_STRING_SIZE) ? guid : L"";
    case LIBRARY_ID: return StringFromGUID2(&LIBID_HostIoCpLib, guid, GUID_STRING_SIZE) ? guid : L"";
    case TEXT: break;
    }
    return entry->text;
}

static DWORD string_size(const WCHAR *text)
{
    return (DWORD)((lstrlenW(text) + 1) * sizeof(WCHAR));
}

static LONG open_classes(enum registration_scope scope, REGSAM access, HKEY *classes)
{
    LONG status = registry_fault();

    return status ? status : RegOpenKeyExW(scope_hive(scope), L"Software\\Classes", 0, access, classes);
}

/* A new user profile may have no Software\Classes yet; it is the system's key, not ours. */
static LONG create_classes(enum registration_scope scope, HKEY *classes)
{
    LONG status = registry_fault();

    return status ? status : RegCreateKeyExW(scope_hive(scope), L"Software\\Classes", 0, NULL,
                                             REG_OPTION_NON_VOLATILE, KEY_READ | KEY_WRITE, NULL, classes, NULL);
}

/* Creates a key one component at a time so that the journal knows which ones are new. */
static LONG create_key_journalled(HKEY classes, const WCHAR *path, struct journal *journal, HKEY *key)
{
    WCHAR partial[MAX_KEY_PATH];
    const WCHAR *end = path;
    LONG status;

    for (;;)
    {
        DWORD disposition;
        size_t length;

        end = wcschr(end, '\\');
        length = end ? (size_t)(end - path) : wcslen(path);
        if (length >= MAX_KEY_PATH)
            return ERROR_BUFFER_OVERFLOW;
        memcpy(partial, path, length * sizeof(WCHAR));
        partial[length] = 0;
        if (!(status = registry_fault()))
            status = RegCreateKeyExW(classes, partial, 0, NULL, REG_OPTION_NON_VOLATILE,
                                     KEY_READ | KEY_WRITE, NULL, key, &disposition);
        if (status)
            return status;
        if (disposition == REG_CREATED_NEW_KEY)
        {
            if (journal->key_count == MAX_JOURNAL)
            {
                RegCloseKey(*key);
                RegDeleteKeyW(classes, partial);
                return ERROR_BUFFER_OVERFLOW;
            }
            lstrcpyW(journal->created_keys[journal->key_count++], partial);
        }
        if (!end)
            return ERROR_SUCCESS;
        RegCloseKey(*key);
        end++;
    }
}

static LONG remember_old_value(HKEY key, const struct reg_entry *entry, struct journal *journal)
{
    struct replaced_value *old;
    LONG status;

    if (journal->value_count == MAX_JOURNAL)
        return ERROR_BUFFER_OVERFLOW;
    old = &journal->values[journal->value_count];
    old->entry = entry;
    old->data = NULL;
    old->size = 0;
    if (!(status = registry_fault()))
        status = RegQueryValueExW(key, entry->name, NULL, &old->type, NULL, &old->size);
    old->existed = status == ERROR_SUCCESS;
    if (status != ERROR_SUCCESS && status != ERROR_FILE_NOT_FOUND)
        return status;
    if (old->existed && old->size)
    {
        if (!(old->data = heap_alloc(0, old->size)))
            return ERROR_OUTOFMEMORY;
        status = RegQueryValueExW(key, entry->name, NULL, &old->type, old->data, &old->size);
        if (status)
        {
            HeapFree(GetProcessHeap(), 0, old->data);
            return status;
        }
    }
    journal->value_count++;
    return ERROR_SUCCESS;
}

static void undo_journal(HKEY classes, struct journal *journal)
{
    while (journal->value_count)
    {
        struct replaced_value *old = &journal->values[--journal->value_count];
        WCHAR path[MAX_KEY_PATH];
        HKEY key;

        if (!entry_key(old->entry, path) && !RegOpenKeyExW(classes, path, 0, KEY_SET_VALUE, &key))
        {
            if (old->existed)
                RegSetValueExW(key, old->entry->name, 0, old->type, old->data, old->size);
            else
                RegDeleteValueW(key, old->entry->name);
            RegCloseKey(key);
        }
    }
    while (journal->key_count)
        RegDeleteKeyW(classes, journal->created_keys[--journal->key_count]);
}

static void free_journal(struct journal *journal)
{
    unsigned int i;

    for (i = 0; i < journal->value_count; i++)
        HeapFree(GetProcessHeap(), 0, journal->values[i].data);
}

static LONG write_entry(HKEY classes, const struct reg_entry *entry,
                        const struct module_paths *paths, struct journal *journal)
{
    WCHAR path[MAX_KEY_PATH], guid[GUID_STRING_SIZE];
    const WCHAR *data = entry_data(entry, paths, guid);
    HKEY key;
    LONG status = entry_key(entry, path);

    if (!status)
        status = create_key_journalled(classes, path, journal, &key);
    if (status)
        return status;
    status = remember_old_value(key, entry, journal);
    if (!status)
        status = registry_fault();
    if (!status)
        status = RegSetValueExW(key, entry->name, 0, REG_SZ, (const BYTE *)data, string_size(data));
    RegCloseKey(key);
    return status;
}

HRESULT register_server(enum registration_scope scope)
{
    struct module_paths paths;
    struct journal *journal;
    HKEY classes;
    LONG status;
    size_t i;
    HRESULT hr = get_module_paths(&paths);

    if (FAILED(hr))
        return hr;
    if ((status = create_classes(scope, &classes)))
        return HRESULT_FROM_WIN32(status);
    if (!(journal = heap_alloc(HEAP_ZERO_MEMORY, sizeof(*journal))))
    {
        RegCloseKey(classes);
        return E_OUTOFMEMORY;
    }
    for (i = 0, status = ERROR_SUCCESS; i < ARRAYSIZE(registry_table) && !status; i++)
        status = write_entry(classes, &registry_table[i], &paths, journal);
    if (status)
    {
        TRACE("registration failed with error %ld; undoing it", status);
        undo_journal(classes, journal);
    }
    free_journal(journal);
    HeapFree(GetProcessHeap(), 0, journal);
    RegCloseKey(classes);
    return HRESULT_FROM_WIN32(status);
}

/* A path value is ours if it names our file, however it is spelt (8.3 names, case). */
static BOOL value_is_ours(HKEY key, const struct reg_entry *entry, const WCHAR *expected)
{
    WCHAR data[MAX_LONG_PATH];
    DWORD size = sizeof(data) - sizeof(WCHAR), type;

    if (RegQueryValueExW(key, entry->name, NULL, &type, (BYTE *)data, &size) || type != REG_SZ)
        return FALSE;
    data[size / sizeof(WCHAR)] = 0;
    if (entry->kind == MODULE_PATH)
        to_long_path(data, ARRAYSIZE(data));
    return !lstrcmpiW(data, expected);
}

static LONG remove_value_if_ours(HKEY classes, const struct reg_entry *entry,
                                 const struct module_paths *paths)
{
    WCHAR path[MAX_KEY_PATH], guid[GUID_STRING_SIZE];
    LONG status;
    HKEY key;

    if ((status = entry_key(entry, path)))
        return status;
    if (!(status = registry_fault()))
        status = RegOpenKeyExW(classes, path, 0, KEY_READ | KEY_SET_VALUE, &key);
    if (status == ERROR_FILE_NOT_FOUND)
        return ERROR_SUCCESS;
    if (status)
        return status;
    if (value_is_ours(key, entry, entry_data(entry, paths, guid)) && !(status = registry_fault()))
        status = RegDeleteValueW(key, entry->name);
    RegCloseKey(key);
    return status == ERROR_FILE_NOT_FOUND ? ERROR_SUCCESS : status;
}

static BOOL key_is_empty(HKEY classes, const WCHAR *path)
{
    DWORD subkeys, values;
    HKEY key;
    LONG status;

    if (RegOpenKeyExW(classes, path, 0, KEY_READ, &key))
        return FALSE;
    status = RegQueryInfoKeyW(key, NULL, NULL, NULL, &subkeys, NULL, NULL, &values,
                              NULL, NULL, NULL, NULL);
    RegCloseKey(key);
    return !status && !subkeys && !values;
}

/* Deletes the key and then its parents while they are empty, never CLSID or TypeLib itself. */
static void prune_empty_keys(HKEY classes, const WCHAR *path)
{
    WCHAR partial[MAX_KEY_PATH];
    unsigned int floor = starts_with(path, L"CLSID\\") || starts_with(path, L"TypeLib\\") ? 1 : 0;
    WCHAR *slash;
    unsigned int depth = 0;

    lstrcpynW(partial, path, MAX_KEY_PATH);
    for (slash = partial; (slash = wcschr(slash, '\\')); slash++)
        depth++;
    while (depth >= floor && key_is_empty(classes, partial) && !RegDeleteKeyW(classes, partial))
    {
        if (!depth-- || !(slash = wcsrchr(partial, '\\')))
            break;
        *slash = 0;
    }
}

static BOOL other_bitness_registered(enum registration_scope scope)
{
    static const CLSID *const classes[] = { &CLSID_HostIoCompletionManager, &CLSID_HostIoCpHostControl };
    size_t i;

    for (i = 0; i < ARRAYSIZE(classes); i++)
    {
        WCHAR path[MAX_KEY_PATH], guid[GUID_STRING_SIZE];
        HKEY key;

        StringFromGUID2(classes[i], guid, GUID_STRING_SIZE);
        swprintf(path, MAX_KEY_PATH, L"Software\\Classes\\CLSID\\%ls\\InprocServer32", guid);
        if (!RegOpenKeyExW(scope_hive(scope), path, 0, KEY_READ | OTHER_VIEW, &key))
        {
            RegCloseKey(key);
            return TRUE;
        }
    }
    return FALSE;
}

static LONG unregister_entries(HKEY classes, const struct module_paths *paths, BOOL shared)
{
    WCHAR path[MAX_KEY_PATH];
    size_t i;
    LONG status;

    for (i = ARRAYSIZE(registry_table); i-- > 0;)
    {
        if (registry_table[i].shared != shared)
            continue;
        if ((status = remove_value_if_ours(classes, &registry_table[i], paths)) ||
            (status = entry_key(&registry_table[i], path)))
            return status;
        prune_empty_keys(classes, path);
    }
    return ERROR_SUCCESS;
}

HRESULT unregister_server(enum registration_scope scope)
{
    struct module_paths paths;
    HKEY classes;
    LONG status;
    HRESULT hr = get_module_paths(&paths);

    if (FAILED(hr))
        return hr;
    status = open_classes(scope, KEY_READ | KEY_WRITE, &classes);
    if (status == ERROR_FILE_NOT_FOUND)
        return S_OK;
    if (status)
        return HRESULT_FROM_WIN32(status);
    status = unregister_entries(classes, &paths, FALSE);
    if (!status && !other_bitness_registered(scope))
        status = unregister_entries(classes, &paths, TRUE);
    RegCloseKey(classes);
    return HRESULT_FROM_WIN32(status);
}
