/* Tracing, a leaf that every part of hostiocp may use: lines to OutputDebugString, with
 * "hostiocp[tid]: " first.
 *
 * HOSTIOCP_TRACE=1 turns on TRACE, TRACE_POLICY and WARN lines, HOSTIOCP_TRACE=policy only
 * TRACE_POLICY and WARN lines, HOSTIOCP_TRACE=warn only WARN lines; read once, when the DLL
 * loads.  TRACE(...) and TRACE_POLICY(...) print their line as it is; TRACE_CALL(...), for a COM
 * method's entry, and WARN(...) name the function first, as Wine's debug channels do, and WARN
 * lines say "warn: " before it. */
#ifndef HOSTIOCP_DEBUG_H
#define HOSTIOCP_DEBUG_H

#include <windows.h>

extern BOOL hostiocp_trace_enabled;
extern BOOL hostiocp_warn_enabled;
extern BOOL hostiocp_policy_trace_enabled;

/* Reads HOSTIOCP_TRACE; DllMain calls it once, before anything traces. */
void debug_init(void);

void hostiocp_debug_line(const char *marker, const char *function, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

/* "{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}" and its terminating null, in characters. */
#define GUID_STRING_SIZE 39
/* A GUID as text, for one trace line: the buffer is reused a few calls later. */
const char *debugstr_guid(const GUID *guid);

#define TRACE(...) do { if (hostiocp_trace_enabled) hostiocp_debug_line("", NULL, __VA_ARGS__); } while (0)
#define TRACE_CALL(...) do { if (hostiocp_trace_enabled) hostiocp_debug_line("", __func__, __VA_ARGS__); } while (0)
#define TRACE_POLICY(...) do { if (hostiocp_policy_trace_enabled) hostiocp_debug_line("", NULL, __VA_ARGS__); } while (0)
#define WARN(...) do { if (hostiocp_warn_enabled) hostiocp_debug_line("warn: ", __func__, __VA_ARGS__); } while (0)

#endif
