"""Type stubs of shmsync."""

import ctypes
from contextlib import AbstractContextManager
from typing import Any, Callable, Literal, Optional, Type, TypeVar, Union, overload

from ._errors import (
    DeadlockError as DeadlockError,
    MismatchError as MismatchError,
    NotRecoverableError as NotRecoverableError,
    OwnerDiedError as OwnerDiedError,
    SegmentError as SegmentError,
    ShmsyncError as ShmsyncError,
)
from ._shmsync import (
    AtomicArray as AtomicArray,
    AtomicValue as AtomicValue,
    Barrier as Barrier,
    BoundedSemaphore as BoundedSemaphore,
    Condition as Condition,
    Connection as Connection,
    Event as Event,
    Lock as Lock,
    MessageQueue as MessageQueue,
    Pipe as Pipe,
    RLock as RLock,
    Semaphore as Semaphore,
    Synchronized as Synchronized,
    SynchronizedArray as SynchronizedArray,
    inspect as inspect,
    inspect_fd as inspect_fd,
)
from ._shmsync import RawArray as _RawArray
from ._shmsync import RawValue as _RawValue

_TypeCode = Union[str, Type[ctypes._SimpleCData]]
_L = TypeVar("_L")

class Value:
    @overload
    def __new__(
        cls, typecode_or_type: _TypeCode, *args: Any, lock: Literal[False], name: Optional[str] = ...
    ) -> _RawValue: ...
    @overload
    def __new__(
        cls,
        typecode_or_type: _TypeCode,
        *args: Any,
        lock: Union[Literal[True], RLock, None] = ...,
        name: Optional[str] = ...,
    ) -> Synchronized: ...
    @staticmethod
    def open(name: str) -> Synchronized: ...

class Array:
    @overload
    def __new__(
        cls,
        typecode_or_type: _TypeCode,
        size_or_initializer: Any,
        *,
        lock: Literal[False],
        name: Optional[str] = ...,
    ) -> _RawArray: ...
    @overload
    def __new__(
        cls,
        typecode_or_type: _TypeCode,
        size_or_initializer: Any,
        *,
        lock: Union[Literal[True], RLock, None] = ...,
        name: Optional[str] = ...,
    ) -> SynchronizedArray: ...
    @staticmethod
    def open(name: str) -> SynchronizedArray: ...

class RawValue:
    def __new__(cls, typecode_or_type: _TypeCode, *args: Any, name: Optional[str] = ...) -> _RawValue: ...
    @staticmethod
    def open(name: str) -> _RawValue: ...

class RawArray:
    def __new__(
        cls, typecode_or_type: _TypeCode, size_or_initializer: Any, *, name: Optional[str] = ...
    ) -> _RawArray: ...
    @staticmethod
    def open(name: str) -> _RawArray: ...

def open(name: str) -> Any: ...
def held(lock: _L, repair: Callable[[], object]) -> AbstractContextManager[_L]: ...
