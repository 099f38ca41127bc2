"""shmsync: multiprocessing's shared objects in shared memory, done right.

``Value``, ``Array``, ``RawValue``, ``RawArray``, ``Lock``, ``RLock``,
``Event``, ``Condition``, ``Barrier``, ``Semaphore``,
``BoundedSemaphore`` and ``Pipe`` with the signatures of :mod:`multiprocessing`, plus
``AtomicValue``/``AtomicArray`` (lock-free operations), named objects that
any process -- Python or Rust (the ``shmsync`` crate) -- opens by name, and
robust locks: a lock whose owner died is reported as
:class:`OwnerDiedError`, never held forever.

The locks are futexes inside the shared page (no semaphore, no server
process); see the repository's README ("Python") for the tour and the
owner-death protocol.
"""

import ctypes as _ctypes
import os as _os
from contextlib import contextmanager as _contextmanager

from . import _shmsync
from ._errors import (
    DeadlockError,
    MismatchError,
    NotRecoverableError,
    OwnerDiedError,
    SegmentError,
    ShmsyncError,
)
from ._shmsync import (
    AtomicArray,
    AtomicValue,
    Barrier,
    BoundedSemaphore,
    Condition,
    Connection,
    Event,
    Lock,
    MessageQueue,
    Pipe,
    RawArray as _RawArray,
    RawValue as _RawValue,
    RLock,
    Semaphore,
    Synchronized,
    SynchronizedArray,
    inspect,
    inspect_fd,
)

__all__ = [
    "Value",
    "Array",
    "RawValue",
    "RawArray",
    "Lock",
    "RLock",
    "Event",
    "Condition",
    "Barrier",
    "Semaphore",
    "BoundedSemaphore",
    "Pipe",
    "Connection",
    "MessageQueue",
    "AtomicValue",
    "AtomicArray",
    "Synchronized",
    "SynchronizedArray",
    "held",
    "open",
    "inspect",
    "inspect_fd",
    "ShmsyncError",
    "OwnerDiedError",
    "NotRecoverableError",
    "DeadlockError",
    "MismatchError",
    "SegmentError",
]

# Holds copied from the forking thread belong to the parent.
_os.register_at_fork(after_in_child=_shmsync.after_fork_child)

_CTYPES = {
    _ctypes.c_char: "c",
    _ctypes.c_wchar: "u",
    _ctypes.c_byte: "b",
    _ctypes.c_ubyte: "B",
    _ctypes.c_short: "h",
    _ctypes.c_ushort: "H",
    _ctypes.c_int: "i",
    _ctypes.c_uint: "I",
    _ctypes.c_long: "l",
    _ctypes.c_ulong: "L",
    _ctypes.c_float: "f",
    _ctypes.c_double: "d",
}
# On 64-bit Linux c_longlong is c_long; where it is not, it is 'q'.
_CTYPES.setdefault(_ctypes.c_longlong, "q")
_CTYPES.setdefault(_ctypes.c_ulonglong, "Q")

_ZERO = {"c": b"\0", "u": "\0", "f": 0.0, "d": 0.0}


def _typecode(typecode_or_type):
    if isinstance(typecode_or_type, str):
        return typecode_or_type
    try:
        return _CTYPES[typecode_or_type]
    except (KeyError, TypeError):
        # multiprocessing passes the object to ctypes.sizeof
        raise TypeError("this type has no size") from None


def _lock_arg(lock):
    """multiprocessing's ``lock`` argument: True/None (own lock), False
    (no lock), or a shmsync RLock to share."""
    if lock is None or lock is True:
        return None
    if isinstance(lock, RLock):
        return lock
    if isinstance(lock, Lock):
        raise TypeError(
            "shmsync objects share an RLock, not a Lock: v.value takes the lock "
            "again inside `with lock:` (multiprocessing deadlocks there)"
        )
    if not hasattr(lock, "acquire"):
        raise AttributeError("%r has no method 'acquire'" % lock)
    raise TypeError("lock must be a shmsync.RLock, True or False, not %r" % (lock,))


class _Factory(type):
    def __instancecheck__(cls, obj):
        return isinstance(obj, cls._classes)


