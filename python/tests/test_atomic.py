"""AtomicValue and AtomicArray: every operation, floats and bool included,
and the TypeErrors of operations a type does not have."""

import math

import pytest

import shmsync
from shmsync import AtomicArray, AtomicValue

INT_CODES = "bBhHiIqQnNlL"


@pytest.mark.parametrize("code", INT_CODES)
def test_integer_ops(code):
    v = AtomicValue(code, 5)
    assert v.load() == 5 and v.value == 5
    assert v.fetch_add(3) == 5 and v.load() == 8
    assert v.fetch_sub(2) == 8 and v.load() == 6
    assert v.fetch_max(10) == 6 and v.load() == 10
    assert v.fetch_min(4) == 10 and v.load() == 4
    assert v.swap(7) == 4
    assert v.compare_exchange(7, 1) == (True, 7)
    assert v.compare_exchange(7, 2) == (False, 1)
    v.store(0b1100)
    assert v.fetch_and(0b1010) == 0b1100 and v.load() == 0b1000
    assert v.fetch_or(0b0001) == 0b1000 and v.load() == 0b1001
    assert v.fetch_xor(0b1111) == 0b1001 and v.load() == 0b0110
    assert v.fetch_nand(0b0100) == 0b0110
    assert v.typecode == {"l": "q", "L": "Q"}.get(code, code)


def test_wrapping():
    v = AtomicValue("B", 255)
    assert v.fetch_add(1) == 255 and v.load() == 0
    assert v.fetch_sub(1) == 0 and v.load() == 255
    w = AtomicValue("q", 2**63 - 1)
    w.fetch_add(1)
    assert w.load() == -(2**63)
    u = AtomicValue("Q")
    u.fetch_add(-1)  # wraps like ctypes
    assert u.load() == 2**64 - 1


@pytest.mark.parametrize("code", "fd")
def test_float_ops(code):
    v = AtomicValue(code, 1.5)
    assert v.fetch_add(0.25) == 1.5 and v.load() == 1.75
    assert v.fetch_sub(1) == 1.75 and v.load() == 0.75
    assert v.fetch_max(2.5) == 0.75 and v.load() == 2.5
    assert v.fetch_min(-1.0) == 2.5 and v.load() == -1.0
    v.store(math.nan)
    assert math.isnan(v.fetch_max(1.0)) and v.load() == 1.0
    for op in ("fetch_and", "fetch_or", "fetch_xor", "fetch_nand"):
        with pytest.raises(TypeError):
            getattr(v, op)(1)
    with pytest.raises(TypeError):
        v.store("x")


def test_bool():
    b = AtomicValue("?", True)
    assert b.fetch_xor(True) is True and b.load() is False
    assert b.fetch_or(True) is False and b.load() is True
    for op in ("fetch_add", "fetch_sub", "fetch_max", "fetch_min"):
        with pytest.raises(TypeError):
            getattr(b, op)(True)


def test_bad_codes_and_values():
    for bad in ("c", "u", "x", ""):
        with pytest.raises(TypeError):
            AtomicValue(bad, 0)
    with pytest.raises(TypeError):
        AtomicValue("i", 1.5)


def test_array():
    a = AtomicArray("i", [1, 2, 3])
    assert len(a) == 3 and list(a) == [1, 2, 3] and a.tolist() == [1, 2, 3]
    assert a.fetch_add(-1, 10) == 3 and a[2] == 13
    a[0] = 7
    assert a.load(0) == 7 and a.swap(0, 8) == 7
    assert a.compare_exchange(1, 2, 5) == (True, 2)
    for i in (3, -4, 2**70):
        with pytest.raises((IndexError, OverflowError)):
            a.load(i)
    p = AtomicArray("d", 4, padded=True)
    assert p.padded and not a.padded
    p.fetch_add(3, 0.5)
    assert p.tolist() == [0.0, 0.0, 0.0, 0.5]
    with pytest.raises(ValueError):
        AtomicArray("i", -1)


def test_named(names):
    n = names()
    v = AtomicValue("d", 2.0, name=n)
    w = AtomicValue.open(n)
    w.fetch_add(1.0)
    assert v.load() == 3.0 and shmsync.open(n).load() == 3.0
    with pytest.raises(shmsync.MismatchError):
        AtomicArray.open(n)
    with pytest.raises(FileExistsError):
        AtomicValue("d", name=n)
    with pytest.raises(FileNotFoundError):
        AtomicValue.open(names())


@pytest.mark.parametrize("make", [
    lambda: shmsync.Array("d", 10**15),
    lambda: shmsync.RawArray("q", 10**15),
    lambda: AtomicArray("q", 10**15),
    lambda: AtomicArray("d", 10**15, padded=True),
])
def test_absurd_lengths_are_memory_errors(make):
    # 8 PB: more than the address space, on any overcommit setting.
    with pytest.raises(MemoryError):
        make()
