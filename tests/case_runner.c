/* One process per check test: see case_runner.h. */
#include <windows.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include "case_runner.h"

#define SKIPPED 77

static const char *case_name(void)
{
    return getenv("CK_RUN_CASE") ? getenv("CK_RUN_CASE") : "test";
}

void skip_test(const char *format, ...)
{
    va_list args;

    printf("SKIP: %s: ", case_name());
    va_start(args, format);
    vprintf(format, args);
    va_end(args);
    printf("\n");
    fflush(stdout);
    exit(SKIPPED);
}

Suite *suite_of_cases(const char *name, const struct test_case *cases, int count, SFun setup, SFun teardown)
{
    Suite *suite = suite_create(name);
    int i;

    for (i = 0; i < count; i++)
    {
        TCase *tcase = tcase_create(cases[i].name);

        if (setup || teardown)
            tcase_add_checked_fixture(tcase, setup, teardown);
        tcase_add_test(tcase, cases[i].test);
        suite_add_tcase(suite, tcase);
    }
    return suite;
}

/* Under Wine an unhandled exception hands the process to winedbg, which ends it with exit
 * code 0: the case would pass.  It ends with the exception's code instead. */
static LONG WINAPI end_on_unhandled_exception(EXCEPTION_POINTERS *exception)
{
    DWORD code = exception->ExceptionRecord->ExceptionCode;

    printf("%s: unhandled exception %#lx at %p\n", case_name(), code,
           exception->ExceptionRecord->ExceptionAddress);
    fflush(stdout);
    ExitProcess(code ? code : 1);
}

int run_suite(Suite *suite)
{
    SRunner *runner;
    int failed;

    setvbuf(stdout, NULL, _IONBF, 0);
    SetUnhandledExceptionFilter(end_on_unhandled_exception);
    runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed ? 1 : 0;
}

enum child_end
{
    CHILD_EXITED,
    CHILD_TIMED_OUT,
    CHILD_NOT_STARTED,
};

/* How many times a test's process is started before the test fails for it.  Under Wine a new
 * process can end before its start-up completes (its loader could not reserve the address space
 * it needs, say), and CreateProcess then fails with ERROR_INTERNAL_ERROR; the test has not run,
 * so starting it again hides nothing about the test. */
#define CASE_START_ATTEMPTS 3

/* Runs this program with CK_RUN_CASE=name; its output goes where ours does.  *status is its exit
 * status, or why it could not start; one that does not finish within CASE_TIME_LIMIT_MS is
 * ended. */
static enum child_end run_child(const char *name, DWORD *status)
{
    WCHAR program[MAX_PATH];
    STARTUPINFOW startup = { 0 };
    PROCESS_INFORMATION process;
    enum child_end end = CHILD_EXITED;

    startup.cb = sizeof(startup);
    if (!GetModuleFileNameW(NULL, program, MAX_PATH) || GetLastError() == ERROR_INSUFFICIENT_BUFFER)
    {
        *status = GetLastError();
        return CHILD_NOT_STARTED;
    }
    SetEnvironmentVariableA("CK_RUN_CASE", name);
    if (!CreateProcessW(program, NULL, NULL, NULL, TRUE, 0, NULL, NULL, &startup, &process))
    {
        *status = GetLastError();
        end = CHILD_NOT_STARTED;
    }
    else
    {
        if (WaitForSingleObject(process.hProcess, CASE_TIME_LIMIT_MS) == WAIT_TIMEOUT)
        {
            end = CHILD_TIMED_OUT;
            TerminateProcess(process.hProcess, WAIT_TIMEOUT);
            WaitForSingleObject(process.hProcess, INFINITE);
        }
        GetExitCodeProcess(process.hProcess, status);
        CloseHandle(process.hThread);
        CloseHandle(process.hProcess);
    }
    SetEnvironmentVariableA("CK_RUN_CASE", NULL);
    return end;
}

/* run_child, started again (saying so) while it could not start, up to CASE_START_ATTEMPTS times. */
static enum child_end run_case(const char *name, DWORD *status)
{
    enum child_end end = run_child(name, status);
    int attempt;

    for (attempt = 1; end == CHILD_NOT_STARTED && attempt < CASE_START_ATTEMPTS; attempt++)
    {
        printf("%s: its process did not start (error %lu); starting it again\n", name, *status);
        end = run_child(name, status);
    }
    return end;
}

int run_cases_in_own_processes(Suite *suite, const struct test_case *cases, int count)
{
    int i, failed = 0, skipped = 0;

    setvbuf(stdout, NULL, _IONBF, 0);
    if (getenv("CK_RUN_CASE"))
        return run_suite(suite);
    srunner_free(srunner_create(suite));  /* the suite is not run in this process */
    for (i = 0; i < count; i++)
    {
        DWORD status;

        switch (run_case(cases[i].name, &status))
        {
        case CHILD_TIMED_OUT:
            printf("FAIL: %s: timed out after %d s\n", cases[i].name, CASE_TIME_LIMIT_MS / 1000);
            failed++;
            break;
        case CHILD_NOT_STARTED:
            printf("FAIL: %s: its process did not start in %d attempts (error %lu)\n", cases[i].name,
                   CASE_START_ATTEMPTS, status);
            failed++;
            break;
        case CHILD_EXITED:
            if (status == SKIPPED)
                skipped++;
            else if (status)
            {
                printf("FAIL: %s (exit status %lu)\n", cases[i].name, status);
                failed++;
            }
            else
                printf("PASS: %s\n", cases[i].name);
            break;
        }
    }
    printf("%d passed, %d failed, %d skipped, each test in a process of its own\n", count - failed - skipped,
           failed, skipped);
    return failed ? 1 : 0;
}
