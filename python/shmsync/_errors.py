"""The exceptions of shmsync (raised by the extension module)."""


class ShmsyncError(Exception):
    """Base class of shmsync's own exceptions."""


class OwnerDiedError(ShmsyncError):
    """The previous owner of a lock died holding it.

    Raised by ``acquire()`` with the lock **held** by the caller: the data
    it protects may be half-updated. Repair it, call ``mark_consistent()``
    on the lock, then ``release()``. Releasing without ``mark_consistent()``
    makes the lock not recoverable (every later acquire raises
    :class:`NotRecoverableError`).

    Raised by ``with lock:`` (``__enter__``) and by one-shot locked
    accesses (``v.value``, ``a[i]``) **after releasing** the lock without
    marking it consistent: a ``with`` block never runs on, nor leaves held,
    a lock whose data nobody repaired. Use ``acquire()`` (or
    ``lock.recover(repair)``) to repair instead.
    """


class NotRecoverableError(ShmsyncError):
    """A lock whose owner died was released without ``mark_consistent()``;
    it can never be acquired again (POSIX ``ENOTRECOVERABLE``)."""


class DeadlockError(ShmsyncError, RuntimeError):
    """A blocking ``acquire()`` of a :class:`Lock` that the calling thread
    already holds: it would never return, so it fails instead."""


class MismatchError(ShmsyncError, TypeError):
    """The segment holds another kind of object, another element type, or
    another length than the one asked for (``open``, unpickling), or its
    separate lock cannot be re-attached."""


class SegmentError(ShmsyncError, OSError):
    """The segment is damaged or not a shmsync segment (bad magic number,
    layout version, corrupt header, truncated file), or its creator did not
    finish initialising it in time."""


for _c in (
    ShmsyncError,
    OwnerDiedError,
    NotRecoverableError,
    DeadlockError,
    MismatchError,
    SegmentError,
):
    _c.__module__ = "shmsync"
del _c
