/* What the check-based tests share besides fakeclr.h: asserting a call's HRESULT. */
#ifndef HOSTIOCP_CHECK_SUPPORT_H
#define HOSTIOCP_CHECK_SUPPORT_H

#include <check.h>
#include <windows.h>

#define ck_assert_hr(call, expected) do { \
    HRESULT hr_ = (call); \
    ck_assert_msg(hr_ == (HRESULT)(expected), "%s returned 0x%08lx, expected 0x%08lx", #call, \
                  (unsigned long)hr_, (unsigned long)(expected)); \
} while (0)

#endif
