"""Owner death across processes: a child SIGKILLed holding a lock; the
documented protocol (OwnerDiedError held by acquire(), mark_consistent(),
NotRecoverableError; `with` never leaves the lock held)."""

import os
import signal
import subprocess
import sys
import time

import pytest

import shmsync
from shmsync import NotRecoverableError, OwnerDiedError

import helpers

HERE = os.path.dirname(os.path.abspath(__file__))


def killed_holder(ctx, lock, use_with=True):
    """Starts a child that takes `lock` and SIGKILLs it once it holds it."""
    ready = shmsync.Event()
    p = ctx.Process(target=helpers.hold_and_wait, args=(lock, ready, use_with))
    p.start()
    assert ready.wait(30)
    os.kill(p.pid, signal.SIGKILL)
    p.join()
    assert p.exitcode == -signal.SIGKILL


def test_repair_protocol(ctx):
    assert helpers.owner_death_scenario(ctx.get_start_method())


@pytest.mark.parametrize("mode", ["fallback", "auto"])
def test_repair_protocol_robustness_modes(mode):
    """The same in a fresh interpreter per robustness mode (the crate reads
    SHMSYNC_ROBUST once per process)."""
    env = dict(os.environ)
    if mode == "fallback":
        env["SHMSYNC_ROBUST"] = "fallback"
    else:
        env.pop("SHMSYNC_ROBUST", None)
    r = subprocess.run([sys.executable, os.path.join(HERE, "helpers.py"), "fork"], env=env,
                       cwd=HERE, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


@pytest.mark.parametrize("cls", [shmsync.Lock, shmsync.RLock])
def test_release_without_repair_is_not_recoverable(cls):
    import multiprocessing
    lock = cls()
    killed_holder(multiprocessing.get_context("fork"), lock, use_with=False)
    with pytest.raises(OwnerDiedError):
        lock.acquire()
    lock.release()  # without mark_consistent
    for _ in range(2):
        with pytest.raises(NotRecoverableError):
            lock.acquire(timeout=1)
        with pytest.raises(NotRecoverableError):
            with lock:
                pass
    assert not lock._is_owned()


def test_with_never_leaves_the_lock_held():
    import multiprocessing
    lock = shmsync.Lock()
    killed_holder(multiprocessing.get_context("fork"), lock)
    t = time.monotonic()
    with pytest.raises(OwnerDiedError):
        with lock:
            raise AssertionError("the body must not run on unrepaired data")
    assert time.monotonic() - t < 1.0
    assert not lock._is_owned()
    assert lock._count() == 0
    with pytest.raises(NotRecoverableError):
        lock.acquire()


def test_value_repair_with_held():
    import multiprocessing
    v = shmsync.Value("i", 5)
    ready = shmsync.Event()
    p = multiprocessing.get_context("fork").Process(target=helpers.scribble_and_die, args=(v, ready))
    p.start()
    assert ready.wait(30)
    os.kill(p.pid, signal.SIGKILL)
    p.join()
    repaired = []

    def repair():
        assert v.value == -1  # the half-done update
        v.value = 5
        repaired.append(True)

    with shmsync.held(v, repair):
        v.value += 1
    assert repaired == [True]
    assert v.value == 6
    with v.get_lock():
        v.value += 1
    assert v.value == 7


def test_value_one_shot_access_after_death():
    import multiprocessing
    v = shmsync.Value("d", 1.0)
    ready = shmsync.Event()
    p = multiprocessing.get_context("fork").Process(target=helpers.scribble_and_die, args=(v, ready))
    p.start()
    assert ready.wait(30)
    os.kill(p.pid, signal.SIGKILL)
    p.join()
    with pytest.raises(OwnerDiedError):
        v.value
    with pytest.raises(NotRecoverableError):
        v.value = 2.0
    assert not v.get_lock()._is_owned()


def test_repair_that_fails_releases():
    import multiprocessing
    lock = shmsync.RLock()
    killed_holder(multiprocessing.get_context("fork"), lock)

    def repair():
        raise RuntimeError("cannot repair")

    with pytest.raises(RuntimeError):
        with shmsync.held(lock, repair):
            pass
    assert not lock._is_owned()
    with pytest.raises(NotRecoverableError):
        lock.acquire()
