/* Internal interfaces between hostiocp's parts: COM plumbing, registration, the completion
 * engine and its thread policy. */
#ifndef HOSTIOCP_PRIVATE_H
#define HOSTIOCP_PRIVATE_H

#include <windows.h>
#include <ole2.h>
#include "hostiocp.h"

/* ---- module (dllmain.c) ---- */
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


/* ---- tracing (dllmain.c): lines to OutputDebugString, "hostiocp[tid]: " first ----
 * HOSTIOCP_TRACE=1 turns on TRACE, TRACE_POLICY and WARN lines, HOSTIOCP_TRACE=policy only
 * TRACE_POLICY and WARN lines, HOSTIOCP_TRACE=warn only WARN lines; read once, when the DLL
 * loads.  TRACE(...) and TRACE_POLICY(...) print their line as it is; TRACE_CALL(...), for a COM
 * method's entry, and WARN(...) name the function first, as Wine's debug channels do, and WARN
 * lines say "warn: " before it. */
extern BOOL hostiocp_trace_enabled;
extern BOOL hostiocp_warn_enabled;
extern BOOL hostiocp_policy_trace_enabled;
void hostiocp_debug_line(const char *marker, const char *function, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
const char *debugstr_guid(const GUID *guid);
#define TRACE(...) do { if (hostiocp_trace_enabled) hostiocp_debug_line("", NULL, __VA_ARGS__); } while (0)
#define TRACE_CALL(...) do { if (hostiocp_trace_enabled) hostiocp_debug_line("", __func__, __VA_ARGS__); } while (0)
#define TRACE_POLICY(...) do { if (hostiocp_policy_trace_enabled) hostiocp_debug_line("", NULL, __VA_ARGS__); } while (0)
#define WARN(...) do { if (hostiocp_warn_enabled) hostiocp_debug_line("warn: ", __func__, __VA_ARGS__); } while (0)

/* ---- the system calls that can fail (fault.c): tests can make the Nth call of each fail ---- */
enum fault_site { FAULT_CREATE_PORT, FAULT_CREATE_THREAD, FAULT_HEAP_ALLOC, FAULT_REGISTRY, FAULT_POST, FAULT_SITE_COUNT };
void fault_init(void);
void *heap_alloc(DWORD flags, SIZE_T size);
HANDLE create_completion_port(HANDLE file, HANDLE port, ULONG_PTR key, DWORD threads);
HANDLE create_thread(LPTHREAD_START_ROUTINE start, void *arg);
BOOL post_packet(HANDLE port, DWORD bytes, ULONG_PTR key, OVERLAPPED *overlapped);
/* ERROR_SUCCESS, or the error a registry call is to fail with before it is made. */
LONG registry_fault(void);

/* ---- objects (manager.c, hostcontrol.c) ---- */
HRESULT manager_create(IUnknown *outer, REFIID riid, void **out);
HRESULT host_control_create(IUnknown *outer, REFIID riid, void **out);

/* ---- registration (register.c) ---- */
enum registration_scope { SCOPE_MACHINE, SCOPE_USER };
HRESULT register_server(enum registration_scope scope);
HRESULT unregister_server(enum registration_scope scope);

/* ---- small helpers for Interlocked counts ---- */

/* Whole on 32-bit too. */
static inline LONG64 interlocked_read64(const volatile LONG64 *value)
{
    return InterlockedCompareExchange64((volatile LONG64 *)value, 0, 0);
}

/* Raises *value to at least `to`. */
static inline void interlocked_raise(volatile LONG *value, LONG to)
{
    LONG seen = *value;

    while (to > seen)
    {
        LONG previous = InterlockedCompareExchange(value, to, seen);
        if (previous == seen)
            break;
        seen = previous;
    }
}

/* ---- the completion engine (engine.c): ports, bound handles, the host's limits, statistics ---- */
#define ENGINE_DEFAULT_IDLE_TIMEOUT 10000
#define ENGINE_DEFAULT_MAX_THREADS  HOSTIOCP_MAX_THREADS_LIMIT
#define ENGINE_DEFAULT_BATCH_SIZE   1

struct engine;

struct engine *engine_create(void);
/* Stops every port (see pool_stop), waits for every thread and drops the caller's reference. */
void engine_shutdown(struct engine *engine);

HRESULT engine_set_clr(struct engine *engine, ICLRIoCompletionManager *clr);
HRESULT engine_create_port(struct engine *engine, HANDLE *port_handle);
HRESULT engine_close_port(struct engine *engine, HANDLE port_handle);
HRESULT engine_bind(struct engine *engine, HANDLE port_handle, HANDLE handle);
HRESULT engine_set_min_threads(struct engine *engine, DWORD count);
HRESULT engine_set_max_threads(struct engine *engine, DWORD count);
DWORD engine_min_threads(struct engine *engine);
DWORD engine_max_threads(struct engine *engine);
DWORD engine_available_threads(struct engine *engine);
HRESULT engine_set_idle_timeout(struct engine *engine, DWORD milliseconds);
DWORD engine_idle_timeout(struct engine *engine);
HRESULT engine_set_batch_size(struct engine *engine, DWORD entries);
DWORD engine_batch_size(struct engine *engine);
HRESULT engine_statistics(struct engine *engine, HOSTIOCP_STATISTICS *stats);
HRESULT engine_port_statistics(struct engine *engine, HANDLE port_handle, HOSTIOCP_STATISTICS *stats);

/* ---- the thread tally (tally.c): how many pool threads of one engine are alive, for every
 * port, so that the engine can wait for the last; its fields are tally.c's ---- */
struct thread_tally
{
    volatile LONG threads;
    volatile LONG peak;
    SRWLOCK lock;
    CONDITION_VARIABLE thread_left;
};

void thread_tally_init(struct thread_tally *tally);
void thread_tally_add(struct thread_tally *tally);
void thread_tally_remove(struct thread_tally *tally);
/* Waits until no more than `remaining` threads are alive. */
void thread_tally_wait(struct thread_tally *tally, LONG remaining);
LONG thread_tally_peak(const struct thread_tally *tally);

/* ---- the threads that serve one completion port (pool.c) and their controller (policy.c) ---- */

/* The host's minimum and maximum, given to each pool by value: what they mean for its threads
 * is pool.c's. */
struct thread_limits
{
    volatile LONG min_threads;
    volatile LONG max_threads;
};

/* The host's settings that every dequeue reads as they are then: the engine owns them and writes
 * them Interlocked; pools only read them. */
struct dequeue_settings
{
    volatile LONG idle_timeout;
    volatile LONG batch_size;
};

struct pool;

/* The worker's TLS slot, from DllMain. */
BOOL pool_process_attach(void);
void pool_process_detach(void);

/* Creates the port and starts the minimum of threads (at least one) and the monitor.  The pool
 * holds its own reference to clr, and calls on_destroy(context) when it is gone, or at once if
 * it could not be created. */
HRESULT pool_create(ICLRIoCompletionManager *clr, struct thread_limits limits, const struct dequeue_settings *dequeue,
                    struct thread_tally *tally, void (*on_destroy)(void *context), void *context, struct pool **pool);
void pool_release(struct pool *pool);
HANDLE pool_port(const struct pool *pool);
ULONG_PTR pool_bind_key(const struct pool *pool);
/* The host set the minimum or the maximum: tops the pool up to the minimum, has idle threads
 * above the maximum retire and the monitor look again at once. */
void pool_limits_changed(struct pool *pool, struct thread_limits limits);
/* Dispatches every packet queued before the call, ends every thread (but the caller, if it is
 * one, which ends when its callback returns), counts what arrived later as discarded and closes
 * the port.  Where nothing may wait (module_must_not_wait) it only tells the threads to stop. */
void pool_stop(struct pool *pool);
LONG pool_busy(const struct pool *pool);
LONG pool_threads(const struct pool *pool);
LONG pool_peak(const struct pool *pool);
/* Adds the pool's counters, and while it runs its live figures (threads, busy, parked, target,
 * queued, from one reading of its counts), to stats; not ThreadsPeak. */
void pool_statistics(struct pool *pool, HOSTIOCP_STATISTICS *stats);
/* The tally of the pool whose thread calls, or NULL. */
const struct thread_tally *current_thread_tally(void);

#endif
