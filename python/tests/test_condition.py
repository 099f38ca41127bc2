"""Condition: multiprocessing's behaviour side by side, across processes
under every start method, named objects, Ctrl-C, owner death."""

import multiprocessing
import os
import pickle
import signal
import threading
import time

import pytest

import shmsync
from shmsync import OwnerDiedError

import helpers


def conditions():
    mp = multiprocessing.get_context("fork")
    return [
        ("mp", mp.Condition()),
        ("mp-lock", mp.Condition(mp.Lock())),
        ("shm", shmsync.Condition()),
        ("shm-lock", shmsync.Condition(shmsync.Lock())),
        ("shm-rlock", shmsync.Condition(shmsync.RLock())),
    ]


@pytest.mark.parametrize("kind,c", conditions())
def test_compat_single_process(kind, c):
    """The same results and exceptions as multiprocessing.Condition."""
    with pytest.raises(AssertionError):
        c.wait(0.01)
    with pytest.raises(AssertionError):
        c.notify()
    with pytest.raises(AssertionError):
        c.notify_all()
    assert c.acquire() is True
    t = time.monotonic()
    assert c.wait(0.05) is False
    assert time.monotonic() - t >= 0.05
    assert c.wait(0) is False
    assert c.wait(-1) is False
    c.notify()
    c.notify(3)
    c.notify(0)
    c.notify_all()
    assert c.wait_for(lambda: 7) == 7
    assert c.wait_for(lambda: 0, timeout=0.05) == 0
    assert c.wait_for(lambda: [], timeout=0) == []
    c.release()
    with c as entered:
        assert entered is True
        assert c.wait(0.01) is False
    with pytest.raises((AssertionError, ValueError)):
        c.release()
    assert c.acquire(False) is True
    c.release()


def test_recursive_levels_released_and_restored():
    """wait() releases every level of an RLock (another thread takes the
    lock meanwhile) and restores them."""
    c = shmsync.Condition()
    flag, ready = shmsync.RawValue("i", 0), threading.Event()
    t = threading.Thread(target=helpers.cond_set_flag, args=(c, flag, ready))
    t.start()
    with c:
        with c:
            ready.set()
            assert c.wait_for(lambda: flag.value == 1, timeout=30)
            assert c.get_lock()._count() == 2
        assert c.get_lock()._count() == 1
    t.join()
    assert c.get_lock()._count() == 0


@pytest.mark.parametrize("lockcls", [None, shmsync.Lock, shmsync.RLock])
def test_ping_pong_across_processes(ctx, lockcls):
    """Two processes alternate 300 turns through the condition: no lost
    wake-up (each wait_for would time out), exact counts."""
    lock = lockcls() if lockcls else None
    c = shmsync.Condition(lock)
    v = shmsync.RawValue("i", 0)
    mine, theirs = shmsync.RawValue("i", 0), shmsync.RawValue("i", 0)
    p = ctx.Process(target=helpers.cond_ping_pong, args=(c, v, 1, 300, theirs))
    p.start()
    helpers.cond_ping_pong(c, v, 0, 300, mine)
    p.join(60)
    assert p.exitcode == 0
    assert (mine.value, theirs.value, v.value) == (300, 300, 600)


def test_shared_rlock_with_values(ctx):
    """A condition over the RLock of a Value: the waited-for state is the
    value, read and written under the same lock."""
    lock = shmsync.RLock()
    v = shmsync.Value("i", 0, lock=lock)
    c = shmsync.Condition(lock)
    ready = shmsync.Event()
    p = ctx.Process(target=helpers.cond_set_flag, args=(c, v, ready))
    p.start()
    with c:
        ready.set()
        assert c.wait_for(lambda: v.value == 1, timeout=30)
    p.join(60)
    assert p.exitcode == 0


def test_named(names):
    n, ln = names(), names()
    c = shmsync.Condition(name=n)
    assert c.name == n
    d = shmsync.Condition.open(n)
    e = shmsync.open(n)
    assert isinstance(e, shmsync.Condition)
    with c:
        assert d.get_lock()._count() == 0  # held through another handle
        assert d.get_lock().locked()
    lock = shmsync.Lock(name=ln)
    n2 = names()
    f = shmsync.Condition(lock, name=n2)
    g = shmsync.Condition.open(n2)
    assert isinstance(g.get_lock(), shmsync.Lock)
    with f:
        assert g.get_lock().locked()
    with pytest.raises(ValueError):
        shmsync.Condition(shmsync.Lock(), name=names())  # an anonymous lock
    with pytest.raises(TypeError):
        shmsync.Condition(threading.Lock())
    with pytest.raises(shmsync.MismatchError):
        shmsync.Lock.open(n)
    del c, d, e, f, g


def test_pickle_keeps_the_lock_object():
    """A condition and its lock pickled together arrive as one lock object
    (so that `with lock: cond.wait()` works in the child)."""
    lock = shmsync.RLock()
    c = shmsync.Condition(lock)
    c2, lock2 = pickle.loads(pickle.dumps((c, lock)))
    assert c2.get_lock() is lock2
    with lock2:
        assert c2.wait(0.01) is False
        assert lock.locked()
    own = shmsync.Condition()
    own2 = pickle.loads(pickle.dumps(own))
    with own2:
        assert own.get_lock().locked()


def test_sigint_interrupts_wait(ctx):
    c = shmsync.Condition()
    ready, result = shmsync.Event(), shmsync.RawValue("i", 0)
    p = ctx.Process(target=helpers.cond_blocked_wait, args=(c, ready, result))
    p.start()
    assert ready.wait(30)
    time.sleep(0.3)  # let it block in wait()
    assert p.is_alive()
    os.kill(p.pid, signal.SIGINT)
    p.join(10)
    assert p.exitcode == 0
    assert result.value == 12  # KeyboardInterrupt, with the lock held again


def test_owner_death_while_waiting():
    """A process that takes the lock while this one waits, notifies and
    dies holding it: the wait returns with OwnerDiedError, the lock held (repair,
    mark_consistent, release), within a second of the death."""
    ctx = multiprocessing.get_context("fork")
    c = shmsync.Condition(shmsync.Lock())
    flag, ready = shmsync.RawValue("i", 0), shmsync.Event()
    p = ctx.Process(target=helpers.cond_hold_and_wait, args=(c, flag, ready))
    killed = []

    def killer():
        assert ready.wait(30)
        killed.append(time.monotonic())
        os.kill(p.pid, signal.SIGKILL)

    with c:
        p.start()
        k = threading.Thread(target=killer)
        k.start()
        with pytest.raises(OwnerDiedError):
            c.wait(timeout=60)
        assert time.monotonic() - killed[0] < 1.0
        assert c.get_lock()._is_owned()
        assert flag.value == 1
        c.mark_consistent()
    k.join()
    p.join()
    assert c.acquire(timeout=1)
    c.release()
