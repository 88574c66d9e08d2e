/* Defines the GUIDs declared by mscoree.h (IID_IHostControl, IID_ICLRRuntimeHost, ...), which
 * mingw-w64's libuuid does not carry. */
#include <windows.h>
#include <initguid.h>
#include <mscoree.h>
