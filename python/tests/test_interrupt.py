"""Ctrl-C (SIGINT) interrupts a blocked acquire() and Event.wait() with
KeyboardInterrupt; timed waits return after roughly their timeout."""

import os
import signal
import time

import pytest

import shmsync

import helpers


def blocked_child(ctx, lock):
    ready, result = shmsync.Event(), shmsync.RawValue("i", 0)
    p = ctx.Process(target=helpers.blocked_acquire, args=(lock, ready, result))
    p.start()
    assert ready.wait(30)
    return p, result


@pytest.mark.parametrize("cls", [shmsync.Lock, shmsync.RLock])
def test_sigint_interrupts_blocked_acquire(ctx, cls):
    lock = cls()
    assert lock.acquire()
    p, result = blocked_child(ctx, lock)
    time.sleep(0.3)  # let it block in acquire()
    assert p.is_alive()
    os.kill(p.pid, signal.SIGINT)
    p.join(10)
    assert p.exitcode == 0
    assert result.value == 2  # KeyboardInterrupt, not the lock
    lock.release()


def test_sigint_interrupts_event_wait():
    import multiprocessing
    ev = shmsync.Event()
    ready, result = shmsync.Event(), shmsync.RawValue("i", 0)

    class W:
        def acquire(self):
            ev.wait()

    p = multiprocessing.get_context("fork").Process(
        target=helpers.blocked_acquire, args=(W(), ready, result))
    p.start()
    assert ready.wait(30)
    time.sleep(0.3)
    os.kill(p.pid, signal.SIGINT)
    p.join(10)
    assert result.value == 2


def test_timeouts():
    lock = shmsync.Lock()
    lock.acquire()
    import multiprocessing
    ctx = multiprocessing.get_context("fork")
    got = shmsync.RawValue("d", -1.0)

    def child():
        t = time.monotonic()
        ok = lock.acquire(timeout=0.2)
        got.value = (time.monotonic() - t) if not ok else -2.0

    p = ctx.Process(target=child)
    p.start()
    p.join(10)
    assert 0.2 <= got.value < 5.0
    ev = shmsync.Event()
    t = time.monotonic()
    assert ev.wait(0.1) is False
    assert time.monotonic() - t >= 0.1
    lock.release()
