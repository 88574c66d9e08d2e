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

/* Runs this program with CK_RUN_CASE=name; its output goes where ours does.  Returns its exit
 * status; one that does not finish within CASE_TIME_LIMIT_MS is ended, and *timed_out says so. */
static DWORD run_child(const char *name, BOOL *timed_out)
{
    WCHAR program[MAX_PATH];
    STARTUPINFOW startup = { 0 };
    PROCESS_INFORMATION process;
    DWORD status;

    *timed_out = FALSE;
    startup.cb = sizeof(startup);
    if (!GetModuleFileNameW(NULL, program, MAX_PATH) || GetLastError() == ERROR_INSUFFICIENT_BUFFER)
        return GetLastError();
    SetEnvironmentVariableA("CK_RUN_CASE", name);
    if (!CreateProcessW(program, NULL, NULL, NULL, TRUE, 0, NULL, NULL, &startup, &process))
        status = GetLastError();
    else
    {
        if (WaitForSingleObject(process.hProcess, CASE_TIME_LIMIT_MS) == WAIT_TIMEOUT)
        {
            *timed_out = TRUE;
            TerminateProcess(process.hProcess, WAIT_TIMEOUT);
            WaitForSingleObject(process.hProcess, INFINITE);
        }
        GetExitCodeProcess(process.hProcess, &status);
        CloseHandle(process.hThread);
        CloseHandle(process.hProcess);
    }
    SetEnvironmentVariableA("CK_RUN_CASE", NULL);
    return status;
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
        BOOL timed_out;
        DWORD status = run_child(cases[i].name, &timed_out);

        if (timed_out)
        {
            printf("FAIL: %s: timed out after %d s\n", cases[i].name, CASE_TIME_LIMIT_MS / 1000);
            failed++;
        }
        else if (status == SKIPPED)
            skipped++;
        else if (status)
        {
            printf("FAIL: %s (exit status %lu)\n", cases[i].name, status);
            failed++;
        }
        else
            printf("PASS: %s\n", cases[i].name);
    }
    printf("%d passed, %d failed, %d skipped, each test in a process of its own\n", count - failed - skipped,
           failed, skipped);
    return failed ? 1 : 0;
}
