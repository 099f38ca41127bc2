"""Pickling of shmsync objects (for ``multiprocessing.Process`` arguments
under ``spawn`` and ``forkserver``, queues, ...).

A named object travels as its name, an anonymous one as its file
descriptor (``multiprocessing.reduction.DupFd``: passed to a child being
spawned, or through a ``resource_sharer`` otherwise), as multiprocessing's
own heap arenas do on Linux. The receiving side re-attaches it with the
class's ``_attach``, which checks the kind, the type code and the length
as ``open`` does (``MismatchError``).
"""

from . import _shmsync


def reduce(cls_name, name, fd, code, length, lock):
    if name is not None:
        handle = ("name", name)
    else:
        from multiprocessing.reduction import DupFd

        handle = ("fd", DupFd(fd))
    return (_rebuild, (cls_name, handle, code, length, lock))


def _rebuild(cls_name, handle, code, length, lock):
    cls = getattr(_shmsync, cls_name)
    how, what = handle
    if how == "name":
        return cls._attach(what, None, code, length, lock)
    return cls._attach(None, what.detach(), code, length, lock)
