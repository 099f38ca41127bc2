"""Pipe/Connection and MessageQueue: multiprocessing's behaviour side by
side, across processes under every start method, a killed peer gives
EOFError, Ctrl-C, names and pickling."""

import multiprocessing
import os
import pickle
import queue
import signal
import time

import pytest

import shmsync
from multiprocessing import BufferTooShort

import helpers


def pipes(duplex=True):
    mp = multiprocessing.get_context("fork")
    return [("mp", mp.Pipe(duplex)), ("shm", shmsync.Pipe(duplex))]


@pytest.mark.parametrize("kind,pair", pipes())
def test_compat_duplex(kind, pair):
    a, b = pair
    assert b.poll() is False
    t = time.monotonic()
    assert b.poll(0.05) is False
    assert time.monotonic() - t >= 0.05
    a.send({"x": [1, 2.5, "three"]})
    assert b.poll(1) is True
    assert b.recv() == {"x": [1, 2.5, "three"]}
    b.send(None)
    assert a.recv() is None
    a.send_bytes(b"0123456789", 2, 3)
    assert b.recv_bytes() == b"234"
    a.send_bytes(bytearray(b"ab"))
    a.send_bytes(memoryview(b"cd"))
    a.send_bytes(b"")
    assert (b.recv_bytes(), b.recv_bytes(), b.recv_bytes()) == (b"ab", b"cd", b"")
    for bad in ((b"abc", -1), (b"abc", 4), (b"abc", 1, 3), (b"abc", 0, -1)):
        with pytest.raises(ValueError):
            a.send_bytes(*bad)
    buf = bytearray(8)
    a.send_bytes(b"xyz")
    assert b.recv_bytes_into(buf, 2) == 3
    assert bytes(buf) == b"\0\0xyz\0\0\0"
    a.send_bytes(b"too long for it")
    with pytest.raises(BufferTooShort) as e:
        b.recv_bytes_into(bytearray(4))
    assert e.value.args[0] == b"too long for it"
    a.send_bytes(b"last")
    a.close()
    assert a.closed is True
    with pytest.raises(OSError):
        a.send_bytes(b"x")
    assert b.recv_bytes() == b"last"  # drained first
    assert b.poll() is True  # end of file is "ready"
    with pytest.raises(EOFError):
        b.recv_bytes()
    with pytest.raises(OSError):  # BrokenPipeError
        b.send_bytes(b"x")
    b.close()


@pytest.mark.parametrize("kind,pair", pipes(duplex=False))
def test_compat_simplex(kind, pair):
    r, w = pair
    assert (r.readable, r.writable, w.readable, w.writable) == (True, False, False, True)
    with pytest.raises(OSError):
        r.send_bytes(b"x")
    with pytest.raises(OSError):
        w.recv_bytes()
    w.send(42)
    assert r.recv() == 42
    r.close()
    w.close()


def test_too_large_and_capacity():
    a, b = shmsync.Pipe(capacity=16)
    with pytest.raises(ValueError):
        a.send_bytes(b"x" * 17)
    a.send_bytes(b"x" * 16)
    assert b.recv_bytes() == b"x" * 16


def test_echo_across_processes(ctx):
    a, b = shmsync.Pipe()
    p = ctx.Process(target=helpers.pipe_echo, args=(b, 200))
    p.start()
    for i in range(200):
        a.send((i, "x" * (i % 50)))
        assert a.recv() == (i, "x" * (i % 50))
    p.join(60)
    assert p.exitcode == 0
    with pytest.raises(EOFError):
        a.recv()


def test_killed_peer_gives_eof():
    """The other end's process SIGKILLed: recv raises EOFError (after what
    it sent), never hangs."""
    ctx = multiprocessing.get_context("fork")
    a, b = shmsync.Pipe()
    ready = shmsync.Event()
    p = ctx.Process(target=helpers.pipe_send_and_wait, args=(b, ready))
    p.start()
    assert ready.wait(30)
    os.kill(p.pid, signal.SIGKILL)
    p.join()
    assert a.recv_bytes() == b"hello"
    t = time.monotonic()
    with pytest.raises(EOFError):
        a.recv_bytes()
    assert time.monotonic() - t < 10


def test_sigint_interrupts_recv(ctx):
    a, b = shmsync.Pipe()
    ready, result = shmsync.Event(), shmsync.RawValue("i", 0)
    p = ctx.Process(target=helpers.pipe_blocked_recv, args=(b, ready, result))
    p.start()
    assert ready.wait(30)
    time.sleep(0.3)
    assert p.is_alive()
    os.kill(p.pid, signal.SIGINT)
    p.join(10)
    assert p.exitcode == 0
    assert result.value == 2


def test_named_pipe(names):
    n = names()
    a, b = shmsync.Pipe(name=n)
    c = shmsync.Connection.open(n, "B")
    del b
    a.send_bytes(b"hi")
    assert c.recv_bytes() == b"hi"
    c.send_bytes(b"yo")
    assert a.recv_bytes() == b"yo"
    a.close()
    c.close()


def test_message_queue(ctx, names):
    q = shmsync.MessageQueue(4, 8, name=names())
    assert (q.maxsize, q.empty(), q.full()) == (4, True, False)
    with pytest.raises(queue.Empty):
        q.recv(block=False)
    t = time.monotonic()
    with pytest.raises(queue.Empty):
        q.recv(timeout=0.05)
    assert time.monotonic() - t >= 0.05
    with pytest.raises(ValueError):
        q.send(b"123456789" * 2)
    for i in range(4):
        q.send(bytes([i]))
    assert q.full() and q.qsize() == 4
    with pytest.raises(queue.Full):
        q.send(b"x", timeout=0.05)
    with pytest.raises(queue.Full):
        q.send(b"x", block=False)
    assert [q.recv() for _ in range(4)] == [b"\0", b"\1", b"\2", b"\3"]
    assert isinstance(shmsync.open(q.name), shmsync.MessageQueue)
    anon = shmsync.MessageQueue(8, 4)
    p = ctx.Process(target=helpers.mq_producer, args=(anon, 500))
    p.start()
    got = [int.from_bytes(anon.recv(timeout=30), "little") for _ in range(500)]
    p.join(60)
    assert p.exitcode == 0
    assert got == list(range(500))
    anon.send(b"end")
    anon.close()
    with pytest.raises(EOFError):
        anon.send(b"more")
    assert anon.recv() == b"end"
    with pytest.raises(EOFError):
        anon.recv()
    r = pickle.loads(pickle.dumps(q))
    assert r.maxsize == 4
