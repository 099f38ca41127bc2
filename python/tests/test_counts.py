"""2 and 4 processes x 100 000 locked increments and atomic increments:
exact totals (fork; the start methods are covered by test_pi)."""

import multiprocessing

import pytest

from shmsync import AtomicValue, Value

import helpers

N = 100_000


def run(target, v, procs):
    ctx = multiprocessing.get_context("fork")
    ps = [ctx.Process(target=target, args=(v, N)) for _ in range(procs)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(120)
        assert p.exitcode == 0


@pytest.mark.parametrize("procs", [2, 4])
def test_locked_increments(procs):
    v = Value("i", 0)
    run(helpers.locked_increments, v, procs)
    assert v.value == procs * N


@pytest.mark.parametrize("procs", [2, 4])
def test_atomic_increments(procs):
    v = AtomicValue("q", 0)
    run(helpers.atomic_increments, v, procs)
    assert v.load() == procs * N


def test_spawn_locked_increments():
    """Under spawn (the object pickled by descriptor): 2 x 20 000."""
    ctx = multiprocessing.get_context("spawn")
    v = Value("l", 0)
    ps = [ctx.Process(target=helpers.locked_increments, args=(v, 20_000)) for _ in range(2)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(60)
        assert p.exitcode == 0
    assert v.value == 40_000
