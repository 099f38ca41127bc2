"""Worker functions for the tests' child processes (importable under spawn
and forkserver)."""

import os
import signal
import sys
import time


def locked_increments(v, n):
    for _ in range(n):
        with v.get_lock():
            v.value += 1


def atomic_increments(v, n):
    for _ in range(n):
        v.fetch_add(1)


def pi_chunks(lo, hi, terms, chunk):
    """The partial sums of worker slice [lo, hi) of the midpoint rule for
    pi = integral of 4/(1+x^2) on [0, 1], chunk by chunk, each rounded to a
    multiple of 2**-32 so that adding them is exact in any order."""
    h = 1.0 / terms
    for start in range(lo, hi, chunk):
        s = 0.0
        for i in range(start, min(start + chunk, hi)):
            x = h * (i + 0.5)
            s += 4.0 / (1.0 + x * x)
        yield round(s * h * 2**32) / 2**32


def pi_worker(pi, lo, hi, terms, chunk):
    """The book's worker: adds each partial sum under the value's lock."""
    for part in pi_chunks(lo, hi, terms, chunk):
        with pi.get_lock():
            pi.value += part


def pi_atomic_worker(pi, lo, hi, terms, chunk):
    for part in pi_chunks(lo, hi, terms, chunk):
        pi.fetch_add(part)


def hold_and_wait(lock, ready, use_with):
    """Takes `lock` and signals `ready`, then waits to be killed."""
    if use_with:
        with lock:
            ready.set()
            time.sleep(60)
    else:
        lock.acquire()
        ready.set()
        time.sleep(60)


def scribble_and_die(v, ready):
    """Holds v's lock, half-updates it, and waits to be killed."""
    with v.get_lock():
        v.value = -1
        ready.set()
        time.sleep(60)


def blocked_acquire(lock, ready, result):
    """Blocks in lock.acquire(); reports what interrupted it."""
    try:
        ready.set()
        lock.acquire()
        result.value = 1
    except KeyboardInterrupt:
        result.value = 2


def write_array(a, values):
    for i, v in enumerate(values):
        a[i] = v


def read_into(src, dst):
    """Copies src (any shmsync value/array) into dst, to check what a child
    sees."""
    if hasattr(src, "value") and not hasattr(src, "__len__"):
        dst.value = src.value
    else:
        for i in range(len(src)):
            dst[i] = src[i]


def owner_death_scenario(ctx_name="fork"):
    """A child SIGKILLed inside `with lock:`; the parent's next acquire
    reports it within a second (OwnerDiedError, held), the repair protocol
    makes the lock usable again. Also run as a script under
    SHMSYNC_ROBUST=fallback."""
    import multiprocessing

    import shmsync

    ctx = multiprocessing.get_context(ctx_name)
    for cls in (shmsync.Lock, shmsync.RLock):
        lock, ready = cls(), shmsync.Event()
        p = ctx.Process(target=hold_and_wait, args=(lock, ready, True))
        p.start()
        assert ready.wait(30)
        os.kill(p.pid, signal.SIGKILL)
        p.join()
        t = time.monotonic()
        try:
            lock.acquire(timeout=10)
            raise AssertionError("no OwnerDiedError")
        except shmsync.OwnerDiedError:
            pass
        assert time.monotonic() - t < 1.0
        assert lock._is_owned()
        lock.mark_consistent()
        lock.release()
        assert lock.acquire(timeout=1)
        lock.release()
    return True


if __name__ == "__main__":
    assert owner_death_scenario(sys.argv[1] if len(sys.argv) > 1 else "fork")
    print("ok")


def touch_all(objs, out):
    """In a child: checks and changes each object passed (anonymous or
    named), recording what it saw in `out` (a RawArray('d'))."""
    v, a, rv, ra, av, aa, ev, lock, rlock, c = objs
    out[0] = v.value
    v.value = 10
    out[1] = a[2]
    a[2] = 11
    out[2] = rv.value
    rv.value = 12
    out[3] = ra[1]
    ra[1] = 13
    out[4] = av.fetch_add(1)
    out[5] = aa.fetch_add(0, 1)
    out[6] = float(ev.is_set())
    ev.set()
    out[7] = float(lock.acquire(False))
    out[8] = float(rlock.acquire(False))
    out[9] = float(c.value == b"hey")
    c.value = b"yo"


