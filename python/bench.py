"""shmsync against multiprocessing, in one run (output in the README).

    python python/bench.py [--n 200000] [--procs 2] [--start fork] [--quick]

- locked increments: `with v.get_lock(): v.value += 1` in each of --procs
  processes at once, --n times each (shmsync.Value vs multiprocessing.Value);
- atomic increments: shmsync.AtomicValue.fetch_add(1), same processes;
- uncontended read: `v.value` in one process (locked Value of each), best
  of 7 rounds that alternate between the two libraries.

The processes run where the scheduler puts them ("free": the issue's
setting and the headline ratios), then pinned to two CPUs ("apart") and to
one ("same"), since the figures depend on it: on two CPUs
multiprocessing's semaphore sleeps and wakes on every contended acquire,
on one CPU the processes take turns and rarely meet. Rates are total
operations per second (best of 3 runs), timed from the first worker's
start to the last one's end (process start-up not counted); the
machine's load shows in them, so compare the ratios of one run.
"""

import argparse
import multiprocessing
import os
import sys
import time
import timeit

# `python python/bench.py` puts this directory first on the path, and it
# holds the package's sources without the built extension: look there last,
# so that an installed package comes first (an editable install, whose
# path entry is this directory, still finds it).
_here = os.path.dirname(os.path.abspath(__file__))
_mine = [p for p in sys.path if os.path.abspath(p or os.curdir) == _here]
sys.path = [p for p in sys.path if p not in _mine] + _mine

import shmsync  # noqa: E402


def pin(cpu):
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def locked(v, n, cpu, times, i, start):
    pin(cpu)
    start.wait()
    times[2 * i] = time.perf_counter()
    for _ in range(n):
        with v.get_lock():
            v.value += 1
    times[2 * i + 1] = time.perf_counter()


def atomic(v, n, cpu, times, i, start):
    pin(cpu)
    start.wait()
    times[2 * i] = time.perf_counter()
    for _ in range(n):
        v.fetch_add(1)
    times[2 * i + 1] = time.perf_counter()


def rate(ctx, target, make, n, procs, check, cpus=None):
    """Total operations per second from the first process's start to the
    last one's end (the processes start their loops together, at a
    barrier, and read the monotonic clock around them: starting and joining
    processes is not counted)."""
    best = 0.0
    for _ in range(3):
        v = make()
        times = shmsync.RawArray("d", 2 * procs)
        start = ctx.Barrier(procs + 1)
        ps = [
            ctx.Process(
                target=target,
                args=(v, n, None if cpus is None else cpus[i % len(cpus)], times, i, start),
            )
            for i in range(procs)
        ]
        for p in ps:
            p.start()
        start.wait()
        for p in ps:
            p.join()
        assert all(p.exitcode == 0 for p in ps), "a worker failed"
        assert check(v) == n * procs, "lost updates"
        dt = max(times[1::2]) - min(times[0::2])
        best = max(best, n * procs / dt)
    return best


def read_rates(values, n, rounds=7):
    """Reads per second of `v.value` for each of `values`, best of
    `rounds` rounds that alternate between them (so that a change in the
    machine's load meets every value alike)."""
    best = [float("inf")] * len(values)
    for _ in range(rounds):
        for i, v in enumerate(values):
            best[i] = min(best[i], timeit.timeit("v.value", globals={"v": v}, number=n))
    return [n / t for t in best]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--start", default="fork")
    ap.add_argument("--quick", action="store_true", help="a smoke run: few operations")
    a = ap.parse_args()
    if a.quick:
        a.n = 2_000
    ctx = multiprocessing.get_context(a.start)

    def mp_locked(cpus=None):
        return rate(ctx, locked, lambda: ctx.Value("q", 0), a.n, a.procs, lambda v: v.value, cpus)

    def sh_locked(cpus=None):
        return rate(ctx, locked, lambda: shmsync.Value("q", 0), a.n, a.procs, lambda v: v.value, cpus)

    def sh_atomic(cpus=None):
        return rate(ctx, atomic, lambda: shmsync.AtomicValue("q", 0), a.n, a.procs, lambda v: v.load(), cpus)

    reads = 20_000 if a.quick else 300_000
    mp_read, sh_read = read_rates([ctx.Value("q", 0), shmsync.Value("q", 0)], reads)
    rows = [
        ("locked +=, multiprocessing.Value", mp_locked()),
        ("locked +=, shmsync.Value", sh_locked()),
        ("fetch_add(1), shmsync.AtomicValue", sh_atomic()),
        ("v.value read, multiprocessing.Value", mp_read),
        ("v.value read, shmsync.Value", sh_read),
    ]
    print("%d processes x %d operations (%s), best of 3:" % (a.procs, a.n, a.start))
    for label, r in rows:
        print("  %-38s %12s ops/s" % (label, format(int(r), ",")))
    mp_l, sh_l, sh_a, mp_read, sh_read = (r for _, r in rows)
    print("  shmsync locked += vs multiprocessing:   %.1fx" % (sh_l / mp_l))
    print("  fetch_add vs multiprocessing locked +=: %.1fx" % (sh_a / mp_l))
    print("  uncontended read vs multiprocessing:    %.1fx" % (sh_read / mp_read))

    cpus = sorted(os.sched_getaffinity(0))
    placements = [("apart", cpus[:2]), ("same", cpus[:1])] if len(cpus) >= 2 else []
    if placements:
        print("placed (CPUs %s): locked += mp / shmsync, fetch_add; ratios" % ",".join(map(str, cpus[:2])))
    for label, where in placements:
        m, s, f = mp_locked(where), sh_locked(where), sh_atomic(where)
        print(
            "  %-6s %10s %10s %11s ops/s   %.1fx  %.1fx"
            % (label, format(int(m), ","), format(int(s), ","), format(int(f), ","), s / m, f / m)
        )


if __name__ == "__main__":
    main()
