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

struct pool;
/* Which pool, if any, the calling thread belongs to. */
void set_current_pool(struct pool *pool);
struct pool *current_pool(void);

/* ---- tracing (dllmain.c): HOSTIOCP_TRACE=1 sends lines to OutputDebugString ---- */
extern BOOL hostiocp_trace_enabled;
void hostiocp_trace_line(const char *format, ...) __attribute__((format(printf, 1, 2)));
#define TRACE(...) do { if (hostiocp_trace_enabled) hostiocp_trace_line(__VA_ARGS__); } while (0)

/* ---- objects (manager.c, hostcontrol.c) ---- */
HRESULT manager_create(IUnknown *outer, REFIID riid, void **out);
HRESULT host_control_create(IUnknown *outer, REFIID riid, void **out);

/* ---- registration (register.c) ---- */
enum registration_scope { SCOPE_MACHINE, SCOPE_USER };
HRESULT register_server(enum registration_scope scope);
HRESULT unregister_server(enum registration_scope scope);

/* ---- the completion engine (engine.c) and its thread policy (pool.c) ---- */
#define ENGINE_DEFAULT_IDLE_TIMEOUT 10000
#define ENGINE_DEFAULT_MAX_THREADS  HOSTIOCP_MAX_THREADS_LIMIT

struct engine;

struct port_counters
{
    LONG64 dispatched;
    LONG64 failed;
    LONG64 foreign;
    LONG64 wakeups;
    LONG64 discarded;
};

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

/* Limits the engine sets and its pools read on their own threads. */
struct pool_limits
{
    volatile LONG min_threads;
    volatile LONG max_threads;
    volatile LONG idle_timeout;
    volatile LONG batch_size;
};

/* Engine-wide thread counts that every pool updates; engine_shutdown waits on ended. */
struct thread_tally
{
    volatile LONG threads;
    volatile LONG peak;
    SRWLOCK lock;
    CONDITION_VARIABLE ended;
};

/* The threads that serve one completion port (pool.c) and their dispatch loop (dispatch.c). */
struct pool
{
    volatile LONG refs;             /* the owner's and one per thread */
    void (*destroy)(struct pool *pool);
    HANDLE port;
    ULONG_PTR bind_key;             /* the key Bind associates handles with */
    ULONG_PTR control_key;          /* the key of our own stop packets */
    ICLRIoCompletionManager *clr;   /* the engine's reference outlives every pool thread */
    const struct pool_limits *limits;
    struct thread_tally *tally;

    volatile LONG stopping;
    volatile LONG threads;          /* started or starting, not yet ended */
    volatile LONG busy;             /* inside OnComplete */
    volatile LONG peak;
    volatile LONG64 injected;
    volatile LONG64 retired;

    SRWLOCK lock;                   /* the workers list, ended counters and thread_ended */
    CONDITION_VARIABLE thread_ended;
    struct worker *workers;
    struct port_counters ended;     /* counters of threads that have ended */
};

struct worker
{
    struct worker *next;
    struct worker *prev;
    BOOL slot_released;
    struct port_counters counts;
};

void pool_init(struct pool *pool, HANDLE port, ICLRIoCompletionManager *clr,
               const struct pool_limits *limits, struct thread_tally *tally,
               void (*destroy)(struct pool *pool));
void pool_add_ref(struct pool *pool);
void pool_release(struct pool *pool);
/* Starts threads up to the minimum (at least one); fails if not even one could start. */
HRESULT pool_start(struct pool *pool);
/* Tops the pool up after the minimum was raised. */
void pool_grow_to_minimum(struct pool *pool);
/* Stops dispatching and waits until every thread (but the caller, if it is one) has ended. */
void pool_stop(struct pool *pool);
void pool_counters(struct pool *pool, struct port_counters *sum);

/* For the dispatch loop. */
void pool_worker_enter(struct pool *pool, struct worker *worker);
void pool_worker_leave(struct pool *pool, struct worker *worker);
void pool_inject(struct pool *pool);
BOOL pool_retire_idle(struct pool *pool, struct worker *worker);
BOOL pool_retire_excess(struct pool *pool, struct worker *worker);
DWORD WINAPI dispatch_thread(void *pool);

#endif
