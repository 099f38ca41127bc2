"""multiprocessing compatibility: the same operations on multiprocessing's
Value/Array/RawValue/RawArray/Lock/RLock and on shmsync's give the same
results and raise the same exception types."""

import ctypes
import multiprocessing
import struct
import sys

import pytest

import shmsync

mp = multiprocessing.get_context("fork")

CODES = "cubBhHiIlLqQfd"
CTYPES = [
    ctypes.c_char, ctypes.c_wchar, ctypes.c_byte, ctypes.c_ubyte, ctypes.c_short,
    ctypes.c_ushort, ctypes.c_int, ctypes.c_uint, ctypes.c_long, ctypes.c_ulong,
    ctypes.c_longlong, ctypes.c_ulonglong, ctypes.c_float, ctypes.c_double,
]


def outcome(f):
    """What `f()` gives: ("ok", result) or ("raises", exception type)."""
    try:
        return ("ok", f())
    except Exception as e:  # noqa: BLE001 - the type is the result
        return ("raises", type(e))


def same(make_mp, make_ours, op):
    """`op` on a fresh multiprocessing object and on a fresh shmsync one."""
    want = outcome(lambda: op(make_mp()))
    got = outcome(lambda: op(make_ours()))
    assert got == want


# ---------------------------------------------------------------- values

VALUE_INITS = {
    "c": [b"a", 65, b"ab", "a", 1.5],
    "u": ["x", "xy", b"x", 3],
    "b": [0, -128, 127, 300, -300, True, 1.5, "1", 2**70],
    "B": [0, 255, 256, -1],
    "h": [0, 40000, -40000],
    "H": [65535, 65536, -1],
    "i": [0, 2**31, -(2**31) - 1, 2**40, 1.5],
    "I": [2**32 - 1, 2**32, -1],
    "l": [2**63 - 1, 2**63, -(2**63)],
    "L": [2**64 - 1, 2**64, -1],
    "q": [2**63, -1],
    "Q": [2**64 + 5, -1],
    "f": [1.5, 1, 1e40, "x", 2**200],
    "d": [1.5, 1, True, "x", None, 1e308],
}


@pytest.mark.parametrize("code", CODES)
@pytest.mark.parametrize("raw", [False, True])
def test_value_inits(code, raw):
    for init in VALUE_INITS[code]:
        if raw:
            same(lambda: mp.RawValue(code, init), lambda: shmsync.RawValue(code, init),
                 lambda v: v.value)
        else:
            same(lambda: mp.Value(code, init), lambda: shmsync.Value(code, init),
                 lambda v: v.value)


@pytest.mark.parametrize("code", CODES)
def test_value_default_and_set(code):
    same(lambda: mp.Value(code), lambda: shmsync.Value(code), lambda v: v.value)
    for x in VALUE_INITS[code]:
        def op(v, x=x):
            v.value = x
            return v.value
        same(lambda: mp.Value(code), lambda: shmsync.Value(code), op)


@pytest.mark.parametrize("t", CTYPES)
def test_ctypes_types(t):
    same(lambda: mp.Value(t), lambda: shmsync.Value(t), lambda v: v.value)
    same(lambda: mp.Array(t, 3), lambda: shmsync.Array(t, 3), lambda a: a[:])


@pytest.mark.parametrize("bad", ["z", "", "ii", 5, None, ctypes.c_bool])
def test_bad_type_codes(bad):
    if bad is ctypes.c_bool:
        # multiprocessing takes any ctypes type; shmsync only the 14 codes'.
        with pytest.raises(TypeError):
            shmsync.Value(bad)
        return
    same(lambda: None, lambda: None, lambda _: outcome(lambda: mp.Value(bad, 0))[0])
    assert outcome(lambda: shmsync.Value(bad, 0)) == outcome(lambda: mp.Value(bad, 0))
    assert outcome(lambda: shmsync.Array(bad, 3)) == outcome(lambda: mp.Array(bad, 3))
    assert outcome(lambda: shmsync.RawValue(bad, 0)) == outcome(lambda: mp.RawValue(bad, 0))


def test_value_extra_arguments_and_locks():
    assert outcome(lambda: shmsync.Value("i", 1, 2)) == outcome(lambda: mp.Value("i", 1, 2))
    assert outcome(lambda: shmsync.Value("i", 0, lock=5)) == outcome(lambda: mp.Value("i", 0, lock=5))
    raw = shmsync.Value("i", 3, lock=False)
    assert isinstance(raw, shmsync.RawValue) and not hasattr(raw, "get_lock")
    assert raw.value == 3


# ---------------------------------------------------------------- arrays

def arrays(code, init, raw=False):
    if raw:
        return (lambda: mp.RawArray(code, init)), (lambda: shmsync.RawArray(code, init))
    return (lambda: mp.Array(code, init)), (lambda: shmsync.Array(code, init))


INDICES = [0, 4, -1, -5, 5, -6, 2**70, "x", 1.0, None, slice(None), slice(1, 3),
           slice(None, None, 2), slice(None, None, -1), slice(-2, None), slice(4, 1, -2),
           slice(10, 20), slice(None, None, 0)]


@pytest.mark.parametrize("raw", [False, True])
@pytest.mark.parametrize("code,init", [("i", [1, 2, 3, 4, 5]), ("d", [1.5, 2, 3, 4, 5]),
                                       ("c", b"hello"), ("u", "hello"), ("B", [1, 2, 3, 4, 255])])
