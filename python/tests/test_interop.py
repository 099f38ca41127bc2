"""Rust <-> Python: a Rust process (examples/py_interop.rs) and this one
share a named Value<f64> and Array<i64> under one named RLock, each made by
one side and opened by the other with the right types, and increment them
under that lock to an exact total. Skipped without cargo."""

import os
import shutil
import subprocess
import threading

import pytest

import shmsync

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
N = 20_000


@pytest.fixture(scope="module")
def interop_bin():
    if shutil.which("cargo") is None:
        pytest.skip("cargo not found")
    r = subprocess.run(["cargo", "build", "-q", "--example", "py_interop", "--message-format=json"],
                       cwd=REPO, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    import json
    for line in r.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "py_interop":
            return msg["executable"]
    raise AssertionError("py_interop not built")


def python_increments(v, a, n):
    for _ in range(n):
        with v.get_lock():
            v.value += 1
            for i in range(len(a)):
                a[i] += 1


def start(binary, mode, names):
    p = subprocess.Popen([binary, mode, *names, str(N)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


def finish(p):
    p.stdin.write("go\n")
    p.stdin.flush()
    return p


def test_rust_creates_python_opens(interop_bin, names):
    vn, an, ln = names(), names(), names()
    p = start(interop_bin, "create", (vn, an, ln))
    v, a = shmsync.Value.open(vn), shmsync.Array.open(an)
    assert (v.typecode, a.typecode, len(a)) == ("d", "q", 3)
    assert shmsync.inspect(vn)["lock"] == ("shared", ln)
    finish(p)
    python_increments(v, a, N)
    assert p.stdout.readline().strip() == "done"
    assert (v.value, a[:]) == (2.0 * N, [2 * N] * 3)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 0
    assert out.strip() == "%s [%d, %d, %d]" % (2 * N, 2 * N, 2 * N, 2 * N)
    del v, a
    assert not [n for n in (vn, an, ln) if os.path.exists("/dev/shm/" + n)]


def test_python_creates_rust_opens(interop_bin, names):
    vn, an, ln = names(), names(), names()
    lock = shmsync.RLock(name=ln)
    v = shmsync.Value("d", 0.0, lock=lock, name=vn)
    a = shmsync.Array("q", 3, lock=lock, name=an)
    p = start(interop_bin, "open", (vn, an, ln))
    finish(p)
    t = threading.Thread(target=python_increments, args=(v, a, N))
    t.start()  # a second Python thread, with the GIL released while blocked
    python_increments(v, a, N)
    t.join()
    assert p.stdout.readline().strip() == "done"
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 0
    assert (v.value, a[:]) == (3.0 * N, [3 * N] * 3)


def test_type_mismatch_across_languages(interop_bin, names):
    vn, an, ln = names(), names(), names()
    lock = shmsync.RLock(name=ln)
    v = shmsync.Value("f", 0.0, lock=lock, name=vn)  # f32, not the f64 Rust expects
    a = shmsync.Array("q", 3, lock=lock, name=an)
    r = subprocess.run([interop_bin, "open", vn, an, ln, "1"], input="", capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1 and "f32" not in r.stdout
    assert "expected" in r.stderr
    del v, a
