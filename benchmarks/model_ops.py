"""Benchmark: what each model syscall costs with 1,000 and with 65,530 named VMAs.

The address space holds N VMAs of 3 pages at 0x4000000000, side by side, alternating ``rw``
and ``r`` so neighbours never merge, each named with a 79-character name. Every timed step
is a pair that leaves the address space as it found it (split then merge back, map then
unmap, ...), on the VMA in the middle, so all repeats see the same N. A syscall that is
O(log n) in the number of VMAs shows a ratio near 1 between the two sizes; fork, exit and
rendering maps are O(n) by nature.

Usage: ``python benchmarks/model_ops.py [--sizes 1000,65530] [--repeat 2000] [--out results/model_ops.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

from anonvma.model import Mm

BASE = 0x4000000000
PAGE = 4096
NAME = "n" * 79


def build(count: int, strategy: str) -> Mm:
    """An Mm with ``count`` named 3-page VMAs that cannot merge with each other.

    max_map_count is raised by a few so that a step's temporary split fits at 65,530.
    """
    mm = Mm(strategy, max_map_count=count + 8)
    for i in range(count):
        addr = BASE + 3 * PAGE * i
        mm.mmap(addr, 3 * PAGE, "rw" if i % 2 == 0 else "r")
        mm.set_anon_name(addr, 3 * PAGE, NAME)
    assert mm.map_count == count
    return mm


def steps(mm: Mm, count: int) -> Dict[str, Callable[[], object]]:
    """Named do-and-undo pairs on the middle VMA (an ``rw`` one)."""
    mid = BASE + 3 * PAGE * (count // 2 // 2 * 2)
    inner = mid + PAGE
    far = BASE + 3 * PAGE * (count + 10)

    def rename_interior() -> None:  # split into three, then merge back
        mm.set_anon_name(inner, PAGE, "other")
        mm.set_anon_name(inner, PAGE, NAME)

    def mprotect_interior() -> None:
        mm.mprotect(inner, PAGE, "r")
        mm.mprotect(inner, PAGE, "rw")

    def munmap_mmap_name() -> None:
        mm.munmap(inner, PAGE)
        mm.mmap(inner, PAGE, "rw")
        mm.set_anon_name(inner, PAGE, NAME)

    def fault_then_dontneed() -> None:
        mm.fault(inner, write=True)
        mm.madvise(inner, PAGE, "dontneed")

    def mremap_away_and_back() -> None:
        mm.mremap(mid, 3 * PAGE, 3 * PAGE, ("maymove", "fixed"), far)
        mm.mremap(far, 3 * PAGE, 3 * PAGE, ("maymove", "fixed"), mid)

    def fork_exit() -> None:
        mm.fork().exit()

    return {
        "set_anon_name interior + back (split 3, merge)": rename_interior,
        "mprotect interior + back": mprotect_interior,
        "munmap + mmap + name one page": munmap_mmap_name,
        "write fault + madvise dontneed": fault_then_dontneed,
        "mremap move away + back": mremap_away_and_back,
        "fork + exit (O(n))": fork_exit,
        "maps() text (O(n))": mm.maps,
    }


def timed_us(fn: Callable[[], object], budget_s: float, at_most: int) -> List[float]:
    """Per-call wall times in microseconds: up to ``at_most`` calls or ``budget_s`` seconds."""
    fn()
    out: List[float] = []
    stop = time.perf_counter() + budget_s
    while len(out) < at_most and (len(out) < 5 or time.perf_counter() < stop):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e6)
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,65530")
    ap.add_argument("--strategy", default="refcount", choices=("refcount", "strdup"))
    ap.add_argument("--repeat", type=int, default=2000, help="at most this many calls per step")
    ap.add_argument("--budget", type=float, default=2.0, help="seconds per step and size")
    ap.add_argument("--out", default="results/model_ops.json")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]

    medians: Dict[int, Dict[str, float]] = {}
    for count in sizes:
        mm = build(count, args.strategy)
        medians[count] = {name: statistics.median(timed_us(fn, args.budget, args.repeat))
                          for name, fn in steps(mm, count).items()}
        assert mm.map_count == count, "a step did not leave the address space as it found it"
        mm.exit()

    small, big = sizes[0], sizes[-1]
    print(f"model ({args.strategy}), median microseconds per step, 79-character names")
    print(f"{'step':48s} {small:>10,d} {big:>10,d}  ratio")
    for name in medians[big]:
        a, b = medians[small][name], medians[big][name]
        print(f"{name:48s} {a:10.1f} {b:10.1f}  {b / a:5.2f}")
    result = {
        "benchmark": "model_ops",
        "strategy": args.strategy,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "us_median": {str(k): v for k, v in medians.items()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