def test_array_get(code, init, raw):
    m, o = arrays(code, init, raw)
    for i in INDICES:
        same(m, o, lambda a, i=i: a[i])
    same(m, o, len)
    same(m, o, list)


SETS = [
    (0, 7), (-1, 7), (5, 7), (-6, 7), ("x", 7), (0, "x"), (0, 1.5),
    (slice(1, 3), [8, 9]), (slice(1, 3), [8]), (slice(1, 3), [8, 9, 10]),
    (slice(None, None, 2), [1, 2, 3]), (slice(None, None, 2), [1, 2]),
    (slice(None, None, -1), [5, 4, 3, 2, 1]), (slice(0, 2), 5), (slice(0, 2), (1.5, 2)),
    (slice(0, 2), ["a", "b"]), (slice(3, 1), []), (slice(None, None, 0), [1]),
]


@pytest.mark.parametrize("raw", [False, True])
def test_array_set(raw):
    m, o = arrays("i", [1, 2, 3, 4, 5], raw)
    for i, v in SETS:
        def op(a, i=i, v=v):
            a[i] = v
            return a[:]
        same(m, o, op)


@pytest.mark.parametrize("raw", [False, True])
def test_char_arrays(raw):
    m, o = arrays("c", b"hello\0world", raw)
    for op in [lambda a: a.value, lambda a: a.raw, lambda a: a[:], lambda a: a[0], lambda a: list(a)]:
        same(m, o, op)
    for v in [b"hi", b"", b"x" * 11, b"x" * 12, "str", 5]:
        def set_value(a, v=v):
            a.value = v
            return a.raw

        def set_raw(a, v=v):
            a.raw = v
            return a.raw
        same(m, o, set_value)
        same(m, o, set_raw)
    for i, v in [(0, b"H"), (0, 72), (0, b"HH"), (slice(0, 2), b"HE"), (slice(0, 2), b"H")]:
        def op(a, i=i, v=v):
            a[i] = v
            return a.raw
        same(m, o, op)


def test_array_inits():
    for code, init in [("i", 3), ("i", 0), ("i", -1), ("i", "abc"), ("i", [1, "x"]),
                       ("i", [1, 2.5]), ("d", [1, 2.5]), ("c", 4), ("c", b"ab"), ("u", "ab"),
                       ("i", None), ("b", [300])]:
        for raw in (False, True):
            m, o = arrays(code, init, raw)
            same(m, o, lambda a: a[:])


def test_no_value_on_other_arrays():
    for raw in (False, True):
        m, o = arrays("i", 3, raw)
        same(m, o, lambda a: a.value)
        same(m, o, lambda a: a.raw)


# ---------------------------------------------------------------- locks

@pytest.mark.parametrize("kind", ["Lock", "RLock"])
def test_lock_sequences(kind):
    def seq(lock):
        out = [lock.acquire(), lock.acquire(False), lock.acquire(timeout=0.01)]
        for _ in range(3):
            out.append(outcome(lock.release))
        out.append(lock.acquire(block=False))
        lock.release()
        with lock:
            out.append(lock.acquire(False))
            if out[-1]:
                lock.release()
        out.append(outcome(lock.release))
        return out

    same(getattr(mp, kind), getattr(shmsync, kind), seq)


def test_synchronized_lock_methods():
    def seq(v):
        with v:
            v.value += 1
        out = [v.acquire(), v.value]
        v.release()
        out.append(outcome(v.release))
        with v.get_lock():
            v.value += 2
        out.append(v.value)
        return out

    same(lambda: mp.Value("i", 0), lambda: shmsync.Value("i", 0), seq)
    same(lambda: mp.Array("i", 2), lambda: shmsync.Array("i", 2),
         lambda a: (a.acquire(), a.release(), outcome(a.release))[2])


# ---------------------------------------------------------------- buffers

BUFFER_INITS = {"c": b"abc", "u": "xyz", "f": [1.5, -2.0, 3.25], "d": [1.5, -2.0, 1e300]}


def _view_values(m):
    """The elements a view shows: multiprocessing's formats carry a byte
    order ('<d'), which memoryview.tolist() refuses, so read its bytes in
    the native format of the same size ('l' is '<q' there)."""
    fmt = m.format.lstrip("<@=")
    if m.format != fmt:
        return memoryview(m.tobytes()).cast(fmt).tolist()
    return m.tolist()


@pytest.mark.skipif(sys.version_info < (3, 11), reason="the buffer protocol needs Python 3.11+")
@pytest.mark.parametrize("raw", [False, True])
@pytest.mark.parametrize("code", CODES)
def test_array_memoryview(code, raw):
    """memoryview(a) of a shmsync array looks like memoryview(a.get_obj())
    of multiprocessing's: same item size, bytes, dimensions, shape, strides
    and elements ('u' shows code points, as a 4-byte unsigned 'I')."""
    init = BUFFER_INITS.get(code, [1, 2, 3])
    m, o = arrays(code, init, raw)
    theirs, ours = m(), o()
    want = memoryview(theirs if raw else theirs.get_obj())
    got = memoryview(ours)
    assert got.obj is ours
    for attr in ("itemsize", "nbytes", "ndim", "shape", "strides", "readonly", "c_contiguous"):
        assert getattr(got, attr) == getattr(want, attr), attr
    assert struct.calcsize(got.format) == want.itemsize
    assert got.tobytes() == want.tobytes()
    values = _view_values(want) if code != "u" else [ord(c) for c in init]
    assert got.tolist() == values
