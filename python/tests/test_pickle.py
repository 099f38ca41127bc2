"""Handing objects to children under fork, spawn and forkserver: named ones
travel by name, anonymous ones by descriptor; unpickling checks kind, type
code and length as open does."""

import pickle

import pytest

import shmsync
from shmsync import MismatchError

import helpers


def make_all(names=None):
    n = (lambda: None) if names is None else names
    return [
        shmsync.Value("d", 1.5, name=n()),
        shmsync.Array("i", [1, 2, 3], name=n()),
        shmsync.RawValue("h", 4, name=n()),
        shmsync.RawArray("Q", [5, 6], name=n()),
        shmsync.AtomicValue("q", 7, name=n()),
        shmsync.AtomicArray("d", [8.0, 9.0], name=n()),
        shmsync.Event(name=n()),
        shmsync.Lock(name=n()),
        shmsync.RLock(name=n()),
        shmsync.Array("c", b"hey", name=n()),
    ]


@pytest.mark.parametrize("named", [False, True])
def test_every_object_reaches_a_child(ctx, named, names):
    objs = make_all(names if named else None)
    v, a, rv, ra, av, aa, ev, lock, rlock, c = objs
    lock.acquire()  # held here: the child's acquire(False) must fail
    out = shmsync.RawArray("d", 10)
    p = ctx.Process(target=helpers.touch_all, args=(objs, out))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    assert out[:] == [1.5, 3.0, 4.0, 6.0, 7.0, 8.0, 0.0, 0.0, 1.0, 1.0]
    assert (v.value, a[2], rv.value, ra[1], av.load(), aa.load(0)) == (10, 11, 12, 13, 8, 9.0)
    assert ev.is_set()
    assert c.value == b"yo"
    lock.release()


def test_shared_lock_travels(ctx):
    lock = shmsync.RLock()
    v = shmsync.Value("i", 0, lock=lock)
    a = shmsync.Array("q", 2, lock=lock)
    assert v.get_lock() is lock and a.get_lock() is lock
    ps = [ctx.Process(target=helpers.shared_lock_increments, args=(v, a, 5_000)) for _ in range(2)]
    for p in ps:
        p.start()
    helpers.shared_lock_increments(v, a, 5_000)
    for p in ps:
        p.join(60)
        assert p.exitcode == 0
    assert (v.value, a[0]) == (15_000, 15_000)


def test_named_shared_lock(names):
    lock = shmsync.RLock(name=names())
    n = names()
    v = shmsync.Value("i", 0, lock=lock, name=n)
    w = shmsync.Value.open(n)
    assert shmsync.inspect(n)["lock"] == ("shared", lock.name)
    with lock:
        assert w.get_lock()._is_owned()  # the same lock, re-opened by name
    with pytest.raises(TypeError):
        shmsync.Value("i", 0, lock=shmsync.Lock())
    del v, w


def rebuild_with(obj, **change):
    f, (cls, handle, code, length, lock) = obj.__reduce__()
    args = dict(cls=cls, handle=handle, code=code, length=length, lock=lock)
    args.update(change)
    return f(args["cls"], args["handle"], args["code"], args["length"], args["lock"])


def test_unpickling_checks_type_and_length(names):
    for named in (False, True):
        n = names if named else (lambda: None)
        a = shmsync.Array("i", 3, name=n())
        assert rebuild_with(a)[:] == [0, 0, 0]
        with pytest.raises(MismatchError):
            rebuild_with(a, code="d")
        with pytest.raises(MismatchError):
            rebuild_with(a, length=4)
        with pytest.raises(MismatchError):
            rebuild_with(a, cls="RawArray")
        v = shmsync.Value("d", 1.0, name=n())
        with pytest.raises(MismatchError):
            rebuild_with(v, code="q")
        with pytest.raises(MismatchError):
            rebuild_with(v, cls="AtomicValue")


def test_pickle_outside_process_start():
    """An anonymous object pickled outside a process start goes through
    multiprocessing's resource sharer (here, back to this process)."""
    v = shmsync.Value("i", 3)
    w = pickle.loads(pickle.dumps(v))
    w.value = 4
    assert v.value == 4
    n = shmsync.RawArray("b", [1, 2])
    assert pickle.loads(pickle.dumps(n))[:] == [1, 2]
