"""Semaphore and BoundedSemaphore: multiprocessing's behaviour side by
side, across processes under every start method, Ctrl-C, names and
pickling."""

import multiprocessing
import os
import pickle
import signal
import time

import pytest

import shmsync

import helpers


def pairs(cls_name, *args):
    mp = multiprocessing.get_context("fork")
    return [("mp", getattr(mp, cls_name)(*args)), ("shm", getattr(shmsync, cls_name)(*args))]


@pytest.mark.parametrize("kind,s", pairs("Semaphore", 2) + pairs("BoundedSemaphore", 2))
def test_compat_single_process(kind, s):
    assert s.get_value() == 2
    assert s.acquire() is True
    assert s.acquire(False) is True
    assert s.acquire(False) is False
    t = time.monotonic()
    assert s.acquire(timeout=0.05) is False
    assert time.monotonic() - t >= 0.05
    assert s.acquire(True, -1) is False  # a negative timeout is 0
    assert s.get_value() == 0
    s.release()
    with s as entered:
        assert entered is True
        assert s.get_value() == 0
    assert s.get_value() == 1
    s.release()
    assert s.get_value() == 2


def test_compat_over_release():
    for kind, s in pairs("BoundedSemaphore", 1):
        with pytest.raises(ValueError):
            s.release()
        assert s.get_value() == 1
    for kind, s in pairs("Semaphore", 0):
        s.release()
        s.release()
        assert s.get_value() == 2
    s = shmsync.Semaphore(0)
    s.release(3)
    assert s.get_value() == 3
    with pytest.raises(ValueError):
        s.release(0)
    b = shmsync.BoundedSemaphore(2)
    b.acquire()
    with pytest.raises(ValueError):
        b.release(2)  # nothing is returned
    assert b.get_value() == 1
    with pytest.raises(ValueError):
        shmsync.Semaphore(-1)


def test_limits_holders_across_processes(ctx):
    sem = shmsync.Semaphore(2)
    inside, most = shmsync.AtomicValue("q", 0), shmsync.AtomicValue("q", 0)
    ps = [ctx.Process(target=helpers.sem_workers, args=(sem, inside, most, 2000)) for _ in range(3)]
    for p in ps:
        p.start()
    helpers.sem_workers(sem, inside, most, 2000)
    for p in ps:
        p.join(60)
        assert p.exitcode == 0
    assert 1 <= most.load() <= 2
    assert sem.get_value() == 2 and inside.load() == 0


def test_signalling_between_processes(ctx, names):
    """Released in one process, acquired in another (not a held permit)."""
    s = shmsync.Semaphore(0, name=names())
    ready, result = shmsync.Event(), shmsync.RawValue("i", 0)
    p = ctx.Process(target=helpers.blocked_acquire, args=(s, ready, result))
    p.start()
    assert ready.wait(30)
    time.sleep(0.1)
    s.release()
    p.join(30)
    assert p.exitcode == 0 and result.value == 1
    assert s.get_value() == 0


@pytest.mark.parametrize("cls", [shmsync.Semaphore, shmsync.BoundedSemaphore])
def test_sigint_interrupts_acquire(ctx, cls):
    s = cls(1)
    s.acquire()
    ready, result = shmsync.Event(), shmsync.RawValue("i", 0)
    p = ctx.Process(target=helpers.blocked_acquire, args=(s, ready, result))
    p.start()
    assert ready.wait(30)
    time.sleep(0.3)
    assert p.is_alive()
    os.kill(p.pid, signal.SIGINT)
    p.join(10)
    assert p.exitcode == 0
    assert result.value == 2


def test_named_open_pickle(names):
    n = names()
    b = shmsync.BoundedSemaphore(3, name=n)
    assert isinstance(shmsync.open(n), shmsync.BoundedSemaphore)
    c = shmsync.BoundedSemaphore.open(n)
    c.acquire()
    assert b.get_value() == 2
    with pytest.raises(shmsync.MismatchError):
        shmsync.Semaphore.open(n)
    d = pickle.loads(pickle.dumps(shmsync.Semaphore(5)))
    assert d.get_value() == 5
    e = pickle.loads(pickle.dumps(b))
    assert e.get_value() == 2
    del b, c, e