class Value(metaclass=_Factory):
    """``Value(typecode_or_type, *args, lock=True, name=None)``.

    As :func:`multiprocessing.Value`: a :class:`Synchronized` value with a
    recursive lock of its own (``get_lock()``), or the given shmsync
    :class:`RLock`, or, with ``lock=False``, a :class:`RawValue`. ``name``
    creates a named object that any process can ``Value.open(name)``.
    """

    _classes = (Synchronized,)

    def __new__(cls, typecode_or_type, *args, lock=True, name=None):
        code = _typecode(typecode_or_type)
        if len(args) > 1:
            raise TypeError("__init__ expected at most 1 argument, got %d" % len(args))
        init = args[0] if args else _ZERO.get(code, 0)
        if lock is False:
            return _RawValue(code, init, name=name)
        return Synchronized(code, init, lock=_lock_arg(lock), name=name)

    @staticmethod
    def open(name):
        """Opens the locked value ``name`` (made by Python or Rust)."""
        return Synchronized.open(name)


class Array(metaclass=_Factory):
    """``Array(typecode_or_type, size_or_initializer, lock=True, name=None)``.

    As :func:`multiprocessing.Array`: a :class:`SynchronizedArray`, or with
    ``lock=False`` a :class:`RawArray`.
    """

    _classes = (SynchronizedArray,)

    def __new__(cls, typecode_or_type, size_or_initializer, *, lock=True, name=None):
        code = _typecode(typecode_or_type)
        if lock is False:
            return _RawArray(code, size_or_initializer, name=name)
        return SynchronizedArray(code, size_or_initializer, lock=_lock_arg(lock), name=name)

    @staticmethod
    def open(name):
        """Opens the locked array ``name`` (made by Python or Rust)."""
        return SynchronizedArray.open(name)


class RawValue(metaclass=_Factory):
    """``RawValue(typecode_or_type, *args, name=None)``: no lock."""

    _classes = (_RawValue,)

    def __new__(cls, typecode_or_type, *args, name=None):
        code = _typecode(typecode_or_type)
        if len(args) > 1:
            raise TypeError("__init__ expected at most 1 argument, got %d" % len(args))
        init = args[0] if args else _ZERO.get(code, 0)
        return _RawValue(code, init, name=name)

    @staticmethod
    def open(name):
        return _RawValue.open(name)


class RawArray(metaclass=_Factory):
    """``RawArray(typecode_or_type, size_or_initializer, name=None)``: no lock."""

    _classes = (_RawArray,)

    def __new__(cls, typecode_or_type, size_or_initializer, *, name=None):
        return _RawArray(_typecode(typecode_or_type), size_or_initializer, name=name)

    @staticmethod
    def open(name):
        return _RawArray.open(name)


_OPEN = {
    "Value": Synchronized.open,
    "RawValue": _RawValue.open,
    "Array": SynchronizedArray.open,
    "RawArray": _RawArray.open,
    "Lock": Lock.open,
    "RLock": RLock.open,
    "AtomicValue": AtomicValue.open,
    "AtomicArray": AtomicArray.open,
    "Event": Event.open,
    "Condition": Condition.open,
    "Barrier": Barrier.open,
    "Semaphore": Semaphore.open,
    "BoundedSemaphore": BoundedSemaphore.open,
    "MessageQueue": MessageQueue.open,
}


def open(name):  # noqa: A001 - the natural name, as Value.open
    """Opens the named object ``name``, whatever its kind (read with
    :func:`inspect`)."""
    kind = inspect(name)["kind"]
    try:
        return _OPEN[kind](name)
    except KeyError:
        raise MismatchError("no Python class for a %s segment" % kind) from None


@_contextmanager
def held(lock, repair):
    """``with held(lock, repair):`` holds ``lock`` (a :class:`Lock`,
    :class:`RLock`, or a value or array) for the block; if its previous
    owner died holding it, calls ``repair()`` first (with the lock held)
    and marks the lock consistent once ``repair`` returns. If ``repair``
    raises, the lock is released unrepaired (it becomes not recoverable)
    and the exception propagates."""
    lk = lock.get_lock() if hasattr(lock, "get_lock") else lock
    try:
        lk.acquire()
    except OwnerDiedError:
        try:
            repair()
        except BaseException:
            lk.release()
            raise
        lk.mark_consistent()
    try:
        yield lock
    finally:
        lk.release()
