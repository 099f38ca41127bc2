"""The calls made fast outside PyO3 (python/src/fast.rs): ``with`` on
locks and locked objects, ``get_lock()``, and ``v.value``, which does not
take the lock again while the calling thread holds it."""

import multiprocessing
import threading
import time

import pytest

import shmsync

from helpers import read_while_parent_holds


@pytest.mark.parametrize("make", [shmsync.Lock, shmsync.RLock])
def test_with_releases_on_exception(make):
    lock = make()
    with pytest.raises(KeyError):
        with lock:
            assert lock._is_owned()
            raise KeyError("inside")
    assert not lock.locked()
    assert lock.acquire(False)
    lock.release()


def test_locked_objects_as_context_managers():
    v = shmsync.Value("q", 0)
    a = shmsync.Array("i", 3)
    with v:
        v.value += 1
        with v.get_lock():  # recursive
            v.value += 1
        assert v.get_lock()._is_owned()
    with a:
        a[0] += 5
    assert v.value == 2 and a[0] == 5
    assert not v.get_lock().locked() and not a.get_lock().locked()


def test_exit_without_holding_raises_as_multiprocessing():
    mv = multiprocessing.Value("q", 0)
    with pytest.raises(AssertionError):
        mv.get_lock().__exit__(None, None, None)
    v = shmsync.Value("q", 0)
    for obj in (v, v.get_lock(), shmsync.Array("b", 1), shmsync.RLock()):
        with pytest.raises(AssertionError):
            obj.__exit__(None, None, None)
    with pytest.raises(ValueError):
        multiprocessing.Lock().__exit__(None, None, None)
    with pytest.raises(ValueError):
        shmsync.Lock().__exit__(None, None, None)


def test_descriptors_check_their_receiver():
    v = shmsync.Value("d", 1.5)
    for call in (
        lambda: type(v).value.__get__(object()),
        lambda: type(v).value.__set__(object(), 1.0),
        lambda: type(v).get_lock(object()),
        lambda: type(v).__enter__(object()),
        lambda: shmsync.RLock.__exit__(object(), None, None, None),
        lambda: shmsync.Lock.__enter__(shmsync.RLock()),
    ):
        with pytest.raises(TypeError):
            call()
    with pytest.raises(AttributeError):
        del v.value
    with pytest.raises(TypeError):
        v.value = "not a number"
    with pytest.raises(TypeError):
        v.get_lock().__enter__(1)
    assert v.value == 1.5


def test_get_lock_is_the_shared_lock():
    v = shmsync.Value("q", 0)
    assert v.get_lock() is v.get_lock()
    w = shmsync.Value("q", 0, lock=v.get_lock())
    assert w.get_lock() is v.get_lock()
    a = shmsync.Array("q", 2, lock=v.get_lock())
    assert a.get_lock() is v.get_lock()
    with v.get_lock():
        w.value = 7  # held through the shared lock
    assert w.value == 7


def test_another_thread_never_sees_a_with_blocks_intermediate_value():
    v = shmsync.Value("q", 0)
    seen = []
    go = threading.Event()

    def reader():
        go.set()
        seen.append(v.value)

    with v.get_lock():
        v.value = -1  # an intermediate state
        t = threading.Thread(target=reader)
        t.start()
        go.wait()
        time.sleep(0.2)  # the reader is blocked on the lock by now
        assert seen == []
        v.value = 2
    t.join()
    assert seen == [2]


def test_another_process_never_sees_a_with_blocks_intermediate_value():
    ctx = multiprocessing.get_context("fork")
    v = shmsync.Value("q", 0)
    seen = shmsync.RawValue("q", 0)
    started = ctx.Event()
    with v.get_lock():
        v.value = -1
        p = ctx.Process(target=read_while_parent_holds, args=(v, started, seen))
        p.start()
        assert started.wait(10)
        time.sleep(0.2)
        v.value = 2
    p.join(10)
    assert p.exitcode == 0
    assert seen.value == 2


def test_a_lock_opened_twice_is_taken_again(name):
    # A second handle of the same named value is a different lock object:
    # its accesses take the (recursive) lock, which this thread holds.
    v = shmsync.Value("q", 0, name=name)
    w = shmsync.Value.open(name)
    with v.get_lock():
        w.value = 3
        assert w.value == 3
    assert v.value == 3


@pytest.mark.parametrize(
    "call",
    [
        lambda l: l.acquire(1, 2, 3),
        lambda l: l.acquire(foo=1),
        lambda l: l.acquire(True, block=True),
        lambda l: l.acquire(True, "x"),
        lambda l: l.acquire(timeout="x"),
    ],
)
def test_acquire_rejects_bad_arguments_as_multiprocessing(call):
    for lock in (multiprocessing.RLock(), shmsync.RLock(), shmsync.Lock(), shmsync.Value("q", 0)):
        with pytest.raises(TypeError):
            call(lock)


@pytest.mark.parametrize("make", [shmsync.Lock, shmsync.RLock, lambda: shmsync.Array("d", 2)])
def test_acquire_arguments(make):
    lock = make()
    assert lock.acquire(0) is True  # integers as multiprocessing accepts
    lock.release()
    assert lock.acquire(block=False) is True
    lock.release()
    assert lock.acquire(True, 0.5) is True
    lock.release()
    assert lock.acquire(timeout=None) is True
    lock.release()
    with pytest.raises((AssertionError, ValueError)):
        lock.release()


def test_a_non_blocking_acquire_of_a_lock_held_elsewhere_fails():
    lock = shmsync.RLock()
    got = []
    lock.acquire()
    t = threading.Thread(target=lambda: got.append((lock.acquire(False), lock.acquire(timeout=0.05))))
    t.start()
    t.join()
    lock.release()
    assert got == [(False, False)]


def test_atomic_value_one_call_methods():
    a = shmsync.AtomicValue("q", 5)
    assert a.load() == 5 and a.value == 5
    assert a.fetch_add(2) == 5 and a.fetch_sub(1) == 7
    assert a.swap(10) == 6 and a.store(3) is None and a.value == 3
    assert a.fetch_max(8) == 3 and a.fetch_min(4) == 8 and a.load() == 4
    assert a.fetch_or(3) == 4 and a.fetch_and(6) == 7 and a.fetch_xor(1) == 6
    assert a.fetch_nand(1) == 7 and a.load() == ~(7 & 1)
    a.value = 42
    assert a.load() == 42
    f = shmsync.AtomicValue("d", 1.5)
    assert f.fetch_add(1.0) == 1.5 and f.value == 2.5
    for call, exc in (
        (lambda: a.fetch_add(), TypeError),
        (lambda: a.fetch_add(1, 2), TypeError),
        (lambda: a.load(1), TypeError),
        (lambda: a.fetch_add("x"), TypeError),
        (lambda: f.fetch_and(1), TypeError),
        (lambda: shmsync.AtomicValue.fetch_add(object(), 1), TypeError),
        (lambda: shmsync.AtomicValue.value.__get__(object()), TypeError),
    ):
        with pytest.raises(exc):
            call()
    with pytest.raises(AttributeError):
        del a.value
    with pytest.raises(TypeError):
        a.value = "x"
    assert a.load() == 42 and f.load() == 2.5
