"""Fixtures of the shmsync Python tests: unique segment names, the start
methods, and the check that no test leaves a segment in /dev/shm."""

import itertools
import multiprocessing
import os

import pytest

_counter = itertools.count()
PREFIX = "shmsync_py_%d_" % os.getpid()

START_METHODS = [m for m in ("fork", "spawn", "forkserver") if m in multiprocessing.get_all_start_methods()]


@pytest.fixture
def name():
    """A unique segment name (``shmsync_py_<pid>_<n>``)."""
    return PREFIX + str(next(_counter))


@pytest.fixture
def names():
    """A factory of unique segment names."""
    return lambda: PREFIX + str(next(_counter))


@pytest.fixture(params=START_METHODS)
def ctx(request):
    """A multiprocessing context of each start method."""
    return multiprocessing.get_context(request.param)


def _ours():
    return sorted(f for f in os.listdir("/dev/shm") if f.startswith("shmsync_py_"))


@pytest.fixture(autouse=True, scope="session")
def nothing_left_in_dev_shm():
    before = _ours()
    yield
    import gc

    gc.collect()
    left = [f for f in _ours() if f not in before]
    assert not left, "left in /dev/shm: %s" % left
