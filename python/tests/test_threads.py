"""Python threads: a blocked acquire releases the GIL (so the holder can go
on and release), holds belong to the thread that took them, and a forked
child does not own its parent's holds."""

import multiprocessing
import threading
import time

import pytest

import shmsync

import helpers


@pytest.mark.parametrize("cls", [shmsync.Lock, shmsync.RLock])
def test_blocked_thread_releases_the_gil(cls):
    lock = cls()
    lock.acquire()
    got = []
    t = threading.Thread(target=lambda: got.append(lock.acquire(timeout=10)))
    t.start()
    time.sleep(0.2)  # the thread blocks in acquire; this one must still run
    assert got == []
    lock.release()
    t.join(10)
    assert got == [True]
    # the hold is the other thread's (ended): not this one's to release
    with pytest.raises((ValueError, AssertionError)):
        lock.release()


def test_threads_increment_under_the_lock():
    v = shmsync.Value("i", 0)
    ts = [threading.Thread(target=helpers.locked_increments, args=(v, 20_000)) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert v.value == 80_000


def test_release_by_another_thread_fails():
    lock = shmsync.Lock()
    lock.acquire()
    err = []

    def other():
        try:
            lock.release()
        except ValueError as e:
            err.append(e)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert len(err) == 1
    assert lock._is_owned()
    lock.release()


@pytest.mark.parametrize("cls", [shmsync.Lock, shmsync.RLock])
def test_forked_child_does_not_own_parents_hold(cls):
    lock = cls()
    out = shmsync.RawValue("i", 0)
    with lock:
        p = multiprocessing.get_context("fork").Process(target=helpers.release_in_child, args=(lock, out))
        p.start()
        p.join(30)
    assert p.exitcode == 0
    assert out.value == 2  # release refused, acquire(False) failed (held here)
