/* The thread tally: how many threads of an engine's pools are alive, for every port at once.
 * Pools count their threads in and out; the engine waits for the last to be gone, including
 * those of ports that were closed from inside their own callbacks. */
#include "hostiocp_private.h"

void thread_tally_init(struct thread_tally *tally)
{
    tally->threads = tally->peak = 0;
    InitializeSRWLock(&tally->lock);
    InitializeConditionVariable(&tally->thread_left);
}

void thread_tally_add(struct thread_tally *tally)
{
    interlocked_raise(&tally->peak, InterlockedIncrement(&tally->threads));
}

void thread_tally_remove(struct thread_tally *tally)
{
    AcquireSRWLockExclusive(&tally->lock);
    InterlockedDecrement(&tally->threads);
    WakeAllConditionVariable(&tally->thread_left);
    ReleaseSRWLockExclusive(&tally->lock);
}

void thread_tally_wait(struct thread_tally *tally, LONG remaining)
{
    AcquireSRWLockExclusive(&tally->lock);
    while (tally->threads > remaining)
        SleepConditionVariableSRW(&tally->thread_left, &tally->lock, INFINITE, 0);
    ReleaseSRWLockExclusive(&tally->lock);
}

LONG thread_tally_peak(const struct thread_tally *tally)
{
    return tally->peak;
}
