/* A model of the CLR's own worker pool: to be written. */
#include <stdio.h>
#include "iobench.h"

static BOOL clr_workers_start(struct dispatcher *d)
{
    snprintf(d->error, sizeof(d->error), "the CLR worker-pool model is not written yet");
    return FALSE;
}

static BOOL clr_workers_bind(struct dispatcher *d, HANDLE handle, void **io)
{
    (void)d;
    (void)handle;
    *io = NULL;
    SetLastError(ERROR_NOT_SUPPORTED);
    return FALSE;
}

static BOOL clr_workers_post(struct dispatcher *d, struct request *request)
{
    (void)d;
    (void)request;
    SetLastError(ERROR_NOT_SUPPORTED);
    return FALSE;
}

const struct dispatcher_ops clr_workers_ops =
{
    "CLR worker pool model", clr_workers_start, clr_workers_bind, dispatcher_no_prepare, dispatcher_no_io_context,
    dispatcher_no_io_context, clr_workers_post, dispatcher_no_unbind, dispatcher_no_stop, TRUE,
};
