/* What hostiocp's COM objects share: the checks of a method that hands out an interface, the
 * QueryInterface of an object with one interface, and the end of creating an object. */
#include "hostiocp_private.h"

HRESULT check_interface_out(REFIID riid, void **out)
{
    if (!out)
        return E_POINTER;
    *out = NULL;
    return riid ? S_OK : E_INVALIDARG;
}

HRESULT query_only_interface(IUnknown *object, REFIID iid, REFIID riid, void **out)
{
    HRESULT hr;

    if (FAILED(hr = check_interface_out(riid, out)))
        return hr;
    if (!IsEqualIID(riid, &IID_IUnknown) && !IsEqualIID(riid, iid))
        return E_NOINTERFACE;
    *out = object;
    IUnknown_AddRef(object);
    return S_OK;
}

HRESULT finish_create(IUnknown *object, IUnknown **marshaler, REFIID riid, void **out)
{
    HRESULT hr = CoCreateFreeThreadedMarshaler(object, marshaler);

    if (SUCCEEDED(hr))
        hr = IUnknown_QueryInterface(object, riid, out);
    IUnknown_Release(object);
    return hr;
}
