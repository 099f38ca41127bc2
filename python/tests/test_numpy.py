"""The buffer of an array: numpy.frombuffer sees the shared elements
without a copy, writes made in another process included, through `.buffer`
and (Python 3.11+) through the array itself. Skipped without numpy."""

import sys

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


needs_311 = pytest.mark.skipif(sys.version_info < (3, 11), reason="the buffer protocol needs Python 3.11+")


@needs_311
@pytest.mark.parametrize("raw", [False, True])
@pytest.mark.parametrize("code,dtype", [("d", np.float64), ("i", np.int32), ("B", np.uint8),
                                        ("q", np.int64), ("f", np.float32), ("H", np.uint16)])
def test_frombuffer_of_the_array_sees_other_process(ctx, code, dtype, raw):
    a = shmsync.RawArray(code, 8) if raw else shmsync.Array(code, 8)
    view = np.frombuffer(a, dtype=dtype)
    assert view.shape == (8,) and view.flags.writeable
    p = ctx.Process(target=helpers.add_to_array, args=(a, list(range(1, 9))))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    assert view.tolist() == list(range(1, 9))
    view[0] = 42  # and the other way round, in another process too
    assert a[0] == 42
    q = ctx.Process(target=helpers.write_through_view, args=(a, [7, 6]))
    q.start()
    q.join(60)
    assert q.exitcode == 0
    assert view[:2].tolist() == [7, 6]


@needs_311
@pytest.mark.parametrize("code,dtype", [("c", "S1"), ("b", np.int8), ("h", np.int16),
                                        ("I", np.uint32), ("l", np.int64), ("L", np.uint64),
                                        ("Q", np.uint64), ("f", np.float32), ("d", np.float64),
                                        ("u", np.uint32)])
def test_asarray_takes_the_format(code, dtype):
    """numpy.asarray(a) reads the element type from the buffer's format."""
    a = shmsync.RawArray(code, b"ab" if code == "c" else ("ab" if code == "u" else 2))
    arr = np.asarray(a)
    assert arr.dtype == np.dtype(dtype) and arr.shape == (2,)
    assert arr.base is not None and np.shares_memory(arr, np.frombuffer(a, dtype=np.uint8))
