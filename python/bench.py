"""shmsync against multiprocessing, in one run (output in the README).

    python python/bench.py [--n 200000] [--procs 2] [--start fork]

- locked increments: `with v.get_lock(): v.value += 1` in each of --procs
  processes at once, --n times each (shmsync.Value vs multiprocessing.Value);
- atomic increments: shmsync.AtomicValue.fetch_add(1), same processes;
- uncontended read: `v.value` in one process (locked Value of each).

Rates are total operations per second (best of 3 runs); the machine's load
shows in them, so compare the ratios of one run.
"""

import argparse
import multiprocessing
import time
import timeit

import shmsync


def locked(v, n):
    for _ in range(n):
        with v.get_lock():
            v.value += 1


def atomic(v, n):
    for _ in range(n):
        v.fetch_add(1)


def rate(ctx, target, make, n, procs, check):
    best = 0.0
    for _ in range(3):
        v = make()
        ps = [ctx.Process(target=target, args=(v, n)) for _ in range(procs)]
        t = time.perf_counter()
        for p in ps:
            p.start()
        for p in ps:
            p.join()
        dt = time.perf_counter() - t
        assert check(v) == n * procs, "lost updates"
        best = max(best, n * procs / dt)
    return best


def read_rate(v):
    n = 1_000_000
    return n / min(timeit.repeat("v.value", globals={"v": v}, number=n, repeat=3))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--start", default="fork")
    a = ap.parse_args()
    ctx = multiprocessing.get_context(a.start)
    rows = [
        ("locked +=, multiprocessing.Value", rate(ctx, locked, lambda: ctx.Value("q", 0), a.n, a.procs, lambda v: v.value)),
        ("locked +=, shmsync.Value", rate(ctx, locked, lambda: shmsync.Value("q", 0), a.n, a.procs, lambda v: v.value)),
        ("fetch_add(1), shmsync.AtomicValue", rate(ctx, atomic, lambda: shmsync.AtomicValue("q", 0), a.n, a.procs, lambda v: v.load())),
        ("v.value read, multiprocessing.Value", read_rate(ctx.Value("q", 0))),
        ("v.value read, shmsync.Value", read_rate(shmsync.Value("q", 0))),
    ]
    print("%d processes x %d operations (%s), best of 3:" % (a.procs, a.n, a.start))
    for label, r in rows:
        print("  %-38s %12s ops/s" % (label, format(int(r), ",")))
    mp_locked, sh_locked, sh_atomic, mp_read, sh_read = (r for _, r in rows)
    print("  shmsync locked += vs multiprocessing:   %.1fx" % (sh_locked / mp_locked))
    print("  fetch_add vs multiprocessing locked +=: %.1fx" % (sh_atomic / mp_locked))
    print("  uncontended read vs multiprocessing:    %.1fx" % (sh_read / mp_read))


if __name__ == "__main__":
    main()
