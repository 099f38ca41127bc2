"""The book's pi program with shmsync's Value (and with AtomicValue's
fetch_add), 4 worker processes, under each start method: exact results."""

import math

import pytest

import shmsync
from shmsync import AtomicValue, Value

import helpers

TERMS = 200_000
CHUNK = 2_000
WORKERS = 4


def slices():
    step = TERMS // WORKERS
    return [(w * step, (w + 1) * step if w < WORKERS - 1 else TERMS) for w in range(WORKERS)]


def expected():
    return sum(p for lo, hi in slices() for p in helpers.pi_chunks(lo, hi, TERMS, CHUNK))


def run(ctx, target, pi):
    ps = [ctx.Process(target=target, args=(pi, lo, hi, TERMS, CHUNK)) for lo, hi in slices()]
    for p in ps:
        p.start()
    for p in ps:
        p.join(60)
        assert p.exitcode == 0


def test_pi_locked_value(ctx):
    pi = Value("d", 0.0)
    run(ctx, helpers.pi_worker, pi)
    assert pi.value == expected()
    assert abs(pi.value - math.pi) < 1e-6


def test_pi_atomic_value(ctx):
    pi = AtomicValue("d", 0.0)
    run(ctx, helpers.pi_atomic_worker, pi)
    assert pi.load() == expected()


@pytest.mark.parametrize("kind", ["locked", "atomic"])
def test_pi_named(ctx, name, kind):
    if kind == "locked":
        pi, target = Value("d", 0.0, name=name), helpers.pi_worker
        value = lambda: pi.value  # noqa: E731
    else:
        pi, target = AtomicValue("d", name=name), helpers.pi_atomic_worker
        value = pi.load
    run(ctx, target, pi)
    assert value() == expected()
    assert shmsync.inspect(name)["typecode"] == "d"
