/* Internal interfaces between hostiocp's parts: COM plumbing, registration, the completion
 * engine and its thread policy. */
#ifndef HOSTIOCP_PRIVATE_H
#define HOSTIOCP_PRIVATE_H

#include <windows.h>
#include <ole2.h>
#include "hostiocp.h"

/* The layers below the rest, each with a header of its own: tracing (debug.h), a leaf that every
 * file may use; the DLL's lifetime (module.h), which uses nothing of hostiocp's; the system calls
 * that can fail (fault.h), which traces. */
#include "debug.h"
#include "module.h"
#include "fault.h"

/* ---- the DLL's exports (dllmain.c; hostiocp.def), where the system's headers do not declare them ---- */
BOOL WINAPI DllMain(HINSTANCE instance, DWORD reason, void *reserved);
HRESULT WINAPI DllRegisterServer(void);
HRESULT WINAPI DllUnregisterServer(void);
HRESULT WINAPI DllInstall(BOOL install, const WCHAR *command_line);


/* ---- objects (manager.c, hostcontrol.c; their class objects in factory.c) ---- */
HRESULT manager_create(REFIID riid, void **out);
HRESULT host_control_create(REFIID riid, void **out);

/* What the objects share (object.c).  check_interface_out is the first check of a method that
 * hands out an interface: E_POINTER without `out`; else *out becomes NULL, and E_INVALIDARG
 * without `riid`. */
HRESULT check_interface_out(REFIID riid, void **out);
/* QueryInterface of an object whose one interface, `iid`, is `object`: E_NOINTERFACE for any
 * other but IUnknown, for the caller to warn about (or to answer). */
HRESULT query_only_interface(IUnknown *object, REFIID iid, REFIID riid, void **out);
/* The end of creating an object that holds the one reference to itself: its free-threaded
 * marshaler and the interface the caller asked for; the creation reference is dropped, so that
 * the object is gone if either failed. */
HRESULT finish_create(IUnknown *object, IUnknown **marshaler, REFIID riid, void **out);

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
#define ENGINE_DEFAULT_MAX_WORK_THREADS HOSTIOCP_MAX_THREADS_LIMIT

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

/* The work-item queue: items run on a pool of their own, made for the first item, with limits of
 * their own.  An item accepted before engine_shutdown runs before it returns; from then on items
 * are refused with HOST_E_INVALIDOPERATION. */
HRESULT engine_queue_work_item(struct engine *engine, LPTHREAD_START_ROUTINE function, void *context, ULONG flags);
HRESULT engine_set_work_min_threads(struct engine *engine, DWORD count);
HRESULT engine_set_work_max_threads(struct engine *engine, DWORD count);
DWORD engine_work_min_threads(struct engine *engine);
DWORD engine_work_max_threads(struct engine *engine);
DWORD engine_work_available_threads(struct engine *engine);
HRESULT engine_work_statistics(struct engine *engine, HOSTIOCP_WORK_STATISTICS *stats);

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

/* What the threads of a pool do with the packets that are not its own. */
enum pool_kind
{
    POOL_COMPLETIONS,   /* the CLR's I/O: OnComplete for every packet with an OVERLAPPED */
    POOL_WORK_ITEMS,    /* the work-item queue's: items wait in the pool's own queue (pool_post_work_item),
                         * its port only wakes threads for them */
};

struct pool_client
{
    enum pool_kind kind;
    ICLRIoCompletionManager *clr;       /* completions: OnComplete's; the pool holds its own reference */
    void (*items_finished)(void *context); /* work items: called with the pool's context when the last item
                                            * accepted before pool_close_work_items has run */
};

/* Creates the port and starts the minimum of threads (at least one) and the monitor.  The pool
 * calls on_destroy(context) when it is gone, or at once if it could not be created. */
HRESULT pool_create(const struct pool_client *client, struct thread_limits limits,
                    const struct dequeue_settings *dequeue, struct thread_tally *tally,
                    void (*on_destroy)(void *context), void *context, struct pool **pool);
void pool_release(struct pool *pool);
/* Queues function(context) on a pool of work items: S_OK; HOST_E_INVALIDOPERATION once
 * pool_close_work_items was called; E_OUTOFMEMORY if the queue was full and could not grow.  An
 * item queued runs once, or is counted as discarded. */
HRESULT pool_post_work_item(struct pool *pool, LPTHREAD_START_ROUTINE function, void *context);
/* From now on the pool refuses items; those accepted before still run. */
void pool_close_work_items(struct pool *pool);
/* Items accepted and not yet run to their end nor discarded. */
LONG pool_unfinished_items(struct pool *pool);
/* Items accepted since the pool was made. */
LONG64 pool_items_accepted(struct pool *pool);
HANDLE pool_port(const struct pool *pool);
/* Whether the calling thread is one of the pool's. */
BOOL pool_serves_current_thread(const struct pool *pool);
/* From inside one of the pool's callbacks: takes the packets queued on the port and handles them
 * on this thread, one at a time, until done(context) holds, looking again at least every
 * `wait_ms` while the port is empty.  Where this thread would otherwise wait for work queued
 * behind its own (the pool may be at its maximum), it does that work itself. */
void pool_serve_until(struct pool *pool, BOOL (*done)(void *context), void *context, DWORD wait_ms);
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
