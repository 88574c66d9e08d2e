/* Runs a check suite with every test in a process of its own.  check cannot fork on Windows, so
 * in one process a failed ck_assert leaves the test's threads running (hooks calling into a stack
 * that is gone, managers never released), and the tests after it fail for no fault of their own.
 * One process per test reports each failure once, under its own name. */
#ifndef HOSTIOCP_CASE_RUNNER_H
#define HOSTIOCP_CASE_RUNNER_H

#include <windows.h>
#include <check.h>

struct test_case
{
    const char *name;
    const TTest *test;
};

#define TEST_CASE(test) { #test, test }

/* Ends the running test as skipped, saying why: its process exits with 77, which the parent
 * counts as a skip, never as a pass. */
void skip_test(const char *format, ...) __attribute__((format(printf, 1, 2), noreturn));

/* A suite with one TCase per test, named after the test, each with the fixture. */
Suite *suite_of_cases(const char *name, const struct test_case *cases, int count, SFun setup, SFun teardown);

/* Runs the suite's tests in this process, one after the other, with stdout unbuffered; a crash
 * ends the process with the exception's code (Wine's debugger would end it with 0).  Returns the
 * exit status: 0 when every test passed, 1 otherwise. */
int run_suite(Suite *suite);

/* How long each test may run in its process.  It must be well under the limit of the program as a
 * whole (build-aux/wine-run's WINE_TEST_TIMEOUT, which Makefile.am sets for these programs), so
 * that a test that hangs is ended and named and the tests after it still run. */
#define CASE_TIME_LIMIT_MS 120000

/* Given CK_RUN_CASE, runs that one test here (run_suite).  Otherwise starts this program once per test with
 * CK_RUN_CASE set, each with CASE_TIME_LIMIT_MS to finish, and prints one line per test ("FAIL: name:
 * timed out after N s" for one that did not finish).  A process that could not start is started
 * again, up to 3 times in all, with a line that says so.
 * Returns the exit status: 0 when every test passed, 1 otherwise. */
int run_cases_in_own_processes(Suite *suite, const struct test_case *cases, int count);

#endif
