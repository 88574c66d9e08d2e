/* Tracing: the HOSTIOCP_TRACE setting and the lines it turns on.  It calls nothing else of
 * hostiocp's, so that every other part may trace. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "debug.h"

BOOL hostiocp_trace_enabled;
BOOL hostiocp_warn_enabled;
BOOL hostiocp_policy_trace_enabled;

/* The longest line, with its "\n" and null; the rest of a longer one is cut. */
#define MAX_LINE 512

void hostiocp_debug_line(const char *marker, const char *function, const char *format, ...)
{
    char line[MAX_LINE];
    int prefix = snprintf(line, sizeof(line), "hostiocp[%04lx]: %s%s%s", GetCurrentThreadId(), marker,
                          function ? function : "", function ? " " : "");
    va_list args;

    va_start(args, format);
    vsnprintf(line + prefix, sizeof(line) - prefix - 1, format, args);
    va_end(args);
    strcat(line, "\n");
    OutputDebugStringA(line);
}

C_ASSERT(sizeof("{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}") == GUID_STRING_SIZE);

/* Wine's debugstr_guid: "{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}", or "(null)", in one of eight
 * buffers that calls take in turn, so that a line can format a few GUIDs while other threads
 * trace too. */
const char *debugstr_guid(const GUID *guid)
{
    static char buffers[8][GUID_STRING_SIZE];
    static volatile LONG next;
    char *buffer;

    if (!guid)
        return "(null)";
    buffer = buffers[(ULONG)InterlockedIncrement(&next) % ARRAYSIZE(buffers)];
    snprintf(buffer, sizeof(buffers[0]), "{%08lx-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x}",
             (unsigned long)guid->Data1, guid->Data2, guid->Data3, guid->Data4[0], guid->Data4[1],
             guid->Data4[2], guid->Data4[3], guid->Data4[4], guid->Data4[5], guid->Data4[6], guid->Data4[7]);
    return buffer;
}

/* HOSTIOCP_TRACE=warn: warnings only; =policy: warnings and the thread policy's decisions; any
 * other value but 0: trace and warnings. */
void debug_init(void)
{
    char value[8];  /* room for each word that chooses less; a longer value is none of them */
    DWORD length = GetEnvironmentVariableA("HOSTIOCP_TRACE", value, sizeof(value));
    BOOL fits = length < sizeof(value);

    if (!length || (fits && !strcmp(value, "0")))
        return;
    hostiocp_warn_enabled = TRUE;
    hostiocp_policy_trace_enabled = !fits || lstrcmpiA(value, "warn") != 0;
    hostiocp_trace_enabled = hostiocp_policy_trace_enabled && (!fits || lstrcmpiA(value, "policy") != 0);
}