def shared_lock_increments(v, a, n):
    """Increments v and a[0] under their one shared lock."""
    for _ in range(n):
        with v.get_lock():
            v.value += 1
            a[0] += 1


def add_to_array(a, values):
    for i, x in enumerate(values):
        a[i] = x


def write_through_view(a, values):
    """Writes `values` through memoryview(a) (the buffer protocol of the
    array this child received)."""
    m = memoryview(a)
    for i, x in enumerate(values):
        m[i] = x
    m.release()


def release_in_child(lock, out):
    """In a forked child of a holder: release() must not release the
    parent's hold (the copy of it is not the child's)."""
    try:
        lock.release()
        out.value = 1
    except (ValueError, AssertionError):
        out.value = 2
    out.value += 10 * int(lock.acquire(False))


# --- Condition and Barrier -------------------------------------------------


def cond_ping_pong(cond, v, me, rounds, out):
    """Two parties take turns: party `me` (0 or 1) waits for v.value % 2 ==
    me, increments v and notifies; `out` counts its turns (a lost wake-up
    shows as a timed-out wait_for)."""
    for _ in range(rounds):
        with cond:
            t = time.monotonic()
            ok = cond.wait_for(lambda: v.value % 2 == me, timeout=20)
            # A turn takes microseconds: 10 s is a lost notify (the
            # predicate may have become true by the time a wait ran out).
            if not ok or time.monotonic() - t > 10:
                out.value = -1
                return
            v.value += 1
            out.value += 1
            cond.notify_all()


def cond_set_flag(cond, flag, ready):
    """Waits for `ready`, then sets `flag` under the condition's lock and
    notifies."""
    ready.wait(30)
    with cond:
        flag.value = 1
        cond.notify()


def cond_blocked_wait(cond, ready, result):
    """Blocks in cond.wait(); reports what ended it (2: KeyboardInterrupt)
    and whether the lock was held again afterwards (+10)."""
    with cond:
        try:
            ready.set()
            cond.wait()
            result.value = 1
        except KeyboardInterrupt:
            result.value = 2
        if cond.get_lock()._is_owned():
            result.value += 10


def cond_hold_and_wait(cond, flag, ready):
    """Takes the condition's lock, sets flag, notifies, signals ready, and
    waits to be killed (holding the lock)."""
    with cond:
        flag.value = 1
        cond.notify()
        ready.set()
        time.sleep(60)


def barrier_rounds(b, rounds, arrived, index_sum, failures):
    """`rounds` rounds of b.wait(): each checks that every party of the
    round arrived before anyone passed (`arrived` counts arrivals)."""
    parties = b.parties
    for r in range(rounds):
        arrived.fetch_add(1)
        i = b.wait(timeout=60)
        index_sum.fetch_add(i)
        if arrived.load() < parties * (r + 1):
            failures.fetch_add(1)


def barrier_wait_report(b, ready, result):
    """Waits on b; records 1 (passed), 3 (BrokenBarrierError) or 2
    (KeyboardInterrupt)."""
    import threading

    try:
        ready.set()
        b.wait()
        result.value = 1
    except threading.BrokenBarrierError:
        result.value = 3
    except KeyboardInterrupt:
        result.value = 2


def sem_workers(sem, inside, most, n):
    """n times: holds `sem` while counting itself in `inside`; `most`
    records the most holders seen at once."""
    for _ in range(n):
        with sem:
            k = inside.fetch_add(1) + 1
            most.fetch_max(k)
            inside.fetch_sub(1)


def pipe_echo(conn, n):
    """Echoes n objects back, then closes its end."""
    for _ in range(n):
        conn.send(conn.recv())
    conn.close()


def pipe_send_and_wait(conn, ready):
    """Takes its end by sending one message, then waits to be killed."""
    conn.send_bytes(b"hello")
    ready.set()
    time.sleep(60)


def pipe_blocked_recv(conn, ready, result):
    """Blocks in recv(); records 1 (a message), 2 (KeyboardInterrupt), 3
    (EOFError)."""
    try:
        conn.poll(0)  # take the end
        ready.set()
        conn.recv_bytes()
        result.value = 1
    except KeyboardInterrupt:
        result.value = 2
    except EOFError:
        result.value = 3


def mq_producer(q, n):
    for i in range(n):
        q.send(i.to_bytes(4, "little"))


def read_while_parent_holds(v, started, seen):
    """Reads ``v.value`` once (blocking while the parent holds the lock)
    and reports what it saw."""
    started.set()
    seen.value = v.value
