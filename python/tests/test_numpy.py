"""The buffer of an array: numpy.frombuffer sees the shared elements
without a copy, writes made in another process included. Skipped without
numpy."""

import multiprocessing

import pytest

import shmsync

import helpers

np = pytest.importorskip("numpy")


@pytest.mark.parametrize("code,dtype", [("d", np.float64), ("i", np.int32), ("B", np.uint8),
                                        ("q", np.int64), ("f", np.float32)])
def test_frombuffer_sees_other_process(ctx, code, dtype):
    a = shmsync.RawArray(code, 8)
    view = np.frombuffer(a.buffer, dtype=dtype)
    assert view.shape == (8,)
    p = ctx.Process(target=helpers.add_to_array, args=(a, list(range(1, 9))))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    assert view.tolist() == list(range(1, 9))
    view[0] = 42  # and the other way round
    assert a[0] == 42


def test_locked_array_buffer_and_memoryview():
    a = shmsync.Array("d", [1.0, 2.0])
    m = a.buffer
    assert (m.format, m.itemsize, len(m)) == ("d", 8, 2)
    with a.get_lock():  # views bypass the lock: hold it where it matters
        m[1] = 5.0
    assert a[1] == 5.0
    del m
    c = shmsync.RawArray("c", b"abc")
    assert bytes(c.buffer) == b"abc"
    assert len(shmsync.RawArray("i", 0).buffer) == 0
