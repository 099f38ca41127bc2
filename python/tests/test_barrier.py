"""Barrier: multiprocessing's behaviour side by side, rounds across
processes under every start method, a killed party breaks it, Ctrl-C,
named objects and pickling."""

import multiprocessing
import os
import pickle
import signal
import threading
import time

import pytest

import shmsync
from threading import BrokenBarrierError

import helpers


def barriers(parties, **kw):
    mp = multiprocessing.get_context("fork")
    return [("mp", mp.Barrier(parties, **kw)), ("shm", shmsync.Barrier(parties, **kw))]


@pytest.mark.parametrize("kind,b", barriers(2))
def test_compat_single_process(kind, b):
    """The same results and exceptions as multiprocessing.Barrier."""
    assert (b.parties, b.n_waiting, b.broken) == (2, 0, False)
    b.abort()
    assert b.broken is True
    with pytest.raises(BrokenBarrierError):
        b.wait()
    b.reset()
    assert b.broken is False
    t = time.monotonic()
    with pytest.raises(BrokenBarrierError):
        b.wait(timeout=0.1)  # a timeout breaks it
    assert time.monotonic() - t >= 0.1
    assert b.broken is True
    with pytest.raises(BrokenBarrierError):
        b.wait(timeout=0)
    b.reset()
    got = []
    t = threading.Thread(target=lambda: got.append(b.wait(10)))
    t.start()
    got.append(b.wait(10))
    t.join()
    assert sorted(got) == [0, 1]
    assert b.broken is False


@pytest.mark.parametrize("kind,b", barriers(2, timeout=0.1))
def test_compat_default_timeout(kind, b):
    with pytest.raises(BrokenBarrierError):
        b.wait()
    assert b.broken


@pytest.mark.parametrize("kind", ["mp", "shm"])
def test_compat_action(kind):
    calls = []
    mod = multiprocessing.get_context("fork") if kind == "mp" else shmsync
    b = mod.Barrier(1, action=lambda: calls.append(1))
    assert b.wait() == 0
    assert b.wait() == 0
    assert calls == [1, 1]

    def boom():
        raise ZeroDivisionError

    b = mod.Barrier(1, action=boom)
    with pytest.raises(ZeroDivisionError):
        b.wait()
    assert b.broken


def test_bad_parties():
    for p in (0, -1, 4096, 2**70):
        with pytest.raises((ValueError, OverflowError)):
            shmsync.Barrier(p)
    assert shmsync.Barrier(4095).parties == 4095


def test_rounds_across_processes(ctx):
    """3 processes x 100 rounds: nobody passes a round before all arrived;
    each round's indices are 0, 1, 2."""
    rounds = 100
    b = shmsync.Barrier(3)
    arrived, index_sum, failures = (shmsync.AtomicValue("q", 0) for _ in range(3))
    args = (b, rounds, arrived, index_sum, failures)
    ps = [ctx.Process(target=helpers.barrier_rounds, args=args) for _ in range(2)]
    for p in ps:
        p.start()
    helpers.barrier_rounds(*args)
    for p in ps:
        p.join(60)
        assert p.exitcode == 0
    assert failures.load() == 0
    assert index_sum.load() == rounds * 3
    assert arrived.load() == rounds * 3
    assert not b.broken


def test_killed_party_breaks_the_barrier():
    """A party SIGKILLed while it waits: the others get BrokenBarrierError
    within a few seconds, not a hang (multiprocessing's barrier hangs)."""
    ctx = multiprocessing.get_context("fork")
    b = shmsync.Barrier(3)
    ready, result = shmsync.Event(), shmsync.RawValue("i", 0)
    p = ctx.Process(target=helpers.barrier_wait_report, args=(b, ready, result))
    p.start()
    assert ready.wait(30)

    def killer():
        while b.n_waiting < 2:
            time.sleep(0.01)
        os.kill(p.pid, signal.SIGKILL)

    k = threading.Thread(target=killer)
    k.start()
    t = time.monotonic()
    with pytest.raises(BrokenBarrierError):
        b.wait(timeout=60)
    assert time.monotonic() - t < 10
    k.join()
    p.join()
    assert p.exitcode == -signal.SIGKILL
    assert b.broken
    b.reset()
    assert b.n_waiting == 0 and not b.broken


def test_sigint_interrupts_wait_and_breaks(ctx):
    """Ctrl-C in a waiting party: KeyboardInterrupt there, and the barrier
    is broken (Python's barrier breaks on any exception in a wait)."""
    b = shmsync.Barrier(2)
    ready, result = shmsync.Event(), shmsync.RawValue("i", 0)
    p = ctx.Process(target=helpers.barrier_wait_report, args=(b, ready, result))
    p.start()
    assert ready.wait(30)
    while b.n_waiting < 1:
        time.sleep(0.01)
    os.kill(p.pid, signal.SIGINT)
    p.join(10)
    assert p.exitcode == 0
    assert result.value == 2
    assert b.broken


def test_named_and_pickled(names):
    n = names()
    b = shmsync.Barrier(2, timeout=5.0, name=n)
    assert b.name == n
    c = shmsync.open(n)
    assert isinstance(c, shmsync.Barrier) and c.parties == 2
    d = shmsync.Barrier.open(n, timeout=0.05)
    with pytest.raises(BrokenBarrierError):
        d.wait()  # its own default timeout
    assert b.broken
    b.reset()
    e = pickle.loads(pickle.dumps(b))
    assert e.parties == 2
    got = []
    t = threading.Thread(target=lambda: got.append(e.wait()))
    t.start()
    got.append(b.wait())
    t.join()
    assert sorted(got) == [0, 1]
    anon = shmsync.Barrier(1, action=int, timeout=1.0)
    f = pickle.loads(pickle.dumps(anon))
    assert f.wait() == 0
    with pytest.raises(shmsync.MismatchError):
        shmsync.Event.open(n)
    del b, c, d, e
