"""Benchmark: the registry of names (``fallback=True``), what it costs to name and to read.

1. Naming: N one-page private mappings (read-only, so they do not merge) named one by one
   with ``fallback=True`` on this kernel, which cannot name memory: microseconds per naming,
   beside the ``mmap`` of each page, in this process, for each N.
2. Reading: ``anonvma show PID --json``, the whole command, of two children with the same
   mappings (``--vmas`` extra one-page VMAs, and a 48-page mapping with 15 pages written),
   one of which named 16 pages in the middle of that mapping and a ``named_mmap`` (so the
   reader also counts pages in pagemap); interleaved, ``--repeat`` times: medians and ratio.

Default interpreter settings, garbage collector on; the load average and CPU pressure before
and after say how busy the machine was.

Usage: ``python benchmarks/registry.py [--repeat 21] [--vmas 1000] [--out results/registry.json]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smaps_read import busy, command, user_command, write_json  # noqa: E402 - the sibling benchmark's helpers

CHILD = r"""
import ctypes, sys
from anonvma import live
from anonvma.live import syscalls
P = syscalls.PAGE_SIZE
RW, ANON = syscalls.PROT_READ | syscalls.PROT_WRITE, syscalls.MAP_PRIVATE | syscalls.MAP_ANONYMOUS
extra = [syscalls.mmap(0, P, syscalls.PROT_READ, ANON) for _ in range(int(sys.argv[1]))]
base = syscalls.mmap(0, 48 * P, RW, ANON)
for i in range(0, 45, 3):
    ctypes.memset(base + i * P, 1, 1)
m = live.named_mmap(16 * P, "cache", fallback=True) if sys.argv[2] == "1" else None
if sys.argv[2] == "1":
    live.set_anon_name(base + 16 * P, 16 * P, "middle", fallback=True)
print("ready", flush=True)
sys.stdin.read()
"""


def naming(counts: List[int]) -> Dict[str, Dict[str, float]]:
    """Per N: microseconds per mmap and per fallback naming, and their ratio."""
    from anonvma import live
    from anonvma.live import syscalls

    page = syscalls.PAGE_SIZE
    anon = syscalls.MAP_PRIVATE | syscalls.MAP_ANONYMOUS
    out = {}
    for n in counts:
        t0 = time.perf_counter()
        addrs = [syscalls.mmap(0, page, syscalls.PROT_READ, anon) for _ in range(n)]
        mapped = (time.perf_counter() - t0) / n * 1e6
        t0 = time.perf_counter()
        for i, a in enumerate(addrs):
            live.set_anon_name(a, page, f"n{i}", fallback=True)
        named = (time.perf_counter() - t0) / n * 1e6
        for a in addrs:
            live.set_anon_name(a, page, None, fallback=True)
            syscalls.munmap(a, page)
        out[str(n)] = {"mmap_us": round(mapped, 1), "fallback_naming_us": round(named, 1),
                       "ratio": round(named / mapped, 1)}
        print(f"naming, {n} ranges: mmap {mapped:.1f} us, fallback naming {named:.1f} us each "
              f"({named / mapped:.0f}x)")
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=21)
    ap.add_argument("--vmas", type=int, default=1000, help="extra one-page VMAs in each child")
    ap.add_argument("--out", default="results/registry.json")
    args = ap.parse_args(argv)
    from anonvma.live import supported

    if supported():
        raise SystemExit("this kernel names memory itself (CONFIG_ANON_VMA_NAME): the registry is not used")
    load_before = busy()
    result: Dict[str, object] = {"naming": naming([100, 1000, 4000])}
    anonvma, env = user_command()
    children = {name: subprocess.Popen([sys.executable, "-c", CHILD, str(args.vmas), flag],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                for name, flag in (("plain", "0"), ("registered", "1"))}
    try:
        for child in children.values():
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        runs = {name: command([anonvma, "show", str(c.pid), "--json"], env) for name, c in children.items()}
        for run in runs.values():
            run()  # warm-up: bytecode cache
        times: Dict[str, List[float]] = {name: [] for name in runs}
        for _ in range(args.repeat):
            for name, run in runs.items():
                times[name].append(run()[0])
    finally:
        for child in children.values():
            child.kill()
            child.wait()
    med = {name: statistics.median(t) for name, t in times.items()}
    ratio = med["registered"] / med["plain"]
    print(f"anonvma show PID --json, {args.vmas} extra VMAs: without a registry {med['plain']:.1f} ms, "
          f"with one (2 ranges, one measured from pagemap) {med['registered']:.1f} ms: ratio {ratio:.2f}")
    result.update(show_json_ms={k: round(v, 2) for k, v in med.items()}, show_ratio=round(ratio, 3),
                  repeat=args.repeat, vmas=args.vmas, load_before=load_before, load_after=busy(),
                  python=sys.version.split()[0], kernel=os.uname().release)
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
