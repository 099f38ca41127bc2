"""The buffer protocol of arrays (Python 3.11+): memoryview(a) is a
zero-copy view of the shared elements, writable, kept valid by a reference
to the array, given by every way of making an array (constructors, open,
unpickling), and filled as the request flags ask."""

import ctypes
import gc
import pickle
import sys

import pytest

import shmsync

import helpers

if sys.version_info < (3, 11):
    def test_no_buffer_protocol_before_3_11():
        a = shmsync.RawArray("i", [1, 2])
        with pytest.raises(TypeError):
            memoryview(a)
        assert a.buffer.tolist() == [1, 2]

    pytest.skip("the buffer protocol needs Python 3.11+", allow_module_level=True)


@pytest.mark.parametrize("raw", [False, True])
def test_every_array_has_the_protocol(raw, names):
    cls = shmsync.RawArray if raw else shmsync.Array
    kw = {"lock": False} if raw else {}
    n = names()
    named = shmsync.Array("i", [1, 2, 3], name=n, **kw)
    made = [named, cls.open(n), shmsync.open(n), pickle.loads(pickle.dumps(named)),
            pickle.loads(pickle.dumps(shmsync.Array("i", [1, 2, 3], **kw))),
            shmsync.Array(ctypes.c_int, [1, 2, 3], **kw)]
    if not raw:
        shared = shmsync.RLock()
        made += [shmsync.Array("i", [1, 2, 3], lock=shared),
                 pickle.loads(pickle.dumps(shmsync.Array("i", [1, 2, 3], lock=shared)))]
    for a in made:
        assert isinstance(a, cls)
        m = memoryview(a)
        assert (m.obj, m.format, m.shape, m.tolist()) == (a, "i", (3,), [1, 2, 3])
        m.release()
    named.unlink()


def test_writes_through_the_view_and_back():
    for a in (shmsync.Array("d", [0.0] * 4), shmsync.RawArray("d", 4)):
        m = memoryview(a)
        m[1] = 2.5
        m[-1] = -1.0
        assert a[:] == [0.0, 2.5, 0.0, -1.0]
        a[0] = 7.0
        assert m[0] == 7.0
        with pytest.raises(IndexError):
            m[4] = 1.0
        m.cast("B")[8:16] = memoryview(bytearray(8)).cast("B")
        assert a[1] == 0.0


@pytest.mark.parametrize("raw", [False, True])
def test_views_see_other_processes(ctx, raw):
    """A child's writes through its own memoryview are seen by the parent's
    indexing and view, and a child's indexing by the parent's view: the
    view is the shared elements, not a copy."""
    a = shmsync.RawArray("q", 6) if raw else shmsync.Array("q", 6)
    m = memoryview(a)
    p = ctx.Process(target=helpers.write_through_view, args=(a, [10, 20, 30]))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    assert a[:3] == [10, 20, 30] and m[:3].tolist() == [10, 20, 30]
    p = ctx.Process(target=helpers.add_to_array, args=(a, [1, 2, 3, 4, 5, 6]))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    assert m.tolist() == [1, 2, 3, 4, 5, 6]


def test_view_keeps_the_array_alive():
    """The view holds a reference to the array (hence its mapping): the
    array outlives every name of it but the view."""
    m = memoryview(shmsync.RawArray("d", [1.5, 2.5, 3.5]))
    n = memoryview(shmsync.Array("i", [4, 5]))
    gc.collect()
    junk = [shmsync.RawArray("d", [9.0] * 3) for _ in range(50)]  # reuse freed memory
    assert m.tolist() == [1.5, 2.5, 3.5] and n.tolist() == [4, 5]
    m[0] = 0.5
    assert m.obj[0] == 0.5 and sys.getrefcount(m.obj) >= 2
    del junk


def test_empty_array():
    m = memoryview(shmsync.RawArray("i", 0))
    assert (m.nbytes, m.shape, m.tolist(), bytes(m)) == (0, (0,), [], b"")


# The request flags of Include/pybuffer.h.
PyBUF_SIMPLE, PyBUF_WRITABLE, PyBUF_FORMAT, PyBUF_ND = 0, 0x1, 0x4, 0x8
PyBUF_STRIDES = 0x10 | PyBUF_ND
PyBUF_FULL = 0x100 | PyBUF_STRIDES | PyBUF_WRITABLE | PyBUF_FORMAT


class Py_buffer(ctypes.Structure):  # noqa: N801 - the C name
    _fields_ = [
        ("buf", ctypes.c_void_p), ("obj", ctypes.py_object), ("len", ctypes.c_ssize_t),
        ("itemsize", ctypes.c_ssize_t), ("readonly", ctypes.c_int), ("ndim", ctypes.c_int),
        ("format", ctypes.c_char_p), ("shape", ctypes.POINTER(ctypes.c_ssize_t)),
        ("strides", ctypes.POINTER(ctypes.c_ssize_t)),
        ("suboffsets", ctypes.POINTER(ctypes.c_ssize_t)), ("internal", ctypes.c_void_p),
    ]


def get_buffer(obj, flags):
    """PyObject_GetBuffer(obj, &view, flags) as a dict of the fields (NULL
    pointers as None), then PyBuffer_Release."""
    view = Py_buffer()
    api = ctypes.pythonapi
    api.PyObject_GetBuffer.argtypes = [ctypes.py_object, ctypes.POINTER(Py_buffer), ctypes.c_int]
    api.PyBuffer_Release.argtypes = [ctypes.POINTER(Py_buffer)]
    if api.PyObject_GetBuffer(obj, ctypes.byref(view), flags) != 0:
        raise AssertionError("PyObject_GetBuffer failed")
    try:
        return {
            "buf": view.buf, "obj": view.obj, "len": view.len, "itemsize": view.itemsize,
            "readonly": view.readonly, "ndim": view.ndim, "format": view.format,
            "shape": view.shape[0] if view.shape else None,
            "strides": view.strides[0] if view.strides else None,
            "suboffsets": bool(view.suboffsets),
        }
    finally:
        api.PyBuffer_Release(ctypes.byref(view))


@pytest.mark.parametrize("raw", [False, True])
def test_request_flags(raw):
    """format, shape and strides are filled only when asked for (NULL
    otherwise, as the protocol requires); every request is met, writable
    included; buf is the elements' address in the array's own mapping."""
    a = shmsync.RawArray("h", [1, 2, 3]) if raw else shmsync.Array("h", [1, 2, 3])
    common = {"obj": a, "len": 6, "itemsize": 2, "readonly": 0, "ndim": 1, "suboffsets": False}
    for flags, fmt, shape, strides in [
        (PyBUF_SIMPLE, None, None, None),
        (PyBUF_WRITABLE, None, None, None),
        (PyBUF_FORMAT, b"h", None, None),
        (PyBUF_ND, None, 3, None),
        (PyBUF_STRIDES, None, 3, 2),
        (PyBUF_FULL, b"h", 3, 2),
    ]:
        got = get_buffer(a, flags)
        buf = got.pop("buf")
        assert got == dict(common, format=fmt, shape=shape, strides=strides), hex(flags)
        assert ctypes.c_short.from_address(buf + 2).value == 2
    before = sys.getrefcount(a)
    get_buffer(a, PyBUF_FULL)
    assert sys.getrefcount(a) == before  # the view's reference is given back
